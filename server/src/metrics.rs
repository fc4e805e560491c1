//! The Prometheus metrics other parts of kscale query. Names are part of kscale's contract: the
//! Prometheus rules, the adapter and the HPA refer to them.
//!
//! Encoded by `prometheus-client` as OpenMetrics text. Counters get `_total` appended on the wire
//! (`inference_requests` is scraped as `inference_requests_total`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Upper bounds of the duration buckets, in seconds. Sub-second buckets resolve short test and
/// benchmark settings; from 10 s (one default inference) they resolve whole rounds of queueing up
/// to ten minutes, the worst case of the default queue.
const DURATION_BUCKETS: [f64; 26] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0, 20.0, 25.0,
    30.0, 40.0, 50.0, 60.0, 90.0, 120.0, 180.0, 240.0, 300.0, 600.0,
];

/// Status code a request gets counted under when its client left before the answer (nginx's
/// convention; never sent on the wire).
pub const CLIENT_CLOSED: u16 = 499;

/// Label set of `inference_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: u16,
}

/// Live metrics of one server process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Arrival to response of every inference that answered 200 (queue wait included).
    pub duration: Histogram,
    requests: Family<CodeLabel, Counter>,
    /// Requests in inference now.
    pub in_flight: Gauge,
    /// Requests waiting for a worker now.
    pub queue_depth: Gauge,
    /// Queued requests whose client went away before a worker took them.
    pub abandoned: Counter,
    /// Connections closed because a response write made no progress (WRITE_TIMEOUT_SECONDS).
    pub write_timeouts: Counter,
    /// Requests answered by the overload lane while MAX_CONNECTIONS connections were open.
    pub overload: Counter,
}

impl Metrics {
    /// Registers every metric; `workers` and `max_queue` are published as constant gauges.
    pub fn new(workers: u32, max_queue: u32) -> Self {
        let mut registry = Registry::default();
        let duration = Histogram::new(DURATION_BUCKETS);
        registry.register_with_unit(
            "inference_request_duration",
            "Time from a request's arrival to its response, queue wait included, for inferences answered with 200",
            prometheus_client::registry::Unit::Seconds,
            duration.clone(),
        );
        let requests = Family::<CodeLabel, Counter>::default();
        registry.register(
            "inference_requests",
            "Inference requests (POST /infer, GET /, POST /v1/completions, POST /v1/chat/completions) by HTTP status code; 499 means the client left first",
            requests.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "inference_requests_in_flight",
            "Requests in inference now",
            in_flight.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "inference_queue_depth",
            "Requests waiting for a worker now",
            queue_depth.clone(),
        );
        let workers_gauge = Gauge::<i64>::default();
        workers_gauge.set(i64::from(workers));
        registry.register(
            "inference_workers",
            "Requests served at once (WORKERS)",
            workers_gauge,
        );
        let capacity = Gauge::<i64>::default();
        capacity.set(i64::from(max_queue));
        registry.register(
            "inference_queue_capacity",
            "Requests allowed to wait (MAX_QUEUE)",
            capacity,
        );
        let abandoned = Counter::default();
        registry.register(
            "inference_requests_abandoned",
            "Queued requests whose client disconnected before a worker took them; they never reached inference",
            abandoned.clone(),
        );
        let write_timeouts = Counter::default();
        registry.register(
            "kscale_server_write_timeouts",
            "Connections closed because a response write made no progress for WRITE_TIMEOUT_SECONDS (a client that does not read)",
            write_timeouts.clone(),
        );
        let overload = Counter::default();
        registry.register(
            "kscale_server_overload_requests",
            "Requests answered by the overload lane while MAX_CONNECTIONS connections were open: probes and /metrics served, everything else 503",
            overload.clone(),
        );
        registry.register(
            "kscale_server_build",
            "Version of the running kscale-server",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Self {
            registry,
            duration,
            requests,
            in_flight,
            queue_depth,
            abandoned,
            write_timeouts,
            overload,
        }
    }

    /// Counts one inference request under its final status code.
    pub fn count(&self, code: u16) {
        self.requests.get_or_create(&CodeLabel { code }).inc();
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
