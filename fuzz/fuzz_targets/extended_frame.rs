//! The extended frame decoder: any 13 bytes decode to a header or are
//! refused (a message body never announced over the limit); any body of any
//! kind decodes or is refused, never a panic; what decodes re-encodes to a
//! frame that decodes to the same message.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use miniftp::protocol::extended::{HEADER_LEN, Header, Kind, MAX_MESSAGE_LEN, Message};

fuzz_target!(|data: &[u8]| {
    if let Some(bytes) = data.first_chunk::<HEADER_LEN>()
        && let Ok(header) = Header::decode(bytes)
    {
        assert_eq!(&header.encode(), bytes);
        assert!(header.kind == Kind::Data || header.length <= MAX_MESSAGE_LEN);
    }
    // The first byte picks the kind, the rest is its body.
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let mut probe = [0u8; HEADER_LEN];
    probe[0] = kind;
    let Ok(Header { kind, .. }) = Header::decode(&probe) else {
        return;
    };
    let Ok(message) = Message::decode(kind, body) else {
        return;
    };
    assert_eq!(message.kind(), kind);
    let mut out = BytesMut::new();
    message.encode(7, &mut out);
    let header = Header::decode(out[..HEADER_LEN].try_into().unwrap()).unwrap();
    assert_eq!((header.kind, header.id), (kind, 7));
    assert_eq!(header.length as usize, out.len() - HEADER_LEN);
    assert_eq!(Message::decode(kind, &out[HEADER_LEN..]), Ok(message));
});
