//! What a person types to name a VM (`web-01`, `rg/web-01`, a resource id) through the
//! CLI's `parse_vm` and `VmQuery::parse`, ARM resource ids through `ResourceId::parse`,
//! and the KQL string literal a typed name becomes in the Resource Graph query.
//!
//! Checked beyond "no panic": a parsed id prints back as the text it was parsed from and
//! parses again to an equal id with the same parts; its parent is a valid id; a name
//! quoted for KQL unquotes to exactly the name, with no quote left open or closed early
//! (a name cannot change the query).

#![no_main]

use jit::settings::parse_vm;
use jit_agent::access::locate::VmQuery;
use jit_agent::azure::clients::{KqlColumn, KqlCondition, ResourcesQuery};
use jit_agent::azure::resource_id::{ResourceId, same_resource_id};
use libfuzzer_sys::fuzz_target;

/// Reads a single-quoted KQL literal back, as Resource Graph's lexer does; `None` when
/// the literal ends before its last character or does not end at all.
fn unquote(literal: &str) -> Option<String> {
    let inner = literal.strip_prefix('\'')?;
    let mut value = String::new();
    let mut characters = inner.chars();
    while let Some(character) = characters.next() {
        match character {
            '\\' => match characters.next()? {
                'n' => value.push('\n'),
                'r' => value.push('\r'),
                't' => value.push('\t'),
                other => value.push(other),
            },
            '\'' => return characters.next().is_none().then_some(value),
            other => value.push(other),
        }
    }
    None
}

fn check_id(id: &ResourceId) {
    let again = ResourceId::parse(id.as_str()).expect("a parsed id parses again");
    assert_eq!(&again, id);
    assert_eq!(again.as_str(), id.as_str());
    assert_eq!(again.subscription_id(), id.subscription_id());
    assert_eq!(again.resource_group(), id.resource_group());
    assert_eq!(again.types_and_names(), id.types_and_names());
    assert!(same_resource_id(
        id.as_str(),
        &id.as_str().to_ascii_uppercase()
    ));
    if let Some(parent) = id.parent() {
        let reparsed = ResourceId::parse(parent.as_str()).expect("a parent is an id");
        assert_eq!(reparsed, parent);
        assert_eq!(
            parent.types_and_names().len() + 1,
            id.types_and_names().len()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    match VmQuery::parse(text) {
        Ok(query) => {
            let shown = query.to_string();
            assert_eq!(VmQuery::parse(&shown).ok(), Some(query.clone()), "{text:?}");
            if let VmQuery::Id(id) = &query {
                assert!(id.is_type("Microsoft.Compute/virtualMachines"));
                check_id(id);
            }
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
    let _ = parse_vm(text);

    if let Ok(id) = ResourceId::parse(text) {
        check_id(&id);
    }

    // The name as it goes into the Resource Graph query that looks it up.
    let query = ResourcesQuery::new()
        .filter([KqlCondition::equals_ignore_case(KqlColumn::Name, text)])
        .to_kql();
    match query {
        Ok(kql) => {
            let literal = kql
                .strip_prefix("Resources | where name =~ ")
                .expect("the query starts with the condition");
            assert_eq!(unquote(literal).as_deref(), Some(text), "{kql}");
        }
        Err(_) => assert!(text.chars().any(char::is_control)),
    }
});
