//! A small SMTP server for tests: it speaks enough SMTP for lettre (EHLO/HELO, MAIL FROM, RCPT
//! TO, DATA, RSET, NOOP, QUIT), records every message it accepts, and can be told to refuse
//! mail for a while (421 / 451, as during an outage), to keep a mail without saying so, or to
//! stop listening and come back.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (headers and body, dot-unstuffed).
    pub data: String,
}

impl ReceivedMail {
    /// The decoded `Subject:` header.
    pub fn subject(&self) -> String {
        self.header("subject").unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let headers = self.data.split("\r\n\r\n").next().unwrap_or_default();
        // Unfold continuation lines first.
        let unfolded = headers.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.split("\r\n").find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| decode_words(value.trim()))
        })
    }

    /// The message body with quoted-printable soft breaks and escapes undone (good enough to
    /// search for text in either part).
    pub fn body_text(&self) -> String {
        let body = self
            .data
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .unwrap_or_default();
        decode_quoted_printable(body)
    }
}

fn decode_quoted_printable(text: &str) -> String {
    let text = text.replace("=\r\n", "");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'=' && index + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&text[index + 1..index + 3], 16) {
                out.push(byte);
                index += 3;
                continue;
            }
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`), as lettre writes non-ASCII;
/// the space between two encoded words is not part of the text.
fn decode_words(value: &str) -> String {
    use base64::Engine;
    let mut decoded = String::new();
    let mut previous_encoded = false;
    for word in value.split_whitespace() {
        let inner = word.strip_prefix("=?").and_then(|w| w.strip_suffix("?="));
        let text = inner.and_then(|inner| {
            let mut parts = inner.splitn(3, '?');
            let (_, encoding, encoded) = (parts.next(), parts.next()?, parts.next()?);
            match encoding.to_ascii_lowercase().as_str() {
                "b" => base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .ok()
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
                "q" => Some(decode_quoted_printable(&encoded.replace('_', " "))),
                _ => None,
            }
        });
        let encoded = text.is_some();
        let joins_encoded_words = encoded && previous_encoded;
        if !decoded.is_empty() && !joins_encoded_words {
            decoded.push(' ');
        }
        decoded.push_str(&text.unwrap_or_else(|| word.to_string()));
        previous_encoded = encoded;
    }
    decoded
}

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    /// 421 at the greeting: the service is not available (a transient failure).
    Unavailable,
    /// 451 to `MAIL FROM`: try again later.
    TryLater,
    /// 550 to `RCPT TO` for addresses containing "reject": a permanent failure.
    Accept550ForRejects,
    /// Keeps each message, then hangs up instead of answering that it did: to the sender the
    /// mail looks lost although the server has it.
    KeepThenHangUp,
}

#[derive(Default)]
struct Inner {
    received: Vec<ReceivedMail>,
    mode: Option<Mode>,
}

pub struct SmtpServer {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    listener: Option<JoinHandle<()>>,
}

impl SmtpServer {
    /// Listens on a free local port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("an address");
        let inner = Arc::new(Mutex::new(Inner {
            received: Vec::new(),
            mode: Some(Mode::Accept550ForRejects),
        }));
        let task = tokio::spawn(serve(listener, inner.clone()));
        Self {
            addr,
            inner,
            listener: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.lock().mode = Some(mode);
    }

    /// Stops listening (connections are refused) until `resume`.
    pub fn stop(&mut self) {
        if let Some(task) = self.listener.take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&mut self) {
        if self.listener.is_none() {
            let listener = TcpListener::bind(self.addr).await.expect("the same port");
            self.listener = Some(tokio::spawn(serve(listener, self.inner.clone())));
        }
    }

    pub fn received(&self) -> Vec<ReceivedMail> {
        self.lock().received.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(listener: TcpListener, inner: Arc<Mutex<Inner>>) {
    while let Ok((socket, _)) = listener.accept().await {
        tokio::spawn(session(socket, inner.clone()));
    }
}

fn mode(inner: &Mutex<Inner>) -> Mode {
    inner
        .lock()
        .map(|inner| inner.mode.unwrap_or(Mode::Accept))
        .unwrap_or(Mode::Accept)
}

async fn session(socket: TcpStream, inner: Arc<Mutex<Inner>>) -> std::io::Result<()> {
    // Replies are small writes: without this, delayed ACKs add ~40 ms to every exchange.
    socket.set_nodelay(true)?;
    let (reader, mut writer) = socket.into_split();
    let mut lines = BufReader::new(reader);
    if mode(&inner) == Mode::Unavailable {
        writer
            .write_all(b"421 test server unavailable, try later\r\n")
            .await?;
        return Ok(());
    }
    writer.write_all(b"220 test-smtp ready\r\n").await?;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_string();
        let upper = command.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-test-smtp\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
        } else if upper.starts_with("HELO") {
            b"250 test-smtp\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            if mode(&inner) == Mode::TryLater {
                b"451 local error, try again later\r\n"
            } else {
                from = address(&command["MAIL FROM:".len()..]);
                to.clear();
                b"250 OK\r\n"
            }
        } else if upper.starts_with("RCPT TO:") {
            let recipient = address(&command["RCPT TO:".len()..]);
            if mode(&inner) == Mode::Accept550ForRejects && recipient.contains("reject") {
                b"550 no such mailbox\r\n"
            } else {
                to.push(recipient);
                b"250 OK\r\n"
            }
        } else if upper == "DATA" {
            writer
                .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                data.push_str(unstuffed);
            }
            if let Ok(mut inner) = inner.lock() {
                inner.received.push(ReceivedMail {
                    from: from.clone(),
                    to: std::mem::take(&mut to),
                    data,
                });
            }
            if mode(&inner) == Mode::KeepThenHangUp {
                return Ok(());
            }
            b"250 OK queued\r\n"
        } else if upper == "RSET" {
            from.clear();
            to.clear();
            b"250 OK\r\n"
        } else if upper == "NOOP" {
            b"250 OK\r\n"
        } else if upper == "QUIT" {
            writer.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"502 command not implemented\r\n"
        };
        writer.write_all(reply).await?;
    }
}

/// `<ann@example.com> SIZE=12` → `ann@example.com`.
fn address(argument: &str) -> String {
    let argument = argument.trim();
    match (argument.find('<'), argument.find('>')) {
        (Some(start), Some(end)) if start < end => argument[start + 1..end].to_string(),
        _ => argument
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}
