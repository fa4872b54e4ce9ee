//! The human-readable summary: remote-access and VPN flows first, one line each, then
//! the rest of the traffic grouped by protocol.

use super::{transport_name, FlowView, Rfc3339};
use std::collections::BTreeMap;
use std::io::{self, Write};

/// One remote-access / VPN flow line.
#[derive(Clone, Debug)]
struct Row {
    service: String,
    transport: String,
    client: String,
    server: String,
    direction: &'static str,
    vendor: String,
    packets: u64,
    bytes: u64,
    first: u64,
    notes: Vec<String>,
}

/// Collects flows for the table.
#[derive(Default)]
pub struct TableSink {
    rows: Vec<Row>,
    other: BTreeMap<String, (u64, u64, u64)>,
    flows: u64,
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn endpoint(ip: std::net::IpAddr, port: u16) -> String {
    match (ip, port) {
        (std::net::IpAddr::V6(v6), p) if p != 0 => format!("[{v6}]:{p}"),
        (ip, 0) => ip.to_string(),
        (ip, p) => format!("{ip}:{p}"),
    }
}

impl TableSink {
    /// Adds a finished flow.
    pub fn add(&mut self, v: &FlowView<'_>) {
        self.flows += 1;
        let f = v.flow;
        let packets = f.packets[0] + f.packets[1];
        let bytes = f.bytes[0] + f.bytes[1];
        let class = v.class();
        match class.and_then(|c| c.service.map(|s| (c, s))) {
            Some((c, s)) => {
                let mut notes = Vec::new();
                if v.non_standard_port() {
                    notes.push("non-standard port".to_owned());
                }
                if let Some(w) = &c.extra.weak {
                    notes.push(format!("weak: {w}"));
                }
                // The catalogue's evidence names the product; structural checks come first
                // in the list, so prefer a catalogue rule when there is one.
                let shown = c
                    .evidence
                    .iter()
                    .find(|e| !e.rule.starts_with("setten."))
                    .or_else(|| c.evidence.first());
                if let Some(e) = shown {
                    notes.push(format!("{}={}", e.field, e.value));
                }
                let vendor = match (&c.extra.vendor, &c.extra.product) {
                    (Some(v), Some(p)) => format!("{v} {p}"),
                    (Some(v), None) => v.clone(),
                    (None, Some(p)) => p.clone(),
                    (None, None) => String::new(),
                };
                self.rows.push(Row {
                    service: s.as_str().to_owned(),
                    transport: transport_name(f.key.proto).into_owned(),
                    client: endpoint(f.client().addr.to_ip(), f.client().port),
                    server: endpoint(f.server().addr.to_ip(), f.server().port),
                    direction: v.external().direction(),
                    vendor,
                    packets,
                    bytes,
                    first: f.first_us,
                    notes,
                });
            }
            None => {
                let name = class.map_or("unknown", |c| c.protocol).to_owned();
                let e = self.other.entry(name).or_default();
                e.0 += 1;
                e.1 += packets;
                e.2 += bytes;
            }
        }
    }

    /// Writes the table.
    pub fn write(&mut self, out: &mut dyn Write) -> io::Result<()> {
        self.rows.sort_by(|a, b| {
            a.service
                .cmp(&b.service)
                .then(a.first.cmp(&b.first))
                .then(a.client.cmp(&b.client))
        });
        writeln!(
            out,
            "Remote access and VPN flows: {} (of {} flows)",
            self.rows.len(),
            self.flows
        )?;
        if !self.rows.is_empty() {
            let w_svc = self
                .rows
                .iter()
                .map(|r| r.service.len())
                .max()
                .unwrap_or(7)
                .max(7);
            let w_c = self
                .rows
                .iter()
                .map(|r| r.client.len())
                .max()
                .unwrap_or(6)
                .max(6);
            let w_s = self
                .rows
                .iter()
                .map(|r| r.server.len())
                .max()
                .unwrap_or(6)
                .max(6);
            writeln!(
                out,
                "{:w_svc$}  {:5}  {:w_c$}    {:w_s$}  {:9}  {:>8}  {:>10}  {:27}  VENDOR / NOTES",
                "SERVICE",
                "PROTO",
                "CLIENT",
                "SERVER",
                "DIRECTION",
                "PACKETS",
                "BYTES",
                "FIRST SEEN",
            )?;
            for r in &self.rows {
                let mut notes = r.vendor.clone();
                for n in &r.notes {
                    if !notes.is_empty() {
                        notes.push_str("; ");
                    }
                    notes.push_str(n);
                }
                writeln!(
                    out,
                    "{:w_svc$}  {:5}  {:w_c$} -> {:w_s$}  {:9}  {:>8}  {:>10}  {:27}  {}",
                    r.service,
                    r.transport,
                    r.client,
                    r.server,
                    r.direction,
                    r.packets,
                    human_bytes(r.bytes),
                    Rfc3339(r.first).to_string(),
                    notes
                )?;
            }
        }
        writeln!(out)?;
        writeln!(out, "Other traffic by protocol:")?;
        let mut other: Vec<_> = self.other.iter().collect();
        other.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
        writeln!(
            out,
            "  {:16} {:>7} {:>9} {:>10}",
            "PROTOCOL", "FLOWS", "PACKETS", "BYTES"
        )?;
        for (name, (flows, packets, bytes)) in other {
            writeln!(
                out,
                "  {:16} {:>7} {:>9} {:>10}",
                name,
                flows,
                packets,
                human_bytes(*bytes)
            )?;
        }
        Ok(())
    }
}
