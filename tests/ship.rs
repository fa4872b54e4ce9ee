//! Store and forward, end to end with the real binary: `analyze --ship`, `ship`,
//! `export` and `spool status` against a small HTTP/1.1 collector stand-in on loopback
//! that records every batch and answers as each test scripts it.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use setten_agent::findings::{Batch, Body, Finding, SCHEMA};
use sha2::{Digest, Sha256};
use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "ward-3.Zq8vY1secretpart";
const SECRET: &str = "Zq8vY1secretpart";
const CAPTURE: &str = "samples/hospital-demo.pcap";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the agent from the repository root with the pinned OUI registry and no token in
/// the environment unless `env` gives one.
fn agent(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_setten-agent"));
    c.current_dir(repo())
        .args(args)
        .env("SETTEN_LOG", "warn")
        .env("SETTEN_IEEE_DATA", "tests/fixtures/ieee-data")
        .env_remove("SETTEN_TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run setten-agent")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

/// A scratch directory with a token file (mode 0600) and a spool path.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let tok = dir.path().join("token");
        std::fs::write(&tok, format!("{TOKEN}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tok, std::fs::Permissions::from_mode(0o600)).unwrap();
        Site { dir }
    }
    fn token(&self) -> String {
        self.dir.path().join("token").display().to_string()
    }
    fn spool(&self) -> String {
        self.dir.path().join("spool.db").display().to_string()
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `analyze --ship URL` of the hospital sample, with extra options.
    fn analyze(&self, url: &str, extra: &[&str]) -> Output {
        let (tok, spool) = (self.token(), self.spool());
        let mut args = vec![
            "analyze",
            "--format",
            "jsonl",
            "--ship",
            url,
            "--token-file",
            &tok,
            "--spool",
            &spool,
        ];
        args.extend_from_slice(extra);
        args.push(CAPTURE);
        agent(&args, &[])
    }

    fn ship(&self, url: &str, extra: &[&str]) -> Output {
        let (tok, spool) = (self.token(), self.spool());
        let mut args = vec!["ship", url, "--token-file", &tok, "--spool", &spool];
        args.extend_from_slice(extra);
        agent(&args, &[])
    }

    /// `spool status` as a field → value map.
    fn status(&self) -> Vec<(String, String)> {
        let o = agent(&["spool", "status", "--spool", &self.spool()], &[]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                Some((k.trim().to_owned(), v.trim().to_owned()))
            })
            .collect()
    }

    fn status_number(&self, field: &str) -> u64 {
        let st = self.status();
        let v = &st
            .iter()
            .find(|(k, _)| k == field)
            .unwrap_or_else(|| panic!("no {field} in {st:?}"))
            .1;
        v.split_whitespace().next().unwrap().parse().unwrap()
    }

    fn pending(&self) -> u64 {
        self.status_number("pending")
    }
}

/// How the stand-in answers a request.
#[derive(Clone)]
enum Reply {
    /// Store the batch (idempotent by seq) and answer 200.
    Store,
    /// Answer with this status, JSON body and optional Retry-After.
    Status(u16, &'static str, Option<&'static str>),
}

/// One request received.
struct Request {
    path: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

#[derive(Default)]
struct State {
    script: VecDeque<Reply>,
    requests: Vec<Request>,
    stored: Vec<Finding>,
    seen: HashSet<u64>,
}

/// The collector stand-in: a thread answering HTTP/1.1 on 127.0.0.1, one connection at
/// a time, closing each after its answer.
struct FakeCollector {
    url: String,
    state: Arc<Mutex<State>>,
}

impl FakeCollector {
    /// Answers from `script` first, then [`Reply::Store`].
    fn start(script: Vec<Reply>) -> FakeCollector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            ..State::default()
        }));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let _ = serve(conn, &st);
            }
        });
        FakeCollector { url, state }
    }

    fn requests(&self) -> usize {
        self.state.lock().unwrap().requests.len()
    }

    fn batches(&self) -> Vec<Batch> {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .map(|r| serde_json::from_slice(&r.body).expect("a Batch"))
            .collect()
    }

    fn stored(&self) -> Vec<Finding> {
        self.state.lock().unwrap().stored.clone()
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
    let (mut len, mut authorization) = (0usize, None);
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            } else if k.eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_owned());
            }
        }
    }
    let mut body = vec![0u8; len.min(64 << 20)];
    r.read_exact(&mut body)?;
    let (status, answer, retry_after) = {
        let mut st = state.lock().unwrap();
        let reply = st.script.pop_front().unwrap_or(Reply::Store);
        let answer = match reply {
            Reply::Store => {
                let b: Batch = serde_json::from_slice(&body).expect("a Batch");
                let (mut stored, mut dup) = (0, 0);
                for f in &b.findings {
                    if st.seen.insert(f.seq) {
                        st.stored.push(f.clone());
                        stored += 1;
                    } else {
                        dup += 1;
                    }
                }
                let last = st.seen.iter().max().copied().unwrap_or(0);
                (
                    200,
                    format!(r#"{{"stored":{stored},"duplicates":{dup},"last_seq":{last}}}"#),
                    None,
                )
            }
            Reply::Status(s, b, ra) => (s, b.to_owned(), ra),
        };
        st.requests.push(Request {
            path,
            authorization,
            body,
        });
        answer
    };
    let mut w = conn;
    let mut head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        answer.len()
    );
    if let Some(ra) = retry_after {
        head.push_str(&format!("retry-after: {ra}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    w.write_all(answer.as_bytes())?;
    w.flush()
}

/// A loopback URL nobody listens on.
fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

fn seqs(f: &[Finding]) -> Vec<u64> {
    f.iter().map(|f| f.seq).collect()
}

fn kinds(f: &[Finding]) -> Vec<&'static str> {
    f.iter().map(|f| f.body.kind()).collect()
}

#[test]
fn analyze_ships_every_finding_once_and_in_order_and_seqs_go_on_across_runs() {
    let site = Site::new();
    let c = FakeCollector::start(vec![]);
    let o = site.analyze(&c.url, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // The local output is printed as usual.
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    assert_eq!(
        out.lines()
            .filter(|l| l.contains(r#""type":"connection_point""#))
            .count(),
        7,
        "{out}"
    );
    assert!(!stderr(&o).contains(SECRET));

    let got = c.stored();
    let n = got.len() as u64;
    assert!(n > 7, "{n}");
    assert_eq!(seqs(&got), (1..=n).collect::<Vec<_>>());
    let k = kinds(&got);
    // Every one of the seven points comes from at least one session.
    assert!(k.iter().filter(|k| **k == "session").count() >= 7, "{k:?}");
    assert!(k.contains(&"names"), "{k:?}");
    assert_eq!(k.last(), Some(&"capture_quality"), "{k:?}");
    let Body::CaptureQuality(q) = &got.last().unwrap().body else {
        unreachable!()
    };
    assert_eq!(q["type"], "capture_quality");
    assert!(
        q["blind_spots"].as_array().is_some_and(|a| !a.is_empty()),
        "{q:?}"
    );

    let st = c.state.lock().unwrap();
    assert_eq!(st.requests.len(), 1);
    let r = &st.requests[0];
    assert_eq!(r.path, "/api/v1/findings");
    assert_eq!(
        r.authorization.as_deref(),
        Some(&*format!("Bearer {TOKEN}"))
    );
    let b: Batch = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((b.schema.as_str(), b.agent.as_str()), (SCHEMA, "ward-3"));
    drop(st);
    assert_eq!(site.pending(), 0);

    // A second run continues the sequence: nothing is sent twice, no seq is reused.
    let o = site.analyze(&c.url, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let got = c.stored();
    assert_eq!(seqs(&got), (1..=2 * n).collect::<Vec<_>>());
    assert_eq!(c.requests(), 2);
    assert_eq!(site.status_number("next seq"), 2 * n + 1);
}

#[test]
fn a_503_is_retried_after_its_retry_after_and_then_delivered() {
    let site = Site::new();
    let c = FakeCollector::start(vec![Reply::Status(
        503,
        r#"{"error":"store busy"}"#,
        Some("1"),
    )]);
    let t = std::time::Instant::now();
    let o = site.analyze(&c.url, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "Retry-After not honoured"
    );
    let e = stderr(&o);
    assert!(
        e.contains("503") && e.contains("store busy") && e.contains("trying again"),
        "{e}"
    );
    let b = c.batches();
    assert_eq!(b.len(), 2);
    assert_eq!(b[0], b[1], "the same batch is sent again");
    assert_eq!(seqs(&c.stored()), seqs(&b[0].findings));
    assert_eq!(site.pending(), 0);
}

#[test]
fn a_400_leaves_everything_spooled_shows_the_message_and_exits_1() {
    let site = Site::new();
    let c = FakeCollector::start(vec![Reply::Status(
        400,
        r#"{"error":"findings[3].body.data.service: unknown service \"x\""}"#,
        None,
    )]);
    let (tok, spool) = (site.token(), site.spool());
    let o = agent(
        &[
            "analyze",
            "--ship",
            &c.url,
            "--token-file",
            &tok,
            "--spool",
            &spool,
            CAPTURE,
        ],
        &[("SETTEN_LOG", "debug")],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("HTTP 400") && e.contains("findings[3].body.data.service"),
        "{e}"
    );
    assert!(e.contains("setten-agent ship"), "{e}");
    assert!(!e.contains(SECRET), "the token was logged");
    // Not retried: the same batch cannot succeed.
    assert_eq!(c.requests(), 1);
    let sent = c.batches()[0].findings.len() as u64;
    assert_eq!(site.pending(), sent);
    assert!(c.stored().is_empty());

    // Once the cause is corrected (the stand-in now stores), `ship` sends them.
    let o = site.ship(&c.url, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(c.stored().len() as u64, sent);
}

#[test]
fn an_unreachable_collector_leaves_findings_spooled_and_ship_delivers_them_later() {
    let site = Site::new();
    let dead = dead_url();
    let o = site.analyze(&dead, &["--ship-timeout", "2s"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("remain safely") && e.contains("setten-agent ship"),
        "{e}"
    );
    let n = site.pending();
    assert!(n > 7, "{n}");

    // `ship` while it is still down: exit 3, nothing lost.
    let o = site.ship(&dead, &["--ship-timeout", "0s"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert_eq!(site.pending(), n);

    let c = FakeCollector::start(vec![]);
    let o = site.ship(&c.url, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(seqs(&c.stored()), (1..=n).collect::<Vec<_>>());
    assert_eq!(site.pending(), 0);
    // Nothing left: nothing sent.
    let o = site.ship(&c.url, &[]);
    assert_eq!(code(&o), 0);
    assert!(stderr(&o).contains("nothing to ship"), "{}", stderr(&o));
    assert_eq!(c.requests(), 1);
}

#[test]
fn the_spool_cap_evicts_oldest_first_and_the_collector_hears_of_it() {
    let site = Site::new();
    let dead = dead_url();
    let o = site.analyze(&dead, &["--ship-timeout", "0s"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let one_run = site.status_number("bytes");
    let n = site.pending();
    // Room for about one and a half runs.
    let cap = (one_run * 3 / 2).to_string();
    let o = site.analyze(&dead, &["--ship-timeout", "0s", "--spool-max-bytes", &cap]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("evicted"), "{}", stderr(&o));
    let evicted = site.status_number("evicted");
    assert!(evicted > 0 && evicted < 2 * n, "{evicted}");

    let c = FakeCollector::start(vec![]);
    let o = site.ship(&c.url, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let got = c.stored();
    // The oldest went; what is left is contiguous, up to the health finding.
    assert_eq!(
        seqs(&got),
        (evicted + 1..=2 * n + 1).collect::<Vec<_>>(),
        "{:?}",
        kinds(&got)
    );
    let Body::Health(h) = &got.last().unwrap().body else {
        panic!("{:?}", got.last());
    };
    assert_eq!(h["spool_evicted"], Value::from(evicted));
    assert_eq!(h["spool_evicted_first_seq"], Value::from(1));
    assert_eq!(h["spool_evicted_last_seq"], Value::from(evicted));
}

type HmacSha256 = Hmac<Sha256>;

#[test]
fn export_writes_a_file_whose_hmac_verifies_with_the_sha256_of_the_token() {
    let site = Site::new();
    let o = site.analyze(&dead_url(), &["--ship-timeout", "0s"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let n = site.pending();
    let file = site.path("findings.setten");
    let f = file.display().to_string();
    let spool = site.spool();
    // The token from the environment this time.
    let o = agent(
        &["export", &f, "--spool", &spool],
        &[("SETTEN_TOKEN", TOKEN)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), f);

    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(bytes.last(), Some(&b'\n'));
    let text = std::str::from_utf8(&bytes).unwrap();
    let lines: Vec<&str> = text.strip_suffix('\n').unwrap().split('\n').collect();
    assert_eq!(lines.len(), 2);
    let header: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(header["schema"], "setten.export/1");
    assert_eq!(header["agent"], "ward-3");
    let key = Sha256::digest(TOKEN.as_bytes());
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(lines[1].as_bytes());
    assert_eq!(
        header["hmac"].as_str().unwrap(),
        hex::encode(mac.finalize().into_bytes())
    );
    let batch: Batch = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(batch.agent, "ward-3");
    assert_eq!(seqs(&batch.findings), (1..=n).collect::<Vec<_>>());
    assert_eq!(site.pending(), n, "without --clear the spool keeps them");

    // Never overwrites.
    let o = agent(
        &["export", &f, "--spool", &spool],
        &[("SETTEN_TOKEN", TOKEN)],
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&file).unwrap(), bytes);

    // --clear: the same content, and the spool is emptied after.
    let f2 = site.path("again.setten").display().to_string();
    let tok = site.token();
    let o = agent(
        &[
            "export",
            &f2,
            "--spool",
            &spool,
            "--token-file",
            &tok,
            "--clear",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(std::fs::read(&f2).unwrap(), bytes);
    assert_eq!(site.pending(), 0);
}

#[test]
fn plain_http_to_a_non_loopback_host_is_refused_before_anything_happens() {
    let site = Site::new();
    let o = site.analyze("http://192.0.2.10:8080", &[]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("192.0.2.10") && e.contains("loopback"), "{e}");
    assert!(o.stdout.is_empty(), "the analysis did not run");
    assert!(!Path::new(&site.spool()).exists());

    let o = site.ship("http://collector.example", &[]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("loopback"), "{}", stderr(&o));
}

#[test]
fn a_missing_or_malformed_token_is_a_clear_error_that_never_echoes_it() {
    let site = Site::new();
    let spool = site.spool();
    let c = FakeCollector::start(vec![]);
    let o = agent(
        &["analyze", "--ship", &c.url, "--spool", &spool, CAPTURE],
        &[],
    );
    assert_eq!(code(&o), 2);
    let e = stderr(&o);
    assert!(
        e.contains("no token") && e.contains("--token-file") && e.contains("SETTEN_TOKEN"),
        "{e}"
    );

    let o = agent(
        &["analyze", "--ship", &c.url, "--spool", &spool, CAPTURE],
        &[("SETTEN_TOKEN", "ward-3 hunter2hunter2")],
    );
    assert_eq!(code(&o), 2);
    let e = stderr(&o);
    assert!(e.contains("SETTEN_TOKEN") && !e.contains("hunter2"), "{e}");
    assert_eq!(c.requests(), 0);
}

#[test]
fn a_spool_belongs_to_the_agent_that_first_used_it() {
    let site = Site::new();
    let o = site.analyze(&dead_url(), &["--ship-timeout", "0s"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let c = FakeCollector::start(vec![]);
    let spool = site.spool();
    let o = agent(
        &["ship", &c.url, "--spool", &spool],
        &[("SETTEN_TOKEN", "ward-4.othersecret")],
    );
    assert_eq!(code(&o), 2);
    let e = stderr(&o);
    assert!(e.contains("ward-3") && e.contains("ward-4"), "{e}");
    assert_eq!(c.requests(), 0);
}
