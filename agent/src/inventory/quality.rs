//! Capture quality: how far the inventory can be trusted. A survey report must say what
//! the capture could not see — one direction of a mirror missing, connections already
//! open when the capture started, frames duplicated by the SPAN port, frames cut by the
//! snap length, drops, a short observation period.

use crate::analyze::CaptureInfo;
use crate::decode::ipproto;
use crate::flow::Flow;
use crate::record::Rfc3339;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// VLAN ids remembered.
const MAX_VLANS: usize = 4096;
/// Share of one-way TCP flows above which the mirror likely copies one direction only.
const ONE_WAY_WARN: f64 = 0.2;
/// Share of TCP flows without a handshake above which the capture missed openings.
const MID_STREAM_WARN: f64 = 0.3;
/// Share of duplicated frames above which the SPAN port copies frames twice.
const DUPLICATE_WARN: f64 = 0.01;
/// An observation period shorter than this misses night and weekend maintenance.
const SHORT_SPAN_SECS: u64 = 7 * 86_400;

/// Flow-level counters (mergeable).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowQuality {
    /// Flows.
    pub flows: u64,
    /// Packets in flows.
    pub packets: u64,
    /// TCP flows.
    pub tcp_flows: u64,
    /// TCP flows with packets in one direction only.
    pub tcp_one_way: u64,
    /// TCP flows whose handshake was not seen (already open when the capture started, or
    /// only one direction mirrored).
    pub tcp_mid_stream: u64,
    /// Frames that repeated the previous frame of their direction.
    pub duplicates: u64,
    /// VLAN ids seen.
    pub vlans: BTreeSet<u16>,
    /// Flows seen without a VLAN tag.
    pub untagged: u64,
}

impl FlowQuality {
    /// Counts one finished flow.
    pub fn add(&mut self, f: &Flow) {
        self.flows += 1;
        self.packets += f.packets[0] + f.packets[1];
        self.duplicates += u64::from(f.duplicates);
        if f.depth == 0 {
            if f.vlan == 0 {
                self.untagged += 1;
            } else if self.vlans.len() < MAX_VLANS {
                self.vlans.insert(f.vlan);
            }
        }
        if f.key.proto == ipproto::TCP {
            self.tcp_flows += 1;
            if f.packets[0] == 0 || f.packets[1] == 0 {
                self.tcp_one_way += 1;
            }
            if !f.handshake {
                self.tcp_mid_stream += 1;
            }
        }
    }

    /// Adds another sensor's counters.
    pub fn merge(&mut self, o: &FlowQuality) {
        self.flows += o.flows;
        self.packets += o.packets;
        self.tcp_flows += o.tcp_flows;
        self.tcp_one_way += o.tcp_one_way;
        self.tcp_mid_stream += o.tcp_mid_stream;
        self.duplicates += o.duplicates;
        self.untagged += o.untagged;
        for v in &o.vlans {
            if self.vlans.len() < MAX_VLANS {
                self.vlans.insert(*v);
            }
        }
    }
}

/// One capture file in the quality record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaptureOut {
    /// File.
    pub path: String,
    /// Frames.
    pub packets: u64,
    /// First frame.
    pub first_seen: Option<String>,
    /// Last frame.
    pub last_seen: Option<String>,
    /// Frames cut by the snap length.
    pub truncated: u64,
    /// Drops recorded by the capturing system, when known.
    pub drops: Option<u64>,
    /// Link types (pcap LINKTYPE numbers).
    pub link_types: Vec<u32>,
    /// Read to the end without damage.
    pub complete: bool,
}

/// A limit of what was seen, in Japanese and English.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlindSpot {
    /// Stable id.
    pub id: &'static str,
    /// Japanese.
    pub ja: String,
    /// English.
    pub en: String,
}

/// The capture-quality record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaptureQuality {
    /// Record type: `capture_quality`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Files.
    pub captures: Vec<CaptureOut>,
    /// First frame of all.
    pub first_seen: Option<String>,
    /// Last frame of all.
    pub last_seen: Option<String>,
    /// Seconds between them.
    pub span_seconds: u64,
    /// Flows.
    pub flows: u64,
    /// TCP flows.
    pub tcp_flows: u64,
    /// Share of TCP flows seen in one direction only.
    pub tcp_one_way_share: f64,
    /// Share of TCP flows without their handshake.
    pub tcp_mid_stream_share: f64,
    /// Share of frames duplicated.
    pub duplicate_share: f64,
    /// Frames cut by the snap length.
    pub truncated: u64,
    /// Drops, when any file says.
    pub drops: Option<u64>,
    /// VLANs seen.
    pub vlans: Vec<u16>,
    /// What this capture could not see.
    pub blind_spots: Vec<BlindSpot>,
}

fn share(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        // Three decimals are enough to read and keep golden files stable.
        ((n as f64 / d as f64) * 1000.0).round() / 1000.0
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}", x * 100.0)
}

/// Builds the record from the files read and the flow counters.
pub fn build(captures: &[CaptureInfo], q: &FlowQuality) -> CaptureQuality {
    let first = captures
        .iter()
        .filter(|c| c.packets > 0)
        .map(|c| c.first_us)
        .min();
    let last = captures
        .iter()
        .filter(|c| c.packets > 0)
        .map(|c| c.last_us)
        .max();
    let span = match (first, last) {
        (Some(a), Some(b)) => b.saturating_sub(a) / 1_000_000,
        _ => 0,
    };
    let truncated: u64 = captures.iter().map(|c| c.truncated).sum();
    let drops = captures
        .iter()
        .filter_map(|c| c.drops)
        .reduce(|a, b| a.saturating_add(b));
    let one_way = share(q.tcp_one_way, q.tcp_flows);
    let mid = share(q.tcp_mid_stream, q.tcp_flows);
    let dup = share(q.duplicates, q.packets);
    let mut spots = Vec::new();
    let mut say = |id: &'static str, ja: String, en: String| spots.push(BlindSpot { id, ja, en });
    if q.tcp_flows >= 10 && one_way > ONE_WAY_WARN {
        say(
            "one_way",
            format!("TCPフローの{}%が片方向のみです。ミラーポートが片方向の通信しか複製していない可能性があり、応答側で判定する通信（証明書など）を見落とすおそれがあります。", pct(one_way)),
            format!("{}% of TCP flows were seen in one direction only: the mirror may copy one direction, so evidence sent by servers (certificates, banners) can be missed.", pct(one_way)),
        );
    }
    if q.tcp_flows >= 10 && mid > MID_STREAM_WARN {
        say(
            "mid_stream",
            format!("TCPフローの{}%で接続開始（ハンドシェイク）が見えていません。キャプチャ開始前から続く接続は内容で判定できないことがあります。", pct(mid)),
            format!("{}% of TCP flows lack their handshake: connections open before the capture started may not be identified by content.", pct(mid)),
        );
    }
    if dup > DUPLICATE_WARN {
        say(
            "duplicates",
            format!("フレームの{}%が重複しています。SPANポートが受信と送信の両方を複製している可能性があります（バイト数が多めに出ます）。", pct(dup)),
            format!("{}% of frames are duplicates: the SPAN port may copy both ingress and egress (byte counts are inflated).", pct(dup)),
        );
    }
    if truncated > 0 {
        say(
            "truncated",
            format!("{truncated}フレームがスナップ長で切り詰められています。証明書など後半の内容を判定できない場合があります。"),
            format!("{truncated} frames were cut by the snap length: content late in a packet (certificates) may be missed."),
        );
    }
    if let Some(d) = drops.filter(|d| *d > 0) {
        say(
            "drops",
            format!("キャプチャ中に{d}パケットが欠落しました（記録装置の統計）。"),
            format!("The capturing system dropped {d} packets."),
        );
    }
    if span < SHORT_SPAN_SECS {
        let hours = span / 3600;
        say(
            "short_span",
            format!("観測期間は約{hours}時間です。週1回や月1回の保守接続は見えていない可能性があります（1週間以上の観測を推奨）。"),
            format!("The capture covers about {hours} hours: weekly or monthly maintenance connections may not appear (a week or more is recommended)."),
        );
    }
    if q.vlans.is_empty() && q.flows > 0 {
        say(
            "no_vlan_tags",
            "VLANタグが見えません。トランクではなく単一VLANのミラーの場合、他のVLANの通信は見えていません。".into(),
            "No VLAN tags were seen: if the mirror is a single access VLAN rather than a trunk, other VLANs are not seen.".into(),
        );
    }
    say(
        "mirror_scope",
        "このミラーポートを通らない経路（別拠点、機器に直接つながるモバイル回線やLTEルータなど）は観測できません。".into(),
        "Paths that do not cross this mirror port (other sites, mobile or LTE routers attached directly to devices) cannot be seen.".into(),
    );
    CaptureQuality {
        kind: "capture_quality",
        captures: captures
            .iter()
            .map(|c| CaptureOut {
                path: c.path.display().to_string(),
                packets: c.packets,
                first_seen: (c.packets > 0).then(|| Rfc3339(c.first_us).to_string()),
                last_seen: (c.packets > 0).then(|| Rfc3339(c.last_us).to_string()),
                truncated: c.truncated,
                drops: c.drops,
                link_types: c.links.clone(),
                complete: c.complete,
            })
            .collect(),
        first_seen: first.map(|t| Rfc3339(t).to_string()),
        last_seen: last.map(|t| Rfc3339(t).to_string()),
        span_seconds: span,
        flows: q.flows,
        tcp_flows: q.tcp_flows,
        tcp_one_way_share: one_way,
        tcp_mid_stream_share: mid,
        duplicate_share: dup,
        truncated,
        drops,
        vlans: q.vlans.iter().copied().collect(),
        blind_spots: spots,
    }
}
