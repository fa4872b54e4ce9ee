//! Backup media in the report: the `Body::Backup` findings (the backup findings
//! contract: events `verify`, `seal`, `mount`, `unmount`, `over_window`, `stale`) folded
//! into one summary per medium — last verification and its result, hours connected,
//! whether it stayed offline. Unknown keys are ignored; every key but `event` and
//! `medium` is optional, and a finding without those two is skipped.

use super::catalog::Catalog;
use super::shown;
use crate::inventory::output::{local_time, offset_str};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Media summarised at most (further media are left out).
pub const MAX_MEDIA: usize = 256;
/// Problems listed per medium.
pub const MAX_PROBLEMS: usize = 5;

/// One backup finding as received.
#[derive(Clone, Debug, PartialEq)]
pub struct RawBackup {
    /// The agent that sent it.
    pub agent: String,
    /// When the agent recorded the finding, µs (used when the body has no `at_us`).
    pub at_us: u64,
    /// The body.
    pub body: Map<String, Value>,
}

/// One medium in the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MediumSummary {
    /// Medium name.
    pub medium: String,
    /// Filesystem label or UUID.
    pub label: Option<String>,
    /// Agents that reported it.
    pub agents: Vec<String>,
    /// Last verification, local time.
    pub last_verify: Option<String>,
    /// `ok`, `differences`, `failed`, `never`.
    pub result: &'static str,
    /// Its label.
    pub result_label: String,
    /// Mode label.
    pub mode: Option<String>,
    /// "files 120, ok 118, modified 1, missing 1".
    pub counts: Option<String>,
    /// The verification's message.
    pub message: Option<String>,
    /// Problems (the first few).
    pub problems: Vec<String>,
    /// Generation flagged as possibly encrypted.
    pub flagged: bool,
    /// Hours connected in total (unmount events).
    pub hours_connected: f64,
    /// Its label.
    pub hours_label: String,
    /// Mounts recorded.
    pub mounts: u64,
    /// Times it stayed connected beyond its window.
    pub over_window: u64,
    /// `offline`, `connected`, `over_window`, `unknown`.
    pub offline: &'static str,
    /// Its label.
    pub offline_label: String,
    /// Days since the last verification, when a `stale` event says so.
    pub stale_days: Option<f64>,
    /// Its label.
    pub stale_label: Option<String>,
}

#[derive(Default)]
struct Acc {
    label: Option<String>,
    agents: Vec<String>,
    verify: Option<(u64, Map<String, Value>)>,
    last_mount_event: Option<(u64, bool)>,
    connected_s: f64,
    mounts: u64,
    over_window: u64,
    last_over_us: u64,
    stale: Option<(u64, f64)>,
    flagged_seal: bool,
}

fn s<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

fn finite(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
        .filter(|x| x.is_finite() && *x >= 0.0)
}

/// Folds the findings into one summary per medium, by medium name. `now_us` is the
/// report's time (a medium mounted and never unmounted counts as connected now).
pub fn summarise(raw: &[RawBackup], _now_us: u64, off: i32, c: &Catalog) -> Vec<MediumSummary> {
    let mut media: BTreeMap<String, Acc> = BTreeMap::new();
    for r in raw {
        let (Some(event), Some(medium)) = (s(&r.body, "event"), s(&r.body, "medium")) else {
            continue;
        };
        if !media.contains_key(medium) && media.len() >= MAX_MEDIA {
            continue;
        }
        let at = r
            .body
            .get("at_us")
            .and_then(Value::as_i64)
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(r.at_us);
        let a = media.entry(shown(medium)).or_default();
        if !a.agents.contains(&r.agent) && a.agents.len() < 16 {
            a.agents.push(r.agent.clone());
        }
        if let Some(l) = s(&r.body, "fs_label").or_else(|| s(&r.body, "fs_uuid")) {
            a.label = Some(shown(l));
        }
        match event {
            "verify" if a.verify.as_ref().is_none_or(|(t, _)| at >= *t) => {
                a.verify = Some((at, r.body.clone()));
            }
            "seal" if r.body.get("flagged").and_then(Value::as_bool) == Some(true) => {
                a.flagged_seal = true;
            }
            "mount" | "unmount" => {
                let mounted = event == "mount";
                if mounted {
                    a.mounts += 1;
                } else if let Some(x) = finite(r.body.get("connected_seconds")) {
                    a.connected_s += x;
                }
                if a.last_mount_event.is_none_or(|(t, _)| at >= t) {
                    a.last_mount_event = Some((at, mounted));
                }
            }
            "over_window" => {
                a.over_window += 1;
                a.last_over_us = a.last_over_us.max(at);
            }
            "stale" => {
                if let Some(d) = finite(r.body.get("days_since_verified")) {
                    if a.stale.is_none_or(|(t, _)| at >= t) {
                        a.stale = Some((at, d));
                    }
                }
            }
            _ => {}
        }
    }
    media
        .into_iter()
        .map(|(medium, a)| {
            let v = a.verify.as_ref();
            let result = match v.and_then(|(_, m)| s(m, "result")) {
                Some("ok") => "ok",
                Some("differences") => "differences",
                Some(_) => "failed",
                None => "never",
            };
            let counts = v
                .and_then(|(_, m)| m.get("counts"))
                .and_then(Value::as_object)
                .map(|cm| {
                    ["files", "ok", "modified", "missing", "added", "unreadable"]
                        .iter()
                        .filter_map(|k| cm.get(*k).and_then(Value::as_u64).map(|n| (k, n)))
                        .filter(|(k, n)| **k == "files" || **k == "ok" || *n > 0)
                        .map(|(k, n)| format!("{k} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                });
            let problems: Vec<String> = v
                .and_then(|(_, m)| m.get("problems"))
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter_map(Value::as_object)
                        .take(MAX_PROBLEMS)
                        .map(|p| {
                            let path = s(p, "path").unwrap_or("?");
                            let st = s(p, "status").unwrap_or("?");
                            shown(&format!("{st}: {path}"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let flagged = a.flagged_seal
                || v.and_then(|(_, m)| m.get("flagged"))
                    .and_then(Value::as_bool)
                    == Some(true);
            // Offline: the medium's last mount event was an unmount, and it never stayed
            // beyond its window after that (疑義解釈 その1 問49: a NAS counts as offline
            // only if disconnected except during transfer).
            let unmounted_since_over = a
                .last_mount_event
                .is_some_and(|(t, mounted)| !mounted && t > a.last_over_us);
            let offline = if a.over_window > 0 && !unmounted_since_over {
                "over_window"
            } else {
                match a.last_mount_event {
                    Some((_, true)) => "connected",
                    Some((_, false)) => "offline",
                    None => "unknown",
                }
            };
            let hours = (a.connected_s / 360.0).round() / 10.0;
            MediumSummary {
                medium,
                label: a.label,
                agents: a.agents.iter().map(|x| shown(x)).collect(),
                last_verify: v.map(|(t, _)| format!("{} {}", local_time(*t, off), offset_str(off))),
                result,
                result_label: c.get(&format!("backup.{result}")).to_owned(),
                mode: v
                    .and_then(|(_, m)| s(m, "mode"))
                    .and_then(|m| c.try_get(&format!("backup.{m}")))
                    .map(str::to_owned),
                counts: counts.filter(|x| !x.is_empty()),
                message: v.and_then(|(_, m)| s(m, "message")).map(shown),
                problems,
                flagged,
                hours_connected: hours,
                hours_label: c.fill("backup.hours", &[("hours", &format!("{hours:.1}"))]),
                mounts: a.mounts,
                over_window: a.over_window,
                offline,
                offline_label: c
                    .get(match offline {
                        "over_window" => "backup.offline_over",
                        "connected" => "backup.offline_connected",
                        "offline" => "backup.offline_yes",
                        _ => "backup.offline_unknown",
                    })
                    .to_owned(),
                stale_days: a.stale.map(|(_, d)| d),
                stale_label: a.stale.map(|(_, d)| {
                    c.fill(
                        "backup.stale",
                        &[("days", &format!("{}", d.floor() as u64))],
                    )
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::output::Lang;
    use serde_json::json;

    fn raw(v: Value) -> RawBackup {
        RawBackup {
            agent: "backup-1".into(),
            at_us: 0,
            body: v.as_object().unwrap().clone(),
        }
    }

    const T: i64 = 1_791_158_400_000_000;

    #[test]
    fn a_medium_verified_ok_and_unmounted_is_offline() {
        let c = Catalog::of(Lang::Ja);
        let r = summarise(
            &[
                raw(json!({"event": "mount", "medium": "nas-a", "at_us": T, "fs_label": "BK-A"})),
                raw(
                    json!({"event": "verify", "medium": "nas-a", "at_us": T + 60_000_000, "result": "ok", "mode": "full",
                    "counts": {"files": 10, "ok": 10, "modified": 0, "missing": 0, "added": 0, "unreadable": 0}}),
                ),
                raw(
                    json!({"event": "unmount", "medium": "nas-a", "at_us": T + 7_200_000_000_i64, "connected_seconds": 7200.0}),
                ),
                raw(json!({"medium": "no-event"})),
                raw(json!({"event": "verify", "result": "ok"})),
            ],
            0,
            9 * 3600,
            c,
        );
        assert_eq!(r.len(), 1);
        let m = &r[0];
        assert_eq!((m.result, m.offline), ("ok", "offline"));
        assert_eq!(m.hours_connected, 2.0);
        assert_eq!(m.label.as_deref(), Some("BK-A"));
        assert_eq!(m.counts.as_deref(), Some("files 10, ok 10"));
        assert_eq!(m.last_verify.as_deref(), Some("2026-10-05 09:01 +09:00"));
        assert_eq!(m.mode.as_deref(), Some("全量"));
    }

    #[test]
    fn over_window_differences_and_stale_are_reported() {
        let c = Catalog::of(Lang::En);
        let r = summarise(
            &[
                raw(json!({"event": "mount", "medium": "usb-b", "at_us": T})),
                raw(
                    json!({"event": "over_window", "medium": "usb-b", "at_us": T + 1, "connected_seconds": 90000.0, "window_seconds": 3600.0}),
                ),
                raw(
                    json!({"event": "verify", "medium": "usb-b", "at_us": T + 2, "result": "differences",
                    "counts": {"files": 5, "ok": 3, "modified": 2}, "problems": [{"path": "a/b.db", "status": "modified", "offset": 0}]}),
                ),
                raw(
                    json!({"event": "stale", "medium": "tape-c", "days_since_verified": 40.5, "last_verified_us": null, "max_days": 30.0}),
                ),
                raw(
                    json!({"event": "verify", "medium": "tape-c", "result": "failed", "message": "manifest missing", "counts": "junk"}),
                ),
            ],
            0,
            0,
            c,
        );
        let usb = r.iter().find(|m| m.medium == "usb-b").unwrap();
        assert_eq!(usb.offline, "over_window");
        assert_eq!(usb.result, "differences");
        assert_eq!(usb.problems, vec!["modified: a/b.db"]);
        assert_eq!(usb.counts.as_deref(), Some("files 5, ok 3, modified 2"));
        let tape = r.iter().find(|m| m.medium == "tape-c").unwrap();
        assert_eq!(tape.result, "failed");
        assert_eq!(tape.offline, "unknown");
        assert_eq!(
            tape.stale_label.as_deref(),
            Some("40 days since the last verification")
        );
        assert_eq!(tape.counts, None);
    }
}
