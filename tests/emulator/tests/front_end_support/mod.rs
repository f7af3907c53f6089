//! Helpers shared by the front-end, identity and binary suites: start an emulator, build
//! an HTTPS client that trusts only the emulator's CA, get tokens.
#![allow(dead_code)] // Each suite uses a different subset.

use jit_emulator::{Emulator, EmulatorOptions, World};
use serde_json::Value;

/// The ARM scope the SDKs ask for.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// An emulator of the default world.
pub fn start() -> Emulator {
    start_with(EmulatorOptions::default())
}

/// An emulator of the default world with `options`.
pub fn start_with(options: EmulatorOptions) -> Emulator {
    match Emulator::start_with(World::default_world(), options) {
        Ok(emulator) => emulator,
        Err(error) => panic!("the emulator did not start: {error}"),
    }
}

/// An HTTPS client that trusts the emulator's CA and nothing else.
pub fn client(emulator: &Emulator) -> reqwest::Client {
    // reqwest carries no crypto provider of its own (see the root Cargo.toml).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(&emulator.info().ca_cert).expect("ca.pem is readable");
    let certificate = reqwest::Certificate::from_pem(&pem).expect("ca.pem parses");
    reqwest::Client::builder()
        .tls_certs_only([certificate])
        .no_proxy()
        .build()
        .expect("client builds")
}

/// A principal of the default world by name, as `(client_id, client_secret)`.
pub fn world_credentials(name: &str) -> (String, String) {
    let world = World::default_world();
    let principal = world
        .principals
        .iter()
        .find(|principal| principal.name == name)
        .unwrap_or_else(|| panic!("the default world has no principal {name}"));
    (
        principal.client_id.clone().expect("a client id"),
        principal.client_secret.clone().expect("a fixed secret"),
    )
}

/// POSTs a form to the token endpoint; returns status and JSON body.
pub async fn token_request(
    client: &reqwest::Client,
    emulator: &Emulator,
    form: &[(&str, &str)],
) -> (reqwest::StatusCode, Value) {
    let info = emulator.info();
    let url = format!(
        "{}/{}/oauth2/v2.0/token",
        info.authority_host, info.tenant_id
    );
    let response = post_form(client, &url, form)
        .send()
        .await
        .expect("token POST");
    let status = response.status();
    let body = response.json().await.expect("token response is JSON");
    (status, body)
}

/// A POST with an `application/x-www-form-urlencoded` body.
pub fn post_form(
    client: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let body = serde_urlencoded::to_string(form).expect("form encodes");
    client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
}

/// A token for `client_id`/`client_secret` (panics unless the endpoint grants it).
pub async fn token_for(
    client: &reqwest::Client,
    emulator: &Emulator,
    client_id: &str,
    client_secret: &str,
) -> String {
    let (status, body) = token_request(
        client,
        emulator,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("scope", ARM_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, 200, "token refused: {body}");
    body["access_token"]
        .as_str()
        .expect("access_token is a string")
        .to_owned()
}

/// A token for the contract's service principal.
pub async fn service_principal_token(client: &reqwest::Client, emulator: &Emulator) -> String {
    let principal = &emulator.info().service_principal;
    token_for(
        client,
        emulator,
        &principal.client_id,
        &principal.client_secret,
    )
    .await
}

/// `GET {arm}{path_and_query}` with a bearer token.
pub async fn arm_get(
    client: &reqwest::Client,
    emulator: &Emulator,
    path_and_query: &str,
    token: &str,
) -> reqwest::Response {
    client
        .get(format!("{}{path_and_query}", emulator.info().arm_endpoint))
        .bearer_auth(token)
        .send()
        .await
        .expect("ARM GET")
}

/// The ARM error code of a CloudError body.
pub fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error.code>")
}
