//! RESP2 reply writers: each appends one reply to a `Vec<u8>`.
//!
//! ```
//! use netloop::protocol::resp::writer::*;
//! let mut out = Vec::new();
//! write_array_len(&mut out, 2);
//! write_bulk(&mut out, b"hi");
//! write_integer(&mut out, -7);
//! assert_eq!(out, b"*2\r\n$2\r\nhi\r\n:-7\r\n");
//! ```

/// Appends `s` with CR and LF replaced by spaces (status/error lines are
/// single-line).
fn push_line(out: &mut Vec<u8>, s: &[u8]) {
    if s.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(
            s.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        out.extend_from_slice(s);
    }
}

/// `+<s>\r\n` (CR/LF in `s` become spaces).
pub fn write_simple(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'+');
    push_line(out, s);
    out.extend_from_slice(b"\r\n");
}

/// `+OK\r\n`.
pub fn write_ok(out: &mut Vec<u8>) {
    out.extend_from_slice(b"+OK\r\n");
}

/// `-<msg>\r\n`; `msg` includes the error code, e.g. `ERR syntax error`
/// (CR/LF become spaces).
pub fn write_error(out: &mut Vec<u8>, msg: &[u8]) {
    out.push(b'-');
    push_line(out, msg);
    out.extend_from_slice(b"\r\n");
}

/// `:<n>\r\n`.
pub fn write_integer(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `$<len>\r\n<data>\r\n`.
pub fn write_bulk(out: &mut Vec<u8>, data: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(data.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// `$-1\r\n`, the RESP2 null.
pub fn write_null_bulk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// `*<len>\r\n`; follow it with `len` replies.
pub fn write_array_len(out: &mut Vec<u8>, len: usize) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `*-1\r\n`, the RESP2 null array.
pub fn write_null_array(out: &mut Vec<u8>) {
    out.extend_from_slice(b"*-1\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_forms() {
        let mut out = Vec::new();
        write_simple(&mut out, b"a\r\nb");
        write_ok(&mut out);
        write_error(&mut out, b"ERR x");
        write_integer(&mut out, i64::MIN);
        write_bulk(&mut out, b"");
        write_null_bulk(&mut out);
        write_null_array(&mut out);
        assert_eq!(
            out,
            b"+a  b\r\n+OK\r\n-ERR x\r\n:-9223372036854775808\r\n$0\r\n\r\n$-1\r\n*-1\r\n"
        );
    }
}
