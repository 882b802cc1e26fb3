//! Small Linux helpers: /proc readings, CPU affinity, fd limit, machine facts.

use std::io;

/// utime + stime of a whole process (all its threads, live and exited), in
/// clock ticks, from /proc/PID/stat.
pub fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces: parse after the last ')'.
    let rest = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| io::Error::other("malformed /proc/PID/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let parse = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other("malformed /proc/PID/stat"))
    };
    Ok(parse(11)? + parse(12)?)
}

/// CPU time of a whole process in nanoseconds: the scheduler's exact run time
/// (`sum_exec_runtime`, first field of /proc/PID/task/TID/schedstat) summed over
/// its live threads. Falls back to [`cpu_ticks`] (10 ms resolution) where
/// schedstat is missing.
pub fn cpu_ns(pid: u32) -> io::Result<u64> {
    let exact = || -> io::Result<u64> {
        let mut total = 0u64;
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let path = task?.path().join("schedstat");
            let Ok(s) = std::fs::read_to_string(path) else {
                continue; // the thread exited meanwhile
            };
            total += s
                .split_whitespace()
                .next()
                .and_then(|f| f.parse::<u64>().ok())
                .ok_or_else(|| io::Error::other("malformed schedstat"))?;
        }
        Ok(total)
    };
    exact().or_else(|_| Ok((cpu_ticks(pid)? as f64 * us_per_tick() * 1000.0) as u64))
}

/// Microseconds per clock tick (10,000 with the usual USER_HZ of 100).
pub fn us_per_tick() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1e6 / if hz > 0 { hz as f64 } else { 100.0 }
}

/// Resident set size (VmRSS) of a process, in bytes.
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    for line in status.lines() {
        if let Some(v) = line.strip_prefix("VmRSS:") {
            let kb: u64 = v
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .map_err(|_| io::Error::other("malformed VmRSS"))?;
            return Ok(kb * 1024);
        }
    }
    Err(io::Error::other("no VmRSS line (process gone?)"))
}

/// A cpu_set_t containing only `cpu`.
pub fn cpu_set(cpu: usize) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET only writes inside `set`; `cpu` is below CPU_SETSIZE (checked by callers via allowed_cpus).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    set
}

/// CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: all-zero is a valid empty cpu_set_t.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is live and the size passed is its size.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET only reads inside `set`, and i < CPU_SETSIZE.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

/// Pins the calling thread (and threads it spawns later) to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    let set = cpu_set(cpu);
    // SAFETY: `set` is a live cpu_set_t and the size passed is its size.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a live rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

/// (nproc, CPU model name, kernel release).
pub fn machine() -> (usize, String, String) {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    (nproc, model, kernel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ns_counts_busy_time() {
        let pid = std::process::id();
        let a = cpu_ns(pid).unwrap();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let b = cpu_ns(pid).unwrap();
        assert!(
            b - a >= 20_000_000,
            "50 ms of spinning counted as {} ns",
            b - a
        );
    }

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).unwrap() > 0);
        cpu_ticks(pid).unwrap();
        assert!(us_per_tick() > 0.0);
    }
}
