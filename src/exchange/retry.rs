//! Retry policy for calls across the network: exponential backoff with full jitter, capped.

use std::time::Duration;

use backon::ExponentialBuilder;
use rand::RngExt;

/// Exponential delays from `min` doubling up to `max`, at most `times` retries.
pub fn backoff(min: Duration, max: Duration, times: usize) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_max_times(times)
}

/// Full jitter: a uniformly random wait between zero and the backoff's delay, so retrying clients
/// spread out instead of arriving together. Use with backon's `adjust`.
pub fn full_jitter(delay: Option<Duration>) -> Option<Duration> {
    delay.map(|d| {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rand::rng().random_range(0..=micros))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_the_delay() {
        for _ in 0..100 {
            let d = full_jitter(Some(Duration::from_millis(40))).unwrap();
            assert!(d <= Duration::from_millis(40));
        }
        assert_eq!(full_jitter(None), None);
    }
}
