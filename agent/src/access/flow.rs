//! The access flow, once, for every front end: the CLI's `connect`, `request`, `proxy`
//! and `extend`, the agent, and the tray.
//!
//! Getting into a VM is always the same sequence: find the VM (asking when a name is
//! ambiguous) → make sure it runs (offering to start it) → make sure JIT covers it
//! (offering to enable it, by merging into its policy) → decide port, source and duration
//! → `initiate` → wait until Azure applied the request *and* the port answers → an
//! [`AccessWindow`]. [`AccessFlow`] owns that sequence; a front end only answers questions
//! and shows progress through the small [`Interaction`] trait, so the terminal, a tray
//! menu and a test script drive exactly the same code.
//!
//! The flow never prints, never reads a terminal and never exits: it reports
//! [`FlowEvent`]s, asks [`Question`]s, and fails with a [`FlowError`] that says precisely
//! what went wrong (and whether a person declined), for the front end to present.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::OnceCell;

use super::details::{AddressKind, VmDetails, read_vm};
use super::enable::{
    ChangeError, PolicyChange, RuleError, VmPlacement, default_port, enable, port_rules,
};
use super::extend::{ExtendError, extend_window, own_window};
use super::locate::{self, LocateError, Located, Scope, VmQuery, VmSummary};
use super::memory::RememberedVm;
use super::my_ip::{PublicAddress, discover};
use super::ownership::{ClientTag, Ownership, RequestMarker};
use super::plan::{
    PlanError, PortPlan, PortPreference, Service, SourceDecision, SourceRequest, choose_duration,
    choose_ports, choose_source,
};
use super::request::{
    Initiated, OpenPort, PortRequest, PortTarget, RequestError, VmRequest, WaitFor, WaitProgress,
    initiate, wait_until_open,
};
use super::status::{PolicyEntry, active_ports, entries_for_vm, find_entry};
use super::window::{AccessWindow, ExtendLength, PortStatus, WindowPort};
use crate::azure::arm::{ArmClient, ArmError, ArmErrorKind};
use crate::azure::clients::{JitNetworkAccessPoliciesClient, VirtualMachinesClient};
use crate::azure::models::{JitProtocol, Subscription};
use crate::azure::resource_id::ResourceId;
use crate::probe;

/// What a front end provides: a way to show progress and to answer questions.
pub trait Interaction: Sync {
    /// Something happened; show it (or not).
    fn event(&self, event: FlowEvent<'_>);

    /// A question for the person at the front end. Without one (a script, a pipe, the
    /// agent), answer [`Answer::CannotAsk`].
    fn ask(&self, question: Question<'_>) -> impl Future<Output = Answer> + Send;
}

/// Progress reports.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FlowEvent<'a> {
    /// A slow step begins; the next event ends it.
    Begin(Activity<'a>),
    /// A stopped VM runs now.
    VmStarted {
        /// The VM's name.
        vm: &'a str,
    },
    /// A policy was written (JIT enabled for the VM).
    PolicyChanged {
        /// The VM's name.
        vm: &'a str,
        /// What changed.
        change: &'a PolicyChange,
    },
    /// Azure accepted a request.
    Requested {
        /// Each VM's name with the ports asked for.
        vms: Vec<(&'a str, Vec<u16>)>,
        /// The source, in words.
        source: String,
        /// When the ports close, on Azure's clock.
        ends_at: Timestamp,
        /// Azure's clock now.
        azure_now: Timestamp,
    },
    /// A port answers.
    PortAnswered {
        /// The VM's name.
        vm: &'a str,
        /// The port.
        port: &'a OpenPort,
    },
    /// A window already open for our source is used instead of a new request.
    Reusing {
        /// The VM's name.
        vm: &'a str,
        /// When it closes.
        until: Timestamp,
    },
    /// Something a person should know (a widened source, a private address).
    Warning(String),
    /// A detail for `--verbose`.
    Detail(String),
}

/// Slow steps.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Activity<'a> {
    /// Starting a stopped VM.
    StartingVm {
        /// The VM's name.
        vm: &'a str,
    },
    /// Writing the JIT policy.
    EnablingJit {
        /// The VM's name.
        vm: &'a str,
    },
    /// Azure still reports `Initiating`.
    Applying {
        /// The VM's name.
        vm: &'a str,
    },
    /// Probing until the service answers.
    Probing {
        /// What is probed, e.g. `SSH on 20.1.2.3:22`.
        what: String,
    },
    /// Asking Azure for a longer window.
    Extending {
        /// The VM's name.
        vm: &'a str,
    },
}

/// Questions the flow may ask.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Question<'a> {
    /// The VM is stopped: start it?
    StartVm {
        /// The VM's name.
        vm: &'a str,
        /// Its power state, in words.
        state: &'a str,
    },
    /// JIT does not cover the VM: enable it with these rules?
    EnableJit {
        /// The VM's name.
        vm: &'a str,
        /// The port that would be protected.
        port: u16,
        /// The longest request that would be allowed.
        max_duration: SignedDuration,
        /// The sources requests could open the port for.
        allowed_sources: &'a [String],
    },
    /// Several VMs have this name: which one?
    ChooseVm {
        /// The name asked for.
        query: &'a str,
        /// The VMs it matches.
        candidates: &'a [VmSummary],
    },
}

/// An answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Yes.
    Yes,
    /// No: the person declined.
    No,
    /// This candidate (for [`Question::ChooseVm`]).
    Chosen(usize),
    /// Nobody can be asked (no terminal, the agent).
    CannotAsk,
}

/// Why the flow stopped.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The VM could not be found (or the name is ambiguous, or malformed).
    #[error(transparent)]
    Locate(#[from] LocateError),
    /// No VM has this name; similar names are suggested.
    #[error("no VM named '{query}' in {searched}")]
    NotFound {
        /// The name asked for.
        query: String,
        /// Where it was looked for, in words.
        searched: String,
        /// Whether the search was narrowed by configured subscriptions or a resource
        /// group (so widening it may help).
        narrowed: bool,
        /// Names of VMs in scope that look alike, closest first.
        suggestions: Vec<String>,
    },
    /// Several VMs match and the person declined to choose.
    #[error("no VM chosen")]
    NotChosen,
    /// Classic VMs cannot have JIT.
    #[error("{vm} is a classic VM, and JIT does not support classic VMs")]
    Classic {
        /// The VM's name.
        vm: String,
    },
    /// The VM is not running and was not started.
    #[error("{vm} is {state}")]
    NotRunning {
        /// The VM's name.
        vm: String,
        /// Its power state, in words.
        state: String,
        /// Whether a person said no (rather than nobody being asked).
        declined: bool,
    },
    /// JIT cannot protect a VM without an NSG.
    #[error(
        "JIT cannot protect {vm}: it has no network security group on its network interface or subnet"
    )]
    NoNetworkSecurityGroup {
        /// The VM's name.
        vm: String,
    },
    /// JIT is not enabled for the VM, and was not enabled.
    #[error("JIT is not enabled for {vm}")]
    NotEnabled {
        /// The VM's name.
        vm: String,
        /// Whether a person said no (rather than nobody being asked).
        declined: bool,
    },
    /// The VM has no address to connect to.
    #[error("{vm} has neither a public nor a private IP address")]
    NoAddress {
        /// The VM's name.
        vm: String,
    },
    /// The same VM was named twice in one request.
    #[error("{vm} is named twice")]
    NamedTwice {
        /// The VM's name.
        vm: String,
    },
    /// Reading the VM failed.
    #[error("could not read {vm}")]
    ReadVm {
        /// The VM's name.
        vm: String,
        /// Why.
        #[source]
        error: ArmError,
    },
    /// Starting the VM failed.
    #[error("could not start {vm}")]
    StartVm {
        /// The VM's name.
        vm: String,
        /// Why.
        #[source]
        error: ArmError,
    },
    /// Enabling JIT failed.
    #[error("could not enable JIT for {vm}")]
    Enable {
        /// The VM's name.
        vm: String,
        /// Why.
        #[source]
        error: Box<ChangeError>,
    },
    /// No request could be built.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The rules to enable JIT with are not valid.
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// Azure refused or failed the request.
    #[error("Azure refused the access request for {vms}")]
    Initiate {
        /// The VMs' names.
        vms: String,
        /// Why.
        #[source]
        error: Box<RequestError>,
    },
    /// Waiting for the port failed (timeout, revoked, another service).
    #[error(transparent)]
    Wait(Box<RequestError>),
    /// Extending failed.
    #[error(transparent)]
    Extend(Box<ExtendError>),
    /// Azure failed elsewhere.
    #[error(transparent)]
    Azure(#[from] ArmError),
}

/// Whether Azure refused a request because what it was built from is out of date: the
/// policy is gone (404) or no longer allows the VM, port or duration (400, 409). Nothing
/// was applied.
fn is_out_of_date(error: &FlowError) -> bool {
    let FlowError::Initiate { error, .. } = error else {
        return false;
    };
    let RequestError::Azure(error) = &**error else {
        return false;
    };
    matches!(
        error.kind(),
        ArmErrorKind::NotFound | ArmErrorKind::BadRequest | ArmErrorKind::Conflict
    )
}

impl FlowError {
    /// Whether a person said no to a question (as opposed to a failure).
    pub fn is_declined(&self) -> bool {
        matches!(
            self,
            FlowError::NotChosen
                | FlowError::NotRunning { declined: true, .. }
                | FlowError::NotEnabled { declined: true, .. }
        )
    }
}

/// What enabling JIT writes when the front end does not say otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnableDefaults {
    /// Sources requests may open the port for (`*`: any, each request still naming one).
    pub allowed_sources: Vec<String>,
    /// The longest request allowed.
    pub max_duration: SignedDuration,
}

impl Default for EnableDefaults {
    /// The portal's: any source, three hours.
    fn default() -> Self {
        Self {
            allowed_sources: vec!["*".to_owned()],
            max_duration: SignedDuration::from_hours(3),
        }
    }
}

/// What a person configured for one VM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmPreferences {
    /// The port to use.
    pub port: Option<u16>,
    /// The source to ask for (an address, a range, or `any`).
    pub source: Option<String>,
}

/// How the flow behaves, whatever the VM.
#[derive(Debug, Clone)]
pub struct FlowOptions {
    /// Subscriptions to search (ids or names); empty means every visible one.
    pub subscriptions: Vec<String>,
    /// "What is my IP" services.
    pub my_ip_urls: Vec<String>,
    /// How long they get to answer.
    pub my_ip_timeout: Duration,
    /// What enabling writes.
    pub enable_defaults: EnableDefaults,
    /// This user's tag (see [`super::ownership`]).
    pub tag: Option<ClientTag>,
    /// Per-VM preferences, keyed by resource id, `resource-group/name` or name.
    pub preferences: BTreeMap<String, VmPreferences>,
}

impl Default for FlowOptions {
    fn default() -> Self {
        Self {
            subscriptions: Vec::new(),
            my_ip_urls: Vec::new(),
            my_ip_timeout: Duration::from_secs(5),
            enable_defaults: EnableDefaults::default(),
            tag: None,
            preferences: BTreeMap::new(),
        }
    }
}

impl FlowOptions {
    /// The preferences that apply to a VM: by resource id, then `resource-group/name`,
    /// then name (all case-insensitive, as Azure names are).
    pub fn preferences_for(&self, details: &VmDetails) -> Option<&VmPreferences> {
        let group_and_name = format!("{}/{}", details.resource_group, details.name);
        [
            details.id.as_str(),
            group_and_name.as_str(),
            details.name.as_str(),
        ]
        .into_iter()
        .find_map(|key| {
            self.preferences
                .iter()
                .find(|(candidate, _)| candidate.eq_ignore_ascii_case(key))
                .map(|(_, preferences)| preferences)
        })
    }
}

/// What a person asks for one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessAsk {
    /// The VM.
    pub vm: VmQuery,
    /// Which port (`Automatic` lets the VM's preferences, then its OS, decide).
    pub ports: PortPreference,
    /// Which source; `None` lets the VM's preferences decide, else the caller's address.
    pub source: Option<SourceRequest>,
    /// How long; `None` means the policy's maximum.
    pub duration: Option<SignedDuration>,
    /// Start a stopped VM without asking.
    pub start: bool,
    /// Enable JIT for the VM without asking.
    pub enable: bool,
}

impl AccessAsk {
    /// An ask with every choice left to the flow.
    pub fn new(vm: VmQuery) -> Self {
        Self {
            vm,
            ports: PortPreference::Automatic,
            source: None,
            duration: None,
            start: false,
            enable: false,
        }
    }
}

/// A VM ready to be asked for: running, covered by JIT, and every decision made.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The VM and its network.
    pub details: VmDetails,
    /// Its policy entry.
    pub entry: PolicyEntry,
    /// The port(s).
    pub plan: PortPlan,
    /// How long.
    pub duration: SignedDuration,
    /// The source for each planned port.
    pub sources: Vec<(u16, SourceDecision)>,
    /// The policy entry is what the agent remembered (see [`super::memory`]), not read
    /// from Azure this time: the `initiate` checks it.
    pub remembered: bool,
}

impl Prepared {
    /// The ports to request, each with its source.
    pub fn port_requests(&self) -> Vec<PortRequest> {
        self.plan
            .rules()
            .iter()
            .map(|rule| PortRequest {
                number: rule.number,
                source_prefix: self.source_for(rule.number),
            })
            .collect()
    }

    fn source_for(&self, number: u16) -> Option<String> {
        self.sources
            .iter()
            .find(|(port, _)| *port == number)
            .and_then(|(_, decision)| decision.prefix.clone())
    }

    /// Where to connect, and whether through an Azure Firewall; `Err` when the VM has no
    /// address at all. The address kind tells when it is a private one.
    pub fn connect_host(&self) -> Result<(String, bool, Option<AddressKind>), FlowError> {
        if let Some(firewall) = self.entry.virtual_machine.public_ip_address.clone() {
            return Ok((firewall, true, None));
        }
        let (address, kind) =
            self.details
                .connect_address()
                .ok_or_else(|| FlowError::NoAddress {
                    vm: self.details.name.clone(),
                })?;
        Ok((address, false, Some(kind)))
    }

    /// What to probe for each planned port.
    pub fn targets(&self) -> Result<Vec<PortTarget>, FlowError> {
        let (host, through_firewall, _) = self.connect_host()?;
        Ok(self
            .plan
            .rules()
            .iter()
            .map(|rule| PortTarget {
                vm_id: self.entry.virtual_machine.id.clone(),
                number: rule.number,
                host: host.clone(),
                through_firewall,
                service: self.plan.service(),
            })
            .collect())
    }

    /// How to wait for the plan's ports.
    pub fn wait_for(&self) -> WaitFor {
        match &self.plan {
            PortPlan::Single { .. } => WaitFor::All,
            PortPlan::Probe { service, .. } => WaitFor::FirstAnswering(*service),
        }
    }

    /// The source the ports are opened for, in words.
    pub fn source_text(&self) -> String {
        let mut prefixes: Vec<String> = self
            .sources
            .iter()
            .map(|(_, decision)| {
                decision
                    .prefix
                    .clone()
                    .unwrap_or_else(|| "the address Azure sees".to_owned())
            })
            .collect();
        prefixes.dedup();
        prefixes.join(", ")
    }
}

/// How long to wait for the ports, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Until Azure applied the request and the service answers, at most this long.
    UntilAnswering(Duration),
    /// Return as soon as Azure accepted the request.
    NotAtAll,
}

/// Access granted to one VM.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The VM and the decisions made for it.
    pub prepared: Prepared,
    /// The request Azure accepted (`None` when an open window was reused).
    pub initiated: Option<Initiated>,
    /// The ports that answer (empty without waiting).
    pub open: Vec<OpenPort>,
    /// The window, as a front end shows it and the agent tracks it.
    pub window: AccessWindow,
}

impl Grant {
    /// The protocol to connect with.
    pub fn service(&self) -> Service {
        self.open
            .first()
            .map_or_else(|| self.prepared.plan.service(), |port| port.service)
    }
}

/// The access flow over one ARM client, one front end, and its options.
#[derive(Debug)]
pub struct AccessFlow<'a, I> {
    arm: &'a ArmClient,
    http: reqwest::Client,
    interaction: &'a I,
    options: FlowOptions,
    subscriptions: OnceCell<Vec<Subscription>>,
    public_address: OnceCell<PublicAddress>,
    remembered: std::sync::Mutex<Vec<RememberedVm>>,
}

impl<'a, I: Interaction> AccessFlow<'a, I> {
    /// A flow that reaches Azure through `arm`, "what is my IP" services through `http`,
    /// and the person through `interaction`.
    pub fn new(
        arm: &'a ArmClient,
        http: reqwest::Client,
        interaction: &'a I,
        options: FlowOptions,
    ) -> Self {
        Self {
            arm,
            http,
            interaction,
            options,
            subscriptions: OnceCell::new(),
            public_address: OnceCell::new(),
            remembered: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The same flow, using what the agent remembered about VMs (see
    /// [`super::memory`]): [`AccessFlow::open`] and [`AccessFlow::open_or_reuse`] then
    /// skip finding a remembered VM's policy.
    pub fn with_remembered(self, remembered: Vec<RememberedVm>) -> Self {
        *self.remembered_vms() = remembered;
        self
    }

    /// What to remember after `grant` was obtained for `ask`; `None` when the grant has
    /// no policy to remember.
    pub fn to_remember(&self, ask: &AccessAsk, grant: &Grant) -> Option<RememberedVm> {
        if grant.prepared.entry.policy_id().is_empty() {
            return None;
        }
        Some(RememberedVm::new(
            &ask.vm,
            &self.options.subscriptions,
            &grant.prepared.details.name,
            &grant.prepared.entry,
        ))
    }

    fn remembered_vms(&self) -> std::sync::MutexGuard<'_, Vec<RememberedVm>> {
        // Held only to copy or replace entries: a panic cannot leave it half-changed.
        self.remembered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn recall(&self, query: &VmQuery) -> Option<RememberedVm> {
        self.remembered_vms()
            .iter()
            .find(|known| known.is_for(query, &self.options.subscriptions))
            .cloned()
    }

    fn forget(&self, query: &VmQuery) {
        let subscriptions = &self.options.subscriptions;
        self.remembered_vms()
            .retain(|known| !known.is_for(query, subscriptions));
    }

    /// The ARM client.
    pub fn arm(&self) -> &ArmClient {
        self.arm
    }

    /// The options.
    pub fn options(&self) -> &FlowOptions {
        &self.options
    }

    /// The subscriptions searched (read once).
    pub async fn subscriptions(&self) -> Result<&[Subscription], FlowError> {
        let subscriptions = self
            .subscriptions
            .get_or_try_init(|| {
                locate::resolve_subscriptions(self.arm, &self.options.subscriptions)
            })
            .await?;
        Ok(subscriptions)
    }

    /// Where to look for `query`: a resource id names its subscription (no listing);
    /// a name is looked for in every subscription searched.
    pub async fn scope(
        &self,
        query: &VmQuery,
        resource_group: Option<&str>,
    ) -> Result<Scope, FlowError> {
        if let VmQuery::Id(id) = query {
            return Ok(Scope {
                subscription_ids: vec![id.subscription_id().to_owned()],
                resource_group: None,
            });
        }
        self.search_scope(resource_group).await
    }

    /// Every subscription searched, optionally one resource group of each.
    pub async fn search_scope(&self, resource_group: Option<&str>) -> Result<Scope, FlowError> {
        Ok(Scope {
            subscription_ids: self
                .subscriptions()
                .await?
                .iter()
                .filter_map(|subscription| subscription.subscription_id.clone())
                .collect(),
            resource_group: resource_group.map(str::to_owned),
        })
    }

    /// Finds exactly one VM: an ambiguous name becomes a question, an unknown one an
    /// error with close names.
    pub async fn locate(&self, query: &VmQuery) -> Result<VmSummary, FlowError> {
        Ok(self.find(query).await?.summary)
    }

    /// Finds exactly one VM, with its details when Resource Graph knows them all (one
    /// Resource Graph query; see [`locate::find_located`]): an ambiguous name becomes a
    /// question, an unknown one an error with close names.
    pub async fn find(&self, query: &VmQuery) -> Result<Located, FlowError> {
        let scope = self.scope(query, None).await?;
        let mut candidates = locate::find_located(self.arm, &scope, query)
            .await
            .map_err(LocateError::from)?;
        if candidates.len() > 1 {
            let text = query.to_string();
            let summaries: Vec<VmSummary> = candidates
                .iter()
                .map(|candidate| candidate.summary.clone())
                .collect();
            let answer = self
                .interaction
                .ask(Question::ChooseVm {
                    query: &text,
                    candidates: &summaries,
                })
                .await;
            return match answer {
                Answer::Chosen(index) if index < candidates.len() => {
                    Ok(candidates.swap_remove(index))
                }
                Answer::CannotAsk => Err(LocateError::Ambiguous {
                    query: text,
                    candidates: summaries,
                }
                .into()),
                _ => Err(FlowError::NotChosen),
            };
        }
        match locate::single(&scope, query, candidates, |candidate| &candidate.summary) {
            Ok(vm) => Ok(vm),
            Err(LocateError::NotFound {
                query: text,
                searched,
            }) => {
                let suggestions = self.similar_names(&scope, query).await;
                Err(FlowError::NotFound {
                    query: text,
                    searched,
                    narrowed: !self.options.subscriptions.is_empty()
                        || scope.resource_group.is_some()
                        || matches!(query, VmQuery::GroupAndName { .. }),
                    suggestions,
                })
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Finds one VM that JIT can cover (not a classic one).
    pub async fn locate_supported(&self, query: &VmQuery) -> Result<VmSummary, FlowError> {
        Ok(self.find_supported(query).await?.summary)
    }

    async fn find_supported(&self, query: &VmQuery) -> Result<Located, FlowError> {
        let located = self.find(query).await?;
        if located.summary.is_classic() {
            return Err(FlowError::Classic {
                vm: located.summary.name,
            });
        }
        Ok(located)
    }

    /// Names in scope that look like the one asked for (only on the failure path: one
    /// more Resource Graph query).
    async fn similar_names(&self, scope: &Scope, query: &VmQuery) -> Vec<String> {
        let wanted = match query {
            VmQuery::Name(name) | VmQuery::GroupAndName { name, .. } => name.to_ascii_lowercase(),
            VmQuery::Id(id) => id.name().unwrap_or_default().to_ascii_lowercase(),
        };
        let wide = Scope {
            subscription_ids: scope.subscription_ids.clone(),
            resource_group: None,
        };
        let Ok(vms) = locate::find_vms(self.arm, &wide, None).await else {
            return Vec::new();
        };
        let mut scored: Vec<(f64, String)> = vms
            .iter()
            .map(|vm| {
                let score = strsim::jaro_winkler(&wanted, &vm.name.to_ascii_lowercase());
                (score, vm.name.clone())
            })
            .filter(|(score, _)| *score >= 0.85)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let mut names: Vec<String> = scored.into_iter().map(|(_, name)| name).collect();
        names.dedup();
        names.truncate(3);
        names
    }

    /// Everything up to the request: locate, start, enable, decide (from Azure, not
    /// from what the agent remembered).
    pub async fn prepare(&self, ask: &AccessAsk) -> Result<Prepared, FlowError> {
        let located = self.find_supported(&ask.vm).await?;
        let details = self.checked_details(located).await?;
        let details = if details.is_running() {
            details
        } else {
            self.start(details, ask.start).await?
        };
        let entry = match find_entry(self.arm, &details.subscription_id, &details.id).await? {
            Some(entry) => entry,
            None => self.enable_on_demand(&details, ask).await?,
        };
        self.decide(ask, details, entry, false).await
    }

    /// [`AccessFlow::prepare`], from what the agent remembered when it remembers the VM.
    pub async fn prepare_with_memory(&self, ask: &AccessAsk) -> Result<Prepared, FlowError> {
        if let Some(remembered) = self.recall(&ask.vm) {
            if let Some(prepared) = self.prepare_remembered(ask, &remembered).await? {
                return Ok(prepared);
            }
            self.forget(&ask.vm);
        }
        self.prepare(ask).await
    }

    /// Prepares a remembered VM: its network and power state read again by id (one
    /// Resource Graph query), its policy entry as remembered. `None` when Resource Graph
    /// no longer finds the VM by that id.
    async fn prepare_remembered(
        &self,
        ask: &AccessAsk,
        remembered: &RememberedVm,
    ) -> Result<Option<Prepared>, FlowError> {
        let Ok(id) = ResourceId::parse(&remembered.vm_id) else {
            return Ok(None);
        };
        let scope = Scope {
            subscription_ids: vec![id.subscription_id().to_owned()],
            resource_group: None,
        };
        let mut candidates = locate::find_located(self.arm, &scope, &VmQuery::Id(id))
            .await
            .map_err(LocateError::from)?;
        if candidates.len() != 1 || candidates[0].summary.is_classic() {
            self.interaction.event(FlowEvent::Detail(format!(
                "{} is no longer where the agent remembered it; looking for it again",
                remembered.vm_name
            )));
            return Ok(None);
        }
        let details = self.checked_details(candidates.remove(0)).await?;
        let details = if details.is_running() {
            details
        } else {
            self.start(details, ask.start).await?
        };
        self.interaction.event(FlowEvent::Detail(format!(
            "using the JIT policy the agent remembered for {}",
            details.name
        )));
        self.decide(ask, details, remembered.policy_entry(), true)
            .await
            .map(Some)
    }

    /// The details of a located VM: Resource Graph's when they are complete and say the
    /// VM runs, else ARM's (Resource Graph lags: a VM it reports stopped may run now).
    async fn checked_details(&self, located: Located) -> Result<VmDetails, FlowError> {
        let reason = match located.details {
            Ok(details) if details.is_running() => return Ok(*details),
            Ok(details) => format!(
                "Resource Graph reports {} {}",
                details.name,
                details
                    .power_state
                    .as_ref()
                    .map_or_else(|| "not running".to_owned(), ToString::to_string)
            ),
            Err(reason) => reason,
        };
        self.interaction.event(FlowEvent::Detail(format!(
            "reading {} from ARM ({reason})",
            located.summary.name
        )));
        read_vm(self.arm, &located.summary.id)
            .await
            .map_err(|error| FlowError::ReadVm {
                vm: located.summary.name.clone(),
                error,
            })
    }

    /// The decisions for a running VM covered by `entry`: port, duration, source.
    async fn decide(
        &self,
        ask: &AccessAsk,
        details: VmDetails,
        entry: PolicyEntry,
        remembered: bool,
    ) -> Result<Prepared, FlowError> {
        let preferences = self.options.preferences_for(&details).cloned();
        let preference = match (ask.ports, preferences.as_ref().and_then(|it| it.port)) {
            (PortPreference::Automatic, Some(number)) => PortPreference::Number(number),
            (preference, _) => preference,
        };
        let plan = choose_ports(
            details.os.as_ref(),
            &entry.virtual_machine.ports,
            preference,
        )?;
        let duration = choose_duration(ask.duration, &plan.rules())?;
        let source_request = match (&ask.source, preferences.and_then(|it| it.source)) {
            (Some(source), _) => source.clone(),
            (None, Some(text)) => SourceRequest::parse(&text)?,
            (None, None) => SourceRequest::Automatic,
        };
        let public = if source_request == SourceRequest::Automatic {
            Some(self.public_address().await)
        } else {
            None
        };
        let mut sources = Vec::new();
        let mut warned: Vec<String> = Vec::new();
        for rule in plan.rules() {
            let decision = choose_source(&source_request, public, rule)?;
            for warning in &decision.warnings {
                if !warned.contains(warning) {
                    self.interaction.event(FlowEvent::Warning(warning.clone()));
                    warned.push(warning.clone());
                }
            }
            sources.push((rule.number, decision));
        }
        let prepared = Prepared {
            details,
            entry,
            plan,
            duration,
            sources,
            remembered,
        };
        if let (_, false, Some(AddressKind::Private)) = prepared.connect_host()? {
            self.interaction.event(FlowEvent::Warning(format!(
                "{} has no public IP; connecting to its private address (needs a VPN or peering)",
                prepared.details.name
            )));
        }
        Ok(prepared)
    }

    /// The caller's public address, learned once.
    async fn public_address(&self) -> &PublicAddress {
        self.public_address
            .get_or_init(|| {
                discover(
                    &self.http,
                    &self.options.my_ip_urls,
                    self.options.my_ip_timeout,
                )
            })
            .await
    }

    async fn start(
        &self,
        details: VmDetails,
        without_asking: bool,
    ) -> Result<VmDetails, FlowError> {
        let state = details
            .power_state
            .as_ref()
            .map_or_else(|| "not running".to_owned(), ToString::to_string);
        let answer = if without_asking {
            Answer::Yes
        } else {
            self.interaction
                .ask(Question::StartVm {
                    vm: &details.name,
                    state: &state,
                })
                .await
        };
        if answer != Answer::Yes {
            return Err(FlowError::NotRunning {
                vm: details.name,
                state,
                declined: answer == Answer::No,
            });
        }
        self.interaction
            .event(FlowEvent::Begin(Activity::StartingVm { vm: &details.name }));
        let failed = |error| FlowError::StartVm {
            vm: details.name.clone(),
            error,
        };
        VirtualMachinesClient::new(self.arm.clone())
            .start(
                &details.subscription_id,
                &details.resource_group,
                &details.name,
            )
            .await
            .map_err(failed)?;
        self.interaction
            .event(FlowEvent::VmStarted { vm: &details.name });
        read_vm(self.arm, &details.id).await.map_err(failed)
    }

    async fn enable_on_demand(
        &self,
        details: &VmDetails,
        ask: &AccessAsk,
    ) -> Result<PolicyEntry, FlowError> {
        if !details.has_network_security_group() {
            return Err(FlowError::NoNetworkSecurityGroup {
                vm: details.name.clone(),
            });
        }
        let number = match ask.ports {
            PortPreference::Number(number) => number,
            PortPreference::Ssh => 22,
            PortPreference::Rdp => 3389,
            PortPreference::Automatic => default_port(details.os.as_ref()),
        };
        let defaults = &self.options.enable_defaults;
        let answer = if ask.enable {
            Answer::Yes
        } else {
            self.interaction
                .ask(Question::EnableJit {
                    vm: &details.name,
                    port: number,
                    max_duration: defaults.max_duration,
                    allowed_sources: &defaults.allowed_sources,
                })
                .await
        };
        if answer != Answer::Yes {
            return Err(FlowError::NotEnabled {
                vm: details.name.clone(),
                declined: answer == Answer::No,
            });
        }
        let failed = |error| FlowError::Enable {
            vm: details.name.clone(),
            error: Box::new(error),
        };
        let rules = port_rules(
            &[number],
            &JitProtocol::All,
            &defaults.allowed_sources,
            defaults.max_duration,
        )?;
        let placement = VmPlacement::new(&details.id, &details.location).map_err(failed)?;
        self.interaction
            .event(FlowEvent::Begin(Activity::EnablingJit {
                vm: &details.name,
            }));
        let change = enable(self.arm, &placement, rules).await.map_err(failed)?;
        self.interaction.event(FlowEvent::PolicyChanged {
            vm: &details.name,
            change: &change,
        });
        let policy = change
            .policy
            .ok_or_else(|| failed(ChangeError::NotEnabled))?;
        entries_for_vm(std::slice::from_ref(&policy), &details.id)
            .into_iter()
            .next()
            .ok_or_else(|| failed(ChangeError::NotEnabled))
    }

    /// Posts one request for prepared VMs that share a policy and a duration.
    pub async fn request(
        &self,
        prepared: &[&Prepared],
        justification: Option<&str>,
    ) -> Result<Initiated, FlowError> {
        let Some(first) = prepared.first() else {
            return Err(FlowError::Plan(PlanError::NoPorts));
        };
        let vms: Vec<VmRequest> = prepared
            .iter()
            .map(|prepared| VmRequest {
                vm_id: prepared.entry.virtual_machine.id.clone(),
                ports: prepared.port_requests(),
            })
            .collect();
        let names: Vec<&str> = prepared
            .iter()
            .map(|prepared| prepared.details.name.as_str())
            .collect();
        let marker = RequestMarker::new(self.options.tag.as_ref());
        let initiated = initiate(
            self.arm,
            first.entry.policy_id(),
            &vms,
            first.duration,
            justification,
            &marker,
        )
        .await
        .map_err(|error| FlowError::Initiate {
            vms: names.join(", "),
            error: Box::new(error),
        })?;
        let mut sources: Vec<String> = prepared.iter().map(|it| it.source_text()).collect();
        sources.dedup();
        self.interaction.event(FlowEvent::Requested {
            vms: prepared
                .iter()
                .map(|prepared| {
                    (
                        prepared.details.name.as_str(),
                        prepared
                            .plan
                            .rules()
                            .iter()
                            .map(|rule| rule.number)
                            .collect(),
                    )
                })
                .collect(),
            source: sources.join(", "),
            ends_at: initiated.end_time,
            azure_now: self.arm.server_now(),
        });
        Ok(initiated)
    }

    /// Waits until Azure applied the request and the prepared ports answer.
    pub async fn wait(
        &self,
        prepared: &Prepared,
        initiated: &Initiated,
        timeout: Duration,
    ) -> Result<Vec<OpenPort>, FlowError> {
        let targets = prepared.targets()?;
        let name = prepared.details.name.as_str();
        let open = wait_until_open(
            self.arm,
            initiated,
            &targets,
            prepared.wait_for(),
            timeout,
            |progress| match progress {
                WaitProgress::Applying => self
                    .interaction
                    .event(FlowEvent::Begin(Activity::Applying { vm: name })),
                WaitProgress::Probing { what } => {
                    self.interaction
                        .event(FlowEvent::Begin(Activity::Probing { what: what.clone() }));
                }
            },
        )
        .await
        .map_err(|error| FlowError::Wait(Box::new(error)))?;
        for port in &open {
            self.interaction
                .event(FlowEvent::PortAnswered { vm: name, port });
        }
        Ok(open)
    }

    /// The window a request opened, as every front end shows it and the agent tracks it.
    pub fn window(
        &self,
        prepared: &Prepared,
        initiated: &Initiated,
        open: &[OpenPort],
    ) -> AccessWindow {
        let offset = self
            .arm
            .server_time_offset()
            .unwrap_or(initiated.server_offset);
        let template = AccessWindow {
            vm_id: prepared.details.id.clone(),
            vm_name: prepared.details.name.clone(),
            resource_group: prepared.details.resource_group.clone(),
            subscription_id: prepared.details.subscription_id.clone(),
            policy_id: initiated.policy_id.clone(),
            ports: prepared
                .plan
                .rules()
                .iter()
                .map(|rule| WindowPort {
                    number: rule.number,
                    mapped_port: None,
                    status: PortStatus::Initiating,
                })
                .collect(),
            source_address_prefix: prepared.source_text(),
            requested_at: initiated.request.start_time_utc,
            ends_at: initiated.end_time,
            server_clock_offset_at_registration: offset,
            justification: initiated.request.justification.clone(),
            connect_address: prepared.connect_host().ok().map(|(host, _, _)| host),
            requestor: None,
        };
        let mut window = AccessWindow::from_request(&template, &initiated.request, offset)
            .unwrap_or_else(|| template.clone());
        if !open.is_empty() {
            // Among probed candidates, only the port that answered is the window's.
            window
                .ports
                .retain(|port| open.iter().any(|answered| answered.number == port.number));
            for port in &mut window.ports {
                port.status = PortStatus::Initiated;
                if let Some(answered) = open.iter().find(|answered| answered.number == port.number)
                {
                    port.mapped_port = answered.mapped_port.or(port.mapped_port);
                }
            }
            if let Some(answered) = open.first() {
                window.connect_address = Some(answered.host.clone());
            }
        }
        window
    }

    /// The whole flow for one VM: prepare, request, wait. A VM the agent remembered
    /// (see [`AccessFlow::with_remembered`]) costs one ARM call before the request; if
    /// Azure refuses the request because what was remembered is out of date, the VM is
    /// prepared again from Azure and asked for once more.
    pub async fn open(
        &self,
        ask: &AccessAsk,
        justification: Option<&str>,
        wait: Wait,
    ) -> Result<Grant, FlowError> {
        let prepared = self.prepare_with_memory(ask).await?;
        let (prepared, initiated) = self.request_one(ask, prepared, justification).await?;
        self.finish(prepared, initiated, wait).await
    }

    /// For `jit proxy` and the agent's shared requests: an open window for the decided
    /// source that answers and has at least `margin` left is used as it is; otherwise
    /// access is requested and waited for, as [`AccessFlow::open`] does.
    pub async fn open_or_reuse(
        &self,
        ask: &AccessAsk,
        margin: SignedDuration,
        justification: Option<&str>,
        wait: Wait,
    ) -> Result<Grant, FlowError> {
        let mut prepared = self.prepare_with_memory(ask).await?;
        if prepared.remembered {
            // Reuse needs the policy's requests; reading the policy also checks the entry.
            let policy = JitNetworkAccessPoliciesClient::new(self.arm.clone())
                .get_by_id(prepared.entry.policy_id())
                .await;
            let fresh = match policy {
                Ok(policy) => entries_for_vm(std::slice::from_ref(&policy), &prepared.details.id)
                    .into_iter()
                    .next(),
                Err(error) if error.is_not_found() => None,
                Err(error) => return Err(error.into()),
            };
            match fresh {
                Some(entry) => {
                    prepared.entry = entry;
                    prepared.remembered = false;
                }
                None => {
                    self.forget(&ask.vm);
                    prepared = self.prepare(ask).await?;
                }
            }
        }
        if let Some(grant) = self.reusable(&prepared, margin).await {
            return Ok(grant);
        }
        let (prepared, initiated) = self.request_one(ask, prepared, justification).await?;
        self.finish(prepared, initiated, wait).await
    }

    /// Requests access for one prepared VM; when the request was built from what the
    /// agent remembered and Azure refuses it as out of date (the policy, VM or port is
    /// gone, the duration too long: 4xx, so nothing was applied), prepares the VM again
    /// from Azure and requests once more.
    pub async fn request_one(
        &self,
        ask: &AccessAsk,
        prepared: Prepared,
        justification: Option<&str>,
    ) -> Result<(Prepared, Initiated), FlowError> {
        match self.request(&[&prepared], justification).await {
            Ok(initiated) => Ok((prepared, initiated)),
            Err(error) if prepared.remembered && is_out_of_date(&error) => {
                self.interaction.event(FlowEvent::Detail(format!(
                    "Azure refused what the agent remembered about {} ({error:#}); looking it up again",
                    prepared.details.name
                )));
                self.forget(&ask.vm);
                let prepared = self.prepare(ask).await?;
                let initiated = self.request(&[&prepared], justification).await?;
                Ok((prepared, initiated))
            }
            Err(error) => Err(error),
        }
    }

    /// Waits (or not) for a request, and builds the grant.
    async fn finish(
        &self,
        prepared: Prepared,
        initiated: Initiated,
        wait: Wait,
    ) -> Result<Grant, FlowError> {
        let open = match wait {
            Wait::UntilAnswering(timeout) => self.wait(&prepared, &initiated, timeout).await?,
            Wait::NotAtAll => Vec::new(),
        };
        let window = self.window(&prepared, &initiated, &open);
        Ok(Grant {
            prepared,
            initiated: Some(initiated),
            open,
            window,
        })
    }

    /// Request and wait for a VM already prepared.
    pub async fn open_prepared(
        &self,
        prepared: Prepared,
        justification: Option<&str>,
        wait: Wait,
    ) -> Result<Grant, FlowError> {
        let initiated = self.request(&[&prepared], justification).await?;
        self.finish(prepared, initiated, wait).await
    }

    /// The flow for several VMs: every VM is prepared first (so a mistake in the last
    /// name costs no request), then one request goes to each policy for the VMs that
    /// share it and a duration, then each VM is waited for.
    pub async fn open_many(
        &self,
        asks: &[AccessAsk],
        justification: Option<&str>,
        wait: Wait,
    ) -> Result<Vec<Grant>, FlowError> {
        if let [ask] = asks {
            return Ok(vec![self.open(ask, justification, wait).await?]);
        }
        let mut prepared_all: Vec<Prepared> = Vec::new();
        for ask in asks {
            let prepared = self.prepare(ask).await?;
            if prepared_all
                .iter()
                .any(|other| other.details.id.eq_ignore_ascii_case(&prepared.details.id))
            {
                return Err(FlowError::NamedTwice {
                    vm: prepared.details.name,
                });
            }
            prepared_all.push(prepared);
        }
        let mut groups: BTreeMap<(String, i64), Vec<usize>> = BTreeMap::new();
        for (index, prepared) in prepared_all.iter().enumerate() {
            groups
                .entry((
                    prepared.entry.policy_id().to_ascii_lowercase(),
                    prepared.duration.as_secs(),
                ))
                .or_default()
                .push(index);
        }
        let mut grants = Vec::new();
        for indexes in groups.values() {
            let members: Vec<&Prepared> =
                indexes.iter().map(|&index| &prepared_all[index]).collect();
            let initiated = self.request(&members, justification).await?;
            for prepared in members {
                let open = match wait {
                    Wait::UntilAnswering(timeout) => {
                        self.wait(prepared, &initiated, timeout).await?
                    }
                    Wait::NotAtAll => Vec::new(),
                };
                let window = self.window(prepared, &initiated, &open);
                grants.push(Grant {
                    prepared: prepared.clone(),
                    initiated: Some(initiated.clone()),
                    open,
                    window,
                });
            }
        }
        Ok(grants)
    }

    /// An open window for the decided source on the planned port that answers now and
    /// has at least `margin` left (for `jit proxy`, which runs before every connection).
    pub async fn reusable(&self, prepared: &Prepared, margin: SignedDuration) -> Option<Grant> {
        let PortPlan::Single { rule, service } = &prepared.plan else {
            return None;
        };
        let wanted_source = prepared.source_for(rule.number);
        let until = self.arm.server_now().checked_add(margin).ok()?;
        let active = active_ports(
            &prepared.entry.policy,
            &prepared.entry.virtual_machine.id,
            until,
        )
        .into_iter()
        .find(|port| {
            port.number == rule.number
                && port.status == "Initiated"
                && match (&wanted_source, &port.source) {
                    (Some(wanted), Some(source)) => wanted == source,
                    (None, _) => true,
                    _ => false,
                }
        })?;
        let (host, through_firewall, _) = prepared.connect_host().ok()?;
        let connect_port = if through_firewall {
            active.mapped_port.unwrap_or(active.number)
        } else {
            active.number
        };
        let address = tokio::net::lookup_host((host.as_str(), connect_port))
            .await
            .ok()?
            .next()?;
        let timeout = Duration::from_secs(3);
        let outcome = match service {
            Service::Ssh => probe::probe_ssh(address, timeout).await,
            Service::Rdp => probe::probe_rdp(address, timeout).await,
            Service::Other => probe::probe_tcp(address, timeout).await,
        };
        if !outcome.is_ready() {
            self.interaction.event(FlowEvent::Detail(format!(
                "the open window does not answer ({outcome}); asking again"
            )));
            return None;
        }
        self.interaction.event(FlowEvent::Reusing {
            vm: &prepared.details.name,
            until: active.end_time_utc,
        });
        let open = vec![OpenPort {
            number: active.number,
            host: host.clone(),
            connect_port,
            mapped_port: active.mapped_port,
            service: *service,
            detail: outcome.to_string(),
            answered_at: None,
        }];
        let window = AccessWindow {
            vm_id: prepared.details.id.clone(),
            vm_name: prepared.details.name.clone(),
            resource_group: prepared.details.resource_group.clone(),
            subscription_id: prepared.details.subscription_id.clone(),
            policy_id: prepared.entry.policy_id().to_owned(),
            ports: vec![WindowPort {
                number: active.number,
                mapped_port: active.mapped_port,
                status: PortStatus::Initiated,
            }],
            source_address_prefix: active.source.clone().unwrap_or_default(),
            requested_at: active.start_time_utc,
            ends_at: active.end_time_utc,
            server_clock_offset_at_registration: self
                .arm
                .server_time_offset()
                .unwrap_or(SignedDuration::ZERO),
            justification: active.justification.clone(),
            connect_address: Some(host),
            requestor: active.requestor.clone(),
        };
        Some(Grant {
            prepared: prepared.clone(),
            initiated: None,
            open,
            window,
        })
    }

    /// Extends this user's open window on a VM, found in its policy (for front ends
    /// that do not know the window; the agent extends the windows it tracks with
    /// [`extend_window`] directly).
    pub async fn extend(
        &self,
        query: &VmQuery,
        length: &ExtendLength,
        justification: Option<&str>,
    ) -> Result<AccessWindow, FlowError> {
        let summary = self.locate_supported(query).await?;
        let entry = find_entry(self.arm, &summary.subscription_id, &summary.id)
            .await?
            .ok_or_else(|| FlowError::NotEnabled {
                vm: summary.name.clone(),
                declined: false,
            })?;
        let offset = self
            .arm
            .server_time_offset()
            .unwrap_or(SignedDuration::ZERO);
        let template = AccessWindow {
            vm_id: summary.id.clone(),
            vm_name: summary.name.clone(),
            resource_group: summary.resource_group.clone(),
            subscription_id: summary.subscription_id.clone(),
            policy_id: entry.policy_id().to_owned(),
            ports: Vec::new(),
            source_address_prefix: String::new(),
            requested_at: Timestamp::UNIX_EPOCH,
            ends_at: Timestamp::UNIX_EPOCH,
            server_clock_offset_at_registration: offset,
            justification: None,
            connect_address: entry.virtual_machine.public_ip_address.clone(),
            requestor: None,
        };
        let ownership = Ownership {
            tag: self.options.tag.clone(),
            requestor: None,
        };
        let window = own_window(
            &entry.policy,
            &template,
            &ownership,
            self.arm.server_now(),
            offset,
        )
        .map_err(|error| FlowError::Extend(Box::new(error)))?;
        self.interaction
            .event(FlowEvent::Begin(Activity::Extending { vm: &summary.name }));
        extend_window(
            self.arm,
            &window,
            length,
            self.options.tag.as_ref(),
            justification,
        )
        .await
        .map_err(|error| FlowError::Extend(Box::new(error)))
    }
}
