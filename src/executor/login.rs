//! Who a session is: nobody yet (when the server has accounts and lets no
//! one in anonymously), anonymous, or an account; and the login request
//! that moves a session from the first two to the last.
//!
//! Logging in swaps the session's storage for the account's home (read-only
//! if the account is), so every command after it is jailed there by the
//! same code that jails everything else.

use tokio::time::Instant;

use std::sync::Arc;

use super::{Executor, Peer, Service, view};
use crate::operation::{ErrorCode, Failure, Password};
use crate::storage::{Storage, VirtualPath};

/// What a web client is told before it logged in on a server that
/// requires it.
pub const LOGIN_REQUIRED_WEB: &str = "login required: this server needs an account";

/// What a client is told before it logged in on a server that requires it.
pub(crate) const LOGIN_REQUIRED: &str =
    "login required: this server needs an account (use miniftp connect NAME@HOST)";

/// Where a session stands.
#[derive(Debug)]
pub enum LoginState {
    /// The server has no accounts: everyone is in.
    Open,
    /// The server has accounts and lets anonymous clients in; they may
    /// still log in.
    Anonymous,
    /// The server has accounts and nothing is allowed before a login,
    /// which must come by `deadline`.
    Required {
        /// When the login is due.
        deadline: Instant,
    },
    /// Logged in as this account.
    LoggedIn {
        /// The account's name.
        user: String,
    },
}

impl LoginState {
    /// A new session's state, and the storage it sees until it logs in; a
    /// required login is due `handshake_timeout` after the connection was
    /// `accepted` (its TLS handshake included).
    pub(super) fn at_start(service: &Service, accepted: Instant) -> (LoginState, Storage) {
        match (&service.config.accounts, &service.anonymous) {
            (None, _) => (LoginState::Open, service.root.clone()),
            (Some(_), Some(anonymous)) => (LoginState::Anonymous, anonymous.clone()),
            (Some(_), None) => (
                LoginState::Required {
                    deadline: accepted + service.config.handshake_timeout,
                },
                service.root.read_only(),
            ),
        }
    }

    /// Whether requests other than a login are refused.
    pub fn is_required(&self) -> bool {
        matches!(self, LoginState::Required { .. })
    }

    /// When a required login is due.
    pub fn deadline(&self) -> Option<Instant> {
        match self {
            LoginState::Required { deadline } => Some(*deadline),
            _ => None,
        }
    }

    /// Completes when a required login is overdue; never when none is due.
    pub async fn overdue(&self) {
        match self.deadline() {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    }

    /// Whether a required login did not come in time.
    pub fn expired(&self) -> bool {
        matches!(self, LoginState::Required { deadline } if Instant::now() >= *deadline)
    }
}

impl Executor {
    /// A session already logged in as `user`, for a way in that checked
    /// the password once and remembers it (the web front's session
    /// cookie): no password, no delay, no log line of a login. Fails if
    /// the account is gone or its home cannot be opened.
    pub async fn for_account(
        service: Arc<Service>,
        peer: Peer,
        user: &str,
    ) -> Result<Executor, Failure> {
        let account = service
            .config
            .accounts
            .as_ref()
            .and_then(|accounts| accounts.get(user).cloned())
            .ok_or_else(|| Failure::new(ErrorCode::LoginFailed, "no such account any more"))?;
        let storage = view(&service.root, &account.home, account.access)
            .await
            .map_err(|error| {
                Failure::new(
                    ErrorCode::Internal,
                    format!("cannot open the account's home: {error}"),
                )
            })?;
        let mut executor = Executor::new(service, peer, Instant::now());
        executor.storage = storage;
        executor.login = LoginState::LoggedIn {
            user: account.name.clone(),
        };
        Ok(executor)
    }

    /// Logs in; on success the session sees the account's home from then
    /// on. Failures are answered after a delay that grows with each failure
    /// from the same address, which is banned for a while past a number of
    /// them; logins still being checked count as failures to come.
    pub(super) async fn log_in(&mut self, user: &str, password: &Password) -> Result<(), Failure> {
        let Some(accounts) = self.service.config.accounts.clone() else {
            return Err(Failure::new(
                ErrorCode::BadRequest,
                "this server has no accounts: no login needed",
            ));
        };
        if let LoginState::LoggedIn { user } = &self.login {
            return Err(Failure::new(
                ErrorCode::BadRequest,
                format!("already logged in as {user}"),
            ));
        }
        let address = self.peer.address.ip();
        if !(self.peer.encrypted
            || address.is_loopback()
            || self.service.config.allow_insecure_login)
        {
            tracing::warn!("login refused: password sent in clear from another host");
            return Err(Failure::new(
                ErrorCode::PermissionDenied,
                "logins need TLS here: the password would travel in clear (connect with --tls)",
            ));
        }
        let attempt = self
            .service
            .guard
            .begin_login(address)
            .map_err(|refusal| Failure::new(ErrorCode::LoginFailed, refusal.message()))?;
        let account = {
            let _turn = self.service.guard.password_checks.acquire().await;
            let (user, password) = (user.to_owned(), password.clone());
            tokio::task::spawn_blocking(move || accounts.verify(&user, password.expose()))
                .await
                .ok()
                .flatten()
        };
        let Some(account) = account else {
            let valid = crate::accounts::validate_name(user).is_ok();
            let (delay, banned) = attempt.failed(if valid { user } else { "" });
            tracing::warn!(banned, "login failed");
            tokio::time::sleep(delay).await;
            let mut reason = "login failed: wrong name or password".to_owned();
            if banned {
                reason.push_str("; too many failures: your address is banned for a while");
            }
            return Err(Failure::new(ErrorCode::LoginFailed, reason));
        };
        attempt.succeeded(&account.name);
        let storage = view(&self.service.root, &account.home, account.access)
            .await
            .map_err(|error| {
                tracing::error!(%error, home = %account.home, "cannot open a home");
                Failure::new(
                    ErrorCode::Internal,
                    format!("cannot open the account's home: {error}"),
                )
            })?;
        tracing::Span::current().record("user", account.name.as_str());
        tracing::info!(user = %account.name, access = ?account.access, "logged in");
        self.storage = storage;
        self.directory = VirtualPath::root();
        self.login = LoginState::LoggedIn { user: account.name };
        Ok(())
    }
}
