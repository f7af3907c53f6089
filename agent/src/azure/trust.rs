//! Which server certificates `jit` trusts: the operating system's verifier, plus the
//! roots of `JIT_CA_FILE` checked in-process.
//!
//! The obvious way, handing the extra roots to the platform verifier, works on Linux and
//! macOS but not everywhere on Windows: the verifier builds a private CryptoAPI chain
//! engine for them, which Wine refuses ("Invalid parameter"), and a root added to the
//! Windows store instead is still subject to the revocation check that cannot complete
//! for a private CA (Wine reports `CRYPT_E_REVOCATION_OFFLINE`). So the two sources are
//! kept apart and tried in turn:
//!
//! 1. the extra roots, with rustls' own WebPKI verifier (no network, no revocation: a
//!    private CA publishes no revocation lists);
//! 2. when the chain does not lead to one of them, the platform verifier
//!    (`rustls-platform-verifier`: CryptoAPI on Windows, Security.framework on macOS, the
//!    system bundle with WebPKI on Linux), exactly as without a CA file.
//!
//! A certificate that chains to an extra root but is otherwise wrong (expired, another
//! name) is refused with that reason; it is not handed to the platform for a second
//! opinion. What this gives up: a corporate root in `JIT_CA_FILE` is not checked for
//! revocation (one installed in the OS store still is, by the OS).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The crypto provider of every TLS connection `jit` makes (one provider for all, so
/// the binaries carry one implementation).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The platform verifier could not be set up.
    #[error("the system's certificate verifier is unavailable: {0}")]
    Platform(#[source] rustls::Error),
    /// An extra root is not a usable trust anchor.
    #[error("a certificate of the CA file cannot serve as a root: {0}")]
    ExtraRoot(#[source] rustls::Error),
    /// The WebPKI verifier refused the extra roots.
    #[error("the CA file's certificates cannot be used: {0}")]
    Verifier(#[source] rustls::client::VerifierBuilderError),
    /// The provider refused TLS 1.2 and 1.3.
    #[error("no TLS version is available: {0}")]
    Versions(#[source] rustls::Error),
}

/// The client TLS configuration: platform trust plus `extra_roots`, offering HTTP/2 and
/// HTTP/1.1 through ALPN.
pub fn client_config(
    extra_roots: Vec<CertificateDer<'static>>,
) -> Result<rustls::ClientConfig, TrustError> {
    let provider = crypto_provider();
    let verifier = server_verifier(&provider, extra_roots)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TrustError::Versions)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The platform verifier alone, or the extra roots first and then the platform.
fn server_verifier(
    provider: &Arc<CryptoProvider>,
    extra_roots: Vec<CertificateDer<'static>>,
) -> Result<Arc<dyn ServerCertVerifier>, TrustError> {
    let platform =
        rustls_platform_verifier::Verifier::new(provider.clone()).map_err(TrustError::Platform)?;
    if extra_roots.is_empty() {
        return Ok(Arc::new(platform));
    }
    let mut store = RootCertStore::empty();
    for root in extra_roots {
        store.add(root).map_err(TrustError::ExtraRoot)?;
    }
    let extra = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .map_err(TrustError::Verifier)?;
    Ok(Arc::new(ExtraRootsThenPlatform {
        extra,
        platform: Arc::new(platform),
    }))
}

/// Accepts a chain that leads to an extra root (WebPKI), else asks the platform.
#[derive(Debug)]
struct ExtraRootsThenPlatform {
    extra: Arc<WebPkiServerVerifier>,
    platform: Arc<dyn ServerCertVerifier>,
}

impl ServerCertVerifier for ExtraRootsThenPlatform {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.extra.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => self
                .platform
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now),
            decided => decided,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.extra
            .verify_tls12_signature(message, certificate, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.extra
            .verify_tls13_signature(message, certificate, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.extra.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    use super::*;

    /// A private CA and a certificate it issued for `host`.
    fn private_ca_and_leaf(host: &str) -> (CertificateDer<'static>, CertificateDer<'static>) {
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("the CA signs itself");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().expect("a leaf key");
        let leaf = CertificateParams::new(vec![host.to_owned()])
            .expect("leaf params")
            .signed_by(&leaf_key, &issuer)
            .expect("the CA signs the leaf");
        (ca.der().clone(), leaf.der().clone())
    }

    fn verify(
        verifier: &Arc<dyn ServerCertVerifier>,
        leaf: &CertificateDer<'_>,
        host: &str,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name = ServerName::try_from(host.to_owned()).expect("a DNS name");
        verifier.verify_server_cert(leaf, &[], &name, &[], UnixTime::now())
    }

    #[test]
    fn a_certificate_from_an_extra_root_is_trusted_for_its_name_only() {
        let (root, leaf) = private_ca_and_leaf("emulator.test");
        let verifier =
            server_verifier(&crypto_provider(), vec![root]).expect("the verifier builds");
        assert!(verify(&verifier, &leaf, "emulator.test").is_ok());
        // The extra root decides this one (another name): not handed to the platform.
        let other_name = verify(&verifier, &leaf, "elsewhere.test");
        assert!(
            matches!(
                other_name,
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. }
                ))
            ),
            "{other_name:?}"
        );
    }

    #[test]
    fn a_chain_to_another_root_is_left_to_the_platform_which_refuses_it() {
        let (root, _) = private_ca_and_leaf("emulator.test");
        let (_, stranger) = private_ca_and_leaf("emulator.test");
        let verifier =
            server_verifier(&crypto_provider(), vec![root]).expect("the verifier builds");
        assert!(verify(&verifier, &stranger, "emulator.test").is_err());
        let platform_only =
            server_verifier(&crypto_provider(), Vec::new()).expect("the platform verifier");
        let (_, leaf) = private_ca_and_leaf("emulator.test");
        assert!(
            verify(&platform_only, &leaf, "emulator.test").is_err(),
            "without the CA file a private CA is not trusted"
        );
    }
}
