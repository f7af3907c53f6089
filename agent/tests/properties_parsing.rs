//! Properties of the parsers every command leans on, over generated inputs: ARM resource
//! ids take apart into the parts they were built from, print back as given and compare
//! the way ARM compares them; ISO-8601 durations as Azure and `jit` write them read back
//! as the same duration. The fuzz targets (`fuzz/`) throw arbitrary bytes at the same
//! functions; these tests state what the answer must be for inputs of the right shape.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use jiff::SignedDuration;
use jit_agent::azure::models::{IsoDuration, parse_duration};
use jit_agent::azure::resource_id::{ResourceId, same_resource_id};
use proptest::prelude::*;

/// A segment of an id: what Azure allows in names, plus the words the parser looks for,
/// so a resource group called `providers` is tried too.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9][A-Za-z0-9._()-]{0,23}",
        1 => prop::sample::select(vec![
            "providers".to_owned(),
            "resourceGroups".to_owned(),
            "subscriptions".to_owned(),
            "RESOURCEGROUPS".to_owned(),
        ]),
    ]
}

/// The parts of an id and its text.
#[derive(Debug, Clone)]
struct IdParts {
    subscription_id: String,
    resource_group: Option<String>,
    provider: Option<(String, Vec<(String, String)>)>,
    text: String,
}

fn id_parts() -> impl Strategy<Value = IdParts> {
    (
        segment(),
        prop::option::of(segment()),
        prop::option::of((
            segment(),
            prop::collection::vec((segment(), segment()), 1..4),
        )),
        prop::sample::select(vec!["subscriptions", "Subscriptions", "SUBSCRIPTIONS"]),
        prop::sample::select(vec!["resourceGroups", "resourcegroups", "ResourceGroups"]),
        prop::sample::select(vec!["providers", "Providers"]),
        prop::bool::ANY,
    )
        .prop_map(
            |(
                subscription_id,
                resource_group,
                provider,
                subscriptions,
                groups,
                providers,
                slash,
            )| {
                let mut text = format!("/{subscriptions}/{subscription_id}");
                if let Some(group) = &resource_group {
                    text.push_str(&format!("/{groups}/{group}"));
                }
                if let Some((namespace, pairs)) = &provider {
                    text.push_str(&format!("/{providers}/{namespace}"));
                    for (resource_type, name) in pairs {
                        text.push_str(&format!("/{resource_type}/{name}"));
                    }
                }
                if slash {
                    text.push('/');
                }
                IdParts {
                    subscription_id,
                    resource_group,
                    provider,
                    text,
                }
            },
        )
}

fn hash_of(id: &ResourceId) -> u64 {
    let mut hasher = DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

/// Flips the ASCII case of every other letter.
fn mixed_case(text: &str) -> String {
    text.chars()
        .enumerate()
        .map(|(index, character)| {
            if index % 2 == 0 {
                character.to_ascii_uppercase()
            } else {
                character.to_ascii_lowercase()
            }
        })
        .collect()
}

proptest! {
    // A failure prints its minimal input; a bug found this way gets a unit test of its
    // own next to the code, so no regression files are written here.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn resource_ids_take_apart_into_their_parts_and_print_back(parts in id_parts()) {
        let id = ResourceId::parse(&parts.text).expect("a well-formed id parses");
        let without_slash = parts.text.trim_end_matches('/');
        prop_assert_eq!(id.as_str(), without_slash);
        prop_assert_eq!(id.to_string(), without_slash);
        prop_assert_eq!(id.subscription_id(), parts.subscription_id.as_str());
        prop_assert_eq!(id.resource_group(), parts.resource_group.as_deref());
        match &parts.provider {
            Some((namespace, pairs)) => {
                prop_assert_eq!(id.provider(), Some(namespace.as_str()));
                prop_assert_eq!(id.types_and_names(), pairs.as_slice());
                prop_assert_eq!(id.name(), pairs.last().map(|(_, name)| name.as_str()));
                let full_type = std::iter::once(namespace.as_str())
                    .chain(pairs.iter().map(|(resource_type, _)| resource_type.as_str()))
                    .collect::<Vec<_>>()
                    .join("/");
                prop_assert!(id.is_type(&full_type.to_ascii_uppercase()));
            }
            None => {
                prop_assert_eq!(id.provider(), None);
                prop_assert!(id.types_and_names().is_empty());
            }
        }
        // Through serde (the models carry ids) and back.
        let json = serde_json::to_string(&id).expect("serialises");
        let from_json: ResourceId = serde_json::from_str(&json).expect("deserialises");
        prop_assert_eq!(from_json.as_str(), id.as_str());
    }

    #[test]
    fn resource_ids_compare_and_hash_as_arm_does(parts in id_parts()) {
        let id = ResourceId::parse(&parts.text).expect("parses");
        let recased = ResourceId::parse(&mixed_case(&parts.text)).expect("parses in any case");
        prop_assert_eq!(&recased, &id);
        prop_assert_eq!(hash_of(&recased), hash_of(&id));
        prop_assert!(same_resource_id(&parts.text, &mixed_case(&parts.text)));
        let padded = format!(" {} ", parts.text);
        prop_assert!(same_resource_id(&padded, id.as_str()));
        // One character more is another resource.
        let longer = format!("{}x", id.as_str());
        prop_assert!(!same_resource_id(&longer, id.as_str()));
        if let Ok(other) = ResourceId::parse(&longer) {
            prop_assert_ne!(other, id);
        }
    }

    #[test]
    fn a_parent_is_the_id_without_its_last_type_and_name(parts in id_parts()) {
        let id = ResourceId::parse(&parts.text).expect("parses");
        match id.parent() {
            Some(parent) => {
                let pairs = id.types_and_names();
                prop_assert_eq!(parent.types_and_names(), &pairs[..pairs.len() - 1]);
                prop_assert_eq!(parent.subscription_id(), id.subscription_id());
                prop_assert_eq!(parent.resource_group(), id.resource_group());
                prop_assert_eq!(parent.provider(), id.provider());
                let reparsed = ResourceId::parse(parent.as_str()).expect("a parent parses");
                prop_assert_eq!(reparsed.types_and_names(), parent.types_and_names());
                let prefix = format!("{}/", parent.as_str().to_ascii_lowercase());
                prop_assert!(id.as_str().to_ascii_lowercase().starts_with(&prefix));
            }
            None => prop_assert!(id.types_and_names().len() < 2),
        }
    }

    #[test]
    fn vm_ids_built_from_names_read_back_as_those_names(
        subscription_id in segment(),
        resource_group in segment(),
        name in segment(),
    ) {
        let id = ResourceId::virtual_machine(&subscription_id, &resource_group, &name)
            .expect("names without '/' make an id");
        prop_assert_eq!(id.subscription_id(), subscription_id.as_str());
        prop_assert_eq!(id.resource_group(), Some(resource_group.as_str()));
        prop_assert_eq!(id.name(), Some(name.as_str()));
        prop_assert!(id.is_type("microsoft.compute/virtualmachines"));
    }

    #[test]
    fn names_with_a_slash_never_make_a_vm_id(
        before in segment(),
        after in segment(),
        position in 0usize..3,
    ) {
        let hostile = format!("{before}/{after}");
        let mut parts = ["s".to_owned(), "rg".to_owned(), "vm".to_owned()];
        parts[position] = hostile;
        prop_assert!(ResourceId::virtual_machine(&parts[0], &parts[1], &parts[2]).is_err());
    }

    #[test]
    fn durations_jit_writes_read_back_unchanged(
        seconds in 0i64..(10 * 366 * 24 * 3600),
        nanos in prop_oneof![Just(0i32), 0i32..1_000_000_000],
    ) {
        let duration = SignedDuration::new(seconds, nanos);
        let written = IsoDuration::from_duration(duration);
        prop_assert_eq!(written.to_duration(), Ok(duration), "{}", written);
        prop_assert_eq!(parse_duration(&format!("{duration:#}")), Ok(duration));
    }

    #[test]
    fn iso_durations_as_azure_writes_them_add_up(
        days in 0i64..400,
        hours in 0i64..48,
        minutes in 0i64..120,
        seconds in 0i64..120,
    ) {
        let expected = SignedDuration::from_secs(((days * 24 + hours) * 60 + minutes) * 60 + seconds);
        let text = format!("P{days}DT{hours}H{minutes}M{seconds}S");
        prop_assert_eq!(parse_duration(&text), Ok(expected), "{}", text);
        // Fractional hours, as the portal writes half an hour (`PT0.5H`).
        let half = format!("PT{hours}.5H");
        prop_assert_eq!(
            parse_duration(&half),
            Ok(SignedDuration::from_secs(hours * 3600 + 1800)),
            "{}", half
        );
    }

    #[test]
    fn negative_and_calendar_durations_are_refused(amount in 1i64..1000) {
        for text in [format!("-PT{amount}H"), format!("P{amount}Y"), format!("P{amount}M")] {
            prop_assert!(parse_duration(&text).is_err(), "{} was accepted", text);
        }
    }
}
