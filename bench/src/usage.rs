//! CPU use of the server and of this tool over a measured window, from `/proc`.

use std::time::Duration;

use tokio::time::Instant;

use crate::procfs::{self, SchedTimes};
use crate::report::CpuUse;

/// CpuWindow measures both processes' CPU time between two moments, and, for a process pinned
/// to one CPU, how busy that CPU was with anything else.
pub struct CpuWindow {
    began: Instant,
    server: Option<(u32, Sample)>,
    client: Sample,
}

/// Sample is a process's scheduler times at one moment and, when it is pinned to one CPU, how
/// long that CPU had been busy.
#[derive(Clone, Copy)]
struct Sample {
    times: SchedTimes,
    core: Option<(usize, Duration)>,
}

/// Usage is what a process did between two samples.
#[derive(Clone, Copy)]
struct Usage {
    times: SchedTimes,
    /// Busy time of its CPU that was not its own (other processes, interrupts).
    others: Option<Duration>,
}

impl Sample {
    fn take(pid: u32) -> anyhow::Result<Self> {
        let core = match procfs::pinned_cpu(pid)? {
            Some(cpu) => Some((cpu, procfs::cpu_busy(cpu)?)),
            None => None,
        };
        Ok(Self {
            times: procfs::sched_times(pid)?,
            core,
        })
    }

    fn since(self, before: Self) -> Usage {
        let on_cpu = self.times.on_cpu.saturating_sub(before.times.on_cpu);
        let others = match (self.core, before.core) {
            (Some((cpu, busy)), Some((was, busy_before))) if cpu == was => {
                Some(busy.saturating_sub(busy_before).saturating_sub(on_cpu))
            }
            _ => None,
        };
        Usage {
            times: SchedTimes {
                on_cpu,
                waiting: self.times.waiting.saturating_sub(before.times.waiting),
            },
            others,
        }
    }
}

impl CpuWindow {
    /// Start samples both processes now.
    pub fn start(server_pid: Option<u32>) -> anyhow::Result<Self> {
        let server = match server_pid {
            Some(pid) => Some((pid, Sample::take(pid)?)),
            None => None,
        };
        Ok(Self {
            began: Instant::now(),
            server,
            client: Sample::take(std::process::id())?,
        })
    }

    /// Finish samples both processes again and reports their use since [`CpuWindow::start`];
    /// a server that is gone by then has no figures.
    pub fn finish(self) -> anyhow::Result<CpuUse> {
        let wall = self.began.elapsed().as_secs_f64();
        let pct = |d: Duration| round2(d.as_secs_f64() / wall.max(1e-9) * 100.0);
        let server = self
            .server
            .and_then(|(pid, before)| Some(Sample::take(pid).ok()?.since(before)));
        let client = Sample::take(std::process::id())?.since(self.client);
        Ok(CpuUse {
            server: server.map(|s| pct(s.times.on_cpu)),
            client: Some(pct(client.times.on_cpu)),
            server_waiting: server.map(|s| pct(s.times.waiting)),
            client_waiting: Some(pct(client.times.waiting)),
            server_core_others: server.and_then(|s| s.others.map(pct)),
            client_core_others: client.others.map(pct),
            window_s: round2(wall),
        })
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
