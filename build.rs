//! Generates the shell completions and the man page from the command line's own definition
//! (`src/cli.rs`, which depends on nothing but clap for this reason), so that they can never
//! describe another version of ferry. `ferry completions SHELL` and `ferry man` print them.

use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;

#[allow(dead_code)]
#[path = "src/cli.rs"]
mod cli;

fn main() {
    println!("cargo:rerun-if-changed=src/cli.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut cmd = cli::Cli::command();
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::Elvish,
        Shell::PowerShell,
    ] {
        clap_complete::generate_to(shell, &mut cmd, "ferry", &out)
            .expect("writing a completion script");
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut page)
        .expect("rendering the man page");
    std::fs::write(out.join("ferry.1"), page).expect("writing the man page");
}
