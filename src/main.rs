//! The `sse-gateway` binary: parse the configuration, start the hub and serve HTTP until a
//! signal asks it to stop.

use std::io::IsTerminal;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sse_gateway::amqp::Amqp;
use sse_gateway::config::{Config, ConfigError, LogFormat};
use sse_gateway::http::{AppState, PublishSettings};
use sse_gateway::hub::Hub;
use sse_gateway::metrics::Metrics;
use sse_gateway::server::{self, ServerSettings};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let config = match Config::load() {
        Ok(config) => config,
        Err(ConfigError::Args(e)) => e.exit(),
        Err(e) => {
            eprintln!("sse-gateway: {e}");
            std::process::exit(2);
        }
    };
    init_logs(config.log_format);

    let open_files =
        rlimit::increase_nofile_limit(u64::MAX).context("raising the open-file limit")?;
    let hub_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.hub_threads)
        .thread_name("sse-hub")
        .enable_all()
        .build()
        .context("starting the hub runtime")?;
    // Event streams are written on a runtime of their own: the HTTP workers stay free to answer
    // publishes at once, and a multi-threaded runtime takes a wake from the hub without a system
    // call while it is busy (an HTTP worker's single-threaded runtime makes one per wake).
    let stream_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers.unwrap_or_else(cores))
        .thread_name("sse-stream")
        .enable_all()
        .build()
        .context("starting the stream runtime")?;
    let hub = Hub::new(
        config.hub_settings(open_files),
        hub_runtime.handle().clone(),
    );
    let amqp = config
        .amqp_settings()
        .map(|settings| Amqp::start(settings, hub.clone(), hub_runtime.handle()));
    let state = AppState {
        hub: hub.clone(),
        broker: amqp.as_ref().map(Amqp::publisher),
        amqp: amqp.as_ref().map(Amqp::status),
        metrics: Arc::new(Metrics::new(
            hub.clone(),
            amqp.as_ref().map(Amqp::status),
            config.metrics_top_channels,
        )),
        body: config.body_settings(),
        publish: PublishSettings {
            key: config.publish_key.clone(),
            max_body: config.max_body,
        },
        demo: !config.no_demo,
    };
    let settings = ServerSettings {
        workers: config.workers,
        shutdown_timeout: config.shutdown_timeout,
        request_timeout: config.request_timeout,
        write_timeout: config.write_timeout,
        send_buffer: config.send_buffer,
        cors: config.cors(),
        streams: stream_runtime.handle().clone(),
    };

    let listener =
        TcpListener::bind(config.bind).with_context(|| format!("binding {}", config.bind))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(
        ?config,
        open_files,
        max_connections = state.hub.settings().max_connections,
        "configuration"
    );
    if config.publish_key.is_none() {
        tracing::warn!("no --publish-key: only loopback clients may POST /publish");
    }
    let publish_listener = match config.publish_bind {
        Some(bind) => Some(TcpListener::bind(bind).with_context(|| format!("binding {bind}"))?),
        None => None,
    };
    if let Some(publish) = &publish_listener {
        let publish = publish
            .local_addr()
            .context("reading the publish address")?;
        tracing::info!("publish listener on http://{publish}");
    }
    tracing::info!("listening on http://{addr}");

    let shutdown_timeout = config.shutdown_timeout;
    let shutdown = async move {
        shutdown_signal().await;
        if let Some(amqp) = amqp {
            amqp.shutdown(shutdown_timeout).await;
        }
    };
    actix_web::rt::System::new()
        .block_on(server::run(
            listener,
            publish_listener,
            state,
            settings,
            shutdown,
        ))
        .context("serving HTTP")?;
    stream_runtime.shutdown_timeout(Duration::from_secs(5));
    hub_runtime.shutdown_timeout(Duration::from_secs(5));
    tracing::info!("stopped");
    Ok(())
}

/// Cores is how many cores this process may run on (its CPU affinity, not the machine's size).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Init_logs writes logs to stderr, as text or JSON lines, filtered by `RUST_LOG` (default: info).
fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// Shutdown_signal completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the gateway");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}
