//! The 現地調査 (on-site survey) report and the 機器・回線一覧 (device and line ledger)
//! export, shared by `setten-agent analyze --report` and `setten-collector report`.
//!
//! Both binaries hand a [`ReportInput`] — the connection points as the inventory derives
//! them, capture quality, sensors, backup findings, the period, the site's name — to
//! [`build`], which makes one language's [`Report`]: every string a reader sees,
//! decided once, with the stable codes beside them. The renderers only lay it out:
//! - [`html`]: one self-contained, print-ready A4 file (minijinja, autoescaped: SNI,
//!   host names and certificate fields come from the network and are hostile);
//! - [`csv`]: the ledger rows, UTF-8 with BOM or Shift_JIS, formula-injection safe;
//! - JSON: the [`Report`] itself (`schema` = [`SCHEMA`]);
//! - [`pdf`]: the HTML printed by headless Chromium.
//!
//! Time is an input ([`ReportInput::generated_us`]), so golden files are stable.

pub mod backups;
pub mod catalog;
pub mod checklist;
pub mod csv;
pub mod diagram;
pub mod html;
pub mod pdf;

use crate::classify::Family;
use crate::inventory::ledger::Entry;
use crate::inventory::output::{far_label, local_time, offset_str, Lang};
use crate::inventory::policy::{Policy, Severity};
use crate::inventory::{ConnectionPoint, Direction};
use crate::record::Rfc3339;
use backups::{MediumSummary, RawBackup};
use catalog::Catalog;
use checklist::ChecklistItem;
use diagram::Diagram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The JSON form's schema name and version.
pub const SCHEMA: &str = "setten.report/1";
/// Far addresses listed on a card.
pub const MAX_CARD_IPS: usize = 16;
/// Longest string from the network shown anywhere (longer ones are cut with "…").
pub const MAX_SHOWN_CHARS: usize = 200;

/// A report could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A template failed to render (a defect: templates are embedded and tested).
    #[error("report template: {0}")]
    Template(String),
    /// A character that Shift_JIS cannot hold.
    #[error("CSV row {row}, column `{column}`: the character {ch:?} (U+{code:04X}) cannot be written in Shift_JIS; write the CSV in UTF-8 (the default) instead")]
    Unencodable {
        /// 1-based row, the header being row 1.
        row: usize,
        /// Column header.
        column: String,
        /// The character.
        ch: char,
        /// Its code point.
        code: u32,
    },
    /// PDF printing failed.
    #[error("PDF: {0}")]
    Pdf(String),
    /// I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Self-contained HTML.
    Html,
    /// The ledger CSV.
    Csv,
    /// JSON.
    Json,
    /// PDF through headless Chromium.
    Pdf,
}

impl Format {
    /// From a name (`html`, `csv`, `json`, `pdf`).
    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "html" | "htm" => Some(Format::Html),
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "pdf" => Some(Format::Pdf),
            _ => None,
        }
    }

    /// From a file name's extension.
    pub fn from_path(p: &std::path::Path) -> Option<Format> {
        Format::parse(p.extension()?.to_str()?)
    }

    /// The extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Pdf => "pdf",
        }
    }

    /// The HTTP Content-Type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
            Format::Pdf => "application/pdf",
        }
    }
}

/// The CSV's character encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CsvEncoding {
    /// UTF-8 with a byte-order mark (Excel reads it as UTF-8).
    #[default]
    Utf8Bom,
    /// Shift_JIS (older Japanese Excel set-ups); an unencodable character is an error.
    ShiftJis,
}

/// Capture quality as the report reads it: the JSON of
/// [`crate::inventory::quality::CaptureQuality`] (agents ship it as a finding), every
/// field optional so an older or newer agent's record still reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Quality {
    /// Files read (analyze).
    pub captures: Vec<QualityCapture>,
    /// First frame (RFC 3339).
    pub first_seen: Option<String>,
    /// Last frame.
    pub last_seen: Option<String>,
    /// Seconds covered.
    pub span_seconds: u64,
    /// Flows.
    pub flows: u64,
    /// TCP flows.
    pub tcp_flows: u64,
    /// Share of one-way TCP flows.
    pub tcp_one_way_share: f64,
    /// Share of TCP flows without handshake.
    pub tcp_mid_stream_share: f64,
    /// Share of duplicated frames.
    pub duplicate_share: f64,
    /// Truncated frames.
    pub truncated: u64,
    /// Drops.
    pub drops: Option<u64>,
    /// VLANs.
    pub vlans: Vec<u16>,
    /// Blind spots.
    pub blind_spots: Vec<QualityBlindSpot>,
}

/// A capture file in [`Quality`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QualityCapture {
    /// Path.
    pub path: String,
    /// Frames.
    pub packets: u64,
    /// Read to the end.
    pub complete: bool,
}

/// A blind spot in [`Quality`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QualityBlindSpot {
    /// Stable id.
    pub id: String,
    /// Japanese.
    pub ja: String,
    /// English.
    pub en: String,
}

impl Quality {
    /// From a capture-quality JSON object (a finding body); `None` if it does not read.
    pub fn from_json(v: serde_json::Value) -> Option<Quality> {
        serde_json::from_value(v).ok()
    }

    /// Combines the records of several sensors or intervals: the union of periods, VLANs
    /// and blind spots (by id, the later text), sums of counters, the worst shares.
    pub fn merge(&mut self, o: &Quality) {
        self.first_seen = match (self.first_seen.take(), &o.first_seen) {
            (Some(a), Some(b)) => Some(if parse_rfc3339(b) < parse_rfc3339(&a) {
                b.clone()
            } else {
                a
            }),
            (a, b) => a.or_else(|| b.clone()),
        };
        self.last_seen = match (self.last_seen.take(), &o.last_seen) {
            (Some(a), Some(b)) => Some(if parse_rfc3339(b) > parse_rfc3339(&a) {
                b.clone()
            } else {
                a
            }),
            (a, b) => a.or_else(|| b.clone()),
        };
        if let (Some(a), Some(b)) = (
            self.first_seen.as_deref().and_then(parse_rfc3339),
            self.last_seen.as_deref().and_then(parse_rfc3339),
        ) {
            self.span_seconds = b.saturating_sub(a) / 1_000_000;
        }
        self.flows = self.flows.saturating_add(o.flows);
        self.tcp_flows = self.tcp_flows.saturating_add(o.tcp_flows);
        self.tcp_one_way_share = self.tcp_one_way_share.max(o.tcp_one_way_share);
        self.tcp_mid_stream_share = self.tcp_mid_stream_share.max(o.tcp_mid_stream_share);
        self.duplicate_share = self.duplicate_share.max(o.duplicate_share);
        self.truncated = self.truncated.saturating_add(o.truncated);
        self.drops = match (self.drops, o.drops) {
            (Some(a), Some(b)) => Some(a.saturating_add(b)),
            (a, b) => a.or(b),
        };
        self.vlans.extend(o.vlans.iter().copied());
        self.vlans.sort_unstable();
        self.vlans.dedup();
        self.vlans.truncate(4096);
        for b in &o.blind_spots {
            if let Some(x) = self.blind_spots.iter_mut().find(|x| x.id == b.id) {
                *x = b.clone();
            } else if self.blind_spots.len() < 64 {
                self.blind_spots.push(b.clone());
            }
        }
        for c in o
            .captures
            .iter()
            .take(256usize.saturating_sub(self.captures.len()))
        {
            self.captures.push(c.clone());
        }
    }
}

/// A sensor that contributed: a capture file's reader or a collector's agent.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SensorInput {
    /// Name (agent name, or capture file).
    pub name: String,
    /// Last heard from, µs (collector).
    pub last_seen_us: Option<i64>,
    /// The latest health report (collector).
    pub health: Option<serde_json::Value>,
}

/// Where the data came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `setten-agent analyze` on capture files.
    Captures,
    /// `setten-collector` (agents' findings).
    Collector,
}

/// Everything a report is made from.
pub struct ReportInput<'a> {
    /// Connection points (as [`crate::inventory::Inventory::points`] orders them).
    pub points: &'a [ConnectionPoint],
    /// Ledger entries no point matched.
    pub unseen: &'a [Entry],
    /// Whether a ledger was given.
    pub ledger_given: bool,
    /// Capture quality, when known.
    pub quality: Option<Quality>,
    /// Sensors.
    pub sensors: Vec<SensorInput>,
    /// Backup findings (agent name and `Body::Backup` map).
    pub backups: Vec<RawBackup>,
    /// The site policy (time zone, risk texts).
    pub policy: &'a Policy,
    /// The hospital or site name.
    pub site: Option<String>,
    /// When the report is made, µs (injected so golden files are stable).
    pub generated_us: u64,
    /// "setten 0.1.0".
    pub tool: String,
    /// Where the data came from.
    pub source: Source,
}

/// One language's report: what every renderer lays out.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// `ja` or `en`.
    pub lang: &'static str,
    /// Local time it was made.
    pub generated: String,
    /// RFC 3339 UTC.
    pub generated_at: String,
    /// Tool and version.
    pub tool: String,
    /// Site name.
    pub site: Option<String>,
    /// Source.
    pub source: Source,
    /// The period covered.
    pub period: Period,
    /// The summary.
    pub summary: Summary,
    /// One card per point.
    pub points: Vec<PointCard>,
    /// Ledger entries not seen.
    pub unseen: Vec<UnseenRow>,
    /// Internal hosts with an external link.
    pub hosts: Vec<HostRow>,
    /// The network diagram.
    pub diagram: Diagram,
    /// Checklist items.
    pub checklist: Vec<ChecklistItem>,
    /// Backup media.
    pub backups: Vec<MediumSummary>,
    /// Capture quality.
    pub quality: Option<QualityView>,
    /// Sensors.
    pub sensors: Vec<SensorRow>,
}

/// The period covered.
#[derive(Clone, Debug, Serialize)]
pub struct Period {
    /// First activity, local time.
    pub first: Option<String>,
    /// Last activity, local time.
    pub last: Option<String>,
    /// Hours covered.
    pub hours: u64,
    /// UTC offset ("+09:00").
    pub utc_offset: String,
}

/// The summary.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Points.
    pub points: usize,
    /// Unregistered.
    pub unregistered: usize,
    /// Drifted.
    pub drifted: usize,
    /// Registered.
    pub registered: usize,
    /// Ledger entries not seen.
    pub unseen: usize,
    /// Whether a ledger was given.
    pub ledger_given: bool,
    /// Internal hosts with an external link.
    pub hosts: usize,
    /// Points per severity, most severe first (only non-zero).
    pub by_severity: Vec<SeverityCount>,
    /// The most severe risks, with how many points carry each.
    pub top_risks: Vec<TopRisk>,
}

/// Points of one severity.
#[derive(Clone, Debug, Serialize)]
pub struct SeverityCount {
    /// Code (`critical` … `info`, `none`).
    pub severity: &'static str,
    /// Label.
    pub label: String,
    /// Points.
    pub count: usize,
}

/// A risk in the summary.
#[derive(Clone, Debug, Serialize)]
pub struct TopRisk {
    /// Risk id.
    pub id: &'static str,
    /// Severity code.
    pub severity: &'static str,
    /// Severity label.
    pub severity_label: String,
    /// Title.
    pub title: String,
    /// Points carrying it.
    pub count: usize,
    /// Those points' short labels.
    pub points: Vec<String>,
}

/// A risk on a card.
#[derive(Clone, Debug, Serialize)]
pub struct RiskRow {
    /// Risk id.
    pub id: &'static str,
    /// Severity code.
    pub severity: &'static str,
    /// Severity label.
    pub severity_label: String,
    /// Title.
    pub title: String,
    /// What was seen.
    pub detail: Option<String>,
}

/// Evidence on a card.
#[derive(Clone, Debug, Serialize)]
pub struct EvidenceRow {
    /// Rule id.
    pub rule: String,
    /// Field.
    pub field: String,
    /// Value as seen.
    pub value: String,
}

/// One hour of the activity bar.
#[derive(Clone, Debug, Serialize)]
pub struct HourBar {
    /// Hour of the day.
    pub hour: usize,
    /// Sessions active.
    pub count: u32,
    /// x in the SVG.
    pub x: u32,
    /// y in the SVG.
    pub y: u32,
    /// Height in the SVG.
    pub h: u32,
}

/// One connection point as a card.
#[derive(Clone, Debug, Serialize)]
pub struct PointCard {
    /// Stable id.
    pub id: String,
    /// Number on the report ("CP-01").
    pub number: String,
    /// Severity code (`none` without risks).
    pub severity: &'static str,
    /// Severity label.
    pub severity_label: String,
    /// Service id.
    pub service: &'static str,
    /// Family (`remote-access`, `vpn`, `anonymiser`).
    pub family: &'static str,
    /// Direction code.
    pub direction: &'static str,
    /// Direction label.
    pub direction_label: String,
    /// Internal address.
    pub internal_ip: String,
    /// Exposed port (inbound).
    pub internal_port: Option<u16>,
    /// Internal names.
    pub internal_names: Vec<String>,
    /// MAC.
    pub mac: Option<String>,
    /// MAC vendor.
    pub mac_vendor: Option<String>,
    /// VLANs.
    pub vlans: Vec<u16>,
    /// `host`, `cloud`, `any`.
    pub far_kind: &'static str,
    /// The far side in a few words.
    pub far_label: String,
    /// Short far-side label for the diagram.
    pub far_short: String,
    /// Far names.
    pub far_names: Vec<String>,
    /// Far addresses (the first [`MAX_CARD_IPS`]).
    pub far_ips: Vec<String>,
    /// How many far addresses.
    pub far_ip_count: usize,
    /// Vendor / product.
    pub product: Option<String>,
    /// Transports.
    pub transports: Vec<String>,
    /// Server ports.
    pub ports: Vec<u16>,
    /// First seen, local.
    pub first_seen: String,
    /// Last seen, local.
    pub last_seen: String,
    /// Sessions.
    pub sessions: u64,
    /// Bytes.
    pub bytes: u64,
    /// Bytes, readable.
    pub bytes_human: String,
    /// Sessions per hour of the day.
    pub hours: [u32; 24],
    /// The hours as SVG bars.
    pub hour_bars: Vec<HourBar>,
    /// Hosts reached.
    pub reach: Vec<String>,
    /// Evidence.
    pub evidence: Vec<EvidenceRow>,
    /// Versions seen.
    pub versions: Vec<String>,
    /// Risks.
    pub risks: Vec<RiskRow>,
    /// Ledger status code.
    pub ledger_status: &'static str,
    /// Ledger status label (with the entry and what differs).
    pub ledger_label: String,
    /// Ledger entry id.
    pub ledger_entry: Option<String>,
    /// What to do.
    pub advice: Vec<String>,
    /// Agents that saw it.
    pub agents: Vec<String>,
}

/// A ledger entry not seen.
#[derive(Clone, Debug, Serialize)]
pub struct UnseenRow {
    /// Entry id.
    pub id: String,
    /// Vendor.
    pub vendor: String,
    /// System.
    pub system: String,
    /// Services.
    pub services: Vec<&'static str>,
}

/// An internal host with an external link.
#[derive(Clone, Debug, Serialize)]
pub struct HostRow {
    /// Address.
    pub ip: String,
    /// Names.
    pub names: Vec<String>,
    /// MAC.
    pub mac: Option<String>,
    /// MAC vendor.
    pub mac_vendor: Option<String>,
    /// Its points' numbers.
    pub points: Vec<String>,
    /// Services.
    pub services: Vec<&'static str>,
    /// Directions (labels).
    pub directions: Vec<String>,
    /// Highest severity code.
    pub severity: &'static str,
    /// Highest severity label.
    pub severity_label: String,
    /// Worst ledger status code.
    pub ledger_status: &'static str,
    /// Its label.
    pub ledger_label: String,
    /// First seen, local.
    pub first_seen: String,
    /// Last seen, local.
    pub last_seen: String,
}

/// Capture quality as shown.
#[derive(Clone, Debug, Serialize)]
pub struct QualityView {
    /// Files.
    pub captures: Vec<QualityCapture>,
    /// Flows.
    pub flows: u64,
    /// TCP flows.
    pub tcp_flows: u64,
    /// "12.5 %".
    pub one_way: String,
    /// "12.5 %".
    pub mid_stream: String,
    /// "0.1 %".
    pub duplicates: String,
    /// Truncated frames.
    pub truncated: u64,
    /// Drops.
    pub drops: Option<u64>,
    /// VLANs, joined.
    pub vlans: String,
    /// Blind spots in the report's language.
    pub blind_spots: Vec<String>,
}

/// A sensor as shown.
#[derive(Clone, Debug, Serialize)]
pub struct SensorRow {
    /// Name.
    pub name: String,
    /// Last heard from, local.
    pub last_seen: Option<String>,
    /// A short health line.
    pub health: Option<String>,
}

/// Cuts a string from the network to [`MAX_SHOWN_CHARS`] characters.
pub fn shown(s: &str) -> String {
    if s.chars().count() <= MAX_SHOWN_CHARS {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(MAX_SHOWN_CHARS - 1).collect();
        t.push('…');
        t
    }
}

/// Severity code of an optional severity.
pub fn severity_code(s: Option<Severity>) -> &'static str {
    s.map_or("none", Severity::as_str)
}

fn family_code(f: Family) -> &'static str {
    match f {
        Family::RemoteAccess => "remote-access",
        Family::Vpn => "vpn",
        Family::Anonymiser => "anonymiser",
    }
}

/// Local time of a µs timestamp, "2026-10-05 09:00".
fn local(us: u64, off: i32) -> String {
    local_time(us, off)
}

/// RFC 3339 UTC ("2026-10-05T00:00:00.000000Z", with or without fraction) to µs.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 20 || b.get(4) != Some(&b'-') || b.get(10) != Some(&b'T') {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let rest = s.get(19..)?;
    let (frac, tail) = match rest.strip_prefix('.') {
        Some(r) => {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            let digits = r.get(..n.min(6))?;
            let mut v: i64 = if digits.is_empty() {
                0
            } else {
                digits.parse().ok()?
            };
            for _ in digits.len()..6 {
                v *= 10;
            }
            (v, r.get(n..)?)
        }
        None => (0, rest),
    };
    if tail != "Z" {
        return None;
    }
    // Days from civil (H. Hinnant), the inverse of `record::civil_from_days`.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs.checked_mul(1_000_000)?.checked_add(frac)?).ok()
}

/// Bytes, readable ("1.2 MB").
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS.get(i).copied().unwrap_or("B"))
    }
}

fn severity_label(c: &Catalog, code: &str) -> String {
    c.get(&format!("severity.{code}")).to_owned()
}

fn ledger_rank(s: &str) -> u8 {
    match s {
        "unregistered" => 3,
        "drifted" => 2,
        "registered" => 1,
        _ => 0,
    }
}

/// Hour bars: 24 bars of 6 px with 1 px gaps, 24 px high at most.
fn hour_bars(hours: &[u32; 24]) -> Vec<HourBar> {
    const H: u32 = 24;
    let max = hours.iter().copied().max().unwrap_or(0).max(1);
    hours
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let h = if n == 0 {
                0
            } else {
                ((u64::from(n) * u64::from(H)).div_ceil(u64::from(max)) as u32).clamp(2, H)
            };
            HourBar {
                hour: i,
                count: n,
                x: i as u32 * 7,
                y: H - h,
                h,
            }
        })
        .collect()
}

fn card(p: &ConnectionPoint, n: usize, policy: &Policy, lang: Lang, c: &Catalog) -> PointCard {
    let off = policy.utc_offset_secs;
    let sev = severity_code(p.severity);
    let mut ledger_label = c.get(&format!("ledger.{}", p.ledger.status)).to_owned();
    if let Some(e) = &p.ledger.entry {
        ledger_label = format!("{ledger_label} ({})", shown(e));
    }
    if !p.ledger.reasons.is_empty() {
        let r: Vec<&str> = p
            .ledger
            .reasons
            .iter()
            .map(|d| {
                c.get(match d {
                    crate::inventory::ledger::Drift::FarEnd => "ledger.far_end",
                    crate::inventory::ledger::Drift::Service => "ledger.service",
                    crate::inventory::ledger::Drift::OutsideWindow => "ledger.outside_window",
                })
            })
            .collect();
        ledger_label = format!("{ledger_label}: {}", r.join(", "));
    }
    let risks: Vec<RiskRow> = p
        .risks
        .iter()
        .map(|r| {
            let info = policy.risk(r.id);
            RiskRow {
                id: r.id.as_str(),
                severity: r.severity.as_str(),
                severity_label: severity_label(c, r.severity.as_str()),
                title: match lang {
                    Lang::Ja => info.title_ja.clone(),
                    Lang::En => info.title_en.clone(),
                },
                detail: r.detail.as_deref().map(shown),
            }
        })
        .collect();
    // What to do: each risk's advice (rules/risks.toml), then the service's or its
    // family's, then the ledger status's (the catalog).
    let mut advice: Vec<String> = Vec::new();
    for r in &p.risks {
        let info = policy.risk(r.id);
        let a = match lang {
            Lang::Ja => info.advice_ja,
            Lang::En => info.advice_en,
        };
        if !a.is_empty() && !advice.contains(&a) {
            advice.push(a);
        }
    }
    let fam = family_code(p.family);
    if let Some(a) = c
        .try_get(&format!("advice.service.{}", p.service.as_str()))
        .or_else(|| c.try_get(&format!("advice.family.{fam}")))
    {
        advice.push(a.to_owned());
    }
    advice.push(
        c.get(&format!("advice.ledger.{}", p.ledger.status))
            .to_owned(),
    );
    let product = match (p.vendor.as_deref(), p.product.as_deref()) {
        (Some(v), Some(pr)) if pr.starts_with(v) => Some(pr.to_owned()),
        (Some(v), Some(pr)) => Some(format!("{v} / {pr}")),
        (v, pr) => v.or(pr).map(str::to_owned),
    }
    .map(|s| shown(&s));
    let far_short = match p.far_side.kind {
        "any" => c.get("far.any").to_owned(),
        "cloud" => p.far_side.name.clone().unwrap_or_default(),
        _ => {
            let ip = p.far_side.ips.first().map(IpAddr::to_string);
            match (p.far_side.names.first(), ip) {
                (Some(n), Some(ip)) => format!("{n} ({ip})"),
                (Some(n), None) => n.clone(),
                (None, Some(ip)) => ip,
                (None, None) => c.get("card.unknown").to_owned(),
            }
        }
    };
    PointCard {
        id: p.id.clone(),
        number: format!("CP-{n:02}"),
        severity: sev,
        severity_label: severity_label(c, sev),
        service: p.service.as_str(),
        family: fam,
        direction: p.direction.as_str(),
        direction_label: c
            .get(&format!("direction.{}", p.direction.as_str()))
            .to_owned(),
        internal_ip: p.internal.ip.to_string(),
        internal_port: p.internal.port,
        internal_names: p.internal.names.iter().map(|s| shown(s)).collect(),
        mac: p.internal.mac.clone(),
        mac_vendor: p.internal.mac_vendor.as_deref().map(shown),
        vlans: p.internal.vlans.clone(),
        far_kind: p.far_side.kind,
        far_label: shown(&far_label(p, lang)),
        far_short: shown(&far_short),
        far_names: p.far_side.names.iter().map(|s| shown(s)).collect(),
        far_ips: p
            .far_side
            .ips
            .iter()
            .take(MAX_CARD_IPS)
            .map(IpAddr::to_string)
            .collect(),
        far_ip_count: p.far_side.ip_count,
        product,
        transports: p.transports.clone(),
        ports: p.ports.clone(),
        first_seen: format!("{} {}", local(p.first_us, off), offset_str(off)),
        last_seen: format!("{} {}", local(p.last_us, off), offset_str(off)),
        sessions: p.sessions,
        bytes: p.bytes,
        bytes_human: human_bytes(p.bytes),
        hours: p.hours,
        hour_bars: hour_bars(&p.hours),
        reach: p
            .reach
            .iter()
            .map(|r| {
                let s: Vec<&str> = r.services.iter().map(|s| s.as_str()).collect();
                match r.names.first() {
                    Some(n) => format!("{} {} ({})", r.ip, shown(n), s.join(", ")),
                    None => format!("{} ({})", r.ip, s.join(", ")),
                }
            })
            .collect(),
        evidence: p
            .evidence
            .iter()
            .map(|e| EvidenceRow {
                rule: shown(&e.rule),
                field: shown(&e.field),
                value: shown(&e.value),
            })
            .collect(),
        versions: p.versions.iter().map(|s| shown(s)).collect(),
        risks,
        ledger_status: p.ledger.status,
        ledger_label,
        ledger_entry: p.ledger.entry.as_deref().map(shown),
        advice,
        agents: p.agents.iter().map(|s| shown(s)).collect(),
    }
}

fn host_rows(
    cards: &[PointCard],
    points: &[ConnectionPoint],
    off: i32,
    c: &Catalog,
) -> Vec<HostRow> {
    struct Acc<'a> {
        first: u64,
        last: u64,
        sev: Option<Severity>,
        ledger: &'static str,
        cards: Vec<&'a PointCard>,
    }
    let mut by: BTreeMap<IpAddr, Acc<'_>> = BTreeMap::new();
    for (p, cd) in points.iter().zip(cards) {
        let a = by.entry(p.internal.ip).or_insert(Acc {
            first: p.first_us,
            last: p.last_us,
            sev: None,
            ledger: "no_ledger",
            cards: Vec::new(),
        });
        a.first = a.first.min(p.first_us);
        a.last = a.last.max(p.last_us);
        a.sev = a.sev.max(p.severity);
        if ledger_rank(p.ledger.status) > ledger_rank(a.ledger) {
            a.ledger = p.ledger.status;
        }
        a.cards.push(cd);
    }
    by.into_iter()
        .map(|(ip, a)| {
            let first_card = a.cards.first();
            let mut services: Vec<&'static str> = a.cards.iter().map(|c| c.service).collect();
            services.sort_unstable();
            services.dedup();
            let mut dirs: Vec<&'static str> = a.cards.iter().map(|c| c.direction).collect();
            dirs.sort_unstable();
            dirs.dedup();
            let sev = severity_code(a.sev);
            HostRow {
                ip: ip.to_string(),
                names: first_card
                    .map(|c| c.internal_names.clone())
                    .unwrap_or_default(),
                mac: a.cards.iter().find_map(|c| c.mac.clone()),
                mac_vendor: a.cards.iter().find_map(|c| c.mac_vendor.clone()),
                points: a.cards.iter().map(|c| c.number.clone()).collect(),
                services,
                directions: dirs
                    .iter()
                    .map(|d| c.get(&format!("direction.{d}")).to_owned())
                    .collect(),
                severity: sev,
                severity_label: severity_label(c, sev),
                ledger_status: a.ledger,
                ledger_label: c.get(&format!("ledger.{}", a.ledger)).to_owned(),
                first_seen: format!("{} {}", local(a.first, off), offset_str(off)),
                last_seen: format!("{} {}", local(a.last, off), offset_str(off)),
            }
        })
        .collect()
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

fn sensor_row(s: &SensorInput, off: i32) -> SensorRow {
    let health = s.health.as_ref().and_then(|h| h.as_object()).map(|h| {
        let mut parts: Vec<String> = Vec::new();
        if let Some(v) = h.get("version").and_then(|v| v.as_str()) {
            parts.push(format!("v{}", shown(v)));
        }
        if let Some(v) = h.get("uptime_seconds").and_then(|v| v.as_u64()) {
            parts.push(format!("up {:.1} h", v as f64 / 3600.0));
        }
        if let Some(v) = h.get("packets").and_then(|v| v.as_u64()) {
            parts.push(format!("{v} pkts"));
        }
        if let Some(v) = h.get("drop_rate").and_then(|v| v.as_f64()) {
            parts.push(format!("drop {}", pct(v)));
        }
        if let Some(v) = h.get("dropped").and_then(|v| v.as_u64()) {
            parts.push(format!("dropped {v}"));
        }
        parts.join(" · ")
    });
    SensorRow {
        name: shown(&s.name),
        last_seen: s
            .last_seen_us
            .and_then(|t| u64::try_from(t).ok())
            .map(|t| format!("{} {}", local(t, off), offset_str(off))),
        health: health.filter(|h| !h.is_empty()),
    }
}

/// Makes one language's report.
pub fn build(input: &ReportInput<'_>, lang: Lang) -> Report {
    let c = Catalog::of(lang);
    let policy = input.policy;
    let off = policy.utc_offset_secs;
    let cards: Vec<PointCard> = input
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| card(p, i + 1, policy, lang, c))
        .collect();
    let hosts = host_rows(&cards, input.points, off, c);
    let count = |s: &str| input.points.iter().filter(|p| p.ledger.status == s).count();

    // Severity counts and top risks.
    let mut by_severity: Vec<SeverityCount> = Vec::new();
    for code in ["critical", "high", "medium", "low", "info", "none"] {
        let n = cards.iter().filter(|c| c.severity == code).count();
        if n > 0 {
            by_severity.push(SeverityCount {
                severity: code,
                label: severity_label(c, code),
                count: n,
            });
        }
    }
    let mut risk_points: BTreeMap<(std::cmp::Reverse<Severity>, &'static str), Vec<String>> =
        BTreeMap::new();
    for (p, cd) in input.points.iter().zip(&cards) {
        for r in &p.risks {
            risk_points
                .entry((std::cmp::Reverse(r.severity), r.id.as_str()))
                .or_default()
                .push(cd.number.clone());
        }
    }
    let top_risks: Vec<TopRisk> = risk_points
        .into_iter()
        .take(5)
        .map(|((std::cmp::Reverse(sev), id), pts)| {
            let info = crate::inventory::policy::RiskId::parse(id).map(|r| policy.risk(r));
            TopRisk {
                id,
                severity: sev.as_str(),
                severity_label: severity_label(c, sev.as_str()),
                title: info
                    .map(|i| match lang {
                        Lang::Ja => i.title_ja,
                        Lang::En => i.title_en,
                    })
                    .unwrap_or_else(|| id.to_owned()),
                count: pts.len(),
                points: pts,
            }
        })
        .collect();

    // The period: capture quality's first and last frame, else the points' activity.
    let q_first = input
        .quality
        .as_ref()
        .and_then(|q| q.first_seen.as_deref())
        .and_then(parse_rfc3339);
    let q_last = input
        .quality
        .as_ref()
        .and_then(|q| q.last_seen.as_deref())
        .and_then(parse_rfc3339);
    let p_first = input.points.iter().map(|p| p.first_us).min();
    let p_last = input.points.iter().map(|p| p.last_us).max();
    let first = match (q_first, p_first) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let last = match (q_last, p_last) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let period = Period {
        first: first.map(|t| local(t, off)),
        last: last.map(|t| local(t, off)),
        hours: match (first, last) {
            (Some(a), Some(b)) => b.saturating_sub(a) / 3_600_000_000,
            _ => 0,
        },
        utc_offset: offset_str(off),
    };

    let backups = backups::summarise(&input.backups, input.generated_us, off, c);
    let checklist = checklist::evaluate(input, &cards, &backups, lang);
    let quality = input.quality.as_ref().map(|q| QualityView {
        captures: q
            .captures
            .iter()
            .map(|x| QualityCapture {
                path: shown(&x.path),
                ..x.clone()
            })
            .collect(),
        flows: q.flows,
        tcp_flows: q.tcp_flows,
        one_way: pct(q.tcp_one_way_share),
        mid_stream: pct(q.tcp_mid_stream_share),
        duplicates: pct(q.duplicate_share),
        truncated: q.truncated,
        drops: q.drops,
        vlans: if q.vlans.is_empty() {
            c.get("card.none").to_owned()
        } else {
            q.vlans
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        },
        blind_spots: q
            .blind_spots
            .iter()
            .map(|b| {
                shown(match lang {
                    Lang::Ja => &b.ja,
                    Lang::En => &b.en,
                })
            })
            .collect(),
    });
    let diagram = diagram::layout(&cards, c);
    Report {
        schema: SCHEMA,
        lang: match lang {
            Lang::Ja => "ja",
            Lang::En => "en",
        },
        generated: format!("{} {}", local(input.generated_us, off), offset_str(off)),
        generated_at: Rfc3339(input.generated_us).to_string(),
        tool: input.tool.clone(),
        site: input.site.as_deref().map(shown),
        source: input.source,
        period,
        summary: Summary {
            points: cards.len(),
            unregistered: count("unregistered"),
            drifted: count("drifted"),
            registered: count("registered"),
            unseen: input.unseen.len(),
            ledger_given: input.ledger_given,
            hosts: hosts.len(),
            by_severity,
            top_risks,
        },
        unseen: input
            .unseen
            .iter()
            .map(|e| UnseenRow {
                id: shown(&e.id),
                vendor: shown(&e.vendor),
                system: shown(&e.system),
                services: e.services.iter().map(|s| s.as_str()).collect(),
            })
            .collect(),
        hosts,
        diagram,
        checklist,
        backups,
        quality,
        sensors: input.sensors.iter().map(|s| sensor_row(s, off)).collect(),
        points: cards,
    }
}

/// Renders a report. `csv_encoding` applies to CSV only; PDF needs Chromium
/// ([`pdf::print`]).
pub fn render(
    r: &Report,
    format: Format,
    csv_encoding: CsvEncoding,
) -> Result<Vec<u8>, ReportError> {
    match format {
        Format::Html => html::render(r).map(String::into_bytes),
        Format::Csv => csv::render(r, csv_encoding),
        Format::Json => {
            let mut v = serde_json::to_vec_pretty(r).map_err(std::io::Error::from)?;
            v.push(b'\n');
            Ok(v)
        }
        Format::Pdf => {
            let h = html::render(r)?;
            pdf::print(h.as_bytes(), pdf::DEFAULT_TIMEOUT)
        }
    }
}

/// The direction label, for callers that show one point.
pub fn direction_label(d: Direction, lang: Lang) -> &'static str {
    Catalog::of(lang).get(match d {
        Direction::Inbound => "direction.inbound",
        Direction::Outbound => "direction.outbound",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        for us in [
            0u64,
            1_791_158_400_000_000,
            1_791_158_400_123_456,
            951_782_400_000_000,
        ] {
            assert_eq!(parse_rfc3339(&Rfc3339(us).to_string()), Some(us));
        }
        assert_eq!(
            parse_rfc3339("2026-10-05T00:00:00Z"),
            Some(1_791_158_400_000_000)
        );
        for bad in [
            "",
            "2026-13-05T00:00:00Z",
            "2026-10-05 00:00:00Z",
            "2026-10-05T00:00:00+09:00",
            "２０２６-10-05T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn hour_bars_scale_to_the_busiest_hour() {
        let mut h = [0u32; 24];
        h[9] = 10;
        h[10] = 1;
        let b = hour_bars(&h);
        assert_eq!(b.len(), 24);
        assert_eq!(b[9].h, 24);
        assert_eq!(b[10].h, 3);
        assert_eq!(b[0].h, 0);
        assert_eq!(b[23].x, 161);
    }

    #[test]
    fn shown_cuts_long_strings_on_char_boundaries() {
        let s = "あ".repeat(500);
        let t = shown(&s);
        assert_eq!(t.chars().count(), MAX_SHOWN_CHARS);
        assert!(t.ends_with('…'));
    }
}
