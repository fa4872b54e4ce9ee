//! Backup media as the UI shows them, folded from the stored `backup` findings (the
//! contract in the agent's `findings.rs`: an `event` and a `medium`, the rest optional).
//! Findings are hostile input like any other: unknown keys are ignored, strings are cut,
//! and the number of media and of connections kept per medium is capped.

use crate::store::{Replay, Store, StoreError};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Media listed at most.
pub const MAX_MEDIA: usize = 500;
/// Connections kept per medium (the latest).
pub const MAX_CONNECTIONS: usize = 200;
/// Problems kept from one verification.
pub const MAX_PROBLEMS: usize = 20;
/// Characters kept of any string from a finding.
pub const MAX_TEXT: usize = 200;

/// The latest verification of a medium.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Verify {
    /// When (µs).
    pub at_us: i64,
    /// `ok`, `differences` or `failed` (anything else is shown as `failed`).
    pub result: String,
    /// `full`, `sample` or `rolling`.
    pub mode: Option<String>,
    /// Manifest generation.
    pub generation: Option<u64>,
    /// Files, ok, modified, missing, added, unreadable (in that order, those present).
    pub counts: Vec<(String, u64)>,
    /// Why it failed, or a summary.
    pub message: Option<String>,
    /// Files with a problem.
    pub problems: Vec<Problem>,
    /// Generation flagged as suspicious at seal.
    pub flagged: bool,
}

/// A file with a problem.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Problem {
    /// Path on the medium.
    pub path: String,
    /// `modified`, `missing`, `added` or `unreadable`.
    pub status: String,
}

/// One connection of the medium (mount to unmount).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Connection {
    /// Mounted at (µs), when known.
    pub from_us: Option<i64>,
    /// Unmounted at (µs); `None` while still connected.
    pub to_us: Option<i64>,
    /// How long, in seconds, when known.
    pub seconds: Option<f64>,
}

/// A backup medium.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Medium {
    /// Name given at seal.
    pub name: String,
    /// Filesystem UUID.
    pub fs_uuid: Option<String>,
    /// Filesystem label.
    pub fs_label: Option<String>,
    /// Agents that reported it.
    pub agents: Vec<String>,
    /// Latest verification.
    pub verify: Option<Verify>,
    /// Latest seal: when and generation.
    pub sealed_us: Option<i64>,
    /// Generation of the latest seal.
    pub sealed_generation: Option<u64>,
    /// Connections, oldest first (the latest [`MAX_CONNECTIONS`]).
    pub connections: Vec<Connection>,
    /// Whether the latest mount event has no unmount after it.
    pub connected: bool,
    /// Times it stayed connected beyond its window.
    pub over_window: u64,
    /// Latest "not verified for N days" report: the days.
    pub stale_days: Option<f64>,
    /// Latest event (µs).
    pub last_event_us: i64,
}

impl Medium {
    /// `offline`, `connected`, `violation` (stayed connected beyond its window) or
    /// `unknown` (no mount events seen).
    pub fn offline_status(&self) -> &'static str {
        if self.over_window > 0 {
            "violation"
        } else if self.connected {
            "connected"
        } else if self.connections.is_empty() {
            "unknown"
        } else {
            "offline"
        }
    }
}

fn text(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k)
        .and_then(Value::as_str)
        .map(|s| s.chars().take(MAX_TEXT).collect())
}

fn int(m: &Map<String, Value>, k: &str) -> Option<i64> {
    m.get(k).and_then(Value::as_i64)
}

fn uint(m: &Map<String, Value>, k: &str) -> Option<u64> {
    m.get(k).and_then(Value::as_u64)
}

fn float(m: &Map<String, Value>, k: &str) -> Option<f64> {
    m.get(k)
        .and_then(Value::as_f64)
        .filter(|f| f.is_finite() && *f >= 0.0)
}

/// Folds backup findings (agent, body) into media, by name.
pub fn fold<'a>(events: impl IntoIterator<Item = (&'a str, Map<String, Value>)>) -> Vec<Medium> {
    let mut evs: Vec<(i64, &str, Map<String, Value>)> = events
        .into_iter()
        .filter_map(|(agent, m)| Some((int(&m, "at_us")?, agent, m)))
        .collect();
    evs.sort_by_key(|(at, _, _)| *at);
    let mut media: BTreeMap<String, Medium> = BTreeMap::new();
    for (at, agent, m) in evs {
        let (Some(event), Some(name)) = (text(&m, "event"), text(&m, "medium")) else {
            continue;
        };
        if !media.contains_key(&name) && media.len() >= MAX_MEDIA {
            continue;
        }
        let md = media.entry(name.clone()).or_insert_with(|| Medium {
            name,
            ..Medium::default()
        });
        md.last_event_us = md.last_event_us.max(at);
        if !md.agents.iter().any(|a| a == agent) {
            md.agents.push(agent.chars().take(64).collect());
        }
        if let Some(u) = text(&m, "fs_uuid") {
            md.fs_uuid = Some(u);
        }
        if let Some(l) = text(&m, "fs_label") {
            md.fs_label = Some(l);
        }
        match event.as_str() {
            "verify" => {
                let result = match text(&m, "result").as_deref() {
                    Some("ok") => "ok",
                    Some("differences") => "differences",
                    _ => "failed",
                };
                let counts = m
                    .get("counts")
                    .and_then(Value::as_object)
                    .map(|c| {
                        ["files", "ok", "modified", "missing", "added", "unreadable"]
                            .iter()
                            .filter_map(|k| Some(((*k).to_owned(), c.get(*k)?.as_u64()?)))
                            .collect()
                    })
                    .unwrap_or_default();
                let problems = m
                    .get("problems")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_object)
                            .take(MAX_PROBLEMS)
                            .map(|p| Problem {
                                path: text(p, "path").unwrap_or_default(),
                                status: text(p, "status").unwrap_or_default(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                md.verify = Some(Verify {
                    at_us: at,
                    result: result.into(),
                    mode: text(&m, "mode"),
                    generation: uint(&m, "generation"),
                    counts,
                    message: text(&m, "message"),
                    problems,
                    flagged: m.get("flagged").and_then(Value::as_bool).unwrap_or(false),
                });
            }
            "seal" => {
                md.sealed_us = Some(at);
                md.sealed_generation = uint(&m, "generation");
            }
            "mount" => {
                md.connected = true;
                md.connections.push(Connection {
                    from_us: Some(at),
                    to_us: None,
                    seconds: None,
                });
            }
            "unmount" => {
                md.connected = false;
                let secs = float(&m, "connected_seconds");
                match md.connections.last_mut() {
                    Some(c) if c.to_us.is_none() => {
                        c.to_us = Some(at);
                        c.seconds =
                            secs.or_else(|| c.from_us.map(|f| (at.saturating_sub(f)) as f64 / 1e6));
                    }
                    _ => md.connections.push(Connection {
                        from_us: secs.map(|s| at.saturating_sub((s * 1e6) as i64)),
                        to_us: Some(at),
                        seconds: secs,
                    }),
                }
            }
            "over_window" => md.over_window += 1,
            "stale" => md.stale_days = float(&m, "days_since_verified"),
            _ => {}
        }
        if md.connections.len() > MAX_CONNECTIONS {
            let extra = md.connections.len() - MAX_CONNECTIONS;
            md.connections.drain(..extra);
        }
    }
    media.into_values().collect()
}

/// Every medium from the store's backup findings.
pub fn media(store: &dyn Store) -> Result<Vec<Medium>, StoreError> {
    let mut events: Vec<(String, Map<String, Value>)> = Vec::new();
    store.replay(Replay::All, &["backup"], &mut |r| {
        if let Ok(setten_agent::findings::Body::Backup(m)) =
            serde_json::from_str::<setten_agent::findings::Body>(r.body)
        {
            events.push((r.agent.to_owned(), m));
        }
    })?;
    Ok(fold(events.iter().map(|(a, m)| (a.as_str(), m.clone()))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn media_fold_verification_connections_and_offline_status() {
        let evs = [
            (
                "nas-1",
                ev(
                    json!({"event":"mount","medium":"weekly-a","at_us":100_000_000,"fs_uuid":"1234-ABCD"}),
                ),
            ),
            (
                "nas-1",
                ev(
                    json!({"event":"verify","medium":"weekly-a","at_us":200_000_000,"result":"differences","mode":"full",
                "counts":{"files":10,"ok":8,"modified":1,"missing":1,"added":0,"unreadable":0},
                "problems":[{"path":"<script>x</script>.db","status":"modified","offset":4096}],"future_key":1}),
                ),
            ),
            (
                "nas-1",
                ev(
                    json!({"event":"unmount","medium":"weekly-a","at_us":400_000_000,"connected_seconds":300.0}),
                ),
            ),
            (
                "nas-1",
                ev(json!({"event":"mount","medium":"daily","at_us":50_000_000})),
            ),
            (
                "nas-1",
                ev(
                    json!({"event":"over_window","medium":"daily","at_us":60_000_000,"connected_seconds":7200.0,"window_seconds":3600.0}),
                ),
            ),
            (
                "nas-2",
                ev(
                    json!({"event":"stale","medium":"monthly","at_us":70_000_000,"days_since_verified":40.5,"last_verified_us":null,"max_days":30.0}),
                ),
            ),
            ("nas-2", ev(json!({"event":"verify","medium":"monthly"}))), // no time: left out
            ("nas-2", ev(json!({"event":"verify","at_us":1}))),          // no medium: left out
        ];
        let m = fold(evs.iter().map(|(a, m)| (*a, m.clone())));
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["daily", "monthly", "weekly-a"]);
        let w = &m[2];
        let v = w.verify.as_ref().unwrap();
        assert_eq!(v.result, "differences");
        assert_eq!(v.counts[2], ("modified".to_owned(), 1));
        assert_eq!(v.counts[0].0, "files");
        assert_eq!(v.problems[0].path, "<script>x</script>.db");
        assert_eq!(
            w.connections,
            [Connection {
                from_us: Some(100_000_000),
                to_us: Some(400_000_000),
                seconds: Some(300.0)
            }]
        );
        assert_eq!(w.offline_status(), "offline");
        assert_eq!(w.fs_uuid.as_deref(), Some("1234-ABCD"));
        assert_eq!(m[0].offline_status(), "violation");
        assert_eq!(m[1].offline_status(), "unknown");
        assert_eq!(m[1].stale_days, Some(40.5));
        assert!(m[1].verify.is_none());
    }

    #[test]
    fn hostile_findings_are_capped() {
        let mut evs = Vec::new();
        for i in 0..(MAX_MEDIA + 10) {
            evs.push(ev(
                json!({"event":"mount","medium":format!("m{i}"),"at_us":i}),
            ));
        }
        for i in 0..(MAX_CONNECTIONS * 2) {
            evs.push(ev(
                json!({"event":"mount","medium":"m0","at_us":10_000 + i}),
            ));
        }
        evs.push(ev(json!({"event":"verify","medium":"m1","at_us":1,"result":"pwned","message":"x".repeat(10_000),
            "problems": (0..100).map(|i| json!({"path": i.to_string(), "status": "missing"})).collect::<Vec<_>>()})));
        let m = fold(evs.iter().map(|e| ("a", e.clone())));
        assert_eq!(m.len(), MAX_MEDIA);
        let m0 = m.iter().find(|m| m.name == "m0").unwrap();
        assert_eq!(m0.connections.len(), MAX_CONNECTIONS);
        let v = m
            .iter()
            .find(|m| m.name == "m1")
            .unwrap()
            .verify
            .clone()
            .unwrap();
        assert_eq!(v.result, "failed");
        assert_eq!(v.message.unwrap().chars().count(), MAX_TEXT);
        assert_eq!(v.problems.len(), MAX_PROBLEMS);
    }
}
