//! A real nginx (Debian's package, `/usr/sbin/nginx`) in front of the application, run by the
//! test as an unprivileged foreground process with everything it writes in a temporary folder,
//! on a free port; and an upstream on loopback that answers every request with the headers it
//! received. The server block is the README's: `docs/nginx-forward-auth.conf`, with the test's
//! addresses in place of the documented ones.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::Request;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::support::wait;

pub const NGINX: &str = "/usr/sbin/nginx";

/// The server block the README shows.
pub const FORWARD_AUTH_CONF: &str = include_str!("../../../docs/nginx-forward-auth.conf");
/// The addresses the documented block uses, replaced by the test's.
const DOC_LISTEN: &str = "listen 80;";
const DOC_CBH: &str = "127.0.0.1:8000";
const DOC_APP: &str = "127.0.0.1:3000";

/// The documented server block, listening on `port` and proxying to `cbh` and `app`.
pub fn forward_auth_server(port: u16, cbh: SocketAddr, app: SocketAddr) -> String {
    for documented in [DOC_LISTEN, DOC_CBH, DOC_APP] {
        assert!(
            FORWARD_AUTH_CONF.contains(documented),
            "docs/nginx-forward-auth.conf no longer names {documented}"
        );
    }
    FORWARD_AUTH_CONF
        .replace(DOC_LISTEN, &format!("listen 127.0.0.1:{port};"))
        .replace(DOC_CBH, &cbh.to_string())
        .replace(DOC_APP, &app.to_string())
}

/// A running nginx; stopped (SIGKILL) when dropped.
pub struct Nginx {
    /// `http://127.0.0.1:port`.
    pub base: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx on `port` with `server` (one or more `server {}` blocks) inside an `http {}`
    /// block whose paths all lie in a temporary folder, and waits until it accepts connections.
    pub async fn start(port: u16, server: &str) -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} is missing: apt-get install nginx (.ci/run installs it)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        let conf = format!(
            "error_log {root}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
             access_log {root}/access.log;\n\
             client_body_temp_path {root}/body;\n\
             proxy_temp_path {root}/proxy;\n\
             fastcgi_temp_path {root}/fastcgi;\n\
             uwsgi_temp_path {root}/uwsgi;\n\
             scgi_temp_path {root}/scgi;\n\
             {server}\n\
             }}\n",
            root = root.display()
        );
        let conf_path = root.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf written");
        // One process, as the test's user: no master switching users, no daemon to chase.
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(root)
            .arg("-e")
            .arg(root.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .arg("-g")
            .arg(format!(
                "daemon off; master_process off; pid {};",
                root.join("nginx.pid").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx started");
        let mut nginx = Nginx {
            base: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        };
        let address = format!("127.0.0.1:{port}");
        wait::until("nginx accepts connections", Duration::from_secs(30), || {
            let exited = nginx.child.try_wait().ok().flatten();
            assert!(
                exited.is_none(),
                "nginx exited ({exited:?}): {}",
                nginx.error_log()
            );
            let address = address.clone();
            async move { tokio::net::TcpStream::connect(address).await.is_ok() }
        })
        .await;
        nginx
    }

    /// What nginx logged, for failure messages.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An upstream application on loopback that answers every request with 200 and
/// `{"method", "uri", "headers": {name: value}}` (header names lower-case; repeated ones joined
/// with ", "), and counts the requests it got.
pub struct EchoServer {
    pub address: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl EchoServer {
    pub async fn start() -> EchoServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("echo server bound");
        let address = listener.local_addr().expect("address");
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let (parts, body) = request.into_parts();
                // Read whole, as an application does: answering before the body is read makes
                // the connection close under nginx while it still sends (its 502).
                let body = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .expect("request body");
                let mut headers: BTreeMap<String, String> = BTreeMap::new();
                for (name, value) in &parts.headers {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    headers
                        .entry(name.as_str().to_owned())
                        .and_modify(|v| {
                            v.push_str(", ");
                            v.push_str(&value);
                        })
                        .or_insert(value);
                }
                axum::Json(json!({
                    "method": parts.method.as_str(),
                    "uri": parts.uri.to_string(),
                    "headers": headers,
                    "body_length": body.len(),
                }))
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        EchoServer {
            address,
            requests,
            task,
        }
    }

    /// How many requests reached the upstream.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The headers an echo answer reports.
pub fn echoed_headers(body: &Value) -> &serde_json::Map<String, Value> {
    body["headers"].as_object().expect("echoed headers")
}
