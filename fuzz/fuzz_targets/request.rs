//! Classic command parsing: any bytes parse or are refused, never a panic;
//! what parses encodes back to itself, and the payload shape (decided
//! without parsing) agrees with it; quoting round-trips; escaped text stays
//! on one line.

#![no_main]

use libfuzzer_sys::fuzz_target;
use miniftp::protocol::request::{escape, quote, split_arguments};
use miniftp::protocol::{PayloadShape, Request};

fuzz_target!(|data: &[u8]| {
    let shape = PayloadShape::of_command(data);
    if let Ok(request) = Request::parse(data) {
        assert_eq!(
            Request::parse(request.encode().as_bytes()),
            Ok(request.clone())
        );
        let expected = match request {
            Request::Upload { .. } => PayloadShape::FromClient,
            Request::Download { .. } | Request::Size { .. } => PayloadShape::FromServer,
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
