//! The inspection checklist items the findings answer, with a status and the evidence
//! behind it.
//!
//! Items and their meaning follow DESIGN.md and the MHLW 「令和7年度版 医療機関における
//! サイバーセキュリティ対策チェックリスト」 and its manual (医療等情報利活用ワーキング
//! グループ第24回 資料2-4, https://www.mhlw.go.jp/stf/newpage_53554.html):
//! 2-① 台帳管理 (ledger of servers, PCs, network devices); 2-② リモートメンテナンス利用機器
//! の確認; 2-⑥ セキュリティパッチ (observed versions, weak protocols); 2-⑨ 外部記録媒体の
//! 接続制限 (mount events on agent hosts); 2-⑰ 接続元制限 (inbound points open to many
//! sources); 3-② バックアップと復旧手順 (verification evidence).
//!
//! A status is only as strong as the evidence: "met" needs positive evidence (a ledger
//! that lists every point, verifications that succeeded); without it the item is "no
//! evidence", never "met" by default.

use super::backups::MediumSummary;
use super::catalog::Catalog;
use super::{PointCard, ReportInput};
use crate::inventory::output::Lang;
use serde::Serialize;

/// Points named in one evidence line at most (then "… (N)").
const MAX_LISTED: usize = 8;

/// An item's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// 満たしている.
    Met,
    /// 要対応.
    Action,
    /// 判断材料なし.
    NoData,
}

impl Status {
    fn key(self) -> &'static str {
        match self {
            Status::Met => "checklist.met",
            Status::Action => "checklist.action",
            Status::NoData => "checklist.no_data",
        }
    }
}

/// One checklist item.
#[derive(Clone, Debug, Serialize)]
pub struct ChecklistItem {
    /// Item number as printed ("2-①").
    pub id: &'static str,
    /// Its text.
    pub title: String,
    /// Status.
    pub status: Status,
    /// Status label.
    pub status_label: String,
    /// Evidence lines.
    pub evidence: Vec<String>,
}

fn list<'a>(it: impl Iterator<Item = &'a PointCard>) -> (usize, String) {
    let v: Vec<String> = it
        .map(|c| format!("{} {} {}", c.number, c.service, c.internal_ip))
        .collect();
    let n = v.len();
    let mut shown: Vec<String> = v.into_iter().take(MAX_LISTED).collect();
    if n > MAX_LISTED {
        shown.push(format!("… ({n})"));
    }
    (n, shown.join(", "))
}

fn names(v: &[&MediumSummary]) -> String {
    v.iter()
        .map(|m| m.medium.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Evaluates the items.
pub fn evaluate(
    input: &ReportInput<'_>,
    cards: &[PointCard],
    media: &[MediumSummary],
    lang: Lang,
) -> Vec<ChecklistItem> {
    let c = Catalog::of(lang);
    let n = cards.len().to_string();
    let item = |id: &'static str, key: &str, status: Status, evidence: Vec<String>| ChecklistItem {
        id,
        title: c.get(&format!("checklist.{key}")).to_owned(),
        status,
        status_label: c.get(status.key()).to_owned(),
        evidence,
    };
    let mut out = Vec::new();

    // 2-① the ledger.
    {
        let mut ev = Vec::new();
        let status = if !input.ledger_given {
            ev.push(c.fill("checklist.evidence.no_ledger", &[("points", &n)]));
            Status::NoData
        } else {
            let (un, ul) = list(cards.iter().filter(|p| p.ledger_status == "unregistered"));
            let (dn, dl) = list(cards.iter().filter(|p| p.ledger_status == "drifted"));
            if un > 0 {
                ev.push(c.fill(
                    "checklist.evidence.unregistered",
                    &[("count", &un.to_string()), ("list", &ul)],
                ));
            }
            if dn > 0 {
                ev.push(c.fill(
                    "checklist.evidence.drifted",
                    &[("count", &dn.to_string()), ("list", &dl)],
                ));
            }
            if !input.unseen.is_empty() {
                ev.push(c.fill(
                    "checklist.evidence.unseen",
                    &[("count", &input.unseen.len().to_string())],
                ));
            }
            if un + dn > 0 {
                Status::Action
            } else {
                ev.insert(
                    0,
                    c.fill("checklist.evidence.all_registered", &[("points", &n)]),
                );
                Status::Met
            }
        };
        out.push(item("2-①", "2-1", status, ev));
    }

    // 2-② remote maintenance.
    {
        let mut ev = Vec::new();
        let ra = cards.iter().filter(|p| p.family == "remote-access").count();
        let vpn = cards.iter().filter(|p| p.family == "vpn").count();
        let risky = |p: &&PointCard| {
            p.risks
                .iter()
                .any(|r| matches!(r.id, "outside_window" | "non_standard_port" | "anonymiser"))
                || p.ledger_status == "unregistered"
        };
        let (rn, rl) = list(cards.iter().filter(risky));
        let status = if cards.is_empty() {
            ev.push(c.get("checklist.evidence.no_points").to_owned());
            Status::NoData
        } else {
            ev.push(c.fill(
                "checklist.evidence.remote_points",
                &[("ra", &ra.to_string()), ("vpn", &vpn.to_string())],
            ));
            if rn > 0 {
                ev.push(c.fill(
                    "checklist.evidence.risky_remote",
                    &[("count", &rn.to_string()), ("list", &rl)],
                ));
                Status::Action
            } else if input.ledger_given {
                Status::Met
            } else {
                ev.push(c.fill("checklist.evidence.no_ledger", &[("points", &n)]));
                Status::NoData
            }
        };
        out.push(item("2-②", "2-2", status, ev));
    }

    // 2-⑥ patches: weak protocols are a finding; versions are evidence to check, not a
    // verdict.
    {
        let mut ev = Vec::new();
        let (wn, wl) = list(
            cards
                .iter()
                .filter(|p| p.risks.iter().any(|r| r.id == "weak")),
        );
        let mut versions: Vec<&str> = cards
            .iter()
            .flat_map(|p| p.versions.iter().map(String::as_str))
            .collect();
        versions.sort_unstable();
        versions.dedup();
        let vn = versions.len();
        let mut vs: Vec<String> = versions
            .into_iter()
            .take(MAX_LISTED)
            .map(str::to_owned)
            .collect();
        if vn > MAX_LISTED {
            vs.push(format!("… ({vn})"));
        }
        if wn > 0 {
            ev.push(c.fill(
                "checklist.evidence.weak",
                &[("count", &wn.to_string()), ("list", &wl)],
            ));
        }
        if vn > 0 {
            ev.push(c.fill("checklist.evidence.versions", &[("list", &vs.join(", "))]));
        } else {
            ev.push(c.get("checklist.evidence.no_versions").to_owned());
        }
        let status = if wn > 0 {
            Status::Action
        } else {
            Status::NoData
        };
        out.push(item("2-⑥", "2-6", status, ev));
    }

    // 2-⑨ external media: mount events on agent hosts.
    {
        let mut ev = Vec::new();
        let mounts: u64 = media.iter().map(|m| m.mounts).sum();
        let over: Vec<&MediumSummary> = media.iter().filter(|m| m.over_window > 0).collect();
        let status = if mounts == 0 && over.is_empty() {
            ev.push(c.get("checklist.evidence.no_mounts").to_owned());
            Status::NoData
        } else {
            ev.push(c.fill(
                "checklist.evidence.mounts",
                &[("count", &mounts.to_string())],
            ));
            if over.is_empty() {
                Status::Met
            } else {
                ev.push(c.fill("checklist.evidence.over_window", &[("list", &names(&over))]));
                Status::Action
            }
        };
        out.push(item("2-⑨", "2-9", status, ev));
    }

    // 2-⑰ source restriction.
    {
        let mut ev = Vec::new();
        let (mn, ml) = list(
            cards
                .iter()
                .filter(|p| p.risks.iter().any(|r| r.id == "many_sources")),
        );
        let (inn, inl) = list(cards.iter().filter(|p| p.direction == "inbound"));
        let status = if inn == 0 {
            if cards.is_empty() && input.quality.is_none() {
                ev.push(c.get("checklist.evidence.no_points").to_owned());
                Status::NoData
            } else {
                ev.push(c.get("checklist.evidence.no_inbound").to_owned());
                Status::Met
            }
        } else {
            if mn > 0 {
                ev.push(c.fill(
                    "checklist.evidence.inbound_many",
                    &[("count", &mn.to_string()), ("list", &ml)],
                ));
            }
            ev.push(c.fill(
                "checklist.evidence.inbound",
                &[("count", &inn.to_string()), ("list", &inl)],
            ));
            Status::Action
        };
        out.push(item("2-⑰", "2-17", status, ev));
    }

    // 3-② backups.
    {
        let mut ev = Vec::new();
        let bad: Vec<&MediumSummary> = media
            .iter()
            .filter(|m| matches!(m.result, "differences" | "failed"))
            .collect();
        let stale: Vec<&MediumSummary> = media
            .iter()
            .filter(|m| m.stale_days.is_some() || m.result == "never")
            .collect();
        let flagged: Vec<&MediumSummary> = media.iter().filter(|m| m.flagged).collect();
        let status = if media.is_empty() {
            ev.push(c.get("checklist.evidence.no_backups").to_owned());
            Status::NoData
        } else {
            if !bad.is_empty() {
                ev.push(c.fill("checklist.evidence.backup_bad", &[("list", &names(&bad))]));
            }
            if !stale.is_empty() {
                ev.push(c.fill(
                    "checklist.evidence.backup_stale",
                    &[("list", &names(&stale))],
                ));
            }
            if !flagged.is_empty() {
                ev.push(c.fill(
                    "checklist.evidence.backup_flagged",
                    &[("list", &names(&flagged))],
                ));
            }
            if bad.is_empty() && stale.is_empty() && flagged.is_empty() {
                let all: Vec<&MediumSummary> = media.iter().collect();
                ev.push(c.fill(
                    "checklist.evidence.backup_ok",
                    &[("count", &media.len().to_string()), ("list", &names(&all))],
                ));
                Status::Met
            } else {
                Status::Action
            }
        };
        out.push(item("3-②", "3-2", status, ev));
    }
    out
}
