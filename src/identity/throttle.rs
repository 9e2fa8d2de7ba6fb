//! Security-sensitive: slows down guessing (passwords, PINs, TOTP and recovery codes, invite
//! links, setup codes) with delays that grow with each failure and fade with time, so an
//! attacker is slowed to a crawl but can never lock the owner out for good.
//!
//! A guess is *reserved* before it is checked ([`Throttle::begin`]) and settled after
//! ([`Attempt::failed`] / [`Attempt::succeeded`]). Reservations count against the budget
//! while the slow check runs, so a burst of simultaneous guesses gets no more of them
//! evaluated than the same guesses sent one after another: `free` at once, then one at a
//! time, each after the delay the previous failure imposed. Delays run from the moment a
//! failure is known, not from when its request arrived.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a throttle grows.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Guesses allowed before any delay (typos happen). The `free`-th failure starts the
    /// first delay.
    pub free: u32,
    /// First delay; doubles with each further failure.
    pub base: Duration,
    /// Longest delay ever imposed.
    pub max: Duration,
    /// A key with no failures for this long is forgotten.
    pub forget_after: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Failures settled so far.
    failures: u32,
    /// Guesses reserved and still being checked.
    in_flight: u32,
    blocked_until: Instant,
    last_failure: Instant,
}

/// Failure counts per key (an address, an account, a profile).
pub struct Throttle<K> {
    policy: Policy,
    entries: Mutex<HashMap<K, Entry>>,
}

/// Most keys tracked at once; past this, the oldest idle ones are dropped. Bounds memory
/// under a flood of addresses (IPv6 gives an attacker plenty).
const MAX_KEYS: usize = 10_000;

/// One reserved guess. Settle it with [`Attempt::failed`], [`Attempt::succeeded`] or
/// [`Attempt::withdraw`]; dropped unsettled (an error or a cancelled request part-way
/// through the check), it counts as a failure.
#[must_use = "a reserved guess must be settled"]
pub struct Attempt<'a, K: Eq + Hash + Clone> {
    throttle: &'a Throttle<K>,
    key: Option<K>,
}

impl<K: Eq + Hash + Clone> Throttle<K> {
    pub fn new(policy: Policy) -> Self {
        Throttle {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Reserves one guess for `key`, or `Err(wait)` when it must wait first: while a delay
    /// runs, or when the guesses already settled and in flight use up the free budget.
    pub fn begin(&self, key: &K, now: Instant) -> Result<Attempt<'_, K>, Duration> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_KEYS && !entries.contains_key(key) {
            self.evict(&mut entries, now);
        }
        let e = entries.entry(key.clone()).or_insert(Entry {
            failures: 0,
            in_flight: 0,
            blocked_until: now,
            last_failure: now,
        });
        if e.in_flight == 0
            && e.failures > 0
            && now.saturating_duration_since(e.last_failure) >= self.policy.forget_after
        {
            e.failures = 0;
        }
        if e.blocked_until > now {
            return Err(e.blocked_until - now);
        }
        let within_free = e.failures.saturating_add(e.in_flight) < self.policy.free;
        if !within_free && e.in_flight > 0 {
            // Past the free budget guesses go one at a time: this one waits for the one
            // being checked, and then for the delay its failure will impose.
            return Err(self
                .delay_for(e.failures.saturating_add(e.in_flight))
                .max(Duration::from_secs(1)));
        }
        e.in_flight += 1;
        Ok(Attempt {
            throttle: self,
            key: Some(key.clone()),
        })
    }

    /// `Err(wait)` if `key` is waiting out a delay now (reserves nothing).
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some(e) if e.blocked_until > now => Err(e.blocked_until - now),
            _ => Ok(()),
        }
    }

    fn settle(&self, key: &K, outcome: Outcome, now: Instant) -> Duration {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let Some(e) = entries.get_mut(key) else {
            // Evicted under a flood while in flight: nothing left to count against.
            return Duration::ZERO;
        };
        e.in_flight = e.in_flight.saturating_sub(1);
        match outcome {
            Outcome::Failed => {
                e.failures = e.failures.saturating_add(1);
                e.last_failure = now;
                let delay = self.delay_for(e.failures);
                if !delay.is_zero() {
                    e.blocked_until = e.blocked_until.max(now + delay);
                }
                delay
            }
            Outcome::Succeeded => {
                e.failures = 0;
                if e.in_flight == 0 {
                    entries.remove(key);
                }
                Duration::ZERO
            }
            Outcome::Withdrawn => {
                if e.in_flight == 0 && e.failures == 0 {
                    entries.remove(key);
                }
                Duration::ZERO
            }
        }
    }

    /// Makes room for a new key: forgets keys idle long enough, then the oldest idle one.
    fn evict(&self, entries: &mut HashMap<K, Entry>, now: Instant) {
        let forget = self.policy.forget_after;
        entries.retain(|_, e| {
            e.in_flight > 0 || now.saturating_duration_since(e.last_failure) < forget
        });
        if entries.len() >= MAX_KEYS
            && let Some(oldest) = entries
                .iter()
                .filter(|(_, e)| e.in_flight == 0)
                .min_by_key(|(_, e)| e.last_failure)
                .map(|(k, _)| k.clone())
        {
            entries.remove(&oldest);
        }
    }

    fn delay_for(&self, failures: u32) -> Duration {
        if failures < self.policy.free.max(1) {
            return Duration::ZERO;
        }
        let doublings = (failures - self.policy.free.max(1)).min(30);
        self.policy
            .base
            .saturating_mul(1u32 << doublings)
            .min(self.policy.max)
    }
}

#[derive(Clone, Copy)]
enum Outcome {
    Failed,
    Succeeded,
    Withdrawn,
}

impl<K: Eq + Hash + Clone> Attempt<'_, K> {
    /// The guess was wrong: counts from now, returns the delay now imposed.
    pub fn failed(self) -> Duration {
        self.failed_at(Instant::now())
    }

    /// [`Attempt::failed`] at a given moment (tests).
    pub fn failed_at(mut self, now: Instant) -> Duration {
        match self.key.take() {
            Some(k) => self.throttle.settle(&k, Outcome::Failed, now),
            None => Duration::ZERO,
        }
    }

    /// The guess was right: the key's failures are forgiven.
    pub fn succeeded(mut self) {
        if let Some(k) = self.key.take() {
            self.throttle.settle(&k, Outcome::Succeeded, Instant::now());
        }
    }

    /// Nothing was checked after all (another throttle refused first): the reservation
    /// is returned without counting.
    pub fn withdraw(mut self) {
        if let Some(k) = self.key.take() {
            self.throttle.settle(&k, Outcome::Withdrawn, Instant::now());
        }
    }
}

impl<K: Eq + Hash + Clone> Drop for Attempt<'_, K> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.throttle.settle(&k, Outcome::Failed, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            free: 3,
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            forget_after: Duration::from_secs(3600),
        }
    }

    #[test]
    fn delays_grow_then_cap() {
        let t = Throttle::new(policy());
        let mut now = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..10 {
            let a = t.begin(&"a", now).expect("not blocked after waiting");
            let d = a.failed_at(now);
            delays.push(d.as_secs());
            now += d;
        }
        assert_eq!(delays, [0, 0, 1, 2, 4, 8, 16, 32, 60, 60]);
        assert!(t.check(&"a", now - Duration::from_millis(1)).is_err());
        assert!(t.begin(&"b", now).is_ok(), "other keys are not affected");
        assert!(
            t.begin(&"a", now + Duration::from_secs(61)).is_ok(),
            "never permanent"
        );
    }

    #[test]
    fn success_and_time_forgive() {
        let t = Throttle::new(policy());
        let now = Instant::now();
        for _ in 0..3 {
            t.begin(&"a", now).unwrap().failed_at(now);
        }
        let wait = Duration::from_secs(1);
        t.begin(&"a", now + wait).unwrap().succeeded();
        assert!(t.check(&"a", now + wait).is_ok());
        assert!(
            t.entries.lock().unwrap().is_empty(),
            "a success clears the key"
        );
        for _ in 0..3 {
            t.begin(&"b", now).unwrap().failed_at(now);
        }
        let later = now + Duration::from_secs(7200);
        assert_eq!(
            t.begin(&"b", later).unwrap().failed_at(later),
            Duration::ZERO,
            "old failures are forgotten"
        );
    }

    /// The heart of it: guesses reserved at the same moment, before any is settled, get
    /// exactly the free budget; everything else must wait.
    #[test]
    fn a_burst_gets_no_more_than_the_free_budget() {
        let t = Throttle::new(policy());
        let now = Instant::now();
        let reserved: Vec<_> = (0..100).filter_map(|_| t.begin(&"a", now).ok()).collect();
        assert_eq!(reserved.len(), 3);
        for a in reserved {
            a.failed_at(now);
        }
        assert!(
            t.begin(&"a", now).is_err(),
            "the third failure started a delay"
        );
        // After the delay, one at a time.
        let later = now + Duration::from_secs(1);
        let one = t.begin(&"a", later).expect("the delay is over");
        assert!(
            t.begin(&"a", later).is_err(),
            "one in flight past the budget"
        );
        assert_eq!(one.failed_at(later), Duration::from_secs(2));
    }

    #[test]
    fn the_delay_runs_from_the_failure_not_the_request() {
        let t = Throttle::new(policy());
        let start = Instant::now();
        let slow: Vec<_> = (0..3).map(|_| t.begin(&"a", start).unwrap()).collect();
        // The checks take 10 s (a queue of argon2 verifies); the delay starts when they fail.
        let failed = start + Duration::from_secs(10);
        for a in slow {
            a.failed_at(failed);
        }
        assert!(t.begin(&"a", failed + Duration::from_millis(500)).is_err());
        assert!(t.begin(&"a", failed + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn dropped_reservations_count_and_withdrawn_ones_do_not() {
        let t = Throttle::new(policy());
        let now = Instant::now();
        for _ in 0..5 {
            t.begin(&"w", now).unwrap().withdraw();
        }
        assert!(t.begin(&"w", now).is_ok(), "withdrawn guesses cost nothing");
        for _ in 0..3 {
            drop(t.begin(&"d", now).unwrap());
        }
        assert!(
            t.begin(&"d", Instant::now()).is_err(),
            "a guess abandoned mid-check counts as wrong"
        );
    }

    #[test]
    fn a_success_in_flight_does_not_free_the_others() {
        let t = Throttle::new(policy());
        let now = Instant::now();
        let a = t.begin(&"k", now).unwrap();
        let b = t.begin(&"k", now).unwrap();
        let c = t.begin(&"k", now).unwrap();
        a.succeeded();
        // Two still in flight: one more free guess, not three.
        assert!(t.begin(&"k", now).is_ok_and(|x| {
            x.withdraw();
            true
        }));
        b.failed_at(now);
        c.failed_at(now);
    }

    #[test]
    fn memory_is_bounded() {
        let t = Throttle::new(policy());
        let now = Instant::now();
        for i in 0..(MAX_KEYS + 50) {
            t.begin(&i, now).unwrap().failed_at(now);
        }
        assert!(t.entries.lock().unwrap().len() <= MAX_KEYS);
    }
}
