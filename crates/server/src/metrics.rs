//! Prometheus metrics: names and the few helpers the rest of the server calls.

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder once per process (tests start several servers in one process).
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("keptn_task_hop_seconds".into()),
                    &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0],
                )
                .expect("valid buckets")
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("keptn_writer_batch_size".into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0],
                )
                .expect("valid buckets")
                .install_recorder()
                .expect("metrics recorder installs once")
        })
        .clone()
}

pub fn events_in() {
    counter!("keptn_events_in_total").increment(1);
}

pub fn events_out(n: usize) {
    counter!("keptn_events_out_total").increment(n as u64);
}

pub fn push_failed() {
    counter!("keptn_push_delivery_failures_total").increment(1);
}

pub fn task_hop(d: Duration) {
    histogram!("keptn_task_hop_seconds").record(d.as_secs_f64());
}

/// Commands in the writer's current batch, and still waiting behind it.
pub fn writer_queue(batch: usize, waiting: usize) {
    histogram!("keptn_writer_batch_size").record(batch as f64);
    gauge!("keptn_writer_queue_depth").set(waiting as f64);
}

pub fn queue_depth(n: usize) {
    gauge!("keptn_outbox_delayed_events").set(n as f64);
}

const STATES: [&str; 3] = ["triggered", "started", "waitingForApproval"];

pub fn sequences<'a>(states: impl Iterator<Item = &'a str>) {
    let mut counts: BTreeMap<&str, usize> = STATES.iter().map(|s| (*s, 0)).collect();
    for s in states {
        *counts.entry(s).or_default() += 1;
    }
    for (state, n) in counts {
        gauge!("keptn_sequences", "state" => state.to_string()).set(n as f64);
    }
}
