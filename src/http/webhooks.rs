//! `/{ns}/api/webhooks/`: a superuser's view of the namespace's webhook endpoints. The signing
//! secret is shown once, in the answer to the POST that creates the endpoint.

use axum::Json;
use axum::Router;
use axum::extract::{RawPathParams, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::extract::{ApiJson, Caller, NamespaceParam, path_param};
use super::resources::ListMeta;
use super::{ApiError, AppState};
use crate::deliver::check_endpoint_url;
use crate::domain::EventType;
use crate::domain::Timestamp;
use crate::domain::webhook::{EventFilter, WebhookSecret};
use crate::store::{NewWebhook, WebhookEndpoint};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{ns}/api/webhooks/", get(list).post(create))
        .route("/{ns}/api/webhooks", get(list).post(create))
        .route("/{ns}/api/webhooks/{id}/", delete(remove))
        .route("/{ns}/api/webhooks/{id}", delete(remove))
}

/// A webhook endpoint.
#[derive(Debug, Serialize, ToSchema)]
struct WebhookResource {
    id: i64,
    url: String,
    /// The events it receives; `["*"]` for every event.
    events: Vec<&'static str>,
    #[schema(format = DateTime)]
    created: String,
    resource_uri: String,
}

impl WebhookResource {
    fn new(endpoint: &WebhookEndpoint) -> Self {
        Self {
            id: endpoint.id,
            url: endpoint.url.clone(),
            events: endpoint.events.names(),
            created: endpoint.created.to_iso8601(),
            resource_uri: format!("/{}/api/webhooks/{}/", endpoint.namespace, endpoint.id),
        }
    }
}

/// A new endpoint, with the secret its deliveries are signed with (shown only here).
#[derive(Debug, Serialize, ToSchema)]
struct CreatedWebhook {
    #[serde(flatten)]
    endpoint: WebhookResource,
    /// `whsec_` + base64 of 32 random bytes: the HMAC-SHA256 key is the decoded part.
    secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct WebhookList {
    meta: ListMeta,
    objects: Vec<WebhookResource>,
}

/// The body of a POST.
#[derive(Debug, Deserialize, ToSchema)]
struct WebhookRequest {
    /// `http(s)`; loopback, private, link-local and metadata addresses are refused (also after
    /// DNS, at each delivery) unless `CBH_WEBHOOK_ALLOW_PRIVATE=true`.
    url: String,
    /// Event types to receive (default: every event): `invitation.created`,
    /// `invitation.resent`, `invitation.revoked`, `invitation.accepted`, `invitation.declined`,
    /// `invitation.reminded`, `invitation.expired`, `email.failed`, `email.bounced`,
    /// `user.activated`, `user.deactivated`, `membership.changed`.
    #[serde(default)]
    events: Vec<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Only describes the path.
struct WebhookIdParam {
    /// The endpoint's id.
    id: i64,
}

/// The namespace's webhook endpoints (superusers only).
#[utoipa::path(
    get,
    path = "/{ns}/api/webhooks/",
    operation_id = "list_webhooks",
    tag = "webhooks",
    params(NamespaceParam),
    responses(
        (status = 200, description = "The endpoints, without their secrets", body = WebhookList),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not a superuser", body = ErrorBody),
        (status = 404, description = "Unknown namespace", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = []), ("api_key" = [])),
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WebhookList>, ApiError> {
    caller.require_superuser("manage webhooks")?;
    let objects: Vec<WebhookResource> = state
        .store
        .webhooks(&caller.namespace)
        .await?
        .iter()
        .map(WebhookResource::new)
        .collect();
    let count = i64::try_from(objects.len()).unwrap_or(i64::MAX);
    Ok(Json(WebhookList {
        meta: ListMeta {
            limit: count,
            offset: 0,
            next: None,
            previous: None,
            total_count: count,
        },
        objects,
    }))
}

/// Add a webhook endpoint (superusers only).
///
/// The answer carries the signing secret, which is never shown again. Each delivery is signed
/// as the Standard Webhooks specification says (`webhook-id`, `webhook-timestamp`,
/// `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`).
#[utoipa::path(
    post,
    path = "/{ns}/api/webhooks/",
    operation_id = "create_webhook",
    tag = "webhooks",
    params(NamespaceParam),
    request_body = WebhookRequest,
    responses(
        (status = 201, description = "Added; the only answer that shows the secret", body = CreatedWebhook),
        (status = 400, description = "Malformed body, a URL that is not http(s) or is refused, or an unknown event", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not a superuser, or bad CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown namespace", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []), ("api_key" = [])),
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<WebhookRequest>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    caller.require_superuser("manage webhooks")?;
    let events = request
        .events
        .iter()
        .map(|name| name.parse::<EventType>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::BadRequest(format!("events: {e}")))?;
    let url = check_endpoint_url(&request.url, state.config.webhook_allow_private)
        .await
        .map_err(|e| ApiError::BadRequest(format!("url: {e}")))?;
    let secret = WebhookSecret::generate();
    let endpoint = state
        .store
        .add_webhook(NewWebhook {
            namespace: caller.namespace.clone(),
            url: url.to_string(),
            secret: secret.clone(),
            events: EventFilter::from_list(events),
            now: Timestamp::now(),
        })
        .await?;
    super::audit(
        &state,
        &caller,
        "webhook_added",
        Some(endpoint.id.to_string()),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook {
            endpoint: WebhookResource::new(&endpoint),
            secret: secret.expose().to_owned(),
        }),
    ))
}

/// Remove a webhook endpoint and its deliveries (superusers only).
#[utoipa::path(
    delete,
    path = "/{ns}/api/webhooks/{id}/",
    operation_id = "delete_webhook",
    tag = "webhooks",
    params(NamespaceParam, WebhookIdParam),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not a superuser, or bad CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown namespace or endpoint", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(("session" = [], "csrf" = []), ("api_key" = [])),
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    params: RawPathParams,
) -> Result<StatusCode, ApiError> {
    caller.require_superuser("manage webhooks")?;
    let id = path_param(&params, "id")
        .and_then(|id| id.parse::<i64>().ok())
        .ok_or_else(ApiError::not_found)?;
    if !state.store.remove_webhook(&caller.namespace, id).await? {
        return Err(ApiError::not_found());
    }
    super::audit(&state, &caller, "webhook_removed", Some(id.to_string())).await;
    Ok(StatusCode::NO_CONTENT)
}
