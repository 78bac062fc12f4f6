//! Declining an invitation by its link: `POST /{ns}/api/invitations/decline/` for scripts, and
//! the action the decline and unsubscribe pages share. No login: the token is the proof.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::{InvitationStatus, Timestamp, Token};
use crate::http::error::ErrorBody;
use crate::http::extract::{ApiJson, ClientIp, Namespace, NamespaceParam};
use crate::http::{ApiError, AppState, record};
use crate::store::{AuditEvent, DeclineOutcome, InvitationRecord, UnsubscribeOutcome};

/// The body of `POST /{ns}/api/invitations/decline/`.
#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct DeclineRequest {
    /// The token of the email's accept link.
    // Any JSON value, so that a missing or non-string token gets a 400 naming the field.
    #[schema(required = true, value_type = String)]
    token: Option<Value>,
    /// Also put the address on the namespace's suppression list: no invitation is sent to it
    /// again.
    #[serde(default)]
    #[schema(default = false)]
    block_future: bool,
}

/// What a declined invitation answers.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DeclineResponse {
    message: String,
    /// `declined`.
    status: &'static str,
    /// Whether the address is now on the suppression list.
    block_future: bool,
}

/// Why a link could not decline.
pub(in crate::http) enum NotDeclined {
    /// No link has this token (or it is not one we issue).
    Unknown,
    /// The link no longer works: expired, used, revoked or declined.
    Gone(InvitationStatus),
}

const UNKNOWN_MESSAGE: &str = "No invitation has this link.";

fn gone_message(status: InvitationStatus) -> String {
    let why = match status {
        InvitationStatus::Accepted => "it was accepted",
        InvitationStatus::Revoked => "it was revoked",
        InvitationStatus::Declined => "it was declined already",
        InvitationStatus::Expired | InvitationStatus::Pending => "it has expired or was replaced",
    };
    format!("This invitation link no longer works: {why}.")
}

/// Declines by an accept link's token (see `DeclineStore::decline_invitation`) and records it.
pub(in crate::http) async fn decline_by_token(
    state: &AppState,
    ns: &str,
    token: &str,
    block_future: bool,
    client_ip: Option<String>,
) -> Result<Result<Vec<InvitationRecord>, NotDeclined>, ApiError> {
    let Some(token) = Token::parse(token) else {
        return Ok(Err(NotDeclined::Unknown));
    };
    let outcome = state
        .store
        .decline_invitation(ns, &token.hash(), block_future, Timestamp::now())
        .await?;
    match outcome {
        DeclineOutcome::Declined(records) => {
            let detail = if block_future {
                "block_future"
            } else {
                "declined"
            };
            audit_declined(state, ns, &records, detail, client_ip).await;
            Ok(Ok(records))
        }
        DeclineOutcome::Gone(status) => Ok(Err(NotDeclined::Gone(status))),
        DeclineOutcome::Unknown => Ok(Err(NotDeclined::Unknown)),
    }
}

/// The one-click unsubscribe (RFC 8058) by an unsubscribe token: `false` when the token names
/// nothing (unknown, malformed, or its invitation deleted since), and nothing changed.
pub(in crate::http) async fn unsubscribe_by_token(
    state: &AppState,
    ns: &str,
    token: &str,
    client_ip: Option<String>,
) -> Result<bool, ApiError> {
    let Some(token) = Token::parse(token) else {
        return Ok(false);
    };
    match state
        .store
        .unsubscribe(ns, &token.hash(), Timestamp::now())
        .await?
    {
        UnsubscribeOutcome::Suppressed { email, declined } => {
            record(
                state,
                AuditEvent {
                    namespace: ns.to_owned(),
                    at: Timestamp::now(),
                    event: "address_suppressed",
                    actor: None,
                    subject: Some(email.to_lowercase()),
                    client_ip: client_ip.clone(),
                    detail: Some("one-click unsubscribe".into()),
                },
            )
            .await;
            audit_declined(state, ns, &declined, "one-click unsubscribe", client_ip).await;
            Ok(true)
        }
        UnsubscribeOutcome::Unknown => Ok(false),
    }
}

async fn audit_declined(
    state: &AppState,
    ns: &str,
    records: &[InvitationRecord],
    detail: &str,
    client_ip: Option<String>,
) {
    // The creators' notices were queued with the decline.
    state.outbox_wakeup.notify_one();
    for declined in records {
        record(
            state,
            AuditEvent {
                namespace: ns.to_owned(),
                at: Timestamp::now(),
                event: "invitation_declined",
                actor: None,
                subject: Some(declined.id.to_string()),
                client_ip: client_ip.clone(),
                detail: Some(detail.to_owned()),
            },
        )
        .await;
    }
}

/// Decline an invitation.
///
/// Uses an accept link's token: the invitation (and any other still pending to the same
/// person) becomes `declined`, its link stops working, its unsent email is cancelled and the
/// grants only it gave are removed; the person stays pending. With `block_future`, the address
/// joins the namespace's suppression list. No login needed, the token is the proof.
#[utoipa::path(
    post,
    path = "/{ns}/api/invitations/decline/",
    operation_id = "decline_invitation",
    tag = "invitations",
    params(NamespaceParam),
    request_body = DeclineRequest,
    responses(
        (status = 200, description = "Declined", body = DeclineResponse),
        (status = 400, description = "Malformed body, or no token (or one that is not a string)", body = ErrorBody),
        (status = 404, description = "Unknown namespace, or no invitation has this token", body = ErrorBody),
        (status = 410, description = "The link expired, was used, or its invitation was accepted, revoked or declined", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ),
    security(()),
)]
pub(super) async fn decline(
    State(state): State<AppState>,
    Namespace(ns): Namespace,
    ClientIp(client_ip): ClientIp,
    ApiJson(body): ApiJson<DeclineRequest>,
) -> Result<Json<DeclineResponse>, ApiError> {
    let Some(Value::String(token)) = body.token else {
        return Err(ApiError::BadRequest(
            "token: required, the token of the email's link (a string)".into(),
        ));
    };
    match decline_by_token(&state, &ns, &token, body.block_future, client_ip).await? {
        Ok(_) => Ok(Json(DeclineResponse {
            message: if body.block_future {
                "Invitation declined; no more invitations will be sent to this address.".into()
            } else {
                "Invitation declined.".into()
            },
            status: InvitationStatus::Declined.as_str(),
            block_future: body.block_future,
        })),
        Err(NotDeclined::Unknown) => Err(ApiError::NotFound(UNKNOWN_MESSAGE.into())),
        Err(NotDeclined::Gone(status)) => Err(ApiError::Gone(gone_message(status))),
    }
}
