//! Learning the caller's public address, as the VM will see it.
//!
//! JIT opens a port for one source address, so `jit` must know the address the VM will
//! see connections come from. Azure could use the address ARM sees for the initiate call
//! (the API allows omitting the source), but ARM and the VM are often reached over
//! different paths: a split-tunnel VPN, a proxy that only carries HTTPS, or a second
//! internet line. So `jit` also asks several independent "what is my IP" services over
//! HTTPS, in parallel, and reports when they disagree, which is exactly the situation in
//! which an access request silently opens the wrong address.
//!
//! JIT accepts only IPv4 sources, so an IPv6 answer is reported separately instead of
//! being used.
//!
//! An answer is used only when it is a global unicast address ([`not_public`]): a
//! service (or a captive portal, or a proxy in between) answering `10.20.30.40`,
//! `127.0.0.1` or `100.64.1.2` would otherwise make that the request's source, opening
//! the port to an address that is not the caller's as the VM sees it. Such an answer
//! counts as a failed service: the others decide, and when none gives a usable IPv4
//! address [`PublicAddress::why_no_ipv4`] says what each one answered. The documentation
//! ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32, 3fff::/20)
//! stay usable, because emulators and examples hand them out as public addresses.
//!
//! An answer is read up to [`MAX_ANSWER_BYTES`]: a service that streams more (broken, or
//! compromised to exhaust memory) is cut off and counts as failed, like a slow one.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde::Serialize;

/// What one "what is my IP" service said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceAnswer {
    /// The service's URL.
    pub url: String,
    /// The address it reported, or why it could not.
    pub result: Result<IpAddr, String>,
}

/// The combined answer of every service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicAddress {
    /// Every service's answer, in the order configured.
    pub answers: Vec<SourceAnswer>,
}

impl PublicAddress {
    /// The IPv4 address most services agree on (the first configured wins a tie), if any
    /// service answered with IPv4.
    pub fn ipv4(&self) -> Option<IpAddr> {
        let mut votes: BTreeMap<IpAddr, (usize, usize)> = BTreeMap::new();
        for (position, answer) in self.answers.iter().enumerate() {
            if let Ok(address @ IpAddr::V4(_)) = answer.result {
                let entry = votes.entry(address).or_insert((0, position));
                entry.0 += 1;
            }
        }
        votes
            .into_iter()
            .max_by(|(_, (count_a, first_a)), (_, (count_b, first_b))| {
                count_a.cmp(count_b).then(first_b.cmp(first_a))
            })
            .map(|(address, _)| address)
    }

    /// Distinct addresses reported (IPv4 and IPv6), for warnings.
    pub fn distinct(&self) -> Vec<IpAddr> {
        let mut addresses: Vec<IpAddr> = self
            .answers
            .iter()
            .filter_map(|answer| answer.result.as_ref().ok().copied())
            .collect();
        addresses.sort();
        addresses.dedup();
        addresses
    }

    /// Whether the services named more than one IPv4 address.
    pub fn disagrees(&self) -> bool {
        self.distinct()
            .iter()
            .filter(|address| address.is_ipv4())
            .count()
            > 1
    }

    /// The IPv6 addresses reported, which JIT cannot use.
    pub fn ipv6(&self) -> Vec<IpAddr> {
        self.distinct()
            .into_iter()
            .filter(IpAddr::is_ipv6)
            .collect()
    }

    /// Why no IPv4 address can be used, naming what every service answered
    /// (`https://a answered 10.20.30.40, a private address (RFC 1918); https://b: no
    /// answer within 5 s`), or `None` when [`PublicAddress::ipv4`] has one.
    pub fn why_no_ipv4(&self) -> Option<String> {
        if self.ipv4().is_some() {
            return None;
        }
        if self.answers.is_empty() {
            return Some("no \"what is my IP\" service is configured".to_owned());
        }
        let answers: Vec<String> = self
            .answers
            .iter()
            .map(|answer| match &answer.result {
                Ok(address) => format!("{} answered {address}, which is IPv6", answer.url),
                Err(reason) => format!("{}: {reason}", answer.url),
            })
            .collect();
        Some(format!(
            "no \"what is my IP\" service gave a usable public IPv4 address ({})",
            answers.join("; ")
        ))
    }
}

/// Why `address` cannot be the caller's public address, or `None` when it is a global
/// unicast address (documentation ranges included, see the module documentation).
///
/// IPv4: this network (0.0.0.0/8, with the unspecified address), private (RFC 1918),
/// carrier-grade NAT (100.64.0.0/10), loopback, link-local, IETF protocol assignments
/// (192.0.0.0/24), benchmarking (198.18.0.0/15), multicast, reserved (240.0.0.0/4) and
/// broadcast. IPv6: anything outside global unicast (2000::/3) — unspecified, loopback,
/// IPv4-mapped, unique local, link-local, site-local, multicast, discard — and the IETF
/// protocol assignments in 2001::/23 (Teredo, benchmarking, ORCHID).
pub fn not_public(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(address) => not_public_v4(address),
        IpAddr::V6(address) => not_public_v6(address),
    }
}

fn not_public_v4(address: Ipv4Addr) -> Option<&'static str> {
    let [first, second, third, _] = address.octets();
    if address.is_unspecified() {
        Some("the unspecified address")
    } else if first == 0 {
        Some("a \"this network\" address (0.0.0.0/8)")
    } else if address.is_private() {
        Some("a private address (RFC 1918)")
    } else if first == 100 && (64..128).contains(&second) {
        Some("a carrier-grade NAT address (100.64.0.0/10)")
    } else if address.is_loopback() {
        Some("a loopback address")
    } else if address.is_link_local() {
        Some("a link-local address")
    } else if first == 192 && second == 0 && third == 0 {
        Some("an IETF protocol address (192.0.0.0/24)")
    } else if first == 198 && (second == 18 || second == 19) {
        Some("a benchmarking address (198.18.0.0/15)")
    } else if address.is_multicast() {
        Some("a multicast address")
    } else if address.is_broadcast() {
        Some("the broadcast address")
    } else if first >= 240 {
        Some("a reserved address (240.0.0.0/4)")
    } else {
        None
    }
}

fn not_public_v6(address: Ipv6Addr) -> Option<&'static str> {
    let segments = address.segments();
    if address.is_unspecified() {
        Some("the unspecified address")
    } else if address.is_loopback() {
        Some("a loopback address")
    } else if address.to_ipv4_mapped().is_some() {
        Some("an IPv4-mapped address")
    } else if address.is_multicast() {
        Some("a multicast address")
    } else if address.is_unique_local() {
        Some("a unique local address (fc00::/7)")
    } else if address.is_unicast_link_local() {
        Some("a link-local address")
    } else if segments[0] & 0xffc0 == 0xfec0 {
        Some("a site-local address (fec0::/10)")
    } else if segments[0] & 0xe000 != 0x2000 {
        Some("not a global unicast address (outside 2000::/3)")
    } else if segments[0] == 0x2001 && segments[1] < 0x0200 {
        Some("an IETF protocol address (2001::/23)")
    } else {
        None
    }
}

/// Asks every service in parallel, each bounded by `timeout`.
pub async fn discover(
    client: &reqwest::Client,
    urls: &[String],
    timeout: Duration,
) -> PublicAddress {
    let lookups = urls.iter().map(|url| async move {
        let result = match tokio::time::timeout(timeout, ask(client, url)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
        };
        if let Err(reason) = &result {
            tracing::debug!(url = %url, reason = %reason, "public address service failed");
        }
        SourceAnswer {
            url: url.clone(),
            result,
        }
    });
    PublicAddress {
        answers: futures::future::join_all(lookups).await,
    }
}

async fn ask(client: &reqwest::Client, url: &str) -> Result<IpAddr, String> {
    let response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "text/plain, application/json")
        .send()
        .await
        .map_err(|error| format!("request failed: {error}"))?;
    if !response.status().is_success() {
        return Err(format!("answered HTTP {}", response.status().as_u16()));
    }
    let body = read_answer(response).await?;
    let address = parse_answer(&body).ok_or_else(|| {
        let shown: String = body.chars().take(60).collect();
        format!("answer is not an IP address: {shown:?}")
    })?;
    checked(address)
}

/// The longest answer read: an address, even in a JSON document with a few more fields,
/// is far shorter. A service (or whatever answers in its place) streaming more is cut
/// off instead of filling memory until the timeout.
pub const MAX_ANSWER_BYTES: usize = 4096;

/// The body of an answer, up to [`MAX_ANSWER_BYTES`], as text.
async fn read_answer(mut response: reqwest::Response) -> Result<String, String> {
    let too_long =
        || format!("answered with more than {MAX_ANSWER_BYTES} bytes, longer than any address");
    if response
        .content_length()
        .is_some_and(|length| length > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_long());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| format!("could not read the answer: {error}"))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_long());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The answer when it can be the caller's public address, else why not.
fn checked(address: IpAddr) -> Result<IpAddr, String> {
    match not_public(address) {
        None => Ok(address),
        Some(kind) => Err(format!(
            "answered {address}, {kind}, which cannot be your public address"
        )),
    }
}

/// Parses a service's answer: a bare address (`198.51.100.7\n`) or JSON with an `ip` or
/// `address` field (`{"ip":"198.51.100.7"}`). An IPv4-mapped IPv6 address (what a
/// dual-stack server may report for an IPv4 client, `::ffff:198.51.100.7`) is read as
/// the IPv4 address it holds.
pub fn parse_answer(body: &str) -> Option<IpAddr> {
    let trimmed = body.trim();
    let address: IpAddr = match trimmed.parse() {
        Ok(address) => address,
        Err(_) => {
            let value: serde_json::Value = serde_json::from_str(trimmed).ok()?;
            ["ip", "address", "query"]
                .iter()
                .find_map(|key| value.get(key)?.as_str()?.trim().parse().ok())?
        }
    };
    Some(address.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(results: &[Result<&str, &str>]) -> PublicAddress {
        PublicAddress {
            answers: results
                .iter()
                .enumerate()
                .map(|(index, result)| SourceAnswer {
                    url: format!("https://ip{index}.example"),
                    result: result
                        .map(|text| text.parse().expect("valid address"))
                        .map_err(str::to_owned),
                })
                .collect(),
        }
    }

    #[test]
    fn answers_parse_as_text_or_json() {
        assert_eq!(parse_answer("198.51.100.7\n"), "198.51.100.7".parse().ok());
        assert_eq!(
            parse_answer(r#"{"ip": "203.0.113.9"}"#),
            "203.0.113.9".parse().ok()
        );
        assert_eq!(parse_answer("2001:db8::7"), "2001:db8::7".parse().ok());
        assert_eq!(parse_answer("<html>blocked</html>"), None);
    }

    #[test]
    fn the_majority_wins_and_ties_go_to_the_first_service() {
        let majority = answers(&[Ok("203.0.113.9"), Ok("198.51.100.7"), Ok("198.51.100.7")]);
        assert_eq!(majority.ipv4(), "198.51.100.7".parse().ok());
        assert!(majority.disagrees());

        let tie = answers(&[Ok("203.0.113.9"), Ok("198.51.100.7")]);
        assert_eq!(tie.ipv4(), "203.0.113.9".parse().ok());
    }

    #[test]
    fn ipv6_and_failures_are_not_used_as_the_source() {
        let mixed = answers(&[Err("timeout"), Ok("2001:db8::7"), Ok("198.51.100.7")]);
        assert_eq!(mixed.ipv4(), "198.51.100.7".parse().ok());
        assert!(!mixed.disagrees());
        assert_eq!(
            mixed.ipv6(),
            vec!["2001:db8::7".parse::<IpAddr>().expect("valid")]
        );

        let only_ipv6 = answers(&[Ok("2001:db8::7")]);
        assert_eq!(only_ipv6.ipv4(), None);
    }

    #[test]
    fn non_global_ipv4_answers_are_refused() {
        let refused = [
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "this network"),
            ("10.20.30.40", "RFC 1918"),
            ("172.16.0.1", "RFC 1918"),
            ("172.31.255.254", "RFC 1918"),
            ("192.168.1.10", "RFC 1918"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.254", "carrier-grade NAT"),
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("169.254.169.254", "link-local"),
            ("192.0.0.8", "IETF protocol"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.1", "benchmarking"),
            ("224.0.0.251", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
        ];
        for (text, expected) in refused {
            let address: IpAddr = text.parse().expect("valid address");
            let reason = not_public(address).unwrap_or_else(|| panic!("{text} was accepted"));
            assert!(reason.contains(expected), "{text}: {reason}");
        }
    }

    #[test]
    fn global_and_documentation_ipv4_answers_are_used() {
        for text in [
            "20.1.2.3",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.254",
            // Documentation ranges: the emulator and examples use them.
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
        ] {
            let address: IpAddr = text.parse().expect("valid address");
            assert_eq!(not_public(address), None, "{text}");
        }
    }

    #[test]
    fn non_global_ipv6_answers_are_refused_and_global_ones_reported() {
        let refused = [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:10.0.0.1", "IPv4-mapped"),
            ("::10.0.0.1", "outside 2000::/3"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("100::1", "outside 2000::/3"),
            ("64:ff9b:1::1", "outside 2000::/3"),
            ("2001::1", "IETF protocol"),
            ("2001:2::1", "IETF protocol"),
            ("2001:1ff::1", "IETF protocol"),
            ("4000::1", "outside 2000::/3"),
        ];
        for (text, expected) in refused {
            let address: IpAddr = text.parse().expect("valid address");
            let reason = not_public(address).unwrap_or_else(|| panic!("{text} was accepted"));
            assert!(reason.contains(expected), "{text}: {reason}");
        }
        for text in [
            "2a01:111:f100::1",
            "2600::1",
            "2001:200::1",
            "2001:db8::7",
            "3fff::1",
        ] {
            let address: IpAddr = text.parse().expect("valid address");
            assert_eq!(not_public(address), None, "{text}");
        }
    }

    #[test]
    fn an_ipv4_mapped_answer_is_read_as_ipv4() {
        assert_eq!(
            parse_answer("::ffff:198.51.100.7"),
            "198.51.100.7".parse().ok()
        );
        assert_eq!(
            parse_answer(r#"{"ip":"::ffff:10.0.0.1"}"#),
            "10.0.0.1".parse().ok()
        );
    }

    fn checked_answers(texts: &[&str]) -> PublicAddress {
        PublicAddress {
            answers: texts
                .iter()
                .enumerate()
                .map(|(index, text)| SourceAnswer {
                    url: format!("https://ip{index}.example"),
                    result: parse_answer(text)
                        .ok_or_else(|| "not an address".to_owned())
                        .and_then(checked),
                })
                .collect(),
        }
    }

    #[test]
    fn a_refused_answer_counts_as_a_failed_service() {
        // Two services behind the same proxy say 10.20.30.40; only the valid answer
        // counts, and nobody is told the services disagree about a private address.
        let outvoted = checked_answers(&["10.20.30.40", "10.20.30.40", "203.0.113.9"]);
        assert_eq!(outvoted.ipv4(), "203.0.113.9".parse().ok());
        assert!(!outvoted.disagrees());
        assert_eq!(outvoted.why_no_ipv4(), None);
        assert!(
            outvoted.answers[0]
                .result
                .as_ref()
                .is_err_and(|reason| reason.contains("10.20.30.40")),
            "{:?}",
            outvoted.answers[0]
        );
    }

    #[test]
    fn without_a_usable_ipv4_answer_the_reason_names_every_answer() {
        let none = checked_answers(&["10.20.30.40", "<html>", "2001:db8::7", "100.64.3.4"]);
        assert_eq!(none.ipv4(), None);
        let reason = none.why_no_ipv4().expect("a reason");
        for expected in [
            "https://ip0.example: answered 10.20.30.40, a private address (RFC 1918)",
            "https://ip1.example: not an address",
            "https://ip2.example answered 2001:db8::7, which is IPv6",
            "https://ip3.example: answered 100.64.3.4, a carrier-grade NAT address",
        ] {
            assert!(reason.contains(expected), "{reason}");
        }
        assert!(
            PublicAddress {
                answers: Vec::new()
            }
            .why_no_ipv4()
            .is_some_and(|reason| reason.contains("no \"what is my IP\" service is configured"))
        );
    }
}
