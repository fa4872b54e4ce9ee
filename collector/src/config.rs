//! Configuration of `setten-collector serve`: a TOML file and command-line flags,
//! validated once into a [`ServeConfig`] that cannot be wrong afterwards. Flags override
//! the file. Unknown keys are refused with the file, line and key named; relative paths
//! in the file are relative to the file's directory.
//!
//! ```toml
//! listen = "0.0.0.0:8443"
//! data = "/var/lib/setten-collector"
//! tls_cert = "/etc/setten/collector.crt"   # with tls_key; else a self-signed one
//! tls_key = "/etc/setten/collector.key"
//! plain_http = false                       # loopback only
//! rules = "/etc/setten/rules"
//! max_body_bytes = 16777216
//! rate_per_sec = 50                        # per agent; 0 turns the limit off
//! burst = 100
//! max_connections = 1024
//!
//! [alerts]                                 # see crate::alerts::config
//! throttle_seconds = 1800
//! [[alerts.channel]]
//! name = "oncall-mail"
//! type = "email"
//! ```

use crate::ratelimit::Rate;
use serde::Deserialize;
use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where `serve` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8443";
/// The data directory unless told otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/setten-collector";
/// Largest request body by default (16 MiB).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 16 << 20;
/// Smallest `max_body_bytes` accepted: a full batch must still fit something.
pub const MIN_MAX_BODY_BYTES: u64 = 64 << 10;
/// Largest `max_body_bytes` accepted.
pub const MAX_MAX_BODY_BYTES: u64 = 1 << 30;
/// Requests per second per agent by default.
pub const DEFAULT_RATE_PER_SEC: u32 = 50;
/// Burst per agent by default.
pub const DEFAULT_BURST: u32 = 100;
/// Open connections at most by default.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;
/// Batches read and parsed at once (each may hold `max_body_bytes`).
pub const DEFAULT_INGEST_CONCURRENCY: usize = 8;
/// Largest configuration file read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A configuration problem, with where it is.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The file, when the problem is in one.
    pub file: Option<PathBuf>,
    /// 1-based line.
    pub line: Option<usize>,
    /// The key or flag at fault.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(l) = self.line {
                write!(f, ":{l}")?;
            }
            f.write_str(": ")?;
        }
        if let Some(k) = &self.key {
            write!(f, "`{k}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The file's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    listen: Option<String>,
    data: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    plain_http: Option<bool>,
    rules: Option<PathBuf>,
    max_body_bytes: Option<u64>,
    rate_per_sec: Option<u32>,
    burst: Option<u32>,
    max_connections: Option<u32>,
    alerts: Option<crate::alerts::config::AlertsDoc>,
}

/// What the command line said.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--data DIR`.
    pub data: Option<PathBuf>,
    /// `--listen ADDR`.
    pub listen: Option<String>,
    /// `--plain-http`.
    pub plain_http: bool,
    /// `--rules DIR`.
    pub rules: Option<PathBuf>,
}

/// How the service speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsSource {
    /// Plain HTTP (loopback only).
    Plain,
    /// A self-signed certificate kept in the data directory, made on first start.
    SelfSigned,
    /// A configured certificate chain and key (PEM).
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
}

/// Limits on what clients may make the service hold.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Per-agent rate (`None`: no limit).
    pub rate: Option<Rate>,
    /// Open connections at most; more are closed at once.
    pub max_connections: usize,
    /// Batches read and parsed at once.
    pub ingest_concurrency: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES as usize,
            rate: Some(Rate {
                per_sec: DEFAULT_RATE_PER_SEC,
                burst: DEFAULT_BURST,
            }),
            max_connections: DEFAULT_MAX_CONNECTIONS as usize,
            ingest_concurrency: DEFAULT_INGEST_CONCURRENCY,
        }
    }
}

/// A validated configuration for `serve`.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Data directory.
    pub data: PathBuf,
    /// TLS.
    pub tls: TlsSource,
    /// Rules directory (`None`: the built-in rules).
    pub rules: Option<PathBuf>,
    /// Limits.
    pub limits: Limits,
    /// Alerts: delivery discipline and channels.
    pub alerts: crate::alerts::config::AlertsConfig,
}

struct Loaded {
    file: PathBuf,
    doc: FileDoc,
    text: String,
}

fn flag_error(flag: &str, message: String) -> ConfigError {
    ConfigError {
        file: None,
        line: None,
        key: Some(flag.to_owned()),
        message,
    }
}

fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let err = |line, key, message: String| ConfigError {
        file: Some(path.to_owned()),
        line,
        key,
        message,
    };
    let f = std::fs::File::open(path)
        .map_err(|e| err(None, None, format!("cannot read the configuration: {e}")))?;
    let mut bytes = Vec::new();
    f.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(None, None, format!("cannot read the configuration: {e}")))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(err(
            None,
            None,
            format!("larger than {MAX_CONFIG_BYTES} bytes; is this the right file?"),
        ));
    }
    let text =
        String::from_utf8(bytes).map_err(|e| err(None, None, format!("not UTF-8 text: {e}")))?;
    let doc: FileDoc = toml::from_str(&text).map_err(|e| {
        let (line, key) = match e.span() {
            Some(span) => {
                let start = span.start.min(text.len());
                let before = text.get(..start).unwrap_or("");
                let line_no = before.matches('\n').count() + 1;
                let line_start = before.rfind('\n').map_or(0, |i| i + 1);
                let line_text = text
                    .get(line_start..)
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("");
                let key = line_text
                    .split_once('=')
                    .map(|(k, _)| k.trim().trim_matches('"').to_owned())
                    .filter(|k| !k.is_empty() && !k.starts_with('['));
                (Some(line_no), key)
            }
            None => (None, None),
        };
        err(line, key, e.message().trim().to_owned())
    })?;
    Ok(Loaded {
        file: path.to_owned(),
        doc,
        text,
    })
}

/// A path from the file, relative to the file's directory.
fn relative_to(file: &Path, p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        file.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// The data directory for the administrative commands: `--data`, else the file's
/// `data`, else [`DEFAULT_DATA_DIR`].
pub fn data_dir(config: Option<&Path>, data: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(d) = data {
        return Ok(d.to_owned());
    }
    if let Some(c) = config {
        let l = load(c)?;
        if let Some(d) = l.doc.data {
            return Ok(relative_to(&l.file, d));
        }
    }
    Ok(PathBuf::from(DEFAULT_DATA_DIR))
}

/// The TLS certificate files named by a configuration file, if any.
pub fn configured_cert(config: Option<&Path>) -> Result<Option<PathBuf>, ConfigError> {
    let Some(c) = config else { return Ok(None) };
    let l = load(c)?;
    Ok(l.doc.tls_cert.map(|p| relative_to(&l.file, p)))
}

/// Whether plain HTTP may be served on this address.
pub fn plain_http_allowed(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

impl ServeConfig {
    /// Reads the file (if any), applies the flags, and validates.
    pub fn resolve(flags: &Flags) -> Result<ServeConfig, ConfigError> {
        let (file, mut doc, text) = match &flags.config {
            Some(p) => {
                let l = load(p)?;
                (Some(l.file), l.doc, l.text)
            }
            None => (None, FileDoc::default(), String::new()),
        };
        let alerts = match (doc.alerts.take(), &file) {
            (Some(a), Some(f)) => crate::alerts::config::resolve(a, &text, f)?,
            _ => crate::alerts::config::AlertsConfig::default(),
        };
        let in_file = |key: &str, message: String| ConfigError {
            file: file.clone(),
            line: None,
            key: Some(key.to_owned()),
            message,
        };
        let rel = |p: PathBuf| match &file {
            Some(f) => relative_to(f, p),
            None => p,
        };

        let (listen_text, listen_from_flag) = match (&flags.listen, &doc.listen) {
            (Some(l), _) => (l.clone(), true),
            (None, Some(l)) => (l.clone(), false),
            (None, None) => (DEFAULT_LISTEN.to_owned(), true),
        };
        let listen: SocketAddr = listen_text.trim().parse().map_err(|_| {
            let m = format!(
                "`{}` is not an address and port such as 0.0.0.0:8443, 127.0.0.1:8443 or [::]:8443",
                listen_text.escape_debug()
            );
            if listen_from_flag {
                flag_error("--listen", m)
            } else {
                in_file("listen", m)
            }
        })?;

        let data = match (&flags.data, doc.data) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => rel(d),
            (None, None) => PathBuf::from(DEFAULT_DATA_DIR),
        };
        let rules = match (&flags.rules, doc.rules) {
            (Some(r), _) => Some(r.clone()),
            (None, r) => r.map(rel),
        };

        let plain = flags.plain_http || doc.plain_http.unwrap_or(false);
        let tls = match (doc.tls_cert, doc.tls_key) {
            (Some(cert), Some(key)) => {
                if plain {
                    return Err(in_file(
                        "plain_http",
                        "plain HTTP was asked for, but tls_cert and tls_key are set; choose one"
                            .into(),
                    ));
                }
                TlsSource::Files {
                    cert: rel(cert),
                    key: rel(key),
                }
            }
            (Some(_), None) => {
                return Err(in_file(
                    "tls_key",
                    "tls_cert is set but tls_key is not; give both".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(in_file(
                    "tls_cert",
                    "tls_key is set but tls_cert is not; give both".into(),
                ))
            }
            (None, None) if plain => TlsSource::Plain,
            (None, None) => TlsSource::SelfSigned,
        };
        if tls == TlsSource::Plain && !plain_http_allowed(&listen) {
            let m = format!(
                "refusing plain HTTP on {listen}: findings and tokens would cross the network unencrypted. \
                 Plain HTTP is only served on a loopback address (e.g. --listen 127.0.0.1:8443); \
                 drop --plain-http to serve HTTPS"
            );
            return Err(if flags.plain_http {
                flag_error("--plain-http", m)
            } else {
                in_file("plain_http", m)
            });
        }

        let max_body = doc.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if !(MIN_MAX_BODY_BYTES..=MAX_MAX_BODY_BYTES).contains(&max_body) {
            return Err(in_file(
                "max_body_bytes",
                format!(
                    "{max_body} is out of range; use {MIN_MAX_BODY_BYTES} to {MAX_MAX_BODY_BYTES}"
                ),
            ));
        }
        let per_sec = doc.rate_per_sec.unwrap_or(DEFAULT_RATE_PER_SEC);
        let burst = doc.burst.unwrap_or(DEFAULT_BURST);
        let rate = if per_sec == 0 {
            None
        } else if burst == 0 {
            return Err(in_file(
                "burst",
                "must be at least 1 while rate_per_sec is set (rate_per_sec = 0 turns the limit off)".into(),
            ));
        } else {
            Some(Rate { per_sec, burst })
        };
        let max_connections = doc.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if !(1..=65_536).contains(&max_connections) {
            return Err(in_file(
                "max_connections",
                format!("{max_connections} is out of range; use 1 to 65536"),
            ));
        }
        Ok(ServeConfig {
            listen,
            data,
            tls,
            rules,
            limits: Limits {
                max_body_bytes: usize::try_from(max_body).unwrap_or(usize::MAX),
                rate,
                max_connections: max_connections as usize,
                ingest_concurrency: DEFAULT_INGEST_CONCURRENCY,
            },
            alerts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_file(text: &str, flags: Flags) -> Result<ServeConfig, ConfigError> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("collector.toml");
        std::fs::write(&p, text).unwrap();
        ServeConfig::resolve(&Flags {
            config: Some(p),
            ..flags
        })
    }

    #[test]
    fn defaults_are_https_with_a_self_signed_certificate() {
        let c = ServeConfig::resolve(&Flags::default()).unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(c.tls, TlsSource::SelfSigned);
        assert_eq!(c.limits, Limits::default());
    }

    #[test]
    fn unknown_keys_are_named_with_file_and_line() {
        let e = with_file(
            "listen = \"127.0.0.1:1\"\n\nrate_per_second = 5\n",
            Flags::default(),
        )
        .unwrap_err();
        let s = e.to_string();
        assert_eq!(e.line, Some(3), "{s}");
        assert_eq!(e.key.as_deref(), Some("rate_per_second"), "{s}");
        assert!(
            s.contains("collector.toml:3: `rate_per_second`: unknown field"),
            "{s}"
        );
        let e = with_file("burst = \"many\"\n", Flags::default()).unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(1), Some("burst")), "{e}");
    }

    #[test]
    fn flags_override_the_file_and_paths_are_relative_to_it() {
        let c = with_file(
            "listen = \"127.0.0.1:9000\"\ndata = \"state\"\nrate_per_sec = 0\nmax_body_bytes = 65536\n",
            Flags {
                listen: Some("127.0.0.1:9001".into()),
                ..Flags::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9001);
        assert!(
            c.data.ends_with("state") && c.data.is_absolute(),
            "{:?}",
            c.data
        );
        assert_eq!(c.limits.rate, None);
        assert_eq!(c.limits.max_body_bytes, 65536);
    }

    #[test]
    fn plain_http_only_on_loopback() {
        for ok in ["127.0.0.1:8080", "[::1]:8080", "127.9.9.9:1"] {
            let c = ServeConfig::resolve(&Flags {
                listen: Some(ok.into()),
                plain_http: true,
                ..Flags::default()
            })
            .unwrap();
            assert_eq!(c.tls, TlsSource::Plain);
        }
        for bad in ["0.0.0.0:8080", "192.168.1.10:8080", "[::]:8080"] {
            let e = ServeConfig::resolve(&Flags {
                listen: Some(bad.into()),
                plain_http: true,
                ..Flags::default()
            })
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("refusing plain HTTP") && e.contains("loopback"),
                "{e}"
            );
        }
        let e = with_file("plain_http = true\n", Flags::default()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("plain_http"));
    }

    #[test]
    fn bad_values_are_named() {
        for (text, key) in [
            ("tls_cert = \"a.pem\"\n", "tls_key"),
            ("tls_key = \"a.pem\"\n", "tls_cert"),
            ("max_body_bytes = 10\n", "max_body_bytes"),
            ("burst = 0\n", "burst"),
            ("max_connections = 0\n", "max_connections"),
            ("listen = \"localhost\"\n", "listen"),
        ] {
            let e = with_file(text, Flags::default()).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
        }
        let e = ServeConfig::resolve(&Flags {
            listen: Some("nowhere".into()),
            ..Flags::default()
        })
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("--listen"));
    }
}
