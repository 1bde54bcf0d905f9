//! Wiring: the HTTP server over the hub, and graceful shutdown.

use std::future::Future;
use std::net::TcpListener;
use std::time::Duration;

use actix_web::middleware::{from_fn, DefaultHeaders};
use actix_web::{web, App, HttpServer};

use crate::http::{self, AppState};

/// ServerSettings are the HTTP server's own settings.
#[derive(Clone, Copy, Debug)]
pub struct ServerSettings {
    /// Worker threads; `None` for one per physical core.
    pub workers: Option<usize>,
    /// How long shutdown waits for connections to close.
    pub shutdown_timeout: Duration,
}

/// Run serves `state` on `listener` until `shutdown` completes; then it ends every subscriber
/// stream (each gets a final `retry:`), stops taking connections and returns once they closed.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + 'static,
) -> std::io::Result<()> {
    let hub = state.hub.clone();
    let data = web::Data::new(state);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff")))
            .wrap(from_fn(http::log_requests))
            .configure(http::routes)
    })
    .disable_signals()
    // A subscriber that closes its side has left: end its stream now, not at the next write.
    .h1_allow_half_closed(false)
    .shutdown_timeout(settings.shutdown_timeout.as_secs().max(1));
    if let Some(workers) = settings.workers {
        server = server.workers(workers.max(1));
    }
    let server = server.listen(listener)?.run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: closing subscriber streams");
        hub.close();
        handle.stop(true).await;
    });
    server.await
}
