//! The emulated Entra ID over real HTTPS: the token endpoint (good and bad credentials,
//! HTTP Basic, client assertions), MSAL's metadata, the managed-identity endpoint, the
//! fake `az` run through a real `/bin/sh`, and how ARM treats tokens (expiry on the
//! virtual clock, unknown tokens, RBAC).

mod front_end_support;

use std::time::Duration;

use base64::Engine as _;
use front_end_support::{
    ARM_SCOPE, arm_get, client, error_code, post_form, service_principal_token, start, start_with,
    token_for, token_request, world_credentials,
};
use jiff::SignedDuration;
use jit_emulator::EmulatorOptions;
use serde_json::Value;

const SUBSCRIPTIONS: &str = "/subscriptions?api-version=2022-12-01";

#[tokio::test]
async fn the_service_principal_gets_a_bearer_token_arm_accepts() {
    let emulator = start();
    let client = client(&emulator);
    let principal = &emulator.info().service_principal;
    let (status, body) = token_request(
        &client,
        &emulator,
        &[
            ("client_id", principal.client_id.as_str()),
            ("client_secret", principal.client_secret.as_str()),
            ("grant_type", "client_credentials"),
            ("scope", ARM_SCOPE),
            // MSAL's telemetry fields must be ignored.
            ("x-client-SKU", "MSAL.Python"),
            ("x-client-VER", "1.31.0"),
            ("client_info", "1"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["ext_expires_in"], 3600);
    let token = body["access_token"].as_str().expect("access_token");
    assert!(token.len() >= 32, "an opaque random token, got {token:?}");

    let response = arm_get(&client, &emulator, SUBSCRIPTIONS, token).await;
    assert_ne!(response.status(), 401, "ARM refused a fresh token");
}

#[tokio::test]
async fn http_basic_client_authentication_is_accepted() {
    let emulator = start();
    let client = client(&emulator);
    let info = emulator.info();
    let url = format!(
        "{}/{}/oauth2/v2.0/token",
        info.authority_host, info.tenant_id
    );
    let response = post_form(
        &client,
        &url,
        &[("grant_type", "client_credentials"), ("scope", ARM_SCOPE)],
    )
    .basic_auth(
        &info.service_principal.client_id,
        Some(&info.service_principal.client_secret),
    )
    .send()
    .await
    .expect("token POST");
    assert_eq!(response.status(), 200);
}

/// A client-credentials form.
fn form<'a>(client_id: &'a str, secret: &'a str, scope: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", secret),
        ("scope", scope),
    ]
}

/// Asserts Entra's error shape.
fn assert_aad_error(
    status: reqwest::StatusCode,
    body: &Value,
    expected_status: u16,
    error: &str,
    code: u64,
) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], serde_json::json!([code]), "{body}");
    let description = body["error_description"]
        .as_str()
        .expect("error_description");
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(
            body[field].as_str().is_some_and(|value| !value.is_empty()),
            "{field} in {body}"
        );
    }
}

#[tokio::test]
async fn bad_credentials_get_entra_errors() {
    let emulator = start();
    let client = client(&emulator);
    let principal = &emulator.info().service_principal;
    let client_id = principal.client_id.as_str();
    let secret = principal.client_secret.as_str();
    let (status, body) =
        token_request(&client, &emulator, &form(client_id, "wrong", ARM_SCOPE)).await;
    assert_aad_error(status, &body, 401, "invalid_client", 7000215);

    let unknown = form("11111111-2222-3333-4444-555555555555", secret, ARM_SCOPE);
    let (status, body) = token_request(&client, &emulator, &unknown).await;
    assert_aad_error(status, &body, 400, "unauthorized_client", 700016);

    let graph = form(client_id, secret, "https://graph.microsoft.com/.default");
    let (status, body) = token_request(&client, &emulator, &graph).await;
    assert_aad_error(status, &body, 400, "invalid_scope", 1002012);

    let (status, body) = token_request(
        &client,
        &emulator,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("scope", ARM_SCOPE),
        ],
    )
    .await;
    assert_aad_error(status, &body, 401, "invalid_client", 7000218);

    let (status, body) = token_request(
        &client,
        &emulator,
        &[
            ("grant_type", "password"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", ARM_SCOPE),
        ],
    )
    .await;
    assert_aad_error(status, &body, 400, "unsupported_grant_type", 70003);

    let wrong_tenant = format!(
        "{}/00000000-0000-0000-0000-000000000000/oauth2/v2.0/token",
        emulator.info().authority_host
    );
    let response = post_form(&client, &wrong_tenant, &form(client_id, secret, ARM_SCOPE))
        .send()
        .await
        .expect("token POST");
    let status = response.status();
    let body: Value = response.json().await.expect("JSON");
    assert_aad_error(status, &body, 400, "invalid_request", 90002);
}

#[tokio::test]
async fn a_jwt_client_assertion_signs_in_a_known_principal() {
    let emulator = start();
    let client = client(&emulator);
    let encode =
        |value: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    let (client_id, _) = world_credentials("jit-reader");
    let assertion = format!(
        "{}.{}.c2lnbmF0dXJl",
        encode(serde_json::json!({"alg": "RS256", "typ": "JWT"})),
        encode(
            serde_json::json!({"aud": "api://AzureADTokenExchange", "sub": "system:serviceaccount:ns:sa"})
        )
    );
    let jwt_bearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    let (status, body) = token_request(
        &client,
        &emulator,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_assertion_type", jwt_bearer),
            ("client_assertion", &assertion),
            ("scope", ARM_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = token_request(
        &client,
        &emulator,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_assertion_type", jwt_bearer),
            ("client_assertion", "not-a-jwt"),
            ("scope", ARM_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn msal_metadata_points_back_at_the_emulator() {
    let emulator = start();
    let client = client(&emulator);
    let info = emulator.info();
    let host = info.authority_host.trim_start_matches("https://");

    let discovery: Value = client
        .get(format!(
            "{}/common/discovery/instance?api-version=1.1&authorization_endpoint={}/{}/oauth2/v2.0/authorize",
            info.authority_host, info.authority_host, info.tenant_id
        ))
        .send()
        .await
        .expect("discovery GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        discovery["tenant_discovery_endpoint"],
        format!(
            "{}/{}/v2.0/.well-known/openid-configuration",
            info.authority_host, info.tenant_id
        )
    );
    assert_eq!(discovery["metadata"][0]["preferred_network"], host);

    let configuration: Value = client
        .get(format!(
            "{}/{}/V2.0/.well-known/openid-configuration",
            info.authority_host, info.tenant_id
        ))
        .send()
        .await
        .expect("OIDC GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        configuration["token_endpoint"],
        format!(
            "{}/{}/oauth2/v2.0/token",
            info.authority_host, info.tenant_id
        )
    );
    assert_eq!(
        configuration["issuer"],
        format!("{}/{}/v2.0", info.authority_host, info.tenant_id)
    );

    let unknown = client
        .get(format!(
            "{}/not-a-tenant/v2.0/.well-known/openid-configuration",
            info.authority_host
        ))
        .send()
        .await
        .expect("OIDC GET");
    assert_eq!(unknown.status(), 400);
}

#[tokio::test]
async fn arm_refuses_missing_unknown_and_expired_tokens() {
    let emulator = start();
    let client = client(&emulator);
    let info = emulator.info();

    let response = client
        .get(format!("{}{SUBSCRIPTIONS}", info.arm_endpoint))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(
        challenge.starts_with("Bearer authorization_uri=\""),
        "{challenge}"
    );
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(error_code(&body), "AuthenticationFailed");

    let response = arm_get(&client, &emulator, SUBSCRIPTIONS, "made-up-token").await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(error_code(&body), "InvalidAuthenticationToken");

    let token = service_principal_token(&client, &emulator).await;
    assert_ne!(
        arm_get(&client, &emulator, SUBSCRIPTIONS, &token)
            .await
            .status(),
        401
    );
    emulator.advance_clock(SignedDuration::from_mins(61));
    let response = arm_get(&client, &emulator, SUBSCRIPTIONS, &token).await;
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(error_code(&body), "ExpiredAuthenticationToken");
    let message = body["error"]["message"].as_str().expect("message");
    let shape = regex::Regex::new(
        r"^The access token expiry UTC time '\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}:\d{2} (AM|PM)' is earlier than current UTC time '\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}:\d{2} (AM|PM)'\.$",
    )
    .expect("regex");
    assert!(shape.is_match(message), "{message}");

    // A new token works again.
    let token = service_principal_token(&client, &emulator).await;
    assert_ne!(
        arm_get(&client, &emulator, SUBSCRIPTIONS, &token)
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn token_lifetime_is_configurable() {
    let emulator = start_with(EmulatorOptions {
        token_lifetime: SignedDuration::from_mins(5),
        ..EmulatorOptions::default()
    });
    let client = client(&emulator);
    let principal = &emulator.info().service_principal;
    let (status, body) = token_request(
        &client,
        &emulator,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &principal.client_id),
            ("client_secret", &principal.client_secret),
            ("scope", ARM_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["expires_in"], 300);
    let token = body["access_token"].as_str().expect("token");
    emulator.advance_clock(SignedDuration::from_mins(6));
    assert_eq!(
        arm_get(&client, &emulator, SUBSCRIPTIONS, token)
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn a_reader_is_refused_initiate_with_authorization_failed() {
    let emulator = start();
    let client = client(&emulator);
    let (client_id, secret) = world_credentials("jit-reader");
    let object_id = jit_emulator::World::default_world()
        .principals
        .iter()
        .find(|principal| principal.name == "jit-reader")
        .map(|principal| principal.object_id.clone())
        .expect("jit-reader");
    let token = token_for(&client, &emulator, &client_id, &secret).await;
    let subscription = &emulator.info().subscription_ids[0];
    let policy = format!(
        "/subscriptions/{subscription}/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default"
    );
    let response = client
        .post(format!(
            "{}{policy}/initiate?api-version=2020-01-01",
            emulator.info().arm_endpoint
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({"virtualMachines": []}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(error_code(&body), "AuthorizationFailed");
    assert_eq!(
        body["error"]["message"],
        format!(
            "The client '{client_id}' with object id '{object_id}' does not have authorization to perform action 'Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action' over scope '{policy}' or the scope is invalid. If access was recently granted, please refresh your credentials."
        )
    );

    // Reading is allowed.
    let response = arm_get(
        &client,
        &emulator,
        &format!("{policy}?api-version=2020-01-01"),
        &token,
    )
    .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_managed_identity_endpoint_needs_its_header() {
    let emulator = start();
    let client = client(&emulator);
    let managed_identity = emulator.managed_identity();
    let url = format!(
        "{}?api-version=2019-08-01&resource=https://management.azure.com",
        managed_identity.endpoint
    );

    let refused = client.get(&url).send().await.expect("GET");
    assert_eq!(refused.status(), 401);
    let refused = client
        .get(&url)
        .header("x-identity-header", "guess")
        .send()
        .await
        .expect("GET");
    assert_eq!(refused.status(), 401);

    let response = client
        .get(&url)
        .header("X-IDENTITY-HEADER", &managed_identity.header)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["resource"], "https://management.azure.com");
    let expires_on: i64 = body["expires_on"]
        .as_str()
        .expect("expires_on is a string of Unix seconds")
        .parse()
        .expect("a number");
    let now = emulator.clock().now().as_second();
    assert!(
        (now + 3500..=now + 3600).contains(&expires_on),
        "{expires_on} vs {now}"
    );
    let token = body["access_token"].as_str().expect("token");
    assert_ne!(
        arm_get(&client, &emulator, SUBSCRIPTIONS, token)
            .await
            .status(),
        401
    );

    let unknown_identity = client
        .get(format!(
            "{url}&client_id=11111111-2222-3333-4444-555555555555"
        ))
        .header("x-identity-header", &managed_identity.header)
        .send()
        .await
        .expect("GET");
    assert_eq!(unknown_identity.status(), 400);
}

/// Runs the fake `az` the way `azure_identity`'s `AzureCliCredential` does.
async fn run_az(emulator: &jit_emulator::Emulator, arguments: &str) -> std::process::Output {
    let bin = emulator.info().az_cli.parent().expect("bin dir").to_owned();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("cd /bin && az {arguments}"))
        .env("PATH", path)
        .output();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("az finished within 30 s")
        .expect("/bin/sh runs")
}

#[tokio::test]
async fn the_fake_az_prints_a_token_arm_accepts_and_logs_each_call() {
    let emulator = start();
    let client = client(&emulator);
    let info = emulator.info();
    assert!(info.az_cli.is_absolute());

    let output = run_az(
        &emulator,
        &format!("account get-access-token -o json --scope {ARM_SCOPE}"),
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let body: Value = serde_json::from_slice(&output.stdout).expect("az prints JSON");
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["tenant"], info.tenant_id.as_str());
    assert_eq!(body["subscription"], info.subscription_ids[0].as_str());
    let expires_on = body["expires_on"]
        .as_i64()
        .expect("expires_on is an integer");
    assert!(expires_on > emulator.clock().now().as_second());
    let expires_on_local = body["expiresOn"].as_str().expect("expiresOn");
    assert!(
        regex::Regex::new(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$")
            .expect("regex")
            .is_match(expires_on_local),
        "{expires_on_local}"
    );
    let token = body["accessToken"].as_str().expect("accessToken");
    assert_ne!(
        arm_get(&client, &emulator, SUBSCRIPTIONS, token)
            .await
            .status(),
        401
    );

    let output = run_az(
        &emulator,
        &format!("account get-access-token -o json --resource https://management.core.windows.net/ --tenant {}", info.tenant_id),
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let body: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert!(
        body.get("subscription").is_none(),
        "no subscription with --tenant: {body}"
    );

    let output = run_az(
        &emulator,
        "account get-access-token -o json --scope https://graph.microsoft.com/.default",
    )
    .await;
    assert_eq!(output.status.code(), Some(1));

    let output = run_az(&emulator, "account show -o json").await;
    let account: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(account["user"]["name"], "azureuser@contoso.com");
    assert_eq!(account["tenantId"], info.tenant_id.as_str());

    let calls = emulator.az_calls();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert_eq!(
        calls[0],
        format!("account get-access-token -o json --scope {ARM_SCOPE}")
    );
    assert_eq!(calls[3], "account show -o json");

    let output = run_az(&emulator, "--version").await;
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("azure-cli"));
    assert_eq!(emulator.az_calls().len(), 5);
}

#[tokio::test]
async fn the_fake_az_token_is_renewed_when_the_clock_moves() {
    let emulator = start();
    let client = client(&emulator);
    let scope_arguments = format!("account get-access-token -o json --scope {ARM_SCOPE}");
    let first: Value =
        serde_json::from_slice(&run_az(&emulator, &scope_arguments).await.stdout).expect("JSON");
    emulator.advance_clock(SignedDuration::from_hours(2));
    let second: Value =
        serde_json::from_slice(&run_az(&emulator, &scope_arguments).await.stdout).expect("JSON");
    assert_ne!(first["accessToken"], second["accessToken"]);
    assert!(second["expires_on"].as_i64() > Some(emulator.clock().now().as_second()));
    let old = first["accessToken"].as_str().expect("token");
    let new = second["accessToken"].as_str().expect("token");
    assert_eq!(
        arm_get(&client, &emulator, SUBSCRIPTIONS, old)
            .await
            .status(),
        401
    );
    assert_ne!(
        arm_get(&client, &emulator, SUBSCRIPTIONS, new)
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn a_logged_out_az_fails_like_the_real_one() {
    let emulator = start();
    let client = client(&emulator);
    let response = client
        .post(format!("{}/az", emulator.info().admin_endpoint))
        .json(&serde_json::json!({"logged_in": false}))
        .send()
        .await
        .expect("admin POST");
    assert_eq!(response.status(), 200);
    let output = run_az(
        &emulator,
        &format!("account get-access-token -o json --scope {ARM_SCOPE}"),
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "ERROR: Please run 'az login' to setup account."
    );
    assert!(output.stdout.is_empty());

    emulator.set_az_logged_in(true).expect("log back in");
    let output = run_az(
        &emulator,
        &format!("account get-access-token -o json --scope {ARM_SCOPE}"),
    )
    .await;
    assert!(output.status.success());
}
