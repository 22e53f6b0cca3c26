//! Refusals as HTTP answers: one status per failure code, and a short
//! plain-text reason (the executor's own words), for every way a request
//! can be turned down.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::operation::{ErrorCode, Failure};

/// The status a failure is answered with.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest | ErrorCode::InvalidPath => StatusCode::BAD_REQUEST,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::AlreadyExists
        | ErrorCode::NotADirectory
        | ErrorCode::IsADirectory
        | ErrorCode::NotEmpty => StatusCode::CONFLICT,
        ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::NoSpace => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::DigestMismatch => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::LoginFailed | ErrorCode::LoginRequired => StatusCode::UNAUTHORIZED,
    }
}

/// A plain-text answer: `status` and one line saying why.
pub fn text(status: StatusCode, reason: impl Into<String>) -> Response {
    let mut reason = reason.into();
    reason.push('\n');
    let mut response = Response::new(Body::from(reason));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The answer to a failed operation.
pub fn failure(failure: &Failure) -> Response {
    text(status_of(failure.code), failure.message.clone())
}

/// A `401` asking for HTTP Basic credentials (what WebDAV clients and
/// scripts answer).
pub fn challenge(reason: impl Into<String>) -> Response {
    let mut response = text(StatusCode::UNAUTHORIZED, reason);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"miniftp\", charset=\"UTF-8\""),
    );
    response
}

/// A `303` to `location` (after a form, or to the login page).
pub fn see_other(location: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
