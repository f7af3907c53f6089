//! The library's access flow, driven by a scripted front end instead of a terminal.
//!
//! `jit_agent::access::flow::AccessFlow` is what `jit connect`, `request`, `proxy`,
//! `extend`, the agent and the tray all run; these tests call it directly, over real
//! HTTPS against an in-process emulator, with an `Interaction` that answers questions
//! from a script and records every event. (They live in the `jit` package because only
//! it may depend on both the library and the emulator.)

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use jiff::SignedDuration;
use jit_agent::access::extend::ExtendError;
use jit_agent::access::flow::{
    AccessAsk, AccessFlow, Answer, FlowError, FlowEvent, FlowOptions, Interaction, Question, Wait,
};
use jit_agent::access::locate::{LocateError, VmQuery};
use jit_agent::access::ownership::{ClientTag, readable_justification};
use jit_agent::access::plan::{PortPreference, Service};
use jit_agent::access::request::RequestError;
use jit_agent::access::window::ExtendLength;
use jit_agent::azure::arm::{ArmClient, ArmClientOptions};
use jit_agent::azure::clients::JitNetworkAccessPoliciesClient;
use jit_agent::azure::cloud::AzureCloud;
use jit_agent::azure::credential::{CredentialKind, CredentialOptions, Secret, build_credential};
use jit_agent::azure::models::{
    JitNetworkAccessPolicyInitiatePort, JitNetworkAccessPolicyInitiateRequest,
    JitNetworkAccessPolicyInitiateVirtualMachine,
};
use jit_agent::azure::transport::{HttpTransport, TransportOptions};
use jit_emulator::{Emulator, EmulatorOptions, FaultKind, FaultSpec, World};

const WAIT: Wait = Wait::UntilAnswering(Duration::from_secs(60));

/// A front end that answers from a script and remembers what it was told and asked.
#[derive(Debug, Default)]
struct Scripted {
    answers: Mutex<VecDeque<Answer>>,
    events: Mutex<Vec<String>>,
    questions: Mutex<Vec<String>>,
}

impl Scripted {
    fn answering(answers: &[Answer]) -> Self {
        Self {
            answers: Mutex::new(answers.iter().copied().collect()),
            ..Self::default()
        }
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().expect("events").clone()
    }

    fn questions(&self) -> Vec<String> {
        self.questions.lock().expect("questions").clone()
    }
}

impl Interaction for Scripted {
    fn event(&self, event: FlowEvent<'_>) {
        self.events
            .lock()
            .expect("events")
            .push(format!("{event:?}"));
    }

    async fn ask(&self, question: Question<'_>) -> Answer {
        self.questions
            .lock()
            .expect("questions")
            .push(format!("{question:?}"));
        self.answers
            .lock()
            .expect("answers")
            .pop_front()
            .unwrap_or(Answer::CannotAsk)
    }
}

fn start(initiating_delay: SignedDuration) -> Emulator {
    Emulator::start_with(
        World::default_world(),
        EmulatorOptions {
            initiating_delay,
            ..EmulatorOptions::default()
        },
    )
    .expect("the emulator starts")
}

/// A client of the emulator, signed in as its service principal.
fn arm(emulator: &Emulator) -> (ArmClient, reqwest::Client) {
    let info = emulator.info();
    let cloud = AzureCloud::custom(
        &info.arm_endpoint,
        &info.authority_host,
        Some("https://management.azure.com/".to_owned()),
    )
    .expect("a custom cloud");
    let transport = HttpTransport::new(&TransportOptions {
        extra_ca_files: vec![info.ca_cert.clone()],
        ..TransportOptions::default()
    })
    .expect("HTTPS trusting the emulator");
    let credential = build_credential(
        &cloud,
        &transport,
        &CredentialOptions {
            kind: CredentialKind::ServicePrincipal,
            tenant_id: Some(info.tenant_id.clone()),
            client_id: Some(info.service_principal.client_id.clone()),
            client_secret: Some(Secret::new(info.service_principal.client_secret.clone())),
            ..CredentialOptions::default()
        },
    )
    .expect("a credential");
    let arm = ArmClient::new(
        &cloud.endpoints(),
        &transport,
        credential,
        ArmClientOptions::default(),
    );
    (arm, transport.client().clone())
}

fn options(emulator: &Emulator, tag: &str) -> FlowOptions {
    FlowOptions {
        my_ip_urls: vec![emulator.info().my_ip_url.clone()],
        tag: ClientTag::parse(tag),
        ..FlowOptions::default()
    }
}

/// The port the emulator bound for a VM's service (`ssh`, `rdp`, `silent`): emulated
/// VM ports are loopback listeners, and policies carry their numbers.
fn listener_port(emulator: &Emulator, vm_name: &str, resource_group: &str, service: &str) -> u16 {
    emulator.snapshot()["listeners"]
        .as_array()
        .expect("listeners")
        .iter()
        .find(|listener| {
            let id = listener["vm_id"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase();
            id.ends_with(&format!("/virtualmachines/{vm_name}"))
                && id.contains(&format!("/resourcegroups/{resource_group}/"))
                && listener["service"] == service
        })
        .and_then(|listener| listener["port"].as_u64())
        .and_then(|port| u16::try_from(port).ok())
        .unwrap_or_else(|| panic!("no {service} listener for {resource_group}/{vm_name}"))
}

fn ask(vm: &str) -> AccessAsk {
    AccessAsk::new(VmQuery::parse(vm).expect("a VM reference"))
}

/// The JIT policy holding `vm`, as the emulator's state has it.
fn policy_vms(emulator: &Emulator, policy_name: &str, group: &str) -> Vec<String> {
    let snapshot = emulator.snapshot();
    let text = snapshot.to_string();
    let value: serde_json::Value = serde_json::from_str(&text).expect("json");
    let mut found = Vec::new();
    collect_policy_vms(&value, policy_name, group, &mut found);
    found.sort();
    found
}

fn collect_policy_vms(value: &serde_json::Value, name: &str, group: &str, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            let id = map
                .get("id")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            let is_policy = id
                .to_ascii_lowercase()
                .contains("/jitnetworkaccesspolicies/")
                && id.to_ascii_lowercase().ends_with(&format!("/{name}"))
                && id
                    .to_ascii_lowercase()
                    .contains(&format!("/resourcegroups/{group}/"));
            if is_policy
                && let Some(vms) = value
                    .pointer("/properties/virtualMachines")
                    .and_then(|v| v.as_array())
            {
                for vm in vms {
                    if let Some(id) = vm.get("id").and_then(serde_json::Value::as_str) {
                        found.push(id.rsplit('/').next().unwrap_or(id).to_ascii_lowercase());
                    }
                }
                return;
            }
            for child in map.values() {
                collect_policy_vms(child, name, group, found);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_policy_vms(item, name, group, found);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn a_scripted_front_end_sees_the_whole_flow_and_gets_a_window() {
    let emulator = start(SignedDuration::from_secs(2));
    let (arm, http) = arm(&emulator);
    let front = Scripted::default();
    let flow = AccessFlow::new(&arm, http, &front, options(&emulator, "a1b2c3d4"));

    let grant = flow
        .open(&ask("rg-web/api-01"), Some("deploy hotfix"), WAIT)
        .await
        .expect("access to api-01");

    assert!(
        front.questions().is_empty(),
        "nothing to ask for a running, configured VM"
    );
    let events = front.events();
    let position = |needle: &str| {
        events
            .iter()
            .position(|event| event.starts_with(needle))
            .unwrap_or_else(|| panic!("no {needle} event in {events:#?}"))
    };
    assert!(
        position("Requested") < position("Begin(Applying"),
        "{events:#?}"
    );
    assert!(
        position("Begin(Applying") < position("Begin(Probing"),
        "{events:#?}"
    );
    assert!(
        position("Begin(Probing") < position("PortAnswered"),
        "{events:#?}"
    );

    assert_eq!(grant.service(), Service::Ssh);
    assert_eq!(grant.open.len(), 1);
    let window = &grant.window;
    assert_eq!(window.vm_name, "api-01");
    assert_eq!(
        window.port_numbers(),
        [listener_port(&emulator, "api-01", "rg-web", "ssh")]
    );
    assert_eq!(window.source_address_prefix, emulator.info().client_ip);
    assert!(window.requestor.is_some(), "Azure's requestor is kept");
    let justification = window.justification.as_deref().expect("a justification");
    assert_eq!(readable_justification(justification), "deploy hotfix");
    assert!(
        justification.contains("[jit:a1b2c3d4:"),
        "the request carries our marker: {justification}"
    );
    let left = window.ends_at.duration_since(arm.server_now());
    assert!(
        left > SignedDuration::from_mins(175) && left <= SignedDuration::from_hours(3),
        "the policy maximum by default: {left:?}"
    );
}

#[tokio::test]
async fn a_stopped_vm_is_started_only_when_the_person_says_yes() {
    let emulator = start(SignedDuration::ZERO);
    let (arm, http) = arm(&emulator);

    for (answer, declined) in [(Answer::No, true), (Answer::CannotAsk, false)] {
        let front = Scripted::answering(&[answer]);
        let flow = AccessFlow::new(&arm, http.clone(), &front, options(&emulator, "a1b2c3d4"));
        let error = flow
            .prepare(&ask("batch-01"))
            .await
            .expect_err("a stopped VM is not started without a yes");
        assert!(
            matches!(&error, FlowError::NotRunning { declined: d, .. } if *d == declined),
            "{answer:?}: {error:?}"
        );
        assert_eq!(error.is_declined(), declined);
        assert_eq!(front.questions().len(), 1);
        assert!(
            front.questions()[0].starts_with("StartVm"),
            "{:?}",
            front.questions()
        );
    }

    let front = Scripted::answering(&[Answer::Yes]);
    let flow = AccessFlow::new(&arm, http, &front, options(&emulator, "a1b2c3d4"));
    let grant = flow
        .open(&ask("batch-01"), None, WAIT)
        .await
        .expect("started, then opened");
    assert!(
        front
            .events()
            .iter()
            .any(|event| event.starts_with("VmStarted"))
    );
    assert!(grant.prepared.details.is_running());
    assert_eq!(grant.open.len(), 1, "its port answers once it runs");
}

#[tokio::test]
async fn enabling_on_demand_merges_into_the_policy_and_keeps_the_other_vms() {
    let emulator = start(SignedDuration::ZERO);
    let (arm, http) = arm(&emulator);
    let before = policy_vms(&emulator, "default", "rg-web");
    assert_eq!(before, ["api-01", "batch-01", "web-01"]);

    let declined = Scripted::answering(&[Answer::No]);
    let flow = AccessFlow::new(
        &arm,
        http.clone(),
        &declined,
        options(&emulator, "a1b2c3d4"),
    );
    let error = flow.prepare(&ask("cache-01")).await.expect_err("declined");
    assert!(
        matches!(error, FlowError::NotEnabled { declined: true, .. }),
        "{error:?}"
    );
    assert_eq!(
        policy_vms(&emulator, "default", "rg-web"),
        before,
        "nothing written"
    );

    let port = listener_port(&emulator, "cache-01", "rg-web", "ssh");
    let front = Scripted::answering(&[Answer::Yes]);
    let flow = AccessFlow::new(&arm, http, &front, options(&emulator, "a1b2c3d4"));
    let mut enable = ask("cache-01");
    enable.ports = PortPreference::Number(port);
    let grant = flow
        .open(&enable, None, WAIT)
        .await
        .expect("enabled, then opened");
    assert!(
        front.questions()[0].contains("EnableJit")
            && front.questions()[0].contains(&format!("port: {port}")),
        "{:?}",
        front.questions()
    );
    assert!(
        front
            .events()
            .iter()
            .any(|event| event.starts_with("PolicyChanged"))
    );
    assert_eq!(
        policy_vms(&emulator, "default", "rg-web"),
        ["api-01", "batch-01", "cache-01", "web-01"]
    );
    assert_eq!(grant.window.port_numbers(), [port]);
}

#[tokio::test]
async fn an_ambiguous_name_is_a_question_and_an_unknown_one_suggests_names() {
    let emulator = start(SignedDuration::ZERO);
    let (arm, http) = arm(&emulator);

    let front = Scripted::answering(&[Answer::Chosen(1)]);
    let flow = AccessFlow::new(&arm, http.clone(), &front, options(&emulator, "a1b2c3d4"));
    let chosen = flow
        .locate(&VmQuery::parse("web-01").expect("name"))
        .await
        .expect("the second one");
    let question = &front.questions()[0];
    assert!(question.starts_with("ChooseVm"), "{question}");
    assert!(
        question.contains("rg-web") && question.contains("rg-app"),
        "{question}"
    );
    assert!(
        question.contains(&chosen.id),
        "the answer is one of the candidates offered"
    );

    let cannot = Scripted::default();
    let flow = AccessFlow::new(&arm, http.clone(), &cannot, options(&emulator, "a1b2c3d4"));
    let error = flow
        .locate(&VmQuery::parse("web-01").expect("name"))
        .await
        .expect_err("ambiguous without a person");
    assert!(
        matches!(error, FlowError::Locate(LocateError::Ambiguous { ref candidates, .. }) if candidates.len() == 2),
        "{error:?}"
    );

    let error = flow
        .locate(&VmQuery::parse("web-1").expect("name"))
        .await
        .expect_err("misspelled");
    let FlowError::NotFound {
        suggestions,
        narrowed,
        ..
    } = &error
    else {
        panic!("expected NotFound, got {error:?}");
    };
    assert!(
        suggestions.iter().any(|name| name == "web-01"),
        "{suggestions:?}"
    );
    assert!(!narrowed, "every subscription was searched");
}

#[tokio::test]
async fn another_protocol_answering_fails_at_once_instead_of_waiting() {
    let emulator = start(SignedDuration::ZERO);
    let (arm, http) = arm(&emulator);
    let front = Scripted::default();
    let flow = AccessFlow::new(&arm, http, &front, options(&emulator, "a1b2c3d4"));
    let mut rdp = ask("api-01");
    rdp.ports = PortPreference::Rdp;
    // A whole minute allowed: only a failure at first sight of SSH ends it early.
    let error = flow
        .open(&rdp, None, Wait::UntilAnswering(Duration::from_secs(600)))
        .await
        .expect_err("SSH answers, not RDP");
    let FlowError::Wait(error) = &error else {
        panic!("expected a wait error, got {error:?}");
    };
    assert!(
        matches!(**error, RequestError::WrongService { ref got, .. } if got.contains("SSH")),
        "{error:?}"
    );
}

/// The emulator's request log from `before` on, as "METHOD path" lines.
fn calls_since(emulator: &Emulator, before: usize) -> Vec<String> {
    emulator.requests()[before..]
        .iter()
        .map(|record| format!("{} {}", record.method, record.path))
        .collect()
}

fn initiate_fault(times: Option<u32>) -> FaultSpec {
    FaultSpec {
        method: Some("POST".to_owned()),
        path: Some("*/jitNetworkAccessPolicies/*/initiate".to_owned()),
        path_regex: None,
        fault: FaultKind::ConnectionReset,
        probability: None,
        times,
    }
}

#[tokio::test]
async fn a_broken_initiate_is_looked_up_in_the_policy_and_sent_again_only_when_absent() {
    let emulator = start(SignedDuration::ZERO);
    let (arm, http) = arm(&emulator);
    emulator
        .inject_fault(initiate_fault(Some(1)))
        .expect("a fault");
    let front = Scripted::default();
    let flow = AccessFlow::new(&arm, http, &front, options(&emulator, "a1b2c3d4"));
    let prepared = flow.prepare(&ask("api-01")).await.expect("prepared");
    let before = emulator.requests().len();
    flow.request(&[&prepared], None)
        .await
        .expect("sent again once the policy showed it was not applied");
    let after = calls_since(&emulator, before);
    let kinds: Vec<&str> = after
        .iter()
        .filter_map(|line| {
            if line.starts_with("POST ") && line.contains("/initiate") {
                Some("initiate")
            } else if line.starts_with("GET ") && line.contains("jitNetworkAccessPolicies") {
                Some("read")
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        kinds,
        ["initiate", "read", "initiate"],
        "the policy is read between the broken initiate and the next: {after:#?}"
    );
}

#[tokio::test]
async fn an_initiate_that_keeps_breaking_is_reported_never_sent_blindly() {
    let emulator = start(SignedDuration::ZERO);
    let (arm, http) = arm(&emulator);
    emulator
        .inject_fault(initiate_fault(None))
        .expect("a fault");
    let front = Scripted::default();
    let flow = AccessFlow::new(&arm, http, &front, options(&emulator, "a1b2c3d4"));
    let prepared = flow.prepare(&ask("api-01")).await.expect("prepared");
    let before = emulator.requests().len();
    let error = flow
        .request(&[&prepared], None)
        .await
        .expect_err("the connection broke every time");
    let FlowError::Initiate { error, .. } = &error else {
        panic!("expected an initiate error, got {error:?}");
    };
    assert!(
        matches!(**error, RequestError::NotRecordedAfterFailure { .. }),
        "{error:?}"
    );
    let after = calls_since(&emulator, before);
    let initiates = after
        .iter()
        .filter(|line| line.starts_with("POST ") && line.contains("/initiate"))
        .count();
    let reads = after
        .iter()
        .filter(|line| line.starts_with("GET ") && line.contains("jitNetworkAccessPolicies"))
        .count();
    assert_eq!(initiates, 3, "sent, then twice more: {after:#?}");
    assert_eq!(
        reads, 3,
        "each failure is read back before anything else: {after:#?}"
    );
}

#[tokio::test]
async fn extend_renews_only_our_own_window_and_never_someone_elses() {
    let emulator = start(SignedDuration::ZERO);
    let (arm, http) = arm(&emulator);
    let front = Scripted::default();
    let ours = AccessFlow::new(&arm, http.clone(), &front, options(&emulator, "a1b2c3d4"));
    let grant = ours
        .open(&ask("api-01"), Some("first"), WAIT)
        .await
        .expect("opened");
    emulator.advance_clock(SignedDuration::from_mins(30));

    let query = VmQuery::parse("api-01").expect("name");
    let extended = ours
        .extend(&query, &ExtendLength::PolicyMaximum, None)
        .await
        .expect("our window is extended");
    assert!(extended.ends_at > grant.window.ends_at, "the end moved");
    assert_eq!(
        extended.source_address_prefix,
        grant.window.source_address_prefix
    );
    assert_eq!(
        extended
            .justification
            .as_deref()
            .map(readable_justification),
        Some("first"),
        "the window's own justification is kept"
    );

    // Another user of this machine (another tag) has no window to extend here.
    let other_front = Scripted::default();
    let other = AccessFlow::new(
        &arm,
        http.clone(),
        &other_front,
        options(&emulator, "0f0f0f0f"),
    );
    let error = other
        .extend(&query, &ExtendLength::PolicyMaximum, None)
        .await
        .expect_err("not theirs");
    let FlowError::Extend(error) = &error else {
        panic!("expected an extend error, got {error:?}");
    };
    let ExtendError::NoOwnWindow { others, .. } = &**error else {
        panic!("expected NoOwnWindow, got {error:?}");
    };
    assert_eq!(
        others.len(),
        1,
        "our window is listed, not adopted: {others:?}"
    );

    // Someone opens the port for everyone by hand: our window is revoked by theirs, and
    // extending must not renew their `*`.
    let policy_id = grant.window.policy_id.clone();
    JitNetworkAccessPoliciesClient::new(arm.clone())
        .initiate_by_id(
            &policy_id,
            &JitNetworkAccessPolicyInitiateRequest {
                virtual_machines: vec![JitNetworkAccessPolicyInitiateVirtualMachine {
                    id: grant.window.vm_id.clone(),
                    ports: vec![JitNetworkAccessPolicyInitiatePort {
                        number: grant.window.ports[0].number,
                        allowed_source_address_prefix: Some("*".to_owned()),
                        end_time_utc: arm.server_now() + SignedDuration::from_hours(1),
                        duration: None,
                    }],
                }],
                justification: Some("portal".to_owned()),
            },
        )
        .await
        .expect("someone else's request");
    let before = emulator.requests().len();
    let error = ours
        .extend(&query, &ExtendLength::PolicyMaximum, None)
        .await
        .expect_err("nothing of ours is open any more");
    let FlowError::Extend(error) = &error else {
        panic!("expected an extend error, got {error:?}");
    };
    let ExtendError::NoOwnWindow { others, .. } = &**error else {
        panic!("expected NoOwnWindow, got {error:?}");
    };
    assert_eq!(others[0].source.as_deref(), Some("*"));
    assert!(
        !emulator.requests()[before..]
            .iter()
            .any(|record| record.path.contains("/initiate")),
        "no request was made"
    );
}
