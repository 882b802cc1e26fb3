//! How a worker or successor is started: the program file on disk, this
//! process's arguments, its environment cleaned of the previous hand-down, and
//! the listeners at 3, 4, … with the systemd variables.

use super::activation::{WorkerId, WORKER_ENV};
use std::ffi::OsString;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// Variables of an earlier hand-down, never passed on.
const SCRUBBED: [&str; 5] = [
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    WORKER_ENV,
];

/// The program, arguments and environment every start uses.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl Launch {
    /// This program, as it was started: the executable's path resolved now —
    /// before an upgrade replaces the file, after which `/proc/self/exe` would
    /// name the deleted old one — and this process's arguments and environment.
    pub(crate) fn current() -> io::Result<Launch> {
        Ok(Launch::program(
            std::env::current_exe()?,
            std::env::args_os().collect(),
        ))
    }

    /// Another program, with `args` (argv[0] first) and this environment.
    pub(crate) fn program(program: PathBuf, args: Vec<OsString>) -> Launch {
        Launch {
            program,
            args,
            env: std::env::vars_os()
                .filter(|(k, _)| !SCRUBBED.iter().any(|s| k == s))
                .collect(),
        }
    }

    /// The executable's path.
    pub(crate) fn path(&self) -> &Path {
        &self.program
    }

    /// Starts the program with `listeners` (descriptor, name) at 3, 4, …, the
    /// notify socket at `notify`, and the worker id if it is a worker.
    pub(crate) fn spawn(
        &self,
        listeners: &[(BorrowedFd<'_>, &str)],
        notify: &Path,
        worker: Option<WorkerId>,
    ) -> io::Result<Child> {
        let mut env = self.env.clone();
        env.push(("NOTIFY_SOCKET".into(), notify.into()));
        let names: Vec<&str> = listeners.iter().map(|(_, n)| *n).collect();
        env.push(("LISTEN_FDNAMES".into(), names.join(":").into()));
        if let Some(w) = worker {
            env.push((
                WORKER_ENV.into(),
                format!("{}.{}", w.generation, w.slot).into(),
            ));
        }
        let fds: Vec<BorrowedFd<'_>> = listeners.iter().map(|(fd, _)| *fd).collect();
        let args = if self.args.is_empty() {
            vec![self.program.clone().into_os_string()]
        } else {
            self.args.clone()
        };
        crate::sys::process::spawn_with_fds(&self.program, &args, &env, &fds, |_: &mut Command| {})
    }
}

/// A listener name fit for `LISTEN_FDNAMES` (no `:` separators, no controls,
/// at most 255 bytes, as `sd_listen_fds_with_names(3)` requires).
pub(crate) fn fd_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c == ':' || c.is_control() { '_' } else { c })
        .take(255)
        .collect();
    if clean.is_empty() {
        "unknown".into()
    } else {
        clean
    }
}
