//! CPU use of the server and of this tool over a measured window, from `/proc`.

use std::time::Duration;

use tokio::time::Instant;

use crate::procfs::{self, SchedTimes};
use crate::report::CpuUse;

/// CpuWindow measures both processes' CPU time between two moments.
pub struct CpuWindow {
    began: Instant,
    server: Option<(u32, Sample)>,
    client: Sample,
}

/// Sample is a process's CPU time used and time spent runnable but waiting, at one moment.
#[derive(Clone, Copy)]
struct Sample(SchedTimes);

impl Sample {
    fn take(pid: u32) -> anyhow::Result<Self> {
        procfs::sched_times(pid).map(Self)
    }

    fn since(self, before: Self) -> SchedTimes {
        SchedTimes {
            on_cpu: self.0.on_cpu.saturating_sub(before.0.on_cpu),
            waiting: self.0.waiting.saturating_sub(before.0.waiting),
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
            server: server.map(|s| pct(s.on_cpu)),
            client: Some(pct(client.on_cpu)),
            server_waiting: server.map(|s| pct(s.waiting)),
            client_waiting: Some(pct(client.waiting)),
            window_s: round2(wall),
        })
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
