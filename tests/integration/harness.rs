//! The small harness every integration test uses: a private temp dir, a builder for `ferry`
//! commands, manifest validation against the published schema, and readable diffs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub use similar_asserts::assert_eq as assert_same;

/// A temporary directory, removed when the test ends.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> Self {
        TestDir {
            dir: tempfile::Builder::new()
                .prefix("ferry-test-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Names of the entries directly in the test directory, sorted.
    pub fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.root())
            .expect("read test dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Exports `samples/app.db` to `archive` in this directory.
    pub fn export_sample(&self, archive: &str) {
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/app.db");
        self.ferry()
            .args(["export"])
            .args([sample])
            .args([archive])
            .run()
            .success();
    }

    /// A `ferry` command running in this directory.
    pub fn ferry(&self) -> Ferry {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.current_dir(self.root());
        cmd.env_remove("FERRY_LOG");
        for var in [
            "PGHOST",
            "PGPORT",
            "PGUSER",
            "PGPASSWORD",
            "PGDATABASE",
            "PGSSLMODE",
            "DATABASE_URL",
        ] {
            cmd.env_remove(var);
        }
        Ferry { cmd }
    }
}

pub struct Ferry {
    cmd: Command,
}

impl Ferry {
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.cmd.env(key, value);
        self
    }

    pub fn stdin_file(mut self, path: &Path) -> Self {
        self.cmd
            .stdin(Stdio::from(std::fs::File::open(path).expect("stdin file")));
        self
    }

    pub fn run(mut self) -> Run {
        let out = self.cmd.output().expect("run ferry");
        Run {
            what: format!("{:?}", self.cmd),
            out,
        }
    }

    /// Runs `self | next`, like a shell pipe, and returns both results.
    pub fn pipe(mut self, mut next: Ferry) -> (Run, Run) {
        self.cmd.stdout(Stdio::piped());
        let mut first = self.cmd.spawn().expect("spawn first");
        next.cmd
            .stdin(Stdio::from(first.stdout.take().expect("piped stdout")));
        let second = next.cmd.output().expect("run second");
        let second_what = format!("{:?}", next.cmd);
        // The command still holds the pipe's read end; drop it so that the first process
        // sees a closed pipe instead of blocking forever when the second one failed early.
        drop(next);
        let first = first.wait_with_output().expect("wait first");
        (
            Run {
                what: format!("{:?}", self.cmd),
                out: first,
            },
            Run {
                what: second_what,
                out: second,
            },
        )
    }
}

/// A `ferry` run stopped at a named point (the `FERRY_PAUSE_AT` test hook), waiting for a
/// signal.
pub struct Paused {
    child: std::process::Child,
    what: String,
    stdout: std::thread::JoinHandle<Vec<u8>>,
    stderr: std::thread::JoinHandle<String>,
    /// Created by [`Paused::resume`]; the run goes on once it exists.
    resume_file: PathBuf,
}

impl Ferry {
    /// Starts the command and returns once it has reached `point`. Panics, with what it
    /// printed, if it ends first.
    pub fn paused_at(mut self, point: &str) -> Paused {
        use std::io::{BufRead, Read};
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let resume_file = std::env::temp_dir().join(format!(
            "ferry-test-resume-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&resume_file);
        self.cmd
            .env("FERRY_PAUSE_AT", point)
            .env("FERRY_RESUME_FILE", &resume_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = format!("{:?}", self.cmd);
        let mut child = self.cmd.spawn().expect("spawn ferry");
        let mut out = child.stdout.take().expect("stdout");
        let stdout = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out.read_to_end(&mut v);
            v
        });
        let err = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let wanted = format!("ferry: paused at {point}");
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                if line == wanted {
                    let _ = tx.send(());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        match rx.recv_timeout(std::time::Duration::from_secs(120)) {
            Ok(()) => Paused {
                child,
                what,
                stdout,
                stderr,
                resume_file,
            },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{what} never reached {point}:\n{}",
                    stderr.join().unwrap_or_default()
                );
            }
        }
    }
}

impl Paused {
    /// The paused process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (a `kill` name: INT, TERM, KILL) and waits for the run to end.
    pub fn signal(self, signal: &str) -> Run {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} {pid}");
        self.finish()
    }

    /// Lets the run go on from its pause point, and waits for it to end.
    pub fn resume(self) -> Run {
        std::fs::write(&self.resume_file, b"").expect("resume file");
        self.finish()
    }

    fn finish(mut self) -> Run {
        let status = self.child.wait().expect("wait ferry");
        let _ = std::fs::remove_file(&self.resume_file);
        Run {
            what: self.what,
            out: Output {
                status,
                stdout: self.stdout.join().expect("stdout reader"),
                stderr: self.stderr.join().expect("stderr reader").into_bytes(),
            },
        }
    }
}

pub struct Run {
    what: String,
    pub out: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    pub fn code(&self) -> Option<i32> {
        self.out.status.code()
    }

    #[track_caller]
    pub fn success(self) -> Self {
        assert!(
            self.out.status.success(),
            "{} failed with {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.what,
            self.out.status,
            self.stdout(),
            self.stderr()
        );
        self
    }

    #[track_caller]
    pub fn fails_with(self, code: i32) -> Self {
        assert_eq!(
            self.code(),
            Some(code),
            "{} should exit {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.what,
            self.stdout(),
            self.stderr()
        );
        self
    }

    /// The output (stdout and stderr) must mention `needle`.
    #[track_caller]
    pub fn says(self, needle: &str) -> Self {
        let all = format!("{}{}", self.stdout(), self.stderr());
        assert!(
            all.contains(needle),
            "{} should mention {needle:?}\n--- output\n{all}",
            self.what
        );
        self
    }
}

/// Applies `edit` to both JSON documents of a directory archive (prelude and manifest), as
/// a tampering tool would, so that the archive stays self-consistent: data checksums are
/// untouched and `verify` passes.
pub fn edit_manifests(archive: &Path, mut edit: impl FnMut(&mut serde_json::Value)) {
    for doc in ["prelude.json", "manifest.json"] {
        let p = archive.join(doc);
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&p).expect(doc)).expect("JSON");
        edit(&mut v);
        std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).expect(doc);
    }
}

/// Validates a manifest document against `spec/manifest.schema.json`, independently of the
/// crate's own validation.
#[track_caller]
pub fn assert_manifest_valid(json: &[u8]) -> serde_json::Value {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/spec/manifest.schema.json"
        ))
        .expect("schema file"),
    )
    .expect("schema is JSON");
    let value: serde_json::Value = serde_json::from_slice(json).expect("manifest is JSON");
    let validator = jsonschema::validator_for(&schema).expect("valid schema");
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "manifest does not validate: {errors:#?}");
    value
}

/// Validates both documents of a directory or tar archive; returns the manifest.
#[track_caller]
pub fn assert_archive_manifests_valid(archive: &Path) -> serde_json::Value {
    let mut docs = std::collections::BTreeMap::new();
    if archive.is_dir() {
        for name in ["prelude.json", "manifest.json"] {
            docs.insert(
                name.to_owned(),
                std::fs::read(archive.join(name)).expect(name),
            );
        }
    } else {
        let mut ar = tar::Archive::new(std::fs::File::open(archive).expect("tar"));
        for e in ar.entries().expect("entries") {
            let mut e = e.expect("entry");
            let p = e.path().expect("path").to_string_lossy().into_owned();
            if p.ends_with(".json") {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut b).expect("read");
                docs.insert(p, b);
            }
        }
    }
    assert_manifest_valid(&docs["prelude.json"]);
    assert_manifest_valid(&docs["manifest.json"])
}

/// Runs a Python snippet with `path` as its one argument and returns what it printed: how a
/// test reads an archive without ferry (pyarrow, installed by scripts/ensure-tools).
pub fn python(script: &str, path: &Path) -> String {
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3 with pyarrow (scripts/ensure-tools installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}
