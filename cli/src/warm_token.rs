//! Warm tokens: ARM tokens handed over by a running background agent.
//!
//! Signing in through the Azure CLI spawns `az`, which takes about a second on every
//! cold command. The agent keeps its credential's token cached for its whole life, so a
//! command that finds an agent for the same Azure asks it over the private socket
//! instead ([`AgentTokenSource`]) and spawns nothing. The token travels over that
//! socket only (owner-only, peer uid checked on Unix) and stays in memory, like every
//! other token.
//!
//! What it gives up, on purpose:
//!
//! - **No agent is started for a token.** Starting one costs as much as the `az` call it
//!   would save (the new agent has to call `az` itself), and on a machine where no agent
//!   can run every command would pay for a failed start. The first `jit connect` starts
//!   the agent after its window opens; the commands after it are warm.
//! - **The agent's sign-in is trusted when its Azure matches.** The agent is matched by
//!   its profile (the cloud or ARM endpoint, see `agent_support::agent_profile`) and by being
//!   the same user's; it signs in with the settings it was started with.
//!   `--no-agent` (or `JIT_NO_AGENT=1`) makes a command use its own credential.
//! - **Anything unexpected falls back** to the credential the settings describe (built up
//!   front exactly as without an agent, so configuration errors surface as before): no
//!   agent, an agent for another Azure or protocol, an agent that cannot sign in, and a
//!   token Azure refused (a forced refresh never goes back to the agent, whose cache would
//!   return the same token).

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::time::OffsetDateTime;
use jit_agent::azure::credential::{ForceRefresh, TokenCache, build_credential};
use jit_agent::daemon::protocol::PROTOCOL_VERSION;
use jit_agent::daemon::{AgentClient, AgentPaths, ClientError};

use crate::agent_support;
use crate::connection::{self, AzureConnection, credential_options};
use crate::printer::Printer;
use crate::settings::GlobalSettings;

/// How long to wait for a running agent to accept a connection and answer the handshake.
const AGENT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects to Azure, taking tokens from a running agent for the same Azure when there
/// is one (and the agent is not turned off), else from the credential the settings
/// describe.
pub fn connect(settings: &GlobalSettings, printer: &Printer) -> anyhow::Result<AzureConnection> {
    if !settings.agent.enabled {
        return AzureConnection::new(&settings.azure, printer);
    }
    let paths = match agent_support::agent_paths(settings) {
        Ok(paths) => paths,
        Err(error) => {
            tracing::debug!(%error, "no agent directories; signing in directly");
            return AzureConnection::new(&settings.azure, printer);
        }
    };
    let cloud = connection::cloud(&settings.azure)?;
    let transport = connection::transport(&settings.azure)?;
    let fallback = build_credential(&cloud, &transport, &credential_options(&settings.azure))?;
    let source = AgentTokenSource::new(
        paths,
        env!("CARGO_PKG_VERSION"),
        agent_support::agent_profile(settings),
        fallback,
    );
    let credential = Arc::new(TokenCache::new(Arc::new(source)));
    Ok(AzureConnection::with_credential(
        &settings.azure,
        printer,
        cloud,
        transport,
        credential,
    ))
}

/// A token source that asks the running agent first and the configured credential
/// otherwise. It holds no token itself: the [`TokenCache`] in front of it does.
#[derive(Debug)]
pub struct AgentTokenSource {
    paths: AgentPaths,
    client_version: String,
    profile: String,
    fallback: Arc<TokenCache>,
}

impl AgentTokenSource {
    /// A source asking the agent at `paths`, if it runs for `profile`, before `fallback`.
    pub fn new(
        paths: AgentPaths,
        client_version: impl Into<String>,
        profile: impl Into<String>,
        fallback: Arc<TokenCache>,
    ) -> Self {
        Self {
            paths,
            client_version: client_version.into(),
            profile: profile.into(),
            fallback,
        }
    }

    /// The agent's token for `scope`, or why there is none.
    async fn ask_agent(&self, scope: &str) -> Result<AccessToken, WhyNotWarm> {
        let mut client =
            AgentClient::connect(&self.paths, &self.client_version, AGENT_CONNECT_TIMEOUT)
                .await
                .map_err(WhyNotWarm::Client)?;
        let welcome = client.welcome();
        if welcome.protocol_version != PROTOCOL_VERSION {
            return Err(WhyNotWarm::Mismatch(format!(
                "it speaks protocol {}",
                welcome.protocol_version
            )));
        }
        if welcome.profile.as_deref() != Some(self.profile.as_str()) {
            return Err(WhyNotWarm::Mismatch(format!(
                "it serves {}",
                welcome.profile.as_deref().unwrap_or("an unnamed profile")
            )));
        }
        let pid = welcome.pid;
        let token = client.token(scope).await.map_err(WhyNotWarm::Client)?;
        let expires_on = OffsetDateTime::from_unix_timestamp(token.expires_on.as_second())
            .map_err(|error| WhyNotWarm::Mismatch(format!("its token's expiry: {error}")))?;
        tracing::debug!(pid, "using a warm token from the agent");
        Ok(AccessToken::new(token.secret, expires_on))
    }
}

/// Why the agent's token was not used (for the debug log; never holds a token).
#[derive(Debug, thiserror::Error)]
enum WhyNotWarm {
    #[error(transparent)]
    Client(ClientError),
    #[error("the agent does not fit: {0}")]
    Mismatch(String),
}

#[async_trait::async_trait]
impl TokenCredential for AgentTokenSource {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let forced = options
            .as_ref()
            .and_then(|options| options.method_options.context.value::<ForceRefresh>())
            .is_some();
        if let ([scope], false) = (scopes, forced) {
            match self.ask_agent(scope).await {
                Ok(token) => return Ok(token),
                Err(WhyNotWarm::Client(ClientError::NotRunning { .. })) => {
                    tracing::debug!("no agent is running; signing in directly");
                }
                Err(reason) => {
                    tracing::debug!(%reason, "no warm token from the agent; signing in directly");
                }
            }
        }
        self.fallback.get_token(scopes, options).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use azure_core::credentials::Secret;

    use super::*;

    /// Counts its calls and hands out a fixed token.
    #[derive(Debug, Default)]
    struct Counting {
        calls: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Counting {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(AccessToken::new(
                Secret::new("fallback-token"),
                OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
            ))
        }
    }

    #[tokio::test]
    async fn without_an_agent_the_configured_credential_answers() {
        let temp = tempfile::tempdir().expect("temp dir");
        let paths = AgentPaths::new(temp.path().join("runtime"), temp.path().join("state"));
        let counting = Arc::new(Counting::default());
        let fallback = Arc::new(TokenCache::new(counting.clone()));
        let source = AgentTokenSource::new(paths, "0.0.0", "AzureCloud", fallback);
        let token = source
            .get_token(&["https://management.azure.com/.default"], None)
            .await
            .expect("a token from the fallback");
        assert_eq!(token.token.secret(), "fallback-token");
        assert_eq!(counting.calls.load(Ordering::SeqCst), 1);
        let printed = format!("{source:?}");
        assert!(!printed.contains("fallback-token"), "{printed}");
    }
}
