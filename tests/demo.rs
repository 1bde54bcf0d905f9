//! The demo page at `/`, over HTTP: what the browser is sent, and `--no-demo`.
//! (`tests/browser.rs` uses the page in a real browser.)

mod common;

use common::Gateway;

#[tokio::test]
async fn the_root_serves_the_demo_page_as_html_under_a_strict_content_security_policy() {
    let gw = Gateway::start(&[]).await;
    let response = gw
        .http()
        .get(gw.url("/?channel=news,alerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(
        header("connection"),
        "close",
        "the page's streams get connections of their own"
    );
    let csp = header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'sha256-",
        "style-src 'sha256-",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    let body = response.text().await.unwrap();
    assert!(body.contains("<title>sse-gateway · live events</title>"));
    assert!(body.contains("new EventSource("), "the script is inline");
}

#[tokio::test]
async fn with_no_demo_the_root_is_the_usual_json_404() {
    let by_flag = Gateway::start(&["--no-demo"]).await;
    let by_env = Gateway::start_with_env(&[], &[("SSE_GATEWAY_NO_DEMO", "true")]).await;
    for gw in [by_flag, by_env] {
        let (status, body) = gw.get("/").await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("no such endpoint"))
        );
        assert!(gw.logs().contains("no_demo: true"), "the setting is logged");
    }
}
