//! What the gRPC families share: status codes (`google.golang.org/grpc/codes`)
//! and their names, full method names (`/helloworld.Greeter/SayHello`), and
//! the OpenTelemetry RPC attributes of a call's span.

use crate::span::{AttrValue, Attributes, Status, StatusCode};

/// gRPC status code names, indexed by code (`codes.Code`).
pub const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// `codes.Unknown`: what gRPC makes of an error that carries no status.
pub const UNKNOWN: i32 = 2;

/// The name of status `code`, or `None` for a code gRPC does not define.
pub fn code_name(code: i32) -> Option<&'static str> {
    usize::try_from(code)
        .ok()
        .and_then(|i| CODE_NAMES.get(i))
        .copied()
}

/// Which side of a call a span is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// True when `code` makes the span's status an error. OpenTelemetry's gRPC
/// conventions: on a client every code but OK; on a server only the codes
/// that say the server failed (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED,
/// INTERNAL, UNAVAILABLE, DATA_LOSS), not those blaming the request.
pub fn is_error(code: i32, side: Side) -> bool {
    match side {
        Side::Client => code != 0,
        Side::Server => matches!(code, 2 | 4 | 12 | 13 | 14 | 15),
    }
}

/// `/pkg.Service/Method` as (service, method); `None` for anything else.
pub fn split_method(full: &str) -> Option<(&str, &str)> {
    let (service, method) = full.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// The span name (`helloworld.Greeter/SayHello`) and the RPC attributes of
/// a call to `method`, ending with status `code` (when one was seen) and
/// `message`.
pub fn span_basics(
    method: Option<&str>,
    code: Option<i32>,
    message: Option<&str>,
    side: Side,
) -> (String, Attributes, Status) {
    let mut a = Attributes::new();
    a.insert("rpc.system.name".into(), "grpc".into());
    let name = match method.and_then(split_method) {
        Some((service, m)) => {
            a.insert("rpc.service".into(), service.into());
            a.insert("rpc.method".into(), m.into());
            format!("{service}/{m}")
        }
        // A method that could not be read or is not /service/method: the
        // span says only that it is gRPC.
        None => {
            if let Some(m) = method.filter(|m| !m.is_empty()) {
                a.insert("rpc.method".into(), m.into());
            }
            "grpc".to_owned()
        }
    };
    let mut status = Status::default();
    if let Some(c) = code {
        a.insert("rpc.grpc.status_code".into(), AttrValue::Int(i64::from(c)));
        if is_error(c, side) {
            a.insert(
                "error.type".into(),
                code_name(c)
                    .map_or_else(|| c.to_string(), str::to_owned)
                    .into(),
            );
            status = Status {
                code: StatusCode::Error,
                message: Some(match message.filter(|m| !m.is_empty()) {
                    Some(m) => m.to_owned(),
                    None => code_name(c).unwrap_or("error").to_owned(),
                }),
            };
        }
    }
    (name, a, status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_codes_and_errors() {
        assert_eq!(
            split_method("/helloworld.Greeter/SayHello"),
            Some(("helloworld.Greeter", "SayHello"))
        );
        assert_eq!(split_method("helloworld.Greeter/SayHello"), None);
        assert_eq!(split_method("/a/b/c"), None);
        assert_eq!(split_method("/a/"), None);
        assert_eq!(code_name(12), Some("UNIMPLEMENTED"));
        assert_eq!(code_name(17), None);
        assert_eq!(code_name(-1), None);
        assert!(is_error(5, Side::Client) && !is_error(5, Side::Server));
        assert!(is_error(14, Side::Server) && !is_error(0, Side::Client));

        let (name, a, st) = span_basics(
            Some("/helloworld.Greeter/SayGoodbye"),
            Some(12),
            Some("unknown method SayGoodbye for service helloworld.Greeter"),
            Side::Server,
        );
        assert_eq!(name, "helloworld.Greeter/SayGoodbye");
        assert_eq!(a["rpc.system.name"], AttrValue::from("grpc"));
        assert_eq!(a["rpc.service"], AttrValue::from("helloworld.Greeter"));
        assert_eq!(a["rpc.method"], AttrValue::from("SayGoodbye"));
        assert_eq!(a["rpc.grpc.status_code"], AttrValue::Int(12));
        assert_eq!(a["error.type"], AttrValue::from("UNIMPLEMENTED"));
        assert_eq!(st.code, StatusCode::Error);
        assert_eq!(
            st.message.as_deref(),
            Some("unknown method SayGoodbye for service helloworld.Greeter")
        );
        let (name, a, st) = span_basics(None, None, None, Side::Client);
        assert_eq!(name, "grpc");
        assert!(!a.contains_key("rpc.grpc.status_code"));
        assert_eq!(st, Status::default());
        let (_, _, st) = span_basics(Some("/s/m"), Some(5), None, Side::Server);
        assert_eq!(st, Status::default());
        let (_, _, st) = span_basics(Some("/s/m"), Some(5), None, Side::Client);
        assert_eq!(st.message.as_deref(), Some("NOT_FOUND"));
    }
}
