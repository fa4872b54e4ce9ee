//! The API against a real collector: authentication, refusals that leave the store
//! unchanged, idempotent ingest, the merged inventory, the ledger, heartbeats, limits.

mod common;

use common::*;
use serde_json::{json, Value};
use setten_collector::config::Limits;
use setten_collector::ratelimit::Rate;
use setten_collector::token::Role;
use setten_collector::{admin, Store};

#[test]
fn missing_or_wrong_token_is_401_revoked_is_403_and_nothing_is_stored() {
    let d = tempfile::tempdir().unwrap();
    let s = start(d.path(), false, unlimited());
    let token = s.enrol("m1", Role::Agent);
    let body = batch(
        "m1",
        1,
        vec![session_body(ssh_session(
            "10.20.10.50",
            "203.0.113.50",
            51000,
            0,
        ))],
    );

    let r = s
        .client()
        .post(s.url("/api/v1/findings"))
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let e: Value = r.json().unwrap();
    assert!(
        e["error"].as_str().unwrap().contains("Authorization"),
        "{e}"
    );

    // A token of the right shape that was never issued.
    let forged = format!("m1.{}", "A".repeat(43));
    let r = s.post(&forged, "/api/v1/findings", body.clone());
    assert_eq!(r.status(), 401);
    assert_eq!(s.get(&forged, "/api/v1/agents").status(), 401);
    assert_eq!(s.findings(), 0);

    admin::revoke_agent(&**s.state.store(), "m1").unwrap();
    let r = s.post(&token, "/api/v1/findings", body.clone());
    assert_eq!(r.status(), 403);
    let e: Value = r.json().unwrap();
    assert!(e["error"].as_str().unwrap().contains("revoked"), "{e}");
    assert_eq!(s.get(&token, "/api/v1/connection-points").status(), 403);
    assert_eq!(s.findings(), 0);

    // Health needs no token.
    let r = s.client().get(s.url("/healthz")).send().unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn oversized_bodies_are_413_and_nothing_is_stored() {
    let d = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_body_bytes: 64 << 10,
        ..unlimited()
    };
    let s = start(d.path(), false, limits);
    let token = s.enrol("m1", Role::Agent);
    let sessions: Vec<_> = (0..300)
        .map(|i| {
            session_body(ssh_session(
                "10.20.10.50",
                "203.0.113.50",
                40000 + i,
                u64::from(i) * 3600,
            ))
        })
        .collect();
    let body = batch("m1", 1, sessions);
    assert!(
        body.len() > 64 << 10 && body.len() < 1 << 20,
        "{}",
        body.len()
    );

    // Declared length over the limit.
    let r = s.post(&token, "/api/v1/findings", body.clone());
    assert_eq!(r.status(), 413);
    let e: Value = r.json().unwrap();
    assert!(e["error"].as_str().unwrap().contains("65536 bytes"), "{e}");
    assert_eq!(s.findings(), 0);

    // Chunked, no declared length: found while reading.
    let chunked = reqwest::blocking::Body::new(std::io::Cursor::new(body.into_bytes()));
    let r = s.post(&token, "/api/v1/findings", chunked);
    assert_eq!(r.status(), 413);
    assert_eq!(s.findings(), 0);

    let m = s.get(&token, "/metrics").text().unwrap();
    assert!(
        m.contains("setten_rejections_total{reason=\"too_large\"} 2"),
        "{m}"
    );
}

#[test]
fn malformed_json_and_bad_fields_are_400_naming_them_and_nothing_is_stored() {
    let d = tempfile::tempdir().unwrap();
    let s = start(d.path(), false, unlimited());
    let token = s.enrol("m1", Role::Agent);
    let good = session_body(ssh_session("10.20.10.50", "203.0.113.50", 51000, 0));

    // Cut short in the middle of the first finding.
    let text = batch("m1", 1, vec![good.clone()]);
    let cut = &text[..text.len() / 2];
    let r = s.post(&token, "/api/v1/findings", cut.to_owned());
    assert_eq!(r.status(), 400);
    let e: Value = r.json().unwrap();
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.starts_with("malformed JSON") && msg.contains("line 1 column"),
        "{msg}"
    );

    // A good finding then a bad address in the second: nothing of the batch is kept.
    let two = batch("m1", 1, vec![good.clone(), good.clone()]);
    let bad = {
        let mut v: Value = serde_json::from_str(&two).unwrap();
        v["findings"][1]["body"]["data"]["client"]["ip"] = json!("10.20.10.999");
        v.to_string()
    };
    let r = s.post(&token, "/api/v1/findings", bad);
    assert_eq!(r.status(), 400);
    let e: Value = r.json().unwrap();
    assert_eq!(e["field"], "findings[1].body.data.client.ip", "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .starts_with("findings[1].body.data.client.ip: "),
        "{e}"
    );

    // An unknown field.
    let extra = text.replacen("\"seq\":1", "\"seq\":1,\"colour\":\"red\"", 1);
    let r = s.post(&token, "/api/v1/findings", extra);
    assert_eq!(r.status(), 400);
    let e: Value = r.json().unwrap();
    assert!(e["error"].as_str().unwrap().contains("colour"), "{e}");
    assert!(
        e["field"].as_str().unwrap().starts_with("findings[0]"),
        "{e}"
    );

    // Another schema, another agent, sequence 0, too many findings.
    let other = text.replace(setten_agent::findings::SCHEMA, "setten.findings/2");
    let r = s.post(&token, "/api/v1/findings", other);
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["field"], "schema");
    let r = s.post(
        &token,
        "/api/v1/findings",
        batch("m2", 1, vec![good.clone()]),
    );
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().unwrap()["field"], "agent");
    let r = s.post(
        &token,
        "/api/v1/findings",
        batch("m1", 0, vec![good.clone()]),
    );
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["field"], "findings[0].seq");
    let many = vec![health_body(json!({})); setten_agent::findings::MAX_BATCH_FINDINGS + 1];
    let r = s.post(&token, "/api/v1/findings", batch("m1", 1, many));
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["field"], "findings");

    assert_eq!(s.findings(), 0);
    // A reader may not send at all.
    let reader = s.enrol("report", Role::Reader);
    let r = s.post(&reader, "/api/v1/findings", batch("report", 1, vec![good]));
    assert_eq!(r.status(), 403);
    assert_eq!(s.findings(), 0);
    assert_eq!(s.state.merged().point_count(), 0);
}

#[test]
fn a_retried_batch_is_stored_once() {
    let d = tempfile::tempdir().unwrap();
    let s = start(d.path(), false, unlimited());
    let token = s.enrol("m1", Role::Agent);
    let body = batch(
        "m1",
        1,
        vec![
            session_body(ssh_session("10.20.10.50", "203.0.113.50", 51000, 0)),
            health_body(json!({"drops": 0})),
        ],
    );
    let r: Value = s
        .post(&token, "/api/v1/findings", body.clone())
        .json()
        .unwrap();
    assert_eq!(r, json!({"stored": 2, "duplicates": 0, "last_seq": 2}));
    let r: Value = s.post(&token, "/api/v1/findings", body).json().unwrap();
    assert_eq!(r, json!({"stored": 0, "duplicates": 2, "last_seq": 2}));
    // Cut differently: one old, one new.
    let next = batch(
        "m1",
        2,
        vec![
            health_body(json!({"drops": 0})),
            health_body(json!({"drops": 1})),
        ],
    );
    let r: Value = s.post(&token, "/api/v1/findings", next).json().unwrap();
    assert_eq!(r, json!({"stored": 1, "duplicates": 1, "last_seq": 3}));
    assert_eq!(s.findings(), 3);

    let pts = s.get_json(&token, "/api/v1/connection-points");
    assert_eq!(pts["points"].as_array().unwrap().len(), 1);
    assert_eq!(pts["points"][0]["sessions"], 1);
    let agents = s.get_json(&token, "/api/v1/agents");
    assert_eq!(agents["agents"][0]["findings"], 3);
    assert_eq!(agents["agents"][0]["last_seq"], 3);
    // The newest health finding is the agent's health.
    assert_eq!(agents["agents"][0]["health"], json!({"drops": 1}));
    let m = s.get(&token, "/metrics").text().unwrap();
    assert!(m.contains("setten_findings_stored_total 3"), "{m}");
    assert!(m.contains("setten_findings_duplicates_total 3"), "{m}");
    assert!(m.contains("setten_ingest_batches_total 3"), "{m}");
    assert!(m.contains("setten_connection_points 1"), "{m}");
    assert!(
        m.contains("setten_request_duration_seconds_count{route=\"POST /api/v1/findings\"} 3"),
        "{m}"
    );
}

#[test]
fn the_same_session_from_two_agents_is_one_point_listing_both() {
    let d = tempfile::tempdir().unwrap();
    let s = start(d.path(), false, unlimited());
    let a = s.enrol("mirror-a", Role::Agent);
    let b = s.enrol("mirror-b", Role::Agent);
    let seen = ssh_session("10.20.10.50", "203.0.113.50", 51000, 0);
    // Mirror b's clock is three seconds ahead.
    let mut skewed = seen.clone();
    skewed.first_us += 3_000_000;
    skewed.last_us += 3_000_000;
    // Only mirror b saw a second session, an hour later.
    let later = ssh_session("10.20.10.50", "203.0.113.50", 51001, 3600);
    // While it was open, the internal end opened RDP to a CT console (reach).
    let reach = setten_agent::findings::Body::Lateral(setten_agent::findings::Lateral {
        client: ip("10.20.10.50"),
        server: ip("10.20.20.40"),
        service: setten_agent::classify::Service::Rdp,
        first_us: T0 + 60_000_000,
        last_us: T0 + 120_000_000,
    });
    let r = s.post(
        &a,
        "/api/v1/findings",
        batch("mirror-a", 1, vec![session_body(seen), reach]),
    );
    assert_eq!(r.status(), 200);
    let r = s.post(
        &b,
        "/api/v1/findings",
        batch(
            "mirror-b",
            1,
            vec![session_body(skewed), session_body(later)],
        ),
    );
    assert_eq!(r.status(), 200);

    let pts = s.get_json(&a, "/api/v1/connection-points");
    let list = pts["points"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{pts}");
    let p = &list[0];
    assert_eq!(p["agents"], json!(["mirror-a", "mirror-b"]));
    assert_eq!(p["sessions"], 2);
    assert_eq!(p["service"], "ssh");
    assert_eq!(p["ledger"]["status"], "no_ledger");
    let id = p["id"].as_str().unwrap();

    let one = s.get_json(&a, &format!("/api/v1/connection-points/{id}"));
    assert_eq!(&one, p);
    let r = s.get(&a, "/api/v1/connection-points/cp-0000000000000000");
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("cp-0000000000000000"));

    // Filters.
    let n = |q: &str| {
        s.get_json(&a, &format!("/api/v1/connection-points?{q}"))["points"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(n("agent=mirror-a"), 1);
    assert_eq!(n("agent=mirror-c"), 0);
    assert_eq!(n("service=ssh"), 1);
    assert_eq!(n("service=rdp"), 0);
    assert_eq!(n("ledger=no_ledger"), 1);
    assert_eq!(n("risk=inbound_internet"), 0);
    assert_eq!(n("since=2026-10-05T09:30:00%2B09:00"), 1);
    assert_eq!(n("since=2026-10-06T00:00:00Z"), 0);
    assert_eq!(n("until=2026-10-04T23:59:59Z"), 0);
    assert_eq!(
        n("since=2026-10-04T00:00:00Z&until=2026-10-05T00:00:01Z"),
        1
    );
    let r = s.get(&a, "/api/v1/connection-points?service=smtp");
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["field"], "service");
    let r = s.get(&a, "/api/v1/connection-points?colour=red");
    assert_eq!(r.status(), 400);

    assert_eq!(p["reach"][0]["ip"], "10.20.20.40");
    let hosts = s.get_json(&a, "/api/v1/hosts");
    assert_eq!(hosts["hosts"][0]["ip"], "10.20.10.50");
    assert_eq!(hosts["hosts"][0]["points"], json!([id]));
    assert_eq!(hosts["hosts"][1]["ip"], "10.20.20.40");
    assert_eq!(hosts["hosts"][1]["points"], json!([]));
    assert_eq!(
        hosts["hosts"][1]["reached_through"],
        json!([{"point": id, "services": ["rdp"]}])
    );

    // Restarted, the collector rebuilds the same inventory from its store.
    let before = pts.clone();
    let data = s.data.clone();
    s.stop();
    let s = start(&data, false, unlimited());
    assert_eq!(s.get_json(&a, "/api/v1/connection-points"), before);
}

#[test]
fn a_ledger_import_changes_statuses_on_the_next_request() {
    let d = tempfile::tempdir().unwrap();
    let s = start(d.path(), false, unlimited());
    let token = s.enrol("m1", Role::Agent);
    let r = s.post(
        &token,
        "/api/v1/findings",
        batch(
            "m1",
            1,
            vec![session_body(ssh_session(
                "10.20.10.50",
                "203.0.113.50",
                51000,
                0,
            ))],
        ),
    );
    assert_eq!(r.status(), 200);
    let status = || {
        let v = s.get_json(&token, "/api/v1/connection-points");
        (
            v["points"][0]["ledger"]["status"]
                .as_str()
                .unwrap()
                .to_owned(),
            v["unseen"].clone(),
        )
    };
    assert_eq!(status().0, "no_ledger");

    let ledger = d.path().join("daicho.csv");
    std::fs::write(
        &ledger,
        "id,vendor,system,internal,far_end,service\n\
         L-1,Vendor A,PACS,10.20.10.50,203.0.113.50,ssh\n\
         L-2,Vendor B,Lab,10.20.30.1,198.51.100.1,rdp\n\
         L-3,Vendor C,Bad,not-an-address,198.51.100.2,rdp\n",
    )
    .unwrap();
    let imported = admin::import_ledger(&**s.state.store(), &ledger).unwrap();
    assert_eq!(imported.ledger.entries.len(), 2);
    assert_eq!(imported.ledger.errors.len(), 1);
    assert_eq!(imported.ledger.errors[0].row, 4);
    let (st, unseen) = status();
    assert_eq!(st, "registered");
    assert_eq!(unseen.as_array().unwrap().len(), 1);
    assert_eq!(unseen[0]["id"], "L-2");
    let v = s.get_json(&token, "/api/v1/connection-points?ledger=registered");
    assert_eq!(v["points"][0]["ledger"]["entry"], "L-1");

    // The latest import wins: the vendor moved its gateway.
    std::fs::write(
        &ledger,
        "id,vendor,system,internal,far_end,service\nL-1,Vendor A,PACS,10.20.10.50,198.51.100.77,ssh\n",
    )
    .unwrap();
    admin::import_ledger(&**s.state.store(), &ledger).unwrap();
    let v = s.get_json(&token, "/api/v1/connection-points");
    assert_eq!(v["points"][0]["ledger"]["status"], "drifted");
    assert_eq!(v["points"][0]["ledger"]["reasons"], json!(["far_end"]));

    // A file that cannot be read stores nothing and says why.
    let e = admin::import_ledger(&**s.state.store(), &d.path().join("missing.csv"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing.csv") && e.contains("cannot read the ledger"),
        "{e}"
    );
    let empty = d.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    assert!(admin::import_ledger(&**s.state.store(), &empty).is_err());
    assert_eq!(status().0, "drifted");
}

#[test]
fn heartbeats_update_last_seen_and_health() {
    let d = tempfile::tempdir().unwrap();
    let s = start(d.path(), false, unlimited());
    let token = s.enrol("m1", Role::Agent);
    let reader = s.enrol("report", Role::Reader);
    let hb = json!({"agent": "m1", "at_us": T0, "health": {"drops": 3, "spool_bytes": 1024}});
    let r = s.post(&token, "/api/v1/heartbeat", hb.to_string());
    assert_eq!(r.status(), 204);
    let agents = s.get_json(&reader, "/api/v1/agents");
    let m1 = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "m1")
        .unwrap();
    assert_eq!(m1["health"], json!({"drops": 3, "spool_bytes": 1024}));
    assert_eq!(m1["health_at"], "2026-10-05T00:00:00.000000Z");
    assert!(m1["last_seen"].is_string());
    assert_eq!(m1["role"], "agent");
    // An older report does not replace a newer one.
    let old = json!({"agent": "m1", "at_us": T0 - 1, "health": {"drops": 99}});
    assert_eq!(
        s.post(&token, "/api/v1/heartbeat", old.to_string())
            .status(),
        204
    );
    let agents = s.get_json(&reader, "/api/v1/agents");
    assert_eq!(agents["agents"][0]["health"]["drops"], 3);

    for (body, status, field) in [
        (
            json!({"agent": "m2", "at_us": 1, "health": {}}),
            403,
            "agent",
        ),
        (
            json!({"agent": "m1", "at_us": "soon", "health": {}}),
            400,
            "at_us",
        ),
        (
            json!({"agent": "m1", "at_us": 1, "health": []}),
            400,
            "health",
        ),
    ] {
        let r = s.post(&token, "/api/v1/heartbeat", body.to_string());
        assert_eq!(r.status(), status, "{body}");
        assert_eq!(r.json::<Value>().unwrap()["field"], field, "{body}");
    }
    let r = s.post(
        &reader,
        "/api/v1/heartbeat",
        json!({"agent": "report", "at_us": 1, "health": {}}).to_string(),
    );
    assert_eq!(r.status(), 403);
}

#[test]
fn the_rate_limit_answers_429_with_retry_after() {
    let d = tempfile::tempdir().unwrap();
    let limits = Limits {
        rate: Some(Rate {
            per_sec: 1,
            burst: 2,
        }),
        ..Limits::default()
    };
    let s = start(d.path(), false, limits);
    let a = s.enrol("m1", Role::Agent);
    let b = s.enrol("m2", Role::Agent);
    assert_eq!(s.get(&a, "/api/v1/agents").status(), 200);
    assert_eq!(s.get(&a, "/api/v1/agents").status(), 200);
    let r = s.post(
        &a,
        "/api/v1/findings",
        batch("m1", 1, vec![health_body(json!({}))]),
    );
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    assert_eq!(s.findings(), 0);
    // Another agent has its own allowance.
    assert_eq!(s.get(&b, "/api/v1/agents").status(), 200);
}

#[test]
fn findings_imported_while_serving_reach_the_inventory() {
    let d = tempfile::tempdir().unwrap();
    let s = start(d.path(), false, unlimited());
    let token = s.enrol("site-b", Role::Agent);
    let line = batch(
        "site-b",
        1,
        vec![session_body(ssh_session(
            "10.20.10.60",
            "203.0.113.60",
            52000,
            0,
        ))],
    );
    let file = d.path().join("site-b.setten");
    std::fs::write(
        &file,
        setten_collector::export::write("site-b", &token, &line),
    )
    .unwrap();
    // As `setten-collector import` does it: another store handle on the same file.
    let other = setten_collector::open_store(d.path()).unwrap();
    let done = admin::import_file(&*other, &file).unwrap();
    assert_eq!(done.ingested.stored, 1);
    assert_eq!(other.findings_count().unwrap(), 1);
    let pts = s.get_json(&token, "/api/v1/connection-points");
    assert_eq!(pts["points"][0]["agents"], json!(["site-b"]));
    assert_eq!(pts["points"][0]["internal"]["ip"], "10.20.10.60");
}

#[test]
fn unknown_paths_are_404_in_json() {
    let d = tempfile::tempdir().unwrap();
    let s = start(d.path(), false, unlimited());
    let token = s.enrol("m1", Role::Agent);
    let r = s.get(&token, "/api/v2/points");
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().unwrap()["error"].is_string());
}

#[test]
fn connections_beyond_the_cap_are_closed_and_counted() {
    let d = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_connections: 1,
        ..unlimited()
    };
    let s = start(d.path(), false, limits);
    let token = s.enrol("m1", Role::Agent);
    // Each request on its own connection, closed after the answer.
    let fresh = |path: &str| {
        reqwest::blocking::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
            .get(s.url(path))
            .bearer_auth(&token)
            .send()
    };
    // The server notices a closed connection a moment after the client closes it.
    let eventually = |path: &str| {
        for _ in 0..50 {
            if let Ok(r) = fresh(path) {
                return r;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("{path}: no connection accepted");
    };
    // An idle connection takes the only place.
    let idle = std::net::TcpStream::connect(s.addr).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        fresh("/api/v1/agents").is_err(),
        "a second connection is closed at once"
    );
    drop(idle);
    assert_eq!(eventually("/api/v1/agents").status(), 200);
    let metrics = eventually("/metrics").text().unwrap();
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("setten_connections_refused_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(refused >= 1, "{metrics}");
}
