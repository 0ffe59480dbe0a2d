//! OpenTelemetry semantic-convention rules that are not about any one
//! probe: addresses (`server.address`/`server.port`), `url.full`,
//! `network.protocol.version`, and span status from an HTTP status code.

use crate::span::{SpanKind, Status, StatusCode};

/// The version of the semantic conventions goprobe's spans follow
/// (`db.system.name`, `code.function.name`: stable since 1.33), as the
/// schema URL OTLP output carries.
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.37.0";

/// `host:port`, `[v6]:port` or `host` -> (host, port).
pub fn split_host_port(s: &str) -> Option<(&str, Option<i64>)> {
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (h, tail) = rest.split_once(']')?;
        return Some((h, tail.strip_prefix(':').and_then(|p| p.parse().ok())));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, p.parse().ok())),
        _ => Some((s, None)),
    }
}

/// The port a URL scheme implies when the address names none.
pub fn default_port(scheme: &str) -> Option<i64> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// `url.full` from what a probe read: only when both the scheme and the
/// host are known (neither is guessed); an empty query adds no `?`.
pub fn url_full(scheme: &str, host: &str, path: &str, query: Option<&str>) -> Option<String> {
    if scheme.is_empty() || host.is_empty() {
        return None;
    }
    let mut url = format!("{scheme}://{host}{path}");
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        url.push('?');
        url.push_str(q);
    }
    Some(url)
}

/// `network.protocol.version` of an HTTP protocol string (`HTTP/1.1` -> `1.1`, `HTTP/2.0` -> `2`).
pub fn http_protocol_version(proto: &str) -> &str {
    match proto {
        "HTTP/1.0" => "1.0",
        "HTTP/1.1" => "1.1",
        "HTTP/2.0" => "2",
        other => other.strip_prefix("HTTP/").unwrap_or(other),
    }
}

/// Span status from an HTTP response status code: an error for 5xx on
/// server spans, for 4xx and 5xx on client spans; unset otherwise.
pub fn http_status(code: i64, kind: SpanKind) -> Status {
    let floor = if kind == SpanKind::Server { 500 } else { 400 };
    if code >= floor {
        Status {
            code: StatusCode::Error,
            message: None,
        }
    } else {
        Status::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("a:1"), Some(("a", Some(1))));
        assert_eq!(split_host_port("[::1]:8"), Some(("::1", Some(8))));
        assert_eq!(split_host_port("::1"), Some(("::1", None)));
        assert_eq!(split_host_port(""), None);
    }

    #[test]
    fn urls_versions_statuses() {
        assert_eq!(
            url_full("https", "api.example", "/x", Some("a=1")).as_deref(),
            Some("https://api.example/x?a=1")
        );
        assert_eq!(
            url_full("http", "h", "/", Some("")).as_deref(),
            Some("http://h/")
        );
        assert_eq!(url_full("", "h", "/", None), None);
        assert_eq!(http_protocol_version("HTTP/2.0"), "2");
        assert_eq!(http_protocol_version("HTTP/3"), "3");
        assert_eq!(http_status(404, SpanKind::Server).code, StatusCode::Unset);
        assert_eq!(http_status(404, SpanKind::Client).code, StatusCode::Error);
        assert_eq!(http_status(503, SpanKind::Server).code, StatusCode::Error);
    }
}
