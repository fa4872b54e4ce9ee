//! Capture files: classic pcap (both byte orders, micro- and nanosecond) and pcapng
//! (every block a real file carries; several interfaces with their own link types and
//! timestamp resolutions; several sections), optionally gzip-compressed.
//!
//! The reader streams: memory stays bounded by [`READ_BUFFER`] whatever the file size.
//! A file is read on a thread of its own, a few chunks ahead; classic pcap records are
//! parsed (pcap-parser's frame parsers) where they lie in those chunks, and everything
//! else goes through pcap-parser's streaming reader.
//! Everything in the file is untrusted; a damaged file yields the packets read so far
//! and then a [`CaptureError`] that names the file and the byte offset.

use pcap_parser::nom;
use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{LegacyPcapBlock, PcapBlockOwned, PcapError};
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Size of the streaming buffer. pcap-parser loops forever when a frame is larger than its
/// buffer (rusticata/pcap-parser#29); 1 MiB holds any frame up to the 262,144-byte maximum
/// snap length with room to spare.
pub const READ_BUFFER: usize = 1 << 20;

/// Most interfaces a pcapng section may declare before the file is treated as corrupt.
pub const MAX_INTERFACES: usize = 1024;

/// A link-layer header type (tcpdump.org/linktypes.html).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkType(pub u32);

impl LinkType {
    /// BSD loopback: 4-byte address family in host byte order.
    pub const NULL: LinkType = LinkType(0);
    /// IEEE 802.3 Ethernet.
    pub const ETHERNET: LinkType = LinkType(1);
    /// Raw IP (some platforms use 12 or 14 for it too).
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback: 4-byte address family in network byte order.
    pub const LOOP: LinkType = LinkType(108);
    /// Linux "cooked" capture, version 1 (16-byte header).
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux "cooked" capture, version 2 (20-byte header).
    pub const LINUX_SLL2: LinkType = LinkType(276);
    /// Raw IP, old BSD value.
    pub const RAW_BSD12: LinkType = LinkType(12);
    /// Raw IP, old BSD value.
    pub const RAW_BSD14: LinkType = LinkType(14);
    /// IEEE 802.11 frames without a radio header.
    pub const IEEE802_11: LinkType = LinkType(105);
    /// IEEE 802.11 frames behind a radiotap header.
    pub const IEEE802_11_RADIOTAP: LinkType = LinkType(127);
    /// Per-Packet Information header, then the frame of the link type it names.
    pub const PPI: LinkType = LinkType(192);
    /// PPP (RFC 1661), with or without the HDLC-like address and control bytes.
    pub const PPP: LinkType = LinkType(9);
    /// PPP in HDLC-like framing (RFC 1662), or Cisco HDLC on some routers.
    pub const PPP_HDLC: LinkType = LinkType(50);
    /// PPPoE session stage without the Ethernet header (RFC 2516).
    pub const PPP_ETHER: LinkType = LinkType(51);
    /// Cisco HDLC: address, control, then an EtherType.
    pub const C_HDLC: LinkType = LinkType(104);
    /// Linux netfilter log messages (NFLOG): the logged packet in a TLV.
    pub const NFLOG: LinkType = LinkType(239);
    /// BSD pf firewall log (pflog, as pfSense and OPNsense write it): a header, then IP.
    pub const PFLOG: LinkType = LinkType(117);
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One captured frame, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Capture time in microseconds since the Unix epoch.
    pub ts_us: u64,
    /// Link type of the interface the frame was captured on.
    pub link: LinkType,
    /// Captured bytes (possibly fewer than on the wire).
    pub data: &'a [u8],
    /// Length on the wire.
    pub orig_len: u32,
}

/// Why a capture file could not be read (further).
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be opened.
    #[error("{path}: cannot open: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is empty.
    #[error("{path}: the file is empty")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file starts with neither a pcap nor a pcapng header.
    #[error("{path}: not a pcap or pcapng capture (starts with {magic})")]
    NotACapture {
        /// The file.
        path: PathBuf,
        /// The first bytes, in hex.
        magic: String,
    },
    /// The file ends in the middle of a record.
    #[error(
        "{path}: the capture is truncated: the record at byte offset {offset}{gz} is incomplete"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Offset of the incomplete record.
        offset: u64,
        /// Note that the offset counts decompressed bytes.
        gz: &'static str,
    },
    /// A record could not be parsed.
    #[error("{path}: corrupt capture at byte offset {offset}{gz}: {what}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Offset of the bad record.
        offset: u64,
        /// Note that the offset counts decompressed bytes.
        gz: &'static str,
        /// What is wrong.
        what: String,
    },
    /// Reading failed (I/O error, or a damaged gzip stream).
    #[error("{path}: read error near byte offset {offset}{gz}: {what}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Offset of the last complete record.
        offset: u64,
        /// Note that the offset counts decompressed bytes.
        gz: &'static str,
        /// The I/O error.
        what: String,
    },
}

/// Counts bytes read from the underlying file (compressed bytes for gzip), for progress,
/// and keeps the last I/O error, which pcap-parser does not pass on.
struct CountingReader<R> {
    inner: R,
    read: Arc<AtomicU64>,
    last_error: Arc<std::sync::Mutex<Option<String>>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.read.fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                if let Ok(mut slot) = self.last_error.lock() {
                    *slot = Some(e.to_string());
                }
                Err(e)
            }
        }
    }
}

/// Bytes read ahead per chunk.
const READ_AHEAD_CHUNK: usize = 1 << 18;
/// Chunks read ahead of the consumer (bounded memory: this many chunks plus the ones in use).
const READ_AHEAD_CHUNKS: usize = 4;

/// A reader whose source is read on a background thread, a few chunks ahead. Errors
/// arrive in order after the bytes before them; dropping it stops the thread.
struct ReadAhead {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    recycle: std::sync::mpsc::SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
    /// An error met after bytes already handed out, for the next read.
    error: Option<io::Error>,
}

impl ReadAhead {
    /// Reads `src` on a new thread, `chunk` bytes at a time at most.
    fn spawn(mut src: Box<dyn Read + Send>, chunk: usize) -> ReadAhead {
        use std::sync::mpsc::sync_channel;
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(READ_AHEAD_CHUNKS);
        let (recycle, spare) = sync_channel::<Vec<u8>>(READ_AHEAD_CHUNKS + 2);
        let spawned = std::thread::Builder::new()
            .name("setten-read".into())
            .spawn(move || loop {
                // A recycled buffer keeps its length: only a new one (or the short tail of
                // the last read) is zeroed, not every chunk.
                let mut buf = spare.try_recv().unwrap_or_default();
                buf.resize(chunk, 0);
                let n = loop {
                    match src.read(&mut buf) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        r => break r,
                    }
                };
                let msg = match n {
                    Ok(n) => {
                        buf.truncate(n);
                        Ok(buf)
                    }
                    Err(e) => Err(e),
                };
                let last = !matches!(&msg, Ok(b) if !b.is_empty());
                if tx.send(msg).is_err() || last {
                    return;
                }
            });
        let (rx, done) = match spawned {
            Ok(_) => (rx, false),
            Err(e) => {
                // No thread: report the failure as a read error.
                let (tx2, rx2) = sync_channel(1);
                let _ = tx2.send(Err(e));
                (rx2, false)
            }
        };
        ReadAhead {
            rx,
            recycle,
            cur: Vec::new(),
            pos: 0,
            done,
            error: None,
        }
    }
}

impl ReadAhead {
    /// Makes sure the current chunk has unread bytes (waiting for the next chunk if
    /// needed) and returns them; empty at the end of the source.
    fn fill(&mut self) -> io::Result<&[u8]> {
        while self.pos >= self.cur.len() && !self.done {
            match self.rx.recv() {
                Ok(Ok(chunk)) if chunk.is_empty() => self.done = true,
                Ok(Ok(chunk)) => {
                    let old = std::mem::replace(&mut self.cur, chunk);
                    let _ = self.recycle.try_send(old);
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Err(io::Error::other("the capture reader thread stopped"));
                }
            }
        }
        Ok(self.cur.get(self.pos..).unwrap_or(&[]))
    }
}

impl Read for ReadAhead {
    /// Fills `out` across chunks as far as the source goes: pcap-parser reads a file's
    /// first block with a single call, so a short first chunk (a small read of a
    /// decompressor) must not cut a pcapng section header short. An error after some
    /// bytes is returned by the next call.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut n = 0;
        while n < out.len() {
            let avail = match self.fill() {
                Ok([]) => break,
                Ok(a) => a,
                Err(e) if n == 0 => return Err(e),
                Err(e) => {
                    self.error = Some(e);
                    break;
                }
            };
            let k = avail.len().min(out.len() - n);
            out[n..n + k].copy_from_slice(&avail[..k]);
            self.pos += k;
            n += k;
        }
        Ok(n)
    }
}

/// A capture's bytes (decompressed if gzip) and where they come from.
struct Source {
    reader: Box<dyn Read + Send>,
    origin: Origin,
}

/// Where a capture's bytes come from: whether they are gunzipped, the count of bytes
/// read from the underlying file or buffer, the last read error, and its size.
struct Origin {
    gzip: bool,
    read: Arc<AtomicU64>,
    last_error: Arc<std::sync::Mutex<Option<String>>>,
    len: u64,
}

impl Source {
    /// A capture held in memory; gzip is recognised by its magic bytes, as for files.
    fn in_memory(bytes: Vec<u8>) -> Source {
        let (len, gzip) = (bytes.len() as u64, bytes.starts_with(&[0x1f, 0x8b]));
        Source::of(io::Cursor::new(bytes), gzip, len)
    }

    fn of<R: Read + Send + 'static>(inner: R, gzip: bool, len: u64) -> Source {
        let read = Arc::new(AtomicU64::new(0));
        let last_error = Arc::new(std::sync::Mutex::new(None));
        let counting = CountingReader {
            inner,
            read: read.clone(),
            last_error: last_error.clone(),
        };
        let reader: Box<dyn Read + Send> = if gzip {
            gunzip(BufReader::with_capacity(1 << 16, counting), &last_error)
        } else {
            Box::new(counting)
        };
        Source {
            reader,
            origin: Origin {
                gzip,
                read,
                last_error,
                len,
            },
        }
    }
}

impl Origin {
    /// What error messages add to a decompressed capture's offsets.
    fn gz(&self) -> &'static str {
        if self.gzip {
            " (decompressed)"
        } else {
            ""
        }
    }
}

/// Decompresses `src`, keeping a damaged stream's error for the message as file errors
/// are kept (the decompressed byte count is not used: progress counts the file's bytes).
fn gunzip<R: Read + Send + 'static>(
    src: R,
    last_error: &Arc<std::sync::Mutex<Option<String>>>,
) -> Box<dyn Read + Send> {
    Box::new(CountingReader {
        inner: flate2::read::MultiGzDecoder::new(src),
        read: Arc::new(AtomicU64::new(0)),
        last_error: last_error.clone(),
    })
}

/// A classic pcap record parser of pcap-parser (`parse_pcap_frame` or its big-endian
/// twin).
type FrameParser =
    for<'a> fn(&'a [u8]) -> nom::IResult<&'a [u8], LegacyPcapBlock<'a>, PcapError<&'a [u8]>>;

/// Classic pcap read where the read-ahead thread put it: each record is parsed in place in
/// its chunk, and only a record that straddles two chunks is copied (into `carry`). The
/// general reader copies every byte from the chunks into its own buffer first.
struct Chunked {
    ahead: ReadAhead,
    /// The file's byte order is big-endian.
    big_endian: bool,
    ifc: Interface,
    carry: Vec<u8>,
}

/// Length of a classic pcap record header (ts_sec, ts_usec, incl_len, orig_len).
const RECORD_HEADER: usize = 16;

/// How the records of a file are read.
enum Records {
    /// pcap-parser's streaming reader (pcapng, modified pcap, captures in memory).
    Parser(Box<dyn PcapReaderIterator + Send>),
    /// Classic pcap from a file, parsed in the read-ahead chunks.
    Chunked(Box<Chunked>),
}

#[derive(Clone, Copy)]
struct Interface {
    link: LinkType,
    /// Timestamp units per second.
    units_per_sec: u64,
    /// Seconds added to every timestamp (if_tsoffset).
    offset_sec: i64,
    /// Drops from the latest interface statistics block.
    drops: Option<u64>,
}

/// Per-file reading statistics.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadStats {
    /// Frames delivered.
    pub packets: u64,
    /// pcapng blocks that carry no packet (statistics, name resolution, custom, …).
    pub other_blocks: u64,
    /// Packets on an interface that was never declared, skipped.
    pub orphan_packets: u64,
    /// Packets the capturing system said it dropped (pcapng interface statistics,
    /// `isb_ifdrop` + `isb_osdrop`, latest block per interface); `None` when the file does
    /// not say.
    pub drops: Option<u64>,
    /// Drops of sections already finished.
    drops_closed: u64,
    /// Whether the current section is big-endian.
    big_endian: bool,
}

/// A capture file being read.
pub struct CaptureFile {
    path: PathBuf,
    reader: Records,
    interfaces: Vec<Interface>,
    legacy: Option<Interface>,
    offset: u64,
    gz: &'static str,
    file_read: Arc<AtomicU64>,
    last_error: Arc<std::sync::Mutex<Option<String>>>,
    file_len: u64,
    stats: ReadStats,
}

impl CaptureFile {
    /// Opens a capture; gzip compression is recognised by its magic bytes, not the name.
    pub fn open(path: &Path) -> Result<CaptureFile, CaptureError> {
        let open_err = |source| CaptureError::Open {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(open_err)?;
        let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut magic = [0u8; 2];
        let n = read_fully(&mut file, &mut magic).map_err(open_err)?;
        let file = reopen(file).map_err(open_err)?;
        let gzip = n == 2 && magic == [0x1f, 0x8b];
        let src = Source::of(file, gzip, file_len);
        // Reading (and gunzipping) runs on a thread of its own, so the packet path does not
        // wait for the kernel's copies.
        let ahead = ReadAhead::spawn(src.reader, READ_AHEAD_CHUNK);
        Self::from_read_ahead(path, ahead, src.origin)
    }

    /// Reads a capture held in memory the way files are read, on a read-ahead thread, in
    /// chunks of `chunk` bytes (at least 1): small chunks put many records across chunk
    /// boundaries (fuzzing, tests). `name` stands for the path in error messages.
    pub fn from_bytes_read_ahead(
        name: &str,
        bytes: Vec<u8>,
        chunk: usize,
    ) -> Result<CaptureFile, CaptureError> {
        let src = Source::in_memory(bytes);
        let ahead = ReadAhead::spawn(src.reader, chunk.max(1));
        Self::from_read_ahead(Path::new(name), ahead, src.origin)
    }

    /// Classic pcap whose header is in the first chunk is read in the chunks; anything else
    /// goes to pcap-parser's reader.
    fn from_read_ahead(
        path: &Path,
        mut ahead: ReadAhead,
        origin: Origin,
    ) -> Result<CaptureFile, CaptureError> {
        let gz = origin.gz();
        let header = match ahead.fill() {
            Ok(first) => pcap_parser::pcap::parse_pcap_header(first)
                .ok()
                .map(|(_, h)| h)
                .filter(|h| !h.is_modified_format()),
            Err(e) => {
                let what = origin.last_error.lock().ok().and_then(|l| l.clone());
                return Err(CaptureError::Read {
                    path: path.to_owned(),
                    offset: 0,
                    gz,
                    what: what.unwrap_or_else(|| e.to_string()),
                });
            }
        };
        let Some(h) = header else {
            // pcapng, modified pcap, or a first chunk too short to tell: the general reader
            // starts from the same bytes.
            return Self::from_reader(path, Box::new(ahead), origin);
        };
        ahead.pos += h.size();
        Ok(CaptureFile {
            path: path.to_owned(),
            reader: Records::Chunked(Box::new(Chunked {
                ahead,
                big_endian: h.is_bigendian(),
                ifc: legacy_interface(&h),
                carry: Vec::new(),
            })),
            interfaces: Vec::new(),
            legacy: None,
            offset: h.size() as u64,
            gz,
            file_read: origin.read,
            last_error: origin.last_error,
            file_len: origin.len,
            stats: ReadStats::default(),
        })
    }

    /// Reads a capture held in memory (tests, fuzzing); `name` stands for the path in
    /// error messages. Gzip is recognised as for files.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<CaptureFile, CaptureError> {
        let src = Source::in_memory(bytes);
        Self::from_reader(Path::new(name), src.reader, src.origin)
    }

    fn from_reader(
        path: &Path,
        source: Box<dyn Read + Send>,
        origin: Origin,
    ) -> Result<CaptureFile, CaptureError> {
        let gz = origin.gz();
        let reader = match pcap_parser::create_reader(READ_BUFFER, source) {
            Ok(r) => r,
            Err(PcapError::Eof) => {
                return Err(CaptureError::Empty {
                    path: path.to_owned(),
                })
            }
            Err(PcapError::ReadError) => {
                let what = origin
                    .last_error
                    .lock()
                    .ok()
                    .and_then(|e| e.clone())
                    .unwrap_or_else(|| "read failed".into());
                return Err(CaptureError::Read {
                    path: path.to_owned(),
                    offset: 0,
                    gz,
                    what,
                });
            }
            Err(_) => {
                let magic = first_bytes_hex(path, origin.gzip);
                return Err(CaptureError::NotACapture {
                    path: path.to_owned(),
                    magic,
                });
            }
        };
        Ok(CaptureFile {
            path: path.to_owned(),
            reader: Records::Parser(reader),
            interfaces: Vec::new(),
            legacy: None,
            offset: 0,
            gz,
            file_read: origin.read,
            last_error: origin.last_error,
            file_len: origin.len,
            stats: ReadStats::default(),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the file on disk (compressed size for gzip).
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Shared counter of bytes read from disk so far, for a progress display.
    pub fn progress_counter(&self) -> Arc<AtomicU64> {
        self.file_read.clone()
    }

    /// Reading statistics so far.
    pub fn stats(&self) -> ReadStats {
        self.stats
    }

    /// Reads the whole file, handing each frame to `on_packet`. Stops at the first damaged
    /// record with an error; every frame before it has been delivered.
    pub fn for_each_packet(
        &mut self,
        mut on_packet: impl FnMut(&Packet<'_>),
    ) -> Result<ReadStats, CaptureError> {
        let reader = match &mut self.reader {
            Records::Parser(r) => r,
            Records::Chunked(c) => {
                let res = c.for_each(&mut self.offset, &mut self.stats, &mut on_packet);
                return match res {
                    Ok(()) => Ok(self.stats),
                    Err(ChunkError::Truncated) => Err(CaptureError::Truncated {
                        path: self.path.clone(),
                        offset: self.offset,
                        gz: self.gz,
                    }),
                    Err(ChunkError::Corrupt(what)) => Err(self.corrupt(what)),
                    Err(ChunkError::Read(e)) => {
                        let mut err = self.read_error();
                        if let CaptureError::Read { what, .. } = &mut err {
                            if self.last_error.lock().ok().is_none_or(|l| l.is_none()) {
                                *what = e.to_string();
                            }
                        }
                        Err(err)
                    }
                };
            }
        };
        loop {
            match reader.next() {
                Ok((len, block)) => {
                    let mut bad: Option<String> = None;
                    match block {
                        PcapBlockOwned::LegacyHeader(h) => {
                            self.legacy = Some(legacy_interface(&h));
                        }
                        PcapBlockOwned::Legacy(b) => {
                            if let Some(ifc) = self.legacy {
                                let units = u64::from(b.ts_sec)
                                    .saturating_mul(ifc.units_per_sec)
                                    .saturating_add(u64::from(b.ts_usec));
                                let data = clamp(b.data, b.caplen);
                                self.stats.packets += 1;
                                on_packet(&Packet {
                                    ts_us: to_micros(units, &ifc),
                                    link: ifc.link,
                                    data,
                                    orig_len: b.origlen,
                                });
                            }
                        }
                        PcapBlockOwned::NG(block) => {
                            if let Err(what) = on_ng_block(
                                &mut self.interfaces,
                                &mut self.stats,
                                block,
                                &mut on_packet,
                            ) {
                                bad = Some(what);
                            }
                        }
                    }
                    if let Some(what) = bad {
                        return Err(self.corrupt(what));
                    }
                    self.offset += len as u64;
                    // No shift on consume: pcap-parser (circular::Buffer) would move half the
                    // buffer every time the read position passes its middle; refill() shifts
                    // only the incomplete remainder.
                    reader.consume_noshift(len);
                }
                Err(PcapError::Eof) => return Ok(self.stats),
                Err(PcapError::Incomplete(_)) => {
                    if let Err(_e) = reader.refill() {
                        return Err(self.read_error());
                    }
                }
                Err(PcapError::UnexpectedEof) => {
                    return Err(CaptureError::Truncated {
                        path: self.path.clone(),
                        offset: self.offset,
                        gz: self.gz,
                    })
                }
                Err(PcapError::ReadError) => return Err(self.read_error()),
                Err(PcapError::BufferTooSmall) => {
                    return Err(
                        self.corrupt(format!("a record declares more than {READ_BUFFER} bytes"))
                    )
                }
                Err(e) => {
                    let what = describe(&e);
                    return Err(self.corrupt(what));
                }
            }
        }
    }

    fn corrupt(&self, what: String) -> CaptureError {
        CaptureError::Corrupt {
            path: self.path.clone(),
            offset: self.offset,
            gz: self.gz,
            what,
        }
    }

    fn read_error(&self) -> CaptureError {
        let what = self
            .last_error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_else(|| "read failed".into());
        CaptureError::Read {
            path: self.path.clone(),
            offset: self.offset,
            gz: self.gz,
            what,
        }
    }
}

/// The interface a classic pcap header describes.
fn legacy_interface(h: &pcap_parser::PcapHeader) -> Interface {
    Interface {
        link: LinkType(h.network.0 as u32),
        units_per_sec: if h.is_nanosecond_precision() {
            1_000_000_000
        } else {
            1_000_000
        },
        offset_sec: i64::from(h.thiszone),
        drops: None,
    }
}

/// Why chunked reading stopped early.
enum ChunkError {
    Truncated,
    Corrupt(String),
    Read(io::Error),
}

impl Chunked {
    /// Delivers every record; `offset` follows the start of the next record.
    fn for_each(
        &mut self,
        offset: &mut u64,
        stats: &mut ReadStats,
        on_packet: &mut impl FnMut(&Packet<'_>),
    ) -> Result<(), ChunkError> {
        let ifc = self.ifc;
        let parse: FrameParser = if self.big_endian {
            pcap_parser::pcap::parse_pcap_frame_be
        } else {
            pcap_parser::pcap::parse_pcap_frame
        };
        let deliver =
            |b: &LegacyPcapBlock<'_>, stats: &mut ReadStats, on: &mut dyn FnMut(&Packet<'_>)| {
                let units = u64::from(b.ts_sec)
                    .saturating_mul(ifc.units_per_sec)
                    .saturating_add(u64::from(b.ts_usec));
                stats.packets += 1;
                on(&Packet {
                    ts_us: to_micros(units, &ifc),
                    link: ifc.link,
                    data: clamp(b.data, b.caplen),
                    orig_len: b.origlen,
                });
            };
        loop {
            let avail = self.ahead.fill().map_err(ChunkError::Read)?;
            if avail.is_empty() {
                return Ok(());
            }
            // Records that lie whole in this chunk.
            let mut rest = avail;
            loop {
                match parse(rest) {
                    Ok((after, b)) => {
                        deliver(&b, stats, on_packet);
                        *offset += (rest.len() - after.len()) as u64;
                        rest = after;
                    }
                    Err(nom::Err::Incomplete(_)) => break,
                    Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
                        return Err(ChunkError::Corrupt(describe(&e)))
                    }
                }
            }
            if rest.is_empty() {
                self.ahead.pos = self.ahead.cur.len();
                continue;
            }
            // The chunk ends inside a record: gather the record from the following chunks.
            self.carry.clear();
            self.carry.extend_from_slice(rest);
            self.ahead.pos = self.ahead.cur.len();
            loop {
                // The length is read once the whole record header is here.
                let whole_header = self.carry.len() >= RECORD_HEADER;
                let need = match self.carry.get(8..12).filter(|_| whole_header) {
                    Some(len) => {
                        let raw = <[u8; 4]>::try_from(len).unwrap_or_default();
                        let caplen = if self.big_endian {
                            u32::from_be_bytes(raw)
                        } else {
                            u32::from_le_bytes(raw)
                        };
                        let total = RECORD_HEADER.saturating_add(caplen as usize);
                        if total >= READ_BUFFER {
                            return Err(ChunkError::Corrupt(format!(
                                "a record declares more than {READ_BUFFER} bytes"
                            )));
                        }
                        total
                    }
                    None => RECORD_HEADER,
                };
                if self.carry.len() >= need && self.carry.len() >= RECORD_HEADER {
                    break;
                }
                let more = self.ahead.fill().map_err(ChunkError::Read)?;
                if more.is_empty() {
                    return Err(ChunkError::Truncated);
                }
                let take = (need - self.carry.len()).min(more.len());
                self.carry.extend_from_slice(&more[..take]);
                self.ahead.pos += take;
            }
            match parse(&self.carry) {
                Ok((_, b)) => {
                    deliver(&b, stats, on_packet);
                    *offset += self.carry.len() as u64;
                }
                Err(nom::Err::Incomplete(_)) => return Err(ChunkError::Truncated),
                Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
                    return Err(ChunkError::Corrupt(describe(&e)))
                }
            }
        }
    }
}

fn on_ng_block(
    interfaces: &mut Vec<Interface>,
    stats: &mut ReadStats,
    block: Block<'_>,
    on_packet: &mut impl FnMut(&Packet<'_>),
) -> Result<(), String> {
    match block {
        Block::SectionHeader(shb) => {
            stats.drops_closed += interfaces.iter().filter_map(|i| i.drops).sum::<u64>();
            stats.big_endian = shb.big_endian();
            interfaces.clear();
        }
        Block::InterfaceStatistics(isb) => {
            // isb_ifdrop (5) and isb_osdrop (7), 64-bit counters in the section's byte
            // order (pcapng spec, section 4.6).
            let mut drops: Option<u64> = None;
            for o in &isb.options {
                if matches!(o.code.0, 5 | 7) {
                    if let Some(b) = o.value.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                        let v = if stats.big_endian {
                            u64::from_be_bytes(b)
                        } else {
                            u64::from_le_bytes(b)
                        };
                        drops = Some(drops.unwrap_or(0).saturating_add(v));
                    }
                }
            }
            stats.other_blocks += 1;
            if let (Some(d), Some(ifc)) = (drops, interfaces.get_mut(isb.if_id as usize)) {
                ifc.drops = Some(d);
                let current: u64 = interfaces.iter().filter_map(|i| i.drops).sum();
                stats.drops = Some(stats.drops_closed.saturating_add(current));
            }
        }
        Block::InterfaceDescription(idb) => {
            if interfaces.len() >= MAX_INTERFACES {
                return Err(format!(
                    "more than {MAX_INTERFACES} interfaces in one section"
                ));
            }
            // if_tsresol: default 10^-6 (pcapng spec, section 4.2). An unrepresentable
            // resolution falls back to microseconds rather than failing the file.
            let units = ts_units_per_sec(idb.if_tsresol).unwrap_or(1_000_000);
            interfaces.push(Interface {
                link: LinkType(idb.linktype.0 as u32),
                units_per_sec: units,
                offset_sec: idb.if_tsoffset,
                drops: None,
            });
        }
        Block::EnhancedPacket(epb) => {
            let Some(ifc) = interfaces.get(epb.if_id as usize).copied() else {
                stats.orphan_packets += 1;
                return Ok(());
            };
            let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
            let data = clamp(epb.data, epb.caplen);
            stats.packets += 1;
            on_packet(&Packet {
                ts_us: to_micros(units, &ifc),
                link: ifc.link,
                data,
                orig_len: epb.origlen,
            });
        }
        Block::SimplePacket(spb) => {
            // A simple packet block belongs to interface 0 and carries no timestamp.
            let Some(ifc) = interfaces.first().copied() else {
                stats.orphan_packets += 1;
                return Ok(());
            };
            stats.packets += 1;
            on_packet(&Packet {
                ts_us: 0,
                link: ifc.link,
                data: spb.data,
                orig_len: spb.origlen,
            });
        }
        _ => stats.other_blocks += 1,
    }
    Ok(())
}

fn describe(e: &PcapError<&[u8]>) -> String {
    match e {
        PcapError::NomError(_, kind) => format!("unparsable record ({kind:?})"),
        PcapError::OwnedNomError(_, kind) => format!("unparsable record ({kind:?})"),
        PcapError::HeaderNotRecognized => "unrecognised block header".into(),
        other => format!("{other:?}"),
    }
}

/// The data slice never extends past the declared capture length (padding in pcapng).
fn clamp(data: &[u8], caplen: u32) -> &[u8] {
    let n = (caplen as usize).min(data.len());
    data.get(..n).unwrap_or(data)
}

/// Timestamp units per second from an `if_tsresol` byte (pcapng spec, section 4.2): bit 7
/// clear, 10^-n seconds; set, 2^-n seconds. `None` when it does not fit in a `u64`.
///
/// Not pcap-parser's `ts_resolution()`: 0.17 compares the whole byte, flag included, with
/// 63, so it refuses every power-of-two resolution.
fn ts_units_per_sec(tsresol: u8) -> Option<u64> {
    let n = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 {
        10u64.checked_pow(n)
    } else {
        1u64.checked_shl(n)
    }
}

fn to_micros(units: u64, ifc: &Interface) -> u64 {
    let per_sec = ifc.units_per_sec.max(1);
    let us = if per_sec == 1_000_000 {
        units
    } else if per_sec % 1_000_000 == 0 {
        units / (per_sec / 1_000_000)
    } else if 1_000_000 % per_sec == 0 {
        units.saturating_mul(1_000_000 / per_sec)
    } else {
        // Resolutions that are not a power of ten (2^-n): exact in 128 bits.
        let us = u128::from(units) * 1_000_000 / u128::from(per_sec);
        u64::try_from(us).unwrap_or(u64::MAX)
    };
    let off = ifc.offset_sec.saturating_mul(1_000_000);
    if off >= 0 {
        us.saturating_add(off as u64)
    } else {
        us.saturating_sub(off.unsigned_abs())
    }
}

fn read_fully(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn reopen(mut file: File) -> io::Result<File> {
    use std::io::Seek;
    file.seek(io::SeekFrom::Start(0))?;
    Ok(file)
}

fn first_bytes_hex(path: &Path, gzip: bool) -> String {
    let mut buf = [0u8; 8];
    let n = File::open(path)
        .ok()
        .and_then(|f| {
            if gzip {
                let mut d = flate2::read::MultiGzDecoder::new(f);
                d.read(&mut buf).ok()
            } else {
                let mut f = f;
                read_fully(&mut f, &mut buf).ok()
            }
        })
        .unwrap_or(0);
    buf.get(..n)
        .unwrap_or(&[])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A classic little-endian pcap header (pcap-savefile(5)) for Ethernet.
    fn pcap_header(link: u32) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&link.to_le_bytes());
        h
    }

    fn record(ts: u32, data: &[u8]) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&ts.to_le_bytes());
        r.extend_from_slice(&7u32.to_le_bytes());
        r.extend_from_slice(&(data.len() as u32).to_le_bytes());
        r.extend_from_slice(&(data.len() as u32).to_le_bytes());
        r.extend_from_slice(data);
        r
    }

    fn write_tmp(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    /// Frames as read: time, link type, bytes.
    type Frames = Vec<(u64, u32, Vec<u8>)>;

    /// What a reading gives: every frame and how it ended.
    fn read_all(mut cap: CaptureFile) -> (Frames, Result<u64, String>) {
        let mut seen = Vec::new();
        let end = cap.for_each_packet(|p| seen.push((p.ts_us, p.link.0, p.data.to_vec())));
        (seen, end.map(|s| s.packets).map_err(|e| e.to_string()))
    }

    /// A classic pcap of varied records, several read-ahead chunks long, with one record
    /// larger than a chunk; `big` writes it big-endian.
    fn varied_pcap(big: bool) -> Vec<u8> {
        let u32b = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut file = Vec::new();
        file.extend_from_slice(&u32b(0xa1b2c3d4));
        file.extend_from_slice(&if big {
            2u16.to_be_bytes()
        } else {
            2u16.to_le_bytes()
        });
        file.extend_from_slice(&if big {
            4u16.to_be_bytes()
        } else {
            4u16.to_le_bytes()
        });
        file.extend_from_slice(&[0; 8]);
        file.extend_from_slice(&u32b(262_144));
        file.extend_from_slice(&u32b(1));
        let mut i = 0u32;
        while file.len() < 3 * READ_AHEAD_CHUNK + 10_000 {
            let len = if i == 150 {
                READ_AHEAD_CHUNK + 40_000
            } else {
                (i as usize * 37) % 1600
            };
            file.extend_from_slice(&u32b(1_700_000_000 + i));
            file.extend_from_slice(&u32b(i));
            file.extend_from_slice(&u32b(len as u32));
            file.extend_from_slice(&u32b(len as u32 + 4));
            file.extend((0..len).map(|k| (k as u32 ^ i) as u8));
            i += 1;
        }
        file
    }

    /// Classic pcap files are read from the read-ahead chunks in place; records across
    /// chunk boundaries, a record larger than a chunk, big-endian files, and files cut
    /// anywhere near a boundary read exactly as the general reader reads them.
    #[test]
    fn chunked_reading_matches_the_general_reader_across_chunk_boundaries() {
        for big in [false, true] {
            let file = varied_pcap(big);
            let general = read_all(CaptureFile::from_bytes("x", file.clone()).unwrap());
            assert!(general.1.is_ok(), "{:?}", general.1);
            assert!(general.0.iter().any(|f| f.2.len() > READ_AHEAD_CHUNK));
            let tmp = write_tmp(&file);
            let cap = CaptureFile::open(tmp.path()).unwrap();
            assert!(matches!(cap.reader, Records::Chunked(_)));
            assert_eq!(read_all(cap), general, "big-endian: {big}");
            // Chunks smaller than most records: nearly every record is gathered.
            for chunk in [24, 1000] {
                let cap = CaptureFile::from_bytes_read_ahead("x", file.clone(), chunk).unwrap();
                assert!(matches!(cap.reader, Records::Chunked(_)));
                assert_eq!(read_all(cap), general, "chunks of {chunk}");
            }
            for cut in [
                READ_AHEAD_CHUNK - 1,
                READ_AHEAD_CHUNK,
                READ_AHEAD_CHUNK + 7,
                2 * READ_AHEAD_CHUNK + 16,
                file.len() - 1,
            ] {
                let part = &file[..cut];
                let tmp = write_tmp(part);
                let chunked = read_all(CaptureFile::open(tmp.path()).unwrap());
                let general = read_all(CaptureFile::from_bytes("x", part.to_vec()).unwrap());
                assert_eq!(chunked.0, general.0, "cut at {cut}");
                let (a, b) = (chunked.1.unwrap_err(), general.1.unwrap_err());
                // Same complaint at the same offset; only the file name differs.
                assert_eq!(
                    a.split_once(": ").map(|x| x.1),
                    b.split_once(": ").map(|x| x.1)
                );
            }
        }
    }

    /// A damaged gzip stream is a read error that says what is wrong with it, however the
    /// file is read.
    #[test]
    fn damaged_gzip_is_a_read_error_naming_the_damage() {
        let header_only = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0];
        let tmp = write_tmp(&header_only);
        for (how, cap) in [
            ("file", CaptureFile::open(tmp.path())),
            ("memory", CaptureFile::from_bytes("x", header_only.clone())),
        ] {
            let msg = match cap {
                Err(e) => e.to_string(),
                Ok(mut c) => c.for_each_packet(|_| {}).unwrap_err().to_string(),
            };
            assert!(
                msg.contains("read error near byte offset 0 (decompressed)"),
                "{how}: {msg}"
            );
            assert!(msg.contains("unexpected end of file"), "{how}: {msg}");
        }
    }

    #[test]
    fn reads_classic_pcap_records() {
        let mut file = pcap_header(1);
        file.extend(record(10, &[1, 2, 3]));
        file.extend(record(11, &[4, 5]));
        let tmp = write_tmp(&file);
        let mut cap = CaptureFile::open(tmp.path()).unwrap();
        let mut seen = Vec::new();
        cap.for_each_packet(|p| seen.push((p.ts_us, p.data.to_vec(), p.link)))
            .unwrap();
        assert_eq!(
            seen,
            vec![
                (10_000_007, vec![1, 2, 3], LinkType::ETHERNET),
                (11_000_007, vec![4, 5], LinkType::ETHERNET)
            ]
        );
    }

    #[test]
    fn truncated_record_names_its_offset_after_delivering_earlier_ones() {
        let mut file = pcap_header(1);
        file.extend(record(10, &[1, 2, 3]));
        let second = record(11, &[4, 5, 6, 7]);
        file.extend(&second[..second.len() - 2]);
        let tmp = write_tmp(&file);
        let mut cap = CaptureFile::open(tmp.path()).unwrap();
        let mut n = 0;
        let err = cap.for_each_packet(|_| n += 1).unwrap_err();
        assert_eq!(n, 1);
        let msg = err.to_string();
        assert!(msg.contains("truncated"), "{msg}");
        assert!(msg.contains("byte offset 43"), "{msg}");
    }

    #[test]
    fn gzip_capture_is_read_directly() {
        let mut file = pcap_header(101);
        file.extend(record(1, &[0x45, 0, 0, 20]));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&file).unwrap();
        let tmp = write_tmp(&gz.finish().unwrap());
        let mut cap = CaptureFile::open(tmp.path()).unwrap();
        let mut links = Vec::new();
        cap.for_each_packet(|p| links.push(p.link)).unwrap();
        assert_eq!(links, vec![LinkType::RAW]);
    }

    #[test]
    fn read_ahead_delivers_every_byte_in_order_then_the_error() {
        struct Src {
            data: Vec<u8>,
            pos: usize,
            fail_at_end: bool,
        }
        impl Read for Src {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.pos >= self.data.len() {
                    return if self.fail_at_end {
                        Err(io::Error::other("medium removed"))
                    } else {
                        Ok(0)
                    };
                }
                // Short reads of odd sizes.
                let n = buf.len().min(7919).min(self.data.len() - self.pos);
                buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
                self.pos += n;
                Ok(n)
            }
        }
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        for fail in [false, true] {
            let mut r = ReadAhead::spawn(
                Box::new(Src {
                    data: data.clone(),
                    pos: 0,
                    fail_at_end: fail,
                }),
                READ_AHEAD_CHUNK,
            );
            let mut got = Vec::new();
            let res = r.read_to_end(&mut got);
            assert_eq!(got.len(), data.len());
            assert!(got == data);
            assert_eq!(res.is_err(), fail);
        }
    }

    #[test]
    fn not_a_capture_is_refused_with_its_magic() {
        let tmp = write_tmp(b"hello world, not a pcap");
        let err = CaptureFile::open(tmp.path()).err().unwrap().to_string();
        assert!(err.contains("not a pcap or pcapng capture"), "{err}");
        assert!(err.contains("68 65 6c 6c"), "{err}");
    }

    #[test]
    fn empty_file_is_refused() {
        let tmp = write_tmp(b"");
        let err = CaptureFile::open(tmp.path()).err().unwrap().to_string();
        assert!(err.contains("empty"), "{err}");
    }

    #[test]
    fn oversized_record_is_an_error_not_a_loop() {
        let mut file = pcap_header(1);
        let mut r = record(1, &[1]);
        r[8..12].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
        file.extend(r);
        let tmp = write_tmp(&file);
        let mut cap = CaptureFile::open(tmp.path()).unwrap();
        assert!(cap.for_each_packet(|_| {}).is_err());
    }

    /// A little-endian pcapng block: type, total length, body, total length (pcapng
    /// spec section 3.1).
    fn block(t: u32, body: &[u8]) -> Vec<u8> {
        let len = (12 + body.len()) as u32;
        let mut b = t.to_le_bytes().to_vec();
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(body);
        b.extend_from_slice(&len.to_le_bytes());
        b
    }

    /// Section header block body: byte-order magic, version 1.0, unknown section length
    /// (pcapng spec section 4.1).
    fn section_header_body() -> Vec<u8> {
        let mut shb = 0x1a2b3c4du32.to_le_bytes().to_vec();
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        shb
    }

    /// pcapng with two interfaces of different link types (pcapng spec sections 4.1-4.3).
    #[test]
    fn pcapng_with_two_link_types() {
        let shb = section_header_body();
        let idb = |link: u16| {
            let mut b = link.to_le_bytes().to_vec();
            b.extend_from_slice(&0u16.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            b
        };
        let epb = |ifc: u32, data: &[u8; 4]| {
            let mut b = ifc.to_le_bytes().to_vec();
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&5_000_000u32.to_le_bytes());
            b.extend_from_slice(&4u32.to_le_bytes());
            b.extend_from_slice(&4u32.to_le_bytes());
            b.extend_from_slice(data);
            b
        };
        let mut file = block(0x0a0d0d0a, &shb);
        file.extend(block(1, &idb(1)));
        file.extend(block(1, &idb(113)));
        file.extend(block(6, &epb(1, &[9, 9, 9, 9])));
        file.extend(block(6, &epb(0, &[8, 8, 8, 8])));
        file.extend(block(6, &epb(7, &[7, 7, 7, 7])));
        let tmp = write_tmp(&file);
        let mut cap = CaptureFile::open(tmp.path()).unwrap();
        let mut seen = Vec::new();
        let stats = cap
            .for_each_packet(|p| seen.push((p.link, p.ts_us, p.data[0])))
            .unwrap();
        assert_eq!(
            seen,
            vec![
                (LinkType::LINUX_SLL, 5_000_000, 9),
                (LinkType::ETHERNET, 5_000_000, 8)
            ]
        );
        assert_eq!(stats.orphan_packets, 1);
    }

    /// if_tsresol (pcapng spec section 4.2) with bit 7 set is a power of two: 0x94 is
    /// 2^-20 s. pcap-parser 0.17's own helper refuses every such value, and the file was read
    /// as microseconds (3.5 s came out as 3.67 s); decimal resolutions still work.
    #[test]
    fn pcapng_binary_and_decimal_timestamp_resolutions() {
        let shb = section_header_body();
        // Ethernet, snaplen 0, options: if_tsresol (code 9, length 1, padded to 4), end.
        let idb = |tsresol: u8| {
            let mut b = 1u16.to_le_bytes().to_vec();
            b.extend_from_slice(&0u16.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&[9, 0, 1, 0, tsresol, 0, 0, 0, 0, 0, 0, 0]);
            b
        };
        let epb = |ifc: u32, ts: u64| {
            let mut b = ifc.to_le_bytes().to_vec();
            b.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
            b.extend_from_slice(&(ts as u32).to_le_bytes());
            b.extend_from_slice(&4u32.to_le_bytes());
            b.extend_from_slice(&4u32.to_le_bytes());
            b.extend_from_slice(&[0, 0, 0, 0]);
            b
        };
        let mut file = block(0x0a0d0d0a, &shb);
        file.extend(block(1, &idb(0x80 | 20)));
        file.extend(block(1, &idb(9)));
        file.extend(block(1, &idb(0x80 | 10)));
        file.extend(block(6, &epb(0, 7 << 19)));
        file.extend(block(6, &epb(1, 1_234_567_891)));
        file.extend(block(6, &epb(2, 3 * 1024 + 256)));
        let mut cap = CaptureFile::from_bytes("tsresol.pcapng", file).unwrap();
        let mut seen = Vec::new();
        cap.for_each_packet(|p| seen.push(p.ts_us)).unwrap();
        assert_eq!(seen, vec![3_500_000, 1_234_567, 3_250_000]);
    }
}
