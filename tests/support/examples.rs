//! Running the examples as child processes.

use std::io::Read;
use std::time::{Duration, Instant};

/// How long an example run may take before it is killed.
const EXAMPLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `cargo run --example <example> -- <args>`; returns its status and output.
/// Every example takes `--backend`: the suite's backend (`NETLOOP_TEST_BACKEND`)
/// is passed on unless `args` name one.
pub fn run_example(example: &str, args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let mut child = std::process::Command::new(env!("CARGO"))
        .args([
            "run",
            "--quiet",
            "--manifest-path",
            manifest,
            "--example",
            example,
            "--",
        ])
        .args(args)
        .args(super::backend_flag(args))
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting cargo");
    // Drain both pipes on threads so a chatty child can't block on a full pipe.
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + EXAMPLE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for cargo") {
            break status;
        }
        if Instant::now() > deadline {
            // `cargo run` execs the example on Unix, so this kills the example itself.
            let _ = child.kill();
            let _ = child.wait();
            panic!("`cargo run --example {example}` did not finish within {EXAMPLE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status,
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}
