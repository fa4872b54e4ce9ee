//! Verification checkpoints: which segments of the plan are done and what they found.
//!
//! A checkpoint lives in the state directory (`<state>/verify/<medium>/<manifest
//! id>.<mode>.json`), never on the medium, and is signed with the same key as the
//! manifest so that it cannot mark unread files as verified. It is written atomically
//! (temporary file, fsync, rename) every few seconds during a run and when a run stops,
//! and names the manifest it belongs to by the SHA-256 of the manifest file; a checkpoint
//! for another manifest, mode or plan is ignored. borg saves its check position only at
//! the end, so an always-interrupted check never finishes; here each run continues.

use super::key::Key;
use super::manifest::{
    open, sign, EntryKind, Manifest, ManifestError, MAX_MANIFEST_BYTES, MAX_TEXT,
};
use super::verify::Change;
use super::write_atomic;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Format of checkpoint files.
pub(crate) const FORMAT: &str = "setten.checkpoint/1";

/// A set of segment numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bitset {
    words: Vec<u64>,
    len: u64,
}

impl Bitset {
    pub fn new(len: u64) -> Bitset {
        Bitset {
            words: vec![0; len.div_ceil(64) as usize],
            len,
        }
    }
    pub fn get(&self, i: u64) -> bool {
        i < self.len && self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }
    pub fn set(&mut self, i: u64) {
        if i < self.len {
            self.words[(i / 64) as usize] |= 1 << (i % 64);
        }
    }
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }
    fn to_hex(&self) -> String {
        let bytes: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        hex::encode(&bytes[..self.len.div_ceil(8) as usize])
    }
    fn from_hex(s: &str, len: u64) -> Option<Bitset> {
        if s.len() as u64 != len.div_ceil(8) * 2 {
            return None;
        }
        let mut bytes = hex::decode(s).ok()?;
        // No bits beyond `len`.
        if len % 8 != 0 && bytes.last().is_some_and(|b| b >> (len % 8) != 0) {
            return None;
        }
        bytes.resize(len.div_ceil(64) as usize * 8, 0);
        let words = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        Some(Bitset { words, len })
    }
}

/// What a first bad chunk looked like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Bad {
    pub offset: u64,
    pub change: Change,
}

/// The state of a verification plan.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Checkpoint {
    pub manifest_sha256: [u8; 32],
    pub mode: String,
    pub fraction: Option<f64>,
    pub seed: u64,
    pub done: Bitset,
    pub bad: BTreeMap<u32, Bad>,
    pub unreadable: BTreeMap<u32, String>,
    pub bytes_done: u64,
    pub pass: u64,
    pub created_unix: i64,
    pub updated_unix: i64,
    pub last_pass_completed_unix: Option<i64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    manifest_sha256: String,
    mode: String,
    fraction: Option<f64>,
    seed: u64,
    segments: u64,
    done: String,
    bad: Vec<(u32, Bad)>,
    unreadable: Vec<(u32, String)>,
    bytes_done: u64,
    pass: u64,
    created_unix: i64,
    updated_unix: i64,
    last_pass_completed_unix: Option<i64>,
}

/// Most findings a checkpoint carries.
const MAX_CP_FINDINGS: usize = super::manifest::MAX_ENTRIES;

impl Checkpoint {
    pub fn new(
        digest: [u8; 32],
        mode: &str,
        fraction: Option<f64>,
        seed: u64,
        segments: u64,
    ) -> Self {
        let now = super::now_unix();
        Checkpoint {
            manifest_sha256: digest,
            mode: mode.to_owned(),
            fraction,
            seed,
            done: Bitset::new(segments),
            bad: BTreeMap::new(),
            unreadable: BTreeMap::new(),
            bytes_done: 0,
            pass: 1,
            created_unix: now,
            updated_unix: now,
            last_pass_completed_unix: None,
        }
    }

    pub fn encode(&self, key: &Key) -> Vec<u8> {
        let w = Wire {
            manifest_sha256: hex::encode(self.manifest_sha256),
            mode: self.mode.clone(),
            fraction: self.fraction,
            seed: self.seed,
            segments: self.done.len,
            done: self.done.to_hex(),
            bad: self.bad.iter().map(|(k, v)| (*k, *v)).collect(),
            unreadable: self
                .unreadable
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            bytes_done: self.bytes_done,
            pass: self.pass,
            created_unix: self.created_unix,
            updated_unix: self.updated_unix,
            last_pass_completed_unix: self.last_pass_completed_unix,
        };
        sign(
            FORMAT,
            &serde_json::to_vec(&w).expect("checkpoint serialises"),
            key,
        )
    }

    /// Authenticates and parses a checkpoint, checking it against the manifest it claims
    /// to belong to (file indices must name regular files).
    pub fn decode(bytes: &[u8], key: &Key, m: &Manifest) -> Result<Checkpoint, ManifestError> {
        let body = open(bytes, FORMAT, key)?;
        let w: Wire = serde_json::from_slice(body).map_err(|e| ManifestError::Syntax {
            detail: format!("checkpoint body: {e}"),
        })?;
        let bad = |f: &str, d: &str| ManifestError::Field {
            field: f.into(),
            detail: d.into(),
        };
        let mut digest = [0u8; 32];
        hex::decode_to_slice(&w.manifest_sha256, &mut digest)
            .map_err(|_| bad("manifest_sha256", "not 64 hex digits"))?;
        if w.mode.len() > 16 || w.fraction.is_some_and(|f| !(f > 0.0 && f <= 1.0)) {
            return Err(bad("mode", "unknown mode or fraction"));
        }
        if w.segments > MAX_MANIFEST_BYTES {
            return Err(bad("segments", "too many"));
        }
        let done = Bitset::from_hex(&w.done, w.segments)
            .ok_or_else(|| bad("done", "not a bit set of the plan's size"))?;
        if w.bad.len() > MAX_CP_FINDINGS || w.unreadable.len() > MAX_CP_FINDINGS {
            return Err(bad("bad", "too many"));
        }
        let is_file = |i: u32| {
            m.entries
                .get(i as usize)
                .is_some_and(|e| e.kind == EntryKind::File)
        };
        let mut badm = BTreeMap::new();
        for (i, b) in w.bad {
            if !is_file(i) {
                return Err(bad("bad", "names an entry that is not a file"));
            }
            badm.insert(i, b);
        }
        let mut unr = BTreeMap::new();
        for (i, e) in w.unreadable {
            if !is_file(i) || e.len() > MAX_TEXT {
                return Err(bad("unreadable", "names an entry that is not a file"));
            }
            unr.insert(i, e);
        }
        Ok(Checkpoint {
            manifest_sha256: digest,
            mode: w.mode,
            fraction: w.fraction,
            seed: w.seed,
            done,
            bad: badm,
            unreadable: unr,
            bytes_done: w.bytes_done,
            pass: w.pass.max(1),
            created_unix: w.created_unix,
            updated_unix: w.updated_unix,
            last_pass_completed_unix: w.last_pass_completed_unix,
        })
    }

    pub fn segments(&self) -> u64 {
        self.done.len
    }

    /// Writes atomically.
    pub fn save(&mut self, path: &Path, key: &Key) -> std::io::Result<()> {
        self.updated_unix = super::now_unix();
        write_atomic(path, &self.encode(key), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::manifest::tests::sample_manifest;

    #[test]
    fn bitset_hex() {
        let mut b = Bitset::new(70);
        for i in [0, 9, 63, 64, 69, 70, 1000] {
            b.set(i);
        }
        assert_eq!(b.count(), 5);
        let h = b.to_hex();
        assert_eq!(h.len(), 18);
        assert_eq!(Bitset::from_hex(&h, 70), Some(b.clone()));
        assert_eq!(Bitset::from_hex(&h, 80), None);
        // A bit past the end.
        let mut bytes = hex::decode(&h).unwrap();
        *bytes.last_mut().unwrap() |= 0x80;
        assert_eq!(Bitset::from_hex(&hex::encode(bytes), 70), None);
        assert_eq!(Bitset::from_hex("", 0), Some(Bitset::new(0)));
    }

    #[test]
    fn roundtrip_and_refusals() {
        let m = sample_manifest();
        let key = Key::from_bytes([5; 32]);
        let mut cp = Checkpoint::new([1; 32], "full", None, 0, 10);
        cp.done.set(3);
        cp.bad.insert(
            1,
            Bad {
                offset: 4 << 20,
                change: Change::Content,
            },
        );
        cp.unreadable
            .insert(4, "Input/output error (os error 5)".into());
        cp.bytes_done = 99;
        let bytes = cp.encode(&key);
        assert_eq!(Checkpoint::decode(&bytes, &key, &m).unwrap(), cp);
        assert!(Checkpoint::decode(&bytes, &Key::from_bytes([6; 32]), &m)
            .unwrap_err()
            .is_signature());
        // An index that is not a file (entry 0 is a directory).
        cp.bad.insert(
            0,
            Bad {
                offset: 0,
                change: Change::Content,
            },
        );
        assert!(Checkpoint::decode(&cp.encode(&key), &key, &m).is_err());
        // A manifest is not a checkpoint.
        assert!(matches!(
            Checkpoint::decode(&m.encode(&key), &key, &m),
            Err(ManifestError::Format { .. })
        ));
    }
}
