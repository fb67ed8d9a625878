//! Deterministic JSON application-log lines for `bench --input json` (~250 bytes on average):
//! time, level, message, user id, a nested request object (with a nested client object),
//! latency and a small array.

use std::fmt::Write as _;

use crate::nginx::civil_from_days;
use crate::rng::SplitMix64;

const LEVELS: [&str; 8] = [
    "INFO", "INFO", "INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR",
];

const MESSAGES: [&str; 6] = [
    "order created",
    "payment authorized",
    "cache miss, loading from database",
    "user session refreshed",
    "inventory reserved",
    "request failed: upstream timeout",
];

const METHODS: [&str; 4] = ["GET", "GET", "POST", "PUT"];

const PATHS: [&str; 5] = [
    "/api/v1/orders",
    "/api/v1/users",
    "/api/v1/payments",
    "/api/v2/cart/items",
    "/api/v1/search",
];

const STATUSES: [u16; 8] = [200, 200, 200, 200, 201, 204, 404, 500];

/// Generates lines; the same seed gives the same lines.
pub struct JsonLines {
    rng: SplitMix64,
    epoch: u64,
}

impl JsonLines {
    /// A generator seeded with `seed`, timestamps starting at `epoch` (seconds).
    pub fn new(seed: u64, epoch: u64) -> Self {
        JsonLines {
            rng: SplitMix64::new(seed),
            epoch,
        }
    }

    /// The `i`-th line (the timestamp advances one second every 1000 lines).
    pub fn line(&mut self, i: u64) -> String {
        let r = &mut self.rng;
        let secs = self.epoch + i / 1000;
        let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
        let s = secs % 86_400;
        let pick = |r: &mut SplitMix64, n: usize| r.below(n as u64) as usize;
        let mut l = String::with_capacity(320);
        let _ = write!(
            l,
            r#"{{"time":"{y}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z","level":"{}","msg":"{}","user_id":{},"#,
            s / 3600,
            s / 60 % 60,
            s % 60,
            i % 1000,
            LEVELS[pick(r, LEVELS.len())],
            MESSAGES[pick(r, MESSAGES.len())],
            r.below(10_000_000),
        );
        let _ = write!(
            l,
            r#""request":{{"id":"{:08x}","method":"{}","path":"{}","status":{},"client":{{"ip":"10.{}.{}.{}"}}}},"#,
            r.next_u64() as u32,
            METHODS[pick(r, METHODS.len())],
            PATHS[pick(r, PATHS.len())],
            STATUSES[pick(r, STATUSES.len())],
            r.below(256),
            r.below(256),
            1 + r.below(254),
        );
        let _ = write!(
            l,
            r#""latency_ms":{}.{:03},"tags":["web","v{}"]}}"#,
            r.below(2000),
            r.below(1000),
            1 + r.below(3),
        );
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_json_of_about_250_bytes() {
        let mut g = JsonLines::new(7, 1_700_000_000);
        let lines: Vec<String> = (0..2000).map(|i| g.line(i)).collect();
        for l in &lines {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert!(
                v["time"].as_str().unwrap().starts_with("2023-11-14T22:"),
                "{l}"
            );
            assert!(v["level"].is_string() && v["msg"].is_string(), "{l}");
            assert!(v["user_id"].is_u64(), "{l}");
            assert!(v["request"]["method"].is_string(), "{l}");
            assert!(v["request"]["status"].is_u64(), "{l}");
            assert!(v["request"]["client"]["ip"].is_string(), "{l}");
            assert!(v["latency_ms"].is_f64(), "{l}");
            assert!(v["tags"].is_array(), "{l}");
            assert!((200..=300).contains(&l.len()), "{} bytes: {l}", l.len());
        }
        let avg = lines.iter().map(String::len).sum::<usize>() / lines.len();
        assert!((230..=270).contains(&avg), "average {avg}");
        let distinct: std::collections::HashSet<&String> = lines.iter().collect();
        assert_eq!(distinct.len(), lines.len());
    }

    #[test]
    fn deterministic_and_timed() {
        let mut a = JsonLines::new(1, 0);
        let mut b = JsonLines::new(1, 0);
        for i in 0..100 {
            assert_eq!(a.line(i), b.line(i));
        }
        let v: serde_json::Value = serde_json::from_str(&a.line(86_400_000)).unwrap();
        assert!(v["time"]
            .as_str()
            .unwrap()
            .starts_with("1970-01-02T00:00:00."));
    }
}
