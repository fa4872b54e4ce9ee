//! The long-running agent on a mirror (SPAN) port: capture → workers → inventory →
//! spool → collector, for months, as a systemd service.
//!
//! ```text
//!  capture thread per interface ──► worker queues (bounded; full: drop and count)
//!   (libpcap ring, or pnet)              │  by a direction-independent address hash
//!                                        ▼
//!                            worker × N: Pipeline (decode, flows, classify)
//!                                        │  finished flows, open-flow snapshots
//!                                        ▼
//!                            inventory thread ──► <state_dir>/inventory.jsonl
//!                                        │  new findings, quality, health
//!                                        ▼
//!                                      spool ──► shipper thread ──► collector
//! ```
//!
//! [`run`] opens every capture before it reports ready (a bad interface, filter or rules
//! directory refuses the start), then runs until [`Shutdown`] is triggered (SIGTERM or
//! SIGINT with [`Shutdown::on_signals`]). Stopping drains the kernel's rings, ends every
//! open flow into the inventory, writes the last report and ships what it can within
//! `collector.shutdown_timeout`; whatever is not delivered stays in the spool.
//!
//! SIGHUP, and any change in the rules directory, put new rules in force without losing
//! flow state (flows in progress go on under the new rules); SIGHUP also rereads the
//! configuration file and applies what can change while running (`inventory.local_nets`,
//! `inventory.ledger`, `inventory.interval`, `health.*`); the rest is named in a warning
//! and waits for a restart.
//!
//! Memory is bounded by the configuration: `flows.max_flows` over all workers, the
//! worker queues (`capture.queue` batches of at most 256 frames or 256 KiB each), the
//! kernel rings (`capture.buffer`) and the inventory's own caps. Nothing assumes root:
//! capturing needs CAP_NET_RAW (and CAP_NET_ADMIN for promiscuous mode), and every
//! file the agent writes is in the state directory and the spool's directory.

mod capture;
pub mod config;
mod counters;
pub mod health;
pub mod notify;
mod report;
pub mod shard;
mod worker;

pub use config::{Config, ConfigError};
pub use health::Health;
pub use report::STATE_FILE;

use crate::findings::Body;
use crate::inventory::ledger::{Ledger, LedgerError};
use crate::record::LocalNets;
use crate::reload::LiveRules;
use crate::rules::{Rules, RulesError};
use crate::ship::client::{ClientError, Collector, Fingerprint, Trust};
use crate::ship::spool::{Spool, SpoolError};
use crate::ship::{Token, TokenError};
use config::TrustConfig;
use counters::{InterfaceCounters, Shared, WorkerCounters};
use notify::Notifier;
use report::{InvMsg, Reported, ShipMsg, Why};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Control loop period.
const TICK: Duration = Duration::from_millis(100);
/// Longest wait for the workers' open-flow snapshots before a periodic report.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(2);
/// Messages in flight to the inventory thread (each up to 256 flows).
const INVENTORY_QUEUE: usize = 16;
/// How often the status line is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(2);
/// A thread silent for longer than this (and the watchdog period) is taken as hung.
const HUNG_AFTER: Duration = Duration::from_secs(10);

/// Why the agent could not start or stopped with a failure. Each names the interface,
/// file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A capture could not be opened.
    #[error("capture on {interface}: {message}")]
    Capture {
        /// Interface.
        interface: String,
        /// What failed.
        message: String,
    },
    /// The rules directory.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// The ledger.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The state directory cannot be used.
    #[error("inventory.state_dir {}: {source}", path.display())]
    StateDir {
        /// Directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The spool.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The collector settings.
    #[error("collector: {0}")]
    Collector(#[from] ClientError),
    /// The collector token.
    #[error("collector: {0}")]
    Token(#[from] TokenError),
    /// No token for the collector.
    #[error("collector: no token: set collector.token_file, or SETTEN_TOKEN in the environment (the token is printed once by `setten-collector agent add NAME`)")]
    NoToken,
    /// Signal handlers could not be installed.
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    /// A thread could not be started.
    #[error("cannot start the {name} thread: {source}")]
    Thread {
        /// Thread.
        name: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A thread ended while the agent was running (the run was ended and its findings
    /// written).
    #[error(
        "the {name} thread stopped unexpectedly; the agent stopped (findings so far were written)"
    )]
    ThreadDied {
        /// Thread.
        name: String,
    },
}

/// How the agent is told to stop or reload.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
}

impl Shutdown {
    /// A trigger nobody pulls but the caller.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// SIGTERM and SIGINT stop the agent (a second one exits at once with status 1);
    /// SIGHUP reloads.
    pub fn on_signals() -> Result<Shutdown, Error> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        use signal_hook::flag;
        let s = Shutdown::new();
        for sig in [SIGTERM, SIGINT] {
            flag::register_conditional_shutdown(sig, 1, s.stop.clone()).map_err(Error::Signals)?;
            flag::register(sig, s.stop.clone()).map_err(Error::Signals)?;
        }
        flag::register(SIGHUP, s.reload.clone()).map_err(Error::Signals)?;
        Ok(s)
    }

    /// Asks the agent to stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Asks the agent to reload its rules and configuration.
    pub fn reload(&self) {
        self.reload.store(true, Ordering::Release);
    }

    /// Whether a stop was asked for.
    pub fn is_stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn take_reload(&self) -> bool {
        self.reload.swap(false, Ordering::AcqRel)
    }
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The last health record (totals since the start).
    pub health: Health,
    /// Connection points in the final inventory.
    pub points: usize,
    /// Reports made.
    pub reports: u64,
    /// Findings the final report pushed to the spool.
    pub spooled: u64,
    /// The state file.
    pub state_file: PathBuf,
}

/// Everything started, for the shutdown.
struct Running {
    captures: Vec<(String, JoinHandle<()>)>,
    wakers: Vec<Arc<Mutex<capture::Waker>>>,
    capture_stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<crate::analyze::Summary>>,
    inventory: Option<JoinHandle<Reported>>,
    inv_alive: Arc<AtomicU64>,
    shipper: Option<(
        JoinHandle<()>,
        SyncSender<ShipMsg>,
        std::sync::mpsc::Receiver<()>,
    )>,
}

fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, Error> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map_err(|source| Error::Thread {
            name: name.to_owned(),
            source,
        })
}

fn local_nets(cfg: &Config, rules: &Rules) -> LocalNets {
    let mut extra = cfg.inventory.local_nets.clone();
    extra.extend_from_slice(&rules.policy.local_nets);
    LocalNets::with(&extra)
}

fn load_ledger(path: Option<&Path>) -> Result<Option<Arc<Ledger>>, LedgerError> {
    let Some(path) = path else { return Ok(None) };
    let l = Ledger::load(path)?;
    for e in &l.errors {
        tracing::warn!("{}", e.display(&l.source));
    }
    tracing::info!(
        "{}: {} ledger entries ({})",
        l.source,
        l.entries.len(),
        l.encoding
    );
    Ok(Some(Arc::new(l)))
}

fn load_token(file: Option<&Path>) -> Result<Token, Error> {
    match file {
        Some(p) => {
            use std::os::unix::fs::PermissionsExt;
            if std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
                tracing::warn!(
                    "token file {} can be read by other users; `chmod 600 {}`",
                    p.display(),
                    p.display()
                );
            }
            Ok(Token::from_file(p)?)
        }
        None => match std::env::var("SETTEN_TOKEN") {
            Ok(t) => Ok(Token::parse(&t, "SETTEN_TOKEN")?),
            Err(_) => Err(Error::NoToken),
        },
    }
}

/// Creates the state directory (mode 0750) and checks that a file can be written in it.
fn prepare_state_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    let err = |source| Error::StateDir {
        path: dir.to_owned(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(err)?;
    let probe = dir.join(".setten-write-test");
    std::fs::write(&probe, b"").map_err(err)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Checks everything `run` checks before it starts — rules, ledger, state directory,
/// spool, collector token and trust, and that every interface opens with the filter —
/// without capturing (`setten-agent run --check`).
pub fn check(cfg: &Config) -> Result<(), Error> {
    if let Some(dir) = &cfg.inventory.rules {
        Rules::load_dir(dir)?;
    } else {
        Rules::defaults()?;
    }
    load_ledger(cfg.inventory.ledger.as_deref())?;
    prepare_state_dir(&cfg.inventory.state_dir)?;
    Spool::open(&cfg.spool.path, cfg.spool.max_bytes)?;
    if let Some(c) = &cfg.collector {
        let token = load_token(c.token_file.as_deref())?;
        let trust = match &c.trust {
            TrustConfig::Pin(p) => Trust::Pin(Fingerprint::parse(p)?),
            TrustConfig::Ca(f) => Trust::CaFile(f.clone()),
            TrustConfig::WebPki => Trust::WebPki,
        };
        Collector::new(&c.url, token, trust)?;
    }
    for iface in &cfg.capture.interfaces {
        capture::open(&cfg.capture, iface).map_err(|e| Error::Capture {
            interface: e.interface,
            message: e.message,
        })?;
    }
    Ok(())
}

/// Runs the agent until `shutdown` is triggered.
pub fn run(cfg: &Config, shutdown: Shutdown) -> Result<Summary, Error> {
    let notifier = Notifier::from_env();
    let mut cfg = cfg.clone();
    notifier.status("starting");

    // Everything that can be wrong is checked before anything runs.
    let live_rules = match &cfg.inventory.rules {
        Some(dir) => Some(LiveRules::watch(dir)?),
        None => None,
    };
    let rules = match &live_rules {
        Some(l) => l.current(),
        None => Arc::new(Rules::defaults()?),
    };
    let ledger = load_ledger(cfg.inventory.ledger.as_deref())?;
    prepare_state_dir(&cfg.inventory.state_dir)?;
    let state_file = cfg.inventory.state_dir.join(report::STATE_FILE);
    let inv_spool = Spool::open(&cfg.spool.path, cfg.spool.max_bytes)?;
    let collector = match &cfg.collector {
        Some(c) => {
            let token = load_token(c.token_file.as_deref())?;
            let trust = match &c.trust {
                TrustConfig::Pin(p) => Trust::Pin(Fingerprint::parse(p)?),
                TrustConfig::Ca(f) => Trust::CaFile(f.clone()),
                TrustConfig::WebPki => Trust::WebPki,
            };
            let agent = token.agent().to_owned();
            let collector = Collector::new(&c.url, token, trust)?;
            let mut spool = Spool::open(&cfg.spool.path, cfg.spool.max_bytes)?;
            spool.claim(&agent)?;
            Some((collector, spool, c.timeout, c.shutdown_timeout))
        }
        None => None,
    };
    let workers = cfg.capture.workers.max(1);
    let mut sources = Vec::new();
    for iface in &cfg.capture.interfaces {
        let src = capture::open(&cfg.capture, iface).map_err(|e| Error::Capture {
            interface: e.interface,
            message: e.message,
        })?;
        sources.push((iface.clone(), src));
    }

    let shared = Arc::new(Shared {
        interfaces: cfg
            .capture
            .interfaces
            .iter()
            .map(|i| Arc::new(InterfaceCounters::new(i, cfg.capture.backend)))
            .collect(),
        workers: (0..workers)
            .map(|_| Arc::new(WorkerCounters::default()))
            .collect(),
        max_flows: cfg.flows.max_flows as u64,
        rules: RwLock::new(rules.clone()),
        rules_generation: AtomicU64::new(0),
        rules_reloads: AtomicU64::new(0),
        rules_error: Mutex::new(None),
        snapshot_epoch: AtomicU64::new(0),
        spool: Mutex::new(inv_spool.stats().ok()),
        ship: Mutex::new(counters::ShipState::default()),
    });
    let nets = Arc::new(RwLock::new(local_nets(&cfg, &rules)));

    let mut run = Running {
        captures: Vec::new(),
        wakers: Vec::new(),
        capture_stop: Arc::new(AtomicBool::new(false)),
        workers: Vec::new(),
        inventory: None,
        inv_alive: Arc::new(AtomicU64::new(crate::ship::now_us())),
        shipper: None,
    };

    // Shipper.
    let ship_tx = match collector {
        Some((collector, spool, budget, _)) => {
            let (tx, rx) = sync_channel(1);
            let (done_tx, done_rx) = sync_channel(1);
            let task = report::ShipTask {
                rx,
                spool,
                collector,
                budget,
                shared: shared.clone(),
                done: done_tx,
            };
            let h = spawn("setten-ship", move || report::ship_loop(task))?;
            run.shipper = Some((h, tx.clone(), done_rx));
            Some(tx)
        }
        None => None,
    };

    // Backup media and drop folders: their findings go to the spool from a connection of
    // their own, and wake the shipper.
    let media_stop = Arc::new(AtomicBool::new(false));
    let media = if cfg.backup.is_empty() {
        None
    } else {
        let spool = Mutex::new(Spool::open(&cfg.spool.path, cfg.spool.max_bytes)?);
        let ship = ship_tx.clone();
        let emit = Box::new(move |bodies: Vec<crate::findings::Body>| {
            match spool.lock().map(|mut s| s.push(&bodies)) {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!("backup findings not spooled: {e}"),
                Err(_) => tracing::warn!("backup findings not spooled: spool lock poisoned"),
            }
            if let Some(tx) = &ship {
                let _ = tx.try_send(ShipMsg::Now);
            }
        });
        tracing::info!(
            "watching {} backup medi{} and {} drop folder{}",
            cfg.backup.media.len(),
            if cfg.backup.media.len() == 1 {
                "um"
            } else {
                "a"
            },
            cfg.backup.folders.len(),
            if cfg.backup.folders.len() == 1 {
                ""
            } else {
                "s"
            }
        );
        Some(
            crate::backup::watch::spawn(cfg.backup.clone(), emit, media_stop.clone()).map_err(
                |source| Error::Thread {
                    name: "setten-media".into(),
                    source,
                },
            )?,
        )
    };

    // Inventory.
    let (inv_tx, inv_rx) = sync_channel::<InvMsg>(INVENTORY_QUEUE);
    let task = report::InvTask {
        rx: inv_rx,
        shared: shared.clone(),
        nets: nets.clone(),
        ledger,
        state_file: state_file.clone(),
        spool: inv_spool,
        ship: ship_tx,
        alive_us: run.inv_alive.clone(),
    };
    run.inventory = Some(spawn("setten-inventory", move || report::run(task))?);

    // Workers, and the recycling channels back to each capture thread.
    let (mut recycle_tx, mut recycle_rx) = (Vec::new(), Vec::new());
    for _ in &sources {
        let (tx, rx) = sync_channel(workers * 4);
        recycle_tx.push(tx);
        recycle_rx.push(rx);
    }
    let mut worker_tx = Vec::new();
    for (i, wc) in shared.workers.iter().enumerate() {
        let (tx, rx) = sync_channel(cfg.capture.queue);
        worker_tx.push(tx);
        let task = worker::WorkerTask {
            index: i,
            flows: cfg.worker_flows(workers),
            rx,
            recycle: recycle_tx.clone(),
            out: inv_tx.clone(),
            shared: shared.clone(),
            counters: wc.clone(),
            nets: nets.clone(),
        };
        run.workers
            .push(spawn(&format!("setten-worker-{i}"), move || {
                worker::run(task)
            })?);
    }
    drop(recycle_tx);

    // Captures.
    for (i, ((iface, mut src), recycle)) in sources.into_iter().zip(recycle_rx).enumerate() {
        let waker = Arc::new(Mutex::new(src.waker()));
        run.wakers.push(waker.clone());
        let task = capture::CaptureTask {
            source: i,
            interface: iface.clone(),
            src,
            cfg: cfg.capture.clone(),
            workers: worker_tx.clone(),
            recycle,
            counters: shared.interfaces[i].clone(),
            stop: run.capture_stop.clone(),
            waker,
        };
        let h = spawn(&format!("setten-cap-{iface}"), move || capture::run(task))?;
        run.captures.push((iface, h));
    }
    // The capture threads hold the only senders: when they end, the workers finish.
    drop(worker_tx);

    let ifaces = cfg.capture.interfaces.join(", ");
    tracing::info!(
        "capturing on {ifaces} ({} backend, {workers} worker{}, {} flows at most); inventory in {}",
        cfg.capture.backend,
        if workers == 1 { "" } else { "s" },
        cfg.flows.max_flows,
        state_file.display()
    );
    notifier.ready(&format!("capturing on {ifaces}"));

    let mut control = Control {
        cfg: &mut cfg,
        shared: &shared,
        nets: &nets,
        live_rules: live_rules.as_ref(),
        seen_live_generation: live_rules.as_ref().map_or(0, |l| l.generation()),
        notifier: &notifier,
        meter: health::Meter::new(0.0),
        reports: 0,
        inv_tx: Some(inv_tx),
    };
    control.meter.set_threshold(control.cfg.health.drop_alarm);
    let died = control.run(&shutdown, &run, &ifaces);
    let reports = control.reports;

    // Shutdown: stop capturing, drain, end every flow, report, ship.
    notifier.stopping("stopping: ending open flows and writing the inventory");
    tracing::info!("stopping: draining the captures and ending open flows");
    run.capture_stop.store(true, Ordering::Release);
    for w in &run.wakers {
        if let Ok(w) = w.lock() {
            w.wake();
        }
    }
    let mut died = died;
    for (iface, h) in run.captures.drain(..) {
        if h.join().is_err() && died.is_none() {
            died = Some(format!("setten-cap-{iface}"));
        }
    }
    for (i, h) in run.workers.drain(..).enumerate() {
        if h.join().is_err() && died.is_none() {
            died = Some(format!("setten-worker-{i}"));
        }
    }
    media_stop.store(true, Ordering::Release);
    if let Some(h) = media {
        if h.join().is_err() && died.is_none() {
            died = Some("setten-media".into());
        }
    }
    let health = control.meter.sample(&shared);
    let mut last = Reported::default();
    if let Some(tx) = control.inv_tx.take() {
        let (reply_tx, reply_rx) = sync_channel(1);
        let sent = tx
            .send(InvMsg::Report {
                why: Why::Final,
                health: Some(Box::new(health.clone())),
                reply: Some(reply_tx),
            })
            .is_ok();
        drop(tx);
        if sent {
            if let Ok(r) = reply_rx.recv() {
                last = r;
            }
        }
    }
    if let Some(h) = run.inventory.take() {
        if h.join().is_err() && died.is_none() {
            died = Some("setten-inventory".into());
        }
    }
    if let Some((h, tx, done)) = run.shipper.take() {
        let budget = cfg
            .collector
            .as_ref()
            .map_or(Duration::ZERO, |c| c.shutdown_timeout);
        notifier.status("stopping: shipping the last findings");
        if tx.send(ShipMsg::Final(budget)).is_ok() {
            // A round in progress finishes first; past the deadline the findings simply
            // stay in the spool.
            let wait = budget + cfg.collector.as_ref().map_or(Duration::ZERO, |c| c.timeout);
            if done
                .recv_timeout(wait.min(budget + Duration::from_secs(30)))
                .is_ok()
            {
                let _ = h.join();
            } else {
                tracing::warn!("shipping did not finish in time; the findings stay in the spool");
            }
        }
    }
    let health = Health {
        delivered: shared.ship.lock().map(|s| s.delivered).unwrap_or(0),
        spool_pending: shared
            .spool
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.pending)),
        ..health
    };
    tracing::info!("stopped: {}", health.summary_line());
    if let Some(name) = died {
        return Err(Error::ThreadDied { name });
    }
    Ok(Summary {
        points: last.points,
        reports: reports + 1,
        spooled: last.spooled as u64,
        health,
        state_file,
    })
}

/// The control thread's state.
struct Control<'a> {
    cfg: &'a mut Config,
    shared: &'a Arc<Shared>,
    nets: &'a Arc<RwLock<LocalNets>>,
    live_rules: Option<&'a LiveRules>,
    seen_live_generation: u64,
    notifier: &'a Notifier,
    meter: health::Meter,
    reports: u64,
    inv_tx: Option<SyncSender<InvMsg>>,
}

impl Control<'_> {
    /// Runs until a stop is asked for or a thread dies (its name is returned).
    fn run(&mut self, shutdown: &Shutdown, run: &Running, ifaces: &str) -> Option<String> {
        let start = Instant::now();
        let mut next_health = start + self.cfg.health.interval;
        let mut next_report = start + self.cfg.inventory.interval;
        let mut pending_report: Option<(u64, Instant)> = None;
        let mut next_status = start + STATUS_EVERY;
        let mut last_status = String::new();
        let ping_every = self.notifier.watchdog_ping_every();
        let mut next_ping = start;
        let hung_after = self
            .notifier
            .watchdog()
            .unwrap_or(HUNG_AFTER)
            .max(HUNG_AFTER);
        loop {
            if shutdown.is_stopping() {
                return None;
            }
            if let Some(name) = dead_thread(run) {
                tracing::error!("the {name} thread stopped unexpectedly; stopping");
                return Some(name);
            }
            if shutdown.take_reload() {
                self.reload();
            }
            self.follow_rules_directory();
            let now = Instant::now();
            if now >= next_health {
                next_health = now + self.cfg.health.interval;
                let h = self.meter.sample(self.shared);
                if h.drop_alarm {
                    tracing::warn!(
                        "drop alarm: {:.3}% of frames lost in the last {:.0} s (threshold {:.3}%): {}",
                        h.drop_rate * 100.0,
                        h.period_seconds,
                        h.drop_alarm_threshold * 100.0,
                        h.summary_line()
                    );
                    self.send(InvMsg::Spool(vec![Body::Health(h.to_map())]));
                } else {
                    tracing::info!("health: {}", h.summary_line());
                }
            }
            if now >= next_report && pending_report.is_none() {
                next_report = now + self.cfg.inventory.interval;
                let epoch = self.shared.snapshot_epoch.fetch_add(1, Ordering::AcqRel) + 1;
                pending_report = Some((epoch, now + SNAPSHOT_WAIT));
            }
            if let Some((epoch, deadline)) = pending_report {
                let all = self
                    .shared
                    .workers
                    .iter()
                    .all(|w| w.snapshot_done.load(Ordering::Acquire) >= epoch);
                if all || now >= deadline {
                    pending_report = None;
                    let h = self.meter.sample(self.shared);
                    self.send(InvMsg::Report {
                        why: Why::Interval,
                        health: Some(Box::new(h)),
                        reply: None,
                    });
                    self.reports += 1;
                }
            }
            if now >= next_status {
                next_status = now + STATUS_EVERY;
                let s = self.status_line(ifaces);
                if s != last_status {
                    self.notifier.status(&s);
                    last_status = s;
                }
            }
            if let Some(every) = ping_every {
                if now >= next_ping && self.healthy(run, hung_after) {
                    self.notifier.watchdog_ping();
                    next_ping = now + every;
                }
            }
            std::thread::sleep(TICK);
        }
    }

    fn send(&self, msg: InvMsg) {
        if let Some(tx) = &self.inv_tx {
            let _ = tx.send(msg);
        }
    }

    fn status_line(&self, ifaces: &str) -> String {
        let frames = self.shared.frames();
        let w = self.shared.workers_total();
        let lost: u64 = self
            .shared
            .interfaces
            .iter()
            .map(|i| {
                i.kernel_drops.load(Ordering::Relaxed)
                    + i.interface_drops.load(Ordering::Relaxed)
                    + i.queue_drops.load(Ordering::Relaxed)
            })
            .sum();
        format!(
            "capturing on {ifaces}: {frames} frames, {lost} lost, {} processed, {} flows live",
            w.packets, w.flows_live
        )
    }

    /// Every worker and the inventory thread showed a sign of life recently.
    fn healthy(&self, run: &Running, hung_after: Duration) -> bool {
        let now = crate::ship::now_us();
        let limit = u64::try_from(hung_after.as_micros()).unwrap_or(u64::MAX);
        let fresh = |t: u64| now.saturating_sub(t) <= limit;
        self.shared
            .workers
            .iter()
            .all(|w| fresh(w.alive_us.load(Ordering::Relaxed)))
            && fresh(run.inv_alive.load(Ordering::Relaxed))
    }

    fn publish_rules(&mut self, rules: Arc<Rules>) {
        let nets = local_nets(self.cfg, &rules);
        match self.nets.write() {
            Ok(mut n) => *n = nets,
            Err(p) => *p.into_inner() = nets,
        }
        self.shared.set_rules(rules);
        self.shared.rules_reloads.fetch_add(1, Ordering::Relaxed);
    }

    fn follow_rules_directory(&mut self) {
        let Some(l) = self.live_rules else { return };
        let g = l.generation();
        if g != self.seen_live_generation {
            self.seen_live_generation = g;
            self.publish_rules(l.current());
            tracing::info!("new rules in force (the rules directory changed)");
        }
        let err = l.last_error();
        if let Ok(mut slot) = self.shared.rules_error.lock() {
            *slot = err;
        }
    }

    /// SIGHUP: the rules directory and the configuration file are read again.
    fn reload(&mut self) {
        self.notifier.status("reloading rules and configuration");
        tracing::info!("reload requested");
        if let Some(path) = self.cfg.source.clone() {
            match Config::load(&path) {
                Ok(new) => self.apply(new),
                Err(e) => tracing::warn!(
                    "configuration not reloaded, the previous one stays in force: {e}"
                ),
            }
        }
        if let Some(dir) = self.cfg.inventory.rules.clone() {
            match Rules::load_dir(&dir) {
                Ok(r) => {
                    self.publish_rules(Arc::new(r));
                    if let Ok(mut slot) = self.shared.rules_error.lock() {
                        *slot = None;
                    }
                    tracing::info!(dir = %dir.display(), "rules reloaded");
                }
                Err(e) => {
                    tracing::warn!("rules not reloaded, the previous rules stay in force: {e}");
                    if let Ok(mut slot) = self.shared.rules_error.lock() {
                        *slot = Some(e.to_string());
                    }
                }
            }
        } else {
            // Local networks may have changed with the configuration.
            let rules = self.shared.rules();
            self.publish_rules(rules);
        }
    }

    /// Applies what can change while running; names what cannot.
    fn apply(&mut self, new: Config) {
        let mut restart = Vec::new();
        if new.capture != self.cfg.capture {
            restart.push("[capture]");
        }
        if new.flows != self.cfg.flows {
            restart.push("[flows]");
        }
        if new.spool != self.cfg.spool {
            restart.push("[spool]");
        }
        if new.collector != self.cfg.collector {
            restart.push("[collector]");
        }
        if new.inventory.rules != self.cfg.inventory.rules {
            restart.push("inventory.rules");
        }
        if new.inventory.state_dir != self.cfg.inventory.state_dir {
            restart.push("inventory.state_dir");
        }
        if !restart.is_empty() {
            tracing::warn!(
                "changed in the configuration, in force after a restart: {}",
                restart.join(", ")
            );
        }
        // The ledger is read again even under the same name: it is edited in place.
        match load_ledger(new.inventory.ledger.as_deref()) {
            Ok(l) => {
                self.send(InvMsg::Ledger(l));
                self.cfg.inventory.ledger = new.inventory.ledger.clone();
            }
            Err(e) => tracing::warn!("ledger not reloaded, the previous one stays in force: {e}"),
        }
        self.cfg.inventory.local_nets = new.inventory.local_nets;
        self.cfg.inventory.interval = new.inventory.interval;
        self.cfg.health = new.health;
        self.meter.set_threshold(self.cfg.health.drop_alarm);
        tracing::info!("configuration reloaded");
    }
}

/// The name of a thread that ended on its own, if any.
fn dead_thread(run: &Running) -> Option<String> {
    for (iface, h) in &run.captures {
        if h.is_finished() {
            return Some(format!("setten-cap-{iface}"));
        }
    }
    for (i, h) in run.workers.iter().enumerate() {
        if h.is_finished() {
            return Some(format!("setten-worker-{i}"));
        }
    }
    if run.inventory.as_ref().is_some_and(|h| h.is_finished()) {
        return Some("setten-inventory".into());
    }
    None
}
