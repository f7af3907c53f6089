//! Source addresses and ranges: `--source` (`SourceRequest::parse`), the allowed sources
//! `jit enable` writes (`port_rules`), the answer of a "what is my IP" service
//! (`parse_answer`, `not_public`), and the choice of the source sent with a request
//! (`choose_source`) for a policy whose allowed sources come from the input.
//!
//! Checked beyond "no panic": `--source` accepts only `any`/`*` or IPv4; a service's
//! answer is only used when it is public; and the source chosen for a request is `*` or
//! a range that lets every address in (`0.0.0.0/0`) only when the person asked for
//! exactly that.

#![no_main]

use std::net::IpAddr;

use ipnet::IpNet;
use jit_agent::access::enable::port_rules;
use jit_agent::access::my_ip::{PublicAddress, SourceAnswer, not_public, parse_answer};
use jit_agent::access::plan::{SourceRequest, choose_source};
use jit_agent::azure::models::{IsoDuration, JitNetworkAccessPortRule, JitProtocol};
use libfuzzer_sys::fuzz_target;

/// Whether a prefix lets every address in.
fn opens_to_everyone(prefix: &str) -> bool {
    let prefix = prefix.trim();
    prefix == "*"
        || prefix.eq_ignore_ascii_case("internet")
        || prefix.eq_ignore_ascii_case("any")
        || prefix
            .parse::<IpNet>()
            .is_ok_and(|network| network.prefix_len() == 0)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // First line: what the person typed (or the service answered); the rest: the
    // policy's allowed sources.
    let mut lines = text.split('\n');
    let typed = lines.next().unwrap_or_default();
    let allowed: Vec<String> = lines.map(str::to_owned).collect();

    let request = SourceRequest::parse(typed);
    match &request {
        Ok(SourceRequest::Any) => {
            let trimmed = typed.trim();
            assert!(
                trimmed == "*" || trimmed.eq_ignore_ascii_case("any"),
                "{typed:?}"
            );
        }
        Ok(SourceRequest::Explicit(source)) => {
            let ipv4 = source.parse::<std::net::Ipv4Addr>().is_ok()
                || source.parse::<ipnet::Ipv4Net>().is_ok();
            assert!(ipv4, "{typed:?} accepted as {source:?}");
        }
        Ok(SourceRequest::Automatic) => panic!("{typed:?} parsed as automatic"),
        Err(error) => assert!(!error.to_string().is_empty()),
    }

    // What `jit enable --source` would write.
    if let Ok(rules) = port_rules(
        &[22],
        &JitProtocol::Tcp,
        &[typed.to_owned()],
        jiff::SignedDuration::from_hours(1),
    ) {
        assert_eq!(rules[0].allowed_sources(), [typed]);
    }

    // A "what is my IP" answer.
    let answer = parse_answer(typed);
    if let Some(address) = answer {
        let _ = not_public(address);
    }
    let public = PublicAddress {
        answers: vec![SourceAnswer {
            url: "https://fuzz.example".to_owned(),
            result: answer
                .filter(|address| not_public(*address).is_none())
                .ok_or_else(|| "not an address".to_owned()),
        }],
    };

    let (single, several) = match allowed.as_slice() {
        [] => (None, None),
        [one] => (Some(one.clone()), None),
        many => (None, Some(many.to_vec())),
    };
    let rule = JitNetworkAccessPortRule {
        number: 22,
        protocol: JitProtocol::Tcp,
        allowed_source_address_prefix: single,
        allowed_source_address_prefixes: several,
        max_request_access_duration: IsoDuration("PT3H".to_owned()),
        additional_properties: serde_json::Map::new(),
    };
    for request in [Ok(SourceRequest::Automatic), request] {
        let Ok(request) = request else { continue };
        let Ok(decision) = choose_source(&request, Some(&public), &rule) else {
            continue;
        };
        let Some(prefix) = decision.prefix else {
            continue;
        };
        if opens_to_everyone(&prefix) {
            let asked = match &request {
                SourceRequest::Any => true,
                SourceRequest::Explicit(source) => opens_to_everyone(source),
                SourceRequest::Automatic => false,
            };
            assert!(
                asked,
                "{request:?} under {:?} sends {prefix:?}",
                rule.allowed_sources()
            );
        }
        if let Ok(address) = prefix.parse::<IpAddr>() {
            assert!(address.is_ipv4(), "{prefix}");
        }
    }
});
