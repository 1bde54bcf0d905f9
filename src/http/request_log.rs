//! One log line per HTTP request (not per event), tagged with a request id that is echoed in
//! the `X-Request-Id` response header (a valid incoming one is kept, so a proxy's id carries on).
//!
//! Both ways a request is served use it: the actix-web middleware below, and the event-stream
//! connections answered outside actix-web (see [`super::event_stream`]).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

/// The header that carries the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// Request_id is the id a request is logged and answered with: the client's own when it is a
/// short printable token, else a new time-ordered one.
pub(crate) fn request_id(incoming: Option<&[u8]>) -> String {
    incoming
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.iter().all(u8::is_ascii_graphic))
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string())
}

/// Request_span is the span every log line about the request is written in.
pub(crate) fn request_span(id: &str) -> tracing::Span {
    tracing::info_span!("request", request_id = %id)
}

/// Log_outcome writes the request's one line, when its response starts; probes and scrapes are
/// logged at debug level only.
pub(crate) fn log_outcome(method: &str, path: &str, status: u16, started: Instant) {
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if matches!(path, "/metrics" | "/healthz" | "/readyz" | "/stats") {
        tracing::debug!(%method, path, status, elapsed_ms, "request");
    } else {
        tracing::info!(%method, path, status, elapsed_ms, "request");
    }
}

/// Log_requests wraps every request in a span with its id and logs its outcome once, when the
/// response starts (a subscriber's stream then goes on without further request lines).
pub(crate) async fn log_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request_id(req.headers().get(REQUEST_ID).map(HeaderValue::as_bytes));
    let method = req.method().clone();
    let path = req.path().to_string();
    let span = request_span(&id);
    let started = Instant::now();
    let mut response = next.call(req).instrument(span.clone()).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID), value);
    }
    let status = response.status().as_u16();
    span.in_scope(|| log_outcome(method.as_str(), &path, status, started));
    Ok(response)
}
