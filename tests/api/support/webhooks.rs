//! A real webhook receiver on loopback, and a signature check written apart from the server's
//! (its own HMAC-SHA256 over `sha2`, no `hmac` crate, no code of cbh-invite), so that a bug in
//! the signing cannot hide in the checking.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use super::wait;
use super::{Agent, NS, TestApp, json_with_status};

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ok,
    /// 500 to every request.
    Fail,
    /// Never answers.
    Hang,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    /// Whether the signature checked out (with the secret set at the time).
    pub verified: bool,
    /// Whether this request was answered 2xx.
    pub accepted: bool,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("the body is JSON")
    }

    pub fn event(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }
}

#[derive(Default)]
struct Shared {
    mode: Mutex<Option<Mode>>,
    secret: Mutex<Option<String>>,
    received: Mutex<Vec<Received>>,
}

pub struct Receiver {
    pub port: u16,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let mut receiver = Self {
            port: wait::free_port(),
            shared: Arc::default(),
            task: None,
        };
        receiver.set_mode(Mode::Ok);
        receiver.restart().await;
        receiver
    }

    /// `http://127.0.0.1:{port}/hooks`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().expect("lock") = Some(mode);
    }

    pub fn set_secret(&self, secret: &str) {
        *self.shared.secret.lock().expect("lock") = Some(secret.to_owned());
    }

    /// Stops listening: connections are refused until `restart`.
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                // The aborted listener may take a moment to be dropped.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let shared = self.shared.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let shared = shared.clone();
            async move { receive(&shared, &headers, body).await }
        });
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("lock").clone()
    }

    /// The requests answered 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.accepted).collect()
    }

    /// Waits until an accepted request satisfies `matches`.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&Received) -> bool,
    ) {
        wait::until(what, timeout, || async {
            self.accepted().iter().any(&matches)
        })
        .await;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn receive(shared: &Shared, headers: &HeaderMap, body: Bytes) -> axum::response::Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mode = shared.mode.lock().expect("lock").unwrap_or(Mode::Ok);
    let secret = shared.secret.lock().expect("lock").clone();
    let body = String::from_utf8_lossy(&body).into_owned();
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let verified = secret
        .as_deref()
        .is_some_and(|secret| verify(secret, &id, &timestamp, &body, &signature));
    shared.received.lock().expect("lock").push(Received {
        id,
        timestamp,
        signature,
        body,
        verified,
        accepted: mode == Mode::Ok,
    });
    // No keep-alive: a stopped receiver must refuse the next delivery, not serve it on an
    // old connection.
    let close = [(axum::http::header::CONNECTION, "close")];
    match mode {
        Mode::Ok => (StatusCode::NO_CONTENT, close).into_response(),
        Mode::Fail => (StatusCode::INTERNAL_SERVER_ERROR, close, "broken").into_response(),
        Mode::Hang => {
            // Until the sender gives up (its timeout); never answered.
            std::future::pending::<()>().await;
            StatusCode::REQUEST_TIMEOUT.into_response()
        }
    }
}

/// The Standard Webhooks check: `v1,` + base64(HMAC-SHA256(base64-decoded secret,
/// `{id}.{timestamp}.{body}`)), among the space-separated signatures of the header.
pub fn verify(secret: &str, id: &str, timestamp: &str, body: &str, header: &str) -> bool {
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|encoded| STANDARD.decode(encoded).ok())
    else {
        return false;
    };
    let signed = format!("{id}.{timestamp}.{body}");
    let expected = format!(
        "v1,{}",
        STANDARD.encode(hmac_sha256(&key, signed.as_bytes()))
    );
    header.split(' ').any(|candidate| candidate == expected)
}

/// HMAC (RFC 2104) over SHA-256, by hand.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// A superuser's agent, and a webhook for `events` (every event when empty) at `receiver`,
/// whose secret the receiver then checks signatures with.
pub async fn admin_with_webhook(
    app: &TestApp,
    receiver: &Receiver,
    events: &[&str],
) -> (Agent, Value) {
    let root = app
        .add_user("root@lab.example", "Root", "Admin", true)
        .await;
    let admin = app.api_key_agent(&root).await;
    let created = json_with_status(
        admin
            .post(
                &format!("/{NS}/api/webhooks/"),
                &json!({"url": receiver.url(), "events": events}),
            )
            .await,
        201,
    )
    .await;
    let secret = created["secret"]
        .as_str()
        .expect("secret shown at creation");
    receiver.set_secret(secret);
    (admin, created)
}

#[test]
fn the_independent_check_agrees_with_the_specifications_example() {
    assert!(verify(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "1614265330",
        r#"{"test": 2432232314}"#,
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    ));
    assert!(!verify(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "1614265330",
        r#"{"test": 2432232315}"#,
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    ));
}
