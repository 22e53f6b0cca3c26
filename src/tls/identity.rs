//! The server's identity: a certificate chain and its key, from PEM files
//! given by the operator, or else a self-signed certificate generated once
//! and kept in the server's state directory, so that its fingerprint (what
//! clients record) stays the same from one start to the next.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::private_files::{create_private_dir, write_atomically};
use super::{Fingerprint, TlsError, provider, read_file};

/// The kept certificate, in the state directory.
const CERT_FILE: &str = "cert.pem";
/// The kept private key, in the state directory.
const KEY_FILE: &str = "key.pem";

/// The server's TLS configuration and the fingerprint to print at start.
#[derive(Debug)]
pub struct ServerIdentity {
    /// For the acceptor.
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate.
    pub fingerprint: Fingerprint,
    /// Where the certificate came from, for the start-up line.
    pub certificate: PathBuf,
}

/// Where the server keeps its generated identity by default:
/// `miniftp/server` under the user's data directory (on Linux
/// `~/.local/share/miniftp/server`), else `~/.miniftp/server`, else
/// `.miniftp/server` in the current directory.
pub fn default_state_dir() -> PathBuf {
    data_dir().join("server")
}

/// `miniftp` under the user's data directory, with the fallbacks of
/// [`default_state_dir`].
pub(super) fn data_dir() -> PathBuf {
    if let Some(data) = dirs::data_dir() {
        data.join("miniftp")
    } else if let Some(home) = dirs::home_dir() {
        home.join(".miniftp")
    } else {
        PathBuf::from(".miniftp")
    }
}

/// Loads `cert` (a PEM chain, leaf first) and `key` (PEM: PKCS#8, PKCS#1 or
/// SEC1), or without them the self-signed identity kept in `state_dir`,
/// generated on first use (the directory created 0700, the key written
/// 0600, both files atomically).
pub fn load_server_identity(
    cert: Option<&Path>,
    key: Option<&Path>,
    state_dir: &Path,
) -> Result<ServerIdentity, TlsError> {
    match (cert, key) {
        (Some(cert), Some(key)) => from_files(cert, key),
        (Some(cert), None) => Err(TlsError::CertificateWithoutKey {
            certificate: cert.to_owned(),
        }),
        (None, Some(key)) => Err(TlsError::KeyWithoutCertificate {
            key: key.to_owned(),
        }),
        (None, None) => kept_or_generated(state_dir),
    }
}

fn from_files(cert_path: &Path, key_path: &Path) -> Result<ServerIdentity, TlsError> {
    let chain = read_certificates(cert_path)?;
    let key = read_key(key_path)?;
    identity(chain, key, cert_path, key_path)
}

/// The identity in `state_dir`. The key is written before the certificate,
/// so a certificate present means a complete pair; without one, a new pair
/// is generated (over any key left by an interrupted first start).
fn kept_or_generated(state_dir: &Path) -> Result<ServerIdentity, TlsError> {
    let cert_path = state_dir.join(CERT_FILE);
    let key_path = state_dir.join(KEY_FILE);
    match std::fs::metadata(&cert_path) {
        Ok(_) => return from_files(&cert_path, &key_path),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(TlsError::Read {
                path: cert_path,
                error,
            });
        }
    }
    let generated = generate()?;
    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |error| TlsError::Write { path, error }
    };
    create_private_dir(state_dir).map_err(write_error(state_dir))?;
    write_atomically(
        &key_path,
        generated.signing_key.serialize_pem().as_bytes(),
        0o600,
    )
    .map_err(write_error(&key_path))?;
    write_atomically(&cert_path, generated.cert.pem().as_bytes(), 0o644)
        .map_err(write_error(&cert_path))?;
    tracing::info!(certificate = %cert_path.display(), "generated a self-signed certificate");
    let chain = vec![generated.cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
    identity(chain, key, &cert_path, &key_path)
}

/// A self-signed certificate for this machine's loopback names and, if it
/// can be read cheaply, its host name.
fn generate() -> Result<rcgen::CertifiedKey<rcgen::KeyPair>, TlsError> {
    let failed = |error: rcgen::Error| TlsError::Generate(error.to_string());
    let mut names = vec![
        rcgen::SanType::DnsName(rcgen::string::Ia5String::try_from("localhost").map_err(failed)?),
        rcgen::SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        rcgen::SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ];
    let hostname = hostname();
    if let Some(name) = &hostname
        && let Ok(name) = rcgen::string::Ia5String::try_from(name.as_str())
    {
        names.push(rcgen::SanType::DnsName(name));
    }
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = names;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let common_name = match &hostname {
        Some(name) => format!("miniftp on {name}"),
        None => "miniftp".to_owned(),
    };
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let signing_key = rcgen::KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&signing_key).map_err(failed)?;
    Ok(rcgen::CertifiedKey { cert, signing_key })
}

/// This machine's host name, if a file says it (Linux), and if it is a
/// plain DNS name other than `localhost`.
fn hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|text| text.trim().to_ascii_lowercase())
        .filter(|name| {
            !name.is_empty()
                && name.len() <= 253
                && name != "localhost"
                && name
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.')
        })
}

fn identity(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<ServerIdentity, TlsError> {
    let fingerprint = Fingerprint::of(&chain[0]);
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Config(error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| match error {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                TlsError::KeyMismatch {
                    certificate: cert_path.to_owned(),
                    key: key_path.to_owned(),
                }
            }
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                TlsError::BadServerCertificate {
                    path: cert_path.to_owned(),
                    reason: error.to_string(),
                }
            }
            error => TlsError::BadKey {
                path: key_path.to_owned(),
                reason: error.to_string(),
            },
        })?;
    Ok(ServerIdentity {
        config: Arc::new(config),
        fingerprint,
        certificate: cert_path.to_owned(),
    })
}

/// Every certificate in a PEM file, in order (a chain is leaf first).
pub(super) fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates: Vec<_> = read_pem(path)?
        .into_iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der))
        .collect();
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

/// The first private key in a PEM file.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let sections = read_pem(path)?;
    let key = sections.into_iter().find_map(|(kind, der)| match kind {
        SectionKind::PrivateKey => Some(PrivateKeyDer::Pkcs8(der.into())),
        SectionKind::RsaPrivateKey => Some(PrivateKeyDer::Pkcs1(der.into())),
        SectionKind::EcPrivateKey => Some(PrivateKeyDer::Sec1(der.into())),
        _ => None,
    });
    match key {
        Some(key) => Ok(key),
        None if contains(&read_file(path)?, b"-----BEGIN ENCRYPTED PRIVATE KEY-----") => {
            Err(TlsError::EncryptedKey {
                path: path.to_owned(),
            })
        }
        None => Err(TlsError::NoKey {
            path: path.to_owned(),
        }),
    }
}

/// The PEM sections of a file that rustls knows (others are skipped).
fn read_pem(path: &Path) -> Result<Vec<(SectionKind, Vec<u8>)>, TlsError> {
    let bytes = read_file(path)?;
    let not_pem = |detail: String| TlsError::NotPem {
        path: path.to_owned(),
        detail,
    };
    if !contains(&bytes, b"-----BEGIN ") {
        return Err(not_pem("no '-----BEGIN' line".to_owned()));
    }
    let mut reader = bytes.as_slice();
    let mut sections = Vec::new();
    while let Some(section) =
        pem::from_buf(&mut reader).map_err(|error| not_pem(error.to_string()))?
    {
        sections.push(section);
    }
    Ok(sections)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}
