//! The server's limits and settings, in one place, with documented defaults.

use std::sync::Arc;
use std::time::Duration;

pub use crate::accounts::Access;
use crate::accounts::Accounts;

/// Settings of a running server. Every field has a flag in the binary.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Most connections served at once; a client past it is told the server
    /// is busy and closed. Default 1,024.
    pub max_connections: usize,
    /// Most connections at once from one IP address; `None` for no limit
    /// beyond `max_connections`. Default: none (the binary sets 64 when it
    /// listens beyond loopback).
    pub max_connections_per_ip: Option<usize>,
    /// Whether peers on loopback escape `max_connections_per_ip`. They are
    /// this machine's own users, or a local relay (a TLS terminator, an ssh
    /// tunnel) through which every remote client arrives from 127.0.0.1,
    /// where a per-address cap would cap the whole service. Default true;
    /// tests turn it off to exercise the cap.
    pub per_ip_exempts_loopback: bool,
    /// How long a connection may wait between messages. Default 300 s.
    pub idle_timeout: Duration,
    /// How long a new connection may take to finish its TLS handshake and,
    /// when accounts are required, to log in. Default 10 s.
    pub handshake_timeout: Duration,
    /// Longest command message, without its token. Default 64 KiB.
    pub max_command_len: usize,
    /// Largest upload accepted, in bytes. Default: no limit.
    pub max_upload_size: Option<u64>,
    /// Most bytes per second each connection may send, and receive.
    /// Default: no limit.
    pub rate_limit: Option<u64>,
    /// How long shutdown waits for commands in flight. Default 10 s.
    pub shutdown_grace: Duration,
    /// Whether to pace classic messages so that clients that read packets
    /// (the original client) see each message alone. Default on.
    pub pacing: bool,
    /// Refuse every command that would change the tree. Default off.
    pub read_only: bool,
    /// Speak TLS on every connection. Default: plain TCP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Who may log in, and where: with accounts, a client must log in
    /// (extended protocol) before any command, unless `anonymous` lets it in.
    /// Default: no accounts, everyone is in.
    pub accounts: Option<Arc<Accounts>>,
    /// With accounts: what a client that does not log in may do (the only
    /// way in for a classic client), and in which directory under the root.
    /// Default: nothing.
    pub anonymous: Option<AnonymousAccess>,
    /// Accept passwords over plain TCP from other hosts. Default off: a login
    /// needs TLS, or a peer on loopback.
    pub allow_insecure_login: bool,
    /// How failed logins slow down, then ban, their address.
    pub login_failures: LoginFailurePolicy,
}

/// Anonymous access beside accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonymousAccess {
    /// Read only, or read and write.
    pub access: Access,
    /// Its directory, relative to the root (created at start if missing).
    pub home: String,
}

/// How failed logins are answered: each failure from an address is answered
/// after a delay that doubles, and past a number of failures the address is
/// banned for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFailurePolicy {
    /// The delay before answering the first failure. Default 1 s.
    pub first_delay: Duration,
    /// The delay never grows past this. Default 8 s.
    pub max_delay: Duration,
    /// Failures from one address that earn a ban. Default 5.
    pub ban_after: u32,
    /// How long a ban lasts; failures are forgotten after it too. Default 10 min.
    pub ban_for: Duration,
}

impl Default for LoginFailurePolicy {
    fn default() -> LoginFailurePolicy {
        LoginFailurePolicy {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
            ban_after: 5,
            ban_for: Duration::from_secs(600),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_connections: 1024,
            max_connections_per_ip: None,
            per_ip_exempts_loopback: true,
            idle_timeout: Duration::from_secs(300),
            handshake_timeout: Duration::from_secs(10),
            max_command_len: 64 * 1024,
            max_upload_size: None,
            rate_limit: None,
            shutdown_grace: Duration::from_secs(10),
            pacing: true,
            read_only: false,
            tls: None,
            accounts: None,
            anonymous: None,
            allow_insecure_login: false,
            login_failures: LoginFailurePolicy::default(),
        }
    }
}
