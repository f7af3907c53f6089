//! The Resource Graph query `jit` sends to find a VM with its network
//! (`jit_agent::access::locate::located_query`), parsed and run by the emulator's KQL
//! subset on the default world, without a server. The emulator implements KQL as
//! Microsoft documents it and refuses what it does not implement, so if the client starts
//! using an operator the subset lacks, or one that means something else, these fail.

use jit_agent::access::details::{GraphDetails, GraphRow, VmDetails};
use jit_agent::access::locate::{Scope, VmQuery, located_query};
use jit_agent::azure::models::{OperatingSystemTypes, PowerState};
use jit_emulator::World;
use jit_emulator::providers::query_world;
use serde_json::Value;

/// The client's query for `vm` over every subscription, as text, and the rows the
/// emulator answers as `jit` reads them.
fn client_rows(vm: &str) -> (String, Vec<GraphRow>) {
    let query = VmQuery::parse(vm).unwrap_or_else(|error| panic!("{vm}: {error}"));
    let scope = Scope {
        subscription_ids: Vec::new(),
        resource_group: None,
    };
    let text = located_query(&scope, &query)
        .to_kql()
        .unwrap_or_else(|error| panic!("the client renders its query: {error}"));
    let rows = query_world(&World::default_world(), &text)
        .unwrap_or_else(|error| panic!("the emulator runs {text}: {error}"));
    let rows = rows
        .into_iter()
        .map(|row| {
            let object = Value::Object(row);
            serde_json::from_value(object.clone())
                .unwrap_or_else(|error| panic!("jit reads the row {object}: {error}"))
        })
        .collect();
    (text, rows)
}

#[test]
fn the_client_query_uses_the_documented_operators_and_finds_the_network() {
    let (text, rows) = client_rows("api-01");
    for operator in [
        "Resources | where ",
        "| extend ",
        "| mv-expand with_itemindex",
        "| join kind=leftouter (Resources",
        "| project ",
        "| order by id asc",
    ] {
        assert!(text.contains(operator), "{operator} in {text}");
    }
    assert_eq!(rows.len(), 1, "one VM with one NIC: {rows:#?}");
    let GraphDetails::Complete(details) = VmDetails::from_graph(&rows) else {
        panic!("Resource Graph knows api-01's whole network: {rows:#?}");
    };
    assert_eq!(details.name, "api-01");
    assert_eq!(details.resource_group, "rg-web");
    assert_eq!(details.os, Some(OperatingSystemTypes::Linux));
    assert!(details.is_running(), "{:?}", details.power_state);
    let nic = &details.interfaces[0];
    assert!(
        nic.id
            .to_ascii_lowercase()
            .ends_with("/networkinterfaces/api-01-nic"),
        "{nic:?}"
    );
    assert_eq!(nic.private_ip.as_deref(), Some("10.1.0.4"));
    let public = nic.public_ip.as_ref().expect("a public IP");
    assert!(public.address.is_some(), "{public:?}");
    assert!(
        public
            .fqdn
            .as_deref()
            .is_some_and(|fqdn| fqdn.starts_with("contoso-api-01.")),
        "{public:?}"
    );
    assert!(
        nic.network_security_group_id.as_deref().is_some_and(|id| id
            .to_ascii_lowercase()
            .ends_with("/networksecuritygroups/api-01-nsg")),
        "{nic:?}"
    );
    assert!(
        nic.subnet_id.as_deref().is_some_and(|id| id
            .to_ascii_lowercase()
            .ends_with("/virtualnetworks/vnet-web/subnets/default")),
        "{nic:?}"
    );
}

#[test]
fn the_client_query_by_group_and_by_id_finds_the_same_vm_and_a_stopped_one_says_so() {
    let (_, by_name) = client_rows("rg-web/api-01");
    let id = by_name
        .first()
        .expect("api-01 by group and name")
        .id
        .clone();
    let (_, by_id) = client_rows(&id);
    assert_eq!(by_name, by_id);
    let (_, stopped) = client_rows("batch-01");
    let GraphDetails::Complete(details) = VmDetails::from_graph(&stopped) else {
        panic!("{stopped:#?}");
    };
    assert!(!details.is_running());
    assert_eq!(details.power_state, Some(PowerState::Deallocated));
    let (_, none) = client_rows("no-such-vm");
    assert!(none.is_empty());
}
