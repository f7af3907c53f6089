//! Helpers for the resource suites: an emulator with an ARM client over real HTTPS
//! (trusting only the emulator's CA, with a token from its token endpoint), and the
//! default world's names.
#![allow(dead_code)] // Each suite uses a different subset.

use std::time::Duration;

use jit_emulator::{Emulator, EmulatorOptions, World};
use reqwest::Method;
use serde_json::Value;

/// "Contoso Production" in the default world.
pub const PRODUCTION: &str = "3f2a6c1e-8b4d-4e7a-9c15-0d2e7f9a1b34";
/// "Contoso Development" in the default world.
pub const DEVELOPMENT: &str = "b7e4d2a9-5c3f-4a18-8e6d-91f0c2b3a457";
/// The default client IP.
pub const CLIENT_IP: &str = "198.51.100.7";
/// JIT's api-version.
pub const JIT: &str = "2020-01-01";
/// Network's api-version.
pub const NETWORK: &str = "2024-05-01";
/// Compute's api-version.
pub const COMPUTE: &str = "2024-07-01";

/// How long a port may take to answer once it should.
pub const PROMPTLY: Duration = Duration::from_secs(10);
/// How long a port must stay quiet to count as silent.
pub const SILENCE: Duration = Duration::from_millis(400);

/// A resource id in the default world.
pub fn id(subscription: &str, group: &str, provider_type: &str, name: &str) -> String {
    format!("/subscriptions/{subscription}/resourceGroups/{group}/providers/{provider_type}/{name}")
}

/// A VM id.
pub fn vm_id(subscription: &str, group: &str, name: &str) -> String {
    id(
        subscription,
        group,
        "Microsoft.Compute/virtualMachines",
        name,
    )
}

/// An NSG id.
pub fn nsg_id(subscription: &str, group: &str, name: &str) -> String {
    id(
        subscription,
        group,
        "Microsoft.Network/networkSecurityGroups",
        name,
    )
}

/// A JIT policy id.
pub fn policy_id(subscription: &str, group: &str, location: &str, name: &str) -> String {
    id(
        subscription,
        group,
        &format!("Microsoft.Security/locations/{location}/jitNetworkAccessPolicies"),
        name,
    )
}

/// A response: status, headers and JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// `error.code` of a CloudError body.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or("<no error.code>")
    }

    /// `error.message` of a CloudError body.
    pub fn error_message(&self) -> &str {
        self.body["error"]["message"]
            .as_str()
            .unwrap_or("<no error.message>")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// An emulator and an authenticated ARM client for it.
pub struct Arm {
    pub emulator: Emulator,
    pub client: reqwest::Client,
    token: std::sync::Mutex<String>,
}

impl Arm {
    /// The default world with default options.
    pub async fn start() -> Arm {
        Self::start_with(World::default_world(), EmulatorOptions::default()).await
    }

    /// `world` with `options`, signed in as the contract's service principal.
    pub async fn start_with(world: World, options: EmulatorOptions) -> Arm {
        let emulator = match Emulator::start_with(world, options) {
            Ok(emulator) => emulator,
            Err(error) => panic!("the emulator did not start: {error}"),
        };
        // reqwest carries no crypto provider of its own (see the root Cargo.toml).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let pem = std::fs::read(&emulator.info().ca_cert).expect("ca.pem is readable");
        let certificate = reqwest::Certificate::from_pem(&pem).expect("ca.pem parses");
        let client = reqwest::Client::builder()
            .tls_certs_only([certificate])
            .no_proxy()
            .build()
            .expect("the client builds");
        let arm = Arm {
            emulator,
            client,
            token: std::sync::Mutex::new(String::new()),
        };
        arm.refresh_token().await;
        arm
    }

    /// Gets a fresh token for the contract's service principal.
    pub async fn refresh_token(&self) {
        let principal = self.emulator.info().service_principal.clone();
        let token = self
            .token_for(&principal.client_id, &principal.client_secret)
            .await;
        *self.token.lock().expect("the token lock") = token;
    }

    /// Moves the virtual clock, and gets a new token as a client would once its token
    /// expired on that clock.
    pub async fn advance_clock(&self, by: jiff::SignedDuration) {
        self.emulator.advance_clock(by);
        self.refresh_token().await;
    }

    /// A token from the emulator's token endpoint (panics unless granted).
    pub async fn token_for(&self, client_id: &str, client_secret: &str) -> String {
        let info = self.emulator.info();
        let form = serde_urlencoded::to_string([
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("scope", "https://management.azure.com/.default"),
        ])
        .expect("the form encodes");
        let response = self
            .client
            .post(format!(
                "{}/{}/oauth2/v2.0/token",
                info.authority_host, info.tenant_id
            ))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .expect("the token request is answered");
        let status = response.status();
        let body: Value = response.json().await.expect("the token response is JSON");
        assert_eq!(status, 200, "token refused: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token is a string")
            .to_owned()
    }

    /// Sends an ARM request with the service principal's token.
    pub async fn send(&self, method: Method, path_and_query: &str, body: Option<&Value>) -> Reply {
        let token = self.token.lock().expect("the token lock").clone();
        self.send_as(&token, method, path_and_query, body).await
    }

    /// Sends an ARM request with `token`. `path_and_query` may also be a full URL (a
    /// `nextLink`).
    pub async fn send_as(
        &self,
        token: &str,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Reply {
        let url = if path_and_query.starts_with("https://") {
            path_and_query.to_owned()
        } else {
            format!("{}{path_and_query}", self.emulator.info().arm_endpoint)
        };
        let mut request = self.client.request(method.clone(), &url).bearer_auth(token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{method} {url} was not answered: {error}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("the body is readable");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|error| {
                panic!("{method} {url}: body is not JSON ({error}): {text}")
            })
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Calls the admin API (`{admin_endpoint}/{path}`), which needs no token.
    pub async fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let url = format!("{}/{path}", self.emulator.info().admin_endpoint);
        let mut request = self.client.request(method.clone(), &url);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{method} {url} was not answered: {error}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("the body is readable");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("{method} {url}: not JSON ({error}): {text}"))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// The request log, as the admin API shows it.
    pub async fn request_log(&self) -> Vec<Value> {
        let reply = self.admin(Method::GET, "requests", None).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body["value"].as_array().cloned().unwrap_or_default()
    }

    pub async fn get(&self, path_and_query: &str) -> Reply {
        self.send(Method::GET, path_and_query, None).await
    }

    pub async fn put(&self, path_and_query: &str, body: &Value) -> Reply {
        self.send(Method::PUT, path_and_query, Some(body)).await
    }

    pub async fn post(&self, path_and_query: &str, body: &Value) -> Reply {
        self.send(Method::POST, path_and_query, Some(body)).await
    }

    pub async fn delete(&self, path_and_query: &str) -> Reply {
        self.send(Method::DELETE, path_and_query, None).await
    }

    /// GET that must answer 200; returns the body.
    pub async fn get_ok(&self, path_and_query: &str) -> Value {
        let reply = self.get(path_and_query).await;
        assert_eq!(reply.status, 200, "GET {path_and_query}: {}", reply.body);
        reply.body
    }

    /// Every item of a list, following `nextLink`.
    pub async fn list_all(&self, path_and_query: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut next = Some(path_and_query.to_owned());
        let mut pages = 0;
        while let Some(link) = next {
            pages += 1;
            assert!(pages < 100, "more than 100 pages from {path_and_query}");
            let body = self.get_ok(&link).await;
            items.extend(body["value"].as_array().cloned().unwrap_or_default());
            next = body["nextLink"].as_str().map(str::to_owned);
        }
        items
    }

    /// The policy, or panics.
    pub async fn policy(&self, policy_id: &str) -> Value {
        self.get_ok(&format!("{policy_id}?api-version={JIT}")).await
    }

    /// The NSG's `securityRules`.
    pub async fn rules(&self, nsg_id: &str) -> Vec<Value> {
        self.get_ok(&format!("{nsg_id}?api-version={NETWORK}"))
            .await["properties"]["securityRules"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The VM port's bound number, from the state dump.
    pub fn port_of(&self, vm_id: &str, service: &str) -> u16 {
        let snapshot = self.emulator.snapshot();
        snapshot["listeners"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|listener| {
                listener["vm_id"]
                    .as_str()
                    .is_some_and(|id| id.eq_ignore_ascii_case(vm_id))
                    && listener["service"] == service
            })
            .and_then(|listener| listener["port"].as_u64())
            .and_then(|port| u16::try_from(port).ok())
            .unwrap_or_else(|| panic!("no {service} listener for {vm_id}"))
    }
}

/// JIT rules of an NSG: (deny rules, allow rules).
pub fn jit_rules(rules: &[Value]) -> (Vec<Value>, Vec<Value>) {
    let named = |prefix: &str| -> Vec<Value> {
        rules
            .iter()
            .filter(|rule| {
                rule["name"]
                    .as_str()
                    .is_some_and(|name| name.starts_with(prefix))
            })
            .cloned()
            .collect()
    };
    (
        named("SecurityCenter-JITRule_"),
        named("SecurityCenter-JITRule-"),
    )
}

/// The statuses of every request port in a policy, oldest request first:
/// `(number, status, statusReason)`.
pub fn request_statuses(policy: &Value) -> Vec<(u64, String, String)> {
    policy["properties"]["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|request| {
            request["virtualMachines"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|vm| vm["ports"].as_array().cloned().unwrap_or_default())
        .map(|port| {
            (
                port["number"].as_u64().unwrap_or_default(),
                port["status"].as_str().unwrap_or_default().to_owned(),
                port["statusReason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// An initiate body for one VM port.
pub fn initiate_body(vm_id: &str, port: u16, extra: Value) -> Value {
    let mut port_body = serde_json::json!({ "number": port, "duration": "PT1H" });
    if let (Some(target), Value::Object(extra)) = (port_body.as_object_mut(), extra) {
        for (key, value) in extra {
            if value.is_null() {
                target.remove(&key);
            } else {
                target.insert(key, value);
            }
        }
    }
    serde_json::json!({
        "virtualMachines": [{ "id": vm_id, "ports": [port_body] }],
        "justification": "testing"
    })
}
