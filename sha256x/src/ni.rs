//! SHA-256 block compression of N messages at once with the x86 SHA extensions.
//!
//! The round structure follows Intel's "Intel SHA Extensions" white paper (Gulley et
//! al., 2013): the state is kept as ABEF and CDGH words, `SHA256RNDS2` does two rounds,
//! `SHA256MSG1`/`SHA256MSG2` extend the message schedule four words at a time. The lanes'
//! instructions are independent, so the CPU overlaps them.
//!
//! Safety: `compress` is the only entry point; it runs the `#[target_feature]` code only
//! after `available()` confirmed every feature it enables, and every load is from a
//! bounds-checked 16-byte slice.

use std::arch::x86_64::*;
use std::sync::OnceLock;

/// Round constants (FIPS 180-4, section 4.2.2).
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// Whether this CPU has everything `compress` uses.
pub(crate) fn available() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::is_x86_feature_detected!("sha")
            && std::is_x86_feature_detected!("sse2")
            && std::is_x86_feature_detected!("ssse3")
            && std::is_x86_feature_detected!("sse4.1")
    })
}

/// Compresses the blocks of `data[i]` into `states[i]`; every `data[i]` has the same
/// length, a multiple of 64. Falls back to one lane at a time without SHA extensions.
pub(crate) fn compress<const N: usize>(states: &mut [[u32; 8]; N], data: [&[u8]; N]) {
    let blocks = data.iter().map(|d| d.len() / 64).min().unwrap_or(0);
    if !available() {
        for (s, d) in states.iter_mut().zip(data) {
            super::compress_one(s, &d[..blocks * 64]);
        }
        return;
    }
    // SAFETY: the CPU supports sha, sse2, ssse3 and sse4.1 (checked just above), which
    // is all `compress_ni` enables.
    unsafe { compress_ni(states, data, blocks) }
}

/// Loads 16 bytes (a slice of exactly 16, so in bounds).
#[inline(always)]
fn load(b: &[u8; 16]) -> __m128i {
    // SAFETY: `b` is 16 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress_ni<const N: usize>(states: &mut [[u32; 8]; N], data: [&[u8]; N], blocks: usize) {
    // Byte order of each 32-bit word: the message is big-endian (FIPS 180-4 3.1).
    let bswap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
    let mut abef = [_mm_setzero_si128(); N];
    let mut cdgh = [_mm_setzero_si128(); N];
    for l in 0..N {
        let s = &states[l];
        let dcba = _mm_set_epi32(s[3] as i32, s[2] as i32, s[1] as i32, s[0] as i32);
        let hgfe = _mm_set_epi32(s[7] as i32, s[6] as i32, s[5] as i32, s[4] as i32);
        let cdab = _mm_shuffle_epi32(dcba, 0xB1);
        let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
        abef[l] = _mm_alignr_epi8(cdab, efgh, 8);
        cdgh[l] = _mm_blend_epi16(efgh, cdab, 0xF0);
    }
    for b in 0..blocks {
        let (save_abef, save_cdgh) = (abef, cdgh);
        let mut w = [[_mm_setzero_si128(); 4]; N];
        for l in 0..N {
            let Some(block) = data[l].get(b * 64..b * 64 + 64) else {
                return;
            };
            for (i, word) in block.chunks_exact(16).enumerate() {
                if let (Ok(word), Some(slot)) = (<&[u8; 16]>::try_from(word), w[l].get_mut(i)) {
                    *slot = _mm_shuffle_epi8(load(word), bswap);
                }
            }
        }
        // 16 groups of four rounds; from group 4 on, the schedule extends itself.
        for g in 0..16 {
            let kv = _mm_set_epi32(
                K[g * 4 + 3] as i32,
                K[g * 4 + 2] as i32,
                K[g * 4 + 1] as i32,
                K[g * 4] as i32,
            );
            for l in 0..N {
                let ws = &mut w[l];
                if g >= 4 {
                    let (v0, v1, v2, v3) =
                        (ws[g % 4], ws[(g + 1) % 4], ws[(g + 2) % 4], ws[(g + 3) % 4]);
                    let t = _mm_add_epi32(_mm_sha256msg1_epu32(v0, v1), _mm_alignr_epi8(v3, v2, 4));
                    ws[g % 4] = _mm_sha256msg2_epu32(t, v3);
                }
                let wk = _mm_add_epi32(ws[g % 4], kv);
                cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], wk);
                abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l], _mm_shuffle_epi32(wk, 0x0E));
            }
        }
        for l in 0..N {
            abef[l] = _mm_add_epi32(abef[l], save_abef[l]);
            cdgh[l] = _mm_add_epi32(cdgh[l], save_cdgh[l]);
        }
    }
    for l in 0..N {
        let feba = _mm_shuffle_epi32(abef[l], 0x1B);
        let dchg = _mm_shuffle_epi32(cdgh[l], 0xB1);
        let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
        let hgef = _mm_alignr_epi8(dchg, feba, 8);
        let s = &mut states[l];
        s[0] = _mm_extract_epi32(dcba, 0) as u32;
        s[1] = _mm_extract_epi32(dcba, 1) as u32;
        s[2] = _mm_extract_epi32(dcba, 2) as u32;
        s[3] = _mm_extract_epi32(dcba, 3) as u32;
        s[4] = _mm_extract_epi32(hgef, 0) as u32;
        s[5] = _mm_extract_epi32(hgef, 1) as u32;
        s[6] = _mm_extract_epi32(hgef, 2) as u32;
        s[7] = _mm_extract_epi32(hgef, 3) as u32;
    }
}
