//! `compare`: every server, the same matrix, pinned, interleaved rounds.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::idle::{open_idle, IdleConfig};
use crate::loadgen::{run_echo, EchoConfig, Edge};
use crate::procfs;
use crate::report;
use crate::server::{self, Launch, Layout, ServerProc};

pub struct CompareOptions {
    pub quick: bool,
    pub out: PathBuf,
    pub servers: Vec<String>,
    pub idle_conns: usize,
    pub rounds: usize,
    pub command: String,
}

/// One cell of the matrix.
#[derive(Debug, Clone)]
pub struct Cell {
    pub key: &'static str,
    pub title: &'static str,
    pub size: usize,
    pub conns: usize,
    pub depth: usize,
    pub rate: Option<f64>,
}

pub fn cells(quick: bool) -> Vec<Cell> {
    let all = vec![
        Cell {
            key: "pp64-c50",
            title: "64 B ping-pong, 50 connections",
            size: 64,
            conns: 50,
            depth: 1,
            rate: None,
        },
        Cell {
            key: "pp64-c1000",
            title: "64 B ping-pong, 1,000 connections",
            size: 64,
            conns: 1000,
            depth: 1,
            rate: None,
        },
        Cell {
            key: "pp4k-c50",
            title: "4 KiB ping-pong, 50 connections",
            size: 4096,
            conns: 50,
            depth: 1,
            rate: None,
        },
        Cell {
            key: "pipe64-d16-c50",
            title: "64 B pipelined (depth 16), 50 connections",
            size: 64,
            conns: 50,
            depth: 16,
            rate: None,
        },
        Cell {
            key: "rate20k-c50",
            title: "20,000 msgs/s of 64 B over 50 connections (open loop)",
            size: 64,
            conns: 50,
            depth: 1,
            rate: Some(20_000.0),
        },
    ];
    all.into_iter()
        .filter(|c| !quick || c.conns <= 50)
        .collect()
}

/// One measurement of one cell.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    pub msgs_per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub cpu_us_per_msg: Option<f64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct CellResult {
    pub samples: Vec<Sample>,
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct IdleResult {
    pub rss_before: u64,
    pub rss_after: u64,
    pub opened: usize,
    pub requested: usize,
    pub sources: usize,
    pub idle_cpu_ms: f64,
    pub idle_secs: f64,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl IdleResult {
    pub fn bytes_per_conn(&self) -> Option<f64> {
        (self.opened > 0)
            .then(|| (self.rss_after as f64 - self.rss_before as f64) / self.opened as f64)
    }
}

/// Everything the report needs.
pub struct Results {
    pub cells: Vec<Cell>,
    pub servers: Vec<String>,
    pub skipped: Vec<(String, String)>,
    /// (server, cell key) → samples.
    pub by_cell: BTreeMap<(String, &'static str), CellResult>,
    pub idle: BTreeMap<String, std::result::Result<IdleResult, String>>,
    pub rounds: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub pinning: String,
    pub release: bool,
    pub elapsed: Duration,
    /// (nproc, CPU model, kernel) as seen before pinning.
    pub machine: (usize, String, String),
}

/// Shows `msg` on the progress bar; when stderr is not a terminal (CI logs),
/// where indicatif draws nothing, prints it as a plain line instead.
fn step(pb: &ProgressBar, msg: String) {
    if std::io::stderr().is_terminal() {
        pb.set_message(msg);
    } else {
        eprintln!("[{:>4.0}s] {msg}", pb.elapsed().as_secs_f64());
    }
}

pub fn run(opts: CompareOptions) -> Result<()> {
    let started = Instant::now();
    if let Err(e) = procfs::raise_nofile() {
        eprintln!("warning: could not raise the fd limit: {e}");
    }
    // Read the machine before pinning (nproc honours the affinity mask), then
    // pin first, before any thread exists, so every later thread inherits it.
    let machine = procfs::machine();
    let allowed = procfs::allowed_cpus();
    let (server_cpu, pinning) = if allowed.len() >= 2 {
        let (s, c) = (allowed[0], allowed[1]);
        match procfs::pin_current_thread(c) {
            Ok(()) => (
                Some(s),
                format!("server on CPU {s}, load generator on CPU {c}"),
            ),
            Err(e) => (None, format!("not pinned (sched_setaffinity: {e})")),
        }
    } else {
        (None, "not pinned (fewer than 2 CPUs available)".to_string())
    };

    for s in &opts.servers {
        if !server::ALL.contains(&s.as_str()) {
            bail!("unknown server {s:?}; known: {}", server::ALL.join(", "));
        }
    }
    let layout = Layout::detect()?;
    let quick = opts.quick;
    let rounds = opts.rounds;
    let (warmup, duration) = if quick {
        (Duration::from_millis(500), Duration::from_secs(2))
    } else {
        (Duration::from_secs(1), Duration::from_secs(5))
    };
    let cells = cells(quick);

    let spinner = ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(120));
    let needs_peers = opts
        .servers
        .iter()
        .any(|s| matches!(s.as_str(), "floor" | "tokio" | "threads" | "monoio"));
    let peers_built: std::result::Result<(), String> = if needs_peers {
        step(
            &spinner,
            "building peer servers (cargo build -p netloop-bench --bins)".into(),
        );
        server::build_peers(&layout).map_err(|e| format!("{e:#}"))
    } else {
        Ok(())
    };
    let mut ready: Vec<(String, Launch)> = Vec::new();
    let mut skipped: Vec<(String, String)> = Vec::new();
    for name in &opts.servers {
        step(&spinner, format!("preparing {name}"));
        match server::prepare(name, &layout, &peers_built) {
            Ok(l) => ready.push((name.clone(), l)),
            Err(e) => skipped.push((name.clone(), format!("{e:#}"))),
        }
    }
    spinner.finish_and_clear();
    for (name, why) in &skipped {
        eprintln!("skipping {name}: {why}");
    }

    let steps = (rounds * ready.len() * cells.len() + ready.len()) as u64;
    let pb = ProgressBar::new(steps);
    pb.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.enable_steady_tick(Duration::from_millis(200));

    let mut by_cell: BTreeMap<(String, &'static str), CellResult> = BTreeMap::new();
    for round in 0..rounds {
        let n = ready.len();
        for k in 0..n {
            let (name, launch) = &ready[(k + round) % n];
            step(
                &pb,
                format!("round {}/{rounds}: starting {name}", round + 1),
            );
            let mut srv = match server::start(name, launch, server_cpu, &layout) {
                Ok(s) => s,
                Err(e) => {
                    for c in &cells {
                        by_cell
                            .entry((name.clone(), c.key))
                            .or_default()
                            .failures
                            .push(format!("start: {e:#}"));
                        pb.inc(1);
                    }
                    continue;
                }
            };
            for cell in &cells {
                step(
                    &pb,
                    format!("round {}/{rounds}: {name} · {}", round + 1, cell.key),
                );
                let entry = by_cell.entry((name.clone(), cell.key)).or_default();
                match measure(&mut srv, cell, warmup, duration) {
                    Ok(s) => entry.samples.push(s),
                    Err(e) => entry.failures.push(format!("{e:#}")),
                }
                pb.inc(1);
            }
            srv.stop();
        }
    }

    let mut idle = BTreeMap::new();
    for (name, launch) in &ready {
        step(
            &pb,
            format!("idle: {name} with {} connections", opts.idle_conns),
        );
        let r = idle_test(name, launch, server_cpu, &layout, opts.idle_conns);
        idle.insert(name.clone(), r.map_err(|e| format!("{e:#}")));
        pb.inc(1);
    }
    pb.finish_and_clear();

    let results = Results {
        cells,
        servers: ready.iter().map(|(n, _)| n.clone()).collect(),
        skipped,
        by_cell,
        idle,
        rounds,
        warmup,
        duration,
        pinning,
        release: layout.release,
        elapsed: started.elapsed(),
        machine,
    };
    let svg = opts.out.with_extension("svg");
    let chart_ok = match report::chart(&results, &svg) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("warning: chart not written: {e:#}");
            false
        }
    };
    let md = report::markdown(&results, &opts.command, chart_ok.then_some(svg.as_path()));
    std::fs::write(&opts.out, &md)?;
    let json_path = opts.out.with_extension("json");
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&report::json(&results, &opts.command))?,
    )?;
    print!("{md}");
    eprintln!(
        "wrote {}, {} and {}",
        opts.out.display(),
        svg.display(),
        json_path.display()
    );
    Ok(())
}

fn measure(
    srv: &mut ServerProc,
    cell: &Cell,
    warmup: Duration,
    duration: Duration,
) -> Result<Sample> {
    if let Some(why) = srv.exited() {
        bail!("{why}");
    }
    let pid = srv.pid();
    let cfg = EchoConfig {
        addr: srv.addr,
        conns: cell.conns,
        depth: cell.depth,
        size: cell.size,
        duration,
        warmup,
        rate: cell.rate,
        threads: 1,
    };
    let cpu: Mutex<(Option<u64>, Option<u64>)> = Mutex::new((None, None));
    let observer = |edge: Edge| {
        let t = procfs::cpu_ns(pid).ok();
        let mut g = cpu.lock().unwrap_or_else(|e| e.into_inner());
        match edge {
            Edge::WindowStart => g.0 = t,
            Edge::WindowEnd => g.1 = t,
        }
    };
    let r = run_echo(&cfg, &observer)?;
    let (a, b) = *cpu.lock().unwrap_or_else(|e| e.into_inner());
    let cpu_us_per_msg = match (a, b) {
        (Some(a), Some(b)) if r.messages > 0 => {
            Some(b.saturating_sub(a) as f64 / 1000.0 / r.messages as f64)
        }
        _ => None,
    };
    if let Some(why) = srv.exited() {
        bail!("{why} during the run");
    }
    Ok(Sample {
        msgs_per_sec: r.msgs_per_sec,
        p50_us: r.latency.p50_us,
        p99_us: r.latency.p99_us,
        cpu_us_per_msg,
        errors: r.errors,
        first_error: r.first_error,
    })
}

const IDLE_SECS: u64 = 3;

fn idle_test(
    name: &str,
    launch: &Launch,
    cpu: Option<usize>,
    layout: &Layout,
    conns: usize,
) -> Result<IdleResult> {
    let mut srv = server::start(name, launch, cpu, layout)?;
    std::thread::sleep(Duration::from_millis(300));
    let pid = srv.pid();
    let rss_before = procfs::rss_bytes(pid)?;
    let cfg = IdleConfig {
        addr: srv.addr,
        conns,
        ping: true,
        per_source: 5000,
        deadline: Duration::from_secs(60),
    };
    let held = open_idle(&cfg, None);
    std::thread::sleep(Duration::from_millis(500));
    if let Some(why) = srv.exited() {
        bail!("{why} while opening idle connections");
    }
    let rss_after = procfs::rss_bytes(pid)?;
    let t0 = procfs::cpu_ns(pid)?;
    let w0 = Instant::now();
    std::thread::sleep(Duration::from_secs(IDLE_SECS));
    let t1 = procfs::cpu_ns(pid)?;
    let idle_secs = w0.elapsed().as_secs_f64();
    let opened = held.streams.len();
    drop(held.streams);
    srv.stop();
    Ok(IdleResult {
        rss_before,
        rss_after,
        opened,
        requested: conns,
        sources: held.sources,
        idle_cpu_ms: t1.saturating_sub(t0) as f64 / 1e6,
        idle_secs,
        errors: held.errors.count,
        first_error: held.errors.first,
    })
}
