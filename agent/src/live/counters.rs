//! State the threads share: counters each thread writes and the control thread reads
//! for health, status and the capture-quality record, and the rules in force.

use super::config::Backend;
use crate::analyze::CaptureInfo;
use crate::rules::Rules;
use crate::ship::spool;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// One interface's capture counters (totals since the start).
#[derive(Debug)]
pub struct InterfaceCounters {
    /// Interface.
    pub name: String,
    /// Backend.
    pub backend: Backend,
    /// Link type (pcap LINKTYPE).
    pub link: AtomicU32,
    /// Frames read from the kernel.
    pub frames: AtomicU64,
    /// Their captured bytes.
    pub bytes: AtomicU64,
    /// Frames cut by the snap length.
    pub truncated: AtomicU64,
    /// Frames dropped because a worker queue stayed full.
    pub queue_drops: AtomicU64,
    /// Whether the backend reports kernel statistics.
    pub has_kernel_stats: AtomicBool,
    /// Kernel ring drops.
    pub kernel_drops: AtomicU64,
    /// Interface and driver drops.
    pub interface_drops: AtomicU64,
    /// First frame, µs since the epoch (0: none yet).
    pub first_us: AtomicU64,
    /// Latest frame.
    pub last_us: AtomicU64,
    /// Reopens after errors.
    pub reopened: AtomicU64,
    /// The current error, while the capture is down.
    pub error: Mutex<Option<String>>,
}

impl InterfaceCounters {
    /// Zeroed counters.
    pub fn new(name: &str, backend: Backend) -> InterfaceCounters {
        InterfaceCounters {
            name: name.to_owned(),
            backend,
            link: AtomicU32::new(0),
            frames: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            queue_drops: AtomicU64::new(0),
            has_kernel_stats: AtomicBool::new(false),
            kernel_drops: AtomicU64::new(0),
            interface_drops: AtomicU64::new(0),
            first_us: AtomicU64::new(0),
            last_us: AtomicU64::new(0),
            reopened: AtomicU64::new(0),
            error: Mutex::new(None),
        }
    }

    /// The interface as a "capture" of the quality record.
    pub fn capture_info(&self) -> CaptureInfo {
        let frames = self.frames.load(Ordering::Relaxed);
        let queue = self.queue_drops.load(Ordering::Relaxed);
        let drops = if self.has_kernel_stats.load(Ordering::Relaxed) {
            Some(
                self.kernel_drops.load(Ordering::Relaxed)
                    + self.interface_drops.load(Ordering::Relaxed)
                    + queue,
            )
        } else {
            (queue > 0).then_some(queue)
        };
        let link = self.link.load(Ordering::Relaxed);
        CaptureInfo {
            path: self.name.clone().into(),
            packets: frames,
            first_us: self.first_us.load(Ordering::Relaxed),
            last_us: self.last_us.load(Ordering::Relaxed),
            truncated: self.truncated.load(Ordering::Relaxed),
            drops,
            links: if frames > 0 { vec![link] } else { Vec::new() },
            complete: self.error.lock().map(|e| e.is_none()).unwrap_or(true),
        }
    }
}

/// One worker's counters (its pipeline's totals, published after each batch).
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Frames processed.
    pub packets: AtomicU64,
    /// Frames that were not IP.
    pub not_ip: AtomicU64,
    /// Frames too short or malformed.
    pub malformed: AtomicU64,
    /// Frames of an unsupported link type.
    pub unsupported_link: AtomicU64,
    /// Orphan fragments.
    pub orphan_fragments: AtomicU64,
    /// Flows in the table.
    pub flows_live: AtomicU64,
    /// Flows created.
    pub created: AtomicU64,
    /// Flows evicted for room.
    pub evicted: AtomicU64,
    /// Latest snapshot request answered.
    pub snapshot_done: AtomicU64,
    /// Last sign of life, µs since the epoch.
    pub alive_us: AtomicU64,
}

/// The workers' counters added up.
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkerTotals {
    /// Frames processed.
    pub packets: u64,
    /// Not IP.
    pub not_ip: u64,
    /// Malformed.
    pub malformed: u64,
    /// Unsupported link.
    pub unsupported_link: u64,
    /// Orphan fragments.
    pub orphan_fragments: u64,
    /// Flows live.
    pub flows_live: u64,
    /// Flows created.
    pub created: u64,
    /// Flows evicted.
    pub evicted: u64,
}

/// What the shipper reports.
#[derive(Clone, Debug, Default)]
pub struct ShipState {
    /// Findings delivered since the start.
    pub delivered: u64,
    /// Latest failure, cleared by a successful round.
    pub error: Option<String>,
}

/// Everything shared.
#[derive(Debug)]
pub struct Shared {
    /// Per interface.
    pub interfaces: Vec<Arc<InterfaceCounters>>,
    /// Per worker.
    pub workers: Vec<Arc<WorkerCounters>>,
    /// The flow tables' combined cap.
    pub max_flows: u64,
    /// The rules in force and their generation.
    pub rules: RwLock<Arc<Rules>>,
    /// Bumped on every change of the rules.
    pub rules_generation: AtomicU64,
    /// Successful reloads.
    pub rules_reloads: AtomicU64,
    /// Latest failed reload.
    pub rules_error: Mutex<Option<String>>,
    /// Bumped to ask workers for a snapshot of their open flows.
    pub snapshot_epoch: AtomicU64,
    /// Spool statistics after the latest push or shipping round.
    pub spool: Mutex<Option<spool::Stats>>,
    /// Shipping.
    pub ship: Mutex<ShipState>,
}

impl Shared {
    /// The rules in force.
    pub fn rules(&self) -> Arc<Rules> {
        match self.rules.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Puts new rules in force.
    pub fn set_rules(&self, rules: Arc<Rules>) {
        match self.rules.write() {
            Ok(mut r) => *r = rules,
            Err(p) => *p.into_inner() = rules,
        }
        self.rules_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The workers' counters added up.
    pub fn workers_total(&self) -> WorkerTotals {
        let mut t = WorkerTotals::default();
        for w in &self.workers {
            let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
            t.packets += g(&w.packets);
            t.not_ip += g(&w.not_ip);
            t.malformed += g(&w.malformed);
            t.unsupported_link += g(&w.unsupported_link);
            t.orphan_fragments += g(&w.orphan_fragments);
            t.flows_live += g(&w.flows_live);
            t.created += g(&w.created);
            t.evicted += g(&w.evicted);
        }
        t
    }

    /// Frames read from all interfaces.
    pub fn frames(&self) -> u64 {
        self.interfaces
            .iter()
            .map(|i| i.frames.load(Ordering::Relaxed))
            .sum()
    }
}
