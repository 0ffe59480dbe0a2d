//! What the stack formats (pprof, folded stacks, flame graphs) keep of a
//! span while its trace is open, and the stacks they draw.
//!
//! A held span is a few numbers: its ids, times, and its name, service and
//! route as indices into a table of distinct strings, so the trace-grouping
//! window costs tens of bytes per span instead of the whole span.
//!
//! A stack starts with the span's service (resource `service.name`), so the
//! spans of two services never merge into one frame, then runs from the
//! root span down; where a trace crosses into another service (a client
//! span in one, the server span it called in another), that service's frame
//! comes again before its spans.

use std::borrow::Cow;
use std::collections::HashMap;

use super::traces::{Trace, TreeNode};
use super::view::{Attrs, SpanView};
use crate::span::{SpanId, TraceId};

/// The service name used when a resource has none, as OpenTelemetry SDKs do.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// Distinct strings, each with a small number.
#[derive(Debug, Default)]
pub struct Names {
    index: HashMap<String, u32>,
    list: Vec<String>,
}

impl Names {
    pub fn id(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.index.get(s) {
            return id;
        }
        let id = self.list.len() as u32;
        self.list.push(s.to_owned());
        self.index.insert(s.to_owned(), id);
        id
    }

    pub fn name(&self, id: u32) -> &str {
        self.list.get(id as usize).map_or("", String::as_str)
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// A span as the stack formats hold it.
#[derive(Debug, Clone)]
pub struct StackSpan {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    /// Frame of the span's name, in [`Names`].
    pub name: u32,
    /// Frame of its service.
    pub service: u32,
    /// Its `http.route`, when kept and present.
    pub route: Option<u32>,
}

impl TreeNode for StackSpan {
    fn trace_id(&self) -> TraceId {
        self.trace_id
    }
    fn span_id(&self) -> SpanId {
        self.span_id
    }
    fn parent_span_id(&self) -> Option<SpanId> {
        self.parent_span_id
    }
    fn start_time_unix_nano(&self) -> u64 {
        self.start_time_unix_nano
    }
    fn end_time_unix_nano(&self) -> u64 {
        self.end_time_unix_nano
    }
}

/// The service a resource describes: its `service.name`, or else
/// `unknown_service:` and the executable's file name, or `unknown_service`
/// (the OpenTelemetry defaults).
pub fn service_name<'a>(resource: &'a Attrs<'_>) -> Cow<'a, str> {
    if let Some(name) = resource.get_str("service.name").filter(|s| !s.is_empty()) {
        return Cow::Borrowed(name);
    }
    let exe = resource
        .get_str("process.executable.name")
        .or_else(|| {
            resource
                .get_str("process.executable.path")
                .and_then(|p| p.rsplit('/').next())
        })
        .filter(|s| !s.is_empty());
    match exe {
        Some(exe) => Cow::Owned(format!("{UNKNOWN_SERVICE}:{exe}")),
        None => Cow::Borrowed(UNKNOWN_SERVICE),
    }
}

impl StackSpan {
    /// `frame` turns a span or service name into the frame the format
    /// shows; `keep_route` keeps the `http.route` attribute.
    pub fn new(
        span: &SpanView<'_>,
        names: &mut Names,
        frame: fn(&str) -> Cow<'_, str>,
        keep_route: bool,
    ) -> StackSpan {
        StackSpan {
            trace_id: span.trace_id,
            span_id: span.span_id,
            parent_span_id: span.parent_span_id,
            start_time_unix_nano: span.start_time_unix_nano,
            end_time_unix_nano: span.end_time_unix_nano,
            name: names.id(&frame(&span.name)),
            service: names.id(&frame(&service_name(&span.resource))),
            route: if keep_route {
                span.attributes.get_str("http.route").map(|r| names.id(r))
            } else {
                None
            },
        }
    }
}

/// The frames of span `i`'s stack, root first, into `out` (`path` is
/// scratch space): see the module docs.
pub fn frames(trace: &Trace<StackSpan>, i: usize, path: &mut Vec<usize>, out: &mut Vec<u32>) {
    trace.stack_into(i, path);
    out.clear();
    let mut service = None;
    for span in path.iter().filter_map(|&j| trace.spans.get(j)) {
        if service != Some(span.service) {
            out.push(span.service);
            service = Some(span.service);
        }
        out.push(span.name);
    }
}

/// A span, service or function name as one folded-stack frame: `;` separates frames and a line
/// break would end the record, so both are replaced.
pub fn frame(name: &str) -> Cow<'_, str> {
    if !name.contains([';', '\n', '\r']) {
        return Cow::Borrowed(name);
    }
    Cow::Owned(
        name.chars()
            .map(|c| match c {
                ';' => ':',
                '\n' | '\r' => ' ',
                c => c,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view_line(id: u8, parent: Option<u8>, name: &str, resource: &str) -> String {
        let parent = parent
            .map(|p| format!(r#""parent_span_id":"{p:016x}","#))
            .unwrap_or_default();
        format!(
            r#"{{"trace_id":"{:032x}","span_id":"{id:016x}",{parent}"name":"{name}","kind":"server","start_time_unix_nano":1,"end_time_unix_nano":2,"attributes":{{"http.route":"/r"}},"resource":{resource}}}"#,
            1
        )
    }

    fn names_of(names: &Names, ids: &[u32]) -> Vec<String> {
        ids.iter().map(|&i| names.name(i).to_owned()).collect()
    }

    #[test]
    fn service_at_the_bottom_and_where_it_changes() {
        let mut names = Names::default();
        let lines = [
            view_line(1, None, "GET /a", r#"{"service.name":"front"}"#),
            view_line(2, Some(1), "GET", r#"{"service.name":"front"}"#),
            view_line(3, Some(2), "GET /b", r#"{"service.name":"back"}"#),
        ];
        let spans: Vec<StackSpan> = lines
            .iter()
            .map(|l| {
                let view = SpanView::parse(l).expect("view");
                StackSpan::new(&view, &mut names, |s| Cow::Borrowed(s), true)
            })
            .collect();
        assert_eq!(spans[0].route.map(|r| names.name(r)), Some("/r"));
        let trace = Trace::new(spans);
        let (mut path, mut out) = (Vec::new(), Vec::new());
        frames(&trace, 2, &mut path, &mut out);
        assert_eq!(
            names_of(&names, &out),
            ["front", "GET /a", "GET", "back", "GET /b"]
        );
        frames(&trace, 0, &mut path, &mut out);
        assert_eq!(names_of(&names, &out), ["front", "GET /a"]);
    }

    #[test]
    fn unknown_services_are_named_as_opentelemetry_does() {
        let attrs = |json: &str| -> Attrs<'static> {
            let line = view_line(1, None, "x", json);
            SpanView::parse(&line).expect("view").resource.to_static()
        };
        assert_eq!(service_name(&attrs(r#"{"service.name":"api"}"#)), "api");
        assert_eq!(
            service_name(&attrs(r#"{"process.executable.path":"/srv/bin/api"}"#)),
            "unknown_service:api"
        );
        assert_eq!(
            service_name(&attrs(r#"{"service.name":"","process.pid":3}"#)),
            "unknown_service"
        );
    }
}
