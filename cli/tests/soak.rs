//! Fault soak: `jit connect --no-launch`, `jit extend`, `jit enable`/`jit disable` and
//! `jit list`, run over and over by several workers at once against an emulator that
//! fails about one ARM call in five (429 with `Retry-After`, 500, 503, reset
//! connections, `ExpiredAuthenticationToken`) and slows down one in ten.
//!
//! Each worker owns a resource group with its own JIT policy (`soakN-conn` and
//! `soakN-keep` in it, `soakN-toggle` switched on and off), so every write and every
//! `initiate` in the emulator's request log and every request in Azure's history is
//! attributed to one worker, and the runs of a worker are sequential. A run is **right**
//! when it succeeds or fails with a documented exit code whose one `error:` line names
//! the failure the faults cause, and when:
//!
//! - it made at most one accepted `initiate` or policy write (exactly one when it
//!   succeeded), by the request log; Azure's request history holds exactly one request
//!   per successful `connect`/`extend` of the cycle (the justification names the cycle);
//! - no policy lost a VM or port it should keep (`soakN-keep`, `soakN-conn` always;
//!   `soakN-toggle` as the last successful `enable`/`disable` left it);
//! - `jit list -o json` parses and lists the worker's VMs.
//!
//! After each round: the agent holds one window per VM at most, every JSON file under the
//! state directory parses. Sizes come from `JIT_SOAK_ROUNDS`, `JIT_SOAK_WORKERS` and
//! `JIT_SOAK_CYCLES` (`bench/soak` sets them; `cargo test` runs a small one). The
//! counts are printed (`--nocapture`), ending with `wrong outcomes: N`; the test fails
//! when N is not 0.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Instant;

use jiff::SignedDuration;
use jit_emulator::{EmulatorOptions, FaultKind, FaultSpec, RequestRecord, World};
use serde_json::Value;
use support::{TestContext, text};

/// The default world's second subscription, which the soak's resource groups join.
const SUBSCRIPTION: &str = "b7e4d2a9-5c3f-4a18-8e6d-91f0c2b3a457";

/// Every ARM route (not the token endpoint, the "what is my IP" service or the admin API).
const ARM_ROUTES: &str = "^/(subscriptions|providers)(/|$)";

/// The failures injected, each with its chance per ARM call (together about 20 %).
fn failure_faults() -> Vec<(&'static str, FaultKind, f64)> {
    vec![
        (
            "throttle (429, Retry-After: 1)",
            FaultKind::Throttle {
                retry_after_seconds: 1,
            },
            0.05,
        ),
        ("internal error (500)", FaultKind::InternalError, 0.05),
        (
            "service unavailable (503)",
            FaultKind::ServiceUnavailable {
                retry_after_seconds: None,
            },
            0.04,
        ),
        ("connection reset", FaultKind::ConnectionReset, 0.04),
        ("expired token (401)", FaultKind::ExpiredToken, 0.03),
    ]
}

/// How long the emulator's tokens live: the fake `az` renews its token during a round.
/// (Shorter lifetimes only test the fake `az`'s renewal period; an expiry ARM reports in
/// the middle of a run is the `expired token` fault.)
const TOKEN_LIFETIME: SignedDuration = SignedDuration::from_secs(120);

/// Added latency: one call in ten waits this long.
const LATENCY: &str = "150ms";
const LATENCY_CHANCE: f64 = 0.10;

/// How big a soak is.
#[derive(Debug, Clone, Copy)]
struct Size {
    rounds: usize,
    workers: usize,
    cycles: usize,
}

impl Size {
    fn from_environment() -> Self {
        let read = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .map(|value| {
                    value
                        .parse()
                        .unwrap_or_else(|_| panic!("{name} must be a number, got {value:?}"))
                })
                .unwrap_or(default)
        };
        Self {
            rounds: read("JIT_SOAK_ROUNDS", 1),
            workers: read("JIT_SOAK_WORKERS", 2),
            cycles: read("JIT_SOAK_CYCLES", 2),
        }
    }
}

/// The commands a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Connect,
    Extend,
    Enable,
    Disable,
    List,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Extend => "extend",
            Self::Enable => "enable",
            Self::Disable => "disable",
            Self::List => "list",
        }
    }
}

/// What the soak counted.
#[derive(Debug, Default)]
struct Tally {
    runs: BTreeMap<&'static str, u64>,
    successes: u64,
    correct_failures: BTreeMap<i32, u64>,
    failure_messages: BTreeMap<String, u64>,
    retries: u64,
    faults: BTreeMap<String, u64>,
    arm_requests: u64,
    initiates: BTreeMap<String, u64>,
    wrong: Vec<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        for (step, count) in other.runs {
            *self.runs.entry(step).or_default() += count;
        }
        self.successes += other.successes;
        for (code, count) in other.correct_failures {
            *self.correct_failures.entry(code).or_default() += count;
        }
        for (message, count) in other.failure_messages {
            *self.failure_messages.entry(message).or_default() += count;
        }
        self.retries += other.retries;
        for (kind, count) in other.faults {
            *self.faults.entry(kind).or_default() += count;
        }
        self.arm_requests += other.arm_requests;
        for (status, count) in other.initiates {
            *self.initiates.entry(status).or_default() += count;
        }
        self.wrong.extend(other.wrong);
    }

    #[allow(
        clippy::print_stdout,
        reason = "the report is the soak's output: bench/soak shows it"
    )]
    fn print(&self, size: Size, elapsed: std::time::Duration) {
        let total: u64 = self.runs.values().sum();
        let per_step: Vec<String> = self
            .runs
            .iter()
            .map(|(step, count)| format!("{step} {count}"))
            .collect();
        println!(
            "soak: {} round(s) of {} workers x {} cycles, {:.1} s",
            size.rounds,
            size.workers,
            size.cycles,
            elapsed.as_secs_f64()
        );
        println!("runs: {total} ({})", per_step.join(", "));
        println!("ARM requests: {}", self.arm_requests);
        let initiates: Vec<String> = self
            .initiates
            .iter()
            .map(|(status, count)| format!("{status} {count}"))
            .collect();
        println!("initiate calls by answer: {}", initiates.join(", "));
        let injected: u64 = self.faults.values().sum();
        let kinds: Vec<String> = self
            .faults
            .iter()
            .map(|(kind, count)| format!("{kind} {count}"))
            .collect();
        println!("injected faults: {injected} ({})", kinds.join(", "));
        println!("retries: {}", self.retries);
        println!("successes: {}", self.successes);
        let failures: u64 = self.correct_failures.values().sum();
        let codes: Vec<String> = self
            .correct_failures
            .iter()
            .map(|(code, count)| format!("exit {code}: {count}"))
            .collect();
        println!("correct failures: {failures} ({})", codes.join(", "));
        for (message, count) in &self.failure_messages {
            println!("  {count} x {message}");
        }
        for wrong in &self.wrong {
            println!("WRONG: {wrong}");
        }
        println!("wrong outcomes: {}", self.wrong.len());
    }
}

/// The soak's world: the default one plus a resource group per worker.
fn world(workers: usize) -> World {
    let mut text = include_str!("../../tests/emulator/src/default-world.toml").to_owned();
    // The default world ends inside its last subscription; these groups join it.
    for worker in 0..workers {
        let network = 100 + worker;
        text.push_str(&format!(
            r#"
[[subscriptions.resource_groups]]
name = "rg-soak-{worker}"
location = "westeurope"

[[subscriptions.resource_groups.virtual_networks]]
name = "vnet-soak-{worker}"
address_space = ["10.{network}.0.0/16"]
subnets = [{{ name = "default", address_prefix = "10.{network}.0.0/24" }}]
"#
        ));
        for (index, role) in ["conn", "keep", "toggle"].iter().enumerate() {
            let name = format!("soak{worker}-{role}");
            text.push_str(&format!(
                r#"
[[subscriptions.resource_groups.network_security_groups]]
name = "{name}-nsg"

[[subscriptions.resource_groups.public_ip_addresses]]
name = "{name}-ip"

[[subscriptions.resource_groups.network_interfaces]]
name = "{name}-nic"
private_ip_address = "10.{network}.0.{address}"
subnet = "vnet-soak-{worker}/default"
public_ip_address = "{name}-ip"
network_security_group = "{name}-nsg"

[[subscriptions.resource_groups.virtual_machines]]
name = "{name}"
os = "Linux"
network_interfaces = ["{name}-nic"]
ports = [{{ service = "ssh", number = 22 }}]
"#,
                address = index + 4
            ));
        }
        text.push_str(
            r#"
[[subscriptions.resource_groups.jit_policies]]
name = "default"
location = "westeurope"
"#,
        );
        for role in ["conn", "keep"] {
            text.push_str(&format!(
                r#"
[[subscriptions.resource_groups.jit_policies.virtual_machines]]
virtual_machine = "soak{worker}-{role}"
ports = [{{ service = "ssh", protocol = "*", allowed_source_address_prefix = "*", max_request_access_duration = "PT3H" }}]
"#
            ));
        }
    }
    World::from_toml(&text).expect("the soak world is valid")
}

fn policy_path(worker: usize) -> String {
    format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-soak-{worker}/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default"
    )
}

/// Accepted (2xx) `initiate`s and policy writes (PUT, DELETE) to the worker's policy.
fn accepted_writes(requests: &[RequestRecord], worker: usize) -> (usize, usize) {
    let policy = policy_path(worker).to_ascii_lowercase();
    let initiate = format!("{policy}/initiate");
    let accepted = |record: &&RequestRecord| record.status.is_some_and(|s| (200..300).contains(&s));
    let path = |record: &RequestRecord| record.path_without_query().to_ascii_lowercase();
    let initiates = requests
        .iter()
        .filter(accepted)
        .filter(|record| record.method == "POST" && path(record) == initiate)
        .count();
    let writes = requests
        .iter()
        .filter(accepted)
        .filter(|record| {
            (record.method == "PUT" || record.method == "DELETE") && path(record) == policy
        })
        .count();
    (initiates, writes)
}

/// The worker's policy as Azure holds it.
fn policy(context: &TestContext, worker: usize) -> Value {
    support::policy_in_state(&context.emulator, &policy_path(worker))
}

/// The (SSH) port entry of a VM in a policy, as `(number, sources, maximum)`.
fn ssh_entry(policy: &Value, vm: &str) -> Option<(u64, Vec<String>, String)> {
    let entry = policy["properties"]["virtualMachines"]
        .as_array()?
        .iter()
        .find(|entry| {
            entry["id"]
                .as_str()
                .is_some_and(|id| id.rsplit('/').next() == Some(vm))
        })?;
    // The emulator serves each VM's port 22 on a loopback port of its own, which the
    // policy lists instead.
    let port = entry["ports"].as_array()?.first()?;
    Some((
        port["number"].as_u64()?,
        support::rule_sources(port),
        port["maxRequestAccessDuration"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ))
}

/// Requests in the worker's policy history whose justification names this cycle.
fn cycle_requests(context: &TestContext, worker: usize, cycle: usize) -> usize {
    let label = justification(worker, cycle);
    policy(context, worker)["properties"]["requests"]
        .as_array()
        .map(|requests| {
            requests
                .iter()
                .filter(|request| {
                    request["justification"]
                        .as_str()
                        .is_some_and(|text| text.contains(&label))
                })
                .count()
        })
        .unwrap_or(0)
}

fn justification(worker: usize, cycle: usize) -> String {
    format!("soak w{worker} c{cycle}:")
}

/// Whether a failed run failed the documented way, with one `error:` line that names
/// the failure: exit 6 (Azure kept failing) or 4 (Azure refused the token twice); and
/// exit 8 for a `disable` of a VM that may be out of its policy already (the `enable`
/// before it failed), which says JIT is not enabled for it.
fn documented_failure(
    code: i32,
    stderr: &str,
    step: Step,
    toggle_expected: Option<bool>,
) -> Result<(), String> {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error:"))
        .collect();
    let [error] = errors.as_slice() else {
        return Err(format!("{} error lines", errors.len()));
    };
    let lower = error.to_ascii_lowercase();
    let names_it = match code {
        6 => [
            "http 429",
            "http 500",
            "http 503",
            "throttl",
            "connection",
            "cannot reach azure",
            "internalservererror",
            "serviceunavailable",
        ]
        .iter()
        .any(|word| lower.contains(word)),
        4 => lower.contains("token") || lower.contains("authentication"),
        8 => {
            step == Step::Disable
                && toggle_expected != Some(true)
                && lower.contains("jit is not enabled")
        }
        _ => false,
    };
    if names_it {
        Ok(())
    } else {
        Err(format!("exit {code} with {error:?}"))
    }
}

/// One worker's runs.
fn worker(context: &TestContext, worker: usize, cycles: usize) -> Tally {
    let mut tally = Tally::default();
    let conn = format!("soak{worker}-conn");
    let keep = format!("soak{worker}-keep");
    let toggle = format!("soak{worker}-toggle");
    let kept_from_start = ssh_entry(&policy(context, worker), &keep);
    assert!(
        kept_from_start.is_some(),
        "the world has {keep} in its policy"
    );
    // `Some(true)`: the toggle VM must be in the policy; `Some(false)`: must not;
    // `None`: the last change failed, so either is right until the next one succeeds.
    let mut toggle_expected = Some(false);
    for cycle in 0..cycles {
        let label = format!("{} soak", justification(worker, cycle));
        let mut initiating_successes = 0;
        let mut initiating_runs = 0;
        let policy_change = if cycle % 2 == 0 {
            (Step::Enable, vec!["enable", toggle.as_str()])
        } else {
            (Step::Disable, vec!["disable", toggle.as_str()])
        };
        let steps = vec![
            (
                Step::Connect,
                vec!["connect", &conn, "--no-launch", "--justification", &label],
            ),
            (Step::Extend, vec!["extend", &conn, "--duration", "2h"]),
            policy_change,
            (Step::List, vec!["list", "-o", "json"]),
        ];
        let mut connected = false;
        for (step, arguments) in steps {
            if step == Step::Extend && !connected {
                // Nothing to extend: the connect of this cycle failed (documentedly).
                continue;
            }
            let before = context.emulator.requests();
            let output = context
                .jit()
                .env_remove("DBUS_SESSION_BUS_ADDRESS")
                .env("JIT_NO_TRAY", "1")
                .args(&arguments)
                .output()
                .expect("jit runs");
            let after = context.emulator.requests();
            *tally.runs.entry(step.name()).or_default() += 1;
            let (stdout, stderr) = text(&output);
            let code = output.status.code();
            let what = format!("worker {worker} cycle {cycle}: jit {}", arguments.join(" "));
            tally.retries += stderr.matches("retrying in").count() as u64;
            let mut problems = Vec::new();
            if stderr.contains("panicked") {
                problems.push("panicked".to_owned());
            }
            let succeeded = code == Some(0);
            match code {
                Some(0) => tally.successes += 1,
                Some(code) => match documented_failure(code, &stderr, step, toggle_expected) {
                    Ok(()) => {
                        *tally.correct_failures.entry(code).or_default() += 1;
                        let error = stderr
                            .lines()
                            .find(|line| line.starts_with("error:"))
                            .unwrap_or_default();
                        let shape = format!("{} (exit {code}): {error}", step.name());
                        *tally.failure_messages.entry(shape).or_default() += 1;
                    }
                    Err(problem) => problems.push(problem),
                },
                None => problems.push("ended by a signal".to_owned()),
            }
            // Attributed by path: only this worker writes to its policy.
            let (initiates_before, writes_before) = accepted_writes(&before, worker);
            let (initiates_after, writes_after) = accepted_writes(&after, worker);
            let log_full = after.len() >= 10_000;
            let initiates = initiates_after.saturating_sub(initiates_before);
            let writes = writes_after.saturating_sub(writes_before);
            if !log_full {
                let (made, kind) = match step {
                    Step::Connect | Step::Extend => (initiates, "initiates"),
                    Step::Enable | Step::Disable => (writes, "policy writes"),
                    Step::List => (initiates + writes, "writes"),
                };
                let allowed = match step {
                    Step::List => 0..=0,
                    Step::Connect | Step::Extend | Step::Enable if succeeded => 1..=1,
                    // A failed run may or may not have written once; so may a successful
                    // disable (nothing to write when the VM was out of the policy).
                    _ => 0..=1,
                };
                if !allowed.contains(&made) {
                    problems.push(format!("{made} accepted {kind}"));
                }
                if matches!(step, Step::Enable | Step::Disable | Step::List) && initiates > 0 {
                    problems.push(format!("{initiates} initiates"));
                }
                if matches!(step, Step::Connect | Step::Extend | Step::List) && writes > 0 {
                    problems.push(format!("{writes} policy writes"));
                }
            }
            match step {
                Step::Connect => {
                    connected = succeeded;
                    initiating_runs += 1;
                    initiating_successes += usize::from(succeeded);
                }
                Step::Extend => {
                    initiating_runs += 1;
                    initiating_successes += usize::from(succeeded);
                }
                Step::Enable | Step::Disable => {
                    toggle_expected = if succeeded {
                        Some(step == Step::Enable)
                    } else if code == Some(8) {
                        // "JIT is not enabled for this VM": it is out of the policy.
                        Some(false)
                    } else {
                        None
                    };
                }
                Step::List => {
                    if succeeded {
                        match serde_json::from_str::<Value>(&stdout) {
                            Ok(document) => {
                                let text = document.to_string();
                                if !text.contains(&keep) || !text.contains(&conn) {
                                    problems.push(format!("the list lacks {keep} or {conn}"));
                                }
                            }
                            Err(error) => problems.push(format!("-o json does not parse: {error}")),
                        }
                    }
                }
            }
            // What must hold in Azure after every run.
            let now = policy(context, worker);
            if ssh_entry(&now, &keep) != kept_from_start {
                problems.push(format!("{keep} lost or changed its port: {now}"));
            }
            if ssh_entry(&now, &conn).is_none() {
                problems.push(format!("{conn} lost its port"));
            }
            if let Some(expected) = toggle_expected
                && ssh_entry(&now, &toggle).is_some() != expected
            {
                problems.push(format!(
                    "{toggle} should {}be in the policy",
                    if expected { "" } else { "not " }
                ));
            }
            if !problems.is_empty() {
                tally.wrong.push(format!(
                    "{what}: {} (exit {code:?})\n  stderr: {}",
                    problems.join("; "),
                    stderr.trim_end().replace('\n', "\n  stderr: ")
                ));
            }
        }
        let recorded = cycle_requests(context, worker, cycle);
        if !(initiating_successes..=initiating_runs).contains(&recorded) {
            tally.wrong.push(format!(
                "worker {worker} cycle {cycle}: Azure holds {recorded} requests for {initiating_successes} successful of {initiating_runs} initiating runs"
            ));
        }
    }
    tally
}

/// Checks what must hold after a round: the agent's windows and the state files.
fn after_round(context: &TestContext, workers: usize, tally: &mut Tally) {
    let output = context
        .jit()
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .args(["status", "-o", "json"])
        .output()
        .expect("jit runs");
    let (stdout, stderr) = text(&output);
    match serde_json::from_str::<Value>(&stdout) {
        Ok(document) => {
            let windows = document["windows"].as_array().cloned().unwrap_or_default();
            let mut seen = BTreeSet::new();
            for window in &windows {
                let id = window["vm"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if !seen.insert(id.clone()) {
                    tally
                        .wrong
                        .push(format!("the agent holds two windows for {id}"));
                }
            }
            if windows.len() > workers {
                tally.wrong.push(format!(
                    "the agent holds {} windows for {workers} connected VMs",
                    windows.len()
                ));
            }
        }
        Err(error) => tally.wrong.push(format!(
            "jit status -o json does not parse ({error}): {stdout} {stderr}"
        )),
    }
    for file in json_files(&context.home().join("state")) {
        let parsed = std::fs::read_to_string(&file)
            .map_err(|error| error.to_string())
            .and_then(|content| {
                serde_json::from_str::<Value>(&content).map_err(|error| error.to_string())
            });
        if let Err(error) = parsed {
            tally
                .wrong
                .push(format!("{} does not parse: {error}", file.display()));
        }
    }
}

fn json_files(directory: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(directory) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(json_files(&path));
        } else if path
            .extension()
            .is_some_and(|extension| extension == "json")
        {
            found.push(path);
        }
    }
    found
}

/// One round: a fresh emulator and agent, the faults, every worker at once.
fn round(size: Size) -> Tally {
    let context = TestContext::with(
        world(size.workers),
        EmulatorOptions {
            initiating_delay: SignedDuration::ZERO,
            // Tokens are renewed during a round (the virtual clock follows real time).
            token_lifetime: TOKEN_LIFETIME,
            ..EmulatorOptions::default()
        },
    )
    .with_agent();
    let mut names = BTreeMap::new();
    for (name, kind, probability) in failure_faults() {
        let id = context
            .emulator
            .inject_fault(FaultSpec {
                method: None,
                path: None,
                path_regex: Some(ARM_ROUTES.to_owned()),
                fault: kind,
                probability: Some(probability),
                times: None,
            })
            .expect("a fault");
        names.insert(id, name.to_owned());
    }
    let latency = context
        .emulator
        .inject_fault(FaultSpec {
            method: None,
            path: None,
            path_regex: Some(ARM_ROUTES.to_owned()),
            fault: FaultKind::Latency {
                delay: LATENCY.to_owned(),
            },
            probability: Some(LATENCY_CHANCE),
            times: None,
        })
        .expect("a fault");
    names.insert(latency, format!("latency ({LATENCY})"));

    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for index in 0..size.workers {
            let context = &context;
            let results = &results;
            scope.spawn(move || {
                let tally = worker(context, index, size.cycles);
                results.lock().expect("results").push(tally);
            });
        }
    });
    let mut tally = Tally::default();
    for result in results.into_inner().expect("results") {
        tally.merge(result);
    }
    for status in context.emulator.faults() {
        if let Some(name) = names.get(&status.id) {
            *tally.faults.entry(name.clone()).or_default() += status.hits;
        }
    }
    tally.arm_requests = context
        .emulator
        .requests()
        .iter()
        .filter(|record| {
            record.path.starts_with("/subscriptions") || record.path.starts_with("/providers")
        })
        .count() as u64;
    for record in context.emulator.requests() {
        if record.method == "POST" && record.path_without_query().ends_with("/initiate") {
            let status = record
                .status
                .map_or_else(|| "reset".to_owned(), |status| status.to_string());
            *tally.initiates.entry(status).or_default() += 1;
        }
    }
    // The checks after the round run without faults: they check, they are not soaked.
    context.emulator.clear_faults();
    after_round(&context, size.workers, &mut tally);
    let _ = context
        .jit()
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .args(["agent", "stop"])
        .output();
    tally
}

#[test]
fn commands_under_faults_succeed_or_fail_as_documented_and_lose_nothing() {
    let size = Size::from_environment();
    let started = Instant::now();
    let mut tally = Tally::default();
    for _ in 0..size.rounds {
        tally.merge(round(size));
    }
    tally.print(size, started.elapsed());
    assert!(
        tally.wrong.is_empty(),
        "wrong outcomes: {}\n{}",
        tally.wrong.len(),
        tally.wrong.join("\n")
    );
    assert!(
        tally.faults.values().sum::<u64>() > 0,
        "no fault was injected: the soak proved nothing"
    );
}
