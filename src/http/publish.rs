//! `POST /publish`: publish an event over HTTP, as JSON or as cyclone-sse's form.

use actix_web::http::header::{self, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use futures_core::Stream;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{hub_status, json_error, urlencoded, AppState};
use crate::amqp::AmqpPublishError;
use crate::channel::{ChannelName, ChannelNameError};
use crate::config::Secret;
use crate::event::{Event, EventFieldError};
use crate::hub::HubError;

/// PublishSettings say who may publish and how large a body may be.
#[derive(Clone, Debug)]
pub struct PublishSettings {
    /// The key publishers must present; without one, only loopback clients may publish.
    pub key: Option<Secret>,
    /// The largest body accepted, in bytes.
    pub max_body: usize,
}

/// PublishError is why a publish was refused.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The body is larger than the limit.
    #[error("body is larger than {0} bytes")]
    TooLarge(usize),
    /// The body could not be read.
    #[error("body could not be read: {0}")]
    Unreadable(String),
    /// The content type is neither JSON nor a form.
    #[error("Content-Type must be application/json or application/x-www-form-urlencoded")]
    UnsupportedMediaType,
    /// The JSON body does not decode.
    #[error("invalid JSON body: {0}")]
    BadJson(String),
    /// The form body does not decode or lacks a field.
    #[error("invalid form body: {0}")]
    BadForm(String),
    /// A key is configured and the request did not present it.
    #[error("a valid publish key is required (Authorization: Bearer KEY)")]
    Unauthorized,
    /// No key is configured and the client is not on this host.
    #[error(
        "publishing without a key is allowed from loopback clients only; configure --publish-key"
    )]
    NotLoopback,
    /// The channel name is invalid.
    #[error(transparent)]
    BadChannel(#[from] ChannelNameError),
    /// The `id` or `event` value is unusable.
    #[error(transparent)]
    BadField(#[from] EventFieldError),
    /// The hub refused.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// RabbitMQ did not take the event.
    #[error(transparent)]
    Broker(#[from] AmqpPublishError),
}

impl ResponseError for PublishError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotLoopback => StatusCode::FORBIDDEN,
            Self::Unreadable(_)
            | Self::BadJson(_)
            | Self::BadForm(_)
            | Self::BadChannel(_)
            | Self::BadField(_) => StatusCode::BAD_REQUEST,
            Self::Hub(e) => hub_status(e),
            Self::Broker(AmqpPublishError::Unroutable(_)) => StatusCode::BAD_GATEWAY,
            Self::Broker(AmqpPublishError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Broker(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = json_error(self.status_code(), &self.to_string());
        if matches!(self, Self::Unauthorized) {
            let value = header::HeaderValue::from_static("Bearer");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// PublishRequest is a decoded publish body, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRequest {
    /// The channel name as sent.
    pub channel: String,
    /// The data as text: a JSON string as is, any other JSON value as its compact text.
    pub data: String,
    /// The event type, if any.
    pub event: Option<String>,
    /// The event id, if any.
    pub id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonBody {
    channel: String,
    data: serde_json::Value,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

impl PublishRequest {
    /// From_json decodes `{"channel", "data", "event"?, "id"?}`; other fields are refused.
    pub fn from_json(body: &[u8]) -> Result<Self, PublishError> {
        let body: JsonBody =
            serde_json::from_slice(body).map_err(|e| PublishError::BadJson(e.to_string()))?;
        let data = match body.data {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        };
        Ok(Self {
            channel: body.channel,
            data,
            event: body.event,
            id: body.id,
        })
    }

    /// From_form decodes cyclone-sse's form: `channel`, `message`, and optionally `event`, `id`
    /// and `key`; it returns the request and the key.
    pub fn from_form(body: &[u8]) -> Result<(Self, Option<String>), PublishError> {
        let (mut channel, mut message, mut event, mut id, mut key) = (None, None, None, None, None);
        for pair in urlencoded(body) {
            let (name, value) = pair.map_err(|e| PublishError::BadForm(e.to_string()))?;
            let slot = match &*name {
                "channel" => &mut channel,
                "message" => &mut message,
                "event" => &mut event,
                "id" => &mut id,
                "key" => &mut key,
                _ => continue,
            };
            slot.get_or_insert(value.into_owned());
        }
        let missing = |field| PublishError::BadForm(format!("the `{field}` field is missing"));
        let request = Self {
            channel: channel.ok_or_else(|| missing("channel"))?,
            data: message.ok_or_else(|| missing("message"))?,
            event,
            id,
        };
        Ok((request, key))
    }

    /// Into_event validates the request into an event.
    pub fn into_event(self) -> Result<Event, PublishError> {
        let channel = ChannelName::parse(&self.channel)?;
        Ok(Event::new(
            channel,
            self.id.as_deref(),
            self.event.as_deref(),
            self.data,
        )?)
    }
}

/// Publish answers `POST /publish` with 202 and the event's id once the event is published.
pub(crate) async fn publish(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PublishError> {
    let started = std::time::Instant::now();
    let settings = &state.publish;
    let body = read_body(&req, payload, settings.max_body).await?;
    let media_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let request = if media_type == "application/json" || media_type.ends_with("+json") {
        authorize(&req, None, settings)?;
        PublishRequest::from_json(&body)?
    } else if media_type == "application/x-www-form-urlencoded" {
        let (request, key) = PublishRequest::from_form(&body)?;
        authorize(&req, key.as_deref(), settings)?;
        request
    } else {
        return Err(PublishError::UnsupportedMediaType);
    };
    let event = request.into_event()?;
    // Hub::publish checks this too, but with RabbitMQ on the event reaches the hub only through
    // the broker: a channel this gateway does not serve must be refused here, before sending.
    state.hub.check_channel(&event.channel)?;
    let answer = serde_json::json!({ "id": event.id.as_str(), "channel": event.channel });
    match &state.broker {
        Some(broker) => broker.publish(&event).await?,
        None => {
            state.hub.publish(event).await?;
        }
    }
    state
        .metrics
        .observe_publish(started.elapsed().as_secs_f64());
    Ok(HttpResponse::Accepted().json(answer))
}

/// Authorize checks the publish key (bearer token or form field), or, with no key configured,
/// that the client is on this host. Keys are compared in constant time.
fn authorize(
    req: &HttpRequest,
    form_key: Option<&str>,
    settings: &PublishSettings,
) -> Result<(), PublishError> {
    let Some(key) = &settings.key else {
        let loopback = req.peer_addr().is_some_and(|addr| addr.ip().is_loopback());
        return if loopback {
            Ok(())
        } else {
            Err(PublishError::NotLoopback)
        };
    };
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let matches = |given: &str| bool::from(given.trim().as_bytes().ct_eq(key.expose().as_bytes()));
    if bearer.is_some_and(matches) || form_key.is_some_and(matches) {
        Ok(())
    } else {
        Err(PublishError::Unauthorized)
    }
}

/// Read_body reads the whole body, refusing it as soon as it is known to exceed `max`.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    max: usize,
) -> Result<Vec<u8>, PublishError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(PublishError::TooLarge(max));
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut payload).poll_next(cx)).await
    {
        let chunk = chunk.map_err(|e| PublishError::Unreadable(e.to_string()))?;
        if body.len() + chunk.len() > max {
            return Err(PublishError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{routes, AppState};
    use crate::hub::{Hub, HubSettings};
    use crate::subscriber::BodySettings;
    use actix_web::test::{call_service, init_service, read_body_json, TestRequest};
    use actix_web::App;
    use std::time::Duration;

    #[actix_web::test]
    async fn without_a_key_only_clients_on_this_host_may_publish() {
        let hub = Hub::new(HubSettings::default(), tokio::runtime::Handle::current());
        let state = AppState {
            metrics: std::sync::Arc::new(crate::metrics::Metrics::new(hub.clone(), None, 0)),
            hub,
            body: BodySettings {
                retry: Duration::from_secs(1),
                heartbeat: Duration::from_secs(15),
                shutdown_retry_spread: Duration::ZERO,
            },
            publish: PublishSettings {
                key: None,
                max_body: 1024,
            },
            broker: None,
            amqp: None,
            demo: false,
        };
        let app = init_service(App::new().app_data(web::Data::new(state)).configure(routes)).await;
        let publish_from = |peer: &str| {
            TestRequest::post()
                .uri("/publish")
                .peer_addr(peer.parse().unwrap())
                .set_json(serde_json::json!({"channel": "c", "data": 1}))
                .to_request()
        };
        let refused = call_service(&app, publish_from("203.0.113.9:40000")).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let body: serde_json::Value = read_body_json(refused).await;
        assert!(body["error"].as_str().unwrap().contains("--publish-key"));
        let accepted = call_service(&app, publish_from("[::1]:40000")).await;
        assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    }

    #[test]
    fn json_data_is_sent_as_is_when_a_string_and_as_compact_json_otherwise() {
        let text = PublishRequest::from_json(br#"{"channel":"c","data":"a\nb"}"#).unwrap();
        assert_eq!(text.data, "a\nb");
        let obj = PublishRequest::from_json(
            br#"{"channel":"c","data":{ "k" : [1, 2] },"event":"e","id":"7"}"#,
        )
        .unwrap();
        assert_eq!(
            (obj.data.as_str(), obj.event.as_deref(), obj.id.as_deref()),
            (r#"{"k":[1,2]}"#, Some("e"), Some("7"))
        );
        for (raw, want) in [("null", "null"), ("true", "true"), ("1.5", "1.5")] {
            let body = format!(r#"{{"channel":"c","data":{raw}}}"#);
            assert_eq!(
                PublishRequest::from_json(body.as_bytes()).unwrap().data,
                want
            );
        }
    }

    #[test]
    fn json_without_data_or_with_unknown_fields_is_refused() {
        assert!(PublishRequest::from_json(br#"{"channel":"c"}"#).is_err());
        assert!(PublishRequest::from_json(br#"{"channel":"c","data":1,"evnt":"x"}"#).is_err());
        assert!(PublishRequest::from_json(br#"{"channel":"c","data":"#).is_err());
    }

    #[test]
    fn the_cyclone_form_carries_channel_message_and_key() {
        let (request, key) =
            PublishRequest::from_form(b"channel=news&message=hi+there&key=s3cret").unwrap();
        assert_eq!(
            (request.channel.as_str(), request.data.as_str()),
            ("news", "hi there")
        );
        assert_eq!(key.as_deref(), Some("s3cret"));
        assert!(PublishRequest::from_form(b"channel=news").is_err());
    }
}
