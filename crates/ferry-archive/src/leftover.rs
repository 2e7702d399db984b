//! Files left behind by a run that was killed (kill -9, power loss): it could not remove
//! its own partial files, so the next run does.
//!
//! Every temporary file and directory ferry makes is named `.ferry-<pid>-<start>-<host>-…`
//! where `<pid>` and `<start>` identify the process that made it (`<start>` is the process
//! start time in clock ticks since boot, read from `/proc`, so a recycled pid is not mistaken
//! for the owner) and `<host>` the machine boot and pid namespace it ran in (a hash of
//! `/proc/sys/kernel/random/boot_id` and `/proc/self/ns/pid`), because a pid means nothing
//! on another host sharing the directory (NFS) or in another container sharing a volume.
//! [`sweep`] removes the entries of this host whose owner is no longer running, and nothing
//! else. Where these cannot be read (not Linux), the tag has `0`s and the sweep removes
//! nothing, because it could not tell a live owner from a dead one.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The prefix of every temporary name this process makes: `.ferry-<pid>-<start>-`.
pub fn prefix() -> &'static str {
    static PREFIX: OnceLock<String> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let pid = std::process::id();
        format!(
            ".ferry-{pid}-{}-{}-",
            start_time(pid).unwrap_or(0),
            host_tag()
        )
    })
}

/// This boot of this machine, in this pid namespace: 12 hex digits, or `0` if unknown.
fn host_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok();
        let ns = std::fs::read_link("/proc/self/ns/pid").ok();
        match (boot, ns) {
            (Some(b), Some(n)) => {
                use sha2::Digest as _;
                let h = sha2::Sha256::digest(format!("{}|{}", b.trim(), n.display()));
                hex::encode(&h[..6])
            }
            _ => "0".to_owned(),
        }
    })
}

/// A builder for ferry's temporary entries beside a target: named after this process (see
/// above), and created with the mode any new file of the user's gets (0666, or 0777 for a
/// directory, less the umask, which the kernel applies), since the entry becomes the
/// published archive or database. tempfile's default, 0600, would leave a restored database
/// unreadable to the application's other users.
pub fn builder(suffix: &str, directory: bool) -> tempfile::Builder<'static, '_> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix()).suffix(suffix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if directory { 0o777 } else { 0o666 };
        b.permissions(std::fs::Permissions::from_mode(mode));
    }
    b
}

/// The prefix of spool directories (tar streams read from stdin), in the temp directory.
pub fn spool_prefix() -> String {
    format!("{}spool-", prefix())
}

/// Removes, from `dir`, the temporary files and directories of ferry runs that are no longer
/// running. Returns what it removed. Errors reading the directory are not the caller's
/// problem (it only wanted to tidy up), so they are skipped.
pub fn sweep(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((pid, start, host)) = owner(name) else {
            continue;
        };
        if start == 0 || host == "0" || host != host_tag() || alive(pid, start) {
            continue;
        }
        let path = entry.path();
        // Never follow a link: only the entry itself is removed.
        let gone = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
            Err(e) => Err(e),
        };
        if gone.is_ok() {
            tracing::info!(path = %path.display(), "removed a dead run's temporary file");
            removed.push(path);
        }
    }
    removed
}

/// The owner `(pid, start, host)` a temporary name records, if it is one of ours.
fn owner(name: &str) -> Option<(u32, u64, &str)> {
    let rest = name.strip_prefix(".ferry-")?;
    let mut it = rest.splitn(4, '-');
    let pid = it.next()?.parse().ok()?;
    let start = it.next()?.parse().ok()?;
    let host = it.next().filter(|h| !h.is_empty())?;
    // The fourth piece is the random part (and suffix); it must be there.
    it.next().filter(|r| !r.is_empty())?;
    Some((pid, start, host))
}

fn alive(pid: u32, start: u64) -> bool {
    start_time(pid) == Some(start)
}

/// Field 22 of `/proc/<pid>/stat`, the start time in clock ticks after boot. The command
/// name (field 2) is in parentheses and may hold spaces or parentheses, so fields are
/// counted from the last `)`.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_is_read_from_our_names_only() {
        assert_eq!(
            owner(".ferry-12-345-0a1b-abc.partial"),
            Some((12, 345, "0a1b"))
        );
        assert_eq!(owner(".ferry-12-345-0a1b-"), None);
        assert_eq!(owner(".ferry-12-345-abc.partial"), None);
        assert_eq!(owner(".ferry-abc.partial"), None);
        assert_eq!(owner("ferry-12-345-x"), None);
    }

    #[test]
    fn sweep_removes_dead_owners_only() {
        let dir = tempfile::tempdir().unwrap();
        let mine = dir.path().join(format!("{}x.partial", prefix()));
        std::fs::write(&mine, b"live").unwrap();
        // A pid that cannot be running (above the kernel's pid_max), with a start time.
        let dead = dir
            .path()
            .join(format!(".ferry-4294967295-77-{}-y.partial", host_tag()));
        // The same dead pid on another host (a shared volume): not ours to judge.
        let elsewhere = dir
            .path()
            .join(".ferry-4294967295-77-ffffffffffff-z.partial");
        std::fs::write(&elsewhere, b"other host").unwrap();
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("part.parquet"), b"x").unwrap();
        let other = dir.path().join("users.parquet");
        std::fs::write(&other, b"keep").unwrap();
        let removed = sweep(dir.path());
        if cfg!(target_os = "linux") {
            assert_eq!(removed, vec![dead.clone()]);
            assert!(!dead.exists());
        }
        assert!(mine.exists(), "a live run's file is kept");
        assert!(elsewhere.exists(), "another host's file is kept");
        assert!(other.exists(), "a file that is not ferry's is kept");
    }
}
