//! Reading an import feed from where it lives: a file, or an `http://` / `https://` URL.
//!
//! One [`FeedReader`] per process holds the HTTP client (its connection pool and TLS roots are
//! built once). https is checked against the system's roots and, for a feed server behind a
//! private CA, the certificates of [`FeedSettings::ca_file`].

use std::error::Error as StdError;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::redirect;

/// Feeds larger than this are refused (a calendar is a few thousand rows).
pub const MAX_FEED_BYTES: usize = 32 * 1024 * 1024;

/// Redirects followed at most: a moved feed, not a loop.
pub const MAX_REDIRECTS: usize = 3;

/// Connecting gives up sooner than the whole fetch: a server that is down fails fast.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How feeds are fetched over http(s).
#[derive(Debug, Clone)]
pub struct FeedSettings {
    /// How long a fetch may take, from connecting to the last byte.
    pub timeout: Duration,
    /// A PEM file of CA certificates trusted besides the system's roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            ca_file: None,
        }
    }
}

/// Why no reader could be built: a bad CA file stops the start rather than the monthly run.
#[derive(Debug, thiserror::Error)]
pub enum FeedSetupError {
    #[error("cannot read the CA file {0}: {1}")]
    CaFile(String, #[source] std::io::Error),
    #[error("the CA file {0} is not PEM certificates: {1}")]
    BadCa(String, String),
    #[error("the CA file {0} holds no certificate")]
    EmptyCa(String),
    #[error("cannot build the HTTP client for feeds: {0}")]
    Client(String),
}

#[derive(Debug, thiserror::Error)]
pub enum FeedSourceError {
    #[error("cannot read the feed {0}: {1}")]
    File(String, #[source] std::io::Error),
    /// The certificate or the handshake (an unknown CA, a wrong host name, not TLS at all).
    #[error(
        "cannot fetch the feed {0}: TLS failed: {1} (a server behind a private CA needs that CA \
         in ESHOP_FEED_CA_FILE)"
    )]
    Tls(String, String),
    #[error("cannot fetch the feed {0}: cannot connect: {1}")]
    Unreachable(String, String),
    #[error("cannot fetch the feed {0}: no complete answer within {1:?}")]
    TimedOut(String, Duration),
    #[error("cannot fetch the feed {0}: {1}")]
    Redirect(String, String),
    #[error("cannot fetch the feed {0}: it answered {1}")]
    Status(String, reqwest::StatusCode),
    #[error("cannot fetch the feed {0}: {1}")]
    Http(String, String),
    #[error("the feed {0} is larger than {MAX_FEED_BYTES} bytes")]
    TooLarge(String),
    #[error("the feed {0} is not UTF-8 text")]
    NotText(String),
}

/// Reads feeds; cheap to clone (clones share the client).
#[derive(Debug, Clone)]
pub struct FeedReader {
    http: reqwest::Client,
    timeout: Duration,
}

impl FeedReader {
    pub fn new(settings: &FeedSettings) -> Result<Self, FeedSetupError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("eshop/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(settings.timeout))
            .redirect(redirect::Policy::custom(follow_redirect));
        if let Some(path) = &settings.ca_file {
            for certificate in ca_certificates(path)? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder
            .build()
            .map_err(|error| FeedSetupError::Client(causes(&error)))?;
        Ok(Self {
            http,
            timeout: settings.timeout,
        })
    }

    /// The feed's text. A URL answering other than 2xx is an error naming the status.
    pub async fn read(&self, source: &str) -> Result<String, FeedSourceError> {
        let bytes = if source.starts_with("http://") || source.starts_with("https://") {
            self.fetch(source).await?
        } else {
            let path = source.strip_prefix("file://").unwrap_or(source);
            tokio::fs::read(path)
                .await
                .map_err(|error| FeedSourceError::File(source.into(), error))?
        };
        if bytes.len() > MAX_FEED_BYTES {
            return Err(FeedSourceError::TooLarge(source.into()));
        }
        String::from_utf8(bytes).map_err(|_| FeedSourceError::NotText(source.into()))
    }

    async fn fetch(&self, url: &str) -> Result<Vec<u8>, FeedSourceError> {
        let failed = |error: reqwest::Error| self.failure(url, &error);
        let mut response = self.http.get(url).send().await.map_err(failed)?;
        let status = response.status();
        if !status.is_success() {
            return Err(FeedSourceError::Status(url.into(), status));
        }
        if response
            .content_length()
            .is_some_and(|length| length > MAX_FEED_BYTES as u64)
        {
            return Err(FeedSourceError::TooLarge(url.into()));
        }
        // Chunk by chunk: a server that sends no length cannot make us hold more than the limit.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > MAX_FEED_BYTES {
                return Err(FeedSourceError::TooLarge(url.into()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Names what went wrong in words an operator can act on.
    fn failure(&self, url: &str, error: &reqwest::Error) -> FeedSourceError {
        if let Some(tls) = tls_error(error) {
            FeedSourceError::Tls(url.into(), tls.to_string())
        } else if error.is_timeout() {
            FeedSourceError::TimedOut(url.into(), self.timeout)
        } else if error.is_redirect() {
            FeedSourceError::Redirect(url.into(), causes(error))
        } else if error.is_connect() {
            FeedSourceError::Unreachable(url.into(), causes(error))
        } else {
            FeedSourceError::Http(url.into(), causes(error))
        }
    }
}

/// At most [`MAX_REDIRECTS`], and never from https down to plain http.
fn follow_redirect(attempt: redirect::Attempt) -> redirect::Action {
    // `previous` holds the first URL too: one more than the redirects followed so far.
    if attempt.previous().len() > MAX_REDIRECTS {
        return attempt.error(RedirectRefused(format!(
            "more than {MAX_REDIRECTS} redirects"
        )));
    }
    let from_https = attempt
        .previous()
        .last()
        .is_some_and(|from| from.scheme() == "https");
    if from_https && attempt.url().scheme() != "https" {
        let to = attempt.url().to_string();
        return attempt.error(RedirectRefused(format!(
            "a redirect from https to {to} (not https)"
        )));
    }
    attempt.follow()
}

#[derive(Debug, thiserror::Error)]
#[error("refused {0}")]
struct RedirectRefused(String);

fn ca_certificates(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, FeedSetupError> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path).map_err(|error| FeedSetupError::CaFile(shown.clone(), error))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|error| FeedSetupError::BadCa(shown.clone(), causes(&error)))?;
    if certificates.is_empty() {
        return Err(FeedSetupError::EmptyCa(shown));
    }
    Ok(certificates)
}

/// rustls's own error, somewhere down reqwest's chain.
fn tls_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(tls) = as_rustls(error) {
            return Some(tls);
        }
        next = error.source();
    }
    None
}

/// The link is rustls's error, or wraps it where `source()` does not look: tokio-rustls hands
/// it up inside an `io::Error`, maybe wrapped in another, and `io::Error::source()` skips the
/// error it wraps.
fn as_rustls<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    if let Some(io) = error.downcast_ref::<std::io::Error>() {
        let inner: &(dyn StdError + 'static) = io.get_ref()?;
        return as_rustls(inner);
    }
    None
}

/// The causes under reqwest's "error sending request for url (…)", which says little.
fn causes(error: &(dyn StdError + 'static)) -> String {
    let mut said: Vec<String> = Vec::new();
    let mut next = error.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if said.last() != Some(&text) {
            said.push(text);
        }
        next = cause.source();
    }
    if said.is_empty() {
        error.to_string()
    } else {
        said.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_ca_file(contents: &str) -> Result<FeedReader, FeedSetupError> {
        let path = std::env::temp_dir().join(format!("eshop-ca-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&path, contents).expect("written");
        let reader = FeedReader::new(&FeedSettings {
            ca_file: Some(path.clone()),
            ..FeedSettings::default()
        });
        let _ = std::fs::remove_file(path);
        reader
    }

    #[test]
    fn a_ca_file_that_is_missing_or_holds_no_certificate_is_refused_at_once() {
        let missing = FeedReader::new(&FeedSettings {
            ca_file: Some("/nonexistent/eshop-ca.pem".into()),
            ..FeedSettings::default()
        });
        assert!(
            matches!(missing, Err(FeedSetupError::CaFile(..))),
            "{missing:?}"
        );
        let empty = with_ca_file("not a certificate\n");
        assert!(
            matches!(empty, Err(FeedSetupError::EmptyCa(_))),
            "{empty:?}"
        );
        let broken = with_ca_file("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n");
        assert!(broken.is_err(), "{broken:?}");
    }

    #[test]
    fn without_a_ca_file_the_reader_uses_the_system_roots() {
        assert!(FeedReader::new(&FeedSettings::default()).is_ok());
    }
}
