//! The long-running agent on real interfaces. Each test makes its own pair of network
//! namespaces joined by a veth (removed again by a drop guard, also when the test
//! fails), runs the agent — `setten-agent run`, started inside one namespace — on one
//! end, replays corpus captures with tcpreplay into the other end,
//! stops the agent with SIGTERM, and compares the live inventory with `setten-agent
//! analyze --inventory`.
//!
//! The replay runs at full speed, so the frames keep their order but not their spacing.
//! The live inventory must equal `analyze` on exactly those frames (a copy of the
//! captures with the same frames 10 µs apart) in every field that does not depend on the
//! time of day; and its connection points (ids, services, directions, vendors) must
//! equal `analyze` on the original files. Sessions differ from the original only where
//! the same connection recurs after an idle gap longer than the flow timeout, which a
//! compressed replay closes; the test says so when that happens.
//!
//! Needs root, `ip` and `tcpreplay`; without them each test prints why and passes. No
//! frame leaves the veth pair: both ends sit in namespaces with no addresses and no
//! routes.

use serde_json::Value;
use setten_agent::capture::{CaptureFile, LinkType};
use setten_agent::findings::Body;
use setten_agent::live::{self, Config, Shutdown};
use setten_agent::ship::spool::Spool;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Where `setten-agent run` leaves its totals when it stops.
const SUMMARY_FILE: &str = "last-run.json";
/// The pinned MAC registry, so both sides name the same vendors.
const IEEE_DATA: &str = "tests/fixtures/ieee-data";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus(name: &str) -> PathBuf {
    repo().join("../shared/corpus/pcap").join(name)
}

/// Why the tests cannot run here, if they cannot.
fn skip_reason() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        != 0
    {
        return Some("not root: network namespaces need it".into());
    }
    for tool in ["ip", "tcpreplay"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

macro_rules! require_namespaces {
    () => {
        if let Some(why) = skip_reason() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

fn sh(args: &[&str]) -> std::process::Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Two namespaces and a veth between them; removed on drop.
struct Netns {
    agent: String,
    replay: String,
    agent_if: String,
    replay_if: String,
}

impl Netns {
    fn new() -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}{n}", std::process::id() % 1_000_000);
        let ns = Netns {
            agent: format!("setten-live-{tag}-a"),
            replay: format!("setten-live-{tag}-r"),
            agent_if: format!("sl{tag}a"),
            replay_if: format!("sl{tag}r"),
        };
        // From here on the guard removes whatever was made.
        sh(&["ip", "netns", "add", &ns.agent]);
        sh(&["ip", "netns", "add", &ns.replay]);
        sh(&[
            "ip",
            "link",
            "add",
            &ns.agent_if,
            "netns",
            &ns.agent,
            "type",
            "veth",
            "peer",
            "name",
            &ns.replay_if,
            "netns",
            &ns.replay,
        ]);
        for (n, i) in [(&ns.agent, &ns.agent_if), (&ns.replay, &ns.replay_if)] {
            // No addresses, no IPv6 (no router solicitations of our own), no offloads
            // that would merge frames, room for any corpus frame.
            let _ = Command::new("ip")
                .args(["netns", "exec", n, "sysctl", "-qw"])
                .arg(format!("net.ipv6.conf.{i}.disable_ipv6=1"))
                .output();
            sh(&["ip", "-n", n, "link", "set", i, "mtu", "16000"]);
            let _ = Command::new("ip")
                .args(["netns", "exec", n, "ethtool", "-K", i])
                .args(["gro", "off", "tso", "off", "gso", "off"])
                .output();
            sh(&["ip", "-n", n, "link", "set", "lo", "up"]);
            sh(&["ip", "-n", n, "link", "set", i, "up"]);
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Removing a namespace removes the veth end inside it, and with it the pair.
        for n in [&self.agent, &self.replay] {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

/// Kills the child agent if a test fails before stopping it.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A classic pcap file (pcap-savefile(5)): Ethernet, microseconds.
struct PcapWriter {
    out: Vec<u8>,
    next_us: Option<u64>,
}

impl PcapWriter {
    fn new() -> PcapWriter {
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&262_144u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        PcapWriter { out, next_us: None }
    }

    /// Appends every frame of a capture as Ethernet, 10 µs apart, in file order.
    fn append(&mut self, path: &Path) -> usize {
        let mut cap = CaptureFile::open(path).unwrap();
        let mut n = 0;
        cap.for_each_packet(|p| {
            let Some(frame) = as_ethernet(p.link, p.data) else {
                return;
            };
            let ts = *self.next_us.get_or_insert(p.ts_us);
            self.next_us = Some(ts + 10);
            self.out
                .extend_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
            self.out
                .extend_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
            self.out
                .extend_from_slice(&(frame.len() as u32).to_le_bytes());
            self.out
                .extend_from_slice(&(frame.len() as u32).to_le_bytes());
            self.out.extend_from_slice(&frame);
            n += 1;
        })
        .unwrap();
        n
    }
}

/// A frame as Ethernet: loopback and raw-IP captures get a made-up Ethernet header.
fn as_ethernet(link: LinkType, data: &[u8]) -> Option<Vec<u8>> {
    let ip = match link {
        LinkType::ETHERNET => return Some(data.to_vec()),
        LinkType::NULL | LinkType::LOOP => data.get(4..)?,
        LinkType::RAW | LinkType::IPV4 | LinkType::IPV6 => data,
        _ => return None,
    };
    let ethertype: u16 = match ip.first()? >> 4 {
        4 => 0x0800,
        6 => 0x86dd,
        _ => return None,
    };
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(ip);
    Some(f)
}

/// `setten-agent analyze --inventory --format jsonl`.
fn analyze(files: &[PathBuf]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_setten-agent"))
        .current_dir(repo())
        .args([
            "analyze",
            "--inventory",
            "--format",
            "jsonl",
            "--progress",
            "never",
        ])
        .args(files)
        .env("SETTEN_LOG", "warn")
        .env("SETTEN_IEEE_DATA", IEEE_DATA)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "analyze: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_lines(&String::from_utf8_lossy(&out.stdout))
}

fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The points, keyed by id, without what depends on the time of day.
fn points(records: &[Value]) -> BTreeMap<String, Value> {
    records
        .iter()
        .filter(|r| r["type"] == "connection_point")
        .map(|r| {
            let mut r = r.clone();
            let o = r.as_object_mut().unwrap();
            // When it happened, and what follows from the time of day alone: the
            // maintenance-window risk and the severity it raises.
            for k in ["first_seen", "last_seen", "hours", "severity"] {
                o.remove(k);
            }
            if let Some(Value::Array(risks)) = o.get_mut("risks") {
                risks.retain(|r| r["id"] != "outside_window");
            }
            (o["id"].as_str().unwrap().to_owned(), r)
        })
        .collect()
}

/// What identifies a point and what the evidence says of it.
fn identity(p: &Value) -> Value {
    serde_json::json!([
        p["service"],
        p["direction"],
        p["internal"]["ip"],
        p["internal"]["port"],
        p["far_side"]["kind"],
        p["vendor"],
        p["product"]
    ])
}

/// The flow counters of the capture-quality record.
fn flow_quality(records: &[Value]) -> Value {
    let q = records
        .iter()
        .find(|r| r["type"] == "capture_quality")
        .expect("a capture_quality record");
    serde_json::json!([
        q["flows"],
        q["tcp_flows"],
        q["tcp_one_way_share"],
        q["tcp_mid_stream_share"],
        q["duplicate_share"],
        q["vlans"]
    ])
}

/// One run of the agent over replayed captures.
struct LiveRun {
    dir: tempfile::TempDir,
    records: Vec<Value>,
    summary: Value,
    sent: u64,
    notifications: Vec<String>,
    stderr: String,
}

/// The configuration the child runs with: `inventory` adds lines to `[inventory]`,
/// `extra` adds tables.
fn write_config(ns: &Netns, dir: &Path, inventory: &str, extra: &str) -> PathBuf {
    let text = format!(
        "[capture]\ninterfaces = [\"{}\"]\nworkers = 2\n\n[inventory]\nstate_dir = \"{}\"\ninterval = \"1h\"\n{inventory}\n[health]\ninterval = \"1s\"\n\n[spool]\npath = \"{}\"\n{extra}",
        ns.agent_if,
        dir.join("state").display(),
        dir.join("spool.db").display(),
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Replays one file into the namespace pair; returns the frames sent.
fn replay(ns: &Netns, file: &Path) -> u64 {
    let out = sh(&[
        "ip",
        "netns",
        "exec",
        &ns.replay,
        "tcpreplay",
        "-i",
        &ns.replay_if,
        "--topspeed",
        file.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let count = |label: &str| -> u64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("tcpreplay said no {label:?}: {text}"))
    };
    assert_eq!(count("Failed packets:"), 0, "{text}");
    count("Successful packets:")
}

struct Agent {
    child: ChildGuard,
    notify: UnixDatagram,
    notifications: Vec<String>,
    stderr_path: PathBuf,
}

impl Agent {
    /// Starts the agent inside the namespace and waits for READY=1.
    fn start(ns: &Netns, dir: &Path, config: &Path, env: &[(&str, &str)]) -> Agent {
        let sock = dir.join("notify.sock");
        let notify = UnixDatagram::bind(&sock).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let stderr_path = dir.join("agent.stderr");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.agent])
            .arg(env!("CARGO_BIN_EXE_setten-agent"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .current_dir(repo())
            .env("NOTIFY_SOCKET", &sock)
            .env("SETTEN_IEEE_DATA", IEEE_DATA)
            .env_remove("SETTEN_TOKEN")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut a = Agent {
            child: ChildGuard(Some(cmd.spawn().unwrap())),
            notify,
            notifications: Vec::new(),
            stderr_path,
        };
        a.wait_for("READY=1", Duration::from_secs(120), |m| {
            m.contains("READY=1")
        });
        a
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Reads notifications until one satisfies `pred`.
    fn wait_for(&mut self, what: &str, limit: Duration, mut pred: impl FnMut(&str) -> bool) {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(n) = self.notify.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                let hit = pred(&m);
                self.notifications.push(m);
                if hit {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.0.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "the agent exited ({status}) before {what}:\n{}",
                    self.stderr()
                );
            }
            assert!(
                start.elapsed() < limit,
                "no {what} from the agent within {limit:?}:\n{}",
                self.stderr()
            );
        }
    }

    /// Waits until the status line counts `frames` frames read.
    fn wait_for_frames(&mut self, frames: u64) {
        self.wait_for(&format!("{frames} frames"), Duration::from_secs(60), |m| {
            m.lines()
                .filter_map(|l| l.strip_prefix("STATUS="))
                .filter_map(|s| s.split(": ").nth(1))
                .filter_map(|s| s.split(' ').next())
                .filter_map(|n| n.parse::<u64>().ok())
                .any(|n| n >= frames)
        });
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(mut self) -> (Vec<String>, String) {
        let mut child = self.child.0.take().unwrap();
        sh(&["kill", "-TERM", &child.id().to_string()]);
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                panic!("the agent did not stop within 120 s:\n{}", self.stderr());
            }
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.notify.recv(&mut buf) {
                self.notifications
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        };
        while let Ok(n) = self.notify.recv(&mut [0u8; 4096]) {
            let _ = n;
        }
        assert!(status.success(), "agent exit {status}:\n{}", self.stderr());
        (self.notifications.clone(), self.stderr())
    }
}

/// Starts the agent, replays `replayed` (one file), stops it.
fn run_live(ns: &Netns, replayed: &Path, extra_config: &str, env: &[(&str, &str)]) -> LiveRun {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(ns, dir.path(), "", extra_config);
    let mut agent = Agent::start(ns, dir.path(), &config, env);
    let sent = replay(ns, replayed);
    agent.wait_for_frames(sent);
    let (notifications, stderr) = agent.stop();
    read_run(dir, sent, notifications, stderr)
}

fn read_run(
    dir: tempfile::TempDir,
    sent: u64,
    notifications: Vec<String>,
    stderr: String,
) -> LiveRun {
    let state = dir.path().join("state");
    let records = parse_lines(
        &std::fs::read_to_string(state.join("inventory.jsonl"))
            .unwrap_or_else(|e| panic!("inventory.jsonl: {e}\n{stderr}")),
    );
    let summary: Value =
        serde_json::from_slice(&std::fs::read(state.join(SUMMARY_FILE)).unwrap()).unwrap();
    LiveRun {
        dir,
        records,
        summary,
        sent,
        notifications,
        stderr,
    }
}

/// Writes the frames of `files` into one Ethernet capture, 10 µs apart.
fn replay_copy(files: &[PathBuf], dir: &Path) -> PathBuf {
    let mut w = PcapWriter::new();
    for f in files {
        assert!(w.append(f) > 0, "{}: no frames", f.display());
    }
    let path = dir.join("replayed.pcap");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&w.out)
        .unwrap();
    path
}

/// The comparisons every replay test makes; returns the live points.
fn check_equal_to_analyze(files: &[PathBuf], live: &LiveRun, replayed: &Path) -> usize {
    let h = &live.summary["health"];
    // Every frame sent was read and processed; nothing was lost.
    assert_eq!(h["interfaces"][0]["frames"], live.sent, "{}", live.stderr);
    assert_eq!(h["packets"], live.sent, "{}", live.stderr);
    assert_eq!(h["dropped"], 0, "{}", live.stderr);
    assert_eq!(h["interfaces"][0]["kernel_drops"], 0);
    assert_eq!(h["interfaces"][0]["queue_drops"], 0);

    // Exactly `analyze` on the same frames, in every field but the time of day.
    let same_frames = analyze(&[replayed.to_owned()]);
    let live_points = points(&live.records);
    let want = points(&same_frames);
    for (id, p) in &want {
        let l = live_points
            .get(id)
            .unwrap_or_else(|| panic!("point {id} is missing live:\n{}", live.stderr));
        for (k, v) in p.as_object().unwrap() {
            assert_eq!(
                l.get(k),
                Some(v),
                "point {id}: `{k}` differs from analyze on the replayed frames"
            );
        }
        assert_eq!(l, p, "point {id}");
    }
    assert_eq!(
        live_points.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    assert_eq!(flow_quality(&live.records), flow_quality(&same_frames));
    let unseen = |r: &[Value]| r.iter().filter(|x| x["type"] == "ledger_unseen").count();
    assert_eq!(unseen(&live.records), unseen(&same_frames));

    // The same connection points as `analyze` on the original files.
    let original = points(&analyze(files));
    assert_eq!(
        live_points.keys().collect::<Vec<_>>(),
        original.keys().collect::<Vec<_>>(),
        "point ids differ from analyze on the original files"
    );
    for (id, p) in &original {
        let l = &live_points[id];
        assert_eq!(identity(l), identity(p), "point {id}");
        if l["sessions"] != p["sessions"] {
            eprintln!(
                "note: point {id} ({}): {} sessions live, {} in the original timing (a connection recurring after an idle gap longer than the flow timeout is one flow at replay speed)",
                p["service"], l["sessions"], p["sessions"]
            );
        }
    }
    live_points.len()
}

#[test]
fn remote_access_captures_replayed_live_give_the_analyze_inventory() {
    require_namespaces!();
    let files: Vec<PathBuf> = [
        "ndpi-rdp.pcap",
        "ndpi-anydesk.pcapng",
        "ndpi-forticlient.pcap",
        "ndpi-ssh.pcap",
        "ndpi-teamviewer.pcap",
        "ndpi-vnc.pcap",
        "ndpi-radmin3.pcapng",
        "ndpi-telnet.pcap",
    ]
    .iter()
    .map(|f| corpus(f))
    .collect();
    let ns = Netns::new();
    let tmp = tempfile::tempdir().unwrap();
    let replayed = replay_copy(&files, tmp.path());
    let live = run_live(&ns, &replayed, "", &[]);
    let n = check_equal_to_analyze(&files, &live, &replayed);
    // anydesk (2), forticlient, teamviewer, vnc.
    assert!(n >= 5, "{n} points");
    let services: Vec<String> = points(&live.records)
        .values()
        .map(|p| p["service"].as_str().unwrap().to_owned())
        .collect();
    for s in ["anydesk", "ssl-vpn", "teamviewer", "vnc"] {
        assert!(
            services.iter().any(|x| x == s),
            "{s} missing from {services:?}"
        );
    }
}

#[test]
fn vpn_captures_replayed_live_give_the_analyze_inventory() {
    require_namespaces!();
    let files: Vec<PathBuf> = [
        "ndpi-openvpn.pcap",
        "ndpi-wireguard.pcap",
        "ndpi-ipsec_isakmp_esp.pcap",
        "ndpi-pptp.pcap",
        "ndpi-softether.pcap",
        "ndpi-tor.pcap",
    ]
    .iter()
    .map(|f| corpus(f))
    .collect();
    let ns = Netns::new();
    let tmp = tempfile::tempdir().unwrap();
    let replayed = replay_copy(&files, tmp.path());
    let live = run_live(&ns, &replayed, "", &[]);
    let n = check_equal_to_analyze(&files, &live, &replayed);
    assert!(n >= 20, "{n} points");
}

/// The hospital sample, with a collector that cannot be reached: the inventory is the
/// same, the findings wait in the spool, and the service speaks to systemd.
#[test]
fn hospital_sample_replayed_live_with_the_collector_down() {
    require_namespaces!();
    let files = vec![repo().join("samples/hospital-demo.pcap")];
    let ns = Netns::new();
    let tmp = tempfile::tempdir().unwrap();
    let replayed = replay_copy(&files, tmp.path());
    // Nothing listens on the namespace's own loopback: every attempt fails at once.
    let collector = "\n[collector]\nurl = \"http://127.0.0.1:9\"\ntimeout = \"1s\"\nshutdown_timeout = \"2s\"\n";
    let started = Instant::now();
    let live = run_live(
        &ns,
        &replayed,
        collector,
        &[("SETTEN_TOKEN", "ward-live.s3cretpart")],
    );
    assert!(started.elapsed() < Duration::from_secs(90));
    let n = check_equal_to_analyze(&files, &live, &replayed);
    assert_eq!(n, 7);

    // systemd: ready after the captures opened, status lines, stopping at the end.
    let all = live.notifications.join("\n");
    assert!(all.contains("READY=1\nSTATUS=capturing on"), "{all}");
    assert!(all.contains("STOPPING=1"), "{all}");
    let ready = live
        .notifications
        .iter()
        .position(|m| m.contains("READY=1"))
        .unwrap();
    let stopping = live
        .notifications
        .iter()
        .position(|m| m.contains("STOPPING=1"))
        .unwrap();
    assert!(ready < stopping);

    // The findings wait in the spool: every session of the inventory, the quality and
    // health records; the health record tells of the failed delivery.
    let mut spool = Spool::open(&live.dir.path().join("spool.db"), 1 << 30).unwrap();
    let st = spool.stats().unwrap();
    assert_eq!(st.agent.as_deref(), Some("ward-live"));
    let findings = spool.peek(100_000).unwrap();
    assert_eq!(findings.len() as u64, st.pending);
    let count = |k: &str| findings.iter().filter(|f| f.body.kind() == k).count();
    let sessions: u64 = points(&live.records)
        .values()
        .map(|p| p["sessions"].as_u64().unwrap())
        .sum();
    assert_eq!(count("session") as u64, sessions);
    assert_eq!(count("capture_quality"), 1);
    assert!(count("health") >= 1);
    let health = findings
        .iter()
        .rev()
        .find_map(|f| match &f.body {
            Body::Health(m) => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(health["drop_alarm"], false);
    assert_eq!(health["packets"], live.sent);
    assert!(health["rss_bytes"].as_u64().unwrap() > 0);
    assert!(
        live.stderr.contains("findings stay in the spool"),
        "{}",
        live.stderr
    );
}

/// SIGHUP in the middle of the replay: new rules are put in force and no flow state is
/// lost — flows that span the reload end up exactly as without it.
#[test]
fn a_reload_in_the_middle_of_the_replay_loses_no_flow_state() {
    require_namespaces!();
    let files = vec![repo().join("samples/hospital-demo.pcap")];
    let ns = Netns::new();
    let tmp = tempfile::tempdir().unwrap();
    let replayed = replay_copy(&files, tmp.path());
    // The two halves of the replayed copy.
    let bytes = std::fs::read(&replayed).unwrap();
    let mut cuts = vec![24usize];
    let mut off = 24;
    while off + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16 + len;
        cuts.push(off);
    }
    let mid = cuts[cuts.len() / 2];
    let halves = [
        bytes[..mid].to_vec(),
        [&bytes[..24], &bytes[mid..]].concat(),
    ];
    let half_paths: Vec<PathBuf> = halves
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let p = tmp.path().join(format!("half-{i}.pcap"));
            std::fs::write(&p, h).unwrap();
            p
        })
        .collect();
    let rules = tmp.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    for (name, text) in setten_agent::rules::DEFAULT_FILES {
        std::fs::write(rules.join(name), text).unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &ns,
        dir.path(),
        &format!("rules = \"{}\"\n", rules.display()),
        "",
    );
    let mut agent = Agent::start(&ns, dir.path(), &config, &[]);
    let first = replay(&ns, &half_paths[0]);
    agent.wait_for_frames(first);
    // A rule file edited (a comment added) and SIGHUP.
    let site = rules.join("site.toml");
    let t = std::fs::read_to_string(&site).unwrap();
    std::fs::write(&site, format!("# edited during the test\n{t}")).unwrap();
    let pid = agent.child.0.as_ref().unwrap().id();
    sh(&["kill", "-HUP", &pid.to_string()]);
    agent.wait_for("the reload", Duration::from_secs(30), |m| {
        m.contains("STATUS=reloading")
    });
    let second = replay(&ns, &half_paths[1]);
    agent.wait_for_frames(first + second);
    let (notifications, stderr) = agent.stop();
    let live = read_run(dir, first + second, notifications, stderr);
    assert!(
        live.summary["health"]["rules_reloads"].as_u64().unwrap() >= 1,
        "{}",
        live.stderr
    );
    assert!(live.stderr.contains("rules reloaded"), "{}", live.stderr);
    check_equal_to_analyze(&files, &live, &replayed);
}

#[test]
fn a_capture_that_cannot_be_opened_refuses_the_start_naming_the_interface() {
    let mut cfg = Config::with_interfaces(&["setten-none0"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    cfg.inventory.state_dir = dir.path().join("state");
    cfg.spool.path = dir.path().join("spool.db");
    let e = live::run(&cfg, Shutdown::new()).unwrap_err().to_string();
    assert!(e.starts_with("capture on setten-none0: "), "{e}");

    // The same from the command line, with and without --check: exit 2, the interface
    // named, nothing left running.
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[capture]\ninterfaces = [\"setten-none0\"]\n[inventory]\nstate_dir = \"{}\"\n[spool]\npath = \"{}\"\n",
            dir.path().join("state").display(),
            dir.path().join("spool.db").display()
        ),
    )
    .unwrap();
    for check in [false, true] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_setten-agent"));
        cmd.args(["run", "--config"]).arg(&config);
        if check {
            cmd.arg("--check");
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("capture on setten-none0: "), "{err}");
    }
}

/// A configuration error names the file, the line and the key.
#[test]
fn a_bad_configuration_is_refused_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "[capture]\ninterfaces = [\"eth0\"]\nsnaplen = \"big\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_setten-agent"))
        .args(["run", "--check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{}:3", config.display())), "{err}");
}

/// The example configuration the package installs is accepted as it is.
#[test]
fn the_packaged_example_configuration_is_accepted() {
    let path = repo().join("deploy/etc/setten/agent.toml.example");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cfg = Config::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    assert!(!cfg.capture.interfaces.is_empty());
}
