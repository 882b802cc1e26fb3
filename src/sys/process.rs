//! Starting a program with listening sockets handed down the systemd way, and
//! adopting sockets handed down to this process: the `unsafe` parts of
//! [`crate::prefork`].
//!
//! # Why a `pre_exec` hook that calls `execve` itself
//!
//! The socket-activation protocol (`sd_listen_fds(3)`) puts the descriptors at
//! 3, 4, … and sets `LISTEN_PID` to the pid of the process meant to use them;
//! a receiver ignores them when `LISTEN_PID` is not its own pid. That pid only
//! exists after the fork, and after a fork in a threaded process only
//! async-signal-safe operations are allowed (no allocation, no `setenv`). So
//! everything is prepared in the parent — argument and environment strings,
//! with a fixed-size slot for the pid digits — and the child, in one
//! `pre_exec` hook, moves the descriptors into place (`fcntl`/`dup2`), writes
//! its pid into the slot (`getpid`), builds the pointer arrays in
//! pre-allocated space, and calls `execve`. (`command-fds` would do the
//! descriptor part, but cannot set `LISTEN_PID`, and would bring `nix`.)
//! `std` still does the fork, the standard streams, and reports an `execve`
//! failure to [`Command::spawn`].

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};

/// The first descriptor of a socket-activation hand-down (`SD_LISTEN_FDS_START`).
pub(crate) const LISTEN_FDS_START: RawFd = 3;

/// Room for the decimal digits of a pid (at most 2^22 on Linux; 20 covers u64).
const PID_DIGITS: usize = 20;

/// What the child needs, all allocated before the fork.
struct ExecImage {
    program: CString,
    argv: Vec<CString>,
    /// `NAME=value\0` entries; `pid_slot` is `LISTEN_PID=` plus [`PID_DIGITS`]
    /// bytes plus a NUL, filled in by the child.
    env: Vec<Vec<u8>>,
    pid_slot: usize,
    /// Descriptors to place at 3, 4, … (kept open by the parent until spawn returns).
    fds: Vec<RawFd>,
    /// Scratch for the `argv`/`envp` pointer arrays (capacity reserved).
    argv_ptrs: Vec<*const libc::c_char>,
    env_ptrs: Vec<*const libc::c_char>,
}

// SAFETY: the raw pointers in the scratch vectors are written and read only
// inside the forked child (in `exec`), where they point into this same image;
// in the parent they are never dereferenced.
unsafe impl Send for ExecImage {}
// SAFETY: as above; `&ExecImage` gives no access to the pointers.
unsafe impl Sync for ExecImage {}

impl ExecImage {
    /// Runs in the forked child: async-signal-safe calls only, no allocation
    /// (the scratch vectors have their capacity; `clear` and `push` within it
    /// do not allocate).
    fn exec(&mut self) -> io::Result<()> {
        let n = self.fds.len() as RawFd;
        // 1. Move every descriptor above the target range first, so that no
        //    `dup2` onto 3+i closes a source still needed.
        let floor = LISTEN_FDS_START + n;
        for fd in self.fds.iter_mut() {
            // SAFETY: `*fd` is open (the parent holds it until spawn returns);
            // F_DUPFD_CLOEXEC creates a new descriptor >= floor, closed by exec.
            let high = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, floor) };
            if high < 0 {
                return Err(io::Error::last_os_error());
            }
            *fd = high;
        }
        // 2. Place them at 3, 4, …; dup2 clears close-on-exec on the copy.
        for (i, &fd) in self.fds.iter().enumerate() {
            // SAFETY: both are plain descriptor numbers; dup2 closes whatever
            // the target held, which is what the hand-down requires.
            if unsafe { libc::dup2(fd, LISTEN_FDS_START + i as RawFd) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // 3. LISTEN_PID=<our pid>.
        // SAFETY: getpid has no preconditions.
        let mut pid = unsafe { libc::getpid() } as u64;
        let slot = &mut self.env[self.pid_slot];
        let digits_at = b"LISTEN_PID=".len();
        let mut digits = [0u8; PID_DIGITS];
        let mut len = 0;
        loop {
            digits[len] = b'0' + (pid % 10) as u8;
            len += 1;
            pid /= 10;
            if pid == 0 {
                break;
            }
        }
        for i in 0..len {
            slot[digits_at + i] = digits[len - 1 - i];
        }
        slot[digits_at + len] = 0;
        // 4. Pointer arrays, NULL-terminated.
        self.argv_ptrs.clear();
        self.argv_ptrs.extend(
            self.argv
                .iter()
                .map(|a| a.as_ptr())
                .chain([std::ptr::null()]),
        );
        self.env_ptrs.clear();
        self.env_ptrs.extend(
            self.env
                .iter()
                .map(|e| e.as_ptr().cast::<libc::c_char>())
                .chain([std::ptr::null()]),
        );
        // SAFETY: `program` is a NUL-terminated path; both arrays are
        // NULL-terminated arrays of NUL-terminated strings owned by `self`,
        // alive for the call. execve only returns on failure.
        unsafe {
            libc::execve(
                self.program.as_ptr(),
                self.argv_ptrs.as_ptr(),
                self.env_ptrs.as_ptr(),
            )
        };
        Err(io::Error::last_os_error())
    }
}

fn cstring(bytes: &[u8], what: &str) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        )
    })
}

/// Starts `program` with `args` (argv[0] first) and exactly the environment
/// `env` plus `LISTEN_FDS`/`LISTEN_PID` for `fds`, which the child finds at
/// 3, 4, … (`LISTEN_FDNAMES`, if wanted, belongs in `env`). Standard streams
/// are inherited unless `configure` changes them.
pub(crate) fn spawn_with_fds(
    program: &Path,
    args: &[OsString],
    env: &[(OsString, OsString)],
    fds: &[BorrowedFd<'_>],
    configure: impl FnOnce(&mut Command),
) -> io::Result<Child> {
    let mut entries = Vec::with_capacity(env.len() + 2);
    for (k, v) in env {
        let mut e = Vec::with_capacity(k.len() + v.len() + 2);
        e.extend_from_slice(k.as_bytes());
        e.push(b'=');
        e.extend_from_slice(v.as_bytes());
        entries.push(cstring(&e, "an environment variable")?.into_bytes_with_nul());
    }
    entries.push(format!("LISTEN_FDS={}\0", fds.len()).into_bytes());
    let mut slot = b"LISTEN_PID=".to_vec();
    slot.resize(slot.len() + PID_DIGITS + 1, 0);
    entries.push(slot);
    let argv: Vec<CString> = args
        .iter()
        .map(|a| cstring(a.as_bytes(), "an argument"))
        .collect::<io::Result<_>>()?;
    let mut image = ExecImage {
        program: cstring(program.as_os_str().as_bytes(), "the program path")?,
        argv_ptrs: Vec::with_capacity(argv.len() + 1),
        env_ptrs: Vec::with_capacity(entries.len() + 1),
        argv,
        pid_slot: entries.len() - 1,
        env: entries,
        fds: fds.iter().map(|f| f.as_raw_fd()).collect(),
    };
    let mut cmd = Command::new(program);
    configure(&mut cmd);
    // SAFETY: the hook runs in the forked child and does only async-signal-safe
    // work on memory prepared here (see `ExecImage::exec`). The descriptors in
    // `fds` are borrowed for this call, so they stay open until the fork.
    unsafe {
        cmd.pre_exec(move || image.exec());
    }
    cmd.spawn()
}

static ADOPTED: AtomicBool = AtomicBool::new(false);

/// Takes ownership of the descriptors handed to this process by socket
/// activation (`LISTEN_FDS`, `LISTEN_PID` matching, names from
/// `LISTEN_FDNAMES`), marked close-on-exec. Only the first call returns them;
/// later calls return none, so no descriptor gets two owners.
pub(crate) fn adopt_listen_fds() -> io::Result<Vec<(OwnedFd, String)>> {
    let fds = sd_notify::listen_fds_with_names()?;
    if fds.len() == 0 || ADOPTED.swap(true, Ordering::AcqRel) {
        return Ok(Vec::new());
    }
    Ok(fds
        .map(|(fd, name)| {
            // SAFETY: the service manager handed this descriptor to this process
            // (LISTEN_PID is ours), nothing else in the process owns it, and the
            // ADOPTED flag makes sure it is wrapped only once.
            (unsafe { OwnedFd::from_raw_fd(fd) }, name)
        })
        .collect())
}
