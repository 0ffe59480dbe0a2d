//! `--to otlp --endpoint URL`: OTLP/HTTP with protobuf bodies, pushed to
//! `URL/v1/traces` in batches (or, for metrics, to `URL/v1/metrics`).
//!
//! Following the OTLP/HTTP spec: 429, 502, 503 and 504 are retryable, with
//! exponential back-off that honours a `Retry-After` header (seconds); any
//! other non-2xx status is permanent; a 2xx response may carry a partial
//! success whose `rejected_spans` are counted.

use std::io::BufRead;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

use super::otlp_encode::Encoding;
use super::otlp_json::for_each_request;
use super::reader::SpanReader;
use super::{ExportError, Summary};

/// Why a push gave up.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("OTLP endpoint {url} unreachable after {tries} tries: {reason}")]
    Unreachable {
        url: String,
        tries: u32,
        reason: String,
    },
    #[error("OTLP endpoint {url} refused the batch: HTTP {status}{detail}")]
    Refused {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("OTLP endpoint {url} still answering HTTP {status} after {tries} tries")]
    GaveUp {
        url: String,
        status: u16,
        tries: u32,
    },
    #[error("OTLP endpoint {url} sent an undecodable response: {source}")]
    BadResponse {
        url: String,
        #[source]
        source: prost::DecodeError,
    },
}

/// How hard to try.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total attempts per batch, the first included.
    pub max_tries: u32,
    /// First back-off; doubled after every retry.
    pub initial_backoff: Duration,
    /// Longest single wait, also the cap on `Retry-After`.
    pub max_backoff: Duration,
    /// Per-request timeout (connect, send and receive).
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_tries: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

/// What a request carries, which decides its URL path and response type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    fn path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
        }
    }
}

/// The URL of a signal for an endpoint given as the collector's base URL
/// (the OTLP exporter convention); an endpoint that already names a signal's
/// path is taken as the base URL before it.
pub fn signal_url(endpoint: &str, signal: Signal) -> String {
    let mut base = endpoint.trim_end_matches('/');
    for s in [Signal::Traces, Signal::Metrics] {
        base = base.strip_suffix(s.path()).unwrap_or(base);
    }
    format!("{base}{}", signal.path())
}

/// The traces URL for an endpoint (see [`signal_url`]).
pub fn traces_url(endpoint: &str) -> String {
    signal_url(endpoint, Signal::Traces)
}

fn retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Pushes batches to one endpoint.
pub struct Pusher {
    agent: ureq::Agent,
    url: String,
    signal: Signal,
    policy: RetryPolicy,
}

/// What the receiver said about one batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub rejected: u64,
    pub message: Option<String>,
}

impl Pusher {
    pub fn new(endpoint: &str, policy: RetryPolicy) -> Pusher {
        Pusher::for_signal(endpoint, Signal::Traces, policy)
    }

    /// A pusher of `signal` requests to the endpoint's URL for that signal.
    pub fn for_signal(endpoint: &str, signal: Signal, policy: RetryPolicy) -> Pusher {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(policy.timeout))
            .build();
        Pusher {
            agent: config.into(),
            url: signal_url(endpoint, signal),
            signal,
            policy,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Send one encoded `ExportTraceServiceRequest` (or, for metrics,
    /// `ExportMetricsServiceRequest`), retrying as the policy says; the
    /// outcome counts rejected spans (or data points).
    pub fn send(&self, body: &[u8]) -> Result<BatchOutcome, SendError> {
        let mut backoff = self.policy.initial_backoff;
        let mut tries = 0;
        loop {
            tries += 1;
            let result = self
                .agent
                .post(&self.url)
                .header("Content-Type", "application/x-protobuf")
                .send(body);
            let wait = match result {
                Err(err) => {
                    if tries >= self.policy.max_tries {
                        return Err(SendError::Unreachable {
                            url: self.url.clone(),
                            tries,
                            reason: err.to_string(),
                        });
                    }
                    backoff
                }
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    if (200..300).contains(&status) {
                        let bytes = response.body_mut().read_to_vec().unwrap_or_default();
                        let bad = |source| SendError::BadResponse {
                            url: self.url.clone(),
                            source,
                        };
                        let partial = match self.signal {
                            Signal::Traces => ExportTraceServiceResponse::decode(bytes.as_slice())
                                .map_err(bad)?
                                .partial_success
                                .map(|p| (p.rejected_spans, p.error_message)),
                            Signal::Metrics => {
                                ExportMetricsServiceResponse::decode(bytes.as_slice())
                                    .map_err(bad)?
                                    .partial_success
                                    .map(|p| (p.rejected_data_points, p.error_message))
                            }
                        };
                        return Ok(partial
                            .map(|(rejected, message)| BatchOutcome {
                                rejected: rejected.max(0) as u64,
                                message: Some(message).filter(|m| !m.is_empty()),
                            })
                            .unwrap_or_default());
                    }
                    if !retryable(status) {
                        let text = response.body_mut().read_to_string().unwrap_or_default();
                        let detail = summarize_body(&text);
                        return Err(SendError::Refused {
                            url: self.url.clone(),
                            status,
                            detail,
                        });
                    }
                    if tries >= self.policy.max_tries {
                        return Err(SendError::GaveUp {
                            url: self.url.clone(),
                            status,
                            tries,
                        });
                    }
                    retry_after(response.headers()).unwrap_or(backoff)
                }
            };
            thread::sleep(wait.min(self.policy.max_backoff));
            backoff = (backoff * 2).min(self.policy.max_backoff);
        }
    }
}

/// `Retry-After` as delay-seconds (the form OTLP receivers send).
fn retry_after(headers: &ureq::http::HeaderMap) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A short, one-line version of an error body (receivers may send a
/// protobuf `google.rpc.Status`, JSON or text; only printable text is kept).
fn summarize_body(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .filter(|c| *c != '\u{fffd}')
        .collect();
    let clean = clean.split_whitespace().collect::<Vec<_>>().join(" ");
    if clean.is_empty() {
        String::new()
    } else {
        let short: String = clean.chars().take(200).collect();
        format!(": {short}")
    }
}

/// Read all spans and push them in batches of `batch_size`.
///
/// One batch is sent while the next is read and encoded (as the
/// OpenTelemetry SDK's batch processor exports in the background), so the
/// receiver's time overlaps with ours; batches still go out one at a time
/// and in order, and at most two are held.
pub fn convert<R: BufRead>(
    reader: &mut SpanReader<R>,
    pusher: &Pusher,
    batch_size: usize,
) -> Result<Summary, ExportError> {
    let (batches, incoming) = mpsc::sync_channel::<(Vec<u8>, u64)>(0);
    thread::scope(|scope| {
        let sender = scope.spawn(move || -> Result<Summary, SendError> {
            let mut summary = Summary::default();
            for (body, n) in incoming {
                let outcome = pusher.send(&body)?;
                let rejected = outcome.rejected.min(n);
                summary.rejected += rejected;
                summary.accepted += n - rejected;
                if outcome.message.is_some() {
                    summary.rejected_message = outcome.message;
                }
            }
            Ok(summary)
        });
        let read = for_each_request(reader, Encoding::Protobuf, batch_size, |batch| {
            let n = batch.len() as u64;
            let mut body = Vec::new();
            batch.finish(&mut body)?;
            // A closed channel means the sender gave up; its error is
            // reported below.
            batches
                .send((body, n))
                .map_err(|_| ExportError::Other("OTLP push stopped".to_owned()))
        });
        drop(batches);
        // The receiver's refusal comes first: it happened to an earlier batch
        // than anything reading found.
        let mut summary = match sender.join() {
            Ok(sent) => sent?,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        summary.spans = read?;
        summary.skipped = reader.skipped();
        Ok(summary)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_traces_url() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            signal_url("http://c:4318/v1/traces/", Signal::Metrics),
            "http://c:4318/v1/metrics"
        );
        assert_eq!(
            signal_url("http://c:4318", Signal::Metrics),
            "http://c:4318/v1/metrics"
        );
    }

    #[test]
    fn retries_only_what_the_spec_allows() {
        assert!(retryable(503) && retryable(429) && retryable(502) && retryable(504));
        assert!(!retryable(400) && !retryable(500) && !retryable(404));
    }

    #[test]
    fn error_bodies_become_one_line() {
        assert_eq!(summarize_body("bad\nrequest\r\n"), ": bad request");
        assert_eq!(summarize_body(""), "");
    }
}
