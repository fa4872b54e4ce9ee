//! The 外部接続点 inventory: remote-access and VPN flows grouped into external connection
//! points, with names, risks and the hospital's ledger.
//!
//! A point is keyed by its internal endpoint, service, direction and far side
//! (DESIGN.md). The far side is one host for outbound connections, a relay cloud for
//! services that go through a provider's fleet (TeamViewer, a consumer VPN, Tor — see
//! `rules/clouds.toml`), and "any external source" for inbound ones, so an exposed
//! service is one point however many sources reach it.
//!
//! [`Inventory`] keeps what the points are derived from — the sessions, the internal
//! connections that show reach, the names and MAC addresses seen — and derives the points
//! on demand ([`Inventory::points`]). Merging two inventories ([`Inventory::merge`]) is a
//! union of those parts with sessions deduplicated, so agents that saw overlapping
//! traffic merge into the same points as one agent that saw all of it; the collector
//! uses the same code.

pub mod ledger;
pub mod output;
pub mod policy;
pub mod quality;
pub mod window;

use crate::classify::{Evidence, Family, Service};
use crate::decode::Addr;
use crate::names::book::NameBook;
use crate::names::oui::{format_mac, Oui};
use crate::names::Obs;
use crate::record::{transport_name, FlowView, Rfc3339};
use ledger::{Drift, Ledger, Observed, Reconciled};
use policy::{Policy, RiskId, Severity};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Sessions kept per point; beyond it sessions are folded into a summary (counted, not
/// deduplicated across agents).
pub const MAX_SESSIONS_PER_POINT: usize = 50_000;
/// Points kept; further new points are counted as dropped.
pub const MAX_POINTS: usize = 20_000;
/// Internal remote-access connections kept for reach.
pub const MAX_LATERAL: usize = 100_000;
/// Local addresses whose frame MAC is remembered.
pub const MAX_MACS: usize = 100_000;
/// Sessions of the same transport and endpoints starting this close together are the
/// same session seen by two sensors (clocks of different boxes differ a little).
pub const SAME_SESSION_US: u64 = 120_000_000;
/// Far addresses listed per point in the output (the count is always exact).
pub const MAX_LISTED_IPS: usize = 64;
/// Evidence items listed per point.
pub const MAX_EVIDENCE: usize = 16;
/// Names shown per side.
pub const MAX_NAMES: usize = 8;
/// Name observations kept in the book.
pub const MAX_NAMED_ADDRESSES: usize = 200_000;
/// A MAC seen in front of more local addresses than this is a router's, not a host's.
const ROUTER_MAC_ADDRESSES: usize = 2;

/// An address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Endpoint {
    /// Address.
    pub ip: IpAddr,
    /// Port (0 where the transport has none).
    pub port: u16,
}

/// Who started the connection, relative to the hospital.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From outside in.
    Inbound,
    /// From inside out.
    Outbound,
}

impl Direction {
    /// Output name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// One remote-access or VPN session across the boundary: the flow summary the inventory
/// is built from (and that agents ship).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// IP protocol number.
    pub transport: u8,
    /// The side that started it.
    pub client: Endpoint,
    /// The side that answered.
    pub server: Endpoint,
    /// Inbound or outbound.
    pub direction: Direction,
    /// Service.
    pub service: Service,
    /// Protocol on the wire.
    pub protocol: String,
    /// Vendor, when evidence names one.
    pub vendor: Option<String>,
    /// Product.
    pub product: Option<String>,
    /// Evidence.
    pub evidence: Vec<Evidence>,
    /// Legacy or weak variant.
    pub weak: Option<String>,
    /// Found on a port not standard for the service.
    pub non_standard_port: bool,
    /// First packet, µs since the Unix epoch.
    pub first_us: u64,
    /// Last packet.
    pub last_us: u64,
    /// Bytes both ways (IP layer).
    pub bytes: u64,
    /// Packets both ways.
    pub packets: u64,
    /// Outer VLAN (0 untagged).
    pub vlan: u16,
    /// Names the session itself gives the far side (TLS SNI, certificate names).
    pub far_names: Vec<String>,
    /// The internal side's MAC in the frames, when seen.
    pub internal_mac: Option<[u8; 6]>,
    /// Software versions seen (SSH banners, TLS version), for checklist 2-⑥.
    pub versions: Vec<String>,
    /// Agents that saw it (set by the collector).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
}

impl Session {
    /// The internal end.
    pub fn internal(&self) -> Endpoint {
        match self.direction {
            Direction::Inbound => self.server,
            Direction::Outbound => self.client,
        }
    }

    /// The external end.
    pub fn far(&self) -> Endpoint {
        match self.direction {
            Direction::Inbound => self.client,
            Direction::Outbound => self.server,
        }
    }

    fn same(&self, o: &Session) -> bool {
        self.transport == o.transport
            && self.client == o.client
            && self.server == o.server
            && self.first_us.abs_diff(o.first_us) <= SAME_SESSION_US
    }

    /// Combines two sightings of the same session (order does not matter).
    fn absorb(&mut self, o: &Session) {
        self.first_us = self.first_us.min(o.first_us);
        self.last_us = self.last_us.max(o.last_us);
        self.bytes = self.bytes.max(o.bytes);
        self.packets = self.packets.max(o.packets);
        for e in &o.evidence {
            if !self.evidence.contains(e) {
                self.evidence.push(e.clone());
            }
        }
        self.evidence.sort_by(evidence_order);
        union_sorted(&mut self.far_names, &o.far_names);
        union_sorted(&mut self.versions, &o.versions);
        self.agents.extend(o.agents.iter().cloned());
        self.agents.sort();
        self.agents.dedup();
        self.non_standard_port |= o.non_standard_port;
        if self.weak.is_none() {
            self.weak.clone_from(&o.weak);
        }
        if (o.vendor.is_some(), &o.vendor, &o.product)
            > (self.vendor.is_some(), &self.vendor, &self.product)
        {
            self.vendor.clone_from(&o.vendor);
            self.product.clone_from(&o.product);
        }
        if self.internal_mac.is_none() {
            self.internal_mac = o.internal_mac;
        }
        self.vlan = self.vlan.max(o.vlan);
    }
}

fn evidence_order(a: &Evidence, b: &Evidence) -> std::cmp::Ordering {
    (&a.rule, &a.field, &a.value).cmp(&(&b.rule, &b.field, &b.value))
}

fn union_sorted(a: &mut Vec<String>, b: &[String]) {
    a.extend(b.iter().cloned());
    a.sort();
    a.dedup();
    a.truncate(MAX_NAMES);
}

/// The far side of a point, as keyed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FarKey {
    /// One external host.
    Host {
        /// Its address.
        ip: IpAddr,
    },
    /// A relay cloud (`rules/clouds.toml`).
    Cloud {
        /// Catalogue id.
        id: String,
        /// Name.
        name: String,
    },
    /// Any external source (inbound points).
    Any,
}

/// What identifies a connection point.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PointKey {
    /// Internal address.
    pub internal: IpAddr,
    /// Internal port for inbound points (the exposed service), 0 for outbound.
    pub port: u16,
    /// Service.
    pub service: Service,
    /// Direction.
    pub direction: Direction,
    /// Far side.
    pub far: FarKey,
}

impl PointKey {
    /// The key of the point a session belongs to (so a finding can be traced to its
    /// point's [`PointKey::id`] without deriving every point).
    pub fn of(s: &Session, policy: &Policy) -> PointKey {
        let internal = s.internal();
        let far = match policy.cloud_for(s.service, s.vendor.as_deref()) {
            Some(c) => FarKey::Cloud {
                id: c.id,
                name: c.name,
            },
            None => match s.direction {
                Direction::Outbound => FarKey::Host { ip: s.far().ip },
                Direction::Inbound => FarKey::Any,
            },
        };
        PointKey {
            internal: internal.ip,
            port: match s.direction {
                Direction::Inbound => internal.port,
                Direction::Outbound => 0,
            },
            service: s.service,
            direction: s.direction,
            far,
        }
    }

    /// The stable id: a hash of the key's canonical text, the same for the same point in
    /// every run and on every agent.
    pub fn id(&self) -> String {
        let far = match &self.far {
            FarKey::Host { ip } => format!("host:{ip}"),
            FarKey::Cloud { id, .. } => format!("cloud:{id}"),
            FarKey::Any => "any".to_owned(),
        };
        let text = format!(
            "setten.cp.v1|{}|{}|{}|{}|{far}",
            self.internal,
            self.port,
            self.service.as_str(),
            self.direction.as_str()
        );
        let d = Sha256::digest(text.as_bytes());
        let mut id = String::from("cp-");
        for b in d.iter().take(8) {
            id.push_str(&format!("{b:02x}"));
        }
        id
    }
}

/// Sessions folded into a point beyond [`MAX_SESSIONS_PER_POINT`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overflow {
    /// Sessions.
    pub sessions: u64,
    /// Bytes.
    pub bytes: u64,
    /// Earliest start.
    pub first_us: Option<u64>,
    /// Latest end.
    pub last_us: Option<u64>,
}

/// What a point is derived from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointData {
    /// Sessions, sorted by endpoints and start.
    pub sessions: Vec<Session>,
    /// Sessions beyond the cap.
    pub overflow: Overflow,
}

impl PointData {
    fn add(&mut self, s: Session) {
        let key = |x: &Session| (x.transport, x.client, x.server, x.first_us);
        let pos = self.sessions.partition_point(|x| key(x) < key(&s));
        // A sighting of the same session is within SAME_SESSION_US before or after.
        let lo = self.sessions[..pos]
            .iter()
            .rev()
            .take_while(|x| {
                x.transport == s.transport && x.client == s.client && x.server == s.server
            })
            .count();
        let candidates = (pos - lo)..self.sessions.len();
        for i in candidates {
            let Some(x) = self.sessions.get_mut(i) else {
                break;
            };
            if (x.transport, x.client, x.server) != (s.transport, s.client, s.server) {
                break;
            }
            if x.same(&s) {
                x.absorb(&s);
                return;
            }
        }
        if self.sessions.len() >= MAX_SESSIONS_PER_POINT {
            let o = &mut self.overflow;
            o.sessions += 1;
            o.bytes += s.bytes;
            o.first_us = Some(o.first_us.map_or(s.first_us, |f| f.min(s.first_us)));
            o.last_us = Some(o.last_us.map_or(s.last_us, |l| l.max(s.last_us)));
            return;
        }
        self.sessions.insert(pos, s);
    }
}

/// An internal remote-access connection (internal host to internal host), for reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LateralKey {
    /// The host that opened it.
    pub client: IpAddr,
    /// The host it reached.
    pub server: IpAddr,
    /// Service.
    pub service: Service,
}

/// Counters of what the inventory could not keep.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// New points beyond [`MAX_POINTS`].
    pub points: u64,
    /// Internal connections beyond [`MAX_LATERAL`].
    pub lateral: u64,
    /// Remote-access or VPN flows with both ends outside (transit through the sensor's
    /// view): not connection points of this hospital.
    pub transit: u64,
}

/// Everything the points are derived from.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    points: BTreeMap<PointKey, PointData>,
    lateral: BTreeMap<LateralKey, (u64, u64)>,
    names: NameBook,
    /// Local address → MACs seen in front of it.
    macs: BTreeMap<IpAddr, BTreeSet<[u8; 6]>>,
    /// MAC → local addresses behind it (capped just above the router threshold).
    mac_ips: BTreeMap<[u8; 6], BTreeSet<IpAddr>>,
    /// What could not be kept.
    pub dropped: Dropped,
}

impl Inventory {
    /// An empty inventory.
    pub fn new() -> Inventory {
        Inventory {
            names: NameBook::new(MAX_NAMED_ADDRESSES),
            ..Inventory::default()
        }
    }

    /// Takes in one finished flow: a session of a point, an internal connection (reach),
    /// names and MAC addresses.
    pub fn add_flow(&mut self, v: &FlowView<'_>, policy: &Policy) {
        let f = v.flow;
        for (ts, obs) in f.names.iter().flat_map(|n| n.iter()) {
            self.names.observe(*ts, obs);
        }
        let client_local = v.cx.nets.is_local(f.client().addr);
        let server_local = v.cx.nets.is_local(f.server().addr);
        if f.depth == 0 {
            for (side, local, mac) in [
                (f.client().addr, client_local, f.mac[0]),
                (f.server().addr, server_local, f.mac[1]),
            ] {
                if local && mac != [0; 6] {
                    self.learn_mac(side.to_ip(), mac);
                }
            }
        }
        let Some(class) = v.class() else { return };
        let Some(service) = class.service else { return };
        let direction = match (client_local, server_local) {
            (true, true) => {
                if service.family() == Family::RemoteAccess {
                    self.add_lateral(
                        LateralKey {
                            client: f.client().addr.to_ip(),
                            server: f.server().addr.to_ip(),
                            service,
                        },
                        f.first_us,
                        f.last_us,
                    );
                }
                return;
            }
            (false, false) => {
                self.dropped.transit += 1;
                return;
            }
            (true, false) => Direction::Outbound,
            (false, true) => Direction::Inbound,
        };
        let mut far_names = Vec::new();
        let mut versions = Vec::new();
        if let Some(t) = &class.extra.meta.tls {
            if let Some(sni) = &t.sni {
                far_names.push(sni.to_ascii_lowercase());
            }
            if let Some(c) = &t.cert {
                far_names.extend(c.san.iter().map(|s| s.to_ascii_lowercase()));
            }
            if let Some(ver) = &t.version {
                versions.push(ver.clone());
            }
        }
        if let Some(s) = &class.extra.meta.ssh {
            versions.extend(s.client_banner.iter().cloned());
            versions.extend(s.server_banner.iter().cloned());
        }
        if let Some(ver) = &class.extra.meta.version {
            if versions.is_empty() {
                versions.push(ver.clone());
            }
        }
        far_names.sort();
        far_names.dedup();
        far_names.truncate(MAX_NAMES);
        versions.sort();
        versions.dedup();
        let internal_mac = match direction {
            Direction::Outbound => f.mac[0],
            Direction::Inbound => f.mac[1],
        };
        let mut evidence = class.evidence.clone();
        evidence.sort_by(evidence_order);
        evidence.dedup();
        let s = Session {
            transport: f.key.proto,
            client: Endpoint {
                ip: f.client().addr.to_ip(),
                port: f.client().port,
            },
            server: Endpoint {
                ip: f.server().addr.to_ip(),
                port: f.server().port,
            },
            direction,
            service,
            protocol: class.protocol.to_owned(),
            vendor: class.extra.vendor.clone(),
            product: class.extra.product.clone(),
            evidence,
            weak: class.extra.weak.clone(),
            non_standard_port: v.non_standard_port(),
            first_us: f.first_us,
            last_us: f.last_us,
            bytes: f.bytes[0] + f.bytes[1],
            packets: f.packets[0] + f.packets[1],
            vlan: f.vlan,
            far_names,
            internal_mac: (f.depth == 0 && internal_mac != [0; 6]).then_some(internal_mac),
            versions,
            agents: Vec::new(),
        };
        self.add_session(s, policy);
    }

    /// Adds a session to its point (deduplicated against sightings already there).
    pub fn add_session(&mut self, s: Session, policy: &Policy) {
        let key = PointKey::of(&s, policy);
        self.add_keyed(key, s);
    }

    fn add_keyed(&mut self, key: PointKey, s: Session) {
        if let Some(p) = self.points.get_mut(&key) {
            p.add(s);
        } else if self.points.len() >= MAX_POINTS {
            self.dropped.points += 1;
        } else {
            let mut p = PointData::default();
            p.add(s);
            self.points.insert(key, p);
        }
    }

    /// Adds an internal remote-access connection (for reach).
    pub fn add_lateral(&mut self, k: LateralKey, first: u64, last: u64) {
        if let Some(e) = self.lateral.get_mut(&k) {
            e.0 = e.0.min(first);
            e.1 = e.1.max(last);
        } else if self.lateral.len() >= MAX_LATERAL {
            self.dropped.lateral += 1;
        } else {
            self.lateral.insert(k, (first, last));
        }
    }

    /// Records the MAC seen in front of a local address.
    pub fn learn_mac(&mut self, ip: IpAddr, mac: [u8; 6]) {
        if mac[0] & 1 != 0 {
            return; // multicast/broadcast destination
        }
        if self.macs.len() < MAX_MACS || self.macs.contains_key(&ip) {
            let set = self.macs.entry(ip).or_default();
            if set.len() < 4 {
                set.insert(mac);
            }
        }
        if self.mac_ips.len() < MAX_MACS || self.mac_ips.contains_key(&mac) {
            let set = self.mac_ips.entry(mac).or_default();
            if set.len() <= ROUTER_MAC_ADDRESSES {
                set.insert(ip);
            }
        }
    }

    /// Each point's key and the sessions it holds (those beyond
    /// [`MAX_SESSIONS_PER_POINT`] are only counted, in its overflow).
    pub fn keyed_sessions(&self) -> impl Iterator<Item = (&PointKey, &[Session])> {
        self.points.iter().map(|(k, p)| (k, p.sessions.as_slice()))
    }

    /// Every session of every point.
    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.points.values().flat_map(|p| p.sessions.iter())
    }

    /// Internal remote-access connections: key, first and last seen.
    pub fn laterals(&self) -> impl Iterator<Item = (LateralKey, u64, u64)> + '_ {
        self.lateral.iter().map(|(k, (a, b))| (*k, *a, *b))
    }

    /// (local address, MAC) pairs seen in frames.
    pub fn frame_macs(&self) -> impl Iterator<Item = (IpAddr, [u8; 6])> + '_ {
        self.macs
            .iter()
            .flat_map(|(ip, macs)| macs.iter().map(move |m| (*ip, *m)))
    }

    /// Merges a names book (another agent's).
    pub fn merge_names(&mut self, b: &NameBook) {
        self.names.merge(b);
    }

    /// Records a name observation directly (live capture, tests).
    pub fn observe_name(&mut self, ts_us: u64, obs: &Obs) {
        self.names.observe(ts_us, obs);
    }

    /// Merges another inventory into this one. The result does not depend on the order
    /// of merging (beyond the caps).
    pub fn merge(&mut self, other: &Inventory) {
        for (k, p) in &other.points {
            for s in &p.sessions {
                self.add_keyed(k.clone(), s.clone());
            }
            if p.overflow.sessions > 0 {
                let e = self.points.entry(k.clone()).or_default();
                let o = &mut e.overflow;
                o.sessions += p.overflow.sessions;
                o.bytes += p.overflow.bytes;
                o.first_us = o.first_us.min(p.overflow.first_us).or(p.overflow.first_us);
                o.last_us = o.last_us.max(p.overflow.last_us);
            }
        }
        for (k, (a, b)) in &other.lateral {
            self.add_lateral(*k, *a, *b);
        }
        self.names.merge(&other.names);
        for (ip, macs) in &other.macs {
            for m in macs {
                self.learn_mac(*ip, *m);
            }
        }
        for (mac, ips) in &other.mac_ips {
            for ip in ips {
                self.learn_mac(*ip, *mac);
            }
        }
        self.dropped.points += other.dropped.points;
        self.dropped.lateral += other.dropped.lateral;
        self.dropped.transit += other.dropped.transit;
    }

    /// How many points there are.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The names book (for the report's host list).
    pub fn names(&self) -> &NameBook {
        &self.names
    }

    /// The MAC of a local host, unless it is only ever seen behind a router's MAC.
    pub fn host_mac(&self, ip: IpAddr) -> Option<[u8; 6]> {
        if let Some(m) = self.names.mac_of(ip) {
            return Some(m);
        }
        let macs = self.macs.get(&ip)?;
        macs.iter()
            .find(|m| self.mac_ips.get(*m).is_some_and(|ips| ips.len() <= 1))
            .copied()
    }

    /// The MACs the points will show (for loading only their vendors).
    pub fn point_macs(&self) -> Vec<[u8; 6]> {
        let mut v: Vec<[u8; 6]> = Vec::new();
        for (k, d) in &self.points {
            let frame = d.sessions.iter().find_map(|s| s.internal_mac);
            v.extend(self.host_mac(k.internal).or(frame));
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Derives the connection points.
    pub fn points(&self, cx: &PointsCx<'_>) -> Points {
        let mut points: Vec<ConnectionPoint> = self
            .points
            .iter()
            .map(|(k, d)| self.point(k, d, cx))
            .collect();
        // Most severe first, then by id for a stable order.
        points.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.id.cmp(&b.id)));
        let unseen = match cx.ledger {
            Some(l) => {
                let matched: Vec<usize> =
                    points.iter().filter_map(|p| p.ledger.entry_index).collect();
                l.unseen(&matched).into_iter().cloned().collect()
            }
            None => Vec::new(),
        };
        Points { points, unseen }
    }

    fn point(&self, k: &PointKey, d: &PointData, cx: &PointsCx<'_>) -> ConnectionPoint {
        let policy = cx.policy;
        let off = i64::from(policy.utc_offset_secs);
        let ss = &d.sessions;
        let first = ss
            .iter()
            .map(|s| s.first_us)
            .chain(d.overflow.first_us)
            .min()
            .unwrap_or(0);
        let last = ss
            .iter()
            .map(|s| s.last_us)
            .chain(d.overflow.last_us)
            .max()
            .unwrap_or(0);
        let mut hours = [0u32; 24];
        for s in ss {
            let a = (s.first_us / 1_000_000) as i64 + off;
            let b = (s.last_us / 1_000_000) as i64 + off;
            let (ha, hb) = (a.div_euclid(3600), b.div_euclid(3600));
            if hb - ha >= 23 {
                hours.iter_mut().for_each(|h| *h += 1);
            } else {
                for h in ha..=hb {
                    if let Some(x) = hours.get_mut(h.rem_euclid(24) as usize) {
                        *x += 1;
                    }
                }
            }
        }
        let far_ips: BTreeSet<IpAddr> = ss.iter().map(|s| s.far().ip).collect();
        let mut far_names: BTreeSet<String> = BTreeSet::new();
        for s in ss {
            far_names.extend(s.far_names.iter().cloned());
            for (n, _) in self.names.names_at(s.far().ip, s.first_us) {
                far_names.insert(n);
            }
        }
        let (far_kind, far_name) = match &k.far {
            FarKey::Host { .. } => ("host", None),
            FarKey::Cloud { name, .. } => ("cloud", Some(name.clone())),
            FarKey::Any => ("any", None),
        };
        // Vendor: the most common attribution, ties by name.
        let mut vendors: BTreeMap<(Option<&str>, Option<&str>), usize> = BTreeMap::new();
        for s in ss
            .iter()
            .filter(|s| s.vendor.is_some() || s.product.is_some())
        {
            *vendors
                .entry((s.vendor.as_deref(), s.product.as_deref()))
                .or_default() += 1;
        }
        let best = vendors
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(k, _)| *k);
        let (vendor, product) = best.unwrap_or((None, None));
        let mut evidence: Vec<Evidence> = Vec::new();
        for s in ss {
            for e in &s.evidence {
                if !evidence.contains(e) {
                    evidence.push(e.clone());
                }
            }
        }
        // Catalogue rules (vendor attributions) before built-in structure checks.
        evidence.sort_by(|a, b| {
            (a.rule.starts_with("setten."), &a.rule, &a.field, &a.value).cmp(&(
                b.rule.starts_with("setten."),
                &b.rule,
                &b.field,
                &b.value,
            ))
        });
        evidence.truncate(MAX_EVIDENCE);
        let mut versions: BTreeSet<String> = BTreeSet::new();
        let mut weak: BTreeSet<String> = BTreeSet::new();
        let mut ports: BTreeSet<u16> = BTreeSet::new();
        let mut transports: BTreeSet<u8> = BTreeSet::new();
        let mut vlans: BTreeSet<u16> = BTreeSet::new();
        let mut nonstd: BTreeSet<u16> = BTreeSet::new();
        let mut mac = None;
        let mut agents: BTreeSet<String> = BTreeSet::new();
        for s in ss {
            agents.extend(s.agents.iter().cloned());
            versions.extend(s.versions.iter().cloned());
            weak.extend(s.weak.iter().cloned());
            ports.insert(s.server.port);
            transports.insert(s.transport);
            vlans.insert(s.vlan);
            if s.non_standard_port {
                nonstd.insert(s.server.port);
            }
            if mac.is_none() {
                mac = s.internal_mac;
            }
        }
        let host_mac = self.host_mac(k.internal).or_else(|| {
            // A frame MAC is the host's own unless it fronts several addresses (a router).
            mac.filter(|m| self.mac_ips.get(m).is_none_or(|ips| ips.len() <= 1))
        });
        // Reach: internal hosts the point's internal host (or its VPN pool) opened remote
        // access to while the point was active.
        let mut reach: BTreeMap<IpAddr, BTreeSet<Service>> = BTreeMap::new();
        let pools: Vec<_> = policy
            .vpn_pools
            .iter()
            .filter(|p| p.gateway == k.internal)
            .collect();
        for (lk, (a, b)) in &self.lateral {
            let from_here = lk.client == k.internal
                || pools.iter().any(|p| p.pool.contains(Addr::from(lk.client)));
            if from_here && *a <= last && *b >= first && lk.server != k.internal {
                reach.entry(lk.server).or_default().insert(lk.service);
            }
        }
        let reach: Vec<Reach> = reach
            .into_iter()
            .map(|(ip, services)| Reach {
                names: self.host_names(ip),
                ip,
                services: services.into_iter().collect(),
            })
            .collect();

        // Risks.
        let mut risks: Vec<Risk> = Vec::new();
        let mut flag = |id: RiskId, detail: Option<String>| {
            let info = policy.risk(id);
            risks.push(Risk {
                id,
                severity: info.severity,
                detail,
            });
        };
        if k.direction == Direction::Inbound {
            flag(RiskId::InboundInternet, None);
            if far_ips.len() >= policy.many_sources {
                flag(
                    RiskId::ManySources,
                    Some(format!("{} external sources", far_ips.len())),
                );
            }
        }
        if !weak.is_empty() {
            flag(
                RiskId::Weak,
                Some(weak.iter().cloned().collect::<Vec<_>>().join(", ")),
            );
        }
        if !nonstd.is_empty() {
            let p: Vec<String> = nonstd.iter().map(u16::to_string).collect();
            flag(
                RiskId::NonStandardPort,
                Some(format!("port {}", p.join(", "))),
            );
        }
        let spans: Vec<(i64, i64)> = ss
            .iter()
            .map(|s| {
                (
                    (s.first_us / 1_000_000) as i64,
                    (s.last_us / 1_000_000) as i64,
                )
            })
            .collect();
        let far_ip_list: Vec<IpAddr> = far_ips.iter().copied().collect();
        let far_name_list: Vec<String> = far_names.iter().take(MAX_NAMES * 2).cloned().collect();
        let ledger = match cx.ledger {
            None => LedgerStatus::none(),
            Some(l) => {
                let o = Observed {
                    internal: k.internal,
                    service: k.service,
                    far_ips: &far_ip_list,
                    far_names: &far_name_list,
                    far_cloud: far_name.as_deref(),
                    vendor,
                    sessions: &spans,
                    utc_offset_secs: policy.utc_offset_secs,
                };
                LedgerStatus::from(l, l.reconcile(&o))
            }
        };
        // A point the ledger lists is held to its entry's window (none: any time); the
        // site's maintenance windows apply to the rest.
        let windows = match ledger.entry_index.and_then(|i| cx.ledger?.entries.get(i)) {
            Some(e) => e.windows.clone(),
            None => policy.windows_for(k.service),
        };
        if !windows.is_empty() {
            let outside = spans
                .iter()
                .filter(|(a, b)| !window::covered_by_any(&windows, *a, *b, policy.utc_offset_secs))
                .count();
            if outside > 0 {
                flag(
                    RiskId::OutsideWindow,
                    Some(format!("{outside} of {} sessions", spans.len())),
                );
            }
        }
        if k.service.family() == Family::Anonymiser {
            flag(RiskId::Anonymiser, None);
        }
        let severity = risks.iter().map(|r| r.severity).max();

        let sessions = ss.len() as u64 + d.overflow.sessions;
        let bytes = ss.iter().map(|s| s.bytes).sum::<u64>() + d.overflow.bytes;
        ConnectionPoint {
            kind: "connection_point",
            id: k.id(),
            internal: Internal {
                ip: k.internal,
                port: (k.direction == Direction::Inbound).then_some(k.port),
                mac: host_mac.map(format_mac),
                mac_vendor: host_mac.and_then(|m| cx.oui.vendor(m)).map(str::to_owned),
                names: self.host_names(k.internal),
                vlans: vlans.into_iter().filter(|v| *v != 0).collect(),
            },
            service: k.service,
            family: k.service.family(),
            direction: k.direction,
            far_side: FarSide {
                kind: far_kind,
                name: far_name,
                ip_count: far_ip_list.len(),
                ips: far_ip_list.iter().take(MAX_LISTED_IPS).copied().collect(),
                names: far_name_list,
            },
            transports: transports
                .into_iter()
                .map(|t| transport_name(t).into_owned())
                .collect(),
            ports: ports.into_iter().collect(),
            vendor: vendor.map(str::to_owned),
            product: product.map(str::to_owned),
            evidence,
            versions: versions.into_iter().take(MAX_NAMES).collect(),
            first_seen: Rfc3339(first).to_string(),
            last_seen: Rfc3339(last).to_string(),
            first_us: first,
            last_us: last,
            sessions,
            bytes,
            hours,
            reach,
            risks,
            severity,
            ledger,
            agents: agents.into_iter().collect(),
        }
    }

    fn host_names(&self, ip: IpAddr) -> Vec<String> {
        let mut v: Vec<String> = self
            .names
            .all_names(ip)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        v.dedup();
        v.truncate(MAX_NAMES);
        v
    }
}

/// What deriving the points needs besides the inventory.
pub struct PointsCx<'a> {
    /// Site policy.
    pub policy: &'a Policy,
    /// The hospital's ledger, when given.
    pub ledger: Option<&'a Ledger>,
    /// MAC vendors.
    pub oui: &'a Oui,
}

/// The derived points, and ledger entries no point matched.
#[derive(Clone, Debug)]
pub struct Points {
    /// Connection points, most severe first.
    pub points: Vec<ConnectionPoint>,
    /// Ledger entries never seen.
    pub unseen: Vec<ledger::Entry>,
}

/// The internal end of a point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Internal {
    /// Address.
    pub ip: IpAddr,
    /// The exposed port (inbound points).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// MAC address, when the host's own is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The MAC's registered organisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_vendor: Option<String>,
    /// Names (DHCP, NetBIOS, LLMNR, mDNS, DNS).
    pub names: Vec<String>,
    /// VLANs it was seen on.
    pub vlans: Vec<u16>,
}

/// The far end of a point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FarSide {
    /// `host`, `cloud` or `any` (any external source: an exposed service).
    pub kind: &'static str,
    /// Cloud name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Addresses seen (the first [`MAX_LISTED_IPS`]).
    pub ips: Vec<IpAddr>,
    /// How many addresses were seen.
    pub ip_count: usize,
    /// Names: DNS answers valid when the sessions started, TLS SNI and certificate names.
    pub names: Vec<String>,
}

/// An internal host reached through a point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reach {
    /// Address.
    pub ip: IpAddr,
    /// Names.
    pub names: Vec<String>,
    /// Services used to reach it.
    pub services: Vec<Service>,
}

/// A risk flag on a point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Risk {
    /// Stable id.
    pub id: RiskId,
    /// Severity (from `rules/risks.toml`).
    pub severity: Severity,
    /// What was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// How a point stands against the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LedgerStatus {
    /// `registered`, `unregistered`, `drifted`, or `no_ledger`.
    pub status: &'static str,
    /// The entry's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// The entry's vendor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// The entry's system.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// What differs from the entry (drifted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Drift>,
    /// Index of the entry in the ledger.
    #[serde(skip)]
    pub entry_index: Option<usize>,
}

impl LedgerStatus {
    fn none() -> LedgerStatus {
        LedgerStatus {
            status: "no_ledger",
            entry: None,
            vendor: None,
            system: None,
            reasons: Vec::new(),
            entry_index: None,
        }
    }

    fn from(l: &Ledger, r: Reconciled) -> LedgerStatus {
        let (status, idx, reasons) = match r {
            Reconciled::Registered { entry } => ("registered", Some(entry), Vec::new()),
            Reconciled::Drifted { entry, reasons } => ("drifted", Some(entry), reasons),
            Reconciled::Unregistered => ("unregistered", None, Vec::new()),
        };
        let e = idx.and_then(|i| l.entries.get(i));
        LedgerStatus {
            status,
            entry: e.map(|e| e.id.clone()),
            vendor: e.map(|e| e.vendor.clone()).filter(|s| !s.is_empty()),
            system: e.map(|e| e.system.clone()).filter(|s| !s.is_empty()),
            reasons,
            entry_index: idx,
        }
    }
}

/// One external connection point (外部接続点), as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectionPoint {
    /// Record type: `connection_point`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Stable id.
    pub id: String,
    /// Internal end.
    pub internal: Internal,
    /// Service.
    pub service: Service,
    /// Remote access, VPN or anonymiser.
    pub family: Family,
    /// Who starts the connections.
    pub direction: Direction,
    /// Far end.
    pub far_side: FarSide,
    /// Transports seen.
    pub transports: Vec<String>,
    /// Server ports seen.
    pub ports: Vec<u16>,
    /// Vendor.
    pub vendor: Option<String>,
    /// Product.
    pub product: Option<String>,
    /// Evidence (rule and field value), catalogue attributions first.
    pub evidence: Vec<Evidence>,
    /// Software versions seen.
    pub versions: Vec<String>,
    /// First activity (RFC 3339 UTC).
    pub first_seen: String,
    /// Last activity.
    pub last_seen: String,
    /// First activity, µs.
    #[serde(skip)]
    pub first_us: u64,
    /// Last activity, µs.
    #[serde(skip)]
    pub last_us: u64,
    /// Sessions (flows).
    pub sessions: u64,
    /// Bytes both ways.
    pub bytes: u64,
    /// Sessions active in each hour of the day, local time (index 0 = 00:00–00:59).
    pub hours: [u32; 24],
    /// Internal hosts reached through the point.
    pub reach: Vec<Reach>,
    /// Risk flags.
    pub risks: Vec<Risk>,
    /// The highest risk severity, if any.
    pub severity: Option<Severity>,
    /// Ledger status.
    pub ledger: LedgerStatus,
    /// Agents that saw it (collector).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn policy() -> Policy {
        crate::rules::Rules::defaults().unwrap().policy
    }

    fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    /// 2026-10-05T00:00:00Z (09:00 in Japan, a Monday).
    const T0: u64 = 1_791_158_400_000_000;

    fn session(
        dir: Direction,
        inside: IpAddr,
        far: IpAddr,
        service: Service,
        sport: u16,
        dport: u16,
        start_s: u64,
    ) -> Session {
        let (client, server) = match dir {
            Direction::Outbound => (inside, far),
            Direction::Inbound => (far, inside),
        };
        Session {
            transport: 6,
            client: Endpoint {
                ip: client,
                port: sport,
            },
            server: Endpoint {
                ip: server,
                port: dport,
            },
            direction: dir,
            service,
            protocol: service.as_str().into(),
            vendor: None,
            product: None,
            evidence: vec![Evidence::new(
                format!("setten.{}.test", service.as_str()),
                "test",
                "x",
            )],
            weak: None,
            non_standard_port: false,
            first_us: T0 + start_s * 1_000_000,
            last_us: T0 + (start_s + 600) * 1_000_000,
            bytes: 1000,
            packets: 10,
            vlan: 20,
            far_names: Vec::new(),
            internal_mac: None,
            versions: Vec::new(),
            agents: Vec::new(),
        }
    }

    fn points(inv: &Inventory, policy: &Policy) -> Vec<ConnectionPoint> {
        let oui = Oui::default();
        inv.points(&PointsCx {
            policy,
            ledger: None,
            oui: &oui,
        })
        .points
    }

    #[test]
    fn inbound_sources_make_one_point_open_to_many() {
        let p = policy();
        let mut inv = Inventory::new();
        for i in 0..6u8 {
            let s = session(
                Direction::Inbound,
                ip(10, 20, 20, 15),
                ip(198, 51, 100, 20 + i),
                Service::Rdp,
                50000 + u16::from(i),
                3389,
                u64::from(i) * 3600,
            );
            inv.add_session(s, &p);
        }
        let pts = points(&inv, &p);
        assert_eq!(pts.len(), 1);
        let pt = &pts[0];
        assert_eq!(pt.far_side.kind, "any");
        assert_eq!(pt.far_side.ip_count, 6);
        assert_eq!(pt.sessions, 6);
        let ids: Vec<RiskId> = pt.risks.iter().map(|r| r.id).collect();
        assert!(ids.contains(&RiskId::InboundInternet));
        assert!(ids.contains(&RiskId::ManySources));
        // Sessions from 09:00 to 14:10 JST on a Monday: inside the weekday window.
        assert!(!ids.contains(&RiskId::OutsideWindow), "{ids:?}");
        assert_eq!(pt.severity, Some(Severity::Critical));
        assert_eq!(pt.internal.port, Some(3389));
        assert_eq!(pt.hours[9], 1);
        assert_eq!(pt.hours[14], 1);
        assert_eq!(pt.hours[3], 0);
    }

    #[test]
    fn relay_addresses_of_one_cloud_make_one_point() {
        let p = policy();
        let mut inv = Inventory::new();
        for i in 0..3u8 {
            let s = session(
                Direction::Outbound,
                ip(10, 20, 40, 31),
                ip(203, 0, 113, 60 + i),
                Service::Teamviewer,
                40000 + u16::from(i),
                5938,
                u64::from(i) * 60,
            );
            inv.add_session(s, &p);
        }
        // A different host's TeamViewer is another point.
        inv.add_session(
            session(
                Direction::Outbound,
                ip(10, 20, 40, 32),
                ip(203, 0, 113, 60),
                Service::Teamviewer,
                40000,
                5938,
                0,
            ),
            &p,
        );
        let pts = points(&inv, &p);
        assert_eq!(pts.len(), 2);
        let pt = pts
            .iter()
            .find(|x| x.internal.ip == ip(10, 20, 40, 31))
            .unwrap();
        assert_eq!(pt.far_side.kind, "cloud");
        assert_eq!(pt.far_side.name.as_deref(), Some("TeamViewer"));
        assert_eq!(pt.far_side.ip_count, 3);
        assert_eq!(pt.internal.port, None);
    }

    #[test]
    fn ids_are_stable_and_depend_on_the_key_only() {
        let k = PointKey {
            internal: ip(10, 20, 20, 15),
            port: 3389,
            service: Service::Rdp,
            direction: Direction::Inbound,
            far: FarKey::Any,
        };
        // Fixed: a change here changes every id users have recorded.
        assert_eq!(k.id(), k.clone().id());
        assert!(k.id().starts_with("cp-") && k.id().len() == 19);
        let other = PointKey {
            port: 3390,
            ..k.clone()
        };
        assert_ne!(k.id(), other.id());
    }

    #[test]
    fn night_sessions_are_outside_the_default_window_and_reach_is_listed() {
        let p = policy();
        let mut inv = Inventory::new();
        // 02:00 JST on Tuesday = 17:00 UTC Monday.
        inv.add_session(
            session(
                Direction::Inbound,
                ip(10, 20, 10, 50),
                ip(203, 0, 113, 50),
                Service::Ssh,
                51000,
                22,
                17 * 3600,
            ),
            &p,
        );
        // While it was open, the server opened RDP to a modality.
        inv.add_lateral(
            LateralKey {
                client: ip(10, 20, 10, 50),
                server: ip(10, 20, 20, 40),
                service: Service::Rdp,
            },
            T0 + (17 * 3600 + 60) * 1_000_000,
            T0 + (17 * 3600 + 120) * 1_000_000,
        );
        // A day later: not during the point's activity.
        inv.add_lateral(
            LateralKey {
                client: ip(10, 20, 10, 50),
                server: ip(10, 20, 20, 41),
                service: Service::Rdp,
            },
            T0 + 200_000 * 1_000_000,
            T0 + 200_100 * 1_000_000,
        );
        let pts = points(&inv, &p);
        let pt = &pts[0];
        assert!(pt.risks.iter().any(|r| r.id == RiskId::OutsideWindow));
        let reach: Vec<IpAddr> = pt.reach.iter().map(|r| r.ip).collect();
        assert_eq!(reach, vec![ip(10, 20, 20, 40)]);
        assert_eq!(pt.hours[2], 1);
    }

    /// What a sensor sees of one session: which agents, and each one's clock offset.
    #[derive(Clone, Debug)]
    struct Sighting {
        session: Session,
        to_a: bool,
        to_b: bool,
        skew_a: i64,
        skew_b: i64,
    }

    fn arb_session() -> impl Strategy<Value = Session> {
        (
            0u8..4,    // internal host
            0u8..6,    // far host
            0usize..4, // service
            any::<bool>(),
            1024u16..1100,
            0u64..6_000, // start minute; sessions start 30 s into a minute, so a few
            // seconds of clock skew never move them across a window's edge
            0u64..5_000_000,
        )
            .prop_map(|(h, f, svc, inbound, sport, start, bytes)| {
                let service = [
                    Service::Rdp,
                    Service::Ssh,
                    Service::Teamviewer,
                    Service::Ipsec,
                ][svc];
                let dir = if inbound {
                    Direction::Inbound
                } else {
                    Direction::Outbound
                };
                let dport = match service {
                    Service::Rdp => 3389,
                    Service::Ssh => 22,
                    Service::Teamviewer => 5938,
                    _ => 500,
                };
                let mut s = session(
                    dir,
                    ip(10, 20, 20, 10 + h),
                    ip(198, 51, 100, 10 + f),
                    service,
                    sport,
                    dport,
                    start * 60 + 30,
                );
                s.bytes = bytes;
                s
            })
    }

    fn arb_sighting() -> impl Strategy<Value = Sighting> {
        (arb_session(), 0u8..3, -5i64..5, -5i64..5).prop_map(|(session, who, skew_a, skew_b)| {
            Sighting {
                session,
                to_a: who != 1,
                to_b: who != 0,
                skew_a,
                skew_b,
            }
        })
    }

    fn skewed(s: &Session, secs: i64) -> Session {
        let mut s = s.clone();
        let d = secs * 1_000_000;
        s.first_us = s.first_us.saturating_add_signed(d);
        s.last_us = s.last_us.saturating_add_signed(d);
        s
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Two agents that saw overlapping parts of the traffic (each with its own clock,
        /// a few seconds apart) merge into the same points as one agent that saw all of
        /// it: same ids, sessions, bytes, far sides and risks.
        #[test]
        fn merging_two_agents_equals_one_agent(sightings in proptest::collection::vec(arb_sighting(), 1..60)) {
            let p = policy();
            // Distinct sessions only (the generator may repeat a 5-tuple close in time).
            let mut seen: Vec<Session> = Vec::new();
            let sightings: Vec<Sighting> = sightings
                .into_iter()
                .filter(|x| {
                    if seen.iter().any(|s| s.transport == x.session.transport && s.client == x.session.client && s.server == x.session.server && s.first_us.abs_diff(x.session.first_us) <= 3 * SAME_SESSION_US) {
                        false
                    } else {
                        seen.push(x.session.clone());
                        true
                    }
                })
                .collect();
            let mut whole = Inventory::new();
            let mut a = Inventory::new();
            let mut b = Inventory::new();
            for x in &sightings {
                whole.add_session(x.session.clone(), &p);
                if x.to_a {
                    a.add_session(skewed(&x.session, x.skew_a), &p);
                }
                if x.to_b {
                    b.add_session(skewed(&x.session, x.skew_b), &p);
                }
            }
            let mut ab = a.clone();
            ab.merge(&b);
            let mut ba = b.clone();
            ba.merge(&a);
            let summary = |inv: &Inventory| -> Vec<(String, u64, u64, usize, Vec<RiskId>, String)> {
                points(inv, &p)
                    .into_iter()
                    .map(|x| (x.id, x.sessions, x.bytes, x.far_side.ip_count, x.risks.iter().map(|r| r.id).collect(), x.far_side.kind.to_owned()))
                    .collect()
            };
            let w = summary(&whole);
            prop_assert_eq!(&summary(&ab), &w);
            prop_assert_eq!(&summary(&ba), &w);
        }
    }
}
