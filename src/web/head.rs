//! Heads on the wire, for the connection's own answers: a request head
//! found in a growing buffer and parsed by `httparse` (hyper's own parser,
//! with hyper's limits) into an [`http::Request`], and a file answer's head
//! encoded the way hyper encodes it. Pure: no I/O.

use axum::http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, Version, header,
};

/// The most headers a request may carry: hyper's own limit, so that a
/// head this module refuses is one hyper refuses too.
const MAX_HEADERS: usize = 100;

/// What a buffer holds, seen from its start.
#[derive(Debug)]
pub enum Head {
    /// Not a whole head yet: read more.
    Partial,
    /// A whole head of `length` bytes, and the request it asks (its body,
    /// if any, follows in the buffer).
    Complete {
        /// The request, without its body.
        request: Request<()>,
        /// How many bytes of the buffer it took.
        length: usize,
    },
    /// A head that is not for us to judge (malformed, too many headers, a
    /// value `http` refuses): hyper answers it, as it would have.
    Refused,
}

/// Finds request heads in a buffer that grows as bytes arrive. It
/// remembers how far it has looked for the blank line that ends a head,
/// so that a head trickled a byte at a time is parsed once, when whole.
#[derive(Debug, Default)]
pub struct HeadScanner {
    searched: usize,
}

impl HeadScanner {
    /// What `buffer` holds from its start. After a [`Head::Complete`], the
    /// caller consumes the head's bytes and the scan starts again.
    pub fn scan(&mut self, buffer: &[u8]) -> Head {
        loop {
            // A blank line may straddle the bytes already searched: back off
            // by its longest form less one ("\n\r\n").
            let from = self.searched.saturating_sub(2).min(buffer.len());
            let Some(end) = blank_line(&buffer[from..]).map(|end| from + end) else {
                self.searched = buffer.len();
                return Head::Partial;
            };
            match parse(buffer) {
                // Empty lines before a request count for nothing: a blank
                // line among them ends no head.
                Ok(None) => self.searched = end,
                Ok(Some((request, length))) => {
                    self.searched = 0;
                    return Head::Complete { request, length };
                }
                Err(()) => {
                    self.searched = 0;
                    return Head::Refused;
                }
            }
        }
    }
}

/// Where the first blank line in `bytes` ends (a head ends in `\r\n\r\n`,
/// or, as `httparse` allows, bare line feeds).
fn blank_line(bytes: &[u8]) -> Option<usize> {
    let crlf = memchr::memmem::find(bytes, b"\n\r\n").map(|at| at + 3);
    let lf = memchr::memmem::find(bytes, b"\n\n").map(|at| at + 2);
    match (crlf, lf) {
        (Some(crlf), Some(lf)) => Some(crlf.min(lf)),
        (crlf, lf) => crlf.or(lf),
    }
}

/// A request head at the start of `bytes`: `Ok(None)` while incomplete,
/// `Err(())` for anything hyper would refuse.
fn parse(bytes: &[u8]) -> Result<Option<(Request<()>, usize)>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let length = match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let method = Method::from_bytes(parsed.method.ok_or(())?.as_bytes()).map_err(|_| ())?;
    let uri = Uri::try_from(parsed.path.ok_or(())?).map_err(|_| ())?;
    let version = match parsed.version {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    let map = request.headers_mut();
    map.reserve(parsed.headers.len());
    for header in parsed.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| ())?;
        let value = HeaderValue::from_bytes(header.value).map_err(|_| ())?;
        map.append(name, value);
    }
    Ok(Some((request, length)))
}

/// Whether the connection may answer `request` itself, should its answer
/// be a file: a `GET` or `HEAD` in HTTP/1.1 with no body and no upgrade or
/// expectation. Anything else is hyper's to serve.
pub fn may_answer(request: &Request<()>) -> bool {
    let headers = request.headers();
    matches!(*request.method(), Method::GET | Method::HEAD)
        && request.version() == Version::HTTP_11
        && !headers.contains_key(header::CONTENT_LENGTH)
        && !headers.contains_key(header::TRANSFER_ENCODING)
        && !headers.contains_key(header::UPGRADE)
        && !headers.contains_key(header::EXPECT)
}

/// How many body bytes follow the head of `request`, when they are framed
/// by a length alone (`Content-Length`, or none) in HTTP/1.1 and the
/// connection stays HTTP after it; `None` otherwise (chunks, an upgrade,
/// HTTP/1.0, a length hyper would refuse), where only hyper knows where
/// the request ends.
pub fn body_length(request: &Request<()>) -> Option<u64> {
    let headers = request.headers();
    if request.version() != Version::HTTP_11
        || request.method() == Method::CONNECT
        || headers.contains_key(header::TRANSFER_ENCODING)
        || headers.contains_key(header::UPGRADE)
    {
        return None;
    }
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let Some(first) = lengths.next() else {
        return Some(0);
    };
    let length = digits(first)?;
    // Every other value must say the same (hyper's rule).
    lengths
        .all(|other| digits(other) == Some(length))
        .then_some(length)
}

/// A header value that is a number in decimal digits, and nothing else.
fn digits(value: &HeaderValue) -> Option<u64> {
    let bytes = value.as_bytes();
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Whether the client asks to close the connection after this request
/// (a `close` option in any `Connection` header, as hyper reads it).
pub fn wants_close(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            value
                .split(',')
                .any(|option| option.trim().eq_ignore_ascii_case("close"))
        })
    })
}

/// A response's head as hyper writes it for an HTTP/1.1 client: the status
/// line, the headers in the map's order, `connection: close` when the
/// connection ends after this answer, and the date (`date`, an HTTP date)
/// unless the response has one.
pub fn encode<B>(response: &Response<B>, close: bool, date: &str) -> Vec<u8> {
    let status = response.status();
    let headers = response.headers();
    let mut head = Vec::with_capacity(64 + headers.len() * 48);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    head.extend_from_slice(b"\r\n");
    let mut line = |name: &[u8], value: &[u8]| {
        head.extend_from_slice(name);
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    };
    for (name, value) in headers {
        line(name.as_str().as_bytes(), value.as_bytes());
    }
    if close && !wants_close(headers) {
        line(b"connection", b"close");
    }
    if !headers.contains_key(header::DATE) {
        line(b"date", date.as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn complete(head: &Head) -> (&Request<()>, usize) {
        match head {
            Head::Complete { request, length } => (request, *length),
            other => panic!("not a whole head: {other:?}"),
        }
    }

    #[test]
    fn a_head_is_parsed_into_a_request_and_what_follows_is_left() {
        let bytes = b"GET /a%20b?download HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\nGET /next";
        let head = HeadScanner::default().scan(bytes);
        let (request, length) = complete(&head);
        assert_eq!(length, bytes.len() - "GET /next".len());
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri().path(), "/a%20b");
        assert_eq!(request.uri().query(), Some("download"));
        assert_eq!(request.version(), Version::HTTP_11);
        assert_eq!(request.headers()["range"], "bytes=0-9");
        assert!(may_answer(request));
    }

    #[test]
    fn a_head_trickled_a_byte_at_a_time_is_whole_only_at_its_blank_line() {
        let bytes = b"\r\nHEAD /f HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n";
        let mut scanner = HeadScanner::default();
        for end in 1..bytes.len() {
            assert!(
                matches!(scanner.scan(&bytes[..end]), Head::Partial),
                "{end} bytes"
            );
        }
        let head = scanner.scan(bytes);
        let (request, length) = complete(&head);
        assert_eq!((request.method(), length), (&Method::HEAD, bytes.len()));
    }

    #[test]
    fn bare_line_feeds_end_a_head_too() {
        let head = HeadScanner::default().scan(b"GET / HTTP/1.1\nHost: x\n\n");
        assert_eq!(complete(&head).1, 24);
    }

    #[test]
    fn what_hyper_would_refuse_is_left_to_hyper() {
        for bytes in [
            &b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"[..],
            b"G\x01T / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/3.0\r\n\r\n",
        ] {
            assert!(
                matches!(HeadScanner::default().scan(bytes), Head::Refused),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        let many: String = (0..=MAX_HEADERS).map(|n| format!("X-{n}: y\r\n")).collect();
        let bytes = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(
            HeadScanner::default().scan(bytes.as_bytes()),
            Head::Refused
        ));
    }

    #[test]
    fn only_plain_gets_and_heads_of_http_1_1_may_be_answered_here() {
        for (bytes, expected) in [
            (&b"GET / HTTP/1.1\r\n\r\n"[..], true),
            (b"HEAD / HTTP/1.1\r\n\r\n", true),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", false),
            (b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", false),
            (
                b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
            ),
            (b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", false),
            (b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n", false),
            (b"PROPFIND / HTTP/1.1\r\n\r\n", false),
        ] {
            let head = HeadScanner::default().scan(bytes);
            assert_eq!(
                may_answer(complete(&head).0),
                expected,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn bodies_framed_by_a_length_alone_are_measured() {
        for (bytes, expected) in [
            (&b"GET / HTTP/1.1\r\n\r\n"[..], Some(0)),
            (b"PUT /a HTTP/1.1\r\nContent-Length: 12\r\n\r\n", Some(12)),
            (
                b"PUT /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
                Some(3),
            ),
            (
                b"PUT /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                None,
            ),
            (b"PUT /a HTTP/1.1\r\nContent-Length: +3\r\n\r\n", None),
            (
                b"PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                None,
            ),
            (b"PUT /a HTTP/1.0\r\nContent-Length: 3\r\n\r\n", None),
            (b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n", None),
            (b"CONNECT a:1 HTTP/1.1\r\n\r\n", None),
        ] {
            let head = HeadScanner::default().scan(bytes);
            assert_eq!(
                body_length(complete(&head).0),
                expected,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn a_close_option_is_found_among_others() {
        let head = HeadScanner::default()
            .scan(b"GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: TE, Close\r\n\r\n");
        assert!(wants_close(complete(&head).0.headers()));
        let head = HeadScanner::default().scan(b"GET / HTTP/1.1\r\nConnection: closed\r\n\r\n");
        assert!(!wants_close(complete(&head).0.headers()));
    }

    #[test]
    fn a_response_head_is_written_as_hyper_writes_it() {
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(10));
        headers.insert(header::ETAG, HeaderValue::from_static("\"a-1\""));
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(
            String::from_utf8(encode(&response, false, date)).unwrap(),
            "HTTP/1.1 206 Partial Content\r\ncontent-length: 10\r\netag: \"a-1\"\r\n\
             date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
        );
        assert!(
            String::from_utf8(encode(&response, true, date))
                .unwrap()
                .ends_with("etag: \"a-1\"\r\nconnection: close\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n")
        );
    }
}
