//! Load generator: a collector on loopback with a fresh data directory in /tmp, and
//! AGENTS concurrent agents each sending BATCHES batches of BATCH session findings.
//! With PACE_MS set, each agent sends one batch every PACE_MS milliseconds (agents
//! spread evenly over the period: an open-loop rate of AGENTS × BATCH × 1000 / PACE_MS
//! findings/s); without it, as fast as the collector answers. TLS=1 serves HTTPS with
//! the self-signed certificate.
//!
//! ```sh
//! PACE_MS=250 BATCH=100 BATCHES=60 cargo run --release -p setten-collector --example load
//! ```
//!
//! Prints findings/s and the p50/p99/max latency of `POST /api/v1/findings`.

use setten_agent::classify::{Evidence, Service};
use setten_agent::findings::{Batch, Body, Finding, SCHEMA};
use setten_agent::inventory::{Direction, Endpoint, Session};
use setten_collector::config::{Limits, ServeConfig, TlsSource};
use setten_collector::token::Role;
use setten_collector::{admin, Server};
use std::time::{Duration, Instant};

/// 2026-10-05T00:00:00Z.
const T0: u64 = 1_791_158_400_000_000;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Session `i` of agent `agent`: 200 internal hosts per agent, 50 far hosts.
fn session(agent: u64, i: u64) -> Session {
    let ip = |s: String| s.parse().expect("address");
    Session {
        transport: 6,
        client: Endpoint {
            ip: ip(format!("10.20.{}.{}", agent % 200, i % 200 + 1)),
            port: 40_000 + (i % 20_000) as u16,
        },
        server: Endpoint {
            ip: ip(format!("203.0.113.{}", i % 50)),
            port: 22,
        },
        direction: Direction::Outbound,
        service: Service::Ssh,
        protocol: "ssh".into(),
        vendor: None,
        product: None,
        evidence: vec![Evidence::new(
            "setten.ssh.banner",
            "ssh.server_banner",
            "SSH-2.0-OpenSSH_9.6",
        )],
        weak: None,
        non_standard_port: false,
        first_us: T0 + i * 1_000_000_000,
        last_us: T0 + i * 1_000_000_000 + 600_000_000,
        bytes: 10_000,
        packets: 100,
        vlan: 0,
        far_names: Vec::new(),
        internal_mac: None,
        versions: vec!["SSH-2.0-OpenSSH_9.6".into()],
        agents: Vec::new(),
    }
}

fn main() {
    let agents = env("AGENTS", 50);
    let per_batch = env("BATCH", 100);
    let batches = env("BATCHES", 60);
    let pace = env("PACE_MS", 0);
    let tls = std::env::var_os("TLS").is_some();

    let dir = tempfile::tempdir_in("/tmp").expect("data directory");
    let cfg = ServeConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        data: dir.path().into(),
        tls: if tls {
            TlsSource::SelfSigned
        } else {
            TlsSource::Plain
        },
        rules: None,
        limits: Limits {
            rate: None,
            ..Limits::default()
        },
        alerts: Default::default(),
    };
    let server = Server::prepare(&cfg).expect("collector");
    let addr = server.local_addr();
    let state = server.state().clone();
    let tokens: Vec<String> = (0..agents)
        .map(|a| {
            admin::add_agent(&**state.store(), &format!("a{a}"), Role::Agent)
                .expect("enrol")
                .1
        })
        .collect();
    // Bodies made before the clock starts.
    let bodies: Vec<Vec<String>> = (0..agents)
        .map(|a| {
            (0..batches)
                .map(|b| {
                    let findings = (0..per_batch)
                        .map(|k| {
                            let i = b * per_batch + k;
                            Finding {
                                seq: i + 1,
                                at_us: T0,
                                body: Body::Session(Box::new(session(a, i))),
                            }
                        })
                        .collect();
                    serde_json::to_string(&Batch {
                        schema: SCHEMA.into(),
                        agent: format!("a{a}"),
                        findings,
                    })
                    .expect("batch")
                })
                .collect()
        })
        .collect();

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = rt.spawn(server.run(async {
        let _ = stopped.await;
    }));
    let mut client = reqwest::Client::builder();
    if tls {
        let pem = std::fs::read(dir.path().join(setten_collector::tls::CERT_FILE)).expect("cert");
        client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"));
    }
    let client = client.build().expect("client");
    let url = format!(
        "{}://{addr}/api/v1/findings",
        if tls { "https" } else { "http" }
    );

    let start = Instant::now();
    let latencies: Vec<Duration> = rt.block_on(async {
        let tasks: Vec<_> = bodies
            .into_iter()
            .zip(tokens)
            .enumerate()
            .map(|(a, (bodies, token))| {
                let client = client.clone();
                let url = url.clone();
                tokio::spawn(async move {
                    // Spread the agents over the period.
                    tokio::time::sleep(Duration::from_micros(
                        pace * 1000 * a as u64 / agents.max(1),
                    ))
                    .await;
                    let mut tick = tokio::time::interval(Duration::from_millis(pace.max(1)));
                    let mut lat = Vec::with_capacity(bodies.len());
                    for body in bodies {
                        if pace > 0 {
                            tick.tick().await;
                        }
                        let t = Instant::now();
                        let r = client
                            .post(&url)
                            .bearer_auth(&token)
                            .body(body)
                            .send()
                            .await
                            .expect("request");
                        assert_eq!(r.status(), 200);
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("agent"));
        }
        all
    });
    let elapsed = start.elapsed();
    let mut lat = latencies;
    lat.sort();
    let q = |p: usize| {
        lat.get(lat.len().saturating_sub(1) * p / 100)
            .copied()
            .unwrap_or_default()
    };
    let total = agents * per_batch * batches;
    println!(
        "{agents} agents × {batches} batches × {per_batch} findings{}{}: {total} findings in {:.2} s = {:.0} findings/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        if pace > 0 { format!(", one batch per {pace} ms") } else { String::new() },
        if tls { ", HTTPS" } else { ", HTTP" },
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        q(50).as_secs_f64() * 1e3,
        q(99).as_secs_f64() * 1e3,
        q(100).as_secs_f64() * 1e3,
    );
    let stored = state.store().findings_count().expect("count");
    assert_eq!(stored, total, "every answered finding is stored");
    let t = Instant::now();
    let view = state.merged().view(&**state.store()).expect("view");
    println!(
        "stored {stored}; {} connection points derived in {:.0} ms",
        view.points.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let _ = stop.send(());
    rt.block_on(serving).expect("join").expect("serve");
}
