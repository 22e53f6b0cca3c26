//! Who a session is: nobody yet (when the server has accounts and lets no
//! one in anonymously), anonymous, or an account; and the login request
//! that moves a session from the first two to the last.
//!
//! Logging in swaps the session's storage for the account's home (read-only
//! if the account is), so every command after it is jailed there by the
//! same code that jails everything else.

use tokio::time::Instant;

use super::Session;
use crate::protocol::extended::{ErrorCode, Password};
use crate::server::Shared;
use crate::storage::{Storage, VirtualPath};

/// What a classic client is told on a server that requires a login.
pub(crate) const CLASSIC_LOGIN_REQUIRED: &str =
    "login required: this server needs an account (use miniftp connect NAME@HOST)";

/// Where a session stands.
#[derive(Debug)]
pub(crate) enum LoginState {
    /// The server has no accounts: everyone is in.
    Open,
    /// The server has accounts and lets anonymous clients in; they may
    /// still log in.
    Anonymous,
    /// The server has accounts and nothing is allowed before a login,
    /// which must come by `deadline`.
    Required { deadline: Instant },
    /// Logged in as this account.
    LoggedIn { user: String },
}

impl LoginState {
    /// A new session's state, and the storage it sees until it logs in; a
    /// required login is due `handshake_timeout` after the connection was
    /// `accepted` (its TLS handshake included).
    pub fn at_start(shared: &Shared, accepted: Instant) -> (LoginState, Storage) {
        match (&shared.config.accounts, &shared.anonymous) {
            (None, _) => (LoginState::Open, shared.root.clone()),
            (Some(_), Some(anonymous)) => (LoginState::Anonymous, anonymous.clone()),
            (Some(_), None) => (
                LoginState::Required {
                    deadline: accepted + shared.config.handshake_timeout,
                },
                shared.root.read_only(),
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

impl Session {
    /// Handles a login request; on success the session sees the account's
    /// home from then on. Failures are answered after a delay that grows
    /// with each failure from the same address, which is banned for a while
    /// past a number of them.
    pub(super) async fn log_in(
        &mut self,
        user: &str,
        password: &Password,
    ) -> Result<(), (ErrorCode, String)> {
        let Some(accounts) = self.config.accounts.clone() else {
            return Err((
                ErrorCode::BadRequest,
                "this server has no accounts: no login needed".to_owned(),
            ));
        };
        if let LoginState::LoggedIn { user } = &self.login {
            return Err((
                ErrorCode::BadRequest,
                format!("already logged in as {user}"),
            ));
        }
        let address = self.peer.ip();
        if !(self.connection.stream().is_tls()
            || address.is_loopback()
            || self.config.allow_insecure_login)
        {
            tracing::warn!("login refused: password sent in clear from another host");
            return Err((
                ErrorCode::PermissionDenied,
                "logins need TLS here: the password would travel in clear (connect with --tls)"
                    .to_owned(),
            ));
        }
        let attempt = self
            .shared
            .guard
            .begin_login(address)
            .map_err(|refusal| (ErrorCode::LoginFailed, refusal.message()))?;
        let account = {
            let _turn = self.shared.guard.password_checks.acquire().await;
            let (user, password) = (user.to_owned(), password.clone());
            tokio::task::spawn_blocking(move || accounts.verify(&user, password.expose()))
                .await
                .ok()
                .flatten()
        };
        let Some(account) = account else {
            // The name as given, if it could be one: a log line must not
            // carry a megabyte of whatever the client sent.
            let valid = crate::accounts::validate_name(user).is_ok();
            let (delay, banned) = attempt.failed(if valid { user } else { "" });
            let named = match valid {
                true => user.to_owned(),
                false => format!("(not a valid name, {} bytes)", user.len()),
            };
            tracing::warn!(user = %named, banned, "login failed");
            tokio::time::sleep(delay).await;
            let mut reason = "login failed: wrong name or password".to_owned();
            if banned {
                reason.push_str("; too many failures: your address is banned for a while");
            }
            return Err((ErrorCode::LoginFailed, reason));
        };
        attempt.succeeded(&account.name);
        let storage = crate::server::view(&self.shared.root, &account.home, account.access)
            .await
            .map_err(|error| {
                tracing::error!(%error, home = %account.home, "cannot open a home");
                (
                    ErrorCode::Internal,
                    format!("cannot open the account's home: {error}"),
                )
            })?;
        tracing::Span::current().record("user", account.name.as_str());
        tracing::info!(user = %account.name, access = ?account.access, "logged in");
        self.storage = storage;
        self.directory = VirtualPath::root();
        self.login = LoginState::LoggedIn { user: account.name };
        self.connection
            .set_read_timeout(Some(self.config.idle_timeout));
        Ok(())
    }
}
