//! The client's handshake and how it decides to trust the server.
//!
//! With a CA file, standard webpki verification against that CA only.
//! Otherwise the system roots first; a certificate that no root vouches for
//! (self-signed, unknown issuer) is let through the handshake by
//! [`FirstUseVerifier`], which remembers it, and [`connect`] then asks the
//! known-hosts file (and maybe the user) before returning the stream.
//! Nothing has been sent by then: our server speaks first. The handshake
//! signatures are verified on every path, so trusting a fingerprint means
//! the peer holds that certificate's key.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::identity::read_certificates;
use super::{ClientTrust, Fingerprint, TlsError, bare_host, host_port, known_hosts, provider};

/// Runs the TLS handshake as a client over `tcp` to `host` (name or
/// address, an IPv6 address with or without brackets) at `port`, within
/// `trust.handshake_timeout`, and decides whether to trust the server (see
/// [`ClientTrust`]). `trust.ask` runs on the blocking pool.
pub async fn connect(
    tcp: TcpStream,
    host: &str,
    port: u16,
    trust: &ClientTrust,
) -> Result<TlsStream<TcpStream>, TlsError> {
    let address = host_port(host, port);
    let server_name = ServerName::try_from(bare_host(host))
        .map_err(|_| TlsError::InvalidHost {
            host: host.to_owned(),
        })?
        .to_owned();
    let provider = provider();
    let (verifier, first_use): (Arc<dyn ServerCertVerifier>, _) = match &trust.ca_file {
        Some(ca_file) => (ca_verifier(ca_file, &provider)?, None),
        None => {
            let first_use = Arc::new(FirstUseVerifier::new(&provider));
            (first_use.clone(), Some(first_use))
        }
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Config(error.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // A resumed session skips certificate verification, which would leave
    // the first-use verifier nothing to decide on. (Each connection has its
    // own config anyway.)
    config.resumption = rustls::client::Resumption::disabled();
    let connector = TlsConnector::from(Arc::new(config));

    let handshake = connector.connect(server_name, tcp);
    let stream = match tokio::time::timeout(trust.handshake_timeout, handshake).await {
        Err(_) => {
            return Err(TlsError::HandshakeTimeout {
                address,
                timeout: trust.handshake_timeout,
            });
        }
        Ok(Err(error)) => return Err(handshake_error(error, address, trust)),
        Ok(Ok(stream)) => stream,
    };

    let Some(first_use) = first_use else {
        return Ok(stream);
    };
    match first_use.seen() {
        Seen::Trusted => Ok(stream),
        Seen::Unknown(fingerprint) => {
            let known_hosts = trust.known_hosts.clone();
            let accept_new = trust.accept_new;
            let ask = trust.ask.clone();
            let decided = tokio::task::spawn_blocking(move || {
                known_hosts::decide(
                    &known_hosts,
                    &address,
                    &fingerprint,
                    accept_new,
                    ask.as_deref(),
                )
            })
            .await
            .map_err(|error| TlsError::Other(format!("deciding whether to trust: {error}")))?;
            decided.map(|()| stream)
        }
        Seen::Nothing => Err(TlsError::Other(format!(
            "the TLS handshake with {address} finished without a certificate to verify"
        ))),
    }
}

/// The verifier of `--ca`: that CA file only, standard webpki verification;
/// a server certificate that is itself in the file is pinned (see
/// [`CaVerifier`]).
fn ca_verifier(
    ca_file: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    let certificates = read_certificates(ca_file)?;
    let pinned = certificates.clone();
    let mut roots = RootCertStore::empty();
    let (_, invalid) = roots.add_parsable_certificates(certificates);
    let bad_ca = |reason: String| TlsError::BadCa {
        path: ca_file.to_owned(),
        reason,
    };
    if roots.is_empty() {
        return Err(bad_ca(format!(
            "{invalid} certificate(s) could not be parsed"
        )));
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|error| bad_ca(error.to_string()))?;
    Ok(Arc::new(CaVerifier { webpki, pinned }))
}

/// Verifies against the CA file, and accepts a server certificate that is
/// byte for byte one of the file's: the user gave that very certificate,
/// which pins it as a known-hosts fingerprint does (webpki alone refuses a
/// CA certificate as a server's own, and `openssl req -x509` marks every
/// certificate it makes as a CA). A pinned certificate must still name the
/// host connected to, if it names any hosts (one made with only a common
/// name names none: the pin alone vouches for it). Handshake signatures are
/// always verified, so a pinned certificate is trusted only from the
/// holder of its key.
#[derive(Debug)]
struct CaVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for CaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|pinned| pinned.as_ref() == end_entity.as_ref())
        {
            let parsed = ParsedCertificate::try_from(end_entity)?;
            return match rustls::client::verify_server_name(&parsed, server_name) {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForNameContext { presented, .. },
                )) if presented.is_empty() => Ok(ServerCertVerified::assertion()),
                named => named.map(|()| ServerCertVerified::assertion()),
            };
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The system's trusted roots, read once per process. An empty or
/// unreadable store is no error: every server is then trusted on first use.
fn system_roots() -> Option<Arc<RootCertStore>> {
    static ROOTS: OnceLock<Option<Arc<RootCertStore>>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            if !found.errors.is_empty() {
                tracing::debug!(errors = ?found.errors, "some system root certificates could not be read");
            }
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(found.certs);
            (!roots.is_empty()).then(|| Arc::new(roots))
        })
        .clone()
}

/// What the first-use verifier saw of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Nothing yet.
    Nothing,
    /// A chain to a system root, valid for the name.
    Trusted,
    /// A certificate no root vouches for: the known-hosts file decides.
    Unknown(Fingerprint),
}

/// Verifies against the system roots, and lets a certificate of an unknown
/// issuer through while remembering it, for [`connect`] to decide on after
/// the handshake. Any other failure (expired, wrong name under a known
/// root, malformed) fails the handshake. Handshake signatures are always
/// verified. One per connection.
#[derive(Debug)]
struct FirstUseVerifier {
    /// `None` when the system has no roots.
    roots: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
    seen: Mutex<Seen>,
}

impl FirstUseVerifier {
    fn new(provider: &Arc<CryptoProvider>) -> FirstUseVerifier {
        let roots = system_roots().and_then(|roots| {
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .ok()
        });
        FirstUseVerifier {
            roots,
            algorithms: provider.signature_verification_algorithms,
            seen: Mutex::new(Seen::Nothing),
        }
    }

    fn seen(&self) -> Seen {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remember(&self, seen: Seen) {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = seen;
    }
}

impl ServerCertVerifier for FirstUseVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            match roots.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Ok(verified) => {
                    self.remember(Seen::Trusted);
                    return Ok(verified);
                }
                Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {}
                Err(error) => return Err(error),
            }
        }
        self.remember(Seen::Unknown(Fingerprint::of(end_entity)));
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What a failed handshake means, for the user.
fn handshake_error(error: io::Error, address: String, trust: &ClientTrust) -> TlsError {
    let tls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    if let Some(tls_error) = tls_error {
        return match tls_error {
            // The first bytes are not a TLS record: a plain-TCP server's
            // token, most likely.
            rustls::Error::InvalidMessage(invalid) => TlsError::NotTls {
                address,
                detail: match invalid {
                    rustls::InvalidMessage::InvalidContentType
                    | rustls::InvalidMessage::UnknownProtocolVersion
                    | rustls::InvalidMessage::MessageTooLarge => {
                        "its first bytes are not a TLS record".to_owned()
                    }
                    _ => tls_error.to_string(),
                },
            },
            rustls::Error::InvalidCertificate(reason) => TlsError::BadCertificate {
                address,
                reason: certificate_reason(reason, trust.ca_file.as_deref()),
            },
            _ => TlsError::Handshake {
                address,
                reason: tls_error.to_string(),
            },
        };
    }
    match error.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => TlsError::Closed { address },
        _ => TlsError::Io { address, error },
    }
}

/// Why a certificate was refused, in words, with what to do about it.
fn certificate_reason(error: &CertificateError, ca_file: Option<&Path>) -> String {
    let pin = match ca_file {
        Some(ca_file) => format!(
            "give the server's own certificate to --ca to pin it (not {})",
            ca_file.display()
        ),
        None => "give the server's own certificate to --ca to pin it".to_owned(),
    };
    match error {
        CertificateError::UnknownIssuer => match ca_file {
            Some(ca_file) => format!(
                "it is not signed by the CA in {} (give --ca the CA that signed it, or the \
                 server's own certificate to pin it)",
                ca_file.display()
            ),
            None => "it is not signed by a trusted root".to_owned(),
        },
        CertificateError::NotValidForNameContext { presented, .. } if presented.is_empty() => {
            format!(
                "it names no host (it has no subjectAltName, as openssl req -x509 makes it \
                 without -addext subjectAltName=DNS:NAME); make it again with the server's \
                 name, or {pin}"
            )
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!("{error} (connect with a name the certificate lists)")
        }
        CertificateError::Expired => {
            "it has expired (the server needs a new certificate)".to_owned()
        }
        CertificateError::ExpiredContext { time, not_after } => format!(
            "it expired {} day(s) ago (the server needs a new certificate)",
            time.as_secs().saturating_sub(not_after.as_secs()) / 86_400
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "it is not valid yet (is this machine's clock right?)".to_owned()
        }
        CertificateError::Revoked => "it has been revoked by its authority".to_owned(),
        CertificateError::BadEncoding => {
            "it is malformed (the server's certificate file is damaged?)".to_owned()
        }
        CertificateError::BadSignature => "a signature does not verify: the certificate is \
             forged, or the server does not hold its private key"
            .to_owned(),
        CertificateError::UnhandledCriticalExtension => {
            "it has a critical extension this client does not know, so it cannot be checked"
                .to_owned()
        }
        CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "it is signed with an algorithm this client does not support (make it with \
             ECDSA P-256 or RSA and SHA-256)"
                .to_owned()
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "it is not meant for a server (its extended key usage lacks serverAuth)".to_owned()
        }
        CertificateError::UnknownRevocationStatus
        | CertificateError::ExpiredRevocationList
        | CertificateError::ExpiredRevocationListContext { .. }
        | CertificateError::InvalidOcspResponse => {
            "its revocation status cannot be checked".to_owned()
        }
        CertificateError::ApplicationVerificationFailure => "it was refused".to_owned(),
        // webpki's own errors come as names (its Display is its Debug).
        CertificateError::Other(other) => {
            let name = other.to_string();
            match name.as_str() {
                "CaUsedAsEndEntity" => format!(
                    "it is a CA certificate used as the server's own (openssl req -x509 makes \
                     such certificates by default); {pin}, or give the server a certificate \
                     signed by a CA"
                ),
                "EndEntityUsedAsCa" => "it is signed by a certificate that is no CA".to_owned(),
                "PathLenConstraintViolated" | "NameConstraintViolation" => {
                    "the CA that signed it is not allowed to sign for it".to_owned()
                }
                "CertDistrusted" => "its key is explicitly distrusted".to_owned(),
                "RequiredEkuNotFound" => {
                    "it is not meant for a server (its extended key usage lacks serverAuth)"
                        .to_owned()
                }
                "MaximumPathDepthExceeded" | "MaximumPathBuildCallsExceeded" => {
                    "its chain of authorities is too long to check".to_owned()
                }
                "InvalidCertValidity" => {
                    "its validity dates make no sense (it ends before it starts)".to_owned()
                }
                "UnsupportedCertVersion" => "it is not an X.509 v3 certificate".to_owned(),
                name if name.starts_with("RequiredEkuNotFound") => {
                    "it is not meant for a server (its extended key usage lacks serverAuth)"
                        .to_owned()
                }
                name => format!(
                    "it cannot be verified (webpki says {name}); look at it with openssl x509 \
                     -noout -text -in FILE, or {pin}"
                ),
            }
        }
        _ => format!("it cannot be verified ({error}); {pin}"),
    }
}
