//! Sign-in selection, the keychain (through keyring-core's mock store), the token cache,
//! and that no `Debug` output ever shows a secret or a token.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use jit_agent::azure::arm::{ArmClient, ArmClientOptions};
use jit_agent::azure::cloud::AzureCloud;
use jit_agent::azure::credential::{
    CredentialError, CredentialKind, CredentialOptions, CredentialPlan, ForceRefresh, Keychain,
    TokenCache, build_credential,
};
use jit_agent::azure::transport::{HttpTransport, TransportOptions};
use time::{Duration, OffsetDateTime};

const SECRET: &str = "very-secret-client-value";

fn mock_keychain() -> Keychain {
    Keychain::in_store(keyring_core::mock::Store::new().expect("mock store"))
}

fn service_principal_options() -> CredentialOptions {
    CredentialOptions {
        tenant_id: Some("72f988bf-86f1-41af-91ab-2d7cd011db47".to_owned()),
        client_id: Some("00000000-0000-0000-0000-0000000000aa".to_owned()),
        ..CredentialOptions::default()
    }
}

#[test]
fn kinds_parse_and_print() {
    for kind in CredentialKind::ALL {
        assert_eq!(kind.as_str().parse::<CredentialKind>(), Ok(kind));
    }
    assert_eq!("AZ".parse(), Ok(CredentialKind::AzureCli));
    assert_eq!(
        "managed_identity".parse(),
        Ok(CredentialKind::ManagedIdentity)
    );
    let error = "password".parse::<CredentialKind>().expect_err("unknown");
    assert!(error.to_string().contains("service-principal"));
}

#[test]
fn automatic_selection_follows_the_documented_order() {
    let with_secret = CredentialOptions {
        client_secret: Some(Secret::new(SECRET)),
        federated_token_file: Some(PathBuf::from("/var/run/token")),
        app_service_identity: true,
        ..service_principal_options()
    };
    assert_eq!(with_secret.plan(), Ok(CredentialPlan::ServicePrincipal));

    let workload = CredentialOptions {
        federated_token_file: Some(PathBuf::from("/var/run/token")),
        app_service_identity: true,
        ..service_principal_options()
    };
    assert_eq!(workload.plan(), Ok(CredentialPlan::WorkloadIdentity));

    let keychain = mock_keychain();
    let stored = CredentialOptions {
        keychain: Some(keychain.clone()),
        app_service_identity: true,
        ..service_principal_options()
    };
    assert_eq!(
        stored.plan(),
        Ok(CredentialPlan::ManagedIdentity),
        "no stored secret yet"
    );
    keychain
        .set_client_secret("00000000-0000-0000-0000-0000000000aa", &Secret::new(SECRET))
        .expect("stored");
    assert_eq!(
        stored.plan(),
        Ok(CredentialPlan::ServicePrincipalFromKeychain)
    );

    let nothing = CredentialOptions::default();
    assert_eq!(
        nothing.plan(),
        Ok(CredentialPlan::AzureCli {
            imds_fallback: true
        })
    );
    let explicit = CredentialOptions {
        kind: CredentialKind::AzureCli,
        ..with_secret
    };
    assert_eq!(
        explicit.plan(),
        Ok(CredentialPlan::AzureCli {
            imds_fallback: false
        }),
        "an explicit choice wins over the environment"
    );
}

#[test]
fn keychain_round_trip_in_a_mock_store() {
    let keychain = mock_keychain();
    assert!(keychain.client_secret("app").expect("lookup").is_none());
    keychain
        .set_client_secret("app", &Secret::new(SECRET))
        .expect("set");
    assert_eq!(
        keychain
            .client_secret("app")
            .expect("lookup")
            .map(|secret| secret.secret().to_owned())
            .as_deref(),
        Some(SECRET)
    );
    assert!(keychain.delete_client_secret("app").expect("delete"));
    assert!(!keychain.delete_client_secret("app").expect("delete again"));
    assert!(!format!("{keychain:?}").contains(SECRET));
}

fn transport() -> HttpTransport {
    HttpTransport::new(&TransportOptions::default()).expect("HTTP client")
}

#[test]
fn service_principal_without_a_secret_says_how_to_store_one() {
    let options = CredentialOptions {
        kind: CredentialKind::ServicePrincipal,
        keychain: Some(mock_keychain()),
        ..service_principal_options()
    };
    let error = build_credential(&AzureCloud::Public, &transport(), &options)
        .expect_err("no secret anywhere");
    assert!(
        matches!(&error, CredentialError::MissingClientSecret { client_id } if client_id.ends_with("aa")),
        "{error:?}"
    );
    assert!(
        error.hint().contains("jit auth set-secret"),
        "{}",
        error.hint()
    );
}

#[test]
fn service_principal_without_ids_names_the_variables() {
    let options = CredentialOptions {
        kind: CredentialKind::ServicePrincipal,
        client_secret: Some(Secret::new(SECRET)),
        ..CredentialOptions::default()
    };
    let error = build_credential(&AzureCloud::Public, &transport(), &options)
        .expect_err("no tenant, no client id");
    let text = format!("{error} {}", error.hint());
    assert!(text.contains("AZURE_TENANT_ID"), "{text}");
    assert!(text.contains("AZURE_CLIENT_ID"), "{text}");
    assert!(!text.contains(SECRET));
}

#[test]
fn workload_identity_without_settings_names_them() {
    let options = CredentialOptions {
        kind: CredentialKind::WorkloadIdentity,
        ..CredentialOptions::default()
    };
    let error =
        build_credential(&AzureCloud::Public, &transport(), &options).expect_err("nothing set");
    assert!(
        matches!(&error, CredentialError::MissingWorkloadIdentitySettings { missing } if missing.contains(&"AZURE_FEDERATED_TOKEN_FILE")),
        "{error:?}"
    );
}

#[test]
fn debug_output_never_shows_the_secret() {
    let options = CredentialOptions {
        kind: CredentialKind::ServicePrincipal,
        client_secret: Some(Secret::new(SECRET)),
        ..service_principal_options()
    };
    assert!(!format!("{options:?}").contains(SECRET));
    assert!(format!("{options:?}").contains("<redacted>"));
    let credential =
        build_credential(&AzureCloud::Public, &transport(), &options).expect("credential");
    assert!(
        !format!("{credential:?}").contains(SECRET),
        "{credential:?}"
    );
    let cloud = AzureCloud::Public;
    let arm = ArmClient::new(
        &cloud.endpoints(),
        &transport(),
        credential,
        ArmClientOptions::default(),
    );
    assert!(!format!("{arm:?}").contains(SECRET));
}

/// A token source that counts its calls and hands out numbered tokens.
#[derive(Debug)]
struct CountingSource {
    calls: AtomicUsize,
    lifetime: Duration,
    forced: AtomicUsize,
}

impl CountingSource {
    fn new(lifetime: Duration) -> Arc<Self> {
        Arc::new(Self {
            calls: AtomicUsize::new(0),
            lifetime,
            forced: AtomicUsize::new(0),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl TokenCredential for CountingSource {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        assert_eq!(scopes, ["https://management.azure.com/.default"]);
        if options
            .as_ref()
            .and_then(|options| options.method_options.context.value::<ForceRefresh>())
            .is_some()
        {
            self.forced.fetch_add(1, Ordering::SeqCst);
        }
        // Let concurrent callers pile up while this "spawns az".
        tokio::time::sleep(StdDuration::from_millis(20)).await;
        let number = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(AccessToken::new(
            format!("token-{number}"),
            OffsetDateTime::now_utc() + self.lifetime,
        ))
    }
}

const SCOPE: [&str; 1] = ["https://management.azure.com/.default"];

#[tokio::test]
async fn tokens_are_cached_until_close_to_expiry() {
    let source = CountingSource::new(Duration::hours(1));
    let cache = TokenCache::new(source.clone());
    let first = cache.token(&SCOPE).await.expect("token");
    let second = cache.token(&SCOPE).await.expect("token");
    assert_eq!(first.token, second.token);
    assert_eq!(source.calls(), 1);

    let short_lived = CountingSource::new(Duration::minutes(4));
    let cache = TokenCache::new(short_lived.clone());
    cache.token(&SCOPE).await.expect("token");
    cache.token(&SCOPE).await.expect("token");
    assert_eq!(
        short_lived.calls(),
        2,
        "a token within five minutes of expiry is replaced"
    );
}

#[tokio::test]
async fn concurrent_callers_share_one_fetch() {
    let source = CountingSource::new(Duration::hours(1));
    let cache = Arc::new(TokenCache::new(source.clone()));
    let tokens = futures::future::join_all((0..8).map(|_| {
        let cache = Arc::clone(&cache);
        async move { cache.token(&SCOPE).await.expect("token") }
    }))
    .await;
    assert_eq!(source.calls(), 1);
    assert!(tokens.iter().all(|token| token.token == tokens[0].token));
}

#[tokio::test]
async fn a_rejected_token_is_refreshed_once() {
    let source = CountingSource::new(Duration::hours(1));
    let cache = TokenCache::new(source.clone());
    let rejected = cache.token(&SCOPE).await.expect("token");
    let fresh = cache
        .refresh(&SCOPE, Some(&rejected.token))
        .await
        .expect("refresh");
    assert_ne!(fresh.token, rejected.token);
    assert_eq!(source.calls(), 2);
    assert_eq!(
        source.forced.load(Ordering::SeqCst),
        1,
        "the source is told it is forced"
    );

    // A second caller that also saw the old token gets the new one without a fetch.
    let again = cache
        .refresh(&SCOPE, Some(&rejected.token))
        .await
        .expect("refresh");
    assert_eq!(again.token, fresh.token);
    assert_eq!(source.calls(), 2);
    assert!(!format!("{cache:?}").contains("token-"));
}

#[tokio::test]
async fn errors_of_an_external_source_are_typed() {
    #[derive(Debug)]
    struct Failing;
    #[async_trait::async_trait]
    impl TokenCredential for Failing {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            Err(CredentialError::AzureCliNotSignedIn {
                detail: "Please run 'az login' to setup account.".to_owned(),
            }
            .into_azure())
        }
    }
    let cache = TokenCache::new(Arc::new(Failing));
    let error = cache.token(&SCOPE).await.expect_err("fails");
    assert!(matches!(error, CredentialError::AzureCliNotSignedIn { .. }));
}
