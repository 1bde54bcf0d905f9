//! Wiring: the HTTP server over the hub, and graceful shutdown.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::time::Duration;

use actix_http::HttpService;
use actix_server::Server;
use actix_service::{fn_factory, fn_service, map_config, Service, ServiceFactory};
use actix_web::dev::AppConfig;
use actix_web::middleware::{from_fn, Condition, DefaultHeaders};
use actix_web::{web, App};
use tokio::net::TcpStream;
use tokio_util::task::TaskTracker;

use crate::http::event_stream::{self, Opening};
pub use crate::http::Cors;
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
    /// The runtime that writes event streams served on the bare connection, so that the HTTP
    /// workers stay free to answer publishes at once.
    pub streams: tokio::runtime::Handle,
}

/// Run serves `state` on `listener` (and on `publish_listener`, when given, with a worker of its
/// own) until `shutdown` completes; then it ends every subscriber stream (each gets a final
/// `retry:`), stops taking connections and returns once they closed.
pub async fn run(
    listener: TcpListener,
    publish_listener: Option<TcpListener>,
    state: AppState,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + 'static,
) -> std::io::Result<()> {
    let hub = state.hub.clone();
    let data = web::Data::new(state);
    let streams = TaskTracker::new();
    let main = serve(&data, &settings, &streams, listener, settings.workers)?;
    // Publishers get a worker of their own: on the main workers, a publish's answer would wait
    // behind the writes to every subscriber that the publish itself woke.
    let publish = match publish_listener {
        Some(listener) => Some(serve(&data, &settings, &streams, listener, Some(1))?),
        None => None,
    };
    let handles: Vec<_> = std::iter::once(main.handle())
        .chain(publish.as_ref().map(|s| s.handle()))
        .collect();
    actix_web::rt::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: closing subscriber streams");
        hub.close();
        for handle in handles {
            handle.stop(true).await;
        }
    });
    let served = match publish {
        Some(publish) => {
            let (main, publish) = futures_util::future::join(main, publish).await;
            main.and(publish)
        }
        None => main.await,
    };
    // The streams were closed with the hub; let them write their final `retry:`.
    streams.close();
    if tokio::time::timeout(settings.shutdown_timeout, streams.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            left = streams.len(),
            "event streams still open at the shutdown timeout"
        );
    }
    served
}

/// Serve starts one server on `listener`: each connection is first offered to the bare
/// event-stream path (a subscriber), and otherwise served by actix-web with every route.
fn serve(
    data: &web::Data<AppState>,
    settings: &ServerSettings,
    streams: &TaskTracker,
    listener: TcpListener,
    workers: Option<usize>,
) -> std::io::Result<Server> {
    let addr = listener.local_addr()?;
    let mut server = Server::build()
        .disable_signals()
        .shutdown_timeout(settings.shutdown_timeout.as_secs().max(1));
    if let Some(workers) = workers {
        server = server.workers(workers.max(1));
    }
    let (data, settings, streams) = (data.clone(), settings.clone(), streams.clone());
    let server = server.listen("sse-gateway", listener, move || {
        let (data, settings) = (data.clone(), settings.clone());
        let cors = settings.cors.clone();
        let app = App::new()
            .app_data(data.clone())
            .wrap(Condition::new(cors != Cors::Off, cors.middleware()))
            .wrap(DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff")))
            .wrap(from_fn(http::log_requests))
            .configure(http::routes);
        let h1 = HttpService::build()
            .client_request_timeout(settings.request_timeout)
            .client_disconnect_timeout(Duration::from_secs(1))
            // A subscriber that closes its side has left: end its stream now, not at the next
            // write.
            .h1_allow_half_closed(false)
            .local_addr(addr)
            // The host and address are only used to build URLs, which the gateway never does.
            .h1(map_config(app, |_| AppConfig::default()));
        let (data, streams) = (data.clone(), streams.clone());
        fn_factory(move || {
            let h1 = h1.new_service(());
            let (data, settings) = (data.clone(), Rc::new(settings.clone()));
            let streams = streams.clone();
            async move {
                let h1 = Rc::new(h1.await?);
                Ok::<_, ()>(fn_service(move |io: TcpStream| {
                    let shared = (data.clone(), Rc::clone(&settings), streams.clone());
                    connection(io, Rc::clone(&h1), shared)
                }))
            }
        })
    })?;
    Ok(server.run())
}

/// Connection serves one accepted connection: as an event stream, handed to the streams'
/// runtime, when its first request is a subscription the bare path takes; else through
/// actix-web on this worker.
async fn connection<H>(
    io: TcpStream,
    h1: Rc<H>,
    (data, settings, streams): (web::Data<AppState>, Rc<ServerSettings>, TaskTracker),
) -> Result<(), ()>
where
    H: Service<(TcpStream, Option<SocketAddr>), Response = ()>,
{
    tune_socket(&io, settings.write_timeout, settings.send_buffer);
    // Boxed, like the dispatcher below: a task is as large as the largest state of its future,
    // and a subscriber's task lives long after its opening.
    let opening = Box::pin(event_stream::open(
        &io,
        &data,
        &settings.cors,
        settings.request_timeout,
    ))
    .await;
    match opening {
        Opening::Stream(mut stream) => match io.into_std() {
            Ok(io) => {
                streams.spawn_on(
                    async move {
                        match TcpStream::from_std(io) {
                            Ok(io) => stream.run(io).await,
                            Err(error) => tracing::warn!(%error, "cannot move an event stream"),
                        }
                    },
                    &settings.streams,
                );
            }
            Err(error) => tracing::warn!(%error, "cannot move an event stream"),
        },
        Opening::Http => {
            let peer = io.peer_addr().ok();
            let _ = Box::pin(h1.call((io, peer))).await;
        }
        Opening::Gone => {}
    }
    Ok(())
}

/// Tune_socket sets a new connection's write timeout and, when configured, its send buffer.
///
/// The write timeout (`TCP_USER_TIMEOUT`) makes the kernel drop a connection whose peer has
/// acknowledged nothing for that long while data is pending, including a peer that keeps its
/// receive window at zero (a client that never reads; Linux 5.11 and later). The HTTP server
/// alone would keep such a connection forever, since it stops polling the response while the
/// socket is full.
fn tune_socket(stream: &TcpStream, write_timeout: Duration, send_buffer: Option<usize>) {
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
