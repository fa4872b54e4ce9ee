//! `setten-agent analyze --inventory` end to end: the bundled hospital sample against its
//! designed truth (samples/README.md) and golden files, the ledger in both encodings,
//! and every remote-access/VPN flow of the shared corpus landing in exactly one point.

use serde_json::Value;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the agent from the repository root (so paths in the output are relative and the
/// golden files do not depend on where the clone lives), with the pinned OUI registry.
fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_setten-agent"))
        .current_dir(repo())
        .arg("analyze")
        .args(args)
        .env("SETTEN_LOG", "warn")
        .env("SETTEN_IEEE_DATA", "tests/fixtures/ieee-data")
        .output()
        .expect("run setten-agent")
}

fn jsonl(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l}: {e}")))
        .collect()
}

fn demo(extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["--inventory", "--format", "jsonl"];
    args.extend_from_slice(extra);
    args.push("samples/hospital-demo.pcap");
    jsonl(&agent(&args))
}

fn points(records: &[Value]) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| r["type"] == "connection_point")
        .collect()
}

fn point<'a>(pts: &[&'a Value], service: &str, internal: &str) -> &'a Value {
    let m: Vec<&&Value> = pts
        .iter()
        .filter(|p| p["service"] == service && p["internal"]["ip"] == internal)
        .collect();
    assert_eq!(m.len(), 1, "one {service} point at {internal}: {m:#?}");
    m[0]
}

fn risks(p: &Value) -> Vec<String> {
    p["risks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The designed truth of samples/README.md, point by point.
#[test]
fn the_hospital_sample_inventory_matches_its_designed_truth() {
    let recs = demo(&["--ledger", "samples/hospital-ledger.csv"]);
    let pts = points(&recs);
    assert_eq!(pts.len(), 7, "{pts:#?}");

    let rdp = point(&pts, "rdp", "10.20.20.15");
    assert_eq!(rdp["direction"], "inbound");
    assert_eq!(rdp["internal"]["port"], 3389);
    assert_eq!(rdp["internal"]["names"][0], "CT-WS-01");
    assert_eq!(rdp["internal"]["mac_vendor"], "Siemens AG");
    assert_eq!(rdp["far_side"]["kind"], "any");
    assert_eq!(rdp["far_side"]["ip_count"], 6);
    let r = risks(rdp);
    for want in ["inbound_internet", "many_sources", "weak", "outside_window"] {
        assert!(r.contains(&want.to_owned()), "{want} in {r:?}");
    }
    assert_eq!(rdp["severity"], "critical");
    assert_eq!(rdp["ledger"]["status"], "unregistered");

    let ipsec = point(&pts, "ipsec", "10.20.10.1");
    assert_eq!(ipsec["direction"], "outbound");
    assert_eq!(ipsec["far_side"]["kind"], "host");
    assert_eq!(ipsec["far_side"]["ips"][0], "192.0.2.10");
    assert_eq!(ipsec["vendor"], "Fortinet");
    assert!(ipsec["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["rule"] == "ike.vid.fortinet-fortigate"));
    assert_eq!(ipsec["ledger"]["status"], "registered");
    assert_eq!(ipsec["ledger"]["entry"], "EX-001");
    // Its entry allows any time of day: the always-on tunnel is not "outside the window".
    assert!(!risks(ipsec).contains(&"outside_window".to_owned()));

    let vpn = point(&pts, "ssl-vpn", "10.20.10.2");
    assert_eq!(vpn["direction"], "inbound");
    assert_eq!(vpn["product"], "FortiGate SSL-VPN");
    assert_eq!(vpn["ledger"]["status"], "drifted");
    assert_eq!(vpn["ledger"]["reasons"][0], "outside_window");

    let tv = point(&pts, "teamviewer", "10.20.40.31");
    assert_eq!(tv["far_side"]["kind"], "cloud");
    assert_eq!(tv["far_side"]["name"], "TeamViewer");
    assert_eq!(tv["far_side"]["ip_count"], 3);
    assert!(tv["far_side"]["names"]
        .as_array()
        .unwrap()
        .contains(&Value::from("router1.teamviewer.com")));
    assert_eq!(tv["internal"]["names"][0], "LAB-PC-031");
    assert_eq!(tv["ledger"]["status"], "unregistered");

    let ssh = point(&pts, "ssh", "10.20.10.50");
    assert_eq!(ssh["direction"], "inbound");
    assert_eq!(ssh["ledger"]["status"], "registered");
    assert!(ssh["versions"]
        .as_array()
        .unwrap()
        .contains(&Value::from("SSH-2.0-PuTTY_Release_0.78")));

    let ovpn = point(&pts, "openvpn", "10.20.30.77");
    assert_eq!(ovpn["direction"], "outbound");
    assert_eq!(ovpn["ledger"]["status"], "unregistered");

    let vnc = point(&pts, "vnc", "10.20.20.40");
    assert_eq!(vnc["ledger"]["status"], "drifted");
    assert_eq!(vnc["ledger"]["reasons"][0], "far_end");

    let unseen: Vec<&Value> = recs
        .iter()
        .filter(|r| r["type"] == "ledger_unseen")
        .collect();
    assert_eq!(unseen.len(), 1);
    assert_eq!(unseen[0]["entry"]["id"], "EX-005");

    let q = recs.last().unwrap();
    assert_eq!(q["type"], "capture_quality");
    assert_eq!(q["vlans"], serde_json::json!([10, 20, 30, 40]));
    assert!(q["blind_spots"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["id"] == "short_span"));
}

/// The same ledger saved by Excel in Shift_JIS reconciles the same way.
#[test]
fn a_shift_jis_ledger_reconciles_like_the_utf8_one() {
    let status = |recs: &[Value]| -> Vec<(String, String)> {
        points(recs)
            .iter()
            .map(|p| {
                (
                    p["id"].as_str().unwrap().to_owned(),
                    format!("{}{}", p["ledger"]["status"], p["ledger"]["entry"]),
                )
            })
            .collect()
    };
    let utf8 = demo(&["--ledger", "samples/hospital-ledger.csv"]);
    let sjis = demo(&["--ledger", "samples/hospital-ledger-sjis.csv"]);
    assert_eq!(status(&utf8), status(&sjis));
}

/// Same input, same ids: run twice, and with the capture's flows in a different file
/// order the ids do not change either.
#[test]
fn ids_are_stable_across_runs() {
    let ids = |r: &[Value]| -> Vec<String> {
        let mut v: Vec<String> = points(r)
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(&demo(&[])), ids(&demo(&[])));
}

/// Golden files: the JSON records and the Japanese table of the sample.
#[test]
fn the_hospital_sample_golden_files() {
    let recs = demo(&["--ledger", "samples/hospital-ledger.csv"]);
    let pretty: Vec<String> = recs
        .iter()
        .map(|v| serde_json::to_string_pretty(v).unwrap())
        .collect();
    insta::assert_snapshot!("hospital_demo_inventory_jsonl", pretty.join("\n"));
    let table = agent(&[
        "--inventory",
        "--ledger",
        "samples/hospital-ledger.csv",
        "samples/hospital-demo.pcap",
    ]);
    assert!(table.status.success());
    insta::assert_snapshot!(
        "hospital_demo_inventory_table",
        String::from_utf8(table.stdout).unwrap()
    );
}

#[test]
fn csv_opens_in_excel_and_lists_every_point() {
    let out = agent(&[
        "--inventory",
        "--format",
        "csv",
        "--ledger",
        "samples/hospital-ledger.csv",
        "samples/hospital-demo.pcap",
    ]);
    assert!(out.status.success());
    assert!(out.stdout.starts_with("\u{feff}".as_bytes()), "UTF-8 BOM");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.trim_start_matches('\u{feff}').lines();
    assert!(lines.next().unwrap().starts_with("ID,重要度,台帳"));
    assert_eq!(lines.count(), 7);
}

#[test]
fn a_bad_ledger_row_is_named_and_the_other_rows_still_count() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(repo().join("samples/hospital-ledger.csv")).unwrap();
    let broken = good.replacen(",10.20.10.50,", ",10.20.10.500,", 1);
    let path = dir.path().join("ledger.csv");
    std::fs::write(&path, broken).unwrap();
    let out = agent(&[
        "--inventory",
        "--format",
        "jsonl",
        "--ledger",
        path.to_str().unwrap(),
        "samples/hospital-demo.pcap",
    ]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("ledger.csv:4"), "row 4 named: {err}");
    let recs = jsonl(&out);
    let pts = points(&recs);
    // The PACS row is gone, so its point is unregistered; the IPsec row still counts.
    assert_eq!(
        point(&pts, "ssh", "10.20.10.50")["ledger"]["status"],
        "unregistered"
    );
    assert_eq!(
        point(&pts, "ipsec", "10.20.10.1")["ledger"]["status"],
        "registered"
    );
}

#[test]
fn a_ledger_without_the_internal_column_refuses_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.csv");
    std::fs::write(&path, "業者,接続先\nA,192.0.2.1\n").unwrap();
    let out = agent(&[
        "--inventory",
        "--ledger",
        path.to_str().unwrap(),
        "samples/hospital-demo.pcap",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ledger.csv"), "{err}");
}

#[test]
fn a_bad_site_rule_refuses_to_run_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "services.toml",
        "signatures.toml",
        "ike_vendor_ids.toml",
        "clouds.toml",
        "risks.toml",
    ] {
        std::fs::copy(repo().join("rules").join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(
        dir.path().join("site.toml"),
        "[site]\ntimezone = \"+09:00\"\n\n[[maintenance_window]]\nid = \"w\"\nwhen = \"Mon-Fri 25:00-26:00\"\n",
    )
    .unwrap();
    let out = agent(&[
        "--inventory",
        "--rules",
        dir.path().to_str().unwrap(),
        "samples/hospital-demo.pcap",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("site.toml:6"), "{err}");
    assert!(err.contains("`when`"), "{err}");
}

// --- The shared corpus ----------------------------------------------------------------

fn is_local(ip: &str) -> bool {
    match ip.parse::<IpAddr>().unwrap() {
        IpAddr::V4(v) => {
            let o = v.octets();
            v.is_private()
                || v.is_loopback()
                || v.is_link_local()
                || v.is_multicast()
                || v.is_broadcast()
                || v.is_unspecified()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v) => {
            let s = v.segments();
            v.is_loopback()
                || v.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

fn in_point(p: &Value, service: &str, internal: &str, far: &str, inbound: bool) -> bool {
    p["service"] == service
        && p["internal"]["ip"] == internal
        && p["direction"] == if inbound { "inbound" } else { "outbound" }
        && p["far_side"]["ips"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == far)
}

/// Every scored remote-access/VPN flow of the corpus between a local and an external
/// address lands in exactly one connection point.
#[test]
fn every_corpus_remote_access_flow_lands_in_exactly_one_point() {
    let labels = std::fs::read_to_string(repo().join("../shared/corpus/labels.jsonl"))
        .expect("the shared corpus beside the repository");
    let mut by_pcap: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for l in labels.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        if v["scored"] == true && !v["service"].is_null() {
            let (a, b) = (v["a"].as_str().unwrap(), v["b"].as_str().unwrap());
            if is_local(a) != is_local(b) {
                by_pcap
                    .entry(v["pcap"].as_str().unwrap().to_owned())
                    .or_default()
                    .push(v);
            }
        }
    }
    let mut checked = 0;
    for (pcap, labels) in &by_pcap {
        let path = repo().join("../shared/corpus/pcap").join(pcap);
        let path = path.to_str().unwrap();
        let flows = jsonl(&agent(&["--format", "jsonl", path]));
        let inv = jsonl(&agent(&["--inventory", "--format", "jsonl", path]));
        let pts = points(&inv);
        for l in labels {
            let (a, b) = (l["a"].as_str().unwrap(), l["b"].as_str().unwrap());
            let (ap, bp) = (l["a_port"].as_u64().unwrap(), l["b_port"].as_u64().unwrap());
            let flow = flows.iter().find(|f| {
                f["transport"] == l["transport"]
                    && ((f["client"]["ip"] == a
                        && f["client"]["port"] == ap
                        && f["server"]["ip"] == b
                        && f["server"]["port"] == bp)
                        || (f["client"]["ip"] == b
                            && f["client"]["port"] == bp
                            && f["server"]["ip"] == a
                            && f["server"]["port"] == ap))
            });
            let Some(flow) = flow else {
                panic!("{pcap}: labelled flow not reported: {l}");
            };
            let Some(service) = flow["service"].as_str() else {
                // A detection miss is the score's business (score.py), not the inventory's.
                continue;
            };
            let client = flow["client"]["ip"].as_str().unwrap();
            let server = flow["server"]["ip"].as_str().unwrap();
            let inbound = !is_local(client);
            let (internal, far) = if inbound {
                (server, client)
            } else {
                (client, server)
            };
            let n = pts
                .iter()
                .filter(|p| in_point(p, service, internal, far, inbound))
                .count();
            assert_eq!(n, 1, "{pcap}: {service} {client} -> {server} in {n} points");
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} corpus flows checked");
    eprintln!("{checked} corpus remote-access/VPN flows each in exactly one point");
}

#[test]
fn corpus_attribution_examples() {
    let inv = |pcap: &str| {
        let p = repo().join("../shared/corpus/pcap").join(pcap);
        jsonl(&agent(&[
            "--inventory",
            "--format",
            "jsonl",
            p.to_str().unwrap(),
        ]))
    };
    let forti = inv("ndpi-forticlient.pcap");
    assert!(
        points(&forti).iter().any(|p| p["vendor"] == "Fortinet"),
        "forticlient → Fortinet: {forti:#?}"
    );
    let anydesk = inv("ndpi-anydesk.pcapng");
    let pts = points(&anydesk);
    assert!(!pts.is_empty());
    for p in &pts {
        assert_eq!(p["service"], "anydesk");
        assert_eq!(p["far_side"]["kind"], "cloud");
        assert_eq!(p["far_side"]["name"], "AnyDesk");
    }
    let tv = inv("ndpi-teamviewer.pcap");
    assert!(points(&tv)
        .iter()
        .all(|p| p["service"] != "teamviewer" || p["far_side"]["name"] == "TeamViewer"));
}
