//! Downloads: a file with its type, its name for any script, and byte
//! ranges (so browsers and `curl -C -` resume); a folder as a zip archive,
//! streamed as it is written (stored, not compressed: a file's bytes pass
//! through a small buffer, whatever the tree holds; only the archive's
//! directory at the end grows, by an entry per file).
//!
//! Every file is opened and finished through the executor, so each one
//! gets its log line and the jail applies to every name in a tree.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio_util::compat::FuturesAsyncWriteCompatExt;
use tokio_util::io::ReaderStream;

use super::Answer;
use super::path::encode_segment;
use super::reply;
use crate::executor::{Executor, Outcome, OutgoingDownload};
use crate::operation::{Entry, EntryKind, ErrorCode, Failure, Operation};

/// How much of a file is read at a time.
const READ_SIZE: usize = 256 * 1024;

/// How an answer names the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Shown by the browser when it can (a link's click).
    Inline,
    /// Saved (the page's download button, `?download`).
    Attachment,
}

/// A `Content-Disposition` value for `name`: an ASCII fallback and the
/// exact name in RFC 5987 form, so any Unicode name arrives whole.
pub fn content_disposition(disposition: Disposition, name: &str) -> HeaderValue {
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' && c != '%' => c,
            _ => '_',
        })
        .collect();
    let kind = match disposition {
        Disposition::Inline => "inline",
        Disposition::Attachment => "attachment",
    };
    let value = format!(
        "{kind}; filename=\"{fallback}\"; filename*=UTF-8''{}",
        encode_segment(name)
    );
    HeaderValue::from_str(&value).expect("an ASCII header value")
}

/// The entity tag of a file (quoted, for the `ETag` header).
pub fn etag(entry: &Entry) -> String {
    format!("\"{}\"", entity_tag(entry))
}

/// The entity tag of an entry, unquoted: its size and modification time
/// in microseconds, as dav-server writes it, so that a tag from a `GET`
/// works in a WebDAV `If` header.
pub fn entity_tag(entry: &Entry) -> String {
    let modified = entry
        .modified
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    let micros = modified.as_secs() * 1_000_000 + u64::from(modified.subsec_micros());
    match entry.kind == crate::operation::EntryKind::File && entry.size > 0 {
        true => format!("{:x}-{micros:x}", entry.size),
        false => format!("{micros:x}"),
    }
}

/// A `Range` header's one range, resolved against `size`: `Ok(None)` for
/// the whole file (no header, several ranges, or a form we ignore),
/// `Err(())` when unsatisfiable.
pub fn byte_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.and_then(|header| header.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (start, end) = (start.trim(), end.trim());
    let range = match (start.parse::<u64>(), end.parse::<u64>()) {
        (Ok(start), Ok(end)) if start <= end => (start, end.min(size.saturating_sub(1))),
        (Ok(_), Ok(_)) => return Ok(None),
        (Ok(start), Err(_)) if end.is_empty() => (start, size.saturating_sub(1)),
        (Err(_), Ok(suffix)) if start.is_empty() => {
            if suffix == 0 {
                return Err(());
            }
            (size.saturating_sub(suffix), size.saturating_sub(1))
        }
        _ => return Ok(None),
    };
    if range.0 >= size {
        return Err(());
    }
    Ok(Some(range))
}

/// A file's answer: its head as the rules below give it (status, type,
/// name, range, tag), and for a `GET` the bytes that follow. The
/// connection sends those by `sendfile` when it can;
/// [`FileAnswer::into_response`] streams them through hyper.
pub struct FileAnswer {
    /// The status and headers; its body is empty.
    pub head: Response,
    /// The bytes to send: none for `HEAD`.
    pub body: Option<Transfer>,
}

impl FileAnswer {
    /// The answer as hyper sends it: the head, and the bytes streamed.
    pub fn into_response(self) -> Response {
        let mut response = self.head;
        if let Some(transfer) = self.body {
            *response.body_mut() = transfer.into_body();
        }
        response
    }
}

/// A file's bytes on their way to a client: a download opened through the
/// executor, and finished there, so that its log line says how many went.
pub struct Transfer {
    executor: Executor,
    outgoing: OutgoingDownload,
    source: Source,
    length: u64,
}

/// Where a transfer's bytes come from.
enum Source {
    /// A second handle on the local file, read from `start`.
    Local { file: std::fs::File, start: u64 },
    /// A backend's reader, already at the start.
    Reader(Box<dyn tokio::io::AsyncRead + Send + Unpin>),
}

impl Transfer {
    /// The local file and where in it the bytes start, when the file is on
    /// the local disk (for `sendfile`).
    pub fn local_file(&self) -> Option<(&std::fs::File, u64)> {
        match &self.source {
            Source::Local { file, start } => Some((file, *start)),
            Source::Reader(_) => None,
        }
    }

    /// How many bytes the answer's head promises.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Ends the download in the executor, which logs its line: `sent`
    /// bytes went, and the sending ended there because of `error`, if any.
    pub fn finish(mut self, sent: u64, error: Option<&std::io::Error>) {
        let failure = ended(sent, self.length, error);
        let _ = self.executor.finish_download(self.outgoing, sent, failure);
    }

    /// The bytes as a body for hyper: a file on the local disk is read
    /// straight into the buffers that go to the socket, the next one read
    /// while one is sent.
    fn into_body(self) -> Body {
        let chunks = match self.source {
            Source::Local { file, start } => local_chunks(file, start, self.length).boxed(),
            Source::Reader(reader) => {
                ReaderStream::with_capacity(reader.take(self.length), READ_SIZE).boxed()
            }
        };
        Body::from_stream(sent_stream(
            self.executor,
            self.outgoing,
            chunks,
            self.length,
        ))
    }
}

/// How a download ended, for its log line: `sent` of `length` bytes went,
/// and the sending stopped there because of `error`, if any.
fn ended(sent: u64, length: u64, error: Option<&std::io::Error>) -> Option<Failure> {
    match error {
        Some(error) => Some(Failure::new(
            ErrorCode::Internal,
            format!("sending failed: {error}"),
        )),
        None => (sent != length)
            .then(|| Failure::new(ErrorCode::Internal, "the file shrank while it was sent")),
    }
}

/// Answers a file (or its headers, for `HEAD`), from the executor's
/// download, honouring `Range` and `If-Range`.
pub async fn file(
    mut executor: Executor,
    path: &str,
    entry: &Entry,
    method: &Method,
    headers: &HeaderMap,
    disposition: Disposition,
) -> Answer {
    let tag = etag(entry);
    let if_range_matches = headers
        .get(header::IF_RANGE)
        .is_none_or(|value| value.to_str().is_ok_and(|value| value == tag));
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .any(|one| one.trim() == tag || one.trim() == "*")
        })
    {
        let mut response = reply::text(StatusCode::NOT_MODIFIED, "");
        *response.body_mut() = Body::empty();
        response
            .headers_mut()
            .insert(header::ETAG, HeaderValue::from_str(&tag).expect("hex"));
        return response.into();
    }
    let range = match if_range_matches {
        true => byte_range(
            headers
                .get(header::RANGE)
                .and_then(|value| value.to_str().ok()),
            entry.size,
        ),
        false => Ok(None),
    };
    let range = match range {
        Ok(range) => range,
        Err(()) => {
            let mut response = reply::text(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "the range is past the end",
            );
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{}", entry.size)).expect("digits"),
            );
            return response.into();
        }
    };
    let (start, length) = match range {
        Some((start, end)) => (start, end - start + 1),
        None => (0, entry.size),
    };
    let mut response = Response::new(Body::empty());
    let answer_headers = response.headers_mut();
    let mime = mime_guess::from_path(entry.name.as_str()).first_or_octet_stream();
    let content_type = match mime.type_() == mime_guess::mime::TEXT {
        true => format!("{mime}; charset=utf-8"),
        false => mime.to_string(),
    };
    answer_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    answer_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    answer_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    answer_headers.insert(header::ETAG, HeaderValue::from_str(&tag).expect("hex"));
    if let Some(modified) = entry.modified {
        answer_headers.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_str(&http_date(modified)).expect("a date"),
        );
    }
    answer_headers.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(disposition, &entry.name),
    );
    // A shared HTML file runs in a sandbox, never as this site's page.
    answer_headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    answer_headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some((start, end)) = range {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        response.headers_mut().insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{end}/{}", entry.size)).expect("digits"),
        );
    }
    if method == Method::HEAD {
        return Answer::File(Box::new(FileAnswer {
            head: response,
            body: None,
        }));
    }
    let outgoing = match executor
        .execute(Operation::Download {
            path: path.to_owned(),
            offset: start,
        })
        .await
    {
        Ok(Outcome::Download(outgoing)) => outgoing,
        Ok(_) => {
            return reply::text(StatusCode::INTERNAL_SERVER_ERROR, "unexpected answer").into();
        }
        Err(failure) => return reply::failure(&failure).into(),
    };
    let source = match outgoing.download.local_file().map(std::fs::File::try_clone) {
        Some(Ok(file)) => Source::Local { file, start },
        _ => match outgoing.download.reader(start).await {
            Ok(reader) => Source::Reader(reader),
            Err(error) => {
                let failure = executor.failure(error, path).await;
                let _ = executor.finish_download(outgoing, 0, Some(failure.clone()));
                return reply::failure(&failure).into();
            }
        },
    };
    Answer::File(Box::new(FileAnswer {
        head: response,
        body: Some(Transfer {
            executor,
            outgoing,
            source,
            length,
        }),
    }))
}

/// `length` bytes of `file` from `start`, a chunk at a time on the
/// blocking pool, one chunk read ahead.
fn local_chunks(
    file: std::fs::File,
    start: u64,
    length: u64,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send {
    use std::os::unix::fs::FileExt;
    use std::sync::Arc;
    type Pending = tokio::task::JoinHandle<std::io::Result<bytes::Bytes>>;
    fn read(file: &Arc<std::fs::File>, at: u64, end: u64) -> Option<Pending> {
        if at >= end {
            return None;
        }
        let file = Arc::clone(file);
        let size = (end - at).min(READ_SIZE as u64) as usize;
        Some(tokio::task::spawn_blocking(move || {
            let mut buffer = vec![0; size];
            let mut filled = 0;
            while filled < size {
                match file.read_at(&mut buffer[filled..], at + filled as u64)? {
                    0 => break,
                    read => filled += read,
                }
            }
            buffer.truncate(filled);
            Ok(bytes::Bytes::from(buffer))
        }))
    }
    let file = Arc::new(file);
    let end = start + length;
    let first = read(&file, start, end);
    futures_util::stream::unfold(
        (file, start, end, first),
        |(file, at, end, pending)| async move {
            let chunk = match pending?.await {
                Ok(Ok(chunk)) if chunk.is_empty() => return None,
                Ok(Ok(chunk)) => chunk,
                Ok(Err(error)) => return Some((Err(error), (file, end, end, None))),
                Err(_) => {
                    return Some((
                        Err(std::io::Error::other("read task failed")),
                        (file, end, end, None),
                    ));
                }
            };
            let next_at = at + chunk.len() as u64;
            let next = read(&file, next_at, end);
            Some((Ok(chunk), (file, next_at, end, next)))
        },
    )
}

/// The bytes of a download, `length` of them, finished in the executor
/// when all went (a client that leaves drops it: logged as interrupted,
/// with how many bytes hyper had taken by then).
fn sent_stream(
    executor: Executor,
    outgoing: OutgoingDownload,
    chunks: futures_util::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>,
    length: u64,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send {
    struct State {
        chunks: futures_util::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>,
        executor: Executor,
        outgoing: Option<OutgoingDownload>,
        sent: u64,
        length: u64,
    }
    // Hyper drops the body once it holds as many bytes as the head said,
    // without asking for its end: all went then. Dropped sooner, the
    // client left.
    impl Drop for State {
        fn drop(&mut self) {
            if let Some(outgoing) = self.outgoing.take() {
                let failure = (self.sent < self.length)
                    .then(|| Failure::new(ErrorCode::Internal, "interrupted"));
                let _ = self.executor.finish_download(outgoing, self.sent, failure);
            }
        }
    }
    let state = State {
        chunks,
        executor,
        outgoing: Some(outgoing),
        sent: 0,
        length,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        match state.chunks.next().await {
            Some(Ok(bytes)) => {
                state.sent += bytes.len() as u64;
                Some((Ok(bytes), state))
            }
            Some(Err(error)) => {
                if let Some(outgoing) = state.outgoing.take() {
                    let failure =
                        Failure::new(ErrorCode::Internal, format!("read failed: {error}"));
                    let _ = state
                        .executor
                        .finish_download(outgoing, state.sent, Some(failure));
                }
                Some((Err(error), state))
            }
            None => {
                if let Some(outgoing) = state.outgoing.take() {
                    let failure = ended(state.sent, state.length, None);
                    let _ = state
                        .executor
                        .finish_download(outgoing, state.sent, failure);
                }
                None
            }
        }
    })
}

/// An HTTP date (RFC 9110's IMF-fixdate).
pub fn http_date(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let weekday =
        ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(seconds / 86_400 % 7) as usize];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let rest = seconds % 86_400;
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        months[month as usize - 1],
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The date of a day since 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// How far a zip task may run ahead of the client, in bytes.
const ZIP_PIPE: usize = 256 * 1024;

/// A directory as a zip archive, written by a task while the client reads.
pub fn zip(executor: Executor, directory: &str, name: &str) -> Response {
    let (reader, writer) = tokio::io::duplex(ZIP_PIPE);
    let directory = directory.to_owned();
    tokio::spawn(async move {
        if let Err(error) = write_zip(executor, &directory, writer).await {
            tracing::info!(%error, directory = %directory, "zip stopped");
        }
    });
    let mut response = Response::new(Body::from_stream(ReaderStream::with_capacity(
        reader, READ_SIZE,
    )));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(Disposition::Attachment, &format!("{name}.zip")),
    );
    response
}

/// Writes the tree under `directory` as a zip into `writer`: depth first,
/// each directory listed a batch at a time, each file streamed.
async fn write_zip(
    mut executor: Executor,
    directory: &str,
    writer: tokio::io::DuplexStream,
) -> anyhow::Result<()> {
    use async_zip::base::write::ZipFileWriter;
    use async_zip::{Compression, ZipEntryBuilder};

    let mut zip = ZipFileWriter::with_tokio(writer);
    let mut pending = vec![String::new()];
    while let Some(relative) = pending.pop() {
        let listed = format!("{}/{relative}", directory.trim_end_matches('/'));
        let mut outgoing = match executor
            .execute(Operation::List {
                path: listed.clone(),
            })
            .await
        {
            Ok(Outcome::Listing(outgoing)) => outgoing,
            Ok(_) => anyhow::bail!("unexpected answer"),
            Err(failure) => {
                tracing::info!(%failure, "a directory left out of a zip");
                continue;
            }
        };
        if !relative.is_empty() {
            let entry = ZipEntryBuilder::new(relative.clone().into(), Compression::Stored);
            zip.write_entry_whole(entry, &[]).await?;
        }
        let mut files = Vec::new();
        let mut count = 0;
        loop {
            match outgoing.listing.next_batch().await {
                Ok(Some(batch)) => {
                    count += batch.len() as u64;
                    for entry in batch {
                        let child = format!("{relative}{}", entry.name);
                        match entry.kind {
                            EntryKind::Directory => pending.push(format!("{child}/")),
                            EntryKind::File => files.push((child, entry.modified)),
                        }
                    }
                }
                Ok(None) => {
                    let _ = executor.finish_listing(outgoing, count, None);
                    break;
                }
                Err(error) => {
                    let _ = executor.finish_listing(outgoing, count, Some(error));
                    break;
                }
            }
        }
        for (file, modified) in files {
            let path = format!("{}/{file}", directory.trim_end_matches('/'));
            let outgoing = match executor
                .execute(Operation::Download {
                    path: path.clone(),
                    offset: 0,
                })
                .await
            {
                Ok(Outcome::Download(outgoing)) => outgoing,
                Ok(_) => anyhow::bail!("unexpected answer"),
                Err(_) => continue,
            };
            let reader = match outgoing.download.reader(0).await {
                Ok(reader) => reader,
                Err(error) => {
                    let failure = executor.failure(error, &path).await;
                    let _ = executor.finish_download(outgoing, 0, Some(failure));
                    continue;
                }
            };
            let mut entry = ZipEntryBuilder::new(file.into(), Compression::Stored);
            if let Some(modified) = modified {
                entry = entry.last_modification_date(zip_date(modified));
            }
            let mut stream = zip.write_entry_stream(entry).await?.compat_write();
            let copied =
                tokio::io::copy(&mut reader.take(outgoing.download.size), &mut stream).await;
            let sent = match &copied {
                Ok(sent) => *sent,
                Err(_) => 0,
            };
            let failure = copied
                .as_ref()
                .err()
                .map(|error| Failure::new(ErrorCode::Internal, format!("zip: {error}")));
            let _ = executor.finish_download(outgoing, sent, failure);
            copied?;
            stream.into_inner().close().await?;
        }
    }
    let mut writer = zip.close().await?.into_inner();
    tokio::io::AsyncWriteExt::shutdown(&mut writer).await?;
    Ok(())
}

/// A zip's date (local time in the format; UTC here), from 1980 on.
fn zip_date(time: SystemTime) -> async_zip::ZipDateTime {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let rest = seconds % 86_400;
    async_zip::ZipDateTimeBuilder::new()
        .year(year.clamp(1980, 2107) as i32)
        .month(month)
        .day(day)
        .hour((rest / 3600) as u32)
        .minute((rest / 60 % 60) as u32)
        .second((rest % 60) as u32)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ranges_resolve_against_the_size() {
        assert_eq!(byte_range(None, 10), Ok(None));
        assert_eq!(byte_range(Some("bytes=0-4"), 10), Ok(Some((0, 4))));
        assert_eq!(byte_range(Some("bytes=5-"), 10), Ok(Some((5, 9))));
        assert_eq!(byte_range(Some("bytes=-3"), 10), Ok(Some((7, 9))));
        assert_eq!(byte_range(Some("bytes=-30"), 10), Ok(Some((0, 9))));
        assert_eq!(byte_range(Some("bytes=5-100"), 10), Ok(Some((5, 9))));
        assert_eq!(byte_range(Some("bytes=10-"), 10), Err(()));
        assert_eq!(byte_range(Some("bytes=0-1,3-4"), 10), Ok(None));
        assert_eq!(byte_range(Some("items=0-1"), 10), Ok(None));
        assert_eq!(byte_range(Some("bytes=0-"), 0), Err(()));
    }

    #[test]
    fn names_travel_whole_in_content_disposition() {
        let value = content_disposition(Disposition::Attachment, "résumé \"1\".txt");
        assert_eq!(
            value.to_str().unwrap(),
            "attachment; filename=\"r_sum_ _1_.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.txt"
        );
    }

    #[test]
    fn dates_are_http_dates() {
        let time = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(time), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
