//! SHA-256 of several independent messages at once.
//!
//! One SHA-256 computation is a chain: every two rounds (`SHA256RNDS2`) wait for the
//! previous two, so one message keeps a core's SHA unit busy only a fraction of the
//! time. Interleaving the rounds of two or four messages fills the gaps. Backup
//! verification has many independent messages (files and chunks), so a reader thread
//! hashes the pieces it read from several files together with [`update_lanes`].
//!
//! Where the CPU has no SHA extensions (or on other architectures) every lane is hashed
//! on its own with `sha2`, which picks its own best implementation. Results are the same
//! either way; the tests compare them with `sha2` on random lengths and splits.
//!
//! The one `unsafe` call is in the `ni` module, after a run-time check of the CPU.

#![deny(missing_docs)]

#[cfg(target_arch = "x86_64")]
mod ni;

/// Bytes per SHA-256 block (FIPS 180-4, section 5.1.1).
const BLOCK: usize = 64;

/// Initial hash value (FIPS 180-4, section 5.3.3).
const H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// One message being hashed.
#[derive(Clone, Debug)]
pub struct Lane {
    state: [u32; 8],
    buf: [u8; BLOCK],
    buf_len: usize,
    len: u64,
}

impl Default for Lane {
    fn default() -> Lane {
        Lane::new()
    }
}

impl Lane {
    /// An empty message.
    pub fn new() -> Lane {
        Lane {
            state: H0,
            buf: [0; BLOCK],
            buf_len: 0,
            len: 0,
        }
    }

    /// Adds bytes to this message alone.
    pub fn update(&mut self, data: &[u8]) {
        let rest = self.absorb_partial(data);
        let full = rest.len() / BLOCK * BLOCK;
        compress_one(&mut self.state, &rest[..full]);
        self.keep_tail(&rest[full..]);
    }

    /// The digest.
    pub fn finalize(mut self) -> [u8; 32] {
        // Padding: 0x80, zeros, then the length in bits, big-endian (FIPS 180-4 5.1.1).
        let bits = self.len.wrapping_mul(8);
        let mut pad = [0u8; 2 * BLOCK];
        pad[0] = 0x80;
        let zeros = (BLOCK + 56 - (self.buf_len + 1) % BLOCK) % BLOCK;
        let n = 1 + zeros + 8;
        pad[1 + zeros..n].copy_from_slice(&bits.to_be_bytes());
        let len = self.len;
        self.update(&pad[..n]);
        self.len = len;
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// Fills the partial block from `data` (hashing it when it fills up) and returns the
    /// rest of `data`.
    fn absorb_partial<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.buf_len == 0 {
            return data;
        }
        let take = (BLOCK - self.buf_len).min(data.len());
        self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
        self.buf_len += take;
        if self.buf_len == BLOCK {
            let block = self.buf;
            compress_one(&mut self.state, &block);
            self.buf_len = 0;
        }
        &data[take..]
    }

    /// Keeps fewer than a block's bytes for later.
    fn keep_tail(&mut self, tail: &[u8]) {
        debug_assert!(self.buf_len == 0 || tail.is_empty());
        self.buf[self.buf_len..self.buf_len + tail.len()].copy_from_slice(tail);
        self.buf_len += tail.len();
    }
}

/// Hashes whole blocks into one state.
fn compress_one(state: &mut [u32; 8], blocks: &[u8]) {
    for b in blocks.chunks_exact(BLOCK) {
        if let Ok(b) = <&[u8; BLOCK]>::try_from(b) {
            sha2::block_api::compress256(state, std::slice::from_ref(b));
        }
    }
}

/// Adds `data[i]` to `lanes[i]` for every `i` (extra entries of the longer slice are
/// ignored), hashing the lanes' whole blocks together where the CPU allows.
pub fn update_lanes(lanes: &mut [&mut Lane], data: &[&[u8]]) {
    // Each lane's whole blocks after its partial block is filled.
    let mut work: Vec<(&mut Lane, &[u8], &[u8])> = Vec::with_capacity(lanes.len());
    for (lane, d) in lanes.iter_mut().zip(data) {
        let rest = lane.absorb_partial(d);
        let full = rest.len() / BLOCK * BLOCK;
        work.push((&mut **lane, &rest[..full], &rest[full..]));
    }
    compress_many(&mut work);
    for (lane, _, tail) in work {
        lane.keep_tail(tail);
    }
}

/// Hashes every lane's whole blocks, several lanes at a time when possible.
fn compress_many(work: &mut [(&mut Lane, &[u8], &[u8])]) {
    #[cfg(target_arch = "x86_64")]
    if ni::available() {
        loop {
            // The lanes with blocks left, longest first.
            let mut live: Vec<usize> = (0..work.len()).filter(|&i| !work[i].1.is_empty()).collect();
            live.sort_by_key(|&i| std::cmp::Reverse(work[i].1.len()));
            match live.len() {
                0 => return,
                1 => break,
                _ => {}
            }
            let group = if live.len() >= 4 { 4 } else { 2 };
            let picked = &live[..group];
            let blocks = picked
                .iter()
                .map(|&i| work[i].1.len() / BLOCK)
                .min()
                .unwrap_or(0);
            let n = blocks * BLOCK;
            if group == 4 {
                compress_group::<4>(work, picked, n);
            } else {
                compress_group::<2>(work, picked, n);
            }
            for &i in picked {
                work[i].1 = &work[i].1[n..];
            }
        }
    }
    for (lane, blocks, _) in work.iter_mut() {
        compress_one(&mut lane.state, blocks);
        *blocks = &[];
    }
}

/// Compresses the first `n` bytes (whole blocks) of the `N` lanes `picked` together.
#[cfg(target_arch = "x86_64")]
fn compress_group<const N: usize>(
    work: &mut [(&mut Lane, &[u8], &[u8])],
    picked: &[usize],
    n: usize,
) {
    let mut states = [H0; N];
    let mut data: [&[u8]; N] = [&[]; N];
    for (k, &i) in picked.iter().take(N).enumerate() {
        states[k] = work[i].0.state;
        data[k] = work[i].1.get(..n).unwrap_or_default();
    }
    ni::compress(&mut states, data);
    for (k, &i) in picked.iter().take(N).enumerate() {
        work[i].0.state = states[k];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use sha2::Digest;

    fn sha2(d: &[u8]) -> [u8; 32] {
        sha2::Sha256::digest(d).into()
    }

    /// The FIPS 180-4 example "abc" (NIST CSRC "SHA256.pdf"), the two-block example and
    /// the empty message.
    #[test]
    fn known_answers() {
        let hex = |d: [u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let mut l = Lane::new();
        l.update(b"abc");
        assert_eq!(
            hex(l.finalize()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut l = Lane::new();
        l.update(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq");
        assert_eq!(
            l.finalize(),
            sha2(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
        );
        assert_eq!(Lane::new().finalize(), sha2(b""));
    }

    /// Every length around the block and padding boundaries, alone and in lanes.
    #[test]
    fn lengths_around_block_boundaries() {
        let data: Vec<u8> = (0..700u32).map(|i| (i * 31 + 7) as u8).collect();
        for n in 0..data.len() {
            let mut l = Lane::new();
            l.update(&data[..n]);
            assert_eq!(l.finalize(), sha2(&data[..n]), "length {n}");
        }
    }

    /// Random messages, split at random points, fed through lanes of random width: the
    /// digests equal sha2's.
    #[test]
    fn lanes_equal_sha2_on_random_splits() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5e77e4);
        for round in 0..300 {
            let width = rng.random_range(1..=6);
            let msgs: Vec<Vec<u8>> = (0..width)
                .map(|_| {
                    let len = match rng.random_range(0..4) {
                        0 => rng.random_range(0..130),
                        1 => rng.random_range(0..5000),
                        _ => rng.random_range(0..70_000),
                    };
                    (0..len).map(|_| rng.random()).collect()
                })
                .collect();
            let mut lanes: Vec<Lane> = vec![Lane::new(); width];
            let mut pos = vec![0usize; width];
            while pos.iter().zip(&msgs).any(|(p, m)| *p < m.len()) {
                let mut pieces: Vec<&[u8]> = Vec::new();
                for (i, m) in msgs.iter().enumerate() {
                    let take = rng.random_range(0..=20_000).min(m.len() - pos[i]);
                    pieces.push(&m[pos[i]..pos[i] + take]);
                    pos[i] += take;
                }
                let mut refs: Vec<&mut Lane> = lanes.iter_mut().collect();
                update_lanes(&mut refs, &pieces);
            }
            for (i, (l, m)) in lanes.into_iter().zip(&msgs).enumerate() {
                assert_eq!(
                    l.finalize(),
                    sha2(m),
                    "round {round}, lane {i}, {} bytes",
                    m.len()
                );
            }
        }
    }
}
