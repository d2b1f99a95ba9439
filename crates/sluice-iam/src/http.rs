//! The credential endpoints' requests (ECS, IMDS, STS) through Sluice's one-shot HTTP client
//! (`sluice-http`), every request bounded in time and size.

use std::time::Duration;

pub(crate) use sluice_http::{Method, Response};

/// Answers larger than this are refused: credentials fit in a few KiB.
const MAX_BODY: usize = 256 * 1024;

/// Sends one request. Errors are short sentences naming the URL, never a header value.
pub(crate) async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Response, String> {
    sluice_http::request(method, url, headers, body, timeout, sluice_http::Body::Keep(MAX_BODY))
        .await
        .map_err(|e| e.to_string())
}
