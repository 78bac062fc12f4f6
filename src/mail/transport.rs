//! Where messages go: an SMTP relay (one pooled transport, built once and reused), or `.eml`
//! files in a folder when no relay is configured.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{SmtpSettings, SmtpTls};

/// Connections kept open to the relay; also bounds the sends in flight.
pub const SMTP_POOL_SIZE: u32 = 8;
/// Bounds every SMTP command, so a stalled server cannot hang a worker.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
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

impl Transport {
    pub fn smtp(settings: &SmtpSettings) -> anyhow::Result<Self> {
        let host = settings.host.as_str();
        let builder = match settings.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).tls(
                Tls::Required(TlsParameters::new(host.to_owned()).context("setting up STARTTLS")?),
            ),
            SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).tls(
                Tls::Wrapper(TlsParameters::new(host.to_owned()).context("setting up TLS")?),
            ),
        };
        let builder = builder
            .port(settings.port)
            .timeout(Some(SMTP_TIMEOUT))
            .pool_config(
                PoolConfig::new()
                    .max_size(SMTP_POOL_SIZE)
                    .idle_timeout(Duration::from_secs(60)),
            );
        let builder = match &settings.credentials {
            Some((user, password)) => {
                builder.credentials(Credentials::new(user.clone(), password.clone()))
            }
            None => builder,
        };
        Ok(Self::Smtp(builder.build()))
    }

    pub fn files(dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the mail folder {}", dir.display()))?;
        Ok(Self::Files(dir))
    }

    /// A one-line description for the start-up log.
    pub fn describe(&self) -> String {
        match self {
            Transport::Smtp(_) => "SMTP relay".into(),
            Transport::Files(dir) => format!(
                "no CBH_SMTP_URL set: mail is written as .eml files to {}",
                dir.display()
            ),
        }
    }

    /// `file_stem` names the .eml file when writing to a folder (it must be unique per message).
    pub async fn send(&self, message: &Message, file_stem: &str) -> Result<(), SendError> {
        match self {
            Transport::Smtp(smtp) => smtp.send(message.clone()).await.map(drop).map_err(|e| {
                if e.is_permanent() {
                    SendError::Permanent(e.to_string())
                } else {
                    SendError::Temporary(e.to_string())
                }
            }),
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
