//! The IMAP side of `[inbound]`: a session with the server (async-imap on
//! tokio; implicit TLS with tokio-rustls, the system's CA store plus
//! `ca_file`, or plain IMAP to this machine), the folder's messages read by UID
//! without marking them seen, and each moved once handled (`MOVE`, RFC 6851, or
//! `COPY`, `\Deleted` and `UID EXPUNGE` where the server has no `MOVE`). Every
//! exchange with the server is bounded by `[inbound] timeout`.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_imap::Session;
use futures_util::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::Inbound;

/// What a stream to the server must be.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Debug + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Debug + Send> Stream for T {}

/// A logged-in session, its folder selected.
pub(crate) struct Mailbox<T: Stream> {
    session: Session<T>,
    timeout: Duration,
    /// The server has `MOVE`.
    can_move: bool,
}

/// Runs `f`, or fails after `timeout` with `what`.
async fn bounded<F: Future<Output = Result<O, E>>, O, E: std::fmt::Display>(
    timeout: Duration,
    what: &str,
    f: F,
) -> Result<O, String> {
    match tokio::time::timeout(timeout, f).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(error)) => Err(format!("{what}: {error}")),
        Err(_) => Err(format!("{what}: no answer within {timeout:?}")),
    }
}

/// A logged-in session over TLS or plain TCP, its folder selected.
pub(crate) enum Connection {
    /// Plain IMAP (to this machine only).
    Plain(Mailbox<TcpStream>),
    /// Implicit TLS (boxed: its state is large).
    Tls(Box<Mailbox<tokio_rustls::client::TlsStream<TcpStream>>>),
}

/// Calls the same method on either kind of session.
macro_rules! either {
    ($self:ident, $m:ident => $e:expr) => {
        match $self {
            Connection::Plain($m) => $e,
            Connection::Tls($m) => $e,
        }
    };
}

impl Connection {
    /// Connects, logs in, makes the folders where messages go when missing, and
    /// selects the folder read; TLS or plain, as `[inbound] tls` says.
    ///
    /// # Errors
    /// Why the server could not be reached or refused the login.
    pub(crate) async fn open(config: &Inbound, password: &str) -> Result<Self, String> {
        let tcp = bounded(
            config.timeout,
            &format!("cannot reach {}:{}", config.host, config.port),
            TcpStream::connect((config.host.as_str(), config.port)),
        )
        .await?;
        if !config.tls {
            return Ok(Self::Plain(Mailbox::open(config, password, tcp).await?));
        }
        let connector = tokio_rustls::TlsConnector::from(tls_config(config)?);
        let name = rustls_pki_types::ServerName::try_from(config.host.clone())
            .map_err(|e| format!("inbound.host '{}': {e}", config.host))?;
        let stream = bounded(
            config.timeout,
            &format!("TLS with {}", config.host),
            connector.connect(name, tcp),
        )
        .await?;
        Ok(Self::Tls(Box::new(
            Mailbox::open(config, password, stream).await?,
        )))
    }

    /// The UIDs of the folder's messages, oldest first.
    ///
    /// # Errors
    /// What the server answered.
    pub(crate) async fn uids(&mut self) -> Result<Vec<u32>, String> {
        either!(self, m => m.uids().await)
    }

    /// One message, whole, left unseen; `None` when it is gone.
    ///
    /// # Errors
    /// What the server answered.
    pub(crate) async fn fetch(&mut self, uid: u32) -> Result<Option<Vec<u8>>, String> {
        either!(self, m => m.fetch(uid).await)
    }

    /// Moves one message to `folder`.
    ///
    /// # Errors
    /// What the server answered.
    pub(crate) async fn move_to(&mut self, uid: u32, folder: &str) -> Result<(), String> {
        either!(self, m => m.move_to(uid, folder).await)
    }

    /// Logs out (its failure is of no consequence: the messages are handled).
    pub(crate) async fn logout(self) {
        let mut this = self;
        let this = &mut this;
        either!(this, m => {
            let _ = tokio::time::timeout(m.timeout, m.session.logout()).await;
        });
    }
}

/// The TLS settings: the system's roots and `ca_file`'s.
fn tls_config(config: &Inbound) -> Result<Arc<rustls::ClientConfig>, String> {
    crate::secret::tls_client(config.ca_file.as_deref(), "inbound.ca_file").map(Arc::new)
}

impl<T: Stream> Mailbox<T> {
    /// Reads the greeting, logs in and prepares the folders.
    async fn open(config: &Inbound, password: &str, stream: T) -> Result<Self, String> {
        let mut client = async_imap::Client::new(stream);
        bounded(config.timeout, "the server's greeting", async {
            client
                .read_response()
                .await
                .map_err(|e| e.to_string())?
                .map(drop)
                .ok_or_else(|| "the server closed the connection".to_owned())
        })
        .await?;
        let login = tokio::time::timeout(config.timeout, client.login(&config.user, password));
        let session = match login.await {
            Ok(Ok(session)) => session,
            Ok(Err((error, _))) => {
                return Err(format!(
                    "the server refused the login of '{}': {error}",
                    config.user
                ));
            }
            Err(_) => return Err(format!("login: no answer within {:?}", config.timeout)),
        };
        let mut mailbox = Self {
            session,
            timeout: config.timeout,
            can_move: false,
        };
        mailbox.prepare(config).await?;
        Ok(mailbox)
    }

    /// Learns whether the server moves messages, makes the two folders where
    /// they go when missing, and selects the folder read.
    async fn prepare(&mut self, config: &Inbound) -> Result<(), String> {
        let capabilities = bounded(self.timeout, "CAPABILITY", self.session.capabilities()).await?;
        self.can_move = capabilities.has_str("MOVE");
        let names: Vec<String> = bounded(self.timeout, "LIST", async {
            let list = self.session.list(Some(""), Some("*")).await?;
            list.map_ok(|n| n.name().to_owned()).try_collect().await
        })
        .await?;
        for folder in [&config.processed_folder, &config.unmatched_folder] {
            if !names.iter().any(|n| n == folder) {
                bounded(
                    self.timeout,
                    &format!("cannot create the folder '{folder}'"),
                    self.session.create(folder),
                )
                .await?;
            }
        }
        bounded(
            self.timeout,
            &format!("cannot open the folder '{}'", config.folder),
            self.session.select(&config.folder),
        )
        .await?;
        Ok(())
    }

    /// The UIDs of the folder's messages, oldest first.
    ///
    /// # Errors
    /// What the server answered.
    pub(crate) async fn uids(&mut self) -> Result<Vec<u32>, String> {
        let mut uids: Vec<u32> =
            bounded(self.timeout, "UID SEARCH", self.session.uid_search("ALL"))
                .await?
                .into_iter()
                .collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// One message, whole, left unseen (`BODY.PEEK[]`); `None` when it is gone.
    ///
    /// # Errors
    /// What the server answered.
    pub(crate) async fn fetch(&mut self, uid: u32) -> Result<Option<Vec<u8>>, String> {
        let fetched: Vec<_> = bounded(self.timeout, "UID FETCH", async {
            let stream = self
                .session
                .uid_fetch(uid.to_string(), "(UID BODY.PEEK[])")
                .await?;
            stream.try_collect::<Vec<_>>().await
        })
        .await?;
        Ok(fetched
            .iter()
            .find(|f| f.uid == Some(uid))
            .or(fetched.first())
            .and_then(|f| f.body().map(<[u8]>::to_vec)))
    }

    /// Moves one message to `folder`.
    ///
    /// # Errors
    /// What the server answered.
    pub(crate) async fn move_to(&mut self, uid: u32, folder: &str) -> Result<(), String> {
        let what = format!("cannot move the message to '{folder}'");
        let set = uid.to_string();
        if self.can_move {
            return bounded(self.timeout, &what, self.session.uid_mv(&set, folder)).await;
        }
        bounded(self.timeout, &what, self.session.uid_copy(&set, folder)).await?;
        bounded(self.timeout, &what, async {
            let flagged = self
                .session
                .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
                .await?;
            flagged.try_collect::<Vec<_>>().await
        })
        .await?;
        bounded(self.timeout, &what, async {
            let gone = self.session.uid_expunge(&set).await?;
            gone.try_collect::<Vec<_>>().await
        })
        .await?;
        Ok(())
    }
}
