//! Classify: decide by content what a flow is.
//!
//! Every protocol lives in its own module with the same shape: a pure parser over the
//! opening bytes (`&[u8]` in, parsed view or `None` out; never a panic), and a
//! `detect(&Cx) -> Verdict` that says `Yes` with evidence, `No` (this flow is certainly
//! not that protocol, so it is never asked again), or `Wait` for more bytes. The port is
//! only a tie-breaker for structurally weak protocols and, afterwards, the
//! "non-standard port" flag.
//!
//! The driver here runs the detectors on each new piece of opening bytes until one says
//! `Yes`, all say `No`, or the window closes; then the flow's buffers are freed and later
//! packets only update counters. Detectors run in [`DETECTORS`] order: exact magic first,
//! weak heuristics last.

pub mod anydesk;
pub mod cisco_dtls;
pub mod citrix;
pub mod common;
pub mod hamachi;
pub mod http;
pub mod igmp;
pub mod ipsec;
pub mod l2tp;
pub mod nomachine;
pub mod openvpn;
pub mod pptp;
pub mod radmin;
pub mod rdp;
pub mod rsh;
pub mod softether;
pub mod ssh;
pub mod tailscale;
pub mod teamviewer;
pub mod telnet;
pub mod tinc;
pub mod tls;
pub mod ultrasurf;
pub mod vnc;
pub mod wireguard;
pub mod x11;
pub mod xdmcp;

use crate::decode::ipproto;
use crate::flow::reassembly::Stream;
use crate::flow::Flow;
use crate::rules::{Field, Rules};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Payload-carrying packets after which a still undecided flow is given up.
pub const MAX_INSPECT_PACKETS: u16 = 24;

/// The services of the vocabulary (`corpus/VOCABULARY.md`): what an external connection
/// point is made of, plus the two consumer anonymisers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)]
pub enum Service {
    Rdp,
    Vnc,
    Ssh,
    Telnet,
    Rsh,
    Xdmcp,
    Teamviewer,
    Anydesk,
    Radmin,
    Nomachine,
    Citrix,
    Ipsec,
    Openvpn,
    Wireguard,
    Pptp,
    L2tp,
    SslVpn,
    Softether,
    Tinc,
    Tailscale,
    ConsumerVpn,
    Tor,
}

/// What kind of external access a service gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Remote desktop or shell.
    RemoteAccess,
    /// Network-level tunnel.
    Vpn,
    /// Consumer anonymiser (shadow IT).
    Anonymiser,
}

impl Service {
    /// All services.
    pub const ALL: [Service; 22] = [
        Service::Rdp,
        Service::Vnc,
        Service::Ssh,
        Service::Telnet,
        Service::Rsh,
        Service::Xdmcp,
        Service::Teamviewer,
        Service::Anydesk,
        Service::Radmin,
        Service::Nomachine,
        Service::Citrix,
        Service::Ipsec,
        Service::Openvpn,
        Service::Wireguard,
        Service::Pptp,
        Service::L2tp,
        Service::SslVpn,
        Service::Softether,
        Service::Tinc,
        Service::Tailscale,
        Service::ConsumerVpn,
        Service::Tor,
    ];

    /// The vocabulary name.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Rdp => "rdp",
            Service::Vnc => "vnc",
            Service::Ssh => "ssh",
            Service::Telnet => "telnet",
            Service::Rsh => "rsh",
            Service::Xdmcp => "xdmcp",
            Service::Teamviewer => "teamviewer",
            Service::Anydesk => "anydesk",
            Service::Radmin => "radmin",
            Service::Nomachine => "nomachine",
            Service::Citrix => "citrix",
            Service::Ipsec => "ipsec",
            Service::Openvpn => "openvpn",
            Service::Wireguard => "wireguard",
            Service::Pptp => "pptp",
            Service::L2tp => "l2tp",
            Service::SslVpn => "ssl-vpn",
            Service::Softether => "softether",
            Service::Tinc => "tinc",
            Service::Tailscale => "tailscale",
            Service::ConsumerVpn => "consumer-vpn",
            Service::Tor => "tor",
        }
    }

    /// From a vocabulary name.
    pub fn parse(s: &str) -> Option<Service> {
        Service::ALL.iter().copied().find(|v| v.as_str() == s)
    }

    /// Remote access, VPN or anonymiser.
    pub fn family(self) -> Family {
        match self {
            Service::Rdp
            | Service::Vnc
            | Service::Ssh
            | Service::Telnet
            | Service::Rsh
            | Service::Xdmcp
            | Service::Teamviewer
            | Service::Anydesk
            | Service::Radmin
            | Service::Nomachine
            | Service::Citrix => Family::RemoteAccess,
            Service::ConsumerVpn | Service::Tor => Family::Anonymiser,
            _ => Family::Vpn,
        }
    }
}

/// One piece of evidence: the rule that used it and the field value it saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Stable rule id (`setten.<protocol>.<what>` for built-in structure checks, the
    /// catalogue id for data rules). Built-in ids and field names are static text, so
    /// most evidence allocates only its value.
    pub rule: Cow<'static, str>,
    /// The field looked at.
    pub field: Cow<'static, str>,
    /// Its value as seen (truncated to a readable length).
    pub value: String,
}

impl Evidence {
    /// Evidence with a value cut to 200 characters.
    pub fn new(
        rule: impl Into<Cow<'static, str>>,
        field: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
    ) -> Evidence {
        // An owned value is kept, not copied; cut in place when long.
        let mut value: String = value.into();
        if value.len() > 200 {
            if let Some((i, _)) = value.char_indices().nth(200) {
                value.truncate(i);
                value.push('…');
            }
        }
        Evidence {
            rule: rule.into(),
            field: field.into(),
            value,
        }
    }
}

/// TLS metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TlsMeta {
    /// Negotiated version ("1.3", "1.2", …) or the ClientHello's highest offer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Server Name Indication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// ALPN protocols offered by the client.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alpn: Vec<String>,
    /// ALPN protocol chosen by the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn_selected: Option<String>,
    /// JA4 client fingerprint (FoxIO JA4, BSD-3-Clause).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ja4: Option<String>,
    /// Server certificate (TLS 1.2 and older, where it is in the clear).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<CertMeta>,
}

/// X.509 leaf certificate fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CertMeta {
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// DNS subject alternative names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub san: Vec<String>,
    /// Validity start (RFC 3339).
    pub not_before: String,
    /// Validity end (RFC 3339).
    pub not_after: String,
    /// Subject equals issuer.
    pub self_signed: bool,
}

/// SSH metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SshMeta {
    /// Client identification string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_banner: Option<String>,
    /// Server identification string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_banner: Option<String>,
    /// HASSH (Salesforce): MD5 of the client's KEXINIT algorithm lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hassh: Option<String>,
    /// HASSH-server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hassh_server: Option<String>,
}

/// RDP metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RdpMeta {
    /// `mstshash` cookie (user name hint), when sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
    /// Routing token sent instead of the cookie (RD Connection Broker load balancing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_token: Option<String>,
    /// Security protocols the client asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requested: Vec<String>,
    /// Security protocol the server chose ("standard" = RDP's own legacy encryption).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected: Option<String>,
    /// Carried over UDP (MS-RDPEUDP).
    pub udp: bool,
}

/// IKE metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IkeMeta {
    /// 1 or 2.
    pub version: u8,
    /// Exchange type name.
    pub exchange: String,
    /// Over UDP 4500 with the non-ESP marker (NAT traversal).
    pub nat_t: bool,
    /// Vendor ID payloads, hex, with the catalogue's name where known.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vendor_ids: Vec<VendorId>,
}

/// One IKE vendor ID.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VendorId {
    /// Payload bytes, hex.
    pub hex: String,
    /// Name from the catalogue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// HTTP metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HttpMeta {
    /// Request method.
    pub method: String,
    /// Request target.
    pub uri: String,
    /// Host header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// User-Agent header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// Protocol metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Meta {
    /// TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Box<TlsMeta>>,
    /// SSH.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh: Option<Box<SshMeta>>,
    /// RDP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rdp: Option<Box<RdpMeta>>,
    /// IKE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ike: Option<Box<IkeMeta>>,
    /// HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<Box<HttpMeta>>,
    /// Version string of the protocol, where it has one (VNC "RFB 003.008", SSH "2.0", …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// What a flow was found to be.
///
/// A decided flow keeps its classification until it ends, and most flows are named by
/// a protocol and one piece of evidence alone; so what only some classifications have
/// (vendor, product, weakness, metadata) lives behind one pointer in
/// [`Extra`], allocated when first written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Classification {
    /// Lowercase protocol name on the wire ("tls", "rdp", "dns", …).
    pub protocol: &'static str,
    /// The vocabulary service, when the flow is remote access, VPN or an anonymiser.
    pub service: Option<Service>,
    /// The bytes show that the flow's client (taken from the ports or the first packet)
    /// is the server: an OpenVPN client reset came from the other side. Acted on by
    /// [`crate::flow::Flow::settle_roles`].
    pub reversed: bool,
    /// Evidence, strongest first.
    pub evidence: Vec<Evidence>,
    /// Vendor, product, weakness and metadata.
    pub extra: Extra,
    /// Work left for after the decision (see [`Classification::resolve`]).
    pub deferred: Option<Deferred>,
}

/// The parts of a [`Classification`] that only some have.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Details {
    /// Vendor, when evidence names one.
    pub vendor: Option<String>,
    /// Product, when evidence names one.
    pub product: Option<String>,
    /// Legacy or weak variant (telnet, rsh, RDP standard security, SSH-1, TLS ≤ 1.0, PPTP,
    /// X11).
    pub weak: Option<String>,
    /// Metadata.
    pub meta: Meta,
}

/// No details: what an [`Extra`] that was never written reads as.
static NO_DETAILS: Details = Details {
    vendor: None,
    product: None,
    weak: None,
    meta: Meta {
        tls: None,
        ssh: None,
        rdp: None,
        ike: None,
        http: None,
        version: None,
    },
};

/// [`Details`] allocated on first write: reading one never written gives the empty
/// details, writing allocates them.
#[derive(Clone, Debug, Default)]
pub struct Extra(Option<Box<Details>>);

impl std::ops::Deref for Extra {
    type Target = Details;
    fn deref(&self) -> &Details {
        self.0.as_deref().unwrap_or(&NO_DETAILS)
    }
}

impl std::ops::DerefMut for Extra {
    fn deref_mut(&mut self) -> &mut Details {
        self.0.get_or_insert_with(Box::default)
    }
}

impl PartialEq for Extra {
    fn eq(&self, other: &Extra) -> bool {
        **self == **other
    }
}

impl Eq for Extra {}

impl Extra {
    /// Whether details were ever written (and so allocated).
    pub fn is_allocated(&self) -> bool {
        self.0.is_some()
    }

    /// Frees details that hold nothing: a detector that writes an absent value (a
    /// product the bytes did not name) allocates them all the same.
    pub fn shrink(&mut self) {
        if self.0.as_deref().is_some_and(|d| *d == NO_DETAILS) {
            self.0 = None;
        }
    }
}

/// Classification work that does not change whether a flow is decided, only what is said
/// about it, and so runs off the packet path (on the output thread).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deferred {
    /// TLS handshake bytes → metadata, JA4, certificate, catalogue matches.
    Tls(Box<tls::Pending>),
    /// HTTP request head → evidence, catalogue matches, metadata.
    Http(Box<http::Pending>),
    /// A classification made from another protocol's opening, then the TLS handshake
    /// that followed it (RDP's X.224 negotiation): the TLS metadata is added to it.
    After(Box<(Classification, tls::Pending)>),
}

impl Deferred {
    /// The classification the deferred work makes.
    pub fn resolve(self, rules: &Rules) -> Classification {
        let mut c = Classification::default();
        match self {
            Deferred::Tls(p) => tls::resolve(&mut c, *p, rules),
            Deferred::Http(p) => http::resolve(&mut c, *p, rules),
            Deferred::After(b) => {
                let (first, p) = *b;
                let mut t = Classification::default();
                tls::resolve(&mut t, p, rules);
                c = first;
                c.extra.meta.tls = t.extra.meta.tls.take();
            }
        }
        c
    }
}

impl Classification {
    /// A classification of a protocol with one piece of evidence.
    pub fn new(
        protocol: &'static str,
        service: Option<Service>,
        rule: impl Into<Cow<'static, str>>,
        field: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
    ) -> Classification {
        Classification {
            protocol,
            service,
            evidence: vec![Evidence::new(rule, field, value)],
            ..Classification::default()
        }
    }

    /// Completes deferred work; a no-op when there is none. A classification with
    /// deferred work is rebuilt from it whole.
    pub fn resolve(&mut self, rules: &Rules) {
        if let Some(d) = self.deferred.take() {
            *self = d.resolve(rules);
        }
    }

    /// Applies the catalogue's signatures for one field value: the first matching
    /// signature may set service, vendor and product, and adds its evidence.
    pub fn apply_rules(&mut self, rules: &Rules, field: Field, value: &str) -> bool {
        let mut matched = false;
        for sig in rules.matching(field, value) {
            if let Some(s) = sig.service {
                // A remote-access or VPN identification is not overridden by a later,
                // weaker one (e.g. an SNI naming a CDN after a certificate naming a VPN).
                if self.service.is_none() {
                    self.service = Some(s);
                }
            }
            // Only a value to set writes (writing allocates the details).
            if self.extra.vendor.is_none() && sig.vendor.is_some() {
                self.extra.vendor.clone_from(&sig.vendor);
            }
            if self.extra.product.is_none() && sig.product.is_some() {
                self.extra.product.clone_from(&sig.product);
            }
            self.evidence
                .push(Evidence::new(sig.id.clone(), field.as_str(), value));
            matched = true;
        }
        matched
    }
}

/// A detector's answer.
#[derive(Debug)]
pub enum Verdict {
    /// Certainly not this protocol; do not ask again.
    No,
    /// Not decidable yet.
    Wait,
    /// Not decided yet, but the bytes so far are certainly this protocol's (a whole TLS
    /// ClientHello, the server still to answer): as `Wait`, except that the checks that
    /// only name what nothing else claims (`common`) are not asked while it stands.
    Claim,
    /// Identified.
    Yes(Classification),
}

/// What detectors see: the opening bytes of both directions, in order.
pub struct Cx<'a> {
    /// IP protocol (TCP or UDP).
    pub proto: u8,
    /// Client port.
    pub client_port: u16,
    /// Server port.
    pub server_port: u16,
    /// Client-to-server opening bytes.
    pub c2s: &'a Stream,
    /// Server-to-client opening bytes.
    pub s2c: &'a Stream,
    /// No more bytes will come: decide now.
    pub last: bool,
    /// Signature catalogue.
    pub rules: &'a Rules,
}

impl<'a> Cx<'a> {
    /// TCP flow.
    pub fn is_tcp(&self) -> bool {
        self.proto == ipproto::TCP
    }
    /// UDP flow.
    pub fn is_udp(&self) -> bool {
        self.proto == ipproto::UDP
    }
    /// Either port equals `p`.
    pub fn port_is(&self, p: u16) -> bool {
        self.server_port == p || self.client_port == p
    }
    /// Datagrams of one direction (UDP).
    pub fn datagrams(&self, s: &'a Stream) -> impl Iterator<Item = &'a [u8]> + 'a {
        let bytes = s.bytes();
        let mut start = 0usize;
        s.ends().iter().map(move |&e| {
            let e = e as usize;
            let d = bytes.get(start..e).unwrap_or(&[]);
            start = e;
            d
        })
    }
    /// First client datagram (UDP) or empty.
    pub fn first_c2s_datagram(&self) -> &'a [u8] {
        self.datagrams(self.c2s).next().unwrap_or(&[])
    }
    /// First server datagram (UDP) or empty.
    pub fn first_s2c_datagram(&self) -> &'a [u8] {
        self.datagrams(self.s2c).next().unwrap_or(&[])
    }
}

/// Transports a detector applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum On {
    /// TCP only.
    Tcp,
    /// UDP only.
    Udp,
    /// Both.
    Both,
}

/// A registered detector.
pub struct Detector {
    /// Protocol name.
    pub name: &'static str,
    /// Transports it applies to.
    pub on: On,
    /// The check.
    pub detect: fn(&Cx<'_>) -> Verdict,
    /// For a detector made of several checks (`common`): the same, but the checks whose
    /// bit is set in the mask are skipped, and each check that says `No` gets its bit
    /// set: no check is asked again after its `No` (the contract of [`Verdict::No`], kept
    /// per check, not only for the detector as a whole).
    pub detect_rest: Option<fn(&Cx<'_>, &mut u64) -> Verdict>,
}

impl Detector {
    /// A detector that is one check.
    const fn one(name: &'static str, on: On, detect: fn(&Cx<'_>) -> Verdict) -> Detector {
        Detector {
            name,
            on,
            detect,
            detect_rest: None,
        }
    }

    /// A detector made of several checks, each remembered apart (see
    /// [`Detector::detect_rest`]). Such a group is the weakest kind, whose checks only
    /// name bytes that nothing else claims: it is not asked while an earlier detector
    /// says [`Verdict::Claim`].
    const fn checks(
        name: &'static str,
        on: On,
        detect: fn(&Cx<'_>) -> Verdict,
        detect_rest: fn(&Cx<'_>, &mut u64) -> Verdict,
    ) -> Detector {
        Detector {
            name,
            on,
            detect,
            detect_rest: Some(detect_rest),
        }
    }
}

/// All detectors, in the order they are asked. Exact magic and full handshakes first;
/// structurally weak checks (which need a port or several packets to agree) last.
pub static DETECTORS: &[Detector] = &[
    Detector::one("tls", On::Tcp, tls::detect),
    Detector::one("rdp", On::Both, rdp::detect),
    Detector::one("ssh", On::Tcp, ssh::detect),
    Detector::one("vnc", On::Tcp, vnc::detect),
    Detector::one("x11", On::Tcp, x11::detect),
    Detector::one("http", On::Tcp, http::detect),
    Detector::one("pptp", On::Tcp, pptp::detect),
    Detector::one("ipsec", On::Udp, ipsec::detect),
    Detector::one("l2tp", On::Udp, l2tp::detect),
    Detector::one("citrix", On::Tcp, citrix::detect),
    Detector::one("teamviewer", On::Both, teamviewer::detect),
    Detector::one("anydesk", On::Both, anydesk::detect),
    Detector::one("radmin", On::Tcp, radmin::detect),
    Detector::one("nomachine", On::Both, nomachine::detect),
    Detector::one("tinc", On::Tcp, tinc::detect),
    Detector::one("ultrasurf", On::Tcp, ultrasurf::detect),
    Detector::one("hamachi", On::Tcp, hamachi::detect),
    Detector::one("tailscale", On::Udp, tailscale::detect),
    Detector::one("softether", On::Both, softether::detect),
    Detector::one("openvpn", On::Both, openvpn::detect),
    Detector::one("wireguard", On::Udp, wireguard::detect),
    Detector::one("xdmcp", On::Udp, xdmcp::detect),
    Detector::one("cisco-dtls", On::Udp, cisco_dtls::detect),
    Detector::one("telnet", On::Tcp, telnet::detect),
    Detector::one("rsh", On::Tcp, rsh::detect),
    Detector::checks("common", On::Both, common::detect, common::detect_rest),
    // No fixed byte at all: after everything else (see `hamachi`).
    Detector::one("hamachi-udp", On::Udp, hamachi::detect_udp),
];

// One bit per detector in [`Inspect::excluded`].
const _: () = assert!(DETECTORS.len() <= u32::BITS as usize);

/// Per-flow classifier progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct Inspect {
    /// Bit i set: detector i said `No`.
    excluded: u32,
    /// The same for the checks of a detector made of several (`common`).
    excluded_checks: u64,
    /// Payload-carrying packets inspected.
    packets: u16,
    /// Classification is over (decided or given up).
    pub done: bool,
}

/// Classifies flows; holds the catalogue.
pub struct Classifier {
    rules: std::sync::Arc<Rules>,
    /// tinc meta connections, for the UDP flows of the same nodes.
    tinc: tinc::MetaConnections,
}

impl Classifier {
    /// A classifier over a catalogue.
    pub fn new(rules: std::sync::Arc<Rules>) -> Classifier {
        Classifier {
            rules,
            tinc: tinc::MetaConnections::default(),
        }
    }

    /// A TCP flow between `client` and `server` (in tunnel zone `zone`) has been
    /// classified as `class`: a tinc meta connection is remembered for the UDP flows of
    /// the same nodes.
    pub fn decided(
        &self,
        zone: u32,
        client: crate::flow::Endpoint,
        server: crate::flow::Endpoint,
        class: Option<&Classification>,
    ) {
        if class.is_some_and(|c| c.service == Some(Service::Tinc)) {
            self.tinc.note(zone, client, server);
        }
    }

    /// [`Classifier::decided`] for a TCP flow whose classification is over.
    fn decided_flow(&self, flow: &Flow) {
        if flow.key.proto == ipproto::TCP {
            self.decided(
                flow.key.zone,
                flow.client(),
                flow.server(),
                flow.class.as_deref(),
            );
        }
    }

    /// Names an ended UDP flow that nothing named from its own bytes, from what other
    /// flows showed (the UDP flows of tinc nodes).
    fn by_other_flows(&self, flow: &mut Flow) {
        if flow.key.proto != ipproto::UDP || flow.class.is_some() || flow.deferred.is_some() {
            return;
        }
        if let Some(c) = self.tinc.name_udp(&flow.key) {
            flow.class = Some(Box::new(c));
        }
    }

    /// The catalogue in use.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// A flow received a packet; `grew` says whether its opening bytes changed. `payload`
    /// is the packet's transport payload (for transports other than TCP and UDP, what
    /// follows the IP header).
    pub fn on_packet(&self, flow: &mut Flow, grew: bool, payload: &[u8]) {
        if flow.inspect.done {
            return;
        }
        let had_payload = !payload.is_empty();
        if !flow.inspectable {
            // Transports without payload inspection are decided from their first packet's
            // headers alone.
            flow.class = by_transport(flow.key.proto, payload);
            flow.inspect.done = true;
            return;
        }
        self.step(&mut Opening::of(flow), grew, had_payload);
        if flow.inspect.done {
            flow.settle_roles();
            self.decided_flow(flow);
        }
    }

    /// The flow ended: decide with what there is.
    pub fn on_end(&self, flow: &mut Flow) {
        if !flow.inspect.done {
            if flow.inspectable {
                self.run(&mut Opening::of(flow), true);
                self.decided_flow(flow);
            } else {
                flow.class = by_transport(flow.key.proto, &[]);
                flow.inspect.done = true;
            }
        }
        self.by_other_flows(flow);
        flow.settle_roles();
    }

    /// A packet of an inspectable (TCP or UDP) flow whose classification is not over:
    /// [`Classifier::on_packet`] over the classification state alone.
    pub fn step(&self, o: &mut Opening<'_>, grew: bool, had_payload: bool) {
        if o.inspect.done {
            return;
        }
        if had_payload {
            o.inspect.packets = o.inspect.packets.saturating_add(1);
        }
        let window_closed = o.inspect.packets >= MAX_INSPECT_PACKETS
            || o.streams
                .as_deref()
                .is_some_and(|s| s[0].is_done() && s[1].is_done());
        if grew || window_closed {
            self.run(o, window_closed);
        }
    }

    /// The end of an inspectable flow: [`Classifier::on_end`] over the classification
    /// state alone.
    pub fn end(&self, o: &mut Opening<'_>) {
        if !o.inspect.done {
            self.run(o, true);
        }
    }

    fn run(&self, o: &mut Opening<'_>, last: bool) {
        let Some(streams) = o.streams.as_deref() else {
            // No payload was ever seen: nothing to classify.
            if last {
                o.inspect.done = true;
            }
            return;
        };
        let cx = Cx {
            proto: o.proto,
            client_port: o.client_port,
            server_port: o.server_port,
            c2s: &streams[0],
            s2c: &streams[1],
            last,
            rules: &self.rules,
        };
        if cx.c2s.bytes().is_empty() && cx.s2c.bytes().is_empty() {
            // A SYN and no byte yet: nothing to classify, and at the end nothing will be
            // (no detector decides on ports alone).
            if last {
                o.inspect.done = true;
                *o.streams = None;
            }
            return;
        }
        let mut decided = None;
        let mut waiting = false;
        let mut claimed = false;
        for (i, d) in DETECTORS.iter().enumerate() {
            let bit = 1u32 << i;
            if o.inspect.excluded & bit != 0 {
                continue;
            }
            let applies = match d.on {
                On::Tcp => cx.is_tcp(),
                On::Udp => cx.is_udp(),
                On::Both => true,
            };
            if !applies {
                o.inspect.excluded |= bit;
                continue;
            }
            let verdict = match d.detect_rest {
                // Claimed by an earlier detector: left for a later pass.
                Some(_) if claimed => continue,
                Some(rest) => rest(&cx, &mut o.inspect.excluded_checks),
                None => (d.detect)(&cx),
            };
            match verdict {
                Verdict::No => o.inspect.excluded |= bit,
                v @ (Verdict::Wait | Verdict::Claim) => {
                    waiting = true;
                    claimed |= matches!(v, Verdict::Claim);
                    if last {
                        o.inspect.excluded |= bit;
                    }
                }
                Verdict::Yes(c) => {
                    decided = Some(c);
                    break;
                }
            }
        }
        if decided.is_some() || !waiting || last {
            match decided {
                // A detector that leaves work for later says nothing else: `resolve`
                // rebuilds the whole classification, so only the work is kept.
                Some(Classification {
                    deferred: Some(d), ..
                }) => *o.deferred = Some(d),
                Some(mut c) => {
                    c.extra.shrink();
                    *o.class = Some(Box::new(c));
                }
                None => *o.class = None,
            }
            o.inspect.done = true;
            *o.streams = None;
        }
    }
}

/// The classification state of one inspectable flow, borrowed: the flow's own fields, or
/// the same kept apart from the flow table (`analyze::staged`).
pub struct Opening<'f> {
    /// IP protocol (TCP or UDP).
    pub proto: u8,
    /// The client's port.
    pub client_port: u16,
    /// The server's port.
    pub server_port: u16,
    /// Opening bytes per direction (client to server first).
    pub streams: &'f mut Option<Box<[Stream; 2]>>,
    /// Progress.
    pub inspect: &'f mut Inspect,
    /// The classification once decided.
    pub class: &'f mut Option<Box<Classification>>,
    /// Deferred work that makes the classification.
    pub deferred: &'f mut Option<Deferred>,
}

impl<'f> Opening<'f> {
    /// A flow's own classification state.
    pub fn of(flow: &'f mut Flow) -> Opening<'f> {
        Opening {
            proto: flow.key.proto,
            client_port: flow.client().port,
            server_port: flow.server().port,
            streams: &mut flow.streams,
            inspect: &mut flow.inspect,
            class: &mut flow.class,
            deferred: &mut flow.deferred,
        }
    }
}

/// Runs every applicable detector once over given opening bytes, as at the end of a flow
/// (`last` set), and returns the first identification. For fuzzing, benchmarks and tests.
pub fn classify_streams(
    proto: u8,
    client_port: u16,
    server_port: u16,
    c2s: &Stream,
    s2c: &Stream,
    rules: &Rules,
) -> Option<Classification> {
    let cx = Cx {
        proto,
        client_port,
        server_port,
        c2s,
        s2c,
        last: true,
        rules,
    };
    DETECTORS.iter().find_map(|d| {
        let applies = match d.on {
            On::Tcp => cx.is_tcp(),
            On::Udp => cx.is_udp(),
            On::Both => true,
        };
        if !applies {
            return None;
        }
        match (d.detect)(&cx) {
            Verdict::Yes(mut c) => {
                c.resolve(rules);
                Some(c)
            }
            _ => None,
        }
    })
}

/// Transports that are classified from the IP header (and, for GRE, the GRE header) of
/// their first packet.
fn by_transport(proto: u8, payload: &[u8]) -> Option<Box<Classification>> {
    match proto {
        ipproto::GRE => pptp::gre(payload).map(Box::new),
        ipproto::L2TP => l2tp::over_ip(payload).map(Box::new),
        ipproto::ESP => Some(Box::new(Classification::new(
            "esp",
            Some(Service::Ipsec),
            "setten.ipsec.esp",
            "ip.protocol",
            "50 (ESP)",
        ))),
        ipproto::AH => Some(Box::new(Classification::new(
            "ah",
            Some(Service::Ipsec),
            "setten.ipsec.ah",
            "ip.protocol",
            "51 (AH)",
        ))),
        ipproto::ICMP => Some(Box::new(Classification::new(
            "icmp",
            None,
            "setten.icmp",
            "ip.protocol",
            "1",
        ))),
        ipproto::IGMP => igmp::over_ip(payload).map(Box::new),
        ipproto::ICMPV6 => Some(Box::new(Classification::new(
            "icmpv6",
            None,
            "setten.icmpv6",
            "ip.protocol",
            "58",
        ))),
        _ => None,
    }
}

/// Test harness shared by the detector modules: runs one detector over opening bytes
/// given as TCP segments or UDP datagrams.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Cx, Verdict};
    use crate::decode::ipproto;
    use crate::flow::reassembly::Stream;
    use crate::rules::Rules;

    /// One direction: each part a TCP segment (in sequence after a SYN) or a datagram.
    pub fn stream(proto: u8, parts: &[&[u8]]) -> Stream {
        let mut s = Stream::default();
        s.syn(0);
        let mut seq = 1u32;
        for p in parts {
            if proto == ipproto::TCP {
                s.add_segment(seq, p);
                seq = seq.wrapping_add(p.len() as u32);
            } else {
                s.add_datagram(p);
            }
        }
        s
    }

    /// Runs `detect` on a flow between `ports` (client, server); a `Yes` is resolved.
    pub fn run(
        detect: fn(&Cx<'_>) -> Verdict,
        proto: u8,
        c2s: &[&[u8]],
        s2c: &[&[u8]],
        ports: (u16, u16),
        last: bool,
    ) -> Verdict {
        let rules = Rules::defaults().expect("default rules load");
        let (a, b) = (stream(proto, c2s), stream(proto, s2c));
        let cx = Cx {
            proto,
            client_port: ports.0,
            server_port: ports.1,
            c2s: &a,
            s2c: &b,
            last,
            rules: &rules,
        };
        match detect(&cx) {
            Verdict::Yes(mut c) => {
                c.resolve(&rules);
                Verdict::Yes(c)
            }
            v => v,
        }
    }

    /// Borrows a list of owned datagrams.
    pub fn parts(v: &[Vec<u8>]) -> Vec<&[u8]> {
        v.iter().map(Vec::as_slice).collect()
    }
}

/// Helpers shared by detectors.
pub mod util {
    /// Printable ASCII rendering of bytes, for evidence values.
    pub fn printable(b: &[u8]) -> String {
        b.iter()
            .map(|&c| {
                if (0x20..0x7f).contains(&c) {
                    c as char
                } else {
                    '.'
                }
            })
            .collect()
    }

    /// Lowercase hex.
    pub fn hex(b: &[u8]) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(b.len() * 2);
        for x in b {
            s.push(char::from(HEX[usize::from(x >> 4)]));
            s.push(char::from(HEX[usize::from(x & 0xf)]));
        }
        s
    }

    /// Big-endian u16 at `off`.
    pub fn be16(b: &[u8], off: usize) -> Option<u16> {
        Some(u16::from_be_bytes([
            *b.get(off)?,
            *b.get(off.checked_add(1)?)?,
        ]))
    }

    /// Big-endian u32 at `off`.
    pub fn be32(b: &[u8], off: usize) -> Option<u32> {
        let s = b.get(off..off.checked_add(4)?)?;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// Little-endian u32 at `off`.
    pub fn le32(b: &[u8], off: usize) -> Option<u32> {
        let s = b.get(off..off.checked_add(4)?)?;
        Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the driver over a flow whose client sent `c2s` after a SYN (and the server
    /// nothing), as the packet path would after its last packet when `last`.
    fn drive(c2s: &[u8], last: bool) -> (Inspect, Option<Box<Classification>>, bool) {
        let classifier = Classifier::new(std::sync::Arc::new(Rules::defaults().unwrap()));
        let mut streams: Option<Box<[Stream; 2]>> = Some(Box::default());
        if let Some(s) = streams.as_deref_mut() {
            s[0].syn(0);
            s[0].add_segment(1, c2s);
        }
        let (mut inspect, mut class, mut deferred) = (Inspect::default(), None, None);
        let mut o = Opening {
            proto: ipproto::TCP,
            client_port: 50000,
            server_port: 443,
            streams: &mut streams,
            inspect: &mut inspect,
            class: &mut class,
            deferred: &mut deferred,
        };
        if last {
            classifier.end(&mut o);
        } else {
            classifier.step(&mut o, true, !c2s.is_empty());
        }
        (inspect, class, streams.is_some())
    }

    /// A SYN and nothing after it: nothing to decide yet, and at the end the flow is
    /// left unnamed (no detector names a flow from its ports) with its buffers freed.
    #[test]
    fn a_flow_without_bytes_ends_unnamed() {
        let (inspect, class, kept) = drive(b"", false);
        assert!(!inspect.done && class.is_none() && kept);
        let (inspect, class, kept) = drive(b"", true);
        assert!(inspect.done && class.is_none() && !kept);
    }

    /// A flow named by protocol and evidence alone keeps no details, even when its
    /// detector wrote an absent product; details that hold something are kept.
    #[test]
    fn a_kept_classification_allocates_details_only_when_it_has_some() {
        let (inspect, class, _) =
            drive(b"GNUTELLA CONNECT/0.6\r\nNode: 1.2.3.4:6346\r\n\r\n", true);
        let c = class.expect("named");
        assert!(inspect.done);
        assert_eq!(c.protocol, "gnutella");
        assert!(!c.extra.is_allocated(), "{:?}", *c.extra);
        assert_eq!(
            (c.extra.product.as_deref(), &c.extra.meta),
            (None, &Meta::default())
        );
        let (_, class, _) = drive(
            b"GNUTELLA CONNECT/0.6\r\nUser-Agent: LimeWire/5.5.16\r\n\r\n",
            true,
        );
        let c = class.expect("named");
        assert!(c.extra.is_allocated());
        assert_eq!(c.extra.product.as_deref(), Some("LimeWire/5.5.16"));
        // Writing allocates; shrinking frees only empty details.
        let mut e = Extra::default();
        assert!(!e.is_allocated());
        let weak = &mut e.weak;
        *weak = None;
        assert!(e.is_allocated());
        e.shrink();
        assert!(!e.is_allocated());
        e.vendor = Some("Cisco".into());
        e.shrink();
        assert_eq!(e.vendor.as_deref(), Some("Cisco"));
    }

    /// A whole ClientHello, the server still silent: the flow waits for the server, and
    /// the common-protocol checks were not asked to name the bytes TLS claims.
    #[test]
    fn a_claimed_flow_is_not_offered_to_the_common_checks() {
        let hello = tls::tests::client_hello("portal.example.jp", &["h2"]);
        let (inspect, class, kept) = drive(&hello, false);
        assert!(!inspect.done && class.is_none() && kept);
        assert_eq!(inspect.excluded_checks, 0, "common checks were asked");
        // Bytes nobody claims are offered to them (and most say No at once).
        let (inspect, _, _) = drive(b"\x00\x01 not a protocol anyone knows", false);
        assert_ne!(inspect.excluded_checks, 0);
    }
}
