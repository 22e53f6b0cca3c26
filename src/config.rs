//! The server's limits and settings, in one place, with documented defaults.

use std::time::Duration;

/// Settings of a running server. Every field has a flag in the binary.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Most connections served at once; a client past it is told the server
    /// is busy and closed. Default 1,024.
    pub max_connections: usize,
    /// How long a connection may wait between messages. Default 300 s.
    pub idle_timeout: Duration,
    /// Longest command message, without its token. Default 64 KiB.
    pub max_command_len: usize,
    /// Largest upload accepted, in bytes. Default: no limit.
    pub max_upload_size: Option<u64>,
    /// How long shutdown waits for commands in flight. Default 10 s.
    pub shutdown_grace: Duration,
    /// Whether to pace classic messages so that clients that read packets
    /// (the original client) see each message alone. Default on.
    pub pacing: bool,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_connections: 1024,
            idle_timeout: Duration::from_secs(300),
            max_command_len: 64 * 1024,
            max_upload_size: None,
            shutdown_grace: Duration::from_secs(10),
            pacing: true,
        }
    }
}
