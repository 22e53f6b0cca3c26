//! The per-connection token that ends every classic message.

use std::fmt;

use rand::Rng;
use rand::distr::Alphanumeric;

/// Length of a token on the wire: `<` + 8 alphanumerics + `>`.
pub const TOKEN_LEN: usize = 10;

/// A connection's end-of-message marker, e.g. `<Ab3X9kQw>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token([u8; TOKEN_LEN]);

impl Token {
    /// Draws a fresh token from the thread's cryptographically secure generator.
    pub fn generate() -> Token {
        let mut bytes = [0u8; TOKEN_LEN];
        bytes[0] = b'<';
        bytes[TOKEN_LEN - 1] = b'>';
        let mut rng = rand::rng();
        for byte in &mut bytes[1..TOKEN_LEN - 1] {
            *byte = rng.sample(Alphanumeric);
        }
        Token(bytes)
    }

    /// Accepts exactly the 10 bytes of a well-formed token.
    pub fn parse(bytes: &[u8]) -> Option<Token> {
        let bytes: [u8; TOKEN_LEN] = bytes.try_into().ok()?;
        let well_formed = bytes[0] == b'<'
            && bytes[TOKEN_LEN - 1] == b'>'
            && bytes[1..TOKEN_LEN - 1]
                .iter()
                .all(u8::is_ascii_alphanumeric);
        well_formed.then_some(Token(bytes))
    }

    /// The token's wire bytes.
    pub fn as_bytes(&self) -> &[u8; TOKEN_LEN] {
        &self.0
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Always ASCII by construction.
        f.write_str(std::str::from_utf8(&self.0).unwrap_or("<invalid>"))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_well_formed_and_differ() {
        let a = Token::generate();
        let b = Token::generate();
        assert_eq!(Token::parse(a.as_bytes()), Some(a));
        assert_ne!(a, b, "two draws of 62^8 should not collide");
    }

    #[test]
    fn parse_rejects_malformed_tokens() {
        for bad in [
            &b"<Ab3X9kQw"[..],
            b"Ab3X9kQw>>",
            b"<Ab3X9kQ!>",
            b"<Ab3X9kQwx>",
            b"",
        ] {
            assert_eq!(Token::parse(bad), None, "{bad:?}");
        }
        assert!(Token::parse(b"<Ab3X9kQw>").is_some());
    }
}
