//! The web front: the page (browse, download, upload, rename, delete, in
//! any browser, browsing and downloading without JavaScript) and WebDAV on
//! the same paths, on a second listener beside the TCP protocol.
//!
//! A way in like the TCP sessions, and no more: each request becomes an
//! [`Executor`](crate::executor::Executor) on the server's one
//! [`Service`], so accounts, homes, read-only access, the failed-login
//! ban, limits, the jail and the log lines are the executor's, shared with
//! the TCP protocol. This module decodes HTTP, runs operations, encodes
//! answers:
//!
//! - [`path`]: URL path to virtual path (pure; refuses encoded escapes).
//! - `connection`: one connection: on plain TCP, request heads read with
//!   `httparse` and a file's bytes sent by `sendfile`; everything else by
//!   hyper, handed the bytes read.
//! - `head`: request heads parsed, a file answer's head encoded (pure).
//! - `auth`: session cookie, HTTP Basic, anonymous; CSRF and cross-site checks.
//! - `page`: the listing and login HTML, every name escaped.
//! - `download`: files with ranges, folders as streamed zips.
//! - `upload`: the page's resumable chunked uploads.
//! - `dav`: WebDAV through `dav-server`, over an executor-backed filesystem.
//! - `reply`: refusals as a status and a short text.

mod assets;
mod auth;
mod connection;
mod dav;
mod download;
mod head;
mod page;
pub mod path;
mod reply;
mod upload;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::Response;
use dav_server::DavHandler;
use dav_server::memls::MemLs;
use http_body_util::BodyExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::executor::{Outcome, Peer, Service};
use crate::operation::{Entry, EntryKind, ErrorCode, Failure, Operation};
use crate::stream::Stream;
use auth::{Caller, Logins};
use dav::{DavCaller, ExecutorFs};
use path::WebPath;

/// The largest request head (request line and headers), in bytes: past it
/// the answer is `431`.
const MAX_HEAD: usize = 32 * 1024;

/// The largest form body (new folder, rename, login), in bytes.
const MAX_FORM: usize = 64 * 1024;

/// How many refusals ("busy", "too many from your address") may be
/// answered at once; past that an excess connection is simply closed.
const MAX_REFUSALS: usize = 64;

/// The methods WebDAV clients send that change the tree.
const DAV_CHANGES: [&str; 8] = [
    "PUT",
    "DELETE",
    "MKCOL",
    "COPY",
    "MOVE",
    "PROPPATCH",
    "LOCK",
    "UNLOCK",
];

/// What every request of the web front shares.
struct Web {
    service: Arc<Service>,
    logins: Logins,
    parked: upload::Parked,
    dav: DavHandler<DavCaller>,
    encrypted: bool,
}

/// Serves the page and WebDAV for `service` on `listener` until `shutdown`
/// is cancelled, then waits up to the configured grace period for
/// requests in flight. With `service.config.tls`, it speaks HTTPS with the
/// TCP protocol's certificate.
pub async fn serve(listener: TcpListener, service: Arc<Service>, shutdown: CancellationToken) {
    let config = Arc::clone(&service.config);
    let tls = config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let web = Arc::new(Web {
        encrypted: tls.is_some(),
        dav: DavHandler::builder()
            .filesystem(Box::new(ExecutorFs))
            .locksystem(MemLs::new())
            .build_handler(),
        logins: Logins::default(),
        parked: upload::Parked::default(),
        service,
    });
    let connections = Arc::new(Semaphore::new(config.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let tracker = TaskTracker::new();
    let mut accept_backoff = Duration::from_millis(10);
    let mut next_id = 1u64;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, address) = match accepted {
            Ok(accepted) => {
                accept_backoff = Duration::from_millis(10);
                accepted
            }
            Err(error) => {
                tracing::warn!(%error, backoff = ?accept_backoff, "accept failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(accept_backoff) => {}
                }
                accept_backoff = (accept_backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let id = next_id;
        next_id += 1;
        let span = tracing::info_span!("http", id, peer = %address, user = tracing::field::Empty);
        let _ = tcp.set_nodelay(true);
        let admitted = match Arc::clone(&connections).try_acquire_owned() {
            Ok(permit) => web
                .service
                .guard
                .admit(address.ip())
                .map(|address_permit| (permit, address_permit))
                .map_err(|refusal| (StatusCode::TOO_MANY_REQUESTS, refusal.message())),
            Err(_) => Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "server busy, try again later".to_owned(),
            )),
        };
        let peer = Peer {
            address,
            encrypted: tls.is_some(),
        };
        match admitted {
            Ok(permits) => {
                let (web, tls, shutdown) = (Arc::clone(&web), tls.clone(), shutdown.clone());
                tracker.spawn(
                    async move {
                        let _permits = permits;
                        let Some(stream) = open(tcp, tls.as_ref(), &web.service).await else {
                            return;
                        };
                        connection::serve(web, stream, peer, shutdown).await;
                    }
                    .instrument(span),
                );
            }
            Err((status, reason)) => match Arc::clone(&refusals).try_acquire_owned() {
                Ok(permit) => {
                    let (tls, service) = (tls.clone(), Arc::clone(&web.service));
                    tracker.spawn(
                        async move {
                            tracing::warn!(%reason, "connection refused");
                            let refuse = async {
                                if let Some(stream) = open(tcp, tls.as_ref(), &service).await {
                                    refuse(stream, status, &reason).await;
                                }
                            };
                            let _ = tokio::time::timeout(service.config.handshake_timeout, refuse)
                                .await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
                Err(_) => tracing::warn!(parent: &span, %reason, "connection dropped"),
            },
        }
    }
    tracker.close();
    if tokio::time::timeout(config.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = tracker.len(),
            "grace period over; abandoning the remaining HTTP connections"
        );
    }
}

/// The connection's stream: after the TLS handshake when there is one
/// (bounded by the handshake timeout), capped by the rate limit.
async fn open(
    tcp: TcpStream,
    tls: Option<&tokio_rustls::TlsAcceptor>,
    service: &Service,
) -> Option<Stream> {
    let stream = match tls {
        None => Stream::plain(tcp),
        Some(acceptor) => {
            match tokio::time::timeout(service.config.handshake_timeout, acceptor.accept(tcp)).await
            {
                Ok(Ok(tls)) => Stream::tls(tls),
                Ok(Err(error)) => {
                    tracing::info!(%error, "TLS handshake failed");
                    return None;
                }
                Err(_) => {
                    tracing::info!("TLS handshake timed out");
                    return None;
                }
            }
        }
    };
    Some(match service.config.rate_limit {
        Some(rate) => stream.with_rate_limit(rate),
        None => stream,
    })
}

/// Answers a refused connection with `status` and why, then closes it.
async fn refuse(mut stream: Stream, status: StatusCode, reason: &str) {
    use tokio::io::AsyncWriteExt;
    let body = format!("{reason}\n");
    let answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\
         connection: close\r\nretry-after: 10\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// What a request is answered. A file's answer is kept apart from the
/// rest so that the connection may send its bytes itself, by `sendfile`;
/// everything else is a response for hyper.
enum Answer {
    /// A response for hyper to send.
    Response(Response),
    /// A file, or its head for `HEAD` (boxed: it holds the executor).
    File(Box<download::FileAnswer>),
}

impl Answer {
    /// The headers of the answer's head.
    fn headers_mut(&mut self) -> &mut HeaderMap {
        match self {
            Answer::Response(response) => response.headers_mut(),
            Answer::File(file) => file.head.headers_mut(),
        }
    }

    /// The answer as a response for hyper (a file's bytes streamed).
    fn into_response(self) -> Response {
        match self {
            Answer::Response(response) => response,
            Answer::File(file) => file.into_response(),
        }
    }
}

impl From<Response> for Answer {
    fn from(response: Response) -> Answer {
        Answer::Response(response)
    }
}

impl Web {
    /// Answers one request, with the headers every answer carries.
    async fn handle(&self, peer: Peer, request: Request<Body>) -> Answer {
        let mut answer = self.route(peer, request).await;
        let headers = answer.headers_mut();
        headers
            .entry(header::X_CONTENT_TYPE_OPTIONS)
            .or_insert(HeaderValue::from_static("nosniff"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        answer
    }

    async fn route(&self, peer: Peer, request: Request<Body>) -> Answer {
        let head: usize = request
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>()
            + request.uri().to_string().len();
        if head > MAX_HEAD {
            return reply::text(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("the request's head is over {MAX_HEAD} bytes"),
            )
            .into();
        }
        let raw_path = request.uri().path().to_owned();
        if raw_path == "/.miniftp" || raw_path.starts_with("/.miniftp/") {
            return self.internal(peer, request).await.into();
        }
        let path = match WebPath::decode(&raw_path) {
            Ok(path) => path,
            Err(refusal) => {
                return reply::text(StatusCode::BAD_REQUEST, refusal.to_string()).into();
            }
        };
        let caller = match self
            .logins
            .identify(&self.service, peer, request.headers())
            .await
        {
            Ok(caller) => caller,
            Err(response) => return response.into(),
        };
        if let Some(user) = caller.user() {
            tracing::Span::current().record("user", user);
        }
        let method = request.method().clone();
        if caller.executor.login().is_required() && method != Method::OPTIONS {
            return match method == Method::GET && wants_html(request.headers()) {
                true => reply::see_other(&format!(
                    "/.miniftp/login?next={}",
                    path::encode_segment(&path::url_of(&path.path, path.trailing_slash))
                )),
                false => reply::challenge(crate::executor::LOGIN_REQUIRED_WEB),
            }
            .into();
        }
        let response = match method.as_str() {
            "GET" | "HEAD" => return self.get(caller, &path, request).await,
            "POST" => {
                if let Err(failure) = auth::check_same_origin(request.headers()) {
                    return reply::failure(&failure).into();
                }
                self.post(caller, &path, request).await
            }
            "OPTIONS" | "PROPFIND" => self.dav(caller, request).await,
            method if DAV_CHANGES.contains(&method) => {
                if let Err(failure) = auth::check_same_origin(request.headers()) {
                    return reply::failure(&failure).into();
                }
                if caller.executor.read_only()
                    && !caller.authenticated
                    && self.service.config.accounts.is_some()
                {
                    return reply::challenge("log in to change files here").into();
                }
                self.dav(caller, request).await
            }
            _ => reply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        };
        response.into()
    }

    /// WebDAV, through dav-server over the caller's executor.
    async fn dav(&self, caller: Caller, request: Request<Body>) -> Response {
        let principal = caller.user().unwrap_or("anonymous").to_owned();
        let response = self
            .dav
            .handle_guarded(request, principal, DavCaller::new(caller.executor))
            .await;
        response.map(Body::new)
    }

    /// A directory's page (or zip), or a file.
    async fn get(&self, mut caller: Caller, path: &WebPath, request: Request<Body>) -> Answer {
        let query = Query::parse(request.uri().query());
        let entry = match caller
            .executor
            .execute(Operation::Stat {
                path: path.path.clone(),
            })
            .await
        {
            Ok(Outcome::Entry(entry)) => entry,
            Ok(_) => {
                return reply::text(StatusCode::INTERNAL_SERVER_ERROR, "unexpected answer").into();
            }
            Err(failure) => return self.refused(&caller, &failure).into(),
        };
        if entry.kind == EntryKind::File {
            let disposition = match query.has("download") {
                true => download::Disposition::Attachment,
                false => download::Disposition::Inline,
            };
            return download::file(
                caller.executor,
                &path.path,
                &entry,
                request.method(),
                request.headers(),
                disposition,
            )
            .await;
        }
        if !path.trailing_slash && !path.is_root() {
            let mut location = path::url_of(&path.path, true);
            if let Some(query) = request.uri().query() {
                location.push('?');
                location.push_str(query);
            }
            let mut response = reply::see_other(&location);
            *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
            return response.into();
        }
        if query.has("zip") {
            let name = match path.is_root() {
                true => "files",
                false => path.name(),
            };
            return download::zip(caller.executor, &path.path, name).into();
        }
        let entries = match list_all(&mut caller, &path.path).await {
            Ok(entries) => entries,
            Err(failure) => return self.refused(&caller, &failure).into(),
        };
        let csrf = self.logins.csrf_token(caller.session.as_deref());
        let sort = query.get("sort");
        let filter = query.get("q").unwrap_or_default();
        let context = page::Context {
            path: &path.path,
            user: caller.user(),
            accounts: self.service.config.accounts.is_some(),
            writable: !caller.executor.read_only(),
            csrf: &csrf,
            sort: page::SortKey::parse(sort.as_deref()),
            descending: query.get("order").as_deref() == Some("desc"),
            filter: &filter,
            chunk_size: upload::CHUNK_SIZE,
        };
        html(StatusCode::OK, page::listing(&context, entries)).into()
    }

    /// The page's changes: upload chunks, new folder, rename, delete.
    async fn post(&self, mut caller: Caller, path: &WebPath, request: Request<Body>) -> Response {
        let query = Query::parse(request.uri().query());
        let expected = self.logins.csrf_token(caller.session.as_deref());
        let header_token = request
            .headers()
            .get("x-csrf-token")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let from_script = header_token.is_some();
        if query.has("upload") {
            if header_token.as_deref() != Some(expected.as_str()) {
                return csrf_refused();
            }
            let owner = caller.user().unwrap_or("").to_owned();
            let (parts, body) = request.into_parts();
            return upload::chunk(
                &self.parked,
                &mut caller.executor,
                &owner,
                &path.path,
                &parts.headers,
                body,
                self.service.config.idle_timeout,
            )
            .await;
        }
        let form = match read_form(request.into_body()).await {
            Ok(form) => form,
            Err(response) => return response,
        };
        let token = header_token.or_else(|| form.get("csrf").cloned());
        if token.as_deref() != Some(expected.as_str()) {
            return csrf_refused();
        }
        let directory = match path.trailing_slash || path.is_root() {
            true => path.path.clone(),
            false => path.parent(),
        };
        let operation = if query.has("mkdir") {
            let name = form.get("name").cloned().unwrap_or_default();
            Operation::MakeDirectory {
                path: format!("{}/{}", path.path.trim_end_matches('/'), name),
                parents: false,
            }
        } else if query.has("rename") {
            let to = form.get("to").cloned().unwrap_or_default();
            let to = match to.starts_with('/') {
                true => to,
                false => format!("{}/{to}", directory.trim_end_matches('/')),
            };
            Operation::Rename {
                from: path.path.clone(),
                to,
            }
        } else if query.has("delete") {
            Operation::Remove {
                path: path.path.clone(),
                recursive: true,
            }
        } else {
            return reply::text(StatusCode::BAD_REQUEST, "unknown action");
        };
        match caller.executor.execute(operation).await {
            Ok(_) if from_script => reply::text(StatusCode::OK, "done"),
            Ok(_) => reply::see_other(&path::url_of(&directory, true)),
            Err(failure) => self.refused(&caller, &failure),
        }
    }

    /// A failure, or a challenge when an anonymous caller might do better
    /// with a login.
    fn refused(&self, caller: &Caller, failure: &Failure) -> Response {
        if failure.code == ErrorCode::PermissionDenied
            && !caller.authenticated
            && self.service.config.accounts.is_some()
        {
            return reply::challenge(failure.message.clone());
        }
        reply::failure(failure)
    }

    /// `/.miniftp/...`: the assets, the login form, logging out.
    async fn internal(&self, peer: Peer, request: Request<Body>) -> Response {
        let name = request
            .uri()
            .path()
            .trim_start_matches("/.miniftp/")
            .to_owned();
        let query = Query::parse(request.uri().query());
        match (request.method().as_str(), name.as_str()) {
            ("GET" | "HEAD", "login") => {
                let next = query.get("next").unwrap_or_else(|| "/".to_owned());
                html(
                    StatusCode::OK,
                    page::login(&next, &self.logins.csrf_token(None), None),
                )
            }
            ("POST", "login") => {
                if let Err(failure) = auth::check_same_origin(request.headers()) {
                    return reply::failure(&failure);
                }
                let form = match read_form(request.into_body()).await {
                    Ok(form) => form,
                    Err(response) => return response,
                };
                let csrf = self.logins.csrf_token(None);
                if form.get("csrf") != Some(&csrf) {
                    return csrf_refused();
                }
                let next = form
                    .get("next")
                    .filter(|next| next.starts_with('/') && !next.starts_with("//"))
                    .cloned()
                    .unwrap_or_else(|| "/".to_owned());
                let user = form.get("user").cloned().unwrap_or_default();
                let password = form.get("password").cloned().unwrap_or_default();
                match self
                    .logins
                    .log_in_form(&self.service, peer, &user, password)
                    .await
                {
                    Ok(token) => {
                        let mut response = reply::see_other(&next);
                        response.headers_mut().insert(
                            header::SET_COOKIE,
                            auth::session_cookie(&token, self.encrypted),
                        );
                        response
                    }
                    Err(failure) => html(
                        reply::status_of(failure.code),
                        page::login(&next, &csrf, Some(&failure.message)),
                    ),
                }
            }
            ("POST", "logout") => {
                let session =
                    auth::cookie(request.headers(), auth::SESSION_COOKIE).map(str::to_owned);
                let form = match read_form(request.into_body()).await {
                    Ok(form) => form,
                    Err(response) => return response,
                };
                if form.get("csrf") != Some(&self.logins.csrf_token(session.as_deref())) {
                    return csrf_refused();
                }
                if let Some(session) = session {
                    self.logins.log_out(&session);
                }
                let mut response = reply::see_other("/");
                response
                    .headers_mut()
                    .insert(header::SET_COOKIE, auth::session_cookie("", self.encrypted));
                response
            }
            ("GET" | "HEAD", name) => match assets::asset(name) {
                Some((content_type, body)) => {
                    let mut response = Response::new(Body::from(body));
                    let headers = response.headers_mut();
                    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                    response
                }
                None => reply::text(StatusCode::NOT_FOUND, "no such page"),
            },
            _ => reply::text(StatusCode::NOT_FOUND, "no such page"),
        }
    }
}

/// Every entry of a directory, through the executor's listing.
async fn list_all(caller: &mut Caller, path: &str) -> Result<Vec<Entry>, Failure> {
    let mut outgoing = match caller
        .executor
        .execute(Operation::List {
            path: path.to_owned(),
        })
        .await?
    {
        Outcome::Listing(outgoing) => outgoing,
        _ => return Err(Failure::new(ErrorCode::Internal, "unexpected answer")),
    };
    let mut entries = Vec::new();
    loop {
        match outgoing.listing.next_batch().await {
            Ok(Some(batch)) => entries.extend(batch),
            Ok(None) => {
                caller
                    .executor
                    .finish_listing(outgoing, entries.len() as u64, None)?;
                return Ok(entries);
            }
            Err(error) => {
                let count = entries.len() as u64;
                return Err(caller
                    .executor
                    .finish_listing(outgoing, count, Some(error))
                    .unwrap_err());
            }
        }
    }
}

/// Whether a browser asks (rather than a script or a WebDAV client).
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// An HTML answer, with the page's content security policy: only its own
/// scripts and styles, nothing inline, never framed.
fn html(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn csrf_refused() -> Response {
    reply::text(
        StatusCode::FORBIDDEN,
        "missing or stale form token (reload the page and try again)",
    )
}

/// Reads a small `application/x-www-form-urlencoded` body.
async fn read_form(body: Body) -> Result<HashMap<String, String>, Response> {
    let limited = http_body_util::Limited::new(body, MAX_FORM);
    let bytes = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Err(reply::text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a form holds at most {MAX_FORM} bytes"),
            ));
        }
    };
    Ok(Query::parse(std::str::from_utf8(&bytes).ok()).values)
}

/// A query string's (or a form's) values.
struct Query {
    values: HashMap<String, String>,
}

impl Query {
    fn parse(text: Option<&str>) -> Query {
        let mut values = HashMap::new();
        for pair in text
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |text: &str| {
                percent_encoding::percent_decode_str(&text.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            values.entry(decode(key)).or_insert_with(|| decode(value));
        }
        Query { values }
    }

    fn has(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    fn get(&self, key: &str) -> Option<String> {
        self.values.get(key).cloned()
    }
}
