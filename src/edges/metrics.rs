//! `GET /metrics`: the node's metrics in Prometheus' text format, for Prometheus and for
//! `nudge loadgen`.
//!
//! What a scrape shows: user actors active, the time the node took to answer each request (by
//! route, method and status class), the group-commit writer's batches, and how busy the async
//! runtime is (its workers, tasks, the tasks woken from other threads waiting to run, and the
//! time its workers spent running tasks). Other parts of the node register their own
//! collectors in [`Metrics::registry`]. When `NUDGE_METRICS_TOKEN` is set, a scrape
//! must carry it as `Authorization: Bearer …`.

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, Metric, MetricFamily, MetricType};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntGauge, IntGaugeVec, Registry, TextEncoder,
};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tokio::runtime::{Handle, RuntimeMetrics};

use super::{ApiError, AppState};
use crate::store::{Backend, StoreWriter};

/// The node's metrics registry and the scrape guard.
pub struct Metrics {
    registry: Registry,
    /// Set at each scrape from the Directory (an actor call, so not a pulled value).
    actors_active: IntGauge,
    /// The time from a request reaching the router to its response, by route.
    requests: HistogramVec,
    /// When set, scrapes must present it as a bearer token.
    token: Option<SecretString>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("guarded", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// The registry with the node's own metrics; `writer` is read at each scrape, and
    /// `backend` is the database the node stores in.
    pub fn new(
        writer: StoreWriter,
        backend: Backend,
        token: Option<SecretString>,
    ) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let store = IntGaugeVec::new(
            prometheus::Opts::new(
                "nudge_store_backend_info",
                "The database this node stores in: 1 under its name.",
            ),
            &["backend"],
        )?;
        store.with_label_values(&[backend.name()]).set(1);
        registry.register(Box::new(store))?;
        let actors_active = IntGauge::new(
            "nudge_user_actors_active",
            "User actors active on this node (passivated users hold no actor).",
        )?;
        registry.register(Box::new(actors_active.clone()))?;
        let requests = HistogramVec::new(
            HistogramOpts::new(
                "nudge_http_request_duration_seconds",
                "Time from a request reaching the router to its response, by route pattern \
                 (`unmatched` for no route), method and status class.",
            )
            .buckets(REQUEST_BUCKETS.to_vec()),
            &["route", "method", "status"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        let writer_stats: [Stat<StoreWriter>; 9] = [
            (
                "nudge_store_writer_batches_total",
                "Transactions of the group-commit writer.",
                MetricType::COUNTER,
                |w| w.stats().batches as f64,
            ),
            (
                "nudge_store_writer_writes_total",
                "Messages (with their usage rows) handed to the group-commit writer.",
                MetricType::COUNTER,
                |w| w.stats().writes as f64,
            ),
            (
                "nudge_store_writer_split_batches_total",
                "Batches refused as a whole and stored one write at a time.",
                MetricType::COUNTER,
                |w| w.stats().split_batches as f64,
            ),
            (
                "nudge_store_writer_busy_microseconds_total",
                "Time the group-commit writer spent committing (busy over wall time: saturation).",
                MetricType::COUNTER,
                |w| w.stats().busy_micros as f64,
            ),
            (
                "nudge_store_writer_queue_wait_microseconds_total",
                "Time writes waited for their group-commit batch to start, summed over writes.",
                MetricType::COUNTER,
                |w| w.stats().queue_wait_micros as f64,
            ),
            (
                "nudge_store_writer_largest_batch",
                "The most writes one transaction of the group-commit writer has taken.",
                MetricType::GAUGE,
                |w| w.stats().largest_batch as f64,
            ),
            (
                "nudge_store_wal_restarts_total",
                "Times SQLite's WAL restarted from its beginning (SQLite only).",
                MetricType::COUNTER,
                |w| w.stats().log_restarts as f64,
            ),
            (
                "nudge_store_wal_catch_up_checkpoints_total",
                "Checkpoints SQLite's batch thread ran itself between commits to get a long WAL \
                 restarted (SQLite only).",
                MetricType::COUNTER,
                |w| w.stats().catch_up_checkpoints as f64,
            ),
            (
                "nudge_store_wal_catch_up_microseconds_total",
                "Time those checkpoints held the next batch back (SQLite only).",
                MetricType::COUNTER,
                |w| w.stats().catch_up_micros as f64,
            ),
        ];
        register_pulled(&registry, &writer, &writer_stats)?;
        registry.register(Box::new(writer.commit_seconds()))?;
        registry.register(Box::new(writer.write_seconds()))?;
        if let Ok(runtime) = Handle::try_current() {
            register_runtime(&registry, &runtime)?;
        }
        Ok(Self {
            registry,
            actors_active,
            requests,
            token,
        })
    }

    /// Counts a request `route` (its pattern, or `None` when no route matched) answered with
    /// `status` after `took`.
    pub fn observe_request(
        &self,
        route: Option<&str>,
        method: &Method,
        status: StatusCode,
        took: Duration,
    ) {
        // Labels from a closed set, whatever the client sends: a flood of odd paths or
        // methods must not grow the series without bound.
        let method = match *method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            Method::HEAD => "HEAD",
            Method::OPTIONS => "OPTIONS",
            _ => "other",
        };
        let status = match status.as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .with_label_values(&[route.unwrap_or("unmatched"), method, status])
            .observe(took.as_secs_f64());
    }

    /// Where other parts of the node register their collectors.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// True when the request may read the metrics.
    fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| {
                bool::from(given.as_bytes().ct_eq(token.expose_secret().as_bytes()))
            })
    }
}

/// Bounds of the request-time histogram's buckets, in seconds: an SMS turn's reply is due
/// within 20 ms at half the node's peak, and a model's turn takes seconds.
const REQUEST_BUCKETS: [f64; 16] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

/// A statistic of some source `S` as a metric: name, help, type, and how to read it.
type Stat<S> = (&'static str, &'static str, MetricType, fn(&S) -> f64);

/// Registers `stats`, each read from `source` at every scrape.
fn register_pulled<S: Clone + Send + Sync + 'static>(
    registry: &Registry,
    source: &S,
    stats: &[Stat<S>],
) -> Result<(), prometheus::Error> {
    for &(name, help, kind, read) in stats {
        let source = source.clone();
        registry.register(Box::new(Pulled::new(
            name,
            help,
            kind,
            Box::new(move || read(&source)),
        )?))?;
    }
    Ok(())
}

/// Registers the metrics of the async runtime that `runtime` belongs to, read at each scrape.
///
/// The workers' busy time over wall time and workers is how saturated the node's CPU share
/// is; a global queue that stays deep means tasks woken from other threads (the database's
/// threads, timers) wait behind the workers' own queues.
fn register_runtime(registry: &Registry, runtime: &Handle) -> Result<(), prometheus::Error> {
    let stats: [Stat<RuntimeMetrics>; 4] = [
        (
            "nudge_runtime_workers",
            "Worker threads of the node's async runtime.",
            MetricType::GAUGE,
            |m| m.num_workers() as f64,
        ),
        (
            "nudge_runtime_alive_tasks",
            "Tasks alive on the node's async runtime (connections, actors, timers and the rest).",
            MetricType::GAUGE,
            |m| m.num_alive_tasks() as f64,
        ),
        (
            "nudge_runtime_global_queue_depth",
            "Tasks woken from outside the runtime's workers, waiting in its global queue.",
            MetricType::GAUGE,
            |m| m.global_queue_depth() as f64,
        ),
        (
            "nudge_runtime_busy_seconds_total",
            "Time the runtime's workers spent running tasks, summed over workers.",
            MetricType::COUNTER,
            |m| {
                (0..m.num_workers())
                    .map(|w| m.worker_total_busy_duration(w).as_secs_f64())
                    .sum()
            },
        ),
    ];
    register_pulled(registry, &runtime.metrics(), &stats)
}

/// A counter or gauge whose value is read from elsewhere at each scrape.
struct Pulled {
    desc: Desc,
    kind: MetricType,
    read: Box<dyn Fn() -> f64 + Send + Sync>,
}

impl Pulled {
    fn new(
        name: &str,
        help: &str,
        kind: MetricType,
        read: Box<dyn Fn() -> f64 + Send + Sync>,
    ) -> Result<Self, prometheus::Error> {
        let desc = Desc::new(name.into(), help.into(), Vec::new(), HashMap::new())?;
        Ok(Self { desc, kind, read })
    }
}

impl Collector for Pulled {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let value = (self.read)();
        let metric = if self.kind == MetricType::COUNTER {
            let mut counter = Counter::default();
            counter.set_value(value);
            let mut metric = Metric::default();
            metric.set_counter(counter);
            metric
        } else {
            let mut gauge = Gauge::default();
            gauge.set_value(value);
            Metric::from_gauge(gauge)
        };
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(self.kind);
        family.set_metric(vec![metric]);
        vec![family]
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let metrics = &state.metrics;
    if !metrics.allows(&headers) {
        return Err(ApiError::Forbidden(
            "a valid metrics bearer token is required",
        ));
    }
    let active = state.actors.active_users().await;
    metrics
        .actors_active
        .set(i64::try_from(active).unwrap_or(i64::MAX));
    let mut body = Vec::new();
    TextEncoder::new()
        .encode(&metrics.registry.gather(), &mut body)
        .map_err(|e| ApiError::Internal(format!("encoding metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response())
}

/// The value of an unlabelled sample `name` in Prometheus' text format, if present.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (metric, value) = line.split_once(' ')?;
            (metric == name).then(|| value.trim().parse().ok())?
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[test]
    fn a_sample_is_read_from_the_text_format_by_exact_name() {
        let text = "# HELP nudge_user_actors_active x\n# TYPE nudge_user_actors_active gauge\n\
                    nudge_user_actors_active 42\nnudge_user_actors_active_peak 50\n";
        assert_eq!(sample(text, "nudge_user_actors_active"), Some(42.0));
        assert_eq!(sample(text, "nudge_user_actors"), None);
        assert_eq!(sample("broken", "broken"), None);
    }

    #[test]
    fn pulled_counters_are_typed_as_counters_and_read_at_each_collect() {
        let value = Arc::new(AtomicU64::new(3));
        let read = value.clone();
        let pulled = Pulled::new(
            "things_total",
            "Things.",
            MetricType::COUNTER,
            Box::new(move || read.load(Ordering::Relaxed) as f64),
        )
        .unwrap();
        let registry = Registry::new();
        registry.register(Box::new(pulled)).unwrap();
        value.store(7, Ordering::Relaxed);
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut text)
            .unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("# TYPE things_total counter"), "{text}");
        assert_eq!(sample(&text, "things_total"), Some(7.0));
    }

    #[test]
    fn the_runtime_metrics_read_the_runtime_they_were_registered_on() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let registry = Registry::new();
        register_runtime(&registry, runtime.handle()).unwrap();
        let gather = || {
            let mut text = Vec::new();
            TextEncoder::new()
                .encode(&registry.gather(), &mut text)
                .unwrap();
            String::from_utf8(text).unwrap()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let held = runtime.spawn(async move {
            let _ = stopped.await;
        });
        // Work on a worker, so that its busy time grows.
        runtime.block_on(async {
            tokio::spawn(async {
                let started = std::time::Instant::now();
                while started.elapsed() < std::time::Duration::from_millis(20) {
                    std::hint::spin_loop();
                }
            })
            .await
            .unwrap();
        });
        // A worker publishes its busy time when it next parks, which may come a moment after
        // the spinning task has finished: read until it shows, for at most two seconds.
        let mut text = gather();
        for _ in 0..200 {
            if sample(&text, "nudge_runtime_busy_seconds_total").is_some_and(|s| s >= 0.01) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            text = gather();
        }
        assert_eq!(sample(&text, "nudge_runtime_workers"), Some(2.0), "{text}");
        assert!(
            sample(&text, "nudge_runtime_alive_tasks").is_some_and(|n| n >= 1.0),
            "the held task is alive: {text}"
        );
        assert!(
            sample(&text, "nudge_runtime_global_queue_depth").is_some(),
            "{text}"
        );
        assert!(
            text.contains("# TYPE nudge_runtime_busy_seconds_total counter"),
            "{text}"
        );
        assert!(
            sample(&text, "nudge_runtime_busy_seconds_total").is_some_and(|s| s >= 0.01),
            "20 ms of work shows: {text}"
        );
        let _ = stop.send(());
        runtime.block_on(held).unwrap();
    }
}
