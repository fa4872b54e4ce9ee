//! Alerts against real receivers on loopback: the real `setten-collector serve` process,
//! an SMTP server (aiosmtpd, started by the test), a webhook receiver and syslog
//! receivers (UDP and TCP) in the test; SIGKILL between raising and delivering.

mod common;

use common::{batch, health_body, ip, session_body, ssh_session, T0};
use serde_json::{json, Value};
use setten_agent::classify::{Evidence, Service};
use setten_agent::findings::Body;
use setten_agent::inventory::{Direction, Endpoint, Session};
use setten_collector::token::Role;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// --- The collector process -------------------------------------------------------

struct Collector {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Collector {
    fn start(config: &Path) -> Collector {
        let mut child = Command::new(env!("CARGO_BIN_EXE_setten-collector"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("setten-collector ready") {
                    let at = line.find("addr=").unwrap() + 5;
                    let _ = tx.send(line[at..].split_whitespace().next().unwrap().to_owned());
                }
                l.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no ready line: {:?}", log.lock().unwrap()));
        Collector { child, addr, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn post(&self, token: &str, path: &str, body: String) -> reqwest::blocking::Response {
        reqwest::blocking::Client::new()
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap()
    }

    fn alerts(&self, token: &str, query: &str) -> Vec<Value> {
        let r = reqwest::blocking::Client::new()
            .get(self.url(&format!("/api/v1/alerts{query}")))
            .bearer_auth(token)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().unwrap();
        v["alerts"].as_array().unwrap().clone()
    }

    fn kill(mut self) {
        // SIGKILL: no shutdown, no flush.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn enrol(data: &Path, name: &str, role: Role) -> String {
    let store = setten_collector::open_store(data).unwrap();
    setten_collector::admin::add_agent(&*store, name, role)
        .unwrap()
        .1
}

fn write_config(dir: &Path, data: &Path, alerts: &str) -> PathBuf {
    let p = dir.join("collector.toml");
    std::fs::write(
        &p,
        format!(
            "listen = \"127.0.0.1:0\"\nplain_http = true\ndata = \"{}\"\nrate_per_sec = 0\n\n{alerts}",
            data.display()
        ),
    )
    .unwrap();
    p
}

// --- Receivers -------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Request {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 receiver on 127.0.0.1: records every request and answers 200.
struct Webhook {
    port: u16,
    got: Arc<Mutex<Vec<Request>>>,
}

impl Webhook {
    fn start() -> Webhook {
        Webhook::on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    fn on(l: TcpListener) -> Webhook {
        let port = l.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { continue };
                let g = g.clone();
                std::thread::spawn(move || serve_http(conn, &g));
            }
        });
        Webhook { port, got }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn on_path(&self, path: &str) -> Vec<Request> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

fn serve_http(conn: TcpStream, got: &Mutex<Vec<Request>>) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut w = conn;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        got.lock().unwrap().push(Request {
            path,
            headers,
            body,
        });
        if w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .is_err()
        {
            return;
        }
    }
}

/// Syslog over UDP: one message per datagram.
fn udp_syslog() -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, _)) = s.recv_from(&mut buf) {
            g.lock().unwrap().push(buf[..n].to_vec());
        }
    });
    (port, got)
}

/// Syslog over TCP with octet counting (RFC 6587 §3.4.1): `LEN SP MSG`.
fn tcp_syslog() -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut all = Vec::new();
            let _ = conn.read_to_end(&mut all);
            let mut rest = &all[..];
            while !rest.is_empty() {
                let sp = rest.iter().position(|b| *b == b' ').expect("MSG-LEN SP");
                let len: usize = std::str::from_utf8(&rest[..sp])
                    .unwrap()
                    .parse()
                    .expect("MSG-LEN is digits");
                assert!(rest.len() >= sp + 1 + len, "frame shorter than its MSG-LEN");
                g.lock().unwrap().push(rest[sp + 1..sp + 1 + len].to_vec());
                rest = &rest[sp + 1 + len..];
            }
        }
    });
    (port, got)
}

/// An RFC 5424 message's header fields, structured data and MSG.
#[derive(Debug)]
struct Syslog {
    pri: u32,
    version: u32,
    timestamp: String,
    hostname: String,
    app: String,
    msgid: String,
    sd: Vec<(String, String)>,
    msg: String,
}

/// Parses RFC 5424 §6 (SYSLOG-MSG = HEADER SP STRUCTURED-DATA [SP MSG]).
fn parse_5424(b: &[u8]) -> Syslog {
    let text = std::str::from_utf8(b).expect("UTF-8");
    let rest = text.strip_prefix('<').expect("PRI starts with <");
    let (pri, rest) = rest.split_once('>').unwrap();
    let mut it = rest.splitn(7, ' ');
    let version = it.next().unwrap().parse().unwrap();
    let timestamp = it.next().unwrap().to_owned();
    let hostname = it.next().unwrap().to_owned();
    let app = it.next().unwrap().to_owned();
    let _procid = it.next().unwrap();
    let msgid = it.next().unwrap().to_owned();
    let rest = it.next().unwrap();
    // One SD-ELEMENT with escaped values (\" \\ \]).
    let rest = rest.strip_prefix('[').expect("SD-ELEMENT");
    let mut chars = rest.char_indices().peekable();
    let mut sd = Vec::new();
    let (id_end, _) = chars.find(|(_, c)| *c == ' ').unwrap();
    assert_eq!(&rest[..id_end], "setten@32473");
    let mut end = 0;
    loop {
        let (_, c) = chars.next().unwrap();
        if c == ']' {
            end = chars.peek().map_or(rest.len(), |(i, _)| *i);
            break;
        }
        if c == ' ' {
            continue;
        }
        let mut name = String::from(c);
        for (_, c) in chars.by_ref() {
            if c == '=' {
                break;
            }
            name.push(c);
        }
        assert_eq!(chars.next().unwrap().1, '"');
        let mut value = String::new();
        loop {
            let (_, c) = chars.next().unwrap();
            match c {
                '\\' => value.push(chars.next().unwrap().1),
                '"' => break,
                c => value.push(c),
            }
        }
        sd.push((name, value));
        let _ = end;
    }
    let msg = rest[end..].strip_prefix(' ').expect("SP before MSG");
    let msg = msg
        .strip_prefix('\u{feff}')
        .expect("MSG starts with the UTF-8 BOM");
    Syslog {
        pri: pri.parse().unwrap(),
        version,
        timestamp,
        hostname,
        app,
        msgid,
        sd,
        msg: msg.to_owned(),
    }
}

/// The SMTP server: aiosmtpd, writing each message decoded by Python's email package.
struct Smtp {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Smtp {
    fn start(dir: &Path) -> Smtp {
        Smtp::start_with(dir, &[])
    }

    /// `mode`: `[]`, or `["starttls" | "tls", CERT, KEY]`.
    fn start_with(dir: &Path, mode: &[&str]) -> Smtp {
        // Debian's python3 (with python3-aiosmtpd), not another one first on the PATH.
        let python = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let mut child = Command::new(python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/smtp_sink.py"
            ))
            .arg(dir)
            .args(mode)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd (Debian python3-aiosmtpd; scripts/setup installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("smtp_sink.py: {line:?}"))
            .parse()
            .unwrap();
        Smtp {
            child,
            port,
            dir: dir.to_owned(),
        }
    }

    fn messages(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// --- Findings --------------------------------------------------------------------

fn backup(v: Value) -> Body {
    match v {
        Value::Object(m) => Body::Backup(m),
        _ => unreachable!(),
    }
}

fn failed_verify() -> Body {
    backup(json!({
        "event": "verify", "medium": "nas-weekly", "fs_label": "BACKUP-W",
        // Now: a medium first seen weeks ago would also be "not verified for 7 days".
        "at_us": setten_collector::now_us(),
        "result": "differences", "mode": "full", "generation": 12,
        "sealed_at": "2026-10-04T02:00:00Z",
        "counts": {"files": 1200, "ok": 1197, "modified": 2, "missing": 1, "added": 0, "unreadable": 0},
        "message": "3 files differ from the manifest",
        "problems": [{"path": "docs/patients/0001.dcm", "status": "modified", "offset": 0}],
    }))
}

/// An RDP session from the Internet to `inside`:3389.
fn inbound_rdp(inside: &str, from: &str, start_s: u64) -> Body {
    session_body(Session {
        transport: 6,
        client: Endpoint {
            ip: ip(from),
            port: 50_000,
        },
        server: Endpoint {
            ip: ip(inside),
            port: 3389,
        },
        direction: Direction::Inbound,
        service: Service::Rdp,
        protocol: "rdp".into(),
        vendor: None,
        product: None,
        evidence: vec![Evidence::new(
            "setten.rdp.x224",
            "rdp.cookie",
            "mstshash=admin",
        )],
        weak: None,
        non_standard_port: false,
        first_us: T0 + start_s * 1_000_000,
        last_us: T0 + (start_s + 300) * 1_000_000,
        bytes: 50_000,
        packets: 400,
        vlan: 0,
        far_names: Vec::new(),
        internal_mac: None,
        versions: Vec::new(),
        agents: Vec::new(),
    })
}

// --- Tests -----------------------------------------------------------------------

#[test]
fn mail_webhooks_and_syslog_receive_the_alert_in_japanese() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let smtp = Smtp::start(&dir.path().join("mail"));
    let hook = Webhook::start();
    let (udp_port, udp) = udp_syslog();
    let (tcp_port, tcp) = tcp_syslog();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = write_config(
        dir.path(),
        &data,
        &format!(
            r#"[alerts]
evaluate_every_seconds = 1

[[alerts.channel]]
name = "oncall-mail"
type = "email"
server = "127.0.0.1"
port = {smtp}
tls = "none"
from = "setten <setten@hospital.example.jp>"
to = ["oncall@hospital.example.jp"]

[[alerts.channel]]
name = "soc"
type = "webhook"
url = "{json_url}"

[[alerts.channel]]
name = "chat"
type = "webhook"
format = "slack"
url = "{slack_url}"

[[alerts.channel]]
name = "teams"
type = "webhook"
format = "teams"
url = "{teams_url}"

[[alerts.channel]]
name = "siem-udp"
type = "syslog"
transport = "udp"
address = "127.0.0.1:{udp_port}"
hostname = "collector-1"

[[alerts.channel]]
name = "siem-tcp"
type = "syslog"
transport = "tcp"
address = "127.0.0.1:{tcp_port}"
facility = "local3"
hostname = "collector-1"

[[alerts.channel]]
name = "nowhere"
type = "webhook"
url = "http://127.0.0.1:{closed}/hook"
min_severity = "critical"
rules = ["alert.agent.*"]
"#,
            smtp = smtp.port,
            json_url = hook.url("/json"),
            slack_url = hook.url("/slack"),
            teams_url = hook.url("/teams"),
        ),
    );
    let token = enrol(&data, "nas-1", Role::Agent);
    let reader = enrol(&data, "ui", Role::Reader);
    let c = Collector::start(&cfg);
    let r = c.post(
        &token,
        "/api/v1/findings",
        batch("nas-1", 1, vec![failed_verify()]),
    );
    assert_eq!(r.status(), 200);

    // E-mail: RFC 2047 encoded subject, decoded by Python's email package.
    let mail = wait_for("the mail", Duration::from_secs(30), || {
        smtp.messages().into_iter().next()
    });
    let raw = mail["raw_subject"].as_str().unwrap();
    assert!(
        raw.to_ascii_lowercase().contains("=?utf-8?"),
        "not RFC 2047 encoded: {raw}"
    );
    assert_eq!(
        mail["subject"],
        "[setten 緊急] バックアップ検証失敗: 媒体 nas-weekly"
    );
    assert_eq!(mail["rcpt_tos"], json!(["oncall@hospital.example.jp"]));
    assert_eq!(mail["charset"], "utf-8");
    // Mail lines end in CRLF (RFC 5322 §2.1).
    let body = mail["body"].as_str().unwrap().replace("\r\n", "\n");
    for want in [
        "■ 何が起きたか\nバックアップ媒体 nas-weekly の検証結果が「内容に差異あり」でした。3 files differ from the manifest",
        "■ 場所\n媒体 nas-weekly（エージェント nas-1）",
        "・問題のファイル: docs/patients/0001.dcm (modified)",
        "・ファイル数: files 1200 / ok 1197 / modified 2 / missing 1",
        "■ まず行うこと\nこの媒体からの復旧を前提にせず",
        "確認（ack）: setten-collector alert ack 1",
    ] {
        assert!(body.contains(want), "missing {want:?} in:\n{body}");
    }

    // Webhooks: setten JSON, Slack, Teams.
    let j = wait_for("the JSON webhook", Duration::from_secs(30), || {
        hook.on_path("/json").pop()
    });
    let v = j.json();
    assert_eq!(v["schema"], "setten.alert/1");
    assert_eq!(v["rule"], "alert.backup.verify_failed");
    assert_eq!(v["severity"], "critical");
    assert_eq!(v["subject"], "nas-weekly");
    assert_eq!(
        v["title"],
        "[setten 緊急] バックアップ検証失敗: 媒体 nas-weekly"
    );
    assert_eq!(
        v["en"]["title"],
        "Backup verification failed: medium nas-weekly"
    );
    assert!(v["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["label"] == "媒体" && e["value"] == "nas-weekly"));
    assert_eq!(
        j.header("x-setten-delivery").unwrap(),
        v["delivery"].to_string()
    );
    assert!(j
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let s = wait_for("the Slack webhook", Duration::from_secs(30), || {
        hook.on_path("/slack").pop()
    })
    .json();
    assert_eq!(
        s["text"],
        "[setten 緊急] バックアップ検証失敗: 媒体 nas-weekly"
    );
    assert_eq!(s["blocks"][0]["type"], "header");
    assert!(s["blocks"][1]["text"]["text"]
        .as_str()
        .unwrap()
        .contains("*まず行うこと*"));
    let t = wait_for("the Teams webhook", Duration::from_secs(30), || {
        hook.on_path("/teams").pop()
    })
    .json();
    assert_eq!(t["type"], "message");
    let card = &t["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    assert_eq!(
        card["content"]["body"][0]["text"],
        "[setten 緊急] バックアップ検証失敗: 媒体 nas-weekly"
    );

    // Syslog: RFC 5424 over UDP and over TCP with octet counting.
    let u = wait_for("the UDP syslog message", Duration::from_secs(30), || {
        udp.lock().unwrap().first().cloned()
    });
    let m = parse_5424(&u);
    assert_eq!(m.pri, 16 * 8 + 2, "local0.crit");
    assert_eq!(m.version, 1);
    assert!(
        setten_collector::time::parse_rfc3339(&m.timestamp).is_ok(),
        "{}",
        m.timestamp
    );
    assert_eq!(
        (m.hostname.as_str(), m.app.as_str(), m.msgid.as_str()),
        ("collector-1", "setten-collector", "ALERT")
    );
    let sd: std::collections::HashMap<_, _> = m.sd.iter().cloned().collect();
    assert_eq!(sd["rule"], "alert.backup.verify_failed");
    assert_eq!(sd["severity"], "critical");
    assert_eq!(sd["subject"], "nas-weekly");
    assert_eq!(sd["alert"], "1");
    assert!(
        m.msg
            .starts_with("[setten 緊急] バックアップ検証失敗: 媒体 nas-weekly | バックアップ媒体"),
        "{}",
        m.msg
    );
    assert!(!m.msg.contains('\n'));
    let tm = wait_for("the TCP syslog message", Duration::from_secs(30), || {
        tcp.lock().unwrap().first().cloned()
    });
    let m = parse_5424(&tm);
    assert_eq!(m.pri, 19 * 8 + 2, "local3.crit");
    assert!(
        m.msg.contains("対処: この媒体からの復旧を前提にせず"),
        "{}",
        m.msg
    );

    // A channel is marked delivered once its receiver has answered (for mail, after the
    // message is accepted and the session closed), which can come after the receiver
    // holds the message: wait until no delivery is pending any more.
    let alerts = wait_for("every delivery to be done", Duration::from_secs(30), || {
        let alerts = c.alerts(&reader, "");
        let settled = alerts.iter().all(|a| {
            a["deliveries"]
                .as_array()
                .is_some_and(|ds| ds.iter().all(|d| d["state"] != "pending"))
        });
        settled.then_some(alerts)
    });
    // Each receiver got it once; the channel routed only agent alerts got nothing and
    // nothing is pending for it.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(hook.on_path("/json").len(), 1);
    assert_eq!(udp.lock().unwrap().len(), 1);
    assert_eq!(alerts.len(), 1);
    let states: Vec<(&str, &str)> = alerts[0]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["channel"].as_str().unwrap(), d["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states.len(), 6, "{states:?}");
    assert!(states.iter().all(|(_, s)| *s == "delivered"), "{states:?}");
    assert!(!states.iter().any(|(c, _)| *c == "nowhere"));
    let metrics = reqwest::blocking::Client::new()
        .get(c.url("/metrics"))
        .bearer_auth(&reader)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("setten_alerts_raised_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("setten_alert_deliveries_total{result=\"delivered\"} 6\n"),
        "{metrics}"
    );

    // `alert test CHANNEL` through the real SMTP server, and through a closed port.
    let out = Command::new(env!("CARGO_BIN_EXE_setten-collector"))
        .args(["alert", "test", "oncall-mail", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("sent a test alert through `oncall-mail` (email)"));
    let test_mail = wait_for("the test mail", Duration::from_secs(10), || {
        smtp.messages().into_iter().nth(1)
    });
    assert_eq!(
        test_mail["subject"],
        "【テスト】[setten 情報] 試験送信（警報チャネルの確認）"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_setten-collector"))
        .args(["alert", "test", "nowhere", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "the test alert through `nowhere` (webhook) failed: cannot connect to the webhook"
        ),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_setten-collector"))
        .args(["alert", "test", "pager", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no alert channel named `pager`"));
    drop(c);
}

#[test]
fn killed_between_raising_and_delivering_delivers_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The receiver's port, closed while the first collector runs.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = write_config(
        dir.path(),
        &data,
        &format!(
            r#"[alerts]
evaluate_every_seconds = 1
retry_first_seconds = 1
retry_max_seconds = 2

[[alerts.channel]]
name = "soc"
type = "webhook"
url = "http://127.0.0.1:{port}/hook"
"#
        ),
    );
    let token = enrol(&data, "mirror-1", Role::Agent);
    let reader = enrol(&data, "ui", Role::Reader);
    let c = Collector::start(&cfg);
    let r = c.post(
        &token,
        "/api/v1/findings",
        batch(
            "mirror-1",
            1,
            vec![inbound_rdp("10.20.30.40", "198.51.100.7", 0)],
        ),
    );
    assert_eq!(r.status(), 200);
    // Raised, tried, not delivered.
    let pending = wait_for("a failed attempt", Duration::from_secs(30), || {
        let a = c.alerts(&reader, "");
        let d = a.first()?["deliveries"][0].clone();
        (d["attempts"].as_u64()? >= 1).then_some(a)
    });
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["rule"], "alert.point.inbound_internet");
    assert_eq!(pending[0]["deliveries"][0]["state"], "pending");
    assert!(pending[0]["deliveries"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("cannot connect"));
    c.kill();

    // The receiver comes up; a new collector on the same store delivers, once.
    let hook = Webhook::on(TcpListener::bind(("127.0.0.1", port)).unwrap());
    let c = Collector::start(&cfg);
    let got = wait_for(
        "the delivery after the restart",
        Duration::from_secs(30),
        || hook.on_path("/hook").pop(),
    );
    let v = got.json();
    assert_eq!(v["rule"], "alert.point.inbound_internet");
    assert_eq!(
        v["title"],
        "[setten 緊急] インターネットからのリモート接続: 10.20.30.40（rdp）"
    );
    assert!(v["where"].as_str().unwrap().contains("ポート 3389"));
    // Nothing more arrives: not a second copy, not a second alert from re-evaluation.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        hook.on_path("/hook").len(),
        1,
        "{:?}",
        hook.on_path("/hook")
    );
    let a = c.alerts(&reader, "");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["deliveries"][0]["state"], "delivered");
    assert!(a[0]["deliveries"][0]["attempts"].as_u64().unwrap() >= 2);
    // A restart after the delivery sends nothing again either.
    c.kill();
    let c = Collector::start(&cfg);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(hook.on_path("/hook").len(), 1);
    assert!(c.log().contains("setten-collector ready"));
}

#[test]
fn identical_triggers_send_one_alert_with_a_repeat_count_per_window() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hook = Webhook::start();
    let cfg = write_config(
        dir.path(),
        &data,
        &format!(
            r#"[alerts]
evaluate_every_seconds = 1
throttle_seconds = 8

[[alerts.channel]]
name = "soc"
type = "webhook"
url = "{}"

[[alerts.channel]]
name = "night"
type = "webhook"
url = "{}"
quiet_hours = "毎日 00:00-24:00"
"#,
            hook.url("/hook"),
            hook.url("/night")
        ),
    );
    let token = enrol(&data, "mirror-1", Role::Agent);
    let reader = enrol(&data, "ui", Role::Reader);
    let c = Collector::start(&cfg);
    let drop = || {
        health_body(
            json!({"drop_rate": 0.02, "drop_alarm": true, "drop_alarm_threshold": 0.001, "dropped": 5000}),
        )
    };
    // 100 identical triggers in ten batches, well inside a minute.
    let start = Instant::now();
    for b in 0..10u64 {
        let r = c.post(
            &token,
            "/api/v1/findings",
            batch("mirror-1", 1 + b * 10, (0..10).map(|_| drop()).collect()),
        );
        assert_eq!(r.status(), 200);
    }
    let first = wait_for("the first alert", Duration::from_secs(20), || {
        hook.on_path("/hook").pop()
    });
    let counted = wait_for("all 100 counted", Duration::from_secs(20), || {
        let a = c.alerts(&reader, "");
        (a.len() == 1 && a[0]["repeats"] == 99).then_some(a)
    });
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "the triggers took longer than the window"
    );
    assert_eq!(counted[0]["rule"], "alert.capture.drops");
    assert_eq!(
        first.json()["title"],
        "[setten 警告] キャプチャ欠落: mirror-1（2.000 %）"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(hook.on_path("/hook").len(), 1, "one alert for 100 triggers");
    // A warning waits out the quiet hours of the other channel, unattempted.
    assert!(hook.on_path("/night").is_empty());
    let night = counted[0]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["channel"] == "night")
        .unwrap()
        .clone();
    assert_eq!(
        (night["state"].as_str(), night["attempts"].as_u64()),
        (Some("pending"), Some(0))
    );

    // After the window the next one goes out, with the count of the ones held back.
    let raised = Instant::now();
    while raised.elapsed() < Duration::from_secs(9) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = c.post(
        &token,
        "/api/v1/findings",
        batch("mirror-1", 101, vec![drop()]),
    );
    assert_eq!(r.status(), 200);
    let second = wait_for("the second alert", Duration::from_secs(20), || {
        hook.on_path("/hook").get(1).cloned()
    })
    .json();
    assert_eq!(second["repeats_before"], 99);
    let text = second["text"].as_str().unwrap();
    assert!(
        text.contains("※ 前回の通知以降、この8秒間に同じ警報が99回ありました"),
        "{text}"
    );
    assert_eq!(c.alerts(&reader, "").len(), 2);
}

#[test]
fn unacknowledged_critical_alerts_escalate_and_acknowledged_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hook = Webhook::start();
    let cfg = write_config(
        dir.path(),
        &data,
        &format!(
            r#"[alerts]
evaluate_every_seconds = 1
escalate_after_seconds = 3
escalate_to = ["pager"]

[[alerts.channel]]
name = "soc"
type = "webhook"
url = "{}"

[[alerts.channel]]
name = "pager"
type = "webhook"
url = "{}"
escalation_only = true

# Quiet all day: critical alerts still go out.
[[alerts.channel]]
name = "night"
type = "webhook"
url = "{}"
min_severity = "critical"
quiet_hours = "毎日 00:00-24:00"
"#,
            hook.url("/soc"),
            hook.url("/pager"),
            hook.url("/night")
        ),
    );
    let token = enrol(&data, "mirror-1", Role::Agent);
    let reader = enrol(&data, "ui", Role::Reader);
    let c = Collector::start(&cfg);
    let r = c.post(
        &token,
        "/api/v1/findings",
        batch(
            "mirror-1",
            1,
            vec![
                inbound_rdp("10.20.30.40", "198.51.100.7", 0),
                inbound_rdp("10.20.30.41", "198.51.100.8", 0),
                // Not critical: never escalates.
                session_body(ssh_session("10.20.10.50", "203.0.113.50", 40_000, 0)),
            ],
        ),
    );
    assert_eq!(r.status(), 200);
    let alerts = wait_for("the critical alerts", Duration::from_secs(20), || {
        let a = c.alerts(&reader, "?severity=critical");
        (a.len() == 2).then_some(a)
    });
    let id_of = |host: &str| {
        alerts
            .iter()
            .find(|a| a["facts"]["internal_ip"] == host)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (acked, open) = (id_of("10.20.30.40"), id_of("10.20.30.41"));
    // Agents are machines: they may not acknowledge.
    let r = c.post(
        &token,
        &format!("/api/v1/alerts/{acked}/ack"),
        String::new(),
    );
    assert_eq!(r.status(), 403);
    let r = c.post(
        &reader,
        &format!("/api/v1/alerts/{acked}/ack"),
        r#"{"note": "対応中"}"#.into(),
    );
    assert_eq!(r.status(), 200);
    let a: Value = r.json().unwrap();
    assert_eq!(a["acked_by"], "ui");
    assert_eq!(a["ack_note"], "対応中");
    let r = c.post(&reader, "/api/v1/alerts/9999/ack", String::new());
    assert_eq!(r.status(), 404);

    let esc = wait_for("the escalation", Duration::from_secs(20), || {
        hook.on_path("/pager").pop()
    })
    .json();
    assert_eq!(esc["alert"], open);
    assert_eq!(esc["escalation"], true);
    assert!(
        esc["title"]
            .as_str()
            .unwrap()
            .starts_with("【エスカレーション】[setten 緊急]"),
        "{}",
        esc["title"]
    );
    assert!(esc["text"]
        .as_str()
        .unwrap()
        .contains("誰も確認（ack）していません"));
    std::thread::sleep(Duration::from_secs(3));
    let pager = hook.on_path("/pager");
    assert_eq!(
        pager.len(),
        1,
        "only the unacknowledged alert escalates: {pager:?}"
    );
    let all = c.alerts(&reader, "");
    for a in &all {
        let escalated = !a["escalated"].is_null();
        assert_eq!(escalated, a["id"] == open, "{a}");
    }
    // The first channel got both; so did the quiet one, as they are critical.
    assert_eq!(hook.on_path("/soc").len(), 2);
    assert_eq!(hook.on_path("/night").len(), 2);
    let open_list = c.alerts(&reader, "?state=open&severity=critical");
    assert_eq!(open_list.len(), 1);
    assert_eq!(open_list[0]["id"], open);
    // The command line lists and acknowledges on the same store while serve runs.
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_setten-collector"))
            .args(args)
            .arg("--data")
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let table = cli(&["alert", "list", "--state", "open", "--severity", "critical"]);
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with(&open.to_string()))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("critical")
            && row.contains("esc")
            && row.contains("インターネットからのリモート接続: 10.20.30.41"),
        "{row}"
    );
    let said = cli(&[
        "alert",
        "ack",
        &open.to_string(),
        "--by",
        "yamada",
        "--note",
        "対応済み",
    ]);
    assert!(
        said.contains(&format!("alert #{open} acknowledged by yamada")),
        "{said}"
    );
    assert!(c
        .alerts(&reader, "?state=open&severity=critical")
        .is_empty());
    assert_eq!(c.alerts(&reader, "?state=acked").len(), 2);
    let r = reqwest::blocking::Client::new()
        .get(c.url("/api/v1/alerts?state=closed"))
        .bearer_auth(&reader)
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[test]
fn mail_goes_over_starttls_and_implicit_tls_with_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    // A certificate for localhost, trusted through ca_file only.
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.path().join("smtp.pem");
    let key = dir.path().join("smtp.key");
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let starttls = Smtp::start_with(&dir.path().join("m1"), &["starttls", c, k]);
    let implicit = Smtp::start_with(&dir.path().join("m2"), &["tls", c, k]);
    let password = dir.path().join("smtp-password");
    std::fs::write(&password, "correct horse battery staple\n").unwrap();
    let cfg = write_config(
        dir.path(),
        &dir.path().join("data"),
        &format!(
            r#"[alerts]
[[alerts.channel]]
name = "submission"
type = "email"
server = "localhost"
port = {p1}
tls = "starttls"
ca_file = "smtp.pem"
from = "setten <setten@hospital.example.jp>"
to = ["oncall@hospital.example.jp"]
lang = "ja+en"

[[alerts.channel]]
name = "smtps"
type = "email"
server = "localhost"
port = {p2}
tls = "tls"
ca_file = "smtp.pem"
from = "setten <setten@hospital.example.jp>"
to = ["oncall@hospital.example.jp"]

[[alerts.channel]]
name = "untrusted"
type = "email"
server = "localhost"
port = {p1}
tls = "starttls"
from = "setten <setten@hospital.example.jp>"
to = ["oncall@hospital.example.jp"]
"#,
            p1 = starttls.port,
            p2 = implicit.port
        ),
    );
    let test = |name: &str| {
        Command::new(env!("CARGO_BIN_EXE_setten-collector"))
            .args(["alert", "test", name, "--config"])
            .arg(&cfg)
            .output()
            .unwrap()
    };
    for (name, server) in [("submission", &starttls), ("smtps", &implicit)] {
        let out = test(name);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let m = wait_for("the mail", Duration::from_secs(10), || {
            server.messages().into_iter().next()
        });
        assert_eq!(m["tls"], true, "{name}: {m}");
        assert_eq!(
            m["subject"],
            "【テスト】[setten 情報] 試験送信（警報チャネルの確認）"
        );
        let body = m["body"].as_str().unwrap();
        if name == "submission" {
            // ja+en: Japanese first, then English.
            let ja = body
                .find("これは setten-collector alert test による試験送信です")
                .unwrap();
            let en = body
                .find("This is a test sent by `setten-collector alert test`")
                .unwrap();
            assert!(ja < en, "{body}");
        }
    }
    // Without the CA the server's certificate is refused, and the error says so.
    let out = test("untrusted");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the test alert through `untrusted` (email) failed: SMTP localhost:"),
        "{err}"
    );
    assert!(err.to_ascii_lowercase().contains("certificate"), "{err}");
    assert_eq!(starttls.messages().len(), 1);
}

#[test]
fn alert_configuration_errors_name_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (alerts, line, key, says) in [
        ("[alerts]\n[[alerts.channel]]\nname = \"m\"\ntype = \"email\"\nserver = \"smtp.example.jp\"\ntls = \"none\"\nfrom = \"a@example.jp\"\nto = [\"b@example.jp\"]\n",
         11, "alerts.channel[0].tls", "refusing SMTP without TLS to smtp.example.jp"),
        ("[alerts]\n[[alerts.channel]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"http://hooks.example.jp/x\"\n",
         10, "alerts.channel[0].url", "plain http is only allowed to a loopback address"),
        ("[alerts]\n[[alerts.channel]]\nname = \"s\"\ntype = \"syslog\"\naddress = \"siem:514\"\nport = 514\n",
         11, "alerts.channel[0].port", "not a key of a syslog channel"),
        ("[alerts]\n[[alerts.channel]]\nname = \"w\"\ntype = \"webhook\"\nurl_file = \"missing-url\"\n",
         10, "alerts.channel[0].url_file", "missing-url"),
        ("[alerts]\n[[alerts.channel]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\nquiet_hours = \"sometimes\"\n",
         11, "alerts.channel[0].quiet_hours", "sometimes"),
        ("[alerts]\nescalate_to = [\"pager\"]\n", 7, "alerts.escalate_to", "\"pager\" is not a configured channel"),
    ] {
        let cfg = write_config(dir.path(), &data, alerts);
        let out = Command::new(env!("CARGO_BIN_EXE_setten-collector"))
            .args(["serve", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        let want = format!("collector.toml:{line}: `{key}`: ");
        assert!(err.contains(&want), "want {want:?} in: {err}");
        assert!(err.contains(says), "want {says:?} in: {err}");
    }
    // The webhook URL from a file is never printed, even when it is not a URL.
    std::fs::write(
        dir.path().join("hook-url"),
        "not a url but secret-token-123\n",
    )
    .unwrap();
    let cfg = write_config(
        dir.path(),
        &data,
        "[alerts]\n[[alerts.channel]]\nname = \"w\"\ntype = \"webhook\"\nurl_file = \"hook-url\"\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_setten-collector"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`alerts.channel[0].url_file`: not a URL"),
        "{err}"
    );
    assert!(!err.contains("secret-token-123"), "{err}");
}

#[test]
fn syslog_over_tls_uses_octet_counting_and_checks_the_certificate() {
    use rustls::pki_types::pem::PemObject;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let made = rcgen::generate_simple_self_signed(vec!["siem.localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("siem-ca.pem"), made.cert.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![made.cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::from_pem_slice(
                    made.signing_key.serialize_pem().as_bytes(),
                )
                .unwrap(),
            )
            .unwrap(),
    );
    // An RFC 5425 receiver: TLS, then MSG-LEN SP SYSLOG-MSG frames.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<Vec<u8>>>> = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(tcp) = conn else { continue };
            let Ok(c) = rustls::ServerConnection::new(server.clone()) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(c, tcp);
            let mut all = Vec::new();
            // The client ends with close_notify; a failed handshake ends with an error.
            if tls.read_to_end(&mut all).is_err() {
                continue;
            }
            let sp = all.iter().position(|b| *b == b' ').unwrap();
            let len: usize = std::str::from_utf8(&all[..sp]).unwrap().parse().unwrap();
            assert_eq!(all.len(), sp + 1 + len, "one frame, exactly MSG-LEN long");
            g.lock().unwrap().push(all[sp + 1..].to_vec());
        }
    });
    let cfg = write_config(
        dir.path(),
        &data,
        &format!(
            r#"[alerts]
[[alerts.channel]]
name = "siem"
type = "syslog"
transport = "tls"
address = "127.0.0.1:{port}"
server_name = "siem.localhost"
ca_file = "siem-ca.pem"
facility = "auth"
hostname = "collector-1"
lang = "en"

[[alerts.channel]]
name = "siem-unchecked-name"
type = "syslog"
transport = "tls"
address = "127.0.0.1:{port}"
ca_file = "siem-ca.pem"
"#
        ),
    );
    let test = |name: &str| {
        Command::new(env!("CARGO_BIN_EXE_setten-collector"))
            .args(["alert", "test", name, "--config"])
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let out = test("siem");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = parse_5424(&wait_for(
        "the TLS syslog message",
        Duration::from_secs(10),
        || got.lock().unwrap().first().cloned(),
    ));
    assert_eq!(m.pri, 4 * 8 + 6, "auth.info");
    assert_eq!(m.msgid, "TEST");
    assert!(
        m.msg
            .starts_with("[TEST] [setten Info] Test message (alert channel check)"),
        "{}",
        m.msg
    );
    // The certificate names siem.localhost, not 127.0.0.1: refused.
    let out = test("siem-unchecked-name");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("(tls): "), "{err}");
    assert!(err.to_ascii_lowercase().contains("certificate"), "{err}");
    assert_eq!(got.lock().unwrap().len(), 1);
}
