//! Live capture: one thread per interface reads frames from the kernel (libpcap, or the
//! pure-Rust pnet channel behind the `pnet` feature) and deals them out to the workers in
//! batches, by a direction-independent hash of the outer IP addresses ([`super::shard`]).
//!
//! The queues to the workers are bounded. When a worker's queue stays full for
//! [`QUEUE_WAIT`], the batch is dropped and its frames counted (`queue_drops`): the
//! capture thread is never held up longer, and the kernel's ring (the configured
//! `buffer`) absorbs bursts in the meantime.
//!
//! A capture that fails while running (the interface disappeared) is reopened with
//! backoff; the error stays in the health record until it succeeds.

use super::config::{Backend, CaptureConfig};
use super::counters::InterfaceCounters;
use super::shard;
use crate::capture::{LinkType, Packet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Frames per batch.
pub const BATCH_FRAMES: usize = 256;
/// Captured bytes per batch before it is sent (a larger frame still fits alone).
pub const BATCH_BYTES: usize = 256 << 10;
/// Longest wait for room in a full worker queue before the batch is dropped.
pub const QUEUE_WAIT: Duration = Duration::from_millis(5);
/// How often kernel statistics are read.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// Longest drain of the kernel ring at shutdown.
const DRAIN_FOR: Duration = Duration::from_secs(2);
/// Backoff between reopen attempts.
const REOPEN_MIN: Duration = Duration::from_secs(1);
const REOPEN_MAX: Duration = Duration::from_secs(30);

/// One frame's place in a batch.
#[derive(Clone, Copy, Debug)]
struct Meta {
    ts_us: u64,
    off: u32,
    len: u32,
    orig_len: u32,
}

/// Frames of one interface for one worker, copied out of the kernel's ring.
#[derive(Debug)]
pub struct Batch {
    /// The interface (index into the configuration's list).
    pub source: usize,
    /// Its link type.
    pub link: LinkType,
    data: Vec<u8>,
    meta: Vec<Meta>,
}

impl Batch {
    pub(crate) fn new(source: usize, link: LinkType) -> Batch {
        Batch {
            source,
            link,
            data: Vec::with_capacity(BATCH_BYTES),
            meta: Vec::with_capacity(BATCH_FRAMES),
        }
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// No frames.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    fn clear(&mut self) {
        self.data.clear();
        self.meta.clear();
    }

    pub(crate) fn push(&mut self, ts_us: u64, frame: &[u8], orig_len: u32) {
        let off = self.data.len() as u32;
        self.data.extend_from_slice(frame);
        self.meta.push(Meta {
            ts_us,
            off,
            len: frame.len() as u32,
            orig_len,
        });
    }

    fn full(&self) -> bool {
        self.meta.len() >= BATCH_FRAMES || self.data.len() >= BATCH_BYTES
    }

    /// The frames, in capture order.
    pub fn packets(&self) -> impl Iterator<Item = Packet<'_>> {
        self.meta.iter().filter_map(|m| {
            let start = m.off as usize;
            let data = self.data.get(start..start.checked_add(m.len as usize)?)?;
            Some(Packet {
                ts_us: m.ts_us,
                link: self.link,
                data,
                orig_len: m.orig_len,
            })
        })
    }
}

/// What goes to a worker.
#[derive(Debug)]
pub enum WorkerMsg {
    /// Frames.
    Frames(Batch),
}

/// Kernel statistics since the capture was opened (libpcap's `pcap_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Dropped because the ring was full.
    pub dropped: u32,
    /// Dropped by the interface or driver.
    pub if_dropped: u32,
}

/// A read that failed.
#[derive(Debug)]
pub struct ReadError(pub String);

/// A capture source.
pub trait Source: Send {
    /// Link type of the frames.
    fn link(&self) -> LinkType;
    /// Reads what the kernel has (waiting at most about the configured timeout), handing
    /// each frame to `f` (µs since the epoch, captured bytes, length on the wire).
    fn read(&mut self, f: &mut dyn FnMut(u64, &[u8], u32)) -> Result<usize, ReadError>;
    /// Reads what is left without waiting (at shutdown); returns the frames read.
    fn drain(&mut self, f: &mut dyn FnMut(u64, &[u8], u32)) -> usize;
    /// Kernel statistics, when the backend has them.
    fn stats(&mut self) -> Option<KernelStats>;
    /// A way to wake a blocked `read` from another thread.
    fn waker(&mut self) -> Waker;
}

/// Wakes a capture thread blocked in the kernel.
pub struct Waker(Option<Box<dyn Fn() + Send + Sync>>);

impl Waker {
    /// Wakes it (a no-op for backends that wake up on their own).
    pub fn wake(&self) {
        if let Some(f) = &self.0 {
            f();
        }
    }
}

/// Opening a capture failed.
#[derive(Debug)]
pub struct OpenError {
    /// Interface.
    pub interface: String,
    /// What failed, with a hint.
    pub message: String,
}

/// Opens `interface` with the configured backend.
pub fn open(cfg: &CaptureConfig, interface: &str) -> Result<Box<dyn Source>, OpenError> {
    match cfg.backend {
        Backend::Pcap => pcap_backend::open(cfg, interface).map(|s| Box::new(s) as Box<dyn Source>),
        Backend::Pnet => open_pnet(cfg, interface),
    }
}

#[cfg(feature = "pnet")]
fn open_pnet(cfg: &CaptureConfig, interface: &str) -> Result<Box<dyn Source>, OpenError> {
    pnet_backend::open(cfg, interface).map(|s| Box::new(s) as Box<dyn Source>)
}

#[cfg(not(feature = "pnet"))]
fn open_pnet(_cfg: &CaptureConfig, interface: &str) -> Result<Box<dyn Source>, OpenError> {
    Err(OpenError {
        interface: interface.to_owned(),
        message: "backend \"pnet\" is not in this build of setten-agent (built without the `pnet` feature); use backend = \"pcap\"".into(),
    })
}

/// Microseconds since the epoch of a `timeval` (before 1970: 0).
fn tv_us(tv: &libc::timeval) -> u64 {
    u64::try_from(tv.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000)
        .saturating_add(u64::try_from(tv.tv_usec).unwrap_or(0))
}

fn hint(message: &str) -> String {
    let m = message.to_ascii_lowercase();
    if m.contains("permission") || m.contains("operation not permitted") {
        format!("{message} (the agent needs CAP_NET_RAW, and CAP_NET_ADMIN for promiscuous mode)")
    } else if m.contains("no such device") || m.contains("doesn't exist") {
        format!("{message} (see `ip link` for the interface names)")
    } else {
        message.to_owned()
    }
}

mod pcap_backend {
    use super::*;

    /// libpcap: TPACKET_V3 kernel ring (TPACKET_V2 in immediate mode), BPF.
    pub struct PcapSource {
        cap: Option<pcap::Capture<pcap::Active>>,
        link: LinkType,
        interface: String,
        timeout: Duration,
    }

    pub fn open(cfg: &CaptureConfig, interface: &str) -> Result<PcapSource, OpenError> {
        let err = |e: pcap::Error| OpenError {
            interface: interface.to_owned(),
            message: hint(&e.to_string()),
        };
        let timeout_ms = i32::try_from(cfg.timeout.as_millis())
            .unwrap_or(1000)
            .max(1);
        let mut cap = pcap::Capture::from_device(interface)
            .map_err(err)?
            .promisc(cfg.promiscuous)
            .snaplen(i32::try_from(cfg.snaplen).unwrap_or(i32::MAX))
            .buffer_size(i32::try_from(cfg.buffer_bytes).unwrap_or(i32::MAX))
            .immediate_mode(cfg.immediate)
            .timeout(timeout_ms)
            .open()
            .map_err(err)?;
        if let Some(f) = &cfg.filter {
            cap.filter(f, true).map_err(|e| OpenError {
                interface: interface.to_owned(),
                message: format!("BPF filter {f:?}: {e}"),
            })?;
        }
        let link = LinkType(u32::try_from(cap.get_datalink().0).unwrap_or(u32::MAX));
        Ok(PcapSource {
            cap: Some(cap),
            link,
            interface: interface.to_owned(),
            timeout: cfg.timeout,
        })
    }

    impl Source for PcapSource {
        fn link(&self) -> LinkType {
            self.link
        }

        fn read(&mut self, f: &mut dyn FnMut(u64, &[u8], u32)) -> Result<usize, ReadError> {
            let Some(cap) = self.cap.as_mut() else {
                return Err(ReadError(format!("{}: capture closed", self.interface)));
            };
            match cap.dispatch(None, |p| {
                let ts = tv_us(&p.header.ts);
                f(ts, p.data, p.header.len);
            }) {
                Ok(n) => Ok(n),
                Err(pcap::Error::TimeoutExpired) => Ok(0),
                Err(e) => Err(ReadError(e.to_string())),
            }
        }

        fn drain(&mut self, f: &mut dyn FnMut(u64, &[u8], u32)) -> usize {
            let Some(cap) = self.cap.take() else { return 0 };
            let Ok(mut cap) = cap.setnonblock() else {
                return 0;
            };
            let start = Instant::now();
            let mut total = 0;
            // The first call may report the break request of the shutdown.
            let mut breaks = 0;
            // The kernel hands over a partly filled block only when its timeout passes:
            // the ring is empty after two quiet reads a block timeout apart.
            let mut quiet = 0;
            while start.elapsed() < DRAIN_FOR && quiet < 2 {
                match cap.dispatch(None, |p| {
                    let ts = tv_us(&p.header.ts);
                    f(ts, p.data, p.header.len);
                }) {
                    Ok(0) => {
                        quiet += 1;
                        std::thread::sleep(self.timeout + Duration::from_millis(2));
                    }
                    Ok(n) => {
                        quiet = 0;
                        total += n;
                    }
                    Err(_) if breaks == 0 => breaks += 1,
                    Err(_) => break,
                }
            }
            self.cap = Some(cap);
            total
        }

        fn stats(&mut self) -> Option<KernelStats> {
            let s = self.cap.as_mut()?.stats().ok()?;
            Some(KernelStats {
                dropped: s.dropped,
                if_dropped: s.if_dropped,
            })
        }

        fn waker(&mut self) -> Waker {
            match self.cap.as_mut() {
                Some(cap) => {
                    let h = cap.breakloop_handle();
                    Waker(Some(Box::new(move || h.breakloop())))
                }
                None => Waker(None),
            }
        }
    }
}

#[cfg(feature = "pnet")]
mod pnet_backend {
    use super::*;
    use pnet_datalink::{Channel, DataLinkReceiver};

    /// pnet's AF_PACKET channel: one poll and one `recvfrom` per frame, no kernel
    /// statistics, no BPF, VLAN tags as the kernel leaves them (usually stripped).
    pub struct PnetSource {
        rx: Box<dyn DataLinkReceiver>,
    }

    pub fn open(cfg: &CaptureConfig, interface: &str) -> Result<PnetSource, OpenError> {
        let err = |message: String| OpenError {
            interface: interface.to_owned(),
            message,
        };
        if cfg.filter.is_some() {
            return Err(err(
                "the pnet backend has no BPF filter; remove capture.filter or use backend = \"pcap\""
                    .into(),
            ));
        }
        let iface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == interface)
            .ok_or_else(|| err(hint("No such device")))?;
        let pcfg = pnet_datalink::Config {
            read_buffer_size: cfg.snaplen as usize,
            read_timeout: Some(cfg.timeout.max(Duration::from_millis(10))),
            promiscuous: cfg.promiscuous,
            ..pnet_datalink::Config::default()
        };
        match pnet_datalink::channel(&iface, pcfg) {
            Ok(Channel::Ethernet(_tx, rx)) => Ok(PnetSource { rx }),
            Ok(_) => Err(err("not an Ethernet channel".into())),
            Err(e) => Err(err(hint(&e.to_string()))),
        }
    }

    fn now_us() -> u64 {
        crate::ship::now_us()
    }

    impl Source for PnetSource {
        fn link(&self) -> LinkType {
            LinkType::ETHERNET
        }

        fn read(&mut self, f: &mut dyn FnMut(u64, &[u8], u32)) -> Result<usize, ReadError> {
            // Up to a batch per call; the first waits for the timeout.
            let mut n = 0;
            while n < BATCH_FRAMES {
                match self.rx.next() {
                    Ok(frame) => {
                        f(now_us(), frame, frame.len() as u32);
                        n += 1;
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::Interrupted
                        ) =>
                    {
                        return Ok(n)
                    }
                    Err(e) => return Err(ReadError(e.to_string())),
                }
            }
            Ok(n)
        }

        fn drain(&mut self, f: &mut dyn FnMut(u64, &[u8], u32)) -> usize {
            let start = Instant::now();
            let mut total = 0;
            while start.elapsed() < DRAIN_FOR {
                match self.read(f) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
            total
        }

        fn stats(&mut self) -> Option<KernelStats> {
            None
        }

        fn waker(&mut self) -> Waker {
            // Reads time out on their own.
            Waker(None)
        }
    }
}

/// Deals frames out to the workers.
struct Dealer {
    source: usize,
    link: LinkType,
    workers: Vec<SyncSender<WorkerMsg>>,
    pending: Vec<Batch>,
    recycle: Receiver<Batch>,
    counters: Arc<InterfaceCounters>,
    snaplen: u32,
    /// Counted here and published once per read, not once per frame.
    local: Local,
}

#[derive(Default)]
struct Local {
    frames: u64,
    bytes: u64,
    truncated: u64,
    first_us: u64,
    last_us: u64,
}

impl Dealer {
    fn fresh(&self) -> Batch {
        match self.recycle.try_recv() {
            Ok(mut b) => {
                b.clear();
                b.source = self.source;
                b.link = self.link;
                b
            }
            Err(_) => Batch::new(self.source, self.link),
        }
    }

    fn frame(&mut self, ts_us: u64, data: &[u8], orig_len: u32) {
        let l = &mut self.local;
        l.frames += 1;
        l.bytes += data.len() as u64;
        if (orig_len as usize) > data.len() {
            l.truncated += 1;
        }
        if l.first_us == 0 {
            l.first_us = ts_us;
        }
        l.last_us = l.last_us.max(ts_us);
        let data = data.get(..self.snaplen as usize).unwrap_or(data);
        let w = shard::worker_of(self.link, data, self.workers.len());
        let Some(batch) = self.pending.get_mut(w) else {
            return;
        };
        batch.push(ts_us, data, orig_len);
        if batch.full() {
            self.send(w);
        }
    }

    /// Publishes the counters and sends every batch that holds frames.
    fn flush(&mut self) {
        let l = std::mem::take(&mut self.local);
        let c = &self.counters;
        if l.frames > 0 {
            c.frames.fetch_add(l.frames, Ordering::Relaxed);
            c.bytes.fetch_add(l.bytes, Ordering::Relaxed);
            c.truncated.fetch_add(l.truncated, Ordering::Relaxed);
            if c.first_us.load(Ordering::Relaxed) == 0 {
                c.first_us.store(l.first_us, Ordering::Relaxed);
            }
            c.last_us.fetch_max(l.last_us, Ordering::Relaxed);
        }
        for w in 0..self.pending.len() {
            if self.pending.get(w).is_some_and(|b| !b.is_empty()) {
                self.send(w);
            }
        }
    }

    fn send(&mut self, w: usize) {
        let fresh = self.fresh();
        let Some(slot) = self.pending.get_mut(w) else {
            return;
        };
        let batch = std::mem::replace(slot, fresh);
        let n = batch.len() as u64;
        let Some(tx) = self.workers.get(w) else {
            return;
        };
        let mut msg = WorkerMsg::Frames(batch);
        let mut since: Option<Instant> = None;
        loop {
            match tx.try_send(msg) {
                Ok(()) => return,
                Err(TrySendError::Full(m)) => {
                    let start = *since.get_or_insert_with(Instant::now);
                    if start.elapsed() >= QUEUE_WAIT {
                        self.counters.queue_drops.fetch_add(n, Ordering::Relaxed);
                        return;
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_micros(50));
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.counters.queue_drops.fetch_add(n, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}

/// Accumulates the kernel's 32-bit counters into 64-bit totals across wraps and reopens.
#[derive(Default)]
struct StatsTotal {
    last: KernelStats,
}

impl StatsTotal {
    fn update(&mut self, now: KernelStats, c: &InterfaceCounters) {
        let d = now.dropped.wrapping_sub(self.last.dropped);
        let di = now.if_dropped.wrapping_sub(self.last.if_dropped);
        c.kernel_drops.fetch_add(u64::from(d), Ordering::Relaxed);
        c.interface_drops
            .fetch_add(u64::from(di), Ordering::Relaxed);
        c.has_kernel_stats.store(true, Ordering::Relaxed);
        self.last = now;
    }
}

/// Everything a capture thread needs.
pub struct CaptureTask {
    /// Interface index.
    pub source: usize,
    /// Interface name.
    pub interface: String,
    /// The opened capture.
    pub src: Box<dyn Source>,
    /// Configuration (for reopening).
    pub cfg: CaptureConfig,
    /// The workers' queues.
    pub workers: Vec<SyncSender<WorkerMsg>>,
    /// Batches coming back from the workers.
    pub recycle: Receiver<Batch>,
    /// Counters.
    pub counters: Arc<InterfaceCounters>,
    /// Set at shutdown.
    pub stop: Arc<AtomicBool>,
    /// Where the current capture's waker goes, for the shutdown.
    pub waker: Arc<std::sync::Mutex<Waker>>,
}

/// The capture thread: reads until `stop`, then drains the kernel's ring and flushes.
pub fn run(task: CaptureTask) {
    let CaptureTask {
        source,
        interface,
        mut src,
        cfg,
        workers,
        recycle,
        counters,
        stop,
        waker,
    } = task;
    counters.link.store(src.link().0, Ordering::Relaxed);
    let mut dealer = Dealer {
        source,
        link: src.link(),
        pending: (0..workers.len())
            .map(|_| Batch::new(source, src.link()))
            .collect(),
        workers,
        recycle,
        counters: counters.clone(),
        snaplen: cfg.snaplen,
        local: Local::default(),
    };
    let mut totals = StatsTotal::default();
    let mut last_stats = Instant::now();
    let mut backoff = REOPEN_MIN;
    loop {
        if stop.load(Ordering::Acquire) {
            break;
        }
        match src.read(&mut |ts, d, o| dealer.frame(ts, d, o)) {
            Ok(_) => dealer.flush(),
            Err(e) => {
                dealer.flush();
                if stop.load(Ordering::Acquire) {
                    break;
                }
                // Keep the statistics of the capture that failed, then reopen.
                if let Some(s) = src.stats() {
                    totals.update(s, &counters);
                }
                let message = format!("{interface}: capture failed: {}", e.0);
                tracing::error!("{message}; reopening");
                if let Ok(mut slot) = counters.error.lock() {
                    *slot = Some(message);
                }
                loop {
                    if sleep_unless_stopped(backoff, &stop) {
                        break;
                    }
                    match open(&cfg, &interface) {
                        Ok(mut s) => {
                            if let Ok(mut w) = waker.lock() {
                                *w = s.waker();
                            }
                            src = s;
                            dealer.link = src.link();
                            counters.link.store(src.link().0, Ordering::Relaxed);
                            counters.reopened.fetch_add(1, Ordering::Relaxed);
                            totals = StatsTotal::default();
                            if let Ok(mut slot) = counters.error.lock() {
                                *slot = None;
                            }
                            tracing::info!("{interface}: capture reopened");
                            backoff = REOPEN_MIN;
                            break;
                        }
                        Err(e) => {
                            tracing::warn!("{interface}: cannot reopen: {}", e.message);
                            backoff = (backoff * 2).min(REOPEN_MAX);
                        }
                    }
                }
                continue;
            }
        }
        if last_stats.elapsed() >= STATS_EVERY {
            last_stats = Instant::now();
            if let Some(s) = src.stats() {
                totals.update(s, &counters);
            }
        }
    }
    // What the kernel still holds belongs to this run.
    let drained = src.drain(&mut |ts, d, o| dealer.frame(ts, d, o));
    dealer.flush();
    if let Some(s) = src.stats() {
        totals.update(s, &counters);
    }
    tracing::debug!("{interface}: capture stopped ({drained} frames drained at the end)");
}

/// Sleeps unless `stop` is set first; returns whether it was.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stop.load(Ordering::Acquire) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_gives_back_its_frames_in_order() {
        let mut b = Batch::new(0, LinkType::ETHERNET);
        b.push(1, &[1, 2, 3], 3);
        b.push(2, &[], 60);
        b.push(3, &[9; 1500], 1500);
        let got: Vec<(u64, usize, u32)> = b
            .packets()
            .map(|p| (p.ts_us, p.data.len(), p.orig_len))
            .collect();
        assert_eq!(got, vec![(1, 3, 3), (2, 0, 60), (3, 1500, 1500)]);
        assert!(!b.full());
        for _ in 0..BATCH_FRAMES {
            b.push(4, &[0], 1);
        }
        assert!(b.full());
    }

    #[test]
    fn kernel_counters_add_up_across_a_wrap() {
        let c = InterfaceCounters::new("x", Backend::Pcap);
        let mut t = StatsTotal::default();
        t.update(
            KernelStats {
                dropped: u32::MAX - 1,
                if_dropped: 0,
            },
            &c,
        );
        t.update(
            KernelStats {
                dropped: 3,
                if_dropped: 2,
            },
            &c,
        );
        assert_eq!(
            c.kernel_drops.load(Ordering::Relaxed),
            u64::from(u32::MAX) + 4
        );
        assert_eq!(c.interface_drops.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let (_rtx, rrx) = std::sync::mpsc::sync_channel(1);
        let counters = Arc::new(InterfaceCounters::new("x", Backend::Pcap));
        let mut d = Dealer {
            source: 0,
            link: LinkType::ETHERNET,
            workers: vec![tx],
            pending: vec![Batch::new(0, LinkType::ETHERNET)],
            recycle: rrx,
            counters: counters.clone(),
            snaplen: 65535,
            local: Local::default(),
        };
        let start = Instant::now();
        for _ in 0..(3 * BATCH_FRAMES) {
            d.frame(1, &[0u8; 60], 60);
        }
        d.flush();
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(
            counters.frames.load(Ordering::Relaxed),
            3 * BATCH_FRAMES as u64
        );
        // One batch fits in the queue; the next two were dropped and counted.
        assert_eq!(
            counters.queue_drops.load(Ordering::Relaxed),
            2 * BATCH_FRAMES as u64
        );
        let WorkerMsg::Frames(b) = rx.try_recv().unwrap();
        assert_eq!(b.len(), BATCH_FRAMES);
    }
}
