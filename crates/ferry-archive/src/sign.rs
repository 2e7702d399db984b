//! Signed archives: who made an archive, not only that it is intact.
//!
//! A SHA-256 per file proves integrity; anyone who edits a file can recompute it. A signed
//! archive carries a minisign (Ed25519) signature of each of its two documents, as entries
//! beside them: `prelude.json.minisig` and `manifest.json.minisig`. The manifest lists every
//! data file's SHA-256, so its signature covers the whole archive; the prelude's signature
//! lets a streaming reader authenticate the schema *before* it acts on it, since the
//! manifest arrives last. The signatures are in minisign's own format, so the standard tool
//! verifies them (`minisign -Vm manifest.json -p key.pub`), and each carries a trusted
//! comment naming the document it signs, so one cannot stand in for the other.
//!
//! Verification is opt-in by the reader (`--key`, `--require-signature`) and fails closed:
//! when a key is required, a missing, broken or foreign signature is an error before the
//! document is used. The required key is process-wide, like the limits, because every
//! reading path (directory, tar, stream) must apply it and none may forget to.

use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, RwLock};

use minisign::{PublicKey, SecretKey, SignatureBox};

/// The suffix of a signature entry.
pub const SUFFIX: &str = ".minisig";

/// The trusted comment that binds a signature to the document it signs.
fn trusted_comment(document: &str) -> String {
    format!("ferry-archive {document}")
}

/// A key's id as minisign prints it in a public key's comment line: the key number in
/// upper-case hex, without leading zeros (`%" PRIX64 "` in minisign's C source), so that a
/// key number whose first hex digit is 0 (one key in sixteen) reads as the tool shows it.
pub fn key_id(keynum: &[u8]) -> String {
    let mut b = [0u8; 8];
    b.copy_from_slice(&keynum[..8.min(keynum.len())]);
    format!("{:X}", u64::from_le_bytes(b))
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("{path}: not a minisign secret key ({reason})")]
    BadSecretKey { path: String, reason: String },
    #[error("{path}: not a minisign public key ({reason})")]
    BadPublicKey { path: String, reason: String },
}

/// A secret key that signs the archive being written.
pub struct Signer {
    sk: SecretKey,
    pk: Option<PublicKey>,
    id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer(key {})", self.id)
    }
}

impl Signer {
    /// Reads a minisign secret key file. An encrypted key needs its password; without one
    /// ferry never prompts (it runs in scripts), it says so.
    pub fn from_file(path: &Path, password: Option<String>) -> Result<Signer, SignError> {
        let bad = |reason: String| SignError::BadSecretKey {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        // An unencrypted key (`minisign -G -W`) is stored in the clear, with the KDF
        // algorithm set to zero; the crate only reads it through a password prompt, so its
        // fixed layout is read here.
        if let Some(encoded) = text.lines().nth(1) {
            use base64::Engine as _;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|e| bad(format!("its key line is not base64 ({e})")))?;
            if raw.len() == 158 && raw[..2] == *b"Ed" && raw[2..4] == [0, 0] {
                let sk = SecretKey::from_bytes(&raw).map_err(|e| bad(e.to_string()))?;
                let pk = PublicKey::from_secret_key(&sk).ok();
                let id = key_id(sk.keynum());
                return Ok(Signer { sk, pk, id });
            }
        }
        let boxed = minisign::SecretKeyBox::from_string(&text).map_err(|e| bad(e.to_string()))?;
        let had_password = password.is_some();
        let sk = boxed
            .into_secret_key(Some(password.unwrap_or_default()))
            .map_err(|e| {
                if had_password {
                    bad(format!("{e}"))
                } else {
                    bad(format!(
                        "{e}; an encrypted key needs its password: --sign-password-file or FERRY_SIGN_PASSWORD"
                    ))
                }
            })?;
        let pk = PublicKey::from_secret_key(&sk).ok();
        let id = key_id(sk.keynum());
        Ok(Signer { sk, pk, id })
    }

    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// The signature entry of `document` (`prelude.json` or `manifest.json`).
    pub fn sign(&self, document: &str, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let sig = minisign::sign(
            self.pk.as_ref(),
            &self.sk,
            Cursor::new(bytes),
            Some(&trusted_comment(document)),
            Some(&format!(
                "signature of {document} from ferry, key {}",
                self.id
            )),
        )
        .map_err(|e| e.to_string())?;
        Ok(sig.into_string().into_bytes())
    }
}

/// A public key that every archive read must be signed by.
#[derive(Clone)]
pub struct Verifier {
    pk: PublicKey,
    id: String,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verifier(key {})", self.id)
    }
}

impl Verifier {
    /// A minisign public key: a `.pub` file, or the key itself in base64 (`RW...`).
    pub fn parse(arg: &str) -> Result<Verifier, SignError> {
        let bad = |reason: String| SignError::BadPublicKey {
            path: arg.to_owned(),
            reason,
        };
        let pk = if Path::new(arg).is_file() {
            PublicKey::from_file(arg).map_err(|e| bad(e.to_string()))?
        } else {
            PublicKey::from_base64(arg.trim()).map_err(|e| {
                bad(format!(
                    "{e}; give a minisign .pub file or the key in base64"
                ))
            })?
        };
        let id = key_id(pk.keynum());
        Ok(Verifier { pk, id })
    }

    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// Checks `signature` (an entry's bytes) over `bytes` of `document`. The error says what
    /// is wrong in one line.
    pub fn verify(&self, document: &str, bytes: &[u8], signature: &[u8]) -> Result<(), String> {
        let text = well_formed(signature)
            .map_err(|why| format!("{document}{SUFFIX} is not a minisign signature ({why})"))?;
        let sig = SignatureBox::from_string(text)
            .map_err(|e| format!("{document}{SUFFIX} is not a minisign signature ({e})"))?;
        let signer = key_id(sig.keynum());
        if signer != self.id {
            return Err(format!(
                "{document} is signed by key {signer}, not by the required key {}",
                self.id
            ));
        }
        // The minisign crate slices what it is given; its panics on a crafted signature are
        // a refusal like any other.
        let verified = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            minisign::verify(&self.pk, &sig, Cursor::new(bytes), true, false, false)
        }));
        if !matches!(verified, Ok(Ok(()))) {
            return Err(format!(
                "{document} does not match its signature: it was changed after signing"
            ));
        }
        let comment = sig.trusted_comment().unwrap_or_default();
        if comment != trusted_comment(document) {
            return Err(format!(
                "{document}{SUFFIX} signs another document ({comment:?})"
            ));
        }
        Ok(())
    }
}

/// The shape minisign's format fixes, checked before the crate sees the text: four lines,
/// the signature line 74 bytes (algorithm, key number, Ed25519 signature) and the global
/// signature 64, in at most 4 KiB.
fn well_formed(signature: &[u8]) -> Result<&str, &'static str> {
    use base64::Engine as _;
    if signature.len() > 4096 {
        return Err("over 4 KiB");
    }
    let text = std::str::from_utf8(signature).map_err(|_| "not UTF-8")?;
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() != 4 || !lines[0].starts_with("untrusted comment: ") {
        return Err("not four lines");
    }
    if !lines[2].starts_with("trusted comment: ") {
        return Err("no trusted comment");
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let sig = b64
        .decode(lines[1].trim())
        .map_err(|_| "its signature is not base64")?;
    let global = b64
        .decode(lines[3].trim())
        .map_err(|_| "its global signature is not base64")?;
    if sig.len() != 74 || global.len() != 64 {
        return Err("signatures of the wrong length");
    }
    Ok(text)
}

/// The key id a signature entry claims, for `inspect`; not a verification.
pub fn signer_of(signature: &[u8]) -> Option<String> {
    let sig = SignatureBox::from_string(well_formed(signature).ok()?).ok()?;
    Some(key_id(sig.keynum()))
}

static REQUIRED: RwLock<Option<Arc<Verifier>>> = RwLock::new(None);
static SIGNER: RwLock<Option<Arc<Signer>>> = RwLock::new(None);
static LAST_SIGNER: RwLock<Option<String>> = RwLock::new(None);

/// Signs every archive this process writes from now on with this key.
pub fn signing(signer: Option<Signer>) {
    if let Ok(mut s) = SIGNER.write() {
        *s = signer.map(Arc::new);
    }
}

/// The key archives are signed with, if any.
pub fn signer() -> Option<Arc<Signer>> {
    SIGNER.read().ok().and_then(|s| s.clone())
}

/// Records who signed the last manifest read (for `inspect`).
pub(crate) fn saw_signer(id: Option<String>) {
    if let Ok(mut s) = LAST_SIGNER.write() {
        *s = id;
    }
}

/// The key id that signed the last manifest this process read, if it was signed.
pub fn last_signer() -> Option<String> {
    LAST_SIGNER.read().ok().and_then(|s| s.clone())
}

/// The format version of a signed archive: its signature entries are a new kind of entry,
/// which readers of 1.x would refuse as unexpected (spec/FORMAT.md §5).
pub const SIGNED_FORMAT_VERSION: &str = "2.0.0";

/// Requires every archive this process reads to be signed by this key.
pub fn require(verifier: Option<Verifier>) {
    // A poisoned lock still holds the requirement: this must never fail open.
    let mut r = REQUIRED.write().unwrap_or_else(|e| e.into_inner());
    *r = verifier.map(Arc::new);
}

/// The key every archive read must be signed by, if one is required.
pub fn required() -> Option<Arc<Verifier>> {
    REQUIRED.read().unwrap_or_else(|e| e.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_key_bytes_and_document() {
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let signer = Signer {
            id: key_id(kp.sk.keynum()),
            pk: Some(kp.pk.clone()),
            sk: kp.sk,
        };
        let v = Verifier {
            id: key_id(kp.pk.keynum()),
            pk: kp.pk,
        };
        let sig = signer.sign("manifest.json", b"{}").unwrap();
        v.verify("manifest.json", b"{}", &sig).unwrap();
        assert!(
            v.verify("manifest.json", b"{ }", &sig)
                .unwrap_err()
                .contains("changed after signing")
        );
        assert!(
            v.verify("prelude.json", b"{}", &sig)
                .unwrap_err()
                .contains("signs another document")
        );
        assert!(
            v.verify("manifest.json", b"{}", b"junk")
                .unwrap_err()
                .contains("not a minisign signature")
        );
        // A genuine signature with its global signature cut short: refused, not a panic.
        let text = String::from_utf8(sig.clone()).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines[3] = "AAAA";
        let cut = lines.join("\n");
        assert!(
            v.verify("manifest.json", b"{}", cut.as_bytes())
                .unwrap_err()
                .contains("wrong length")
        );
        let other = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let v2 = Verifier {
            id: key_id(other.pk.keynum()),
            pk: other.pk,
        };
        assert!(
            v2.verify("manifest.json", b"{}", &sig)
                .unwrap_err()
                .contains("not by the required key")
        );
        assert_eq!(signer_of(&sig).as_deref(), Some(signer.key_id()));
    }
}
