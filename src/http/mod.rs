//! The HTTP layer: ChemBio Hub's Tastypie-style JSON API and the web pages of the invitation
//! journey (`pages/`). Each resource module owns its `router()`; this module assembles them
//! with the middleware every response goes through.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::Limits;
use crate::store::{AuditEvent, Store};

pub mod context;
mod error;
pub mod extract;
mod forward_auth;
mod health;
pub mod invitations;
mod members;
pub mod metrics;
pub mod openapi;
mod overload;
mod pages;
mod projects;
pub mod resources;
pub mod server;
mod session;
mod users;
mod webhooks;

pub use error::ApiError;

/// What the HTTP layer needs to know of the settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub namespaces: Vec<String>,
    /// Base of every link we hand out; never taken from a request header.
    pub public_url: String,
    /// Where the accept page sends a person once active (`None`: the welcome page).
    pub app_url: Option<String>,
    /// Names and scope of the session, CSRF and form cookies.
    pub cookies: crate::config::CookieSettings,
    pub invite_ttl: Duration,
    /// `CBH_INVITE_TTL_MAX` and the domain rules.
    pub invite_rules: crate::config::InviteRules,
    /// `CBH_LINK_SHARING`: who may take an accept link from the API.
    pub link_sharing: crate::config::LinkSharing,
    pub debug: bool,
    pub limits: Limits,
    /// How long a request body may take to arrive (`CBH_HTTP_BODY_TIMEOUT`).
    pub body_timeout: Duration,
    /// Whether `/metrics` is served with the API (no `CBH_METRICS_LISTEN`).
    pub metrics_public: bool,
    /// `CBH_WEBHOOK_ALLOW_PRIVATE`: endpoints on loopback or private addresses are accepted.
    pub webhook_allow_private: bool,
    /// The sender's domain (`CBH_MAIL_FROM`, or the public URL's host): the domain part of the
    /// Message-IDs we generate, as DKIM and DMARC align on it.
    pub mail_domain: String,
    /// `CBH_DEFAULT_LANGUAGE`: one of the catalogs' languages.
    pub default_language: String,
}

impl HttpConfig {
    pub fn serves(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|ns| ns == namespace)
    }

    /// Cookies get `Secure` when the service is published over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// The domain part of the Message-IDs we generate.
    pub fn mail_domain(&self) -> String {
        self.mail_domain.clone()
    }
}

/// The host of a public URL when it can be a mail domain, else `cbh-invite.localhost`.
pub fn host_domain(public_url: &str) -> String {
    url::Url::parse(public_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .filter(|h| h.contains('.') && !h.starts_with('['))
        .unwrap_or_else(|| "cbh-invite.localhost".into())
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<HttpConfig>,
    /// Wakes the outbox worker when a request has queued an email.
    pub outbox_wakeup: Arc<Notify>,
    pub metrics: Arc<metrics::Metrics>,
    /// This node's delivery counters, kept by its outbox worker.
    pub delivery: Arc<crate::mail::outbox::DeliveryCounters>,
    /// This node's webhook counters, kept by its webhook worker.
    pub webhook_delivery: Arc<crate::deliver::webhooks::WebhookCounters>,
    pub password_work: Arc<PasswordWork>,
    /// One permit per request being handled (`CBH_HTTP_MAX_IN_FLIGHT`).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// The message catalogs (`CBH_TEMPLATE_DIR/locales` over the built-in ones).
    pub catalogs: Arc<crate::i18n::Catalogs>,
}

/// Where argon2 runs: on threads of its own, one per two cores, never on the runtime's.
///
/// Each hash takes tens of milliseconds and 19 MiB by design. On tokio's blocking pool a burst
/// of logins would start up to 512 threads holding 19 MiB each and take every core from the
/// requests; here logins queue for a bounded number of threads. These threads also run at a
/// lower priority (5 nice levels below the process, on Linux): when the cores are busy, the
/// threads that answer requests and commit invitations get about three times their share, so a
/// login costs the API little more than its CPU time (BENCHMARKS.md: POST throughput with 10
/// logins/s beside it), while logins still get a quarter of a busy core (at nice 10 they waited
/// seconds).
///
/// The queue in front of the threads is bounded too (`QUEUED_PER_THREAD` jobs per thread): a
/// burst of logins beyond it is answered 503 at once, before any hashing, instead of waiting
/// behind minutes of work while holding connections and memory.
pub struct PasswordWork {
    jobs: std::sync::mpsc::SyncSender<PasswordJob>,
}

type PasswordJob = Box<dyn FnOnce() + Send>;

/// Jobs waiting per hashing thread: a few hashes' time (tens of milliseconds each) of waiting.
const QUEUED_PER_THREAD: usize = 4;

/// The password work queue was full: the request is refused before any hashing.
#[derive(Debug, thiserror::Error)]
#[error("too many logins are being checked right now, try again shortly")]
pub struct PasswordWorkBusy;

impl PasswordWork {
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let threads = cores.div_ceil(2);
        let (jobs, queue) =
            std::sync::mpsc::sync_channel::<PasswordJob>(threads * QUEUED_PER_THREAD);
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for _ in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name("password-hash".into())
                .spawn(move || {
                    lower_this_threads_priority();
                    // Ends when the sender is dropped with the application.
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            // A panic loses that job's answer (its caller gets an error), not
                            // the thread.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => return,
                        }
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a password hashing thread");
            }
        }
        Self { jobs }
    }

    /// Runs `work` on a hashing thread. When the queue is full the error is a
    /// `PasswordWorkBusy`, which the error types answer as 503 with `Retry-After`.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        use anyhow::Context;
        let (done, result) = tokio::sync::oneshot::channel();
        let job: PasswordJob = Box::new(move || {
            let _ = done.send(work());
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(_)) => return Err(PasswordWorkBusy.into()),
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                anyhow::bail!("password hashing has stopped")
            }
        }
        result.await.context("password hashing failed")
    }
}

fn lower_this_threads_priority() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: nice changes a scheduling attribute, of the calling thread only on Linux. A
    // failure leaves the priority as it was.
    unsafe {
        libc::nice(5);
    }
}

/// The whole API and the web pages.
pub fn router(state: AppState) -> Router {
    with_middleware(
        Router::new()
            .merge(invitations::router())
            .merge(session::router())
            .merge(forward_auth::router())
            .merge(projects::router())
            .merge(webhooks::router())
            .merge(members::router())
            .merge(users::router())
            .merge(health::router())
            .merge(openapi::router())
            .merge(pages::router(&state)),
        state,
    )
}

/// Only the health probes, for worker-only nodes.
pub fn health_router(state: AppState) -> Router {
    with_middleware(health::router(), state)
}

/// Only `/metrics`, for the separate address of `CBH_METRICS_LISTEN`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(metrics::render))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            context::middleware,
        ))
        .with_state(state)
}

fn with_middleware(routes: Router<AppState>, state: AppState) -> Router {
    // With a metrics address of its own, `/metrics` is not on the public one.
    let routes = if state.config.metrics_public {
        routes.route("/metrics", axum::routing::get(metrics::render))
    } else {
        routes
    };
    let routes = routes
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(|_panic| {
            ApiError::Internal(anyhow::anyhow!("a request handler panicked")).into_response()
        }))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            overload::body_deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            overload::cap_in_flight,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            context::middleware,
        ))
        .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(security_header(header::REFERRER_POLICY, "no-referrer"))
        .layer(security_header(header::CACHE_CONTROL, "no-store"));
    // Published over https: browsers are told to never try plain http for a year.
    let routes = if state.config.secure_cookies() {
        routes.layer(security_header(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000",
        ))
    } else {
        routes
    };
    routes.with_state(state)
}

fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

/// Records a security event done by `caller`. A failure to record is logged, not returned: the
/// action it describes has already happened.
pub(crate) async fn audit(
    state: &AppState,
    caller: &extract::Caller,
    event: &'static str,
    subject: Option<String>,
) {
    record(
        state,
        AuditEvent {
            namespace: caller.namespace.clone(),
            at: crate::domain::Timestamp::now(),
            event,
            actor: Some(caller.user.id),
            subject,
            client_ip: caller.client_ip.clone(),
            detail: None,
        },
    )
    .await;
}

pub(crate) async fn record(state: &AppState, event: AuditEvent) {
    let name = event.event;
    if let Err(error) = state.store.record_audit(event).await {
        tracing::error!(
            event = name,
            error = format!("{error:#}"),
            "cannot write the audit log"
        );
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

/// A known route with another method: 405, unless the namespace is unknown (then 404).
async fn method_not_allowed(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
) -> Response {
    let namespace = request
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    if !namespace.is_empty()
        && !state.config.serves(namespace)
        && namespace != "healthz"
        && namespace != "readyz"
    {
        return ApiError::not_found().into_response();
    }
    ApiError::MethodNotAllowed.into_response()
}
