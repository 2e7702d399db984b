//! ferry's integration tests: one binary, one module per concern, a shared harness.

mod archive;
mod clouds;
mod corrupt;
mod cross;
mod encryption;
mod faults;
mod harness;
mod hostile;
mod limits;
mod mask;
mod mistakes;
mod objectstore;
mod parallel;
mod partial;
mod pg_db;
mod postgres;
mod props;
mod realworld;
mod resume;
mod samples;
mod signing;
mod spec;
mod sqlite;
mod sqlite_db;
mod subset;
