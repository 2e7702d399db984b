//! SQLite's `date`, `time` and `datetime` on a constant, computed at translation time.
//!
//! PostgreSQL has no `datetime` function (and reads `date('…')` as a cast to its `date`
//! type), so a view such as Northwind's
//! `WHERE ShippedDate BETWEEN DATETIME('1997-01-01') AND DATETIME('1997-12-31')` could not be
//! created. On a literal and no modifiers, SQLite's result is a fixed text
//! (`'1997-01-01 00:00:00'`), so the call is replaced by that text as an untyped literal,
//! which PostgreSQL gives the type its context needs. The text is exact; the comparison
//! around it is PostgreSQL's for the column's type, which the importer reports (spec/types.md).
//!
//! Only inputs whose SQLite result is certain are folded: the ISO forms `YYYY-MM-DD`,
//! `[YYYY-MM-DD[ |T]]HH:MM[:SS[.s]]` with a real calendar date and at most millisecond
//! fractions. Everything else (`'now'`, modifiers, time zone suffixes, day numbers, a
//! 31st of February that SQLite would roll over) is left as written, so PostgreSQL refuses
//! the statement and the importer reports it, rather than ferry guessing.

/// The text SQLite's `name(literal)` returns, for `date`, `time` and `datetime`
/// (any case), when it is certain.
pub(crate) fn date_function(name: &str, literal: &str) -> Option<String> {
    let (date, time) = parse(literal)?;
    let (y, m, d) = date;
    let (hh, mm, ss) = time;
    match name.to_ascii_lowercase().as_str() {
        "date" => Some(format!("{y:04}-{m:02}-{d:02}")),
        "time" => Some(format!("{hh:02}:{mm:02}:{ss:02}")),
        "datetime" => Some(format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")),
        _ => None,
    }
}

type Date = (u32, u32, u32);
type Time = (u32, u32, u32);

fn parse(s: &str) -> Option<(Date, Time)> {
    let b = s.as_bytes();
    // A time alone is on 2000-01-01, as SQLite reads it.
    if b.len() >= 5 && b[2] == b':' {
        return Some(((2000, 1, 1), time(b)?));
    }
    if b.len() < 10 {
        return None;
    }
    let date = date(&b[..10])?;
    match b.get(10) {
        None => Some((date, (0, 0, 0))),
        Some(b' ' | b'T') => Some((date, time(&b[11..])?)),
        Some(_) => None,
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u32, |n, d| {
        n.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

fn date(b: &[u8]) -> Option<Date> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&b[..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days).contains(&d).then_some((y, m, d))
}

fn time(b: &[u8]) -> Option<Time> {
    if b.len() < 5 || b[2] != b':' {
        return None;
    }
    let (hh, mm) = (digits(&b[..2])?, digits(&b[3..5])?);
    let ss = match b.len() {
        5 => 0,
        8.. if b[5] == b':' => {
            let ss = digits(&b[6..8])?;
            // Whole milliseconds only: SQLite keeps time in milliseconds, and a longer
            // fraction could round up into the next second.
            match &b[8..] {
                [] => ss,
                [b'.', frac @ ..] if (1..=3).contains(&frac.len()) => {
                    digits(frac)?;
                    ss
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    (hh < 24 && mm < 60 && ss < 60).then_some((hh, mm, ss))
}

#[cfg(test)]
mod tests {
    use super::date_function;

    /// What the bundled SQLite itself returns for `name(literal)`.
    fn sqlite(name: &str, literal: &str) -> Option<String> {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        db.query_row(&format!("SELECT {name}(?1)"), [literal], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn iso_literals_fold_to_what_sqlite_returns() {
        for (name, literal) in [
            ("DATETIME", "1997-01-01"),
            ("datetime", "1997-12-31T23:59:59.999"),
            ("datetime", "1997-12-31 23:59"),
            ("date", "2024-02-29 12:30"),
            ("time", "2024-02-29 12:30"),
            ("time", "2024-02-29T07:08:09.5"),
            ("datetime", "08:15:30"),
            ("date", "12:30"),
        ] {
            let folded = date_function(name, literal);
            assert!(folded.is_some(), "{name}({literal:?}) is not folded");
            assert_eq!(folded, sqlite(name, literal), "{name}({literal:?})");
        }
    }

    #[test]
    fn anything_uncertain_is_left_alone() {
        for s in [
            "now",
            "2023-02-29", // no such day: SQLite versions differ on what they return
            "2023-02-31",
            "1997-13-01",
            "1997-01-01 24:00:00",
            "1997-01-01 12:00:59.9999", // a fraction past milliseconds may round up
            "1997-01-01 12:00:00Z",
            "1997-01-01 12:00:00+02:00",
            " 1997-01-01",
            "1997-1-1",
            "2451545.0",
            "1997-01-01x",
            "1997-01-01 12",
            "",
        ] {
            assert_eq!(date_function("datetime", s), None, "{s:?}");
        }
        assert_eq!(date_function("julianday", "1997-01-01"), None);
        assert_eq!(date_function("strftime", "1997-01-01"), None);
    }
}
