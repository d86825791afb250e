//! XOR unmasking (RFC 6455 §5.3), eight bytes at a time.
//!
//! Masked payloads are the bulk of client traffic, so the mask is applied as a
//! `u64` word (the 4-byte key repeated twice, rotated to the current offset)
//! over `chunks_exact_mut(8)`, which the compiler also vectorises; only the
//! last 0..7 bytes are done one by one.

/// Unmasks `buf` in place. `offset` is the position of `buf[0]` within the
/// frame payload, so a payload cut into pieces can be unmasked piece by piece.
pub fn unmask(buf: &mut [u8], key: [u8; 4], offset: u64) {
    let r = (offset % 4) as usize;
    let k = [key[r], key[(r + 1) % 4], key[(r + 2) % 4], key[(r + 3) % 4]];
    let k8 = [k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]];
    let kw = u64::from_ne_bytes(k8);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = u64::from_ne_bytes(w) ^ kw;
        c.copy_from_slice(&x.to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so the rotated key lines up.
    for (b, m) in chunks.into_remainder().iter_mut().zip(k.iter().cycle()) {
        *b ^= m;
    }
}

/// Appends `src` unmasked to `dst` (one copy, then XOR in place).
#[inline]
pub fn extend_unmasked(dst: &mut Vec<u8>, src: &[u8], key: Option<[u8; 4]>, offset: u64) {
    let start = dst.len();
    dst.extend_from_slice(src);
    if let Some(key) = key {
        unmask(&mut dst[start..], key, offset);
    }
}

/// Makes room for `add` more bytes in a buffer that will never hold more
/// than `cap`: grows by doubling like `Vec`, but never reserves past `cap`
/// (a 16 MiB cap must not cost 32 MiB).
pub fn reserve_capped(v: &mut Vec<u8>, add: usize, cap: usize) {
    let need = v.len() + add;
    if need > v.capacity() {
        let target = v.capacity().saturating_mul(2).max(need).min(cap.max(need));
        v.reserve_exact(target - v.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(buf: &mut [u8], key: [u8; 4], offset: u64) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[((offset + i as u64) % 4) as usize];
        }
    }

    #[test]
    fn matches_bytewise_reference() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..64usize {
            for offset in 0..8u64 {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut a = data.clone();
                let mut b = data.clone();
                unmask(&mut a, key, offset);
                reference(&mut b, key, offset);
                assert_eq!(a, b, "len={len} offset={offset}");
                // Unaligned start inside a larger buffer.
                let mut big = vec![0u8; len + 3];
                big[3..].copy_from_slice(&data);
                unmask(&mut big[3..], key, offset);
                assert_eq!(&big[3..], &b[..]);
            }
        }
    }

    #[test]
    fn reserve_stays_within_cap() {
        let mut v = Vec::new();
        for _ in 0..100 {
            reserve_capped(&mut v, 1000, 50_000);
            v.extend_from_slice(&[0u8; 1000][..1000.min(50_000 - v.len())]);
            assert!(v.capacity() <= 50_000, "{}", v.capacity());
            if v.len() == 50_000 {
                break;
            }
        }
        assert_eq!(v.len(), 50_000);
    }

    #[test]
    fn rfc_masked_hello() {
        let mut p = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        unmask(&mut p, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&p, b"Hello");
        // In two pieces.
        let mut v = Vec::new();
        extend_unmasked(
            &mut v,
            &[0x7f, 0x9f, 0x4d],
            Some([0x37, 0xfa, 0x21, 0x3d]),
            0,
        );
        extend_unmasked(&mut v, &[0x51, 0x58], Some([0x37, 0xfa, 0x21, 0x3d]), 3);
        assert_eq!(&v, b"Hello");
    }
}
