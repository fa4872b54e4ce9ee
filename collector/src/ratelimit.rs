//! Per-agent rate limit: a token bucket per credential.
//!
//! A bucket holds up to `burst` tokens and refills at `per_sec`; a request takes one.
//! Buckets exist only for authenticated credentials, so their number is bounded by the
//! enrolled agents; [`MAX_BUCKETS`] bounds it regardless, dropping full buckets first
//! (a full bucket is the same as none).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Buckets kept at most.
pub const MAX_BUCKETS: usize = 100_000;

/// The limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Sustained requests per second.
    pub per_sec: u32,
    /// Requests allowed at once after a quiet period.
    pub burst: u32,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by credential id.
#[derive(Debug)]
pub struct RateLimiter {
    rate: Option<Rate>,
    buckets: Mutex<HashMap<i64, Bucket>>,
}

impl RateLimiter {
    /// A limiter; `None` or a zero rate lets everything through.
    pub fn new(rate: Option<Rate>) -> RateLimiter {
        RateLimiter {
            rate: rate.filter(|r| r.per_sec > 0 && r.burst > 0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `id` at `now`, or says how long until one is available.
    pub fn check(&self, id: i64, now: Instant) -> Result<(), Duration> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let per_sec = f64::from(rate.per_sec);
        let burst = f64::from(rate.burst);
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_BUCKETS && !map.contains_key(&id) {
            map.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_sec < burst
            });
        }
        let b = map.entry(id).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_sec).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_the_sustained_rate() {
        let l = RateLimiter::new(Some(Rate {
            per_sec: 10,
            burst: 3,
        }));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check(1, t0).is_ok());
        }
        let wait = l.check(1, t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Another agent has its own bucket.
        assert!(l.check(2, t0).is_ok());
        // 100 ms later one token is back, not more.
        let t1 = t0 + Duration::from_millis(100);
        assert!(l.check(1, t1).is_ok());
        assert!(l.check(1, t1).is_err());
        // After a long pause, the burst again and no more.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(l.check(1, t2).is_ok());
        }
        assert!(l.check(1, t2).is_err());
    }

    #[test]
    fn a_zero_rate_is_no_limit() {
        let l = RateLimiter::new(Some(Rate {
            per_sec: 0,
            burst: 0,
        }));
        let t = Instant::now();
        for _ in 0..1000 {
            assert!(l.check(1, t).is_ok());
        }
    }
}
