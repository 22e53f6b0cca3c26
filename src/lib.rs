//! miniftp: share a directory over TCP, with the classic token protocol of
//! the original Mini-FTP and (between our own client and server) more.
//!
//! # Layout
//!
//! From the model at the bottom to the ways in at the top; arrows point
//! down only, and `protocol` and `storage` know nothing of each other.
//!
//! - [`operation`]: the model: what a client can ask ([`operation::Operation`]),
//!   what it is answered (`Entry`), how it fails (`ErrorCode`, `Failure`).
//!   No wire, no disk.
//! - [`storage`]: the tree behind one interface ([`storage::Backend`]) and
//!   one jail (virtual paths); its backends are the local disk
//!   ([`storage::LocalDisk`]) and S3-compatible object storage on OpenDAL,
//!   which several servers may share. Their contract is the test suite
//!   `tests/it/storage_contract.rs`, run on each.
//! - [`protocol`]: the two wire encodings of operations, pure and shared by
//!   server and client: [`protocol::classic`] (command lines and tokens) and
//!   [`protocol::extended`] (binary frames).
//! - [`digest`]: BLAKE3 digests computed as transfers stream past.
//! - [`accounts`]: the users file: names, argon2id hashes, homes, access.
//! - [`config`]: the server's settings and limits, with documented defaults.
//! - [`executor`]: one function per operation, for every way in: every
//!   rule, the one mapping from a storage failure to what a client sees,
//!   the one log line; logins and abuse limits.
//! - [`connection`]: the only code that touches a connection's bytes.
//! - [`stream`]: what a connection runs on: plain TCP or TLS, optionally
//!   capped in bandwidth.
//! - [`tls`]: TLS identities for the server and trust for the client.
//! - [`server`]: accepts connections and runs a session each, classic or
//!   extended: bytes to operations and outcomes back to bytes (pacing,
//!   pipelining and group commits live here).
//! - [`web`]: the HTTP page and WebDAV, a second listener on the same
//!   executor (accounts, bans, limits, logs shared with the TCP protocol).
//! - [`client`]: connects to a server; one method per operation, each
//!   building its [`operation::Operation`].
//!
//! The binary (`src/main.rs`, `src/cli/`) only parses arguments, sets up
//! logging, talks to the terminal and calls in.
//!
//! Adding an operation (say `touch`) is its variant in [`operation`], its
//! function in [`executor`], its client method and its shell line, plus its
//! encodings in [`protocol`] (an extended kind byte, or a classic verb):
//! every `match` on operations is exhaustive, so the compiler names each.

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
pub mod web;

pub use accounts::Access;
pub use config::ServerConfig;
pub use storage::Storage;
