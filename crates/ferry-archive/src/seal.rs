//! Encrypted archives: every entry an age file, so the machine that writes a backup need
//! hold only public keys and cannot read it back.
//!
//! An encrypted archive is an ordinary archive whose entries are each encrypted with age
//! (age-encryption.org/v1) and stored as `<entry>.age`, after one clear entry,
//! `encryption.json`, that says which format this is and to whom it is encrypted (recipient
//! key ids only: no table name, count or schema is in the clear). Entry by entry, so the
//! standard `age` tool decrypts each file on its own and the result is an ordinary ferry
//! archive; streaming, because age encrypts in 64 KiB chunks, so a part is sealed as it is
//! written and opened as it is read, with the same bounded memory.
//!
//! A passphrase (`--passphrase-file`) does not go through scrypt once per entry, which
//! would cost a second per part: the export makes a fresh X25519 key for the archive,
//! encrypts every entry to it as to any recipient, and stores the key itself in `key.age`,
//! encrypted with the passphrase. One scrypt on each side, and `age -d key.age` gives an
//! identity file the `age` tool then uses for the rest.
//!
//! Checksums stay those of the clear bytes, so a decrypted archive verifies like any other.
//! age's AEAD makes a changed ciphertext fail to decrypt, but encryption to public keys is
//! not authentication: anyone may encrypt a new archive to the same recipients. That is
//! what signing (`crate::sign`) is for; the two compose (sign, then encrypt).
//!
//! Like the signing keys, the encryption settings are process-wide: every writing and
//! reading path must apply them and none may forget to.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use age::secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The suffix of an encrypted entry.
pub const SUFFIX: &str = ".age";
/// The one clear entry of an encrypted archive, always its first.
pub const ENVELOPE: &str = "encryption.json";
/// The archive's own key, encrypted with the passphrase (only when one was given).
pub const KEY_ENTRY: &str = "key.age";
/// The format version of the envelope: entries named `.age` are a new kind of entry, which
/// readers of 1.x and 2.x would refuse (spec/FORMAT.md §5). The documents inside keep the
/// version they would have in the clear.
pub const ENCRYPTED_FORMAT_VERSION: &str = "3.0.0";
const CIPHER: &str = "age-encryption.org/v1";
/// scrypt's work factor (log2 N) for `key.age`: 256 MiB and about a second, once per archive.
const SCRYPT_LOG_N: u8 = 18;
/// The most a reader spends on a `key.age` it is given: 2^20 (1 GiB), so that a crafted one
/// cannot ask for minutes and gigabytes.
const SCRYPT_MAX_LOG_N: u8 = 20;
/// The most of an entry read before its age header has ended: a crafted header with one
/// endless line, or millions of them, is refused instead of read.
const HEADER_CAP: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{0}")]
    BadRecipient(String),
    #[error("{path}: {reason}")]
    BadIdentity { path: String, reason: String },
    #[error("{path}: {reason}")]
    Passphrase { path: String, reason: String },
    #[error("encryption cannot be set up: {0}")]
    Setup(String),
}

/// What `encryption.json` says: the only clear text of an encrypted archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// `ferry-archive`, as in the manifest.
    #[serde(default)]
    pub format: String,
    pub format_version: String,
    pub encryption: String,
    /// Who can read it, by key id: an age recipient as itself, an SSH key by its SHA256
    /// fingerprint (as `ssh-keygen -l` prints it), a passphrase as the word.
    pub recipients: Vec<RecipientId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientId {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl std::fmt::Display for RecipientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.id {
            Some(id) => write!(f, "{} {id}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl Envelope {
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("an envelope serializes");
        v.push(b'\n');
        v
    }

    /// Reads `encryption.json`. As for the manifest (spec/FORMAT.md §5), the format and
    /// the major version are checked first, and members this version does not know are
    /// ignored.
    pub fn from_json(bytes: &[u8]) -> Result<Envelope, String> {
        let e: Envelope = serde_json::from_slice(bytes).map_err(|e| format!("not valid: {e}"))?;
        if e.format != "ferry-archive" {
            return Err(format!(
                "format {:?} is not ferry-archive",
                crate::clip(&e.format)
            ));
        }
        let major = e
            .format_version
            .split('.')
            .next()
            .and_then(|m| m.parse::<u64>().ok());
        if major != Some(3) {
            return Err(format!(
                "format version {} is not one this ferry reads (3.x)",
                crate::clip(&e.format_version)
            ));
        }
        if e.encryption != CIPHER {
            return Err(format!(
                "encryption {:?} is not {CIPHER}",
                crate::clip(&e.encryption)
            ));
        }
        Ok(e)
    }

    /// The recipients as a short list for messages.
    pub fn readers(&self) -> String {
        let list: Vec<String> = self.recipients.iter().map(|r| r.to_string()).collect();
        list.join(", ")
    }

    fn has_passphrase(&self) -> bool {
        self.recipients.iter().any(|r| r.kind == "passphrase")
    }
}

type BoxedRecipient = Box<dyn age::Recipient + Send + Sync>;
type BoxedIdentity = Box<dyn age::Identity + Send + Sync>;
/// A `key.age` already opened: its SHA-256, and the archive key it held.
type Unlocked = ([u8; 32], Arc<Vec<BoxedIdentity>>);

/// Encrypts the archive being written.
pub struct Sealer {
    recipients: Vec<BoxedRecipient>,
    envelope: Envelope,
    /// `key.age`: the archive's own identity under the passphrase.
    wrapped_key: Option<Vec<u8>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer(to {})", self.envelope.readers())
    }
}

impl Sealer {
    /// `recipients` are age recipients, SSH public keys, or files of them (one a line, `#`
    /// comments), as `age -r`/`-R` take them. Everything is parsed and a test message
    /// sealed here, so a bad recipient fails the export before it reads its source.
    pub fn new(
        recipients: &[String],
        passphrase: Option<SecretString>,
    ) -> Result<Sealer, SealError> {
        let mut boxed: Vec<BoxedRecipient> = Vec::new();
        let mut ids = Vec::new();
        for arg in recipients {
            for (line, at) in recipient_lines(arg)? {
                let (r, id) = parse_recipient(&line, &at)?;
                if !ids.contains(&id) {
                    boxed.push(r);
                    ids.push(id);
                }
            }
        }
        let mut wrapped_key = None;
        if let Some(pass) = passphrase {
            if pass.expose_secret().is_empty() {
                return Err(SealError::Setup("the passphrase is empty".into()));
            }
            let key = age::x25519::Identity::generate();
            boxed.push(Box::new(key.to_public()));
            let text = SecretString::from(format!(
                "# the key of one ferry archive; its entries decrypt with: age -d -i THIS_FILE\n{}\n",
                key.to_string().expose_secret()
            ));
            let mut scrypt = age::scrypt::Recipient::new(pass);
            scrypt.set_work_factor(SCRYPT_LOG_N);
            let enc =
                age::Encryptor::with_recipients(std::iter::once(&scrypt as &dyn age::Recipient))
                    .map_err(|e| SealError::Setup(e.to_string()))?;
            wrapped_key = Some(
                seal_with(enc, text.expose_secret().as_bytes())
                    .map_err(|e| SealError::Setup(e.to_string()))?,
            );
            ids.push(RecipientId {
                kind: "passphrase".into(),
                id: None,
            });
        }
        if boxed.is_empty() {
            return Err(SealError::Setup("no recipient and no passphrase".into()));
        }
        let sealer = Sealer {
            recipients: boxed,
            envelope: Envelope {
                format: "ferry-archive".into(),
                format_version: ENCRYPTED_FORMAT_VERSION.into(),
                encryption: CIPHER.into(),
                recipients: ids,
            },
            wrapped_key,
        };
        sealer
            .seal(b"ferry")
            .map_err(|e| SealError::Setup(e.to_string()))?;
        Ok(sealer)
    }

    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    pub fn wrapped_key(&self) -> Option<&[u8]> {
        self.wrapped_key.as_deref()
    }

    fn encryptor(&self) -> std::io::Result<age::Encryptor> {
        age::Encryptor::with_recipients(
            self.recipients
                .iter()
                .map(|r| r.as_ref() as &dyn age::Recipient),
        )
        .map_err(|e| std::io::Error::other(format!("age: {e}")))
    }

    /// A writer that encrypts into `out`; call `finish` on it to write the last chunk.
    pub fn wrap<W: Write>(&self, out: W) -> std::io::Result<age::stream::StreamWriter<W>> {
        self.encryptor()?.wrap_output(out)
    }

    /// One small document, encrypted.
    pub fn seal(&self, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        seal_with(self.encryptor()?, bytes)
    }
}

fn seal_with(enc: age::Encryptor, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() + 256);
    let mut w = enc.wrap_output(&mut out)?;
    w.write_all(bytes)?;
    w.finish()?;
    Ok(out)
}

/// The recipients `arg` names: itself, or the lines of a file. Errors describe a bad
/// recipient by where it is, never by its text: a secret key or a passphrase given here by
/// mistake must not end up on a terminal or in a report.
fn recipient_lines(arg: &str) -> Result<Vec<(String, String)>, SealError> {
    let arg = arg.trim();
    if arg.starts_with("age1") || arg.starts_with("ssh-") {
        return Ok(vec![(arg.to_owned(), "--encrypt-to".to_owned())]);
    }
    if looks_secret(arg) {
        return Err(SealError::BadRecipient(
            "--encrypt-to: a secret key; give its public key (age-keygen -y, or the .pub file)"
                .into(),
        ));
    }
    let path = Path::new(arg);
    if !path.is_file() {
        return Err(SealError::BadRecipient(format!(
            "--encrypt-to {:?}: neither an age or SSH public key nor a file of them",
            crate::clip(arg)
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| SealError::BadRecipient(format!("--encrypt-to {arg}: {e}")))?;
    let lines: Vec<(String, String)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (l.trim(), i + 1))
        .filter(|(l, _)| !l.is_empty() && !l.starts_with('#'))
        .map(|(l, n)| (l.to_owned(), format!("--encrypt-to {arg}, line {n}")))
        .collect();
    if lines.is_empty() {
        return Err(SealError::BadRecipient(format!(
            "--encrypt-to {arg}: no recipient in the file"
        )));
    }
    Ok(lines)
}

/// A secret age identity or a private key file's first line.
fn looks_secret(s: &str) -> bool {
    s.starts_with("AGE-SECRET-KEY-") || s.starts_with("-----BEGIN")
}

fn parse_recipient(s: &str, at: &str) -> Result<(BoxedRecipient, RecipientId), SealError> {
    let bad = |what: &str| SealError::BadRecipient(format!("{at}: {what}"));
    if looks_secret(s) {
        return Err(bad(
            "a secret key; give its public key (age-keygen -y, or the .pub file)",
        ));
    }
    if s.starts_with("age1") {
        let r = age::x25519::Recipient::from_str(s)
            .map_err(|_| bad("not a valid age public key (age1...)"))?;
        let id = RecipientId {
            kind: "x25519".into(),
            id: Some(r.to_string()),
        };
        return Ok((Box::new(r), id));
    }
    if s.starts_with("ssh-") {
        let r = age::ssh::Recipient::from_str(s)
            .map_err(|_| bad("not an SSH public key age supports (ssh-ed25519 or ssh-rsa)"))?;
        let mut fields = s.split_whitespace();
        let kind = fields.next().unwrap_or("ssh").to_owned();
        let blob = fields.next().unwrap_or("");
        let id = RecipientId {
            kind,
            id: Some(ssh_fingerprint(blob).ok_or_else(|| bad("an SSH key that is not base64"))?),
        };
        return Ok((Box::new(r), id));
    }
    Err(bad("not an age or SSH public key"))
}

/// The fingerprint `ssh-keygen -l` prints: SHA256 of the key blob, base64 without padding.
fn ssh_fingerprint(blob_b64: &str) -> Option<String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(blob_b64)
        .ok()?;
    let digest = sha2::Sha256::digest(&blob);
    Some(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    ))
}

/// The keys that read encrypted archives: `--identity` files and `--passphrase-file`.
pub struct Opener {
    identities: Vec<BoxedIdentity>,
    /// Each identity's recipient where it can be known, for messages.
    names: Vec<String>,
    passphrase: Option<SecretString>,
    /// The last `key.age` opened (by SHA-256) and the key it held.
    unlocked: std::sync::Mutex<Option<Unlocked>>,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Opener({})", self.names.join(", "))
    }
}

impl Opener {
    /// Reads age identity files (`AGE-SECRET-KEY-1...` lines, as `age-keygen` writes them)
    /// and unencrypted SSH private keys.
    pub fn new(
        identity_files: &[PathBuf],
        passphrase: Option<SecretString>,
    ) -> Result<Opener, SealError> {
        let mut identities: Vec<BoxedIdentity> = Vec::new();
        let mut names = Vec::new();
        for path in identity_files {
            let bad = |reason: String| SealError::BadIdentity {
                path: path.display().to_string(),
                reason,
            };
            let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
            if text.contains("-----BEGIN") {
                let id = age::ssh::Identity::from_buffer(
                    text.as_bytes(),
                    Some(path.display().to_string()),
                )
                .map_err(|e| bad(format!("not an SSH private key ({e})")))?;
                match id {
                    age::ssh::Identity::Unencrypted(_) => {}
                    age::ssh::Identity::Encrypted(_) => {
                        return Err(bad("the SSH key is passphrase-protected, and ferry never prompts; use an unencrypted copy or an age identity".into()));
                    }
                    age::ssh::Identity::Unsupported(k) => {
                        return Err(bad(format!("an SSH key age does not support ({k:?})")));
                    }
                }
                identities.push(Box::new(id));
                names.push(format!("SSH key {}", path.display()));
                continue;
            }
            let mut found = 0;
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let id = age::x25519::Identity::from_str(line)
                    .map_err(|_| bad("not an age identity file (AGE-SECRET-KEY-1... lines) or an SSH private key".into()))?;
                names.push(format!("{}: {}", path.display(), id.to_public()));
                identities.push(Box::new(id));
                found += 1;
            }
            if found == 0 {
                return Err(bad("no identity in the file".into()));
            }
        }
        Ok(Opener {
            identities,
            names,
            passphrase,
            unlocked: std::sync::Mutex::new(None),
        })
    }

    /// The keys for one archive: the identities, and with a passphrase the archive's own
    /// key out of `key.age`.
    pub(crate) fn unlock(
        &self,
        name: &str,
        envelope: &Envelope,
        key_entry: Option<&[u8]>,
    ) -> Result<Unsealer, String> {
        let mut extra: Vec<BoxedIdentity> = Vec::new();
        if let (Some(pass), Some(wrapped)) = (&self.passphrase, key_entry) {
            // The same archive read twice in one run (import --verify) costs one scrypt.
            use sha2::Digest as _;
            let digest: [u8; 32] = sha2::Sha256::digest(wrapped).into();
            let cached = self.unlocked.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((d, ids)) = cached.as_ref()
                && *d == digest
            {
                return Ok(Unsealer {
                    opener: self.names.clone(),
                    extra: ids.clone(),
                    readers: envelope.readers(),
                });
            }
            drop(cached);
            let mut scrypt = age::scrypt::Identity::new(pass.clone());
            scrypt.set_max_work_factor(SCRYPT_MAX_LOG_N);
            let text = open_with(wrapped, std::iter::once(&scrypt as &dyn age::Identity))
                .map_err(|e| {
                    // A wrong passphrase fails the stanza's AEAD, which age reports as a
                    // failed decryption, the same as a damaged file.
                    let why = match e {
                        Opened::NoMatch => "it is not encrypted with a passphrase".to_owned(),
                        Opened::Other(e) => e,
                    };
                    format!("{name}: the passphrase does not open {KEY_ENTRY} (a wrong passphrase, or a damaged file: {why})")
                })?;
            let text = SecretString::from(
                String::from_utf8(text)
                    .map_err(|_| format!("{name}: {KEY_ENTRY} does not hold an age identity"))?,
            );
            for line in text
                .expose_secret()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
            {
                let id = age::x25519::Identity::from_str(line)
                    .map_err(|_| format!("{name}: {KEY_ENTRY} does not hold an age identity"))?;
                extra.push(Box::new(id));
            }
            let extra = Arc::new(extra);
            *self.unlocked.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((digest, extra.clone()));
            return Ok(Unsealer {
                opener: self.names.clone(),
                extra,
                readers: envelope.readers(),
            });
        } else if self.identities.is_empty() {
            return Err(match (&self.passphrase, envelope.has_passphrase()) {
                (Some(_), true) => format!(
                    "{name} has no {KEY_ENTRY} (missing, or not right after {ENVELOPE}), so the passphrase cannot open it; give --identity FILE"
                ),
                (Some(_), false) => format!(
                    "{name} is encrypted to {} and not with a passphrase; give --identity FILE",
                    envelope.readers()
                ),
                _ => format!(
                    "{name} is encrypted to {}, and no key was given; give --identity FILE{}",
                    envelope.readers(),
                    if envelope.has_passphrase() {
                        " or --passphrase-file FILE"
                    } else {
                        ""
                    }
                ),
            });
        }
        Ok(Unsealer {
            opener: self.names.clone(),
            extra: Arc::new(extra),
            readers: envelope.readers(),
        })
    }

    fn all(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.identities
            .iter()
            .map(|i| i.as_ref() as &dyn age::Identity)
    }
}

enum Opened {
    NoMatch,
    Other(String),
}

fn open_with<'a>(
    bytes: &[u8],
    ids: impl Iterator<Item = &'a dyn age::Identity>,
) -> Result<Vec<u8>, Opened> {
    let d = age::Decryptor::new_buffered(HeaderCap::new(bytes))
        .map_err(|e| Opened::Other(first_line(&e)))?;
    let mut r = d.decrypt(ids).map_err(|e| match e {
        age::DecryptError::NoMatchingKeys => Opened::NoMatch,
        e => Opened::Other(first_line(&e)),
    })?;
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .map_err(|e| Opened::Other(e.to_string()))?;
    Ok(out)
}

/// The keys that open the entries of one archive.
#[derive(Clone)]
pub(crate) struct Unsealer {
    opener: Vec<String>,
    extra: Arc<Vec<BoxedIdentity>>,
    readers: String,
}

impl Unsealer {
    /// A reader of `entry`'s clear bytes. A wrong key, a changed byte or a cut-off entry is
    /// an error naming the entry.
    pub(crate) fn open<R: BufRead>(
        &self,
        entry: &str,
        input: R,
    ) -> Result<Clear<HeaderCap<R>>, String> {
        let opener = opener().ok_or_else(|| format!("{entry}: no key to decrypt it"))?;
        let capped = HeaderCap::new(input);
        let cap = capped.left.clone();
        let d = age::Decryptor::new_buffered(capped)
            .map_err(|e| format!("{entry}{SUFFIX} is not an age file ({})", first_line(&e)))?;
        if d.is_scrypt() {
            // Only key.age is under the passphrase; an entry that is would make every part
            // cost a second of scrypt, and no ferry writes one.
            return Err(format!(
                "{entry}{SUFFIX} is encrypted with a passphrase, which no ferry archive entry is"
            ));
        }
        let ids = opener
            .all()
            .chain(self.extra.iter().map(|i| i.as_ref() as &dyn age::Identity));
        let opened = d.decrypt(ids);
        // The header is read: the payload is bounded by the container, not by the cap.
        cap.store(u64::MAX, Ordering::Relaxed);
        opened.map(|inner| Clear { inner }).map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => {
                if self.opener.is_empty() && self.extra.is_empty() {
                    format!("{entry}: no key was given")
                } else {
                    format!(
                        "none of the keys given ({}) opens {entry}{SUFFIX}; the archive is encrypted to {}",
                        if self.opener.is_empty() { "the passphrase".to_owned() } else { self.opener.join(", ") },
                        self.readers
                    )
                }
            }
            e => format!("{entry}{SUFFIX}: {}", first_line(&e)),
        })
    }
}

/// The first line of an error: some of age's messages go on with advice ("Have you tried
/// upgrading...") that is not ferry's to give, and a message here is one line.
fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

/// A reader that refuses to give more than [`HEADER_CAP`] bytes until `left` is lifted
/// (set to `u64::MAX`) after the age header is parsed.
pub(crate) struct HeaderCap<R> {
    inner: R,
    left: Arc<AtomicU64>,
}

impl<R> HeaderCap<R> {
    fn new(inner: R) -> HeaderCap<R> {
        HeaderCap {
            inner,
            left: Arc::new(AtomicU64::new(HEADER_CAP)),
        }
    }
}

impl<R: BufRead> BufRead for HeaderCap<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        let left = self.left.load(Ordering::Relaxed);
        if left == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "an age header of more than 1 MiB",
            ));
        }
        let buf = self.inner.fill_buf()?;
        let n = (buf.len() as u64).min(left) as usize;
        Ok(&buf[..n])
    }

    fn consume(&mut self, n: usize) {
        let left = self.left.load(Ordering::Relaxed);
        if left != u64::MAX {
            self.left
                .store(left.saturating_sub(n as u64), Ordering::Relaxed);
        }
        self.inner.consume(n);
    }
}

impl<R: BufRead> Read for HeaderCap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// The error a [`Clear`] reader gives when its entry does not decrypt, so that readers can
/// tell a damaged entry from a failing disk.
#[derive(Debug)]
struct DecryptFailed(String);

impl std::fmt::Display for DecryptFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecryptFailed {}

/// Whether `e` came from an entry that does not decrypt (changed, cut short).
pub(crate) fn is_decrypt_error(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|r| r.is::<DecryptFailed>())
}

/// An entry's clear bytes. age authenticates each 64 KiB chunk and marks the last, so a
/// changed or truncated entry fails as it is read; the error says that in words.
pub(crate) struct Clear<R: BufRead> {
    inner: age::stream::StreamReader<R>,
}

impl<R: BufRead> Read for Clear<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                DecryptFailed(format!(
                    "does not decrypt: the entry was changed or cut short ({})",
                    first_line(&e)
                )),
            )
        })
    }
}

/// Reads a passphrase file: its first line, without the line ending.
pub fn read_passphrase(path: &Path) -> Result<SecretString, SealError> {
    let text =
        SecretString::from(
            std::fs::read_to_string(path).map_err(|e| SealError::Passphrase {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?,
        );
    let text = text.expose_secret();
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(SealError::Passphrase {
            path: path.display().to_string(),
            reason: "the file's first line is empty".into(),
        });
    }
    Ok(SecretString::from(line.to_owned()))
}

static SEALER: RwLock<Option<Arc<Sealer>>> = RwLock::new(None);
static OPENER: RwLock<Option<Arc<Opener>>> = RwLock::new(None);
static LAST_ENVELOPE: RwLock<Option<Envelope>> = RwLock::new(None);

/// Encrypts every archive this process writes from now on.
pub fn sealing(sealer: Option<Sealer>) {
    let mut s = SEALER.write().unwrap_or_else(|e| e.into_inner());
    *s = sealer.map(Arc::new);
}

/// The encryption of archives being written, if any. A poisoned lock still holds it: an
/// export asked to encrypt must never fall back to the clear.
pub fn sealer() -> Option<Arc<Sealer>> {
    SEALER.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The keys that open encrypted archives this process reads.
pub fn opening(opener: Option<Opener>) {
    let mut o = OPENER.write().unwrap_or_else(|e| e.into_inner());
    *o = opener.map(Arc::new);
}

pub fn opener() -> Option<Arc<Opener>> {
    OPENER.read().unwrap_or_else(|e| e.into_inner()).clone()
}

pub(crate) fn saw_envelope(e: Option<Envelope>) {
    let mut l = LAST_ENVELOPE.write().unwrap_or_else(|e| e.into_inner());
    *l = e;
}

/// The envelope of the last archive this process read, if it was encrypted (for `inspect`).
pub fn last_envelope() -> Option<Envelope> {
    LAST_ENVELOPE
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// The keys for an archive whose envelope was just read.
pub(crate) fn unlock(
    name: &str,
    envelope: &Envelope,
    key_entry: Option<&[u8]>,
) -> Result<Unsealer, String> {
    match opener() {
        Some(o) => o.unlock(name, envelope, key_entry),
        None => Err(format!(
            "{name} is encrypted to {}; give --identity FILE{} to read it",
            envelope.readers(),
            if envelope.has_passphrase() {
                " or --passphrase-file FILE"
            } else {
                ""
            }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_open_with_any_recipient_and_not_a_stranger() {
        let a = age::x25519::Identity::generate();
        let b = age::x25519::Identity::generate();
        let sealer = Sealer::new(
            &[a.to_public().to_string(), b.to_public().to_string()],
            None,
        )
        .unwrap();
        assert_eq!(sealer.envelope().recipients.len(), 2);
        let sealed = sealer.seal(b"secret table").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        for id in [&a, &b] {
            let clear = open_with(&sealed, std::iter::once(id as &dyn age::Identity))
                .ok()
                .unwrap();
            assert_eq!(clear, b"secret table");
        }
        let c = age::x25519::Identity::generate();
        assert!(matches!(
            open_with(&sealed, std::iter::once(&c as &dyn age::Identity)),
            Err(Opened::NoMatch)
        ));
    }

    #[test]
    fn a_passphrase_entry_and_an_endless_header_are_refused() {
        let a = age::x25519::Identity::generate();
        let file = std::env::temp_dir().join(format!("ferry-seal-test-{}", std::process::id()));
        std::fs::write(&file, format!("{}\n", a.to_string().expose_secret())).unwrap();
        opening(Some(
            Opener::new(std::slice::from_ref(&file), None).unwrap(),
        ));
        let _ = std::fs::remove_file(&file);
        let envelope = Envelope {
            format: "ferry-archive".into(),
            format_version: "3.0.0".into(),
            encryption: CIPHER.into(),
            recipients: vec![],
        };
        let keys = unlock("test", &envelope, None).unwrap();
        // An entry under a passphrase would cost a scrypt per entry: no ferry writes one.
        let mut r = age::scrypt::Recipient::new(SecretString::from("pw".to_owned()));
        r.set_work_factor(10);
        let enc =
            age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
        let sealed = seal_with(enc, b"x").unwrap();
        let err = keys.open("prelude.json", &sealed[..]).err().unwrap();
        assert!(err.contains("encrypted with a passphrase"), "{err}");
        // A header line that never ends is cut off at the cap, not read to the end.
        let mut endless = b"age-encryption.org/v1\n-> X25519 ".to_vec();
        endless.extend(std::iter::repeat_n(b'A', 3 << 20));
        let err = keys.open("prelude.json", &endless[..]).err().unwrap();
        assert!(err.contains("more than 1 MiB"), "{err}");
        // The right key opens a proper entry.
        let sealer = Sealer::new(&[a.to_public().to_string()], None).unwrap();
        let sealed = sealer.seal(b"clear").unwrap();
        let mut out = Vec::new();
        keys.open("prelude.json", &sealed[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"clear");
    }

    #[test]
    fn bad_recipients_fail_at_setup() {
        for bad in ["age1nope", "ssh-ed25519 AAAA", "/no/such/file", ""] {
            assert!(Sealer::new(&[bad.to_owned()], None).is_err(), "{bad}");
        }
        assert!(Sealer::new(&[], None).is_err());
        assert!(Sealer::new(&[], Some(SecretString::from(String::new()))).is_err());
    }

    #[test]
    fn envelope_versions() {
        let e = Envelope {
            format: "ferry-archive".into(),
            format_version: "3.0.0".into(),
            encryption: CIPHER.into(),
            recipients: vec![],
        };
        assert_eq!(Envelope::from_json(&e.to_json()).unwrap(), e);
        let mut v4 = e.clone();
        v4.format_version = "4.0.0".into();
        assert!(
            Envelope::from_json(&v4.to_json())
                .unwrap_err()
                .contains("4.0.0")
        );
    }

    #[test]
    fn ssh_fingerprints_match_ssh_keygen() {
        // What `ssh-keygen -l -f` printed for this key.
        let blob = "AAAAC3NzaC1lZDI1NTE5AAAAIHnxC5ww49V1oR+M6d3hm4hLBObpP7SB5Em4/eZ5ENhZ";
        assert_eq!(
            ssh_fingerprint(blob).unwrap(),
            "SHA256:9ui9rqYCk8h26n2hMbgiJ+eh+XX7UZXNrLV6aGc0EO8"
        );
    }
}
