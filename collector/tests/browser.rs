//! The web UI in a real browser: headless Chromium driven through chromedriver with the
//! W3C WebDriver protocol (<https://www.w3.org/TR/webdriver2/>, spoken here as JSON over
//! HTTP), against a real `setten-collector serve` on loopback whose store was filled by
//! `setten-agent analyze --ship` from the bundled hospital sample, with a user made by
//! `setten-collector user add`: log in, filter the inventory, open a connection point,
//! read the backup media, acknowledge an alert, show and download the survey report,
//! switch to English, log out.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without
//! them the test fails and says so: it does not pass silently. Screenshots go to
//! `<target>/tmp/ui-screenshots/` (printed).

use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "morning-rounds-2026";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn collector_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_setten-collector"))
}

/// The agent binary of the same build (built here when only this package is tested).
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

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(url: &str, what: &str) {
    let c = reqwest::blocking::Client::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if c.get(url).send().is_ok_and(|r| r.status().is_success()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not come up at {url}");
}

fn admin(data: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(collector_bin())
        .args(args)
        .arg("--data")
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "setten-collector {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A W3C WebDriver session.
struct Driver {
    http: reqwest::blocking::Client,
    base: String,
    session: String,
    _proc: Proc,
}

impl Driver {
    fn start(downloads: &Path) -> Driver {
        let missing: Vec<&str> = ["chromium", "chromedriver"]
            .into_iter()
            .filter(|b| {
                Command::new("sh")
                    .args(["-c", &format!("command -v {b}")])
                    .output()
                    .map_or(true, |o| !o.status.success())
            })
            .collect();
        assert!(
            missing.is_empty(),
            "the browser test needs {missing:?} on PATH (Debian: apt-get install chromium chromium-driver; .ci/run installs them)"
        );
        let port = free_port();
        let proc = Proc(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver"),
        );
        let base = format!("http://127.0.0.1:{port}");
        wait_for(&format!("{base}/status"), "chromedriver");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--window-size=1280,1000",
                         "--lang=ja"],
                "prefs": {
                    "download.default_directory": downloads.to_str().unwrap(),
                    "download.prompt_for_download": false
                }
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
            .to_owned();
        Driver {
            http,
            base,
            session,
            _proc: proc,
        }
    }

    fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut r = self.http.request(method, url);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let v: Value = r.send().unwrap().json().unwrap();
        if v["value"].get("error").is_some() {
            panic!("WebDriver {path}: {}", v["value"]);
        }
        v["value"].clone()
    }

    fn go(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url})));
    }

    fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn find(&self, css: &str) -> String {
        let v = self.cmd(
            reqwest::Method::POST,
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        // The W3C element reference key.
        v["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {v}"))
            .to_owned()
    }

    /// Waits (up to 20 s) until the page has an element matching `css`.
    fn wait_for(&self, css: &str) {
        let start = Instant::now();
        while self.count(css) == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no `{css}` on {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (up to 20 s) until the address contains `part`.
    fn wait_url(&self, part: &str) {
        let start = Instant::now();
        while !self.url().contains(part) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "still at {}, waiting for {part}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn count(&self, css: &str) -> usize {
        self.cmd(
            reqwest::Method::POST,
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .as_array()
        .map_or(0, Vec::len)
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        );
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        );
    }

    /// The text of the first element matching `css`, or `None` while there is none (a
    /// page being replaced after a form was sent): no WebDriver error is fatal here.
    fn text_now(&self, css: &str) -> Option<String> {
        let url = format!("{}/session/{}/elements", self.base, self.session);
        let found: Value = self
            .http
            .post(url)
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .ok()?
            .json()
            .ok()?;
        let e = found["value"].get(0)?["element-6066-11e4-a52e-4f735466cecf"].as_str()?;
        let url = format!("{}/session/{}/element/{e}/text", self.base, self.session);
        let v: Value = self.http.get(url).send().ok()?.json().ok()?;
        v["value"].as_str().map(str::to_owned)
    }

    fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.cmd(reqwest::Method::GET, &format!("/element/{e}/text"), None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn script(&self, js: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
    }

    fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
    }
}

#[test]
fn hospital_it_logs_in_filters_opens_a_point_acknowledges_an_alert_downloads_the_report_in_chromium(
) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let _collector = Proc(
        Command::new(collector_bin())
            .args(["serve", "--plain-http", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data")
            .arg(&data)
            .env("RUST_LOG", "warn")
            .env("SETTEN_IEEE_DATA", repo().join("tests/fixtures/ieee-data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let site = format!("http://127.0.0.1:{port}");
    wait_for(&format!("{site}/healthz"), "the collector");

    // The store, filled the way a hospital fills it.
    let token = admin(&data, &["agent", "add", "mirror-1"], None);
    let token_file = dir.path().join("mirror-1.token");
    std::fs::write(&token_file, token.trim()).unwrap();
    let private = |f: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    private(&token_file);
    admin(
        &data,
        &[
            "ledger",
            "import",
            repo().join("samples/hospital-ledger.csv").to_str().unwrap(),
        ],
        None,
    );
    let out = Command::new(agent_bin())
        .current_dir(repo())
        .args([
            "analyze",
            "--format",
            "jsonl",
            "--ship",
            &site,
            "--token-file",
        ])
        .arg(&token_file)
        .arg("--spool")
        .arg(dir.path().join("spool.db"))
        .args(["--ship-timeout", "10s", "samples/hospital-demo.pcap"])
        .env("SETTEN_IEEE_DATA", repo().join("tests/fixtures/ieee-data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A backup medium sealed, verified, changed and verified again on the backup host,
    // shipped from that agent's spool. (Its own enrolment: each spool numbers findings
    // from 1, so two spools under one agent name would collide as duplicates.)
    let backup_token = admin(&data, &["agent", "add", "backup-host"], None);
    let backup_token_file = dir.path().join("backup-host.token");
    std::fs::write(&backup_token_file, backup_token.trim()).unwrap();
    private(&backup_token_file);
    let media = dir.path().join("weekly-a");
    std::fs::create_dir_all(media.join("db")).unwrap();
    for i in 0..5 {
        std::fs::write(
            media.join(format!("db/dump-{i}.sql")),
            format!("-- 電子カルテ dump {i}\n").repeat(2000),
        )
        .unwrap();
    }
    let key = dir.path().join("backup.key");
    let spool = dir.path().join("backup-spool.db");
    let agent = |args: &[&str]| {
        let out = Command::new(agent_bin())
            .args(args)
            .env("SETTEN_STATE_DIR", dir.path().join("state"))
            .output()
            .unwrap();
        assert!(
            out.status.success() || args[1] == "verify",
            "setten-agent {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (m, k, sp) = (
        media.to_str().unwrap(),
        key.to_str().unwrap(),
        spool.to_str().unwrap(),
    );
    agent(&["backup", "keygen", k]);
    agent(&[
        "backup",
        "seal",
        m,
        "--medium",
        "weekly-a",
        "--key-file",
        k,
        "--spool",
        sp,
    ]);
    agent(&[
        "backup",
        "verify",
        m,
        "--medium",
        "weekly-a",
        "--key-file",
        k,
        "--spool",
        sp,
    ]);
    std::fs::write(media.join("db/dump-3.sql"), "-- overwritten\n").unwrap();
    agent(&[
        "backup",
        "verify",
        m,
        "--medium",
        "weekly-a",
        "--key-file",
        k,
        "--spool",
        sp,
    ]);
    agent(&[
        "ship",
        &site,
        "--token-file",
        backup_token_file.to_str().unwrap(),
        "--spool",
        sp,
        "--ship-timeout",
        "10s",
    ]);

    admin(
        &data,
        &["user", "add", "it-admin", "--role", "admin"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(admin(&data, &["user", "list"], None).contains("it-admin"));

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    println!("screenshots: {}", shots.display());

    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let d = Driver::start(&downloads);
    // Any page leads to the login first.
    d.go(&format!("{site}/ui/"));
    assert!(d.url().contains("/ui/login"), "{}", d.url());
    assert_eq!(d.script("return document.documentElement.lang"), "ja");
    d.type_into("#name", "it-admin");
    d.type_into("#password", "wrong password, twice");
    d.click("#login");
    d.wait_for(".alert");
    assert!(d.text(".alert").contains("パスワードが違います"));
    d.type_into("#name", "it-admin");
    d.type_into("#password", PASSWORD);
    d.click("#login");
    d.wait_for("#count-points");
    assert_eq!(d.url(), format!("{site}/ui/"));

    // The morning view: counts at the top, the stylesheet applied (CSP let it in).
    assert_eq!(d.text("#count-points"), "7");
    assert_eq!(d.text("#count-unregistered"), "3");
    assert_eq!(d.count("tr.point"), 7);
    assert_eq!(
        d.script("return getComputedStyle(document.querySelector('header.top')).backgroundColor"),
        "rgb(19, 41, 61)"
    );
    d.screenshot(&shots.join("inventory.png"));

    // Filter: unregistered only.
    d.click("#f-ledger option[value=unregistered]");
    d.click("#apply");
    d.wait_url("ledger=unregistered");
    assert_eq!(d.text("#count-shown"), "3");
    assert_eq!(d.count("tr.point"), 3);
    assert_eq!(d.count("tr.point .ledger-unregistered"), 3);
    d.screenshot(&shots.join("inventory-unregistered.png"));

    // Open the first one: its page, with evidence and the activity charts.
    d.click("tr.point .point-link");
    d.wait_for("#point-title");
    assert!(d.url().contains("/ui/points/cp-"), "{}", d.url());
    assert!(d.count("#evidence tbody tr") >= 1);
    assert_eq!(d.count("svg.bars"), 2, "per-day and per-hour charts");
    assert!(d.count("svg.bars rect") >= 24);
    assert!(d.text("#point-title").contains("·"));
    d.screenshot(&shots.join("point.png"));
    d.script("document.querySelector('.charts').scrollIntoView(); return null");
    d.screenshot(&shots.join("point-activity.png"));

    // The backup medium: the second verification found the changed file.
    d.click("nav a[href='/ui/backups']");
    d.wait_for(".medium");
    let medium = d.text(".medium");
    assert!(medium.contains("weekly-a"), "{medium}");
    assert!(medium.contains("差異あり"), "{medium}");
    assert!(medium.contains("db/dump-3.sql"), "{medium}");
    d.screenshot(&shots.join("backups.png"));

    // Hosts and agents, from the navigation.
    d.click("nav a[href='/ui/agents']");
    d.wait_for("#agents");
    assert!(d.text("#agents").contains("mirror-1"));
    d.click("nav a[href='/ui/hosts']");
    d.wait_for("#hosts");
    assert!(d.text("#hosts").contains("10.20.20.15"));

    // Alerts: the inbound RDP raised some; acknowledge the first open one.
    let start = Instant::now();
    loop {
        d.go(&format!("{site}/ui/alerts"));
        if d.count(".alert-row") > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no alert was raised"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let open_before = d.count(".alert-row");
    d.screenshot(&shots.join("alerts.png"));
    d.click(".alert-row .alert-link");
    d.wait_for("#ack-form");
    d.type_into("#ack-note", "保守業者に確認済み");
    d.click("#ack");
    // The form is sent and the page replaced: until the new page is there, the old one's
    // state (or none) is read.
    let start = Instant::now();
    while !d
        .text_now("#ack-state")
        .is_some_and(|t| t.contains("it-admin"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not acknowledged"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(d.text("#ack-state").contains("保守業者に確認済み"));
    assert_eq!(d.count("#ack-form"), 0);
    d.go(&format!("{site}/ui/alerts"));
    d.wait_for("h1");
    assert_eq!(d.count(".alert-row"), open_before - 1);

    // The survey report: shown in the browser, and the ledger CSV downloaded.
    d.click("nav a[href='/ui/report']");
    d.wait_for("#report-files");
    d.click("#report-view-ja");
    d.wait_url("view=1");
    assert!(d
        .script("return document.title")
        .as_str()
        .unwrap()
        .contains("現地調査報告書"));
    d.screenshot(&shots.join("report.png"));
    d.go(&format!("{site}/ui/report"));
    d.wait_for("#report-files");
    d.click("#report-csv-ja");
    let start = Instant::now();
    let csv = loop {
        let done = std::fs::read_dir(&downloads)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "csv"));
        if let Some(p) = done {
            break p;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no CSV downloaded into {}",
            downloads.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let name = csv.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(name.starts_with("setten-report-"), "{name}");
    let bytes = std::fs::read(&csv).unwrap();
    assert_eq!(&bytes[..3], b"\xEF\xBB\xBF");
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("10.20.20.15"),
        "the RDP point's host is in the ledger CSV"
    );

    // On a phone-sized window the table becomes cards.
    d.go(&format!("{site}/ui/"));
    d.wait_for("#inventory");
    d.cmd(
        reqwest::Method::POST,
        "/window/rect",
        Some(json!({"width": 400, "height": 860})),
    );
    assert_eq!(
        d.script("return getComputedStyle(document.querySelector('tr.point')).display"),
        "block"
    );
    d.screenshot(&shots.join("inventory-narrow.png"));
    d.cmd(
        reqwest::Method::POST,
        "/window/rect",
        Some(json!({"width": 1280, "height": 1000})),
    );

    // English, then log out.
    d.click("#lang-switch");
    d.wait_for("html[lang=en]");
    assert_eq!(d.script("return document.documentElement.lang"), "en");
    d.click("#logout");
    d.wait_url("/ui/login");
    d.go(&format!("{site}/ui/hosts"));
    assert!(d.url().contains("/ui/login"), "logged out: {}", d.url());
    for f in [
        "inventory.png",
        "inventory-unregistered.png",
        "point.png",
        "point-activity.png",
        "backups.png",
        "report.png",
        "alerts.png",
    ] {
        assert!(
            std::fs::metadata(shots.join(f)).unwrap().len() > 10_000,
            "{f}"
        );
    }
}
