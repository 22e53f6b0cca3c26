//! Property tests over everything a client's bytes reach before the disk:
//! the classic command parser, classic framing and extended frames read
//! through a `Connection`, the lexical path resolution, and the jail on a
//! real tree full of links. Never a panic, never a path outside the root.
//!
//! Each property names its number of cases, so that the count of inputs
//! tried is known; `fuzz/` runs the same checks under libFuzzer.
//! Failures are not persisted to files: a shrunk failing input becomes a
//! named regression test at the end of this file.

use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use bytes::BytesMut;
use miniftp::connection::{Connection, ConnectionError, PayloadFailure};
use miniftp::operation::Operation;
use miniftp::protocol::classic::{quote, split_arguments};
use miniftp::protocol::extended::{
    DIGEST_LEN, ErrorCode, HEADER_LEN, Header, Kind, MAX_MESSAGE_LEN, Message,
};
use miniftp::protocol::text::escape;
use miniftp::protocol::{ParseError, PayloadShape, TOKEN_LEN, Token, classic};
use miniftp::storage::path::Names;
use miniftp::storage::path::{MAX_NAME_LEN, MAX_PATH_LEN, PRIVATE_DIR, names_directory};
use miniftp::storage::{Removal, Storage, StorageError, VirtualPath};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `cases` cases, and no regression files written beside the sources.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

/// Runs one case's async part on a runtime of its own.
fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

// ---------------------------------------------------------------------------
// Classic command parsing
// ---------------------------------------------------------------------------

/// The real verbs, and near misses.
const VERBS: &[&str] = &[
    "cd",
    "mkdir",
    "rm",
    "ul",
    "dl",
    "info",
    "mv",
    "exit",
    "x-miniftp-extended",
    "CD",
    "Ul",
    "ulx",
    "ls",
    "dl\u{0}",
    "info\u{2028}",
];

/// What travels with a command, by its verb.
fn shape_of(verb: &str) -> PayloadShape {
    match verb {
        "ul" => PayloadShape::FromClient,
        "dl" | "info" => PayloadShape::FromServer,
        _ => PayloadShape::None,
    }
}

/// The payload that travels with an operation.
fn shape_of_operation(operation: &Operation) -> PayloadShape {
    match operation {
        Operation::Upload { .. } => PayloadShape::FromClient,
        Operation::Download { .. } | Operation::Size { .. } => PayloadShape::FromServer,
        _ => PayloadShape::None,
    }
}

/// An argument: anything, or text dense in what the syntax cares about.
fn argument() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z \t\"\\\\]{0,12}",
        "[ab\"\\\\]{0,6}",
        "\\PC{0,8}",
        "[\\x00-\\x1f\\x7f\u{85}\u{2028}]{0,4}",
    ]
}

/// How an argument is written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// Through `quote`: must parse back to the argument.
    Quoted,
    /// As is: whatever it parses to.
    Raw,
    /// With a quote opened and perhaps never closed.
    OpenQuote,
}

fn form() -> impl Strategy<Value = Form> {
    prop_oneof![4 => Just(Form::Quoted), 1 => Just(Form::Raw), 1 => Just(Form::OpenQuote)]
}

/// What a command of quoted arguments must parse to.
fn expected_request(verb: &str, args: &[String]) -> Result<Operation, ParseError> {
    let one = |usage: &'static str| match args {
        [path] => Ok(path.clone()),
        _ => Err(ParseError::Usage(usage)),
    };
    match verb {
        "cd" => one("cd PATH").map(|path| Operation::ChangeDirectory { path }),
        "mkdir" => one("mkdir PATH").map(|path| Operation::MakeDirectory {
            path,
            parents: false,
        }),
        "rm" => one("rm PATH").map(|path| Operation::Remove {
            path,
            recursive: false,
        }),
        "ul" => one("ul PATH").map(|path| Operation::Upload {
            path,
            size: None,
            resume: false,
        }),
        "dl" => one("dl PATH").map(|path| Operation::Download { path, offset: 0 }),
        "info" => one("info PATH").map(|path| Operation::Size { path }),
        "mv" => match args {
            [from, to] => Ok(Operation::Rename {
                from: from.clone(),
                to: to.clone(),
            }),
            _ => Err(ParseError::Usage("mv SRC DEST")),
        },
        "exit" if args.is_empty() => Ok(Operation::Exit),
        "exit" => Err(ParseError::Usage("exit")),
        other => Err(ParseError::UnknownVerb(escape(other))),
    }
}

/// An operation the classic protocol can say.
fn request() -> impl Strategy<Value = Operation> {
    prop_oneof![
        argument().prop_map(|path| Operation::ChangeDirectory { path }),
        argument().prop_map(|path| Operation::MakeDirectory {
            path,
            parents: false
        }),
        argument().prop_map(|path| Operation::Remove {
            path,
            recursive: false
        }),
        argument().prop_map(|path| Operation::Upload {
            path,
            size: None,
            resume: false
        }),
        argument().prop_map(|path| Operation::Download { path, offset: 0 }),
        argument().prop_map(|path| Operation::Size { path }),
        (argument(), argument()).prop_map(|(from, to)| Operation::Rename { from, to }),
        Just(Operation::Exit),
    ]
}

/// Whether text would break an echoed line or hide in it.
fn unprintable(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() || (c.is_whitespace() && c != ' '))
}

/// The checks every parsed line must pass, valid or not.
fn check_parse(line: &[u8]) -> Result<Result<Operation, ParseError>, TestCaseError> {
    let parsed = classic::parse(line);
    let shape = PayloadShape::of_command(line);
    match &parsed {
        Ok(request) => {
            // Whatever parses, encodes back to the same request, and the
            // payload shape (decided without parsing) agrees with it.
            prop_assert_eq!(
                classic::parse(classic::encode(request).unwrap().as_bytes()),
                Ok(request.clone())
            );
            prop_assert_eq!(shape, shape_of_operation(request));
        }
        Err(ParseError::UnknownVerb(verb)) => {
            prop_assert!(!unprintable(verb), "unknown verb echoed raw: {verb:?}");
        }
        Err(ParseError::NotUtf8) => prop_assert!(std::str::from_utf8(line).is_err()),
        Err(_) => {}
    }
    Ok(parsed)
}

proptest! {
    #![proptest_config(config(4096))]

    /// Arbitrary bytes, and bytes dense in verbs, quotes and white space.
    #[test]
    fn command_parsing_of_arbitrary_bytes(
        line in prop_oneof![
            vec(any::<u8>(), 0..256),
            vec(select(b"cdmkirulnfoxt \t\"\\\n\r\xff\xc3\xa9<>".to_vec()), 0..40),
        ]
    ) {
        let _ = check_parse(&line)?;
    }

    /// Real and near-miss verbs with arguments written every way.
    #[test]
    fn command_parsing_of_near_valid_commands(
        verb in select(VERBS),
        quote_verb in any::<bool>(),
        args in vec((argument(), form()), 0..4),
        gaps in vec("[ \t]{1,3}", 4),
        lead in "[ \t]{0,2}",
        trail in "[ \t]{0,2}",
    ) {
        let mut line = lead;
        match quote_verb {
            true => line.push_str(&format!("\"{verb}\"")),
            false => line.push_str(verb),
        }
        for ((arg, form), gap) in args.iter().zip(&gaps) {
            line.push_str(gap);
            match form {
                Form::Quoted => line.push_str(&quote(arg)),
                Form::Raw => line.push_str(arg),
                Form::OpenQuote => {
                    line.push('"');
                    line.push_str(arg);
                }
            }
        }
        line.push_str(&trail);
        let parsed = check_parse(line.as_bytes())?;
        if args.iter().all(|(_, form)| *form == Form::Quoted) {
            let words: Vec<String> = args.iter().map(|(arg, _)| arg.clone()).collect();
            prop_assert_eq!(parsed, expected_request(verb, &words));
            // The verb alone decides the payload, even for an invalid command.
            prop_assert_eq!(PayloadShape::of_command(line.as_bytes()), shape_of(verb));
        }
    }

    /// `quote` then `split_arguments` gives back the words, whatever the
    /// white space between them.
    #[test]
    fn quoting_round_trips(
        words in vec(argument(), 0..6),
        gaps in vec("[ \t]{1,3}", 6),
        lead in "[ \t]{0,2}",
        trail in "[ \t]{0,2}",
    ) {
        let mut line = lead;
        for (index, word) in words.iter().enumerate() {
            if index > 0 {
                line.push_str(&gaps[index]);
            }
            line.push_str(&quote(word));
        }
        line.push_str(&trail);
        prop_assert_eq!(split_arguments(&line), Ok(words));
    }

    /// Every request encodes to a line that parses back to it.
    #[test]
    fn requests_round_trip(request in request()) {
        prop_assert_eq!(classic::parse(classic::encode(&request).unwrap().as_bytes()), Ok(request));
    }

    /// Escaped text stays on one visible line; printable text is unchanged.
    #[test]
    fn escaping_keeps_one_line(text in any::<String>(), plain in "[ -~]{0,20}") {
        prop_assert!(!unprintable(&escape(&text)));
        prop_assert_eq!(escape(&plain), plain);
    }
}

// ---------------------------------------------------------------------------
// Classic framing through a Connection
// ---------------------------------------------------------------------------

const TOKEN: &[u8; TOKEN_LEN] = b"<Ab3X9kQw>";

/// A piece of a classic byte stream: tokens, parts of tokens, near misses,
/// noise, and runs long enough to pass a small limit.
fn wire_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => Just(TOKEN.to_vec()),
        2 => vec(any::<u8>(), 0..24),
        2 => vec(select(b"<>Ab3X9kQw".to_vec()), 0..16),
        1 => (1..TOKEN_LEN).prop_map(|n| TOKEN[..n].to_vec()),
        1 => (1..TOKEN_LEN).prop_map(|n| TOKEN[n..].to_vec()),
        1 => (0usize..200).prop_map(|n| vec![b'x'; n]),
    ]
}

/// The first occurrence of the token in `bytes`, the slow and obvious way.
fn find_token(bytes: &[u8]) -> Option<usize> {
    bytes.windows(TOKEN_LEN).position(|window| window == TOKEN)
}

/// Feeds `wire` into a duplex of `capacity` bytes in writes of the given
/// sizes (cycled), then closes it; returns the other end and the writer.
fn feed(
    wire: Vec<u8>,
    chunks: Vec<usize>,
    capacity: usize,
) -> (tokio::io::DuplexStream, tokio::task::JoinHandle<()>) {
    let (mut writer, reader) = tokio::io::duplex(capacity);
    let task = tokio::spawn(async move {
        let mut at = 0;
        for size in chunks.iter().cycle() {
            if at >= wire.len() {
                break;
            }
            let end = (at + size).min(wire.len());
            // The reader may stop early (an over-long message): fine.
            if writer.write_all(&wire[at..end]).await.is_err() {
                return;
            }
            at = end;
        }
    });
    (reader, task)
}

proptest! {
    #![proptest_config(config(4096))]

    /// Any stream, split anywhere, read as messages (with a small limit) or
    /// as streamed payloads: each message is exactly what preceded the
    /// first token, never longer than the limit; an over-long message is
    /// `TooLong`, a stream cut mid-message `ClosedMidMessage`.
    #[test]
    fn classic_framing_of_arbitrary_streams(
        pieces in vec(wire_piece(), 0..12),
        chunks in vec(1usize..=40, 1..8),
        capacity in 1usize..=64,
        limit in 0usize..=64,
        payload_limit in proptest::option::of(0u64..=64),
        modes in vec(any::<bool>(), 1..8),
    ) {
        let wire = pieces.concat();
        block_on(read_classic(wire, chunks, capacity, limit, payload_limit, modes))?;
    }
}

/// Reads `wire`, fed in writes of `chunks` bytes through a duplex of
/// `capacity`, as messages of at most `limit` bytes or as payloads (by
/// `modes`, cycled), and checks each against the stream cut at its tokens.
async fn read_classic(
    wire: Vec<u8>,
    chunks: Vec<usize>,
    capacity: usize,
    limit: usize,
    payload_limit: Option<u64>,
    modes: Vec<bool>,
) -> Result<(), TestCaseError> {
    let (stream, writer) = feed(wire.clone(), chunks, capacity);
    let mut connection = Connection::new(stream, Token::parse(TOKEN).unwrap());
    let mut rest = &wire[..];
    for as_payload in modes.iter().cycle() {
        let found = find_token(rest);
        if *as_payload {
            let mut sink = Vec::new();
            let read = connection.read_payload(&mut sink, payload_limit).await;
            let Some(end) = found else {
                prop_assert!(
                    matches!(read, Err(ConnectionError::ClosedMidMessage)),
                    "{read:?}"
                );
                break;
            };
            let receipt = read.map_err(|error| TestCaseError::fail(error.to_string()))?;
            prop_assert_eq!(receipt.received, end as u64);
            match payload_limit {
                Some(limit) if end as u64 > limit => {
                    prop_assert!(matches!(receipt.failure, Some(PayloadFailure::TooLarge)));
                    prop_assert!(sink.len() as u64 <= limit);
                    prop_assert!(rest.starts_with(&sink));
                }
                _ => {
                    prop_assert!(receipt.failure.is_none());
                    prop_assert_eq!(&sink[..], &rest[..end]);
                }
            }
            rest = &rest[end + TOKEN_LEN..];
        } else {
            let read = connection.read_message(limit).await;
            if let Ok(Some(message)) = &read {
                prop_assert!(message.len() <= limit);
            }
            match found {
                Some(end) if end <= limit => {
                    let message = read.map_err(|error| TestCaseError::fail(error.to_string()))?;
                    prop_assert_eq!(message.as_deref(), Some(&rest[..end]));
                    rest = &rest[end + TOKEN_LEN..];
                }
                Some(_) => {
                    prop_assert!(
                        matches!(read, Err(ConnectionError::TooLong { .. })),
                        "{read:?}"
                    );
                    break;
                }
                None if rest.is_empty() => {
                    prop_assert!(matches!(read, Ok(None)), "{read:?}");
                    break;
                }
                // Nothing can hold back more than a token's length
                // but one: the rest is over the limit, or cut short.
                None if rest.len() - (TOKEN_LEN - 1).min(rest.len()) > limit => {
                    prop_assert!(
                        matches!(read, Err(ConnectionError::TooLong { .. })),
                        "{read:?}"
                    );
                    break;
                }
                None => {
                    prop_assert!(
                        matches!(read, Err(ConnectionError::ClosedMidMessage)),
                        "{read:?}"
                    );
                    break;
                }
            }
        }
    }
    drop(connection);
    writer.await.expect("writer task");
    Ok(())
}

// ---------------------------------------------------------------------------
// Extended frames through a Connection
// ---------------------------------------------------------------------------

/// A frame of the extended protocol, as bytes: a well-formed message, a
/// data frame, or something else.
#[derive(Debug, Clone)]
enum Frame {
    Message(u32, Message),
    Data(u32, Vec<u8>),
}

impl Frame {
    fn encode(&self, out: &mut BytesMut) {
        match self {
            Frame::Message(id, message) => message.encode(*id, out),
            Frame::Data(id, bytes) => {
                let header = Header {
                    kind: Kind::Data,
                    id: *id,
                    length: bytes.len() as u64,
                };
                out.extend_from_slice(&header.encode());
                out.extend_from_slice(bytes);
            }
        }
    }
}

fn small_text() -> impl Strategy<Value = String> {
    prop_oneof!["\\PC{0,12}", "[a-z/.]{0,8}"]
}

fn frame() -> impl Strategy<Value = Frame> {
    let message = prop_oneof![
        small_text().prop_map(|path| Message::Request(Operation::ChangeDirectory { path })),
        small_text().prop_map(|path| Message::Request(Operation::Stat { path })),
        (small_text(), any::<bool>())
            .prop_map(|(path, recursive)| Message::Request(Operation::Remove { path, recursive })),
        (small_text(), small_text())
            .prop_map(|(from, to)| Message::Request(Operation::Rename { from, to })),
        (small_text(), any::<u64>(), any::<bool>()).prop_map(|(path, size, resume)| {
            Message::Request(Operation::Upload {
                path,
                size: Some(size),
                resume,
            })
        }),
        any::<[u8; DIGEST_LEN]>().prop_map(|digest| Message::End { digest }),
        small_text().prop_map(|message| Message::Failed {
            code: ErrorCode::NotFound,
            message,
        }),
        (any::<u64>(), any::<u64>()).prop_map(|(size, offset)| Message::Sending { size, offset }),
    ];
    prop_oneof![
        3 => (any::<u32>(), message).prop_map(|(id, message)| Frame::Message(id, message)),
        1 => (any::<u32>(), vec(any::<u8>(), 0..64)).prop_map(|(id, bytes)| Frame::Data(id, bytes)),
    ]
}

/// Noise to put between frames: headers of any kind and length, bytes.
fn noise() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<[u8; HEADER_LEN]>().prop_map(|header| header.to_vec()),
        (
            select(vec![0x01u8, 0x05, 0x10, 0x11, 0x21, 0x23, 0x7f]),
            any::<u32>(),
            0u64..80
        )
            .prop_map(|(kind, id, length)| {
                let mut header = vec![kind];
                header.extend_from_slice(&id.to_be_bytes());
                header.extend_from_slice(&length.to_be_bytes());
                header
            }),
        vec(any::<u8>(), 0..40),
    ]
}

proptest! {
    #![proptest_config(config(4096))]

    /// Frames split at any point come out as they went in; with noise mixed
    /// in, reading never panics, never takes a message body over the limit,
    /// and whatever decodes re-encodes to itself.
    #[test]
    fn extended_frames_of_arbitrary_streams(
        frames in vec(frame(), 0..8),
        noises in vec((0usize..8, noise()), 0..3),
        chunks in vec(1usize..=40, 1..8),
        capacity in 1usize..=64,
    ) {
        let mut wire = BytesMut::new();
        for (index, frame) in frames.iter().enumerate() {
            for (_, noise) in noises.iter().filter(|(at, _)| *at == index) {
                wire.extend_from_slice(noise);
            }
            frame.encode(&mut wire);
        }
        block_on(read_extended(wire.to_vec(), frames, noises.is_empty(), chunks, capacity))?;
    }
}

/// Reads `wire` (`frames`, with noise between them unless `clean`), fed in
/// writes of `chunks` bytes through a duplex of `capacity`, as the server
/// reads frames, and checks what comes out.
async fn read_extended(
    wire: Vec<u8>,
    frames: Vec<Frame>,
    clean: bool,
    chunks: Vec<usize>,
    capacity: usize,
) -> Result<(), TestCaseError> {
    let (stream, writer) = feed(wire, chunks, capacity);
    let mut connection = Connection::new(stream, Token::parse(TOKEN).unwrap());
    let mut received = Vec::new();
    loop {
        let header = match connection.read_header().await {
            Ok(Some(header)) => header,
            Ok(None) | Err(_) => break,
        };
        if header.kind == Kind::Data {
            let mut sink = Vec::new();
            match connection.read_data(header.length, &mut sink, |_| {}).await {
                Ok(written) => written.map_err(|error| TestCaseError::fail(error.to_string()))?,
                Err(_) => break,
            }
            prop_assert_eq!(sink.len() as u64, header.length);
            received.push(Frame::Data(header.id, sink));
            continue;
        }
        prop_assert!(header.length <= MAX_MESSAGE_LEN);
        let Ok(body) = connection.read_body(header.length).await else {
            break;
        };
        prop_assert_eq!(body.len() as u64, header.length);
        let Ok(message) = Message::decode(header.kind, &body) else {
            continue;
        };
        let mut again = BytesMut::new();
        message.encode(header.id, &mut again);
        let decoded = Header::decode(again[..HEADER_LEN].try_into().unwrap());
        prop_assert_eq!(
            decoded,
            Ok(Header {
                kind: header.kind,
                id: header.id,
                length: (again.len() - HEADER_LEN) as u64
            })
        );
        prop_assert_eq!(
            Message::decode(header.kind, &again[HEADER_LEN..]),
            Ok(message.clone())
        );
        received.push(Frame::Message(header.id, message));
    }
    if clean {
        prop_assert_eq!(format!("{received:?}"), format!("{frames:?}"));
    }
    drop(connection);
    writer.await.expect("writer task");
    Ok(())
}

// ---------------------------------------------------------------------------
// Path resolution, lexical
// ---------------------------------------------------------------------------

/// One component of a path as a client might write it.
fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("..".to_owned()),
        2 => Just(".".to_owned()),
        1 => Just(String::new()),
        3 => "[a-c]{1,2}",
        1 => Just(PRIVATE_DIR.to_owned()),
        1 => Just("...".to_owned()),
        2 => "\\PC{1,6}",
        1 => any::<String>(),
        1 => "[a\\x00-\\x1f\\x7f]{1,3}",
        1 => (MAX_NAME_LEN - 2..=MAX_NAME_LEN + 2).prop_map(|n| "n".repeat(n)),
        // Two bytes a character: 127 fit in a name, 128 do not.
        1 => (126usize..=129).prop_map(|n| "é".repeat(n)),
    ]
}

/// A path: components joined by one or more slashes, perhaps absolute,
/// perhaps with a trailing slash.
fn joined_path() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        vec((component(), 1usize..=2), 0..8),
        any::<bool>(),
    )
        .prop_map(|(absolute, parts, trailing)| {
            let mut path = String::new();
            if absolute {
                path.push('/');
            }
            for (index, (part, slashes)) in parts.iter().enumerate() {
                if index > 0 {
                    path.push_str(&"/".repeat(*slashes));
                }
                path.push_str(part);
            }
            if trailing {
                path.push('/');
            }
            path
        })
}

/// A joined path, anything at all, or a path around the length limit.
fn path_string() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => joined_path(),
        1 => any::<String>(),
        1 => (MAX_PATH_LEN - 4..=MAX_PATH_LEN + 4, "(a/|\\.\\./|/){1}").prop_map(|(n, unit)| {
            let mut path = unit.repeat(n / unit.len() + 1);
            path.truncate(n);
            path
        }),
    ]
}

/// The names of a resolved path, checked to be what a path inside the root
/// can hold (printable names, unless `names` allows any).
fn check_resolved(path: &VirtualPath, names_allowed: Names) -> Result<(), TestCaseError> {
    let names: Vec<&str> = path.components().collect();
    for name in &names {
        prop_assert!(
            !name.is_empty() && *name != "." && *name != "..",
            "{names:?}"
        );
        prop_assert!(!name.contains('/'), "{names:?}");
        prop_assert!(name.len() <= MAX_NAME_LEN, "{names:?}");
        prop_assert!(!name.contains('\0'), "{names:?}");
        if names_allowed == Names::Printable {
            prop_assert!(
                !name.bytes().any(|byte| byte < 0x20 || byte == 0x7f),
                "{names:?}"
            );
        }
    }
    prop_assert_ne!(names.first().copied(), Some(PRIVATE_DIR));
    prop_assert_eq!(path.is_root(), names.is_empty());
    let shown = path.to_string();
    prop_assert!(shown.starts_with('/'));
    prop_assert!(path.starts_with(&VirtualPath::root()));
    let relative = path.relative();
    prop_assert!(relative.is_relative());
    match path.is_root() {
        true => prop_assert_eq!(relative, PathBuf::from(".")),
        false => prop_assert!(
            relative
                .components()
                .all(|c| matches!(c, Component::Normal(_))),
            "{relative:?}"
        ),
    }
    // Canonical: shown absolute, it resolves to itself from anywhere.
    if shown.len() <= MAX_PATH_LEN {
        let again = VirtualPath::root().resolve_names(&shown, names_allowed);
        prop_assert_eq!(again.as_ref().ok(), Some(path), "{:?}", again);
    }
    Ok(())
}

/// The parts of a path that name something (not `.`, `..` or empty).
fn named_parts(path: &str) -> usize {
    path.split('/')
        .filter(|part| !matches!(*part, "" | "." | ".."))
        .count()
}

proptest! {
    #![proptest_config(config(4096))]

    /// Any argument from any directory resolves inside the root, or is
    /// refused; never a panic.
    #[test]
    fn path_resolution_stays_inside(current in path_string(), argument in path_string()) {
        check_resolution(&current, &argument)?;
    }

    /// A link's target: the same, but `..` above the root is an escape,
    /// refused, never clamped.
    #[test]
    fn link_target_resolution_refuses_escapes(current in path_string(), target in path_string()) {
        check_link_target(&current, &target)?;
    }
}

/// Resolves `argument` from the directory `current` names, and checks.
fn check_resolution(current: &str, argument: &str) -> Result<(), TestCaseError> {
    let cwd = VirtualPath::root().resolve(current).unwrap_or_default();
    check_resolved(&cwd, Names::Printable)?;
    let resolved = cwd.resolve(argument);
    let _ = names_directory(argument);
    if argument.is_empty() {
        prop_assert!(
            matches!(resolved, Err(StorageError::EmptyName)),
            "{resolved:?}"
        );
    } else if argument.len() > MAX_PATH_LEN {
        prop_assert!(
            matches!(resolved, Err(StorageError::NameTooLong)),
            "{resolved:?}"
        );
    }
    let absolute = argument.starts_with('/');
    if absolute {
        // The current directory plays no part.
        let from_root = VirtualPath::root().resolve(argument);
        prop_assert_eq!(format!("{from_root:?}"), format!("{resolved:?}"));
    }
    if let Ok(path) = &resolved {
        check_resolved(path, Names::Printable)?;
        let start = if absolute {
            0
        } else {
            cwd.components().count()
        };
        prop_assert!(path.components().count() <= start + named_parts(argument));
        if !absolute && !argument.split('/').any(|part| part == "..") {
            prop_assert!(path.starts_with(&cwd));
        }
    }
    Ok(())
}

/// Resolves `target` as a link's, from the directory `current` names, and
/// checks it against a walk that counts the depth.
fn check_link_target(current: &str, target: &str) -> Result<(), TestCaseError> {
    let cwd = VirtualPath::root().resolve(current).unwrap_or_default();
    let resolved = cwd.resolve_within(target);
    // How deep the walk goes, and whether it climbs above the root
    // before any name is refused.
    let mut depth = cwd.components().count() as isize;
    let mut climbs_out = false;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => depth -= 1,
            // A link's target may hold any name but one with a NUL.
            name if name.len() > MAX_NAME_LEN || name.contains('\0') => break,
            _ => depth += 1,
        }
        if depth < 0 {
            climbs_out = true;
            break;
        }
    }
    prop_assert_eq!(
        climbs_out,
        matches!(resolved, Err(StorageError::OutsideRoot)),
        "{:?}",
        resolved
    );
    if let Ok(path) = &resolved {
        // A link's target may name anything the filesystem allows.
        check_resolved(path, Names::Any)?;
        prop_assert_eq!(path.components().count() as isize, depth);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The jail on a real tree
// ---------------------------------------------------------------------------

/// What the outside holds; never to be read, changed or removed.
const MARKER: &[u8] = b"OUTSIDE-MARKER";

/// A shared root full of links, inside a directory that also holds an
/// "outside" sibling; the jail is the root, or `dir` in it (an account's
/// home, through `Storage::subtree`), and then the rest of the root is
/// outside too:
///
/// ```text
/// base/
///   outside/marker
///   jail/root/        the shared root
///     dir/file.txt  dir/back -> ..  dir/deep_up -> ../../../outside
///     dir/marker_up -> ../../outside/marker  dir/up_file -> ../file.txt
///     dir/home_abs -> <root>/dir/file.txt
///     empty/  file.txt
///     in_rel -> dir   in_abs -> <root>/dir   in_file -> dir/file.txt
///     up -> ../..     sibling -> ../../outside
///     out_abs -> <outside>   out_file -> <outside>/marker
///     loop_a -> loop_b   loop_b -> loop_a   self -> self
///     priv -> .miniftp   dangling -> nowhere
/// ```
///
/// No link points to `/etc` or another system directory: these tests may
/// run as root, and a broken jail must not be able to damage the machine.
struct Jail {
    base: TempDir,
    /// The shared root.
    root: PathBuf,
    /// What the client is confined to: the root, or a home in it.
    jail: PathBuf,
    outside: PathBuf,
}

impl Jail {
    fn new(home: bool) -> Jail {
        // On a tmpfs when there is one: the tree is built and removed for
        // every case, and on a journaled disk that churn (slowed further by
        // the storage's fsyncs) costs seconds per hundred cases.
        let shm = Path::new("/dev/shm");
        let base = match shm.is_dir() {
            true => TempDir::new_in(shm).or_else(|_| TempDir::new()),
            false => TempDir::new(),
        }
        .unwrap();
        let real = base.path().canonicalize().unwrap();
        let root = real.join("jail/root");
        let outside = real.join("outside");
        std::fs::create_dir_all(root.join("dir")).unwrap();
        std::fs::create_dir(root.join("empty")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("marker"), MARKER).unwrap();
        std::fs::write(root.join("file.txt"), b"inside").unwrap();
        std::fs::write(root.join("dir/file.txt"), b"inside dir").unwrap();
        let links: [(&Path, &str); 18] = [
            (Path::new("dir"), "in_rel"),
            (&root.join("dir"), "in_abs"),
            (Path::new("dir/file.txt"), "in_file"),
            (Path::new("../.."), "up"),
            (Path::new("../../outside"), "sibling"),
            (&outside, "out_abs"),
            (&outside.join("marker"), "out_file"),
            (Path::new("loop_b"), "loop_a"),
            (Path::new("loop_a"), "loop_b"),
            (Path::new("self"), "self"),
            (Path::new(PRIVATE_DIR), "priv"),
            (Path::new("nowhere"), "dangling"),
            (Path::new(".."), "dir/back"),
            (Path::new("../../../outside"), "dir/deep_up"),
            (Path::new("../../outside/marker"), "dir/marker_up"),
            (&root, "root_abs"),
            (Path::new("../file.txt"), "dir/up_file"),
            (&root.join("dir/file.txt"), "dir/home_abs"),
        ];
        for (target, link) in links {
            symlink(target, root.join(link)).unwrap();
        }
        Jail {
            base,
            jail: match home {
                true => root.join("dir"),
                false => root.clone(),
            },
            root,
            outside,
        }
    }

    /// The storage a client gets: the root, or its home in it.
    async fn storage(&self) -> Storage {
        let storage = Storage::open(&self.root).unwrap();
        if self.jail == self.root {
            return storage;
        }
        let home = VirtualPath::root().resolve("dir").unwrap();
        storage.subtree(&home).await.unwrap()
    }

    /// Everything under the base but the jail and the server's private
    /// directory: names, kinds, link targets, modes and contents.
    fn outside_snapshot(&self) -> BTreeMap<PathBuf, String> {
        let base = self.base.path().canonicalize().unwrap();
        let mut snapshot = BTreeMap::new();
        let mut pending = vec![base.clone()];
        while let Some(directory) = pending.pop() {
            for entry in std::fs::read_dir(&directory).unwrap() {
                let path = entry.unwrap().path();
                if path == self.jail || path == self.root.join(PRIVATE_DIR) {
                    continue;
                }
                let metadata = path.symlink_metadata().unwrap();
                let mode = metadata.permissions().mode();
                let description = if metadata.is_symlink() {
                    format!("link {:?}", std::fs::read_link(&path).unwrap())
                } else if metadata.is_dir() {
                    pending.push(path.clone());
                    format!("dir {mode:o}")
                } else {
                    format!("file {mode:o} {:?}", std::fs::read(&path).unwrap())
                };
                snapshot.insert(path.strip_prefix(&base).unwrap().to_owned(), description);
            }
        }
        snapshot
    }

    /// Where the kernel takes `virtual_path` (following every link), if
    /// anywhere.
    fn real(&self, path: &VirtualPath) -> Option<PathBuf> {
        self.jail.join(path.relative()).canonicalize().ok()
    }

    /// Whether a real path lies in the jail, and not in the server's
    /// private directory.
    fn shared(&self, real: &Path) -> bool {
        real.starts_with(&self.jail) && !real.starts_with(self.root.join(PRIVATE_DIR))
    }

    /// `path`'s parent, links followed, with `path`'s own name: where an
    /// operation on a link itself (rm, mv, an upload replacing it) acts.
    fn real_entry(&self, path: &VirtualPath) -> Option<PathBuf> {
        let parent = self.real(&path.parent())?;
        Some(parent.join(path.name()?))
    }
}

/// A storage operation with a client's path arguments (before resolution).
/// `$ROOT` and `$OUT` stand for the real paths of the root and the outside.
#[derive(Debug, Clone)]
enum JailStep {
    ChangeDirectory(String),
    Stat(String),
    List(String),
    Read(String),
    Upload(String, Vec<u8>),
    Resume(String, Vec<u8>),
    MakeDirectory(String),
    MakeDirectories(String),
    Remove(String, bool),
    Rename(String, String),
}

/// A path through the jail's tree: its names, the links out, and odd names.
fn jail_path() -> impl Strategy<Value = String> {
    // Files and directories twice: paths that exist are worth reaching.
    let inside = select(vec![
        "dir", "dir", "file.txt", "file.txt", "empty", "in_rel", "in_abs", "in_file", "back",
        "home_abs", "root_abs", "new", "new 📷",
    ]);
    let out = select(vec![
        "up",
        "sibling",
        "out_abs",
        "out_file",
        "deep_up",
        "up_file",
        "marker_up",
        "loop_a",
        "self",
        "priv",
        "dangling",
    ]);
    let odd = select(vec![
        "..",
        ".",
        "",
        PRIVATE_DIR,
        "uploads",
        "marker",
        "outside",
        "jail",
        "root",
        "$ROOT",
        "$OUT",
    ]);
    let name = prop_oneof![5 => inside, 3 => out, 2 => odd];
    (
        any::<bool>(),
        vec(name, 1..=3),
        any::<bool>(),
        proptest::option::weighted(0.05, prop_oneof![joined_path(), any::<String>()]),
    )
        .prop_map(|(absolute, names, trailing, odd)| {
            if let Some(odd) = odd {
                return odd;
            }
            let mut path = names.join("/");
            if absolute && !path.starts_with('$') {
                path.insert(0, '/');
            }
            if trailing {
                path.push('/');
            }
            path
        })
}

fn operation() -> impl Strategy<Value = JailStep> {
    let data = vec(any::<u8>(), 0..32);
    prop_oneof![
        2 => jail_path().prop_map(JailStep::ChangeDirectory),
        2 => jail_path().prop_map(JailStep::Stat),
        2 => jail_path().prop_map(JailStep::List),
        2 => jail_path().prop_map(JailStep::Read),
        2 => (jail_path(), data.clone()).prop_map(|(path, data)| JailStep::Upload(path, data)),
        1 => (jail_path(), data).prop_map(|(path, data)| JailStep::Resume(path, data)),
        2 => jail_path().prop_map(JailStep::MakeDirectory),
        1 => jail_path().prop_map(JailStep::MakeDirectories),
        2 => (jail_path(), any::<bool>()).prop_map(|(path, tree)| JailStep::Remove(path, tree)),
        2 => (jail_path(), jail_path()).prop_map(|(from, to)| JailStep::Rename(from, to)),
    ]
}

/// Runs one operation and checks where it acted.
async fn run(
    jail: &Jail,
    storage: &Storage,
    cwd: &mut VirtualPath,
    operation: &JailStep,
) -> Result<(), TestCaseError> {
    let expand = |argument: &str| {
        argument
            .replace("$ROOT", &jail.root.to_string_lossy())
            .replace("$OUT", &jail.outside.to_string_lossy())
    };
    // A real path longer than the kernel takes cannot be checked; such
    // paths are not tried here (the lexical properties cover them, and a
    // 4 KiB path costs a second an operation in a debug build).
    let resolve = |argument: &str| {
        cwd.resolve(&expand(argument))
            .ok()
            .filter(|path| jail.jail.join(path.relative()).as_os_str().len() < 4000)
    };
    match operation {
        JailStep::ChangeDirectory(argument) => {
            let Some(path) = resolve(argument) else {
                return Ok(());
            };
            if storage.check_directory(&path).await.is_ok() {
                let real = jail.real(&path);
                prop_assert!(
                    real.as_ref()
                        .is_some_and(|real| jail.shared(real) && real.is_dir()),
                    "cd {path} -> {real:?}"
                );
                *cwd = path;
            }
        }
        JailStep::Stat(argument) => {
            let Some(path) = resolve(argument) else {
                return Ok(());
            };
            if let Ok(entry) = storage.stat(&path).await {
                let real = jail.real(&path);
                prop_assert!(
                    real.as_ref().is_some_and(|real| jail.shared(real)),
                    "stat {path} -> {real:?}"
                );
                let real = real.unwrap();
                prop_assert_eq!(
                    entry.size,
                    if real.is_file() {
                        real.metadata().unwrap().len()
                    } else {
                        0
                    }
                );
            }
        }
        JailStep::List(argument) => {
            let Some(path) = resolve(argument) else {
                return Ok(());
            };
            if let Ok(entries) = storage.list_all(&path).await {
                let real = jail.real(&path);
                prop_assert!(
                    real.as_ref().is_some_and(|real| jail.shared(real)),
                    "list {path} -> {real:?}"
                );
                let real = real.unwrap();
                for entry in entries {
                    // Only the root's own is private; `dir/.miniftp` is a
                    // name like any other.
                    if real == jail.root {
                        prop_assert_ne!(&entry.name, PRIVATE_DIR);
                    }
                    let target = real.join(&entry.name).canonicalize();
                    prop_assert!(
                        target.as_ref().is_ok_and(|target| jail.shared(target)),
                        "list {path} shows {} -> {target:?}",
                        entry.name
                    );
                }
            }
        }
        JailStep::Read(argument) => {
            let Some(path) = resolve(argument) else {
                return Ok(());
            };
            if let Ok(download) = storage.open_file(&path).await {
                let size = download.size;
                let mut file = download.reader(0).await.unwrap();
                let real = jail.real(&path);
                prop_assert!(
                    real.as_ref()
                        .is_some_and(|real| jail.shared(real) && real.is_file()),
                    "read {path} -> {real:?}"
                );
                let mut contents = Vec::new();
                file.read_to_end(&mut contents).await.unwrap();
                prop_assert_eq!(contents.len() as u64, size);
                prop_assert_ne!(
                    &contents[..],
                    MARKER,
                    "read {} got the outside marker",
                    path
                );
            }
        }
        JailStep::Upload(argument, data) | JailStep::Resume(argument, data) => {
            let Some(path) = resolve(argument) else {
                return Ok(());
            };
            // Where it lands, found before: the upload may replace a link
            // its own path went through (`root_abs/root_abs`).
            let real = jail.real_entry(&path);
            let upload = match operation {
                JailStep::Resume(..) => {
                    storage
                        .create_upload(&path, Some(data.len() as u64), true)
                        .await
                }
                _ => storage.create_upload(&path, None, false).await,
            };
            let Ok(mut upload) = upload else {
                return Ok(());
            };
            upload.write_all(data).await.unwrap();
            if storage.commit(upload).await.is_ok() {
                // A link at the end is replaced, never written through.
                prop_assert!(
                    real.as_ref().is_some_and(|real| jail.shared(real)),
                    "upload {path} -> {real:?}"
                );
                let real = real.unwrap();
                prop_assert!(
                    real.symlink_metadata()
                        .is_ok_and(|metadata| metadata.is_file()),
                    "upload {path}: {real:?} not a file"
                );
                prop_assert_eq!(&std::fs::read(&real).unwrap(), data);
            }
        }
        JailStep::MakeDirectory(argument) | JailStep::MakeDirectories(argument) => {
            let Some(path) = resolve(argument) else {
                return Ok(());
            };
            let made = match operation {
                JailStep::MakeDirectory(_) => storage.make_directory(&path, false).await,
                _ => storage.make_directory(&path, true).await,
            };
            if made.is_ok() {
                let real = jail.real(&path);
                prop_assert!(
                    real.as_ref()
                        .is_some_and(|real| jail.shared(real) && real.is_dir()),
                    "mkdir {path} -> {real:?}"
                );
            }
        }
        JailStep::Remove(argument, tree) => {
            let Some(path) = resolve(argument) else {
                return Ok(());
            };
            // Where it is before it goes.
            let real = jail.real_entry(&path);
            let removal = if *tree { Removal::Tree } else { Removal::Entry };
            if storage.remove(&path, removal).await.is_ok() {
                prop_assert!(
                    real.as_ref().is_some_and(|real| jail.shared(real)),
                    "rm {path} -> {real:?}"
                );
                prop_assert!(
                    real.unwrap().symlink_metadata().is_err(),
                    "rm {path}: still there"
                );
            }
        }
        JailStep::Rename(from_argument, to_argument) => {
            let (Some(from), Some(to)) = (resolve(from_argument), resolve(to_argument)) else {
                return Ok(());
            };
            let source = jail.real_entry(&from);
            let into = names_directory(&expand(to_argument));
            if let Ok(destination) = storage.rename(&from, &to, into).await {
                prop_assert!(
                    source.as_ref().is_some_and(|real| jail.shared(real)),
                    "mv {from} {to}: source {source:?}"
                );
                prop_assert!(
                    source.unwrap().symlink_metadata().is_err(),
                    "mv {from} {to}: source still there"
                );
                let real = jail.real_entry(&destination);
                prop_assert!(
                    real.as_ref()
                        .is_some_and(|real| jail.shared(real) && real.symlink_metadata().is_ok()),
                    "mv {from} {to} -> {real:?}"
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(1024))]

    /// Arbitrary operations on arbitrary paths through links that lead
    /// inside, outside, nowhere and round in circles, in the whole root or
    /// in a home: nothing outside the jail is ever created, changed or
    /// removed, and whatever succeeds acted inside it (and outside the
    /// server's private directory).
    #[test]
    fn the_jail_holds_on_a_real_tree(home in any::<bool>(), operations in vec(operation(), 1..6)) {
        run_in_a_fresh_jail(home, &operations)?;
    }
}

/// Runs `operations` in a fresh jail (the root, or a home), checking after
/// each that nothing outside it changed.
fn run_in_a_fresh_jail(home: bool, operations: &[JailStep]) -> Result<(), TestCaseError> {
    let jail = Jail::new(home);
    let before = jail.outside_snapshot();
    block_on(async {
        let storage = jail.storage().await;
        let mut cwd = VirtualPath::root();
        for operation in operations {
            run(&jail, &storage, &mut cwd, operation).await?;
            prop_assert_eq!(&jail.outside_snapshot(), &before, "after {:?}", operation);
            prop_assert!(
                jail.jail
                    .symlink_metadata()
                    .is_ok_and(|metadata| metadata.is_dir())
            );
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Regressions: inputs the properties once failed on, kept as named cases
// ---------------------------------------------------------------------------

/// An upload through an absolute link to the root, to that link's own name,
/// replaces the link (the checker once looked for the file through the link
/// the upload had just replaced).
#[test]
fn an_upload_through_a_link_to_the_root_replaces_that_link() {
    for operation in [
        JailStep::Resume("root_abs/root_abs".into(), Vec::new()),
        JailStep::Upload("root_abs/root_abs".into(), b"x".to_vec()),
    ] {
        run_in_a_fresh_jail(false, &[operation]).unwrap();
    }
}

/// A `.miniftp` below the root is an ordinary name, and listed (the checker
/// once refused it anywhere).
#[test]
fn a_private_name_below_the_root_is_an_ordinary_name() {
    let operations = [
        JailStep::Upload("dir/.miniftp".into(), Vec::new()),
        JailStep::List("in_rel".into()),
        JailStep::List("/".into()),
    ];
    run_in_a_fresh_jail(false, &operations).unwrap();
}
