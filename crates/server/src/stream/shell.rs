//! The I/O shell of the event stream: one task owns the [`Hub`] and the open connections. It is
//! fed by the bus (committed events), by stream connects and disconnects and by acks, and writes
//! each assignment to its connection's channel. Nothing else touches the hub, so no lock.
//!
//! What is offered: on connect, the open `.triggered` events of the member's subscribed
//! (non-wildcard) types; afterwards every subscribed event from the bus — `.triggered` ones and
//! the others an integration reacts to (the lighthouse's `get-sli.finished`: without it a remote
//! lighthouse would wait for its SLI timeout, and forever for an evaluation whose replica died,
//! since the timer died with it). Events not yet due
//! (`triggeredAfter`) wait here until their time (one timer, for the earliest). Events moved
//! from a member that left are checked against the store first, so finished work is not redone.

use super::core::{Delivery, Hub, Offer};
use crate::clock::now_ms;
use crate::uniform::Directory;
use crate::writer::parse_time;
use keptn_formats::KeptnEvent;
use keptn_formats::event_type::EventType;
use keptn_store::{OpenTriggeredQuery, Store};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

type Item = Arc<KeptnEvent>;

/// Events waiting for a member, per group, beyond which the oldest are dropped (they are still
/// open in the store: the next connect's catch-up finds them again).
const MAX_WAITING: usize = 10_000;
/// Acked (group, event id) pairs remembered, so a late duplicate offer is not delivered again.
const RECENT_ACKS: usize = 10_000;

enum Command {
    Connect { group: String, integration: String, member: String, conn: u64, tx: mpsc::UnboundedSender<Item> },
    Disconnect { group: String, member: String, conn: u64 },
    Ack { group: String, member: String, ids: Vec<String> },
}

/// The API's side of the shell: opens connections and passes acks on.
#[derive(Clone)]
pub struct StreamHandle {
    tx: mpsc::UnboundedSender<Command>,
    next_conn: Arc<AtomicU64>,
}

/// One open stream: the events assigned to it. Dropping it (the client went away) tells the
/// hub, which hands its unacked events to another member.
pub struct Connection {
    pub events: mpsc::UnboundedReceiver<Item>,
    _leave: Leave,
}

struct Leave {
    tx: mpsc::UnboundedSender<Command>,
    group: String,
    member: String,
    conn: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        let (group, member) = (std::mem::take(&mut self.group), std::mem::take(&mut self.member));
        let _ = self.tx.send(Command::Disconnect { group, member, conn: self.conn });
    }
}

impl StreamHandle {
    /// A handle and the receiver its shell task reads (see [`spawn`]).
    pub fn new() -> (StreamHandle, Commands) {
        let (tx, rx) = mpsc::unbounded_channel();
        (StreamHandle { tx, next_conn: Arc::new(AtomicU64::new(1)) }, Commands(rx))
    }

    /// Member `member` (of registration `integration`, in group `group`) opens a stream.
    pub fn connect(&self, group: &str, integration: &str, member: &str) -> Connection {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, events) = mpsc::unbounded_channel();
        let (group, member) = (group.to_string(), member.to_string());
        let cmd = Command::Connect {
            group: group.clone(),
            integration: integration.to_string(),
            member: member.clone(),
            conn,
            tx,
        };
        let _ = self.tx.send(cmd);
        Connection { events, _leave: Leave { tx: self.tx.clone(), group, member, conn } }
    }

    pub fn ack(&self, group: &str, member: &str, ids: Vec<String>) {
        let _ = self.tx.send(Command::Ack { group: group.to_string(), member: member.to_string(), ids });
    }
}

/// The shell task's command queue.
pub struct Commands(mpsc::UnboundedReceiver<Command>);

/// Runs the shell until the commands' senders are gone or the bus closes.
pub fn spawn(
    store: Store,
    directory: Directory,
    bus: broadcast::Receiver<Item>,
    commands: Commands,
) -> tokio::task::JoinHandle<()> {
    let shell = Shell {
        hub: Hub::new(MAX_WAITING),
        conns: HashMap::new(),
        members: HashMap::new(),
        held: BTreeMap::new(),
        recent: Recent::default(),
        store,
        directory,
    };
    tokio::spawn(shell.run(bus, commands.0))
}

struct MemberInfo {
    group: String,
    integration: String,
    conn: u64,
}

struct Shell {
    hub: Hub<Item>,
    conns: HashMap<u64, mpsc::UnboundedSender<Item>>,
    /// Connected members (their current connection), mirroring the hub's.
    members: HashMap<String, MemberInfo>,
    /// Not yet due `.triggered` events, by (due time, id).
    held: BTreeMap<(i64, String), Item>,
    recent: Recent,
    store: Store,
    directory: Directory,
}

impl Shell {
    async fn run(mut self, mut bus: broadcast::Receiver<Item>, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            let next_due = self.held.keys().next().map(|(at, _)| *at);
            let sleep = async {
                match next_due {
                    Some(at) => tokio::time::sleep(Duration::from_millis((at - now_ms()).max(0) as u64)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd).await,
                    None => return,
                },
                event = bus.recv() => match event {
                    Ok(event) => self.committed(event),
                    // Missed events: whatever is still open is read again.
                    Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up_all().await,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = sleep => self.release_due(),
            }
        }
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Connect { group, integration, member, conn, tx } => {
                self.conns.insert(conn, tx);
                let info = MemberInfo { group: group.clone(), integration: integration.clone(), conn };
                self.members.insert(member.clone(), info);
                let carried = self.hub.connect(&group, &member, conn);
                self.send_if_open(&group, carried).await;
                self.catch_up(&group, &integration).await;
            }
            Command::Disconnect { group, member, conn } => {
                self.conns.remove(&conn);
                if self.members.get(&member).is_some_and(|m| m.conn == conn) {
                    self.members.remove(&member);
                }
                let (members, directory) = (&self.members, &self.directory);
                let moved = self.hub.disconnect(&group, &member, conn, |m, e| takes(members, directory, m, e));
                self.send_if_open(&group, moved).await;
            }
            Command::Ack { group, member, ids } => {
                if self.members.contains_key(&member) {
                    self.hub.ack(&group, &member, &ids);
                } else {
                    // Its connection ended before the ack: the events may sit at another member
                    // by now; they are done all the same.
                    self.hub.forget(&group, &ids);
                }
                for id in ids {
                    self.recent.insert(&group, &id);
                }
            }
        }
    }

    /// A committed event from the bus: offered to the groups that subscribe to it; `.triggered`
    /// ones not yet due are held until they are.
    fn committed(&mut self, event: Item) {
        if !event.ty.ends_with(".triggered") {
            self.offer_everywhere(&event);
            return;
        }
        self.held.retain(|(_, id), _| *id != event.id);
        let due = parse_time(&event.time).unwrap_or(0);
        if due > now_ms() {
            self.held.insert((due, event.id.clone()), event);
            return;
        }
        self.offer_everywhere(&event);
    }

    fn release_due(&mut self) {
        let now = now_ms();
        while let Some(entry) = self.held.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let event = entry.remove();
            self.offer_everywhere(&event);
        }
    }

    /// Each group with a connected member whose subscriptions take the event gets one copy.
    fn offer_everywhere(&mut self, event: &Item) {
        for (group, _) in self.hub.members() {
            self.offer_to(&group, event);
        }
    }

    fn offer_to(&mut self, group: &str, event: &Item) {
        if self.recent.contains(group, &event.id) {
            return;
        }
        let eligible: Vec<String> = self
            .members
            .iter()
            .filter(|(m, info)| info.group == group && takes(&self.members, &self.directory, m, event))
            .map(|(m, _)| m.clone())
            .collect();
        if eligible.is_empty() {
            return; // not this group's event (or nobody connected: the next connect catches up)
        }
        match self.hub.offer(group, &eligible, &event.id, event.clone()) {
            Offer::Deliver(d) => self.send(d),
            Offer::Waiting { .. } | Offer::Duplicate => {}
        }
    }

    fn send(&self, d: Delivery<Item>) {
        // A closed channel: its disconnect is queued and moves the event on.
        if let Some(tx) = self.conns.get(&d.conn) {
            let _ = tx.send(d.item);
        }
    }

    /// Events handed over (from a member that left, or that waited) are sent unless they are no
    /// longer open: a killed replica may have finished them without acking. (Only a task's
    /// `.triggered` has an open row; a sequence's own `.triggered`, or a `.finished`, is sent
    /// again as it is — handling one twice is the integration's everyday duplicate.) One the receiving
    /// member does not subscribe to is dropped from the hub; it stays open in the store, where
    /// the next catch-up of a member that takes it finds it.
    async fn send_if_open(&mut self, group: &str, deliveries: Vec<Delivery<Item>>) {
        for d in deliveries {
            if !takes(&self.members, &self.directory, &d.member, &d.item) {
                self.hub.ack(group, &d.member, std::slice::from_ref(&d.id));
                continue;
            }
            if !has_open_row(&d.item.ty) {
                self.send(d);
                continue;
            }
            let q = OpenTriggeredQuery {
                ty: d.item.ty.clone(),
                project: None,
                stage: None,
                service: None,
                event_id: Some(d.id.clone()),
                now_ms: i64::MAX,
                offset: 0,
                limit: 0,
            };
            match self.store.open_triggered(&q).await {
                Ok((rows, _)) if rows.is_empty() => {
                    self.hub.ack(group, &d.member, std::slice::from_ref(&d.id));
                }
                Ok(_) => self.send(d),
                Err(e) => {
                    tracing::warn!(event = %d.id, error = %e, "could not check whether a handed-over event is open; sending it");
                    self.send(d);
                }
            }
        }
    }

    /// Offers the open `.triggered` events of the integration's subscribed types to its group;
    /// those not yet due are held until they are.
    async fn catch_up(&mut self, group: &str, integration: &str) {
        let Some(subscriptions) = self.directory.subscriptions_of(integration) else { return };
        let mut types: Vec<&str> = subscriptions.iter().map(|s| s.event.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        let now = now_ms();
        for ty in types {
            // Wildcards cannot be looked up (nor polled, in keptn); they rely on the bus alone.
            if ty.split('.').any(|t| t == "*" || t == ">") {
                continue;
            }
            let q = OpenTriggeredQuery {
                ty: ty.to_string(),
                project: None,
                stage: None,
                service: None,
                event_id: None,
                now_ms: i64::MAX, // not-yet-due ones too: they are held until due
                offset: 0,
                limit: 0,
            };
            let rows = match self.store.open_triggered(&q).await {
                Ok((rows, _)) => rows,
                Err(e) => {
                    tracing::error!(integration, error = %e, "could not read open events for a stream");
                    continue;
                }
            };
            for row in rows {
                let Ok(event) = serde_json::from_value::<KeptnEvent>(row) else { continue };
                let event = Arc::new(event);
                let due = parse_time(&event.time).unwrap_or(0);
                if due > now {
                    self.held.insert((due, event.id.clone()), event);
                } else {
                    self.offer_to(group, &event);
                }
            }
        }
    }

    async fn catch_up_all(&mut self) {
        let mut seen = HashSet::new();
        let todo: Vec<(String, String)> = self
            .members
            .values()
            .filter(|m| seen.insert((m.group.clone(), m.integration.clone())))
            .map(|m| (m.group.clone(), m.integration.clone()))
            .collect();
        for (group, integration) in todo {
            self.catch_up(&group, &integration).await;
        }
    }
}

/// Whether the event type has a row in the open `.triggered` index (a task's `.triggered`).
fn has_open_row(ty: &str) -> bool {
    matches!(EventType::parse(ty), EventType::Task { kind, .. } if kind == "triggered")
}

/// Whether member `member`'s registration currently subscribes to the event.
fn takes(members: &HashMap<String, MemberInfo>, directory: &Directory, member: &str, event: &Item) -> bool {
    let Some(info) = members.get(member) else { return false };
    directory
        .subscriptions_of(&info.integration)
        .is_some_and(|subs| subs.iter().any(|s| s.matches(&event.ty, event.project(), event.stage(), event.service())))
}

/// A bounded memory of acked (group, event id) pairs, oldest forgotten first.
#[derive(Default)]
struct Recent {
    order: VecDeque<(String, String)>,
    set: HashSet<(String, String)>,
}

impl Recent {
    fn insert(&mut self, group: &str, id: &str) {
        let key = (group.to_string(), id.to_string());
        if self.set.insert(key.clone()) {
            self.order.push_back(key);
            if self.order.len() > RECENT_ACKS
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }

    fn contains(&self, group: &str, id: &str) -> bool {
        self.set.contains(&(group.to_string(), id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::has_open_row;

    #[test]
    fn only_a_tasks_triggered_is_checked_for_being_open() {
        assert!(has_open_row("sh.keptn.event.evaluation.triggered"));
        // A handed-over answer (the lighthouse's get-sli.finished) has no open row: checking
        // it would drop it as done, and the evaluation would never be scored.
        assert!(!has_open_row("sh.keptn.event.get-sli.finished"));
        assert!(!has_open_row("sh.keptn.event.dev.delivery.triggered"));
        assert!(!has_open_row("sh.keptn.log.error"));
    }
}
