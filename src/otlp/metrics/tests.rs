use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use prometheus_client::registry::Registry;

use super::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Route {
    route: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Trace {
    trace_id: String,
}

struct Handles {
    registry: Registry,
    requests: Family<Route, Counter>,
    latency: HistogramWithExemplars<Trace>,
}

fn registry() -> Handles {
    let mut registry = crate::telemetry::new_registry();
    let requests = Family::<Route, Counter>::default();
    registry.register("app_requests", "Requests.", requests.clone());
    let in_flight = Gauge::<i64>::default();
    in_flight.set(3);
    registry.register("app_in_flight", "In flight.", in_flight);
    let latency = HistogramWithExemplars::new([0.1, 0.5, 1.0].into_iter());
    registry.register("app_latency_seconds", "Latency.", latency.clone());
    Handles {
        registry,
        requests,
        latency,
    }
}

fn text(registry: &Registry) -> String {
    crate::telemetry::encode(registry, Exposition::OpenMetrics, 0).unwrap()
}

fn find<'a>(request: &'a ExportMetricsServiceRequest, name: &str) -> &'a Metric {
    request.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} missing"))
}

fn sum_value(metric: &Metric) -> f64 {
    let Some(metric::Data::Sum(sum)) = &metric.data else {
        panic!("not a sum: {metric:?}");
    };
    match sum.data_points[0].value {
        Some(number_data_point::Value::AsDouble(v)) => v,
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_family_is_encoded_with_its_type_bounds_and_exemplars() {
    let h = registry();
    h.requests
        .get_or_create(&Route { route: "/a".into() })
        .inc_by(5);
    let trace = "0af7651916cd43dd8448eb211c80319c";
    h.latency.observe(
        0.3,
        Some(Trace {
            trace_id: trace.into(),
        }),
        None,
    );
    h.latency.observe(2.0, None, None);
    let mut encoder = MetricsEncoder::new(Temporality::Cumulative, SystemTime::now());
    let request = encoder.encode(&text(&h.registry), SystemTime::now(), &Default::default());
    let build = find(&request, "sidewatch_build_info");
    assert!(matches!(build.data, Some(metric::Data::Gauge(_))));
    let requests = find(&request, "app_requests_total");
    assert_eq!(sum_value(requests), 5.0);
    let Some(metric::Data::Sum(sum)) = &requests.data else {
        unreachable!()
    };
    assert!(sum.is_monotonic);
    assert_eq!(
        sum.aggregation_temporality,
        AggregationTemporality::Cumulative as i32
    );
    assert_eq!(sum.data_points[0].attributes[0].key, "route");
    let latency = find(&request, "app_latency_seconds");
    assert_eq!(latency.unit, "s");
    let Some(metric::Data::Histogram(histogram)) = &latency.data else {
        panic!("{latency:?}")
    };
    let point = &histogram.data_points[0];
    assert_eq!(point.explicit_bounds, [0.1, 0.5, 1.0]);
    assert_eq!(point.bucket_counts, [0, 1, 0, 1]);
    assert_eq!((point.count, point.sum), (2, Some(2.3)));
    assert_eq!(point.exemplars.len(), 1);
    assert_eq!(
        point.exemplars[0].trace_id,
        hex_id::<16>(trace).unwrap().to_vec()
    );
    let Some(metric::Data::Gauge(gauge)) = &find(&request, "app_in_flight").data else {
        panic!()
    };
    assert_eq!(
        gauge.data_points[0].value,
        Some(number_data_point::Value::AsDouble(3.0))
    );
}

#[test]
fn delta_reports_changes_since_the_last_accepted_export() {
    let h = registry();
    let counter = h
        .requests
        .get_or_create(&Route { route: "/a".into() })
        .clone();
    counter.inc_by(5);
    h.latency.observe(0.3, None, None);
    let mut encoder = MetricsEncoder::new(Temporality::Delta, SystemTime::now());
    let first = encoder.encode(&text(&h.registry), SystemTime::now(), &Default::default());
    assert_eq!(sum_value(find(&first, "app_requests_total")), 5.0);
    encoder.accepted();
    counter.inc_by(2);
    let failed = encoder.encode(&text(&h.registry), SystemTime::now(), &Default::default());
    assert_eq!(sum_value(find(&failed, "app_requests_total")), 2.0);
    // Not accepted: the next delta covers both intervals.
    counter.inc_by(1);
    h.latency.observe(0.7, None, None);
    let next = encoder.encode(&text(&h.registry), SystemTime::now(), &Default::default());
    assert_eq!(sum_value(find(&next, "app_requests_total")), 3.0);
    let Some(metric::Data::Histogram(histogram)) = &find(&next, "app_latency_seconds").data else {
        panic!()
    };
    let point = &histogram.data_points[0];
    assert_eq!(point.count, 1);
    assert_eq!(point.bucket_counts, [0, 0, 1, 0]);
    assert_eq!(
        histogram.aggregation_temporality,
        AggregationTemporality::Delta as i32
    );
}
