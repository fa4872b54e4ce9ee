//! MAC vendors from the IEEE Registration Authority's public listings.
//!
//! The registry assigns blocks of three sizes: MA-L (24-bit prefix, the classic OUI),
//! MA-M (28-bit) and MA-S (36-bit; the older IAB blocks are 36-bit too). Smaller blocks
//! are carved out of larger ones registered to the IEEE itself, so the longest matching
//! prefix names the vendor. The listings are read from a directory laid out as Debian's
//! `ieee-data` package installs it: `oui.csv`, `mam.csv`, `oui36.csv`, `iab.csv` (columns
//! Registry, Assignment, Organization Name, Organization Address), or the `.txt` form of a
//! registry when its `.csv` is missing.
//!
//! The files are local but still read defensively: bounded size, rows that do not parse
//! are skipped, organisation names are capped and must be printable.

use super::printable;
use std::collections::HashMap;
use std::io::{self, BufRead, Read};
use std::path::Path;

/// Where Debian's `ieee-data` package puts the listings.
pub const DEFAULT_DIR: &str = "/usr/share/ieee-data";
/// Bytes read from one listing (the largest, `oui.txt`, is about 5 MiB).
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// Prefixes kept over all listings (about 47,000 in 2022).
pub const MAX_ENTRIES: usize = 1 << 20;
/// Longest organisation name kept, in characters.
pub const MAX_ORG_CHARS: usize = 128;

/// The listings, each as its csv and txt file name.
const LISTINGS: [(&str, &str); 4] = [
    ("oui.csv", "oui.txt"),
    ("mam.csv", "mam.txt"),
    ("oui36.csv", "oui36.txt"),
    ("iab.csv", "iab.txt"),
];

/// Prefix lengths, longest first.
const PREFIX_BITS: [u8; 3] = [36, 28, 24];

/// MAC prefix → organisation.
#[derive(Clone, Debug, Default)]
pub struct Oui {
    /// (prefix bits, prefix) → index into `orgs`.
    prefixes: HashMap<(u8, u64), u32>,
    /// Organisation names, each once.
    orgs: Vec<Box<str>>,
    /// Reverse of `orgs` while loading.
    interned: HashMap<Box<str>, u32>,
    /// While loading: only blocks inside these 24-bit prefixes (`None`: all).
    wanted: Option<std::collections::HashSet<u32>>,
}

/// The MAC as a 48-bit number.
fn mac_u64(mac: [u8; 6]) -> u64 {
    mac.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b))
}

/// Adds the path to an I/O error, so the message names the file.
fn at_path(e: io::Error, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

impl Oui {
    /// `/usr/share/ieee-data` (Debian package ieee-data) when present; an empty table
    /// otherwise (never fails; logs nothing).
    pub fn load_default() -> Oui {
        Oui::load_dir(Path::new(DEFAULT_DIR)).unwrap_or_default()
    }

    /// `oui.csv`, `mam.csv`, `oui36.csv` (and `iab.csv`) of a directory (MA-L 24-bit,
    /// MA-M 28-bit, MA-S and IAB 36-bit prefixes; longest prefix wins); for a listing
    /// without its csv, its `.txt` (`oui.txt`, …). Err when the directory is unreadable,
    /// when a listing present cannot be read, or when it has none of these files.
    pub fn load_dir(dir: &Path) -> io::Result<Oui> {
        Oui::load_dir_inner(dir, None)
    }

    /// Like [`Oui::load_default`], keeping only what `macs` need: reading the whole
    /// registry takes tens of milliseconds, the few prefixes of an inventory far less.
    pub fn load_default_for(macs: &[[u8; 6]]) -> Oui {
        Oui::load_dir_for(Path::new(DEFAULT_DIR), macs).unwrap_or_default()
    }

    /// Like [`Oui::load_dir`], keeping only the blocks inside the 24-bit prefixes of `macs`.
    pub fn load_dir_for(dir: &Path, macs: &[[u8; 6]]) -> io::Result<Oui> {
        let wanted = macs
            .iter()
            .map(|m| u32::from_be_bytes([0, m[0], m[1], m[2]]))
            .collect();
        Oui::load_dir_inner(dir, Some(wanted))
    }

    fn load_dir_inner(
        dir: &Path,
        wanted: Option<std::collections::HashSet<u32>>,
    ) -> io::Result<Oui> {
        std::fs::read_dir(dir).map_err(|e| at_path(e, dir))?;
        let mut oui = Oui {
            wanted,
            ..Oui::default()
        };
        let mut found = 0;
        for (csv, txt) in LISTINGS {
            for (name, is_csv) in [(csv, true), (txt, false)] {
                let path = dir.join(name);
                let file = match std::fs::File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(at_path(e, &path)),
                };
                let r = io::BufReader::new(file.take(MAX_FILE_BYTES));
                if is_csv {
                    oui.read_csv(r)
                } else {
                    oui.read_txt(r)
                }
                .map_err(|e| at_path(e, &path))?;
                found += 1;
                break;
            }
        }
        if found == 0 {
            let names: Vec<&str> = LISTINGS.iter().flat_map(|(c, t)| [*c, *t]).collect();
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: none of {} found", dir.display(), names.join(", ")),
            ));
        }
        oui.interned = HashMap::new();
        oui.wanted = None;
        Ok(oui)
    }

    /// The organisation for a MAC; `None` for locally administered (randomised) or
    /// multicast MACs and unknown prefixes.
    pub fn vendor(&self, mac: [u8; 6]) -> Option<&str> {
        // The I/G (group) and U/L (local) bits of the first octet (RFC 7042 section 2.1).
        if mac[0] & 0x03 != 0 {
            return None;
        }
        let m = mac_u64(mac);
        PREFIX_BITS.iter().find_map(|&bits| {
            let i = *self.prefixes.get(&(bits, m >> (48 - u32::from(bits))))?;
            self.orgs.get(usize::try_from(i).ok()?).map(|s| &**s)
        })
    }

    /// Prefixes known.
    pub fn len(&self) -> usize {
        self.prefixes.len()
    }

    /// No prefix known.
    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }

    /// Whether an assignment's hex digits can be wanted (cheap pre-check before the row's
    /// text is decoded).
    fn wants(&self, hex: &[u8]) -> bool {
        let Some(w) = &self.wanted else { return true };
        let top = hex
            .trim_ascii()
            .get(..6)
            .and_then(|h| std::str::from_utf8(h).ok());
        top.and_then(|h| u32::from_str_radix(h, 16).ok())
            .is_some_and(|t| w.contains(&t))
    }

    /// Adds one assignment: `hex` is 6, 7 or 9 hex digits (24, 28, 36 bits). Later
    /// listings do not override an assignment already read.
    fn add(&mut self, hex: &str, org: &str) {
        let bits: u8 = match hex.len() {
            6 => 24,
            7 => 28,
            9 => 36,
            _ => return,
        };
        let Ok(prefix) = u64::from_str_radix(hex, 16) else {
            return;
        };
        if let Some(w) = &self.wanted {
            if !w.contains(&((prefix >> (bits - 24)) as u32)) {
                return;
            }
        }
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) || self.prefixes.len() >= MAX_ENTRIES {
            return;
        }
        let org = org.trim();
        let org = match org.char_indices().nth(MAX_ORG_CHARS) {
            Some((cut, _)) => org.get(..cut).unwrap_or(org).trim_end(),
            None => org,
        };
        if !printable(org) {
            return;
        }
        let next = u32::try_from(self.orgs.len()).unwrap_or(u32::MAX);
        let idx = *self.interned.entry(org.into()).or_insert(next);
        if idx == next {
            self.orgs.push(org.into());
        }
        self.prefixes.entry((bits, prefix)).or_insert(idx);
    }

    /// Reads a csv listing: a header row, then Registry, Assignment, Organization Name,
    /// Organization Address (quoted when they hold commas or line breaks).
    fn read_csv(&mut self, r: impl Read) -> io::Result<()> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(r);
        let mut rec = csv::ByteRecord::new();
        loop {
            match rdr.read_byte_record(&mut rec) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => match e.into_kind() {
                    csv::ErrorKind::Io(e) => return Err(e),
                    // A malformed row: skip it.
                    _ => continue,
                },
            }
            let (Some(hex), Some(org)) = (rec.get(1), rec.get(2)) else {
                continue;
            };
            if !self.wants(hex) {
                continue;
            }
            let hex = String::from_utf8_lossy(hex);
            let org = String::from_utf8_lossy(org);
            self.add(hex.trim(), &org);
        }
    }

    /// Reads a txt listing. Each entry opens with `XX-XX-XX   (hex)\t\tOrganization`, then
    /// `XXXXXX     (base 16)\t\tOrganization` for a 24-bit block, or
    /// `X00000-XFFFFF     (base 16)\t\tOrganization` for a smaller block inside the 24-bit
    /// prefix of the line before (the digits shared by both ends extend the prefix).
    fn read_txt(&mut self, r: impl BufRead) -> io::Result<()> {
        let mut base: Option<String> = None;
        for line in r.split(b'\n') {
            let line = line?;
            let line = String::from_utf8_lossy(&line);
            if let Some((hex, _)) = line.split_once("(hex)") {
                let hex: String = hex.trim().chars().filter(|c| *c != '-').collect();
                base = (hex.len() == 6).then_some(hex);
            } else if let Some((range, org)) = line.split_once("(base 16)") {
                let range = range.trim();
                match range.split_once('-') {
                    None => self.add(range, org),
                    Some((lo, hi)) if lo.len() == 6 && hi.len() == 6 => {
                        let Some(b) = base.take() else { continue };
                        // Digits before the 0…0 / F…F tails of the two ends.
                        let tail = lo
                            .bytes()
                            .rev()
                            .zip(hi.bytes().rev())
                            .take_while(|(l, h)| *l == b'0' && h.eq_ignore_ascii_case(&b'F'))
                            .count();
                        if let Some(ext) = lo.get(..6 - tail) {
                            self.add(&format!("{b}{ext}"), org);
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }
}

/// A MAC in the usual lowercase colon form, e.g. "00:1b:21:aa:bb:cc".
pub fn format_mac(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows as in the 2022 `ieee-data` listings (quoting, a multi-line address).
    const OUI_CSV: &str = "Registry,Assignment,Organization Name,Organization Address\r\n\
        MA-L,001B21,Intel Corporate,\"Lot 8, Jalan Hi-Tech 2/3 Kulim Kedah MY 09000 \"\r\n\
        MA-L,00000C,\"Cisco Systems, Inc\",170 WEST TASMAN DRIVE SAN JOSE CA US 95134-1706 \r\n\
        MA-L,741AE0,IEEE Registration Authority,445 Hoes Lane Piscataway NJ US 08554 \r\n\
        MA-L,70B3D5,IEEE Registration Authority,445 Hoes Lane Piscataway NJ US 08554 \r\n\
        MA-L,0050C2,IEEE Registration Authority,445 Hoes Lane Piscataway NJ US 08554 \r\n\
        MA-L,08AA55,Multi Line,\"STE 102\nSAN JOSE CA US 95134 \"\r\n\
        MA-L,ZZZZZZ,Not hex,\r\n\
        MA-L,0A0B0C,Bell\x07Corp,\r\n";
    const MAM_CSV: &str = "Registry,Assignment,Organization Name,Organization Address\r\n\
        MA-M,741AE05,\"FUJIAN TAILI COMMUNICATION TECHNOLOGY CO.,LTD\",\"Cangshan, Fuzhou CN\"\r\n";
    const OUI36_CSV: &str = "Registry,Assignment,Organization Name,Organization Address\r\n\
        MA-S,70B3D5F2F,TELEPLATFORMS,\"Polbina st., 3/1 Moscow  RU 109388 \"\r\n";
    const IAB_CSV: &str = "Registry,Assignment,Organization Name,Organization Address\r\n\
        IAB,0050C27D5,DEUTA-WERKE GmbH,Paffrather Strasse 140 Bergisch-Gladbach NRW DE 51465 \r\n";

    /// The txt layout of `oui.txt` and `oui36.txt` (CRLF, tabs), 2022.
    const OUI_TXT: &str = "OUI/MA-L                          Organization\r\n\
        company_id                        Organization\r\n\
        \r\n\
        00-1B-21   (hex)\t\tIntel Corporate\r\n\
        001B21     (base 16)\t\tIntel Corporate\r\n\
        \t\t\t\tLot 8, Jalan Hi-Tech 2/3\r\n\
        \r\n";
    const OUI36_TXT: &str = "70-B3-D5   (hex)\t\tTELEPLATFORMS\r\n\
        F2F000-F2FFFF     (base 16)\t\tTELEPLATFORMS\r\n\
        \t\t\t\tPolbina st., 3/1\r\n\r\n";
    const MAM_TXT: &str = "74-1A-E0   (hex)\t\tRevl Inc.\r\n\
        400000-4FFFFF     (base 16)\t\tRevl Inc.\r\n\r\n";

    fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(d.path().join(name), text).unwrap();
        }
        d
    }

    #[test]
    fn csv_listings_longest_prefix_wins() {
        let d = dir(&[
            ("oui.csv", OUI_CSV),
            ("mam.csv", MAM_CSV),
            ("oui36.csv", OUI36_CSV),
            ("iab.csv", IAB_CSV),
        ]);
        let oui = Oui::load_dir(d.path()).unwrap();
        assert_eq!(oui.len(), 6 + 3);
        assert_eq!(
            oui.vendor([0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc]),
            Some("Intel Corporate")
        );
        assert_eq!(
            oui.vendor([0x00, 0x00, 0x0c, 1, 2, 3]),
            Some("Cisco Systems, Inc")
        );
        assert_eq!(oui.vendor([0x08, 0xaa, 0x55, 1, 2, 3]), Some("Multi Line"));
        // 28-bit block 74:1a:e0:5…
        assert_eq!(
            oui.vendor([0x74, 0x1a, 0xe0, 0x5f, 0, 1]),
            Some("FUJIAN TAILI COMMUNICATION TECHNOLOGY CO.,LTD")
        );
        // Outside it, the 24-bit owner.
        assert_eq!(
            oui.vendor([0x74, 0x1a, 0xe0, 0x6f, 0, 1]),
            Some("IEEE Registration Authority")
        );
        // 36-bit blocks (MA-S and IAB).
        assert_eq!(
            oui.vendor([0x70, 0xb3, 0xd5, 0xf2, 0xf0, 0x01]),
            Some("TELEPLATFORMS")
        );
        assert_eq!(
            oui.vendor([0x70, 0xb3, 0xd5, 0xf2, 0xe0, 0x01]),
            Some("IEEE Registration Authority")
        );
        assert_eq!(
            oui.vendor([0x00, 0x50, 0xc2, 0x7d, 0x50, 0x01]),
            Some("DEUTA-WERKE GmbH")
        );
        // Unprintable organisations are skipped.
        assert_eq!(oui.vendor([0x0a, 0x0b, 0x0c, 0, 0, 1]), None);
    }

    #[test]
    fn local_and_multicast_macs_have_no_vendor() {
        let d = dir(&[("oui.csv", OUI_CSV)]);
        let oui = Oui::load_dir(d.path()).unwrap();
        // 02:1b:21… is 00:1b:21 with the locally administered bit (randomised MACs).
        assert_eq!(oui.vendor([0x02, 0x1b, 0x21, 0xaa, 0xbb, 0xcc]), None);
        assert_eq!(oui.vendor([0x01, 0x1b, 0x21, 0xaa, 0xbb, 0xcc]), None);
        assert_eq!(oui.vendor([0x00, 0x1b, 0x22, 0xaa, 0xbb, 0xcc]), None);
    }

    #[test]
    fn txt_listings_when_no_csv() {
        let d = dir(&[
            ("oui.txt", OUI_TXT),
            ("oui36.txt", OUI36_TXT),
            ("mam.txt", MAM_TXT),
        ]);
        let oui = Oui::load_dir(d.path()).unwrap();
        assert_eq!(oui.len(), 3);
        assert_eq!(
            oui.vendor([0x00, 0x1b, 0x21, 0, 0, 1]),
            Some("Intel Corporate")
        );
        assert_eq!(
            oui.vendor([0x70, 0xb3, 0xd5, 0xf2, 0xf0, 0x01]),
            Some("TELEPLATFORMS")
        );
        assert_eq!(
            oui.vendor([0x74, 0x1a, 0xe0, 0x40, 0, 1]),
            Some("Revl Inc.")
        );
        assert_eq!(oui.vendor([0x74, 0x1a, 0xe0, 0x50, 0, 1]), None);
        // The csv is preferred where both exist.
        let d = dir(&[
            ("oui.txt", OUI_TXT),
            ("oui.csv", "Registry,Assignment,Organization Name\n"),
        ]);
        assert!(Oui::load_dir(d.path()).unwrap().is_empty());
    }

    #[test]
    fn missing_or_empty_directory_is_an_error() {
        let d = dir(&[("README", "nothing here")]);
        let e = Oui::load_dir(d.path()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("oui.csv"), "{e}");
        let gone = d.path().join("nope");
        let e = Oui::load_dir(&gone).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn long_organisation_names_are_capped() {
        let long = "X".repeat(500);
        let d = dir(&[(
            "oui.csv",
            &format!("Registry,Assignment,Organization Name\nMA-L,001122,{long}\n"),
        )]);
        let oui = Oui::load_dir(d.path()).unwrap();
        assert_eq!(
            oui.vendor([0, 0x11, 0x22, 0, 0, 1])
                .unwrap()
                .chars()
                .count(),
            MAX_ORG_CHARS
        );
    }

    #[test]
    fn installed_registry() {
        let path = Path::new(DEFAULT_DIR);
        if !path.is_dir() {
            eprintln!("note: {DEFAULT_DIR} is absent (Debian package ieee-data); skipping");
            return;
        }
        let oui = Oui::load_default();
        assert!(oui.len() > 30_000, "only {} prefixes", oui.len());
        assert_eq!(
            oui.vendor([0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc]),
            Some("Intel Corporate")
        );
        assert_eq!(
            oui.vendor([0x00, 0x00, 0x0c, 0x07, 0xac, 0x01]),
            Some("Cisco Systems, Inc")
        );
    }

    /// Loading for a few MACs keeps their vendors (longest prefix still wins) and nothing
    /// else.
    #[test]
    fn loading_for_some_macs_keeps_only_theirs() {
        let all = Oui::load_dir(Path::new(DEFAULT_DIR));
        let Ok(all) = all else {
            eprintln!("note: {DEFAULT_DIR} absent, comparison with the full registry skipped");
            return;
        };
        let macs = [[0x00, 0x09, 0x0f, 1, 2, 3], [0x98, 0xe7, 0x43, 4, 5, 6]];
        let some = Oui::load_dir_for(Path::new(DEFAULT_DIR), &macs).unwrap();
        for m in macs {
            assert_eq!(some.vendor(m), all.vendor(m));
            assert!(some.vendor(m).is_some());
        }
        assert!(some.len() < 50, "{} prefixes kept", some.len());
        assert_eq!(some.vendor([0x00, 0x0e, 0x8c, 0, 0, 1]), None);
    }

    #[test]
    fn mac_text() {
        assert_eq!(
            format_mac([0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc]),
            "00:1b:21:aa:bb:cc"
        );
    }
}
