//! The `[alerts]` section of the collector's configuration file: delivery discipline
//! (throttle window, escalation, retries) and the channels (`[[alerts.channel]]`),
//! validated once into [`AlertsConfig`]. Secrets (the SMTP password, webhook URLs that
//! carry a token) are read from files named in the configuration, kept in [`Secret`]
//! (which never prints its value) and never logged.
//!
//! ```toml
//! [alerts]
//! throttle_seconds = 1800          # the same alert at most once per 30 minutes
//! escalate_after_seconds = 900     # unacknowledged critical alerts after 15 minutes…
//! escalate_to = ["pager"]          # …go to these channels too
//!
//! [[alerts.channel]]
//! name = "oncall-mail"
//! type = "email"                   # email | webhook | syslog
//! server = "smtp.example.jp"
//! port = 587
//! tls = "starttls"                 # starttls | tls | none (loopback, or with insecure)
//! username = "setten"
//! password_file = "/etc/setten/smtp-password"
//! from = "setten <setten@hospital.example.jp>"
//! to = ["oncall@hospital.example.jp"]
//! min_severity = "warning"
//! quiet_hours = "毎日 22:00-07:00"   # except critical
//! ```

use super::Severity;
use crate::config::ConfigError;
use serde::Deserialize;
use setten_agent::inventory::window::{self, Window};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// Throttle window unless configured (30 minutes).
pub const DEFAULT_THROTTLE_SECONDS: u64 = 1800;
/// How often the periodic checks run unless configured.
pub const DEFAULT_EVALUATE_EVERY_SECONDS: u64 = 60;
/// First retry delay unless configured.
pub const DEFAULT_RETRY_FIRST_SECONDS: u64 = 5;
/// Longest retry delay unless configured.
pub const DEFAULT_RETRY_MAX_SECONDS: u64 = 900;
/// A delivery is given up this long after its alert was raised unless configured.
pub const DEFAULT_GIVE_UP_HOURS: u64 = 72;
/// Largest secret file read.
const MAX_SECRET_BYTES: u64 = 8192;

/// A value that must not be shown: `Debug` and `Display` print `<secret>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Wraps a value.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// Webhook payload shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookFormat {
    /// setten's own JSON (`setten.alert/1`).
    Json,
    /// Slack incoming webhook: `{"text", "blocks"}`.
    Slack,
    /// Microsoft Teams (Workflows): a message with an Adaptive Card.
    Teams,
    /// Microsoft Teams Office 365 connector: a MessageCard.
    TeamsMessageCard,
}

/// How an SMTP connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// STARTTLS after connecting (port 587), required.
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// None: only to a loopback server, or with `insecure = true`.
    None,
}

/// How syslog messages travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyslogTransport {
    /// RFC 5426: one message per datagram.
    Udp,
    /// RFC 6587 octet counting over TCP.
    Tcp,
    /// RFC 5425: octet counting over TLS.
    Tls,
}

/// Which language a channel's messages are in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// Japanese.
    Ja,
    /// English.
    En,
    /// Japanese, then English.
    JaEn,
}

/// A channel's kind and its settings.
#[derive(Clone, Debug, PartialEq)]
pub enum ChannelKind {
    /// HTTP POST of JSON.
    Webhook {
        /// The URL (may carry a token).
        url: Secret,
        /// Payload shape.
        format: WebhookFormat,
        /// Extra CA certificates (PEM).
        ca_file: Option<PathBuf>,
    },
    /// E-mail over SMTP.
    Email {
        /// Server host name or address.
        server: String,
        /// Port.
        port: u16,
        /// Protection.
        tls: SmtpTls,
        /// Login, with the password.
        credentials: Option<(String, Secret)>,
        /// From.
        from: String,
        /// Recipients.
        to: Vec<String>,
        /// Extra CA certificate (PEM) for the server.
        ca_file: Option<PathBuf>,
    },
    /// Syslog (RFC 5424).
    Syslog {
        /// Server and port.
        address: String,
        /// Transport.
        transport: SyslogTransport,
        /// Name checked in the server's certificate (TLS).
        server_name: String,
        /// Extra CA certificate (PEM) for the server.
        ca_file: Option<PathBuf>,
        /// Facility number (RFC 5424 §6.2.1).
        facility: u8,
        /// HOSTNAME field.
        hostname: String,
    },
}

/// One configured channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Channel {
    /// Name (routing, the outbox, `alert test NAME`).
    pub name: String,
    /// Kind and settings.
    pub kind: ChannelKind,
    /// Least severity routed here.
    pub min_severity: Severity,
    /// Rules routed here (ids, or prefixes ending in `*`); empty: all.
    pub rules: Vec<String>,
    /// Only escalations are sent here.
    pub escalation_only: bool,
    /// Quiet hours in the site's time (nothing but critical alerts is sent then).
    pub quiet_hours: Vec<Window>,
    /// Language.
    pub lang: Lang,
}

impl Channel {
    /// Whether an alert of this rule and severity is routed here (not as an escalation).
    pub fn routes(&self, rule: &str, severity: Severity) -> bool {
        !self.escalation_only
            && severity >= self.min_severity
            && (self.rules.is_empty()
                || self.rules.iter().any(|r| match r.strip_suffix('*') {
                    Some(prefix) => rule.starts_with(prefix),
                    None => r == rule,
                }))
    }

    /// Whether `unix_secs` falls in the channel's quiet hours.
    pub fn quiet_at(&self, unix_secs: i64, utc_offset_secs: i32) -> bool {
        self.quiet_hours
            .iter()
            .any(|w| w.contains(unix_secs, utc_offset_secs))
    }

    /// "webhook", "email" or "syslog".
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            ChannelKind::Webhook { .. } => "webhook",
            ChannelKind::Email { .. } => "email",
            ChannelKind::Syslog { .. } => "syslog",
        }
    }
}

/// The validated `[alerts]` section.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertsConfig {
    /// Throttle window, seconds.
    pub throttle_seconds: u64,
    /// Escalation delay for unacknowledged critical alerts (`None`: no escalation).
    pub escalate_after_seconds: Option<u64>,
    /// Channels escalations go to.
    pub escalate_to: Vec<String>,
    /// Periodic checks every this many seconds.
    pub evaluate_every_seconds: u64,
    /// First retry delay.
    pub retry_first_seconds: u64,
    /// Longest retry delay.
    pub retry_max_seconds: u64,
    /// Give a delivery up this long after its alert was raised.
    pub give_up_hours: u64,
    /// Channels.
    pub channels: Vec<Channel>,
}

impl Default for AlertsConfig {
    fn default() -> AlertsConfig {
        AlertsConfig {
            throttle_seconds: DEFAULT_THROTTLE_SECONDS,
            escalate_after_seconds: None,
            escalate_to: Vec::new(),
            evaluate_every_seconds: DEFAULT_EVALUATE_EVERY_SECONDS,
            retry_first_seconds: DEFAULT_RETRY_FIRST_SECONDS,
            retry_max_seconds: DEFAULT_RETRY_MAX_SECONDS,
            give_up_hours: DEFAULT_GIVE_UP_HOURS,
            channels: Vec::new(),
        }
    }
}

impl AlertsConfig {
    /// A channel by name.
    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.name == name)
    }
}

/// `[alerts]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsDoc {
    throttle_seconds: Option<u64>,
    escalate_after_seconds: Option<u64>,
    #[serde(default)]
    escalate_to: Vec<String>,
    evaluate_every_seconds: Option<u64>,
    retry_first_seconds: Option<u64>,
    retry_max_seconds: Option<u64>,
    give_up_hours: Option<u64>,
    #[serde(default)]
    channel: Vec<toml::Spanned<ChannelDoc>>,
}

/// `[[alerts.channel]]` as written: the keys of every type; those another type takes
/// are refused after parsing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelDoc {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    min_severity: Option<String>,
    #[serde(default)]
    rules: Vec<String>,
    escalation_only: Option<bool>,
    quiet_hours: Option<String>,
    lang: Option<String>,
    // webhook
    url: Option<String>,
    url_file: Option<PathBuf>,
    format: Option<String>,
    // email
    server: Option<String>,
    port: Option<u16>,
    tls: Option<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    from: Option<String>,
    to: Option<Vec<String>>,
    insecure: Option<bool>,
    // syslog
    address: Option<String>,
    transport: Option<String>,
    server_name: Option<String>,
    facility: Option<String>,
    hostname: Option<String>,
    // webhook, email, syslog
    ca_file: Option<PathBuf>,
}

/// Byte offset of the line assigning `key` within a table's text (0 if not found).
fn key_offset(table: &str, key: &str) -> usize {
    let mut off = 0;
    for (i, line) in table.split_inclusive('\n').enumerate() {
        let t = line.trim_start();
        if i > 0 && t.starts_with('[') {
            return 0;
        }
        if let Some(rest) = t.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return off + (line.len() - t.len());
            }
        }
        off += line.len();
    }
    0
}

fn read_secret(path: &Path) -> Result<Secret, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut s = String::new();
    f.take(MAX_SECRET_BYTES)
        .read_to_string(&mut s)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let v = s.trim();
    if v.is_empty() {
        return Err(format!("{}: the file is empty", path.display()));
    }
    Ok(Secret(v.to_owned()))
}

/// Facility names of RFC 5424 §6.2.1 (Table 1) that a SIEM feed would use.
fn facility(name: &str) -> Option<u8> {
    Some(match name {
        "user" => 1,
        "daemon" => 3,
        "auth" => 4,
        "authpriv" => 10,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    })
}

/// Whether `host` (a name or address) is a loopback one.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The host part of `host:port` or `[v6]:port`.
fn host_of(address: &str) -> Option<(String, u16)> {
    if let Ok(sa) = address.parse::<SocketAddr>() {
        return Some((sa.ip().to_string(), sa.port()));
    }
    let (h, p) = address.rsplit_once(':')?;
    let port = p.parse().ok()?;
    (!h.is_empty() && !h.contains(':')).then(|| (h.to_owned(), port))
}

/// Validates `[alerts]`. `text` is the whole file's text (for line numbers), `file` the
/// file (relative paths are relative to its directory).
pub fn resolve(doc: AlertsDoc, text: &str, file: &Path) -> Result<AlertsConfig, ConfigError> {
    let base = file.parent().unwrap_or(Path::new("."));
    let rel = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    let line_of = |offset: usize| text.get(..offset).map(|t| t.lines().count().max(1));
    let top = |key: &str, message: String| ConfigError {
        file: Some(file.to_owned()),
        line: text.find(&format!("\n{key}")).and_then(|o| line_of(o + 2)),
        key: Some(format!("alerts.{key}")),
        message,
    };
    let throttle = doc.throttle_seconds.unwrap_or(DEFAULT_THROTTLE_SECONDS);
    if throttle == 0 || throttle > 30 * 86_400 {
        return Err(top(
            "throttle_seconds",
            format!("{throttle} is out of range; use 1 to 2592000 (30 days)"),
        ));
    }
    let every = doc
        .evaluate_every_seconds
        .unwrap_or(DEFAULT_EVALUATE_EVERY_SECONDS);
    if !(1..=3600).contains(&every) {
        return Err(top(
            "evaluate_every_seconds",
            format!("{every} is out of range; use 1 to 3600"),
        ));
    }
    let first = doc
        .retry_first_seconds
        .unwrap_or(DEFAULT_RETRY_FIRST_SECONDS);
    let max = doc.retry_max_seconds.unwrap_or(DEFAULT_RETRY_MAX_SECONDS);
    if !(1..=3600).contains(&first) {
        return Err(top(
            "retry_first_seconds",
            format!("{first} is out of range; use 1 to 3600"),
        ));
    }
    if max < first || max > 86_400 {
        return Err(top(
            "retry_max_seconds",
            format!("{max} is out of range; use retry_first_seconds ({first}) to 86400"),
        ));
    }
    let give_up = doc.give_up_hours.unwrap_or(DEFAULT_GIVE_UP_HOURS);
    if !(1..=720).contains(&give_up) {
        return Err(top(
            "give_up_hours",
            format!("{give_up} is out of range; use 1 to 720"),
        ));
    }
    let escalate_after = match doc.escalate_after_seconds {
        None | Some(0) => None,
        Some(s) if s <= 7 * 86_400 => Some(s),
        Some(s) => {
            return Err(top(
                "escalate_after_seconds",
                format!("{s} is out of range; use 0 (off) to 604800"),
            ))
        }
    };

    let mut channels: Vec<Channel> = Vec::new();
    for (index, spanned) in doc.channel.into_iter().enumerate() {
        let span = spanned.span();
        let d = spanned.into_inner();
        let table = text.get(span.start..).unwrap_or("");
        let fail = |key: &str, message: String| ConfigError {
            file: Some(file.to_owned()),
            line: line_of(span.start + key_offset(table, key) + 1),
            key: Some(format!("alerts.channel[{index}].{key}")),
            message,
        };
        let name = d.name.trim().to_owned();
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(fail(
                "name",
                format!("{:?}: use 1 to 64 of A-Z a-z 0-9 _ -", d.name),
            ));
        }
        if channels.iter().any(|c| c.name == name) {
            return Err(fail(
                "name",
                format!("a channel named {name:?} is already defined"),
            ));
        }
        let min_severity = match &d.min_severity {
            None => Severity::Info,
            Some(s) => Severity::parse(s).ok_or_else(|| {
                fail(
                    "min_severity",
                    format!("{s:?}: use info, warning or critical"),
                )
            })?,
        };
        for r in &d.rules {
            let id = r.strip_suffix('*').unwrap_or(r);
            if !super::rules::KNOWN.iter().any(|k| k.0.starts_with(id))
                || (id == r && !super::rules::KNOWN.iter().any(|k| k.0 == id))
            {
                return Err(fail("rules", format!("{r:?} names no alert rule (ids such as alert.point.weak, or prefixes such as alert.backup.*)")));
            }
        }
        let quiet_hours = match &d.quiet_hours {
            None => Vec::new(),
            Some(q) => {
                window::parse_windows(q).map_err(|e| fail("quiet_hours", format!("{q:?}: {e}")))?
            }
        };
        let lang = match d.lang.as_deref() {
            None | Some("ja") => Lang::Ja,
            Some("en") => Lang::En,
            Some("ja+en") => Lang::JaEn,
            Some(other) => return Err(fail("lang", format!("{other:?}: use ja, en or ja+en"))),
        };
        let ca_file = d.ca_file.clone().map(rel);
        if let Some(ca) = &ca_file {
            if !ca.is_file() {
                return Err(fail("ca_file", format!("{}: no such file", ca.display())));
            }
        }
        let not_for = |present: &[(&str, bool)], kind: &str| -> Result<(), ConfigError> {
            for (key, p) in present {
                if *p {
                    return Err(fail(key, format!("not a key of a {kind} channel")));
                }
            }
            Ok(())
        };
        let webhook_keys = [
            ("url", d.url.is_some()),
            ("url_file", d.url_file.is_some()),
            ("format", d.format.is_some()),
        ];
        let email_keys = [
            ("server", d.server.is_some()),
            ("port", d.port.is_some()),
            ("tls", d.tls.is_some()),
            ("username", d.username.is_some()),
            ("password_file", d.password_file.is_some()),
            ("from", d.from.is_some()),
            ("to", d.to.is_some()),
            ("insecure", d.insecure.is_some()),
        ];
        let syslog_keys = [
            ("address", d.address.is_some()),
            ("transport", d.transport.is_some()),
            ("server_name", d.server_name.is_some()),
            ("facility", d.facility.is_some()),
            ("hostname", d.hostname.is_some()),
        ];
        let kind = match d.kind.as_str() {
            "webhook" => {
                not_for(&email_keys, "webhook")?;
                not_for(&syslog_keys, "webhook")?;
                let url = match (&d.url, &d.url_file) {
                    (Some(u), None) => Secret(u.trim().to_owned()),
                    (None, Some(f)) => read_secret(&rel(f.clone())).map_err(|e| fail("url_file", e))?,
                    (Some(_), Some(_)) => return Err(fail("url", "give url or url_file, not both".into())),
                    (None, None) => return Err(fail("url", "a webhook needs url or url_file (a file holding the URL, for URLs that carry a token)".into())),
                };
                let key = if d.url.is_some() { "url" } else { "url_file" };
                let parsed = reqwest::Url::parse(url.expose())
                    .map_err(|e| fail(key, format!("not a URL: {e}")))?;
                match parsed.scheme() {
                    "https" => {}
                    "http" if parsed.host_str().is_some_and(is_loopback_host) => {}
                    "http" => {
                        return Err(fail(
                            key,
                            "plain http is only allowed to a loopback address; use https".into(),
                        ))
                    }
                    s => return Err(fail(key, format!("scheme {s:?}: use https"))),
                }
                let format = match d.format.as_deref() {
                    None | Some("json") => WebhookFormat::Json,
                    Some("slack") => WebhookFormat::Slack,
                    Some("teams") => WebhookFormat::Teams,
                    Some("teams-messagecard") => WebhookFormat::TeamsMessageCard,
                    Some(f) => {
                        return Err(fail(
                            "format",
                            format!("{f:?}: use json, slack, teams or teams-messagecard"),
                        ))
                    }
                };
                ChannelKind::Webhook {
                    url,
                    format,
                    ca_file,
                }
            }
            "email" => {
                not_for(&webhook_keys, "email")?;
                not_for(&syslog_keys, "email")?;
                let server = d
                    .server
                    .clone()
                    .filter(|s| !s.trim().is_empty())
                    .ok_or_else(|| fail("server", "an email channel needs server".into()))?;
                let tls = match d.tls.as_deref() {
                    None | Some("starttls") => SmtpTls::StartTls,
                    Some("tls") => SmtpTls::Tls,
                    Some("none") => SmtpTls::None,
                    Some(t) => {
                        return Err(fail("tls", format!("{t:?}: use starttls, tls or none")))
                    }
                };
                if tls == SmtpTls::None
                    && !is_loopback_host(&server)
                    && !d.insecure.unwrap_or(false)
                {
                    return Err(fail("tls", format!("refusing SMTP without TLS to {server}: the alert and the password would cross the network in clear. Use starttls or tls; `none` is allowed to a loopback server, or with insecure = true for tests")));
                }
                let port = d.port.unwrap_or(match tls {
                    SmtpTls::StartTls => 587,
                    SmtpTls::Tls => 465,
                    SmtpTls::None => 25,
                });
                let credentials = match (&d.username, &d.password_file) {
                    (Some(u), Some(p)) => Some((
                        u.clone(),
                        read_secret(&rel(p.clone())).map_err(|e| fail("password_file", e))?,
                    )),
                    (None, None) => None,
                    (Some(_), None) => {
                        return Err(fail(
                            "password_file",
                            "username is set but password_file is not".into(),
                        ))
                    }
                    (None, Some(_)) => {
                        return Err(fail(
                            "username",
                            "password_file is set but username is not".into(),
                        ))
                    }
                };
                let from = d
                    .from
                    .clone()
                    .ok_or_else(|| fail("from", "an email channel needs from".into()))?;
                from.parse::<lettre::message::Mailbox>()
                    .map_err(|e| fail("from", format!("{from:?}: {e}")))?;
                let to = d.to.clone().unwrap_or_default();
                if to.is_empty() {
                    return Err(fail(
                        "to",
                        "an email channel needs at least one recipient".into(),
                    ));
                }
                for t in &to {
                    t.parse::<lettre::message::Mailbox>()
                        .map_err(|e| fail("to", format!("{t:?}: {e}")))?;
                }
                ChannelKind::Email {
                    server,
                    port,
                    tls,
                    credentials,
                    from,
                    to,
                    ca_file,
                }
            }
            "syslog" => {
                not_for(&webhook_keys, "syslog")?;
                not_for(&email_keys, "syslog")?;
                let transport = match d.transport.as_deref() {
                    None | Some("tls") => SyslogTransport::Tls,
                    Some("tcp") => SyslogTransport::Tcp,
                    Some("udp") => SyslogTransport::Udp,
                    Some(t) => {
                        return Err(fail("transport", format!("{t:?}: use tls, tcp or udp")))
                    }
                };
                let address = d.address.clone().ok_or_else(|| {
                    fail(
                        "address",
                        "a syslog channel needs address (host:port, e.g. siem.example.jp:6514)"
                            .into(),
                    )
                })?;
                let (host, _) = host_of(&address)
                    .ok_or_else(|| fail("address", format!("{address:?} is not host:port")))?;
                let facility = match &d.facility {
                    None => 16,
                    Some(f) => facility(f).ok_or_else(|| {
                        fail(
                            "facility",
                            format!("{f:?}: use local0 to local7, user, daemon, auth or authpriv"),
                        )
                    })?,
                };
                let hostname = d.hostname.clone().unwrap_or_else(|| {
                    std::fs::read_to_string("/proc/sys/kernel/hostname")
                        .map(|h| h.trim().to_owned())
                        .ok()
                        .filter(|h| !h.is_empty())
                        .unwrap_or_else(|| "-".into())
                });
                ChannelKind::Syslog {
                    server_name: d.server_name.clone().unwrap_or(host),
                    address,
                    transport,
                    ca_file,
                    facility,
                    hostname,
                }
            }
            other => {
                return Err(fail(
                    "type",
                    format!("{other:?}: use webhook, email or syslog"),
                ))
            }
        };
        channels.push(Channel {
            name,
            kind,
            min_severity,
            rules: d.rules,
            escalation_only: d.escalation_only.unwrap_or(false),
            quiet_hours,
            lang,
        });
    }
    for name in &doc.escalate_to {
        if !channels.iter().any(|c| &c.name == name) {
            return Err(top(
                "escalate_to",
                format!("{name:?} is not a configured channel"),
            ));
        }
    }
    if escalate_after.is_some() && doc.escalate_to.is_empty() {
        return Err(top(
            "escalate_to",
            "escalate_after_seconds is set but escalate_to names no channel".into(),
        ));
    }
    Ok(AlertsConfig {
        throttle_seconds: throttle,
        escalate_after_seconds: escalate_after,
        escalate_to: doc.escalate_to,
        evaluate_every_seconds: every,
        retry_first_seconds: first,
        retry_max_seconds: max,
        give_up_hours: give_up,
        channels,
    })
}
