//! Reading files off a medium: plain `read()` into one reusable buffer, hashing each
//! piece while it is still in cache. Never mmap: a medium that is truncated or pulled out
//! under a mapping raises SIGBUS, where `read()` returns an error the caller can handle.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bytes read per `read()` call: small enough that the piece is still in L2 when SHA-256
/// runs over it, large enough that system calls cost little.
pub(crate) const PIECE: usize = 256 << 10;

/// Bytes read per lane and turn when several files are hashed together: [`LANES`]
/// pieces still fit in L2.
pub(crate) const LANE_PIECE: usize = 64 << 10;

/// Files (segments) one reader thread hashes together; SHA-256 rounds of independent
/// messages overlap on one core (see `setten_sha256x`).
pub(crate) const LANES: usize = 4;

/// Opens without following a symlink in the last component, without blocking on a FIFO
/// swapped in since the listing, and without becoming a controlling terminal.
pub(crate) fn open_nofollow(path: &Path, dir: bool) -> io::Result<File> {
    let mut flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    if dir {
        flags |= libc::O_DIRECTORY;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
}

/// Errors that may mean the whole medium went away (unmounted, pulled out, disconnected)
/// rather than one file being bad. The caller then checks whether the root is still
/// there before blaming the file.
pub(crate) fn maybe_medium_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ENOENT
                | libc::EIO
                | libc::ENXIO
                | libc::ENODEV
                | libc::ESTALE
                | libc::ENOTCONN
                | libc::ESHUTDOWN
                | libc::ENOMEDIUM
        )
    )
}

/// A shared read-rate cap (bytes per second) for all readers.
#[derive(Debug)]
pub(crate) struct Throttle {
    rate: u64,
    start: Instant,
    read: AtomicU64,
}

impl Throttle {
    pub fn new(rate: u64) -> Throttle {
        Throttle {
            rate: rate.max(1),
            start: Instant::now(),
            read: AtomicU64::new(0),
        }
    }

    fn account(&self, n: u64, stop: &AtomicBool) {
        let total = self.read.fetch_add(n, Ordering::Relaxed) + n;
        let due = Duration::from_secs_f64(total as f64 / self.rate as f64);
        // Sleep in short steps so a stop request is heard.
        while !stop.load(Ordering::Relaxed) {
            let el = self.start.elapsed();
            if el >= due {
                break;
            }
            std::thread::sleep((due - el).min(Duration::from_millis(50)));
        }
    }
}

/// Why a read did not complete.
#[derive(Debug)]
pub(crate) enum ReadErr {
    /// The OS said no.
    Io(io::Error),
    /// The run was asked to stop.
    Stopped,
}

impl From<io::Error> for ReadErr {
    fn from(e: io::Error) -> ReadErr {
        ReadErr::Io(e)
    }
}

/// One reader thread's buffer and the run's shared state.
pub(crate) struct Reader<'a> {
    buf: Vec<u8>,
    /// One buffer per lane for [`Reader::read_lane`].
    lanes: Vec<Vec<u8>>,
    pub throttle: Option<&'a Throttle>,
    pub stop: &'a AtomicBool,
    /// Bytes read by all readers, for progress.
    pub counter: &'a AtomicU64,
}

impl<'a> Reader<'a> {
    pub fn new(
        throttle: Option<&'a Throttle>,
        stop: &'a AtomicBool,
        counter: &'a AtomicU64,
    ) -> Reader<'a> {
        Reader {
            buf: vec![0; PIECE],
            lanes: Vec::new(),
            throttle,
            stop,
            counter,
        }
    }

    /// Reads up to `len` bytes from the file's position, handing each piece to `sink`.
    /// Returns the bytes read: fewer than `len` only at end of file.
    pub fn read(
        &mut self,
        f: &mut File,
        len: u64,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<u64, ReadErr> {
        let mut done = 0u64;
        while done < len {
            if self.stop.load(Ordering::Relaxed) {
                return Err(ReadErr::Stopped);
            }
            let want = (len - done).min(PIECE as u64) as usize;
            let n = match f.read(&mut self.buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReadErr::Io(e)),
            };
            sink(&self.buf[..n]);
            done += n as u64;
            self.counter.fetch_add(n as u64, Ordering::Relaxed);
            if let Some(t) = self.throttle {
                t.account(n as u64, self.stop);
            }
        }
        Ok(done)
    }

    /// Reads up to `want` bytes (at most [`LANE_PIECE`]) into lane buffer `lane`;
    /// 0 at end of file. Counts the bytes and keeps to the read-rate cap like
    /// [`Reader::read`]. The bytes are then in [`Reader::lane`].
    pub fn read_lane(&mut self, f: &mut File, lane: usize, want: u64) -> Result<usize, ReadErr> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(ReadErr::Stopped);
        }
        while self.lanes.len() <= lane {
            self.lanes.push(vec![0; LANE_PIECE]);
        }
        let want = want.min(LANE_PIECE as u64) as usize;
        let Some(buf) = self.lanes.get_mut(lane).and_then(|b| b.get_mut(..want)) else {
            return Ok(0);
        };
        let n = loop {
            match f.read(buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReadErr::Io(e)),
            }
        };
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(t) = self.throttle {
            t.account(n as u64, self.stop);
        }
        Ok(n)
    }

    /// Lane buffer `lane` (empty before the first [`Reader::read_lane`] on it).
    pub fn lane(&self, lane: usize) -> &[u8] {
        self.lanes.get(lane).map_or(&[], Vec::as_slice)
    }
}

/// How often the coordinating thread hears from [`pool`] even when no job finished.
pub(crate) const TICK: Duration = Duration::from_millis(200);

/// What [`pool`] tells the calling thread.
pub(crate) enum Event<R> {
    /// Job `i` finished.
    Done(usize, R),
    /// Time passed (at least every [`TICK`], and once at the end).
    Tick,
}

/// Most finished jobs waiting for the calling thread; readers wait beyond it.
const MAX_QUEUED: usize = 1024;

/// Runs jobs `0..n_jobs` on `threads` reader threads, handing each result and a regular
/// tick to `on_event` on the calling thread. Jobs are taken in order; after `stop` is set
/// no new job starts. Results are collected in a bounded queue that the calling thread
/// drains every [`TICK`] (or when it fills up), so readers do not wake it for every small
/// file, and a slow caller slows the readers instead of piling up memory.
pub(crate) fn pool<R: Send>(
    threads: usize,
    n_jobs: usize,
    stop: &AtomicBool,
    throttle: Option<&Throttle>,
    counter: &AtomicU64,
    work: &(dyn Fn(&mut Reader<'_>, usize) -> R + Sync),
    on_event: &mut dyn FnMut(Event<R>),
) {
    pool_threads(
        threads,
        n_jobs,
        stop,
        throttle,
        counter,
        &|r, next, emit| {
            while let Some(i) = next() {
                let res = work(r, i);
                emit(i, res);
            }
        },
        on_event,
    )
}

/// A reader thread's body for [`pool_threads`]: it takes job numbers from `next` (None:
/// no more, or stopped) and hands each result to `emit`, in any order, as many jobs at
/// a time as it likes.
pub(crate) type ThreadBody<'f, R> = dyn Fn(&mut Reader<'_>, &mut dyn FnMut() -> Option<usize>, &mut dyn FnMut(usize, R))
    + Sync
    + 'f;

/// [`pool`] where each reader thread runs `body`, which may keep several jobs in
/// progress at once (verification hashes several files' pieces together).
pub(crate) fn pool_threads<R: Send>(
    threads: usize,
    n_jobs: usize,
    stop: &AtomicBool,
    throttle: Option<&Throttle>,
    counter: &AtomicU64,
    body: &ThreadBody<'_, R>,
    on_event: &mut dyn FnMut(Event<R>),
) {
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Condvar, Mutex, PoisonError};
    struct Queue<R> {
        done: Vec<(usize, R)>,
        live: usize,
    }
    let next = AtomicUsize::new(0);
    let threads = threads.clamp(1, 256).min(n_jobs.max(1));
    let q = Mutex::new(Queue {
        done: Vec::new(),
        live: threads,
    });
    let to_caller = Condvar::new();
    let to_readers = Condvar::new();
    let lock = || q.lock().unwrap_or_else(PoisonError::into_inner);
    /// Stops the readers if the calling thread leaves early (a panic in `on_event`), so
    /// none waits forever on a full queue.
    struct Release<'a>(&'a AtomicBool, &'a Condvar);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.store(true, Ordering::Relaxed);
            }
            self.1.notify_all();
        }
    }
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (next, lock, to_caller, to_readers) = (&next, &lock, &to_caller, &to_readers);
            s.spawn(move || {
                let mut r = Reader::new(throttle, stop, counter);
                let mut take = || {
                    if stop.load(Ordering::Relaxed) {
                        return None;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    (i < n_jobs).then_some(i)
                };
                let mut emit = |i: usize, res: R| {
                    let mut g = lock();
                    while g.done.len() >= MAX_QUEUED && !stop.load(Ordering::Relaxed) {
                        to_caller.notify_one();
                        g = to_readers
                            .wait_timeout(g, TICK)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                    g.done.push((i, res));
                };
                body(&mut r, &mut take, &mut emit);
                lock().live -= 1;
                to_caller.notify_one();
            });
        }
        let _release = Release(stop, &to_readers);
        let mut last = Instant::now();
        loop {
            let (batch, live) = {
                let mut g = lock();
                if g.live > 0 && g.done.len() < MAX_QUEUED {
                    let wait = TICK.saturating_sub(last.elapsed());
                    g = to_caller
                        .wait_timeout(g, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                (std::mem::take(&mut g.done), g.live)
            };
            to_readers.notify_all();
            for (i, res) in batch {
                on_event(Event::Done(i, res));
            }
            if last.elapsed() >= TICK {
                on_event(Event::Tick);
                last = Instant::now();
            }
            if live == 0 && lock().done.is_empty() {
                break;
            }
        }
    });
    on_event(Event::Tick);
}

/// Whole-file and per-chunk hashes of one file, with the leading sample for scoring.
#[derive(Debug, Default)]
pub(crate) struct FileHash {
    pub sha256: [u8; 32],
    pub chunks: Vec<[u8; 32]>,
    /// Bytes actually read.
    pub size: u64,
    /// The first bytes, for the score.
    pub sample: Vec<u8>,
    /// Size or mtime changed while it was read.
    pub changed: bool,
}

/// Hashes a whole file (already opened and checked to be a regular file of `size`
/// bytes at open time).
pub(crate) fn hash_file(
    r: &mut Reader<'_>,
    f: &mut File,
    size: u64,
    chunk_size: u64,
    sample_len: usize,
) -> Result<FileHash, ReadErr> {
    let mut out = FileHash::default();
    let n_chunks = size.div_ceil(chunk_size);
    let mut whole = (n_chunks > 1).then(Sha256::new);
    let mut total = 0u64;
    for _ in 0..n_chunks {
        let len = chunk_size.min(size - total);
        let mut h = Sha256::new();
        let sample = &mut out.sample;
        let n = r.read(f, len, &mut |b| {
            h.update(b);
            if let Some(w) = whole.as_mut() {
                w.update(b);
            }
            if sample.len() < sample_len {
                let take = (sample_len - sample.len()).min(b.len());
                sample.extend_from_slice(&b[..take]);
            }
        })?;
        total += n;
        out.chunks.push(h.finalize().into());
        if n < len {
            // Shrank while being read: the record holds what was there.
            out.changed = true;
            break;
        }
    }
    out.size = total;
    out.sha256 = match whole {
        Some(w) if out.chunks.len() > 1 => w.finalize().into(),
        _ => match out.chunks.first() {
            Some(c) => *c,
            None => Sha256::digest(b"").into(),
        },
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader_parts() -> (AtomicBool, AtomicU64) {
        (AtomicBool::new(false), AtomicU64::new(0))
    }

    #[test]
    fn whole_and_chunk_hashes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let data: Vec<u8> = (0..(2 * 65536 + 100u32)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let (stop, counter) = reader_parts();
        let mut r = Reader::new(None, &stop, &counter);
        let mut f = File::open(&p).unwrap();
        let h = hash_file(&mut r, &mut f, data.len() as u64, 65536, 1000).unwrap();
        let sha = |b: &[u8]| -> [u8; 32] { Sha256::digest(b).into() };
        assert_eq!(h.sha256, sha(&data));
        assert_eq!(
            h.chunks,
            [
                sha(&data[..65536]),
                sha(&data[65536..131072]),
                sha(&data[131072..])
            ]
        );
        assert_eq!(
            (h.size, h.changed, h.sample.len()),
            (data.len() as u64, false, 1000)
        );
        assert_eq!(counter.load(Ordering::Relaxed), data.len() as u64);

        // A single chunk: whole = chunk. An empty file: SHA-256 of nothing, no chunks.
        let mut f = File::open(&p).unwrap();
        let h = hash_file(&mut r, &mut f, 10, 65536, 0).unwrap();
        assert_eq!(h.chunks, [sha(&data[..10])]);
        assert_eq!(h.sha256, sha(&data[..10]));
        let h = hash_file(&mut r, &mut f, 0, 65536, 0).unwrap();
        assert!(h.chunks.is_empty());
        assert_eq!(
            hex::encode(h.sha256),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );

        // Claimed larger than it is: what was read, marked changed.
        let mut f = File::open(&p).unwrap();
        let h = hash_file(&mut r, &mut f, data.len() as u64 + 70000, 65536, 0).unwrap();
        assert!(h.changed);
        assert_eq!(h.size, data.len() as u64);
        assert_eq!(h.sha256, sha(&data));
    }

    #[test]
    fn stop_and_throttle() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, vec![0u8; 100_000]).unwrap();
        let (stop, counter) = reader_parts();
        let t = Throttle::new(1_000_000);
        let mut r = Reader::new(Some(&t), &stop, &counter);
        let start = Instant::now();
        let mut f = File::open(&p).unwrap();
        let mut total = 0;
        while total < 100_000 {
            let n = r.read_lane(&mut f, 1, 100_000).unwrap();
            assert!(n > 0 && n <= LANE_PIECE);
            total += n;
        }
        assert_eq!(r.read_lane(&mut f, 1, 10).unwrap(), 0, "end of file");
        assert_eq!(counter.load(Ordering::Relaxed), 100_000);
        assert!(start.elapsed() >= Duration::from_millis(90));
        stop.store(true, Ordering::Relaxed);
        assert!(matches!(
            r.read_lane(&mut File::open(&p).unwrap(), 0, 10),
            Err(ReadErr::Stopped)
        ));
    }

    #[test]
    fn pool_delivers_every_job_once_and_stops_on_request() {
        let (stop, counter) = reader_parts();
        for threads in [1, 3] {
            let mut seen = vec![0u32; 5000];
            let mut ticks = 0;
            pool(
                threads,
                seen.len(),
                &stop,
                None,
                &counter,
                &|_, i| i * 2,
                &mut |ev| match ev {
                    Event::Done(i, r) => {
                        assert_eq!(r, i * 2);
                        seen[i] += 1;
                    }
                    Event::Tick => ticks += 1,
                },
            );
            assert!(seen.iter().all(|&n| n == 1));
            assert!(ticks >= 1);
        }
        // Stop after the first results: no job starts afterwards.
        let started = AtomicU64::new(0);
        let mut got = 0;
        pool(
            2,
            100_000,
            &stop,
            None,
            &counter,
            &|_, _| {
                started.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            },
            &mut |ev| {
                if let Event::Done(..) = ev {
                    got += 1;
                    stop.store(true, Ordering::Relaxed);
                }
            },
        );
        assert!((1..100_000).contains(&got));
        assert_eq!(got, started.load(Ordering::Relaxed));
    }
}
