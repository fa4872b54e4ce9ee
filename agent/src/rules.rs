//! Rules are data: the service catalogue (standard ports), signatures over protocol fields
//! (TLS SNI and certificate names, ALPN, HTTP host, SSH banner) and the IKE vendor-ID
//! table, all in TOML under `rules/`. The defaults are compiled in; `--rules DIR` loads a
//! directory instead. Loading checks the schema: unknown keys, unknown services or fields,
//! empty patterns and duplicate ids are refused with the file, line and key named.

use crate::classify::Service;
use crate::inventory::policy::{self, Policy};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// The default rule files, embedded at build time.
pub const DEFAULT_FILES: &[(&str, &str)] = &[
    ("services.toml", include_str!("../../rules/services.toml")),
    (
        "signatures.toml",
        include_str!("../../rules/signatures.toml"),
    ),
    (
        "ike_vendor_ids.toml",
        include_str!("../../rules/ike_vendor_ids.toml"),
    ),
    ("site.toml", include_str!("../../rules/site.toml")),
    ("clouds.toml", include_str!("../../rules/clouds.toml")),
    ("risks.toml", include_str!("../../rules/risks.toml")),
];

/// Rule files of the same directory read by other parts (each checks its own schema):
/// `backup.toml` is the backup scoring (`crate::backup::score`); `alerts.toml` the
/// collector's alert rules (`setten_collector::alerts::rules`).
pub const OTHER_FILES: &[&str] = &["backup.toml", "alerts.toml"];

/// Protocol field a signature looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// TLS Server Name Indication.
    TlsSni,
    /// Server certificate subject DN (RFC 4514 string).
    TlsCertSubject,
    /// Server certificate issuer DN.
    TlsCertIssuer,
    /// Server certificate DNS subject alternative name (each).
    TlsCertSan,
    /// ALPN protocol offered by the client (each).
    TlsAlpn,
    /// HTTP Host header.
    HttpHost,
    /// HTTP request target.
    HttpUri,
    /// HTTP User-Agent.
    HttpUserAgent,
    /// SSH identification string (either side).
    SshBanner,
}

impl Field {
    const ALL: [Field; 9] = [
        Field::TlsSni,
        Field::TlsCertSubject,
        Field::TlsCertIssuer,
        Field::TlsCertSan,
        Field::TlsAlpn,
        Field::HttpHost,
        Field::HttpUri,
        Field::HttpUserAgent,
        Field::SshBanner,
    ];

    /// The name used in rule files and evidence.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::TlsSni => "tls.sni",
            Field::TlsCertSubject => "tls.cert.subject",
            Field::TlsCertIssuer => "tls.cert.issuer",
            Field::TlsCertSan => "tls.cert.san",
            Field::TlsAlpn => "tls.alpn",
            Field::HttpHost => "http.host",
            Field::HttpUri => "http.uri",
            Field::HttpUserAgent => "http.user_agent",
            Field::SshBanner => "ssh.banner",
        }
    }

    fn parse(s: &str) -> Option<Field> {
        Field::ALL.iter().copied().find(|f| f.as_str() == s)
    }
}

/// How a signature matches its field (ASCII case-insensitive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// The whole value.
    Equals(String),
    /// A DNS suffix: the value is the name or ends with "." + name.
    Domain(String),
    /// A substring.
    Contains(String),
    /// A prefix.
    Prefix(String),
}

impl Pattern {
    /// Whether the pattern (stored lowercase) matches `value` without regard to ASCII
    /// case: the same answer as comparing the value's ASCII lowercase form, without
    /// making one.
    fn matches_ignore_case(&self, value: &str) -> bool {
        let v = value.as_bytes();
        match self {
            Pattern::Equals(p) => v.eq_ignore_ascii_case(p.as_bytes()),
            Pattern::Domain(p) => {
                let p = p.as_bytes();
                v.eq_ignore_ascii_case(p)
                    || (v.len() > p.len()
                        && v.get(v.len() - p.len()..)
                            .is_some_and(|tail| tail.eq_ignore_ascii_case(p))
                        && v.get(v.len() - p.len() - 1) == Some(&b'.'))
            }
            Pattern::Contains(p) => contains_ignore_case(v, p.as_bytes()),
            Pattern::Prefix(p) => v
                .get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p.as_bytes())),
        }
    }
}

/// Whether `hay` holds `needle` (lowercase) without regard to ASCII case: candidates are
/// found by the needle's first byte in either case, then compared whole.
fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let Some(last_start) = hay.len().checked_sub(needle.len()) else {
        return false;
    };
    let upper = first.to_ascii_uppercase();
    let mut from = 0;
    while let Some(window) = hay.get(from..=last_start) {
        let Some(k) = memchr::memchr2(first, upper, window) else {
            return false;
        };
        let at = from + k;
        if hay
            .get(at + 1..at + needle.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(rest))
        {
            return true;
        }
        from = at + 1;
    }
    false
}

/// One signature.
#[derive(Clone, Debug)]
pub struct Signature {
    /// Stable id.
    pub id: String,
    /// Service it identifies (none: it only names a vendor/product).
    pub service: Option<Service>,
    /// Vendor.
    pub vendor: Option<String>,
    /// Product.
    pub product: Option<String>,
    /// Field.
    pub field: Field,
    /// Patterns; any one matching is enough.
    pub patterns: Vec<Pattern>,
}

/// Standard ports of a service.
#[derive(Clone, Debug, Default)]
pub struct Ports {
    /// TCP ports.
    pub tcp: Vec<u16>,
    /// UDP ports.
    pub udp: Vec<u16>,
}

/// One IKE vendor ID.
#[derive(Clone, Debug)]
pub struct IkeVendor {
    /// Stable id.
    pub id: String,
    /// Leading bytes the payload must start with.
    pub prefix: Vec<u8>,
    /// Name.
    pub name: String,
    /// Vendor.
    pub vendor: Option<String>,
    /// Product.
    pub product: Option<String>,
    /// Service it implies, if any (e.g. an SSL-VPN appliance's IPsec).
    pub service: Option<Service>,
}

/// Signatures by field and pattern kind, so a value is matched by hash lookups of itself
/// and of its DNS suffixes instead of against every pattern (a certificate can carry
/// hundreds of SANs).
#[derive(Clone, Debug, Default)]
struct SignatureIndex {
    /// By field (its discriminant).
    fields: Vec<FieldIndex>,
}

type StrMap = hashbrown::HashMap<Box<str>, Vec<usize>, foldhash::fast::FixedState>;

/// One field's signatures.
#[derive(Clone, Debug, Default)]
struct FieldIndex {
    /// Lowercase value → signatures with that `equals` or `domain` pattern.
    exact: StrMap,
    /// Lowercase domain → signatures with that `domain` pattern.
    domain: StrMap,
    /// Signatures with `contains`/`prefix` patterns.
    scan: Vec<usize>,
}

/// The loaded catalogue.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    ports: Vec<(Service, Ports)>,
    signatures: Vec<Signature>,
    index: SignatureIndex,
    ike_vendors: Vec<IkeVendor>,
    /// Site policy: time zone, windows, relay clouds, risk severities.
    pub policy: Policy,
    /// Files the rules came from, for logs.
    pub sources: Vec<String>,
}

/// A rule file could not be used.
#[derive(Debug, thiserror::Error)]
pub struct RulesError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key at fault, when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(k) = &self.key {
            write!(f, ": key `{k}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    service: Vec<toml::Spanned<ServiceDoc>>,
    #[serde(default)]
    signature: Vec<toml::Spanned<SignatureDoc>>,
    #[serde(default)]
    ike_vendor: Vec<toml::Spanned<IkeVendorDoc>>,
    #[serde(default)]
    site: Option<toml::Spanned<policy::SiteDoc>>,
    #[serde(default)]
    maintenance_window: Vec<toml::Spanned<policy::WindowDoc>>,
    #[serde(default)]
    cloud: Vec<toml::Spanned<policy::CloudDoc>>,
    #[serde(default)]
    vpn_pool: Vec<toml::Spanned<policy::VpnPoolDoc>>,
    #[serde(default)]
    risk: Vec<toml::Spanned<policy::RiskDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceDoc {
    name: String,
    #[serde(default)]
    tcp: Vec<u16>,
    #[serde(default)]
    udp: Vec<u16>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureDoc {
    id: String,
    field: String,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    vendor: Option<String>,
    #[serde(default)]
    product: Option<String>,
    #[serde(default)]
    equals: Vec<String>,
    #[serde(default)]
    domain: Vec<String>,
    #[serde(default)]
    contains: Vec<String>,
    #[serde(default)]
    prefix: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IkeVendorDoc {
    id: String,
    hex: String,
    name: String,
    #[serde(default)]
    vendor: Option<String>,
    #[serde(default)]
    product: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    sources: Vec<String>,
}

/// Byte offset of the line assigning `key` in a table's text (which runs to the next
/// table header; a span may cover only the header).
fn key_offset(table: &str, key: &str) -> Option<usize> {
    let mut off = 0;
    for (i, line) in table.split_inclusive('\n').enumerate() {
        let t = line.trim_start();
        if i > 0 && t.starts_with('[') {
            return None;
        }
        if let Some(rest) = t.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return Some(off + (line.len() - t.len()));
            }
        }
        off += line.len();
    }
    None
}

impl Rules {
    /// The built-in defaults.
    pub fn defaults() -> Result<Rules, RulesError> {
        let mut r = Rules::default();
        for (name, text) in DEFAULT_FILES {
            r.add_text(Path::new(&format!("rules/{name}")), text)?;
        }
        r.check_unique()?;
        Ok(r)
    }

    /// Every `*.toml` in a directory, in name order.
    pub fn load_dir(dir: &Path) -> Result<Rules, RulesError> {
        let err = |message: String| RulesError {
            file: dir.to_owned(),
            line: None,
            key: None,
            message,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| err(format!("cannot read the rules directory: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .filter(|p| {
                !p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| OTHER_FILES.contains(&n))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(err("no *.toml rule files in the directory".into()));
        }
        let mut r = Rules::default();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| RulesError {
                file: f.clone(),
                line: None,
                key: None,
                message: format!("cannot read: {e}"),
            })?;
            r.add_text(&f, &text)?;
        }
        r.check_unique()?;
        Ok(r)
    }

    /// Adds one file's rules.
    pub fn add_text(&mut self, file: &Path, text: &str) -> Result<(), RulesError> {
        let line_of = |offset: usize| text.get(..offset).map(|t| t.lines().count().max(1));
        let doc: FileDoc = toml::from_str(text).map_err(|e| RulesError {
            file: file.to_owned(),
            line: e.span().and_then(|s| line_of(s.start + 1)),
            key: None,
            message: e.message().to_owned(),
        })?;
        // The line of the key inside the table when it is there, else the table's.
        let fail = |span: std::ops::Range<usize>, key: &str, message: String| RulesError {
            file: file.to_owned(),
            line: line_of(
                span.start
                    + text
                        .get(span.start..)
                        .and_then(|t| key_offset(t, key))
                        .unwrap_or(0)
                    + 1,
            ),
            key: Some(key.to_owned()),
            message,
        };
        let service = |span: std::ops::Range<usize>, s: &str| {
            Service::parse(s).ok_or_else(|| {
                fail(
                    span,
                    "service",
                    format!("unknown service {s:?} (see corpus VOCABULARY: rdp, vnc, ssh, …)"),
                )
            })
        };
        for s in doc.service {
            let span = s.span();
            let s = s.into_inner();
            let svc = service(span, &s.name)?;
            self.ports.push((
                svc,
                Ports {
                    tcp: s.tcp,
                    udp: s.udp,
                },
            ));
        }
        for s in doc.signature {
            let span = s.span();
            let s = s.into_inner();
            let field = Field::parse(&s.field).ok_or_else(|| {
                let names: Vec<_> = Field::ALL.iter().map(|f| f.as_str()).collect();
                fail(
                    span.clone(),
                    "field",
                    format!("unknown field {:?}; known: {}", s.field, names.join(", ")),
                )
            })?;
            let svc = match &s.service {
                Some(n) => Some(service(span.clone(), n)?),
                None => None,
            };
            let mut patterns = Vec::new();
            for (key, list, mk) in [
                (
                    "equals",
                    &s.equals,
                    Pattern::Equals as fn(String) -> Pattern,
                ),
                ("domain", &s.domain, Pattern::Domain),
                ("contains", &s.contains, Pattern::Contains),
                ("prefix", &s.prefix, Pattern::Prefix),
            ] {
                for p in list {
                    if p.trim().is_empty() {
                        return Err(fail(span.clone(), key, "empty pattern".into()));
                    }
                    patterns.push(mk(p.to_ascii_lowercase()));
                }
            }
            if patterns.is_empty() {
                return Err(fail(
                    span,
                    "equals",
                    format!(
                        "signature {} has no equals/domain/contains/prefix pattern",
                        s.id
                    ),
                ));
            }
            if svc.is_none() && s.vendor.is_none() && s.product.is_none() {
                return Err(fail(
                    span,
                    "service",
                    format!("signature {} names no service, vendor or product", s.id),
                ));
            }
            self.signatures.push(Signature {
                id: s.id,
                service: svc,
                vendor: s.vendor,
                product: s.product,
                field,
                patterns,
            });
        }
        for v in doc.ike_vendor {
            let span = v.span();
            let v = v.into_inner();
            let prefix = parse_hex(&v.hex).ok_or_else(|| {
                fail(
                    span.clone(),
                    "hex",
                    format!("not an even-length hex string: {:?}", v.hex),
                )
            })?;
            if prefix.len() < 4 {
                return Err(fail(
                    span,
                    "hex",
                    "a vendor ID prefix needs at least 4 bytes".into(),
                ));
            }
            let svc = match &v.service {
                Some(n) => Some(service(span.clone(), n)?),
                None => None,
            };
            self.ike_vendors.push(IkeVendor {
                id: v.id,
                prefix,
                name: v.name,
                vendor: v.vendor,
                product: v.product,
                service: svc,
            });
        }
        let policy_err = |span: std::ops::Range<usize>, (key, message): policy::DocError| {
            fail(span, key, message)
        };
        if let Some(d) = doc.site {
            let span = d.span();
            self.policy
                .add_site(d.into_inner())
                .map_err(|e| policy_err(span, e))?;
        }
        for d in doc.maintenance_window {
            let span = d.span();
            self.policy
                .add_window(d.into_inner())
                .map_err(|e| policy_err(span, e))?;
        }
        for d in doc.cloud {
            let span = d.span();
            self.policy
                .add_cloud(d.into_inner())
                .map_err(|e| policy_err(span, e))?;
        }
        for d in doc.vpn_pool {
            let span = d.span();
            self.policy
                .add_vpn_pool(d.into_inner())
                .map_err(|e| policy_err(span, e))?;
        }
        for d in doc.risk {
            let span = d.span();
            self.policy
                .add_risk(d.into_inner())
                .map_err(|e| policy_err(span, e))?;
        }
        self.sources.push(file.display().to_string());
        self.build_index();
        Ok(())
    }

    fn check_unique(&self) -> Result<(), RulesError> {
        let mut seen = std::collections::HashSet::new();
        let ids = self
            .signatures
            .iter()
            .map(|s| &s.id)
            .chain(self.ike_vendors.iter().map(|v| &v.id));
        for id in ids {
            if !seen.insert(id) {
                return Err(RulesError {
                    file: PathBuf::from(self.sources.join(", ")),
                    line: None,
                    key: Some("id".into()),
                    message: format!("duplicate rule id {id}"),
                });
            }
        }
        Ok(())
    }

    /// Signatures matching a field value.
    pub fn matching(&self, field: Field, value: &str) -> Vec<&Signature> {
        let Some(idx) = self.index.fields.get(field as usize) else {
            return Vec::new();
        };
        if idx.exact.is_empty() && idx.scan.is_empty() {
            return Vec::new();
        }
        // Patterns are stored lowercase and compared without case, so only the hash
        // lookups need a lowercase copy of the value, and only when it has capitals.
        let has_upper = !idx.exact.is_empty() && value.bytes().any(|b| b.is_ascii_uppercase());
        let lower: std::borrow::Cow<'_, str> = if has_upper {
            value.to_ascii_lowercase().into()
        } else {
            value.into()
        };
        let mut hits: Vec<usize> = Vec::new();
        if !idx.exact.is_empty() {
            if let Some(v) = idx.exact.get(&*lower) {
                hits.extend(v);
            }
            // Every proper DNS suffix at a label boundary.
            let mut rest = &*lower;
            while let Some(dot) = rest.bytes().position(|b| b == b'.') {
                rest = rest.get(dot + 1..).unwrap_or("");
                if rest.is_empty() {
                    break;
                }
                if let Some(v) = idx.domain.get(rest) {
                    hits.extend(v);
                }
            }
        }
        for &i in &idx.scan {
            if let Some(sig) = self.signatures.get(i) {
                if sig.patterns.iter().any(|p| p.matches_ignore_case(value)) {
                    hits.push(i);
                }
            }
        }
        hits.sort_unstable();
        hits.dedup();
        hits.iter()
            .filter_map(|&i| self.signatures.get(i))
            .collect()
    }

    fn build_index(&mut self) {
        let mut index = SignatureIndex::default();
        for (i, sig) in self.signatures.iter().enumerate() {
            let slot = sig.field as usize;
            if index.fields.len() <= slot {
                index.fields.resize_with(slot + 1, FieldIndex::default);
            }
            let Some(f) = index.fields.get_mut(slot) else {
                continue;
            };
            for p in &sig.patterns {
                match p {
                    Pattern::Equals(v) | Pattern::Domain(v) => {
                        f.exact.entry(v.as_str().into()).or_default().push(i);
                    }
                    Pattern::Contains(_) | Pattern::Prefix(_) => {
                        if f.scan.last() != Some(&i) {
                            f.scan.push(i);
                        }
                    }
                }
                if let Pattern::Domain(v) = p {
                    f.domain.entry(v.as_str().into()).or_default().push(i);
                }
            }
        }
        self.index = index;
    }

    /// The IKE vendor ID a payload starts with.
    pub fn ike_vendor(&self, payload: &[u8]) -> Option<&IkeVendor> {
        self.ike_vendors
            .iter()
            .filter(|v| payload.starts_with(&v.prefix))
            .max_by_key(|v| v.prefix.len())
    }

    /// Standard ports of a service.
    pub fn ports(&self, s: Service) -> Option<&Ports> {
        self.ports.iter().find(|(x, _)| *x == s).map(|(_, p)| p)
    }

    /// Whether `port` is a standard port of `s` on this transport. Services without
    /// listed ports (none fixed) are never "non-standard".
    pub fn is_standard_port(&self, s: Service, tcp: bool, port: u16) -> bool {
        match self.ports(s) {
            Some(p) => {
                let list = if tcp { &p.tcp } else { &p.udp };
                list.is_empty() || list.contains(&port)
            }
            None => true,
        }
    }

    /// Number of signatures.
    pub fn signature_count(&self) -> usize {
        self.signatures.len()
    }
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let s: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load() {
        let r = Rules::defaults().unwrap();
        assert!(r.signature_count() > 20);
        assert!(r.is_standard_port(Service::Rdp, true, 3389));
        assert!(!r.is_standard_port(Service::Rdp, true, 3390));
    }

    #[test]
    fn index_matches_like_the_patterns() {
        let r = Rules::defaults().unwrap();
        let ids = |f: Field, v: &str| -> Vec<String> {
            r.matching(f, v).iter().map(|s| s.id.clone()).collect()
        };
        assert_eq!(
            ids(Field::TlsSni, "Router7.TeamViewer.com"),
            vec!["teamviewer.domain"]
        );
        assert_eq!(
            ids(Field::TlsSni, "teamviewer.com"),
            vec!["teamviewer.domain"]
        );
        assert!(ids(Field::TlsSni, "notteamviewer.com").is_empty());
        assert!(ids(Field::TlsSni, "teamviewer.com.evil.example").is_empty());
        assert_eq!(
            ids(Field::TlsAlpn, "anydesk/6.2.0/linux"),
            vec!["anydesk.alpn"]
        );
        assert_eq!(
            ids(
                Field::TlsCertSubject,
                "C=US, O=Fortinet, OU=FortiGate, CN=FGT60"
            ),
            vec!["sslvpn.fortinet.cert-ou"]
        );
        assert!(ids(Field::HttpHost, "example.org").is_empty());
        // Prefixes and substrings match whatever the case of the value.
        assert_eq!(
            ids(Field::HttpUri, "/DANA-NA/auth/url_default/welcome.cgi"),
            vec!["sslvpn.pulse.uri"]
        );
        assert!(ids(Field::HttpUri, "/DANA-N").is_empty());
        assert!(ids(Field::HttpUri, "/x/dana-na/").is_empty());
        assert_eq!(
            ids(
                Field::HttpUserAgent,
                "Cisco AnyConnect VPN Agent for Windows 4.10"
            ),
            vec!["sslvpn.cisco.anyconnect-ua"]
        );
    }

    /// Consumer VPN clients that connect without SNI are named from the server's
    /// certificate, and their API hosts from the SNI (the names nDPI's host and
    /// certificate lists give them, checked against nDPI's test results).
    #[test]
    fn consumer_vpns_without_sni_and_their_api_hosts() {
        let r = Rules::defaults().unwrap();
        let ids = |f: Field, v: &str| -> Vec<String> {
            r.matching(f, v).iter().map(|s| s.id.clone()).collect()
        };
        assert_eq!(
            ids(Field::TlsCertSan, "*.psiphon3.net"),
            vec!["consumervpn.psiphon-cert"]
        );
        assert_eq!(
            ids(
                Field::TlsCertSubject,
                "C=CA, O=Windscribe, CN=Windscribe Node"
            ),
            vec!["consumervpn.windscribe-cert"]
        );
        assert_eq!(
            ids(Field::TlsCertSubject, "CN=*.tunnelbear.com"),
            vec!["consumervpn.tunnelbear-cert-cn"]
        );
        assert_eq!(
            ids(
                Field::TlsCertSubject,
                "C=US, O=Private Internet Access, CN=pia"
            ),
            vec!["consumervpn.pia-cert"]
        );
        assert_eq!(
            ids(Field::TlsSni, "vpn-api.proton.me"),
            vec!["consumervpn.protonvpn"]
        );
        // The rest of proton.me is mail and web.
        assert!(ids(Field::TlsSni, "mail.proton.me").is_empty());
        assert_eq!(
            ids(Field::TlsSni, "api.anchorfree.net"),
            vec!["consumervpn.hotspotshield"]
        );
        assert_eq!(
            ids(Field::TlsSni, "mask-h2.icloud.com"),
            vec!["consumervpn.icloud-private-relay"]
        );
        assert!(ids(Field::TlsSni, "www.icloud.com").is_empty());
        assert_eq!(
            ids(Field::TlsSni, "www.softether.org"),
            vec!["softether.project"]
        );
    }

    #[test]
    fn domain_pattern_respects_label_boundaries() {
        let p = Pattern::Domain("teamviewer.com".into());
        assert!(p.matches_ignore_case("teamviewer.com"));
        assert!(p.matches_ignore_case("router1.TeamViewer.com"));
        assert!(!p.matches_ignore_case("notteamviewer.com"));
        assert!(!p.matches_ignore_case("eamviewer.com"));
    }

    /// Matching without case gives the answer of matching the value's lowercase copy,
    /// for every kind of pattern, over values that put the pattern at the start, the
    /// end, in the middle, twice, cut short, and next to non-ASCII text.
    #[test]
    fn matching_without_case_equals_matching_the_lowercase_copy() {
        fn by_copy(p: &Pattern, value: &str) -> bool {
            let v = value.to_ascii_lowercase();
            match p {
                Pattern::Equals(p) => v == *p,
                Pattern::Domain(p) => {
                    v == *p
                        || (v.len() > p.len()
                            && v.ends_with(p.as_str())
                            && v.as_bytes().get(v.len() - p.len() - 1) == Some(&b'.'))
                }
                Pattern::Contains(p) => v.contains(p.as_str()),
                Pattern::Prefix(p) => v.starts_with(p.as_str()),
            }
        }
        let needles = [
            "ou=fortigate",
            "anyconnect",
            "a",
            "aa",
            "teamviewer.com",
            "é",
        ];
        let mut values = vec![String::new()];
        for n in needles {
            let up = n.to_ascii_uppercase();
            let mixed: String = n
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            for form in [n.to_string(), up, mixed] {
                let cut = &form[..form.len() - form.chars().last().map_or(0, char::len_utf8)];
                for v in [
                    form.clone(),
                    format!("x{form}"),
                    format!("{form}x"),
                    format!("x.{form}"),
                    format!("é{form}é"),
                    format!("{cut}{form}"),
                    format!("{form}{form}"),
                    cut.to_string(),
                    format!("A{cut}"),
                ] {
                    values.push(v);
                }
            }
        }
        for n in needles {
            for p in [
                Pattern::Equals(n.into()),
                Pattern::Domain(n.into()),
                Pattern::Contains(n.into()),
                Pattern::Prefix(n.into()),
            ] {
                for v in &values {
                    assert_eq!(p.matches_ignore_case(v), by_copy(&p, v), "{p:?} on {v:?}");
                }
            }
        }
    }

    #[test]
    fn unknown_key_names_file_and_line() {
        let mut r = Rules::default();
        let text = "[[signature]]\nid = \"x\"\nfield = \"tls.sni\"\nservice = \"rdp\"\nequals = [\"a\"]\ncolour = \"red\"\n";
        let e = r.add_text(Path::new("rules/extra.toml"), text).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("rules/extra.toml:"), "{msg}");
        assert!(msg.contains("colour"), "{msg}");
    }

    #[test]
    fn unknown_service_and_field_are_refused() {
        let mut r = Rules::default();
        let bad_svc = "\n[[signature]]\nid = \"x\"\nfield = \"tls.sni\"\nservice = \"vpnz\"\nequals = [\"a\"]\n";
        let e = r.add_text(Path::new("f.toml"), bad_svc).unwrap_err();
        // The line of the key at fault, not of its table.
        assert_eq!(e.line, Some(5));
        assert_eq!(e.key.as_deref(), Some("service"));
        let bad_field =
            "[[signature]]\nid = \"x\"\nfield = \"tls.snx\"\nservice = \"rdp\"\nequals = [\"a\"]\n";
        let e = r.add_text(Path::new("f.toml"), bad_field).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let mut r = Rules::default();
        let one =
            "[[signature]]\nid = \"x\"\nfield = \"tls.sni\"\nservice = \"rdp\"\nequals = [\"a\"]\n";
        r.add_text(Path::new("a.toml"), one).unwrap();
        r.add_text(Path::new("b.toml"), one).unwrap();
        assert!(r
            .check_unique()
            .unwrap_err()
            .to_string()
            .contains("duplicate rule id x"));
    }
}
