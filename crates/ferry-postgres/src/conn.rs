//! Connecting as PostgreSQL users expect: URLs (with or without a SQLAlchemy-style `+driver`
//! suffix), libpq `key=value` strings, the `PG*` environment variables, `DATABASE_URL`, and
//! every `sslmode` from `disable` to `verify-full` through rustls.
//!
//! The password never leaves this module in readable form: everything that names a database
//! uses [`ConnSpec::display`], which is built without it.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::Client;
use tokio_postgres::config::{Config, Host};

use crate::error::PgError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<SslMode, PgError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(PgError::Config(format!(
                    "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )));
            }
        })
    }
}

/// Seconds to wait for a connection when neither the connection string nor
/// `PGCONNECT_TIMEOUT` says.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 30;

/// A parsed connection target.
#[derive(Clone)]
pub struct ConnSpec {
    pub config: Config,
    pub ssl: SslMode,
    pub root_cert: Option<PathBuf>,
    /// How long one host may take to accept a session (None: forever).
    pub connect_timeout: Option<std::time::Duration>,
}

static TIMEOUT_OVERRIDE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// `--connect-timeout`: seconds (0: forever) that override every connection string's own
/// `connect_timeout` in this process. Only the first call counts.
pub fn override_connect_timeout(secs: u64) {
    let _ = TIMEOUT_OVERRIDE.set(secs);
}

/// The `connect_timeout` a connection string spells out, 0 included (the driver drops a 0,
/// which libpq reads as "wait forever").
fn spelled_timeout(arg: &str) -> Option<u64> {
    let lower = arg.to_ascii_lowercase();
    let at = lower.find("connect_timeout")? + "connect_timeout".len();
    let rest = lower[at..].trim_start().strip_prefix('=')?.trim_start();
    let rest = rest.trim_start_matches('\'');
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl std::fmt::Debug for ConnSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl ConnSpec {
    /// Parses a URL or conninfo string, filling what it leaves out from the `PG*` variables.
    /// A bare `postgres://` (or `postgresql://`) takes `DATABASE_URL` when it is set.
    /// Parses a URL or conninfo string, filling what it leaves out from the `PG*`
    /// variables as libpq does. `connect_timeout` (seconds, 0 for none) comes from the string,
    /// then `PGCONNECT_TIMEOUT`, then [`DEFAULT_CONNECT_TIMEOUT_SECS`].
    pub fn parse(arg: &str) -> Result<ConnSpec, PgError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut arg = arg.trim().to_owned();
        if matches!(arg.as_str(), "postgres://" | "postgresql://") {
            // A bare scheme means "the database in DATABASE_URL" (or in the PG* variables);
            // with neither it would silently pick libpq's default, which is rarely meant.
            match env("DATABASE_URL") {
                Some(url) => arg = url,
                None if env("PGDATABASE").is_none() => {
                    return Err(PgError::Config(format!(
                        "{arg} names no database and neither DATABASE_URL nor PGDATABASE is set; name one: postgresql://HOST/DBNAME"
                    )));
                }
                None => {}
            }
        }
        let (rest, ssl_params) = take_ssl_params(&normalize_scheme(&arg));
        let mut config: Config = if rest.is_empty() {
            Config::new()
        } else {
            rest.parse().map_err(|e: tokio_postgres::Error| {
                // The driver says "invalid connection string"; its source says which part.
                let mut detail = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(inner) = src {
                    detail = format!("{detail}: {inner}");
                    src = inner.source();
                }
                PgError::Config(format!("cannot parse the connection string: {detail}"))
            })?
        };
        if config.get_hosts().is_empty() {
            match env("PGHOST") {
                Some(h) => {
                    for h in h.split(',') {
                        config.host(h);
                    }
                }
                None if std::path::Path::new("/var/run/postgresql").is_dir() => {
                    config.host_path("/var/run/postgresql");
                }
                None => {
                    config.host("localhost");
                }
            }
        }
        if config.get_ports().is_empty()
            && let Some(p) = env("PGPORT")
        {
            let port = p
                .parse()
                .map_err(|_| PgError::Config(format!("PGPORT {p:?} is not a port number")))?;
            config.port(port);
        }
        if config.get_user().is_none() {
            let user = env("PGUSER")
                .or_else(|| env("USER"))
                .unwrap_or_else(|| "postgres".into());
            config.user(&user);
        }
        if config.get_password().is_none()
            && let Some(p) = env("PGPASSWORD")
        {
            config.password(p);
        }
        if config.get_dbname().is_none() {
            let db = env("PGDATABASE").unwrap_or_else(|| config.get_user().unwrap_or("").into());
            config.dbname(&db);
        }
        // libpq waits forever by default; a script should not hang on a dead host. The flag
        // wins, then the string, then PGCONNECT_TIMEOUT, then ferry's default; 0 is forever.
        let secs = match (TIMEOUT_OVERRIDE.get(), spelled_timeout(&arg)) {
            (Some(s), _) => *s,
            (None, Some(s)) => s,
            (None, None) => match env("PGCONNECT_TIMEOUT") {
                Some(s) => s.parse().map_err(|_| {
                    PgError::Config(format!(
                        "PGCONNECT_TIMEOUT {s:?} is not a number of seconds"
                    ))
                })?,
                None => DEFAULT_CONNECT_TIMEOUT_SECS,
            },
        };
        let connect_timeout = (secs > 0).then(|| std::time::Duration::from_secs(secs));
        if let Some(t) = connect_timeout {
            config.connect_timeout(t);
        }
        if config.get_application_name().is_none() {
            config.application_name("ferry");
        }
        let ssl = match ssl_params.mode.or_else(|| env("PGSSLMODE")) {
            Some(m) => SslMode::parse(&m)?,
            None => SslMode::Prefer,
        };
        let root_cert = ssl_params
            .root_cert
            .or_else(|| env("PGSSLROOTCERT"))
            .map(PathBuf::from);
        Ok(ConnSpec {
            config,
            ssl,
            root_cert,
            connect_timeout,
        })
    }

    /// `postgresql://user@host:port/dbname`, never with the password.
    pub fn display(&self) -> String {
        let host = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(s) => s.clone(),
                Host::Unix(p) => p.display().to_string(),
            })
            .collect::<Vec<_>>()
            .join(",");
        let port = self
            .config
            .get_ports()
            .first()
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        format!(
            "postgresql://{}@{host}{port}/{}",
            self.config.get_user().unwrap_or(""),
            self.config.get_dbname().unwrap_or("")
        )
    }

    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or("")
    }

    /// The same server, another database (for tests and for creating targets).
    pub fn with_dbname(&self, db: &str) -> ConnSpec {
        let mut c = self.clone();
        c.config.dbname(db);
        c
    }

    /// Connects and prepares the session: UTF-8, UTC, ISO dates, exact floats in text, an
    /// empty search_path so every catalog function qualifies names fully.
    pub async fn connect(&self) -> Result<Client, PgError> {
        self.connect_with(true).await
    }

    /// A connection for undoing an interrupted run's work (dropping its staging schemas):
    /// it neither gives up on the interruption nor cancels its own statements because of
    /// it, which a normal connection does.
    pub async fn connect_for_cleanup(&self) -> Result<Client, PgError> {
        self.connect_with(false).await
    }

    async fn connect_with(&self, interruptible: bool) -> Result<Client, PgError> {
        // The driver's connect_timeout bounds the TCP connect only; a server (or a proxy)
        // that accepts and then never answers would hang the run, and Ctrl-C with it. So the
        // whole handshake races the timeout and the interrupt flag.
        // Per host, as libpq counts it: a list of hosts gets the limit once for each.
        let hosts = u32::try_from(self.config.get_hosts().len().max(1)).unwrap_or(u32::MAX);
        let limit = self.connect_timeout.map(|t| t.saturating_mul(hosts));
        let attempt = Box::pin(self.connect_session(interruptible));
        let watch = Box::pin(async {
            let started = std::time::Instant::now();
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                if interruptible && ferry_archive::interrupt::requested() {
                    return PgError::Archive(ferry_archive::ArchiveError::Interrupted);
                }
                if let Some(limit) = limit
                    && started.elapsed() >= limit
                {
                    return PgError::Connect {
                        target: self.display(),
                        detail: format!(
                            "no answer within {}s (connect_timeout; --connect-timeout or PGCONNECT_TIMEOUT change it)",
                            self.connect_timeout.map_or(0, |t| t.as_secs())
                        ),
                    };
                }
            }
        });
        match futures_util::future::select(attempt, watch).await {
            futures_util::future::Either::Left((connected, _)) => connected,
            futures_util::future::Either::Right((failed, _)) => Err(failed),
        }
    }

    async fn connect_session(&self, interruptible: bool) -> Result<Client, PgError> {
        let client = match self.ssl {
            SslMode::Disable => {
                let (client, conn) = self
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| self.connect_error(e))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                client
            }
            mode => {
                let mut config = self.config.clone();
                config.ssl_mode(if mode == SslMode::Prefer {
                    tokio_postgres::config::SslMode::Prefer
                } else {
                    tokio_postgres::config::SslMode::Require
                });
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.tls_config()?);
                let (client, conn) = config
                    .connect(tls)
                    .await
                    .map_err(|e| self.connect_error(e))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                client
            }
        };
        client.batch_execute(SESSION_SETUP).await.map_err(|e| {
            PgError::query(format!("{}: setting up the session", self.display()), e)
        })?;
        if interruptible {
            self.cancel_on_interrupt(&client)?;
        }
        tracing::debug!(target = %self.display(), tls = ?self.ssl, "connected");
        Ok(client)
    }

    /// A statement can run for minutes (an index build, a COPY the server is still
    /// digesting); Ctrl-C must not wait for it. Once an interruption is asked for, this
    /// task sends the server a cancel request for whatever the connection is running; the
    /// statement fails, and the failure path rolls back as for any other error. It runs
    /// only while the runtime is driving a query, which is when it is needed.
    fn cancel_on_interrupt(&self, client: &Client) -> Result<(), PgError> {
        let token = client.cancel_token();
        let tls = match self.ssl {
            SslMode::Disable => None,
            _ => Some(self.tls_config()?),
        };
        tokio::spawn(async move {
            while !ferry_archive::interrupt::requested() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            let sent = match tls {
                None => token.cancel_query(tokio_postgres::NoTls).await,
                Some(c) => {
                    token
                        .cancel_query(tokio_postgres_rustls::MakeRustlsConnect::new(c))
                        .await
                }
            };
            if let Err(e) = sent {
                tracing::debug!(error = %e, "cancel request after an interruption");
            }
        });
        Ok(())
    }

    fn connect_error(&self, e: tokio_postgres::Error) -> PgError {
        let detail = match e.as_db_error() {
            Some(db) => db.message().to_owned(),
            None => {
                let mut s = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(inner) = src {
                    let t = inner.to_string();
                    if !s.contains(&t) {
                        s = format!("{s}: {t}");
                    }
                    src = inner.source();
                }
                s
            }
        };
        PgError::Connect {
            target: self.display(),
            detail,
        }
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig, PgError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| PgError::Config(format!("TLS: {e}")))?;
        let verify = matches!(self.ssl, SslMode::VerifyCa | SslMode::VerifyFull)
            || (self.ssl == SslMode::Require && self.root_cert.is_some());
        if !verify {
            // libpq's prefer/require: encrypt, but do not authenticate the server.
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
                .with_no_client_auth());
        }
        let mut roots = rustls::RootCertStore::empty();
        match &self.root_cert {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| PgError::Config(format!("sslrootcert {}: {e}", path.display())))?;
                for cert in rustls_pemfile::certs(&mut &pem[..]) {
                    let cert = cert.map_err(|e| {
                        PgError::Config(format!("sslrootcert {}: {e}", path.display()))
                    })?;
                    roots.add(cert).map_err(|e| {
                        PgError::Config(format!("sslrootcert {}: {e}", path.display()))
                    })?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        if roots.is_empty() {
            return Err(PgError::Config(
                "sslmode verify-ca/verify-full needs trusted roots: set sslrootcert or install the system's CA certificates".into(),
            ));
        }
        let webpki =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| PgError::Config(format!("TLS: {e}")))?;
        let verifier: Arc<dyn ServerCertVerifier> = if self.ssl == SslMode::VerifyFull {
            webpki
        } else {
            Arc::new(ChainOnly(webpki))
        };
        Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    }
}

const SESSION_SETUP: &str = "SET client_encoding = 'UTF8'; SET DateStyle = 'ISO, MDY'; \
    SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; SET bytea_output = 'hex'; \
    SET TimeZone = 'UTC'; SET search_path = ''; SET standard_conforming_strings = on; \
    SET check_function_bodies = off; SET statement_timeout = 0; SET lock_timeout = 0; \
    SET row_security = off;";

/// `postgresql+asyncpg://` → `postgresql://`; `postgres://` stays.
fn normalize_scheme(arg: &str) -> String {
    if let Some((scheme, rest)) = arg.split_once("://") {
        let base = scheme.split('+').next().unwrap_or(scheme);
        if base.eq_ignore_ascii_case("postgres") || base.eq_ignore_ascii_case("postgresql") {
            return format!("postgresql://{rest}");
        }
    }
    arg.to_owned()
}

#[derive(Default)]
struct SslParams {
    mode: Option<String>,
    root_cert: Option<String>,
}

/// Removes `sslmode` and `sslrootcert` (which this module handles itself) from a URL query or
/// a conninfo string.
fn take_ssl_params(arg: &str) -> (String, SslParams) {
    let mut p = SslParams::default();
    let mut keep = |k: &str, v: String| match k {
        "sslmode" => {
            p.mode = Some(v);
            false
        }
        "sslrootcert" => {
            p.root_cert = Some(v);
            false
        }
        _ => true,
    };
    if arg.contains("://") {
        let (base, query) = match arg.split_once('?') {
            Some((b, q)) => (b.to_owned(), q.to_owned()),
            None => (arg.to_owned(), String::new()),
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|kv| !kv.is_empty())
            .filter(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                keep(k, percent_decode(v))
            })
            .collect();
        let out = if kept.is_empty() {
            base
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        (out, p)
    } else {
        let mut kept = Vec::new();
        for (k, v, raw) in conninfo_pairs(arg) {
            if keep(&k, v) {
                kept.push(raw);
            }
        }
        (kept.join(" "), p)
    }
}

/// Connections the server can still accept from a role that is not a superuser: ferry never
/// opens more workers than this, so a large `--jobs` cannot exhaust `max_connections`.
pub async fn free_connections(client: &tokio_postgres::Client) -> Result<usize, PgError> {
    let row = client
        .query_one(
            "SELECT current_setting('max_connections')::int
                  - current_setting('superuser_reserved_connections')::int
                  - (SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend')::int",
            &[],
        )
        .await
        .map_err(|e| PgError::query("reading max_connections", e))?;
    let free: i32 = row
        .try_get(0)
        .map_err(|e| PgError::query("reading max_connections", e))?;
    Ok(free.max(0) as usize)
}

/// `%XX` escapes decoded; an invalid escape is kept as written, invalid UTF-8 replaced.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// `key=value` pairs of a libpq conninfo string (values may be single-quoted), with the raw
/// text of each pair.
fn conninfo_pairs(s: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i < chars.len() && chars[i] == '=' {
            i += 1;
        }
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < chars.len() && chars[i] == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
        }
        let raw: String = chars[start..i.min(chars.len())].iter().collect();
        if !key.is_empty() {
            out.push((key, value, raw));
        }
    }
    out
}

/// `prefer` and `require` without a root certificate: encrypted, not authenticated (libpq's
/// semantics). Signatures are still checked, so the handshake itself is sound.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spelled_out_connect_timeout_is_read_zero_included() {
        assert_eq!(
            spelled_timeout("postgresql://h/db?connect_timeout=0"),
            Some(0)
        );
        assert_eq!(
            spelled_timeout("host=h connect_timeout = '7' dbname=x"),
            Some(7)
        );
        assert_eq!(spelled_timeout("postgresql://h/db"), None);
    }

    #[test]
    fn urls_conninfo_and_driver_suffixes() {
        let s = ConnSpec::parse("postgresql+asyncpg://alice:s3cret@db.example:6543/app?sslmode=verify-full&sslrootcert=/x/ca.pem&application_name=t").unwrap();
        assert_eq!(s.display(), "postgresql://alice@db.example:6543/app");
        assert_eq!(s.ssl, SslMode::VerifyFull);
        assert_eq!(s.root_cert, Some(PathBuf::from("/x/ca.pem")));
        assert_eq!(s.config.get_password(), Some(&b"s3cret"[..]));
        assert!(!format!("{s:?}").contains("s3cret"));

        let s = ConnSpec::parse(
            "host=127.0.0.1 port=5433 user=bob password='p w' dbname=x sslmode=disable",
        )
        .unwrap();
        assert_eq!(s.display(), "postgresql://bob@127.0.0.1:5433/x");
        assert_eq!(s.ssl, SslMode::Disable);
        assert_eq!(s.config.get_password(), Some(&b"p w"[..]));

        assert!(ConnSpec::parse("postgres://h/db?sslmode=sometimes").is_err());
    }

    #[test]
    fn percent_escapes_never_panic() {
        // A `%` before a multi-byte character once sliced it in half.
        for url in [
            "postgres://h/db?application_name=%aé",
            "postgres://h/db?application_name=%",
            "postgres://h/db?application_name=%e",
            "postgres://u:%zz@h/db",
        ] {
            let _ = ConnSpec::parse(url);
        }
        assert_eq!(percent_decode("a%20b%2"), "a b%2");
        assert_eq!(percent_decode("%C3%A9%aé"), "é%aé");
    }
}
