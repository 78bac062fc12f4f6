//! "Invite several people", on the invite page: a roster pasted or uploaded (multipart), a
//! preview with the rows that cannot be sent marked, a confirm button, then a results table with
//! a download of the results as CSV. Works without JavaScript.
//!
//! Nothing is kept on the server between the steps: the preview carries the roster's text in a
//! hidden field, and the confirm step parses and checks it again (a changed field only changes
//! what is asked for, and every row goes through the same rules as a single invitation). The
//! results page carries its CSV the same way, for the download.

use axum::Router;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use minijinja::{Value, context};
use serde::Serialize;

use super::forms::{FormData, PageUser, SESSION_CSRF_FIELD};
use super::language;
use super::render::{Frame, PageError, page};
use crate::domain::ProjectId;
use crate::domain::roster::{self, RosterError, RosterRow, RowResult, Summary};
use crate::domain::{EmailAddress, Language, PersonName};
use crate::http::AppState;
use crate::http::invitations;
use crate::http::metrics::Metrics;
use crate::invite::{self, BulkRow, ValidInvitation};

/// The most an upload (`/{ns}/invite/several/`) may hold: a 1,000-row CSV with long names fits
/// with room to spare; the pages' other forms keep their 64 KiB.
pub const UPLOAD_BODY_BYTES: usize = 1024 * 1024;
/// The most the confirm and download forms may hold: the roster or its results again,
/// percent-encoded (at most three bytes for one).
pub const CARRIED_BODY_BYTES: usize = 3 * UPLOAD_BODY_BYTES + 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{ns}/invite/several/", post(preview))
        .route("/{ns}/invite/several/send/", post(send))
        .route("/{ns}/invite/several/results.csv", post(download))
}

/// The projects offered, by id and name (those the form offered; see `invite::offered_projects`).
async fn project_names(
    state: &AppState,
    user: &PageUser,
    chosen: &[i64],
) -> Result<Vec<String>, PageError> {
    let offered = super::invite::offered_projects(state, user).await?;
    Ok(chosen
        .iter()
        .map(|id| {
            offered
                .iter()
                .find(|(offered, _)| offered == id)
                .map_or_else(|| format!("project {id}"), |(_, name)| name.clone())
        })
        .collect())
}

fn frame<'a>(user: &'a PageUser) -> Frame<'a> {
    Frame {
        title: language::text("bulk-title"),
        ns: user.ns(),
        session: Some((&user.caller.user, &user.csrf)),
    }
}

fn upload_error(ns: &str, error: &MultipartError) -> PageError {
    let status = error.status();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        language::text_with(
            "bulk-too-large",
            &[(
                "mib",
                (UPLOAD_BODY_BYTES / (1024 * 1024)).to_string().into(),
            )],
        )
    } else {
        language::text("bulk-unreadable")
    };
    PageError::Status {
        status,
        ns: Some(ns.to_owned()),
        message,
    }
}

#[derive(Serialize)]
struct RowView<'a> {
    line: usize,
    email: &'a str,
    first_name: &'a str,
    last_name: &'a str,
    error: Option<&'a str>,
}

/// Step 1: the roster as read, with the rows that cannot be sent marked.
async fn preview(
    State(state): State<AppState>,
    user: PageUser,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, PageError> {
    let ns = user.ns().to_owned();
    let mut multipart = multipart.map_err(|rejection| PageError::Status {
        status: rejection.status(),
        ns: Some(ns.clone()),
        message: language::text("bulk-not-multipart"),
    })?;
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut pasted: Vec<u8> = Vec::new();
    let mut file: Vec<u8> = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| upload_error(&ns, &e))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field.bytes().await.map_err(|e| upload_error(&ns, &e))?;
        match name.as_str() {
            "file" => file = bytes.to_vec(),
            "roster" => pasted = bytes.to_vec(),
            SESSION_CSRF_FIELD | "projects" => {
                fields.push((name, String::from_utf8_lossy(&bytes).into_owned()));
            }
            _ => {}
        }
    }
    let form = FormData::from_pairs(fields);
    user.check_csrf(&form)?;
    let projects = chosen_projects(&form);
    // A file, when one was chosen, is the roster; the text area otherwise.
    let source = if file.iter().any(|b| !b.is_ascii_whitespace()) {
        file
    } else {
        pasted
    };
    // The text carried to the confirm step: what was read, without a BOM.
    let parsed = roster::parse_bytes(&source).map(|rows| {
        let text = String::from_utf8_lossy(&source)
            .trim_start_matches('\u{FEFF}')
            .to_owned();
        (rows, text)
    });
    preview_page(&state, &user, &projects, parsed).await
}

async fn preview_page(
    state: &AppState,
    user: &PageUser,
    projects: &[i64],
    parsed: Result<(Vec<RosterRow>, String), RosterError>,
) -> Result<Response, PageError> {
    let chosen = project_names(state, user, projects).await?;
    let (status, values) = match &parsed {
        Ok((rows, text)) => {
            let views: Vec<RowView<'_>> = rows
                .iter()
                .map(|row| RowView {
                    line: row.line,
                    email: &row.email,
                    first_name: &row.first_name,
                    last_name: &row.last_name,
                    error: row.error.as_deref(),
                })
                .collect();
            let valid = rows.iter().filter(|r| r.is_valid()).count();
            (
                StatusCode::OK,
                context! {
                    rows => Value::from_serialize(&views),
                    valid => valid,
                    invalid => rows.len() - valid,
                    roster => text,
                    projects => projects,
                    chosen => chosen,
                    notice => (),
                    error => (),
                },
            )
        }
        Err(error) => (
            StatusCode::BAD_REQUEST,
            context! {
                rows => Vec::<()>::new(),
                valid => 0, invalid => 0, roster => "", projects => projects, chosen => chosen,
                notice => (),
                error => language::text_with("bulk-list-unreadable", &[("error", error.to_string().into())]),
            },
        ),
    };
    page(status, "bulk_preview.html", &frame(user), values)
}

fn chosen_projects(form: &FormData) -> Vec<i64> {
    let mut ids: Vec<i64> = form
        .all("projects")
        .filter_map(|id| id.trim().parse().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[derive(Serialize)]
struct ResultView<'a> {
    line: usize,
    email: &'a str,
    status: u16,
    outcome: &'a str,
    invited: bool,
}

/// Step 2: the roster again, parsed and checked again, each valid row invited in order.
async fn send(
    State(state): State<AppState>,
    user: PageUser,
    form: FormData,
) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    let projects = chosen_projects(&form);
    let rows = match roster::parse_text(form.get("roster").unwrap_or("")) {
        Ok(rows) => rows,
        Err(error) => return preview_page(&state, &user, &projects, Err(error)).await,
    };
    let project_ids: Vec<ProjectId> = projects.iter().copied().map(ProjectId).collect();
    let results = invite_rows(&state, &user, &rows, &project_ids).await?;
    let views: Vec<ResultView<'_>> = results
        .iter()
        .map(|r| ResultView {
            line: r.line,
            email: &r.email,
            status: r.status,
            outcome: &r.outcome,
            invited: r.invited(),
        })
        .collect();
    let values = context! {
        results => Value::from_serialize(&views),
        summary => Summary::of(&results).to_string(),
        csv => roster::results_csv(&results),
        notice => (),
        error => (),
    };
    page(StatusCode::OK, "bulk_results.html", &frame(&user), values)
}

/// The results page's CSV, as a file. It is the CSV that page was rendered with, sent back by
/// the same person's browser (the CSRF token proves that); it is served as an attachment that
/// no browser renders, so it cannot be turned into a page of someone else's making.
async fn download(user: PageUser, form: FormData) -> Result<Response, PageError> {
    user.check_csrf(&form)?;
    // A hidden field's line ends come back as the browser chose (HTML turns CRLF into LF);
    // no field holds a line end (`results_csv` replaces control characters), so all are rows.
    let csv = form
        .get("results")
        .unwrap_or("")
        .replace("\r\n", "\n")
        .replace('\n', "\r\n");
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"invitation-results.csv\""),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        csv,
    )
        .into_response())
}

/// Results in the roster's order: the parser's refusals and the sent rows' outcomes.
fn in_line_order(rows: &[RosterRow], mut sent: Vec<RowResult>) -> Vec<RowResult> {
    sent.extend(roster::refused_rows(rows));
    sent.sort_by_key(|r| r.line);
    sent
}

/// Invites the valid rows in order as the person, each decided as the single form would (the
/// core of the bulk API), and wakes the outbox worker for the emails queued.
async fn invite_rows(
    state: &AppState,
    user: &PageUser,
    rows: &[RosterRow],
    projects: &[ProjectId],
) -> Result<Vec<RowResult>, PageError> {
    let valid: Vec<&RosterRow> = rows.iter().filter(|row| row.is_valid()).collect();
    let requests: Vec<BulkRow> = valid.iter().map(|row| request(row, projects)).collect();
    let decided = invite::invite_rows(
        state.store.as_ref(),
        &invitations::invite_settings(state),
        &invitations::inviter(&user.caller),
        requests,
        false,
    )
    .await?;
    let mut sent = Vec::with_capacity(valid.len());
    for (row, outcome) in valid.iter().zip(decided) {
        if let Some(error) = &outcome.error {
            tracing::error!(
                line = row.line,
                error = format!("{error:#}"),
                "bulk row failed"
            );
        }
        sent.push(RowResult {
            line: row.line,
            email: row.email.clone(),
            status: outcome.code(),
            outcome: outcome.message,
        });
    }
    let created = sent.iter().filter(|r| r.invited()).count();
    if created > 0 {
        state.outbox_wakeup.notify_one();
        for _ in 0..created {
            Metrics::count(&state.metrics.invitations_created);
        }
    }
    Ok(in_line_order(rows, sent))
}

/// A valid roster row as the core takes it.
fn request(row: &RosterRow, projects: &[ProjectId]) -> BulkRow {
    let email = EmailAddress::parse(&row.email).map_err(|e| e.to_string())?;
    let first = PersonName::parse(&row.first_name, "first_name").map_err(|e| e.to_string())?;
    let last = PersonName::parse(&row.last_name, "last_name").map_err(|e| e.to_string())?;
    let language = Some(row.language.as_str())
        .filter(|l| !l.is_empty())
        .map(|l| Language::parse(l, "language"))
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok(ValidInvitation::new(email, first, last, projects.iter().copied()).with_language(language))
}
