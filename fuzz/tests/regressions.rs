//! Replays every saved input under `regressions/<target>/` through its harness, so a crash
//! once found stays fixed (and a crash in code still being written stays visible) with a
//! plain `cargo test`, no libFuzzer needed.

use std::path::Path;

fn replay(target: &str, harness: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let mut n = 0;
    for p in paths.iter().filter(|p| p.is_file()) {
        if p.extension().is_some_and(|x| x == "txt" || x == "md") {
            continue; // notes beside the inputs
        }
        let data = std::fs::read(p).unwrap();
        eprintln!("replaying {}", p.display());
        harness(&data);
        n += 1;
    }
    n
}

#[test]
fn config() {
    replay("config", setten_fuzz::config);
}

/// The `config` harness on the packaged example, with every commented setting turned on,
/// and on broken variants of it.
#[test]
fn config_harness_on_the_packaged_example() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/etc/setten/agent.toml.example"),
    )
    .unwrap();
    setten_fuzz::config(text.as_bytes());
    let on = setten_fuzz::settings_turned_on(&text);
    setten_fuzz::config(on.as_bytes());
    for cut in (0..on.len()).step_by(97) {
        let end = (0..=cut)
            .rev()
            .find(|&i| on.is_char_boundary(i))
            .unwrap_or(0);
        setten_fuzz::config(&on.as_bytes()[..end]);
    }
    setten_fuzz::config(b"[capture]\ninterfaces = [\"eth0\"]\n[[backup.media]]\nname = \"\xff\"\nwindow = \"-1h\"\n");
}

#[test]
fn capture_file() {
    replay("capture_file", setten_fuzz::capture_file);
}

#[test]
fn decode() {
    replay("decode", setten_fuzz::decode);
}

#[test]
fn reassembly() {
    replay("reassembly", setten_fuzz::reassembly);
}

#[test]
fn classify() {
    replay("classify", setten_fuzz::classify);
}

#[test]
fn rules() {
    replay("rules", setten_fuzz::rules_text);
}

/// The harnesses accept the empty input and their own seed formats.
#[test]
fn names() {
    replay("names", setten_fuzz::names);
}

#[test]
fn ledger() {
    replay("ledger", setten_fuzz::ledger);
}

#[test]
fn findings() {
    replay("findings", setten_fuzz::findings);
}

#[test]
fn harnesses_run_on_small_inputs() {
    for h in [
        setten_fuzz::capture_file,
        setten_fuzz::decode,
        setten_fuzz::reassembly,
        setten_fuzz::classify,
        setten_fuzz::rules_text,
        setten_fuzz::names,
        setten_fuzz::ledger,
        setten_fuzz::findings,
    ] {
        h(b"");
        h(b"\x00\x01\x02\x03\x04\x05\x06\x07\x08");
    }
    let seg = setten_fuzz::encode_reassembly(
        false,
        Some(99),
        &[
            setten_fuzz::Piece::Segment(106, b"world"),
            setten_fuzz::Piece::Segment(100, b"hello "),
        ],
    );
    setten_fuzz::reassembly(&seg);
    let cls = setten_fuzz::encode_classify(
        6,
        50000,
        22,
        &[
            (false, b"SSH-2.0-OpenSSH_9.6\r\n"),
            (true, b"SSH-2.0-x\r\n"),
        ],
    );
    setten_fuzz::classify(&cls);
}

#[test]
fn manifest() {
    replay("manifest", setten_fuzz::manifest);
}

/// The `manifest` harness on its three input formats: a real signed manifest (whole
/// file, and its body alone), an edited one, and mountinfo text.
#[test]
fn manifest_harness_on_its_formats() {
    use setten_agent::backup::manifest::{EntryKind, Manifest, RawPath};
    use setten_agent::backup::{Key, Score};
    let e = |p: &[u8], kind, size: u64| setten_agent::backup::manifest::Entry {
        path: RawPath(p.to_vec()),
        kind,
        mode: 0o644,
        mtime: 1_767_225_600,
        mtime_ns: 0,
        size,
        sha256: (kind == EntryKind::File).then_some([1; 32]),
        chunks: if size > 0 { vec![[1; 32]] } else { vec![] },
        target: None,
        entropy_cb: None,
    };
    let m = Manifest {
        medium: "RDX-01".into(),
        generation: 1,
        created_unix: 1_767_225_600,
        tool: "seed".into(),
        root: "/mnt/rdx".into(),
        chunk_size: 4 << 20,
        flagged: false,
        score: Score::default(),
        entries: vec![
            e(b"docs", EntryKind::Dir, 0),
            e(b"docs/a.pdf", EntryKind::File, 10),
            e(b"docs/\x93\x8c.txt", EntryKind::File, 0),
        ],
    };
    let key = Key::from_bytes(setten_fuzz::MANIFEST_KEY);
    let file = m.encode(&key);
    let mut input = vec![0];
    input.extend_from_slice(&file);
    setten_fuzz::manifest(&input);
    let mut input = vec![1];
    input.extend_from_slice(&m.encode_body());
    setten_fuzz::manifest(&input);
    // Edited after signing: refused, no panic.
    let mut edited = input.clone();
    edited[0] = 0;
    setten_fuzz::manifest(&edited);
    setten_fuzz::manifest(b"\x02 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw\n");
    for sel in 0..3u8 {
        setten_fuzz::manifest(&[sel]);
        setten_fuzz::manifest(&[sel, b'{', b'}']);
    }
    assert!(Manifest::decode(&file, &key).is_ok());
}
