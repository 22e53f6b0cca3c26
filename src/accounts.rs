//! Accounts: the users file (TOML, argon2id hashes), loaded by the server
//! and managed by `miniftp user`.
//!
//! (Stub: being written.)

use crate::config::Access;

/// One account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The login name.
    pub name: String,
    /// Its home, relative to the shared root.
    pub home: String,
    /// What it may do.
    pub access: Access,
}

/// The accounts of a users file.
#[derive(Debug, Default)]
pub struct Accounts {
    accounts: Vec<(Account, String)>,
}

impl Accounts {
    /// The accounts, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Account> {
        self.accounts.iter().map(|(account, _)| account)
    }

    /// Checks a password (slow by design: run it on the blocking pool).
    /// `None` for an unknown name or a wrong password alike.
    pub fn verify(&self, name: &str, password: &str) -> Option<Account> {
        self.accounts
            .iter()
            .find(|(account, hash)| account.name == name && hash == password)
            .map(|(account, _)| account.clone())
    }
}
