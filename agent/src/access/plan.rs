//! Deciding what to ask for: which port, which source address, how long.
//!
//! These decisions are pure functions of the policy and the user's wishes, so every rule
//! the portal and the live service apply is tested here without any network:
//!
//! - **Port**: the standard port of the wanted protocol (22 for SSH, 3389 for RDP) when
//!   the policy has it; else the policy's only port; else every candidate port is opened
//!   and probed, and the one that answers with the wanted protocol is used.
//! - **Source**: JIT matches sources literally. A policy that allows `*` accepts any
//!   address, but a policy with explicit ranges accepts only one of those exact strings
//!   (asking for `10.0.0.5` under `10.0.0.0/24` is refused), so the range containing the
//!   caller's address is sent instead. `*` itself is only ever sent when the user asked
//!   for it and the policy allows it. IPv6 is never sent: JIT refuses it.
//! - **Duration**: at most the policy's maximum for every chosen port; the default is that
//!   maximum, as on the portal.

use std::net::IpAddr;

use ipnet::IpNet;
use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use super::my_ip::PublicAddress;
use crate::azure::models::{JitNetworkAccessPortRule, OperatingSystemTypes};

/// The protocol a port is expected to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// SSH (a banner starting `SSH-2.0-`).
    Ssh,
    /// RDP (an X.224 Connection Confirm).
    Rdp,
    /// Something else (WinRM, a custom port): only reachability can be checked.
    Other,
}

impl Service {
    /// The protocol's standard port.
    pub fn standard_port(self) -> Option<u16> {
        match self {
            Self::Ssh => Some(22),
            Self::Rdp => Some(3389),
            Self::Other => None,
        }
    }

    /// The protocol a VM of this OS is usually reached with.
    pub fn for_os(os: Option<&OperatingSystemTypes>) -> Self {
        match os {
            Some(OperatingSystemTypes::Windows) => Self::Rdp,
            _ => Self::Ssh,
        }
    }

    /// A guess from the port number alone.
    pub fn guess_from_port(number: u16) -> Self {
        match number {
            22 => Self::Ssh,
            3389 => Self::Rdp,
            _ => Self::Other,
        }
    }
}

/// What the user asked for, port-wise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortPreference {
    /// The usual protocol for the VM's OS.
    Automatic,
    /// The SSH port (`--ssh`).
    Ssh,
    /// The RDP port (`--rdp`).
    Rdp,
    /// This port number, as the policy lists it (`--port`).
    Number(u16),
}

/// The chosen port(s).
#[derive(Debug, Clone, PartialEq)]
pub enum PortPlan {
    /// Open this port and expect this protocol.
    Single {
        /// The policy's rule for the port.
        rule: JitNetworkAccessPortRule,
        /// The protocol to expect.
        service: Service,
    },
    /// The policy does not say which port speaks the protocol: open these and keep the
    /// one that answers with it.
    Probe {
        /// Ports to open and probe.
        candidates: Vec<JitNetworkAccessPortRule>,
        /// The protocol to look for.
        service: Service,
    },
}

impl PortPlan {
    /// Every port the plan opens.
    pub fn rules(&self) -> Vec<&JitNetworkAccessPortRule> {
        match self {
            Self::Single { rule, .. } => vec![rule],
            Self::Probe { candidates, .. } => candidates.iter().collect(),
        }
    }

    /// The protocol expected.
    pub fn service(&self) -> Service {
        match self {
            Self::Single { service, .. } | Self::Probe { service, .. } => *service,
        }
    }
}

/// Why no request can be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The policy has no ports for the VM.
    #[error("the JIT policy lists no ports for this VM")]
    NoPorts,
    /// The asked-for port is not in the policy.
    #[error(
        "port {requested} is not in the VM's JIT policy (it has {})",
        list(available)
    )]
    PortNotInPolicy {
        /// The port asked for.
        requested: u16,
        /// The policy's ports.
        available: Vec<u16>,
    },
    /// The duration is longer than the policy allows.
    #[error("{} is longer than the policy allows for port {port} ({})", human(*requested), human(*maximum))]
    DurationTooLong {
        /// What was asked.
        requested: SignedDuration,
        /// The policy's maximum.
        maximum: SignedDuration,
        /// The port whose maximum is exceeded.
        port: u16,
    },
    /// The policy's maximum cannot be read.
    #[error("the policy's maximum duration for port {port} ('{value}') is not a duration")]
    BadMaximum {
        /// The port.
        port: u16,
        /// The text.
        value: String,
    },
    /// The source is not one the policy allows.
    #[error(
        "{requested} is not allowed by the policy for port {port}; it allows only {}",
        list_text(allowed)
    )]
    SourceNotAllowed {
        /// What would have been sent.
        requested: String,
        /// The port.
        port: u16,
        /// The policy's allowed sources.
        allowed: Vec<String>,
    },
    /// `--source any` on a policy that lists explicit ranges.
    #[error(
        "the policy for port {port} does not allow any source; it allows only {}",
        list_text(allowed)
    )]
    AnyNotAllowed {
        /// The port.
        port: u16,
        /// The policy's allowed sources.
        allowed: Vec<String>,
    },
    /// The source given is not an address or range.
    #[error("'{0}' is not an IP address, a CIDR range or 'any'")]
    BadSource(String),
    /// An IPv6 source, which JIT refuses.
    #[error("{0} is an IPv6 address, and JIT accepts only IPv4 sources")]
    Ipv6Source(String),
    /// The only allowed range containing the caller's address lets everyone in.
    #[error(
        "the policy for port {port} allows only {range}, which would open the port to every address"
    )]
    OnlyEveryone {
        /// The port.
        port: u16,
        /// The range.
        range: String,
    },
    /// The caller's address is unknown and the policy needs an explicit range.
    #[error(
        "could not learn your public IPv4 address ({why}), and the policy for port {port} allows only {}",
        list_text(allowed)
    )]
    AddressUnknown {
        /// The port.
        port: u16,
        /// The policy's allowed sources.
        allowed: Vec<String>,
        /// What the "what is my IP" services answered.
        why: String,
    },
}

fn list(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn list_text(items: &[String]) -> String {
    items.join(", ")
}

fn human(duration: SignedDuration) -> String {
    let minutes = duration.as_secs() / 60;
    match (minutes / 60, minutes % 60) {
        (0, minutes) => format!("{minutes}m"),
        (hours, 0) => format!("{hours}h"),
        (hours, minutes) => format!("{hours}h{minutes}m"),
    }
}

/// Chooses the port(s) to open.
pub fn choose_ports(
    os: Option<&OperatingSystemTypes>,
    rules: &[JitNetworkAccessPortRule],
    preference: PortPreference,
) -> Result<PortPlan, PlanError> {
    if rules.is_empty() {
        return Err(PlanError::NoPorts);
    }
    let service = match preference {
        PortPreference::Number(number) => {
            let rule = rules
                .iter()
                .find(|rule| rule.number == number)
                .ok_or_else(|| PlanError::PortNotInPolicy {
                    requested: number,
                    available: rules.iter().map(|rule| rule.number).collect(),
                })?;
            let guessed = match Service::guess_from_port(number) {
                Service::Other if rules.len() == 1 => Service::for_os(os),
                guessed => guessed,
            };
            return Ok(PortPlan::Single {
                rule: rule.clone(),
                service: guessed,
            });
        }
        PortPreference::Ssh => Service::Ssh,
        PortPreference::Rdp => Service::Rdp,
        PortPreference::Automatic => Service::for_os(os),
    };
    if let Some(standard) = service.standard_port()
        && let Some(rule) = rules.iter().find(|rule| rule.number == standard)
    {
        return Ok(PortPlan::Single {
            rule: rule.clone(),
            service,
        });
    }
    if let [only] = rules {
        return Ok(PortPlan::Single {
            rule: only.clone(),
            service,
        });
    }
    // Leave out ports that are standard for something else: 3389 is not SSH, 22 is not
    // RDP, and WinRM (5985/5986) is neither.
    let candidates: Vec<JitNetworkAccessPortRule> = rules
        .iter()
        .filter(|rule| {
            let known_other = matches!(rule.number, 22 | 3389 | 5985 | 5986);
            !known_other
        })
        .cloned()
        .collect();
    if candidates.is_empty() {
        return Err(PlanError::PortNotInPolicy {
            requested: service.standard_port().unwrap_or_default(),
            available: rules.iter().map(|rule| rule.number).collect(),
        });
    }
    Ok(PortPlan::Probe {
        candidates,
        service,
    })
}

/// Chooses the duration: the requested one if every chosen port allows it, else an error
/// naming the maximum; without a request, the smallest maximum of the chosen ports.
pub fn choose_duration(
    requested: Option<SignedDuration>,
    rules: &[&JitNetworkAccessPortRule],
) -> Result<SignedDuration, PlanError> {
    let mut smallest: Option<SignedDuration> = None;
    for rule in rules {
        let maximum = rule
            .max_request_access_duration
            .to_duration()
            .map_err(|_| PlanError::BadMaximum {
                port: rule.number,
                value: rule.max_request_access_duration.as_str().to_owned(),
            })?;
        if let Some(requested) = requested
            && requested > maximum
        {
            return Err(PlanError::DurationTooLong {
                requested,
                maximum,
                port: rule.number,
            });
        }
        smallest = Some(smallest.map_or(maximum, |current| current.min(maximum)));
    }
    Ok(requested
        .or(smallest)
        .unwrap_or(SignedDuration::from_hours(3)))
}

/// What the user said about the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceRequest {
    /// The caller's public address (the default).
    Automatic,
    /// `--source any`: every address (only if the policy allows `*`).
    Any,
    /// `--source IP|CIDR`.
    Explicit(String),
}

impl SourceRequest {
    /// Parses `--source`: `any`/`*`, an IPv4 address or an IPv4 CIDR.
    pub fn parse(text: &str) -> Result<Self, PlanError> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("any") || trimmed == "*" {
            return Ok(Self::Any);
        }
        let is_ipv6 = match (trimmed.parse::<IpAddr>(), trimmed.parse::<IpNet>()) {
            (Ok(address), _) => address.is_ipv6(),
            (_, Ok(network)) => matches!(network, IpNet::V6(_)),
            _ => return Err(PlanError::BadSource(trimmed.to_owned())),
        };
        if is_ipv6 {
            return Err(PlanError::Ipv6Source(trimmed.to_owned()));
        }
        Ok(Self::Explicit(trimmed.to_owned()))
    }
}

/// The source decided for a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceDecision {
    /// What to send as `allowedSourceAddressPrefix`; `None` lets Azure use the address it
    /// sees the request come from.
    pub prefix: Option<String>,
    /// Things the user should know (disagreeing services, IPv6, a substituted range).
    pub warnings: Vec<String>,
}

/// Whether a source range lets every address in (`0.0.0.0/0`, or a service tag that
/// means the whole internet).
fn opens_to_everyone(range: &str) -> bool {
    let range = range.trim();
    range == "*"
        || range.eq_ignore_ascii_case("internet")
        || range.eq_ignore_ascii_case("any")
        || as_network(range).is_some_and(|network| network.prefix_len() == 0)
}

fn allows_any(allowed: &[&str]) -> bool {
    allowed.iter().any(|source| source.trim() == "*")
}

fn as_network(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// The allowed source that contains `wanted`, if any: the exact string, else the
/// narrowest allowed range around it (so no more addresses get in than the policy makes
/// necessary).
fn containing_range<'a>(allowed: &[&'a str], wanted: &str) -> Option<&'a str> {
    if let Some(exact) = allowed.iter().find(|source| source.trim() == wanted) {
        return Some(exact);
    }
    let wanted = as_network(wanted)?;
    allowed
        .iter()
        .copied()
        .filter_map(|source| Some((source, as_network(source.trim())?)))
        .filter(|(_, range)| range.contains(&wanted))
        .min_by_key(|(_, range)| std::cmp::Reverse(range.prefix_len()))
        .map(|(source, _)| source)
}

/// Chooses the source prefix for one port rule.
pub fn choose_source(
    request: &SourceRequest,
    public: Option<&PublicAddress>,
    rule: &JitNetworkAccessPortRule,
) -> Result<SourceDecision, PlanError> {
    let allowed = rule.allowed_sources();
    let any = allows_any(&allowed) || allowed.is_empty();
    let allowed_owned = || {
        allowed
            .iter()
            .map(|source| (*source).to_owned())
            .collect::<Vec<_>>()
    };
    let mut warnings = Vec::new();

    match request {
        SourceRequest::Any => {
            if any {
                Ok(SourceDecision {
                    prefix: Some("*".to_owned()),
                    warnings,
                })
            } else {
                Err(PlanError::AnyNotAllowed {
                    port: rule.number,
                    allowed: allowed_owned(),
                })
            }
        }
        SourceRequest::Explicit(source) => {
            if any {
                return Ok(SourceDecision {
                    prefix: Some(source.clone()),
                    warnings,
                });
            }
            match containing_range(&allowed, source) {
                Some(range) if range.trim() == source => Ok(SourceDecision {
                    prefix: Some(range.trim().to_owned()),
                    warnings,
                }),
                // Asked for one address or range, never open the port to everyone.
                Some(range) if opens_to_everyone(range) => Err(PlanError::OnlyEveryone {
                    port: rule.number,
                    range: range.trim().to_owned(),
                }),
                Some(range) => {
                    warnings.push(format!(
                        "the policy matches sources literally, so the request is for its range {range}, which contains {source}"
                    ));
                    Ok(SourceDecision {
                        prefix: Some(range.trim().to_owned()),
                        warnings,
                    })
                }
                None => Err(PlanError::SourceNotAllowed {
                    requested: source.clone(),
                    port: rule.number,
                    allowed: allowed_owned(),
                }),
            }
        }
        SourceRequest::Automatic => {
            let address = public.and_then(PublicAddress::ipv4);
            if let Some(public) = public {
                if public.disagrees() {
                    let seen: Vec<String> = public
                        .answers
                        .iter()
                        .filter_map(|answer| {
                            answer
                                .result
                                .as_ref()
                                .ok()
                                .map(|address| format!("{} says {address}", answer.url))
                        })
                        .collect();
                    warnings.push(format!(
                        "\"what is my IP\" services disagree ({}); a VPN or proxy may send some traffic another way. Using {}; pass --source to choose",
                        seen.join(", "),
                        address.map_or_else(|| "none".to_owned(), |address| address.to_string())
                    ));
                }
                let ipv6 = public.ipv6();
                if !ipv6.is_empty() && address.is_none() {
                    warnings.push(format!(
                        "your public address is IPv6 ({}), which JIT does not accept; letting Azure use the IPv4 address it sees",
                        ipv6.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            match address {
                Some(address) => {
                    let text = address.to_string();
                    if any {
                        return Ok(SourceDecision {
                            prefix: Some(text),
                            warnings,
                        });
                    }
                    match containing_range(&allowed, &text) {
                        Some(range) if range.trim() == text => Ok(SourceDecision {
                            prefix: Some(text),
                            warnings,
                        }),
                        // Never open a port to everyone unless asked to (`--source any`).
                        Some(range) if opens_to_everyone(range) => Err(PlanError::OnlyEveryone {
                            port: rule.number,
                            range: range.trim().to_owned(),
                        }),
                        Some(range) => {
                            warnings.push(format!(
                                "the policy matches sources literally, so the request is for its range {}, which contains your address {text}: anyone in that range can reach the port",
                                range.trim()
                            ));
                            Ok(SourceDecision {
                                prefix: Some(range.trim().to_owned()),
                                warnings,
                            })
                        }
                        None => Err(PlanError::SourceNotAllowed {
                            requested: format!("your address {text}"),
                            port: rule.number,
                            allowed: allowed_owned(),
                        }),
                    }
                }
                None if any => {
                    if warnings.is_empty() {
                        let why = public
                            .and_then(PublicAddress::why_no_ipv4)
                            .unwrap_or_else(|| "no service was asked".to_owned());
                        warnings.push(format!(
                            "could not learn your public address ({why}); letting Azure use the address it sees"
                        ));
                    }
                    Ok(SourceDecision {
                        prefix: None,
                        warnings,
                    })
                }
                None => Err(PlanError::AddressUnknown {
                    port: rule.number,
                    allowed: allowed_owned(),
                    why: public
                        .and_then(PublicAddress::why_no_ipv4)
                        .unwrap_or_else(|| "no service was asked".to_owned()),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::my_ip::SourceAnswer;
    use crate::azure::models::{IsoDuration, JitProtocol};

    fn rule(number: u16, sources: &[&str], maximum: &str) -> JitNetworkAccessPortRule {
        let (single, many) = match sources {
            [one] => (Some((*one).to_owned()), None),
            many => (
                None,
                Some(many.iter().map(|source| (*source).to_owned()).collect()),
            ),
        };
        JitNetworkAccessPortRule {
            number,
            protocol: JitProtocol::All,
            allowed_source_address_prefix: single,
            allowed_source_address_prefixes: many,
            max_request_access_duration: IsoDuration(maximum.to_owned()),
            additional_properties: serde_json::Map::new(),
        }
    }

    fn public(addresses: &[&str]) -> PublicAddress {
        PublicAddress {
            answers: addresses
                .iter()
                .enumerate()
                .map(|(index, address)| SourceAnswer {
                    url: format!("https://ip{index}.example"),
                    result: Ok(address.parse().expect("valid")),
                })
                .collect(),
        }
    }

    fn numbers(plan: &PortPlan) -> Vec<u16> {
        plan.rules().iter().map(|rule| rule.number).collect()
    }

    #[test]
    fn the_standard_port_wins_then_the_only_port_then_probing() {
        let linux = Some(&OperatingSystemTypes::Linux);
        let windows = Some(&OperatingSystemTypes::Windows);
        let standard = [rule(22, &["*"], "PT3H"), rule(3389, &["*"], "PT3H")];
        let plan = choose_ports(linux, &standard, PortPreference::Automatic).expect("plan");
        assert_eq!((numbers(&plan), plan.service()), (vec![22], Service::Ssh));
        let plan = choose_ports(windows, &standard, PortPreference::Automatic).expect("plan");
        assert_eq!((numbers(&plan), plan.service()), (vec![3389], Service::Rdp));

        let only = [rule(40022, &["*"], "PT3H")];
        let plan = choose_ports(linux, &only, PortPreference::Automatic).expect("plan");
        assert_eq!(numbers(&plan), [40022]);

        let several = [
            rule(40022, &["*"], "PT3H"),
            rule(48080, &["*"], "PT3H"),
            rule(5985, &["*"], "PT3H"),
        ];
        let plan = choose_ports(linux, &several, PortPreference::Ssh).expect("plan");
        assert!(matches!(plan, PortPlan::Probe { .. }));
        assert_eq!(numbers(&plan), [40022, 48080]);
    }

    #[test]
    fn an_explicit_port_must_be_in_the_policy() {
        let rules = [rule(22, &["*"], "PT3H")];
        let error = choose_ports(None, &rules, PortPreference::Number(2222)).expect_err("missing");
        assert_eq!(
            error,
            PlanError::PortNotInPolicy {
                requested: 2222,
                available: vec![22]
            }
        );
        assert_eq!(
            error.to_string(),
            "port 2222 is not in the VM's JIT policy (it has 22)"
        );
    }

    #[test]
    fn duration_defaults_to_the_maximum_and_may_not_exceed_it() {
        let three_hours = rule(22, &["*"], "PT3H");
        let half_hour = rule(2222, &["*"], "PT0.5H");
        assert_eq!(
            choose_duration(None, &[&three_hours, &half_hour]).expect("ok"),
            SignedDuration::from_mins(30)
        );
        assert_eq!(
            choose_duration(Some(SignedDuration::from_hours(1)), &[&three_hours]).expect("ok"),
            SignedDuration::from_hours(1)
        );
        let error = choose_duration(Some(SignedDuration::from_hours(4)), &[&three_hours])
            .expect_err("too long");
        assert_eq!(
            error.to_string(),
            "4h is longer than the policy allows for port 22 (3h)"
        );
    }

    #[test]
    fn any_source_policies_get_the_callers_address() {
        let decision = choose_source(
            &SourceRequest::Automatic,
            Some(&public(&["198.51.100.7"])),
            &rule(22, &["*"], "PT3H"),
        )
        .expect("ok");
        assert_eq!(decision.prefix.as_deref(), Some("198.51.100.7"));
        assert!(decision.warnings.is_empty());
    }

    #[test]
    fn explicit_range_policies_get_the_exact_range_string() {
        let policy = rule(22, &["198.51.100.0/24", "203.0.113.0/24"], "PT1H");
        let decision = choose_source(
            &SourceRequest::Automatic,
            Some(&public(&["198.51.100.7"])),
            &policy,
        )
        .expect("ok");
        assert_eq!(decision.prefix.as_deref(), Some("198.51.100.0/24"));
        assert!(
            decision
                .warnings
                .iter()
                .any(|warning| warning.contains("198.51.100.0/24")
                    && warning.contains("anyone in that range")),
            "widening the source must be said: {:?}",
            decision.warnings
        );

        let error = choose_source(
            &SourceRequest::Automatic,
            Some(&public(&["192.0.2.1"])),
            &policy,
        )
        .expect_err("outside");
        assert!(
            error
                .to_string()
                .contains("198.51.100.0/24, 203.0.113.0/24"),
            "{error}"
        );

        let explicit = choose_source(
            &SourceRequest::Explicit("203.0.113.0/24".to_owned()),
            None,
            &policy,
        )
        .expect("exact");
        assert_eq!(explicit.prefix.as_deref(), Some("203.0.113.0/24"));
    }

    #[test]
    fn the_automatic_source_never_opens_to_everyone() {
        for everyone in ["0.0.0.0/0", "Internet"] {
            let policy = rule(22, &["10.0.0.0/8", everyone], "PT1H");
            let error = choose_source(
                &SourceRequest::Automatic,
                Some(&public(&["198.51.100.7"])),
                &policy,
            )
            .expect_err("not without --source any");
            assert!(
                matches!(&error, PlanError::OnlyEveryone { range, .. } if range == everyone)
                    || matches!(&error, PlanError::SourceNotAllowed { .. }),
                "{error:?}"
            );
        }
        // The exact address listed is fine, and said nowhere.
        let exact = rule(22, &["198.51.100.7", "0.0.0.0/0"], "PT1H");
        let decision = choose_source(
            &SourceRequest::Automatic,
            Some(&public(&["198.51.100.7"])),
            &exact,
        )
        .expect("exact address");
        assert_eq!(decision.prefix.as_deref(), Some("198.51.100.7"));
        assert!(decision.warnings.is_empty());
    }

    #[test]
    fn an_explicit_source_never_becomes_everyone() {
        // Found by properties_request_rules: `--source 198.51.100.7` under a policy whose
        // only range around it is 0.0.0.0/0 used to request 0.0.0.0/0.
        let policy = rule(22, &["0.0.0.0/0", "10.0.0.0/8"], "PT1H");
        for source in ["198.51.100.7", "198.51.100.0/24"] {
            let error = choose_source(&SourceRequest::Explicit(source.to_owned()), None, &policy)
                .expect_err("not without asking for 0.0.0.0/0");
            assert!(
                matches!(&error, PlanError::OnlyEveryone { range, .. } if range == "0.0.0.0/0"),
                "{error:?}"
            );
        }
        // Asking for exactly that range is asking.
        let asked = choose_source(
            &SourceRequest::Explicit("0.0.0.0/0".to_owned()),
            None,
            &policy,
        )
        .expect("asked for");
        assert_eq!(asked.prefix.as_deref(), Some("0.0.0.0/0"));
    }

    #[test]
    fn the_narrowest_allowed_range_is_used() {
        let policy = rule(
            22,
            &[
                "0.0.0.0/0",
                "198.0.0.0/8",
                "198.51.100.0/24",
                "198.51.0.0/16",
            ],
            "PT1H",
        );
        for request in [
            SourceRequest::Automatic,
            SourceRequest::Explicit("198.51.100.7".to_owned()),
        ] {
            let decision =
                choose_source(&request, Some(&public(&["198.51.100.7"])), &policy).expect("ok");
            assert_eq!(
                decision.prefix.as_deref(),
                Some("198.51.100.0/24"),
                "{request:?}"
            );
        }
    }

    #[test]
    fn any_is_sent_only_when_asked_and_allowed() {
        let open = rule(22, &["*"], "PT3H");
        let closed = rule(22, &["10.0.0.0/8"], "PT3H");
        assert_eq!(
            choose_source(&SourceRequest::Any, None, &open)
                .expect("ok")
                .prefix
                .as_deref(),
            Some("*")
        );
        assert!(matches!(
            choose_source(&SourceRequest::Any, None, &closed),
            Err(PlanError::AnyNotAllowed { .. })
        ));
        // Never `*` by default, even when nothing else is known.
        let unknown = choose_source(&SourceRequest::Automatic, None, &open).expect("ok");
        assert_eq!(unknown.prefix, None);
    }

    #[test]
    fn ipv6_is_refused_and_disagreement_warned_about() {
        assert!(matches!(
            SourceRequest::parse("2001:db8::1"),
            Err(PlanError::Ipv6Source(_))
        ));
        assert!(matches!(
            SourceRequest::parse("nonsense"),
            Err(PlanError::BadSource(_))
        ));
        assert_eq!(
            SourceRequest::parse("ANY").expect("any"),
            SourceRequest::Any
        );

        let only_ipv6 = choose_source(
            &SourceRequest::Automatic,
            Some(&public(&["2001:db8::7"])),
            &rule(22, &["*"], "PT3H"),
        )
        .expect("ok");
        assert_eq!(only_ipv6.prefix, None);
        assert!(
            only_ipv6.warnings[0].contains("IPv6"),
            "{:?}",
            only_ipv6.warnings
        );

        let disagreeing = choose_source(
            &SourceRequest::Automatic,
            Some(&public(&["198.51.100.7", "203.0.113.9"])),
            &rule(22, &["*"], "PT3H"),
        )
        .expect("ok");
        assert_eq!(disagreeing.prefix.as_deref(), Some("198.51.100.7"));
        assert!(
            disagreeing.warnings[0].contains("disagree"),
            "{:?}",
            disagreeing.warnings
        );
    }
}
