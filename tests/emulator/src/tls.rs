//! The emulator's own certificate authority and the TLS configuration it serves with.
//!
//! Azure SDKs refuse to send a bearer token over plain HTTP (`azure_identity` rejects an
//! `http://` authority; azure_core's bearer policy refuses non-TLS endpoints), so the
//! emulator must speak HTTPS with a certificate the client can be told to trust. Each
//! emulator generates a fresh CA at start and a leaf certificate for `127.0.0.1`, `::1`
//! and `localhost` signed by it; the CA certificate is written to the state dir
//! (`ca_cert` in the binary contract) for clients to add to their trust store, the way a
//! user behind a TLS-inspecting proxy adds the proxy's CA. Nothing is reused between runs,
//! so no test can depend on another's certificate.
//!
//! The certificates carry what strict verifiers insist on (basic constraints and key usage
//! on the CA, subject and authority key identifiers, `serverAuth` on the leaf, an IP
//! subject alternative name), so OpenSSL (Python, the Azure CLI), rustls and the platform
//! verifiers all accept them. The leaf is valid for a year, under the limits some platform
//! verifiers put on server certificates.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why the TLS material could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Generating a key or signing a certificate failed.
    #[error("could not generate the emulator's certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the generated certificate or key.
    #[error("could not build the TLS server configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A freshly generated CA and the server configuration presenting a leaf it signed.
#[derive(Clone)]
pub struct TlsMaterial {
    /// The CA certificate in PEM, for clients to trust.
    pub ca_pem: String,
    /// The rustls server configuration (leaf + chain, ALPN `h2` and `http/1.1`).
    pub server_config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The server configuration holds the leaf's private key: never print it.
        formatter
            .debug_struct("TlsMaterial")
            .field("ca_pem", &self.ca_pem)
            .field("server_config", &"<redacted>")
            .finish()
    }
}

/// Generates a CA and a loopback leaf certificate, and builds the server configuration.
pub fn generate() -> Result<TlsMaterial, TlsError> {
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = distinguished_name("jit-emulator local CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let yesterday = today.yesterday().unwrap_or(today);
    set_validity(
        &mut ca_params,
        yesterday,
        today.saturating_add(jiff::Span::new().years(10)),
    );
    let ca_certificate = ca_params.self_signed(&ca_key)?;
    let ca_pem = ca_certificate.pem();
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate()?;
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_owned()])?;
    leaf_params.subject_alt_names.extend([
        SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
        SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()),
    ]);
    leaf_params.distinguished_name = distinguished_name("localhost");
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.use_authority_key_identifier_extension = true;
    set_validity(
        &mut leaf_params,
        yesterday,
        today.saturating_add(jiff::Span::new().days(365)),
    );
    let leaf_certificate = leaf_params.signed_by(&leaf_key, &issuer)?;

    let chain: Vec<CertificateDer<'static>> =
        vec![leaf_certificate.der().clone(), ca_certificate.der().clone()];
    let private_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)?;
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        ca_pem,
        server_config: Arc::new(server_config),
    })
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "jit-emulator");
    name
}

/// Makes a certificate valid from the start of `from` to the start of `until` (UTC).
fn set_validity(params: &mut CertificateParams, from: jiff::civil::Date, until: jiff::civil::Date) {
    let to_certificate_time = |date: jiff::civil::Date| {
        rcgen::date_time_ymd(
            i32::from(date.year()),
            u8::try_from(date.month()).unwrap_or(1),
            u8::try_from(date.day()).unwrap_or(1),
        )
    };
    params.not_before = to_certificate_time(from);
    params.not_after = to_certificate_time(until);
}
