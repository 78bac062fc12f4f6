//! Per-request context (request id, debug flag) kept in a task-local, so that an error turned
//! into a response anywhere below the middleware can name its request.

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::AppState;
use crate::domain::token::random_hex;

#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub debug: bool,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// The current request's context (a placeholder outside a request).
pub fn current() -> RequestContext {
    CONTEXT
        .try_with(Clone::clone)
        .unwrap_or_else(|_| RequestContext {
            request_id: "-".into(),
            debug: false,
        })
}

/// Runs `future` with `context` as the current request context.
pub async fn scope<F: std::future::Future>(context: RequestContext, future: F) -> F::Output {
    CONTEXT.scope(context, future).await
}

/// Gives each request an id, returned in `X-Request-Id` and in error bodies, and a log span.
/// An id set by a proxy in front is kept, so one id follows the request through both logs.
pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| is_safe_request_id(id))
        .map_or_else(|| random_hex(8), str::to_owned);
    let path = loggable_path(request.uri().path());
    let span = tracing::info_span!("request", id = %request_id, method = %request.method(), path);
    let context = RequestContext {
        request_id: request_id.clone(),
        debug: state.config.debug,
    };
    let mut response = scope(context, next.run(request).instrument(span.clone())).await;
    span.in_scope(|| {
        tracing::debug!(status = response.status().as_u16(), "response");
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// At most 64 letters, digits, `.`, `_` and `-`: anything else could forge log lines or carry
/// markup into pages and error bodies, so it is replaced.
fn is_safe_request_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The path as it may be logged: accept and first-run setup links carry a secret token in the
/// path.
fn loggable_path(path: &str) -> String {
    for secret_part in ["/accept/", "/setup/"] {
        if let Some(at) = path.find(secret_part) {
            return format!("{}{secret_part}<token>", &path[..at]);
        }
    }
    path.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_request_ids_are_kept() {
        assert!(is_safe_request_id("3f2a-9c.b_1"));
        assert!(is_safe_request_id(&"a".repeat(64)));
        for bad in ["", "a b", "a\nb", "<script>", "é", &"a".repeat(65)] {
            assert!(!is_safe_request_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn accept_tokens_are_not_logged() {
        assert_eq!(
            loggable_path("/chembiohub/accept/abcdef"),
            "/chembiohub/accept/<token>"
        );
        assert_eq!(
            loggable_path("/chembiohub/setup/abcdef"),
            "/chembiohub/setup/<token>"
        );
        assert_eq!(
            loggable_path("/chembiohub/api/invitations/"),
            "/chembiohub/api/invitations/"
        );
    }
}
