//! Byte search helpers shared by the delimiter codecs (no unsafe, no dependencies).

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// `true` if some byte of `v` is zero (the classic SWAR test; exact for "any").
#[inline(always)]
fn has_zero_byte(v: u64) -> bool {
    v.wrapping_sub(LO) & !v & HI != 0
}

#[inline(always)]
fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(bytes);
    u64::from_ne_bytes(w)
}

/// Index of the first `needle` in `hay`: like `memchr`, 16 bytes per step.
#[inline]
pub(crate) fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    let rep = LO.wrapping_mul(u64::from(needle));
    let mut i = 0;
    while i + 16 <= hay.len() {
        let a = word(&hay[i..i + 8]) ^ rep;
        let b = word(&hay[i + 8..i + 16]) ^ rep;
        if has_zero_byte(a) || has_zero_byte(b) {
            break;
        }
        i += 16;
    }
    hay[i..].iter().position(|&b| b == needle).map(|p| p + i)
}

/// Could `needle` start at `pos` of the virtual concatenation `a ++ b ++ (any bytes)`?
/// True if it matches there, or if `a[pos..] ++ b` is a prefix of it (bytes after `b`
/// could complete it). `pos < a.len()`; used to check payload ++ trailer without
/// concatenating.
#[inline]
pub(crate) fn may_match_at_chained(a: &[u8], b: &[u8], pos: usize, needle: &[u8]) -> bool {
    let first = &a[pos..];
    if first.len() >= needle.len() {
        return first[..needle.len()] == *needle;
    }
    let (n1, n2) = needle.split_at(first.len());
    if first != n1 {
        return false;
    }
    let k = n2.len().min(b.len());
    b[..k] == n2[..k]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_byte_matches_naive() {
        let mut seed = 0x1234_5678u32;
        for len in 0..100 {
            for _ in 0..20 {
                let hay: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        (seed >> 16) as u8 % 8
                    })
                    .collect();
                for needle in 0..9u8 {
                    assert_eq!(
                        find_byte(needle, &hay),
                        hay.iter().position(|&b| b == needle),
                        "{hay:?} {needle}"
                    );
                }
            }
        }
        // High bytes (the SWAR borrow edge case).
        let hay = [
            0x80u8, 0x81, 0xff, 0x01, 0x00, 0x7f, 0xfe, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
            0x80, 0x80, 0xff,
        ];
        for needle in [0x00u8, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x02] {
            assert_eq!(
                find_byte(needle, &hay),
                hay.iter().position(|&b| b == needle)
            );
        }
    }

    #[test]
    fn chained_match() {
        assert!(may_match_at_chained(b"xab", b"a", 1, b"aba"));
        assert!(may_match_at_chained(b"xab", b"", 1, b"ab"));
        // Could be completed by the bytes after the trailer.
        assert!(may_match_at_chained(b"xab", b"", 1, b"abc"));
        assert!(may_match_at_chained(b"a", b"b", 0, b"aba"));
        assert!(!may_match_at_chained(b"a", b"c", 0, b"aba"));
        assert!(!may_match_at_chained(b"xab", b"c", 0, b"xac"));
        assert!(may_match_at_chained(b"xa", b"bc", 1, b"abc"));
    }
}
