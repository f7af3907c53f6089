//! The one HTTP client every Azure call goes through.
//!
//! Users sit behind TLS-inspecting proxies with a corporate root CA, on VPNs with system
//! proxy settings, or point `jit` at the local emulator with its own CA. All of that is a
//! property of the *connection*, so it lives in a single pooled `reqwest::Client`:
//!
//! - rustls (with *ring*) and the platform verifier (OS trust store) **plus** extra CA
//!   certificates from PEM files (`JIT_CA_FILE`): the extra roots are added, never
//!   substituted, so a corporate CA does not break public endpoints (how each is checked
//!   on each OS: [`super::trust`]);
//! - the system proxy (environment variables, and the registry / SystemConfiguration on
//!   Windows and macOS through reqwest's `system-proxy` feature);
//! - `TCP_NODELAY` (small ARM requests otherwise stall on Nagle + delayed ACK), connect
//!   and read timeouts, no redirects (ARM does not redirect, and a redirect must never
//!   carry a bearer token elsewhere), and the user agent `jit/<version>`.
//!
//! The same client is handed to azure_core as its [`Transport`], both for the ARM
//! pipeline and for azure_identity credentials, so a custom CA applies to token requests
//! as well. What it gives up: per-request TLS settings; everything shares one trust store.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use azure_core::http::Transport;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use super::trust::{self, TrustError};

/// The user agent every request carries unless the caller overrides it.
pub const DEFAULT_USER_AGENT: &str = concat!("jit/", env!("CARGO_PKG_VERSION"));

/// How the shared HTTP client is built.
#[derive(Clone, Debug)]
pub struct TransportOptions {
    /// PEM files with extra trusted root certificates (each may hold several).
    pub extra_ca_files: Vec<PathBuf>,
    /// Time allowed for TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// Time allowed between two reads of a response. ARM gives a resource provider 60 s
    /// to answer, so this stays above that.
    pub read_timeout: Duration,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Default for TransportOptions {
    fn default() -> Self {
        Self {
            extra_ca_files: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(90),
            user_agent: DEFAULT_USER_AGENT.to_owned(),
        }
    }
}

/// The HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A CA file could not be read.
    #[error("cannot read the CA certificate file {path}: {source}")]
    ReadCaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A CA file was read but holds no usable PEM certificate.
    #[error(
        "the CA certificate file {path} holds no PEM certificate (expected '-----BEGIN CERTIFICATE-----' blocks)"
    )]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A CA file holds a malformed certificate.
    #[error("the CA certificate file {path} holds an invalid certificate: {source}")]
    InvalidCertificate {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: rustls::pki_types::pem::Error,
    },
    /// The TLS settings could not be built from the system's verifier and the CA files.
    #[error("cannot set up HTTPS: {0} (check JIT_CA_FILE)")]
    Tls(#[source] TrustError),
    /// reqwest refused the configuration (for example: no trusted roots at all).
    #[error(
        "cannot set up HTTPS: {0} (install the system CA certificates, or name a PEM file in JIT_CA_FILE)"
    )]
    Build(#[source] reqwest::Error),
}

/// The shared, pooled HTTP client (cheap to clone).
#[derive(Clone, Debug)]
pub struct HttpTransport {
    client: reqwest::Client,
    options: TransportOptions,
}

impl HttpTransport {
    /// Builds the client: platform roots plus `options.extra_ca_files`, system proxy,
    /// `TCP_NODELAY`, timeouts, no redirects.
    pub fn new(options: &TransportOptions) -> Result<Self, TransportError> {
        Self::build(options, true)
    }

    /// The same settings without any proxy: for link-local endpoints such as IMDS
    /// (`169.254.169.254`), which a proxy cannot reach.
    pub fn without_proxy(&self) -> Result<Self, TransportError> {
        Self::build(&self.options, false)
    }

    fn build(options: &TransportOptions, use_proxy: bool) -> Result<Self, TransportError> {
        let mut extra_roots = Vec::new();
        for path in &options.extra_ca_files {
            extra_roots.extend(read_pem_certificates(path)?);
        }
        let tls = trust::client_config(extra_roots).map_err(TransportError::Tls)?;
        let mut builder = reqwest::Client::builder()
            .user_agent(options.user_agent.clone())
            .tcp_nodelay(true)
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .tls_backend_preconfigured(tls);
        if !use_proxy {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(TransportError::Build)?;
        Ok(Self {
            client,
            options: options.clone(),
        })
    }

    /// The underlying reqwest client, for callers that need plain HTTPS with the same
    /// trust store and proxy (for example the "what is my IP" lookup).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The `User-Agent` this client sends.
    pub fn user_agent(&self) -> &str {
        &self.options.user_agent
    }

    /// The client as an azure_core transport, for pipelines and azure_identity credentials.
    pub fn azure_transport(&self) -> Transport {
        Transport::new(Arc::new(self.client.clone()))
    }
}

fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let pem = std::fs::read(path).map_err(|source| TransportError::ReadCaFile {
        path: path.to_owned(),
        source,
    })?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TransportError::InvalidCertificate {
            path: path.to_owned(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(TransportError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}
