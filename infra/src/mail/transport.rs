//! Where mails go: an SMTP server (`SMTP_URL`), or, with none configured, `.eml` files in a
//! directory (lettre's file transport) so that no mail is lost in development.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use uuid::Uuid;

use super::templates::{Rendered, Template};

const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("SMTP_URL is not valid: {0}")]
    InvalidUrl(String),
    #[error("cannot create the mail directory {0}: {1}")]
    Directory(PathBuf, std::io::Error),
}

/// Why a mail was not sent. Transient failures are retried; permanent ones are recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    Transient(String),
    Permanent(String),
}

#[derive(Clone)]
pub enum MailTransport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

impl std::fmt::Debug for MailTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smtp(_) => f.write_str("MailTransport::Smtp"),
            Self::Files(_, dir) => write!(f, "MailTransport::Files({})", dir.display()),
        }
    }
}

impl MailTransport {
    /// SMTP when `smtp_url` is set (`smtp://host:port` plain, `smtp://…?tls=required` STARTTLS,
    /// `smtps://host:port` implicit TLS, `user:pass@` for authentication), else files in `dir`.
    pub fn new(smtp_url: Option<&str>, dir: &std::path::Path) -> Result<Self, TransportError> {
        match smtp_url.filter(|url| !url.trim().is_empty()) {
            Some(url) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.trim())
                    .map_err(|error| TransportError::InvalidUrl(error.to_string()))?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build();
                Ok(Self::Smtp(transport))
            }
            None => {
                std::fs::create_dir_all(dir)
                    .map_err(|error| TransportError::Directory(dir.to_path_buf(), error))?;
                Ok(Self::Files(AsyncFileTransport::new(dir), dir.to_path_buf()))
            }
        }
    }

    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        match self {
            Self::Smtp(smtp) => smtp.send(message).await.map(|_| ()).map_err(|error| {
                // 5xx answers are final; 4xx, timeouts, refused or dropped connections are not.
                if error.is_permanent() {
                    SendError::Permanent(error.to_string())
                } else {
                    SendError::Transient(error.to_string())
                }
            }),
            Self::Files(files, _) => files
                .send(message)
                .await
                .map(|_| ())
                .map_err(|error| SendError::Transient(error.to_string())),
        }
    }
}

/// What a mail is: the event (or scheduled run) it is about and its template.
#[derive(Debug, Clone, Copy)]
pub struct MailIdentity {
    pub source_id: Uuid,
    pub template: Template,
}

impl MailIdentity {
    /// The same `Message-ID` every time this mail is sent, so that a copy sent again (after
    /// a crash between the server's acceptance and our record of it, or after a reply lost on
    /// the way) is recognisably the same message to the receiving side.
    fn message_id(&self, sender: &Mailbox) -> String {
        format!(
            "<{}.{}@{}>",
            self.source_id,
            self.template.name(),
            sender.email.domain()
        )
    }
}

/// A multipart/alternative message (text first, HTML preferred by readers that can show it).
pub fn build_message(
    from: &str,
    to: &str,
    identity: MailIdentity,
    rendered: &Rendered,
) -> Result<Message, SendError> {
    let from: Mailbox = from
        .parse()
        .map_err(|error| SendError::Permanent(format!("invalid sender {from:?}: {error}")))?;
    let to: Mailbox = to
        .parse()
        .map_err(|error| SendError::Permanent(format!("invalid recipient: {error}")))?;
    Message::builder()
        .message_id(Some(identity.message_id(&from)))
        .from(from)
        .to(to)
        .subject(rendered.subject.clone())
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(rendered.text.clone()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(rendered.html.clone()),
                ),
        )
        .map_err(|error| SendError::Permanent(format!("cannot build the message: {error}")))
}
