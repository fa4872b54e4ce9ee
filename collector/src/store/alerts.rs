//! The alert outbox in SQLite (tables of schema version 3): `alerts`, one row per raised
//! alert; `alert_deliveries`, one row per alert and channel (and escalation), pending
//! until the receiver accepted it; `alert_state`, the findings cursor evaluation has
//! reached. See `crate::alerts` for why this gives exactly-once delivery across
//! restarts.

use super::sqlite::SqliteStore;
use super::{Cursor, StoreError};
use crate::alerts::{Alert, AlertFilter, AlertState, Content, Delivery, Severity};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

/// A trigger handed to [`crate::Store::raise_alerts`].
#[derive(Clone, Debug, PartialEq)]
pub struct NewTrigger {
    /// Rule id + `|` + subject.
    pub key: String,
    /// Rule id.
    pub rule: String,
    /// Severity.
    pub severity: Severity,
    /// Subject.
    pub subject: String,
    /// What it says.
    pub content: Content,
    /// Throttle window, seconds (`None`: once per key for good).
    pub window_seconds: Option<u64>,
    /// How many times it occurred in this round (≥ 1): one raises or repeats, the
    /// rest are repeats.
    pub count: u64,
    /// Channels a new alert is delivered to.
    pub channels: Vec<String>,
}

/// What became of a trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Raised {
    /// A new alert, with its id.
    New(i64),
    /// A repeat folded into this alert.
    Repeat(i64),
}

/// A delivery due, with its alert.
#[derive(Clone, Debug)]
pub struct DueDelivery {
    /// The delivery.
    pub delivery: Delivery,
    /// Its alert (without deliveries).
    pub alert: Alert,
}

pub(super) fn alert_cursor(s: &SqliteStore) -> Result<Cursor, StoreError> {
    let c = s.reader();
    Ok(
        c.query_row("SELECT cursor FROM alert_state WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0),
    )
}

/// Triggers raised per transaction: the writer is shared with ingest, which must not
/// wait behind a flood of new alerts (every point new at once, at first start).
const RAISE_CHUNK: usize = 64;

pub(super) fn raise_alerts(
    s: &SqliteStore,
    triggers: &[NewTrigger],
    cursor: Option<Cursor>,
    now_us: i64,
) -> Result<Vec<Raised>, StoreError> {
    // Each chunk is committed on its own and the cursor only with the last: after a crash
    // in between, the next round raises the remaining triggers, and those of committed
    // chunks again find their alert and only count as repeats — nothing is lost.
    let mut out = Vec::with_capacity(triggers.len());
    let chunks: Vec<&[NewTrigger]> = if triggers.is_empty() {
        vec![&[]]
    } else {
        triggers.chunks(RAISE_CHUNK).collect()
    };
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.into_iter().enumerate() {
        raise_chunk(
            s,
            chunk,
            if i == last { cursor } else { None },
            now_us,
            &mut out,
        )?;
    }
    Ok(out)
}

fn raise_chunk(
    s: &SqliteStore,
    triggers: &[NewTrigger],
    cursor: Option<Cursor>,
    now_us: i64,
    out: &mut Vec<Raised>,
) -> Result<(), StoreError> {
    let mut c = s.writer();
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for t in triggers {
        let latest: Option<(i64, i64, i64)> = tx
            .query_row(
                "SELECT id, raised_us, repeats FROM alerts WHERE key = ?1 ORDER BY id DESC LIMIT 1",
                params![t.key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let throttled = match (latest, t.window_seconds) {
            (None, _) => None,
            (Some((id, _, _)), None) => Some(id),
            (Some((id, raised, _)), Some(w)) => {
                let w_us = i64::try_from(w)
                    .unwrap_or(i64::MAX / 2)
                    .saturating_mul(1_000_000);
                (now_us.saturating_sub(raised) < w_us).then_some(id)
            }
        };
        let count = i64::try_from(t.count.max(1)).unwrap_or(i64::MAX);
        if let Some(id) = throttled {
            tx.execute(
                "UPDATE alerts SET repeats = repeats + ?3, last_trigger_us = max(last_trigger_us, ?2)
                 WHERE id = ?1",
                params![id, now_us, count],
            )?;
            out.push(Raised::Repeat(id));
            continue;
        }
        let content = serde_json::to_string(&t.content)
            .map_err(|e| StoreError::Backend(format!("alert content: {e}")))?;
        tx.execute(
            "INSERT INTO alerts (key, rule, severity, subject, raised_us, last_trigger_us,
                 repeats, repeats_before, window_s, content)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?9, ?6, ?7, ?8)",
            params![
                t.key,
                t.rule,
                t.severity.as_str(),
                t.subject,
                now_us,
                latest.map_or(0, |l| l.2),
                t.window_seconds
                    .map(|w| i64::try_from(w).unwrap_or(i64::MAX)),
                content,
                count - 1
            ],
        )?;
        let id = tx.last_insert_rowid();
        for ch in &t.channels {
            tx.execute(
                "INSERT OR IGNORE INTO alert_deliveries (alert_id, channel, escalation, state, next_us)
                 VALUES (?1, ?2, 0, 'pending', ?3)",
                params![id, ch, now_us],
            )?;
        }
        out.push(Raised::New(id));
    }
    if let Some(cur) = cursor {
        tx.execute(
            "INSERT INTO alert_state (id, cursor) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET cursor = max(cursor, excluded.cursor)",
            params![cur],
        )?;
    }
    tx.commit()?;
    Ok(())
}

const ALERT_COLUMNS: &str =
    "id, key, rule, severity, subject, raised_us, last_trigger_us, repeats, \
     repeats_before, window_s, content, acked_us, acked_by, ack_note, escalated_us";

fn alert_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Alert> {
    let severity: String = r.get(3)?;
    let content: String = r.get(10)?;
    Ok(Alert {
        id: r.get(0)?,
        key: r.get(1)?,
        rule: r.get(2)?,
        // The CHECK constraint admits only the three names.
        severity: Severity::parse(&severity).unwrap_or(Severity::Critical),
        subject: r.get(4)?,
        raised_us: r.get(5)?,
        last_trigger_us: r.get(6)?,
        repeats: u64::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
        repeats_before: u64::try_from(r.get::<_, i64>(8)?).unwrap_or(0),
        window_seconds: r
            .get::<_, Option<i64>>(9)?
            .and_then(|w| u64::try_from(w).ok()),
        content: serde_json::from_str(&content).unwrap_or_default(),
        acked_us: r.get(11)?,
        acked_by: r.get(12)?,
        ack_note: r.get(13)?,
        escalated_us: r.get(14)?,
        deliveries: Vec::new(),
    })
}

const DELIVERY_COLUMNS: &str =
    "id, channel, escalation, state, attempts, next_us, last_error, delivered_us";

fn delivery_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        channel: r.get(1)?,
        escalation: r.get::<_, i64>(2)? != 0,
        state: r.get(3)?,
        attempts: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(u32::MAX),
        next_us: r.get(5)?,
        last_error: r.get(6)?,
        delivered_us: r.get(7)?,
    })
}

fn with_deliveries(c: &rusqlite::Connection, a: &mut Alert) -> Result<(), StoreError> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries WHERE alert_id = ?1 ORDER BY id"
    ))?;
    a.deliveries = st
        .query_map(params![a.id], delivery_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(())
}

pub(super) fn alerts(s: &SqliteStore, f: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
    let c = s.reader();
    let tx = c.unchecked_transaction()?;
    let limit = f
        .limit
        .unwrap_or(crate::alerts::DEFAULT_LIMIT)
        .min(crate::alerts::MAX_LIMIT);
    let severities: Vec<&str> = [Severity::Info, Severity::Warning, Severity::Critical]
        .into_iter()
        .filter(|s| f.min_severity.is_none_or(|m| *s >= m))
        .map(Severity::as_str)
        .collect();
    let state = match f.state {
        AlertState::Open => 1,
        AlertState::Acked => 2,
        AlertState::All => 0,
    };
    let mut out = {
        let mut st = tx.prepare_cached(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts
             WHERE severity IN (SELECT value FROM json_each(?1))
               AND (?2 = 0 OR (?2 = 1 AND acked_us IS NULL) OR (?2 = 2 AND acked_us IS NOT NULL))
               AND (?3 IS NULL OR rule = ?3)
               AND (?4 IS NULL OR raised_us >= ?4)
               AND (?5 IS NULL OR raised_us < ?5)
             ORDER BY id DESC LIMIT ?6"
        ))?;
        let rows = st.query_map(
            params![
                serde_json::to_string(&severities).unwrap_or_else(|_| "[]".into()),
                state,
                f.rule,
                f.since_us,
                f.until_us,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            alert_row,
        )?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    for a in &mut out {
        with_deliveries(&tx, a)?;
    }
    tx.finish()?;
    Ok(out)
}

pub(super) fn alert(s: &SqliteStore, id: i64) -> Result<Option<Alert>, StoreError> {
    let c = s.reader();
    let a = c
        .query_row(
            &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"),
            params![id],
            alert_row,
        )
        .optional()?;
    match a {
        None => Ok(None),
        Some(mut a) => {
            with_deliveries(&c, &mut a)?;
            Ok(Some(a))
        }
    }
}

pub(super) fn ack_alert(
    s: &SqliteStore,
    id: i64,
    by: &str,
    note: Option<&str>,
    now_us: i64,
) -> Result<Option<Alert>, StoreError> {
    let mut c = s.writer();
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = tx.execute(
        "UPDATE alerts SET acked_us = ?2, acked_by = ?3, ack_note = ?4
         WHERE id = ?1 AND acked_us IS NULL",
        params![id, now_us, by, note],
    )?;
    if n > 0 {
        // An escalation queued but not yet sent is no longer needed.
        tx.execute(
            "UPDATE alert_deliveries SET state = 'cancelled', last_error = 'acknowledged before it was sent'
             WHERE alert_id = ?1 AND escalation = 1 AND state = 'pending'",
            params![id],
        )?;
    }
    let a = tx
        .query_row(
            &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"),
            params![id],
            alert_row,
        )
        .optional()?;
    let a = match a {
        None => None,
        Some(mut a) => {
            with_deliveries(&tx, &mut a)?;
            Some(a)
        }
    };
    tx.commit()?;
    Ok(a)
}

pub(super) fn due_deliveries(
    s: &SqliteStore,
    channel: &str,
    now_us: i64,
    limit: usize,
) -> Result<Vec<DueDelivery>, StoreError> {
    let c = s.reader();
    let cols: String = DELIVERY_COLUMNS
        .split(", ")
        .map(|x| format!("d.{x}"))
        .chain(ALERT_COLUMNS.split(", ").map(|x| format!("a.{}", x.trim())))
        .collect::<Vec<_>>()
        .join(", ");
    let mut st = c.prepare_cached(&format!(
        "SELECT {cols} FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id
         WHERE d.channel = ?1 AND d.state = 'pending' AND d.next_us <= ?2
         ORDER BY d.next_us, d.id LIMIT ?3"
    ))?;
    let rows = st.query_map(
        params![channel, now_us, i64::try_from(limit).unwrap_or(i64::MAX)],
        |r| {
            let delivery = delivery_row(r)?;
            // The alert's columns follow the delivery's eight.
            let alert = Alert {
                id: r.get(8)?,
                key: r.get(9)?,
                rule: r.get(10)?,
                severity: Severity::parse(&r.get::<_, String>(11)?).unwrap_or(Severity::Critical),
                subject: r.get(12)?,
                raised_us: r.get(13)?,
                last_trigger_us: r.get(14)?,
                repeats: u64::try_from(r.get::<_, i64>(15)?).unwrap_or(0),
                repeats_before: u64::try_from(r.get::<_, i64>(16)?).unwrap_or(0),
                window_seconds: r
                    .get::<_, Option<i64>>(17)?
                    .and_then(|w| u64::try_from(w).ok()),
                content: serde_json::from_str(&r.get::<_, String>(18)?).unwrap_or_default(),
                acked_us: r.get(19)?,
                acked_by: r.get(20)?,
                ack_note: r.get(21)?,
                escalated_us: r.get(22)?,
                deliveries: Vec::new(),
            };
            Ok(DueDelivery { delivery, alert })
        },
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(super) fn next_delivery_us(s: &SqliteStore, channel: &str) -> Result<Option<i64>, StoreError> {
    let c = s.reader();
    Ok(c.query_row(
        "SELECT min(next_us) FROM alert_deliveries WHERE channel = ?1 AND state = 'pending'",
        params![channel],
        |r| r.get(0),
    )?)
}

pub(super) fn delivery_done(s: &SqliteStore, id: i64, now_us: i64) -> Result<(), StoreError> {
    let c = s.writer();
    c.execute(
        "UPDATE alert_deliveries SET state = 'delivered', delivered_us = ?2,
             attempts = attempts + 1, last_error = NULL
         WHERE id = ?1 AND state = 'pending'",
        params![id, now_us],
    )?;
    Ok(())
}

pub(super) fn delivery_failed(
    s: &SqliteStore,
    id: i64,
    error: &str,
    next_us: Option<i64>,
) -> Result<(), StoreError> {
    let c = s.writer();
    let error: String = error.chars().take(1000).collect();
    match next_us {
        Some(n) => c.execute(
            "UPDATE alert_deliveries SET attempts = attempts + 1, last_error = ?2, next_us = ?3
             WHERE id = ?1 AND state = 'pending'",
            params![id, error, n],
        )?,
        None => c.execute(
            "UPDATE alert_deliveries SET attempts = attempts + 1, last_error = ?2, state = 'failed'
             WHERE id = ?1 AND state = 'pending'",
            params![id, error],
        )?,
    };
    Ok(())
}

pub(super) fn delivery_postpone(s: &SqliteStore, id: i64, next_us: i64) -> Result<(), StoreError> {
    let c = s.writer();
    c.execute(
        "UPDATE alert_deliveries SET next_us = ?2 WHERE id = ?1 AND state = 'pending'",
        params![id, next_us],
    )?;
    Ok(())
}

pub(super) fn escalate_alerts(
    s: &SqliteStore,
    raised_before_us: i64,
    channels: &[String],
    now_us: i64,
) -> Result<Vec<i64>, StoreError> {
    let mut c = s.writer();
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let ids: Vec<i64> = {
        let mut st = tx.prepare_cached(
            "SELECT id FROM alerts WHERE severity = 'critical' AND escalated_us IS NULL
                 AND acked_us IS NULL AND raised_us <= ?1 ORDER BY id",
        )?;
        let rows = st.query_map(params![raised_before_us], |r| r.get(0))?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    for id in &ids {
        for ch in channels {
            tx.execute(
                "INSERT OR IGNORE INTO alert_deliveries (alert_id, channel, escalation, state, next_us)
                 VALUES (?1, ?2, 1, 'pending', ?3)",
                params![id, ch, now_us],
            )?;
        }
        tx.execute(
            "UPDATE alerts SET escalated_us = ?2 WHERE id = ?1",
            params![id, now_us],
        )?;
    }
    tx.commit()?;
    Ok(ids)
}

pub(super) fn fail_orphan_deliveries(
    s: &SqliteStore,
    channels: &[String],
) -> Result<u64, StoreError> {
    let c = s.writer();
    let n = c.execute(
        "UPDATE alert_deliveries SET state = 'failed',
             last_error = 'the channel is no longer configured'
         WHERE state = 'pending' AND channel NOT IN (SELECT value FROM json_each(?1))",
        params![serde_json::to_string(channels).unwrap_or_else(|_| "[]".into())],
    )?;
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    const S: i64 = 1_000_000;

    fn trigger(key: &str, severity: Severity, window: Option<u64>, count: u64) -> NewTrigger {
        NewTrigger {
            key: key.into(),
            rule: key.split('|').next().unwrap().into(),
            severity,
            subject: key.split('|').nth(1).unwrap_or("").into(),
            content: Content::default(),
            window_seconds: window,
            count,
            channels: vec!["mail".into(), "hook".into()],
        }
    }

    #[test]
    fn the_outbox_throttles_counts_escalates_and_cancels() {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(d.path()).unwrap();
        assert_eq!(s.alert_cursor().unwrap(), 0);
        let t = trigger("alert.capture.drops|m1", Severity::Warning, Some(60), 1);
        let r = s
            .raise_alerts(std::slice::from_ref(&t), Some(7), 100 * S)
            .unwrap();
        let Raised::New(first) = r[0] else {
            panic!("{r:?}")
        };
        assert_eq!(s.alert_cursor().unwrap(), 7);
        // Inside the window: repeats, folded (one trigger counted 98 times, then one).
        let r = s
            .raise_alerts(
                &[
                    NewTrigger {
                        count: 98,
                        ..t.clone()
                    },
                    t.clone(),
                ],
                Some(5),
                159 * S,
            )
            .unwrap();
        assert_eq!(r, [Raised::Repeat(first), Raised::Repeat(first)]);
        assert_eq!(s.alert_cursor().unwrap(), 7, "the cursor never goes back");
        let a = s.alert(first).unwrap().unwrap();
        assert_eq!(
            (a.repeats, a.repeats_before, a.deliveries.len()),
            (99, 0, 2)
        );
        // After it: a new alert that reports the 99.
        let r = s
            .raise_alerts(std::slice::from_ref(&t), None, 160 * S)
            .unwrap();
        let Raised::New(second) = r[0] else {
            panic!("{r:?}")
        };
        assert_eq!(s.alert(second).unwrap().unwrap().repeats_before, 99);
        // Once: never again.
        let once = trigger("alert.agent.silent|m1@5", Severity::Critical, None, 1);
        let r = s
            .raise_alerts(std::slice::from_ref(&once), None, 200 * S)
            .unwrap();
        let Raised::New(crit) = r[0] else {
            panic!("{r:?}")
        };
        assert_eq!(
            s.raise_alerts(&[once], None, 99_999 * S).unwrap(),
            [Raised::Repeat(crit)]
        );

        // Deliveries: due, failed with a retry, done.
        let due = s.due_deliveries("mail", 200 * S, 10).unwrap();
        assert_eq!(
            due.iter().map(|d| d.alert.id).collect::<Vec<_>>(),
            [first, second, crit]
        );
        s.delivery_failed(due[0].delivery.id, "refused", Some(300 * S))
            .unwrap();
        s.delivery_done(due[1].delivery.id, 200 * S).unwrap();
        s.delivery_done(due[1].delivery.id, 201 * S).unwrap(); // no-op once delivered
        let due = s.due_deliveries("mail", 250 * S, 10).unwrap();
        assert_eq!(due.len(), 1, "the failed one waits for its retry");
        assert_eq!(s.next_delivery_us("mail").unwrap(), Some(200 * S));
        let a = s.alert(second).unwrap().unwrap();
        let mail = a.deliveries.iter().find(|d| d.channel == "mail").unwrap();
        assert_eq!(
            (mail.state.as_str(), mail.attempts, mail.delivered_us),
            ("delivered", 1, Some(200 * S))
        );

        // Escalation: critical, unacknowledged, old enough; once.
        assert!(s
            .escalate_alerts(199 * S, &["pager".into()], 300 * S)
            .unwrap()
            .is_empty());
        assert_eq!(
            s.escalate_alerts(200 * S, &["pager".into()], 300 * S)
                .unwrap(),
            [crit]
        );
        assert!(s
            .escalate_alerts(400 * S, &["pager".into()], 400 * S)
            .unwrap()
            .is_empty());
        // Acknowledging cancels the queued escalation, and keeps the first name.
        let a = s
            .ack_alert(crit, "yamada", Some("on it"), 500 * S)
            .unwrap()
            .unwrap();
        assert_eq!(a.acked_by.as_deref(), Some("yamada"));
        let esc = a.deliveries.iter().find(|d| d.escalation).unwrap();
        assert_eq!(esc.state, "cancelled");
        let again = s.ack_alert(crit, "tanaka", None, 600 * S).unwrap().unwrap();
        assert_eq!(
            (again.acked_by.as_deref(), again.acked_us),
            (Some("yamada"), Some(500 * S))
        );
        assert!(s.ack_alert(12345, "x", None, 1).unwrap().is_none());
        assert!(s.due_deliveries("pager", i64::MAX, 10).unwrap().is_empty());

        // Filters.
        let open = s
            .alerts(&crate::alerts::AlertFilter {
                state: AlertState::Open,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            open.iter().map(|a| a.id).collect::<Vec<_>>(),
            [second, first]
        );
        let crit_only = s
            .alerts(&crate::alerts::AlertFilter {
                min_severity: Some(Severity::Critical),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(crit_only.len(), 1);

        // Channels removed from the configuration: their pending deliveries are given up.
        assert_eq!(s.fail_orphan_deliveries(&["mail".into()]).unwrap(), 3);
        assert!(s.due_deliveries("hook", i64::MAX, 10).unwrap().is_empty());
    }
}
