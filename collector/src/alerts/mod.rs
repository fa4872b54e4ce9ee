//! Alerts to on-call staff.
//!
//! # Library API (for the web UI and other callers)
//!
//! ```no_run
//! use setten_collector::alerts::{self, AlertFilter, AlertState, Severity};
//! # fn f(store: &dyn setten_collector::Store) -> Result<(), Box<dyn std::error::Error>> {
//! // Open critical alerts, newest first (at most `limit`, default 100, max 1000).
//! let open = alerts::list(store, &AlertFilter {
//!     state: AlertState::Open,
//!     min_severity: Some(Severity::Critical),
//!     ..AlertFilter::default()
//! })?;
//! for a in &open {
//!     let t = a.content.texts(alerts::config::Lang::Ja); // title, what, place, action
//!     println!("#{} {} {}", a.id, a.severity.as_str(), t.title);
//! }
//! // One alert with its deliveries, or None.
//! let one = alerts::get(store, 42)?;
//! // Acknowledge (a person's name; the first acknowledgement is kept). Stops escalation.
//! let acked = alerts::acknowledge(store, 42, "yamada", Some("on it"))?;
//! # Ok(()) }
//! ```
//!
//! `GET /api/v1/alerts`, `GET /api/v1/alerts/{id}` and `POST /api/v1/alerts/{id}/ack`
//! are these functions over HTTP; `setten-collector alert list|ack|test` on the command
//! line.
//!
//! # How an alert travels
//!
//! 1. **Rules** ([`rules`], `rules/alerts.toml`) say which conditions raise an alert,
//!    how severe it is and what it says in Japanese and English.
//! 2. **Evaluation** ([`engine`]) runs after every ingest commit (woken by the API) and
//!    on a timer: it reads the findings stored after its own cursor, maps sessions to
//!    their connection points, reads backup and health findings, and checks agent
//!    silence and media not verified for N days. Each trigger has a key (rule + subject,
//!    e.g. `alert.point.weak|cp-…`).
//! 3. **The outbox** (the store's `alerts` and `alert_deliveries` tables): the triggers
//!    of a round, the throttle decision for each key (at most one alert per key and
//!    window; repeats are counted and reported in the next alert of the key), one
//!    delivery row per routed channel, and the advanced cursor are committed in one
//!    transaction, before any delivery is attempted. A crash before the commit leaves the
//!    cursor where it was, so the round is evaluated again; after it, the alert is on
//!    disk.
//! 4. **Delivery** ([`worker`]): one worker per channel sends what is due and marks each
//!    delivery done in its own transaction right after the receiver accepted it, or
//!    schedules a retry with exponential backoff and jitter. Quiet hours postpone all but
//!    critical alerts. Unacknowledged critical alerts escalate to the `escalate_to`
//!    channels after `escalate_after_seconds`.
//!
//! **Exactly once.** An alert that was raised but not yet delivered when the collector
//! stopped (even by SIGKILL) is delivered after the restart, once: its delivery row is
//! still pending, and nothing else creates one. The only window for a duplicate is
//! between the receiver accepting a message and the commit that marks it delivered
//! (a few milliseconds); every message carries the delivery's stable id
//! (`X-Setten-Delivery` / `Message-ID` / the syslog `delivery` parameter) so a receiver
//! can drop such a repeat. One `serve` per data directory delivers.

pub mod channels;
pub mod config;
pub mod engine;
pub mod render;
pub mod rules;
pub mod worker;

use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};

/// How urgent an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For the record.
    Info,
    /// Look at it today.
    Warning,
    /// Act now (never held by quiet hours; escalates when unacknowledged).
    Critical,
}

impl Severity {
    /// `info`, `warning`, `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Option<Severity> {
        [Severity::Info, Severity::Warning, Severity::Critical]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    /// Japanese label.
    pub fn label_ja(self) -> &'static str {
        match self {
            Severity::Info => "情報",
            Severity::Warning => "警告",
            Severity::Critical => "緊急",
        }
    }

    /// English label.
    pub fn label_en(self) -> &'static str {
        match self {
            Severity::Info => "Info",
            Severity::Warning => "Warning",
            Severity::Critical => "Critical",
        }
    }
}

/// One piece of evidence: a label in both languages and a value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Label, Japanese.
    pub ja: String,
    /// Label, English.
    pub en: String,
    /// Value.
    pub value: String,
}

/// What an alert says, rendered when it was raised (so a delivery after a restart says
/// the same), in both languages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// Japanese texts.
    pub ja: TextsOut,
    /// English texts.
    pub en: TextsOut,
    /// Evidence.
    pub evidence: Vec<Evidence>,
    /// Machine-readable facts (point id, service, medium, agent…).
    pub facts: serde_json::Map<String, serde_json::Value>,
}

/// Texts in one language.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextsOut {
    /// One line.
    pub title: String,
    /// What happened.
    pub what: String,
    /// Where.
    #[serde(rename = "where")]
    pub place: String,
    /// The first thing to do.
    pub action: String,
}

impl Content {
    /// The texts in a language (`JaEn` gives the Japanese ones).
    pub fn texts(&self, lang: config::Lang) -> &TextsOut {
        match lang {
            config::Lang::En => &self.en,
            _ => &self.ja,
        }
    }
}

/// A delivery of an alert to one channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Stable id (also sent to the receiver).
    pub id: i64,
    /// Channel name.
    pub channel: String,
    /// Whether it is an escalation.
    pub escalation: bool,
    /// `pending`, `delivered`, `failed` (given up) or `cancelled` (an escalation whose
    /// alert was acknowledged before it was sent).
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// Next attempt (pending), µs.
    pub next_us: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// When the receiver accepted it, µs.
    pub delivered_us: Option<i64>,
}

/// A raised alert.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// Id.
    pub id: i64,
    /// Deduplication key: rule id + `|` + subject.
    pub key: String,
    /// Rule id.
    pub rule: String,
    /// Severity.
    pub severity: Severity,
    /// Subject (point id, medium, agent…).
    pub subject: String,
    /// Raised at, µs (collector clock).
    pub raised_us: i64,
    /// The latest trigger folded into it, µs.
    pub last_trigger_us: i64,
    /// Triggers of the same key folded into this alert after it was raised.
    pub repeats: u64,
    /// Triggers of the same key suppressed since the previous alert of the key (reported
    /// in this alert's message).
    pub repeats_before: u64,
    /// The throttle window in force when raised, seconds (`None`: once per subject).
    pub window_seconds: Option<u64>,
    /// What it says.
    pub content: Content,
    /// Acknowledged at, µs.
    pub acked_us: Option<i64>,
    /// By whom.
    pub acked_by: Option<String>,
    /// Their note.
    pub ack_note: Option<String>,
    /// Escalated at, µs.
    pub escalated_us: Option<i64>,
    /// Deliveries (filled by [`get`] and [`list`]).
    pub deliveries: Vec<Delivery>,
}

/// Which alerts [`list`] returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AlertState {
    /// Not acknowledged.
    Open,
    /// Acknowledged.
    Acked,
    /// Both.
    #[default]
    All,
}

/// Filters of [`list`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertFilter {
    /// Acknowledged or not.
    pub state: AlertState,
    /// At least this severity.
    pub min_severity: Option<Severity>,
    /// Of this rule.
    pub rule: Option<String>,
    /// Raised at or after, µs.
    pub since_us: Option<i64>,
    /// Raised before, µs.
    pub until_us: Option<i64>,
    /// At most this many (default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]).
    pub limit: Option<usize>,
}

/// Alerts [`list`] returns unless told otherwise.
pub const DEFAULT_LIMIT: usize = 100;
/// Alerts [`list`] returns at most.
pub const MAX_LIMIT: usize = 1000;
/// Longest acknowledgement name or note kept, in characters.
pub const MAX_ACK_TEXT: usize = 200;

/// Alerts matching `filter`, newest first, with their deliveries.
pub fn list(store: &dyn Store, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
    store.alerts(filter)
}

/// One alert with its deliveries.
pub fn get(store: &dyn Store, id: i64) -> Result<Option<Alert>, StoreError> {
    store.alert(id)
}

/// Why an acknowledgement was refused.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    /// No such alert.
    #[error("no alert #{0}")]
    NotFound(i64),
    /// The name is empty.
    #[error("say who acknowledges the alert")]
    NoName,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Acknowledges an alert: it stops escalating. The first acknowledgement is kept (a
/// second one returns the alert as it is). Names and notes are cut to
/// [`MAX_ACK_TEXT`] characters; control characters are dropped.
pub fn acknowledge(
    store: &dyn Store,
    id: i64,
    by: &str,
    note: Option<&str>,
) -> Result<Alert, AckError> {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_control())
            .take(MAX_ACK_TEXT)
            .collect::<String>()
            .trim()
            .to_owned()
    };
    let by = clean(by);
    if by.is_empty() {
        return Err(AckError::NoName);
    }
    let note = note.map(clean).filter(|n| !n.is_empty());
    store
        .ack_alert(id, &by, note.as_deref(), crate::now_us())?
        .ok_or(AckError::NotFound(id))
}

/// An alert as the API and `alert list --json` show it, texts in `lang`.
pub fn to_json(a: &Alert, lang: config::Lang) -> serde_json::Value {
    let t = a.content.texts(lang);
    let en = lang == config::Lang::En;
    let time = |us: Option<i64>| crate::time::render(us);
    serde_json::json!({
        "id": a.id,
        "key": a.key,
        "rule": a.rule,
        "severity": a.severity.as_str(),
        "subject": a.subject,
        "raised": time(Some(a.raised_us)),
        "last_trigger": time(Some(a.last_trigger_us)),
        "repeats": a.repeats,
        "repeats_before": a.repeats_before,
        "window_seconds": a.window_seconds,
        "title": t.title,
        "what": t.what,
        "where": t.place,
        "action": t.action,
        "evidence": a.content.evidence.iter().map(|e| serde_json::json!({
            "label": if en { &e.en } else { &e.ja }, "value": e.value})).collect::<Vec<_>>(),
        "facts": a.content.facts,
        "acked": time(a.acked_us),
        "acked_by": a.acked_by,
        "ack_note": a.ack_note,
        "escalated": time(a.escalated_us),
        "deliveries": a.deliveries.iter().map(|d| serde_json::json!({
            "id": d.id,
            "channel": d.channel,
            "escalation": d.escalation,
            "state": d.state,
            "attempts": d.attempts,
            "next_attempt": if d.state == "pending" { time(Some(d.next_us)) } else { None },
            "last_error": d.last_error,
            "delivered": time(d.delivered_us),
        })).collect::<Vec<_>>(),
    })
}
