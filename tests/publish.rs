//! Publishing over HTTP: JSON and form bodies, ids, validation, keys and limits.

mod common;

use common::Gateway;
use serde_json::{json, Value};

async fn post(
    gw: &Gateway,
    content_type: &str,
    body: impl Into<reqwest::Body>,
    auth: Option<&str>,
) -> (u16, Value) {
    let mut request = gw
        .http()
        .post(gw.url("/publish"))
        .header("content-type", content_type)
        .body(body);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn error_of(body: &Value) -> &str {
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no JSON error in {body}"))
}

#[tokio::test]
async fn a_json_publish_answers_202_with_the_id_and_reaches_subscribers() {
    let gw = Gateway::start(&[]).await;
    let mut stream = gw.subscribe("channel=news").await;
    let (status, body) = gw
        .publish(json!({"channel": "news", "data": "hello", "event": "greeting"}))
        .await;
    assert_eq!(status, 202);
    assert_eq!(body["channel"], "news");
    let id = body["id"].as_str().unwrap().to_string();
    let event = stream.next_event().await;
    assert_eq!(
        (
            event.last_event_id,
            event.event.as_str(),
            event.data.as_str()
        ),
        (id, "greeting", "hello")
    );
}

#[tokio::test]
async fn generated_ids_are_distinct_and_given_ids_are_kept() {
    let gw = Gateway::start(&[]).await;
    let (_, first) = gw.publish(json!({"channel": "ids", "data": 1})).await;
    let (_, second) = gw.publish(json!({"channel": "ids", "data": 2})).await;
    assert_ne!(first["id"], second["id"]);
    let (_, given) = gw
        .publish(json!({"channel": "ids", "data": 3, "id": "order-17"}))
        .await;
    assert_eq!(given["id"], "order-17");
}

#[tokio::test]
async fn a_republished_id_is_not_delivered_twice() {
    let gw = Gateway::start(&[]).await;
    let mut stream = gw.subscribe("channel=dup").await;
    gw.publish_ok("dup", "1", "first").await;
    gw.publish_ok("dup", "1", "again").await;
    gw.publish_ok("dup", "2", "second").await;
    let events = stream.events(2).await;
    assert_eq!(
        events.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
        ["first", "second"]
    );
    assert_eq!(gw.stats().await["duplicates_dropped"], 1);
}

#[tokio::test]
async fn the_cyclone_sse_form_publishes_too() {
    let gw = Gateway::start(&[]).await;
    let mut stream = gw.subscribe("channel=legacy").await;
    let (status, _) = post(
        &gw,
        "application/x-www-form-urlencoded",
        "channel=legacy&message=hi+there%0Anext",
        None,
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(stream.next_event().await.data, "hi there\nnext");
}

#[tokio::test]
async fn malformed_bodies_get_400_with_a_json_error_naming_the_problem() {
    let gw = Gateway::start(&[]).await;
    let cases: &[(&str, &str, &str)] = &[
        (
            "application/json",
            r#"{"channel": "c", "data": "#,
            "invalid JSON",
        ),
        ("application/json", r#"{"data": 1}"#, "channel"),
        ("application/json", r#"{"channel": "c"}"#, "data"),
        (
            "application/json",
            r#"{"channel": "c", "data": 1, "colour": "red"}"#,
            "colour",
        ),
        (
            "application/json",
            r#"{"channel": "bad name", "data": 1}"#,
            "channel name",
        ),
        (
            "application/json",
            r#"{"channel": "c", "data": 1, "id": "a\nb"}"#,
            "id must not contain",
        ),
        (
            "application/json",
            r#"{"channel": "c", "data": 1, "event": "a\rb"}"#,
            "event must not contain",
        ),
        (
            "application/json",
            r#"{"channel": "c", "data": 1, "id": "a\u0000b"}"#,
            "id must not contain",
        ),
        ("application/x-www-form-urlencoded", "message=x", "channel"),
        (
            "application/x-www-form-urlencoded",
            "channel=c&message=%FF",
            "UTF-8",
        ),
    ];
    for (content_type, body, names) in cases {
        let (status, answer) = post(&gw, content_type, *body, None).await;
        assert_eq!(status, 400, "{body} answered {answer}");
        assert!(
            error_of(&answer).contains(names),
            "{body}: error {answer} does not mention {names:?}"
        );
    }
    let (status, answer) = post(&gw, "text/plain", "hello", None).await;
    assert_eq!(status, 415);
    error_of(&answer);
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413() {
    let gw = Gateway::start(&["--max-body", "1000"]).await;
    let data = "x".repeat(2000);
    let (status, answer) = gw.publish(json!({"channel": "c", "data": data})).await;
    assert_eq!(status, 413);
    assert!(error_of(&answer).contains("1000"));
    let (status, _) = gw
        .publish(json!({"channel": "c", "data": "x".repeat(900)}))
        .await;
    assert_eq!(status, 202, "a body under the limit passes");
}

#[tokio::test]
async fn with_a_publish_key_only_requests_that_present_it_may_publish() {
    let gw = Gateway::start_with_env(&[], &[("SSE_GATEWAY_PUBLISH_KEY", "s3cret-key")]).await;
    let body = r#"{"channel": "k", "data": 1}"#;
    let (status, answer) = post(&gw, "application/json", body, None).await;
    assert_eq!(status, 401);
    error_of(&answer);
    assert_eq!(
        post(&gw, "application/json", body, Some("Bearer wrong"))
            .await
            .0,
        401
    );
    assert_eq!(
        post(
            &gw,
            "application/json",
            "not even json",
            Some("Bearer wrong")
        )
        .await
        .0,
        401,
        "no validation detail before auth"
    );
    assert_eq!(
        post(&gw, "application/json", body, Some("Bearer s3cret-key"))
            .await
            .0,
        202
    );
    let form = "application/x-www-form-urlencoded";
    assert_eq!(
        post(&gw, form, "channel=k&message=m&key=s3cret-key", None)
            .await
            .0,
        202
    );
    assert_eq!(
        post(&gw, form, "channel=k&message=m&key=nope", None)
            .await
            .0,
        401
    );
    assert!(
        !gw.logs().contains("s3cret-key"),
        "the key never appears in the logs"
    );
}

#[tokio::test]
async fn with_a_channel_list_other_channels_are_404() {
    let gw = Gateway::start(&["--channel", "news", "--channel", "sport"]).await;
    let (status, answer) = gw.publish(json!({"channel": "weather", "data": 1})).await;
    assert_eq!(status, 404);
    assert!(error_of(&answer).contains("weather"));
    assert_eq!(
        gw.publish(json!({"channel": "sport", "data": 1})).await.0,
        202
    );
}

/// Every API answer, success or error, tells browsers not to sniff its content type.
#[tokio::test]
async fn api_answers_carry_nosniff() {
    let gw = Gateway::start(&[]).await;
    let publish = |body: &'static str| {
        gw.http()
            .post(gw.url("/publish"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let accepted = publish(r#"{"channel":"n","data":1}"#).await.unwrap();
    let refused = publish("{").await.unwrap();
    assert_eq!(
        (accepted.status().as_u16(), refused.status().as_u16()),
        (202, 400)
    );
    for response in [&accepted, &refused] {
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
}
