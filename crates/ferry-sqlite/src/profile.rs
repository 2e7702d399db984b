//! What the values of a column look like, measured during the class-counting scan so that a
//! cross-engine importer can choose a target type *from the data* before the data arrives
//! (the profile travels in the prelude). Checks that cost a parse (JSON, dates, UUIDs,
//! decimals) run only where the declared type's hint asks for them.
//!
//! A value *fits* the hint when the documented conversion (spec/types.md, "Conversions")
//! turns it into the hinted type exactly; every value that does not is counted, and the first
//! few are kept with their row so that `--strict` can name them.

use ferry_archive::convert;
use ferry_archive::facts::{DateForms, MisfitExample, ValueProfile};
use rusqlite::types::ValueRef;
#[cfg(test)]
use serde_json::Value;

const EXAMPLES: usize = 5;

/// What a hint asks the profile to check, worked out once per column: matching the hint's
/// text for every value was 4 % of a SQLite export.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum Check {
    /// No hint, or one whose conversion takes anything (text, bytes, unknown hints).
    #[default]
    Anything,
    Integer,
    Double,
    Numeric,
    Boolean,
    Timestamp,
    Date,
    Time,
    Json,
    Uuid,
}

impl Check {
    fn of(hint: Option<&str>) -> Check {
        match hint.map(family) {
            Some("integer") => Check::Integer,
            Some("double") => Check::Double,
            Some("numeric") => Check::Numeric,
            Some("boolean") => Check::Boolean,
            Some("timestamp" | "timestamptz") => Check::Timestamp,
            Some("date") => Check::Date,
            Some("time") => Check::Time,
            Some("json") => Check::Json,
            Some("uuid") => Check::Uuid,
            _ => Check::Anything,
        }
    }
}

#[derive(Debug, Default)]
pub struct Profile {
    hint: Option<String>,
    check: Check,
    integer_min: Option<i64>,
    integer_max: Option<i64>,
    text_max_chars: usize,
    /// TEXT values holding U+0000, which some engines' text types cannot store.
    text_with_nul: u64,
    fits: u64,
    misfits: u64,
    examples: Vec<(String, String)>,
    /// How date/time values are written: ISO text (zoned or not), epoch integers, julian reals.
    iso_text: u64,
    iso_zoned: u64,
    epoch_int: u64,
    julian_real: u64,
    /// Largest number of digits after the point / before it, of numeric values.
    decimal_scale: usize,
    decimal_int_digits: usize,
    non_numeric: u64,
    /// TEXT values in the exact form `datetime()` (or, for a date hint, `date()`) prints.
    canonical_time_text: u64,
}

/// The hints whose conversion this module checks.
fn family(hint: &str) -> &str {
    match hint {
        "smallint" | "integer" | "bigint" => "integer",
        h if h.starts_with("numeric") => "numeric",
        h if h.starts_with("varchar") || h.starts_with("char") => "text",
        h => h,
    }
}

impl Profile {
    pub fn new(hint: Option<&str>) -> Profile {
        Profile {
            hint: hint.map(str::to_owned),
            check: Check::of(hint),
            ..Profile::default()
        }
    }

    #[cfg(test)]
    fn observe(&mut self, v: ValueRef<'_>, row: impl FnOnce() -> String) {
        self.observe_checked(v, text_of(v), row);
    }

    /// [`Self::observe`], with the value's text already checked for UTF-8 ([`text_of`]):
    /// the export counts the values that are not, and checks each value once.
    pub fn observe_checked(
        &mut self,
        v: ValueRef<'_>,
        text: Option<&str>,
        row: impl FnOnce() -> String,
    ) {
        if let ValueRef::Integer(i) = v {
            self.integer_min = Some(self.integer_min.map_or(i, |m| m.min(i)));
            self.integer_max = Some(self.integer_max.map_or(i, |m| m.max(i)));
        }
        if let ValueRef::Text(t) = v {
            // A value has at most as many characters as bytes: only a longer one than the
            // longest so far is counted.
            if t.len() > self.text_max_chars {
                let chars = text.map_or(t.len(), |s| s.chars().count());
                self.text_max_chars = self.text_max_chars.max(chars);
            }
            self.text_with_nul += t.contains(&0) as u64;
        }
        // Digits before and after the point matter only for a numeric(p,s) target.
        if self.check == Check::Numeric {
            self.numeric_shape(v, text);
        }
        if matches!(v, ValueRef::Null) {
            return;
        }
        let fits = match self.check {
            Check::Anything => true,
            Check::Integer => matches!(v, ValueRef::Integer(_)),
            Check::Double => matches!(v, ValueRef::Integer(_) | ValueRef::Real(_)),
            Check::Numeric => match v {
                ValueRef::Integer(_) => true,
                ValueRef::Real(f) => f.is_finite(),
                ValueRef::Text(_) => text.and_then(convert::canonical_decimal).is_some(),
                ValueRef::Blob(_) | ValueRef::Null => false,
            },
            Check::Boolean => match v {
                ValueRef::Integer(i) => i == 0 || i == 1,
                ValueRef::Text(_) => text.and_then(convert::bool_word).is_some(),
                _ => false,
            },
            Check::Timestamp => self.datetime(v, text, false),
            Check::Date => self.datetime(v, text, true),
            Check::Time => text.and_then(convert::parse_time).is_some(),
            Check::Json => match v {
                ValueRef::Text(t) => serde_json::from_slice::<serde::de::IgnoredAny>(t).is_ok(),
                _ => false,
            },
            Check::Uuid => match v {
                ValueRef::Text(_) => text.and_then(convert::parse_uuid).is_some(),
                ValueRef::Blob(b) => b.len() == 16,
                _ => false,
            },
        };
        if fits {
            self.fits += 1;
        } else {
            self.misfits += 1;
            if self.examples.len() < EXAMPLES {
                self.examples.push((row(), show(v)));
            }
        }
    }

    /// Whether a value is a date and time (or, with `date_only`, a date at midnight) in one
    /// of the forms the conversion reads.
    fn datetime(&mut self, v: ValueRef<'_>, text: Option<&str>, date_only: bool) -> bool {
        const DAY_US: i64 = 86_400_000_000;
        let midnight = |us: i64| !date_only || us.rem_euclid(DAY_US) == 0;
        match v {
            ValueRef::Text(_) => {
                let Some(s) = text else {
                    return false;
                };
                // The canonical form is the common one, and a strict subset of what
                // parse_timestamp reads (unzoned, same instant): the general parse runs only
                // for the rest.
                let canonical = if date_only {
                    convert::canonical_date(s).map(|d| d as i64 * DAY_US)
                } else {
                    convert::canonical_timestamp(s)
                };
                let parsed = match canonical {
                    Some(micros) => Some((micros, false)),
                    None => convert::parse_timestamp(s).map(|ts| (ts.micros, ts.zoned)),
                };
                match parsed {
                    Some((micros, zoned)) if midnight(micros) => {
                        self.iso_text += 1;
                        self.iso_zoned += zoned as u64;
                        self.canonical_time_text += canonical.is_some() as u64;
                        true
                    }
                    _ => false,
                }
            }
            ValueRef::Integer(i) => {
                // Seconds or milliseconds, both must be whole days for a date.
                let ok = !date_only || i % 86_400 == 0;
                self.epoch_int += ok as u64;
                ok
            }
            ValueRef::Real(f) => {
                let ok = convert::julian_to_micros(f).is_some_and(midnight);
                self.julian_real += ok as u64;
                ok
            }
            _ => false,
        }
    }

    fn numeric_shape(&mut self, v: ValueRef<'_>, text: Option<&str>) {
        let text = match v {
            ValueRef::Integer(i) => i.to_string(),
            ValueRef::Real(f) if f.is_finite() => format!("{f}"),
            ValueRef::Text(_) => match text.and_then(convert::canonical_decimal) {
                Some(d) => d,
                None => {
                    self.non_numeric += 1;
                    return;
                }
            },
            ValueRef::Null => return,
            _ => {
                self.non_numeric += 1;
                return;
            }
        };
        let digits = text.trim_start_matches('-');
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        self.decimal_scale = self.decimal_scale.max(frac.len());
        self.decimal_int_digits = self
            .decimal_int_digits
            .max(int.trim_start_matches('0').len());
    }

    /// Adds what a profile of the rows after this one's found (same column, same hint):
    /// the result is the profile of both scans as one, misfit examples in scan order.
    pub fn merge(&mut self, later: Profile) {
        // Either side may have seen no integer (None), which must not win the minimum.
        self.integer_min = self.integer_min.into_iter().chain(later.integer_min).min();
        self.integer_max = self.integer_max.into_iter().chain(later.integer_max).max();
        self.text_max_chars = self.text_max_chars.max(later.text_max_chars);
        self.text_with_nul += later.text_with_nul;
        self.fits += later.fits;
        self.misfits += later.misfits;
        let room = EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(later.examples.into_iter().take(room));
        self.iso_text += later.iso_text;
        self.iso_zoned += later.iso_zoned;
        self.epoch_int += later.epoch_int;
        self.julian_real += later.julian_real;
        self.decimal_scale = self.decimal_scale.max(later.decimal_scale);
        self.decimal_int_digits = self.decimal_int_digits.max(later.decimal_int_digits);
        self.non_numeric += later.non_numeric;
        self.canonical_time_text += later.canonical_time_text;
    }

    /// TEXT values in the exact form SQLite's `datetime()` (for a `date` hint, `date()`)
    /// prints, which can travel as timestamps (dates) and print back the same.
    pub fn canonical_time_text(&self) -> u64 {
        self.canonical_time_text
    }

    /// The profile as the archive carries it (`ferry_archive::facts::ValueProfile`); the
    /// storage class counts are the caller's to add.
    pub fn to_facts(&self) -> ValueProfile {
        let hinted = self.hint.is_some();
        ValueProfile {
            integer_min: self.integer_max.and(self.integer_min),
            integer_max: self.integer_min.and(self.integer_max),
            text_max_chars: self.text_max_chars as u64,
            text_with_nul: self.text_with_nul,
            decimal_scale: self.decimal_scale as u64,
            decimal_int_digits: self.decimal_int_digits as u64,
            non_numeric: self.non_numeric,
            hint_fits: hinted.then_some(self.fits),
            hint_misfits: hinted.then_some(self.misfits),
            misfit_examples: if hinted {
                self.examples
                    .iter()
                    .map(|(row, value)| MisfitExample {
                        row: row.clone(),
                        value: value.clone(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            date_forms: self
                .hint
                .as_deref()
                .filter(|h| matches!(family(h), "timestamp" | "timestamptz" | "date"))
                .map(|_| DateForms {
                    iso_text: self.iso_text,
                    iso_zoned: self.iso_zoned,
                    epoch_integer: self.epoch_int,
                    julian_real: self.julian_real,
                }),
            classes: Default::default(),
        }
    }

    #[cfg(test)]
    fn to_json(&self) -> Value {
        serde_json::to_value(self.to_facts()).expect("a profile serialises")
    }
}

/// A value's text when it is TEXT and UTF-8.
pub fn text_of(v: ValueRef<'_>) -> Option<&str> {
    match v {
        ValueRef::Text(t) => crate::utf8(t),
        _ => None,
    }
}

/// A value as a short SQL-ish literal for reports.
pub fn show(v: ValueRef<'_>) -> String {
    let s = match v {
        ValueRef::Null => "NULL".to_owned(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => format!("{f:?}"),
        ValueRef::Text(t) => format!("'{}'", String::from_utf8_lossy(t).replace('\'', "''")),
        ValueRef::Blob(b) => format!("x'{}'", hex::encode(&b[..b.len().min(16)])),
    };
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(57).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each hint checks its own conversion, row by row of spec/types.md's "Conversions":
    /// one value that fits and one that does not, per hint.
    #[test]
    fn each_hint_checks_its_own_conversion() {
        let cases: &[(Option<&str>, ValueRef<'_>, ValueRef<'_>)] = &[
            (Some("integer"), ValueRef::Integer(7), ValueRef::Real(7.5)),
            (Some("bigint"), ValueRef::Integer(7), ValueRef::Text(b"7")),
            (Some("double"), ValueRef::Real(7.5), ValueRef::Text(b"7.5")),
            (
                Some("numeric(10,2)"),
                ValueRef::Text(b"1.25"),
                ValueRef::Text(b"abc"),
            ),
            (Some("boolean"), ValueRef::Integer(1), ValueRef::Integer(2)),
            (
                Some("timestamp"),
                ValueRef::Text(b"2024-01-02 03:04:05"),
                ValueRef::Text(b"x"),
            ),
            (
                Some("timestamptz"),
                ValueRef::Integer(0),
                ValueRef::Blob(b"x"),
            ),
            (
                Some("date"),
                ValueRef::Text(b"2024-01-02"),
                ValueRef::Text(b"2024-01-02 10:00:00"),
            ),
            (
                Some("time"),
                ValueRef::Text(b"10:00:00"),
                ValueRef::Integer(10),
            ),
            (
                Some("json"),
                ValueRef::Text(b"{\"a\": [1]}"),
                ValueRef::Text(b"{a}"),
            ),
            (
                Some("uuid"),
                ValueRef::Text(b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
                ValueRef::Text(b"a0eebc99"),
            ),
            (
                Some("uuid"),
                ValueRef::Blob(&[0; 16]),
                ValueRef::Blob(&[0; 15]),
            ),
        ];
        for (hint, good, bad) in cases {
            let mut p = Profile::new(*hint);
            p.observe(*good, String::new);
            p.observe(*bad, || "rowid 2".into());
            p.observe(ValueRef::Null, String::new);
            let j = p.to_json();
            assert_eq!(
                (&j["hint_fits"], &j["hint_misfits"]),
                (&1.into(), &1.into()),
                "{hint:?}"
            );
        }
        // Hints whose conversion takes anything never count a misfit.
        for hint in [None, Some("text"), Some("varchar(3)"), Some("bytes")] {
            let mut p = Profile::new(hint);
            p.observe(ValueRef::Blob(b"x"), String::new);
            p.observe(ValueRef::Real(1.5), String::new);
            assert_eq!(p.misfits, 0, "{hint:?}");
        }
    }

    #[test]
    fn the_longest_text_is_counted_in_characters_whatever_came_before() {
        let mut p = Profile::new(None);
        for t in ["ab", "\u{e9}\u{e9}\u{e9}", "abcd", "\u{1F600}"] {
            p.observe(ValueRef::Text(t.as_bytes()), String::new);
        }
        assert_eq!(p.to_json()["text_max_chars"], 4);
        p.observe(ValueRef::Text(b"\xff\xfe\xfd\xfc\xfb"), String::new);
        assert_eq!(
            p.to_json()["text_max_chars"],
            5,
            "bytes, for text that is not UTF-8"
        );
    }

    #[test]
    fn datetime_columns_count_forms_and_misfits() {
        let mut p = Profile::new(Some("timestamp"));
        for (i, v) in [
            ValueRef::Text(b"2024-01-02 03:04:05"),
            ValueRef::Text(b"2024-01-02T03:04:05Z"),
            ValueRef::Integer(1_700_000_000),
            ValueRef::Real(2_460_000.5),
            ValueRef::Text(b"n/a"),
            ValueRef::Null,
        ]
        .into_iter()
        .enumerate()
        {
            p.observe(v, || format!("rowid {i}"));
        }
        let j = p.to_json();
        assert_eq!(j["hint_fits"], 4);
        assert_eq!(j["hint_misfits"], 1);
        assert_eq!(j["misfit_examples"][0]["row"], "rowid 4");
        assert_eq!(j["misfit_examples"][0]["value"], "'n/a'");
        assert_eq!(j["date_forms"]["iso_zoned"], 1);
        assert_eq!(j["date_forms"]["epoch_integer"], 1);
    }

    #[test]
    fn numeric_and_integer_shapes() {
        let mut p = Profile::new(Some("numeric(10,2)"));
        for v in [
            ValueRef::Integer(-120),
            ValueRef::Real(3.25),
            ValueRef::Text(b"1e3"),
        ] {
            p.observe(v, String::new);
        }
        let j = p.to_json();
        assert_eq!(j["integer_min"], -120);
        assert_eq!(j["decimal_scale"], 2);
        assert_eq!(j["decimal_int_digits"], 4, "1e3 is 1000");
        assert_eq!(j["hint_misfits"], 0);
        let mut b = Profile::new(Some("boolean"));
        b.observe(ValueRef::Integer(2), || "rowid 9".into());
        assert_eq!(b.to_json()["hint_misfits"], 1);
        let mut d = Profile::new(Some("date"));
        for v in [
            ValueRef::Text(b"2024-01-02"),
            ValueRef::Text(b"2024-01-02 10:00:00"),
            ValueRef::Real(2_460_000.5),
            ValueRef::Real(2_460_000.25),
        ] {
            d.observe(v, String::new);
        }
        assert_eq!(
            d.to_json()["hint_misfits"],
            2,
            "times of day do not fit a date"
        );
    }
}
