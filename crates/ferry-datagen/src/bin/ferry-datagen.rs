//! `ferry-datagen sqlite PATH [--scale N]`: writes the app database used by ferry's sample
//! and benchmark.

use clap::Parser;

#[derive(Parser)]
#[command(about = "Generate ferry's deterministic app-like test databases")]
enum Cli {
    /// Write the app database as a new SQLite file.
    Sqlite {
        path: std::path::PathBuf,
        /// Multiplies every table's row count (scale 1: 2,000 events; 1000: 2 M).
        #[arg(long, default_value_t = 1)]
        scale: u64,
        /// Leave out the schema features pgloader cannot load (for the benchmark).
        #[arg(long)]
        plain: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse() {
        Cli::Sqlite {
            path,
            scale,
            plain: false,
        } => ferry_datagen::generate_app_sqlite(&path, scale),
        Cli::Sqlite {
            path,
            scale,
            plain: true,
        } => ferry_datagen::generate_plain_sqlite(&path, scale),
    }
}
