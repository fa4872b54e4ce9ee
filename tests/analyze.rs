//! `setten-agent analyze` end to end: the real binary on the shared corpus captures and
//! on damaged copies of them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_setten-agent")
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/pcap")
}

fn captures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("the shared corpus must be beside the repository (../shared/corpus/pcap)")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    assert!(
        v.len() >= 30,
        "expected the corpus captures, found {}",
        v.len()
    );
    v
}

fn analyze(args: &[&str], files: &[&Path]) -> Output {
    let mut c = Command::new(bin());
    c.arg("analyze").args(args).args(files);
    c.env("SETTEN_LOG", "warn");
    c.output().expect("run setten-agent")
}

fn jsonl(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stdout.clone())
        .expect("utf-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
        .collect()
}

fn find<'a>(
    flows: &'a [serde_json::Value],
    server_port: u64,
    transport: &str,
) -> Vec<&'a serde_json::Value> {
    flows
        .iter()
        .filter(|f| f["server"]["port"] == server_port && f["transport"] == transport)
        .collect()
}

#[test]
fn every_corpus_capture_is_analysed_the_same_way_twice() {
    for cap in captures() {
        let a = analyze(&["--format", "jsonl"], &[&cap]);
        assert!(
            a.status.success(),
            "{}: exit {:?}: {}",
            cap.display(),
            a.status,
            String::from_utf8_lossy(&a.stderr)
        );
        let flows = jsonl(&a);
        assert!(!flows.is_empty(), "{}: no flows", cap.display());
        for f in &flows {
            assert_eq!(f["type"], "flow");
            assert!(f["transport"].is_string());
            assert!(f["client"]["ip"].is_string() && f["client"]["port"].is_u64());
            assert!(f["server"]["ip"].is_string() && f["server"]["port"].is_u64());
            assert!(f.get("service").is_some(), "service is always present");
        }
        let b = analyze(&["--format", "jsonl"], &[&cap]);
        assert_eq!(
            a.stdout,
            b.stdout,
            "{}: output differs between runs",
            cap.display()
        );
    }
}

#[test]
fn rdp_flow_carries_cookie_and_security_protocols() {
    let out = analyze(&["--format", "jsonl"], &[&corpus().join("ndpi-rdp.pcap")]);
    let flows = jsonl(&out);
    let rdp = find(&flows, 3389, "tcp");
    assert_eq!(rdp.len(), 1);
    let f = rdp[0];
    assert_eq!(f["service"], "rdp");
    assert_eq!(f["client"]["ip"], "172.16.2.185");
    assert_eq!(f["direction"], "internal");
    assert!(f["rdp"]["requested"].is_array());
    assert!(f["evidence"][0]["rule"]
        .as_str()
        .unwrap()
        .starts_with("setten.rdp."));
    // TLS 1.2 after the negotiation: the server certificate names the Windows machine.
    assert_eq!(f["rdp"]["selected"], "credssp-ex", "{f}");
    assert_eq!(f["tls"]["version"], "1.2", "{f}");
    assert_eq!(f["tls"]["cert"]["subject"], "CN=OFFICE-WIN10-VM", "{f}");
    assert_eq!(f["tls"]["cert"]["self_signed"], true, "{f}");
}

#[test]
fn fortigate_ssl_vpn_is_named_from_its_certificate_and_port_flagged() {
    let out = analyze(
        &["--format", "jsonl"],
        &[&corpus().join("ndpi-forticlient.pcap")],
    );
    let flows = jsonl(&out);
    let vpn = find(&flows, 10443, "tcp");
    assert!(!vpn.is_empty());
    for f in vpn {
        assert_eq!(f["service"], "ssl-vpn");
        assert_eq!(f["vendor"], "Fortinet");
        assert_eq!(f["direction"], "outbound");
        assert_eq!(f["external"], "server");
        assert!(f["tls"]["cert"]["subject"]
            .as_str()
            .unwrap()
            .contains("OU=FortiGate"));
        let rules: Vec<&str> = f["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["rule"].as_str().unwrap())
            .collect();
        assert!(rules.contains(&"sslvpn.fortinet.cert-ou"), "{rules:?}");
        assert!(f["tls"]["ja4"].as_str().unwrap().starts_with("t1"));
        assert_eq!(
            f["non_standard_port"], false,
            "10443 is a standard SSL-VPN port"
        );
    }
}

/// The records of a classic little-endian Ethernet pcap, in file order (header first).
fn pcap_records(bytes: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    let mut recs = Vec::new();
    let mut off = 24;
    while off + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[off + 8..off + 12].try_into().unwrap()) as usize;
        recs.push(bytes[off..off + 16 + caplen].to_vec());
        off += 16 + caplen;
    }
    (bytes[..24].to_vec(), recs)
}

/// An IPv4 address and port.
type End = [u8; 6];

/// A TCP/IPv4 record's unordered endpoint pair, its sender and whether it carries a
/// payload (Ethernet, no VLAN tag).
fn tcp_of(rec: &[u8]) -> Option<((End, End), End, bool)> {
    let p = rec.get(16..)?;
    if p.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = p.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    if *ip.get(9)? != 6 {
        return None;
    }
    let tcp = ip.get(ihl..total)?;
    let payload = tcp.len() > usize::from(tcp.get(12)? >> 4) * 4;
    let end = |a: usize, port: usize| -> Option<End> {
        let mut e: End = [0; 6];
        e[..4].copy_from_slice(ip.get(a..a + 4)?);
        e[4..].copy_from_slice(tcp.get(port..port + 2)?);
        Some(e)
    };
    let (src, dst) = (end(12, 0)?, end(16, 2)?);
    Some(((src.min(dst), src.max(dst)), src, payload))
}

/// A mirror port (or two taps merged) can put a server's first answer before the request
/// it answers. The ClientHello of every FortiClient session is moved behind the FortiGate's
/// ServerHello and certificate: each session is still the SSL-VPN with its certificate.
#[test]
fn ssl_vpn_is_named_when_the_server_hello_is_captured_before_the_client_hello() {
    let original = std::fs::read(corpus().join("ndpi-forticlient.pcap")).unwrap();
    let (header, mut recs) = pcap_records(&original);
    // Per session: the record of its first payload and who sent it.
    let mut first: std::collections::HashMap<(End, End), (usize, End)> = Default::default();
    let mut swaps = Vec::new();
    let mut done = std::collections::HashSet::new();
    for (i, r) in recs.iter().enumerate() {
        let Some((pair, src, true)) = tcp_of(r) else {
            continue;
        };
        if done.contains(&pair) {
            continue;
        }
        match first.get(&pair) {
            None => {
                first.insert(pair, (i, src));
            }
            Some(&(j, s)) => {
                if s != src {
                    swaps.push((j, i));
                }
                done.insert(pair);
            }
        }
    }
    assert!(swaps.len() >= 5, "sessions reordered: {}", swaps.len());
    for (j, i) in swaps {
        // The records trade places; the time stamps stay in file order.
        let (a, b) = (recs[j].clone(), recs[i].clone());
        recs[j] = [&a[..8], &b[8..]].concat();
        recs[i] = [&b[..8], &a[8..]].concat();
    }
    let mut tmp = tempfile::Builder::new().suffix(".pcap").tempfile().unwrap();
    tmp.write_all(&header).unwrap();
    for r in &recs {
        tmp.write_all(r).unwrap();
    }
    tmp.flush().unwrap();
    let out = analyze(&["--format", "jsonl"], &[tmp.path()]);
    assert!(out.status.success());
    let flows = jsonl(&out);
    let vpn = find(&flows, 10443, "tcp");
    assert_eq!(vpn.len(), 5, "the five FortiClient sessions");
    for f in vpn {
        assert_eq!(f["service"], "ssl-vpn", "{f}");
        assert_eq!(f["vendor"], "Fortinet");
        assert!(f["tls"]["cert"]["subject"]
            .as_str()
            .unwrap()
            .contains("OU=FortiGate"));
        // The ClientHello, read after its answer, still gives the fingerprint.
        assert!(f["tls"]["ja4"].as_str().unwrap().starts_with("t1"), "{f}");
    }
}

/// The flows of a capture as a person compares them: endpoints, service and vendor.
fn named_flows(flows: &[serde_json::Value]) -> std::collections::BTreeSet<String> {
    flows
        .iter()
        .map(|f| {
            format!(
                "{} {}:{} > {}:{} {} {}",
                f["transport"],
                f["client"]["ip"],
                f["client"]["port"],
                f["server"]["ip"],
                f["server"]["port"],
                f["service"],
                f["vendor"]
            )
        })
        .collect()
}

/// An IPv4 header (RFC 791) with its checksum, for `payload_len` bytes of `proto`.
fn ipv4_header(src: [u8; 4], dst: [u8; 4], proto: u8, payload_len: usize) -> Vec<u8> {
    let total = u16::try_from(20 + payload_len).unwrap();
    let mut h = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0];
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let sum = h
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h
}

/// How a mirror port's frames may reach the sensor.
#[derive(Clone, Copy, Debug)]
enum Delivery {
    /// PPPoE session frames (RFC 2516), as on the line to a FLET'S provider.
    Pppoe,
    /// Two MPLS labels (RFC 3032).
    Mpls,
    /// ERSPAN type II from a remote switch (GRE with a sequence number, 8-byte header).
    Erspan2,
    /// ERSPAN type III with its platform subheader (12 + 8 bytes).
    Erspan3,
    /// IPv4 inside IPv6 (RFC 2473), as DS-Lite and MAP-E carry it over IPv6-only
    /// FLET'S lines: the router's side of the line.
    Ipv4InIpv6,
    /// A router's packet sniffer streaming to the sensor over TZSP (UDP 37008).
    Tzsp,
    /// Wireless clients' frames tunnelled by an access point to its controller: CAPWAP
    /// data (RFC 5415, UDP 5247) with IEEE 802.11 QoS data frames inside.
    Capwap,
    /// The same 802.11 frames captured on a radio, behind a radiotap header.
    Radiotap,
    /// A port on a fabric extender (Cisco FEX) mirrored with its VN-Tag.
    VnTag,
    /// A link protected by MACsec for integrity only (IEEE 802.1AE, no encryption): a
    /// SecTAG with the secure channel identifier in front, the ICV behind.
    Macsec,
    /// A PPP session in an L2TP tunnel without IPsec (RFC 2661 data messages over UDP
    /// 1701, with length, sequence numbers and the PPP address and control fields).
    L2tp,
    /// The user plane of a local 5G network (ローカル5G) between its radio and its core:
    /// the devices' IP packets in GTP-U G-PDUs (UDP 2152) with a sequence number and a
    /// PDU session container, as 5G base stations send them (3GPP TS 29.281, TS 38.415).
    Gtpu,
    /// A router's serial WAN link captured with Cisco HDLC framing (link type 104:
    /// address 0x0F, control 0, EtherType).
    CiscoHdlc,
    /// A PPP link in HDLC-like framing (link type 50, RFC 1662: 0xFF 0x03, protocol).
    PppHdlc,
    /// A PPP link without address and control, protocol compressed to one byte (link
    /// type 9, RFC 1661 sections 6.5-6.6).
    Ppp,
    /// A PPPoE session without its Ethernet header (link type 51).
    PppEther,
    /// A Linux firewall's netfilter log (link type 239, `tcpdump -i nflog:N`): header,
    /// then TLVs in the writing host's byte order, the packet in NFULA_PAYLOAD (type 9).
    Nflog,
    /// A pfSense or OPNsense firewall's pf log (link type 117, `tcpdump -i pflog0`): the
    /// FreeBSD header of 69 bytes padded to 72, then the packet.
    Pflog,
}

/// An Ethernet frame as an IEEE 802.11 QoS data frame from the distribution system:
/// addresses DA, BSSID, SA; QoS control; LLC/SNAP with the frame's EtherType.
fn as_wifi(frame: &[u8]) -> Vec<u8> {
    let mut w = vec![0x88, 0x02, 0, 0];
    w.extend_from_slice(&frame[0..6]);
    w.extend_from_slice(&[0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
    w.extend_from_slice(&frame[6..12]);
    w.extend_from_slice(&[0x10, 0x00, 0x00, 0x00, 0xaa, 0xaa, 0x03, 0, 0, 0]);
    w.extend_from_slice(&frame[12..]);
    w
}

/// A UDP packet from 198.51.100.1 to 198.51.100.9 in an Ethernet frame.
fn udp_to_sensor(sport: u16, dport: u16, payload: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(8 + payload.len()).ok()?;
    let mut v = vec![0x02, 0, 0, 0, 0, 0x09, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00];
    v.extend_from_slice(&ipv4_header(
        [198, 51, 100, 1],
        [198, 51, 100, 9],
        17,
        usize::from(len),
    ));
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    Some(v)
}

impl Delivery {
    /// The transport of the flow the delivery adds, from or to 2001:db8:ffff::9 or
    /// 198.51.100.9, if it adds one.
    fn outer(self) -> Option<&'static str> {
        match self {
            Delivery::Pppoe | Delivery::Mpls | Delivery::VnTag | Delivery::Macsec => None,
            Delivery::Erspan2 | Delivery::Erspan3 => Some("gre"),
            Delivery::Ipv4InIpv6 => Some("ipip"),
            Delivery::Tzsp | Delivery::Capwap | Delivery::Gtpu | Delivery::L2tp => Some("udp"),
            Delivery::Radiotap
            | Delivery::CiscoHdlc
            | Delivery::PppHdlc
            | Delivery::Ppp
            | Delivery::PppEther
            | Delivery::Nflog
            | Delivery::Pflog => None,
        }
    }

    /// The link type of the capture the delivery writes, if not Ethernet.
    fn link_type(self) -> Option<u32> {
        match self {
            Delivery::Radiotap => Some(127),
            Delivery::CiscoHdlc => Some(104),
            Delivery::PppHdlc => Some(50),
            Delivery::Ppp => Some(9),
            Delivery::PppEther => Some(51),
            Delivery::Nflog => Some(239),
            Delivery::Pflog => Some(117),
            _ => None,
        }
    }
}

/// The PPP protocol number of IPv4 or IPv6 (RFC 1332, RFC 5072); `None` for anything else.
fn ppp_protocol(ip_v4: bool, ip_v6: bool) -> Option<u16> {
    match (ip_v4, ip_v6) {
        (true, _) => Some(0x0021),
        (_, true) => Some(0x0057),
        _ => None,
    }
}

/// One record's frame as `how` delivers it; `None` where it does not apply (not IP).
fn deliver(how: Delivery, frame: &[u8], orig_len: usize) -> Option<(Vec<u8>, usize)> {
    let t = frame.get(12..14)?;
    let ip = frame.get(14..)?;
    let (ip_v4, ip_v6) = (t == [0x08, 0x00], t == [0x86, 0xdd]);
    let mut v = frame[..12].to_vec();
    let inner_len = orig_len - 14;
    // Frames on the wire are the captured ones (these captures keep whole frames).
    let grown = |v: Vec<u8>| {
        let len = orig_len + v.len() - frame.len();
        (v, len)
    };
    match how {
        Delivery::Tzsp => {
            let mut t = vec![1, 0, 0, 1, 10, 4, 0, 0, 0, 1, 0, 1];
            t.extend_from_slice(frame);
            udp_to_sensor(40000, 37008, &t).map(grown)
        }
        Delivery::Capwap => {
            let mut c = vec![0x00, 0x10, 0x03, 0x00, 0, 0, 0, 0];
            c.extend_from_slice(&as_wifi(frame));
            udp_to_sensor(5247, 5247, &c).map(grown)
        }
        Delivery::VnTag => {
            v.extend_from_slice(&[0x89, 0x26, 0x80, 0x05, 0x00, 0x21]);
            v.extend_from_slice(&frame[12..]);
            Some((v, orig_len + 6))
        }
        Delivery::Macsec => {
            // SC set (an 8-byte SCI follows the packet number), E and C clear.
            v.extend_from_slice(&[0x88, 0xe5, 0x20, 0, 0, 0, 0x01, 0x07]);
            v.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x00, 0x01]);
            v.extend_from_slice(&frame[12..]);
            v.extend_from_slice(&[0xa5; 16]);
            Some((v, orig_len + 32))
        }
        Delivery::L2tp => {
            let proto = ppp_protocol(ip_v4, ip_v6)?;
            // L and S set, version 2; the length of the whole message; tunnel and
            // session ids; Ns and Nr; then PPP.
            let len = u16::try_from(16 + inner_len).ok()?;
            let mut l = vec![0x48, 0x02];
            l.extend_from_slice(&len.to_be_bytes());
            l.extend_from_slice(&[0x2b, 0x67, 0x00, 0x05, 0x00, 0x11, 0x00, 0x09]);
            l.extend_from_slice(&[0xff, 0x03]);
            l.extend_from_slice(&proto.to_be_bytes());
            l.extend_from_slice(ip);
            udp_to_sensor(1701, 1701, &l).map(grown)
        }
        Delivery::Gtpu => {
            if !(ip_v4 || ip_v6) {
                return None;
            }
            // Version 1, protocol type GTP, E and S; G-PDU; the length of what follows
            // the first eight bytes; TEID; sequence number, N-PDU number, next extension
            // header: PDU session container (one four-byte unit: uplink, QFI 9, none next).
            let mut g = vec![0x36, 0xff];
            g.extend_from_slice(&u16::try_from(8 + inner_len).ok()?.to_be_bytes());
            g.extend_from_slice(&[0x00, 0x00, 0x2b, 0x67, 0x00, 0x01, 0x00, 0x85]);
            g.extend_from_slice(&[0x01, 0x10, 0x09, 0x00]);
            g.extend_from_slice(ip);
            udp_to_sensor(2152, 2152, &g).map(grown)
        }
        Delivery::CiscoHdlc => {
            let mut c = vec![0x0f, 0x00];
            c.extend_from_slice(&frame[12..]);
            Some(grown(c))
        }
        Delivery::PppHdlc => {
            let mut p = vec![0xff, 0x03];
            p.extend_from_slice(&ppp_protocol(ip_v4, ip_v6)?.to_be_bytes());
            p.extend_from_slice(ip);
            Some(grown(p))
        }
        Delivery::Ppp => {
            let mut p = vec![u8::try_from(ppp_protocol(ip_v4, ip_v6)?).ok()?];
            p.extend_from_slice(ip);
            Some(grown(p))
        }
        Delivery::PppEther => {
            let mut p = vec![0x11, 0x00, 0x2b, 0x67];
            p.extend_from_slice(&u16::try_from(inner_len + 2).ok()?.to_be_bytes());
            p.extend_from_slice(&ppp_protocol(ip_v4, ip_v6)?.to_be_bytes());
            p.extend_from_slice(ip);
            Some(grown(p))
        }
        Delivery::Nflog => {
            if !(ip_v4 || ip_v6) {
                return None;
            }
            // AF_INET or AF_INET6, version 0, group 5 (big-endian); then, little-endian
            // as an x86 host writes them: NFULA_PACKET_HDR (hardware protocol, hook),
            // NFULA_PREFIX "setten" with its NUL and padding, NFULA_PAYLOAD.
            let mut n = vec![if ip_v4 { 2 } else { 10 }, 0, 0, 5];
            n.extend_from_slice(&[8, 0, 1, 0]);
            n.extend_from_slice(&frame[12..14]);
            n.extend_from_slice(&[1, 0]);
            n.extend_from_slice(&[11, 0, 10, 0]);
            n.extend_from_slice(b"setten\0\0");
            n.extend_from_slice(&u16::try_from(4 + ip.len()).ok()?.to_le_bytes());
            n.extend_from_slice(&[9, 0]);
            n.extend_from_slice(ip);
            Some(grown(n))
        }
        Delivery::Pflog => {
            if !(ip_v4 || ip_v6) {
                return None;
            }
            // Length, family (FreeBSD's AF_INET6 is 28), action pass, reason match,
            // interface "igb0", no ruleset, rule 7, no subrule, uid and pid unknown,
            // direction in, padding, rule identifier.
            let mut p = vec![69, if ip_v4 { 2 } else { 28 }, 0, 0];
            let mut name = [0u8; 16];
            name[..4].copy_from_slice(b"igb0");
            p.extend_from_slice(&name);
            p.extend_from_slice(&[0; 16]);
            p.extend_from_slice(&7u32.to_be_bytes());
            p.extend_from_slice(&u32::MAX.to_be_bytes());
            p.extend_from_slice(&[0xff; 16]);
            p.extend_from_slice(&[1, 0, 0, 0]);
            p.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 0]);
            p.extend_from_slice(ip);
            Some(grown(p))
        }
        Delivery::Radiotap => {
            let mut r = vec![0, 0, 12, 0, 0x06, 0, 0, 0, 0x10, 0x02, 0x6c, 0x09];
            r.extend_from_slice(&as_wifi(frame));
            Some(grown(r))
        }
        Delivery::Ipv4InIpv6 => {
            if !ip_v4 {
                return None;
            }
            v.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            v.extend_from_slice(&u16::try_from(inner_len).ok()?.to_be_bytes());
            v.extend_from_slice(&[4, 64]);
            let at = |last: u8| {
                [
                    0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, last,
                ]
            };
            v.extend_from_slice(&at(1));
            v.extend_from_slice(&at(9));
            v.extend_from_slice(ip);
            Some((v, orig_len + 40))
        }
        Delivery::Pppoe => {
            let proto = ppp_protocol(ip_v4, ip_v6)?;
            v.extend_from_slice(&[0x88, 0x64, 0x11, 0x00, 0x2b, 0x67]);
            v.extend_from_slice(&u16::try_from(inner_len + 2).ok()?.to_be_bytes());
            v.extend_from_slice(&proto.to_be_bytes());
            v.extend_from_slice(ip);
            Some((v, orig_len + 8))
        }
        Delivery::Mpls => {
            if !(ip_v4 || ip_v6) {
                return None;
            }
            // Labels 16 and 1001, the second the bottom of the stack, TTL 64.
            v.extend_from_slice(&[0x88, 0x47, 0x00, 0x01, 0x00, 0x40, 0x00, 0x3e, 0x91, 0x40]);
            v.extend_from_slice(ip);
            Some((v, orig_len + 8))
        }
        Delivery::Erspan2 | Delivery::Erspan3 => {
            let (proto, header): (u16, &[u8]) = match how {
                Delivery::Erspan2 => (0x88be, &[0x10, 0x00, 0x00, 0x07, 0, 0, 0, 0]),
                _ => (
                    0x22eb,
                    &[
                        0x20, 0x00, 0x00, 0x07, 0, 0, 1, 2, 0, 0, 0, 0x01, // O set
                        0x08, 0, 0, 0, 0, 0, 0, 1,
                    ],
                ),
            };
            let gre_len = 8 + header.len();
            let mut v = vec![0x02, 0, 0, 0, 0, 0x09, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00];
            let ip_len = gre_len + orig_len;
            if 20 + ip_len > 65535 {
                return None;
            }
            v.extend_from_slice(&ipv4_header(
                [198, 51, 100, 1],
                [198, 51, 100, 9],
                47,
                ip_len,
            ));
            v.extend_from_slice(&[0x10, 0x00]);
            v.extend_from_slice(&proto.to_be_bytes());
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(header);
            v.extend_from_slice(frame);
            Some((v, 14 + 20 + ip_len))
        }
    }
}

/// The same traffic seen through a PPPoE line, an MPLS core, a remote SPAN session
/// (ERSPAN II and III from a switch elsewhere), an IPv6-only line carrying IPv4 (DS-Lite,
/// MAP-E), a router's TZSP stream, a wireless controller's CAPWAP tunnel, a radio, a
/// fabric extender's port (VN-Tag), a MACsec link without encryption, an L2TP tunnel,
/// the user plane of a local 5G network, a router's serial line (Cisco HDLC, PPP), a
/// Linux firewall's netfilter log or a pfSense firewall's pf log gives
/// the same flows with the same names as on a plain mirror port: every corpus capture of
/// Ethernet frames, rewritten.
#[test]
fn every_way_frames_reach_the_sensor_gives_the_flows_of_a_plain_mirror_port() {
    let mut checked = 0;
    let mut named = 0;
    for cap in captures() {
        let bytes = std::fs::read(&cap).unwrap();
        // Classic little-endian pcap of Ethernet frames.
        if bytes.get(..4) != Some(&[0xd4, 0xc3, 0xb2, 0xa1])
            || bytes.get(20..24) != Some(&[1, 0, 0, 0])
        {
            continue;
        }
        let out = analyze(&["--format", "jsonl"], &[&cap]);
        assert!(out.status.success(), "{}", cap.display());
        let want = named_flows(&jsonl(&out));
        named += jsonl(&out)
            .iter()
            .filter(|f| f["family"] == "remote-access" || f["family"] == "vpn")
            .count();
        let (header, recs) = pcap_records(&bytes);
        for how in [
            Delivery::Pppoe,
            Delivery::Mpls,
            Delivery::Erspan2,
            Delivery::Erspan3,
            Delivery::Ipv4InIpv6,
            Delivery::Tzsp,
            Delivery::Capwap,
            Delivery::Radiotap,
            Delivery::VnTag,
            Delivery::Macsec,
            Delivery::L2tp,
            Delivery::Gtpu,
            Delivery::CiscoHdlc,
            Delivery::PppHdlc,
            Delivery::Ppp,
            Delivery::PppEther,
            Delivery::Nflog,
            Delivery::Pflog,
        ] {
            let mut tmp = tempfile::Builder::new().suffix(".pcap").tempfile().unwrap();
            // A larger snap length: the delivery adds its headers.
            let mut h = header.clone();
            h[16..20].copy_from_slice(&262_144u32.to_le_bytes());
            if let Some(link) = how.link_type() {
                h[20..24].copy_from_slice(&link.to_le_bytes());
            }
            tmp.write_all(&h).unwrap();
            let mut wrapped = 0;
            // The Ethernet records of the frames the delivery carries.
            let mut carried = header.clone();
            let mut left_out = 0;
            for r in &recs {
                let orig_len = u32::from_le_bytes(r[12..16].try_into().unwrap()) as usize;
                match deliver(how, &r[16..], orig_len) {
                    Some((frame, len)) => {
                        tmp.write_all(&r[..8]).unwrap();
                        tmp.write_all(&u32::try_from(frame.len()).unwrap().to_le_bytes())
                            .unwrap();
                        tmp.write_all(&u32::try_from(len).unwrap().to_le_bytes())
                            .unwrap();
                        tmp.write_all(&frame).unwrap();
                        carried.extend_from_slice(r);
                        wrapped += 1;
                    }
                    // Frames the link cannot carry (not IP, or tagged) are not captured
                    // on it.
                    None if how.link_type().is_some() => left_out += 1,
                    None => {
                        tmp.write_all(r).unwrap();
                        carried.extend_from_slice(r);
                    }
                }
            }
            tmp.flush().unwrap();
            assert!(wrapped > 0, "{} {how:?}", cap.display());
            // What a plain mirror port gives for those frames.
            let want = if left_out == 0 {
                want.clone()
            } else {
                let mut plain = tempfile::Builder::new().suffix(".pcap").tempfile().unwrap();
                plain.write_all(&carried).unwrap();
                plain.flush().unwrap();
                named_flows(&jsonl(&analyze(&["--format", "jsonl"], &[plain.path()])))
            };
            let out = analyze(&["--format", "jsonl"], &[tmp.path()]);
            assert!(out.status.success(), "{} {how:?}", cap.display());
            let flows = jsonl(&out);
            // ERSPAN's GRE flow from the switch to the sensor, and the IPv6 tunnel, are
            // the one flow more (more than one where the capture is quiet for longer
            // than such a flow's idle timeout).
            let (outer, inner): (Vec<_>, Vec<_>) = flows.into_iter().partition(|f| {
                ["198.51.100.9", "2001:db8:ffff::9"]
                    .iter()
                    .any(|a| f["server"]["ip"] == *a || f["client"]["ip"] == *a)
            });
            assert_eq!(
                outer.is_empty(),
                how.outer().is_none(),
                "{} {how:?}",
                cap.display()
            );
            assert!(
                outer
                    .iter()
                    .all(|f| f["transport"] == how.outer().unwrap_or("")),
                "{outer:?}"
            );
            let got = named_flows(&inner);
            assert_eq!(
                got.symmetric_difference(&want).collect::<Vec<_>>(),
                Vec::<&String>::new(),
                "{} {how:?}",
                cap.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 60, "captures x deliveries checked: {checked}");
    assert!(
        named >= 20,
        "remote-access and VPN flows among them: {named}"
    );
}

/// A classic pcap of Ethernet frames, one record a second.
fn pcap_of(frames: &[Vec<u8>]) -> tempfile::NamedTempFile {
    let mut tmp = tempfile::Builder::new().suffix(".pcap").tempfile().unwrap();
    let mut h = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&65_535u32.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    tmp.write_all(&h).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let len = u32::try_from(f.len()).unwrap().to_le_bytes();
        tmp.write_all(&(1_700_000_000 + i as u32).to_le_bytes())
            .unwrap();
        tmp.write_all(&[0; 4]).unwrap();
        tmp.write_all(&len).unwrap();
        tmp.write_all(&len).unwrap();
        tmp.write_all(f).unwrap();
    }
    tmp.flush().unwrap();
    tmp
}

/// L2TPv3 straight over IP (protocol 115), as routers link two sites with it: a tunnel
/// seen from its SCCRQ, and one seen only from its data, are both L2TP, on transport
/// `l2tp`. The SCCRQ is laid out as RFC 3931 sections 3.2, 4.1.1.2 and 5.4.1 say (and
/// as tshark dissects it: session id 0, message type 1).
#[test]
fn l2tpv3_over_ip_is_named_from_its_control_or_its_data() {
    let frame = |src: [u8; 4], dst: [u8; 4], payload: &[u8]| {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src, dst, 64);
        let mut v = Vec::new();
        b.write(&mut v, etherparse::IpNumber(115), payload).unwrap();
        v
    };
    let (a, b) = ([203, 0, 113, 10], [198, 51, 100, 20]);
    let mut sccrq = vec![0, 0, 0, 0, 0xc8, 0x03, 0, 28, 0, 0, 0, 0, 0, 0, 0, 0];
    sccrq.extend_from_slice(&[0x80, 0x08, 0, 0, 0, 0, 0, 1, 0x80, 0x08, 0, 0, 0, 2, 1, 0]);
    let data = |session: u32| {
        let mut d = session.to_be_bytes().to_vec();
        d.extend_from_slice(&[0x02; 60]);
        d
    };
    let whole = pcap_of(&[
        frame(a, b, &sccrq),
        frame(a, b, &data(0x1001)),
        frame(b, a, &data(0x2002)),
    ]);
    let data_only = pcap_of(&[frame(a, b, &data(0x1001)), frame(b, a, &data(0x2002))]);
    for (cap, evidence) in [
        (&whole, "L2TPv3 SCCRQ (1) over IP"),
        (&data_only, "115 (L2TPv3 data, session 0x00001001)"),
    ] {
        let out = analyze(&["--format", "jsonl"], &[cap.path()]);
        assert!(out.status.success());
        let flows = jsonl(&out);
        assert_eq!(flows.len(), 1, "{flows:?}");
        let f = &flows[0];
        assert_eq!(
            (&f["transport"], &f["service"]),
            (&"l2tp".into(), &"l2tp".into()),
            "{f}"
        );
        assert_eq!(f["family"], "vpn");
        assert_eq!(f["evidence"][0]["value"], evidence);
        assert_eq!(f["external"], "both");
    }
}

#[test]
fn ssh_on_a_non_standard_port_is_flagged() {
    let out = analyze(&["--format", "jsonl"], &[&corpus().join("ndpi-ssh.pcap")]);
    let flows = jsonl(&out);
    let odd = find(&flows, 8000, "tcp");
    assert_eq!(odd.len(), 1);
    assert_eq!(odd[0]["service"], "ssh");
    assert_eq!(odd[0]["non_standard_port"], true);
    let std = find(&flows, 22, "tcp");
    assert_eq!(std[0]["non_standard_port"], false);
    assert!(std[0]["ssh"]["hassh"]
        .as_str()
        .is_some_and(|h| h.len() == 32));
    assert!(std[0]["ssh"]["server_banner"]
        .as_str()
        .unwrap()
        .starts_with("SSH-2.0-"));
}

#[test]
fn local_net_option_turns_an_outbound_flow_internal() {
    let cap = corpus().join("ndpi-forticlient.pcap");
    let out = analyze(
        &["--format", "jsonl", "--local-net", "82.81.46.0/24"],
        &[&cap],
    );
    let flows = jsonl(&out);
    assert!(find(&flows, 10443, "tcp")
        .iter()
        .all(|f| f["direction"] == "internal"));
    let bad = analyze(&["--local-net", "82.81.46.0/40"], &[&cap]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--local-net"));
}

#[test]
fn truncated_capture_keeps_earlier_flows_and_names_the_offset() {
    let src = std::fs::read(corpus().join("ndpi-ssh.pcap")).unwrap();
    let cut = src.len() / 2 + 3;
    let mut tmp = tempfile::Builder::new().suffix(".pcap").tempfile().unwrap();
    tmp.write_all(&src[..cut]).unwrap();
    let out = analyze(&["--format", "jsonl"], &[tmp.path()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&tmp.path().display().to_string()), "{err}");
    assert!(
        err.contains("truncated") && err.contains("byte offset"),
        "{err}"
    );
    assert!(
        !jsonl(&out).is_empty(),
        "flows read before the damage are reported"
    );
}

#[test]
fn not_a_capture_and_missing_file_are_errors_but_other_files_still_run() {
    let mut junk = tempfile::NamedTempFile::new().unwrap();
    junk.write_all(b"this is a text file, not a capture")
        .unwrap();
    let good = corpus().join("ndpi-rdp.pcap");
    let missing = Path::new("/nonexistent/capture.pcap");
    let out = analyze(&["--format", "jsonl"], &[junk.path(), missing, &good]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a pcap or pcapng capture"), "{err}");
    assert!(
        err.contains("/nonexistent/capture.pcap: cannot open"),
        "{err}"
    );
    assert!(find(&jsonl(&out), 3389, "tcp").len() == 1);
}

#[test]
fn gzip_capture_gives_the_same_flows() {
    let src = corpus().join("ndpi-openvpn.pcap");
    let plain = analyze(&["--format", "jsonl"], &[&src]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&std::fs::read(&src).unwrap()).unwrap();
    let mut tmp = tempfile::Builder::new()
        .suffix(".pcap.gz")
        .tempfile()
        .unwrap();
    tmp.write_all(&gz.finish().unwrap()).unwrap();
    let zipped = analyze(&["--format", "jsonl"], &[tmp.path()]);
    assert!(zipped.status.success());
    assert_eq!(plain.stdout, zipped.stdout);
}

#[test]
fn pcapng_capture_is_read_with_tls_metadata() {
    // The AnyDesk capture is pcapng (several interfaces are covered by the capture unit
    // tests); its flows must come out with their TLS metadata.
    let out = analyze(
        &["--format", "jsonl"],
        &[&corpus().join("ndpi-anydesk.pcapng")],
    );
    assert!(out.status.success());
    let flows = jsonl(&out);
    let anydesk: Vec<_> = flows.iter().filter(|f| f["service"] == "anydesk").collect();
    assert!(anydesk.len() >= 4, "{}", anydesk.len());
    assert!(anydesk.iter().any(|f| f["tls"]["cert"]["subject"]
        .as_str()
        .is_some_and(|s| s.contains("AnyDesk Client"))));
}

#[test]
fn table_lists_remote_access_first() {
    let out = analyze(&[], &[&corpus().join("ndpi-forticlient.pcap")]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("Remote access and VPN flows: 5"),
        "{first}"
    );
    assert!(text.contains("ssl-vpn"));
    assert!(text.contains("Fortinet FortiGate SSL-VPN"));
    let pos_vpn = text.find("ssl-vpn").unwrap();
    let pos_other = text.find("Other traffic by protocol").unwrap();
    assert!(pos_vpn < pos_other);
}

#[test]
fn concatenated_captures_share_one_flow_table() {
    let a = corpus().join("ndpi-rdp.pcap");
    let out = analyze(&["--format", "jsonl"], &[&a, &a]);
    assert!(out.status.success());
    // The same packets twice: one flow, twice the packets.
    let flows = jsonl(&out);
    let rdp = find(&flows, 3389, "tcp");
    assert_eq!(rdp.len(), 1);
    let once = jsonl(&analyze(&["--format", "jsonl"], &[&a]));
    let p1 = find(&once, 3389, "tcp")[0]["packets"]["c2s"]
        .as_u64()
        .unwrap();
    assert_eq!(rdp[0]["packets"]["c2s"].as_u64().unwrap(), 2 * p1);
}

#[test]
fn bundled_sample_shows_the_four_connection_points() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sample.pcapng");
    let out = analyze(&["--format", "jsonl"], &[&sample]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let flows = jsonl(&out);
    let by_service = |s: &str| -> Vec<&serde_json::Value> {
        flows.iter().filter(|f| f["service"] == s).collect()
    };
    let rdp = by_service("rdp");
    assert_eq!(rdp.len(), 1);
    assert_eq!(rdp[0]["direction"], "inbound");
    assert_eq!(rdp[0]["weak"], "rdp standard security");
    assert_eq!(rdp[0]["rdp"]["cookie"], "vendor");
    let vpn = by_service("ssl-vpn");
    assert_eq!(vpn.len(), 1);
    assert_eq!(vpn[0]["vendor"], "Fortinet");
    assert_eq!(vpn[0]["direction"], "outbound");
    assert_eq!(by_service("ssh").len(), 1);
    assert_eq!(by_service("vnc").len(), 1);
    let remote = flows.iter().filter(|f| !f["service"].is_null()).count();
    assert_eq!(remote, 4, "nothing else is remote access");
    assert!(flows.iter().any(|f| f["protocol"] == "dns"));
}

/// Golden file of the JSON records for the bundled sample (insta snapshot under
/// tests/snapshots/). A change in what is reported shows up as a reviewable diff.
#[test]
fn bundled_sample_jsonl_golden() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sample.pcapng");
    let out = analyze(&["--format", "jsonl"], &[&sample]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let pretty: Vec<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            serde_json::to_string_pretty(&v).unwrap()
        })
        .collect();
    insta::assert_snapshot!("sample_jsonl", pretty.join("\n"));
}

#[test]
fn bundled_sample_table_golden() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sample.pcapng");
    let out = analyze(&[], &[&sample]);
    assert!(out.status.success());
    insta::assert_snapshot!("sample_table", String::from_utf8(out.stdout).unwrap());
}

/// The flows of a run, each without its id (which depends on the number of flow tables),
/// in a canonical order.
fn flow_set(out: &Output) -> Vec<String> {
    let mut v: Vec<String> = jsonl(out)
        .into_iter()
        .map(|mut f| {
            f.as_object_mut().unwrap().remove("id");
            f.to_string()
        })
        .collect();
    v.sort();
    v
}

#[test]
fn several_flow_tables_find_the_same_flows_the_same_way_every_run() {
    // All corpus captures in one run (one flow table across files), as one table and as
    // two and three dealt by address.
    let caps = captures();
    let files: Vec<&Path> = caps.iter().map(PathBuf::as_path).collect();
    let one = analyze(&["--format", "jsonl", "--threads", "1"], &files);
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    let reference = flow_set(&one);
    assert!(reference.len() > 500, "{} flows", reference.len());
    for n in ["2", "3"] {
        let a = analyze(&["--format", "jsonl", "--threads", n], &files);
        assert!(
            a.status.success(),
            "--threads {n}: {}",
            String::from_utf8_lossy(&a.stderr)
        );
        let got = flow_set(&a);
        let missing: Vec<&String> = reference
            .iter()
            .filter(|f| !got.contains(f))
            .take(3)
            .collect();
        assert_eq!(
            got.len(),
            reference.len(),
            "--threads {n}: missing e.g. {missing:?}"
        );
        assert!(
            missing.is_empty(),
            "--threads {n}: differs, e.g. {missing:?}"
        );
        // Ids are distinct, and the output is the same on the next run.
        let ids: std::collections::HashSet<u64> = jsonl(&a)
            .iter()
            .map(|f| f["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids.len(), got.len(), "--threads {n}: ids repeat");
        let b = analyze(&["--format", "jsonl", "--threads", n], &files);
        assert_eq!(
            a.stdout, b.stdout,
            "--threads {n}: output differs between runs"
        );
    }
    // The table and the inventory take the flows of several tables too.
    let table = analyze(
        &["--threads", "2"],
        &[&corpus().join("ndpi-forticlient.pcap")],
    );
    assert!(table.status.success());
    assert!(String::from_utf8_lossy(&table.stdout).contains("ssl-vpn"));
    let inv1 = analyze(
        &["--inventory", "--format", "jsonl", "--threads", "1"],
        &files,
    );
    let inv3 = analyze(
        &["--inventory", "--format", "jsonl", "--threads", "3"],
        &files,
    );
    assert!(inv3.status.success());
    assert!(jsonl(&inv1).len() > 10);
    assert_eq!(inv1.stdout, inv3.stdout, "the same inventory");
}

#[test]
fn several_flow_tables_keep_the_errors_and_the_flows_before_them() {
    let src = std::fs::read(corpus().join("ndpi-ssh.pcap")).unwrap();
    let mut tmp = tempfile::Builder::new().suffix(".pcap").tempfile().unwrap();
    tmp.write_all(&src[..src.len() / 2 + 3]).unwrap();
    let missing = Path::new("/nonexistent/capture.pcap");
    let good = corpus().join("ndpi-rdp.pcap");
    let one = analyze(&["--format", "jsonl"], &[tmp.path(), missing, &good]);
    let two = analyze(
        &["--format", "jsonl", "--threads", "2"],
        &[tmp.path(), missing, &good],
    );
    assert_eq!(two.status.code(), Some(1));
    assert_eq!(flow_set(&one), flow_set(&two));
    let err = String::from_utf8_lossy(&two.stderr);
    let (trunc, gone) = (
        err.find("truncated").unwrap(),
        err.find("cannot open").unwrap(),
    );
    assert!(trunc < gone, "errors in the order of the files: {err}");
    assert!(err.contains("byte offset"), "{err}");
}

/// The flows `analyze --format jsonl` reports for a capture (it must run cleanly).
fn flows_of(cap: &Path) -> Vec<serde_json::Value> {
    let out = analyze(&["--format", "jsonl"], &[cap]);
    assert!(
        out.status.success(),
        "{}: {}",
        cap.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    jsonl(&out)
}

/// The one flow `analyze --format jsonl` reports for a capture (it must run cleanly).
fn only_flow(cap: &Path) -> serde_json::Value {
    let mut flows = flows_of(cap);
    assert_eq!(flows.len(), 1, "{}: {flows:?}", cap.display());
    flows.remove(0)
}

/// A real OpenVPN session recorded by a Linux firewall's netfilter log rather than on an
/// interface (tests/fixtures/make-nflog.sh: `nft ... log group 5`, `tcpdump -i nflog:5`,
/// link type 239): both directions come out as one flow, named openvpn, with every logged
/// packet counted and nothing skipped.
#[test]
fn an_openvpn_session_from_a_netfilter_log_is_named() {
    let cap = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/nflog.pcap");
    let out = Command::new(bin())
        .args(["analyze", "--format", "table"])
        .arg(&cap)
        .env("SETTEN_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("not_ip=0 malformed=0 unsupported_link=0"),
        "{log}"
    );
    let f = only_flow(&cap);
    assert_eq!(f["service"], "openvpn", "{f}");
    assert_eq!(f["transport"], "udp", "{f}");
    assert_eq!(f["client"]["ip"], "10.99.0.1", "{f}");
    assert_eq!(
        f["server"],
        serde_json::json!({"ip": "10.99.0.2", "port": 1194}),
        "{f}"
    );
    let packets = f["packets"]["c2s"].as_u64().unwrap() + f["packets"]["s2c"].as_u64().unwrap();
    let frames = std::fs::read(&cap).unwrap();
    let (_, records) = pcap_records(&frames);
    assert_eq!(packets, records.len() as u64, "{f}");
    assert!(f["packets"]["s2c"].as_u64().unwrap() > 0, "{f}");
}

/// Real OpenVPN 2.6 sessions (tests/fixtures/make-openvpn.sh), one per control-channel
/// wrapping and transport: each is one flow, named openvpn, with its wrapping as
/// evidence and the non-standard ports flagged.
#[test]
fn openvpn_sessions_in_every_wrapping_are_named_with_their_wrapping() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/openvpn");
    // (capture, transport, server port, wrapping, non-standard port)
    let want = [
        ("udp-plain", "udp", 1194, "no tls-auth/tls-crypt", false),
        ("udp-tls-auth", "udp", 1194, "tls-auth, 20-byte HMAC", false),
        (
            "udp-tls-auth-sha512",
            "udp",
            1194,
            "tls-auth, 64-byte HMAC",
            false,
        ),
        ("udp-tls-crypt", "udp", 443, "tls-crypt", true),
        // The client sends from 1194, OpenVPN's default local port, so the port rule
        // takes it for the server; its client reset says otherwise (see below).
        ("udp-tls-crypt-v2", "udp", 5000, "tls-crypt-v2", true),
        ("tcp-plain", "tcp", 443, "no tls-auth/tls-crypt", false),
        (
            "tcp-tls-auth-sha256",
            "tcp",
            993,
            "tls-auth, 32-byte HMAC",
            true,
        ),
        ("tcp-tls-crypt", "tcp", 8443, "tls-crypt", true),
        ("tcp-tls-crypt-v2", "tcp", 1194, "tls-crypt-v2", false),
    ];
    for (name, transport, port, wrap, non_standard) in want {
        let cap = dir.join(format!("{name}.pcap"));
        let f = &only_flow(&cap);
        assert_eq!(f["service"], "openvpn", "{name}: {f}");
        assert_eq!(f["family"], "vpn", "{name}");
        assert_eq!(f["transport"], transport, "{name}");
        assert_eq!(f["server"]["port"], port, "{name}");
        assert_eq!(f["non_standard_port"], non_standard, "{name}");
        let wraps: Vec<&serde_json::Value> = f["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["rule"] == "setten.openvpn.wrap")
            .map(|e| &e["value"])
            .collect();
        assert_eq!(wraps, [wrap], "{name}: {f}");
    }
}

/// An OpenVPN client that sends from 1194 (its default local port) to a server on 5000:
/// the port rule took the client for the server; the client reset it sent turns the roles
/// round, with every count going with its side, the same on one thread as on two.
#[test]
fn openvpn_client_reset_settles_who_is_client_against_the_ports() {
    let cap = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/openvpn/udp-tls-crypt-v2.pcap");
    // Packets and IP bytes towards port 5000 and back, from the capture itself
    // (Ethernet, IPv4, UDP).
    let (_, recs) = pcap_records(&std::fs::read(&cap).unwrap());
    let (mut to_server, mut to_client) = ((0u64, 0u64), (0u64, 0u64));
    for r in &recs {
        let ip = &r[16 + 14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = u64::from(u16::from_be_bytes([ip[2], ip[3]]));
        let side = if u16::from_be_bytes([ip[ihl + 2], ip[ihl + 3]]) == 5000 {
            &mut to_server
        } else {
            &mut to_client
        };
        *side = (side.0 + 1, side.1 + total);
    }
    let ((c2s, c2s_bytes), (s2c, s2c_bytes)) = (to_server, to_client);
    let mut lines = Vec::new();
    for threads in ["1", "2"] {
        let out = analyze(&["--format", "jsonl", "--threads", threads], &[&cap]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let flows = jsonl(&out);
        assert_eq!(flows.len(), 1, "{flows:?}");
        let f = &flows[0];
        assert_eq!(
            f["client"],
            serde_json::json!({"ip": "10.99.0.1", "port": 1194}),
            "{f}"
        );
        assert_eq!(
            f["server"],
            serde_json::json!({"ip": "10.99.0.2", "port": 5000}),
            "{f}"
        );
        assert_eq!(f["role_by"], "content", "{f}");
        assert_eq!(
            f["packets"],
            serde_json::json!({"c2s": c2s, "s2c": s2c}),
            "{f}"
        );
        assert_eq!(
            f["bytes"],
            serde_json::json!({"c2s": c2s_bytes, "s2c": s2c_bytes}),
            "{f}"
        );
        lines.push(out.stdout);
    }
    assert_eq!(lines[0], lines[1]);
}

/// Real OpenVPN 2.6 tunnels captured only once they were up (tests/fixtures/make-openvpn.sh,
/// "joined"), as a sensor switched on beside a maintenance VPN that has been up for days
/// sees them: no handshake, data channel only. With AES-256-GCM the packet ids counting
/// up in clear name the flow on any port; with a CBC cipher only OpenVPN's port can.
#[test]
fn openvpn_tunnels_joined_after_their_handshake_are_named() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/openvpn");
    // (capture, transport, rule)
    let want = [
        ("joined-udp-gcm", "udp", "setten.openvpn.data-v2-aead"),
        ("joined-tcp-gcm", "tcp", "setten.openvpn.data-v2-aead"),
        ("joined-udp-cbc", "udp", "setten.openvpn.data-v2-port"),
    ];
    for (name, transport, rule) in want {
        let cap = dir.join(format!("{name}.pcap"));
        let f = &only_flow(&cap);
        assert_eq!(f["service"], "openvpn", "{name}: {f}");
        assert_eq!(f["transport"], transport, "{name}");
        assert!(!f["handshake"].as_bool().unwrap_or(false), "{name}: {f}");
        assert_eq!(f["evidence"][0]["rule"], rule, "{name}: {f}");
    }
}

/// Two real tinc 1.0 nodes (tests/fixtures/make-tinc.sh) on a port that is not tinc's:
/// the meta connection is named from its ID lines, and the nodes' UDP flow, encrypted
/// from its first byte, after the meta connection between the same hosts.
#[test]
fn tinc_udp_flow_is_named_after_the_meta_connection_of_its_nodes() {
    let cap = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tinc.pcap");
    for threads in ["1", "2"] {
        let out = analyze(&["--format", "jsonl", "--threads", threads], &[&cap]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let flows = jsonl(&out);
        assert_eq!(flows.len(), 2, "{flows:?}");
        let meta = find(&flows, 55656, "tcp");
        let udp = find(&flows, 55656, "udp");
        assert_eq!((meta.len(), udp.len()), (1, 1), "{flows:?}");
        for f in [meta[0], udp[0]] {
            assert_eq!(f["service"], "tinc", "{f}");
            assert_eq!(f["non_standard_port"], true, "{f}");
        }
        assert_eq!(meta[0]["evidence"][0]["rule"], "setten.tinc.id-exchange");
        assert_eq!(udp[0]["evidence"][0]["rule"], "setten.tinc.udp-of-meta");
        let named_after = format!(
            "tcp 10.99.0.1:{} -> 10.99.0.2:55656 (tinc ID exchange)",
            meta[0]["client"]["port"]
        );
        assert_eq!(udp[0]["evidence"][0]["value"], named_after.as_str());
    }
}

/// Real WireGuard (wireguard-go) and L2TP (xl2tpd) sessions made by the fixture scripts:
/// one flow each, named from the handshake or control message, the port flagged where
/// it is not the protocol's.
#[test]
fn wireguard_and_l2tp_sessions_of_real_programs_are_named() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    // (capture, service, server port, first evidence rule, non-standard port)
    let want = [
        (
            "wireguard.pcap",
            "wireguard",
            33333,
            "setten.wireguard.handshake",
            true,
        ),
        ("l2tp.pcap", "l2tp", 1701, "setten.l2tp.control", false),
    ];
    for (name, service, port, rule, non_standard) in want {
        let f = &only_flow(&dir.join(name));
        assert_eq!(f["service"], service, "{name}: {f}");
        assert_eq!(f["family"], "vpn", "{name}");
        assert_eq!(f["transport"], "udp", "{name}");
        assert_eq!(f["server"]["port"], port, "{name}");
        assert_eq!(f["non_standard_port"], non_standard, "{name}");
        assert_eq!(f["evidence"][0]["rule"], rule, "{name}: {f}");
        assert!(f["packets"]["c2s"].as_u64().unwrap() >= 2, "{name}: {f}");
        assert!(f["packets"]["s2c"].as_u64().unwrap() >= 2, "{name}: {f}");
    }
    // Both ends of the L2TP tunnel say who they are (xl2tpd's Vendor Name AVP, and the
    // machine's host name).
    let f = &only_flow(&dir.join("l2tp.pcap"));
    let names: Vec<&str> = f["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["field"].as_str())
        .filter(|k| k.ends_with("_name"))
        .collect();
    assert_eq!(
        names,
        [
            "l2tp.client.host_name",
            "l2tp.client.vendor_name",
            "l2tp.server.host_name",
            "l2tp.server.vendor_name"
        ],
        "{f}"
    );
    assert_eq!(f["evidence"][2]["value"], "xelerance.com", "{f}");
}

/// Real X11 display connections (tests/fixtures/make-x11.sh: xdpyinfo to Xvfb over TCP):
/// named from the connection setup and the server's answer, plain text and so weak, the
/// display :41 flagged as off the X ports of the service catalogue.
#[test]
fn x11_display_connections_of_real_programs_are_named() {
    let flows = flows_of(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/x11.pcap"));
    assert_eq!(flows.len(), 3, "{flows:?}");
    for f in &flows {
        assert_eq!(f["service"], "xdmcp", "{f}");
        assert_eq!(f["protocol"], "x11", "{f}");
        assert_eq!(f["family"], "remote-access", "{f}");
        assert_eq!(f["weak"], "x11", "{f}");
        assert_eq!(f["protocol_version"], "11.0", "{f}");
        assert_eq!(f["evidence"][0]["rule"], "setten.x11.setup", "{f}");
    }
    let display0 = find(&flows, 6000, "tcp");
    assert_eq!(display0.len(), 2, "{flows:?}");
    let answers: Vec<&str> = display0
        .iter()
        .map(|f| f["evidence"][1]["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        answers,
        ["Success", "Failed: Invalid MIT-MAGIC-COOKIE-1 key"],
        "{flows:?}"
    );
    for f in &display0 {
        assert_eq!(f["non_standard_port"], false, "{f}");
        assert_eq!(
            f["evidence"][0]["value"],
            "c2s connection setup, LSB first, protocol 11.0, MIT-MAGIC-COOKIE-1 \
             (16 bytes of data)",
            "{f}"
        );
    }
    let display41 = find(&flows, 6041, "tcp");
    assert_eq!(display41.len(), 1, "{flows:?}");
    let f = display41[0];
    assert_eq!(f["non_standard_port"], true, "{f}");
    assert_eq!(
        f["evidence"][0]["value"],
        "c2s connection setup, LSB first, protocol 11.0, no authorisation",
        "{f}"
    );
    assert_eq!(f["evidence"][1]["value"], "Success", "{f}");
}

/// A real PPTP call (tests/fixtures/make-pptp.sh: pptp-linux to pptpd): the control
/// connection on tcp 1723 and the call's enhanced GRE are both named pptp, each from its
/// own bytes.
#[test]
fn pptp_control_connection_and_its_gre_are_both_named() {
    let flows =
        flows_of(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/pptp.pcap"));
    assert_eq!(flows.len(), 2, "{flows:?}");
    let by = |t: &str| {
        flows
            .iter()
            .find(|f| f["transport"] == t)
            .unwrap_or_else(|| panic!("no {t} flow: {flows:?}"))
    };
    let (tcp, gre) = (by("tcp"), by("gre"));
    for f in [tcp, gre] {
        assert_eq!(f["service"], "pptp", "{f}");
        assert_eq!(f["family"], "vpn", "{f}");
        assert_eq!(f["weak"], "pptp", "{f}");
        assert_eq!(f["non_standard_port"], false, "{f}");
        assert_eq!(f["client"]["ip"], "10.99.0.1", "{f}");
        assert_eq!(f["server"]["ip"], "10.99.0.2", "{f}");
    }
    assert_eq!(tcp["server"]["port"], 1723);
    assert_eq!(tcp["evidence"][0]["rule"], "setten.pptp.sccrq");
    assert_eq!(gre["protocol"], "gre");
    assert_eq!(gre["evidence"][0]["rule"], "setten.pptp.enhanced-gre");
    assert!(gre["packets"]["c2s"].as_u64().unwrap() >= 2, "{gre}");
    assert!(gre["packets"]["s2c"].as_u64().unwrap() >= 2, "{gre}");
}

/// Real RDP connections (tests/fixtures/make-rdp.sh: xfreerdp to xrdp): each opening is
/// one flow named rdp with the security protocols asked for and chosen, the routing
/// token kept apart from the cookie, standard security flagged weak, and the odd port
/// flagged.
#[test]
fn rdp_connections_of_a_real_client_are_named_with_their_security() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/rdp");
    // (capture, port, first evidence rule, cookie, routing token, requested, selected)
    let token = "tsv://VMResource.1.3f2504e0-4f89-11d3-9a0c-0305e82c3301";
    let want = [
        (
            "cookie-tls",
            3389,
            "setten.rdp.x224-cookie",
            Some("alice"),
            None,
            vec!["tls", "credssp"],
            "tls",
        ),
        (
            "routing-token",
            3389,
            "setten.rdp.neg-req",
            None,
            Some(token),
            vec!["tls", "credssp"],
            "tls",
        ),
        (
            "standard-security",
            3389,
            "setten.rdp.x224-cookie",
            Some("alice"),
            None,
            vec![],
            "standard",
        ),
        (
            "port-13389",
            13389,
            "setten.rdp.x224-cookie",
            Some("alice"),
            None,
            vec!["tls", "credssp"],
            "tls",
        ),
    ];
    for (name, port, rule, cookie, routing, requested, selected) in want {
        let f = &only_flow(&dir.join(format!("{name}.pcap")));
        assert_eq!(f["service"], "rdp", "{name}: {f}");
        assert_eq!(f["server"]["port"], port, "{name}");
        assert_eq!(f["role_by"], "handshake", "{name}");
        assert_eq!(f["non_standard_port"], port != 3389, "{name}");
        assert_eq!(f["evidence"][0]["rule"], rule, "{name}: {f}");
        let rdp = &f["rdp"];
        assert_eq!(rdp["cookie"].as_str(), cookie, "{name}: {rdp}");
        assert_eq!(rdp["routing_token"].as_str(), routing, "{name}: {rdp}");
        let asked: Vec<&str> = rdp["requested"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(asked, requested, "{name}: {rdp}");
        assert_eq!(rdp["selected"], selected, "{name}: {rdp}");
        let weak = selected == "standard";
        assert_eq!(f["weak"].is_string(), weak, "{name}: {f}");
        // The TLS handshake after the negotiation is read as for any TLS flow (xrdp
        // speaks TLS 1.3, so no certificate is in clear); standard security has none.
        if weak {
            assert!(f.get("tls").is_none(), "{name}: {f}");
        } else {
            assert_eq!(f["tls"]["version"], "1.3", "{name}: {f}");
            assert!(
                f["tls"]["ja4"].as_str().unwrap().starts_with("t13d"),
                "{name}: {f}"
            );
        }
    }
}

/// The corpus IPsec capture: every IKE and NAT-T flow (UDP 500 and 4500) is named ipsec,
/// the one whose first datagram carries an IKE_AUTH payload chain the strict reading
/// refuses (UDP 14500 <-> 109.237.187.225:4500, first seen 18:40:53) included: it is
/// named from the responder's well-formed answer.
#[test]
fn every_ike_and_nat_t_flow_of_the_ipsec_capture_is_named() {
    let flows = flows_of(&corpus().join("ndpi-ipsec_isakmp_esp.pcap"));
    let ike: Vec<_> = flows
        .iter()
        .filter(|f| matches!(f["server"]["port"].as_u64(), Some(500 | 4500)))
        .collect();
    assert_eq!(ike.len(), 48, "{flows:?}");
    for f in &ike {
        assert_eq!(f["service"], "ipsec", "{f}");
    }
    let refused = ike
        .iter()
        .find(|f| {
            f["server"]["ip"] == "109.237.187.225"
                && f["server"]["port"] == 4500
                && f["first_seen"] == "2000-01-01T18:40:53.740000Z"
        })
        .expect("the flow of frame 192");
    assert_eq!(
        refused["evidence"][0]["rule"], "setten.ipsec.ike-nat-t",
        "{refused}"
    );
    assert_eq!(refused["ike"]["exchange"], "IKE_AUTH", "{refused}");
}

/// Real netkit r-command sessions (tests/fixtures/make-rsh.sh): rsh accepted, rsh
/// refused for an unknown user, and rlogin on a terminal are each named rsh, with the
/// remote user as evidence and the flow marked weak (all of it crosses in the clear).
/// rshd's connections back to the client's stderr port carry no opening of their own and
/// stay unnamed.
#[test]
fn netkit_rsh_and_rlogin_sessions_are_named_rsh() {
    let cap = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/rsh.pcap");
    let flows = flows_of(&cap);
    assert_eq!(flows.len(), 5, "{flows:?}");
    // (server port, protocol, evidence field, remote user)
    let want = [
        (514, "rsh", "rsh.server_user", "setten-fixture"),
        (514, "rsh", "rsh.server_user", "no-such-user"),
        (513, "rlogin", "rlogin.server_user", "setten-fixture"),
    ];
    let named: Vec<_> = flows.iter().filter(|f| !f["service"].is_null()).collect();
    assert_eq!(named.len(), want.len(), "{named:?}");
    for (f, (port, protocol, field, user)) in named.iter().zip(want) {
        assert_eq!(f["service"], "rsh", "{f}");
        assert_eq!(f["server"]["port"], port, "{f}");
        assert_eq!(f["protocol"], protocol, "{f}");
        assert_eq!(f["weak"], "rsh", "{f}");
        assert_eq!(f["non_standard_port"], false, "{f}");
        let ev = f["evidence"].as_array().unwrap();
        assert!(
            ev.iter().any(|e| e["field"] == field && e["value"] == user),
            "{f}"
        );
    }
    for f in flows.iter().filter(|f| f["service"].is_null()) {
        // From rshd's reserved port to the stderr port the client announced.
        assert_eq!(f["client"]["ip"], "10.99.0.2", "{f}");
        assert!(f["client"]["port"].as_u64().unwrap() < 1024, "{f}");
    }
}

/// A real X server asking a real display manager for a login (tests/fixtures/
/// make-xdmcp.sh: `Xvfb -query` and xdm): the XDMCP exchange on UDP 177 is named xdmcp
/// with the display manager's host name from its Willing answer, and xdm's X11
/// connections back to the display (TCP 6005) are named xdmcp, protocol x11, weak.
#[test]
fn an_xdmcp_login_and_its_x11_connections_are_named() {
    let cap = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/xdmcp.pcap");
    let flows = flows_of(&cap);
    assert_eq!(flows.len(), 4, "{flows:?}");
    let query = &flows[0];
    assert_eq!(
        (
            &query["transport"],
            &query["server"]["port"],
            &query["service"]
        ),
        (
            &serde_json::json!("udp"),
            &serde_json::json!(177),
            &serde_json::json!("xdmcp")
        ),
        "{query}"
    );
    let ev = query["evidence"].as_array().unwrap();
    assert!(
        ev.iter()
            .any(|e| e["field"] == "xdmcp.opcodes" && e["value"] == "Query, Willing"),
        "{query}"
    );
    assert!(
        ev.iter()
            .any(|e| e["field"] == "xdmcp.hostname" && e["value"] == "setten-dm"),
        "{query}"
    );
    for f in &flows[1..] {
        assert_eq!(f["transport"], "tcp", "{f}");
        // xdm connects to the display it was asked to manage.
        assert_eq!(f["server"]["ip"], "10.99.0.1", "{f}");
        assert_eq!(f["server"]["port"], 6005, "{f}");
        assert_eq!(f["service"], "xdmcp", "{f}");
        assert_eq!(f["protocol"], "x11", "{f}");
        assert_eq!(f["weak"], "x11", "{f}");
    }
}

/// OpenConnect's client and server (tests/fixtures/make-anyconnect.sh) speaking Cisco
/// AnyConnect's protocol with the data channel in Cisco's pre-standard DTLS: the DTLS
/// flow is named ssl-vpn from its version 0x0100 hello that the server resumes; the
/// tunnel's TLS flow, a self-signed certificate and nothing else to tell it apart, is TLS.
#[test]
fn an_anyconnect_legacy_dtls_channel_is_named_ssl_vpn() {
    let cap =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/anyconnect/dtls-legacy.pcap");
    let flows = flows_of(&cap);
    assert_eq!(flows.len(), 2, "{flows:?}");
    let tls = &flows[0];
    assert_eq!(
        (&tls["transport"], &tls["protocol"], &tls["service"]),
        (
            &serde_json::json!("tcp"),
            &serde_json::json!("tls"),
            &serde_json::Value::Null
        ),
        "{tls}"
    );
    let dtls = &flows[1];
    assert_eq!(dtls["transport"], "udp", "{dtls}");
    assert_eq!(dtls["server"]["port"], 443, "{dtls}");
    assert_eq!(dtls["service"], "ssl-vpn", "{dtls}");
    assert_eq!(dtls["protocol"], "dtls", "{dtls}");
    assert_eq!(dtls["evidence"][0]["field"], "dtls.version", "{dtls}");
    assert!(
        dtls["evidence"][0]["value"]
            .as_str()
            .unwrap()
            .starts_with("0x0100 (Cisco pre-standard DTLS)"),
        "{dtls}"
    );
}

/// The corpus's multicast traffic: the IGMP flow of each capture that carries one (a
/// router's general query to all hosts, a TV's report for the SSDP group) is named igmp
/// with its version and message, and no other flow takes the name.
#[test]
fn multicast_memberships_are_named_igmp() {
    for (capture, group, message) in [
        (
            "ndpi-alexa-app.pcapng",
            "224.0.0.1",
            "0x11 membership query, group 0.0.0.0",
        ),
        (
            "ndpi-netflix.pcap",
            "239.255.255.250",
            "0x16 membership report, group 239.255.255.250",
        ),
    ] {
        let flows = flows_of(&corpus().join(capture));
        let igmp: Vec<_> = flows.iter().filter(|f| f["transport"] == "igmp").collect();
        assert_eq!(igmp.len(), 1, "{capture}: {igmp:?}");
        let f = igmp[0];
        assert_eq!(f["server"]["ip"], group, "{capture}: {f}");
        assert_eq!(f["protocol"], "igmp", "{capture}: {f}");
        assert_eq!(f["protocol_version"], "IGMPv2", "{capture}: {f}");
        assert!(f["service"].is_null(), "{capture}: {f}");
        assert_eq!(f["evidence"][0]["field"], "igmp.type", "{capture}: {f}");
        assert_eq!(f["evidence"][0]["value"], message, "{capture}: {f}");
        assert!(
            flows
                .iter()
                .filter(|f| f["transport"] != "igmp")
                .all(|f| f["protocol"] != "igmp"),
            "{capture}"
        );
    }
}

/// A gtk-gnutella node (corpus `ndpi-gnutella.pcap`): its handshakes over TCP, its
/// Gnutella messages and Mojito DHT lookups over UDP and its Gnutella2 frames are all
/// named gnutella, the servent named from the handshake's User-Agent; none of it is
/// taken for remote access or VPN.
#[test]
fn a_file_sharing_node_is_named_gnutella() {
    let flows = flows_of(&corpus().join("ndpi-gnutella.pcap"));
    let named: Vec<_> = flows
        .iter()
        .filter(|f| f["protocol"] == "gnutella")
        .collect();
    let evidence = |prefix: &str| {
        named
            .iter()
            .filter(|f| {
                f["evidence"][0]["value"]
                    .as_str()
                    .is_some_and(|v| v.starts_with(prefix))
            })
            .count()
    };
    assert!(evidence("GNUTELLA CONNECT/0.6") > 0, "{named:?}");
    assert!(evidence("Gnutella ping") > 0);
    assert!(evidence("Gnutella Mojito DHT") > 0);
    assert!(evidence("Gnutella2 QKR") > 0);
    for f in &named {
        assert!(f["service"].is_null(), "{f}");
        if f["transport"] == "tcp" {
            assert!(
                f["product"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("gtk-gnutella/1.2.2")),
                "{f}"
            );
        }
    }
}
