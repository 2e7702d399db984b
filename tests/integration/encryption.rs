//! Encrypted archives: every entry an age file. Each recipient's identity opens it into
//! both engines, exactly; a stranger's does not; no known value is left in the clear; and
//! the standard `age`, `minisign` and pyarrow read what ferry wrote, without ferry.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{TestDir, assert_same};
use crate::pg_db::PgDb;
use crate::sqlite_db::{build_torture, dump};

/// An age identity made by the real `age-keygen`: (identity file, its recipient).
pub(crate) fn age_key(dir: &TestDir, name: &str) -> (String, String) {
    let file = format!("{name}.txt");
    let out = Command::new("age-keygen")
        .args(["-o", &file])
        .current_dir(dir.root())
        .output()
        .expect("the age tool (scripts/ensure-tools installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("age-keygen")
        .args(["-y", &file])
        .current_dir(dir.root())
        .output()
        .unwrap();
    assert!(out.status.success());
    (
        file,
        String::from_utf8(out.stdout).unwrap().trim().to_owned(),
    )
}

/// Every file below `root`, relative, sorted.
fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn each_of_two_recipients_opens_an_encrypted_archive_into_both_engines_and_a_third_cannot() {
    let dir = TestDir::new();
    build_torture(&dir.path("src.db"));
    let (a_id, a) = age_key(&dir, "alice");
    let (b_id, b) = age_key(&dir, "bob");
    let (c_id, _) = age_key(&dir, "carol");
    for archive in ["enc", "enc.tar"] {
        dir.ferry()
            .args([
                "export",
                "src.db",
                archive,
                "--encrypt-to",
                &a,
                "--encrypt-to",
                &b,
            ])
            .run()
            .success()
            .says("encrypting to x25519 age1");
    }
    dir.ferry()
        .args(["export", "src.db", "clear", "-q"])
        .run()
        .success();
    let expected = dump(&dir.path("src.db"));
    let reference = PgDb::new("enc_ref");
    dir.ferry()
        .args(["import", "clear", &reference.url(), "-q"])
        .run()
        .success();

    for (archive, id) in [("enc", &a_id), ("enc.tar", &b_id)] {
        let db = format!("{archive}-{id}.db");
        dir.ferry()
            .args(["import", archive, &db, "--identity", id, "-q"])
            .run()
            .success();
        assert_same!(dump(&dir.path(&db)), expected, "{archive} opened by {id}");
        let pg = PgDb::new("enc");
        dir.ferry()
            .args(["import", archive, &pg.url(), "--identity", id, "-q"])
            .run()
            .success();
        assert_same!(pg.schema_dump(), reference.schema_dump(), "{archive}");
        assert_same!(pg.data_dump(), reference.data_dump(), "{archive}");
        dir.ferry()
            .args(["verify", archive, "--identity", id, "--against", &pg.url()])
            .run()
            .success();
    }
    // A pipe: encrypted on the way out, opened on the way in.
    let (_, import) = dir
        .ferry()
        .args(["export", "src.db", "-", "--encrypt-to", &a, "-q"])
        .pipe(
            dir.ferry()
                .args(["import", "-", "piped.db", "--identity", &a_id, "-q"]),
        );
    import.success();
    assert_same!(dump(&dir.path("piped.db")), expected, "piped");

    // A third identity: one line naming the recipients, and nothing written.
    let pg = PgDb::new("enc_no");
    for archive in ["enc", "enc.tar"] {
        let run = dir
            .ferry()
            .args(["import", archive, "carol.db", "--identity", &c_id])
            .run()
            .fails_with(1)
            .says("none of the keys given")
            .says(&a);
        assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
        assert!(!dir.path("carol.db").exists());
        dir.ferry()
            .args(["import", archive, &pg.url(), "--identity", &c_id])
            .run()
            .fails_with(1)
            .says("none of the keys given");
        assert_eq!(
            pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
                .trim(),
            "0"
        );
        // No key at all: it says who can read it, and how to give a key.
        dir.ferry()
            .args(["import", archive, "nokey.db"])
            .run()
            .fails_with(1)
            .says("give --identity FILE");
        assert!(!dir.path("nokey.db").exists());
    }
    // inspect without a key shows only what is in the clear; with one, everything.
    dir.ferry()
        .args(["inspect", "enc.tar"])
        .run()
        .success()
        .says("(encrypted)")
        .says(&b)
        .says("contents  not shown");
    dir.ferry()
        .args(["inspect", "enc.tar", "--identity", &b_id])
        .run()
        .success()
        .says("encrypted age (format 3.0.0)")
        .says("tables");
}

#[test]
fn no_known_value_is_in_the_clear_in_an_encrypted_archive() {
    let dir = TestDir::new();
    let (_, a) = age_key(&dir, "alice");
    std::fs::write(dir.path("pass"), "correct horse battery staple\n").unwrap();
    let number: i64 = 7_304_918_265_113;
    rusqlite::Connection::open(dir.path("app.db"))
        .unwrap()
        .execute_batch(&format!(
            "CREATE TABLE zebra_accounts (id INTEGER PRIMARY KEY, motto TEXT, balance INTEGER);
             INSERT INTO zebra_accounts VALUES (1, 'Xylophone-Quartz-Nebula', {number});"
        ))
        .unwrap();
    let secrets: [(&str, Vec<u8>); 4] = [
        ("table name", b"zebra_accounts".to_vec()),
        ("text value", b"Xylophone-Quartz-Nebula".to_vec()),
        ("number in decimal", number.to_string().into_bytes()),
        ("number as int64", number.to_le_bytes().to_vec()),
    ];
    // The control: in a clear archive each of them can be found, so the scan below can fail.
    dir.ferry()
        .args(["export", "app.db", "clear", "-q", "--zstd-level", "1"])
        .run()
        .success();
    let clear: Vec<u8> = files(&dir.path("clear"))
        .iter()
        .flat_map(|f| std::fs::read(dir.path("clear").join(f)).unwrap())
        .collect();
    for (what, bytes) in &secrets {
        assert!(contains(&clear, bytes), "the control lacks the {what}");
    }
    for (archive, how) in [
        ("to-key", vec!["--encrypt-to", &a]),
        ("to-key.tar", vec!["--encrypt-to", &a]),
        ("to-pass.tar", vec!["--passphrase-file", "pass"]),
    ] {
        dir.ferry()
            .args(["export", "app.db", archive, "-q", "--zstd-level", "1"])
            .args(&how)
            .run()
            .success();
        let path = dir.path(archive);
        let stored: Vec<(String, Vec<u8>)> = if path.is_dir() {
            files(&path)
                .iter()
                .map(|f| {
                    (
                        f.display().to_string(),
                        std::fs::read(path.join(f)).unwrap(),
                    )
                })
                .collect()
        } else {
            vec![(archive.to_owned(), std::fs::read(&path).unwrap())]
        };
        for (name, bytes) in &stored {
            for (what, secret) in &secrets {
                assert!(
                    !contains(bytes, secret),
                    "{archive}: {name} holds the {what}"
                );
            }
        }
        // And each entry but the envelope is an age file.
        if path.is_dir() {
            for (name, bytes) in &stored {
                if name != "encryption.json" {
                    assert!(name.ends_with(".age"), "{name}");
                    assert!(bytes.starts_with(b"age-encryption.org/v1\n"), "{name}");
                }
            }
        }
    }
    dir.ferry()
        .args(["verify", "to-pass.tar", "--passphrase-file", "pass"])
        .run()
        .success();
    std::fs::write(dir.path("wrong"), "correct horse battery stapler\n").unwrap();
    let run = dir
        .ferry()
        .args([
            "import",
            "to-pass.tar",
            "x.db",
            "--passphrase-file",
            "wrong",
        ])
        .run()
        .fails_with(1)
        .says("the passphrase does not open key.age");
    assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
    assert!(!dir.path("x.db").exists());
}

/// Runs the `age` tool; with `passphrase`, under a pseudo-terminal (script(1)), since age
/// reads a passphrase only from a terminal.
fn age_decrypt(
    dir: &Path,
    input: &Path,
    output: &Path,
    identity: Option<&str>,
    passphrase: Option<&str>,
) {
    let status = match passphrase {
        None => Command::new("age")
            .args(["-d", "-i", identity.unwrap(), "-o"])
            .arg(output)
            .arg(input)
            .current_dir(dir)
            .status()
            .unwrap(),
        Some(p) => {
            use std::io::Write;
            let cmd = format!("age -d -o '{}' '{}'", output.display(), input.display());
            let mut child = Command::new("script")
                .args(["-qec", &cmd, "/dev/null"])
                .current_dir(dir)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{p}\n").as_bytes())
                .unwrap();
            child.wait().unwrap()
        }
    };
    assert!(status.success(), "age -d {}", input.display());
}

#[test]
fn the_age_minisign_and_pyarrow_tools_read_what_ferry_wrote_without_ferry() {
    let dir = TestDir::new();
    let (a_id, a) = age_key(&dir, "alice");
    let (sk, pk) = crate::signing::keypair(&dir, "sign");
    std::fs::write(dir.path("pass"), "open sesame\n").unwrap();
    build_torture(&dir.path("src.db"));
    dir.ferry()
        .args([
            "export",
            "src.db",
            "enc",
            "-q",
            "--sign",
            &sk,
            "--encrypt-to",
            &a,
            "--passphrase-file",
            "pass",
        ])
        .run()
        .success();
    // Signed and encrypted: ferry checks both.
    dir.ferry()
        .args(["verify", "enc", "--identity", &a_id, "--key", &pk])
        .run()
        .success();

    // Entry by entry with the age tool, once with the identity and once through the
    // passphrase's key.age: an ordinary archive comes out.
    let key_txt = dir.path("archive-key.txt");
    age_decrypt(
        dir.root(),
        Path::new("enc/key.age"),
        &key_txt,
        None,
        Some("open sesame"),
    );
    for (out, identity) in [("clear-a", a_id.as_str()), ("clear-p", "archive-key.txt")] {
        for f in files(&dir.path("enc")) {
            let name = f.display().to_string();
            let Some(clear) = name.strip_suffix(".age") else {
                assert_eq!(name, "encryption.json");
                continue;
            };
            if name == "key.age" {
                continue;
            }
            let target = dir.path(out).join(clear);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            age_decrypt(
                dir.root(),
                &Path::new("enc").join(&f),
                &target,
                Some(identity),
                None,
            );
        }
        dir.ferry()
            .args(["verify", out, "--key", &pk])
            .run()
            .success()
            .says("verified");
    }
    let clear = dir.path("clear-a");
    for doc in ["prelude.json", "manifest.json"] {
        let ok = Command::new("minisign")
            .args(["-V", "-q", "-m", doc, "-p"])
            .arg(dir.path(&pk))
            .current_dir(&clear)
            .status()
            .unwrap()
            .success();
        assert!(ok, "minisign -V {doc}");
    }
    // pyarrow reads every part and finds the manifest's row counts.
    let script = r#"
import json, sys, pyarrow.parquet as pq
root = sys.argv[1]
m = json.load(open(root + "/manifest.json"))
for t in m["tables"]:
    n = sum(pq.read_table(root + "/" + f["path"]).num_rows for f in t["files"])
    print(t["name"], n, t["rows"], sep="\t")
"#;
    let text = crate::harness::python(script, &clear);
    assert!(text.lines().count() > 3, "{text}");
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f[1], f[2], "pyarrow's row count of {}", f[0]);
    }
}

#[test]
fn encryption_fails_closed_before_the_source_is_read() {
    let dir = TestDir::new();
    let (_, a) = age_key(&dir, "alice");
    std::fs::write(dir.path("empty-recipients"), "# nobody\n").unwrap();
    std::fs::write(dir.path("empty-pass"), "\n").unwrap();
    // The source is a database that does not exist: any error about it would mean the
    // source was read before encryption was set up.
    let missing = format!(
        "{}/ferry_no_such_db_{}",
        crate::pg_db::server_url(),
        std::process::id()
    );
    for (flags, said) in [
        (
            vec!["--encrypt-to", "age1notakey"],
            "not a valid age public key",
        ),
        (
            vec!["--encrypt-to", "ssh-ed25519 AAAAbroken"],
            "not an SSH public key",
        ),
        (
            vec!["--encrypt-to", "empty-recipients"],
            "no recipient in the file",
        ),
        (
            vec!["--encrypt-to", "no-such-file"],
            "neither an age or SSH public key nor a file",
        ),
        (vec!["--passphrase-file", "empty-pass"], "empty"),
        (
            vec!["--encrypt-to", &a, "--passphrase-file", "no-such-file"],
            "no-such-file",
        ),
    ] {
        let run = dir
            .ferry()
            .args(["export", &missing, "out.tar"])
            .args(&flags)
            .run()
            .fails_with(1)
            .says(said);
        assert_eq!(
            run.stderr().lines().count(),
            1,
            "{flags:?}: {}",
            run.stderr()
        );
        assert!(!dir.path("out.tar").exists());
    }
}

#[test]
fn a_changed_or_rearranged_encrypted_archive_is_refused_before_anything_is_written() {
    let dir = TestDir::new();
    let (a_id, a) = age_key(&dir, "alice");
    build_torture(&dir.path("src.db"));
    let fresh = |name: &str| {
        dir.ferry()
            .args(["export", "src.db", name, "--encrypt-to", &a, "-q"])
            .run()
            .success();
        dir.path(name)
    };
    // One byte of a sealed part flipped.
    let flipped = fresh("flipped");
    let part = flipped.join("data/t00001/part-000000.parquet.age");
    let mut bytes = std::fs::read(&part).unwrap();
    let at = bytes.len() - 40;
    bytes[at] ^= 1;
    std::fs::write(&part, bytes).unwrap();
    // A clear part beside the sealed ones.
    let clear = fresh("clear-entry");
    std::fs::write(clear.join("data/t00001/part-000001.parquet"), b"PAR1").unwrap();
    // The envelope removed: the sealed entries are then foreign.
    let bare = fresh("no-envelope");
    std::fs::remove_file(bare.join("encryption.json")).unwrap();
    // A part cut short.
    let cut = fresh("cut");
    let part = cut.join("data/t00002/part-000000.parquet.age");
    let bytes = std::fs::read(&part).unwrap();
    std::fs::write(&part, &bytes[..bytes.len() - 20]).unwrap();
    for (archive, said) in [
        ("flipped", "data/t00001/part-000000.parquet"),
        ("clear-entry", "not listed in the manifest"),
        ("no-envelope", "missing"),
        ("cut", "data/t00002/part-000000.parquet"),
    ] {
        refused(&dir, archive, &a_id, said);
        assert_ne!(
            dir.ferry()
                .args(["verify", archive, "--identity", &a_id])
                .run()
                .code(),
            Some(0),
            "{archive}"
        );
    }
}

/// Rewrites tar `from` into `to` with its entries as `arrange` orders (and may drop or
/// change) them: (name, bytes) in, (name, bytes) out.
fn retar(
    from: &Path,
    to: &Path,
    arrange: impl FnOnce(Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)>,
) {
    use std::io::Read;
    let mut entries = Vec::new();
    let mut archive = tar::Archive::new(std::fs::File::open(from).unwrap());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        entries.push((name, bytes));
    }
    let mut out = tar::Builder::new(std::fs::File::create(to).unwrap());
    for (name, bytes) in arrange(entries) {
        let mut h = tar::Header::new_ustar();
        h.set_path(&name).unwrap();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        out.append(&h, bytes.as_slice()).unwrap();
    }
    out.finish().unwrap();
}

#[test]
fn a_rearranged_or_cut_encrypted_stream_is_refused_in_one_line() {
    let dir = TestDir::new();
    let (a_id, a) = age_key(&dir, "alice");
    build_torture(&dir.path("src.db"));
    std::fs::write(dir.path("pass"), "open sesame\n").unwrap();
    dir.ferry()
        .args([
            "export",
            "src.db",
            "enc.tar",
            "-q",
            "--encrypt-to",
            &a,
            "--passphrase-file",
            "pass",
        ])
        .run()
        .success();
    let src = dir.path("enc.tar");
    retar(&src, &dir.path("late-envelope.tar"), |mut e| {
        e.swap(0, 2);
        e
    });
    retar(&src, &dir.path("late-key.tar"), |mut e| {
        e.swap(1, 2);
        e
    });
    retar(&src, &dir.path("clear-entry.tar"), |mut e| {
        e.insert(
            3,
            ("data/t00001/part-000009.parquet".into(), b"PAR1".to_vec()),
        );
        e
    });
    retar(&src, &dir.path("dotdot.tar"), |mut e| {
        e.insert(3, ("data/t00001/...age".into(), b"x".to_vec()));
        e
    });
    let bytes = std::fs::read(&src).unwrap();
    std::fs::write(dir.path("cut.tar"), &bytes[..bytes.len() / 2]).unwrap();
    for (archive, said) in [
        (
            "late-envelope.tar",
            "an encrypted entry, but the archive does not start with encryption.json",
        ),
        ("late-key.tar", "key.age: not right after encryption.json"),
        ("clear-entry.tar", "a clear entry in an encrypted archive"),
        ("dotdot.tar", "data/t00001/..."),
        ("cut.tar", "enc"),
    ] {
        let target = refused(&dir, archive, &a_id, said);
        // From stdin too.
        let run = dir
            .ferry()
            .args(["import", "-", &target, "--identity", &a_id])
            .stdin_file(&dir.path(archive))
            .run()
            .fails_with(1);
        assert_eq!(
            run.stderr().lines().count(),
            1,
            "{archive}: {}",
            run.stderr()
        );
        assert!(!dir.path(&target).exists(), "{archive} from stdin");
    }
    // The intact stream opens from stdin with the passphrase, and verifies after loading.
    dir.ferry()
        .args(["import", "-", "ok.db", "-q", "--passphrase-file", "pass"])
        .stdin_file(&src)
        .run()
        .success();
    assert_eq!(dump(&dir.path("ok.db")), dump(&dir.path("src.db")));
    dir.ferry()
        .args([
            "import",
            "enc.tar",
            "ok2.db",
            "-q",
            "--passphrase-file",
            "pass",
            "--verify",
        ])
        .run()
        .success();
    dir.ferry()
        .args([
            "import",
            "enc.tar",
            "ok3.db",
            "--passphrase-file",
            "pass",
            "--dry-run",
        ])
        .run()
        .success();
    assert!(!dir.path("ok3.db").exists());
}

#[test]
fn ssh_keys_encrypt_and_decrypt_and_no_secret_is_ever_echoed() {
    let dir = TestDir::new();
    build_torture(&dir.path("src.db"));
    for (kind, bits) in [("ed25519", None), ("rsa", Some("2048"))] {
        let key = format!("id_{kind}");
        let mut cmd = Command::new("ssh-keygen");
        cmd.args(["-q", "-t", kind, "-N", "", "-C", "ops@example", "-f", &key]);
        if let Some(b) = bits {
            cmd.args(["-b", b]);
        }
        assert!(cmd.current_dir(dir.root()).status().unwrap().success());
        let archive = format!("{kind}.tar");
        dir.ferry()
            .args([
                "export",
                "src.db",
                &archive,
                "-q",
                "--encrypt-to",
                &format!("{key}.pub"),
            ])
            .run()
            .success();
        // inspect shows the fingerprint ssh-keygen prints.
        let out = Command::new("ssh-keygen")
            .args(["-l", "-f", &format!("{key}.pub")])
            .current_dir(dir.root())
            .output()
            .unwrap();
        let fingerprint = String::from_utf8(out.stdout)
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .to_owned();
        dir.ferry()
            .args(["inspect", &archive])
            .run()
            .success()
            .says(&format!("ssh-{kind} {fingerprint}"));
        let db = format!("{kind}.db");
        dir.ferry()
            .args(["import", &archive, &db, "-q", "--identity", &key])
            .run()
            .success();
        assert_eq!(dump(&dir.path(&db)), dump(&dir.path("src.db")), "{kind}");
    }
    // A secret given where a public key belongs is named by file and line, never shown.
    let (secret, _) = age_key(&dir, "alice");
    let secret_text = std::fs::read_to_string(dir.path(&secret)).unwrap();
    let secret_line = secret_text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    for arg in [secret.as_str(), secret_line, "id_ed25519"] {
        let run = dir
            .ferry()
            .args([
                "export",
                "src.db",
                "x.tar",
                "--encrypt-to",
                arg,
                "--report",
                "r.json",
            ])
            .run()
            .fails_with(1)
            .says("secret key");
        for out in [
            run.stdout(),
            run.stderr(),
            std::fs::read_to_string(dir.path("r.json")).unwrap_or_default(),
        ] {
            assert!(!out.contains("AGE-SECRET-KEY-1"), "{out}");
            assert!(!out.contains("PRIVATE KEY"), "{out}");
            assert!(!out.contains(&secret_line[20..40]), "{out}");
        }
        assert!(!dir.path("x.tar").exists());
    }
}

#[test]
fn a_required_signature_is_still_required_of_an_encrypted_archive() {
    let dir = TestDir::new();
    let (a_id, a) = age_key(&dir, "alice");
    let (_, pk) = crate::signing::keypair(&dir, "sign");
    build_torture(&dir.path("src.db"));
    for archive in ["u", "u.tar"] {
        dir.ferry()
            .args(["export", "src.db", archive, "-q", "--encrypt-to", &a])
            .run()
            .success();
        let run = dir
            .ferry()
            .args([
                "import",
                archive,
                "x.db",
                "--identity",
                &a_id,
                "--require-signature",
                &pk,
            ])
            .run()
            .fails_with(1)
            .says("is not signed");
        assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
        assert!(!dir.path("x.db").exists());
    }
    // Without a key, a directory archive still says what it is; --json says what is needed.
    dir.ferry()
        .args(["inspect", "u"])
        .run()
        .success()
        .says("contents  not shown: give --identity FILE");
    dir.ferry()
        .args(["inspect", "u", "--json"])
        .run()
        .fails_with(1)
        .says("give --identity FILE");
}

/// Imports `archive` with identity `id` into `<archive>.db` and checks it is refused in one
/// line that says `said`, with nothing written; returns the target's name.
fn refused(dir: &TestDir, archive: &str, id: &str, said: &str) -> String {
    let target = format!("{archive}.db");
    let run = dir
        .ferry()
        .args(["import", archive, &target, "--identity", id])
        .run()
        .fails_with(1)
        .says(said);
    assert_eq!(
        run.stderr().lines().count(),
        1,
        "{archive}: {}",
        run.stderr()
    );
    assert!(!dir.path(&target).exists(), "{archive}");
    target
}
