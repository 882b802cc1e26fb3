//! Locating, building, starting and stopping the servers under test.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::procfs;

/// All server names, in the default order.
pub const ALL: &[&str] = &[
    "netloop",
    "netloop-uring",
    "floor",
    "tokio",
    "threads",
    "monoio",
    "go",
];

/// Servers that run on io_uring: valgrind does not follow io_uring (its
/// operations run in the kernel, outside the instrumented process).
pub fn on_io_uring(name: &str) -> bool {
    matches!(name, "netloop-uring" | "monoio")
}

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Upper bound for one `cargo build` / `go build`.
const BUILD_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// How to run one server: program and arguments, `{addr}` replaced at start.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// Where things are: the workspace, the target dir, the running profile.
pub struct Layout {
    pub workspace: PathBuf,
    pub target_dir: PathBuf,
    /// Directory of the running binary (target/<profile>).
    pub exe_dir: PathBuf,
    pub release: bool,
    /// Build logs, server stderr logs, the Go binary.
    pub work_dir: PathBuf,
}

impl Layout {
    pub fn detect() -> Result<Self> {
        let exe = std::env::current_exe().context("locating the running binary")?;
        let exe_dir = exe
            .parent()
            .ok_or_else(|| anyhow!("binary has no parent directory"))?
            .to_path_buf();
        let release = exe_dir.file_name().is_some_and(|n| n == "release");
        let target_dir = exe_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| exe_dir.clone());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let workspace = manifest
            .parent()
            .filter(|p| p.join("Cargo.toml").exists())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
        let work_dir = target_dir.join("netloop-bench");
        std::fs::create_dir_all(work_dir.join("logs"))
            .with_context(|| format!("creating {}", work_dir.display()))?;
        Ok(Self {
            workspace,
            target_dir,
            exe_dir,
            release,
            work_dir,
        })
    }

    fn log(&self, name: &str) -> PathBuf {
        self.work_dir.join("logs").join(format!("{name}.log"))
    }
}

/// Finds an executable on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Runs a build command to completion within BUILD_TIMEOUT, output to `log`.
fn run_build(mut cmd: Command, log: &Path) -> Result<()> {
    let out = File::create(log)?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let mut child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
    let deadline = Instant::now() + BUILD_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            bail!(
                "{status}; last output: {} (full log: {})",
                tail(log, 3),
                log.display()
            );
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("build timed out after {BUILD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Last `n` non-empty lines of a file, joined with " | ".
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// Builds the peer binaries of this crate (same profile as the running
/// binary). Falls back to already-built binaries when cargo is unavailable.
pub fn build_peers(layout: &Layout) -> Result<()> {
    if which("cargo").is_none() {
        return Ok(());
    }
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&layout.workspace)
        .env("CARGO_TARGET_DIR", &layout.target_dir)
        .args(["build", "-p", "netloop-bench", "--bins"]);
    if layout.release {
        cmd.arg("--release");
    }
    run_build(cmd, &layout.work_dir.join("logs").join("build-peers.log"))
}

/// Locates (building where needed) one server; `Err` is the reason to skip it.
pub fn prepare(name: &str, layout: &Layout, peers_built: &Result<(), String>) -> Result<Launch> {
    let peer = |bin: &str, extra: &[&str]| -> Result<Launch> {
        let program = layout.exe_dir.join(bin);
        if !program.is_file() {
            match peers_built {
                Err(e) => bail!("building the peers failed: {e}"),
                Ok(()) => bail!("{} not found", program.display()),
            }
        }
        let mut args = vec!["--addr".to_string(), "{addr}".to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        Ok(Launch { program, args })
    };
    match name {
        "floor" => peer("peer-floor", &[]),
        "tokio" => peer("peer-tokio", &["--threads", "1"]),
        "threads" => peer("peer-threads", &[]),
        "monoio" => peer("peer-monoio", &[]),
        "go" => {
            let Some(go) = which("go") else {
                bail!("go not installed");
            };
            let src = layout.workspace.join("bench/peers/go/echo.go");
            if !src.is_file() {
                bail!("{} missing", src.display());
            }
            let program = layout.work_dir.join("echo-go");
            let mut cmd = Command::new(go);
            cmd.current_dir(&layout.workspace)
                .arg("build")
                .arg("-o")
                .arg(&program)
                .arg(&src);
            if std::env::var_os("HOME").is_none() && std::env::var_os("GOCACHE").is_none() {
                cmd.env("GOCACHE", layout.work_dir.join("gocache"));
            }
            run_build(cmd, &layout.log("build-go")).context("go build failed")?;
            Ok(Launch {
                program,
                args: vec!["--addr".into(), "{addr}".into()],
            })
        }
        "netloop" | "netloop-uring" => {
            if !layout.workspace.join("examples/echo.rs").is_file() {
                bail!("examples/echo.rs is not in this checkout yet (it arrives with the library)");
            }
            let mut cmd = Command::new(which("cargo").ok_or_else(|| anyhow!("cargo not on PATH"))?);
            cmd.current_dir(&layout.workspace)
                .env("CARGO_TARGET_DIR", &layout.target_dir)
                .args(["build", "--release", "-p", "netloop", "--example", "echo"]);
            run_build(cmd, &layout.log("build-netloop"))
                .context("cargo build --example echo failed")?;
            let backend = if name == "netloop" { "epoll" } else { "uring" };
            Ok(Launch {
                program: layout.target_dir.join("release/examples/echo"),
                args: vec![
                    "--addr".into(),
                    "{addr}".into(),
                    "--loops".into(),
                    "1".into(),
                    "--backend".into(),
                    backend.into(),
                ],
            })
        }
        other => bail!("unknown server {other:?} (known: {})", ALL.join(", ")),
    }
}

/// A running server. Dropping it stops the process (SIGTERM, then SIGKILL).
pub struct ServerProc {
    pub name: String,
    pub addr: SocketAddr,
    child: Child,
}

impl ServerProc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(reason)` when the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited: {status}", self.name)),
            Ok(None) => None,
            Err(e) => Some(format!("{}: state unknown: {e}", self.name)),
        }
    }

    pub fn stop(self) {
        drop(self)
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: kill() has no memory-safety preconditions; the pid is our
        // own not-yet-reaped child, so it cannot have been reused.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on 127.0.0.1 (bound, read, released).
pub fn free_addr() -> Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// Starts a server pinned to `cpu` and waits for its `listening on` line.
pub fn start(
    name: &str,
    launch: &Launch,
    cpu: Option<usize>,
    layout: &Layout,
) -> Result<ServerProc> {
    let want = free_addr()?;
    let log = layout.log(name);
    let mut cmd = Command::new(&launch.program);
    cmd.args(
        launch
            .args
            .iter()
            .map(|a| a.replace("{addr}", &want.to_string())),
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(File::create(&log)?);
    let set = cpu.map(procfs::cpu_set);
    // SAFETY: the closure runs between fork and exec and only makes two
    // async-signal-safe system calls on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(set) = set {
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // Die with the harness, even if it is killed outright.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", launch.program.display()))?;
    let stdout = child.stdout.take();
    let mut proc = ServerProc {
        name: name.to_string(),
        addr: want,
        child,
    };
    let (tx, rx) = mpsc::channel();
    if let Some(stdout) = stdout {
        std::thread::spawn(move || {
            // The contract is one `listening on HOST:PORT` line; tolerate a
            // few lines of chatter before it.
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref().take(50) {
                let Ok(line) = line else { break };
                if line.contains("listening on ") {
                    let _ = tx.send(line);
                    break;
                }
            }
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines.by_ref() {}
        });
    }
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(line) => {
            let addr = parse_listening(&line)
                .ok_or_else(|| anyhow!("cannot parse an address from {line:?}"))?;
            proc.addr = addr;
            Ok(proc)
        }
        Err(_) => {
            // Give a crashing server a moment to finish writing its reason.
            std::thread::sleep(Duration::from_millis(100));
            let state = proc
                .exited()
                .unwrap_or_else(|| format!("no `listening on` line within {START_TIMEOUT:?}"));
            let why = tail(&log, 2);
            drop(proc);
            if why.is_empty() {
                bail!("{state}")
            }
            bail!("{state}: {why}")
        }
    }
}

/// The address in a `listening on HOST:PORT` line (extra words after it are ignored).
fn parse_listening(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let token = rest.split_whitespace().next()?;
    token.trim_end_matches([',', ';', '.']).parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listening_lines() {
        let a: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(parse_listening("listening on 127.0.0.1:9000"), Some(a));
        assert_eq!(
            parse_listening("echo: listening on 127.0.0.1:9000 (1 loop)"),
            Some(a)
        );
        assert_eq!(parse_listening("listening on 127.0.0.1:9000,"), Some(a));
        assert_eq!(
            parse_listening("listening on [::1]:80").map(|a| a.port()),
            Some(80)
        );
        assert_eq!(parse_listening("ready"), None);
    }
}
