//! Prometheus metrics, rendered by the ops listener's `/metrics`.
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const LATENCY_BUCKETS_S: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the process-wide recorder once and returns its handle.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        let builder = match builder.set_buckets_for_metric(
            Matcher::Full("alliance_http_request_duration_seconds".into()),
            &LATENCY_BUCKETS_S,
        ) {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (tests in one process): keep going, the
        // handle still renders this recorder's view.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

pub fn record_request(route: &str, status: u16, seconds: f64) {
    metrics::counter!("alliance_http_requests_total", "route" => route.to_owned(), "status" => status.to_string()).increment(1);
    metrics::histogram!("alliance_http_request_duration_seconds", "route" => route.to_owned())
        .record(seconds);
}

pub fn record_auth_failure(code: &'static str) {
    metrics::counter!("alliance_auth_failures_total", "code" => code).increment(1);
}

/// Verify 404s per partner: a burst suggests card-number guessing.
pub fn record_member_not_found(partner: &str) {
    metrics::counter!("alliance_verify_member_not_found_total", "partner" => partner.to_owned())
        .increment(1);
}

/// A partner's verify 404s reached the burst threshold within a minute (counted once per
/// minute): card-number guessing, or a till with a broken scanner.
pub fn record_member_not_found_burst(partner: &str) {
    metrics::counter!("alliance_verify_member_not_found_bursts_total", "partner" => partner.to_owned())
        .increment(1);
}

/// A request refused for a rate limit: `limit` is `requests`, `verify_per_minute` or
/// `verify_members_per_day`; `identity` the partner code or `finance:<name>`.
pub fn record_rate_limited(identity: &str, limit: &'static str) {
    metrics::counter!("alliance_rate_limited_total", "identity" => identity.to_owned(), "limit" => limit)
        .increment(1);
}

/// Requests refused because their worker already had its most requests waiting
/// (`ALLIANCE_MAX_WAITING_PER_WORKER`): alert if it rises, the gateway is past its capacity.
pub fn record_admission_refused() {
    metrics::counter!("alliance_admission_refused_total").increment(1);
}

/// Records the chain linker (PostgreSQL) linked.
pub fn record_chain_linked(n: usize) {
    metrics::counter!("alliance_chain_linked_total").increment(n as u64);
}

/// Linker passes that failed (alert if it keeps rising: unlinked records block nothing until
/// the day closes, and closing links them itself, but the linker should not be failing).
pub fn record_chain_link_failure() {
    metrics::counter!("alliance_chain_link_failures_total").increment(1);
}

/// Active certificates that expire within 30 days.
pub fn set_certificates_expiring(n: i64) {
    metrics::gauge!("alliance_certificates_expiring_30d").set(n as f64);
}

/// Bodies still arriving after their first moments (`http::body`), by what became of them:
/// `read`, `timed_out`, or `refused` (the identity already held all its places).
pub fn record_slow_body(outcome: &'static str) {
    metrics::counter!("alliance_slow_bodies_total", "outcome" => outcome).increment(1);
}

/// Requests whose handling panicked (answered 500). Alert on any: it is a bug.
pub fn record_panic() {
    metrics::counter!("alliance_request_panics_total").increment(1);
}
