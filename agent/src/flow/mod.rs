//! Flow table: bidirectional conversations keyed by their unordered endpoints.
//!
//! Client and server come from the TCP handshake where it is seen, otherwise from the
//! ports (a well-known service port is the server's) and then from the first packet.
//! Flows end on TCP close (FIN both ways or RST, after a short linger), on an idle timeout
//! per transport, or when the table is full (least recently seen first, counted). All of
//! this runs on capture time, so a file gives the same flows on every run.
//!
//! The table keeps one doubly linked LRU list per timeout class over a slab of flows, so
//! every packet is O(1) and expiry only looks at list tails.

pub mod reassembly;

use crate::classify::{Classification, Inspect};
use crate::decode::{ipproto, tcpflag, Addr, L4};
use reassembly::Stream;
use std::hash::BuildHasher;

/// Direction of a packet within its flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Client to server.
    ToServer = 0,
    /// Server to client.
    ToClient = 1,
}

/// Flow-table settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Most live flows; the least recently seen is evicted beyond it.
    pub max_flows: usize,
    /// Idle timeout of an open TCP connection, seconds.
    pub tcp_timeout: u64,
    /// Linger after FIN both ways or RST, seconds.
    pub tcp_closed_timeout: u64,
    /// Idle timeout of UDP flows, seconds.
    pub udp_timeout: u64,
    /// Idle timeout of other transports (ICMP, ESP, GRE, …), seconds.
    pub other_timeout: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_flows: 1_000_000,
            tcp_timeout: 600,
            tcp_closed_timeout: 15,
            udp_timeout: 180,
            other_timeout: 180,
        }
    }
}

/// The key of a flow: both endpoints in a canonical order, protocol and tunnel zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    /// Encapsulation zone (0 outside any tunnel).
    pub zone: u32,
    /// IP protocol.
    pub proto: u8,
    /// Lower endpoint port.
    pub lo_port: u16,
    /// Higher endpoint port.
    pub hi_port: u16,
    /// Lower endpoint address.
    pub lo: Addr,
    /// Higher endpoint address.
    pub hi: Addr,
}

// Three numbers instead of six fields: the table hashes a key for every packet.
impl std::hash::Hash for FlowKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(
            u128::from(self.zone)
                | u128::from(self.proto) << 32
                | u128::from(self.lo_port) << 40
                | u128::from(self.hi_port) << 56,
        );
        self.lo.hash(state);
        self.hi.hash(state);
    }
}

impl FlowKey {
    /// The key of a packet.
    pub fn of(p: &L4<'_>) -> FlowKey {
        let a = (p.src, p.sport);
        let b = (p.dst, p.dport);
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        FlowKey {
            zone: p.zone,
            proto: p.proto,
            lo_port: lo.1,
            hi_port: hi.1,
            lo: lo.0,
            hi: hi.0,
        }
    }
}

/// One endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// Address.
    pub addr: Addr,
    /// Port (0 where the transport has none).
    pub port: u16,
}

/// How the flow's client was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleBy {
    /// From a SYN or SYN-ACK.
    Handshake,
    /// From a well-known server port.
    Port,
    /// The first packet's sender.
    FirstPacket,
    /// From the bytes, against the ports or the first packet (see
    /// [`Flow::settle_roles`]).
    Content,
}

/// Name observations kept per flow (a long-lived resolver conversation keeps its first
/// ones).
pub const MAX_NAME_OBS: usize = 256;

/// Why a flow ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// TCP FIN both ways or RST.
    Closed,
    /// Idle timeout.
    Idle,
    /// Evicted because the table was full.
    Evicted,
    /// Still open when the capture ended.
    EndOfCapture,
}

impl EndReason {
    /// Lowercase name for output.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Closed => "closed",
            EndReason::Idle => "idle",
            EndReason::Evicted => "evicted",
            EndReason::EndOfCapture => "end_of_capture",
        }
    }
}

/// One bidirectional conversation.
#[derive(Debug)]
pub struct Flow {
    /// Creation order, unique within a run.
    pub id: u64,
    /// Table key.
    pub key: FlowKey,
    /// The client is the key's lower endpoint (see [`Flow::client`]).
    client_is_lo: bool,
    /// How the roles were decided.
    pub role_by: RoleBy,
    /// Outermost VLAN id of the first packet.
    pub vlan: u16,
    /// Tunnel depth of the flow (0 outermost).
    pub depth: u8,
    /// First packet, microseconds since the epoch.
    pub first_us: u64,
    /// Last packet.
    pub last_us: u64,
    /// Packets client→server, server→client.
    pub packets: [u64; 2],
    /// IP-layer bytes client→server, server→client.
    pub bytes: [u64; 2],
    /// Transport payload bytes client→server, server→client.
    pub payload_bytes: [u64; 2],
    /// Union of TCP flags seen per direction.
    pub tcp_flags: [u8; 2],
    /// SYN from the client and SYN-ACK from the server were both seen.
    pub handshake: bool,
    /// Packets that were IP fragments.
    pub fragments: u32,
    /// FIN seen per direction.
    fin: [bool; 2],
    /// Source MAC of the first frame in each direction (zero: not seen or no Ethernet).
    pub mac: [[u8; 6]; 2],
    /// Frames that repeated the previous frame of their direction (see `L4::fp`).
    pub duplicates: u32,
    /// `L4::fp` of the previous frame per direction.
    last_fp: [u32; 2],
    /// Names its datagrams gave out (DNS answers, DHCP, NetBIOS, LLMNR, mDNS), with the
    /// time seen; at most [`MAX_NAME_OBS`]. Boxed: most flows give out none, and every
    /// live flow pays for the field.
    pub names: Option<Box<Vec<(u64, crate::names::Obs)>>>,
    /// Opening bytes per direction, while the flow is being inspected.
    pub streams: Option<Box<[Stream; 2]>>,
    /// TCP or UDP: the payload is inspected until classification is done.
    pub inspectable: bool,
    /// Classifier progress while inspecting.
    pub inspect: Inspect,
    /// Payload packets handed to a classifier on another thread (`analyze::staged`).
    pub(crate) handed: u16,
    /// How far each direction's opening bytes on that thread have got, so that bytes
    /// they would drop are not copied there.
    pub(crate) reach: [reassembly::Reach; 2],
    /// Its place in the table while it is there (places are reused after it ends).
    slot: u32,
    /// The classification once decided (or at the end), unless it waits in `deferred`.
    pub class: Option<Box<Classification>>,
    /// Work that makes the classification, done off the packet path by
    /// [`Flow::resolve`] (TLS and HTTP keep a few hundred bytes here rather than a
    /// classification and its strings for every open flow).
    pub deferred: Option<crate::classify::Deferred>,
    /// Why it ended (set when it leaves the table).
    pub end: Option<EndReason>,
    lru: Link,
}

#[derive(Clone, Copy, Debug)]
struct Link {
    prev: u32,
    next: u32,
    list: u8,
}

const NIL: u32 = u32::MAX;

impl Flow {
    /// The endpoint a packet came from, as a direction.
    pub fn dir_of(&self, p: &L4<'_>) -> Dir {
        let client = self.client();
        if p.src == client.addr && p.sport == client.port {
            Dir::ToServer
        } else {
            Dir::ToClient
        }
    }

    /// Its place in the flow table while it is there: no two flows in the table share
    /// one, and a place is reused once its flow has ended.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// Turns the roles round when the classification's bytes show that the client
    /// taken from the ports or the first packet is the server
    /// ([`crate::classify::Classification::reversed`]): a UDP flow only, whose roles no
    /// TCP handshake decided. Every per-direction count goes with its side. Done once.
    pub fn settle_roles(&mut self) {
        let Some(c) = self.class.as_deref_mut() else {
            return;
        };
        if !std::mem::take(&mut c.reversed)
            || self.key.proto != ipproto::UDP
            || self.role_by == RoleBy::Handshake
        {
            return;
        }
        self.client_is_lo = !self.client_is_lo;
        self.role_by = RoleBy::Content;
        self.packets.swap(0, 1);
        self.bytes.swap(0, 1);
        self.payload_bytes.swap(0, 1);
        self.tcp_flags.swap(0, 1);
        self.fin.swap(0, 1);
        self.mac.swap(0, 1);
        self.last_fp.swap(0, 1);
        self.reach.swap(0, 1);
        if let Some(s) = self.streams.as_deref_mut() {
            s.swap(0, 1);
        }
    }

    /// The side that started the conversation.
    pub fn client(&self) -> Endpoint {
        if self.client_is_lo {
            self.lo()
        } else {
            self.hi()
        }
    }

    /// The other side.
    pub fn server(&self) -> Endpoint {
        if self.client_is_lo {
            self.hi()
        } else {
            self.lo()
        }
    }

    fn lo(&self) -> Endpoint {
        Endpoint {
            addr: self.key.lo,
            port: self.key.lo_port,
        }
    }

    fn hi(&self) -> Endpoint {
        Endpoint {
            addr: self.key.hi,
            port: self.key.hi_port,
        }
    }

    /// Completes the classification's deferred work (see `Classification::resolve`).
    pub fn resolve(&mut self, rules: &crate::rules::Rules) {
        if let Some(d) = self.deferred.take() {
            self.class = Some(Box::new(d.resolve(rules)));
        } else if let Some(c) = self.class.as_deref_mut() {
            c.resolve(rules);
        }
    }

    /// TCP close seen (FIN both ways, or RST).
    pub fn closed(&self) -> bool {
        (self.fin[0] && self.fin[1]) || (self.tcp_flags[0] | self.tcp_flags[1]) & tcpflag::RST != 0
    }
}

/// Counters of the table.
#[derive(Debug, Default, Clone, Copy)]
pub struct TableStats {
    /// Flows created.
    pub created: u64,
    /// Flows evicted because the table was full.
    pub evicted: u64,
    /// Flows ended by idle timeout.
    pub idle: u64,
    /// Flows ended by TCP close.
    pub closed: u64,
    /// Most flows live at once.
    pub peak: usize,
}

/// LRU lists, one per timeout class.
const LIST_TCP: u8 = 0;
const LIST_TCP_CLOSED: u8 = 1;
const LIST_UDP: u8 = 2;
const LIST_OTHER: u8 = 3;
const LISTS: usize = 4;

/// Slab indices, found by the hash of their flow's key: four bytes an entry instead of a
/// copy of the key (the keys live in the slab), so the index of a large capture is a few
/// hundred KiB rather than several MiB.
type Map = hashbrown::HashTable<u32>;
type KeyHasher = foldhash::fast::FixedState;

/// The flow table.
pub struct FlowTable {
    cfg: Config,
    map: Map,
    hasher: KeyHasher,
    slab: Slab,
    free: Vec<u32>,
    heads: [u32; LISTS],
    tails: [u32; LISTS],
    next_id: u64,
    /// Added to `next_id` per flow (see [`FlowTable::number_from`]).
    id_step: u64,
    now_us: u64,
    last_sweep_us: u64,
    stats: TableStats,
}

/// Flows per slab chunk.
const SLAB_CHUNK: usize = 4096;

/// The flows, in chunks of [`SLAB_CHUNK`] slots that never move: the table grows a chunk
/// at a time instead of doubling one vector, which would copy every live flow and hold
/// the old and new copies at once (the peak memory of a large capture).
#[derive(Default)]
struct Slab {
    chunks: Vec<Vec<Option<Flow>>>,
    len: usize,
}

impl Slab {
    fn get(&self, i: usize) -> Option<&Option<Flow>> {
        self.chunks.get(i / SLAB_CHUNK)?.get(i % SLAB_CHUNK)
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut Option<Flow>> {
        self.chunks.get_mut(i / SLAB_CHUNK)?.get_mut(i % SLAB_CHUNK)
    }

    /// Adds a flow in a new slot and returns the slot's index.
    fn push(&mut self, flow: Flow) -> u32 {
        if self.chunks.last().is_none_or(|c| c.len() >= SLAB_CHUNK) {
            self.chunks.push(Vec::with_capacity(SLAB_CHUNK));
        }
        if let Some(c) = self.chunks.last_mut() {
            c.push(Some(flow));
        }
        self.len += 1;
        (self.len - 1) as u32
    }
}

/// Handle to a flow in the table, valid until the next call that may remove flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRef(u32);

impl FlowTable {
    /// An empty table.
    pub fn new(cfg: Config) -> FlowTable {
        FlowTable {
            cfg,
            map: Map::with_capacity(cfg.max_flows.min(1 << 16)),
            hasher: KeyHasher::default(),
            slab: Slab::default(),
            free: Vec::new(),
            heads: [NIL; LISTS],
            tails: [NIL; LISTS],
            next_id: 0,
            id_step: 1,
            now_us: 0,
            last_sweep_us: 0,
            stats: TableStats::default(),
        }
    }

    /// Numbers flows `first`, `first + step`, … instead of 0, 1, …: the tables of a
    /// sharded packet path give out distinct ids, each in creation order.
    pub fn number_from(&mut self, first: u64, step: u64) {
        self.next_id = first;
        self.id_step = step.max(1);
    }

    /// Counters.
    pub fn stats(&self) -> TableStats {
        self.stats
    }

    /// Live flows.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No live flows.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Capture time of the newest packet.
    pub fn now_us(&self) -> u64 {
        self.now_us
    }

    /// Every live flow, in no particular order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Flow> {
        self.slab.chunks.iter_mut().flatten().flatten()
    }

    /// The flow behind a handle.
    pub fn get_mut(&mut self, r: FlowRef) -> Option<&mut Flow> {
        self.slab.get_mut(r.0 as usize).and_then(Option::as_mut)
    }

    /// Advances the clock and ends idle flows, handing each to `ended`.
    pub fn advance(&mut self, ts_us: u64, ended: &mut impl FnMut(Flow)) {
        if ts_us > self.now_us {
            self.now_us = ts_us;
        }
        // Sweep on each whole capture second: tails are the oldest of each list. A flow
        // ends at the first whole second at or after its last packet plus its timeout,
        // whichever packets moved the clock there, so a table that sees only some of the
        // frames (a part of a sharded run, fed the clock between its frames) ends the same
        // flows as one that sees them all.
        let second = self.now_us - self.now_us % 1_000_000;
        if second <= self.last_sweep_us {
            return;
        }
        self.last_sweep_us = second;
        for list in 0..LISTS as u8 {
            let timeout = self.timeout_us(list);
            loop {
                let t = self.tails[list as usize];
                if t == NIL {
                    break;
                }
                let Some(f) = self.slab.get(t as usize).and_then(Option::as_ref) else {
                    break;
                };
                if f.last_us.saturating_add(timeout) > second {
                    break;
                }
                let reason = if list == LIST_TCP_CLOSED {
                    self.stats.closed += 1;
                    EndReason::Closed
                } else {
                    self.stats.idle += 1;
                    EndReason::Idle
                };
                if let Some(f) = self.remove(t, reason) {
                    ended(f);
                }
            }
        }
    }

    fn timeout_us(&self, list: u8) -> u64 {
        let s = match list {
            LIST_TCP => self.cfg.tcp_timeout,
            LIST_TCP_CLOSED => self.cfg.tcp_closed_timeout,
            LIST_UDP => self.cfg.udp_timeout,
            _ => self.cfg.other_timeout,
        };
        s.saturating_mul(1_000_000)
    }

    /// Finds or creates the flow of a packet and counts the packet into it. Returns the
    /// flow and the packet's direction. May evict the least recently seen flow when full.
    pub fn update(
        &mut self,
        p: &L4<'_>,
        ts_us: u64,
        ended: &mut impl FnMut(Flow),
    ) -> (FlowRef, Dir) {
        let key = FlowKey::of(p);
        let hash = self.hasher.hash_one(key);
        let slab = &self.slab;
        let found = self.map.find(hash, |&i| {
            slab.get(i as usize)
                .and_then(Option::as_ref)
                .is_some_and(|f| f.key == key)
        });
        let idx = match found {
            Some(&i) => i,
            None => {
                if self.map.len() >= self.cfg.max_flows.max(1) {
                    self.evict_oldest(ended);
                }
                self.insert(key, hash, p, ts_us)
            }
        };
        let now = self.now_us.max(ts_us);
        let Some(f) = self.slab.get_mut(idx as usize).and_then(Option::as_mut) else {
            // Unreachable by construction: the map only holds live slots.
            return (FlowRef(idx), Dir::ToServer);
        };
        let dir = f.dir_of(p);
        let d = dir as usize;
        f.packets[d] += 1;
        f.bytes[d] += u64::from(p.ip_len);
        f.payload_bytes[d] += p.payload.len() as u64;
        if ts_us > f.last_us {
            f.last_us = ts_us;
        }
        if ts_us < f.first_us {
            f.first_us = ts_us;
        }
        if p.fragment {
            f.fragments = f.fragments.saturating_add(1);
        }
        if p.fp != 0 {
            if f.last_fp[d] == p.fp {
                f.duplicates = f.duplicates.saturating_add(1);
            }
            f.last_fp[d] = p.fp;
        }
        let mut list = f.lru.list;
        if let Some(t) = p.tcp {
            f.tcp_flags[d] |= t.flags;
            if t.flags & tcpflag::FIN != 0 {
                f.fin[d] = true;
            }
            if f.tcp_flags[0] & tcpflag::SYN != 0
                && f.tcp_flags[1] & (tcpflag::SYN | tcpflag::ACK) == tcpflag::SYN | tcpflag::ACK
            {
                f.handshake = true;
            }
            if f.closed() {
                list = LIST_TCP_CLOSED;
            }
        }
        let _ = now;
        self.touch(idx, list);
        (FlowRef(idx), dir)
    }

    fn insert(&mut self, key: FlowKey, hash: u64, p: &L4<'_>, ts_us: u64) -> u32 {
        let src = Endpoint {
            addr: p.src,
            port: p.sport,
        };
        let dst = Endpoint {
            addr: p.dst,
            port: p.dport,
        };
        let (client, _, role_by) = decide_roles(p, src, dst);
        let list = match p.proto {
            ipproto::TCP => LIST_TCP,
            ipproto::UDP => LIST_UDP,
            _ => LIST_OTHER,
        };
        let inspectable = matches!(p.proto, ipproto::TCP | ipproto::UDP);
        let mut flow = Flow {
            id: self.next_id,
            key,
            client_is_lo: (client.addr, client.port) == (key.lo, key.lo_port),
            role_by,
            vlan: p.vlan,
            depth: p.depth,
            first_us: ts_us,
            last_us: ts_us,
            packets: [0; 2],
            bytes: [0; 2],
            payload_bytes: [0; 2],
            tcp_flags: [0; 2],
            handshake: false,
            fragments: 0,
            fin: [false; 2],
            mac: [[0; 6]; 2],
            duplicates: 0,
            last_fp: [0; 2],
            names: None,
            // Stream buffers are allocated with the first SYN or payload byte (see
            // `analyze::add_to_opening`); many flows never carry any.
            streams: None,
            inspectable,
            inspect: Inspect::default(),
            handed: 0,
            reach: Default::default(),
            slot: 0,
            class: None,
            deferred: None,
            end: None,
            lru: Link {
                prev: NIL,
                next: NIL,
                list,
            },
        };
        self.next_id = self.next_id.saturating_add(self.id_step);
        self.stats.created += 1;
        let idx = match self.free.pop() {
            Some(i) => {
                flow.slot = i;
                if let Some(slot) = self.slab.get_mut(i as usize) {
                    *slot = Some(flow);
                }
                i
            }
            None => {
                flow.slot = self.slab.len as u32;
                self.slab.push(flow)
            }
        };
        let (slab, hasher) = (&self.slab, &self.hasher);
        self.map.insert_unique(hash, idx, |&i| {
            slab.get(i as usize)
                .and_then(Option::as_ref)
                .map_or(0, |f| hasher.hash_one(f.key))
        });
        self.link_front(idx, list);
        self.stats.peak = self.stats.peak.max(self.map.len());
        idx
    }

    fn evict_oldest(&mut self, ended: &mut impl FnMut(Flow)) {
        let mut best: Option<(u64, u32)> = None;
        for &t in &self.tails {
            if let Some(f) = self.slab.get(t as usize).and_then(Option::as_ref) {
                if best.is_none_or(|(ts, _)| f.last_us < ts) {
                    best = Some((f.last_us, t));
                }
            }
        }
        if let Some((_, t)) = best {
            self.stats.evicted += 1;
            if let Some(f) = self.remove(t, EndReason::Evicted) {
                ended(f);
            }
        }
    }

    fn remove(&mut self, idx: u32, reason: EndReason) -> Option<Flow> {
        self.unlink(idx);
        let mut f = self.slab.get_mut(idx as usize)?.take()?;
        if let Ok(e) = self
            .map
            .find_entry(self.hasher.hash_one(f.key), |&i| i == idx)
        {
            e.remove();
        }
        self.free.push(idx);
        f.end = Some(reason);
        Some(f)
    }

    /// Ends every live flow in creation order (end of capture, or shutdown). The table is
    /// emptied at once rather than flow by flow: one pass over the slab, no index lookups
    /// or list unlinking per flow.
    pub fn drain(&mut self, ended: &mut impl FnMut(Flow)) {
        let mut live: Vec<(u64, u32)> = Vec::with_capacity(self.map.len());
        let mut i = 0u32;
        let (mut lo, mut hi) = (u64::MAX, 0u64);
        for chunk in &self.slab.chunks {
            for slot in chunk {
                if let Some(f) = slot {
                    live.push((f.id, i));
                    lo = lo.min(f.id);
                    hi = hi.max(f.id);
                }
                i = i.wrapping_add(1);
            }
        }
        self.map.clear();
        self.heads = [NIL; LISTS];
        self.tails = [NIL; LISTS];
        // Ids are unique and given in creation order. When the live ones are dense (a
        // capture's end: most flows still open), each goes straight to its place;
        // otherwise they are sorted.
        let span = hi.saturating_sub(lo).saturating_add(1);
        let order: Vec<u32> = if !live.is_empty() && span <= 4 * live.len() as u64 {
            let mut at = vec![NIL; span as usize];
            for &(id, i) in &live {
                if let Some(s) = at.get_mut((id - lo) as usize) {
                    *s = i;
                }
            }
            at.retain(|&i| i != NIL);
            at
        } else {
            live.sort_unstable();
            live.iter().map(|&(_, i)| i).collect()
        };
        drop(live);
        for i in order {
            if let Some(mut f) = self.slab.get_mut(i as usize).and_then(Option::take) {
                self.free.push(i);
                f.end = Some(EndReason::EndOfCapture);
                ended(f);
            }
        }
    }

    fn touch(&mut self, idx: u32, list: u8) {
        let same = self
            .slab
            .get(idx as usize)
            .and_then(Option::as_ref)
            .is_some_and(|f| f.lru.list == list);
        if same && self.heads[list as usize] == idx {
            return;
        }
        self.unlink(idx);
        self.link_front(idx, list);
    }

    fn link_front(&mut self, idx: u32, list: u8) {
        let head = self.heads[list as usize];
        if let Some(f) = self.slab.get_mut(idx as usize).and_then(Option::as_mut) {
            f.lru = Link {
                prev: NIL,
                next: head,
                list,
            };
        }
        if let Some(h) = self.slab.get_mut(head as usize).and_then(Option::as_mut) {
            h.lru.prev = idx;
        }
        self.heads[list as usize] = idx;
        if self.tails[list as usize] == NIL {
            self.tails[list as usize] = idx;
        }
    }

    fn unlink(&mut self, idx: u32) {
        let Some(link) = self
            .slab
            .get(idx as usize)
            .and_then(Option::as_ref)
            .map(|f| f.lru)
        else {
            return;
        };
        let l = link.list as usize;
        if link.prev == NIL {
            if self.heads[l] == idx {
                self.heads[l] = link.next;
            }
        } else if let Some(p) = self
            .slab
            .get_mut(link.prev as usize)
            .and_then(Option::as_mut)
        {
            p.lru.next = link.next;
        }
        if link.next == NIL {
            if self.tails[l] == idx {
                self.tails[l] = link.prev;
            }
        } else if let Some(n) = self
            .slab
            .get_mut(link.next as usize)
            .and_then(Option::as_mut)
        {
            n.lru.prev = link.prev;
        }
        if let Some(f) = self.slab.get_mut(idx as usize).and_then(Option::as_mut) {
            f.lru.prev = NIL;
            f.lru.next = NIL;
        }
    }
}

/// Rank of a port as a server port: a port a known service listens on beats a
/// privileged port, which beats an ephemeral one.
pub fn server_port_rank(proto: u8, port: u16) -> u8 {
    if port == 0 {
        return 0;
    }
    const KNOWN_TCP: &[u16] = &[
        21, 22, 23, 25, 53, 80, 88, 110, 135, 139, 143, 389, 443, 445, 465, 512, 513, 514, 587,
        636, 655, 992, 993, 995, 1194, 1433, 1494, 1521, 1723, 2598, 3268, 3306, 3389, 4000, 4899,
        5432, 5555, 5900, 5901, 5938, 6568, 7070, 8080, 8443, 10443, 2575, 104, 11112,
    ];
    const KNOWN_UDP: &[u16] = &[
        53, 67, 69, 88, 123, 137, 138, 161, 162, 177, 389, 443, 500, 514, 655, 1194, 1701, 1900,
        3389, 3478, 4000, 4500, 5060, 5353, 5355, 5938, 41641, 51820,
    ];
    let known = match proto {
        ipproto::TCP => KNOWN_TCP,
        _ => KNOWN_UDP,
    };
    if known.contains(&port) {
        3
    } else if port < 1024 {
        2
    } else if port < 32768 {
        1
    } else {
        0
    }
}

fn decide_roles(p: &L4<'_>, src: Endpoint, dst: Endpoint) -> (Endpoint, Endpoint, RoleBy) {
    if let Some(t) = p.tcp {
        let syn = t.flags & tcpflag::SYN != 0;
        let ack = t.flags & tcpflag::ACK != 0;
        if syn && !ack {
            return (src, dst, RoleBy::Handshake);
        }
        if syn && ack {
            return (dst, src, RoleBy::Handshake);
        }
    }
    let rs = server_port_rank(p.proto, p.sport);
    let rd = server_port_rank(p.proto, p.dport);
    if rs > rd {
        (dst, src, RoleBy::Port)
    } else if rd > rs {
        (src, dst, RoleBy::Port)
    } else {
        (src, dst, RoleBy::FirstPacket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::TcpMeta;

    fn pkt(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: u8) -> L4<'static> {
        L4 {
            src: Addr::v4(src),
            dst: Addr::v4(dst),
            proto: ipproto::TCP,
            sport,
            dport,
            tcp: Some(TcpMeta { seq: 1, flags }),
            payload: &[],
            ip_len: 40,
            zone: 0,
            vlan: 0,
            depth: 0,
            fragment: false,
            fp: 0,
        }
    }

    fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> L4<'static> {
        L4 {
            proto: ipproto::UDP,
            tcp: None,
            ..pkt(src, sport, dst, dport, 0)
        }
    }

    /// A SPAN port that copies a frame on ingress and egress delivers it twice in a row:
    /// same IPv4 identification and transport checksum. A retransmission carries a new
    /// identification and is not counted; neither is the same value in the other direction.
    #[test]
    fn repeated_frames_are_counted_as_duplicates() {
        let mut t = FlowTable::new(Config::default());
        let c2s = |fp| L4 {
            fp,
            ..pkt([10, 0, 0, 1], 50000, [192, 0, 2, 9], 443, tcpflag::ACK)
        };
        let s2c = |fp| L4 {
            fp,
            ..pkt([192, 0, 2, 9], 443, [10, 0, 0, 1], 50000, tcpflag::ACK)
        };
        let mut r = None;
        for p in [
            c2s(0x0001_abcd),
            c2s(0x0001_abcd),
            s2c(0x0001_abcd),
            c2s(0x0002_abcd),
            c2s(0),
        ] {
            r = Some(t.update(&p, 1, &mut |_| {}).0);
        }
        let f = t.get_mut(r.unwrap()).unwrap();
        assert_eq!(f.duplicates, 1);
    }

    /// A flow ends at the first whole capture second at or after its last packet plus its
    /// timeout, however the clock got there: by many packets of other flows, or by one
    /// jump (a table that sees only its share of the frames and is told the time between
    /// them).
    #[test]
    fn idle_flows_end_on_whole_seconds_whatever_moves_the_clock() {
        let cfg = Config {
            udp_timeout: 10,
            ..Config::default()
        };
        let quiet = udp([10, 0, 0, 1], 5000, [192, 0, 2, 9], 53);
        let busy = udp([10, 0, 0, 2], 5000, [192, 0, 2, 9], 53);
        // Idle from 1.5 s: past its timeout at 11.5 s, so it ends on the sweep at 12 s.
        let ends_at = |steps: &[u64]| {
            let mut t = FlowTable::new(cfg);
            let mut ended = Vec::new();
            t.update(&quiet, 1_500_000, &mut |f| ended.push(f));
            for &now in steps {
                t.advance(now, &mut |f: Flow| ended.push(f));
                if ended.iter().any(|f: &Flow| f.key == FlowKey::of(&quiet)) {
                    return now;
                }
                t.update(&busy, now, &mut |f| ended.push(f));
            }
            u64::MAX
        };
        let every_tenth: Vec<u64> = (20..=130).map(|d| d * 100_000).collect();
        assert_eq!(ends_at(&every_tenth), 12_000_000);
        assert_eq!(ends_at(&[11_900_000, 12_300_000]), 12_300_000);
        assert_eq!(
            ends_at(&[11_600_000]),
            u64::MAX,
            "not before the whole second"
        );
        // A packet at 11.9 s still belongs to the flow; at 12.0 s it starts a new one.
        for (at, flows) in [(11_900_000u64, 1u64), (12_000_000, 2)] {
            let mut t = FlowTable::new(cfg);
            t.update(&quiet, 1_500_000, &mut |_| {});
            t.advance(at, &mut |_| {});
            t.update(&quiet, at, &mut |_| {});
            assert_eq!(t.stats().created, flows, "packet at {at}");
        }
    }

    #[test]
    fn both_directions_meet_in_one_flow_with_handshake_roles() {
        let mut t = FlowTable::new(Config::default());
        let mut ended = Vec::new();
        let mut sink = |f: Flow| ended.push(f);
        let (a, d1) = t.update(
            &pkt([10, 0, 0, 1], 50000, [10, 0, 0, 2], 8000, tcpflag::SYN),
            1,
            &mut sink,
        );
        let (b, d2) = t.update(
            &pkt(
                [10, 0, 0, 2],
                8000,
                [10, 0, 0, 1],
                50000,
                tcpflag::SYN | tcpflag::ACK,
            ),
            2,
            &mut sink,
        );
        assert_eq!(a, b);
        assert_eq!((d1, d2), (Dir::ToServer, Dir::ToClient));
        let f = t.get_mut(a).unwrap();
        assert!(f.handshake);
        assert_eq!(f.client().port, 50000);
        assert_eq!(f.packets, [1, 1]);
    }

    #[test]
    fn synack_first_still_finds_the_client() {
        let mut t = FlowTable::new(Config::default());
        let (r, _) = t.update(
            &pkt(
                [10, 0, 0, 2],
                8000,
                [10, 0, 0, 1],
                50000,
                tcpflag::SYN | tcpflag::ACK,
            ),
            1,
            &mut |_| {},
        );
        assert_eq!(t.get_mut(r).unwrap().client().port, 50000);
    }

    #[test]
    fn well_known_port_decides_without_handshake() {
        let mut t = FlowTable::new(Config::default());
        let (r, _) = t.update(
            &udp([10, 0, 0, 2], 500, [10, 0, 0, 1], 40000),
            1,
            &mut |_| {},
        );
        let f = t.get_mut(r).unwrap();
        assert_eq!((f.server().port, f.role_by), (500, RoleBy::Port));
    }

    #[test]
    fn idle_timeout_per_transport_and_close() {
        let cfg = Config {
            udp_timeout: 10,
            tcp_timeout: 100,
            tcp_closed_timeout: 1,
            ..Config::default()
        };
        let mut t = FlowTable::new(cfg);
        let mut ended = Vec::new();
        t.update(&udp([10, 0, 0, 1], 40000, [10, 0, 0, 2], 53), 0, &mut |f| {
            ended.push(f)
        });
        t.update(
            &pkt([10, 0, 0, 1], 40001, [10, 0, 0, 2], 22, tcpflag::SYN),
            0,
            &mut |f| ended.push(f),
        );
        t.update(
            &pkt([10, 0, 0, 1], 40002, [10, 0, 0, 2], 22, tcpflag::RST),
            0,
            &mut |f| ended.push(f),
        );
        t.advance(5_000_000, &mut |f| ended.push(f));
        assert_eq!(
            ended.iter().map(|f| f.end).collect::<Vec<_>>(),
            vec![Some(EndReason::Closed)]
        );
        t.advance(11_000_000, &mut |f| ended.push(f));
        assert_eq!(ended.len(), 2);
        assert_eq!(ended[1].key.proto, ipproto::UDP);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn cap_evicts_least_recently_seen_and_counts_it() {
        let cfg = Config {
            max_flows: 2,
            ..Config::default()
        };
        let mut t = FlowTable::new(cfg);
        let mut ended = Vec::new();
        t.update(&udp([10, 0, 0, 1], 1, [10, 0, 0, 9], 53), 1, &mut |f| {
            ended.push(f)
        });
        t.update(&udp([10, 0, 0, 2], 1, [10, 0, 0, 9], 53), 2, &mut |f| {
            ended.push(f)
        });
        t.update(&udp([10, 0, 0, 1], 1, [10, 0, 0, 9], 53), 3, &mut |f| {
            ended.push(f)
        });
        t.update(&udp([10, 0, 0, 3], 1, [10, 0, 0, 9], 53), 4, &mut |f| {
            ended.push(f)
        });
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].client().addr, Addr::v4([10, 0, 0, 2]));
        assert_eq!(ended[0].end, Some(EndReason::Evicted));
        assert_eq!(t.stats().evicted, 1);
        let mut rest = Vec::new();
        t.drain(&mut |f| rest.push(f.client().addr));
        assert_eq!(rest, vec![Addr::v4([10, 0, 0, 1]), Addr::v4([10, 0, 0, 3])]);
    }

    /// Few flows left, far apart in creation and in reused slots (a long capture whose
    /// early flows ended): the drain still ends them oldest first.
    #[test]
    fn drain_orders_few_flows_spread_over_reused_slots() {
        let mut t = FlowTable::new(Config::default());
        let host = |h: u8| udp([10, 0, 0, h], 1, [10, 0, 0, 99], 53);
        let s = 1_000_000u64;
        let mut gone = 0;
        for h in 1..=10 {
            t.update(&host(h), s, &mut |_| {});
        }
        t.update(&host(10), 100 * s, &mut |_| {});
        t.advance(250 * s, &mut |_| gone += 1);
        for h in 12..=20 {
            t.update(&host(h), 250 * s, &mut |_| {});
        }
        t.update(&host(10), 400 * s, &mut |_| {});
        t.advance(431 * s, &mut |_| gone += 1);
        assert_eq!(gone, 18);
        // Created last, in a slot an early flow left.
        t.update(&host(21), 431 * s, &mut |_| {});
        let mut ended = Vec::new();
        t.drain(&mut |f| ended.push(f.client().addr));
        assert_eq!(ended, [Addr::v4([10, 0, 0, 10]), Addr::v4([10, 0, 0, 21])]);
    }

    #[test]
    fn drain_ends_flows_in_creation_order_and_leaves_a_working_table() {
        let cfg = Config {
            max_flows: 2,
            ..Config::default()
        };
        let mut t = FlowTable::new(cfg);
        let host = |h: u8| udp([10, 0, 0, h], 1, [10, 0, 0, 9], 53);
        let mut evicted = Vec::new();
        // 10.0.0.3 evicts 10.0.0.1 and takes its slot: the slots no longer follow the
        // creation order.
        for (ts, h) in [(1, 1), (2, 2), (3, 3)] {
            t.update(&host(h), ts, &mut |f| evicted.push(f.client().addr));
        }
        assert_eq!(evicted, [Addr::v4([10, 0, 0, 1])]);
        let mut ended = Vec::new();
        t.drain(&mut |f| ended.push((f.client().addr, f.end)));
        let eoc = Some(EndReason::EndOfCapture);
        assert_eq!(
            ended,
            [
                (Addr::v4([10, 0, 0, 2]), eoc),
                (Addr::v4([10, 0, 0, 3]), eoc)
            ]
        );
        assert_eq!(t.len(), 0);
        // The emptied table takes new flows and still evicts the least recently seen.
        evicted.clear();
        for (ts, h) in [(4, 4), (5, 5), (6, 4), (7, 6)] {
            t.update(&host(h), ts, &mut |f| evicted.push(f.client().addr));
        }
        assert_eq!(evicted, [Addr::v4([10, 0, 0, 5])]);
        ended.clear();
        t.drain(&mut |f| ended.push((f.client().addr, f.end)));
        assert_eq!(
            ended,
            [
                (Addr::v4([10, 0, 0, 4]), eoc),
                (Addr::v4([10, 0, 0, 6]), eoc)
            ]
        );
    }
}
