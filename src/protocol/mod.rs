//! The two wire encodings of operations, shared by server and client; no
//! I/O here.
//!
//! The classic token protocol (`docs/PROTOCOL-classic.md`): a message is any
//! bytes followed by the connection's [`Token`]; [`frame`] finds message
//! ends, [`classic`] parses and encodes commands, [`reply`] builds the texts
//! the server sends. [`extended`] is the binary protocol our own client and
//! server switch to (`docs/PROTOCOL.md`). [`text`] makes what a client sent
//! safe to show.

pub mod classic;
pub mod extended;
pub mod frame;
pub mod reply;
pub mod text;
pub mod token;

pub use classic::{ParseError, PayloadShape};
pub use token::{TOKEN_LEN, Token};

/// The most bytes any single read of the original client takes; a message
/// that fits in one of them can be written at once.
pub const CLASSIC_READ_SIZE: usize = 1024;
