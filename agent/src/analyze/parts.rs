//! The packet path over several flow tables, each on a thread of its own.
//!
//! One thread reads the captures and deals every frame to a part by the hash of its
//! outermost IP addresses (`live::shard`): both directions of a conversation, the later
//! fragments of a datagram and everything tunnelled inside an outer connection meet in
//! one part. Each part runs its own decoder, flow table and classifier, and renders the
//! flows it ends itself (JSON Lines, say), so a flow is made and freed on one thread and
//! the rendering is shared out too. The rendered flows are merged in a fixed order, so
//! the output is the same on every run with the same number of parts:
//!
//! - frames are dealt in pieces of [`PIECE_FRAMES`] frames or [`PIECE_MAX_BYTES`] bytes
//!   (all parts together, whichever comes first), cut by the frames alone;
//! - each part renders the flows it ended while working through its share of a piece
//!   into one batch, and the merge takes the batches part by part, piece by piece;
//! - at the end of the input each part renders its open flows, in batches taken in
//!   turn from the parts.
//!
//! Flow ids are `index + parts × n` in each part's creation order. A part's clock follows
//! every frame dealt so far (each frame carries the newest time of all frames up to it,
//! and each piece the newest of the piece), so flows time out as in a single table; the
//! flow-table cap is shared out evenly.

use super::{CaptureInfo, Pipeline, Summary};
use crate::capture::{CaptureFile, LinkType, Packet};
use crate::classify::Classifier;
use crate::flow::{self, Flow};
use crate::live::shard;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

/// Frames dealt per piece, over all parts.
pub const PIECE_FRAMES: usize = 512;
/// Frame bytes dealt per piece at most, over all parts (plus the frame that passes it):
/// a file of large frames does not make large pieces.
pub const PIECE_MAX_BYTES: usize = 1 << 20;
/// Pieces queued for each part (bounded memory: a few pieces' frames per part).
const PIECES_IN_FLIGHT: usize = 4;
/// Flow batches a part may be ahead of the merge.
const BATCHES_IN_FLIGHT: usize = 8;
/// Flows per batch when a part hands on its open flows at the end.
const FINAL_BATCH: usize = 256;
/// Bytes a piece reserves for one part's frames at first.
const PIECE_BYTES: usize = 64 * 1024;
/// A piece that grew beyond this (a run of large frames to one part) is not kept for
/// reuse, so the spare pieces stay small.
const PIECE_BYTES_KEPT: usize = 4 * PIECE_BYTES;

/// One frame of a piece.
struct Frame {
    ts_us: u64,
    /// The newest frame time of every frame dealt up to this one (all parts): captures
    /// joined end to end, or merged ones, can go back in time.
    clock_us: u64,
    off: usize,
    len: usize,
    orig_len: u32,
    link: LinkType,
}

/// One part's share of a piece: its frames, copied out of the reader's buffer.
#[derive(Default)]
struct Piece {
    data: Vec<u8>,
    frames: Vec<Frame>,
    /// The newest frame time of the whole piece (all parts).
    clock_us: u64,
}

impl Piece {
    fn new(parts: usize) -> Piece {
        Piece {
            data: Vec::with_capacity(PIECE_BYTES),
            frames: Vec::with_capacity(PIECE_FRAMES.div_ceil(parts.max(1))),
            clock_us: 0,
        }
    }

    fn push(&mut self, p: &Packet<'_>, clock_us: u64) {
        let off = self.data.len();
        self.data.extend_from_slice(p.data);
        self.frames.push(Frame {
            ts_us: p.ts_us,
            clock_us,
            off,
            len: p.data.len(),
            orig_len: p.orig_len,
            link: p.link,
        });
    }

    /// The frames, each with the clock of the whole capture at it.
    fn packets(&self) -> impl Iterator<Item = (u64, Packet<'_>)> {
        self.frames.iter().filter_map(|f| {
            let p = Packet {
                ts_us: f.ts_us,
                link: f.link,
                data: self.data.get(f.off..f.off.checked_add(f.len)?)?,
                orig_len: f.orig_len,
            };
            Some((f.clock_us, p))
        })
    }

    fn clear(&mut self) {
        self.data.clear();
        self.frames.clear();
        self.clock_us = 0;
    }
}

/// What a part hands to the merge.
enum Out<R> {
    /// Flows it ended, rendered in order (one batch per piece while dealing).
    Flows(R),
    /// Its counters; nothing follows.
    Done(Box<Summary>),
}

/// What the reading thread found out about the files.
#[derive(Default)]
struct Read {
    files: usize,
    captures: Vec<CaptureInfo>,
    errors: Vec<String>,
}

/// As [`super::run`], with the frames dealt to `parts` flow tables on threads of their
/// own (see the module documentation; one part runs on a thread of its own too). Each
/// part `render`s the flows it ends into batches; `out` gets the batches in order.
pub fn run_parts<R: Default + Send>(
    paths: &[PathBuf],
    cfg: flow::Config,
    classifier: &Classifier,
    parts: usize,
    on_open: impl FnMut(&CaptureFile, Arc<AtomicU64>) + Send,
    render: &(impl Fn(Flow, &mut R) + Sync),
    out: &mut impl FnMut(R),
) -> Summary {
    let parts = parts.max(1);
    let part_cfg = flow::Config {
        max_flows: cfg.max_flows.div_ceil(parts).max(1),
        ..cfg
    };
    std::thread::scope(|scope| {
        let (recycle, spare) = sync_channel::<Piece>(parts * 2);
        let mut inputs = Vec::with_capacity(parts);
        let mut outputs = Vec::with_capacity(parts);
        for index in 0..parts {
            let (in_tx, in_rx) = sync_channel::<Piece>(PIECES_IN_FLIGHT);
            let (out_tx, out_rx) = sync_channel::<Out<R>>(BATCHES_IN_FLIGHT);
            let recycle = recycle.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("setten-part{index}"))
                .spawn_scoped(scope, move || {
                    let mut pipe = Pipeline::new(part_cfg, classifier);
                    pipe.table.number_from(index as u64, parts as u64);
                    part(pipe, in_rx, &recycle, render, &out_tx);
                });
            match spawned {
                Ok(_) => {
                    inputs.push(in_tx);
                    outputs.push(out_rx);
                }
                Err(e) => {
                    // Without all its threads the run goes on in one table, here; the
                    // parts started end at once (their input is closed).
                    tracing::warn!("no thread for flow table {index}: {e}; using one table");
                    drop(inputs);
                    drop(outputs);
                    return super::run(paths, cfg, classifier, on_open, &mut |f| {
                        let mut r = R::default();
                        render(f, &mut r);
                        out(r)
                    });
                }
            }
        }
        drop(recycle);
        let reader = std::thread::Builder::new()
            .name("setten-deal".into())
            .spawn_scoped(scope, move || deal(paths, on_open, inputs, spare));
        let mut total = Summary::default();
        let mut live = vec![true; parts];
        while live.iter().any(|l| *l) {
            for (rx, live) in outputs.iter().zip(live.iter_mut()) {
                if !*live {
                    continue;
                }
                match rx.recv() {
                    Ok(Out::Flows(r)) => out(r),
                    Ok(Out::Done(s)) => {
                        total.add_part(&s);
                        *live = false;
                    }
                    Err(_) => *live = false,
                }
            }
        }
        let read = match reader {
            Ok(h) => h.join().unwrap_or_else(|_| Read {
                errors: vec!["the capture reader stopped".into()],
                ..Read::default()
            }),
            Err(e) => Read {
                errors: vec![format!("no thread to read the captures: {e}")],
                ..Read::default()
            },
        };
        total.files = read.files;
        total.captures = read.captures;
        total.errors = read.errors;
        total
    })
}

/// One part: its frames in, its ended flows out, rendered.
fn part<R: Default>(
    mut pipe: Pipeline<'_>,
    input: Receiver<Piece>,
    recycle: &SyncSender<Piece>,
    render: &impl Fn(Flow, &mut R),
    out: &SyncSender<Out<R>>,
) {
    let mut batch = R::default();
    for piece in input {
        {
            let mut ended = |f: Flow| render(f, &mut batch);
            for (clock_us, p) in piece.packets() {
                // The clock first, as the frames of the other parts moved it: a single
                // table would have ended the same flows before this frame.
                if clock_us > p.ts_us {
                    pipe.tick(clock_us, &mut ended);
                }
                pipe.packet(&p, &mut ended);
            }
            pipe.tick(piece.clock_us, &mut ended);
        }
        if piece.data.capacity() <= PIECE_BYTES_KEPT {
            let _ = recycle.try_send(piece);
        }
        // One batch per piece, empty or not: the merge takes them in turn.
        let _ = out.send(Out::Flows(std::mem::take(&mut batch)));
    }
    let mut n = 0usize;
    let summary = pipe.finish(&mut |f| {
        render(f, &mut batch);
        n += 1;
        if n % FINAL_BATCH == 0 {
            let _ = out.send(Out::Flows(std::mem::take(&mut batch)));
        }
    });
    let _ = out.send(Out::Flows(batch));
    let _ = out.send(Out::Done(Box::new(summary)));
}

/// Reads the captures in order and deals their frames to the parts.
fn deal(
    paths: &[PathBuf],
    mut on_open: impl FnMut(&CaptureFile, Arc<AtomicU64>),
    parts: Vec<SyncSender<Piece>>,
    spare: Receiver<Piece>,
) -> Read {
    let n = parts.len();
    let fresh = |spare: &Receiver<Piece>| match spare.try_recv() {
        Ok(mut p) => {
            p.clear();
            p
        }
        Err(_) => Piece::new(n),
    };
    let mut pieces: Vec<Piece> = (0..n).map(|_| Piece::new(n)).collect();
    let (mut dealt, mut dealt_bytes) = (0usize, 0usize);
    let mut clock_us = 0u64;
    let send = |pieces: &mut Vec<Piece>, clock_us: u64| {
        for (piece, tx) in pieces.iter_mut().zip(&parts) {
            let mut p = std::mem::replace(piece, fresh(&spare));
            p.clock_us = clock_us;
            // A part that is gone has stopped taking frames; the others go on.
            let _ = tx.send(p);
        }
    };
    let mut read = Read::default();
    for path in paths {
        let mut cap = match CaptureFile::open(path) {
            Ok(cap) => cap,
            Err(e) => {
                read.errors.push(e.to_string());
                continue;
            }
        };
        on_open(&cap, cap.progress_counter());
        read.files += 1;
        let mut info = CaptureInfo::of(&cap);
        let res = cap.for_each_packet(|p| {
            info.count(p);
            clock_us = clock_us.max(p.ts_us);
            if let Some(piece) = pieces.get_mut(shard::worker_of(p.link, p.data, n)) {
                piece.push(p, clock_us);
            }
            dealt += 1;
            dealt_bytes += p.data.len();
            if dealt >= PIECE_FRAMES || dealt_bytes >= PIECE_MAX_BYTES {
                send(&mut pieces, clock_us);
                (dealt, dealt_bytes) = (0, 0);
            }
        });
        info.end(&cap, &res);
        read.captures.push(info);
        if let Err(e) = res {
            read.errors.push(e.to_string());
        }
    }
    if dealt > 0 {
        send(&mut pieces, clock_us);
    }
    read
}

impl Summary {
    /// Adds one part's frame and flow counters.
    fn add_part(&mut self, s: &Summary) {
        self.packets += s.packets;
        self.not_ip += s.not_ip;
        self.malformed += s.malformed;
        self.unsupported_link += s.unsupported_link;
        self.orphan_fragments += s.orphan_fragments;
        self.flow_packets += s.flow_packets;
        self.table.created += s.table.created;
        self.table.evicted += s.table.evicted;
        self.table.idle += s.table.idle;
        self.table.closed += s.table.closed;
        // The sum of the parts' peaks: an upper bound of the flows live at once.
        self.table.peak += s.table.peak;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A classic pcap (raw IPv4) of `n` frames of `len` bytes between different hosts.
    fn capture(n: usize, len: usize) -> tempfile::NamedTempFile {
        let mut b = Vec::new();
        // Header: magic, version 2.4, zone, sigfigs, snaplen, link type 101 (RAW).
        for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 1 << 20, 101] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for i in 0..n {
            let mut ip = vec![0u8; len];
            ip[..20].copy_from_slice(&[
                0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 192, 0, 2, i as u8,
            ]);
            for v in [i as u32, 0, len as u32, len as u32] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(&ip);
        }
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&b).unwrap();
        f
    }

    /// Pieces are cut by bytes as well as by frames, so large frames do not make pieces of
    /// hundreds of MiB; every frame still arrives once, in order within its part.
    #[test]
    fn pieces_of_large_frames_stay_small() {
        let frame = 200 * 1024;
        let cap = capture(40, frame);
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..2).map(|_| sync_channel::<Piece>(64)).unzip();
        let (_recycle, spare) = sync_channel::<Piece>(1);
        let read = deal(&[cap.path().to_owned()], |_, _| {}, txs, spare);
        assert!(read.errors.is_empty(), "{:?}", read.errors);
        let pieces: Vec<Vec<Piece>> = rxs.iter().map(|rx| rx.try_iter().collect()).collect();
        assert_eq!(
            pieces[0].len(),
            pieces[1].len(),
            "one piece per part per cut"
        );
        let mut seen = Vec::new();
        for round in 0..pieces[0].len() {
            let bytes: usize = pieces.iter().map(|p| p[round].data.len()).sum();
            assert!(
                bytes < PIECE_MAX_BYTES + frame,
                "piece {round}: {bytes} bytes"
            );
            for part in &pieces {
                seen.extend(part[round].packets().map(|(_, p)| p.ts_us / 1_000_000));
            }
        }
        seen.sort();
        assert_eq!(seen, (0..40).collect::<Vec<u64>>());
        assert!(pieces[0].len() >= 40 * frame / PIECE_MAX_BYTES);
    }
}
