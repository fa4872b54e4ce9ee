//! The long-running agent's configuration: one TOML file, validated once into types that
//! cannot be wrong afterwards.
//!
//! Every key is optional except `capture.interfaces`. Unknown keys are refused with the
//! file, line and key, so a typo never silently falls back to a default. Durations are
//! seconds or a number with `ms`, `s`, `m`, `h`; sizes are bytes or a number with `K`,
//! `M`, `G` (binary multiples).
//!
//! ```toml
//! [capture]
//! interfaces = ["enp2s0"]      # the mirror (SPAN) port(s); required
//! backend = "pcap"             # "pcap" (libpcap, default) or "pnet" (feature `pnet`)
//! snaplen = 262144             # bytes kept per frame
//! buffer = "32M"               # kernel ring per interface (resident for the whole run)
//! promiscuous = true
//! immediate = false            # true: every frame at once (TPACKET_V2: one snaplen-sized
//!                              # slot per frame; lower snaplen and turn GRO/LRO off)
//! timeout = "10ms"             # longest wait before buffered frames are delivered
//! filter = ""                  # BPF, e.g. "not port 514"
//! workers = 0                  # flow workers; 0: one per core but one, at least 1
//! queue = 64                   # batches (of up to 256 frames) queued per worker
//!
//! [flows]
//! max_flows = 262144           # live flows over all workers (bounds memory)
//! tcp_timeout = "600s"
//! tcp_closed_timeout = "15s"
//! udp_timeout = "180s"
//! other_timeout = "180s"
//!
//! [inventory]
//! local_nets = ["203.0.113.0/24"]   # the hospital's own public ranges
//! rules = "/etc/setten/rules"       # rules directory (followed for changes); built-in if unset
//! ledger = "/etc/setten/ledger.csv" # the hospital's ledger of expected connections
//! interval = "5m"                   # report period
//! state_dir = "/var/lib/setten"     # inventory.jsonl (and the spool by default)
//!
//! [health]
//! interval = "60s"             # health log period
//! drop_alarm = 0.001           # share of frames lost in a period that raises the alarm
//!
//! [spool]
//! path = "/var/lib/setten/spool.db" # default: <state_dir>/spool.db
//! max_size = "256M"
//!
//! [collector]
//! url = "https://collector.example:8443"
//! token_file = "/etc/setten/token"  # NAME.SECRET; else $SETTEN_TOKEN
//! pin = "sha256:…"                  # or ca = "/etc/setten/ca.pem"; else the Web PKI
//! timeout = "60s"                   # per shipping round while the collector is down
//! shutdown_timeout = "10s"          # for the last round at shutdown
//!
//! [backup]
//! key_file = "/var/lib/setten/backup.key"  # default: <state_dir>/backup.key
//! stale_check = "1h"                # how often "not verified for N days" is checked
//!
//! [[backup.media]]                  # one per medium (USB disk, RDX cartridge, …)
//! name = "rdx-1"                    # as sealed (`setten-agent backup seal --medium`)
//! uuid = "2f6e…"                    # filesystem UUID (blkid), or label = "…"; neither:
//!                                   # recognised by the manifest copy on the medium
//! path = ""                         # where the backup is on the medium
//! verify = "rolling"                # "full", "sample", "rolling" or "none"
//! fraction = 0.05                   # with "sample"
//! window = "8h"                     # longest it may stay connected (offline rule)
//! max_days = 7                      # report when not verified for longer
//!
//! [[backup.folders]]                # where backup software drops finished sets
//! name = "nas-daily"                # sealed as generations of this medium
//! path = "/srv/backup/outbox"
//! settle = "5m"                     # quiet time after the last change before sealing
//! ```

use crate::backup::watch::WatchConfig;
use crate::flow;
use crate::record::Cidr;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Largest configuration file read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Most interfaces captured at once.
pub const MAX_INTERFACES: usize = 64;
/// Most worker threads.
pub const MAX_WORKERS: usize = 256;
/// Largest snap length (libpcap's own maximum).
pub const MAX_SNAPLEN: u32 = 262_144;
/// Smallest report period: each report writes the state file and a spool transaction.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// A configuration that could not be used. Names the file, and the line and key when
/// the fault is in one.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read the configuration: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid, or a value is out of range.
    #[error("{}", invalid_text(path, *line, key.as_deref(), message))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// The key at fault (`section.key`), when known.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
}

fn invalid_text(path: &Path, line: Option<usize>, key: Option<&str>, message: &str) -> String {
    let mut s = path.display().to_string();
    if let Some(l) = line {
        s.push_str(&format!(":{l}"));
    }
    if let Some(k) = key {
        s.push_str(&format!(": key `{k}`"));
    }
    s.push_str(": ");
    s.push_str(message);
    s
}

/// Which capture implementation reads the interfaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// libpcap (kernel mmap ring, BPF, drop counters).
    Pcap,
    /// The pure-Rust pnet datalink channel (one `recvfrom` per frame, no drop counters).
    Pnet,
}

impl Backend {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Pcap => "pcap",
            Backend::Pnet => "pnet",
        }
    }
}

/// `[capture]`.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptureConfig {
    /// Interfaces, in order.
    pub interfaces: Vec<String>,
    /// Implementation.
    pub backend: Backend,
    /// Bytes kept per frame.
    pub snaplen: u32,
    /// Kernel buffer per interface, bytes.
    pub buffer_bytes: u32,
    /// Promiscuous mode (needs CAP_NET_ADMIN besides CAP_NET_RAW).
    pub promiscuous: bool,
    /// Deliver every frame at once instead of in kernel blocks.
    pub immediate: bool,
    /// Longest wait before buffered frames are delivered.
    pub timeout: Duration,
    /// BPF filter.
    pub filter: Option<String>,
    /// Flow workers.
    pub workers: usize,
    /// Batches queued per worker before frames are dropped (and counted).
    pub queue: usize,
}

/// `[inventory]`.
#[derive(Clone, Debug, PartialEq)]
pub struct InventoryConfig {
    /// The hospital's networks besides the private ranges.
    pub local_nets: Vec<Cidr>,
    /// Rules directory; the built-in rules when `None`.
    pub rules: Option<PathBuf>,
    /// The hospital's ledger.
    pub ledger: Option<PathBuf>,
    /// Report period.
    pub interval: Duration,
    /// Where `inventory.jsonl` is written.
    pub state_dir: PathBuf,
}

/// `[health]`.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthConfig {
    /// Log period.
    pub interval: Duration,
    /// Share of frames lost in a period (kernel, interface and queue drops) above which
    /// the drop alarm is raised.
    pub drop_alarm: f64,
}

/// `[spool]`.
#[derive(Clone, Debug, PartialEq)]
pub struct SpoolConfig {
    /// The spool file.
    pub path: PathBuf,
    /// Its size cap.
    pub max_bytes: u64,
}

/// How the collector's certificate is trusted.
#[derive(Clone, Debug, PartialEq)]
pub enum TrustConfig {
    /// `sha256:HEX` of its certificate.
    Pin(String),
    /// Certificates issued by the CAs in a PEM file.
    Ca(PathBuf),
    /// The public Web PKI.
    WebPki,
}

/// `[collector]`.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectorConfig {
    /// `https://HOST:PORT`.
    pub url: String,
    /// The token file; `$SETTEN_TOKEN` when `None`.
    pub token_file: Option<PathBuf>,
    /// Trust.
    pub trust: TrustConfig,
    /// How long one shipping round keeps trying while the collector is down.
    pub timeout: Duration,
    /// The same for the last round at shutdown.
    pub shutdown_timeout: Duration,
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file it was read from (SIGHUP reads it again).
    pub source: Option<PathBuf>,
    /// Capture.
    pub capture: CaptureConfig,
    /// Flow table (`max_flows` over all workers).
    pub flows: flow::Config,
    /// Inventory and reports.
    pub inventory: InventoryConfig,
    /// Health.
    pub health: HealthConfig,
    /// Spool.
    pub spool: SpoolConfig,
    /// Collector, when findings are shipped.
    pub collector: Option<CollectorConfig>,
    /// Backup media and drop folders to watch.
    pub backup: WatchConfig,
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        use std::io::Read;
        let read = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .map_err(read)?
            .take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read)?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                line: None,
                key: None,
                message: format!("larger than {MAX_CONFIG_BYTES} bytes"),
            });
        }
        let mut cfg = Config::parse(&text, path)?;
        cfg.source = Some(path.to_owned());
        Ok(cfg)
    }

    /// Validates configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let cx = Cx { text, path: origin };
        let doc: Doc = toml::from_str(text).map_err(|e| {
            let key = e
                .message()
                .split('`')
                .nth(1)
                .filter(|_| e.message().starts_with("unknown field"))
                .map(str::to_owned);
            ConfigError::Invalid {
                path: origin.to_owned(),
                line: e.span().map(|s| cx.line(s.start)),
                key,
                message: e.message().trim().to_owned(),
            }
        })?;
        doc.validate(&cx)
    }

    /// A configuration with every default, capturing on `interfaces` (for programs and
    /// tests that build their configuration themselves).
    pub fn with_interfaces(interfaces: &[&str]) -> Result<Config, ConfigError> {
        let list: Vec<String> = interfaces.iter().map(|i| format!("{i:?}")).collect();
        let text = format!("[capture]\ninterfaces = [{}]\n", list.join(", "));
        Config::parse(&text, Path::new("(defaults)"))
    }

    /// The flow-table configuration of one of `workers` workers.
    pub fn worker_flows(&self, workers: usize) -> flow::Config {
        flow::Config {
            max_flows: self.flows.max_flows.div_ceil(workers.max(1)).max(1),
            ..self.flows
        }
    }
}

/// The text being validated.
struct Cx<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Cx<'_> {
    /// 1-based line of a byte offset.
    fn line(&self, offset: usize) -> usize {
        self.text
            .get(..offset)
            .map_or(1, |t| t.matches('\n').count() + 1)
    }

    fn bad(&self, span: std::ops::Range<usize>, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line: Some(self.line(span.start)),
            key: Some(key.to_owned()),
            message,
        }
    }
}

/// A number or a text with a unit.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum Quantity {
    Int(i64),
    Float(f64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    capture: Spanned<CaptureDoc>,
    #[serde(default)]
    flows: FlowsDoc,
    #[serde(default)]
    inventory: InventoryDoc,
    #[serde(default)]
    health: HealthDoc,
    #[serde(default)]
    spool: SpoolDoc,
    #[serde(default)]
    collector: Option<Spanned<CollectorDoc>>,
    #[serde(default)]
    backup: BackupDoc,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BackupDoc {
    key_file: Option<PathBuf>,
    stale_check: Option<Spanned<Quantity>>,
    #[serde(default)]
    media: Vec<Spanned<MediumDoc>>,
    #[serde(default)]
    folders: Vec<Spanned<FolderDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MediumDoc {
    name: Spanned<String>,
    uuid: Option<String>,
    label: Option<String>,
    path: Option<Spanned<String>>,
    verify: Option<Spanned<String>>,
    fraction: Option<Spanned<Quantity>>,
    window: Option<Spanned<Quantity>>,
    max_days: Option<Spanned<Quantity>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FolderDoc {
    name: Spanned<String>,
    path: PathBuf,
    settle: Option<Spanned<Quantity>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureDoc {
    interfaces: Spanned<Vec<String>>,
    backend: Option<Spanned<String>>,
    snaplen: Option<Spanned<i64>>,
    buffer: Option<Spanned<Quantity>>,
    promiscuous: Option<bool>,
    immediate: Option<bool>,
    timeout: Option<Spanned<Quantity>>,
    filter: Option<String>,
    workers: Option<Spanned<i64>>,
    queue: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FlowsDoc {
    max_flows: Option<Spanned<i64>>,
    tcp_timeout: Option<Spanned<Quantity>>,
    tcp_closed_timeout: Option<Spanned<Quantity>>,
    udp_timeout: Option<Spanned<Quantity>>,
    other_timeout: Option<Spanned<Quantity>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct InventoryDoc {
    #[serde(default)]
    local_nets: Vec<Spanned<String>>,
    rules: Option<PathBuf>,
    ledger: Option<PathBuf>,
    interval: Option<Spanned<Quantity>>,
    state_dir: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HealthDoc {
    interval: Option<Spanned<Quantity>>,
    drop_alarm: Option<Spanned<Quantity>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SpoolDoc {
    path: Option<PathBuf>,
    max_size: Option<Spanned<Quantity>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectorDoc {
    url: Spanned<String>,
    token_file: Option<PathBuf>,
    pin: Option<Spanned<String>>,
    ca: Option<PathBuf>,
    timeout: Option<Spanned<Quantity>>,
    shutdown_timeout: Option<Spanned<Quantity>>,
}

/// A duration: seconds, or a number with ms, s, m, h.
fn duration(
    cx: &Cx<'_>,
    q: Option<&Spanned<Quantity>>,
    key: &str,
    default: Duration,
    range: (Duration, Duration),
) -> Result<Duration, ConfigError> {
    let Some(q) = q else { return Ok(default) };
    let bad = |m: String| cx.bad(q.span(), key, m);
    let secs = match q.get_ref() {
        Quantity::Int(n) => *n as f64,
        Quantity::Float(f) => *f,
        Quantity::Text(t) => {
            let t = t.trim();
            let (num, mul) = if let Some(n) = t.strip_suffix("ms") {
                (n, 0.001)
            } else if let Some(n) = t.strip_suffix('s') {
                (n, 1.0)
            } else if let Some(n) = t.strip_suffix('m') {
                (n, 60.0)
            } else if let Some(n) = t.strip_suffix('h') {
                (n, 3600.0)
            } else {
                (t, 1.0)
            };
            let v: f64 = num.trim().parse().map_err(|_| {
                bad(format!(
                    "{t:?}: expected a duration such as 10ms, 60s or 5m"
                ))
            })?;
            v * mul
        }
    };
    if !secs.is_finite() || secs < range.0.as_secs_f64() || secs > range.1.as_secs_f64() {
        return Err(bad(format!(
            "must be between {} and {}",
            show_duration(range.0),
            show_duration(range.1)
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn show_duration(d: Duration) -> String {
    if d.subsec_millis() != 0 || d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

/// A size: bytes, or a number with K, M, G (binary multiples).
fn size(
    cx: &Cx<'_>,
    q: Option<&Spanned<Quantity>>,
    key: &str,
    default: u64,
    range: (u64, u64),
) -> Result<u64, ConfigError> {
    let Some(q) = q else { return Ok(default) };
    let bad = |m: String| cx.bad(q.span(), key, m);
    let v = match q.get_ref() {
        Quantity::Int(n) => u64::try_from(*n).map_err(|_| bad("must not be negative".into()))?,
        Quantity::Float(_) => return Err(bad("expected a whole number of bytes".into())),
        Quantity::Text(t) => {
            let t = t.trim();
            let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let (num, unit) = t.split_at(split);
            let n: u64 = num
                .parse()
                .map_err(|_| bad(format!("{t:?}: expected a size such as 64M")))?;
            let mul: u64 = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => 1,
                "k" | "kib" => 1 << 10,
                "m" | "mib" => 1 << 20,
                "g" | "gib" => 1 << 30,
                _ => return Err(bad(format!("{t:?}: the unit must be K, M or G"))),
            };
            n.checked_mul(mul)
                .ok_or_else(|| bad(format!("{t:?} is too large")))?
        }
    };
    if v < range.0 || v > range.1 {
        return Err(bad(format!(
            "must be between {} and {} bytes",
            range.0, range.1
        )));
    }
    Ok(v)
}

fn int(
    cx: &Cx<'_>,
    v: Option<&Spanned<i64>>,
    key: &str,
    default: u64,
    range: (u64, u64),
) -> Result<u64, ConfigError> {
    let Some(v) = v else { return Ok(default) };
    match u64::try_from(*v.get_ref()) {
        Ok(n) if (range.0..=range.1).contains(&n) => Ok(n),
        _ => Err(cx.bad(
            v.span(),
            key,
            format!("must be between {} and {}", range.0, range.1),
        )),
    }
}

/// Whole seconds for the flow table (at least one).
fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

impl Doc {
    fn validate(self, cx: &Cx<'_>) -> Result<Config, ConfigError> {
        let c = self.capture.get_ref();
        let ifaces = &c.interfaces;
        if ifaces.get_ref().is_empty() {
            return Err(cx.bad(
                ifaces.span(),
                "capture.interfaces",
                "name at least one interface (the mirror port)".into(),
            ));
        }
        if ifaces.get_ref().len() > MAX_INTERFACES {
            return Err(cx.bad(
                ifaces.span(),
                "capture.interfaces",
                format!("at most {MAX_INTERFACES} interfaces"),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for i in ifaces.get_ref() {
            // Linux interface names: 1 to 15 bytes, no '/', no whitespace (IFNAMSIZ).
            if i.is_empty()
                || i.len() > 15
                || i.contains('/')
                || i.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(cx.bad(
                    ifaces.span(),
                    "capture.interfaces",
                    format!("{i:?} is not an interface name"),
                ));
            }
            if !seen.insert(i.as_str()) {
                return Err(cx.bad(
                    ifaces.span(),
                    "capture.interfaces",
                    format!("{i:?} is named twice"),
                ));
            }
        }
        let backend = match &c.backend {
            None => Backend::Pcap,
            Some(b) => match b.get_ref().as_str() {
                "pcap" => Backend::Pcap,
                "pnet" => Backend::Pnet,
                other => {
                    return Err(cx.bad(
                        b.span(),
                        "capture.backend",
                        format!("{other:?}: expected \"pcap\" or \"pnet\""),
                    ))
                }
            },
        };
        let snaplen = int(
            cx,
            c.snaplen.as_ref(),
            "capture.snaplen",
            u64::from(MAX_SNAPLEN),
            (64, u64::from(MAX_SNAPLEN)),
        )? as u32;
        let buffer_bytes = size(
            cx,
            c.buffer.as_ref(),
            "capture.buffer",
            DEFAULT_BUFFER,
            (1 << 20, (i32::MAX as u64) & !0xfff),
        )? as u32;
        let timeout = duration(
            cx,
            c.timeout.as_ref(),
            "capture.timeout",
            Duration::from_millis(10),
            (Duration::from_millis(1), Duration::from_secs(1)),
        )?;
        let workers = int(
            cx,
            c.workers.as_ref(),
            "capture.workers",
            0,
            (0, MAX_WORKERS as u64),
        )? as usize;
        let workers = if workers == 0 {
            default_workers()
        } else {
            workers
        };
        let queue = int(cx, c.queue.as_ref(), "capture.queue", 64, (1, 4096))? as usize;
        let filter = c.filter.clone().filter(|f| !f.trim().is_empty());
        if let Some(f) = &filter {
            if f.contains('\0') || f.len() > 64 * 1024 {
                return Err(cx.bad(
                    self.capture.span(),
                    "capture.filter",
                    "not a BPF filter expression".into(),
                ));
            }
        }
        let capture = CaptureConfig {
            interfaces: ifaces.get_ref().clone(),
            backend,
            snaplen,
            buffer_bytes,
            promiscuous: c.promiscuous.unwrap_or(true),
            immediate: c.immediate.unwrap_or(false),
            timeout,
            filter,
            workers,
            queue,
        };

        let f = &self.flows;
        let day = Duration::from_secs(86_400);
        let one = Duration::from_secs(1);
        let flows = flow::Config {
            max_flows: int(
                cx,
                f.max_flows.as_ref(),
                "flows.max_flows",
                DEFAULT_MAX_FLOWS as u64,
                (1, 100_000_000),
            )? as usize,
            tcp_timeout: secs(duration(
                cx,
                f.tcp_timeout.as_ref(),
                "flows.tcp_timeout",
                Duration::from_secs(600),
                (one, day),
            )?),
            tcp_closed_timeout: secs(duration(
                cx,
                f.tcp_closed_timeout.as_ref(),
                "flows.tcp_closed_timeout",
                Duration::from_secs(15),
                (one, day),
            )?),
            udp_timeout: secs(duration(
                cx,
                f.udp_timeout.as_ref(),
                "flows.udp_timeout",
                Duration::from_secs(180),
                (one, day),
            )?),
            other_timeout: secs(duration(
                cx,
                f.other_timeout.as_ref(),
                "flows.other_timeout",
                Duration::from_secs(180),
                (one, day),
            )?),
        };

        let inv = &self.inventory;
        let mut local_nets = Vec::new();
        for n in &inv.local_nets {
            local_nets.push(
                Cidr::parse(n.get_ref())
                    .map_err(|m| cx.bad(n.span(), "inventory.local_nets", m))?,
            );
        }
        let state_dir = inv
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/lib/setten"));
        let inventory = InventoryConfig {
            local_nets,
            rules: inv.rules.clone(),
            ledger: inv.ledger.clone(),
            interval: duration(
                cx,
                inv.interval.as_ref(),
                "inventory.interval",
                Duration::from_secs(300),
                (MIN_INTERVAL, day),
            )?,
            state_dir: state_dir.clone(),
        };

        let h = &self.health;
        let drop_alarm = match &h.drop_alarm {
            None => 0.001,
            Some(q) => {
                let v = match q.get_ref() {
                    Quantity::Int(n) => *n as f64,
                    Quantity::Float(f) => *f,
                    Quantity::Text(t) => match t.trim().strip_suffix('%') {
                        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0).unwrap_or(-1.0),
                        None => t.trim().parse::<f64>().unwrap_or(-1.0),
                    },
                };
                if !(0.0..=1.0).contains(&v) {
                    return Err(cx.bad(
                        q.span(),
                        "health.drop_alarm",
                        "expected a share between 0 and 1 (0.001) or a percentage (\"0.1%\")"
                            .into(),
                    ));
                }
                v
            }
        };
        let health = HealthConfig {
            interval: duration(
                cx,
                h.interval.as_ref(),
                "health.interval",
                Duration::from_secs(60),
                (MIN_INTERVAL, day),
            )?,
            drop_alarm,
        };

        let spool = SpoolConfig {
            path: self
                .spool
                .path
                .clone()
                .unwrap_or_else(|| state_dir.join("spool.db")),
            max_bytes: size(
                cx,
                self.spool.max_size.as_ref(),
                "spool.max_size",
                crate::ship::spool::DEFAULT_MAX_BYTES,
                (4096, 1 << 40),
            )?,
        };

        let collector = match &self.collector {
            None => None,
            Some(c) => {
                let span = c.span();
                let c = c.get_ref();
                let trust = match (&c.pin, &c.ca) {
                    (Some(_), Some(_)) => {
                        return Err(cx.bad(
                            span,
                            "collector.pin",
                            "give either pin or ca, not both".into(),
                        ))
                    }
                    (Some(p), None) => {
                        crate::ship::client::Fingerprint::parse(p.get_ref())
                            .map_err(|e| cx.bad(p.span(), "collector.pin", e.to_string()))?;
                        TrustConfig::Pin(p.get_ref().clone())
                    }
                    (None, Some(ca)) => TrustConfig::Ca(ca.clone()),
                    (None, None) => TrustConfig::WebPki,
                };
                crate::ship::client::ingest_url(c.url.get_ref())
                    .map_err(|e| cx.bad(c.url.span(), "collector.url", e.to_string()))?;
                Some(CollectorConfig {
                    url: c.url.get_ref().clone(),
                    token_file: c.token_file.clone(),
                    trust,
                    timeout: duration(
                        cx,
                        c.timeout.as_ref(),
                        "collector.timeout",
                        Duration::from_secs(60),
                        (Duration::ZERO, day),
                    )?,
                    shutdown_timeout: duration(
                        cx,
                        c.shutdown_timeout.as_ref(),
                        "collector.shutdown_timeout",
                        Duration::from_secs(10),
                        (Duration::ZERO, Duration::from_secs(600)),
                    )?,
                })
            }
        };

        let backup = self.backup.validate(cx, &state_dir)?;

        Ok(Config {
            source: None,
            capture,
            flows,
            inventory,
            health,
            spool,
            collector,
            backup,
        })
    }
}

impl BackupDoc {
    fn validate(&self, cx: &Cx<'_>, state_dir: &Path) -> Result<WatchConfig, ConfigError> {
        use crate::backup::watch::{FolderConfig, MediumConfig};
        use crate::backup::{MediumName, SampleFraction, VerifyMode};
        let day = Duration::from_secs(86_400);
        let name = |n: &Spanned<String>, key: &str| {
            MediumName::new(n.get_ref()).map_err(|e| cx.bad(n.span(), key, e.to_string()))
        };
        let mut media = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for m in &self.media {
            let span = m.span();
            let m = m.get_ref();
            let medium = name(&m.name, "backup.media.name")?;
            if !names.insert(medium.as_str().to_owned()) {
                return Err(cx.bad(
                    m.name.span(),
                    "backup.media.name",
                    format!("{:?} is configured twice", m.name.get_ref()),
                ));
            }
            let subdir = match &m.path {
                None => PathBuf::new(),
                Some(p) => {
                    let rel = PathBuf::from(p.get_ref().trim_start_matches('/'));
                    if rel
                        .components()
                        .any(|c| !matches!(c, std::path::Component::Normal(_)))
                    {
                        return Err(cx.bad(
                            p.span(),
                            "backup.media.path",
                            "a path inside the medium, without \"..\"".into(),
                        ));
                    }
                    rel
                }
            };
            let verify = match m.verify.as_ref().map(|v| (v, v.get_ref().as_str())) {
                None | Some((_, "full")) => Some(VerifyMode::Full),
                Some((_, "none")) => None,
                Some((_, "rolling")) => Some(VerifyMode::Rolling {
                    max_bytes: None,
                    max_duration: None,
                }),
                Some((_, "sample")) => {
                    let (v, fspan) = match &m.fraction {
                        None => (0.05, span.clone()),
                        Some(q) => (
                            match q.get_ref() {
                                Quantity::Int(n) => *n as f64,
                                Quantity::Float(f) => *f,
                                Quantity::Text(t) => t
                                    .trim()
                                    .strip_suffix('%')
                                    .and_then(|p| p.trim().parse::<f64>().ok())
                                    .map_or(-1.0, |p| p / 100.0),
                            },
                            q.span(),
                        ),
                    };
                    let fraction = SampleFraction::new(v)
                        .map_err(|e| cx.bad(fspan, "backup.media.fraction", e.to_string()))?;
                    Some(VerifyMode::Sample {
                        fraction,
                        seed: None,
                    })
                }
                Some((v, other)) => {
                    return Err(cx.bad(
                        v.span(),
                        "backup.media.verify",
                        format!(
                            "{other:?}: expected \"full\", \"sample\", \"rolling\" or \"none\""
                        ),
                    ))
                }
            };
            let window = match &m.window {
                None => None,
                Some(w) => Some(duration(
                    cx,
                    Some(w),
                    "backup.media.window",
                    day,
                    (Duration::from_secs(1), 365 * day),
                )?),
            };
            let max_days = match &m.max_days {
                None => None,
                Some(q) => {
                    let v = match q.get_ref() {
                        Quantity::Int(n) => *n as f64,
                        Quantity::Float(f) => *f,
                        Quantity::Text(t) => t.trim().parse().unwrap_or(-1.0),
                    };
                    if !(v > 0.0 && v <= 3650.0) {
                        return Err(cx.bad(
                            q.span(),
                            "backup.media.max_days",
                            "expected a number of days between 0 and 3650".into(),
                        ));
                    }
                    Some(v)
                }
            };
            media.push(MediumConfig {
                name: medium,
                uuid: m.uuid.clone().filter(|s| !s.trim().is_empty()),
                label: m.label.clone().filter(|s| !s.trim().is_empty()),
                subdir,
                verify,
                window,
                max_days,
            });
        }
        let mut folders = Vec::new();
        for f in &self.folders {
            let f = f.get_ref();
            folders.push(FolderConfig {
                name: name(&f.name, "backup.folders.name")?,
                path: f.path.clone(),
                settle: duration(
                    cx,
                    f.settle.as_ref(),
                    "backup.folders.settle",
                    Duration::from_secs(300),
                    (Duration::from_millis(100), day),
                )?,
            });
        }
        Ok(WatchConfig {
            media,
            folders,
            key_file: self
                .key_file
                .clone()
                .unwrap_or_else(|| crate::backup::default_key_file(state_dir)),
            state_dir: state_dir.to_owned(),
            stale_check: duration(
                cx,
                self.stale_check.as_ref(),
                "backup.stale_check",
                Duration::from_secs(3600),
                (Duration::from_millis(100), day),
            )?,
        })
    }
}

/// Kernel ring per interface by default: about 50,000 average frames, 50 ms at 1 Mpps,
/// while the capture thread does nothing but copy frames out. It is resident for the
/// whole run, so it is most of the agent's memory: raise it for 10 GbE links.
pub const DEFAULT_BUFFER: u64 = 32 << 20;

/// Live flows over all workers by default: about 60 MiB of flow state when full (see
/// `benches/live.sh`).
pub const DEFAULT_MAX_FLOWS: usize = 262_144;

/// One worker per core, leaving one for capture; at least one.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .clamp(1, MAX_WORKERS)
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/setten/agent.toml"))
    }

    #[test]
    fn the_documented_example_parses_with_its_values() {
        let text = include_str!("config.rs")
            .split("//! ```toml\n")
            .nth(1)
            .and_then(|t| t.split("//! ```").next())
            .unwrap()
            .lines()
            .map(|l| {
                l.strip_prefix("//! ")
                    .or(l.strip_prefix("//!"))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n")
            .replace("sha256:…", &format!("sha256:{}", "ab".repeat(32)));
        let c = parse(&text).unwrap();
        assert_eq!(c.capture.interfaces, vec!["enp2s0"]);
        assert_eq!(c.capture.snaplen, 262_144);
        assert_eq!(c.capture.buffer_bytes, 32 << 20);
        assert_eq!(c.capture.timeout, Duration::from_millis(10));
        assert_eq!(c.inventory.interval, Duration::from_secs(300));
        assert_eq!(c.health.drop_alarm, 0.001);
        assert_eq!(c.spool.path, PathBuf::from("/var/lib/setten/spool.db"));
        let col = c.collector.unwrap();
        assert!(matches!(col.trust, TrustConfig::Pin(_)));
        assert_eq!(col.shutdown_timeout, Duration::from_secs(10));
        let b = &c.backup;
        assert_eq!(b.media.len(), 1);
        assert_eq!(b.media[0].name.as_str(), "rdx-1");
        assert_eq!(b.media[0].window, Some(Duration::from_secs(8 * 3600)));
        assert_eq!(b.media[0].max_days, Some(7.0));
        assert!(matches!(
            b.media[0].verify,
            Some(crate::backup::VerifyMode::Rolling { .. })
        ));
        assert_eq!(b.folders[0].settle, Duration::from_secs(300));
        assert_eq!(b.stale_check, Duration::from_secs(3600));
    }

    #[test]
    fn backup_media_errors_name_line_and_key() {
        let base = "[capture]\ninterfaces = [\"eth1\"]\n";
        for (extra, line, key) in [
            ("[[backup.media]]\nname = \"a b\"\n", 5, "backup.media.name"),
            (
                "[[backup.media]]\nname = \"r\"\nverify = \"often\"\n",
                6,
                "backup.media.verify",
            ),
            (
                "[[backup.media]]\nname = \"r\"\npath = \"../etc\"\n",
                6,
                "backup.media.path",
            ),
            (
                "[[backup.media]]\nname = \"r\"\nmax_days = -1\n",
                6,
                "backup.media.max_days",
            ),
            (
                "[[backup.media]]\nname = \"r\"\nverify = \"sample\"\nfraction = 2\n",
                7,
                "backup.media.fraction",
            ),
            (
                "[[backup.media]]\nname = \"r\"\n[[backup.media]]\nname = \"r\"\n",
                7,
                "backup.media.name",
            ),
            (
                "[[backup.folders]]\nname = \"n\"\npath = \"/x\"\nsettle = \"soon\"\n",
                7,
                "backup.folders.settle",
            ),
        ] {
            let text = format!("{base}\n{extra}");
            let e = parse(&text).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("/etc/setten/agent.toml:{line}: key `{key}`")),
                "{extra:?}: {e}"
            );
        }
        let e = parse(&format!(
            "{base}[[backup.media]]\nname = \"r\"\nuid = \"x\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("uid"), "{e}");
    }

    #[test]
    fn defaults_fill_everything_but_the_interfaces() {
        let c = parse("[capture]\ninterfaces = [\"eth1\", \"eth2\"]\n").unwrap();
        assert_eq!(c.capture.backend, Backend::Pcap);
        assert!(c.capture.promiscuous);
        assert!(c.capture.workers >= 1);
        assert_eq!(c.flows.max_flows, DEFAULT_MAX_FLOWS);
        assert_eq!(c.flows.tcp_timeout, 600);
        assert_eq!(c.spool.path, PathBuf::from("/var/lib/setten/spool.db"));
        assert!(c.collector.is_none());
        let w = c.worker_flows(3);
        assert_eq!(w.max_flows, DEFAULT_MAX_FLOWS.div_ceil(3));
        assert_eq!(
            Config::with_interfaces(&["veth0"])
                .unwrap()
                .capture
                .interfaces,
            ["veth0"]
        );
        assert!(Config::with_interfaces(&["no such/name"]).is_err());
    }

    #[test]
    fn an_unknown_key_is_refused_with_file_line_and_key() {
        let e = parse("[capture]\ninterfaces = [\"eth1\"]\n\n[health]\ndrop_alarms = 0.01\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/setten/agent.toml:5: key `drop_alarms`"),
            "{e}"
        );
        let e = parse("[capture]\ninterfaces = [\"eth1\"]\n[colector]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":3: key `colector`"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key_and_line() {
        for (text, want) in [
            (
                "[capture]\ninterfaces = []\n",
                ":2: key `capture.interfaces`",
            ),
            (
                "[capture]\ninterfaces = [\"eth1\"]\nsnaplen = 10\n",
                ":3: key `capture.snaplen`",
            ),
            (
                "[capture]\ninterfaces = [\"eth1\"]\nbackend = \"dpdk\"\n",
                ":3: key `capture.backend`",
            ),
            (
                "[capture]\ninterfaces = [\"eth1\"]\n[inventory]\ninterval = \"5 minutes\"\n",
                ":4: key `inventory.interval`",
            ),
            (
                "[capture]\ninterfaces = [\"eth1\"]\n[inventory]\nlocal_nets = [\"10.0.0.0/33\"]\n",
                ":4: key `inventory.local_nets`",
            ),
            (
                "[capture]\ninterfaces = [\"eth1\"]\n[health]\ndrop_alarm = 2\n",
                ":4: key `health.drop_alarm`",
            ),
            (
                "[capture]\ninterfaces = [\"eth1\"]\n[collector]\nurl = \"ftp://x\"\n",
                ":4: key `collector.url`",
            ),
            (
                "[capture]\ninterfaces = [\"a/b\"]\n",
                ":2: key `capture.interfaces`",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let e = parse("[flows]\nmax_flows = 5\n").unwrap_err().to_string();
        assert!(e.contains("capture"), "{e}");
    }

    #[test]
    fn units_are_read() {
        let c = parse(
            "[capture]\ninterfaces = [\"eth1\"]\nbuffer = \"128M\"\ntimeout = 0.05\n[flows]\nudp_timeout = \"3m\"\n[health]\ndrop_alarm = \"0.5%\"\n[spool]\nmax_size = 1048576\n",
        )
        .unwrap();
        assert_eq!(c.capture.buffer_bytes, 128 << 20);
        assert_eq!(c.capture.timeout, Duration::from_millis(50));
        assert_eq!(c.flows.udp_timeout, 180);
        assert!((c.health.drop_alarm - 0.005).abs() < 1e-12);
        assert_eq!(c.spool.max_bytes, 1 << 20);
    }
}
