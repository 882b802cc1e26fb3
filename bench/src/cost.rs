//! `cost`: user-space instructions per echoed message, counted by callgrind.
//!
//! Throughput on a shared 2-core machine swings ±20 % between runs; instruction
//! counts do not. Each server runs under `valgrind --tool=callgrind` twice while a
//! blocking client does R₁ and then R₂ rounds of 64 B ping-pong over C connections
//! (every connection sends, then every connection reads its echo). The difference of
//! the two totals divided by the difference in messages cancels start-up, accept and
//! shutdown, leaving the steady cost of one message in the server's user space
//! (kernel work is not counted by callgrind).
//!
//! Beside it, **syscalls per message**: the server runs normally while
//! `perf stat -e raw_syscalls:sys_enter -p PID` counts its system calls (every
//! thread) during R₂ rounds over connections opened beforehand. An epoll server
//! pays about two per echoed message (a read, a send); an io_uring server pays a
//! share of one `io_uring_enter` per round. valgrind does not follow io_uring (the
//! operations run in the kernel, outside the instrumented process, and valgrind
//! does not know the opcodes), so io_uring servers (netloop-uring, monoio) get
//! syscall counts only; Go's runtime is not valgrind-friendly.

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
    let valgrind = server::which("valgrind").is_some();
    let perf = server::which("perf").is_some();
    if !valgrind && !perf {
        bail!("neither valgrind nor perf is installed (apt-get install valgrind linux-perf)");
    }
    if opts.rounds.1 <= opts.rounds.0 {
        bail!("the second round count must be larger than the first");
    }
    let layout = Layout::detect()?;
    let peers = server::build_peers(&layout).map_err(|e| e.to_string());
    let mut rows = Vec::new();
    for name in &opts.servers {
        let launch = server::prepare(name, &layout, &peers);
        let instr = launch
            .as_ref()
            .map_err(|e| anyhow!("{e:#}"))
            .and_then(|launch| {
                if !valgrind {
                    bail!("valgrind is not installed");
                }
                if server::on_io_uring(name) {
                    bail!("valgrind does not follow io_uring");
                }
                let a = count(name, launch, &layout, opts.conns, opts.rounds.0, opts.size)?;
                let b = count(name, launch, &layout, opts.conns, opts.rounds.1, opts.size)?;
                let msgs = ((opts.rounds.1 - opts.rounds.0) * opts.conns) as f64;
                Ok((b as f64 - a as f64) / msgs)
            });
        let sys = launch
            .as_ref()
            .map_err(|e| anyhow!("{e:#}"))
            .and_then(|launch| {
                if !perf {
                    bail!("perf is not installed");
                }
                let n = syscalls(name, launch, &layout, opts.conns, opts.rounds.1, opts.size)?;
                Ok(n as f64 / (opts.rounds.1 * opts.conns) as f64)
            });
        match (&instr, &sys) {
            (Ok(i), Ok(s)) => {
                eprintln!("{name}: {i:.0} instructions/message, {s:.3} syscalls/message")
            }
            (Err(e), Ok(s)) => {
                eprintln!("{name}: {s:.3} syscalls/message (instructions skipped: {e:#})")
            }
            (Ok(i), Err(e)) => {
                eprintln!("{name}: {i:.0} instructions/message (syscalls skipped: {e:#})")
            }
            (Err(e), Err(_)) => eprintln!("{name}: skipped: {e:#}"),
        }
        rows.push((
            name.clone(),
            instr.map_err(|e| format!("{e:#}")),
            sys.map_err(|e| format!("{e:#}")),
        ));
    }
    let floor = rows
        .iter()
        .find(|(n, _, _)| n == "floor")
        .and_then(|(_, r, _)| r.as_ref().ok().copied());
    let mut md = String::new();
    md.push_str(&format!(
        "## Cost per message: user-space instructions (callgrind) and syscalls (perf)\n\nCommand: `{}`\n\n\
         {} B ping-pong over {} connections. Instructions: (total after {} rounds − after {} rounds) / \
         messages in between, under callgrind. Syscalls: `perf stat -e raw_syscalls:sys_enter -p PID` \
         over {} rounds on connections opened beforehand, every thread of the server, divided by the \
         messages. valgrind does not follow io_uring, so io_uring servers have no instruction count. \
         Date: {}, kernel {}.\n\n| server | instructions/message | × floor | syscalls/message |\n|---|---:|---:|---:|\n",
        opts.command,
        opts.size,
        opts.conns,
        opts.rounds.1,
        opts.rounds.0,
        opts.rounds.1,
        crate::report::date_utc(),
        crate::procfs::machine().2,
    ));
    for (name, instr, sys) in &rows {
        let (i, x) = match instr {
            Ok(v) => (
                format!("{v:.0}"),
                floor
                    .map(|f| format!("{:.2}", v / f))
                    .unwrap_or_else(|| "–".into()),
            ),
            Err(e) => (format!("– ({e})"), "–".into()),
        };
        let s = match sys {
            Ok(v) => format!("{v:.3}"),
            Err(e) => format!("– ({e})"),
        };
        md.push_str(&format!("| {name} | {i} | {x} | {s} |\n"));
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

/// System calls `launch` makes (all threads) while serving `rounds` rounds on
/// connections opened beforehand, counted by `perf stat`.
fn syscalls(
    name: &str,
    launch: &Launch,
    layout: &Layout,
    conns: usize,
    rounds: usize,
    size: usize,
) -> Result<u64> {
    let proc = server::start(&format!("{name}-syscalls"), launch, None, layout)?;
    let mut streams = connect_all(proc.addr, conns)?;
    // One round first: accepting and first-message work is not counted.
    exchange(&mut streams, 1, size)?;
    let out = layout.work_dir.join(format!("perf-syscalls-{name}.txt"));
    let _ = std::fs::remove_file(&out);
    let mut perf = std::process::Command::new("perf")
        .args(["stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "-o"])
        .arg(&out)
        .arg("-p")
        .arg(proc.pid().to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting perf stat")?;
    // perf attaches asynchronously; an idle server makes no syscalls meanwhile.
    std::thread::sleep(Duration::from_millis(500));
    let res = exchange(&mut streams, rounds, size);
    // SAFETY: kill() has no memory-safety preconditions; the pid is our own child.
    unsafe { libc::kill(perf.id() as libc::pid_t, libc::SIGINT) };
    let _ = perf.wait();
    res.with_context(|| format!("{name}: ping-pong"))?;
    drop(streams);
    proc.stop();
    let text =
        std::fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
    text.lines()
        .find(|l| l.contains("raw_syscalls:sys_enter"))
        .and_then(|l| l.split(',').next()?.trim().parse().ok())
        .ok_or_else(|| {
            anyhow!(
                "no syscall count in {} (is perf allowed here?)",
                out.display()
            )
        })
}

/// Opens `conns` blocking connections to `addr`.
fn connect_all(addr: std::net::SocketAddr, conns: usize) -> Result<Vec<TcpStream>> {
    let mut streams = Vec::with_capacity(conns);
    for _ in 0..conns {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        streams.push(s);
    }
    Ok(streams)
}

/// Blocking ping-pong: every connection sends one message, then every connection
/// reads its echo; `rounds` times.
fn ping_pong(addr: std::net::SocketAddr, conns: usize, rounds: usize, size: usize) -> Result<()> {
    let mut streams = connect_all(addr, conns)?;
    exchange(&mut streams, rounds, size)
}

/// `rounds` rounds of ping-pong over `streams`.
fn exchange(streams: &mut [TcpStream], rounds: usize, size: usize) -> Result<()> {
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
