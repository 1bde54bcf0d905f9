//! The servers the tool can measure, and the only things that differ between them: the publish
//! request's URL and body. Subscribing is the same `GET /events?channel=a,b` on both (nchan is
//! configured to split its channel id on commas, see `bench/nchan.conf`).

use clap::ValueEnum;
use serde::Serialize;

/// Target is the kind of server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// sse-gateway: `POST /publish` with a JSON body.
    Gateway,
    /// nginx with nchan: `POST /pub?channel=NAME` with the data as the raw body.
    Nchan,
}

/// PublishRequest is the path, content type and body of one HTTP publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishRequest {
    /// The path and query.
    pub path: String,
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Target {
    /// Subscribe_path is the request path that subscribes to `channels` over SSE.
    pub fn subscribe_path(self, channels: &[String]) -> String {
        format!("/events?channel={}", channels.join(","))
    }

    /// Publish_request is how `data` is published to `channel` on this server.
    pub fn publish_request(self, channel: &str, data: &str) -> PublishRequest {
        match self {
            Self::Gateway => PublishRequest {
                path: "/publish".into(),
                content_type: "application/json",
                body: serde_json::json!({ "channel": channel, "data": data }).to_string(),
            },
            Self::Nchan => PublishRequest {
                path: format!("/pub?channel={channel}"),
                content_type: "text/plain",
                body: data.into(),
            },
        }
    }
}

/// Valid_channel tells whether a name needs no escaping in a URL or JSON and is accepted by both
/// servers.
pub fn valid_channel(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_publish_request_differs_between_targets() {
        let channels = ["general".to_string(), "cats".to_string()];
        for target in [Target::Gateway, Target::Nchan] {
            assert_eq!(
                target.subscribe_path(&channels),
                "/events?channel=general,cats"
            );
        }
        let gateway = Target::Gateway.publish_request("cats", "c 1 2 x");
        assert_eq!(gateway.path, "/publish");
        assert_eq!(gateway.body, r#"{"channel":"cats","data":"c 1 2 x"}"#);
        let nchan = Target::Nchan.publish_request("cats", "c 1 2 x");
        assert_eq!(
            (nchan.path.as_str(), nchan.body.as_str()),
            ("/pub?channel=cats", "c 1 2 x")
        );
    }

    #[test]
    fn channel_names_are_url_and_json_safe() {
        assert!(valid_channel("general.v2-x_1"));
        for bad in ["", "a,b", "a b", "a&b", "é"] {
            assert!(!valid_channel(bad), "{bad:?}");
        }
    }
}
