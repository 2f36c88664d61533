//! The `smtp` transport: a relay reached with lettre over tokio, with pooled
//! connections.
//!
//! TLS is `starttls` (required, certificate verified) by default, `tls` (implicit,
//! port 465), or `none`, which must be configured explicitly. Replies are sorted
//! as Postfix does: 5xx and invalid addresses are permanent, everything else
//! (4xx, refused or dropped connections, timeouts) is transient and retried.

use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::Outcome;
use crate::config::{Smtp, Tls};

/// A pooled connection to the relay.
#[derive(Clone)]
pub struct Relay {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    timeout: std::time::Duration,
}

impl Relay {
    /// Prepares the pool; nothing connects before the first message.
    ///
    /// # Errors
    /// When the TLS settings cannot be built for this host.
    pub fn new(config: &Smtp, pool_size: usize) -> Result<Self, String> {
        let builder = match config.tls {
            Tls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                .map_err(|e| format!("smtp: {e}"))?,
            Tls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                .map_err(|e| format!("smtp: {e}"))?,
            Tls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
        };
        let mut builder = builder
            .port(config.port)
            .timeout(Some(config.timeout))
            .pool_config(PoolConfig::new().max_size(pool_size as u32));
        if let (Some(user), Some(source)) = (&config.username, &config.password) {
            let password = source.read()?;
            builder = builder.credentials(Credentials::new(user.clone(), password.0));
        }
        Ok(Self {
            transport: builder.build(),
            timeout: config.timeout,
        })
    }

    /// Hands one message to the relay. A relay that stops answering mid-way is
    /// given up on after a few exchange timeouts (a transient failure), so that it
    /// never holds the dispatcher.
    pub async fn send(&self, message: lettre::Message) -> Outcome {
        let limit = self.timeout.saturating_mul(3);
        let Ok(result) = tokio::time::timeout(limit, self.transport.send(message)).await else {
            return Outcome::Transient(format!(
                "the relay did not answer within {}",
                humantime::format_duration(limit)
            ));
        };
        match result {
            Ok(response) => Outcome::Sent(format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )),
            Err(error) if error.is_permanent() => Outcome::Permanent(describe(&error)),
            Err(error) => Outcome::Transient(describe(&error)),
        }
    }
}

/// The relay's reply when there is one, else what went wrong.
fn describe(error: &lettre::transport::smtp::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
