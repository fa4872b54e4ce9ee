//! IGMP (IP protocol 2): hosts joining and leaving multicast groups, and routers asking
//! who still listens. Every switch port with a multicast listener carries it (DICOM
//! and PACS viewers, video, service discovery), so a mirror port sees it all day.
//!
//! Byte layouts: IGMPv1 (RFC 1112 appendix I), IGMPv2 (RFC 2236 section 2), IGMPv3
//! (RFC 3376 section 4). Every version puts the message type in the first byte and an
//! Internet checksum over the whole message in bytes 2-3. A message counts when its type
//! is one of the five the RFCs define, its length fits the type, and the checksum holds:
//! a random IP payload under protocol 2 passes all three about once in 3.3 million.

use super::Classification;

/// Membership Query (every version; RFC 3376 section 7.1 tells them apart by length).
const QUERY: u8 = 0x11;
/// Version 1 Membership Report.
const REPORT_V1: u8 = 0x12;
/// Version 2 Membership Report.
const REPORT_V2: u8 = 0x16;
/// Version 2 Leave Group.
const LEAVE_V2: u8 = 0x17;
/// Version 3 Membership Report.
const REPORT_V3: u8 = 0x22;

/// Names an IGMP flow from its first packet's IP payload.
pub fn over_ip(payload: &[u8]) -> Option<Classification> {
    let [kind, max_resp, _, _, g0, g1, g2, g3, ..] = *payload else {
        return None;
    };
    let group = std::net::Ipv4Addr::new(g0, g1, g2, g3);
    let (value, version) = match kind {
        // RFC 3376 section 7.1: 8 bytes is a v1 or v2 query (v1 has a zero maximum
        // response time), 12 or more a v3 query; lengths between are not a query.
        QUERY if payload.len() == 8 => {
            let version = if max_resp == 0 { "IGMPv1" } else { "IGMPv2" };
            (format!("0x11 membership query, group {group}"), version)
        }
        QUERY if payload.len() >= 12 => (format!("0x11 membership query, group {group}"), "IGMPv3"),
        REPORT_V1 => (format!("0x12 membership report, group {group}"), "IGMPv1"),
        REPORT_V2 => (format!("0x16 membership report, group {group}"), "IGMPv2"),
        LEAVE_V2 => (format!("0x17 leave group, group {group}"), "IGMPv2"),
        REPORT_V3 => {
            // Bytes 6-7: the number of group records, each at least 8 bytes.
            let records = u16::from_be_bytes([g2, g3]);
            if payload.len() < 8 + 8 * usize::from(records) {
                return None;
            }
            (
                format!("0x22 membership report, {records} group record(s)"),
                "IGMPv3",
            )
        }
        _ => return None,
    };
    if internet_sum(payload) != 0xffff {
        return None;
    }
    let mut c = Classification::new("igmp", None, "setten.igmp", "igmp.type", value);
    c.extra.meta.version = Some(version.into());
    Some(c)
}

/// The one's complement sum of `b` as 16-bit big-endian words, a trailing odd byte
/// padded with zero (RFC 1071 section 4.1). A message whose checksum field is right sums
/// to 0xffff.
fn internet_sum(b: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = b.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    // Each step at least halves what is above 16 bits, so this ends.
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages as captured (nDPI's public test captures, IP payloads after a 24-byte
    /// header with the Router Alert option; the Ethernet padding after them left out).
    const V3_REPORT: [u8; 16] = [
        0x22, 0x00, 0xec, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0xef, 0xff, 0xff,
        0xfd,
    ]; // wechat.pcap: one record, EXCLUDE no sources, 239.255.255.253
    const V2_REPORT: [u8; 8] = [0x16, 0x00, 0xfa, 0x04, 0xef, 0xff, 0xff, 0xfa]; // netflix.pcap
    const QUERY_V2: [u8; 8] = [0x11, 0x64, 0xee, 0x9b, 0x00, 0x00, 0x00, 0x00]; // skype.pcap

    /// Sets bytes 2-3 to the checksum of the rest.
    fn with_checksum(m: &mut [u8]) {
        m[2..4].fill(0);
        let sum = !internet_sum(m);
        m[2..4].copy_from_slice(&sum.to_be_bytes());
    }

    #[test]
    fn reports_and_queries_as_captured_are_named_with_their_version() {
        let c = over_ip(&V3_REPORT).expect("v3 report");
        assert_eq!(c.protocol, "igmp");
        assert_eq!(c.service, None);
        assert_eq!(c.extra.meta.version.as_deref(), Some("IGMPv3"));
        assert_eq!(
            c.evidence[0].value,
            "0x22 membership report, 1 group record(s)"
        );
        let c = over_ip(&V2_REPORT).expect("v2 report");
        assert_eq!(c.extra.meta.version.as_deref(), Some("IGMPv2"));
        assert_eq!(
            c.evidence[0].value,
            "0x16 membership report, group 239.255.255.250"
        );
        let c = over_ip(&QUERY_V2).expect("general query");
        assert_eq!(c.extra.meta.version.as_deref(), Some("IGMPv2"));
        assert_eq!(c.evidence[0].value, "0x11 membership query, group 0.0.0.0");
    }

    #[test]
    fn a_wrong_checksum_type_or_length_is_not_igmp() {
        let mut bad = V2_REPORT;
        bad[7] ^= 1;
        assert!(over_ip(&bad).is_none(), "checksum no longer holds");
        let mut bad = V2_REPORT;
        bad[0] = 0x13; // DVMRP, not a membership message
        assert!(over_ip(&bad).is_none());
        // A v3 report that claims more group records than it carries.
        let mut bad = V3_REPORT;
        bad[7] = 2;
        with_checksum(&mut bad);
        assert_eq!(internet_sum(&bad), 0xffff);
        assert!(over_ip(&bad).is_none());
        // A query of 10 bytes is neither the old nor the v3 form.
        let mut q = QUERY_V2.to_vec();
        q.extend_from_slice(&[0, 0]);
        assert!(over_ip(&q).is_none());
        for n in 0..8 {
            assert!(over_ip(&V2_REPORT[..n]).is_none(), "{n} bytes");
        }
    }

    #[test]
    fn the_internet_sum_folds_carries_and_pads_an_odd_byte() {
        // RFC 1071 section 3's example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        assert_eq!(
            internet_sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        assert_eq!(internet_sum(&[0xab]), 0xab00);
        assert_eq!(internet_sum(&[]), 0);
    }
}
