//! The 機器・回線一覧 (device and line ledger) CSV: one row per connection point and one
//! per internal host with an external link, in columns a hospital can paste into its
//! own 台帳.
//!
//! - RFC 4180: CRLF line ends; a field holding a comma, quote, CR or LF is quoted, its
//!   quotes doubled.
//! - Formula injection: a cell starting with `=`, `+`, `-`, `@`, tab or CR gets a leading
//!   apostrophe so a spreadsheet shows it as text (OWASP, "CSV Injection",
//!   https://owasp.org/www-community/attacks/CSV_Injection). Host names and SNI come from
//!   the network and are attacker-controlled.
//! - UTF-8 with a byte-order mark by default (Excel then reads UTF-8); Shift_JIS on
//!   request. A character Shift_JIS cannot hold is an error naming the row and column,
//!   not a silent `?`: a ledger must not carry altered host names.

use super::catalog::Catalog;
use super::{CsvEncoding, Report, ReportError};
use crate::inventory::output::Lang;

/// Column keys (catalog `csv.*`), in order.
pub const COLUMNS: [&str; 22] = [
    "row_kind",
    "number",
    "internal_ip",
    "internal_port",
    "host_names",
    "mac",
    "mac_vendor",
    "service",
    "direction",
    "far_side",
    "far_names",
    "product",
    "first_seen",
    "last_seen",
    "sessions",
    "hours",
    "severity",
    "risks",
    "ledger",
    "ledger_entry",
    "todo",
    "id",
];

/// One cell, neutralised and quoted.
pub fn cell(s: &str) -> String {
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

fn hours_text(h: &[u32; 24]) -> String {
    // Active hours as ranges: "9-11,22".
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < 24 {
        if h.get(i).copied().unwrap_or(0) == 0 {
            i += 1;
            continue;
        }
        let start = i;
        while i < 24 && h.get(i).copied().unwrap_or(0) > 0 {
            i += 1;
        }
        let end = i - 1;
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out.join(",")
}

/// The rows (header first), as text cells.
pub fn rows(r: &Report) -> Vec<Vec<String>> {
    let lang = if r.lang == "en" { Lang::En } else { Lang::Ja };
    let c = Catalog::of(lang);
    let mut rows: Vec<Vec<String>> = vec![COLUMNS
        .iter()
        .map(|k| c.get(&format!("csv.{k}")).to_owned())
        .collect()];
    for p in &r.points {
        rows.push(vec![
            c.get("csv.kind_point").to_owned(),
            p.number.clone(),
            p.internal_ip.clone(),
            p.internal_port.map(|x| x.to_string()).unwrap_or_default(),
            p.internal_names.join(" "),
            p.mac.clone().unwrap_or_default(),
            p.mac_vendor.clone().unwrap_or_default(),
            p.service.to_owned(),
            p.direction_label.clone(),
            p.far_label.clone(),
            p.far_names.join(" "),
            p.product.clone().unwrap_or_default(),
            p.first_seen.clone(),
            p.last_seen.clone(),
            p.sessions.to_string(),
            hours_text(&p.hours),
            p.severity_label.clone(),
            p.risks
                .iter()
                .map(|x| x.title.as_str())
                .collect::<Vec<_>>()
                .join(" / "),
            p.ledger_label.clone(),
            p.ledger_entry.clone().unwrap_or_default(),
            p.advice.first().cloned().unwrap_or_default(),
            p.id.clone(),
        ]);
    }
    for h in &r.hosts {
        rows.push(vec![
            c.get("csv.kind_host").to_owned(),
            h.points.join(" "),
            h.ip.clone(),
            String::new(),
            h.names.join(" "),
            h.mac.clone().unwrap_or_default(),
            h.mac_vendor.clone().unwrap_or_default(),
            h.services.join(" "),
            h.directions.join(" / "),
            String::new(),
            String::new(),
            String::new(),
            h.first_seen.clone(),
            h.last_seen.clone(),
            String::new(),
            String::new(),
            h.severity_label.clone(),
            String::new(),
            h.ledger_label.clone(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    rows
}

/// Renders the CSV.
pub fn render(r: &Report, enc: CsvEncoding) -> Result<Vec<u8>, ReportError> {
    let rows = rows(r);
    let header = rows.first().cloned().unwrap_or_default();
    match enc {
        CsvEncoding::Utf8Bom => {
            let mut out = String::from("\u{feff}");
            for row in &rows {
                let cells: Vec<String> = row.iter().map(|x| cell(x)).collect();
                out.push_str(&cells.join(","));
                out.push_str("\r\n");
            }
            Ok(out.into_bytes())
        }
        CsvEncoding::ShiftJis => {
            let mut out: Vec<u8> = Vec::new();
            for (i, row) in rows.iter().enumerate() {
                for (j, x) in row.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    let text = cell(x);
                    let (bytes, _, bad) = encoding_rs::SHIFT_JIS.encode(&text);
                    if bad {
                        // Find the first character that does not fit, to name it.
                        let ch = text
                            .chars()
                            .find(|ch| {
                                let mut b = [0u8; 4];
                                encoding_rs::SHIFT_JIS.encode(ch.encode_utf8(&mut b)).2
                            })
                            .unwrap_or('\u{fffd}');
                        return Err(ReportError::Unencodable {
                            row: i + 1,
                            column: header.get(j).cloned().unwrap_or_default(),
                            ch,
                            code: ch as u32,
                        });
                    }
                    out.extend_from_slice(&bytes);
                }
                out.extend_from_slice(b"\r\n");
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_formulas_neutralised() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("-2"), "'-2");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("\tx"), "'\tx");
    }

    #[test]
    fn hours_become_ranges() {
        let mut h = [0u32; 24];
        for i in [9, 10, 11, 22] {
            h[i] = 1;
        }
        assert_eq!(hours_text(&h), "9-11,22");
        assert_eq!(hours_text(&[1; 24]), "0-23");
        assert_eq!(hours_text(&[0; 24]), "");
    }
}
