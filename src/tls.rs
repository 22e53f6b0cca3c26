//! TLS for both ends (rustls): the server's identity (given PEM files, or a
//! self-signed certificate generated once and kept), and the client's trust
//! (a CA file, the system roots, or trust on first use recorded in a
//! known-hosts file, as ssh does).
//!
//! (Stub: being written.)

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpStream;

/// A certificate's SHA-256 fingerprint (of its DER bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

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

/// Why TLS could not be set up or a peer not trusted.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

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

/// Loads `cert` and `key` (PEM), or without them the self-signed identity
/// kept in `state_dir` (generated on first use).
pub fn load_server_identity(
    _cert: Option<&Path>,
    _key: Option<&Path>,
    _state_dir: &Path,
) -> Result<ServerIdentity, TlsError> {
    Err(TlsError::Other("TLS is not written yet".to_owned()))
}

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
    pub ask: Option<Arc<dyn Fn(&str, &Fingerprint) -> bool + Send + Sync>>,
}

/// Runs the TLS handshake as a client over `tcp` to `host` (name or
/// address) at `port`, and decides whether to trust the server.
pub async fn connect(
    _tcp: TcpStream,
    _host: &str,
    _port: u16,
    _trust: &ClientTrust,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TlsError> {
    Err(TlsError::Other("TLS is not written yet".to_owned()))
}
