//! Site policy: what the inventory needs to know about this hospital beyond the traffic —
//! its time zone, its own public ranges, how many external sources make a point "open to
//! many", its maintenance windows, which services are relay clouds, VPN address pools, and
//! how severe each risk is. Data in `rules/` (`site.toml`, `clouds.toml`, `risks.toml`),
//! loaded with the other rule files so one schema check covers everything.

use super::window::{self, Window};
use crate::classify::Service;
use crate::record::Cidr;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// How serious a risk is, in the order an on-call person would care.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Review when convenient.
    Low,
    /// Review this week.
    Medium,
    /// Review today.
    High,
    /// Act now.
    Critical,
}

impl Severity {
    /// Output name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Japanese label.
    pub fn label_ja(self) -> &'static str {
        match self {
            Severity::Info => "情報",
            Severity::Low => "低",
            Severity::Medium => "中",
            Severity::High => "高",
            Severity::Critical => "緊急",
        }
    }

    fn parse(s: &str) -> Option<Severity> {
        [
            Severity::Info,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// The risk flags a connection point can carry. Ids are stable: alerts and reports key
/// on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskId {
    /// Started from the Internet towards an internal host.
    InboundInternet,
    /// Inbound from many distinct external sources: no source restriction (checklist 2-⑰).
    ManySources,
    /// A legacy or weak protocol or variant (telnet, rsh, PPTP, RDP standard security,
    /// SSH-1, TLS ≤ 1.0, X11).
    Weak,
    /// The service runs on a port not standard for it.
    NonStandardPort,
    /// Activity outside the configured maintenance windows.
    OutsideWindow,
    /// A consumer VPN or Tor: traffic leaves the hospital's control entirely.
    Anonymiser,
}

impl RiskId {
    /// All risks.
    pub const ALL: [RiskId; 6] = [
        RiskId::InboundInternet,
        RiskId::ManySources,
        RiskId::Weak,
        RiskId::NonStandardPort,
        RiskId::OutsideWindow,
        RiskId::Anonymiser,
    ];

    /// Output name.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskId::InboundInternet => "inbound_internet",
            RiskId::ManySources => "many_sources",
            RiskId::Weak => "weak",
            RiskId::NonStandardPort => "non_standard_port",
            RiskId::OutsideWindow => "outside_window",
            RiskId::Anonymiser => "anonymiser",
        }
    }

    /// From an output name.
    pub fn parse(s: &str) -> Option<RiskId> {
        RiskId::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What is said about a risk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RiskInfo {
    /// The risk.
    pub id: RiskId,
    /// Severity.
    pub severity: Severity,
    /// Short title, Japanese.
    pub title_ja: String,
    /// Short title, English.
    pub title_en: String,
    /// The first thing to do, Japanese.
    pub advice_ja: String,
    /// The first thing to do, English.
    pub advice_en: String,
    /// Checklist items this risk answers (e.g. "2-⑰").
    pub checklist: Vec<String>,
}

/// A relay cloud: many far addresses that are one outside party.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cloud {
    /// Stable id.
    pub id: String,
    /// Name shown as the far side.
    pub name: String,
    /// Services that always go through this cloud.
    pub services: Vec<Service>,
    /// Vendors (as the signatures name them) whose flows go through this cloud.
    pub vendors: Vec<String>,
    /// Each vendor seen with these services is a cloud of its own.
    pub by_vendor: bool,
}

/// The cloud a session was put in: a catalogue entry, possibly split by vendor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudRef {
    /// Stable id (`cloud.consumer-vpn`, or `cloud.consumer-vpn/Nord Security`).
    pub id: String,
    /// Name shown as the far side.
    pub name: String,
}

/// A maintenance window that applies to some services (all when none are listed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaintenanceWindow {
    /// Stable id.
    pub id: String,
    /// Services it covers; empty = every service.
    pub services: Vec<Service>,
    /// When maintenance may happen.
    pub windows: Vec<Window>,
}

/// Addresses a VPN gateway hands to its clients: connections from them count as reached
/// through the gateway's connection points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpnPool {
    /// The gateway's internal address (the internal end of its connection points).
    pub gateway: IpAddr,
    /// The client address pool.
    pub pool: Cidr,
}

/// The loaded policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The hospital or site name (`[site] name`), shown on reports.
    pub site_name: Option<String>,
    /// Offset of local time from UTC, in seconds (Japan: +9 h).
    pub utc_offset_secs: i32,
    /// The hospital's own public ranges (inside, in addition to the private ranges).
    pub local_nets: Vec<Cidr>,
    /// Distinct external sources at which an inbound point is "open to many".
    pub many_sources: usize,
    /// Maintenance windows.
    pub windows: Vec<MaintenanceWindow>,
    /// Relay clouds.
    pub clouds: Vec<Cloud>,
    /// VPN address pools.
    pub vpn_pools: Vec<VpnPool>,
    /// Risk texts and severities.
    pub risks: Vec<RiskInfo>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            site_name: None,
            utc_offset_secs: 9 * 3600,
            local_nets: Vec::new(),
            many_sources: 5,
            windows: Vec::new(),
            clouds: Vec::new(),
            vpn_pools: Vec::new(),
            risks: Vec::new(),
        }
    }
}

impl Policy {
    /// The cloud a session belongs to: by vendor first, then by service.
    pub fn cloud_for(&self, service: Service, vendor: Option<&str>) -> Option<CloudRef> {
        if let Some(v) = vendor {
            if let Some(c) = self
                .clouds
                .iter()
                .find(|c| c.vendors.iter().any(|x| x.eq_ignore_ascii_case(v)))
            {
                return Some(CloudRef {
                    id: c.id.clone(),
                    name: c.name.clone(),
                });
            }
        }
        let c = self.clouds.iter().find(|c| c.services.contains(&service))?;
        Some(match vendor {
            Some(v) if c.by_vendor => CloudRef {
                id: format!("{}/{v}", c.id),
                name: v.to_owned(),
            },
            _ => CloudRef {
                id: c.id.clone(),
                name: c.name.clone(),
            },
        })
    }

    /// Severity and texts of a risk (a built-in fallback when the rules do not list it).
    pub fn risk(&self, id: RiskId) -> RiskInfo {
        self.risks
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .unwrap_or_else(|| RiskInfo {
                id,
                severity: Severity::Medium,
                title_ja: id.as_str().into(),
                title_en: id.as_str().into(),
                advice_ja: String::new(),
                advice_en: String::new(),
                checklist: Vec::new(),
            })
    }

    /// Windows that apply to a service (none configured: no restriction).
    pub fn windows_for(&self, s: Service) -> Vec<Window> {
        self.windows
            .iter()
            .filter(|w| w.services.is_empty() || w.services.contains(&s))
            .flat_map(|w| w.windows.iter().copied())
            .collect()
    }
}

// --- Rule-file documents (deserialised by `crate::rules`, which reports errors) ---------

/// `[site]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteDoc {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    local_nets: Vec<String>,
    #[serde(default)]
    many_sources: Option<usize>,
}

/// `[[maintenance_window]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowDoc {
    id: String,
    #[serde(default)]
    services: Vec<String>,
    when: String,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
}

/// `[[cloud]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudDoc {
    id: String,
    name: String,
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    vendors: Vec<String>,
    #[serde(default)]
    by_vendor: bool,
}

/// `[[vpn_pool]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpnPoolDoc {
    gateway: String,
    pool: String,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
}

/// `[[risk]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskDoc {
    id: String,
    severity: String,
    title_ja: String,
    title_en: String,
    #[serde(default)]
    advice_ja: String,
    #[serde(default)]
    advice_en: String,
    #[serde(default)]
    checklist: Vec<String>,
}

/// A schema problem in one document: the key at fault and what is wrong.
pub type DocError = (&'static str, String);

fn services(list: &[String]) -> Result<Vec<Service>, DocError> {
    list.iter()
        .map(|s| {
            Service::parse(s).ok_or_else(|| {
                (
                    "services",
                    format!("unknown service {s:?} (see corpus VOCABULARY: rdp, vnc, ssh, …)"),
                )
            })
        })
        .collect()
}

impl Policy {
    /// Applies `[site]`.
    pub fn add_site(&mut self, d: SiteDoc) -> Result<(), DocError> {
        if let Some(n) = d.name {
            let n = n.trim();
            if n.chars().count() > 200 || n.chars().any(char::is_control) {
                return Err((
                    "name",
                    "must be at most 200 characters, without control characters".into(),
                ));
            }
            self.site_name = (!n.is_empty()).then(|| n.to_owned());
        }
        if let Some(tz) = d.timezone {
            self.utc_offset_secs = window::parse_utc_offset(&tz).map_err(|e| ("timezone", e))?;
        }
        for n in d.local_nets {
            self.local_nets
                .push(Cidr::parse(&n).map_err(|e| ("local_nets", e))?);
        }
        if let Some(n) = d.many_sources {
            if n < 2 {
                return Err(("many_sources", "must be at least 2".into()));
            }
            self.many_sources = n;
        }
        Ok(())
    }

    /// Adds a `[[maintenance_window]]`.
    pub fn add_window(&mut self, d: WindowDoc) -> Result<(), DocError> {
        let windows = window::parse_windows(&d.when).map_err(|e| ("when", e))?;
        if windows.is_empty() {
            return Err(("when", "empty window".into()));
        }
        self.windows.push(MaintenanceWindow {
            id: d.id,
            services: services(&d.services)?,
            windows,
        });
        Ok(())
    }

    /// Adds a `[[cloud]]`.
    pub fn add_cloud(&mut self, d: CloudDoc) -> Result<(), DocError> {
        if d.services.is_empty() && d.vendors.is_empty() {
            return Err((
                "services",
                format!("cloud {} names no services and no vendors", d.id),
            ));
        }
        self.clouds.push(Cloud {
            id: d.id,
            name: d.name,
            services: services(&d.services)?,
            vendors: d.vendors,
            by_vendor: d.by_vendor,
        });
        Ok(())
    }

    /// Adds a `[[vpn_pool]]`.
    pub fn add_vpn_pool(&mut self, d: VpnPoolDoc) -> Result<(), DocError> {
        let gateway: IpAddr = d
            .gateway
            .trim()
            .parse()
            .map_err(|_| ("gateway", format!("{:?} is not an IP address", d.gateway)))?;
        let pool = Cidr::parse(&d.pool).map_err(|e| ("pool", e))?;
        self.vpn_pools.push(VpnPool { gateway, pool });
        Ok(())
    }

    /// Adds a `[[risk]]`.
    pub fn add_risk(&mut self, d: RiskDoc) -> Result<(), DocError> {
        let id = RiskId::parse(&d.id).ok_or_else(|| {
            let names: Vec<_> = RiskId::ALL.iter().map(|r| r.as_str()).collect();
            (
                "id",
                format!("unknown risk {:?}; known: {}", d.id, names.join(", ")),
            )
        })?;
        let severity = Severity::parse(&d.severity).ok_or_else(|| {
            (
                "severity",
                format!(
                    "unknown severity {:?}; known: info, low, medium, high, critical",
                    d.severity
                ),
            )
        })?;
        if self.risks.iter().any(|r| r.id == id) {
            return Err(("id", format!("risk {} is defined twice", d.id)));
        }
        self.risks.push(RiskInfo {
            id,
            severity,
            title_ja: d.title_ja,
            title_en: d.title_en,
            advice_ja: d.advice_ja,
            advice_en: d.advice_en,
            checklist: d.checklist,
        });
        Ok(())
    }
}
