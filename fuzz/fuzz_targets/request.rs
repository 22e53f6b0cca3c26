//! Classic command parsing: any bytes parse or are refused, never a panic;
//! what parses encodes back to itself, and the payload shape (decided
//! without parsing) agrees with it; quoting round-trips; escaped text stays
//! on one line.

#![no_main]

use libfuzzer_sys::fuzz_target;
use miniftp::operation::Operation;
use miniftp::protocol::PayloadShape;
use miniftp::protocol::classic::{self, quote, split_arguments};
use miniftp::protocol::text::escape;

fuzz_target!(|data: &[u8]| {
    let shape = PayloadShape::of_command(data);
    if let Ok(operation) = classic::parse(data) {
        let encoded = classic::encode(&operation).expect("what parses can be said");
        assert_eq!(classic::parse(encoded.as_bytes()), Ok(operation.clone()));
        let expected = match operation {
            Operation::Upload { .. } => PayloadShape::FromClient,
            Operation::Download { .. } | Operation::Size { .. } => PayloadShape::FromServer,
            _ => PayloadShape::None,
        };
        assert_eq!(shape, expected);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(words) = split_arguments(text) {
        let line: Vec<String> = words.iter().map(|word| quote(word)).collect();
        assert_eq!(split_arguments(&line.join(" \t")), Ok(words));
    }
    let escaped = escape(text);
    assert!(
        !escaped
            .chars()
            .any(|c| c.is_control() || (c.is_whitespace() && c != ' ')),
        "{escaped:?}"
    );
});
