//! Integration tests for the RESP protocol layer.

use std::time::{Duration, Instant};

use netloop::protocol::resp::{
    parse_command, Replies, RespError, RespLimits, RespSession, Store, Value,
};
use proptest::prelude::*;

/// Encodes a command the way clients send it (array of bulk strings).
fn cmd(args: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    Value::Array(args.iter().map(Value::bulk).collect()).write(&mut out);
    out
}

fn bulk(s: &str) -> Value {
    Value::bulk(s)
}

fn simple(s: &str) -> Value {
    Value::Simple(s.as_bytes().to_vec())
}

fn err(s: &str) -> Value {
    Value::Error(s.as_bytes().to_vec())
}

/// A client with a store and an injectable clock.
struct Harness {
    session: RespSession,
    store: Store,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        Harness {
            session: RespSession::default(),
            store: Store::new(),
            now: Instant::now(),
        }
    }

    fn raw(&mut self, src: &[u8]) -> (Vec<Value>, usize, bool) {
        let mut out = Replies::default();
        let p = self
            .session
            .on_bytes(src, &mut out, &mut self.store, self.now)
            .unwrap();
        (
            Value::parse_all(&out.to_bytes()).unwrap(),
            p.consumed,
            p.close,
        )
    }

    fn run(&mut self, args: &[&str]) -> Value {
        let src = cmd(args);
        let (mut replies, consumed, _) = self.raw(&src);
        assert_eq!(consumed, src.len());
        assert_eq!(replies.len(), 1, "{args:?}");
        replies.pop().unwrap()
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }
}

fn pipeline() -> Vec<u8> {
    let mut src = Vec::new();
    src.extend_from_slice(&cmd(&["SET", "k", "v\r\nwith crlf"]));
    src.extend_from_slice(b"GET k\r\n");
    src.extend_from_slice(&cmd(&["INCR", "n"]));
    src.extend_from_slice(b"\r\n"); // empty inline line: ignored
    src.extend_from_slice(b"*0\r\n"); // empty array: ignored
    src.extend_from_slice(&cmd(&["MSET", "a", "1", "b", ""]));
    src.extend_from_slice(b"mget a b missing\n");
    src.extend_from_slice(&cmd(&["PING"]));
    src.extend_from_slice(b"ECHO \"hello world\"\r\n");
    src
}

fn drive(chunks: &[&[u8]]) -> (Vec<u8>, Result<bool, RespError>) {
    let mut session = RespSession::default();
    let mut store = Store::new();
    let now = Instant::now();
    let mut inbound = Vec::new();
    let mut out = Vec::new();
    let mut replies = Replies::default();
    let mut last = Ok(false);
    for chunk in chunks {
        inbound.extend_from_slice(chunk);
        let res = session.on_bytes(&inbound, &mut replies, &mut store, now);
        out.extend_from_slice(&replies.to_bytes());
        match res {
            Ok(p) => {
                assert!(p.consumed <= inbound.len());
                inbound.drain(..p.consumed);
                last = Ok(p.close);
                if p.close {
                    break;
                }
            }
            Err(e) => {
                last = Err(e);
                break;
            }
        }
    }
    (out, last)
}

#[test]
fn pipeline_replies_in_order() {
    let (out, last) = drive(&[&pipeline()]);
    assert_eq!(last, Ok(false));
    let replies = Value::parse_all(&out).unwrap();
    assert_eq!(
        replies,
        vec![
            simple("OK"),
            bulk("v\r\nwith crlf"),
            Value::Integer(1),
            simple("OK"),
            Value::Array(vec![bulk("1"), bulk(""), Value::Null]),
            simple("PONG"),
            bulk("hello world"),
        ]
    );
}

#[test]
fn pipeline_split_at_every_byte_matches_whole() {
    let src = pipeline();
    let (whole, _) = drive(&[&src]);
    for i in 0..=src.len() {
        let (out, last) = drive(&[&src[..i], &src[i..]]);
        assert_eq!(out, whole, "split at {i}");
        assert_eq!(last, Ok(false));
    }
    let bytes: Vec<&[u8]> = src.chunks(1).collect();
    assert_eq!(drive(&bytes).0, whole);
}

#[test]
fn every_strict_prefix_is_incomplete() {
    let src = pipeline();
    let mut ranges = Vec::new();
    let limits = RespLimits::default();
    let mut pos = 0;
    while pos < src.len() {
        let n = parse_command(&src[pos..], &limits, &mut ranges)
            .unwrap()
            .unwrap();
        for end in pos..pos + n {
            assert_eq!(
                parse_command(&src[pos..end], &limits, &mut ranges).unwrap(),
                None,
                "prefix {pos}..{end}"
            );
        }
        pos += n;
    }
}

#[test]
fn protocol_errors_reply_like_redis_and_close() {
    let cases: [(&[u8], &str); 5] = [
        (b"*1\r\n$-5\r\n", "ERR Protocol error: invalid bulk length"),
        (b"*a\r\n", "ERR Protocol error: invalid multibulk length"),
        (
            b"*1\r\n+OK\r\n",
            "ERR Protocol error: expected '$', got '+'",
        ),
        (
            b"SET \"a b\r\n",
            "ERR Protocol error: unbalanced quotes in request",
        ),
        (
            b"*1\r\n$2\r\nabcd",
            "ERR Protocol error: expected CRLF after bulk data",
        ),
    ];
    for (src, msg) in cases {
        let mut good = cmd(&["PING"]);
        good.extend_from_slice(src);
        let (out, last) = drive(&[&good]);
        assert!(last.is_err());
        assert_eq!(
            Value::parse_all(&out).unwrap(),
            vec![simple("PONG"), err(msg)]
        );
    }
    let small = RespLimits {
        max_bulk_len: 4,
        max_array_len: 2,
        max_inline_len: 16,
        ..RespLimits::default()
    };
    let mut session = RespSession::new(small);
    let mut store = Store::new();
    let now = Instant::now();
    for (src, msg) in [
        (&b"*1\r\n$5\r\n"[..], "invalid bulk length"),
        (b"*3\r\n", "invalid multibulk length"),
        (&[b'x'; 17][..], "too big inline request"),
    ] {
        let mut out = Replies::default();
        let e = session
            .on_bytes(src, &mut out, &mut store, now)
            .unwrap_err();
        let out = out.to_bytes();
        assert_eq!(e.to_string(), format!("Protocol error: {msg}"));
        assert_eq!(out, format!("-ERR Protocol error: {msg}\r\n").as_bytes());
    }
}

#[test]
fn get_set_options() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["GET", "k"]), Value::Null);
    assert_eq!(h.run(&["SET", "k", "1", "NX"]), simple("OK"));
    assert_eq!(h.run(&["SET", "k", "2", "nx"]), Value::Null);
    assert_eq!(h.run(&["SET", "other", "2", "XX"]), Value::Null);
    assert_eq!(h.run(&["SET", "k", "3", "XX"]), simple("OK"));
    assert_eq!(h.run(&["get", "k"]), bulk("3"));
    assert_eq!(
        h.run(&["SET", "k", "4", "NX", "XX"]),
        err("ERR syntax error")
    );
    assert_eq!(h.run(&["SET", "k", "4", "EX"]), err("ERR syntax error"));
    assert_eq!(
        h.run(&["SET", "k", "4", "EX", "1", "PX", "5"]),
        err("ERR syntax error")
    );
    assert_eq!(h.run(&["SET", "k", "4", "BOGUS"]), err("ERR syntax error"));
    assert_eq!(
        h.run(&["SET", "k", "4", "EX", "x"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        h.run(&["SET", "k", "4", "EX", "0"]),
        err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        h.run(&["SET", "k", "4", "PX", "-5"]),
        err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        h.run(&["SET", "k", "4", "EX", "9223372036854775807"]),
        err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(h.run(&["GET", "k"]), bulk("3"));
}

#[test]
fn expiry_with_injected_clock() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["TTL", "k"]), Value::Integer(-2));
    h.run(&["SET", "k", "v", "EX", "10"]);
    h.run(&["SET", "p", "v"]);
    assert_eq!(h.run(&["TTL", "p"]), Value::Integer(-1));
    assert_eq!(h.run(&["TTL", "k"]), Value::Integer(10));
    assert_eq!(h.run(&["PTTL", "k"]), Value::Integer(10_000));
    h.advance(Duration::from_millis(3_400));
    assert_eq!(h.run(&["TTL", "k"]), Value::Integer(7)); // 6.6 s rounds to 7
    assert_eq!(h.run(&["SET", "k", "w", "KEEPTTL"]), simple("OK"));
    assert_eq!(h.run(&["PTTL", "k"]), Value::Integer(6_600));
    h.advance(Duration::from_millis(6_600));
    assert_eq!(h.run(&["GET", "k"]), Value::Null);
    assert_eq!(h.run(&["EXISTS", "k"]), Value::Integer(0));

    h.run(&["SET", "k", "v", "PX", "1500"]);
    h.run(&["SET", "k", "v2"]); // plain SET clears the TTL
    h.advance(Duration::from_secs(2));
    assert_eq!(h.run(&["GET", "k"]), bulk("v2"));

    assert_eq!(h.run(&["EXPIRE", "k", "5"]), Value::Integer(1));
    assert_eq!(h.run(&["EXPIRE", "nope", "5"]), Value::Integer(0));
    assert_eq!(h.run(&["EXPIRE", "k", "100", "NX"]), Value::Integer(0));
    assert_eq!(h.run(&["EXPIRE", "k", "1", "GT"]), Value::Integer(0));
    assert_eq!(h.run(&["EXPIRE", "k", "100", "GT"]), Value::Integer(1));
    assert_eq!(h.run(&["TTL", "k"]), Value::Integer(100));
    assert_eq!(h.run(&["PEXPIRE", "k", "2500", "LT"]), Value::Integer(1));
    assert_eq!(h.run(&["TTL", "k"]), Value::Integer(3));
    assert_eq!(
        h.run(&["EXPIRE", "k", "1", "NX", "GT"]),
        err("ERR NX and XX, GT or LT options at the same time are not compatible")
    );
    assert_eq!(
        h.run(&["EXPIRE", "k", "x"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(h.run(&["PERSIST", "k"]), Value::Integer(1));
    assert_eq!(h.run(&["PERSIST", "k"]), Value::Integer(0));
    assert_eq!(h.run(&["TTL", "k"]), Value::Integer(-1));
    assert_eq!(h.run(&["EXPIRE", "k", "0"]), Value::Integer(1));
    assert_eq!(h.run(&["EXISTS", "k"]), Value::Integer(0));

    // Active expiry from a tick.
    for i in 0..10 {
        let key = format!("t{i}");
        h.run(&["SET", &key, "v", "EX", "1"]);
    }
    assert_eq!(h.run(&["DBSIZE"]), Value::Integer(11));
    h.advance(Duration::from_secs(1));
    // The budget bounds deadlines examined (stale ones from `k` included).
    let first = h.store.purge_expired(h.now, 4);
    assert!(first <= 4);
    assert_eq!(first + h.store.purge_expired(h.now, 100), 10);
    assert_eq!(h.run(&["DBSIZE"]), Value::Integer(1));
}

#[test]
fn counters() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["INCR", "n"]), Value::Integer(1));
    assert_eq!(h.run(&["INCRBY", "n", "41"]), Value::Integer(42));
    assert_eq!(h.run(&["DECR", "n"]), Value::Integer(41));
    assert_eq!(h.run(&["DECRBY", "n", "-9"]), Value::Integer(50));
    assert_eq!(h.run(&["GET", "n"]), bulk("50"));
    h.run(&["SET", "s", "12a"]);
    let not_int = err("ERR value is not an integer or out of range");
    assert_eq!(h.run(&["INCR", "s"]), not_int);
    h.run(&["SET", "s", " 1"]);
    assert_eq!(h.run(&["DECR", "s"]), not_int);
    assert_eq!(h.run(&["INCRBY", "n", "1.5"]), not_int);
    h.run(&["SET", "max", "9223372036854775807"]);
    assert_eq!(
        h.run(&["INCR", "max"]),
        err("ERR increment or decrement would overflow")
    );
    h.run(&["SET", "e", "5", "EX", "10"]);
    h.run(&["INCR", "e"]);
    assert_eq!(
        h.run(&["TTL", "e"]),
        Value::Integer(10),
        "INCR keeps the TTL"
    );
}

#[test]
fn multi_key_commands() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["MSET", "a", "1", "b", "2", "c", "3"]), simple("OK"));
    assert_eq!(
        h.run(&["MGET", "a", "x", "c"]),
        Value::Array(vec![bulk("1"), Value::Null, bulk("3")])
    );
    assert_eq!(h.run(&["EXISTS", "a", "a", "x"]), Value::Integer(2));
    assert_eq!(h.run(&["DEL", "a", "x", "b"]), Value::Integer(2));
    assert_eq!(h.run(&["DBSIZE"]), Value::Integer(1));
    assert_eq!(h.run(&["FLUSHALL"]), simple("OK"));
    assert_eq!(h.run(&["DBSIZE"]), Value::Integer(0));
    assert_eq!(
        h.run(&["MSET", "a", "1", "b"]),
        err("ERR wrong number of arguments for 'mset' command")
    );
}

#[test]
fn arity_and_unknown_commands() {
    let mut h = Harness::new();
    assert_eq!(
        h.run(&["GET"]),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        h.run(&["get", "a", "b"]),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        h.run(&["PING", "a", "b"]),
        err("ERR wrong number of arguments for 'ping' command")
    );
    assert_eq!(
        h.run(&["FOO", "bar", "baz"]),
        err("ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' ")
    );
    assert_eq!(
        h.run(&["nope"]),
        err("ERR unknown command 'nope', with args beginning with: ")
    );
    let long = "x".repeat(200);
    let Value::Error(e) = h.run(&["zz", &long, "more"]) else {
        panic!()
    };
    let expected = format!(
        "ERR unknown command 'zz', with args beginning with: '{}' ",
        "x".repeat(128)
    );
    assert_eq!(String::from_utf8(e).unwrap(), expected);
    // CR/LF from arguments never break the reply framing.
    assert_eq!(
        h.run(&["bad\r\ncmd"]),
        err("ERR unknown command 'bad  cmd', with args beginning with: ")
    );
}

#[test]
fn connection_and_server_commands() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["PING"]), simple("PONG"));
    assert_eq!(h.run(&["PING", "hi"]), bulk("hi"));
    assert_eq!(h.run(&["ECHO", "x y"]), bulk("x y"));
    assert_eq!(h.run(&["SELECT", "0"]), simple("OK"));
    assert_eq!(h.run(&["SELECT", "1"]), err("ERR DB index is out of range"));
    assert_eq!(
        h.run(&["SELECT", "x"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(h.run(&["COMMAND"]), Value::Array(vec![]));
    assert_eq!(h.run(&["COMMAND", "DOCS"]), Value::Array(vec![]));
    assert!(matches!(h.run(&["COMMAND", "COUNT"]), Value::Integer(n) if n > 20));
    assert_eq!(
        h.run(&["CONFIG", "GET", "save"]),
        Value::Array(vec![bulk("save"), bulk("")])
    );
    assert_eq!(
        h.run(&["CONFIG", "GET", "appendonly"]),
        Value::Array(vec![bulk("appendonly"), bulk("no")])
    );
    assert_eq!(h.run(&["CONFIG", "GET", "maxmemory"]), Value::Array(vec![]));
    assert_eq!(h.run(&["CONFIG", "SET", "save", ""]), simple("OK"));
    assert_eq!(
        h.run(&["CONFIG", "BOGUS"]),
        err("ERR unknown subcommand 'BOGUS'. Try CONFIG HELP.")
    );
    let Value::Bulk(info) = h.run(&["INFO"]) else {
        panic!()
    };
    let info = String::from_utf8(info).unwrap();
    assert!(info.starts_with("# Server\r\nredis_version:7.0.0-netloop\r\n"));
    assert!(!info.contains("db0:"));
    h.run(&["SET", "k", "v", "EX", "5"]);
    let Value::Bulk(info) = h.run(&["INFO", "keyspace"]) else {
        panic!()
    };
    assert!(String::from_utf8(info)
        .unwrap()
        .contains("db0:keys=1,expires=1"));
}

/// Before: `CONFIG SET` answered `+OK` to anything, `requirepass` included,
/// while `AUTH` was never enforced. Now only what this server runs with is
/// accepted; everything else gets Redis's error and changes nothing, so a
/// password can never be believed set; `AUTH` answers as Redis does without
/// a password.
#[test]
fn config_set_refuses_what_it_does_not_implement() {
    let mut h = Harness::new();
    let unknown = |name: &str| {
        err(&format!(
            "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
        ))
    };
    assert_eq!(
        h.run(&["CONFIG", "SET", "requirepass", "secret"]),
        unknown("requirepass")
    );
    assert_eq!(
        h.run(&["CONFIG", "SET", "maxmemory", "1mb"]),
        unknown("maxmemory")
    );
    assert_eq!(
        h.run(&["CONFIG", "SET", "no-such-option", "1"]),
        unknown("no-such-option")
    );
    assert_eq!(
        h.run(&["CONFIG", "SET", "save", "", "bogus"]),
        unknown("bogus")
    );
    // One bad pair refuses the whole call.
    assert_eq!(
        h.run(&["CONFIG", "SET", "save", "", "requirepass", "x"]),
        unknown("requirepass")
    );
    assert_eq!(
        h.run(&["CONFIG", "SET", "appendonly", "yes"]),
        err("ERR CONFIG SET failed (possibly related to argument 'appendonly') - not supported")
    );
    assert_eq!(h.run(&["CONFIG", "SET", "appendonly", "no"]), simple("OK"));
    assert_eq!(h.run(&["CONFIG", "SET", "save", "3600 1"]), simple("OK"));
    assert_eq!(
        h.run(&["CONFIG", "GET", "requirepass"]),
        Value::Array(vec![])
    );
    // No password is set, so AUTH behaves as Redis's does without one, and
    // commands need no authentication.
    assert_eq!(
        h.run(&["AUTH", "secret"]),
        err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
    );
    assert_eq!(h.run(&["AUTH", "default", "anything"]), simple("OK"));
    assert_eq!(
        h.run(&["AUTH", "someone", "secret"]),
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(h.run(&["SET", "k", "v"]), simple("OK"));
    // Redis's PEXPIRE bounds: the amount and the Unix-ms deadline fit an i64.
    assert_eq!(
        h.run(&["PEXPIRE", "k", "9223370000000000000"]),
        Value::Integer(1)
    );
    assert_eq!(
        h.run(&["PEXPIRE", "k", "9223372036854775807"]),
        err("ERR invalid expire time in 'pexpire' command")
    );
}

#[test]
fn hello_and_client() {
    let mut h = Harness::new();
    let id = h.session.client().id as i64;
    let expected = Value::Array(vec![
        bulk("server"),
        bulk("redis"),
        bulk("version"),
        bulk("7.0.0-netloop"),
        bulk("proto"),
        Value::Integer(2),
        bulk("id"),
        Value::Integer(id),
        bulk("mode"),
        bulk("standalone"),
        bulk("role"),
        bulk("master"),
        bulk("modules"),
        Value::Array(vec![]),
    ]);
    assert_eq!(h.run(&["HELLO"]), expected);
    assert_eq!(h.run(&["HELLO", "2"]), expected);
    assert_eq!(
        h.run(&["HELLO", "3"]),
        err("NOPROTO sorry, this protocol version is not supported.")
    );
    assert_eq!(
        h.run(&["HELLO", "x"]),
        err("ERR Protocol version is not an integer or out of range")
    );
    assert_eq!(
        h.run(&["HELLO", "2", "AUTH", "u", "p", "SETNAME", "me"]),
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    // No password can be set: the default user takes any (Redis's `nopass`).
    assert_eq!(
        h.run(&["HELLO", "2", "AUTH", "default", "p", "SETNAME", "me"]),
        expected
    );
    assert_eq!(h.run(&["CLIENT", "GETNAME"]), bulk("me"));
    assert_eq!(h.run(&["CLIENT", "SETNAME", "other"]), simple("OK"));
    assert_eq!(h.run(&["CLIENT", "GETNAME"]), bulk("other"));
    assert_eq!(
        h.run(&["CLIENT", "SETNAME", "has space"]),
        err("ERR Client names cannot contain spaces, newlines or special characters.")
    );
    assert_eq!(h.run(&["CLIENT", "ID"]), Value::Integer(id));
    assert_eq!(h.run(&["CLIENT", "SETINFO", "LIB-NAME", "x"]), simple("OK"));
    assert_eq!(
        h.run(&["CLIENT"]),
        err("ERR wrong number of arguments for 'client' command")
    );
}

#[test]
fn quit_closes_and_stops() {
    let mut h = Harness::new();
    let mut src = cmd(&["SET", "a", "1"]);
    let quit_end = src.len() + cmd(&["QUIT"]).len();
    src.extend_from_slice(&cmd(&["QUIT"]));
    src.extend_from_slice(&cmd(&["SET", "b", "1"]));
    let (replies, consumed, close) = h.raw(&src);
    assert!(close);
    assert_eq!(consumed, quit_end);
    assert_eq!(replies, vec![simple("OK"), simple("OK")]);
    assert_eq!(h.run(&["EXISTS", "b"]), Value::Integer(0));
}

#[test]
fn exhaustive_small_inputs_never_panic() {
    let alphabet: &[u8] = b"*$1-\r\n a\"";
    let limits = RespLimits::default();
    let mut ranges = Vec::new();
    let mut buf = Vec::new();
    fn rec(
        buf: &mut Vec<u8>,
        alphabet: &[u8],
        depth: usize,
        l: &RespLimits,
        r: &mut Vec<std::ops::Range<usize>>,
    ) {
        if let Ok(Some(n)) = parse_command(buf, l, r) {
            assert!(n <= buf.len());
            assert!(r.iter().all(|x| x.start <= x.end && x.end <= buf.len()));
        }
        if depth == 0 {
            return;
        }
        for &b in alphabet {
            buf.push(b);
            rec(buf, alphabet, depth - 1, l, r);
            buf.pop();
        }
    }
    rec(&mut buf, alphabet, 5, &limits, &mut ranges);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let (out, last) = drive(&[&data]);
        // Whatever happened, the output is well-formed RESP.
        prop_assert!(Value::parse_all(&out).is_ok());
        if last.is_err() {
            let replies = Value::parse_all(&out).unwrap();
            prop_assert!(matches!(replies.last(), Some(Value::Error(e)) if e.starts_with(b"ERR Protocol error")));
        }
    }

    #[test]
    fn random_commands_split_anywhere(
        cmds in proptest::collection::vec(
            proptest::collection::vec("[a-zA-Z0-9 \r\n]{0,6}", 1..4), 1..6),
        split in any::<usize>(),
    ) {
        let mut src = Vec::new();
        for c in &cmds {
            let args: Vec<&str> = c.iter().map(String::as_str).collect();
            src.extend_from_slice(&cmd(&args));
        }
        let split = split % (src.len() + 1);
        let (whole, last) = drive(&[&src]);
        prop_assert!(last.is_ok());
        let (parts, _) = drive(&[&src[..split], &src[split..]]);
        prop_assert_eq!(parts, whole);
    }
}
