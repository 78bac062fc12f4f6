//! Liveness and readiness probes for load balancers and orchestrators.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use super::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(alive))
        .route("/readyz", get(ready))
}

async fn alive() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the database answers (migrations ran before the server started listening).
async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state
        .store
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))?;
    Ok(Json(json!({ "status": "ready" })))
}
