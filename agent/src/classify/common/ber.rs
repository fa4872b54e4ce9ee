//! A minimal BER reader (ITU-T X.690 8.1) for the ASN.1 protocols here: Kerberos, LDAP
//! and SNMP. Only what their first messages use: one-byte tags (low tag numbers) and
//! definite lengths, short or long form up to four length octets (Active Directory
//! writes non-minimal `84 xx xx xx xx` lengths, which BER allows). Not a detector.

use super::Parse;

/// Most length octets in the long form (X.690 8.1.3.5); four cover every length a first
/// message can have.
pub const MAX_LEN_OCTETS: usize = 4;

/// Universal tag: INTEGER (X.680 8.4).
pub const INTEGER: u8 = 0x02;
/// Universal tag: OCTET STRING.
pub const OCTET_STRING: u8 = 0x04;
/// Universal tag: OBJECT IDENTIFIER.
pub const OID: u8 = 0x06;
/// Universal tag: ENUMERATED.
pub const ENUMERATED: u8 = 0x0a;
/// Universal tag: SEQUENCE, constructed.
pub const SEQUENCE: u8 = 0x30;

/// One tag-length-value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The identifier octet.
    pub tag: u8,
    /// Declared length of the value.
    pub len: usize,
    /// Octets of identifier and length.
    pub hdr: usize,
    /// The value as far as the input goes (shorter than `len` when the input is cut).
    pub value: &'a [u8],
}

impl Tlv<'_> {
    /// The whole value is present.
    pub fn complete(&self) -> bool {
        self.value.len() == self.len
    }

    /// Octets the TLV takes, header included.
    pub fn total(&self) -> Option<usize> {
        self.hdr.checked_add(self.len)
    }
}

/// Reads the TLV at the start of `b`. `Short` when even the header is cut; a cut value is
/// returned as far as it goes. `Bad` for the high-tag-number form, the indefinite length
/// and more than [`MAX_LEN_OCTETS`] length octets.
pub fn read(b: &[u8]) -> Parse<Tlv<'_>> {
    let (Some(&tag), Some(&l0)) = (b.first(), b.get(1)) else {
        return Parse::Short;
    };
    if tag & 0x1f == 0x1f {
        return Parse::Bad;
    }
    let (len, hdr) = if l0 < 0x80 {
        (usize::from(l0), 2)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > MAX_LEN_OCTETS {
            return Parse::Bad;
        }
        let Some(octets) = b.get(2..2 + n) else {
            return Parse::Short;
        };
        let len = octets
            .iter()
            .fold(0usize, |acc, &o| (acc << 8) | usize::from(o));
        (len, 2 + n)
    };
    let end = hdr.saturating_add(len).min(b.len());
    Parse::Ok(Tlv {
        tag,
        len,
        hdr,
        value: b.get(hdr..end).unwrap_or(&[]),
    })
}

/// Reads a TLV with tag `tag` whose value is wholly present, and the bytes after it.
/// `Short` when cut, `Bad` for another tag.
pub fn expect(b: &[u8], tag: u8) -> Parse<(Tlv<'_>, &[u8])> {
    read(b).and_then(|t| {
        if t.tag != tag {
            Parse::Bad
        } else if !t.complete() {
            Parse::Short
        } else {
            let rest = t.total().and_then(|e| b.get(e..)).unwrap_or(&[]);
            Parse::Ok((t, rest))
        }
    })
}

/// A non-negative INTEGER value of one to eight octets (X.690 8.3), or `None`.
pub fn uint(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 8 || v.first().is_some_and(|&b| b & 0x80 != 0) {
        return None;
    }
    Some(v.iter().fold(0u64, |acc, &o| (acc << 8) | u64::from(o)))
}

/// Reads an INTEGER TLV and its non-negative value, and the bytes after it.
pub fn expect_uint(b: &[u8]) -> Parse<(u64, &[u8])> {
    expect(b, INTEGER).and_then(|(t, rest)| match uint(t.value) {
        Some(v) => Parse::Ok((v, rest)),
        None => Parse::Bad,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_lengths() {
        // X.690 8.1.3: short form, long form, AD's four-octet form.
        let t = read(b"\x02\x01\x05").ok().unwrap();
        assert_eq!((t.tag, t.len, t.hdr, t.value), (2, 1, 2, &b"\x05"[..]));
        let t = read(b"\x30\x81\x80rest").ok().unwrap();
        assert_eq!((t.len, t.hdr, t.value.len()), (128, 3, 4));
        assert!(!t.complete());
        let t = read(b"\x30\x84\x00\x00\x00\xcc").ok().unwrap();
        assert_eq!((t.len, t.hdr), (0xcc, 6));
    }

    #[test]
    fn refuses_what_first_messages_never_use() {
        assert_eq!(read(b"\x30\x80\x00\x00"), Parse::Bad); // indefinite
        assert_eq!(read(b"\x1f\x81\x01"), Parse::Bad); // high tag number
        assert_eq!(read(b"\x30\x85\x01\x00\x00\x00\x00"), Parse::Bad); // 5 octets
        assert_eq!(read(b"\x30"), Parse::Short);
        assert_eq!(read(b"\x30\x82\x01"), Parse::Short);
        assert_eq!(
            read(b"\x30\x84\xff\xff\xff\xff").ok().unwrap().len,
            0xffff_ffff
        );
    }

    #[test]
    fn integers() {
        assert_eq!(expect_uint(b"\x02\x01\x05xy"), Parse::Ok((5, &b"xy"[..])));
        assert_eq!(expect_uint(b"\x02\x01\xff"), Parse::Bad);
        assert_eq!(expect_uint(b"\x02\x00"), Parse::Bad);
        assert_eq!(expect_uint(b"\x04\x01\x05"), Parse::Bad);
        assert_eq!(expect_uint(b"\x02\x02\x05"), Parse::Short);
    }
}
