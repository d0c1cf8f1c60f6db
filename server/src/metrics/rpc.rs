//! [`RpcMetrics`]: calls by method and status code, and how long they took.

use std::{fmt, time::Duration};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};
use tonic::Code;

/// What the `rpc` wrapper records for every call that gets a status (one
/// the caller cancelled first is not counted). Cheap to clone: clones
/// count into the same series.
#[derive(Debug, Clone)]
pub struct RpcMetrics {
    /// `users_rpc_requests_total{method, code}`.
    requests: Family<CallLabels, Counter>,
    /// `users_rpc_duration_seconds{method}`: from the request's arrival to
    /// its status (for ExportUsers, to the start of the stream).
    durations: Family<MethodLabels, Histogram, fn() -> Histogram>,
}

/// Upper bounds of the latency buckets, in seconds: finest around the
/// millisecond a call usually takes, up to the 5 s pool timeout.
const LATENCY_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: &'static str,
    code: StatusCode,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

/// A gRPC status code as a label: its canonical name, `OK`, `NOT_FOUND`...
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
struct StatusCode(Code);

impl Default for RpcMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            durations: Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS)),
        }
    }
}

impl RpcMetrics {
    /// Counts one call of `method` that ended with `code` after `latency`.
    pub fn record(&self, method: &'static str, code: Code, latency: Duration) {
        self.requests
            .get_or_create(&CallLabels {
                method,
                code: StatusCode(code),
            })
            .inc();
        self.durations
            .get_or_create(&MethodLabels { method })
            .observe(latency.as_secs_f64());
    }

    /// Adds these metrics to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "users_rpc_requests",
            "gRPC calls answered, by method and status code",
            self.requests.clone(),
        );
        registry.register(
            "users_rpc_duration_seconds",
            "How long gRPC calls took, by method",
            self.durations.clone(),
        );
    }
}

impl EncodeLabelValue for StatusCode {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        EncodeLabelValue::encode(&users_client::code_name(self.0), encoder)
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::prometheus_text::encode;

    use super::*;

    #[test]
    fn calls_are_counted_by_method_and_code_and_timed_by_method() {
        let metrics = RpcMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.record("GetUser", Code::Ok, Duration::from_micros(700));
        metrics.record("GetUser", Code::Ok, Duration::from_micros(800));
        metrics.record("GetUser", Code::NotFound, Duration::from_millis(3));

        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for expected in [
            r#"users_rpc_requests_total{method="GetUser",code="OK"} 2"#,
            r#"users_rpc_requests_total{method="GetUser",code="NOT_FOUND"} 1"#,
            r#"users_rpc_duration_seconds_count{method="GetUser"} 3"#,
            r#"users_rpc_duration_seconds_bucket{method="GetUser",le="0.001"} 2"#,
            r#"users_rpc_duration_seconds_bucket{method="GetUser",le="0.005"} 3"#,
        ] {
            assert!(lines.contains(&expected), "{expected} not in\n{text}");
        }
    }
}
