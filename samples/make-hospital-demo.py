#!/usr/bin/env python3
"""Writes the bundled demo capture and demo ledger of a fictional hospital.

    python3 samples/make-hospital-demo.py [OUTDIR]      (default: the script's directory)

Outputs: hospital-demo.pcap, hospital-ledger.csv (UTF-8 with BOM) and
hospital-ledger-sjis.csv (the same rows in Shift_JIS / cp932).

Python 3 standard library only. Deterministic: no randomness and no clock; every
"random" field (TCP initial sequence numbers, nonces, keys, ciphertext) is derived from
SHA-256 of a fixed label, and every timestamp is fixed, so two runs give byte-identical
files. The script only writes files; it sends and looks up nothing.

Scenario
--------
A mirror (SPAN) port of the core switch of 架空 (fictional) "Example Hospital", seen from
2026-10-05T00:00:00Z (Monday 09:00 JST) for 26 hours of sparse activity. The capture
is a classic pcap (Ethernet, microsecond timestamps); every frame carries an 802.1Q tag
for the VLAN of the hospital host it belongs to:

    VLAN 10 servers 10.20.10.0/24   VLAN 20 clinical/modality 10.20.20.0/24
    VLAN 30 office  10.20.30.0/24   VLAN 40 laboratory        10.20.40.0/24

The core switch (one MAC, ALAXALA OUI) routes between the VLANs as 10.20.x.254 and to
the Internet; every other host has its own MAC with its maker's OUI. Outside parties use
only the documentation ranges 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24.

Designed external connection points (samples/README.md has the table):

 1. RDP from the Internet to the CT workstation 10.20.20.15:3389 from six sources at
    all hours; every client offers only PROTOCOL_RDP and the server selects it (RDP
    standard security: weak). Two are full logons, four are scanner probes. Not in
    the ledger.
 2. IPsec from the hospital's VPN router 10.20.10.1 to the vendor's FortiGate
    192.0.2.10: IKEv1 Main Mode on UDP 500 (FortiGate and NAT-T vendor IDs), then
    NAT-T on UDP 4500 (Main Mode 5/6, Quick Mode, ESP-in-UDP, keepalives, DPD).
    Registered in the ledger.
 3. FortiGate SSL-VPN 10.20.10.2:10443, TLS 1.2 from a remote worker 198.51.100.140
    (SNI vpn.hospital.example, FortiGate factory certificate) at 10:00 JST and at
    23:30 JST. In the ledger with window 平日 8:00-20:00: the 23:30 session drifts.
 4. TeamViewer on the lab PC 10.20.40.31: TCP 5938 to three relays 203.0.113.60-62,
    each looked up first (router1..3.teamviewer.com). Not in the ledger.
 5. Vendor SSH from 203.0.113.50 to PACS 10.20.10.50:22 at 14:00 JST (PuTTY 0.78 to
    OpenSSH 8.9p1 Ubuntu). Registered, window 平日 9:00-18:00.
 6. OpenVPN (UDP 1194) from the office PC 10.20.30.77 to 198.51.100.200. Not in the
    ledger (shadow IT).
 7. VNC from the contractor 192.0.2.88 to the MRI console 10.20.20.40:5900. In the
    ledger with far end 192.0.2.80: drifted far end.
 +  The ledger also lists an old vendor's RDP (10.20.20.99 <- 198.51.100.5) that never
    appears: registered but not seen.

Ordinary traffic that is none of the above (the agent must not call it remote access
or VPN): DNS (clients -> 10.20.10.53 -> 192.0.2.53), DHCP for LAB-PC-031 and CT-WS-01,
NetBIOS name registration, an mDNS printer announcement, Kerberos AS exchanges and an
SMB2 NEGOTIATE with the file server 10.20.10.20, HTTPS to the EHR 10.20.10.30, DICOM
C-ECHO to the PACS, HL7 v2 ADT^A01 over MLLP to 10.20.10.60:2575, NTP with 10.20.10.1
and HTTPS from office PCs to an outside web site.

Message layouts follow the specifications cited beside each builder; where a product's
exact bytes are not published (TeamViewer, PuTTY's algorithm lists), the shape follows
public captures and sources and is marked "modelled on".
"""

import calendar
import csv
import hashlib
import io
import os
import struct
import sys

# --------------------------------------------------------------------------------------
# Deterministic helpers
# --------------------------------------------------------------------------------------

T0 = calendar.timegm((2026, 10, 5, 0, 0, 0))  # 2026-10-05T00:00:00Z = Mon 09:00 JST
US = 1_000_000


def jst(day, hh, mm, ss=0.0):
    """Microseconds after T0 for day (0 = Mon 5 Oct) and JST wall-clock time."""
    return int(round((((day * 24 + hh - 9) * 60 + mm) * 60 + ss) * US))


def det(label, n):
    """n pseudo-random bytes, fixed by label (SHA-256 in counter mode)."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{label}#{i}".encode()).digest()
        i += 1
    return bytes(out[:n])


def det_int(label, lo, hi):
    """An integer in [lo, hi], fixed by label."""
    return lo + int.from_bytes(det(label, 8), "big") % (hi - lo + 1)


def gap(label, minutes, steps):
    """A pause of 0.6 to 1.4 times minutes/steps, so `steps` pauses last about `minutes`."""
    avg = minutes * 60 * US // steps
    return det_int(label, avg * 6 // 10, avg * 14 // 10)


def u8(v):
    return struct.pack("!B", v)


def u16(v):
    return struct.pack("!H", v)


def u32(v):
    return struct.pack("!I", v)


def le16(v):
    return struct.pack("<H", v)


def le32(v):
    return struct.pack("<I", v)


def le64(v):
    return struct.pack("<Q", v)


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def inet_csum(b):
    """RFC 1071 Internet checksum."""
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


# --------------------------------------------------------------------------------------
# The hospital network
# --------------------------------------------------------------------------------------


class Host:
    def __init__(self, ip, name, mac_, vlan, ttl, hops=0):
        self.ip, self.name, self.mac, self.vlan = ip, name, mac(mac_) if mac_ else None, vlan
        self.ttl = ttl  # initial TTL of its IP stack
        self.hops = hops  # routers between it and the mirror port (outside parties)
        self.ip_id = det_int("ipid " + ip, 0, 0xFFFF)


# The core switch: one MAC for all its VLAN interfaces (10.20.x.254) and the Internet.
ROUTER_MAC = mac("00:12:e2:5c:0a:01")  # ALAXALA Networks
ROUTER_IP = {10: "10.20.10.254", 20: "10.20.20.254", 30: "10.20.30.254", 40: "10.20.40.254"}

HOSTS = {}


def host(ip, name, mac_, vlan, ttl, hops=0):
    HOSTS[ip] = Host(ip, name, mac_, vlan, ttl, hops)


# Internal hosts, each with its maker's OUI (IEEE oui.csv).
host("10.20.10.1", "VPN-RTR (YAMAHA RTX)", "00:a0:de:4a:21:07", 10, 255)  # YAMAHA CORPORATION
host("10.20.10.2", "FGT-60F SSL-VPN", "00:09:0f:9a:3c:51", 10, 64)  # Fortinet, Inc.
host("10.20.10.20", "FS01 file server / DC", "f4:8e:38:21:6d:10", 10, 128)  # Dell Inc.
host("10.20.10.30", "EHR01", "00:14:38:7b:02:e3", 10, 128)  # Hewlett Packard Enterprise
host("10.20.10.50", "PACS01", "00:0b:5d:33:90:1c", 10, 64)  # FUJITSU LIMITED
host("10.20.10.53", "DNS01", "00:50:56:a1:0d:35", 10, 128)  # VMware, Inc.
host("10.20.10.60", "HL7GW", "00:50:56:a1:3c:60", 10, 64)  # VMware, Inc.
host("10.20.20.15", "CT-WS-01", "00:0e:8c:8a:41:15", 20, 128)  # Siemens AG
host("10.20.20.40", "MRI-CONSOLE", "44:4b:5d:02:18:40", 20, 64)  # GE Healthcare
host("10.20.30.21", "OFFICE-PC-021", "34:fe:9e:6b:77:21", 30, 128)  # Fujitsu Limited
host("10.20.30.45", "OFFICE-PC-045", "00:16:97:c2:10:45", 30, 128)  # NEC Corporation
host("10.20.30.77", "OFFICE-PC-077", "10:c5:95:3e:a0:77", 30, 128)  # Lenovo
host("10.20.30.200", "CANON-MF644C printer", "00:1e:8f:d4:52:c8", 30, 64)  # CANON INC.
host("10.20.40.31", "LAB-PC-031", "98:e7:43:19:5f:31", 40, 128)  # Dell Inc.
for _v, _ip in ROUTER_IP.items():
    host(_ip, "core switch", "00:12:e2:5c:0a:01", _v, 255)

# Outside parties (documentation ranges only): initial TTL and router hops.
for _ip, _name, _ttl, _hops in [
    ("192.0.2.10", "vendor FortiGate (IPsec)", 255, 9),
    ("192.0.2.53", "upstream resolver", 64, 6),
    ("192.0.2.88", "contractor VNC client", 128, 12),
    ("192.0.2.150", "RDP source 3", 64, 19),
    ("192.0.2.201", "RDP source 6", 128, 21),
    ("198.51.100.33", "RDP source 2", 128, 15),
    ("198.51.100.77", "RDP source 5", 64, 17),
    ("198.51.100.80", "www.example.com", 64, 11),
    ("198.51.100.140", "remote worker", 128, 13),
    ("198.51.100.200", "OpenVPN server", 64, 14),
    ("203.0.113.17", "RDP source 4", 128, 18),
    ("203.0.113.50", "PACS vendor", 128, 10),
    ("203.0.113.60", "TeamViewer router1", 64, 16),
    ("203.0.113.61", "TeamViewer router2", 64, 16),
    ("203.0.113.62", "TeamViewer router3", 64, 17),
    ("203.0.113.200", "RDP source 1", 64, 20),
]:
    host(_ip, _name, None, None, _ttl, _hops)


def is_internal(ip):
    return ip.startswith("10.20.")


# --------------------------------------------------------------------------------------
# Capture file (libpcap format: pcap-savefile(5))
# --------------------------------------------------------------------------------------


class Capture:
    def __init__(self):
        self.frames = []

    def add(self, t_us, frame):
        assert t_us >= 0, "before the capture start"
        self.frames.append((t_us, len(self.frames), frame))

    def write(self, path):
        out = io.BytesIO()
        # magic, v2.4, thiszone 0, sigfigs 0, snaplen 65535, LINKTYPE_ETHERNET (1)
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for t_us, _, frame in sorted(self.frames):
            t = T0 * US + t_us
            out.write(struct.pack("<IIII", t // US, t % US, len(frame), len(frame)))
            out.write(frame)
        with open(path, "wb") as f:
            f.write(out.getvalue())
        return len(self.frames), out.tell()


CAP = Capture()


def ethernet(src_ip, dst_ip, vlan, ethertype, payload, src_mac=None):
    """IEEE 802.3 frame with an 802.1Q tag (PCP 0, VID = the hospital VLAN). A host on
    the mirrored VLAN appears with its own MAC, everything else behind the core switch's."""
    s, d = HOSTS.get(src_ip), HOSTS.get(dst_ip)
    if src_mac is None:
        src_mac = s.mac if s and s.vlan == vlan and s.mac else ROUTER_MAC
    if dst_ip == "255.255.255.255" or dst_ip.endswith(".255"):
        dst_mac = b"\xff" * 6
    elif int(dst_ip.split(".")[0]) in range(224, 240):  # RFC 1112 6.4 multicast mapping
        o = ip4(dst_ip)
        dst_mac = bytes([0x01, 0x00, 0x5E, o[1] & 0x7F, o[2], o[3]])
    else:
        dst_mac = d.mac if d and d.vlan == vlan and d.mac else ROUTER_MAC
    tag = u16(0x8100) + u16(vlan & 0x0FFF)
    frame = dst_mac + src_mac + tag + u16(ethertype) + payload
    if len(frame) < 64:  # minimum frame without FCS: 60 + 4 for the tag
        frame += b"\0" * (64 - len(frame))
    return frame


def ipv4(src, dst, proto, payload, vlan, df=True, tos=0, ttl=None):
    """RFC 791 header (no options) with its checksum. TTL as seen at the mirror."""
    h = HOSTS.get(src)
    if h is None:  # 0.0.0.0 (DHCP client before it has an address)
        ttl, ident = ttl or 128, 0
    else:
        ttl = ttl or h.ttl - h.hops
        if is_internal(src) and h.vlan != vlan:
            ttl -= 1  # routed by the core switch onto the mirrored VLAN
        ident = h.ip_id
        h.ip_id = (h.ip_id + 1) & 0xFFFF
    hdr = struct.pack(
        "!BBHHHBBH4s4s", 0x45, tos, 20 + len(payload), ident, 0x4000 if df else 0,
        ttl, proto, 0, ip4(src), ip4(dst))
    hdr = hdr[:10] + u16(inet_csum(hdr)) + hdr[12:]
    return hdr + payload


def l4_csum(src, dst, proto, seg):
    pseudo = ip4(src) + ip4(dst) + u8(0) + u8(proto) + u16(len(seg))
    return inet_csum(pseudo + seg)


def vlan_of(a, b):
    """The VLAN a conversation is mirrored on, the same for both directions: the inside
    end's, and between two VLANs the client-side one (the higher number; servers are on
    VLAN 10)."""
    vlans = [HOSTS[ip].vlan for ip in (a, b) if ip in HOSTS and HOSTS[ip].vlan]
    if not vlans:
        raise ValueError((a, b))
    return max(vlans)


def udp(t, src, sport, dst, dport, payload, vlan=None, df=False, ttl=None, src_mac=None):
    """RFC 768 datagram with its checksum."""
    vlan = vlan or vlan_of(src, dst)
    seg = u16(sport) + u16(dport) + u16(8 + len(payload)) + u16(0) + payload
    c = l4_csum(src, dst, 17, seg) or 0xFFFF
    seg = seg[:6] + u16(c) + seg[8:]
    pkt = ipv4(src, dst, 17, seg, vlan, df=df, ttl=ttl)
    CAP.add(t, ethernet(src, dst, vlan, 0x0800, pkt, src_mac=src_mac))


# TCP (RFC 9293). Options in the SYNs as Windows and Linux send them (no timestamps).
SYN_OPTS_WIN = bytes.fromhex("020405b40103030801010402")  # MSS 1460, WS 8, SACK_PERM
SYN_OPTS_LINUX = bytes.fromhex("020405b40101040201030307")  # MSS 1460, SACK_PERM, WS 7
MSS = 1460
F_FIN, F_SYN, F_RST, F_PSH, F_ACK = 0x01, 0x02, 0x04, 0x08, 0x10


class Tcp:
    """One TCP connection, written packet by packet with consistent seq/ack numbers.

    Time advances as packets are written: a packet from the outside party answers
    after the round trip `rtt` (the mirror is next to the inside host), a packet from
    an inside host after `lan` microseconds. Data is cut into MSS-sized segments; the
    receiver acknowledges every second segment, and a message that gets no answer is
    acknowledged before its sender speaks again (delayed ACK).
    """

    def __init__(self, t, cli, cport, srv, sport, rtt=30_000, lan=300, label=None):
        self.t = t
        self.ip = {"c": cli, "s": srv}
        self.port = {"c": cport, "s": sport}
        self.vlan = vlan_of(cli, srv)
        self.rtt, self.lan = rtt, lan
        label = label or f"{cli}:{cport}>{srv}:{sport}@{t}"
        self.seq = {"c": det_int("isn c " + label, 0, 2**32 - 1),
                    "s": det_int("isn s " + label, 0, 2**32 - 1)}
        self.win = {"c": 0x0201, "s": 0x01F6}  # scaled windows (x256 / x128)
        self.last = None  # side of the last packet
        self.unacked = {"c": 0, "s": 0}  # segments each side has received, unacked

    def other(self, side):
        return "s" if side == "c" else "c"

    def delay(self, side):
        """Time before `side` writes its next packet, as seen at the mirror."""
        if self.last is None or self.last == side:
            return 40
        outside = not is_internal(self.ip[side])
        return self.rtt if outside else self.lan

    def pkt(self, side, flags, data=b"", opts=b"", wait=None):
        self.t += self.delay(side) if wait is None else wait
        o = self.other(side)
        ack = self.seq[o] if flags & F_ACK else 0
        hlen = 20 + len(opts)
        win = 0xFAF0 if flags & F_SYN else self.win[side]
        seg = struct.pack("!HHIIBBHHH", self.port[side], self.port[o], self.seq[side], ack,
                          (hlen // 4) << 4, flags, win, 0, 0) + opts + data
        c = l4_csum(self.ip[side], self.ip[o], 6, seg)
        seg = seg[:16] + u16(c) + seg[18:]
        src, dst = self.ip[side], self.ip[o]
        CAP.add(self.t, ethernet(src, dst, self.vlan, 0x0800, ipv4(src, dst, 6, seg, self.vlan)))
        self.seq[side] = (self.seq[side] + len(data) + (1 if flags & (F_SYN | F_FIN) else 0)) % 2**32
        self.last = side
        if data:
            self.unacked[o] += 1
        if flags & F_ACK:
            self.unacked[side] = 0

    def open(self, client_opts=SYN_OPTS_WIN, server_opts=SYN_OPTS_LINUX):
        self.pkt("c", F_SYN, opts=client_opts, wait=0)
        self.pkt("s", F_SYN | F_ACK, opts=server_opts)
        self.pkt("c", F_ACK)
        return self

    def ack(self, side, wait=None):
        self.pkt(side, F_ACK, wait=wait)

    def send(self, side, data, think=0):
        """Writes one application message from `side`; think = time spent before it."""
        o = self.other(side)
        if self.unacked[o]:
            # The peer has not answered our previous message: its delayed ACK comes first.
            self.ack(o)
        first = True
        for i in range(0, len(data), MSS):
            chunk = data[i:i + MSS]
            last = i + MSS >= len(data)
            wait = None
            if first:
                wait = self.delay(side) + think
            self.pkt(side, F_ACK | (F_PSH if last else 0), chunk, wait=wait)
            first = False
            if self.unacked[o] >= 2 and not last:
                self.ack(o)  # ACK every second full-sized segment (RFC 9293 3.8.6.3)
        return self

    def close(self, first="c", think=0):
        o = self.other(first)
        self.pkt(first, F_FIN | F_ACK, wait=self.delay(first) + think)
        self.pkt(o, F_FIN | F_ACK)
        self.pkt(first, F_ACK)

    def reset(self, side, think=0):
        self.pkt(side, F_RST | F_ACK, wait=self.delay(side) + think)


def eph(label, windows=True):
    """An ephemeral port (Windows 49152-65535, Linux 32768-60999), fixed by label."""
    return det_int("port " + label, 49152, 65535) if windows else det_int("port " + label, 32768, 60999)


# --------------------------------------------------------------------------------------
# ASN.1 DER (X.690) - for X.509, Kerberos and SPNEGO
# --------------------------------------------------------------------------------------


def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag, content):
    return bytes([tag]) + der_len(len(content)) + content


def seq(*items):
    return tlv(0x30, b"".join(items))


def set_(*items):
    return tlv(0x31, b"".join(sorted(items)))  # DER: SET OF sorted (X.690 11.6)


def ctx(n, inner):
    """[n] EXPLICIT, constructed context tag."""
    return tlv(0xA0 | n, inner)


def app(n, inner):
    """[APPLICATION n] constructed."""
    return tlv(0x60 | n, inner) if n < 31 else bytes([0x7F, n]) + der_len(len(inner)) + inner


def integer(v):
    if isinstance(v, bytes):
        b = v.lstrip(b"\0") or b"\0"
        if b[0] & 0x80:
            b = b"\0" + b
        return tlv(0x02, b)
    n = (v.bit_length() + 8) // 8 if v >= 0 else ((-v - 1).bit_length() + 8) // 8
    return tlv(0x02, v.to_bytes(max(n, 1), "big", signed=True))


def boolean(v):
    return tlv(0x01, b"\xff" if v else b"\0")


def oid(dotted):
    parts = [int(x) for x in dotted.split(".")]
    body = bytes([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        enc = [p & 0x7F]
        p >>= 7
        while p:
            enc.append(0x80 | (p & 0x7F))
            p >>= 7
        body += bytes(reversed(enc))
    return tlv(0x06, body)


def octets(b):
    return tlv(0x04, b)


def bitstring(b, unused=0):
    return tlv(0x03, bytes([unused]) + b)


def null():
    return b"\x05\x00"


def gentime(s):
    return tlv(0x18, s.encode())


def utctime(s):
    return tlv(0x17, s.encode())


def x509_time(s):
    """RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050."""
    return utctime(s[2:]) if int(s[:4]) < 2050 else gentime(s)


# X.520 / PKCS #9 attribute types
AT = {"C": ("2.5.4.6", 0x13), "ST": ("2.5.4.8", 0x0C), "L": ("2.5.4.7", 0x0C),
      "O": ("2.5.4.10", 0x0C), "OU": ("2.5.4.11", 0x0C), "CN": ("2.5.4.3", 0x0C),
      "emailAddress": ("1.2.840.113549.1.9.1", 0x16)}


def x500_name(rdns):
    """Name (RFC 5280 4.1.2.4) from [(type, value), ...] in encoding order."""
    return seq(*[set_(seq(oid(AT[k][0]), tlv(AT[k][1], v.encode()))) for k, v in rdns])


OID_RSA = "1.2.840.113549.1.1.1"
OID_SHA256_RSA = "1.2.840.113549.1.1.11"


def rsa_modulus(label, bits=2048):
    n = bytearray(det("rsa n " + label, bits // 8))
    n[0] |= 0x80
    n[-1] |= 1
    return bytes(n)


def x509_cert(label, serial, issuer, subject, not_before, not_after, extensions):
    """RFC 5280 4.1 certificate; the RSA key and signature are fixed dummy bytes (nothing
    verifies them)."""
    spki = seq(seq(oid(OID_RSA), null()),
               bitstring(seq(integer(rsa_modulus(label)), integer(65537))))
    tbs = seq(
        ctx(0, integer(2)),  # version v3
        integer(serial),
        seq(oid(OID_SHA256_RSA), null()),
        x500_name(issuer),
        seq(x509_time(not_before), x509_time(not_after)),
        x500_name(subject),
        spki,
        ctx(3, seq(*extensions)),
    )
    return seq(tbs, seq(oid(OID_SHA256_RSA), null()), bitstring(det("sig " + label, 256)))


def ext(oid_, value, critical=False):
    return seq(oid(oid_), *( [boolean(True)] if critical else []), octets(value))


def ski(label):
    return ext("2.5.29.14", octets(det("ski " + label, 20)))


def aki(issuer_label):
    return ext("2.5.29.35", seq(tlv(0x80, det("ski " + issuer_label, 20))))


# --------------------------------------------------------------------------------------
# TLS (RFC 5246 for 1.2, RFC 8446 for 1.3)
# --------------------------------------------------------------------------------------


def tls_record(ctype, body, version=0x0303):
    return u8(ctype) + u16(version) + u16(len(body)) + body


def hs(msg_type, body):
    return u8(msg_type) + len(body).to_bytes(3, "big") + body


def tls_ext(t, data):
    return u16(t) + u16(len(data)) + data


def vec8(b):
    return u8(len(b)) + b


def vec16(b):
    return u16(len(b)) + b


def vec24(b):
    return len(b).to_bytes(3, "big") + b


def ext_sni(name):  # RFC 6066 3
    return tls_ext(0, vec16(u8(0) + vec16(name.encode())))


def ext_alpn(*protos):  # RFC 7301 3.1
    return tls_ext(16, vec16(b"".join(vec8(p.encode()) for p in protos)))


SIGALGS = tls_ext(13, vec16(bytes.fromhex("040308040401050308050501080606010201")))
GROUPS = tls_ext(10, vec16(bytes.fromhex("001d00170018")))  # x25519, P-256, P-384
POINT_FORMATS = tls_ext(11, vec8(b"\0"))
EMS = tls_ext(23, b"")  # RFC 7627
RENEG = tls_ext(0xFF01, b"\0")  # RFC 5746
TICKET = tls_ext(35, b"")


def client_hello_browser(label, sni):
    """A TLS 1.3-capable browser ClientHello (modelled on Chromium's extension set);
    without SNI and ALPN when sni is None (a VPN client's OpenSSL)."""
    ciphers = bytes.fromhex("130113021303c02bc02fc02cc030cca9cca8c013c014009c009d002f0035")
    exts = ((ext_sni(sni) if sni else b"") + EMS + RENEG + GROUPS + POINT_FORMATS + TICKET
            + (ext_alpn("h2", "http/1.1") if sni else b"")
            + tls_ext(5, bytes.fromhex("0100000000"))  # status_request (RFC 6066 8)
            + SIGALGS + tls_ext(18, b"")  # signed_certificate_timestamp (RFC 6962)
            + tls_ext(51, vec16(u16(0x001D) + vec16(det("x25519 c " + label, 32))))
            + tls_ext(45, vec8(b"\x01"))  # psk_dhe_ke
            + tls_ext(43, vec8(u16(0x0304) + u16(0x0303)))
            + tls_ext(27, vec8(u16(2))))  # compress_certificate brotli (RFC 8879)
    body = (u16(0x0303) + det("random c " + label, 32) + vec8(det("sid " + label, 32))
            + vec16(ciphers) + vec8(b"\0") + vec16(exts))
    return tls_record(22, hs(1, body), 0x0301)


def client_hello_tls12(label, sni):
    """A TLS 1.2-only ClientHello (OpenSSL-based VPN client, no supported_versions)."""
    ciphers = bytes.fromhex(
        "c030c02cc028c024c014c00a009f006b0039cca9cca8ccaac02fc02bc027c023c013c009"
        "009e00670033009d003d0035009c003c002f00ff")
    exts = ext_sni(sni) + POINT_FORMATS + GROUPS + TICKET + EMS + SIGALGS
    body = (u16(0x0303) + det("random c " + label, 32) + vec8(b"")
            + vec16(ciphers) + vec8(b"\0") + vec16(exts))
    return tls_record(22, hs(1, body), 0x0301)


def tls12_server_flight(label, cipher, certs, alpn=None):
    """ServerHello, Certificate, ServerKeyExchange (ECDHE x25519, RSA PKCS#1 SHA-256
    signature), ServerHelloDone, in one handshake record (RFC 5246 7.4, RFC 8422 5.4)."""
    exts = RENEG + POINT_FORMATS + EMS + (ext_alpn(alpn) if alpn else b"")
    sh = hs(2, u16(0x0303) + det("random s " + label, 32) + vec8(det("sid s " + label, 32))
            + u16(cipher) + u8(0) + vec16(exts))
    cert = hs(11, vec24(b"".join(vec24(c) for c in certs)))
    ske = hs(12, u8(3) + u16(0x001D) + vec8(det("x25519 s " + label, 32))
             + u16(0x0401) + vec16(det("ske sig " + label, 256)))
    return tls_record(22, sh + cert + ske + hs(14, b""))


def tls12_client_finish(label):
    """ClientKeyExchange, ChangeCipherSpec, Finished (AES-GCM: 8-byte explicit nonce,
    16-byte verify_data message, 16-byte tag = 40 bytes; RFC 5288 3)."""
    return (tls_record(22, hs(16, vec8(det("x25519 c " + label, 32))))
            + tls_record(20, b"\x01") + tls_record(22, det("fin c " + label, 40)))


def tls12_server_finish(label):
    return tls_record(20, b"\x01") + tls_record(22, det("fin s " + label, 40))


def tls_appdata(label, n):
    """Encrypted application_data records carrying n bytes of plaintext (AES-GCM:
    8-byte explicit nonce, 16-byte tag), at most 2^14 plaintext bytes each (RFC 5246
    6.2.1)."""
    out = b""
    for i in range(0, n, 16384):
        k = min(16384, n - i)
        out += tls_record(23, det(f"app {label} {i}", 8 + k + 16))
    return out


def tls13_server_flight(label, cert_len=2000):
    """ServerHello (supported_versions 1.3, key_share x25519), the middlebox
    compatibility ChangeCipherSpec, then the encrypted flight as application_data
    records (RFC 8446 4.1.3, D.4)."""
    sh = hs(2, u16(0x0303) + det("random s " + label, 32) + vec8(det("sid " + label, 32))
            + u16(0x1301) + u8(0)
            + vec16(tls_ext(43, u16(0x0304))
                    + tls_ext(51, u16(0x001D) + vec16(det("x25519 s " + label, 32)))))
    return (tls_record(22, sh) + tls_record(20, b"\x01")
            + tls_record(23, det("ee " + label, 40))
            + tls_record(23, det("cert " + label, cert_len))
            + tls_record(23, det("cv " + label, 281))
            + tls_record(23, det("fin " + label, 69)))


# --------------------------------------------------------------------------------------
# DNS (RFC 1035 4.1), mDNS (RFC 6762), NetBIOS name service (RFC 1002 4.2)
# --------------------------------------------------------------------------------------


def dns_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += vec8(label.encode())
    return out + b"\0"


def dns_query(qid, name, qtype=1, rd=True, edns=False):
    flags = 0x0100 if rd else 0
    msg = u16(qid) + u16(flags) + u16(1) + u16(0) + u16(0) + u16(1 if edns else 0)
    msg += dns_name(name) + u16(qtype) + u16(1)
    if edns:  # OPT pseudo-RR (RFC 6891 6.1.2), UDP payload 1232
        msg += b"\0" + u16(41) + u16(1232) + u32(0) + u16(0)
    return msg


def dns_answer(qid, name, answers, qtype=1, edns=False, aa=False):
    """answers: [(type, ttl, rdata)] all owned by `name` (compressed to offset 12)."""
    flags = 0x8180 | (0x0400 if aa else 0)
    msg = u16(qid) + u16(flags) + u16(1) + u16(len(answers)) + u16(0) + u16(1 if edns else 0)
    msg += dns_name(name) + u16(qtype) + u16(1)
    for rtype, ttl, rdata in answers:
        msg += u16(0xC00C) + u16(rtype) + u16(1) + u32(ttl) + vec16(rdata)
    if edns:
        msg += b"\0" + u16(41) + u16(1232) + u32(0) + u16(0)
    return msg


def nb_encode(name, suffix):
    """RFC 1001 14.1 first-level encoding of a 16-byte NetBIOS name."""
    raw = name.upper().encode().ljust(15, b" ")[:15] + bytes([suffix])
    enc = b"".join(bytes([0x41 + (c >> 4), 0x41 + (c & 0x0F)]) for c in raw)
    return vec8(enc) + b"\0"


def nbns_registration(trn_id, name, suffix, group, addr):
    """NAME REGISTRATION REQUEST, broadcast (RFC 1002 4.2.2): opcode 5, RD, B."""
    flags = (5 << 11) | 0x0100 | 0x0010
    msg = u16(trn_id) + u16(flags) + u16(1) + u16(0) + u16(0) + u16(1)
    msg += nb_encode(name, suffix) + u16(0x0020) + u16(1)
    nb_flags = 0x8000 if group else 0x0000  # G bit; ONT 00 = B node
    msg += u16(0xC00C) + u16(0x0020) + u16(1) + u32(300000) + u16(6) + u16(nb_flags) + ip4(addr)
    return msg


# --------------------------------------------------------------------------------------
# Scenario builders
# --------------------------------------------------------------------------------------

DNS_SERVER = "10.20.10.53"
UPSTREAM = "192.0.2.53"
_dns_ids = {}


def resolve(t, client, name, addrs, ttl=300, upstream=True):
    """A client's A query to the hospital resolver, the resolver's recursive query to
    the upstream resolver (cache miss) and both answers. Returns the time after."""
    qid = det_int(f"dnsid {client} {name} {t}", 0, 0xFFFF)
    sport = eph(f"dns {client} {name} {t}")
    udp(t, client, sport, DNS_SERVER, 53, dns_query(qid, name))
    rr = [(1, ttl, ip4(a)) for a in addrs]
    t2 = t + 350
    if upstream:
        uqid = det_int(f"dnsid up {name} {t}", 0, 0xFFFF)
        up = det_int(f"port up {name} {t}", 49152, 65535)
        udp(t + 180, DNS_SERVER, up, UPSTREAM, 53, dns_query(uqid, name, edns=True))
        udp(t + 18_400, UPSTREAM, 53, DNS_SERVER, up, dns_answer(uqid, name, rr, edns=True))
        t2 = t + 18_700
    udp(t2, DNS_SERVER, 53, client, sport, dns_answer(qid, name, rr, aa=not upstream))
    return t2 + 2_000


def ntp_exchange(t, client, version=3):
    """RFC 5905 7.3: client mode 3 to 10.20.10.1:123 and the server's mode 4 reply, whose
    origin timestamp echoes the request's transmit timestamp."""
    def ts(us):
        secs = T0 + 2208988800 + us // US  # NTP era 0 starts 1900-01-01
        return u32(secs) + u32(((us % US) << 32) // US)
    xmt = ts(t)
    req = (u8((0 << 6) | (version << 3) | 3) + u8(0) + u8(10) + u8(0xE9)  # poll 10, prec -23
           + u32(0) + u32(0) + u32(0) + b"\0" * 8 + b"\0" * 8 + b"\0" * 8 + xmt)
    udp(t, client, 123, "10.20.10.1", 123, req)
    rx, tx = ts(t + 150), ts(t + 170)
    resp = (u8((0 << 6) | (version << 3) | 4) + u8(2) + u8(10) + u8(0xEC)  # stratum 2
            + u32(0x00000C1F) + u32(0x00002A3D) + ip4("192.0.2.123")  # root delay/disp, refid
            + ts(t - 812 * US) + xmt + rx + tx)
    udp(t + 400, "10.20.10.1", 123, client, 123, resp)


def dhcp_exchange(t, client_ip, hostname, broadcast_flag):
    """DISCOVER, OFFER, REQUEST, ACK (RFC 2131 3.1) with the core switch as the VLAN's
    DHCP server; options per RFC 2132."""
    h = HOSTS[client_ip]
    server = ROUTER_IP[h.vlan]
    xid = det_int("xid " + hostname, 0, 2**32 - 1)
    flags = 0x8000 if broadcast_flag else 0

    def bootp(op, ciaddr, yiaddr, siaddr, opts):
        b = (u8(op) + u8(1) + u8(6) + u8(0) + u32(xid) + u16(3 if op == 1 else 0) + u16(flags)
             + ip4(ciaddr) + ip4(yiaddr) + ip4(siaddr) + ip4("0.0.0.0")
             + h.mac + b"\0" * 10 + b"\0" * 64 + b"\0" * 128
             + bytes([99, 130, 83, 99]) + opts + b"\xff")
        return b.ljust(300, b"\0")  # BOOTP minimum (RFC 951 vend field)

    def opt(code, data):
        return u8(code) + vec8(data)

    prl = opt(55, bytes([1, 3, 6, 15, 31, 33, 43, 44, 46, 47, 119, 121, 249, 252]))
    common_c = (opt(61, b"\x01" + h.mac) + opt(12, hostname.encode())
                + opt(60, b"MSFT 5.0") + prl)
    mask, router = "255.255.255.0", ROUTER_IP[h.vlan]
    srv_opts = (opt(54, ip4(server)) + opt(51, u32(691200)) + opt(58, u32(345600))
                + opt(59, u32(604800)) + opt(1, ip4(mask)) + opt(3, ip4(router))
                + opt(6, ip4(DNS_SERVER)) + opt(15, b"hospital.example"))
    disc = bootp(1, "0.0.0.0", "0.0.0.0", "0.0.0.0", opt(53, b"\x01") + common_c)
    offer = bootp(2, "0.0.0.0", client_ip, "0.0.0.0", opt(53, b"\x02") + srv_opts)
    req = bootp(1, "0.0.0.0", "0.0.0.0", "0.0.0.0",
                opt(53, b"\x03") + opt(50, ip4(client_ip)) + opt(54, ip4(server)) + common_c)
    ack = bootp(2, "0.0.0.0", client_ip, "0.0.0.0", opt(53, b"\x05") + srv_opts)
    reply_dst = "255.255.255.255" if broadcast_flag else client_ip
    vlan = h.vlan
    udp(t, "0.0.0.0", 68, "255.255.255.255", 67, disc, vlan=vlan, src_mac=h.mac)
    udp(t + 1_200, server, 67, reply_dst, 68, offer, vlan=vlan)
    udp(t + 4_800, "0.0.0.0", 68, "255.255.255.255", 67, req, vlan=vlan, src_mac=h.mac)
    udp(t + 5_900, server, 67, reply_dst, 68, ack, vlan=vlan)


def mdns_announcement(t):
    """Unsolicited mDNS response announcing a printer's IPP service (RFC 6762 8.3,
    RFC 6763 4-6): sent twice, one second apart."""
    inst = "Canon MF644C"
    hostn = "CANON-MF644C.local"

    def name_bytes(n):
        return dns_name(n)

    txt = b"".join(vec8(s.encode()) for s in [
        "txtvers=1", "qtotal=1", "rp=ipp/print", "ty=Canon MF644C",
        "product=(Canon MF644C)", "pdl=application/pdf,image/urf,image/jpeg",
        "note=2F Office", "Color=T", "Duplex=T", "UUID=6d4ff0ce-6b11-11d8-8020-001e8fd452c8"])
    recs = [
        (name_bytes("_ipp._tcp.local"), 12, 0x0001, 4500, name_bytes(f"{inst}._ipp._tcp.local")),
        (name_bytes(f"{inst}._ipp._tcp.local"), 33, 0x8001, 120,
         u16(0) + u16(0) + u16(631) + name_bytes(hostn)),
        (name_bytes(f"{inst}._ipp._tcp.local"), 16, 0x8001, 4500, txt),
        (name_bytes(hostn), 1, 0x8001, 120, ip4("10.20.30.200")),
        (name_bytes("_services._dns-sd._udp.local"), 12, 0x0001, 4500,
         name_bytes("_ipp._tcp.local")),
    ]
    msg = u16(0) + u16(0x8400) + u16(0) + u16(len(recs)) + u16(0) + u16(0)
    for owner, rtype, rclass, ttl, rdata in recs:
        msg += owner + u16(rtype) + u16(rclass) + u32(ttl) + vec16(rdata)
    for k in range(2):
        udp(t + k * US, "10.20.30.200", 5353, "224.0.0.251", 5353, msg, vlan=30,
            ttl=255)  # RFC 6762 11: IP TTL 255


def netbios_registration(t):
    """OFFICE-PC-045 registers its names by broadcast on boot (RFC 1002 4.2.2, 5.1.1.1:
    three transmissions per name, BCAST_REQ_RETRY_TIMEOUT 250 ms; Windows waits 750 ms)."""
    names = [("OFFICE-PC-045", 0x00, False), ("HOSPITAL", 0x00, True),
             ("OFFICE-PC-045", 0x20, False)]
    tid = det_int("nbns tid", 0x8000, 0x8FFF)
    for i, (n, suffix, group) in enumerate(names):
        for k in range(3):
            msg = nbns_registration(tid + i, n, suffix, group, "10.20.30.45")
            udp(t + i * 2_400_000 + k * 750_000, "10.20.30.45", 137, "10.20.30.255", 137, msg,
                vlan=30)


# --- Kerberos (RFC 4120) -------------------------------------------------------------

REALM = "HOSPITAL.EXAMPLE"


def kstr(s):
    return tlv(0x1B, s.encode())  # KerberosString = GeneralString


def principal(ntype, *parts):
    return seq(ctx(0, integer(ntype)), ctx(1, seq(*[kstr(p) for p in parts])))


def pa_data(ptype, value):
    return seq(ctx(1, integer(ptype)), ctx(2, octets(value)))


def enc_data(etype, cipher, kvno=None):
    items = [ctx(0, integer(etype))]
    if kvno is not None:
        items.append(ctx(1, integer(kvno)))
    items.append(ctx(2, octets(cipher)))
    return seq(*items)


def as_req(label, user, with_timestamp):
    """AS-REQ (RFC 4120 5.4.1) as a Windows client sends it."""
    pas = []
    if with_timestamp:  # PA-ENC-TIMESTAMP (5.2.7.2), AES256-CTS-HMAC-SHA1-96
        pas.append(pa_data(2, enc_data(18, det("enc-ts " + label, 56))))
    pas.append(pa_data(128, seq(ctx(0, boolean(True)))))  # PA-PAC-REQUEST [MS-KILE]
    body = seq(
        ctx(0, bitstring(bytes.fromhex("40810010"))),  # forwardable renewable canonicalize renewable-ok
        ctx(1, principal(1, user)),
        ctx(2, kstr(REALM)),
        ctx(3, principal(2, "krbtgt", REALM)),
        ctx(5, gentime("20370913024805Z")),
        ctx(6, gentime("20370913024805Z")),
        ctx(7, integer(det_int("nonce " + label, 0, 2**31 - 1))),
        ctx(8, seq(*[integer(e) for e in (18, 17, 23, 24, -135)])),
        ctx(9, seq(seq(ctx(0, integer(20)), ctx(1, octets(b"OFFICE-PC-021".ljust(16)))))),
    )
    req = app(10, seq(ctx(1, integer(5)), ctx(2, integer(10)), ctx(3, seq(*pas)), ctx(4, body)))
    return u32(len(req)) + req  # TCP record mark (7.2.2)


def krb_error_preauth(label, user):
    """KRB-ERROR KDC_ERR_PREAUTH_REQUIRED (25) with PA-ETYPE-INFO2 (RFC 4120 5.9.1)."""
    etype_info2 = seq(seq(ctx(0, integer(18)), ctx(1, kstr(REALM + user))),
                      seq(ctx(0, integer(23))))
    edata = seq(pa_data(19, etype_info2), pa_data(2, b""), pa_data(16, b""), pa_data(15, b""))
    err = app(30, seq(
        ctx(0, integer(5)), ctx(1, integer(30)),
        ctx(4, gentime("20261005000512Z")), ctx(5, integer(det_int("susec " + label, 0, 999999))),
        ctx(6, integer(25)), ctx(9, kstr(REALM)), ctx(10, principal(2, "krbtgt", REALM)),
        ctx(12, octets(edata))))
    return u32(len(err)) + err


def as_rep(label, user):
    """AS-REP (RFC 4120 5.4.2) with a ticket (5.3); the encrypted parts are dummy bytes."""
    ticket = app(1, seq(ctx(0, integer(5)), ctx(1, kstr(REALM)),
                        ctx(2, principal(2, "krbtgt", REALM)),
                        ctx(3, enc_data(18, det("tkt " + label, 1100), kvno=2))))
    rep = app(11, seq(
        ctx(0, integer(5)), ctx(1, integer(11)),
        ctx(2, seq(pa_data(19, seq(seq(ctx(0, integer(18)), ctx(1, kstr(REALM + user))))))),
        ctx(3, kstr(REALM)), ctx(4, principal(1, user)),
        ctx(5, ticket), ctx(6, enc_data(18, det("encpart " + label, 310), kvno=7))))
    return u32(len(rep)) + rep


def kerberos_logon(t, client, user):
    label = f"krb {client} {t}"
    c = Tcp(t, client, eph(label + "1"), "10.20.10.20", 88, lan=250).open(SYN_OPTS_WIN, SYN_OPTS_WIN)
    c.send("c", as_req(label, user, False))
    c.send("s", krb_error_preauth(label, user))
    c.close("c", think=1_000)
    c2 = Tcp(c.t + 3_000, client, eph(label + "2"), "10.20.10.20", 88, lan=250).open(
        SYN_OPTS_WIN, SYN_OPTS_WIN)
    c2.send("c", as_req(label + "b", user, True))
    c2.send("s", as_rep(label, user), think=2_000)
    c2.close("c", think=900)
    return c2.t


# --- SMB2 NEGOTIATE ([MS-SMB2] 2.2.1.2, 2.2.3, 2.2.4) --------------------------------


def smb2_header(command, message_id, response, credits):
    flags = 0x00000001 if response else 0
    return (b"\xfeSMB" + le16(64) + le16(0) + le32(0) + le16(command) + le16(credits)
            + le32(flags) + le32(0) + le64(message_id) + le32(0xFEFF) + le32(0)
            + le64(0) + b"\0" * 16)


def neg_contexts(contexts, start):
    """Negotiate contexts (2.2.3.1), each 8-byte aligned from the SMB2 header start."""
    out = b""
    for i, (ctype, data) in enumerate(contexts):
        out += le16(ctype) + le16(len(data)) + le32(0) + data
        if i < len(contexts) - 1:
            out += b"\0" * ((-(start + len(out))) % 8)
    return out


def spnego_neg_token_init():
    """GSS-API InitialContextToken (RFC 2743 3.1) with an SPNEGO NegTokenInit (RFC 4178
    4.2.1) listing MS Kerberos, Kerberos, NEGOEX and NTLMSSP, as Windows servers send in
    the NEGOTIATE response."""
    mechs = seq(oid("1.2.840.48018.1.2.2"), oid("1.2.840.113554.1.2.2"),
                oid("1.3.6.1.4.1.311.2.2.30"), oid("1.3.6.1.4.1.311.2.2.10"))
    hints = ctx(3, seq(ctx(0, tlv(0x1B, b"not_defined_in_RFC4178@please_ignore"))))
    inner = ctx(0, seq(ctx(0, mechs), hints))
    return tlv(0x60, oid("1.3.6.1.5.5.2") + inner)


def smb2_negotiate_request(label):
    dialects = [0x0202, 0x0210, 0x0300, 0x0302, 0x0311]
    fixed_len = 64 + 36 + 2 * len(dialects)
    ctx_off = fixed_len + (-fixed_len % 8)
    contexts = [
        (1, le16(1) + le16(32) + le16(1) + det("salt c " + label, 32)),  # PREAUTH SHA-512
        (2, le16(4) + le16(2) + le16(1) + le16(4) + le16(3)),  # AES-128-GCM/CCM, 256-GCM/CCM
        (5, "10.20.10.20".encode("utf-16-le")),  # NETNAME_NEGOTIATE_CONTEXT_ID
        (8, le16(3) + le16(2) + le16(1) + le16(0)),  # SIGNING: AES-GMAC, AES-CMAC, HMAC-SHA256
    ]
    body = (le16(36) + le16(len(dialects)) + le16(1) + le16(0) + le32(0x7F)
            + det("client guid " + label, 16) + le32(ctx_off) + le16(len(contexts)) + le16(0)
            + b"".join(le16(d) for d in dialects))
    msg = smb2_header(0, 0, False, 31) + body
    msg += b"\0" * (ctx_off - len(msg)) + neg_contexts(contexts, ctx_off)
    return u32(len(msg)) + msg  # Direct TCP transport header (2.1): zero byte + 24-bit length


def smb2_negotiate_response(label):
    sec = spnego_neg_token_init()
    sec_off = 64 + 64
    end = sec_off + len(sec)
    ctx_off = end + (-end % 8)
    contexts = [(1, le16(1) + le16(32) + le16(1) + det("salt s " + label, 32)),
                (2, le16(1) + le16(2)),  # AES-128-GCM
                (8, le16(1) + le16(2))]  # AES-GMAC
    filetime = (T0 + 11644473600) * 10_000_000 + 5 * 60 * 10_000_000
    body = (le16(65) + le16(1) + le16(0x0311) + le16(len(contexts))
            + det("server guid", 16) + le32(0x2F) + le32(8388608) + le32(8388608)
            + le32(8388608) + le64(filetime) + le64(0) + le16(sec_off) + le16(len(sec))
            + le32(ctx_off))
    msg = smb2_header(0, 0, True, 1) + body + sec
    msg += b"\0" * (ctx_off - len(msg)) + neg_contexts(contexts, ctx_off)
    return u32(len(msg)) + msg


def smb_negotiate(t, client):
    label = f"smb {client} {t}"
    c = Tcp(t, client, eph(label), "10.20.10.20", 445, lan=220).open(SYN_OPTS_WIN, SYN_OPTS_WIN)
    c.send("c", smb2_negotiate_request(label))
    c.send("s", smb2_negotiate_response(label))
    c.close("c", think=15_000)
    return c.t


# --- DICOM upper layer (PS3.8 9.3) ---------------------------------------------------

DICOM_APP_CTX = "1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE, IMPLICIT_LE = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"
IMPL_UID = "2.25." + str(int.from_bytes(det("implementation uid", 16), "big") >> 6)


def dicom_item(itype, data):
    return u8(itype) + u8(0) + u16(len(data)) + data


def dicom_uid(uid):
    return uid.encode()


def dicom_user_info(version_name):
    return dicom_item(0x50, dicom_item(0x51, u32(16384))
                      + dicom_item(0x52, dicom_uid(IMPL_UID))
                      + dicom_item(0x55, version_name.encode()))


def dicom_assoc(pdu_type, called, calling, items):
    body = (u16(1) + u16(0) + called.ljust(16).encode() + calling.ljust(16).encode()
            + b"\0" * 32 + items)
    return u8(pdu_type) + u8(0) + u32(len(body)) + body


def dicom_echo(t):
    """CT-WS-01 verifies its PACS link: A-ASSOCIATE-RQ/AC (PS3.8 9.3.2, 9.3.3), C-ECHO
    (PS3.7 9.3.5) in P-DATA-TF (9.3.5), A-RELEASE-RQ/RP (9.3.6, 9.3.7)."""
    rq_items = (dicom_item(0x10, dicom_uid(DICOM_APP_CTX))
                + dicom_item(0x20, u8(1) + b"\0\0\0" + dicom_item(0x30, dicom_uid(VERIFICATION))
                             + dicom_item(0x40, dicom_uid(IMPLICIT_LE)))
                + dicom_item(0x20, u8(3) + b"\0\0\0" + dicom_item(0x30, dicom_uid(CT_STORAGE))
                             + dicom_item(0x40, dicom_uid(EXPLICIT_LE))
                             + dicom_item(0x40, dicom_uid(IMPLICIT_LE)))
                + dicom_user_info("CTWS_V3.2"))
    ac_items = (dicom_item(0x10, dicom_uid(DICOM_APP_CTX))
                + dicom_item(0x21, u8(1) + b"\0" + u8(0) + b"\0"
                             + dicom_item(0x40, dicom_uid(IMPLICIT_LE)))
                + dicom_item(0x21, u8(3) + b"\0" + u8(0) + b"\0"
                             + dicom_item(0x40, dicom_uid(EXPLICIT_LE)))
                + dicom_user_info("PACS01_V5"))
    rq = dicom_assoc(0x01, "PACS01", "CT_WS_01", rq_items)
    ac = dicom_assoc(0x02, "PACS01", "CT_WS_01", ac_items)

    def elem(group, el, value):  # Implicit VR Little Endian data element (PS3.5 7.1.3)
        return struct.pack("<HHI", group, el, len(value)) + value

    def command(elems):
        body = b"".join(elems)
        return elem(0, 0x0000, le32(len(body))) + body

    sop = VERIFICATION.encode() + b"\0"  # UI padded to even length with NUL
    echo_rq = command([elem(0, 0x0002, sop), elem(0, 0x0100, le16(0x0030)),
                       elem(0, 0x0110, le16(1)), elem(0, 0x0800, le16(0x0101))])
    echo_rsp = command([elem(0, 0x0002, sop), elem(0, 0x0100, le16(0x8030)),
                        elem(0, 0x0120, le16(1)), elem(0, 0x0800, le16(0x0101)),
                        elem(0, 0x0900, le16(0))])

    def pdata(cmd):  # PDV: length, context id, control header 0x03 (command, last)
        pdv = u32(len(cmd) + 2) + u8(1) + u8(0x03) + cmd
        return u8(0x04) + u8(0) + u32(len(pdv)) + pdv

    label = f"dicom {t}"
    c = Tcp(t, "10.20.20.15", eph(label), "10.20.10.50", 104, lan=400).open(
        SYN_OPTS_WIN, SYN_OPTS_LINUX)
    c.send("c", rq)
    c.send("s", ac)
    c.send("c", pdata(echo_rq))
    c.send("s", pdata(echo_rsp))
    c.send("c", u8(0x05) + u8(0) + u32(4) + u32(0))
    c.send("s", u8(0x06) + u8(0) + u32(4) + u32(0))
    c.close("s")
    return c.t


# --- HL7 v2 over MLLP (HL7 v2.5.1 Appendix C.4) --------------------------------------


def hl7_adt(t):
    """EHR01 sends an ADT^A01 (admit) to the interface engine; it answers with an ACK."""
    adt = "\r".join([
        "MSH|^~\\&|EHR|EXAMPLEHOSP|HL7GW|EXAMPLEHOSP|20261005091200||ADT^A01^ADT_A01|"
        "MSG000120|P|2.5.1|||AL|NE||UNICODE UTF-8",
        "EVN|A01|20261005091200",
        "PID|1||0012345^^^EXAMPLEHOSP^MR||YAMADA^TARO^^^^^L||19580312|M|||"
        "1-2-3 Example-cho^^Chiyoda-ku^Tokyo^100-0001^JPN||03-0000-0000",
        "PV1|1|I|W3^301^1^EXAMPLEHOSP||||1234^SATO^HANAKO|||MED||||||||V20261005001|||||||||"
        "||||||||||||||20261005091000",
    ]) + "\r"
    ack = "\r".join([
        "MSH|^~\\&|HL7GW|EXAMPLEHOSP|EHR|EXAMPLEHOSP|20261005091201||ACK^A01^ACK|"
        "ACK000120|P|2.5.1",
        "MSA|AA|MSG000120",
    ]) + "\r"
    label = f"hl7 {t}"
    c = Tcp(t, "10.20.10.30", eph(label), "10.20.10.60", 2575, lan=300).open(
        SYN_OPTS_WIN, SYN_OPTS_LINUX)
    c.send("c", b"\x0b" + adt.encode() + b"\x1c\x0d")
    c.send("s", b"\x0b" + ack.encode() + b"\x1c\x0d", think=4_000)
    c.close("c", think=200_000)


# --- HTTPS ---------------------------------------------------------------------------

HOSPITAL_CA = [("C", "JP"), ("O", "Example Hospital"), ("CN", "Example Hospital Private CA")]


def ehr_certs():
    ca = x509_cert("hospital ca", 0x1A2B3C01, HOSPITAL_CA, HOSPITAL_CA,
                   "20240401000000Z", "20340331235959Z",
                   [ext("2.5.29.19", seq(boolean(True)), critical=True),
                    ext("2.5.29.15", bitstring(b"\x06", 1), critical=True),
                    ski("hospital ca")])
    leaf = x509_cert("ehr leaf", 0x1A2B3C2F, HOSPITAL_CA,
                     [("C", "JP"), ("O", "Example Hospital"), ("CN", "ehr.hospital.example")],
                     "20260401000000Z", "20270430235959Z",
                     [ext("2.5.29.19", seq()),
                      ext("2.5.29.15", bitstring(b"\xa0", 5), critical=True),
                      ext("2.5.29.37", seq(oid("1.3.6.1.5.5.7.3.1"))),
                      ext("2.5.29.17", seq(tlv(0x82, b"ehr.hospital.example"))),
                      ski("ehr leaf"), aki("hospital ca")])
    return [leaf, ca]


def https_ehr(t, client, requests):
    """A browser on `client` opens the EHR (TLS 1.2, ECDHE-RSA-AES128-GCM-SHA256)."""
    label = f"ehr {client} {t}"
    c = Tcp(t, client, eph(label), "10.20.10.30", 443, lan=350).open(SYN_OPTS_WIN, SYN_OPTS_WIN)
    c.send("c", client_hello_browser(label, "ehr.hospital.example"))
    c.send("s", tls12_server_flight(label, 0xC02F, ehr_certs(), alpn="http/1.1"))
    c.send("c", tls12_client_finish(label))
    c.send("s", tls12_server_finish(label))
    for i, (req, resp, think) in enumerate(requests):
        c.send("c", tls_appdata(f"{label} req{i}", req), think=think)
        c.send("s", tls_appdata(f"{label} resp{i}", resp), think=8_000)
    c.send("c", tls_record(21, det("alert " + label, 26)), think=2_000_000)
    c.close("c")
    return c.t


def https_external(t, client, name, ip):
    """TLS 1.3 to an outside web site (the certificate is encrypted)."""
    label = f"web {client} {t}"
    c = Tcp(t, client, eph(label), ip, 443, rtt=11_000).open(SYN_OPTS_WIN, SYN_OPTS_LINUX)
    c.send("c", client_hello_browser(label, name))
    c.send("s", tls13_server_flight(label))
    c.send("c", tls_record(20, b"\x01") + tls_record(23, det("cfin " + label, 53))
           + tls_appdata(label + " get", 420))
    c.send("s", tls_appdata(label + " r1", 1200) + tls_appdata(label + " r2", 2100))
    c.send("c", tls_appdata(label + " get2", 380), think=600_000)
    c.send("s", tls_appdata(label + " r3", 2400))
    c.send("c", tls_record(23, det("alert " + label, 19)), think=5_000_000)
    c.close("c")
    return c.t


# --------------------------------------------------------------------------------------
# Connection point 1: RDP ([MS-RDPBCGR] 2.2.1.1 - 2.2.1.4, T.125, T.124)
# --------------------------------------------------------------------------------------


def tpkt(payload):
    return u8(3) + u8(0) + u16(4 + len(payload)) + payload  # RFC 1006 6


def x224_cr(cookie):
    """X.224 Connection Request (X.224 13.3) with the routing cookie and an RDP_NEG_REQ
    offering only PROTOCOL_RDP (requestedProtocols = 0) ([MS-RDPBCGR] 2.2.1.1)."""
    var = f"Cookie: mstshash={cookie}\r\n".encode() + u8(0x01) + u8(0) + le16(8) + le32(0)
    li = 6 + len(var)
    return tpkt(u8(li) + u8(0xE0) + u16(0) + u16(0) + u8(0) + var)


def x224_cc(label):
    """X.224 Connection Confirm with RDP_NEG_RSP selecting PROTOCOL_RDP (2.2.1.2.1);
    flags EXTENDED_CLIENT_DATA_SUPPORTED."""
    var = u8(0x02) + u8(0x01) + le16(8) + le32(0)
    return tpkt(u8(6 + len(var)) + u8(0xD0) + u16(0) + u16(det_int("srcref " + label, 1, 0xFFFF))
                + u8(0) + var)


def x224_dt(payload):
    return tpkt(b"\x02\xf0\x80" + payload)  # X.224 Data TPDU, EOT


def ber_len(n):
    return der_len(n) if n < 0x80 else (b"\x82" + u16(n))


def per_len(n):
    return u8(n) if n < 0x80 else u16(0x8000 | n)


def ber_int(v):
    return integer(v)


def domain_params(*vals):
    return seq(*[ber_int(v) for v in vals])


def utf16_fixed(s, n):
    return s.encode("utf-16-le").ljust(n, b"\0")[:n]


def mcs_connect_initial(client_name):
    """MCS Connect-Initial (T.125 BER) carrying the GCC Conference Create Request (T.124
    PER) and the client data blocks ([MS-RDPBCGR] 2.2.1.3, layout as in 4.1.3)."""
    core = (le32(0x00080004) + le16(1280) + le16(1024) + le16(0xCA01) + le16(0xAA03)
            + le32(0x00000411)  # keyboardLayout: Japanese
            + le32(2600) + utf16_fixed(client_name, 32)
            + le32(7) + le32(2) + le32(12)  # keyboard type 7 (Japanese), subtype, F-keys
            + b"\0" * 64 + le16(0xCA01) + le16(1) + le32(0) + le16(24) + le16(0x000F)
            + le16(0x0001) + b"\0" * 64 + u8(0) + u8(0) + le32(0))  # serverSelectedProtocol 0
    blocks = le16(0xC001) + le16(4 + len(core)) + core
    blocks += le16(0xC002) + le16(12) + le32(0x0000001B) + le32(0)  # CS_SECURITY
    channels = [(b"rdpdr", 0x80800000), (b"rdpsnd", 0xC0000000), (b"cliprdr", 0xC0A00000)]
    net = le32(len(channels)) + b"".join(n.ljust(8, b"\0") + le32(o) for n, o in channels)
    blocks += le16(0xC003) + le16(4 + len(net)) + net
    blocks += le16(0xC004) + le16(12) + le32(0x0000000D) + le32(0)  # CS_CLUSTER
    ccr = b"\x00\x08\x00\x10\x00\x01\xc0\x00Duca" + per_len(len(blocks)) + blocks
    gcc = b"\x00\x05\x00\x14\x7c\x00\x01" + per_len(len(ccr)) + ccr
    body = (tlv(0x04, b"\x01") + tlv(0x04, b"\x01") + tlv(0x01, b"\xff")
            + domain_params(34, 2, 0, 1, 0, 1, 65535, 2)
            + domain_params(1, 1, 1, 1, 0, 1, 1056, 2)
            + domain_params(65535, 64535, 65535, 1, 0, 1, 65535, 2)
            + b"\x04" + ber_len(len(gcc)) + gcc)
    return x224_dt(b"\x7f\x65" + ber_len(len(body)) + body)


def mcs_connect_response(label):
    """MCS Connect-Response with the GCC Conference Create Response and the server data
    blocks: SC_CORE, SC_SECURITY with a proprietary server certificate (2.2.1.4.3.1.1),
    SC_NET ([MS-RDPBCGR] 2.2.1.4, layout as in 4.1.4)."""
    core = le32(0x00080004) + le32(0)  # clientRequestedProtocols: PROTOCOL_RDP
    blocks = le16(0x0C01) + le16(4 + len(core)) + core
    modulus = bytearray(det("rdp rsa " + label, 64))
    modulus[-1] |= 0x80
    pubkey = b"RSA1" + le32(72) + le32(512) + le32(63) + le32(65537) + bytes(modulus) + b"\0" * 8
    cert = (le32(1) + le32(1) + le32(1) + le16(6) + le16(len(pubkey)) + pubkey
            + le16(8) + le16(72) + det("rdp certsig " + label, 64) + b"\0" * 8)
    sec = (le32(0x00000002) + le32(2) + le32(32) + le32(len(cert))  # 128-bit, client compatible
           + det("server random " + label, 32) + cert)
    blocks += le16(0x0C02) + le16(4 + len(sec)) + sec
    chans = [1004, 1005, 1006]
    net = le16(1003) + le16(len(chans)) + b"".join(le16(c) for c in chans)
    if len(chans) % 2:
        net += b"\0\0"
    blocks += le16(0x0C03) + le16(4 + len(net)) + net
    # connectPDU length byte 0x2a as Windows servers send it ([MS-RDPBCGR] 4.1.4 notes
    # the client ignores it).
    gcc = (b"\x00\x05\x00\x14\x7c\x00\x01\x2a\x14\x76\x0a\x01\x01\x00\x01\xc0\x00McDn"
           + per_len(len(blocks)) + blocks)
    body = (b"\x0a\x01\x00" + ber_int(0)
            + seq(*[ber_int(v) for v in (34, 3, 0, 1, 0, 1, 0xFFF8, 2)])
            + b"\x04" + ber_len(len(gcc)) + gcc)
    return x224_dt(b"\x7f\x66" + ber_len(len(body)) + body)


def mcs_send_data(request, initiator, channel, data):
    """MCS Send Data Request (T.125 PER, choice 25) / Indication (26)."""
    hdr = (b"\x64" if request else b"\x68") + u16(initiator - 1001) + u16(channel) + b"\x70"
    return x224_dt(hdr + per_len(len(data)) + data)


def rdp_session(t, src, cookie, client_name, full, close):
    label = f"rdp {src} {t}"
    rtt = det_int("rtt " + label, 25_000, 180_000)
    # The full logons come from Windows clients, the probes from Linux scanners.
    c = Tcp(t, src, eph(label, windows=full), "10.20.20.15", 3389, rtt=rtt, label=label)
    c.open(SYN_OPTS_WIN if full else SYN_OPTS_LINUX, SYN_OPTS_WIN)
    c.send("c", x224_cr(cookie))
    c.send("s", x224_cc(label))
    if not full:
        if close == "rst":
            c.reset("c", think=5_000)
        else:
            c.close("c", think=3_000)
        return
    user, io_ch = 1007, 1003
    c.send("c", mcs_connect_initial(client_name))
    c.send("s", mcs_connect_response(label))
    c.send("c", x224_dt(b"\x04\x01\x00\x01\x00") + x224_dt(b"\x28"))  # Erect Domain, Attach User
    c.send("s", x224_dt(b"\x2e\x00" + u16(user - 1001)))  # Attach User Confirm
    for ch in (user, io_ch, 1004, 1005, 1006):  # Channel Join Request / Confirm
        c.send("c", x224_dt(b"\x38" + u16(user - 1001) + u16(ch)))
        c.send("s", x224_dt(b"\x3e\x00" + u16(user - 1001) + u16(ch) + u16(ch)))
    # Security Exchange PDU (2.2.1.10): the client random encrypted with the server key.
    c.send("c", mcs_send_data(True, user, io_ch,
                              le16(0x0001) + le16(0) + le32(72) + det("crandom " + label, 64)
                              + b"\0" * 8))
    # Client Info PDU (2.2.1.11), encrypted: SEC_INFO_PKT | SEC_ENCRYPT, 8-byte MAC.
    c.send("c", mcs_send_data(True, user, io_ch, le16(0x0048) + le16(0)
                              + det("info " + label, 8 + 330)))
    # Server License Error PDU - Valid Client (2.2.1.12, bytes as in the example 4.1.12:
    # basic security header, then the preamble; Wireshark 4.0 expects a MAC here and
    # mislabels it "Platform Challenge").
    lic = (u8(0xFF) + u8(0x03) + le16(16) + le32(0x00000007) + le32(0x00000002)
           + le16(0x0004) + le16(0))
    c.send("s", mcs_send_data(False, 1002, io_ch, le16(0x0080) + le16(0) + lic))
    # Demand Active (server) and Confirm Active (client), encrypted (2.2.1.13).
    c.send("s", mcs_send_data(False, 1002, io_ch, le16(0x0008) + le16(0)
                              + det("demand " + label, 8 + 380)))
    c.send("c", mcs_send_data(True, user, io_ch, le16(0x0008) + le16(0)
                              + det("confirm " + label, 8 + 420)))
    for i in range(3):  # Synchronize, Control (cooperate, request control), Font List
        c.send("c", mcs_send_data(True, user, io_ch, le16(0x0008) + le16(0)
                                  + det(f"fin{i} " + label, 8 + 26)))
    # The session: graphics updates from the server and input from the client as
    # slow-path Data PDUs (2.2.9.1.1.3, 2.2.8.1.1.3), encrypted (SEC_ENCRYPT, 8-byte MAC).
    # Fast-path (2.2.9.1.2) is not used: the client's Confirm Active did not offer it.
    for i in range(5):
        n = det_int(f"upd {i} {label}", 400, 1800)
        c.send("s", mcs_send_data(False, 1002, io_ch, le16(0x0008) + le16(0)
                                  + det(f"upd {i} {label}", 8 + n)), think=40_000)
        m = det_int(f"inp {i} {label}", 26, 60)
        c.send("c", mcs_send_data(True, user, io_ch, le16(0x0008) + le16(0)
                                  + det(f"inp {i} {label}", 8 + m)),
               think=gap(f"think {i} {label}", 4, 5))
    c.close("c", think=2_000_000)


# --------------------------------------------------------------------------------------
# Connection point 2: IPsec (RFC 2408, RFC 2409, RFC 3947, RFC 3948, RFC 4303)
# --------------------------------------------------------------------------------------

VID_RFC3947 = bytes.fromhex("4a131c81070358455c5728f20e95452f")  # MD5("RFC 3947")
VID_NATT_02N = bytes.fromhex("90cb80913ebb696e086381b5ec427b1f")  # draft-ietf-ipsec-nat-t-ike-02\n
VID_DPD = bytes.fromhex("afcad71368a1f1c96b8696fc77570100")  # RFC 3706
# Wireshark packet-isakmp.c VID_FORTINET_FORTIGATE: 12-byte prefix, then a 2-byte
# release and a 2-byte build; the suffix below is the one FortiOS' own debug output
# shows ("VID FORTIGATE 8299031757A36082C6A621DE00000000").
VID_FORTIGATE = bytes.fromhex("8299031757a36082c6a621de") + b"\0\0" + b"\0\0"

IKE_I, IKE_R = "10.20.10.1", "192.0.2.10"
ICOOKIE = det("ike icookie", 8)
RCOOKIE = det("ike rcookie", 8)


def ike_payload(next_payload, body):
    return u8(next_payload) + u8(0) + u16(4 + len(body)) + body


def ike_chain(payloads):
    """[(type, body)] -> (first type, bytes) with next-payload fields chained."""
    out = b""
    for i, (_, body) in enumerate(payloads):
        nxt = payloads[i + 1][0] if i + 1 < len(payloads) else 0
        out += ike_payload(nxt, body)
    return payloads[0][0], out


def ike_msg(exchange, flags, msgid, first, body, rcookie=RCOOKIE):
    return (ICOOKIE + rcookie + u8(first) + u8(0x10) + u8(exchange) + u8(flags) + u32(msgid)
            + u32(28 + len(body)) + body)


def isakmp_transform(num, attrs, last):
    """Transform payload (RFC 2408 3.6) with SA attributes (3.3, RFC 2409 Appendix A)."""
    a = b""
    for typ, val in attrs:
        if typ == 12:  # Life Duration: variable length (TLV)
            a += u16(12) + u16(4) + u32(val)
        else:
            a += u16(0x8000 | typ) + u16(val)
    body = u8(num) + u8(1) + u16(0) + a  # transform id KEY_IKE
    return u8(0 if last else 3) + u8(0) + u16(4 + len(body)) + body


def isakmp_sa(transforms):
    ts = b"".join(isakmp_transform(i + 1, a, i == len(transforms) - 1)
                  for i, a in enumerate(transforms))
    prop = u8(1) + u8(1) + u8(0) + u8(len(transforms)) + ts  # PROTO_ISAKMP, SPI size 0
    return u32(1) + u32(1) + u8(0) + u8(0) + u16(4 + len(prop)) + prop  # DOI IPsec, SIT_IDENTITY_ONLY


# AES-CBC-256 / SHA2-256 / PSK / MODP-2048, and AES-CBC-128 / SHA1 / PSK / MODP-2048.
T_AES256 = [(1, 7), (14, 256), (2, 4), (3, 1), (4, 14), (11, 1), (12, 86400)]
T_AES128 = [(1, 7), (14, 128), (2, 2), (3, 1), (4, 14), (11, 1), (12, 86400)]


def ipsec_sessions():
    """Main Mode 1-4 on UDP 500 (RFC 2409 5), NAT detected (RFC 3947 3.2), so Main Mode
    5-6 and Quick Mode float to UDP 4500 behind the non-ESP marker (RFC 3948 2.2); ESP
    in UDP carries the vendor's monitoring traffic; NAT keepalives (RFC 3948 2.3) and
    DPD R-U-THERE (RFC 3706) keep it up; Quick Mode rekeys every 8 hours."""
    t = jst(0, 9, 30, 2.0)
    rtt = 23_000
    _, p1 = ike_chain([(1, isakmp_sa([T_AES256, T_AES128])), (13, VID_RFC3947),
                       (13, VID_NATT_02N), (13, VID_DPD)])
    udp(t, IKE_I, 500, IKE_R, 500, ike_msg(2, 0, 0, 1, p1, rcookie=b"\0" * 8))
    _, p2 = ike_chain([(1, isakmp_sa([T_AES256])), (13, VID_FORTIGATE), (13, VID_RFC3947),
                       (13, VID_DPD)])
    udp(t + rtt, IKE_R, 500, IKE_I, 500, ike_msg(2, 0, 0, 1, p2))

    def natd(label):  # NAT-D hash (RFC 3947 3.2), SHA2-256 as negotiated
        return det("natd " + label, 32)

    _, p3 = ike_chain([(4, det("ke i", 256)), (10, det("ni", 32)), (20, natd("i r")),
                       (20, natd("i i"))])
    udp(t + rtt + 2_000, IKE_I, 500, IKE_R, 500, ike_msg(2, 0, 0, 4, p3))
    _, p4 = ike_chain([(4, det("ke r", 256)), (10, det("nr", 32)), (20, natd("r i")),
                       (20, natd("r r"))])
    udp(t + 2 * rtt + 9_000, IKE_R, 500, IKE_I, 500, ike_msg(2, 0, 0, 4, p4))

    marker = b"\0\0\0\0"
    t4500 = t + 2 * rtt + 16_000
    # Main Mode 5/6 (ID, HASH) encrypted, first payload ID (5).
    udp(t4500, IKE_I, 4500, IKE_R, 4500, marker + ike_msg(2, 1, 0, 5, det("mm5", 64)))
    udp(t4500 + rtt, IKE_R, 4500, IKE_I, 4500, marker + ike_msg(2, 1, 0, 5, det("mm6", 64)))

    spis = {}

    def quick_mode(tq, n):
        msgid = det_int(f"qm msgid {n}", 1, 2**32 - 1)
        udp(tq, IKE_I, 4500, IKE_R, 4500, marker + ike_msg(32, 1, msgid, 8, det(f"qm1 {n}", 432)))
        udp(tq + rtt, IKE_R, 4500, IKE_I, 4500,
            marker + ike_msg(32, 1, msgid, 8, det(f"qm2 {n}", 432)))
        udp(tq + rtt + 1_500, IKE_I, 4500, IKE_R, 4500,
            marker + ike_msg(32, 1, msgid, 8, det(f"qm3 {n}", 48)))
        spis["out"] = det_int(f"spi out {n}", 0x01000000, 0xFFFFFFFF)
        spis["in"] = det_int(f"spi in {n}", 0x01000000, 0xFFFFFFFF)
        spis["seq_out"] = 0
        spis["seq_in"] = 0
        return tq + rtt + 3_000

    def esp(te, direction, plain_len):
        """ESP (RFC 4303 2): SPI, sequence number, 16-byte IV, AES-CBC ciphertext padded
        to the block, 16-byte ICV (HMAC-SHA2-256-128)."""
        key = "seq_" + direction
        spis[key] += 1
        n = plain_len + 2
        n += -n % 16
        body = (u32(spis[direction]) + u32(spis[key]) + det(f"esp iv {direction} {te}", 16)
                + det(f"esp ct {direction} {te}", n) + det(f"esp icv {direction} {te}", 16))
        if direction == "out":
            udp(te, IKE_I, 4500, IKE_R, 4500, body)
        else:
            udp(te, IKE_R, 4500, IKE_I, 4500, body)

    def traffic(ts, exchanges):
        """The vendor's monitoring server polls a host inside: request in, reply out.
        The router behind NAT has sent a NAT-keepalive every 20 s of silence (RFC 3948
        2.3); the last one before the burst is kept."""
        udp(ts - det_int(f"ka {ts}", 1 * US, 19 * US), IKE_I, 4500, IKE_R, 4500, b"\xff")
        tt = ts
        for i in range(exchanges):
            esp(tt, "in", det_int(f"req {ts} {i}", 60, 200))
            esp(tt + 1_800, "out", det_int(f"rep {ts} {i}", 60, 560))
            tt += det_int(f"gap {ts} {i}", 200_000, 2_500_000)
        return tt

    tq = quick_mode(t4500 + rtt + 5_000, 0)
    udp(tq + 20 * US, IKE_I, 4500, IKE_R, 4500, b"\xff")
    traffic(tq + 25 * US, 5)
    for day, hh, mm in [(0, 10, 20), (0, 11, 0), (0, 12, 40), (0, 15, 10)]:
        traffic(jst(day, hh, mm, 3.0), 3)
    # DPD R-U-THERE / ACK (RFC 3706): Informational exchange, encrypted, first HASH.
    for k, (day, hh, mm) in enumerate([(0, 13, 5), (0, 21, 47)]):
        td = jst(day, hh, mm, 11.0)
        mid = det_int(f"dpd {k}", 1, 2**32 - 1)
        udp(td, IKE_I, 4500, IKE_R, 4500, marker + ike_msg(5, 1, mid, 8, det(f"dpd {k}", 80)))
        mid2 = det_int(f"dpd ack {k}", 1, 2**32 - 1)
        udp(td + rtt, IKE_R, 4500, IKE_I, 4500,
            marker + ike_msg(5, 1, mid2, 8, det(f"dpd ack {k}", 80)))
    # Quick Mode rekeys (phase 2 lifetime 28800 s) and the traffic after them.
    for n, (day, hh, mm) in enumerate([(0, 17, 30), (1, 1, 30)], start=1):
        tq = quick_mode(jst(day, hh, mm, 0.5), n)
        traffic(tq + 400_000, 3)
    traffic(jst(1, 6, 15, 0.0), 3)
    traffic(jst(1, 9, 5, 0.0), 4)
    traffic(jst(1, 10, 58, 0.0), 3)


# --------------------------------------------------------------------------------------
# Connection point 3: FortiGate SSL-VPN (TLS 1.2)
# --------------------------------------------------------------------------------------


def fortigate_certs():
    subca_issuer = [("C", "US"), ("ST", "California"), ("L", "Sunnyvale"), ("O", "Fortinet"),
                    ("OU", "Certificate Authority"), ("CN", "fortinet-ca2"),
                    ("emailAddress", "support@fortinet.com")]
    subca_subject = [("C", "US"), ("ST", "California"), ("L", "Sunnyvale"), ("O", "Fortinet"),
                     ("OU", "Certificate Authority"), ("CN", "fortinet-subca2001")]
    subca = x509_cert("fortinet subca2001", 0x2001, subca_issuer, subca_subject,
                      "20200101000000Z", "20560119031407Z",
                      [ext("2.5.29.19", seq(boolean(True), integer(0)), critical=True),
                       ext("2.5.29.15", bitstring(b"\x06", 1), critical=True),
                       ski("fortinet subca2001"), aki("fortinet ca2")])
    leaf = x509_cert("fgt60f", 0x4C6D3A, subca_subject,
                     [("C", "JP"), ("O", "Fortinet"), ("OU", "FortiGate"),
                      ("CN", "FGT60FTK2109XXXX")],
                     "20210914020311Z", "20560119031407Z",
                     [ski("fgt60f"), aki("fortinet subca2001")])
    return [leaf, subca]


def sslvpn_session(t, minutes):
    """FortiClient (TLS 1.2 only) to the FortiGate's SSL-VPN portal on 10443, then the
    tunnel (HTTP /remote/sslvpn-tunnel inside TLS) for `minutes` minutes."""
    label = f"sslvpn {t}"
    c = Tcp(t, "198.51.100.140", eph(label), "10.20.10.2", 10443, rtt=34_000, label=label)
    c.open(SYN_OPTS_WIN, SYN_OPTS_LINUX)
    c.send("c", client_hello_tls12(label, "vpn.hospital.example"))
    c.send("s", tls12_server_flight(label, 0xC030, fortigate_certs()))
    c.send("c", tls12_client_finish(label))
    c.send("s", tls12_server_finish(label))
    # Portal requests (login, /remote/fortisslvpn_xml) and the tunnel upgrade.
    for i, (q, r) in enumerate([(610, 900), (730, 380), (520, 1200), (440, 120)]):
        c.send("c", tls_appdata(f"{label} q{i}", q), think=150_000)
        c.send("s", tls_appdata(f"{label} r{i}", r), think=20_000)
    # Tunnel traffic (PPP frames inside TLS), sparse: a remote desktop to the EHR.
    steps = max(4, minutes // 4)
    for i in range(steps):
        c.send("c", tls_appdata(f"{label} up{i}", det_int(f"up {label} {i}", 80, 500)),
               think=gap(f"gap {label} {i}", minutes, steps))
        c.send("s", tls_appdata(f"{label} dn{i}", det_int(f"dn {label} {i}", 200, 1800)))
    c.send("c", tls_record(21, det("alert " + label, 26)), think=1_000_000)
    c.close("c")


# --------------------------------------------------------------------------------------
# Connection point 4: TeamViewer (TCP 5938)
# --------------------------------------------------------------------------------------


def tv_cmd(command, body):
    """Command frame: 17 24, command, u16 LE body length, body (nDPI teamviewer.c; the
    framing as in the corpus capture ndpi-teamviewer.pcap)."""
    return b"\x17\x24" + u8(command) + le16(len(body)) + body


def tv_data(command, seq_, ack, body, flags=0):
    """Data frame: 11 30, command, flags, u32 LE body length, sequence, acknowledged
    sequence, 1b 00 00 00, 18 00 00 00 (24-byte header), body (same sources)."""
    return (b"\x11\x30" + u8(command) + u8(flags) + le32(len(body)) + le32(seq_) + le32(ack)
            + le32(0x1B) + le32(0x18) + body)


def teamviewer_session(t, relay, name, minutes):
    label = f"tv {relay} {t}"
    t = resolve(t, "10.20.40.31", name, [relay], ttl=300)
    c = Tcp(t + 5_000, "10.20.40.31", eph(label), relay, 5938, rtt=36_000, label=label)
    c.open(SYN_OPTS_WIN, SYN_OPTS_LINUX)
    client_id = det("tv client id", 4)
    c.send("c", tv_cmd(0x0A, b"\0" * 9 + b"\x48\x00\x80\x00\x01\x00\x00\x00\x14\x80\x00\x00"
                       + client_id + det("tv hello " + label, 7)))
    c.send("c", tv_cmd(0x28, b"\0\x80\0\0\x7f\xff\xff\xff\x80\x80" + b"\0" * 14)
           + tv_cmd(0x3C, b"\x8c\0\0\x80\x14\x80\0\0\x07\x80\0\0\0\x80\0\0\x04\0\0\0\x07\x80"
                    b"\0\0\x01\x80\xff\0\x80\0\0\x05"), think=20_000)
    c.send("s", tv_data(0x36, 1, 0, b"\x8c\x00" + det("tv srv hello " + label, 22)))
    sseq, cseq = 2, 1
    c.send("s", tv_data(0x3C, sseq, cseq, det("tv srv cfg " + label, 123)))
    steps = max(5, minutes // 2)
    for i in range(steps):
        cseq += 1
        c.send("c", tv_data(0x3C, cseq, sseq, det(f"tv c {i} {label}",
                                                   det_int(f"tvc {i} {label}", 30, 700))),
               think=gap(f"tv gap {i} {label}", minutes, steps))
        sseq += 1
        c.send("s", tv_data(0x3C, sseq, cseq, det(f"tv s {i} {label}",
                                                   det_int(f"tvs {i} {label}", 30, 1000))))
    cseq += 1
    c.send("c", tv_data(0x2E, cseq, sseq, det("tv bye " + label, 76)), think=1_500_000)
    c.close("c", think=80_000)


# --------------------------------------------------------------------------------------
# Connection point 5: vendor SSH (RFC 4253)
# --------------------------------------------------------------------------------------


def name_list(items):
    return vec32(",".join(items).encode())


def vec32(b):
    return u32(len(b)) + b


def ssh_packet(payload, block=8):
    """Binary packet (RFC 4253 6): length, padding length, payload, >= 4 padding bytes,
    total a multiple of the block size (8 before keys are in use)."""
    pad = block - (5 + len(payload)) % block
    if pad < 4:
        pad += block
    return u32(1 + len(payload) + pad) + u8(pad) + payload + b"\0" * pad


def kexinit(cookie, kex, hostkey, ciphers, macs, comp):
    """SSH_MSG_KEXINIT (RFC 4253 7.1)."""
    return ssh_packet(u8(20) + cookie + name_list(kex) + name_list(hostkey)
                      + name_list(ciphers) + name_list(ciphers) + name_list(macs)
                      + name_list(macs) + name_list(comp) + name_list(comp)
                      + name_list([]) + name_list([]) + u8(0) + u32(0))


# PuTTY 0.78's default preference lists (modelled on its settings.c and the algorithm
# names in its ssh/ sources; PuTTY puts the algorithms "below the warning line" in its
# KEXINIT too, and adds ext-info-c). The NTRU Prime hybrid that newer PuTTY versions
# prefer is left out, so the key exchange is curve25519-sha256 (RFC 8731), which every
# dissector reads (Wireshark 4.0 takes sntrup761's 1190-byte key for a broken DH value).
PUTTY_KEX = ["curve25519-sha256",
             "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256", "ecdh-sha2-nistp384",
             "ecdh-sha2-nistp521", "diffie-hellman-group-exchange-sha256",
             "diffie-hellman-group-exchange-sha1", "diffie-hellman-group18-sha512",
             "diffie-hellman-group17-sha512", "diffie-hellman-group16-sha512",
             "diffie-hellman-group15-sha512", "diffie-hellman-group14-sha256",
             "diffie-hellman-group14-sha1", "rsa2048-sha256", "rsa1024-sha1",
             "diffie-hellman-group1-sha1", "ext-info-c"]
PUTTY_HOSTKEY = ["ssh-ed448", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                 "ecdsa-sha2-nistp521", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa", "ssh-dss"]
PUTTY_CIPHERS = ["aes256-ctr", "aes256-cbc", "rijndael-cbc@lysator.liu.se", "aes192-ctr",
                 "aes192-cbc", "aes128-ctr", "aes128-cbc", "chacha20-poly1305@openssh.com",
                 "aes256-gcm@openssh.com", "aes128-gcm@openssh.com", "3des-ctr", "3des-cbc",
                 "blowfish-ctr", "blowfish-cbc", "arcfour256", "arcfour128"]
PUTTY_MACS = ["hmac-sha2-256", "hmac-sha1", "hmac-sha1-96", "hmac-md5",
              "hmac-sha2-256-etm@openssh.com", "hmac-sha1-etm@openssh.com",
              "hmac-sha1-96-etm@openssh.com", "hmac-md5-etm@openssh.com"]
PUTTY_COMP = ["none", "zlib", "zlib@openssh.com"]
# OpenSSH 8.9p1 server defaults (myproposal.h), host keys as Ubuntu 22.04 generates
# them, and the strict-kex marker the 3ubuntu0.6 update added (CVE-2023-48795).
OPENSSH_KEX = ["curve25519-sha256", "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256",
               "ecdh-sha2-nistp384", "ecdh-sha2-nistp521", "sntrup761x25519-sha512@openssh.com",
               "diffie-hellman-group-exchange-sha256", "diffie-hellman-group16-sha512",
               "diffie-hellman-group18-sha512", "diffie-hellman-group14-sha256",
               "kex-strict-s-v00@openssh.com"]
OPENSSH_HOSTKEY = ["rsa-sha2-512", "rsa-sha2-256", "ecdsa-sha2-nistp256", "ssh-ed25519"]
OPENSSH_CIPHERS = ["chacha20-poly1305@openssh.com", "aes128-ctr", "aes192-ctr", "aes256-ctr",
                   "aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]
OPENSSH_MACS = ["umac-64-etm@openssh.com", "umac-128-etm@openssh.com",
                "hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com",
                "hmac-sha1-etm@openssh.com", "umac-64@openssh.com", "umac-128@openssh.com",
                "hmac-sha2-256", "hmac-sha2-512", "hmac-sha1"]
OPENSSH_COMP = ["none", "zlib@openssh.com"]


def ssh_session(t):
    """PuTTY 0.78 (vendor) to OpenSSH 8.9p1 (PACS). Negotiated (first client algorithm
    the server also has, RFC 4253 7.1): curve25519-sha256, ssh-ed25519,
    aes256-ctr, hmac-sha2-256. After NEWKEYS every packet is a multiple of 16 bytes plus
    a 32-byte MAC."""
    label = f"ssh {t}"
    c = Tcp(t, "203.0.113.50", eph(label), "10.20.10.50", 22, rtt=19_000, label=label)
    c.open(SYN_OPTS_WIN, SYN_OPTS_LINUX)
    c.send("s", b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n", think=2_000)
    c.send("c", b"SSH-2.0-PuTTY_Release_0.78\r\n")
    c.send("s", kexinit(det("cookie s " + label, 16), OPENSSH_KEX, OPENSSH_HOSTKEY,
                        OPENSSH_CIPHERS, OPENSSH_MACS, OPENSSH_COMP))
    c.send("c", kexinit(det("cookie c " + label, 16), PUTTY_KEX, PUTTY_HOSTKEY,
                        PUTTY_CIPHERS, PUTTY_MACS, PUTTY_COMP))
    # SSH_MSG_KEX_ECDH_INIT with the client's X25519 key (RFC 5656 4, RFC 8731 3).
    c.send("c", ssh_packet(u8(30) + vec32(det("x25519 c " + label, 32))), think=30_000)
    hostkey = vec32(b"ssh-ed25519") + vec32(det("ed25519 host key", 32))
    sig = vec32(b"ssh-ed25519") + vec32(det("ed25519 sig " + label, 64))
    reply = ssh_packet(u8(31) + vec32(hostkey) + vec32(det("x25519 s " + label, 32))
                       + vec32(sig))
    c.send("s", reply + ssh_packet(u8(21)), think=3_000)  # ... and SSH_MSG_NEWKEYS

    def enc(side, n, i):
        return det(f"ssh {side} {i} {label}", n * 16 + 32)

    c.send("c", ssh_packet(u8(21)) + enc("c", 3, "svc"))  # NEWKEYS, SERVICE_REQUEST
    c.send("s", enc("s", 3, "ext") + enc("s", 3, "svcok"))  # EXT_INFO, SERVICE_ACCEPT
    c.send("c", enc("c", 6, "auth"), think=4_500_000)  # USERAUTH_REQUEST (password)
    c.send("s", enc("s", 2, "authok"), think=60_000)
    c.send("c", enc("c", 3, "chopen"))
    c.send("s", enc("s", 3, "chok") + enc("s", 2, "winadj"))
    c.send("c", enc("c", 8, "pty") + enc("c", 3, "shell"))
    c.send("s", enc("s", 2, "success") + enc("s", 24, "motd"))
    for i in range(16):  # an interactive shell: keystrokes and their echoes
        c.send("c", enc("c", 3, f"key{i}"),
               think=gap(f"kgap {i} {label}", 6, 16))
        c.send("s", enc("s", det_int(f"out {i} {label}", 2, 40), f"out{i}"), think=2_000)
    c.send("c", enc("c", 3, "eof") + enc("c", 3, "close"), think=3_000_000)
    c.send("s", enc("s", 3, "exit") + enc("s", 2, "seof") + enc("s", 2, "sclose"))
    c.close("c")


# --------------------------------------------------------------------------------------
# Connection point 6: OpenVPN over UDP (OpenVPN ssl_pkt.h / reliable.h)
# --------------------------------------------------------------------------------------


def openvpn_session(t):
    """Client hard reset, server hard reset acknowledging it, P_ACK_V1, the TLS
    handshake on the control channel (P_CONTROL_V1), then P_DATA_V2. No tls-auth."""
    cli, srv = "10.20.30.77", "198.51.100.200"
    t = resolve(t, cli, "ovpn.example.net", [srv], ttl=600)
    sport = eph("openvpn sport")
    rtt = 41_000
    sid_c, sid_s = det("ovpn sid c", 8), det("ovpn sid s", 8)

    def ctl(op, sid, acks, remote, msgid, payload=b""):
        p = u8(op << 3) + sid + u8(len(acks)) + b"".join(u32(a) for a in acks)
        if acks:
            p += remote
        if msgid is not None:
            p += u32(msgid)
        return p + payload

    def c2s(tt, p):
        udp(tt, cli, sport, srv, 1194, p)

    def s2c(tt, p):
        udp(tt, srv, 1194, cli, sport, p)

    tt = t + 3_000
    c2s(tt, ctl(7, sid_c, [], None, 0))  # P_CONTROL_HARD_RESET_CLIENT_V2
    tt += rtt
    s2c(tt, ctl(8, sid_s, [0], sid_c, 0))  # P_CONTROL_HARD_RESET_SERVER_V2
    tt += 300
    c2s(tt, ctl(5, sid_c, [0], sid_s, None))  # P_ACK_V1
    tt += 200
    ch = client_hello_browser("ovpn", None)  # OpenSSL 1.1.1 offers TLS 1.3, no SNI
    c2s(tt, ctl(4, sid_c, [], None, 1, ch))  # P_CONTROL_V1: ClientHello
    flight = tls13_server_flight("ovpn", cert_len=1400)
    frags = [flight[i:i + 1100] for i in range(0, len(flight), 1100)]
    tt += rtt
    s2c(tt, ctl(5, sid_s, [1], sid_c, None))
    for k, f in enumerate(frags):
        tt += 150
        s2c(tt, ctl(4, sid_s, [], None, 1 + k, f))
    tt += 400
    c2s(tt, ctl(5, sid_c, list(range(1, 1 + len(frags))), sid_s, None))
    # Client certificate, CertificateVerify and Finished (TLS 1.3, encrypted).
    cflight = tls_record(20, b"\x01") + tls_record(23, det("ovpn ccert", 1100)) + \
        tls_record(23, det("ovpn ccv", 281)) + tls_record(23, det("ovpn cfin", 53))
    cfr = [cflight[i:i + 1100] for i in range(0, len(cflight), 1100)]
    for k, f in enumerate(cfr):
        tt += 200
        c2s(tt, ctl(4, sid_c, [], None, 2 + k, f))
    tt += rtt
    s2c(tt, ctl(5, sid_s, list(range(2, 2 + len(cfr))), sid_c, None))
    # Key method 2 exchange and PUSH_REQUEST / PUSH_REPLY as TLS application data.
    mid_c = 2 + len(cfr)
    mid_s = 1 + len(frags)
    for qlen, rlen in [(330, 290), (40, 410)]:
        tt += 1_000
        c2s(tt, ctl(4, sid_c, [], None, mid_c, tls_record(23, det(f"ovpn kq {qlen}", qlen))))
        tt += rtt
        s2c(tt, ctl(4, sid_s, [mid_c], sid_c, mid_s, tls_record(23, det(f"ovpn kr {rlen}", rlen))))
        tt += 300
        c2s(tt, ctl(5, sid_c, [mid_s], sid_s, None))
        mid_c += 1
        mid_s += 1
    # Data channel: P_DATA_V2 (opcode 9, key id 0, 3-byte peer id), AES-256-GCM.
    peer = b"\x00\x00\x07"
    for i in range(10):
        tt += gap(f"ovpn gap {i}", 20, 10)
        n = det_int(f"ovpn up {i}", 60, 500)
        c2s(tt, u8(9 << 3) + peer + u32(i + 1) + det(f"ovpn data c {i}", 16 + n))
        m = det_int(f"ovpn dn {i}", 60, 900)
        s2c(tt + rtt, u8(9 << 3) + peer + u32(i + 1) + det(f"ovpn data s {i}", 16 + m))


# --------------------------------------------------------------------------------------
# Connection point 7: VNC (RFC 6143)
# --------------------------------------------------------------------------------------


def vnc_session(t):
    label = f"vnc {t}"
    c = Tcp(t, "192.0.2.88", eph(label), "10.20.20.40", 5900, rtt=28_000, label=label)
    c.open(SYN_OPTS_WIN, SYN_OPTS_LINUX)
    c.send("s", b"RFB 003.008\n", think=1_000)  # ProtocolVersion (7.1.1)
    c.send("c", b"RFB 003.008\n")
    c.send("s", u8(1) + u8(2))  # Security (7.1.2): one type, VNC Authentication
    c.send("c", u8(2))
    c.send("s", det("vnc challenge " + label, 16))  # VNC Authentication (7.2.2)
    c.send("c", det("vnc response " + label, 16), think=3_500_000)
    c.send("s", u32(0))  # SecurityResult OK (7.1.3)
    c.send("c", u8(1))  # ClientInit: shared (7.3.1)
    pf = (u8(32) + u8(24) + u8(0) + u8(1) + u16(255) + u16(255) + u16(255)
          + u8(16) + u8(8) + u8(0) + b"\0\0\0")  # PIXEL_FORMAT (7.4)
    name = b"MRI-CONSOLE"
    c.send("s", u16(1280) + u16(1024) + pf + vec32(name))  # ServerInit (7.3.2)
    encodings = [5, 1, 0, -223, -239]  # Hextile, CopyRect, Raw, DesktopSize, Cursor
    c.send("c", u8(0) + b"\0\0\0" + pf  # SetPixelFormat (7.5.1)
           + u8(2) + u8(0) + u16(len(encodings))
           + b"".join(struct.pack("!i", e) for e in encodings)  # SetEncodings (7.5.2)
           + u8(3) + u8(0) + u16(0) + u16(0) + u16(1280) + u16(1024))  # FramebufferUpdateRequest

    def update(i, rects):
        """FramebufferUpdate (7.6.1) of Raw rectangles (7.7.1), 32 bits per pixel."""
        out = u8(0) + u8(0) + u16(len(rects))
        for k, (x, y, w, h) in enumerate(rects):
            out += u16(x) + u16(y) + u16(w) + u16(h) + struct.pack("!i", 0)
            out += det(f"vnc px {i} {k} {label}", w * h * 4)
        return out

    c.send("s", update(0, [(0, 0, 32, 16), (400, 300, 16, 16)]), think=30_000)
    for i in range(1, 9):
        c.send("c", u8(5) + u8(0) + u16(200 + 37 * i) + u16(180 + 23 * i)  # PointerEvent
               + u8(3) + u8(1) + u16(0) + u16(1280) + u16(1024),  # incremental update request
               think=gap(f"vnc gap {i}", 4, 8))
        c.send("s", update(i, [(200 + 37 * i, 180 + 23 * i, 16, 8)]))
    c.send("c", u8(4) + u8(1) + b"\0\0" + u32(0xFF0D) + u8(4) + u8(0) + b"\0\0" + u32(0xFF0D),
           think=1_000_000)  # KeyEvent Return down/up (7.5.4)
    c.close("c", think=8_000_000)


# --------------------------------------------------------------------------------------
# The day
# --------------------------------------------------------------------------------------


def build():
    # Morning start-up: DHCP, NetBIOS, mDNS, NTP, logons.
    dhcp_exchange(jst(0, 9, 0, 4.2), "10.20.20.15", "CT-WS-01", broadcast_flag=True)
    dhcp_exchange(jst(0, 9, 2, 11.7), "10.20.40.31", "LAB-PC-031", broadcast_flag=False)
    netbios_registration(jst(0, 9, 3, 2.0))
    mdns_announcement(jst(0, 9, 4, 30.0))
    for day, hh, mm, host_ in [(0, 9, 0, "10.20.20.15"), (0, 9, 2, "10.20.40.31"),
                               (0, 9, 5, "10.20.30.21"), (0, 9, 6, "10.20.30.77"),
                               (0, 17, 0, "10.20.20.15"), (1, 1, 0, "10.20.40.31"),
                               (1, 9, 0, "10.20.30.21")]:
        ntp_exchange(jst(day, hh, mm, 30.0), host_)
    t = resolve(jst(0, 9, 5, 0.5), "10.20.30.21", "fs01.hospital.example", ["10.20.10.20"],
                ttl=1200, upstream=False)
    t = kerberos_logon(t, "10.20.30.21", "sato.hanako")
    smb_negotiate(t + 40_000, "10.20.30.21")
    t = resolve(jst(0, 9, 8, 3.0), "10.20.30.21", "ehr.hospital.example", ["10.20.10.30"],
                ttl=1200, upstream=False)
    https_ehr(t, "10.20.30.21", [(520, 4200, 0), (610, 1400, 2_000_000), (480, 2600, 9_000_000)])
    t = resolve(jst(0, 9, 9, 40.0), "10.20.20.15", "pacs01.hospital.example", ["10.20.10.50"],
                ttl=1200, upstream=False)
    dicom_echo(t)
    hl7_adt(jst(0, 9, 12, 0.2))
    t = resolve(jst(0, 9, 15, 12.0), "10.20.30.45", "www.example.com", ["198.51.100.80"],
                ttl=3600)
    https_external(t, "10.20.30.45", "www.example.com", "198.51.100.80")
    t = resolve(jst(0, 13, 2, 5.0), "10.20.30.21", "www.example.com", ["198.51.100.80"],
                ttl=3600, upstream=False)
    https_external(t, "10.20.30.21", "www.example.com", "198.51.100.80")
    t = resolve(jst(1, 9, 3, 1.0), "10.20.30.21", "ehr.hospital.example", ["10.20.10.30"],
                ttl=1200, upstream=False)
    https_ehr(t, "10.20.30.21", [(540, 3600, 0)])
    hl7_adt(jst(0, 15, 40, 9.0))
    ntp_exchange(jst(1, 10, 30, 30.0), "10.20.20.15")
    t = resolve(jst(1, 10, 41, 7.0), "10.20.30.77", "www.example.com", ["198.51.100.80"],
                ttl=3600)
    https_external(t, "10.20.30.77", "www.example.com", "198.51.100.80")

    # 1. RDP from the Internet to CT-WS-01, six sources, all hours.
    rdp_session(jst(0, 9, 47, 13.0), "203.0.113.200", "Administr", "", False, "rst")
    rdp_session(jst(0, 13, 5, 40.0), "198.51.100.33", "ctadmin", "DESKTOP-4K2M8QJ", True, None)
    rdp_session(jst(0, 19, 22, 5.0), "192.0.2.150", "admin", "", False, "fin")
    rdp_session(jst(1, 1, 14, 51.0), "203.0.113.17", "Administrator", "WIN-R7T0QH2L3M", True, None)
    rdp_session(jst(1, 3, 41, 2.0), "198.51.100.77", "user", "", False, "rst")
    rdp_session(jst(1, 6, 58, 30.0), "192.0.2.201", "test", "", False, "fin")

    # 2. IPsec maintenance VPN to the vendor.
    ipsec_sessions()

    # 3. SSL-VPN: a remote worker at 10:00 JST and at 23:30 JST.
    sslvpn_session(jst(0, 10, 0, 12.0), 25)
    sslvpn_session(jst(0, 23, 30, 41.0), 18)

    # 4. TeamViewer on the lab PC, three relays.
    teamviewer_session(jst(0, 9, 20, 5.0), "203.0.113.60", "router1.teamviewer.com", 12)
    teamviewer_session(jst(0, 13, 40, 33.0), "203.0.113.61", "router2.teamviewer.com", 20)
    teamviewer_session(jst(1, 8, 50, 17.0), "203.0.113.62", "router3.teamviewer.com", 8)

    # 5. Vendor SSH to PACS at 14:00 JST.
    ssh_session(jst(0, 14, 0, 6.0))

    # 6. OpenVPN from an office PC (shadow IT).
    openvpn_session(jst(0, 12, 15, 20.0))

    # 7. Contractor VNC to the MRI console.
    vnc_session(jst(0, 16, 0, 44.0))


# --------------------------------------------------------------------------------------
# Ledger (the hospital's own register of external connections)
# --------------------------------------------------------------------------------------

LEDGER_HEADER = ["管理番号", "業者", "システム", "内部ホスト", "接続先", "サービス",
                 "保守時間帯", "契約", "備考"]
LEDGER_ROWS = [
    ["EX-001", "東和メディカルシステム株式会社", "電子カルテ・部門システム リモート保守",
     "10.20.10.1", "192.0.2.10", "ipsec", "毎日 0:00-24:00",
     "保守契約 TM-2024-017（2024-04-01～2027-03-31）",
     "拠点間 IPsec VPN（先方 FortiGate）。監視のため常時接続"],
    ["EX-002", "株式会社みなとネットワークス", "職員リモートアクセス（FortiGate SSL-VPN）",
     "10.20.10.2", "", "ssl-vpn", "平日 8:00-20:00",
     "運用保守契約 MN-2025-003（2025-04-01～2028-03-31）",
     "在宅勤務の職員用。時間外の利用は情報システム管理室の事前承認が必要"],
    ["EX-003", "北星画像システム株式会社", "PACS（画像保管・通信システム）",
     "10.20.10.50", "203.0.113.50", "ssh", "平日 9:00-18:00",
     "保守契約 HS-2023-112（2023-10-01～2026-09-30、自動更新）",
     "作業前に電話連絡。作業記録を月次で提出"],
    ["EX-004", "さくらメディカルエンジニアリング株式会社", "MRI 操作卓",
     "10.20.20.40", "192.0.2.80", "vnc", "平日 9:00-18:00",
     "保守契約 SM-2022-045（2022-07-01～2027-06-30）",
     "接続元は先方サービスセンターの固定アドレス"],
    ["EX-005", "三和システムサービス株式会社", "内視鏡画像ファイリング（旧）",
     "10.20.20.99", "198.51.100.5", "rdp", "平日 9:00-17:00",
     "2024-03-31 契約終了",
     "機器撤去予定。回線の廃止は未確認"],
]


def write_ledgers(outdir):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(LEDGER_HEADER)
    w.writerows(LEDGER_ROWS)
    text = buf.getvalue()
    with open(os.path.join(outdir, "hospital-ledger.csv"), "wb") as f:
        f.write(text.encode("utf-8-sig"))
    with open(os.path.join(outdir, "hospital-ledger-sjis.csv"), "wb") as f:
        f.write(text.encode("cp932"))


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    build()
    n, size = CAP.write(os.path.join(outdir, "hospital-demo.pcap"))
    write_ledgers(outdir)
    print(f"hospital-demo.pcap: {n} packets, {size} bytes; ledgers: {len(LEDGER_ROWS)} rows",
          file=sys.stderr)


if __name__ == "__main__":
    main()
