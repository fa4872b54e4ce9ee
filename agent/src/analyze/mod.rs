//! The offline packet path: capture files → decode → flow table → classify → records.
//!
//! Several files are read in the order given into one flow table (a capture split by
//! `tcpdump -C` stays one set of flows). A damaged file stops at the damage: its flows so
//! far are kept, the error is remembered, and the next file is read.

use crate::capture::{CaptureError, CaptureFile, LinkType, Packet};
use crate::classify::Classifier;
use crate::decode::{self, ipproto, tcpflag, Decoder, Skip, TcpMeta, L4};
use crate::flow::reassembly::Stream;
use crate::flow::{self, Flow, FlowTable};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

mod parts;
mod staged;
pub use parts::{run_parts, PIECE_FRAMES};
pub use staged::run_staged;

/// Counters for one run.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Files read (fully or in part).
    pub files: usize,
    /// Frames read.
    pub packets: u64,
    /// Frames that were not IP (ARP, LLDP, …).
    pub not_ip: u64,
    /// Frames too short or malformed to decode.
    pub malformed: u64,
    /// Frames of an unsupported link type.
    pub unsupported_link: u64,
    /// Later fragments whose first fragment was not seen.
    pub orphan_fragments: u64,
    /// Transport packets counted into flows (inner tunnel packets included).
    pub flow_packets: u64,
    /// Flow-table counters.
    pub table: flow::TableStats,
    /// Errors, one per damaged file.
    pub errors: Vec<String>,
    /// What each capture file held.
    pub captures: Vec<CaptureInfo>,
}

/// One capture file as read: for the capture-quality record.
#[derive(Debug, Default, Clone)]
pub struct CaptureInfo {
    /// The file.
    pub path: PathBuf,
    /// Frames read.
    pub packets: u64,
    /// First frame time, µs since the Unix epoch (0 when none).
    pub first_us: u64,
    /// Last frame time.
    pub last_us: u64,
    /// Frames cut short by the snap length.
    pub truncated: u64,
    /// Drops the capturing system recorded (pcapng interface statistics), when known.
    pub drops: Option<u64>,
    /// Link types seen.
    pub links: Vec<u32>,
    /// Read completely.
    pub complete: bool,
}

impl CaptureInfo {
    /// A file about to be read.
    fn of(cap: &CaptureFile) -> CaptureInfo {
        CaptureInfo {
            path: cap.path().to_owned(),
            ..CaptureInfo::default()
        }
    }

    /// Counts one frame.
    fn count(&mut self, p: &Packet<'_>) {
        self.packets += 1;
        if self.first_us == 0 || p.ts_us < self.first_us {
            self.first_us = p.ts_us;
        }
        self.last_us = self.last_us.max(p.ts_us);
        if p.orig_len as usize > p.data.len() {
            self.truncated += 1;
        }
        if self.links.last() != Some(&p.link.0) && !self.links.contains(&p.link.0) {
            self.links.push(p.link.0);
        }
    }

    /// The file is read (`res` says how far).
    fn end<T>(&mut self, cap: &CaptureFile, res: &Result<T, CaptureError>) {
        self.drops = cap.stats().drops;
        self.complete = res.is_ok();
    }
}

/// A pipeline's state without its classifier (see [`Pipeline::into_state`]).
pub struct PipelineState {
    decoder: Decoder,
    table: FlowTable,
    summary: Summary,
    obs: Vec<crate::names::Obs>,
}

/// The packet path with its state; files are fed one after another.
pub struct Pipeline<'c> {
    decoder: Decoder,
    table: FlowTable,
    classifier: &'c Classifier,
    summary: Summary,
    /// Scratch space for name observations of one datagram.
    obs: Vec<crate::names::Obs>,
}

impl<'c> Pipeline<'c> {
    /// A pipeline with an empty flow table.
    pub fn new(cfg: flow::Config, classifier: &'c Classifier) -> Pipeline<'c> {
        Pipeline {
            decoder: Decoder::new(),
            table: FlowTable::new(cfg),
            classifier,
            summary: Summary::default(),
            obs: Vec::new(),
        }
    }

    /// Processes one frame; ended flows go to `ended` (already classified).
    pub fn packet(&mut self, p: &Packet<'_>, ended: &mut impl FnMut(Flow)) {
        let classifier = self.classifier;
        self.packet_to(p, &mut Here { classifier, ended });
    }

    /// Processes one frame, handing ended flows and the packets to inspect to `stage`.
    fn packet_to(&mut self, p: &Packet<'_>, stage: &mut impl Stage) {
        self.summary.packets += 1;
        self.table.advance(p.ts_us, &mut |f| stage.end(f));
        let mut frame = Frame {
            p,
            table: &mut self.table,
            obs: &mut self.obs,
            stage,
            pushed: 0,
            skip: None,
        };
        self.decoder.decode_to(p.link, p.data, &mut frame);
        self.summary.flow_packets += frame.pushed as u64;
        match frame.skip {
            Some(Skip::NotIp) => self.summary.not_ip += 1,
            Some(Skip::Malformed) => self.summary.malformed += 1,
            Some(Skip::UnsupportedLink) => self.summary.unsupported_link += 1,
            Some(Skip::OrphanFragment) => self.summary.orphan_fragments += 1,
            None => {}
        }
    }

    /// Reads a whole capture file.
    pub fn file(
        &mut self,
        cap: &mut CaptureFile,
        ended: &mut impl FnMut(Flow),
    ) -> Result<(), CaptureError> {
        let classifier = self.classifier;
        self.file_to(cap, &mut Here { classifier, ended })
    }

    fn file_to(
        &mut self,
        cap: &mut CaptureFile,
        stage: &mut impl Stage,
    ) -> Result<(), CaptureError> {
        self.summary.files += 1;
        let mut info = CaptureInfo::of(cap);
        let res = cap
            .for_each_packet(|p| {
                info.count(p);
                self.packet_to(p, stage)
            })
            .map(|_| ());
        info.end(cap, &res);
        self.summary.captures.push(info);
        if let Err(e) = &res {
            self.summary.errors.push(e.to_string());
        }
        res
    }

    /// Opens the captures in order and reads them, then ends every live flow.
    fn run_to(
        mut self,
        paths: &[PathBuf],
        mut on_open: impl FnMut(&CaptureFile, Arc<AtomicU64>),
        stage: &mut impl Stage,
    ) -> Summary {
        for path in paths {
            match CaptureFile::open(path) {
                Ok(mut cap) => {
                    on_open(&cap, cap.progress_counter());
                    let _ = self.file_to(&mut cap, stage);
                }
                Err(e) => self.summary.errors.push(e.to_string()),
            }
        }
        self.finish_to(stage)
    }

    /// Advances the clock without a packet (a quiet live capture): flows idle past their
    /// timeout end and go to `ended`, as a later packet would have ended them.
    pub fn tick(&mut self, now_us: u64, ended: &mut impl FnMut(Flow)) {
        let stage = &mut Here {
            classifier: self.classifier,
            ended,
        };
        self.table.advance(now_us, &mut |f| stage.end(f));
    }

    /// The counters so far, the flow table's included.
    pub fn summary(&self) -> Summary {
        let mut s = self.summary.clone();
        s.table = self.table.stats();
        s
    }

    /// Flows in the table now.
    pub fn live_flows(&self) -> usize {
        self.table.len()
    }

    /// The flows still open, in no particular order: a long-running capture reports
    /// long-lived conversations (a VPN tunnel up for days) before they end.
    pub fn open_flows_mut(&mut self) -> impl Iterator<Item = &mut Flow> {
        self.table.iter_mut()
    }

    /// Takes the pipeline apart from its classifier, to go on under another one (rules
    /// reloaded): the flows in progress keep their state.
    pub fn into_state(self) -> PipelineState {
        PipelineState {
            decoder: self.decoder,
            table: self.table,
            summary: self.summary,
            obs: self.obs,
        }
    }

    /// Resumes a pipeline taken apart by [`Pipeline::into_state`] with a classifier.
    pub fn from_state(state: PipelineState, classifier: &'c Classifier) -> Pipeline<'c> {
        Pipeline {
            decoder: state.decoder,
            table: state.table,
            classifier,
            summary: state.summary,
            obs: state.obs,
        }
    }

    /// Ends every live flow (end of input) and returns the counters.
    pub fn finish(self, ended: &mut impl FnMut(Flow)) -> Summary {
        let classifier = self.classifier;
        self.finish_to(&mut Here { classifier, ended })
    }

    /// Ends every live flow, handing each to `stage`, and returns the counters.
    fn finish_to(mut self, stage: &mut impl Stage) -> Summary {
        self.table.drain(&mut |f| stage.end(f));
        self.summary.table = self.table.stats();
        self.summary
    }
}

/// One frame's transport packets, each taken into the flow table as the decoder finds
/// it (outermost first).
struct Frame<'p, 'd, S> {
    p: &'p Packet<'d>,
    table: &'p mut FlowTable,
    obs: &'p mut Vec<crate::names::Obs>,
    stage: &'p mut S,
    pushed: usize,
    skip: Option<Skip>,
}

impl<'d, S: Stage> decode::Out<'d> for Frame<'_, 'd, S> {
    fn push(&mut self, l4: L4<'d>) {
        if self.pushed > decode::MAX_TUNNEL_DEPTH {
            return;
        }
        self.pushed += 1;
        let (p, stage) = (self.p, &mut *self.stage);
        let (r, dir) = self.table.update(&l4, p.ts_us, &mut |f| stage.end(f));
        let Some(flow) = self.table.get_mut(r) else {
            return;
        };
        if l4.depth == 0 && flow.packets[dir as usize] == 1 && p.link == LinkType::ETHERNET {
            // Ethernet source address, bytes 6-11 (IEEE 802.3 clause 3.1.1).
            if let Some(m) = p.data.get(6..12).and_then(|m| <[u8; 6]>::try_from(m).ok()) {
                flow.mac[dir as usize] = m;
            }
        }
        if l4.proto == ipproto::UDP && !l4.payload.is_empty() {
            crate::names::harvest(l4.sport, l4.dport, l4.payload, self.obs);
            if !self.obs.is_empty() {
                let names = flow.names.get_or_insert_with(Box::default);
                for o in self.obs.drain(..) {
                    if names.len() < flow::MAX_NAME_OBS {
                        names.push((p.ts_us, o));
                    }
                }
            }
        }
        if !flow.inspect.done {
            stage.inspect(flow, dir as usize, &l4);
        }
    }

    fn pushed(&self) -> usize {
        self.pushed
    }

    fn skip(&mut self, why: Skip) {
        self.skip = Some(why);
    }
}

/// Where the packet path hands its work: the flows that end, and the packets of flows
/// whose classification is not over.
trait Stage {
    /// A flow ended (timeout, close, eviction or the end of the input).
    fn end(&mut self, f: Flow);
    /// A packet of a flow still being classified, in direction `dir`.
    fn inspect(&mut self, flow: &mut Flow, dir: usize, l4: &L4<'_>);
}

/// Classification on the packet path's own thread.
struct Here<'a, F> {
    classifier: &'a Classifier,
    ended: &'a mut F,
}

impl<F: FnMut(Flow)> Stage for Here<'_, F> {
    fn end(&mut self, mut f: Flow) {
        self.classifier.on_end(&mut f);
        (self.ended)(f);
    }

    fn inspect(&mut self, flow: &mut Flow, dir: usize, l4: &L4<'_>) {
        let grew = flow.inspectable
            && add_to_opening(&mut flow.streams, dir, l4.proto, l4.tcp, l4.payload);
        self.classifier.on_packet(flow, grew, l4.payload);
    }
}

/// Adds a packet of an inspectable flow to its direction's opening bytes: a SYN fixes
/// where the direction's bytes start, a payload is added. Returns whether the bytes grew.
/// The streams are allocated with the first SYN or payload byte; many flows carry none.
fn add_to_opening(
    streams: &mut Option<Box<[Stream; 2]>>,
    dir: usize,
    proto: u8,
    tcp: Option<TcpMeta>,
    payload: &[u8],
) -> bool {
    let syn = tcp.filter(|t| t.flags & tcpflag::SYN != 0);
    if syn.is_none() && payload.is_empty() {
        return false;
    }
    let Some(s) = streams.get_or_insert_with(Box::default).get_mut(dir) else {
        return false;
    };
    if let Some(t) = syn {
        s.syn(t.seq);
    }
    match (proto, tcp) {
        _ if payload.is_empty() => false,
        (ipproto::TCP, Some(t)) => {
            // A SYN occupies one sequence number; data it carries (TCP Fast Open, RFC 7413)
            // starts at ISN + 1, where `Stream::syn` put the stream's first byte
            // (RFC 9293 section 3.4).
            let seq = if t.flags & tcpflag::SYN != 0 {
                t.seq.wrapping_add(1)
            } else {
                t.seq
            };
            s.add_segment(seq, payload)
        }
        (ipproto::UDP, _) => s.add_datagram(payload),
        _ => false,
    }
}

/// Opens the captures in order, reporting progress through `progress` (bytes read,
/// total bytes) and handing every finished flow to `ended`.
pub fn run(
    paths: &[PathBuf],
    cfg: flow::Config,
    classifier: &Classifier,
    on_open: impl FnMut(&CaptureFile, Arc<AtomicU64>),
    ended: &mut impl FnMut(Flow),
) -> Summary {
    Pipeline::new(cfg, classifier).run_to(paths, on_open, &mut Here { classifier, ended })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Addr, TcpMeta};

    fn client_tcp(seq: u32, flags: u8, payload: &[u8]) -> L4<'_> {
        L4 {
            src: Addr::v4([10, 0, 0, 1]),
            dst: Addr::v4([192, 0, 2, 7]),
            proto: ipproto::TCP,
            sport: 50000,
            dport: 443,
            tcp: Some(TcpMeta { seq, flags }),
            payload,
            ip_len: 40 + payload.len() as u32,
            zone: 0,
            vlan: 0,
            depth: 0,
            fragment: false,
            fp: 0,
        }
    }

    /// TCP Fast Open (RFC 7413 section 2): the client's SYN carries the first bytes, the
    /// next segment follows at ISN + 1 + their length. Before the fix the SYN's first byte
    /// was dropped (its data was placed at ISN, one before the stream) and the next segment
    /// waited forever for a one-byte gap.
    #[test]
    fn data_on_a_syn_starts_at_isn_plus_one() {
        let mut table = FlowTable::new(flow::Config::default());
        let isn = 0xffff_fffe; // and across the wrap
        let mut added = Vec::new();
        for p in [
            client_tcp(isn, tcpflag::SYN, b"\x16\x03\x01"),
            client_tcp(isn.wrapping_add(4), tcpflag::ACK, b"\x02\x00"),
        ] {
            let (r, dir) = table.update(&p, 1, &mut |_| {});
            let f = table.get_mut(r).unwrap();
            added.push(add_to_opening(
                &mut f.streams,
                dir as usize,
                p.proto,
                p.tcp,
                p.payload,
            ));
            if added.len() == 2 {
                assert_eq!(
                    f.streams.as_deref().unwrap()[dir as usize].bytes(),
                    b"\x16\x03\x01\x02\x00"
                );
            }
        }
        assert_eq!(added, vec![true, true]);
    }
}
