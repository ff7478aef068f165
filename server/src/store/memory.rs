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
    pub(super) view: Reservation,
}

#[derive(Debug, Clone)]
pub(super) struct AgentLive {
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
    ) -> (Vec<Option<DateTime<Utc>>>, Option<Duration>) {
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
            .and_then(|g| estimator::mean_call(g.history.iter().copied()));
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
                r.view.estimated_wait_until = estimate;
            }
        }
    }

    pub(super) fn view(&self, sid: &str, now: DateTime<Utc>) -> Option<Reservation> {
        self.reservations.get(sid).map(|r| Reservation {
            server_time: now,
            ..r.view.clone()
        })
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

pub(super) fn push_history(history: &mut VecDeque<f64>, secs: f64) {
    if history.len() == estimator::HISTORY {
        history.pop_front();
    }
    history.push_back(secs.max(0.0));
}
