//! End to end on loopback, with the real binaries: a collector started from a fresh data
//! directory, agents enrolled with its CLI, `setten-agent analyze --ship` and
//! `setten-agent ship` delivering through their spools — including while the collector
//! is down and while it is killed with SIGKILL in the middle of ingest.

use serde_json::Value;
use setten_agent::classify::Service;
use setten_agent::findings::{Body, Lateral};
use setten_agent::ship::spool::Spool;
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn collector_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_setten-collector"))
}

/// The agent binary of the same build (cargo builds it with the workspace's tests; when
/// only this package is tested, it is built here).
fn agent_bin() -> PathBuf {
    let bin = collector_bin().with_file_name("setten-agent");
    if !bin.exists() {
        let release = collector_bin()
            .parent()
            .is_some_and(|d| d.ends_with("release"));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut c = Command::new(cargo);
        c.current_dir(repo()).args(["build", "-p", "setten-agent"]);
        if release {
            c.arg("--release");
        }
        assert!(c.status().expect("cargo build").success());
    }
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) -> Output {
    cmd.env("SETTEN_LOG", "warn")
        .env("SETTEN_IEEE_DATA", repo().join("tests/fixtures/ieee-data"))
        .output()
        .expect("run")
}

struct Collector {
    child: Option<Child>,
    data: PathBuf,
    port: u16,
}

impl Collector {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(data: &Path, port: u16) -> Collector {
        Collector::start_with(data, port, true)
    }

    fn start_with(data: &Path, port: u16, plain: bool) -> Collector {
        let mut cmd = Command::new(collector_bin());
        cmd.arg("serve");
        if plain {
            cmd.arg("--plain-http");
        }
        let child = cmd
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data")
            .arg(data)
            .env("SETTEN_LOG", "warn")
            .env("RUST_LOG", "warn")
            .env("SETTEN_IEEE_DATA", repo().join("tests/fixtures/ieee-data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the collector");
        let c = Collector {
            child: Some(child),
            data: data.to_owned(),
            port,
        };
        let scheme = if plain { "http" } else { "https" };
        // Only to see it come up; the agent under test pins the certificate.
        let probe = reqwest::blocking::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let start = Instant::now();
        loop {
            if let Ok(r) = probe
                .get(format!("{scheme}://127.0.0.1:{port}/healthz"))
                .send()
            {
                if r.status().is_success() {
                    return c;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "collector did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown, no flush.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn admin(&self, args: &[&str]) -> Output {
        let out = run(Command::new(collector_bin())
            .args(args)
            .arg("--data")
            .arg(&self.data));
        assert!(
            out.status.success(),
            "setten-collector {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn get(&self, token: &str, path: &str) -> Value {
        reqwest::blocking::Client::new()
            .get(format!("{}{path}", self.url()))
            .bearer_auth(token)
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Enrols an agent; writes its token to a file (mode 600) and returns the path.
fn enrol(c: &Collector, dir: &Path, name: &str, role: &str) -> (PathBuf, String) {
    let out = c.admin(&["agent", "add", name, "--role", role]);
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with(&format!("{name}.")), "token {token}");
    let path = dir.join(format!("{name}.token"));
    std::fs::write(&path, &token).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    (path, token)
}

/// Keeps the frames of a classic pcap whose outer 802.1Q VLAN id is in `vlans`: what an
/// agent on one mirror port of those VLANs sees.
fn split_by_vlan(src: &Path, dst: &Path, vlans: &[u16]) {
    let b = std::fs::read(src).unwrap();
    assert_eq!(&b[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    let mut out = b[..24].to_vec();
    let mut off = 24;
    while off + 16 <= b.len() {
        let caplen = u32::from_le_bytes(b[off + 8..off + 12].try_into().unwrap()) as usize;
        let frame = &b[off + 16..off + 16 + caplen];
        let vlan = if frame.len() >= 16 && frame[12..14] == [0x81, 0x00] {
            u16::from_be_bytes([frame[14], frame[15]]) & 0x0fff
        } else {
            0
        };
        if vlans.contains(&vlan) {
            out.extend_from_slice(&b[off..off + 16 + caplen]);
        }
        off += 16 + caplen;
    }
    std::fs::write(dst, out).unwrap();
}

/// What must agree between the collector's merged inventory and one agent's.
fn projection(points: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = points
        .iter()
        .map(|p| {
            let mut p = p.clone();
            p.as_object_mut().unwrap().remove("agents");
            serde_json::to_string(&p).unwrap()
        })
        .collect();
    v.sort();
    v
}

fn single_agent_points(capture: &Path) -> Vec<Value> {
    let out = run(Command::new(agent_bin())
        .current_dir(repo())
        .args(["analyze", "--inventory", "--format", "jsonl", "--ledger"])
        .arg("samples/hospital-ledger.csv")
        .arg(capture));
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "connection_point")
        .collect()
}

fn ship_analyze(c_url: &str, token: &Path, spool: &Path, capture: &Path) -> Output {
    run(Command::new(agent_bin())
        .current_dir(repo())
        .args([
            "analyze",
            "--format",
            "jsonl",
            "--ship",
            c_url,
            "--token-file",
        ])
        .arg(token)
        .arg("--spool")
        .arg(spool)
        .args(["--ship-timeout", "2s"])
        .arg(capture))
}

#[test]
fn two_agents_on_overlapping_mirror_ports_merge_into_the_single_agent_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(&dir.path().join("data"), free_port());
    let (tok_a, _) = enrol(&c, dir.path(), "mirror-a", "agent");
    let (tok_b, _) = enrol(&c, dir.path(), "mirror-b", "agent");
    let (_, reader) = enrol(&c, dir.path(), "survey", "reader");
    c.admin(&[
        "ledger",
        "import",
        repo().join("samples/hospital-ledger.csv").to_str().unwrap(),
    ]);

    let sample = repo().join("samples/hospital-demo.pcap");
    let part_a = dir.path().join("a.pcap");
    let part_b = dir.path().join("b.pcap");
    // Servers and modalities on one port, clinical/office/lab on the other; VLAN 20 on both.
    split_by_vlan(&sample, &part_a, &[10, 20]);
    split_by_vlan(&sample, &part_b, &[20, 30, 40]);
    for (tok, part, spool) in [(&tok_a, &part_a, "a.db"), (&tok_b, &part_b, "b.db")] {
        let out = ship_analyze(&c.url(), tok, &dir.path().join(spool), part);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let merged = c.get(&reader, "/api/v1/connection-points");
    let merged: Vec<Value> = merged["points"].as_array().unwrap().clone();
    let single = single_agent_points(&sample);
    assert_eq!(merged.len(), 7);
    assert_eq!(projection(&merged), projection(&single));

    // The modality's RDP (VLAN 20) was seen by both agents: one point listing both.
    let rdp = merged
        .iter()
        .find(|p| p["service"] == "rdp")
        .expect("the RDP point");
    assert_eq!(rdp["agents"], serde_json::json!(["mirror-a", "mirror-b"]));
    let tv = merged
        .iter()
        .find(|p| p["service"] == "teamviewer")
        .unwrap();
    assert_eq!(tv["agents"], serde_json::json!(["mirror-b"]));

    // Filters.
    let unregistered = c.get(&reader, "/api/v1/connection-points?ledger=unregistered");
    assert_eq!(unregistered["points"].as_array().unwrap().len(), 3);
    let by_agent = c.get(&reader, "/api/v1/connection-points?agent=mirror-a");
    assert!(by_agent["points"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["agents"]
            .as_array()
            .unwrap()
            .contains(&Value::from("mirror-a"))));
}

#[test]
fn a_collector_down_for_the_run_gets_everything_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    // Enrol, then stop: the agent's whole run happens while the collector is down.
    let mut c = Collector::start(&data, port);
    let (tok, _) = enrol(&c, dir.path(), "mirror-1", "agent");
    let (_, reader) = enrol(&c, dir.path(), "survey", "reader");
    c.kill();

    let sample = repo().join("samples/hospital-demo.pcap");
    let spool = dir.path().join("spool.db");
    let out = ship_analyze(&format!("http://127.0.0.1:{port}"), &tok, &spool, &sample);
    assert!(
        out.status.success(),
        "findings are safe in the spool: exit 0"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("setten-agent ship"),
        "tells how to send later: {err}"
    );
    let pending = Spool::open(&spool, 1 << 30)
        .unwrap()
        .stats()
        .unwrap()
        .pending;
    assert!(pending > 0);

    let c = Collector::start(&data, port);
    let out = run(Command::new(agent_bin())
        .args(["ship", &c.url(), "--token-file"])
        .arg(&tok)
        .arg("--spool")
        .arg(&spool));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        Spool::open(&spool, 1 << 30)
            .unwrap()
            .stats()
            .unwrap()
            .pending,
        0
    );

    let agents = c.get(&reader, "/api/v1/agents");
    let a = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "mirror-1")
        .unwrap()
        .clone();
    assert_eq!(a["findings"].as_u64().unwrap(), pending);
    let merged = c.get(&reader, "/api/v1/connection-points");
    assert_eq!(merged["points"].as_array().unwrap().len(), 7);
}

#[test]
fn sigkill_during_ingest_loses_nothing_acknowledged_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut c = Collector::start(&data, port);
    let (tok, token) = enrol(&c, dir.path(), "mirror-1", "agent");
    let (_, reader) = enrol(&c, dir.path(), "survey", "reader");

    // A large spool: 150,000 small findings (many batches).
    let spool_path = dir.path().join("spool.db");
    const N: u64 = 150_000;
    {
        let mut spool = Spool::open(&spool_path, 1 << 30).unwrap();
        spool.claim(token.split('.').next().unwrap()).unwrap();
        let bodies: Vec<Body> = (0..N)
            .map(|i| {
                Body::Lateral(Lateral {
                    client: [10, 1, (i >> 8) as u8, i as u8].into(),
                    server: [10, 2, 0, 1].into(),
                    service: Service::Rdp,
                    first_us: 1_791_158_400_000_000 + i,
                    last_us: 1_791_158_400_000_000 + i + 1,
                })
            })
            .collect();
        for chunk in bodies.chunks(10_000) {
            spool.push(chunk).unwrap();
        }
    }

    let ship = |url: &str| {
        Command::new(agent_bin())
            .args(["ship", url, "--token-file"])
            .arg(&tok)
            .arg("--spool")
            .arg(&spool_path)
            .args(["--ship-timeout", "1s"])
            .env("SETTEN_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // Kill the collector a few times while the agent ships; the agent's 2xx-acknowledged
    // findings have left its spool, the rest are sent again.
    let mut kills = 0;
    let mut pendings = Vec::new();
    for delay_ms in [300u64, 500, 700, 900] {
        let mut agent = ship(&c.url());
        std::thread::sleep(Duration::from_millis(delay_ms));
        c.kill();
        kills += 1;
        let _ = agent.wait();
        let pending = Spool::open(&spool_path, 1 << 30)
            .unwrap()
            .stats()
            .unwrap()
            .pending;
        pendings.push(pending);
        if pending == 0 {
            break;
        }
        c = Collector::start(&data, port);
    }
    // Kills landed in the middle: some batches acknowledged, some not.
    assert!(
        pendings.iter().any(|p| *p > 0 && *p < N),
        "pending after each kill: {pendings:?}"
    );
    let c = if c.child.is_some() {
        c
    } else {
        Collector::start(&data, port)
    };
    let out = run(Command::new(agent_bin())
        .args(["ship", &c.url(), "--token-file"])
        .arg(&tok)
        .arg("--spool")
        .arg(&spool_path));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every sequence number exactly once: the count and the highest agree, and the store
    // refuses duplicates by construction (agent, seq) — check the collector's view.
    let agents = c.get(&reader, "/api/v1/agents");
    let a = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "mirror-1")
        .unwrap()
        .clone();
    assert_eq!(a["findings"].as_u64().unwrap(), N, "{a}");
    assert_eq!(a["last_seq"].as_u64().unwrap(), N, "{a}");
    // And straight from the database file.
    let db = rusqlite::Connection::open(data.join("setten.db")).unwrap();
    let (count, distinct): (u64, u64) = db
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT seq) FROM findings f JOIN agents a ON a.id = f.agent_id WHERE a.name = 'mirror-1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((count, distinct), (N, N));
    let seqs: BTreeSet<u64> = {
        let mut st = db
            .prepare("SELECT f.seq FROM findings f JOIN agents a ON a.id = f.agent_id WHERE a.name = 'mirror-1'")
            .unwrap();
        st.query_map([], |r| r.get::<_, u64>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(seqs.first(), Some(&1));
    assert_eq!(seqs.last(), Some(&N));
    eprintln!(
        "{kills} SIGKILLs during ingest (pending after each: {pendings:?}); {N} findings stored exactly once"
    );
}

#[test]
fn https_with_a_pinned_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let c = Collector::start_with(&data, port, false);
    let (tok, _) = enrol(&c, dir.path(), "mirror-1", "agent");
    let fp = String::from_utf8(c.admin(&["fingerprint"]).stdout).unwrap();
    let fp = fp.trim();
    assert!(fp.starts_with("sha256:"), "{fp}");
    let url = format!("https://127.0.0.1:{port}");
    let sample = repo().join("samples/hospital-demo.pcap");
    let ship = |pin: &str, spool: &str| {
        run(Command::new(agent_bin())
            .current_dir(repo())
            .args([
                "analyze",
                "--format",
                "jsonl",
                "--ship",
                &url,
                "--pin",
                pin,
                "--token-file",
            ])
            .arg(&tok)
            .arg("--spool")
            .arg(dir.path().join(spool))
            .args(["--ship-timeout", "2s"])
            .arg(&sample))
    };
    let ok = ship(fp, "a.db");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        Spool::open(&dir.path().join("a.db"), 1 << 30)
            .unwrap()
            .stats()
            .unwrap()
            .pending,
        0
    );
    // Another pin: refused, nothing leaves the spool.
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let bad = ship(&wrong, "b.db");
    assert_eq!(
        bad.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(
        Spool::open(&dir.path().join("b.db"), 1 << 30)
            .unwrap()
            .stats()
            .unwrap()
            .pending
            > 0
    );
}
