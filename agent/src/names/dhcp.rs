//! DHCP (RFC 2131, options RFC 2132): which host name and which MAC an address belongs
//! to.
//!
//! Three messages bind an address (RFC 2131 section 3.1, table 2):
//! - DHCPREQUEST: the client asks for the address in option 50 (selecting, init-reboot)
//!   or renews the one in `ciaddr`, naming itself in option 12 (host name) and/or
//!   option 81 (client FQDN, RFC 4702);
//! - DHCPINFORM: a client configured otherwise reports its address in `ciaddr`
//!   (section 4.4.3), usually with option 12;
//! - DHCPACK: the server confirms `yiaddr` (or, answering an INFORM, `ciaddr`) for the
//!   client hardware address `chaddr`, sometimes echoing option 12.
//!
//! Each gives an [`Obs::Mac`] when `chaddr` is an Ethernet address (htype 1, hlen 6) and a
//! [`Obs::Name`] per host name. Host names are kept as the client wrote them (trimmed);
//! the FQDN is a DNS name and is lowercased. Options come from the options field, then
//! the `file` and `sname` fields when option 52 says they are overloaded (RFC 2131
//! section 4.1); the first instance of an option wins (RFC 3396 long-option
//! concatenation is not needed for these short options).

use super::{printable, text_name, NameSource, Obs, Sink};
use std::net::{IpAddr, Ipv4Addr};

/// Fixed BOOTP header (RFC 2131 section 2, figure 1) before the magic cookie.
pub const FIXED_LEN: usize = 236;
/// The magic cookie 99.130.83.99 (RFC 2131 section 3; RFC 2132 section 2).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Options read from one message, over all option areas (pad bytes included).
pub const MAX_OPTIONS: usize = 512;

const OFF_CIADDR: usize = 12;
const OFF_YIADDR: usize = 16;
const OFF_CHADDR: usize = 28;
const OFF_SNAME: usize = 44;
const OFF_FILE: usize = 108;
const SNAME_LEN: usize = 64;
const FILE_LEN: usize = 128;

/// Option codes (RFC 2132; RFC 4702 for 81).
pub mod option {
    /// Pad.
    pub const PAD: u8 = 0;
    /// Host name (RFC 2132 section 3.14).
    pub const HOST_NAME: u8 = 12;
    /// Requested IP address (RFC 2132 section 9.1).
    pub const REQUESTED_IP: u8 = 50;
    /// Option overload (RFC 2132 section 9.3).
    pub const OVERLOAD: u8 = 52;
    /// DHCP message type (RFC 2132 section 9.6).
    pub const MESSAGE_TYPE: u8 = 53;
    /// Client FQDN (RFC 4702 section 2).
    pub const CLIENT_FQDN: u8 = 81;
    /// End.
    pub const END: u8 = 255;
}

/// BOOTP op (RFC 2131 section 2).
pub mod op {
    /// Client to server.
    pub const BOOTREQUEST: u8 = 1;
    /// Server to client.
    pub const BOOTREPLY: u8 = 2;
}

/// Hardware type Ethernet (RFC 1700 "ARP hardware type").
pub const HTYPE_ETHERNET: u8 = 1;

/// DHCP message type, option 53 (RFC 2132 section 9.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MessageType(pub u8);

impl MessageType {
    /// DHCPDISCOVER.
    pub const DISCOVER: MessageType = MessageType(1);
    /// DHCPOFFER.
    pub const OFFER: MessageType = MessageType(2);
    /// DHCPREQUEST.
    pub const REQUEST: MessageType = MessageType(3);
    /// DHCPDECLINE.
    pub const DECLINE: MessageType = MessageType(4);
    /// DHCPACK.
    pub const ACK: MessageType = MessageType(5);
    /// DHCPNAK.
    pub const NAK: MessageType = MessageType(6);
    /// DHCPRELEASE.
    pub const RELEASE: MessageType = MessageType(7);
    /// DHCPINFORM.
    pub const INFORM: MessageType = MessageType(8);
}

/// Why a datagram is no DHCP message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Shorter than the fixed header and cookie.
    #[error("truncated")]
    Truncated,
    /// No magic cookie: plain BOOTP, or not BOOTP at all.
    #[error("no DHCP magic cookie")]
    NoCookie,
}

/// The options [`harvest`] reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options<'a> {
    /// Option 53.
    pub message_type: Option<MessageType>,
    /// Option 12, raw.
    pub host_name: Option<&'a [u8]>,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 81, raw (flags, two rcodes, then the name).
    pub client_fqdn: Option<&'a [u8]>,
    /// Option 52: 1 = `file` holds options, 2 = `sname`, 3 = both.
    pub overload: Option<u8>,
}

/// A DHCP message: the fixed fields used here and the options read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// op.
    pub op: u8,
    /// htype.
    pub htype: u8,
    /// hlen.
    pub hlen: u8,
    /// ciaddr: the client's address when it already has one.
    pub ciaddr: Ipv4Addr,
    /// yiaddr: the address the server gives.
    pub yiaddr: Ipv4Addr,
    /// chaddr.
    pub chaddr: [u8; 16],
    /// Options.
    pub options: Options<'a>,
}

impl Message<'_> {
    /// The Ethernet client address, when htype and hlen say there is one.
    pub fn mac(&self) -> Option<[u8; 6]> {
        if self.htype != HTYPE_ETHERNET || self.hlen != 6 {
            return None;
        }
        self.chaddr.get(..6)?.try_into().ok()
    }
}

fn ipv4_at(b: &[u8], off: usize) -> Option<Ipv4Addr> {
    let o: [u8; 4] = b.get(off..off + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(o))
}

/// Reads a DHCP message.
pub fn parse(msg: &[u8]) -> Result<Message<'_>, Error> {
    let fixed = msg.get(..FIXED_LEN).ok_or(Error::Truncated)?;
    let cookie = msg.get(FIXED_LEN..FIXED_LEN + 4).ok_or(Error::Truncated)?;
    if cookie != MAGIC_COOKIE {
        return Err(Error::NoCookie);
    }
    let field = |off: usize, len: usize| fixed.get(off..off + len).unwrap_or(&[]);
    let mut options = Options::default();
    let mut budget = MAX_OPTIONS;
    read_options(
        msg.get(FIXED_LEN + 4..).unwrap_or(&[]),
        &mut options,
        &mut budget,
    );
    // RFC 2131 section 4.1: options, then `file`, then `sname`.
    let overload = options.overload.unwrap_or(0);
    if overload & 1 != 0 {
        read_options(field(OFF_FILE, FILE_LEN), &mut options, &mut budget);
    }
    if overload & 2 != 0 {
        read_options(field(OFF_SNAME, SNAME_LEN), &mut options, &mut budget);
    }
    let chaddr: [u8; 16] = field(OFF_CHADDR, 16).try_into().unwrap_or([0; 16]);
    Ok(Message {
        op: fixed.first().copied().unwrap_or(0),
        htype: fixed.get(1).copied().unwrap_or(0),
        hlen: fixed.get(2).copied().unwrap_or(0),
        ciaddr: ipv4_at(fixed, OFF_CIADDR).unwrap_or(Ipv4Addr::UNSPECIFIED),
        yiaddr: ipv4_at(fixed, OFF_YIADDR).unwrap_or(Ipv4Addr::UNSPECIFIED),
        chaddr,
        options,
    })
}

/// Walks one option area (RFC 2132 section 2: code, length, data; pad and end have no
/// length), keeping the first instance of each option wanted. A truncated option ends
/// the area.
fn read_options<'a>(mut area: &'a [u8], o: &mut Options<'a>, budget: &mut usize) {
    while *budget > 0 {
        *budget -= 1;
        let Some((&code, rest)) = area.split_first() else {
            return;
        };
        match code {
            option::PAD => {
                area = rest;
                continue;
            }
            option::END => return,
            _ => {}
        }
        let Some((&len, rest)) = rest.split_first() else {
            return;
        };
        let Some((data, rest)) = rest.split_at_checked(usize::from(len)) else {
            return;
        };
        area = rest;
        match code {
            option::HOST_NAME => {
                o.host_name.get_or_insert(data);
            }
            option::REQUESTED_IP => {
                if let Ok(a) = <[u8; 4]>::try_from(data) {
                    o.requested_ip.get_or_insert(Ipv4Addr::from(a));
                }
            }
            option::OVERLOAD => {
                if let [v] = *data {
                    o.overload.get_or_insert(v);
                }
            }
            option::MESSAGE_TYPE => {
                if let [v] = *data {
                    o.message_type.get_or_insert(MessageType(v));
                }
            }
            option::CLIENT_FQDN => {
                o.client_fqdn.get_or_insert(data);
            }
            _ => {}
        }
    }
}

/// The name in option 81 (RFC 4702 section 2): flags, RCODE1, RCODE2, then the domain
/// name, in DNS wire format (labels, possibly without the root: a partial name) when the
/// E flag is set, in ASCII otherwise (deprecated, section 2.3.1). Lowercased, trailing
/// dot removed; `None` when empty or unprintable.
pub fn fqdn_name(data: &[u8]) -> Option<String> {
    const FLAG_E: u8 = 0x04;
    let (&flags, rest) = data.split_first()?;
    let name = rest.get(2..)?;
    let mut s = if flags & FLAG_E != 0 {
        let mut s = String::new();
        let mut rest = name;
        while let Some((&n, tail)) = rest.split_first() {
            if n == 0 {
                break;
            }
            let (label, tail) = tail.split_at_checked(usize::from(n))?;
            let label = std::str::from_utf8(label).ok()?;
            if label.contains('.') || n > 63 {
                return None;
            }
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(label);
            rest = tail;
        }
        s
    } else {
        text_name(name)?
    };
    while s.ends_with('.') {
        s.pop();
    }
    s.make_ascii_lowercase();
    printable(&s).then_some(s)
}

/// Observations from one DHCP datagram: see the module doc.
pub fn harvest(msg: &[u8], out: &mut Vec<Obs>) {
    let Ok(m) = parse(msg) else {
        return;
    };
    let Some(kind) = m.options.message_type else {
        return;
    };
    let known = |a: Ipv4Addr| (!a.is_unspecified()).then_some(a);
    let ip = match (kind, m.op) {
        (MessageType::REQUEST, op::BOOTREQUEST) => {
            m.options.requested_ip.and_then(known).or(known(m.ciaddr))
        }
        (MessageType::INFORM, op::BOOTREQUEST) => known(m.ciaddr),
        (MessageType::ACK, op::BOOTREPLY) => known(m.yiaddr).or(known(m.ciaddr)),
        _ => None,
    };
    let Some(ip) = ip.map(IpAddr::V4) else {
        return;
    };
    let mut sink = Sink::new(out);
    if let Some(mac) = m.mac() {
        sink.mac(ip, mac, NameSource::Dhcp);
    }
    let host = m.options.host_name.and_then(text_name);
    let fqdn = m.options.client_fqdn.and_then(fqdn_name);
    if let Some(h) = &host {
        sink.name(ip, h.clone(), NameSource::Dhcp, None);
    }
    if let Some(f) = fqdn {
        if !host.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(&f)) {
            sink.name(ip, f, NameSource::Dhcp, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::tests::hex;

    /// Corpus `ndpi-gnutella.pcap` frame 7 (0.0.0.0:68 → 255.255.255.255:67):
    /// DHCPREQUEST from 08:00:27:e6:e5:59, option 50 = 10.0.2.15, option 12
    /// "MSEDGEWIN10", option 81 flags 0 (ASCII) "MSEDGEWIN10".
    const REQUEST: &str = "01010600a6784b7d0000000000000000000000000000000000000000080027e6e55900
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000638253633501033d07
        01080027e6e55932040a00020f0c0b4d534544474557494e3130510e0000004d534544474557494e3130
        3c084d53465420352e30370e0103060f1f212b2c2e2f7779f9fcff";

    /// Corpus `ndpi-gnutella.pcap` frame 8 (10.0.2.2:67 → 10.0.2.15:68): the DHCPACK,
    /// yiaddr 10.0.2.15, no host name; `file` holds a boot file name, not options.
    const ACK: &str = "02010600a6784b7d000000000a00020f0a00020f0a00020400000000080027e6e559000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        00000000000000000000000000000000000000000000000000000000004d5345646765202d2057696e31
        302e70786500000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        00000000000000000000000000000000000000000000000000000000000000638253633501050104ffff
        ff0003040a00020206040a0002030f036c616e33040001518036040a000202ff00000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        00000000000000";

    /// Corpus `ndpi-1kxun.pcap` frame 675 (192.168.5.9:68 → 255.255.255.255:67):
    /// DHCPINFORM, ciaddr 192.168.5.9, chaddr 70:f1:a1:f8:2a:fd, option 12 "Joanna-PC".
    const INFORM: &str = "01010600fc0f79d800008000c0a8050900000000000000000000000070f1a1f82afd0000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        0000000000000000000000000000000000000000000000000000000000000000638253633501083d0701
        70f1a1f82afd0c094a6f616e6e612d50433c084d53465420352e30370d010f03062c2e2f1f2179f92bfc
        ff0000000000000000000000";

    /// Corpus `ndpi-1kxun.pcap` frame 597: DHCPREQUEST renewing (ciaddr 192.168.5.16, no
    /// option 50), chaddr 60:c5:47:05:bc:8c, option 12 "MacBook-Air".
    const RENEW: &str = "010106001797c0cc00000000c0a8051000000000000000000000000060c54705bc8c0000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000063825363350103370901
        03060f775ffc2c2e390205dc3d070160c54705bc8c33040076a7000c0b4d6163426f6f6b2d416972ff00
        000000000000000000000000";

    fn run(msg: &[u8]) -> Vec<Obs> {
        let mut out = Vec::new();
        harvest(msg, &mut out);
        out
    }

    fn name(ip: [u8; 4], n: &str) -> Obs {
        Obs::Name {
            ip: Ipv4Addr::from(ip).into(),
            name: n.to_string(),
            source: NameSource::Dhcp,
            ttl: None,
        }
    }

    fn mac(ip: [u8; 4], m: [u8; 6]) -> Obs {
        Obs::Mac {
            ip: Ipv4Addr::from(ip).into(),
            mac: m,
            source: NameSource::Dhcp,
        }
    }

    /// `msg` with its options replaced (after the cookie).
    fn with_options(msg: &str, opts: &[u8]) -> Vec<u8> {
        let mut m = hex(msg);
        m.truncate(FIXED_LEN + 4);
        m.extend(opts);
        m
    }

    #[test]
    fn request_gives_mac_and_one_name() {
        // Option 81 repeats option 12 (case aside): one name.
        let mac_ = [0x08, 0x00, 0x27, 0xe6, 0xe5, 0x59];
        assert_eq!(
            run(&hex(REQUEST)),
            vec![
                mac([10, 0, 2, 15], mac_),
                name([10, 0, 2, 15], "MSEDGEWIN10")
            ]
        );
    }

    #[test]
    fn ack_gives_mac() {
        let mac_ = [0x08, 0x00, 0x27, 0xe6, 0xe5, 0x59];
        assert_eq!(run(&hex(ACK)), vec![mac([10, 0, 2, 15], mac_)]);
        let bytes = hex(ACK);
        let m = parse(&bytes).unwrap();
        assert_eq!(m.options.message_type, Some(MessageType::ACK));
        assert_eq!(m.options.overload, None);
    }

    #[test]
    fn inform_and_renew_use_ciaddr() {
        assert_eq!(
            run(&hex(INFORM)),
            vec![
                mac([192, 168, 5, 9], [0x70, 0xf1, 0xa1, 0xf8, 0x2a, 0xfd]),
                name([192, 168, 5, 9], "Joanna-PC"),
            ]
        );
        assert_eq!(
            run(&hex(RENEW)),
            vec![
                mac([192, 168, 5, 16], [0x60, 0xc5, 0x47, 0x05, 0xbc, 0x8c]),
                name([192, 168, 5, 16], "MacBook-Air"),
            ]
        );
    }

    #[test]
    fn discover_offer_nak_give_nothing() {
        // A DISCOVER's option 50 is a wish, not a binding.
        let m = with_options(
            REQUEST,
            &[53, 1, 1, 50, 4, 10, 0, 2, 15, 12, 2, b'h', b'x', 255],
        );
        assert!(run(&m).is_empty());
        let mut m = with_options(ACK, &[53, 1, 2, 255]);
        assert!(run(&m).is_empty());
        m = with_options(ACK, &[53, 1, 6, 255]);
        assert!(run(&m).is_empty());
        // A REQUEST sent as a BOOTREPLY is nonsense.
        let mut m = hex(REQUEST);
        m[0] = op::BOOTREPLY;
        assert!(run(&m).is_empty());
    }

    #[test]
    fn ack_with_host_name_and_fqdn() {
        // RFC 4702 section 2: flags S|E (0x05), rcodes 255 (section 2.2), the name in
        // wire format "pc7.ward3.example." — different from option 12, so both are kept.
        let mut opts = vec![53, 1, 5, 12, 3, b'P', b'C', b'7', 81];
        let wire = b"\x03PC7\x05ward3\x07example\x00";
        opts.push(u8::try_from(3 + wire.len()).unwrap());
        opts.extend([0x05, 255, 255]);
        opts.extend(wire);
        opts.push(255);
        let got = run(&with_options(ACK, &opts));
        assert_eq!(
            got[1..],
            [
                name([10, 0, 2, 15], "PC7"),
                name([10, 0, 2, 15], "pc7.ward3.example")
            ]
        );
    }

    #[test]
    fn fqdn_forms() {
        // ASCII form with a trailing dot (RFC 4702 section 2.3.1).
        assert_eq!(
            fqdn_name(b"\x00\x00\x00Host.Example.").as_deref(),
            Some("host.example")
        );
        // Partial wire name (no root label).
        assert_eq!(fqdn_name(b"\x04\x00\x00\x04host").as_deref(), Some("host"));
        // Label running past the option.
        assert_eq!(fqdn_name(b"\x04\x00\x00\x09host"), None);
        assert_eq!(fqdn_name(b"\x04\x00\x00"), None);
        assert_eq!(fqdn_name(b"\x04"), None);
    }

    #[test]
    fn overloaded_file_field_holds_options() {
        // RFC 2131 section 4.1 / RFC 2132 section 9.3: option 52 = 1 moves options into
        // `file`.
        let mut m = with_options(ACK, &[53, 1, 5, 52, 1, 1, 255]);
        m[OFF_FILE..OFF_FILE + FILE_LEN].fill(0);
        m[OFF_FILE..OFF_FILE + 7].copy_from_slice(&[12, 4, b'w', b's', b'0', b'1', 255]);
        assert_eq!(run(&m)[1], name([10, 0, 2, 15], "ws01"));
        // Without option 52 the same bytes are a boot file name.
        let mut m = with_options(ACK, &[53, 1, 5, 255]);
        m[OFF_FILE..OFF_FILE + 7].copy_from_slice(&[12, 4, b'w', b's', b'0', b'1', 255]);
        assert_eq!(run(&m).len(), 1);
    }

    #[test]
    fn bad_host_names_and_hardware_are_dropped() {
        let m = with_options(INFORM, &[53, 1, 8, 12, 4, b'a', 0x1b, b'[', b'm', 255]);
        assert_eq!(run(&m).len(), 1); // the MAC only
                                      // Token ring (htype 6): no MAC, the name stays.
        let mut m = hex(INFORM);
        m[1] = 6;
        assert_eq!(run(&m), vec![name([192, 168, 5, 9], "Joanna-PC")]);
        // NUL-terminated host names are common.
        let m = with_options(INFORM, &[53, 1, 8, 12, 4, b'p', b'c', 0, 0, 255]);
        assert_eq!(run(&m)[1], name([192, 168, 5, 9], "pc"));
    }

    #[test]
    fn no_cookie_no_message() {
        let mut m = hex(REQUEST);
        m[FIXED_LEN] = 0;
        assert_eq!(parse(&m).unwrap_err(), Error::NoCookie);
        assert_eq!(parse(&m[..100]).unwrap_err(), Error::Truncated);
        assert!(run(&m).is_empty());
    }

    #[test]
    fn cut_and_padded_messages_never_panic() {
        let m = hex(REQUEST);
        for cut in 0..m.len() {
            let _ = run(&m[..cut]);
        }
        // An option area of nothing but pad bytes is walked within the budget.
        let mut m = with_options(REQUEST, &[53, 1, 3]);
        m.extend(std::iter::repeat_n(0u8, 60_000));
        assert!(run(&m).is_empty());
    }
}
