//! tinc meta protocol over TCP (tinc manual, "The meta-protocol" and "Legacy
//! authentication protocol").
//!
//! Promise: `Yes` when both directions open with an ID request line, exactly
//! `0 <name> 17[.<minor>]\n`: request number 0 (ID), a node name of letters, digits and
//! underscores (tinc's `check_id`; an invitation uses `?` + cookie), protocol major
//! version 17 and optionally the minor version. One side's ID line alone counts only on
//! TCP 655 and only once the flow is over. Anything else in the first bytes is `No`.
//!
//! tinc carries the VPN's packets over UDP, from and to the port its meta connection
//! listens on, encrypted from the first byte: nothing in a datagram says tinc. So a UDP
//! flow is named after a meta connection between the same two hosts, when the meta
//! connection's server takes part on its listening port ([`MetaConnections`]; tinc
//! manual, "How connections work": "the UDP port is the same as the TCP port"). nDPI
//! does the same from a cache of meta connections (`src/lib/protocols/tinc.c`).

use super::{Classification, Cx, Evidence, Service, Verdict};
use crate::decode::{ipproto, Addr};
use crate::flow::{Endpoint, FlowKey};
use std::collections::VecDeque;
use std::sync::Mutex;

/// Request number of ID (tinc `protocol.h`, `ID = 0`).
const REQUEST_ID: &[u8] = b"0 ";
/// Protocol major version of tinc 1.0 and 1.1 (tinc `protocol.h`, PROT_MAJOR).
const PROT_MAJOR: &[u8] = b"17";
/// Longest node name accepted (tinc itself allows long names; real ones are short).
const MAX_NAME_LEN: usize = 64;
/// Longest minor version (tinc 1.1 uses a single digit).
const MAX_MINOR_DIGITS: usize = 3;
/// Longest ID line: "0 " + name + " 17." + minor + "\n".
const MAX_LINE: usize = 2 + 1 + MAX_NAME_LEN + 1 + 2 + 1 + MAX_MINOR_DIGITS + 1;
/// tinc's IANA port (tie-breaker only).
const PORT_TINC: u16 = 655;

/// Meta connections remembered, newest last (a small bound: a tinc node has few).
const MAX_META_CONNECTIONS: usize = 256;

/// One tinc meta connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Meta {
    zone: u32,
    client: Addr,
    client_port: u16,
    server: Addr,
    port: u16,
}

/// tinc meta connections seen so far, to name the UDP flows of the same nodes.
///
/// A flow is named when it ends, after the meta connection that opens a tinc session
/// was named from its first lines; flows between the same two hosts meet in one flow
/// table (and one thread), so what is found does not depend on timing.
#[derive(Debug, Default)]
pub struct MetaConnections {
    seen: Mutex<VecDeque<Meta>>,
}

impl MetaConnections {
    /// Remembers a TCP flow named tinc: its tunnel zone, client, and server with the
    /// port it listens on.
    pub fn note(&self, zone: u32, client: Endpoint, server: Endpoint) {
        let m = Meta {
            zone,
            client: client.addr,
            client_port: client.port,
            server: server.addr,
            port: server.port,
        };
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.contains(&m) {
            return;
        }
        if seen.len() >= MAX_META_CONNECTIONS {
            seen.pop_front();
        }
        seen.push_back(m);
    }

    /// Names a UDP flow between the two hosts of a meta connection, with the meta
    /// connection's server on its listening port.
    pub fn name_udp(&self, key: &FlowKey) -> Option<Classification> {
        if key.proto != ipproto::UDP {
            return None;
        }
        let seen = self.seen.lock().ok()?;
        let m = seen.iter().rev().find(|m| {
            let pair = (m.client == key.lo && m.server == key.hi)
                || (m.client == key.hi && m.server == key.lo);
            let server_port = if m.server == key.lo {
                key.lo_port
            } else {
                key.hi_port
            };
            m.zone == key.zone && pair && server_port == m.port
        })?;
        let mut c = Classification::new(
            "tinc",
            Some(Service::Tinc),
            "setten.tinc.udp-of-meta",
            "tinc.meta_connection",
            format!(
                "tcp {}:{} -> {}:{} (tinc ID exchange)",
                m.client.to_ip(),
                m.client_port,
                m.server.to_ip(),
                m.port
            ),
        );
        c.evidence.push(Evidence::new(
            "setten.tinc.udp-of-meta",
            "udp.port",
            m.port.to_string(),
        ));
        Some(c)
    }
}

/// Whether a direction's first payload may open with an ID line (what the packet path
/// checks before it keeps a TCP flow's endpoints for [`MetaConnections`]).
pub fn may_open(payload: &[u8]) -> bool {
    // A segment may hold the start of the request number alone.
    let n = payload.len().min(REQUEST_ID.len());
    n > 0 && payload.get(..n) == REQUEST_ID.get(..n)
}

/// A parsed ID line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IdLine {
    name: String,
    minor: Option<String>,
    invitation: bool,
}

/// Parses the first line of a direction: `Ok(Some)` for an ID line, `Ok(None)` for a
/// valid prefix of one, `Err` when it cannot be one.
fn parse_id(b: &[u8]) -> Result<Option<IdLine>, ()> {
    // The line starts with the request number: bytes that cannot settle it before any
    // line end is looked for (most flows asked here are not tinc).
    let n = b.len().min(REQUEST_ID.len());
    if b.get(..n) != REQUEST_ID.get(..n) {
        return Err(());
    }
    let Some(nl) = b.iter().take(MAX_LINE).position(|&c| c == b'\n') else {
        // No newline yet: the bytes so far must be a prefix of the grammar.
        return if b.len() < MAX_LINE && prefix_ok(b) {
            Ok(None)
        } else {
            Err(())
        };
    };
    let line = b.get(..nl).ok_or(())?;
    let rest = line.strip_prefix(REQUEST_ID).ok_or(())?;
    let sp = rest.iter().position(|&c| c == b' ').ok_or(())?;
    let (name, ver) = (rest.get(..sp).ok_or(())?, rest.get(sp + 1..).ok_or(())?);
    let (invitation, name) = match name.strip_prefix(b"?") {
        Some(n) => (true, n),
        None => (false, name),
    };
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || !name.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
    {
        return Err(());
    }
    let after = ver.strip_prefix(PROT_MAJOR).ok_or(())?;
    let minor = match after {
        [] => None,
        [b'.', digits @ ..]
            if !digits.is_empty()
                && digits.len() <= MAX_MINOR_DIGITS
                && digits.iter().all(u8::is_ascii_digit) =>
        {
            Some(String::from_utf8_lossy(digits).into_owned())
        }
        _ => return Err(()),
    };
    Ok(Some(IdLine {
        name: String::from_utf8_lossy(name).into_owned(),
        minor,
        invitation,
    }))
}

/// Whether `b` (no newline) can still become an ID line.
fn prefix_ok(b: &[u8]) -> bool {
    let n = b.len().min(REQUEST_ID.len());
    if b.get(..n) != REQUEST_ID.get(..n) {
        return false;
    }
    b.iter()
        .skip(REQUEST_ID.len())
        .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b' ' || c == b'.' || c == b'?')
}

/// Detects tinc.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let (c, s) = (cx.c2s.bytes(), cx.s2c.bytes());
    if c.is_empty() && s.is_empty() {
        return if cx.last { Verdict::No } else { Verdict::Wait };
    }
    let Ok(pc) = (if c.is_empty() { Ok(None) } else { parse_id(c) }) else {
        return Verdict::No;
    };
    let Ok(ps) = (if s.is_empty() { Ok(None) } else { parse_id(s) }) else {
        return Verdict::No;
    };
    let classify = |rule: &'static str, line: &IdLine, other: Option<&IdLine>| {
        let version = match &line.minor {
            Some(m) => format!("17.{m}"),
            None => "17".to_owned(),
        };
        let mut cl = Classification::new(
            "tinc",
            Some(Service::Tinc),
            rule,
            "tinc.id",
            format!("ID {} protocol {version}", line.name),
        );
        if let Some(o) = other {
            cl.evidence
                .push(Evidence::new(rule, "tinc.id", format!("ID {}", o.name)));
        }
        if line.invitation {
            cl.evidence.push(Evidence::new(
                "setten.tinc.invitation",
                "tinc.id",
                "invitation cookie",
            ));
        }
        cl.extra.meta.version = Some(version);
        cl
    };
    match (&pc, &ps) {
        (Some(a), Some(b)) => Verdict::Yes(classify("setten.tinc.id-exchange", a, Some(b))),
        (Some(a), None) | (None, Some(a)) if cx.last && cx.server_port == PORT_TINC => {
            Verdict::Yes(classify("setten.tinc.id-port", a, None))
        }
        _ if cx.last => Verdict::No,
        _ => Verdict::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(c2s: &[u8], s2c: &[u8], port: u16, last: bool) -> Verdict {
        crate::classify::testing::run(
            detect,
            crate::decode::ipproto::TCP,
            &[c2s],
            &[s2c],
            (50000, port),
            last,
        )
    }

    /// The ID exchange of the tinc manual ("Legacy authentication protocol":
    /// "ID client 17.2" / "ID server 17.2", ID being request 0 on the wire), followed by
    /// the start of a METAKEY request (1 ...).
    #[test]
    fn id_exchange_from_the_manual_is_yes() {
        match run(
            b"0 client 17.2\n1 94 64 0 0 5f08",
            b"0 server 17.2\n",
            655,
            false,
        ) {
            Verdict::Yes(c) => {
                assert_eq!(c.service, Some(Service::Tinc));
                assert_eq!(c.evidence[0].value, "ID client protocol 17.2");
                assert_eq!(c.extra.meta.version.as_deref(), Some("17.2"));
            }
            v => panic!("{v:?}"),
        }
        // tinc 1.0 sends no minor version.
        assert!(matches!(
            run(b"0 hq_1 17\n", b"0 branch 17\n", 4000, false),
            Verdict::Yes(_)
        ));
    }

    #[test]
    fn one_side_needs_port_655_and_the_end() {
        assert!(matches!(
            run(b"0 client 17.7\n", b"", 655, false),
            Verdict::Wait
        ));
        assert!(matches!(
            run(b"0 client 17.7\n", b"", 655, true),
            Verdict::Yes(_)
        ));
        assert!(matches!(
            run(b"0 client 17.7\n", b"", 656, true),
            Verdict::No
        ));
    }

    #[test]
    fn partial_line_waits_and_wrong_lines_are_no() {
        assert!(matches!(run(b"0 cli", b"", 655, false), Verdict::Wait));
        assert!(matches!(
            run(b"0 client 18.1\n", b"0 s 17\n", 655, false),
            Verdict::No
        ));
        assert!(matches!(
            run(b"0 cl-ient 17\n", b"0 s 17\n", 655, false),
            Verdict::No
        ));
        assert!(matches!(
            run(b"0 client 17.\n", b"0 s 17\n", 655, false),
            Verdict::No
        ));
        assert!(matches!(
            run(b"1 client 17\n", b"", 655, false),
            Verdict::No
        ));
    }

    #[test]
    fn other_protocols_are_no() {
        assert!(matches!(
            run(b"GET / HTTP/1.1\r\n", b"", 655, false),
            Verdict::No
        ));
        assert!(matches!(
            run(b"SSH-2.0-OpenSSH\r\n", b"", 655, false),
            Verdict::No
        ));
        assert!(matches!(
            run(b"\x16\x03\x01\x00", b"", 655, false),
            Verdict::No
        ));
        // A line that is long and never ends.
        assert!(matches!(run(&[b'0'; 200], b"", 655, false), Verdict::No));
    }

    /// A key as the flow table makes it: endpoints in address order.
    fn key(proto: u8, a: (Addr, u16), b: (Addr, u16), zone: u32) -> FlowKey {
        let ((lo, lo_port), (hi, hi_port)) = if a <= b { (a, b) } else { (b, a) };
        FlowKey {
            zone,
            proto,
            lo_port,
            hi_port,
            lo,
            hi,
        }
    }

    /// The UDP flows of two tinc nodes are named after their meta connection: both
    /// hosts, the meta connection's server on its port, the same tunnel zone.
    #[test]
    fn udp_flows_of_a_meta_connection_are_named_and_no_others() {
        let (a, b, c) = (
            Addr::v4([131, 114, 168, 27]),
            Addr::v4([185, 83, 218, 112]),
            Addr::v4([185, 83, 218, 113]),
        );
        let udp = |x, y, z| key(ipproto::UDP, x, y, z);
        let end = |addr, port| Endpoint { addr, port };
        let m = MetaConnections::default();
        assert!(m.name_udp(&udp((a, 55656), (b, 55656), 0)).is_none());
        m.note(0, end(a, 49290), end(b, 55656));
        m.note(0, end(a, 49290), end(b, 55656));
        assert_eq!(
            m.seen.lock().unwrap().len(),
            1,
            "a meta connection is kept once"
        );
        let named = m.name_udp(&udp((b, 55656), (a, 55656), 0)).unwrap();
        assert_eq!(named.service, Some(Service::Tinc));
        assert_eq!(named.evidence[0].rule, "setten.tinc.udp-of-meta");
        assert_eq!(
            named.evidence[0].value,
            "tcp 131.114.168.27:49290 -> 185.83.218.112:55656 (tinc ID exchange)"
        );
        // The client's side may use any port; the server's must be the meta port.
        assert!(m.name_udp(&udp((a, 40000), (b, 55656), 0)).is_some());
        assert!(m.name_udp(&udp((a, 55656), (b, 40000), 0)).is_none());
        // Another host, another tunnel zone, or TCP: not this meta connection's.
        assert!(m.name_udp(&udp((a, 55656), (c, 55656), 0)).is_none());
        assert!(m.name_udp(&udp((a, 55656), (b, 55656), 7)).is_none());
        assert!(m
            .name_udp(&key(ipproto::TCP, (a, 1), (b, 55656), 0))
            .is_none());
    }

    /// The classifier remembers a flow named tinc, and no flow named otherwise.
    #[test]
    fn the_classifier_remembers_only_flows_named_tinc() {
        let (a, b) = (Addr::v4([10, 0, 0, 1]), Addr::v4([10, 0, 0, 2]));
        let (client, server) = (
            Endpoint {
                addr: a,
                port: 40000,
            },
            Endpoint { addr: b, port: 655 },
        );
        let c = super::super::Classifier::new(std::sync::Arc::new(
            crate::rules::Rules::defaults().unwrap(),
        ));
        let udp = key(ipproto::UDP, (a, 655), (b, 655), 0);
        let ssh = Classification::new("ssh", Some(Service::Ssh), "r", "f", "v");
        c.decided(0, client, server, Some(&ssh));
        c.decided(0, client, server, None);
        assert!(c.tinc.name_udp(&udp).is_none());
        let tinc = Classification::new("tinc", Some(Service::Tinc), "r", "f", "v");
        c.decided(0, client, server, Some(&tinc));
        assert!(c.tinc.name_udp(&udp).is_some());
    }

    #[test]
    fn only_a_request_number_may_open() {
        assert!(may_open(b"0 alpha 17\n"));
        assert!(may_open(b"0"));
        assert!(!may_open(b""));
        assert!(!may_open(b"GET / HTTP/1.1\r\n"));
        assert!(!may_open(b"01 alpha"));
    }

    /// The memory of meta connections is bounded; the oldest go first.
    #[test]
    fn meta_connections_are_bounded() {
        let m = MetaConnections::default();
        let server = Addr::v4([10, 0, 0, 1]);
        for i in 0..(MAX_META_CONNECTIONS as u16 + 10) {
            let client = Addr::v4([10, 1, (i >> 8) as u8, i as u8]);
            m.note(
                0,
                Endpoint {
                    addr: client,
                    port: 40000,
                },
                Endpoint {
                    addr: server,
                    port: 655,
                },
            );
        }
        assert_eq!(m.seen.lock().unwrap().len(), MAX_META_CONNECTIONS);
        let first = Addr::v4([10, 1, 0, 0]);
        let last = Addr::v4([10, 1, 1, 9]);
        assert!(m
            .name_udp(&key(ipproto::UDP, (first, 655), (server, 655), 0))
            .is_none());
        assert!(m
            .name_udp(&key(ipproto::UDP, (last, 655), (server, 655), 0))
            .is_some());
    }
}
