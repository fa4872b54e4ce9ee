//! Scoring a backup source for signs of ransomware before it is sealed.
//!
//! Sealing an already-encrypted tree would make the encrypted data the trusted baseline,
//! so the source is scored first. Four signals, each with a threshold from
//! `rules/backup.toml` ([`ScoringRules`]):
//!
//! * **type mismatch** — high-entropy files (Shannon entropy of the first 64 KiB at or
//!   above 7.5 bits/byte) whose magic bytes do not match their extension, or match no
//!   known type when the extension is unknown;
//! * **ransom notes** — file names that ransomware families leave behind;
//! * **extension churn** — extensions appended to known ones (`report.pdf.lockbit`), or
//!   extensions the previous generation never had;
//! * **change rate** and **entropy rise** against the previous generation's manifest —
//!   files present in both whose content changed, or that became high-entropy.
//!
//! The score never reads anything itself: seal hands it the sample it read while hashing.

use super::manifest::{Entry, EntryKind, Manifest, MAX_TEXT};
use super::Error;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The built-in rules file.
pub const DEFAULT_RULES: &str = include_str!("../../../rules/backup.toml");

/// Most reasons a score carries.
pub const MAX_REASONS: usize = 16;
/// Most example paths a reason carries.
pub const MAX_EXAMPLES: usize = 10;
/// Most ransom-note paths a score lists.
pub const MAX_NOTES: usize = 100;
/// Largest sample a rules file may ask for.
pub const MAX_SAMPLE_BYTES: u64 = 1 << 20;

/// The scoring result stored in every manifest.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Score {
    /// Files large enough to be scored.
    pub files_scored: u64,
    /// Of those, files at or above the entropy threshold.
    pub high_entropy: u64,
    /// High-entropy files whose type does not match their extension.
    pub type_mismatch: u64,
    /// Paths named like ransom notes (at most 100).
    pub ransom_notes: Vec<String>,
    /// Files with an appended or never-seen extension.
    pub extension_churn: u64,
    /// Generation compared against, if any.
    pub previous_generation: Option<u64>,
    /// Files present (same path) in both generations.
    pub common_files: u64,
    /// Of those, files whose content changed.
    pub changed_files: u64,
    /// Of those, files that went from below to above the entropy threshold.
    pub entropy_rise: u64,
    /// Rules over their threshold; empty when the generation looks normal.
    pub reasons: Vec<Reason>,
}

/// A rule over its threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// Rule id: `type_mismatch`, `ransom_note`, `extension_churn`, `change_rate`,
    /// `entropy_rise`.
    pub rule: String,
    /// One line for people.
    pub summary: String,
    /// The measured value (a share from 0 to 1, or a count for `ransom_note`).
    pub value: f64,
    /// The threshold it reached.
    pub threshold: f64,
    /// Files concerned.
    pub count: u64,
    /// Some of them (at most 10).
    pub examples: Vec<String>,
}

impl Score {
    /// The generation looks like ransomware was at work.
    pub fn suspicious(&self) -> bool {
        !self.reasons.is_empty()
    }

    /// Checks the caps of a score read from a manifest.
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        let long = |s: &String| s.len() > MAX_TEXT;
        if self.ransom_notes.len() > MAX_NOTES || self.ransom_notes.iter().any(long) {
            return Err(("ransom_notes".into(), "too many or too long".into()));
        }
        if self.reasons.len() > MAX_REASONS {
            return Err(("reasons".into(), "too many".into()));
        }
        for (i, r) in self.reasons.iter().enumerate() {
            if long(&r.rule)
                || long(&r.summary)
                || r.examples.len() > MAX_EXAMPLES
                || r.examples.iter().any(long)
                || !r.value.is_finite()
                || !r.threshold.is_finite()
            {
                return Err((
                    format!("reasons[{i}]"),
                    "too long, too many examples or not a finite number".into(),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    thresholds: Thresholds,
    #[serde(default)]
    opaque_extensions: Vec<String>,
    #[serde(rename = "type", default)]
    types: Vec<TypeFile>,
    ransom_notes: NotesFile,
}

/// Thresholds of the scoring rules (see `rules/backup.toml` for their meaning).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // each is documented in rules/backup.toml, where people edit them
pub struct Thresholds {
    pub entropy_bits: f64,
    pub sample_bytes: u64,
    pub min_sample_bytes: u64,
    pub type_mismatch_share: f64,
    pub type_mismatch_min: u64,
    pub ransom_notes_min: u64,
    pub extension_churn_share: f64,
    pub extension_churn_min: u64,
    pub change_rate_share: f64,
    pub change_rate_min_common: u64,
    pub entropy_rise_share: f64,
    pub entropy_rise_min: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TypeFile {
    id: String,
    extensions: Vec<String>,
    #[serde(default)]
    magic: Vec<MagicFile>,
    #[serde(default)]
    text: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MagicFile {
    at: u64,
    hex: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotesFile {
    names: Vec<String>,
}

#[derive(Clone, Debug)]
struct FileType {
    id: String,
    magic: Vec<(usize, Vec<u8>)>,
    text: bool,
}

/// Loaded, checked scoring rules.
#[derive(Clone, Debug)]
pub struct ScoringRules {
    /// Thresholds.
    pub thresholds: Thresholds,
    types: Vec<FileType>,
    by_ext: HashMap<Vec<u8>, usize>,
    opaque: HashSet<Vec<u8>>,
    notes: Vec<Vec<u8>>,
}

/// What the score learns from one file's sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sampled {
    /// Entropy in hundredths of a bit per byte, if the file was large enough.
    pub entropy_cb: Option<u16>,
    /// High-entropy and not of the type its extension promises.
    pub mismatch: bool,
}

impl ScoringRules {
    /// The built-in rules.
    pub fn defaults() -> ScoringRules {
        ScoringRules::parse("rules/backup.toml", DEFAULT_RULES).expect("built-in rules load")
    }

    /// Loads a rules file.
    pub fn load(path: &Path) -> Result<ScoringRules, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io(path, "read scoring rules", e))?;
        ScoringRules::parse(&path.display().to_string(), &text)
    }

    /// Parses and checks rules text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<ScoringRules, Error> {
        let bad = |detail: String| Error::Rules {
            file: file.to_owned(),
            detail,
        };
        let f: RulesFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let t = &f.thresholds;
        for (name, v) in [
            ("type_mismatch_share", t.type_mismatch_share),
            ("extension_churn_share", t.extension_churn_share),
            ("change_rate_share", t.change_rate_share),
            ("entropy_rise_share", t.entropy_rise_share),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(bad(format!("thresholds.{name}: {v} is not in (0, 1]")));
            }
        }
        if !(t.entropy_bits > 0.0 && t.entropy_bits <= 8.0) {
            return Err(bad("thresholds.entropy_bits: not in (0, 8]".into()));
        }
        if t.sample_bytes == 0
            || t.sample_bytes > MAX_SAMPLE_BYTES
            || t.min_sample_bytes > t.sample_bytes
        {
            return Err(bad(
                "thresholds.sample_bytes: must be 1 to 1 MiB and at least min_sample_bytes".into(),
            ));
        }
        let ext_ok = |e: &str| {
            !e.is_empty()
                && e.len() <= 16
                && e.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        let mut rules = ScoringRules {
            thresholds: f.thresholds.clone(),
            types: Vec::new(),
            by_ext: HashMap::new(),
            opaque: HashSet::new(),
            notes: Vec::new(),
        };
        for e in &f.opaque_extensions {
            if !ext_ok(e) {
                return Err(bad(format!(
                    "opaque_extensions: {e:?} is not a lower-case extension without dot"
                )));
            }
            rules.opaque.insert(e.as_bytes().to_vec());
        }
        let mut ids = HashSet::new();
        for (i, ty) in f.types.iter().enumerate() {
            if !ids.insert(ty.id.clone()) {
                return Err(bad(format!("type[{i}]: duplicate id {:?}", ty.id)));
            }
            if ty.text != ty.magic.is_empty() {
                return Err(bad(format!(
                    "type {:?}: give either magic or text = true",
                    ty.id
                )));
            }
            let mut magic = Vec::new();
            for m in &ty.magic {
                let b = hex::decode(&m.hex)
                    .ok()
                    .filter(|b| !b.is_empty() && b.len() <= 32)
                    .ok_or_else(|| {
                        bad(format!(
                            "type {:?}: magic {:?} is not 1-32 hex bytes",
                            ty.id, m.hex
                        ))
                    })?;
                if m.at + b.len() as u64 > t.min_sample_bytes.max(1024) {
                    return Err(bad(format!(
                        "type {:?}: magic at {} lies beyond the sample",
                        ty.id, m.at
                    )));
                }
                magic.push((m.at as usize, b));
            }
            let idx = rules.types.len();
            for e in &ty.extensions {
                if !ext_ok(e) {
                    return Err(bad(format!(
                        "type {:?}: extension {e:?} is not lower-case without dot",
                        ty.id
                    )));
                }
                if rules.by_ext.insert(e.as_bytes().to_vec(), idx).is_some()
                    || rules.opaque.contains(e.as_bytes())
                {
                    return Err(bad(format!(
                        "type {:?}: extension {e:?} listed twice",
                        ty.id
                    )));
                }
            }
            rules.types.push(FileType {
                id: ty.id.clone(),
                magic,
                text: ty.text,
            });
        }
        for n in &f.ransom_notes.names {
            if n.is_empty() || n.len() > 255 || n.contains('/') || n == "*" {
                return Err(bad(format!(
                    "ransom_notes.names: {n:?} is not a file-name pattern"
                )));
            }
            rules.notes.push(n.to_ascii_lowercase().into_bytes());
        }
        Ok(rules)
    }

    /// How many leading bytes of a file the score wants.
    pub fn sample_bytes(&self) -> usize {
        self.thresholds.sample_bytes as usize
    }

    fn entropy_threshold_cb(&self) -> u16 {
        (self.thresholds.entropy_bits * 100.0).round() as u16
    }

    /// The type whose magic the sample carries, if any.
    pub fn detect(&self, sample: &[u8]) -> Option<&str> {
        self.types
            .iter()
            .find(|t| t.magic.iter().any(|(at, m)| magic_at(sample, *at, m)))
            .map(|t| t.id.as_str())
    }

    /// Scores one file from its name and the first bytes of its content.
    pub fn sample(&self, name: &[u8], sample: &[u8], size: u64) -> Sampled {
        if size < self.thresholds.min_sample_bytes || sample.is_empty() {
            return Sampled::default();
        }
        let cb = (entropy_bits(sample) * 100.0).round().clamp(0.0, 800.0) as u16;
        let high = cb >= self.entropy_threshold_cb();
        let mismatch = high
            && match extension(name) {
                Some(ext) if self.opaque.contains(&ext) => false,
                Some(ext) => match self.by_ext.get(&ext).map(|&i| &self.types[i]) {
                    Some(t) if t.text => true,
                    Some(t) => !t.magic.iter().any(|(at, m)| magic_at(sample, *at, m)),
                    None => self.detect(sample).is_none(),
                },
                None => self.detect(sample).is_none(),
            };
        Sampled {
            entropy_cb: Some(cb),
            mismatch,
        }
    }

    /// The file name looks like a ransom note.
    pub fn is_ransom_note(&self, name: &[u8]) -> bool {
        let lower = name.to_ascii_lowercase();
        self.notes.iter().any(|p| glob(p, &lower))
    }

    fn known_ext(&self, ext: &[u8]) -> bool {
        self.by_ext.contains_key(ext) || self.opaque.contains(ext)
    }

    /// Scores a tree: `entries` sorted as in a manifest, `mismatch[i]` from
    /// [`ScoringRules::sample`] of entry `i`, against the previous generation if any.
    pub fn score(&self, entries: &[Entry], mismatch: &[bool], prev: Option<&Manifest>) -> Score {
        let t = &self.thresholds;
        let thr = self.entropy_threshold_cb();
        let mut s = Score {
            previous_generation: prev.map(|p| p.generation),
            ..Score::default()
        };
        let mut ex_mismatch = Vec::new();
        let mut ex_churn = Vec::new();
        let mut ex_changed = Vec::new();
        let mut ex_rise = Vec::new();
        let mut files = 0u64;
        let prev_exts: HashSet<Vec<u8>> = prev
            .map(|p| {
                p.entries
                    .iter()
                    .filter(|e| e.kind == EntryKind::File)
                    .filter_map(|e| extension(file_name(&e.path.0)))
                    .collect()
            })
            .unwrap_or_default();
        let prev_file = |path: &[u8]| {
            prev.and_then(|p| p.find(path).map(|i| &p.entries[i]))
                .filter(|e| e.kind == EntryKind::File)
        };
        let push = |v: &mut Vec<String>, e: &Entry| {
            if v.len() < MAX_EXAMPLES {
                v.push(e.path.to_string());
            }
        };
        for (i, e) in entries.iter().enumerate() {
            if e.kind != EntryKind::File {
                continue;
            }
            files += 1;
            let name = file_name(&e.path.0);
            if let Some(cb) = e.entropy_cb {
                s.files_scored += 1;
                if cb >= thr {
                    s.high_entropy += 1;
                }
            }
            if mismatch.get(i).copied().unwrap_or(false) {
                s.type_mismatch += 1;
                push(&mut ex_mismatch, e);
            }
            if self.is_ransom_note(name) && s.ransom_notes.len() < MAX_NOTES {
                s.ransom_notes.push(e.path.to_string());
            }
            let ext = extension(name);
            let appended = ext.as_ref().is_some_and(|x| !self.known_ext(x))
                && inner_extension(name).is_some_and(|x| self.known_ext(&x));
            let stem = strip_extension(&e.path.0);
            let renamed = prev.is_some()
                && prev_file(&e.path.0).is_none()
                && stem.is_some_and(|st| prev_file(st).is_some())
                && ext.as_ref().is_some_and(|x| !self.known_ext(x));
            let new_ext = prev.is_some()
                && prev_file(&e.path.0).is_none()
                && ext
                    .as_ref()
                    .is_some_and(|x| !self.known_ext(x) && !prev_exts.contains(x));
            if appended || renamed || new_ext {
                s.extension_churn += 1;
                push(&mut ex_churn, e);
            }
            if let Some(p) = prev_file(&e.path.0) {
                s.common_files += 1;
                if p.sha256 != e.sha256 {
                    s.changed_files += 1;
                    push(&mut ex_changed, e);
                    let was = p.entropy_cb.unwrap_or(0);
                    if was < thr && e.entropy_cb.is_some_and(|c| c >= thr) {
                        s.entropy_rise += 1;
                        push(&mut ex_rise, e);
                    }
                }
            }
        }
        let share = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        let pct = |v: f64| format!("{:.0}%", v * 100.0);
        let v = share(s.type_mismatch, s.files_scored);
        if s.type_mismatch >= t.type_mismatch_min && v >= t.type_mismatch_share {
            s.reasons.push(Reason {
                rule: "type_mismatch".into(),
                summary: format!(
                    "{} of {} scored files ({}) are high-entropy and their content does not match their extension (threshold {})",
                    s.type_mismatch, s.files_scored, pct(v), pct(t.type_mismatch_share)
                ),
                value: v,
                threshold: t.type_mismatch_share,
                count: s.type_mismatch,
                examples: ex_mismatch,
            });
        }
        let notes = s.ransom_notes.len() as u64;
        if notes >= t.ransom_notes_min.max(1) {
            s.reasons.push(Reason {
                rule: "ransom_note".into(),
                summary: format!("{notes} file(s) named like a ransom note"),
                value: notes as f64,
                threshold: t.ransom_notes_min.max(1) as f64,
                count: notes,
                examples: s.ransom_notes.iter().take(MAX_EXAMPLES).cloned().collect(),
            });
        }
        let v = share(s.extension_churn, files);
        if s.extension_churn >= t.extension_churn_min && v >= t.extension_churn_share {
            s.reasons.push(Reason {
                rule: "extension_churn".into(),
                summary: format!(
                    "{} of {} files ({}) carry an appended or never-seen extension (threshold {})",
                    s.extension_churn,
                    files,
                    pct(v),
                    pct(t.extension_churn_share)
                ),
                value: v,
                threshold: t.extension_churn_share,
                count: s.extension_churn,
                examples: ex_churn,
            });
        }
        if s.common_files >= t.change_rate_min_common {
            let v = share(s.changed_files, s.common_files);
            if v >= t.change_rate_share {
                s.reasons.push(Reason {
                    rule: "change_rate".into(),
                    summary: format!(
                        "{} of the {} files also in generation {} ({}) changed content (threshold {})",
                        s.changed_files,
                        s.common_files,
                        s.previous_generation.unwrap_or(0),
                        pct(v),
                        pct(t.change_rate_share)
                    ),
                    value: v,
                    threshold: t.change_rate_share,
                    count: s.changed_files,
                    examples: ex_changed,
                });
            }
        }
        let v = share(s.entropy_rise, s.common_files);
        if s.entropy_rise >= t.entropy_rise_min && v >= t.entropy_rise_share {
            s.reasons.push(Reason {
                rule: "entropy_rise".into(),
                summary: format!(
                    "{} of the {} files also in generation {} ({}) became high-entropy (threshold {})",
                    s.entropy_rise,
                    s.common_files,
                    s.previous_generation.unwrap_or(0),
                    pct(v),
                    pct(t.entropy_rise_share)
                ),
                value: v,
                threshold: t.entropy_rise_share,
                count: s.entropy_rise,
                examples: ex_rise,
            });
        }
        s
    }
}

fn magic_at(sample: &[u8], at: usize, magic: &[u8]) -> bool {
    at.checked_add(magic.len())
        .and_then(|end| sample.get(at..end))
        .is_some_and(|s| s == magic)
}

/// Shannon entropy of `data` in bits per byte (0 for empty input).
pub fn entropy_bits(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0u64; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// The last component of a raw path.
pub(crate) fn file_name(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

/// The lower-case extension of a file name (after the last dot, not a leading dot, 1-16
/// bytes), if any.
pub fn extension(name: &[u8]) -> Option<Vec<u8>> {
    let dot = name.iter().rposition(|&b| b == b'.')?;
    if dot == 0 {
        return None;
    }
    let ext = &name[dot + 1..];
    (!ext.is_empty() && ext.len() <= 16).then(|| ext.to_ascii_lowercase())
}

/// The extension before the last one (`pdf` in `report.pdf.lockbit`).
fn inner_extension(name: &[u8]) -> Option<Vec<u8>> {
    let dot = name.iter().rposition(|&b| b == b'.')?;
    extension(&name[..dot])
}

/// The path without its last extension (`a/report.pdf` for `a/report.pdf.lockbit`).
fn strip_extension(path: &[u8]) -> Option<&[u8]> {
    let name = file_name(path);
    extension(name)?;
    let dot = path.iter().rposition(|&b| b == b'.')?;
    Some(&path[..dot])
}

/// Matches `name` against `pattern`, where `*` matches any run of bytes (including
/// none). Both are already lower-case. Linear-time two-pointer match with backtracking to
/// the last star.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::manifest::RawPath;

    fn rules() -> ScoringRules {
        ScoringRules::defaults()
    }

    fn random(n: usize, seed: u64) -> Vec<u8> {
        // SplitMix64: deterministic "encrypted" bytes.
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                (z ^ (z >> 31)) as u8
            })
            .collect()
    }

    #[test]
    fn entropy_of_known_inputs() {
        assert_eq!(entropy_bits(b""), 0.0);
        assert_eq!(entropy_bits(&[0u8; 1000]), 0.0);
        assert!((entropy_bits(b"abab") - 1.0).abs() < 1e-12);
        let all: Vec<u8> = (0..=255u8).collect();
        assert!((entropy_bits(&all) - 8.0).abs() < 1e-12);
        assert!(entropy_bits(&random(65536, 1)) > 7.99);
        let text = "患者IDと検査結果の一覧です。The quick brown fox. ".repeat(2000);
        assert!(entropy_bits(text.as_bytes()) < 6.0);
    }

    #[test]
    fn magic_table() {
        let r = rules();
        let with = |prefix: &[u8], at: usize| {
            let mut v = random(8192, 7);
            v[at..at + prefix.len()].copy_from_slice(prefix);
            v
        };
        // PNG signature, RFC 2083 §3.1.
        assert_eq!(r.detect(&with(b"\x89PNG\r\n\x1a\n", 0)), Some("png"));
        // "%PDF-", ISO 32000-1 §7.5.2.
        assert_eq!(r.detect(&with(b"%PDF-1.7", 0)), Some("pdf"));
        // DICOM: 128-byte preamble then "DICM", PS3.10 §7.1.
        assert_eq!(r.detect(&with(b"DICM", 128)), Some("dicom"));
        // gzip ID1 ID2, RFC 1952 §2.3.1.
        assert_eq!(r.detect(&with(b"\x1f\x8b\x08", 0)), Some("gzip"));
        assert_eq!(r.detect(&with(b"PK\x03\x04", 0)), Some("zip"));
        assert_eq!(r.detect(b"DIC"), None);

        let s = |name: &str, data: &[u8]| r.sample(name.as_bytes(), data, data.len() as u64);
        // Genuine high-entropy formats are not mismatched.
        assert!(!s("a.png", &with(b"\x89PNG\r\n\x1a\n", 0)).mismatch);
        assert!(!s("b.docx", &with(b"PK\x03\x04", 0)).mismatch);
        assert!(!s("1.2.840.10008", &with(b"DICM", 128)).mismatch);
        assert!(!s("job.vbk", &random(8192, 3)).mismatch);
        // Random bytes behind a known extension, in a text file, or with an unknown one.
        assert!(s("a.png", &random(8192, 4)).mismatch);
        assert!(s("a.csv", &random(8192, 5)).mismatch);
        assert!(s("a.docx.lockbit", &random(8192, 6)).mismatch);
        assert!(s("noext", &random(8192, 8)).mismatch);
        // Low entropy never counts; small files are not scored.
        assert!(!s("a.png", &[b'x'; 8192]).mismatch);
        assert_eq!(s("a.png", &random(100, 9)), Sampled::default());
    }

    #[test]
    fn ransom_note_names() {
        let r = rules();
        for n in [
            "Restore-My-Files.txt",
            "_readme.txt",
            "KRAB-DECRYPT.txt",
            "HOW_TO_RECOVER_FILES.html",
            "!!!_READ_ME_!!!.txt",
            "RECOVER-abcd-FILES.txt",
        ] {
            assert!(r.is_ransom_note(n.as_bytes()), "{n}");
        }
        for n in [
            "readme.txt",
            "README.md",
            "restore.log",
            "info.txt",
            "project-readme.txt",
        ] {
            assert!(!r.is_ransom_note(n.as_bytes()), "{n}");
        }
    }

    #[test]
    fn glob_edge_cases() {
        assert!(glob(b"a*b*c", b"aXXbYYc"));
        assert!(glob(b"a*b*c", b"abc"));
        assert!(!glob(b"a*b*c", b"acb"));
        assert!(glob(b"*", b""));
        assert!(!glob(b"", b"x"));
        assert!(glob(b"*.txt", b"x.txt.txt"));
        assert!(!glob(b"*.txt", b"x.txt.gz"));
        // Pathological pattern stays fast.
        let name = vec![b'a'; 10_000];
        assert!(!glob(b"*a*a*a*a*a*b", &name));
    }

    #[test]
    fn extensions() {
        assert_eq!(extension(b"a.PDF"), Some(b"pdf".to_vec()));
        assert_eq!(extension(b".bashrc"), None);
        assert_eq!(extension(b"a."), None);
        assert_eq!(inner_extension(b"r.pdf.lockbit"), Some(b"pdf".to_vec()));
        assert_eq!(strip_extension(b"d/r.pdf.x"), Some(&b"d/r.pdf"[..]));
        assert_eq!(strip_extension(b"d.x/r"), None);
    }

    #[test]
    fn rules_file_errors_name_the_key() {
        let bad = DEFAULT_RULES.replace("type_mismatch_share = 0.10", "type_mismatch_share = 1.5");
        let e = ScoringRules::parse("x.toml", &bad).unwrap_err().to_string();
        assert!(
            e.contains("x.toml") && e.contains("type_mismatch_share"),
            "{e}"
        );
        let bad = DEFAULT_RULES.replace("entropy_bits = 7.5", "entropy_bits = 7.5\nfoo = 1");
        let e = ScoringRules::parse("x.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("foo"), "{e}");
        let bad = DEFAULT_RULES.replace("id = \"gif\"", "id = \"png\"");
        assert!(ScoringRules::parse("x.toml", &bad).is_err());
        let bad = DEFAULT_RULES.replace("hex = \"474946383761\"", "hex = \"zz\"");
        assert!(ScoringRules::parse("x.toml", &bad).is_err());
    }

    fn file(path: &str, sha: u8, entropy: u16) -> Entry {
        Entry {
            path: RawPath(path.as_bytes().to_vec()),
            kind: EntryKind::File,
            mode: 0o644,
            mtime: 0,
            mtime_ns: 0,
            size: 10_000,
            sha256: Some([sha; 32]),
            chunks: vec![[sha; 32]],
            target: None,
            entropy_cb: Some(entropy),
        }
    }

    #[test]
    fn a_normal_tree_and_its_successor_are_not_suspicious() {
        let r = rules();
        let gen1: Vec<Entry> = (0..50)
            .map(|i| file(&format!("d/{i:03}.pdf"), 1, 650))
            .collect();
        let s = r.score(&gen1, &[false; 50], None);
        assert!(!s.suspicious(), "{s:?}");
        let prev = Manifest {
            entries: gen1.clone(),
            ..crate::backup::manifest::tests::sample_manifest()
        };
        // Ten changed, five new files of a known type.
        let mut gen2 = gen1.clone();
        for e in gen2.iter_mut().take(10) {
            e.sha256 = Some([2; 32]);
        }
        gen2.extend((50..55).map(|i| file(&format!("d/{i:03}.pdf"), 3, 650)));
        let s = r.score(&gen2, &[false; 55], Some(&prev));
        assert_eq!(
            (s.common_files, s.changed_files, s.extension_churn),
            (50, 10, 0)
        );
        assert!(!s.suspicious(), "{s:?}");
    }

    #[test]
    fn an_encrypted_successor_is_suspicious_for_every_reason() {
        let r = rules();
        let gen1: Vec<Entry> = (0..50)
            .map(|i| file(&format!("d/{i:03}.pdf"), 1, 650))
            .collect();
        let prev = Manifest {
            entries: gen1.clone(),
            ..crate::backup::manifest::tests::sample_manifest()
        };
        // 25 renamed with an appended extension, 25 encrypted in place, one note.
        let mut gen2: Vec<Entry> = (0..25)
            .map(|i| file(&format!("d/{i:03}.pdf.lockbit"), 9, 799))
            .collect();
        gen2.extend((25..50).map(|i| file(&format!("d/{i:03}.pdf"), 9, 799)));
        gen2.push(file("d/Restore-My-Files.txt", 4, 450));
        gen2.sort_by(|a, b| a.path.cmp(&b.path));
        let mism: Vec<bool> = gen2.iter().map(|e| e.entropy_cb == Some(799)).collect();
        let s = r.score(&gen2, &mism, Some(&prev));
        let rules: Vec<&str> = s.reasons.iter().map(|r| r.rule.as_str()).collect();
        assert_eq!(
            rules,
            [
                "type_mismatch",
                "ransom_note",
                "extension_churn",
                "change_rate",
                "entropy_rise"
            ]
        );
        assert_eq!(s.type_mismatch, 50);
        assert_eq!(s.extension_churn, 25);
        assert_eq!(
            (s.common_files, s.changed_files, s.entropy_rise),
            (25, 25, 25)
        );
        assert_eq!(s.ransom_notes, ["d/Restore-My-Files.txt"]);
        assert!(s.reasons.iter().all(|r| r.examples.len() <= MAX_EXAMPLES));
        assert!(s.check().is_ok());
    }
}
