//! Reading an import feed from where it lives: a file, or an `http://` / `https://` URL.

use std::time::Duration;

/// Feeds larger than this are refused (a calendar is a few thousand rows).
pub const MAX_FEED_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FeedSourceError {
    #[error("cannot read the feed {0}: {1}")]
    File(String, #[source] std::io::Error),
    #[error("cannot fetch the feed {0}: {1}")]
    Http(String, String),
    #[error("the feed {0} is larger than {MAX_FEED_BYTES} bytes")]
    TooLarge(String),
    #[error("the feed {0} is not UTF-8 text")]
    NotText(String),
}

/// The feed's text. A URL answering other than 2xx is an error naming the status.
pub async fn read(source: &str) -> Result<String, FeedSourceError> {
    let bytes = if source.starts_with("http://") || source.starts_with("https://") {
        let http = |error: reqwest::Error| FeedSourceError::Http(source.into(), error.to_string());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(http)?;
        let response = client.get(source).send().await.map_err(http)?;
        let status = response.status();
        if !status.is_success() {
            return Err(FeedSourceError::Http(
                source.into(),
                format!("answered {status}"),
            ));
        }
        if response
            .content_length()
            .is_some_and(|length| length > MAX_FEED_BYTES as u64)
        {
            return Err(FeedSourceError::TooLarge(source.into()));
        }
        response.bytes().await.map_err(http)?.to_vec()
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
