//! The background work of alerts while `serve` runs: the evaluator (woken after every
//! ingest commit, and every `evaluate_every_seconds`) and one delivery worker per
//! channel. [`start`] spawns them; dropping the returned [`Running`] stops them.
//!
//! Retries back off exponentially from `retry_first_seconds` to `retry_max_seconds`
//! with "equal jitter" (half the delay fixed, half random: M. Brooker, "Exponential
//! Backoff And Jitter", AWS Architecture Blog, 2015), so deliveries to a receiver that
//! comes back do not arrive in lockstep; a delivery is given up `give_up_hours` after its
//! alert was raised. The schedule lives in the outbox (`next_us` of each delivery), not
//! in a retry loop in memory (as `backon` would keep it), so it survives restarts.

use super::channels::Sender;
use super::config::Channel;
use super::engine::Engine;
use super::render::Message;
use super::Severity;
use crate::api::AppState;
use crate::metrics::DeliveryOutcome;
use crate::store::StoreError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Deliveries a worker takes at once.
const BATCH: usize = 16;
/// How long quiet hours postpone a delivery before looking again.
const QUIET_RECHECK_US: i64 = 5 * 60 * 1_000_000;
/// Evaluation rounds start at least this far apart.
const MIN_ROUND_GAP: Duration = Duration::from_millis(500);
/// A worker looks at the outbox at least this often.
const IDLE_POLL: Duration = Duration::from_secs(30);

/// What a round gives.
type RoundResult = Result<(Vec<i64>, bool), StoreError>;

/// Nice 10 for the calling thread (setpriority(2) on a thread id applies to that thread
/// only on Linux). Failing is harmless: the round then runs at normal priority.
fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), 10) {
        tracing::debug!("alert rounds keep the normal priority: {e}");
    }
}

/// The alert tasks; stops them when dropped.
pub struct Running {
    stop: watch::Sender<bool>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Wakes the evaluator and the workers.
#[derive(Default)]
pub struct Wake {
    evaluate: Notify,
    deliver: Vec<(String, Arc<Notify>)>,
}

impl Wake {
    /// After an ingest commit.
    pub fn evaluate(&self) {
        self.evaluate.notify_one();
    }

    fn deliver(&self) {
        for (_, n) in &self.deliver {
            n.notify_one();
        }
    }
}

/// The exponential backoff with equal jitter for the `attempts`-th failure (1-based).
pub fn backoff(attempts: u32, first_s: u64, max_s: u64) -> Duration {
    let exp = first_s.saturating_mul(1u64 << attempts.saturating_sub(1).min(30));
    let d = exp.min(max_s).max(1) * 1000;
    let half = d / 2;
    Duration::from_millis(half + rand::random_range(0..=d - half))
}

/// Spawns the evaluator and the channel workers on the current runtime.
pub fn start(state: AppState, engine: Arc<Engine>) -> Running {
    let (stop, rx) = watch::channel(false);
    let mut senders = Vec::new();
    let mut notifies = Vec::new();
    for ch in &engine.config().channels {
        match Sender::new(ch.clone()) {
            Ok(s) => {
                let n = Arc::new(Notify::new());
                notifies.push((ch.name.clone(), n.clone()));
                senders.push((s, n));
            }
            Err(e) => tracing::error!(channel = %ch.name, "alert channel unusable: {e}"),
        }
    }
    let wake = Arc::new(Wake {
        evaluate: Notify::new(),
        deliver: notifies,
    });
    state.set_alert_wake(wake.clone());
    let offset = state.merged().policy().utc_offset_secs;
    for (sender, notify) in senders {
        let st = state.clone();
        let cfg = engine.config().clone();
        let rx = rx.clone();
        tokio::spawn(async move {
            deliver_loop(st, sender, notify, cfg, offset, rx).await;
        });
    }
    let every = Duration::from_secs(engine.config().evaluate_every_seconds);
    // Rounds run on a thread of their own at a lower CPU priority: deriving a large
    // inventory takes a core for a while, and ingest must not wait behind it.
    let (round_tx, round_rx) =
        std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<RoundResult>>();
    {
        let st = state.clone();
        let e = engine.clone();
        let spawned = std::thread::Builder::new()
            .name("setten-alerts".into())
            .spawn(move || {
                lower_priority();
                while let Ok(reply) = round_rx.recv() {
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        e.round(&**st.store(), st.merged(), crate::now_us())
                    }))
                    .unwrap_or_else(|_| {
                        Err(StoreError::Backend("the alert round panicked".into()))
                    });
                    let _ = reply.send(r);
                }
            });
        if let Err(e) = spawned {
            tracing::error!("alert evaluation cannot start: {e}");
        }
    }
    let mut rx2 = rx;
    tokio::spawn(async move {
        loop {
            let started = std::time::Instant::now();
            let (reply, answer) = tokio::sync::oneshot::channel();
            if round_tx.send(reply).is_err() {
                tracing::error!("alert evaluation stopped: its thread is gone");
                break;
            }
            let r = answer.await;
            tracing::debug!(ms = started.elapsed().as_millis() as u64, "alert round");
            match r {
                Ok(Ok((new, escalated))) => {
                    if !new.is_empty() {
                        tracing::info!(alerts = ?new, "alerts raised");
                        state.metrics().alerts_raised(new.len() as u64);
                    }
                    if !new.is_empty() || escalated {
                        wake.deliver();
                    }
                }
                Ok(Err(e)) => tracing::error!("alert evaluation failed (it is repeated): {e}"),
                Err(e) => tracing::error!("alert evaluation failed (it is repeated): {e}"),
            }
            // At most one round per MIN_ROUND_GAP: under a stream of batches the rounds
            // take whatever arrived meanwhile together (a wake in the gap is kept by the
            // Notify's permit), instead of deriving the inventory after every batch.
            tokio::select! {
                () = tokio::time::sleep(MIN_ROUND_GAP.saturating_sub(started.elapsed())) => {}
                _ = rx2.changed() => break,
            }
            tokio::select! {
                () = wake.evaluate.notified() => {}
                () = tokio::time::sleep(every) => {}
                _ = rx2.changed() => break,
            }
        }
    });
    Running { stop }
}

async fn deliver_loop(
    state: AppState,
    sender: Sender,
    notify: Arc<Notify>,
    cfg: super::config::AlertsConfig,
    utc_offset_secs: i32,
    mut stop: watch::Receiver<bool>,
) {
    let ch: Channel = sender.channel().clone();
    let name = ch.name.clone();
    loop {
        if *stop.borrow() {
            return;
        }
        let now = crate::now_us();
        let st = state.clone();
        let n = name.clone();
        let due =
            tokio::task::spawn_blocking(move || st.store().due_deliveries(&n, now, BATCH)).await;
        let due = match due {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                tracing::error!(channel = %name, "reading the outbox: {e}");
                Vec::new()
            }
            Err(e) => {
                tracing::error!(channel = %name, "reading the outbox: {e}");
                Vec::new()
            }
        };
        let full = due.len() == BATCH;
        for d in due {
            if *stop.borrow() {
                return;
            }
            let now = crate::now_us();
            let quiet = d.alert.severity != Severity::Critical
                && ch.quiet_at(now.div_euclid(1_000_000), utc_offset_secs);
            let st = state.clone();
            let id = d.delivery.id;
            if quiet {
                let _ = tokio::task::spawn_blocking(move || {
                    st.store().delivery_postpone(id, now + QUIET_RECHECK_US)
                })
                .await;
                continue;
            }
            let msg = Message {
                alert: &d.alert,
                delivery: id,
                escalation: d.delivery.escalation,
                test: false,
                lang: ch.lang,
                utc_offset_secs,
                now_us: now,
            };
            let outcome = sender.send(&msg).await;
            let done = crate::now_us();
            let attempts = d.delivery.attempts.saturating_add(1);
            let r = match outcome {
                Ok(()) => {
                    tracing::info!(channel = %name, alert = d.alert.id, delivery = id, attempts, "alert delivered");
                    state.metrics().delivery(DeliveryOutcome::Delivered);
                    tokio::task::spawn_blocking(move || st.store().delivery_done(id, done)).await
                }
                Err(e) => {
                    let give_up_us = i64::try_from(cfg.give_up_hours).unwrap_or(72) * 3_600_000_000;
                    let next = if done.saturating_sub(d.alert.raised_us) >= give_up_us {
                        None
                    } else {
                        let wait =
                            backoff(attempts, cfg.retry_first_seconds, cfg.retry_max_seconds);
                        Some(done + i64::try_from(wait.as_micros()).unwrap_or(i64::MAX / 2))
                    };
                    state.metrics().delivery(if next.is_some() {
                        DeliveryOutcome::Failed
                    } else {
                        DeliveryOutcome::GivenUp
                    });
                    match next {
                        Some(n) => {
                            tracing::warn!(channel = %name, alert = d.alert.id, delivery = id, attempts,
                            retry_in_s = (n - done) / 1_000_000, "alert delivery failed: {e}")
                        }
                        None => {
                            tracing::error!(channel = %name, alert = d.alert.id, delivery = id, attempts,
                            "alert delivery given up after {} h: {e}", cfg.give_up_hours)
                        }
                    }
                    tokio::task::spawn_blocking(move || st.store().delivery_failed(id, &e, next))
                        .await
                }
            };
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(channel = %name, delivery = id, "recording the delivery: {e}")
                }
                Err(e) => {
                    tracing::error!(channel = %name, delivery = id, "recording the delivery: {e}")
                }
            }
        }
        if full {
            continue;
        }
        let st = state.clone();
        let n = name.clone();
        let next = tokio::task::spawn_blocking(move || st.store().next_delivery_us(&n))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        let wait = match next {
            Some(t) => {
                let us = t.saturating_sub(crate::now_us()).max(0);
                Duration::from_micros(u64::try_from(us).unwrap_or(0)).min(IDLE_POLL)
            }
            None => IDLE_POLL,
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            () = notify.notified() => {}
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_its_bounds_with_jitter() {
        for attempts in 1..=40u32 {
            let exp = (5u64 << (attempts - 1).min(30)).min(900) * 1000;
            for _ in 0..20 {
                let d = backoff(attempts, 5, 900).as_millis() as u64;
                assert!(
                    d >= exp / 2 && d <= exp,
                    "attempt {attempts}: {d} ms vs {exp}"
                );
            }
        }
        // Jitter: not all the same.
        let v: std::collections::HashSet<u128> =
            (0..50).map(|_| backoff(3, 5, 900).as_millis()).collect();
        assert!(v.len() > 5, "{v:?}");
    }
}
