//! Command execution: Redis semantics and error texts over a [`Store`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::parser::{parse_i64, Args};
use super::reply::{Replies, SHARED_VALUE_MIN};
use super::store::{IncrError, SetCondition, SetExpiry, Store, Ttl};
use super::writer::*;

/// The version string reported by `INFO` and `HELLO`.
pub const SERVER_VERSION: &str = "7.0.0-netloop";

/// Per-connection client state visible to commands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The id reported by `CLIENT ID` and `HELLO`.
    pub id: u64,
    /// The name set by `CLIENT SETNAME` / `HELLO ... SETNAME`.
    pub name: Option<Vec<u8>>,
}

/// What the connection should do after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Keep reading commands.
    Continue,
    /// Flush the replies and close (`QUIT`).
    Close,
}

const NOT_INTEGER: &[u8] = b"ERR value is not an integer or out of range";
const SYNTAX: &[u8] = b"ERR syntax error";

/// `(name, arity)` with Redis's convention: positive = exact argument
/// count including the name, negative = at least that many.
const COMMANDS: &[(&str, i32)] = &[
    ("ping", -1),
    ("echo", 2),
    ("get", 2),
    ("set", -3),
    ("del", -2),
    ("unlink", -2),
    ("exists", -2),
    ("incr", 2),
    ("decr", 2),
    ("incrby", 3),
    ("decrby", 3),
    ("mget", -2),
    ("mset", -3),
    ("expire", -3),
    ("pexpire", -3),
    ("persist", 2),
    ("ttl", 2),
    ("pttl", 2),
    ("dbsize", 1),
    ("flushall", -1),
    ("flushdb", -1),
    ("command", -1),
    ("info", -1),
    ("quit", -1),
    ("hello", -1),
    ("client", -2),
    ("select", 2),
    ("config", -2),
    ("auth", -2),
];

fn write_err_text(out: &mut Vec<u8>, parts: &[&[u8]]) {
    let mut msg = Vec::new();
    for p in parts {
        msg.extend_from_slice(p);
    }
    write_error(out, &msg);
}

fn unknown_command(args: &Args<'_>, out: &mut Vec<u8>) {
    // Mirrors Redis: name cut at 128 bytes, then quoted args while the list
    // is shorter than 128 bytes, each cut to fit.
    let name = args.get(0);
    let mut list = Vec::new();
    for i in 1..args.len() {
        if list.len() >= 128 {
            break;
        }
        let a = args.get(i);
        let room = 128 - list.len();
        list.push(b'\'');
        list.extend_from_slice(&a[..a.len().min(room)]);
        list.extend_from_slice(b"' ");
    }
    write_err_text(
        out,
        &[
            b"ERR unknown command '",
            &name[..name.len().min(128)],
            b"', with args beginning with: ",
            &list,
        ],
    );
}

fn unknown_subcommand(out: &mut Vec<u8>, sub: &[u8], cmd: &str) {
    let upper = cmd.to_ascii_uppercase();
    write_err_text(
        out,
        &[
            b"ERR unknown subcommand '",
            &sub[..sub.len().min(128)],
            b"'. Try ",
            upper.as_bytes(),
            b" HELP.",
        ],
    );
}

fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// Runs one command (`args.get(0)` is its name) and appends its reply.
///
/// ```
/// use std::time::Instant;
/// use netloop::protocol::resp::{execute, Action, Args, ClientInfo, Replies, Store};
/// let src = b"SETGETPING";
/// let ranges = [0..3, 3..6, 6..10];
/// let (mut store, mut client, mut out) = (Store::new(), ClientInfo::default(), Replies::default());
/// let action = execute(&Args::new(src, &ranges[2..]), &mut store, &mut client, Instant::now(), &mut out);
/// assert_eq!((action, &out[..]), (Action::Continue, &b"+PONG\r\n"[..]));
/// ```
///
/// Large values are not copied into `out` but referenced (see [`Replies`]).
pub fn execute(
    args: &Args<'_>,
    store: &mut Store,
    client: &mut ClientInfo,
    now: Instant,
    out: &mut Replies,
) -> Action {
    if args.is_empty() {
        return Action::Continue;
    }
    let name = args.get(0);
    let Some(&(cmd, arity)) = COMMANDS.iter().find(|(n, _)| eq(name, n)) else {
        unknown_command(args, out);
        return Action::Continue;
    };
    let n = args.len();
    let arity_ok = if arity > 0 {
        n == arity as usize
    } else {
        n >= arity.unsigned_abs() as usize
    };
    if !arity_ok || (cmd == "mset" && n % 2 == 0) {
        write_err_text(
            out,
            &[
                b"ERR wrong number of arguments for '",
                cmd.as_bytes(),
                b"' command",
            ],
        );
        return Action::Continue;
    }
    match cmd {
        "ping" => match n {
            1 => write_simple(out, b"PONG"),
            2 => write_bulk(out, args.get(1)),
            _ => write_error(out, b"ERR wrong number of arguments for 'ping' command"),
        },
        "echo" => write_bulk(out, args.get(1)),
        "get" => match store.get_shared(args.get(1), now) {
            Some(v) => out.push_value(v),
            None => write_null_bulk(out),
        },
        "set" => cmd_set(args, store, now, out),
        "del" | "unlink" => {
            let removed = (1..n).filter(|&i| store.remove(args.get(i), now)).count();
            write_integer(out, removed as i64);
        }
        "exists" => {
            let found = (1..n).filter(|&i| store.contains(args.get(i), now)).count();
            write_integer(out, found as i64);
        }
        "incr" | "decr" | "incrby" | "decrby" => {
            let delta = if n == 3 {
                match parse_i64(args.get(2)) {
                    Some(d) => d,
                    None => {
                        write_error(out, NOT_INTEGER);
                        return Action::Continue;
                    }
                }
            } else {
                1
            };
            let delta = if cmd.starts_with("decr") {
                match delta.checked_neg() {
                    Some(d) => d,
                    None => {
                        write_error(out, b"ERR decrement would overflow");
                        return Action::Continue;
                    }
                }
            } else {
                delta
            };
            match store.incr_by(args.get(1), delta, now) {
                Ok(v) => write_integer(out, v),
                Err(IncrError::NotInteger) => write_error(out, NOT_INTEGER),
                Err(IncrError::Overflow) => {
                    write_error(out, b"ERR increment or decrement would overflow")
                }
            }
        }
        "mget" => cmd_mget(args, store, now, out),
        "mset" => {
            for i in (1..n).step_by(2) {
                store.set(args.get(i), args.get(i + 1), now);
            }
            write_ok(out);
        }
        "expire" | "pexpire" => cmd_expire(args, cmd, store, now, out),
        "persist" => {
            let had = matches!(store.ttl(args.get(1), now), Ttl::Remaining(_));
            if had {
                store.set_expiry(args.get(1), None, now);
            }
            write_integer(out, i64::from(had));
        }
        "ttl" | "pttl" => {
            let v = match store.ttl(args.get(1), now) {
                Ttl::Missing => -2,
                Ttl::Persistent => -1,
                Ttl::Remaining(d) => {
                    let ms = d.as_millis().min(i64::MAX as u128) as i64;
                    if cmd == "ttl" {
                        (ms + 500) / 1000
                    } else {
                        ms
                    }
                }
            };
            write_integer(out, v);
        }
        "dbsize" => write_integer(out, store.len() as i64),
        "flushall" | "flushdb" => {
            if n == 1 || (n == 2 && (eq(args.get(1), "async") || eq(args.get(1), "sync"))) {
                store.clear();
                write_ok(out);
            } else {
                write_error(out, SYNTAX);
            }
        }
        "command" => {
            if n >= 2 && eq(args.get(1), "count") {
                write_integer(out, COMMANDS.len() as i64);
            } else {
                // `COMMAND`, `COMMAND DOCS` (sent by redis-cli), `INFO`, ...:
                // an empty array is accepted by clients.
                write_array_len(out, 0);
            }
        }
        "info" => cmd_info(store, out),
        "quit" => {
            write_ok(out);
            return Action::Close;
        }
        "hello" => cmd_hello(args, client, out),
        "client" => cmd_client(args, client, out),
        "select" => match parse_i64(args.get(1)) {
            Some(0) => write_ok(out),
            Some(_) => write_error(out, b"ERR DB index is out of range"),
            None => write_error(out, NOT_INTEGER),
        },
        "config" => cmd_config(args, out),
        "auth" => cmd_auth(args, out),
        _ => unknown_command(args, out),
    }
    Action::Continue
}

/// `MGET`: the values are looked up now (the reply is a snapshot, as in
/// Redis); when they are large they are referenced, not copied, and encoded
/// as the client reads (see [`Replies`]).
fn cmd_mget(args: &Args<'_>, store: &mut Store, now: Instant, out: &mut Replies) {
    let n = args.len();
    write_array_len(out, n - 1);
    let values: Vec<Option<Arc<[u8]>>> = (1..n)
        .map(|i| store.get_shared(args.get(i), now).cloned())
        .collect();
    let total: usize = values.iter().flatten().map(|v| v.len()).sum();
    if total < SHARED_VALUE_MIN {
        for v in &values {
            match v {
                Some(v) => write_bulk(out, v),
                None => write_null_bulk(out),
            }
        }
    } else {
        out.push_values(values);
    }
}

/// The wall clock in Unix milliseconds (Redis bounds TTLs by it).
fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(i64::MAX as u128) as i64)
}

/// Parses a positive TTL amount (`unit_ms` ms each) into a deadline. The
/// bounds are Redis's: the amount in ms must fit an `i64`, and so must the
/// absolute Unix-ms deadline it makes.
fn deadline(
    arg: &[u8],
    unit_ms: u64,
    cmd: &str,
    now: Instant,
    out: &mut Vec<u8>,
) -> Option<Instant> {
    let Some(v) = parse_i64(arg) else {
        write_error(out, NOT_INTEGER);
        return None;
    };
    let at = (v > 0)
        .then(|| (v as u64).checked_mul(unit_ms))
        .flatten()
        .filter(|&ms| ms <= (i64::MAX - unix_ms()) as u64)
        .and_then(|ms| now.checked_add(Duration::from_millis(ms)));
    if at.is_none() {
        write_err_text(
            out,
            &[
                b"ERR invalid expire time in '",
                cmd.as_bytes(),
                b"' command",
            ],
        );
    }
    at
}

fn cmd_set(args: &Args<'_>, store: &mut Store, now: Instant, out: &mut Replies) {
    let mut cond = SetCondition::Always;
    let mut expiry = SetExpiry::Clear;
    let mut i = 3;
    while i < args.len() {
        let opt = args.get(i);
        let has_next = i + 1 < args.len();
        let expiry_free = expiry == SetExpiry::Clear;
        if eq(opt, "nx") && cond == SetCondition::Always {
            cond = SetCondition::IfAbsent;
        } else if eq(opt, "xx") && cond == SetCondition::Always {
            cond = SetCondition::IfPresent;
        } else if eq(opt, "keepttl") && expiry_free {
            expiry = SetExpiry::Keep;
        } else if (eq(opt, "ex") || eq(opt, "px")) && expiry_free && has_next {
            let unit = if eq(opt, "ex") { 1000 } else { 1 };
            match deadline(args.get(i + 1), unit, "set", now, out) {
                Some(at) => expiry = SetExpiry::At(at),
                None => return,
            }
            i += 1;
        } else {
            write_error(out, SYNTAX);
            return;
        }
        i += 1;
    }
    if store.set_with(args.get(1), args.get(2), cond, expiry, now) {
        write_ok(out);
    } else {
        write_null_bulk(out);
    }
}

fn cmd_expire(args: &Args<'_>, cmd: &str, store: &mut Store, now: Instant, out: &mut Replies) {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for i in 3..args.len() {
        let opt = args.get(i);
        if eq(opt, "nx") {
            nx = true;
        } else if eq(opt, "xx") {
            xx = true;
        } else if eq(opt, "gt") {
            gt = true;
        } else if eq(opt, "lt") {
            lt = true;
        } else {
            write_err_text(out, &[b"ERR Unsupported option ", opt]);
            return;
        }
    }
    if nx && (xx || gt || lt) {
        write_error(
            out,
            b"ERR NX and XX, GT or LT options at the same time are not compatible",
        );
        return;
    }
    if gt && lt {
        write_error(
            out,
            b"ERR GT and LT options at the same time are not compatible",
        );
        return;
    }
    let unit = if cmd == "expire" { 1000 } else { 1 };
    let amount = args.get(2);
    // Non-positive amounts delete the key (a deadline in the past).
    let at = match parse_i64(amount) {
        Some(v) if v <= 0 => Some(now),
        _ => match deadline(amount, unit, cmd, now, out) {
            Some(at) => Some(at),
            None => return,
        },
    };
    let key = args.get(1);
    let current = match store.ttl(key, now) {
        Ttl::Missing => {
            write_integer(out, 0);
            return;
        }
        Ttl::Persistent => None,
        Ttl::Remaining(d) => Some(now + d),
    };
    let allowed = match current {
        None => !(xx || gt),
        Some(cur) => !nx && (!gt || at > Some(cur)) && (!lt || at < Some(cur)),
    };
    if allowed {
        store.set_expiry(key, at, now);
    }
    write_integer(out, i64::from(allowed));
}

fn cmd_info(store: &Store, out: &mut Vec<u8>) {
    let mut s = format!(
        "# Server\r\nredis_version:{SERVER_VERSION}\r\nredis_mode:standalone\r\n\
         os:{}\r\narch_bits:{}\r\nmultiplexing_api:epoll\r\n\r\n# Keyspace\r\n",
        std::env::consts::OS,
        usize::BITS
    );
    if !store.is_empty() {
        s.push_str(&format!(
            "db0:keys={},expires={},avg_ttl=0\r\n",
            store.len(),
            store.expiring_len()
        ));
    }
    write_bulk(out, s.as_bytes());
}

fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

fn cmd_hello(args: &Args<'_>, client: &mut ClientInfo, out: &mut Vec<u8>) {
    if args.len() >= 2 {
        match parse_i64(args.get(1)) {
            None => {
                write_error(
                    out,
                    b"ERR Protocol version is not an integer or out of range",
                );
                return;
            }
            Some(2) => {}
            Some(_) => {
                write_error(
                    out,
                    b"NOPROTO sorry, this protocol version is not supported.",
                );
                return;
            }
        }
    }
    let mut name = None;
    let mut i = 2;
    while i < args.len() {
        let opt = args.get(i);
        if eq(opt, "auth") && i + 2 < args.len() {
            // No password is configured: like Redis's `nopass` default user.
            if !eq(args.get(i + 1), "default") {
                write_error(out, WRONGPASS);
                return;
            }
            i += 3;
        } else if eq(opt, "setname") && i + 1 < args.len() {
            name = Some(args.get(i + 1));
            i += 2;
        } else {
            write_err_text(out, &[b"ERR Syntax error in HELLO option '", opt, b"'"]);
            return;
        }
    }
    if let Some(name) = name {
        if !valid_client_name(name) {
            write_error(
                out,
                b"ERR Client names cannot contain spaces, newlines or special characters.",
            );
            return;
        }
        client.name = (!name.is_empty()).then(|| name.to_vec());
    }
    write_array_len(out, 14);
    write_bulk(out, b"server");
    write_bulk(out, b"redis");
    write_bulk(out, b"version");
    write_bulk(out, SERVER_VERSION.as_bytes());
    write_bulk(out, b"proto");
    write_integer(out, 2);
    write_bulk(out, b"id");
    write_integer(out, client.id as i64);
    write_bulk(out, b"mode");
    write_bulk(out, b"standalone");
    write_bulk(out, b"role");
    write_bulk(out, b"master");
    write_bulk(out, b"modules");
    write_array_len(out, 0);
}

fn cmd_client(args: &Args<'_>, client: &mut ClientInfo, out: &mut Vec<u8>) {
    let sub = args.get(1);
    if eq(sub, "setname") && args.len() == 3 {
        let name = args.get(2);
        if !valid_client_name(name) {
            write_error(
                out,
                b"ERR Client names cannot contain spaces, newlines or special characters.",
            );
        } else {
            client.name = (!name.is_empty()).then(|| name.to_vec());
            write_ok(out);
        }
    } else if eq(sub, "getname") {
        match &client.name {
            Some(n) => write_bulk(out, n),
            None => write_null_bulk(out),
        }
    } else if eq(sub, "id") {
        write_integer(out, client.id as i64);
    } else if eq(sub, "info") || eq(sub, "list") {
        let name = client.name.as_deref().unwrap_or(b"");
        let mut line = format!("id={} name=", client.id).into_bytes();
        line.extend_from_slice(name);
        line.extend_from_slice(b" db=0 resp=2\n");
        write_bulk(out, &line);
    } else if ["setinfo", "reply", "no-evict", "no-touch", "tracking"]
        .iter()
        .any(|s| eq(sub, s))
    {
        write_ok(out);
    } else {
        unknown_subcommand(out, sub, "client");
    }
}

const WRONGPASS: &[u8] = b"WRONGPASS invalid username-password pair or user is disabled.";

/// `AUTH`: no password can be configured (`CONFIG SET requirepass` is
/// refused), so this answers as Redis does without one — the one-argument
/// form is an error, the default user accepts any password.
fn cmd_auth(args: &Args<'_>, out: &mut Vec<u8>) {
    match args.len() {
        2 => write_error(
            out,
            b"ERR AUTH <password> called without any password configured for the default user. \
              Are you sure your configuration is correct?",
        ),
        3 if eq(args.get(1), "default") => write_ok(out),
        3 => write_error(out, WRONGPASS),
        _ => write_error(out, SYNTAX),
    }
}

/// `CONFIG SET` takes only the parameters this server has and the values it
/// runs with (no persistence: `save` anything, `appendonly no`); any other
/// parameter — `requirepass` included, since authentication is not
/// implemented — gets Redis's unknown-option error and changes nothing.
fn config_set(args: &Args<'_>, out: &mut Vec<u8>) {
    if args.len() % 2 != 0 {
        let name = args.get(args.len() - 1);
        write_err_text(
            out,
            &[
                b"ERR Unknown option or number of arguments for CONFIG SET - '",
                name,
                b"'",
            ],
        );
        return;
    }
    for i in (2..args.len()).step_by(2) {
        let (name, value) = (args.get(i), args.get(i + 1));
        let ok = eq(name, "save") || (eq(name, "appendonly") && eq(value, "no"));
        if !ok {
            let known = eq(name, "appendonly");
            if known {
                write_err_text(
                    out,
                    &[
                        b"ERR CONFIG SET failed (possibly related to argument '",
                        name,
                        b"') - not supported",
                    ],
                );
            } else {
                write_err_text(
                    out,
                    &[
                        b"ERR Unknown option or number of arguments for CONFIG SET - '",
                        name,
                        b"'",
                    ],
                );
            }
            return;
        }
    }
    write_ok(out);
}

fn cmd_config(args: &Args<'_>, out: &mut Vec<u8>) {
    const PARAMS: &[(&str, &str)] = &[("save", ""), ("appendonly", "no"), ("databases", "1")];
    let sub = args.get(1);
    if eq(sub, "get") && args.len() >= 3 {
        let matches: Vec<&(&str, &str)> = PARAMS
            .iter()
            .filter(|(p, _)| (2..args.len()).any(|i| args.get(i) == b"*" || eq(args.get(i), p)))
            .collect();
        write_array_len(out, matches.len() * 2);
        for (p, v) in matches {
            write_bulk(out, p.as_bytes());
            write_bulk(out, v.as_bytes());
        }
    } else if eq(sub, "set") && args.len() >= 4 {
        config_set(args, out);
    } else if eq(sub, "resetstat") || eq(sub, "rewrite") {
        write_ok(out);
    } else if eq(sub, "get") || eq(sub, "set") {
        let mut full = b"config|".to_vec();
        full.extend(sub.iter().map(u8::to_ascii_lowercase));
        write_err_text(
            out,
            &[b"ERR wrong number of arguments for '", &full, b"' command"],
        );
    } else {
        unknown_subcommand(out, sub, "config");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs an inline-style command (space separated, no quoting).
    fn run(
        store: &mut Store,
        client: &mut ClientInfo,
        now: Instant,
        line: &str,
    ) -> (String, Action) {
        let mut ranges = Vec::new();
        let mut start = 0;
        for part in line.split(' ') {
            ranges.push(start..start + part.len());
            start += part.len() + 1;
        }
        let mut out = Replies::default();
        let action = execute(
            &Args::new(line.as_bytes(), &ranges),
            store,
            client,
            now,
            &mut out,
        );
        (String::from_utf8(out.to_bytes()).unwrap(), action)
    }

    #[test]
    fn dispatch_and_replies() {
        let (mut s, mut c, t) = (
            Store::new(),
            ClientInfo { id: 7, name: None },
            Instant::now(),
        );
        let mut r = |line: &str| run(&mut s, &mut c, t, line).0;
        assert_eq!(r("PiNg"), "+PONG\r\n");
        assert_eq!(r("set k v"), "+OK\r\n");
        assert_eq!(r("GET k"), "$1\r\nv\r\n");
        assert_eq!(r("UNLINK k k"), ":1\r\n");
        assert_eq!(
            r("DECRBY n -9223372036854775808"),
            "-ERR decrement would overflow\r\n"
        );
        assert_eq!(r("FLUSHDB NOW"), "-ERR syntax error\r\n");
        assert_eq!(r("FLUSHDB ASYNC"), "+OK\r\n");
        assert_eq!(r("CLIENT ID"), ":7\r\n");
        assert_eq!(r("CLIENT GETNAME"), "$-1\r\n");
        assert_eq!(r("CLIENT INFO"), "$23\r\nid=7 name= db=0 resp=2\n\r\n");
        assert_eq!(
            r("CLIENT KILL x"),
            "-ERR unknown subcommand 'KILL'. Try CLIENT HELP.\r\n"
        );
        assert_eq!(r("CONFIG GET *"), "*6\r\n$4\r\nsave\r\n$0\r\n\r\n$10\r\nappendonly\r\n$2\r\nno\r\n$9\r\ndatabases\r\n$1\r\n1\r\n");
        assert_eq!(
            r("CONFIG GET"),
            "-ERR wrong number of arguments for 'config|get' command\r\n"
        );
        assert_eq!(
            r("HELLO 2 SETNAME"),
            "-ERR Syntax error in HELLO option 'SETNAME'\r\n"
        );
        assert_eq!(r("EXPIRE k 1 ZZ"), "-ERR Unsupported option ZZ\r\n");
        assert_eq!(
            r("EXPIRE k 1 GT LT"),
            "-ERR GT and LT options at the same time are not compatible\r\n"
        );
        assert_eq!(
            r("PEXPIRE k 9223372036854775807"),
            "-ERR invalid expire time in 'pexpire' command\r\n"
        );
        // Redis's bounds: the ms amount and the Unix-ms deadline fit an i64.
        assert_eq!(r("SET k v"), "+OK\r\n");
        assert_eq!(r("PEXPIRE k 9223370000000000000"), ":1\r\n");
        assert_eq!(
            r("EXPIRE k 9223372036854776"),
            "-ERR invalid expire time in 'expire' command\r\n"
        );
        assert_eq!(r("EXPIRE k 9223370000000000"), ":1\r\n");
        assert_eq!(
            r("SET k v PX 9223372036854775000"),
            "-ERR invalid expire time in 'set' command\r\n"
        );
    }

    #[test]
    fn quit_and_empty() {
        let (mut s, mut c, t) = (Store::new(), ClientInfo::default(), Instant::now());
        assert_eq!(
            run(&mut s, &mut c, t, "quit"),
            ("+OK\r\n".to_string(), Action::Close)
        );
        let mut out = Replies::default();
        let a = execute(&Args::new(b"", &[]), &mut s, &mut c, t, &mut out);
        assert_eq!((a, out.len()), (Action::Continue, 0));
    }

    #[test]
    fn every_command_rejects_wrong_arity_without_panicking() {
        let (mut s, mut c, t) = (Store::new(), ClientInfo::default(), Instant::now());
        for &(name, arity) in COMMANDS {
            for extra in 0..6 {
                let line = std::iter::once(name)
                    .chain(std::iter::repeat_n("1", extra))
                    .collect::<Vec<_>>()
                    .join(" ");
                let (reply, _) = run(&mut s, &mut c, t, &line);
                let n = extra as i32 + 1;
                let ok = if arity > 0 { n == arity } else { n >= -arity };
                if !ok {
                    let msg = format!("-ERR wrong number of arguments for '{name}' command\r\n");
                    assert_eq!(reply, msg, "{line}");
                }
            }
        }
    }
}
