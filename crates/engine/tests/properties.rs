//! Property tests: random shipyards, random integrations answering in random interleavings
//! (with duplicates, lone `.finished`, repeated `.started`, timeouts), several services and
//! contexts in parallel lanes.

mod common;

use common::*;
use keptn_engine::Effect;
use keptn_formats::KeptnEvent;
use keptn_formats::event_type::EventType;
use proptest::prelude::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

#[derive(Debug, Clone)]
struct TaskModel {
    /// How many integrations answer this task (0: nobody, the start timeout ends it).
    integrations: usize,
    /// `timeout` property in ms, if any.
    timeout_ms: Option<u32>,
}

#[derive(Debug, Clone)]
struct StageModel {
    tasks: Vec<TaskModel>,
    /// The second task is named `approval`.
    approval: bool,
    /// A `rollback` sequence on `<stage>.delivery.finished` with `result: fail`.
    rollback: bool,
}

#[derive(Debug, Clone)]
struct Model {
    stages: Vec<StageModel>,
    /// One entry per triggered context: the service it delivers.
    triggers: Vec<usize>,
    seed: u64,
}

const SERVICES: [&str; 2] = ["carts", "orders"];

fn task_strategy() -> impl Strategy<Value = TaskModel> {
    let integrations = prop_oneof![1 => Just(0usize), 12 => 1..=3usize];
    let timeout = prop_oneof![6 => Just(None), 1 => (20u32..400).prop_map(Some)];
    (integrations, timeout).prop_map(|(integrations, timeout_ms)| TaskModel { integrations, timeout_ms })
}

fn stage_strategy() -> impl Strategy<Value = StageModel> {
    (prop::collection::vec(task_strategy(), 1..=4), any::<bool>(), prop::bool::weighted(0.3))
        .prop_map(|(tasks, approval, rollback)| StageModel { approval: approval && tasks.len() > 1, tasks, rollback })
}

fn model_strategy() -> impl Strategy<Value = Model> {
    (prop::collection::vec(stage_strategy(), 1..=3), prop::collection::vec(0..SERVICES.len(), 1..=4), any::<u64>())
        .prop_map(|(stages, triggers, seed)| Model { stages, triggers, seed })
}

impl Model {
    fn task_name(&self, stage: usize, task: usize) -> String {
        if self.stages[stage].approval && task == 1 { "approval".to_string() } else { format!("t{task}") }
    }

    fn yaml(&self) -> String {
        let mut y = String::from(
            "apiVersion: spec.keptn.sh/0.2.3\nkind: Shipyard\nmetadata: { name: prop }\nspec:\n  stages:\n",
        );
        for (i, st) in self.stages.iter().enumerate() {
            y += &format!("    - name: s{i}\n      sequences:\n        - name: delivery\n");
            if i > 0 {
                y += &format!("          triggeredOn:\n            - event: s{}.delivery.finished\n", i - 1);
            }
            y += "          tasks:\n";
            for (k, t) in st.tasks.iter().enumerate() {
                y += &format!("            - name: {}\n", self.task_name(i, k));
                if let Some(ms) = t.timeout_ms {
                    y += &format!("              properties: {{ timeout: {ms}ms }}\n");
                }
            }
            if st.rollback {
                y += &format!(
                    "        - name: rollback\n          triggeredOn:\n            - event: s{i}.delivery.finished\n              selector: {{ match: {{ result: fail }} }}\n          tasks:\n            - name: rollback\n"
                );
            }
        }
        y
    }

    /// Integrations per (stage, task name).
    fn integrations(&self) -> HashMap<(String, String), usize> {
        let mut m = HashMap::new();
        for (i, st) in self.stages.iter().enumerate() {
            for (k, t) in st.tasks.iter().enumerate() {
                m.insert((format!("s{i}"), self.task_name(i, k)), t.integrations);
            }
            m.insert((format!("s{i}"), "rollback".to_string()), 1);
        }
        m
    }
}

/// splitmix64: the simulation's own deterministic randomness (the schedule depends on what
/// the engine emits, so it cannot be drawn up front).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

struct Outcome {
    driver: Driver,
    /// Ids of every sequence `.triggered` (incoming and chained).
    sequences: Vec<String>,
    /// Simulation steps taken.
    steps: usize,
}

/// Runs a model to the end. `restart_before`: simulate a restart before that step.
fn simulate(model: &Model, restart_before: Option<usize>) -> Result<Outcome, TestCaseError> {
    let mut d = Driver::new(&model.yaml());
    let integrations = model.integrations();
    let mut rng = Rng(model.seed);
    // One queue per client / integration: its events arrive in order, queues interleave.
    let mut queues: Vec<VecDeque<KeptnEvent>> = Vec::new();
    for &svc in &model.triggers {
        let ctx = d.new_context();
        let ev = d.trigger_event(PROJECT, "s0", "delivery", SERVICES[svc], &ctx, json!({ "labels": { "ctx": ctx } }));
        queues.push(VecDeque::from([ev]));
    }
    let mut dispatched: BTreeSet<(String, String, String)> = BTreeSet::new();
    let mut sequences: Vec<String> = Vec::new();
    let mut step = 0usize;
    loop {
        prop_assert!(step < 10_000, "simulation does not terminate");
        if restart_before == Some(step) {
            d.restart();
        }
        step += 1;
        let live: Vec<usize> = (0..queues.len()).filter(|&i| !queues[i].is_empty()).collect();
        let fx = if live.is_empty() {
            // Nothing left to deliver: let time pass to the next timer.
            let Some(at) = d.engine.next_deadline() else {
                break;
            };
            d.fire_due_timers(at.max(d.now))
        } else {
            let q = live[rng.below(live.len())];
            let ev = queues[q].pop_front().expect("non-empty");
            d.advance(1);
            let mut fx = d.send(ev);
            fx.extend(d.fire_due_timers(d.now));
            fx
        };
        d.check_lanes(); // (c)
        for effect in &fx {
            match effect {
                Effect::Open(ev) => sequences.push(ev.id.clone()),
                Effect::Emit { event, .. } => match EventType::parse(&event.ty) {
                    EventType::Sequence { kind, .. } if kind == "triggered" => sequences.push(event.id.clone()),
                    EventType::Task { task, kind } if kind == "triggered" => {
                        let stage = event.data["stage"].as_str().unwrap_or_default().to_string();
                        let key = (event.shkeptncontext.clone(), stage.clone(), task.clone());
                        prop_assert!(dispatched.insert(key.clone()), "(b) task triggered twice: {:?}", key);
                        let n = integrations[&(stage, task)];
                        for i in 0..n {
                            queues.push(answers(&mut d, &mut rng, event, &format!("int-{i}")));
                        }
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok(Outcome { driver: d, sequences, steps: step })
}

/// What one integration sends for one task: usually `.started` then `.finished`, sometimes a
/// lone `.finished`, a repeated `.started`, or a redelivered (same id) event.
fn answers(d: &mut Driver, rng: &mut Rng, triggered: &KeptnEvent, source: &str) -> VecDeque<KeptnEvent> {
    let mut out = Vec::new();
    if rng.chance(90) {
        out.push(d.answer_event(triggered, source, "started", "", "", json!({})));
    }
    if rng.chance(10) {
        out.push(d.answer_event(triggered, source, "started", "", "", json!({})));
    }
    let result = match rng.below(100) {
        0..80 => "pass",
        80..92 => "warning",
        _ => "fail",
    };
    let status = if rng.chance(3) { "errored" } else { "succeeded" };
    let data = json!({ "list": [source], "by": source });
    out.push(d.answer_event(triggered, source, "finished", result, status, data));
    if rng.chance(15) {
        let i = rng.below(out.len());
        let at = i + 1 + rng.below(out.len() - i);
        let dup = out[i].clone();
        out.insert(at, dup);
    }
    out.into()
}

fn check_end(model: &Model, out: &Outcome) -> Result<(), TestCaseError> {
    let d = &out.driver;
    // (a) exactly one `.finished` per triggered sequence, and no other.
    let mut finished: BTreeMap<String, usize> = BTreeMap::new();
    for ev in &d.emitted {
        if let EventType::Sequence { kind, .. } = EventType::parse(&ev.ty)
            && kind == "finished"
        {
            *finished.entry(ev.triggeredid.clone()).or_default() += 1;
        }
    }
    prop_assert_eq!(out.sequences.len(), out.sequences.iter().collect::<BTreeSet<_>>().len());
    for id in &out.sequences {
        prop_assert_eq!(finished.get(id).copied(), Some(1), "(a) sequence {} finished once", id);
    }
    prop_assert_eq!(finished.len(), out.sequences.len(), "(a) no stray .finished");
    prop_assert!(out.sequences.len() >= model.triggers.len());
    // (d) nothing stays open, nothing stays alive.
    prop_assert!(d.open.is_empty(), "(d) open at the end: {:?}", d.open);
    prop_assert_eq!(d.engine.executions().count(), 0);
    prop_assert!(d.saved.values().all(|e| e.state.is_done()));
    Ok(())
}

fn types_per_context(d: &Driver) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ev in &d.emitted {
        m.entry(ev.shkeptncontext.clone()).or_default().push(short(&ev.ty).to_string());
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// (a)–(d): every sequence ends once, no task goes out twice, one context per lane, nothing left open.
    #[test]
    fn sequences_complete_under_random_interleavings(model in model_strategy()) {
        let out = simulate(&model, None)?;
        check_end(&model, &out)?;
    }

    /// (e): a restart from the saved state at any point changes nothing.
    #[test]
    fn restore_at_any_point_gives_the_same_events(model in model_strategy(), at in 0usize..200) {
        let reference = simulate(&model, None)?;
        let restarted = simulate(&model, Some(at % reference.steps))?;
        check_end(&model, &restarted)?;
        prop_assert_eq!(types_per_context(&restarted.driver), types_per_context(&reference.driver));
        prop_assert_eq!(&restarted.driver.emitted, &reference.driver.emitted);
        prop_assert_eq!(&restarted.driver.saved, &reference.driver.saved);
    }
}

#[test]
fn the_generated_shipyards_parse() {
    let model = Model {
        stages: vec![
            StageModel {
                tasks: vec![
                    TaskModel { integrations: 1, timeout_ms: Some(50) },
                    TaskModel { integrations: 2, timeout_ms: None },
                ],
                approval: true,
                rollback: true,
            },
            StageModel {
                tasks: vec![TaskModel { integrations: 0, timeout_ms: None }],
                approval: false,
                rollback: false,
            },
        ],
        triggers: vec![0, 1, 0],
        seed: 7,
    };
    let sy = shipyard(&model.yaml());
    assert_eq!(sy.stage_names(), ["s0", "s1"]);
    let out = simulate(&model, None).unwrap();
    check_end(&model, &out).unwrap();
}
