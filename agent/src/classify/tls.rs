//! TLS: records and handshake messages of both directions, reassembled across records
//! (a ClientHello or Certificate split over several records or segments still parses).
//!
//! Gives every TLS flow its metadata — negotiated version, SNI, ALPN, JA4, and for
//! TLS ≤ 1.2 the server's leaf certificate (subject, issuer, SANs, validity) — and then
//! lets the signature catalogue (`rules/signatures.toml`) name SSL-VPN appliances,
//! remote-access tools and consumer VPNs from those fields. Tor is recognised by the
//! shape of the names it generates (see [`tor_like`]).
//!
//! Only JA4 (BSD-3-Clause) is computed; JA4S/JA4X and the rest of JA4+ are under a
//! licence that forbids use in products.

use super::util::hex;
use super::{CertMeta, Classification, Cx, Evidence, Service, TlsMeta, Verdict};
use crate::rules::Field;
use sha2::{Digest, Sha256};

/// TLS record content types (RFC 8446 section 5.1).
pub mod content {
    /// change_cipher_spec.
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    /// alert.
    pub const ALERT: u8 = 21;
    /// handshake.
    pub const HANDSHAKE: u8 = 22;
    /// application_data.
    pub const APPLICATION_DATA: u8 = 23;
}

/// Handshake message types (RFC 8446 section 4).
pub mod hs {
    /// client_hello.
    pub const CLIENT_HELLO: u8 = 1;
    /// server_hello.
    pub const SERVER_HELLO: u8 = 2;
    /// certificate.
    pub const CERTIFICATE: u8 = 11;
}

/// Extension types (IANA "TLS ExtensionType Values").
pub mod ext {
    /// server_name (RFC 6066).
    pub const SERVER_NAME: u16 = 0;
    /// supported_groups (RFC 8446 4.2.7; RFC 4492's elliptic_curves).
    pub const SUPPORTED_GROUPS: u16 = 10;
    /// signature_algorithms (RFC 8446).
    pub const SIGNATURE_ALGORITHMS: u16 = 13;
    /// application_layer_protocol_negotiation (RFC 7301).
    pub const ALPN: u16 = 16;
    /// supported_versions (RFC 8446).
    pub const SUPPORTED_VERSIONS: u16 = 43;
}

/// Largest record payload: 2^14 plus the 2048 bytes of expansion TLS 1.2 allows
/// (RFC 5246 section 6.2.3).
pub const MAX_RECORD: usize = 16384 + 2048;
/// Most handshake bytes collected per direction.
pub const MAX_HANDSHAKE: usize = 16 * 1024;
/// Most extensions read from one hello.
pub const MAX_EXTENSIONS: usize = 64;
/// Most ALPN values kept.
pub const MAX_ALPN: usize = 8;

/// One direction's records, as far as they are present.
#[derive(Debug, Default)]
struct Records<'a> {
    /// Concatenated handshake-record payloads (handshake messages may span records):
    /// borrowed while one record holds them all, as it mostly does.
    handshake: std::borrow::Cow<'a, [u8]>,
    /// Content types seen, in order (the first [`MAX_TYPES`]).
    types: [u8; MAX_TYPES],
    /// Entries of `types` in use.
    n_types: usize,
    /// The bytes did not look like TLS records.
    not_tls: bool,
}

/// Record content types kept per direction.
const MAX_TYPES: usize = 16;

impl Records<'_> {
    /// Content types seen, in order.
    fn types(&self) -> &[u8] {
        self.types.get(..self.n_types).unwrap_or(&[])
    }
}

fn records(b: &[u8]) -> Records<'_> {
    let mut r = Records::default();
    let mut rest = b;
    while rest.len() >= 5 {
        let ctype = rest[0];
        let major = rest[1];
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if !(content::CHANGE_CIPHER_SPEC..=content::APPLICATION_DATA).contains(&ctype)
            || major != 3
            || rest[2] > 4
            || len == 0
            || len > MAX_RECORD
        {
            if r.n_types == 0 {
                r.not_tls = true;
            }
            break;
        }
        if let Some(slot) = r.types.get_mut(r.n_types) {
            *slot = ctype;
            r.n_types += 1;
        }
        let body = rest
            .get(5..5 + len)
            .unwrap_or_else(|| rest.get(5..).unwrap_or(&[]));
        if ctype == content::HANDSHAKE {
            let room = MAX_HANDSHAKE.saturating_sub(r.handshake.len());
            let take = body.get(..body.len().min(room)).unwrap_or(&[]);
            if r.handshake.is_empty() {
                r.handshake = std::borrow::Cow::Borrowed(take);
            } else if !take.is_empty() {
                r.handshake.to_mut().extend_from_slice(take);
            }
        } else if ctype != content::HANDSHAKE && r.handshake.is_empty() && ctype != content::ALERT {
            // Handshake must come first; once encrypted records flow, stop.
        }
        match rest.get(5 + len..) {
            Some(next) => rest = next,
            None => break,
        }
        if ctype == content::APPLICATION_DATA || ctype == content::CHANGE_CIPHER_SPEC {
            // After these, handshake messages (if any) are encrypted.
            break;
        }
    }
    if rest.len() < 5 && r.n_types == 0 && !b.is_empty() {
        // Fewer than five bytes: cannot tell yet unless they already contradict TLS.
        if b.first().is_some_and(|&t| {
            !(content::CHANGE_CIPHER_SPEC..=content::APPLICATION_DATA).contains(&t)
        }) || b.get(1).is_some_and(|&m| m != 3)
        {
            r.not_tls = true;
        }
    }
    r
}

/// Handshake messages in concatenated handshake bytes: (type, body). A truncated last
/// message is returned with what is present and `complete = false`.
fn messages(b: &[u8]) -> impl Iterator<Item = (u8, &[u8], bool)> {
    let mut rest = b;
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let t = rest[0];
        let len = (usize::from(rest[1]) << 16) | (usize::from(rest[2]) << 8) | usize::from(rest[3]);
        let body_all = rest.get(4..).unwrap_or(&[]);
        if body_all.len() >= len {
            let body = body_all.get(..len).unwrap_or(&[]);
            rest = body_all.get(len..).unwrap_or(&[]);
            Some((t, body, true))
        } else {
            let body = body_all;
            rest = &[];
            Some((t, body, false))
        }
    })
}

/// GREASE values (RFC 8701): 0x?a?a with both bytes equal.
pub fn is_grease(v: u16) -> bool {
    (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// What a ClientHello tells.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// legacy_version.
    pub version: u16,
    /// Cipher suites in order.
    pub ciphers: Vec<u16>,
    /// Extension types in order.
    pub extensions: Vec<u16>,
    /// server_name host_name.
    pub sni: Option<String>,
    /// ALPN values.
    pub alpn: Vec<String>,
    /// supported_versions values.
    pub versions: Vec<u16>,
    /// signature_algorithms values in order.
    pub sig_algs: Vec<u16>,
    /// supported_groups is Tor's list: P-256, X25519, P-224 in that order, post-quantum
    /// hybrids aside (tor sets it itself and logs "Set list of supported TLS groups to:
    /// P-256:X25519:P-224"; no browser or common library default offers P-224 with
    /// X25519, and OpenSSL 1.0, which offered P-224, had no X25519).
    pub tor_groups: bool,
}

/// Parses a ClientHello body (after the 4-byte handshake header).
pub fn parse_client_hello(body: &[u8]) -> Option<ClientHello> {
    let (_, ch) = tls_parser::parse_tls_handshake_client_hello(body).ok()?;
    let mut out = ClientHello {
        version: ch.version.0,
        ciphers: ch.ciphers.iter().map(|c| c.0).collect(),
        ..ClientHello::default()
    };
    if let Some(exts) = ch.ext {
        walk_extensions(exts, |t, data| {
            out.extensions.push(t);
            match t {
                ext::SERVER_NAME => out.sni = parse_sni(data),
                ext::ALPN => out.alpn = parse_alpn(data),
                ext::SUPPORTED_VERSIONS => {
                    // Client form: 1-byte length, then u16 versions (RFC 8446 4.2.1).
                    if let Some(list) = data.get(1..) {
                        out.versions = u16s(list);
                    }
                }
                ext::SIGNATURE_ALGORITHMS => {
                    if let Some(list) = data.get(2..) {
                        out.sig_algs = u16s(list);
                    }
                }
                ext::SUPPORTED_GROUPS => {
                    // 2-byte length, then u16 named groups (RFC 8446 4.2.7).
                    out.tor_groups = data.get(2..).is_some_and(is_tor_groups);
                }
                _ => {}
            }
        });
    }
    Some(out)
}

/// Whether a supported_groups list is exactly secp256r1 (0x0017), x25519 (0x001d),
/// secp224r1 (0x0015), leaving out post-quantum hybrids (0x11eb-0x11ed, the draft Kyber
/// code points 0x6399/0x639a) and GREASE (RFC 8701: 0x?a?a).
fn is_tor_groups(list: &[u8]) -> bool {
    let mut want = [0x0017u16, 0x001d, 0x0015].into_iter();
    for g in list.chunks_exact(2).take(64) {
        let g = u16::from_be_bytes([g[0], g[1]]);
        let hybrid = (0x11eb..=0x11ed).contains(&g) || g == 0x6399 || g == 0x639a;
        let grease = g & 0x0f0f == 0x0a0a && g >> 8 == g & 0xff;
        if hybrid || grease {
            continue;
        }
        if want.next() != Some(g) {
            return false;
        }
    }
    want.next().is_none()
}

fn u16s(b: &[u8]) -> Vec<u16> {
    b.chunks_exact(2)
        .take(256)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

fn walk_extensions(mut b: &[u8], mut f: impl FnMut(u16, &[u8])) {
    let mut n = 0;
    while b.len() >= 4 && n < MAX_EXTENSIONS {
        let t = u16::from_be_bytes([b[0], b[1]]);
        let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
        let Some(data) = b.get(4..4 + len) else { break };
        f(t, data);
        b = b.get(4 + len..).unwrap_or(&[]);
        n += 1;
    }
}

/// RFC 6066 section 3: server_name_list of (type 0 = host_name, opaque name).
fn parse_sni(data: &[u8]) -> Option<String> {
    let list = data.get(2..)?;
    if *list.first()? != 0 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([*list.get(1)?, *list.get(2)?]));
    let name = list.get(3..3 + len)?;
    let s = std::str::from_utf8(name).ok()?;
    if s.is_empty() || s.len() > 255 {
        return None;
    }
    Some(s.to_ascii_lowercase())
}

/// RFC 7301 section 3.1: protocol_name_list of length-prefixed names.
fn parse_alpn(data: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = data.get(2..).unwrap_or(&[]);
    while let Some((&len, tail)) = rest.split_first() {
        let Some(name) = tail.get(..usize::from(len)) else {
            break;
        };
        if out.len() < MAX_ALPN {
            out.push(String::from_utf8_lossy(name).into_owned());
        }
        rest = tail.get(usize::from(len)..).unwrap_or(&[]);
    }
    out
}

/// What a ServerHello tells: the negotiated version and ALPN.
fn parse_server_hello(body: &[u8]) -> Option<(u16, Option<String>)> {
    let (_, sh) = tls_parser::parse_tls_handshake_server_hello(body).ok()?;
    let mut version = sh.version.0;
    let mut alpn = None;
    if let Some(exts) = sh.ext {
        walk_extensions(exts, |t, data| match t {
            // Server form: the selected version itself (RFC 8446 4.2.1).
            ext::SUPPORTED_VERSIONS if data.len() == 2 => {
                version = u16::from_be_bytes([data[0], data[1]]);
            }
            ext::ALPN => alpn = parse_alpn(data).into_iter().next(),
            _ => {}
        });
    }
    Some((version, alpn))
}

/// Version name.
pub fn version_name(v: u16) -> String {
    match v {
        0x0304 => "1.3".into(),
        0x0303 => "1.2".into(),
        0x0302 => "1.1".into(),
        0x0301 => "1.0".into(),
        0x0300 => "ssl3".into(),
        other => format!("0x{other:04x}"),
    }
}

/// JA4 (FoxIO, BSD-3-Clause; github.com/FoxIO-LLC/ja4 technical_details/JA4.md):
/// `t` + version + `d`/`i` + cipher count + extension count + ALPN first/last character,
/// then the truncated SHA-256 of the sorted ciphers, then of the sorted extensions
/// (without SNI and ALPN) and the signature algorithms in order.
pub fn ja4(ch: &ClientHello, transport: char) -> String {
    // The same client software sends the same hello fields again and again (a site has a
    // handful of browsers and agents), so the fingerprint is kept by the fields it is
    // made of; the whole key is compared, not only its hash.
    JA4_KEY.with(|key| {
        let mut key = key.borrow_mut();
        ja4_key(ch, transport, &mut key);
        JA4_CACHE.with(|c| c.borrow_mut().get(&key, |_| ja4_of(ch, transport)).1)
    })
}

thread_local! {
    /// JA4 by [`ja4_key`] (the output side), bounded like the certificate caches.
    static JA4_CACHE: std::cell::RefCell<BytesCache<String>> =
        std::cell::RefCell::new(BytesCache::new());
    /// Scratch space for the key being looked up.
    static JA4_KEY: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::default();
}

/// Everything [`ja4_of`] reads, each list behind its length.
fn ja4_key(ch: &ClientHello, transport: char, key: &mut Vec<u8>) {
    key.clear();
    key.extend_from_slice(&u32::from(transport).to_be_bytes());
    key.push(u8::from(ch.sni.is_some()));
    key.extend_from_slice(&ch.version.to_be_bytes());
    for list in [&ch.versions, &ch.ciphers, &ch.extensions, &ch.sig_algs] {
        key.extend_from_slice(&(list.len() as u64).to_be_bytes());
        list.iter()
            .for_each(|&v| key.extend_from_slice(&v.to_be_bytes()));
    }
    let alpn = ch.alpn.first().map_or(&[][..], |a| a.as_bytes());
    key.extend_from_slice(&(alpn.len() as u64).to_be_bytes());
    key.extend_from_slice(alpn);
}

fn ja4_of(ch: &ClientHello, transport: char) -> String {
    let version = ch
        .versions
        .iter()
        .copied()
        .filter(|v| !is_grease(*v))
        .max()
        .unwrap_or(ch.version);
    let v = match version {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    };
    let sni = if ch.sni.is_some() { 'd' } else { 'i' };
    let ciphers: Vec<u16> = ch
        .ciphers
        .iter()
        .copied()
        .filter(|c| !is_grease(*c))
        .collect();
    let exts: Vec<u16> = ch
        .extensions
        .iter()
        .copied()
        .filter(|e| !is_grease(*e))
        .collect();
    let alpn = match ch.alpn.first() {
        None => "00".to_owned(),
        Some(a) if a.is_empty() => "00".to_owned(),
        Some(a) => {
            let bytes = a.as_bytes();
            let (f, l) = (bytes[0], bytes[bytes.len() - 1]);
            if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
                format!("{}{}", f as char, l as char)
            } else {
                let h = hex(bytes);
                let hb = h.as_bytes();
                format!("{}{}", hb[0] as char, hb[hb.len() - 1] as char)
            }
        }
    };
    let a = format!(
        "{transport}{v}{sni}{:02}{:02}{alpn}",
        ciphers.len().min(99),
        exts.len().min(99)
    );
    let mut sorted_c = ciphers.clone();
    sorted_c.sort_unstable();
    let b = trunc_hash(&join_hex(&sorted_c));
    let mut sorted_e: Vec<u16> = exts
        .iter()
        .copied()
        .filter(|e| *e != ext::SERVER_NAME && *e != ext::ALPN)
        .collect();
    sorted_e.sort_unstable();
    let c = if sorted_e.is_empty() {
        "000000000000".to_owned()
    } else {
        let mut s = join_hex(&sorted_e);
        let sig: Vec<u16> = ch
            .sig_algs
            .iter()
            .copied()
            .filter(|x| !is_grease(*x))
            .collect();
        if !sig.is_empty() {
            s.push('_');
            s.push_str(&join_hex(&sig));
        }
        trunc_hash(&s)
    };
    format!("{a}_{b}_{c}")
}

fn join_hex(v: &[u16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(v.len() * 5);
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        for shift in [12u16, 8, 4, 0] {
            s.push(char::from(HEX[usize::from((x >> shift) & 0xf)]));
        }
    }
    s
}

fn trunc_hash(s: &str) -> String {
    if s.is_empty() {
        return "000000000000".into();
    }
    let d = Sha256::digest(s.as_bytes());
    hex(&d[..6])
}

/// The leaf certificate from a Certificate message body (RFC 5246 7.4.2: a 3-byte list
/// length, then 3-byte-length-prefixed DER certificates; the leaf is first). Works on a
/// truncated message as long as the leaf is complete.
fn leaf_certificate(body: &[u8]) -> Option<CertMeta> {
    let der = body.get(6..leaf_end(body)?)?;
    CERT_CACHE.with(|c| c.borrow_mut().get(der, read_certificate).1)
}

/// Byte strings seen before, each with what was made of it, bounded by the bytes held.
/// A server hands every client the same certificate, so most TLS flows of a network carry
/// one seen before: the packet path keeps one shared copy of it per cache, and the output
/// reads it once (Zeek keeps an X509 certificate cache for the same reason:
/// `X509::certificate_cache`, zeek/scripts/base/files/x509/main.zeek). What comes out is
/// the same as without the cache.
struct BytesCache<V> {
    /// Hash of the bytes → (the shared copy, what was made of it); a hash match is
    /// confirmed on the bytes.
    map: hashbrown::HashMap<u64, (std::sync::Arc<[u8]>, V), foldhash::fast::FixedState>,
    /// Bytes held, bounded by [`CERT_CACHE_BYTES`].
    bytes: usize,
}

/// Bytes a cache holds at most (per thread) before it starts over.
const CERT_CACHE_BYTES: usize = 1 << 20;

thread_local! {
    /// Certificates read, by their DER bytes (the output side).
    static CERT_CACHE: std::cell::RefCell<BytesCache<Option<CertMeta>>> =
        std::cell::RefCell::new(BytesCache::new());
    /// Certificate message bytes waiting for `resolve`, shared between flows (the packet
    /// path): a capture's open flows would otherwise each hold a copy until the end.
    static CERT_BYTES: std::cell::RefCell<BytesCache<()>> =
        std::cell::RefCell::new(BytesCache::new());
}

impl<V: Clone> BytesCache<V> {
    fn new() -> BytesCache<V> {
        BytesCache {
            map: hashbrown::HashMap::default(),
            bytes: 0,
        }
    }

    /// The shared copy of `b` and what `make` made of it, made now if `b` is new.
    fn get(&mut self, b: &[u8], make: impl FnOnce(&[u8]) -> V) -> (std::sync::Arc<[u8]>, V) {
        use std::hash::BuildHasher;
        let h = foldhash::fast::FixedState::default().hash_one(b);
        if let Some((seen, v)) = self.map.get(&h) {
            if **seen == *b {
                return (seen.clone(), v.clone());
            }
        }
        let copy: std::sync::Arc<[u8]> = b.into();
        let v = make(b);
        if b.len() <= CERT_CACHE_BYTES / 4 {
            if self.bytes + b.len() > CERT_CACHE_BYTES {
                self.map.clear();
                self.bytes = 0;
            }
            if let Some((old, _)) = self.map.insert(h, (copy.clone(), v.clone())) {
                self.bytes -= old.len();
            }
            self.bytes += b.len();
        }
        (copy, v)
    }
}

/// The fields of one DER certificate.
fn read_certificate(der: &[u8]) -> Option<CertMeta> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject().to_string();
    let issuer = cert.issuer().to_string();
    let mut san = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for n in &ext.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                if san.len() < 32 {
                    san.push(d.to_ascii_lowercase());
                }
            }
        }
    }
    let validity = cert.validity();
    let fmt = |t: &x509_parser::time::ASN1Time| {
        let secs = u64::try_from(t.timestamp()).unwrap_or(0);
        let full = crate::record::Rfc3339(secs.saturating_mul(1_000_000)).to_string();
        // Drop the microseconds: certificates carry whole seconds.
        match full.split_once('.') {
            Some((head, _)) => format!("{head}Z"),
            None => full,
        }
    };
    Some(CertMeta {
        self_signed: subject == issuer,
        not_before: fmt(&validity.not_before),
        not_after: fmt(&validity.not_after),
        subject,
        issuer,
        san,
    })
}

/// Tor's link handshake uses generated host names: the client's SNI is
/// `www.<4..25 base32 chars>.com`, the server's certificate subject CN
/// `www.<8..20>.net` issued by CN `www.<8..20>.com` (tor `src/lib/tls/tortls.c`,
/// `crypto_random_hostname()` in `src/lib/crypt_ops/crypto_rand.c`, base32 alphabet
/// a-z and 2-7).
pub fn tor_like(
    sni: Option<&str>,
    alpn: &[String],
    tor_groups: bool,
    cert: Option<&CertMeta>,
) -> Option<Evidence> {
    fn random_host(s: &str, min: usize, max: usize, tld: &str) -> bool {
        let Some(mid) = s.strip_prefix("www.").and_then(|r| r.strip_suffix(tld)) else {
            return false;
        };
        (min..=max).contains(&mid.len())
            && mid
                .bytes()
                .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c))
    }
    fn cn(dn: &str) -> Option<&str> {
        dn.split(',')
            .map(str::trim)
            .find_map(|p| p.strip_prefix("CN="))
    }
    if let Some(c) = cert {
        let (Some(s), Some(i)) = (cn(&c.subject), cn(&c.issuer)) else {
            return None;
        };
        if random_host(s, 8, 20, ".net")
            && random_host(i, 8, 20, ".com")
            && c.san.is_empty()
            && c.subject.split(',').count() == 1
        {
            return Some(Evidence::new(
                "setten.tor.cert-names",
                "tls.cert.subject",
                format!("{} (issuer {})", c.subject, c.issuer),
            ));
        }
        return None;
    }
    // Without a visible certificate (TLS 1.3): the generated SNI and no ALPN (browsers
    // and common clients always offer one), and either a digit in a name of eight or
    // more (random base32 of that length almost always has one; real names like
    // www.example.com do not) or Tor's own group list (see [`ClientHello::tor_groups`]):
    // its shorter and digit-free names (about a quarter of them) are told apart from
    // real ones that way.
    let s = sni?;
    if !alpn.is_empty() || !random_host(s, 4, 25, ".com") {
        return None;
    }
    let digit = s.bytes().skip(4).any(|c| (b'2'..=b'7').contains(&c));
    if digit && random_host(s, 8, 25, ".com") {
        return Some(Evidence::new("setten.tor.sni-shape", "tls.sni", s));
    }
    if tor_groups {
        return Some(Evidence::new(
            "setten.tor.sni-shape",
            "tls.sni",
            format!("{s} (no ALPN, Tor's groups P-256, X25519, P-224)"),
        ));
    }
    None
}

/// Whether `b` opens with a TLS handshake record whose first message is a ServerHello
/// (RFC 8446 4: type 2; a HelloRetryRequest has the same type), read as every other
/// record is.
fn starts_with_server_hello(b: &[u8]) -> bool {
    let r = records(b);
    !r.not_tls
        && r.types().first() == Some(&content::HANDSHAKE)
        && messages(&r.handshake)
            .next()
            .is_some_and(|(t, _, _)| t == hs::SERVER_HELLO)
}

/// Detects TLS and refines it with the catalogue.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    let c2s = cx.c2s.bytes();
    if c2s.is_empty() {
        // TLS clients speak first; a server speaking first is not TLS, unless what it
        // says is a ServerHello: then the ClientHello was captured after its answer (a
        // mirror port or two merged taps reorder the directions) and is still to come.
        let s2c = cx.s2c.bytes();
        return if !cx.last && (s2c.is_empty() || starts_with_server_hello(s2c)) {
            Verdict::Wait
        } else {
            Verdict::No
        };
    }
    match handshake(
        c2s,
        cx.s2c.bytes(),
        cx.last,
        cx.c2s.is_done(),
        cx.s2c.is_done(),
    ) {
        Handshake::No => Verdict::No,
        Handshake::Wait => Verdict::Wait,
        Handshake::Claim => Verdict::Claim,
        // The hello never completed; the record and handshake headers agree, so this is
        // TLS, with no more to say.
        Handshake::Done(None) => Verdict::Yes(finish(cx.rules, None, None, None, None)),
        // The flow is TLS. Turning the handshake into metadata (ClientHello fields, JA4,
        // certificate, catalogue matches) is left to `resolve`, which the output thread
        // runs, so the packet path only copies the handshake bytes.
        Handshake::Done(Some(pending)) => Verdict::Yes(Classification {
            protocol: "tls",
            deferred: Some(super::Deferred::Tls(Box::new(pending))),
            ..Classification::default()
        }),
    }
}

/// What the opening bytes of a TLS handshake say so far.
#[derive(Debug)]
pub enum Handshake {
    /// Not TLS.
    No,
    /// Not decidable yet.
    Wait,
    /// A whole ClientHello: TLS, with the server's side still to come.
    Claim,
    /// Decided: the handshake bytes to read, or none when the hello never completed.
    Done(Option<Pending>),
}

/// Reads a TLS handshake from the client's first bytes `c2s` (not empty) and the
/// server's `s2c`: in a TLS flow from its start, or after another protocol's opening (an
/// RDP X.224 negotiation). `last`: no more bytes will come; `*_done`: a direction's
/// opening window is full.
pub fn handshake(c2s: &[u8], s2c: &[u8], last: bool, c2s_done: bool, s2c_done: bool) -> Handshake {
    let client = records(c2s);
    if client.not_tls
        || client
            .types()
            .first()
            .is_some_and(|t| *t != content::HANDSHAKE)
    {
        return Handshake::No;
    }
    let Some((t, body, complete)) = messages(&client.handshake).next() else {
        return if last { Handshake::No } else { Handshake::Wait };
    };
    if t != hs::CLIENT_HELLO {
        return Handshake::No;
    }
    // The full ClientHello parse waits until the flow is decided (below); while the
    // server side is still coming, checking the message header is enough.
    let hello_body = if complete {
        if body.len() < 38 || body.first() != Some(&3) {
            return Handshake::No;
        }
        body
    } else if last || c2s_done {
        return Handshake::Done(None);
    } else {
        return Handshake::Wait;
    };

    // Server side: the negotiated version, and the certificate while it is in the clear.
    let server = records(s2c);
    let mut negotiated = None;
    let mut alpn_selected = None;
    // The certificate is parsed once, when the flow is decided (x509 parsing is the most
    // expensive step here and `detect` runs again on every new segment).
    let mut cert_body: Option<&[u8]> = None;
    let mut server_done = server.not_tls;
    for (t, body, complete) in messages(&server.handshake) {
        match t {
            hs::SERVER_HELLO if complete => {
                if let Some((v, a)) = parse_server_hello(body) {
                    negotiated = Some(v);
                    alpn_selected = a;
                    if v >= 0x0304 {
                        server_done = true;
                    }
                }
            }
            hs::CERTIFICATE => {
                cert_body = Some(body);
                if complete || leaf_present(body) {
                    server_done = true;
                }
            }
            _ => {}
        }
        if server_done {
            break;
        }
    }
    if server.types().iter().any(|t| {
        *t == content::CHANGE_CIPHER_SPEC || *t == content::APPLICATION_DATA || *t == content::ALERT
    }) {
        server_done = true;
    }
    if !server_done && !last && !s2c_done {
        // A whole ClientHello: the flow is TLS whatever the server says.
        return Handshake::Claim;
    }
    Handshake::Done(Some(Pending {
        hello: compact_hello(hello_body),
        negotiated,
        alpn_selected,
        cert: cert_body.map(|b| CERT_BYTES.with(|c| c.borrow_mut().get(leaf_only(b), |_| ()).0)),
    }))
}

/// A ClientHello body reduced to what [`parse_client_hello`] reads: the session id is
/// dropped and extensions keep their type but not their data, except server_name,
/// supported_groups, signature_algorithms, ALPN and supported_versions. Key shares (over a kilobyte with
/// a post-quantum group), padding and tickets are the bulk of a modern hello and are
/// never read. A body whose layout does not add up (RFC 8446 section 4.1.2) is kept
/// as it is.
fn compact_hello(body: &[u8]) -> Vec<u8> {
    fn split(b: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
        (b.len() >= n).then(|| b.split_at(n))
    }
    let compact = || -> Option<Vec<u8>> {
        let (fixed, rest) = split(body, 2 + 32)?;
        let (&sid_len, rest) = rest.split_first()?;
        let (_, rest) = split(rest, usize::from(sid_len))?;
        let cs_len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
        let (ciphers, rest) = split(rest, 2 + cs_len)?;
        let comp_len = usize::from(*rest.first()?);
        let (comp, rest) = split(rest, 1 + comp_len)?;
        let mut out = Vec::with_capacity(body.len());
        out.extend_from_slice(fixed);
        out.push(0);
        out.extend_from_slice(ciphers);
        out.extend_from_slice(comp);
        if rest.is_empty() {
            return Some(out);
        }
        let ext_len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
        let mut exts = rest.get(2..)?;
        if exts.len() != ext_len {
            return None;
        }
        let at = out.len();
        out.extend_from_slice(&[0, 0]);
        while !exts.is_empty() {
            let (head, tail) = split(exts, 4)?;
            let t = u16::from_be_bytes([head[0], head[1]]);
            let (data, tail) = split(tail, usize::from(u16::from_be_bytes([head[2], head[3]])))?;
            out.extend_from_slice(&t.to_be_bytes());
            if matches!(
                t,
                ext::SERVER_NAME
                    | ext::SUPPORTED_GROUPS
                    | ext::SIGNATURE_ALGORITHMS
                    | ext::ALPN
                    | ext::SUPPORTED_VERSIONS
            ) {
                out.extend_from_slice(&head[2..4]);
                out.extend_from_slice(data);
            } else {
                out.extend_from_slice(&[0, 0]);
            }
            exts = tail;
        }
        let new_len = u16::try_from(out.len() - at - 2).ok()?.to_be_bytes();
        out.get_mut(at..at + 2)?.copy_from_slice(&new_len);
        // Exactly sized: the pending copy lives as long as the flow.
        Some(out.as_slice().to_vec())
    };
    compact().unwrap_or_else(|| body.to_vec())
}

/// A Certificate message body cut after its first certificate, the leaf (RFC 5246
/// 7.4.2); the rest of the chain is never read. Unchanged when the leaf is incomplete.
fn leaf_only(body: &[u8]) -> &[u8] {
    leaf_end(body)
        .and_then(|end| body.get(..end))
        .unwrap_or(body)
}

/// The handshake bytes a TLS flow was decided on, waiting for [`resolve`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    /// ClientHello body (after the handshake header).
    pub hello: Vec<u8>,
    /// Version the ServerHello chose.
    pub negotiated: Option<u16>,
    /// ALPN the server chose.
    pub alpn_selected: Option<String>,
    /// Certificate message body, possibly truncated after the leaf; one copy shared by
    /// the flows that carry the same bytes.
    pub cert: Option<std::sync::Arc<[u8]>>,
}

/// Completes a TLS classification from its handshake bytes.
pub fn resolve(c: &mut Classification, p: Pending, rules: &crate::rules::Rules) {
    let hello = parse_client_hello(&p.hello);
    let cert = p.cert.as_deref().and_then(leaf_certificate);
    let done = finish(rules, hello, p.negotiated, p.alpn_selected, cert);
    *c = done;
}

/// Whether a (possibly truncated) Certificate message already holds the whole leaf.
fn leaf_present(body: &[u8]) -> bool {
    leaf_end(body).is_some_and(|end| body.len() >= end)
}

/// Where the first certificate of a Certificate message body ends (RFC 5246 7.4.2: a
/// 3-byte list length, then each certificate behind a 3-byte length), whether or not
/// the body reaches that far; `None` before the leaf's length is in.
fn leaf_end(body: &[u8]) -> Option<usize> {
    let [a, b, c] = <[u8; 3]>::try_from(body.get(3..6)?).ok()?;
    Some(6 + ((usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c)))
}

fn finish(
    rules: &crate::rules::Rules,
    hello: Option<ClientHello>,
    negotiated: Option<u16>,
    alpn_selected: Option<String>,
    cert: Option<CertMeta>,
) -> Classification {
    let mut c = Classification {
        protocol: "tls",
        ..Classification::default()
    };
    let mut meta = TlsMeta {
        alpn_selected,
        cert,
        ..TlsMeta::default()
    };
    if let Some(h) = &hello {
        meta.sni.clone_from(&h.sni);
        meta.alpn.clone_from(&h.alpn);
        meta.ja4 = Some(ja4(h, 't'));
        let offered = h
            .versions
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .max()
            .unwrap_or(h.version);
        meta.version = Some(version_name(negotiated.unwrap_or(offered)));
        if negotiated.is_some_and(|v| v <= 0x0301) {
            c.extra.weak = Some(format!("tls {}", version_name(negotiated.unwrap_or(0))));
        }
    }
    c.evidence.push(Evidence::new(
        "setten.tls.handshake",
        "tls.handshake",
        match &meta.sni {
            Some(s) => format!("ClientHello sni={s}"),
            None => "ClientHello".to_owned(),
        },
    ));
    // Catalogue: certificate first (the server's own identity), then SNI and ALPN.
    if let Some(cert) = &meta.cert {
        c.apply_rules(rules, Field::TlsCertSubject, &cert.subject);
        c.apply_rules(rules, Field::TlsCertIssuer, &cert.issuer);
        for s in &cert.san {
            c.apply_rules(rules, Field::TlsCertSan, s);
        }
    }
    if let Some(sni) = &meta.sni {
        c.apply_rules(rules, Field::TlsSni, sni);
    }
    for a in &meta.alpn {
        c.apply_rules(rules, Field::TlsAlpn, a);
    }
    if c.service.is_none() {
        let groups = hello.as_ref().is_some_and(|h| h.tor_groups);
        if let Some(e) = tor_like(meta.sni.as_deref(), &meta.alpn, groups, meta.cert.as_ref()) {
            c.service = Some(Service::Tor);
            c.extra.product = Some("Tor".into());
            c.evidence.push(e);
        }
    }
    c.extra.meta.tls = Some(Box::new(meta));
    c
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::flow::reassembly::Stream;
    use crate::rules::Rules;

    /// A ClientHello built per RFC 8446 4.1.2 with SNI, ALPN h2/http1.1, supported
    /// versions and signature algorithms, plus GREASE entries.
    pub(crate) fn client_hello(sni: &str, alpn: &[&str]) -> Vec<u8> {
        let mut exts = Vec::new();
        let mut push = |t: u16, d: &[u8]| {
            exts.extend_from_slice(&t.to_be_bytes());
            exts.extend_from_slice(&(d.len() as u16).to_be_bytes());
            exts.extend_from_slice(d);
        };
        push(0x0a0a, &[]);
        let mut s = vec![0u8];
        s.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        s.extend_from_slice(sni.as_bytes());
        let mut sn = (s.len() as u16).to_be_bytes().to_vec();
        sn.extend(s);
        push(ext::SERVER_NAME, &sn);
        if !alpn.is_empty() {
            let mut l = Vec::new();
            for a in alpn {
                l.push(a.len() as u8);
                l.extend_from_slice(a.as_bytes());
            }
            let mut al = (l.len() as u16).to_be_bytes().to_vec();
            al.extend(l);
            push(ext::ALPN, &al);
        }
        push(ext::SUPPORTED_VERSIONS, &[4, 0x03, 0x04, 0x03, 0x03]);
        push(ext::SIGNATURE_ALGORITHMS, &[0, 4, 0x04, 0x03, 0x08, 0x04]);
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7u8; 32]);
        body.push(0);
        body.extend_from_slice(&[0, 6, 0x1a, 0x1a, 0x13, 0x01, 0x13, 0x02]);
        body.extend_from_slice(&[1, 0]);
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut hsm = vec![hs::CLIENT_HELLO, 0];
        hsm.extend_from_slice(&(body.len() as u16).to_be_bytes());
        hsm.extend(body);
        let mut rec = vec![content::HANDSHAKE, 3, 1];
        rec.extend_from_slice(&(hsm.len() as u16).to_be_bytes());
        rec.extend(hsm);
        rec
    }

    fn run(c2s: &[u8], s2c: &[u8], last: bool, rules: &Rules) -> Verdict {
        let mut a = Stream::default();
        a.add_segment(1, c2s);
        let mut b = Stream::default();
        b.add_segment(1, s2c);
        let cx = Cx {
            proto: 6,
            client_port: 50000,
            server_port: 443,
            c2s: &a,
            s2c: &b,
            last,
            rules,
        };
        match detect(&cx) {
            Verdict::Yes(mut c) => {
                c.resolve(rules);
                Verdict::Yes(c)
            }
            v => v,
        }
    }

    /// A fingerprint from the cache is the one worked out afresh, for hellos that differ
    /// in one field each (and for the same hello asked twice).
    #[test]
    fn cached_ja4_is_the_fresh_one() {
        let base = ClientHello {
            version: 0x0303,
            ciphers: vec![0x1301, 0x1302, 0xc02b],
            extensions: vec![0x0000, 0x0010, 0x002b, 0x000d],
            sni: Some("example.jp".into()),
            alpn: vec!["h2".into()],
            versions: vec![0x0304, 0x0303],
            sig_algs: vec![0x0403, 0x0804],
            tor_groups: false,
        };
        let variants = [
            base.clone(),
            ClientHello {
                sni: None,
                ..base.clone()
            },
            ClientHello {
                ciphers: vec![0x1301, 0x1302],
                ..base.clone()
            },
            ClientHello {
                ciphers: vec![0x1302, 0x1301, 0xc02b],
                ..base.clone()
            },
            ClientHello {
                extensions: vec![0x0000, 0x0010, 0x002b],
                ..base.clone()
            },
            ClientHello {
                alpn: vec!["http/1.1".into()],
                ..base.clone()
            },
            ClientHello {
                alpn: Vec::new(),
                ..base.clone()
            },
            ClientHello {
                versions: Vec::new(),
                ..base.clone()
            },
            ClientHello {
                sig_algs: vec![0x0804, 0x0403],
                ..base.clone()
            },
            // The same values moved from one list to the next.
            ClientHello {
                ciphers: vec![0x1301, 0x1302, 0xc02b, 0x0000],
                extensions: vec![0x0010, 0x002b, 0x000d],
                ..base.clone()
            },
        ];
        for round in 0..2 {
            for h in &variants {
                assert_eq!(ja4(h, 't'), ja4_of(h, 't'), "round {round}: {h:?}");
                assert_eq!(ja4(h, 'q'), ja4_of(h, 'q'), "round {round}: {h:?}");
            }
        }
    }

    #[test]
    fn client_hello_fields_and_ja4() {
        let ch = client_hello("vpn.example.jp", &["h2", "http/1.1"]);
        let h = parse_client_hello(&ch[9..]).unwrap();
        assert_eq!(h.sni.as_deref(), Some("vpn.example.jp"));
        assert_eq!(h.alpn, vec!["h2", "http/1.1"]);
        let j = ja4(&h, 't');
        // 2 ciphers (GREASE dropped), 4 extensions (GREASE dropped), ALPN h2.
        assert!(j.starts_with("t13d0204h2_"), "{j}");
        let b = trunc_hash("1301,1302");
        assert_eq!(&j[11..23], b);
        let c = trunc_hash("000d,002b_0403,0804");
        assert_eq!(&j[24..], c);
    }

    #[test]
    fn a_compacted_hello_reads_the_same_and_is_smaller() {
        // The fixture, with a 32-byte session id, a 1,216-byte key share (X25519MLKEM768,
        // IANA group 0x11ec) and a padding extension appended.
        let rec = client_hello("vpn.example.jp", &["h2", "http/1.1"]);
        let mut body = rec[9..].to_vec();
        body[34] = 32;
        body.splice(35..35, [9u8; 32]);
        let ext_at = 35 + 32 + 2 + 6 + 2;
        let mut extra = Vec::new();
        for (t, len) in [(51u16, 1220usize), (21, 200)] {
            extra.extend_from_slice(&t.to_be_bytes());
            extra.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
            extra.extend(std::iter::repeat_n(0x5a, len));
        }
        body.extend(&extra);
        let ext_len = u16::from_be_bytes([body[ext_at], body[ext_at + 1]]) as usize + extra.len();
        body[ext_at..ext_at + 2].copy_from_slice(&u16::try_from(ext_len).unwrap().to_be_bytes());
        let full = parse_client_hello(&body).expect("the enlarged hello parses");
        assert_eq!(full.extensions.len(), 7);
        let small = compact_hello(&body);
        assert!(small.len() < 200, "{} bytes", small.len());
        assert_eq!(parse_client_hello(&small), Some(full.clone()));
        assert_eq!(
            ja4(&parse_client_hello(&small).unwrap(), 't'),
            ja4(&full, 't')
        );
        // A body whose extension block does not add up is kept whole.
        let cut = &body[..body.len() - 1];
        assert_eq!(compact_hello(cut), cut);
    }

    #[test]
    fn only_the_leaf_of_a_certificate_chain_is_kept() {
        // list length, then two certificates of 5 and 3 bytes.
        let chain = [0, 0, 14, 0, 0, 5, 1, 2, 3, 4, 5, 0, 0, 3, 6, 7, 8];
        assert_eq!(leaf_only(&chain), &chain[..11]);
        assert!(leaf_present(leaf_only(&chain)));
        // An incomplete leaf stays as it is.
        assert_eq!(leaf_only(&chain[..8]), &chain[..8]);
        assert_eq!(leaf_only(&chain[..4]), &chain[..4]);
    }

    /// A Certificate message body holding one DER certificate.
    fn certificate_body(der: &[u8]) -> Vec<u8> {
        let n = der.len() as u32;
        let mut b = (n + 3).to_be_bytes()[1..].to_vec();
        b.extend_from_slice(&n.to_be_bytes()[1..]);
        b.extend_from_slice(der);
        b
    }

    /// Certificates met again come from the cache with the same fields as a fresh read,
    /// each its own, also after the cache has started over.
    #[test]
    fn a_certificate_seen_again_reads_the_same() {
        let a = rcgen::generate_simple_self_signed(vec!["vpn.example.jp".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["rdp.example.org".into()]).unwrap();
        let (a, b) = (a.cert.der().to_vec(), b.cert.der().to_vec());
        let (fresh_a, fresh_b) = (read_certificate(&a).unwrap(), read_certificate(&b).unwrap());
        assert_eq!(fresh_a.san, vec!["vpn.example.jp".to_owned()]);
        assert_eq!(fresh_b.san, vec!["rdp.example.org".to_owned()]);
        let (body_a, body_b) = (certificate_body(&a), certificate_body(&b));
        for _ in 0..3 {
            assert_eq!(leaf_certificate(&body_a).as_ref(), Some(&fresh_a));
            assert_eq!(leaf_certificate(&body_b).as_ref(), Some(&fresh_b));
        }
        // Bytes that are not a certificate are remembered as such (read once), and fill
        // the cache past its bound: it starts over and stays within it.
        let mut cache = BytesCache::<Option<CertMeta>>::new();
        let mut reads = 0;
        let mut read = |der: &[u8]| {
            reads += 1;
            read_certificate(der)
        };
        assert_eq!(cache.get(&a, &mut read).1.as_ref(), Some(&fresh_a));
        for i in 0..12u8 {
            let junk = vec![i; CERT_CACHE_BYTES / 5];
            assert_eq!(cache.get(&junk, &mut read).1, None);
            assert_eq!(cache.get(&junk, &mut read).1, None);
            assert!(cache.bytes <= CERT_CACHE_BYTES, "{}", cache.bytes);
        }
        assert!(cache.map.len() < 12);
        assert_eq!(cache.get(&a, &mut read).1.as_ref(), Some(&fresh_a));
        assert_eq!(cache.get(&b, &mut read).1.as_ref(), Some(&fresh_b));
        // a, each junk once, a again (the cache started over since), b.
        assert_eq!(reads, 15);
    }

    /// Flows that carry the same certificate bytes hold one copy; other bytes get their
    /// own, and the shared copies stay within their bound.
    #[test]
    fn the_same_certificate_bytes_are_held_once() {
        let mut shared = BytesCache::<()>::new();
        let mut share = |b: &[u8]| shared.get(b, |_| ()).0;
        let a = certificate_body(b"first certificate");
        let b = certificate_body(b"second certificate");
        let (a1, a2, b1) = (share(&a), share(&a.clone()), share(&b));
        assert!(std::sync::Arc::ptr_eq(&a1, &a2));
        assert!(!std::sync::Arc::ptr_eq(&a1, &b1));
        assert_eq!((&*a1, &*b1), (&a[..], &b[..]));
        for i in 0..12u8 {
            let big = vec![i; CERT_CACHE_BYTES / 5];
            assert_eq!(&*share(&big), &big[..]);
        }
        // Bytes too large to keep are still handed back whole.
        let huge = vec![7u8; CERT_CACHE_BYTES];
        assert_eq!(&*share(&huge), &huge[..]);
        assert!(shared.bytes <= CERT_CACHE_BYTES, "{}", shared.bytes);
        assert!(!shared.map.values().any(|(k, _)| k.len() == huge.len()));
    }

    #[test]
    fn ja4_of_a_published_example() {
        // JA4 technical details: ciphers/extensions given in the spec's worked example
        // produce JA4_b 8daaf6152771 and JA4_c e5627efa2ab1.
        let ciphers = "002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9";
        assert_eq!(trunc_hash(ciphers), "8daaf6152771");
        let exts = "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601";
        assert_eq!(trunc_hash(exts), "e5627efa2ab1");
    }

    #[test]
    fn split_client_hello_waits_then_parses() {
        let rules = Rules::defaults().unwrap();
        let ch = client_hello("api.polargrizzly.com", &["h2"]);
        assert!(matches!(run(&ch[..20], b"", false, &rules), Verdict::Wait));
        // The whole hello, the server still to answer: TLS claims the flow.
        assert!(matches!(run(&ch, b"", false, &rules), Verdict::Claim));
        // Split over two records of 30 and rest bytes (RFC 8446 5.1 allows fragmentation).
        let hsm = &ch[5..];
        let mut two = vec![content::HANDSHAKE, 3, 1, 0, 30];
        two.extend_from_slice(&hsm[..30]);
        two.extend_from_slice(&[content::HANDSHAKE, 3, 1]);
        two.extend_from_slice(&((hsm.len() - 30) as u16).to_be_bytes());
        two.extend_from_slice(&hsm[30..]);
        match run(&two, b"", true, &rules) {
            Verdict::Yes(c) => {
                assert_eq!(c.service, Some(Service::ConsumerVpn));
                assert_eq!(c.extra.vendor.as_deref(), Some("TunnelBear"));
                assert!(c
                    .evidence
                    .iter()
                    .any(|e| e.rule == "consumervpn.tunnelbear"));
            }
            v => panic!("{v:?}"),
        }
    }

    /// A ServerHello captured before its ClientHello (directions reordered by the mirror):
    /// the flow waits for the client instead of being refused, and is TLS once it speaks.
    #[test]
    fn server_hello_before_client_hello_waits() {
        let rules = Rules::defaults().unwrap();
        // ServerHello: version 3.3, random, empty session id, TLS_AES_128_GCM_SHA256,
        // no compression, supported_versions = TLS 1.3.
        let mut body = vec![3, 3];
        body.extend_from_slice(&[9u8; 32]);
        body.extend_from_slice(&[0, 0x13, 0x01, 0, 0, 6, 0, 0x2b, 0, 2, 3, 4]);
        let mut sh = vec![content::HANDSHAKE, 3, 3, 0, (body.len() + 4) as u8];
        sh.extend_from_slice(&[hs::SERVER_HELLO, 0, 0, body.len() as u8]);
        sh.extend(body);
        assert!(matches!(run(b"", &sh, false, &rules), Verdict::Wait));
        // The capture ends without the client: not TLS after all.
        assert!(matches!(run(b"", &sh, true, &rules), Verdict::No));
        // Another record type or message first from the server is still refused.
        let mut alert = sh.clone();
        alert[0] = 21;
        assert!(matches!(run(b"", &alert, false, &rules), Verdict::No));
        let mut cert_first = sh.clone();
        cert_first[5] = hs::CERTIFICATE;
        assert!(matches!(run(b"", &cert_first, false, &rules), Verdict::No));
        let ch = client_hello("vpn.example.jp", &[]);
        match run(&ch, &sh, true, &rules) {
            Verdict::Yes(c) => {
                let tls = c.extra.meta.tls.as_ref().expect("TLS metadata");
                assert_eq!(tls.version.as_deref(), Some("1.3"));
                assert_eq!(tls.sni.as_deref(), Some("vpn.example.jp"));
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn not_tls_is_refused() {
        let rules = Rules::defaults().unwrap();
        assert!(matches!(
            run(b"GET / HTTP/1.1\r\n", b"", false, &rules),
            Verdict::No
        ));
        assert!(matches!(
            run(b"SSH-2.0-OpenSSH_9.6\r\n", b"", false, &rules),
            Verdict::No
        ));
        assert!(matches!(
            run(b"", b"220 mail ESMTP\r\n", false, &rules),
            Verdict::No
        ));
    }

    /// tor 0.4.9.11 (Debian 12, OpenSSL 3.0) connecting to a bridge: the TLS record with
    /// its ClientHello, SNI www.wjzpxf.com (six base32 characters, no digit), no ALPN,
    /// supported groups P-256, X25519, P-224.
    const TOR_HELLO: &str =
        "1603010200010001fc030324814470a4a6445b07ac7c8587dcb3376201823394e4f2015d3a615d157e010d20\
        9345b8524debc796cf5b24e46178fc31f10f249ba796ddaf1fca146d2fb115490024130113031302c02bc02f\
        cca9cca8c02cc030c00ac009c013c014009c009d002f003500ff0100018f00000013001100000e7777772e77\
        6a7a7078662e636f6d000b000403000102000a000800060017001d0015002300000016000000170000000d00\
        2a0028040305030603080708080809080a080b08040805080604010501060103030301030204020502060200\
        2b00050403040303002d00020101003300470045001700410429a790426def3a148a7a2151d0e17ce2fa4100\
        ba67f3f8ec2a16eb90f8728579088b52c87675b5fd931338680c3fb54ea7f05e6de179f0bdf0e57f25e1f3d0\
        87001500cc000000000000000000000000000000000000000000000000000000000000000000000000000000\
        0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn tor_hello_with_a_short_name_is_told_by_its_groups() {
        let rec = crate::classify::common::testing::hex(TOR_HELLO);
        // As the flow keeps it until it is resolved.
        let h = parse_client_hello(&compact_hello(&rec[9..])).expect("tor's hello parses");
        assert_eq!(h.sni.as_deref(), Some("www.wjzpxf.com"));
        assert!(h.alpn.is_empty());
        assert!(h.tor_groups);
        let e = tor_like(h.sni.as_deref(), &h.alpn, h.tor_groups, None).expect("tor");
        assert_eq!(
            e.value,
            "www.wjzpxf.com (no ALPN, Tor's groups P-256, X25519, P-224)"
        );
        // The same name without Tor's groups, or with an ALPN, is not Tor; neither is a
        // common client's hello (no P-224).
        assert!(tor_like(Some("www.wjzpxf.com"), &[], false, None).is_none());
        assert!(tor_like(Some("www.wjzpxf.com"), &["h2".into()], true, None).is_none());
        let common = client_hello("www.example.com", &["h2"]);
        assert!(!parse_client_hello(&common[9..]).unwrap().tor_groups);
        // OpenSSL 1.0's long curve list offers P-224 too, but is not Tor's; newer tor
        // with OpenSSL 3.5 adds post-quantum hybrids first, and GREASE may come anywhere.
        let list = |g: &[u16]| g.iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<u8>>();
        assert!(!is_tor_groups(&list(&[
            0x0017, 0x0019, 0x001c, 0x0015, 0x0018
        ])));
        assert!(!is_tor_groups(&list(&[0x0017, 0x001d])));
        assert!(!is_tor_groups(&list(&[0x0017, 0x001d, 0x0015, 0x0018])));
        assert!(is_tor_groups(&list(&[0x11ec, 0x0017, 0x001d, 0x0015])));
        assert!(is_tor_groups(&list(&[0x0a0a, 0x0017, 0x001d, 0x0015])));
    }

    #[test]
    fn tor_name_shapes() {
        let cert = CertMeta {
            subject: "CN=www.g6ghvisevf3ibuu5.net".into(),
            issuer: "CN=www.xkgk7fdx362yyyxib.com".into(),
            ..CertMeta::default()
        };
        assert!(tor_like(Some("www.gfu7hbxpfp.com"), &[], false, Some(&cert)).is_some());
        let real = CertMeta {
            subject: "CN=www.example.net, O=Example".into(),
            issuer: "CN=R3, O=Let's Encrypt, C=US".into(),
            ..CertMeta::default()
        };
        assert!(tor_like(Some("www.example.net"), &[], false, Some(&real)).is_none());
        assert!(tor_like(Some("www.wikipedia.com"), &[], false, None).is_none());
        assert!(tor_like(Some("www.ct7ctrgb6cr7.com"), &["h2".into()], false, None).is_none());
        assert!(tor_like(Some("www.ct7ctrgb6cr7.com"), &[], false, None).is_some());
    }

    #[test]
    fn grease() {
        assert!(is_grease(0x0a0a));
        assert!(is_grease(0xfafa));
        assert!(!is_grease(0x0a1a));
        assert!(!is_grease(0x1301));
    }
}
