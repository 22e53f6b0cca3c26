//! Classic framing through the scanner: a stream arriving in arbitrary
//! pieces, consumed as whole messages or handed on as a streamed payload
//! (as `Connection` does), always finds exactly the first token, and hands
//! on exactly the bytes before it. The detector sees a token in a sequence
//! of chunks exactly when the whole holds one.
//!
//! Input: byte 0 picks the read sizes, byte 1 the mode of each message
//! (one bit each), the rest is the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use miniftp::protocol::frame::{TokenDetector, TokenScanner};
use miniftp::protocol::{TOKEN_LEN, Token};

const TOKEN: &[u8; TOKEN_LEN] = b"<Ab3X9kQw>";

fn first_token(bytes: &[u8]) -> Option<usize> {
    bytes.windows(TOKEN_LEN).position(|window| window == TOKEN)
}

fuzz_target!(|data: &[u8]| {
    let [sizes, modes, wire @ ..] = data else {
        return;
    };
    let token = Token::parse(TOKEN).unwrap();
    // Read sizes from 1 to 16, cycled from the seed's nibbles.
    let size = |index: usize| usize::from((sizes >> ((index % 2) * 4)) & 0x0f) + 1;
    let mut scanner = TokenScanner::new(&token);
    let mut detector = TokenDetector::new(&token);
    let mut buffer: Vec<u8> = Vec::new();
    // What the model expects: the stream cut at each first token.
    let mut expected = wire;
    let mut message = Vec::new();
    let mut messages = 0usize;
    let mut at = 0;
    let mut reads = 0;
    let mut seen_token = false;
    while at < wire.len() {
        let end = (at + size(reads)).min(wire.len());
        reads += 1;
        seen_token = detector.feed(&wire[at..end]);
        buffer.extend_from_slice(&wire[at..end]);
        at = end;
        loop {
            let found = scanner.find(&buffer);
            assert_eq!(found, first_token(&buffer), "buffer {buffer:?}");
            let streamed = modes >> (messages % 8) & 1 == 1;
            match found {
                Some(end) => {
                    message.extend_from_slice(&buffer[..end]);
                    let model = first_token(expected).expect("the model sees it too");
                    assert_eq!(message, expected[..model]);
                    expected = &expected[model + TOKEN_LEN..];
                    message.clear();
                    messages += 1;
                    buffer.drain(..end + TOKEN_LEN);
                    scanner.consumed(end + TOKEN_LEN);
                }
                None if streamed => {
                    // A payload hands on what cannot begin a token.
                    let safe = TokenScanner::safe_prefix(buffer.len());
                    message.extend_from_slice(&buffer[..safe]);
                    buffer.drain(..safe);
                    scanner.consumed(safe);
                    break;
                }
                None => break,
            }
        }
    }
    assert_eq!(seen_token, first_token(wire).is_some());
    // Whatever is left never held a token.
    message.extend_from_slice(&buffer);
    assert_eq!(message, expected);
});
