//! Work sharing for streamed integrations, as pure state: groups (a registration's name) of
//! connected members (registration ids), the events each member holds unacked, and the events
//! waiting for a member. The I/O shell feeds it bus events, connects, disconnects and acks and
//! writes out what it returns; nothing here awaits or locks.

use std::collections::{HashMap, VecDeque};

/// An assignment: deliver `item` (event id `id`) to connection `conn` of member `member`.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery<T> {
    pub member: String,
    pub conn: u64,
    pub id: String,
    pub item: T,
}

struct Member<T> {
    id: String,
    conn: u64,
    in_flight: Vec<(String, T)>,
}

struct Group<T> {
    members: Vec<Member<T>>,
    /// Events no connected member could take; oldest dropped beyond the hub's bound.
    waiting: VecDeque<(String, T)>,
}

impl<T> Default for Group<T> {
    fn default() -> Self {
        Group { members: Vec::new(), waiting: VecDeque::new() }
    }
}

pub struct Hub<T> {
    groups: HashMap<String, Group<T>>,
    max_waiting: usize,
}

impl<T: Clone> Hub<T> {
    pub fn new(max_waiting: usize) -> Self {
        Hub { groups: HashMap::new(), max_waiting }
    }

    /// A member's stream opened: it gets the group's waiting events. A reconnect of the same
    /// member replaces its old connection, whose unacked events move to the new one.
    pub fn connect(&mut self, group: &str, member: &str, conn: u64) -> Vec<Delivery<T>> {
        let g = self.groups.entry(group.to_string()).or_default();
        let mut carried = Vec::new();
        if let Some(pos) = g.members.iter().position(|m| m.id == member) {
            carried = g.members.remove(pos).in_flight;
        }
        let mut m = Member { id: member.to_string(), conn, in_flight: Vec::new() };
        let mut out = Vec::new();
        for (id, item) in carried.into_iter().chain(g.waiting.drain(..)) {
            out.push(Delivery { member: member.to_string(), conn, id: id.clone(), item: item.clone() });
            m.in_flight.push((id, item));
        }
        g.members.push(m);
        out
    }

    /// Whether the group holds this event (in flight at a member or waiting).
    pub fn holds(&self, group: &str, id: &str) -> bool {
        self.groups.get(group).is_some_and(|g| {
            g.waiting.iter().any(|(w, _)| w == id) || g.members.iter().any(|m| m.in_flight.iter().any(|(f, _)| f == id))
        })
    }

    /// Offers an event to the group, restricted to `eligible` members (those whose current
    /// subscriptions match): the least-loaded connected one gets it; with none connected it waits.
    /// An event the group already holds is not offered twice. Returns the dropped waiting event
    /// id, if the bound overflowed, alongside the delivery.
    pub fn offer(&mut self, group: &str, eligible: &[String], id: &str, item: T) -> Offer<T> {
        if self.holds(group, id) {
            return Offer::Duplicate;
        }
        let max = self.max_waiting;
        let g = self.groups.entry(group.to_string()).or_default();
        let target = g.members.iter_mut().filter(|m| eligible.contains(&m.id)).min_by_key(|m| m.in_flight.len());
        match target {
            Some(m) => {
                m.in_flight.push((id.to_string(), item.clone()));
                Offer::Deliver(Delivery { member: m.id.clone(), conn: m.conn, id: id.to_string(), item })
            }
            None => {
                g.waiting.push_back((id.to_string(), item));
                let dropped = if g.waiting.len() > max { g.waiting.pop_front().map(|(d, _)| d) } else { None };
                Offer::Waiting { dropped }
            }
        }
    }

    /// The member finished these events; ids it does not hold are ignored.
    pub fn ack(&mut self, group: &str, member: &str, ids: &[String]) {
        if let Some(m) = self.groups.get_mut(group).and_then(|g| g.members.iter_mut().find(|m| m.id == member)) {
            m.in_flight.retain(|(id, _)| !ids.contains(id));
        }
    }

    /// These events are settled for the whole group, wherever they are (an ack from a member whose
    /// connection already ended: its events may have moved on, and need not run again).
    pub fn forget(&mut self, group: &str, ids: &[String]) {
        if let Some(g) = self.groups.get_mut(group) {
            g.waiting.retain(|(id, _)| !ids.contains(id));
            for m in &mut g.members {
                m.in_flight.retain(|(id, _)| !ids.contains(id));
            }
        }
    }

    /// A member's connection ended: its unacked events go to the remaining members whose current
    /// subscriptions still take them (`takes(member, item)`; least loaded first) or wait for the
    /// next one. A stale connection (already replaced) changes nothing.
    pub fn disconnect(
        &mut self,
        group: &str,
        member: &str,
        conn: u64,
        takes: impl Fn(&str, &T) -> bool,
    ) -> Vec<Delivery<T>> {
        let max = self.max_waiting;
        let Some(g) = self.groups.get_mut(group) else { return Vec::new() };
        let Some(pos) = g.members.iter().position(|m| m.id == member && m.conn == conn) else { return Vec::new() };
        let orphans = g.members.remove(pos).in_flight;
        let mut out = Vec::new();
        for (id, item) in orphans {
            match g.members.iter_mut().filter(|m| takes(&m.id, &item)).min_by_key(|m| m.in_flight.len()) {
                Some(m) => {
                    out.push(Delivery { member: m.id.clone(), conn: m.conn, id: id.clone(), item: item.clone() });
                    m.in_flight.push((id, item));
                }
                None => {
                    g.waiting.push_back((id, item));
                    if g.waiting.len() > max {
                        g.waiting.pop_front();
                    }
                }
            }
        }
        out
    }

    /// Connected groups and their member ids (for the shell's matching).
    pub fn members(&self) -> Vec<(String, Vec<String>)> {
        self.groups
            .iter()
            .filter(|(_, g)| !g.members.is_empty() || !g.waiting.is_empty())
            .map(|(n, g)| (n.clone(), g.members.iter().map(|m| m.id.clone()).collect()))
            .collect()
    }
}

#[derive(Debug, PartialEq)]
pub enum Offer<T> {
    Deliver(Delivery<T>),
    Waiting { dropped: Option<String> },
    Duplicate,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn delivered(o: Offer<u32>) -> String {
        match o {
            Offer::Deliver(d) => d.member,
            other => panic!("not delivered: {other:?}"),
        }
    }

    #[test]
    fn each_event_goes_to_exactly_one_member_balanced() {
        let mut h = Hub::new(10);
        h.connect("svc", "a", 1);
        h.connect("svc", "b", 2);
        let mut count = HashMap::new();
        for i in 0..100 {
            *count.entry(delivered(h.offer("svc", &ids(&["a", "b"]), &i.to_string(), i))).or_insert(0) += 1;
        }
        assert_eq!(count["a"], 50);
        assert_eq!(count["b"], 50);
        assert_eq!(h.offer("svc", &ids(&["a", "b"]), "7", 7), Offer::Duplicate);
    }

    #[test]
    fn groups_each_get_a_copy_and_eligibility_restricts() {
        let mut h = Hub::new(10);
        h.connect("g1", "a", 1);
        h.connect("g1", "b", 2);
        h.connect("g2", "c", 3);
        assert_eq!(delivered(h.offer("g1", &ids(&["b"]), "e", 0)), "b");
        assert_eq!(delivered(h.offer("g2", &ids(&["c"]), "e", 0)), "c");
    }

    #[test]
    fn leaving_member_hands_unacked_to_another() {
        let mut h = Hub::new(10);
        h.connect("g", "a", 1);
        let all = ids(&["a", "b"]);
        h.offer("g", &all, "1", 1);
        h.offer("g", &all, "2", 2);
        h.ack("g", "a", &ids(&["1", "unknown"]));
        h.connect("g", "b", 2);
        let moved = h.disconnect("g", "a", 1, |_, _| true);
        assert_eq!(moved.len(), 1);
        assert_eq!((moved[0].member.as_str(), moved[0].id.as_str()), ("b", "2"));
        assert!(h.holds("g", "2") && !h.holds("g", "1"));
    }

    #[test]
    fn redelivery_skips_members_no_longer_subscribed() {
        let mut h = Hub::new(10);
        h.connect("g", "a", 1);
        h.offer("g", &ids(&["a"]), "1", 1);
        h.connect("g", "b", 2);
        assert!(h.disconnect("g", "a", 1, |m, _| m != "b").is_empty());
        // Not lost: it waits for the next member.
        assert_eq!(h.connect("g", "c", 3).len(), 1);
    }

    #[test]
    fn without_members_events_wait_bounded_for_the_next() {
        let mut h = Hub::new(2);
        h.connect("g", "a", 1);
        h.offer("g", &ids(&["a"]), "1", 1);
        assert!(h.disconnect("g", "a", 1, |_, _| true).is_empty());
        assert_eq!(h.offer("g", &ids(&["a"]), "2", 2), Offer::Waiting { dropped: None });
        assert_eq!(h.offer("g", &ids(&["a"]), "3", 3), Offer::Waiting { dropped: Some("1".into()) });
        let got: Vec<String> = h.connect("g", "b", 5).into_iter().map(|d| d.id).collect();
        assert_eq!(got, ids(&["2", "3"]));
    }

    #[test]
    fn forget_settles_an_event_wherever_it_is() {
        let mut h = Hub::new(10);
        h.connect("g", "a", 1);
        h.offer("g", &ids(&["a"]), "1", 1);
        h.offer("g", &ids(&["b"]), "2", 2); // waits: b is not connected
        h.forget("g", &ids(&["1", "2"]));
        assert!(!h.holds("g", "1") && !h.holds("g", "2"));
        h.forget("nobody", &ids(&["1"]));
    }

    #[test]
    fn stale_disconnect_after_reconnect_is_ignored() {
        let mut h = Hub::new(10);
        h.connect("g", "a", 1);
        h.offer("g", &ids(&["a"]), "1", 1);
        let again = h.connect("g", "a", 2);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].conn, 2);
        assert!(h.disconnect("g", "a", 1, |_, _| true).is_empty());
        assert!(h.holds("g", "1"));
    }
}
