//! The HTTP adapter: thin actix-web handlers over the [`Hub`], and the event streams served on
//! the bare connection ([`event_stream`]).
//!
//! Each handler decodes and checks its input at the edge, calls the hub, and maps the hub's
//! answer to a status code; every error is a JSON body `{"error": "..."}` that names the problem.

mod cors;
mod demo;
mod error;
pub(crate) mod event_stream;
pub mod events;
mod observe;
pub mod publish;
mod request_log;

use std::borrow::Cow;
use std::sync::Arc;

use actix_web::{web, HttpResponse};

use crate::amqp::{AmqpPublisher, AmqpStatus};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::subscriber::BodySettings;
pub use cors::Cors;
pub(crate) use error::hub_status;
pub use error::json_error;
pub use publish::PublishSettings;
pub(crate) use request_log::log_requests;
pub use request_log::REQUEST_ID;

/// AppState is what every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The channels.
    pub hub: Hub,
    /// Stream settings of subscriber responses.
    pub body: BodySettings,
    /// Who may publish, and how much.
    pub publish: PublishSettings,
    /// With RabbitMQ on: HTTP publishes go to the exchange, and every instance delivers them
    /// from its own queue.
    pub broker: Option<AmqpPublisher>,
    /// With RabbitMQ on: the consumer's state, for readiness and stats.
    pub amqp: Option<Arc<AmqpStatus>>,
    /// The Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Whether `GET /` serves the demo page (`--no-demo` turns it off).
    pub demo: bool,
}

/// Routes registers the gateway's endpoints.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/")
            .route(web::get().to(demo::page))
            .route(web::head().to(demo::page)),
    )
    .service(resource("/events").route(web::get().to(events::subscribe)))
    .service(resource("/publish").route(web::post().to(publish::publish)))
    .service(resource("/stats").route(web::get().to(observe::stats)))
    .service(resource("/healthz").route(web::get().to(observe::healthz)))
    .service(resource("/readyz").route(web::get().to(observe::readyz)))
    .service(resource("/metrics").route(web::get().to(observe::metrics)))
    .default_service(web::to(|| async { not_found() }));
}

/// Not_found is the answer to a path the gateway does not serve.
fn not_found() -> HttpResponse {
    json_error(actix_web::http::StatusCode::NOT_FOUND, "no such endpoint")
}

fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed() -> HttpResponse {
    json_error(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    )
}

/// Urlencoded splits `application/x-www-form-urlencoded` text (a query string or a form body)
/// into decoded pairs; a value that is not UTF-8 once decoded is an error, not replaced.
pub fn urlencoded(
    input: &[u8],
) -> impl Iterator<Item = Result<(Cow<'_, str>, Cow<'_, str>), NotUtf8>> {
    input
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &pair[..0]),
            };
            Ok((decode_component(key)?, decode_component(value)?))
        })
}

/// NotUtf8 is a urlencoded component that does not decode to UTF-8 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a parameter is not valid UTF-8 once percent-decoded")]
pub struct NotUtf8;

fn decode_component(raw: &[u8]) -> Result<Cow<'_, str>, NotUtf8> {
    let plus_free: Cow<'_, [u8]> = if raw.contains(&b'+') {
        Cow::Owned(
            raw.iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(raw)
    };
    let decoded: Cow<'_, [u8]> = percent_encoding::percent_decode(&plus_free).into();
    match decoded {
        Cow::Borrowed(_) => match plus_free {
            Cow::Borrowed(b) => std::str::from_utf8(b)
                .map(Cow::Borrowed)
                .map_err(|_| NotUtf8),
            Cow::Owned(b) => String::from_utf8(b).map(Cow::Owned).map_err(|_| NotUtf8),
        },
        Cow::Owned(b) => String::from_utf8(b).map(Cow::Owned).map_err(|_| NotUtf8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &str) -> Result<Vec<(String, String)>, NotUtf8> {
        urlencoded(s.as_bytes())
            .map(|p| p.map(|(k, v)| (k.into_owned(), v.into_owned())))
            .collect()
    }

    #[test]
    fn decodes_pairs_plus_and_percent_escapes() {
        let got = pairs("channel=a%2Cb&x&message=hello+world%21&&k=").unwrap();
        let want = [
            ("channel", "a,b"),
            ("x", ""),
            ("message", "hello world!"),
            ("k", ""),
        ];
        assert_eq!(got, want.map(|(k, v)| (k.to_string(), v.to_string())));
    }

    #[test]
    fn refuses_escapes_that_are_not_utf8_and_keeps_stray_percents() {
        assert_eq!(pairs("channel=%FF"), Err(NotUtf8));
        assert_eq!(pairs("channel=%zz").unwrap()[0].1, "%zz");
    }
}
