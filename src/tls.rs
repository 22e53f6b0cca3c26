//! TLS for both ends (rustls, always with the ring provider): the server's
//! identity (given PEM files, or a self-signed certificate generated once and
//! kept), and the client's trust (a CA file, the system roots, or trust on
//! first use recorded in a known-hosts file, as ssh does).
//!
//! - `identity`: the server's certificate and key, loaded or generated.
//! - `client`: the client handshake, its certificate verifier, and what its
//!   failures mean.
//! - `known_hosts`: the file of servers trusted on first use.
//! - `private_files`: files that hold secrets or trust, written atomically
//!   and readable by their owner only.

mod client;
mod identity;
mod known_hosts;
mod private_files;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::client::plain_io;

pub use client::connect;
pub use identity::{ServerIdentity, default_state_dir, load_server_identity};
pub use known_hosts::default_known_hosts;

/// How long [`connect`] waits for the handshake by default (as the server
/// does, see [`ServerConfig::handshake_timeout`](crate::ServerConfig)).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The crypto provider of both ends, chosen here rather than process-wide.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate's SHA-256 fingerprint (of its DER bytes).
///
/// Displayed as 32 uppercase hex pairs joined by `:`; parsed from that form,
/// in either case, or from 64 hex digits without separators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a certificate given as DER bytes.
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, byte) in self.0.iter().enumerate() {
            if index > 0 {
                formatter.write_str(":")?;
            }
            write!(formatter, "{byte:02X}")?;
        }
        Ok(())
    }
}

/// A string that is not a SHA-256 fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 fingerprint (expected 32 hex pairs joined by ':')")]
pub struct FingerprintParseError;

impl FromStr for Fingerprint {
    type Err = FingerprintParseError;

    fn from_str(text: &str) -> Result<Fingerprint, FingerprintParseError> {
        let digits: Vec<u8> = if text.contains(':') {
            let pairs: Vec<&str> = text.split(':').collect();
            if pairs.len() != 32 || pairs.iter().any(|pair| pair.len() != 2) {
                return Err(FingerprintParseError);
            }
            pairs.concat().into_bytes()
        } else {
            text.as_bytes().to_vec()
        };
        if digits.len() != 64 {
            return Err(FingerprintParseError);
        }
        let mut bytes = [0; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let high = hex_value(pair[0]).ok_or(FingerprintParseError)?;
            let low = hex_value(pair[1]).ok_or(FingerprintParseError)?;
            *byte = high << 4 | low;
        }
        Ok(Fingerprint(bytes))
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

/// Why TLS could not be set up or a peer not trusted.
///
/// Each message stands alone (it names the file or the server, and says
/// what to do); underlying errors are part of the message, not a `source`.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read (missing, unreadable).
    #[error("cannot read {}: {}", path.display(), plain_io(error))]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// A file or directory could not be written.
    #[error("cannot write {}: {}", path.display(), plain_io(error))]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// A file that should hold PEM blocks does not.
    #[error("{} is not a PEM file ({detail})", path.display())]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A PEM file holds no certificate.
    #[error("{} holds no certificate (no PEM 'CERTIFICATE' block)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A PEM file holds no private key.
    #[error(
        "{} holds no private key (no PEM 'PRIVATE KEY', 'RSA PRIVATE KEY' or 'EC PRIVATE KEY' block)",
        path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The private key is encrypted, which the server cannot use.
    #[error(
        "{} holds an encrypted private key; give an unencrypted one (PKCS#8, PKCS#1 or SEC1)",
        path.display()
    )]
    EncryptedKey {
        /// The file.
        path: PathBuf,
    },
    /// The private key cannot be used.
    #[error("{}: unusable private key: {reason}", path.display())]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// Why, in rustls's words.
        reason: String,
    },
    /// The server's own certificate cannot be used.
    #[error("{}: unusable certificate: {reason}", path.display())]
    BadServerCertificate {
        /// The certificate file.
        path: PathBuf,
        /// Why, in rustls's words.
        reason: String,
    },
    /// The private key is not the one of the certificate.
    #[error(
        "the private key {} does not match the certificate {}",
        key.display(),
        certificate.display()
    )]
    KeyMismatch {
        /// The certificate file.
        certificate: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// A certificate file was given without its key.
    #[error(
        "the certificate {} was given without its private key (give both, or neither for a generated self-signed one)",
        certificate.display()
    )]
    CertificateWithoutKey {
        /// The certificate file.
        certificate: PathBuf,
    },
    /// A key file was given without its certificate.
    #[error(
        "the private key {} was given without its certificate (give both, or neither for a generated self-signed one)",
        key.display()
    )]
    KeyWithoutCertificate {
        /// The key file.
        key: PathBuf,
    },
    /// The self-signed certificate could not be generated.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    /// A CA file holds no usable certificate.
    #[error("{}: no usable CA certificate ({reason})", path.display())]
    BadCa {
        /// The CA file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// The host is neither a DNS name nor an IP address.
    #[error("'{host}' is not a host name or IP address that TLS can verify")]
    InvalidHost {
        /// The host as given.
        host: String,
    },
    /// The server answered with something other than TLS: most likely a
    /// plain-TCP miniftp server sending its token.
    #[error(
        "the server at {address} did not answer TLS ({detail}); is it serving plain TCP? try without --tls"
    )]
    NotTls {
        /// `HOST:PORT`.
        address: String,
        /// What rustls saw.
        detail: String,
    },
    /// The server closed the connection before the handshake finished.
    #[error(
        "the server at {address} closed the connection during the TLS handshake (does it serve TLS?)"
    )]
    Closed {
        /// `HOST:PORT`.
        address: String,
    },
    /// The handshake did not finish in time.
    #[error(
        "the server at {address} did not complete the TLS handshake within {} s",
        timeout.as_secs_f64()
    )]
    HandshakeTimeout {
        /// `HOST:PORT`.
        address: String,
        /// The limit.
        timeout: Duration,
    },
    /// The server's certificate failed verification (expired, wrong name,
    /// not signed by the CA, ...).
    #[error("the certificate of the server at {address} is not valid: {reason}")]
    BadCertificate {
        /// `HOST:PORT`.
        address: String,
        /// Why.
        reason: String,
    },
    /// The handshake failed for another reason (an alert from the server,
    /// no common protocol version or cipher, a bad signature, ...).
    #[error("the TLS handshake with {address} failed: {reason}")]
    Handshake {
        /// `HOST:PORT`.
        address: String,
        /// Why, in rustls's words.
        reason: String,
    },
    /// The socket failed during the handshake.
    #[error("the TLS handshake with {address} failed: {}", plain_io(error))]
    Io {
        /// `HOST:PORT`.
        address: String,
        /// Why.
        error: io::Error,
    },
    /// The server is not known and there is nobody to ask.
    #[error(
        "the server at {address} is not known yet (certificate SHA-256 fingerprint {fingerprint}) \
         and there is no terminal to ask whether to trust it; re-run interactively to confirm it, \
         or with --accept-new to record it in {} without asking",
        known_hosts.display()
    )]
    UnknownHost {
        /// `HOST:PORT`.
        address: String,
        /// The fingerprint presented.
        fingerprint: Fingerprint,
        /// The known-hosts file.
        known_hosts: PathBuf,
    },
    /// The user declined to trust an unknown server.
    #[error(
        "not trusting the server at {address} (certificate SHA-256 fingerprint {fingerprint}); nothing was recorded"
    )]
    NotTrusted {
        /// `HOST:PORT`.
        address: String,
        /// The fingerprint presented.
        fingerprint: Fingerprint,
    },
    /// The server presented another certificate than the one recorded:
    /// refused, whatever the settings. The message is ssh's loud one.
    #[error("{0}")]
    HostChanged(Box<HostChanged>),
    /// A line of the known-hosts file cannot be read.
    #[error("{}, line {line}: {reason}", path.display())]
    KnownHostsSyntax {
        /// The known-hosts file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// A server presenting another certificate than the one recorded for it
/// (boxed in [`TlsError::HostChanged`]; its `Display` is the warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostChanged {
    /// `HOST:PORT`.
    pub address: String,
    /// The fingerprint presented now.
    pub presented: Fingerprint,
    /// The fingerprint recorded.
    pub recorded: Fingerprint,
    /// The known-hosts file.
    pub known_hosts: PathBuf,
    /// The line of the recorded entry (from 1).
    pub line: usize,
    /// The recorded entry, as written in the file.
    pub entry: String,
}

impl fmt::Display for HostChanged {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let HostChanged {
            address,
            presented,
            recorded,
            known_hosts,
            line,
            entry,
        } = self;
        let known_hosts = known_hosts.display();
        let banner = "@".repeat(59);
        write!(
            formatter,
            "\n{banner}\n\
             @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
             {banner}\n\
             IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n\
             Someone could be eavesdropping on you right now (man-in-the-middle attack)!\n\
             It is also possible that the server's certificate has just been changed.\n\
             The server at {address} presented a certificate with SHA-256 fingerprint\n\
             \x20   {presented}\n\
             but {known_hosts} (line {line}) records\n\
             \x20   {recorded}\n\
             If you trust the new certificate, remove this line from {known_hosts}:\n\
             \x20   {entry}\n\
             and connect again. Connection refused: the server's certificate has changed."
        )
    }
}

/// Asks the user whether to trust an unknown server, given as `HOST:PORT`
/// and the fingerprint of its certificate; `true` trusts it.
pub type AskUser = dyn Fn(&str, &Fingerprint) -> bool + Send + Sync;

/// How a client decides to trust a server.
pub struct ClientTrust {
    /// Verify against this CA file only (PEM); otherwise the system roots,
    /// then trust on first use.
    pub ca_file: Option<PathBuf>,
    /// Where fingerprints of servers trusted on first use are recorded.
    pub known_hosts: PathBuf,
    /// Record an unknown fingerprint without asking (never a changed one).
    pub accept_new: bool,
    /// Asks the user whether to trust an unknown server (`HOST:PORT`, its
    /// fingerprint); `None` refuses unknown servers unless `accept_new`.
    /// Called on the blocking pool, so it may block on a terminal.
    pub ask: Option<Arc<AskUser>>,
    /// How long the handshake may take (not counting `ask`).
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`] by default.
    pub handshake_timeout: Duration,
}

impl ClientTrust {
    /// Trust on first use with `known_hosts`, without a CA file, asking
    /// nobody, with the default handshake timeout.
    pub fn new(known_hosts: PathBuf) -> ClientTrust {
        ClientTrust {
            ca_file: None,
            known_hosts,
            accept_new: false,
            ask: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

impl fmt::Debug for ClientTrust {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ClientTrust")
            .field("ca_file", &self.ca_file)
            .field("known_hosts", &self.known_hosts)
            .field("accept_new", &self.accept_new)
            .field("ask", &self.ask.as_ref().map(|_| "Fn"))
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

/// The key under which a server is known, and the name used in messages:
/// `HOST:PORT`, the host as given but lowercase, an IPv6 address in
/// brackets.
fn host_port(host: &str, port: u16) -> String {
    let host = bare_host(host).to_ascii_lowercase();
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The host without the brackets an IPv6 address may come in.
fn bare_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host)
}

/// Reads a file whole, with an error naming it.
fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.to_owned(),
        error,
    })
}
