//! GF(2^8), the field Reed–Solomon codes over: reed-solomon-erasure's own
//! (same polynomial, same tables), so fragments are byte for byte what
//! `galois_8::ReedSolomon` makes, with the one part that costs — multiplying
//! a whole shard by a constant, and adding it to another — done 16 bytes at
//! a time on wasm `simd128`.
//!
//! The method is the one SSSE3 coders use with `pshufb`: `c · x` is
//! `c · (x & 0x0f) ^ c · (x & 0xf0)`, and each half takes one of 16 values,
//! so two 16-byte tables per constant and two `i8x16_swizzle`s multiply 16
//! bytes. reed-solomon-erasure multiplies byte by byte through a 64 KiB
//! table, which wasm cannot vectorise. On x86-64 with SSSE3 (checked at run
//! time) the same tables go through `pshufb`, for the engine's coding of
//! every upload and import; elsewhere the crate's own slice code runs.

use reed_solomon_erasure::galois_8;

/// GF(2^8) as [`galois_8::Field`], with vector slice multiplication where
/// the target has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gf256;

/// Reed–Solomon over [`Gf256`]: interchangeable with `galois_8::ReedSolomon`.
pub type ReedSolomon = reed_solomon_erasure::ReedSolomon<Gf256>;

impl reed_solomon_erasure::Field for Gf256 {
    const ORDER: usize = 256;
    type Elem = u8;

    fn add(a: u8, b: u8) -> u8 {
        galois_8::add(a, b)
    }

    fn mul(a: u8, b: u8) -> u8 {
        galois_8::mul(a, b)
    }

    fn div(a: u8, b: u8) -> u8 {
        galois_8::div(a, b)
    }

    fn exp(a: u8, n: usize) -> u8 {
        galois_8::exp(a, n)
    }

    fn zero() -> u8 {
        0
    }

    fn one() -> u8 {
        1
    }

    fn nth_internal(n: usize) -> u8 {
        n as u8
    }

    fn mul_slice(c: u8, input: &[u8], out: &mut [u8]) {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        simd::mul_slice::<false>(c, input, out);
        #[cfg(target_arch = "x86_64")]
        if ssse3::mul_slice::<false>(c, input, out) {
            return;
        }
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        galois_8::mul_slice(c, input, out);
    }

    fn mul_slice_add(c: u8, input: &[u8], out: &mut [u8]) {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        simd::mul_slice::<true>(c, input, out);
        #[cfg(target_arch = "x86_64")]
        if ssse3::mul_slice::<true>(c, input, out) {
            return;
        }
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        galois_8::mul_slice_xor(c, input, out);
    }
}

/// The two 16-entry tables of `c`: `c · i` and `c · (i << 4)` for i < 16.
#[cfg_attr(not(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128"))), allow(dead_code))]
fn nibble_tables(c: u8) -> ([u8; 16], [u8; 16]) {
    let mut low = [0u8; 16];
    let mut high = [0u8; 16];
    for i in 0..16u8 {
        low[i as usize] = galois_8::mul(c, i);
        high[i as usize] = galois_8::mul(c, i << 4);
    }
    (low, high)
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    use super::{galois_8, nibble_tables};

    /// `out = c · input`, or with `ADD` `out ^= c · input`.
    pub fn mul_slice<const ADD: bool>(c: u8, input: &[u8], out: &mut [u8]) {
        assert_eq!(input.len(), out.len(), "slices of one shard length");
        let (low, high) = nibble_tables(c);
        let low = load(&low);
        let high = load(&high);
        let mask = u8x16_splat(0x0f);
        let mut inputs = input.chunks_exact(16);
        let mut outs = out.chunks_exact_mut(16);
        for (i, o) in (&mut inputs).zip(&mut outs) {
            let x = load(i);
            let mut product = v128_xor(i8x16_swizzle(low, v128_and(x, mask)), i8x16_swizzle(high, u8x16_shr(x, 4)));
            if ADD {
                product = v128_xor(product, load(o));
            }
            // SAFETY: `o` is 16 bytes long (`chunks_exact_mut(16)`), and
            // `v128_store` writes 16 bytes with no alignment required.
            unsafe { v128_store(o.as_mut_ptr().cast(), product) };
        }
        for (i, o) in inputs.remainder().iter().zip(outs.into_remainder()) {
            let product = galois_8::mul(c, *i);
            *o = if ADD { *o ^ product } else { product };
        }
    }

    /// The first 16 bytes of `bytes` as a vector.
    fn load(bytes: &[u8]) -> v128 {
        assert!(bytes.len() >= 16);
        // SAFETY: 16 bytes are there (checked above), and `v128_load`
        // reads 16 bytes with no alignment required.
        unsafe { v128_load(bytes.as_ptr().cast()) }
    }
}

#[cfg(target_arch = "x86_64")]
mod ssse3 {
    use std::arch::x86_64::*;

    use super::{galois_8, nibble_tables};

    /// `out = c · input`, or with `ADD` `out ^= c · input`, if the CPU has
    /// SSSE3; whether it did.
    pub fn mul_slice<const ADD: bool>(c: u8, input: &[u8], out: &mut [u8]) -> bool {
        if !std::is_x86_feature_detected!("ssse3") {
            return false;
        }
        // SAFETY: the CPU has SSSE3 (checked just above).
        unsafe { mul_slice_ssse3::<ADD>(c, input, out) };
        true
    }

    #[target_feature(enable = "ssse3")]
    unsafe fn mul_slice_ssse3<const ADD: bool>(c: u8, input: &[u8], out: &mut [u8]) {
        assert_eq!(input.len(), out.len(), "slices of one shard length");
        let (low, high) = nibble_tables(c);
        let low = load(&low);
        let high = load(&high);
        let mask = _mm_set1_epi8(0x0f);
        let mut inputs = input.chunks_exact(16);
        let mut outs = out.chunks_exact_mut(16);
        for (i, o) in (&mut inputs).zip(&mut outs) {
            let x = load(i);
            let low_half = _mm_shuffle_epi8(low, _mm_and_si128(x, mask));
            let high_half = _mm_shuffle_epi8(high, _mm_and_si128(_mm_srli_epi64::<4>(x), mask));
            let mut product = _mm_xor_si128(low_half, high_half);
            if ADD {
                product = _mm_xor_si128(product, load(o));
            }
            // SAFETY: `o` is 16 bytes long (`chunks_exact_mut(16)`), and
            // `_mm_storeu_si128` writes 16 bytes with no alignment required.
            unsafe { _mm_storeu_si128(o.as_mut_ptr().cast(), product) };
        }
        for (i, o) in inputs.remainder().iter().zip(outs.into_remainder()) {
            let product = galois_8::mul(c, *i);
            *o = if ADD { *o ^ product } else { product };
        }
    }

    /// The first 16 bytes of `bytes` as a vector.
    #[target_feature(enable = "ssse3")]
    fn load(bytes: &[u8]) -> __m128i {
        assert!(bytes.len() >= 16);
        // SAFETY: 16 bytes are there (checked above), and `_mm_loadu_si128`
        // reads 16 bytes with no alignment required.
        unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use reed_solomon_erasure::Field;

    #[test]
    fn the_nibble_tables_multiply_every_byte_as_the_full_table_does() {
        for c in 0..=255u8 {
            let (low, high) = nibble_tables(c);
            for x in 0..=255u8 {
                assert_eq!(low[(x & 0x0f) as usize] ^ high[(x >> 4) as usize], galois_8::mul(c, x), "{c} · {x}");
            }
        }
    }

    proptest! {
        /// The fragment format: parity is what reed-solomon-erasure's own
        /// field gives, for any data, any shard length (odd tails too).
        #[test]
        fn parity_is_byte_for_byte_that_of_galois_8(
            data in proptest::collection::vec(any::<u8>(), 1..600),
            k in 1usize..6,
            m in 1usize..4,
        ) {
            let shard_len = data.len().div_ceil(k);
            let mut ours = data.clone();
            ours.resize(shard_len * (k + m), 0);
            let mut theirs = ours.clone();
            let mut shards: Vec<&mut [u8]> = ours.chunks_mut(shard_len).collect();
            ReedSolomon::new(k, m).unwrap().encode(&mut shards).unwrap();
            let mut shards: Vec<&mut [u8]> = theirs.chunks_mut(shard_len).collect();
            galois_8::ReedSolomon::new(k, m).unwrap().encode(&mut shards).unwrap();
            prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn slice_multiplication_is_bytewise_multiplication(c in any::<u8>(), input in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut out = vec![0u8; input.len()];
            Gf256::mul_slice(c, &input, &mut out);
            let expected: Vec<u8> = input.iter().map(|&x| galois_8::mul(c, x)).collect();
            prop_assert_eq!(&out, &expected);
            Gf256::mul_slice_add(c, &input, &mut out);
            prop_assert!(out.iter().all(|&b| b == 0), "adding a value to itself gives zero");
        }
    }
}
