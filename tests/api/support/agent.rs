//! `Agent`: an HTTP client acting as one caller of the application.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::support::app::NS;

/// How long one request may take before the test fails: a server that hangs fails the test
/// that met it, instead of holding the whole run.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// An HTTP client with `REQUEST_TIMEOUT`, for tests that call the application directly.
pub fn client() -> reqwest::Client {
    client_builder().build().expect("client")
}

/// The builder of `client()`, for tests that need more (cookies, no redirects).
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().timeout(REQUEST_TIMEOUT)
}

/// An HTTP client acting as one caller.
pub struct Agent {
    pub client: reqwest::Client,
    pub base: String,
    pub headers: HeaderMap,
}

impl Agent {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .headers(self.headers.clone())
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .headers(self.headers.clone())
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(format!("{}{path}", self.base))
            .headers(self.headers.clone())
            .send()
            .await
            .expect("request sent")
    }

    pub async fn invite(&self, body: Value) -> reqwest::Response {
        self.post(&format!("/{NS}/api/invitations/"), &body).await
    }

    /// `POST …/{id}/resend/`, which must answer 200; returns the invitation it answers.
    pub async fn resend(&self, id: i64) -> Value {
        let path = format!("/{NS}/api/invitations/{id}/resend/");
        json_with_status(self.post(&path, &serde_json::json!({})).await, 200).await
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .headers(self.headers.clone())
    }
}

/// The JSON body of a response, with its status checked.
pub async fn json_with_status(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(actual, status, "unexpected status; body: {body:#}");
    body
}
