//! Reading a process's CPU time and resident memory from `/proc`, for the server and for this tool.

use std::time::Duration;

use anyhow::Context;

/// SchedTimes are a process's scheduler figures so far, summed over its threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedTimes {
    /// Time spent running on a CPU.
    pub on_cpu: Duration,
    /// Time spent ready to run but waiting for a CPU: time taken by other processes on the same
    /// core (or by the process's own other threads), which a benchmark pinned with `taskset`
    /// should not see much of.
    pub waiting: Duration,
}

/// Sched_times sums the first two fields of `/proc/PID/task/TID/schedstat` over the process's
/// threads. They are in nanoseconds, where `/proc/PID/stat` counts 10 ms ticks, too coarse for a
/// window of a second; a thread that ended before the reading is left out.
pub fn sched_times(pid: u32) -> anyhow::Result<SchedTimes> {
    let dir = format!("/proc/{pid}/task");
    let (mut on_cpu, mut waiting) = (0u64, 0u64);
    for task in std::fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
        let path = task?.path().join("schedstat");
        // A thread may end between the listing and the read: it no longer counts.
        if let Some((run, wait)) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| parse_schedstat(&s))
        {
            on_cpu += run;
            waiting += wait;
        }
    }
    Ok(SchedTimes {
        on_cpu: Duration::from_nanos(on_cpu),
        waiting: Duration::from_nanos(waiting),
    })
}

fn parse_schedstat(schedstat: &str) -> Option<(u64, u64)> {
    let mut fields = schedstat.split_whitespace();
    let run = fields.next()?.parse().ok()?;
    let wait = fields.next()?.parse().ok()?;
    Some((run, wait))
}

/// Clock ticks per second of `/proc/stat` times (`USER_HZ`): 100 on every Linux target of this
/// tool, fixed by the kernel's user-space ABI.
const TICKS_PER_SEC: u64 = 100;

/// Pinned_cpu is the one CPU a process may run on (`taskset -c N`), if it is pinned to one.
pub fn pinned_cpu(pid: u32) -> anyhow::Result<Option<usize>> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    Ok(parse_pinned_cpu(&status))
}

/// Parse_pinned_cpu reads `Cpus_allowed_list` from a `/proc/PID/status` text: the CPU when it
/// is exactly one.
fn parse_pinned_cpu(status: &str) -> Option<usize> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .and_then(|list| list.trim().parse().ok())
}

/// Cpu_busy is how long one CPU has been busy (anything but idle and I/O wait), from `/proc/stat`.
pub fn cpu_busy(cpu: usize) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    parse_cpu_busy_ticks(&stat, cpu)
        .map(|ticks| Duration::from_millis(ticks * 1000 / TICKS_PER_SEC))
        .with_context(|| format!("no line for cpu{cpu} in /proc/stat"))
}

fn parse_cpu_busy_ticks(stat: &str, cpu: usize) -> Option<u64> {
    let label = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&label))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest times are already in user).
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum();
    Some(busy)
}

/// Rss_kib is a process's resident set size in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_rss_kib(&status).with_context(|| format!("no VmRSS line in {path}"))
}

fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_run_and_wait_nanoseconds() {
        assert_eq!(
            parse_schedstat("8056075509 3900575066 18923\n"),
            Some((8_056_075_509, 3_900_575_066))
        );
        assert_eq!(parse_schedstat("12"), None);
    }

    #[test]
    fn reads_a_cpus_busy_ticks_and_this_process_pinning() {
        let stat =
            "cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 1 2 3 100 7 4 5 6 0 0\ncpu1 10 0 0 0 0 0 0 0 0 0\n";
        assert_eq!(parse_cpu_busy_ticks(stat, 0), Some(21));
        assert_eq!(parse_cpu_busy_ticks(stat, 1), Some(10));
        assert_eq!(parse_cpu_busy_ticks(stat, 2), None);
        assert_eq!(
            parse_pinned_cpu("Name:\tx\nCpus_allowed_list:\t3\n"),
            Some(3)
        );
        assert_eq!(parse_pinned_cpu("Cpus_allowed_list:\t0-3\n"), None);
        assert!(pinned_cpu(std::process::id()).is_ok());
    }

    #[test]
    fn reads_vmrss_and_this_process_is_readable() {
        assert_eq!(
            parse_rss_kib("Name:\tx\nVmRSS:\t  12345 kB\nVmSwap:\t0 kB\n"),
            Some(12345)
        );
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        let times = sched_times(std::process::id()).unwrap();
        assert!(times.on_cpu > Duration::ZERO);
    }
}
