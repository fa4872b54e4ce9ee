//! Findings: what agents tell the collector, as versioned, self-describing JSON.
//!
//! A [`Batch`] carries findings of one agent. Each [`Finding`] has a per-agent sequence
//! number: the agent assigns them in the order it spools findings and never reuses one,
//! so (agent, `seq`) makes every finding idempotent — a retried or re-exported batch is
//! stored once, however it was cut.
//!
//! The inventory travels as what it is derived from ([`Body::Session`], [`Body::Lateral`],
//! [`Body::Names`], [`Body::HostMac`]), so the collector merges agents with the same code
//! as the agent ([`Inventory::apply`]): two agents that saw overlapping traffic give the
//! same points as one that saw everything.

use crate::classify::Service;
use crate::inventory::policy::Policy;
use crate::inventory::{Inventory, LateralKey, Session};
use crate::names::book::NameBook;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The schema name and version every batch carries.
pub const SCHEMA: &str = "setten.findings/1";
/// Findings per batch an agent sends; the collector refuses more.
pub const MAX_BATCH_FINDINGS: usize = 5_000;

/// Findings of one agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The agent's name (the credential decides who it is; this must agree).
    pub agent: String,
    /// The findings, in sequence order.
    pub findings: Vec<Finding>,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// Per-agent sequence number (from 1).
    pub seq: u64,
    /// When the agent recorded it, µs since the Unix epoch.
    pub at_us: u64,
    /// What it says.
    pub body: Body,
}

/// An internal remote-access connection (reach).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lateral {
    /// The host that opened it.
    pub client: IpAddr,
    /// The host it reached.
    pub server: IpAddr,
    /// Service.
    pub service: Service,
    /// First seen, µs.
    pub first_us: u64,
    /// Last seen, µs.
    pub last_us: u64,
}

/// What a finding says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Body {
    /// A remote-access or VPN session across the boundary.
    Session(Box<Session>),
    /// An internal remote-access connection.
    Lateral(Lateral),
    /// Names seen on the wire (a snapshot; merging snapshots is order-independent).
    Names(NameBook),
    /// A local host's own MAC address as seen in frames.
    HostMac {
        /// Address.
        ip: IpAddr,
        /// MAC.
        mac: [u8; 6],
    },
    /// The capture-quality record of one run or interval.
    CaptureQuality(serde_json::Map<String, serde_json::Value>),
    /// Agent health (drops, spool, CPU, memory).
    Health(serde_json::Map<String, serde_json::Value>),
    /// A backup verification result.
    Backup(serde_json::Map<String, serde_json::Value>),
}

impl Body {
    /// The `kind` name.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Session(_) => "session",
            Body::Lateral(_) => "lateral",
            Body::Names(_) => "names",
            Body::HostMac { .. } => "host_mac",
            Body::CaptureQuality(_) => "capture_quality",
            Body::Health(_) => "health",
            Body::Backup(_) => "backup",
        }
    }

    /// Whether it feeds the inventory.
    pub fn is_inventory(&self) -> bool {
        matches!(
            self,
            Body::Session(_) | Body::Lateral(_) | Body::Names(_) | Body::HostMac { .. }
        )
    }
}

impl Inventory {
    /// Everything the inventory is derived from, as findings.
    pub fn to_findings(&self) -> Vec<Body> {
        let mut out: Vec<Body> = Vec::new();
        for s in self.sessions() {
            let mut s = s.clone();
            s.agents.clear();
            out.push(Body::Session(Box::new(s)));
        }
        for (k, first_us, last_us) in self.laterals() {
            out.push(Body::Lateral(Lateral {
                client: k.client,
                server: k.server,
                service: k.service,
                first_us,
                last_us,
            }));
        }
        for (ip, mac) in self.frame_macs() {
            out.push(Body::HostMac { ip, mac });
        }
        if !self.names().is_empty() {
            out.push(Body::Names(self.names().clone()));
        }
        out
    }

    /// Takes in one finding of `agent` (findings that are not about the inventory are
    /// ignored).
    pub fn apply(&mut self, agent: &str, body: &Body, policy: &Policy) {
        match body {
            Body::Session(s) => {
                let mut s = (**s).clone();
                s.agents = vec![agent.to_owned()];
                self.add_session(s, policy);
            }
            Body::Lateral(l) => self.add_lateral(
                LateralKey {
                    client: l.client,
                    server: l.server,
                    service: l.service,
                },
                l.first_us,
                l.last_us,
            ),
            Body::Names(b) => self.merge_names(b),
            Body::HostMac { ip, mac } => self.learn_mac(*ip, *mac),
            Body::CaptureQuality(_) | Body::Health(_) | Body::Backup(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_back_and_unknown_fields_are_refused() {
        let b = Batch {
            schema: SCHEMA.into(),
            agent: "mirror-1".into(),
            findings: vec![Finding {
                seq: 1,
                at_us: 5,
                body: Body::HostMac {
                    ip: "10.0.0.1".parse().unwrap(),
                    mac: [0, 1, 2, 3, 4, 5],
                },
            }],
        };
        let text = serde_json::to_string(&b).unwrap();
        assert!(text.contains(r#""kind":"host_mac""#), "{text}");
        let back: Batch = serde_json::from_str(&text).unwrap();
        assert_eq!(back, b);
        let bad = text.replace(r#""seq":1"#, r#""seq":1,"colour":"red""#);
        assert!(serde_json::from_str::<Batch>(&bad).is_err());
    }
}
