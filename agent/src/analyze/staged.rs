//! The packet path for one flow table on two threads.
//!
//! A thread of its own reads the captures, decodes every frame and keeps the flow table
//! (counters, roles, timeouts, names); the calling thread keeps each flow's opening
//! bytes, runs the detectors over them and hands every finished flow on. Classification
//! is about a third of the work of a packet, so with a second core the packet path and
//! the detectors each get one (the output thread renders beside them).
//!
//! The classifying side gets, in order and in batches, every packet that can still
//! change a classification (a SYN, or a payload of a TCP or UDP flow whose
//! classification is not over) and every flow as it ends. A packet that changes nothing
//! (a bare acknowledgement, anything of a flow already decided) is not sent. So each flow
//! is classified from the same bytes at the same moments as on one thread, the flows end
//! in the same order, and the output is the same byte for byte.
//!
//! When a flow's classification is over, the classifying side marks the flow in a small
//! table the packet path reads, and later packets of the flow are no longer sent. A mark
//! that comes late only costs the packets sent meanwhile, which are skipped; so does a
//! mark overwritten by another flow's (a mark names its flow exactly). A flow that has
//! sent [`MAX_INSPECT_PACKETS`] payloads is over in any case, mark or not.

use super::{add_to_opening, Pipeline, Stage, Summary};
use crate::capture::CaptureFile;
use crate::classify::{
    Classification, Classifier, Deferred, Inspect, Opening, MAX_INSPECT_PACKETS,
};
use crate::decode::{ipproto, tcpflag, TcpMeta, L4};
use crate::flow::reassembly::Stream;
use crate::flow::{self, Flow};
use std::collections::hash_map::{Entry, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

/// Packets and ended flows per batch.
const BATCH_ITEMS: usize = 512;
/// Payload bytes per batch, at most (plus the packet that passes it).
const BATCH_BYTES: usize = 1 << 17;
/// Batches on their way to the second thread.
const BATCHES_IN_FLIGHT: usize = 2;
/// Places in the table of flows whose classification is over (a power of two).
const OVER_PLACES: usize = 1 << 15;

/// A packet for the classifier.
struct Pkt {
    /// The flow's id and place in the table.
    id: u64,
    slot: u32,
    /// Where its payload is in the batch's bytes.
    off: u32,
    len: u32,
    tcp: Option<TcpMeta>,
    client_port: u16,
    server_port: u16,
    proto: u8,
    /// Direction (0: client to server).
    dir: u8,
    /// The packet carried a payload (which may have been left out: see
    /// [`flow::reassembly::Reach`]).
    had_payload: bool,
}

/// The endpoints of a TCP flow, sent with a first payload that may be a tinc ID line:
/// the classifying side tells the classifier who talked when the flow is named (see
/// [`Classifier::decided`]).
struct Open {
    /// The packet it came with (its index in the batch).
    at: usize,
    /// Tunnel zone.
    zone: u32,
    client: flow::Endpoint,
    server: flow::Endpoint,
}

/// Packets and ended flows, in order: `ends[i].0` is the number of packets before it.
#[derive(Default)]
struct Batch {
    pkts: Vec<Pkt>,
    bytes: Vec<u8>,
    ends: Vec<(usize, Flow)>,
    opens: Vec<Open>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            pkts: Vec::with_capacity(BATCH_ITEMS),
            bytes: Vec::with_capacity(BATCH_BYTES + (64 << 10)),
            ends: Vec::with_capacity(BATCH_ITEMS / 4),
            opens: Vec::new(),
        }
    }

    fn items(&self) -> usize {
        self.pkts.len() + self.ends.len()
    }

    fn is_full(&self) -> bool {
        self.items() >= BATCH_ITEMS || self.bytes.len() >= BATCH_BYTES
    }
}

/// Flows whose classification is over: place `id % OVER_PLACES` holds `id + 1` (0: no
/// flow; the id `u64::MAX`, which would wrap to 0, is never marked).
struct Over(Box<[AtomicU64]>);

impl Over {
    fn new() -> Over {
        Over((0..OVER_PLACES).map(|_| AtomicU64::new(0)).collect())
    }

    fn place(&self, id: u64) -> Option<&AtomicU64> {
        self.0.get((id as usize) & (OVER_PLACES - 1))
    }

    fn mark(&self, id: u64) {
        if let (Some(p), Some(v)) = (self.place(id), id.checked_add(1)) {
            p.store(v, Ordering::Relaxed);
        }
    }

    fn is_over(&self, id: u64) -> bool {
        id.checked_add(1).is_some_and(|v| {
            self.place(id)
                .is_some_and(|p| p.load(Ordering::Relaxed) == v)
        })
    }
}

/// The packet path's side: fills batches and sends them on.
struct Sender<'a> {
    classifier: &'a Classifier,
    over: &'a Over,
    batch: Batch,
    tx: Option<SyncSender<Batch>>,
    spare: Receiver<Batch>,
}

impl Sender<'_> {
    fn send(&mut self) {
        if self.batch.items() == 0 {
            return;
        }
        let next = self.spare.try_recv().unwrap_or_else(|_| Batch::new());
        let full = std::mem::replace(&mut self.batch, next);
        if let Some(tx) = &self.tx {
            if tx.send(full).is_err() {
                // The classifying side is gone (it panicked): nothing more can be
                // classified or written; the packet path goes on to its end.
                self.tx = None;
            }
        }
    }

    fn added(&mut self) {
        if self.batch.is_full() {
            self.send();
        }
    }
}

impl Stage for Sender<'_> {
    fn end(&mut self, f: Flow) {
        let at = self.batch.pkts.len();
        self.batch.ends.push((at, f));
        self.added();
    }

    fn inspect(&mut self, flow: &mut Flow, dir: usize, l4: &L4<'_>) {
        if !flow.inspectable {
            // Decided from the header alone, here.
            self.classifier.on_packet(flow, false, l4.payload);
            return;
        }
        let syn = l4.tcp.is_some_and(|t| t.flags & tcpflag::SYN != 0);
        // After `MAX_INSPECT_PACKETS` payloads the classification is over, whether or
        // not its mark has come yet.
        if (!syn && l4.payload.is_empty())
            || flow.handed >= MAX_INSPECT_PACKETS
            || self.over.is_over(flow.id)
        {
            return;
        }
        let had_payload = !l4.payload.is_empty();
        if had_payload {
            flow.handed += 1;
        }
        // Only the bytes the opening can still take are copied: a UDP datagram to
        // `MAX_DATAGRAM` bytes, none past the window. A payload left out is still
        // counted there as a payload packet.
        let reach = flow.reach.get_mut(dir);
        let payload = match (flow.key.proto, l4.tcp, reach) {
            (ipproto::UDP, _, Some(r)) => {
                if r.datagram(l4.payload.len()) {
                    l4.payload
                        .get(..crate::flow::reassembly::MAX_DATAGRAM)
                        .unwrap_or(l4.payload)
                } else {
                    &[]
                }
            }
            (ipproto::TCP, Some(t), Some(r)) => {
                // As `add_to_opening` gives them to the stream.
                let seq = if syn {
                    r.syn(t.seq);
                    t.seq.wrapping_add(1)
                } else {
                    t.seq
                };
                if r.segment(seq, l4.payload.len()) {
                    l4.payload
                } else {
                    &[]
                }
            }
            _ => l4.payload,
        };
        let b = &mut self.batch;
        // Only a flow that may open with a tinc ID line can be named tinc, the one name
        // that needs them: the classifying side keeps no endpoints for the others.
        if had_payload
            && flow.handed <= 2
            && flow.key.proto == ipproto::TCP
            && crate::classify::tinc::may_open(l4.payload)
        {
            b.opens.push(Open {
                at: b.pkts.len(),
                zone: flow.key.zone,
                client: flow.client(),
                server: flow.server(),
            });
        }
        let off = b.bytes.len();
        b.bytes.extend_from_slice(payload);
        b.pkts.push(Pkt {
            id: flow.id,
            slot: flow.slot(),
            off: off as u32,
            len: payload.len() as u32,
            tcp: l4.tcp,
            client_port: flow.client().port,
            server_port: flow.server().port,
            proto: flow.key.proto,
            dir: dir as u8,
            had_payload,
        });
        self.added();
    }
}

/// A flow's classification state on the classifying side.
#[derive(Default)]
struct Shadow {
    /// The flow's id + 1; 0 when the place is free.
    owner: u64,
    streams: Option<Box<[Stream; 2]>>,
    inspect: Inspect,
    class: Option<Box<Classification>>,
    deferred: Option<Deferred>,
}

/// Places in one chunk of [`Shadows`].
const SHADOW_CHUNK: usize = 4096;

/// Classification states by the flow's place in the table, in chunks allocated as the
/// table grows (a chunk is never moved, so growing costs no copy and no second copy
/// held while copying).
#[derive(Default)]
struct Shadows {
    chunks: Vec<Box<[Shadow]>>,
}

impl Shadows {
    fn at(&mut self, slot: u32) -> Option<&mut Shadow> {
        let (c, i) = (slot as usize / SHADOW_CHUNK, slot as usize % SHADOW_CHUNK);
        while self.chunks.len() <= c {
            self.chunks
                .push((0..SHADOW_CHUNK).map(|_| Shadow::default()).collect());
        }
        self.chunks.get_mut(c)?.get_mut(i)
    }

    /// The state of a packet's flow, fresh for a flow not seen here before.
    fn of(&mut self, slot: u32, id: u64) -> Option<&mut Shadow> {
        let s = self.at(slot)?;
        if s.owner != id.wrapping_add(1) {
            *s = Shadow {
                owner: id.wrapping_add(1),
                ..Shadow::default()
            };
        }
        Some(s)
    }

    /// Gives an ended flow its classification state back.
    fn restore(&mut self, f: &mut Flow) {
        let id = f.id;
        if let Some(s) = self.at(f.slot()).filter(|s| s.owner == id.wrapping_add(1)) {
            let s = std::mem::take(s);
            f.streams = s.streams;
            f.inspect = s.inspect;
            f.class = s.class;
            f.deferred = s.deferred;
        }
    }
}

/// The classifying side: classifies and hands the flows to `ended` as they end.
fn classify(
    classifier: &Classifier,
    over: &Over,
    rx: Receiver<Batch>,
    spare: SyncSender<Batch>,
    ended: &mut impl FnMut(Flow),
) {
    let mut shadows = Shadows::default();
    // TCP flows with a payload and no name yet, by place: their id and endpoints.
    let mut open: HashMap<u32, (u64, Open)> = HashMap::new();
    let mut end = |mut f: Flow, shadows: &mut Shadows, open: &mut HashMap<u32, (u64, Open)>| {
        if let Entry::Occupied(e) = open.entry(f.slot()) {
            if e.get().0 == f.id {
                e.remove();
            }
        }
        shadows.restore(&mut f);
        classifier.on_end(&mut f);
        ended(f);
    };
    for mut batch in rx {
        let mut ends = batch.ends.drain(..);
        let mut opens = batch.opens.drain(..).peekable();
        // The packets before the next ended flow.
        let mut next_end = ends.next();
        for (i, p) in batch.pkts.iter().enumerate() {
            while let Some((_, f)) = next_end.take_if(|(at, _)| *at <= i) {
                end(f, &mut shadows, &mut open);
                next_end = ends.next();
            }
            while let Some(o) = opens.next_if(|o| o.at <= i) {
                if o.at == i {
                    open.insert(p.slot, (p.id, o));
                }
            }
            if over.is_over(p.id) {
                // Sent before the mark was seen.
                continue;
            }
            let Some(s) = shadows.of(p.slot, p.id) else {
                continue;
            };
            if s.inspect.done {
                continue;
            }
            let start = p.off as usize;
            let payload = batch
                .bytes
                .get(start..start.saturating_add(p.len as usize))
                .unwrap_or(&[]);
            let grew = add_to_opening(&mut s.streams, usize::from(p.dir), p.proto, p.tcp, payload);
            classifier.step(
                &mut Opening {
                    proto: p.proto,
                    client_port: p.client_port,
                    server_port: p.server_port,
                    streams: &mut s.streams,
                    inspect: &mut s.inspect,
                    class: &mut s.class,
                    deferred: &mut s.deferred,
                },
                grew,
                p.had_payload,
            );
            if s.inspect.done {
                over.mark(p.id);
                if let Some((id, o)) = open.remove(&p.slot) {
                    if id == p.id {
                        classifier.decided(o.zone, o.client, o.server, s.class.as_deref());
                    }
                }
            }
        }
        drop(opens);
        for (_, f) in next_end.into_iter().chain(ends) {
            end(f, &mut shadows, &mut open);
        }
        batch.pkts.clear();
        batch.bytes.clear();
        if batch.bytes.capacity() <= 2 * BATCH_BYTES {
            let _ = spare.try_send(batch);
        }
    }
}

/// As [`super::run`], with the packet path on a thread of its own and the
/// classification on this one (see the module documentation): `ended` is called here.
pub fn run_staged(
    paths: &[PathBuf],
    cfg: flow::Config,
    classifier: &Classifier,
    on_open: impl FnMut(&CaptureFile, Arc<AtomicU64>) + Send,
    ended: &mut impl FnMut(Flow),
) -> Summary {
    let over = Over::new();
    // Taken back if the thread cannot start.
    let on_open = Mutex::new(Some(on_open));
    let summary = std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<Batch>(BATCHES_IN_FLIGHT);
        let (spare_tx, spare_rx) = sync_channel::<Batch>(BATCHES_IN_FLIGHT + 2);
        let (over, on_open) = (&over, &on_open);
        let spawned = std::thread::Builder::new()
            .name("setten-packets".into())
            .spawn_scoped(scope, move || {
                let on_open = on_open.lock().ok().and_then(|mut o| o.take());
                let mut sender = Sender {
                    classifier,
                    over,
                    batch: Batch::new(),
                    tx: Some(tx),
                    spare: spare_rx,
                };
                let pipe = Pipeline::new(cfg, classifier);
                let summary = match on_open {
                    Some(on_open) => pipe.run_to(paths, on_open, &mut sender),
                    None => pipe.run_to(paths, |_, _| {}, &mut sender),
                };
                sender.send();
                summary
            });
        match spawned {
            Ok(worker) => {
                classify(classifier, over, rx, spare_tx, ended);
                match worker.join() {
                    Ok(summary) => Some(summary),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            Err(e) => {
                tracing::warn!("no thread for the packet path: {e}; classifying on the same one");
                None
            }
        }
    });
    match (summary, on_open.into_inner().ok().flatten()) {
        (Some(summary), _) => summary,
        (None, Some(on_open)) => super::run(paths, cfg, classifier, on_open, ended),
        (None, None) => super::run(paths, cfg, classifier, |_, _| {}, ended),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::sink::jsonl_line;
    use crate::record::{LocalNets, RecordCx};
    use crate::rules::Rules;
    use std::path::Path;

    /// Every corpus capture (`../shared/corpus/pcap`), then the bundled sample.
    fn captures() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let corpus = root.join("../../shared/corpus/pcap");
        let mut v: Vec<PathBuf> = std::fs::read_dir(&corpus)
            .unwrap_or_else(|e| panic!("{}: {e} (the shared corpus)", corpus.display()))
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        assert!(
            v.len() >= 10,
            "expected the corpus captures, found {}",
            v.len()
        );
        v.push(root.join("../samples/hospital-demo.pcap"));
        v
    }

    /// The flows as JSON Lines, in the order they came.
    fn rendered(flows: Vec<Flow>, rules: &Rules) -> Vec<u8> {
        let nets = LocalNets::with(&[]);
        let cx = RecordCx { nets: &nets, rules };
        let mut out = Vec::new();
        for mut f in flows {
            jsonl_line(&mut f, &cx, &mut out);
        }
        out
    }

    /// All the captures in one run, with the default table and with one so small that
    /// flows are evicted and places reused all the time: the same lines in the same order
    /// on two threads as on one.
    #[test]
    fn two_threads_give_the_flows_of_one_byte_for_byte() {
        let rules = Arc::new(Rules::defaults().unwrap());
        let classifier = Classifier::new(rules.clone());
        let paths = captures();
        for max_flows in [flow::Config::default().max_flows, 16] {
            let cfg = flow::Config {
                max_flows,
                ..flow::Config::default()
            };
            let mut one = Vec::new();
            let s1 = super::super::run(&paths, cfg, &classifier, |_, _| {}, &mut |f| one.push(f));
            let mut two = Vec::new();
            let s2 = run_staged(&paths, cfg, &classifier, |_, _| {}, &mut |f| two.push(f));
            assert!(one.len() > 500, "{} flows", one.len());
            assert_eq!(
                (
                    s1.packets,
                    s1.flow_packets,
                    s1.table.created,
                    s1.table.evicted
                ),
                (
                    s2.packets,
                    s2.flow_packets,
                    s2.table.created,
                    s2.table.evicted
                )
            );
            assert_eq!(s1.errors, s2.errors);
            if max_flows == 16 {
                assert!(s2.table.evicted > 100, "{} evicted", s2.table.evicted);
            }
            let (a, b) = (rendered(one, &rules), rendered(two, &rules));
            let first_difference = a
                .split(|&c| c == b'\n')
                .zip(b.split(|&c| c == b'\n'))
                .find(|(x, y)| x != y)
                .map(|(x, y)| {
                    (
                        String::from_utf8_lossy(x).into_owned(),
                        String::from_utf8_lossy(y).into_owned(),
                    )
                });
            assert_eq!(first_difference, None, "max_flows {max_flows}");
            assert_eq!(a.len(), b.len(), "max_flows {max_flows}");
            // Some flows were named by the detectors on the other thread.
            let text = String::from_utf8_lossy(&b);
            for service in ["\"rdp\"", "\"ssh\"", "\"openvpn\"", "\"ssl-vpn\""] {
                assert!(text.contains(service), "no {service} flow");
            }
        }
    }

    /// A capture that cannot be read: the error, and the flows of the files before it.
    #[test]
    fn a_damaged_file_keeps_the_flows_before_it() {
        let rules = Arc::new(Rules::defaults().unwrap());
        let classifier = Classifier::new(rules.clone());
        let mut paths = captures();
        paths.truncate(3);
        paths.push(PathBuf::from("/nonexistent/capture.pcap"));
        let mut flows = Vec::new();
        let s = run_staged(
            &paths,
            flow::Config::default(),
            &classifier,
            |_, _| {},
            &mut |f| flows.push(f),
        );
        assert_eq!(s.errors.len(), 1, "{:?}", s.errors);
        assert!(
            s.errors[0].contains("/nonexistent/capture.pcap"),
            "{:?}",
            s.errors
        );
        assert!(!flows.is_empty());
        assert_eq!(flows.len() as u64, s.table.created);
    }

    /// A mark names its flow exactly: another flow in the same place does not count as
    /// over, and a later mark replaces an earlier one.
    #[test]
    fn a_mark_names_its_flow_exactly() {
        let over = Over::new();
        let a = 7u64;
        let b = a + OVER_PLACES as u64;
        assert!(!over.is_over(a));
        over.mark(a);
        assert!(over.is_over(a));
        assert!(!over.is_over(b));
        over.mark(b);
        assert!(over.is_over(b));
        assert!(!over.is_over(a));
        // The one id that cannot be marked is never taken for over.
        over.mark(u64::MAX);
        assert!(!over.is_over(u64::MAX));
    }

    /// A long download and a long datagram exchange: the classifier gets every payload
    /// packet (it counts them), but only the bytes its opening can still take are copied
    /// to it: TCP segments up to the 8 KiB window, the first eight datagrams.
    #[test]
    fn only_bytes_the_opening_can_take_are_copied() {
        use crate::decode::Addr;
        use crate::flow::reassembly::{MAX_DATAGRAMS, MAX_STREAM_BYTES};
        let classifier = Classifier::new(Arc::new(Rules::defaults().unwrap()));
        let over = Over::new();
        let (_keep, spare) = sync_channel(1);
        let mut sender = Sender {
            classifier: &classifier,
            over: &over,
            batch: Batch::new(),
            tx: None,
            spare,
        };
        let mut table = flow::FlowTable::new(flow::Config::default());
        let body = vec![0x42u8; 1000];
        let packet = |proto, seq, flags, payload| L4 {
            src: Addr::v4([10, 0, 0, 1]),
            dst: Addr::v4([192, 0, 2, 7]),
            proto,
            sport: 50000,
            dport: 8443,
            tcp: (proto == ipproto::TCP).then_some(TcpMeta { seq, flags }),
            payload,
            ip_len: 40,
            zone: 0,
            vlan: 0,
            depth: 0,
            fragment: false,
            fp: seq,
        };
        let isn = u32::MAX - 5000; // across the sequence wrap too
        let mut feed = |sender: &mut Sender<'_>, l4: L4<'_>, t: u64| {
            let (r, dir) = table.update(&l4, t, &mut |_| {});
            let f = table.get_mut(r).unwrap();
            sender.inspect(f, dir as usize, &l4);
        };
        feed(&mut sender, packet(ipproto::TCP, isn, tcpflag::SYN, &[]), 1);
        for i in 0..20u32 {
            let seq = isn.wrapping_add(1 + i * 1000);
            let t = 2 + u64::from(i);
            feed(
                &mut sender,
                packet(ipproto::TCP, seq, tcpflag::ACK, &body),
                t,
            );
        }
        // The SYN and all twenty segments; of the bytes, the nine segments that start
        // inside the window (the ninth runs past its end and is kept whole).
        assert_eq!(sender.batch.pkts.len(), 21);
        assert_eq!(
            sender.batch.pkts.iter().filter(|p| p.had_payload).count(),
            20
        );
        assert_eq!(
            sender.batch.bytes.len(),
            MAX_STREAM_BYTES.div_ceil(1000) * 1000
        );
        sender.batch = Batch::new();
        for i in 0..12u32 {
            let t = 100 + u64::from(i);
            feed(&mut sender, packet(ipproto::UDP, i, 0, &body), t);
        }
        assert_eq!(sender.batch.pkts.len(), 12);
        assert_eq!(sender.batch.bytes.len(), MAX_DATAGRAMS * 1000);
    }
}
