//! `GET /`: the demo page, one self-contained HTML document that subscribes with the browser's
//! own `EventSource` and publishes through `POST /publish`.
//!
//! Its markup, style and script are kept as three files under `demo/` for editing, and put
//! together once, at first use, into one document with an inline `<style>` and `<script>`: no
//! build step, nothing fetched from elsewhere. The page is served with a Content-Security-Policy
//! that allows exactly those two blocks, by their SHA-256 hashes, and requests to this origin,
//! and nothing else: no other script or style, no framing, no form posted anywhere.

use std::sync::LazyLock;

use actix_web::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_FRAME_OPTIONS,
};
use actix_web::{web, HttpResponse};
use base64::Engine;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{not_found, AppState};

/// The page's markup, with a placeholder inside its `<style>` and one inside its `<script>`.
const TEMPLATE: &str = include_str!("demo/index.html");
/// The page's style sheet.
const STYLE: &str = include_str!("demo/demo.css");
/// The page's script.
const SCRIPT: &str = include_str!("demo/demo.js");
const STYLE_SLOT: &str = "/*{{style}}*/";
const SCRIPT_SLOT: &str = "/*{{script}}*/";

/// DemoPage is the assembled document and the policy that lets exactly its own blocks apply.
struct DemoPage {
    html: Bytes,
    csp: String,
}

static PAGE: LazyLock<DemoPage> = LazyLock::new(DemoPage::assemble);

impl DemoPage {
    /// Assemble puts the style and script into the markup and derives the policy from them.
    fn assemble() -> Self {
        let html = TEMPLATE
            .replacen(STYLE_SLOT, STYLE, 1)
            .replacen(SCRIPT_SLOT, SCRIPT, 1);
        Self {
            html: Bytes::from(html),
            csp: content_security_policy(STYLE, SCRIPT),
        }
    }
}

/// Content_security_policy allows the inline `style` and `script` by hash, connections to this
/// origin (`EventSource` and `fetch`), and nothing else.
fn content_security_policy(style: &str, script: &str) -> String {
    format!(
        "default-src 'none'; style-src '{}'; script-src '{}'; connect-src 'self'; \
         img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        sha256_source(style),
        sha256_source(script)
    )
}

/// Sha256_source is a CSP hash source, `sha256-BASE64`, for an inline block's exact text.
fn sha256_source(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// Page answers `GET /` with the demo page, or with the usual 404 when it is turned off.
pub(crate) async fn page(state: web::Data<AppState>) -> HttpResponse {
    if !state.demo {
        return not_found();
    }
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((CONTENT_SECURITY_POLICY, PAGE.csp.as_str()))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header((REFERRER_POLICY, "no-referrer"))
        .insert_header((X_FRAME_OPTIONS, "DENY"))
        // The page's streams then open connections of their own instead of reusing this one,
        // and are served on the bare event-stream path (~2 KB each instead of ~11 KB).
        .force_close()
        .body(PAGE.html.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inline_block returns the text between `<tag>` and `</tag>`, as the browser hashes it.
    fn inline_block<'a>(html: &'a str, tag: &str) -> &'a str {
        let open = format!("<{tag}>");
        let start = html.find(&open).unwrap() + open.len();
        let end = start + html[start..].find(&format!("</{tag}>")).unwrap();
        assert_eq!(html.matches(&open).count(), 1, "one <{tag}> block");
        &html[start..end]
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_style_and_script_of_the_page() {
        let page = DemoPage::assemble();
        let html = std::str::from_utf8(&page.html).unwrap();
        let csp = page.csp.as_str();
        assert!(!html.contains(STYLE_SLOT) && !html.contains(SCRIPT_SLOT));
        let style = sha256_source(inline_block(html, "style"));
        let script = sha256_source(inline_block(html, "script"));
        assert!(csp.contains(&format!("style-src '{style}';")), "{csp}");
        assert!(csp.contains(&format!("script-src '{script}';")), "{csp}");
        assert!(csp.starts_with("default-src 'none';"));
        assert!(!csp.contains("unsafe"));
    }

    #[test]
    fn the_script_cannot_end_its_own_block_early() {
        assert!(!SCRIPT.to_ascii_lowercase().contains("</script"));
        assert!(!STYLE.to_ascii_lowercase().contains("</style"));
    }
}
