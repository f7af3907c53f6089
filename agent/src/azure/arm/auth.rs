//! Bearer tokens on ARM requests, with one forced refresh after a 401.
//!
//! azure_core's `BearerTokenAuthorizationPolicy` caches its own token and, on 401, only
//! clears that cache; asking our [`TokenCache`] again would hand back the same rejected
//! token. ARM rejects a token that is still valid by our clock when its own clock runs
//! ahead, when the token was revoked, or after a role change: this policy therefore asks
//! the cache for a *forced* refresh (only the first caller that saw the stale token
//! fetches a new one) and sends the request once more. A second 401 goes to the caller.

use std::sync::Arc;

use azure_core::error::ErrorKind;
use azure_core::http::headers::AUTHORIZATION;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request, StatusCode};

use crate::azure::credential::{CredentialError, TokenCache};

/// Adds `Authorization: Bearer …`; refreshes and resends once on 401.
#[derive(Debug)]
pub(crate) struct AuthPolicy {
    credential: Arc<TokenCache>,
    scope: String,
}

impl AuthPolicy {
    pub(crate) fn new(credential: Arc<TokenCache>, scope: String) -> Self {
        Self { credential, scope }
    }
}

#[async_trait::async_trait]
impl Policy for AuthPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        if request.url().scheme() != "https" {
            return Err(azure_core::Error::with_message(
                ErrorKind::Other,
                "refusing to send an Azure token over plain HTTP",
            ));
        }
        let scopes = [self.scope.as_str()];
        let token = self
            .credential
            .token(&scopes)
            .await
            .map_err(CredentialError::into_azure)?;
        request.insert_header(AUTHORIZATION, format!("Bearer {}", token.token.secret()));
        let response = next[0].send(ctx, request, &next[1..]).await?;
        if response.status() != StatusCode::Unauthorized {
            return Ok(response);
        }
        tracing::debug!("Azure answered 401: refreshing the token once");
        drop(response);
        let refreshed = self
            .credential
            .refresh(&scopes, Some(&token.token))
            .await
            .map_err(CredentialError::into_azure)?;
        request.insert_header(
            AUTHORIZATION,
            format!("Bearer {}", refreshed.token.secret()),
        );
        request.body_mut().reset().await?;
        next[0].send(ctx, request, &next[1..]).await
    }
}
