//! The path of a request, from the URL to a virtual path: pure.
//!
//! Each segment of the raw path is percent-decoded once (so `%252e` stays
//! the name `%2e`, never `.`), and refused when it decodes to what a name
//! cannot hold here: `.` or `..`, a `/` or `\`, a control character, bytes
//! that are not UTF-8. What passes is handed to the executor, whose
//! resolver and storage's jail then apply as to every other way in: this
//! check only makes sure that what a browser or a WebDAV client meant is
//! what the executor is asked, and says so clearly when it is not.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// A request's path, decoded and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebPath {
    /// The virtual path, absolute (`/` for the root, no trailing `/`).
    pub path: String,
    /// Whether the URL ended in `/` (a directory's address).
    pub trailing_slash: bool,
}

/// Why a path is refused (the short text of a 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathRefusal {
    /// Not an absolute path.
    #[error("the path must start with /")]
    NotAbsolute,
    /// A segment is `.` or `..`, literally or encoded.
    #[error("the path may not contain . or .. segments")]
    DotSegment,
    /// A segment decodes to a `/` or a `\`.
    #[error("a name may not contain an encoded / or \\")]
    EncodedSeparator,
    /// A segment decodes to a control character.
    #[error("a name may not contain control characters")]
    ControlCharacter,
    /// A segment decodes to bytes that are not UTF-8.
    #[error("the path is not UTF-8")]
    NotUtf8,
}

impl WebPath {
    /// Decodes and checks the raw path of a URL (without its query).
    pub fn decode(raw: &str) -> Result<WebPath, PathRefusal> {
        if !raw.starts_with('/') {
            return Err(PathRefusal::NotAbsolute);
        }
        let mut names = Vec::new();
        for segment in raw.split('/') {
            let name = percent_decode_str(segment)
                .decode_utf8()
                .map_err(|_| PathRefusal::NotUtf8)?;
            match &*name {
                "" => continue,
                "." | ".." => return Err(PathRefusal::DotSegment),
                _ => {}
            }
            if name.contains(['/', '\\']) {
                return Err(PathRefusal::EncodedSeparator);
            }
            if name.chars().any(char::is_control) {
                return Err(PathRefusal::ControlCharacter);
            }
            names.push(name.into_owned());
        }
        Ok(WebPath {
            path: format!("/{}", names.join("/")),
            trailing_slash: raw.len() > 1 && raw.ends_with('/'),
        })
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.path == "/"
    }

    /// The last name (empty for the root).
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or_default()
    }

    /// The containing directory's path (the root's is the root).
    pub fn parent(&self) -> String {
        match self.path.rsplit_once('/') {
            Some(("", _)) | None => "/".to_owned(),
            Some((parent, _)) => parent.to_owned(),
        }
    }
}

/// What is escaped in a URL path segment: everything but unreserved
/// characters, so that a name always reads back as itself.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'\'')
    .add(b'+')
    .add(b',')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The URL of a virtual path (each name percent-encoded), with a trailing
/// `/` when it names a directory.
pub fn url_of(path: &str, directory: bool) -> String {
    let mut url = String::new();
    for name in path.split('/').filter(|name| !name.is_empty()) {
        url.push('/');
        url.extend(utf8_percent_encode(name, SEGMENT));
    }
    if directory || url.is_empty() {
        url.push('/');
    }
    url
}

/// One name, percent-encoded as a URL segment (or an RFC 5987 value).
pub fn encode_segment(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_once_and_refuses_what_a_name_cannot_be() {
        let ok = |raw: &str| WebPath::decode(raw).map(|path| path.path);
        assert_eq!(ok("/").unwrap(), "/");
        assert_eq!(ok("/a/b/").unwrap(), "/a/b");
        assert_eq!(ok("//a//b").unwrap(), "/a/b");
        assert_eq!(ok("/caf%C3%A9%20x").unwrap(), "/café x");
        assert_eq!(ok("/%252e%252e").unwrap(), "/%2e%2e");
        assert_eq!(ok("/a%2Bb+c").unwrap(), "/a+b+c");
        for (raw, refusal) in [
            ("a", PathRefusal::NotAbsolute),
            ("/..", PathRefusal::DotSegment),
            ("/a/../b", PathRefusal::DotSegment),
            ("/./a", PathRefusal::DotSegment),
            ("/%2e%2e/etc", PathRefusal::DotSegment),
            ("/%2E%2e", PathRefusal::DotSegment),
            ("/.%2e", PathRefusal::DotSegment),
            ("/a%2f..%2f..%2fetc", PathRefusal::EncodedSeparator),
            ("/..%2fetc", PathRefusal::EncodedSeparator),
            ("/..%5c..%5cetc", PathRefusal::EncodedSeparator),
            ("/a%5Cb", PathRefusal::EncodedSeparator),
            ("/a%00b", PathRefusal::ControlCharacter),
            ("/a%0Ab", PathRefusal::ControlCharacter),
            ("/%ff", PathRefusal::NotUtf8),
            ("/%c0%ae%c0%ae", PathRefusal::NotUtf8),
        ] {
            assert_eq!(WebPath::decode(raw), Err(refusal), "{raw}");
        }
    }

    #[test]
    fn urls_read_back_as_the_names() {
        for name in [
            "a b",
            "café",
            "100%",
            "a#b?c",
            "<img src=x>",
            "日本",
            "a+b",
            "x\\y",
        ] {
            let url = url_of(&format!("/d/{name}"), false);
            assert!(!url[3..].contains('/'), "{url}");
            if !name.contains('\\') {
                assert_eq!(WebPath::decode(&url).unwrap().path, format!("/d/{name}"));
            }
        }
        assert_eq!(url_of("/", true), "/");
        assert_eq!(url_of("/a", true), "/a/");
        assert_eq!(WebPath::decode("/a/b").unwrap().parent(), "/a");
        assert_eq!(WebPath::decode("/a").unwrap().parent(), "/");
    }
}
