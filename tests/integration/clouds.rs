//! `az://` and `gs://` archives, against real servers on this machine.
//!
//! * Azure Blob Storage: Azurite (`azurite-blob`, installed from npm by scripts/ensure-tools),
//!   one per test on its own port, in memory. ferry signs its requests with the emulator
//!   account's shared key, as it would a real account's.
//! * Google Cloud Storage: object_store's GCS client speaks GCS's XML API (the S3-shaped
//!   one: PUT/GET objects, `?uploads` multipart, `list-type=2` listings) with a bearer token.
//!   No GCS emulator in the package registries implements that API (gcp-storage-emulator
//!   answers PUT without an ETag and 501 to the rest; fake-gcs-server's released builds
//!   refuse XML uploads), so these tests point `GOOGLE_BASE_URL` at moto's server, which
//!   does. They prove ferry's side (URLs, prefixes, credentials from `GOOGLE_*`, errors);
//!   what Google's own service accepts beyond that is object_store's.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Ferry, TestDir};
use crate::objectstore::{Moto, blobs_of, fails_saying, incompressible_blobs, sample};
use crate::pg_db::PgDb;
use crate::sqlite_db;

/// The emulator's well-known development account and key (published by Microsoft).
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// An Azurite blob server on a free port, killed when dropped.
struct Azurite {
    child: Child,
    port: u16,
}

impl Azurite {
    fn start() -> Azurite {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("azurite-blob")
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--loose",
                "--disableTelemetry",
                "--silent",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("azurite-blob (scripts/ensure-tools installs azurite from npm)");
        let azurite = Azurite { child, port };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "azurite did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        azurite
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a container. object_store cannot, so this signs the request itself (Shared
    /// Key, in Python's standard library).
    fn container(&self, name: &str) {
        let script = format!(
            r#"
import base64, email.utils, hashlib, hmac, urllib.request
account, name = "{ACCOUNT}", "{name}"
date = email.utils.formatdate(usegmt=True)
to_sign = "PUT\n" + "\n" * 11 + f"x-ms-date:{{date}}\nx-ms-version:2023-11-03\n/{{account}}/{{account}}/{{name}}\nrestype:container"
sig = base64.b64encode(hmac.new(base64.b64decode("{KEY}"), to_sign.encode(), hashlib.sha256).digest()).decode()
req = urllib.request.Request("{}/" + account + "/" + name + "?restype=container", method="PUT",
    headers={{"x-ms-date": date, "x-ms-version": "2023-11-03", "Content-Length": "0", "Authorization": f"SharedKey {{account}}:{{sig}}"}})
print(urllib.request.urlopen(req).status)
"#,
            self.endpoint()
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .output()
            .expect("python3");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "201",
            "creating container {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `ferry` signing with `key` for the emulator's account at this server.
    fn ferry_with_key(&self, dir: &TestDir, key: &str) -> Ferry {
        dir.ferry()
            .env("AZURE_STORAGE_USE_EMULATOR", "true")
            .env("AZURITE_BLOB_STORAGE_URL", &self.endpoint())
            .env("AZURE_STORAGE_ACCOUNT_NAME", ACCOUNT)
            .env("AZURE_STORAGE_ACCOUNT_KEY", key)
    }

    fn ferry(&self, dir: &TestDir) -> Ferry {
        self.ferry_with_key(dir, KEY)
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ferry` talking GCS's XML API to `moto` (see the module's note).
fn gcs_ferry(moto: &Moto, dir: &TestDir) -> Ferry {
    dir.ferry()
        .env("GOOGLE_BASE_URL", &moto.endpoint())
        .env("GOOGLE_BEARER_TOKEN", "test-token")
}

/// The URLs `inspect --json` gives for the parts of the archive at `url`.
fn part_urls(ferry: Ferry, url: &str) -> Vec<String> {
    let out = ferry
        .args(["inspect", "--json", url])
        .run()
        .success()
        .stdout();
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect --json");
    v["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .flat_map(|t| t["files"].as_array().expect("files"))
        .map(|f| f["url"].as_str().expect("url").to_owned())
        .collect()
}

/// A table whose part is over the single-upload size (and the ranged-read size), exported
/// to `url` and imported back byte for byte.
fn large_part_round_trips(dir: &TestDir, ferry: impl Fn() -> Ferry, url: &str) {
    let blobs = incompressible_blobs(&dir.path("blobs.db"));
    ferry()
        .args(["export"])
        .args([dir.path("blobs.db")])
        .args([url])
        .run()
        .success();
    ferry()
        .args(["import", url])
        .args([dir.path("blobs-back.db")])
        .run()
        .success();
    assert!(
        blobs_of(&dir.path("blobs-back.db")) == blobs,
        "the blobs came back byte for byte"
    );
}

/// The sample imported through a local directory archive: what every cloud must give back.
fn local_import(dir: &TestDir) -> String {
    dir.export_sample("local");
    dir.ferry()
        .args(["import", "local", "from-disk.db"])
        .run()
        .success();
    sqlite_db::dump(&dir.path("from-disk.db"))
}

#[test]
fn an_azure_archive_round_trips_into_both_engines_and_its_errors_are_one_line() {
    let az = Azurite::start();
    az.container("backups");
    let dir = TestDir::new();
    let url = "az://backups/nightly/app ü";
    az.ferry(&dir)
        .args(["export"])
        .args([sample()])
        .args([url])
        .run()
        .success();
    az.ferry(&dir)
        .args(["verify", url])
        .run()
        .success()
        .says("rows verified");
    let urls = part_urls(az.ferry(&dir), url);
    assert!(
        !urls.is_empty()
            && urls
                .iter()
                .all(|u| u.starts_with("az://backups/nightly/app ü/data/")),
        "{urls:?}"
    );

    // SQLite: the same as through a local archive.
    let expected = local_import(&dir);
    az.ferry(&dir)
        .args(["import", url, "from-azure.db"])
        .run()
        .success();
    similar_asserts::assert_eq!(expected, sqlite_db::dump(&dir.path("from-azure.db")));

    // PostgreSQL, both ways: a database exported to the container and restored from it.
    let source = PgDb::new("az_src");
    az.ferry(&dir)
        .args(["import", url, &source.url()])
        .run()
        .success();
    az.ferry(&dir)
        .args(["export", &source.url(), "az://backups/pg"])
        .run()
        .success();
    let target = PgDb::new("az_dst");
    az.ferry(&dir)
        .args(["import", "az://backups/pg", &target.url()])
        .run()
        .success();
    similar_asserts::assert_eq!(source.schema_dump(), target.schema_dump());
    similar_asserts::assert_eq!(source.data_dump(), target.data_dump());

    // A part over the single-upload size goes up as blocks and comes back exact.
    large_part_round_trips(&dir, || az.ferry(&dir), "az://backups/blobs");

    // A missing container and a refused key: one line each, naming the archive, never the key.
    let sample = sample();
    let sample = sample.to_str().expect("path");
    for args in [
        vec!["verify", "az://no-such-container/app"],
        vec!["export", sample, "az://no-such-container/app"],
    ] {
        let all = fails_saying(az.ferry(&dir), &args, "the container does not exist");
        assert!(all.contains("az://no-such-container/app"), "{all}");
    }
    let wrong = "bm90LXRoZS1rZXktYXQtYWxsLW5vdC10aGUta2V5LWF0LWFsbA==";
    for args in [
        vec!["verify", url],
        vec!["export", sample, "az://backups/again"],
    ] {
        let all = fails_saying(
            az.ferry_with_key(&dir, wrong),
            &args,
            "access denied: the credentials are refused",
        );
        assert!(all.contains("az://backups/"), "names the archive: {all}");
        assert!(!all.contains(wrong), "never echoes the key: {all}");
    }
}

#[test]
fn a_gcs_archive_round_trips_and_a_missing_bucket_is_one_line() {
    let moto = Moto::start();
    moto.bucket("lake");
    let dir = TestDir::new();
    let url = "gs://lake/nightly/app ü";
    gcs_ferry(&moto, &dir)
        .args(["export"])
        .args([sample()])
        .args([url])
        .run()
        .success();
    gcs_ferry(&moto, &dir)
        .args(["verify", url])
        .run()
        .success()
        .says("rows verified");
    let urls = part_urls(gcs_ferry(&moto, &dir), url);
    assert!(
        !urls.is_empty()
            && urls
                .iter()
                .all(|u| u.starts_with("gs://lake/nightly/app ü/data/")),
        "{urls:?}"
    );
    let expected = local_import(&dir);
    gcs_ferry(&moto, &dir)
        .args(["import", url, "from-gcs.db"])
        .run()
        .success();
    similar_asserts::assert_eq!(expected, sqlite_db::dump(&dir.path("from-gcs.db")));

    // Multipart (XML API uploads) for a part over 8 MiB.
    large_part_round_trips(&dir, || gcs_ferry(&moto, &dir), "gs://lake/blobs");

    let all = fails_saying(
        gcs_ferry(&moto, &dir),
        &["verify", "gs://no-such-bucket/app"],
        "the bucket does not exist",
    );
    assert!(all.contains("gs://no-such-bucket/app"), "{all}");
}

/// A cloud URL ferry does not take is refused before any request, in one line that says
/// which forms it does take.
#[test]
fn an_unsupported_cloud_url_is_refused_by_name() {
    let dir = TestDir::new();
    let all = fails_saying(
        dir.ferry(),
        &[
            "export",
            sample().to_str().expect("path"),
            "abfss://fs@acct.dfs.core.windows.net/x",
        ],
        "is not supported",
    );
    assert!(
        all.contains("az://container/prefix") && all.contains("gs://bucket/prefix"),
        "{all}"
    );
}
