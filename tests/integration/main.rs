//! ferry's integration tests: one binary, one module per concern, a shared harness.

mod archive;
mod harness;
mod sqlite;
mod sqlite_db;
