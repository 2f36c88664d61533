//! A real SMTP server on 127.0.0.1 for the tests, in this process: the protocol is
//! the `mailin` library's state machine; this file only moves bytes between it and
//! the sockets. It can be told to accept, to answer 4xx or 5xx, or to drop the
//! connection, and it keeps every message it accepted.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use mailin::response::{self, Response};
use mailin::{Action, Handler, SessionBuilder};

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
}

#[derive(Clone)]
struct Session {
    mode: Mode,
    to: Vec<String>,
    data: Vec<u8>,
    received: Arc<Mutex<Vec<Received>>>,
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
        });
        response::OK
    }
}

impl SmtpServer {
    /// Starts a server answering as `mode`.
    pub fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port on 127.0.0.1");
        let server = Self {
            port: listener.local_addr().unwrap().port(),
            mode: Arc::new(Mutex::new(mode)),
            received: Arc::new(Mutex::new(Vec::new())),
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
        let handler = Session {
            mode,
            to: Vec::new(),
            data: Vec::new(),
            received: Arc::clone(&self.received),
        };
        let mut session =
            SessionBuilder::new("test.example.org").build(IpAddr::from([127, 0, 0, 1]), handler);
        // One write per reply, sent at once (no Nagle delay against delayed ACKs).
        let _ = stream.set_nodelay(true);
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        if reply(&session.greeting(), &mut writer).is_err() {
            return;
        }
        if mode == Mode::Silent {
            // Read and ignore everything until the client gives up.
            let mut sink = Vec::new();
            while reader.read_until(b'\n', &mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
            return;
        }
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let response = session.process(&line);
            match response.action {
                Action::NoReply => continue,
                Action::Close => {
                    let _ = reply(&response, &mut writer);
                    return;
                }
                Action::Reply | Action::UpgradeTls => {
                    if reply(&response, &mut writer).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

fn reply(response: &Response, writer: &mut TcpStream) -> std::io::Result<()> {
    writer.write_all(&response.buffer()?)?;
    writer.flush()
}
