//! The JSON error body shared by every endpoint.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

/// Json_error builds a response with `status` and the body `{"error": message}`.
pub fn json_error(status: StatusCode, message: &str) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.insert_header((actix_web::http::header::RETRY_AFTER, "1"));
    }
    response.json(serde_json::json!({ "error": message }))
}
