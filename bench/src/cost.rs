//! `cost`: user-space instructions per echoed message, counted by callgrind.
//!
//! Throughput on a shared 2-core machine swings ±20 % between runs; instruction
//! counts do not. Each server runs under `valgrind --tool=callgrind` twice while a
//! blocking client does R₁ and then R₂ rounds of 64 B ping-pong over C connections
//! (every connection sends, then every connection reads its echo). The difference of
//! the two totals divided by the difference in messages cancels start-up, accept and
//! shutdown, leaving the steady cost of one message in the server's user space
//! (kernel work is not counted by callgrind). io_uring servers (monoio) and Go are
//! left out by default: valgrind does not follow io_uring, and Go's runtime is not
//! valgrind-friendly.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::server::{self, Launch, Layout};

/// What `cost` measures.
pub struct CostOptions {
    pub servers: Vec<String>,
    pub conns: usize,
    pub rounds: (usize, usize),
    pub size: usize,
    pub out: Option<PathBuf>,
    pub command: String,
}

/// Runs the cost measurement and prints (and optionally writes) a table.
pub fn run(opts: CostOptions) -> Result<()> {
    if server::which("valgrind").is_none() {
        bail!("valgrind is not installed (apt-get install valgrind)");
    }
    if opts.rounds.1 <= opts.rounds.0 {
        bail!("the second round count must be larger than the first");
    }
    let layout = Layout::detect()?;
    let peers = server::build_peers(&layout).map_err(|e| e.to_string());
    let mut rows = Vec::new();
    for name in &opts.servers {
        let res = server::prepare(name, &layout, &peers).and_then(|launch| {
            let a = count(name, &launch, &layout, opts.conns, opts.rounds.0, opts.size)?;
            let b = count(name, &launch, &layout, opts.conns, opts.rounds.1, opts.size)?;
            let msgs = ((opts.rounds.1 - opts.rounds.0) * opts.conns) as f64;
            Ok((b as f64 - a as f64) / msgs)
        });
        match &res {
            Ok(v) => eprintln!("{name}: {v:.0} instructions/message"),
            Err(e) => eprintln!("{name}: skipped: {e:#}"),
        }
        rows.push((name.clone(), res.map_err(|e| format!("{e:#}"))));
    }
    let floor = rows
        .iter()
        .find(|(n, _)| n == "floor")
        .and_then(|(_, r)| r.as_ref().ok().copied());
    let mut md = String::new();
    md.push_str(&format!(
        "## User-space instructions per message (callgrind)\n\nCommand: `{}`\n\n\
         {} B ping-pong over {} connections; (instructions after {} rounds − after {} rounds) / \
         messages in between. Date: {}, kernel {}.\n\n| server | instructions/message | × floor |\n|---|---:|---:|\n",
        opts.command,
        opts.size,
        opts.conns,
        opts.rounds.1,
        opts.rounds.0,
        crate::report::date_utc(),
        crate::procfs::machine().2,
    ));
    for (name, r) in &rows {
        match r {
            Ok(v) => md.push_str(&format!(
                "| {name} | {v:.0} | {} |\n",
                floor
                    .map(|f| format!("{:.2}", v / f))
                    .unwrap_or_else(|| "–".into())
            )),
            Err(e) => md.push_str(&format!("| {name} | skipped: {e} | |\n")),
        }
    }
    println!("{md}");
    if let Some(out) = &opts.out {
        std::fs::write(out, &md).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

/// Total instructions of one callgrind run of `launch` serving `rounds` rounds.
fn count(
    name: &str,
    launch: &Launch,
    layout: &Layout,
    conns: usize,
    rounds: usize,
    size: usize,
) -> Result<u64> {
    let out = layout
        .work_dir
        .join(format!("callgrind-{name}-{rounds}.out"));
    let _ = std::fs::remove_file(&out);
    let mut args = vec![
        "--tool=callgrind".to_string(),
        format!("--callgrind-out-file={}", out.display()),
        launch.program.display().to_string(),
    ];
    args.extend(launch.args.iter().cloned());
    let wrapped = Launch {
        program: server::which("valgrind").ok_or_else(|| anyhow!("valgrind vanished"))?,
        args,
    };
    let mut proc = server::start(&format!("{name}-callgrind"), &wrapped, None, layout)?;
    ping_pong(proc.addr, conns, rounds, size).with_context(|| format!("{name}: ping-pong"))?;
    // SAFETY: kill() has no memory-safety preconditions; the pid is our own
    // not-yet-reaped child.
    unsafe { libc::kill(proc.pid() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(60);
    while proc.exited().is_none() {
        if Instant::now() > deadline {
            bail!("{name} did not exit under valgrind within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    read_total(&out)
}

/// Blocking ping-pong: every connection sends one message, then every connection
/// reads its echo; `rounds` times.
fn ping_pong(addr: std::net::SocketAddr, conns: usize, rounds: usize, size: usize) -> Result<()> {
    let mut streams = Vec::with_capacity(conns);
    for _ in 0..conns {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        streams.push(s);
    }
    let msg = vec![0x5au8; size];
    let mut back = vec![0u8; size];
    for _ in 0..rounds {
        for s in streams.iter_mut() {
            s.write_all(&msg)?;
        }
        for s in streams.iter_mut() {
            s.read_exact(&mut back)?;
            if back != msg {
                bail!("echoed bytes differ");
            }
        }
    }
    Ok(())
}

/// The instruction total of a callgrind output file (all threads).
fn read_total(path: &Path) -> Result<u64> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow!("no instruction total in {}", path.display()))
}
