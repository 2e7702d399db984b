//! Archives on object storage, against a real S3-compatible server: moto's server
//! (`python3 -m moto.server`, installed by scripts/ensure-tools), one per test on its own
//! port. Nothing here is mocked inside the process: ferry talks HTTP and SigV4 to it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Ferry, TestDir};
use crate::pg_db::PgDb;
use crate::sqlite_db;

/// A moto server on a free port, killed when dropped.
pub(crate) struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    pub(crate) fn start() -> Moto {
        Moto::start_with(&[])
    }

    fn start_with(env: &[(&str, &str)]) -> Moto {
        Moto::start_logging(env, None)
    }

    /// With `log`, the server's request log (one line per request, with its status) goes
    /// to that file.
    fn start_logging(env: &[(&str, &str)], log: Option<&Path>) -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut cmd = Command::new("python3");
        cmd.args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(match log {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("moto's log")),
            None => Stdio::null(),
        });
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .expect("python3 -m moto.server (scripts/ensure-tools installs moto[server])");
        let moto = Moto { child, port };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "moto did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket with a plain unsigned request (moto's default accepts it).
    pub(crate) fn bucket(&self, name: &str) {
        let status = self.http("PUT", &format!("/{name}"));
        assert_eq!(status, 200, "creating bucket {name}");
    }

    fn http(&self, method: &str, path: &str) -> u16 {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .expect("send");
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reply
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// `ferry` with this server's endpoint and the given credentials.
    fn ferry_as(&self, dir: &TestDir, key: &str, secret: &str) -> Ferry {
        dir.ferry()
            .env("AWS_ENDPOINT_URL", &self.endpoint())
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_REGION", "us-east-1")
    }

    fn ferry(&self, dir: &TestDir) -> Ferry {
        self.ferry_as(dir, "test-key", "test-secret")
    }

    /// Exports `samples/app.db` to `url` on this server.
    fn export_sample(&self, dir: &TestDir, url: &str) {
        self.ferry(dir)
            .args(["export"])
            .args([sample()])
            .args([url])
            .run()
            .success();
    }

    /// Runs a boto3 snippet against this server; `s3` is the client. Returns what it printed.
    fn boto(&self, script: &str) -> String {
        let prelude = format!(
            "import boto3, sys\ns3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='test-key', aws_secret_access_key='test-secret', region_name='us-east-1')\n",
            self.endpoint()
        );
        let out = Command::new("python3")
            .args(["-c", &format!("{prelude}{script}")])
            .output()
            .expect("python3 with boto3 (installed with moto)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    }

    /// The keys under `prefix`, sorted.
    fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let out = self.boto(&format!(
            "r = s3.list_objects_v2(Bucket='{bucket}', Prefix='{prefix}')\nfor o in r.get('Contents', []): print(o['Key'])"
        ));
        let mut keys: Vec<String> = out.lines().map(str::to_owned).collect();
        keys.sort();
        keys
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn sample() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/app.db")
}

#[test]
fn export_to_a_bucket_verify_and_import_into_both_engines_exactly() {
    let moto = Moto::start();
    moto.bucket("backups");
    let dir = TestDir::new();
    let url = "s3://backups/nightly/app ü";
    moto.ferry(&dir)
        .args(["export"])
        .args([sample()])
        .args([url])
        .run()
        .success();
    let keys = moto.keys("backups", "nightly/");
    assert!(
        keys.contains(&"nightly/app ü/manifest.json".to_owned())
            && keys.contains(&"nightly/app ü/prelude.json".to_owned())
            && keys
                .iter()
                .any(|k| k.starts_with("nightly/app ü/data/") && k.ends_with(".parquet")),
        "the directory layout, named as written: {keys:?}"
    );
    moto.ferry(&dir)
        .args(["verify", url])
        .run()
        .success()
        .says("rows verified");

    // SQLite: identical to an import of the same source through a local archive.
    dir.export_sample("local");
    dir.ferry()
        .args(["import", "local", "from-disk.db"])
        .run()
        .success();
    moto.ferry(&dir)
        .args(["import", url, "from-bucket.db"])
        .run()
        .success();
    similar_asserts::assert_eq!(
        sqlite_db::dump(&dir.path("from-disk.db")),
        sqlite_db::dump(&dir.path("from-bucket.db"))
    );

    // PostgreSQL: a database exported to the bucket and restored from it is the same.
    let source = PgDb::new("os_src");
    moto.ferry(&dir)
        .args(["import", url, &source.url()])
        .run()
        .success();
    moto.ferry(&dir)
        .args(["export", &source.url(), "s3://backups/pg"])
        .run()
        .success();
    let target = PgDb::new("os_dst");
    moto.ferry(&dir)
        .args(["import", "s3://backups/pg", &target.url()])
        .run()
        .success();
    similar_asserts::assert_eq!(source.schema_dump(), target.schema_dump());
    similar_asserts::assert_eq!(source.data_dump(), target.data_dump());
    moto.ferry(&dir)
        .args(["verify", "s3://backups/pg", "--against", &target.url()])
        .run()
        .success();

    // inspect --json gives each part's URL, for scripts.
    let out = moto
        .ferry(&dir)
        .args(["inspect", "--json", url])
        .run()
        .success()
        .stdout();
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect --json");
    let urls: Vec<&str> = v["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .flat_map(|t| t["files"].as_array().expect("files"))
        .map(|f| f["url"].as_str().expect("url"))
        .collect();
    assert!(!urls.is_empty());
    assert!(
        urls.iter()
            .all(|u| u.starts_with("s3://backups/nightly/app ü/data/")),
        "{urls:?}"
    );
}

#[test]
fn pyarrow_and_polars_read_a_table_straight_from_the_bucket_by_the_manifest() {
    let moto = Moto::start();
    moto.bucket("lake");
    let dir = TestDir::new();
    moto.export_sample(&dir, "s3://lake/app");
    // The documented recipe (README, "Archives on object storage"): the manifest names the
    // parts, pyarrow reads them where they lie.
    let script = format!(
        r#"
import json, sys
import pyarrow.fs as fs, pyarrow.parquet as pq, pyarrow as pa
s3 = fs.S3FileSystem(endpoint_override='{}', access_key='test-key', secret_key='test-secret', region='us-east-1')
with s3.open_input_stream('lake/app/manifest.json') as f:
    m = json.load(f)
t = next(t for t in m['tables'] if t['name'] == 'events')
parts = [pq.read_table('lake/app/' + p['path'], filesystem=s3) for p in t['files']]
table = pa.concat_tables(parts)
print(table.num_rows, t['rows'], sum(v for v in table.column('id').to_pylist() if v is not None))
"#,
        moto.endpoint()
    );
    let printed = python(&script);
    let nums: Vec<&str> = printed.split_whitespace().collect();
    assert_eq!(nums.len(), 3, "{printed}");
    assert_eq!(nums[0], nums[1], "rows read by pyarrow vs the manifest");
    assert_eq!(nums[0], "2000");

    // polars, as the README shows it: by the manifest's list, and by a glob on the table's
    // folder; the same rows and values as pyarrow read.
    let script = format!(
        r#"
import json, boto3, polars as pl
opts = {{'aws_endpoint_url': '{0}', 'aws_allow_http': 'true', 'aws_region': 'us-east-1',
        'aws_access_key_id': 'test-key', 'aws_secret_access_key': 'test-secret'}}
s3 = boto3.client('s3', endpoint_url='{0}', aws_access_key_id='test-key', aws_secret_access_key='test-secret', region_name='us-east-1')
m = json.loads(s3.get_object(Bucket='lake', Key='app/manifest.json')['Body'].read())
t = next(t for t in m['tables'] if t['name'] == 'events')
listed = pl.read_parquet(['s3://lake/app/' + p['path'] for p in t['files']], storage_options=opts)
globbed = pl.read_parquet('s3://lake/app/data/' + t['id'] + '/*.parquet', storage_options=opts)
print(listed.height, globbed.height, listed['id'].sum())
"#,
        moto.endpoint()
    );
    let printed = python(&script);
    let polars: Vec<&str> = printed.split_whitespace().collect();
    assert_eq!(
        polars,
        [nums[0], nums[0], nums[2]],
        "polars vs pyarrow: {printed}"
    );
}

/// Runs a Python script; returns what it printed.
fn python(script: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("python3 (scripts/ensure-tools installs pyarrow, polars and moto)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_killed_export_is_incomplete_to_readers_and_cleaned_by_the_next_export() {
    let moto = Moto::start();
    moto.bucket("arch");
    let dir = TestDir::new();
    // Killed just before the manifest would go up: the parts are there, the commit is not.
    moto.ferry(&dir)
        .args(["export"])
        .args([sample()])
        .args(["s3://arch/app"])
        .paused_at("export:commit")
        .signal("KILL");
    let left = moto.keys("arch", "app/");
    assert!(
        left.iter().any(|k| k.ends_with(".parquet"))
            && !left.iter().any(|k| k.ends_with("manifest.json")),
        "{left:?}"
    );
    // verify's exit code for a damaged archive is 3; other commands fail with 1.
    for (cmd, code) in [("verify", 3), ("inspect", 1)] {
        moto.ferry(&dir)
            .args([cmd, "s3://arch/app"])
            .run()
            .fails_with(code)
            .says("incomplete archive: it has no manifest.json");
    }
    let db = dir.path("never.db");
    moto.ferry(&dir)
        .args(["import", "s3://arch/app"])
        .args([&db])
        .run()
        .fails_with(1)
        .says("incomplete archive");
    assert!(!db.exists(), "a refused import writes nothing");

    // An interrupted export (Ctrl-C) removes what it uploaded itself.
    moto.ferry(&dir)
        .args(["export"])
        .args([sample()])
        .args(["s3://arch/other"])
        .paused_at("export:commit")
        .signal("INT");
    assert_eq!(moto.keys("arch", "other/"), Vec::<String>::new());

    // Exporting to the killed run's prefix again removes its leftovers and commits.
    moto.ferry(&dir)
        .args(["export"])
        .args([sample()])
        .args(["s3://arch/app"])
        .run()
        .success()
        .says("interrupted export left");
    moto.ferry(&dir)
        .args(["verify", "s3://arch/app"])
        .run()
        .success();
    // A complete archive is never overwritten, and a prefix holding other data is refused.
    moto.ferry(&dir)
        .args(["export"])
        .args([sample()])
        .args(["s3://arch/app"])
        .run()
        .fails_with(1)
        .says("already exists");
    moto.boto("s3.put_object(Bucket='arch', Key='mine/notes.txt', Body=b'hello')");
    moto.ferry(&dir)
        .args(["export"])
        .args([sample()])
        .args(["s3://arch/mine"])
        .run()
        .fails_with(1)
        .says("notes.txt, which is not part of an archive");
    assert_eq!(
        moto.keys("arch", "mine/"),
        vec!["mine/notes.txt".to_owned()]
    );
    // Parquet files named like an archive's, but no prelude: someone's data, never removed.
    moto.boto(
        "s3.put_object(Bucket='arch', Key='lake/data/t00001/part-000000.parquet', Body=b'x')",
    );
    moto.ferry(&dir)
        .args(["export"])
        .args([sample()])
        .args(["s3://arch/lake"])
        .run()
        .fails_with(1)
        .says("no prelude.json: not an interrupted export");
    assert_eq!(moto.keys("arch", "lake/").len(), 1, "nothing deleted");
    // Any other Parquet file there is refused by name.
    moto.boto("s3.put_object(Bucket='arch', Key='pond/data/2024/x.parquet', Body=b'y')");
    moto.ferry(&dir)
        .args(["export"])
        .args([sample()])
        .args(["s3://arch/pond"])
        .run()
        .fails_with(1)
        .says("data/2024/x.parquet, which is not part of an archive");
    assert_eq!(moto.keys("arch", "pond/").len(), 1, "nothing deleted");
}

#[test]
fn parts_over_the_multipart_size_upload_in_pieces_and_come_back_exact() {
    let dir = TestDir::new();
    let log = dir.path("moto.log");
    let moto = Moto::start_logging(&[], Some(&log));
    moto.bucket("big");
    let db = dir.path("blobs.db");
    let blobs = incompressible_blobs(&db);
    moto.ferry(&dir)
        .args(["export"])
        .args([&db])
        .args(["s3://big/blobs"])
        .run()
        .success();
    let sizes = moto.boto(
        "for o in s3.list_objects_v2(Bucket='big', Prefix='blobs/data/')['Contents']: print(o['Size'])",
    );
    assert!(
        sizes
            .lines()
            .any(|l| l.parse::<u64>().expect("size") > 16 << 20),
        "a part over two pieces: {sizes}"
    );
    let back = dir.path("back.db");
    moto.ferry(&dir)
        .args(["import", "s3://big/blobs"])
        .args([&back])
        .run()
        .success();
    assert!(
        blobs_of(&back) == blobs,
        "the blobs came back byte for byte"
    );
    // The part over 16 MiB came down in ranges after its first 8 MiB: partial-content
    // answers to GETs of the data part.
    let requests = std::fs::read_to_string(&log).expect("moto's log");
    let ranged = requests
        .lines()
        .filter(|l| l.contains("\"GET /big/blobs/data/") && l.contains("\" 206 "))
        .count();
    assert!(ranged >= 2, "ranged GETs of the large part:\n{requests}");
}

/// Writes a table of three 7 MiB incompressible blobs to `db`, so that its part is well
/// over the 8 MiB single-PUT limit (three multipart pieces). Returns the blobs.
pub(crate) fn incompressible_blobs(db: &Path) -> Vec<Vec<u8>> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    let blobs: Vec<Vec<u8>> = (0..3).map(|_| noise(7 << 20)).collect();
    let c = rusqlite::Connection::open(db).expect("open");
    c.execute("CREATE TABLE b (id INTEGER PRIMARY KEY, v BLOB)", [])
        .expect("create");
    for (i, v) in blobs.iter().enumerate() {
        c.execute(
            "INSERT INTO b VALUES (?1, ?2)",
            rusqlite::params![i as i64, v],
        )
        .expect("insert");
    }
    blobs
}

/// The blobs of [`incompressible_blobs`]'s table in `db`, in order.
pub(crate) fn blobs_of(db: &Path) -> Vec<Vec<u8>> {
    let c = rusqlite::Connection::open(db).expect("open");
    let mut stmt = c.prepare("SELECT v FROM b ORDER BY id").expect("select");
    stmt.query_map([], |r| r.get(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

#[test]
fn a_part_changed_in_the_bucket_is_refused_before_the_target_changes() {
    let moto = Moto::start();
    moto.bucket("arch");
    let dir = TestDir::new();
    moto.export_sample(&dir, "s3://arch/app");
    let part = moto
        .keys("arch", "app/data/")
        .into_iter()
        .last()
        .expect("a part");
    // Same size, one byte different, in the middle of the file.
    moto.boto(&format!(
        "b = bytearray(s3.get_object(Bucket='arch', Key='{part}')['Body'].read())\nb[len(b)//2] ^= 1\ns3.put_object(Bucket='arch', Key='{part}', Body=bytes(b))"
    ));
    let entry = part.strip_prefix("app/").expect("under the prefix");
    moto.ferry(&dir)
        .args(["verify", "s3://arch/app"])
        .run()
        .fails_with(3)
        .says(entry)
        .says("checksum mismatch");
    let pg = PgDb::new("os_changed");
    moto.ferry(&dir)
        .args(["import", "s3://arch/app", &pg.url()])
        .run()
        .fails_with(1)
        .says("checksum mismatch");
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'public'")
            .trim(),
        "0",
        "the target is as it was"
    );
}

/// A killed import from the bucket is resumed after one of the parts it had loaded was
/// replaced: the resume refuses to reuse that table, says which part, changes nothing in
/// the target, and keeps what was loaded until `ferry cleanup`.
#[test]
fn a_resume_refuses_a_part_that_changed_in_the_bucket_since_it_was_loaded() {
    use crate::resume::{kill_after_a_table_committed, real, staging_schemas};
    let moto = Moto::start();
    moto.bucket("arch");
    let dir = TestDir::new();
    moto.ferry(&dir)
        .args(["export"])
        .args([real("chinook.sqlite")])
        .args(["s3://arch/ch"])
        .run()
        .success();
    let pg = PgDb::new("os_resume");
    let kept = kill_after_a_table_committed(moto.ferry(&dir), "s3://arch/ch", &pg);

    // Resumed as it is, it would go on; first the kept table's part changes in the bucket.
    let table = kept[0].split(' ').next().expect("a table name").to_owned();
    let part = moto.boto(&format!(
        "import json\nm = json.loads(s3.get_object(Bucket='arch', Key='ch/manifest.json')['Body'].read())\nprint([t for t in m['tables'] if t['name'].lower() == '{table}'][0]['files'][0]['path'])"
    ));
    let part = part.trim();
    moto.boto(&format!(
        "b = bytearray(s3.get_object(Bucket='arch', Key='ch/{part}')['Body'].read())\nb[len(b)//2] ^= 1\ns3.put_object(Bucket='arch', Key='ch/{part}', Body=bytes(b))"
    ));
    let left = staging_schemas(&pg);
    moto.ferry(&dir)
        .args(["import", "--resume", "s3://arch/ch", &pg.url()])
        .run()
        .fails_with(1)
        .says(part)
        .says("changed since the interrupted import loaded it")
        .says("kept in");
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'public'")
            .trim(),
        "0",
        "the target's tables are as they were"
    );
    assert!(staging_schemas(&pg) > 0 && left > 0, "kept for another try");
    moto.ferry(&dir)
        .args(["cleanup", &pg.url()])
        .run()
        .success();
    assert_eq!(staging_schemas(&pg), 0, "ferry cleanup drops them");
}

#[test]
fn a_missing_bucket_and_wrong_credentials_each_get_one_clear_line() {
    let (moto, key, secret) = signing_moto();
    let (key, secret) = (key.as_str(), secret.as_str());
    let dir = TestDir::new();

    // The right key works. At the bucket's root: moto's signature check computes an encoded
    // `prefix=` query differently from SigV4 (and from AWS), so with checks on it refuses any
    // listing under a prefix, whoever signs it.
    moto.ferry_as(&dir, key, secret)
        .args(["export"])
        .args([sample()])
        .args(["s3://real"])
        .run()
        .success();
    moto.ferry_as(&dir, key, secret)
        .args(["verify", "s3://real"])
        .run()
        .success();

    let wrong_secret = "not-the-secret-at-all";
    for (k, s) in [(key, wrong_secret), ("AKIAUNKNOWNKEY000000", wrong_secret)] {
        for args in [
            vec!["verify", "s3://real"],
            vec![
                "export",
                sample().to_str().expect("path"),
                "s3://real/again",
            ],
        ] {
            let all = fails_saying(moto.ferry_as(&dir, k, s), &args, "access denied");
            assert!(all.contains("s3://real"), "names the archive: {all}");
            assert!(
                !all.contains(wrong_secret),
                "never echoes the secret: {all}"
            );
        }
    }

    // A missing bucket, on a server without signature checks (see above: with them, moto
    // refuses the prefixed listing before it looks for the bucket).
    let open = Moto::start();
    for args in [
        vec!["verify", "s3://no-such-bucket/app"],
        vec![
            "export",
            sample().to_str().expect("path"),
            "s3://no-such-bucket/app",
        ],
    ] {
        let all = fails_saying(
            open.ferry_as(&dir, key, secret),
            &args,
            "the bucket does not exist",
        );
        assert!(
            all.lines().any(|l| l.contains("the bucket does not exist")
                && l.contains("s3://no-such-bucket/app")),
            "names the archive: {all}"
        );
        assert!(!all.contains(secret), "never echoes the secret: {all}");
    }
}

/// A moto server that checks signatures, with a user allowed everything on S3 and a bucket
/// `real`: the first four calls (unsigned) set them up. Returns the user's key and secret.
fn signing_moto() -> (Moto, String, String) {
    let moto = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "4")]);
    let setup = format!(
        r#"
import boto3, json
kw = dict(endpoint_url='{}', region_name='us-east-1', aws_access_key_id='setup', aws_secret_access_key='setup')
iam = boto3.client('iam', **kw)
iam.create_user(UserName='ferry')
k = iam.create_access_key(UserName='ferry')['AccessKey']
iam.put_user_policy(UserName='ferry', PolicyName='all', PolicyDocument=json.dumps({{'Version': '2012-10-17', 'Statement': [{{'Effect': 'Allow', 'Action': 's3:*', 'Resource': '*'}}]}}))
boto3.client('s3', **kw).create_bucket(Bucket='real')
print(k['AccessKeyId'], k['SecretAccessKey'])
"#,
        moto.endpoint()
    );
    let out = Command::new("python3")
        .args(["-c", &setup])
        .output()
        .expect("python3 with boto3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let creds = String::from_utf8(out.stdout).expect("UTF-8");
    let (key, secret) = creds.trim().split_once(' ').expect("key and secret");
    (moto, key.to_owned(), secret.to_owned())
}

#[test]
fn credentials_region_and_endpoint_come_from_an_aws_profile() {
    let (moto, key, secret) = signing_moto();
    let dir = TestDir::new();
    std::fs::write(
        dir.path("config"),
        format!(
            "[profile ci]\nregion = us-east-1\nendpoint_url = {}\n\n[profile corp]\nsso_session = corp\nregion = us-east-1\n\n[profile win]\ncredential_process = C:\\xtools\\helper.exe\n",
            moto.endpoint()
        ),
    )
    .expect("config");
    std::fs::write(
        dir.path("credentials"),
        format!(
            "[ci]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n\n[stale]\naws_access_key_id = {key}\naws_secret_access_key = not-the-secret-at-all\n"
        ),
    )
    .expect("credentials");
    let profile = |name: &str| {
        dir.ferry()
            .env(
                "AWS_CONFIG_FILE",
                dir.path("config").to_str().expect("path"),
            )
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.path("credentials").to_str().expect("path"),
            )
            .env("AWS_PROFILE", name)
    };
    // Keys from the credentials file; region and endpoint from the config file.
    profile("ci")
        .args(["export"])
        .args([sample()])
        .args(["s3://real"])
        .run()
        .success();
    profile("ci")
        .args(["verify", "s3://real"])
        .run()
        .success()
        .says("rows verified");
    // A profile's refused secret is refused like a variable's, and never printed.
    let endpoint = moto.endpoint();
    let stale = || {
        profile("stale")
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_REGION", "us-east-1")
    };
    let all = fails_saying(stale(), &["verify", "s3://real"], "access denied");
    assert!(!all.contains("not-the-secret-at-all"), "{all}");
    // The variables win over the profile, as with the AWS CLI; with everything in the
    // variables, a profile name left in the shell that the files lack is not an error.
    for name in ["stale", "nope"] {
        profile(name)
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", &key)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .args(["verify", "s3://real"])
            .run()
            .success();
    }
    // An SSO profile and a missing one: one line each, before any request.
    let sample = sample();
    let export = ["export", sample.to_str().expect("path"), "s3://real/x"];
    fails_saying(
        profile("corp").env("AWS_ENDPOINT_URL", &endpoint),
        &export,
        "aws configure export-credentials --profile corp",
    );
    fails_saying(
        profile("nope"),
        &export,
        "AWS_PROFILE=nope: no such profile",
    );
}

/// Runs `args`, which must fail (verify's code for a problem is 3, other commands' 1) with
/// `diagnosis` on exactly one line. Returns all it printed.
pub(crate) fn fails_saying(ferry: Ferry, args: &[&str], diagnosis: &str) -> String {
    let code = if args[0] == "verify" { 3 } else { 1 };
    let run = ferry.args(args).run().fails_with(code);
    let all = format!("{}{}", run.stdout(), run.stderr());
    let lines = all.lines().filter(|l| l.contains(diagnosis)).count();
    assert_eq!(lines, 1, "{args:?}: {diagnosis:?} on one line:\n{all}");
    assert!(
        !all.contains("<?xml") && !all.contains("<Error>"),
        "no raw server response: {all}"
    );
    all
}

#[test]
fn signed_and_encrypted_archives_live_in_a_bucket_too() {
    let moto = Moto::start();
    moto.bucket("vault");
    let dir = TestDir::new();
    let (identity, recipient) = crate::encryption::age_key(&dir, "ops");
    let (sk, pk) = crate::signing::keypair(&dir, "release");
    moto.ferry(&dir)
        .args(["export"])
        .args([sample()])
        .args(["s3://vault/app", "--sign", &sk, "--encrypt-to", &recipient])
        .run()
        .success();
    let keys = moto.keys("vault", "app/");
    assert!(
        keys.contains(&"app/encryption.json".to_owned())
            && keys.contains(&"app/manifest.json.age".to_owned())
            && keys.contains(&"app/manifest.json.minisig.age".to_owned()),
        "{keys:?}"
    );
    moto.ferry(&dir)
        .args(["import", "s3://vault/app", "back.db"])
        .args(["--identity", &identity, "--require-signature", &pk])
        .run()
        .success();
    dir.export_sample("local");
    dir.ferry()
        .args(["import", "local", "direct.db"])
        .run()
        .success();
    similar_asserts::assert_eq!(
        sqlite_db::dump(&dir.path("direct.db")),
        sqlite_db::dump(&dir.path("back.db"))
    );
    moto.ferry(&dir)
        .args(["verify", "s3://vault/app"])
        .run()
        .fails_with(3)
        .says("give --identity FILE");
}
