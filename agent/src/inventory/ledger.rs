//! The hospital's own register (台帳) of expected external connections.
//!
//! Hospitals keep this register in a spreadsheet, so it is read as CSV with a header row,
//! in UTF-8 (with or without the BOM Excel writes) or Shift_JIS (Excel's default "CSV" on
//! Japanese Windows). Column names are Japanese or English; see `docs/ledger.md`.
//!
//! A bad row does not stop the load: it becomes a [`RowError`] naming the file's line and
//! the column, and the other rows still count. Only problems with the whole file (cannot
//! be read, too big, not text, no header, no `internal` column) are a [`LedgerError`].
//!
//! [`Ledger::reconcile`] then says, for one observed connection point, whether an entry
//! registers it, registers something close to it (drift), or nothing does.

use super::window::{self, covered_by_any, Window};
use crate::classify::Service;
use crate::decode::Addr;
use crate::record::Cidr;
use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;

/// Largest ledger file read.
pub const MAX_LEDGER_BYTES: u64 = 16 * 1024 * 1024;
/// Most data rows (after the header) in a ledger.
pub const MAX_ROWS: usize = 100_000;
/// Most columns in the header row.
pub const MAX_COLUMNS: usize = 256;
/// Longest cell, in bytes of UTF-8.
pub const MAX_CELL_BYTES: usize = 4096;
/// Most addresses, names or services in one cell.
pub const MAX_ITEMS_PER_CELL: usize = 256;
/// Longest DNS name (RFC 1035 §2.3.4).
const MAX_DNS_NAME: usize = 253;
/// Longest DNS label (RFC 1035 §2.3.4).
const MAX_DNS_LABEL: usize = 63;

/// `Ledger::encoding` for UTF-8 files.
pub const ENCODING_UTF8: &str = "UTF-8";
/// `Ledger::encoding` for Shift_JIS (Windows-31J) files.
pub const ENCODING_SHIFT_JIS: &str = "Shift_JIS";

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
const HEADER_EXAMPLE: &str = "管理番号,業者,システム,内部ホスト,接続先,サービス,保守時間帯";

/// The columns the ledger knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    Id,
    Vendor,
    System,
    Internal,
    FarEnd,
    Service,
    Window,
    Contract,
    Note,
}

impl Column {
    const ALL: [Column; 9] = [
        Column::Id,
        Column::Vendor,
        Column::System,
        Column::Internal,
        Column::FarEnd,
        Column::Service,
        Column::Window,
        Column::Contract,
        Column::Note,
    ];

    /// Header names, already in the form [`header_key`] gives; the first is the English
    /// name.
    fn names(self) -> &'static [&'static str] {
        match self {
            Column::Id => &["id", "管理番号", "番号"],
            Column::Vendor => &["vendor", "業者", "ベンダー", "保守業者"],
            Column::System => &["system", "システム", "機器"],
            Column::Internal => &["internal", "内部ホスト", "内部", "院内機器"],
            Column::FarEnd => &["farend", "接続先", "接続元", "相手先"],
            Column::Service => &["service", "services", "サービス", "接続方式"],
            Column::Window => &["window", "windows", "保守時間帯", "時間帯"],
            Column::Contract => &["contract", "契約", "保守契約"],
            Column::Note => &["note", "備考"],
        }
    }

    fn from_header(h: &str) -> Option<Column> {
        let key = header_key(h);
        Column::ALL
            .into_iter()
            .find(|c| c.names().contains(&key.as_str()))
    }
}

/// A header cell compared loosely: width folded, a trailing "(…)" note dropped, no
/// whitespace, `_` or `-`, lower case. "Far End", "far_end" and "接続先（IP）" all match.
fn header_key(h: &str) -> String {
    let folded = window::fold(h);
    let mut s = folded.trim();
    if s.ends_with(')') {
        if let Some(open) = s.rfind('(') {
            s = s.get(..open).unwrap_or(s);
        }
    }
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// An internal host in the ledger: a network (a single address is a /32 or /128) or an
/// inclusive range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostSpec {
    /// A network or single address.
    Net(Cidr),
    /// First to last address, both included, same family.
    Range(IpAddr, IpAddr),
}

impl HostSpec {
    /// Whether the address is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match self {
            HostSpec::Net(c) => c.contains(Addr::from(ip)),
            HostSpec::Range(a, b) => in_range(*a, *b, ip),
        }
    }
}

fn in_range(a: IpAddr, b: IpAddr, ip: IpAddr) -> bool {
    // Byte order of the 16-byte form is numeric order; IPv4 sorts among the mapped block.
    let x = Addr::from(ip);
    Addr::from(a) <= x && x <= Addr::from(b)
}

/// A network written without a host route's "/32" or "/128".
fn fmt_cidr(c: &Cidr, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let s = c.to_string();
    let host = if s.contains(':') { "/128" } else { "/32" };
    f.write_str(s.strip_suffix(host).unwrap_or(&s))
}

impl fmt::Display for HostSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostSpec::Net(c) => fmt_cidr(c, f),
            HostSpec::Range(a, b) => write!(f, "{a}-{b}"),
        }
    }
}

impl Serialize for HostSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The far end of a ledger entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FarSpec {
    /// A network or single address.
    Net(Cidr),
    /// First to last address, both included.
    Range(IpAddr, IpAddr),
    /// A DNS name, lower case, without a leading "*.": the name or any subdomain.
    Domain(String),
    /// A relay cloud or vendor word such as "TeamViewer", compared case-insensitively.
    Cloud(String),
}

impl FarSpec {
    fn contains_ip(&self, ip: IpAddr) -> Option<bool> {
        match self {
            FarSpec::Net(c) => Some(c.contains(Addr::from(ip))),
            FarSpec::Range(a, b) => Some(in_range(*a, *b, ip)),
            FarSpec::Domain(_) | FarSpec::Cloud(_) => None,
        }
    }
}

impl fmt::Display for FarSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FarSpec::Net(c) => fmt_cidr(c, f),
            FarSpec::Range(a, b) => write!(f, "{a}-{b}"),
            FarSpec::Domain(d) => f.write_str(d),
            FarSpec::Cloud(c) => f.write_str(c),
        }
    }
}

impl Serialize for FarSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One row of the ledger: an expected external connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The `id` cell, or "row N" when there is none.
    pub id: String,
    /// Line of the file the row starts on (the header is line 1 when it comes first).
    pub row: usize,
    /// Vendor (保守業者).
    pub vendor: String,
    /// System or device (システム・機器).
    pub system: String,
    /// Internal hosts; never empty.
    pub internal: Vec<HostSpec>,
    /// Far ends; empty means any.
    pub far_end: Vec<FarSpec>,
    /// Services; empty means any.
    pub services: Vec<Service>,
    /// Maintenance windows; empty means any time.
    pub windows: Vec<Window>,
    /// Contract (保守契約).
    pub contract: String,
    /// Note (備考).
    pub note: String,
}

/// A row that could not be read; its entry is left out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// Line of the file the row starts on.
    pub row: usize,
    /// The column as its header is written, when one cell is at fault.
    pub column: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl RowError {
    /// "FILE:ROW: column `service`: message", for a person.
    pub fn display<'a>(&'a self, source: &'a str) -> impl fmt::Display + 'a {
        RowErrorDisplay { e: self, source }
    }
}

struct RowErrorDisplay<'a> {
    e: &'a RowError,
    source: &'a str,
}

impl fmt::Display for RowErrorDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.source, self.e.row)?;
        if let Some(c) = &self.e.column {
            write!(f, "column `{c}`: ")?;
        }
        f.write_str(&self.e.message)
    }
}

/// The ledger file as a whole cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The file could not be opened or read.
    #[error("{file}: cannot read the ledger: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// Larger than [`MAX_LEDGER_BYTES`].
    #[error("{file}: the ledger is larger than {max} bytes; is this the right file?")]
    TooBig {
        /// The file.
        file: String,
        /// The limit.
        max: u64,
    },
    /// Not text in a supported encoding.
    #[error("{file}: {detail}; save the ledger as \"CSV UTF-8\" or \"CSV\" (Shift_JIS)")]
    Encoding {
        /// The file.
        file: String,
        /// What was found.
        detail: String,
    },
    /// No rows at all, or only blank and comment rows.
    #[error("{file}: the ledger is empty; expected a header row such as `{HEADER_EXAMPLE}` and one row per connection")]
    Empty {
        /// The file.
        file: String,
    },
    /// The first row names no known column.
    #[error("{file}:{line}: this row should be the header but names no known column; expected e.g. `{HEADER_EXAMPLE}` (or id,vendor,system,internal,far_end,service,window)")]
    NoHeader {
        /// The file.
        file: String,
        /// Line of the row taken as the header.
        line: usize,
    },
    /// The header has no `internal` column.
    #[error("{file}:{line}: the header has no `internal` column (内部ホスト, 内部 or 院内機器); it is required: the internal host's address, network or range")]
    NoInternalColumn {
        /// The file.
        file: String,
        /// Line of the header.
        line: usize,
    },
    /// Two header cells name the same column.
    #[error("{file}:{line}: columns `{first}` and `{second}` both mean `{column}`; keep one")]
    DuplicateColumn {
        /// The file.
        file: String,
        /// Line of the header.
        line: usize,
        /// The column meant.
        column: &'static str,
        /// The first header cell.
        first: String,
        /// The second header cell.
        second: String,
    },
    /// More than [`MAX_COLUMNS`] header cells.
    #[error("{file}:{line}: the header has more than {max} columns")]
    TooManyColumns {
        /// The file.
        file: String,
        /// Line of the header.
        line: usize,
        /// The limit.
        max: usize,
    },
    /// More than [`MAX_ROWS`] rows.
    #[error("{file}: the ledger has more than {max} rows")]
    TooManyRows {
        /// The file.
        file: String,
        /// The limit.
        max: usize,
    },
    /// The CSV reader failed.
    #[error("{file}:{line}: cannot read the CSV: {message}")]
    Csv {
        /// The file.
        file: String,
        /// Line where it failed.
        line: usize,
        /// What the reader said.
        message: String,
    },
}

/// A loaded ledger.
#[derive(Clone, Debug)]
pub struct Ledger {
    /// The file, as named in messages.
    pub source: String,
    /// [`ENCODING_UTF8`] or [`ENCODING_SHIFT_JIS`].
    pub encoding: &'static str,
    /// The rows read, in file order.
    pub entries: Vec<Entry>,
    /// The rows that could not be read.
    pub errors: Vec<RowError>,
    /// Header cells that name no known column, as written.
    pub ignored_columns: Vec<String>,
}

/// One observed external connection point, as far as the ledger can judge it.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// The internal endpoint.
    pub internal: IpAddr,
    /// The service.
    pub service: Service,
    /// Far-side addresses seen.
    pub far_ips: &'a [IpAddr],
    /// Far-side DNS names seen (SNI, certificate names, resolved names).
    pub far_names: &'a [String],
    /// The relay cloud, when the service goes through one (e.g. "TeamViewer").
    pub far_cloud: Option<&'a str>,
    /// The vendor, when evidence names one.
    pub vendor: Option<&'a str>,
    /// Unix seconds [start, end] of each session.
    pub sessions: &'a [(i64, i64)],
    /// Seconds east of UTC of the hospital's local time (Japan: 32400).
    pub utc_offset_secs: i32,
}

/// What the ledger says about an observed point. `entry` indexes [`Ledger::entries`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reconciled {
    /// An entry matches in every respect.
    Registered {
        /// The entry.
        entry: usize,
    },
    /// An entry for the internal host matches in part.
    Drifted {
        /// The closest entry.
        entry: usize,
        /// What differs, sorted.
        reasons: Vec<Drift>,
    },
    /// No entry is close.
    Unregistered,
}

/// How an observed point differs from its closest ledger entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Drift {
    /// The far end is not the one registered.
    FarEnd,
    /// The service is not the one registered.
    Service,
    /// A session ran (at least partly) outside the maintenance windows.
    OutsideWindow,
}

impl Drift {
    /// "far_end", "service" or "outside_window".
    pub fn as_str(self) -> &'static str {
        match self {
            Drift::FarEnd => "far_end",
            Drift::Service => "service",
            Drift::OutsideWindow => "outside_window",
        }
    }
}

impl Ledger {
    /// Reads and parses a ledger file.
    pub fn load(path: &Path) -> Result<Ledger, LedgerError> {
        let file = path.display().to_string();
        let read_err = |source| LedgerError::Read {
            file: file.clone(),
            source,
        };
        let f = std::fs::File::open(path).map_err(read_err)?;
        let mut bytes = Vec::new();
        // One byte past the cap tells "too big" without trusting the file's length.
        f.take(MAX_LEDGER_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        Ledger::parse(&file, &bytes)
    }

    /// Parses ledger bytes; `source` names the file in messages.
    pub fn parse(source: &str, bytes: &[u8]) -> Result<Ledger, LedgerError> {
        let file = || source.to_owned();
        if bytes.len() as u64 > MAX_LEDGER_BYTES {
            return Err(LedgerError::TooBig {
                file: file(),
                max: MAX_LEDGER_BYTES,
            });
        }
        let (text, encoding) = decode(bytes).map_err(|detail| LedgerError::Encoding {
            file: file(),
            detail,
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut ledger = Ledger {
            source: file(),
            encoding,
            entries: Vec::new(),
            errors: Vec::new(),
            ignored_columns: Vec::new(),
        };
        let mut header: Option<Header> = None;
        let mut rows = 0usize;
        let mut record = csv::StringRecord::new();
        let mut lines = LineCounter::new(text.as_bytes());
        loop {
            let more = reader
                .read_record(&mut record)
                .map_err(|e| LedgerError::Csv {
                    file: file(),
                    line: lines.line_at(e.position().map_or(0, |p| p.byte())),
                    message: e.to_string(),
                })?;
            if !more {
                break;
            }
            let line = lines.line_at(record.position().map_or(0, |p| p.byte()));
            let first = record.get(0).unwrap_or("").trim_start();
            if record.iter().all(|c| c.trim().is_empty()) || first.starts_with('#') {
                continue;
            }
            let Some(h) = &header else {
                let h = Header::read(source, line, &record)?;
                ledger.ignored_columns = h.ignored.clone();
                header = Some(h);
                continue;
            };
            rows += 1;
            if rows > MAX_ROWS {
                return Err(LedgerError::TooManyRows {
                    file: file(),
                    max: MAX_ROWS,
                });
            }
            match h.entry(line, &record) {
                Ok(e) => ledger.entries.push(e),
                Err(errs) => ledger.errors.extend(errs),
            }
        }
        if header.is_none() {
            return Err(LedgerError::Empty { file: file() });
        }
        Ok(ledger)
    }

    /// What the ledger says about an observed point.
    ///
    /// Candidates are the entries whose internal hosts hold the point's internal address.
    /// The first (by row) whose far end, service and windows all match registers it.
    /// Otherwise the candidate matching the far end or the service with the fewest
    /// differences (then the lowest row) is the drift; otherwise it is unregistered.
    pub fn reconcile(&self, o: &Observed<'_>) -> Reconciled {
        let mut best: Option<(usize, Vec<Drift>)> = None;
        for (i, e) in self.entries.iter().enumerate() {
            if !e.internal.iter().any(|h| h.contains(o.internal)) {
                continue;
            }
            let far = far_matches(&e.far_end, o);
            let service = e.services.is_empty() || e.services.contains(&o.service);
            let window = e.windows.is_empty()
                || o.sessions
                    .iter()
                    .all(|&(a, b)| covered_by_any(&e.windows, a, b, o.utc_offset_secs));
            if far && service && window {
                return Reconciled::Registered { entry: i };
            }
            if !far && !service {
                continue;
            }
            let reasons: Vec<Drift> = [
                (!far).then_some(Drift::FarEnd),
                (!service).then_some(Drift::Service),
                (!window).then_some(Drift::OutsideWindow),
            ]
            .into_iter()
            .flatten()
            .collect();
            if best.as_ref().is_none_or(|(_, r)| reasons.len() < r.len()) {
                best = Some((i, reasons));
            }
        }
        match best {
            Some((entry, reasons)) => Reconciled::Drifted { entry, reasons },
            None => Reconciled::Unregistered,
        }
    }

    /// Entries that no observed point matched; `matched` holds indexes into
    /// [`Ledger::entries`] (out-of-range ones are ignored).
    pub fn unseen<'a>(&'a self, matched: &[usize]) -> Vec<&'a Entry> {
        let mut seen = vec![false; self.entries.len()];
        for &i in matched {
            if let Some(s) = seen.get_mut(i) {
                *s = true;
            }
        }
        self.entries
            .iter()
            .zip(seen)
            .filter(|(_, s)| !s)
            .map(|(e, _)| e)
            .collect()
    }
}

fn far_matches(specs: &[FarSpec], o: &Observed<'_>) -> bool {
    if specs.is_empty() {
        return true;
    }
    let names: Vec<String> = o
        .far_names
        .iter()
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    let words = [o.far_cloud, o.vendor];
    let mut has_ip_spec = false;
    for s in specs {
        match s {
            FarSpec::Domain(d) => {
                if names.iter().any(|n| in_domain(n, d)) {
                    return true;
                }
            }
            FarSpec::Cloud(c) => {
                if words
                    .iter()
                    .flatten()
                    .any(|w| w.trim().eq_ignore_ascii_case(c))
                {
                    return true;
                }
            }
            FarSpec::Net(_) | FarSpec::Range(..) => has_ip_spec = true,
        }
    }
    has_ip_spec
        && !o.far_ips.is_empty()
        && o.far_ips
            .iter()
            .all(|ip| specs.iter().any(|s| s.contains_ip(*ip) == Some(true)))
}

/// The name itself or a subdomain of it (both lower case).
fn in_domain(name: &str, domain: &str) -> bool {
    match name.strip_suffix(domain) {
        Some("") => true,
        Some(prefix) => prefix.ends_with('.'),
        None => false,
    }
}

/// Line numbers from byte offsets of record starts, counted forward once.
///
/// `csv::Position::line` lags behind on CRLF files (BurntSushi/rust-csv#395), and Excel
/// writes CRLF, so lines are counted here. A line ends at `\n`, `\r\n` or a lone `\r`.
struct LineCounter<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a [u8]) -> LineCounter<'a> {
        LineCounter {
            text,
            pos: 0,
            line: 1,
        }
    }

    /// The line of the first byte at or after `offset` that is not a line end (a record
    /// never starts with one; the reader may leave the `\n` of a `\r\n` unconsumed).
    /// Offsets must not decrease between calls.
    fn line_at(&mut self, offset: u64) -> usize {
        let mut target = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        while matches!(self.text.get(target), Some(b'\r' | b'\n')) {
            target += 1;
        }
        while self.pos < target {
            match self.text.get(self.pos) {
                Some(b'\n') => self.line += 1,
                Some(b'\r') if self.text.get(self.pos + 1) != Some(&b'\n') => self.line += 1,
                _ => {}
            }
            self.pos += 1;
        }
        self.line
    }
}

/// UTF-8 (BOM dropped) when valid, else Shift_JIS; the error says what was found.
fn decode(bytes: &[u8]) -> Result<(Cow<'_, str>, &'static str), String> {
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return Err("the file is UTF-16 (Excel's \"Unicode text\"), which is not read".into());
    }
    let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let body_offset = bytes.len() - body.len();
    let line_of = |pos: usize| {
        bytes
            .get(..pos)
            .map_or(0, |b| b.iter().filter(|c| **c == b'\n').count())
            + 1
    };
    let utf8_error = match std::str::from_utf8(body) {
        Ok(s) => return Ok((Cow::Borrowed(s), ENCODING_UTF8)),
        Err(e) => body_offset + e.valid_up_to(),
    };
    if body_offset > 0 {
        return Err(format!(
            "the file starts as UTF-8 (it has a BOM) but has an invalid byte on line {}",
            line_of(utf8_error)
        ));
    }
    if let Some(s) =
        encoding_rs::SHIFT_JIS.decode_without_bom_handling_and_without_replacement(bytes)
    {
        return Ok((s, ENCODING_SHIFT_JIS));
    }
    Err(format!(
        "the file is neither UTF-8 (invalid byte on line {}) nor Shift_JIS (invalid byte on line {})",
        line_of(utf8_error),
        line_of(first_bad_shift_jis(bytes)),
    ))
}

/// Offset of the first byte sequence Shift_JIS cannot decode. Line feeds are never part
/// of a two-byte Shift_JIS character (trail bytes are 0x40-0xFC), so counting them before
/// the offset gives the line.
fn first_bad_shift_jis(bytes: &[u8]) -> usize {
    let mut decoder = encoding_rs::SHIFT_JIS.new_decoder_without_bom_handling();
    let mut out = [0u8; 4096];
    let mut pos = 0usize;
    loop {
        let rest = bytes.get(pos..).unwrap_or(&[]);
        let (result, read, _) = decoder.decode_to_utf8_without_replacement(rest, &mut out, true);
        pos = pos.saturating_add(read);
        match result {
            encoding_rs::DecoderResult::InputEmpty => return bytes.len(),
            encoding_rs::DecoderResult::OutputFull => {}
            encoding_rs::DecoderResult::Malformed(bad, after) => {
                return pos.saturating_sub(usize::from(bad) + usize::from(after));
            }
        }
    }
}

/// The header: which field each position holds.
struct Header {
    /// The column each position means, with its header cell as written.
    columns: Vec<Option<(Column, String)>>,
    /// Unknown header cells, as written.
    ignored: Vec<String>,
    line: usize,
}

impl Header {
    fn read(source: &str, line: usize, record: &csv::StringRecord) -> Result<Header, LedgerError> {
        if record.len() > MAX_COLUMNS {
            return Err(LedgerError::TooManyColumns {
                file: source.to_owned(),
                line,
                max: MAX_COLUMNS,
            });
        }
        let mut columns: Vec<Option<(Column, String)>> = Vec::with_capacity(record.len());
        let mut ignored = Vec::new();
        for cell in record {
            let written = cell.trim();
            let Some(col) = Column::from_header(written) else {
                if !written.is_empty() {
                    ignored.push(written.to_owned());
                }
                columns.push(None);
                continue;
            };
            if let Some((_, first)) = columns.iter().flatten().find(|(c, _)| *c == col) {
                return Err(LedgerError::DuplicateColumn {
                    file: source.to_owned(),
                    line,
                    column: col.names().first().copied().unwrap_or("?"),
                    first: first.clone(),
                    second: written.to_owned(),
                });
            }
            columns.push(Some((col, written.to_owned())));
        }
        if columns.iter().all(Option::is_none) {
            return Err(LedgerError::NoHeader {
                file: source.to_owned(),
                line,
            });
        }
        if !columns
            .iter()
            .flatten()
            .any(|(c, _)| *c == Column::Internal)
        {
            return Err(LedgerError::NoInternalColumn {
                file: source.to_owned(),
                line,
            });
        }
        Ok(Header {
            columns,
            ignored,
            line,
        })
    }

    /// The entry of one data row, or every problem found in it.
    fn entry(&self, row: usize, record: &csv::StringRecord) -> Result<Entry, Vec<RowError>> {
        let want = self.columns.len();
        let extra_filled = record.iter().skip(want).any(|c| !c.trim().is_empty());
        if record.len() < want || extra_filled {
            return Err(vec![RowError {
                row,
                column: None,
                message: format!(
                    "expected {want} fields as in the header on line {}, found {}; a cell that contains a comma or a line break must be in double quotes",
                    self.line,
                    record.len()
                ),
            }]);
        }
        let mut errors = Vec::new();
        let mut e = Entry {
            id: String::new(),
            row,
            vendor: String::new(),
            system: String::new(),
            internal: Vec::new(),
            far_end: Vec::new(),
            services: Vec::new(),
            windows: Vec::new(),
            contract: String::new(),
            note: String::new(),
        };
        for (cell, column) in record.iter().zip(&self.columns) {
            let Some((col, name)) = column else { continue };
            let cell = cell.trim();
            let fail = |message: String| RowError {
                row,
                column: Some(name.clone()),
                message,
            };
            if cell.len() > MAX_CELL_BYTES {
                errors.push(fail(format!(
                    "the cell is longer than {MAX_CELL_BYTES} bytes (is a double quote left open?)"
                )));
                continue;
            }
            let result = match col {
                Column::Id => {
                    e.id = cell.to_owned();
                    Ok(())
                }
                Column::Vendor => {
                    e.vendor = cell.to_owned();
                    Ok(())
                }
                Column::System => {
                    e.system = cell.to_owned();
                    Ok(())
                }
                Column::Contract => {
                    e.contract = cell.to_owned();
                    Ok(())
                }
                Column::Note => {
                    e.note = cell.to_owned();
                    Ok(())
                }
                Column::Internal => parse_list(cell, parse_host).map(|v| e.internal = v),
                Column::FarEnd => parse_list(cell, parse_far).map(|v| e.far_end = v),
                Column::Service => parse_services(cell).map(|v| e.services = v),
                Column::Window => window::parse_windows(cell).map(|v| e.windows = v),
            };
            if let Err(m) = result {
                errors.push(fail(m));
            }
        }
        if e.internal.is_empty() && errors.is_empty() {
            let name = self
                .columns
                .iter()
                .flatten()
                .find(|(c, _)| *c == Column::Internal)
                .map(|(_, n)| n.clone());
            errors.push(RowError {
                row,
                column: name,
                message: "the internal host is missing; give its address, network or range, e.g. 10.1.2.3, 10.1.2.0/24 or 10.1.2.1-10.1.2.9".into(),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        if e.id.is_empty() {
            e.id = format!("row {row}");
        }
        Ok(e)
    }
}

/// Splits a cell into items (`;`, `、`, `,`, `/`-free whitespace) after folding full-width
/// forms; spaces around a range's dash are dropped first, so "a - b" stays one item.
fn split_items(cell: &str) -> Vec<String> {
    let folded = window::fold(cell);
    let mut joined = String::with_capacity(folded.len());
    let mut after_dash = false;
    for c in folded.chars() {
        if c == '-' {
            joined.truncate(joined.trim_end().len());
            after_dash = true;
        } else if c.is_whitespace() && after_dash {
            continue;
        } else {
            after_dash = false;
        }
        joined.push(c);
    }
    joined
        .split(|c: char| matches!(c, ';' | '、' | ',') || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_list<T>(cell: &str, one: fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    let items = split_items(cell);
    if items.len() > MAX_ITEMS_PER_CELL {
        return Err(format!("more than {MAX_ITEMS_PER_CELL} items in one cell"));
    }
    items.iter().map(|s| one(s)).collect()
}

const HOST_EXAMPLE: &str = "e.g. 10.1.2.3, 10.1.2.0/24 or 10.1.2.1-10.1.2.9";

fn parse_range(a: &str, b: &str, item: &str) -> Result<(IpAddr, IpAddr), String> {
    let (Ok(x), Ok(y)) = (a.parse::<IpAddr>(), b.parse::<IpAddr>()) else {
        return Err(format!("`{item}` is not an address range ({HOST_EXAMPLE})"));
    };
    if x.is_ipv4() != y.is_ipv4() {
        return Err(format!(
            "`{item}`: both ends of a range must be IPv4 or both IPv6"
        ));
    }
    if Addr::from(x) > Addr::from(y) {
        return Err(format!(
            "`{item}`: the range's first address is after its last"
        ));
    }
    Ok((x, y))
}

fn parse_net(item: &str) -> Result<Cidr, String> {
    Cidr::parse(item).map_err(|e| {
        let addr = item.split_once('/').map_or(item, |(a, _)| a);
        if item.contains('/') && addr.parse::<IpAddr>().is_ok() {
            e
        } else {
            format!("`{item}` is not an IP address, network or range ({HOST_EXAMPLE})")
        }
    })
}

/// An "a-b" item with an address on either side is meant as a range.
fn split_range(item: &str) -> Option<(&str, &str)> {
    item.split_once('-')
        .filter(|(a, b)| a.parse::<IpAddr>().is_ok() || b.parse::<IpAddr>().is_ok())
}

fn parse_host(item: &str) -> Result<HostSpec, String> {
    match split_range(item) {
        Some((a, b)) => parse_range(a, b, item).map(|(a, b)| HostSpec::Range(a, b)),
        None => parse_net(item).map(HostSpec::Net),
    }
}

fn parse_far(item: &str) -> Result<FarSpec, String> {
    if let Some((a, b)) = split_range(item) {
        return parse_range(a, b, item).map(|(a, b)| FarSpec::Range(a, b));
    }
    if item.contains('/') || item.parse::<IpAddr>().is_ok() {
        return parse_net(item).map(FarSpec::Net);
    }
    if item.contains(':') {
        return Err(format!(
            "`{item}` is not an address, network, range, DNS name or service word (write no port)"
        ));
    }
    if item.contains('.') {
        return parse_domain(item).map(FarSpec::Domain);
    }
    Ok(FarSpec::Cloud(item.to_owned()))
}

/// "example.com", "*.example.com" or "example.com.": the lower-case name.
fn parse_domain(item: &str) -> Result<String, String> {
    let name = item.strip_prefix("*.").unwrap_or(item);
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name.contains('*') {
        return Err(format!(
            "`{item}`: a wildcard may only be the first label, e.g. *.example.com"
        ));
    }
    if !name.is_ascii() {
        return Err(format!(
            "`{item}`: write an internationalised name in its xn-- form"
        ));
    }
    let labels_ok = name.len() <= MAX_DNS_NAME
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= MAX_DNS_LABEL
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !labels_ok {
        return Err(format!(
            "`{item}` is not a DNS name (expected e.g. vpn.example.co.jp or *.example.com)"
        ));
    }
    // "10.0.0.256" is a mistyped address, not a name.
    if name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "`{item}` is not a valid IP address ({HOST_EXAMPLE})"
        ));
    }
    Ok(name)
}

/// Names a ledger may use besides the vocabulary's own.
const SERVICE_ALIASES: &[(&str, Service)] = &[
    ("ipsec-vpn", Service::Ipsec),
    ("ipsecvpn", Service::Ipsec),
    ("sslvpn", Service::SslVpn),
    ("リモートデスクトップ", Service::Rdp),
    ("remote-desktop", Service::Rdp),
    ("remotedesktop", Service::Rdp),
];

fn parse_services(cell: &str) -> Result<Vec<Service>, String> {
    let items: Vec<String> = split_items(cell)
        .iter()
        .flat_map(|s| s.split(['/', '・']))
        .filter(|s| !s.is_empty())
        .map(|s| s.to_lowercase().replace('_', "-"))
        .collect();
    if items.len() > MAX_ITEMS_PER_CELL {
        return Err(format!("more than {MAX_ITEMS_PER_CELL} items in one cell"));
    }
    let mut out = Vec::new();
    for item in &items {
        let found = Service::parse(item).or_else(|| {
            SERVICE_ALIASES
                .iter()
                .find(|(a, _)| a == item)
                .map(|(_, s)| *s)
        });
        let Some(s) = found else {
            let names: Vec<&str> = Service::ALL.iter().map(|s| s.as_str()).collect();
            return Err(format!(
                "unknown service `{item}`; expected one of: {} (or リモートデスクトップ, IPsec-VPN)",
                names.join(", ")
            ));
        };
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const JST: i32 = 9 * 3600;
    /// 2025-06-02 (Monday) 00:00 in Japan.
    const MONDAY: i64 = 1_748_790_000;

    fn at(day: i64, hour: i64) -> i64 {
        MONDAY + day * 86_400 + hour * 3600
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn load(text: &str) -> Ledger {
        Ledger::parse("台帳.csv", text.as_bytes()).unwrap()
    }

    fn messages(l: &Ledger) -> Vec<String> {
        l.errors
            .iter()
            .map(|e| e.display(&l.source).to_string())
            .collect()
    }

    const JA: &str =
        "管理番号,保守業者,システム,内部ホスト,接続先,サービス,保守時間帯,保守契約,備考\n\
        A-1,富士見メディカル,PACS,10.1.2.3,203.0.113.0/24,IPsec,平日 9:00-18:00,年間保守,\n\
        A-2,北海電子,電子カルテ,10.1.3.0/24,*.vendor.example.jp,SSL-VPN,,,夜間対応あり\n";

    #[test]
    fn japanese_header_utf8_without_bom() {
        let l = load(JA);
        assert_eq!(l.encoding, "UTF-8");
        assert_eq!(messages(&l), Vec::<String>::new());
        assert_eq!(l.entries.len(), 2);
        let a = &l.entries[0];
        assert_eq!(a.id, "A-1");
        assert_eq!(a.row, 2);
        assert_eq!(a.vendor, "富士見メディカル");
        assert_eq!(a.system, "PACS");
        assert_eq!(
            a.internal,
            vec![HostSpec::Net(Cidr::parse("10.1.2.3").unwrap())]
        );
        assert_eq!(a.services, vec![Service::Ipsec]);
        assert_eq!(a.windows[0].to_string(), "Mon-Fri 09:00-18:00");
        assert_eq!(a.contract, "年間保守");
        let b = &l.entries[1];
        assert_eq!(b.row, 3);
        assert_eq!(b.far_end, vec![FarSpec::Domain("vendor.example.jp".into())]);
        assert_eq!(b.services, vec![Service::SslVpn]);
        assert!(b.windows.is_empty());
        assert_eq!(b.note, "夜間対応あり");
        assert!(l.ignored_columns.is_empty());
    }

    #[test]
    fn utf8_with_bom() {
        let mut bytes = UTF8_BOM.to_vec();
        bytes.extend_from_slice(JA.as_bytes());
        let l = Ledger::parse("bom.csv", &bytes).unwrap();
        assert_eq!(l.encoding, "UTF-8");
        assert_eq!(l.entries.len(), 2);
        // The BOM must not stick to the first header cell.
        assert_eq!(l.entries[0].id, "A-1");
        assert!(l.ignored_columns.is_empty());
    }

    #[test]
    fn shift_jis() {
        let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(JA);
        assert!(!unmappable);
        assert!(
            std::str::from_utf8(&bytes).is_err(),
            "fixture must not be UTF-8"
        );
        let l = Ledger::parse("sjis.csv", &bytes).unwrap();
        assert_eq!(l.encoding, "Shift_JIS");
        assert_eq!(l.entries.len(), 2);
        assert_eq!(l.entries[0].vendor, "富士見メディカル");
        assert_eq!(l.entries[1].note, "夜間対応あり");
        // Windows-31J extensions (NEC special characters) decode too.
        let (ext, _, _) = encoding_rs::SHIFT_JIS.encode("内部,備考\n10.0.0.1,①㈱\n");
        let l = Ledger::parse("sjis.csv", &ext).unwrap();
        assert_eq!(l.entries[0].note, "①㈱");
    }

    #[test]
    fn english_header_loosely_matched() {
        let l = load(
            " ID , Vendor,SYSTEM,Internal,Far End,service,Window,Contract,Note,Owner,\n\
             r1,Acme,CT,10.0.0.5,TeamViewer,TeamViewer,Sat 10:00-12:00,,,IT,\n",
        );
        assert_eq!(messages(&l), Vec::<String>::new());
        assert_eq!(l.ignored_columns, vec!["Owner".to_string()]);
        let e = &l.entries[0];
        assert_eq!(e.id, "r1");
        assert_eq!(e.far_end, vec![FarSpec::Cloud("TeamViewer".into())]);
        assert_eq!(e.services, vec![Service::Teamviewer]);
        let l =
            load("番号,業者,機器,院内機器,相手先,接続方式,時間帯,契約\n1,x,y,10.0.0.1,,rdp,,\n");
        assert_eq!(l.entries.len(), 1);
        let l = load("far_end,内部 (IP),サービス（方式）\n,10.0.0.1,vnc\n");
        assert_eq!(l.entries[0].services, vec![Service::Vnc]);
        assert_eq!(l.entries[0].id, "row 2");
    }

    #[test]
    fn bad_rows_are_reported_by_line_and_column_while_others_load() {
        let l = load(
            "# 外部接続点台帳 2025年度\n\
             id,vendor,internal,far_end,service,window\n\
             ok1,a,10.0.0.1,198.51.100.7,rdp,\n\
             \n\
             # comment row\n\
             bad-ip,b,10.0.0.300,,rdp,\n\
             bad-svc,c,10.0.0.2,,remote,\n\
             bad-win,d,10.0.0.3,,ssh,土日祝 10:00-12:00\n\
             short,e,10.0.0.4\n\
             no-internal,f,,,ssh,\n\
             ok2,g,10.0.0.5,,ssh,\n",
        );
        let ids: Vec<&str> = l.entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, vec!["ok1", "ok2"]);
        assert_eq!(l.entries[0].row, 3);
        assert_eq!(l.entries[1].row, 11);
        let m = messages(&l);
        assert_eq!(m.len(), 5, "{m:#?}");
        assert!(
            m[0].starts_with("台帳.csv:6: column `internal`: `10.0.0.300`"),
            "{}",
            m[0]
        );
        assert!(
            m[1].starts_with("台帳.csv:7: column `service`: unknown service `remote`"),
            "{}",
            m[1]
        );
        assert!(
            m[1].contains("rdp, vnc, ssh"),
            "names the vocabulary: {}",
            m[1]
        );
        assert!(
            m[2].starts_with("台帳.csv:8: column `window`: "),
            "{}",
            m[2]
        );
        assert!(m[2].contains("holiday"), "{}", m[2]);
        assert!(
            m[3].starts_with("台帳.csv:9: expected 6 fields"),
            "{}",
            m[3]
        );
        assert!(
            m[4].starts_with("台帳.csv:10: column `internal`: the internal host is missing"),
            "{}",
            m[4]
        );
    }

    #[test]
    fn every_bad_cell_of_a_row_is_reported() {
        let l = load("内部ホスト,サービス,保守時間帯\nfoo,bar,baz\n");
        let cols: Vec<Option<&str>> = l.errors.iter().map(|e| e.column.as_deref()).collect();
        assert_eq!(
            cols,
            vec![Some("内部ホスト"), Some("サービス"), Some("保守時間帯")]
        );
        assert!(l.errors.iter().all(|e| e.row == 2));
    }

    #[test]
    fn quoted_cells_keep_line_numbers() {
        let l = load(
            "id,internal,far_end,note\n\
             q1,\"10.0.0.1, 10.0.0.2\",,\"line one\nline two, with comma\"\n\
             q2,10.0.0.3,,\"say \"\"hi\"\"\"\n\
             q3,10.0.0.x,,\n",
        );
        assert_eq!(l.entries.len(), 2);
        assert_eq!(l.entries[0].row, 2);
        assert_eq!(l.entries[0].internal.len(), 2);
        assert_eq!(l.entries[0].note, "line one\nline two, with comma");
        assert_eq!(l.entries[1].row, 4, "the quoted line break counts");
        assert_eq!(l.entries[1].note, "say \"hi\"");
        assert_eq!(l.errors.len(), 1);
        assert_eq!(l.errors[0].row, 5);
        // CRLF line ends, as Excel writes them.
        let l =
            load("id,internal\r\na,10.0.0.1\r\n\r\nb,\"10.0.0.2\r\n10.0.0.3\"\r\nc,10.0.0.4\r\n");
        let rows: Vec<usize> = l.entries.iter().map(|e| e.row).collect();
        assert_eq!(rows, vec![2, 4, 6]);
    }

    #[test]
    fn whole_file_errors_name_the_file() {
        let e = Ledger::parse("保守台帳.csv", "id,vendor,far_end\n1,a,b\n".as_bytes()).unwrap_err();
        assert!(
            matches!(e, LedgerError::NoInternalColumn { line: 1, .. }),
            "{e:?}"
        );
        let m = e.to_string();
        assert!(m.starts_with("保守台帳.csv:1: "), "{m}");
        assert!(m.contains("internal"), "{m}");

        let e = Ledger::parse("x.csv", b"").unwrap_err();
        assert!(matches!(e, LedgerError::Empty { .. }));
        assert!(e.to_string().starts_with("x.csv: "));
        let e = Ledger::parse("x.csv", b"# only a comment\n\n,,\n").unwrap_err();
        assert!(matches!(e, LedgerError::Empty { .. }));

        let e = Ledger::parse("x.csv", b"10.0.0.1,rdp\n").unwrap_err();
        assert!(matches!(e, LedgerError::NoHeader { line: 1, .. }), "{e:?}");
        assert!(
            e.to_string().contains("管理番号"),
            "shows an example header: {e}"
        );

        let e = Ledger::parse("x.csv", "internal,内部ホスト\n".as_bytes()).unwrap_err();
        assert!(e.to_string().contains("`internal` and `内部ホスト`"), "{e}");

        let e = Ledger::parse("x.csv", b"\xFF\xFEi\0d\0").unwrap_err();
        assert!(e.to_string().contains("UTF-16"), "{e}");

        // 0xFD is neither UTF-8 nor Shift_JIS.
        let e = Ledger::parse("x.csv", b"internal\n10.0.0.1\n\xFD\n").unwrap_err();
        let m = e.to_string();
        assert!(m.starts_with("x.csv: the file is neither UTF-8"), "{m}");
        assert!(m.contains("line 3"), "{m}");

        let e = Ledger::parse("x.csv", b"\xEF\xBB\xBFinternal\n\x82\xA0\n").unwrap_err();
        assert!(e.to_string().contains("BOM"), "{e}");
        assert!(e.to_string().contains("line 2"), "{e}");

        let big = vec![b' '; usize::try_from(MAX_LEDGER_BYTES).unwrap() + 1];
        let e = Ledger::parse("x.csv", &big).unwrap_err();
        assert!(matches!(e, LedgerError::TooBig { .. }));
    }

    #[test]
    fn too_many_rows() {
        let mut text = String::from("internal\n");
        for _ in 0..=MAX_ROWS {
            text.push_str("10.0.0.1\n");
        }
        let e = Ledger::parse("x.csv", text.as_bytes()).unwrap_err();
        assert!(matches!(e, LedgerError::TooManyRows { .. }), "{e:?}");
    }

    #[test]
    fn long_cell_is_a_row_error() {
        let text = format!(
            "internal,note\n10.0.0.1,{}\n10.0.0.2,ok\n",
            "x".repeat(MAX_CELL_BYTES + 1)
        );
        let l = load(&text);
        assert_eq!(l.entries.len(), 1);
        assert_eq!(l.errors[0].row, 2);
        assert_eq!(l.errors[0].column.as_deref(), Some("note"));
    }

    #[test]
    fn load_reads_a_file_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.csv");
        std::fs::write(&path, JA).unwrap();
        let l = Ledger::load(&path).unwrap();
        assert_eq!(l.source, path.display().to_string());
        assert_eq!(l.entries.len(), 2);
        let missing = dir.path().join("missing.csv");
        let e = Ledger::load(&missing).unwrap_err();
        assert!(
            e.to_string().starts_with(&missing.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn cell_lists_and_forms() {
        let l = load(
            "internal,far_end,service\n\
             \"10.0.0.1;10.0.0.2、10.0.1.0/24 10.0.2.1 - 10.0.2.9\",\"vpn.example.com. 198.51.100.1～198.51.100.20 2001:db8::/32 AnyDesk\",\"RDP/VNC、IPsec-VPN,リモートデスクトップ ssl_vpn\"\n\
             １０．０．０．１,,ＲＤＰ\n",
        );
        assert_eq!(messages(&l), Vec::<String>::new());
        let e = &l.entries[0];
        let internal: Vec<String> = e.internal.iter().map(ToString::to_string).collect();
        assert_eq!(
            internal,
            ["10.0.0.1", "10.0.0.2", "10.0.1.0/24", "10.0.2.1-10.0.2.9"]
        );
        let far: Vec<String> = e.far_end.iter().map(ToString::to_string).collect();
        assert_eq!(
            far,
            [
                "vpn.example.com",
                "198.51.100.1-198.51.100.20",
                "2001:db8::/32",
                "AnyDesk"
            ]
        );
        assert_eq!(
            e.services,
            vec![Service::Rdp, Service::Vnc, Service::Ipsec, Service::SslVpn]
        );
        assert_eq!(l.entries[1].internal[0].to_string(), "10.0.0.1");
        assert_eq!(l.entries[1].services, vec![Service::Rdp]);
    }

    #[test]
    fn bad_addresses_say_why() {
        for (cell, want) in [
            ("10.0.0.9-10.0.0.1", "first address is after its last"),
            ("10.0.0.1-2001:db8::1", "IPv4 or both IPv6"),
            ("10.0.0.0/33", "prefix length"),
            ("pacs-server", "not an IP address"),
        ] {
            let l = load(&format!("internal\n\"{cell}\"\n"));
            assert!(
                l.errors[0].message.contains(want),
                "{cell}: {}",
                l.errors[0].message
            );
        }
        for (cell, want) in [
            ("198.51.100.7:443", "write no port"),
            ("203.0.113.300", "not a valid IP address"),
            ("vpn.*.example.com", "wildcard"),
            ("bad..example.com", "not a DNS name"),
            ("病院.jp", "xn--"),
        ] {
            let l = load(&format!("internal,far_end\n10.0.0.1,\"{cell}\"\n"));
            assert_eq!(l.errors[0].column.as_deref(), Some("far_end"));
            assert!(
                l.errors[0].message.contains(want),
                "{cell}: {}",
                l.errors[0].message
            );
        }
    }

    #[test]
    fn entries_serialize_as_readable_strings() {
        let l = load("id,internal,far_end,service,window\nx,10.0.0.0/24,*.example.com,ssl-vpn,平日 9:00-17:00\n");
        let json = serde_json::to_value(&l.entries[0]).unwrap();
        assert_eq!(json["internal"], serde_json::json!(["10.0.0.0/24"]));
        assert_eq!(json["far_end"], serde_json::json!(["example.com"]));
        assert_eq!(json["services"], serde_json::json!(["ssl-vpn"]));
        assert_eq!(json["windows"], serde_json::json!(["Mon-Fri 09:00-17:00"]));
        assert_eq!(
            serde_json::to_value(Drift::OutsideWindow).unwrap(),
            "outside_window"
        );
        assert_eq!(Drift::FarEnd.as_str(), "far_end");
    }

    const RECONCILE: &str = "id,internal,far_end,service,window\n\
        vpn,10.1.0.5,203.0.113.0/24,ipsec,平日 9:00-18:00\n\
        tv,10.1.0.6,TeamViewer,teamviewer,\n\
        web,10.1.0.7,*.vendor.example.jp,ssl-vpn,\n\
        any,10.1.0.8,,rdp,\n";

    fn observed<'a>(
        internal: &str,
        service: Service,
        far_ips: &'a [IpAddr],
        far_names: &'a [String],
        sessions: &'a [(i64, i64)],
    ) -> Observed<'a> {
        Observed {
            internal: ip(internal),
            service,
            far_ips,
            far_names,
            far_cloud: None,
            vendor: None,
            sessions,
            utc_offset_secs: JST,
        }
    }

    #[test]
    fn reconcile_registered_and_drifted() {
        let l = load(RECONCILE);
        let far = [ip("203.0.113.10")];
        let office = [(at(0, 10), at(0, 11))];
        let o = observed("10.1.0.5", Service::Ipsec, &far, &[], &office);
        assert_eq!(l.reconcile(&o), Reconciled::Registered { entry: 0 });

        let elsewhere = [ip("203.0.113.10"), ip("192.0.2.1")];
        let o = observed("10.1.0.5", Service::Ipsec, &elsewhere, &[], &office);
        assert_eq!(
            l.reconcile(&o),
            Reconciled::Drifted {
                entry: 0,
                reasons: vec![Drift::FarEnd]
            },
            "every far address must be registered"
        );

        let o = observed("10.1.0.5", Service::SslVpn, &far, &[], &office);
        assert_eq!(
            l.reconcile(&o),
            Reconciled::Drifted {
                entry: 0,
                reasons: vec![Drift::Service]
            }
        );

        // Saturday, and a weekday session running past 18:00.
        for late in [[(at(5, 10), at(5, 11))], [(at(1, 17), at(1, 19))]] {
            let o = observed("10.1.0.5", Service::Ipsec, &far, &[], &late);
            assert_eq!(
                l.reconcile(&o),
                Reconciled::Drifted {
                    entry: 0,
                    reasons: vec![Drift::OutsideWindow]
                }
            );
        }

        let saturday = [(at(5, 10), at(5, 11))];
        let o = observed("10.1.0.5", Service::SslVpn, &far, &[], &saturday);
        assert_eq!(
            l.reconcile(&o),
            Reconciled::Drifted {
                entry: 0,
                reasons: vec![Drift::Service, Drift::OutsideWindow]
            }
        );
    }

    #[test]
    fn reconcile_unregistered() {
        let l = load(RECONCILE);
        let far = [ip("192.0.2.1")];
        // Unknown internal host.
        let o = observed("10.9.9.9", Service::Ipsec, &far, &[], &[]);
        assert_eq!(l.reconcile(&o), Reconciled::Unregistered);
        // Known host, but neither far end nor service match.
        let o = observed("10.1.0.5", Service::Rdp, &far, &[], &[]);
        assert_eq!(l.reconcile(&o), Reconciled::Unregistered);
        // No far address seen cannot match an address-only far end.
        let o = observed("10.1.0.5", Service::Rdp, &[], &[], &[]);
        assert_eq!(l.reconcile(&o), Reconciled::Unregistered);
    }

    #[test]
    fn reconcile_empty_far_end_is_any() {
        let l = load(RECONCILE);
        let far = [ip("192.0.2.1")];
        let sunday_night = [(at(6, 3), at(6, 4))];
        let o = observed("10.1.0.8", Service::Rdp, &far, &[], &sunday_night);
        assert_eq!(l.reconcile(&o), Reconciled::Registered { entry: 3 });
    }

    #[test]
    fn reconcile_cloud_word() {
        let l = load(RECONCILE);
        let mut o = observed("10.1.0.6", Service::Teamviewer, &[], &[], &[]);
        o.far_cloud = Some("teamviewer");
        assert_eq!(l.reconcile(&o), Reconciled::Registered { entry: 1 });
        o.far_cloud = None;
        o.vendor = Some("TeamViewer");
        assert_eq!(l.reconcile(&o), Reconciled::Registered { entry: 1 });
        o.vendor = Some("AnyDesk");
        assert_eq!(
            l.reconcile(&o),
            Reconciled::Drifted {
                entry: 1,
                reasons: vec![Drift::FarEnd]
            }
        );
    }

    #[test]
    fn reconcile_domain_wildcard() {
        let l = load(RECONCILE);
        for (name, registered) in [
            ("vendor.example.jp", true),
            ("GW1.Vendor.Example.JP.", true),
            ("a.b.vendor.example.jp", true),
            ("evilvendor.example.jp", false),
            ("vendor.example.jp.evil.test", false),
        ] {
            let names = [name.to_string()];
            let o = observed("10.1.0.7", Service::SslVpn, &[], &names, &[]);
            let want = if registered {
                Reconciled::Registered { entry: 2 }
            } else {
                Reconciled::Drifted {
                    entry: 2,
                    reasons: vec![Drift::FarEnd],
                }
            };
            assert_eq!(l.reconcile(&o), want, "{name}");
        }
    }

    #[test]
    fn reconcile_prefers_first_registered_then_fewest_drifts() {
        let l = load(
            "id,internal,far_end,service,window\n\
             wide,10.2.0.0/16,,ssh,Sat 10:00-11:00\n\
             narrow,10.2.0.1,,rdp,\n\
             also,10.2.0.0/24,,rdp,\n",
        );
        let far = [ip("192.0.2.1")];
        let monday = [(at(0, 9), at(0, 10))];
        let o = observed("10.2.0.1", Service::Rdp, &far, &[], &monday);
        assert_eq!(l.reconcile(&o), Reconciled::Registered { entry: 1 });
        let o = observed("10.2.0.1", Service::Ssh, &far, &[], &monday);
        // "wide" fails only the window, the others only the service: the lowest row wins.
        assert_eq!(
            l.reconcile(&o),
            Reconciled::Drifted {
                entry: 0,
                reasons: vec![Drift::OutsideWindow]
            }
        );
        let o = observed("10.2.0.1", Service::Vnc, &far, &[], &monday);
        // "wide" fails two checks, "narrow" one.
        assert_eq!(
            l.reconcile(&o),
            Reconciled::Drifted {
                entry: 1,
                reasons: vec![Drift::Service]
            }
        );
    }

    /// The examples in docs/ledger.md load without errors.
    #[test]
    fn documented_examples_load() {
        let doc = include_str!("../../../docs/ledger.md");
        let blocks: Vec<&str> = doc
            .split("```csv\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .collect();
        assert_eq!(blocks.len(), 2);
        let ja = load(blocks[0]);
        assert_eq!(messages(&ja), Vec::<String>::new());
        assert_eq!(ja.entries.len(), 5);
        assert_eq!(ja.entries[2].row, 5, "after the comment row");
        assert_eq!(ja.entries[2].windows.len(), 2);
        assert_eq!(ja.entries[3].row, 7, "after a two-line note");
        assert_eq!(ja.entries[4].services, vec![Service::Rdp]);
        let en = load(blocks[1]);
        assert_eq!(messages(&en), Vec::<String>::new());
        assert_eq!(en.entries.len(), 4);
        assert_eq!(
            en.entries[3].windows[0].to_string(),
            "Mon,Wed,Fri 10:00-12:00"
        );
    }

    #[test]
    fn unseen_entries() {
        let l = load(RECONCILE);
        let ids: Vec<&str> = l
            .unseen(&[0, 2, 99])
            .iter()
            .map(|e| e.id.as_str())
            .collect();
        assert_eq!(ids, vec!["tv", "any"]);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Ledger::parse("fuzz.csv", &bytes);
        }

        #[test]
        fn csv_like_text_never_panics(
            text in "(internal|内部ホスト|far_end|service|window|id)(,(internal|far_end|service|window|note)){0,4}\n([0-9a-zA-Z.:/;,\"\n\\- 、～*#日平月]{0,60}\n){0,8}"
        ) {
            if let Ok(l) = Ledger::parse("fuzz.csv", text.as_bytes()) {
                let lines = text.lines().count().max(1);
                for e in &l.entries {
                    prop_assert!(e.row >= 2 && e.row <= lines + 1);
                    prop_assert!(!e.internal.is_empty());
                }
                for e in &l.errors {
                    prop_assert!(e.row >= 2 && e.row <= lines + 1);
                }
            }
        }
    }
}
