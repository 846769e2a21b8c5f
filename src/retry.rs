//! Retry with exponential backoff: pure functions of the attempt number.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a backoff delay is randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    /// The delay is exactly the capped exponential base.
    #[default]
    None,
    /// Uniform in `[0, base]` (AWS "full jitter").
    Full,
    /// `base / 2` plus uniform in `[0, base / 2]` (AWS "equal jitter").
    Equal,
}

/// When and how often a failed or timed-out attempt is tried again.
///
/// The delay before attempt `n + 1`, after attempt `n` failed, has the base
/// `min(max_delay, initial_delay * multiplier^(n - 1))`, randomised by
/// [`Jitter`] from the scheduler's seeded RNG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means no retry.
    pub max_attempts: u32,
    /// The base delay after the first failure.
    pub initial_delay: Duration,
    /// The growth of the base delay per further failure; at least 1.
    pub multiplier: f64,
    /// The cap on the base delay.
    pub max_delay: Duration,
    /// How the delay is randomised.
    pub jitter: Jitter,
}

impl Default for RetryPolicy {
    /// No retry: one attempt.
    fn default() -> Self {
        RetryPolicy::none()
    }
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            initial_delay: Duration::from_secs(1),
            multiplier: 2.0,
            max_delay: Duration::from_secs(300),
            jitter: Jitter::None,
        }
    }

    /// `max_attempts` attempts, 1 s initial delay, doubling, capped at 5 min, no jitter.
    pub fn exponential(max_attempts: u32) -> Self {
        RetryPolicy { max_attempts, ..RetryPolicy::none() }
    }

    /// Sets the initial delay.
    pub fn initial_delay(mut self, d: Duration) -> Self {
        self.initial_delay = d;
        self
    }

    /// Sets the multiplier.
    pub fn multiplier(mut self, m: f64) -> Self {
        self.multiplier = m;
        self
    }

    /// Sets the cap.
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// Sets the jitter.
    pub fn jitter(mut self, j: Jitter) -> Self {
        self.jitter = j;
        self
    }

    /// Why the policy cannot work, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("max_attempts must be at least 1, got 0".to_owned());
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(format!(
                "multiplier must be a finite number >= 1, got {}",
                self.multiplier
            ));
        }
        if self.max_delay < self.initial_delay {
            return Err(format!(
                "max_delay {:?} is shorter than initial_delay {:?}",
                self.max_delay, self.initial_delay
            ));
        }
        Ok(())
    }

    /// Whether another attempt follows a failed attempt `attempt` (1-based).
    pub fn has_next(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// The un-jittered delay after failed attempt `attempt` (1-based).
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(1_000) as i32;
        let secs = self.initial_delay.as_secs_f64() * self.multiplier.powi(exp);
        let cap = self.max_delay.as_secs_f64();
        if !secs.is_finite() || secs >= cap {
            self.max_delay
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The range `[min, max]` the jittered delay after `attempt` falls in.
    pub fn bounds(&self, attempt: u32) -> (Duration, Duration) {
        let base = self.base_delay(attempt);
        match self.jitter {
            Jitter::None => (base, base),
            Jitter::Full => (Duration::ZERO, base),
            Jitter::Equal => (base / 2, base),
        }
    }

    /// The delay after failed attempt `attempt`, drawing jitter from `rng`.
    pub fn delay(&self, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
        let base = self.base_delay(attempt);
        let nanos = u64::try_from(base.as_nanos()).unwrap_or(u64::MAX);
        match self.jitter {
            Jitter::None => base,
            Jitter::Full => Duration::from_nanos(rng.u64(0..=nanos)),
            Jitter::Equal => {
                let half = nanos / 2;
                Duration::from_nanos(half + rng.u64(0..=nanos - half))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubling_until_the_cap() {
        let p = RetryPolicy::exponential(10)
            .initial_delay(Duration::from_secs(1))
            .max_delay(Duration::from_secs(10));
        let got: Vec<u64> = (1..=6).map(|n| p.base_delay(n).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn validate_names_the_bad_value() {
        assert_eq!(
            RetryPolicy::exponential(0).validate().unwrap_err(),
            "max_attempts must be at least 1, got 0"
        );
        assert!(
            RetryPolicy::exponential(3).multiplier(0.5).validate().unwrap_err().contains("0.5")
        );
    }

    proptest! {
        #[test]
        fn delay_within_formula_bounds_and_cap(
            initial_ms in 0u64..100_000,
            mult in 1.0f64..10.0,
            cap_extra in 0u64..10_000_000,
            attempt in 1u32..200,
            jitter in prop_oneof![Just(Jitter::None), Just(Jitter::Full), Just(Jitter::Equal)],
            seed in any::<u64>(),
        ) {
            let p = RetryPolicy::exponential(attempt + 1)
                .initial_delay(Duration::from_millis(initial_ms))
                .max_delay(Duration::from_millis(initial_ms + cap_extra))
                .multiplier(mult)
                .jitter(jitter);
            let mut rng = fastrand::Rng::with_seed(seed);
            let d = p.delay(attempt, &mut rng);
            let (lo, hi) = p.bounds(attempt);
            prop_assert!(lo <= d && d <= hi, "{d:?} outside [{lo:?}, {hi:?}]");
            prop_assert!(d <= p.max_delay);
            // The base is the formula, capped.
            let formula = initial_ms as f64 * mult.powi(attempt as i32 - 1);
            let cap = (initial_ms + cap_extra) as f64;
            let base_ms = p.base_delay(attempt).as_secs_f64() * 1000.0;
            prop_assert!((base_ms - formula.min(cap)).abs() <= 1e-6 * formula.min(cap).max(1.0));
            // Monotone: the base never shrinks with more attempts.
            prop_assert!(p.base_delay(attempt + 1) >= p.base_delay(attempt));
        }
    }
}
