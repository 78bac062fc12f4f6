//! Slow and numerous clients (slowloris): a real TCP client that trickles, stalls or holds
//! connections, against the app with short limits.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Backend, NS, spawn_app_with};

const SECOND: Duration = Duration::from_secs(1);

async fn connect(base: &str) -> TcpStream {
    let address = base.trim_start_matches("http://");
    TcpStream::connect(address).await.expect("connect")
}

/// Reads until the server closes the connection or `deadline` passes; returns what was read and
/// whether the connection was closed (end of stream or reset).
async fn read_until_closed(stream: &mut TcpStream, deadline: Duration) -> (String, bool) {
    let until = Instant::now() + deadline;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (String::from_utf8_lossy(&received).into_owned(), false);
        }
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (String::from_utf8_lossy(&received).into_owned(), true);
            }
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), false),
        }
    }
}

/// Reads until `needle` has arrived (or the deadline passes); returns what was read.
async fn read_until(stream: &mut TcpStream, needle: &str, deadline: Duration) -> String {
    let until = Instant::now() + deadline;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&received).contains(needle) {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => received.extend_from_slice(&buffer[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn a_request_head_trickled_past_the_header_timeout_is_cut_off() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.http.header_timeout = SECOND).await;
    let mut stream = connect(&app.base).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let mut closed = false;
    let mut answered = String::new();
    // One header line every 200 ms, never the blank line that ends the head.
    for i in 0..30 {
        let line = format!("X-Slow-{i}: a\r\n");
        if stream.write_all(line.as_bytes()).await.is_err() {
            closed = true;
            break;
        }
        let (read, ended) = read_until_closed(&mut stream, Duration::from_millis(200)).await;
        answered.push_str(&read);
        if ended {
            closed = true;
            break;
        }
    }
    assert!(closed, "a head trickled over 6 s was still being read");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cut off only after {:?}",
        started.elapsed()
    );
    assert!(!answered.contains("200 OK"), "{answered}");
}

#[tokio::test]
async fn a_body_not_received_in_time_gets_408() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.http.body_timeout = SECOND).await;
    let mut stream = connect(&app.base).await;
    let head = format!(
        "POST /{NS}/api/session/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"username\""
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let started = Instant::now();
    let answer = read_until(&mut stream, "\r\n\r\n", Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "after {:?}: {answer:?}",
        started.elapsed()
    );
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(3)).await;
    assert!(closed, "the connection stays open after a 408");
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.http.idle_timeout = SECOND).await;
    let mut stream = connect(&app.base).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let answer = read_until(&mut stream, "\r\n\r\n", Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    let idle_since = Instant::now();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(4)).await;
    assert!(closed, "an idle keep-alive connection stayed open for 4 s");
    assert!(idle_since.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn an_idle_connection_is_not_cut_by_the_header_timeout() {
    // The header clock starts at the first byte of a request, not when the last one ended.
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.http.header_timeout = SECOND;
        s.http.idle_timeout = Duration::from_secs(30);
    })
    .await;
    let mut stream = connect(&app.base).await;
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(2)).await;
    assert!(
        !closed,
        "an idle connection was closed by the header timeout"
    );
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let answer = read_until(&mut stream, "\r\n\r\n", Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

#[tokio::test]
async fn connections_past_the_maximum_wait_for_a_free_one() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.http.max_connections = 2).await;
    let first = connect(&app.base).await;
    let _second = connect(&app.base).await;
    let mut third = connect(&app.base).await;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let early = read_until(&mut third, "\r\n\r\n", Duration::from_secs(1)).await;
    assert_eq!(
        early, "",
        "a third connection was served beside two held ones"
    );
    drop(first);
    let answer = read_until(&mut third, "\r\n\r\n", Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

#[tokio::test]
async fn requests_past_the_in_flight_cap_get_503_at_once() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.http.max_in_flight = 1;
        s.http.body_timeout = Duration::from_secs(10);
    })
    .await;
    // A request whose body never comes holds the only slot.
    let mut slow = connect(&app.base).await;
    let head = format!(
        "POST /{NS}/api/session/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{"
    );
    slow.write_all(head.as_bytes()).await.expect("write");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let busy = loop {
        let response = client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .expect("request");
        if response.status() == 503 || Instant::now() > deadline {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(busy.status(), 503);
    assert!(busy.headers().contains_key("retry-after"));
    let body: serde_json::Value = busy.json().await.expect("json");
    assert!(body["error"].is_string(), "{body}");
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .expect("request")
            .status();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} after the slot was freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
