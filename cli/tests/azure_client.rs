//! `jit_agent::azure` against the emulator, over HTTPS with the emulator's CA, the way a
//! user's machine talks to Azure: every sign-in method, paging, throttling, server
//! errors, an expired token, 403 and 404, and the per-resource clients on the default
//! world.
//!
//! The emulator is an independent implementation of the same REST contract, so these
//! tests catch a misreading of the contract in either. Waits are asserted through the
//! emulator's request log and fault counters and through the retry observer, never
//! through wall-clock thresholds.
//!
//! The Azure CLI and managed-identity credentials read `PATH` and `IDENTITY_*` from the
//! process environment, which a multi-threaded test must not change; those tests run an
//! ignored inner test of this binary in a child process with the environment prepared.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::SignedDuration;
use jit_agent::azure::arm::{
    ArmClient, ArmClientOptions, ArmError, RBAC_DOCS_URL, RetryEvent, RetryOptions, RetryReason,
};
use jit_agent::azure::clients::{
    InstanceViewTypes, JitNetworkAccessPoliciesClient, KqlColumn, KqlCondition,
    NetworkInterfacesClient, NetworkSecurityGroupsClient, PublicIpAddressesClient,
    ResourceGraphClient, ResourcesOptions, ResourcesQuery, SecurityLocationsClient, SortOrder,
    SubnetsClient, SubscriptionsClient, VirtualMachinesClient, VirtualMachinesGetOptions,
};
use jit_agent::azure::cloud::AzureCloud;
use jit_agent::azure::credential::{
    CredentialError, CredentialKind, CredentialOptions, CredentialSource, Keychain, Secret,
    build_credential,
};
use jit_agent::azure::models::{
    JitNetworkAccessPolicy, JitNetworkAccessPolicyInitiatePort,
    JitNetworkAccessPolicyInitiateRequest, JitNetworkAccessPolicyInitiateVirtualMachine,
    JitPortStatus, OperatingSystemTypes, PowerState,
};
use jit_agent::azure::resource_id::same_resource_id;
use jit_agent::azure::transport::{HttpTransport, TransportOptions};
use jit_emulator::{Emulator, FaultKind, FaultSpec, RequestRecord, World};

const EMULATOR_AUDIENCE: &str = "https://management.azure.com/";
const INITIATE_ACTION: &str =
    "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action";

/// What a client needs to reach an emulator: the same three settings a user gives
/// (`JIT_ARM_ENDPOINT`, `JIT_AUTHORITY_HOST`, `JIT_CA_FILE`).
#[derive(Clone, Debug)]
struct Endpoints {
    arm: String,
    authority: String,
    ca_file: PathBuf,
}

impl Endpoints {
    fn of(emulator: &Emulator) -> Self {
        let info = emulator.info();
        Self {
            arm: info.arm_endpoint.clone(),
            authority: info.authority_host.clone(),
            ca_file: info.ca_cert.clone(),
        }
    }

    /// In an inner test: from the environment the parent prepared.
    fn from_environment() -> Self {
        let variable = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: this inner test is run by its parent test, not directly")
            })
        };
        Self {
            arm: variable("JIT_ARM_ENDPOINT"),
            authority: variable("JIT_AUTHORITY_HOST"),
            ca_file: PathBuf::from(variable("JIT_CA_FILE")),
        }
    }

    /// The emulator's cloud. Its metadata (`/metadata/endpoints`) names the public ARM
    /// audience, as `az cloud register --endpoint-active-directory-resource-id` would, so
    /// tokens are asked for that audience.
    fn cloud(&self) -> AzureCloud {
        AzureCloud::custom(
            &self.arm,
            &self.authority,
            Some(EMULATOR_AUDIENCE.to_owned()),
        )
        .expect("the emulator's endpoints are valid")
    }

    fn transport(&self) -> HttpTransport {
        HttpTransport::new(&TransportOptions {
            extra_ca_files: vec![self.ca_file.clone()],
            ..TransportOptions::default()
        })
        .expect("an HTTPS client trusting the emulator's CA")
    }

    fn client(&self, credential: &CredentialOptions, options: ArmClientOptions) -> ArmClient {
        let transport = self.transport();
        let cloud = self.cloud();
        let credential =
            build_credential(&cloud, &transport, credential).expect("the credential builds");
        ArmClient::new(&cloud.endpoints(), &transport, credential, options)
    }
}

fn service_principal(emulator: &Emulator) -> CredentialOptions {
    let info = emulator.info();
    CredentialOptions {
        kind: CredentialKind::ServicePrincipal,
        tenant_id: Some(info.tenant_id.clone()),
        client_id: Some(info.service_principal.client_id.clone()),
        client_secret: Some(Secret::new(info.service_principal.client_secret.clone())),
        ..CredentialOptions::default()
    }
}

/// Retries that take milliseconds, so bounded-retry tests stay fast; Retry-After from
/// the server is still honoured exactly.
fn quick_retries() -> RetryOptions {
    RetryOptions {
        max_retries: 3,
        max_total_wait: Duration::from_secs(30),
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
    }
}

/// Client options whose retry observer records every event.
fn observed(retry: RetryOptions) -> (ArmClientOptions, Arc<Mutex<Vec<RetryEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let options = ArmClientOptions {
        retry,
        retry_observer: Some(Arc::new(move |event: &RetryEvent| {
            sink.lock().expect("events lock").push(event.clone());
        })),
        ..ArmClientOptions::default()
    };
    (options, events)
}

fn start() -> Emulator {
    Emulator::start(World::default_world()).expect("the emulator starts")
}

/// Requests whose path (without query) ends with `suffix`, ignoring case.
fn requests_to(emulator: &Emulator, method: &str, suffix: &str) -> Vec<RequestRecord> {
    emulator
        .requests()
        .into_iter()
        .filter(|record| {
            record.method.eq_ignore_ascii_case(method)
                && record
                    .path_without_query()
                    .to_ascii_lowercase()
                    .ends_with(&suffix.to_ascii_lowercase())
        })
        .collect()
}

fn token_requests(emulator: &Emulator) -> usize {
    requests_to(emulator, "POST", "/oauth2/v2.0/token").len()
}

fn statuses(records: &[RequestRecord]) -> Vec<Option<u16>> {
    records.iter().map(|record| record.status).collect()
}

fn fault(method: &str, path: &str, fault: FaultKind, times: Option<u32>) -> FaultSpec {
    FaultSpec {
        method: Some(method.to_owned()),
        path: Some(path.to_owned()),
        path_regex: None,
        fault,
        probability: None,
        times,
    }
}

async fn subscription_names(arm: &ArmClient) -> Result<Vec<String>, ArmError> {
    let mut names: Vec<String> = SubscriptionsClient::new(arm.clone())
        .list()
        .await?
        .into_iter()
        .filter_map(|subscription| subscription.display_name)
        .collect();
    names.sort();
    Ok(names)
}

const SUBSCRIPTION_NAMES: [&str; 2] = ["Contoso Development", "Contoso Production"];

/// Runs `inner` (an ignored test of this binary) with the emulator's endpoints and
/// `environment` set, and fails with its output if it fails.
fn run_inner(inner: &str, endpoints: &Endpoints, environment: &[(&str, String)]) {
    let this_binary = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new(this_binary);
    command
        .args([
            "--exact",
            inner,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("JIT_ARM_ENDPOINT", &endpoints.arm)
        .env("JIT_AUTHORITY_HOST", &endpoints.authority)
        .env("JIT_CA_FILE", &endpoints.ca_file);
    for (name, value) in environment {
        command.env(name, value);
    }
    let output = command.output().expect("run the inner test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the inner test {inner} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

/// `PATH` with the directory of the emulator's fake `az` first.
fn path_with_fake_az(emulator: &Emulator) -> String {
    let az_dir = emulator
        .info()
        .az_cli
        .parent()
        .expect("the fake az lives in a directory")
        .to_owned();
    let mut paths = vec![az_dir];
    if let Some(existing) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&existing));
    }
    std::env::join_paths(paths)
        .expect("a valid PATH")
        .to_string_lossy()
        .into_owned()
}

fn az_token_calls(emulator: &Emulator) -> Vec<String> {
    emulator
        .az_calls()
        .into_iter()
        .filter(|call| call.contains("get-access-token"))
        .collect()
}

// ---------------------------------------------------------------------------------
// Sign-in methods

#[tokio::test]
async fn service_principal_signs_in_through_the_token_endpoint() {
    let emulator = start();
    let endpoints = Endpoints::of(&emulator);
    let arm = endpoints.client(&service_principal(&emulator), ArmClientOptions::default());
    assert_eq!(
        subscription_names(&arm).await.expect("list"),
        SUBSCRIPTION_NAMES
    );
    assert_eq!(
        subscription_names(&arm).await.expect("list"),
        SUBSCRIPTION_NAMES
    );
    assert_eq!(
        token_requests(&emulator),
        1,
        "the token is cached between calls"
    );
    let offset = arm.server_time_offset().expect("a Date header was seen");
    assert!(offset.abs() < SignedDuration::from_mins(1), "{offset:?}");
}

#[tokio::test]
async fn a_service_principal_secret_can_come_from_the_keychain() {
    let emulator = start();
    let info = emulator.info();
    let keychain = Keychain::in_store(keyring_core::mock::Store::new().expect("mock store"));
    keychain
        .set_client_secret(
            &info.service_principal.client_id,
            &Secret::new(info.service_principal.client_secret.clone()),
        )
        .expect("stored");
    let options = CredentialOptions {
        tenant_id: Some(info.tenant_id.clone()),
        client_id: Some(info.service_principal.client_id.clone()),
        keychain: Some(keychain),
        probe_imds: false,
        ..CredentialOptions::default()
    };
    let arm = Endpoints::of(&emulator).client(&options, ArmClientOptions::default());
    assert_eq!(
        subscription_names(&arm).await.expect("list"),
        SUBSCRIPTION_NAMES
    );
    assert_eq!(token_requests(&emulator), 1);
}

#[tokio::test]
async fn a_wrong_secret_is_refused_with_a_hint() {
    let emulator = start();
    let options = CredentialOptions {
        client_secret: Some(Secret::new("not-the-secret")),
        ..service_principal(&emulator)
    };
    let arm = Endpoints::of(&emulator).client(&options, ArmClientOptions::default());
    let error = subscription_names(&arm)
        .await
        .expect_err("the secret is wrong");
    assert!(
        matches!(
            &error,
            ArmError::Credential(CredentialError::Rejected {
                source_kind: CredentialSource::ServicePrincipal,
                ..
            })
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("7000215"), "{error}");
    assert!(!error.to_string().contains("not-the-secret"));
    assert!(error.hint().contains("secret"), "{}", error.hint());
    assert!(
        requests_to(&emulator, "GET", "/subscriptions").is_empty(),
        "nothing reaches ARM without a token"
    );
}

#[tokio::test]
async fn workload_identity_exchanges_a_federated_token() {
    let emulator = start();
    let info = emulator.info();
    let directory = tempfile::tempdir().expect("temp dir");
    let token_file = directory.path().join("azure-identity-token");
    // A Kubernetes service-account token is a JWT; the emulator checks the shape.
    std::fs::write(
        &token_file,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6aml0In0.c2lnbmF0dXJl",
    )
    .expect("write the token file");
    let options = CredentialOptions {
        tenant_id: Some(info.tenant_id.clone()),
        client_id: Some(info.service_principal.client_id.clone()),
        federated_token_file: Some(token_file),
        ..CredentialOptions::default()
    };
    assert_eq!(
        options.plan(),
        Ok(jit_agent::azure::credential::CredentialPlan::WorkloadIdentity)
    );
    let arm = Endpoints::of(&emulator).client(&options, ArmClientOptions::default());
    assert_eq!(
        subscription_names(&arm).await.expect("list"),
        SUBSCRIPTION_NAMES
    );
    assert_eq!(token_requests(&emulator), 1);
}

#[test]
fn the_azure_cli_signs_in_through_az_on_path() {
    let emulator = start();
    let endpoints = Endpoints::of(&emulator);
    run_inner(
        "inner_azure_cli_lists_and_survives_an_expired_token",
        &endpoints,
        &[
            ("PATH", path_with_fake_az(&emulator)),
            (
                "JIT_TEST_ADMIN_ENDPOINT",
                emulator.info().admin_endpoint.clone(),
            ),
        ],
    );
    let calls = az_token_calls(&emulator);
    assert_eq!(
        calls.len(),
        2,
        "one az call at first, one after the token expired, none in between: {calls:?}"
    );
    let scope = format!("--scope {EMULATOR_AUDIENCE}.default");
    assert!(calls.iter().all(|call| call.contains(&scope)), "{calls:?}");
    let subscriptions = requests_to(&emulator, "GET", "/subscriptions");
    assert_eq!(
        statuses(&subscriptions),
        [Some(200), Some(200), Some(401), Some(200)],
        "the stale token was rejected once, then the refreshed one accepted"
    );
}

#[tokio::test]
#[ignore = "inner test: run by the_azure_cli_signs_in_through_az_on_path with PATH prepared"]
async fn inner_azure_cli_lists_and_survives_an_expired_token() {
    let endpoints = Endpoints::from_environment();
    let options = CredentialOptions {
        probe_imds: false,
        ..CredentialOptions::default()
    };
    assert_eq!(
        options.plan(),
        Ok(jit_agent::azure::credential::CredentialPlan::AzureCli {
            imds_fallback: false
        }),
        "with nothing configured, the Azure CLI is used"
    );
    let arm = endpoints.client(&options, ArmClientOptions::default());
    assert_eq!(
        subscription_names(&arm).await.expect("list"),
        SUBSCRIPTION_NAMES
    );
    assert_eq!(
        subscription_names(&arm).await.expect("list"),
        SUBSCRIPTION_NAMES
    );

    // Move Azure's clock past the token's lifetime through the admin API.
    let admin = std::env::var("JIT_TEST_ADMIN_ENDPOINT").expect("admin endpoint");
    let response = endpoints
        .transport()
        .client()
        .post(format!("{admin}/clock"))
        .json(&serde_json::json!({"advance": "PT2H"}))
        .send()
        .await
        .expect("the admin API answers");
    assert!(response.status().is_success(), "{}", response.status());

    assert_eq!(
        subscription_names(&arm).await.expect("list after expiry"),
        SUBSCRIPTION_NAMES
    );
    let offset = arm.server_time_offset().expect("a Date header was seen");
    assert!(
        offset >= SignedDuration::from_mins(119),
        "Azure's clock moved: {offset:?}"
    );
}

#[test]
fn a_signed_out_azure_cli_says_to_run_az_login() {
    let emulator = start();
    emulator.set_az_logged_in(false).expect("sign az out");
    run_inner(
        "inner_azure_cli_signed_out",
        &Endpoints::of(&emulator),
        &[("PATH", path_with_fake_az(&emulator))],
    );
    assert!(requests_to(&emulator, "GET", "/subscriptions").is_empty());
}

#[tokio::test]
#[ignore = "inner test: run by a_signed_out_azure_cli_says_to_run_az_login with PATH prepared"]
async fn inner_azure_cli_signed_out() {
    let endpoints = Endpoints::from_environment();
    let options = CredentialOptions {
        kind: CredentialKind::AzureCli,
        ..CredentialOptions::default()
    };
    let arm = endpoints.client(&options, ArmClientOptions::default());
    let error = subscription_names(&arm)
        .await
        .expect_err("az is signed out");
    assert!(
        matches!(
            &error,
            ArmError::Credential(CredentialError::AzureCliNotSignedIn { .. })
        ),
        "{error:?}"
    );
    assert!(error.hint().contains("az login"), "{}", error.hint());
}

#[test]
fn a_managed_identity_signs_in_through_identity_endpoint() {
    let emulator = start();
    let identity = emulator.managed_identity();
    run_inner(
        "inner_managed_identity",
        &Endpoints::of(&emulator),
        &[
            ("IDENTITY_ENDPOINT", identity.endpoint.clone()),
            ("IDENTITY_HEADER", identity.header),
        ],
    );
    assert_eq!(requests_to(&emulator, "GET", "/msi/token").len(), 1);
    assert_eq!(
        statuses(&requests_to(&emulator, "GET", "/subscriptions")),
        [Some(200), Some(200)]
    );
}

#[tokio::test]
#[ignore = "inner test: run by a_managed_identity_signs_in_through_identity_endpoint"]
async fn inner_managed_identity() {
    let endpoints = Endpoints::from_environment();
    let options = CredentialOptions {
        app_service_identity: true,
        ..CredentialOptions::default()
    };
    assert_eq!(
        options.plan(),
        Ok(jit_agent::azure::credential::CredentialPlan::ManagedIdentity)
    );
    let arm = endpoints.client(&options, ArmClientOptions::default());
    assert_eq!(
        subscription_names(&arm).await.expect("list"),
        SUBSCRIPTION_NAMES
    );
    assert_eq!(
        subscription_names(&arm).await.expect("list"),
        SUBSCRIPTION_NAMES
    );
}

#[tokio::test]
async fn an_untrusted_certificate_fails_at_once_with_a_hint() {
    let emulator = start();
    let endpoints = Endpoints::of(&emulator);
    let cloud = endpoints.cloud();
    let untrusted = HttpTransport::new(&TransportOptions::default()).expect("HTTP client");

    // Sign-in through a transport without the emulator's CA.
    let credential = build_credential(&cloud, &untrusted, &service_principal(&emulator))
        .expect("the credential builds");
    let arm = ArmClient::new(
        &cloud.endpoints(),
        &untrusted,
        credential,
        ArmClientOptions::default(),
    );
    let error = subscription_names(&arm)
        .await
        .expect_err("the CA is not trusted");
    let ArmError::Credential(CredentialError::Unreachable { detail, .. }) = &error else {
        panic!("expected an unreachable token endpoint, got {error:?}");
    };
    assert!(
        detail.to_ascii_lowercase().contains("certificate"),
        "{detail}"
    );
    assert!(error.hint().contains("JIT_CA_FILE"), "{}", error.hint());

    // Tokens through the trusted transport, ARM through the untrusted one: the TLS
    // failure is not retried, since it would fail the same way every time.
    let credential = build_credential(
        &cloud,
        &endpoints.transport(),
        &service_principal(&emulator),
    )
    .expect("the credential builds");
    let (options, events) = observed(RetryOptions::default());
    let arm = ArmClient::new(&cloud.endpoints(), &untrusted, credential, options);
    let error = subscription_names(&arm)
        .await
        .expect_err("the CA is not trusted");
    assert!(
        matches!(
            &error,
            ArmError::Transport {
                ambiguous: false,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.hint().contains("JIT_CA_FILE"), "{}", error.hint());
    assert!(events.lock().expect("events").is_empty(), "not retried");
    assert!(
        requests_to(&emulator, "GET", "/subscriptions").is_empty(),
        "no HTTP request got through the failed handshake"
    );
}

// ---------------------------------------------------------------------------------
// Paging

fn vm_query() -> ResourcesQuery {
    ResourcesQuery::virtual_machines()
        .project("id")
        .project("name")
        .project("resourceGroup")
        .project("subscriptionId")
        .order_by("id", SortOrder::Ascending)
}

fn ids(rows: &[serde_json::Value]) -> Vec<String> {
    rows.iter()
        .filter_map(|row| row["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn lists_follow_every_page_at_page_size_one() {
    let emulator = start();
    let production = emulator.info().subscription_ids[0].clone();
    let arm =
        Endpoints::of(&emulator).client(&service_principal(&emulator), ArmClientOptions::default());
    let policies = JitNetworkAccessPoliciesClient::new(arm.clone());
    let graph = ResourceGraphClient::new(arm.clone());

    let all_policies = policies.list(&production).await.expect("policies");
    let all_vms = ids(&graph.resources(&vm_query(), &[], None).await.expect("VMs"));
    assert!(all_policies.len() >= 3, "{}", all_policies.len());
    assert!(all_vms.len() >= 9, "{all_vms:?}");

    emulator.set_page_size(Some(1));
    let before = emulator.requests().len();
    assert_eq!(
        subscription_names(&arm).await.expect("paged"),
        SUBSCRIPTION_NAMES
    );
    let paged_policies = policies.list(&production).await.expect("paged policies");
    assert_eq!(
        paged_policies
            .iter()
            .map(|policy| policy.id.clone())
            .collect::<Vec<_>>(),
        all_policies
            .iter()
            .map(|policy| policy.id.clone())
            .collect::<Vec<_>>()
    );
    let paged_vms = ids(&graph
        .resources(&vm_query(), &[], None)
        .await
        .expect("paged VMs"));
    assert_eq!(paged_vms, all_vms);
    let made = &emulator.requests()[before..];
    let count = |suffix: &str| {
        made.iter()
            .filter(|record| {
                record
                    .path_without_query()
                    .to_ascii_lowercase()
                    .ends_with(suffix)
            })
            .count()
    };
    assert_eq!(count("/subscriptions"), 2, "one page per subscription");
    assert_eq!(count("/jitnetworkaccesspolicies"), all_policies.len());
    assert_eq!(count("/microsoft.resourcegraph/resources"), all_vms.len());

    // The page size can also be asked for ($top), without the emulator's setting.
    emulator.set_page_size(None);
    let before = emulator.requests().len();
    let topped = ids(&graph
        .resources(
            &vm_query(),
            &[],
            Some(ResourcesOptions { page_size: Some(2) }),
        )
        .await
        .expect("VMs two by two"));
    assert_eq!(topped, all_vms);
    assert_eq!(
        emulator.requests().len() - before,
        all_vms.len().div_ceil(2),
        "pages of two"
    );
}

// ---------------------------------------------------------------------------------
// Throttling, server errors, broken connections

#[tokio::test]
async fn a_throttling_storm_is_waited_out_as_told() {
    let emulator = start();
    let (options, events) = observed(RetryOptions::default());
    let arm = Endpoints::of(&emulator).client(&service_principal(&emulator), options);
    emulator
        .inject_fault(fault(
            "GET",
            "/subscriptions",
            FaultKind::Throttle {
                retry_after_seconds: 1,
            },
            Some(3),
        ))
        .expect("fault");
    assert_eq!(
        subscription_names(&arm)
            .await
            .expect("succeeds after the storm"),
        SUBSCRIPTION_NAMES
    );
    assert_eq!(emulator.faults()[0].hits, 3);
    assert_eq!(
        statuses(&requests_to(&emulator, "GET", "/subscriptions")),
        [Some(429), Some(429), Some(429), Some(200)]
    );
    let events = events.lock().expect("events").clone();
    assert_eq!(events.len(), 3, "{events:?}");
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.reason, RetryReason::Throttled { status: 429 });
        assert_eq!(
            event.delay,
            Duration::from_secs(1),
            "waits exactly Retry-After"
        );
        assert_eq!(event.retry, u32::try_from(index + 1).expect("small"));
        assert_eq!(event.method, "GET");
        assert_eq!(event.path, "/subscriptions");
    }
}

#[tokio::test]
async fn throttling_longer_than_the_budget_is_reported_at_once() {
    let emulator = start();
    let (options, events) = observed(RetryOptions::default());
    let arm = Endpoints::of(&emulator).client(&service_principal(&emulator), options);
    emulator
        .inject_fault(fault(
            "GET",
            "/subscriptions",
            FaultKind::Throttle {
                retry_after_seconds: 600,
            },
            None,
        ))
        .expect("fault");
    let error = subscription_names(&arm).await.expect_err("throttled");
    assert!(
        matches!(&error, ArmError::Throttled { retry_after: Some(wait), .. } if *wait == Duration::from_secs(600)),
        "{error:?}"
    );
    assert!(error.hint().contains("10 min"), "{}", error.hint());
    assert_eq!(requests_to(&emulator, "GET", "/subscriptions").len(), 1);
    assert!(
        events.lock().expect("events").is_empty(),
        "no wait was started"
    );
}

#[tokio::test]
async fn server_errors_are_retried_and_bounded() {
    let emulator = start();
    let (options, events) = observed(quick_retries());
    let arm = Endpoints::of(&emulator).client(&service_principal(&emulator), options);
    emulator
        .inject_fault(fault(
            "GET",
            "/subscriptions",
            FaultKind::InternalError,
            Some(2),
        ))
        .expect("fault");
    assert_eq!(
        subscription_names(&arm)
            .await
            .expect("two 500s, then success"),
        SUBSCRIPTION_NAMES
    );
    assert_eq!(
        statuses(&requests_to(&emulator, "GET", "/subscriptions")),
        [Some(500), Some(500), Some(200)]
    );

    emulator.clear_faults();
    emulator
        .inject_fault(fault(
            "GET",
            "/subscriptions",
            FaultKind::InternalError,
            None,
        ))
        .expect("fault");
    let error = subscription_names(&arm).await.expect_err("always 500");
    assert!(
        matches!(
            &error,
            ArmError::Server {
                status: 500,
                not_retried: false,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        requests_to(&emulator, "GET", "/subscriptions").len(),
        3 + 4,
        "the first attempt and exactly three retries"
    );
    assert!(
        events
            .lock()
            .expect("events")
            .iter()
            .all(|event| event.reason == RetryReason::ServerError { status: 500 })
    );

    emulator.clear_faults();
    emulator
        .inject_fault(fault(
            "GET",
            "/subscriptions",
            FaultKind::ConnectionReset,
            Some(1),
        ))
        .expect("fault");
    assert_eq!(
        subscription_names(&arm)
            .await
            .expect("a reset GET is repeated"),
        SUBSCRIPTION_NAMES
    );
}

/// The first policy of the production subscription holding a VM, and that VM's first port.
async fn some_policy(arm: &ArmClient, subscription: &str) -> (JitNetworkAccessPolicy, String, u16) {
    let policies = JitNetworkAccessPoliciesClient::new(arm.clone())
        .list(subscription)
        .await
        .expect("policies");
    let policy = policies
        .into_iter()
        .find(|policy| {
            policy
                .properties
                .virtual_machines
                .iter()
                .any(|vm| vm.id.to_ascii_lowercase().ends_with("/api-01"))
        })
        .expect("a policy holds api-01");
    let vm = policy
        .properties
        .virtual_machines
        .iter()
        .find(|vm| vm.id.to_ascii_lowercase().ends_with("/api-01"))
        .expect("api-01")
        .clone();
    let port = vm.ports[0].number;
    (policy, vm.id, port)
}

fn initiate_request(
    arm: &ArmClient,
    vm_id: &str,
    port: u16,
) -> JitNetworkAccessPolicyInitiateRequest {
    let end = arm
        .server_now()
        .checked_add(SignedDuration::from_hours(1))
        .expect("an hour from now");
    JitNetworkAccessPolicyInitiateRequest {
        virtual_machines: vec![JitNetworkAccessPolicyInitiateVirtualMachine {
            id: vm_id.to_owned(),
            ports: vec![JitNetworkAccessPolicyInitiatePort {
                number: port,
                allowed_source_address_prefix: Some(emulator_client_ip()),
                end_time_utc: end,
                duration: None,
            }],
        }],
        justification: Some("azure_client test".to_owned()),
    }
}

fn emulator_client_ip() -> String {
    jit_emulator::DEFAULT_CLIENT_IP.to_string()
}

#[tokio::test]
async fn an_initiate_that_may_have_been_applied_is_not_sent_again() {
    let emulator = start();
    let production = emulator.info().subscription_ids[0].clone();
    let (options, _) = observed(quick_retries());
    let arm = Endpoints::of(&emulator).client(&service_principal(&emulator), options);
    let client = JitNetworkAccessPoliciesClient::new(arm.clone());
    let (policy, vm_id, port) = some_policy(&arm, &production).await;
    let policy_id = policy.id.clone().expect("a listed policy has an id");
    let request = initiate_request(&arm, &vm_id, port);

    emulator
        .inject_fault(fault(
            "POST",
            "*/initiate",
            FaultKind::InternalError,
            Some(1),
        ))
        .expect("fault");
    let error = client
        .initiate_by_id(&policy_id, &request)
        .await
        .expect_err("500 on initiate");
    assert!(
        matches!(
            &error,
            ArmError::Server {
                status: 500,
                not_retried: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error.hint().contains("may or may not have been applied"),
        "{}",
        error.hint()
    );
    assert_eq!(
        requests_to(&emulator, "POST", "/initiate").len(),
        1,
        "not repeated"
    );

    emulator
        .inject_fault(fault(
            "POST",
            "*/initiate",
            FaultKind::ConnectionReset,
            Some(1),
        ))
        .expect("fault");
    let error = client
        .initiate_by_id(&policy_id, &request)
        .await
        .expect_err("reset on initiate");
    assert!(
        matches!(
            &error,
            ArmError::Transport {
                ambiguous: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        requests_to(&emulator, "POST", "/initiate").len(),
        2,
        "not repeated"
    );
    // For a moment after a dropped connection the pool may still hand it out; a request
    // written to it is as ambiguous as the one above. A GET (repeated when that happens)
    // makes sure the next POST goes out on a live connection.
    client
        .get_by_id(&policy_id)
        .await
        .expect("the policy reads");

    emulator
        .inject_fault(fault(
            "POST",
            "*/initiate",
            FaultKind::Throttle {
                retry_after_seconds: 1,
            },
            Some(1),
        ))
        .expect("fault");
    let accepted = client
        .initiate_by_id(&policy_id, &request)
        .await
        .expect("a throttled initiate was not processed, so it is sent again");
    assert!(same_resource_id(&accepted.virtual_machines[0].id, &vm_id));
    assert_eq!(
        statuses(&requests_to(&emulator, "POST", "/initiate")),
        [Some(500), None, Some(429), Some(202)],
        "500 and reset: sent once each; 429: not processed, so sent again"
    );
}

#[tokio::test]
async fn an_expired_token_is_refreshed_exactly_once() {
    let emulator = start();
    let arm =
        Endpoints::of(&emulator).client(&service_principal(&emulator), ArmClientOptions::default());
    assert_eq!(
        subscription_names(&arm).await.expect("list"),
        SUBSCRIPTION_NAMES
    );
    assert_eq!(token_requests(&emulator), 1);

    emulator.advance_clock(SignedDuration::from_hours(2));
    assert_eq!(
        subscription_names(&arm).await.expect("list after expiry"),
        SUBSCRIPTION_NAMES
    );
    assert_eq!(
        subscription_names(&arm).await.expect("and again"),
        SUBSCRIPTION_NAMES
    );
    assert_eq!(token_requests(&emulator), 2, "exactly one refresh");
    assert_eq!(
        statuses(&requests_to(&emulator, "GET", "/subscriptions")),
        [Some(200), Some(401), Some(200), Some(200)]
    );
    let offset = arm.server_time_offset().expect("a Date header was seen");
    assert!(offset >= SignedDuration::from_mins(119), "{offset:?}");
    let ahead = arm.server_now().duration_since(jiff::Timestamp::now());
    assert!(ahead >= SignedDuration::from_mins(119), "{ahead:?}");
}

#[tokio::test]
async fn a_token_refused_twice_is_reported_as_unauthorized() {
    let emulator = start();
    let arm =
        Endpoints::of(&emulator).client(&service_principal(&emulator), ArmClientOptions::default());
    emulator
        .inject_fault(fault(
            "GET",
            "/subscriptions",
            FaultKind::ExpiredToken,
            Some(2),
        ))
        .expect("fault");
    let error = subscription_names(&arm).await.expect_err("401 twice");
    assert!(
        matches!(&error, ArmError::Unauthorized { code: Some(code), .. } if code == "ExpiredAuthenticationToken"),
        "{error:?}"
    );
    assert_eq!(token_requests(&emulator), 2, "one refresh, not a loop");
    assert_eq!(requests_to(&emulator, "GET", "/subscriptions").len(), 2);
}

// ---------------------------------------------------------------------------------
// 403 and 404

#[tokio::test]
async fn forbidden_names_the_missing_action() {
    let emulator = start();
    let world = World::default_world();
    let reader = world
        .principals
        .iter()
        .find(|principal| principal.name == "jit-reader")
        .expect("the default world has jit-reader");
    let production = emulator.info().subscription_ids[0].clone();
    let options = CredentialOptions {
        kind: CredentialKind::ServicePrincipal,
        tenant_id: Some(emulator.info().tenant_id.clone()),
        client_id: reader.client_id.clone(),
        client_secret: reader.client_secret.clone().map(Secret::new),
        ..CredentialOptions::default()
    };
    let arm = Endpoints::of(&emulator).client(&options, ArmClientOptions::default());
    let (policy, vm_id, port) = some_policy(&arm, &production).await;
    let error = JitNetworkAccessPoliciesClient::new(arm.clone())
        .initiate_by_id(
            policy.id.as_deref().expect("id"),
            &initiate_request(&arm, &vm_id, port),
        )
        .await
        .expect_err("jit-reader may only read");
    let ArmError::Forbidden { action, scope, .. } = &error else {
        panic!("expected Forbidden, got {error:?}");
    };
    assert_eq!(action.as_deref(), Some(INITIATE_ACTION));
    assert!(
        scope
            .as_deref()
            .is_some_and(|scope| scope.to_ascii_lowercase().contains("/subscriptions/")),
        "{scope:?}"
    );
    assert!(error.to_string().contains(INITIATE_ACTION), "{error}");
    assert!(error.hint().contains(RBAC_DOCS_URL), "{}", error.hint());
    assert_eq!(error.kind().as_str(), "forbidden");
}

#[tokio::test]
async fn not_found_names_what_is_missing() {
    let emulator = start();
    let production = emulator.info().subscription_ids[0].clone();
    let arm =
        Endpoints::of(&emulator).client(&service_principal(&emulator), ArmClientOptions::default());
    let error = VirtualMachinesClient::new(arm.clone())
        .get(&production, "rg-web", "no-such-vm", None)
        .await
        .expect_err("no such VM");
    assert!(error.is_not_found(), "{error:?}");
    assert!(error.to_string().contains("no-such-vm"), "{error}");
    let path = format!(
        "/subscriptions/{production}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/no-such-vm"
    );
    let missing: Option<serde_json::Value> = arm
        .get_json_optional(&path, "2024-07-01", &[])
        .await
        .expect("a 404 is None");
    assert_eq!(missing, None);
}

// ---------------------------------------------------------------------------------
// The per-resource clients on the default world

#[tokio::test]
async fn the_clients_read_and_change_the_default_world() {
    let emulator = start();
    let production = emulator.info().subscription_ids[0].clone();
    let arm =
        Endpoints::of(&emulator).client(&service_principal(&emulator), ArmClientOptions::default());

    // Resource Graph finds the VM by name.
    let query = ResourcesQuery::virtual_machines()
        .and(KqlCondition::equals_ignore_case(KqlColumn::Name, "API-01"))
        .filter([KqlCondition::in_ignore_case(
            KqlColumn::SubscriptionId,
            [production.clone()],
        )])
        .project("id")
        .project("name")
        .project_as(
            "powerState",
            "properties.extended.instanceView.powerState.code",
        );
    let rows = ResourceGraphClient::new(arm.clone())
        .resources(&query, std::slice::from_ref(&production), None)
        .await
        .expect("query");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let vm_id = rows[0]["id"].as_str().expect("an id").to_owned();
    assert_eq!(rows[0]["powerState"], "PowerState/running");

    // The VM, its NIC, public IP, subnet and NSG.
    let vms = VirtualMachinesClient::new(arm.clone());
    let vm = vms
        .get_by_id(
            &vm_id,
            Some(VirtualMachinesGetOptions {
                expand: Some(InstanceViewTypes::InstanceView),
            }),
        )
        .await
        .expect("VM");
    assert_eq!(vm.os_type(), Some(&OperatingSystemTypes::Linux));
    assert_eq!(vm.power_state(), Some(PowerState::Running));
    assert_eq!(vm.admin_username(), Some("azureuser"));
    let nic = NetworkInterfacesClient::new(arm.clone())
        .get_by_id(vm.network_interface_ids()[0], None)
        .await
        .expect("NIC");
    let configuration = nic.ip_configurations()[0].clone();
    assert!(configuration.private_ip_address.is_some());
    let public_ip = PublicIpAddressesClient::new(arm.clone())
        .get_by_id(
            configuration
                .public_ip_address
                .as_ref()
                .and_then(|ip| ip.id.as_deref())
                .expect("api-01 has a public IP"),
            None,
        )
        .await
        .expect("public IP");
    assert_eq!(public_ip.ip_address(), Some("127.0.0.1"));
    assert!(
        public_ip.fqdn().is_some(),
        "api-01's public IP has a DNS name"
    );
    SubnetsClient::new(arm.clone())
        .get_by_id(
            configuration
                .subnet
                .as_ref()
                .and_then(|subnet| subnet.id.as_deref())
                .expect("a subnet"),
            None,
        )
        .await
        .expect("subnet");
    let nsgs = NetworkSecurityGroupsClient::new(arm.clone());
    let nsg_id = nic
        .network_security_group_id()
        .expect("api-01's NIC has an NSG");
    let nsg = nsgs.get_by_id(nsg_id, None).await.expect("NSG");
    let rule_names: Vec<String> = nsg
        .properties
        .as_ref()
        .expect("properties")
        .security_rules
        .iter()
        .filter_map(|rule| rule.name.clone())
        .collect();
    assert!(
        rule_names
            .iter()
            .any(|name| name.starts_with("SecurityCenter-JITRule_")),
        "JIT's deny rule is in the NSG: {rule_names:?}"
    );
    let parsed = jit_agent::azure::resource_id::ResourceId::parse(nsg_id).expect("NSG id");
    let listed = nsgs
        .list_security_rules(
            parsed.subscription_id(),
            parsed.resource_group().expect("a group"),
            parsed.name().expect("a name"),
        )
        .await
        .expect("rules");
    assert_eq!(listed.len(), rule_names.len());

    // Defender's home region differs from the VM regions, as the contract says.
    let locations = SecurityLocationsClient::new(arm.clone())
        .list(&production)
        .await
        .expect("locations");
    assert_eq!(locations[0].name.as_deref(), Some("centralus"));
    SecurityLocationsClient::new(arm.clone())
        .get(&production, "centralus")
        .await
        .expect("location");

    // The policy: found by listing, read back, written back unchanged, initiated.
    let policies = JitNetworkAccessPoliciesClient::new(arm.clone());
    let by_region = policies
        .list_by_resource_group_and_region(&production, "rg-web", "westeurope")
        .await
        .expect("policies");
    let policy = by_region
        .into_iter()
        .find(|policy| {
            policy
                .properties
                .virtual_machines
                .iter()
                .any(|entry| same_resource_id(&entry.id, &vm_id))
        })
        .expect("api-01 is in a policy of rg-web/westeurope");
    let policy_id = policy.id.clone().expect("id");
    let read = policies
        .get(
            &production,
            "rg-web",
            "westeurope",
            policy.name.as_deref().expect("name"),
        )
        .await
        .expect("get");
    assert_eq!(
        read.properties.virtual_machines,
        policy.properties.virtual_machines
    );
    let written = policies
        .create_or_update_by_id(&policy_id, &read)
        .await
        .expect("PUT the same policy");
    assert_eq!(
        written.properties.virtual_machines,
        read.properties.virtual_machines
    );
    let port = read
        .properties
        .virtual_machines
        .iter()
        .find(|entry| same_resource_id(&entry.id, &vm_id))
        .expect("api-01")
        .ports[0]
        .number;
    let accepted = policies
        .initiate_by_id(&policy_id, &initiate_request(&arm, &vm_id, port))
        .await
        .expect("initiate");
    assert!(matches!(
        accepted.virtual_machines[0].ports[0].status,
        JitPortStatus::Initiating | JitPortStatus::Initiated
    ));
    let after = policies.get_by_id(&policy_id).await.expect("policy");
    assert!(
        after
            .properties
            .requests
            .iter()
            .any(|request| request.justification.as_deref() == Some("azure_client test")),
        "the request is in the policy's history"
    );

    // Starting the deallocated VM runs a long operation to its end.
    let batch = vms
        .get(
            &production,
            "rg-web",
            "batch-01",
            Some(VirtualMachinesGetOptions {
                expand: Some(InstanceViewTypes::InstanceView),
            }),
        )
        .await
        .expect("batch-01");
    assert_eq!(batch.power_state(), Some(PowerState::Deallocated));
    vms.start(&production, "rg-web", "batch-01")
        .await
        .expect("start");
    let view = vms
        .instance_view(&production, "rg-web", "batch-01")
        .await
        .expect("instance view");
    assert_eq!(view.power_state(), Some(PowerState::Running));
    let everything = vms.list_all(&production, None).await.expect("all VMs");
    assert!(
        everything
            .iter()
            .any(|vm| vm.name.as_deref() == Some("batch-01"))
    );

    // Deleting a policy, twice.
    let data_policies = policies
        .list_by_resource_group(&production, "rg-data")
        .await
        .expect("rg-data policies");
    let data_policy = &data_policies[0];
    let location = data_policy.location.clone().expect("location");
    let name = data_policy.name.clone().expect("name");
    assert_eq!(
        policies
            .delete(&production, "rg-data", &location, &name)
            .await
            .expect("delete"),
        jit_agent::azure::arm::DeleteOutcome::Deleted
    );
    assert_eq!(
        policies
            .delete(&production, "rg-data", &location, &name)
            .await
            .expect("delete again"),
        jit_agent::azure::arm::DeleteOutcome::DidNotExist
    );
}
