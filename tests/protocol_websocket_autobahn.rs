//! The Autobahn testsuite's case categories, ported to raw frames against the
//! echo server: framing (1), pings and pongs (2), reserved bits (3), opcodes
//! (4), fragmentation (5), UTF-8 (6), close handling (7), limits (9),
//! compression (12/13). Case numbers in comments are Autobahn's.

mod support;
use support::*;

use netloop::protocol::websocket::{Config, DeflateConfig};
use std::net::SocketAddr;

const TEXT: u8 = 1;
const BINARY: u8 = 2;
const CLOSE: u8 = 8;
const PING: u8 = 9;
const PONG: u8 = 10;

fn server() -> (netloop::Engine, SocketAddr, WsLog) {
    ws_echo_server(Config::default())
}

/// Sends `frames` (split into `chunk`-byte writes when given) on a new connection.
fn connect_send(addr: SocketAddr, frames: &[Vec<u8>], chunk: Option<usize>) -> RawWs {
    let mut ws = RawWs::connect(addr);
    let wire: Vec<u8> = frames.concat();
    match chunk {
        Some(c) => ws.send_chunked(&wire, c),
        None => ws.send(&wire),
    }
    ws
}

#[test]
fn framing_1() {
    let (engine, addr, _) = server();
    deadline(60, move || {
        // 1.1.1-1.1.6, 1.2.1-1.2.6: every length encoding boundary.
        for len in [0usize, 125, 126, 127, 128, 65535, 65536] {
            for op in [TEXT, BINARY] {
                let payload = vec![b'*'; len];
                let mut ws = connect_send(addr, &[client_frame(true, op, &payload)], None);
                ws.expect(op, &payload);
                ws.send(&client_frame(true, CLOSE, &close_body(1000, "")));
                ws.expect_close(1000);
            }
        }
        // 1.1.7/1.1.8: 65536 bytes sent in chunks of 997 bytes.
        let payload = vec![b'x'; 65536];
        let mut ws = connect_send(addr, &[client_frame(true, TEXT, &payload)], Some(997));
        ws.expect(TEXT, &payload);
    });
    engine.stop();
}

#[test]
fn pings_and_pongs_2() {
    let (engine, addr, _) = server();
    deadline(60, move || {
        // 2.1-2.4: pings with empty, text, binary and 125-byte payloads.
        for payload in [
            &b""[..],
            b"Hello, world!",
            &[0x00, 0xff, 0xfe, 0xfd][..],
            &[0xfe; 125],
        ] {
            let mut ws = connect_send(addr, &[client_frame(true, PING, payload)], None);
            ws.expect(PONG, payload);
        }
        // 2.5: a 126-byte ping is a protocol error.
        let mut ws = connect_send(addr, &[client_frame(true, PING, &[1; 126])], None);
        ws.expect_close(1002);
        // 2.6: 125-byte ping sent one byte at a time.
        let mut ws = connect_send(addr, &[client_frame(true, PING, &[7; 125])], Some(1));
        ws.expect(PONG, &[7; 125]);
        // 2.7/2.8: unsolicited pongs are ignored; 2.9: pong then ping.
        let mut ws = connect_send(
            addr,
            &[
                client_frame(true, PONG, b""),
                client_frame(true, PONG, b"unsolicited"),
                client_frame(true, PING, b"after"),
            ],
            None,
        );
        ws.expect(PONG, b"after");
        // 2.10/2.11: ten pings, back to back and chunked, get ten pongs in order.
        for chunk in [None, Some(1)] {
            let frames: Vec<Vec<u8>> = (0..10)
                .map(|i| client_frame(true, PING, format!("payload-{i}").as_bytes()))
                .collect();
            let mut ws = connect_send(addr, &frames, chunk);
            for i in 0..10 {
                ws.expect(PONG, format!("payload-{i}").as_bytes());
            }
        }
    });
    engine.stop();
}

#[test]
fn reserved_bits_3() {
    let (engine, addr, log) = server();
    deadline(60, move || {
        // 3.1-3.7: RSV bits on text, binary, ping and close frames. 3.2/3.3:
        // an echo first, and the ping after the bad frame gets no pong.
        for (rsv, op) in [
            (1, TEXT),
            (2, TEXT),
            (3, TEXT),
            (4, BINARY),
            (5, PING),
            (6, CLOSE),
            (7, CLOSE),
        ] {
            let body = if op == CLOSE {
                close_body(1000, "")
            } else {
                b"bad".to_vec()
            };
            let mut ws = connect_send(
                addr,
                &[
                    client_frame(true, TEXT, b"ok"),
                    raw_frame(true, rsv, op, &body, true),
                    client_frame(true, PING, b""),
                ],
                None,
            );
            ws.expect(TEXT, b"ok");
            ws.expect_close(1002);
        }
        assert!(wait_until(std::time::Duration::from_secs(5), || {
            log.closes().iter().filter(|(c, _)| *c == 1002).count() == 7
        }));
    });
    engine.stop();
}

#[test]
fn opcodes_4() {
    let (engine, addr, _) = server();
    deadline(60, move || {
        // 4.1.1-4.1.5 (3-7, non-control) and 4.2.1-4.2.5 (11-15, control).
        for op in [3u8, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
            let mut ws = connect_send(
                addr,
                &[
                    client_frame(true, TEXT, b"first"),
                    raw_frame(true, 0, op, b"reserved", true),
                    client_frame(true, PING, b""),
                ],
                None,
            );
            ws.expect(TEXT, b"first");
            ws.expect_close(1002);
        }
    });
    engine.stop();
}

#[test]
fn fragmentation_5() {
    let (engine, addr, _) = server();
    deadline(60, move || {
        // 5.1/5.2: fragmented ping and pong.
        for op in [PING, PONG] {
            let mut ws = connect_send(
                addr,
                &[
                    client_frame(false, op, b"frag"),
                    client_frame(true, 0, b"ment"),
                ],
                None,
            );
            ws.expect_close(1002);
        }
        // 5.3-5.5: a text message in one and in two fragments, whole and per byte.
        for chunk in [None, Some(1)] {
            let mut ws = connect_send(
                addr,
                &[
                    client_frame(false, TEXT, b"frag"),
                    client_frame(true, 0, b"ment"),
                ],
                chunk,
            );
            ws.expect(TEXT, b"fragment");
        }
        // 5.6-5.8: a ping between the fragments is answered first.
        for chunk in [None, Some(1)] {
            let mut ws = connect_send(
                addr,
                &[
                    client_frame(false, TEXT, b"frag"),
                    client_frame(true, PING, b"in between"),
                    client_frame(true, 0, b"ment"),
                ],
                chunk,
            );
            ws.expect(PONG, b"in between");
            ws.expect(TEXT, b"fragment");
        }
        // 5.9-5.14: continuation with nothing to continue (fin set or not).
        for fin in [true, false] {
            let mut ws = connect_send(
                addr,
                &[
                    client_frame(fin, 0, b"orphan"),
                    client_frame(true, TEXT, b"never echoed"),
                ],
                None,
            );
            ws.expect_close(1002);
        }
        // 5.15: text frag, last cont, then a continuation of nothing.
        let mut ws = connect_send(
            addr,
            &[
                client_frame(false, TEXT, b"a"),
                client_frame(true, 0, b"b"),
                client_frame(false, 0, b"c"),
                client_frame(true, TEXT, b"d"),
            ],
            None,
        );
        ws.expect(TEXT, b"ab");
        ws.expect_close(1002);
        // A new data frame while a message is in progress.
        let mut ws = connect_send(
            addr,
            &[
                client_frame(false, TEXT, b"a"),
                client_frame(true, BINARY, b"b"),
            ],
            None,
        );
        ws.expect_close(1002);
        // 5.19/5.20: many fragments with pings between them, in pieces.
        let mut frames = vec![client_frame(false, TEXT, b"f1")];
        for i in 2..=5 {
            frames.push(client_frame(true, PING, format!("p{i}").as_bytes()));
            frames.push(client_frame(i == 5, 0, format!("f{i}").as_bytes()));
        }
        let mut ws = connect_send(addr, &frames, Some(3));
        for i in 2..=5 {
            ws.expect(PONG, format!("p{i}").as_bytes());
        }
        ws.expect(TEXT, b"f1f2f3f4f5");
        // Empty fragments are fine.
        let mut ws = connect_send(
            addr,
            &[
                client_frame(false, BINARY, b""),
                client_frame(false, 0, b""),
                client_frame(true, 0, b""),
            ],
            None,
        );
        ws.expect(BINARY, b"");
    });
    engine.stop();
}

/// Autobahn 6.x's valid UTF-8 samples.
const VALID: &[&[u8]] = &[
    "Hello-µ@ßöäüàá-UTF-8!!".as_bytes(),
    "κόσμε".as_bytes(),
    &[0x00],
    &[0xc2, 0x80],
    &[0xe0, 0xa0, 0x80],
    &[0xf0, 0x90, 0x80, 0x80],
    &[0x7f],
    &[0xdf, 0xbf],
    &[0xef, 0xbf, 0xbf],
    &[0xf4, 0x8f, 0xbf, 0xbf],
    &[0xed, 0x9f, 0xbf],
    &[0xee, 0x80, 0x80],
    &[0xef, 0xbf, 0xbd],
];

/// Autobahn 6.x's invalid UTF-8 samples.
const INVALID: &[&[u8]] = &[
    &[
        0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65,
        0x64, 0x69, 0x74, 0x65, 0x64,
    ],
    &[0x80],
    &[0xbf],
    &[0x80, 0xbf, 0x80],
    &[0xc0, 0x20],
    &[0xe0, 0x80, 0x20],
    &[0xf8, 0x88, 0x80, 0x80, 0x80],
    &[0xfc, 0x84, 0x80, 0x80, 0x80, 0x80],
    &[0xc0],
    &[0xe0, 0x80],
    &[0xfe],
    &[0xff],
    &[0xc0, 0xaf],
    &[0xe0, 0x80, 0xaf],
    &[0xf0, 0x80, 0x80, 0xaf],
    &[0xed, 0xa0, 0x80],
    &[0xed, 0xbf, 0xbf],
    &[0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80],
    &[0xf4, 0x90, 0x80, 0x80],
    &[0xce, 0xba, 0xe1],
];

#[test]
fn utf8_6() {
    let (engine, addr, _) = server();
    deadline(120, move || {
        for sample in VALID {
            // 6.2.x: whole, fragmented after every byte, and sent byte by byte.
            let mut ws = connect_send(addr, &[client_frame(true, TEXT, sample)], None);
            ws.expect(TEXT, sample);
            let frames: Vec<Vec<u8>> = sample
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    client_frame(i + 1 == sample.len(), if i == 0 { TEXT } else { 0 }, &[*b])
                })
                .collect();
            let mut ws = connect_send(addr, &frames, Some(1));
            ws.expect(TEXT, sample);
        }
        for sample in INVALID {
            // 6.3.x-6.21.x: whole, and in one-byte fragments.
            let mut ws = connect_send(addr, &[client_frame(true, TEXT, sample)], None);
            ws.expect_close(1007);
            let frames: Vec<Vec<u8>> = sample
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    client_frame(i + 1 == sample.len(), if i == 0 { TEXT } else { 0 }, &[*b])
                })
                .collect();
            let mut ws = connect_send(addr, &frames, None);
            ws.expect_close(1007);
        }
        // 6.4.1-6.4.4, fail fast: the invalid fragment fails the connection
        // before the message is finished (its last fragment is never sent).
        let mut ws = connect_send(
            addr,
            &[
                client_frame(false, TEXT, "κόσμε".as_bytes()),
                client_frame(false, 0, &[0xf4, 0x90, 0x80, 0x80]),
            ],
            None,
        );
        ws.expect_close(1007);
        // ... also inside one large frame still arriving.
        let mut big = "a".repeat(100_000).into_bytes();
        big[70_000] = 0xff;
        let frame = client_frame(true, TEXT, &big);
        let mut ws = RawWs::connect(addr);
        ws.send(&frame[..80_000]);
        ws.expect_close(1007);
        // A close reason must be UTF-8 too (7.5.1).
        let mut body = close_body(1000, "");
        body.extend_from_slice(&[
            0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
        ]);
        let mut ws = connect_send(addr, &[client_frame(true, CLOSE, &body)], None);
        ws.expect_close(1007);
    });
    engine.stop();
}

#[test]
fn close_handling_7() {
    let (engine, addr, log) = server();
    deadline(60, move || {
        // 7.1.1: echo, then a normal close.
        let mut ws = connect_send(
            addr,
            &[
                client_frame(true, TEXT, b"Hello"),
                client_frame(true, CLOSE, &close_body(1000, "")),
            ],
            None,
        );
        ws.expect(TEXT, b"Hello");
        ws.expect_close(1000);
        // 7.1.2-7.1.5: nothing after a close frame is answered.
        let mut ws = connect_send(
            addr,
            &[
                client_frame(true, CLOSE, &close_body(1000, "")),
                client_frame(true, CLOSE, &close_body(1000, "")),
                client_frame(true, PING, b""),
                client_frame(true, TEXT, b"after close"),
                client_frame(false, TEXT, b"frag"),
            ],
            None,
        );
        ws.expect_close(1000);
        // 7.3.1: an empty close gets an empty close; 7.3.2: one byte is an error.
        let mut ws = connect_send(addr, &[client_frame(true, CLOSE, b"")], None);
        ws.expect_close(1005);
        let mut ws = connect_send(addr, &[client_frame(true, CLOSE, b"\x03")], None);
        ws.expect_close(1002);
        // 7.3.3-7.3.5: code only, with a reason, with the longest reason.
        for reason in ["", "Hello World!", &"*".repeat(123)] {
            let mut ws = connect_send(
                addr,
                &[client_frame(true, CLOSE, &close_body(1000, reason))],
                None,
            );
            ws.expect_close(1000);
        }
        // 7.3.6: 124 bytes of reason make the frame too long.
        let mut ws = connect_send(
            addr,
            &[client_frame(
                true,
                CLOSE,
                &close_body(1000, &"*".repeat(124)),
            )],
            None,
        );
        ws.expect_close(1002);
        // 7.7.x: valid codes are echoed; 7.9.x, 7.13.x: invalid ones are errors.
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            let mut ws = connect_send(
                addr,
                &[client_frame(true, CLOSE, &close_body(code, ""))],
                None,
            );
            ws.expect_close(code);
        }
        for code in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            let mut ws = connect_send(
                addr,
                &[client_frame(true, CLOSE, &close_body(code, ""))],
                None,
            );
            ws.expect_close(1002);
        }
        // The application closing: its code goes out, the peer's answer ends it.
        let mut ws = connect_send(addr, &[client_frame(true, TEXT, b"close:4321")], None);
        ws.expect_close(4321);
        // The peer dropping the TCP connection is reported as 1006.
        let ws = RawWs::connect(addr);
        drop(ws);
        assert!(wait_until(std::time::Duration::from_secs(5), || {
            log.closes().iter().any(|(c, _)| *c == 1006)
        }));
        assert!(log.closes().contains(&(4321, "asked to".to_string())));
    });
    engine.stop();
}

#[test]
fn masking_and_limits() {
    let cfg = Config::default()
        .max_message_size(100_000)
        .max_frame_size(70_000);
    let (engine, addr, _) = ws_echo_server(cfg);
    deadline(60, move || {
        // A client frame must be masked.
        let mut ws = connect_send(addr, &[raw_frame(true, 0, TEXT, b"plain", false)], None);
        ws.expect_close(1002);
        // Over the frame limit (announced in the header: fails before the payload).
        let mut ws = RawWs::connect(addr);
        let f = client_frame(true, BINARY, &vec![0; 70_001]);
        ws.send(&f[..20]);
        ws.expect_close(1009);
        // Over the message limit across fragments.
        let mut ws = connect_send(
            addr,
            &[
                client_frame(false, BINARY, &vec![1; 60_000]),
                client_frame(true, 0, &vec![2; 60_000]),
            ],
            None,
        );
        ws.expect_close(1009);
        // At the limits everything is fine, even chunked.
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let mut ws = connect_send(
            addr,
            &[
                client_frame(false, BINARY, &big[..60_000]),
                client_frame(true, 0, &big[60_000..]),
            ],
            Some(4096),
        );
        ws.expect(BINARY, &big);
    });
    engine.stop();
}

#[test]
fn large_messages_9() {
    // 9.1.x/9.2.x: messages up to 8 MiB, in one frame and in 64 KiB fragments.
    let (engine, addr, _) = server();
    deadline(120, move || {
        for size in [1 << 16, 1 << 20, 8 << 20] {
            let payload: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
            let mut ws = connect_send(addr, &[client_frame(true, TEXT, &payload)], None);
            ws.expect(TEXT, &payload);
            let frames: Vec<Vec<u8>> = payload
                .chunks(1 << 16)
                .enumerate()
                .map(|(i, c)| {
                    client_frame((i + 1) << 16 >= size, if i == 0 { BINARY } else { 0 }, c)
                })
                .collect();
            let mut ws = connect_send(addr, &frames, None);
            ws.expect(BINARY, &payload);
        }
    });
    engine.stop();
}

// ----- compression (12.x, 13.x) -----

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut c = flate2::Compress::new(flate2::Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    c.compress_vec(data, &mut out, flate2::FlushCompress::Sync)
        .unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

fn inflate(data: &[u8]) -> Vec<u8> {
    let mut d = flate2::Decompress::new(false);
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1 << 20);
    d.decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
        .unwrap();
    out
}

fn deflate_server() -> (netloop::Engine, SocketAddr, WsLog) {
    ws_echo_server(
        Config::default()
            .max_message_size(1 << 20)
            .deflate(DeflateConfig::default()),
    )
}

#[test]
fn compression_negotiation_13() {
    let (engine, addr, _) = deflate_server();
    deadline(60, move || {
        let ext = |offer: &str| {
            let (_, head) =
                RawWs::connect_extra(addr, &format!("Sec-WebSocket-Extensions: {offer}\r\n"));
            head.lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Extensions: "))
                .map(str::to_string)
        };
        let base = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
        // 13.1-13.2: plain offers; no takeover for either side, by default.
        assert_eq!(ext("permessage-deflate").as_deref(), Some(base));
        assert_eq!(
            ext("permessage-deflate; client_max_window_bits").as_deref(),
            Some(base)
        );
        assert_eq!(
            ext("permessage-deflate; client_no_context_takeover").as_deref(),
            Some(base)
        );
        // 13.3-13.6: server windows the client asks for, where zlib can.
        for bits in 9..=15 {
            let want = format!("{base}; server_max_window_bits={bits}");
            assert_eq!(
                ext(&format!(
                    "permessage-deflate; server_max_window_bits={bits}"
                ))
                .as_deref(),
                Some(want.as_str())
            );
        }
        // Offers that cannot be accepted are declined, falling back to the next.
        assert_eq!(ext("permessage-deflate; server_max_window_bits=8"), None);
        assert_eq!(ext("permessage-deflate; bogus"), None);
        assert_eq!(
            ext("permessage-deflate; server_max_window_bits=8, permessage-deflate").as_deref(),
            Some(base)
        );
        assert_eq!(ext("x-webkit-deflate-frame"), None);
    });
    engine.stop();
}

#[test]
fn compressed_messages_12() {
    let (engine, addr, log) = deflate_server();
    deadline(120, move || {
        let offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
        // 12.1.x: echo of compressed messages of growing sizes; replies are compressed.
        let (mut ws, _) = RawWs::connect_extra(addr, offer);
        for size in [0usize, 16, 64, 256, 1024, 4096, 65536, 262144] {
            let msg: Vec<u8> = (0..size)
                .map(|i| b"abcdefgh "[(i * 7 + i / 13) % 9])
                .collect();
            ws.send(&raw_frame(true, 4, TEXT, &deflate(&msg), true));
            let f = ws.read_frame().unwrap();
            assert_eq!((f.opcode, f.rsv, f.fin), (TEXT, 4, true), "{size}");
            assert_eq!(inflate(&f.payload), msg, "{size}");
        }
        // Uncompressed messages are still fine on a compressed connection.
        ws.send(&client_frame(true, BINARY, b"raw"));
        let f = ws.read_frame().unwrap();
        assert_eq!(inflate(&f.payload), b"raw");
        // A compressed message in fragments: RSV1 on the first only.
        let z = deflate(&b"fragmented and compressed ".repeat(40));
        let (a, b) = z.split_at(z.len() / 2);
        ws.send(&raw_frame(false, 4, BINARY, a, true));
        ws.send(&raw_frame(true, 0, 0, b, true));
        let f = ws.read_frame().unwrap();
        assert_eq!(
            inflate(&f.payload),
            b"fragmented and compressed ".repeat(40)
        );

        // RSV1 on a continuation or a control frame is an error.
        let (mut ws, _) = RawWs::connect_extra(addr, offer);
        ws.send(&raw_frame(false, 4, TEXT, &deflate(b"ab"), true));
        ws.send(&raw_frame(true, 4, 0, &deflate(b"cd"), true));
        ws.expect_close(1002);
        let (mut ws, _) = RawWs::connect_extra(addr, offer);
        ws.send(&raw_frame(true, 4, PING, b"", true));
        ws.expect_close(1002);
        // Corrupt data is 1007; a bomb past the message limit is 1009.
        let (mut ws, _) = RawWs::connect_extra(addr, offer);
        ws.send(&raw_frame(true, 4, BINARY, &[0xff; 32], true));
        ws.expect_close(1007);
        let (mut ws, _) = RawWs::connect_extra(addr, offer);
        ws.send(&raw_frame(
            true,
            4,
            BINARY,
            &deflate(&vec![0; 4 << 20]),
            true,
        ));
        ws.expect_close(1009);
        // Compressed text is validated after inflating.
        let (mut ws, _) = RawWs::connect_extra(addr, offer);
        ws.send(&raw_frame(
            true,
            4,
            TEXT,
            &deflate(&[0xce, 0xba, 0xff]),
            true,
        ));
        ws.expect_close(1007);
        assert!(wait_until(std::time::Duration::from_secs(5), || {
            log.closes()
                .iter()
                .filter(|(c, _)| [1002, 1007, 1009].contains(c))
                .count()
                == 5
        }));
    });
    engine.stop();
}

#[test]
fn rsv1_without_negotiation_is_an_error() {
    // The server offers compression, but this client did not ask for it.
    let (engine, addr, _) = deflate_server();
    deadline(30, move || {
        let (mut ws, head) = RawWs::connect_extra(addr, "");
        assert!(!head.contains("Sec-WebSocket-Extensions"));
        ws.send(&raw_frame(true, 4, TEXT, &deflate(b"x"), true));
        ws.expect_close(1002);
    });
    engine.stop();
}
