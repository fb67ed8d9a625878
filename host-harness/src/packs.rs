//! Pack-id tracking: the base tags each group with `__pack_id__` = `<prefix>-<hex seq>`, the
//! sequence rising by one per prefix. A receiver can then count duplicates and gaps.

use std::collections::{BTreeMap, HashMap};

/// Splits `PREFIX-HEXSEQ` at the last `-`. `None` when malformed.
pub fn parse_pack_id(id: &str) -> Option<(&str, u64)> {
    let (prefix, seq) = id.rsplit_once('-')?;
    if prefix.is_empty() || seq.is_empty() || seq.starts_with('+') {
        return None;
    }
    Some((prefix, u64::from_str_radix(seq, 16).ok()?))
}

/// The sequences seen under one prefix, as disjoint ranges (`start → end`, inclusive), so
/// memory grows with the gaps and reorderings, not with the number of groups.
#[derive(Default)]
struct PrefixSeqs {
    ranges: BTreeMap<u64, u64>,
    count: u64,
    duplicates: u64,
    min: u64,
    max: u64,
}

impl PrefixSeqs {
    /// Adds `seq`; false when it was seen before.
    fn insert(&mut self, seq: u64) -> bool {
        let before = self.ranges.range(..=seq).next_back().map(|(s, e)| (*s, *e));
        if let Some((_, end)) = before {
            if seq <= end {
                return false;
            }
        }
        let joins_before = before.filter(|(_, end)| end.checked_add(1) == Some(seq));
        let after = seq
            .checked_add(1)
            .and_then(|next| self.ranges.get(&next).map(|end| (next, *end)));
        match (joins_before, after) {
            (Some((start, _)), Some((next, end))) => {
                self.ranges.remove(&next);
                self.ranges.insert(start, end);
            }
            (Some((start, _)), None) => {
                self.ranges.insert(start, seq);
            }
            (None, Some((next, end))) => {
                self.ranges.remove(&next);
                self.ranges.insert(seq, end);
            }
            (None, None) => {
                self.ranges.insert(seq, seq);
            }
        }
        self.count += 1;
        true
    }
}

/// Sequences seen per prefix.
#[derive(Default)]
pub struct PackTracker {
    prefixes: HashMap<String, PrefixSeqs>,
    /// Groups without a `__pack_id__` tag.
    pub missing: u64,
    /// Groups whose pack id is not `PREFIX-HEXSEQ`.
    pub malformed: u64,
}

impl PackTracker {
    /// Records the pack id of one received group.
    pub fn record(&mut self, pack_id: Option<&str>) {
        let Some(id) = pack_id else {
            self.missing += 1;
            return;
        };
        let Some((prefix, seq)) = parse_pack_id(id) else {
            self.malformed += 1;
            return;
        };
        if !self.prefixes.contains_key(prefix) {
            self.prefixes.insert(
                prefix.to_string(),
                PrefixSeqs {
                    min: seq,
                    max: seq,
                    ..PrefixSeqs::default()
                },
            );
        }
        let p = self.prefixes.get_mut(prefix).expect("inserted above");
        if !p.insert(seq) {
            p.duplicates += 1;
        }
        p.min = p.min.min(seq);
        p.max = p.max.max(seq);
    }

    /// Groups received again with a pack id already seen.
    pub fn duplicates(&self) -> u64 {
        self.prefixes.values().map(|p| p.duplicates).sum()
    }

    /// Sequences missing between the lowest and highest seen, summed over prefixes.
    pub fn gaps(&self) -> u64 {
        self.prefixes
            .values()
            .map(|p| (p.max - p.min + 1).saturating_sub(p.count))
            .sum()
    }

    /// Distinct prefixes seen.
    pub fn prefixes(&self) -> usize {
        self.prefixes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefix_and_hex_sequence() {
        assert_eq!(parse_pack_id("A1B2C3-1F"), Some(("A1B2C3", 31)));
        assert_eq!(parse_pack_id("a-b-10"), Some(("a-b", 16)));
        assert_eq!(parse_pack_id("nodash"), None);
        assert_eq!(parse_pack_id("-1"), None);
        assert_eq!(parse_pack_id("AB-"), None);
        assert_eq!(parse_pack_id("AB-xyz"), None);
        assert_eq!(parse_pack_id("AB-+1"), None);
    }

    #[test]
    fn counts_duplicates_and_gaps_per_prefix() {
        let mut t = PackTracker::default();
        for id in ["P-1", "P-2", "P-2", "P-5", "Q-A", "Q-B", "Q-B", "Q-B"] {
            t.record(Some(id));
        }
        t.record(None);
        t.record(Some("garbage"));
        assert_eq!(t.duplicates(), 3);
        assert_eq!(t.gaps(), 2); // P-3, P-4
        assert_eq!(t.prefixes(), 2);
        assert_eq!((t.missing, t.malformed), (1, 1));
    }

    #[test]
    fn ranges_merge_and_stay_few() {
        let mut t = PackTracker::default();
        for i in (1..=10_000u64).rev() {
            t.record(Some(&format!("R-{i:X}")));
        }
        t.record(Some("R-5"));
        assert_eq!((t.duplicates(), t.gaps()), (1, 0));
        assert_eq!(t.prefixes["R"].ranges.len(), 1);
        for id in ["S-1", "S-3", "S-5", "S-2", "S-4"] {
            t.record(Some(id));
        }
        assert_eq!(t.prefixes["S"].ranges.len(), 1);
        assert_eq!((t.duplicates(), t.gaps()), (1, 0));
    }

    #[test]
    fn out_of_order_is_not_a_gap() {
        let mut t = PackTracker::default();
        for id in ["X-3", "X-1", "X-2", "X-0"] {
            t.record(Some(id));
        }
        assert_eq!((t.duplicates(), t.gaps()), (0, 0));
    }
}
