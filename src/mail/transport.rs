//! Where messages go: an SMTP relay (connections kept open and reused), or `.eml` files in a
//! folder when no relay is configured.
//!
//! The relay's connections are pooled here rather than by lettre's `AsyncSmtpTransport`, for one
//! reason: lettre opens its sockets without `TCP_NODELAY` and writes a message's body and its
//! closing `.` in two writes. Nagle's algorithm then holds the `.` back until the relay
//! acknowledges the body, and a relay delays that acknowledgement by up to 40 ms: every message
//! took 40 ms per connection, 180 emails/s at most with 8 connections (see BENCHMARKS.md). On our
//! own socket the `.` goes out at once. lettre still speaks the protocol (EHLO, STARTTLS, AUTH,
//! MAIL/RCPT/DATA, reply codes).
//!
//! Up to `CBH_SMTP_CONNECTIONS` sessions are open at once. A relay that is unavailable (refuses
//! or drops connections, answers 421) pauses every send of the node (`pacing::RelayBackoff`).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use lettre::Message;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::pacing::{Admission, RelayBackoff};
use crate::config::{DeliverySettings, Settings, SmtpSettings, SmtpTls};

/// A connection unused for this long is closed rather than reused: relays drop idle clients.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub enum Transport {
    Smtp(Box<SmtpRelay>),
    Files(PathBuf),
}

/// Why a send failed, sorted by what the worker should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying later: connection refused, timeouts, 4xx replies.
    #[error("{0}")]
    Temporary(String),
    /// Will never succeed: 5xx replies, a message that cannot be built.
    #[error("{0}")]
    Permanent(String),
}

impl From<lettre::transport::smtp::Error> for SendError {
    fn from(error: lettre::transport::smtp::Error) -> Self {
        if error.is_permanent() {
            SendError::Permanent(error.to_string())
        } else {
            SendError::Temporary(error.to_string())
        }
    }
}

/// One SMTP relay and the connections open to it.
pub struct SmtpRelay {
    host: String,
    port: u16,
    tls: SmtpTls,
    tls_parameters: Option<TlsParameters>,
    credentials: Option<Credentials>,
    /// Who logs in, for the operator's commands (never the password).
    user: Option<String>,
    hello: ClientId,
    /// For the start-up log: where, how, and as whom (never the password).
    description: String,
    /// Open connections not in use, with the time each was last used.
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    /// `CBH_SMTP_CONNECTIONS`: sessions open at once (in use or idle).
    slots: Semaphore,
    /// The node's pause after the relay was unavailable (refused, 421).
    backoff: Mutex<RelayBackoff>,
    /// Bounds connecting (with its greeting, TLS and login) and each send, so a stalled server
    /// cannot hang a worker (`CBH_SMTP_TIMEOUT`).
    timeout: Duration,
}

impl SmtpRelay {
    fn new(settings: &SmtpSettings, delivery: &DeliverySettings) -> anyhow::Result<Self> {
        let tls_parameters = match settings.tls {
            SmtpTls::None => None,
            SmtpTls::StartTls | SmtpTls::Implicit => Some(tls_parameters(settings)?),
        };
        Ok(Self {
            host: settings.host.clone(),
            port: settings.port,
            tls: settings.tls,
            tls_parameters,
            credentials: settings
                .credentials
                .as_ref()
                .map(|(user, password)| Credentials::new(user.clone(), password.clone())),
            user: settings.credentials.as_ref().map(|(user, _)| user.clone()),
            hello: ClientId::default(),
            description: settings.describe(),
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(delivery.smtp_connections),
            backoff: Mutex::new(RelayBackoff::new(delivery)),
            timeout: delivery.smtp_timeout,
        })
    }

    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| SendError::Temporary("the SMTP transport is shut down".into()))?;
        // The worker starts no send during a pause; one that was on its way when the pause
        // began does not knock on the relay either.
        if let Admission::Paused(left) = self.admission() {
            return Err(SendError::Temporary(format!(
                "not tried: the SMTP server {}:{} was unavailable, delivery resumes in {}s",
                self.host,
                self.port,
                left.as_secs().max(1)
            )));
        }
        let (sent, unavailable) = self.exchange(message).await;
        let Ok(mut backoff) = self.backoff.lock() else {
            return sent;
        };
        if unavailable {
            if let Some(pause) = backoff.failed(Instant::now(), super::outbox::random_unit()) {
                let error = sent
                    .as_ref()
                    .err()
                    .map_or_else(String::new, ToString::to_string);
                tracing::warn!(
                    %error,
                    ?pause,
                    "the SMTP server is unavailable: this node pauses delivery"
                );
            }
        } else if backoff.answered() {
            tracing::info!("the SMTP server answers again: delivery resumes");
        }
        sent
    }

    /// Whether sends may start: the pause after the relay was unavailable.
    fn admission(&self) -> Admission {
        self.backoff
            .lock()
            .map_or(Admission::Open, |backoff| backoff.admission(Instant::now()))
    }

    /// Sends on an idle connection, or a new one; says whether the relay itself was unavailable
    /// (a connection refused or cut off before it answered, or a 421, "closing the channel"):
    /// then the whole node pauses rather than try again on every connection.
    async fn exchange(&self, message: &Message) -> (Result<(), SendError>, bool) {
        let envelope = message.envelope();
        let body = message.formatted();
        if let Some(mut conn) = self.reusable() {
            match tokio::time::timeout(self.timeout, conn.send(envelope, &body)).await {
                Ok(Ok(_)) => {
                    self.park(conn);
                    return (Ok(()), false);
                }
                Ok(Err(error)) if error.is_permanent() => {
                    self.park_or_close(conn).await;
                    return (Err(error.into()), false);
                }
                Ok(Err(error)) if says_unavailable(&error) => {
                    self.close(conn).await;
                    return (Err(error.into()), true);
                }
                // The relay may have closed the connection while it sat idle: try a new one,
                // as lettre's pool does after its NOOP check (which cost a round trip on
                // every message).
                _ => self.close(conn).await,
            }
        }
        let mut conn = match bounded(self.timeout, self.connect()).await {
            Ok(conn) => conn,
            Err(error @ SendError::Temporary(_)) => return (Err(error), true),
            Err(error) => return (Err(error), false),
        };
        match tokio::time::timeout(self.timeout, conn.send(envelope, &body)).await {
            Ok(Ok(_)) => {
                self.park_or_close(conn).await;
                (Ok(()), false)
            }
            Ok(Err(error)) if error.is_permanent() => {
                self.park_or_close(conn).await;
                (Err(error.into()), false)
            }
            // After a broken exchange the connection's state is unknown.
            Ok(Err(error)) => {
                let unavailable = says_unavailable(&error);
                self.close(conn).await;
                (Err(error.into()), unavailable)
            }
            // A stalled relay would stall the next message too.
            Err(_) => {
                self.close(conn).await;
                (Err(timed_out(self.timeout)), false)
            }
        }
    }

    /// Says goodbye, but never waits longer than the timeout for a stalled relay to answer.
    async fn close(&self, mut conn: AsyncSmtpConnection) {
        let _ = tokio::time::timeout(self.timeout, conn.abort()).await;
    }

    /// An idle connection that has not been idle too long; the stale ones are dropped.
    fn reusable(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().ok()?;
        while let Some((conn, since)) = idle.pop() {
            if since.elapsed() < IDLE_TIMEOUT {
                return Some(conn);
            }
            drop(conn);
        }
        None
    }

    fn park(&self, conn: AsyncSmtpConnection) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push((conn, Instant::now()));
        }
    }

    async fn park_or_close(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            self.close(conn).await;
        } else {
            self.park(conn);
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let mut conn = match (&self.tls, &self.tls_parameters) {
            // lettre offers no way to hand it a TLS stream of our own, so a connection that is
            // TLS from the first byte is opened by lettre, without TCP_NODELAY.
            (SmtpTls::Implicit, Some(parameters)) => {
                AsyncSmtpConnection::connect_tokio1(
                    (self.host.as_str(), self.port),
                    Some(self.timeout),
                    &self.hello,
                    Some(parameters.clone()),
                    None,
                )
                .await?
            }
            _ => {
                let unreachable = |e: std::io::Error| {
                    SendError::Temporary(format!(
                        "connecting to the SMTP server {}:{}: {e}",
                        self.host, self.port
                    ))
                };
                let stream = TcpStream::connect((self.host.as_str(), self.port))
                    .await
                    .map_err(unreachable)?;
                stream.set_nodelay(true).map_err(unreachable)?;
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello).await?
            }
        };
        if let (SmtpTls::StartTls, Some(parameters)) = (&self.tls, &self.tls_parameters) {
            // Required, never opportunistic: a relay that does not offer it is an error, and
            // nothing is sent in plain text.
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(SendError::Temporary(format!(
                    "the SMTP server {}:{} does not offer STARTTLS, which CBH_SMTP_URL requires \
                     (tls=starttls): nothing was sent",
                    self.host, self.port
                )));
            }
            conn.starttls(parameters.clone(), &self.hello).await?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(conn)
    }
}

/// Rustls (ring) with Mozilla's roots, plus the certificates of `CBH_SMTP_CA_FILE` when set:
/// those are trusted for the relay only. The name checked is the host of `CBH_SMTP_URL`.
fn tls_parameters(settings: &SmtpSettings) -> anyhow::Result<TlsParameters> {
    let mut builder = TlsParameters::builder(settings.host.clone());
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path).with_context(|| {
            format!(
                "CBH_SMTP_CA_FILE (--smtp-ca-file): cannot read {}",
                path.display()
            )
        })?;
        let certificates = Certificate::from_pem(&pem)
            .ok()
            .filter(|_| String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----"))
            .with_context(|| {
                format!(
                    "CBH_SMTP_CA_FILE (--smtp-ca-file): {} holds no PEM certificate",
                    path.display()
                )
            })?;
        builder = builder.add_root_certificate(certificates);
    }
    builder.build_rustls().with_context(|| {
        format!(
            "setting up TLS for the SMTP server {}:{}",
            settings.host, settings.port
        )
    })
}

/// Runs one SMTP step under `timeout`.
async fn bounded<T, E: Into<SendError>>(
    timeout: Duration,
    step: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, SendError> {
    match tokio::time::timeout(timeout, step).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(timed_out(timeout)),
    }
}

fn timed_out(timeout: Duration) -> SendError {
    SendError::Temporary(format!("the SMTP server did not answer within {timeout:?}"))
}

/// 421: the relay is closing the channel (overloaded, shutting down, throttling this client),
/// whatever the message.
fn says_unavailable(error: &lettre::transport::smtp::Error) -> bool {
    error.status().is_some_and(|code| u16::from(code) == 421)
}

impl Transport {
    /// The transport the settings name: the relay of `CBH_SMTP_URL`, or the mail folder.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        match &settings.smtp {
            Some(smtp) => Self::smtp(smtp, &settings.delivery),
            None => Self::files(settings.mail_dir.clone()),
        }
    }

    pub fn smtp(settings: &SmtpSettings, delivery: &DeliverySettings) -> anyhow::Result<Self> {
        Ok(Self::Smtp(Box::new(SmtpRelay::new(settings, delivery)?)))
    }

    /// Whether the worker may start sends: the relay's pause after it was unavailable (a
    /// folder is always open).
    pub fn admission(&self) -> Admission {
        match self {
            Transport::Smtp(relay) => relay.admission(),
            Transport::Files(_) => Admission::Open,
        }
    }

    pub fn files(dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the mail folder {}", dir.display()))?;
        Ok(Self::Files(dir))
    }

    /// A one-line description for the start-up log.
    pub fn describe(&self) -> String {
        match self {
            Transport::Smtp(relay) => relay.description.clone(),
            Transport::Files(dir) => format!(
                "no CBH_SMTP_URL set: mail is written as .eml files to {}",
                dir.display()
            ),
        }
    }

    /// `file_stem` names the .eml file when writing to a folder (it must be unique per message).
    pub async fn send(&self, message: &Message, file_stem: &str) -> Result<(), SendError> {
        match self {
            Transport::Smtp(relay) => relay.send(message).await,
            Transport::Files(dir) => {
                let path = dir.join(format!("{file_stem}.eml"));
                let partial = dir.join(format!(".{file_stem}.eml.partial"));
                // Written aside and renamed, so a reader never sees half a message.
                let write = async {
                    tokio::fs::write(&partial, message.formatted()).await?;
                    tokio::fs::rename(&partial, &path).await
                };
                write
                    .await
                    .map_err(|e| SendError::Temporary(format!("writing {}: {e}", path.display())))
            }
        }
    }
}

// For the operator's commands (`cbh-invite check`, `cbh-invite mail test`): each opens a
// connection of its own, as a send would, and closes it.
impl SmtpRelay {
    async fn probe(&self) -> Result<String, SendError> {
        let conn = bounded(self.timeout, self.connect()).await?;
        let server = conn.server_info().name().to_owned();
        self.close(conn).await;
        let login = match &self.user {
            Some(user) => format!(", logged in as {user}"),
            None => String::new(),
        };
        let tls = match self.tls {
            SmtpTls::None => "",
            SmtpTls::StartTls => ", STARTTLS done",
            SmtpTls::Implicit => ", over TLS",
        };
        Ok(format!(
            "{}:{} answered EHLO as {server}{tls}{login}",
            self.host, self.port
        ))
    }

    async fn send_now(&self, message: &Message) -> Result<String, SendError> {
        let mut conn = bounded(self.timeout, self.connect()).await?;
        let sent = bounded(
            self.timeout,
            conn.send(message.envelope(), &message.formatted()),
        )
        .await;
        self.close(conn).await;
        let reply = sent?;
        Ok(format!(
            "{} {}",
            reply.code(),
            reply.message().collect::<Vec<_>>().join(" ")
        ))
    }
}

impl Transport {
    /// Talks to the relay as a send would (connect, EHLO, STARTTLS and AUTH as configured) and
    /// leaves without sending; for the mail folder, writes and removes a file. Says what it
    /// checked.
    pub async fn probe(&self) -> Result<String, SendError> {
        match self {
            Transport::Smtp(relay) => relay.probe().await,
            Transport::Files(dir) => {
                let path = dir.join(".cbh-invite-check");
                let written = tokio::fs::write(&path, b"check").await;
                let _ = tokio::fs::remove_file(&path).await;
                written
                    .map(|()| format!("the mail folder {} is writable", dir.display()))
                    .map_err(|e| {
                        SendError::Temporary(format!(
                            "the mail folder {} is not writable: {e}",
                            dir.display()
                        ))
                    })
            }
        }
    }

    /// Sends one message now, on a connection of its own, and returns the relay's reply (or
    /// where the file went).
    pub async fn send_now(&self, message: &Message, file_stem: &str) -> Result<String, SendError> {
        match self {
            Transport::Smtp(relay) => relay.send_now(message).await,
            Transport::Files(dir) => {
                self.send(message, file_stem).await?;
                Ok(format!(
                    "written to {}",
                    dir.join(format!("{file_stem}.eml")).display()
                ))
            }
        }
    }
}
