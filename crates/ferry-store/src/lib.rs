//! # ferry-store: archives on object storage
//!
//! An archive in a bucket is the directory layout under a prefix, one object per entry, so
//! that Spark, Trino, DuckDB, polars and pyarrow read its Parquet parts where they lie. This
//! crate gives `ferry-archive` that storage through its [`Remote`] trait and nothing else:
//! the format crate keeps the rules (what is staged, what is checked, `manifest.json` last as
//! the commit), this one only moves bytes.
//!
//! * The store is Apache Arrow's `object_store`, configured from the environment as each
//!   cloud's own tools are. `s3://`: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL` (an S3-compatible server: MinIO,
//!   R2, Ceph, moto); what they leave unset from the shared files' profile (`AWS_PROFILE`,
//!   else `default`, in `~/.aws/credentials` and `~/.aws/config`), static keys only; and
//!   instance metadata when no key is set anywhere. `az://container/prefix`:
//!   `AZURE_STORAGE_ACCOUNT_NAME` with `AZURE_STORAGE_ACCOUNT_KEY`, a SAS token, a service
//!   principal or managed identity (`AZURE_*`), `AZURE_STORAGE_ENDPOINT`, and
//!   `AZURE_STORAGE_USE_EMULATOR` for Azurite. `gs://bucket/prefix`:
//!   `GOOGLE_SERVICE_ACCOUNT` or `GOOGLE_APPLICATION_CREDENTIALS`, else the metadata server;
//!   `GOOGLE_BASE_URL` for another endpoint. An `http://` endpoint the user set is allowed
//!   as such. TLS is rustls with the ring provider, like the PostgreSQL connections.
//! * Callers are synchronous, and some of them run inside another tokio runtime (the
//!   PostgreSQL adapter's). So every request runs as a task on this crate's own small
//!   runtime, and the caller waits on a plain channel, never on a runtime of its own.
//! * Uploads: a part up to 8 MiB is one PUT; a larger one is a multipart upload in 8 MiB
//!   pieces with at most four in flight, so memory stays near 40 MiB whatever the part size.
//!   A failed multipart upload is aborted, so no invisible pieces are left billed.
//! * Downloads: an object up to 16 MiB streams in one GET, chunk by chunk, as the reader
//!   asks. A larger one streams its first 8 MiB from that GET while the rest comes in 8 MiB
//!   ranged GETs, four in flight, handed on in order: one connection's throughput (and its
//!   first-byte latency) no longer bounds a large part. Memory per object read: about
//!   40 MiB at most, whatever the part size. The reader checks the whole object's SHA-256
//!   as before, so ranges of an object replaced midway cannot pass as one.
//! * Errors are one line naming the URL: a missing bucket, refused credentials and an
//!   unreachable endpoint each say so. No message carries a credential: requests are signed
//!   in headers, and the builder (which holds the secret) is never printed.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::future::Future;
use std::io::Read;
use std::path::Path as LocalPath;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::ClientConfigKey;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path;
use object_store::{
    ObjectStore, ObjectStoreExt, ObjectStoreScheme, PutPayload, RetryConfig, WriteMultipart,
};

pub use ferry_archive::{Remote, RemoteRef};

/// Multipart piece size: above S3's 5 MiB minimum, small enough to keep several in flight.
const CHUNK: usize = 8 << 20;
/// Pieces of one upload in flight at once.
const IN_FLIGHT: usize = 4;
/// Size of one ranged GET of a large object.
const RANGE: u64 = 8 << 20;
/// Objects over this size are read in ranges after their first [`RANGE`] bytes.
const RANGED_OVER: u64 = 16 << 20;
/// Ranged GETs of one object in flight at once.
const RANGES_IN_FLIGHT: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{url}: not a valid object store URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(
        "{url}: {scheme} is not supported; ferry reads and writes s3://bucket/prefix (AWS S3 and S3-compatible servers), az://container/prefix (Azure Blob Storage) and gs://bucket/prefix (Google Cloud Storage)"
    )]
    Unsupported { url: String, scheme: String },
    #[error("{url}: {reason}")]
    Config { url: String, reason: String },
}

/// `url` without what may stand before an `@` in its authority (a key and secret), for
/// messages about a URL that did not parse far enough to say.
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Whether a command-line ARCHIVE names an object store rather than a local path.
pub fn is_url(arg: &str) -> bool {
    let lower = arg.to_ascii_lowercase();
    [
        "s3://", "s3a://", "gs://", "az://", "abfs://", "abfss://", "adl://", "http://", "https://",
    ]
    .iter()
    .any(|s| lower.starts_with(s))
}

/// One archive on an object store: a bucket and a prefix.
pub struct ObjectArchive {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    cloud: Cloud,
}

/// Opens `s3://bucket/prefix` with credentials and endpoint from the environment. Nothing is
/// requested yet: a wrong key or bucket shows at the first request, named by that request.
pub fn open(arg: &str) -> Result<ObjectArchive, StoreError> {
    let url = arg.trim_end_matches('/').to_owned();
    if let Some(i) = url.find(['?', '#']) {
        // Never echoed: a query is where presigned tokens live.
        return Err(StoreError::BadUrl {
            url: without_userinfo(&url[..i]),
            reason: "a query or fragment has no place in an archive URL (credentials come from the cloud's variables)".into(),
        });
    }
    let parsed = url::Url::parse(&url).map_err(|e| StoreError::BadUrl {
        url: without_userinfo(&url),
        reason: e.to_string(),
    })?;
    // Whatever is before an `@` may be a secret: never echoed.
    let shown = || format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap_or(""));
    let has_userinfo = !parsed.username().is_empty() || parsed.password().is_some();
    // https:// URLs name the bucket in the path or the host depending on the service; only
    // the cloud's own scheme says which is which. (`abfss://fs@account...` names the
    // account in the host; `az://container/prefix` is the one Azure form taken.)
    let cloud = match parsed.scheme() {
        "s3" | "s3a" => Cloud::S3,
        "az" => Cloud::Azure,
        "gs" => Cloud::Gcs,
        other => {
            return Err(StoreError::Unsupported {
                url: if has_userinfo { shown() } else { url.clone() },
                scheme: format!("{other}://"),
            });
        }
    };
    if has_userinfo {
        return Err(StoreError::BadUrl {
            url: shown(),
            reason: format!(
                "credentials do not belong in the URL; set {}",
                cloud.credentials()
            ),
        });
    }
    ObjectStoreScheme::parse(&parsed).map_err(|e| StoreError::BadUrl {
        url: url.clone(),
        reason: e.to_string(),
    })?;
    // The key prefix exactly as written after the bucket (no percent-decoding), as the AWS
    // CLI and every other S3 client take it: spaces, `%` and non-ASCII stay what they are.
    let raw = url.splitn(4, '/').nth(3).unwrap_or_default();
    let prefix = Path::parse(raw).map_err(|e| StoreError::BadUrl {
        url: url.clone(),
        reason: e.to_string(),
    })?;
    // reqwest is built without a TLS provider of its own; this process uses ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = |reason: String| StoreError::Config {
        url: url.clone(),
        reason,
    };
    let store: Arc<dyn ObjectStore> = match cloud {
        Cloud::S3 => Arc::new(s3(&url).map_err(config)?),
        Cloud::Azure => Arc::new(azure(&url).map_err(config)?),
        Cloud::Gcs => Arc::new(gcs(&url).map_err(config)?),
    };
    Ok(ObjectArchive {
        url,
        store,
        prefix,
        cloud,
    })
}

/// Which cloud an archive URL names: the scheme decides, and so does the wording of what
/// to check when a request is refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cloud {
    S3,
    Azure,
    Gcs,
}

impl Cloud {
    /// Where this cloud's credentials come from, for the message of a refused request.
    fn credentials(self) -> &'static str {
        match self {
            Cloud::S3 => "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            Cloud::Azure => {
                "AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY or another AZURE_* credential"
            }
            Cloud::Gcs => "GOOGLE_SERVICE_ACCOUNT or GOOGLE_APPLICATION_CREDENTIALS",
        }
    }

    fn endpoint_variable(self) -> &'static str {
        match self {
            Cloud::S3 => "AWS_ENDPOINT_URL",
            Cloud::Azure => "AZURE_STORAGE_ENDPOINT",
            Cloud::Gcs => "GOOGLE_BASE_URL",
        }
    }

    fn bucket(self) -> &'static str {
        match self {
            Cloud::Azure => "container",
            Cloud::S3 | Cloud::Gcs => "bucket",
        }
    }
}

/// Retries of a failed request: a few, over at most five minutes.
fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 4,
        retry_timeout: Duration::from_secs(300),
        ..RetryConfig::default()
    }
}

/// object_store's default 30 s limit covers a whole request, body included: a 256 MiB part
/// over a slow link would never arrive. Bound what can hang instead: connecting, and silence
/// in the middle of a transfer. Each pair is the variable a user may set instead.
const TIMEOUTS: [(&str, ClientConfigKey, &str); 3] = [
    ("TIMEOUT", ClientConfigKey::Timeout, "6h"),
    ("READ_TIMEOUT", ClientConfigKey::ReadTimeout, "60s"),
    ("CONNECT_TIMEOUT", ClientConfigKey::ConnectTimeout, "10s"),
];

/// The timeouts the user left unset (`AWS_TIMEOUT`, `AZURE_TIMEOUT`, `GOOGLE_TIMEOUT`,
/// ...), as client keys. Set one by one: replacing the builder's whole client options would
/// drop what its `from_env` read (a proxy, certificates, HTTP/1 only).
fn default_timeouts(prefix: &str) -> impl Iterator<Item = (ClientConfigKey, &'static str)> {
    TIMEOUTS
        .into_iter()
        .filter(move |(var, _, _)| std::env::var_os(format!("{prefix}_{var}")).is_none())
        .map(|(_, key, value)| (key, value))
}

/// An endpoint a user set: never with credentials in it, and `http://` allowed as written.
fn endpoint_allows_http(var: &str, endpoint: &str) -> Result<bool, String> {
    if endpoint.contains('@') {
        return Err(format!(
            "{var} holds credentials; give them in the cloud's own credential variables"
        ));
    }
    Ok(endpoint.to_ascii_lowercase().starts_with("http://"))
}

fn s3(url: &str) -> Result<impl ObjectStore, String> {
    let mut builder = AmazonS3Builder::from_env()
        .with_url(url)
        .with_retry(retry());
    for (key, value) in default_timeouts("AWS") {
        builder = builder.with_config(AmazonS3ConfigKey::Client(key), value);
    }
    let set = |var: &str| std::env::var_os(var).is_some_and(|v| !v.is_empty());
    let need_keys = !set("AWS_ACCESS_KEY_ID");
    // The shared files fill in only what the variables leave unset; with keys in the
    // environment, a broken or missing profile is not the user's problem today.
    let profile = if need_keys
        || !(set("AWS_REGION") || set("AWS_DEFAULT_REGION"))
        || !(set("AWS_ENDPOINT_URL_S3") || set("AWS_ENDPOINT_URL") || set("AWS_ENDPOINT"))
    {
        match aws_profile() {
            Ok(p) => p,
            Err(e) if need_keys => return Err(e),
            Err(e) => {
                tracing::debug!(
                    "AWS shared files ignored (the keys come from the environment): {e}"
                );
                None
            }
        }
    } else {
        None
    };
    if !set("AWS_ACCESS_KEY_ID")
        && let Some(p) = &profile
    {
        match (&p.key, &p.secret) {
            (Some(key), Some(secret)) => {
                builder = builder
                    .with_access_key_id(key)
                    .with_secret_access_key(secret);
                if let Some(token) = &p.token {
                    builder = builder.with_token(token);
                }
            }
            // A profile that names a role, SSO or a helper command: its keys come from
            // running something, which ferry does not do. Instance metadata would be the
            // wrong identity, so say so rather than fall through to it.
            _ if p.indirect => {
                return Err(format!(
                    "AWS profile {name} gets its credentials from a role, SSO or a credential_process, which ferry does not run; export them first: eval \"$(aws configure export-credentials --profile {name} --format env)\"",
                    name = p.name
                ));
            }
            _ => {}
        }
    }
    if !set("AWS_REGION")
        && !set("AWS_DEFAULT_REGION")
        && let Some(region) = profile.as_ref().and_then(|p| p.region.as_ref())
    {
        builder = builder.with_region(region);
    }
    let mut endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .or_else(|_| std::env::var("AWS_ENDPOINT"))
        .unwrap_or_default();
    if endpoint.is_empty()
        && let Some(e) = profile.as_ref().and_then(|p| p.endpoint.as_ref())
    {
        endpoint_allows_http("endpoint_url in the AWS profile", e)?;
        builder = builder.with_endpoint(e);
        endpoint = e.clone();
    }
    if endpoint_allows_http("AWS_ENDPOINT_URL", &endpoint)? {
        builder = builder.with_allow_http(true);
    }
    builder.build().map_err(|e| describe(&e, Cloud::S3))
}

/// What the AWS shared files say for one profile.
#[derive(Debug, Default, PartialEq)]
struct AwsProfile {
    name: String,
    key: Option<String>,
    secret: Option<String>,
    token: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
    /// It names a role, an SSO session or a `credential_process` for its keys.
    indirect: bool,
}

/// The profile `AWS_PROFILE` names (else `default`) from `AWS_SHARED_CREDENTIALS_FILE`
/// (`~/.aws/credentials`) and `AWS_CONFIG_FILE` (`~/.aws/config`), as the AWS CLI reads
/// them: the credentials file's `[name]` wins over the config file's `[profile name]`
/// (`[default]` there). `None` when neither file has it and it was not asked for by name.
fn aws_profile() -> Result<Option<AwsProfile>, String> {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let file = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
    };
    let named = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty());
    let name = named.clone().unwrap_or_else(|| "default".to_owned());
    let config_section = if name == "default" {
        "default".to_owned()
    } else {
        format!("profile {name}")
    };
    let mut profile = AwsProfile {
        name: name.clone(),
        ..AwsProfile::default()
    };
    let mut found = false;
    for (path, section) in [
        (file("AWS_CONFIG_FILE", "config"), config_section.as_str()),
        (
            file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
            name.as_str(),
        ),
    ] {
        let Some(path) = path.filter(|p| p.is_file()) else {
            continue;
        };
        // No escapes: the AWS tools take `\` literally (`C:\xtools\helper.exe`).
        let ini = ini::Ini::load_from_file_noescape(&path)
            .map_err(|e| format!("{}: not a readable AWS settings file: {e}", path.display()))?;
        let Some(s) = ini.section(Some(section)) else {
            continue;
        };
        found = true;
        // Later files (credentials) override earlier ones (config), key by key.
        let take = |field: &mut Option<String>, key: &str| {
            if let Some(v) = s.get(key).map(str::trim).filter(|v| !v.is_empty()) {
                *field = Some(v.to_owned());
            }
        };
        take(&mut profile.key, "aws_access_key_id");
        take(&mut profile.secret, "aws_secret_access_key");
        take(&mut profile.token, "aws_session_token");
        take(&mut profile.region, "region");
        take(&mut profile.endpoint, "endpoint_url");
        profile.indirect |= [
            "role_arn",
            "sso_session",
            "sso_start_url",
            "credential_process",
        ]
        .iter()
        .any(|k| s.contains_key(k));
    }
    match (found, named) {
        (true, _) => Ok(Some(profile)),
        (false, Some(name)) => Err(format!(
            "AWS_PROFILE={name}: no such profile in the AWS credentials or config file"
        )),
        (false, None) => Ok(None),
    }
}

fn azure(url: &str) -> Result<impl ObjectStore, String> {
    let mut builder = MicrosoftAzureBuilder::from_env()
        .with_url(url)
        .with_retry(retry());
    for (key, value) in default_timeouts("AZURE") {
        builder = builder.with_config(AzureConfigKey::Client(key), value);
    }
    let endpoint = std::env::var("AZURE_STORAGE_ENDPOINT").unwrap_or_default();
    if endpoint_allows_http("AZURE_STORAGE_ENDPOINT", &endpoint)? {
        builder = builder.with_config(AzureConfigKey::Client(ClientConfigKey::AllowHttp), "true");
    }
    builder.build().map_err(|e| describe(&e, Cloud::Azure))
}

fn gcs(url: &str) -> Result<impl ObjectStore, String> {
    let mut builder = GoogleCloudStorageBuilder::from_env()
        .with_url(url)
        .with_retry(retry());
    for (key, value) in default_timeouts("GOOGLE") {
        builder = builder.with_config(GoogleConfigKey::Client(key), value);
    }
    let endpoint = std::env::var("GOOGLE_BASE_URL").unwrap_or_default();
    if endpoint_allows_http("GOOGLE_BASE_URL", &endpoint)? {
        builder = builder.with_config(GoogleConfigKey::Client(ClientConfigKey::AllowHttp), "true");
    }
    builder.build().map_err(|e| describe(&e, Cloud::Gcs))
}

/// The runtime every request runs on. Never dropped: a runtime may not be dropped inside
/// another's context, and callers can be anywhere.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ferry-store")
            .enable_all()
            .build()
            .expect("starting the object store runtime")
    })
}

/// Runs `fut` on the store's runtime and waits for it on a plain channel, which is safe from
/// any thread, inside another runtime's task or not.
fn run<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .expect("an object store request panicked (its task ended without an answer)")
}

/// One line for a store error, without the response body's XML.
fn describe(e: &object_store::Error, cloud: Cloud) -> String {
    let text = e.to_string();
    // The whole response, for FERRY_LOG=debug: the line below keeps only what a user acts on.
    tracing::debug!("object store: {text}");
    let has = |s: &str| text.contains(s);
    let policy = || {
        format!(
            "access denied: check the credentials ({}) and the policy (ferry needs list, get, put and delete under the prefix)",
            cloud.credentials()
        )
    };
    match e {
        _ if has("NoSuchBucket") || has("ContainerNotFound") => {
            format!("the {} does not exist", cloud.bucket())
        }
        _ if has("InvalidAccessKeyId")
            || has("SignatureDoesNotMatch")
            || has("AuthenticationFailed")
            || has("AuthorizationFailure")
            || has("Server failed to authenticate") =>
        {
            format!(
                "access denied: the credentials are refused ({})",
                cloud.credentials()
            )
        }
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => policy(),
        _ if has("403 Forbidden") => policy(),
        _ if has("NoSuchUpload") => "the multipart upload is gone (aborted by the server?)".into(),
        object_store::Error::NotFound { .. } => "no such object".into(),
        _ if has("error sending request") || has("Connection refused") || has("dns error") => {
            format!(
                "cannot reach the object store ({}); check {} and the network",
                first_line(&text),
                cloud.endpoint_variable()
            )
        }
        _ => first_line(&text),
    }
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    // The raw response body follows the status; the status is what a user needs.
    match line.find(": <?xml") {
        Some(i) => line[..i].to_owned(),
        None => line.to_owned(),
    }
}

/// `doing`: the refused operation and its object, as the message names them.
fn io_err(doing: &str, e: &object_store::Error, cloud: Cloud) -> std::io::Error {
    let kind = match e {
        object_store::Error::NotFound { .. } => std::io::ErrorKind::NotFound,
        object_store::Error::PermissionDenied { .. } => std::io::ErrorKind::PermissionDenied,
        _ => std::io::ErrorKind::Other,
    };
    std::io::Error::new(kind, format!("{doing}: {}", describe(e, cloud)))
}

impl ObjectArchive {
    fn key(&self, entry: &str) -> std::io::Result<Path> {
        let full = if self.prefix.as_ref().is_empty() {
            entry.to_owned()
        } else {
            format!("{}/{entry}", self.prefix.as_ref())
        };
        Path::parse(&full).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    }

    /// This archive as a `Location`.
    pub fn into_location(self) -> ferry_archive::Location {
        ferry_archive::Location::Remote(RemoteRef(Arc::new(self)))
    }
}

impl Remote for ObjectArchive {
    fn url(&self) -> &str {
        &self.url
    }

    fn list(&self) -> std::io::Result<Vec<(String, u64)>> {
        let store = self.store.clone();
        let prefix = self.prefix.clone();
        let listed = run(async move {
            let p = (!prefix.as_ref().is_empty()).then_some(&prefix);
            let mut out = Vec::new();
            let mut s = store.list(p);
            while let Some(meta) = s.next().await {
                let meta = meta?;
                out.push((meta.location.to_string(), meta.size));
            }
            Ok::<_, object_store::Error>(out)
        })
        .map_err(|e| io_err("listing the archive", &e, self.cloud))?;
        let strip = if self.prefix.as_ref().is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix.as_ref())
        };
        Ok(listed
            .into_iter()
            .filter_map(|(k, size)| Some((k.strip_prefix(&strip)?.to_owned(), size)))
            .collect())
    }

    fn put_file(&self, entry: &str, file: &LocalPath) -> std::io::Result<()> {
        let key = self.key(entry)?;
        let store = self.store.clone();
        let file = file.to_owned();
        run(async move { upload(store, key, &file).await }).map_err(|e| match e {
            Upload::Io(e) => e,
            Upload::Store(e) => io_err(&format!("uploading {entry}"), &e, self.cloud),
        })
    }

    fn open(&self, entry: &str) -> std::io::Result<Box<dyn Read + Send>> {
        let key = self.key(entry)?;
        let store = self.store.clone();
        let (size, stream) = run({
            let key = key.clone();
            async move {
                store
                    .get(&key)
                    .await
                    .map(|r| (r.meta.size, r.into_stream()))
            }
        })
        .map_err(|e| io_err(&format!("reading {entry}"), &e, self.cloud))?;
        let (stream_left, ranges) = if size > RANGED_OVER {
            let mut ranges = Ranges {
                store: self.store.clone(),
                key,
                next: RANGE,
                size,
                pending: VecDeque::new(),
            };
            ranges.fill();
            (RANGE, Some(ranges))
        } else {
            (u64::MAX, None)
        };
        Ok(Box::new(ObjectReader {
            stream: Some(stream),
            stream_left,
            ranges,
            current: Bytes::new(),
            entry: entry.to_owned(),
            failed: None,
            cloud: self.cloud,
        }))
    }

    fn delete(&self, entries: &[String]) -> std::io::Result<()> {
        let keys = entries
            .iter()
            .map(|e| self.key(e))
            .collect::<std::io::Result<Vec<_>>>()?;
        let store = self.store.clone();
        run(async move {
            for k in keys {
                store.delete(&k).await?;
            }
            Ok::<_, object_store::Error>(())
        })
        .map_err(|e| io_err("deleting", &e, self.cloud))
    }
}

enum Upload {
    Io(std::io::Error),
    Store(object_store::Error),
}

impl From<std::io::Error> for Upload {
    fn from(e: std::io::Error) -> Self {
        Upload::Io(e)
    }
}

impl From<object_store::Error> for Upload {
    fn from(e: object_store::Error) -> Self {
        Upload::Store(e)
    }
}

async fn upload(store: Arc<dyn ObjectStore>, key: Path, file: &LocalPath) -> Result<(), Upload> {
    let mut f = std::fs::File::open(file)?;
    let size = f.metadata()?.len();
    if size <= CHUNK as u64 {
        let mut buf = Vec::with_capacity(size as usize);
        tokio::task::block_in_place(|| f.read_to_end(&mut buf))?;
        store.put(&key, PutPayload::from(buf)).await?;
        return Ok(());
    }
    let upload = store.put_multipart(&key).await?;
    let mut w = WriteMultipart::new_with_chunk_size(upload, CHUNK);
    let mut buf = vec![0u8; CHUNK];
    let result: Result<(), Upload> = async {
        loop {
            // Ctrl-C stops a large upload between pieces (and aborts it), so an interrupted
            // export can clean up now rather than after its uploads finish.
            if ferry_archive::interrupt::requested() {
                return Err(Upload::Io(std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    "interrupted",
                )));
            }
            // A local read, kept off the runtime's two workers' async duty.
            let n = tokio::task::block_in_place(|| read_full(&mut f, &mut buf))?;
            if n == 0 {
                return Ok(());
            }
            w.wait_for_capacity(IN_FLIGHT).await?;
            w.write(&buf[..n]);
        }
    }
    .await;
    match result {
        Ok(()) => {
            w.finish().await?;
            Ok(())
        }
        Err(e) => {
            let _ = w.abort().await;
            Err(e)
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// An object's bytes as a `Read`, fetched chunk by chunk as they are asked for: from its
/// GET's stream, and for a large object, after [`RANGE`] bytes of it, from ranged GETs.
struct ObjectReader {
    stream: Option<BoxStream<'static, object_store::Result<Bytes>>>,
    /// Bytes still to take from `stream` (`u64::MAX`: all of them).
    stream_left: u64,
    ranges: Option<Ranges>,
    current: Bytes,
    entry: String,
    failed: Option<String>,
    cloud: Cloud,
}

/// The ranged GETs of a large object past its first [`RANGE`] bytes, in order.
struct Ranges {
    store: Arc<dyn ObjectStore>,
    key: Path,
    /// Where the next range to request starts.
    next: u64,
    size: u64,
    pending: VecDeque<tokio::task::JoinHandle<object_store::Result<Bytes>>>,
}

impl Ranges {
    fn fill(&mut self) {
        while self.pending.len() < RANGES_IN_FLIGHT && self.next < self.size {
            let range = self.next..(self.next + RANGE).min(self.size);
            self.next = range.end;
            let (store, key) = (self.store.clone(), self.key.clone());
            self.pending
                .push_back(runtime().spawn(async move { store.get_range(&key, range).await }));
        }
    }
}

impl Drop for Ranges {
    /// A reader dropped early (an error elsewhere, an interrupt) stops its downloads.
    fn drop(&mut self) {
        for h in &self.pending {
            h.abort();
        }
    }
}

impl ObjectReader {
    /// Records `err` so that every later read repeats it, never a clean end.
    fn fail(&mut self, err: std::io::Error) -> std::io::Error {
        self.failed = Some(err.to_string());
        self.stream = None;
        self.ranges = None;
        err
    }

    fn store_err(&mut self, e: &object_store::Error) -> std::io::Error {
        let err = io_err(&format!("reading {}", self.entry), e, self.cloud);
        self.fail(err)
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if let Some(why) = &self.failed {
                return Err(std::io::Error::other(why.clone()));
            }
            if let Some(mut stream) = self.stream.take() {
                let (stream, next) = run(async move {
                    let next = stream.next().await;
                    (stream, next)
                });
                match next {
                    None if self.ranges.is_some() => {
                        return Err(self.fail(std::io::Error::other(format!(
                            "reading {}: the object ended before its size",
                            self.entry
                        ))));
                    }
                    None => return Ok(0),
                    Some(Ok(mut b)) => {
                        if b.len() as u64 >= self.stream_left {
                            // The ranges take over from here; the rest of this response
                            // is not read (dropping the stream closes it).
                            b.truncate(self.stream_left as usize);
                            self.stream_left = 0;
                        } else {
                            self.stream_left = self.stream_left.saturating_sub(b.len() as u64);
                            self.stream = Some(stream);
                        }
                        self.current = b;
                    }
                    Some(Err(e)) => return Err(self.store_err(&e)),
                }
                continue;
            }
            let Some(ranges) = self.ranges.as_mut() else {
                return Ok(0);
            };
            let Some(next) = ranges.pending.pop_front() else {
                return Ok(0);
            };
            match run(next) {
                Ok(Ok(b)) => {
                    ranges.fill();
                    self.current = b;
                }
                Ok(Err(e)) => return Err(self.store_err(&e)),
                Err(e) => {
                    return Err(self.fail(std::io::Error::other(format!(
                        "reading {}: a ranged read stopped: {e}",
                        self.entry
                    ))));
                }
            }
        }
        let n = self.current.len().min(buf.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths() {
        assert!(is_url("s3://bucket/prefix"));
        assert!(is_url("S3://bucket"));
        assert!(!is_url("backup.tar"));
        assert!(!is_url("-"));
        assert!(!is_url("s3-backup"));
    }

    #[test]
    fn other_schemes_and_credentials_in_urls_are_refused_in_one_line() {
        let e = open("abfss://fs@account.dfs.core.windows.net/x")
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("abfss:// is not supported"), "{e}");
        let e = open("s3://key:secret@bucket/x")
            .err()
            .expect("refused")
            .to_string();
        assert!(!e.contains("secret"), "{e}");
        assert!(e.contains("credentials do not belong in the URL"), "{e}");
        for leaky in [
            "s3://AKIA:sekrit@bucket:notaport/x",
            "s3://AKIA:sekrit@bucket/x?y=1",
            "gs://u:sekrit@bucket/x",
        ] {
            let e = open(leaky).err().expect("refused").to_string();
            assert!(!e.contains("sekrit") && !e.contains("AKIA"), "{e}");
        }
        let e = open("s3://bucket/x?X-Amz-Security-Token=tok")
            .err()
            .expect("refused")
            .to_string();
        assert!(!e.contains("tok"), "{e}");
        let e = open("https://s3.eu-west-1.amazonaws.com/bucket/x")
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("https:// is not supported"), "{e}");
    }
}
