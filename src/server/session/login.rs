//! Who a session is: nobody yet (when the server has accounts and lets no
//! one in anonymously), anonymous, or an account; and the login request
//! that moves a session from the first two to the last.
//!
//! Logging in swaps the session's storage for the account's home (read-only
//! if the account is), so every command after it is jailed there by the
//! same code that jails everything else.

use std::time::Duration;

use tokio::time::Instant;

use super::Session;
use crate::config::Access;
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
    /// A new session's state, and the storage it sees until it logs in.
    pub fn at_start(shared: &Shared) -> (LoginState, Storage) {
        match (&shared.config.accounts, &shared.anonymous) {
            (None, _) => (LoginState::Open, shared.root.clone()),
            (Some(_), Some(anonymous)) => (LoginState::Anonymous, anonymous.clone()),
            (Some(_), None) => (
                LoginState::Required {
                    deadline: Instant::now() + shared.config.handshake_timeout,
                },
                shared.root.read_only(),
            ),
        }
    }

    /// Whether requests other than a login are refused.
    pub fn is_required(&self) -> bool {
        matches!(self, LoginState::Required { .. })
    }

    /// Whether a required login did not come in time.
    pub fn expired(&self) -> bool {
        matches!(self, LoginState::Required { deadline } if Instant::now() >= *deadline)
    }

    /// How long a session that must log in may still wait for its next
    /// message; `None` when no login is pending.
    pub fn time_left(&self) -> Option<Duration> {
        match self {
            LoginState::Required { deadline } => {
                Some(deadline.saturating_duration_since(Instant::now()))
            }
            _ => None,
        }
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
        if let Some(left) = self.shared.guard.ban_left(address) {
            return Err((
                ErrorCode::LoginFailed,
                super::super::guard::Refusal::Banned(left).message(),
            ));
        }
        let account = {
            let _turn = self.shared.guard.password_checks.acquire().await;
            let (user, password) = (user.to_owned(), password.clone());
            tokio::task::spawn_blocking(move || accounts.verify(&user, password.expose()))
                .await
                .ok()
                .flatten()
        };
        let Some(account) = account else {
            let (delay, banned) = self.shared.guard.login_failed(address);
            tracing::warn!(user = %crate::protocol::request::escape(user), banned, "login failed");
            tokio::time::sleep(delay).await;
            let mut reason = "login failed: wrong name or password".to_owned();
            if banned {
                reason.push_str("; too many failures: your address is banned for a while");
            }
            return Err((ErrorCode::LoginFailed, reason));
        };
        self.shared.guard.login_succeeded(address);
        let home = VirtualPath::root()
            .resolve(&account.home)
            .map_err(|error| (ErrorCode::Internal, format!("the account's home: {error}")))?;
        let mut storage = self.shared.root.subtree(&home).await.map_err(|error| {
            tracing::error!(%error, home = %account.home, "cannot open a home");
            (
                ErrorCode::Internal,
                format!("cannot open the account's home: {error}"),
            )
        })?;
        if account.access == Access::ReadOnly {
            storage = storage.read_only();
        }
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
