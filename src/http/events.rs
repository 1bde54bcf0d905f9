//! `GET /events`: subscribe to one or more channels over Server-Sent Events.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use super::{hub_status, json_error, urlencoded, AppState, NotUtf8};
use crate::channel::{ChannelName, ChannelNameError};
use crate::event::MAX_EVENT_ID_LEN;
use crate::hub::{HubError, Resume};
use crate::subscriber::SseBody;

/// The `Last-Event-ID` value that asks for every retained event, without a `gap` event.
pub const EARLIEST: &str = "earliest";

/// SubscribeError is why a subscription was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// A channel name is invalid.
    #[error(transparent)]
    BadChannel(#[from] ChannelNameError),
    /// The query string does not decode.
    #[error(transparent)]
    BadQuery(#[from] NotUtf8),
    /// `Last-Event-ID` or `lastEventId` is unusable.
    #[error("Last-Event-ID {0}")]
    BadLastEventId(&'static str),
    /// The hub refused.
    #[error(transparent)]
    Hub(#[from] HubError),
}

impl ResponseError for SubscribeError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadChannel(_) | Self::BadQuery(_) | Self::BadLastEventId(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::Hub(e) => hub_status(e),
        }
    }

    fn error_response(&self) -> HttpResponse {
        json_error(self.status_code(), &self.to_string())
    }
}

/// SubscribeRequest is a decoded `GET /events`: its channels (deduplicated, in order) and where
/// it resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeRequest {
    /// The channels asked for.
    pub channels: Vec<ChannelName>,
    /// Where the stream starts.
    pub resume: Resume,
}

impl SubscribeRequest {
    /// Parse decodes the query string (`channel` repeated or comma-separated, `lastEventId`) and
    /// the `Last-Event-ID` header, which wins over the query parameter as browsers send it on
    /// reconnect. Other parameters are ignored (cache busters).
    pub fn parse(
        query: &str,
        last_event_id: Option<&[u8]>,
        max_channels: usize,
    ) -> Result<Self, SubscribeError> {
        let mut channels: Vec<ChannelName> = Vec::new();
        let mut query_id = None;
        for pair in urlencoded(query.as_bytes()) {
            let (key, value) = pair?;
            match &*key {
                "channel" => {
                    for name in value.split(',') {
                        let name = ChannelName::parse(name)?;
                        if !channels.contains(&name) {
                            if channels.len() == max_channels {
                                return Err(
                                    HubError::TooManyChannelsPerConnection(max_channels).into()
                                );
                            }
                            channels.push(name);
                        }
                    }
                }
                "lastEventId" => query_id = Some(value.into_owned()),
                _ => {}
            }
        }
        if channels.is_empty() {
            return Err(HubError::NoChannel.into());
        }
        let header = match last_event_id {
            Some(raw) => Some(
                std::str::from_utf8(raw)
                    .map_err(|_| SubscribeError::BadLastEventId("is not UTF-8"))?,
            ),
            None => None,
        };
        let resume = resume_from(header.or(query_id.as_deref()))?;
        Ok(Self { channels, resume })
    }
}

fn resume_from(last: Option<&str>) -> Result<Resume, SubscribeError> {
    let Some(last) = last.filter(|s| !s.is_empty()) else {
        return Ok(Resume::Live);
    };
    if last.len() > MAX_EVENT_ID_LEN {
        return Err(SubscribeError::BadLastEventId(
            "is longer than an event id can be",
        ));
    }
    if last.bytes().any(|b| matches!(b, b'\r' | b'\n' | b'\0')) {
        return Err(SubscribeError::BadLastEventId("contains CR, LF or NUL"));
    }
    Ok(if last == EARLIEST {
        Resume::Earliest
    } else {
        Resume::After(last.to_string())
    })
}

/// Subscribe answers `GET /events` with a `text/event-stream` that starts at once.
pub(crate) async fn subscribe(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, SubscribeError> {
    let header = req.headers().get("last-event-id").map(|v| v.as_bytes());
    let max = state.hub.settings().max_channels_per_connection;
    let request = SubscribeRequest::parse(req.query_string(), header, max)?;
    let subscription = state
        .hub
        .subscribe(&request.channels, request.resume)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/event-stream"))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .force_close()
        .streaming(SseBody::new(subscription, state.body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str, header: Option<&str>) -> Result<SubscribeRequest, SubscribeError> {
        SubscribeRequest::parse(query, header.map(str::as_bytes), 3)
    }

    fn names(r: &SubscribeRequest) -> Vec<&str> {
        r.channels.iter().map(ChannelName::as_str).collect()
    }

    #[test]
    fn channels_come_repeated_or_comma_separated_without_duplicates() {
        let r = parse("channel=a&channel=b,c&channel=a&_=1", None).unwrap();
        assert_eq!(names(&r), ["a", "b", "c"]);
        assert_eq!(r.resume, Resume::Live);
    }

    #[test]
    fn the_header_wins_over_the_query_parameter() {
        let r = parse("channel=a&lastEventId=earliest", Some("42")).unwrap();
        assert_eq!(r.resume, Resume::After("42".into()));
        assert_eq!(
            parse("channel=a&lastEventId=earliest", None)
                .unwrap()
                .resume,
            Resume::Earliest
        );
    }

    #[test]
    fn refuses_bad_requests() {
        assert!(matches!(
            parse("", None),
            Err(SubscribeError::Hub(HubError::NoChannel))
        ));
        assert!(matches!(
            parse("channel=", None),
            Err(SubscribeError::BadChannel(_))
        ));
        assert!(matches!(
            parse("channel=a,,b", None),
            Err(SubscribeError::BadChannel(_))
        ));
        assert!(matches!(
            parse("channel=a,b,c,d", None),
            Err(SubscribeError::Hub(_))
        ));
        assert!(matches!(
            parse("channel=%FF", None),
            Err(SubscribeError::BadQuery(_))
        ));
        assert!(matches!(
            parse("channel=a&lastEventId=x%0Ay", None),
            Err(SubscribeError::BadLastEventId(_))
        ));
        let huge = "x".repeat(MAX_EVENT_ID_LEN + 1);
        assert!(matches!(
            parse("channel=a", Some(&huge)),
            Err(SubscribeError::BadLastEventId(_))
        ));
    }
}
