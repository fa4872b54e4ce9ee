//! Which worker a frame goes to: a hash of the outermost IP addresses that is the same in
//! both directions, so both halves of a conversation meet in one flow table.
//!
//! Only the addresses are hashed, not the ports: the later fragments of an IP datagram
//! carry no ports and must reach the worker that saw the first one, and every flow
//! tunnelled inside an outer connection stays with it. A mirror port carries many host
//! pairs, which spreads the load well enough.
//!
//! The frame is untrusted: every read is bounds-checked, and a frame that cannot be read
//! as far as its addresses goes to worker 0 (the worker counts it as it would anyway).

use crate::capture::LinkType;

/// Ethertypes (IEEE 802.1Q and IANA).
const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
const ETH_QINQ_OLD: u16 = 0x9100;
/// VLAN tags skipped before giving up.
const MAX_TAGS: usize = 4;

fn be16(d: &[u8], off: usize) -> Option<u16> {
    d.get(off..off.checked_add(2)?)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
}

/// The IP packet inside a frame, if the link layer is one we know.
fn ip_of(link: LinkType, d: &[u8]) -> Option<&[u8]> {
    let after_ethertype = |mut ty: u16, mut off: usize| -> Option<&[u8]> {
        for _ in 0..MAX_TAGS {
            if !matches!(ty, ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD) {
                break;
            }
            // Tag control information, then the inner ethertype (IEEE 802.1Q 9.6).
            ty = be16(d, off + 2)?;
            off += 4;
        }
        match ty {
            ETH_IPV4 | ETH_IPV6 => d.get(off..),
            _ => None,
        }
    };
    match link {
        // Destination and source MAC, then the ethertype (IEEE 802.3 3.1.1).
        LinkType::ETHERNET => after_ethertype(be16(d, 12)?, 14),
        // Linux cooked v1: 16-byte header, protocol at 14 (pcap-linktype(7)).
        LinkType::LINUX_SLL => after_ethertype(be16(d, 14)?, 16),
        // Linux cooked v2: protocol first, 20-byte header.
        LinkType::LINUX_SLL2 => after_ethertype(be16(d, 0)?, 20),
        LinkType::RAW
        | LinkType::RAW_BSD12
        | LinkType::RAW_BSD14
        | LinkType::IPV4
        | LinkType::IPV6 => Some(d),
        // A 4-byte address family, then the packet.
        LinkType::NULL | LinkType::LOOP => d.get(4..),
        // Serial lines and firewall logs.
        _ => crate::decode::serial_or_log_ip(link, d),
    }
}

/// A 64-bit summary of one address.
fn fold(a: &[u8]) -> u64 {
    a.chunks(8).fold(0u64, |acc, c| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        acc.rotate_left(29) ^ u64::from_le_bytes(w)
    })
}

/// The direction-independent hash of a frame's outermost IP addresses (0 when there
/// are none).
pub fn flow_hash(link: LinkType, frame: &[u8]) -> u64 {
    let Some(ip) = ip_of(link, frame) else {
        return 0;
    };
    // IPv4 addresses at 12..16 and 16..20 (RFC 791 3.1); IPv6 at 8..24 and 24..40
    // (RFC 8200 3).
    let (src, dst) = match ip.first().map(|b| b >> 4) {
        Some(4) => (ip.get(12..16), ip.get(16..20)),
        Some(6) => (ip.get(8..24), ip.get(24..40)),
        _ => (None, None),
    };
    let (Some(src), Some(dst)) = (src, dst) else {
        return 0;
    };
    let (a, b) = (fold(src), fold(dst));
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    // A multiply-xorshift finaliser (splitmix64) spreads close addresses.
    let mut x = lo ^ hi.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The worker of a frame among `workers`.
pub fn worker_of(link: LinkType, frame: &[u8], workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    (flow_hash(link, frame) % workers as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet frame with optional 802.1Q tags and an IPv4 header (RFC 791 3.1)
    /// carrying TCP ports.
    fn eth_v4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, tags: &[u16]) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        for t in tags {
            f.extend_from_slice(&ETH_VLAN.to_be_bytes());
            f.extend_from_slice(&t.to_be_bytes());
        }
        f.extend_from_slice(&ETH_IPV4.to_be_bytes());
        f.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&[0; 16]);
        f
    }

    #[test]
    fn both_directions_hash_alike_and_ports_do_not_matter() {
        let a = [10, 0, 0, 5];
        let b = [203, 0, 113, 9];
        let h = flow_hash(LinkType::ETHERNET, &eth_v4(a, b, 50000, 3389, &[]));
        assert_ne!(h, 0);
        assert_eq!(
            h,
            flow_hash(LinkType::ETHERNET, &eth_v4(b, a, 3389, 50000, &[]))
        );
        // A later fragment (no ports in it) goes where the first went.
        assert_eq!(h, flow_hash(LinkType::ETHERNET, &eth_v4(a, b, 0, 0, &[])));
        // VLAN tags are skipped.
        assert_eq!(
            h,
            flow_hash(LinkType::ETHERNET, &eth_v4(a, b, 1, 2, &[20, 30]))
        );
        // Another host pair hashes differently.
        assert_ne!(
            h,
            flow_hash(LinkType::ETHERNET, &eth_v4(a, [203, 0, 113, 10], 1, 2, &[]))
        );
    }

    #[test]
    fn raw_and_cooked_links_hash_the_same_packet_alike() {
        let frame = eth_v4([192, 168, 1, 2], [198, 51, 100, 7], 1, 2, &[]);
        let ip = &frame[14..];
        let h = flow_hash(LinkType::ETHERNET, &frame);
        assert_eq!(h, flow_hash(LinkType::RAW, ip));
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(ip);
        assert_eq!(h, flow_hash(LinkType::NULL, &null));
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&ETH_IPV4.to_be_bytes());
        sll.extend_from_slice(ip);
        assert_eq!(h, flow_hash(LinkType::LINUX_SLL, &sll));
        // A router's serial line (Cisco HDLC; PPP with address, control and protocol).
        let hdlc = [&[0x0f, 0x00, 0x08, 0x00][..], ip].concat();
        assert_eq!(h, flow_hash(LinkType::C_HDLC, &hdlc));
        let ppp = [&[0xff, 0x03, 0x00, 0x21][..], ip].concat();
        assert_eq!(h, flow_hash(LinkType::PPP, &ppp));
        // A pfSense pf log: a 69-byte header padded to 72, family AF_INET.
        let mut pflog = vec![0u8; 72];
        pflog[..2].copy_from_slice(&[69, 2]);
        pflog.extend_from_slice(ip);
        assert_eq!(h, flow_hash(LinkType::PFLOG, &pflog));
        // A netfilter log message: header, then the packet in NFULA_PAYLOAD (type 9).
        let mut nflog = vec![2, 0, 0, 5];
        nflog.extend_from_slice(&u16::try_from(4 + ip.len()).unwrap().to_le_bytes());
        nflog.extend_from_slice(&9u16.to_le_bytes());
        nflog.extend_from_slice(ip);
        assert_eq!(h, flow_hash(LinkType::NFLOG, &nflog));
    }

    #[test]
    fn ipv6_is_hashed_symmetrically() {
        // IPv6 header (RFC 8200 3): version 6, addresses at 8 and 24.
        let mk = |s: u8, d: u8| {
            let mut p = vec![0x60, 0, 0, 0, 0, 0, 6, 64];
            p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, s]);
            p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, d]);
            p
        };
        let h = flow_hash(LinkType::RAW, &mk(1, 2));
        assert_ne!(h, 0);
        assert_eq!(h, flow_hash(LinkType::RAW, &mk(2, 1)));
    }

    #[test]
    fn short_or_foreign_frames_go_to_worker_zero_without_panicking() {
        let frame = eth_v4([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, &[1]);
        for n in 0..frame.len() {
            let _ = worker_of(LinkType::ETHERNET, &frame[..n], 3);
        }
        assert_eq!(flow_hash(LinkType::ETHERNET, &frame[..20]), 0);
        assert_eq!(flow_hash(LinkType(147), &frame), 0);
        // ARP is not IP.
        let mut arp = frame.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(worker_of(LinkType::ETHERNET, &arp, 4), 0);
    }

    #[test]
    fn host_pairs_spread_over_workers() {
        let mut counts = [0usize; 3];
        for i in 0..3000u32 {
            let a = [10, 1, (i >> 8) as u8, i as u8];
            let f = eth_v4(a, [93, 184, 216, 34], 40000, 443, &[]);
            counts[worker_of(LinkType::ETHERNET, &f, 3)] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
    }
}
