//! Shipping the spool to the collector over HTTPS.
//!
//! `POST {URL}/api/v1/findings` with a bearer token and a [`Batch`] of at most
//! [`MAX_BATCH_FINDINGS`] findings and [`MAX_BATCH_BYTES`] of JSON. A 2xx means every
//! finding of the batch is stored, and only then are they deleted from the spool. The
//! collector is idempotent by (agent, `seq`), so a batch is simply sent again when the
//! answer was lost.
//!
//! Answers are sorted into three kinds: delivered (2xx); retryable (408, 429 with its
//! `Retry-After`, 5xx, connection failures), retried with exponential backoff until a
//! time budget without progress runs out; and refused (any other status, or a
//! certificate that is not the one trusted), which stops shipping at once because
//! sending the same batch again cannot succeed. In both failure cases the findings stay
//! in the spool.
//!
//! Trust: `--pin sha256:HEX` accepts exactly the collector certificate with that SHA-256
//! (the collector's self-signed certificate), checking the handshake signatures against
//! it; `--ca FILE` trusts only the CA certificates of a PEM file; otherwise the public
//! Web PKI roots. Plain `http://` is refused unless the host is a loopback address.

use super::spool::{Spool, SpoolError};
use super::{printable, Token};
use crate::findings::{Batch, Finding, MAX_BATCH_FINDINGS, SCHEMA};
use backon::{BackoffBuilder, BlockingRetryable, ExponentialBackoff, ExponentialBuilder};
use reqwest::Url;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;

/// The most JSON sent in one request (one finding larger than this goes alone).
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// The most of a response body read.
pub const MAX_RESPONSE_BYTES: u64 = 64 << 10;
/// The most of a CA file read.
pub const MAX_CA_FILE_BYTES: u64 = 1 << 20;
/// The ingest path under the collector's URL.
pub const INGEST_PATH: &str = "/api/v1/findings";
/// Connecting (TCP and TLS) gives up after this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One request gives up after this long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// No request gets less time than this, even when the retry budget is nearly spent.
const MIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The collector's message is shown up to this many characters.
const MAX_MESSAGE_CHARS: usize = 500;

/// A bad collector address or trust setting, found before anything is sent.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The URL cannot be used.
    #[error("collector URL {url:?}: {what}")]
    Url {
        /// As given.
        url: String,
        /// What is wrong.
        what: String,
    },
    /// The pin is not `sha256:` and 64 hex digits.
    #[error("--pin {given:?}: expected sha256: followed by 64 hex digits (the SHA-256 of the collector's certificate, DER)")]
    Pin {
        /// As given.
        given: String,
    },
    /// The CA file cannot be used.
    #[error("CA file {}: {what}", path.display())]
    Ca {
        /// File.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The TLS or HTTP client could not be built.
    #[error("building the HTTPS client for {url}: {what}")]
    Build {
        /// Collector URL.
        url: String,
        /// What failed.
        what: String,
    },
}

/// The SHA-256 of a certificate (DER).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Parses `sha256:` followed by 64 hex digits (colons between pairs allowed, as
    /// `openssl x509 -fingerprint -sha256` prints them).
    pub fn parse(text: &str) -> Result<Fingerprint, ClientError> {
        let bad = || ClientError::Pin {
            given: printable(text, 100),
        };
        let t = text.trim();
        let hex_part = t
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("sha256:"))
            .and_then(|_| t.get(7..))
            .ok_or_else(bad)?;
        let digits: String = hex_part.chars().filter(|c| *c != ':').collect();
        let mut out = [0u8; 32];
        hex::decode_to_slice(&digits, &mut out).map_err(|_| bad())?;
        Ok(Fingerprint(out))
    }

    /// The fingerprint of a certificate.
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Which collector certificates are trusted.
#[derive(Clone, Debug)]
pub enum Trust {
    /// Exactly the certificate with this fingerprint.
    Pin(Fingerprint),
    /// Certificates issued by the CAs in this PEM file.
    CaFile(PathBuf),
    /// The public Web PKI.
    WebPki,
}

/// The crypto provider for our own TLS configurations.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Accepts exactly one server certificate, by the SHA-256 of its DER, and checks the
/// handshake signatures with that certificate's key. The certificate's names and dates
/// are not checked: the pin names the certificate itself (a self-signed collector
/// certificate has no CA to vouch for it).
#[derive(Debug)]
pub struct PinVerifier {
    pin: Fingerprint,
    provider: Arc<CryptoProvider>,
    /// The fingerprint of the last certificate refused, for the error message.
    refused: Mutex<Option<Fingerprint>>,
}

impl PinVerifier {
    /// A verifier for `pin`, using `provider`'s signature algorithms.
    pub fn new(pin: Fingerprint, provider: Arc<CryptoProvider>) -> PinVerifier {
        PinVerifier {
            pin,
            provider,
            refused: Mutex::new(None),
        }
    }

    /// The fingerprint of the last certificate refused, cleared.
    pub fn take_refused(&self) -> Option<Fingerprint> {
        self.refused.lock().ok().and_then(|mut r| r.take())
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = Fingerprint::of(end_entity.as_ref());
        if seen == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            if let Ok(mut r) = self.refused.lock() {
                *r = Some(seen);
            }
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Reads the CA certificates of a PEM file.
fn load_roots(path: &Path) -> Result<rustls::RootCertStore, ClientError> {
    let bad = |what: String| ClientError::Ca {
        path: path.to_owned(),
        what,
    };
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut pem = Vec::new();
    file.take(MAX_CA_FILE_BYTES + 1)
        .read_to_end(&mut pem)
        .map_err(|e| bad(e.to_string()))?;
    if pem.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(bad(format!("larger than {MAX_CA_FILE_BYTES} bytes")));
    }
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let cert = cert.map_err(|e| bad(format!("certificate {}: {e}", i + 1)))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("certificate {}: {e}", i + 1)))?;
    }
    if roots.is_empty() {
        return Err(bad(
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into(),
        ));
    }
    Ok(roots)
}

/// Whether a URL host is a loopback address (or `localhost`).
fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some(h) if h.eq_ignore_ascii_case("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// The ingest URL under a collector URL.
pub fn ingest_url(given: &str) -> Result<Url, ClientError> {
    let bad = |what: &str| ClientError::Url {
        url: printable(given, 200),
        what: what.to_owned(),
    };
    let mut url = Url::parse(given.trim()).map_err(|e| bad(&e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(bad(
                "plain http:// is only allowed to a loopback address (127.0.0.1, ::1, localhost); use https:// with --pin or --ca",
            ))
        }
        _ => return Err(bad("the scheme must be https:// (or http:// on loopback)")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("there is no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials do not belong in the URL; the token is read from --token-file or SETTEN_TOKEN",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a query or fragment is not expected"));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    if !path.ends_with(INGEST_PATH) {
        url.set_path(&format!("{path}{INGEST_PATH}"));
    }
    Ok(url)
}

/// Why a request did not deliver its batch.
#[derive(Debug, Error)]
pub enum SendError {
    /// The collector refused the batch; sending it again cannot succeed.
    #[error("{url} refused the batch: HTTP {status}: {message}")]
    Refused {
        /// Ingest URL.
        url: String,
        /// Status.
        status: u16,
        /// The collector's message.
        message: String,
    },
    /// The collector's certificate is not the one trusted.
    #[error("{url}: {message}")]
    Certificate {
        /// Ingest URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The collector answered with a status worth retrying.
    #[error("{url}: HTTP {status}: {message}")]
    Busy {
        /// Ingest URL.
        url: String,
        /// Status.
        status: u16,
        /// The collector's message.
        message: String,
        /// What `Retry-After` asked for.
        retry_after: Option<Duration>,
    },
    /// No answer (connection refused, timeout, reset, TLS failure other than trust).
    #[error("{url}: {message}")]
    Unreachable {
        /// Ingest URL.
        url: String,
        /// What happened.
        message: String,
    },
}

impl SendError {
    /// Whether sending the same batch again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Busy { .. } | SendError::Unreachable { .. })
    }

    /// The wait the collector asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Busy { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The collector's answer to a delivered batch (every field optional: only the status
/// decides).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Ack {
    /// Findings newly stored.
    #[serde(default)]
    pub stored: Option<u64>,
    /// Findings it already had.
    #[serde(default)]
    pub duplicates: Option<u64>,
    /// The highest `seq` it holds for this agent.
    #[serde(default)]
    pub last_seq: Option<u64>,
}

/// A collector to ship to.
pub struct Collector {
    http: reqwest::blocking::Client,
    url: Url,
    token: Token,
    pin: Option<Arc<PinVerifier>>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("url", &self.url.as_str())
            .field("agent", &self.token.agent())
            .finish()
    }
}

impl Collector {
    /// Checks the URL and trust settings and builds the client. Nothing is sent.
    pub fn new(url: &str, token: Token, trust: Trust) -> Result<Collector, ClientError> {
        let url = ingest_url(url)?;
        let build = |what: String| ClientError::Build {
            url: url.to_string(),
            what,
        };
        let mut builder = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(1)
            .user_agent(concat!("setten-agent/", env!("CARGO_PKG_VERSION")));
        let mut pin = None;
        if url.scheme() == "https" {
            builder = builder.https_only(true);
            let tls = || {
                rustls::ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| build(e.to_string()))
            };
            match trust {
                Trust::Pin(fp) => {
                    let v = Arc::new(PinVerifier::new(fp, provider()));
                    let cfg = tls()?
                        .dangerous()
                        .with_custom_certificate_verifier(v.clone())
                        .with_no_client_auth();
                    builder = builder.use_preconfigured_tls(cfg);
                    pin = Some(v);
                }
                Trust::CaFile(path) => {
                    let roots = load_roots(&path)?;
                    let cfg = tls()?.with_root_certificates(roots).with_no_client_auth();
                    builder = builder.use_preconfigured_tls(cfg);
                }
                Trust::WebPki => {}
            }
        }
        let http = builder.build().map_err(|e| build(error_chain(&e)))?;
        Ok(Collector {
            http,
            url,
            token,
            pin,
        })
    }

    /// The ingest URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The agent name findings are sent under.
    pub fn agent(&self) -> &str {
        self.token.agent()
    }

    /// Sends one batch (already encoded) and classifies the answer.
    pub fn send(&self, body: Vec<u8>, timeout: Duration) -> Result<Ack, SendError> {
        let url = self.url.to_string();
        let res = self
            .http
            .post(self.url.clone())
            .bearer_auth(self.token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(timeout)
            .body(body)
            .send();
        let resp = match res {
            Ok(r) => r,
            Err(e) => {
                if let Some(seen) = self.pin.as_ref().and_then(|p| p.take_refused()) {
                    let pinned = self.pin.as_ref().map(|p| p.pin);
                    return Err(SendError::Certificate {
                        url,
                        message: format!(
                            "the collector's certificate is {seen}, not the pinned {} (if the collector's certificate was replaced, check the new fingerprint on the collector and pin it)",
                            pinned.map(|p| p.to_string()).unwrap_or_default()
                        ),
                    });
                }
                if let Some(rustls::Error::InvalidCertificate(c)) = find_rustls_error(&e) {
                    return Err(SendError::Certificate {
                        url,
                        message: format!("the collector's certificate is not trusted: {c}"),
                    });
                }
                // The URL leads the message already.
                return Err(SendError::Unreachable {
                    url,
                    message: error_chain(&e.without_url()),
                });
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| printable(l, 200));
        let mut text = Vec::new();
        let read = resp.take(MAX_RESPONSE_BYTES).read_to_end(&mut text);
        if status.is_success() {
            // The status is the promise; the counts are for the log.
            let ack = serde_json::from_slice::<Ack>(&text).unwrap_or_default();
            return Ok(ack);
        }
        let mut message = message_of(&text);
        if let Err(e) = read {
            if message.is_empty() {
                message = format!("(reading the answer failed: {e})");
            }
        }
        if message.is_empty() {
            message = status.canonical_reason().unwrap_or("no message").to_owned();
        }
        let code = status.as_u16();
        if code == 408 || code == 429 || status.is_server_error() {
            return Err(SendError::Busy {
                url,
                status: code,
                message,
                retry_after,
            });
        }
        if status.is_redirection() {
            message = format!(
                "redirected to {} (not followed: give the collector's own URL)",
                location.unwrap_or_else(|| "nowhere".into())
            );
        }
        Err(SendError::Refused {
            url,
            status: code,
            message,
        })
    }
}

/// `Retry-After` in seconds (RFC 9110 §10.2.3). The HTTP-date form is not read: the
/// backoff's own delay applies then.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let secs: u64 = v.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(86_400)))
}

/// The collector's message: the `error` or `message` of a JSON object, else the text.
fn message_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice(body) {
        for key in ["error", "message", "detail"] {
            if let Some(serde_json::Value::String(s)) = m.get(key) {
                return printable(s, MAX_MESSAGE_CHARS);
            }
        }
    }
    printable(text.trim(), MAX_MESSAGE_CHARS)
}

/// An error and its causes on one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    printable(&out, 1000)
}

/// The rustls error behind a request error, if any. hyper and tokio-rustls wrap it in
/// `io::Error`s (two deep), whose `source()` skips the wrapped error: look inside them.
fn find_rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(r) = c.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        cur = match c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
    }
    None
}

/// How long to keep trying.
#[derive(Clone, Copy, Debug)]
pub struct ShipOptions {
    /// Time allowed without a delivered batch before giving up.
    pub budget: Duration,
    /// The first backoff delay.
    pub min_delay: Duration,
    /// The longest backoff delay.
    pub max_delay: Duration,
}

impl ShipOptions {
    /// The defaults with a budget.
    pub fn with_budget(budget: Duration) -> ShipOptions {
        ShipOptions {
            budget,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// What a shipping run delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shipped {
    /// Findings acknowledged (and deleted from the spool).
    pub delivered: u64,
    /// Of those, how many the collector said it already had.
    pub duplicates: u64,
    /// Requests that got a 2xx.
    pub batches: u64,
}

/// Why shipping stopped with findings still spooled.
#[derive(Debug, Error)]
pub enum ShipError {
    /// The collector refused a batch or its certificate is not trusted: sending again
    /// will not help.
    #[error("{error}")]
    Refused {
        /// The refusal.
        error: SendError,
        /// What had been delivered before.
        shipped: Shipped,
    },
    /// The collector stayed unreachable or busy for the whole budget.
    #[error("gave up after {:.0} s: {error}", after.as_secs_f64())]
    GaveUp {
        /// The last failure.
        error: SendError,
        /// How long it was tried.
        after: Duration,
        /// What had been delivered before.
        shipped: Shipped,
    },
    /// The spool failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// The backoff: exponential with jitter, at least the collector's `Retry-After`, and
/// never past the deadline (when the collector asks to wait beyond it, stop at once).
struct Budget {
    inner: ExponentialBackoff,
    deadline: Instant,
    hint: Arc<Mutex<Option<Duration>>>,
}

impl Iterator for Budget {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.inner.next()?;
        let hint = self.hint.lock().ok().and_then(|mut h| h.take());
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        match hint {
            Some(h) if h > left => None,
            Some(h) => Some(h.max(delay).min(left)),
            None => Some(delay.min(left)),
        }
    }
}

/// Encodes findings as one batch of at most [`MAX_BATCH_BYTES`] (unless the first finding
/// alone is larger). Returns the JSON and how many findings it holds.
pub fn encode_batch(
    agent: &str,
    findings: &[Finding],
) -> Result<(Vec<u8>, usize), serde_json::Error> {
    let empty = Batch {
        schema: SCHEMA.into(),
        agent: agent.into(),
        findings: Vec::new(),
    };
    let mut size = serde_json::to_vec(&empty)?.len();
    let mut n = 0;
    for (i, f) in findings.iter().enumerate().take(MAX_BATCH_FINDINGS) {
        let len = serde_json::to_vec(f)?.len() + usize::from(i > 0);
        if n > 0 && size + len > MAX_BATCH_BYTES {
            break;
        }
        size += len;
        n += 1;
    }
    let batch = Batch {
        findings: findings[..n].to_vec(),
        ..empty
    };
    Ok((serde_json::to_vec(&batch)?, n))
}

/// Ships everything spooled, oldest first, deleting each batch after its 2xx.
pub fn ship(spool: &mut Spool, to: &Collector, opts: ShipOptions) -> Result<Shipped, ShipError> {
    let mut done = Shipped::default();
    loop {
        let findings = spool.peek_after(0, MAX_BATCH_FINDINGS, MAX_BATCH_BYTES)?;
        if findings.is_empty() {
            return Ok(done);
        }
        let (body, n) =
            encode_batch(to.agent(), &findings).map_err(|source| SpoolError::Encode {
                path: spool.path().to_owned(),
                source,
            })?;
        let last_seq = findings[n - 1].seq;
        let started = Instant::now();
        let deadline = started + opts.budget;
        let hint = Arc::new(Mutex::new(None));
        let backoff = Budget {
            inner: ExponentialBuilder::default()
                .with_min_delay(opts.min_delay)
                .with_max_delay(opts.max_delay)
                .with_jitter()
                .without_max_times()
                .build(),
            deadline,
            hint: hint.clone(),
        };
        let sent = (|| {
            let left = deadline.saturating_duration_since(Instant::now());
            to.send(
                body.clone(),
                left.clamp(MIN_REQUEST_TIMEOUT, REQUEST_TIMEOUT),
            )
        })
        .retry(backoff)
        .sleep(std::thread::sleep)
        .when(|e: &SendError| {
            if let Some(h) = e.retry_after() {
                if let Ok(mut slot) = hint.lock() {
                    *slot = Some(h);
                }
            }
            e.is_retryable()
        })
        .notify(|e: &SendError, d: Duration| {
            tracing::warn!("{e}; trying again in {:.1} s", d.as_secs_f64());
        })
        .call();
        match sent {
            Ok(ack) => {
                if let (Some(a), Some(b)) = (ack.stored, ack.duplicates) {
                    if a.saturating_add(b) != n as u64 {
                        // The status is the promise; a miscount is worth a word.
                        tracing::warn!(
                            "{} answered 2xx for {n} findings but counted {a} stored and {b} duplicates",
                            to.url()
                        );
                    }
                }
                spool.ack_through(last_seq)?;
                done.delivered += n as u64;
                done.duplicates += ack.duplicates.unwrap_or(0);
                done.batches += 1;
                tracing::debug!(
                    findings = n,
                    last_seq,
                    stored = ack.stored,
                    duplicates = ack.duplicates,
                    "batch delivered to {}",
                    to.url()
                );
            }
            Err(error) if error.is_retryable() => {
                return Err(ShipError::GaveUp {
                    error,
                    after: started.elapsed(),
                    shipped: done,
                })
            }
            Err(error) => {
                return Err(ShipError::Refused {
                    error,
                    shipped: done,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    fn token() -> Token {
        Token::parse("mirror-1.secret", "test").unwrap()
    }

    #[test]
    fn plain_http_only_on_loopback() {
        for ok in [
            "http://127.0.0.1:8443",
            "http://[::1]:1/",
            "http://localhost",
            "https://collector.example",
        ] {
            ingest_url(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "http://10.0.0.5:8080",
            "http://collector.example",
            "ftp://127.0.0.1",
            "https://user:pw@collector.example",
            "https://c.example/?a=1",
            "not a url",
        ] {
            assert!(ingest_url(bad).is_err(), "{bad}");
        }
        let e = ingest_url("http://10.0.0.5:8080").unwrap_err().to_string();
        assert!(e.contains("10.0.0.5") && e.contains("loopback"), "{e}");
    }

    #[test]
    fn the_ingest_path_is_appended_once() {
        assert_eq!(
            ingest_url("https://c.example:8443").unwrap().as_str(),
            "https://c.example:8443/api/v1/findings"
        );
        assert_eq!(
            ingest_url("https://c.example/setten/").unwrap().as_str(),
            "https://c.example/setten/api/v1/findings"
        );
        assert_eq!(
            ingest_url("https://c.example/api/v1/findings")
                .unwrap()
                .as_str(),
            "https://c.example/api/v1/findings"
        );
    }

    #[test]
    fn fingerprints_parse_in_both_spellings() {
        let hexs = "ab".repeat(32);
        let a = Fingerprint::parse(&format!("sha256:{hexs}")).unwrap();
        let colons = vec!["AB"; 32].join(":");
        let b = Fingerprint::parse(&format!("SHA256:{colons}")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), format!("sha256:{hexs}"));
        for bad in [
            "",
            "ab",
            &hexs,
            "sha256:abc",
            &format!("md5:{hexs}"),
            "sha256:日本",
        ] {
            assert!(Fingerprint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(
            parse_retry_after("99999999999"),
            Some(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn the_collectors_message_is_taken_from_json_or_text_and_made_printable() {
        assert_eq!(
            message_of(br#"{"error":"findings[3].seq: must be positive"}"#),
            "findings[3].seq: must be positive"
        );
        assert_eq!(message_of(b"bad\r\nthing"), "bad\\r\\nthing");
        assert_eq!(message_of(&[0xff, b'x']), "\u{fffd}x");
    }

    #[test]
    fn batches_stop_at_the_byte_cap_but_carry_at_least_one() {
        let big = |seq| Finding {
            seq,
            at_us: 1,
            body: crate::findings::Body::Health(
                [(
                    "pad".to_owned(),
                    serde_json::Value::from("x".repeat(MAX_BATCH_BYTES / 3)),
                )]
                .into_iter()
                .collect(),
            ),
        };
        let fs: Vec<Finding> = (1..=4).map(big).collect();
        let (json, n) = encode_batch("a", &fs).unwrap();
        assert_eq!(n, 2);
        assert!(json.len() <= MAX_BATCH_BYTES);
        let b: Batch = serde_json::from_slice(&json).unwrap();
        assert_eq!(b.findings, fs[..2]);
        let huge = Finding {
            seq: 9,
            at_us: 1,
            body: crate::findings::Body::Health(
                [(
                    "pad".to_owned(),
                    serde_json::Value::from("x".repeat(MAX_BATCH_BYTES)),
                )]
                .into_iter()
                .collect(),
            ),
        };
        assert_eq!(encode_batch("a", &[huge]).unwrap().1, 1);
    }

    /// A self-signed certificate and its key, as the collector generates on first start.
    fn self_signed() -> (
        CertificateDer<'static>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) {
        self_signed_pem().0
    }

    /// The same, with the certificate's PEM text.
    #[allow(clippy::type_complexity)] // a test helper's tuple, read at once
    fn self_signed_pem() -> (
        (
            CertificateDer<'static>,
            rustls::pki_types::PrivateKeyDer<'static>,
        ),
        String,
    ) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der());
        ((ck.cert.der().clone(), key.into()), ck.cert.pem())
    }

    #[test]
    fn the_pin_verifier_accepts_exactly_the_pinned_certificate() {
        let (cert, _) = self_signed();
        let (other, _) = self_signed();
        let v = PinVerifier::new(Fingerprint::of(&cert), provider());
        let name = ServerName::try_from("collector.example").unwrap();
        assert!(v
            .verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
            .is_ok());
        assert!(v.take_refused().is_none());
        assert!(v
            .verify_server_cert(&other, &[], &name, &[], UnixTime::now())
            .is_err());
        assert_eq!(v.take_refused(), Some(Fingerprint::of(&other)));
        assert!(!v.supported_verify_schemes().is_empty());
    }

    /// A one-connection HTTPS server: TLS with `cert`, answers 200 to one request.
    fn https_server(
        cert: CertificateDer<'static>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> (u16, std::thread::JoinHandle<Option<Vec<u8>>>) {
        let cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().ok()?;
            tcp.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
            let conn = rustls::ServerConnection::new(Arc::new(cfg)).ok()?;
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = tls.read(&mut buf).ok()?;
                if n == 0 {
                    return None;
                }
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if req.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            let body = br#"{"stored":1,"duplicates":0,"last_seq":1}"#;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            tls.write_all(head.as_bytes()).ok()?;
            tls.write_all(body).ok()?;
            tls.flush().ok()?;
            tls.conn.send_close_notify();
            let _ = tls.flush();
            Some(req)
        });
        (port, h)
    }

    #[test]
    fn a_pinned_collector_is_reached_over_tls_and_another_certificate_is_refused_for_good() {
        let (cert, key) = self_signed();
        let pin = Fingerprint::of(&cert);
        let (port, server) = https_server(cert, key);
        let c = Collector::new(
            &format!("https://127.0.0.1:{port}"),
            token(),
            Trust::Pin(pin),
        )
        .unwrap();
        let ack = c.send(b"{}".to_vec(), Duration::from_secs(10)).unwrap();
        assert_eq!(ack.stored, Some(1));
        let req = String::from_utf8(server.join().unwrap().unwrap()).unwrap();
        assert!(
            req.starts_with("POST /api/v1/findings HTTP/1.1\r\n"),
            "{req}"
        );
        assert!(
            req.to_ascii_lowercase()
                .contains("authorization: bearer mirror-1.secret\r\n"),
            "{req}"
        );

        let (cert, key) = self_signed();
        let (port, _server) = https_server(cert.clone(), key);
        let c = Collector::new(
            &format!("https://127.0.0.1:{port}"),
            token(),
            Trust::Pin(pin),
        )
        .unwrap();
        let e = c.send(b"{}".to_vec(), Duration::from_secs(10)).unwrap_err();
        assert!(!e.is_retryable(), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(&Fingerprint::of(&cert).to_string()) && msg.contains(&pin.to_string()),
            "{msg}"
        );
    }

    #[test]
    fn a_collector_signed_by_the_given_ca_is_trusted_and_another_is_not() {
        // The collector's certificate is its own CA here (self-signed, with the name).
        let ((cert, key), pem) = self_signed_pem();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, pem).unwrap();
        let (port, server) = https_server(cert, key);
        let c = Collector::new(
            &format!("https://localhost:{port}"),
            token(),
            Trust::CaFile(ca.clone()),
        )
        .unwrap();
        c.send(b"{}".to_vec(), Duration::from_secs(10)).unwrap();
        server.join().unwrap().unwrap();

        let (cert, key) = self_signed();
        let (port, _server) = https_server(cert, key);
        let c = Collector::new(
            &format!("https://localhost:{port}"),
            token(),
            Trust::CaFile(ca),
        )
        .unwrap();
        let e = c.send(b"{}".to_vec(), Duration::from_secs(10)).unwrap_err();
        assert!(matches!(e, SendError::Certificate { .. }), "{e}");

        std::fs::write(dir.path().join("empty.pem"), "nothing here").unwrap();
        let e = Collector::new(
            "https://localhost",
            token(),
            Trust::CaFile(dir.path().join("empty.pem")),
        )
        .unwrap_err();
        assert!(e.to_string().contains("empty.pem"), "{e}");
    }
}
