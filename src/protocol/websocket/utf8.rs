//! Incremental UTF-8 validation, so that text split across fragments (or across
//! reads of one large frame) is rejected as soon as an invalid byte arrives
//! ("fail fast", as the Autobahn testsuite's section 6 checks), not only once the
//! message is complete.
//!
//! The state is the incomplete character at the end of what was seen so far (at
//! most 3 bytes); each new piece completes it, and the rest is checked with the
//! standard library's validator.

/// UTF-8 validity of a byte stream fed in pieces.
///
/// ```
/// use netloop::protocol::websocket::utf8::Utf8Validator;
/// let text = "κόσμε".as_bytes();
/// let mut v = Utf8Validator::default();
/// for b in text {
///     assert!(v.feed(std::slice::from_ref(b)));
/// }
/// assert!(v.is_complete());
///
/// let mut v = Utf8Validator::default();
/// assert!(v.feed(&[0xCE]));      // a valid prefix so far
/// assert!(!v.is_complete());      // but not a whole character
/// assert!(!v.feed(&[0x41]));      // 0xCE must be followed by a continuation byte
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

impl Utf8Validator {
    /// Checks the next piece; `false` once the stream can no longer be valid.
    pub fn feed(&mut self, mut data: &[u8]) -> bool {
        // First finish the character left incomplete by the previous piece.
        while self.pending_len > 0 && !data.is_empty() {
            self.pending[usize::from(self.pending_len)] = data[0];
            self.pending_len += 1;
            data = &data[1..];
            match std::str::from_utf8(&self.pending[..usize::from(self.pending_len)]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_some() => return false,
                Err(_) if self.pending_len == 4 => return false,
                Err(_) => {}
            }
        }
        match std::str::from_utf8(data) {
            Ok(_) => true,
            Err(e) => match e.error_len() {
                Some(_) => false,
                None => {
                    // A valid but incomplete character at the end: keep it.
                    let tail = &data[e.valid_up_to()..];
                    self.pending[..tail.len()].copy_from_slice(tail);
                    self.pending_len = tail.len() as u8;
                    true
                }
            },
        }
    }

    /// Is the stream seen so far whole characters only?
    pub fn is_complete(&self) -> bool {
        self.pending_len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_split_everywhere(bytes: &[u8]) -> bool {
        let whole = std::str::from_utf8(bytes).is_ok();
        for cut in 0..=bytes.len() {
            let mut v = Utf8Validator::default();
            let ok = v.feed(&bytes[..cut]) && v.feed(&bytes[cut..]) && v.is_complete();
            assert_eq!(ok, whole, "{bytes:x?} cut at {cut}");
        }
        let mut v = Utf8Validator::default();
        let ok = bytes.iter().all(|b| v.feed(std::slice::from_ref(b))) && v.is_complete();
        assert_eq!(ok, whole, "{bytes:x?} byte by byte");
        whole
    }

    #[test]
    fn agrees_with_std_at_every_split() {
        assert!(valid_split_everywhere("Hello-µ@ßöäüàá-UTF-8!!".as_bytes()));
        assert!(valid_split_everywhere(&[0xF4, 0x8F, 0xBF, 0xBF])); // U+10FFFF
        assert!(!valid_split_everywhere(&[0xF4, 0x90, 0x80, 0x80])); // > U+10FFFF
        assert!(!valid_split_everywhere(&[0xED, 0xA0, 0x80])); // a surrogate
        assert!(!valid_split_everywhere(&[0xC0, 0xAF])); // overlong
        assert!(!valid_split_everywhere(&[0xCE, 0xBA, 0xE1])); // truncated at the end
        assert!(!valid_split_everywhere(b"\x80"));
    }

    #[test]
    fn fails_as_soon_as_the_bad_byte_arrives() {
        // Autobahn 6.4.1: the first part ends in a prefix that can never complete.
        let mut v = Utf8Validator::default();
        assert!(v.feed("κόσμε".as_bytes()));
        assert!(!v.feed(&[0xF4, 0x90]));
    }
}
