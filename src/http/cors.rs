//! Which other web origins may use the API from a browser, and the headers that say so.
//!
//! actix-cors answers preflights and adds the headers to every response actix-web serves; event
//! streams served outside actix-web (see [`super::event_stream`]) get the same headers from
//! [`Cors::stream_headers`], and a test compares both paths' answers.

/// The response header browsers may read from a cross-origin response.
const EXPOSED: &str = "x-request-id";
/// What a response that depends on CORS varies on (actix-cors's value).
const VARY: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

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
    /// Middleware is the actix-web middleware for this policy.
    pub(crate) fn middleware(&self) -> actix_cors::Cors {
        let cors = actix_cors::Cors::default()
            .allowed_methods(["GET", "POST"])
            .allowed_headers([
                "authorization",
                "content-type",
                "last-event-id",
                "x-request-id",
            ])
            .expose_headers([EXPOSED])
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

    /// Stream_headers are the header lines (each ending in CRLF) the middleware would add to a
    /// `GET` answered with `origin` as the request's `Origin`: the allowed origin when it is
    /// allowed, and the exposed headers, credentials and `Vary` whenever CORS is on.
    pub(crate) fn stream_headers(&self, origin: Option<&str>) -> String {
        let (allow, credentials) = match self {
            Cors::Off => return String::new(),
            Cors::AnyOrigin => (origin.map(|_| "*"), false),
            Cors::Origins(origins) => (
                origin.filter(|o| origins.iter().any(|allowed| allowed == o)),
                true,
            ),
        };
        let mut lines = String::new();
        if let Some(allow) = allow {
            lines.push_str(&format!("access-control-allow-origin: {allow}\r\n"));
        }
        lines.push_str(&format!("access-control-expose-headers: {EXPOSED}\r\n"));
        if credentials {
            lines.push_str("access-control-allow-credentials: true\r\n");
        }
        lines.push_str(&format!("vary: {VARY}\r\n"));
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_headers_name_an_allowed_origin_only() {
        let cors = Cors::Origins(vec!["https://app.example".into()]);
        let allowed = cors.stream_headers(Some("https://app.example"));
        assert!(allowed.contains("access-control-allow-origin: https://app.example\r\n"));
        assert!(allowed.contains("access-control-allow-credentials: true\r\n"));
        let other = cors.stream_headers(Some("https://evil.example"));
        assert!(!other.contains("allow-origin"), "{other}");
        assert!(Cors::AnyOrigin
            .stream_headers(Some("https://x.example"))
            .contains("access-control-allow-origin: *\r\n"));
        assert_eq!(Cors::Off.stream_headers(Some("https://x.example")), "");
    }
}
