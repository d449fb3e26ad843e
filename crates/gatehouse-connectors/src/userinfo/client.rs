//! The thin fetch layer: one userinfo call, its answer read within bounds.

use super::rules::CallRules;
use crate::outbound::{form_encode, read_limited};
use http::{HeaderMap, StatusCode};

/// Why a call produced no answer to classify.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer within the timeout.
    #[error("timed out")]
    Timeout,
    /// Connection refused, reset, DNS failure, TLS failure.
    #[error("unreachable")]
    Unreachable,
    /// The body could not be read within bounds.
    #[error(transparent)]
    Body(#[from] crate::outbound::BodyError),
}

/// What came back.
pub(super) struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body (at most `max_body` bytes).
    pub body: Vec<u8>,
}

/// Calls userinfo endpoints (never follows redirects; see [`crate::outbound`]).
pub(super) struct IdpClient {
    client: reqwest::Client,
    method: reqwest::Method,
    post_body: bool,
    max_body: usize,
}

impl IdpClient {
    /// A client for `rules`, over `client` (timeout and proxy already set).
    pub(super) fn new(client: reqwest::Client, rules: &CallRules) -> Self {
        Self {
            client,
            method: rules.method.clone(),
            post_body: rules.post_body,
            max_body: rules.max_body,
        }
    }

    /// Sends `token` to `url` and reads the answer.
    pub(super) async fn call(&self, url: &reqwest::Url, token: &str) -> Result<Reply, CallError> {
        let mut rb = self
            .client
            .request(self.method.clone(), url.clone())
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(http::header::ACCEPT, "application/json");
        if self.post_body {
            rb = rb
                .header(
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(format!("access_token={}", form_encode(token)));
        }
        let mut resp = rb.send().await.map_err(|e| {
            if e.is_timeout() {
                CallError::Timeout
            } else {
                CallError::Unreachable
            }
        })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = read_limited(&mut resp, self.max_body).await?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}
