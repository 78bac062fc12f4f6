//! Middleware that keeps slow or numerous requests from piling up: a cap on requests in flight
//! (503 at once past it) and a deadline for the request body (408).

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use axum::extract::DefaultBodyLimit;
use tower::{Layer, ServiceExt};

use super::extract::{BodyLimit, body_limit};
use super::{ApiError, AppState};

/// Past `CBH_HTTP_MAX_IN_FLIGHT` requests being handled, answers 503 without queueing: a queue
/// without bound only turns overload into timeouts for everyone.
pub async fn cap_in_flight(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match state.in_flight.clone().try_acquire_owned() {
        Ok(_permit) => next.run(request).await,
        Err(_) => ApiError::Busy.into_response(),
    }
}

/// Reads the whole body (at most one byte past the path's `body_limit`, so that the extractors
/// still answer 413, each in its own format) within `CBH_HTTP_BODY_TIMEOUT` of the head, or
/// answers 408 and closes the connection. Bodies here are JSON documents and forms of at most
/// a few hundred KiB, so holding them in memory costs little.
pub async fn body_deadline(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let limit = body_limit(parts.uri.path());
    parts.extensions.insert(BodyLimit(limit));
    match tokio::time::timeout(state.config.body_timeout, read_body(body, limit)).await {
        Ok(Ok(bytes)) => {
            let request = Request::from_parts(parts, Body::from(bytes));
            match DefaultBodyLimit::max(limit)
                .layer(next)
                .oneshot(request)
                .await
            {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
        Ok(Err(error)) => {
            ApiError::BadRequest(format!("the request body could not be read ({error})"))
                .into_response()
        }
        Err(_) => {
            let mut response = ApiError::RequestTimeout(state.config.body_timeout).into_response();
            // The rest of the body may still come: it is not worth reading.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, axum::Error> {
    let mut stream = body.into_data_stream();
    let mut collected = Vec::new();
    while let Some(chunk) = stream.next().await {
        collected.extend_from_slice(&chunk?);
        if collected.len() > limit {
            break;
        }
    }
    Ok(Bytes::from(collected))
}
