//! Who is asking: a login through the page (a session cookie), HTTP Basic
//! (scripts and WebDAV clients), anonymous, or nobody yet; and the guard
//! against requests another site makes a browser send.
//!
//! Passwords are checked by the executor's login, the same as the TCP
//! protocol's: the same delays, the same failed-login ban, the same rule
//! that a password travels only encrypted or on loopback. Once checked, a
//! login is remembered (a session token in the cookie, or Basic
//! credentials by their keyed hash for a few minutes) so that a WebDAV
//! client's hundred requests do not cost a hundred argon2 checks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use base64::Engine;
use tokio::time::Instant;

use super::reply;
use crate::executor::{Executor, Outcome, Peer, Service};
use crate::operation::{ErrorCode, Failure, Operation, Password};

/// The cookie that carries a session.
pub const SESSION_COOKIE: &str = "miniftp_session";

/// How long a page login lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// How long checked Basic credentials are remembered.
const CREDENTIALS_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// Most sessions, and most remembered credentials, kept at once (the
/// oldest go first).
const MAX_REMEMBERED: usize = 10_000;

/// Logins remembered by a key: session tokens, or keyed hashes of Basic
/// credentials.
struct Remembered {
    entries: Mutex<HashMap<[u8; 32], (String, Instant)>>,
    lifetime: Duration,
}

impl Remembered {
    fn new(lifetime: Duration) -> Remembered {
        Remembered {
            entries: Mutex::new(HashMap::new()),
            lifetime,
        }
    }

    fn user(&self, key: &[u8; 32]) -> Option<String> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(key) {
            Some((user, until)) if Instant::now() < *until => Some(user.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn remember(&self, key: [u8; 32], user: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if entries.len() >= MAX_REMEMBERED {
            entries.retain(|_, (_, until)| *until > now);
        }
        if entries.len() >= MAX_REMEMBERED
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, (_, until))| *until)
                .map(|(key, _)| *key)
        {
            entries.remove(&oldest);
        }
        entries.insert(key, (user.to_owned(), now + self.lifetime));
    }

    fn forget(&self, key: &[u8; 32]) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

/// The web front's memory of logins, and its secret for CSRF tokens.
pub struct Logins {
    secret: [u8; 32],
    sessions: Remembered,
    credentials: Remembered,
}

impl Default for Logins {
    fn default() -> Logins {
        Logins {
            secret: rand::random(),
            sessions: Remembered::new(SESSION_LIFETIME),
            credentials: Remembered::new(CREDENTIALS_LIFETIME),
        }
    }
}

/// Who asks, as the executor will see it.
pub struct Caller {
    /// The session's executor (anonymous, open, logged in, or not yet).
    pub executor: Executor,
    /// The session token from the cookie, when the page logged in.
    pub session: Option<String>,
    /// Whether the request carried credentials (cookie or Basic): an
    /// anonymous refusal then asks for them.
    pub authenticated: bool,
}

impl Caller {
    /// The user logged in, if any.
    pub fn user(&self) -> Option<&str> {
        match self.executor.login() {
            crate::executor::LoginState::LoggedIn { user } => Some(user),
            _ => None,
        }
    }
}

impl Logins {
    /// Works out who sends `headers`: a valid session cookie, else Basic
    /// credentials (checked, or remembered), else nobody. Refuses wrong
    /// credentials (after the executor's delay) with a challenge.
    pub async fn identify(
        &self,
        service: &Arc<Service>,
        peer: Peer,
        headers: &HeaderMap,
    ) -> Result<Caller, Response> {
        let anonymous = || Caller {
            executor: Executor::new(Arc::clone(service), peer, Instant::now()),
            session: None,
            authenticated: false,
        };
        if service.config.accounts.is_none() {
            return Ok(anonymous());
        }
        if let Some(token) = cookie(headers, SESSION_COOKIE)
            && let Some(user) = self.sessions.user(&self.session_key(token))
        {
            match Executor::for_account(Arc::clone(service), peer, &user).await {
                Ok(executor) => {
                    return Ok(Caller {
                        executor,
                        session: Some(token.to_owned()),
                        authenticated: true,
                    });
                }
                Err(_) => self.sessions.forget(&self.session_key(token)),
            }
        }
        let Some((user, password)) = basic_credentials(headers) else {
            return Ok(anonymous());
        };
        let key = self.credentials_key(&user, &password);
        if let Some(remembered) = self.credentials.user(&key)
            && let Ok(executor) =
                Executor::for_account(Arc::clone(service), peer, &remembered).await
        {
            return Ok(Caller {
                executor,
                session: None,
                authenticated: true,
            });
        }
        let mut executor = Executor::new(Arc::clone(service), peer, Instant::now());
        match log_in(&mut executor, &user, password).await {
            Ok(()) => {
                self.credentials.remember(key, &user);
                Ok(Caller {
                    executor,
                    session: None,
                    authenticated: true,
                })
            }
            Err(failure) if failure.code == ErrorCode::LoginFailed => {
                Err(reply::challenge(failure.message))
            }
            Err(failure) => Err(reply::failure(&failure)),
        }
    }

    /// Logs in through the page's form: on success, the token of a new
    /// session, to set as the cookie.
    pub async fn log_in_form(
        &self,
        service: &Arc<Service>,
        peer: Peer,
        user: &str,
        password: String,
    ) -> Result<String, Failure> {
        let mut executor = Executor::new(Arc::clone(service), peer, Instant::now());
        log_in(&mut executor, user, password).await?;
        let token = hex(&rand::random::<[u8; 32]>());
        self.sessions.remember(self.session_key(&token), user);
        Ok(token)
    }

    /// Ends a page session.
    pub fn log_out(&self, token: &str) {
        self.sessions.forget(&self.session_key(token));
    }

    /// The CSRF token of a caller: bound to its session (or to nobody),
    /// unknowable to another site, checked on every form and upload.
    pub fn csrf_token(&self, session: Option<&str>) -> String {
        let bound = session.unwrap_or("");
        hex(blake3::keyed_hash(&self.secret, format!("csrf\0{bound}").as_bytes()).as_bytes())
    }

    fn session_key(&self, token: &str) -> [u8; 32] {
        *blake3::keyed_hash(&self.secret, format!("session\0{token}").as_bytes()).as_bytes()
    }

    fn credentials_key(&self, user: &str, password: &str) -> [u8; 32] {
        *blake3::keyed_hash(
            &self.secret,
            format!("basic\0{user}\0{password}").as_bytes(),
        )
        .as_bytes()
    }
}

/// Runs the executor's login.
async fn log_in(executor: &mut Executor, user: &str, password: String) -> Result<(), Failure> {
    let operation = Operation::Login {
        user: user.to_owned(),
        password: Password::new(password),
    };
    match executor.execute(operation).await? {
        Outcome::Done => Ok(()),
        _ => Err(Failure::new(ErrorCode::Internal, "unexpected login answer")),
    }
}

/// The value of cookie `name`, if the request has it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The Basic credentials of a request, if it has well-formed ones.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The session cookie for `token` (empty and expired to clear it).
pub fn session_cookie(token: &str, secure: bool) -> HeaderValue {
    let lifetime = match token.is_empty() {
        true => 0,
        false => SESSION_LIFETIME.as_secs(),
    };
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/; Max-Age={lifetime}; HttpOnly; SameSite=Lax{secure}"
    ))
    .expect("a cookie of hex digits")
}

/// Refuses a request that a browser sends on another site's behalf: its
/// `Origin` is not this server, or `Sec-Fetch-Site` says it comes from
/// elsewhere. Clients that are not browsers send neither.
pub fn check_same_origin(headers: &HeaderMap) -> Result<(), Failure> {
    let refused = || {
        Failure::new(
            ErrorCode::PermissionDenied,
            "cross-site request refused (it did not come from this server's page)",
        )
    };
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(refused());
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| refused())?;
        let host = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .ok_or_else(refused)?;
        let origin_host = origin.split_once("://").map(|(_, rest)| rest);
        if origin_host != Some(host) {
            return Err(refused());
        }
    }
    Ok(())
}

/// Bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn cross_site_requests_are_told_apart() {
        let host = ("host", "127.0.0.1:8080");
        assert!(check_same_origin(&headers(&[host])).is_ok());
        assert!(check_same_origin(&headers(&[host, ("origin", "http://127.0.0.1:8080")])).is_ok());
        assert!(check_same_origin(&headers(&[host, ("sec-fetch-site", "same-origin")])).is_ok());
        assert!(check_same_origin(&headers(&[host, ("origin", "http://evil.example")])).is_err());
        assert!(check_same_origin(&headers(&[host, ("origin", "null")])).is_err());
        assert!(check_same_origin(&headers(&[host, ("sec-fetch-site", "cross-site")])).is_err());
        assert!(check_same_origin(&headers(&[host, ("sec-fetch-site", "same-site")])).is_err());
    }

    #[test]
    fn cookies_and_basic_credentials_are_read() {
        let map = headers(&[("cookie", "a=1; miniftp_session=abc; b=2")]);
        assert_eq!(cookie(&map, SESSION_COOKIE), Some("abc"));
        let map = headers(&[("authorization", "Basic YWxpY2U6cDpzcw==")]);
        assert_eq!(
            basic_credentials(&map),
            Some(("alice".to_owned(), "p:ss".to_owned()))
        );
        let map = headers(&[("authorization", "Bearer x")]);
        assert_eq!(basic_credentials(&map), None);
    }
}
