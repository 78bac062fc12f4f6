//! A real SMTP server on loopback, run in-process: it speaks the protocol over TCP to the
//! service's real lettre transport. It can be slowed down, made to refuse, stopped and started
//! again on the same port. Used by cbh-invite's tests and its benchmark.

pub use mail_parser;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

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
    /// Messages whose DATA has started but not yet been answered.
    in_data: AtomicU64,
    /// The fault to act out, if any.
    fault: Mutex<Option<Fault>>,
    /// While set, each message waits at the end of its DATA, unanswered, for `release`.
    held: AtomicBool,
    released: Notify,
}

pub struct SmtpServer {
    pub port: u16,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

impl SmtpServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind SMTP");
        let port = listener.local_addr().expect("address").port();
        let shared = Arc::new(Shared::default());
        let task = Some(tokio::spawn(serve(listener, shared.clone())));
        Self { port, shared, task }
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

    /// Keeps every message at the end of its DATA, unanswered, until `release`: a "while a
    /// message is being sent" window the test opens and closes, instead of a delay that a busy
    /// machine may outlast. (The sender's own timeout still applies.)
    pub fn hold(&self) {
        self.shared.held.store(true, Ordering::SeqCst);
    }

    /// Answers the messages held by `hold`, and those that come after, as usual.
    pub fn release(&self) {
        self.shared.held.store(false, Ordering::SeqCst);
        self.shared.released.notify_waiters();
    }

    pub fn set_fault(&self, fault: Option<Fault>) {
        *self.shared.fault.lock().expect("lock") = fault;
    }

    pub fn set_data_reply(&self, reply: Option<&str>) {
        *self.shared.data_reply.lock().expect("lock") = reply.map(str::to_owned);
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
                    connections.spawn(session(stream, shared.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn session(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let fault = || *shared.fault.lock().expect("lock");
    if fault() == Some(Fault::SilentGreeting) {
        // Hold the connection open, silent, until the client gives up.
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut lines, &mut sink).await;
        return Ok(());
    }
    write.write_all(b"220 test.local ESMTP ready\r\n").await?;
    let mut mail_from = String::new();
    let mut rcpt_to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => {
                write
                    .write_all(b"250-test.local\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                    .await?
            }
            "HELO" => write.write_all(b"250 test.local\r\n").await?,
            "MAIL" => {
                mail_from = address_of(&command);
                rcpt_to.clear();
                write.write_all(b"250 2.1.0 OK\r\n").await?;
            }
            "RCPT" => {
                rcpt_to.push(address_of(&command));
                write.write_all(b"250 2.1.5 OK\r\n").await?;
            }
            "DATA" => {
                write
                    .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                shared.in_data.fetch_add(1, Ordering::SeqCst);
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
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
                    let _ = tokio::io::AsyncReadExt::read_to_end(&mut lines, &mut sink).await;
                    shared.in_data.fetch_sub(1, Ordering::SeqCst);
                    return Ok(());
                }
                let delay = shared.delay_ms.load(Ordering::SeqCst);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                loop {
                    // Registered before the check, so a release in between is not missed.
                    let released = shared.released.notified();
                    if !shared.held.load(Ordering::SeqCst) {
                        break;
                    }
                    released.await;
                }
                shared.in_data.fetch_sub(1, Ordering::SeqCst);
                let reply = shared.data_reply.lock().expect("lock").clone();
                match reply {
                    Some(reply) => write.write_all(format!("{reply}\r\n").as_bytes()).await?,
                    None => {
                        shared.received.lock().expect("lock").push(ReceivedMail {
                            mail_from: mail_from.clone(),
                            rcpt_to: rcpt_to.clone(),
                            data,
                        });
                        shared.arrived.notify_waiters();
                        write.write_all(b"250 2.0.0 queued\r\n").await?;
                    }
                }
            }
            "RSET" => {
                mail_from.clear();
                rcpt_to.clear();
                write.write_all(b"250 2.0.0 OK\r\n").await?;
            }
            "NOOP" => write.write_all(b"250 2.0.0 OK\r\n").await?,
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => {
                write
                    .write_all(b"502 5.5.2 command not recognised\r\n")
                    .await?
            }
        }
    }
}

/// The address between angle brackets in `MAIL FROM:<a@b>` or `RCPT TO:<a@b>`.
fn address_of(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_owned())
        .unwrap_or_default()
}
