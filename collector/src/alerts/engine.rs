//! Evaluation: from stored findings and the agents' state to triggers, and triggers to
//! the outbox.
//!
//! A round reads the findings stored after the alert cursor (one snapshot), folds them
//! into triggers keyed by rule and subject (100 identical findings make one trigger
//! counted 100 times), derives the connection points the sessions belong to from the
//! merged inventory, adds the periodic checks (agents silent for N minutes, media not
//! verified for N days), and hands everything with the snapshot's cursor to
//! [`Store::raise_alerts`](crate::Store::raise_alerts), which commits them in one
//! transaction. A round that fails changes nothing and is repeated.

use super::config::AlertsConfig;
use super::rules::{ids, AlertRule, AlertRules};
use super::{Content, Evidence, Severity, TextsOut};
use crate::merged::Merged;
use crate::store::{NewTrigger, Raised, Replay, Store, StoreError};
use serde_json::{Map, Value};
use setten_agent::findings::Body;
use setten_agent::inventory::policy::{Policy, RiskId};
use setten_agent::inventory::{window, ConnectionPoint, Direction, PointKey};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// The finding kinds evaluation reads.
pub const KINDS: &[&str] = &["session", "backup", "health"];
/// Distinct trigger keys folded in one round at most; beyond, findings still count
/// towards keys already there (a flood of distinct subjects is cut, not buffered).
pub const MAX_KEYS_PER_ROUND: usize = 10_000;
/// Media tracked at most.
pub const MAX_MEDIA: usize = 10_000;

/// What the collector knows of a backup medium, from backup findings.
#[derive(Clone, Debug, Default, PartialEq)]
struct Medium {
    /// The agent that reported it last.
    agent: String,
    /// The first event, µs.
    first_us: i64,
    /// The latest successful verification, µs.
    last_ok_us: Option<i64>,
}

/// The evaluator: rules, configuration and the media state.
pub struct Engine {
    rules: AlertRules,
    cfg: AlertsConfig,
    media: Mutex<BTreeMap<String, Medium>>,
}

/// A trigger being folded: the first occurrence and how many there were.
struct Folded {
    trigger: NewTrigger,
    count: u64,
}

/// Triggers of a round by key.
#[derive(Default)]
struct Round {
    by_key: HashMap<String, Folded>,
    order: Vec<String>,
}

impl Round {
    fn add(&mut self, t: NewTrigger, count: u64) {
        if let Some(f) = self.by_key.get_mut(&t.key) {
            f.count = f.count.saturating_add(count);
            return;
        }
        if self.by_key.len() >= MAX_KEYS_PER_ROUND {
            return;
        }
        self.order.push(t.key.clone());
        self.by_key
            .insert(t.key.clone(), Folded { trigger: t, count });
    }

    /// The triggers in order, each with how many times it occurred.
    fn into_list(mut self) -> Vec<NewTrigger> {
        let mut out = Vec::with_capacity(self.order.len());
        for k in self.order {
            if let Some(mut f) = self.by_key.remove(&k) {
                f.trigger.count = f.count.max(1);
                out.push(f.trigger);
            }
        }
        out
    }
}

/// Per connection point, what the round's sessions said.
#[derive(Default)]
struct Touched {
    sessions: u64,
    outside_window: u64,
}

fn get_str<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

fn cut(s: &str, n: usize) -> String {
    let c: String = s.chars().filter(|c| !c.is_control()).take(n).collect();
    c
}

fn ev(ja: &str, en: &str, value: impl Into<String>) -> Evidence {
    Evidence {
        ja: ja.into(),
        en: en.into(),
        value: value.into(),
    }
}

fn texts(t: super::rules::Texts) -> TextsOut {
    TextsOut {
        title: t.title,
        what: t.what,
        place: t.place,
        action: t.action,
    }
}

impl Engine {
    /// An engine; reads the stored backup findings to know the media.
    pub fn new(
        rules: AlertRules,
        cfg: AlertsConfig,
        store: &dyn Store,
    ) -> Result<Engine, StoreError> {
        let e = Engine {
            rules,
            cfg,
            media: Mutex::new(BTreeMap::new()),
        };
        {
            let mut media = e.media.lock().unwrap_or_else(|p| p.into_inner());
            store.replay(Replay::All, &["backup"], &mut |r| {
                if let Ok(Body::Backup(m)) = serde_json::from_str::<Body>(r.body) {
                    learn_medium(&mut media, r.agent, &m, 0);
                }
            })?;
        }
        Ok(e)
    }

    /// The configuration.
    pub fn config(&self) -> &AlertsConfig {
        &self.cfg
    }

    /// The rules.
    pub fn rules(&self) -> &AlertRules {
        &self.rules
    }

    fn trigger(
        &self,
        rule: &AlertRule,
        subject: &str,
        key_suffix: Option<&str>,
        (vars_ja, vars_en): (&BTreeMap<&str, String>, &BTreeMap<&str, String>),
        evidence: Vec<Evidence>,
        facts: Map<String, Value>,
    ) -> NewTrigger {
        let once = rule.once || key_suffix.is_some();
        NewTrigger {
            key: match key_suffix {
                Some(s) => format!("{}|{subject}@{s}", rule.id),
                None => format!("{}|{subject}", rule.id),
            },
            rule: rule.id.to_owned(),
            severity: rule.severity,
            subject: subject.to_owned(),
            content: Content {
                ja: texts(rule.ja.render(vars_ja)),
                en: texts(rule.en.render(vars_en)),
                evidence,
                facts,
            },
            window_seconds: if once {
                None
            } else {
                Some(rule.throttle_seconds.unwrap_or(self.cfg.throttle_seconds))
            },
            count: 1,
            channels: self
                .cfg
                .channels
                .iter()
                .filter(|c| c.routes(rule.id, rule.severity))
                .map(|c| c.name.clone())
                .collect(),
        }
    }

    fn enabled(&self, id: &str) -> Option<&AlertRule> {
        self.rules.get(id).filter(|r| r.enabled)
    }

    /// One round: new findings, periodic checks, escalation. Returns the new alerts'
    /// ids and whether escalations were queued.
    pub fn round(
        &self,
        store: &dyn Store,
        merged: &Merged,
        now_us: i64,
    ) -> Result<(Vec<i64>, bool), StoreError> {
        let policy = merged.policy();
        let cursor = store.alert_cursor()?;
        let mut round = Round::default();
        let mut touched: HashMap<String, Touched> = HashMap::new();
        let max = {
            let mut media = self.media.lock().unwrap_or_else(|p| p.into_inner());
            store.replay(Replay::After(cursor), KINDS, &mut |r| {
                let Ok(body) = serde_json::from_str::<Body>(r.body) else {
                    return;
                };
                match body {
                    Body::Session(s) => {
                        let id = PointKey::of(&s, policy).id();
                        if !touched.contains_key(&id) && touched.len() >= MAX_KEYS_PER_ROUND {
                            return;
                        }
                        let t = touched.entry(id).or_default();
                        t.sessions += 1;
                        let ws = policy.windows_for(s.service);
                        let from = i64::try_from(s.first_us / 1_000_000).unwrap_or(i64::MAX);
                        let to = i64::try_from(s.last_us / 1_000_000).unwrap_or(i64::MAX);
                        if !ws.is_empty()
                            && !window::covered_by_any(&ws, from, to, policy.utc_offset_secs)
                        {
                            t.outside_window += 1;
                        }
                    }
                    Body::Backup(m) => {
                        learn_medium(&mut media, r.agent, &m, now_us);
                        self.backup_triggers(&mut round, r.agent, &m, policy);
                    }
                    Body::Health(m) => self.health_trigger(&mut round, r.agent, &m),
                    _ => {}
                }
            })?
        };
        if !touched.is_empty() {
            let view = merged.view(store)?;
            let by_id: HashMap<&str, &ConnectionPoint> =
                view.points.iter().map(|p| (p.id.as_str(), p)).collect();
            let mut ids: Vec<&String> = touched.keys().collect();
            ids.sort();
            for id in ids {
                if let (Some(p), Some(t)) = (by_id.get(id.as_str()), touched.get(id)) {
                    self.point_triggers(&mut round, p, t, policy);
                }
            }
        }
        self.periodic(&mut round, store, now_us, policy)?;
        let triggers = round.into_list();
        // Nothing to raise and nothing read: no write (and no fsync) for an idle round.
        let raised = if triggers.is_empty() && max <= cursor {
            Vec::new()
        } else {
            store.raise_alerts(&triggers, Some(max.max(cursor)), now_us)?
        };
        let new: Vec<i64> = raised
            .iter()
            .filter_map(|r| match r {
                Raised::New(id) => Some(*id),
                Raised::Repeat(_) => None,
            })
            .collect();
        let mut escalated = false;
        if let Some(after) = self.cfg.escalate_after_seconds {
            let before =
                now_us.saturating_sub(i64::try_from(after).unwrap_or(0).saturating_mul(1_000_000));
            let ids = store.escalate_alerts(before, &self.cfg.escalate_to, now_us)?;
            if !ids.is_empty() {
                tracing::info!(alerts = ?ids, "escalated unacknowledged critical alerts");
                escalated = true;
            }
        }
        Ok((new, escalated))
    }

    fn point_triggers(&self, round: &mut Round, p: &ConnectionPoint, t: &Touched, policy: &Policy) {
        let has = |r: RiskId| p.risks.iter().find(|x| x.id == r);
        let names = if p.internal.names.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                p.internal
                    .names
                    .iter()
                    .take(2)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let host = format!("{}{names}", p.internal.ip);
        let far_ips = |n: usize| {
            let mut s = p
                .far_side
                .ips
                .iter()
                .take(n)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            if p.far_side.ip_count > n {
                s.push_str(&format!(" … ({})", p.far_side.ip_count));
            }
            s
        };
        let (far_ja, far_en) = match p.far_side.kind {
            "cloud" => {
                let n = p.far_side.name.clone().unwrap_or_default();
                (format!("{n}（中継クラウド）"), format!("{n} (relay cloud)"))
            }
            "any" => (
                format!(
                    "インターネット上の任意の送信元（{} 件: {}）",
                    p.far_side.ip_count,
                    far_ips(3)
                ),
                format!(
                    "any Internet source ({}: {})",
                    p.far_side.ip_count,
                    far_ips(3)
                ),
            ),
            _ => {
                let n = p
                    .far_side
                    .names
                    .first()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default();
                (format!("{}{n}", far_ips(3)), format!("{}{n}", far_ips(3)))
            }
        };
        let vendor = [p.vendor.clone(), p.product.clone()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let port = p
            .internal
            .port
            .map(|x| x.to_string())
            .or_else(|| p.ports.first().map(|x| x.to_string()))
            .unwrap_or_default();
        let base = |detail: String| {
            let mut v: BTreeMap<&str, String> = BTreeMap::new();
            v.insert("point", p.id.clone());
            v.insert("host", host.clone());
            v.insert("service", p.service.as_str().to_owned());
            v.insert("port", port.clone());
            v.insert("vendor", vendor.clone());
            v.insert("detail", detail);
            let mut ja = v.clone();
            ja.insert("far", far_ja.clone());
            v.insert("far", far_en.clone());
            (ja, v)
        };
        let dir = match p.direction {
            Direction::Inbound => ("着信（外部から開始）", "inbound (started outside)"),
            Direction::Outbound => ("発信（内部から開始）", "outbound (started inside)"),
        };
        let off = policy.utc_offset_secs;
        let local = |us: u64| super::render::local_time(i64::try_from(us).unwrap_or(i64::MAX), off);
        let mut evidence = vec![
            ev(
                "サービス",
                "Service",
                format!("{} ({})", p.service.as_str(), p.transports.join("/")),
            ),
            ev("方向", "Direction", format!("{} / {}", dir.0, dir.1)),
            ev("内部機器", "Internal host", host.clone()),
            ev("相手", "Far side", far_en.clone()),
            ev("セッション数", "Sessions", p.sessions.to_string()),
            ev(
                "初回・最終",
                "First and last seen",
                format!("{} – {}", local(p.first_us), local(p.last_us)),
            ),
            ev("台帳", "Ledger", p.ledger.status.to_owned()),
        ];
        if !vendor.is_empty() {
            evidence.push(ev("製品", "Vendor and product", vendor.clone()));
        }
        if !port.is_empty() {
            evidence.push(ev("ポート", "Port", port.clone()));
        }
        for r in &p.risks {
            if let Some(d) = &r.detail {
                evidence.push(ev(
                    "リスク",
                    "Risk",
                    format!("{}: {}", r.id.as_str(), cut(d, 200)),
                ));
            }
        }
        for e in p.evidence.iter().take(3) {
            evidence.push(ev(
                "判定根拠",
                "Detected by",
                format!("{} {}={}", e.rule, e.field, cut(&e.value, 120)),
            ));
        }
        if !p.agents.is_empty() {
            evidence.push(ev(
                "検知エージェント",
                "Seen by agents",
                p.agents.join(", "),
            ));
        }
        let mut facts = Map::new();
        facts.insert("point".into(), p.id.clone().into());
        facts.insert("internal_ip".into(), p.internal.ip.to_string().into());
        facts.insert("service".into(), p.service.as_str().into());
        facts.insert("direction".into(), p.direction.as_str().into());
        facts.insert("far_kind".into(), p.far_side.kind.into());
        facts.insert("ledger".into(), p.ledger.status.into());
        facts.insert(
            "risks".into(),
            p.risks
                .iter()
                .map(|r| Value::from(r.id.as_str()))
                .collect::<Vec<_>>()
                .into(),
        );

        let mut emit = |id: &str, detail: String, count: u64| {
            if let Some(rule) = self.enabled(id) {
                let (ja, en) = base(detail);
                round.add(
                    self.trigger(
                        rule,
                        &p.id,
                        None,
                        (&ja, &en),
                        evidence.clone(),
                        facts.clone(),
                    ),
                    count,
                );
            }
        };
        let unregistered = p.ledger.status == "unregistered"
            || (p.ledger.status == "no_ledger"
                && self
                    .rules
                    .get(ids::POINT_UNREGISTERED)
                    .is_some_and(|r| r.include_no_ledger));
        if unregistered {
            emit(ids::POINT_UNREGISTERED, String::new(), t.sessions);
        }
        if let Some(r) = has(RiskId::InboundInternet) {
            emit(
                ids::POINT_INBOUND_INTERNET,
                r.detail.clone().unwrap_or_default(),
                t.sessions,
            );
        }
        if let Some(r) = has(RiskId::ManySources) {
            emit(
                ids::POINT_MANY_SOURCES,
                r.detail.clone().unwrap_or_default(),
                t.sessions,
            );
        }
        if let Some(r) = has(RiskId::Weak) {
            emit(
                ids::POINT_WEAK,
                r.detail
                    .clone()
                    .unwrap_or_else(|| p.service.as_str().to_owned()),
                t.sessions,
            );
        }
        if t.outside_window > 0 {
            if let Some(r) = has(RiskId::OutsideWindow) {
                emit(
                    ids::POINT_OUTSIDE_WINDOW,
                    r.detail.clone().unwrap_or_default(),
                    t.outside_window,
                );
            }
        }
    }

    fn backup_triggers(
        &self,
        round: &mut Round,
        agent: &str,
        m: &Map<String, Value>,
        policy: &Policy,
    ) {
        let (Some(event), Some(medium)) = (get_str(m, "event"), get_str(m, "medium")) else {
            return;
        };
        let medium = cut(medium, 128);
        if medium.is_empty() {
            return;
        }
        let num = |k: &str| m.get(k).and_then(Value::as_f64);
        let int = |k: &str| m.get(k).and_then(Value::as_u64);
        let message = get_str(m, "message")
            .map(|s| cut(s, 300))
            .unwrap_or_default();
        let generation = int("generation").map(|g| g.to_string()).unwrap_or_default();
        let mut evidence = vec![
            ev("媒体", "Medium", medium.clone()),
            ev("エージェント", "Agent", agent.to_owned()),
        ];
        for (k, ja, en) in [
            ("fs_label", "ラベル", "Label"),
            ("fs_uuid", "UUID", "UUID"),
            ("mode", "検証方式", "Mode"),
            ("sealed_at", "封印日時", "Sealed at"),
            ("mount_point", "マウント先", "Mount point"),
        ] {
            if let Some(v) = get_str(m, k) {
                evidence.push(ev(ja, en, cut(v, 200)));
            }
        }
        if !generation.is_empty() {
            evidence.push(ev("世代", "Generation", generation.clone()));
        }
        if let Some(c) = m.get("counts").and_then(Value::as_object) {
            let n = |k: &str| c.get(k).and_then(Value::as_u64).unwrap_or(0);
            evidence.push(ev(
                "ファイル数",
                "Files",
                format!(
                    "files {} / ok {} / modified {} / missing {} / added {} / unreadable {}",
                    n("files"),
                    n("ok"),
                    n("modified"),
                    n("missing"),
                    n("added"),
                    n("unreadable")
                ),
            ));
        }
        if let Some(ps) = m.get("problems").and_then(Value::as_array) {
            for p in ps.iter().take(5) {
                if let (Some(path), Some(status)) = (
                    p.get("path").and_then(Value::as_str),
                    p.get("status").and_then(Value::as_str),
                ) {
                    evidence.push(ev(
                        "問題のファイル",
                        "File with a problem",
                        format!("{} ({})", cut(path, 200), cut(status, 20)),
                    ));
                }
            }
        }
        if let Some(rs) = m.get("flag_reasons").and_then(Value::as_array) {
            let r: Vec<String> = rs
                .iter()
                .filter_map(Value::as_str)
                .take(5)
                .map(|s| cut(s, 200))
                .collect();
            if !r.is_empty() {
                evidence.push(ev("疑わしい理由", "Why flagged", r.join("; ")));
            }
        }
        if !message.is_empty() {
            evidence.push(ev("メッセージ", "Message", message.clone()));
        }
        if let Some(at) = m.get("at_us").and_then(Value::as_i64) {
            evidence.push(ev(
                "日時",
                "At",
                super::render::local_time(at, policy.utc_offset_secs),
            ));
        }
        let mut facts = Map::new();
        facts.insert("medium".into(), medium.clone().into());
        facts.insert("agent".into(), agent.into());
        facts.insert("event".into(), cut(event, 32).into());
        let result = get_str(m, "result").map(|s| cut(s, 32)).unwrap_or_default();
        let (result_ja, result_en) = match result.as_str() {
            "failed" => ("検証できず", "could not verify"),
            "differences" => ("内容に差異あり", "differences found"),
            "ok" => ("正常", "ok"),
            _ => ("不明", "unknown"),
        };
        let hours = num("connected_seconds")
            .map(|s| format!("{:.1}", s / 3600.0))
            .unwrap_or_default();
        let days = num("days_since_verified")
            .map(|d| format!("{d:.0}"))
            .or_else(|| num("max_days").map(|d| format!("{d:.0}")))
            .unwrap_or_default();
        if let Some(w) = num("window_seconds") {
            evidence.push(ev(
                "許可された接続時間",
                "Allowed window",
                format!("{:.1} h", w / 3600.0),
            ));
        }
        if !hours.is_empty() {
            evidence.push(ev("接続時間", "Connected for", format!("{hours} h")));
        }
        let vars = |ja: bool| {
            let mut v: BTreeMap<&str, String> = BTreeMap::new();
            v.insert("medium", medium.clone());
            v.insert("agent", agent.to_owned());
            v.insert("result", if ja { result_ja } else { result_en }.to_owned());
            v.insert("message", message.clone());
            v.insert("generation", generation.clone());
            v.insert("hours", hours.clone());
            v.insert("days", days.clone());
            v
        };
        let flagged = m.get("flagged").and_then(Value::as_bool) == Some(true);
        let mut emit = |id: &str, subject: &str, suffix: Option<&str>| {
            if let Some(rule) = self.enabled(id) {
                round.add(
                    self.trigger(
                        rule,
                        subject,
                        suffix,
                        (&vars(true), &vars(false)),
                        evidence.clone(),
                        facts.clone(),
                    ),
                    1,
                );
            }
        };
        match event {
            "verify" if matches!(result.as_str(), "failed" | "differences") => {
                emit(ids::BACKUP_VERIFY_FAILED, &medium, None);
            }
            "over_window" => emit(ids::BACKUP_OVER_WINDOW, &medium, None),
            "stale" => {
                let last = m
                    .get("last_verified_us")
                    .and_then(Value::as_i64)
                    .map_or("never".to_owned(), |v| v.to_string());
                emit(ids::BACKUP_NOT_VERIFIED, &medium, Some(&last));
            }
            _ => {}
        }
        if flagged && matches!(event, "seal" | "verify") {
            let g = if generation.is_empty() {
                "?".to_owned()
            } else {
                generation.clone()
            };
            emit(ids::BACKUP_FLAGGED, &format!("{medium}#{g}"), None);
        }
    }

    fn health_trigger(&self, round: &mut Round, agent: &str, m: &Map<String, Value>) {
        let Some(rule) = self.enabled(ids::CAPTURE_DROPS) else {
            return;
        };
        let rate = m
            .get("drop_rate")
            .and_then(Value::as_f64)
            .filter(|r| r.is_finite());
        let alarm = m.get("drop_alarm").and_then(Value::as_bool) == Some(true);
        let over = match (rate, rule.drop_rate) {
            (Some(r), Some(t)) => r > t,
            _ => false,
        };
        if !alarm && !over {
            return;
        }
        let threshold = rule
            .drop_rate
            .or_else(|| m.get("drop_alarm_threshold").and_then(Value::as_f64));
        let pct = |x: f64| format!("{:.3} %", x * 100.0);
        let mut v: BTreeMap<&str, String> = BTreeMap::new();
        v.insert("agent", agent.to_owned());
        v.insert("drop_rate", rate.map(pct).unwrap_or_default());
        v.insert("threshold", threshold.map(pct).unwrap_or_default());
        let mut evidence = vec![ev("エージェント", "Agent", agent.to_owned())];
        if let Some(r) = rate {
            evidence.push(ev("欠落率", "Drop rate", pct(r)));
        }
        if let Some(d) = m.get("dropped").and_then(Value::as_u64) {
            evidence.push(ev(
                "欠落フレーム（起動以降）",
                "Frames lost since start",
                d.to_string(),
            ));
        }
        if let Some(p) = m.get("period_seconds").and_then(Value::as_f64) {
            evidence.push(ev("計測期間", "Period", format!("{p:.0} s")));
        }
        if let Some(ifs) = m.get("interfaces").and_then(Value::as_array) {
            for i in ifs.iter().take(4) {
                let name = i
                    .get("name")
                    .and_then(Value::as_str)
                    .map(|s| cut(s, 32))
                    .unwrap_or_default();
                let k = i
                    .get("kernel_drops")
                    .and_then(Value::as_u64)
                    .map_or("-".into(), |x| x.to_string());
                let q = i.get("queue_drops").and_then(Value::as_u64).unwrap_or(0);
                evidence.push(ev(
                    "インターフェース",
                    "Interface",
                    format!("{name}: kernel drops {k}, queue drops {q}"),
                ));
            }
        }
        let mut facts = Map::new();
        facts.insert("agent".into(), agent.into());
        if let Some(r) = rate {
            facts.insert("drop_rate".into(), r.into());
        }
        round.add(
            self.trigger(rule, agent, None, (&v, &v), evidence, facts),
            1,
        );
    }

    fn periodic(
        &self,
        round: &mut Round,
        store: &dyn Store,
        now_us: i64,
        policy: &Policy,
    ) -> Result<(), StoreError> {
        let off = policy.utc_offset_secs;
        if let Some(rule) = self.enabled(ids::AGENT_SILENT) {
            let limit_us = (rule.minutes * 60e6) as i64;
            for a in store.agents()? {
                if a.role != crate::token::Role::Agent || a.is_revoked() {
                    continue;
                }
                let Some(seen) = a.last_seen_us else { continue };
                if now_us.saturating_sub(seen) <= limit_us {
                    continue;
                }
                let mut v: BTreeMap<&str, String> = BTreeMap::new();
                v.insert("agent", a.name.clone());
                v.insert("minutes", format!("{}", rule.minutes));
                v.insert("last_seen", super::render::local_time(seen, off));
                let mins = now_us.saturating_sub(seen) / 60_000_000;
                let evidence = vec![
                    ev("エージェント", "Agent", a.name.clone()),
                    ev(
                        "最終受信",
                        "Last heard from",
                        super::render::local_time(seen, off),
                    ),
                    ev("無応答の時間", "Silent for", format!("{mins} min")),
                    ev(
                        "最終シーケンス番号",
                        "Last sequence number",
                        a.last_seq.to_string(),
                    ),
                ];
                let mut facts = Map::new();
                facts.insert("agent".into(), a.name.clone().into());
                facts.insert("last_seen_us".into(), seen.into());
                // One alert per silence: the episode is keyed by when it began.
                round.add(
                    self.trigger(
                        rule,
                        &a.name,
                        Some(&seen.to_string()),
                        (&v, &v),
                        evidence,
                        facts,
                    ),
                    1,
                );
            }
        }
        if let Some(rule) = self.enabled(ids::BACKUP_NOT_VERIFIED) {
            let limit_us = (rule.days * 86_400e6) as i64;
            let media = self.media.lock().unwrap_or_else(|p| p.into_inner()).clone();
            for (name, md) in media {
                let since = md.last_ok_us.unwrap_or(md.first_us);
                if since <= 0 || now_us.saturating_sub(since) <= limit_us {
                    continue;
                }
                let days = format!("{}", rule.days);
                let mut v: BTreeMap<&str, String> = BTreeMap::new();
                v.insert("medium", name.clone());
                v.insert("agent", md.agent.clone());
                v.insert("days", days);
                let last_ja = md
                    .last_ok_us
                    .map_or("一度も検証されていません".to_owned(), |t| {
                        super::render::local_time(t, off)
                    });
                let last_en = md.last_ok_us.map_or("never verified".to_owned(), |t| {
                    super::render::local_time(t, off)
                });
                let evidence = vec![
                    ev("媒体", "Medium", name.clone()),
                    ev(
                        "最後に検証に成功",
                        "Last verified",
                        format!("{last_ja} / {last_en}"),
                    ),
                    ev("エージェント", "Agent", md.agent.clone()),
                ];
                let mut facts = Map::new();
                facts.insert("medium".into(), name.clone().into());
                facts.insert(
                    "last_verified_us".into(),
                    md.last_ok_us.map_or(Value::Null, Value::from),
                );
                let suffix = md.last_ok_us.map_or("never".to_owned(), |t| t.to_string());
                round.add(
                    self.trigger(rule, &name, Some(&suffix), (&v, &v), evidence, facts),
                    1,
                );
            }
        }
        Ok(())
    }

    /// The alert a test send carries (`alert test CHANNEL`).
    pub fn test_alert(now_us: i64) -> super::Alert {
        let mut facts = Map::new();
        facts.insert("test".into(), true.into());
        super::Alert {
            id: 0,
            key: "alert.test|setten-collector".into(),
            rule: "alert.test".into(),
            severity: Severity::Info,
            subject: "setten-collector".into(),
            raised_us: now_us,
            last_trigger_us: now_us,
            repeats: 0,
            repeats_before: 0,
            window_seconds: None,
            content: Content {
                ja: TextsOut {
                    title: "試験送信（警報チャネルの確認）".into(),
                    what: "setten-collector から警報チャネルへの試験送信です。これが届いていれば、このチャネルで警報を受け取れます。".into(),
                    place: "setten-collector".into(),
                    action: "対応は不要です。".into(),
                },
                en: TextsOut {
                    title: "Test message (alert channel check)".into(),
                    what: "A test sent by setten-collector to this alert channel. If you can read it, alerts will reach you here.".into(),
                    place: "setten-collector".into(),
                    action: "Nothing to do.".into(),
                },
                evidence: vec![ev("種類", "Kind", "test")],
                facts,
            },
            acked_us: None,
            acked_by: None,
            ack_note: None,
            escalated_us: None,
            deliveries: Vec::new(),
        }
    }
}

/// Updates what is known of a medium from one backup finding.
fn learn_medium(
    media: &mut BTreeMap<String, Medium>,
    agent: &str,
    m: &Map<String, Value>,
    now_us: i64,
) {
    let Some(name) = get_str(m, "medium")
        .map(|s| cut(s, 128))
        .filter(|s| !s.is_empty())
    else {
        return;
    };
    let at = m
        .get("at_us")
        .and_then(Value::as_i64)
        .filter(|t| *t > 0)
        .unwrap_or(now_us);
    if !media.contains_key(&name) && media.len() >= MAX_MEDIA {
        return;
    }
    let md = media.entry(name).or_insert_with(|| Medium {
        agent: agent.to_owned(),
        first_us: at,
        last_ok_us: None,
    });
    md.agent = agent.to_owned();
    if at > 0 && (md.first_us <= 0 || at < md.first_us) {
        md.first_us = at;
    }
    if get_str(m, "event") == Some("verify") && get_str(m, "result") == Some("ok") {
        md.last_ok_us = Some(md.last_ok_us.map_or(at, |l| l.max(at)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::AlertFilter;
    use crate::token::{AgentName, Role, TokenHash};
    use serde_json::json;
    use setten_agent::findings::{Batch, Finding, SCHEMA};

    const MIN: i64 = 60_000_000;
    const DAY: i64 = 24 * 60 * MIN;
    /// 2026-10-05T00:00:00Z.
    const T0: i64 = 1_791_158_400_000_000;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: crate::store::SqliteStore,
        merged: Merged,
        engine: Engine,
        agent: crate::store::AgentRecord,
        seq: u64,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let store = crate::store::SqliteStore::open(dir.path()).unwrap();
            let agent = store
                .add_agent(
                    &AgentName::parse("m1").unwrap(),
                    Role::Agent,
                    &TokenHash::of("t"),
                    T0,
                )
                .unwrap();
            let policy = setten_agent::rules::Rules::defaults().unwrap().policy;
            let merged = Merged::build(&store, policy, None).unwrap();
            let engine =
                Engine::new(AlertRules::defaults(), AlertsConfig::default(), &store).unwrap();
            Fixture {
                _dir: dir,
                store,
                merged,
                engine,
                agent,
                seq: 0,
            }
        }

        fn send(&mut self, bodies: Vec<Body>, now: i64) {
            let findings = bodies
                .into_iter()
                .map(|body| {
                    self.seq += 1;
                    Finding {
                        seq: self.seq,
                        at_us: now as u64,
                        body,
                    }
                })
                .collect();
            let b = Batch {
                schema: SCHEMA.into(),
                agent: "m1".into(),
                findings,
            };
            let bytes = serde_json::to_vec(&b).unwrap();
            crate::ingest::ingest(&self.store, &self.agent, &bytes, now).unwrap();
        }

        fn round(&self, now: i64) -> Vec<String> {
            let (new, _) = self.engine.round(&self.store, &self.merged, now).unwrap();
            new.iter()
                .map(|id| self.store.alert(*id).unwrap().unwrap().key)
                .collect()
        }
    }

    fn backup(v: serde_json::Value) -> Body {
        match v {
            Value::Object(m) => Body::Backup(m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_silent_agent_alerts_once_per_silence() {
        let mut f = Fixture::new();
        f.send(vec![], T0); // last seen T0
        assert!(f.round(T0 + 14 * MIN).is_empty(), "15 minutes by default");
        let raised = f.round(T0 + 16 * MIN);
        assert_eq!(raised, [format!("alert.agent.silent|m1@{T0}")]);
        assert!(f.round(T0 + 60 * MIN).is_empty(), "the same silence");
        // Back, then silent again: a new alert.
        f.store
            .heartbeat(f.agent.id, T0, "{}", T0 + 70 * MIN)
            .unwrap();
        assert!(f.round(T0 + 80 * MIN).is_empty());
        let raised = f.round(T0 + 90 * MIN);
        assert_eq!(raised, [format!("alert.agent.silent|m1@{}", T0 + 70 * MIN)]);
        let a = crate::alerts::list(&f.store, &AlertFilter::default()).unwrap();
        assert_eq!(a.len(), 2);
        assert!(
            a[0].content
                .ja
                .what
                .contains("エージェント m1 から 15 分以上、通信がありません"),
            "{}",
            a[0].content.ja.what
        );
        // A revoked agent is not "silent".
        f.store.revoke_agent("m1", T0 + 91 * MIN).unwrap();
        f.store.heartbeat(f.agent.id, T0, "{}", T0).unwrap_err();
        assert!(f.round(T0 + 500 * MIN).is_empty());
    }

    #[test]
    fn a_medium_not_verified_for_days_alerts_once_per_episode() {
        let mut f = Fixture::new();
        let verify = |at: i64, result: &str| {
            backup(json!({"event": "verify", "medium": "usb-1", "result": result, "at_us": at}))
        };
        f.send(vec![verify(T0, "ok")], T0);
        // The round also keeps the agent from being "silent" in this test.
        f.store
            .heartbeat(f.agent.id, T0, "{}", T0 + 7 * DAY)
            .unwrap();
        assert!(f.round(T0 + 7 * DAY - MIN).is_empty());
        f.store
            .heartbeat(f.agent.id, T0, "{}", T0 + 7 * DAY + MIN)
            .unwrap();
        let raised = f.round(T0 + 7 * DAY + 2 * MIN);
        assert_eq!(raised, [format!("alert.backup.not_verified|usb-1@{T0}")]);
        f.store
            .heartbeat(f.agent.id, T0, "{}", T0 + 8 * DAY)
            .unwrap();
        assert!(f.round(T0 + 8 * DAY).is_empty());
        // A failed verification does not reset it, but alerts on its own.
        f.send(vec![verify(T0 + 8 * DAY, "failed")], T0 + 8 * DAY);
        assert_eq!(f.round(T0 + 8 * DAY), ["alert.backup.verify_failed|usb-1"]);
        // A good one does; the next episode is counted from it.
        f.send(vec![verify(T0 + 9 * DAY, "ok")], T0 + 9 * DAY);
        assert!(f.round(T0 + 9 * DAY).is_empty());
        f.send(vec![], T0 + 16 * DAY + MIN);
        assert_eq!(
            f.round(T0 + 16 * DAY + MIN),
            [format!("alert.backup.not_verified|usb-1@{}", T0 + 9 * DAY)]
        );
    }

    #[test]
    fn weak_sessions_and_flagged_generations_alert_on_their_point_and_medium() {
        use setten_agent::classify::{Evidence, Service};
        use setten_agent::inventory::{Endpoint, Session};
        let mut f = Fixture::new();
        let telnet = Session {
            transport: 6,
            client: Endpoint {
                ip: "10.1.1.5".parse().unwrap(),
                port: 40_000,
            },
            server: Endpoint {
                ip: "203.0.113.9".parse().unwrap(),
                port: 23,
            },
            direction: Direction::Outbound,
            service: Service::Telnet,
            protocol: "telnet".into(),
            vendor: None,
            product: None,
            evidence: vec![Evidence::new(
                "setten.telnet.iac",
                "telnet.options",
                "fffd18",
            )],
            weak: Some("telnet".into()),
            non_standard_port: false,
            // Monday 10:00 JST: inside the weekday window.
            first_us: (T0 + 60 * MIN) as u64,
            last_us: (T0 + 70 * MIN) as u64,
            bytes: 1000,
            packets: 20,
            vlan: 0,
            far_names: Vec::new(),
            internal_mac: None,
            versions: Vec::new(),
            agents: Vec::new(),
        };
        let point = PointKey::of(&telnet, f.merged.policy()).id();
        // Sunday 03:00 JST: outside it.
        let mut night = telnet.clone();
        night.client.port = 40_001;
        night.first_us = (T0 - 30 * 60 * MIN) as u64;
        night.last_us = night.first_us + 600_000_000;
        f.send(
            vec![
                Body::Session(Box::new(telnet.clone())),
                Body::Session(Box::new(night)),
                backup(
                    json!({"event": "seal", "medium": "nas", "generation": 4, "flagged": true,
                              "flag_reasons": ["42% of files became high-entropy"], "at_us": T0}),
                ),
            ],
            T0,
        );
        let mut raised = f.round(T0 + MIN);
        raised.sort();
        assert_eq!(
            raised,
            [
                "alert.backup.flagged|nas#4".to_owned(),
                format!("alert.point.outside_window|{point}"),
                format!("alert.point.weak|{point}"),
            ]
        );
        let weak = crate::alerts::list(
            &f.store,
            &AlertFilter {
                rule: Some(ids::POINT_WEAK.into()),
                ..AlertFilter::default()
            },
        )
        .unwrap();
        assert_eq!(weak[0].repeats, 1, "two sessions: one alert and a repeat");
        assert_eq!(
            weak[0].content.ja.title,
            "旧式・脆弱なプロトコルの利用: 10.1.1.5（telnet）"
        );
        let flagged = crate::alerts::list(
            &f.store,
            &AlertFilter {
                rule: Some(ids::BACKUP_FLAGGED.into()),
                ..AlertFilter::default()
            },
        )
        .unwrap();
        assert!(flagged[0]
            .content
            .evidence
            .iter()
            .any(|e| e.value.contains("42% of files")));
        // The same findings are not evaluated twice.
        assert!(f.round(T0 + 2 * MIN).is_empty());
        assert_eq!(f.store.alert_cursor().unwrap(), 3);
    }
}
