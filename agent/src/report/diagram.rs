//! The network diagram: internal hosts ↔ connection points ↔ far sides in three columns.
//!
//! Points take one row each, grouped by internal host; a host sits at the middle of its
//! block of rows (blocks never overlap, so hosts never do); far sides are stacked in the
//! order they are first used, each at its first point's row or below the previous one.
//! Every column is therefore a strictly increasing sequence of y at least one row apart,
//! and the height grows with the number of rows — readable at 50 points and beyond
//! (the page simply gets taller; print splits it across pages as an image would not).
//! Labels are cut to fit their box; the full text is in the node's `<title>`.

use super::catalog::Catalog;
use super::PointCard;
use serde::Serialize;
use std::collections::BTreeMap;

/// Row pitch.
pub const ROW: u32 = 40;
/// Node height.
pub const NODE_H: u32 = 30;
/// Diagram width.
pub const WIDTH: u32 = 960;
/// Space above the first row (column headings).
pub const TOP: u32 = 40;
/// Characters of a label shown in a box (wide characters count double).
const LABEL_COLS: usize = 30;

/// A box.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Node {
    /// `host`, `point`, `far`.
    pub kind: &'static str,
    /// Left.
    pub x: u32,
    /// Top.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
    /// Text shown (cut to fit).
    pub label: String,
    /// Full text (tooltip).
    pub title: String,
    /// Severity code (points).
    pub severity: &'static str,
}

/// A link between two boxes, as an SVG path.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Edge {
    /// The `d` attribute.
    pub d: String,
    /// Whether it leads to a point with a risk.
    pub risky: bool,
}

/// The laid-out diagram.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagram {
    /// viewBox width.
    pub width: u32,
    /// viewBox height.
    pub height: u32,
    /// Column headings: (x centre, text).
    pub headings: Vec<(u32, String)>,
    /// Boxes.
    pub nodes: Vec<Node>,
    /// Links.
    pub edges: Vec<Edge>,
}

/// Cuts a label to about `cols` display columns (CJK counts as two).
fn fit(s: &str, cols: usize) -> String {
    let mut w = 0;
    let mut out = String::new();
    for ch in s.chars() {
        let cw = if (ch as u32) < 0x1100 { 1 } else { 2 };
        if w + cw > cols {
            out.push('…');
            return out;
        }
        w += cw;
        out.push(ch);
    }
    out
}

const COL_X: [u32; 3] = [10, 345, 680];
const COL_W: [u32; 3] = [270, 270, 270];

/// Lays the points out.
pub fn layout(cards: &[PointCard], c: &Catalog) -> Diagram {
    // Points grouped by host (in the hosts' order of first appearance in the severity
    // order, so the most severe host comes first).
    let mut host_order: Vec<&str> = Vec::new();
    let mut by_host: BTreeMap<&str, Vec<&PointCard>> = BTreeMap::new();
    for p in cards {
        if !by_host.contains_key(p.internal_ip.as_str()) {
            host_order.push(&p.internal_ip);
        }
        by_host.entry(&p.internal_ip).or_default().push(p);
    }
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    let mut row = 0u32;
    let mut far_y: BTreeMap<String, u32> = BTreeMap::new();
    let mut far_order: Vec<(String, String)> = Vec::new();
    let mut next_far_y = TOP;
    let mut point_links: Vec<(u32, String, bool)> = Vec::new();
    for host in &host_order {
        let pts = by_host.get(host).map(Vec::as_slice).unwrap_or_default();
        let first_row = row;
        for p in pts {
            let y = TOP + row * ROW;
            let label = format!("{} {} {}", p.number, p.service, p.direction_label);
            let title = format!(
                "{} {} {} {}",
                p.number, p.service, p.direction_label, p.severity_label
            );
            nodes.push(Node {
                kind: "point",
                x: COL_X[1],
                y,
                w: COL_W[1],
                h: NODE_H,
                label: fit(&label, LABEL_COLS),
                title,
                severity: p.severity,
            });
            let key = format!("{}|{}", p.far_kind, p.far_short);
            let fy = *far_y.entry(key.clone()).or_insert_with(|| {
                let fy = next_far_y.max(y);
                next_far_y = fy + ROW;
                far_order.push((key.clone(), p.far_short.clone()));
                fy
            });
            point_links.push((y, key, p.severity != "none"));
            let _ = fy;
            row += 1;
        }
        let last_row = row.saturating_sub(1);
        // The middle of the block, on the row grid's half steps.
        let y = TOP + (first_row + last_row) * ROW / 2;
        let first = pts.first();
        let name = first
            .and_then(|p| p.internal_names.first().cloned())
            .unwrap_or_default();
        let vendor = first.and_then(|p| p.mac_vendor.clone()).unwrap_or_default();
        let label = if name.is_empty() {
            host.to_string()
        } else {
            format!("{host} {name}")
        };
        nodes.push(Node {
            kind: "host",
            x: COL_X[0],
            y,
            w: COL_W[0],
            h: NODE_H,
            label: fit(&label, LABEL_COLS),
            title: [label.as_str(), vendor.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" — "),
            severity: "none",
        });
        for r in first_row..row {
            let py = TOP + r * ROW;
            edges.push(Edge {
                d: curve(
                    COL_X[0] + COL_W[0],
                    y + NODE_H / 2,
                    COL_X[1],
                    py + NODE_H / 2,
                ),
                risky: false,
            });
        }
    }
    for (key, label) in &far_order {
        let y = far_y.get(key).copied().unwrap_or(TOP);
        nodes.push(Node {
            kind: "far",
            x: COL_X[2],
            y,
            w: COL_W[2],
            h: NODE_H,
            label: fit(label, LABEL_COLS),
            title: label.clone(),
            severity: "none",
        });
    }
    for (py, key, risky) in point_links {
        let fy = far_y.get(&key).copied().unwrap_or(TOP);
        edges.push(Edge {
            d: curve(
                COL_X[1] + COL_W[1],
                py + NODE_H / 2,
                COL_X[2],
                fy + NODE_H / 2,
            ),
            risky,
        });
    }
    let bottom = nodes.iter().map(|n| n.y + n.h).max().unwrap_or(TOP);
    Diagram {
        width: WIDTH,
        height: bottom + 10,
        headings: vec![
            (COL_X[0] + COL_W[0] / 2, c.get("card.internal").to_owned()),
            (COL_X[1] + COL_W[1] / 2, c.get("summary.points").to_owned()),
            (COL_X[2] + COL_W[2] / 2, c.get("card.far").to_owned()),
        ],
        nodes,
        edges,
    }
}

fn curve(x1: u32, y1: u32, x2: u32, y2: u32) -> String {
    let mx = (x1 + x2) / 2;
    format!("M{x1} {y1} C{mx} {y1} {mx} {y2} {x2} {y2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_cut_by_display_width() {
        assert_eq!(fit("abc", 5), "abc");
        assert_eq!(fit("abcdef", 5), "abcde…");
        assert_eq!(fit("電子カルテサーバ", 6), "電子カ…");
    }
}
