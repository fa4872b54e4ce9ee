//! HTTPS with the self-signed certificate; plain HTTP only on loopback.

mod common;

use common::*;
use setten_collector::config::{Flags, ServeConfig, TlsSource};
use setten_collector::token::Role;
use setten_collector::{ServeError, Server, Transport};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_setten-collector"))
}

#[test]
fn https_works_with_the_self_signed_certificate_and_its_fingerprint_is_stable() {
    let d = tempfile::tempdir().unwrap();
    let s = start(d.path(), true, unlimited());
    let first = s.fingerprint.clone().unwrap();
    assert!(first.starts_with("sha256:") && first.len() == 71, "{first}");
    let token = s.enrol("m1", Role::Agent);

    // Trusting exactly that certificate, by address and by name.
    let r = s.client().get(s.url("/healthz")).send().unwrap();
    assert_eq!(r.status(), 200);
    let by_name = format!("https://localhost:{}/api/v1/agents", s.addr.port());
    let r = s.client().get(by_name).bearer_auth(&token).send().unwrap();
    assert_eq!(r.status(), 200);
    let r = s.post(
        &token,
        "/api/v1/findings",
        batch("m1", 1, vec![health_body(serde_json::json!({}))]),
    );
    assert_eq!(r.status(), 200);

    // A client that does not trust it is refused, and plain HTTP gets no answer.
    let strict = reqwest::blocking::Client::builder().build().unwrap();
    assert!(strict.get(s.url("/healthz")).send().is_err());
    let plain = format!("http://{}/healthz", s.addr);
    assert!(reqwest::blocking::get(plain)
        .map(|r| r.status() != 200)
        .unwrap_or(true));

    // What `setten-collector fingerprint` prints is what the server uses.
    let out = bin()
        .args(["fingerprint", "--data"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), first);

    // Restarted: the same certificate, so pinned agents keep working.
    s.stop();
    let s = start(d.path(), true, unlimited());
    assert_eq!(s.fingerprint.as_deref(), Some(first.as_str()));
    let r = s
        .client()
        .get(s.url("/api/v1/agents"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.findings(), 1);
}

#[test]
fn plain_http_is_refused_on_a_non_loopback_address() {
    let d = tempfile::tempdir().unwrap();
    // At the edge, with the reason.
    let e = ServeConfig::resolve(&Flags {
        listen: Some("0.0.0.0:0".into()),
        plain_http: true,
        data: Some(d.path().into()),
        ..Flags::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("refusing plain HTTP on 0.0.0.0:0") && e.contains("loopback"),
        "{e}"
    );

    // A configuration built by hand is refused by `prepare`, and a listener handed to
    // `run` directly is refused too.
    let mut cfg = config(d.path(), false, unlimited());
    cfg.listen = "0.0.0.0:0".parse().unwrap();
    assert_eq!(cfg.tls, TlsSource::Plain);
    assert!(matches!(
        Server::prepare(&cfg),
        Err(ServeError::PlainNotLoopback(_))
    ));
    let loopback = Server::prepare(&config(d.path(), false, unlimited())).unwrap();
    let state = loopback.state().clone();
    let open = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt.block_on(setten_collector::run(
        open,
        Transport::Plain,
        state,
        async {},
    ));
    assert!(matches!(r, Err(ServeError::PlainNotLoopback(_))), "{r:?}");

    // And by the binary, which exits with the message before listening.
    let out = bin()
        .args(["serve", "--plain-http", "--listen", "0.0.0.0:0", "--data"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing plain HTTP") && err.contains("--listen 127.0.0.1"),
        "{err}"
    );
}
