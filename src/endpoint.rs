//! SOURCE and TARGET arguments: which engine, and where.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Endpoint {
    /// `postgres://`, `postgresql://` (with an optional `+driver` suffix) and libpq
    /// `key=value` strings are PostgreSQL; `sqlite://PATH` and anything else is a SQLite path.
    pub fn parse(arg: &str) -> Endpoint {
        let lower = arg.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("sqlite://") {
            let _ = rest;
            return Endpoint::Sqlite(PathBuf::from(&arg["sqlite://".len()..]));
        }
        let scheme = lower.split("://").next().unwrap_or("");
        let scheme_base = scheme.split('+').next().unwrap_or("");
        if lower.contains("://") && (scheme_base == "postgres" || scheme_base == "postgresql") {
            return Endpoint::Postgres(arg.to_owned());
        }
        let looks_like_conninfo = arg
            .split_whitespace()
            .next()
            .and_then(|w| w.split_once('='))
            .is_some_and(|(k, _)| {
                matches!(
                    k,
                    "host"
                        | "hostaddr"
                        | "port"
                        | "dbname"
                        | "user"
                        | "password"
                        | "sslmode"
                        | "application_name"
                        | "connect_timeout"
                        | "options"
                        | "service"
                )
            });
        if looks_like_conninfo {
            return Endpoint::Postgres(arg.to_owned());
        }
        Endpoint::Sqlite(PathBuf::from(arg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_are_recognised() {
        assert_eq!(Endpoint::parse("app.db"), Endpoint::Sqlite("app.db".into()));
        assert_eq!(
            Endpoint::parse("sqlite:///tmp/a b.db"),
            Endpoint::Sqlite("/tmp/a b.db".into())
        );
        for pg in [
            "postgres://u@h/db",
            "postgresql://h/db",
            "postgresql+asyncpg://h/db",
            "host=localhost dbname=x",
        ] {
            assert_eq!(Endpoint::parse(pg), Endpoint::Postgres(pg.into()), "{pg}");
        }
        assert_eq!(
            Endpoint::parse("my=file.db"),
            Endpoint::Sqlite("my=file.db".into())
        );
    }
}
