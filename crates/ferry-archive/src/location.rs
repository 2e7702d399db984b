//! Where an archive lives: the CLI's ARCHIVE argument, decided once.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory holding `prelude.json`, `data/` and `manifest.json`.
    Dir(PathBuf),
    /// A single uncompressed tar file.
    Tar(PathBuf),
    /// The tar form on standard output (writing) or standard input (reading).
    Stdio,
}

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
