//! A small, deterministic driver around the engine for integration tests: a fake clock, an id
//! counter, and bookkeeping of what the server would do with the effects (emitted events, the
//! set of open `.triggered` events, the last saved state of each execution). Timers are the
//! engine's own (`next_deadline` / `handle_timeout`), checked against `Engine::timers()` after
//! every step.

#![allow(dead_code)]

use keptn_engine::{Config, Control, Effect, Engine, ExecState, Execution, Input, Millis, PauseMarker, Timer};
use keptn_formats::event_type::{self, EventType};
use keptn_formats::merge::merge;
use keptn_formats::{KeptnEvent, Shipyard};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub const PROJECT: &str = "sockshop";
/// 2023-11-14T22:13:20Z: an arbitrary, fixed start for the fake clock.
pub const T0: Millis = 1_700_000_000_000;
pub const MINUTE: Millis = 60_000;

pub struct Driver {
    pub engine: Engine,
    pub config: Config,
    pub shipyards: HashMap<String, Shipyard>,
    pub now: Millis,
    /// Counter behind the engine's `ids` closure ("id-1", "id-2", ...).
    pub next_id: u64,
    /// Counter for the events the test sends ("ev-1", ...) and for contexts ("ctx-1", ...).
    pub next_ev: u64,
    pub next_ctx: u64,
    /// Every effect, in order.
    pub effects: Vec<Effect>,
    /// Every emitted event, in order.
    pub emitted: Vec<KeptnEvent>,
    /// `deliver_at` of each emitted event, by id.
    pub deliver_at: HashMap<String, Millis>,
    /// Open `.triggered` ids (Emit{open:true} and Open add, Close removes).
    pub open: BTreeSet<String>,
    /// Last `Effect::Save` of each execution.
    pub saved: BTreeMap<String, Execution>,
    /// Last `Effect::SavePauseMarkers`.
    pub markers: Vec<PauseMarker>,
}

pub fn shipyard(yaml: &str) -> Shipyard {
    Shipyard::parse(yaml).unwrap_or_else(|e| panic!("test shipyard does not parse: {e}"))
}

/// `sh.keptn.event.dev.delivery.finished` → `dev.delivery.finished`.
pub fn short(ty: &str) -> &str {
    ty.strip_prefix(event_type::PREFIX).unwrap_or(ty)
}

/// The events emitted by some effects.
pub fn emits(effects: &[Effect]) -> Vec<KeptnEvent> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Emit { event, .. } => Some(event.clone()),
            _ => None,
        })
        .collect()
}

/// Short types of the events emitted by some effects, in order.
pub fn types(effects: &[Effect]) -> Vec<String> {
    emits(effects).iter().map(|e| short(&e.ty).to_string()).collect()
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

impl Driver {
    pub fn new(yaml: &str) -> Driver {
        Driver::with_config(Config::default(), yaml)
    }

    pub fn with_config(config: Config, yaml: &str) -> Driver {
        let mut engine = Engine::new(config.clone());
        let sy = shipyard(yaml);
        engine.set_shipyard(PROJECT, sy.clone());
        Driver {
            engine,
            config,
            shipyards: HashMap::from([(PROJECT.to_string(), sy)]),
            now: T0,
            next_id: 0,
            next_ev: 0,
            next_ctx: 0,
            effects: Vec::new(),
            emitted: Vec::new(),
            deliver_at: HashMap::new(),
            open: BTreeSet::new(),
            saved: BTreeMap::new(),
            markers: Vec::new(),
        }
    }

    pub fn handle(&mut self, input: Input) -> Vec<Effect> {
        let counter = &mut self.next_id;
        let mut ids = || {
            *counter += 1;
            format!("id-{counter}")
        };
        let effects = self.engine.handle(input, self.now, &mut ids);
        self.absorb(&effects);
        effects
    }

    /// The engine's live timers, in firing order.
    pub fn timers(&self) -> Vec<(Millis, Timer)> {
        let mut timers = self.engine.timers();
        timers.sort_by_key(timer_key);
        timers
    }

    /// The engine's deadline index agrees with the timers its state needs.
    fn check_deadline(&self) {
        let derived = self.engine.timers().iter().map(|(at, _)| *at).min();
        assert_eq!(self.engine.next_deadline(), derived, "next_deadline disagrees with timers()");
    }

    fn absorb(&mut self, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::Emit { event, deliver_at, open } => {
                    assert!(*deliver_at >= self.now, "deliver_at in the past: {effect:?}");
                    if *open {
                        self.open.insert(event.id.clone());
                    }
                    self.deliver_at.insert(event.id.clone(), *deliver_at);
                    self.emitted.push(event.clone());
                }
                Effect::Open(ev) => {
                    self.open.insert(ev.id.clone());
                }
                Effect::Close { triggered_id } => {
                    self.open.remove(triggered_id);
                }
                Effect::Save(exec) => {
                    self.saved.insert(exec.id.clone(), (**exec).clone());
                }
                Effect::SavePauseMarkers(m) => self.markers = m.clone(),
            }
        }
        self.effects.extend_from_slice(effects);
        self.check_deadline();
    }

    pub fn send(&mut self, ev: KeptnEvent) -> Vec<Effect> {
        self.handle(Input::Event(ev))
    }

    pub fn new_context(&mut self) -> String {
        self.next_ctx += 1;
        format!("ctx-{}", self.next_ctx)
    }

    pub fn event_id(&mut self) -> String {
        self.next_ev += 1;
        format!("ev-{}", self.next_ev)
    }

    /// An incoming event as a client or integration would send it.
    pub fn event(&mut self, ty: String, context: &str, triggeredid: &str, source: &str, data: Value) -> KeptnEvent {
        let mut ev =
            KeptnEvent::new(self.event_id(), ty, context.to_string(), keptn_engine::format_time(self.now), data);
        ev.source = source.to_string();
        ev.triggeredid = triggeredid.to_string();
        ev
    }

    /// `sh.keptn.event.<stage>.<seq>.triggered` for `service`, in a new context, with
    /// `configurationChange.values.image` and a label.
    pub fn trigger(&mut self, stage: &str, seq: &str, service: &str) -> KeptnEvent {
        let ctx = self.new_context();
        let data = json!({
            "configurationChange": { "values": { "image": format!("ghcr.io/x/{service}:1.0") } },
            "labels": { "ctx": ctx },
        });
        self.trigger_with(stage, seq, service, &ctx, data)
    }

    /// Sends a sequence `.triggered` with extra `data` (project/stage/service filled in).
    pub fn trigger_with(&mut self, stage: &str, seq: &str, service: &str, ctx: &str, data: Value) -> KeptnEvent {
        let ev = self.trigger_event(PROJECT, stage, seq, service, ctx, data);
        self.send(ev.clone());
        ev
    }

    pub fn trigger_event(
        &mut self,
        project: &str,
        stage: &str,
        seq: &str,
        service: &str,
        ctx: &str,
        data: Value,
    ) -> KeptnEvent {
        let mut d = json!({ "project": project, "stage": stage, "service": service });
        merge(&mut d, &data);
        self.event(event_type::sequence(stage, seq, "triggered"), ctx, "", "cli", d)
    }

    /// The answer of integration `source` to a task `.triggered` (`kind` = started | finished).
    pub fn answer_event(
        &mut self,
        triggered: &KeptnEvent,
        source: &str,
        kind: &str,
        result: &str,
        status: &str,
        data: Value,
    ) -> KeptnEvent {
        let EventType::Task { task, .. } = EventType::parse(&triggered.ty) else {
            panic!("not a task event: {}", triggered.ty);
        };
        let mut d = json!({
            "project": triggered.data["project"],
            "stage": triggered.data["stage"],
            "service": triggered.data["service"],
        });
        if kind == "finished" {
            d["result"] = json!(result);
            d["status"] = json!(status);
        }
        merge(&mut d, &data);
        let ctx = triggered.shkeptncontext.clone();
        self.event(event_type::task(&task, kind), &ctx, &triggered.id, source, d)
    }

    pub fn answer(
        &mut self,
        triggered: &KeptnEvent,
        source: &str,
        kind: &str,
        result: &str,
        status: &str,
        data: Value,
    ) -> Vec<Effect> {
        let ev = self.answer_event(triggered, source, kind, result, status, data);
        self.send(ev)
    }

    pub fn start(&mut self, triggered: &KeptnEvent, source: &str) -> Vec<Effect> {
        self.answer(triggered, source, "started", "", "", json!({}))
    }

    pub fn finish(&mut self, triggered: &KeptnEvent, source: &str, result: &str, data: Value) -> Vec<Effect> {
        self.answer(triggered, source, "finished", result, "succeeded", data)
    }

    /// One integration starts and finishes the task with `result`.
    pub fn run_task(&mut self, triggered: &KeptnEvent, result: &str) -> Vec<Effect> {
        let mut fx = self.start(triggered, "integration");
        fx.extend(self.finish(triggered, "integration", result, json!({})));
        fx
    }

    pub fn control(&mut self, ctx: &str, stage: Option<&str>, action: Control) -> Vec<Effect> {
        self.handle(Input::Control {
            project: PROJECT.into(),
            context: ctx.into(),
            stage: stage.map(String::from),
            action,
        })
    }

    pub fn set_now(&mut self, now: Millis) {
        assert!(now >= self.now, "the clock does not go back");
        self.now = now;
    }

    pub fn advance(&mut self, ms: Millis) {
        self.now += ms;
    }

    /// Fires every timer due at `now` (in due order) and returns what they caused.
    pub fn fire_due_timers(&mut self, now: Millis) -> Vec<Effect> {
        self.set_now(now);
        let counter = &mut self.next_id;
        let mut ids = || {
            *counter += 1;
            format!("id-{counter}")
        };
        let effects = self.engine.handle_timeout(now, &mut ids);
        self.absorb(&effects);
        effects
    }

    /// Simulates a restart: a new engine from the last saved state of each execution and the
    /// last saved pause markers; the engine re-derives its timers.
    pub fn restart(&mut self) {
        let executions: Vec<Execution> = self.saved.values().cloned().collect();
        self.engine = Engine::restore(self.config.clone(), self.shipyards.clone(), executions, self.markers.clone());
        self.check_deadline();
    }

    /// The last emitted event of a (short) type, e.g. `deployment.triggered`.
    pub fn last(&self, short_ty: &str) -> KeptnEvent {
        self.emitted
            .iter()
            .rev()
            .find(|e| short(&e.ty) == short_ty)
            .unwrap_or_else(|| panic!("no {short_ty} emitted; emitted: {:?}", self.emitted_types()))
            .clone()
    }

    /// The last emitted event of a (short) type in a context.
    pub fn last_in(&self, ctx: &str, short_ty: &str) -> KeptnEvent {
        self.emitted
            .iter()
            .rev()
            .find(|e| short(&e.ty) == short_ty && e.shkeptncontext == ctx)
            .unwrap_or_else(|| panic!("no {short_ty} emitted in {ctx}; emitted: {:?}", self.types_in(ctx)))
            .clone()
    }

    pub fn emitted_types(&self) -> Vec<String> {
        self.emitted.iter().map(|e| short(&e.ty).to_string()).collect()
    }

    /// Short types emitted in one context, in order.
    pub fn types_in(&self, ctx: &str) -> Vec<String> {
        self.emitted.iter().filter(|e| e.shkeptncontext == ctx).map(|e| short(&e.ty).to_string()).collect()
    }

    pub fn count(&self, short_ty: &str) -> usize {
        self.emitted.iter().filter(|e| short(&e.ty) == short_ty).count()
    }

    /// The live execution of a context in a stage.
    pub fn exec(&self, ctx: &str, stage: &str) -> Execution {
        self.engine
            .executions()
            .find(|e| e.context == ctx && e.stage == stage)
            .unwrap_or_else(|| panic!("no live execution for {ctx} in {stage}"))
            .clone()
    }

    pub fn state(&self, ctx: &str, stage: &str) -> ExecState {
        self.exec(ctx, stage).state
    }

    /// At most one keptnContext holds each lane.
    pub fn check_lanes(&self) {
        let mut holders: BTreeMap<(String, String, String), BTreeSet<String>> = BTreeMap::new();
        for e in self.engine.executions() {
            if e.holds_lane() {
                holders
                    .entry((e.project.clone(), e.stage.clone(), e.service.clone()))
                    .or_default()
                    .insert(e.context.clone());
            }
        }
        for (lane, ctxs) in holders {
            assert!(ctxs.len() <= 1, "lane {lane:?} held by several contexts: {ctxs:?}");
        }
    }
}

pub fn timer_key(t: &(Millis, Timer)) -> (Millis, String, String, u8) {
    let kind = match t.1.kind {
        keptn_engine::TimerKind::Start => 0,
        keptn_engine::TimerKind::Run => 1,
    };
    (t.0, t.1.execution.clone(), t.1.triggered_id.clone(), kind)
}
