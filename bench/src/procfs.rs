//! Reading a process's CPU time and resident memory from `/proc`, for the server and for this tool.

use std::time::Duration;

use anyhow::Context;

/// Clock ticks per second of `/proc/PID/stat` times (`USER_HZ`): 100 on every Linux target of
/// this tool, fixed by the kernel's user-space ABI.
const TICKS_PER_SEC: u64 = 100;

/// Cpu_time is the user plus system CPU time a process has used so far.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_cpu_ticks(&stat)
        .map(|ticks| Duration::from_millis(ticks * 1000 / TICKS_PER_SEC))
        .with_context(|| format!("parsing {path}"))
}

/// Runnable_wait is how long the process's threads have been ready to run but waiting for a CPU
/// (the second field of `/proc/PID/task/TID/schedstat`, summed): time taken by other processes on
/// the same core, which a benchmark pinned with `taskset` should not see.
pub fn runnable_wait(pid: u32) -> anyhow::Result<Duration> {
    let dir = format!("/proc/{pid}/task");
    let mut total = 0u64;
    for task in std::fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
        let path = task?.path().join("schedstat");
        // A thread may end between the listing and the read: it no longer waits.
        if let Ok(schedstat) = std::fs::read_to_string(&path) {
            total += parse_wait_ns(&schedstat).unwrap_or(0);
        }
    }
    Ok(Duration::from_nanos(total))
}

fn parse_wait_ns(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().nth(1)?.parse().ok()
}

/// Rss_kib is a process's resident set size in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_rss_kib(&status).with_context(|| format!("no VmRSS line in {path}"))
}

/// Parse_cpu_ticks reads utime + stime (fields 14 and 15) from a `stat` line; the command name
/// (field 2) is skipped by its closing parenthesis, as it may hold spaces.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_past_a_command_name_with_spaces() {
        let stat = "4242 (sse gate) S 1 4242 4242 0 -1 4194560 931 0 0 0 250 75 0 0 20 0 5 0 ...";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
    }

    #[test]
    fn reads_vmrss_and_this_process_is_readable() {
        assert_eq!(
            parse_rss_kib("Name:\tx\nVmRSS:\t  12345 kB\nVmSwap:\t0 kB\n"),
            Some(12345)
        );
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        assert!(cpu_time(std::process::id()).is_ok());
        assert!(runnable_wait(std::process::id()).is_ok());
        assert_eq!(
            parse_wait_ns("8056075509 3900575066 18923\n"),
            Some(3900575066)
        );
    }
}
