//! `spawn_app(backend)`: the real application on a random port, with a fresh database (a SQLite
//! file in a temporary folder, or a PostgreSQL database of its own) and its own real SMTP server
//! on loopback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cbh_invite::config::{
    DatabaseUrl, DeliverySettings, HttpServerSettings, Limits, PoolSettings, RetentionSettings,
    ServeRole, Settings, SmtpSettings, SmtpTls, WebhookSettings,
};
use cbh_invite::domain::{
    EmailAddress, PersonName, ProjectId, Role, Timestamp, Token, User, password,
};
use cbh_invite::mail::Outbox;
use cbh_invite::startup::{Application, SetupLink};
use cbh_invite::store::{self, NewUser, Store, UserCredentials};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::agent::{self, Agent, json_with_status};
use crate::support::log;
use crate::support::postgres::TestDatabase;
use crate::support::smtp::{ReceivedMail, SmtpServer};

pub const NS: &str = "chembiohub";

/// The storage backend a test runs on. Most tests run on both (`backend_tests!`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub base: String,
    /// `http://` and the address of `CBH_METRICS_LISTEN`, when set.
    pub metrics_base: Option<String>,
    pub public_url: String,
    pub store: Arc<dyn Store>,
    pub outbox: Arc<Outbox>,
    pub smtp: SmtpServer,
    pub settings: Settings,
    /// First-run setup URLs issued at the last start (namespaces that had no user).
    pub setup_links: Vec<SetupLink>,
    /// Holds the database and mail folder until the app is dropped.
    _dir: tempfile::TempDir,
    /// The PostgreSQL database of this test, dropped after the app.
    _database: Option<TestDatabase>,
    server: Option<ServerHandle>,
}

pub fn test_settings(database: DatabaseUrl, dir: &std::path::Path, smtp_port: u16) -> Settings {
    Settings {
        database,
        pool: PoolSettings::default(),
        // The load tests send hundreds of invitations from one inviter; the limit's own tests
        // set it.
        limits: Limits {
            invitations_per_inviter: None,
            ..Limits::default()
        },
        http: HttpServerSettings::default(),
        role: ServeRole::All,
        listen: "127.0.0.1:0".parse().expect("address"),
        metrics_listen: None,
        namespaces: vec![NS.into(), "other".into()],
        public_url: Some("http://invite.test.example".into()),
        app_url: None,
        cookies: cbh_invite::config::CookieSettings::default(),
        smtp: Some(SmtpSettings {
            host: "127.0.0.1".into(),
            port: smtp_port,
            tls: SmtpTls::None,
            credentials: None,
            ca_file: None,
        }),
        mail_from: None,
        dkim: None,
        mail_dir: dir.join("mail"),
        invite_ttl: Duration::from_secs(7 * 86_400),
        // The reminder tests set their own schedule; the others see no reminder.
        reminders: Vec::new(),
        invite_rules: cbh_invite::config::InviteRules::default(),
        link_sharing: Default::default(),
        template_dir: None,
        default_language: "en".into(),
        debug: false,
        delivery: DeliverySettings {
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(1),
            poll_interval: Duration::from_millis(200),
            ..DeliverySettings::default()
        },
        retention: RetentionSettings::default(),
        // The tests' receivers listen on loopback.
        webhooks: WebhookSettings {
            timeout: Duration::from_secs(2),
            allow_private: true,
        },
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with_sink(backend, smtp_sink::Options::default(), configure).await
}

/// `spawn_app_with`, its SMTP server started with `sink` (TLS, AUTH).
pub async fn spawn_app_with_sink(
    backend: Backend,
    sink: smtp_sink::Options,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    log::init();
    let dir = tempfile::tempdir().expect("temp dir");
    let smtp = SmtpServer::start_with(sink).await;
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TestDatabase::create().await),
    };
    let url = match &database {
        None => DatabaseUrl::Sqlite(dir.path().join("test.db")),
        Some(db) => DatabaseUrl::Postgres(db.url.clone()),
    };
    let mut settings = test_settings(url, dir.path(), smtp.port);
    configure(&mut settings);
    let store = store::connect(&settings.database, &settings.pool)
        .await
        .expect("store");
    let running = launch(&settings, &store).await;
    TestApp {
        base: running.base,
        metrics_base: running.metrics_base,
        public_url: running.public_url,
        outbox: running.outbox,
        setup_links: running.setup_links,
        server: Some(running.server),
        store,
        smtp,
        settings,
        _dir: dir,
        _database: database,
    }
}

type ServerHandle = (oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>);

struct Running {
    base: String,
    metrics_base: Option<String>,
    public_url: String,
    outbox: Arc<Outbox>,
    setup_links: Vec<SetupLink>,
    server: ServerHandle,
}

async fn launch(settings: &Settings, store: &Arc<dyn Store>) -> Running {
    let app = Application::build_with_store(settings.clone(), store.clone())
        .await
        .expect("application builds");
    let address: SocketAddr = app.address();
    let metrics_address = app.metrics_address();
    let public_url = app.public_url().to_owned();
    let outbox = app.outbox();
    let setup_links = app.setup_links().to_vec();
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    Running {
        base: format!("http://{address}"),
        metrics_base: metrics_address.map(|a| format!("http://{a}")),
        public_url,
        outbox,
        setup_links,
        server: (stop, handle),
    }
}

/// Another node on the same database and SMTP server.
pub struct Node {
    pub base: String,
    server: Option<ServerHandle>,
}

impl Node {
    /// Graceful stop, as on SIGTERM.
    pub async fn stop(&mut self) {
        if let Some((stop, handle)) = self.server.take() {
            let _ = stop.send(());
            handle
                .await
                .expect("server task")
                .expect("node stops cleanly");
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.server.take() {
            let _ = stop.send(());
            handle.abort();
        }
    }
}

impl TestApp {
    /// Starts another node on this app's database and SMTP server.
    pub async fn add_node(&self, configure: impl FnOnce(&mut Settings)) -> Node {
        let mut settings = self.settings.clone();
        configure(&mut settings);
        let store = store::connect(&settings.database, &settings.pool)
            .await
            .expect("store");
        let running = launch(&settings, &store).await;
        Node {
            base: running.base,
            server: Some(running.server),
        }
    }

    /// An agent like `agent`, talking to another node.
    pub fn agent_for(&self, agent: &Agent, base: &str) -> Agent {
        Agent {
            client: agent.client.clone(),
            base: base.to_owned(),
            headers: agent.headers.clone(),
        }
    }

    /// Starts the application again on the same database and settings (after `stop`).
    pub async fn restart(&mut self) {
        self.stop().await;
        let running = launch(&self.settings, &self.store).await;
        self.base = running.base;
        self.metrics_base = running.metrics_base;
        self.public_url = running.public_url;
        self.outbox = running.outbox;
        self.setup_links = running.setup_links;
        self.server = Some(running.server);
    }

    /// Graceful stop, as on SIGTERM.
    pub async fn stop(&mut self) {
        if let Some((stop, handle)) = self.server.take() {
            let _ = stop.send(());
            handle
                .await
                .expect("server task")
                .expect("server stops cleanly");
        }
    }

    pub async fn add_user(&self, email: &str, first: &str, last: &str, superuser: bool) -> User {
        let hash = tokio::task::spawn_blocking(|| password::hash(PASSWORD))
            .await
            .expect("join")
            .expect("hash");
        self.store
            .create_user(
                NS,
                NewUser {
                    email: EmailAddress::parse(email).expect("email"),
                    first_name: PersonName::parse(first, "first").expect("name"),
                    last_name: PersonName::parse(last, "last").expect("name"),
                    password_hash: Some(hash),
                    is_superuser: superuser,
                },
            )
            .await
            .expect("user created")
    }

    pub async fn add_project(&self, name: &str) -> ProjectId {
        self.add_project_in(NS, name).await
    }

    pub async fn add_project_in(&self, ns: &str, name: &str) -> ProjectId {
        self.store
            .create_project(ns, name, Timestamp::now())
            .await
            .expect("project")
            .id
    }

    pub async fn grant(&self, user: &User, project: ProjectId, role: Role) {
        self.store
            .grant(user.id, project, role)
            .await
            .expect("grant");
    }

    /// An editor of a fresh project, authenticated with an API key.
    pub async fn editor_with_project(&self) -> (Agent, ProjectId) {
        let editor = self
            .add_user("ada@lab.example", "Ada", "Lovelace", false)
            .await;
        let project = self.add_project("Kinase screen").await;
        self.grant(&editor, project, Role::Editor).await;
        (self.api_key_agent(&editor).await, project)
    }

    pub async fn api_key_agent(&self, user: &User) -> Agent {
        let key = Token::generate();
        self.store
            .create_api_key(user.id, &key.hash(), Timestamp::now())
            .await
            .expect("api key");
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("ApiKey {}:{}", user.email, key.expose()))
                .expect("header"),
        );
        Agent {
            client: agent::client(),
            base: self.base.clone(),
            headers,
        }
    }

    pub fn anonymous(&self) -> Agent {
        Agent {
            client: agent::client(),
            base: self.base.clone(),
            headers: HeaderMap::new(),
        }
    }

    /// Logs in through the API; the agent keeps the cookies and sends the CSRF header.
    pub async fn login(&self, email: &str, password: &str) -> Agent {
        let mut agent = Agent {
            client: agent::client_builder()
                .cookie_store(true)
                .build()
                .expect("client"),
            base: self.base.clone(),
            headers: HeaderMap::new(),
        };
        let response = agent
            .post(
                &format!("/{NS}/api/session/"),
                &json!({"username": email, "password": password}),
            )
            .await;
        if response.status() != 200 {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            panic!("login of {email} failed: {status} {body}");
        }
        let csrf = response
            .cookies()
            .find(|c| c.name() == format!("{NS}csrftoken"))
            .expect("the CSRF cookie")
            .value()
            .to_owned();
        agent
            .headers
            .insert("x-csrftoken", HeaderValue::from_str(&csrf).expect("header"));
        agent
    }

    /// Accepts an invitation through the API.
    pub async fn accept(&self, token: &str, password: &str) -> reqwest::Response {
        self.anonymous()
            .post(
                &format!("/{NS}/api/invitations/accept/"),
                &json!({"token": token, "password": password}),
            )
            .await
    }

    pub async fn invitation(&self, agent: &Agent, id: i64) -> Value {
        let response = agent.get(&format!("/{NS}/api/invitations/{id}/")).await;
        assert_eq!(response.status(), 200);
        response.json().await.expect("json")
    }

    /// Polls an invitation until `check` holds, or panics after `timeout`.
    pub async fn wait_for_invitation(
        &self,
        agent: &Agent,
        id: i64,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let invitation = self.invitation(agent, id).await;
            if check(&invitation) {
                return invitation;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "invitation {id} never reached the expected state: {invitation:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The user `email` of the namespace `NS`, with their credentials; panics when there is none.
    pub async fn user_by_email(&self, email: &str) -> UserCredentials {
        self.find_user(NS, email)
            .await
            .unwrap_or_else(|| panic!("no user {email} in {NS}"))
    }

    /// The user `email` of the namespace `ns`, if there is one.
    pub async fn find_user(&self, ns: &str, email: &str) -> Option<UserCredentials> {
        self.store
            .user_by_email(ns, &EmailAddress::parse(email).expect("email"))
            .await
            .expect("store")
    }

    /// How many invitations the namespace `NS` holds, read from the store (not the API).
    pub async fn count_invitations(&self) -> i64 {
        self.store
            .list_invitations(NS, &Default::default(), Timestamp::now())
            .await
            .expect("store")
            .total_count
    }

    /// The subjects of the audit records of `event`, oldest first (read from the store).
    pub async fn audit_subjects(&self, event: &str) -> Vec<String> {
        self.store
            .audit_since(Timestamp(0), 10_000)
            .await
            .expect("audit")
            .into_iter()
            .filter(|r| r.event == event)
            .map(|r| r.subject.unwrap_or_default())
            .collect()
    }

    /// Invites through `agent` (which must answer 201) and waits for that invitation's email;
    /// returns the invitation and the email. For tests that send one email at a time.
    pub async fn invite_and_wait_for_mail(
        &self,
        agent: &Agent,
        body: Value,
        timeout: Duration,
    ) -> (Value, ReceivedMail) {
        let before = self.smtp.received_count();
        let created = json_with_status(agent.invite(body).await, 201).await;
        let mail = self
            .smtp
            .wait_for(before + 1, timeout)
            .await
            .swap_remove(before);
        (created, mail)
    }

    /// A link the service handed out (in an email or the log), made to reach this test's server:
    /// links start with the configured public URL, which does not resolve here.
    pub fn local(&self, link: &str) -> String {
        match link.strip_prefix(&self.public_url) {
            Some(path) => format!("{}{path}", self.base),
            None => panic!("{link} does not start with {}", self.public_url),
        }
    }

    /// The first-run setup URL of namespace `ns`, made local.
    pub fn setup_url(&self, ns: &str) -> String {
        let link = self
            .setup_links
            .iter()
            .find(|link| link.namespace == ns)
            .unwrap_or_else(|| panic!("no setup link was issued for {ns}"));
        self.local(&link.url)
    }

    /// The SQLite file (for the tests that look inside it).
    pub fn db_path(&self) -> PathBuf {
        match &self.settings.database {
            DatabaseUrl::Sqlite(path) => path.clone(),
            DatabaseUrl::Postgres(_) => panic!("db_path is for SQLite tests"),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.server.take() {
            let _ = stop.send(());
            handle.abort();
        }
    }
}
