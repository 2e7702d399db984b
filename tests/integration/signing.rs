//! Signed archives: ferry signs with a minisign key, the standard `minisign` tool verifies
//! what it wrote, and `--require-signature` refuses every forgery before anything is written.

use std::path::Path;
use std::process::Command;

use crate::harness::{TestDir, edit_manifests};
use crate::pg_db::PgDb;

/// A key pair made by the real minisign tool: (secret key, public key) paths.
pub(crate) fn keypair(dir: &TestDir, name: &str) -> (String, String) {
    let (sk, pk) = (format!("{name}.key"), format!("{name}.pub"));
    let out = Command::new("minisign")
        .args(["-G", "-W", "-s", &sk, "-p", &pk])
        .current_dir(dir.root())
        .output()
        .expect("the minisign tool (scripts/ensure-tools installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (sk, pk)
}

fn minisign_verifies(dir: &Path, document: &str, pk: &Path) -> bool {
    Command::new("minisign")
        .args(["-V", "-q", "-m", document, "-p"])
        .arg(pk)
        .current_dir(dir)
        .status()
        .unwrap()
        .success()
}

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

fn sample(dir: &TestDir, sql: &str) {
    rusqlite::Connection::open(dir.path("app.db"))
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

const APP: &str = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, n REAL);
    INSERT INTO notes VALUES (1, 'first', 1.5), (2, 'second', NULL), (3, 'third', -2.25);";

#[test]
fn a_signed_archive_verifies_with_ferry_and_the_minisign_tool_in_every_container() {
    let dir = TestDir::new();
    sample(&dir, APP);
    let (sk, pk) = keypair(&dir, "alice");
    dir.ferry()
        .args(["export", "app.db", "a", "--sign", &sk])
        .run()
        .success()
        .says("signing with minisign key");
    dir.ferry()
        .args(["export", "app.db", "a.tar", "--sign", &sk])
        .run()
        .success();
    for doc in ["prelude.json", "manifest.json"] {
        assert!(
            minisign_verifies(&dir.path("a"), doc, &dir.path(&pk)),
            "{doc}"
        );
    }
    // The key id inspect shows is the one the tool wrote into the public key.
    let id = std::fs::read_to_string(dir.path(&pk))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    dir.ferry()
        .args(["inspect", "a.tar"])
        .run()
        .success()
        .says(&format!("signed    claims minisign key {id}"));
    for archive in ["a", "a.tar"] {
        dir.ferry()
            .args(["verify", archive, "--key", &pk])
            .run()
            .success();
    }
    // verify takes import's spelling too, so one script can pass the same flag to both.
    dir.ferry()
        .args(["verify", "a.tar", "--require-signature", &pk])
        .run()
        .success();
    dir.ferry()
        .args(["import", "a.tar", "b.db", "--require-signature", &pk])
        .run()
        .success();
    let piped = dir
        .ferry()
        .args(["export", "app.db", "-", "--sign", &sk, "-q"])
        .pipe(
            dir.ferry()
                .args(["import", "-", "c.db", "--require-signature", &pk]),
        );
    piped.1.success();
    let pg = PgDb::new("signed");
    dir.ferry()
        .args(["import", "a", &pg.url(), "--require-signature", &pk])
        .run()
        .success();
    assert_eq!(
        pg.psql("SELECT string_agg(body, ',' ORDER BY id) FROM notes")
            .trim(),
        "first,second,third"
    );
    // An unsigned archive says so.
    dir.ferry()
        .args(["export", "app.db", "u", "-q"])
        .run()
        .success();
    dir.ferry()
        .args(["inspect", "u"])
        .run()
        .success()
        .says("signed    no");
}

#[test]
fn forged_and_unsigned_archives_are_refused_before_anything_is_written() {
    let dir = TestDir::new();
    sample(&dir, APP);
    let (sk, pk) = keypair(&dir, "alice");
    let (other_sk, _) = keypair(&dir, "mallory");
    let fresh = |name: &str, key: &str| {
        let _ = std::fs::remove_dir_all(dir.path(name));
        dir.ferry()
            .args(["export", "app.db", name, "--sign", key, "-q"])
            .run()
            .success();
        dir.path(name)
    };

    // One byte of data changed, with its checksum and size recomputed in both documents.
    let a = fresh("changed", &sk);
    let part = a.join("data/t00001/part-000000.parquet");
    let mut bytes = std::fs::read(&part).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&part, &bytes).unwrap();
    let sum = sha256(&part);
    edit_manifests(&a, |v| {
        if let Some(f) = v["tables"][0]["files"].get_mut(0) {
            f["sha256"] = sum.clone().into();
        }
    });
    // The signature removed.
    let b = fresh("unsigned", &sk);
    std::fs::remove_file(b.join("manifest.json.minisig")).unwrap();
    std::fs::remove_file(b.join("prelude.json.minisig")).unwrap();
    // Another key.
    fresh("mallory", &other_sk);
    // A manifest signed by the right key, from another archive.
    let d = fresh("swapped", &sk);
    sample(&dir, "INSERT INTO notes VALUES (4, 'fourth', 0);");
    let other = fresh("other", &sk);
    for doc in ["manifest.json", "manifest.json.minisig"] {
        std::fs::copy(other.join(doc), d.join(doc)).unwrap();
    }

    for (archive, said) in [
        ("changed", "manifest.json does not match its signature"),
        ("unsigned", "is not signed"),
        ("mallory", "not by the required key"),
        (
            "swapped",
            "prelude.json and manifest.json describe different schemas",
        ),
    ] {
        let target = format!("{archive}.db");
        let run = dir
            .ferry()
            .args(["import", archive, &target, "--require-signature", &pk])
            .run()
            .fails_with(1)
            .says(said);
        assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
        assert!(
            !dir.path(&target).exists(),
            "{archive}: something was written"
        );
        // Verify with the key says the same.
        assert_ne!(
            dir.ferry()
                .args(["verify", archive, "--key", &pk])
                .run()
                .code(),
            Some(0),
            "{archive}"
        );
    }
    // Into PostgreSQL, the forged archive changes nothing either.
    let pg = PgDb::new("forged");
    dir.ferry()
        .args(["import", "changed", &pg.url(), "--require-signature", &pk])
        .run()
        .fails_with(1);
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'public'")
            .trim(),
        "0"
    );
}

#[test]
fn an_encrypted_signing_key_needs_its_password_and_ferry_never_prompts() {
    let dir = TestDir::new();
    sample(&dir, APP);
    // minisign -G reads the password twice from its input when it is not a terminal.
    let mut child = Command::new("minisign")
        .args(["-G", "-s", "enc.key", "-p", "enc.pub"])
        .current_dir(dir.root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"hunter22\nhunter22\n")
            .unwrap();
    }
    assert!(child.wait().unwrap().success());
    dir.ferry()
        .args(["export", "app.db", "x", "--sign", "enc.key"])
        .run()
        .fails_with(1)
        .says("needs its password");
    assert!(!dir.path("x").exists());
    std::fs::write(dir.path("pw"), "hunter22\n").unwrap();
    dir.ferry()
        .args([
            "export",
            "app.db",
            "x",
            "--sign",
            "enc.key",
            "--sign-password-file",
            "pw",
        ])
        .run()
        .success();
    assert!(minisign_verifies(
        &dir.path("x"),
        "manifest.json",
        &dir.path("enc.pub")
    ));
}
