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

pub enum Transport {
    Smtp {
        relay: AsyncSmtpTransport<Tokio1Executor>,
        /// lettre bounds only the connect; this bounds the whole exchange of one message.
        timeout: Duration,
    },
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
    /// `timeout` bounds the connection and every SMTP command, so a stalled server cannot hang
    /// a worker.
    pub fn smtp(settings: &SmtpSettings, timeout: Duration) -> anyhow::Result<Self> {
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
            .timeout(Some(timeout))
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
        Ok(Self::Smtp {
            relay: builder.build(),
            timeout,
        })
    }

    pub fn files(dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the mail folder {}", dir.display()))?;
        Ok(Self::Files(dir))
    }

    /// A one-line description for the start-up log.
    pub fn describe(&self) -> String {
        match self {
            Transport::Smtp { .. } => "SMTP relay".into(),
            Transport::Files(dir) => format!(
                "no CBH_SMTP_URL set: mail is written as .eml files to {}",
                dir.display()
            ),
        }
    }

    /// `file_stem` names the .eml file when writing to a folder (it must be unique per message).
    pub async fn send(&self, message: &Message, file_stem: &str) -> Result<(), SendError> {
        match self {
            Transport::Smtp { relay, timeout } => {
                match tokio::time::timeout(*timeout, relay.send(message.clone())).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
                    Ok(Err(e)) => Err(SendError::Temporary(e.to_string())),
                    Err(_) => Err(SendError::Temporary(format!(
                        "the SMTP server did not finish within {timeout:?}"
                    ))),
                }
            }
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
