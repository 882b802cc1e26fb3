//! BENCHMARKS.md and the SVG chart.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::compare::{CellResult, Results};

/// Median, min and max of a non-empty set of values.
pub fn spread(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some((med, v[0], v[n - 1]))
}

/// 1234567.8 → "1,234,568".
pub fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if x < 0.0 {
        out.insert(0, '-');
    }
    out
}

fn fmt_spread(v: Vec<f64>, f: &dyn Fn(f64) -> String) -> String {
    match spread(v) {
        None => "–".into(),
        Some((m, lo, hi)) if lo == hi => f(m),
        Some((m, lo, hi)) => format!("{} ({}–{})", f(m), f(lo), f(hi)),
    }
}

fn metric(r: &CellResult, f: impl Fn(&crate::compare::Sample) -> Option<f64>) -> Vec<f64> {
    r.samples.iter().filter_map(f).collect()
}

fn errors_cell(r: &CellResult) -> String {
    let errs: u64 = r.samples.iter().map(|s| s.errors).sum();
    let first = r
        .samples
        .iter()
        .find_map(|s| s.first_error.clone())
        .or_else(|| r.failures.first().cloned());
    let mut out = errs.to_string();
    if !r.failures.is_empty() {
        let _ = write!(out, " + {} failed run(s)", r.failures.len());
    }
    if let Some(f) = first {
        let f: String = f.chars().take(120).collect();
        let _ = write!(out, " (first: {})", f.replace('|', "/"));
    }
    out
}

pub fn date_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            format!("unix time {secs}")
        })
}

pub fn markdown(r: &Results, command: &str, chart: Option<&Path>) -> String {
    let (nproc, model, kernel) = &r.machine;
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# netloop benchmarks\n");
    let _ = writeln!(w, "Command: `{command}`\n");
    let _ = writeln!(w, "| | |\n|---|---|");
    let _ = writeln!(w, "| date | {} |", date_utc());
    let _ = writeln!(w, "| CPUs (nproc) | {nproc} |");
    let _ = writeln!(w, "| CPU model | {model} |");
    let _ = writeln!(w, "| kernel | {kernel} |");
    let _ = writeln!(w, "| pinning | {} |", r.pinning);
    let _ = writeln!(
        w,
        "| rounds | {} (server order rotated every round; each server freshly started per round) |",
        r.rounds
    );
    let _ = writeln!(
        w,
        "| per cell | {:.1} s warm-up + {:.1} s measured |",
        r.warmup.as_secs_f64(),
        r.duration.as_secs_f64()
    );
    let _ = writeln!(
        w,
        "| build | {} |",
        if r.release {
            "release"
        } else {
            "**debug — numbers are meaningless**"
        }
    );
    let _ = writeln!(w, "| wall time | {:.0} s |\n", r.elapsed.as_secs_f64());

    let _ = writeln!(w, "Servers measured: {}.\n", list_or_none(&r.servers));
    if !r.skipped.is_empty() {
        let _ = writeln!(w, "Skipped:\n");
        for (n, why) in &r.skipped {
            let _ = writeln!(w, "- **{n}**: {why}");
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(
        w,
        "Each figure is the median over rounds, with min–max in parentheses when they differ. \
         *Server CPU µs/msg* is the server process's CPU time (the scheduler's exact run time, /proc/PID/task/*/schedstat) \
         over the measured window divided by the messages completed in it. See bench/README.md \
         for how to read these numbers.\n"
    );

    goals(w, r);
    uring_goals(w, r);

    let _ = writeln!(w, "## Closed loop\n");
    for cell in r.cells.iter().filter(|c| c.rate.is_none()) {
        let _ = writeln!(w, "### {}\n", cell.title);
        let _ = writeln!(
            w,
            "| server | msgs/s | MB/s | p50 µs | p99 µs | server CPU µs/msg | errors |\n|---|---:|---:|---:|---:|---:|---|"
        );
        for s in &r.servers {
            let Some(cr) = r.by_cell.get(&(s.clone(), cell.key)) else {
                continue;
            };
            let size = cell.size as f64;
            let _ = writeln!(
                w,
                "| {s} | {} | {} | {} | {} | {} | {} |",
                fmt_spread(metric(cr, |x| Some(x.msgs_per_sec)), &thousands),
                fmt_spread(metric(cr, |x| Some(x.msgs_per_sec * size / 1e6)), &|v| {
                    format!("{v:.1}")
                }),
                fmt_spread(metric(cr, |x| Some(x.p50_us as f64)), &|v| format!(
                    "{v:.0}"
                )),
                fmt_spread(metric(cr, |x| Some(x.p99_us as f64)), &|v| format!(
                    "{v:.0}"
                )),
                fmt_spread(metric(cr, |x| x.cpu_us_per_msg), &|v| format!("{v:.2}")),
                errors_cell(cr)
            );
        }
        let _ = writeln!(w);
    }

    for cell in r.cells.iter().filter(|c| c.rate.is_some()) {
        let _ = writeln!(w, "## Fixed rate: {}\n", cell.title);
        let _ = writeln!(
            w,
            "Latency is measured from each message's *scheduled* send time, so a stall is \
             charged to every message it delays (no coordinated omission).\n"
        );
        let _ = writeln!(
            w,
            "| server | achieved msgs/s | p50 µs | p99 µs | server CPU µs/msg | errors |\n|---|---:|---:|---:|---:|---|"
        );
        for s in &r.servers {
            let Some(cr) = r.by_cell.get(&(s.clone(), cell.key)) else {
                continue;
            };
            let _ = writeln!(
                w,
                "| {s} | {} | {} | {} | {} | {} |",
                fmt_spread(metric(cr, |x| Some(x.msgs_per_sec)), &thousands),
                fmt_spread(metric(cr, |x| Some(x.p50_us as f64)), &|v| format!(
                    "{v:.0}"
                )),
                fmt_spread(metric(cr, |x| Some(x.p99_us as f64)), &|v| format!(
                    "{v:.0}"
                )),
                fmt_spread(metric(cr, |x| x.cpu_us_per_msg), &|v| format!("{v:.2}")),
                errors_cell(cr)
            );
        }
        let _ = writeln!(w);
    }

    let _ = writeln!(w, "## Idle connections\n");
    let _ = writeln!(
        w,
        "Server RSS (VmRSS) before and after opening the connections (each pinged once, \
         spread over source addresses 127.0.0.2…), and the server CPU time consumed while \
         they sit idle. One run per server.\n"
    );
    let _ = writeln!(
        w,
        "| server | connections | RSS before | RSS after | bytes/conn | CPU while idle | errors |\n|---|---:|---:|---:|---:|---:|---|"
    );
    for s in &r.servers {
        match r.idle.get(s) {
            Some(Ok(i)) => {
                let errs = match &i.first_error {
                    Some(f) => format!("{} (first: {})", i.errors, f.replace('|', "/")),
                    None => i.errors.to_string(),
                };
                let _ = writeln!(
                    w,
                    "| {s} | {}/{} from {} source addr(s) | {:.1} MiB | {:.1} MiB | {} | {:.0} ms in {:.1} s | {errs} |",
                    thousands(i.opened as f64),
                    thousands(i.requested as f64),
                    i.sources,
                    i.rss_before as f64 / 1048576.0,
                    i.rss_after as f64 / 1048576.0,
                    i.bytes_per_conn().map(thousands).unwrap_or_else(|| "–".into()),
                    i.idle_cpu_ms,
                    i.idle_secs
                );
            }
            Some(Err(e)) => {
                let _ = writeln!(
                    w,
                    "| {s} | – | – | – | – | – | failed: {} |",
                    e.replace('|', "/")
                );
            }
            None => {}
        }
    }
    let _ = writeln!(w);
    if let Some(p) = chart {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let _ = writeln!(w, "## Chart\n\n![msgs/s and p99 per server]({name})\n");
    }
    md
}

/// Median and range of one metric of one server in one cell.
fn cell_spread(
    r: &Results,
    server: &str,
    key: &'static str,
    f: impl Fn(&crate::compare::Sample) -> Option<f64>,
) -> Option<(f64, f64, f64)> {
    let cr = r.by_cell.get(&(server.to_string(), key))?;
    spread(metric(cr, f))
}

/// How a goal came out: by the medians, and whether the two servers' min–max
/// ranges overlap (then the difference is within this run's noise).
fn verdict(met: bool, a: (f64, f64, f64), b: (f64, f64, f64)) -> String {
    let overlap = a.1 <= b.2 && b.1 <= a.2;
    match (met, overlap) {
        (true, _) => "met".into(),
        (false, true) => "not met (within the spread)".into(),
        (false, false) => "**not met**".into(),
    }
}

/// The goals for netloop, each a ratio to the floor (or a peer) from this
/// run, with a verdict. Only written when netloop and the floor were both measured.
fn goals(w: &mut String, r: &Results) {
    let has = |s: &str| r.servers.iter().any(|x| x == s);
    if !has("netloop") || !has("floor") {
        return;
    }
    let _ = writeln!(w, "## netloop against its goals\n");
    let _ = writeln!(
        w,
        "Ratios of medians from this run (netloop ÷ the other). *Within the spread*: \
         the two servers' min–max ranges over the rounds overlap, so this run cannot tell them apart.\n"
    );
    let _ = writeln!(w, "| cell | goal | ratio | verdict |\n|---|---|---:|---|");
    let peers: Vec<&String> = r
        .servers
        .iter()
        .filter(|s| *s != "netloop" && *s != "floor" && *s != "netloop-uring")
        .collect();
    for cell in &r.cells {
        let k = cell.key;
        let cpu = |s: &str| cell_spread(r, s, k, |x| x.cpu_us_per_msg);
        let rate = |s: &str| cell_spread(r, s, k, |x| Some(x.msgs_per_sec));
        let p99 = |s: &str| cell_spread(r, s, k, |x| Some(x.p99_us as f64));
        let mut row = |goal: String,
                       a: Option<(f64, f64, f64)>,
                       b: Option<(f64, f64, f64)>,
                       ok: &dyn Fn(f64) -> bool| {
            if let (Some(a), Some(b)) = (a, b) {
                if b.0 > 0.0 {
                    let ratio = a.0 / b.0;
                    let _ = writeln!(
                        w,
                        "| {k} | {goal} | {ratio:.2} | {} |",
                        verdict(ok(ratio), a, b)
                    );
                }
            }
        };
        row(
            "server CPU/msg ≤ 1.03 × floor".into(),
            cpu("netloop"),
            cpu("floor"),
            &|x| x <= 1.03,
        );
        for p in &peers {
            row(
                format!("server CPU/msg < {p}"),
                cpu("netloop"),
                cpu(p),
                &|x| x < 1.0,
            );
        }
        if cell.rate.is_none() {
            row(
                "msgs/s ≥ 0.97 × floor".into(),
                rate("netloop"),
                rate("floor"),
                &|x| x >= 0.97,
            );
            if has("tokio") {
                row(
                    "msgs/s > tokio".into(),
                    rate("netloop"),
                    rate("tokio"),
                    &|x| x > 1.0,
                );
            }
        }
        row(
            "p99 ≤ 1.1 × floor".into(),
            p99("netloop"),
            p99("floor"),
            &|x| x <= 1.1,
        );
        if has("tokio") {
            row("p99 ≤ tokio".into(), p99("netloop"), p99("tokio"), &|x| {
                x <= 1.0
            });
        }
    }
    if let Some(Ok(i)) = r.idle.get("netloop") {
        if let Some(b) = i.bytes_per_conn() {
            let _ = writeln!(
                w,
                "| idle | memory per idle connection ≤ 64 B | {b:.0} B | {} |",
                if b <= 64.0 { "met" } else { "**not met**" }
            );
        }
        // "~0": under 1 % of one core while every connection is idle.
        let busy = i.idle_cpu_ms / (i.idle_secs * 1000.0);
        let _ = writeln!(
            w,
            "| idle | CPU at idle ≈ 0 (< 1 % of a core) | {:.0} ms in {:.1} s | {} |",
            i.idle_cpu_ms,
            i.idle_secs,
            if busy < 0.01 { "met" } else { "**not met**" }
        );
    }
    let _ = writeln!(w);
}

/// The io_uring backend's goals: against netloop on epoll (the same example) and
/// monoio (the io_uring peer). Only written when both netloop servers were measured.
fn uring_goals(w: &mut String, r: &Results) {
    let has = |s: &str| r.servers.iter().any(|x| x == s);
    if !has("netloop") || !has("netloop-uring") {
        return;
    }
    let _ = writeln!(w, "## netloop on io_uring against its goals\n");
    let _ = writeln!(
        w,
        "Ratios of medians from this run (netloop-uring ÷ the other); syscalls per message are \
         in the cost report (`netloop-bench cost`).\n"
    );
    let _ = writeln!(w, "| cell | goal | ratio | verdict |\n|---|---|---:|---|");
    for cell in &r.cells {
        let k = cell.key;
        let cpu = |s: &str| cell_spread(r, s, k, |x| x.cpu_us_per_msg);
        let p99 = |s: &str| cell_spread(r, s, k, |x| Some(x.p99_us as f64));
        let mut row = |goal: &str,
                       a: Option<(f64, f64, f64)>,
                       b: Option<(f64, f64, f64)>,
                       ok: &dyn Fn(f64) -> bool| {
            if let (Some(a), Some(b)) = (a, b) {
                if b.0 > 0.0 {
                    let ratio = a.0 / b.0;
                    let _ = writeln!(
                        w,
                        "| {k} | {goal} | {ratio:.2} | {} |",
                        verdict(ok(ratio), a, b)
                    );
                }
            }
        };
        row(
            "server CPU/msg ≤ 0.90 × netloop (epoll)",
            cpu("netloop-uring"),
            cpu("netloop"),
            &|x| x <= 0.90,
        );
        if has("monoio") {
            row(
                "server CPU/msg < monoio",
                cpu("netloop-uring"),
                cpu("monoio"),
                &|x| x < 1.0,
            );
        }
        row(
            "p99 ≤ netloop (epoll)",
            p99("netloop-uring"),
            p99("netloop"),
            &|x| x <= 1.0,
        );
    }
    if let Some(Ok(i)) = r.idle.get("netloop-uring") {
        if let Some(b) = i.bytes_per_conn() {
            let _ = writeln!(
                w,
                "| idle | memory per idle connection ≤ 64 B | {b:.0} B | {} |",
                if b <= 64.0 { "met" } else { "**not met**" }
            );
        }
    }
    let _ = writeln!(w);
}

/// The raw samples, for tracking figures over time.
pub fn json(r: &Results, command: &str) -> serde_json::Value {
    let (nproc, model, kernel) = &r.machine;
    let cells: Vec<serde_json::Value> = r
        .cells
        .iter()
        .map(|c| {
            let per_server: serde_json::Map<String, serde_json::Value> = r
                .servers
                .iter()
                .filter_map(|s| {
                    let cr = r.by_cell.get(&(s.clone(), c.key))?;
                    Some((s.clone(), serde_json::to_value(cr).ok()?))
                })
                .collect();
            serde_json::json!({
                "key": c.key, "title": c.title, "size": c.size, "conns": c.conns,
                "depth": c.depth, "rate": c.rate, "results": per_server,
            })
        })
        .collect();
    let idle: serde_json::Map<String, serde_json::Value> = r
        .idle
        .iter()
        .map(|(s, v)| {
            let v = match v {
                Ok(i) => serde_json::to_value(i).unwrap_or_default(),
                Err(e) => serde_json::json!({ "error": e }),
            };
            (s.clone(), v)
        })
        .collect();
    serde_json::json!({
        "command": command,
        "date": date_utc(),
        "machine": { "nproc": nproc, "cpu_model": model, "kernel": kernel },
        "pinning": r.pinning,
        "rounds": r.rounds,
        "warmup_s": r.warmup.as_secs_f64(),
        "duration_s": r.duration.as_secs_f64(),
        "release": r.release,
        "servers": r.servers,
        "skipped": r.skipped.iter().map(|(n, why)| serde_json::json!({ "server": n, "reason": why })).collect::<Vec<_>>(),
        "cells": cells,
        "idle": idle,
    })
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Grouped bars: msgs/s of the closed-loop cells (top) and p99 of every cell (bottom).
pub fn chart(r: &Results, path: &Path) -> Result<()> {
    let closed: Vec<_> = r.cells.iter().filter(|c| c.rate.is_none()).collect();
    let median = |s: &str, key: &'static str, f: &dyn Fn(&crate::compare::Sample) -> f64| {
        r.by_cell
            .get(&(s.to_string(), key))
            .and_then(|cr| spread(cr.samples.iter().map(f).collect()))
            .map(|(m, _, _)| m)
    };
    let tput: Vec<Vec<Option<f64>>> = r
        .servers
        .iter()
        .map(|s| {
            closed
                .iter()
                .map(|c| median(s, c.key, &|x| x.msgs_per_sec))
                .collect()
        })
        .collect();
    let p99: Vec<Vec<Option<f64>>> = r
        .servers
        .iter()
        .map(|s| {
            r.cells
                .iter()
                .map(|c| median(s, c.key, &|x| x.p99_us as f64))
                .collect()
        })
        .collect();
    let root = SVGBackend::new(path, (1100, 820)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
    let (top, bottom) = root.split_vertically(410);
    panel(
        &top,
        "Closed-loop throughput (msgs/s, median)",
        &closed.iter().map(|c| c.key).collect::<Vec<_>>(),
        &r.servers,
        &tput,
    )?;
    panel(
        &bottom,
        "p99 latency (µs, median)",
        &r.cells.iter().map(|c| c.key).collect::<Vec<_>>(),
        &r.servers,
        &p99,
    )?;
    root.present().map_err(|e| anyhow!("{e:?}"))?;
    Ok(())
}

fn panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    title: &str,
    cells: &[&str],
    servers: &[String],
    values: &[Vec<Option<f64>>],
) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<_>| anyhow!("{e:?}");
    let n = cells.len().max(1);
    let top = values
        .iter()
        .flatten()
        .flatten()
        .fold(0.0f64, |a, &b| a.max(b));
    let top = if top > 0.0 { top * 1.15 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..top)
        .map_err(err)?;
    let names: Vec<String> = cells.iter().map(|s| s.to_string()).collect();
    let fmt_x = move |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
            names[i as usize].clone()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&|y| thousands(*y))
        .draw()
        .map_err(err)?;
    let m = servers.len().max(1);
    let slot = 0.8 / m as f64;
    for (j, (server, row)) in servers.iter().zip(values).enumerate() {
        let color = Palette99::pick(j).to_rgba();
        let bars: Vec<_> = row
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i, v)))
            .map(|(i, v)| {
                let x0 = i as f64 - 0.4 + j as f64 * slot;
                Rectangle::new([(x0, 0.0), (x0 + slot * 0.9, v)], color.filled())
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(err)?
            .label(server.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_separate_misses_from_noise() {
        // (median, min, max)
        let (a, b) = ((1.10, 1.00, 1.20), (1.00, 0.95, 1.05));
        assert_eq!(verdict(true, a, b), "met");
        assert_eq!(verdict(false, a, b), "not met (within the spread)");
        let far = (2.0, 1.9, 2.1);
        assert_eq!(verdict(false, far, b), "**not met**");
    }

    #[test]
    fn spread_and_thousands() {
        assert_eq!(spread(vec![3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(spread(vec![4.0, 1.0]), Some((2.5, 1.0, 4.0)));
        assert_eq!(spread(vec![]), None);
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}
