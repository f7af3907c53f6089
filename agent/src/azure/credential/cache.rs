//! Tokens kept in memory until shortly before they expire.
//!
//! `AzureCliCredential` spawns `az` on every call (0.5–1 s each), and `jit list` makes
//! dozens of ARM calls, many at once. [`TokenCache`] sits in front of any
//! `TokenCredential`, keeps one token per scope until [`REFRESH_MARGIN`] before expiry,
//! and lets concurrent callers wait for a single fetch instead of spawning `az` each.
//!
//! Each scope has its own lock, held only by callers of that scope: a slow or hung fetch
//! (an `az` that never answers until its time limit) never delays a token for another
//! scope. Callers that queued behind a fetch that failed get its error instead of
//! starting one fetch each in turn, so a timeout costs one limit, not one per caller.
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
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// One slot per scope; the map's lock is held only to find or add a slot.
    slots: StdMutex<HashMap<String, Arc<ScopeSlot>>>,
}

/// The cached token of one scope, and the lock its fetches take.
#[derive(Default)]
struct ScopeSlot {
    /// Fetches finished so far (read before waiting for the lock, to learn whether one
    /// finished meanwhile).
    finished_fetches: AtomicU64,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    token: Option<AccessToken>,
    /// The error of the last fetch, if it failed.
    last_error: Option<CredentialError>,
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
            slots: StdMutex::new(HashMap::new()),
        }
    }

    /// Which sign-in method the tokens come from.
    pub fn source_kind(&self) -> CredentialSource {
        self.source_kind
    }

    /// A token for `scopes`: the cached one while it is more than [`REFRESH_MARGIN`]
    /// from expiry, else a new one.
    pub async fn token(&self, scopes: &[&str]) -> Result<AccessToken, CredentialError> {
        let slot = self.slot(scopes);
        let seen = slot.finished_fetches.load(Ordering::Acquire);
        let mut state = slot.state.lock().await;
        if let Some(token) = &state.token
            && is_fresh(token, OffsetDateTime::now_utc())
        {
            return Ok(token.clone());
        }
        if let Some(error) = failed_meanwhile(&slot, seen, &state) {
            return Err(error);
        }
        self.fetch_into(&slot, &mut state, scopes, false).await
    }

    /// A new token for `scopes` because `rejected` was refused (401). If another caller
    /// already replaced that token, the replacement is returned without a new fetch.
    pub async fn refresh(
        &self,
        scopes: &[&str],
        rejected: Option<&Secret>,
    ) -> Result<AccessToken, CredentialError> {
        let slot = self.slot(scopes);
        let seen = slot.finished_fetches.load(Ordering::Acquire);
        let mut state = slot.state.lock().await;
        if let (Some(cached), Some(rejected)) = (&state.token, rejected)
            && &cached.token != rejected
            && is_fresh(cached, OffsetDateTime::now_utc())
        {
            return Ok(cached.clone());
        }
        if let Some(error) = failed_meanwhile(&slot, seen, &state) {
            return Err(error);
        }
        state.token = None;
        self.fetch_into(&slot, &mut state, scopes, true).await
    }

    /// Forgets every cached token (for example after the user signed in again). A fetch
    /// under way keeps its caller's result but no longer fills the cache.
    pub async fn clear(&self) {
        self.lock_slots().clear();
    }

    /// The slot of `scopes`, created on first use.
    fn slot(&self, scopes: &[&str]) -> Arc<ScopeSlot> {
        Arc::clone(self.lock_slots().entry(cache_key(scopes)).or_default())
    }

    fn lock_slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ScopeSlot>>> {
        // Every change to the map is a single insert or clear: a panic cannot leave it
        // half-written.
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fetches while holding the slot's lock, records the outcome for the callers
    /// queued behind, and counts the fetch as finished.
    async fn fetch_into(
        &self,
        slot: &ScopeSlot,
        state: &mut SlotState,
        scopes: &[&str],
        force: bool,
    ) -> Result<AccessToken, CredentialError> {
        let result = self.fetch(scopes, force).await;
        match &result {
            Ok(token) => {
                state.token = Some(token.clone());
                state.last_error = None;
            }
            Err(error) => state.last_error = Some(error.clone()),
        }
        slot.finished_fetches.fetch_add(1, Ordering::Release);
        result
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

/// The error of a fetch that failed while this caller waited for the slot, if one did:
/// the caller shares that outcome instead of starting another fetch at once.
fn failed_meanwhile(slot: &ScopeSlot, seen: u64, state: &SlotState) -> Option<CredentialError> {
    if slot.finished_fetches.load(Ordering::Acquire) == seen {
        return None;
    }
    state.last_error.clone()
}

fn cache_key(scopes: &[&str]) -> String {
    scopes.join(" ")
}

fn is_fresh(token: &AccessToken, now: OffsetDateTime) -> bool {
    token.expires_on > now + REFRESH_MARGIN
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A token source whose scopes behave differently: `hang` never answers, `fail`
    /// fails after a second (as a timed-out `az` does), any other answers at once.
    #[derive(Debug, Default)]
    struct Scripted {
        calls: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Scripted {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match scopes.first().copied() {
                Some("hang") => std::future::pending().await,
                Some("fail") => {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    Err(CredentialError::AzureCliTimedOut {
                        limit: std::time::Duration::from_secs(1),
                    }
                    .into_azure())
                }
                _ => Ok(AccessToken::new(
                    Secret::new("token"),
                    OffsetDateTime::now_utc() + Duration::hours(1),
                )),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_fetch_does_not_hold_up_another_scope() {
        let cache = Arc::new(TokenCache::new(Arc::new(Scripted::default())));
        let hung = tokio::spawn({
            let cache = Arc::clone(&cache);
            async move { cache.token(&["hang"]).await }
        });
        // Let the hung fetch start (and take its scope's lock).
        tokio::task::yield_now().await;
        let other =
            tokio::time::timeout(std::time::Duration::from_secs(600), cache.token(&["other"]))
                .await;
        assert!(
            matches!(other, Ok(Ok(_))),
            "another scope waited for the hung fetch"
        );
        assert!(!hung.is_finished());
        hung.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn callers_queued_behind_a_failed_fetch_share_its_error() {
        let source = Arc::new(Scripted::default());
        let cache = Arc::new(TokenCache::new(
            Arc::clone(&source) as Arc<dyn TokenCredential>
        ));
        let callers: Vec<_> = (0..5)
            .map(|_| {
                let cache = Arc::clone(&cache);
                tokio::spawn(async move { cache.token(&["fail"]).await })
            })
            .collect();
        for caller in callers {
            let result = caller.await.expect("the caller ran");
            assert!(
                matches!(result, Err(CredentialError::AzureCliTimedOut { .. })),
                "{result:?}"
            );
        }
        assert_eq!(source.calls.load(Ordering::SeqCst), 1, "one fetch for all");
        // A caller arriving after the failure tries again.
        assert!(cache.token(&["fail"]).await.is_err());
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);
    }
}
