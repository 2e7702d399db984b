//! Engine-neutral text conventions shared by every adapter that converts values across
//! engines: ISO-8601 dates and times, unix epochs, julian days, UUIDs, boolean words, and
//! ISO-8601 durations. The rules are documented in `spec/types.md` ("Conversions") and are
//! the same wherever they are applied, so an exporter's profile of a column and an
//! importer's conversion of it always agree.

/// Microseconds per day.
const DAY_US: i64 = 86_400_000_000;
/// Julian day number of 1970-01-01T00:00:00.
pub const JULIAN_UNIX_EPOCH: f64 = 2_440_587.5;

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count from 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn digits(s: &[u8]) -> Option<i64> {
    // By hand: every date and time field of every profiled value passes through here, and
    // `str::parse` made it a few percent of a SQLite export.
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0i64, |n, &b| {
        b.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(i64::from(b - b'0')))
            .flatten()
    })
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// `YYYY-MM-DD` → days since 1970-01-01.
pub fn parse_date(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (
        digits(&b[..4])?,
        digits(&b[5..7])? as u32,
        digits(&b[8..])? as u32,
    );
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    i32::try_from(days_from_civil(y, m, d)).ok()
}

/// `HH:MM[:SS[.ffffff]]` → microseconds since midnight.
pub fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 5 || b[2] != b':' {
        return None;
    }
    let h = digits(&b[..2])?;
    let mi = digits(&b[3..5])?;
    let mut us = 0i64;
    let mut sec = 0i64;
    if b.len() > 5 {
        if b[5] != b':' || b.len() < 8 {
            return None;
        }
        sec = digits(&b[6..8])?;
        if b.len() > 8 {
            if b[8] != b'.' || b.len() == 9 {
                return None;
            }
            let frac = &b[9..];
            let mut f = digits(frac)?;
            let n = frac.len();
            if n > 6 {
                // More precision than a microsecond: only exact if the rest is zeros.
                if frac[6..].iter().any(|c| *c != b'0') {
                    return None;
                }
                f = digits(&frac[..6])?;
            } else {
                f *= 10i64.pow(6 - n as u32);
            }
            us = f;
        }
    }
    if h > 24 || mi > 59 || sec > 59 || (h == 24 && (mi > 0 || sec > 0 || us > 0)) {
        return None;
    }
    Some(((h * 60 + mi) * 60 + sec) * 1_000_000 + us)
}

/// A parsed ISO-8601 date-time: microseconds since 1970-01-01 (UTC when a zone was given,
/// else the wall clock as written), and whether a zone was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    pub micros: i64,
    pub zoned: bool,
}

/// `YYYY-MM-DD[( |T)HH:MM[:SS[.f]]][Z|(+|-)HH[:MM]]`, the forms SQLite's date functions
/// read and write. A bare date is midnight.
pub fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    // The date is ASCII: a multi-byte character in its first ten bytes is not a date (and
    // slicing there would split it).
    if s.len() < 10 || !s.is_char_boundary(10) {
        return None;
    }
    let days = parse_date(&s[..10])? as i64;
    let rest = &s[10..];
    if rest.is_empty() {
        return Some(Timestamp {
            micros: days * DAY_US,
            zoned: false,
        });
    }
    let sep = rest.as_bytes()[0];
    if sep != b' ' && sep != b'T' && sep != b't' {
        return None;
    }
    let rest = &rest[1..];
    // Split off a zone suffix.
    let (time, zone) = if let Some(t) = rest.strip_suffix('Z').or_else(|| rest.strip_suffix('z')) {
        (t, Some(0i64))
    } else if let Some(pos) = rest.rfind(['+', '-']).filter(|p| *p >= 5) {
        let z = &rest[pos + 1..];
        let zb = z.as_bytes();
        let (zh, zm) = match zb.len() {
            2 => (digits(zb)?, 0),
            4 => (digits(&zb[..2])?, digits(&zb[2..])?),
            5 if zb[2] == b':' => (digits(&zb[..2])?, digits(&zb[3..])?),
            _ => return None,
        };
        if zh > 15 || zm > 59 {
            return None;
        }
        let off = (zh * 60 + zm) * 60_000_000;
        (
            &rest[..pos],
            Some(if &rest[pos..pos + 1] == "-" {
                -off
            } else {
                off
            }),
        )
    } else {
        (rest, None)
    };
    let t = parse_time(time.trim_end())?;
    let local = days * DAY_US + t;
    Some(Timestamp {
        micros: local - zone.unwrap_or(0),
        zoned: zone.is_some(),
    })
}

/// How an integer column of dates is meant, decided from the largest magnitude it holds:
/// milliseconds once seconds would land after the year 5138 (1e11 s), so that epoch
/// milliseconds never become the year 54191.
pub fn epoch_unit(max_abs: i64) -> EpochUnit {
    if max_abs >= 100_000_000_000 {
        EpochUnit::Millis
    } else {
        EpochUnit::Seconds
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochUnit {
    Seconds,
    Millis,
}

pub fn epoch_to_micros(v: i64, unit: EpochUnit) -> Option<i64> {
    match unit {
        EpochUnit::Seconds => v.checked_mul(1_000_000),
        EpochUnit::Millis => v.checked_mul(1_000),
    }
}

/// A julian day number (SQLite's `julianday()`) → microseconds since 1970, if it is a
/// plausible date (years 0001 to 9999).
pub fn julian_to_micros(j: f64) -> Option<i64> {
    if !(1_721_425.5..=5_373_484.5).contains(&j) {
        return None;
    }
    Some(((j - JULIAN_UNIX_EPOCH) * DAY_US as f64).round() as i64)
}

/// `s` as a timestamp when it is exactly what [`format_timestamp`] prints for it (no zone,
/// a space before the time, seconds always, a fraction only without trailing zeros): the
/// form SQLite's `datetime()` and `CURRENT_TIMESTAMP` write. Printing the timestamp back
/// gives `s` byte for byte, so a column of such text can travel as timestamps exactly.
///
/// It runs once per value in the profile scan and again in the export, so it reads the
/// bytes in place instead of parsing and printing (the tests hold it to exactly that).
pub fn canonical_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let days = canonical_date(&s[..10])? as i64;
    let two = |i: usize| -> Option<i64> {
        let (h, l) = (b[i], b[i + 1]);
        (h.is_ascii_digit() && l.is_ascii_digit()).then(|| ((h - b'0') * 10 + (l - b'0')) as i64)
    };
    let (h, m, sec) = (two(11)?, two(14)?, two(17)?);
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let mut micros = 0;
    if b.len() > 19 {
        // `.` and one to six digits, the last not 0: the fraction as format_time prints it.
        let frac = &b[20..];
        if b[19] != b'.'
            || frac.is_empty()
            || frac.len() > 6
            || !frac.iter().all(u8::is_ascii_digit)
            || frac.ends_with(b"0")
        {
            return None;
        }
        for (i, d) in frac.iter().enumerate() {
            micros += (d - b'0') as i64 * 10_i64.pow(5 - i as u32);
        }
    }
    Some(days * DAY_US + ((h * 60 + m) * 60 + sec) * 1_000_000 + micros)
}

/// `s` as days since 1970 when it is exactly what [`format_date`] prints for it
/// (`YYYY-MM-DD`, as SQLite's `date()` and `CURRENT_DATE` write): four-digit years, which
/// [`parse_date`] requires and [`format_date`] prints for years 0 to 9999.
pub fn canonical_date(s: &str) -> Option<i32> {
    parse_date(s)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` (trailing zeros of the fraction dropped).
pub fn format_timestamp(micros: i64) -> String {
    // Written digit by digit into one allocation: a PostgreSQL -> SQLite load formats one
    // of these per timestamp value, and `format!` made it a few percent of the whole load.
    let mut s = String::with_capacity(26);
    push_date(&mut s, micros.div_euclid(DAY_US));
    s.push(' ');
    push_time(&mut s, micros.rem_euclid(DAY_US));
    s
}

pub fn format_date(days: i32) -> String {
    let mut s = String::with_capacity(10);
    push_date(&mut s, days as i64);
    s
}

/// `HH:MM:SS[.ffffff]`.
pub fn format_time(us: i64) -> String {
    let mut s = String::with_capacity(15);
    push_time(&mut s, us);
    s
}

/// `YYYY-MM-DD`; years outside 0..=9999 as many digits as they take, with their sign.
fn push_date(s: &mut String, days: i64) {
    let (y, m, d) = civil_from_days(days);
    if (0..=9999).contains(&y) {
        push_digits(s, y as u64, 4);
    } else {
        s.push_str(&y.to_string());
    }
    s.push('-');
    push_digits(s, m as u64, 2);
    s.push('-');
    push_digits(s, d as u64, 2);
}

/// `HH:MM:SS[.ffffff]` of microseconds since midnight, the fraction without trailing zeros.
/// Hours beyond 99 (a `time` of 24:00:00 is the largest PostgreSQL has) take their digits.
fn push_time(s: &mut String, us: i64) {
    let (h, rem) = (us / 3_600_000_000, us % 3_600_000_000);
    let (mi, rem) = (rem / 60_000_000, rem % 60_000_000);
    let (sec, f) = (rem / 1_000_000, rem % 1_000_000);
    if (0..100).contains(&h) && mi >= 0 && sec >= 0 && f >= 0 {
        push_digits(s, h as u64, 2);
        s.push(':');
        push_digits(s, mi as u64, 2);
        s.push(':');
        push_digits(s, sec as u64, 2);
        if f != 0 {
            s.push('.');
            let mut f = f as u64;
            let mut width = 6;
            while f.is_multiple_of(10) {
                f /= 10;
                width -= 1;
            }
            push_digits(s, f, width);
        }
    } else {
        // Never reached from a valid time; kept exact rather than fast.
        s.push_str(&format!("{h:02}:{mi:02}:{sec:02}"));
        if f != 0 {
            let frac = format!("{f:06}");
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
    }
}

/// `n` in decimal, zero-padded to `width` digits (more if `n` needs them).
fn push_digits(s: &mut String, n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    let mut n = n;
    while n > 0 {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let start = i.min(buf.len() - width);
    s.push_str(std::str::from_utf8(&buf[start..]).expect("ASCII digits"));
}

/// ISO-8601 duration of PostgreSQL's interval parts: `P1Y2M3DT4H5M6.5S`, `PT0S` for zero.
pub fn format_duration(months: i32, days: i32, micros: i64) -> String {
    let mut s = String::from("P");
    let (y, m) = (months / 12, months % 12);
    if y != 0 {
        s.push_str(&format!("{y}Y"));
    }
    if m != 0 {
        s.push_str(&format!("{m}M"));
    }
    if days != 0 {
        s.push_str(&format!("{days}D"));
    }
    if micros != 0 {
        s.push('T');
        let neg = micros < 0;
        let a = micros.unsigned_abs();
        let (h, rem) = (a / 3_600_000_000, a % 3_600_000_000);
        let (mi, rem) = (rem / 60_000_000, rem % 60_000_000);
        let sign = if neg { "-" } else { "" };
        if h != 0 {
            s.push_str(&format!("{sign}{h}H"));
        }
        if mi != 0 {
            s.push_str(&format!("{sign}{mi}M"));
        }
        if rem != 0 {
            let (sec, f) = (rem / 1_000_000, rem % 1_000_000);
            if f == 0 {
                s.push_str(&format!("{sign}{sec}S"));
            } else {
                let frac = format!("{f:06}");
                s.push_str(&format!("{sign}{sec}.{}S", frac.trim_end_matches('0')));
            }
        }
    }
    if s == "P" {
        s.push_str("T0S");
    }
    s
}

/// A UUID in its canonical 8-4-4-4-12 form (either case), or 32 bare hex digits, braces
/// allowed: the forms applications store.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let t = s.trim().trim_start_matches('{').trim_end_matches('}');
    let hex: String = match t.len() {
        36 => {
            let b = t.as_bytes();
            if b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
                return None;
            }
            t.chars().filter(|c| *c != '-').collect()
        }
        32 => t.to_owned(),
        _ => return None,
    };
    let mut out = [0u8; 16];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}

pub fn format_uuid(b: &[u8]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `true`/`false` words applications store in text columns.
pub fn bool_word(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "on" => Some(true),
        "false" | "f" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

/// The exact text of a decimal(p, scale) from its unscaled integer: `-12.500`, `0.005`.
pub fn decimal_text(unscaled: i128, scale: i8) -> String {
    let scale = scale.max(0) as usize;
    let neg = unscaled < 0;
    let mut digits = unscaled.unsigned_abs().to_string();
    if scale > 0 {
        if digits.len() <= scale {
            digits = format!("{}{digits}", "0".repeat(scale + 1 - digits.len()));
        }
        digits.insert(digits.len() - scale, '.');
    }
    if neg { format!("-{digits}") } else { digits }
}

/// A decimal literal (`-12.50`, `1e3`, `.5`) as exact canonical text, or `None`.
pub fn canonical_decimal(s: &str) -> Option<String> {
    let t = s.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i32>().ok()?),
        None => (body, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
        || exp.abs() > 1000
    {
        return None;
    }
    let mut digits = format!("{int}{frac}");
    let mut point = int.len() as i64 + exp as i64;
    if point < 0 {
        digits = format!("{}{digits}", "0".repeat((-point) as usize));
        point = 0;
    }
    if point as usize > digits.len() {
        digits.push_str(&"0".repeat(point as usize - digits.len()));
    }
    let (i, f) = digits.split_at(point as usize);
    let i = i.trim_start_matches('0');
    let i = if i.is_empty() { "0" } else { i };
    let out = if f.is_empty() {
        i.to_owned()
    } else {
        format!("{i}.{f}")
    };
    let zero = out.bytes().all(|c| c == b'0' || c == b'.');
    Some(if neg && !zero { format!("-{out}") } else { out })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_reads_ascii_digits_into_an_i64_and_nothing_else() {
        assert_eq!(digits(b"0123"), Some(123));
        assert_eq!(digits(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(digits(b"9223372036854775808"), None);
        for bad in ["", "12a", "-1", "+1", " 1", "\u{661}\u{662}"] {
            assert_eq!(digits(bad.as_bytes()), None, "{bad:?}");
        }
    }

    /// The SQLite profile counts a canonical timestamp as ISO text without parsing it again:
    /// that holds only if every canonical text parses to the same instant, unzoned.
    #[test]
    fn canonical_timestamps_parse_to_the_same_unzoned_instant() {
        for s in [
            "2024-05-01 13:45:00",
            "2024-05-01 13:45:00.5",
            "0001-01-01 00:00:00.000001",
            "9999-12-31 23:59:59.999999",
            "0000-01-01 00:00:00",
            "2024-02-29 12:00:00",
        ] {
            let us = canonical_timestamp(s).expect(s);
            let ts = parse_timestamp(s).expect(s);
            assert_eq!((ts.micros, ts.zoned), (us, false), "{s}");
        }
        for s in ["2024-05-01", "0000-01-01", "2024-02-29"] {
            let days = canonical_date(s).expect(s) as i64;
            let ts = parse_timestamp(s).expect(s);
            assert_eq!((ts.micros, ts.zoned), (days * DAY_US, false), "{s}");
        }
    }

    #[test]
    fn canonical_text_is_exactly_what_the_formatters_print() {
        let samples = [
            "2024-05-01 13:45:00",
            "2024-05-01 13:45:00.5",
            "2024-05-01 13:45:00.500",
            "0001-01-01 00:00:00.000001",
            "9999-12-31 23:59:59.999999",
            "0000-01-01 00:00:00",
            "2024-02-29 12:00:00",
            "2023-02-29 12:00:00",
            "2024-05-01T13:45:00",
            "2024-05-01 13:45",
            "2024-05-01 24:00:00",
            "2024-05-01 13:45:60",
            "2024-05-01 13:45:00.",
            "2024-05-01 13:45:00.1234567",
            "2024-05-01 13:45:00Z",
            "2024-05-01 13:45:00+02:00",
            "2024-5-01 13:45:00",
            "+2024-05-01 13:45:00",
        ];
        for s in samples {
            let slow = parse_timestamp(s)
                .filter(|t| !t.zoned && format_timestamp(t.micros) == s)
                .map(|t| t.micros);
            assert_eq!(canonical_timestamp(s), slow, "{s}");
        }
        // Every second of a day and a spread of fractions agree with printing.
        for us in (0..DAY_US).step_by(1_234_567_891) {
            let t = 19_000 * DAY_US + us;
            assert_eq!(canonical_timestamp(&format_timestamp(t)), Some(t), "{t}");
        }
        for s in [
            "2024-05-01",
            "0000-01-01",
            "9999-12-31",
            "2024-02-30",
            "2024-5-1",
            "20240501",
        ] {
            let slow = parse_date(s).filter(|d| format_date(*d) == s);
            assert_eq!(canonical_date(s), slow, "{s}");
        }
    }

    #[test]
    fn timestamps_in_every_form_sqlite_apps_use() {
        let t = |s: &str| parse_timestamp(s).map(|t| (format_timestamp(t.micros), t.zoned));
        assert_eq!(
            t("2024-02-29 13:14:15"),
            Some(("2024-02-29 13:14:15".into(), false))
        );
        assert_eq!(
            t("2024-02-29T13:14:15.250Z"),
            Some(("2024-02-29 13:14:15.25".into(), true))
        );
        assert_eq!(
            t("2024-02-29T13:14:15+02:00"),
            Some(("2024-02-29 11:14:15".into(), true))
        );
        assert_eq!(
            t("2024-02-29 13:14-0130"),
            Some(("2024-02-29 14:44:00".into(), true))
        );
        assert_eq!(t("2024-02-29"), Some(("2024-02-29 00:00:00".into(), false)));
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "yesterday",
            "2024-01-01 25:00",
            "2024-01-01X10:00",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
        assert_eq!(format_timestamp(0), "1970-01-01 00:00:00");
        assert_eq!(format_date(-719_162), "0001-01-01");
    }

    #[test]
    fn epochs_and_julian_days() {
        assert_eq!(epoch_unit(1_700_000_000), EpochUnit::Seconds);
        assert_eq!(epoch_unit(1_700_000_000_000), EpochUnit::Millis);
        let ms = epoch_to_micros(1_700_000_000_123, EpochUnit::Millis).unwrap();
        assert_eq!(format_timestamp(ms), "2023-11-14 22:13:20.123");
        assert_eq!(julian_to_micros(2_440_587.5), Some(0));
        assert_eq!(julian_to_micros(12.0), None);
    }

    #[test]
    fn durations_uuids_bools_decimals() {
        assert_eq!(format_duration(14, 3, 3_723_500_000), "P1Y2M3DT1H2M3.5S");
        assert_eq!(format_duration(0, 0, 0), "PT0S");
        assert_eq!(format_duration(0, -1, -1), "P-1DT-0.000001S");
        let u = parse_uuid("{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}").unwrap();
        assert_eq!(format_uuid(&u), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        assert!(parse_uuid("not-a-uuid").is_none());
        assert_eq!(bool_word("TRUE"), Some(true));
        assert_eq!(bool_word("0"), None);
        assert_eq!(canonical_decimal("-12.50").as_deref(), Some("-12.50"));
        assert_eq!(canonical_decimal("1e3").as_deref(), Some("1000"));
        assert_eq!(canonical_decimal(".5").as_deref(), Some("0.5"));
        assert_eq!(canonical_decimal("1.5e-3").as_deref(), Some("0.0015"));
        assert_eq!(canonical_decimal("abc"), None);
    }
}

#[cfg(test)]
mod formatting {
    use super::*;
    use proptest::prelude::*;

    /// The formatters as they were written first, with `format!`: the digit-by-digit ones
    /// must print exactly the same.
    fn reference_time(us: i64) -> String {
        let (h, rem) = (us / 3_600_000_000, us % 3_600_000_000);
        let (mi, rem) = (rem / 60_000_000, rem % 60_000_000);
        let (s, f) = (rem / 1_000_000, rem % 1_000_000);
        if f == 0 {
            format!("{h:02}:{mi:02}:{s:02}")
        } else {
            let frac = format!("{f:06}");
            format!("{h:02}:{mi:02}:{s:02}.{}", frac.trim_end_matches('0'))
        }
    }

    fn reference_date(days: i64) -> String {
        let (y, m, d) = civil_from_days(days);
        if (0..=9999).contains(&y) {
            format!("{y:04}-{m:02}-{d:02}")
        } else {
            format!("{y}-{m:02}-{d:02}")
        }
    }

    fn reference_timestamp(micros: i64) -> String {
        format!(
            "{} {}",
            reference_date(micros.div_euclid(DAY_US)),
            reference_time(micros.rem_euclid(DAY_US))
        )
    }

    proptest! {
        #[test]
        fn timestamps_print_as_format_did(
            micros in prop_oneof![
                any::<i64>(),
                // Years 0 to 9999, where the fast path runs, and fractions with zeros.
                -62_167_219_200_000_000i64..253_402_300_800_000_000i64,
                (-62_167_219_200i64..253_402_300_800i64).prop_map(|s| s * 1_000_000 + 120_000),
            ]
        ) {
            prop_assert_eq!(format_timestamp(micros), reference_timestamp(micros));
        }

        #[test]
        fn dates_and_times_print_as_format_did(
            days in any::<i32>(),
            us in prop_oneof![0..=DAY_US, any::<i64>()],
        ) {
            prop_assert_eq!(format_date(days), reference_date(days as i64));
            prop_assert_eq!(format_time(us), reference_time(us));
        }
    }

    #[test]
    fn edges_print_as_format_did() {
        for us in [
            0,
            1,
            10,
            999_999,
            1_000_000,
            DAY_US - 1,
            DAY_US,
            -1,
            -1_000_001,
        ] {
            assert_eq!(format_time(us), reference_time(us), "{us}");
        }
        for t in [i64::MIN, i64::MAX, 0, -1, 253_402_300_799_999_999] {
            assert_eq!(format_timestamp(t), reference_timestamp(t), "{t}");
        }
    }
}

#[cfg(test)]
mod multibyte {
    #[test]
    fn a_multibyte_character_where_a_date_should_be_is_not_a_panic() {
        assert_eq!(
            super::parse_timestamp("2024-01-0é 10:00:00").map(|t| t.micros),
            None
        );
        assert_eq!(super::parse_timestamp("éééééééééé").map(|t| t.micros), None);
    }
}
