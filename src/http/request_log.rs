//! One log line per HTTP request (not per event), tagged with a request id that is echoed in
//! the `X-Request-Id` response header (a valid incoming one is kept, so a proxy's id carries on).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

/// The header that carries the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// Log_requests wraps every request in a span with its id and logs its outcome once, when the
/// response starts (a subscriber's stream then goes on without further request lines).
pub(crate) async fn log_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
    let method = req.method().clone();
    let path = req.path().to_string();
    let quiet = matches!(
        path.as_str(),
        "/metrics" | "/healthz" | "/readyz" | "/stats"
    );
    let span = tracing::info_span!("request", request_id = %id);
    let started = Instant::now();
    let mut response = next.call(req).instrument(span.clone()).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID), value);
    }
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if quiet {
            tracing::debug!(%method, path, status, elapsed_ms, "request");
        } else {
            tracing::info!(%method, path, status, elapsed_ms, "request");
        }
    });
    Ok(response)
}
