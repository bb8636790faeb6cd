//! Timing of one large evaluation: 300 objectives (a relative and an absolute pass criterion and a
//! warning each), 100 previous evaluations with 300 indicator results each.
//! `cargo run --release -p keptn-slo --example bench`; prints figures only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Counts live heap bytes and their peak, to report what one evaluation allocates on top of its
/// inputs.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwards to the system allocator with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

use keptn_slo::{Previous, SliResult, Slo, evaluate, select_baseline};
use serde_json::json;

const OBJECTIVES: usize = 300;
const PREVIOUS: usize = 100;
const RUNS: usize = 50;

fn slo() -> Slo {
    let mut yaml = String::from(
        "comparison:\n  compare_with: several_results\n  number_of_comparison_results: 100\n  include_result_with_score: pass_or_warn\n  aggregate_function: p90\nobjectives:\n",
    );
    for i in 0..OBJECTIVES {
        yaml += &format!(
            "  - sli: metric_{i}\n    displayName: Metric {i}\n    pass:\n      - criteria: [\"<=+10%\", \"<600\"]\n    warning:\n      - criteria: [\"<=800\"]\n"
        );
    }
    yaml += "total_score:\n  pass: \"90%\"\n  warning: \"75%\"\n";
    Slo::parse(yaml.as_bytes()).expect("bench SLO is valid")
}

fn history() -> Vec<Previous> {
    (0..PREVIOUS)
        .map(|p| {
            let results: Vec<_> = (0..OBJECTIVES)
                .map(|i| {
                    json!({
                        "score": 1.0, "status": "pass", "displayName": format!("Metric {i}"), "keySli": false,
                        "value": {"metric": format!("metric_{i}"), "value": 400.0 + ((p * 7 + i) % 50) as f64,
                                  "comparedValue": 0.0, "success": true},
                        "passTargets": [{"criteria": "<=+10%", "targetValue": 440.0, "violated": false},
                                        {"criteria": "<600", "targetValue": 600.0, "violated": false}],
                        "warningTargets": [{"criteria": "<=800", "targetValue": 800.0, "violated": false}]
                    })
                })
                .collect();
            Previous {
                id: Some(format!("previous-{p}")),
                data: json!({"result": "pass", "status": "succeeded",
                             "evaluation": {"result": "pass", "score": 100.0, "indicatorResults": results}}),
            }
        })
        .collect()
}

fn main() {
    let slo = slo();
    let history = history();
    let values: Vec<SliResult> = (0..OBJECTIVES)
        .map(|i| SliResult {
            metric: format!("metric_{i}"),
            value: 420.0 + (i % 30) as f64,
            success: true,
            message: String::new(),
        })
        .collect();

    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    let mut last = None;
    for _ in 0..RUNS {
        let started = Instant::now();
        let chosen = select_baseline(&slo, &history);
        let evaluation = evaluate(&slo, &values, &chosen, "2023-01-01T10:00:00.000Z", "2023-01-01T10:05:00.000Z");
        times.push(started.elapsed());
        last = Some(evaluation);
    }
    times.sort();
    // Peak extra heap of one evaluation (inputs already built), result dropped afterwards.
    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    let chosen = select_baseline(&slo, &history);
    drop(evaluate(&slo, &values, &chosen, "2023-01-01T10:00:00.000Z", "2023-01-01T10:05:00.000Z"));
    let extra = PEAK.load(Relaxed) - before;
    let evaluation = last.expect("at least one run");
    let json = serde_json::to_vec(&evaluation.to_data()).expect("evaluation serializes");
    println!("objectives: {OBJECTIVES}, previous evaluations: {PREVIOUS} x {OBJECTIVES} results, runs: {RUNS}");
    println!("min:    {:.3} ms", times[0].as_secs_f64() * 1e3);
    println!("median: {:.3} ms", times[RUNS / 2].as_secs_f64() * 1e3);
    println!("result: {} (score {}), JSON size: {} bytes", evaluation.result, evaluation.score(), json.len());
    println!("peak extra heap of one evaluation: {:.2} MB", extra as f64 / 1_048_576.0);
}
