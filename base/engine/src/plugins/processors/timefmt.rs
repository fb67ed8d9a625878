//! Time layouts shared by `processor_strptime` (C `strptime` directives) and
//! `processor_gotime` (Go reference layouts such as `2006-01-02 15:04:05`).
//!
//! Both kinds compile once (at build) into the same list of [`Item`]s; parsing then walks the
//! value bytes without allocating, and formatting appends to a caller's reused buffer.
//! `chrono` is used for calendar validation, the machine's time zone (with DST) and
//! broken-down fields; the text side (directives, names, offsets) is ours so that the
//! semantics follow C `strptime` and Go's `time.Parse` where they differ from chrono's.

use chrono::{DateTime, Datelike, Local, NaiveDate, Offset, TimeZone, Timelike};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A numeric field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    /// Full year.
    Year,
    /// Two-digit year: 69–99 → 19xx, 00–68 → 20xx (POSIX and Go agree).
    Year2,
    Month,
    Day,
    /// Day of the year, 1–366.
    YearDay,
    /// Hour 0–23.
    Hour,
    /// Hour 1–12 (0 accepted when parsing, like Go).
    Hour12,
    Minute,
    Second,
}

/// How a number is padded when formatted; `Space` also skips leading spaces when parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pad {
    None,
    Zero,
    Space,
}

/// Which month/weekday names a directive accepts (`Either`: full, else abbreviated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Names {
    Short,
    Long,
    Either,
}

/// How a UTC offset is formatted (parsing accepts every form: `Z`, `±hh`, `±hhmm`,
/// `±hh:mm`, `±hhmmss`, `±hh:mm:ss`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OffsetStyle {
    /// `Z` for a zero offset (Go's `Z07:00` family).
    pub(crate) z: bool,
    /// `:` between hours, minutes and seconds.
    pub(crate) colon: bool,
    /// 1 = hours, 2 = hours and minutes, 3 = with seconds.
    pub(crate) parts: u8,
}

/// One element of a compiled layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Item {
    /// Text that must appear as is.
    Lit(Box<[u8]>),
    /// A run of spaces in the layout. strptime (`go == false`): matches any run of ASCII
    /// whitespace, possibly empty. Go: matches a run of at least one space (or the end).
    Space { text: Box<[u8]>, go: bool },
    /// A number of `min..=width` digits.
    Num {
        field: Field,
        pad: Pad,
        min: u8,
        width: u8,
    },
    /// Month name (case-insensitive when parsing).
    Month(Names),
    /// Weekday name: parsed and ignored (neither C nor Go checks it against the date).
    Weekday(Names),
    /// AM/PM marker (case-insensitive when parsing).
    AmPm { upper: bool },
    /// Fractional seconds. `sep: None` (strptime `%f`): one or more digits. Go `.000`
    /// (`trim == false`): separator (`.` or `,`) and exactly `digits` digits. Go `.999`
    /// (`trim == true`): optional separator and digits; formatted without trailing zeros.
    Frac {
        sep: Option<u8>,
        digits: u8,
        trim: bool,
    },
    /// Go only: fractional seconds right after the seconds although the layout has none.
    OptFrac,
    /// UTC offset.
    Offset(OffsetStyle),
    /// Zone abbreviation (`%Z`, Go `MST`): `UTC`/`GMT`/`Z` mean offset 0 (Go: `GMT+h`
    /// too). Any other name fails a strptime value (as C `strptime` does) and is skipped in a
    /// Go one (the configured zone applies). A numeric offset in the same value wins over the
    /// name (`+0700 (UTC)` is UTC+7, as C `strptime` reads it), except that a Go value
    /// naming `UTC` is UTC whatever its offset (as Go's `time.Parse` reads it).
    ZoneName,
    /// Seconds since the epoch (`%s`): at most 10 digits, so a millisecond timestamp's
    /// extra digits are left over (iLogtail truncates `%s` values to 10 characters).
    Unix,
}

/// The zone a value without an offset of its own is read in (and values are formatted in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Zone {
    /// A fixed offset east of UTC, in seconds.
    Fixed(i32),
    /// The machine's zone, daylight saving time included.
    Local,
}

impl Zone {
    /// The offset in force at `utc`.
    pub(crate) fn offset_at(self, utc: i64) -> i32 {
        match self {
            Zone::Fixed(o) => o,
            Zone::Local => DateTime::from_timestamp(utc, 0)
                .map(|d| {
                    Local
                        .offset_from_utc_datetime(&d.naive_utc())
                        .fix()
                        .local_minus_utc()
                })
                .unwrap_or(0),
        }
    }

    /// The UTC time of wall-clock time `wall` (seconds as if the wall clock were UTC).
    /// A wall time skipped by a DST change is read with the offset before the change;
    /// a repeated one resolves to the earlier instant.
    fn wall_to_utc(self, wall: i64) -> i64 {
        match self {
            Zone::Fixed(o) => wall - i64::from(o),
            Zone::Local => {
                let Some(ndt) = DateTime::from_timestamp(wall, 0).map(|d| d.naive_utc()) else {
                    return wall;
                };
                match Local.from_local_datetime(&ndt).earliest() {
                    Some(t) => t.timestamp(),
                    None => wall - i64::from(self.offset_at(wall)),
                }
            }
        }
    }

    /// Today's date in this zone at `utc`.
    fn date_at(self, utc: i64) -> NaiveDate {
        let wall = utc + i64::from(self.offset_at(utc));
        DateTime::from_timestamp(wall, 0)
            .map(|d| d.date_naive())
            .unwrap_or_default()
    }
}

/// A compiled layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) items: Vec<Item>,
    /// Go semantics: text left after the layout is an error (strptime ignores it).
    go: bool,
}

/// What a value said; missing parts are filled in by [`resolve`].
#[derive(Default, Debug)]
struct Parts {
    year: Option<i32>,
    month: Option<u32>,
    day: Option<u32>,
    yday: Option<u32>,
    hour: Option<u32>,
    hour12: Option<u32>,
    pm: Option<bool>,
    minute: u32,
    second: u32,
    nanos: u32,
    /// From a numeric offset (`%z`, Go `-0700`).
    offset: Option<i32>,
    /// From a zone name (`%Z`, Go `MST`); a numeric offset wins over it.
    name_offset: Option<i32>,
    /// Go only: the name was `UTC`, which wins over a numeric offset (`time.Parse`).
    utc_zone: bool,
    unix: Option<i64>,
}

fn flush_lit(lit: &mut Vec<u8>, items: &mut Vec<Item>) {
    if !lit.is_empty() {
        items.push(Item::Lit(std::mem::take(lit).into()));
    }
}

const fn snum(field: Field, width: u8) -> Item {
    Item::Num {
        field,
        pad: Pad::Space,
        min: 1,
        width,
    }
}

const fn gnum(field: Field, pad: Pad, min: u8, width: u8) -> Item {
    Item::Num {
        field,
        pad,
        min,
        width,
    }
}

fn lit(s: &str) -> Item {
    Item::Lit(s.as_bytes().into())
}

impl Layout {
    /// Compiles a C `strptime` format. Supported: `%Y %y %m %d %e %j %H %k %I %l %M %S %b %B
    /// %h %a %A %p %z %Z %s %f %N %T %R %D %F %r %n %t %%` (and the `E`/`O` modifiers).
    ///
    /// # Errors
    /// An unsupported directive or a lone trailing `%`.
    pub(crate) fn strptime(format: &str) -> Result<Self, String> {
        use Field::*;
        let b = format.as_bytes();
        let mut items = Vec::new();
        let mut lit_buf = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_whitespace() {
                let start = i;
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                flush_lit(&mut lit_buf, &mut items);
                items.push(Item::Space {
                    text: b[start..i].into(),
                    go: false,
                });
                continue;
            }
            i += 1;
            if c != b'%' {
                lit_buf.push(c);
                continue;
            }
            if matches!(b.get(i), Some(b'E' | b'O')) {
                i += 1;
            }
            let Some(&d) = b.get(i) else {
                return Err("ends with a lone `%`".into());
            };
            i += 1;
            if d == b'%' {
                lit_buf.push(b'%');
                continue;
            }
            flush_lit(&mut lit_buf, &mut items);
            match d {
                b'Y' => items.push(snum(Year, 4)),
                b'y' => items.push(snum(Year2, 2)),
                b'm' => items.push(snum(Month, 2)),
                b'd' | b'e' => items.push(snum(Day, 2)),
                b'j' => items.push(snum(YearDay, 3)),
                b'H' | b'k' => items.push(snum(Hour, 2)),
                b'I' | b'l' => items.push(snum(Hour12, 2)),
                b'M' => items.push(snum(Minute, 2)),
                b'S' => items.push(snum(Second, 2)),
                b'b' | b'B' | b'h' => items.push(Item::Month(Names::Either)),
                b'a' | b'A' => items.push(Item::Weekday(Names::Either)),
                b'p' | b'P' => items.push(Item::AmPm { upper: true }),
                b'z' => items.push(Item::Offset(OffsetStyle {
                    z: false,
                    colon: false,
                    parts: 2,
                })),
                b'Z' => items.push(Item::ZoneName),
                b's' => items.push(Item::Unix),
                b'f' | b'N' => items.push(Item::Frac {
                    sep: None,
                    digits: 9,
                    trim: false,
                }),
                b'n' | b't' => items.push(Item::Space {
                    text: b" "[..].into(),
                    go: false,
                }),
                b'T' => items.extend([
                    snum(Hour, 2),
                    lit(":"),
                    snum(Minute, 2),
                    lit(":"),
                    snum(Second, 2),
                ]),
                b'R' => items.extend([snum(Hour, 2), lit(":"), snum(Minute, 2)]),
                b'D' => items.extend([
                    snum(Month, 2),
                    lit("/"),
                    snum(Day, 2),
                    lit("/"),
                    snum(Year2, 2),
                ]),
                b'F' => items.extend([
                    snum(Year, 4),
                    lit("-"),
                    snum(Month, 2),
                    lit("-"),
                    snum(Day, 2),
                ]),
                b'r' => items.extend([
                    snum(Hour12, 2),
                    lit(":"),
                    snum(Minute, 2),
                    lit(":"),
                    snum(Second, 2),
                    Item::Space {
                        text: b" "[..].into(),
                        go: false,
                    },
                    Item::AmPm { upper: true },
                ]),
                other => {
                    return Err(format!(
                        "unsupported strptime directive `%{}`",
                        char::from(other)
                    ))
                }
            }
        }
        flush_lit(&mut lit_buf, &mut items);
        Ok(Self { items, go: false })
    }

    /// Compiles a Go reference layout (`Mon Jan 2 15:04:05 MST 2006`), recognising the same
    /// elements as Go's `time` package: `January Jan Monday Mon MST 2006 06 01 1 02 2 _2 002
    /// __2 15 03 3 04 4 05 5 PM pm -0700 -07:00 -07 -070000 -07:00:00` (and the `Z…`
    /// variants), `.000`/`,000` and `.999`/`,999` fractions. Everything else is literal.
    pub(crate) fn go(layout: &str) -> Self {
        use Field::*;
        let b = layout.as_bytes();
        let mut items: Vec<Item> = Vec::new();
        let mut lit_buf = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let rest = &b[i..];
            let st = |p: &[u8]| rest.starts_with(p);
            let off =
                |z: bool, colon: bool, parts: u8| Item::Offset(OffsetStyle { z, colon, parts });
            let found: Option<(Item, usize)> = match b[i] {
                b'J' if st(b"January") => Some((Item::Month(Names::Long), 7)),
                b'J' if st(b"Jan") => Some((Item::Month(Names::Short), 3)),
                b'M' if st(b"Monday") => Some((Item::Weekday(Names::Long), 6)),
                b'M' if st(b"Mon") => Some((Item::Weekday(Names::Short), 3)),
                b'M' if st(b"MST") => Some((Item::ZoneName, 3)),
                b'0' if st(b"002") => Some((gnum(YearDay, Pad::Zero, 3, 3), 3)),
                b'0' if rest.len() >= 2 && (b'1'..=b'6').contains(&rest[1]) => {
                    let f =
                        [Month, Day, Hour12, Minute, Second, Year2][usize::from(rest[1] - b'1')];
                    Some((gnum(f, Pad::Zero, 2, 2), 2))
                }
                b'1' if st(b"15") => Some((gnum(Hour, Pad::Zero, 1, 2), 2)),
                b'1' => Some((gnum(Month, Pad::None, 1, 2), 1)),
                b'2' if st(b"2006") => Some((gnum(Year, Pad::Zero, 4, 4), 4)),
                b'2' => Some((gnum(Day, Pad::None, 1, 2), 1)),
                // `_2006` is a literal `_` followed by the year.
                b'_' if st(b"_2") && !st(b"_2006") => Some((gnum(Day, Pad::Space, 1, 2), 2)),
                b'_' if st(b"__2") => Some((gnum(YearDay, Pad::Space, 1, 3), 3)),
                b'3' => Some((gnum(Hour12, Pad::None, 1, 2), 1)),
                b'4' => Some((gnum(Minute, Pad::None, 1, 2), 1)),
                b'5' => Some((gnum(Second, Pad::None, 1, 2), 1)),
                b'P' if st(b"PM") => Some((Item::AmPm { upper: true }, 2)),
                b'p' if st(b"pm") => Some((Item::AmPm { upper: false }, 2)),
                c @ (b'-' | b'Z') => {
                    let z = c == b'Z';
                    let tail = &rest[1..];
                    if tail.starts_with(b"070000") {
                        Some((off(z, false, 3), 7))
                    } else if tail.starts_with(b"07:00:00") {
                        Some((off(z, true, 3), 9))
                    } else if tail.starts_with(b"0700") {
                        Some((off(z, false, 2), 5))
                    } else if tail.starts_with(b"07:00") {
                        Some((off(z, true, 2), 6))
                    } else if tail.starts_with(b"07") {
                        Some((off(z, false, 1), 3))
                    } else {
                        None
                    }
                }
                c @ (b'.' | b',') if rest.len() > 1 && matches!(rest[1], b'0' | b'9') => {
                    let ch = rest[1];
                    let mut j = 1;
                    while j < rest.len() && rest[j] == ch {
                        j += 1;
                    }
                    // Only a fraction when the run of 0s or 9s is not followed by a digit.
                    if rest.get(j).is_some_and(u8::is_ascii_digit) {
                        None
                    } else {
                        let digits = u8::try_from(j - 1).unwrap_or(9).min(9);
                        Some((
                            Item::Frac {
                                sep: Some(c),
                                digits,
                                trim: ch == b'9',
                            },
                            j,
                        ))
                    }
                }
                b' ' => {
                    let n = rest.iter().take_while(|&&c| c == b' ').count();
                    Some((
                        Item::Space {
                            text: rest[..n].into(),
                            go: true,
                        },
                        n,
                    ))
                }
                _ => None,
            };
            match found {
                Some((item, len)) => {
                    flush_lit(&mut lit_buf, &mut items);
                    items.push(item);
                    i += len;
                }
                None => {
                    lit_buf.push(b[i]);
                    i += 1;
                }
            }
        }
        flush_lit(&mut lit_buf, &mut items);
        // Go accepts fractional seconds after the seconds even when the layout has none.
        let mut out = Vec::with_capacity(items.len() + 1);
        let mut it = items.into_iter().peekable();
        while let Some(item) = it.next() {
            let is_sec = matches!(
                item,
                Item::Num {
                    field: Field::Second,
                    ..
                }
            );
            out.push(item);
            if is_sec && !matches!(it.peek(), Some(Item::Frac { .. })) {
                out.push(Item::OptFrac);
            }
        }
        Self {
            items: out,
            go: true,
        }
    }

    /// Parses `value`; a value without an offset of its own is read in `zone`. `now` (UTC
    /// seconds) fills a missing date: no date at all → today; month/day but no year → the
    /// current year, or the previous one if that would be more than a day in the future.
    ///
    /// # Errors
    /// Why the value does not fit the layout.
    pub(crate) fn parse(
        &self,
        value: &[u8],
        zone: Zone,
        now: i64,
    ) -> Result<(i64, u32), &'static str> {
        let mut p = Parts::default();
        let mut s = value;
        for item in &self.items {
            match item {
                Item::Lit(l) => {
                    s = s
                        .strip_prefix(&l[..])
                        .ok_or("literal text does not match")?;
                }
                Item::Space { go: true, .. } => {
                    if s.first().is_some_and(|&c| c != b' ') {
                        return Err("expected a space");
                    }
                    s = skip(s, |c| c == b' ');
                }
                Item::Space { go: false, .. } => s = skip(s, |c| c.is_ascii_whitespace()),
                &Item::Num {
                    field,
                    pad,
                    min,
                    width,
                } => {
                    if pad == Pad::Space {
                        s = skip(s, |c| c == b' ');
                    }
                    let (n, len) = digits(s, min, width).ok_or("expected a number")?;
                    s = &s[len..];
                    let n32 = u32::try_from(n).map_err(|_| "number out of range")?;
                    let i32v = i32::try_from(n).map_err(|_| "number out of range")?;
                    match field {
                        Field::Year => p.year = Some(i32v),
                        Field::Year2 => p.year = Some(if n >= 69 { 1900 } else { 2000 } + i32v),
                        Field::Month => p.month = Some(n32),
                        Field::Day => p.day = Some(n32),
                        Field::YearDay => p.yday = Some(n32),
                        Field::Hour => p.hour = Some(n32),
                        Field::Hour12 => p.hour12 = Some(n32),
                        Field::Minute => p.minute = n32,
                        Field::Second => p.second = n32,
                    }
                }
                Item::Month(names) => {
                    let (idx, len) = name(s, &MONTHS, *names).ok_or("expected a month name")?;
                    p.month = Some(idx as u32 + 1);
                    s = &s[len..];
                }
                Item::Weekday(names) => {
                    let (_, len) = name(s, &WEEKDAYS, *names).ok_or("expected a weekday name")?;
                    s = &s[len..];
                }
                Item::AmPm { .. } => {
                    let m = s.get(..2).ok_or("expected AM or PM")?;
                    p.pm = match [m[0].to_ascii_uppercase(), m[1].to_ascii_uppercase()] {
                        [b'A', b'M'] => Some(false),
                        [b'P', b'M'] => Some(true),
                        _ => return Err("expected AM or PM"),
                    };
                    s = &s[2..];
                }
                &Item::Frac { sep, digits, trim } => match sep {
                    None => {
                        let (ns, len) = fraction(s).ok_or("expected fractional seconds")?;
                        p.nanos = ns;
                        s = &s[len..];
                    }
                    Some(_) if trim => {
                        if let Some((ns, len)) = sep_fraction(s) {
                            p.nanos = ns;
                            s = &s[len..];
                        }
                    }
                    Some(_) => {
                        let want = usize::from(digits) + 1;
                        match sep_fraction(s) {
                            Some((ns, len)) if len == want => {
                                p.nanos = ns;
                                s = &s[len..];
                            }
                            _ => return Err("expected fractional seconds"),
                        }
                    }
                },
                Item::OptFrac => {
                    if let Some((ns, len)) = sep_fraction(s) {
                        p.nanos = ns;
                        s = &s[len..];
                    }
                }
                Item::Offset(_) => {
                    let (o, len) = parse_offset(s).ok_or("expected a UTC offset")?;
                    p.offset = Some(o);
                    s = &s[len..];
                }
                Item::ZoneName => {
                    let len = s.iter().take_while(|c| c.is_ascii_alphabetic()).count();
                    let n = &s[..len];
                    let utc = [&b"UTC"[..], b"GMT", b"Z"]
                        .iter()
                        .any(|z| n.eq_ignore_ascii_case(z));
                    if self.go {
                        // Go's time.Parse: `UTC` makes the time UTC, whatever numeric offset
                        // the value also has; `GMT` (or `GMT+h`) and other names only apply
                        // without one.
                        if s.len() >= 3 && s[..3].eq_ignore_ascii_case(b"UTC") {
                            p.utc_zone = true;
                            s = &s[3..];
                            continue;
                        }
                        if len == 0 {
                            return Err("expected a time zone name");
                        }
                        if n.eq_ignore_ascii_case(b"GMT") {
                            let (h, used) = gmt_hours(&s[3..]);
                            p.name_offset = Some(h * 3600);
                            s = &s[3 + used..];
                            continue;
                        }
                        if utc {
                            p.name_offset = Some(0);
                        }
                    } else if utc {
                        p.name_offset = Some(0);
                    } else if len > 0 {
                        // C strptime (iLogtail's BSD one) knows UTC and GMT only: any other
                        // name fails the value rather than reading it in a guessed zone. No
                        // name at all reads nothing.
                        return Err("unknown time zone name (only UTC and GMT are known)");
                    }
                    s = &s[len..];
                }
                Item::Unix => {
                    let (n, len) = digits(s, 1, 10).ok_or("expected epoch seconds")?;
                    p.unix = Some(n as i64);
                    s = &s[len..];
                }
            }
        }
        if self.go && !s.is_empty() {
            return Err("extra text after the time");
        }
        resolve(&p, zone, now)
    }

    /// Appends `secs.nanos` (UTC) formatted in `zone` to `out`.
    pub(crate) fn format(&self, secs: i64, nanos: u32, zone: Zone, out: &mut Vec<u8>) {
        let off = zone.offset_at(secs);
        let Some(d) = DateTime::from_timestamp(secs + i64::from(off), nanos.min(999_999_999))
            .map(|d| d.naive_utc())
        else {
            return;
        };
        for item in &self.items {
            match item {
                Item::Lit(l) | Item::Space { text: l, .. } => out.extend_from_slice(l),
                &Item::Num {
                    field, pad, width, ..
                } => {
                    let v = match field {
                        Field::Year => i64::from(d.year()),
                        Field::Year2 => i64::from(d.year().rem_euclid(100)),
                        Field::Month => i64::from(d.month()),
                        Field::Day => i64::from(d.day()),
                        Field::YearDay => i64::from(d.ordinal()),
                        Field::Hour => i64::from(d.hour()),
                        Field::Hour12 => i64::from(match d.hour() % 12 {
                            0 => 12,
                            h => h,
                        }),
                        Field::Minute => i64::from(d.minute()),
                        Field::Second => i64::from(d.second()),
                    };
                    put_num(out, v, pad, usize::from(width));
                }
                Item::Month(names) => {
                    out.extend_from_slice(pick(MONTHS[d.month0() as usize], *names))
                }
                Item::Weekday(names) => out.extend_from_slice(pick(
                    WEEKDAYS[d.weekday().num_days_from_sunday() as usize],
                    *names,
                )),
                Item::AmPm { upper } => out.extend_from_slice(match (d.hour() < 12, upper) {
                    (true, true) => b"AM",
                    (true, false) => b"am",
                    (false, true) => b"PM",
                    (false, false) => b"pm",
                }),
                &Item::Frac { sep, digits, trim } => {
                    let mut buf = [0u8; 9];
                    let mut ns = d.nanosecond().min(999_999_999);
                    for slot in buf.iter_mut().rev() {
                        *slot = b'0' + (ns % 10) as u8;
                        ns /= 10;
                    }
                    let mut n = usize::from(digits).min(9);
                    if trim {
                        while n > 0 && buf[n - 1] == b'0' {
                            n -= 1;
                        }
                        if n == 0 {
                            continue;
                        }
                    }
                    if let Some(c) = sep {
                        out.push(c);
                    }
                    out.extend_from_slice(&buf[..n]);
                }
                Item::OptFrac => {}
                Item::Offset(st) => write_offset(out, off, *st),
                Item::ZoneName => {
                    if off == 0 {
                        out.extend_from_slice(b"UTC");
                    } else {
                        write_offset(
                            out,
                            off,
                            OffsetStyle {
                                z: false,
                                colon: false,
                                parts: 2,
                            },
                        );
                    }
                }
                Item::Unix => put_num(out, secs, Pad::None, 0),
            }
        }
    }
}

/// Appends `v` in decimal, padded to `width` as `pad` says (what `{v:0w$}` / `{v:>w$}` /
/// `{v}` write, without going through `core::fmt`, which was a quarter of processor_gotime).
fn put_num(out: &mut Vec<u8>, v: i64, pad: Pad, width: usize) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = buf.len() - i + usize::from(v < 0);
    let fill = width.saturating_sub(len);
    match pad {
        Pad::Zero => {
            if v < 0 {
                out.push(b'-');
            }
            out.resize(out.len() + fill, b'0');
        }
        Pad::Space => {
            out.resize(out.len() + fill, b' ');
            if v < 0 {
                out.push(b'-');
            }
        }
        Pad::None => {
            if v < 0 {
                out.push(b'-');
            }
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn pick(name: &'static str, names: Names) -> &'static [u8] {
    match names {
        Names::Short => &name.as_bytes()[..3],
        Names::Long | Names::Either => name.as_bytes(),
    }
}

fn write_offset(out: &mut Vec<u8>, off: i32, st: OffsetStyle) {
    if st.z && off == 0 {
        out.push(b'Z');
        return;
    }
    let a = off.unsigned_abs();
    out.push(if off < 0 { b'-' } else { b'+' });
    put_num(out, i64::from(a / 3600), Pad::Zero, 2);
    if st.parts >= 2 {
        if st.colon {
            out.push(b':');
        }
        put_num(out, i64::from(a / 60 % 60), Pad::Zero, 2);
    }
    if st.parts >= 3 {
        if st.colon {
            out.push(b':');
        }
        put_num(out, i64::from(a % 60), Pad::Zero, 2);
    }
}

fn skip(s: &[u8], f: impl Fn(u8) -> bool) -> &[u8] {
    let n = s.iter().take_while(|&&c| f(c)).count();
    &s[n..]
}

/// `min..=max` leading digits.
fn digits(s: &[u8], min: u8, max: u8) -> Option<(u64, usize)> {
    let mut n = 0u64;
    let mut len = 0;
    while len < usize::from(max) {
        match s.get(len) {
            Some(c) if c.is_ascii_digit() => {
                n = n * 10 + u64::from(c - b'0');
                len += 1;
            }
            _ => break,
        }
    }
    (len >= usize::from(min)).then_some((n, len))
}

/// One or more digits read as a fraction of a second (digits past the 9th are ignored).
fn fraction(s: &[u8]) -> Option<(u32, usize)> {
    let len = s.iter().take_while(|c| c.is_ascii_digit()).count();
    if len == 0 {
        return None;
    }
    let mut ns = 0u32;
    for i in 0..9 {
        ns = ns * 10
            + s.get(i)
                .filter(|_| i < len)
                .map_or(0, |c| u32::from(c - b'0'));
    }
    Some((ns, len))
}

/// `.` or `,` followed by one or more digits.
fn sep_fraction(s: &[u8]) -> Option<(u32, usize)> {
    match s.first() {
        Some(b'.' | b',') => fraction(&s[1..]).map(|(ns, len)| (ns, len + 1)),
        _ => None,
    }
}

/// `Z`, `±hh`, `±hhmm`, `±hh:mm`, `±hhmmss`, `±hh:mm:ss` → seconds east of UTC.
fn parse_offset(s: &[u8]) -> Option<(i32, usize)> {
    let sign = match s.first()? {
        b'Z' | b'z' => return Some((0, 1)),
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let two = |at: usize| -> Option<i32> {
        let d = s.get(at..at + 2)?;
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| i32::from(d[0] - b'0') * 10 + i32::from(d[1] - b'0'))
    };
    let h = two(1)?;
    let mut secs = h * 3600;
    let mut len = 3;
    for mul in [60, 1] {
        let at = if s.get(len) == Some(&b':') {
            len + 1
        } else {
            len
        };
        match two(at) {
            Some(v) if v < 60 => {
                secs += v * mul;
                len = at + 2;
            }
            _ => break,
        }
    }
    (h < 24).then_some((sign * secs, len))
}

/// The hours of Go's `GMT+h` / `GMT-h` zone names, after the `GMT`: a sign and a number up
/// to 23 (`parseSignedOffset`); `(0, 0)` when there is none.
fn gmt_hours(s: &[u8]) -> (i32, usize) {
    let sign = match s.first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return (0, 0),
    };
    let n = s[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut h: i32 = 0;
    for &c in &s[1..1 + n] {
        h = h.saturating_mul(10).saturating_add(i32::from(c - b'0'));
    }
    if n == 0 || h > 23 {
        return (0, 0);
    }
    (sign * h, 1 + n)
}

/// Finds a month/weekday name at the start of `s` (ASCII case-insensitive).
fn name(s: &[u8], names: &[&str], style: Names) -> Option<(usize, usize)> {
    let find = |long: bool| {
        names.iter().enumerate().find_map(|(i, n)| {
            let n = if long {
                n.as_bytes()
            } else {
                &n.as_bytes()[..3]
            };
            (s.len() >= n.len() && s[..n.len()].eq_ignore_ascii_case(n)).then_some((i, n.len()))
        })
    };
    match style {
        Names::Short => find(false),
        Names::Long => find(true),
        Names::Either => find(true).or_else(|| find(false)),
    }
}

fn resolve(p: &Parts, zone: Zone, now: i64) -> Result<(i64, u32), &'static str> {
    if let Some(u) = p.unix {
        return Ok((u, p.nanos));
    }
    let hour = match p.hour12 {
        Some(h) if h > 12 => return Err("hour out of range"),
        Some(h) => match p.pm {
            Some(true) if h < 12 => h + 12,
            Some(false) if h == 12 => 0,
            _ => h,
        },
        None => p.hour.unwrap_or(0),
    };
    if hour > 23 || p.minute > 59 || p.second > 60 {
        return Err("time of day out of range");
    }
    let offset = if p.utc_zone {
        Some(0)
    } else {
        p.offset.or(p.name_offset)
    };
    let zone = offset.map_or(zone, Zone::Fixed);
    let of_day = i64::from(hour * 3600 + p.minute * 60 + p.second);
    let date_of = |year: i32| match (p.yday, p.month, p.day) {
        (Some(yd), None, None) => NaiveDate::from_yo_opt(year, yd),
        _ => NaiveDate::from_ymd_opt(year, p.month.unwrap_or(1), p.day.unwrap_or(1)),
    };
    let utc = |date: NaiveDate| {
        let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        zone.wall_to_utc(midnight.timestamp() + of_day)
    };
    let secs = match p.year {
        Some(y) => utc(date_of(y).ok_or("date out of range")?),
        None if p.month.is_none() && p.day.is_none() && p.yday.is_none() => utc(zone.date_at(now)),
        None => {
            let y = zone.date_at(now).year();
            match date_of(y).map(utc) {
                Some(t) if t <= now + 86_400 => t,
                _ => utc(date_of(y - 1).ok_or("date out of range")?),
            }
        }
    };
    Ok((secs, p.nanos))
}

#[cfg(test)]
mod put_num_tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn put_num_writes_what_format_writes() {
        for v in [0i64, 5, 42, 999, 2023, -7, -2023, i64::MIN, i64::MAX] {
            for w in [0usize, 1, 2, 4, 9] {
                for (pad, want) in [
                    (Pad::Zero, format!("{v:0w$}")),
                    (Pad::Space, format!("{v:>w$}")),
                    (Pad::None, format!("{v}")),
                ] {
                    let mut out = b"x".to_vec();
                    put_num(&mut out, v, pad, w);
                    let mut expect = b"x".to_vec();
                    write!(expect, "{want}").unwrap();
                    assert_eq!(out, expect, "{v} {w} {pad:?}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_696_946_136; // 2023-10-10T13:55:36Z
    const CST: Zone = Zone::Fixed(8 * 3600);

    fn sp(fmt: &str, v: &str, zone: Zone) -> Result<(i64, u32), &'static str> {
        Layout::strptime(fmt)
            .unwrap()
            .parse(v.as_bytes(), zone, NOW)
    }

    fn go(layout: &str, v: &str, zone: Zone) -> Result<(i64, u32), &'static str> {
        Layout::go(layout).parse(v.as_bytes(), zone, NOW)
    }

    fn fmt(layout: &str, secs: i64, nanos: u32, zone: Zone) -> String {
        let mut out = Vec::new();
        Layout::go(layout).format(secs, nanos, zone, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strptime_common_log_formats() {
        // nginx time_local
        assert_eq!(
            sp(
                "%d/%b/%Y:%H:%M:%S %z",
                "10/Oct/2023:13:55:36 +0800",
                Zone::Fixed(0)
            ),
            Ok((NOW - 8 * 3600, 0))
        );
        // RFC 5424 with micro seconds and a colon offset, and with Z
        assert_eq!(
            sp(
                "%Y-%m-%dT%H:%M:%S.%f%z",
                "2023-10-10T13:55:36.003412+08:00",
                Zone::Fixed(0)
            ),
            Ok((NOW - 8 * 3600, 3_412_000))
        );
        assert_eq!(
            sp("%Y-%m-%dT%H:%M:%S.%f%z", "2023-10-10T13:55:36.5Z", CST),
            Ok((NOW, 500_000_000))
        );
        // iLogtail README example: machine zone +8 and explicit +7.
        assert_eq!(
            sp("%Y/%m/%d %H:%M:%S", "2016/01/02 12:59:59", CST),
            Ok((1_451_710_799, 0))
        );
        assert_eq!(
            sp(
                "%Y/%m/%d %H:%M:%S",
                "2016/01/02 12:59:59",
                Zone::Fixed(25200)
            ),
            Ok((1_451_714_399, 0))
        );
        // %T %F, 12-hour clock, weekday ignored, case-insensitive names, E/O modifiers
        assert_eq!(
            sp("%F %T", "2023-10-10 13:55:36", Zone::Fixed(0)),
            Ok((NOW, 0))
        );
        assert_eq!(
            sp(
                "%a, %d %B %Y %I:%M:%S %p",
                "Mon, 10 OCTOBER 2023 01:55:36 pm",
                Zone::Fixed(0)
            ),
            Ok((NOW, 0))
        );
        assert_eq!(
            sp(
                "%a %b %e %r %Y",
                "Tue Oct 10 12:00:00 AM 2023",
                Zone::Fixed(0)
            ),
            Ok((NOW - 13 * 3600 - 55 * 60 - 36, 0))
        );
        assert_eq!(
            sp("%Ey-%Om-%d", "23-10-10", Zone::Fixed(0)).unwrap().0 % 86400,
            0
        );
        // epoch seconds; a millisecond stamp's extra digits are ignored (iLogtail truncates)
        assert_eq!(sp("%s", "1696946136", CST), Ok((NOW, 0)));
        assert_eq!(sp("%s", "1696946136123", CST), Ok((NOW, 0)));
        // day of year
        assert_eq!(
            sp("%Y %j", "2023 283", Zone::Fixed(0)),
            Ok((NOW - 50136, 0))
        );
        // %Z: UTC/GMT is offset 0; any other name fails the value (C strptime knows no
        // other), no name at all reads nothing
        assert_eq!(
            sp("%Y-%m-%d %H:%M:%S %Z", "2023-10-10 13:55:36 GMT", CST),
            Ok((NOW, 0))
        );
        for name in ["CST", "PST", "CEST", "Mountain"] {
            assert!(
                sp(
                    "%Y-%m-%d %H:%M:%S %Z",
                    &format!("2023-10-10 21:55:36 {name}"),
                    CST
                )
                .is_err(),
                "{name}"
            );
        }
        assert_eq!(
            sp("%Y-%m-%d %H:%M:%S %Z", "2023-10-10 21:55:36", CST),
            Ok((NOW, 0))
        );
        // A numeric offset wins over a zone name, in either order (C strptime: `%z` shifts the
        // fields, `%Z` only says they are absolute).
        assert_eq!(
            sp(
                "%Y/%m/%d %H:%M:%S %z (%Z)",
                "2016/01/02 12:59:59 +0700 (UTC)",
                CST
            ),
            Ok((1_451_714_399, 0))
        );
        assert_eq!(
            sp(
                "%Y/%m/%d %H:%M:%S %Z%z",
                "2016/01/02 12:59:59 GMT-0130",
                CST
            ),
            Ok((1_451_739_599 + 5400, 0))
        );
        // trailing text is ignored, like C strptime
        assert_eq!(
            sp("%Y-%m-%d", "2023-10-10 and more", Zone::Fixed(0)),
            Ok((NOW - 50136, 0))
        );
        // leap second rolls into the next minute
        assert_eq!(
            sp("%F %T", "2023-10-10 13:55:60", Zone::Fixed(0)),
            Ok((NOW + 24, 0))
        );
    }

    #[test]
    fn strptime_syslog_without_year_infers_it() {
        // RFC 3164: "Oct  5 13:55:36" (two spaces) → this year
        let (t, _) = sp("%b %d %H:%M:%S", "Oct  5 13:55:36", Zone::Fixed(0)).unwrap();
        assert_eq!(t, NOW - 5 * 86400);
        // Dec 31 seen on Oct 10 → more than a day in the future → last year.
        let (t, _) = sp("%b %d %H:%M:%S", "Dec 31 23:59:59", Zone::Fixed(0)).unwrap();
        assert_eq!(t, 1_672_531_199); // 2022-12-31T23:59:59Z
                                      // Tomorrow is still this year (clock skew).
        let (t, _) = sp("%b %d %H:%M:%S", "Oct 11 00:00:00", Zone::Fixed(0)).unwrap();
        assert!(t > NOW && t < NOW + 86400);
        // Time only → today.
        assert_eq!(sp("%H:%M:%S", "13:55:36", Zone::Fixed(0)), Ok((NOW, 0)));
        // Today is judged in the zone: at 13:55Z it is already Oct 10 in +08.
        assert_eq!(sp("%H:%M:%S", "21:55:36", CST), Ok((NOW, 0)));
    }

    #[test]
    fn strptime_rejects_malformed_values_and_formats() {
        let z = Zone::Fixed(0);
        assert!(sp("%Y-%m-%d", "2023/10/10", z).is_err());
        assert!(sp("%Y-%m-%d", "2023-13-10", z).is_err());
        assert!(sp("%Y-%m-%d", "2023-02-30", z).is_err());
        assert!(sp("%H:%M:%S", "24:00:00", z).is_err());
        assert!(sp("%H:%M:%S", "23:60:00", z).is_err());
        assert!(sp("%d/%b/%Y", "10/Foo/2023", z).is_err());
        assert!(sp("%d/%b/%Y:%H:%M:%S %z", "10/Oct/2023:13:55:36 +08", z).is_ok());
        assert!(sp("%d/%b/%Y:%H:%M:%S %z", "10/Oct/2023:13:55:36 0800", z).is_err());
        assert!(sp("%I %p", "13 PM", z).is_err());
        assert!(sp("%s", "abc", z).is_err());
        assert!(sp("%Y", "", z).is_err());
        assert!(Layout::strptime("%Y-%Q").unwrap_err().contains("%Q"));
        assert!(Layout::strptime("%Y%").is_err());
        assert_eq!(
            Layout::strptime("100%% %n").unwrap().items,
            vec![
                lit("100%"),
                Item::Space {
                    text: b" "[..].into(),
                    go: false
                },
                Item::Space {
                    text: b" "[..].into(),
                    go: false
                }
            ]
        );
    }

    #[test]
    fn go_layout_conversion() {
        use Field::*;
        let l = Layout::go("2006-01-02 15:04:05.000 -07:00");
        assert_eq!(
            l.items,
            vec![
                gnum(Year, Pad::Zero, 4, 4),
                lit("-"),
                gnum(Month, Pad::Zero, 2, 2),
                lit("-"),
                gnum(Day, Pad::Zero, 2, 2),
                Item::Space {
                    text: b" "[..].into(),
                    go: true
                },
                gnum(Hour, Pad::Zero, 1, 2),
                lit(":"),
                gnum(Minute, Pad::Zero, 2, 2),
                lit(":"),
                gnum(Second, Pad::Zero, 2, 2),
                Item::Frac {
                    sep: Some(b'.'),
                    digits: 3,
                    trim: false
                },
                Item::Space {
                    text: b" "[..].into(),
                    go: true
                },
                Item::Offset(OffsetStyle {
                    z: false,
                    colon: true,
                    parts: 2
                }),
            ]
        );
        let l = Layout::go("Mon Jan _2 3:4:5 PM MST 06 __2 002 Monday January pm Z0700 -07 Z07:00:00 -070000 ,999 _2006 T.0x");
        let kinds: Vec<String> = l.items.iter().map(|i| format!("{i:?}")).collect();
        let joined = kinds.join("|");
        for want in [
            "Weekday(Short)",
            "Month(Short)",
            "Num { field: Day, pad: Space, min: 1, width: 2 }",
            "Num { field: Hour12, pad: None, min: 1, width: 2 }",
            "Num { field: Minute, pad: None, min: 1, width: 2 }",
            "Num { field: Second, pad: None, min: 1, width: 2 }",
            "OptFrac",
            "AmPm { upper: true }",
            "ZoneName",
            "Num { field: Year2, pad: Zero, min: 2, width: 2 }",
            "Num { field: YearDay, pad: Space, min: 1, width: 3 }",
            "Num { field: YearDay, pad: Zero, min: 3, width: 3 }",
            "Weekday(Long)",
            "Month(Long)",
            "AmPm { upper: false }",
            "Offset(OffsetStyle { z: true, colon: false, parts: 2 })",
            "Offset(OffsetStyle { z: false, colon: false, parts: 1 })",
            "Offset(OffsetStyle { z: true, colon: true, parts: 3 })",
            "Offset(OffsetStyle { z: false, colon: false, parts: 3 })",
            "Frac { sep: Some(44), digits: 3, trim: true }",
            "Lit([95])",
            "Num { field: Year, pad: Zero, min: 4, width: 4 }",
        ] {
            assert!(joined.contains(want), "{want} missing in {joined}");
        }
        // `T.0x`: `.0` followed by a non-digit is a one-digit fraction; plain letters are literal.
        assert!(
            joined.ends_with("Lit([84])|Frac { sep: Some(46), digits: 1, trim: false }|Lit([120])"),
            "{joined}"
        );
        // `.00` followed by a digit is literal text (then `01` is the month), "7" alone is literal.
        assert_eq!(
            Layout::go(".001").items,
            vec![lit(".0"), gnum(Field::Month, Pad::Zero, 2, 2)]
        );
        assert_eq!(Layout::go("7").items, vec![lit("7")]);
        assert_eq!(Layout::go("Ma").items, vec![lit("Ma")]);
    }

    #[test]
    fn go_parse_reference_layouts() {
        let z = Zone::Fixed(0);
        assert_eq!(
            go("2006-01-02 15:04:05", "2023-10-10 21:55:36", CST),
            Ok((NOW, 0))
        );
        // RFC3339 and RFC3339Nano
        assert_eq!(
            go("2006-01-02T15:04:05Z07:00", "2023-10-10T13:55:36Z", CST),
            Ok((NOW, 0))
        );
        assert_eq!(
            go(
                "2006-01-02T15:04:05.999999999Z07:00",
                "2023-10-10T21:55:36.123456789+08:00",
                z
            ),
            Ok((NOW, 123_456_789))
        );
        // a fraction in the value although the layout has none
        assert_eq!(
            go("2006-01-02T15:04:05Z07:00", "2023-10-10T13:55:36.25Z", z),
            Ok((NOW, 250_000_000))
        );
        // .999 with the fraction omitted
        assert_eq!(go("15:04:05.999", "13:55:36", z), Ok((NOW, 0)));
        // RFC1123Z, ANSIC, Kitchen, time.Stamp (syslog) and nginx-style
        assert_eq!(
            go(
                "Mon, 02 Jan 2006 15:04:05 -0700",
                "Tue, 10 Oct 2023 21:55:36 +0800",
                z
            ),
            Ok((NOW, 0))
        );
        assert_eq!(
            go("Mon Jan _2 15:04:05 2006", "Tue Oct 10 13:55:36 2023", z),
            Ok((NOW, 0))
        );
        assert_eq!(
            go("Jan _2 15:04:05", "Oct  5 13:55:36", z),
            Ok((NOW - 5 * 86400, 0))
        );
        assert_eq!(go("3:04PM", "1:55PM", z), Ok((NOW - 36, 0)));
        assert_eq!(go("3:04pm", "12:00am", z), Ok((NOW - 50136, 0)));
        assert_eq!(
            go(
                "02/Jan/2006:15:04:05 -0700",
                "10/Oct/2023:21:55:36 +0800",
                z
            ),
            Ok((NOW, 0))
        );
        assert_eq!(go("20060102150405", "20231010135536", z), Ok((NOW, 0)));
        assert_eq!(
            go("2006-01-02 15:04:05,000", "2023-10-10 13:55:36,042", z),
            Ok((NOW, 42_000_000))
        );
        assert_eq!(go("06-1-2 MST", "23-10-10 UTC", CST), Ok((NOW - 50136, 0)));
    }

    #[test]
    fn go_parse_zone_names_beside_offsets() {
        // As Go's time.Parse: `UTC` wins over a numeric offset, in either order; `GMT` (and
        // `GMT+h`) and other names apply only without one.
        const T: i64 = 1_562_354_881; // 2019-07-05T19:28:01Z
        let l = "2006-01-02 15:04:05 -0700 MST";
        let r = "2006-01-02 15:04:05 MST -0700";
        assert_eq!(go(l, "2019-07-05 19:28:01 +0700 UTC", CST), Ok((T, 0)));
        assert_eq!(go(r, "2019-07-05 19:28:01 UTC +0700", CST), Ok((T, 0)));
        assert_eq!(
            go(l, "2019-07-05 19:28:01 +0700 GMT", CST),
            Ok((T - 7 * 3600, 0))
        );
        assert_eq!(
            go(r, "2019-07-05 19:28:01 GMT +0700", CST),
            Ok((T - 7 * 3600, 0))
        );
        assert_eq!(
            go(l, "2019-07-05 19:28:01 +0700 CEST", CST),
            Ok((T - 7 * 3600, 0))
        );
        let m = "2006-01-02 15:04:05 MST";
        assert_eq!(go(m, "2019-07-05 19:28:01 GMT", CST), Ok((T, 0)));
        assert_eq!(
            go(m, "2019-07-05 19:28:01 GMT+8", CST),
            Ok((T - 8 * 3600, 0))
        );
        assert_eq!(
            go(m, "2019-07-05 19:28:01 GMT-3", CST),
            Ok((T + 3 * 3600, 0))
        );
        assert!(
            go(m, "2019-07-05 19:28:01 GMT+24", CST).is_err(),
            "not a GMT+h name"
        );
    }

    #[test]
    fn go_parse_rejects_what_go_rejects() {
        let z = Zone::Fixed(0);
        assert!(
            go("2006-01-02", "2023-10-10 13:55:36", z).is_err(),
            "extra text"
        );
        assert!(
            go("2006-01-02", "23-10-10", z).is_err(),
            "2006 needs 4 digits"
        );
        assert!(
            go("2006-01-02", "2023-1-10", z).is_err(),
            "01 needs 2 digits"
        );
        assert!(go("2006-1-2", "2023-1-9", z).is_ok());
        assert!(
            go("15:04:05.000", "13:55:36.12", z).is_err(),
            ".000 needs 3 digits"
        );
        assert!(go("15:04:05.000", "13:55:36", z).is_err());
        assert!(
            go("2006-01-02 15:04", "2023-10-10T13:55", z).is_err(),
            "space expected"
        );
        assert!(go("Jan 2", "January 2", z).is_err());
        assert!(go("January 2", "Oct 2", z).is_err());
        assert!(go("2006-01-02", "2023-02-29", z).is_err());
        assert!(go("", "", z).is_ok());
    }

    #[test]
    fn go_format_reference_layouts() {
        let z = Zone::Fixed(9 * 3600);
        let t = NOW; // 22:55:36 in +09
        assert_eq!(fmt("2006/01/02 15:04:05", t, 0, z), "2023/10/10 22:55:36");
        assert_eq!(
            fmt("Mon Jan _2 3:4:5 PM MST 2006", t, 0, z),
            "Tue Oct 10 10:55:36 PM +0900 2023"
        );
        assert_eq!(
            fmt(
                "Monday January 2 03:04:05pm 06 002 __2",
                t - 9 * 86400,
                0,
                z
            ),
            "Sunday October 1 10:55:36pm 23 274 274"
        );
        assert_eq!(
            fmt(
                "2006-01-02T15:04:05.999999999Z07:00",
                t,
                120_000_000,
                Zone::Fixed(0)
            ),
            "2023-10-10T13:55:36.12Z"
        );
        assert_eq!(
            fmt(
                "2006-01-02T15:04:05.999Z07:00",
                t,
                0,
                Zone::Fixed(-5 * 3600 - 1800)
            ),
            "2023-10-10T08:25:36-05:30"
        );
        assert_eq!(
            fmt("05.000000 -0700 -07 -07:00:00", t, 7_000, z),
            "36.000007 +0900 +09 +09:00:00"
        );
        assert_eq!(fmt("Jan _2", t - 5 * 86400, 0, z), "Oct  5");
        assert_eq!(
            fmt("3PM MST", t - 10 * 3600 - 55 * 60, 0, Zone::Fixed(0)),
            "3AM UTC"
        );
        // iLogtail README: milliseconds source, DestLocation 9
        assert_eq!(
            fmt("2006/01/02 15:04:05.000", 1_645_595_256, 807_000_000, z),
            "2022/02/23 14:47:36.807"
        );
    }

    #[test]
    fn local_zone_round_trips() {
        let (t, _) = sp("%F %T", "2023-10-10 13:55:36", Zone::Local).unwrap();
        let mut out = Vec::new();
        Layout::go("2006-01-02 15:04:05").format(t, 0, Zone::Local, &mut out);
        assert_eq!(out, b"2023-10-10 13:55:36");
        assert_eq!(
            t,
            NOW - i64::from(Zone::Local.offset_at(t)),
            "read in the machine's zone"
        );
    }
}
