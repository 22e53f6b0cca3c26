//! Finding where a classic message ends: the first occurrence of the token.
//!
//! Pure and incremental, after tokio-util's `LinesCodec`: the scanner
//! remembers how far it has searched, so a message arriving in many small
//! reads is scanned in linear time. It backs off `TOKEN_LEN - 1` bytes on
//! each miss because a token may be split across reads.

use memchr::memmem;

use super::token::{TOKEN_LEN, Token};

/// Incremental search for a token in a growing buffer.
pub struct TokenScanner {
    finder: memmem::Finder<'static>,
    /// Offset in the buffer before which no token can start.
    searched: usize,
}

impl TokenScanner {
    /// A scanner for `token`.
    pub fn new(token: &Token) -> TokenScanner {
        TokenScanner {
            finder: memmem::Finder::new(token.as_bytes()).into_owned(),
            searched: 0,
        }
    }

    /// Position of the first token in `buffer`, if it holds one.
    ///
    /// `buffer` must be the same buffer as on the previous call, possibly
    /// grown at the end or shortened at the front by [`TokenScanner::consumed`].
    pub fn find(&mut self, buffer: &[u8]) -> Option<usize> {
        let start = self.searched.min(buffer.len());
        match self.finder.find(&buffer[start..]) {
            Some(offset) => Some(start + offset),
            None => {
                self.searched = buffer.len().saturating_sub(TOKEN_LEN - 1);
                None
            }
        }
    }

    /// Bytes that can be handed on as message content while no token has
    /// been found: all but the last `TOKEN_LEN - 1`, which may begin one.
    pub fn safe_prefix(buffer_len: usize) -> usize {
        buffer_len.saturating_sub(TOKEN_LEN - 1)
    }

    /// Tells the scanner that `n` bytes were removed from the buffer's front.
    pub fn consumed(&mut self, n: usize) {
        self.searched = self.searched.saturating_sub(n);
    }
}

/// Streaming check for a token anywhere in a sequence of chunks, used
/// before a file is sent classically (a file holding the token would be cut
/// short by the receiver).
pub struct TokenDetector {
    finder: memmem::Finder<'static>,
    /// The last `TOKEN_LEN - 1` bytes seen, so a token straddling chunks is found.
    tail: Vec<u8>,
    found: bool,
}

impl TokenDetector {
    /// A detector for `token`.
    pub fn new(token: &Token) -> TokenDetector {
        TokenDetector {
            finder: memmem::Finder::new(token.as_bytes()).into_owned(),
            tail: Vec::with_capacity(2 * TOKEN_LEN),
            found: false,
        }
    }

    /// Looks at the next chunk; returns whether a token was seen so far.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        if self.found {
            return true;
        }
        let head = chunk.len().min(TOKEN_LEN - 1);
        self.tail.extend_from_slice(&chunk[..head]);
        self.found = self.finder.find(&self.tail).is_some() || self.finder.find(chunk).is_some();
        if chunk.len() >= TOKEN_LEN - 1 {
            self.tail.clear();
            self.tail
                .extend_from_slice(&chunk[chunk.len() - (TOKEN_LEN - 1)..]);
        } else {
            let excess = self.tail.len().saturating_sub(TOKEN_LEN - 1);
            self.tail.drain(..excess);
        }
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token::parse(b"<Ab3X9kQw>").unwrap()
    }

    #[test]
    fn finds_a_token_split_at_every_offset() {
        let message = b"hello world<Ab3X9kQw>next";
        for split in 0..=message.len() {
            let mut scanner = TokenScanner::new(&token());
            let mut buffer = message[..split].to_vec();
            let first = scanner.find(&buffer);
            if first.is_none() {
                buffer.extend_from_slice(&message[split..]);
                assert_eq!(scanner.find(&buffer), Some(11), "split at {split}");
            } else {
                assert_eq!(first, Some(11));
            }
        }
    }

    #[test]
    fn finds_the_first_of_several_messages() {
        let mut scanner = TokenScanner::new(&token());
        let buffer = b"a<Ab3X9kQw>b<Ab3X9kQw>";
        assert_eq!(scanner.find(buffer), Some(1));
    }

    #[test]
    fn resumes_after_consumption() {
        let mut scanner = TokenScanner::new(&token());
        let mut buffer = b"0123456789abcdef<Ab3".to_vec();
        assert_eq!(scanner.find(&buffer), None);
        buffer.drain(..5);
        scanner.consumed(5);
        buffer.extend_from_slice(b"X9kQw>");
        assert_eq!(scanner.find(&buffer), Some(11));
    }

    #[test]
    fn safe_prefix_keeps_a_possible_token_start() {
        assert_eq!(TokenScanner::safe_prefix(5), 0);
        assert_eq!(TokenScanner::safe_prefix(9), 0);
        assert_eq!(TokenScanner::safe_prefix(20), 11);
    }

    #[test]
    fn detector_sees_tokens_across_chunks_of_every_size() {
        let data = b"xxxxxxxxxxxxxxxxxxxx<Ab3X9kQw>yyyyyyyyyyy";
        for chunk_size in 1..=data.len() {
            let mut detector = TokenDetector::new(&token());
            let found = data.chunks(chunk_size).map(|c| detector.feed(c)).last();
            assert_eq!(found, Some(true), "chunk size {chunk_size}");
        }
    }

    #[test]
    fn detector_ignores_near_misses() {
        let data = b"<Ab3X9kQ>w <Ab3X9kQw <b3X9kQw> Ab3X9kQw>";
        for chunk_size in 1..=data.len() {
            let mut detector = TokenDetector::new(&token());
            let found = data.chunks(chunk_size).map(|c| detector.feed(c)).last();
            assert_eq!(found, Some(false), "chunk size {chunk_size}");
        }
    }
}
