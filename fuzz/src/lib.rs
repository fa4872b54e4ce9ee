//! Fuzz harnesses for the setten agent, one per parser family, and the byte formats their
//! inputs use.
//!
//! Each harness is a plain function over `&[u8]` so that the same code runs under
//! libFuzzer (`fuzz_targets/*.rs` are one-line wrappers), in the seeder
//! (`examples/seed.rs`, which writes real traffic in these formats) and in
//! `tests/regressions.rs`, which replays every saved input under `regressions/` with a
//! plain `cargo test`. A harness panics only when the library breaks a promise.
#![forbid(unsafe_code)]

use setten_agent::analyze::Pipeline;
use setten_agent::capture::{CaptureError, CaptureFile, LinkType};
use setten_agent::classify::{classify_streams, Classifier};
use setten_agent::decode::{ipproto, Decoder};
use setten_agent::flow;
use setten_agent::flow::reassembly::{
    Reach, Stream, MAX_DATAGRAM, MAX_DATAGRAMS, MAX_STREAM_BYTES,
};
use setten_agent::inventory::{ledger::Ledger, window};
use setten_agent::names::book::{NameBook, MAX_NAMES_PER_ADDR, MAX_STORED_NAMES_PER_ADDR};
use setten_agent::names::{harvest, is_host_addr, port, printable, Obs, MAX_OBS_PER_DATAGRAM};
use setten_agent::record::table::TableSink;
use setten_agent::record::{FlowView, LocalNets, RecordCx};
use setten_agent::rules::{Field, Rules};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// Link types the `decode` target chooses among with its first byte.
pub const LINKS: [LinkType; 16] = [
    LinkType::ETHERNET,
    LinkType::NULL,
    LinkType::RAW,
    LinkType::LINUX_SLL,
    LinkType::LINUX_SLL2,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::IEEE802_11,
    LinkType::IEEE802_11_RADIOTAP,
    LinkType::PPI,
    LinkType::PPP,
    LinkType::PPP_HDLC,
    LinkType::PPP_ETHER,
    LinkType::C_HDLC,
    LinkType::NFLOG,
    LinkType::PFLOG,
];

/// Records a harness reads from one input, so a huge input cannot make one run slow.
pub const MAX_RECORDS: usize = 256;

/// The built-in catalogue, loaded once per process.
pub fn rules() -> &'static Arc<Rules> {
    static RULES: OnceLock<Arc<Rules>> = OnceLock::new();
    RULES.get_or_init(|| Arc::new(Rules::defaults().expect("built-in rules load")))
}

/// A cursor over fuzz input that yields nothing once the input is used up.
pub struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    /// The next `n` bytes, or what is left if fewer.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    /// A byte, if any is left.
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).first().copied()
    }
    /// A big-endian u16, if two bytes are left.
    pub fn u16(&mut self) -> Option<u16> {
        match *self.take(2) {
            [a, b] => Some(u16::from_be_bytes([a, b])),
            _ => None,
        }
    }
    /// A big-endian u32, if four bytes are left.
    pub fn u32(&mut self) -> Option<u32> {
        match *self.take(4) {
            [a, b, c, d] => Some(u32::from_be_bytes([a, b, c, d])),
            _ => None,
        }
    }
    /// Nothing left.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

// ---------------------------------------------------------------------------------------
// capture_file: the whole packet path over one capture file held in memory.

/// Frames of a capture as read (time, link type, bytes) and how the reading ended.
fn frames_of(cap: Result<CaptureFile, CaptureError>) -> (Vec<(u64, u32, Vec<u8>)>, String) {
    let mut cap = match cap {
        Ok(c) => c,
        Err(e) => return (Vec::new(), e.to_string()),
    };
    let mut seen = Vec::new();
    let end = cap.for_each_packet(|p| seen.push((p.ts_us, p.link.0, p.data.to_vec())));
    (
        seen,
        end.map(|_| String::new()).unwrap_or_else(|e| e.to_string()),
    )
}

/// `capture_file` target: `data` is a whole capture file (pcap, pcapng, gzip). Read as
/// files are read (classic pcap parsed in read-ahead chunks, here small ones so records
/// cross chunk boundaries) it gives the same frames and the same ending as pcap-parser's
/// streaming reader. A damaged gzip stream is the exception: how much the decompressor
/// gives before its error depends on the size of each read, so when either reading ends
/// in a read error, one's frames need only begin the other's. Every frame goes through decode, the flow table, reassembly and
/// classification, and every finished flow is rendered as a JSON record and a table row.
pub fn capture_file(data: &[u8]) {
    let chunk = 24 + usize::from(data.last().copied().unwrap_or(0)) * 4;
    let general = frames_of(CaptureFile::from_bytes("fuzz.pcap", data.to_vec()));
    let chunked = frames_of(CaptureFile::from_bytes_read_ahead(
        "fuzz.pcap",
        data.to_vec(),
        chunk,
    ));
    let read_error = |r: &(Vec<(u64, u32, Vec<u8>)>, String)| r.1.contains(": read error near");
    if read_error(&general) || read_error(&chunked) {
        // The other reading may have stopped earlier, at damage the decompressor handed
        // out before its own error.
        let n = general.0.len().min(chunked.0.len());
        assert_eq!(chunked.0[..n], general.0[..n], "chunks of {chunk} bytes");
    } else {
        assert_eq!(chunked, general, "chunks of {chunk} bytes");
    }
    let Ok(mut cap) = CaptureFile::from_bytes("fuzz.pcap", data.to_vec()) else {
        return;
    };
    let classifier = Classifier::new(rules().clone());
    // A small table, so eviction and reuse of slots run too.
    let cfg = flow::Config {
        max_flows: 8,
        ..flow::Config::default()
    };
    let nets = LocalNets::with(&[]);
    let rcx = RecordCx {
        nets: &nets,
        rules: rules(),
    };
    let mut table = TableSink::default();
    let mut ended = |mut f: flow::Flow| {
        f.resolve(rules());
        let v = FlowView { flow: &f, cx: &rcx };
        let mut line = Vec::new();
        v.write_json(&mut line);
        serde_json::from_slice::<serde_json::Value>(&line).expect("a record is valid JSON");
        table.add(&v);
    };
    let mut pipe = Pipeline::new(cfg, &classifier);
    let _ = pipe.file(&mut cap, &mut ended);
    let summary = pipe.finish(&mut ended);
    assert!(summary.table.peak <= 8, "flow table grew past its cap");
    table
        .write(&mut std::io::sink())
        .expect("the table renders");
}

// ---------------------------------------------------------------------------------------
// decode: one frame of a chosen link type.

/// Encodes a `decode` input.
pub fn encode_decode(link: LinkType, frame: &[u8]) -> Option<Vec<u8>> {
    let i = LINKS.iter().position(|l| *l == link)?;
    let mut v = vec![i as u8];
    v.extend_from_slice(frame);
    Some(v)
}

/// `decode` target: first byte selects a link type from [`LINKS`], the rest is the frame.
/// The frame is decoded twice with one decoder, so the fragment cache is used.
pub fn decode(data: &[u8]) {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let link = LINKS[usize::from(sel) % LINKS.len()];
    let mut d = Decoder::new();
    for _ in 0..2 {
        let out = d.decode(link, frame);
        assert!(out.len <= out.packets.len());
        for p in out.iter() {
            // Every payload is a view into the frame.
            let (lo, hi) = (
                frame.as_ptr() as usize,
                frame.as_ptr() as usize + frame.len(),
            );
            let p_lo = p.payload.as_ptr() as usize;
            assert!(
                p.payload.is_empty() || (p_lo >= lo && p_lo + p.payload.len() <= hi),
                "payload outside the frame"
            );
            if p.proto != ipproto::TCP {
                assert!(p.tcp.is_none(), "TCP fields on a non-TCP packet");
            }
            // Header-only transports are named from their first packet's payload: PPTP's
            // enhanced GRE, L2TPv3 over IP, IGMP.
            if p.proto == ipproto::GRE {
                let _ = setten_agent::classify::pptp::gre(p.payload);
            }
            if p.proto == ipproto::L2TP {
                let _ = setten_agent::classify::l2tp::over_ip(p.payload);
            }
            if p.proto == ipproto::IGMP {
                let _ = setten_agent::classify::igmp::over_ip(p.payload);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// reassembly: segments and datagrams into one direction's opening bytes.

/// One item of a `reassembly` input.
pub enum Piece<'a> {
    /// A TCP segment.
    Segment(u32, &'a [u8]),
    /// A TCP segment with SYN set (its sequence number is the ISN).
    Syn(u32, &'a [u8]),
    /// A UDP datagram.
    Datagram(&'a [u8]),
}

/// Encodes a `reassembly` input (`udp` selects datagrams; `syn` an ISN set up front).
pub fn encode_reassembly(udp: bool, syn: Option<u32>, pieces: &[Piece<'_>]) -> Vec<u8> {
    let mut v = vec![u8::from(udp) | (u8::from(syn.is_some()) << 1)];
    if let Some(isn) = syn {
        v.extend_from_slice(&isn.to_be_bytes());
    }
    for p in pieces.iter().take(MAX_RECORDS) {
        let (payload, cap, syn) = match *p {
            Piece::Segment(seq, b) | Piece::Syn(seq, b) => {
                v.extend_from_slice(&seq.to_be_bytes());
                let syn = if matches!(p, Piece::Syn(..)) {
                    SYN_RECORD
                } else {
                    0
                };
                (b, usize::from(SYN_RECORD - 1), syn)
            }
            Piece::Datagram(b) => (b, usize::from(u16::MAX), 0),
        };
        let b = payload.get(..cap).unwrap_or(payload);
        v.extend_from_slice(&(b.len() as u16 | syn).to_be_bytes());
        v.extend_from_slice(b);
    }
    v
}

/// Length-field bit of a TCP `reassembly` record: the segment is a SYN (its `seq` is passed
/// to [`Stream::syn`] first, as the flow table does).
pub const SYN_RECORD: u16 = 0x8000;

/// `reassembly` target. Format: flags byte (bit 0 UDP, bit 1 a SYN with a 4-byte ISN
/// follows), then records `[seq u32 (TCP only)][len u16][payload]`, all big-endian; for
/// TCP the top bit of `len` is [`SYN_RECORD`].
///
/// Checks the promises of [`Stream`]: the prefix never exceeds [`MAX_STREAM_BYTES`], it only
/// ever grows (bytes once in it never change), `add_*` returns whether it grew, every TCP
/// byte is one that some segment carried at that offset, and UDP keeps at most
/// [`MAX_DATAGRAMS`] datagrams of at most [`MAX_DATAGRAM`] bytes, each a prefix of what was
/// sent, with their boundaries.
pub fn reassembly(data: &[u8]) {
    let mut inp = Input(data);
    let Some(flags) = inp.u8() else { return };
    let udp = flags & 1 != 0;
    let mut s = Stream::default();
    // What the packet path keeps of the same stream when it feeds it from another thread.
    let mut reach = Reach::default();
    // Model of the sequence base, for the "byte came from a segment" check.
    let mut base: Option<u32> = None;
    if !udp && flags & 2 != 0 {
        let Some(isn) = inp.u32() else { return };
        s.syn(isn);
        reach.syn(isn);
        base = Some(isn.wrapping_add(1));
    }
    let mut segs: Vec<(u32, &[u8])> = Vec::new();
    let mut dgrams: Vec<&[u8]> = Vec::new();
    let mut prev: Vec<u8> = Vec::new();
    for _ in 0..MAX_RECORDS {
        if inp.is_empty() {
            break;
        }
        let seq = if udp { 0 } else { inp.u32().unwrap_or(0) };
        let mut len = inp.u16().unwrap_or(0);
        if !udp && len & SYN_RECORD != 0 {
            len &= !SYN_RECORD;
            if base.is_none() && s.bytes().is_empty() {
                base = Some(seq.wrapping_add(1));
            }
            s.syn(seq);
            reach.syn(seq);
        }
        let payload = inp.take(usize::from(len));
        let grew = if udp {
            let counted = reach.datagram(payload.len());
            let kept = s.add_datagram(payload);
            if kept {
                dgrams.push(payload);
            }
            assert_eq!(kept, s.bytes().len() > prev.len(), "add_datagram's answer");
            assert_eq!(
                counted, kept,
                "the reach counts other datagrams than the stream keeps"
            );
            kept
        } else {
            if !payload.is_empty() && s.bytes().len() < MAX_STREAM_BYTES && base.is_none() {
                base = Some(seq);
            }
            segs.push((seq, payload));
            let passes = reach.segment(seq, payload.len());
            let done = s.is_done();
            let grew = s.add_segment(seq, payload);
            assert!(
                passes || (!grew && s.is_done() == done),
                "the reach dropped a segment the stream took"
            );
            grew
        };
        let now = s.bytes();
        assert!(
            now.len() <= MAX_STREAM_BYTES,
            "prefix past MAX_STREAM_BYTES"
        );
        assert!(
            now.starts_with(&prev),
            "bytes already in the prefix changed"
        );
        assert_eq!(grew, now.len() > prev.len(), "return value is not 'grew'");
        prev.clear();
        prev.extend_from_slice(now);
    }

    if udp {
        let ends = s.ends();
        assert!(ends.len() <= MAX_DATAGRAMS);
        assert_eq!(ends.len(), dgrams.len());
        let mut start = 0usize;
        for (&e, sent) in ends.iter().zip(&dgrams) {
            let e = e as usize;
            assert!(
                e > start && e <= prev.len(),
                "datagram boundaries out of order"
            );
            let got = &prev[start..e];
            assert!(got.len() <= MAX_DATAGRAM, "datagram past MAX_DATAGRAM");
            assert!(
                sent.starts_with(got),
                "datagram bytes are not what was sent"
            );
            start = e;
        }
        assert_eq!(start, prev.len(), "bytes after the last datagram boundary");
    } else if let Some(base) = base {
        for (i, &b) in prev.iter().enumerate() {
            let carried = segs.iter().any(|&(seq, p)| {
                let rel = i64::from(seq.wrapping_sub(base) as i32);
                let at = i as i64 - rel;
                at >= 0 && p.get(at as usize) == Some(&b)
            });
            assert!(
                carried,
                "prefix byte {i} was carried by no segment at that offset"
            );
        }
    } else {
        assert!(prev.is_empty());
    }
    s.release();
    assert!(s.bytes().is_empty() && s.ends().is_empty());
}

// ---------------------------------------------------------------------------------------
// classify: the detectors over both directions' opening bytes.

/// Direction bit in a `classify` record header.
pub const TO_CLIENT: u16 = 0x8000;

/// Encodes a `classify` input.
pub fn encode_classify(
    proto: u8,
    client_port: u16,
    server_port: u16,
    packets: &[(bool, &[u8])],
) -> Vec<u8> {
    let mut v = vec![u8::from(proto == ipproto::UDP)];
    v.extend_from_slice(&client_port.to_be_bytes());
    v.extend_from_slice(&server_port.to_be_bytes());
    for &(to_client, p) in packets.iter().take(MAX_RECORDS) {
        let p = p.get(..0x7fff).unwrap_or(p);
        let hdr = p.len() as u16 | if to_client { TO_CLIENT } else { 0 };
        v.extend_from_slice(&hdr.to_be_bytes());
        v.extend_from_slice(p);
    }
    v
}

/// Calls of [`classify_streams`] per input.
pub const MAX_CLASSIFY_CALLS: usize = 32;

/// `classify` target. Format: byte 0 bit 0 selects UDP (else TCP); client port and server
/// port (u16 each); then records `[hdr u16][payload]` where the header's top bit says
/// server-to-client and the low 15 bits are the length. TCP records are consecutive
/// segments of their direction; UDP records are datagrams. Detectors run after each
/// record, as the classifier runs them on each new piece of a flow.
pub fn classify(data: &[u8]) {
    let mut inp = Input(data);
    let Some(flags) = inp.u8() else { return };
    let proto = if flags & 1 != 0 {
        ipproto::UDP
    } else {
        ipproto::TCP
    };
    let (Some(cport), Some(sport)) = (inp.u16(), inp.u16()) else {
        return;
    };
    let rules = rules();
    let mut streams = [Stream::default(), Stream::default()];
    let mut next = [1u32, 1u32];
    for s in &mut streams {
        s.syn(0);
    }
    let mut calls = 0;
    while !inp.is_empty() {
        let Some(hdr) = inp.u16() else { break };
        let d = usize::from(hdr & TO_CLIENT != 0);
        let payload = inp.take(usize::from(hdr & 0x7fff));
        let grew = if proto == ipproto::UDP {
            streams[d].add_datagram(payload)
        } else {
            let g = streams[d].add_segment(next[d], payload);
            next[d] = next[d].wrapping_add(payload.len() as u32);
            g
        };
        if grew && calls < MAX_CLASSIFY_CALLS {
            calls += 1;
            let _ = classify_streams(proto, cport, sport, &streams[0], &streams[1], rules);
        }
    }
    if let Some(c) = classify_streams(proto, cport, sport, &streams[0], &streams[1], rules) {
        assert!(
            !c.protocol.is_empty(),
            "a classification names its protocol"
        );
    }
}

// ---------------------------------------------------------------------------------------
// rules: rule files.

/// `rules` target: the input (lossily as UTF-8) as an extra rule file on top of the
/// defaults; if accepted, its signatures are matched against a few values.
pub fn rules_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut r = (**rules()).clone();
    match r.add_text(Path::new("rules/fuzz.toml"), &text) {
        Ok(()) => {
            for field in [
                Field::TlsSni,
                Field::TlsCertSubject,
                Field::HttpHost,
                Field::SshBanner,
            ] {
                for value in ["", "a.teamviewer.com", "SSH-2.0-OpenSSH_9.6", "ÅÄÖ.example"] {
                    let _ = r.matching(field, value).len();
                }
                // Values come off the wire too: the text itself as one.
                let _ = r.matching(field, &text).len();
            }
            let _ = r.ike_vendor(&text.as_bytes()[..text.len().min(32)]);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with("rules/fuzz.toml"),
                "error names its file: {msg}"
            );
            if let Some(l) = e.line {
                assert!(
                    l >= 1 && l <= text.lines().count().max(1),
                    "line {l} is not in the file"
                );
            }
        }
    }
}

// names: passive-name protocols.

/// (source port, destination port) per selector: DNS answer, mDNS, LLMNR answer,
/// NetBIOS name service, DHCP server to client.
pub const PORTS: [(u16, u16); 5] = [
    (port::DNS, 50000),
    (port::MDNS, port::MDNS),
    (port::LLMNR, 50000),
    (port::NETBIOS_NS, port::NETBIOS_NS),
    (port::DHCP_SERVER, port::DHCP_CLIENT),
];

/// Addresses the books hold, so that the caps bite.
const BOOK_CAP: usize = 4;

/// `names` target: the first byte selects a naming protocol (its value modulo [`PORTS`]'s
/// length), the rest is one UDP payload; it goes through `names::harvest` with that
/// protocol's ports, and every observation into two small `NameBook`s merged both ways.
pub fn names(data: &[u8]) {
    let Some((&sel, payload)) = data.split_first() else {
        return;
    };
    let (sport, dport) = PORTS[usize::from(sel) % PORTS.len()];
    let mut out = Vec::new();
    harvest(sport, dport, payload, &mut out);
    assert!(out.len() <= MAX_OBS_PER_DATAGRAM, "too many observations");

    let mut a = NameBook::new(BOOK_CAP);
    let mut b = NameBook::new(BOOK_CAP);
    for (i, o) in out.iter().enumerate() {
        assert!(is_host_addr(o.ip()), "not a host address: {o:?}");
        if let Obs::Name { name, .. } = o {
            assert!(printable(name), "unprintable name {name:?}");
        }
        // Alternate books and times, so merging has something to do.
        let ts = (i as u64 / 2) * 1_000_000;
        if i % 2 == 0 {
            a.observe(ts, o);
        } else {
            b.observe(ts, o);
        }
    }
    let mut ab = a.clone();
    ab.merge(&b);
    let mut ba = b.clone();
    ba.merge(&a);
    assert_eq!(ab, ba, "merge depends on order");
    assert!(ab.len() <= BOOK_CAP);
    for o in &out {
        let ip = o.ip();
        assert!(ab.names_at(ip, 0).len() <= MAX_NAMES_PER_ADDR);
        assert!(ab.all_names(ip).len() <= MAX_STORED_NAMES_PER_ADDR);
        let _ = ab.mac_of(ip);
    }
    assert!(ab.dropped() <= out.len() as u64);
}

// ledger: the hospital's CSV register and maintenance windows.

/// `ledger` target: the input as a ledger file (any bytes: UTF-8, Shift_JIS or garbage);
/// every entry it accepts is reconciled against a fixed observation, and the first line,
/// as text, is parsed as maintenance windows.
pub fn ledger(data: &[u8]) {
    if let Ok(l) = Ledger::parse("fuzz.csv", data) {
        let ip: std::net::IpAddr = [10, 20, 20, 15].into();
        let far: std::net::IpAddr = [192, 0, 2, 10].into();
        let sessions = [(1_791_158_400i64, 1_791_162_000i64)];
        let names = vec!["vpn.example.com".to_owned()];
        let o = setten_agent::inventory::ledger::Observed {
            internal: ip,
            service: setten_agent::classify::Service::Rdp,
            far_ips: &[far],
            far_names: &names,
            far_cloud: Some("TeamViewer"),
            vendor: None,
            sessions: &sessions,
            utc_offset_secs: 9 * 3600,
        };
        let _ = l.reconcile(&o);
        for e in &l.errors {
            let _ = e.display(&l.source);
        }
    }
    let text = String::from_utf8_lossy(data);
    let first = text.lines().next().unwrap_or("");
    if let Ok(ws) = window::parse_windows(first) {
        for w in &ws {
            let _ = w.to_string();
            let _ = w.covers(1_791_158_400, 1_791_200_000, 9 * 3600);
        }
        let _ = window::covered_by_any(&ws, 0, 10_000_000, -5 * 3600);
    }
}

// backup: the sealed manifest of an offline-backup medium.

/// The key the `manifest` target signs and checks with.
pub const MANIFEST_KEY: [u8; 32] = [0x5e; 32];

/// `manifest` target: a selector byte, then
/// * 0 — a whole manifest file, checked under [`MANIFEST_KEY`] (format, key id, HMAC:
///   almost every input stops at the envelope, as a forged one must);
/// * 1 — a manifest body, signed here under [`MANIFEST_KEY`] so the body parser and its
///   field checks see it;
/// * 2 — `/proc/self/mountinfo` text for the storage detection;
/// * 3 — the first bytes of a filesystem (a medium's superblock or boot sector), for
///   the media watcher's UUID and label.
///
/// Promises checked: no panic; every manifest accepted has valid relative paths, sorted
/// and unique, with one chunk hash per chunk; and it encodes back to a file that
/// decodes to the same manifest.
pub fn manifest(data: &[u8]) {
    use setten_agent::backup::manifest::{self, check_rel_path, chunk_count, Manifest};
    use setten_agent::backup::{device, Key};
    let key = Key::from_bytes(MANIFEST_KEY);
    let mut inp = Input(data);
    let sel = inp.u8().unwrap_or(0);
    let rest = inp.0;
    let accepted = match sel % 4 {
        0 => Manifest::decode(rest, &key).ok(),
        1 => Manifest::decode(&manifest::sign(manifest::FORMAT, rest, &key), &key).ok(),
        3 => {
            let ids = setten_agent::backup::watch::superblock_ids(rest);
            // A UUID is 36 characters (ext) or 9 (FAT); a label at most 16 bytes' worth.
            assert!(ids
                .uuid
                .as_ref()
                .is_none_or(|u| u.len() == 36 || u.len() == 9));
            assert!(ids.label.as_ref().is_none_or(|l| l.chars().count() <= 16));
            None
        }
        _ => {
            let _ = device::parse_mountinfo(rest);
            None
        }
    };
    if let Some(m) = accepted {
        for w in m.entries.windows(2) {
            assert!(w[0].path < w[1].path, "entries sorted and unique");
        }
        for e in &m.entries {
            assert!(check_rel_path(e.path.as_bytes()).is_ok());
            if e.kind == manifest::EntryKind::File {
                assert_eq!(e.chunks.len() as u64, chunk_count(e.size, m.chunk_size));
            }
        }
        let again = Manifest::decode(&m.encode(&key), &key).expect("re-encoded manifest decodes");
        assert_eq!(again, m, "manifest round trip");
    }
}

// findings: what agents send the collector (HTTP bodies and export files).

/// `findings` target: the input as a batch body (JSON) and as an export file; every
/// finding a batch carries is applied to an inventory whose points are then derived, as
/// the collector does with a hostile agent's findings.
pub fn findings(data: &[u8]) {
    use setten_agent::findings::Batch;
    use setten_agent::inventory::{Inventory, PointsCx};
    let rules = rules();
    let mut batches = Vec::new();
    if let Ok(b) = serde_json::from_slice::<Batch>(data) {
        batches.push(b);
    }
    if let Ok((_, b)) = setten_agent::ship::export::verify(data, &[7u8; 32], "fuzz") {
        batches.push(b);
    }
    for b in batches {
        let mut inv = Inventory::new();
        for f in b.findings.iter().take(MAX_RECORDS) {
            inv.apply(&b.agent, &f.body, &rules.policy);
        }
        let oui = setten_agent::names::oui::Oui::default();
        let points = inv.points(&PointsCx {
            policy: &rules.policy,
            ledger: None,
            oui: &oui,
        });
        for p in &points.points {
            let _ = serde_json::to_string(p);
        }
    }
}

// ---------------------------------------------------------------------------------------
// config: the long-running agent's configuration file.

/// A configuration example with every commented-out setting (`# key = …`, `# [table]`)
/// turned on: the seed and the regression test of the `config` target both use it.
pub fn settings_turned_on(example: &str) -> String {
    example
        .lines()
        .map(|l| {
            l.strip_prefix("# ")
                .filter(|r| r.contains(" = ") || r.starts_with('['))
                .unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `config` target: the input (lossily as UTF-8) as `setten-agent run`'s configuration
/// file, `[backup]` media and folders included. Promises checked: no panic; an error
/// names the file, and its line is within the file.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let origin = Path::new("/etc/setten/agent.toml");
    match setten_agent::live::Config::parse(&text, origin) {
        Ok(c) => {
            assert!(!c.capture.interfaces.is_empty());
            assert!(c.capture.workers >= 1);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("/etc/setten/agent.toml"), "{msg}");
            if let setten_agent::live::ConfigError::Invalid { line: Some(l), .. } = e {
                assert!(
                    l >= 1 && l <= text.lines().count().max(1) + 1,
                    "line {l} is not in the file"
                );
            }
        }
    }
}
