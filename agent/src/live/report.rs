//! The inventory thread and the shipper.
//!
//! Every finished flow goes into the connection-point inventory and the capture-quality
//! counters, as in `analyze --inventory`. A report — every `inventory.interval`, soon
//! after a new connection point appears, and at shutdown — writes the whole inventory so
//! far to `<state_dir>/inventory.jsonl` (the same JSON Lines as `analyze --inventory
//! --format jsonl`, replaced atomically), and pushes to the spool what is new since the
//! previous report (sessions, reach, names, MACs: the collector merges them as one
//! inventory), the capture-quality record and the health record.
//!
//! Shipping runs on a thread of its own, so a collector outage (each round keeps trying
//! for `collector.timeout`) never holds up the inventory or the packet path: findings
//! stay in the spool until a later round delivers them.

use super::counters::Shared;
use super::health::Health;
use crate::findings::Body;
use crate::flow::Flow;
use crate::inventory::ledger::Ledger;
use crate::inventory::output;
use crate::inventory::quality::{self, FlowQuality};
use crate::inventory::{Inventory, PointsCx};
use crate::names::oui::Oui;
use crate::record::{FlowView, LocalNets, RecordCx};
use crate::ship::client::{self, Collector, ShipError, ShipOptions};
use crate::ship::spool::Spool;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Name of the state file in the state directory.
pub const STATE_FILE: &str = "inventory.jsonl";
/// Quiet time after one report before a new connection point triggers the next.
pub const CHANGE_GAP: Duration = Duration::from_secs(10);
/// How often the shipper retries findings left in the spool.
pub const RETRY_EVERY: Duration = Duration::from_secs(60);

/// Why a report is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// The report period passed.
    Interval,
    /// A new connection point appeared.
    Change,
    /// Shutdown.
    Final,
}

impl Why {
    fn as_str(self) -> &'static str {
        match self {
            Why::Interval => "periodic",
            Why::Change => "new connection point",
            Why::Final => "final",
        }
    }
}

/// What a report did.
#[derive(Clone, Debug, Default)]
pub struct Reported {
    /// Connection points in the inventory.
    pub points: usize,
    /// Findings pushed to the spool.
    pub spooled: usize,
    /// What failed (the state file or the spool), if anything.
    pub errors: Vec<String>,
}

/// What goes to the inventory thread.
pub enum InvMsg {
    /// Finished flows.
    Flows(Vec<Flow>),
    /// A worker's open remote-access and VPN flows, as sessions so far.
    Open(Box<Inventory>),
    /// Make a report.
    Report {
        /// Why.
        why: Why,
        /// The health record to include.
        health: Option<Box<Health>>,
        /// Where to say what was done.
        reply: Option<SyncSender<Reported>>,
    },
    /// Spool these findings now (a drop alarm).
    Spool(Vec<Body>),
    /// The ledger changed (configuration reloaded).
    Ledger(Option<Arc<Ledger>>),
}

/// What goes to the shipper.
pub enum ShipMsg {
    /// New findings are spooled.
    Now,
    /// Last round, with this budget; then stop.
    Final(Duration),
}

/// Everything the inventory thread needs.
pub struct InvTask {
    /// Messages in.
    pub rx: Receiver<InvMsg>,
    /// Counters and rules.
    pub shared: Arc<Shared>,
    /// Local networks.
    pub nets: Arc<RwLock<LocalNets>>,
    /// The ledger.
    pub ledger: Option<Arc<Ledger>>,
    /// `<state_dir>/inventory.jsonl`.
    pub state_file: PathBuf,
    /// The spool.
    pub spool: Spool,
    /// The shipper, when a collector is configured.
    pub ship: Option<SyncSender<ShipMsg>>,
    /// Sign of life, µs since the epoch.
    pub alive_us: Arc<AtomicU64>,
}

struct State {
    task: InvTask,
    /// Everything so far.
    inv: Inventory,
    /// What the spool has not had yet.
    delta: Inventory,
    quality: FlowQuality,
    reported_points: usize,
    last_report: Instant,
    change_pending: bool,
}

/// The inventory thread; returns the final report.
pub fn run(task: InvTask) -> Reported {
    let mut st = State {
        task,
        inv: Inventory::new(),
        delta: Inventory::new(),
        quality: FlowQuality::default(),
        reported_points: 0,
        last_report: Instant::now(),
        change_pending: false,
    };
    let mut last = Reported::default();
    loop {
        st.task
            .alive_us
            .store(crate::ship::now_us(), Ordering::Relaxed);
        match st.task.rx.recv_timeout(Duration::from_secs(1)) {
            Ok(InvMsg::Flows(flows)) => st.flows(flows),
            Ok(InvMsg::Open(inv)) => {
                st.inv.merge(&inv);
                st.delta.merge(&inv);
                st.note_change();
            }
            Ok(InvMsg::Report { why, health, reply }) => {
                last = st.report(why, health.as_deref());
                if let Some(r) = reply {
                    let _ = r.send(last.clone());
                }
            }
            Ok(InvMsg::Spool(bodies)) => {
                if let Err(e) = st.task.spool.push(&bodies) {
                    tracing::error!("{e}");
                }
                st.publish_spool();
                st.kick_shipper();
            }
            Ok(InvMsg::Ledger(l)) => st.task.ledger = l,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return last,
        }
        if st.change_pending && st.last_report.elapsed() >= CHANGE_GAP {
            last = st.report(Why::Change, None);
        }
    }
}

impl State {
    fn flows(&mut self, mut flows: Vec<Flow>) {
        let rules = self.task.shared.rules();
        let nets = match self.task.nets.read() {
            Ok(n) => n.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let cx = RecordCx {
            nets: &nets,
            rules: &rules,
        };
        for f in &mut flows {
            f.resolve(&rules);
            let view = FlowView { flow: f, cx: &cx };
            self.quality.add(f);
            self.inv.add_flow(&view, &rules.policy);
            self.delta.add_flow(&view, &rules.policy);
        }
        self.note_change();
    }

    fn note_change(&mut self) {
        if self.inv.len() > self.reported_points {
            self.change_pending = true;
        }
    }

    fn publish_spool(&self) {
        match self.task.spool.stats() {
            Ok(s) => {
                if let Ok(mut slot) = self.task.shared.spool.lock() {
                    *slot = Some(s);
                }
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }

    fn kick_shipper(&self) {
        if let Some(tx) = &self.task.ship {
            // A round already queued will see these findings too.
            match tx.try_send(ShipMsg::Now) {
                Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }

    fn report(&mut self, why: Why, health: Option<&Health>) -> Reported {
        self.change_pending = false;
        self.last_report = Instant::now();
        let mut out = Reported {
            points: self.inv.len(),
            ..Reported::default()
        };
        let rules = self.task.shared.rules();
        let macs = self.inv.point_macs();
        // SETTEN_IEEE_DATA points at another copy of the registry, as for `analyze`.
        let oui = match std::env::var_os("SETTEN_IEEE_DATA") {
            Some(dir) => Oui::load_dir_for(Path::new(&dir), &macs).unwrap_or_default(),
            None if macs.is_empty() => Oui::default(),
            None => Oui::load_default_for(&macs),
        };
        let points = self.inv.points(&PointsCx {
            policy: &rules.policy,
            ledger: self.task.ledger.as_deref(),
            oui: &oui,
        });
        let captures: Vec<_> = self
            .task
            .shared
            .interfaces
            .iter()
            .map(|c| c.capture_info())
            .collect();
        let q = quality::build(&captures, &self.quality);
        if let Err(e) = write_state(&self.task.state_file, &points, &q) {
            let m = format!("{}: {e}", self.task.state_file.display());
            tracing::error!("inventory not written: {m}");
            out.errors.push(m);
        }
        let mut bodies = self.delta.to_findings();
        match serde_json::to_value(&q) {
            Ok(serde_json::Value::Object(m)) => bodies.push(Body::CaptureQuality(m)),
            _ => tracing::warn!("the capture-quality record is not a JSON object"),
        }
        if let Some(h) = health {
            bodies.push(Body::Health(h.to_map()));
        }
        match self.task.spool.push(&bodies) {
            Ok(p) => {
                out.spooled = p.count;
                // Only what reached the spool is forgotten here.
                self.delta = Inventory::new();
            }
            Err(e) => {
                // Kept for the next report: nothing accepted is lost.
                tracing::error!("findings not spooled (kept for the next report): {e}");
                out.errors.push(e.to_string());
            }
        }
        self.reported_points = self.inv.len();
        self.publish_spool();
        self.kick_shipper();
        tracing::info!(
            "{} report: {} connection points, {} findings spooled",
            why.as_str(),
            out.points,
            out.spooled
        );
        out
    }
}

/// Writes the inventory's JSON Lines next to `path`, syncs it, and renames it over
/// `path`: a reader sees the previous report or this one, never half of one.
pub fn write_state(
    path: &Path,
    points: &crate::inventory::Points,
    q: &quality::CaptureQuality,
) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&tmp)?;
    let mut w = io::BufWriter::with_capacity(1 << 16, file);
    output::write_jsonl(&mut w, points, q)?;
    w.flush()?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Everything the shipper needs.
pub struct ShipTask {
    /// Messages in.
    pub rx: Receiver<ShipMsg>,
    /// Its own connection to the spool.
    pub spool: Spool,
    /// The collector.
    pub collector: Collector,
    /// Budget of a round.
    pub budget: Duration,
    /// Counters.
    pub shared: Arc<Shared>,
    /// Told when the final round is over.
    pub done: SyncSender<()>,
}

/// The shipper thread.
pub fn ship_loop(mut t: ShipTask) {
    loop {
        let budget = match t.rx.recv_timeout(RETRY_EVERY) {
            Ok(ShipMsg::Now) => t.budget,
            Ok(ShipMsg::Final(b)) => {
                round(&mut t, b);
                let _ = t.done.send(());
                return;
            }
            Err(RecvTimeoutError::Timeout) => {
                let pending = t.spool.stats().map(|s| s.pending).unwrap_or(0);
                if pending == 0 {
                    continue;
                }
                t.budget
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        round(&mut t, budget);
    }
}

fn round(t: &mut ShipTask, budget: Duration) {
    let result = client::ship(&mut t.spool, &t.collector, ShipOptions::with_budget(budget));
    let error = match result {
        Ok(s) => {
            if s.delivered > 0 {
                tracing::info!(
                    "delivered {} findings to {} ({} were already there)",
                    s.delivered,
                    t.collector.url(),
                    s.duplicates
                );
            }
            add_delivered(&t.shared, s.delivered);
            None
        }
        Err(ShipError::GaveUp { error, shipped, .. }) => {
            add_delivered(&t.shared, shipped.delivered);
            tracing::warn!(
                "collector {} unreachable ({error}); findings stay in the spool {} and are sent later",
                t.collector.url(),
                t.spool.path().display()
            );
            Some(error.to_string())
        }
        Err(ShipError::Refused { error, shipped }) => {
            add_delivered(&t.shared, shipped.delivered);
            tracing::error!(
                "collector {} refused the findings: {error}; they stay in the spool {}",
                t.collector.url(),
                t.spool.path().display()
            );
            Some(error.to_string())
        }
        Err(ShipError::Spool(e)) => {
            tracing::error!("{e}");
            Some(e.to_string())
        }
    };
    if let Ok(mut s) = t.shared.ship.lock() {
        s.error = error;
    }
    if let Ok(stats) = t.spool.stats() {
        if let Ok(mut slot) = t.shared.spool.lock() {
            *slot = Some(stats);
        }
    }
}

fn add_delivered(shared: &Shared, n: u64) {
    if let Ok(mut s) = shared.ship.lock() {
        s.delivered += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Classifier;
    use crate::live::config::Backend;
    use crate::live::counters::{InterfaceCounters, ShipState, WorkerCounters};
    use crate::rules::Rules;
    use std::sync::mpsc::sync_channel;
    use std::sync::Mutex;

    fn sample_flows(rules: &Arc<Rules>) -> Vec<Flow> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/hospital-demo.pcap");
        let classifier = Classifier::new(rules.clone());
        let mut flows = Vec::new();
        crate::analyze::run(
            &[path],
            crate::flow::Config::default(),
            &classifier,
            |_, _| {},
            &mut |f| flows.push(f),
        );
        flows
    }

    /// Each report spools only what is new since the previous one, and the state file
    /// always holds the whole inventory.
    #[test]
    fn reports_spool_what_is_new_and_the_state_file_holds_everything() {
        let dir = tempfile::tempdir().unwrap();
        let rules = Arc::new(Rules::defaults().unwrap());
        let shared = Arc::new(Shared {
            interfaces: vec![Arc::new(InterfaceCounters::new("t0", Backend::Pcap))],
            workers: vec![Arc::new(WorkerCounters::default())],
            max_flows: 1000,
            rules: RwLock::new(rules.clone()),
            rules_generation: AtomicU64::new(0),
            rules_reloads: AtomicU64::new(0),
            rules_error: Mutex::new(None),
            snapshot_epoch: AtomicU64::new(0),
            spool: Mutex::new(None),
            ship: Mutex::new(ShipState::default()),
        });
        let spool_path = dir.path().join("spool.db");
        let (tx, rx) = sync_channel(4);
        let task = InvTask {
            rx,
            shared: shared.clone(),
            nets: Arc::new(RwLock::new(LocalNets::with(&[]))),
            ledger: None,
            state_file: dir.path().join(STATE_FILE),
            spool: Spool::open(&spool_path, 1 << 30).unwrap(),
            ship: None,
            alive_us: Arc::new(AtomicU64::new(0)),
        };
        let h = std::thread::spawn(move || run(task));
        let report = |tx: &SyncSender<InvMsg>| {
            let (rtx, rrx) = sync_channel(1);
            tx.send(InvMsg::Report {
                why: Why::Interval,
                health: None,
                reply: Some(rtx),
            })
            .unwrap();
            rrx.recv().unwrap()
        };
        tx.send(InvMsg::Flows(sample_flows(&rules))).unwrap();
        let first = report(&tx);
        assert_eq!(first.points, 7);
        assert!(first.errors.is_empty(), "{:?}", first.errors);
        let text = std::fs::read_to_string(dir.path().join(STATE_FILE)).unwrap();
        let kinds: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["type"].to_string())
            .collect();
        assert_eq!(
            kinds
                .iter()
                .filter(|k| *k == "\"connection_point\"")
                .count(),
            7
        );
        assert_eq!(
            kinds.last().map(String::as_str),
            Some("\"capture_quality\"")
        );

        // Nothing new: only the quality record goes to the spool; the file is the same.
        let second = report(&tx);
        assert_eq!(second.points, 7);
        assert_eq!(second.spooled, 1);
        let again = std::fs::read_to_string(dir.path().join(STATE_FILE)).unwrap();
        assert_eq!(
            again
                .lines()
                .filter(|l| l.contains("connection_point"))
                .count(),
            7
        );
        drop(tx);
        h.join().unwrap();

        let mut spool = Spool::open(&spool_path, 1 << 30).unwrap();
        let found = spool.peek(100_000).unwrap();
        assert_eq!(found.len(), first.spooled + second.spooled);
        let sessions = found.iter().filter(|f| f.body.kind() == "session").count();
        // Merged as the collector does, the spooled findings give the same points.
        let mut inv = Inventory::new();
        for f in &found {
            inv.apply("t", &f.body, &rules.policy);
        }
        assert_eq!(inv.len(), 7);
        assert!(sessions >= 7);
        assert!(!dir.path().join("inventory.jsonl.tmp").exists());
    }
}
