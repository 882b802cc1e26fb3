//! Property tests for the codecs: encode → split the wire into random reads → decode
//! the way an engine does gives back the original payloads; garbage never panics,
//! never breaks the `Decoded` invariants and never makes a decoder wait for more
//! than its limit allows.

use netloop::codec::{
    ByteOrder, Codec, CodecError, CodecSpec, Decoder, DelimiterCodec, FixedLengthCodec, FrameCodec,
    LengthFieldCodec, LineCodec, LineEnding,
};
use proptest::prelude::*;

/// Splits `wire` at `cuts` (arbitrary numbers, taken modulo the length) into reads.
fn chunks<'a>(wire: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    points.push(0);
    points.push(wire.len());
    points.sort_unstable();
    points.windows(2).map(|w| &wire[w[0]..w[1]]).collect()
}

/// Feeds `reads` like an engine: append each read to the inbound buffer, decode
/// repeatedly, drain what was consumed. Checks the `Decoded` invariants and that
/// the decoder never waits with `bound` or more bytes buffered.
/// Returns the frames and the leftover bytes, or the first error.
fn feed<C: Decoder + ?Sized>(
    codec: &mut C,
    reads: &[&[u8]],
    bound: usize,
) -> Result<(Vec<Vec<u8>>, Vec<u8>), CodecError> {
    let mut inbound = Vec::new();
    let mut frames = Vec::new();
    for read in reads {
        inbound.extend_from_slice(read);
        loop {
            match codec.decode(&inbound)? {
                Some(d) => {
                    assert!(d.consumed >= 1, "no progress: {d:?}");
                    assert!(d.consumed <= inbound.len(), "{d:?} > {}", inbound.len());
                    assert!(d.payload.start <= d.payload.end, "{d:?}");
                    assert!(d.payload.end <= d.consumed, "{d:?}");
                    frames.push(inbound[d.payload.clone()].to_vec());
                    inbound.drain(..d.consumed);
                }
                None => {
                    assert!(
                        inbound.len() < bound,
                        "waiting with {} bytes buffered, bound {bound}",
                        inbound.len()
                    );
                    break;
                }
            }
        }
    }
    Ok((frames, inbound))
}

/// Encodes every payload the codec accepts; returns (accepted payloads, wire).
fn encode_all<C: Codec + ?Sized>(codec: &C, payloads: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut wire = Vec::new();
    let mut accepted = Vec::new();
    for p in payloads {
        if let Ok(e) = codec.encode(p) {
            assert_eq!(e.body, &p[..]);
            e.write_to(&mut wire);
            accepted.push(p.clone());
        }
    }
    (accepted, wire)
}

fn round_trip<C: Codec>(
    mut codec: C,
    payloads: &[Vec<u8>],
    cuts: &[usize],
) -> Result<Vec<Vec<u8>>, TestCaseError> {
    let (accepted, wire) = encode_all(&codec, payloads);
    let (frames, rest) = feed(&mut codec, &chunks(&wire, cuts), usize::MAX)
        .map_err(|e| TestCaseError::fail(format!("decode error {e}")))?;
    prop_assert_eq!(&frames, &accepted);
    prop_assert!(rest.is_empty(), "leftover {:?}", rest);
    Ok(accepted)
}

fn bytes_from(alphabet: &'static [u8], max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(alphabet), 0..max_len)
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(any::<usize>(), 0..12)
}

fn order() -> impl Strategy<Value = ByteOrder> {
    prop_oneof![Just(ByteOrder::BigEndian), Just(ByteOrder::LittleEndian)]
}

proptest! {
    #[test]
    fn line_round_trip(
        crlf in any::<bool>(),
        payloads in prop::collection::vec(bytes_from(b"ab \r\n", 40), 0..10),
        cuts in cuts(),
    ) {
        let ending = if crlf { LineEnding::CrLf } else { LineEnding::Lf };
        let codec = LineCodec::new().with_ending(ending);
        let accepted = round_trip(codec, &payloads, &cuts)?;
        // Only payloads the peer would split differently are refused.
        for p in &payloads {
            let splits = p.contains(&b'\n') || (!crlf && p.last() == Some(&b'\r'));
            prop_assert_eq!(accepted.contains(p), !splits);
        }
    }

    #[test]
    fn line_keep_delimiter_returns_payload_plus_ending(
        crlf in any::<bool>(),
        payloads in prop::collection::vec(bytes_from(b"ab\r", 30), 0..10),
        cuts in cuts(),
    ) {
        let ending = if crlf { LineEnding::CrLf } else { LineEnding::Lf };
        let mut codec = LineCodec::new().with_ending(ending).keep_delimiter(true);
        let (accepted, wire) = encode_all(&codec, &payloads);
        let (frames, rest) = feed(&mut codec, &chunks(&wire, &cuts), usize::MAX).unwrap();
        let expected: Vec<Vec<u8>> =
            accepted.iter().map(|p| [&p[..], ending.as_bytes()].concat()).collect();
        prop_assert_eq!(frames, expected);
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn delimiter_round_trip(
        delims in prop::collection::vec(bytes_from(b"abc", 4), 1..4),
        payloads in prop::collection::vec(bytes_from(b"abcd", 30), 0..10),
        cuts in cuts(),
    ) {
        let Ok(codec) = DelimiterCodec::with_delimiters(delims.clone()) else {
            return Ok(()); // an invalid configuration (empty, duplicate, prefix rule)
        };
        round_trip(codec, &payloads, &cuts)?;
    }

    #[test]
    fn delimiter_round_trip_with_unused_bytes(
        payloads in prop::collection::vec(bytes_from(b"xyz\r", 50), 0..10),
        cuts in cuts(),
    ) {
        // Payloads never contain the delimiters: every one must be accepted.
        let codec = DelimiterCodec::with_delimiters([&b"\r\n"[..], b"\n", b"\0\0"]).unwrap();
        let accepted = round_trip(codec, &payloads, &cuts)?;
        prop_assert_eq!(accepted, payloads);
    }

    #[test]
    fn fixed_round_trip(
        n in 1usize..20,
        seeds in prop::collection::vec(any::<u8>(), 0..10),
        cuts in cuts(),
    ) {
        let payloads: Vec<Vec<u8>> = seeds
            .iter()
            .map(|&s| (0..n).map(|i| s.wrapping_add(i as u8)).collect())
            .collect();
        let accepted = round_trip(FixedLengthCodec::new(n).unwrap(), &payloads, &cuts)?;
        prop_assert_eq!(accepted.len(), payloads.len());
    }

    #[test]
    fn length_field_round_trip(
        field in prop::sample::select(&[1usize, 2, 3, 4, 8][..]),
        order in order(),
        adjustment in 0i64..40,
        includes in any::<bool>(),
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..8),
        cuts in cuts(),
    ) {
        // A prepender with adjustments, and the decoder configuration undoing them.
        let undo = adjustment + if includes { field as i64 } else { 0 };
        let codec = LengthFieldCodec::builder()
            .length_field_length(field)
            .byte_order(order)
            .prepend_length_adjustment(adjustment)
            .length_includes_length_field_length(includes)
            .length_adjustment(-undo)
            .initial_bytes_to_strip(field)
            .build()
            .unwrap();
        let accepted = round_trip(codec, &payloads, &cuts)?;
        prop_assert_eq!(accepted.len(), payloads.len());
    }

    #[test]
    fn length_field_without_strip_yields_header_plus_payload(
        field in prop::sample::select(&[1usize, 2, 3, 4, 8][..]),
        order in order(),
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 0..8),
        cuts in cuts(),
    ) {
        let mut codec = LengthFieldCodec::builder()
            .length_field_length(field)
            .byte_order(order)
            .build()
            .unwrap();
        let (_, wire) = encode_all(&codec, &payloads);
        let (frames, rest) = feed(&mut codec, &chunks(&wire, &cuts), usize::MAX).unwrap();
        prop_assert!(rest.is_empty());
        prop_assert_eq!(frames.concat(), wire);
        for (f, p) in frames.iter().zip(&payloads) {
            prop_assert_eq!(&f[field..], &p[..]);
        }
    }

    #[test]
    fn frame_round_trip(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8),
        cuts in cuts(),
    ) {
        let accepted = round_trip(FrameCodec::new(), &payloads, &cuts)?;
        prop_assert_eq!(accepted.len(), payloads.len());
    }

    #[test]
    fn frame_codec_is_wire_compatible_with_length_field_4_be(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 0..8),
    ) {
        let lf = LengthFieldCodec::new(4, ByteOrder::BigEndian).unwrap();
        let (_, a) = encode_all(&FrameCodec::new(), &payloads);
        let (_, b) = encode_all(&lf, &payloads);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn spec_codecs_round_trip(
        spec in prop::sample::select(&[
            "line", "line=crlf", "delimiter=00", "delimiter=0d0a,0a", "fixed=8",
            "length-field=1,be", "length-field=2,le", "length-field=3,le",
            "length-field=4,be", "length-field=8,be", "frame",
        ][..]),
        payloads in prop::collection::vec(bytes_from(b"abcdefgh\r", 100), 0..10),
        cuts in cuts(),
    ) {
        let codec = spec.parse::<CodecSpec>().unwrap().build(64).unwrap();
        round_trip(codec, &payloads, &cuts)?;
    }
}

/// A codec configuration for the garbage tests, with the buffering bound its
/// decoder must respect: `Ok(None)` only while fewer than `bound` bytes are buffered.
#[derive(Debug, Clone)]
enum Cfg {
    Line(usize),
    Delimiter(Vec<Vec<u8>>, usize),
    Fixed(usize),
    LengthField {
        offset: usize,
        field: usize,
        order: ByteOrder,
        adjustment: i64,
        strip: usize,
        max: usize,
    },
    Frame(usize),
}

impl Cfg {
    fn build(&self) -> Option<(Box<dyn Codec>, usize)> {
        Some(match self {
            Cfg::Line(max) => (Box::new(LineCodec::new().with_max_frame_len(*max)), max + 2),
            Cfg::Delimiter(d, max) => {
                let longest = d.iter().map(Vec::len).max()?;
                let c = DelimiterCodec::with_delimiters(d.clone()).ok()?;
                (Box::new(c.with_max_frame_len(*max)), max + longest)
            }
            Cfg::Fixed(n) => (Box::new(FixedLengthCodec::new(*n).ok()?), *n),
            Cfg::LengthField {
                offset,
                field,
                order,
                adjustment,
                strip,
                max,
            } => {
                let c = LengthFieldCodec::builder()
                    .length_field_offset(*offset)
                    .length_field_length(*field)
                    .byte_order(*order)
                    .length_adjustment(*adjustment)
                    .initial_bytes_to_strip(*strip)
                    .max_frame_length(*max)
                    .build()
                    .ok()?;
                (Box::new(c), *max)
            }
            Cfg::Frame(max) => (
                Box::new(FrameCodec::new().with_max_frame_len(*max)),
                max + 4,
            ),
        })
    }
}

fn any_cfg() -> impl Strategy<Value = Cfg> {
    prop_oneof![
        (0usize..64).prop_map(Cfg::Line),
        (
            prop::collection::vec(bytes_from(b"\r\n\0a", 4), 1..4),
            0usize..64
        )
            .prop_map(|(d, m)| Cfg::Delimiter(d, m)),
        (1usize..16).prop_map(Cfg::Fixed),
        (
            0usize..4,
            prop::sample::select(&[1usize, 2, 3, 4, 8][..]),
            order(),
            -10i64..10,
            0usize..8,
            1usize..300
        )
            .prop_map(|(offset, field, order, adjustment, strip, max)| {
                Cfg::LengthField {
                    offset,
                    field,
                    order,
                    adjustment,
                    strip,
                    max,
                }
            }),
        (0usize..300).prop_map(Cfg::Frame),
    ]
}

fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<u8>(),
            2 => prop::sample::select(&b"\r\n\0a"[..]),
            1 => Just(0u8),
        ],
        0..600,
    )
}

proptest! {
    #[test]
    fn garbage_never_panics_and_respects_limits(
        cfg in any_cfg(),
        data in garbage(),
        cuts in cuts(),
    ) {
        let Some((mut codec, bound)) = cfg.build() else { return Ok(()) };
        // Errors are fine (a real engine closes the connection); panics, broken
        // invariants and waiting past the bound are not (checked inside `feed`).
        let _ = feed(&mut codec, &chunks(&data, &cuts), bound);
    }

    #[test]
    fn delimiter_search_gives_up(
        max in 0usize..100,
        extra in 0usize..50,
        cuts in cuts(),
    ) {
        // No delimiter at all: must error once max + delimiter bytes are buffered.
        let data = vec![b'x'; max + 3 + extra];
        let mut line = LineCodec::new().with_max_frame_len(max);
        prop_assert!(
            matches!(
                feed(&mut line, &chunks(&data, &cuts), max + 2),
                Err(CodecError::DelimiterNotFound { .. })
            ),
            "line codec"
        );
        let mut delim = DelimiterCodec::new(&b"xy!"[..]).unwrap().with_max_frame_len(max);
        prop_assert!(
            matches!(
                feed(&mut delim, &chunks(&data, &cuts), max + 3),
                Err(CodecError::DelimiterNotFound { .. })
            ),
            "delimiter codec"
        );
    }
}
