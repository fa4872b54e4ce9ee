//! A real collector on 127.0.0.1 (port 0) over a real SQLite file in a temporary
//! directory, driven by a blocking HTTP client, and findings to send it.
#![allow(dead_code)] // Each test file uses its own part of this.

use setten_agent::classify::{Evidence, Service};
use setten_agent::findings::{Batch, Body, Finding, SCHEMA};
use setten_agent::inventory::{Direction, Endpoint, Session};
use setten_collector::api::AppState;
use setten_collector::config::{Limits, ServeConfig, TlsSource};
use setten_collector::token::Role;
use setten_collector::{admin, Server};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// 2026-10-05T00:00:00Z (09:00 in Japan, a Monday).
pub const T0: u64 = 1_791_158_400_000_000;

pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    pub fingerprint: Option<String>,
    pub data: PathBuf,
    tls: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

pub fn config(data: &Path, tls: bool, limits: Limits) -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data: data.to_owned(),
        tls: if tls {
            TlsSource::SelfSigned
        } else {
            TlsSource::Plain
        },
        rules: None,
        limits,
        alerts: Default::default(),
    }
}

/// Starts a collector; it stops when dropped.
pub fn start(data: &Path, tls: bool, limits: Limits) -> Running {
    let server = Server::prepare(&config(data, tls, limits)).expect("prepare");
    let addr = server.local_addr();
    let state = server.state().clone();
    let fingerprint = server.fingerprint().map(str::to_owned);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(server.run(async {
            let _ = rx.await;
        }))
        .expect("server run");
    });
    Running {
        addr,
        state,
        fingerprint,
        data: data.to_owned(),
        tls,
        stop: Some(tx),
        thread: Some(thread),
    }
}

/// Limits for tests: the defaults without the rate limit.
pub fn unlimited() -> Limits {
    Limits {
        rate: None,
        ..Limits::default()
    }
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    pub fn client(&self) -> reqwest::blocking::Client {
        let mut b = reqwest::blocking::Client::builder();
        if self.tls {
            let pem = std::fs::read(self.data.join(setten_collector::tls::CERT_FILE)).unwrap();
            b = b
                .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
                .tls_built_in_root_certs(false);
        }
        b.build().unwrap()
    }

    pub fn enrol(&self, name: &str, role: Role) -> String {
        admin::add_agent(&**self.state.store(), name, role)
            .unwrap()
            .1
    }

    pub fn findings(&self) -> u64 {
        self.state.store().findings_count().unwrap()
    }

    pub fn post(
        &self,
        token: &str,
        path: &str,
        body: impl Into<reqwest::blocking::Body>,
    ) -> reqwest::blocking::Response {
        self.client()
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap()
    }

    pub fn get(&self, token: &str, path: &str) -> reqwest::blocking::Response {
        self.client()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .unwrap()
    }

    pub fn get_json(&self, token: &str, path: &str) -> serde_json::Value {
        let r = self.get(token, path);
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().unwrap()
    }

    /// Stops the server and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// An outbound SSH session from `inside` to `far`, starting `start_s` after T0 and
/// lasting ten minutes.
pub fn ssh_session(inside: &str, far: &str, sport: u16, start_s: u64) -> Session {
    Session {
        transport: 6,
        client: Endpoint {
            ip: ip(inside),
            port: sport,
        },
        server: Endpoint {
            ip: ip(far),
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
        first_us: T0 + start_s * 1_000_000,
        last_us: T0 + (start_s + 600) * 1_000_000,
        bytes: 10_000,
        packets: 100,
        vlan: 0,
        far_names: Vec::new(),
        internal_mac: None,
        versions: vec!["SSH-2.0-OpenSSH_9.6".into()],
        agents: Vec::new(),
    }
}

/// A batch of `agent` with the bodies numbered from `first_seq`.
pub fn batch(agent: &str, first_seq: u64, bodies: Vec<Body>) -> String {
    let b = Batch {
        schema: SCHEMA.into(),
        agent: agent.into(),
        findings: bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| Finding {
                seq: first_seq + i as u64,
                at_us: T0,
                body,
            })
            .collect(),
    };
    serde_json::to_string(&b).unwrap()
}

pub fn session_body(s: Session) -> Body {
    Body::Session(Box::new(s))
}

pub fn health_body(v: serde_json::Value) -> Body {
    match v {
        serde_json::Value::Object(m) => Body::Health(m),
        _ => panic!("health is an object"),
    }
}
