//! The S3 requests OpenDAL does not expose: multipart uploads addressed by
//! their upload id, so that an upload begun by one server can be continued,
//! completed or aborted by any other (OpenDAL's writer keeps the id to
//! itself), and the listing of the uploads in progress, to find those a
//! crash left. Signed with SigV4 by `reqsign`, with the credentials OpenDAL
//! finds (the environment, then the credentials file), and sent on the same
//! HTTP client as OpenDAL's requests.

use std::fmt::Write as _;
use std::time::SystemTime;

use bytes::Bytes;
use reqsign_aws_v4::{
    Credential, DefaultCredentialProvider, RequestSigner, StaticCredentialProvider,
};
use reqsign_core::{Context, OsEnv, Signer};
use reqsign_file_read_tokio::TokioFileRead;
use serde::Deserialize;

use super::turns::Turns;

/// What failed in a request: the store's error code when it sent one, and
/// one line for people. Never holds a credential.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// The HTTP status, when the store answered.
    pub status: Option<u16>,
    /// The S3 error code (`NoSuchUpload`, `InvalidPart`...), when given.
    pub code: Option<String>,
    /// What happened, in one line.
    pub message: String,
}

impl RequestError {
    fn transport(what: &str, error: impl std::error::Error) -> RequestError {
        // The causes too: "error sending request" alone says little.
        let mut message = format!("{what}: {error}");
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        RequestError {
            status: None,
            code: None,
            message,
        }
    }
}

/// One multipart upload in progress, as the store lists it.
#[derive(Debug, Clone)]
pub struct UploadInProgress {
    /// The object key it will complete to.
    pub key: String,
    /// Its id.
    pub upload_id: String,
    /// When it was begun, as the store says.
    pub initiated: Option<SystemTime>,
}

/// One page of [`Multipart::list_uploads`], and where the next starts.
pub struct UploadPage {
    /// The uploads of this page.
    pub uploads: Vec<UploadInProgress>,
    /// The markers of the next page, if there is one.
    pub next: Option<(String, String)>,
}

/// A bucket, for the multipart requests.
pub struct Multipart {
    http: reqwest::Client,
    /// The client of the parts' requests.
    parts_http: reqwest::Client,
    /// `http(s)://host:port/bucket`, path-style, without a trailing `/`.
    base: String,
    signer: Signer<Credential>,
    /// This server's turns at the store.
    turns: std::sync::Arc<Turns>,
}

impl Multipart {
    /// The bucket `bucket` at `endpoint`, signed for `region` with
    /// `credentials`, or else those of the environment or the credentials
    /// file (as OpenDAL finds them).
    pub fn new(
        http: reqwest::Client,
        parts_http: reqwest::Client,
        endpoint: &str,
        bucket: &str,
        region: &str,
        credentials: Option<&super::Credentials>,
        turns: std::sync::Arc<Turns>,
    ) -> Multipart {
        let context = Context::new().with_file_read(TokioFileRead).with_env(OsEnv);
        let request_signer = RequestSigner::new("s3", region);
        let signer = match credentials {
            Some(credentials) => Signer::new(
                context,
                StaticCredentialProvider::new(
                    &credentials.access_key_id,
                    &credentials.secret_access_key,
                ),
                request_signer,
            ),
            None => Signer::new(
                context,
                DefaultCredentialProvider::builder().no_imds().build(),
                request_signer,
            ),
        };
        Multipart {
            http,
            parts_http,
            base: format!("{}/{}", endpoint.trim_end_matches('/'), encode_key(bucket)),
            signer,
            turns,
        }
    }

    /// Begins a multipart upload to `key` with these user metadata (keys
    /// without their `x-amz-meta-` prefix); its upload id.
    pub async fn create(
        &self,
        key: &str,
        metadata: &[(&str, &str)],
    ) -> Result<String, RequestError> {
        let mut headers = Vec::new();
        for (name, value) in metadata {
            headers.push((format!("x-amz-meta-{name}"), (*value).to_owned()));
        }
        let body = self
            .send(
                http::Method::POST,
                key,
                "uploads=",
                headers,
                Bytes::new(),
                "CreateMultipartUpload",
            )
            .await?;
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Created {
            upload_id: String,
        }
        let created: Created = parse(&body, "CreateMultipartUpload")?;
        Ok(created.upload_id)
    }

    /// Sends part `number` (from 1) of `length` bytes, when its turn comes;
    /// its ETag.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        length: u64,
        body: reqwest::Body,
    ) -> Result<String, RequestError> {
        let query = format!(
            "partNumber={number}&uploadId={}",
            encode_component(upload_id)
        );
        let _turn = self.turns.part().await;
        let response = self
            .request_on(
                &self.parts_http,
                http::Method::PUT,
                key,
                &query,
                vec![("content-length".to_owned(), length.to_string())],
                body,
                "UploadPart",
            )
            .await?;
        response
            .headers()
            .get(http::header::ETAG)
            .and_then(|etag| etag.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| RequestError {
                status: Some(response.status().as_u16()),
                code: None,
                message: "UploadPart: the store sent no ETag".to_owned(),
            })
    }

    /// Completes an upload from its parts (number, ETag), in order: the
    /// object appears, whole.
    pub async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<(), RequestError> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (number, etag) in parts {
            let _ = write!(
                xml,
                "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>",
                escape_xml(etag)
            );
        }
        xml.push_str("</CompleteMultipartUpload>");
        let query = format!("uploadId={}", encode_component(upload_id));
        let body = self
            .send(
                http::Method::POST,
                key,
                &query,
                vec![("content-type".to_owned(), "application/xml".to_owned())],
                Bytes::from(xml),
                "CompleteMultipartUpload",
            )
            .await?;
        // A completion can fail after its 200, with the error in the body.
        if let Some(error) = error_in(&body, 200, "CompleteMultipartUpload") {
            return Err(error);
        }
        Ok(())
    }

    /// Aborts an upload: its parts are dropped. An upload already gone is
    /// no error.
    pub async fn abort(&self, key: &str, upload_id: &str) -> Result<(), RequestError> {
        let query = format!("uploadId={}", encode_component(upload_id));
        match self
            .send(
                http::Method::DELETE,
                key,
                &query,
                Vec::new(),
                Bytes::new(),
                "AbortMultipartUpload",
            )
            .await
        {
            Err(error) if error.status == Some(404) => Ok(()),
            result => result.map(drop),
        }
    }

    /// One page (up to 1,000) of the uploads in progress under `prefix`,
    /// from the markers of the page before.
    pub async fn list_uploads(
        &self,
        prefix: &str,
        from: Option<&(String, String)>,
    ) -> Result<UploadPage, RequestError> {
        let mut query = format!("prefix={}&uploads=", encode_component(prefix));
        if let Some((key, upload_id)) = from {
            query = format!(
                "key-marker={}&prefix={}&upload-id-marker={}&uploads=",
                encode_component(key),
                encode_component(prefix),
                encode_component(upload_id)
            );
        }
        let body = self
            .send(
                http::Method::GET,
                "",
                &query,
                Vec::new(),
                Bytes::new(),
                "ListMultipartUploads",
            )
            .await?;
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Listed {
            #[serde(default)]
            is_truncated: bool,
            next_key_marker: Option<String>,
            next_upload_id_marker: Option<String>,
            #[serde(default, rename = "Upload")]
            uploads: Vec<Listing>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Listing {
            key: String,
            upload_id: String,
            initiated: Option<String>,
        }
        let listed: Listed = parse(&body, "ListMultipartUploads")?;
        let next = match (
            listed.is_truncated,
            listed.next_key_marker,
            listed.next_upload_id_marker,
        ) {
            (true, Some(key), Some(id)) => Some((key, id)),
            _ => None,
        };
        Ok(UploadPage {
            uploads: listed
                .uploads
                .into_iter()
                .map(|upload| UploadInProgress {
                    initiated: upload.initiated.as_deref().and_then(parse_time),
                    key: upload.key,
                    upload_id: upload.upload_id,
                })
                .collect(),
            next,
        })
    }

    /// Sends a request and reads its (small) answer whole; a failure of a
    /// moment (a 500 or 503, a connection lost) is tried again, as OpenDAL's
    /// requests are.
    async fn send(
        &self,
        method: http::Method,
        key: &str,
        query: &str,
        headers: Vec<(String, String)>,
        body: Bytes,
        operation: &str,
    ) -> Result<Bytes, RequestError> {
        let mut delay = std::time::Duration::from_millis(50);
        let mut attempt = 0;
        loop {
            let turn = self.turns.request().await;
            let answered = match self
                .request(
                    method.clone(),
                    key,
                    query,
                    headers.clone(),
                    reqwest::Body::from(body.clone()),
                    operation,
                )
                .await
            {
                Ok(response) => response
                    .bytes()
                    .await
                    .map_err(|error| RequestError::transport(operation, error)),
                Err(error) => Err(error),
            };
            drop(turn);
            let temporary = match &answered {
                Ok(_) => false,
                Err(error) => matches!(error.status, None | Some(500 | 502 | 503 | 504)),
            };
            if !temporary || attempt == super::RETRIES {
                return answered;
            }
            attempt += 1;
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_secs(2));
        }
    }

    /// Signs and sends a request; an error status is an error.
    async fn request(
        &self,
        method: http::Method,
        key: &str,
        query: &str,
        headers: Vec<(String, String)>,
        body: reqwest::Body,
        operation: &str,
    ) -> Result<reqwest::Response, RequestError> {
        self.request_on(&self.http, method, key, query, headers, body, operation)
            .await
    }

    /// [`Multipart::request`] on the client `http`.
    #[allow(clippy::too_many_arguments)]
    async fn request_on(
        &self,
        http: &reqwest::Client,
        method: http::Method,
        key: &str,
        query: &str,
        headers: Vec<(String, String)>,
        body: reqwest::Body,
        operation: &str,
    ) -> Result<reqwest::Response, RequestError> {
        let uri = match key {
            "" => format!("{}?{query}", self.base),
            key => format!("{}/{}?{query}", self.base, encode_key(key)),
        };
        let mut builder = http::Request::builder()
            .method(method)
            .uri(&uri)
            .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD");
        for (name, value) in &headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let (mut parts, ()) = builder
            .body(())
            .map_err(|error| RequestError::transport(operation, error))?
            .into_parts();
        self.signer
            .sign(&mut parts, None)
            .await
            .map_err(|error| RequestError::transport(operation, error))?;
        let request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
            .map_err(|error| RequestError::transport(operation, error))?;
        let response = http
            .execute(request)
            .await
            .map_err(|error| RequestError::transport(operation, error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(
            error_in(&body, status.as_u16(), operation).unwrap_or_else(|| RequestError {
                status: Some(status.as_u16()),
                code: None,
                message: format!("{operation}: the store answered {status}"),
            }),
        )
    }
}

/// The `<Error>` in an answer's body, if it holds one.
fn error_in(body: &[u8], status: u16, operation: &str) -> Option<RequestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct ErrorBody {
        code: String,
        message: Option<String>,
    }
    let text = std::str::from_utf8(body).ok()?;
    if !text.contains("<Error") {
        return None;
    }
    let error: ErrorBody = quick_xml::de::from_str(text).ok()?;
    Some(RequestError {
        status: Some(status),
        message: format!(
            "{operation}: {}{}",
            error.code,
            error
                .message
                .map(|message| format!(" ({message})"))
                .unwrap_or_default()
        ),
        code: Some(error.code),
    })
}

/// An answer's body as XML of type `T`.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8], operation: &str) -> Result<T, RequestError> {
    let text =
        std::str::from_utf8(body).map_err(|error| RequestError::transport(operation, error))?;
    quick_xml::de::from_str(text).map_err(|error| RequestError::transport(operation, error))
}

/// An S3 timestamp (`2026-12-06T21:10:06.387Z`).
fn parse_time(text: &str) -> Option<SystemTime> {
    text.parse::<jiff::Timestamp>().ok().map(SystemTime::from)
}

/// A key, percent-encoded for a URI path: every byte but the unreserved
/// ones and `/`, as SigV4 for S3 expects.
pub fn encode_key(key: &str) -> String {
    encode(key, true)
}

/// A query value, percent-encoded (`/` too).
fn encode_component(value: &str) -> String {
    encode(value, false)
}

fn encode(text: &str, keep_slash: bool) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(byte as char)
            }
            b'/' if keep_slash => encoded.push('/'),
            byte => {
                let _ = write!(encoded, "%{byte:02X}");
            }
        }
    }
    encoded
}

/// Text escaped for an XML element.
fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_once_with_their_slashes() {
        assert_eq!(encode_key("docs/a b.txt"), "docs/a%20b.txt");
        assert_eq!(encode_key("'quotes\" and \\"), "%27quotes%22%20and%20%5C");
        assert_eq!(encode_key("emoji 🎉"), "emoji%20%F0%9F%8E%89");
        assert_eq!(encode_component("a/b+c=d"), "a%2Fb%2Bc%3Dd");
        assert_eq!(encode_key("-_.~"), "-_.~");
    }

    #[test]
    fn errors_in_bodies_are_found_and_named() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>InvalidPart</Code>\
            <Message>One or more of the specified parts could not be found.</Message></Error>";
        let error = error_in(body, 200, "CompleteMultipartUpload").unwrap();
        assert_eq!(error.code.as_deref(), Some("InvalidPart"));
        assert!(
            error
                .message
                .starts_with("CompleteMultipartUpload: InvalidPart (")
        );
        assert!(error_in(b"<CompleteMultipartUploadResult/>", 200, "x").is_none());
    }

    #[test]
    fn listings_of_uploads_parse() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>k2</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>
  <MaxUploads>1000</MaxUploads><IsTruncated>true</IsTruncated>
  <Upload><Key>a &amp; b</Key><UploadId>u1</UploadId><Initiated>2026-12-06T21:10:06.387Z</Initiated></Upload>
  <Upload><Key>k2</Key><UploadId>u2</UploadId><Initiated>2026-12-06T21:10:07Z</Initiated></Upload>
</ListMultipartUploadsResult>"#;
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Listing {
            key: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Listed {
            #[serde(rename = "Upload")]
            uploads: Vec<Listing>,
        }
        let listed: Listed = parse(body, "x").unwrap();
        assert_eq!(listed.uploads[0].key, "a & b");
        assert!(parse_time("2026-12-06T21:10:06.387Z").is_some());
    }
}
