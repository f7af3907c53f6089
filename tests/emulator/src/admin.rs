//! The admin API under `/_emulator`: what tests and `jit demo` use to steer the emulated
//! world from outside a client's view of Azure.
//!
//! It moves the virtual clock, dumps state, injects faults, changes what "my IP" services
//! answer and where callers come from, pages lists, logs the fake `az` out, powers VMs on
//! and off, and shows the request log. It needs no token: it is on loopback only, like the
//! rest of the emulator, and nothing it returns is a credential except the
//! managed-identity header, which is as local as an IMDS endpoint.
//!
//! | route | body | what |
//! |---|---|---|
//! | `GET clock` | | `{"now","offset"}` |
//! | `POST clock` | `{"advance":"PT1H"}` (ISO-8601 or `90m`/`2 hours`) | moves the virtual clock |
//! | `GET state` | | snapshot of every resource |
//! | `GET/POST/DELETE faults` | a [`FaultSpec`] or a list of them | list (with hit counts) / add / clear |
//! | `GET/DELETE faults/{id}` | | one fault |
//! | `GET/PUT my-ip` | `{"address":"2001:db8::7"}` or `{"address":null}` | what `/ip` answers |
//! | `GET/PUT client-ip` | `{"address":"203.0.113.9"}` | where callers and connections come from |
//! | `PUT page-size` | `{"size":2}` or `{"size":null}` | page every list |
//! | `PUT graph-lag` | `{"unindexed":["/subscriptions/…/networkInterfaces/api-01-nic"]}` | Resource Graph leaves these resources out (as if it had not caught up with ARM); `[]` ends it |
//! | `GET/POST az` | `{"logged_in":false}` | fake `az` state and its recorded calls |
//! | `POST power` | `{"vm_id":"/subscriptions/…","running":false}` | start or deallocate a VM |
//! | `GET/DELETE requests` | | the request log (method, path, status, time, faults, hooks) |
//! | `GET/POST/DELETE hooks` | a [`HookSpec`] or a list of them | concurrent-writer hooks: list (with when each fired) / add / clear |
//! | `GET/DELETE hooks/{id}` | | one hook |
//! | `POST changes` | `{"policy_id":"…","change":{…}}` | another writer's change to a JIT policy, now |
//! | `GET/DELETE stats` | | per-route latency percentiles and memory ([`crate::stats`]) / reset |
//! | `GET managed-identity` | | `{"identity_endpoint","identity_header"}` |

use std::net::IpAddr;

use http::{Method, StatusCode};
use jiff::SignedDuration;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::faults::FaultSpec;
use crate::front_end::FrontEnd;
use crate::hooks::{HookError, HookSpec, PolicyChange};
use crate::lock::lock;
use crate::reply::Reply;

/// Parses a clock step: ISO-8601 (`PT1H`, `P1D`, `-PT5M`) or friendly (`90m`, `2 hours`).
/// Days count as 24 hours.
pub fn parse_duration(text: &str) -> Option<SignedDuration> {
    let text = text.trim();
    if let Ok(duration) = text.parse::<SignedDuration>() {
        return Some(duration);
    }
    let span: jiff::Span = text.parse().ok()?;
    span.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .ok()
}

fn clock_view(front: &FrontEnd) -> Value {
    json!({
        "now": front.clock.now().to_string(),
        "offset": front.clock.offset().to_string(),
    })
}

/// Serves `/_emulator/{rest}`.
pub(crate) fn handle(front: &FrontEnd, method: &Method, rest: &str, body: &[u8]) -> Reply {
    let lower = rest.trim_matches('/').to_ascii_lowercase();
    let segments: Vec<&str> = lower.split('/').collect();
    match (method.clone(), segments.as_slice()) {
        (Method::GET, [""]) => Reply::json(StatusCode::OK, &index()),
        (Method::GET, ["clock"]) => Reply::json(StatusCode::OK, &clock_view(front)),
        (Method::POST, ["clock"]) => advance(front, body),
        (Method::GET, ["state"]) => Reply::json(StatusCode::OK, &front.state.snapshot()),
        (Method::GET, ["faults"]) => {
            Reply::json(StatusCode::OK, &json!({ "value": front.faults.list() }))
        }
        (Method::POST, ["faults"]) => add_faults(front, body),
        (Method::DELETE, ["faults"]) => {
            front.faults.clear();
            Reply::empty(StatusCode::NO_CONTENT)
        }
        (Method::GET, ["faults", id]) => match id
            .parse::<u64>()
            .ok()
            .and_then(|id| front.faults.list().into_iter().find(|fault| fault.id == id))
        {
            Some(fault) => Reply::json(StatusCode::OK, &fault),
            None => not_found("no such fault"),
        },
        (Method::DELETE, ["faults", id]) => {
            if id.parse::<u64>().is_ok_and(|id| front.faults.remove(id)) {
                Reply::empty(StatusCode::NO_CONTENT)
            } else {
                not_found("no such fault")
            }
        }
        (Method::GET, ["my-ip"]) => Reply::json(
            StatusCode::OK,
            &json!({ "address": front.my_ip(), "overridden": lock(&front.my_ip_override).is_some() }),
        ),
        (Method::PUT | Method::POST, ["my-ip"]) => set_my_ip(front, body),
        (Method::GET, ["client-ip"]) => Reply::json(
            StatusCode::OK,
            &json!({ "address": front.state.client_ip().to_string() }),
        ),
        (Method::PUT | Method::POST, ["client-ip"]) => set_client_ip(front, body),
        (Method::PUT | Method::POST, ["page-size"]) => set_page_size(front, body),
        (Method::PUT | Method::POST, ["graph-lag"]) => set_graph_lag(front, body),
        (Method::GET, ["az"]) => Reply::json(
            StatusCode::OK,
            &json!({
                "logged_in": front.az.logged_in(),
                "az_cli": front.az.script_path(),
                "calls": front.az.calls(),
            }),
        ),
        (Method::PUT | Method::POST, ["az"]) => set_az(front, body),
        (Method::PUT | Method::POST, ["power"]) => set_power(front, body),
        (Method::GET, ["requests"]) => {
            let requests: Vec<_> = lock(&front.requests).iter().cloned().collect();
            Reply::json(StatusCode::OK, &json!({ "value": requests }))
        }
        (Method::DELETE, ["requests"]) => {
            lock(&front.requests).clear();
            Reply::empty(StatusCode::NO_CONTENT)
        }
        (Method::GET, ["hooks"]) => {
            Reply::json(StatusCode::OK, &json!({ "value": front.state.hooks() }))
        }
        (Method::POST, ["hooks"]) => add_hooks(front, body),
        (Method::DELETE, ["hooks"]) => {
            front.state.clear_hooks();
            Reply::empty(StatusCode::NO_CONTENT)
        }
        (Method::GET, ["hooks", id]) => match id
            .parse::<u64>()
            .ok()
            .and_then(|id| front.state.hooks().into_iter().find(|hook| hook.id == id))
        {
            Some(hook) => Reply::json(StatusCode::OK, &hook),
            None => not_found("no such hook"),
        },
        (Method::DELETE, ["hooks", id]) => {
            if id
                .parse::<u64>()
                .is_ok_and(|id| front.state.remove_hook(id))
            {
                Reply::empty(StatusCode::NO_CONTENT)
            } else {
                not_found("no such hook")
            }
        }
        (Method::POST, ["changes"]) => apply_change(front, body),
        (Method::GET, ["stats"]) => Reply::json(StatusCode::OK, &lock(&front.timings).report()),
        (Method::DELETE, ["stats"]) => {
            lock(&front.timings).clear();
            Reply::empty(StatusCode::NO_CONTENT)
        }
        (Method::GET, ["managed-identity"]) => Reply::json(
            StatusCode::OK,
            &json!({
                "identity_endpoint": format!("{}/msi/token", front.base_url),
                "identity_header": front.identity.managed_identity_header(),
            }),
        ),
        (
            _,
            [
                "" | "clock" | "state" | "faults" | "my-ip" | "client-ip" | "page-size" | "az"
                | "power" | "requests" | "managed-identity" | "hooks" | "changes" | "stats",
            ],
        ) => Reply::json(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({ "error": format!("{method} is not allowed on /_emulator/{rest}") }),
        ),
        _ => not_found(&format!("no admin route /_emulator/{rest}")),
    }
}

fn index() -> Value {
    json!({
        "routes": [
            "GET clock", "POST clock {\"advance\":\"PT1H\"}", "GET state",
            "GET faults", "POST faults <FaultSpec or list>", "DELETE faults", "GET faults/{id}", "DELETE faults/{id}",
            "GET my-ip", "PUT my-ip {\"address\":\"…\"|null}",
            "GET client-ip", "PUT client-ip {\"address\":\"…\"}",
            "PUT page-size {\"size\":N|null}",
            "GET az", "POST az {\"logged_in\":bool}",
            "POST power {\"vm_id\":\"…\",\"running\":bool}",
            "GET requests", "DELETE requests",
            "GET hooks", "POST hooks <HookSpec or list>", "DELETE hooks", "GET hooks/{id}", "DELETE hooks/{id}",
            "POST changes {\"policy_id\":\"…\",\"change\":{…}}",
            "GET stats", "DELETE stats",
            "GET managed-identity",
        ]
    })
}

fn bad_request(message: &str) -> Reply {
    Reply::json(StatusCode::BAD_REQUEST, &json!({ "error": message }))
}

fn not_found(message: &str) -> Reply {
    Reply::json(StatusCode::NOT_FOUND, &json!({ "error": message }))
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|error| format!("invalid JSON body: {error}"))
}

fn advance(front: &FrontEnd, body: &[u8]) -> Reply {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Advance {
        advance: String,
    }
    let request: Advance = match parse_body(body) {
        Ok(request) => request,
        Err(message) => return bad_request(&message),
    };
    let Some(step) = parse_duration(&request.advance) else {
        return bad_request(&format!(
            "cannot read {:?} as a duration: use ISO-8601 (PT1H) or a friendly form (90m)",
            request.advance
        ));
    };
    front.advance_clock(step);
    Reply::json(StatusCode::OK, &clock_view(front))
}

fn add_faults(front: &FrontEnd, body: &[u8]) -> Reply {
    add_all(
        body,
        |spec: FaultSpec| front.faults.add(spec),
        |id| {
            front.faults.remove(id);
        },
    )
}

fn add_hooks(front: &FrontEnd, body: &[u8]) -> Reply {
    add_all(
        body,
        |spec: HookSpec| front.state.add_hook(spec),
        |id| {
            front.state.remove_hook(id);
        },
    )
}

/// Adds one spec or a list of them (faults, hooks) with `add`; when one is refused,
/// those already added are taken back with `remove`, so a bad list changes nothing.
fn add_all<Spec, Error>(
    body: &[u8],
    add: impl Fn(Spec) -> Result<u64, Error>,
    remove: impl Fn(u64),
) -> Reply
where
    Spec: serde::de::DeserializeOwned,
    Error: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<Spec> {
        One(Box<Spec>),
        Many(Vec<Spec>),
    }
    let specs = match parse_body::<OneOrMany<Spec>>(body) {
        Ok(OneOrMany::One(spec)) => vec![*spec],
        Ok(OneOrMany::Many(specs)) => specs,
        Err(message) => return bad_request(&message),
    };
    let mut ids = Vec::new();
    for spec in specs {
        match add(spec) {
            Ok(id) => ids.push(id),
            Err(error) => {
                for id in ids {
                    remove(id);
                }
                return bad_request(&error.to_string());
            }
        }
    }
    Reply::json(StatusCode::CREATED, &json!({ "ids": ids }))
}

fn apply_change(front: &FrontEnd, body: &[u8]) -> Reply {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ChangeBody {
        policy_id: String,
        change: PolicyChange,
    }
    let request: ChangeBody = match parse_body(body) {
        Ok(request) => request,
        Err(message) => return bad_request(&message),
    };
    match front
        .state
        .apply_change(&request.policy_id, &request.change)
    {
        Ok(policy) => Reply::json(StatusCode::OK, &json!({ "policy": policy })),
        Err(error @ HookError::Invalid(_)) => bad_request(&error.to_string()),
        Err(error @ HookError::NotApplied(_)) => {
            Reply::json(StatusCode::CONFLICT, &json!({ "error": error.to_string() }))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressBody {
    address: Option<String>,
}

fn set_my_ip(front: &FrontEnd, body: &[u8]) -> Reply {
    let request: AddressBody = match parse_body(body) {
        Ok(request) => request,
        Err(message) => return bad_request(&message),
    };
    *lock(&front.my_ip_override) = request.address;
    Reply::json(StatusCode::OK, &json!({ "address": front.my_ip() }))
}

fn set_client_ip(front: &FrontEnd, body: &[u8]) -> Reply {
    let request: AddressBody = match parse_body(body) {
        Ok(request) => request,
        Err(message) => return bad_request(&message),
    };
    let Some(address) = request
        .address
        .as_deref()
        .and_then(|text| text.parse::<IpAddr>().ok())
    else {
        return bad_request("client-ip needs {\"address\": \"<IPv4 or IPv6 address>\"}");
    };
    front.state.set_client_ip(address);
    Reply::json(StatusCode::OK, &json!({ "address": address.to_string() }))
}

fn set_page_size(front: &FrontEnd, body: &[u8]) -> Reply {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PageSize {
        size: Option<usize>,
    }
    let request: PageSize = match parse_body(body) {
        Ok(request) => request,
        Err(message) => return bad_request(&message),
    };
    if request.size == Some(0) {
        return bad_request("page size must be at least 1 (or null for no paging)");
    }
    front.state.set_page_size(request.size);
    Reply::json(StatusCode::OK, &json!({ "size": request.size }))
}

fn set_graph_lag(front: &FrontEnd, body: &[u8]) -> Reply {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct GraphLag {
        unindexed: Vec<String>,
    }
    let request: GraphLag = match parse_body(body) {
        Ok(request) => request,
        Err(message) => return bad_request(&message),
    };
    front.state.set_graph_unindexed(&request.unindexed);
    Reply::json(StatusCode::OK, &json!({ "unindexed": request.unindexed }))
}

fn set_az(front: &FrontEnd, body: &[u8]) -> Reply {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct AzState {
        logged_in: bool,
    }
    let request: AzState = match parse_body(body) {
        Ok(request) => request,
        Err(message) => return bad_request(&message),
    };
    if let Err(error) = front.az.set_logged_in(request.logged_in) {
        return bad_request(&error.to_string());
    }
    if request.logged_in {
        front.after_clock_change();
    }
    Reply::json(
        StatusCode::OK,
        &json!({ "logged_in": front.az.logged_in() }),
    )
}

fn set_power(front: &FrontEnd, body: &[u8]) -> Reply {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Power {
        vm_id: String,
        running: bool,
    }
    let request: Power = match parse_body(body) {
        Ok(request) => request,
        Err(message) => return bad_request(&message),
    };
    if front.state.set_power_state(&request.vm_id, request.running) {
        Reply::json(
            StatusCode::OK,
            &json!({ "vm_id": request.vm_id, "running": request.running }),
        )
    } else {
        not_found(&format!("no VM with id {}", request.vm_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_iso_or_friendly() {
        assert_eq!(parse_duration("PT1H"), Some(SignedDuration::from_hours(1)));
        assert_eq!(parse_duration("90m"), Some(SignedDuration::from_mins(90)));
        assert_eq!(
            parse_duration("2 hours"),
            Some(SignedDuration::from_hours(2))
        );
        assert_eq!(parse_duration("P1D"), Some(SignedDuration::from_hours(24)));
        assert_eq!(parse_duration("-PT5M"), Some(SignedDuration::from_mins(-5)));
        assert_eq!(parse_duration("soon"), None);
    }
}
