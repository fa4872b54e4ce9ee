//! The command line: enrolment, revocation, ledger and export-file import, and `serve`
//! as a process that shuts down on SIGTERM.

mod common;

use common::*;
use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_setten-collector"))
}

fn run(args: &[&str], data: &Path) -> Output {
    bin().args(args).arg("--data").arg(data).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn agent_add_prints_the_token_once_and_list_and_revoke_show_it() {
    let d = tempfile::tempdir().unwrap();
    let out = run(&["agent", "add", "mirror-1"], d.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();
    let secret = token.strip_prefix("mirror-1.").expect("NAME.secret");
    assert_eq!(secret.len(), 43);
    assert!(text(&out.stderr).contains("shown only this once"));
    // Only the hash is kept.
    let db = std::fs::read(d.path().join("setten.db")).unwrap();
    assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()));
    let hash = setten_collector::token::TokenHash::of(&token).to_hex();
    assert!(db.windows(hash.len()).any(|w| w == hash.as_bytes()));

    let out = run(&["agent", "add", "report", "--role", "reader"], d.path());
    assert!(out.status.success());
    let out = run(&["agent", "add", "mirror-1"], d.path());
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already enrolled"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["agent", "add", "bad name"], d.path());
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("is not valid"));

    let out = run(&["agent", "revoke", "mirror-1"], d.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&["agent", "revoke", "nobody"], d.path());
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no agent named `nobody`"));

    let out = run(&["agent", "list"], d.path());
    let list = text(&out.stdout);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(
        lines[0].starts_with("NAME")
            && lines[0].contains("LAST SEQ")
            && lines[0].contains("FINDINGS")
    );
    let m1 = lines.iter().find(|l| l.starts_with("mirror-1")).unwrap();
    let cells: Vec<&str> = m1.split_whitespace().collect();
    // name, role, created, revoked, last seen, last seq, findings
    assert_eq!(cells[1], "agent");
    assert!(cells[3].starts_with("20"), "revoked time: {m1}");
    assert_eq!(cells[4], "-");
    assert_eq!(&cells[5..], ["0", "0"]);
    assert!(lines
        .iter()
        .any(|l| l.starts_with("report") && l.contains("reader")));
}

#[test]
fn ledger_import_reports_row_errors_and_refuses_unreadable_files() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("ledger.csv");
    std::fs::write(
        &f,
        "管理番号,保守業者,内部ホスト,接続先,サービス\nL-1,A社,10.0.0.5,vpn.example.jp,ssl-vpn\nL-2,B社,10.0.0.6:22,,ssh\n",
    )
    .unwrap();
    let out = bin()
        .args(["ledger", "import"])
        .arg(&f)
        .arg("--data")
        .arg(d.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1 entries"),
        "{}",
        text(&out.stdout)
    );
    let err = text(&out.stderr);
    assert!(err.contains("ledger.csv:3: column `内部ホスト`"), "{err}");

    let missing = d.path().join("nope.csv");
    let out = bin()
        .args(["ledger", "import"])
        .arg(&missing)
        .arg("--data")
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("nope.csv: cannot read the ledger"),
        "{}",
        text(&out.stderr)
    );

    let all_bad = d.path().join("bad.csv");
    std::fs::write(&all_bad, "internal,service\nnowhere,ssh\n").unwrap();
    let out = bin()
        .args(["ledger", "import"])
        .arg(&all_bad)
        .arg("--data")
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.csv:2:") && err.contains("nothing was imported"),
        "{err}"
    );
    let store = setten_collector::open_store(d.path()).unwrap();
    assert_eq!(
        setten_collector::Store::latest_ledger_id(&*store).unwrap(),
        Some(1)
    );
}

#[test]
fn an_export_file_with_a_wrong_hmac_is_refused_and_the_right_one_is_ingested() {
    let d = tempfile::tempdir().unwrap();
    let out = run(&["agent", "add", "site-b"], d.path());
    let token = text(&out.stdout).trim().to_owned();
    let line = batch(
        "site-b",
        1,
        vec![
            session_body(ssh_session("10.20.10.60", "203.0.113.60", 52000, 0)),
            health_body(json!({"spool_bytes": 0})),
        ],
    );
    let good = setten_collector::export::write("site-b", &token, &line);
    // The batch altered after signing: one more byte in a number.
    let tampered =
        String::from_utf8(good.clone())
            .unwrap()
            .replacen("\"bytes\":10000", "\"bytes\":100000", 1);
    let forged = d.path().join("tampered.setten");
    std::fs::write(&forged, tampered).unwrap();
    let out = bin()
        .arg("import")
        .arg(&forged)
        .arg("--data")
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("signature does not match: the file was changed or not made by agent site-b"),
        "{err}"
    );
    // Signed with another token.
    let other = d.path().join("other.setten");
    std::fs::write(
        &other,
        setten_collector::export::write("site-b", "site-b.not-the-token", &line),
    )
    .unwrap();
    let out = bin()
        .arg("import")
        .arg(&other)
        .arg("--data")
        .arg(d.path())
        .output()
        .unwrap();
    assert!(text(&out.stderr).contains("signature does not match"));
    let store = setten_collector::open_store(d.path()).unwrap();
    assert_eq!(setten_collector::Store::findings_count(&*store).unwrap(), 0);

    let file = d.path().join("site-b.setten");
    std::fs::write(&file, &good).unwrap();
    let out = bin()
        .arg("import")
        .arg(&file)
        .arg("--data")
        .arg(d.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("2 stored, 0 duplicates"),
        "{}",
        text(&out.stdout)
    );
    let out = bin()
        .arg("import")
        .arg(&file)
        .arg("--data")
        .arg(d.path())
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).contains("0 stored, 2 duplicates"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(setten_collector::Store::findings_count(&*store).unwrap(), 2);

    // A revoked agent's files are refused even when signed correctly.
    run(&["agent", "revoke", "site-b"], d.path());
    let out = bin()
        .arg("import")
        .arg(&file)
        .arg("--data")
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("revoked"),
        "{}",
        text(&out.stderr)
    );
    // An agent that was never enrolled.
    let stranger = d.path().join("stranger.setten");
    std::fs::write(
        &stranger,
        setten_collector::export::write(
            "stranger",
            "stranger.x",
            &line.replace("site-b", "stranger"),
        ),
    )
    .unwrap();
    let out = bin()
        .arg("import")
        .arg(&stranger)
        .arg("--data")
        .arg(d.path())
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("`stranger` is not enrolled"),
        "{}",
        text(&out.stderr)
    );
}

#[cfg(unix)]
#[test]
fn serve_answers_then_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("collector.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:0\"\nplain_http = true\nrate_per_sec = 0\n",
    )
    .unwrap();
    let mut child = bin()
        .args(["serve", "--config"])
        .arg(&cfg)
        .arg("--data")
        .arg(d.path())
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addr = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("setten-collector ready") {
            let at = line.find("addr=").unwrap() + 5;
            addr = Some(line[at..].split_whitespace().next().unwrap().to_owned());
            break;
        }
    }
    let addr = addr.expect("ready line");
    let r = reqwest::blocking::get(format!("http://{addr}/healthz")).unwrap();
    assert_eq!(r.status(), 200);
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("SIGTERM")), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}

#[test]
fn unknown_config_keys_are_refused_with_file_line_and_key() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("collector.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nplain_htp = true\n").unwrap();
    let out = bin()
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("collector.toml:2: `plain_htp`: unknown field"),
        "{err}"
    );
}

fn run_stdin(args: &[&str], data: &Path, stdin: &str) -> Output {
    use std::io::Write;
    let mut child = bin()
        .args(args)
        .arg("--data")
        .arg(data)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A command that refuses its arguments exits before reading: not an error here.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

#[test]
fn user_add_reads_the_password_from_stdin_and_list_and_remove_show_it() {
    let d = tempfile::tempdir().unwrap();
    let out = run_stdin(
        &["user", "add", "sato", "--role", "admin"],
        d.path(),
        "a long enough passphrase\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Added `sato` as admin"));
    // Only the argon2id hash is kept.
    let db = std::fs::read(d.path().join("setten.db")).unwrap();
    assert!(!db.windows(8).any(|w| w == b"passphra"));
    assert!(db.windows(10).any(|w| w == b"$argon2id$"));

    let out = run_stdin(
        &["user", "add", "ito", "--role", "viewer"],
        d.path(),
        "short\n",
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("at least 12 characters"),
        "{}",
        text(&out.stderr)
    );
    let out = run_stdin(
        &["user", "add", "sato", "--role", "viewer"],
        d.path(),
        "another long passphrase\n",
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("already exists"));
    let out = run_stdin(
        &["user", "add", "<b>", "--role", "viewer"],
        d.path(),
        "another long passphrase\n",
    );
    assert!(
        text(&out.stderr).contains("is not valid"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["user", "add", "abe"], d.path());
    assert!(!out.status.success(), "a role is required");

    let out = run_stdin(
        &["user", "add", "ito", "--role", "viewer"],
        d.path(),
        "another long passphrase\r\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = text(&run(&["user", "list"], d.path()).stdout);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(lines[1].starts_with("ito") && lines[1].contains("viewer"));
    assert!(lines[2].starts_with("sato") && lines[2].contains("admin"));
    let out = run(&["user", "remove", "ito"], d.path());
    assert!(out.status.success());
    let out = run(&["user", "remove", "ito"], d.path());
    assert!(text(&out.stderr).contains("no user named `ito`"));
    assert_eq!(
        text(&run(&["user", "list"], d.path()).stdout)
            .lines()
            .count(),
        2
    );
}
