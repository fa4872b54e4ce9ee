//! The merged inventory: one [`Inventory`] for all agents, built with the agent's own
//! merge code ([`Inventory::apply`]), so the same session seen by two agents is one
//! session that lists both, and two agents give the points one agent would.
//!
//! At start every stored inventory finding is applied (by agent, then sequence number).
//! Afterwards the inventory follows the store by [`Cursor`]: committed batches are
//! applied in commit order (a batch whose predecessor has not been handed in yet waits,
//! up to [`MAX_WAITING_FINDINGS`]); before each read, and whenever the store holds rows
//! nobody handed in (another process imported a file), the inventory catches up from the
//! store itself. Either way every stored finding is applied exactly once. Points are
//! derived on request and cached until the inventory or the ledger in force changes.
//!
//! Ingest never waits for a derivation: while one holds the inventory for reading, a
//! committed batch is handed over in a queue of its own and applied by the next writer
//! (at most [`MAX_WAITING_FINDINGS`] queue so; beyond that ingest waits).

use crate::store::{Cursor, Replay, Replayed, Store, StoreError};
use serde::Serialize;
use setten_agent::classify::Service;
use setten_agent::findings::{Batch, Body, Finding};
use setten_agent::inventory::ledger::{Entry, Ledger};
use setten_agent::inventory::policy::{Policy, RiskId};
use setten_agent::inventory::{ConnectionPoint, Inventory, PointsCx};
use setten_agent::names::oui::{format_mac, Oui};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The finding kinds that feed the inventory (those `Body::is_inventory` holds for).
pub const INVENTORY_KINDS: &[&str] = &["session", "lateral", "names", "host_mac"];

/// Findings of committed batches kept waiting for an earlier batch before the inventory
/// catches up from the store instead.
pub const MAX_WAITING_FINDINGS: usize = 50_000;

/// The ledger statuses a point can have.
pub const LEDGER_STATUSES: &[&str] = &["registered", "unregistered", "drifted", "no_ledger"];

struct Inner {
    inv: Inventory,
    cursor: Cursor,
    /// Committed batches waiting for an earlier one, by the cursor they follow.
    waiting: BTreeMap<Cursor, Waiting>,
    waiting_findings: usize,
}

struct Waiting {
    agent: String,
    /// The batch's inventory bodies.
    bodies: Vec<Body>,
    /// The cursor of its last row.
    end: Cursor,
}

impl Inner {
    /// Applies waiting batches that now follow on.
    fn apply_waiting(&mut self, policy: &Policy) {
        while let Some(w) = self.waiting.remove(&self.cursor) {
            self.waiting_findings = self.waiting_findings.saturating_sub(w.bodies.len());
            for b in &w.bodies {
                self.inv.apply(&w.agent, b, policy);
            }
            self.cursor = w.end;
        }
    }

    /// Forgets waiting batches already applied from the store.
    fn drop_covered(&mut self) {
        let cursor = self.cursor;
        let before = self.waiting.len();
        self.waiting.retain(|_, w| w.end > cursor);
        if self.waiting.len() != before {
            self.waiting_findings = self.waiting.values().map(|w| w.bodies.len()).sum();
        }
    }
}

#[derive(Default)]
struct Cache {
    /// The ledger in force: its id and the parsed ledger (`None` if it no longer parses).
    ledger: Option<(i64, Option<Arc<Ledger>>)>,
    /// MAC vendors for the MACs last shown.
    oui: Option<(Vec<[u8; 6]>, Arc<Oui>)>,
    view: Option<Arc<View>>,
}

/// The merged inventory and what is derived from it.
pub struct Merged {
    policy: Policy,
    oui_dir: Option<PathBuf>,
    inner: RwLock<Inner>,
    /// Committed batches handed over while a derivation held `inner` for reading: the
    /// ingest path never waits for a derivation (which takes ~100 ms at 10,000 points);
    /// the next holder of the write lock moves them into `inner.waiting`.
    incoming: Mutex<Vec<(Cursor, Waiting)>>,
    incoming_findings: AtomicU64,
    cache: Mutex<Cache>,
    unreadable: AtomicU64,
}

/// The points, unseen ledger entries and hosts at one moment.
#[derive(Debug)]
pub struct View {
    /// The store position it reflects.
    pub cursor: Cursor,
    /// The ledger it was reconciled with.
    pub ledger_id: Option<i64>,
    /// Connection points, most severe first.
    pub points: Vec<ConnectionPoint>,
    /// Ledger entries no point matched.
    pub unseen: Vec<Entry>,
    /// Internal hosts of the points and the hosts reached through them.
    pub hosts: Vec<Host>,
}

/// An internal host: the internal end of points, or reached through them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Host {
    /// Address.
    pub ip: IpAddr,
    /// Names (DHCP, NetBIOS, LLMNR, mDNS, DNS).
    pub names: Vec<String>,
    /// Its own MAC, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The MAC's registered organisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_vendor: Option<String>,
    /// Points it is the internal end of.
    pub points: Vec<String>,
    /// Points through which it was reached, and how.
    pub reached_through: Vec<ReachedThrough>,
}

/// A host reached through a point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReachedThrough {
    /// The point's id.
    pub point: String,
    /// Services used to reach the host.
    pub services: Vec<Service>,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl Merged {
    /// Builds the inventory from every stored finding. `oui_dir` replaces the system's
    /// IEEE registry directory (`SETTEN_IEEE_DATA`).
    pub fn build(
        store: &dyn Store,
        policy: Policy,
        oui_dir: Option<PathBuf>,
    ) -> Result<Merged, StoreError> {
        let m = Merged {
            policy,
            oui_dir,
            inner: RwLock::new(Inner {
                inv: Inventory::new(),
                cursor: 0,
                waiting: BTreeMap::new(),
                waiting_findings: 0,
            }),
            cache: Mutex::new(Cache::default()),
            incoming: Mutex::new(Vec::new()),
            incoming_findings: AtomicU64::new(0),
            unreadable: AtomicU64::new(0),
        };
        {
            let mut g = write(&m.inner);
            let Inner { inv, cursor, .. } = &mut *g;
            *cursor = store.replay(Replay::All, INVENTORY_KINDS, &mut |r| {
                apply_row(inv, &m.policy, &m.unreadable, r)
            })?;
        }
        Ok(m)
    }

    /// Number of connection points.
    pub fn point_count(&self) -> usize {
        read(&self.inner).inv.len()
    }

    /// Stored findings that could not be read back (and are left out of the inventory).
    pub fn unreadable(&self) -> u64 {
        self.unreadable.load(Ordering::Relaxed)
    }

    /// The site policy in use.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Takes in a batch of `agent` the store has just committed.
    pub fn committed(
        &self,
        store: &dyn Store,
        agent: &str,
        batch: Batch,
        done: crate::store::Ingested,
    ) -> Result<(), StoreError> {
        let Some(&(_, end)) = done.new.last() else {
            return Ok(()); // Nothing new: nothing to apply, no gap left behind.
        };
        let mut findings: Vec<Option<Finding>> = batch.findings.into_iter().map(Some).collect();
        let bodies: Vec<Body> = done
            .new
            .iter()
            .filter_map(|&(i, _)| findings.get_mut(i).and_then(Option::take))
            .map(|f| f.body)
            .filter(Body::is_inventory)
            .collect();
        let n = bodies.len() as u64;
        lock(&self.incoming).push((
            done.cursor_before,
            Waiting {
                agent: agent.to_owned(),
                bodies,
                end,
            },
        ));
        let queued = self.incoming_findings.fetch_add(n, Ordering::Relaxed) + n;
        // Busy with a derivation: leave the batch for the next writer, unless too much
        // waits (then wait like before, so memory stays bounded).
        let mut g = match self.inner.try_write() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                if queued as usize <= MAX_WAITING_FINDINGS {
                    return Ok(());
                }
                write(&self.inner)
            }
        };
        self.take_incoming(&mut g);
        g.apply_waiting(&self.policy);
        let overflow = g.waiting_findings > MAX_WAITING_FINDINGS;
        drop(g);
        if overflow {
            self.catch_up(store)?;
        }
        Ok(())
    }

    /// Moves the handed-over batches into `inner.waiting` (the write lock is held).
    fn take_incoming(&self, g: &mut Inner) {
        let taken = std::mem::take(&mut *lock(&self.incoming));
        for (before, w) in taken {
            let n = w.bodies.len();
            self.incoming_findings
                .fetch_sub(n as u64, Ordering::Relaxed);
            if before < g.cursor {
                continue; // Applied from the store by a catch-up already.
            }
            g.waiting_findings += n;
            g.waiting.insert(before, w);
        }
    }

    /// Applies whatever the store holds beyond what the inventory has seen.
    pub fn catch_up(&self, store: &dyn Store) -> Result<(), StoreError> {
        let latest = store.latest_cursor()?;
        if read(&self.inner).cursor >= latest {
            return Ok(());
        }
        let mut g = write(&self.inner);
        self.take_incoming(&mut g);
        let Inner { inv, cursor, .. } = &mut *g;
        let max = store.replay(Replay::After(*cursor), INVENTORY_KINDS, &mut |r| {
            apply_row(inv, &self.policy, &self.unreadable, r)
        })?;
        *cursor = (*cursor).max(max);
        g.drop_covered();
        g.apply_waiting(&self.policy);
        Ok(())
    }

    /// The current points, ledger reconciliation and hosts.
    pub fn view(&self, store: &dyn Store) -> Result<Arc<View>, StoreError> {
        self.catch_up(store)?;
        let latest_ledger = store.latest_ledger_id()?;
        // One derivation at a time: concurrent requests wait for it rather than repeat it.
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.ledger.as_ref().map(|(id, _)| *id) != latest_ledger {
            cache.ledger = match store.latest_ledger()? {
                None => None,
                Some(s) => {
                    let parsed = match Ledger::parse(&s.source, &s.bytes) {
                        Ok(l) => Some(Arc::new(l)),
                        Err(e) => {
                            // It parsed at import; only a changed parser can refuse it now.
                            tracing::error!(
                                ledger = s.id,
                                "the stored ledger no longer reads: {e}"
                            );
                            None
                        }
                    };
                    Some((s.id, parsed))
                }
            };
        }
        let ledger_id = cache.ledger.as_ref().map(|(id, _)| *id);
        let ledger = cache.ledger.as_ref().and_then(|(_, l)| l.clone());
        let g = read(&self.inner);
        if let Some(v) = &cache.view {
            if v.cursor == g.cursor && v.ledger_id == ledger_id {
                return Ok(v.clone());
            }
        }
        let macs = shown_macs(&g.inv);
        let oui = match &cache.oui {
            Some((m, o)) if *m == macs => o.clone(),
            _ => {
                let o = Arc::new(self.load_oui(&macs));
                cache.oui = Some((macs, o.clone()));
                o
            }
        };
        let pts = g.inv.points(&PointsCx {
            policy: &self.policy,
            ledger: ledger.as_deref(),
            oui: &oui,
        });
        let hosts = hosts(&g.inv, &pts.points, &oui);
        let view = Arc::new(View {
            cursor: g.cursor,
            ledger_id,
            points: pts.points,
            unseen: pts.unseen,
            hosts,
        });
        cache.view = Some(view.clone());
        Ok(view)
    }

    /// Start and end (µs) of each session the point `id` holds, by start. Sessions
    /// beyond the agent's per-point cap are counted in the point but not kept, so they
    /// are not here.
    pub fn point_sessions(
        &self,
        store: &dyn Store,
        id: &str,
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        self.catch_up(store)?;
        let g = read(&self.inner);
        let mut v: Vec<(u64, u64)> = g
            .inv
            .keyed_sessions()
            .filter(|(k, _)| k.id() == id)
            .flat_map(|(_, s)| s.iter().map(|s| (s.first_us, s.last_us)))
            .collect();
        v.sort_unstable();
        Ok(v)
    }

    fn load_oui(&self, macs: &[[u8; 6]]) -> Oui {
        if macs.is_empty() {
            return Oui::default();
        }
        match &self.oui_dir {
            Some(dir) => Oui::load_dir_for(dir, macs).unwrap_or_else(|e| {
                tracing::warn!(
                    "{}: cannot read the MAC vendor registry: {e}",
                    dir.display()
                );
                Oui::default()
            }),
            None => Oui::load_default_for(macs),
        }
    }
}

fn apply_row(inv: &mut Inventory, policy: &Policy, unreadable: &AtomicU64, r: Replayed<'_>) {
    match serde_json::from_str::<Body>(r.body) {
        Ok(body) => inv.apply(r.agent, &body, policy),
        Err(e) => {
            unreadable.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                agent = r.agent,
                seq = r.seq,
                kind = r.kind,
                "stored finding cannot be read back, left out of the inventory: {e}"
            );
        }
    }
}

/// The MACs the points and the hosts reached through them may show.
fn shown_macs(inv: &Inventory) -> Vec<[u8; 6]> {
    let mut v = inv.point_macs();
    v.extend(
        inv.laterals()
            .filter_map(|(k, _, _)| inv.host_mac(k.server)),
    );
    v.sort_unstable();
    v.dedup();
    v
}

fn hosts(inv: &Inventory, points: &[ConnectionPoint], oui: &Oui) -> Vec<Host> {
    let mut hosts: BTreeMap<IpAddr, Host> = BTreeMap::new();
    let blank = |ip: IpAddr| Host {
        ip,
        names: Vec::new(),
        mac: None,
        mac_vendor: None,
        points: Vec::new(),
        reached_through: Vec::new(),
    };
    for p in points {
        let h = hosts
            .entry(p.internal.ip)
            .or_insert_with(|| blank(p.internal.ip));
        if h.names.is_empty() {
            h.names.clone_from(&p.internal.names);
        }
        if h.mac.is_none() {
            h.mac.clone_from(&p.internal.mac);
            h.mac_vendor.clone_from(&p.internal.mac_vendor);
        }
        h.points.push(p.id.clone());
        for r in &p.reach {
            let h = hosts.entry(r.ip).or_insert_with(|| blank(r.ip));
            if h.names.is_empty() {
                h.names.clone_from(&r.names);
            }
            if h.mac.is_none() {
                if let Some(m) = inv.host_mac(r.ip) {
                    h.mac = Some(format_mac(m));
                    h.mac_vendor = oui.vendor(m).map(str::to_owned);
                }
            }
            h.reached_through.push(ReachedThrough {
                point: p.id.clone(),
                services: r.services.clone(),
            });
        }
    }
    let mut out: Vec<Host> = hosts.into_values().collect();
    for h in &mut out {
        h.points.sort();
        h.reached_through.sort_by(|a, b| a.point.cmp(&b.point));
    }
    out
}

/// Which points `GET /api/v1/connection-points` returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Service.
    pub service: Option<Service>,
    /// Carrying this risk.
    pub risk: Option<RiskId>,
    /// Ledger status.
    pub ledger: Option<&'static str>,
    /// Seen by this agent.
    pub agent: Option<String>,
    /// Active at or after (µs).
    pub since_us: Option<u64>,
    /// Active at or before (µs).
    pub until_us: Option<u64>,
}

/// A query parameter that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FilterError {
    /// The parameter.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn choices<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.collect::<Vec<_>>().join(", ")
}

impl Filter {
    /// From query parameters; unknown and repeated parameters are refused.
    pub fn from_query(pairs: &[(String, String)]) -> Result<Filter, FilterError> {
        let err = |field: &str, message: String| FilterError {
            field: field.to_owned(),
            message: format!("{field}: {message}"),
        };
        let mut f = Filter::default();
        let mut seen: Vec<&str> = Vec::new();
        for (k, v) in pairs {
            if seen.contains(&k.as_str()) {
                return Err(err(k, "given more than once".into()));
            }
            match k.as_str() {
                "service" => {
                    f.service = Some(Service::parse(v).ok_or_else(|| {
                        err(
                            k,
                            format!(
                                "`{}` is not a service; one of: {}",
                                v.escape_debug(),
                                choices(Service::ALL.iter().map(|s| s.as_str()))
                            ),
                        )
                    })?);
                }
                "risk" => {
                    f.risk = Some(RiskId::parse(v).ok_or_else(|| {
                        err(
                            k,
                            format!(
                                "`{}` is not a risk id; one of: {}",
                                v.escape_debug(),
                                choices(RiskId::ALL.iter().map(|r| r.as_str()))
                            ),
                        )
                    })?);
                }
                "ledger" => {
                    f.ledger = Some(
                        LEDGER_STATUSES
                            .iter()
                            .copied()
                            .find(|s| s == v)
                            .ok_or_else(|| {
                                err(
                                    k,
                                    format!(
                                        "`{}` is not a ledger status; one of: {}",
                                        v.escape_debug(),
                                        LEDGER_STATUSES.join(", ")
                                    ),
                                )
                            })?,
                    );
                }
                "agent" => f.agent = Some(v.clone()),
                "since" | "until" => {
                    let t = crate::time::parse_rfc3339(v).map_err(|m| err(k, m))?;
                    let t = u64::try_from(t).unwrap_or(0);
                    if k == "since" {
                        f.since_us = Some(t);
                    } else {
                        f.until_us = Some(t);
                    }
                }
                _ => {
                    let shown: String = k.chars().take(64).collect();
                    return Err(FilterError {
                        field: shown.clone(),
                        message: format!(
                            "unknown query parameter `{}`; known: service, risk, ledger, agent, since, until",
                            shown.escape_debug()
                        ),
                    });
                }
            }
            seen.push(k.as_str());
        }
        if let (Some(a), Some(b)) = (f.since_us, f.until_us) {
            if a > b {
                return Err(err("since", "is after `until`".into()));
            }
        }
        Ok(f)
    }

    /// Whether a point passes. A point passes the time filter when its activity
    /// (first to last seen) overlaps the period.
    pub fn matches(&self, p: &ConnectionPoint) -> bool {
        self.service.is_none_or(|s| p.service == s)
            && self.risk.is_none_or(|r| p.risks.iter().any(|x| x.id == r))
            && self.ledger.is_none_or(|l| p.ledger.status == l)
            && self
                .agent
                .as_ref()
                .is_none_or(|a| p.agents.iter().any(|x| x == a))
            && self.since_us.is_none_or(|t| p.last_us >= t)
            && self.until_us.is_none_or(|t| p.first_us <= t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inventory_kinds_are_those_the_agent_applies() {
        // One body of each kind, from its JSON form (the wire).
        let bodies = [
            json!({"kind":"lateral","data":{"client":"10.0.0.1","server":"10.0.0.2","service":"rdp","first_us":1,"last_us":2}}),
            json!({"kind":"host_mac","data":{"ip":"10.0.0.1","mac":[0,1,2,3,4,5]}}),
            json!({"kind":"capture_quality","data":{}}),
            json!({"kind":"health","data":{}}),
            json!({"kind":"backup","data":{}}),
        ];
        for b in bodies {
            let body: Body = serde_json::from_value(b).unwrap();
            assert_eq!(
                INVENTORY_KINDS.contains(&body.kind()),
                body.is_inventory(),
                "{}",
                body.kind()
            );
        }
        // Session and names are inventory kinds by the agent's own definition too.
        assert!(INVENTORY_KINDS.contains(&"session") && INVENTORY_KINDS.contains(&"names"));
    }

    fn lateral(n: u8) -> Body {
        serde_json::from_value(json!({"kind":"lateral","data":{
            "client":"10.0.0.1","server":format!("10.0.0.{}", 10 + n),"service":"rdp","first_us":1,"last_us":2}}))
        .unwrap()
    }

    fn stored(
        store: &crate::store::SqliteStore,
        agent: &crate::store::AgentRecord,
        seq: u64,
        n: u8,
    ) -> (Batch, crate::store::Ingested) {
        let text = serde_json::json!({
            "schema": setten_agent::findings::SCHEMA,
            "agent": agent.name,
            "findings": [{"seq": seq, "at_us": 1, "body": lateral(n)}],
        })
        .to_string();
        crate::ingest::ingest(store, agent, text.as_bytes(), 1).unwrap()
    }

    #[test]
    fn batches_handed_in_out_of_order_or_not_at_all_are_each_applied_once() {
        let d = tempfile::tempdir().unwrap();
        let store = crate::store::SqliteStore::open(d.path()).unwrap();
        let (agent, _) = crate::admin::add_agent(&store, "m1", crate::token::Role::Agent).unwrap();
        let m = Merged::build(&store, Policy::default(), None).unwrap();
        let laterals = |m: &Merged| read(&m.inner).inv.laterals().count();
        let (b1, d1) = stored(&store, &agent, 1, 1);
        let (b2, d2) = stored(&store, &agent, 2, 2);
        // The second is handed in first: it waits for the first.
        m.committed(&store, "m1", b2, d2).unwrap();
        assert_eq!(laterals(&m), 0);
        assert_eq!(read(&m.inner).waiting.len(), 1);
        m.committed(&store, "m1", b1, d1).unwrap();
        assert_eq!(laterals(&m), 2);
        assert_eq!(read(&m.inner).cursor, 2);
        // A batch stored by another process is never handed in; the next one waits until
        // a read catches up from the store, which applies both once.
        let (_, _) = stored(&store, &agent, 3, 3);
        let (b4, d4) = stored(&store, &agent, 4, 4);
        m.committed(&store, "m1", b4.clone(), d4.clone()).unwrap();
        assert_eq!(laterals(&m), 2);
        m.view(&store).unwrap();
        assert_eq!(laterals(&m), 4);
        assert!(read(&m.inner).waiting.is_empty());
        // Handing in a batch a catch-up already applied changes nothing.
        m.committed(&store, "m1", b4, d4).unwrap();
        assert_eq!(read(&m.inner).cursor, 4);
        assert!(read(&m.inner).waiting.is_empty());
        // A rebuild from the store gives the same.
        let again = Merged::build(&store, Policy::default(), None).unwrap();
        assert_eq!(laterals(&again), 4);
    }

    #[test]
    fn ingest_does_not_wait_for_a_derivation_and_loses_nothing() {
        let d = tempfile::tempdir().unwrap();
        let store = crate::store::SqliteStore::open(d.path()).unwrap();
        let (agent, _) = crate::admin::add_agent(&store, "m1", crate::token::Role::Agent).unwrap();
        let m = Merged::build(&store, Policy::default(), None).unwrap();
        let laterals = |m: &Merged| read(&m.inner).inv.laterals().count();
        let (b1, d1) = stored(&store, &agent, 1, 1);
        let (b2, d2) = stored(&store, &agent, 2, 2);
        {
            // A derivation in progress holds the inventory for reading.
            let _deriving = read(&m.inner);
            // On another thread, so a wait would show as a timeout rather than a hang.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::scope(|s| {
                s.spawn(|| {
                    m.committed(&store, "m1", b1, d1).unwrap();
                    tx.send(()).unwrap();
                });
                rx.recv_timeout(std::time::Duration::from_secs(10))
                    .expect("committed waited for the derivation");
            });
            assert_eq!(lock(&m.incoming).len(), 1);
        }
        // The next writer applies it, in order, before its own batch.
        m.committed(&store, "m1", b2, d2).unwrap();
        assert_eq!(laterals(&m), 2);
        assert_eq!(read(&m.inner).cursor, 2);
        assert!(lock(&m.incoming).is_empty());
        assert_eq!(m.incoming_findings.load(Ordering::Relaxed), 0);
        // One handed over and never followed by another: the next read applies it.
        let (b3, d3) = stored(&store, &agent, 3, 3);
        {
            let _deriving = read(&m.inner);
            std::thread::scope(|s| {
                s.spawn(|| m.committed(&store, "m1", b3, d3).unwrap());
            });
        }
        assert_eq!(laterals(&m), 2);
        m.view(&store).unwrap();
        assert_eq!(laterals(&m), 3);
        assert!(lock(&m.incoming).is_empty() && read(&m.inner).waiting.is_empty());
    }

    fn q(pairs: &[(&str, &str)]) -> Result<Filter, FilterError> {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        Filter::from_query(&v)
    }

    #[test]
    fn filters_are_parsed_and_bad_ones_named() {
        let f = q(&[
            ("service", "rdp"),
            ("risk", "inbound_internet"),
            ("ledger", "unregistered"),
            ("agent", "m1"),
            ("since", "2026-10-05T00:00:00Z"),
            ("until", "2026-10-06T00:00:00+09:00"),
        ])
        .unwrap();
        assert_eq!(f.service, Some(Service::Rdp));
        assert_eq!(f.risk, Some(RiskId::InboundInternet));
        assert_eq!(f.ledger, Some("unregistered"));
        assert_eq!(f.since_us, Some(1_791_158_400_000_000));
        for (pairs, field) in [
            (vec![("service", "smtp")], "service"),
            (vec![("risk", "scary")], "risk"),
            (vec![("ledger", "maybe")], "ledger"),
            (vec![("since", "yesterday")], "since"),
            (vec![("colour", "red")], "colour"),
            (vec![("agent", "a"), ("agent", "b")], "agent"),
            (
                vec![
                    ("since", "2026-10-06T00:00:00Z"),
                    ("until", "2026-10-05T00:00:00Z"),
                ],
                "since",
            ),
        ] {
            let e = q(&pairs).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }
}
