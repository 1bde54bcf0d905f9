//! Wiring: the HTTP server over the hub, and graceful shutdown.

use std::future::Future;
use std::net::TcpListener;
use std::time::Duration;

use actix_web::middleware::{from_fn, Condition, DefaultHeaders};
use actix_web::{web, App, HttpServer};

use crate::http::{self, AppState};

/// ServerSettings are the HTTP server's own settings.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Worker threads; `None` for one per physical core.
    pub workers: Option<usize>,
    /// How long shutdown waits for connections to close.
    pub shutdown_timeout: Duration,
    /// How long a client may take to send its request head.
    pub request_timeout: Duration,
    /// How long a connection may leave written data unacknowledged (a client that stopped
    /// reading) before the kernel drops it (`TCP_USER_TIMEOUT`).
    pub write_timeout: Duration,
    /// The kernel send buffer of each connection, in bytes; `None` leaves it to autotuning.
    pub send_buffer: Option<usize>,
    /// Which other origins browsers may call the API from.
    pub cors: Cors,
}

/// Cors says which web origins may use the API from a browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cors {
    /// No CORS headers: same-origin pages only.
    Off,
    /// Any origin, without credentials (`--cors-origin '*'`).
    AnyOrigin,
    /// These origins, with credentials (`EventSource` with `withCredentials`).
    Origins(Vec<String>),
}

impl Cors {
    fn middleware(&self) -> actix_cors::Cors {
        let cors = actix_cors::Cors::default()
            .allowed_methods(["GET", "POST"])
            .allowed_headers([
                "authorization",
                "content-type",
                "last-event-id",
                "x-request-id",
            ])
            .expose_headers(["x-request-id"])
            .block_on_origin_mismatch(false)
            .max_age(3600);
        match self {
            Cors::Off => cors,
            Cors::AnyOrigin => cors.allow_any_origin().send_wildcard(),
            Cors::Origins(origins) => origins
                .iter()
                .fold(cors, |cors, origin| cors.allowed_origin(origin))
                .supports_credentials(),
        }
    }
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
    let cors = settings.cors.clone();
    let (write_timeout, send_buffer) = (settings.write_timeout, settings.send_buffer);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(Condition::new(cors != Cors::Off, cors.middleware()))
            .wrap(DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff")))
            .wrap(from_fn(http::log_requests))
            .configure(http::routes)
    })
    .on_connect(move |connection, _| tune_socket(connection, write_timeout, send_buffer))
    .client_request_timeout(settings.request_timeout)
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

/// Tune_socket sets a new connection's write timeout and, when configured, its send buffer.
///
/// The write timeout (`TCP_USER_TIMEOUT`) makes the kernel drop a connection whose peer has
/// acknowledged nothing for that long while data is pending, including a peer that keeps its
/// receive window at zero (a client that never reads; Linux 5.11 and later). The HTTP server
/// alone would keep such a connection forever, since it stops polling the response while the
/// socket is full.
fn tune_socket(
    connection: &dyn std::any::Any,
    write_timeout: Duration,
    send_buffer: Option<usize>,
) {
    let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    let socket = socket2::SockRef::from(stream);
    if let Err(error) = socket.set_tcp_user_timeout(Some(write_timeout)) {
        tracing::debug!(%error, "cannot set TCP_USER_TIMEOUT");
    }
    if let Some(size) = send_buffer {
        if let Err(error) = socket.set_send_buffer_size(size) {
            tracing::debug!(%error, "cannot set SO_SNDBUF");
        }
    }
}
