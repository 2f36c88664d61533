//! A real SMTP server on 127.0.0.1 for the tests, in this process: the protocol is
//! the `mailin` library's state machine; this file only moves bytes between it and
//! the sockets (plain, or rustls for STARTTLS and implicit TLS). It can be told to
//! accept, to answer 4xx or 5xx, or to drop the connection, to require AUTH PLAIN
//! or LOGIN, and it keeps every message it accepted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use mailin::response::{self, Response};
use mailin::{Action, AuthMechanism, Handler, SessionBuilder};

/// Transport security the server offers.
#[derive(Clone)]
pub enum Security {
    /// Plain text only.
    None,
    /// STARTTLS offered, with this certificate; AUTH only after it.
    StartTls(Arc<rustls::ServerConfig>),
    /// TLS from the first byte (port 465 style), with this certificate.
    Implicit(Arc<rustls::ServerConfig>),
}

/// The AUTH the server requires before `MAIL FROM`.
#[derive(Clone)]
pub struct Login {
    /// The user name accepted.
    pub user: String,
    /// Its password.
    pub password: String,
    /// The mechanisms offered.
    pub mechanisms: Vec<AuthMechanism>,
}

/// A connection, plain or TLS.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 250 to everything.
    Accept,
    /// 450 to the recipient (mailbox busy: try again later).
    Transient,
    /// 550 to the recipient (mailbox unavailable), except addresses with "admin".
    Permanent,
    /// Closes the connection right after accepting it.
    Drop,
    /// Greets, then never answers again.
    Silent,
    /// 550 to `MAIL FROM` (the relay refuses the sender: a relay-level failure).
    RejectSender,
    /// 421 to the recipient (service closing: a relay-level failure).
    Closing,
}

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    /// The envelope recipients.
    pub to: Vec<String>,
    /// The message as sent (headers and body).
    pub data: String,
    /// Whether it came over TLS.
    pub tls: bool,
    /// The user that authenticated, if any.
    pub user: Option<String>,
}

impl Received {
    /// The value of a header (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line);
                    continue;
                }
                break;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim().to_owned());
            }
        }
        value
    }
}

/// A running server.
#[derive(Clone)]
pub struct SmtpServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    mode: Arc<Mutex<Mode>>,
    received: Arc<Mutex<Vec<Received>>>,
    security: Security,
    login: Option<Login>,
}

#[derive(Clone)]
struct Session {
    mode: Mode,
    to: Vec<String>,
    data: Vec<u8>,
    received: Arc<Mutex<Vec<Received>>>,
    login: Option<Login>,
    /// Set when TLS is up (the mailin session owns the handler).
    tls: Arc<AtomicBool>,
    user: Option<String>,
}

impl Session {
    fn authenticate(&mut self, user: &str, password: &str) -> Response {
        match &self.login {
            Some(login) if login.user == user && login.password == password => {
                self.user = Some(user.to_owned());
                response::AUTH_OK
            }
            _ => response::INVALID_CREDENTIALS,
        }
    }
}

impl Handler for Session {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, _from: &str) -> Response {
        if self.mode == Mode::RejectSender {
            return Response::custom(550, "5.7.1 Sender address rejected".to_owned());
        }
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        match self.mode {
            Mode::Permanent if !to.contains("admin") => return response::NO_MAILBOX,
            Mode::Transient => {
                return Response::custom(450, "Mailbox busy, try again later".to_owned());
            }
            Mode::Closing => {
                return Response::custom(421, "4.3.2 Service shutting down".to_owned());
            }
            Mode::Permanent | Mode::Accept | Mode::Drop | Mode::Silent | Mode::RejectSender => {}
        }
        self.to.push(to.to_owned());
        response::OK
    }

    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        self.received.lock().unwrap().push(Received {
            to: std::mem::take(&mut self.to),
            data: String::from_utf8_lossy(&self.data).into_owned(),
            tls: self.tls.load(Ordering::SeqCst),
            user: self.user.clone(),
        });
        response::OK
    }

    fn auth_plain(&mut self, _authorization: &str, user: &str, password: &str) -> Response {
        self.authenticate(user, password)
    }

    fn auth_login(&mut self, user: &str, password: &str) -> Response {
        self.authenticate(user, password)
    }
}

impl SmtpServer {
    /// Starts a server answering as `mode`, in plain text, without AUTH.
    pub fn start(mode: Mode) -> Self {
        Self::start_with(mode, Security::None, None)
    }

    /// Starts a server answering as `mode`, offering `security`, and requiring
    /// `login` when given.
    pub fn start_with(mode: Mode, security: Security, login: Option<Login>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port on 127.0.0.1");
        let server = Self {
            port: listener.local_addr().unwrap().port(),
            mode: Arc::new(Mutex::new(mode)),
            received: Arc::new(Mutex::new(Vec::new())),
            security,
            login,
        };
        let this = server.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let this = this.clone();
                std::thread::spawn(move || this.serve(stream));
            }
        });
        server
    }

    /// Changes how it answers from the next connection on.
    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Every message accepted so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn serve(&self, stream: TcpStream) {
        let mode = *self.mode.lock().unwrap();
        if mode == Mode::Drop {
            return;
        }
        let tls_up = Arc::new(AtomicBool::new(false));
        let handler = Session {
            mode,
            to: Vec::new(),
            data: Vec::new(),
            received: Arc::clone(&self.received),
            login: self.login.clone(),
            tls: Arc::clone(&tls_up),
            user: None,
        };
        let mut builder = SessionBuilder::new("test.example.org");
        if let Security::StartTls(_) = self.security {
            builder.enable_start_tls();
        }
        for mechanism in self.login.iter().flat_map(|l| l.mechanisms.iter()) {
            builder.enable_auth(mechanism.clone());
        }
        let mut session = builder.build(IpAddr::from([127, 0, 0, 1]), handler);
        // One write per reply, sent at once (no Nagle delay against delayed ACKs).
        let _ = stream.set_nodelay(true);
        let mut io: BufReader<Box<dyn Stream>> = match &self.security {
            Security::Implicit(config) => {
                session.tls_active();
                tls_up.store(true, Ordering::SeqCst);
                BufReader::new(tls(config, Box::new(stream)))
            }
            Security::None | Security::StartTls(_) => BufReader::new(Box::new(stream)),
        };
        if reply(&session.greeting(), io.get_mut()).is_err() {
            return;
        }
        if mode == Mode::Silent {
            // Read and ignore everything until the client gives up.
            let mut sink = Vec::new();
            while io.read_until(b'\n', &mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
            return;
        }
        let mut line = Vec::new();
        loop {
            line.clear();
            match io.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let response = session.process(&line);
            match response.action {
                Action::NoReply => continue,
                Action::Close => {
                    let _ = reply(&response, io.get_mut());
                    return;
                }
                Action::Reply => {
                    if reply(&response, io.get_mut()).is_err() {
                        return;
                    }
                }
                Action::UpgradeTls => {
                    let Security::StartTls(config) = &self.security else {
                        return;
                    };
                    if reply(&response, io.get_mut()).is_err() {
                        return;
                    }
                    // The client waits for the 220 before its handshake: nothing is buffered.
                    io = BufReader::new(tls(config, io.into_inner()));
                    session.tls_active();
                    tls_up.store(true, Ordering::SeqCst);
                }
            }
        }
    }
}

/// `stream` wrapped in a TLS server session (the handshake happens on first use).
fn tls(config: &Arc<rustls::ServerConfig>, stream: Box<dyn Stream>) -> Box<dyn Stream> {
    let conn = rustls::ServerConnection::new(Arc::clone(config)).unwrap();
    Box::new(rustls::StreamOwned::new(conn, stream))
}

fn reply(response: &Response, writer: &mut dyn Stream) -> std::io::Result<()> {
    writer.write_all(&response.buffer()?)?;
    writer.flush()
}
