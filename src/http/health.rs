//! Liveness and readiness probes for load balancers and orchestrators.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(alive))
        .route("/readyz", get(ready))
}

/// What a probe answers.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Health {
    /// `ok` (alive) or `ready`.
    status: &'static str,
}

/// Alive.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "health",
    responses((status = 200, description = "The process answers", body = Health)),
    security(()),
)]
async fn alive() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Ready.
///
/// When the database answers (migrations ran before the server started listening).
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "health",
    responses(
        (status = 200, description = "The database answers", body = Health),
        (status = 503, description = "The database does not answer", body = ErrorBody),
    ),
    security(()),
)]
async fn ready(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state
        .store
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))?;
    Ok(Json(Health { status: "ready" }))
}
