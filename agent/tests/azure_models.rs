//! The models against Microsoft's own examples (copied unchanged into
//! `tests/azure-rest-examples/`): every response body parses into its model with the
//! values the example holds, and request bodies survive a round trip unchanged.

use std::path::PathBuf;

use jiff::SignedDuration;
use jit_agent::azure::models::{
    AscLocation, IpAllocationMethod, JitNetworkAccessPolicy, JitNetworkAccessPolicyInitiateRequest,
    JitNetworkAccessRequest, JitPortStatus, JitProtocol, JitStatusReason, NetworkInterface,
    NetworkSecurityGroup, OperatingSystemTypes, Page, PowerState, PublicIpAddress, QueryRequest,
    QueryResponse, SecurityRuleAccess, SecurityRuleDirection, Subscription, SubscriptionState,
    VirtualMachine, VirtualMachineInstanceView, azure_time, parse_duration,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn example(relative: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/azure-rest-examples/specification")
        .join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not JSON: {error}", path.display()))
}

fn response_body(example: &Value, status: &str) -> Value {
    example["responses"][status]["body"].clone()
}

fn parse<T: DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|error| {
        panic!(
            "cannot parse into {}: {error}\n{value:#}",
            std::any::type_name::<T>()
        )
    })
}

const JIT: &str = "security/resource-manager/Microsoft.Security/stable/2020-01-01/examples/JitNetworkAccessPolicies";

#[test]
fn every_jit_list_example_parses_and_round_trips() {
    for file in [
        "GetJitNetworkAccessPoliciesSubscription_example.json",
        "GetJitNetworkAccessPoliciesSubscriptionLocation_example.json",
        "GetJitNetworkAccessPoliciesResourceGroup_example.json",
        "GetJitNetworkAccessPoliciesResourceGroupLocation_example.json",
    ] {
        let body = response_body(&example(&format!("{JIT}/{file}")), "200");
        let page: Page<JitNetworkAccessPolicy> = parse(&body);
        assert!(!page.value.is_empty(), "{file}: no policies");
        for policy in &page.value {
            assert_eq!(policy.name.as_deref(), Some("default"), "{file}");
            assert!(!policy.properties.virtual_machines.is_empty(), "{file}");
        }
        assert_eq!(
            serde_json::to_value(&page).expect("serialises"),
            body,
            "{file}: a policy list must survive a round trip unchanged"
        );
    }
}

#[test]
fn jit_get_example_holds_ports_requests_and_history() {
    let body = response_body(
        &example(&format!("{JIT}/GetJitNetworkAccessPolicy_example.json")),
        "200",
    );
    let policy: JitNetworkAccessPolicy = parse(&body);
    assert_eq!(policy.kind.as_deref(), Some("Basic"));
    assert_eq!(policy.location.as_deref(), Some("westeurope"));
    let vm = &policy.properties.virtual_machines[0];
    assert!(vm.id.ends_with("/virtualMachines/vm1"));
    let ports: Vec<u16> = vm.ports.iter().map(|port| port.number).collect();
    assert_eq!(ports, [22, 3389]);
    assert_eq!(vm.ports[0].protocol, JitProtocol::All);
    assert_eq!(vm.ports[0].allowed_sources(), ["*"]);
    assert_eq!(
        vm.ports[0].max_request_access_duration.to_duration(),
        Ok(SignedDuration::from_hours(3))
    );
    let request = &policy.properties.requests[0];
    assert_eq!(request.requestor.as_deref(), Some("barbara@contoso.com"));
    let port = &request.virtual_machines[0].ports[0];
    assert_eq!(port.status, JitPortStatus::Initiated);
    assert_eq!(port.status_reason, JitStatusReason::UserRequested);
    assert_eq!(
        port.end_time_utc.to_string(),
        "2018-05-17T09:06:45.5691611Z"
    );
    assert_eq!(serde_json::to_value(&policy).expect("serialises"), body);
}

#[test]
fn jit_create_request_and_response_round_trip() {
    let file = example(&format!("{JIT}/CreateJitNetworkAccessPolicy_example.json"));
    let request = file["parameters"]["body"].clone();
    let policy: JitNetworkAccessPolicy = parse(&request);
    assert_eq!(policy.id, None, "the PUT body carries no id");
    assert_eq!(
        serde_json::to_value(&policy).expect("serialises"),
        request,
        "the PUT body must be written exactly as read"
    );
    let response = response_body(&file, "200");
    let created: JitNetworkAccessPolicy = parse(&response);
    assert_eq!(
        created.properties.provisioning_state.as_deref(),
        Some("Succeeded")
    );
    assert_eq!(
        serde_json::to_value(&created).expect("serialises"),
        response
    );
}

#[test]
fn jit_policy_keeps_fields_it_does_not_model() {
    let mut body = response_body(
        &example(&format!("{JIT}/GetJitNetworkAccessPolicy_example.json")),
        "200",
    );
    body["properties"]["futureSetting"] = json!({"enabled": true});
    body["properties"]["virtualMachines"][0]["ports"][0]["newerField"] = json!("kept");
    let policy: JitNetworkAccessPolicy = parse(&body);
    assert_eq!(
        serde_json::to_value(&policy).expect("serialises"),
        body,
        "a read-modify-write must not drop fields Azure added"
    );
}

#[test]
fn jit_initiate_example_with_end_time_round_trips() {
    let file = example(&format!(
        "{JIT}/InitiateJitNetworkAccessPolicy_example.json"
    ));
    let body = file["parameters"]["body"].clone();
    let request: JitNetworkAccessPolicyInitiateRequest = parse(&body);
    let port = &request.virtual_machines[0].ports[0];
    assert_eq!(port.number, 3389);
    assert_eq!(
        port.allowed_source_address_prefix.as_deref(),
        Some("192.127.0.2")
    );
    assert_eq!(port.duration, None);
    assert_eq!(serde_json::to_value(&request).expect("serialises"), body);

    let response: JitNetworkAccessRequest = parse(&response_body(&file, "202"));
    let port = &response.virtual_machines[0].ports[0];
    assert_eq!(
        port.status,
        JitPortStatus::Initiating,
        "Azure reports Initiating although the spec's enum lacks it"
    );
    assert_eq!(
        response.justification.as_deref(),
        Some("testing a new version of the product")
    );
}

#[test]
fn jit_initiate_example_with_duration_only() {
    // The TypeSpec-era example sends `duration` instead of the required `endTimeUtc`.
    // jit always sends `endTimeUtc` (the spec's required field), so such a body is not a
    // valid request for this model; the 202 response still parses.
    let file = example(
        "security/resource-manager/Microsoft.Security/Security/stable/2020-01-01/examples/JitNetworkAccessPolicies/InitiateJitNetworkAccessPolicy_example.json",
    );
    let error = serde_json::from_value::<JitNetworkAccessPolicyInitiateRequest>(
        file["parameters"]["body"].clone(),
    )
    .expect_err("endTimeUtc is required");
    assert!(error.to_string().contains("endTimeUtc"), "{error}");
    let response: JitNetworkAccessRequest = parse(&response_body(&file, "202"));
    assert_eq!(
        response.virtual_machines[0].ports[0].status,
        JitPortStatus::Initiating
    );
}

#[test]
fn unknown_enum_values_are_kept_verbatim() {
    let port = json!({
        "number": 22,
        "endTimeUtc": "2026-01-01T10:00:00Z",
        "status": "Pending",
        "statusReason": "AdministratorRevoked",
        "mappedPort": 50022
    });
    let parsed: jit_agent::azure::models::JitNetworkAccessRequestPort = parse(&port);
    assert_eq!(parsed.status, JitPortStatus::Other("Pending".to_owned()));
    assert_eq!(
        parsed.status_reason,
        JitStatusReason::Other("AdministratorRevoked".to_owned())
    );
    assert_eq!(parsed.mapped_port, Some(50022));
    assert_eq!(serde_json::to_value(&parsed).expect("serialises"), port);

    assert_eq!(
        JitProtocol::from("tcp"),
        JitProtocol::Tcp,
        "known values ignore case"
    );
    assert_eq!(JitProtocol::from("ICMP").as_str(), "ICMP");
}

#[test]
fn delete_example_has_no_body() {
    let file = example(&format!("{JIT}/DeleteJitNetworkAccessPolicy_example.json"));
    assert!(file["responses"]["200"].get("body").is_none());
    assert!(file["responses"]["204"].get("body").is_none());
}

#[test]
fn virtual_machine_get_example() {
    let body = response_body(
        &example(
            "compute/resource-manager/Microsoft.Compute/ComputeRP/stable/2024-07-01/examples/virtualMachineExamples/VirtualMachine_Get.json",
        ),
        "200",
    );
    let vm: VirtualMachine = parse(&body);
    assert_eq!(vm.name.as_deref(), Some("myVM"));
    assert_eq!(vm.os_type(), Some(&OperatingSystemTypes::Windows));
    assert_eq!(vm.admin_username(), Some("admin"));
    assert_eq!(vm.normalized_location().as_deref(), Some("westus"));
    assert_eq!(
        vm.network_interface_ids(),
        [
            "/subscriptions/{subscription-id}/resourceGroups/myResourceGroup/providers/Microsoft.Network/networkInterfaces/{myNIC}"
        ]
    );
    let properties = vm.properties.as_ref().expect("properties");
    assert_eq!(
        properties.vm_id.as_deref(),
        Some("0f47b100-583c-48e3-a4c0-aefc2c9bbcc1")
    );
    assert_eq!(
        properties
            .time_created
            .map(|time| time.to_string())
            .as_deref(),
        Some("2021-06-27T01:02:38.3138469Z")
    );
    assert_eq!(vm.power_state(), None, "no instance view without $expand");
}

#[test]
fn virtual_machine_list_all_example() {
    let body = response_body(
        &example(
            "compute/resource-manager/Microsoft.Compute/ComputeRP/stable/2024-07-01/examples/virtualMachineExamples/VirtualMachine_ListAll_MinimumSet_Gen.json",
        ),
        "200",
    );
    let page: Page<VirtualMachine> = parse(&body);
    assert_eq!(page.value.len(), 2);
    assert_eq!(page.next_link, None);
    assert!(
        page.value
            .iter()
            .all(|vm| vm.location.as_deref() == Some("eastus"))
    );
}

#[test]
fn instance_view_power_state() {
    let view: VirtualMachineInstanceView = parse(&json!({
        "computerName": "web-01",
        "statuses": [
            {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded"},
            {"code": "PowerState/deallocated", "level": "Info", "displayStatus": "VM deallocated"}
        ]
    }));
    assert_eq!(view.power_state(), Some(PowerState::Deallocated));
    assert_eq!(
        PowerState::from_code("PowerState/hibernated"),
        Some(PowerState::Other("hibernated".to_owned()))
    );
    assert_eq!(PowerState::from_code("ProvisioningState/succeeded"), None);
}

#[test]
fn network_interface_get_example() {
    let body = response_body(
        &example(
            "network/resource-manager/Microsoft.Network/stable/2024-05-01/examples/NetworkInterfaceGet.json",
        ),
        "200",
    );
    let nic: NetworkInterface = parse(&body);
    assert_eq!(
        nic.network_security_group_id(),
        Some(
            "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/networkSecurityGroups/nsg"
        )
    );
    let configurations = nic.ip_configurations();
    assert_eq!(configurations.len(), 2);
    let primary = configurations[0];
    assert_eq!(primary.private_ip_address.as_deref(), Some("172.20.2.4"));
    assert_eq!(
        primary.private_ip_allocation_method,
        Some(IpAllocationMethod::Dynamic)
    );
    assert_eq!(
        primary
            .public_ip_address
            .as_ref()
            .and_then(|ip| ip.id.as_deref()),
        Some(
            "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/publicIPAddresses/test-ip"
        )
    );
    assert_eq!(
        primary
            .subnet
            .as_ref()
            .and_then(|subnet| subnet.id.as_deref()),
        Some(
            "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/rg1-vnet/subnets/default"
        )
    );
}

#[test]
fn public_ip_examples() {
    let unallocated: PublicIpAddress = parse(&response_body(
        &example(
            "network/resource-manager/Microsoft.Network/stable/2024-05-01/examples/PublicIpAddressGet.json",
        ),
        "200",
    ));
    assert_eq!(
        unallocated.ip_address(),
        None,
        "a Dynamic IP may have no address yet"
    );
    let page: Page<PublicIpAddress> = parse(&response_body(
        &example(
            "network/resource-manager/Microsoft.Network/stable/2024-05-01/examples/PublicIpAddressList.json",
        ),
        "200",
    ));
    let ip03 = page
        .value
        .iter()
        .find(|ip| ip.name.as_deref() == Some("ip03"))
        .expect("ip03 is listed");
    assert_eq!(ip03.ip_address(), Some("40.85.154.247"));
    assert_eq!(ip03.fqdn(), Some("testlbl.westus.cloudapp.azure.com"));
}

#[test]
fn network_security_group_example() {
    let nsg: NetworkSecurityGroup = parse(&response_body(
        &example(
            "network/resource-manager/Microsoft.Network/stable/2024-05-01/examples/NetworkSecurityGroupGet.json",
        ),
        "200",
    ));
    let properties = nsg.properties.expect("properties");
    assert_eq!(properties.default_security_rules.len(), 6);
    let rule = properties.security_rules[0]
        .properties
        .as_ref()
        .expect("rule properties");
    assert_eq!(rule.destination_port_range.as_deref(), Some("80"));
    assert_eq!(rule.access, Some(SecurityRuleAccess::Allow));
    assert_eq!(rule.priority, Some(130));
    let deny_all = properties
        .default_security_rules
        .iter()
        .find(|rule| rule.name.as_deref() == Some("DenyAllInBound"))
        .and_then(|rule| rule.properties.as_ref())
        .expect("DenyAllInBound");
    assert_eq!(deny_all.access, Some(SecurityRuleAccess::Deny));
    assert_eq!(deny_all.direction, Some(SecurityRuleDirection::Inbound));
    assert_eq!(deny_all.priority, Some(65500));
}

#[test]
fn subscriptions_example() {
    let page: Page<Subscription> = parse(&response_body(
        &example(
            "resources/resource-manager/Microsoft.Resources/stable/2022-12-01/examples/GetSubscriptions.json",
        ),
        "200",
    ));
    assert_eq!(page.value.len(), 2);
    assert_eq!(page.next_link.as_deref(), Some("..."));
    let first = &page.value[0];
    assert_eq!(
        first.subscription_id.as_deref(),
        Some("291bba3f-e0a5-47bc-a099-3bdcb2a50a05")
    );
    assert_eq!(first.display_name.as_deref(), Some("Example Subscription"));
    assert!(
        first
            .state
            .as_ref()
            .is_some_and(SubscriptionState::is_active)
    );
}

#[test]
fn security_location_examples() {
    let page: Page<AscLocation> = parse(&response_body(
        &example(
            "security/resource-manager/Microsoft.Security/preview/2015-06-01-preview/examples/Locations/GetLocations_example.json",
        ),
        "200",
    ));
    assert_eq!(
        page.value[0]
            .properties
            .as_ref()
            .and_then(|properties| properties.home_region_name.as_deref()),
        Some("centralus")
    );
    let single: AscLocation = parse(&response_body(
        &example(
            "security/resource-manager/Microsoft.Security/preview/2015-06-01-preview/examples/Locations/GetLocation_example.json",
        ),
        "200",
    ));
    assert_eq!(single.name.as_deref(), Some("centralus"));
}

#[test]
fn resource_graph_examples() {
    for (file, skip_token) in [
        ("ResourcesFilterQuery.json", None),
        (
            "ResourcesFirstPageQuery.json",
            Some("eyAibm8iOiAibHVjayIsICJidXQiOiAibmljZSIsICJ0cnkiOiAiISIgfQ=="),
        ),
        (
            "ResourcesNextPageQuery.json",
            Some("eyAibm8yIjogImx1Y2syIiwgImJ1dDIiOiAibmljZTIiLCAidHJ5MiI6ICIhIiB9"),
        ),
    ] {
        let file_json = example(&format!(
            "resourcegraph/resource-manager/Microsoft.ResourceGraph/stable/2024-04-01/examples/{file}"
        ));
        let query = file_json["parameters"]["query"].clone();
        let request: QueryRequest = parse(&query);
        assert_eq!(
            serde_json::to_value(&request).expect("serialises"),
            query,
            "{file}: the request must round-trip"
        );
        let response: QueryResponse = parse(&response_body(&file_json, "200"));
        assert_eq!(response.skip_token.as_deref(), skip_token, "{file}");
        assert!(!response.is_truncated(), "{file}");
        assert_eq!(response.data.as_array().map(Vec::len), Some(3), "{file}");
    }
}

#[test]
fn durations_parse_as_azure_writes_them() {
    let minutes = |text: &str| parse_duration(text).map(|duration| duration.as_secs() / 60);
    assert_eq!(minutes("PT3H"), Ok(180));
    assert_eq!(minutes("PT0.5H"), Ok(30));
    assert_eq!(minutes("PT90M"), Ok(90));
    assert_eq!(minutes("PT1H30M"), Ok(90));
    assert_eq!(minutes("P1D"), Ok(1440));
    assert_eq!(minutes("P1DT2H"), Ok(1560));
    assert_eq!(minutes("2h"), Ok(120));
    assert!(
        parse_duration("P1M").is_err(),
        "months have no fixed length"
    );
    assert!(
        parse_duration("-PT1H").is_err(),
        "negative durations are refused"
    );
    assert!(parse_duration("three hours").is_err());
    assert_eq!(
        jit_agent::azure::models::IsoDuration::from(SignedDuration::from_mins(90)).as_str(),
        "PT1H30M"
    );
}

#[test]
fn timestamps_without_an_offset_are_utc() {
    let with_zone = azure_time::parse("2018-05-17T09:06:45.5691611Z").expect("parses");
    let without = azure_time::parse("2018-05-17T09:06:45.5691611").expect("parses");
    assert_eq!(with_zone, without);
    let shifted = azure_time::parse("2018-05-17T11:06:45.5691611+02:00").expect("parses");
    assert_eq!(with_zone, shifted);
    assert!(azure_time::parse("yesterday").is_err());
}
