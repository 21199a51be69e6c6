//! The sender's pacer: a token bucket over UDP payload bytes, driven by the clock
//! value the shell passes in. Owns nothing but its arithmetic. Tokens are kept in
//! thousandths of a byte, so rates below one byte per millisecond still work with
//! a millisecond clock.

/// A token bucket: `rate` bytes per second on average, at most `burst` bytes at once.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: u64,
    burst_milli: i64,
    tokens_milli: i64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket. `rate` 0 means unlimited. `burst` is capped at 1 TiB.
    pub fn new(rate: u64, burst: u64, now_ms: u64) -> Self {
        let burst_milli =
            i64::try_from(burst.min(1 << 40).saturating_mul(1000)).unwrap_or(i64::MAX);
        Self {
            rate,
            burst_milli,
            tokens_milli: burst_milli,
            last_ms: now_ms,
        }
    }

    /// Whether the bucket is unlimited.
    pub fn unlimited(&self) -> bool {
        self.rate == 0
    }

    /// Adds the tokens earned since the last call.
    pub fn refill(&mut self, now_ms: u64) {
        if now_ms <= self.last_ms {
            return;
        }
        let earned = (now_ms - self.last_ms).saturating_mul(self.rate);
        let earned = i64::try_from(earned).unwrap_or(i64::MAX);
        self.tokens_milli = self
            .tokens_milli
            .saturating_add(earned)
            .min(self.burst_milli);
        self.last_ms = now_ms;
    }

    fn cost(len: usize) -> i64 {
        i64::try_from(len).unwrap_or(i64::MAX).saturating_mul(1000)
    }

    /// Whether `len` bytes may go now (after [`refill`](Self::refill)).
    pub fn ready(&self, len: usize) -> bool {
        self.unlimited() || self.tokens_milli >= Self::cost(len)
    }

    /// Spends `len` bytes; the balance may go negative (a heartbeat that must go).
    pub fn take(&mut self, len: usize) {
        if !self.unlimited() {
            self.tokens_milli = self.tokens_milli.saturating_sub(Self::cost(len));
        }
    }

    /// The earliest time at which `len` bytes may go.
    pub fn ready_at(&self, len: usize) -> u64 {
        if self.ready(len) {
            return self.last_ms;
        }
        let missing = Self::cost(len).saturating_sub(self.tokens_milli).max(0) as u64;
        self.last_ms.saturating_add(missing.div_ceil(self.rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_to_rate() {
        // 1 MB/s, burst of 3000 bytes, datagrams of 1000 bytes.
        let mut b = TokenBucket::new(1_000_000, 3000, 0);
        let mut now = 0;
        let mut sent = 0u64;
        while now <= 1000 {
            b.refill(now);
            if b.ready(1000) {
                b.take(1000);
                sent += 1000;
            } else {
                now = b.ready_at(1000).max(now + 1);
            }
        }
        assert!((1_000_000..=1_004_000).contains(&sent), "sent {sent}");
    }

    #[test]
    fn unlimited_and_debt() {
        let mut u = TokenBucket::new(0, 0, 0);
        u.take(1 << 30);
        assert!(u.ready(1 << 30));
        let mut b = TokenBucket::new(1000, 100, 0);
        b.take(200);
        assert!(!b.ready(1));
        assert_eq!(b.ready_at(100), 200);
        b.refill(200);
        assert!(b.ready(100));
    }
}
