//! The secret key that signs manifests and checkpoints (HMAC-SHA256).
//!
//! A key file holds exactly 32 random bytes and is readable by its owner only. It lives
//! in the agent's state directory, never on the medium: whoever can write the medium
//! must not be able to re-sign a manifest for what they wrote.

use super::{Error, Result};
use hmac::{KeyInit, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;

type HmacSha256 = hmac::Hmac<Sha256>;

/// A signing key. Its `Debug` output shows only the key id.
#[derive(Clone)]
pub struct Key([u8; KEY_LEN]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(id {})", self.id())
    }
}

/// What [`keygen`] made.
#[derive(Clone, Debug, Serialize)]
pub struct KeyInfo {
    /// The key file.
    pub path: PathBuf,
    /// The key id written into manifests (not secret).
    pub key_id: String,
}

impl Key {
    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Key {
        Key(bytes)
    }

    /// Reads a key file: a regular file of exactly 32 bytes, not accessible by group or
    /// others.
    pub fn load(path: &Path) -> Result<Key> {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| Error::io(path, "open key file", e))?;
        let md = f
            .metadata()
            .map_err(|e| Error::io(path, "stat key file", e))?;
        let mode = md.permissions().mode() & 0o7777;
        if !md.is_file() || mode & 0o077 != 0 {
            return Err(Error::KeyPermissions {
                path: path.to_path_buf(),
                mode: md.mode() & 0o7777,
            });
        }
        let mut buf = Vec::with_capacity(KEY_LEN + 1);
        (&mut f)
            .take(KEY_LEN as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(path, "read key file", e))?;
        let bytes: [u8; KEY_LEN] = buf.as_slice().try_into().map_err(|_| Error::KeyLength {
            path: path.to_path_buf(),
            len: md.len(),
        })?;
        Ok(Key(bytes))
    }

    /// A short public identifier of the key: the first 8 bytes of
    /// SHA-256("setten key id\0" ‖ key), in hex. It tells "signed with another key"
    /// apart from "edited" without revealing the key.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"setten key id\0");
        h.update(self.0);
        let d: [u8; 32] = h.finalize().into();
        hex::encode(&d[..8])
    }

    /// HMAC-SHA256 over the concatenation of `parts`.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// Checks an HMAC-SHA256 over the concatenation of `parts` in constant time.
    pub(crate) fn check_mac(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        for p in parts {
            m.update(p);
        }
        m.verify_slice(tag).is_ok()
    }
}

/// Writes a new random key to `path` with mode 0600. Refuses to overwrite any existing
/// file. The file and its directory are synced before returning.
pub fn keygen(path: &Path) -> Result<KeyInfo> {
    use rand::TryRngCore;
    let mut bytes = [0u8; KEY_LEN];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).map_err(|e| {
        Error::io(
            path,
            "read the OS random source",
            std::io::Error::other(e.to_string()),
        )
    })?;
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::KeyExists {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(Error::io(path, "create key file", e)),
    };
    // The umask may have narrowed the mode further; it can never have widened it, but
    // set it explicitly so the file is exactly 0600.
    let written = f
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|_| f.write_all(&bytes))
        .and_then(|_| f.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(path);
        return Err(Error::io(path, "write key file", e));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir, "sync key directory", e))?;
    }
    let key = Key(bytes);
    Ok(KeyInfo {
        path: path.to_path_buf(),
        key_id: key.id(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_mode_and_no_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        let info = keygen(&p).unwrap();
        let md = std::fs::metadata(&p).unwrap();
        assert_eq!(md.len(), 32);
        assert_eq!(md.permissions().mode() & 0o7777, 0o600);
        assert_eq!(Key::load(&p).unwrap().id(), info.key_id);
        assert!(matches!(keygen(&p), Err(Error::KeyExists { .. })));
        // Two keys differ.
        let q = d.path().join("k2");
        assert_ne!(keygen(&q).unwrap().key_id, info.key_id);
    }

    #[test]
    fn load_refuses_open_or_wrong_length_keys() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        std::fs::write(&p, [7u8; 32]).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Key::load(&p),
            Err(Error::KeyPermissions { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Key::load(&p).is_ok());
        std::fs::write(&p, [7u8; 33]).unwrap();
        assert!(matches!(
            Key::load(&p),
            Err(Error::KeyLength { len: 33, .. })
        ));
    }

    /// RFC 4231 §4.3, test case 2 ("Jefe").
    #[test]
    fn hmac_matches_rfc4231() {
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let k = Key([1; 32]);
        let tag = k.mac(&[b"ab", b"c"]);
        assert!(k.check_mac(&[b"a", b"bc"], &tag));
        assert!(!k.check_mac(&[b"abd"], &tag));
        assert!(!Key([2; 32]).check_mac(&[b"abc"], &tag));
    }
}
