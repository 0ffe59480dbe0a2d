//! Metrics as OTLP: one `ExportMetricsServiceRequest` per exposition, for
//! `--format otlp-json` (one request per line, the Collector file exporter's
//! format) and for the OTLP/HTTP push (`--to otlp --signal metrics`).
//!
//! One `ResourceMetrics` per resource seen, under the `goprobe` scope;
//! histograms carry explicit bounds in the instrument's unit, `sum`, `min`
//! and `max`; every stream is cumulative from `start_ns`. The skipped-lines
//! counter describes the input, not a target: it sits under a resource of
//! its own, `service.name = goprobe`.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1 as proto;
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::{
    Aggregator, Histogram, Instrument, LOSS_EFFECT, LOSS_REASON, LOST, LOST_DESCRIPTION, Label,
    LabelSet, PANICS, PANICS_DESCRIPTION, SKIPPED, SKIPPED_DESCRIPTION,
};
use crate::export::otlp_json::key_values;
use crate::export::otlp_schema::SCOPE_NAME;
use crate::span::{AttrValue, Attributes};

const CUMULATIVE: i32 = proto::AggregationTemporality::Cumulative as i32;

fn attributes(labels: &LabelSet) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|(k, v)| KeyValue {
            key: (*k).to_owned(),
            value: Some(AnyValue {
                value: Some(match v {
                    Label::Str(s) => any_value::Value::StringValue(s.clone()),
                    Label::Int(n) => any_value::Value::IntValue(*n),
                    Label::Bool(b) => any_value::Value::BoolValue(*b),
                }),
            }),
            ..Default::default()
        })
        .collect()
}

/// A duration in nanoseconds in a unit of `unit_ns` nanoseconds.
fn in_unit(ns: u128, unit_ns: u64) -> f64 {
    let unit = u128::from(unit_ns);
    (ns / unit) as f64 + (ns % unit) as f64 / unit_ns as f64
}

fn histogram_point(
    labels: &LabelSet,
    h: &Histogram,
    instrument: Instrument,
    start_ns: u64,
    time_ns: u64,
) -> proto::HistogramDataPoint {
    let info = instrument.info();
    proto::HistogramDataPoint {
        attributes: attributes(labels),
        start_time_unix_nano: start_ns,
        time_unix_nano: time_ns,
        count: h.count,
        sum: Some(in_unit(h.sum_ns, info.unit_ns)),
        bucket_counts: h.buckets.clone(),
        explicit_bounds: info
            .bounds_ns
            .iter()
            .map(|&b| in_unit(u128::from(b), info.unit_ns))
            .collect(),
        min: Some(in_unit(u128::from(h.min_ns), info.unit_ns)),
        max: Some(in_unit(u128::from(h.max_ns), info.unit_ns)),
        ..Default::default()
    }
}

fn counter(
    name: &str,
    description: &str,
    unit: &str,
    points: Vec<proto::NumberDataPoint>,
) -> proto::Metric {
    proto::Metric {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: unit.to_owned(),
        data: Some(proto::metric::Data::Sum(proto::Sum {
            data_points: points,
            aggregation_temporality: CUMULATIVE,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

fn int_point(labels: &LabelSet, n: u64, start_ns: u64, time_ns: u64) -> proto::NumberDataPoint {
    proto::NumberDataPoint {
        attributes: attributes(labels),
        start_time_unix_nano: start_ns,
        time_unix_nano: time_ns,
        value: Some(proto::number_data_point::Value::AsInt(
            i64::try_from(n).unwrap_or(i64::MAX),
        )),
        ..Default::default()
    }
}

fn resource_metrics(resource: Attributes, metrics: Vec<proto::Metric>) -> proto::ResourceMetrics {
    proto::ResourceMetrics {
        resource: Some(Resource {
            attributes: key_values(resource),
            ..Default::default()
        }),
        scope_metrics: vec![proto::ScopeMetrics {
            scope: Some(InstrumentationScope {
                name: SCOPE_NAME.to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                ..Default::default()
            }),
            metrics,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Everything aggregated so far as one request: streams cumulative from
/// `start_ns`, observed at `time_ns`.
pub fn request(agg: &Aggregator, start_ns: u64, time_ns: u64) -> ExportMetricsServiceRequest {
    let mut per_resource: Vec<Vec<proto::Metric>> = vec![Vec::new(); agg.resources().len()];
    for instrument in Instrument::ALL {
        let info = instrument.info();
        let mut points: Vec<Vec<proto::HistogramDataPoint>> =
            vec![Vec::new(); agg.resources().len()];
        for ((_, resource, labels), h) in agg
            .histograms
            .iter()
            .filter(|((inst, _, _), _)| *inst == instrument)
        {
            points[*resource].push(histogram_point(labels, h, instrument, start_ns, time_ns));
        }
        for (resource, data_points) in points.into_iter().enumerate() {
            if data_points.is_empty() {
                continue;
            }
            per_resource[resource].push(proto::Metric {
                name: info.name.to_owned(),
                description: info.description.to_owned(),
                unit: info.unit.to_owned(),
                data: Some(proto::metric::Data::Histogram(proto::Histogram {
                    data_points,
                    aggregation_temporality: CUMULATIVE,
                })),
                ..Default::default()
            });
        }
    }
    let mut panic_points: Vec<Vec<proto::NumberDataPoint>> =
        vec![Vec::new(); agg.resources().len()];
    for ((resource, labels), n) in &agg.panics {
        panic_points[*resource].push(int_point(labels, *n, start_ns, time_ns));
    }
    for (resource, points) in panic_points.into_iter().enumerate() {
        if !points.is_empty() {
            per_resource[resource].push(counter(PANICS, PANICS_DESCRIPTION, "{panic}", points));
        }
    }
    let mut resource_metrics_list: Vec<proto::ResourceMetrics> = agg
        .resources()
        .iter()
        .zip(per_resource)
        .filter(|(_, metrics)| !metrics.is_empty())
        .map(|(resource, metrics)| resource_metrics(resource.clone(), metrics))
        .collect();
    let mut own = Attributes::new();
    own.insert("service.name".into(), AttrValue::from("goprobe"));
    let mut own_metrics = vec![counter(
        SKIPPED,
        SKIPPED_DESCRIPTION,
        "{line}",
        vec![int_point(&Vec::new(), agg.skipped, start_ns, time_ns)],
    )];
    let lost: Vec<proto::NumberDataPoint> = agg
        .lost
        .iter()
        .map(|(reason, n)| {
            let labels: LabelSet = vec![
                (LOSS_REASON, Label::Str(reason.to_owned())),
                (
                    LOSS_EFFECT,
                    Label::Str(crate::loss::effect(reason).as_str().to_owned()),
                ),
            ];
            int_point(&labels, n, start_ns, time_ns)
        })
        .collect();
    if !lost.is_empty() {
        own_metrics.push(counter(LOST, LOST_DESCRIPTION, "{event}", lost));
    }
    resource_metrics_list.push(resource_metrics(own, own_metrics));
    ExportMetricsServiceRequest {
        resource_metrics: resource_metrics_list,
    }
}

/// Data points in a request (what a receiver accepts or rejects).
pub fn data_points(request: &ExportMetricsServiceRequest) -> u64 {
    request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(proto::metric::Data::Histogram(h)) => h.data_points.len(),
            Some(proto::metric::Data::Sum(s)) => s.data_points.len(),
            Some(proto::metric::Data::Gauge(g)) => g.data_points.len(),
            Some(proto::metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(proto::metric::Data::Summary(s)) => s.data_points.len(),
            None => 0,
        } as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Span;

    #[test]
    fn histograms_in_their_unit_with_bounds_and_counters() {
        let line = |attrs: &str, ns: u64| {
            format!(
                r#"{{"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","name":"n","kind":"server","start_time_unix_nano":1000,"end_time_unix_nano":{},"attributes":{{{attrs}}},"events":[{{"name":"exception","time_unix_nano":1500,"attributes":{{"exception.type":"string"}}}}],"resource":{{"service.name":"svc"}}}}"#,
                1000 + ns
            )
        };
        let mut agg = Aggregator::new();
        agg.add(
            &Span::from_json_line(&line(
                r#""http.request.method":"GET","http.response.status_code":200"#,
                7_500_000,
            ))
            .expect("span"),
        );
        agg.add(&Span::from_json_line(&line(r#""rpc.system":"grpc""#, 7_500_000)).expect("span"));
        let req = request(&agg, 1000, 2000);
        assert_eq!(
            data_points(&req),
            4,
            "two histograms, panics, skipped lines"
        );
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let names: Vec<_> = metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "http.server.request.duration",
                "rpc.server.duration",
                "goprobe.panics"
            ]
        );
        let Some(proto::metric::Data::Histogram(h)) = &metrics[0].data else {
            panic!("histogram")
        };
        let p = &h.data_points[0];
        assert_eq!(p.sum, Some(0.0075));
        assert_eq!(p.explicit_bounds[0], 0.005);
        assert_eq!(p.bucket_counts[..3], [0, 1, 0]);
        let Some(proto::metric::Data::Histogram(h)) = &metrics[1].data else {
            panic!("histogram")
        };
        assert_eq!(metrics[1].unit, "ms");
        assert_eq!(h.data_points[0].sum, Some(7.5));
        assert_eq!(h.data_points[0].explicit_bounds[1], 5.0);
        let Some(proto::metric::Data::Sum(s)) = &metrics[2].data else {
            panic!("sum")
        };
        assert!(s.is_monotonic);
        assert_eq!(
            s.data_points[0].value,
            Some(proto::number_data_point::Value::AsInt(2))
        );
        let json = serde_json::to_string(&req).expect("json");
        let back: ExportMetricsServiceRequest = serde_json::from_str(&json).expect("decode");
        assert_eq!(back, req);
    }
}
