//! Deterministic nginx "combined" access-log lines for `bench` (~200 bytes on average, with
//! varying client IPs, methods, paths, statuses, sizes, referers and user agents).

use std::fmt::Write as _;

use crate::rng::SplitMix64;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

const AGENTS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "curl/8.4.0",
    "Go-http-client/1.1",
];

const WORDS: [&str; 8] = [
    "shoes",
    "laptop",
    "coffee",
    "garden",
    "camera",
    "books",
    "headphones",
    "bicycle",
];

/// Generates lines; the same seed gives the same lines.
pub struct NginxLines {
    rng: SplitMix64,
    epoch: u64,
    status: u16,
}

/// `(year, month 1..=12, day)` of a day count since 1970-01-01 (H. Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `23/Nov/2026:12:49:26 +0000`.
pub fn nginx_time(secs: u64) -> String {
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

impl NginxLines {
    /// A generator seeded with `seed`, timestamps starting at `epoch` (seconds).
    pub fn new(seed: u64, epoch: u64) -> Self {
        NginxLines {
            rng: SplitMix64::new(seed),
            epoch,
            status: 0,
        }
    }

    /// HTTP status of the last line generated (0 before the first).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The `i`-th line (the timestamp advances one second every 1000 lines).
    pub fn line(&mut self, i: u64) -> String {
        let r = &mut self.rng;
        let mut l = String::with_capacity(256);
        let _ = write!(
            l,
            "{}.{}.{}.{} - - [{}] \"",
            1 + r.below(223),
            r.below(256),
            r.below(256),
            1 + r.below(254),
            nginx_time(self.epoch + i / 1000)
        );
        let method = match r.below(100) {
            0..=79 => "GET",
            80..=93 => "POST",
            94..=96 => "PUT",
            97..=98 => "DELETE",
            _ => "HEAD",
        };
        l.push_str(method);
        l.push(' ');
        match r.below(6) {
            0 => {
                let _ = write!(l, "/api/v1/users/{}/orders", r.below(1_000_000));
            }
            1 => {
                let _ = write!(l, "/static/js/app.{:08x}.js", r.next_u64() as u32);
            }
            2 => {
                let _ = write!(l, "/images/products/{}.jpg", r.below(100_000));
            }
            3 => {
                let w = WORDS[r.below(WORDS.len() as u64) as usize];
                let _ = write!(l, "/search?q={w}&page={}", 1 + r.below(20));
            }
            4 => {
                let _ = write!(
                    l,
                    "/checkout/cart?item={}&qty={}",
                    r.below(50_000),
                    1 + r.below(5)
                );
            }
            _ => l.push('/'),
        }
        let status = match r.below(100) {
            0..=74 => 200,
            75..=81 => 304,
            82..=85 => 301,
            86..=91 => 404,
            92..=94 => 201,
            95..=97 => 500,
            _ => 502,
        };
        self.status = status;
        let _ = write!(l, " HTTP/1.1\" {status} {} \"", r.below(50_000));
        if r.below(3) == 0 {
            l.push('-');
        } else {
            let _ = write!(
                l,
                "https://www.example.com/{}",
                WORDS[r.below(WORDS.len() as u64) as usize]
            );
        }
        l.push_str("\" \"");
        l.push_str(AGENTS[r.below(AGENTS.len() as u64) as usize]);
        l.push('"');
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(nginx_time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(nginx_time(1_700_000_000), "14/Nov/2023:22:13:20 +0000");
        assert_eq!(nginx_time(951_782_400), "29/Feb/2000:00:00:00 +0000");
    }

    #[test]
    fn deterministic_varied_and_about_200_bytes() {
        let a: Vec<String> = (0..2000)
            .map({
                let mut g = NginxLines::new(42, 1_700_000_000);
                move |i| g.line(i)
            })
            .collect();
        let mut g = NginxLines::new(42, 1_700_000_000);
        assert!(a.iter().enumerate().all(|(i, l)| *l == g.line(i as u64)));
        let avg = a.iter().map(String::len).sum::<usize>() / a.len();
        assert!((170..=240).contains(&avg), "average {avg}");
        let distinct: std::collections::HashSet<&String> = a.iter().collect();
        assert_eq!(distinct.len(), a.len());
        let mut g = NginxLines::new(42, 1_700_000_000);
        for (i, l) in a.iter().enumerate().take(200) {
            g.line(i as u64);
            let status = l.split('"').nth(2).unwrap().split(' ').nth(1).unwrap();
            assert_eq!(status, g.status().to_string());
        }
        let statuses: std::collections::HashSet<&str> = a
            .iter()
            .map(|l| l.split('"').nth(2).unwrap().split(' ').nth(1).unwrap())
            .collect();
        assert!(statuses.len() >= 5, "{statuses:?}");
    }

    #[test]
    fn combined_format_shape() {
        let mut g = NginxLines::new(1, 1_700_000_000);
        for i in 0..500 {
            let l = g.line(i);
            // ip - - [time] "request" status bytes "referer" "agent"
            let parts: Vec<&str> = l.split('"').collect();
            assert_eq!(parts.len(), 7, "{l}");
            let head: Vec<&str> = parts[0].split(' ').collect();
            assert_eq!(head[0].split('.').count(), 4, "{l}");
            assert!(head[0].split('.').all(|o| o.parse::<u8>().is_ok()), "{l}");
            assert_eq!((head[1], head[2]), ("-", "-"));
            assert!(head[3].starts_with('[') && head[4] == "+0000]", "{l}");
            let req: Vec<&str> = parts[1].split(' ').collect();
            assert_eq!(req.len(), 3, "{l}");
            assert!(req[1].starts_with('/') && req[2] == "HTTP/1.1", "{l}");
            let sb: Vec<&str> = parts[2].trim().split(' ').collect();
            assert!(
                sb[0].parse::<u16>().is_ok() && sb[1].parse::<u32>().is_ok(),
                "{l}"
            );
            assert!(parts[3] == "-" || parts[3].starts_with("https://"), "{l}");
            assert!(!parts[5].is_empty() && parts[6].is_empty(), "{l}");
        }
    }
}
