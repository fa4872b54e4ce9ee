//! What is known about each address, bounded.
//!
//! A [`NameBook`] keeps, per address, the names observed for it and the MAC DHCP bound
//! to it. DNS, LLMNR and mDNS names hold only while an answer's TTL runs
//! ([`NameSource::is_timed`]); DHCP and NetBIOS names hold for as long as the book lasts.
//!
//! Memory is bounded three ways, and each bound is chosen so that the book's content
//! does not depend on the order observations arrive in, nor on the order books are
//! merged in (every step below is a commutative, associative, idempotent join):
//! - at most `max_addresses` addresses: when more arrive, the book keeps those whose
//!   hash (fixed, the same on every machine) is smallest: a uniform sample of them;
//! - at most [`MAX_STORED_NAMES_PER_ADDR`] names per address: local names (DHCP,
//!   NetBIOS, LLMNR, mDNS: what a host calls itself) before DNS names, then by hash;
//! - at most [`MAX_SPANS`] validity spans per (address, name): answers seen in the same
//!   [`SPAN_EPOCH_S`] window share one span, from the earliest answer to the latest
//!   expiry, and the latest windows are kept. A span may so cover a gap between two
//!   answers of the same window; for naming a connection that is the right side to err
//!   on (the address served the name before and after).
//!
//! What does not fit is counted in [`NameBook::dropped`].

use super::{printable, NameSource, Obs};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Names [`NameBook::names_at`] returns.
pub const MAX_NAMES_PER_ADDR: usize = 8;
/// Names kept per address (what [`NameBook::all_names`] returns at most).
pub const MAX_STORED_NAMES_PER_ADDR: usize = 32;
/// Validity spans kept per (address, name).
pub const MAX_SPANS: usize = 16;
/// Width of the window whose answers share one span.
pub const SPAN_EPOCH_S: u64 = 900;
/// Shortest validity given to an answer. Clients connect right after resolving even when
/// the TTL is 0 or 1 (load balancers hand those out); without a floor such connections
/// would go unnamed.
pub const MIN_VALIDITY_S: u32 = 10;
/// Addresses a [`NameBook::default`] keeps.
pub const DEFAULT_MAX_ADDRESSES: usize = 65_536;

const US_PER_S: u64 = 1_000_000;

/// A 64-bit FNV-1a over `parts`, finished with the SplitMix64 mixer: stable across runs
/// and machines, so books from several agents sample the same addresses.
fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Position of an address in the book: sampled by hash, then by the address itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct AddrKey {
    hash: u64,
    ip: IpAddr,
}

impl AddrKey {
    fn new(ip: IpAddr) -> AddrKey {
        let ip = ip.to_canonical();
        let bytes = match ip {
            IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            IpAddr::V6(a) => a.octets(),
        };
        AddrKey {
            hash: stable_hash(&[&bytes]),
            ip,
        }
    }
}

/// Position of a name within an address: local names first, then by hash.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct NameKey {
    /// 0 for names a host gives itself, 1 for DNS.
    rank: u8,
    hash: u64,
    name: Box<str>,
    source: NameSource,
}

impl NameKey {
    fn new(name: &str, source: NameSource) -> NameKey {
        NameKey {
            rank: u8::from(source == NameSource::Dns),
            hash: stable_hash(&[name.as_bytes(), source.as_str().as_bytes()]),
            name: name.into(),
            source,
        }
    }
}

/// When a name held: answers seen in one epoch, from the first seen to the last expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    epoch: u64,
    from_us: u64,
    to_us: u64,
}

/// One name of an address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct NameRec {
    /// Observations that gave it.
    count: u64,
    /// Validity of a timed name, by epoch, oldest first.
    spans: Vec<Span>,
}

impl NameRec {
    fn add_span(&mut self, s: Span) {
        match self.spans.binary_search_by_key(&s.epoch, |x| x.epoch) {
            Ok(i) => {
                if let Some(x) = self.spans.get_mut(i) {
                    x.from_us = x.from_us.min(s.from_us);
                    x.to_us = x.to_us.max(s.to_us);
                }
            }
            Err(i) => {
                self.spans.insert(i, s);
                if self.spans.len() > MAX_SPANS {
                    self.spans.remove(0);
                }
            }
        }
    }

    fn merge(&mut self, other: &NameRec) {
        self.count = self.count.saturating_add(other.count);
        for s in &other.spans {
            self.add_span(*s);
        }
    }

    fn holds_at(&self, ts_us: u64) -> bool {
        self.spans
            .iter()
            .any(|s| s.from_us <= ts_us && ts_us <= s.to_us)
    }
}

/// What is known about one address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Entry {
    names: BTreeMap<NameKey, NameRec>,
    /// The MAC of the latest binding: (seen, MAC), the larger wins.
    mac: Option<(u64, [u8; 6])>,
    mac_count: u64,
}

impl Entry {
    /// Observations held.
    fn count(&self) -> u64 {
        self.names
            .values()
            .fold(self.mac_count, |n, r| n.saturating_add(r.count))
    }

    /// Drops the names past the cap (the last in key order).
    fn trim(&mut self) {
        while self.names.len() > MAX_STORED_NAMES_PER_ADDR {
            self.names.pop_last();
        }
    }

    fn merge(&mut self, other: &Entry) {
        for (k, r) in &other.names {
            self.names.entry(k.clone()).or_default().merge(r);
        }
        self.mac = self.mac.max(other.mac);
        self.mac_count = self.mac_count.saturating_add(other.mac_count);
    }
}

/// What is known about each address, bounded: see the module doc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameBook {
    max_addresses: usize,
    addrs: BTreeMap<AddrKey, Entry>,
    /// Observations offered, merged books included.
    seen: u64,
    /// Of which held by the entries kept.
    kept: u64,
}

impl Default for NameBook {
    fn default() -> NameBook {
        NameBook::new(DEFAULT_MAX_ADDRESSES)
    }
}

impl NameBook {
    /// An empty book holding at most `max_addresses` addresses.
    pub fn new(max_addresses: usize) -> NameBook {
        NameBook {
            max_addresses,
            addrs: BTreeMap::new(),
            seen: 0,
            kept: 0,
        }
    }

    /// Addresses held.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// No address held.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// The addresses held, sorted.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.addrs.keys().map(|k| k.ip).collect();
        v.sort_unstable();
        v
    }

    /// Records an observation seen at `ts_us` (microseconds since the Unix epoch).
    pub fn observe(&mut self, ts_us: u64, obs: &Obs) {
        self.seen = self.seen.saturating_add(1);
        let mut e = Entry::default();
        match obs {
            Obs::Name {
                name, source, ttl, ..
            } => {
                if !printable(name) {
                    return;
                }
                let mut r = NameRec {
                    count: 1,
                    spans: Vec::new(),
                };
                if source.is_timed() {
                    let valid = u64::from(ttl.unwrap_or(0).max(MIN_VALIDITY_S));
                    r.spans.push(Span {
                        epoch: ts_us / US_PER_S / SPAN_EPOCH_S,
                        from_us: ts_us,
                        to_us: ts_us.saturating_add(valid.saturating_mul(US_PER_S)),
                    });
                }
                e.names.insert(NameKey::new(name, *source), r);
            }
            Obs::Mac { mac, .. } => {
                e.mac = Some((ts_us, *mac));
                e.mac_count = 1;
            }
        }
        self.add_entry(AddrKey::new(obs.ip()), &e);
    }

    /// Merges `e` into the entry at `k`, then enforces the caps.
    fn add_entry(&mut self, k: AddrKey, e: &Entry) {
        if self.addrs.len() >= self.max_addresses && !self.addrs.contains_key(&k) {
            // Full: `k` only gets in if it sorts before the last address.
            match self.addrs.last_key_value() {
                Some((last, _)) if k < *last => {}
                _ => return,
            }
        }
        let mine = self.addrs.entry(k).or_default();
        let before = mine.count();
        mine.merge(e);
        mine.trim();
        let after = mine.count();
        self.kept = self.kept.saturating_sub(before).saturating_add(after);
        while self.addrs.len() > self.max_addresses {
            if let Some((_, gone)) = self.addrs.pop_last() {
                self.kept = self.kept.saturating_sub(gone.count());
            }
        }
    }

    fn entry(&self, ip: IpAddr) -> Option<&Entry> {
        self.addrs.get(&AddrKey::new(ip))
    }

    /// Names of `ip` valid at `ts_us`, sorted and deduplicated, at most
    /// [`MAX_NAMES_PER_ADDR`]: DNS/LLMNR/mDNS names only inside [seen, seen + TTL] of some
    /// answer (at least [`MIN_VALIDITY_S`]; repeated answers extend it), DHCP and NetBIOS
    /// host names at any time. A name given by several sources appears once, with the
    /// first source in [`NameSource`] order. When more names hold, names a host gives
    /// itself come before DNS names.
    pub fn names_at(&self, ip: IpAddr, ts_us: u64) -> Vec<(String, NameSource)> {
        let Some(e) = self.entry(ip) else {
            return Vec::new();
        };
        let mut out: Vec<(String, NameSource)> = Vec::new();
        for (k, r) in &e.names {
            if out.len() >= MAX_NAMES_PER_ADDR {
                break;
            }
            if k.source.is_timed() && !r.holds_at(ts_us) {
                continue;
            }
            match out.iter_mut().find(|(n, _)| **n == *k.name) {
                Some(seen) => seen.1 = seen.1.min(k.source),
                None => out.push((k.name.to_string(), k.source)),
            }
        }
        out.sort();
        out
    }

    /// Every name ever seen for `ip` (for the report), sorted by name then source, at
    /// most [`MAX_STORED_NAMES_PER_ADDR`].
    pub fn all_names(&self, ip: IpAddr) -> Vec<(String, NameSource)> {
        let mut out: Vec<(String, NameSource)> = self
            .entry(ip)
            .map(|e| {
                e.names
                    .keys()
                    .map(|k| (k.name.to_string(), k.source))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// The MAC bound to `ip` by DHCP, if any (the latest binding seen).
    pub fn mac_of(&self, ip: IpAddr) -> Option<[u8; 6]> {
        self.entry(ip)?.mac.map(|(_, m)| m)
    }

    /// Observations not kept because the book was full (counted, reported by the caller),
    /// plus unprintable names offered directly.
    pub fn dropped(&self) -> u64 {
        self.seen.saturating_sub(self.kept)
    }

    /// Merges another book (for the collector: several agents). The result does not
    /// depend on the order of merging; it keeps `self`'s capacity.
    pub fn merge(&mut self, other: &NameBook) {
        self.seen = self.seen.saturating_add(other.seen);
        for (k, e) in &other.addrs {
            self.add_entry(*k, e);
        }
    }
}

/// The book as it travels from agent to collector (`crate::findings`): every address with
/// its names, their validity spans and the MAC binding. Reading it back checks what a
/// hostile sender could break: names printable and capped, spans and names per address
/// capped, addresses capped by the receiving book's own limit when merged.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BookWire {
    seen: u64,
    addrs: Vec<AddrWire>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AddrWire {
    ip: IpAddr,
    #[serde(default)]
    names: Vec<NameWire>,
    #[serde(default)]
    mac: Option<(u64, [u8; 6])>,
    #[serde(default)]
    mac_count: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NameWire {
    name: String,
    source: NameSource,
    count: u64,
    /// (epoch, from µs, to µs).
    #[serde(default)]
    spans: Vec<(u64, u64, u64)>,
}

impl serde::Serialize for NameBook {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let addrs = self
            .addrs
            .iter()
            .map(|(k, e)| AddrWire {
                ip: k.ip,
                names: e
                    .names
                    .iter()
                    .map(|(nk, r)| NameWire {
                        name: nk.name.to_string(),
                        source: nk.source,
                        count: r.count,
                        spans: r
                            .spans
                            .iter()
                            .map(|s| (s.epoch, s.from_us, s.to_us))
                            .collect(),
                    })
                    .collect(),
                mac: e.mac,
                mac_count: e.mac_count,
            })
            .collect();
        BookWire {
            seen: self.seen,
            addrs,
        }
        .serialize(ser)
    }
}

impl<'de> serde::Deserialize<'de> for NameBook {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<NameBook, D::Error> {
        use serde::de::Error;
        let w = BookWire::deserialize(de)?;
        if w.addrs.len() > DEFAULT_MAX_ADDRESSES {
            return Err(D::Error::custom(format!(
                "more than {DEFAULT_MAX_ADDRESSES} addresses"
            )));
        }
        let mut book = NameBook::new(DEFAULT_MAX_ADDRESSES);
        book.seen = w.seen;
        for a in w.addrs {
            if a.names.len() > MAX_STORED_NAMES_PER_ADDR {
                return Err(D::Error::custom(format!(
                    "{}: more than {MAX_STORED_NAMES_PER_ADDR} names",
                    a.ip
                )));
            }
            let mut e = Entry {
                mac: a.mac,
                mac_count: a.mac_count,
                ..Entry::default()
            };
            for n in a.names {
                if n.name.is_empty()
                    || n.name.len() > super::MAX_NAME_LEN
                    || !super::printable(&n.name)
                {
                    return Err(D::Error::custom(format!("{}: bad name {:?}", a.ip, n.name)));
                }
                if n.spans.len() > MAX_SPANS {
                    return Err(D::Error::custom(format!(
                        "{}: more than {MAX_SPANS} spans for {}",
                        a.ip, n.name
                    )));
                }
                let mut r = NameRec {
                    count: n.count,
                    spans: Vec::new(),
                };
                for (epoch, from_us, to_us) in n.spans {
                    if from_us > to_us {
                        return Err(D::Error::custom(format!(
                            "{}: a span of {} ends before it starts",
                            a.ip, n.name
                        )));
                    }
                    r.add_span(Span {
                        epoch,
                        from_us,
                        to_us,
                    });
                }
                e.names.insert(NameKey::new(&n.name, n.source), r);
            }
            book.add_entry(AddrKey::new(a.ip), &e);
        }
        Ok(book)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    const S: u64 = US_PER_S;

    fn ip(last: u8) -> IpAddr {
        Ipv4Addr::new(192, 0, 2, last).into()
    }

    fn dns(ip: IpAddr, name: &str, ttl: u32) -> Obs {
        Obs::Name {
            ip,
            name: name.into(),
            source: NameSource::Dns,
            ttl: Some(ttl),
        }
    }

    fn host(ip: IpAddr, name: &str, source: NameSource) -> Obs {
        Obs::Name {
            ip,
            name: name.into(),
            source,
            ttl: None,
        }
    }

    /// What an agent ships is what the collector reads: the same book.
    #[test]
    fn the_wire_form_reads_back_as_the_same_book() {
        let mut b = NameBook::new(DEFAULT_MAX_ADDRESSES);
        b.observe(5 * S, &dns(ip(1), "router1.teamviewer.com", 300));
        b.observe(9 * S, &host(ip(2), "LAB-PC-031", NameSource::Dhcp));
        b.observe(
            9 * S,
            &Obs::Mac {
                ip: ip(2),
                mac: [0x98, 0xe7, 0x43, 1, 2, 3],
                source: NameSource::Dhcp,
            },
        );
        let text = serde_json::to_string(&b).unwrap();
        let back: NameBook = serde_json::from_str(&text).unwrap();
        assert_eq!(back, b);
        assert_eq!(back.names_at(ip(1), 100 * S).len(), 1);
        assert!(serde_json::from_str::<NameBook>(
            r#"{"seen":1,"addrs":[{"ip":"192.0.2.1","names":[{"name":"a\u0007b","source":"dns","count":1}]}]}"#
        )
        .is_err());
    }

    fn names(v: &[(String, NameSource)]) -> Vec<&str> {
        v.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn ttl_is_respected() {
        let mut b = NameBook::new(16);
        let t = 1_700_000_000 * S;
        b.observe(t, &dns(ip(1), "example.com", 300));
        assert_eq!(names(&b.names_at(ip(1), t + 299 * S)), ["example.com"]);
        assert_eq!(names(&b.names_at(ip(1), t + 300 * S)), ["example.com"]);
        assert!(b.names_at(ip(1), t + 301 * S).is_empty());
        // Not before it was answered.
        assert!(b.names_at(ip(1), t - 1).is_empty());
        // Still in the report.
        assert_eq!(names(&b.all_names(ip(1))), ["example.com"]);
    }

    #[test]
    fn repeated_answers_extend() {
        let mut b = NameBook::new(16);
        let t = 1_700_000_000 * S;
        b.observe(t, &dns(ip(1), "example.com", 300));
        b.observe(t + 200 * S, &dns(ip(1), "example.com", 300));
        assert!(!b.names_at(ip(1), t + 450 * S).is_empty());
        assert!(b.names_at(ip(1), t + 501 * S).is_empty());
        // An answer an hour later (another epoch) opens a second span; the gap between
        // stays unnamed.
        b.observe(t + 3600 * S, &dns(ip(1), "example.com", 60));
        assert!(b.names_at(ip(1), t + 2000 * S).is_empty());
        assert!(!b.names_at(ip(1), t + 3659 * S).is_empty());
    }

    #[test]
    fn tiny_ttls_get_the_floor() {
        let mut b = NameBook::new(16);
        b.observe(100 * S, &dns(ip(1), "lb.example", 0));
        assert!(!b.names_at(ip(1), 100 * S + S / 2).is_empty());
        assert!(!b.names_at(ip(1), 110 * S).is_empty());
        assert!(b.names_at(ip(1), 111 * S).is_empty());
    }

    #[test]
    fn host_names_hold_any_time() {
        let mut b = NameBook::new(16);
        b.observe(1000 * S, &host(ip(7), "kevin-PC", NameSource::Dhcp));
        b.observe(1000 * S, &host(ip(7), "KEVIN-PC", NameSource::Netbios));
        b.observe(
            1000 * S,
            &Obs::Mac {
                ip: ip(7),
                mac: [0x48, 0xd2, 0x24, 0x63, 0x0a, 0xde],
                source: NameSource::Dhcp,
            },
        );
        for t in [0, 1000 * S, u64::MAX] {
            assert_eq!(
                b.names_at(ip(7), t),
                [
                    ("KEVIN-PC".to_string(), NameSource::Netbios),
                    ("kevin-PC".to_string(), NameSource::Dhcp)
                ]
            );
        }
        assert_eq!(b.mac_of(ip(7)), Some([0x48, 0xd2, 0x24, 0x63, 0x0a, 0xde]));
        assert_eq!(b.mac_of(ip(8)), None);
        assert_eq!(b.dropped(), 0);
    }

    #[test]
    fn same_name_two_sources_once() {
        let mut b = NameBook::new(16);
        b.observe(0, &dns(ip(3), "msedgewin10.local", 60));
        b.observe(0, &host(ip(3), "msedgewin10.local", NameSource::Mdns));
        let at = b.names_at(ip(3), 0);
        assert_eq!(at, [("msedgewin10.local".to_string(), NameSource::Dns)]);
        assert_eq!(b.all_names(ip(3)).len(), 2);
    }

    #[test]
    fn latest_mac_wins() {
        let mut b = NameBook::new(16);
        let mac = |ip, m| Obs::Mac {
            ip,
            mac: [2, 0, 0, 0, 0, m],
            source: NameSource::Dhcp,
        };
        b.observe(20, &mac(ip(1), 2));
        b.observe(10, &mac(ip(1), 1));
        assert_eq!(b.mac_of(ip(1)), Some([2, 0, 0, 0, 0, 2]));
    }

    #[test]
    fn mapped_and_plain_ipv4_are_one_address() {
        let mut b = NameBook::new(16);
        b.observe(
            0,
            &host("::ffff:192.0.2.1".parse().unwrap(), "h", NameSource::Dhcp),
        );
        assert_eq!(names(&b.names_at(ip(1), 0)), ["h"]);
        assert_eq!(b.addresses(), [ip(1)]);
    }

    #[test]
    fn address_cap_counts_drops() {
        let mut b = NameBook::new(4);
        for i in 0..10 {
            b.observe(0, &host(ip(i), "h", NameSource::Dhcp));
        }
        assert_eq!(b.len(), 4);
        assert_eq!(b.dropped(), 6);
        let zero = {
            let mut z = NameBook::new(0);
            z.observe(0, &host(ip(1), "h", NameSource::Dhcp));
            z
        };
        assert!(zero.is_empty());
        assert_eq!(zero.dropped(), 1);
    }

    #[test]
    fn name_caps() {
        let mut b = NameBook::new(4);
        let t = 5000 * S;
        for i in 0..100 {
            b.observe(t, &dns(ip(1), &format!("n{i}.example"), 600));
        }
        b.observe(t, &host(ip(1), "the-host", NameSource::Netbios));
        assert_eq!(b.all_names(ip(1)).len(), MAX_STORED_NAMES_PER_ADDR);
        let at = b.names_at(ip(1), t);
        assert_eq!(at.len(), MAX_NAMES_PER_ADDR);
        // The host's own name is never crowded out by DNS names.
        assert!(at.contains(&("the-host".to_string(), NameSource::Netbios)));
        assert_eq!(b.dropped(), 101 - MAX_STORED_NAMES_PER_ADDR as u64);
    }

    #[test]
    fn spans_are_capped_to_the_latest() {
        let mut b = NameBook::new(4);
        for k in 0..40u64 {
            b.observe(k * 3600 * S, &dns(ip(1), "x.example", 60));
        }
        assert!(b.names_at(ip(1), 39 * 3600 * S).len() == 1);
        assert!(b.names_at(ip(1), (40 - MAX_SPANS as u64) * 3600 * S).len() == 1);
        assert!(b
            .names_at(ip(1), (39 - MAX_SPANS as u64) * 3600 * S)
            .is_empty());
        // Name still listed; nothing counted as dropped.
        assert_eq!(b.all_names(ip(1)).len(), 1);
        assert_eq!(b.dropped(), 0);
    }

    #[test]
    fn unprintable_names_are_refused() {
        let mut b = NameBook::new(4);
        b.observe(0, &host(ip(1), "a\u{7}", NameSource::Dhcp));
        b.observe(0, &host(ip(1), "", NameSource::Dhcp));
        assert!(b.is_empty());
        assert_eq!(b.dropped(), 2);
    }

    /// An observation from a small space, so books overlap and caps bite.
    fn arb_obs() -> impl Strategy<Value = (u64, Obs)> {
        let name = prop_oneof![
            Just("a"),
            Just("b"),
            Just("c.example"),
            Just("d"),
            Just("e")
        ];
        let source = prop_oneof![
            Just(NameSource::Dns),
            Just(NameSource::Dhcp),
            Just(NameSource::Netbios),
            Just(NameSource::Mdns),
        ];
        (
            0u64..20_000,
            0u8..12,
            name,
            source,
            0u32..2000,
            any::<bool>(),
            0u8..4,
        )
            .prop_map(|(t, last, name, source, ttl, is_mac, m)| {
                let obs = if is_mac {
                    Obs::Mac {
                        ip: ip(last),
                        mac: [2, 0, 0, 0, 0, m],
                        source: NameSource::Dhcp,
                    }
                } else {
                    Obs::Name {
                        ip: ip(last),
                        name: name.into(),
                        source,
                        ttl: Some(ttl),
                    }
                };
                (t * S, obs)
            })
    }

    fn book(cap: usize, obs: &[(u64, Obs)]) -> NameBook {
        let mut b = NameBook::new(cap);
        for (t, o) in obs {
            b.observe(*t, o);
        }
        b
    }

    proptest! {
        /// Merging is order-independent, and equals observing everything in one book,
        /// even when the caps bite (4 addresses out of 12).
        #[test]
        fn merge_order_does_not_matter(
            a in proptest::collection::vec(arb_obs(), 0..40),
            b in proptest::collection::vec(arb_obs(), 0..40),
            c in proptest::collection::vec(arb_obs(), 0..40),
        ) {
            let cap = 4;
            let (ba, bb, bc) = (book(cap, &a), book(cap, &b), book(cap, &c));
            let mut abc = ba.clone();
            abc.merge(&bb);
            abc.merge(&bc);
            let mut cab = bc.clone();
            cab.merge(&ba);
            cab.merge(&bb);
            let mut bc_first = bb.clone();
            bc_first.merge(&bc);
            let mut a_bc = ba.clone();
            a_bc.merge(&bc_first);
            prop_assert_eq!(&abc, &cab);
            prop_assert_eq!(&abc, &a_bc);
            let all: Vec<_> = a.iter().chain(&b).chain(&c).cloned().collect();
            let mut rev = all.clone();
            rev.reverse();
            prop_assert_eq!(&abc, &book(cap, &all));
            prop_assert_eq!(&abc, &book(cap, &rev));
            prop_assert!(abc.len() <= cap);
            prop_assert_eq!(abc.seen, all.len() as u64);
            prop_assert_eq!(abc.kept, abc.addrs.values().map(Entry::count).sum::<u64>());
        }
    }
}
