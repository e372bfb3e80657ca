//! Prometheus metrics at `/metrics` (OpenMetrics text): invocations, fuel, latency
//! histograms, queue depth, capability denials, runs by outcome.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of per-plugin counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    /// `namespace:name`.
    pub plugin: String,
    /// `ok` or the failure kind.
    pub outcome: String,
}

/// Labels of denial counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DenialLabels {
    /// `namespace:name`.
    pub plugin: String,
    /// The denial kind (`http_denied`, `secret_denied`, …).
    pub kind: String,
}

/// Labels of run counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    /// Final status.
    pub status: String,
}

/// Labels of refused-request counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// 401 (no valid key) or 403 (role too weak).
    pub status: String,
    /// The route template (`/v1/keys/{id}`), or `unmatched`.
    pub route: String,
}

/// Every metric of the server.
pub struct Metrics {
    registry: Registry,
    /// Node invocations (attempts), by plugin and outcome.
    pub invocations: Family<PluginLabels, Counter>,
    /// Fuel consumed, by plugin.
    pub fuel: Family<PluginLabels, Counter>,
    /// Capability denials and quota hits inside plugins.
    pub denials: Family<DenialLabels, Counter>,
    /// Finished runs by status.
    pub runs: Family<RunLabels, Counter>,
    /// Invocation wall time, seconds.
    pub invocation_seconds: Histogram,
    /// Run latency from acceptance to finish, seconds.
    pub run_seconds: Histogram,
    /// Time runs waited in the queue, seconds.
    pub queue_wait_seconds: Histogram,
    /// Runs waiting for a worker.
    pub queue_depth: Gauge,
    /// Requests refused for their key (401) or its role (403), by route: what a
    /// security team watches for probing or a misconfigured client.
    pub refusals: Family<RefusalLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hyyve");
        let invocations = Family::<PluginLabels, Counter>::default();
        let fuel = Family::<PluginLabels, Counter>::default();
        let denials = Family::<DenialLabels, Counter>::default();
        let runs = Family::<RunLabels, Counter>::default();
        // 10 µs … ~84 s.
        let invocation_seconds = Histogram::new(exponential_buckets(0.000_01, 4.0, 12));
        let run_seconds = Histogram::new(exponential_buckets(0.000_1, 4.0, 11));
        let queue_wait_seconds = Histogram::new(exponential_buckets(0.000_1, 4.0, 11));
        let queue_depth = Gauge::default();
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "invocations",
            "Node invocations (attempts)",
            invocations.clone(),
        );
        registry.register("fuel", "Fuel consumed by invocations", fuel.clone());
        registry.register(
            "denials",
            "Capability denials and quota hits",
            denials.clone(),
        );
        registry.register("runs", "Finished runs by status", runs.clone());
        registry.register(
            "invocation_seconds",
            "Invocation wall time",
            invocation_seconds.clone(),
        );
        registry.register(
            "run_seconds",
            "Run latency from acceptance to finish",
            run_seconds.clone(),
        );
        registry.register(
            "queue_wait_seconds",
            "Time runs waited for a worker",
            queue_wait_seconds.clone(),
        );
        registry.register(
            "queue_depth",
            "Runs waiting for a worker",
            queue_depth.clone(),
        );
        registry.register(
            "api_refusals",
            "Requests refused for their key (401) or its role (403)",
            refusals.clone(),
        );
        Self {
            registry,
            invocations,
            fuel,
            denials,
            runs,
            invocation_seconds,
            run_seconds,
            queue_wait_seconds,
            queue_depth,
            refusals,
        }
    }
}

impl Metrics {
    /// The exposition text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
