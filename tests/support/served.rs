//! An example program running as a server process: its output lines collected
//! as they come, its pid and children, signals, and a bounded wait for exit.
//! Dropping it kills what is still running.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Builds `example` (a no-op when `cargo test` already did) and returns the
/// path of its binary.
pub fn example_binary(example: &str) -> PathBuf {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--manifest-path",
            manifest,
            "--example",
            example,
        ])
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building example {example} failed");
    // This test binary is target/<profile>/deps/<name>; examples sit beside deps.
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let path = profile_dir.join("examples").join(example);
    assert!(path.exists(), "{} not built", path.display());
    path
}

/// `--backend <NETLOOP_TEST_BACKEND>` for an example's command line, unless
/// unset or `args` already name a backend (every example takes `--backend`).
pub fn backend_flag(args: &[&str]) -> Vec<String> {
    match std::env::var("NETLOOP_TEST_BACKEND") {
        Ok(b) if !b.is_empty() && !args.contains(&"--backend") => vec!["--backend".into(), b],
        _ => Vec::new(),
    }
}

/// A running server process.
pub struct Served {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Served {
    /// Starts `program` with `args` (stdout and stderr collected; `RUST_LOG`
    /// from the test's environment, else `warn`).
    pub fn start(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Served {
        let mut cmd = Command::new(program);
        cmd.args(args);
        Served::spawn(cmd)
    }

    /// Starts example program `example` as a server with `args`, plus the
    /// suite's backend (`--backend`, from `NETLOOP_TEST_BACKEND`) unless `args`
    /// name one — as [`run_example`](super::run_example) does.
    pub fn example(example: &str, args: &[&str]) -> Served {
        let mut cmd = Command::new(example_binary(example));
        cmd.args(args).args(backend_flag(args));
        Served::spawn(cmd)
    }

    /// Starts a prepared command the same way.
    pub fn spawn(mut cmd: Command) -> Served {
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the server process");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        for stream in [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Served { child, lines }
    }

    /// The pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line printed so far (stdout and stderr interleaved).
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits up to `timeout` for a line containing `needle`; returns it.
    pub fn wait_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.wait_lines(needle, 1, timeout).map(|mut v| v.remove(0))
    }

    /// Waits until `count` lines contain `needle`; returns them.
    pub fn wait_lines(&self, needle: &str, count: usize, timeout: Duration) -> Option<Vec<String>> {
        let end = Instant::now() + timeout;
        loop {
            let found: Vec<String> = self
                .lines()
                .into_iter()
                .filter(|l| l.contains(needle))
                .collect();
            if found.len() >= count {
                return Some(found);
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The address from the first `listening on ADDR` line.
    pub fn listening_addr(&self) -> std::net::SocketAddr {
        let line = self
            .wait_line("listening on ", Duration::from_secs(30))
            .unwrap_or_else(|| panic!("no 'listening on' line: {:?}", self.lines()));
        let addr = line.rsplit("listening on ").next().unwrap().trim();
        addr.parse()
            .unwrap_or_else(|_| panic!("bad address in {line:?}"))
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: i32) {
        signal_pid(self.pid(), sig);
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("waiting for the server") {
                return Some(s);
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        for pid in children(self.pid()) {
            signal_pid(pid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `sig` to `pid` (ignoring a process that is already gone).
pub fn signal_pid(pid: u32, sig: i32) {
    let (Some(pid), Some(sig)) = (
        rustix::process::Pid::from_raw(pid as i32),
        rustix::process::Signal::from_named_raw(sig),
    ) else {
        return;
    };
    let _ = rustix::process::kill_process(pid, sig);
}

/// The children of `pid` (from `/proc/<pid>/task/*/children`), sorted.
pub fn children(pid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                v.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    v.sort_unstable();
    v
}

/// Whether `pid` is a live process (not gone, not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Descriptors open in process `pid`.
pub fn fd_count_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Whether `tool` is on the PATH; prints a skip note when it is not.
pub fn have_tool(tool: &str, test: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        eprintln!("note: {test} skipped: {tool} is not installed");
    }
    found
}
