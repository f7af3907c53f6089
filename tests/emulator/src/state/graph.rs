//! The Resource Graph view of the state: one row per resource with ARG's columns, built
//! once and kept until the resources change, with indexes on the columns queries filter
//! on.
//!
//! Rendering thousands of resources to JSON per query is what made Resource Graph slow
//! (seconds for 5,000 VMs) and what made memory grow. The view is rebuilt only when the
//! generation of the resources moves (any change to them, see `super::tracked`), and a
//! row's `properties` (nearly all of its size) is rendered the first time a query takes
//! that row, then kept with the view: finding one VM among thousands renders one VM.
//! Rows hold their values in shared cells, so queries pass them along without copying.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use super::model::{Placement, Resources};
use super::render::Associations;

/// The columns of the `Resources` table, and whether each holds strings (the others are
/// dynamic).
pub(crate) const COLUMNS: &[(&str, bool)] = &[
    ("id", true),
    ("name", true),
    ("type", true),
    ("tenantId", true),
    ("kind", true),
    ("location", true),
    ("resourceGroup", true),
    ("subscriptionId", true),
    ("managedBy", true),
    ("sku", false),
    ("plan", false),
    ("properties", false),
    ("tags", false),
    ("identity", false),
    ("zones", false),
    ("extendedLocation", false),
];

/// Where `properties` is among [`COLUMNS`].
const PROPERTIES: usize = 11;

/// The columns with an index (case-insensitive: keys are lower-cased).
pub(crate) const INDEXED: &[&str] = &[
    "id",
    "name",
    "type",
    "location",
    "resourceGroup",
    "subscriptionId",
];

/// A row: one shared cell per column of [`COLUMNS`].
pub(crate) type GraphRow = Vec<Arc<Value>>;

/// The kinds of resource in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    VirtualMachine,
    ClassicVirtualMachine,
    NetworkInterface,
    VirtualNetwork,
    NetworkSecurityGroup,
    PublicIpAddress,
    AzureFirewall,
}

/// One resource's row: every column but `properties` at once, `properties` when first
/// needed.
#[derive(Debug)]
struct Entry {
    kind: Kind,
    /// The resource's key in the state.
    key: String,
    cells: GraphRow,
    properties: OnceLock<Arc<Value>>,
}

/// The `Resources` table of every subscription, as of one generation of the state.
#[derive(Debug)]
pub(crate) struct GraphTable {
    /// The generation of the resources it was built from.
    pub generation: u64,
    /// In id order (lower-cased), as ARG answers without `order by`.
    entries: Vec<Entry>,
    /// Lower-cased subscription id of each row.
    pub subscriptions: Vec<String>,
    /// Column → lower-cased value → row positions (ascending).
    pub indexes: HashMap<&'static str, HashMap<String, Vec<usize>>>,
    /// What VMs list in `osProfile`.
    client_public_key: Option<String>,
    /// NICs of each subnet, NICs and subnets of each NSG (for rendering them).
    associations: Associations,
}

impl GraphTable {
    /// Builds the table from the resources (`client_public_key`: what VMs list in
    /// `osProfile`), leaving out the resources whose lower-cased ids are in `unindexed`
    /// (Resource Graph has not caught up with them yet).
    pub(crate) fn build(
        resources: &Resources,
        client_public_key: Option<&str>,
        unindexed: &HashSet<String>,
        generation: u64,
    ) -> GraphTable {
        let null = Arc::new(Value::Null);
        let empty_text = Arc::new(Value::String(String::new()));
        let empty_bag = Arc::new(json!({}));
        let tenant = Arc::new(Value::String(resources.tenant_id.clone()));
        let mut entries: Vec<(String, Entry)> = Vec::new();
        let mut add = |placement: &Placement, kind: Kind, provider_type: &str, key: &String| {
            let lower_id = placement.id.to_ascii_lowercase();
            if unindexed.contains(&lower_id) {
                return;
            }
            let text = |value: &str| Arc::new(Value::String(value.to_owned()));
            let cells = vec![
                text(&placement.id),
                text(&placement.name),
                text(&provider_type.to_ascii_lowercase()),
                tenant.clone(),
                empty_text.clone(),
                text(&placement.location),
                text(&placement.resource_group.to_ascii_lowercase()),
                text(&placement.subscription_id),
                empty_text.clone(),
                null.clone(),
                null.clone(),
                null.clone(),
                empty_bag.clone(),
                null.clone(),
                null.clone(),
                null.clone(),
            ];
            entries.push((
                lower_id,
                Entry {
                    kind,
                    key: key.clone(),
                    cells,
                    properties: OnceLock::new(),
                },
            ));
        };
        for (key, vm) in &resources.virtual_machines {
            add(
                &vm.placement,
                Kind::VirtualMachine,
                "Microsoft.Compute/virtualMachines",
                key,
            );
        }
        for (key, vm) in &resources.classic_virtual_machines {
            add(
                &vm.placement,
                Kind::ClassicVirtualMachine,
                "Microsoft.ClassicCompute/virtualMachines",
                key,
            );
        }
        for (key, nic) in &resources.network_interfaces {
            add(
                &nic.placement,
                Kind::NetworkInterface,
                "Microsoft.Network/networkInterfaces",
                key,
            );
        }
        for (key, network) in &resources.virtual_networks {
            add(
                &network.placement,
                Kind::VirtualNetwork,
                "Microsoft.Network/virtualNetworks",
                key,
            );
        }
        for (key, nsg) in &resources.network_security_groups {
            add(
                &nsg.placement,
                Kind::NetworkSecurityGroup,
                "Microsoft.Network/networkSecurityGroups",
                key,
            );
        }
        for (key, ip) in &resources.public_ip_addresses {
            add(
                &ip.placement,
                Kind::PublicIpAddress,
                "Microsoft.Network/publicIPAddresses",
                key,
            );
        }
        for (key, firewall) in &resources.azure_firewalls {
            add(
                &firewall.placement,
                Kind::AzureFirewall,
                "Microsoft.Network/azureFirewalls",
                key,
            );
        }
        entries.sort_by(|left, right| left.0.cmp(&right.0));
        let entries: Vec<Entry> = entries.into_iter().map(|(_, entry)| entry).collect();
        let mut indexes: HashMap<&'static str, HashMap<String, Vec<usize>>> = HashMap::new();
        for column in INDEXED {
            let Some(position) = COLUMNS.iter().position(|(name, _)| name == column) else {
                continue;
            };
            let index = indexes.entry(column).or_default();
            for (row_index, entry) in entries.iter().enumerate() {
                if let Some(value) = entry.cells[position].as_str() {
                    index
                        .entry(value.to_lowercase())
                        .or_default()
                        .push(row_index);
                }
            }
        }
        let subscription_column = COLUMNS
            .iter()
            .position(|(name, _)| *name == "subscriptionId")
            .unwrap_or(7);
        let subscriptions = entries
            .iter()
            .map(|entry| {
                entry.cells[subscription_column]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            })
            .collect();
        GraphTable {
            generation,
            entries,
            subscriptions,
            indexes,
            client_public_key: client_public_key.map(str::to_owned),
            associations: resources.associations(),
        }
    }

    /// How many rows the table has.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Row `index`; with `properties`, that column rendered from `resources` (the same
    /// generation the table was built from) the first time it is asked for, else left
    /// null. `None` past the end.
    pub(crate) fn row(
        &self,
        index: usize,
        resources: &Resources,
        properties: bool,
    ) -> Option<GraphRow> {
        let entry = self.entries.get(index)?;
        let mut row = entry.cells.clone();
        if properties {
            let rendered = entry
                .properties
                .get_or_init(|| Arc::new(self.properties(entry, resources)));
            if let Some(cell) = row.get_mut(PROPERTIES) {
                *cell = rendered.clone();
            }
        }
        Some(row)
    }

    /// `properties` of a resource as ARM renders it (plus, for VMs, what ARG adds).
    fn properties(&self, entry: &Entry, resources: &Resources) -> Value {
        let key = entry.key.as_str();
        let rendered = match entry.kind {
            Kind::VirtualMachine => resources.virtual_machines.get(key).map(|vm| {
                let mut rendered = resources.render_virtual_machine(
                    vm,
                    self.client_public_key.as_deref(),
                    false,
                    vm.created,
                );
                // What ARG adds to a VM: `properties.extended.instanceView`.
                let view = resources.render_instance_view(vm, vm.created);
                rendered["properties"]["extended"] = json!({
                    "instanceView": {
                        "computerName": view["computerName"],
                        "osName": view["osName"],
                        "osVersion": view["osVersion"],
                        "hyperVGeneration": view["hyperVGeneration"],
                        "powerState": {
                            "code": vm.power.code(),
                            "level": "Info",
                            "displayStatus": vm.power.display()
                        }
                    }
                });
                rendered
            }),
            Kind::ClassicVirtualMachine => resources
                .classic_virtual_machines
                .get(key)
                .map(|vm| resources.render_classic_virtual_machine(vm)),
            Kind::NetworkInterface => resources
                .network_interfaces
                .get(key)
                .map(|nic| resources.render_network_interface(nic)),
            Kind::VirtualNetwork => resources
                .virtual_networks
                .get(key)
                .map(|network| resources.render_virtual_network_with(network, &self.associations)),
            Kind::NetworkSecurityGroup => resources
                .network_security_groups
                .get(key)
                .map(|nsg| resources.render_network_security_group_with(nsg, &self.associations)),
            Kind::PublicIpAddress => resources
                .public_ip_addresses
                .get(key)
                .map(|ip| resources.render_public_ip_address(ip)),
            Kind::AzureFirewall => resources
                .azure_firewalls
                .get(key)
                .map(|firewall| resources.render_azure_firewall(firewall)),
        };
        rendered
            .and_then(|mut rendered| rendered.get_mut("properties").map(Value::take))
            .unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_in_id_order_and_render_properties_when_taken() {
        let world = crate::world::World::default_world();
        let resources = super::super::materialise::materialise(
            &world,
            &super::super::materialise::Bindings::default(),
            jiff::Timestamp::UNIX_EPOCH,
        );
        let Ok(resources) = resources else {
            panic!("the default world materialises");
        };
        let table = GraphTable::build(&resources, None, &HashSet::new(), 7);
        assert_eq!(table.generation, 7);
        let rendered = |table: &GraphTable| {
            table
                .entries
                .iter()
                .filter(|entry| entry.properties.get().is_some())
                .count()
        };
        assert_eq!(rendered(&table), 0);
        assert!(
            table
                .row(0, &resources, false)
                .is_some_and(|row| row[PROPERTIES].is_null())
        );
        assert_eq!(rendered(&table), 0);
        let vm = table.indexes["name"]["batch-01"][0];
        let row = table.row(vm, &resources, true).unwrap_or_default();
        assert_eq!(
            row[PROPERTIES]["extended"]["instanceView"]["powerState"]["code"],
            "PowerState/deallocated"
        );
        assert_eq!(row[2].as_str(), Some("microsoft.compute/virtualmachines"));
        assert_eq!(row[6].as_str(), Some("rg-web"));
        assert_eq!(rendered(&table), 1, "only the row taken is rendered");
        let ids: Vec<String> = (0..table.len())
            .filter_map(|index| table.row(index, &resources, true))
            .filter_map(|row| row[0].as_str().map(str::to_ascii_lowercase))
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert_eq!(rendered(&table), table.len());
    }
}
