//! `jit doctor [VM] [--all]`: the checks of `jit_agent::access::doctor`, gathered and
//! printed; the exit code says whether every check passed (1 when one failed).
//!
//! - `jit doctor`: sign-in, and per subscription searched, the Defender for Servers plan
//!   and the caller's permissions.
//! - `jit doctor VM`: sign-in, the VM's subscription's plan, and everything between the
//!   caller and the VM's port. A VM that cannot be found is a failed check, not an error,
//!   so the table still shows what was learned.
//! - `jit doctor --all`: sign-in, every subscription's plan, and for every configured VM
//!   whether JIT still protects it (deny rules in place, nothing outranking them).

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt as _;
use jit_agent::access::doctor::{
    Check, CheckKind, CheckStatus, Context, VmChecks, defender_plan_check, diagnose_vm, passed,
    permissions_check, sign_in_check,
};
use jit_agent::access::inventory::{self, NetworkTopology};
use jit_agent::access::locate::Scope;
use jit_agent::access::my_ip::discover;
use jit_agent::access::status::{JitState, subscription_policies};
use jit_agent::azure::arm::ArmClient;
use jit_agent::azure::clients::{PermissionsClient, SubscriptionsClient};
use jit_agent::azure::models::{JitNetworkAccessPolicy, Subscription};

use crate::args::DoctorArgs;
use crate::error::{CommandKind, ExitStatus, classify};
use crate::printer::Printer;
use crate::printer::doctor::{Counts, DiagnosisView, render};
use crate::session::Session;
use crate::settings::{GlobalSettings, parse_vm};

/// How many VMs `--all` diagnoses at the same time.
const VMS_AT_ONCE: usize = 4;

/// How long "what is my IP" services get.
const MY_IP_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn run(
    arguments: DoctorArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let query = arguments.vm.as_deref().map(parse_vm).transpose()?;
    let session = Session::open(settings, printer)?;
    let arm = &session.connection.arm;
    let progress = printer.progress("Checking");
    let listed = SubscriptionsClient::new(arm.clone()).list().await;
    let mut checks = vec![sign_in_check(&listed)];
    if let Ok(visible) = &listed
        && !visible.is_empty()
    {
        let flow = session.flow();
        match (&query, arguments.all) {
            (Some(query), _) => match flow.locate_supported(query).await {
                Ok(vm) => {
                    let names = names_of(visible);
                    checks.push(
                        defender_plan_check(
                            arm,
                            &vm.subscription_id,
                            &name_of(&names, &vm.subscription_id),
                        )
                        .await,
                    );
                    let subscription = std::slice::from_ref(&vm.subscription_id);
                    let caller = discover(
                        session.connection.transport.client(),
                        &flow.options().my_ip_urls,
                        MY_IP_TIMEOUT,
                    );
                    let (policies, topology, caller) = futures::join!(
                        subscription_policies(arm, &vm.subscription_id),
                        NetworkTopology::load(arm, subscription),
                        caller,
                    );
                    match (policies, topology) {
                        (Ok(policies), Ok(topology)) => {
                            let context = Context {
                                policies: &policies,
                                topology: &topology,
                                caller: Some(&caller),
                            };
                            checks.extend(
                                diagnose_vm(arm, &vm.id, &vm.name, context, VmChecks::Connect)
                                    .await,
                            );
                        }
                        (Err(error), _) | (_, Err(error)) => checks.push(Check::from_error(
                            CheckKind::Policy,
                            &vm.name,
                            "read the subscription's JIT policies and networks",
                            &error,
                        )),
                    }
                }
                Err(error) => {
                    let report = classify(&anyhow::Error::new(error), CommandKind::Other);
                    checks.push(Check {
                        check: CheckKind::Vm,
                        subject: arguments.vm.clone().unwrap_or_default(),
                        status: CheckStatus::Fail,
                        finding: report.message,
                        fix: report.hint,
                    });
                }
            },
            (None, true) => {
                let scope = flow
                    .search_scope(arguments.scope.resource_group.as_deref())
                    .await?;
                checks.extend(subscription_plans(arm, visible, &scope.subscription_ids).await);
                checks.extend(protection(arm, &scope).await);
            }
            (None, false) => {
                let scope = flow.search_scope(None).await?;
                checks.extend(subscription_plans(arm, visible, &scope.subscription_ids).await);
                let names = names_of(visible);
                for subscription_id in &scope.subscription_ids {
                    let subject = name_of(&names, subscription_id);
                    let scope_id = format!("/subscriptions/{subscription_id}");
                    checks.push(
                        match PermissionsClient::new(arm.clone())
                            .list_for_scope(&scope_id)
                            .await
                        {
                            Ok(permissions) => permissions_check(&subject, &permissions),
                            Err(error) => Check::from_error(
                                CheckKind::Permissions,
                                &subject,
                                "read your permissions",
                                &error,
                            ),
                        },
                    );
                }
            }
        }
    }
    drop(progress);
    let counts = Counts::of(&checks);
    if printer.is_json() {
        printer.json(&DiagnosisView::of(&checks));
    } else {
        printer.data(render(&checks));
    }
    if passed(&checks) {
        printer.success(format!("Every check passed ({})", counts.summary()));
        Ok(ExitStatus::Success)
    } else {
        printer.info(format!("Some checks failed ({})", counts.summary()));
        Ok(ExitStatus::ChecksFailed)
    }
}

fn names_of(subscriptions: &[Subscription]) -> HashMap<String, String> {
    subscriptions
        .iter()
        .filter_map(|subscription| {
            let id = subscription.subscription_id.clone()?;
            let name = subscription
                .display_name
                .clone()
                .unwrap_or_else(|| id.clone());
            Some((id.to_ascii_lowercase(), name))
        })
        .collect()
}

fn name_of(names: &HashMap<String, String>, subscription_id: &str) -> String {
    names
        .get(&subscription_id.to_ascii_lowercase())
        .cloned()
        .unwrap_or_else(|| subscription_id.to_owned())
}

/// The Defender for Servers plan of each subscription searched.
async fn subscription_plans(
    arm: &ArmClient,
    visible: &[Subscription],
    subscription_ids: &[String],
) -> Vec<Check> {
    let names = names_of(visible);
    let checks = subscription_ids.iter().map(|subscription_id| {
        let subject = name_of(&names, subscription_id);
        async move { defender_plan_check(arm, subscription_id, &subject).await }
    });
    futures::future::join_all(checks).await
}

/// For `--all`: whether JIT still protects every configured VM in scope.
async fn protection(arm: &ArmClient, scope: &Scope) -> Vec<Check> {
    let listing = match inventory::inventory(arm, scope).await {
        Ok(listing) => listing,
        Err(error) => {
            return vec![Check::from_error(
                CheckKind::Policy,
                "Azure",
                "list the VMs and their policies",
                &error,
            )];
        }
    };
    let configured: Vec<_> = listing
        .vms
        .iter()
        .filter(|vm| vm.state == JitState::Configured && !vm.classic)
        .collect();
    let mut subscriptions: Vec<String> = Vec::new();
    for vm in &configured {
        if !subscriptions
            .iter()
            .any(|known| known.eq_ignore_ascii_case(&vm.subscription_id))
        {
            subscriptions.push(vm.subscription_id.clone());
        }
    }
    let mut policies: HashMap<String, Vec<JitNetworkAccessPolicy>> = HashMap::new();
    for subscription_id in &subscriptions {
        match subscription_policies(arm, subscription_id).await {
            Ok(list) => {
                policies.insert(subscription_id.to_ascii_lowercase(), list);
            }
            Err(error) => {
                return vec![Check::from_error(
                    CheckKind::Policy,
                    subscription_id,
                    "list the JIT policies",
                    &error,
                )];
            }
        }
    }
    let topology = match NetworkTopology::load(arm, &subscriptions).await {
        Ok(topology) => topology,
        Err(error) => {
            return vec![Check::from_error(
                CheckKind::NetworkSecurityGroup,
                "Azure",
                "read the virtual networks",
                &error,
            )];
        }
    };
    let empty = Vec::new();
    let diagnoses = futures::stream::iter(configured.iter().map(|vm| {
        let context = Context {
            policies: policies
                .get(&vm.subscription_id.to_ascii_lowercase())
                .unwrap_or(&empty),
            topology: &topology,
            caller: None,
        };
        diagnose_vm(arm, &vm.id, &vm.name, context, VmChecks::Protection)
    }))
    .buffered(VMS_AT_ONCE)
    .collect::<Vec<_>>()
    .await;
    diagnoses.into_iter().flatten().collect()
}
