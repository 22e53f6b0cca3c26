//! miniftp: share a directory over TCP, with the classic token protocol of
//! the original Mini-FTP and (between our own client and server) more.
//!
//! # Layout
//!
//! - [`protocol`]: the wire format, pure: tokens, message framing, requests
//!   and replies. Shared by server and client; knows no disk and no socket.
//! - [`connection`]: the only code that touches a connection's bytes; turns
//!   a stream into messages and back, streaming large bodies.
//! - [`stream`]: what a connection runs on: plain TCP or TLS, optionally
//!   capped in bandwidth.
//! - [`tls`]: TLS identities for the server and trust for the client
//!   (CA files, system roots, known hosts trusted on first use).
//! - [`digest`]: BLAKE3 digests computed as transfers stream past.
//! - [`storage`]: the shared tree behind one jail (virtual paths, atomic
//!   uploads) and its backends: the local disk (a directory capability) and
//!   S3-compatible object storage (OpenDAL), which several servers may
//!   share. Knows no wire and no session.
//! - [`server`]: accepts connections (admission, TLS handshake, abuse
//!   limits) and runs a session per client (login, classic and extended).
//! - [`accounts`]: the users file: names, argon2id hashes, homes, access.
//! - [`client`]: connects to a server; one typed method per operation.
//! - [`config`]: the server's limits, with documented defaults.
//!
//! The binary (`src/main.rs`) only parses arguments, sets up logging and
//! calls in.

pub mod accounts;
pub mod client;
pub mod config;
pub mod connection;
pub mod digest;
pub mod executor;
pub mod operation;
pub mod protocol;
pub mod server;
pub mod storage;
pub mod stream;
pub mod tls;

pub use accounts::Access;
pub use config::ServerConfig;
pub use storage::Storage;
