//! The one back-off of the engine: 10 ms before the first retry, doubling, capped at 1 s.
//! Used for restarting failed plugins, re-sending what the host refused and the reporter.

use std::time::Duration;

/// Longest back-off.
pub const MAX: Duration = Duration::from_secs(1);
/// Back-off before the first retry.
pub const FIRST: Duration = Duration::from_millis(10);

/// Back-off before the `n`th consecutive retry (`n` ≥ 1; 0 is treated as 1).
pub fn delay(n: u32) -> Duration {
    FIRST
        .saturating_mul(1 << n.saturating_sub(1).min(16))
        .min(MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_ten_ms_and_caps_at_one_second() {
        assert_eq!(delay(0), Duration::from_millis(10));
        assert_eq!(delay(1), Duration::from_millis(10));
        assert_eq!(delay(2), Duration::from_millis(20));
        assert_eq!(delay(7), Duration::from_millis(640));
        assert_eq!(delay(8), MAX);
        assert_eq!(delay(100), MAX);
    }
}
