//! The emulated Microsoft Entra ID: the token endpoint, the metadata MSAL reads first, the
//! App Service managed-identity endpoint, and the table of issued tokens ARM checks.
//!
//! Clients we did not write must be able to sign in, so the shapes follow Entra's: MSAL
//! based SDKs (Python, .NET, the Azure CLI) read instance discovery and the OpenID
//! configuration before posting to the token endpoint; error bodies carry the `AADSTS`
//! codes those libraries branch on. What is deliberately not emulated: tokens are opaque
//! random strings (Azure documents access tokens as opaque to clients, and a fake JWT
//! would invite clients to parse it), and there are no signing keys, refresh tokens,
//! interactive or device-code flows. A token maps to a principal and an expiry on the
//! emulator's virtual clock, so advancing the clock expires it as time would.
//!
//! Secrets and tokens never reach a log: only client ids and outcomes are traced.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use http::{HeaderMap, StatusCode};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::arm_http::Caller;
use crate::clock::Clock;
use crate::reply::Reply;
use crate::world::{PrincipalKind, PrincipalSpec};

/// The resources (audiences) an ARM token can be asked for. Azure CLI's default resource
/// is `https://management.core.windows.net/`; the SDKs ask for
/// `https://management.azure.com/.default`. ARM accepts both.
const ARM_AUDIENCES: [&str; 2] = [
    "https://management.azure.com",
    "https://management.core.windows.net",
];

/// A principal as the token endpoint knows it, with its secret settled.
#[derive(Clone)]
pub struct Principal {
    /// Service principal, user or managed identity.
    pub kind: PrincipalKind,
    /// UPN for users, display name otherwise.
    pub name: String,
    /// Application id (service principals and managed identities).
    pub client_id: Option<String>,
    /// The client secret (service principals only).
    pub client_secret: Option<String>,
    /// The object id.
    pub object_id: String,
    /// Allowed ARM actions, with `*` wildcards.
    pub actions: Vec<String>,
    /// Actions excluded from `actions` (`notActions`), with `*` wildcards.
    pub not_actions: Vec<String>,
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Principal")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("object_id", &self.object_id)
            .field("actions", &self.actions)
            .field("not_actions", &self.not_actions)
            .finish()
    }
}

impl Principal {
    fn from_spec(spec: PrincipalSpec) -> Self {
        let client_secret = match spec.kind {
            PrincipalKind::ServicePrincipal => {
                Some(spec.client_secret.unwrap_or_else(generate_secret))
            }
            PrincipalKind::User | PrincipalKind::ManagedIdentity => spec.client_secret,
        };
        Self {
            kind: spec.kind,
            name: spec.name,
            client_id: spec.client_id,
            client_secret,
            object_id: spec.object_id,
            actions: spec.actions,
            not_actions: spec.not_actions,
        }
    }

    /// How ARM names this principal in `AuthorizationFailed` and JIT in `requestor`: the
    /// UPN of a user, the application id of anything else.
    fn arm_name(&self) -> String {
        match (self.kind, &self.client_id) {
            (PrincipalKind::User, _) | (_, None) => self.name.clone(),
            (_, Some(client_id)) => client_id.clone(),
        }
    }

    fn has_client_id(&self, client_id: &str) -> bool {
        self.client_id
            .as_deref()
            .is_some_and(|known| known.eq_ignore_ascii_case(client_id))
    }

    /// Whether this principal may perform `action` (RBAC actions, `*` wildcards,
    /// case-insensitive as Azure compares them).
    pub fn allows(&self, action: &str) -> bool {
        self.actions
            .iter()
            .any(|pattern| wildcard_matches(pattern, action))
            && !self
                .not_actions
                .iter()
                .any(|pattern| wildcard_matches(pattern, action))
    }
}

/// An access token and when it expires.
#[derive(Clone)]
pub struct IssuedToken {
    /// The bearer token.
    pub access_token: String,
    /// Its expiry on the virtual clock.
    pub expires_on: Timestamp,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("IssuedToken")
            .field("access_token", &"<redacted>")
            .field("expires_on", &self.expires_on)
            .finish()
    }
}

/// Why ARM refuses a bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRejection {
    /// Not a token this emulator issued.
    Unknown,
    /// Issued here, but expired at this (virtual) time.
    Expired {
        /// When it expired.
        expired_on: Timestamp,
    },
}

/// A caller ARM has authenticated.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The caller, as resource providers see it.
    pub caller: Caller,
    /// The principal's index in [`Identity::principals`].
    pub principal: usize,
}

#[derive(Clone, Copy)]
struct TokenRecord {
    principal: usize,
    expires_on: Timestamp,
}

/// The emulated Entra ID tenant.
pub struct Identity {
    tenant_id: String,
    principals: Vec<Principal>,
    tokens: Mutex<HashMap<String, TokenRecord>>,
    token_lifetime: SignedDuration,
    clock: Clock,
    managed_identity_header: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Identity")
            .field("tenant_id", &self.tenant_id)
            .field("principals", &self.principals)
            .field("token_lifetime", &self.token_lifetime)
            .field("tokens", &"<redacted>")
            .field("managed_identity_header", &"<redacted>")
            .finish()
    }
}

/// What the token endpoint found wrong, in Entra's terms.
struct AadError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
}

impl AadError {
    fn new(status: StatusCode, error: &'static str, code: u32, description: String) -> Self {
        Self {
            status,
            error,
            code,
            description,
        }
    }

    fn missing_parameter(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    }
}

impl Identity {
    /// A tenant holding `principals`; service principals without a secret get a generated
    /// one. Tokens live for `token_lifetime` on `clock`.
    pub fn new(
        tenant_id: String,
        principals: Vec<PrincipalSpec>,
        token_lifetime: SignedDuration,
        clock: Clock,
    ) -> Self {
        Self {
            tenant_id,
            principals: principals.into_iter().map(Principal::from_spec).collect(),
            tokens: Mutex::new(HashMap::new()),
            token_lifetime,
            clock,
            managed_identity_header: generate_secret(),
        }
    }

    /// The tenant id.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// Every principal, secrets settled.
    pub fn principals(&self) -> &[Principal] {
        &self.principals
    }

    /// How long a token lives.
    pub fn token_lifetime(&self) -> SignedDuration {
        self.token_lifetime
    }

    /// The value the managed-identity endpoint expects in `x-identity-header`.
    pub fn managed_identity_header(&self) -> &str {
        &self.managed_identity_header
    }

    /// The first principal of `kind` that may do everything (or the first of that kind).
    pub fn preferred_principal(&self, kind: PrincipalKind) -> Option<usize> {
        let of_kind = || {
            self.principals
                .iter()
                .enumerate()
                .filter(move |(_, principal)| principal.kind == kind)
        };
        of_kind()
            .find(|(_, principal)| principal.actions.iter().any(|action| action == "*"))
            .or_else(|| of_kind().next())
            .map(|(index, _)| index)
    }

    /// Issues a token for the principal at `index` (an index into [`Self::principals`]).
    pub fn issue(&self, principal: usize) -> IssuedToken {
        let now = self.clock.now();
        let expires_on = now.saturating_add(self.token_lifetime).unwrap_or(now);
        let access_token = format!(
            "jitemu.{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut tokens = lock(&self.tokens);
        // Keep expired tokens for a day so ARM can still say "expired" rather than "invalid".
        let forget_before = now
            .checked_sub(SignedDuration::from_hours(24))
            .unwrap_or(now);
        tokens.retain(|_, record| record.expires_on > forget_before);
        tokens.insert(
            access_token.clone(),
            TokenRecord {
                principal,
                expires_on,
            },
        );
        IssuedToken {
            access_token,
            expires_on,
        }
    }

    /// Checks a bearer token at the current virtual time.
    pub fn authenticate(&self, access_token: &str) -> Result<Authenticated, TokenRejection> {
        let record = lock(&self.tokens)
            .get(access_token)
            .copied()
            .ok_or(TokenRejection::Unknown)?;
        if self.clock.now() >= record.expires_on {
            return Err(TokenRejection::Expired {
                expired_on: record.expires_on,
            });
        }
        let principal = self
            .principals
            .get(record.principal)
            .ok_or(TokenRejection::Unknown)?;
        Ok(Authenticated {
            caller: Caller {
                name: principal.arm_name(),
                object_id: principal.object_id.clone(),
                tenant_id: self.tenant_id.clone(),
            },
            principal: record.principal,
        })
    }

    /// `POST /{tenant}/oauth2/v2.0/token` (`v2 == true`) or the v1 `/{tenant}/oauth2/token`.
    pub fn token_endpoint(
        &self,
        tenant: &str,
        v2: bool,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Reply {
        let correlation_id = header_text(headers, "client-request-id")
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        match self.grant(tenant, v2, headers, body) {
            Ok((principal, resource)) => {
                let token = self.issue(principal);
                let expires_in = self.token_lifetime.as_secs().max(0);
                tracing::debug!(
                    client_id = ?self.principals.get(principal).and_then(|granted| granted.client_id.as_deref()),
                    "issued a token"
                );
                let body = if v2 {
                    json!({
                        "token_type": "Bearer",
                        "expires_in": expires_in,
                        "ext_expires_in": expires_in,
                        "access_token": token.access_token,
                    })
                } else {
                    let now = self.clock.now().as_second();
                    json!({
                        "token_type": "Bearer",
                        "expires_in": expires_in.to_string(),
                        "ext_expires_in": expires_in.to_string(),
                        "expires_on": token.expires_on.as_second().to_string(),
                        "not_before": now.to_string(),
                        "resource": resource,
                        "access_token": token.access_token,
                    })
                };
                Reply::json(StatusCode::OK, &body)
            }
            Err(error) => {
                tracing::debug!(code = error.code, "token request refused");
                self.aad_error_reply(&error, &correlation_id)
            }
        }
    }

    /// Validates a client-credentials grant; returns the principal and the resource asked for.
    fn grant(
        &self,
        tenant: &str,
        v2: bool,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(usize, String), AadError> {
        if !tenant.eq_ignore_ascii_case(&self.tenant_id) {
            return Err(tenant_not_found(tenant));
        }
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|_| {
            AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.".to_owned(),
            )
        })?;
        let field = |name: &str| {
            form.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
                .filter(|value| !value.is_empty())
        };
        let grant_type =
            field("grant_type").ok_or_else(|| AadError::missing_parameter("grant_type"))?;
        if grant_type != "client_credentials" {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{grant_type}'."),
            ));
        }
        let basic = basic_credentials(headers);
        let client_id = field("client_id")
            .map(str::to_owned)
            .or_else(|| basic.as_ref().map(|(id, _)| id.clone()))
            .ok_or_else(|| AadError::missing_parameter("client_id"))?;
        let (index, principal) = self
            .principals
            .iter()
            .enumerate()
            .find(|(_, principal)| {
                principal.has_client_id(&client_id) && principal.kind != PrincipalKind::User
            })
            .ok_or_else(|| {
                AadError::new(
                    StatusCode::BAD_REQUEST,
                    "unauthorized_client",
                    700016,
                    format!(
                        "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                        self.tenant_id
                    ),
                )
            })?;
        let secret = field("client_secret")
            .map(str::to_owned)
            .or_else(|| basic.map(|(_, secret)| secret));
        match (secret, field("client_assertion")) {
            (Some(secret), _) => {
                let valid = principal
                    .client_secret
                    .as_deref()
                    .is_some_and(|known| constant_time_equal(known.as_bytes(), secret.as_bytes()));
                if !valid {
                    return Err(AadError::new(
                        StatusCode::UNAUTHORIZED,
                        "invalid_client",
                        7000215,
                        format!(
                            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                        ),
                    ));
                }
            }
            (None, Some(assertion)) => {
                let assertion_type = field("client_assertion_type").unwrap_or_default();
                if assertion_type != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
                    return Err(AadError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        50027,
                        "Invalid client_assertion_type: expected 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.".to_owned(),
                    ));
                }
                if !looks_like_jwt(assertion) {
                    return Err(AadError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        50027,
                        "JWT token is invalid or malformed.".to_owned(),
                    ));
                }
            }
            (None, None) => {
                return Err(AadError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000218,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".to_owned(),
                ));
            }
        }
        let resource = if v2 {
            let scope = field("scope").ok_or_else(|| AadError::missing_parameter("scope"))?;
            arm_resource_of_scope(scope).ok_or_else(|| invalid_scope(scope))?
        } else {
            let resource =
                field("resource").ok_or_else(|| AadError::missing_parameter("resource"))?;
            if !is_arm_audience(resource) {
                return Err(resource_not_found(resource, &self.tenant_id));
            }
            resource.to_owned()
        };
        Ok((index, resource))
    }

    fn aad_error_reply(&self, error: &AadError, correlation_id: &str) -> Reply {
        let now = self.clock.now();
        let timestamp = now.strftime("%Y-%m-%d %H:%M:%SZ").to_string();
        let trace_id = uuid::Uuid::new_v4().to_string();
        let body = json!({
            "error": error.error,
            "error_description": format!(
                "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
                error.code, error.description
            ),
            "error_codes": [error.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", error.code),
        });
        Reply::json(error.status, &body)
    }

    /// `GET /common/discovery/instance`: MSAL's instance discovery, naming this host as the
    /// only alias of itself.
    pub fn instance_discovery(&self, base_url: &str, query: &[(String, String)]) -> Reply {
        let host = base_url
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_owned();
        let tenant = query
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case("authorization_endpoint"))
            .and_then(|(_, endpoint)| {
                endpoint
                    .strip_prefix(base_url)
                    .and_then(|rest| rest.trim_start_matches('/').split('/').next())
                    .map(str::to_owned)
            })
            .filter(|tenant| !tenant.is_empty())
            .unwrap_or_else(|| self.tenant_id.clone());
        let localhost_alias = host.replacen("127.0.0.1", "localhost", 1);
        Reply::json(
            StatusCode::OK,
            &json!({
                "tenant_discovery_endpoint": format!("{base_url}/{tenant}/v2.0/.well-known/openid-configuration"),
                "api-version": "1.1",
                "metadata": [{
                    "preferred_network": host,
                    "preferred_cache": host,
                    "aliases": [host, localhost_alias],
                }],
            }),
        )
    }

    /// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
    pub fn openid_configuration(&self, base_url: &str, tenant: &str) -> Reply {
        let known = tenant.eq_ignore_ascii_case(&self.tenant_id)
            || ["common", "organizations"]
                .iter()
                .any(|alias| tenant.eq_ignore_ascii_case(alias));
        if !known {
            return self
                .aad_error_reply(&tenant_not_found(tenant), &uuid::Uuid::new_v4().to_string());
        }
        let issuer_tenant = if tenant.eq_ignore_ascii_case(&self.tenant_id) {
            self.tenant_id.as_str()
        } else {
            "{tenantid}"
        };
        let authority = format!("{base_url}/{tenant}");
        Reply::json(
            StatusCode::OK,
            &json!({
                "token_endpoint": format!("{authority}/oauth2/v2.0/token"),
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                "jwks_uri": format!("{authority}/discovery/v2.0/keys"),
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": format!("{base_url}/{issuer_tenant}/v2.0"),
                "request_uri_parameter_supported": false,
                "userinfo_endpoint": format!("{base_url}/oidc/userinfo"),
                "authorization_endpoint": format!("{authority}/oauth2/v2.0/authorize"),
                "device_authorization_endpoint": format!("{authority}/oauth2/v2.0/devicecode"),
                "http_logout_supported": true,
                "frontchannel_logout_supported": true,
                "end_session_endpoint": format!("{authority}/oauth2/v2.0/logout"),
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "oid", "tid", "appid", "upn"],
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
                "rbac_url": "https://pas.windows.net",
            }),
        )
    }

    /// `GET /{tenant}/discovery/v2.0/keys`: there are no signing keys (tokens are opaque).
    pub fn signing_keys(&self) -> Reply {
        Reply::json(StatusCode::OK, &json!({ "keys": [] }))
    }

    /// `GET /msi/token`: the App Service managed-identity endpoint (`IDENTITY_ENDPOINT` +
    /// `IDENTITY_HEADER`), api-version 2019-08-01.
    pub fn managed_identity(&self, headers: &HeaderMap, query: &[(String, String)]) -> Reply {
        let parameter = |name: &str| {
            query
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_str())
                .filter(|value| !value.is_empty())
        };
        let refuse = |status: StatusCode, message: &str| {
            Reply::json(
                status,
                &json!({
                    "statusCode": status.as_u16(),
                    "message": message,
                    "correlationId": uuid::Uuid::new_v4().to_string(),
                }),
            )
        };
        let header_ok = header_text(headers, "x-identity-header").is_some_and(|value| {
            constant_time_equal(value.as_bytes(), self.managed_identity_header.as_bytes())
        });
        if !header_ok {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "The request is missing the X-IDENTITY-HEADER header or its value is wrong.",
            );
        }
        if parameter("api-version") != Some("2019-08-01") {
            return refuse(
                StatusCode::BAD_REQUEST,
                "The api-version query parameter must be 2019-08-01.",
            );
        }
        let Some(resource) = parameter("resource") else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "The resource query parameter is required.",
            );
        };
        if !is_arm_audience(resource) {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("The resource '{resource}' is not known to this tenant."),
            );
        }
        let requested_id = parameter("client_id").or_else(|| parameter("principal_id"));
        let identity = self.principals.iter().enumerate().find(|(_, principal)| {
            principal.kind == PrincipalKind::ManagedIdentity
                && requested_id.is_none_or(|id| {
                    principal.has_client_id(id) || principal.object_id.eq_ignore_ascii_case(id)
                })
        });
        let Some((index, principal)) = identity else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "No Managed Identity found for specified ClientId/ResourceId/PrincipalId.",
            );
        };
        let token = self.issue(index);
        Reply::json(
            StatusCode::OK,
            &json!({
                "access_token": token.access_token,
                "expires_on": token.expires_on.as_second().to_string(),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": principal.client_id,
            }),
        )
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// A random secret: 256 bits, hex-encoded.
pub(crate) fn generate_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// `Authorization: Basic base64(urlencode(client_id):urlencode(client_secret))`
/// (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = header_text(headers, "authorization")?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |text: &str| -> Option<String> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(&format!("value={text}")).ok()?;
        pairs.into_iter().next().map(|(_, value)| value)
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// Three dot-separated base64url segments, the first two decoding to JSON objects.
fn looks_like_jwt(assertion: &str) -> bool {
    let segments: Vec<&str> = assertion.split('.').collect();
    let [header, payload, signature] = segments.as_slice() else {
        return false;
    };
    let decodes_to_object = |segment: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(segment.trim_end_matches('='))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .is_some_and(|value| value.is_object())
    };
    decodes_to_object(header) && decodes_to_object(payload) && !signature.is_empty()
}

/// Compares secrets without leaking, through timing, how much of a guess was right.
fn constant_time_equal(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

/// Whether `resource` names ARM (with or without a trailing slash).
pub(crate) fn is_arm_audience(resource: &str) -> bool {
    let trimmed = resource.trim_end_matches('/');
    ARM_AUDIENCES
        .iter()
        .any(|audience| audience.eq_ignore_ascii_case(trimmed))
}

/// The ARM resource of a v2 scope list (`https://management.azure.com/.default`, possibly
/// with the OpenID scopes MSAL adds), or `None` when no scope names ARM or another
/// resource is asked for as well.
pub(crate) fn arm_resource_of_scope(scope: &str) -> Option<String> {
    let mut resource = None;
    for item in scope.split_whitespace() {
        if ["openid", "profile", "offline_access"].contains(&item) {
            continue;
        }
        let audience = item.strip_suffix(".default")?;
        if !is_arm_audience(audience) {
            return None;
        }
        resource = Some(audience.to_owned());
    }
    resource
}

fn tenant_not_found(tenant: &str) -> AadError {
    AadError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        90002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
        ),
    )
}

fn invalid_scope(scope: &str) -> AadError {
    AadError::new(
        StatusCode::BAD_REQUEST,
        "invalid_scope",
        1002012,
        format!(
            "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
        ),
    )
}

fn resource_not_found(resource: &str, tenant: &str) -> AadError {
    AadError::new(
        StatusCode::BAD_REQUEST,
        "invalid_resource",
        500011,
        format!(
            "The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
        ),
    )
}

/// Azure RBAC wildcard matching: `*` matches any run of characters; case-insensitive.
pub(crate) fn wildcard_matches(pattern: &str, text: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let text = text.to_ascii_lowercase();
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let remaining: Vec<&str> = parts.collect();
    let Some((last, middle)) = remaining.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(position) => rest = &rest[position + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_azure_rbac() {
        assert!(wildcard_matches(
            "*",
            "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action"
        ));
        assert!(wildcard_matches(
            "*/read",
            "Microsoft.Compute/virtualMachines/read"
        ));
        assert!(!wildcard_matches(
            "*/read",
            "Microsoft.Compute/virtualMachines/write"
        ));
        assert!(wildcard_matches(
            "microsoft.security/*",
            "Microsoft.Security/locations/read"
        ));
        assert!(wildcard_matches(
            "Microsoft.Security/locations/jitNetworkAccessPolicies/*/read",
            "Microsoft.Security/locations/jitNetworkAccessPolicies/default/read"
        ));
        assert!(!wildcard_matches(
            "Microsoft.Network/*",
            "Microsoft.Compute/virtualMachines/read"
        ));
        assert!(wildcard_matches(
            "Microsoft.Compute/virtualMachines/read",
            "microsoft.compute/virtualmachines/READ"
        ));
        assert!(!wildcard_matches(
            "Microsoft.Compute/virtualMachines/read",
            "Microsoft.Compute/virtualMachines/read/x"
        ));
        assert!(wildcard_matches("a*b*c", "abc"));
        assert!(!wildcard_matches("a*bc*c", "abc"));
    }

    #[test]
    fn scopes_must_name_arm_with_default_suffix() {
        assert_eq!(
            arm_resource_of_scope("https://management.azure.com/.default").as_deref(),
            Some("https://management.azure.com/")
        );
        assert!(arm_resource_of_scope("https://management.core.windows.net//.default").is_some());
        assert!(
            arm_resource_of_scope(
                "https://management.azure.com/.default offline_access openid profile"
            )
            .is_some()
        );
        assert!(arm_resource_of_scope("https://graph.microsoft.com/.default").is_none());
        assert!(arm_resource_of_scope("https://management.azure.com/user_impersonation").is_none());
        assert!(arm_resource_of_scope("openid").is_none());
    }

    #[test]
    fn jwt_shape_is_checked_without_signature_verification() {
        let segment = |value: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
        };
        let assertion = format!(
            "{}.{}.c2lnbmF0dXJl",
            segment(json!({"alg": "RS256"})),
            segment(json!({"sub": "x"}))
        );
        assert!(looks_like_jwt(&assertion));
        assert!(!looks_like_jwt("not-a-jwt"));
        assert!(!looks_like_jwt("a.b.c"));
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(constant_time_equal(b"secret", b"secret"));
        assert!(!constant_time_equal(b"secret", b"secreT"));
        assert!(!constant_time_equal(b"secret", b"secret1"));
    }
}
