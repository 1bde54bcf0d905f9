//! `sse-load`: a load generator for sse-gateway and, for comparison, nginx with nchan.
//!
//! It opens N subscriber connections (from source addresses spread over 127.0.0.x), publishes M
//! events over HTTP or AMQP at a fixed rate or as a bounded burst, and prints one JSON result:
//! connections, events expected/received/missing/duplicated, delivery latency percentiles,
//! delivered events per second, both processes' CPU use and the server's memory per connection.
//! Every loop is bounded in count and time, and it only talks to loopback addresses.
//!
//! The modules, in the order a run uses them: [`cli`] (options), [`subscriber`] (an SSE
//! connection: [`chunked`] decoding, then the [`sse`] parser), [`tally`]
//! (what each subscriber saw, from the [`payload`] stamp in each event), [`publish`] and
//! [`amqp`] (the publishers), [`procfs`] and [`usage`] (CPU and memory), [`run`] and [`report`].
#![deny(unsafe_code)]
#![warn(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod amqp;
mod chunked;
mod cli;
mod payload;
mod procfs;
mod progress;
mod publish;
mod report;
mod run;
mod sse;
mod subscriber;
mod tally;
mod target;
mod usage;

use std::num::NonZeroUsize;

use anyhow::Context;
use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = cli::Args::parse();
    args.validate()?;
    rlimit::increase_nofile_limit(u64::MAX).context("raising the open-file limit")?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("sse-load")
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let max_run = args.max_run;
    let report = runtime
        .block_on(async { tokio::time::timeout(max_run, run::run(args)).await })
        .with_context(|| format!("the run took longer than --max-run {max_run:?}"))??;
    println!("{}", serde_json::to_string_pretty(&report)?);
    runtime.shutdown_background();
    Ok(())
}
