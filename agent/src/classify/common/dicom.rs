//! DICOM upper layer (DICOM PS3.8 9.3): the association request and its acceptance.
//!
//! `Yes` for an A-ASSOCIATE-RQ from the client (PS3.8 9.3.2) or an A-ASSOCIATE-AC from the
//! server (9.3.3) whose PDU type, reserved byte, protocol version 1 and PDU length agree,
//! whose AE titles are 16 bytes of the AE character set, not all spaces (PS3.5 6.2), and
//! whose first variable item is the Application Context Item naming the one DICOM
//! application context, "1.2.840.10008.3.1.1.1" (PS3.7 A.2.1). The AE titles and the
//! implementation version name (PS3.7 D.3.3.2), when present, are the evidence: they
//! name the modality, PACS or workstation.

use super::super::{Classification, Cx, Evidence, Verdict};
use super::{be16, be32, byte, finish, require, stream, take, Parse};

/// A-ASSOCIATE-RQ PDU type.
pub const ASSOCIATE_RQ: u8 = 0x01;
/// A-ASSOCIATE-AC PDU type.
pub const ASSOCIATE_AC: u8 = 0x02;
/// Octets from the PDU start to the first variable item (PS3.8 Table 9-11).
pub const FIXED_LEN: usize = 74;
/// Largest association PDU accepted: hundreds of presentation contexts fit well within.
pub const MAX_ASSOCIATE_PDU: u32 = 1 << 20;
/// The DICOM application context name (PS3.7 A.2.1).
pub const APPLICATION_CONTEXT: &[u8] = b"1.2.840.10008.3.1.1.1";
/// Application Context Item type.
const ITEM_APPLICATION_CONTEXT: u8 = 0x10;
/// User Information Item type.
const ITEM_USER_INFO: u8 = 0x50;
/// Implementation Version Name sub-item (PS3.7 D.3.3.2).
const SUB_IMPLEMENTATION_VERSION: u8 = 0x55;
/// Items walked looking for the user information.
const MAX_ITEMS: usize = 512;

/// What an association PDU shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Associate {
    /// PDU type (RQ or AC).
    pub pdu_type: u8,
    /// Called AE title, trimmed.
    pub called: String,
    /// Calling AE title, trimmed.
    pub calling: String,
    /// Implementation version name, when the bytes reach it.
    pub implementation: Option<String>,
}

/// An AE title: 16 bytes of printable ASCII other than backslash, not all spaces
/// (PS3.5 6.2, AE).
fn ae_title(b: &[u8]) -> Option<String> {
    let ok =
        b.iter().all(|&c| (0x20..0x7f).contains(&c) && c != b'\\') && b.iter().any(|&c| c != b' ');
    ok.then(|| String::from_utf8_lossy(b).trim().to_owned())
}

/// Parses an A-ASSOCIATE-RQ or -AC of type `pdu_type` at the start of `b`.
pub fn parse_associate(b: &[u8], pdu_type: u8) -> Parse<Associate> {
    need!(require(
        need!(byte(b, 0)) == pdu_type && need!(byte(b, 1)) == 0
    ));
    let len = need!(be32(b, 2));
    need!(require(
        (FIXED_LEN as u32 - 6 + 4 + APPLICATION_CONTEXT.len() as u32..=MAX_ASSOCIATE_PDU)
            .contains(&len)
    ));
    need!(require(need!(be16(b, 6)) == 0x0001));
    let called = need!(ae_title(need!(take(b, 10, 16))).map_or(Parse::Bad, Parse::Ok));
    let calling = need!(ae_title(need!(take(b, 26, 16))).map_or(Parse::Bad, Parse::Ok));
    // Application Context Item (PS3.8 9.3.2.1): type, reserved, length, name.
    need!(require(
        need!(byte(b, FIXED_LEN)) == ITEM_APPLICATION_CONTEXT && need!(byte(b, FIXED_LEN + 1)) == 0
    ));
    let item_len = usize::from(need!(be16(b, FIXED_LEN + 2)));
    need!(require(item_len == APPLICATION_CONTEXT.len()));
    need!(require(
        need!(take(b, FIXED_LEN + 4, item_len)) == APPLICATION_CONTEXT
    ));
    let end = (len as usize).saturating_add(6).min(b.len());
    let implementation =
        implementation_version(b.get(..end).unwrap_or(b), FIXED_LEN + 4 + item_len);
    Parse::Ok(Associate {
        pdu_type,
        called,
        calling,
        implementation,
    })
}

/// Walks the variable items from `off` to the User Information Item and returns its
/// Implementation Version Name, if the bytes reach it.
fn implementation_version(b: &[u8], mut off: usize) -> Option<String> {
    for _ in 0..MAX_ITEMS {
        let t = *b.get(off)?;
        let l = usize::from(super::super::util::be16(b, off + 2)?);
        if t == ITEM_USER_INFO {
            let items = b.get(off + 4..(off + 4 + l).min(b.len()))?;
            let mut s = 0;
            while let (Some(&st), Some(sl)) = (items.get(s), super::super::util::be16(items, s + 2))
            {
                let sl = usize::from(sl);
                if st == SUB_IMPLEMENTATION_VERSION {
                    let v = items.get(s + 4..s + 4 + sl)?;
                    return Some(super::super::util::printable(v).trim().to_owned());
                }
                s += 4 + sl;
            }
            return None;
        }
        off += 4 + l;
    }
    None
}

/// Names DICOM.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let p = stream(cx.c2s, |b| parse_associate(b, ASSOCIATE_RQ))
        .or_else(|| stream(cx.s2c, |b| parse_associate(b, ASSOCIATE_AC)));
    finish(
        cx,
        p.map(|a| {
            let what = if a.pdu_type == ASSOCIATE_RQ {
                "A-ASSOCIATE-RQ"
            } else {
                "A-ASSOCIATE-AC"
            };
            let mut c = Classification::new(
                "dicom",
                None,
                "setten.dicom.associate",
                "dicom.ae_titles",
                format!("{what} called={} calling={}", a.called, a.calling),
            );
            if let Some(v) = a.implementation.filter(|v| !v.is_empty()) {
                c.evidence.push(Evidence::new(
                    "setten.dicom.implementation",
                    "dicom.implementation_version",
                    v,
                ));
            }
            c
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    /// An A-ASSOCIATE-RQ as PS3.8 Table 9-11 lays it out (as DCMTK's storescu sends it):
    /// called "ORTHANC", calling "STORESCU", the application context, one presentation
    /// context (CT Image Storage, Implicit VR Little Endian), and user information with
    /// maximum length, implementation class UID and version name "OFFIS_DCMTK_366".
    fn request() -> Vec<u8> {
        let mut items = Vec::new();
        items.extend_from_slice(&[0x10, 0, 0, 21]);
        items.extend_from_slice(APPLICATION_CONTEXT);
        let abstract_syntax = b"1.2.840.10008.5.1.4.1.1.2";
        let transfer = b"1.2.840.10008.1.2";
        let mut pc = vec![1, 0, 0xff, 0];
        pc.extend_from_slice(&[0x30, 0, 0, abstract_syntax.len() as u8]);
        pc.extend_from_slice(abstract_syntax);
        pc.extend_from_slice(&[0x40, 0, 0, transfer.len() as u8]);
        pc.extend_from_slice(transfer);
        items.extend_from_slice(&[0x20, 0, 0, pc.len() as u8]);
        items.extend_from_slice(&pc);
        let class_uid = b"1.2.276.0.7230010.3.0.3.6.6";
        let version = b"OFFIS_DCMTK_366";
        let mut ui = hex("51 00 0004 00004000");
        ui.extend_from_slice(&[0x52, 0, 0, class_uid.len() as u8]);
        ui.extend_from_slice(class_uid);
        ui.extend_from_slice(&[0x55, 0, 0, version.len() as u8]);
        ui.extend_from_slice(version);
        items.extend_from_slice(&[0x50, 0, 0, ui.len() as u8]);
        items.extend_from_slice(&ui);
        let mut pdu = vec![0x01, 0];
        pdu.extend_from_slice(&((FIXED_LEN - 6 + items.len()) as u32).to_be_bytes());
        pdu.extend_from_slice(&[0, 1, 0, 0]);
        pdu.extend_from_slice(b"ORTHANC         STORESCU        ");
        pdu.extend_from_slice(&[0; 32]);
        pdu.extend_from_slice(&items);
        pdu
    }

    #[test]
    fn association_request() {
        let a = parse_associate(&request(), ASSOCIATE_RQ).ok().unwrap();
        assert_eq!(
            (a.called.as_str(), a.calling.as_str()),
            ("ORTHANC", "STORESCU")
        );
        assert_eq!(a.implementation.as_deref(), Some("OFFIS_DCMTK_366"));
        let c = Flow::tcp(50000, 104).c2s(&request()).yes(check);
        assert_eq!((c.protocol, c.service), ("dicom", None));
        assert_eq!(
            c.evidence[0].value,
            "A-ASSOCIATE-RQ called=ORTHANC calling=STORESCU"
        );
        assert_eq!(c.evidence[1].value, "OFFIS_DCMTK_366");
        // Only the first 100 bytes: still sure (the context name is in them).
        assert!(parse_associate(&request()[..100], ASSOCIATE_RQ)
            .ok()
            .is_some());
        // 80 bytes: wait.
        assert!(Flow::tcp(50000, 104).c2s(&request()[..80]).is_wait(check));
    }

    #[test]
    fn acceptance_from_the_server() {
        let mut ac = request();
        ac[0] = ASSOCIATE_AC;
        let c = Flow::tcp(50000, 11112).s2c(&ac).yes(check);
        assert!(c.evidence[0].value.starts_with("A-ASSOCIATE-AC"));
        // An RQ from the server or an AC from the client is not an association.
        assert_eq!(parse_associate(&request(), ASSOCIATE_AC), Parse::Bad);
    }

    #[test]
    fn fields_must_agree() {
        let mut b = request();
        b[7] = 2; // protocol version
        assert_eq!(parse_associate(&b, ASSOCIATE_RQ), Parse::Bad);
        let mut b = request();
        b[10..26].copy_from_slice(&[b' '; 16]); // called AE all spaces
        assert_eq!(parse_associate(&b, ASSOCIATE_RQ), Parse::Bad);
        let mut b = request();
        b[12] = b'\\';
        assert_eq!(parse_associate(&b, ASSOCIATE_RQ), Parse::Bad);
        let mut b = request();
        b[FIXED_LEN + 4 + 20] = b'2'; // another context name
        assert_eq!(parse_associate(&b, ASSOCIATE_RQ), Parse::Bad);
        let mut b = request();
        b[2] = 0x40; // absurd PDU length
        assert_eq!(parse_associate(&b, ASSOCIATE_RQ), Parse::Bad);
        assert!(Flow::tcp(50000, 104)
            .c2s(b"\x01\x00\x00\x00\x00\x10hello")
            .s2c(b"nope")
            .is_no(check));
    }
}
