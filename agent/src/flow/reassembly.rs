//! The opening bytes of one direction of a flow, in order.
//!
//! Detectors need the first few KiB of each direction as the application wrote them: a TLS
//! ClientHello or Certificate is often split over several segments, segments arrive out of
//! order, and retransmissions overlap. This keeps a contiguous prefix up to a fixed cap,
//! a handful of out-of-order segments waiting for the gap before them, and then stops:
//! it is a window for classification, not a full reassembler. Overlaps keep the bytes seen
//! first (the "first" policy of Suricata's stream engine and of BSD stacks).
//!
//! For UDP the "stream" is the first datagrams, each cut to [`MAX_DATAGRAM`] bytes, with
//! their boundaries kept.

/// Bytes kept per direction.
pub const MAX_STREAM_BYTES: usize = 8 * 1024;
/// Out-of-order segments held while waiting for a gap to fill.
pub const MAX_PENDING_SEGMENTS: usize = 16;
/// Datagrams kept per direction of a UDP flow.
pub const MAX_DATAGRAMS: usize = 8;
/// Bytes kept of each datagram.
pub const MAX_DATAGRAM: usize = 2048;

/// How far a [`Stream`] fed from another thread has got, kept by the side that feeds it
/// (`analyze::staged`): where its TCP bytes start, and how many datagrams and bytes it
/// holds. The feeder asks before copying a payload and copies none that the stream would
/// drop unread: a segment at or beyond the window, a datagram past the cap. It follows
/// [`Stream::syn`], [`Stream::add_segment`] and [`Stream::add_datagram`] rule for rule.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reach {
    /// TCP: the sequence number of the first byte, once known; UDP: bytes held.
    at: u32,
    /// TCP: 1 once `at` is known; UDP: datagrams held. (A flow is one or the other.)
    n: u8,
}

impl Reach {
    /// A SYN with initial sequence number `isn`: as [`Stream::syn`], the bytes start at
    /// `isn + 1` unless they have started already.
    pub fn syn(&mut self, isn: u32) {
        if self.n == 0 {
            (self.at, self.n) = (isn.wrapping_add(1), 1);
        }
    }

    /// Whether a TCP segment of `len` bytes at `seq` may add to the stream. `false` only
    /// when [`Stream::add_segment`] would certainly drop it: empty, or starting at or
    /// beyond [`MAX_STREAM_BYTES`] from the first byte.
    pub fn segment(&mut self, seq: u32, len: usize) -> bool {
        if len == 0 {
            return false;
        }
        if self.n == 0 {
            (self.at, self.n) = (seq, 1);
        }
        // As in `Stream::add_segment`: an offset before the first byte is negative.
        let rel = seq.wrapping_sub(self.at) as i32;
        rel < MAX_STREAM_BYTES as i32
    }

    /// Whether a datagram of `len` bytes will be kept, counting it if so: as
    /// [`Stream::add_datagram`], at most [`MAX_DATAGRAMS`], each cut to [`MAX_DATAGRAM`],
    /// while fewer than [`MAX_STREAM_BYTES`] are held.
    pub fn datagram(&mut self, len: usize) -> bool {
        let have = self.at as usize;
        let take = len
            .min(MAX_DATAGRAM)
            .min(MAX_STREAM_BYTES.saturating_sub(have));
        if take == 0 || usize::from(self.n) >= MAX_DATAGRAMS {
            return false;
        }
        self.n += 1;
        // At most MAX_STREAM_BYTES: fits.
        self.at = u32::try_from(have + take).unwrap_or(u32::MAX);
        true
    }
}

/// One direction's opening bytes.
#[derive(Debug, Default, Clone)]
pub struct Stream {
    base: Option<u32>,
    data: Vec<u8>,
    pending: Vec<(u32, Vec<u8>)>,
    ends: Vec<u32>,
    /// More segments were out of order than could be held: a gap will not fill.
    gap: bool,
}

impl Stream {
    /// The contiguous prefix.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Datagram boundaries (UDP): end offsets into [`Stream::bytes`].
    pub fn ends(&self) -> &[u32] {
        &self.ends
    }

    /// No more bytes will be added (cap reached or an unfillable gap).
    pub fn is_done(&self) -> bool {
        self.data.len() >= MAX_STREAM_BYTES || self.gap || self.ends.len() >= MAX_DATAGRAMS
    }

    /// Sets the initial sequence number from a SYN (the first data byte is `isn + 1`).
    pub fn syn(&mut self, isn: u32) {
        if self.base.is_none() && self.data.is_empty() {
            self.base = Some(isn.wrapping_add(1));
        }
    }

    /// Adds a TCP segment; returns whether the contiguous prefix grew.
    pub fn add_segment(&mut self, seq: u32, payload: &[u8]) -> bool {
        if payload.is_empty() || self.data.len() >= MAX_STREAM_BYTES {
            return false;
        }
        let base = *self.base.get_or_insert(seq);
        // Relative offset in sequence space (RFC 793 arithmetic is modulo 2^32).
        let rel = seq.wrapping_sub(base) as i32;
        let (offset, payload) = if rel < 0 {
            // Starts before the first byte we track: keep only what lies after it.
            let skip = rel.unsigned_abs() as usize;
            match payload.get(skip..) {
                Some(rest) if !rest.is_empty() => (0usize, rest),
                _ => return false,
            }
        } else {
            (rel as usize, payload)
        };
        if offset >= MAX_STREAM_BYTES {
            return false;
        }
        let before = self.data.len();
        if offset <= before {
            self.append_from(offset, payload);
            self.drain_pending();
        } else if self.pending.len() < MAX_PENDING_SEGMENTS {
            let keep = payload.len().min(MAX_STREAM_BYTES - offset);
            let bytes = payload.get(..keep).unwrap_or(payload).to_vec();
            self.pending.push((offset as u32, bytes));
        } else {
            self.gap = true;
        }
        self.data.len() > before
    }

    fn append_from(&mut self, offset: usize, payload: &[u8]) {
        let have = self.data.len();
        let skip = have.saturating_sub(offset);
        if let Some(new) = payload.get(skip..) {
            let room = MAX_STREAM_BYTES.saturating_sub(have);
            let take = new.len().min(room);
            self.data.extend_from_slice(new.get(..take).unwrap_or(&[]));
        }
    }

    fn drain_pending(&mut self) {
        loop {
            let have = self.data.len();
            let Some(i) = self.pending.iter().position(|(o, _)| *o as usize <= have) else {
                break;
            };
            let (o, bytes) = self.pending.swap_remove(i);
            self.append_from(o as usize, &bytes);
        }
        if self.data.len() >= MAX_STREAM_BYTES {
            self.pending.clear();
        }
    }

    /// Adds a datagram; returns whether it was kept.
    pub fn add_datagram(&mut self, payload: &[u8]) -> bool {
        if payload.is_empty() || self.ends.len() >= MAX_DATAGRAMS {
            return false;
        }
        let room = MAX_STREAM_BYTES.saturating_sub(self.data.len());
        let take = payload.len().min(MAX_DATAGRAM).min(room);
        if take == 0 {
            return false;
        }
        self.data
            .extend_from_slice(payload.get(..take).unwrap_or(&[]));
        self.ends.push(self.data.len() as u32);
        true
    }

    /// Frees the buffers once classification is over.
    pub fn release(&mut self) {
        *self = Stream {
            base: self.base,
            ..Stream::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_segments_concatenate() {
        let mut s = Stream::default();
        s.syn(999);
        assert!(s.add_segment(1000, b"hello "));
        assert!(s.add_segment(1006, b"world"));
        assert_eq!(s.bytes(), b"hello world");
    }

    #[test]
    fn out_of_order_segment_waits_for_the_gap() {
        let mut s = Stream::default();
        s.syn(0);
        assert!(!s.add_segment(7, b"world"));
        assert_eq!(s.bytes(), b"");
        assert!(s.add_segment(1, b"hello "));
        assert_eq!(s.bytes(), b"hello world");
    }

    #[test]
    fn retransmission_and_overlap_keep_first_bytes() {
        let mut s = Stream::default();
        s.syn(0);
        s.add_segment(1, b"abcdef");
        assert!(!s.add_segment(1, b"abcdef"));
        assert!(s.add_segment(4, b"XYZghi"));
        assert_eq!(s.bytes(), b"abcdefghi");
    }

    #[test]
    fn sequence_wraparound() {
        let mut s = Stream::default();
        s.syn(u32::MAX - 2);
        s.add_segment(u32::MAX - 1, b"ab");
        s.add_segment(0, b"cd");
        assert_eq!(s.bytes(), b"abcd");
    }

    #[test]
    fn segment_before_base_is_trimmed() {
        let mut s = Stream::default();
        s.add_segment(100, b"cdef");
        s.add_segment(98, b"abcdefgh");
        assert_eq!(s.bytes(), b"cdefgh");
    }

    #[test]
    fn stops_at_the_cap() {
        let mut s = Stream::default();
        let big = vec![7u8; 5000];
        s.add_segment(0, &big);
        s.add_segment(5000, &big);
        assert_eq!(s.bytes().len(), MAX_STREAM_BYTES);
        assert!(s.is_done());
        assert!(!s.add_segment(10000, &big));
    }

    #[test]
    fn too_many_holes_mark_a_gap() {
        let mut s = Stream::default();
        s.syn(0);
        for i in 0..=MAX_PENDING_SEGMENTS as u32 {
            s.add_segment(100 + i * 10, b"x");
        }
        assert!(s.is_done());
    }

    #[test]
    fn datagrams_keep_boundaries() {
        let mut s = Stream::default();
        s.add_datagram(b"one");
        s.add_datagram(b"three");
        assert_eq!(s.ends(), &[3, 8]);
        assert_eq!(s.bytes(), b"onethree");
    }

    /// What a stream keeps and what its feeder's [`Reach`] lets through, over segments
    /// and datagrams of every kind (before and after the window, overlapping, out of
    /// order, across the sequence wrap): whenever the reach says "drop", the stream
    /// would have kept nothing of it; and the datagrams the reach counts are the ones
    /// the stream keeps.
    mod reach {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn a_segment_it_drops_would_add_nothing(
                isn in any::<u32>(),
                syn_first in any::<bool>(),
                segs in proptest::collection::vec((0u32..20_000, 0usize..3000), 1..40),
            ) {
                let (mut s, mut r) = (Stream::default(), Reach::default());
                if syn_first {
                    s.syn(isn);
                    r.syn(isn);
                }
                for (off, len) in segs {
                    // Offsets from a little before the first byte to well past the window.
                    let seq = isn.wrapping_add(off).wrapping_sub(1000);
                    let payload = vec![0x5a; len];
                    let before = (s.bytes().len(), s.pending.len(), s.gap);
                    let pass = r.segment(seq, len);
                    let grew = s.add_segment(seq, &payload);
                    if !pass {
                        prop_assert!(!grew);
                        prop_assert_eq!(before, (s.bytes().len(), s.pending.len(), s.gap));
                    }
                }
            }

            #[test]
            fn it_counts_the_datagrams_the_stream_keeps(
                lens in proptest::collection::vec(0usize..5000, 1..20),
            ) {
                let (mut s, mut r) = (Stream::default(), Reach::default());
                for len in lens {
                    let kept = s.add_datagram(&vec![1; len]);
                    prop_assert_eq!(r.datagram(len), kept);
                }
            }
        }
    }
}
