//! Decode: from a captured frame to the transport-level packets the flow table tracks.
//!
//! Link layers: Ethernet (with 802.1Q/QinQ; port-extender tags, Cisco VN-Tag and IEEE
//! 802.1BR E-Tag; MACsec frames protected for integrity only, whose data is in clear),
//! Linux cooked v1/v2, raw IPv4/IPv6 and BSD loopback. The IP and transport layers are
//! sliced with `etherparse`'s lax slices
//! (`LaxIpSlice`, `TcpSlice`, `UdpSlice`: the zero-copy pieces `LaxSlicedPacket` is made of,
//! tolerant of snap-length truncation). Composing them here rather than building a whole
//! `LaxSlicedPacket` per frame avoids copying that large structure on every packet (it
//! showed as a tenth of the run time in profiles) and lets tunnels re-enter at any layer. Tunnels are opened so
//! the inner conversations are seen too: GRE (RFC 2784/2890, and PPTP's enhanced GRE,
//! RFC 2637 section 4.1), IP-in-IP (RFC 2003), 6in4 (RFC 4213), VXLAN (RFC 7348), L2TPv2
//! data (RFC 2661) and GTP-U (3GPP TS 29.281; a local 5G or LTE network's user plane). The outer packet is
//! always reported as well, so the tunnel itself is a flow.
//!
//! What a mirror port may hand over besides plain Ethernet: PPPoE sessions (RFC 2516; the
//! line to the provider on Japanese FLET'S connections), MPLS label stacks (RFC 3032, with
//! an Ethernet pseudowire behind a control word, RFC 4385/4448), and mirrored frames sent
//! on over GRE by a remote SPAN session (ERSPAN types I, II and III,
//! draft-foschiano-erspan-03) or over UDP by TZSP (a router's packet sniffer streaming
//! what it sees). Frames delivered so are the mirrored network's own traffic: they keep
//! the zone of the packet that carried them, so one conversation mirrored by two sessions
//! (one per direction) is one flow. The same holds for wireless clients' frames that an
//! access point tunnels to its controller in CAPWAP data packets (RFC 5415, UDP 5247).
//!
//! IEEE 802.11 data frames (from CAPWAP, or captured on a radio: radiotap or PPI link
//! types) are read up to their LLC/SNAP header; encrypted frames and frames carrying no
//! data are skipped.
//!
//! IPv4 and IPv6 fragments: the first fragment's transport header is parsed by hand
//! (etherparse stops at a fragmented payload) and its ports are remembered, so later
//! fragments count into the same flow.

use crate::capture::LinkType;
use etherparse::{LaxIpSlice, TcpSlice, UdpSlice};

/// Deepest tunnel nesting that is opened.
pub const MAX_TUNNEL_DEPTH: usize = 3;
/// Remembered first fragments; the cache is cleared when it is full.
pub const MAX_FRAGMENT_ENTRIES: usize = 4096;

/// IP protocol numbers used by the flow table (IANA "Assigned Internet Protocol Numbers").
pub mod ipproto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// IGMP.
    pub const IGMP: u8 = 2;
    /// IPv4 encapsulation (IP-in-IP).
    pub const IPIP: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 encapsulation (6in4).
    pub const IPV6: u8 = 41;
    /// GRE.
    pub const GRE: u8 = 47;
    /// ESP.
    pub const ESP: u8 = 50;
    /// AH.
    pub const AH: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// L2TPv3 directly over IP (RFC 3931 section 4.1.1).
    pub const L2TP: u8 = 115;
}

/// An IP address in 16 bytes; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Addr(pub [u8; 16]);

// Addresses order as their bytes do (the order a derived `Ord` on the array gives),
// compared as one big-endian number instead of byte by byte; they hash as one number
// instead of a length and a slice. Every flow lookup orders and hashes two of them.
impl Ord for Addr {
    #[inline]
    fn cmp(&self, other: &Addr) -> std::cmp::Ordering {
        u128::from_be_bytes(self.0).cmp(&u128::from_be_bytes(other.0))
    }
}

impl PartialOrd for Addr {
    #[inline]
    fn partial_cmp(&self, other: &Addr) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for Addr {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from_ne_bytes(self.0));
    }
}

impl Addr {
    /// From IPv4 octets.
    pub fn v4(o: [u8; 4]) -> Addr {
        let mut a = [0u8; 16];
        a[10] = 0xff;
        a[11] = 0xff;
        a[12..].copy_from_slice(&o);
        Addr(a)
    }
    /// As a standard library address.
    pub fn to_ip(self) -> std::net::IpAddr {
        let v6 = std::net::Ipv6Addr::from(self.0);
        match v6.to_ipv4_mapped() {
            Some(v4) => std::net::IpAddr::V4(v4),
            None => std::net::IpAddr::V6(v6),
        }
    }
}

impl From<std::net::IpAddr> for Addr {
    fn from(ip: std::net::IpAddr) -> Addr {
        match ip {
            std::net::IpAddr::V4(v4) => Addr::v4(v4.octets()),
            std::net::IpAddr::V6(v6) => Addr(v6.octets()),
        }
    }
}

/// TCP header fields the flow table needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpMeta {
    /// Sequence number.
    pub seq: u32,
    /// Flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20, ECE, CWR).
    pub flags: u8,
}

/// TCP flag bits.
pub mod tcpflag {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// One transport-level packet of a frame.
#[derive(Clone, Copy, Debug)]
pub struct L4<'a> {
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// IP protocol number.
    pub proto: u8,
    /// Source port (0 where the transport has none).
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// TCP fields, for TCP.
    pub tcp: Option<TcpMeta>,
    /// Transport payload (TCP/UDP payload; the IP payload for other protocols). Empty for
    /// non-first fragments.
    pub payload: &'a [u8],
    /// Bytes at the IP layer (header and payload as on the wire).
    pub ip_len: u32,
    /// Encapsulation zone: 0 for the outermost packet, otherwise a hash of the tunnel, so
    /// equal inner addresses in different tunnels stay apart.
    pub zone: u32,
    /// Outermost VLAN id, 0 when untagged.
    pub vlan: u16,
    /// Tunnel nesting depth (0 = outermost).
    pub depth: u8,
    /// Part of a fragmented IP datagram.
    pub fragment: bool,
    /// Identity of this exact packet for spotting duplicate frames: the IPv4
    /// identification (IPv6: the payload length) and the transport checksum. Two frames in
    /// a row with the same value in one direction are the same packet captured twice (a
    /// SPAN port copying both ingress and egress). 0 when unknown.
    pub fp: u32,
}

/// Why a frame gave no transport packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not IP (ARP, LLDP, STP, …).
    NotIp,
    /// Link type not supported.
    UnsupportedLink,
    /// Too short or malformed.
    Malformed,
    /// A later fragment whose first fragment was not seen.
    OrphanFragment,
}

/// Per-frame result: up to `MAX_TUNNEL_DEPTH + 1` transport packets.
#[derive(Default)]
pub struct Decoded<'a> {
    /// Transport packets, outermost first.
    pub packets: [Option<L4<'a>>; MAX_TUNNEL_DEPTH + 1],
    /// How many are set.
    pub len: usize,
    /// Why nothing (more) was decoded, if so.
    pub skip: Option<Skip>,
}

/// Where a decoder puts what it finds in a frame, outermost packet first.
pub trait Out<'a> {
    /// A transport packet.
    fn push(&mut self, p: L4<'a>);
    /// How many packets were pushed so far.
    fn pushed(&self) -> usize;
    /// Why nothing (more) was decoded.
    fn skip(&mut self, why: Skip);
}

impl<'a> Out<'a> for Decoded<'a> {
    fn push(&mut self, p: L4<'a>) {
        if let Some(slot) = self.packets.get_mut(self.len) {
            *slot = Some(p);
            self.len += 1;
        }
    }
    fn pushed(&self) -> usize {
        self.len
    }
    fn skip(&mut self, why: Skip) {
        self.skip = Some(why);
    }
}

impl<'a> Decoded<'a> {
    /// The decoded packets.
    pub fn iter(&self) -> impl Iterator<Item = &L4<'a>> {
        self.packets.iter().take(self.len).flatten()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct FragKey {
    src: Addr,
    dst: Addr,
    proto: u8,
    ident: u32,
}

/// Decoder with the small state fragments need.
#[derive(Default)]
pub struct Decoder {
    frags: hashbrown::HashMap<FragKey, (u16, u16), foldhash::fast::FixedState>,
}

/// EtherTypes (IEEE 802 numbers).
mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const IPV6: u16 = 0x86dd;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const QINQ_OLD: u16 = 0x9100;
    pub const TEB: u16 = 0x6558;
    /// PPPoE session stage (RFC 2516 section 4); 0x8863 is the discovery stage.
    pub const PPPOE_SESSION: u16 = 0x8864;
    /// MPLS unicast and multicast (RFC 3032, RFC 5332).
    pub const MPLS: u16 = 0x8847;
    pub const MPLS_MULTICAST: u16 = 0x8848;
    /// ERSPAN types I and II (GRE protocol type; type II has a GRE sequence number).
    pub const ERSPAN: u16 = 0x88be;
    /// ERSPAN type III.
    pub const ERSPAN3: u16 = 0x22eb;
    /// Cisco VN-Tag (a fabric extender's port tag; Wireshark packet-vntag.c).
    pub const VNTAG: u16 = 0x8926;
    /// IEEE 802.1BR E-Tag (a bridge port extender's tag).
    pub const ETAG: u16 = 0x893f;
    /// IEEE 802.1AE MACsec.
    pub const MACSEC: u16 = 0x88e5;
}

/// Most MPLS label stack entries read (RFC 3032 sets no limit; real stacks hold a few).
const MAX_MPLS_LABELS: usize = 8;

/// Most tags (VLAN, VN-Tag, E-Tag, MACsec) read in front of the IP header.
const MAX_TAGS: usize = 4;

impl Decoder {
    /// A decoder with an empty fragment cache.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Decodes one frame of the given link type.
    pub fn decode<'a>(&mut self, link: LinkType, data: &'a [u8]) -> Decoded<'a> {
        let mut out = Decoded::default();
        self.decode_to(link, data, &mut out);
        out
    }

    /// Decodes one frame, handing each transport packet to `out` as it is found
    /// (outermost first, at most `MAX_TUNNEL_DEPTH + 1`): nothing is gathered or copied.
    pub fn decode_to<'a>(&mut self, link: LinkType, data: &'a [u8], out: &mut impl Out<'a>) {
        match link {
            LinkType::ETHERNET => self.ether(data, 0, 0, out),
            LinkType::LINUX_SLL => match (data.get(14..16), data.get(16..)) {
                // Linux cooked v1: packet type, ARPHRD, address length, 8 address bytes,
                // protocol (pcap-linktype(7), LINKTYPE_LINUX_SLL).
                (Some(p), Some(rest)) => {
                    self.ether_type(u16::from_be_bytes([p[0], p[1]]), rest, 0, 0, 0, out)
                }
                _ => out.skip(Skip::Malformed),
            },
            LinkType::LINUX_SLL2 => match (data.get(0..2), data.get(20..)) {
                // Linux cooked v2: protocol first, then reserved, ifindex, ARPHRD, type,
                // address length, 8 address bytes (LINKTYPE_LINUX_SLL2).
                (Some(p), Some(rest)) => {
                    self.ether_type(u16::from_be_bytes([p[0], p[1]]), rest, 0, 0, 0, out)
                }
                _ => out.skip(Skip::Malformed),
            },
            LinkType::NULL | LinkType::LOOP => match (data.get(0..4), data.get(4..)) {
                // The family is in the capturing host's byte order for NULL, network order
                // for LOOP; accept both. 2 = AF_INET; 24, 28, 30 = AF_INET6 on BSDs/macOS.
                (Some(f), Some(rest)) => {
                    let le = u32::from_le_bytes([f[0], f[1], f[2], f[3]]);
                    let be = u32::from_be_bytes([f[0], f[1], f[2], f[3]]);
                    let fam = if le < 256 { le } else { be };
                    match fam {
                        2 | 24 | 28 | 30 => self.ip(rest, 0, 0, 0, out),
                        _ => out.skip(Skip::NotIp),
                    }
                }
                _ => out.skip(Skip::Malformed),
            },
            LinkType::RAW
            | LinkType::IPV4
            | LinkType::IPV6
            | LinkType::RAW_BSD12
            | LinkType::RAW_BSD14 => self.ip(data, 0, 0, 0, out),
            LinkType::IEEE802_11 => self.wifi(data, 0, 0, out),
            LinkType::PPP | LinkType::PPP_HDLC | LinkType::C_HDLC => self.serial(data, out),
            LinkType::PPP_ETHER => match pppoe_payload(data) {
                Some(ppp) => self.ppp(ppp, out),
                None => out.skip(Skip::Malformed),
            },
            LinkType::PFLOG => match pflog_payload(data) {
                // AF_INET, then AF_INET6 as OpenBSD and NetBSD, FreeBSD, and macOS number it.
                Some((2 | 24 | 28 | 30, ip)) => self.ip(ip, 0, 0, 0, out),
                Some(_) => not_ip(out),
                None => out.skip(Skip::Malformed),
            },
            LinkType::NFLOG => match nflog_payload(data) {
                Ok(Some(ip)) => self.ip(ip, 0, 0, 0, out),
                // A message about a packet that does not carry it (a copy range of 0).
                Ok(None) => not_ip(out),
                Err(()) => out.skip(Skip::Malformed),
            },
            // Radiotap: version 0, pad, then the little-endian length of the whole radio
            // header (radiotap.org, "Radiotap header").
            LinkType::IEEE802_11_RADIOTAP => match data.get(2..4) {
                Some(&[lo, hi]) if data.first() == Some(&0) => {
                    match data.get(usize::from(u16::from_le_bytes([lo, hi]))..) {
                        Some(frame) => self.wifi(frame, 0, 0, out),
                        None => out.skip(Skip::Malformed),
                    }
                }
                _ => out.skip(Skip::Malformed),
            },
            // PPI: version 0, flags, little-endian header length, then the link type of
            // the frame behind it (PPI specification 1.0, section 3.1).
            LinkType::PPI => match (data.get(2..4), data.get(4..8)) {
                (Some(&[lo, hi]), Some(&[a, b, c, d])) if data.first() == Some(&0) => {
                    let inner = LinkType(u32::from_le_bytes([a, b, c, d]));
                    let frame = data.get(usize::from(u16::from_le_bytes([lo, hi]))..);
                    match (inner, frame) {
                        (LinkType::ETHERNET, Some(f)) => self.ether(f, 0, 0, out),
                        (LinkType::IEEE802_11, Some(f)) => self.wifi(f, 0, 0, out),
                        (_, Some(_)) => out.skip(Skip::UnsupportedLink),
                        (_, None) => out.skip(Skip::Malformed),
                    }
                }
                _ => out.skip(Skip::Malformed),
            },
            _ => out.skip(Skip::UnsupportedLink),
        }
    }

    /// A frame of a serial line: Cisco HDLC ([`cisco_hdlc`]), which routers write under
    /// the PPP link types too (nDPI `example/reader_util.c` reads 9, 50 and 104 alike), or
    /// else PPP.
    fn serial<'a>(&mut self, b: &'a [u8], out: &mut impl Out<'a>) {
        match cisco_hdlc(b) {
            Some((t, rest)) => self.ether_type(t, rest, 0, 0, 0, out),
            None => self.ppp(b, out),
        }
    }

    /// A PPP frame (RFC 1661): IPv4 and IPv6, or an MPLS label stack (RFC 3032 section
    /// 4.3: PPP protocols 0x0281 and 0x0283). Link and network control protocols (LCP,
    /// IPCP, …) carry no conversation.
    fn ppp<'a>(&mut self, b: &'a [u8], out: &mut impl Out<'a>) {
        match gre::ppp_protocol(b) {
            Some((gre::PPP_IPV4 | gre::PPP_IPV6, ip)) => self.ip(ip, 0, 0, 0, out),
            Some((gre::PPP_MPLS | gre::PPP_MPLS_MULTICAST, stack)) => {
                self.mpls(stack, 0, 0, 0, out)
            }
            Some(_) => not_ip(out),
            None => out.skip(Skip::Malformed),
        }
    }

    /// Ethernet II (IEEE 802.3 with EtherType), then VLAN tags.
    fn ether<'a>(&mut self, b: &'a [u8], zone: u32, depth: usize, out: &mut impl Out<'a>) {
        let (Some(t), Some(rest)) = (util_be16(b, 12), b.get(14..)) else {
            return out.skip(Skip::Malformed);
        };
        self.ether_type(t, rest, 0, zone, depth, out);
    }

    /// An IEEE 802.11 data frame (IEEE 802.11-2020 section 9.2-9.3.2): frame control (type
    /// 2 = data), duration, three addresses, sequence control; a fourth address when both
    /// ToDS and FromDS are set; QoS control for QoS subtypes (8-15); HT control when a QoS
    /// frame has the +HTC/Order bit. Then LLC/SNAP (RFC 1042: AA AA 03 and an OUI of 0, or
    /// 00 00 F8 for 802.1H bridge tunnelling) and the EtherType. Protected (encrypted)
    /// frames, frames without data (null subtypes), A-MSDUs and fragments after the first
    /// are skipped.
    fn wifi<'a>(&mut self, b: &'a [u8], zone: u32, depth: usize, out: &mut impl Out<'a>) {
        let (Some(&fc0), Some(&fc1)) = (b.first(), b.get(1)) else {
            return out.skip(Skip::Malformed);
        };
        self.wifi_data(fc0, fc1, b, zone, depth, out);
    }

    /// [`Decoder::wifi`] with the frame control's two bytes given apart from the frame.
    fn wifi_data<'a>(
        &mut self,
        fc0: u8,
        fc1: u8,
        b: &'a [u8],
        zone: u32,
        depth: usize,
        out: &mut impl Out<'a>,
    ) {
        let (kind, subtype) = ((fc0 >> 2) & 0x03, fc0 >> 4);
        let (to_from_ds, protected, order) = (fc1 & 0x03, fc1 & 0x40 != 0, fc1 & 0x80 != 0);
        let qos = subtype & 0x08 != 0;
        // Data frames only, with data (subtypes 4-7 and 12-15 carry none), not encrypted.
        if fc0 & 0x03 != 0 || kind != 2 || subtype & 0x04 != 0 || protected {
            return not_ip(out);
        }
        let mut off = 24 + if to_from_ds == 0x03 { 6 } else { 0 };
        if qos {
            // QoS control, bit 7: an A-MSDU of several subframes.
            match b.get(off) {
                Some(q) if q & 0x80 != 0 => return not_ip(out),
                Some(_) => off += 2,
                None => return out.skip(Skip::Malformed),
            }
            if order {
                off += 4;
            }
        }
        // Sequence control: a fragment number other than 0 continues a frame.
        if b.get(22).is_some_and(|s| s & 0x0f != 0) {
            return not_ip(out);
        }
        match b.get(off..off + 8) {
            Some(&[0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00 | 0xf8, hi, lo]) => match b.get(off + 8..) {
                Some(rest) => {
                    self.ether_type(u16::from_be_bytes([hi, lo]), rest, 0, zone, depth, out)
                }
                None => out.skip(Skip::Malformed),
            },
            Some(_) => not_ip(out),
            None => out.skip(Skip::Malformed),
        }
    }

    /// Payload of the given EtherType: 802.1Q / 802.1ad tags (IEEE 802.1Q 9.6: TCI with
    /// the 12-bit VLAN id, then the inner EtherType), then IP.
    fn ether_type<'a>(
        &mut self,
        mut t: u16,
        mut b: &'a [u8],
        mut vlan: u16,
        zone: u32,
        depth: usize,
        out: &mut impl Out<'a>,
    ) {
        for _ in 0..MAX_TAGS {
            // The tag's length after its EtherType; the next EtherType follows it.
            let len = match t {
                // IEEE 802.1Q: the tag control information, VLAN id in its low 12 bits.
                ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD => {
                    let Some(tci) = util_be16(b, 0) else {
                        return out.skip(Skip::Malformed);
                    };
                    if vlan == 0 {
                        vlan = tci & 0x0fff;
                    }
                    2
                }
                // Direction, pointer, destination and source virtual interfaces.
                ethertype::VNTAG => 4,
                // E-PCP, E-DEI, E-CID bases and extensions (IEEE 802.1BR section 7.5).
                ethertype::ETAG => 6,
                ethertype::MACSEC => match macsec_clear(b) {
                    Some(len) => len,
                    // Encrypted: nothing of the conversation can be read.
                    None => return not_ip(out),
                },
                _ => break,
            };
            let (Some(inner), Some(rest)) = (util_be16(b, len), b.get(len + 2..)) else {
                return out.skip(Skip::Malformed);
            };
            t = inner;
            b = rest;
        }
        match t {
            ethertype::IPV4 | ethertype::IPV6 => self.ip(b, vlan, zone, depth, out),
            ethertype::PPPOE_SESSION => match pppoe_payload(b).map(gre::ppp_ip) {
                Some(Some(ip)) => self.ip(ip, vlan, zone, depth, out),
                // LCP, IPCP and the like carry no conversation.
                Some(None) => not_ip(out),
                None => out.skip(Skip::Malformed),
            },
            ethertype::MPLS | ethertype::MPLS_MULTICAST => self.mpls(b, vlan, zone, depth, out),
            _ => not_ip(out),
        }
    }

    /// Behind an MPLS label stack (RFC 3032 section 2.1: 20-bit label, traffic class,
    /// bottom-of-stack bit, TTL; four bytes each). The stack does not say what follows; as
    /// Wireshark's MPLS dissector does, the first nibble tells: 4 or 6 is IP, 0 is a
    /// pseudowire control word (RFC 4385 section 3) with an Ethernet frame behind it
    /// (RFC 4448).
    fn mpls<'a>(
        &mut self,
        b: &'a [u8],
        vlan: u16,
        zone: u32,
        depth: usize,
        out: &mut impl Out<'a>,
    ) {
        let mut rest = b;
        for _ in 0..MAX_MPLS_LABELS {
            let Some((entry, after)) = rest.split_first_chunk::<4>() else {
                return out.skip(Skip::Malformed);
            };
            rest = after;
            if entry[2] & 0x01 == 0 {
                continue;
            }
            return match rest.first().map(|f| f >> 4) {
                Some(4 | 6) => self.ip(rest, vlan, zone, depth, out),
                Some(0) if depth < MAX_TUNNEL_DEPTH => match rest.get(4..) {
                    Some(frame) => self.ether(frame, zone, depth + 1, out),
                    None => out.skip(Skip::Malformed),
                },
                Some(_) => not_ip(out),
                None => out.skip(Skip::Malformed),
            };
        }
        // No bottom of stack within the entries read.
        out.skip(Skip::Malformed);
    }

    /// An IP packet, sliced with etherparse's `LaxIpSlice` (tolerates a snap length
    /// shorter than the packet), then its transport.
    fn ip<'a>(&mut self, b: &'a [u8], vlan: u16, zone: u32, depth: usize, out: &mut impl Out<'a>) {
        let Ok((ip, _)) = LaxIpSlice::from_slice(b) else {
            return out.skip(Skip::Malformed);
        };
        let (src, dst, ip_len, frag, ident) = match &ip {
            LaxIpSlice::Ipv4(v4) => {
                let h = v4.header();
                let frag = if v4.payload().fragmented {
                    let off = h.fragments_offset().value();
                    Some((u32::from(h.identification()), off == 0))
                } else {
                    None
                };
                (
                    Addr::v4(h.source()),
                    Addr::v4(h.destination()),
                    u32::from(h.total_len()).max(h.slice().len() as u32),
                    frag,
                    h.identification(),
                )
            }
            LaxIpSlice::Ipv6(v6) => {
                let h = v6.header();
                let frag = if v6.payload().fragmented {
                    ipv6_fragment(h.next_header().0, v6.extensions().slice())
                } else {
                    None
                };
                (
                    Addr(h.source()),
                    Addr(h.destination()),
                    40 + u32::from(h.payload_length()),
                    frag,
                    h.payload_length(),
                )
            }
        };
        let ip_payload = ip.payload();
        let proto = ip_payload.ip_number.0;
        let payload = ip_payload.payload;
        // The transport checksum: TCP header bytes 16-17 (RFC 9293 section 3.1), UDP
        // bytes 6-7 (RFC 768).
        let csum = match proto {
            ipproto::TCP => payload.get(16..18),
            ipproto::UDP => payload.get(6..8),
            _ => None,
        }
        .map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
        let fp = if frag.is_some() {
            0
        } else {
            (u32::from(ident) << 16) | u32::from(csum)
        };
        // Each path builds its packet once, in place: a template copied and patched
        // costs a copy of the whole record per packet.
        let l4 = |sport: u16, dport: u16, tcp: Option<TcpMeta>, payload: &'a [u8]| L4 {
            src,
            dst,
            proto,
            sport,
            dport,
            tcp,
            payload,
            ip_len,
            zone,
            vlan,
            depth: depth as u8,
            fragment: frag.is_some(),
            fp,
        };

        // AH (RFC 4302) authenticates without encrypting; etherparse steps over it as an
        // extension header, so `proto` is what it protects. The AH conversation is a flow
        // of its own, and what it protects is decoded too: a tunnel-mode packet's inner
        // IP as a tunnel, a transport-mode packet's transport as usual.
        if frag.is_none() && behind_ah(&ip) {
            let ah = L4 {
                proto: ipproto::AH,
                ..l4(0, 0, None, payload)
            };
            out.push(ah);
            if matches!(proto, ipproto::IPIP | ipproto::IPV6) {
                if depth < MAX_TUNNEL_DEPTH {
                    self.decapsulate(&L4 { proto, ..ah }, vlan, depth, out);
                }
                return;
            }
        }

        if let Some((ident, first)) = frag {
            let key = FragKey {
                src,
                dst,
                proto,
                ident,
            };
            if first {
                match transport_by_hand(proto, payload) {
                    Some((sport, dport, tcp, rest)) => {
                        if self.frags.len() >= MAX_FRAGMENT_ENTRIES {
                            self.frags.clear();
                        }
                        self.frags.insert(key, (sport, dport));
                        out.push(l4(sport, dport, tcp, rest));
                    }
                    None => out.push(l4(0, 0, None, payload)),
                }
            } else if matches!(proto, ipproto::TCP | ipproto::UDP) {
                match self.frags.get(&key) {
                    Some(&(sport, dport)) => out.push(l4(sport, dport, None, &[])),
                    None => out.skip(Skip::OrphanFragment),
                }
            } else {
                out.push(l4(0, 0, None, &[]));
            }
            return;
        }

        match proto {
            ipproto::TCP => match TcpSlice::from_slice(payload) {
                Ok(t) => {
                    let flags = t.header_slice().get(13).copied().unwrap_or(0);
                    out.push(l4(
                        t.source_port(),
                        t.destination_port(),
                        Some(TcpMeta {
                            seq: t.sequence_number(),
                            flags,
                        }),
                        t.payload(),
                    ));
                }
                // A TCP header cut by the snap length: keep the ports if present.
                Err(_) => match transport_by_hand(proto, payload) {
                    Some((sport, dport, tcp, _)) => out.push(l4(sport, dport, tcp, &[])),
                    None => out.skip(Skip::Malformed),
                },
            },
            ipproto::UDP => match UdpSlice::from_slice_lax(payload) {
                Ok(u) => {
                    let p = l4(u.source_port(), u.destination_port(), None, u.payload());
                    out.push(p);
                    if depth < MAX_TUNNEL_DEPTH {
                        self.udp_carried(&p, out);
                    }
                }
                Err(_) => out.skip(Skip::Malformed),
            },
            _ => {
                let p = l4(0, 0, None, payload);
                out.push(p);
                if depth < MAX_TUNNEL_DEPTH {
                    self.decapsulate(&p, vlan, depth, out);
                }
            }
        }
    }

    /// What a UDP packet may carry by its port: VXLAN (RFC 7348 section 5: UDP 4789, flags
    /// with the I bit, 24-bit VNI, then an Ethernet frame); GTP-U (UDP 2152: a G-PDU's
    /// user IP packet, see [`gtpu_payload`]); L2TPv2 data (UDP 1701: a PPP frame, see
    /// [`l2tp_ppp`]); TZSP (UDP 37008: version 1,
    /// type 0 "received", encapsulation 1 = Ethernet, tagged fields up to the END tag, then
    /// the frame; Wireshark packet-tzsp.c); CAPWAP data (RFC 5415 section 4.3, UDP 5247:
    /// preamble version 0 type 0 (type 1 is DTLS), HLEN in 4-byte words, then an 802.3
    /// frame, or with the T bit a native frame of the wireless binding, 1 = IEEE 802.11;
    /// keep-alives (K) and fragments after the first carry no frame).
    fn udp_carried<'a>(&mut self, p: &L4<'a>, out: &mut impl Out<'a>) {
        let depth = usize::from(p.depth);
        let b = p.payload;
        let port = |n: u16| p.dport == n || p.sport == n;
        if p.dport == 4789 {
            if let (Some(&flags), Some(&[v0, v1, v2]), Some(inner)) =
                (b.first(), b.get(4..7), b.get(8..))
            {
                if flags & 0x08 != 0 {
                    let z = tunnel_zone(p, u32::from_be_bytes([0, v0, v1, v2]));
                    self.ether(inner, z, depth + 1, out);
                }
            }
        } else if port(2152) {
            // The user's addresses are the mobile network's own: they get a zone of the
            // tunnel's endpoints (one for both directions, whose TEIDs differ).
            if let Some(inner) = gtpu_payload(b) {
                if matches!(inner.first().map(|v| v >> 4), Some(4 | 6)) {
                    let z = tunnel_zone(p, GTPU_ZONE);
                    self.ip(inner, p.vlan, z, depth + 1, out);
                }
            }
        } else if port(1701) {
            // As for GTP-U, one zone for the tunnel: each side names the other's tunnel
            // id in what it sends.
            if let Some(ip) = l2tp_ppp(b).and_then(gre::ppp_ip) {
                self.ip(ip, p.vlan, tunnel_zone(p, L2TP_ZONE), depth + 1, out);
            }
        } else if port(37008) {
            if let Some(frame) = tzsp_frame(b) {
                self.ether(frame, p.zone, depth + 1, out);
            }
        } else if port(5247) {
            let (Some(&[0x00, h1, h2, flags]), Some(&[f0, f1])) = (b.get(..4), b.get(6..8)) else {
                return;
            };
            let hlen = usize::from(h1 >> 3) * 4;
            let (native, wbid) = (h2 & 0x01 != 0, (h2 >> 1) & 0x1f);
            let (fragment, keep_alive) = (flags & 0x80 != 0, flags & 0x08 != 0);
            let offset = u16::from_be_bytes([f0, f1]) >> 3;
            if hlen < 8 || keep_alive || (fragment && offset != 0) {
                return;
            }
            let Some(frame) = b.get(hlen..) else { return };
            match (native, wbid) {
                (false, _) => self.ether(frame, p.zone, depth + 1, out),
                // Some access points send the frame control's two bytes swapped
                // (Wireshark's CAPWAP preference "Swap frame control", on by default):
                // where only the second byte reads as a data frame, they are swapped back.
                (true, 1) => match (frame.first(), frame.get(1)) {
                    (Some(&a), Some(&b)) if a & 0x0f != 0x08 && b & 0x0f == 0x08 => {
                        self.wifi_data(b, a, frame, p.zone, depth + 1, out)
                    }
                    _ => self.wifi(frame, p.zone, depth + 1, out),
                },
                _ => {}
            }
        }
    }

    fn decapsulate<'a>(&mut self, outer: &L4<'a>, vlan: u16, depth: usize, out: &mut impl Out<'a>) {
        let zone = tunnel_zone(outer, u32::from(outer.proto));
        match outer.proto {
            ipproto::IPIP | ipproto::IPV6 => self.ip(outer.payload, vlan, zone, depth + 1, out),
            ipproto::GRE => {
                if let Some(g) = gre::parse(outer.payload) {
                    let zone = tunnel_zone(outer, g.key.unwrap_or(0) ^ 0x4752_4500);
                    match (g.protocol, g.version) {
                        (ethertype::TEB, 0) => self.ether(g.payload, zone, depth + 1, out),
                        (ethertype::ERSPAN | ethertype::ERSPAN3, 0) => {
                            if let Some(frame) = erspan_frame(&g) {
                                self.ether(frame, outer.zone, depth + 1, out);
                            }
                        }
                        // The protocol type is an EtherType (RFC 2784 section 2.4): IP,
                        // MPLS (RFC 4023) and the rest are read as behind Ethernet.
                        (t, 0) => self.ether_type(t, g.payload, vlan, zone, depth + 1, out),
                        (gre::PPP, 1) => {
                            if let Some(ip) = gre::ppp_ip(g.payload) {
                                self.ip(ip, vlan, zone, depth + 1, out);
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
}

/// A frame that carries no IP is counted as such, unless an outer packet of it was
/// already handed on (then the frame counts as that packet's).
fn not_ip<'a>(out: &mut impl Out<'a>) {
    if out.pushed() == 0 {
        out.skip(Skip::NotIp);
    }
}

/// The length of a MACsec SecTAG after its EtherType when the frame is only
/// integrity-protected, so the user's EtherType and data follow in clear (IEEE 802.1AE-2018
/// section 9.3: TCI and association number, short length, packet number, and the secure
/// channel identifier when the SC bit is set; the ICV trailing the data is left out by the
/// IP length). `None` for an encrypted or modified frame (E or C set) and a version other
/// than 0.
fn macsec_clear(b: &[u8]) -> Option<usize> {
    let &tci = b.first()?;
    if tci & 0x80 != 0 || tci & 0x0c != 0 {
        return None;
    }
    Some(if tci & 0x20 != 0 { 14 } else { 6 })
}

/// The PPP frame of a PPPoE session packet (RFC 2516 section 4: version 1 and type 1 in
/// the first byte, code 0x00, session id, then the length of the PPP frame). A frame cut
/// by the snap length keeps what was captured. `None` when it is not a session packet.
fn pppoe_payload(b: &[u8]) -> Option<&[u8]> {
    let (&[vt, code, _, _, hi, lo], rest) = b.split_first_chunk::<6>()?;
    if vt != 0x11 || code != 0 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    Some(rest.get(..len).unwrap_or(rest))
}

/// The EtherType and payload of a Cisco HDLC frame: address 0x0F (unicast) or 0x8F
/// (broadcast), control 0, then the EtherType (Wireshark `packet-chdlc.c`). `None` when
/// the frame does not start so (it is then PPP).
fn cisco_hdlc(b: &[u8]) -> Option<(u16, &[u8])> {
    match b {
        [0x0f | 0x8f, 0x00, hi, lo, rest @ ..] => Some((u16::from_be_bytes([*hi, *lo]), rest)),
        _ => None,
    }
}

/// The IP packet of a frame from a serial line (Cisco HDLC, PPP) or a firewall log
/// (NFLOG, pflog), without decoding it: for code that needs only its outermost addresses
/// (the live capture's choice of worker). `None` for other link types and for frames
/// that carry no IP packet.
pub fn serial_or_log_ip(link: LinkType, d: &[u8]) -> Option<&[u8]> {
    match link {
        LinkType::PPP | LinkType::PPP_HDLC | LinkType::C_HDLC => match cisco_hdlc(d) {
            Some((t, rest)) => matches!(t, ethertype::IPV4 | ethertype::IPV6).then_some(rest),
            None => gre::ppp_ip(d),
        },
        LinkType::PPP_ETHER => pppoe_payload(d).and_then(gre::ppp_ip),
        LinkType::PFLOG => pflog_payload(d).map(|(_, ip)| ip),
        LinkType::NFLOG => nflog_payload(d).ok().flatten(),
        _ => None,
    }
}

/// Shortest and longest pflog header lengths (the older OpenBSD header without padding,
/// and OpenBSD's with the rewritten addresses; tcpdump `print-pflog.c`).
const PFLOG_HEADER: std::ops::RangeInclusive<u8> = 45..=100;

/// The address family and the packet of a pflog record: the header's length in its first
/// byte (padded to four bytes in the record), the family in its second (tcpdump
/// `print-pflog.c`, `pflog_if_print`). `None` for a length outside [`PFLOG_HEADER`] or a
/// record shorter than its header.
fn pflog_payload(b: &[u8]) -> Option<(u8, &[u8])> {
    let (&[len, af], _) = b.split_first_chunk::<2>()?;
    if !PFLOG_HEADER.contains(&len) {
        return None;
    }
    Some((af, b.get(usize::from(len).next_multiple_of(4)..)?))
}

/// NFLOG attribute holding the logged packet (`NFULA_PAYLOAD`, Linux
/// `include/uapi/linux/netfilter/nfnetlink_log.h`).
const NFULA_PAYLOAD: u16 = 9;
/// TLVs walked in one NFLOG message before giving up (the kernel writes about a dozen).
const MAX_NFLOG_TLVS: usize = 64;

/// The packet an NFLOG message logged (tcpdump.org, LINKTYPE_NFLOG): family, version 0,
/// resource id, then TLVs of a 16-bit length (header included) and a 16-bit type, each
/// padded to four bytes. Length and type are in the byte order of the host that wrote
/// the capture, which the frame does not name: the first TLV's length is read both ways
/// and the smaller that fits the frame wins (a short length read the wrong way round is
/// a multiple of 256). A packet cut by the kernel's
/// copy range or the snap length keeps what was captured. `Ok(None)` when no TLV holds
/// the packet; `Err` for a message that does not parse.
fn nflog_payload(b: &[u8]) -> Result<Option<&[u8]>, ()> {
    let (&[_family, version, _, _], mut rest) = b.split_first_chunk::<4>().ok_or(())?;
    if version != 0 {
        return Err(());
    }
    let Some(&first) = rest.first_chunk::<2>() else {
        return Ok(None);
    };
    let fits = |len: u16| (4..=rest.len()).contains(&usize::from(len));
    let (le, be) = (u16::from_le_bytes(first), u16::from_be_bytes(first));
    let little = fits(le) && (le <= be || !fits(be));
    let read = |two: [u8; 2]| {
        if little {
            u16::from_le_bytes(two)
        } else {
            u16::from_be_bytes(two)
        }
    };
    for _ in 0..MAX_NFLOG_TLVS {
        let Some((&[l0, l1, t0, t1], _)) = rest.split_first_chunk::<4>() else {
            return Ok(None);
        };
        let len = usize::from(read([l0, l1]));
        if len < 4 {
            return Err(());
        }
        // The high bit of the type marks a nested attribute (NLA_F_NESTED).
        let kind = read([t0, t1]) & 0x7fff;
        let value = rest.get(4..len).or_else(|| rest.get(4..));
        if kind == NFULA_PAYLOAD {
            return Ok(value.filter(|v| !v.is_empty()));
        }
        let Some(next) = rest.get(len.next_multiple_of(4)..) else {
            return Ok(None);
        };
        rest = next;
    }
    Ok(None)
}

/// Mixed into the zone of a GTP-U tunnel's inner packets ("GTPU").
const GTPU_ZONE: u32 = 0x4754_5055;
/// Mixed into the zone of an L2TP tunnel's inner packets ("L2TP").
const L2TP_ZONE: u32 = 0x4c32_5450;

/// The PPP frame of an L2TPv2 data message (RFC 2661 section 3.1: the T bit clear,
/// version 2; the length when L is set, the tunnel and session ids, Ns and Nr when S is
/// set, the offset size and its padding when O is set). A message cut by the snap length
/// keeps what was captured. `None` for control messages (T set), L2TPv3 (whose data
/// carries a pseudowire, not PPP) and headers that do not fit.
fn l2tp_ppp(b: &[u8]) -> Option<&[u8]> {
    let (&[flags, version], mut rest) = b.split_first_chunk::<2>()?;
    if flags & 0x80 != 0 || version & 0x0f != 2 {
        return None;
    }
    if flags & 0x40 != 0 {
        let (&[hi, lo], after) = rest.split_first_chunk::<2>()?;
        // The length counts the whole message from its first byte.
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        rest = after.get(..len.checked_sub(4)?).unwrap_or(after);
    }
    let (_tunnel_and_session, after) = rest.split_first_chunk::<4>()?;
    rest = after;
    if flags & 0x08 != 0 {
        rest = rest.get(4..)?;
    }
    if flags & 0x02 != 0 {
        let (&[hi, lo], after) = rest.split_first_chunk::<2>()?;
        rest = after.get(usize::from(u16::from_be_bytes([hi, lo]))..)?;
    }
    Some(rest)
}

/// The user's IP packet in a GTP-U G-PDU (3GPP TS 29.281 section 5.1: version 1 and
/// protocol type 1 in the flags, message type 255, the length of what follows the eight
/// mandatory bytes, the TEID; with any of the E, S and PN flags set, four more bytes:
/// sequence number, N-PDU number and the next extension header type, read only with E.
/// Section 5.2: each extension header is its length in four-byte units, its content and
/// the next type, 0 ending the chain). A packet cut by the snap length keeps what was
/// captured. `None` for the other messages (echo, error indication, end marker), GTP'
/// (protocol type 0) and chains that do not fit the packet. nDPI's reader opens the same
/// packets (example/reader_util.c, GTP_U_V1_PORT).
fn gtpu_payload(b: &[u8]) -> Option<&[u8]> {
    let (&[flags, message, hi, lo, ..], rest) = b.split_first_chunk::<8>()?;
    if flags >> 5 != 1 || flags & 0x10 == 0 || message != 0xff {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    let mut rest = rest.get(..len).unwrap_or(rest);
    if flags & 0x07 != 0 {
        let (&[_, _, _, next], after) = rest.split_first_chunk::<4>()?;
        rest = after;
        let mut next = if flags & 0x04 != 0 { next } else { 0 };
        // Each extension header takes at least four bytes, so the loop ends within the
        // packet.
        while next != 0 {
            let units = usize::from(*rest.first()?);
            if units == 0 {
                return None;
            }
            let (ext, after) = rest.split_at_checked(units * 4)?;
            next = *ext.last()?;
            rest = after;
        }
    }
    Some(rest)
}

/// The Ethernet frame of a TZSP packet (version 1, type 0, encapsulation 1), behind its
/// tagged fields: tag 0 is one byte of padding, tag 1 ends the list, any other tag has a
/// length byte (Wireshark packet-tzsp.c).
fn tzsp_frame(b: &[u8]) -> Option<&[u8]> {
    if b.get(..4)? != [1, 0, 0, 1] {
        return None;
    }
    let mut off = 4usize;
    // Each tag takes at least one byte, so the loop ends within the packet.
    loop {
        match *b.get(off)? {
            0 => off += 1,
            1 => return b.get(off + 1..),
            _ => off += 2 + usize::from(*b.get(off + 1)?),
        }
    }
}

/// The mirrored Ethernet frame an ERSPAN packet carries (draft-foschiano-erspan-03;
/// Linux include/net/erspan.h). Type I (0x88be without a GRE sequence number) has no
/// header of its own; type II (0x88be with one) an eight-byte header, version 1; type III
/// (0x22eb) a twelve-byte header, version 2, and eight more bytes of platform-specific
/// subheader when its last bit (O) is set.
fn erspan_frame<'a>(g: &gre::Gre<'a>) -> Option<&'a [u8]> {
    let b = g.payload;
    let version = b.first().map(|v| v >> 4);
    match g.protocol {
        ethertype::ERSPAN if !g.sequenced => Some(b),
        ethertype::ERSPAN if version == Some(1) => b.get(8..),
        ethertype::ERSPAN3 if version == Some(2) => {
            let o = b.get(11)? & 0x01 != 0;
            b.get(if o { 20 } else { 12 }..)
        }
        _ => None,
    }
}

/// Whether an authentication header (IP protocol 51) came between the IP header and
/// the payload etherparse reports.
fn behind_ah(ip: &LaxIpSlice<'_>) -> bool {
    match ip {
        LaxIpSlice::Ipv4(v4) => v4.header().protocol().0 == ipproto::AH,
        // Walked by hand over the extension bytes etherparse kept: its iterator over a
        // lax slice can read past the end (found by fuzzing, etherparse 0.21).
        LaxIpSlice::Ipv6(v6) => ipv6_has_ah(v6.header().next_header().0, v6.extensions().slice()),
    }
}

/// Whether an IPv6 extension chain (first next-header value, then the extension bytes)
/// holds an authentication header before the upper layer.
fn ipv6_has_ah(first: u8, exts: &[u8]) -> bool {
    let mut next = first;
    let mut off = 0usize;
    for _ in 0..8 {
        let len = match next {
            ipproto::AH => return true,
            44 => 8,
            0 | 43 | 60 => match exts.get(off + 1) {
                Some(&l) => (usize::from(l) + 1) * 8,
                None => return false,
            },
            _ => return false,
        };
        match exts.get(off) {
            Some(&n) => next = n,
            None => return false,
        }
        off += len;
    }
    false
}

fn util_be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes([
        *b.get(off)?,
        *b.get(off.checked_add(1)?)?,
    ]))
}

/// GRE header parsing (RFC 2784, RFC 2890 keys and sequence numbers; RFC 2637 section 4.1
/// enhanced GRE for PPTP).
pub mod gre {
    /// PPP in enhanced GRE.
    pub const PPP: u16 = 0x880b;

    /// A parsed GRE header.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Gre<'a> {
        /// Version: 0 plain GRE, 1 enhanced GRE (PPTP).
        pub version: u8,
        /// Protocol type (an EtherType).
        pub protocol: u16,
        /// Key field (plain GRE) or payload length and call id (enhanced GRE).
        pub key: Option<u32>,
        /// A sequence number is present (the S bit).
        pub sequenced: bool,
        /// What follows the header.
        pub payload: &'a [u8],
    }

    /// Parses a GRE header; `None` when too short or of an unknown version.
    pub fn parse(b: &[u8]) -> Option<Gre<'_>> {
        let flags = *b.first()?;
        let ver = b.get(1)? & 0x07;
        let protocol = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
        let c = flags & 0x80 != 0;
        let k = flags & 0x20 != 0;
        let s = flags & 0x10 != 0;
        let mut off = 4usize;
        let mut key = None;
        match ver {
            0 => {
                if c {
                    off += 4;
                }
                if k {
                    let kb = b.get(off..off + 4)?;
                    key = Some(u32::from_be_bytes([kb[0], kb[1], kb[2], kb[3]]));
                    off += 4;
                }
                if s {
                    off += 4;
                }
            }
            1 => {
                // Enhanced GRE: K is always set (payload length, call id); A (ack) in the
                // second byte's high bit.
                let a = b.get(1)? & 0x80 != 0;
                let kb = b.get(off..off + 4)?;
                key = Some(u32::from_be_bytes([kb[0], kb[1], kb[2], kb[3]]));
                off += 4;
                if s {
                    off += 4;
                }
                if a {
                    off += 4;
                }
            }
            _ => return None,
        }
        Some(Gre {
            version: ver,
            protocol,
            key,
            sequenced: s,
            payload: b.get(off..)?,
        })
    }

    /// PPP protocol: IPv4 (RFC 1332).
    pub const PPP_IPV4: u16 = 0x0021;
    /// PPP protocol: IPv6 (RFC 5072).
    pub const PPP_IPV6: u16 = 0x0057;
    /// PPP protocol: MPLS unicast (RFC 3032 section 4.3).
    pub const PPP_MPLS: u16 = 0x0281;
    /// PPP protocol: MPLS multicast.
    pub const PPP_MPLS_MULTICAST: u16 = 0x0283;

    /// The protocol of a PPP frame and what follows it (RFC 1661; the address and
    /// control fields may be there or not, and the protocol may be compressed to one
    /// byte, RFC 1661 sections 6.5-6.6). `None` when too short for the protocol.
    pub fn ppp_protocol(b: &[u8]) -> Option<(u16, &[u8])> {
        let b = if b.starts_with(&[0xff, 0x03]) {
            b.get(2..)?
        } else {
            b
        };
        let first = *b.first()?;
        if first & 1 == 1 {
            Some((u16::from(first), b.get(1..)?))
        } else {
            Some((u16::from_be_bytes([first, *b.get(1)?]), b.get(2..)?))
        }
    }

    /// The IP packet inside a PPP frame, if it carries one unencrypted.
    pub fn ppp_ip(b: &[u8]) -> Option<&[u8]> {
        match ppp_protocol(b)? {
            (PPP_IPV4 | PPP_IPV6, rest) => Some(rest),
            _ => None,
        }
    }
}

fn tunnel_zone(outer: &L4<'_>, extra: u32) -> u32 {
    // FNV-1a over the outer endpoints: cheap, stable across runs.
    let mut h: u32 = 0x811c_9dc5;
    let (a, b) = if outer.src <= outer.dst {
        (outer.src, outer.dst)
    } else {
        (outer.dst, outer.src)
    };
    for byte in
        a.0.iter()
            .chain(b.0.iter())
            .chain(extra.to_be_bytes().iter())
    {
        h ^= u32::from(*byte);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.wrapping_add(outer.zone).max(1)
}

type ByHand<'a> = (u16, u16, Option<TcpMeta>, &'a [u8]);

/// Ports (and TCP fields) from a first fragment's payload (RFC 793 section 3.1, RFC 768).
fn transport_by_hand(proto: u8, b: &[u8]) -> Option<ByHand<'_>> {
    let sport = u16::from_be_bytes([*b.first()?, *b.get(1)?]);
    let dport = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    match proto {
        ipproto::TCP => {
            let seq = u32::from_be_bytes([*b.get(4)?, *b.get(5)?, *b.get(6)?, *b.get(7)?]);
            let doff = usize::from(b.get(12)? >> 4) * 4;
            let flags = *b.get(13)?;
            let payload = b.get(doff.max(20)..).unwrap_or(&[]);
            Some((sport, dport, Some(TcpMeta { seq, flags }), payload))
        }
        ipproto::UDP => Some((sport, dport, None, b.get(8..).unwrap_or(&[]))),
        _ => None,
    }
}

/// Finds the fragment header among IPv6 extension headers (RFC 8200 section 4.5):
/// identification and whether this is the first fragment.
fn ipv6_fragment(first: u8, exts: &[u8]) -> Option<(u32, bool)> {
    let mut next = first;
    let all = exts;
    let mut off = 0usize;
    for _ in 0..8 {
        match next {
            44 => {
                let f = all.get(off..off + 8)?;
                let offset = u16::from_be_bytes([f[2], f[3]]) >> 3;
                let ident = u32::from_be_bytes([f[4], f[5], f[6], f[7]]);
                return Some((ident, offset == 0));
            }
            0 | 43 | 60 => {
                next = *all.get(off)?;
                off += (usize::from(*all.get(off + 1)?) + 1) * 8;
            }
            51 => {
                next = *all.get(off)?;
                off += (usize::from(*all.get(off + 1)?) + 2) * 4;
            }
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp_frame(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [192, 0, 2, 7], 64)
            .tcp(50000, 3389, 1000, 65535)
            .syn();
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    /// Addresses order as their bytes do, whichever byte differs first, so flow keys
    /// put the same endpoint first as before.
    #[test]
    fn addresses_order_as_their_bytes() {
        let mut addrs = vec![Addr::default(), Addr([0xff; 16])];
        for i in 0..16 {
            for v in [1u8, 0x7f, 0x80, 0xfe] {
                let mut a = [0u8; 16];
                a[i] = v;
                addrs.push(Addr(a));
                let mut b = [0x55u8; 16];
                b[i] = v;
                addrs.push(Addr(b));
            }
        }
        addrs.push(Addr::v4([10, 0, 0, 1]));
        addrs.push(Addr::v4([192, 0, 2, 7]));
        for a in &addrs {
            for b in &addrs {
                assert_eq!(a.cmp(b), a.0.cmp(&b.0), "{a:?} {b:?}");
                assert_eq!(a == b, a.0 == b.0);
            }
        }
    }

    #[test]
    fn ethernet_tcp() {
        let f = tcp_frame(b"hi");
        let mut d = Decoder::new();
        let out = d.decode(LinkType::ETHERNET, &f);
        let p = out.iter().next().unwrap();
        assert_eq!((p.sport, p.dport, p.proto), (50000, 3389, ipproto::TCP));
        assert_eq!(p.payload, b"hi");
        assert_eq!(p.tcp.unwrap().flags & tcpflag::SYN, tcpflag::SYN);
        assert_eq!(p.dst.to_ip().to_string(), "192.0.2.7");
    }

    #[test]
    fn qinq_vlan_is_read() {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .double_vlan(
                etherparse::VlanId::try_new(100).unwrap(),
                etherparse::VlanId::try_new(200).unwrap(),
            )
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 53);
        let mut v = Vec::new();
        b.write(&mut v, b"x").unwrap();
        let mut d = Decoder::new();
        let out = d.decode(LinkType::ETHERNET, &v);
        let p = out.iter().next().unwrap();
        assert_eq!(p.vlan, 100);
        assert_eq!(p.dport, 53);
    }

    #[test]
    fn linux_cooked_v1_and_v2() {
        let eth = tcp_frame(b"");
        let ip = &eth[14..];
        let mut sll = vec![0u8; 16];
        sll[14..16].copy_from_slice(&0x0800u16.to_be_bytes());
        sll.extend_from_slice(ip);
        let mut sll2 = vec![0u8; 20];
        sll2[0..2].copy_from_slice(&0x0800u16.to_be_bytes());
        sll2.extend_from_slice(ip);
        let mut d = Decoder::new();
        for (link, f) in [(LinkType::LINUX_SLL, sll), (LinkType::LINUX_SLL2, sll2)] {
            let out = d.decode(link, &f);
            assert_eq!(out.iter().next().map(|p| p.dport), Some(3389), "{link}");
        }
    }

    #[test]
    fn bsd_null_and_raw() {
        let eth = tcp_frame(b"");
        let ip = &eth[14..];
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(ip);
        let mut d = Decoder::new();
        assert_eq!(d.decode(LinkType::NULL, &null).len, 1);
        assert_eq!(d.decode(LinkType::RAW, ip).len, 1);
        assert_eq!(
            d.decode(LinkType(9999), ip).skip,
            Some(Skip::UnsupportedLink)
        );
    }

    #[test]
    fn gre_inner_flow_is_decoded_and_outer_kept() {
        let inner = tcp_frame(b"abc");
        let inner_ip = &inner[14..];
        let mut gre = vec![0x00, 0x00, 0x08, 0x00];
        gre.extend_from_slice(inner_ip);
        let b = PacketBuilder::ipv4([198, 51, 100, 1], [203, 0, 113, 1], 64);
        let mut v = Vec::new();
        b.write(&mut v, etherparse::IpNumber(47), &gre).unwrap();
        let mut d = Decoder::new();
        let out = d.decode(LinkType::RAW, &v);
        let ps: Vec<_> = out.iter().collect();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].proto, ipproto::GRE);
        assert_eq!(ps[1].dport, 3389);
        assert_eq!(ps[1].payload, b"abc");
        assert_ne!(ps[1].zone, 0);
    }

    /// An authentication header (RFC 4302 section 2): next header, payload length in
    /// 32-bit words minus 2, reserved, SPI, sequence number, then a 12-byte ICV
    /// (HMAC-SHA1-96).
    fn ah(next: u8, inner: &[u8]) -> Vec<u8> {
        let mut h = vec![next, 4, 0, 0, 0xc1, 0xa0, 0xb0, 0x01, 0, 0, 0, 1];
        h.extend_from_slice(&[0xab; 12]);
        h.extend_from_slice(inner);
        h
    }

    #[test]
    fn ah_is_a_flow_of_its_own_and_what_it_protects_is_decoded() {
        let inner = tcp_frame(b"abc");
        let b = || PacketBuilder::ipv4([198, 51, 100, 1], [203, 0, 113, 1], 64);
        let mut d = Decoder::new();
        // Tunnel mode: AH, then a whole IPv4 packet.
        let mut v = Vec::new();
        b().write(&mut v, etherparse::IpNumber(51), &ah(4, &inner[14..]))
            .unwrap();
        let out = d.decode(LinkType::RAW, &v);
        let ps: Vec<_> = out.iter().collect();
        assert_eq!(ps.len(), 2, "{ps:?}");
        assert_eq!((ps[0].proto, ps[0].depth, ps[0].zone), (ipproto::AH, 0, 0));
        assert_eq!(
            (ps[1].proto, ps[1].dport, ps[1].payload),
            (ipproto::TCP, 3389, &b"abc"[..])
        );
        assert_ne!(ps[1].zone, 0);
        // Transport mode: AH, then the TCP segment between the same hosts.
        let tcp = &inner[14 + 20..];
        let mut v = Vec::new();
        b().write(&mut v, etherparse::IpNumber(51), &ah(6, tcp))
            .unwrap();
        let mut d = Decoder::new();
        let out = d.decode(LinkType::RAW, &v);
        let ps: Vec<_> = out.iter().collect();
        assert_eq!(ps.len(), 2, "{ps:?}");
        assert_eq!(ps[0].proto, ipproto::AH);
        assert_eq!((ps[1].proto, ps[1].zone), (ipproto::TCP, 0));
        assert_eq!(ps[1].payload, b"abc");
        // IPv6 with AH in its extension chain.
        let mut v = Vec::new();
        PacketBuilder::ipv6([0x20; 16], [0x30; 16], 64)
            .write(&mut v, etherparse::IpNumber(51), &ah(6, tcp))
            .unwrap();
        let mut d = Decoder::new();
        let out = d.decode(LinkType::RAW, &v);
        let ps: Vec<_> = out.iter().collect();
        assert_eq!(ps[0].proto, ipproto::AH, "{ps:?}");
        assert_eq!(ps[1].proto, ipproto::TCP);
    }

    #[test]
    fn pptp_enhanced_gre_with_plain_ppp_ip() {
        // RFC 2637 4.1: flags K+S, version 1, protocol 0x880b, payload length, call id, seq.
        let inner = tcp_frame(b"z");
        let mut gre = vec![0x30, 0x01, 0x88, 0x0b, 0x00, 0x10, 0x00, 0x01, 0, 0, 0, 1];
        gre.extend_from_slice(&[0xff, 0x03, 0x00, 0x21]);
        gre.extend_from_slice(&inner[14..]);
        let g = gre::parse(&gre).unwrap();
        assert_eq!((g.version, g.protocol), (1, gre::PPP));
        assert!(gre::ppp_ip(g.payload).is_some());
    }

    #[test]
    fn ipv4_fragments_count_into_the_first_fragments_flow() {
        // First fragment: UDP header + 8 payload bytes, MF set; second: rest.
        let mut first = vec![
            0x45, 0, 0, 36, 0x12, 0x34, 0x20, 0x00, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        first.extend_from_slice(&[0x04, 0xd2, 0x11, 0x94, 0, 24, 0, 0]);
        first.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut second = vec![
            0x45, 0, 0, 28, 0x12, 0x34, 0x00, 0x02, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        second.extend_from_slice(&[9, 10, 11, 12, 13, 14, 15, 16]);
        let mut d = Decoder::new();
        let a = d.decode(LinkType::RAW, &first);
        let p = a.iter().next().unwrap();
        assert_eq!((p.sport, p.dport, p.fragment), (1234, 4500, true));
        let b = d.decode(LinkType::RAW, &second);
        let q = b.iter().next().unwrap();
        assert_eq!((q.sport, q.dport, q.payload.len()), (1234, 4500, 0));
        let mut fresh = Decoder::new();
        assert_eq!(
            fresh.decode(LinkType::RAW, &second).skip,
            Some(Skip::OrphanFragment)
        );
    }

    #[test]
    fn vxlan_inner_ethernet_flow() {
        // RFC 7348 section 5: outer UDP to 4789, flags 0x08 (VNI valid), VNI 4242, then an
        // Ethernet frame carrying the inner TCP packet.
        let inner = tcp_frame(b"in");
        let mut vx = vec![0x08, 0, 0, 0, 0x00, 0x10, 0x92, 0];
        vx.extend_from_slice(&inner);
        let b = PacketBuilder::ipv4([198, 51, 100, 1], [198, 51, 100, 2], 64).udp(40000, 4789);
        let mut v = Vec::new();
        b.write(&mut v, &vx).unwrap();
        let mut d = Decoder::new();
        let out = d.decode(LinkType::RAW, &v);
        let ps: Vec<_> = out.iter().collect();
        assert_eq!(ps.len(), 2);
        assert_eq!((ps[0].proto, ps[0].dport), (ipproto::UDP, 4789));
        assert_eq!((ps[1].dport, ps[1].payload), (3389, &b"in"[..]));
        assert_eq!(ps[1].depth, 1);
        assert_ne!(ps[1].zone, 0);
    }

    /// A decoder output that keeps what it is handed, as the packet path takes it.
    #[derive(Default)]
    struct Handed<'a> {
        packets: Vec<L4<'a>>,
        skips: Vec<Skip>,
    }

    impl<'a> Out<'a> for Handed<'a> {
        fn push(&mut self, p: L4<'a>) {
            self.packets.push(p);
        }
        fn pushed(&self) -> usize {
            self.packets.len()
        }
        fn skip(&mut self, why: Skip) {
            self.skips.push(why);
        }
    }

    #[test]
    fn handed_packets_are_the_gathered_ones_in_order() {
        // VXLAN inside GRE inside IPv4: three packets, outermost first, by either API; an
        // ARP frame gives none and says why.
        let inner = tcp_frame(b"in");
        let mut vx = vec![0x08, 0, 0, 0, 0x00, 0x10, 0x92, 0];
        vx.extend_from_slice(&inner);
        let mut udp = Vec::new();
        PacketBuilder::ipv4([198, 51, 100, 1], [198, 51, 100, 2], 64)
            .udp(40000, 4789)
            .write(&mut udp, &vx)
            .unwrap();
        // GRE (RFC 2784): no flags, version 0, protocol IPv4.
        let mut gre = vec![0, 0, 0x08, 0x00];
        gre.extend_from_slice(&udp);
        let mut frame = Vec::new();
        PacketBuilder::ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
            .write(&mut frame, etherparse::IpNumber(ipproto::GRE), &gre)
            .unwrap();
        let gathered: Vec<L4<'_>> = Decoder::new()
            .decode(LinkType::RAW, &frame)
            .iter()
            .copied()
            .collect();
        let mut handed = Handed::default();
        Decoder::new().decode_to(LinkType::RAW, &frame, &mut handed);
        let view = |p: &L4<'_>| {
            (
                p.proto,
                p.sport,
                p.dport,
                p.depth,
                p.zone,
                p.payload.to_vec(),
            )
        };
        assert_eq!(gathered.len(), 3);
        assert_eq!(
            handed.packets.iter().map(view).collect::<Vec<_>>(),
            gathered.iter().map(view).collect::<Vec<_>>()
        );
        assert_eq!(
            handed.packets.iter().map(|p| p.proto).collect::<Vec<_>>(),
            [ipproto::GRE, ipproto::UDP, ipproto::TCP]
        );
        assert!(handed.skips.is_empty());

        let mut arp = vec![0xff; 12];
        arp.extend_from_slice(&[0x08, 0x06]);
        arp.extend_from_slice(&[0; 28]);
        let mut handed = Handed::default();
        Decoder::new().decode_to(LinkType::ETHERNET, &arp, &mut handed);
        assert!(handed.packets.is_empty());
        assert_eq!(handed.skips, [Skip::NotIp]);
    }

    #[test]
    fn ip_in_ip_and_6in4() {
        // RFC 2003: protocol 4 carries an IPv4 packet; RFC 4213: protocol 41 an IPv6 one.
        let inner4 = tcp_frame(b"4");
        let b = PacketBuilder::ipv4([198, 51, 100, 1], [203, 0, 113, 1], 64);
        let mut v = Vec::new();
        b.write(&mut v, etherparse::IpNumber(4), &inner4[14..])
            .unwrap();
        let mut d = Decoder::new();
        let out = d.decode(LinkType::RAW, &v);
        let ps: Vec<_> = out.iter().collect();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].proto, ipproto::IPIP);
        assert_eq!(ps[1].payload, b"4");

        let six = PacketBuilder::ipv6(
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            64,
        )
        .udp(5000, 500);
        let mut inner6 = Vec::new();
        six.write(&mut inner6, b"ike").unwrap();
        let b = PacketBuilder::ipv4([198, 51, 100, 1], [203, 0, 113, 1], 64);
        let mut v = Vec::new();
        b.write(&mut v, etherparse::IpNumber(41), &inner6).unwrap();
        let out = d.decode(LinkType::RAW, &v);
        let ps: Vec<_> = out.iter().collect();
        assert_eq!(ps.len(), 2);
        assert_eq!(
            (ps[1].proto, ps[1].dport, ps[1].payload),
            (ipproto::UDP, 500, &b"ike"[..])
        );
        assert_eq!(ps[1].dst.to_ip().to_string(), "2001:db8::2");
    }

    #[test]
    fn ipv6_first_fragment_keeps_ports() {
        // RFC 8200 section 4.5: fixed header, Fragment header (next header UDP, offset 0,
        // M flag, identification), then the UDP header and the first payload bytes.
        let mut p = vec![0x60, 0, 0, 0, 0, 24, 44, 64];
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(&[17, 0, 0x00, 0x01, 0, 0, 0x12, 0x34]);
        p.extend_from_slice(&[0x11, 0x94, 0x11, 0x94, 0, 40, 0, 0]);
        p.extend_from_slice(&[0xaa; 8]);
        let mut d = Decoder::new();
        let out = d.decode(LinkType::RAW, &p);
        let q = out.iter().next().unwrap();
        assert_eq!(
            (q.proto, q.sport, q.dport, q.fragment),
            (ipproto::UDP, 4500, 4500, true)
        );
    }

    /// The IP packet (no link header) of [`tcp_frame`].
    fn tcp_ip(payload: &[u8]) -> Vec<u8> {
        tcp_frame(payload)[14..].to_vec()
    }

    /// An Ethernet header with the given EtherType, then `rest`.
    fn ether_with(t: u16, rest: &[u8]) -> Vec<u8> {
        let mut v = vec![2; 6];
        v.extend_from_slice(&[4; 6]);
        v.extend_from_slice(&t.to_be_bytes());
        v.extend_from_slice(rest);
        v
    }

    fn only_tcp<'a>(out: &'a Decoded<'a>) -> &'a L4<'a> {
        let ps: Vec<_> = out.iter().collect();
        assert_eq!(ps.len(), 1, "{:?}", out.skip);
        ps[0]
    }

    #[test]
    fn pppoe_session_frames_carry_ip() {
        // RFC 2516 section 4: 0x11, code 0, session 0x1234, length; PPP protocol 0x0021.
        let ip = tcp_ip(b"hi");
        let mut s = vec![0x11, 0x00, 0x12, 0x34];
        s.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
        s.extend_from_slice(&[0x00, 0x21]);
        s.extend_from_slice(&ip);
        let mut d = Decoder::new();
        let f = ether_with(0x8864, &s);
        let out = d.decode(LinkType::ETHERNET, &f);
        let p = only_tcp(&out);
        assert_eq!((p.sport, p.dport, p.payload), (50000, 3389, &b"hi"[..]));
        assert_eq!((p.depth, p.zone), (0, 0));

        // Behind a VLAN tag, and cut by the snap length (the length field says more).
        let mut tagged = vec![0x00, 0x64, 0x88, 0x64];
        tagged.extend_from_slice(&s[..s.len() - 1]);
        let f = ether_with(0x8100, &tagged);
        let out = d.decode(LinkType::ETHERNET, &f);
        let p = only_tcp(&out);
        assert_eq!((p.dport, p.vlan, p.payload), (3389, 100, &b"h"[..]));

        // IPv6 (PPP protocol 0x0057).
        let b = PacketBuilder::ipv6([1; 16], [2; 16], 64).udp(5353, 53);
        let mut ip6 = Vec::new();
        b.write(&mut ip6, b"q").unwrap();
        let mut s6 = vec![0x11, 0x00, 0x00, 0x01];
        s6.extend_from_slice(&((ip6.len() + 2) as u16).to_be_bytes());
        s6.extend_from_slice(&[0x00, 0x57]);
        s6.extend_from_slice(&ip6);
        let f = ether_with(0x8864, &s6);
        let out = d.decode(LinkType::ETHERNET, &f);
        assert_eq!(only_tcp(&out).dport, 53);

        // LCP (0xc021) carries no conversation; a discovery packet (0x8863) neither.
        let f = ether_with(0x8864, &[0x11, 0, 0, 1, 0, 6, 0xc0, 0x21, 1, 1, 0, 4]);
        let out = d.decode(LinkType::ETHERNET, &f);
        assert_eq!((out.len, out.skip), (0, Some(Skip::NotIp)));
        let f = ether_with(0x8863, &[0x11, 0x09, 0, 0, 0, 0]);
        assert_eq!(d.decode(LinkType::ETHERNET, &f).skip, Some(Skip::NotIp));
        // Not version 1, type 1; and too short for the header.
        let mut bad = s.clone();
        bad[0] = 0x21;
        let f = ether_with(0x8864, &bad);
        assert_eq!(d.decode(LinkType::ETHERNET, &f).skip, Some(Skip::Malformed));
        let f = ether_with(0x8864, &[0x11, 0, 0]);
        assert_eq!(d.decode(LinkType::ETHERNET, &f).skip, Some(Skip::Malformed));
    }

    #[test]
    fn serial_line_frames_carry_ip() {
        let ip = tcp_ip(b"hi");
        let mut d = Decoder::new();
        let with = |head: &[u8], tail: &[u8]| [head, tail].concat();
        // Cisco HDLC under each serial link type: unicast and broadcast address, IPv4.
        for link in [LinkType::C_HDLC, LinkType::PPP_HDLC, LinkType::PPP] {
            for addr in [0x0f, 0x8f] {
                let f = with(&[addr, 0x00, 0x08, 0x00], &ip);
                let out = d.decode(link, &f);
                assert_eq!(only_tcp(&out).payload, b"hi", "{link:?}");
            }
        }
        // PPP with address and control, without them, with the protocol compressed.
        for head in [&[0xff, 0x03, 0x00, 0x21][..], &[0x00, 0x21], &[0x21]] {
            let f = with(head, &ip);
            let out = d.decode(LinkType::PPP, &f);
            assert_eq!(only_tcp(&out).dport, 3389, "{head:?}");
        }
        // MPLS over PPP (0x0281): one label, bottom of the stack, then IPv4.
        let f = with(&[0xff, 0x03, 0x02, 0x81, 0x00, 0x01, 0x01, 0x40], &ip);
        assert_eq!(only_tcp(&d.decode(LinkType::PPP_HDLC, &f)).dport, 3389);
        // Cisco SLARP keepalives (0x8035) and LCP (0xc021) are not IP; a frame too short
        // for its protocol is malformed.
        let slarp = [0x8f, 0x00, 0x80, 0x35, 0, 0, 0, 2, 0, 0, 0, 1];
        assert_eq!(d.decode(LinkType::C_HDLC, &slarp).skip, Some(Skip::NotIp));
        let lcp = [0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4];
        assert_eq!(d.decode(LinkType::PPP, &lcp).skip, Some(Skip::NotIp));
        assert_eq!(
            d.decode(LinkType::PPP, &[0xff, 0x03, 0x00]).skip,
            Some(Skip::Malformed)
        );
        assert_eq!(d.decode(LinkType::C_HDLC, &[]).skip, Some(Skip::Malformed));
        // A PPPoE session without its Ethernet header.
        let mut s = vec![0x11, 0x00, 0x12, 0x34];
        s.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
        s.extend_from_slice(&[0x00, 0x21]);
        s.extend_from_slice(&ip);
        assert_eq!(only_tcp(&d.decode(LinkType::PPP_ETHER, &s)).dport, 3389);
        assert_eq!(
            d.decode(LinkType::PPP_ETHER, &s[..3]).skip,
            Some(Skip::Malformed)
        );
    }

    #[test]
    fn pflog_records_carry_ip_behind_their_padded_header() {
        let ip = tcp_ip(b"hi");
        let mut d = Decoder::new();
        // pfSense/FreeBSD (69 bytes, padded to 72), older OpenBSD (61, padded to 64), each
        // IPv4 family number and an IPv6 one.
        for (len, af) in [(69u8, 2u8), (61, 2), (69, 28), (100, 24)] {
            let mut f = vec![0u8; usize::from(len).next_multiple_of(4)];
            f[0] = len;
            f[1] = af;
            f.extend_from_slice(&ip);
            assert_eq!(only_tcp(&d.decode(LinkType::PFLOG, &f)).payload, b"hi");
        }
        // Another family (a layer-2 log) is not IP; a length out of range, or a record
        // shorter than its header, is malformed.
        let mut f = vec![0u8; 72];
        f[0] = 69;
        f[1] = 7;
        f.extend_from_slice(&ip);
        assert_eq!(d.decode(LinkType::PFLOG, &f).skip, Some(Skip::NotIp));
        f[1] = 2;
        for bad in [44u8, 101, 0] {
            f[0] = bad;
            assert_eq!(d.decode(LinkType::PFLOG, &f).skip, Some(Skip::Malformed));
        }
        assert_eq!(
            d.decode(LinkType::PFLOG, &[69, 2, 0]).skip,
            Some(Skip::Malformed)
        );
    }

    /// An NFLOG message: header, NFULA_PACKET_HDR, NFULA_PREFIX "x", then `tlvs`, with
    /// lengths and types written by `w` (the writer's byte order).
    fn nflog(w: fn(u16) -> [u8; 2], tlvs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut v = vec![2, 0, 0, 5];
        let mut put = |kind: u16, value: &[u8]| {
            v.extend_from_slice(&w(4 + value.len() as u16));
            v.extend_from_slice(&w(kind));
            v.extend_from_slice(value);
            v.resize(v.len().next_multiple_of(4), 0);
        };
        put(1, &[0x08, 0x00, 1, 0]);
        put(10, b"x\0");
        for (kind, value) in tlvs {
            put(*kind, value);
        }
        v
    }

    #[test]
    fn nflog_messages_carry_the_logged_packet_in_either_byte_order() {
        let ip = tcp_ip(b"hi");
        let mut d = Decoder::new();
        for w in [u16::to_le_bytes as fn(u16) -> [u8; 2], u16::to_be_bytes] {
            // Marks and timestamps before the packet; the packet; a UID after it.
            let f = nflog(w, &[(3, &[0; 16]), (9, &ip), (11, &[0, 0, 0, 0])]);
            let out = d.decode(LinkType::NFLOG, &f);
            assert_eq!(only_tcp(&out).payload, b"hi");
            // Cut by the snap length inside the packet (past the UID, the packet's two
            // bytes of padding and its last byte): what was captured counts.
            let cut = &f[..f.len() - 8 - 2 - 1];
            assert_eq!(only_tcp(&d.decode(LinkType::NFLOG, cut)).payload, b"h");
            // A nested attribute before the packet (high bit of the type).
            let f = nflog(w, &[(0x8000 | 20, &[0; 8]), (9, &ip)]);
            assert_eq!(only_tcp(&d.decode(LinkType::NFLOG, &f)).dport, 3389);
            // No packet attribute (a copy range of 0): nothing to decode, no error.
            let f = nflog(w, &[(11, &[0, 0, 0, 0])]);
            assert_eq!(d.decode(LinkType::NFLOG, &f).skip, Some(Skip::NotIp));
            // A TLV length below its own header.
            let mut bad = nflog(w, &[]);
            bad.extend_from_slice(&w(2));
            bad.extend_from_slice(&w(9));
            assert_eq!(d.decode(LinkType::NFLOG, &bad).skip, Some(Skip::Malformed));
        }
        // Another version, or too short for the header.
        let mut f = nflog(u16::to_le_bytes, &[(9, &ip)]);
        f[1] = 1;
        assert_eq!(d.decode(LinkType::NFLOG, &f).skip, Some(Skip::Malformed));
        assert_eq!(
            d.decode(LinkType::NFLOG, &[2, 0]).skip,
            Some(Skip::Malformed)
        );
    }

    /// An MPLS label stack entry (RFC 3032 section 2.1).
    fn label(label: u32, bottom: bool) -> [u8; 4] {
        ((label << 12) | (u32::from(bottom) << 8) | 64).to_be_bytes()
    }

    #[test]
    fn mpls_label_stacks_carry_ip_and_ethernet_pseudowires() {
        let mut d = Decoder::new();
        // Two labels, then IPv4.
        let mut m = Vec::new();
        m.extend_from_slice(&label(16, false));
        m.extend_from_slice(&label(1000, true));
        m.extend_from_slice(&tcp_ip(b"hi"));
        let f = ether_with(0x8847, &m);
        let out = d.decode(LinkType::ETHERNET, &f);
        let p = only_tcp(&out);
        assert_eq!((p.dport, p.payload, p.depth), (3389, &b"hi"[..], 0));

        // One label, a pseudowire control word (first nibble 0), an Ethernet frame.
        let mut pw = label(2000, true).to_vec();
        pw.extend_from_slice(&[0, 0, 0, 7]);
        pw.extend_from_slice(&tcp_frame(b"pw"));
        let f = ether_with(0x8847, &pw);
        let out = d.decode(LinkType::ETHERNET, &f);
        let p = only_tcp(&out);
        assert_eq!((p.payload, p.depth), (&b"pw"[..], 1));

        // MPLS inside GRE (RFC 4023).
        let mut g = vec![0, 0, 0x88, 0x47];
        g.extend_from_slice(&m);
        let b = PacketBuilder::ipv4([198, 51, 100, 1], [198, 51, 100, 2], 64);
        let mut v = Vec::new();
        b.write(&mut v, etherparse::IpNumber(ipproto::GRE), &g)
            .unwrap();
        let out = d.decode(LinkType::RAW, &v);
        let ps: Vec<_> = out.iter().collect();
        assert_eq!(ps.len(), 2);
        assert_eq!(
            (ps[0].proto, ps[1].dport, ps[1].depth),
            (ipproto::GRE, 3389, 1)
        );

        // No bottom of stack; a stack that ends with the frame; neither IP nor a
        // control word behind it.
        let mut endless = Vec::new();
        for _ in 0..MAX_MPLS_LABELS + 1 {
            endless.extend_from_slice(&label(16, false));
        }
        endless.extend_from_slice(&tcp_ip(b"x"));
        let f = ether_with(0x8847, &endless);
        assert_eq!(d.decode(LinkType::ETHERNET, &f).skip, Some(Skip::Malformed));
        let f = ether_with(0x8847, &label(16, true));
        assert_eq!(d.decode(LinkType::ETHERNET, &f).skip, Some(Skip::Malformed));
        let mut other = label(16, true).to_vec();
        other.extend_from_slice(&[0x80; 20]);
        let f = ether_with(0x8848, &other);
        assert_eq!(d.decode(LinkType::ETHERNET, &f).skip, Some(Skip::NotIp));
    }

    /// An ERSPAN packet from a switch to the sensor: GRE with the given flags and
    /// protocol, the ERSPAN header, the mirrored frame.
    fn erspan(from: [u8; 4], gre_flags: u8, proto: u16, header: &[u8], frame: &[u8]) -> Vec<u8> {
        let mut g = vec![gre_flags, 0];
        g.extend_from_slice(&proto.to_be_bytes());
        if gre_flags & 0x10 != 0 {
            g.extend_from_slice(&[0, 0, 0, 42]);
        }
        g.extend_from_slice(header);
        g.extend_from_slice(frame);
        let b = PacketBuilder::ethernet2([5; 6], [6; 6]).ipv4(from, [198, 51, 100, 9], 64);
        let mut v = Vec::new();
        b.write(&mut v, etherparse::IpNumber(ipproto::GRE), &g)
            .unwrap();
        v
    }

    #[test]
    fn erspan_mirrored_frames_are_the_mirrored_networks_own() {
        let frame = tcp_frame(b"mirrored");
        // Type II (draft-foschiano-erspan-03 section 4.1): version 1, VLAN 0, session
        // 5, index 0. Type III: version 2, session 5, timestamp, SGT, flags; the O bit
        // adds an eight-byte platform subheader.
        let ii = [0x10, 0x00, 0x00, 0x05, 0, 0, 0, 0];
        let iii = [0x20, 0x00, 0x00, 0x05, 1, 2, 3, 4, 0, 0, 0x00, 0x00];
        let mut iii_o = iii.to_vec();
        iii_o[11] = 0x01;
        iii_o.extend_from_slice(&[0x08, 0, 0, 0, 1, 2, 3, 4]);
        let cases: [(&str, u8, u16, &[u8]); 4] = [
            ("type I", 0x00, 0x88be, &[]),
            ("type II", 0x10, 0x88be, &ii),
            ("type III", 0x10, 0x22eb, &iii),
            ("type III with subheader", 0x10, 0x22eb, &iii_o),
        ];
        let mut d = Decoder::new();
        for (name, flags, proto, header) in cases {
            // Two switches mirroring one conversation each give it the same zone.
            for from in [[198, 51, 100, 1], [198, 51, 100, 2]] {
                let v = erspan(from, flags, proto, header, &frame);
                let out = d.decode(LinkType::ETHERNET, &v);
                let ps: Vec<_> = out.iter().collect();
                assert_eq!(ps.len(), 2, "{name}");
                assert_eq!(ps[0].proto, ipproto::GRE, "{name}");
                assert_eq!(
                    (ps[1].dport, ps[1].payload),
                    (3389, &b"mirrored"[..]),
                    "{name}"
                );
                assert_eq!((ps[1].depth, ps[1].zone), (1, 0), "{name}");
            }
        }
        // A type II header of another version, and a header cut short: the GRE packet only.
        let mut wrong = ii;
        wrong[0] = 0x30;
        for v in [
            erspan([198, 51, 100, 1], 0x10, 0x88be, &wrong, &frame),
            erspan([198, 51, 100, 1], 0x10, 0x22eb, &iii[..6], &[]),
        ] {
            assert_eq!(d.decode(LinkType::ETHERNET, &v).len, 1);
        }
    }

    /// An IEEE 802.11 data frame from the distribution system (FromDS) carrying `ip`:
    /// QoS data (subtype 8, with QoS control) or plain data, then LLC/SNAP for IPv4.
    fn wifi_frame(qos: bool, flags: u8, ip: &[u8]) -> Vec<u8> {
        let mut f = vec![if qos { 0x88 } else { 0x08 }, 0x02 | flags, 0, 0];
        f.extend_from_slice(&[1; 6]);
        f.extend_from_slice(&[2; 6]);
        f.extend_from_slice(&[3; 6]);
        f.extend_from_slice(&[0x10, 0x00]);
        if qos {
            f.extend_from_slice(&[0x00, 0x00]);
        }
        f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00]);
        f.extend_from_slice(ip);
        f
    }

    /// A UDP packet from 192.0.2.1 to 192.0.2.2 with the given ports and payload.
    fn udp_raw(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64).udp(sport, dport);
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    /// An IPv4 TCP packet without a link layer.
    fn tcp_raw(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ipv4([10, 45, 0, 9], [198, 51, 100, 7], 64)
            .tcp(50000, 22, 1000, 65535)
            .syn();
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    /// An Ethernet frame of `ethertype` around `rest`.
    fn eth(ethertype: u16, rest: &[u8]) -> Vec<u8> {
        let mut v = vec![2, 0, 0, 0, 0, 9, 2, 0, 0, 0, 0, 1];
        v.extend_from_slice(&ethertype.to_be_bytes());
        v.extend_from_slice(rest);
        v
    }

    #[test]
    fn port_extender_tags_and_clear_macsec_are_read_through() {
        let ip = tcp_raw(b"SSH-2.0-x\r\n");
        let with = |tag: &[u8], trailer: &[u8]| [tag, &[0x08, 0x00], &ip, trailer].concat();
        let icv = [0xa5; 16];
        let mut d = Decoder::new();
        for (what, frame) in [
            ("VN-Tag", eth(0x8926, &with(&[0x80, 0x05, 0x00, 0x21], &[]))),
            (
                "E-Tag",
                eth(0x893f, &with(&[0x20, 0x00, 0x10, 0x05, 0, 0], &[])),
            ),
            // Integrity only, without and with the secure channel identifier.
            ("MACsec", eth(0x88e5, &with(&[0x00, 0, 0, 0, 0, 7], &icv))),
            (
                "MACsec with SCI",
                eth(
                    0x88e5,
                    &with(&[0x20, 0, 0, 0, 0, 7, 2, 0, 0, 0, 0, 1, 0, 1], &icv),
                ),
            ),
        ] {
            let out = d.decode(LinkType::ETHERNET, &frame);
            let ps: Vec<_> = out.iter().collect();
            assert_eq!(ps.len(), 1, "{what}");
            assert_eq!(
                (ps[0].dport, ps[0].payload),
                (22, &b"SSH-2.0-x\r\n"[..]),
                "{what}"
            );
            assert_eq!(ps[0].vlan, 0, "{what}");
        }
        // A VN-Tag in front of an 802.1Q tag: the VLAN is still read.
        let tagged = eth(
            0x8926,
            &[
                &[0x80, 0x05, 0x00, 0x21, 0x81, 0x00, 0x00, 0x64][..],
                &[0x08, 0x00],
                &ip,
            ]
            .concat(),
        );
        let out = d.decode(LinkType::ETHERNET, &tagged);
        assert_eq!(out.iter().next().map(|p| p.vlan), Some(100));
        // Encrypted MACsec (SC, E and C set) carries nothing readable: counted as not IP.
        let secret = eth(
            0x88e5,
            &with(&[0x2c, 0, 0, 0, 0, 7, 2, 0, 0, 0, 0, 1, 0, 1], &icv),
        );
        let out = d.decode(LinkType::ETHERNET, &secret);
        assert_eq!((out.len, out.skip), (0, Some(Skip::NotIp)));
        // A tag cut short is malformed.
        let cut = eth(0x8926, &[0x80, 0x05, 0x00]);
        let out = d.decode(LinkType::ETHERNET, &cut);
        assert_eq!((out.len, out.skip), (0, Some(Skip::Malformed)));
    }

    #[test]
    fn l2tp_data_carries_the_ppp_users_packets() {
        let ip = tcp_raw(b"SSH-2.0-x\r\n");
        let ppp = [&[0xff, 0x03, 0x00, 0x21][..], &ip].concat();
        let mut d = Decoder::new();
        // Bare header; with length; with Ns/Nr and an offset of two bytes; the protocol
        // field compressed (RFC 1661 section 6.5) and no address and control fields.
        let with_len = |mut h: Vec<u8>, body: &[u8]| {
            let len = (h.len() + body.len()) as u16;
            h[2..4].copy_from_slice(&len.to_be_bytes());
            [&h[..], body].concat()
        };
        for (what, msg) in [
            (
                "bare",
                [&[0x00, 0x02, 0x00, 0x07, 0x00, 0x01][..], &ppp].concat(),
            ),
            (
                "length",
                with_len(vec![0x40, 0x02, 0, 0, 0x00, 0x07, 0x00, 0x01], &ppp),
            ),
            (
                "sequence and offset",
                [
                    &[
                        0x0a, 0x02, 0x00, 0x07, 0x00, 0x01, 0, 5, 0, 3, 0, 2, 0xee, 0xee,
                    ][..],
                    &ppp,
                ]
                .concat(),
            ),
            (
                "compressed",
                [&[0x00, 0x02, 0x00, 0x07, 0x00, 0x01, 0x21][..], &ip].concat(),
            ),
        ] {
            let v = udp_raw(1701, 1701, &msg);
            let out = d.decode(LinkType::RAW, &v);
            let ps: Vec<_> = out.iter().collect();
            assert_eq!(ps.len(), 2, "{what}");
            assert_eq!(
                (ps[1].dport, ps[1].payload),
                (22, &b"SSH-2.0-x\r\n"[..]),
                "{what}"
            );
            assert_eq!(ps[1].depth, 1, "{what}");
            assert_ne!(ps[1].zone, 0, "{what}");
        }
        // A control message (T set), L2TPv3, LCP in the PPP frame, an offset past the end,
        // a length shorter than the header: the UDP packet only.
        let lcp = [&[0xff, 0x03, 0xc0, 0x21][..], &[1, 1, 0, 4]].concat();
        for (what, msg) in [
            (
                "control",
                [&[0xc8, 0x02, 0, 20, 0, 7, 0, 1, 0, 0, 0, 0][..], &ppp].concat(),
            ),
            (
                "v3",
                [&[0x00, 0x03, 0x00, 0x07, 0x00, 0x01][..], &ppp].concat(),
            ),
            (
                "lcp",
                [&[0x00, 0x02, 0x00, 0x07, 0x00, 0x01][..], &lcp].concat(),
            ),
            (
                "offset",
                [&[0x02, 0x02, 0x00, 0x07, 0x00, 0x01, 0xff, 0xff][..], &ppp].concat(),
            ),
            (
                "length",
                [&[0x40, 0x02, 0x00, 0x03, 0x00, 0x07, 0x00, 0x01][..], &ppp].concat(),
            ),
        ] {
            let v = udp_raw(1701, 1701, &msg);
            assert_eq!(d.decode(LinkType::RAW, &v).len, 1, "{what}");
        }
    }

    #[test]
    fn gtpu_carries_the_mobile_users_packets() {
        let inner = tcp_raw(b"SSH-2.0-OpenSSH_9.6\r\n");
        let gtp = |flags: u8, message: u8, ext: &[u8]| {
            let mut g = vec![flags, message];
            g.extend_from_slice(&((ext.len() + inner.len()) as u16).to_be_bytes());
            g.extend_from_slice(&[0, 0, 0x1f, 0x2e]);
            g.extend_from_slice(ext);
            g.extend_from_slice(&inner);
            g
        };
        let mut d = Decoder::new();
        // Bare header; sequence number only (S); a PDU session container (type 0x85, one
        // four-byte unit) and then none (E).
        for (flags, ext) in [
            (0x30, &[][..]),
            (0x32, &[0, 7, 0, 0x85][..]),
            (0x34, &[0, 0, 0, 0x85, 1, 0x10, 0x09, 0][..]),
        ] {
            let v = udp_raw(2152, 2152, &gtp(flags, 0xff, ext));
            let out = d.decode(LinkType::RAW, &v);
            let ps: Vec<_> = out.iter().collect();
            assert_eq!(ps.len(), 2, "flags {flags:#x}");
            assert_eq!(ps[0].dport, 2152);
            assert_eq!((ps[1].proto, ps[1].dport), (ipproto::TCP, 22));
            assert_eq!(ps[1].payload, b"SSH-2.0-OpenSSH_9.6\r\n");
            assert_eq!(ps[1].depth, 1);
            assert_ne!(ps[1].zone, 0, "the users' addresses are the tunnel's own");
        }
        // The reply comes under the other side's TEID and still lands in the same zone.
        let mut back = gtp(0x30, 0xff, &[]);
        back[4..8].copy_from_slice(&[0, 0, 0x77, 0x01]);
        let (there, back) = (
            udp_raw(2152, 2152, &gtp(0x30, 0xff, &[])),
            udp_raw(2152, 2152, &back),
        );
        let zone =
            |d: &mut Decoder, v: &[u8]| d.decode(LinkType::RAW, v).iter().nth(1).unwrap().zone;
        assert_eq!(zone(&mut d, &there), zone(&mut d, &back));
        // An echo request, GTP' (protocol type 0), version 2, an extension of length 0,
        // an extension chain running past the end, a G-PDU that is not IP: the UDP packet
        // only.
        for (flags, message, ext) in [
            (0x30, 1, &[][..]),
            (0x20, 0xff, &[][..]),
            (0x50, 0xff, &[][..]),
            (0x34, 0xff, &[0, 0, 0, 0x85, 0, 0, 0, 0][..]),
            (0x34, 0xff, &[0, 0, 0, 0x85, 200, 0, 0, 0][..]),
        ] {
            let v = udp_raw(2152, 2152, &gtp(flags, message, ext));
            assert_eq!(d.decode(LinkType::RAW, &v).len, 1, "{flags:#x} {message}");
        }
        let mut not_ip = gtp(0x30, 0xff, &[]);
        not_ip[8] = 0x00;
        assert_eq!(
            d.decode(LinkType::RAW, &udp_raw(2152, 2152, &not_ip)).len,
            1
        );
        // Cut by the snap length inside the inner payload: what was captured is read.
        let mut cut = udp_raw(2152, 2152, &gtp(0x30, 0xff, &[]));
        cut.truncate(cut.len() - 4);
        let out = d.decode(LinkType::RAW, &cut);
        assert_eq!(out.len, 2);
        assert_eq!(out.iter().nth(1).unwrap().payload, b"SSH-2.0-OpenSSH_9");
    }

    #[test]
    fn tzsp_streams_are_the_sniffed_networks_own_frames() {
        // Version 1, type 0 (received), Ethernet; a 4-byte tag (type 10), padding, END.
        let mut t = vec![1, 0, 0, 1, 10, 4, 0, 0, 0, 1, 0, 1];
        t.extend_from_slice(&tcp_frame(b"sniffed"));
        let mut d = Decoder::new();
        let v = udp_raw(40000, 37008, &t);
        let out = d.decode(LinkType::RAW, &v);
        let ps: Vec<_> = out.iter().collect();
        assert_eq!(ps.len(), 2);
        assert_eq!((ps[1].dport, ps[1].payload), (3389, &b"sniffed"[..]));
        assert_eq!((ps[1].depth, ps[1].zone), (1, 0));
        // Another version or encapsulation, a tag running past the end: the UDP packet only.
        for bad in [
            &[2u8, 0, 0, 1, 1][..],
            &[1, 0, 0, 18, 1],
            &[1, 0, 0, 1, 10, 200, 0],
        ] {
            let mut t = bad.to_vec();
            t.extend_from_slice(&tcp_frame(b"x"));
            if bad[5..].first() == Some(&200) {
                t.truncate(bad.len());
            }
            assert_eq!(
                d.decode(LinkType::RAW, &udp_raw(40000, 37008, &t)).len,
                1,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn capwap_data_carries_wireless_clients_frames() {
        let ip = tcp_ip(b"wlan");
        // RFC 5415 section 4.3: preamble 0; HLEN 2 (8 bytes), RID 0; WBID 1 and T; flags.
        let capwap = |t_bit: bool, flags: u8, frame: &[u8]| {
            let mut c = vec![0x00, 0x10, 0x02 | u8::from(t_bit), flags, 0, 0, 0, 0];
            c.extend_from_slice(frame);
            c
        };
        let mut d = Decoder::new();
        let cases = [
            (
                "802.11 QoS data",
                capwap(true, 0, &wifi_frame(true, 0, &ip)),
            ),
            ("802.11 data", capwap(true, 0, &wifi_frame(false, 0, &ip))),
            ("802.3", capwap(false, 0, &tcp_frame(b"wlan"))),
            ("802.11, frame control swapped", {
                let mut f = wifi_frame(true, 0, &ip);
                f.swap(0, 1);
                capwap(true, 0, &f)
            }),
        ];
        for (name, c) in cases {
            for (sport, dport) in [(5247, 5247), (12222, 5247), (5247, 12222)] {
                let v = udp_raw(sport, dport, &c);
                let out = d.decode(LinkType::RAW, &v);
                let ps: Vec<_> = out.iter().collect();
                assert_eq!(ps.len(), 2, "{name}");
                assert_eq!((ps[1].dport, ps[1].payload), (3389, &b"wlan"[..]), "{name}");
                assert_eq!((ps[1].depth, ps[1].zone), (1, 0), "{name}");
            }
        }
        // Encrypted (DTLS preamble, or a protected 802.11 frame), a keep-alive, a later
        // fragment, a null frame, an A-MSDU: nothing inside is read.
        let mut dtls = capwap(true, 0, &wifi_frame(true, 0, &ip));
        dtls[0] = 0x01;
        let mut later = capwap(true, 0x80, &wifi_frame(true, 0, &ip));
        later[7] = 0x08;
        let mut null = wifi_frame(true, 0, &ip);
        null[0] = 0xc8;
        let mut amsdu = wifi_frame(true, 0, &ip);
        amsdu[24] = 0x80;
        for (name, c) in [
            ("dtls", dtls),
            ("protected", capwap(true, 0, &wifi_frame(true, 0x40, &ip))),
            ("keep-alive", capwap(true, 0x08, &wifi_frame(true, 0, &ip))),
            ("later fragment", later),
            ("null", capwap(true, 0, &null)),
            ("a-msdu", capwap(true, 0, &amsdu)),
        ] {
            let v = udp_raw(5247, 5247, &c);
            assert_eq!(d.decode(LinkType::RAW, &v).len, 1, "{name}");
        }
    }

    #[test]
    fn radio_captures_of_data_frames_are_read() {
        let ip = tcp_ip(b"air");
        let mut d = Decoder::new();
        // Radiotap: version 0, pad, length 12, present bits, then 4 bytes of fields.
        let mut rt = vec![0, 0, 12, 0, 0x06, 0, 0, 0, 0x10, 0x02, 0x6c, 0x09];
        rt.extend_from_slice(&wifi_frame(true, 0, &ip));
        // PPI: version 0, flags, length 8, link type 105.
        let mut ppi = vec![0, 0, 8, 0, 105, 0, 0, 0];
        ppi.extend_from_slice(&wifi_frame(false, 0, &ip));
        for (link, f) in [
            (LinkType::IEEE802_11_RADIOTAP, rt.clone()),
            (LinkType::PPI, ppi),
            (LinkType::IEEE802_11, wifi_frame(true, 0, &ip)),
        ] {
            let out = d.decode(link, &f);
            let p = only_tcp(&out);
            assert_eq!(
                (p.dport, p.payload, p.depth),
                (3389, &b"air"[..], 0),
                "{link:?}"
            );
        }
        // A beacon (management), a radiotap length past the frame, encrypted data.
        let mut beacon = rt.clone();
        beacon[12] = 0x80;
        assert_eq!(
            d.decode(LinkType::IEEE802_11_RADIOTAP, &beacon).skip,
            Some(Skip::NotIp)
        );
        let mut long = rt.clone();
        long[2] = 0xff;
        long[3] = 0x0f;
        let out = d.decode(LinkType::IEEE802_11_RADIOTAP, &long);
        assert_eq!(out.skip, Some(Skip::Malformed));
        let f = wifi_frame(true, 0x40, &ip);
        assert_eq!(d.decode(LinkType::IEEE802_11, &f).skip, Some(Skip::NotIp));
    }

    #[test]
    fn garbage_never_panics() {
        let mut d = Decoder::new();
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            for link in [1, 0, 101, 113, 276, 228, 229, 105, 127, 192] {
                let _ = d.decode(LinkType(link), &junk);
            }
            // Behind each EtherType with a header of its own, and inside GRE.
            for t in [0x8864u16, 0x8847, 0x8100] {
                let _ = d.decode(LinkType::ETHERNET, &ether_with(t, &junk));
            }
            for (flags, proto) in [
                (0u8, 0x88beu16),
                (0x10, 0x88be),
                (0x10, 0x22eb),
                (0, 0x8847),
            ] {
                let mut g = vec![flags, 0];
                g.extend_from_slice(&proto.to_be_bytes());
                g.extend_from_slice(&junk);
                let b = PacketBuilder::ipv4([198, 51, 100, 1], [198, 51, 100, 2], 64);
                let mut v = Vec::new();
                b.write(&mut v, etherparse::IpNumber(ipproto::GRE), &g)
                    .unwrap();
                let _ = d.decode(LinkType::RAW, &v);
            }
        }
    }
}
