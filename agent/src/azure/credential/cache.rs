//! Tokens kept in memory until shortly before they expire.
//!
//! `AzureCliCredential` spawns `az` on every call (0.5–1 s each), and `jit list` makes
//! dozens of ARM calls, many at once. [`TokenCache`] sits in front of any
//! `TokenCredential`, keeps one token per scope until [`REFRESH_MARGIN`] before expiry,
//! and lets concurrent callers wait for a single fetch instead of spawning `az` each.
//!
//! When ARM answers 401 (the token expired early, was revoked, or ARM's clock runs ahead
//! of ours) the ARM client asks for a *forced* refresh. Only the first caller that saw
//! the rejected token fetches a new one; later callers with the same stale token get the
//! fresh one. azure_identity's service-principal and managed-identity credentials keep
//! their own cache that cannot be bypassed, so a forced refresh rebuilds them through a
//! factory; any other source (for example tokens handed over by the background agent)
//! sees a [`ForceRefresh`] marker in the request context and may honour it.
//!
//! Tokens live in memory only; `Debug` never prints them.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex as StdMutex};

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientMethodOptions, Context};
use time::{Duration, OffsetDateTime};
use tokio::sync::Mutex;

use super::error::{CredentialError, CredentialSource};

/// A token is refreshed once it is this close to its expiry.
pub const REFRESH_MARGIN: Duration = Duration::minutes(5);

/// Marker in `TokenRequestOptions`' context: the caller wants a new token, not a cached
/// one. Token sources with their own cache should bypass it when they see this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForceRefresh;

/// Builds a fresh credential (used for a forced refresh of credentials whose internal
/// cache cannot be bypassed).
pub type CredentialFactory =
    Arc<dyn Fn() -> Result<Arc<dyn TokenCredential>, CredentialError> + Send + Sync>;

/// In-memory, per-scope token cache in front of any token source.
pub struct TokenCache {
    source_kind: CredentialSource,
    source: StdMutex<Arc<dyn TokenCredential>>,
    factory: Option<CredentialFactory>,
    tokens: Mutex<HashMap<String, AccessToken>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TokenCache")
            .field("source", &self.source_kind)
            .field("tokens", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// Caches tokens of any source, for example one handed over by the background agent.
    /// Errors from that source are reported as [`CredentialSource::External`] unless it
    /// returns a wrapped [`CredentialError`].
    pub fn new(source: Arc<dyn TokenCredential>) -> Self {
        Self::with_kind(CredentialSource::External, source, None)
    }

    pub(crate) fn with_kind(
        source_kind: CredentialSource,
        source: Arc<dyn TokenCredential>,
        factory: Option<CredentialFactory>,
    ) -> Self {
        Self {
            source_kind,
            source: StdMutex::new(source),
            factory,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Which sign-in method the tokens come from.
    pub fn source_kind(&self) -> CredentialSource {
        self.source_kind
    }

    /// A token for `scopes`: the cached one while it is more than [`REFRESH_MARGIN`]
    /// from expiry, else a new one.
    pub async fn token(&self, scopes: &[&str]) -> Result<AccessToken, CredentialError> {
        let key = cache_key(scopes);
        let mut tokens = self.tokens.lock().await;
        if let Some(token) = tokens.get(&key)
            && is_fresh(token, OffsetDateTime::now_utc())
        {
            return Ok(token.clone());
        }
        let token = self.fetch(scopes, false).await?;
        tokens.insert(key, token.clone());
        Ok(token)
    }

    /// A new token for `scopes` because `rejected` was refused (401). If another caller
    /// already replaced that token, the replacement is returned without a new fetch.
    pub async fn refresh(
        &self,
        scopes: &[&str],
        rejected: Option<&Secret>,
    ) -> Result<AccessToken, CredentialError> {
        let key = cache_key(scopes);
        let mut tokens = self.tokens.lock().await;
        if let (Some(cached), Some(rejected)) = (tokens.get(&key), rejected)
            && &cached.token != rejected
            && is_fresh(cached, OffsetDateTime::now_utc())
        {
            return Ok(cached.clone());
        }
        tokens.remove(&key);
        let token = self.fetch(scopes, true).await?;
        tokens.insert(key, token.clone());
        Ok(token)
    }

    /// Forgets every cached token (for example after the user signed in again).
    pub async fn clear(&self) {
        self.tokens.lock().await.clear();
    }

    async fn fetch(&self, scopes: &[&str], force: bool) -> Result<AccessToken, CredentialError> {
        if force && let Some(factory) = &self.factory {
            let rebuilt = factory()?;
            *self.lock_source() = rebuilt;
        }
        let source = Arc::clone(&self.lock_source());
        let mut context = Context::new();
        if force {
            context.insert(ForceRefresh);
        }
        let options = TokenRequestOptions {
            method_options: ClientMethodOptions { context },
        };
        tracing::debug!(source = %self.source_kind, force, "requesting a new access token");
        source
            .get_token(scopes, Some(options))
            .await
            .map_err(|error| CredentialError::from_azure(self.source_kind, &error))
    }

    fn lock_source(&self) -> std::sync::MutexGuard<'_, Arc<dyn TokenCredential>> {
        // A panic while holding this lock cannot leave the Arc half-written.
        self.source
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl TokenCredential for TokenCache {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let forced = options
            .as_ref()
            .and_then(|options| options.method_options.context.value::<ForceRefresh>())
            .is_some();
        let result = if forced {
            self.refresh(scopes, None).await
        } else {
            self.token(scopes).await
        };
        result.map_err(CredentialError::into_azure)
    }
}

fn cache_key(scopes: &[&str]) -> String {
    scopes.join(" ")
}

fn is_fresh(token: &AccessToken, now: OffsetDateTime) -> bool {
    token.expires_on > now + REFRESH_MARGIN
}
