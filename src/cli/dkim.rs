//! `dkim keygen`: a new DKIM private key for `CBH_DKIM_KEY_FILE`, and the DNS record to publish.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};

use super::UsageError;
use crate::config::DkimAlgorithm;
use crate::mail::dkim::generate;

#[derive(Debug, Subcommand)]
pub enum DkimCommand {
    /// Write a new private key (mode 0600) and print the TXT record to publish at
    /// SELECTOR._domainkey.DOMAIN.
    Keygen {
        /// The selector the key is published under.
        #[arg(long)]
        selector: String,
        /// The signing domain [default: the domain of CBH_MAIL_FROM].
        #[arg(long)]
        domain: Option<String>,
        /// Where to write the key (PEM); an existing file is not replaced.
        #[arg(long)]
        out: PathBuf,
        /// rsa (2048 bits, understood by every receiver) or ed25519 (RFC 8463).
        #[arg(long, value_enum, default_value = "rsa")]
        algorithm: AlgorithmArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AlgorithmArg {
    Rsa,
    Ed25519,
}

pub fn dkim(command: DkimCommand) -> anyhow::Result<()> {
    let DkimCommand::Keygen {
        selector,
        domain,
        out,
        algorithm,
    } = command;
    let domain = match domain {
        Some(domain) => domain,
        None => sender_domain()?,
    };
    // The same checks as serve's, so the record printed names what serve will sign as.
    crate::config::DkimSettings::validate_names(&selector, &domain).map_err(UsageError)?;
    let algorithm = match algorithm {
        AlgorithmArg::Rsa => DkimAlgorithm::Rsa,
        AlgorithmArg::Ed25519 => DkimAlgorithm::Ed25519,
    };
    let key = generate(algorithm)?;
    write_private(&out, key.pem.as_bytes())?;
    eprintln!(
        "wrote the private key to {}; set CBH_DKIM_KEY_FILE={} CBH_DKIM_SELECTOR={selector} \
         CBH_DKIM_DOMAIN={domain}, and publish this TXT record:",
        out.display(),
        out.display()
    );
    println!(
        "{selector}._domainkey.{domain}. IN TXT \"{}\"",
        key.txt_record(algorithm)
    );
    Ok(())
}

fn sender_domain() -> anyhow::Result<String> {
    let from = std::env::var("CBH_MAIL_FROM")
        .map_err(|_| UsageError("--domain is needed when CBH_MAIL_FROM is not set".into()))?;
    let mailbox: lettre::message::Mailbox = from
        .parse()
        .map_err(|e| UsageError(format!("CBH_MAIL_FROM: '{from}' is not a mailbox ({e})")))?;
    Ok(mailbox.email.domain().to_owned())
}

/// Created with mode 0600 from the start; never replaces a file.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| UsageError(format!("--out: cannot create {}: {e}", path.display())))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}
