//! TFTP (RFC 1350 5, options RFC 2347) over UDP: network boot (PXE), and configuration
//! and firmware transfers for phones, switches and medical devices.
//!
//! `Yes` for a read or write request filling the datagram exactly: opcode 1 or 2, a
//! printable file name, a transfer mode of "netascii", "octet" or "mail" (any case),
//! each NUL-terminated, then option name/value pairs, also NUL-terminated.

use super::super::{Classification, Cx, Verdict};
use super::{be16, finish, first_datagram, require, Parse};

/// Longest file name accepted.
const MAX_FILENAME: usize = 512;
/// Options read (RFC 2347: a handful in practice).
const MAX_FIELDS: usize = 32;

/// Parses a read or write request; returns "RRQ name mode" or "WRQ name mode".
pub fn parse_request(d: &[u8]) -> Parse<String> {
    let op = need!(be16(d, 0));
    need!(require(op == 1 || op == 2));
    let mut fields = d.get(2..).unwrap_or(&[]).split(|&c| c == 0);
    let name = fields.next().unwrap_or(&[]);
    let mode = fields.next().unwrap_or(&[]);
    need!(require(
        !name.is_empty() && name.len() <= MAX_FILENAME && super::text::is_printable(name)
    ));
    need!(require(
        [&b"netascii"[..], b"octet", b"mail"]
            .iter()
            .any(|m| mode.eq_ignore_ascii_case(m))
    ));
    // The datagram ends with a NUL: the split leaves one empty field last. Options come
    // in name/value pairs before it.
    need!(require(d.last() == Some(&0)));
    let rest: Vec<&[u8]> = fields.take(MAX_FIELDS + 1).collect();
    need!(require(
        rest.last() == Some(&&[][..]) && rest.len() <= MAX_FIELDS
    ));
    let opts = rest.get(..rest.len() - 1).unwrap_or(&[]);
    need!(require(
        opts.len() % 2 == 0
            && opts
                .iter()
                .all(|f| !f.is_empty() && super::text::is_printable(f))
    ));
    Parse::Ok(format!(
        "{} {} {}",
        if op == 1 { "RRQ" } else { "WRQ" },
        super::super::util::printable(name),
        super::super::util::printable(mode).to_ascii_lowercase()
    ))
}

/// Names TFTP.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_udp() {
        return Verdict::No;
    }
    let p = first_datagram(cx, cx.c2s, parse_request);
    finish(
        cx,
        p.map(|v| Classification::new("tftp", None, "setten.tftp.request", "tftp.request", v)),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::Flow;
    use super::*;

    #[test]
    fn pxe_read_request() {
        // A PXE client's RRQ with RFC 2348 blksize and RFC 2349 tsize options.
        let d = b"\x00\x01pxelinux.0\x00octet\x00tsize\x000\x00blksize\x001456\x00";
        let c = Flow::udp(2070, 69).c2s(d).yes(check);
        assert_eq!((c.protocol, c.service), ("tftp", None));
        assert_eq!(c.evidence[0].value, "RRQ pxelinux.0 octet");
    }

    #[test]
    fn not_tftp() {
        assert_eq!(parse_request(b"\x00\x01file\x00binary\x00"), Parse::Bad);
        assert_eq!(
            parse_request(b"\x00\x01file\x00octet\x00tsize\x00"),
            Parse::Bad
        );
        assert_eq!(parse_request(b"\x00\x01file\x00octet"), Parse::Bad);
        assert_eq!(parse_request(b"\x00\x03\x00\x01data"), Parse::Bad);
        assert!(Flow::udp(1, 69).c2s(b"\x00\x01\x00").is_no(check));
    }
}
