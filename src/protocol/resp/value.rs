//! Owned RESP2 values: decoding replies (for clients, tools and tests) and
//! encoding them back.

/// Deepest array nesting [`Value::parse`] accepts.
const MAX_DEPTH: usize = 64;

/// A RESP2 value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+text`
    Simple(Vec<u8>),
    /// `-text`
    Error(Vec<u8>),
    /// `:n`
    Integer(i64),
    /// `$len data`
    Bulk(Vec<u8>),
    /// `$-1`
    Null,
    /// `*len ...`
    Array(Vec<Value>),
    /// `*-1`
    NullArray,
}

/// Why a byte string is not a RESP2 value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid RESP value")]
pub struct InvalidValue;

impl Value {
    /// Decodes one value from the start of `src`: `Ok(None)` when
    /// incomplete, else the value and the bytes it occupied.
    ///
    /// ```
    /// use netloop::protocol::resp::Value;
    /// let (v, n) = Value::parse(b"*2\r\n:1\r\n$-1\r\n").unwrap().unwrap();
    /// assert_eq!(v, Value::Array(vec![Value::Integer(1), Value::Null]));
    /// assert_eq!(n, 13);
    /// ```
    pub fn parse(src: &[u8]) -> Result<Option<(Value, usize)>, InvalidValue> {
        parse_at(src, 0, 0)
    }

    /// Decodes a whole buffer of consecutive values (e.g. pipelined
    /// replies); fails if it ends with an incomplete value.
    pub fn parse_all(mut src: &[u8]) -> Result<Vec<Value>, InvalidValue> {
        let mut values = Vec::new();
        while !src.is_empty() {
            let (v, n) = Self::parse(src)?.ok_or(InvalidValue)?;
            values.push(v);
            src = &src[n..];
        }
        Ok(values)
    }

    /// Appends the encoding of this value.
    pub fn write(&self, out: &mut Vec<u8>) {
        use super::writer::*;
        match self {
            Value::Simple(s) => write_simple(out, s),
            Value::Error(s) => write_error(out, s),
            Value::Integer(n) => write_integer(out, *n),
            Value::Bulk(b) => write_bulk(out, b),
            Value::Null => write_null_bulk(out),
            Value::NullArray => write_null_array(out),
            Value::Array(items) => {
                write_array_len(out, items.len());
                for item in items {
                    item.write(out);
                }
            }
        }
    }

    /// Shorthand for a bulk string value.
    pub fn bulk(data: impl AsRef<[u8]>) -> Value {
        Value::Bulk(data.as_ref().to_vec())
    }
}

fn line(src: &[u8], start: usize) -> Option<(&[u8], usize)> {
    let rest = src.get(start..)?;
    let i = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..i], start + i + 2))
}

fn int(s: &[u8]) -> Result<i64, InvalidValue> {
    super::parser::parse_i64(s).ok_or(InvalidValue)
}

fn parse_at(src: &[u8], pos: usize, depth: usize) -> Result<Option<(Value, usize)>, InvalidValue> {
    let Some(&tag) = src.get(pos) else {
        return Ok(None);
    };
    let Some((text, next)) = line(src, pos + 1) else {
        return Ok(None);
    };
    let v = match tag {
        b'+' => (Value::Simple(text.to_vec()), next),
        b'-' => (Value::Error(text.to_vec()), next),
        b':' => (Value::Integer(int(text)?), next),
        b'$' => match int(text)? {
            -1 => (Value::Null, next),
            n if n < 0 => return Err(InvalidValue),
            n => {
                let end = next.checked_add(n as usize).ok_or(InvalidValue)?;
                if src.len() < end.saturating_add(2) {
                    return Ok(None);
                }
                if &src[end..end + 2] != b"\r\n" {
                    return Err(InvalidValue);
                }
                (Value::Bulk(src[next..end].to_vec()), end + 2)
            }
        },
        b'*' => match int(text)? {
            -1 => (Value::NullArray, next),
            n if n < 0 || depth >= MAX_DEPTH => return Err(InvalidValue),
            n => {
                let mut items = Vec::with_capacity((n as usize).min(1024));
                let mut p = next;
                for _ in 0..n {
                    let Some((item, q)) = parse_at(src, p, depth + 1)? else {
                        return Ok(None);
                    };
                    items.push(item);
                    p = q;
                }
                (Value::Array(items), p)
            }
        },
        _ => return Err(InvalidValue),
    };
    Ok(Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let v = Value::Array(vec![
            Value::Simple(b"OK".to_vec()),
            Value::Error(b"ERR x".to_vec()),
            Value::Integer(-3),
            Value::bulk("a\r\nb"),
            Value::Null,
            Value::NullArray,
            Value::Array(vec![]),
        ]);
        let mut out = Vec::new();
        v.write(&mut out);
        assert_eq!(Value::parse(&out).unwrap(), Some((v.clone(), out.len())));
        for i in 0..out.len() {
            assert_eq!(Value::parse(&out[..i]).unwrap(), None);
        }
        assert_eq!(Value::parse_all(&out).unwrap(), vec![v]);
        assert!(Value::parse(b"?x\r\n").is_err());
        assert!(Value::parse(b"$-2\r\n").is_err());
        let deep = b"*1\r\n".repeat(100);
        assert!(Value::parse(&deep).is_err());
    }
}
