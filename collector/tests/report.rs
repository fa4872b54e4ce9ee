//! The survey report from the collector: `setten-collector report` on a store filled by
//! importing an export file, and `GET /api/v1/report` on a real server (refused without
//! a token, a download with its type and dated file name with one).

mod common;

use common::*;
use serde_json::json;
use setten_agent::findings::Body;
use setten_collector::token::Role;
use std::path::Path;
use std::process::Command;

fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().unwrap()
}

/// What an agent on a mirror port and on the backup host would have sent.
fn bodies() -> Vec<Body> {
    let t = T0 as i64;
    let mut hostile = ssh_session("10.20.10.60", "203.0.113.60", 52000, 0);
    hostile.far_names = vec!["<script>x</script>.example".into()];
    vec![
        session_body(hostile),
        session_body(ssh_session("10.20.10.61", "203.0.113.61", 52001, 60)),
        health_body(json!({"version": "0.1.0", "uptime_seconds": 7200, "drop_rate": 0.0})),
        Body::CaptureQuality(obj(json!({
            "type": "capture_quality", "captures": [], "first_seen": "2026-10-05T00:00:00.000000Z",
            "last_seen": "2026-10-06T00:00:00.000000Z", "span_seconds": 86400, "flows": 120,
            "tcp_flows": 100, "tcp_one_way_share": 0.0, "tcp_mid_stream_share": 0.01,
            "duplicate_share": 0.0, "truncated": 0, "drops": 3, "vlans": [10, 20],
            "blind_spots": [{"id": "drops", "ja": "キャプチャ中に3パケットが欠落しました。", "en": "The capturing system dropped 3 packets."}]
        }))),
        Body::Backup(obj(
            json!({"event": "mount", "medium": "nas-weekly", "at_us": t, "fs_label": "BK-WEEKLY"}),
        )),
        Body::Backup(obj(
            json!({"event": "verify", "medium": "nas-weekly", "at_us": t + 600_000_000, "result": "differences",
            "mode": "full", "counts": {"files": 10, "ok": 9, "modified": 1},
            "problems": [{"path": "db/karte.dump", "status": "modified", "offset": 0}]}),
        )),
        Body::Backup(obj(
            json!({"event": "unmount", "medium": "nas-weekly", "at_us": t + 3_600_000_000_i64, "connected_seconds": 3600.0}),
        )),
    ]
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_setten-collector"));
    c.env("SOURCE_DATE_EPOCH", "1791158400");
    c
}

fn import(d: &Path) {
    let out = bin()
        .args(["agent", "add", "mirror-1", "--data"])
        .arg(d)
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let line = batch("mirror-1", 1, bodies());
    let file = d.join("mirror-1.setten");
    std::fs::write(
        &file,
        setten_collector::export::write("mirror-1", &token, &line),
    )
    .unwrap();
    let out = bin()
        .arg("import")
        .arg(&file)
        .arg("--data")
        .arg(d)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn report_command_writes_html_and_csv_from_an_imported_store() {
    let d = tempfile::tempdir().unwrap();
    import(d.path());
    let html_path = d.path().join("r.html");
    let out = bin()
        .args(["report", "--site", "テスト病院", "--data"])
        .arg(d.path())
        .arg("--out")
        .arg(&html_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&html_path).unwrap();
    for s in [
        "テスト病院",
        "外部接続点 現地調査報告書",
        "10.20.10.60",
        "mirror-1",
        "nas-weekly",
        "相違あり",
        "modified: db&#x2f;karte.dump",
        "10, 20",
        "キャプチャ中に3パケットが欠落しました。",
        "2026-10-05 09:00 +09:00",
    ] {
        assert!(html.contains(s), "missing {s}");
    }
    assert!(!html.contains("<script>x"), "unescaped far name");
    // 3-② is "action needed" because a medium showed differences.
    let i = html.find("<strong>3-②</strong>").unwrap();
    let row = html[i..].split("</tr>").next().unwrap();
    assert!(
        row.contains("要対応") && row.contains("nas-weekly"),
        "{row}"
    );

    // Default file name with the date, CSV from --format, English.
    let out = bin()
        .current_dir(d.path())
        .args(["report", "--format", "csv", "--lang", "en", "--data"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read(d.path().join("setten-report-2026-10-05.csv")).unwrap();
    assert!(csv.starts_with("\u{feff}kind,number,internal_ip".as_bytes()));
    let text = String::from_utf8(csv).unwrap();
    assert_eq!(text.matches("connection point,").count(), 2, "{text}");
    assert_eq!(text.matches("internal host,").count(), 2, "{text}");

    // No store: a clear error.
    let empty = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["report", "--data"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no store here"));
}

#[test]
fn the_report_route_needs_a_token_and_serves_downloads() {
    let d = tempfile::tempdir().unwrap();
    let srv = start(d.path(), false, unlimited());
    let agent = srv.enrol("mirror-1", Role::Agent);
    let reader = srv.enrol("director", Role::Reader);
    let r = srv.post(&agent, "/api/v1/findings", batch("mirror-1", 1, bodies()));
    assert_eq!(r.status(), 200);

    // No token, a wrong token.
    let r = srv.client().get(srv.url("/api/v1/report")).send().unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(srv.get("director.wrong", "/api/v1/report").status(), 401);

    let r = srv.get(&reader, "/api/v1/report");
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let cd = h["content-disposition"].to_str().unwrap().to_owned();
    assert!(
        cd.starts_with("attachment; filename=\"setten-report-") && cd.ends_with(".html\""),
        "{cd}"
    );
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    let body = r.text().unwrap();
    assert!(body.contains("<html lang=\"ja\">") && body.contains("nas-weekly"));

    let r = srv.get(&agent, "/api/v1/report?lang=en&format=csv");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .ends_with(".csv\""));
    assert!(r.bytes().unwrap().starts_with("\u{feff}kind,".as_bytes()));

    let r = srv.get(&reader, "/api/v1/report?format=json");
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["schema"], "setten.report/1");
    assert_eq!(v["source"], "collector");
    assert_eq!(v["points"].as_array().unwrap().len(), 2);
    assert_eq!(v["backups"][0]["result"], "differences");
    assert_eq!(v["sensors"][0]["name"], "mirror-1");

    for (q, field) in [
        ("lang=fr", "lang"),
        ("format=pdf", "format"),
        ("format=xml", "format"),
        ("lang=ja&lang=en", "lang"),
        ("colour=red", "colour"),
    ] {
        let r = srv.get(&reader, &format!("/api/v1/report?{q}"));
        assert_eq!(r.status(), 400, "{q}");
        let v: serde_json::Value = r.json().unwrap();
        assert_eq!(v["field"], field, "{q}: {v}");
    }
}
