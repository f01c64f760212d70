//! TLS client settings shared by the PostgreSQL and RabbitMQ connections: rustls with the
//! aws-lc-rs crypto provider (the one the AWS SDK already uses), CA bundles and client
//! certificates read from PEM files, the three ways of checking a server (not at all, the chain
//! only, the chain and the host name), and handshake errors that say which check failed and why.
//!
//! Error messages name files, never their contents.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// How the server's certificate is checked.
#[derive(Clone)]
pub enum Verify {
    /// Encrypt, check nothing (PostgreSQL `sslmode=require` without a root certificate,
    /// RabbitMQ `verify=verify_none`).
    Nothing,
    /// The chain must lead to one of these CAs; the host name is not checked (`verify-ca`).
    Chain(Arc<RootCertStore>),
    /// The chain and the host name (`verify-full`, RabbitMQ `verify_peer`).
    Full(Arc<RootCertStore>),
}

/// A client certificate chain and its private key.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// The crypto provider every landfall TLS connection uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads every certificate of a PEM file into a root store.
pub fn load_roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading the CA certificates in {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading the CA certificates in {}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{} holds no PEM certificate (expected one or more -----BEGIN CERTIFICATE----- blocks)",
        path.display()
    );
    for cert in certs {
        store.add(cert).with_context(|| {
            format!(
                "{} holds a certificate that is not a valid CA certificate",
                path.display()
            )
        })?;
    }
    Ok(store)
}

/// The operating system's trusted CAs.
pub fn system_roots() -> anyhow::Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(found.certs);
    anyhow::ensure!(
        added > 0,
        "no trusted CA certificates found on this system ({} errors reading them); give a CA file instead",
        found.errors.len()
    );
    Ok(store)
}

/// Reads a client certificate chain and its private key (PKCS#8, PKCS#1 or SEC1 PEM).
pub fn load_identity(cert: &Path, key: &Path) -> anyhow::Result<Identity> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading the client certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading the client certificate {}", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "{} holds no PEM certificate",
        cert.display()
    );
    // The parser's errors never quote the key.
    let key = PrivateKeyDer::from_pem_file(key).map_err(|error| {
        anyhow::anyhow!(
            "reading the private key {}: {} (an unencrypted PEM key is expected)",
            key.display(),
            pem_error_kind(&error)
        )
    })?;
    Ok(Identity { chain, key })
}

fn pem_error_kind(error: &rustls_pki_types::pem::Error) -> &'static str {
    use rustls_pki_types::pem::Error;
    match error {
        Error::NoItemsFound => "no private key found",
        Error::Io(_) => "cannot read the file",
        _ => "not a valid PEM private key",
    }
}

/// A rustls client configuration for these checks and this identity.
pub fn client_config(verify: &Verify, identity: Option<Identity>) -> anyhow::Result<ClientConfig> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?;
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        Verify::Nothing => Arc::new(NoVerification(provider)),
        Verify::Chain(roots) => Arc::new(ChainOnly(
            WebPkiServerVerifier::builder_with_provider(roots.clone(), provider)
                .build()
                .context("setting up TLS certificate verification")?,
        )),
        Verify::Full(roots) => WebPkiServerVerifier::builder_with_provider(roots.clone(), provider)
            .build()
            .context("setting up TLS certificate verification")?,
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(identity.chain, identity.key)
            .context("the client certificate does not match its private key, or the key type is not supported")?,
        None => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// Says in words why a TLS handshake failed, when rustls knows. `host` is the name the
/// certificate was checked against; `roots` says where the trusted CAs came from.
pub fn explain_handshake_error(error: &std::io::Error, host: &str, roots: &str) -> Option<String> {
    let error = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(explain_rustls_error(error, host, roots))
}

fn explain_rustls_error(error: &rustls::Error, host: &str, roots: &str) -> String {
    match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => format!(
                "certificate verify failed: unknown issuer (the certificate {host} presented is not signed by a CA in {roots})"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "certificate verify failed: host name mismatch (the server's certificate is not valid for '{host}'; connect with a name the certificate lists)"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("certificate verify failed: the certificate {host} presented has expired")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!(
                    "certificate verify failed: the certificate {host} presented is not valid yet"
                )
            }
            other => format!("certificate verify failed: {other:?}"),
        },
        rustls::Error::AlertReceived(alert) => format!(
            "the server {host} ended the TLS handshake ({alert:?}); it may require a client certificate or refuse the one given"
        ),
        other => format!("TLS handshake with {host} failed: {other}"),
    }
}

/// Encrypts without checking the server (what `sslmode=require` does without a CA).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Checks the chain, not the host name (`sslmode=verify-ca`).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain first, so a name error means the chain was good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
