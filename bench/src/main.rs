//! netloop-bench: load generator and comparison harness for netloop.

mod compare;
mod cost;
mod idle;
mod loadgen;
mod procfs;
mod report;
mod server;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(
    name = "netloop-bench",
    version,
    about = "Load generator and comparison harness for netloop"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Echo load: N connections × D messages of S bytes in flight (or a fixed rate).
    Echo(EchoArgs),
    /// Open many idle connections (optionally pinging each once) and hold them.
    Idle(IdleArgs),
    /// Run every server through the same matrix and write BENCHMARKS.md + an SVG chart.
    Compare(CompareArgs),
    /// User-space instructions per echoed message under callgrind (steady, unlike timings).
    Cost(CostArgs),
}

#[derive(Args)]
struct EchoArgs {
    /// Server address, HOST:PORT.
    #[arg(long)]
    addr: String,
    /// Connections.
    #[arg(short = 'c', long = "conns", default_value_t = 50)]
    conns: usize,
    /// Messages in flight per connection (1 = ping-pong). Ignored with --rate.
    #[arg(short = 'd', long = "depth", default_value_t = 1)]
    depth: usize,
    /// Message size in bytes.
    #[arg(short = 's', long = "size", default_value_t = 64)]
    size: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Warm-up seconds before the measured window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Open loop: offered messages per second over all connections; latency
    /// is measured from each message's scheduled send time.
    #[arg(long)]
    rate: Option<f64>,
    /// Load-generator threads (connections are split between them).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct IdleArgs {
    /// Server address, HOST:PORT.
    #[arg(long)]
    addr: String,
    /// Connections to open.
    #[arg(short = 'c', long = "conns", default_value_t = 10_000)]
    conns: usize,
    /// Send one byte on each connection and wait for its echo.
    #[arg(long)]
    ping: bool,
    /// Seconds to hold the connections open.
    #[arg(long, default_value_t = 10.0)]
    hold: f64,
    /// Connections per source address (127.0.0.2, 127.0.0.3, …).
    #[arg(long, default_value_t = 5000)]
    per_source: usize,
}

#[derive(Args)]
struct CompareArgs {
    /// One round, 2 s cells, only the 50-connection cells.
    #[arg(long)]
    quick: bool,
    /// Markdown report path; the chart goes next to it with an .svg extension.
    #[arg(long, default_value = "bench/results/BENCHMARKS.md")]
    out: PathBuf,
    /// Servers to run, comma-separated: netloop (epoll), netloop-uring, floor,
    /// tokio, threads, monoio, go.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "netloop,netloop-uring,floor,tokio,threads,monoio,go"
    )]
    servers: Vec<String>,
    /// Connections for the idle-memory test [default: 10000; 2000 with --quick].
    #[arg(long)]
    idle_conns: Option<usize>,
    /// Interleaved rounds [default: 3; 1 with --quick]. More rounds narrow the
    /// medians on a noisy machine (each round costs about 30 s per server).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=50))]
    rounds: Option<u64>,
}

#[derive(Args)]
struct CostArgs {
    /// Servers to measure, comma-separated. Syscalls are counted for all;
    /// instructions only for those valgrind follows (not io_uring servers — netloop-uring,
    /// monoio — nor go).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "netloop,netloop-uring,floor,tokio,threads,monoio"
    )]
    servers: Vec<String>,
    /// Connections.
    #[arg(short = 'c', long = "conns", default_value_t = 50)]
    conns: usize,
    /// Message size in bytes.
    #[arg(short = 's', long = "size", default_value_t = 64)]
    size: usize,
    /// Rounds of the two runs whose difference is measured.
    #[arg(long, value_delimiter = ',', default_value = "100,300")]
    rounds: Vec<usize>,
    /// Also write the markdown table to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn resolve(addr: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .ok_or_else(|| anyhow!("{addr} resolves to no address"))
}

fn secs(name: &str, v: f64, max: f64) -> Result<Duration> {
    if !(v.is_finite() && (0.0..=max).contains(&v)) {
        bail!("--{name} must be between 0 and {max} seconds");
    }
    Ok(Duration::from_secs_f64(v))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Echo(a) => {
            let cfg = loadgen::EchoConfig {
                addr: resolve(&a.addr)?,
                conns: a.conns,
                depth: a.depth,
                size: a.size,
                duration: secs("duration", a.duration, 3600.0)?,
                warmup: secs("warmup", a.warmup, 600.0)?,
                rate: a.rate,
                threads: a.threads,
            };
            if let Err(e) = procfs::raise_nofile() {
                eprintln!("warning: could not raise the fd limit: {e}");
            }
            let report = loadgen::run_echo(&cfg, &|_| {})?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                report.print_table();
            }
            if report.messages == 0 {
                bail!("no message completed in the measured window");
            }
            Ok(())
        }
        Cmd::Idle(a) => {
            let hold = secs("hold", a.hold, 86_400.0)?;
            let limit = procfs::raise_nofile().unwrap_or(1024);
            if a.conns as u64 + 64 > limit {
                bail!(
                    "{} connections need more file descriptors than the limit of {limit}",
                    a.conns
                );
            }
            let cfg = idle::IdleConfig {
                addr: resolve(&a.addr)?,
                conns: a.conns,
                ping: a.ping,
                per_source: a.per_source,
                deadline: Duration::from_secs(300),
            };
            let pb = ProgressBar::new(a.conns as u64);
            pb.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} connections",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            let held = idle::open_idle(&cfg, Some(&pb));
            pb.finish_and_clear();
            println!(
                "opened {}/{} connections from {} source address(es){}; errors {}{}",
                held.streams.len(),
                a.conns,
                held.sources.max(1),
                if a.ping { ", each pinged once" } else { "" },
                held.errors.count,
                held.errors
                    .first
                    .as_deref()
                    .map(|f| format!(" (first: {f})"))
                    .unwrap_or_default()
            );
            println!("holding them for {:.1} s", hold.as_secs_f64());
            std::thread::sleep(hold);
            drop(held);
            Ok(())
        }
        Cmd::Cost(a) => {
            let [r1, r2] = a.rounds[..] else {
                bail!("--rounds takes two counts, e.g. 100,300");
            };
            cost::run(cost::CostOptions {
                servers: a.servers,
                conns: a.conns,
                rounds: (r1, r2),
                size: a.size,
                out: a.out,
                command: std::iter::once("netloop-bench".to_string())
                    .chain(std::env::args().skip(1))
                    .collect::<Vec<_>>()
                    .join(" "),
            })
        }
        Cmd::Compare(a) => {
            let command = std::iter::once("netloop-bench".to_string())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" ");
            compare::run(compare::CompareOptions {
                quick: a.quick,
                out: a.out,
                servers: a.servers,
                idle_conns: a.idle_conns.unwrap_or(if a.quick { 2_000 } else { 10_000 }),
                rounds: a.rounds.map_or(if a.quick { 1 } else { 3 }, |r| r as usize),
                command,
            })
        }
    }
}
