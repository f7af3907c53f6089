//! Every example of the REST contract, replayed against the emulator over HTTPS.
//!
//! Each example file of `../shared/azure-rest/` (vendored under `azure-rest-examples/`,
//! with its licence) gives a request and the response Azure sends. The emulator is seeded
//! with a world holding the example's resources (same subscription ids, groups and names;
//! placeholders such as `subid` become GUIDs), the request is sent, and the response must
//! have the example's status code and *shape*: the same keys with the same JSON types, at
//! every depth. Values (ids, times, GUIDs) may differ. Where the emulator does not model
//! something an example shows (availability sets, DDoS plans…), or adds a field the spec
//! defines but the example leaves out, the difference is listed by path next to the
//! example, so every gap is written down rather than hidden by a lenient comparison.

mod resources_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use jit_emulator::{EmulatorOptions, World};
use reqwest::Method;
use resources_support::Arm;
use serde_json::{Map, Value, json};

/// Where the vendored examples live.
fn vendored() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/azure-rest-examples")
}

/// The shared contract beside the project, when this checkout has it.
fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/azure-rest")
}

const COMPUTE_SUBSCRIPTION: &str = "5a6c3f1e-2b4d-4c8e-9f10-00000000c0e1";
const NETWORK_SUBSCRIPTION: &str = "5a6c3f1e-2b4d-4c8e-9f10-00000000ae71";

/// The example worlds: the resources each example names.
const EXAMPLES_WORLD: &str = r#"
tenant_id = "31c75423-32d6-4322-88b7-c478bdde4858"
security_home_region = "centralus"

[[principals]]
kind = "service_principal"
name = "examples"
client_id = "0b5e1c7a-2d4f-4f83-9a6e-5c1d7e2f8a90"
object_id = "4c8e2a1f-6b3d-4a5e-8f7c-1d9e0a2b3c4d"

# Microsoft.Security examples.
[[subscriptions]]
id = "20ff7fc3-e762-44dd-bd96-b71116dcdc23"
display_name = "Example Subscription"

[[subscriptions.resource_groups]]
name = "myRg1"
location = "westeurope"
virtual_networks = [{ name = "myRg1-vnet", address_space = ["10.0.0.0/16"], subnets = [{ name = "default", address_prefix = "10.0.0.0/24" }] }]
network_security_groups = [{ name = "vm1-nsg" }]
network_interfaces = [{ name = "vm1-nic", private_ip_address = "10.0.0.4", subnet = "myRg1-vnet/default", network_security_group = "vm1-nsg" }]
virtual_machines = [{ name = "vm1", os = "Windows", network_interfaces = ["vm1-nic"] }]

[[subscriptions.resource_groups.jit_policies]]
name = "default"
virtual_machines = [{ virtual_machine = "vm1", ports = [
  { number = 22, protocol = "*", allowed_source_address_prefix = "*", max_request_access_duration = "PT3H" },
  { number = 3389, protocol = "*", allowed_source_address_prefix = "*", max_request_access_duration = "PT3H" },
] }]

# Microsoft.Compute examples (`{subscription-id}`).
[[subscriptions]]
id = "5a6c3f1e-2b4d-4c8e-9f10-00000000c0e1"
display_name = "Compute examples"

[[subscriptions.resource_groups]]
name = "myResourceGroup"
location = "westus"
virtual_networks = [{ name = "myVNet", address_space = ["10.1.0.0/16"], subnets = [{ name = "default", address_prefix = "10.1.0.0/24" }] }]
network_interfaces = [{ name = "myNIC", private_ip_address = "10.1.0.4", subnet = "myVNet/default" }]
virtual_machines = [{ name = "myVM", os = "Windows", size = "Standard_DS3_v2", admin_username = "admin", network_interfaces = ["myNIC"] }]

# Microsoft.Network examples (`subid`).
[[subscriptions]]
id = "5a6c3f1e-2b4d-4c8e-9f10-00000000ae71"
display_name = "Network examples"

[[subscriptions.resource_groups]]
name = "rg1"
location = "westus"
virtual_networks = [{ name = "rg1-vnet", location = "eastus", address_space = ["172.20.0.0/16"], subnets = [{ name = "default", address_prefix = "172.20.2.0/24" }] }]
network_security_groups = [
  { name = "nsg" },
  { name = "testnsg", security_rules = [{ name = "rule1", priority = 130, access = "Allow", destination_port_range = "80" }] },
]
public_ip_addresses = [
  { name = "test-ip" },
  { name = "testDNS-ip", allocated = false },
  { name = "ip03", domain_name_label = "testlbl" },
  { name = "ip04", domain_name_label = "testlbl4" },
]
network_interfaces = [
  { name = "test-nic", location = "eastus", private_ip_address = "172.20.2.4", subnet = "rg1-vnet/default", public_ip_address = "test-ip", network_security_group = "nsg" },
  { name = "testDNS649", private_ip_address = "172.20.2.5", subnet = "rg1-vnet/default", public_ip_address = "testDNS-ip" },
  { name = "ip03-nic", private_ip_address = "172.20.2.6", subnet = "rg1-vnet/default", public_ip_address = "ip03" },
  { name = "ip04-nic", private_ip_address = "172.20.2.7", subnet = "rg1-vnet/default", public_ip_address = "ip04" },
]
virtual_machines = [{ name = "vm1", os = "Linux", network_interfaces = ["test-nic"] }]

# Microsoft.ResourceGraph examples.
[[subscriptions]]
id = "cfbbd179-59d2-4052-aa06-9270a38aa9d6"
display_name = "Resource Graph examples"

[[subscriptions.resource_groups]]
name = "RG1"
location = "centralus"
virtual_networks = [{ name = "vnet1", address_space = ["10.2.0.0/16"], subnets = [{ name = "default", address_prefix = "10.2.0.0/24" }] }]
network_interfaces = [{ name = "myVm1-nic", private_ip_address = "10.2.0.4", subnet = "vnet1/default" }]
virtual_machines = [{ name = "myVm1", os = "Linux", network_interfaces = ["myVm1-nic"] }]

[[subscriptions.resource_groups]]
name = "RG2"
location = "eastus"
virtual_networks = [{ name = "vnet2", address_space = ["10.3.0.0/16"], subnets = [{ name = "default", address_prefix = "10.3.0.0/24" }] }]
network_interfaces = [{ name = "myVirtualMachine-nic", private_ip_address = "10.3.0.4", subnet = "vnet2/default" }]
virtual_machines = [{ name = "myVirtualMachine", os = "Linux", network_interfaces = ["myVirtualMachine-nic"] }]

[[subscriptions.resource_groups]]
name = "RG3"
location = "eastus"
virtual_networks = [{ name = "test-vnet", address_space = ["10.4.0.0/16"], subnets = [{ name = "default", address_prefix = "10.4.0.0/24" }] }]
network_interfaces = [
  { name = "testVm-nic", private_ip_address = "10.4.0.4", subnet = "test-vnet/default" },
  { name = "test-vm-2-nic", private_ip_address = "10.4.0.5", subnet = "test-vnet/default" },
  { name = "test-vm-3-nic", private_ip_address = "10.4.0.6", subnet = "test-vnet/default" },
  { name = "test-vm-4-nic", private_ip_address = "10.4.0.7", subnet = "test-vnet/default" },
]
virtual_machines = [
  { name = "testVm", os = "Linux", network_interfaces = ["testVm-nic"] },
  { name = "test-vm-2", os = "Linux", network_interfaces = ["test-vm-2-nic"] },
  { name = "test-vm-3", os = "Linux", network_interfaces = ["test-vm-3-nic"] },
  { name = "test-vm-4", os = "Linux", network_interfaces = ["test-vm-4-nic"] },
]
"#;

/// One example and how to replay it.
struct Replay {
    /// Path under `specification/`.
    file: &'static str,
    method: Method,
    /// The operation's path, `{parameter}`s filled from the example.
    template: &'static str,
    /// Paths (`properties.x`, `value[].y`) whose difference is accepted, with why.
    differences: &'static [&'static str],
    /// A `MinimumSet` example lists only required fields: extra fields are fine.
    minimum_set: bool,
}

const POLICY: &str = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Security/locations/{ascLocation}/jitNetworkAccessPolicies/{jitNetworkAccessPolicyName}";

fn replays() -> Vec<Replay> {
    let plain = |file: &'static str, method: Method, template: &'static str| Replay {
        file,
        method,
        template,
        differences: &[],
        minimum_set: false,
    };
    let nsg_rule_extras: &'static [&'static str] = &[
        // In SecurityRule of the spec; ARM returns them, the example leaves them out.
        "properties.securityRules[].etag",
        "properties.securityRules[].type",
        "properties.securityRules[].properties.sourcePortRanges",
        "properties.securityRules[].properties.destinationPortRanges",
        "properties.securityRules[].properties.sourceAddressPrefixes",
        "properties.securityRules[].properties.destinationAddressPrefixes",
        "properties.defaultSecurityRules[].type",
        "properties.defaultSecurityRules[].properties.sourcePortRanges",
        "properties.defaultSecurityRules[].properties.destinationPortRanges",
        "properties.defaultSecurityRules[].properties.sourceAddressPrefixes",
        "properties.defaultSecurityRules[].properties.destinationAddressPrefixes",
    ];
    vec![
        plain(
            "security/resource-manager/Microsoft.Security/preview/2015-06-01-preview/examples/Locations/GetLocations_example.json",
            Method::GET,
            "/subscriptions/{subscriptionId}/providers/Microsoft.Security/locations",
        ),
        plain(
            "security/resource-manager/Microsoft.Security/preview/2015-06-01-preview/examples/Locations/GetLocation_example.json",
            Method::GET,
            "/subscriptions/{subscriptionId}/providers/Microsoft.Security/locations/{ascLocation}",
        ),
        Replay {
            // Listed before any initiate: `requests` is empty and compares with any array.
            file: "security/resource-manager/Microsoft.Security/stable/2020-01-01/examples/JitNetworkAccessPolicies/GetJitNetworkAccessPoliciesSubscription_example.json",
            method: Method::GET,
            template: "/subscriptions/{subscriptionId}/providers/Microsoft.Security/jitNetworkAccessPolicies",
            differences: &[],
            minimum_set: false,
        },
        plain(
            "security/resource-manager/Microsoft.Security/stable/2020-01-01/examples/JitNetworkAccessPolicies/GetJitNetworkAccessPoliciesSubscriptionLocation_example.json",
            Method::GET,
            "/subscriptions/{subscriptionId}/providers/Microsoft.Security/locations/{ascLocation}/jitNetworkAccessPolicies",
        ),
        plain(
            "security/resource-manager/Microsoft.Security/stable/2020-01-01/examples/JitNetworkAccessPolicies/GetJitNetworkAccessPoliciesResourceGroup_example.json",
            Method::GET,
            "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Security/jitNetworkAccessPolicies",
        ),
        plain(
            "security/resource-manager/Microsoft.Security/stable/2020-01-01/examples/JitNetworkAccessPolicies/GetJitNetworkAccessPoliciesResourceGroupLocation_example.json",
            Method::GET,
            "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Security/locations/{ascLocation}/jitNetworkAccessPolicies",
        ),
        plain(
            "security/resource-manager/Microsoft.Security/stable/2020-01-01/examples/JitNetworkAccessPolicies/GetJitNetworkAccessPolicy_example.json",
            Method::GET,
            POLICY,
        ),
        plain(
            "security/resource-manager/Microsoft.Security/stable/2020-01-01/examples/JitNetworkAccessPolicies/CreateJitNetworkAccessPolicy_example.json",
            Method::PUT,
            POLICY,
        ),
        plain(
            "security/resource-manager/Microsoft.Security/stable/2020-01-01/examples/JitNetworkAccessPolicies/InitiateJitNetworkAccessPolicy_example.json",
            Method::POST,
            "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Security/locations/{ascLocation}/jitNetworkAccessPolicies/{jitNetworkAccessPolicyName}/{jitNetworkAccessPolicyInitiateType}",
        ),
        plain(
            "security/resource-manager/Microsoft.Security/Security/stable/2020-01-01/examples/JitNetworkAccessPolicies/InitiateJitNetworkAccessPolicy_example.json",
            Method::POST,
            "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Security/locations/{ascLocation}/jitNetworkAccessPolicies/{jitNetworkAccessPolicyName}/{jitNetworkAccessPolicyInitiateType}",
        ),
        // Again, now that the policy holds requests to compare with the example's.
        plain(
            "security/resource-manager/Microsoft.Security/stable/2020-01-01/examples/JitNetworkAccessPolicies/GetJitNetworkAccessPolicy_example.json",
            Method::GET,
            POLICY,
        ),
        plain(
            "security/resource-manager/Microsoft.Security/stable/2020-01-01/examples/JitNetworkAccessPolicies/DeleteJitNetworkAccessPolicy_example.json",
            Method::DELETE,
            POLICY,
        ),
        Replay {
            file: "compute/resource-manager/Microsoft.Compute/ComputeRP/stable/2024-07-01/examples/virtualMachineExamples/VirtualMachine_Get.json",
            method: Method::GET,
            template: "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/virtualMachines/{vmName}",
            differences: &[
                // Features the emulator does not model.
                "tags",
                "resources",
                "managedBy",
                "properties.availabilitySet",
                "properties.proximityPlacementGroup",
                "properties.applicationProfile",
                "properties.userData",
                "properties.extensionsTimeBudget",
                "properties.diagnosticsProfile.bootDiagnostics.storageUri",
                // NetworkInterfaceReference.properties.primary: in the spec, not the example.
                "properties.networkProfile.networkInterfaces[].properties",
            ],
            minimum_set: false,
        },
        Replay {
            file: "compute/resource-manager/Microsoft.Compute/ComputeRP/stable/2024-07-01/examples/virtualMachineExamples/VirtualMachine_ListAll_MinimumSet_Gen.json",
            method: Method::GET,
            template: "/subscriptions/{subscriptionId}/providers/Microsoft.Compute/virtualMachines",
            differences: &[],
            minimum_set: true,
        },
        Replay {
            file: "network/resource-manager/Microsoft.Network/stable/2024-05-01/examples/NetworkInterfaceGet.json",
            method: Method::GET,
            template: "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/networkInterfaces/{networkInterfaceName}",
            differences: &["properties.dscpConfiguration"],
            minimum_set: false,
        },
        Replay {
            file: "network/resource-manager/Microsoft.Network/stable/2024-05-01/examples/PublicIpAddressGet.json",
            method: Method::GET,
            template: "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/publicIPAddresses/{publicIpAddressName}",
            differences: &["properties.ddosSettings.ddosProtectionPlan"],
            minimum_set: false,
        },
        plain(
            "network/resource-manager/Microsoft.Network/stable/2024-05-01/examples/PublicIpAddressList.json",
            Method::GET,
            "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/publicIPAddresses",
        ),
        Replay {
            file: "network/resource-manager/Microsoft.Network/stable/2024-05-01/examples/NetworkSecurityGroupGet.json",
            method: Method::GET,
            template: "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/networkSecurityGroups/{networkSecurityGroupName}",
            differences: nsg_rule_extras,
            minimum_set: false,
        },
        Replay {
            file: "resources/resource-manager/Microsoft.Resources/stable/2022-12-01/examples/GetSubscriptions.json",
            method: Method::GET,
            template: "/subscriptions",
            // Free-form; the emulated subscriptions have no tags.
            differences: &["value[].tags"],
            minimum_set: false,
        },
        plain(
            "resourcegraph/resource-manager/Microsoft.ResourceGraph/stable/2024-04-01/examples/ResourcesFilterQuery.json",
            Method::POST,
            "/providers/Microsoft.ResourceGraph/resources",
        ),
        plain(
            "resourcegraph/resource-manager/Microsoft.ResourceGraph/stable/2024-04-01/examples/ResourcesFirstPageQuery.json",
            Method::POST,
            "/providers/Microsoft.ResourceGraph/resources",
        ),
        plain(
            "resourcegraph/resource-manager/Microsoft.ResourceGraph/stable/2024-04-01/examples/ResourcesNextPageQuery.json",
            Method::POST,
            "/providers/Microsoft.ResourceGraph/resources",
        ),
    ]
}

/// The JSON type of a value, for shape comparison.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The keys every element of `items` has, and the keys some have.
fn element_keys(items: &[Value]) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut all: Option<BTreeSet<String>> = None;
    let mut any = BTreeSet::new();
    for item in items {
        let keys: BTreeSet<String> = item
            .as_object()
            .map(|object| object.keys().cloned().collect())
            .unwrap_or_default();
        any.extend(keys.iter().cloned());
        all = Some(match all {
            Some(all) => all.intersection(&keys).cloned().collect(),
            None => keys,
        });
    }
    (all.unwrap_or_default(), any)
}

struct Comparison<'a> {
    differences: &'a [&'a str],
    minimum_set: bool,
    mismatches: Vec<String>,
}

impl Comparison<'_> {
    fn accepted(&self, path: &str) -> bool {
        self.differences.contains(&path)
    }

    /// Compares `actual` with the examples `expected` (several when they are elements of
    /// an array: a key is required if every element has it, allowed if any has it).
    fn compare(&mut self, path: &str, expected: &[Value], actual: &Value) {
        if self.accepted(path) || expected.is_empty() {
            return;
        }
        let expected_kinds: BTreeSet<&str> = expected.iter().map(kind).collect();
        if !expected_kinds.contains(kind(actual)) && !expected_kinds.contains("null") {
            self.mismatches.push(format!(
                "{path}: expected {expected_kinds:?}, got {} ({actual})",
                kind(actual)
            ));
            return;
        }
        match actual {
            Value::Object(object) => self.compare_object(path, expected, object),
            Value::Array(items) => {
                let expected_items: Vec<Value> = expected
                    .iter()
                    .filter_map(Value::as_array)
                    .flatten()
                    .cloned()
                    .collect();
                let element_path = format!("{path}[]");
                for item in items {
                    self.compare(&element_path, &expected_items, item);
                }
            }
            _ => {}
        }
    }

    fn compare_object(&mut self, path: &str, expected: &[Value], actual: &Map<String, Value>) {
        let (required, allowed) = element_keys(expected);
        let child = |key: &str| {
            if path.is_empty() {
                key.to_owned()
            } else {
                format!("{path}.{key}")
            }
        };
        for key in &required {
            if !actual.contains_key(key) && !self.accepted(&child(key)) {
                self.mismatches.push(format!("{}: missing", child(key)));
            }
        }
        for (key, value) in actual {
            let child_path = child(key);
            if !allowed.contains(key) {
                if !self.minimum_set && !self.accepted(&child_path) {
                    self.mismatches
                        .push(format!("{child_path}: not in the example ({value})"));
                }
                continue;
            }
            let expected_values: Vec<Value> = expected
                .iter()
                .filter_map(|item| item.get(key))
                .cloned()
                .collect();
            self.compare(&child_path, &expected_values, value);
        }
    }
}

/// Replaces `{name}` in the template with the example's parameters.
fn fill(template: &str, parameters: &Map<String, Value>) -> String {
    let mut path = template.to_owned();
    for (name, value) in parameters {
        if let Some(text) = value.as_str() {
            let text = match (name.as_str(), text) {
                ("subscriptionId", "{subscription-id}") => COMPUTE_SUBSCRIPTION,
                ("subscriptionId", "subid") => NETWORK_SUBSCRIPTION,
                _ => text,
            };
            path = path.replace(&format!("{{{name}}}"), text);
        }
    }
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_answers_with_its_status_and_shape() {
    let world = World::from_toml(EXAMPLES_WORLD).expect("the examples world is valid");
    let arm = Arm::start_with(
        world,
        EmulatorOptions {
            initiating_delay: jiff::SignedDuration::ZERO,
            ..EmulatorOptions::default()
        },
    )
    .await;
    let mut failures = Vec::new();
    let mut skip_token: Option<String> = None;
    for replay in replays() {
        let path = vendored().join("specification").join(replay.file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let example: Value = serde_json::from_str(&text).expect("examples are JSON");
        let parameters = example["parameters"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut url = fill(replay.template, &parameters);
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for name in ["api-version", "$expand"] {
            if let Some(value) = parameters.get(name).and_then(Value::as_str) {
                query.append_pair(name, value);
            }
        }
        url = format!("{url}?{}", query.finish());
        let mut body = parameters
            .get("body")
            .or_else(|| parameters.get("query"))
            .or_else(|| parameters.get("parameters"))
            .cloned();
        // Times in the examples are in the past; requests end an hour from now.
        if let Some(body) = &mut body
            && let Some(ports) = body
                .pointer_mut("/virtualMachines/0/ports")
                .and_then(Value::as_array_mut)
        {
            for port in ports {
                if port.get("endTimeUtc").is_some() {
                    let end = arm
                        .emulator
                        .clock()
                        .now()
                        .checked_add(jiff::SignedDuration::from_hours(1))
                        .expect("in range");
                    port["endTimeUtc"] = json!(end.to_string());
                }
            }
        }
        // The next page continues from the emulator's own first page.
        if let (Some(body), Some(token)) = (&mut body, &skip_token)
            && let Some(options) = body.get_mut("options").and_then(Value::as_object_mut)
            && options.contains_key("$skipToken")
        {
            options.insert("$skipToken".to_owned(), json!(token));
        }
        let paged = replay.file.ends_with("GetSubscriptions.json");
        if paged {
            // The example shows a nextLink: page so that one is there.
            arm.emulator.set_page_size(Some(1));
        }
        let responses = example["responses"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (status, response) in &responses {
            let reply = arm.send(replay.method.clone(), &url, body.as_ref()).await;
            let name = format!("{} ({status})", replay.file);
            if reply.status.to_string() != *status {
                failures.push(format!(
                    "{name}: status {} instead of {status}: {}",
                    reply.status, reply.body
                ));
                continue;
            }
            if let Some(token) = reply.body.get("$skipToken").and_then(Value::as_str) {
                skip_token = Some(token.to_owned());
            }
            let mut comparison = Comparison {
                differences: replay.differences,
                minimum_set: replay.minimum_set,
                mismatches: Vec::new(),
            };
            match response.get("body") {
                Some(expected) => {
                    comparison.compare("", std::slice::from_ref(expected), &reply.body)
                }
                None if reply.body.is_null() => {}
                None => comparison
                    .mismatches
                    .push(format!("expected no body, got {}", reply.body)),
            }
            failures.extend(
                comparison
                    .mismatches
                    .into_iter()
                    .map(|mismatch| format!("{name}: {mismatch}")),
            );
        }
        if paged {
            arm.emulator.set_page_size(None);
        }
    }
    assert!(
        failures.is_empty(),
        "{} difference(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn example_files(root: &Path) -> BTreeSet<String> {
    fn walk(directory: &Path, root: &Path, found: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(directory) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, found);
            } else if path
                .extension()
                .is_some_and(|extension| extension == "json")
                && path.components().any(|part| part.as_os_str() == "examples")
                && let Ok(relative) = path.strip_prefix(root)
            {
                found.insert(relative.to_string_lossy().into_owned());
            }
        }
    }
    let mut found = BTreeSet::new();
    walk(
        &root.join("specification"),
        &root.join("specification"),
        &mut found,
    );
    found
}

#[test]
fn every_vendored_example_is_replayed() {
    let replayed: BTreeSet<String> = replays()
        .iter()
        .map(|replay| replay.file.to_owned())
        .collect();
    let vendored_files = example_files(&vendored());
    assert!(
        !vendored_files.is_empty(),
        "no examples under {}",
        vendored().display()
    );
    let missing: Vec<&String> = vendored_files.difference(&replayed).collect();
    assert!(missing.is_empty(), "examples not replayed: {missing:?}");
    let unknown: Vec<&String> = replayed.difference(&vendored_files).collect();
    assert!(
        unknown.is_empty(),
        "replays without a vendored file: {unknown:?}"
    );
}

#[test]
fn the_vendored_examples_match_the_shared_contract_when_it_is_present() {
    let shared_root = shared();
    if !shared_root.join("specification").is_dir() {
        // A checkout without ../shared: the vendored copy is the contract.
        return;
    }
    let shared_files = example_files(&shared_root);
    let vendored_files = example_files(&vendored());
    assert_eq!(
        shared_files, vendored_files,
        "the vendored examples differ in number from ../shared/azure-rest; copy them again"
    );
    for file in shared_files {
        let original = std::fs::read(shared_root.join("specification").join(&file));
        let copy = std::fs::read(vendored().join("specification").join(&file));
        assert!(
            matches!((&original, &copy), (Ok(a), Ok(b)) if a == b),
            "{file} differs from ../shared/azure-rest"
        );
    }
}
