//! Handshakes over loopback.
