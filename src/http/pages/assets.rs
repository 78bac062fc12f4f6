//! The stylesheet and the one script of the pages, built into the binary.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::http::AppState;

const STYLE_CSS: &str = include_str!("../../../static/style.css");
const INVITE_JS: &str = include_str!("../../../static/invite.js");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/static/style.css", get(style))
        .route("/static/invite.js", get(script))
}

/// Short caching: the files change only with the binary, and an upgrade should show soon.
const CACHE: &str = "public, max-age=300";

async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        STYLE_CSS,
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        INVITE_JS,
    )
}
