//! Sequence analysis: `__pack_id__` per prefix and service_mock `Index` values.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::store::{ReceivedGroup, ReceivedLog};

/// Pack-id sequences seen under one prefix.
#[derive(Clone, Debug, Default)]
pub struct PrefixReport {
    /// Groups seen with this prefix.
    pub groups: usize,
    /// Smallest sequence.
    pub min: u64,
    /// Largest sequence.
    pub max: u64,
    /// Sequences seen more than once (each listed once).
    pub duplicates: Vec<u64>,
    /// Sequences missing between `min` and `max`.
    pub missing: u64,
}

/// Pack ids of a set of groups.
#[derive(Clone, Debug, Default)]
pub struct PackIdReport {
    /// Per prefix.
    pub prefixes: BTreeMap<String, PrefixReport>,
    /// Groups without a `__pack_id__` tag.
    pub without_pack_id: usize,
    /// Groups whose `__pack_id__` is not the last tag.
    pub not_last: usize,
    /// Pack ids that are not `<HEX>-<HEX>`.
    pub malformed: Vec<String>,
}

impl PackIdReport {
    /// Sum of duplicated sequences over all prefixes.
    pub fn duplicates(&self) -> usize {
        self.prefixes.values().map(|p| p.duplicates.len()).sum()
    }

    /// Sum of missing sequences over all prefixes.
    pub fn gaps(&self) -> u64 {
        self.prefixes.values().map(|p| p.missing).sum()
    }

    /// No duplicate, no gap, every group tagged last with a well-formed pack id.
    pub fn is_clean(&self) -> bool {
        self.duplicates() == 0
            && self.gaps() == 0
            && self.without_pack_id == 0
            && self.not_last == 0
            && self.malformed.is_empty()
    }
}

impl fmt::Display for PackIdReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pack ids: {} prefixes, duplicates={}, gaps={}, without={}, not_last={}, malformed={:?}",
            self.prefixes.len(),
            self.duplicates(),
            self.gaps(),
            self.without_pack_id,
            self.not_last,
            self.malformed.iter().take(5).collect::<Vec<_>>()
        )?;
        for (prefix, p) in &self.prefixes {
            let dups: Vec<_> = p.duplicates.iter().take(10).collect();
            write!(
                f,
                "; {prefix}: groups={} seq {:#x}..={:#x} dups={dups:?} missing={}",
                p.groups, p.min, p.max, p.missing
            )?;
        }
        Ok(())
    }
}

/// Splits `<HEX prefix>-<HEX seq>` at the last `-`.
pub fn parse_pack_id(id: &str) -> Option<(&str, u64)> {
    let (prefix, seq) = id.rsplit_once('-')?;
    if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some((prefix, u64::from_str_radix(seq, 16).ok()?))
}

/// Analyses the pack ids of `groups`.
pub fn analyze_pack_ids<'a>(groups: impl IntoIterator<Item = &'a ReceivedGroup>) -> PackIdReport {
    let mut r = PackIdReport::default();
    let mut seqs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for g in groups {
        let Some(id) = &g.pack_id else {
            r.without_pack_id += 1;
            continue;
        };
        if !g.pack_id_is_last {
            r.not_last += 1;
        }
        match parse_pack_id(id) {
            Some((prefix, seq)) => seqs.entry(prefix.to_owned()).or_default().push(seq),
            None => r.malformed.push(id.clone()),
        }
    }
    for (prefix, mut v) in seqs {
        v.sort_unstable();
        let mut p = PrefixReport {
            groups: v.len(),
            min: v[0],
            max: v[v.len() - 1],
            ..PrefixReport::default()
        };
        for w in v.windows(2) {
            if w[0] == w[1] {
                if p.duplicates.last() != Some(&w[0]) {
                    p.duplicates.push(w[0]);
                }
            } else {
                p.missing += w[1] - w[0] - 1;
            }
        }
        r.prefixes.insert(prefix, p);
    }
    r
}

/// `Index` values of a set of logs.
#[derive(Clone, Debug, Default)]
pub struct IndexReport {
    /// Logs examined.
    pub logs: usize,
    /// Logs without a numeric `Index`.
    pub without_index: usize,
    /// Distinct values.
    pub distinct: BTreeSet<u64>,
    /// Values seen more than once, with their count.
    pub duplicates: BTreeMap<u64, usize>,
}

impl IndexReport {
    /// Smallest value.
    pub fn min(&self) -> Option<u64> {
        self.distinct.first().copied()
    }

    /// Largest value.
    pub fn max(&self) -> Option<u64> {
        self.distinct.last().copied()
    }

    /// Values missing from `1..=max` (at most `limit` of them).
    pub fn missing_from_one(&self, limit: usize) -> Vec<u64> {
        let max = self.max().unwrap_or(0);
        (1..=max)
            .filter(|i| !self.distinct.contains(i))
            .take(limit)
            .collect()
    }

    /// Whether the distinct values are exactly `1..=n`.
    pub fn is_exactly_one_to(&self, n: u64) -> bool {
        self.distinct.len() as u64 == n && self.min() == Some(1) && self.max() == Some(n)
            || (n == 0 && self.distinct.is_empty())
    }
}

impl fmt::Display for IndexReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dups: Vec<_> = self.duplicates.iter().take(10).collect();
        write!(
            f,
            "Index: logs={} without_index={} distinct={} min={:?} max={:?} missing(first 10)={:?} duplicates(first 10)={:?}",
            self.logs,
            self.without_index,
            self.distinct.len(),
            self.min(),
            self.max(),
            self.missing_from_one(10),
            dups
        )
    }
}

/// The generations whose `Index` values are not exactly `1..=K` (K their largest):
/// (generation, K, distinct values, the first values missing).
pub fn incomplete_generations<G: Clone + Ord>(
    per_gen: &BTreeMap<G, BTreeSet<u64>>,
) -> Vec<(G, u64, usize, Vec<u64>)> {
    per_gen
        .iter()
        .filter_map(|(gen, idx)| {
            let k = *idx.last()?;
            (idx.len() as u64 != k || idx.first() != Some(&1)).then(|| {
                let missing = (1..=k).filter(|i| !idx.contains(i)).take(10).collect();
                (gen.clone(), k, idx.len(), missing)
            })
        })
        .collect()
}

/// Analyses the `Index` fields of `logs`.
pub fn analyze_indexes<'a>(logs: impl IntoIterator<Item = &'a ReceivedLog>) -> IndexReport {
    let mut r = IndexReport::default();
    for l in logs {
        r.logs += 1;
        match l.index() {
            Some(i) => {
                if !r.distinct.insert(i) {
                    *r.duplicates.entry(i).or_insert(1) += 1;
                }
            }
            None => r.without_index += 1,
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_id_gaps_and_duplicates_are_counted_per_prefix() {
        let mk = |id: &str| ReceivedGroup {
            config: "c".into(),
            logstore: "l".into(),
            lines: 0,
            shard_hash: None,
            pack_id: Some(id.into()),
            pack_id_is_last: true,
            logs: vec![],
            group: Default::default(),
        };
        let gs = [
            mk("AB-1"),
            mk("AB-2"),
            mk("AB-2"),
            mk("AB-5"),
            mk("CD-a"),
            mk("CD-b"),
        ];
        let r = analyze_pack_ids(&gs);
        assert_eq!(r.duplicates(), 1);
        assert_eq!(r.gaps(), 2);
        assert_eq!(r.prefixes["CD"].min, 10);
        assert!(!r.is_clean());
    }

    #[test]
    fn index_report_detects_one_to_n() {
        let mk = |i: u64| ReceivedLog {
            time: 0,
            contents: vec![("Index".into(), i.to_string())],
        };
        let logs: Vec<_> = (1..=5).map(mk).collect();
        let r = analyze_indexes(&logs);
        assert!(r.is_exactly_one_to(5));
        assert!(!r.is_exactly_one_to(4));
        let logs: Vec<_> = [1, 2, 4, 4].into_iter().map(mk).collect();
        let r = analyze_indexes(&logs);
        assert_eq!(r.missing_from_one(10), vec![3]);
        assert_eq!(r.duplicates[&4], 2);
    }
}
