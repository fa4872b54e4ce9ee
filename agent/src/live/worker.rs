//! A flow worker: its own [`Pipeline`] (decoder, flow table, classifier) over the frames
//! the capture threads deal to it; finished flows go to the inventory thread in batches.
//!
//! When the link is quiet the worker advances its flow table with the wall clock, so idle
//! flows still end. New rules are picked up between batches: the pipeline is taken apart
//! from its classifier and resumed with a new one, so flows in progress keep their
//! state and go on under the new rules. On request it reports the remote-access and VPN
//! flows still open (a tunnel up for days) without ending them.

use super::capture::{Batch, WorkerMsg};
use super::counters::{Shared, WorkerCounters};
use super::report::InvMsg;
use crate::analyze::{Pipeline, PipelineState, Summary};
use crate::classify::Classifier;
use crate::flow::{self, Flow};
use crate::inventory::Inventory;
use crate::record::{FlowView, LocalNets, RecordCx};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Finished flows per message to the inventory thread.
pub const FLOW_BATCH: usize = 256;
/// How long a worker waits for frames before it advances its clock.
const IDLE_TICK: Duration = Duration::from_millis(250);

/// Everything a worker needs.
pub struct WorkerTask {
    /// Worker index.
    pub index: usize,
    /// Flow table configuration (this worker's share of `max_flows`).
    pub flows: flow::Config,
    /// Frames in.
    pub rx: Receiver<WorkerMsg>,
    /// Batches back to their capture thread, by interface.
    pub recycle: Vec<SyncSender<Batch>>,
    /// Flows out.
    pub out: SyncSender<InvMsg>,
    /// Counters and rules.
    pub shared: Arc<Shared>,
    /// This worker's counters.
    pub counters: Arc<WorkerCounters>,
    /// Local networks, for reports of open flows.
    pub nets: Arc<RwLock<LocalNets>>,
}

/// Why a pipeline generation ended.
enum Ended {
    /// The rules changed.
    Reload,
    /// Every capture thread is gone.
    Done,
}

/// The worker thread; returns its pipeline's counters.
pub fn run(task: WorkerTask) -> Summary {
    let mut state: Option<PipelineState> = None;
    let mut out = Vec::with_capacity(FLOW_BATCH);
    loop {
        let generation = task.shared.rules_generation.load(Ordering::Acquire);
        let classifier = Classifier::new(task.shared.rules());
        let mut pipe = match state.take() {
            Some(s) => Pipeline::from_state(s, &classifier),
            None => Pipeline::new(task.flows, &classifier),
        };
        match run_generation(&task, &mut pipe, generation, &mut out) {
            Ended::Reload => {
                state = Some(pipe.into_state());
                tracing::debug!(
                    worker = task.index,
                    "rules changed: new flows use the new rules"
                );
            }
            Ended::Done => {
                let summary = pipe.finish(&mut |f| push(&task, &mut out, f));
                publish(&task.counters, &summary, 0);
                send(&task, &mut out);
                return summary;
            }
        }
    }
}

fn push(task: &WorkerTask, out: &mut Vec<Flow>, f: Flow) {
    out.push(f);
    if out.len() >= FLOW_BATCH {
        send(task, out);
    }
}

fn send(task: &WorkerTask, out: &mut Vec<Flow>) {
    if out.is_empty() {
        return;
    }
    let batch = std::mem::replace(out, Vec::with_capacity(FLOW_BATCH));
    // Blocking: a slow inventory thread holds the worker back, whose queue then fills
    // and the capture thread counts the drops.
    let _ = task.out.send(InvMsg::Flows(batch));
}

fn publish(c: &WorkerCounters, s: &Summary, live: usize) {
    c.packets.store(s.packets, Ordering::Relaxed);
    c.not_ip.store(s.not_ip, Ordering::Relaxed);
    c.malformed.store(s.malformed, Ordering::Relaxed);
    c.unsupported_link
        .store(s.unsupported_link, Ordering::Relaxed);
    c.orphan_fragments
        .store(s.orphan_fragments, Ordering::Relaxed);
    c.flows_live.store(live as u64, Ordering::Relaxed);
    c.created.store(s.table.created, Ordering::Relaxed);
    c.evicted.store(s.table.evicted, Ordering::Relaxed);
    c.alive_us.store(crate::ship::now_us(), Ordering::Relaxed);
}

fn run_generation(
    task: &WorkerTask,
    pipe: &mut Pipeline<'_>,
    generation: u64,
    out: &mut Vec<Flow>,
) -> Ended {
    loop {
        match task.rx.recv_timeout(IDLE_TICK) {
            Ok(WorkerMsg::Frames(batch)) => {
                for p in batch.packets() {
                    pipe.packet(&p, &mut |f| push(task, out, f));
                }
                if let Some(r) = task.recycle.get(batch.source) {
                    let _ = r.try_send(batch);
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                // Nothing queued: the wall clock is the capture clock now.
                pipe.tick(crate::ship::now_us(), &mut |f| push(task, out, f));
                send(task, out);
            }
            Err(RecvTimeoutError::Disconnected) => return Ended::Done,
        }
        publish(&task.counters, &pipe.summary(), pipe.live_flows());
        let epoch = task.shared.snapshot_epoch.load(Ordering::Acquire);
        if epoch > task.counters.snapshot_done.load(Ordering::Acquire) {
            send(task, out);
            snapshot(task, pipe);
            task.counters.snapshot_done.store(epoch, Ordering::Release);
        }
        if task.shared.rules_generation.load(Ordering::Acquire) != generation {
            return Ended::Reload;
        }
    }
}

/// Reports the decided remote-access and VPN flows still open, as sessions so far.
fn snapshot(task: &WorkerTask, pipe: &mut Pipeline<'_>) {
    let rules = task.shared.rules();
    let nets = match task.nets.read() {
        Ok(n) => n.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let cx = RecordCx {
        nets: &nets,
        rules: &rules,
    };
    let mut inv = Inventory::new();
    for f in pipe.open_flows_mut() {
        if !f.inspect.done {
            continue;
        }
        // TLS and HTTP name their service only once resolved.
        f.resolve(&rules);
        if f.class.as_ref().is_some_and(|c| c.service.is_some()) {
            inv.add_flow(&FlowView { flow: f, cx: &cx }, &rules.policy);
        }
    }
    if !inv.is_empty() {
        let _ = task.out.send(InvMsg::Open(Box::new(inv)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::LinkType;
    use crate::live::config::Backend;
    use crate::live::counters::{InterfaceCounters, ShipState};
    use crate::rules::Rules;
    use std::sync::atomic::AtomicU64;
    use std::sync::mpsc::sync_channel;
    use std::sync::Mutex;

    const CLIENT: [u8; 4] = [203, 0, 113, 50];
    const SERVER: [u8; 4] = [10, 20, 10, 50];

    /// Ethernet, IPv4 (RFC 791 3.1) and TCP (RFC 9293 3.1) headers around `payload`, on
    /// a connection to SSH's port.
    fn tcp(to_server: bool, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        tcp_to(22, to_server, seq, ack, flags, payload)
    }

    fn tcp_to(
        port: u16,
        to_server: bool,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let (src, dst, sport, dport) = if to_server {
            (CLIENT, SERVER, 50_000u16, port)
        } else {
            (SERVER, CLIENT, port, 50_000)
        };
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
        let total = (40 + payload.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&ack.to_be_bytes());
        f.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    fn batch(frames: &[Vec<u8>], t0: u64) -> Batch {
        let mut b = Batch::new(0, LinkType::ETHERNET);
        for (i, f) in frames.iter().enumerate() {
            b.push(t0 + i as u64 * 1000, f, f.len() as u32);
        }
        b
    }

    fn shared() -> Arc<Shared> {
        Arc::new(Shared {
            interfaces: vec![Arc::new(InterfaceCounters::new("t0", Backend::Pcap))],
            workers: vec![Arc::new(WorkerCounters::default())],
            max_flows: 1000,
            rules: RwLock::new(Arc::new(Rules::defaults().unwrap())),
            rules_generation: AtomicU64::new(0),
            rules_reloads: AtomicU64::new(0),
            rules_error: Mutex::new(None),
            snapshot_epoch: AtomicU64::new(0),
            spool: Mutex::new(None),
            ship: Mutex::new(ShipState::default()),
        })
    }

    /// A worker running on its own thread, and the ends of its channels.
    struct Started {
        shared: Arc<Shared>,
        tx: SyncSender<WorkerMsg>,
        out_rx: Receiver<InvMsg>,
        _recycled: Receiver<Batch>,
        handle: std::thread::JoinHandle<Summary>,
    }

    fn start() -> Started {
        let shared = shared();
        let (tx, rx) = sync_channel(4);
        let (out_tx, out_rx) = sync_channel(64);
        let (rec_tx, recycled) = sync_channel(4);
        let task = WorkerTask {
            index: 0,
            flows: flow::Config::default(),
            rx,
            recycle: vec![rec_tx],
            out: out_tx,
            shared: shared.clone(),
            counters: shared.workers[0].clone(),
            nets: Arc::new(RwLock::new(LocalNets::with(&[]))),
        };
        Started {
            shared,
            tx,
            out_rx,
            _recycled: recycled,
            handle: std::thread::spawn(move || run(task)),
        }
    }

    fn recv(rx: &Receiver<InvMsg>) -> InvMsg {
        rx.recv_timeout(Duration::from_secs(20))
            .expect("a message from the worker")
    }

    /// A TLS record holding a ClientHello (RFC 8446 4.1.2) with one cipher suite and a
    /// server_name extension (RFC 6066 3).
    fn client_hello(sni: &str) -> Vec<u8> {
        let name = sni.as_bytes();
        let n = name.len() as u16;
        let mut ext = vec![0, 0];
        ext.extend_from_slice(&(n + 5).to_be_bytes());
        ext.extend_from_slice(&(n + 3).to_be_bytes());
        ext.push(0);
        ext.extend_from_slice(&n.to_be_bytes());
        ext.extend_from_slice(name);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend(ext);
        let mut rec = vec![0x16, 3, 1];
        rec.extend_from_slice(&(body.len() as u16 + 4).to_be_bytes());
        rec.extend_from_slice(&[1, 0]);
        rec.extend_from_slice(&(body.len() as u16).to_be_bytes());
        rec.extend(body);
        rec
    }

    /// TLS names its service (here from the catalogue's SNI domains) only when its
    /// handshake is worked out, after the packet path: an open session is still reported.
    #[test]
    fn open_tls_sessions_named_by_the_catalogue_are_reported() {
        let Started {
            shared,
            tx,
            out_rx,
            _recycled,
            handle,
        } = start();
        let t0 = crate::ship::now_us();
        let hello = client_hello("relay-1a2b3c.net.anydesk.com");
        let end = 101 + hello.len() as u32;
        let frames = [
            tcp_to(443, true, 100, 0, 0x02, b""),
            tcp_to(443, false, 500, 101, 0x12, b""),
            tcp_to(443, true, 101, 501, 0x10, b""),
            tcp_to(443, true, 101, 501, 0x18, &hello),
            tcp_to(443, false, 501, end, 0x18, &[9; 48]),
        ];
        tx.send(WorkerMsg::Frames(batch(&frames, t0))).unwrap();
        shared.snapshot_epoch.store(1, Ordering::Release);
        let InvMsg::Open(inv) = recv(&out_rx) else {
            panic!("expected the open flows");
        };
        let sessions: Vec<_> = inv.sessions().collect();
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].service, crate::classify::Service::Anydesk);
        drop(tx);
        let InvMsg::Flows(flows) = recv(&out_rx) else {
            panic!("expected the finished flows");
        };
        assert_eq!(flows.len(), 1);
        handle.join().unwrap();
    }

    /// An SSH session that stays open: reported as a session so far on request, kept
    /// whole across a rules reload, and ended once when the captures stop.
    #[test]
    fn open_sessions_are_reported_and_survive_a_reload() {
        let Started {
            shared,
            tx,
            out_rx,
            _recycled,
            handle,
        } = start();
        // Packets stamped now, as a live capture stamps them (the idle clock is the wall clock).
        let t0 = crate::ship::now_us();
        let mut opening = vec![
            tcp(true, 100, 0, 0x02, b""),
            tcp(false, 500, 101, 0x12, b""),
            tcp(true, 101, 501, 0x10, b""),
            tcp(false, 501, 101, 0x18, b"SSH-2.0-OpenSSH_9.6\r\n"),
            tcp(true, 101, 522, 0x18, b"SSH-2.0-PuTTY_Release_0.81\r\n"),
        ];
        // Encrypted-looking traffic until the inspection window closes and the banners
        // decide the flow (classify::MAX_INSPECT_PACKETS).
        let (mut cs, mut ss) = (129u32, 522u32);
        for _ in 0..12 {
            opening.push(tcp(true, cs, ss, 0x18, &[7; 48]));
            cs += 48;
            opening.push(tcp(false, ss, cs, 0x18, &[9; 48]));
            ss += 48;
        }
        tx.send(WorkerMsg::Frames(batch(&opening, t0))).unwrap();
        shared.snapshot_epoch.store(1, Ordering::Release);
        let InvMsg::Open(inv) = recv(&out_rx) else {
            panic!("expected the open flows");
        };
        let sessions: Vec<_> = inv.sessions().collect();
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].service, crate::classify::Service::Ssh);
        assert_eq!(sessions[0].packets, 29);

        // New rules between two packets of the same connection.
        shared.set_rules(Arc::new(Rules::defaults().unwrap()));
        let more = [tcp(false, ss, cs, 0x18, &[0u8; 64])];
        tx.send(WorkerMsg::Frames(batch(&more, t0 + 100_000)))
            .unwrap();
        drop(tx);
        let InvMsg::Flows(flows) = recv(&out_rx) else {
            panic!("expected the finished flows");
        };
        assert_eq!(flows.len(), 1, "the connection was split by the reload");
        assert_eq!(flows[0].packets, [15, 15]);
        assert_eq!(flows[0].first_us, t0);
        let summary = handle.join().unwrap();
        assert_eq!(summary.packets, 30);
        assert_eq!(summary.table.created, 1);
    }
}
