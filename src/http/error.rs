//! The one error type of the JSON API. Each variant is a status; the body is always
//! `{"error": "...", "request_id": "..."}`. Unexpected errors are logged with their whole cause
//! chain and answered with a generic message (plus a `traceback` only when `CBH_DEBUG=1`).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::context;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    /// A limit was reached; the client may try again after the duration.
    #[error("{0}")]
    TooManyRequests(String, std::time::Duration),
    /// The request body did not arrive within `CBH_HTTP_BODY_TIMEOUT`.
    #[error("the request body did not arrive within {} s", .0.as_secs().max(1))]
    RequestTimeout(std::time::Duration),
    /// Too many requests are being handled already (`CBH_HTTP_MAX_IN_FLIGHT`).
    #[error("the service is busy, try again shortly")]
    Busy,
    #[error("the service is temporarily unavailable, try again shortly")]
    Unavailable(#[source] anyhow::Error),
    #[error("an internal error occurred")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Busy | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn not_found() -> Self {
        ApiError::NotFound("not found".into())
    }

    pub fn not_logged_in() -> Self {
        ApiError::Unauthorized("authentication required: log in or send an ApiKey".into())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => ApiError::Conflict(what),
            StoreError::Unavailable(e) => ApiError::Unavailable(e),
            StoreError::Other(e) => ApiError::Internal(e),
        }
    }
}

/// The body of every error answer of the JSON API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong, worded for the caller.
    pub error: String,
    /// Also in the `X-Request-Id` header and the log.
    pub request_id: String,
    /// The cause of a 500 or 503, only when the server runs with `CBH_DEBUG=1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A full password queue comes up through handlers as an internal error.
        if let ApiError::Internal(cause) = &self
            && cause.downcast_ref::<super::PasswordWorkBusy>().is_some()
        {
            return ApiError::Busy.into_response();
        }
        let ctx = context::current();
        let mut body = ErrorBody {
            error: self.to_string(),
            request_id: ctx.request_id.clone(),
            traceback: None,
        };
        match &self {
            ApiError::Internal(cause) | ApiError::Unavailable(cause) => {
                tracing::error!(request_id = %ctx.request_id, error = format!("{cause:#}"), "request failed");
                if ctx.debug {
                    body.traceback = Some(format!("{cause:?}"));
                }
            }
            _ => {}
        }
        let mut response = (self.status(), Json(body)).into_response();
        let retry_after = match &self {
            ApiError::Busy | ApiError::Unavailable(_) => Some(1),
            ApiError::TooManyRequests(_, after) => Some(after.as_secs().max(1)),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::context::{RequestContext, scope};

    async fn body_of(error: ApiError, debug: bool) -> (StatusCode, serde_json::Value) {
        let context = RequestContext {
            request_id: "req-1".into(),
            debug,
        };
        let response = scope(context, async { error.into_response() }).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause_unless_debugging() {
        let cause =
            || ApiError::Internal(anyhow::anyhow!("disk on fire").context("storing invitation"));

        let (status, body) = body_of(cause(), false).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"], "an internal error occurred");
        assert_eq!(body["request_id"], "req-1");
        assert!(body.get("traceback").is_none());
        assert!(!body.to_string().contains("disk on fire"));

        let (_, debug) = body_of(cause(), true).await;
        assert!(
            debug["traceback"]
                .as_str()
                .is_some_and(|t| t.contains("disk on fire"))
        );
    }

    #[tokio::test]
    async fn client_errors_say_what_is_wrong() {
        let (status, body) = body_of(ApiError::BadRequest("email is required".into()), true).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "email is required");
        assert!(body.get("traceback").is_none());
    }
}
