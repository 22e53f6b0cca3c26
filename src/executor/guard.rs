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

/// How many accounts' failures are told apart per address; failures at
/// further names are counted together, and never forgiven by a success.
const MAX_NAMES_PER_ADDRESS: usize = 64;

/// Why a connection, or a login, is turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address already holds as many connections as it may.
    TooManyFromAddress,
    /// The address failed to log in too often; this much of its ban is left.
    Banned(Duration),
    /// The address has as many logins being checked as it has guesses left
    /// before a ban: this one must wait for their answers.
    TooManyLoginsAtOnce,
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
            Refusal::TooManyLoginsAtOnce => {
                "too many logins from your address at once; try again once they are answered"
                    .to_owned()
            }
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

/// What one address did lately: its failed logins (by the name they
/// tried), the logins being checked, a ban.
#[derive(Debug)]
struct Failures {
    /// Failed logins by account name (`""` for names past
    /// [`MAX_NAMES_PER_ADDRESS`] and for what cannot be a name).
    by_name: HashMap<String, u32>,
    /// Logins begun and not yet settled: each may be one more failure.
    in_flight: u32,
    last: Instant,
    banned_until: Option<Instant>,
}

impl Failures {
    fn count(&self) -> u32 {
        self.by_name.values().sum()
    }
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

/// A login being checked: it counts as a possible failure of its address
/// until it is settled as a failure or a success (or dropped).
#[derive(Debug)]
pub struct LoginAttempt {
    guard: Arc<Guard>,
    address: IpAddr,
    settled: bool,
}

impl LoginAttempt {
    /// Records the login as failed, at the account `name` (as given, or
    /// `""` when it could be no account's). Returns how long to wait before
    /// answering it, and whether the address is now banned.
    pub fn failed(mut self, name: &str) -> (Duration, bool) {
        self.settled = true;
        self.guard.record_failure(self.address, name)
    }

    /// Records the login as a success at the account `name`: that
    /// account's failures from the address are forgiven, no other's.
    pub fn succeeded(mut self, name: &str) {
        self.settled = true;
        let mut state = self.guard.lock();
        if let Some(failures) = state.failures.get_mut(&self.address) {
            failures.in_flight = failures.in_flight.saturating_sub(1);
            if failures.banned_until.is_none() {
                failures.by_name.remove(name);
            }
        }
    }
}

impl Drop for LoginAttempt {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut state = self.guard.lock();
        if let Some(failures) = state.failures.get_mut(&self.address) {
            failures.in_flight = failures.in_flight.saturating_sub(1);
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

    /// Begins checking a login from `address`, or refuses it unchecked:
    /// when the address is banned, or when its failures so far and the
    /// logins already being checked could reach the ban. However many
    /// logins an address sends at once, no more passwords are checked than
    /// the ban allows guesses.
    pub fn begin_login(self: &Arc<Self>, address: IpAddr) -> Result<LoginAttempt, Refusal> {
        let address = address.to_canonical();
        let now = Instant::now();
        let mut state = self.lock();
        self.make_room(&mut state, now);
        let failures = state.failures.entry(address).or_insert(Failures {
            by_name: HashMap::new(),
            in_flight: 0,
            last: now,
            banned_until: None,
        });
        self.forget_if_over(failures, now);
        if let Some(until) = failures.banned_until {
            return Err(Refusal::Banned(until - now));
        }
        if failures.count() + failures.in_flight >= self.policy.ban_after {
            return Err(Refusal::TooManyLoginsAtOnce);
        }
        failures.in_flight += 1;
        Ok(LoginAttempt {
            guard: Arc::clone(self),
            address,
            settled: false,
        })
    }

    /// Failures are forgotten after a ban's length of quiet, and when a
    /// ban ends.
    fn forget_if_over(&self, failures: &mut Failures, now: Instant) {
        let ban_over = failures.banned_until.is_some_and(|until| until <= now);
        let quiet = failures.banned_until.is_none()
            && now.saturating_duration_since(failures.last) >= self.policy.ban_for;
        if ban_over || quiet {
            failures.by_name.clear();
            failures.banned_until = None;
        }
    }

    /// Keeps the memory of failures bounded: past
    /// [`MAX_REMEMBERED_ADDRESSES`], stale addresses go first, then the
    /// longest quiet (never one with logins being checked).
    fn make_room(&self, state: &mut State, now: Instant) {
        if state.failures.len() < MAX_REMEMBERED_ADDRESSES {
            return;
        }
        let ban_for = self.policy.ban_for;
        state.failures.retain(|_, failures| {
            failures.in_flight > 0
                || failures.banned_until.is_some_and(|until| until > now)
                || now.saturating_duration_since(failures.last) < ban_for
        });
        if state.failures.len() >= MAX_REMEMBERED_ADDRESSES
            && let Some(quietest) = state
                .failures
                .iter()
                .filter(|(_, failures)| failures.in_flight == 0)
                .min_by_key(|(_, failures)| failures.last)
                .map(|(address, _)| *address)
        {
            state.failures.remove(&quietest);
        }
    }

    /// [`LoginAttempt::failed`]'s work.
    fn record_failure(&self, address: IpAddr, name: &str) -> (Duration, bool) {
        let now = Instant::now();
        let mut state = self.lock();
        let Some(failures) = state.failures.get_mut(&address) else {
            return (self.policy.first_delay, false);
        };
        failures.in_flight = failures.in_flight.saturating_sub(1);
        self.forget_if_over(failures, now);
        let key = match failures.by_name.contains_key(name)
            || failures.by_name.len() < MAX_NAMES_PER_ADDRESS
        {
            true => name,
            false => "",
        };
        *failures.by_name.entry(key.to_owned()).or_insert(0) += 1;
        failures.last = now;
        let count = failures.count();
        let banned = count >= self.policy.ban_after;
        if banned {
            failures.banned_until = Some(now + self.policy.ban_for);
        }
        let doublings = count.saturating_sub(1).min(16);
        let delay = self
            .policy
            .first_delay
            .saturating_mul(1 << doublings)
            .min(self.policy.max_delay);
        (delay, banned)
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

    /// A login from `address` at `name` that fails.
    fn fail(guard: &Arc<Guard>, address: IpAddr, name: &str) -> (Duration, bool) {
        guard.begin_login(address).unwrap().failed(name)
    }

    #[tokio::test(start_paused = true)]
    async fn failures_wait_longer_each_time_then_ban_until_the_ban_ends() {
        let guard = Arc::new(Guard::new(None, true, policy()));
        let delays: Vec<_> = (0..3).map(|_| fail(&guard, ADDRESS, "alice")).collect();
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
        assert_eq!(
            fail(&guard, ADDRESS, "alice"),
            (Duration::from_secs(4), true)
        );
        assert_eq!(
            guard.admit(ADDRESS).unwrap_err(),
            Refusal::Banned(Duration::from_secs(600))
        );
        assert_eq!(
            guard.begin_login(ADDRESS).unwrap_err(),
            Refusal::Banned(Duration::from_secs(600))
        );
        assert!(guard.admit(OTHER).is_ok(), "only that address is banned");
        tokio::time::advance(Duration::from_secs(599)).await;
        assert_eq!(
            guard.admit(ADDRESS).unwrap_err(),
            Refusal::Banned(Duration::from_secs(1))
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(guard.admit(ADDRESS).is_ok(), "the ban is over");
        // And the count starts again from the first delay.
        assert_eq!(
            fail(&guard, ADDRESS, "alice"),
            (Duration::from_secs(1), false)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_or_time_forgets_earlier_failures_at_that_account() {
        let guard = Arc::new(Guard::new(None, true, policy()));
        fail(&guard, ADDRESS, "alice");
        fail(&guard, ADDRESS, "alice");
        guard.begin_login(ADDRESS).unwrap().succeeded("alice");
        assert_eq!(
            fail(&guard, ADDRESS, "alice"),
            (Duration::from_secs(1), false)
        );
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(
            fail(&guard, ADDRESS, "alice"),
            (Duration::from_secs(1), false)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_at_one_account_forgives_no_failure_at_another() {
        let guard = Arc::new(Guard::new(None, true, policy()));
        for _ in 0..3 {
            fail(&guard, ADDRESS, "alice");
            guard.begin_login(ADDRESS).unwrap().succeeded("guest");
        }
        assert_eq!(
            fail(&guard, ADDRESS, "alice"),
            (Duration::from_secs(4), true)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn logins_being_checked_count_before_the_next_is_checked() {
        let guard = Arc::new(Guard::new(None, true, policy()));
        fail(&guard, ADDRESS, "alice");
        let checking: Vec<_> = (0..3)
            .map(|_| guard.begin_login(ADDRESS).unwrap())
            .collect();
        assert_eq!(
            guard.begin_login(ADDRESS).unwrap_err(),
            Refusal::TooManyLoginsAtOnce,
            "one failure and three being checked make the four a ban allows"
        );
        assert!(guard.begin_login(OTHER).is_ok(), "only that address waits");
        // One abandoned frees its place; one answered right too, and
        // forgives alice's failure.
        let mut checking = checking.into_iter();
        drop(checking.next());
        let more = guard.begin_login(ADDRESS).unwrap();
        checking.next().unwrap().succeeded("alice");
        assert_eq!(
            checking.next().unwrap().failed("bob"),
            (Duration::from_secs(1), false)
        );
        assert_eq!(more.failed("carol"), (Duration::from_secs(2), false));
        assert_eq!(
            fail(&guard, ADDRESS, "dave"),
            (Duration::from_secs(4), false)
        );
        assert_eq!(
            fail(&guard, ADDRESS, "erin"),
            (Duration::from_secs(4), true)
        );
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
        assert!(
            Refusal::TooManyLoginsAtOnce
                .message()
                .starts_with("too many logins")
        );
    }
}
