//! What `jit` asks Azure for agrees with the policy's rules, for generated policies,
//! wishes and "what is my IP" answers:
//!
//! - the source sent is one the rule allows as written (JIT matches sources literally),
//!   contains the address it is meant for, is `*` only after `--source any`, and opens
//!   the port to every address (`0.0.0.0/0`, `Internet`) only when the person asked for
//!   exactly that;
//! - the duration is never longer than any chosen port's maximum;
//! - the ports are the policy's own, and an explicit port is used only when listed.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use jiff::SignedDuration;
use jit_agent::access::my_ip::{PublicAddress, SourceAnswer};
use jit_agent::access::plan::{
    PlanError, PortPreference, SourceRequest, choose_duration, choose_ports, choose_source,
};
use jit_agent::azure::models::{
    IsoDuration, JitNetworkAccessPortRule, JitProtocol, OperatingSystemTypes,
};
use proptest::prelude::*;

/// A public IPv4 address, mostly from the documentation ranges so that ranges overlap.
fn public_address() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        (0u8..=255).prop_map(|last| Ipv4Addr::new(198, 51, 100, last)),
        (0u8..=255).prop_map(|last| Ipv4Addr::new(203, 0, 113, last)),
        (1u8..=223, 0u8..=255, 0u8..=255, 1u8..=254).prop_filter_map("public", |(a, b, c, d)| {
            let address = Ipv4Addr::new(a, b, c, d);
            jit_agent::access::my_ip::not_public(IpAddr::V4(address))
                .is_none()
                .then_some(address)
        }),
    ]
}

/// A range or address as a policy or a person writes it; many of them nest around
/// 198.51.100.x, so a policy often has several ranges that contain the same address.
fn ipv4_source() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => public_address().prop_map(|address| address.to_string()),
        1 => (public_address(), 0u8..=32).prop_map(|(address, length)| {
            Ipv4Net::new(address, length)
                .map(|network| network.trunc().to_string())
                .unwrap_or_else(|_| address.to_string())
        }),
        2 => prop::sample::select(vec![
            "198.51.100.0/24".to_owned(),
            "198.51.100.0/25".to_owned(),
            "198.51.100.0/28".to_owned(),
            "198.51.0.0/16".to_owned(),
            "198.0.0.0/8".to_owned(),
            "128.0.0.0/1".to_owned(),
            "0.0.0.0/1".to_owned(),
            "0.0.0.0/0".to_owned(),
            "203.0.113.0/24".to_owned(),
            "10.0.0.0/8".to_owned(),
        ]),
    ]
}

/// An allowed source in a policy: a range, `*`, or the `Internet` service tag.
fn allowed_source() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => ipv4_source(),
        1 => Just("*".to_owned()),
        1 => Just("Internet".to_owned()),
        1 => ipv4_source().prop_map(|source| format!(" {source} ")),
    ]
}

fn maximum() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "PT5M".to_owned(),
        "PT30M".to_owned(),
        "PT0.5H".to_owned(),
        "PT1H".to_owned(),
        "PT3H".to_owned(),
        "PT180M".to_owned(),
        "P1D".to_owned(),
        "PT24H".to_owned(),
    ])
}

fn rule_with(
    number: u16,
    sources: Vec<String>,
    maximum: String,
    as_list: bool,
) -> JitNetworkAccessPortRule {
    let (single, several) = match (sources.as_slice(), as_list) {
        ([], _) => (None, None),
        ([one], false) => (Some(one.clone()), None),
        _ => (None, Some(sources)),
    };
    JitNetworkAccessPortRule {
        number,
        protocol: JitProtocol::All,
        allowed_source_address_prefix: single,
        allowed_source_address_prefixes: several,
        max_request_access_duration: IsoDuration(maximum),
        additional_properties: serde_json::Map::new(),
    }
}

fn rule() -> impl Strategy<Value = JitNetworkAccessPortRule> {
    (
        prop_oneof![
            Just(22u16),
            Just(3389u16),
            Just(2222u16),
            Just(5985u16),
            1u16..=65535
        ],
        prop::collection::vec(allowed_source(), 0..4),
        maximum(),
        prop::bool::ANY,
    )
        .prop_map(|(number, sources, maximum, as_list)| {
            rule_with(number, sources, maximum, as_list)
        })
}

fn rules() -> impl Strategy<Value = Vec<JitNetworkAccessPortRule>> {
    prop::collection::vec(rule(), 1..5).prop_map(|mut rules| {
        // A policy lists each port once.
        let mut seen = std::collections::HashSet::new();
        rules.retain(|rule| seen.insert(rule.number));
        rules
    })
}

fn request() -> impl Strategy<Value = SourceRequest> {
    prop_oneof![
        3 => Just(SourceRequest::Automatic),
        1 => Just(SourceRequest::Any),
        3 => ipv4_source().prop_map(SourceRequest::Explicit),
    ]
}

/// The answers of up to three "what is my IP" services (some failing).
fn public() -> impl Strategy<Value = Option<PublicAddress>> {
    prop::option::of(
        prop::collection::vec(
            prop_oneof![
                4 => public_address().prop_map(|address| Ok(IpAddr::V4(address))),
                1 => Just(Err("no answer".to_owned())),
                1 => Just(Ok("2001:db8::7".parse::<IpAddr>().expect("valid"))),
            ],
            0..3,
        )
        .prop_map(|results| PublicAddress {
            answers: results
                .into_iter()
                .enumerate()
                .map(|(index, result)| SourceAnswer {
                    url: format!("https://ip{index}.example"),
                    result,
                })
                .collect(),
        }),
    )
}

fn network(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Whether a source lets every address in.
fn opens_to_everyone(source: &str) -> bool {
    let source = source.trim();
    source == "*"
        || source.eq_ignore_ascii_case("internet")
        || network(source).is_some_and(|network| network.prefix_len() == 0)
}

fn allows_any(rule: &JitNetworkAccessPortRule) -> bool {
    let allowed = rule.allowed_sources();
    allowed.is_empty() || allowed.iter().any(|source| source.trim() == "*")
}

proptest! {
    // A failure prints its minimal input; a bug found this way gets a unit test of its
    // own next to the code, so no regression files are written here.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_source_sent_is_allowed_by_the_rule_and_wide_only_when_asked(
        rule in rule(),
        request in request(),
        public in public(),
    ) {
        let decision = choose_source(&request, public.as_ref(), &rule);
        let allowed = rule.allowed_sources();
        let Ok(decision) = decision else {
            return Ok(());
        };
        let Some(prefix) = decision.prefix else {
            // Azure uses the address it sees: only when every source is allowed.
            prop_assert!(allows_any(&rule), "no source sent under {:?}", allowed);
            prop_assert!(request == SourceRequest::Automatic);
            return Ok(());
        };
        if !allows_any(&rule) {
            prop_assert!(
                allowed.iter().any(|source| source.trim() == prefix),
                "{prefix} is not written in {allowed:?}"
            );
        }
        prop_assert_eq!(prefix == "*", request == SourceRequest::Any);
        let asked_for_everyone = match &request {
            SourceRequest::Any => true,
            SourceRequest::Explicit(source) => opens_to_everyone(source),
            SourceRequest::Automatic => false,
        };
        prop_assert!(
            !opens_to_everyone(&prefix) || asked_for_everyone,
            "{request:?} under {allowed:?} sends {prefix}"
        );
        // Never wider than needed: no allowed range around the wanted address is narrower.
        let wanted = match &request {
            SourceRequest::Explicit(source) => network(source),
            SourceRequest::Automatic => public.as_ref().and_then(PublicAddress::ipv4).map(IpNet::from),
            SourceRequest::Any => None,
        };
        if let (false, Some(wanted), Some(sent)) = (allows_any(&rule), wanted, network(&prefix)) {
            let narrower = allowed.iter().filter_map(|source| network(source)).find(|range| {
                range.contains(&wanted) && range.prefix_len() > sent.prefix_len()
            });
            prop_assert!(narrower.is_none(), "{prefix} sent where {narrower:?} would do");
        }
        match &request {
            SourceRequest::Explicit(source) => {
                let (Some(sent), Some(wanted)) = (network(&prefix), network(source)) else {
                    return Err(TestCaseError::fail(format!("{prefix} or {source} is no range")));
                };
                prop_assert!(sent.contains(&wanted), "{prefix} does not contain {source}");
            }
            SourceRequest::Automatic => {
                let address = public.as_ref().and_then(PublicAddress::ipv4);
                let (Some(sent), Some(address)) = (network(&prefix), address) else {
                    return Err(TestCaseError::fail(format!("{prefix} sent without an address")));
                };
                prop_assert!(sent.contains(&address), "{prefix} does not contain {address}");
            }
            SourceRequest::Any => {}
        }
    }

    #[test]
    fn a_refused_source_is_one_no_allowed_range_contains(
        rule in rule(),
        source in ipv4_source(),
    ) {
        let request = SourceRequest::Explicit(source.clone());
        if let Err(PlanError::SourceNotAllowed { .. }) = choose_source(&request, None, &rule) {
            prop_assert!(!allows_any(&rule));
            let wanted = network(&source).expect("generated sources are ranges");
            let contained = rule.allowed_sources().iter().any(|allowed| {
                network(allowed).is_some_and(|range| range.contains(&wanted))
            });
            prop_assert!(!contained, "{source} is inside {:?}", rule.allowed_sources());
        }
    }

    #[test]
    fn any_is_sent_exactly_when_the_rule_allows_it(rule in rule()) {
        match choose_source(&SourceRequest::Any, None, &rule) {
            Ok(decision) => {
                prop_assert!(allows_any(&rule));
                prop_assert_eq!(decision.prefix.as_deref(), Some("*"));
            }
            Err(error) => {
                prop_assert!(!allows_any(&rule));
                let is_any_not_allowed = matches!(error, PlanError::AnyNotAllowed { .. });
                prop_assert!(is_any_not_allowed);
            }
        }
    }

    #[test]
    fn the_duration_never_exceeds_a_chosen_ports_maximum(
        rules in rules(),
        requested in prop::option::of((1i64..=(25 * 60)).prop_map(SignedDuration::from_mins)),
    ) {
        let chosen: Vec<&JitNetworkAccessPortRule> = rules.iter().collect();
        let maxima: Vec<SignedDuration> = chosen
            .iter()
            .map(|rule| rule.max_request_access_duration.to_duration().expect("valid maximum"))
            .collect();
        let smallest = maxima.iter().copied().min().expect("at least one rule");
        match choose_duration(requested, &chosen) {
            Ok(duration) => {
                prop_assert!(duration <= smallest, "{duration:?} > {smallest:?}");
                prop_assert_eq!(duration, requested.unwrap_or(smallest));
            }
            Err(PlanError::DurationTooLong { requested: asked, maximum, .. }) => {
                prop_assert_eq!(Some(asked), requested);
                prop_assert!(asked > maximum && maxima.contains(&maximum));
            }
            Err(other) => return Err(TestCaseError::fail(other.to_string())),
        }
    }

    #[test]
    fn the_ports_opened_are_the_policys_and_an_explicit_one_only_when_listed(
        rules in rules(),
        preference in prop_oneof![
            Just(PortPreference::Automatic),
            Just(PortPreference::Ssh),
            Just(PortPreference::Rdp),
            prop_oneof![Just(22u16), Just(3389u16), 1u16..=65535].prop_map(PortPreference::Number),
        ],
        windows in prop::bool::ANY,
    ) {
        let os = windows.then_some(OperatingSystemTypes::Windows);
        let listed: Vec<u16> = rules.iter().map(|rule| rule.number).collect();
        match choose_ports(os.as_ref(), &rules, preference) {
            Ok(plan) => {
                let chosen = plan.rules();
                prop_assert!(!chosen.is_empty());
                for rule in &chosen {
                    prop_assert!(rules.contains(*rule), "port {} is not the policy's", rule.number);
                }
                if let PortPreference::Number(number) = preference {
                    prop_assert_eq!(chosen.len(), 1);
                    prop_assert_eq!(chosen[0].number, number);
                }
            }
            Err(PlanError::PortNotInPolicy { requested, available }) => {
                prop_assert_eq!(&available, &listed);
                if let PortPreference::Number(number) = preference {
                    prop_assert_eq!(requested, number);
                    prop_assert!(!listed.contains(&number));
                }
            }
            Err(other) => return Err(TestCaseError::fail(other.to_string())),
        }
    }
}
