//! The in-memory model of what is in flight: groups with their queued and matched
//! reservations, positions and estimates, specialists, open calls, and the channels that wake
//! the streams.

use super::*;

/// A queued or matched reservation, with what the wire type does not show.
#[derive(Debug, Clone)]
pub(super) struct ActiveReservation {
    pub(super) customer_id: String,
    pub(super) seq: i64,
    pub(super) matched_at: Option<DateTime<Utc>>,
    /// The estimate it was given on joining (for the estimate-error metric; not kept over a
    /// restart).
    pub(super) first_estimate: Option<DateTime<Utc>>,
    pub(super) view: Reservation,
}

impl ActiveReservation {
    /// A reservation just made, at the back of `group`'s queue (positions come from
    /// [`Live::recompute`]).
    pub(super) fn queued(
        sid: &str,
        group: &str,
        customer_id: &str,
        seq: i64,
        check_in: &CheckIn,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            customer_id: customer_id.to_string(),
            seq,
            matched_at: None,
            first_estimate: None,
            view: Reservation {
                reservation_sid: sid.to_string(),
                group_name: group.to_string(),
                reservation_status: ReservationStatus::Queued,
                queue_position: None,
                estimated_wait_until: None,
                estimated_wait_earliest: None,
                estimated_wait_latest: None,
                created_at: now,
                updated_at: now,
                call_id: None,
                call_type: None,
                join_deadline: None,
                join_extended: false,
                customer_name: check_in.name.clone(),
                reason: check_in.reason.clone(),
                specialist_name: None,
                notice: None,
                message: None,
                server_time: now,
            },
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct AgentLive {
    /// What customers see of them (`agent add --display-name`), if set.
    pub(super) display_name: Option<String>,
    pub(super) groups: Vec<String>,
    pub(super) available: bool,
    pub(super) active_call: Option<String>,
}

pub(super) struct GroupLive {
    pub(super) version: u64,
    pub(super) next_seq: i64,
    /// Queued reservations in order: seq → sid.
    pub(super) queue: BTreeMap<i64, String>,
    /// Lengths of the last completed calls, in seconds.
    pub(super) history: VecDeque<f64>,
    pub(super) version_tx: watch::Sender<u64>,
    pub(super) events_tx: broadcast::Sender<(u64, QueueEvent)>,
    /// The specialists' word to everyone waiting, if any (`groups.notice`).
    pub(super) notice: Option<String>,
}

impl GroupLive {
    pub(super) fn new(version: u64, next_seq: i64) -> Self {
        Self {
            version,
            next_seq,
            queue: BTreeMap::new(),
            history: VecDeque::new(),
            version_tx: watch::channel(version).0,
            events_tx: broadcast::channel(1024).0,
            notice: None,
        }
    }
}

#[derive(Default)]
pub(super) struct Live {
    pub(super) groups: HashMap<String, GroupLive>,
    pub(super) reservations: HashMap<String, ActiveReservation>,
    /// customer id → their active reservation.
    pub(super) by_customer: HashMap<String, String>,
    pub(super) calls: HashMap<String, CallRow>,
    pub(super) call_tx: HashMap<String, watch::Sender<CallNote>>,
    pub(super) agents: HashMap<String, AgentLive>,
}

impl Live {
    /// What the estimator needs about a group: each available specialist's call start (or idle),
    /// and the mean call length.
    pub(super) fn estimator_inputs(
        &self,
        group: &str,
    ) -> (Vec<Option<DateTime<Utc>>>, Option<estimator::CallStats>) {
        let busy = self
            .agents
            .values()
            .filter(|a| a.available && a.groups.iter().any(|x| x == group))
            .map(|a| {
                a.active_call
                    .as_ref()
                    .and_then(|id| self.calls.get(id))
                    .map(|c| c.started_at.unwrap_or(c.created_at))
            })
            .collect();
        let mean = self
            .groups
            .get(group)
            .and_then(|g| estimator::call_stats(g.history.iter().copied()));
        (busy, mean)
    }

    /// Positions and estimates of every queued reservation in `group`, after a change.
    pub(super) fn recompute(&mut self, group: &str, now: DateTime<Utc>) {
        let (busy, mean) = self.estimator_inputs(group);
        let Live {
            groups,
            reservations,
            ..
        } = self;
        let Some(g) = groups.get(group) else {
            return;
        };
        let estimates = estimator::estimate_queue(now, g.queue.len(), &busy, mean);
        for (i, (sid, estimate)) in g.queue.values().zip(estimates).enumerate() {
            if let Some(r) = reservations.get_mut(sid) {
                r.view.queue_position = Some(i as u32 + 1);
                set_estimate(&mut r.view, estimate);
            }
        }
    }

    /// The group's notice, for a reservation still waiting in its queue (borrowed: idle
    /// streams ask on every change in their group).
    pub(super) fn notice_for(&self, r: &Reservation) -> &Option<String> {
        const NONE: &Option<String> = &None;
        match self.groups.get(&r.group_name) {
            Some(g) if r.reservation_status == ReservationStatus::Queued => &g.notice,
            _ => NONE,
        }
    }

    pub(super) fn view(&self, sid: &str, now: DateTime<Utc>) -> Option<Reservation> {
        self.reservations.get(sid).map(|r| Reservation {
            server_time: now,
            notice: self.notice_for(&r.view).clone(),
            ..r.view.clone()
        })
    }

    /// Memory's side of a call having ended (`ended` as stored, wherever it ended): it leaves
    /// memory with its matched reservation, its length joins the group's history, its
    /// specialist is free, and its watchers are told and then let go. Answers the notice for
    /// the specialist, if memory still held the call.
    pub(super) fn forget_call(&mut self, ended: &CallRow) -> Option<(Audience, UserEvent)> {
        let held = self.calls.remove(&ended.id)?;
        if let (Some(started), Some(end)) = (held.started_at, ended.ended_at)
            && let Some(g) = self.groups.get_mut(&ended.group_name)
        {
            push_history(
                &mut g.history,
                (end - started).num_milliseconds() as f64 / 1000.0,
            );
        }
        if let Some(a) = self.agents.get_mut(&ended.specialist_id)
            && a.active_call.as_deref() == Some(&ended.id)
        {
            a.active_call = None;
        }
        // Tell the watchers, then drop the sender so their streams know nothing more will come.
        if let Some(tx) = self.call_tx.remove(&ended.id) {
            tx.send_replace(CallNote {
                version: ended.version,
                event: CallEventType::Ended,
            });
        }
        // A matched reservation leaves memory with its call; it stays MATCHED in the database.
        if self
            .reservations
            .get(&ended.reservation_sid)
            .is_some_and(|r| r.view.reservation_status == ReservationStatus::Matched)
            && let Some(r) = self.reservations.remove(&ended.reservation_sid)
            && self.by_customer.get(&r.customer_id) == Some(&ended.reservation_sid)
        {
            self.by_customer.remove(&r.customer_id);
        }
        let reason = ended.ended_reason?;
        Some((
            Audience::User(ended.specialist_id.clone()),
            UserEvent::CallEnded {
                call_id: ended.id.clone(),
                call_type: ended.call_type.clone(),
                reservation_sid: ended.reservation_sid.clone(),
                reason,
            },
        ))
    }

    pub(super) fn publish(&mut self, group: &str, version: u64, event: Option<QueueEvent>) {
        if let Some(g) = self.groups.get_mut(group) {
            g.version = version;
            if let Some(event) = event {
                // No receivers is fine: nobody is watching the queue.
                let _ = g.events_tx.send((version, event));
            }
            g.version_tx.send_replace(version);
        }
    }
}

/// What a customer gave at check-in, trimmed and checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckIn {
    pub name: Option<String>,
    pub reason: Option<String>,
}

impl Live {
    /// Whether a matched reservation's customer has joined its call.
    pub(super) fn customer_joined(&self, r: &ActiveReservation) -> bool {
        r.view
            .call_id
            .as_ref()
            .and_then(|id| self.calls.get(id))
            .is_some_and(|c| c.customer_joined_at.is_some())
    }

    /// The check-in of an active reservation (nothing for one that is not).
    pub(super) fn check_in(&self, sid: &str) -> CheckIn {
        self.reservations
            .get(sid)
            .map(|r| CheckIn {
                name: r.view.customer_name.clone(),
                reason: r.view.reason.clone(),
            })
            .unwrap_or_default()
    }
}

/// A view of a reservation that has left the queue: no place, no estimate.
pub(super) fn out_of_queue(mut view: Reservation, now: DateTime<Utc>) -> Reservation {
    view.queue_position = None;
    set_estimate(&mut view, None);
    view.server_time = now;
    view
}

/// Puts an estimate (or none) on the wire view: the moment and its range.
pub(super) fn set_estimate(view: &mut Reservation, estimate: Option<estimator::Estimate>) {
    view.estimated_wait_until = estimate.map(|e| e.at);
    view.estimated_wait_earliest = estimate.map(|e| e.earliest);
    view.estimated_wait_latest = estimate.map(|e| e.latest);
}

pub(super) fn push_history(history: &mut VecDeque<f64>, secs: f64) {
    if history.len() == estimator::HISTORY {
        history.pop_front();
    }
    history.push_back(secs.max(0.0));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(live: &mut Live, group: &str, seq: i64, sid: &str, now: DateTime<Utc>) {
        let customer = format!("c-{sid}");
        live.reservations.insert(
            sid.into(),
            ActiveReservation::queued(sid, group, &customer, seq, &CheckIn::default(), now),
        );
        live.groups
            .get_mut(group)
            .unwrap()
            .queue
            .insert(seq, sid.into());
    }

    fn positions(live: &Live, sids: &[&str]) -> Vec<Option<u32>> {
        sids.iter()
            .map(|s| live.reservations[*s].view.queue_position)
            .collect()
    }

    #[test]
    fn positions_follow_queue_order_and_stay_dense_after_a_removal() {
        let now = Utc::now();
        let mut live = Live::default();
        live.groups.insert("g".into(), GroupLive::new(0, 1));
        // Sequence numbers with gaps, inserted out of order: order is by seq.
        for (seq, sid) in [(7, "c"), (2, "a"), (5, "b")] {
            queued(&mut live, "g", seq, sid, now);
        }
        live.recompute("g", now);
        assert_eq!(
            positions(&live, &["a", "b", "c"]),
            [Some(1), Some(2), Some(3)]
        );
        live.groups.get_mut("g").unwrap().queue.remove(&2);
        live.reservations.remove("a");
        live.recompute("g", now);
        assert_eq!(positions(&live, &["b", "c"]), [Some(1), Some(2)]);
        // No estimate without an available specialist.
        assert!(live.reservations["b"].view.estimated_wait_until.is_none());
    }

    #[test]
    fn estimates_appear_with_an_available_specialist_and_grow_with_position() {
        let now = Utc::now();
        let mut live = Live::default();
        let mut g = GroupLive::new(0, 1);
        for _ in 0..5 {
            push_history(&mut g.history, 600.0);
        }
        live.groups.insert("g".into(), g);
        live.agents.insert(
            "doc".into(),
            AgentLive {
                display_name: None,
                groups: vec!["g".into()],
                available: true,
                active_call: None,
            },
        );
        for (seq, sid) in [(1, "a"), (2, "b")] {
            queued(&mut live, "g", seq, sid, now);
        }
        live.recompute("g", now);
        let a = live.reservations["a"].view.estimated_wait_until.unwrap();
        let b = live.reservations["b"].view.estimated_wait_until.unwrap();
        assert!(b > a, "{a} then {b}");
    }

    #[test]
    fn publishing_moves_the_version_and_tells_subscribers_in_order() {
        let now = Utc::now();
        let mut live = Live::default();
        live.groups.insert("g".into(), GroupLive::new(4, 1));
        let mut versions = live.groups["g"].version_tx.subscribe();
        let mut events = live.groups["g"].events_tx.subscribe();
        queued(&mut live, "g", 1, "a", now);
        let view = live.view("a", now).unwrap();
        live.publish(
            "g",
            5,
            Some(QueueEvent::Added {
                reservation: view,
                server_time: now,
            }),
        );
        live.publish("g", 6, None);
        assert_eq!(live.groups["g"].version, 6);
        assert_eq!(*versions.borrow_and_update(), 6);
        let (v, event) = events.try_recv().unwrap();
        assert_eq!(v, 5);
        assert!(matches!(event, QueueEvent::Added { .. }));
        assert!(
            events.try_recv().is_err(),
            "a version change alone sends no event"
        );
        // Unknown groups are ignored.
        live.publish("nope", 9, None);
    }
}
