//! A new user's mistakes get one line that names the cause and the fix, and change nothing.

use crate::harness::{Run, TestDir};
use crate::pg_db::PgDb;

fn sample() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/app.db")
}

fn one_line(run: &Run) {
    let err = run.stderr();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("ferry: error: "), "{err}");
}

#[test]
fn a_file_that_is_not_an_archive_is_named_for_what_it_is() {
    let dir = TestDir::new();
    std::fs::copy(sample(), dir.path("app.db")).unwrap();
    std::fs::write(
        dir.path("README.md"),
        "# ferry\n\nMove whole databases...\n".repeat(40),
    )
    .unwrap();
    let run = dir
        .ferry()
        .args(["import", "README.md", "out.db"])
        .run()
        .fails_with(1)
        .says("README.md: not a ferry archive: it is text, not a tar file");
    one_line(&run);
    assert!(!run.stderr().contains("Move whole"), "no echo of the file");
    // The arguments swapped: the database given as the archive.
    let run = dir
        .ferry()
        .args(["import", "app.db", "out.db"])
        .run()
        .fails_with(1)
        .says("it is a SQLite database (the arguments are ARCHIVE then TARGET");
    one_line(&run);
    assert!(!dir.path("out.db").exists());
    dir.ferry()
        .args(["inspect", "app.db"])
        .run()
        .fails_with(1)
        .says("not a ferry archive");
}

#[test]
fn a_url_scheme_typo_is_not_taken_for_a_file_name() {
    let dir = TestDir::new();
    dir.export_sample("app.tar");
    for args in [
        vec!["export", "postgresq://localhost/app", "x.tar"],
        vec!["import", "app.tar", "postgresq://localhost/app"],
        vec![
            "verify",
            "app.tar",
            "--against",
            "postgress://localhost/app",
        ],
    ] {
        let run = dir
            .ferry()
            .args(&args)
            .run()
            .fails_with(1)
            .says("unknown scheme; a database is postgresql://");
        one_line(&run);
    }
    assert_eq!(dir.entries(), vec!["app.tar".to_owned()]);
}

#[test]
fn export_refuses_a_compressed_name_a_directory_source_and_a_terminal() {
    let dir = TestDir::new();
    let run = dir
        .ferry()
        .args(["export"])
        .args([sample()])
        .args(["app.tar.gz"])
        .run()
        .fails_with(1)
        .says("ferry export SOURCE - | gzip > app.tar.gz");
    one_line(&run);
    std::fs::create_dir(dir.path("somedir")).unwrap();
    dir.ferry()
        .args(["export", "somedir", "x.tar"])
        .run()
        .fails_with(1)
        .says("somedir: a directory, not a SQLite database file");
    assert_eq!(dir.entries(), vec!["somedir".to_owned()]);

    // `-` with stdout on a terminal (script(1) gives the command a pseudo-terminal).
    let out = std::process::Command::new("script")
        .current_dir(dir.root())
        .args(["-qec"])
        .arg(format!(
            "{} export {} -",
            env!("CARGO_BIN_EXE_ferry"),
            sample().display()
        ))
        .arg("/dev/null")
        .output()
        .expect("script(1), from util-linux");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("refusing to write a binary archive to a terminal"),
        "{text}"
    );
    assert!(!text.contains("PAR1"), "no Parquet bytes on the terminal");
    assert!(!out.status.success());
}

#[test]
fn a_bad_port_says_which_part_of_the_connection_string_is_wrong() {
    let dir = TestDir::new();
    for url in [
        "postgresql://postgres@127.0.0.1:54x2/db",
        "host=127.0.0.1 port=abc dbname=db",
    ] {
        let run = dir
            .ferry()
            .args(["export", url, "x.tar"])
            .run()
            .fails_with(1)
            .says("invalid value for option `port`");
        one_line(&run);
    }
}

#[test]
fn importing_an_archive_onto_itself_is_refused_even_with_replace() {
    let dir = TestDir::new();
    dir.export_sample("app.tar");
    let before = std::fs::read(dir.path("app.tar")).unwrap();
    for extra in [None, Some("--replace")] {
        let mut f = dir.ferry().args(["import", "app.tar", "./app.tar"]);
        if let Some(x) = extra {
            f = f.args([x]);
        }
        let run = f
            .run()
            .fails_with(1)
            .says("the target is the archive itself");
        one_line(&run);
        assert!(
            !run.stderr().contains("--replace to replace"),
            "{}",
            run.stderr()
        );
    }
    assert_eq!(std::fs::read(dir.path("app.tar")).unwrap(), before);
    assert_eq!(dir.entries(), vec!["app.tar".to_owned()]);
}

#[test]
fn a_missing_archive_is_the_same_failure_for_every_command() {
    let dir = TestDir::new();
    for cmd in [
        vec!["verify", "nope.tar"],
        vec!["inspect", "nope.tar"],
        vec!["import", "nope.tar", "x.db"],
        vec!["verify", "nope"],
        vec!["inspect", "nope"],
    ] {
        let name = cmd[1];
        let run = dir.ferry().args(&cmd).run().fails_with(1).says(&format!(
            "{name}: no such archive (no file or directory of that name)"
        ));
        one_line(&run);
    }
}

#[test]
fn verbose_output_is_ferrys_own_steps_and_plain_when_piped() {
    let dir = TestDir::new();
    let pg = PgDb::new("verbose");
    dir.export_sample("app.tar");
    let run = dir
        .ferry()
        .args(["-vv", "import", "app.tar", &pg.url()])
        .run()
        .success();
    let err = run.stderr();
    assert!(err.contains("table finished"), "{err}");
    assert!(err.contains("connected"), "{err}");
    assert!(err.contains("running"), "the statements run: {err}");
    assert!(
        !err.contains('\u{1b}'),
        "no colour codes in a pipe: {err:?}"
    );
    assert!(
        !err.contains("rustls"),
        "library internals only at -vvv: {err}"
    );
    let run = dir
        .ferry()
        .args(["-v", "verify", "app.tar"])
        .run()
        .success();
    assert!(run.stderr().contains("part"), "{}", run.stderr());
    // -q: nothing but errors.
    let run = dir
        .ferry()
        .args(["-q", "verify", "app.tar", "--against", &pg.url()])
        .run()
        .success();
    assert_eq!(run.stderr(), "");
}

#[test]
fn a_server_that_never_answers_times_out_in_one_line() {
    let dir = TestDir::new();
    // Accepts connections and never says a word, like a wedged server or a bad proxy.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let url = format!("postgresql://postgres@127.0.0.1:{port}/db");
    let run = dir
        .ferry()
        .args(["export", &url, "x.tar", "--connect-timeout", "1"])
        .run()
        .fails_with(1)
        .says("cannot connect: no answer within 1s (connect_timeout");
    one_line(&run);
    // The same through the connection string, as libpq spells it; the flag wins over it.
    dir.ferry()
        .args(["export", &format!("{url}?connect_timeout=1"), "x.tar"])
        .run()
        .fails_with(1)
        .says("no answer within 1s");
    dir.ferry()
        .args(["export", &format!("{url}?connect_timeout=0"), "x.tar"])
        .args(["--connect-timeout", "1"])
        .run()
        .fails_with(1)
        .says("no answer within 1s");
    assert!(dir.entries().is_empty());
    // The flag does not turn a bare URL into a different database.
    dir.ferry()
        .args(["export", "postgresql://", "x.tar", "--connect-timeout", "5"])
        .run()
        .fails_with(1)
        .says("names no database");
}

#[test]
fn completions_and_the_man_page_describe_this_command_line() {
    let dir = TestDir::new();
    let bash = dir
        .ferry()
        .args(["completions", "bash"])
        .run()
        .success()
        .stdout();
    // The script parses, and completes subcommands and flags of this version.
    let check = std::process::Command::new("bash")
        .args(["-c", &format!(
            "{bash}\nCOMP_WORDS=(ferry cl); COMP_CWORD=1; _ferry ferry cl ferry; echo \"${{COMPREPLY[@]}}\"\nCOMP_WORDS=(ferry import --skip); COMP_CWORD=2; _ferry ferry --skip import; echo \"${{COMPREPLY[@]}}\""
        )])
        .output()
        .unwrap();
    let completed = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(completed.contains("cleanup"), "{completed}");
    assert!(completed.contains("--skip-missing-tables"), "{completed}");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = dir
            .ferry()
            .args(["completions", shell])
            .run()
            .success()
            .stdout();
        assert!(out.contains("connect-timeout"), "{shell}: {out}");
    }
    let page = dir.ferry().args(["man"]).run().success().stdout();
    assert!(
        page.starts_with(".ie") || page.contains(".TH ferry 1"),
        "{page}"
    );
    for needle in [
        "export",
        "import",
        "verify",
        "inspect",
        "cleanup",
        "max\\-value\\-mb",
    ] {
        assert!(page.contains(needle), "{needle} missing from the man page");
    }
    std::fs::write(dir.path("ferry.1"), &page).unwrap();
    let rendered = std::process::Command::new("man")
        .args(["-l"])
        .arg(dir.path("ferry.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .expect("man(1)");
    assert!(rendered.status.success());
    let text = String::from_utf8_lossy(&rendered.stdout);
    assert!(text.contains("SYNOPSIS"), "{text}");
}
