//! The sequence engine: a pure state machine (sans-I/O).
//!
//! `Engine::handle(input, now, ids)` takes an incoming event, a fired timer or a control
//! command and returns effects (events to emit, executions to save). It never touches a clock,
//! a socket or a database; the server turns effects into one transaction.
//!
//! Time works as in quinn-proto's `Connection`: the engine keeps its own deadlines (task start
//! and run timeouts), `next_deadline()` says when it next needs the time, and
//! `handle_timeout(now, ids)` fires what is due by then. The caller owns the one sleep.
//!
//! Callers deliver each event at most once (the store rejects duplicate event ids); answers
//! repeated within one task are ignored here as well.

pub mod data;
pub mod model;

use keptn_formats::event_type::{self, EventType};
use keptn_formats::shipyard::{Sequence, Shipyard, Task};
use keptn_formats::{KeptnEvent, TaskResult, TaskStatus, duration};
use model::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use model::{ExecState, Execution, Lane, Millis, PauseMarker, Timer, TimerKind};

#[derive(Debug, Clone)]
pub struct Config {
    /// A task nobody answers within this time ends its sequence (`--task-start-timeout`).
    pub task_start_timeout_ms: Millis,
}

impl Default for Config {
    fn default() -> Self {
        Config { task_start_timeout_ms: 10 * 60 * 1000 }
    }
}

// One input is moved into each `handle` call and consumed there; boxing the event buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// An accepted event (sequence `.triggered`, task `.started` / `.finished`; others are ignored).
    Event(KeptnEvent),
    Timer(Timer),
    Control {
        project: String,
        context: String,
        stage: Option<String>,
        action: Control,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Abort,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Store and publish an event. `deliver_at` > now delays it (`triggeredAfter`). `open` marks a
    /// `.triggered` that stays visible to pollers until a `Close` with its id.
    Emit {
        event: KeptnEvent,
        deliver_at: Millis,
        open: bool,
    },
    /// An incoming sequence `.triggered` (already stored by the caller) is now open.
    Open(KeptnEvent),
    Close {
        triggered_id: String,
    },
    Save(Box<Execution>),
    SavePauseMarkers(Vec<PauseMarker>),
}

/// All live state of the control plane's sequences. Finished executions are saved and dropped.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    config: Config,
    shipyards: HashMap<String, Shipyard>,
    /// Each project's current configuration revision: a sequence triggered without a
    /// `gitcommitid` is pinned to it (keptn: the stage's HEAD when the sequence starts).
    revisions: HashMap<String, String>,
    executions: HashMap<String, Execution>,
    /// task `.triggered` id → execution id
    by_task: HashMap<String, String>,
    lanes: HashMap<Lane, Vec<String>>,
    markers: BTreeSet<PauseMarker>,
    /// The live timers, by due time: exactly `timers()`, kept in step after every change so
    /// `next_deadline` is a lookup and a stale timer never wakes the caller.
    deadlines: BTreeSet<(Millis, Timer)>,
    /// execution id → its entries in `deadlines` (to drop them when the execution changes).
    armed: HashMap<String, Vec<(Millis, Timer)>>,
}

/// One call's scratch: effects and executions touched.
struct Step<'a> {
    now: Millis,
    ids: &'a mut dyn FnMut() -> String,
    effects: Vec<Effect>,
    dirty: BTreeSet<String>,
    lanes_to_pump: BTreeSet<Lane>,
}

impl Step<'_> {
    fn time(&self) -> String {
        format_time(self.now)
    }
}

pub fn format_time(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl Engine {
    pub fn new(config: Config) -> Engine {
        Engine { config, ..Engine::default() }
    }

    /// Rebuilds the engine from stored state (unfinished executions and pause markers).
    pub fn restore(
        config: Config,
        shipyards: HashMap<String, Shipyard>,
        executions: Vec<Execution>,
        markers: Vec<PauseMarker>,
    ) -> Engine {
        let mut engine = Engine { config, shipyards, markers: markers.into_iter().collect(), ..Engine::default() };
        let mut executions: Vec<_> = executions.into_iter().filter(|e| !e.state.is_done()).collect();
        executions.sort_by(|a, b| (a.triggered_at, &a.id).cmp(&(b.triggered_at, &b.id)));
        for exec in executions {
            engine.index(&exec);
            let id = exec.id.clone();
            engine.executions.insert(id.clone(), exec);
            engine.rearm(&id);
        }
        engine
    }

    pub fn set_shipyard(&mut self, project: &str, shipyard: Shipyard) {
        self.shipyards.insert(project.to_string(), shipyard);
    }

    pub fn set_revision(&mut self, project: &str, commit: &str) {
        self.revisions.insert(project.to_string(), commit.to_string());
    }

    pub fn remove_project(&mut self, project: &str) {
        self.shipyards.remove(project);
        self.revisions.remove(project);
        let ids: Vec<String> =
            self.executions.values().filter(|e| e.project == project).map(|e| e.id.clone()).collect();
        for id in ids {
            if let Some(exec) = self.executions.remove(&id) {
                self.unindex(&exec);
            }
            self.rearm(&id);
        }
    }

    pub fn execution(&self, id: &str) -> Option<&Execution> {
        self.executions.get(id)
    }

    /// The execution whose current task has this `.triggered` id.
    pub fn execution_of_task(&self, triggered_id: &str) -> Option<&Execution> {
        self.by_task.get(triggered_id).and_then(|id| self.executions.get(id))
    }

    pub fn executions(&self) -> impl Iterator<Item = &Execution> {
        self.executions.values()
    }

    /// When the engine next needs `handle_timeout`: the earliest live deadline, if any.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Fires every timer due at `now`, earliest first, and returns what they caused. Timers a
    /// fired one arms (a chained sequence's first task) wait for the next call, even if due.
    pub fn handle_timeout(&mut self, now: Millis, ids: &mut dyn FnMut() -> String) -> Vec<Effect> {
        let due: Vec<Timer> = self.deadlines.iter().take_while(|(at, _)| *at <= now).map(|(_, t)| t.clone()).collect();
        let mut effects = Vec::new();
        for timer in due {
            effects.extend(self.handle(Input::Timer(timer), now, ids));
        }
        effects
    }

    /// The timers the current state needs, derived from the executions (what `next_deadline`
    /// draws from).
    pub fn timers(&self) -> Vec<(Millis, Timer)> {
        let mut out = Vec::new();
        for exec in self.executions.values() {
            if let Some(cur) = &exec.current {
                out.extend(self.task_timers(exec, cur));
            }
        }
        out
    }

    fn task_timers(&self, exec: &Execution, cur: &CurrentTask) -> Vec<(Millis, Timer)> {
        let mut out = Vec::new();
        let timer = |kind| Timer { execution: exec.id.clone(), triggered_id: cur.triggered_id.clone(), kind };
        if cur.answers.is_empty() {
            out.push((cur.due_at + self.config.task_start_timeout_ms, timer(TimerKind::Start)));
        }
        if let Some(run) = run_timeout_ms(&exec.tasks[cur.index]) {
            out.push((cur.due_at + run, timer(TimerKind::Run)));
        }
        out
    }

    /// Replaces the execution's entries in `deadlines` with what its current state needs.
    fn rearm(&mut self, exec_id: &str) {
        for entry in self.armed.remove(exec_id).unwrap_or_default() {
            self.deadlines.remove(&entry);
        }
        let Some(exec) = self.executions.get(exec_id) else { return };
        let Some(cur) = &exec.current else { return };
        let entries = self.task_timers(exec, cur);
        if !entries.is_empty() {
            self.deadlines.extend(entries.iter().cloned());
            self.armed.insert(exec_id.to_string(), entries);
        }
    }

    fn index(&mut self, exec: &Execution) {
        if let Some(cur) = &exec.current {
            self.by_task.insert(cur.triggered_id.clone(), exec.id.clone());
        }
        self.lanes.entry(exec.lane()).or_default().push(exec.id.clone());
    }

    fn unindex(&mut self, exec: &Execution) {
        if let Some(cur) = &exec.current {
            self.by_task.remove(&cur.triggered_id);
        }
        if let Some(ids) = self.lanes.get_mut(&exec.lane()) {
            ids.retain(|i| i != &exec.id);
            if ids.is_empty() {
                self.lanes.remove(&exec.lane());
            }
        }
    }

    pub fn handle(&mut self, input: Input, now: Millis, ids: &mut dyn FnMut() -> String) -> Vec<Effect> {
        let mut step = Step { now, ids, effects: Vec::new(), dirty: BTreeSet::new(), lanes_to_pump: BTreeSet::new() };
        match input {
            Input::Event(ev) => self.on_event(&mut step, ev),
            Input::Timer(t) => self.on_timer(&mut step, t),
            Input::Control { project, context, stage, action } => {
                self.on_control(&mut step, &project, &context, stage, action)
            }
        }
        while let Some(lane) = step.lanes_to_pump.pop_first() {
            self.pump_lane(&mut step, &lane);
        }
        let mut effects = step.effects;
        for id in step.dirty {
            if let Some(exec) = self.executions.get(&id) {
                effects.push(Effect::Save(Box::new(exec.clone())));
                if exec.state.is_done() {
                    let exec = self.executions.remove(&id).expect("present");
                    self.unindex(&exec);
                }
            }
            self.rearm(&id);
        }
        effects
    }

    fn on_event(&mut self, step: &mut Step, ev: KeptnEvent) {
        match EventType::parse(&ev.ty) {
            EventType::Sequence { stage, sequence, kind } if kind == "triggered" => {
                self.on_sequence_triggered(step, &ev, &stage, &sequence, false)
            }
            EventType::Task { kind, .. } if kind == "started" || kind == "finished" => {
                self.on_task_answer(step, &ev, kind == "finished")
            }
            _ => {}
        }
    }

    /// `internal`: the engine created the event itself (chaining), so it must also be emitted.
    fn on_sequence_triggered(&mut self, step: &mut Step, ev: &KeptnEvent, stage: &str, sequence: &str, internal: bool) {
        let (project, service) = (ev.project().to_string(), ev.service().to_string());
        if project.is_empty() || service.is_empty() || ev.id.is_empty() || self.executions.contains_key(&ev.id) {
            return;
        }
        let mut input = match &ev.data {
            Value::Object(_) => ev.data.clone(),
            _ => json!({}),
        };
        input["stage"] = json!(stage);
        let context = ev.shkeptncontext.clone();
        let found = match self.shipyards.get(&project) {
            None => Err(format!("project {project:?} does not exist")),
            Some(shipyard) => find_sequence(shipyard, stage, sequence),
        };
        let mut exec = Execution {
            id: ev.id.clone(),
            project,
            stage: stage.to_string(),
            service,
            context: context.clone(),
            sequence: sequence.to_string(),
            tasks: Vec::new(),
            input,
            gitcommitid: match ev.gitcommitid.as_str() {
                "" => self.revisions.get(ev.project()).cloned().unwrap_or_default(),
                given => given.to_string(),
            },
            triggered_at: step.now,
            state: ExecState::Triggered,
            paused: self.markers.iter().any(|m| m.covers(&context, stage)),
            held: None,
            previous: Vec::new(),
            current: None,
            result: None,
            status: None,
            message: String::new(),
            finished_at: None,
            last_event: Some(EventRef { ty: ev.ty.clone(), id: ev.id.clone(), time: ev.time.clone() }),
        };
        match found {
            Ok(seq) => {
                exec.tasks = seq.tasks;
                step.effects.push(if internal {
                    Effect::Emit { event: ev.clone(), deliver_at: step.now, open: true }
                } else {
                    Effect::Open(ev.clone())
                });
                step.lanes_to_pump.insert(exec.lane());
                step.dirty.insert(exec.id.clone());
                self.index(&exec);
                self.executions.insert(exec.id.clone(), exec);
            }
            Err(message) => {
                // keptn answers an unrunnable sequence with a failed `.finished` right away.
                if internal {
                    step.effects.push(Effect::Emit { event: ev.clone(), deliver_at: step.now, open: false });
                }
                exec.state = ExecState::Finished;
                exec.result = Some(TaskResult::Fail);
                exec.status = Some(TaskStatus::Errored);
                exec.message = message;
                exec.finished_at = Some(step.now);
                self.emit_sequence_finished(step, &mut exec);
                step.effects.push(Effect::Save(Box::new(exec)));
            }
        }
    }

    fn on_task_answer(&mut self, step: &mut Step, ev: &KeptnEvent, finished: bool) {
        let Some(exec_id) = self.by_task.get(&ev.triggeredid).cloned() else {
            return; // not a task of ours (e.g. get-sli), or already done
        };
        let exec = self.executions.get_mut(&exec_id).expect("indexed execution exists");
        if exec.context != ev.shkeptncontext && !ev.shkeptncontext.is_empty() {
            return;
        }
        let cur = exec.current.as_mut().expect("indexed task is current");
        if cur.seen.iter().any(|id| id == &ev.id) {
            return;
        }
        cur.seen.push(ev.id.clone());
        let answer = cur.answers.entry(ev.source.clone()).or_default();
        if finished {
            answer.finished = true;
            answer.started = true; // a lone `.finished` counts as both
            cur.finished.push(FinishedAnswer {
                source: ev.source.clone(),
                result: TaskResult::parse(ev.result()),
                status: TaskStatus::parse(ev.status()),
                data: ev.data.clone(),
            });
            cur.last_message = ev.message().to_string();
        } else {
            answer.started = true;
        }
        exec.last_event = Some(EventRef { ty: ev.ty.clone(), id: ev.id.clone(), time: ev.time.clone() });
        step.dirty.insert(exec_id.clone());
        // An approval is decided by whoever sends its `.finished` (Bridge, CLI, API), usually not
        // the approval service that sent the `.started`: the decision completes the task, or a
        // manual approval would wait forever for the approval service to finish.
        let complete = !cur.finished.is_empty() && (cur.name == "approval" || cur.answers.values().all(|a| a.finished));
        if complete {
            self.complete_task(step, &exec_id);
        }
    }

    fn complete_task(&mut self, step: &mut Step, exec_id: &str) {
        let exec = self.executions.get_mut(exec_id).expect("exists");
        let cur = exec.current.take().expect("current task");
        self.by_task.remove(&cur.triggered_id);
        step.effects.push(Effect::Close { triggered_id: cur.triggered_id.clone() });
        let (result, status, data) = data::aggregate(&cur.finished);
        let done = DoneTask { name: cur.name, triggered_id: cur.triggered_id, result, status, data };
        let stop = data::stops_sequence(&done);
        exec.message = cur.last_message;
        exec.previous.push(done);
        // The lane may have become free (the next task is an approval, or is held): let a waiting
        // sequence of another context start, as keptn's dispatcher would on its next tick.
        step.lanes_to_pump.insert(exec.lane());
        let next = exec.previous.len();
        if stop || next >= exec.tasks.len() {
            // An errored task fails its sequence even if it reported `pass`, so that a trigger
            // without selector never promotes a broken run (keptn would; docs/compatibility.md).
            let result = if status == TaskStatus::Errored { TaskResult::Fail } else { result };
            self.finish(step, exec_id, ExecState::Finished, result, status, None);
        } else {
            self.release_or_hold(step, exec_id, next);
        }
    }

    /// Sends task `index` now if nothing stops it; otherwise keeps it held.
    fn release_or_hold(&mut self, step: &mut Step, exec_id: &str, index: usize) {
        let exec = &self.executions[exec_id];
        let is_approval = exec.tasks[index].name == "approval";
        let lane_busy = self.lane_busy_for(exec);
        let exec = self.executions.get_mut(exec_id).expect("exists");
        step.dirty.insert(exec_id.to_string());
        if exec.paused || (!is_approval && lane_busy) {
            exec.held = Some(index);
            exec.state = ExecState::Triggered;
            return;
        }
        exec.held = None;
        exec.state = if is_approval { ExecState::WaitingForApproval } else { ExecState::Started };
        let task: &Task = &exec.tasks[index];
        let delay = duration::parse(&task.triggered_after).map(|d| d.as_millis() as Millis).unwrap_or(0);
        let due_at = step.now + delay;
        let id = (step.ids)();
        let mut event = KeptnEvent::new(
            id.clone(),
            event_type::task(&task.name, "triggered"),
            exec.context.clone(),
            format_time(due_at),
            data::task_payload(exec, index),
        );
        event.gitcommitid = exec.gitcommitid.clone();
        let cur = CurrentTask {
            index,
            name: task.name.clone(),
            triggered_id: id.clone(),
            due_at,
            answers: BTreeMap::new(),
            finished: Vec::new(),
            seen: Vec::new(),
            last_message: String::new(),
        };
        exec.last_event = Some(EventRef { ty: event.ty.clone(), id: id.clone(), time: event.time.clone() });
        step.effects.push(Effect::Emit { event, deliver_at: due_at, open: true });
        self.by_task.insert(id, exec_id.to_string());
        self.executions.get_mut(exec_id).expect("exists").current = Some(cur);
    }

    /// Is the lane held by an execution of another keptnContext?
    fn lane_busy_for(&self, exec: &Execution) -> bool {
        self.lanes.get(&exec.lane()).into_iter().flatten().any(|id| {
            id != &exec.id && self.executions.get(id).is_some_and(|o| o.holds_lane() && o.context != exec.context)
        })
    }

    /// Starts (or un-holds) the oldest waiting executions of a lane while the lane allows it.
    fn pump_lane(&mut self, step: &mut Step, lane: &Lane) {
        loop {
            let Some(ids) = self.lanes.get(lane) else { return };
            let mut waiting: Vec<&Execution> = ids
                .iter()
                .filter_map(|id| self.executions.get(id))
                .filter(|e| e.state == ExecState::Triggered && !e.paused)
                .collect();
            waiting.sort_by(|a, b| (a.triggered_at, &a.id).cmp(&(b.triggered_at, &b.id)));
            let Some(first) = waiting.first() else { return };
            if self.lane_busy_for(first) {
                return;
            }
            let (id, index) = (first.id.clone(), first.held.unwrap_or(first.previous.len()));
            self.release_or_hold(step, &id, index);
            if self.executions[&id].state == ExecState::Triggered {
                return;
            }
        }
    }

    fn finish(
        &mut self,
        step: &mut Step,
        exec_id: &str,
        state: ExecState,
        result: TaskResult,
        status: TaskStatus,
        message: Option<String>,
    ) {
        let chain = state == ExecState::Finished && status != TaskStatus::Aborted;
        let mut exec = self.executions.remove(exec_id).expect("exists");
        if let Some(cur) = exec.current.take() {
            self.by_task.remove(&cur.triggered_id);
            step.effects.push(Effect::Close { triggered_id: cur.triggered_id });
        }
        exec.state = state;
        exec.held = None;
        exec.result = Some(result);
        exec.status = Some(status);
        if let Some(m) = message {
            exec.message = m;
        }
        exec.finished_at = Some(step.now);
        step.effects.push(Effect::Close { triggered_id: exec.id.clone() });
        self.emit_sequence_finished(step, &mut exec);
        step.dirty.insert(exec.id.clone());
        step.lanes_to_pump.insert(exec.lane());
        let finished = exec.clone();
        self.executions.insert(exec.id.clone(), exec);
        if chain {
            self.chain(step, &finished);
        }
    }

    fn emit_sequence_finished(&self, step: &mut Step, exec: &mut Execution) {
        let mut data = json!({
            "project": exec.project, "stage": exec.stage, "service": exec.service,
            "result": exec.result.unwrap_or(TaskResult::Fail).as_str(),
            "status": exec.status.unwrap_or(TaskStatus::Unknown).as_str(),
            "message": exec.message,
        });
        if let Some(labels) = exec.input.get("labels") {
            data["labels"] = labels.clone();
        }
        let mut event = KeptnEvent::new(
            (step.ids)(),
            event_type::sequence(&exec.stage, &exec.sequence, "finished"),
            exec.context.clone(),
            step.time(),
            data,
        );
        event.triggeredid = exec.id.clone();
        exec.last_event = Some(EventRef { ty: event.ty.clone(), id: event.id.clone(), time: event.time.clone() });
        step.effects.push(Effect::Emit { event, deliver_at: step.now, open: false });
    }

    /// Starts every sequence whose `triggeredOn` matches the finished one (keptn §3.3).
    fn chain(&mut self, step: &mut Step, finished: &Execution) {
        let Some(shipyard) = self.shipyards.get(&finished.project) else { return };
        let name = format!("{}.{}.finished", finished.stage, finished.sequence);
        let mut next: Vec<(String, String)> = Vec::new();
        for stage in &shipyard.spec.stages {
            for seq in &stage.sequences {
                if seq
                    .triggered_on
                    .iter()
                    .any(|t| t.event == name && data::selector_matches(t.selector.as_ref(), finished))
                {
                    next.push((stage.name.clone(), seq.name.clone()));
                }
            }
        }
        for (stage, seq) in next {
            let mut data = data::accumulated(finished);
            data["stage"] = json!(stage);
            let event = KeptnEvent::new(
                (step.ids)(),
                event_type::sequence(&stage, &seq, "triggered"),
                finished.context.clone(),
                step.time(),
                data,
            );
            self.on_sequence_triggered(step, &event, &stage, &seq, true);
        }
    }

    fn on_timer(&mut self, step: &mut Step, timer: Timer) {
        let Some(exec) = self.executions.get(&timer.execution) else { return };
        let Some(cur) = exec.current.as_ref().filter(|c| c.triggered_id == timer.triggered_id) else { return };
        let message = match timer.kind {
            TimerKind::Start if cur.answers.is_empty() => format!(
                "sequence timed out while waiting for task {} to receive a correlating .started or .finished event \
                 (no integration answered within the task start timeout; is an integration subscribed to {}?)",
                cur.name,
                event_type::task(&cur.name, "triggered")
            ),
            TimerKind::Run => {
                let limit = exec.tasks[cur.index]
                    .properties
                    .as_ref()
                    .and_then(|p| p.get("timeout"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                format!("task {} did not finish within its timeout of {limit}", cur.name)
            }
            TimerKind::Start => return,
        };
        let id = exec.id.clone();
        self.finish(step, &id, ExecState::TimedOut, TaskResult::Fail, TaskStatus::Errored, Some(message));
    }

    fn on_control(&mut self, step: &mut Step, project: &str, context: &str, stage: Option<String>, action: Control) {
        let affected: Vec<String> = self
            .executions
            .values()
            .filter(|e| e.project == project && e.context == context && stage.as_ref().is_none_or(|s| *s == e.stage))
            .filter(|e| !e.state.is_done())
            .map(|e| e.id.clone())
            .collect();
        let marker = PauseMarker { context: context.to_string(), stage: stage.clone() };
        match action {
            Control::Pause => {
                self.markers.insert(marker);
                for id in affected {
                    let exec = self.executions.get_mut(&id).expect("exists");
                    exec.paused = true;
                    step.dirty.insert(id);
                    step.lanes_to_pump.insert(exec.lane());
                }
            }
            Control::Resume => {
                self.markers.retain(|m| !(m.context == context && (stage.is_none() || m.stage == stage)));
                for id in affected {
                    let still_paused = {
                        let e = &self.executions[&id];
                        self.markers.iter().any(|m| m.covers(&e.context, &e.stage))
                    };
                    let exec = self.executions.get_mut(&id).expect("exists");
                    exec.paused = still_paused;
                    step.dirty.insert(id);
                    step.lanes_to_pump.insert(exec.lane());
                }
            }
            Control::Abort => {
                self.markers.retain(|m| m.context != context);
                for id in affected {
                    self.finish(step, &id, ExecState::Finished, TaskResult::Pass, TaskStatus::Aborted, None);
                }
            }
        }
        step.effects.push(Effect::SavePauseMarkers(self.markers.iter().cloned().collect()));
    }
}

fn run_timeout_ms(task: &Task) -> Option<Millis> {
    let t = task.properties.as_ref()?.get("timeout")?.as_str()?;
    duration::parse(t).ok().map(|d| d.as_millis() as Millis)
}

/// The sequence to run, or why it cannot run. `evaluation` exists in every stage (keptn).
fn find_sequence(shipyard: &Shipyard, stage: &str, sequence: &str) -> Result<Sequence, String> {
    let Some(st) = shipyard.stage(stage) else {
        return Err(format!("stage {stage:?} is not defined in the shipyard"));
    };
    if let Some(seq) = st.sequences.iter().find(|s| s.name == sequence) {
        return Ok(seq.clone());
    }
    if sequence == "evaluation" {
        return Ok(Sequence {
            name: "evaluation".into(),
            triggered_on: Vec::new(),
            tasks: vec![Task { name: "evaluation".into(), triggered_after: String::new(), properties: None }],
        });
    }
    Err(format!("sequence {sequence:?} is not defined in stage {stage:?}"))
}
