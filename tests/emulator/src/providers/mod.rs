//! The emulated resource providers: every ARM route the emulator serves.
//!
//! [`dispatch`] takes an authenticated [`ArmRequest`] from the front end and answers it
//! as ARM and the resource provider behind it would: the route is matched
//! case-insensitively, `api-version` is checked against the versions that provider
//! accepts, the subscription and resource group must exist (`SubscriptionNotFound`,
//! `ResourceGroupNotFound`), and then the provider module handles the request against the
//! shared state. [`required_action`] names the ARM action a request needs, for the front
//! end's RBAC check.
//!
//! What it gives up: only the routes a JIT client needs exist (see `docs/world-file.md`);
//! anything else is a 404 `InvalidResourceType`, and known resources answer 405 to
//! methods the emulator does not model.

mod authorization;
mod compute;
mod kql;
mod network;
mod resource_graph;
pub use resource_graph::query_world;
mod resources;
pub(crate) mod security;
mod security_rules;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::arm_http::{ArmRequest, ArmResponse};
use crate::hooks::{Fired, HookPoint, Trigger};
use crate::state::SharedState;
use crate::state::ids::{key, resource_group_id};
use crate::state::model::Resources;

/// The providers, each with its own accepted api-versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    Resources,
    ResourceGraph,
    Compute,
    Network,
    SecurityLocations,
    SecurityJit,
    SecurityPricings,
    Authorization,
}

impl Provider {
    /// The accepted api-versions, newest first. The specs in `../shared/azure-rest/`
    /// define the shapes; every version here is one a released Microsoft client sends
    /// (read from the installed packages: azure-mgmt-compute 39 sends Compute
    /// 2026-04-01, azure-mgmt-network 33 Network 2026-03-01, the Azure CLI 2.91 Network
    /// 2022-01-01 to 2025-09-01 and Compute 2022-11-01 to 2026-04-01), answered with the
    /// shapes of the spec's version. `docs/emulator.md` says how to add one.
    fn api_versions(self) -> &'static [&'static str] {
        match self {
            Self::Resources => &[
                "2024-11-01",
                "2024-07-01",
                "2024-03-01",
                "2023-07-01",
                "2022-12-01",
                "2022-09-01",
                "2022-01-01",
                "2021-04-01",
                "2021-01-01",
                "2020-06-01",
                "2020-01-01",
                "2019-11-01",
                "2019-10-01",
                "2019-06-01",
                "2018-06-01",
                "2016-06-01",
            ],
            Self::ResourceGraph => &["2024-04-01", "2022-10-01", "2021-03-01", "2019-04-01"],
            Self::Compute => &[
                "2026-04-01",
                "2025-11-01",
                "2025-04-01",
                "2024-11-01",
                "2024-07-01",
                "2024-03-01",
                "2023-09-01",
                "2023-07-01",
                "2023-03-01",
                "2022-11-01",
                "2022-08-01",
                "2022-03-01",
                "2021-11-01",
                "2021-07-01",
            ],
            Self::Network => &[
                "2026-03-01",
                "2025-09-01",
                "2025-07-01",
                "2024-10-01",
                "2024-07-01",
                "2024-05-01",
                "2024-03-01",
                "2024-01-01",
                "2023-11-01",
                "2023-09-01",
                "2023-06-01",
                "2023-05-01",
                "2023-04-01",
                "2023-02-01",
                "2022-11-01",
                "2022-09-01",
                "2022-07-01",
                "2022-05-01",
                "2022-01-01",
                "2021-08-01",
                "2021-05-01",
                "2021-02-01",
                "2020-11-01",
            ],
            Self::SecurityLocations => &["2015-06-01-preview"],
            Self::SecurityJit => &["2020-01-01", "2015-06-01-preview"],
            Self::SecurityPricings => &["2024-01-01", "2023-01-01", "2022-03-01", "2018-06-01"],
            Self::Authorization => &["2022-04-01", "2018-01-01-preview", "2015-07-01"],
        }
    }
}

/// A route the emulator serves, with its path parameters as the client wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Subscriptions,
    Subscription {
        subscription: String,
    },
    ResourceGroups {
        subscription: String,
    },
    ResourceGroup {
        subscription: String,
        group: String,
    },
    ResourceGraph,
    AllVirtualMachines {
        subscription: String,
    },
    VirtualMachinesByLocation {
        subscription: String,
        location: String,
    },
    /// `/subscriptions/{s}/providers/Microsoft.Network/{type}` (`ListAll`).
    NetworkList {
        subscription: String,
        resource_type: String,
    },
    ComputeOperation {
        subscription: String,
        location: String,
        operation: String,
    },
    /// `…/providers/Microsoft.Network/locations/{l}/operations/{id}` or
    /// `…/operationResults/{id}` (`result`).
    NetworkOperation {
        subscription: String,
        location: String,
        operation: String,
        result: bool,
    },
    SecurityLocations {
        subscription: String,
    },
    SecurityLocation {
        subscription: String,
        location: String,
    },
    JitPolicies {
        subscription: String,
        group: Option<String>,
        location: Option<String>,
    },
    /// Defender plans of a subscription (`name`: one plan).
    Pricings {
        subscription: String,
        name: Option<String>,
    },
    /// `{scope}/providers/Microsoft.Authorization/permissions` at a subscription, a
    /// resource group or a resource in one.
    Permissions {
        subscription: String,
        group: Option<String>,
    },
    /// A resource in a resource group: `namespace/type/name[/child/name]…[/action]`.
    Resource {
        subscription: String,
        group: String,
        namespace: String,
        /// Types and names after the namespace, as written.
        rest: Vec<String>,
    },
}

impl Route {
    fn parse(path: &str) -> Option<Self> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        let owned = |index: usize| segments[index].to_owned();
        Some(match lower.as_slice() {
            ["subscriptions"] => Self::Subscriptions,
            ["providers", "microsoft.resourcegraph", "resources"] => Self::ResourceGraph,
            ["subscriptions", _] => Self::Subscription {
                subscription: owned(1),
            },
            ["subscriptions", _, "resourcegroups"] => Self::ResourceGroups {
                subscription: owned(1),
            },
            ["subscriptions", _, "resourcegroups", _] => Self::ResourceGroup {
                subscription: owned(1),
                group: owned(3),
            },
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.compute",
                "virtualmachines",
            ] => Self::AllVirtualMachines {
                subscription: owned(1),
            },
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.compute",
                "locations",
                _,
                "virtualmachines",
            ] => Self::VirtualMachinesByLocation {
                subscription: owned(1),
                location: owned(5),
            },
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.network",
                resource_type,
            ] => Self::NetworkList {
                subscription: owned(1),
                resource_type: (*resource_type).to_owned(),
            },
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.compute",
                "locations",
                _,
                "operations",
                _,
            ] => Self::ComputeOperation {
                subscription: owned(1),
                location: owned(5),
                operation: owned(7),
            },
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.network",
                "locations",
                _,
                kind @ ("operations" | "operationresults"),
                _,
            ] => Self::NetworkOperation {
                subscription: owned(1),
                location: owned(5),
                operation: owned(7),
                result: *kind == "operationresults",
            },
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.security",
                "locations",
            ] => Self::SecurityLocations {
                subscription: owned(1),
            },
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.security",
                "locations",
                _,
            ] => Self::SecurityLocation {
                subscription: owned(1),
                location: owned(5),
            },
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.security",
                "pricings",
            ] => Self::Pricings {
                subscription: owned(1),
                name: None,
            },
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.security",
                "pricings",
                _,
            ] => Self::Pricings {
                subscription: owned(1),
                name: Some(owned(5)),
            },
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.security",
                "jitnetworkaccesspolicies",
            ] => Self::JitPolicies {
                subscription: owned(1),
                group: None,
                location: None,
            },
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.security",
                "locations",
                _,
                "jitnetworkaccesspolicies",
            ] => Self::JitPolicies {
                subscription: owned(1),
                group: None,
                location: Some(owned(5)),
            },
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                "microsoft.security",
                "jitnetworkaccesspolicies",
            ] => Self::JitPolicies {
                subscription: owned(1),
                group: Some(owned(3)),
                location: None,
            },
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                "microsoft.security",
                "locations",
                _,
                "jitnetworkaccesspolicies",
            ] => Self::JitPolicies {
                subscription: owned(1),
                group: Some(owned(3)),
                location: Some(owned(7)),
            },
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.authorization",
                "permissions",
            ] => Self::Permissions {
                subscription: owned(1),
                group: None,
            },
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                "microsoft.authorization",
                "permissions",
            ] => Self::Permissions {
                subscription: owned(1),
                group: Some(owned(3)),
            },
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                _,
                resource @ ..,
                "providers",
                "microsoft.authorization",
                "permissions",
            ] if resource.len() >= 2 => Self::Permissions {
                subscription: owned(1),
                group: Some(owned(3)),
            },
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                _,
                rest @ ..,
            ] if !rest.is_empty() => Self::Resource {
                subscription: owned(1),
                group: owned(3),
                namespace: owned(5),
                rest: segments[6..].iter().map(|s| (*s).to_owned()).collect(),
            },
            _ => return None,
        })
    }

    fn provider(&self) -> Option<Provider> {
        Some(match self {
            Self::Subscriptions
            | Self::Subscription { .. }
            | Self::ResourceGroups { .. }
            | Self::ResourceGroup { .. } => Provider::Resources,
            Self::ResourceGraph => Provider::ResourceGraph,
            Self::AllVirtualMachines { .. }
            | Self::VirtualMachinesByLocation { .. }
            | Self::ComputeOperation { .. } => Provider::Compute,
            Self::NetworkOperation { .. } | Self::NetworkList { .. } => Provider::Network,
            Self::SecurityLocations { .. } | Self::SecurityLocation { .. } => {
                Provider::SecurityLocations
            }
            Self::JitPolicies { .. } => Provider::SecurityJit,
            Self::Pricings { .. } => Provider::SecurityPricings,
            Self::Permissions { .. } => Provider::Authorization,
            Self::Resource { namespace, .. } => match namespace.to_ascii_lowercase().as_str() {
                "microsoft.compute" => Provider::Compute,
                "microsoft.network" => Provider::Network,
                "microsoft.security" => Provider::SecurityJit,
                _ => return None,
            },
        })
    }

    fn subscription(&self) -> Option<&str> {
        match self {
            Self::Subscriptions | Self::ResourceGraph => None,
            Self::Subscription { subscription }
            | Self::ResourceGroups { subscription }
            | Self::ResourceGroup { subscription, .. }
            | Self::AllVirtualMachines { subscription }
            | Self::VirtualMachinesByLocation { subscription, .. }
            | Self::NetworkList { subscription, .. }
            | Self::ComputeOperation { subscription, .. }
            | Self::NetworkOperation { subscription, .. }
            | Self::SecurityLocations { subscription }
            | Self::SecurityLocation { subscription, .. }
            | Self::JitPolicies { subscription, .. }
            | Self::Permissions { subscription, .. }
            | Self::Pricings { subscription, .. }
            | Self::Resource { subscription, .. } => Some(subscription),
        }
    }

    fn resource_group(&self) -> Option<&str> {
        match self {
            Self::JitPolicies {
                group: Some(group), ..
            }
            | Self::Permissions {
                group: Some(group), ..
            }
            | Self::Resource { group, .. } => Some(group),
            _ => None,
        }
    }
}

/// What a provider handler gets: the request, the state (settled to now) and now.
pub(crate) struct Call<'a> {
    pub request: &'a ArmRequest,
    pub inner: &'a mut crate::state::Inner,
    pub now: jiff::Timestamp,
    pub api_version: &'a str,
    /// Hooks this request fired, for the request log.
    pub fired_hooks: Vec<u64>,
}

impl Call<'_> {
    pub fn resources(&self) -> &Resources {
        &self.inner.resources
    }

    /// Fires the oldest pending concurrent-writer hook for `point` on the policy, if any
    /// (its change is applied before this returns).
    pub fn fire_hook(&mut self, point: HookPoint, policy_key: &str) -> Option<Fired> {
        // Asking first keeps the resources' generation (a mutable borrow moves it).
        if !self.inner.hooks.has_pending(point, policy_key) {
            return None;
        }
        let inner = &mut *self.inner;
        let fired = inner.hooks.fire(
            &mut inner.resources,
            Trigger {
                point,
                policy_key,
                method: self.request.method.as_str(),
                path: &self.request.path,
            },
            self.now,
        )?;
        self.fired_hooks.push(fired.id);
        Some(fired)
    }
}

/// Serves one ARM request: every route, its api-version check and its 404s.
pub fn dispatch(state: &SharedState, request: &ArmRequest) -> ArmResponse {
    let Some(route) = Route::parse(&request.path) else {
        return unknown_route(request);
    };
    let Some(provider) = route.provider() else {
        return unknown_route(request);
    };
    let api_version = match check_api_version(request, provider) {
        Ok(version) => version,
        Err(response) => return response,
    };
    let mut inner = state.settled();
    let now = inner.clock.now();
    if let Some(subscription) = route.subscription() {
        if let Err(response) = check_subscription(&inner.resources, subscription) {
            return response;
        }
        if let Some(group) = route.resource_group()
            && !inner
                .resources
                .resource_groups
                .contains_key(&key(&resource_group_id(subscription, group)))
        {
            return resource_group_not_found(group);
        }
    }
    let mut call = Call {
        request,
        inner: &mut inner,
        now,
        api_version: &api_version,
        fired_hooks: Vec::new(),
    };
    let response = match route {
        Route::Subscriptions => only(&request.method, &[Method::GET])
            .unwrap_or_else(|| resources::list_subscriptions(&call)),
        Route::Subscription { subscription } => only(&request.method, &[Method::GET])
            .unwrap_or_else(|| resources::get_subscription(&call, &subscription)),
        Route::ResourceGroups { subscription } => only(&request.method, &[Method::GET])
            .unwrap_or_else(|| resources::list_resource_groups(&call, &subscription)),
        Route::ResourceGroup {
            subscription,
            group,
        } => only(&request.method, &[Method::GET])
            .unwrap_or_else(|| resources::get_resource_group(&call, &subscription, &group)),
        Route::ResourceGraph => only(&request.method, &[Method::POST])
            .unwrap_or_else(|| resource_graph::query(&mut call)),
        Route::AllVirtualMachines { subscription } => only(&request.method, &[Method::GET])
            .unwrap_or_else(|| compute::list(&call, &subscription, compute::Scope::Subscription)),
        Route::VirtualMachinesByLocation {
            subscription,
            location,
        } => only(&request.method, &[Method::GET]).unwrap_or_else(|| {
            compute::list(&call, &subscription, compute::Scope::Location(&location))
        }),
        Route::NetworkList {
            subscription,
            resource_type,
        } => only(&request.method, &[Method::GET]).unwrap_or_else(|| {
            network::list(
                &call,
                &subscription,
                None,
                &resource_type.to_ascii_lowercase(),
            )
        }),
        Route::ComputeOperation {
            subscription,
            location,
            operation,
        } => only(&request.method, &[Method::GET])
            .unwrap_or_else(|| compute::operation(&call, &subscription, &location, &operation)),
        Route::NetworkOperation {
            subscription,
            location,
            operation,
            result,
        } => only(&request.method, &[Method::GET]).unwrap_or_else(|| {
            security_rules::operation(&call, &subscription, &location, &operation, result)
        }),
        Route::SecurityLocations { subscription } => only(&request.method, &[Method::GET])
            .unwrap_or_else(|| security::list_locations(&call, &subscription)),
        Route::SecurityLocation {
            subscription,
            location,
        } => only(&request.method, &[Method::GET])
            .unwrap_or_else(|| security::get_location(&call, &subscription, &location)),
        Route::JitPolicies {
            subscription,
            group,
            location,
        } => only(&request.method, &[Method::GET]).unwrap_or_else(|| {
            security::list_policies(&call, &subscription, group.as_deref(), location.as_deref())
        }),
        Route::Permissions { .. } => only(&request.method, &[Method::GET])
            .unwrap_or_else(|| authorization::list_permissions(&call)),
        Route::Pricings { subscription, name } => only(&request.method, &[Method::GET])
            .unwrap_or_else(|| match name {
                Some(name) => security::get_pricing(&call, &subscription, &name),
                None => security::list_pricings(&call, &subscription),
            }),
        Route::Resource {
            subscription,
            group,
            namespace,
            rest,
        } => resource(&mut call, &subscription, &group, &namespace, &rest),
    };
    let fired_hooks = std::mem::take(&mut call.fired_hooks);
    drop(inner);
    ArmResponse {
        fired_hooks,
        ..response
    }
}

/// A resource-group-scoped resource route.
fn resource(
    call: &mut Call<'_>,
    subscription: &str,
    group: &str,
    namespace: &str,
    rest: &[String],
) -> ArmResponse {
    let lower: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let scope = ResourceScope {
        subscription,
        group,
    };
    match (namespace.to_ascii_lowercase().as_str(), lower.as_slice()) {
        ("microsoft.compute", ["virtualmachines"]) => only(&call.request.method, &[Method::GET])
            .unwrap_or_else(|| compute::list(call, subscription, compute::Scope::Group(group))),
        ("microsoft.compute", ["virtualmachines", _, action @ ..]) => {
            compute::virtual_machine(call, &scope, &rest[1], action)
        }
        ("microsoft.network", [resource_type]) => only(&call.request.method, &[Method::GET])
            .unwrap_or_else(|| network::list(call, subscription, Some(group), resource_type)),
        ("microsoft.network", ["networksecuritygroups", _, "securityrules", _])
            if call.request.method == Method::PUT =>
        {
            security_rules::put(call, &scope, &rest[1], &rest[3])
        }
        ("microsoft.network", ["networksecuritygroups", _, "securityrules", _])
            if call.request.method == Method::DELETE =>
        {
            security_rules::delete(call, &scope, &rest[1], &rest[3])
        }
        ("microsoft.network", [resource_type, _, child @ ..]) => {
            network::resource(call, &scope, resource_type, &rest[1], &rest[2..], child)
        }
        ("microsoft.security", ["locations", _, "jitnetworkaccesspolicies", _, action @ ..]) => {
            security::policy(call, &scope, &rest[1], &rest[3], action)
        }
        _ => unknown_route(call.request),
    }
}

/// The subscription and resource group of a resource route.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResourceScope<'a> {
    pub subscription: &'a str,
    pub group: &'a str,
}

impl ResourceScope<'_> {
    /// The lower-case id of a top-level resource in this scope.
    pub fn key(&self, provider_type: &str, name: &str) -> String {
        key(&crate::state::ids::resource_id(
            self.subscription,
            self.group,
            provider_type,
            name,
        ))
    }
}

/// `None` when the method is one of `allowed`, else a 405 response.
fn only(method: &Method, allowed: &[Method]) -> Option<ArmResponse> {
    if allowed.contains(method) {
        None
    } else {
        Some(method_not_allowed(method))
    }
}

pub(crate) fn method_not_allowed(method: &Method) -> ArmResponse {
    ArmResponse::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("The requested resource does not support http method '{method}'."),
    )
}

fn unknown_route(request: &ArmRequest) -> ArmResponse {
    ArmResponse::error(
        StatusCode::NOT_FOUND,
        "InvalidResourceType",
        format!(
            "The resource type could not be found for the request path '{}'.",
            request.path
        ),
    )
}

fn check_api_version(request: &ArmRequest, provider: Provider) -> Result<String, ArmResponse> {
    let supported = provider.api_versions();
    match request.api_version() {
        None | Some("") => Err(ArmResponse::error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            format!(
                "The api-version query parameter (?api-version=) is required for all requests. \
                 The supported api-versions are '{}'.",
                supported.join(", ")
            ),
        )),
        Some(version) if supported.contains(&version) => Ok(version.to_owned()),
        Some(version) => Err(ArmResponse::error(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
            format!(
                "The api-version '{version}' is invalid. The supported versions are '{}'. \
                 Please see https://aka.ms/api-upgrade for more details.",
                supported.join(", ")
            ),
        )),
    }
}

fn check_subscription(resources: &Resources, subscription: &str) -> Result<(), ArmResponse> {
    if !crate::world::is_guid(subscription) {
        return Err(ArmResponse::error(
            StatusCode::BAD_REQUEST,
            "InvalidSubscriptionId",
            format!(
                "The provided subscription identifier '{subscription}' is malformed or invalid."
            ),
        ));
    }
    if resources
        .subscriptions
        .iter()
        .any(|known| known.id.eq_ignore_ascii_case(subscription))
    {
        Ok(())
    } else {
        Err(ArmResponse::error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            format!("The subscription '{subscription}' could not be found."),
        ))
    }
}

pub(crate) fn resource_group_not_found(group: &str) -> ArmResponse {
    ArmResponse::error(
        StatusCode::NOT_FOUND,
        "ResourceGroupNotFound",
        format!("Resource group '{group}' could not be found."),
    )
}

/// ARM's 404 for a missing top-level resource.
pub(crate) fn resource_not_found(provider_type: &str, name: &str, group: &str) -> ArmResponse {
    ArmResponse::error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!(
            "The Resource '{provider_type}/{name}' under resource group '{group}' was not found. \
             For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}

/// A provider's 404 for a missing child resource (Network answers these itself).
pub(crate) fn child_not_found(path: &str) -> ArmResponse {
    ArmResponse::error(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("Resource {path} not found."),
    )
}

/// The request body as JSON, or ARM's 400 for content it cannot read.
pub(crate) fn json_body(request: &ArmRequest) -> Result<Value, ArmResponse> {
    if request.body.is_empty() {
        return Err(ArmResponse::error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: the body is empty.",
        ));
    }
    serde_json::from_slice(&request.body).map_err(|error| {
        ArmResponse::error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            format!("The request content was invalid and could not be deserialized: '{error}'."),
        )
    })
}

const SKIP_TOKEN_PREFIX: &str = "jit-emulator-offset:";

/// Where a continuation token resumes: the offset of the next item and the page size in
/// force (Resource Graph keeps the page size across pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SkipToken {
    pub offset: usize,
    pub page_size: usize,
}

impl SkipToken {
    /// The opaque form clients pass back.
    pub fn encode(self) -> String {
        format!("{SKIP_TOKEN_PREFIX}{}:{}", self.offset, self.page_size)
            .bytes()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// Reads a token made by [`SkipToken::encode`].
    pub fn decode(token: &str) -> Option<Self> {
        if !token.len().is_multiple_of(2) {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..token.len())
            .step_by(2)
            .map(|index| u8::from_str_radix(token.get(index..index + 2)?, 16).ok())
            .collect();
        let text = String::from_utf8(bytes?).ok()?;
        let (offset, page_size) = text.strip_prefix(SKIP_TOKEN_PREFIX)?.split_once(':')?;
        Some(Self {
            offset: offset.parse().ok()?,
            page_size: page_size.parse().ok().filter(|size| *size > 0)?,
        })
    }
}

/// A list response (`{"value": […], "nextLink": …}`), paged at the configured page size.
/// `nextLink` repeats the request with a `$skipToken`.
pub(crate) fn paged_list(call: &Call<'_>, items: &[Value]) -> ArmResponse {
    let offset = match call.request.query_value("$skipToken") {
        None => 0,
        Some(token) => match SkipToken::decode(token) {
            Some(token) => token.offset,
            None => {
                return ArmResponse::error(
                    StatusCode::BAD_REQUEST,
                    "InvalidSkipToken",
                    format!("The skip token '{token}' is invalid."),
                );
            }
        },
    };
    let page_size = call.inner.page_size.unwrap_or(usize::MAX);
    let end = offset.saturating_add(page_size).min(items.len());
    let page: Vec<Value> = items
        .get(offset..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let mut body = json!({ "value": page });
    if end < items.len() {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in &call.request.query {
            if !name.eq_ignore_ascii_case("$skipToken") {
                query.append_pair(name, value);
            }
        }
        let token = SkipToken {
            offset: end,
            page_size,
        };
        query.append_pair("$skipToken", &token.encode());
        body["nextLink"] = json!(format!(
            "{}{}?{}",
            call.request.base_url.trim_end_matches('/'),
            call.request.path,
            query.finish()
        ));
    }
    ArmResponse::ok(body)
}

/// The ARM action a request needs, for the RBAC check (`None` for routes the emulator
/// does not serve).
pub fn required_action(request: &ArmRequest) -> Option<String> {
    let route = Route::parse(&request.path)?;
    let method = &request.method;
    let read_or =
        |read: &str| -> Option<String> { (*method == Method::GET).then(|| read.to_owned()) };
    match route {
        Route::Subscriptions | Route::Subscription { .. } => {
            read_or("Microsoft.Resources/subscriptions/read")
        }
        Route::ResourceGroups { .. } | Route::ResourceGroup { .. } => {
            read_or("Microsoft.Resources/subscriptions/resourceGroups/read")
        }
        Route::ResourceGraph => {
            (*method == Method::POST).then(|| "Microsoft.ResourceGraph/resources/read".to_owned())
        }
        Route::AllVirtualMachines { .. } | Route::VirtualMachinesByLocation { .. } => {
            read_or("Microsoft.Compute/virtualMachines/read")
        }
        Route::NetworkList { resource_type, .. } => {
            let action = match resource_type.to_ascii_lowercase().as_str() {
                "networkinterfaces" => "Microsoft.Network/networkInterfaces/read",
                "publicipaddresses" => "Microsoft.Network/publicIPAddresses/read",
                "virtualnetworks" => "Microsoft.Network/virtualNetworks/read",
                "networksecuritygroups" => "Microsoft.Network/networkSecurityGroups/read",
                "azurefirewalls" => "Microsoft.Network/azureFirewalls/read",
                _ => return None,
            };
            read_or(action)
        }
        Route::ComputeOperation { .. } => read_or("Microsoft.Compute/locations/operations/read"),
        Route::NetworkOperation { result: false, .. } => {
            read_or("Microsoft.Network/locations/operations/read")
        }
        Route::NetworkOperation { result: true, .. } => {
            read_or("Microsoft.Network/locations/operationResults/read")
        }
        Route::SecurityLocations { .. } | Route::SecurityLocation { .. } => {
            read_or("Microsoft.Security/locations/read")
        }
        Route::JitPolicies { .. } => {
            read_or("Microsoft.Security/locations/jitNetworkAccessPolicies/read")
        }
        // Every caller may ask what it may do.
        Route::Permissions { .. } => None,
        Route::Pricings { .. } => read_or("Microsoft.Security/pricings/read"),
        Route::Resource {
            namespace, rest, ..
        } => resource_action(method, &namespace, &rest),
    }
}

fn resource_action(method: &Method, namespace: &str, rest: &[String]) -> Option<String> {
    let lower: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let verb = if *method == Method::GET {
        "read"
    } else if *method == Method::PUT || *method == Method::PATCH {
        "write"
    } else if *method == Method::DELETE {
        "delete"
    } else {
        "action"
    };
    let action = match (namespace.to_ascii_lowercase().as_str(), lower.as_slice()) {
        ("microsoft.compute", ["virtualmachines"]) => {
            "Microsoft.Compute/virtualMachines/read".to_owned()
        }
        ("microsoft.compute", ["virtualmachines", _]) => {
            format!("Microsoft.Compute/virtualMachines/{verb}")
        }
        ("microsoft.compute", ["virtualmachines", _, "instanceview"]) => {
            "Microsoft.Compute/virtualMachines/instanceView/read".to_owned()
        }
        ("microsoft.compute", ["virtualmachines", _, "start"]) => {
            "Microsoft.Compute/virtualMachines/start/action".to_owned()
        }
        ("microsoft.network", ["networkinterfaces"]) => {
            "Microsoft.Network/networkInterfaces/read".to_owned()
        }
        ("microsoft.network", ["publicipaddresses"]) => {
            "Microsoft.Network/publicIPAddresses/read".to_owned()
        }
        ("microsoft.network", ["virtualnetworks"]) => {
            "Microsoft.Network/virtualNetworks/read".to_owned()
        }
        ("microsoft.network", ["networksecuritygroups"]) => {
            "Microsoft.Network/networkSecurityGroups/read".to_owned()
        }
        ("microsoft.network", ["azurefirewalls"]) => {
            "Microsoft.Network/azureFirewalls/read".to_owned()
        }
        ("microsoft.network", ["networkinterfaces", _]) => {
            format!("Microsoft.Network/networkInterfaces/{verb}")
        }
        ("microsoft.network", ["publicipaddresses", _]) => {
            format!("Microsoft.Network/publicIPAddresses/{verb}")
        }
        ("microsoft.network", ["virtualnetworks", _]) => {
            format!("Microsoft.Network/virtualNetworks/{verb}")
        }
        ("microsoft.network", ["virtualnetworks", _, "subnets", ..]) => {
            format!("Microsoft.Network/virtualNetworks/subnets/{verb}")
        }
        ("microsoft.network", ["networksecuritygroups", _]) => {
            format!("Microsoft.Network/networkSecurityGroups/{verb}")
        }
        ("microsoft.network", ["networksecuritygroups", _, "securityrules", ..]) => {
            format!("Microsoft.Network/networkSecurityGroups/securityRules/{verb}")
        }
        ("microsoft.network", ["networksecuritygroups", _, "defaultsecurityrules", ..]) => {
            format!("Microsoft.Network/networkSecurityGroups/defaultSecurityRules/{verb}")
        }
        ("microsoft.network", ["azurefirewalls", _]) => {
            format!("Microsoft.Network/azureFirewalls/{verb}")
        }
        ("microsoft.security", ["locations", _, "jitnetworkaccesspolicies", _]) => {
            format!("Microsoft.Security/locations/jitNetworkAccessPolicies/{verb}")
        }
        ("microsoft.security", ["locations", _, "jitnetworkaccesspolicies", _, "initiate"]) => {
            "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action".to_owned()
        }
        _ => return None,
    };
    Some(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_tokens_round_trip_and_reject_garbage() {
        let token = SkipToken {
            offset: 42,
            page_size: 7,
        };
        assert_eq!(SkipToken::decode(&token.encode()), Some(token));
        assert_eq!(SkipToken::decode("zz"), None);
        assert_eq!(SkipToken::decode("abc"), None);
        assert_eq!(SkipToken::decode("00"), None);
    }

    #[test]
    fn routes_match_in_any_casing() {
        let route = Route::parse(
            "/SUBSCRIPTIONS/s/ResourceGroups/rg-web/providers/microsoft.security/Locations/westeurope/jitNetworkAccessPolicies/default/Initiate",
        );
        assert!(
            matches!(&route, Some(Route::Resource { namespace, rest, .. })
                if namespace == "microsoft.security" && rest.len() == 5),
            "{route:?}"
        );
        assert_eq!(
            Route::parse("/subscriptions/s/providers/Microsoft.Security/locations/centralus"),
            Some(Route::SecurityLocation {
                subscription: "s".to_owned(),
                location: "centralus".to_owned()
            })
        );
        assert_eq!(Route::parse("/nothing/here"), None);
    }
}
