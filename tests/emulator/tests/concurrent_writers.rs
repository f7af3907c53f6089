//! Concurrent-writer hooks over real HTTPS: another admin's change to a JIT policy lands
//! exactly after a client's read, during a PUT that fails, or just before a PUT or DELETE,
//! with the same validation and NSG-rule effects as a real write; and a change applied at
//! once. Each hook fires once and the admin API and request log show that it did.

mod resources_support;

use jit_emulator::{HookPoint, HookSpec, InjectedFailure, PolicyChange};
use reqwest::Method;
use resources_support::*;
use serde_json::{Value, json};

fn web_policy() -> String {
    policy_id(PRODUCTION, "rg-web", "westeurope", "default")
}

fn web_vm(name: &str) -> String {
    vm_id(PRODUCTION, "rg-web", name)
}

fn web_nsg(vm: &str) -> String {
    nsg_id(PRODUCTION, "rg-web", &format!("{vm}-nsg"))
}

/// The names of the VMs in a policy body, sorted.
fn vm_names(policy: &Value) -> Vec<String> {
    let mut names: Vec<String> = policy["properties"]["virtualMachines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry["id"].as_str())
        .filter_map(|id| id.rsplit('/').next())
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

/// A policy entry for one VM's SSH port, as a client writes it.
fn ssh_entry(arm: &Arm, vm_id: &str) -> Value {
    json!({
        "id": vm_id,
        "ports": [{
            "number": arm.port_of(vm_id, "ssh"),
            "protocol": "*",
            "allowedSourceAddressPrefix": "*",
            "maxRequestAccessDuration": "PT3H"
        }]
    })
}

/// A PUT body with exactly these entries.
fn policy_body(entries: &[Value]) -> Value {
    json!({ "kind": "Basic", "properties": { "virtualMachines": entries } })
}

async fn add_hook(arm: &Arm, hook: Value) -> u64 {
    let reply = arm.admin(Method::POST, "hooks", Some(&hook)).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body["ids"][0].as_u64().expect("an id")
}

async fn hook(arm: &Arm, id: u64) -> Value {
    let reply = arm.admin(Method::GET, &format!("hooks/{id}"), None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

/// The request log entries whose path starts with `path` (query ignored).
async fn logged(arm: &Arm, method: &str, path: &str) -> Vec<Value> {
    arm.request_log()
        .await
        .into_iter()
        .filter(|entry| {
            entry["method"] == method
                && entry["path"]
                    .as_str()
                    .is_some_and(|logged| logged.split('?').next() == Some(path))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_get_lands_right_after_the_read_the_client_was_answered() {
    let arm = Arm::start().await;
    let policy = web_policy();
    let cache = web_vm("cache-01");
    let id = add_hook(
        &arm,
        json!({
            "policy_id": policy.to_uppercase(),
            "when": "after_get",
            "change": { "kind": "upsert_vm", "virtual_machine": ssh_entry(&arm, &cache) }
        }),
    )
    .await;
    assert!(hook(&arm, id).await["fired"].is_null());
    assert!(
        jit_rules(&arm.rules(&web_nsg("cache-01")).await)
            .0
            .is_empty()
    );

    // Our read shows the policy before the other writer's change...
    let read = arm.policy(&policy).await;
    assert_eq!(vm_names(&read), ["api-01", "batch-01", "web-01"]);
    // ...which has landed by the next read, with the deny rule a PUT would write.
    let after = arm.policy(&policy).await;
    assert_eq!(
        vm_names(&after),
        ["api-01", "batch-01", "cache-01", "web-01"]
    );
    let (deny, _) = jit_rules(&arm.rules(&web_nsg("cache-01")).await);
    assert_eq!(deny.len(), 1, "{deny:?}");
    assert_eq!(deny[0]["properties"]["access"], "Deny");

    // It fired once, on the first GET, and says so.
    let status = hook(&arm, id).await;
    assert_eq!(status["fired"]["method"], "GET", "{status}");
    assert_eq!(status["fired"]["applied"], true, "{status}");
    assert!(
        status["fired"]["path"]
            .as_str()
            .is_some_and(|path| path.eq_ignore_ascii_case(&policy)),
        "{status}"
    );
    let gets = logged(&arm, "GET", &policy).await;
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[0]["hooks"], json!([id]), "{gets:?}");
    assert!(gets[1].get("hooks").is_none(), "{gets:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_put_answers_the_failure_skips_the_put_and_applies_the_change() {
    let arm = Arm::start().await;
    let policy = web_policy();
    let id = add_hook(
        &arm,
        json!({
            "policy_id": policy,
            "when": "failed_put",
            "change": { "kind": "remove_vm", "vm_id": web_vm("WEB-01") },
            "failure": { "status": 503, "retry_after_seconds": 4 }
        }),
    )
    .await;

    // The client read the policy and adds cache-01 to what it read.
    let read = arm.policy(&policy).await;
    let mut entries = read["properties"]["virtualMachines"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    entries.push(ssh_entry(&arm, &web_vm("cache-01")));
    let url = format!("{policy}?api-version={JIT}");
    let reply = arm.put(&url, &policy_body(&entries)).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.error_code(), "ServiceUnavailable");
    assert_eq!(reply.header("retry-after"), Some("4"));

    // Our PUT was not applied; the other writer's was, with its rule effects.
    let now = arm.policy(&policy).await;
    assert_eq!(vm_names(&now), ["api-01", "batch-01"]);
    assert!(jit_rules(&arm.rules(&web_nsg("web-01")).await).0.is_empty());
    assert!(
        jit_rules(&arm.rules(&web_nsg("cache-01")).await)
            .0
            .is_empty()
    );
    let status = hook(&arm, id).await;
    assert_eq!(status["fired"]["method"], "PUT", "{status}");
    assert_eq!(status["fired"]["applied"], true, "{status}");
    assert_eq!(logged(&arm, "PUT", &policy).await[0]["hooks"], json!([id]));

    // One-shot: the retry goes through.
    let retry = arm.put(&url, &policy_body(&entries)).await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(
        vm_names(&arm.policy(&policy).await),
        ["api-01", "batch-01", "cache-01", "web-01"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_write_lands_just_before_the_put_which_then_overwrites_it() {
    let arm = Arm::start().await;
    let policy = web_policy();
    let read = arm.policy(&policy).await;
    let id = add_hook(
        &arm,
        json!({
            "policy_id": policy,
            "when": "before_write",
            "change": { "kind": "upsert_vm", "virtual_machine": ssh_entry(&arm, &web_vm("cache-01")) }
        }),
    )
    .await;
    // A GET does not fire a write hook.
    arm.policy(&policy).await;
    assert!(hook(&arm, id).await["fired"].is_null());

    // The client writes back what it read, without batch-01: last writer wins, and the
    // other writer's VM (and its deny rule) is gone again.
    let entries: Vec<Value> = read["properties"]["virtualMachines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| {
            !entry["id"]
                .as_str()
                .is_some_and(|id| id.ends_with("batch-01"))
        })
        .cloned()
        .collect();
    let reply = arm
        .put(
            &format!("{policy}?api-version={JIT}"),
            &policy_body(&entries),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(vm_names(&reply.body), ["api-01", "web-01"]);
    let status = hook(&arm, id).await;
    assert_eq!(status["fired"]["applied"], true, "{status}");
    assert_eq!(status["fired"]["method"], "PUT", "{status}");
    assert!(
        jit_rules(&arm.rules(&web_nsg("cache-01")).await)
            .0
            .is_empty()
    );
    assert!(
        jit_rules(&arm.rules(&web_nsg("batch-01")).await)
            .0
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_write_also_precedes_a_delete_and_hooks_fire_oldest_first() {
    let arm = Arm::start().await;
    let policy = policy_id(PRODUCTION, "rg-dev", "westeurope", "default");
    let dev = vm_id(PRODUCTION, "rg-dev", "dev-01");
    let dev_nsg = nsg_id(PRODUCTION, "rg-dev", "dev-01-nsg");
    // Through the Rust handle this time.
    let create = arm
        .emulator
        .add_hook(HookSpec::new(
            &policy,
            HookPoint::AfterGet,
            PolicyChange::PutPolicy {
                body: policy_body(&[ssh_entry(&arm, &dev)]),
            },
        ))
        .expect("the hook is accepted");
    let delete = arm
        .emulator
        .add_hook(HookSpec::new(
            &policy,
            HookPoint::AfterGet,
            PolicyChange::DeletePolicy,
        ))
        .expect("the hook is accepted");
    let url = format!("{policy}?api-version={JIT}");
    // A 404 read is not a successful GET: nothing fires.
    assert_eq!(arm.get(&url).await.status, 404);
    assert!(arm.emulator.hooks().iter().all(|hook| hook.fired.is_none()));

    // Someone else creates the policy at once; our next read sees it and then the second
    // hook deletes it.
    let created = arm
        .emulator
        .apply_change(
            &policy,
            &PolicyChange::PutPolicy {
                body: policy_body(&[ssh_entry(&arm, &dev)]),
            },
        )
        .expect("the change applies")
        .expect("the policy exists");
    assert_eq!(vm_names(&created), ["dev-01"]);
    assert_eq!(arm.get(&url).await.status, 200);
    let hooks = arm.emulator.hooks();
    assert!(
        hooks
            .iter()
            .find(|hook| hook.id == create)
            .is_some_and(|hook| hook.fired.as_ref().is_some_and(|fired| fired.applied))
    );
    assert!(
        hooks
            .iter()
            .find(|hook| hook.id == delete)
            .is_some_and(|hook| hook.fired.is_none())
    );
    assert_eq!(arm.get(&url).await.status, 200);
    assert_eq!(arm.get(&url).await.status, 404);
    assert!(jit_rules(&arm.rules(&dev_nsg).await).0.is_empty());

    // before_write on DELETE: the other writer re-creates the policy first; our DELETE
    // then removes it (200, not 204).
    arm.emulator
        .add_hook(HookSpec::new(
            &policy,
            HookPoint::BeforeWrite,
            PolicyChange::PutPolicy {
                body: policy_body(&[ssh_entry(&arm, &dev)]),
            },
        ))
        .expect("the hook is accepted");
    let deleted = arm.delete(&url).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert!(jit_rules(&arm.rules(&dev_nsg).await).0.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_validated_like_a_put_and_failures_are_reported() {
    let arm = Arm::start().await;
    let policy = web_policy();
    let dev_nsg = nsg_id(PRODUCTION, "rg-dev", "dev-01-nsg");
    // A VM from another resource group: a PUT would be refused, so is the change.
    let foreign = ssh_entry(&arm, &vm_id(PRODUCTION, "rg-dev", "dev-01"));
    let refused = arm
        .admin(
            Method::POST,
            "changes",
            Some(&json!({ "policy_id": policy, "change": { "kind": "upsert_vm", "virtual_machine": foreign } })),
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(
        refused.body["error"]
            .as_str()
            .is_some_and(|error| error.contains("rg-web")),
        "{}",
        refused.body
    );
    assert!(jit_rules(&arm.rules(&dev_nsg).await).0.is_empty());

    // A body a PUT would refuse is refused when the hook is added.
    let bad = arm
        .admin(
            Method::POST,
            "hooks",
            Some(&json!({
                "policy_id": policy, "when": "after_get",
                "change": { "kind": "put_policy", "body": { "properties": { "virtualMachines": [{ "id": web_vm("api-01"), "ports": [] }] } } }
            })),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    for nonsense in [
        json!({ "policy_id": web_vm("api-01"), "when": "after_get", "change": { "kind": "delete_policy" } }),
        json!({ "policy_id": policy, "when": "whenever", "change": { "kind": "delete_policy" } }),
        json!({ "policy_id": policy, "when": "after_get", "change": { "kind": "delete_policy" }, "failure": {} }),
    ] {
        let reply = arm.admin(Method::POST, "hooks", Some(&nonsense)).await;
        assert_eq!(reply.status, 400, "{nonsense}: {}", reply.body);
    }
    assert!(arm.emulator.hooks().is_empty());

    // A change that cannot apply when the hook fires is reported, and the read still
    // answers normally.
    let id = add_hook(
        &arm,
        json!({
            "policy_id": policy, "when": "after_get",
            "change": { "kind": "remove_vm", "vm_id": web_vm("cache-01") }
        }),
    )
    .await;
    assert_eq!(
        arm.get(&format!("{policy}?api-version={JIT}")).await.status,
        200
    );
    let status = hook(&arm, id).await;
    assert_eq!(status["fired"]["applied"], false, "{status}");
    assert!(
        status["fired"]["error"]
            .as_str()
            .is_some_and(|error| error.contains("cache-01")),
        "{status}"
    );

    // Custom failures: a 409 with its own code.
    arm.emulator
        .add_hook(HookSpec {
            failure: Some(InjectedFailure {
                status: 409,
                code: Some("Conflict".to_owned()),
                message: Some("Another operation is in progress.".to_owned()),
                retry_after_seconds: None,
            }),
            ..HookSpec::new(
                &policy,
                HookPoint::FailedPut,
                PolicyChange::RemoveVm {
                    vm_id: web_vm("batch-01"),
                },
            )
        })
        .expect("the hook is accepted");
    let read = arm.policy(&policy).await;
    let reply = arm
        .put(
            &format!("{policy}?api-version={JIT}"),
            &policy_body(
                read["properties"]["virtualMachines"]
                    .as_array()
                    .map_or(&[][..], Vec::as_slice),
            ),
        )
        .await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert_eq!(reply.error_code(), "Conflict");
    assert_eq!(reply.error_message(), "Another operation is in progress.");
    assert_eq!(vm_names(&arm.policy(&policy).await), ["api-01", "web-01"]);

    // Hooks can be listed, removed one by one, and cleared.
    let listed = arm.admin(Method::GET, "hooks", None).await;
    assert_eq!(listed.body["value"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        arm.admin(Method::DELETE, &format!("hooks/{id}"), None)
            .await
            .status,
        204
    );
    assert_eq!(
        arm.admin(Method::DELETE, &format!("hooks/{id}"), None)
            .await
            .status,
        404
    );
    assert_eq!(arm.admin(Method::DELETE, "hooks", None).await.status, 204);
    assert!(arm.emulator.hooks().is_empty());
}
