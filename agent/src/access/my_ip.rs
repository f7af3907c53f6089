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

use std::collections::BTreeMap;
use std::net::IpAddr;
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
    let body = response
        .text()
        .await
        .map_err(|error| format!("could not read the answer: {error}"))?;
    parse_answer(&body).ok_or_else(|| {
        let shown: String = body.chars().take(60).collect();
        format!("answer is not an IP address: {shown:?}")
    })
}

/// Parses a service's answer: a bare address (`198.51.100.7\n`) or JSON with an `ip` or
/// `address` field (`{"ip":"198.51.100.7"}`).
pub fn parse_answer(body: &str) -> Option<IpAddr> {
    let trimmed = body.trim();
    if let Ok(address) = trimmed.parse() {
        return Some(address);
    }
    let value: serde_json::Value = serde_json::from_str(trimmed).ok()?;
    ["ip", "address", "query"]
        .iter()
        .find_map(|key| value.get(key)?.as_str()?.trim().parse().ok())
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
}
