//! A fresh PostgreSQL database per configuration, dropped afterwards (also after a failure or
//! Ctrl-C: every database created is remembered until it is dropped).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use url::Url;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct PgAdmin {
    /// The maintenance database, e.g. `postgres://postgres@127.0.0.1:5432/postgres`.
    url: Url,
    created: Arc<Mutex<Vec<String>>>,
}

impl PgAdmin {
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let url = Url::parse(url).context("the PostgreSQL URL is not a URL")?;
        Ok(Self {
            url,
            created: Arc::default(),
        })
    }

    async fn connect(&self) -> anyhow::Result<PgConnection> {
        tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(self.url.as_str()))
            .await
            .context("PostgreSQL did not answer in time")?
            .context("connecting to PostgreSQL")
    }

    /// Whether the server answers at all.
    pub async fn reachable(&self) -> bool {
        match self.connect().await {
            Ok(conn) => {
                let _ = conn.close().await;
                true
            }
            Err(_) => false,
        }
    }

    /// Creates an empty database and returns its name and URL.
    pub async fn create(&self) -> anyhow::Result<(String, String)> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!("cbh_bench_{}_{nanos:x}", std::process::id());
        let mut conn = self.connect().await?;
        // A generated identifier of [a-z0-9_]: nothing to quote.
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .with_context(|| format!("creating database {name}"))?;
        let _ = conn.close().await;
        if let Ok(mut created) = self.created.lock() {
            created.push(name.clone());
        }
        let mut url = self.url.clone();
        url.set_path(&name);
        Ok((name.clone(), url.to_string()))
    }

    pub async fn drop_database(&self, name: &str) -> anyhow::Result<()> {
        let mut conn = self.connect().await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await
            .with_context(|| format!("dropping database {name}"))?;
        let _ = conn.close().await;
        if let Ok(mut created) = self.created.lock() {
            created.retain(|n| n != name);
        }
        Ok(())
    }

    /// Drops whatever a failed or interrupted run left behind.
    pub async fn drop_all(&self) {
        let left: Vec<String> = self
            .created
            .lock()
            .map(|created| created.clone())
            .unwrap_or_default();
        for name in left {
            if let Err(error) = self.drop_database(&name).await {
                eprintln!("warning: {error:#}");
            }
        }
    }
}
