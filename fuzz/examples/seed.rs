//! Writes the fuzz targets' seed corpora from real captures (run by `../seed.sh`).
//!
//! `seed <captures dir> <rules dir> <out dir>` fills `<out>/<target>/` with:
//! - capture_file: each capture cut at a record boundary to at most [`MAX_CAPTURE_SEED`]
//!   bytes, plus gzip copies of the two smallest;
//! - decode: frames of each capture (the first ones, then a spread) with their link type;
//! - classify: the opening payloads of flows, both directions, as the flow table sees them;
//! - reassembly: the segments (with SYNs and their sequence numbers) or datagrams of one
//!   direction of those flows;
//! - rules: the rule files;
//! - names: UDP payloads of the naming protocols (DNS answers, mDNS, LLMNR, NetBIOS name
//!   service, DHCP) behind the selector byte of `setten_fuzz::names`.
//!
//! Seeds go through the agent's own reader, decoder and flow table, so they are the bytes
//! the parsers get in a real run. Files are named by a hash of their content.

use setten_agent::capture::{CaptureFile, LinkType};
use setten_agent::decode::{ipproto, tcpflag, Decoder};
use setten_agent::flow::{Config, Dir, FlowTable};
use setten_agent::names::port;
use setten_fuzz::{encode_classify, encode_decode, encode_reassembly, Piece};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Largest capture_file seed; bigger captures are cut (libFuzzer mutates small inputs well).
const MAX_CAPTURE_SEED: usize = 64 * 1024;
/// decode seeds per capture.
const FRAMES_PER_CAPTURE: usize = 32;
/// Flows per capture for the classify and reassembly seeds.
const FLOWS_PER_CAPTURE: usize = 24;
/// Packets kept per flow.
const PACKETS_PER_FLOW: usize = 12;
/// names seeds per capture.
const NAME_SEEDS_PER_CAPTURE: usize = 64;

/// The `names` target's selector for a datagram, in `setten_agent::names::harvest`'s
/// dispatch order; the index is into `setten_fuzz::PORTS`
/// (DNS, mDNS, LLMNR, NetBIOS, DHCP).
fn name_selector(sport: u16, dport: u16) -> Option<u8> {
    let either = |p: u16| sport == p || dport == p;
    if sport == port::DNS {
        Some(0)
    } else if either(port::MDNS) {
        Some(1)
    } else if sport == port::LLMNR {
        Some(2)
    } else if either(port::NETBIOS_NS) {
        Some(3)
    } else if either(port::DHCP_SERVER) || either(port::DHCP_CLIENT) {
        Some(4)
    } else {
        None
    }
}

struct Pkt {
    dir: Dir,
    seq: Option<u32>,
    syn: bool,
    payload: Vec<u8>,
}

struct FlowSeed {
    proto: u8,
    cport: u16,
    sport: u16,
    pkts: Vec<Pkt>,
}

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [captures, rules_dir, out] = args.as_slice() else {
        eprintln!("usage: seed <captures dir> <rules dir> <out dir>");
        std::process::exit(2);
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(captures)
        .unwrap_or_else(|e| panic!("{}: {e}", captures.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(".pcap"))
        })
        .collect();
    files.sort();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_size: Vec<(usize, Vec<u8>)> = Vec::new();

    for path in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let cut = cut_capture(&bytes, MAX_CAPTURE_SEED);
        by_size.push((cut.len(), cut.clone()));
        put(out, "capture_file", &cut, &mut counts);

        let mut cap = match CaptureFile::open(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("skipping {e}");
                continue;
            }
        };
        let mut frames: Vec<(LinkType, u64, Vec<u8>)> = Vec::new();
        if let Err(e) = cap.for_each_packet(|p| frames.push((p.link, p.ts_us, p.data.to_vec()))) {
            eprintln!("{e} (using the frames before it)");
        }

        // decode: the first frames, then a spread over the rest.
        let step = (frames.len() / FRAMES_PER_CAPTURE).max(1);
        let picks = (0..frames.len().min(FRAMES_PER_CAPTURE / 2))
            .chain((0..frames.len()).step_by(step))
            .take(FRAMES_PER_CAPTURE);
        for i in picks {
            let (link, _, data) = &frames[i];
            if let Some(seed) = encode_decode(*link, data) {
                put(out, "decode", &seed, &mut counts);
            }
        }

        // classify and reassembly: flows as the flow table sees them.
        let mut table = FlowTable::new(Config::default());
        let mut decoder = Decoder::new();
        let mut flows: BTreeMap<u64, FlowSeed> = BTreeMap::new();
        let mut name_seeds = 0;
        for (link, ts, data) in &frames {
            let d = decoder.decode(*link, data);
            for l4 in d.iter() {
                if l4.proto == ipproto::UDP && name_seeds < NAME_SEEDS_PER_CAPTURE {
                    if let Some(sel) = name_selector(l4.sport, l4.dport) {
                        let mut seed = vec![sel];
                        seed.extend_from_slice(l4.payload);
                        put(out, "names", &seed, &mut counts);
                        name_seeds += 1;
                    }
                }
                if !matches!(l4.proto, ipproto::TCP | ipproto::UDP) {
                    continue;
                }
                let (r, dir) = table.update(l4, *ts, &mut |_| {});
                let Some(f) = table.get_mut(r) else { continue };
                if !flows.contains_key(&f.id) && flows.len() >= FLOWS_PER_CAPTURE {
                    continue;
                }
                let seed = flows.entry(f.id).or_insert_with(|| FlowSeed {
                    proto: l4.proto,
                    cport: f.client().port,
                    sport: f.server().port,
                    pkts: Vec::new(),
                });
                if seed.pkts.len() < PACKETS_PER_FLOW {
                    seed.pkts.push(Pkt {
                        dir,
                        seq: l4.tcp.map(|t| t.seq),
                        syn: l4.tcp.is_some_and(|t| t.flags & tcpflag::SYN != 0),
                        payload: l4.payload.to_vec(),
                    });
                }
            }
        }
        for f in flows.values() {
            let with_data: Vec<(bool, &[u8])> = f
                .pkts
                .iter()
                .filter(|p| !p.payload.is_empty())
                .map(|p| (p.dir == Dir::ToClient, p.payload.as_slice()))
                .collect();
            if with_data.is_empty() {
                continue;
            }
            put(
                out,
                "classify",
                &encode_classify(f.proto, f.cport, f.sport, &with_data),
                &mut counts,
            );
            for dir in [Dir::ToServer, Dir::ToClient] {
                let pieces: Vec<Piece<'_>> = f
                    .pkts
                    .iter()
                    .filter(|p| p.dir == dir)
                    .map(|p| match (p.seq, p.syn) {
                        (Some(seq), true) => Piece::Syn(seq, &p.payload),
                        (Some(seq), false) => Piece::Segment(seq, &p.payload),
                        (None, _) => Piece::Datagram(&p.payload),
                    })
                    .collect();
                if pieces.iter().any(|p| match p {
                    Piece::Segment(_, b) | Piece::Syn(_, b) | Piece::Datagram(b) => !b.is_empty(),
                }) {
                    let udp = f.proto == ipproto::UDP;
                    put(
                        out,
                        "reassembly",
                        &encode_reassembly(udp, None, &pieces),
                        &mut counts,
                    );
                }
            }
        }
    }

    // Gzip copies of the two smallest captures, for the decompression path.
    by_size.sort();
    for (_, bytes) in by_size.iter().take(2) {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes).expect("gzip in memory");
        put(
            out,
            "capture_file",
            &gz.finish().expect("gzip in memory"),
            &mut counts,
        );
    }

    let mut rule_files: Vec<PathBuf> = std::fs::read_dir(rules_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", rules_dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    rule_files.sort();
    for f in rule_files {
        let text = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        put(out, "rules", &text, &mut counts);
    }

    // The agent's configuration: the packaged example, every commented setting turned on.
    let example = rules_dir.join("../deploy/etc/setten/agent.toml.example");
    if let Ok(text) = std::fs::read_to_string(&example) {
        put(out, "config", text.as_bytes(), &mut counts);
        let on = setten_fuzz::settings_turned_on(&text);
        put(out, "config", on.as_bytes(), &mut counts);
    }

    for (target, n) in &counts {
        println!("{target}: {n} seeds");
    }
}

/// Writes one seed, named by its content hash (duplicates collapse).
fn put(out: &Path, target: &'static str, bytes: &[u8], counts: &mut BTreeMap<&str, usize>) {
    let dir = out.join(target);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    let path = dir.join(format!("seed-{:016x}", h.finish()));
    if !path.exists() {
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        *counts.entry(target).or_default() += 1;
    }
}

/// The capture cut after the last whole record (pcap) or block (pcapng) that fits in
/// `limit` bytes, keeping at least the header and one record. Anything else is returned
/// whole.
fn cut_capture(b: &[u8], limit: usize) -> Vec<u8> {
    if b.len() <= limit {
        return b.to_vec();
    }
    let u32_at = |off: usize, le: bool| -> Option<usize> {
        let s: [u8; 4] = b.get(off..off + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        } as usize)
    };
    let magic_le = u32_at(0, true).unwrap_or(0);
    let (mut off, le, pcapng) = match magic_le {
        0xa1b2_c3d4 | 0xa1b2_3c4d => (24, true, false),
        0xd4c3_b2a1 | 0x4d3c_b2a1 => (24, false, false),
        // pcapng: the section header's byte-order magic says the endianness.
        0x0a0d_0d0a => (0, u32_at(8, true) == Some(0x1a2b_3c4d), true),
        _ => return b[..limit].to_vec(),
    };
    let mut records = 0;
    loop {
        let len = if pcapng {
            u32_at(off + 4, le)
        } else {
            u32_at(off + 8, le).map(|n| n + 16)
        };
        let Some(len) = len.filter(|&n| n > 0 && off + n <= b.len()) else {
            break;
        };
        if off + len > limit && records > 1 {
            break;
        }
        off += len;
        records += 1;
    }
    b[..off].to_vec()
}
