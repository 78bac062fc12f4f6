//! `mail test`: one message through the configured transport, now, with the relay's reply.

use clap::Subcommand;
use lettre::Message;
use lettre::message::Mailbox;

use super::UsageError;
use crate::config::{ServeArgs, Settings};
use crate::domain::Token;
use crate::mail::{AutoSubmitted, Signer, Transport};

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// Send one test message through the configured relay (or mail folder) and print its reply.
    Test {
        /// Who receives the test message.
        #[arg(long)]
        to: String,
        /// The same settings as `serve` (relay, sender).
        #[command(flatten)]
        serve: Box<ServeArgs>,
    },
}

pub async fn mail(database_url: &str, command: MailCommand) -> anyhow::Result<()> {
    let MailCommand::Test { to, serve } = command;
    let settings = Settings::from_args(database_url, &serve).map_err(UsageError)?;
    let to: Mailbox = to
        .parse()
        .map_err(|e| UsageError(format!("--to: '{to}' is not an address ({e})")))?;
    let from = settings.sender().map_err(UsageError)?;
    let transport = Transport::from_settings(&settings)?;
    let signer = settings.dkim.as_ref().map(Signer::new).transpose()?;
    let token = Token::generate();
    let stem = format!("test-{}", token.expose());
    let mut message = Message::builder()
        .from(from.clone())
        .to(to.clone())
        .subject("cbh-invite: test message")
        .message_id(Some(format!(
            "<test-{}@{}>",
            token.expose(),
            from.email.domain()
        )))
        .date_now()
        .header(AutoSubmitted)
        .body(format!(
            "This is a test message from cbh-invite, sent by `cbh-invite mail test` through {}.\n\
             It shows that the service can send mail from {from} to {to}.\n",
            transport.describe()
        ))
        .map_err(|e| UsageError(format!("the test message cannot be built: {e}")))?;
    if let Some(signer) = &signer {
        signer.sign(&mut message);
    }
    match transport.send_now(&message, &stem).await {
        Ok(reply) => {
            println!("{reply}");
            Ok(())
        }
        Err(error) => anyhow::bail!("the test message was not sent: {error}"),
    }
}
