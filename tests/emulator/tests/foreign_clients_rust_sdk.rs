//! Microsoft's Rust SDK (`azure_identity` on `azure_core`) signs in against the emulated
//! Entra ID with nothing but the authority host and a transport that trusts the
//! emulator's CA, and gets Entra's errors parsed as it would from Azure.

mod front_end_support;

use std::sync::Arc;

use azure_core::credentials::TokenCredential as _;
use azure_core::http::{ClientOptions, Transport};
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
use front_end_support::{ARM_SCOPE, arm_get, client, start};

fn credential(
    emulator: &jit_emulator::Emulator,
    client_id: &str,
    secret: &str,
) -> Arc<ClientSecretCredential> {
    let info = emulator.info();
    let mut cloud = azure_core::cloud::CustomConfiguration::default();
    cloud.authority_host = info.authority_host.clone();
    let options = ClientSecretCredentialOptions {
        client_options: ClientOptions {
            cloud: Some(Arc::new(cloud.into())),
            transport: Some(Transport::new(Arc::new(client(emulator)))),
            ..ClientOptions::default()
        },
    };
    ClientSecretCredential::new(
        &info.tenant_id,
        client_id.to_owned(),
        secret.to_owned().into(),
        Some(options),
    )
    .expect("the credential accepts the emulator's authority")
}

#[tokio::test]
async fn client_secret_credential_gets_a_token_arm_accepts() {
    let emulator = start();
    let principal = &emulator.info().service_principal;
    let token = credential(&emulator, &principal.client_id, &principal.client_secret)
        .get_token(&[ARM_SCOPE], None)
        .await
        .expect("a token");
    let remaining = token.expires_on - time::OffsetDateTime::now_utc();
    assert!(remaining > time::Duration::minutes(55), "{remaining}");
    let response = arm_get(
        &client(&emulator),
        &emulator,
        "/subscriptions?api-version=2022-12-01",
        token.token.secret(),
    )
    .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_wrong_secret_surfaces_entra_s_error_code() {
    let emulator = start();
    let principal = &emulator.info().service_principal;
    let error = credential(&emulator, &principal.client_id, "not-the-secret")
        .get_token(&[ARM_SCOPE], None)
        .await
        .expect_err("a wrong secret is refused");
    let message = format!("{error:?} {error}");
    assert!(message.contains("7000215"), "{message}");
}
