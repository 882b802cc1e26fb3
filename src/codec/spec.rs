//! [`CodecSpec`]: choosing a codec from a command-line string.

use std::fmt;
use std::str::FromStr;

use super::{
    ByteOrder, Codec, CodecError, DelimiterCodec, FixedLengthCodec, FrameCodec, LengthFieldCodec,
    LineCodec, LineEnding,
};

const USAGE: &str = "expected one of: line[=lf|crlf] | delimiter=<hex>[,<hex>...] | fixed=<n> \
                     | length-field=<1|2|3|4|8>,<be|le> | frame";

/// A codec chosen at run time, e.g. from a `--codec` command-line option.
///
/// Syntax (as parsed by [`FromStr`] and printed by [`Display`](fmt::Display)):
///
/// | spec | codec |
/// |---|---|
/// | `line`, `line=lf`, `line=crlf` | [`LineCodec`], delimiter stripped, encoding with `\n` (default) or `\r\n` |
/// | `delimiter=<hex>[,<hex>…]` | [`DelimiterCodec`] with these delimiters (hex bytes, optional `0x`), stripped; the first is used for encoding. E.g. `delimiter=0d0a,00` |
/// | `fixed=<n>` | [`FixedLengthCodec`] of `n` bytes |
/// | `length-field=<1\|2\|3\|4\|8>,<be\|le>` | [`LengthFieldCodec::new`]: see below |
/// | `frame` | [`FrameCodec`] (4-byte big-endian payload length) |
///
/// `length-field=N,ORDER` means: every frame is an `N`-byte length field in the given
/// byte order, counting the payload only (no adjustment), followed by the payload.
/// The header is on the wire but stripped from the decoded payload, and encoding
/// prepends it again — so decoding a stream and re-encoding each payload with the
/// same codec reproduces the stream byte for byte (this holds for every spec).
///
/// [`build`](Self::build)'s `max_frame_len` bounds the *payload* for every spec (the
/// line ending, delimiter or length header comes on top), so one command-line limit
/// means the same thing whatever the codec.
///
/// ```
/// use netloop::codec::{CodecSpec, DEFAULT_MAX_FRAME_LEN};
///
/// let spec: CodecSpec = "length-field=2,le".parse().unwrap();
/// let mut codec = spec.build(DEFAULT_MAX_FRAME_LEN).unwrap();
/// let wire = b"\x03\x00abc";
/// let d = codec.decode(wire).unwrap().unwrap();
/// assert_eq!(d.payload(wire), b"abc");
/// assert_eq!(codec.encode(d.payload(wire)).unwrap().to_vec(), wire);
///
/// assert_eq!("delimiter=0x0D0A".parse::<CodecSpec>().unwrap().to_string(), "delimiter=0d0a");
/// assert!("fixed=ten".parse::<CodecSpec>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CodecSpec {
    /// `line[=lf|crlf]`.
    Line(LineEnding),
    /// `delimiter=<hex>[,<hex>...]`: one or more delimiters, the first used for encoding.
    Delimiter(Vec<Vec<u8>>),
    /// `fixed=<n>`.
    Fixed(usize),
    /// `length-field=<n>,<be|le>`.
    LengthField {
        /// The length field size: 1, 2, 3, 4 or 8.
        length_field_length: usize,
        /// The length field byte order.
        byte_order: ByteOrder,
    },
    /// `frame`.
    Frame,
}

impl CodecSpec {
    /// Builds the codec, with `max_frame_len` bounding the payload length.
    ///
    /// Fails with [`CodecError::InvalidConfig`] if the combination is invalid (for
    /// example a delimiter spec with an empty or duplicated delimiter, or a fixed
    /// length of 0 or above `max_frame_len`).
    pub fn build(&self, max_frame_len: usize) -> Result<Box<dyn Codec>, CodecError> {
        Ok(match self {
            CodecSpec::Line(ending) => Box::new(
                LineCodec::new()
                    .with_ending(*ending)
                    .with_max_frame_len(max_frame_len),
            ),
            CodecSpec::Delimiter(delims) => Box::new(
                DelimiterCodec::with_delimiters(delims.iter().cloned())?
                    .with_max_frame_len(max_frame_len),
            ),
            CodecSpec::Fixed(n) => {
                Box::new(FixedLengthCodec::with_max_frame_len(*n, max_frame_len)?)
            }
            CodecSpec::LengthField {
                length_field_length: n,
                byte_order,
            } => Box::new(
                LengthFieldCodec::builder()
                    .length_field_length(*n)
                    .byte_order(*byte_order)
                    .initial_bytes_to_strip(*n)
                    // Netty's limit counts the header; ours counts the payload.
                    .max_frame_length(max_frame_len.saturating_add(*n))
                    .build()?,
            ),
            CodecSpec::Frame => Box::new(FrameCodec::new().with_max_frame_len(max_frame_len)),
        })
    }
}

fn bad(msg: impl fmt::Display) -> CodecError {
    CodecError::InvalidSpec(format!("{msg}; {USAGE}"))
}

fn parse_hex(s: &str) -> Result<Vec<u8>, CodecError> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if digits.is_empty() || digits.len() % 2 != 0 {
        return Err(bad(format_args!(
            "delimiter `{s}` must be a non-empty, even number of hex digits"
        )));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            digits
                .get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .filter(|_| {
                    digits.as_bytes()[i..i + 2]
                        .iter()
                        .all(u8::is_ascii_hexdigit)
                })
                .ok_or_else(|| bad(format_args!("`{s}` is not hex")))
        })
        .collect()
}

impl FromStr for CodecSpec {
    type Err = CodecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (name, arg) = match s.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (s, None),
        };
        match (name.to_ascii_lowercase().as_str(), arg) {
            ("line", None) => Ok(CodecSpec::Line(LineEnding::Lf)),
            ("line", Some(a)) => match a.to_ascii_lowercase().as_str() {
                "lf" => Ok(CodecSpec::Line(LineEnding::Lf)),
                "crlf" => Ok(CodecSpec::Line(LineEnding::CrLf)),
                _ => Err(bad(format_args!("unknown line ending `{a}`"))),
            },
            ("delimiter", Some(a)) => a
                .split(',')
                .map(|h| parse_hex(h.trim()))
                .collect::<Result<Vec<_>, _>>()
                .map(CodecSpec::Delimiter),
            ("fixed", Some(a)) => a
                .parse()
                .map(CodecSpec::Fixed)
                .map_err(|_| bad(format_args!("fixed length `{a}` is not a number"))),
            ("length-field", Some(a)) => {
                let (n, order) = a
                    .split_once(',')
                    .ok_or_else(|| bad("length-field needs <size>,<be|le>"))?;
                let length_field_length = match n.trim() {
                    "1" => 1,
                    "2" => 2,
                    "3" => 3,
                    "4" => 4,
                    "8" => 8,
                    other => return Err(bad(format_args!("length field size `{other}`"))),
                };
                let byte_order = match order.trim().to_ascii_lowercase().as_str() {
                    "be" => ByteOrder::BigEndian,
                    "le" => ByteOrder::LittleEndian,
                    other => return Err(bad(format_args!("byte order `{other}`"))),
                };
                Ok(CodecSpec::LengthField {
                    length_field_length,
                    byte_order,
                })
            }
            ("frame", None) => Ok(CodecSpec::Frame),
            ("delimiter" | "fixed" | "length-field", None) => {
                Err(bad(format_args!("`{name}` needs an argument")))
            }
            ("frame", Some(_)) => Err(bad("`frame` takes no argument")),
            _ => Err(bad(format_args!("unknown codec `{s}`"))),
        }
    }
}

impl fmt::Display for CodecSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecSpec::Line(LineEnding::Lf) => f.write_str("line"),
            CodecSpec::Line(LineEnding::CrLf) => f.write_str("line=crlf"),
            CodecSpec::Delimiter(delims) => {
                f.write_str("delimiter=")?;
                for (i, d) in delims.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    for b in d {
                        write!(f, "{b:02x}")?;
                    }
                }
                Ok(())
            }
            CodecSpec::Fixed(n) => write!(f, "fixed={n}"),
            CodecSpec::LengthField {
                length_field_length,
                byte_order,
            } => {
                let o = match byte_order {
                    ByteOrder::BigEndian => "be",
                    ByteOrder::LittleEndian => "le",
                };
                write!(f, "length-field={length_field_length},{o}")
            }
            CodecSpec::Frame => f.write_str("frame"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> CodecSpec {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_all_forms() {
        assert_eq!(parse("line"), CodecSpec::Line(LineEnding::Lf));
        assert_eq!(parse(" LINE=CRLF "), CodecSpec::Line(LineEnding::CrLf));
        assert_eq!(parse("delimiter=00"), CodecSpec::Delimiter(vec![vec![0]]));
        assert_eq!(
            parse("delimiter=0x0d0A, ff"),
            CodecSpec::Delimiter(vec![vec![0x0d, 0x0a], vec![0xff]])
        );
        assert_eq!(parse("fixed=16"), CodecSpec::Fixed(16));
        assert_eq!(
            parse("length-field=8,le"),
            CodecSpec::LengthField {
                length_field_length: 8,
                byte_order: ByteOrder::LittleEndian
            }
        );
        assert_eq!(parse("frame"), CodecSpec::Frame);
    }

    #[test]
    fn rejects_bad_specs() {
        for s in [
            "",
            "lines",
            "line=cr",
            "delimiter",
            "delimiter=",
            "delimiter=0",
            "delimiter=zz",
            "delimiter=0x",
            "delimiter=+1",
            "delimiter=0a,",
            "fixed",
            "fixed=-1",
            "length-field=4",
            "length-field=5,be",
            "length-field=4,network",
            "frame=4",
        ] {
            assert!(
                matches!(s.parse::<CodecSpec>(), Err(CodecError::InvalidSpec(_))),
                "{s:?} should be rejected"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "line",
            "line=crlf",
            "delimiter=0d0a,00",
            "fixed=3",
            "length-field=1,be",
            "length-field=4,le",
            "frame",
        ] {
            assert_eq!(parse(s).to_string(), s);
            assert_eq!(parse(&parse(s).to_string()), parse(s));
        }
    }

    #[test]
    fn build_errors_are_config_errors() {
        assert!(matches!(
            parse("fixed=0").build(10),
            Err(CodecError::InvalidConfig(_))
        ));
        assert!(matches!(
            parse("fixed=11").build(10),
            Err(CodecError::InvalidConfig(_))
        ));
        assert!(matches!(
            parse("delimiter=00,00").build(10),
            Err(CodecError::InvalidConfig(_))
        ));
    }

    #[test]
    fn every_spec_decodes_and_re_encodes_byte_for_byte() {
        let payloads: [&[u8]; 3] = [b"abc", b"xyz", b"123"];
        for s in [
            "line",
            "line=crlf",
            "delimiter=00",
            "delimiter=0d0a,0a",
            "fixed=3",
            "length-field=1,be",
            "length-field=2,le",
            "length-field=3,be",
            "length-field=4,be",
            "length-field=8,le",
            "frame",
        ] {
            let mut codec = parse(s).build(3).unwrap();
            let mut wire = Vec::new();
            for p in payloads {
                codec.encode(p).unwrap().write_to(&mut wire);
            }
            let mut re = Vec::new();
            let mut src = &wire[..];
            let mut n = 0;
            while let Some(d) = codec.decode(src).unwrap() {
                assert_eq!(d.payload(src), payloads[n], "{s}");
                codec.encode(d.payload(src)).unwrap().write_to(&mut re);
                src = &src[d.consumed..];
                n += 1;
            }
            assert_eq!(n, 3, "{s}");
            assert_eq!(re, wire, "{s}");
            // The limit bounds the payload for every spec.
            assert!(codec.encode(b"abcd").is_err(), "{s}");
        }
    }
}
