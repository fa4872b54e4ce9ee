//! Backup results as findings for the collector (`Body::Backup`, kind `backup`).
//!
//! Every record is a JSON object with `event` and `medium`, and the keys of its event:
//!
//! | event         | keys besides `event`, `medium`, `at_us`, `fs_uuid`, `fs_label` |
//! |---------------|-----------------------------------------------------------------|
//! | `verify`      | `result` (`ok`, `differences`, `failed`), `mode`, `generation`, `sealed_at`, `counts`, `bytes_read`, `seconds`, `flagged`, `flag_reasons`, `message`, `problems` (at most [`MAX_PROBLEMS`]) |
//! | `seal`        | `generation`, `sealed_at`, `files`, `bytes`, `flagged`, `flag_reasons`, `forced` |
//! | `mount`       | `mount_point`, `device`, `window_seconds` |
//! | `unmount`     | `mount_point`, `device`, `connected_seconds`, `window_seconds` |
//! | `over_window` | `mount_point`, `connected_seconds`, `window_seconds` |
//! | `stale`       | `days_since_verified`, `last_verified_us` (null: never), `max_days` |
//!
//! `failed` means nothing could be claimed: a bad signature, no manifest, an unreadable
//! root, a medium removed mid-run. The collector's report and alerts read these keys;
//! changing one is a change of the findings schema.

use super::{Outcome, SealReport, Status, VerifyReport};
use crate::findings::Body;
use serde_json::{json, Map, Value};

/// Most file problems carried in one `verify` record (the full list is in the agent's
/// own report).
pub const MAX_PROBLEMS: usize = 20;

/// Where a medium was seen, for the records that concern a mounted medium.
#[derive(Clone, Debug, Default)]
pub struct MediumId {
    /// The configured name.
    pub name: String,
    /// Filesystem UUID.
    pub fs_uuid: Option<String>,
    /// Filesystem label.
    pub fs_label: Option<String>,
}

impl MediumId {
    /// A medium known by name only.
    pub fn named(name: &str) -> MediumId {
        MediumId {
            name: name.to_owned(),
            ..MediumId::default()
        }
    }
}

fn base(event: &str, medium: &MediumId, at_us: u64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("event".into(), event.into());
    m.insert("medium".into(), medium.name.clone().into());
    m.insert("at_us".into(), at_us.into());
    if let Some(u) = &medium.fs_uuid {
        m.insert("fs_uuid".into(), u.clone().into());
    }
    if let Some(l) = &medium.fs_label {
        m.insert("fs_label".into(), l.clone().into());
    }
    m
}

/// The record of a verification run.
pub fn verify(medium: &MediumId, at_us: u64, r: &VerifyReport) -> Body {
    let mut m = base("verify", medium, at_us);
    let (result, message) = match &r.outcome {
        Outcome::Interrupted { reason } => ("failed", format!("interrupted: {reason}")),
        _ if r.differences() => (
            "differences",
            format!(
                "{} modified, {} missing, {} added, {} unreadable",
                r.counts.modified, r.counts.missing, r.counts.added, r.counts.unreadable
            ),
        ),
        Outcome::Partial { reason } => ("ok", format!("no difference in what was read ({reason})")),
        Outcome::Complete => ("ok", "every entry matches the manifest".to_owned()),
    };
    m.insert("result".into(), result.into());
    m.insert("mode".into(), r.mode.into());
    m.insert("generation".into(), r.manifest.generation.into());
    m.insert("sealed_at".into(), r.manifest.created.clone().into());
    m.insert(
        "counts".into(),
        json!({
            "files": r.counts.files,
            "ok": r.counts.ok,
            "modified": r.counts.modified,
            "missing": r.counts.missing,
            "added": r.counts.added,
            "unreadable": r.counts.unreadable,
        }),
    );
    m.insert("bytes_read".into(), r.bytes_read.into());
    m.insert("seconds".into(), r.elapsed_secs.into());
    m.insert("flagged".into(), r.manifest.flagged.into());
    m.insert(
        "flag_reasons".into(),
        r.manifest
            .flag_reasons
            .iter()
            .map(|x| Value::from(x.summary.clone()))
            .collect(),
    );
    m.insert("message".into(), message.into());
    let problems: Vec<Value> = r
        .findings
        .iter()
        .filter_map(|f| {
            let mut p = Map::new();
            p.insert("path".into(), f.path.clone().into());
            match &f.status {
                Status::Modified {
                    first_bad_offset, ..
                } => {
                    p.insert("status".into(), "modified".into());
                    p.insert("offset".into(), (*first_bad_offset).into());
                }
                Status::TypeChanged { .. } => {
                    p.insert("status".into(), "modified".into());
                }
                Status::Missing => {
                    p.insert("status".into(), "missing".into());
                }
                Status::Added { .. } => {
                    p.insert("status".into(), "added".into());
                }
                Status::Unreadable { error } => {
                    p.insert("status".into(), "unreadable".into());
                    p.insert("error".into(), error.clone().into());
                }
                Status::ModeChanged => return None,
            }
            Some(Value::Object(p))
        })
        .take(MAX_PROBLEMS)
        .collect();
    m.insert("problems".into(), problems.into());
    Body::Backup(m)
}

/// The record of a verification that could not be done at all (no manifest, bad
/// signature, root unreadable).
pub fn verify_failed(medium: &MediumId, at_us: u64, mode: &str, message: &str) -> Body {
    let mut m = base("verify", medium, at_us);
    m.insert("result".into(), "failed".into());
    m.insert("mode".into(), mode.into());
    m.insert("message".into(), message.into());
    Body::Backup(m)
}

/// The record of a seal, or of a generation that was not sealed because it looked
/// suspicious (`flagged` true, `forced` false, no generation).
pub fn seal(medium: &MediumId, at_us: u64, r: &SealReport, forced: bool) -> Body {
    let mut m = base("seal", medium, at_us);
    m.insert("generation".into(), r.generation.into());
    m.insert(
        "sealed_at".into(),
        super::rfc3339((at_us / 1_000_000) as i64).into(),
    );
    m.insert("files".into(), r.totals.files.into());
    m.insert("bytes".into(), r.totals.bytes.into());
    m.insert("flagged".into(), r.flagged.into());
    m.insert(
        "flag_reasons".into(),
        if r.flagged {
            r.score
                .reasons
                .iter()
                .map(|x| Value::from(x.summary.clone()))
                .collect()
        } else {
            Vec::<Value>::new()
        }
        .into(),
    );
    m.insert("forced".into(), forced.into());
    Body::Backup(m)
}

/// A generation refused at seal for looking suspicious.
pub fn seal_refused(medium: &MediumId, at_us: u64, reasons: &[String]) -> Body {
    let mut m = base("seal", medium, at_us);
    m.insert("flagged".into(), true.into());
    m.insert(
        "flag_reasons".into(),
        reasons.iter().map(|r| Value::from(r.clone())).collect(),
    );
    m.insert("forced".into(), false.into());
    m.insert(
        "message".into(),
        "the generation looks suspicious and was not sealed".into(),
    );
    Body::Backup(m)
}

/// A medium mounted or unmounted.
pub fn mount_event(
    mounted: bool,
    medium: &MediumId,
    at_us: u64,
    mount_point: &str,
    device: &str,
    connected_seconds: Option<f64>,
    window_seconds: Option<f64>,
) -> Body {
    let mut m = base(if mounted { "mount" } else { "unmount" }, medium, at_us);
    m.insert("mount_point".into(), mount_point.into());
    m.insert("device".into(), device.into());
    if let Some(c) = connected_seconds {
        m.insert("connected_seconds".into(), c.into());
    }
    if let Some(w) = window_seconds {
        m.insert("window_seconds".into(), w.into());
    }
    Body::Backup(m)
}

/// A medium connected for longer than its window: it was not offline.
pub fn over_window(
    medium: &MediumId,
    at_us: u64,
    mount_point: &str,
    connected_seconds: f64,
    window_seconds: f64,
) -> Body {
    let mut m = base("over_window", medium, at_us);
    m.insert("mount_point".into(), mount_point.into());
    m.insert("connected_seconds".into(), connected_seconds.into());
    m.insert("window_seconds".into(), window_seconds.into());
    Body::Backup(m)
}

/// A medium not verified for longer than `max_days`.
pub fn stale(medium: &MediumId, at_us: u64, last_verified_us: Option<u64>, max_days: f64) -> Body {
    let mut m = base("stale", medium, at_us);
    let days = last_verified_us.map(|l| at_us.saturating_sub(l) as f64 / 86_400e6);
    m.insert(
        "days_since_verified".into(),
        days.map_or(Value::Null, Value::from),
    );
    m.insert(
        "last_verified_us".into(),
        last_verified_us.map_or(Value::Null, Value::from),
    );
    m.insert("max_days".into(), max_days.into());
    Body::Backup(m)
}
