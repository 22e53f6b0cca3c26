//! Defences against abuse that span connections: how many connections each
//! address holds, and failed logins (a delay that doubles with each, then a
//! temporary ban of the address).
//!
//! Time is tokio's, so tests can pause it and skip a ban's length.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::config::LoginFailurePolicy;

/// How many password checks run at once: argon2id takes about 19 MiB and a
/// core's worth of time each, so a burst of logins must queue.
const CONCURRENT_PASSWORD_CHECKS: usize = 2;

/// Past this many remembered addresses, stale ones are forgotten first.
const MAX_REMEMBERED_ADDRESSES: usize = 10_000;

/// Why a connection is turned away at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address already holds as many connections as it may.
    TooManyFromAddress,
    /// The address failed to log in too often; this much of its ban is left.
    Banned(Duration),
}

impl Refusal {
    /// What the client is told.
    pub fn message(&self) -> String {
        match self {
            Refusal::TooManyFromAddress => {
                "too many connections from your address, try again later".to_owned()
            }
            Refusal::Banned(left) => format!(
                "too many failed logins from your address; try again in {}",
                describe_duration(*left)
            ),
        }
    }
}

/// Shared by every session of a server.
#[derive(Debug)]
pub struct Guard {
    per_address: Option<usize>,
    exempts_loopback: bool,
    policy: LoginFailurePolicy,
    state: Mutex<State>,
    /// Bounds the password checks running at once.
    pub password_checks: Semaphore,
}

#[derive(Debug, Default)]
struct State {
    connections: HashMap<IpAddr, usize>,
    failures: HashMap<IpAddr, Failures>,
}

#[derive(Debug)]
struct Failures {
    count: u32,
    last: Instant,
    banned_until: Option<Instant>,
}

/// One admitted connection's place in its address's count; given back on drop.
#[derive(Debug)]
pub struct AddressPermit {
    guard: Arc<Guard>,
    address: IpAddr,
}

impl Drop for AddressPermit {
    fn drop(&mut self) {
        let mut state = self.guard.lock();
        if let Some(count) = state.connections.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                state.connections.remove(&self.address);
            }
        }
    }
}

impl Guard {
    /// A guard allowing `per_address` connections per address (`None`: any
    /// number; loopback addresses too only unless `exempts_loopback`),
    /// answering failed logins as `policy` says.
    pub fn new(
        per_address: Option<usize>,
        exempts_loopback: bool,
        policy: LoginFailurePolicy,
    ) -> Guard {
        Guard {
            per_address,
            exempts_loopback,
            policy,
            state: Mutex::default(),
            password_checks: Semaphore::new(CONCURRENT_PASSWORD_CHECKS),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lets a new connection from `address` in, or says why not.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<AddressPermit, Refusal> {
        // An IPv4 client of a dual-stack socket is the same client as over IPv4.
        let address = address.to_canonical();
        if let Some(left) = self.ban_left(address) {
            return Err(Refusal::Banned(left));
        }
        let mut state = self.lock();
        let count = state.connections.entry(address).or_insert(0);
        let counted = !(self.exempts_loopback && address.is_loopback());
        if counted && self.per_address.is_some_and(|limit| *count >= limit) {
            return Err(Refusal::TooManyFromAddress);
        }
        *count += 1;
        Ok(AddressPermit {
            guard: Arc::clone(self),
            address,
        })
    }

    /// How much of a ban on `address` is left, if it is banned.
    pub fn ban_left(&self, address: IpAddr) -> Option<Duration> {
        let address = address.to_canonical();
        let now = Instant::now();
        let state = self.lock();
        let until = state.failures.get(&address)?.banned_until?;
        (until > now).then(|| until - now)
    }

    /// Records a failed login from `address`. Returns how long to wait
    /// before answering it, and whether the address is now banned.
    pub fn login_failed(&self, address: IpAddr) -> (Duration, bool) {
        let address = address.to_canonical();
        let now = Instant::now();
        let mut state = self.lock();
        if state.failures.len() >= MAX_REMEMBERED_ADDRESSES {
            let ban_for = self.policy.ban_for;
            state.failures.retain(|_, failures| {
                failures.banned_until.is_some_and(|until| until > now)
                    || now.saturating_duration_since(failures.last) < ban_for
            });
            // Still full of recent ones: the longest quiet goes.
            if state.failures.len() >= MAX_REMEMBERED_ADDRESSES
                && let Some(quietest) = state
                    .failures
                    .iter()
                    .min_by_key(|(_, failures)| failures.last)
                    .map(|(address, _)| *address)
            {
                state.failures.remove(&quietest);
            }
        }
        let failures = state.failures.entry(address).or_insert(Failures {
            count: 0,
            last: now,
            banned_until: None,
        });
        // Failures are forgotten after a ban's length, and when a ban ends.
        let ban_over = failures.banned_until.is_some_and(|until| until <= now);
        if ban_over || now.saturating_duration_since(failures.last) >= self.policy.ban_for {
            failures.count = 0;
            failures.banned_until = None;
        }
        failures.count += 1;
        failures.last = now;
        let banned = failures.count >= self.policy.ban_after;
        if banned {
            failures.banned_until = Some(now + self.policy.ban_for);
        }
        let doublings = failures.count.saturating_sub(1).min(16);
        let delay = self
            .policy
            .first_delay
            .saturating_mul(1 << doublings)
            .min(self.policy.max_delay);
        (delay, banned)
    }

    /// Forgets the failures of `address` after it logged in.
    pub fn login_succeeded(&self, address: IpAddr) {
        let address = address.to_canonical();
        let mut state = self.lock();
        if state
            .failures
            .get(&address)
            .is_some_and(|failures| failures.banned_until.is_none())
        {
            state.failures.remove(&address);
        }
    }
}

/// "4 minutes", "30 seconds": for people.
fn describe_duration(duration: Duration) -> String {
    let seconds = duration.as_secs().max(1);
    match seconds {
        1 => "1 second".to_owned(),
        2..=119 => format!("{seconds} seconds"),
        _ => format!("{} minutes", seconds.div_ceil(60)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LoginFailurePolicy {
        LoginFailurePolicy {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(4),
            ban_after: 4,
            ban_for: Duration::from_secs(600),
        }
    }

    const ADDRESS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 8));

    #[test]
    fn each_address_gets_its_share_and_gets_it_back() {
        let guard = Arc::new(Guard::new(Some(2), true, policy()));
        let first = guard.admit(ADDRESS).unwrap();
        let _second = guard.admit(ADDRESS).unwrap();
        assert_eq!(
            guard.admit(ADDRESS).unwrap_err(),
            Refusal::TooManyFromAddress
        );
        let _other = guard.admit(OTHER).unwrap();
        drop(first);
        let _third = guard.admit(ADDRESS).unwrap();
        let unlimited = Arc::new(Guard::new(None, true, policy()));
        let permits: Vec<_> = (0..100)
            .map(|_| unlimited.admit(ADDRESS).unwrap())
            .collect();
        assert_eq!(permits.len(), 100);
    }

    #[test]
    fn loopback_peers_escape_the_cap_unless_told_otherwise() {
        let local = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        let exempting = Arc::new(Guard::new(Some(1), true, policy()));
        let permits: Vec<_> = (0..10).map(|_| exempting.admit(local).unwrap()).collect();
        assert_eq!(permits.len(), 10);
        let strict = Arc::new(Guard::new(Some(1), false, policy()));
        let _first = strict.admit(local).unwrap();
        assert_eq!(
            strict.admit(local).unwrap_err(),
            Refusal::TooManyFromAddress
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_wait_longer_each_time_then_ban_until_the_ban_ends() {
        let guard = Arc::new(Guard::new(None, true, policy()));
        let delays: Vec<_> = (0..3).map(|_| guard.login_failed(ADDRESS)).collect();
        assert_eq!(
            delays,
            [
                (Duration::from_secs(1), false),
                (Duration::from_secs(2), false),
                (Duration::from_secs(4), false),
            ]
        );
        assert!(guard.admit(ADDRESS).is_ok());
        // The fourth failure bans; the delay stays capped.
        assert_eq!(guard.login_failed(ADDRESS), (Duration::from_secs(4), true));
        assert_eq!(
            guard.admit(ADDRESS).unwrap_err(),
            Refusal::Banned(Duration::from_secs(600))
        );
        assert!(guard.admit(OTHER).is_ok(), "only that address is banned");
        // A success while banned does not lift the ban.
        guard.login_succeeded(ADDRESS);
        tokio::time::advance(Duration::from_secs(599)).await;
        assert_eq!(
            guard.admit(ADDRESS).unwrap_err(),
            Refusal::Banned(Duration::from_secs(1))
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(guard.admit(ADDRESS).is_ok(), "the ban is over");
        // And the count starts again from the first delay.
        assert_eq!(guard.login_failed(ADDRESS), (Duration::from_secs(1), false));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_or_time_forgets_earlier_failures() {
        let guard = Arc::new(Guard::new(None, true, policy()));
        guard.login_failed(ADDRESS);
        guard.login_failed(ADDRESS);
        guard.login_succeeded(ADDRESS);
        assert_eq!(guard.login_failed(ADDRESS), (Duration::from_secs(1), false));
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(guard.login_failed(ADDRESS), (Duration::from_secs(1), false));
    }

    #[test]
    fn refusals_read_well() {
        assert_eq!(
            Refusal::Banned(Duration::from_secs(170)).message(),
            "too many failed logins from your address; try again in 3 minutes"
        );
        assert_eq!(
            Refusal::Banned(Duration::from_millis(10)).message(),
            "too many failed logins from your address; try again in 1 second"
        );
    }
}
