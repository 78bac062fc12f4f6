//! Builds the application from its settings: the store, the mailer, the HTTP router on a bound
//! socket, the outbox worker and the janitor (`maintenance`), run side by side until a shutdown
//! signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use lettre::message::Mailbox;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::config::{HttpServerSettings, ServeRole, Settings};
use crate::deliver::WebhookWorker;
use crate::domain::{Timestamp, Token};
use crate::http::{self, AppState, HttpConfig, PasswordWork};
use crate::i18n::Catalogs;
use crate::mail::{Outbox, Reminders, Signer, Templates, Transport};
use crate::maintenance::{self, Retention};
use crate::store::{self, Store};

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    /// `CBH_METRICS_LISTEN`: `/metrics` alone, on an address of its own.
    metrics_listener: Option<TcpListener>,
    state: AppState,
    outbox: Arc<Outbox>,
    reminders: Arc<Reminders>,
    webhooks: Arc<WebhookWorker>,
    role: ServeRole,
    http: HttpServerSettings,
    shutdown_grace: std::time::Duration,
    transport_description: String,
    setup_links: Vec<SetupLink>,
    retention: Retention,
}

/// The one-time URL where the first superuser of a namespace without users is created.
#[derive(Clone)]
pub struct SetupLink {
    pub namespace: String,
    pub url: String,
}

/// The message catalogs (built in, and `CBH_TEMPLATE_DIR/locales` over them), with a check
/// that `CBH_DEFAULT_LANGUAGE` is one of their languages.
pub fn load_catalogs(settings: &Settings) -> anyhow::Result<Arc<Catalogs>> {
    let catalogs = Catalogs::load(settings.template_dir.as_deref())
        .context("CBH_TEMPLATE_DIR (--template-dir): the message catalogs do not load")?;
    let languages = catalogs.languages();
    if !languages.contains(&settings.default_language) {
        anyhow::bail!(
            "CBH_DEFAULT_LANGUAGE (--default-language): there is no catalog for '{}' (available: {})",
            settings.default_language,
            languages.join(", ")
        );
    }
    Ok(Arc::new(catalogs))
}

/// The email templates (built in, and `CBH_TEMPLATE_DIR` over them), each checked in every
/// language of `catalogs`.
pub fn load_templates(settings: &Settings, catalogs: &Arc<Catalogs>) -> anyhow::Result<Templates> {
    Templates::load(
        settings.template_dir.as_deref(),
        catalogs.clone(),
        &settings.default_language,
    )
    .context("CBH_TEMPLATE_DIR (--template-dir): templates do not load")
}

/// How long a first-run setup link works; a restart prints a new one.
const SETUP_LINK_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl Application {
    /// Opens (and migrates) the database, then builds everything else.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let store = store::connect(&settings.database, &settings.pool).await?;
        Self::build_with_store(settings, store).await
    }

    pub async fn build_with_store(
        settings: Settings,
        store: Arc<dyn Store>,
    ) -> anyhow::Result<Self> {
        let catalogs = load_catalogs(&settings)?;
        let templates = load_templates(&settings, &catalogs)?;
        let transport = Transport::from_settings(&settings)?;
        let signer = settings.dkim.as_ref().map(Signer::new).transpose()?;
        let listener = TcpListener::bind(settings.listen).await.with_context(|| {
            format!(
                "CBH_LISTEN (--listen): cannot listen on {}",
                settings.listen
            )
        })?;
        let address = listener.local_addr()?;
        let metrics_listener = match settings.metrics_listen {
            Some(metrics) => Some(TcpListener::bind(metrics).await.with_context(|| {
                format!("CBH_METRICS_LISTEN (--metrics-listen): cannot listen on {metrics}")
            })?),
            None => None,
        };
        let public_url = settings
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}"));
        let from = match &settings.mail_from {
            Some(from) => from.clone(),
            None => format!("ChemBio Hub <noreply@{}>", http::host_domain(&public_url))
                .parse::<Mailbox>()
                .context("building the default sender address")?,
        };
        let config = HttpConfig {
            mail_domain: from.email.domain().to_owned(),
            namespaces: settings.namespaces.clone(),
            public_url: public_url.clone(),
            app_url: settings.app_url.clone(),
            cookies: settings.cookies.clone(),
            invite_ttl: settings.invite_ttl,
            invite_rules: settings.invite_rules.clone(),
            link_sharing: settings.link_sharing,
            limits: settings.limits,
            debug: settings.debug,
            body_timeout: settings.http.body_timeout,
            metrics_public: settings.metrics_listen.is_none(),
            webhook_allow_private: settings.webhooks.allow_private,
            default_language: settings.default_language.clone(),
        };
        let setup_links = if settings.role.serves_api() {
            issue_setup_links(store.as_ref(), &settings.namespaces, &public_url).await?
        } else {
            Vec::new()
        };
        let wakeup = Arc::new(Notify::new());
        let transport_description = transport.describe();
        let reminders = Arc::new(Reminders::new(
            store.clone(),
            settings.reminders.clone(),
            settings.limits.emails_per_recipient,
            from.email.domain().to_owned(),
            wakeup.clone(),
        ));
        let webhooks = Arc::new(WebhookWorker::new(
            store.clone(),
            settings.delivery.clone(),
            &settings.webhooks,
        )?);
        let outbox = Arc::new(
            Outbox::new(
                store.clone(),
                transport,
                templates,
                settings.delivery.clone(),
                public_url,
                from,
                wakeup.clone(),
            )
            .with_signer(signer),
        );
        Ok(Self {
            listener,
            address,
            metrics_listener,
            state: AppState {
                store,
                config: Arc::new(config),
                outbox_wakeup: wakeup,
                metrics: Arc::default(),
                delivery: outbox.counters(),
                webhook_delivery: webhooks.counters(),
                password_work: Arc::new(PasswordWork::for_this_machine()),
                in_flight: Arc::new(tokio::sync::Semaphore::new(settings.http.max_in_flight)),
                catalogs,
            },
            outbox,
            reminders,
            webhooks,
            role: settings.role,
            http: settings.http,
            shutdown_grace: settings.delivery.shutdown_grace,
            transport_description,
            setup_links,
            retention: Retention::new(settings.retention, &settings.limits),
        })
    }

    /// First-run setup URLs, one per namespace that has no user yet (they carry a secret).
    pub fn setup_links(&self) -> &[SetupLink] {
        &self.setup_links
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Where `/metrics` is served when `CBH_METRICS_LISTEN` is set.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn public_url(&self) -> &str {
        &self.state.config.public_url
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.state.store.clone()
    }

    /// The worker, for driving delivery by hand (`deliver_due`).
    pub fn outbox(&self) -> Arc<Outbox> {
        self.outbox.clone()
    }

    /// The reminder scan, for driving it by hand (`remind_due`).
    pub fn reminders(&self) -> Arc<Reminders> {
        self.reminders.clone()
    }

    /// The webhook worker, for driving delivery by hand (`deliver_due`).
    pub fn webhooks(&self) -> Arc<WebhookWorker> {
        self.webhooks.clone()
    }

    pub fn mail_description(&self) -> &str {
        &self.transport_description
    }

    /// Serves HTTP and runs the outbox worker until `shutdown` completes; then stops accepting,
    /// lets requests in flight finish, and gives the worker a bounded time to finish its sends.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_worker, stop_signal) = watch::channel(false);
        let stop_requested = stop_signal.clone();
        // Webhooks are sent by the nodes that send email, beside the outbox worker; a send in
        // flight at shutdown is retried after its lease, like an email's.
        let webhook_worker = self
            .role
            .delivers_mail()
            .then(|| AbortOnDrop(tokio::spawn(self.webhooks.clone().run(stop_signal.clone()))));
        // Reminders are queued by the nodes that send email, each claimed once (`ReminderStore`).
        let _reminders = (self.role.delivers_mail() && self.reminders.enabled()).then(|| {
            AbortOnDrop(tokio::spawn(
                self.reminders.clone().run(stop_signal.clone()),
            ))
        });
        let mut worker = self
            .role
            .delivers_mail()
            .then(|| tokio::spawn(self.outbox.clone().run(stop_signal)));
        // Every node runs one; on PostgreSQL only one of them prunes at a time. It is told to
        // stop with the worker, and cut off when this function ends (a cut-off run rolls back).
        let _janitor = AbortOnDrop(tokio::spawn(maintenance::run_janitor(
            self.state.store.clone(),
            self.retention,
            stop_requested.clone(),
        )));
        let metrics_server = self.metrics_listener.map(|listener| {
            let mut stop_seen = stop_requested.clone();
            tokio::spawn(http::server::serve(
                listener,
                http::metrics_router(self.state.clone()),
                self.http,
                async move {
                    let _ = stop_seen.wait_for(|stopping| *stopping).await;
                },
            ))
        });
        // Ends with this function, however it ends.
        let _metrics_server = metrics_server.map(AbortOnDrop);
        let router = if self.role.serves_api() {
            http::router(self.state)
        } else {
            http::health_router(self.state)
        };
        let stopping = async move {
            shutdown.await;
            tracing::info!("shutting down");
            let _ = stop_worker.send(true);
        };
        let mut server = tokio::spawn(http::server::serve(
            self.listener,
            router,
            self.http,
            stopping,
        ));
        let worker_ended = async {
            match worker.as_mut() {
                Some(handle) => handle.await,
                None => std::future::pending().await,
            }
        };
        // Once shutdown starts, requests in flight get `shutdown_grace` to finish.
        let grace = self.shutdown_grace;
        let mut stop_seen = stop_requested.clone();
        let grace_over = async move {
            let _ = stop_seen.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            served = &mut server => {
                served.context("HTTP server task")?.context("serving HTTP")?;
            }
            ended = worker_ended => {
                worker = None;
                ended.context("outbox worker task")?;
                if !*stop_requested.borrow() {
                    // The worker only ends when told to; ending early is worth a restart.
                    server.abort();
                    anyhow::bail!("the outbox worker stopped unexpectedly");
                }
                match tokio::time::timeout(grace, &mut server).await {
                    Ok(served) => served.context("HTTP server task")?.context("serving HTTP")?,
                    Err(_) => {
                        server.abort();
                        tracing::warn!(?grace, "requests still running after the grace period were cut off");
                    }
                }
            }
            () = grace_over => {
                server.abort();
                tracing::warn!(?grace, "requests still running after the grace period were cut off");
            }
        }
        if let Some(mut webhooks) = webhook_worker
            && tokio::time::timeout(self.shutdown_grace, &mut webhooks.0)
                .await
                .is_err()
        {
            tracing::warn!(
                "webhook worker did not finish in time; its sends are retried after their lease"
            );
        }
        if let Some(mut handle) = worker
            && tokio::time::timeout(self.shutdown_grace, &mut handle)
                .await
                .is_err()
        {
            handle.abort();
            tracing::warn!(
                grace = ?self.shutdown_grace,
                "outbox worker did not finish in time; its unsent messages are retried after their lease"
            );
        }
        Ok(())
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A namespace without users gets a fresh single-use setup token at each start (stored hashed),
/// so that the first superuser can be created in the browser. Each node that serves the pages
/// issues its own, and all of them stop working once the first user exists.
async fn issue_setup_links(
    store: &dyn Store,
    namespaces: &[String],
    public_url: &str,
) -> anyhow::Result<Vec<SetupLink>> {
    let mut links = Vec::new();
    for namespace in namespaces {
        let token = Token::generate();
        let now = Timestamp::now();
        let issued = store
            .issue_setup_token(namespace, &token.hash(), now, now.plus(SETUP_LINK_TTL))
            .await
            .with_context(|| format!("issuing the setup link of namespace {namespace}"))?;
        if issued {
            links.push(SetupLink {
                namespace: namespace.clone(),
                url: format!("{public_url}/{namespace}/setup/{}", token.expose()),
            });
        }
    }
    Ok(links)
}
