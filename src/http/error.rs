//! What every endpoint shares for errors: the JSON body, and the status of a hub refusal.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use crate::hub::HubError;

/// Json_error builds a response with `status` and the body `{"error": message}`.
pub fn json_error(status: StatusCode, message: &str) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.insert_header((actix_web::http::header::RETRY_AFTER, "1"));
    }
    response.json(serde_json::json!({ "error": message }))
}

/// Hub_status maps a hub refusal to its HTTP status.
pub(crate) fn hub_status(error: &HubError) -> StatusCode {
    match error {
        HubError::UnknownChannel(_) => StatusCode::NOT_FOUND,
        HubError::NoChannel | HubError::TooManyChannelsPerConnection(_) => StatusCode::BAD_REQUEST,
        HubError::TooManyChannels(_) | HubError::TooManyConnections(_) | HubError::ShuttingDown => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}
