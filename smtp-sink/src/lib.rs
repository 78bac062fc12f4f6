//! A real SMTP server on loopback, run in-process: it speaks the protocol over TCP to the
//! service's real lettre transport. It can be slowed down, made to refuse, stopped and started
//! again on the same port, or greet every connection with 421 for a while; it counts its
//! connections, and the most that were open and the most messages answered at once. With a
//! certificate (`Options::tls`) it offers STARTTLS or speaks TLS from the first byte, and with
//! `Options::auth` it asks for AUTH PLAIN or LOGIN. Used by cbh-invite's tests and its benchmark.

pub use mail_parser;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{ServerConfig, crypto};

/// How the server speaks: plain by default.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The server's certificate chain and key, PEM: needed by `starttls` and `implicit_tls`.
    pub tls: Option<TlsIdentity>,
    /// Offer STARTTLS in the EHLO reply (a plain connection may be upgraded).
    pub starttls: bool,
    /// Every connection is TLS from its first byte (`smtps://`).
    pub implicit_tls: bool,
    /// AUTH PLAIN and LOGIN are offered, and a message is taken only after a login with this
    /// user and password; other credentials are refused with 535.
    pub auth: Option<(String, String)>,
    /// The mechanisms the EHLO reply offers with `auth` (default "PLAIN LOGIN"); both are
    /// understood whatever is offered.
    pub auth_mechanisms: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TlsIdentity {
    /// The certificate, then any intermediates.
    pub cert_pem: String,
    pub key_pem: String,
}

impl TlsIdentity {
    fn acceptor(&self) -> TlsAcceptor {
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("the sink's certificate is PEM");
        let key =
            PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("the sink's key is PEM");
        let config =
            ServerConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .expect("the sink's certificate and key match");
        TlsAcceptor::from(Arc::new(config))
    }
}

/// A connection, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Ways the server can misbehave, for fault tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Accepts connections and never says a word.
    SilentGreeting,
    /// Reads the whole message and never answers it.
    StallAfterData,
    /// Hangs up in the middle of the message.
    DropInData,
}

#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: String,
    /// Whether the message came over TLS (STARTTLS or implicit).
    pub tls: bool,
    /// The user that logged in with AUTH, if any.
    pub user: Option<String>,
    /// When its MAIL command came: the moment the client started sending it.
    pub started: Instant,
}

impl ReceivedMail {
    /// # Panics
    /// When the message is not RFC 5322 (a test failure).
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(self.data.as_bytes())
            .expect("the message parses as RFC 5322")
    }

    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_owned()
    }

    pub fn message_id(&self) -> String {
        self.parsed().message_id().unwrap_or_default().to_owned()
    }

    pub fn text(&self) -> String {
        self.parsed()
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default()
    }

    pub fn html(&self) -> String {
        self.parsed()
            .body_html(0)
            .map(|t| t.into_owned())
            .unwrap_or_default()
    }

    /// The accept link in the plain-text part.
    pub fn accept_link(&self) -> Option<String> {
        let text = self.text();
        text.split_whitespace()
            .find(|word| word.contains("/accept/"))
            .map(str::to_owned)
    }

    pub fn accept_token(&self) -> Option<String> {
        self.accept_link()
            .and_then(|link| link.rsplit('/').next().map(str::to_owned))
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<ReceivedMail>>,
    arrived: Notify,
    /// Milliseconds to wait before answering each DATA.
    delay_ms: AtomicU64,
    /// Replaces the "250" after DATA, e.g. "550 5.1.1 no such user".
    data_reply: Mutex<Option<String>>,
    /// Replaces the "250" after RCPT for these addresses (lower-cased): one recipient refused
    /// while the others are delivered.
    recipient_replies: Mutex<std::collections::HashMap<String, String>>,
    /// Messages whose DATA has started but not yet been answered.
    in_data: AtomicU64,
    /// The fault to act out, if any.
    fault: Mutex<Option<Fault>>,
    /// Messages whose DATA was answered with `data_reply` instead of a 250.
    refused: Mutex<Vec<ReceivedMail>>,
    /// While set, every DATA waits for `release` before it is answered.
    held: AtomicBool,
    released: Notify,
    /// Every message that had to wait for `release`, in the order they started waiting.
    waited: Mutex<Vec<ReceivedMail>>,
    /// MAIL commands received, accepted or not: a client that must not send has sent none.
    mail_commands: AtomicU64,
    /// Failed AUTH attempts.
    auth_failures: AtomicU64,
    /// Connections accepted, whatever became of them.
    connections: AtomicU64,
    /// Connections open now, and the most that were ever open at once.
    open: AtomicU64,
    most_open: AtomicU64,
    /// The most messages that were between DATA and its answer at once.
    most_in_data: AtomicU64,
    /// While set, every new connection is greeted with 421 and closed.
    refusing: AtomicBool,
    /// Connections greeted with 421.
    refused_connections: AtomicU64,
    options: Options,
    acceptor: Option<TlsAcceptor>,
}

pub struct SmtpServer {
    pub port: u16,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

impl SmtpServer {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// # Panics
    /// When `starttls` or `implicit_tls` is asked without `tls`, or the certificate is unusable.
    pub async fn start_with(options: Options) -> Self {
        assert!(
            options.tls.is_some() || !(options.starttls || options.implicit_tls),
            "STARTTLS and implicit TLS need a certificate (Options::tls)"
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind SMTP");
        let port = listener.local_addr().expect("address").port();
        let shared = Arc::new(Shared {
            acceptor: options.tls.as_ref().map(TlsIdentity::acceptor),
            options,
            ..Shared::default()
        });
        let task = Some(tokio::spawn(serve(listener, shared.clone())));
        Self { port, shared, task }
    }

    /// MAIL commands received so far, whether or not a message followed.
    pub fn mail_commands(&self) -> u64 {
        self.shared.mail_commands.load(Ordering::SeqCst)
    }

    /// AUTH attempts refused so far.
    pub fn auth_failures(&self) -> u64 {
        self.shared.auth_failures.load(Ordering::SeqCst)
    }

    /// Connections accepted so far (refused ones included).
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The most connections that were open at once.
    pub fn most_open_connections(&self) -> u64 {
        self.shared.most_open.load(Ordering::SeqCst)
    }

    /// The most messages that were being answered at once (between DATA and the reply): the
    /// sessions that really sent side by side.
    pub fn most_in_data(&self) -> u64 {
        self.shared.most_in_data.load(Ordering::SeqCst)
    }

    /// While `true`, every new connection is greeted with `421 4.3.2` and closed, as a relay
    /// that is overloaded or throttling this client does.
    pub fn set_refusing(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Connections greeted with 421 so far.
    pub fn refused_connections(&self) -> u64 {
        self.shared.refused_connections.load(Ordering::SeqCst)
    }

    /// Stops listening and drops every open connection: the server is down.
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("rebind SMTP port");
        self.task = Some(tokio::spawn(serve(listener, self.shared.clone())));
    }

    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn set_fault(&self, fault: Option<Fault>) {
        *self.shared.fault.lock().expect("lock") = fault;
    }

    pub fn set_data_reply(&self, reply: Option<&str>) {
        *self.shared.data_reply.lock().expect("lock") = reply.map(str::to_owned);
    }

    /// From now on, `RCPT TO:<address>` is answered with `reply` (e.g. "550 5.1.1 no such
    /// user") instead of a 250; `None` accepts it again. Other recipients are unaffected.
    pub fn set_recipient_reply(&self, address: &str, reply: Option<&str>) {
        let mut replies = self.shared.recipient_replies.lock().expect("lock");
        match reply {
            Some(reply) => replies.insert(address.to_ascii_lowercase(), reply.to_owned()),
            None => replies.remove(&address.to_ascii_lowercase()),
        };
    }

    /// Messages read in full and then refused with the `set_data_reply` reply, in order: what a
    /// failed attempt carried.
    pub fn refused(&self) -> Vec<ReceivedMail> {
        self.shared.refused.lock().expect("lock").clone()
    }

    /// From now on, every message is read in full and then waits, unanswered, until `release`:
    /// a test can act while a send is certainly in flight.
    pub fn hold(&self) {
        self.shared.held.store(true, Ordering::SeqCst);
    }

    /// The messages held so far (answered or not), in the order they were read.
    pub fn held_messages(&self) -> Vec<ReceivedMail> {
        self.shared.waited.lock().expect("lock").clone()
    }

    /// Answers the held messages and stops holding.
    pub fn release(&self) {
        self.shared.held.store(false, Ordering::SeqCst);
        self.shared.released.notify_waiters();
    }

    pub fn received(&self) -> Vec<ReceivedMail> {
        self.shared.received.lock().expect("lock").clone()
    }

    /// How many messages arrived, without copying them (the benchmark counts tens of thousands).
    pub fn received_count(&self) -> usize {
        self.shared.received.lock().expect("lock").len()
    }

    /// Waits until at least `count` messages arrived or `timeout` passed, and returns how many
    /// arrived: the benchmark reports a shortfall instead of panicking.
    pub async fn wait_for_count(&self, count: usize, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            let received = self.received_count();
            if received >= count || tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.received_count();
            }
        }
    }

    pub fn messages_in_data(&self) -> u64 {
        self.shared.in_data.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` messages arrived, or panics after `timeout`.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "expected {count} emails within {timeout:?}, got {}",
                    self.received().len()
                );
            }
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    // Connections live in this set: aborting the server task drops it and closes them all.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(connection(stream, shared.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Counts a connection as open until it ends, however it ends (an aborted server drops it).
struct OpenConnection(Arc<Shared>);

impl OpenConnection {
    fn new(shared: Arc<Shared>) -> Self {
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let open = shared.open.fetch_add(1, Ordering::SeqCst) + 1;
        shared.most_open.fetch_max(open, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn connection(mut stream: tokio::net::TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let _open = OpenConnection::new(shared.clone());
    if shared.refusing.load(Ordering::SeqCst) {
        shared.refused_connections.fetch_add(1, Ordering::SeqCst);
        stream
            .write_all(b"421 4.3.2 too busy, try again later\r\n")
            .await?;
        return stream.shutdown().await;
    }
    match (&shared.acceptor, shared.options.implicit_tls) {
        (Some(acceptor), true) => {
            let stream = acceptor.accept(stream).await?;
            session(Box::new(stream), true, shared.clone()).await
        }
        _ => session(Box::new(stream), false, shared.clone()).await,
    }
}

/// What one SMTP session has been told so far.
struct Session {
    tls: bool,
    user: Option<String>,
    mail_from: String,
    rcpt_to: Vec<String>,
    started: Instant,
}

impl Session {
    fn mail(&self, data: String) -> ReceivedMail {
        ReceivedMail {
            mail_from: self.mail_from.clone(),
            rcpt_to: self.rcpt_to.clone(),
            data,
            tls: self.tls,
            user: self.user.clone(),
            started: self.started,
        }
    }
}

async fn session(stream: Box<dyn Io>, tls: bool, shared: Arc<Shared>) -> std::io::Result<()> {
    let mut conn = BufReader::new(stream);
    let fault = || *shared.fault.lock().expect("lock");
    if fault() == Some(Fault::SilentGreeting) {
        // Hold the connection open, silent, until the client gives up.
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut conn, &mut sink).await;
        return Ok(());
    }
    conn.write_all(b"220 test.local ESMTP ready\r\n").await?;
    let mut session = Session {
        tls,
        user: None,
        mail_from: String::new(),
        rcpt_to: Vec::new(),
        started: Instant::now(),
    };
    let mut line = String::new();
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let offers_starttls = shared.options.starttls && !session.tls;
        match verb.as_str() {
            "EHLO" => {
                let mut reply = String::from("250-test.local\r\n250-8BITMIME\r\n");
                if offers_starttls {
                    reply.push_str("250-STARTTLS\r\n");
                }
                if shared.options.auth.is_some() {
                    let mechanisms = shared.options.auth_mechanisms.as_deref();
                    reply.push_str(&format!(
                        "250-AUTH {}\r\n",
                        mechanisms.unwrap_or("PLAIN LOGIN")
                    ));
                }
                reply.push_str("250 SMTPUTF8\r\n");
                conn.write_all(reply.as_bytes()).await?
            }
            "HELO" => conn.write_all(b"250 test.local\r\n").await?,
            "STARTTLS" => {
                let Some(acceptor) = shared.acceptor.clone().filter(|_| offers_starttls) else {
                    conn.write_all(b"502 5.5.1 STARTTLS not offered\r\n")
                        .await?;
                    continue;
                };
                conn.write_all(b"220 2.0.0 ready to start TLS\r\n").await?;
                conn.flush().await?;
                // The client says nothing more until the handshake: nothing is buffered.
                let stream = acceptor.accept(conn.into_inner()).await?;
                conn = BufReader::new(Box::new(stream) as Box<dyn Io>);
                // RFC 3207: the session starts over.
                session = Session {
                    tls: true,
                    user: None,
                    mail_from: String::new(),
                    rcpt_to: Vec::new(),
                    started: Instant::now(),
                };
            }
            "AUTH" => {
                let reply = authenticate(&mut conn, &command, &shared, &mut session).await?;
                conn.write_all(reply).await?
            }
            "MAIL" => {
                shared.mail_commands.fetch_add(1, Ordering::SeqCst);
                if shared.options.auth.is_some() && session.user.is_none() {
                    conn.write_all(b"530 5.7.0 authentication required\r\n")
                        .await?;
                    continue;
                }
                session.mail_from = address_of(&command);
                session.rcpt_to.clear();
                session.started = Instant::now();
                conn.write_all(b"250 2.1.0 OK\r\n").await?;
            }
            "RCPT" => {
                let address = address_of(&command);
                let refusal = shared
                    .recipient_replies
                    .lock()
                    .expect("lock")
                    .get(&address.to_ascii_lowercase())
                    .cloned();
                if let Some(reply) = refusal {
                    conn.write_all(format!("{reply}\r\n").as_bytes()).await?;
                    continue;
                }
                session.rcpt_to.push(address);
                conn.write_all(b"250 2.1.5 OK\r\n").await?;
            }
            "DATA" => {
                conn.write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let in_data = shared.in_data.fetch_add(1, Ordering::SeqCst) + 1;
                shared.most_in_data.fetch_max(in_data, Ordering::SeqCst);
                let mut data = String::new();
                loop {
                    line.clear();
                    if conn.read_line(&mut line).await? == 0 {
                        shared.in_data.fetch_sub(1, Ordering::SeqCst);
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    if fault() == Some(Fault::DropInData) && data.len() > 64 {
                        shared.in_data.fetch_sub(1, Ordering::SeqCst);
                        return Ok(());
                    }
                    let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                    data.push_str(unstuffed);
                }
                if fault() == Some(Fault::StallAfterData) {
                    let mut sink = Vec::new();
                    let _ = tokio::io::AsyncReadExt::read_to_end(&mut conn, &mut sink).await;
                    shared.in_data.fetch_sub(1, Ordering::SeqCst);
                    return Ok(());
                }
                let delay = shared.delay_ms.load(Ordering::SeqCst);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                if shared.held.load(Ordering::SeqCst) {
                    shared
                        .waited
                        .lock()
                        .expect("lock")
                        .push(session.mail(data.clone()));
                }
                loop {
                    // Created before the check, so a release in between is not missed.
                    let released = shared.released.notified();
                    if !shared.held.load(Ordering::SeqCst) {
                        break;
                    }
                    released.await;
                }
                shared.in_data.fetch_sub(1, Ordering::SeqCst);
                let reply = shared.data_reply.lock().expect("lock").clone();
                match reply {
                    Some(reply) => {
                        shared
                            .refused
                            .lock()
                            .expect("lock")
                            .push(session.mail(data));
                        shared.arrived.notify_waiters();
                        conn.write_all(format!("{reply}\r\n").as_bytes()).await?
                    }
                    None => {
                        shared
                            .received
                            .lock()
                            .expect("lock")
                            .push(session.mail(data));
                        shared.arrived.notify_waiters();
                        conn.write_all(b"250 2.0.0 queued\r\n").await?;
                    }
                }
            }
            "RSET" => {
                session.mail_from.clear();
                session.rcpt_to.clear();
                conn.write_all(b"250 2.0.0 OK\r\n").await?;
            }
            "NOOP" => conn.write_all(b"250 2.0.0 OK\r\n").await?,
            "QUIT" => {
                conn.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => {
                conn.write_all(b"502 5.5.2 command not recognised\r\n")
                    .await?
            }
        }
    }
}

/// `AUTH PLAIN [initial]` or `AUTH LOGIN [user]`, with the challenges they need; returns the
/// final reply.
async fn authenticate(
    conn: &mut BufReader<Box<dyn Io>>,
    command: &str,
    shared: &Shared,
    session: &mut Session,
) -> std::io::Result<&'static [u8]> {
    let Some((user, password)) = &shared.options.auth else {
        return Ok(b"502 5.5.1 AUTH not offered\r\n");
    };
    if session.user.is_some() {
        return Ok(b"503 5.5.1 already authenticated\r\n");
    }
    let mut words = command.split_whitespace().skip(1);
    let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
    let initial = words.next().map(str::to_owned);
    let given = match mechanism.as_str() {
        "PLAIN" => {
            let response = match initial {
                Some(response) => response,
                None => challenge(conn, "").await?,
            };
            // authzid NUL authcid NUL password
            decode(&response).and_then(|plain| {
                let mut parts = plain.splitn(3, '\0').skip(1);
                Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
            })
        }
        "LOGIN" => {
            let user_b64 = match initial {
                Some(user) => user,
                None => challenge(conn, "VXNlcm5hbWU6").await?,
            };
            let password_b64 = challenge(conn, "UGFzc3dvcmQ6").await?;
            decode(&user_b64).zip(decode(&password_b64))
        }
        _ => return Ok(b"504 5.5.4 mechanism not supported\r\n"),
    };
    match given {
        Some((given_user, given_password))
            if &given_user == user && &given_password == password =>
        {
            session.user = Some(given_user);
            Ok(b"235 2.7.0 authentication succeeded\r\n")
        }
        _ => {
            shared.auth_failures.fetch_add(1, Ordering::SeqCst);
            Ok(b"535 5.7.8 authentication credentials invalid\r\n")
        }
    }
}

/// Sends `334 <prompt>` and reads the client's answer line.
async fn challenge(conn: &mut BufReader<Box<dyn Io>>, prompt: &str) -> std::io::Result<String> {
    conn.write_all(format!("334 {prompt}\r\n").as_bytes())
        .await?;
    let mut answer = String::new();
    conn.read_line(&mut answer).await?;
    Ok(answer.trim_end().to_owned())
}

fn decode(b64: &str) -> Option<String> {
    String::from_utf8(BASE64.decode(b64).ok()?).ok()
}

/// The address between angle brackets in `MAIL FROM:<a@b>` or `RCPT TO:<a@b>`.
fn address_of(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_owned())
        .unwrap_or_default()
}
