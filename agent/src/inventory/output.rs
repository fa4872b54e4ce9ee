//! Rendering the inventory: JSON Lines (one record per point, then ledger entries never
//! seen, then the capture-quality record), a table for a person (Japanese first,
//! English on request) and CSV for a spreadsheet (UTF-8 with BOM so Excel reads it).

use super::ledger::Entry;
use super::policy::{Policy, Severity};
use super::quality::{CaptureQuality, FlowQuality};
use super::{ConnectionPoint, Direction, Inventory, Points};
use crate::record::sink::Consumer;
use crate::record::FlowView;
use serde::Serialize;
use std::io::{self, Write};

/// Language of what a person reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lang {
    /// Japanese (default).
    #[default]
    Ja,
    /// English.
    En,
}

impl Lang {
    fn pick<'a>(self, ja: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Ja => ja,
            Lang::En => en,
        }
    }
}

/// The output thread's work in inventory mode: every finished flow goes into the
/// inventory and the quality counters.
pub struct Collect {
    /// The inventory being built.
    pub inventory: Inventory,
    /// Flow-level quality counters.
    pub quality: FlowQuality,
    policy: Policy,
}

impl Collect {
    /// An empty collection under a policy.
    pub fn new(policy: Policy) -> Collect {
        Collect {
            inventory: Inventory::new(),
            quality: FlowQuality::default(),
            policy,
        }
    }
}

impl Consumer for Collect {
    type Output = (Inventory, FlowQuality);

    fn flow(&mut self, v: &FlowView<'_>) -> io::Result<()> {
        self.quality.add(v.flow);
        self.inventory.add_flow(v, &self.policy);
        Ok(())
    }

    fn finish(self) -> io::Result<(Inventory, FlowQuality)> {
        Ok((self.inventory, self.quality))
    }
}

#[derive(Serialize)]
struct UnseenRecord<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    entry: &'a Entry,
}

/// JSON Lines: points, ledger entries never seen, the quality record.
pub fn write_jsonl(out: &mut dyn Write, p: &Points, q: &CaptureQuality) -> io::Result<()> {
    for point in &p.points {
        serde_json::to_writer(&mut *out, point)?;
        out.write_all(b"\n")?;
    }
    for e in &p.unseen {
        serde_json::to_writer(
            &mut *out,
            &UnseenRecord {
                kind: "ledger_unseen",
                entry: e,
            },
        )?;
        out.write_all(b"\n")?;
    }
    serde_json::to_writer(&mut *out, q)?;
    out.write_all(b"\n")
}

/// Local wall-clock time, "2026-10-05 09:00".
pub fn local_time(us: u64, utc_offset_secs: i32) -> String {
    let secs = (us / 1_000_000) as i64 + i64::from(utc_offset_secs);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = crate::record::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60
    )
}

/// "+09:00".
pub fn offset_str(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    format!("{sign}{:02}:{:02}", a / 3600, (a / 60) % 60)
}

fn human_bytes(b: u64) -> String {
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

/// Hours of activity as a 24-character bar ("▁" none … "█" most).
pub fn sparkline(hours: &[u32; 24]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = hours.iter().copied().max().unwrap_or(0);
    hours
        .iter()
        .map(|&h| {
            if h == 0 || max == 0 {
                '·'
            } else {
                let i = (h as usize * (BARS.len() - 1)).div_ceil(max as usize);
                BARS.get(i).copied().unwrap_or('█')
            }
        })
        .collect()
}

fn severity_label(s: Option<Severity>, lang: Lang) -> String {
    match s {
        None => lang.pick("－", "-").to_owned(),
        Some(s) => match lang {
            Lang::Ja => s.label_ja().to_owned(),
            Lang::En => s.as_str().to_owned(),
        },
    }
}

fn ledger_label(status: &str, lang: Lang) -> &'static str {
    match (status, lang) {
        ("registered", Lang::Ja) => "登録済み",
        ("registered", Lang::En) => "registered",
        ("unregistered", Lang::Ja) => "未登録",
        ("unregistered", Lang::En) => "unregistered",
        ("drifted", Lang::Ja) => "台帳と相違",
        ("drifted", Lang::En) => "differs from ledger",
        (_, Lang::Ja) => "台帳なし",
        (_, Lang::En) => "no ledger given",
    }
}

fn drift_label(d: super::ledger::Drift, lang: Lang) -> &'static str {
    use super::ledger::Drift;
    match (d, lang) {
        (Drift::FarEnd, Lang::Ja) => "接続先が異なる",
        (Drift::FarEnd, Lang::En) => "different far end",
        (Drift::Service, Lang::Ja) => "サービスが異なる",
        (Drift::Service, Lang::En) => "different service",
        (Drift::OutsideWindow, Lang::Ja) => "保守時間帯外",
        (Drift::OutsideWindow, Lang::En) => "outside the window",
    }
}

fn direction_label(d: Direction, lang: Lang) -> &'static str {
    match (d, lang) {
        (Direction::Inbound, Lang::Ja) => "着信（外部→院内）",
        (Direction::Inbound, Lang::En) => "inbound (outside → inside)",
        (Direction::Outbound, Lang::Ja) => "発信（院内→外部）",
        (Direction::Outbound, Lang::En) => "outbound (inside → outside)",
    }
}

/// The far side in a few words.
pub fn far_label(p: &ConnectionPoint, lang: Lang) -> String {
    let f = &p.far_side;
    let ips: Vec<String> = f.ips.iter().take(4).map(|i| i.to_string()).collect();
    let more = if f.ip_count > ips.len() {
        match lang {
            Lang::Ja => format!(" ほか{}件", f.ip_count - ips.len()),
            Lang::En => format!(" and {} more", f.ip_count - ips.len()),
        }
    } else {
        String::new()
    };
    let addrs = format!("{}{more}", ips.join(", "));
    match f.kind {
        "cloud" => match lang {
            Lang::Ja => format!(
                "{}（中継クラウド、{}アドレス: {addrs}）",
                f.name.as_deref().unwrap_or("?"),
                f.ip_count
            ),
            Lang::En => format!(
                "{} (relay cloud, {} addresses: {addrs})",
                f.name.as_deref().unwrap_or("?"),
                f.ip_count
            ),
        },
        "any" => match lang {
            Lang::Ja => format!("外部の接続元 {}件: {addrs}", f.ip_count),
            Lang::En => format!("{} external sources: {addrs}", f.ip_count),
        },
        _ => addrs,
    }
}

/// The table for a person.
pub fn write_table(
    out: &mut dyn Write,
    p: &Points,
    q: &CaptureQuality,
    policy: &Policy,
    lang: Lang,
) -> io::Result<()> {
    let off = policy.utc_offset_secs;
    let count = |s: &str| p.points.iter().filter(|x| x.ledger.status == s).count();
    let with_ledger = p.points.iter().any(|x| x.ledger.status != "no_ledger");
    match lang {
        Lang::Ja => {
            write!(out, "外部接続点: {}件", p.points.len())?;
            if with_ledger {
                write!(
                    out,
                    "（未登録 {}、台帳と相違 {}、登録済み {}）／台帳にあり未観測 {}件",
                    count("unregistered"),
                    count("drifted"),
                    count("registered"),
                    p.unseen.len()
                )?;
            }
            writeln!(out)?;
        }
        Lang::En => {
            write!(out, "External connection points: {}", p.points.len())?;
            if with_ledger {
                write!(
                    out,
                    " ({} unregistered, {} differ from the ledger, {} registered); {} ledger entries not seen",
                    count("unregistered"),
                    count("drifted"),
                    count("registered"),
                    p.unseen.len()
                )?;
            }
            writeln!(out)?;
        }
    }
    writeln!(
        out,
        "{} {} – {} ({})",
        lang.pick("観測期間", "Observed"),
        q.first_seen.as_deref().unwrap_or("-"),
        q.last_seen.as_deref().unwrap_or("-"),
        lang.pick("UTC、以下の時刻は現地時刻", "UTC; times below are local"),
    )?;
    for pt in &p.points {
        writeln!(out)?;
        writeln!(
            out,
            "[{}] {}  {}  {}",
            severity_label(pt.severity, lang),
            pt.service.as_str(),
            direction_label(pt.direction, lang),
            pt.id
        )?;
        let i = &pt.internal;
        let mut inside = i.ip.to_string();
        if let Some(port) = i.port {
            inside = format!("{inside}:{port}");
        }
        if !i.names.is_empty() {
            inside = format!("{inside} {}", i.names.join(", "));
        }
        if let Some(m) = &i.mac {
            inside = format!(
                "{inside} [{m}{}]",
                i.mac_vendor
                    .as_deref()
                    .map(|v| format!(" {v}"))
                    .unwrap_or_default()
            );
        }
        if !i.vlans.is_empty() {
            let v: Vec<String> = i.vlans.iter().map(u16::to_string).collect();
            inside = format!("{inside} VLAN {}", v.join(","));
        }
        writeln!(out, "  {}: {inside}", lang.pick("院内", "inside"))?;
        writeln!(
            out,
            "  {}: {}",
            lang.pick("相手", "far side"),
            far_label(pt, lang)
        )?;
        if !pt.far_side.names.is_empty() {
            writeln!(
                out,
                "  {}: {}",
                lang.pick("相手の名前", "far names"),
                pt.far_side.names.join(", ")
            )?;
        }
        if pt.vendor.is_some() || pt.product.is_some() {
            writeln!(
                out,
                "  {}: {}",
                lang.pick("製品", "product"),
                match (pt.vendor.as_deref(), pt.product.as_deref()) {
                    (Some(v), Some(p)) if p.starts_with(v) => p.to_owned(),
                    (Some(v), Some(p)) => format!("{v} / {p}"),
                    (v, p) => v.or(p).unwrap_or_default().to_owned(),
                }
            )?;
        }
        for e in pt.evidence.iter().take(3) {
            writeln!(
                out,
                "  {}: {} ({} = {})",
                lang.pick("根拠", "evidence"),
                e.rule,
                e.field,
                e.value
            )?;
        }
        writeln!(
            out,
            "  {}: {} – {} ({})  {} {}  {}",
            lang.pick("期間", "active"),
            local_time(pt.first_us, off),
            local_time(pt.last_us, off),
            offset_str(off),
            pt.sessions,
            lang.pick("セッション", "sessions"),
            human_bytes(pt.bytes)
        )?;
        writeln!(
            out,
            "  {}: {}  (0時 … 23時)",
            lang.pick("時間帯", "hours"),
            sparkline(&pt.hours)
        )?;
        if !pt.reach.is_empty() {
            let r: Vec<String> = pt
                .reach
                .iter()
                .map(|r| {
                    let s: Vec<&str> = r.services.iter().map(|s| s.as_str()).collect();
                    format!("{} ({})", r.ip, s.join(","))
                })
                .collect();
            writeln!(out, "  {}: {}", lang.pick("到達先", "reach"), r.join(", "))?;
        }
        for r in &pt.risks {
            let info = policy.risk(r.id);
            let title = lang.pick(&info.title_ja, &info.title_en);
            match &r.detail {
                Some(d) => writeln!(out, "  {}: {title} ({d})", lang.pick("リスク", "risk"))?,
                None => writeln!(out, "  {}: {title}", lang.pick("リスク", "risk"))?,
            }
        }
        let mut ledger = ledger_label(pt.ledger.status, lang).to_owned();
        if let Some(e) = &pt.ledger.entry {
            ledger = format!("{ledger} ({e})");
        }
        if !pt.ledger.reasons.is_empty() {
            let r: Vec<&str> = pt
                .ledger
                .reasons
                .iter()
                .map(|d| drift_label(*d, lang))
                .collect();
            ledger = format!("{ledger}: {}", r.join(", "));
        }
        writeln!(out, "  {}: {ledger}", lang.pick("台帳", "ledger"))?;
    }
    if !p.unseen.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{}",
            lang.pick(
                "台帳にあるが観測されなかった接続:",
                "Ledger entries not seen in the traffic:"
            )
        )?;
        for e in &p.unseen {
            let services: Vec<&str> = e.services.iter().map(|s| s.as_str()).collect();
            writeln!(
                out,
                "  {} {} {} ({})",
                e.id,
                e.vendor,
                e.system,
                services.join(",")
            )?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "{}",
        lang.pick(
            "キャプチャの品質と死角:",
            "Capture quality and blind spots:"
        )
    )?;
    for b in &q.blind_spots {
        writeln!(out, "  - {}", lang.pick(&b.ja, &b.en))?;
    }
    Ok(())
}

fn csv_cell(s: &str) -> String {
    // Cells starting with a formula character are prefixed so a spreadsheet shows text
    // (CSV injection, OWASP).
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// CSV, one row per point, UTF-8 with a byte-order mark.
pub fn write_csv(out: &mut dyn Write, p: &Points, policy: &Policy, lang: Lang) -> io::Result<()> {
    let header_ja = [
        "ID",
        "重要度",
        "台帳",
        "台帳番号",
        "サービス",
        "方向",
        "院内アドレス",
        "院内ポート",
        "院内ホスト名",
        "MAC",
        "MACベンダー",
        "相手種別",
        "相手",
        "相手アドレス数",
        "相手の名前",
        "ベンダー",
        "製品",
        "初回観測",
        "最終観測",
        "セッション数",
        "バイト数",
        "リスク",
        "根拠",
        "到達先",
    ];
    let header_en = [
        "id",
        "severity",
        "ledger",
        "ledger_entry",
        "service",
        "direction",
        "internal_ip",
        "internal_port",
        "internal_names",
        "mac",
        "mac_vendor",
        "far_kind",
        "far_side",
        "far_ip_count",
        "far_names",
        "vendor",
        "product",
        "first_seen",
        "last_seen",
        "sessions",
        "bytes",
        "risks",
        "evidence",
        "reach",
    ];
    out.write_all("\u{feff}".as_bytes())?;
    let header: Vec<String> = match lang {
        Lang::Ja => header_ja.iter().map(|s| csv_cell(s)).collect(),
        Lang::En => header_en.iter().map(|s| csv_cell(s)).collect(),
    };
    out.write_all(header.join(",").as_bytes())?;
    out.write_all(b"\r\n")?;
    let off = policy.utc_offset_secs;
    for pt in &p.points {
        let risks: Vec<String> = pt
            .risks
            .iter()
            .map(|r| {
                let info = policy.risk(r.id);
                lang.pick(&info.title_ja, &info.title_en).to_owned()
            })
            .collect();
        let evidence: Vec<String> = pt
            .evidence
            .iter()
            .take(3)
            .map(|e| format!("{} {}={}", e.rule, e.field, e.value))
            .collect();
        let reach: Vec<String> = pt.reach.iter().map(|r| r.ip.to_string()).collect();
        let row = [
            pt.id.clone(),
            severity_label(pt.severity, lang),
            ledger_label(pt.ledger.status, lang).to_owned(),
            pt.ledger.entry.clone().unwrap_or_default(),
            pt.service.as_str().to_owned(),
            pt.direction.as_str().to_owned(),
            pt.internal.ip.to_string(),
            pt.internal.port.map(|p| p.to_string()).unwrap_or_default(),
            pt.internal.names.join(" "),
            pt.internal.mac.clone().unwrap_or_default(),
            pt.internal.mac_vendor.clone().unwrap_or_default(),
            pt.far_side.kind.to_owned(),
            far_label(pt, lang),
            pt.far_side.ip_count.to_string(),
            pt.far_side.names.join(" "),
            pt.vendor.clone().unwrap_or_default(),
            pt.product.clone().unwrap_or_default(),
            format!("{} {}", local_time(pt.first_us, off), offset_str(off)),
            format!("{} {}", local_time(pt.last_us, off), offset_str(off)),
            pt.sessions.to_string(),
            pt.bytes.to_string(),
            risks.join(" / "),
            evidence.join(" / "),
            reach.join(" "),
        ];
        let cells: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
        out.write_all(cells.join(",").as_bytes())?;
        out.write_all(b"\r\n")?;
    }
    Ok(())
}
