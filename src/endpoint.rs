//! SOURCE and TARGET arguments: which engine, and where.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Endpoint {
    /// `postgres://`, `postgresql://` (with an optional `+driver` suffix) and libpq
    /// `key=value` strings are PostgreSQL; `sqlite://PATH` and anything else is a SQLite
    /// path, except a word followed by `://`: an unknown scheme is a typo (`postgresq://`),
    /// not a file name.
    pub fn parse(arg: &str) -> anyhow::Result<Endpoint> {
        let endpoint = Endpoint::classify(arg);
        if let Endpoint::Sqlite(_) = &endpoint
            && !arg.to_ascii_lowercase().starts_with("sqlite://")
            && let Some((scheme, _)) = arg.split_once("://")
            && !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            anyhow::bail!(
                "{scheme}://: unknown scheme; a database is postgresql://..., postgres://..., sqlite://PATH or a file path"
            );
        }
        Ok(endpoint)
    }

    fn classify(arg: &str) -> Endpoint {
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
        assert_eq!(
            Endpoint::parse("app.db").unwrap(),
            Endpoint::Sqlite("app.db".into())
        );
        assert_eq!(
            Endpoint::parse("sqlite:///tmp/a b.db").unwrap(),
            Endpoint::Sqlite("/tmp/a b.db".into())
        );
        for pg in [
            "postgres://u@h/db",
            "postgresql://h/db",
            "postgresql+asyncpg://h/db",
            "host=localhost dbname=x",
        ] {
            assert_eq!(
                Endpoint::parse(pg).unwrap(),
                Endpoint::Postgres(pg.into()),
                "{pg}"
            );
        }
        assert_eq!(
            Endpoint::parse("my=file.db").unwrap(),
            Endpoint::Sqlite("my=file.db".into())
        );
        for typo in [
            "postgresq://h/db",
            "postgress://h/db",
            "mysql://h/db",
            "sqlite3://x.db",
        ] {
            let err = Endpoint::parse(typo).unwrap_err().to_string();
            assert!(err.contains("unknown scheme"), "{typo}: {err}");
        }
    }
}
