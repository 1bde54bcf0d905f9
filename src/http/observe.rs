//! `/stats`, `/healthz` and `/readyz`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::{json_error, AppState};

/// Stats reports open connections and each live channel's figures.
pub(crate) async fn stats(state: web::Data<AppState>) -> HttpResponse {
    let mut stats = serde_json::to_value(state.hub.stats()).unwrap_or_default();
    if let (Some(amqp), Some(fields)) = (&state.amqp, stats.as_object_mut()) {
        fields.insert(
            "amqp".into(),
            serde_json::to_value(amqp.snapshot()).unwrap_or_default(),
        );
    }
    HttpResponse::Ok().json(stats)
}

/// Healthz answers while the process serves HTTP at all.
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Readyz answers 200 while the gateway can take subscribers and publishes, 503 otherwise.
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.hub.is_closed() {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    if state.amqp.as_ref().is_some_and(|amqp| !amqp.is_consuming()) {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "not connected to RabbitMQ");
    }
    HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))
}

/// Metrics answers with every metric in the OpenMetrics text format, for Prometheus.
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match state.metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(text),
        Err(_) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics could not be encoded",
        ),
    }
}
