//! Where an archive lives: the CLI's ARCHIVE argument, decided once.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory holding `prelude.json`, `data/` and `manifest.json`.
    Dir(PathBuf),
    /// A single uncompressed tar file.
    Tar(PathBuf),
    /// The tar form on standard output (writing) or standard input (reading).
    Stdio,
    /// The directory layout under a prefix of an object store (`s3://bucket/prefix`).
    Remote(RemoteRef),
}

/// An object store holding one archive under a prefix: the directory layout, one object per
/// entry. The format crate knows no network; `ferry-store` implements this. Entry names are
/// relative to the prefix (`prelude.json`, `data/t00001/part-00000.parquet`).
pub trait Remote: Send + Sync {
    /// How messages name the archive: its URL, which never holds a credential.
    fn url(&self) -> &str;
    /// Every object under the prefix, as (entry name, size in bytes).
    fn list(&self) -> std::io::Result<Vec<(String, u64)>>;
    /// Uploads a finished local file as `entry`.
    fn put_file(&self, entry: &str, file: &Path) -> std::io::Result<()>;
    /// Streams `entry`'s bytes.
    fn open(&self, entry: &str) -> std::io::Result<Box<dyn Read + Send>>;
    /// Deletes these entries; a missing one is not an error.
    fn delete(&self, entries: &[String]) -> std::io::Result<()>;
}

/// A shared [`Remote`], compared and printed by its URL.
#[derive(Clone)]
pub struct RemoteRef(pub Arc<dyn Remote>);

impl std::fmt::Debug for RemoteRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.url())
    }
}

impl PartialEq for RemoteRef {
    fn eq(&self, other: &Self) -> bool {
        self.0.url() == other.0.url()
    }
}

impl Eq for RemoteRef {}

impl Location {
    /// `-` is the tar stream; a path ending in `.tar` is the tar file; anything else is a
    /// directory. When reading, an existing regular file is taken as a tar file whatever its
    /// name, since nothing else could be meant.
    pub fn parse(arg: &str) -> Location {
        if arg == "-" {
            return Location::Stdio;
        }
        let path = PathBuf::from(arg);
        if arg.to_ascii_lowercase().ends_with(".tar") {
            Location::Tar(path)
        } else {
            Location::Dir(path)
        }
    }

    pub fn parse_for_reading(arg: &str) -> Location {
        match Location::parse(arg) {
            Location::Dir(p) if p.is_file() => Location::Tar(p),
            other => other,
        }
    }

    /// How error messages name the archive.
    pub fn display(&self) -> String {
        match self {
            Location::Dir(p) | Location::Tar(p) => p.display().to_string(),
            Location::Stdio => "<stdin/stdout>".to_owned(),
            Location::Remote(r) => r.0.url().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(Location::parse("-"), Location::Stdio);
        assert_eq!(Location::parse("x.tar"), Location::Tar("x.tar".into()));
        assert_eq!(Location::parse("b/X.TAR"), Location::Tar("b/X.TAR".into()));
        assert_eq!(Location::parse("backup"), Location::Dir("backup".into()));
    }
}
