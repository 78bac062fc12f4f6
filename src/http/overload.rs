//! Middleware that keeps slow or numerous requests from piling up: a cap on requests in flight
//! (503 at once past it) and a deadline for the request body (408).

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::{ApiError, AppState, extract::MAX_BODY_BYTES};

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

/// Reads the whole body (at most one byte past the limit, so that the extractors still answer
/// 413) within `CBH_HTTP_BODY_TIMEOUT` of the head, or answers 408 and closes the connection.
/// Bodies here are small JSON documents and forms, so holding them in memory costs little.
pub async fn body_deadline(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(state.config.body_timeout, read_body(body)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
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

async fn read_body(body: Body) -> Result<Bytes, axum::Error> {
    let mut stream = body.into_data_stream();
    let mut collected = Vec::new();
    while let Some(chunk) = stream.next().await {
        collected.extend_from_slice(&chunk?);
        if collected.len() > MAX_BODY_BYTES {
            break;
        }
    }
    Ok(Bytes::from(collected))
}
