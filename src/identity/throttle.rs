//! Security-sensitive: slows down guessing (passwords, PINs, setup codes) with delays that
//! grow with each failure and fade with time, so an attacker is slowed to a crawl but can
//! never lock the owner out for good.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a throttle grows.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Failures allowed before any delay (typos happen).
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
    failures: u32,
    blocked_until: Instant,
    last_failure: Instant,
}

/// Failure counts per key (an address, an account).
pub struct Throttle<K> {
    policy: Policy,
    entries: Mutex<HashMap<K, Entry>>,
}

/// Most keys tracked at once; past this, the oldest are dropped. Bounds memory under a
/// flood of addresses (IPv6 gives an attacker plenty).
const MAX_KEYS: usize = 10_000;

impl<K: Eq + Hash + Clone> Throttle<K> {
    pub fn new(policy: Policy) -> Self {
        Throttle {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` if `key` must wait before trying again.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some(e) if e.blocked_until > now => Err(e.blocked_until - now),
            _ => Ok(()),
        }
    }

    /// Records a failure; returns the delay now imposed (zero while within `free`).
    pub fn fail(&self, key: &K, now: Instant) -> Duration {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_KEYS && !entries.contains_key(key) {
            let forget = self.policy.forget_after;
            entries.retain(|_, e| now.saturating_duration_since(e.last_failure) < forget);
            if entries.len() >= MAX_KEYS
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.last_failure)
                    .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        let e = entries.entry(key.clone()).or_insert(Entry {
            failures: 0,
            blocked_until: now,
            last_failure: now,
        });
        if now.saturating_duration_since(e.last_failure) >= self.policy.forget_after {
            e.failures = 0;
        }
        e.failures += 1;
        e.last_failure = now;
        let delay = self.delay_for(e.failures);
        e.blocked_until = now + delay;
        delay
    }

    /// A success clears the key.
    pub fn succeed(&self, key: &K) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    fn delay_for(&self, failures: u32) -> Duration {
        if failures <= self.policy.free {
            return Duration::ZERO;
        }
        let doublings = (failures - self.policy.free - 1).min(30);
        self.policy
            .base
            .saturating_mul(1u32 << doublings)
            .min(self.policy.max)
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
        let now = Instant::now();
        let delays: Vec<u64> = (0..10).map(|_| t.fail(&"a", now).as_secs()).collect();
        assert_eq!(delays, [0, 0, 0, 1, 2, 4, 8, 16, 32, 60]);
        assert!(t.check(&"a", now).is_err());
        assert!(t.check(&"b", now).is_ok(), "other keys are not affected");
        assert!(
            t.check(&"a", now + Duration::from_secs(61)).is_ok(),
            "never permanent"
        );
    }

    #[test]
    fn success_and_time_forgive() {
        let t = Throttle::new(policy());
        let now = Instant::now();
        for _ in 0..5 {
            t.fail(&"a", now);
        }
        t.succeed(&"a");
        assert!(t.check(&"a", now).is_ok());
        for _ in 0..5 {
            t.fail(&"b", now);
        }
        let later = now + Duration::from_secs(7200);
        assert_eq!(
            t.fail(&"b", later),
            Duration::ZERO,
            "old failures are forgotten"
        );
    }

    #[test]
    fn memory_is_bounded() {
        let t = Throttle::new(policy());
        let now = Instant::now();
        for i in 0..(MAX_KEYS + 50) {
            t.fail(&i, now);
        }
        assert!(t.entries.lock().unwrap().len() <= MAX_KEYS);
    }
}
