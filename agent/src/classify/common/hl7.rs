//! HL7 version 2 over MLLP (HL7 v2.5.1 Appendix C.4, Minimal Lower Layer Protocol): a
//! start block byte 0x0B, then a message whose first segment is the message header MSH.
//!
//! `Yes` when the MSH segment is complete and well formed (HL7 v2.5.1 2.14.9): the field
//! separator, three to five distinct encoding characters, a message type (MSH-9) of
//! three letters or digits with an optional trigger event, and a version (MSH-12) "2.x".
//! Either direction proves it (a message or its ACK). Only header fields are kept as
//! evidence (message type, version, sending and receiving application and facility);
//! never anything from later segments, which carry patient data.

use super::super::{Classification, Cx, Meta, Verdict};
use super::{byte, finish, require, stream, Parse};

/// MLLP start block (HL7 v2.5.1 C.4.3).
pub const START_BLOCK: u8 = 0x0b;
/// MLLP end block, then a carriage return.
pub const END_BLOCK: [u8; 2] = [0x1c, 0x0d];
/// Longest MSH segment read; real ones are a few hundred bytes.
pub const MAX_MSH_LEN: usize = 2048;
/// Fields of MSH read (up to MSH-12, version).
const MSH_FIELDS: usize = 12;

/// What the MSH segment says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// MSH-9, message type and trigger ("ADT^A01").
    pub message_type: String,
    /// MSH-12, version ("2.3").
    pub version: String,
    /// MSH-3 and MSH-4, sending application and facility.
    pub sender: String,
    /// MSH-5 and MSH-6, receiving application and facility.
    pub receiver: String,
}

/// Parses an MLLP frame's start and its MSH segment.
pub fn parse_mllp(b: &[u8]) -> Parse<Header> {
    need!(require(need!(byte(b, 0)) == START_BLOCK));
    let m = b.get(1..).unwrap_or(&[]);
    // "MSH", the field separator, then the encoding characters.
    let n = m.len().min(3);
    need!(require(m.get(..n) == b"MSH".get(..n)));
    if m.len() < 4 {
        return Parse::Short;
    }
    let sep = need!(byte(m, 3));
    need!(require(sep.is_ascii_punctuation()));
    let window = m.get(..m.len().min(MAX_MSH_LEN)).unwrap_or(m);
    let Some(seg_end) = window.iter().position(|&c| c == b'\r') else {
        return if m.len() >= MAX_MSH_LEN {
            Parse::Bad
        } else {
            // Not yet the whole segment; refuse early what cannot become one.
            need!(require(super::text::is_text(window)));
            Parse::Short
        };
    };
    let segment = window.get(..seg_end).unwrap_or(&[]);
    need!(require(super::text::is_text(segment)));
    let fields: Vec<&[u8]> = segment.split(|&c| c == sep).take(MSH_FIELDS + 1).collect();
    need!(require(fields.len() >= MSH_FIELDS));
    let field = |n: usize| fields.get(n - 1).copied().unwrap_or(&[]);
    // MSH-2: component, repetition, escape, subcomponent (and truncation, v2.7)
    // characters: distinct punctuation, none the field separator.
    let enc = field(2);
    let distinct = enc
        .iter()
        .enumerate()
        .all(|(i, c)| !enc.get(..i).unwrap_or(&[]).contains(c));
    need!(require(
        (3..=5).contains(&enc.len())
            && distinct
            && enc.iter().all(|&c| c.is_ascii_punctuation() && c != sep)
    ));
    let component = enc.first().copied().unwrap_or(b'^');
    // MSH-9: type ^ trigger (^ structure).
    let mt = field(9);
    let mut parts = mt.split(|&c| c == component);
    let kind = parts.next().unwrap_or(&[]);
    let trigger = parts.next().unwrap_or(&[]);
    need!(require(
        kind.len() == 3
            && kind
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && (trigger.is_empty()
                || (trigger.len() == 3 && trigger.iter().all(u8::is_ascii_alphanumeric)))
    ));
    // MSH-12: version ID, first component "2.x[.y]".
    let version = field(12).split(|&c| c == component).next().unwrap_or(&[]);
    need!(require(
        version.len() >= 3
            && version.starts_with(b"2.")
            && version
                .iter()
                .skip(2)
                .all(|c| c.is_ascii_digit() || *c == b'.')
            && version.get(2).is_some_and(u8::is_ascii_digit)
    ));
    let text = |b: &[u8]| super::super::util::printable(b);
    let app = |a: usize, f: usize| {
        let (a, f) = (text(field(a)), text(field(f)));
        if f.is_empty() {
            a
        } else {
            format!("{a}@{f}")
        }
    };
    Parse::Ok(Header {
        message_type: text(mt),
        version: text(version),
        sender: app(3, 4),
        receiver: app(5, 6),
    })
}

/// Names HL7 over MLLP.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let p = stream(cx.c2s, parse_mllp).or_else(|| stream(cx.s2c, parse_mllp));
    finish(
        cx,
        p.map(|h| {
            let mut c = Classification::new(
                "hl7",
                None,
                "setten.hl7.mllp_msh",
                "hl7.msh",
                format!(
                    "{} v{} from {} to {}",
                    h.message_type, h.version, h.sender, h.receiver
                ),
            );
            c.extra.meta = Meta {
                version: Some(h.version),
                ..Meta::default()
            };
            c
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::Flow;
    use super::*;

    /// ndpi-hl7.pcap frame 4: the MSH segment (start) of an ADT^A01 in MLLP; the patient
    /// segments that follow in the capture are replaced by a placeholder.
    const ADT: &[u8] = b"\x0bMSH|^~\\&|SENDING_APPLICATION|SENDING_FACILITY|RECEIVING_APPLICATION|RECEIVING_FACILITY|20110613083617||ADT^A01|934576120110613083617|P|2.3||||\rEVN|A01|20110613083617|||\rPID|1||X\r\x1c\r";

    #[test]
    fn adt_message_from_capture() {
        let h = parse_mllp(ADT).ok().unwrap();
        assert_eq!(h.message_type, "ADT^A01");
        assert_eq!(h.version, "2.3");
        let c = Flow::tcp(49242, 6661).c2s(ADT).yes(check);
        assert_eq!((c.protocol, c.service), ("hl7", None));
        assert_eq!(
            c.evidence[0].value,
            "ADT^A01 v2.3 from SENDING_APPLICATION@SENDING_FACILITY to RECEIVING_APPLICATION@RECEIVING_FACILITY"
        );
        assert!(!c.evidence[0].value.contains("PID"));
    }

    #[test]
    fn ack_from_the_server() {
        // ndpi-hl7.pcap frame 6 (start): the ACK.
        let ack = b"\x0bMSH|^~\\&|RECEIVING_APPLICATION|RECEIVING_FACILITY|SENDING_APPLICATION|SENDING_FACILITY|20110614075841||ACK|1407511|P|2.3||||\rMSA|AA|1407511\r\x1c\r";
        let c = Flow::tcp(49242, 6661).s2c(ack).yes(check);
        assert!(c.evidence[0].value.starts_with("ACK v2.3"));
    }

    #[test]
    fn cut_and_malformed() {
        // Cut before the segment ends: wait; at the end: no.
        assert!(Flow::tcp(1, 2).c2s(&ADT[..60]).is_wait(check));
        assert!(Flow::tcp(1, 2).c2s(&ADT[..60]).is_no_at_end(check));
        // No start block (raw HL7 without MLLP), a wrong version, a bad type.
        assert_eq!(parse_mllp(&ADT[1..]), Parse::Bad);
        let bad = String::from_utf8_lossy(ADT).replace("|2.3|", "|3.0|");
        assert_eq!(parse_mllp(bad.as_bytes()), Parse::Bad);
        let bad = String::from_utf8_lossy(ADT).replace("ADT^A01", "adt^A01");
        assert_eq!(parse_mllp(bad.as_bytes()), Parse::Bad);
        let bad = String::from_utf8_lossy(ADT).replace("^~\\&", "^^\\&");
        assert_eq!(parse_mllp(bad.as_bytes()), Parse::Bad);
        assert_eq!(parse_mllp(b"\x0bMSX|"), Parse::Bad);
        assert_eq!(parse_mllp(b"\x0bMS"), Parse::Short);
        assert!(Flow::tcp(1, 2)
            .c2s(b"\x0b\x00\x01")
            .s2c(b"\x0bMSH\x01")
            .is_no(check));
    }
}
