//! The extended protocol: binary, length-prefixed frames that our own client
//! and server switch to after the classic welcome. Pure: encoding and
//! decoding only; `docs/PROTOCOL.md` is the reference for the bytes.
//!
//! Every frame is a 13-byte header (`kind: u8`, `id: u32`, `length: u64`,
//! big-endian) and `length` bytes of body. A [`Kind::Data`] body is raw file
//! bytes, streamed and never held whole; every other body is a small
//! [`Message`] of at most [`MAX_MESSAGE_LEN`] bytes, refused before any
//! allocation when it claims more.

use bytes::{Buf, BufMut, BytesMut};

/// The classic command that asks to switch (`x-miniftp-extended 1`).
pub const UPGRADE_VERB: &str = "x-miniftp-extended";

/// The version this build speaks.
pub const VERSION: u32 = 1;

/// Length of a frame header.
pub const HEADER_LEN: usize = 13;

/// Longest body of a non-data frame.
pub const MAX_MESSAGE_LEN: u64 = 1 << 20;

/// Length of a BLAKE3 digest.
pub const DIGEST_LEN: usize = 32;

/// The classic command message that asks the server to switch.
pub fn upgrade_request() -> String {
    format!("{UPGRADE_VERB} {VERSION}")
}

/// The classic status by which a server agrees to switch.
pub fn upgrade_accepted() -> String {
    format!("ok {UPGRADE_VERB} {VERSION}")
}

/// What a frame carries; the first byte of its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Client: change the session's directory.
    ChangeDirectory = 0x01,
    /// Client: create a directory (optionally with its parents).
    MakeDirectory = 0x02,
    /// Client: remove an entry (optionally a whole tree).
    Remove = 0x03,
    /// Client: rename or move an entry.
    Rename = 0x04,
    /// Client: describe one entry.
    Stat = 0x05,
    /// Client: list a directory.
    List = 0x06,
    /// Client: store a file; data frames and an end frame follow.
    Upload = 0x07,
    /// Client: fetch a file, possibly from an offset.
    Download = 0x08,
    /// Client: log in to an account (first, on a server with accounts).
    Login = 0x09,
    /// Either side: raw file bytes.
    Data = 0x10,
    /// Either side: the end of a transfer, with the whole file's digest.
    End = 0x11,
    /// Server: the request succeeded; the session's directory.
    Done = 0x20,
    /// Server: the request failed; a stable code and a message.
    Failed = 0x21,
    /// Server: one entry (reply to stat).
    Entry = 0x22,
    /// Server: a directory's entries (reply to list).
    Listing = 0x23,
    /// Server: send the upload's bytes from this offset (resume).
    UploadFrom = 0x24,
    /// Server: a download's size and starting offset; data follows.
    Sending = 0x25,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        use Kind::*;
        Some(match byte {
            0x01 => ChangeDirectory,
            0x02 => MakeDirectory,
            0x03 => Remove,
            0x04 => Rename,
            0x05 => Stat,
            0x06 => List,
            0x07 => Upload,
            0x08 => Download,
            0x09 => Login,
            0x10 => Data,
            0x11 => End,
            0x20 => Done,
            0x21 => Failed,
            0x22 => Entry,
            0x23 => Listing,
            0x24 => UploadFrom,
            0x25 => Sending,
            _ => return None,
        })
    }
}

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the frame carries.
    pub kind: Kind,
    /// The request this frame belongs to, chosen by the client.
    pub id: u32,
    /// Length of the body that follows.
    pub length: u64,
}

impl Header {
    /// The header's wire bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[0] = self.kind as u8;
        bytes[1..5].copy_from_slice(&self.id.to_be_bytes());
        bytes[5..].copy_from_slice(&self.length.to_be_bytes());
        bytes
    }

    /// Reads a header, refusing unknown kinds and oversized message bodies
    /// before anything is allocated for them.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Header, FrameError> {
        let kind = Kind::from_byte(bytes[0]).ok_or(FrameError::UnknownKind(bytes[0]))?;
        let id = u32::from_be_bytes(bytes[1..5].try_into().expect("4 bytes"));
        let length = u64::from_be_bytes(bytes[5..].try_into().expect("8 bytes"));
        if kind != Kind::Data && length > MAX_MESSAGE_LEN {
            return Err(FrameError::TooLong(length));
        }
        Ok(Header { kind, id, length })
    }
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The kind byte is not one we know.
    #[error("unknown frame kind 0x{0:02x}")]
    UnknownKind(u8),
    /// A message body claims more than [`MAX_MESSAGE_LEN`].
    #[error("frame body of {0} bytes is over the limit")]
    TooLong(u64),
    /// The body ended before its fields did.
    #[error("truncated frame body")]
    Truncated,
    /// The body has bytes after its last field.
    #[error("unexpected bytes after the frame body")]
    Trailing,
    /// A text field is not UTF-8.
    #[error("text field is not valid UTF-8")]
    NotUtf8,
    /// A field holds a value outside its range.
    #[error("invalid field value")]
    InvalidValue,
    /// A frame of this kind is not a message (data frames are streamed).
    #[error("a {0:?} frame carries no message")]
    NotAMessage(Kind),
}

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::operation::{Entry, EntryKind, Operation};
pub use crate::operation::{ErrorCode, Password};

/// A non-data frame's content: a request (an [`Operation`]), the end of an
/// upload, or one of the server's replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request: the operation it asks for. [`Operation::Size`] travels as
    /// a [`Kind::Stat`] (whose answer holds the size), and
    /// [`Operation::Exit`] as no frame at all (the client closes).
    Request(Operation),
    /// See [`Kind::End`].
    End {
        /// BLAKE3 of the whole file, from byte 0.
        digest: [u8; DIGEST_LEN],
    },
    /// See [`Kind::Done`].
    Done {
        /// The session's directory after the request.
        directory: String,
    },
    /// See [`Kind::Failed`].
    Failed {
        /// Stable code.
        code: ErrorCode,
        /// Human-readable reason.
        message: String,
    },
    /// See [`Kind::Entry`].
    Entry(Entry),
    /// See [`Kind::Listing`].
    Listing(Vec<Entry>),
    /// See [`Kind::UploadFrom`].
    UploadFrom {
        /// How many bytes of the file the server already holds.
        offset: u64,
    },
    /// See [`Kind::Sending`].
    Sending {
        /// The whole file's size.
        size: u64,
        /// Where the data that follows starts.
        offset: u64,
    },
}

impl From<Operation> for Message {
    fn from(operation: Operation) -> Message {
        Message::Request(operation)
    }
}

/// The frame kind that carries `operation`, if any frame does.
pub fn request_kind(operation: &Operation) -> Option<Kind> {
    Some(match operation {
        Operation::ChangeDirectory { .. } => Kind::ChangeDirectory,
        Operation::MakeDirectory { .. } => Kind::MakeDirectory,
        Operation::Remove { .. } => Kind::Remove,
        Operation::Rename { .. } => Kind::Rename,
        Operation::Stat { .. } | Operation::Size { .. } => Kind::Stat,
        Operation::List { .. } => Kind::List,
        Operation::Upload { .. } => Kind::Upload,
        Operation::Download { .. } => Kind::Download,
        Operation::Login { .. } => Kind::Login,
        Operation::Exit => return None,
    })
}

impl Message {
    /// The frame kind that carries this message ([`Kind::Done`] stands for
    /// the exit, which no frame carries).
    pub fn kind(&self) -> Kind {
        match self {
            Message::Request(operation) => request_kind(operation).unwrap_or(Kind::Done),
            Message::End { .. } => Kind::End,
            Message::Done { .. } => Kind::Done,
            Message::Failed { .. } => Kind::Failed,
            Message::Entry(_) => Kind::Entry,
            Message::Listing(_) => Kind::Listing,
            Message::UploadFrom { .. } => Kind::UploadFrom,
            Message::Sending { .. } => Kind::Sending,
        }
    }

    /// The operation a request frame asks for; any other message as it is.
    pub fn into_operation(self) -> Result<Operation, Message> {
        match self {
            Message::Request(operation) => Ok(operation),
            other => Err(other),
        }
    }

    /// Appends the whole frame (header and body) for request `id`; nothing
    /// for an exit.
    pub fn encode(&self, id: u32, out: &mut BytesMut) {
        if matches!(self, Message::Request(Operation::Exit)) {
            return;
        }
        let start = out.len();
        out.put_slice(&[0u8; HEADER_LEN]);
        match self {
            Message::Request(operation) => put_request(out, operation),
            Message::End { digest } => out.put_slice(digest),
            Message::Done { directory } => put_text(out, directory),
            Message::Failed { code, message } => {
                out.put_u16(*code as u16);
                put_text(out, message);
            }
            Message::Entry(entry) => put_entry(out, entry),
            Message::Listing(entries) => {
                out.put_u32(u32::try_from(entries.len()).unwrap_or(u32::MAX));
                for entry in entries {
                    put_entry(out, entry);
                }
            }
            Message::UploadFrom { offset } => out.put_u64(*offset),
            Message::Sending { size, offset } => {
                out.put_u64(*size);
                out.put_u64(*offset);
            }
        }
        let length = (out.len() - start - HEADER_LEN) as u64;
        let header = Header {
            kind: self.kind(),
            id,
            length,
        };
        out[start..start + HEADER_LEN].copy_from_slice(&header.encode());
    }

    /// Reads the body of a non-data frame of `kind`.
    pub fn decode(kind: Kind, mut body: &[u8]) -> Result<Message, FrameError> {
        let body = &mut body;
        let message = match kind {
            Kind::ChangeDirectory => {
                Message::Request(Operation::ChangeDirectory { path: text(body)? })
            }
            Kind::MakeDirectory => Message::Request(Operation::MakeDirectory {
                path: text(body)?,
                parents: flag(body)?,
            }),
            Kind::Remove => Message::Request(Operation::Remove {
                path: text(body)?,
                recursive: flag(body)?,
            }),
            Kind::Rename => Message::Request(Operation::Rename {
                from: text(body)?,
                to: text(body)?,
            }),
            Kind::Stat => Message::Request(Operation::Stat { path: text(body)? }),
            Kind::List => Message::Request(Operation::List { path: text(body)? }),
            Kind::Upload => Message::Request(Operation::Upload {
                path: text(body)?,
                size: Some(number(body)?),
                resume: flag(body)?,
            }),
            Kind::Download => Message::Request(Operation::Download {
                path: text(body)?,
                offset: number(body)?,
            }),
            Kind::Login => Message::Request(Operation::Login {
                user: text(body)?,
                password: Password::new(text(body)?),
            }),
            Kind::End => {
                let mut digest = [0u8; DIGEST_LEN];
                take(body, DIGEST_LEN)?.copy_to_slice(&mut digest);
                Message::End { digest }
            }
            Kind::Done => Message::Done {
                directory: text(body)?,
            },
            Kind::Failed => {
                let code = ErrorCode::from_number(take(body, 2)?.get_u16());
                Message::Failed {
                    code,
                    message: text(body)?,
                }
            }
            Kind::Entry => Message::Entry(entry(body)?),
            Kind::Listing => {
                let count = take(body, 4)?.get_u32();
                // Each entry takes at least 22 bytes: a count beyond what the
                // body can hold is refused before allocating for it.
                if u64::from(count) * 22 > body.len() as u64 {
                    return Err(FrameError::Truncated);
                }
                let entries = (0..count).map(|_| entry(body)).collect::<Result<_, _>>()?;
                Message::Listing(entries)
            }
            Kind::UploadFrom => Message::UploadFrom {
                offset: number(body)?,
            },
            Kind::Sending => Message::Sending {
                size: number(body)?,
                offset: number(body)?,
            },
            Kind::Data => return Err(FrameError::NotAMessage(kind)),
        };
        if !body.is_empty() {
            return Err(FrameError::Trailing);
        }
        Ok(message)
    }
}

/// A request's fields, in the order `docs/PROTOCOL.md` gives them.
fn put_request(out: &mut BytesMut, operation: &Operation) {
    match operation {
        Operation::ChangeDirectory { path }
        | Operation::Stat { path }
        | Operation::Size { path }
        | Operation::List { path } => put_text(out, path),
        Operation::MakeDirectory { path, parents } => {
            put_text(out, path);
            out.put_u8(u8::from(*parents));
        }
        Operation::Remove { path, recursive } => {
            put_text(out, path);
            out.put_u8(u8::from(*recursive));
        }
        Operation::Rename { from, to } => {
            put_text(out, from);
            put_text(out, to);
        }
        Operation::Upload { path, size, resume } => {
            put_text(out, path);
            // The extended protocol always says the size; a sender that
            // does not know it sends an empty file's.
            out.put_u64(size.unwrap_or(0));
            out.put_u8(u8::from(*resume));
        }
        Operation::Download { path, offset } => {
            put_text(out, path);
            out.put_u64(*offset);
        }
        Operation::Login { user, password } => {
            put_text(out, user);
            put_text(out, password.expose());
        }
        Operation::Exit => {}
    }
}

fn put_text(out: &mut BytesMut, text: &str) {
    out.put_u32(u32::try_from(text.len()).unwrap_or(u32::MAX));
    out.put_slice(text.as_bytes());
}

fn put_entry(out: &mut BytesMut, entry: &Entry) {
    out.put_u8(u8::from(entry.is_directory()));
    out.put_u64(entry.size);
    let seconds = entry.modified_seconds();
    out.put_u8(u8::from(seconds.is_some()));
    out.put_i64(seconds.unwrap_or(0));
    put_text(out, &entry.name);
}

/// The time `seconds` after (or before) the Unix epoch, where representable.
fn from_unix_seconds(seconds: i64) -> Option<SystemTime> {
    let magnitude = Duration::from_secs(seconds.unsigned_abs());
    match seconds >= 0 {
        true => UNIX_EPOCH.checked_add(magnitude),
        false => UNIX_EPOCH.checked_sub(magnitude),
    }
}

fn take<'a>(body: &mut &'a [u8], n: usize) -> Result<&'a [u8], FrameError> {
    if body.len() < n {
        return Err(FrameError::Truncated);
    }
    let (head, rest) = body.split_at(n);
    *body = rest;
    Ok(head)
}

fn text(body: &mut &[u8]) -> Result<String, FrameError> {
    let len = take(body, 4)?.get_u32() as usize;
    let bytes = take(body, len)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| FrameError::NotUtf8)
}

fn number(body: &mut &[u8]) -> Result<u64, FrameError> {
    Ok(take(body, 8)?.get_u64())
}

fn flag(body: &mut &[u8]) -> Result<bool, FrameError> {
    match take(body, 1)?[0] {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(FrameError::InvalidValue),
    }
}

fn entry(body: &mut &[u8]) -> Result<Entry, FrameError> {
    let kind = match flag(body)? {
        true => EntryKind::Directory,
        false => EntryKind::File,
    };
    let size = number(body)?;
    let has_time = flag(body)?;
    let time = take(body, 8)?.get_i64();
    Ok(Entry {
        kind,
        size,
        modified: has_time.then(|| from_unix_seconds(time)).flatten(),
        name: text(body)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(message: &Message, id: u32) -> Message {
        let mut out = BytesMut::new();
        message.encode(id, &mut out);
        let header = Header::decode(out[..HEADER_LEN].try_into().unwrap()).unwrap();
        assert_eq!(header.id, id);
        assert_eq!(header.kind, message.kind());
        assert_eq!(header.length as usize, out.len() - HEADER_LEN);
        Message::decode(header.kind, &out[HEADER_LEN..]).unwrap()
    }

    fn entry_strategy() -> impl Strategy<Value = Entry> {
        (
            any::<String>(),
            any::<bool>(),
            any::<u64>(),
            // Whole seconds, as the frame carries them.
            proptest::option::of(-(1i64 << 40)..(1i64 << 40)),
        )
            .prop_map(|(name, is_directory, size, modified)| Entry {
                name,
                kind: match is_directory {
                    true => EntryKind::Directory,
                    false => EntryKind::File,
                },
                size,
                modified: modified.and_then(from_unix_seconds),
            })
    }

    fn message_strategy() -> impl Strategy<Value = Message> {
        prop_oneof![
            any::<String>().prop_map(|path| Message::Request(Operation::ChangeDirectory { path })),
            (any::<String>(), any::<bool>()).prop_map(|(path, parents)| Message::Request(
                Operation::MakeDirectory { path, parents }
            )),
            (any::<String>(), any::<bool>()).prop_map(|(path, recursive)| Message::Request(
                Operation::Remove { path, recursive }
            )),
            (any::<String>(), any::<String>())
                .prop_map(|(from, to)| Message::Request(Operation::Rename { from, to })),
            any::<String>().prop_map(|path| Message::Request(Operation::Stat { path })),
            any::<String>().prop_map(|path| Message::Request(Operation::List { path })),
            (any::<String>(), any::<u64>(), any::<bool>()).prop_map(|(path, size, resume)| {
                Message::Request(Operation::Upload {
                    path,
                    size: Some(size),
                    resume,
                })
            }),
            (any::<String>(), any::<u64>())
                .prop_map(|(path, offset)| Message::Request(Operation::Download { path, offset })),
            (any::<String>(), any::<String>()).prop_map(|(user, password)| Message::Request(
                Operation::Login {
                    user,
                    password: Password::new(password)
                }
            )),
            any::<[u8; 32]>().prop_map(|digest| Message::End { digest }),
            any::<String>().prop_map(|directory| Message::Done { directory }),
            any::<String>().prop_map(|message| Message::Failed {
                code: ErrorCode::NotFound,
                message
            }),
            entry_strategy().prop_map(Message::Entry),
            proptest::collection::vec(entry_strategy(), 0..20).prop_map(Message::Listing),
            any::<u64>().prop_map(|offset| Message::UploadFrom { offset }),
            (any::<u64>(), any::<u64>())
                .prop_map(|(size, offset)| Message::Sending { size, offset }),
        ]
    }

    proptest! {
        #[test]
        fn every_message_round_trips(message in message_strategy(), id in any::<u32>()) {
            prop_assert_eq!(round_trip(&message, id), message);
        }

        #[test]
        fn truncated_bodies_are_errors_not_panics(message in message_strategy(), cut in any::<usize>()) {
            let mut out = BytesMut::new();
            message.encode(7, &mut out);
            let body = &out[HEADER_LEN..];
            let cut = cut % body.len().max(1);
            if cut < body.len() {
                prop_assert!(Message::decode(message.kind(), &body[..cut]).is_err());
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(kind in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Some(kind) = Kind::from_byte(kind) {
                let _ = Message::decode(kind, &body);
            }
        }

        #[test]
        fn arbitrary_headers_never_panic(bytes in any::<[u8; HEADER_LEN]>()) {
            if let Ok(header) = Header::decode(&bytes) {
                prop_assert_eq!(header.encode(), bytes);
            }
        }
    }

    #[test]
    fn oversized_message_bodies_are_refused_from_the_header() {
        let header = Header {
            kind: Kind::List,
            id: 1,
            length: MAX_MESSAGE_LEN + 1,
        };
        assert_eq!(
            Header::decode(&header.encode()),
            Err(FrameError::TooLong(MAX_MESSAGE_LEN + 1))
        );
        let data = Header {
            kind: Kind::Data,
            id: 1,
            length: u64::MAX,
        };
        assert_eq!(Header::decode(&data.encode()), Ok(data));
    }

    #[test]
    fn a_listing_count_beyond_the_body_is_refused_before_allocating() {
        let mut body = BytesMut::new();
        body.put_u32(u32::MAX);
        assert_eq!(
            Message::decode(Kind::Listing, &body),
            Err(FrameError::Truncated)
        );
    }

    #[test]
    fn trailing_bytes_and_bad_values_are_refused() {
        let mut out = BytesMut::new();
        Message::Request(Operation::Stat { path: "a".into() }).encode(1, &mut out);
        out.put_u8(0);
        assert_eq!(
            Message::decode(Kind::Stat, &out[HEADER_LEN..]),
            Err(FrameError::Trailing)
        );
        let mut body = BytesMut::new();
        put_text(&mut body, "a");
        body.put_u8(2);
        assert_eq!(
            Message::decode(Kind::Remove, &body),
            Err(FrameError::InvalidValue)
        );
        assert_eq!(
            Header::decode(&[0xee; HEADER_LEN]),
            Err(FrameError::UnknownKind(0xee))
        );
    }

    #[test]
    fn the_sample_session_bytes_in_the_docs_are_right() {
        let mut out = BytesMut::new();
        Message::Request(Operation::Stat {
            path: "a.jpg".into(),
        })
        .encode(1, &mut out);
        assert_eq!(
            &out[..],
            b"\x05\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x09\x00\x00\x00\x05a.jpg"
        );
    }
}
