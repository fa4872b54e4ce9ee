//! The hot path on a realistic packet mix: every frame of the corpus captures
//! (`../shared/corpus/pcap`, or `$SETTEN_CORPUS`), read once into memory in file order, then
//! run through
//!
//! - `decode`: link, IP and transport decoding only;
//! - `decode_flow`: decoding and the flow-table lookup/update of every transport packet;
//! - `pipeline`: the whole `analyze::Pipeline` (decode, flow table, reassembly, classify),
//!   ending with the classification of the flows still open.
//!
//! One criterion iteration is one captured frame (`Throughput::Elements(1)`), so the "time"
//! criterion prints is ns/packet and "thrpt" is packets per second. Each pass over the mix
//! starts with fresh state, as one run over the captures would. Runtime is kept short
//! (10 samples in 3 s per function).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use setten_agent::analyze::Pipeline;
use setten_agent::capture::{CaptureFile, LinkType, Packet};
use setten_agent::classify::Classifier;
use setten_agent::decode::Decoder;
use setten_agent::flow::{Config, FlowTable};
use setten_agent::rules::Rules;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One captured frame held in memory.
struct Frame {
    link: LinkType,
    ts_us: u64,
    orig_len: u32,
    data: Vec<u8>,
}

impl Frame {
    fn packet(&self) -> Packet<'_> {
        Packet {
            ts_us: self.ts_us,
            link: self.link,
            data: &self.data,
            orig_len: self.orig_len,
        }
    }
}

fn corpus_dir() -> PathBuf {
    std::env::var_os("SETTEN_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/pcap")
        })
}

/// Every frame of every capture in the corpus directory, in name order.
fn load() -> Vec<Frame> {
    let dir = corpus_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (set SETTEN_CORPUS)", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(".pcap"))
        })
        .collect();
    paths.sort();
    let mut frames = Vec::new();
    for p in &paths {
        let mut cap = CaptureFile::open(p).unwrap_or_else(|e| panic!("{e}"));
        // A damaged capture still gives the frames before the damage.
        let _ = cap.for_each_packet(|p| {
            frames.push(Frame {
                link: p.link,
                ts_us: p.ts_us,
                orig_len: p.orig_len,
                data: p.data.to_vec(),
            })
        });
    }
    assert!(!frames.is_empty(), "no frames under {}", dir.display());
    let bytes: usize = frames.iter().map(|f| f.data.len()).sum();
    eprintln!(
        "packet mix: {} frames, {} bytes, from {} captures in {}",
        frames.len(),
        bytes,
        paths.len(),
        dir.display()
    );
    frames
}

/// Times `iters` frames of the mix, in order, one criterion iteration per frame (so the
/// reported time is per packet). Each pass over the mix starts from a `fresh` state, as one
/// run over the captures does, and ends with `end` (timed: flows still open are finished);
/// building and dropping the state are not timed.
fn per_packet<S, O>(
    frames: &[Frame],
    iters: u64,
    mut fresh: impl FnMut() -> S,
    mut step: impl FnMut(&mut S, &Frame),
    mut end: impl FnMut(S) -> O,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = usize::try_from(iters).unwrap_or(usize::MAX);
    while left > 0 {
        let pass = &frames[..left.min(frames.len())];
        let mut state = fresh();
        let t = Instant::now();
        for f in pass {
            step(&mut state, f);
        }
        let out = end(state);
        total += t.elapsed();
        drop(black_box(out));
        left -= pass.len();
    }
    total
}

fn packet_path(c: &mut Criterion) {
    let frames = load();
    let rules = Arc::new(Rules::defaults().expect("built-in rules"));
    let classifier = Classifier::new(rules);

    let mut g = c.benchmark_group("packet_path");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    g.bench_function("decode", |b| {
        b.iter_custom(|iters| {
            per_packet(
                &frames,
                iters,
                || (Decoder::new(), 0usize),
                |(d, n), f| *n += d.decode(f.link, &f.data).len,
                |(_, n)| n,
            )
        })
    });

    g.bench_function("decode_flow", |b| {
        b.iter_custom(|iters| {
            per_packet(
                &frames,
                iters,
                || {
                    (
                        Decoder::new(),
                        FlowTable::new(Config::default()),
                        Vec::new(),
                    )
                },
                |(d, table, ended), f| {
                    table.advance(f.ts_us, &mut |flow| ended.push(flow));
                    for l4 in d.decode(f.link, &f.data).iter() {
                        black_box(table.update(l4, f.ts_us, &mut |flow| ended.push(flow)));
                    }
                },
                |(_, table, ended)| (table, ended),
            )
        })
    });

    g.bench_function("pipeline", |b| {
        b.iter_custom(|iters| {
            per_packet(
                &frames,
                iters,
                || (Pipeline::new(Config::default(), &classifier), Vec::new()),
                // Deferred classification work (TLS metadata) is done where the output
                // thread would do it, so it is part of the measurement.
                |(pipe, ended), f| {
                    pipe.packet(&f.packet(), &mut |mut flow| {
                        flow.resolve(classifier.rules());
                        ended.push(flow)
                    })
                },
                |(pipe, mut ended)| {
                    let summary = pipe.finish(&mut |mut flow| {
                        flow.resolve(classifier.rules());
                        ended.push(flow)
                    });
                    (summary, ended)
                },
            )
        })
    });
    g.finish();
}

criterion_group!(benches, packet_path);
criterion_main!(benches);
