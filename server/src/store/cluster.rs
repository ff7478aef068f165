//! Several nodes on one PostgreSQL database.
//!
//! Every node keeps the same in-memory model, as a cache of the database. A change locks its
//! group's row (`SELECT … FOR UPDATE`), so changes to one group are serialized in the database
//! whichever node makes them; under that lock the node compares the group's stored version with
//! its own and re-reads the group if another node changed it, decides, writes, bumps the
//! version and `NOTIFY`s the group's name, delivered when the transaction commits. The other
//! nodes take a notification as a hint to re-read that group (the rows are the only copy of
//! anything); a periodic reconcile compares every group's version, so a notification lost with
//! a dropped listening connection heals within a second. Notices for specialists' channels
//! (`UserEvent`) travel on a second channel, since they are about something that happened
//! rather than state to re-read.
//!
//! On SQLite (one process) the same calls cost nothing: memory is the only cache, always
//! current, and nothing is announced.

use std::time::Duration as StdDuration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio_util::sync::CancellationToken;

use super::*;

pub(super) type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Carries `group|version`: "this group is at this version; re-read it if you are not".
const GROUP_CHANNEL: &str = "callqueue_group";
/// Carries relayed [`UserEvent`]s.
const USER_CHANNEL: &str = "callqueue_user";
/// Carries call signalling between members whose sockets are on different nodes, as frames
/// `node|message id|part|parts|text`: PostgreSQL takes at most 8,000 bytes per notification and a
/// session description can be longer, so long messages go in parts (sent in one statement, so
/// one transaction, so delivered together and in order).
const SIGNAL_CHANNEL: &str = "callqueue_signal";
/// Most messages relayed in one statement.
const RELAY_BATCH: usize = 64;
/// Most text in one notification's part.
const PART: usize = 7_000;
/// How often every group's version is compared with the database, whatever was heard.
pub const RECONCILE_EVERY: StdDuration = StdDuration::from_secs(1);
/// The listening connection's name in `pg_stat_activity`.
pub const LISTENER_NAME: &str = "callqueue-listener";

/// A user event on its way to the other nodes.
#[derive(Serialize, Deserialize)]
struct Relayed {
    /// The node it came from, which has already delivered it.
    node: String,
    group: Option<String>,
    user: Option<String>,
    event: UserEvent,
}

impl Store {
    /// Whether this node shares its database with others (PostgreSQL).
    pub fn clustered(&self) -> bool {
        self.inner.clustered
    }

    /// Begins a change to `groups`: on PostgreSQL locks their rows (in name order, so two
    /// nodes never wait for each other) and re-reads any group another node changed since this
    /// one last looked, so the decision that follows sees the database as it is. The caller
    /// holds the write lock.
    pub(super) async fn begin_groups(&self, groups: &[&str]) -> StoreResult<Tx> {
        let mut tx = self.inner.db.begin().await?;
        if self.inner.clustered {
            let mut sorted = groups.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            for group in sorted {
                let stored: Option<i64> =
                    sqlx::query_scalar("SELECT version FROM groups WHERE name = $1 FOR UPDATE")
                        .bind(group)
                        .fetch_optional(&mut *tx)
                        .await?;
                if stored.is_some_and(|v| Some(v as u64) != self.group_version(group)) {
                    self.load_group(&mut tx, group).await?;
                }
            }
        }
        Ok(tx)
    }

    /// Ends a change to one group: its new version stored, the other nodes told, committed.
    pub(super) async fn commit_group(
        &self,
        mut tx: Tx,
        group: &str,
        version: u64,
    ) -> StoreResult<()> {
        bump_group(&mut tx, group, version).await?;
        self.announce(&mut tx, &[(group, version)]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Tells the other nodes, when `tx` commits, that these groups changed, and to which
    /// versions (`group|version`: a node that already has that version reads nothing).
    pub(super) async fn announce(&self, tx: &mut Tx, changes: &[(&str, u64)]) -> sqlx::Result<()> {
        if self.inner.clustered {
            for (group, version) in changes {
                // `::text`: the Any driver has no decoder for pg_notify's `void`.
                sqlx::query("SELECT pg_notify($1, $2)::text")
                    .bind(GROUP_CHANNEL)
                    .bind(format!("{group}|{version}"))
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }

    fn group_version(&self, group: &str) -> Option<u64> {
        self.live().groups.get(group).map(|g| g.version)
    }

    /// Brings memory's copy of one group up to the database: everything on first sight (at
    /// start), afterwards only the reservations and calls changed since the version memory
    /// holds (each row carries the group version of its last change, `gv`), and always the
    /// specialists (a few rows). Wakes whatever watches what changed, and tells the queue
    /// streams each change with its own version, as the node that made it did. Used at start,
    /// under a change's lock, and when another node says so; the caller holds the write lock
    /// and reads one snapshot (a transaction holding the group's row, or a repeatable read).
    pub(super) async fn load_group(
        &self,
        conn: &mut sqlx::AnyConnection,
        group: &str,
    ) -> StoreResult<()> {
        let now = Utc::now();
        let since = self.group_version(group);
        let Some(row) = sqlx::query(
            "SELECT version, notice, (SELECT COALESCE(MAX(seq), 0) FROM reservations \
             WHERE group_name = $1) AS max_seq FROM groups WHERE name = $1",
        )
        .bind(group)
        .fetch_optional(&mut *conn)
        .await?
        else {
            return Ok(());
        };
        let version = row.try_get::<i64, _>("version")? as u64;
        let max_seq: i64 = row.try_get("max_seq")?;
        let notice: Option<String> = row.try_get("notice")?;
        let (reservations_sql, calls_sql) = match since {
            // Only what is live: the queue, and the matched reservations of open calls (served
            // ones stay MATCHED in the rows forever; reading them all made every start slower
            // than the last).
            None => (
                "SELECT * FROM ( \
                   SELECT r.*, NULL AS call_ended_at FROM reservations r \
                   WHERE r.group_name = $1 AND r.gv >= $2 \
                   AND r.status = 'GROUP_RESERVATION_STATUS_QUEUED' \
                   UNION ALL \
                   SELECT r.*, c.ended_at AS call_ended_at FROM calls c \
                   JOIN reservations r ON r.sid = c.reservation_sid \
                   WHERE c.group_name = $1 AND c.ended_at IS NULL AND r.gv >= $2 \
                   AND r.status = 'GROUP_RESERVATION_STATUS_MATCHED' \
                 ) live ORDER BY seq",
                "SELECT * FROM calls WHERE group_name = $1 AND gv >= $2 AND ended_at IS NULL",
            ),
            Some(_) => (
                "SELECT r.*, c.ended_at AS call_ended_at FROM reservations r \
                 LEFT JOIN calls c ON c.id = r.call_id \
                 WHERE r.group_name = $1 AND r.gv > $2 ORDER BY r.gv",
                "SELECT * FROM calls WHERE group_name = $1 AND gv > $2",
            ),
        };
        let first_sight = since.is_none();
        let since = since.unwrap_or(0) as i64;
        // (gv, the reservation as it is now, whether it is still in flight)
        let mut changed = Vec::new();
        for row in sqlx::query(reservations_sql)
            .bind(group)
            .bind(since)
            .fetch_all(&mut *conn)
            .await?
        {
            let view = reservation_from_row(&row, now)?;
            // A matched reservation leaves memory with its call; it stays MATCHED in the rows.
            let in_flight = match view.reservation_status {
                ReservationStatus::Queued => true,
                ReservationStatus::Matched => row.time_opt("call_ended_at")?.is_none(),
                _ => false,
            };
            let gv: i64 = row.try_get("gv")?;
            changed.push((
                gv as u64,
                ActiveReservation {
                    customer_id: row.try_get("customer_id")?,
                    seq: row.try_get("seq")?,
                    matched_at: row.time_opt("matched_at")?,
                    first_estimate: None,
                    view,
                },
                in_flight,
            ));
        }
        let mut calls = Vec::new();
        for row in sqlx::query(calls_sql)
            .bind(group)
            .bind(since)
            .fetch_all(&mut *conn)
            .await?
        {
            calls.push(CallRow::from_row(&row)?);
        }
        if first_sight {
            self.inner.rows_at_start.fetch_add(
                (changed.len() + calls.len()) as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        let mut agents = Vec::new();
        for row in sqlx::query("SELECT user_id, groups, available, display_name FROM agents")
            .fetch_all(&mut *conn)
            .await?
        {
            let groups: String = row.try_get("groups")?;
            agents.push((
                row.try_get::<String, _>("user_id")?,
                split_groups(&groups),
                row.flag("available")?,
                row.try_get::<Option<String>, _>("display_name")?,
            ));
        }

        let mut guard = self.live_mut();
        let live = &mut *guard;
        let g = live
            .groups
            .entry(group.to_string())
            .or_insert_with(|| GroupLive::new(version, max_seq + 1));
        g.next_seq = g.next_seq.max(max_seq + 1);
        g.notice = notice;
        // What the queue streams are told: (version, joined the queue?, the reservation).
        let mut moves = Vec::new();
        let mut kept_for_removal = std::collections::HashSet::new();
        for (gv, r, in_flight) in changed {
            let sid = r.view.reservation_sid.clone();
            let was_queued = match live.reservations.remove(&sid) {
                Some(old) => {
                    if live.by_customer.get(&old.customer_id) == Some(&sid) {
                        live.by_customer.remove(&old.customer_id);
                    }
                    g.queue.remove(&old.seq);
                    old.view.reservation_status == ReservationStatus::Queued
                }
                None => false,
            };
            let queued = in_flight && r.view.reservation_status == ReservationStatus::Queued;
            match (was_queued, queued) {
                _ if first_sight => {}
                (false, true) => moves.push((gv, true, sid.clone())),
                (true, false) => moves.push((gv, false, sid.clone())),
                _ => {}
            }
            if !in_flight {
                if was_queued {
                    // Kept for the removal event only.
                    kept_for_removal.insert(sid.clone());
                    live.reservations.insert(sid, r);
                }
                continue;
            }
            if queued {
                g.queue.insert(r.seq, sid.clone());
            }
            live.by_customer.insert(r.customer_id.clone(), sid.clone());
            live.reservations.insert(sid, r);
        }
        // The specialists' notices for what another node did, told here as that node told its
        // own specialists (so they need not travel: the rows say what happened).
        let mut notices = Vec::new();
        for call in calls {
            if call.ended_at.is_some() {
                if let Some(notice) = live.forget_call(&call)
                    && !first_sight
                {
                    notices.push(notice);
                }
                continue;
            }
            let event = match live.calls.get(&call.id) {
                Some(held) if held.version == call.version => continue,
                Some(held) if held.started_at.is_none() && call.started_at.is_some() => {
                    CallEventType::SessionStarted
                }
                _ => CallEventType::Updated,
            };
            if event == CallEventType::SessionStarted {
                notices.push((Audience::User(call.specialist_id.clone()), {
                    let check_in = live.check_in(&call.reservation_sid);
                    UserEvent::CallStarted {
                        call_id: call.id.clone(),
                        call_type: call.call_type.clone(),
                        reservation_sid: call.reservation_sid.clone(),
                        customer_name: check_in.name,
                        reason: check_in.reason,
                    }
                }));
            }
            let note = CallNote {
                version: call.version,
                event,
            };
            match live.call_tx.get(&call.id) {
                Some(tx) => {
                    tx.send_replace(note);
                }
                None => {
                    live.call_tx.insert(call.id.clone(), watch::channel(note).0);
                }
            }
            live.calls.insert(call.id.clone(), call);
        }
        for (user_id, groups, available, display_name) in agents {
            let active_call = live
                .calls
                .values()
                .find(|c| c.specialist_id == user_id)
                .map(|c| c.id.clone());
            live.agents.insert(
                user_id,
                AgentLive {
                    display_name,
                    groups,
                    available,
                    active_call,
                },
            );
        }
        live.recompute(group, now);
        let queue_length = live.groups.get(group).map_or(0, |g| g.queue.len() as u32);
        for (gv, joined, sid) in moves {
            if joined {
                notices.push((Audience::Group(group.to_string()), {
                    let check_in = live.check_in(&sid);
                    UserEvent::CustomerWaiting {
                        group_name: group.to_string(),
                        reservation_sid: sid.clone(),
                        queue_length,
                        customer_name: check_in.name,
                        reason: check_in.reason,
                    }
                }));
            }
            let event = if joined {
                live.view(&sid, now).map(|reservation| QueueEvent::Added {
                    reservation,
                    server_time: now,
                })
            } else {
                let reservation = live
                    .reservations
                    .get(&sid)
                    .map(|r| out_of_queue(r.view.clone(), now));
                // A reservation no longer in flight (finished, or matched to a call that has
                // already ended: served while this node was not looking) was kept only for
                // this event. Kept longer, a served one would later be swept as EXPIRED.
                if kept_for_removal.contains(&sid) {
                    live.reservations.remove(&sid);
                }
                reservation.map(|reservation| QueueEvent::Removed {
                    reservation,
                    server_time: now,
                })
            };
            if event.is_some() && gv > live.groups.get(group).map_or(0, |g| g.version) {
                live.publish(group, gv, event);
            }
        }
        live.publish(group, version, None);
        drop(guard);
        for notice in notices {
            // No receivers is fine: no specialist's channel is open on this node.
            let _ = self.inner.user_events.send(notice);
        }
        Ok(())
    }

    /// How many full reconciles this node has run (work a request must not cause for
    /// someone who may not see what it asks for).
    pub fn reconciles(&self) -> u64 {
        self.inner
            .reconciles
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Re-reads every group whose stored version differs from memory's.
    pub async fn reconcile(&self) -> StoreResult<usize> {
        self.inner
            .reconciles
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stored: Vec<(String, i64)> = sqlx::query_as("SELECT name, version FROM groups")
            .fetch_all(&self.inner.db)
            .await?;
        let mut reloaded = 0;
        for (group, version) in stored {
            if self.reload_unless_at(&group, version as u64).await? {
                reloaded += 1;
            }
        }
        Ok(reloaded)
    }

    /// Re-reads `group` unless memory is already at `version` or past it. Checked again under
    /// the write lock: a notification of this node's own change can arrive while the change is
    /// still being applied to memory, and must not cost a re-read.
    async fn reload_unless_at(&self, group: &str, version: u64) -> StoreResult<bool> {
        let current = |s: &Self| s.group_version(group).is_some_and(|v| v >= version);
        if current(self) {
            return Ok(false);
        }
        let _w = self.inner.write.lock().await;
        if current(self) {
            return Ok(false);
        }
        // One snapshot for the group's version and its rows.
        let mut tx = self.inner.db.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        self.load_group(&mut tx, group).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Sends a user event to the other nodes (in order, through one task): only what the
    /// database does not hold (a customer's page coming and going); the others each node
    /// derives from the rows it re-reads (`load_group`).
    pub(super) fn relay(&self, audience: &Audience, event: &UserEvent) {
        let Some(relay) = &self.inner.relay else {
            return;
        };
        if !matches!(event, UserEvent::CustomerPresence { .. }) {
            return;
        }
        let (group, user) = match audience {
            Audience::Group(g) => (Some(g.clone()), None),
            Audience::User(u) => (None, Some(u.clone())),
        };
        let relayed = Relayed {
            node: self.inner.node.clone(),
            group,
            user,
            event: event.clone(),
        };
        match serde_json::to_string(&relayed) {
            Ok(json) => {
                if relay.try_send((USER_CHANNEL, vec![json])).is_err() {
                    tracing::warn!("user events are piling up for the other nodes; one dropped");
                }
            }
            Err(e) => tracing::warn!(error = %e, "a user event could not be relayed"),
        }
    }

    /// Sends call signalling (a JSON text) to the other nodes; what they send arrives on
    /// [`Store::signals`]. Nothing happens on SQLite.
    pub fn send_signal(&self, text: String) {
        let Some(relay) = &self.inner.relay else {
            return;
        };
        let id = self
            .inner
            .signal_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let parts = split_text(&text, PART);
        let n = parts.len();
        let frames = parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| format!("{}|{id}|{i}|{n}|{part}", self.inner.node))
            .collect();
        if relay.try_send((SIGNAL_CHANNEL, frames)).is_err() {
            tracing::warn!("signalling is piling up for the other nodes; a message dropped");
        }
    }

    /// Call signalling from the other nodes.
    pub fn signals(&self) -> broadcast::Receiver<String> {
        self.inner.signals.subscribe()
    }

    /// The task behind [`Store::relay`] and [`Store::send_signal`]: in order, whatever is
    /// waiting in one statement (so one round trip and one transaction: a message's parts
    /// arrive together), at most [`RELAY_BATCH`] messages at a time.
    pub(super) async fn run_relay(
        db: AnyPool,
        mut messages: mpsc::Receiver<(&'static str, Vec<String>)>,
    ) {
        let mut batch = Vec::with_capacity(RELAY_BATCH);
        while messages.recv_many(&mut batch, RELAY_BATCH).await > 0 {
            let notes: Vec<(&str, &String)> = batch
                .iter()
                .flat_map(|(channel, parts)| parts.iter().map(move |p| (*channel, p)))
                .collect();
            let calls: Vec<String> = (0..notes.len())
                .map(|i| format!("pg_notify(${}, ${})::text", 2 * i + 1, 2 * i + 2))
                .collect();
            let sql = format!("SELECT {}", calls.join(", "));
            let mut q = sqlx::query(&sql);
            for (channel, part) in &notes {
                q = q.bind(*channel).bind(*part);
            }
            if let Err(e) = q.execute(&db).await {
                tracing::warn!(error = %e, messages = batch.len(), "relaying to the other nodes failed");
            }
            batch.clear();
        }
    }

    /// Follows the other nodes until `shutdown`: listens for their notifications and re-reads
    /// what they changed, and reconciles every [`RECONCILE_EVERY`]. A lost listening
    /// connection is reconnected (by sqlx) and followed by a reconcile.
    pub async fn follow(&self, url: &str, shutdown: CancellationToken) {
        if !self.inner.clustered {
            return;
        }
        let options = match url.parse::<PgConnectOptions>() {
            Ok(o) => o.application_name(LISTENER_NAME),
            Err(e) => {
                tracing::error!(error = %e, "cannot follow the other nodes");
                return;
            }
        };
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(StdDuration::from_secs(5))
            .connect_lazy_with(options);
        let mut tick = tokio::time::interval(RECONCILE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut listener: Option<PgListener> = None;
        let mut parts = Parts::default();
        loop {
            if listener.is_none() {
                match Self::listen(&pool).await {
                    Ok(l) => {
                        listener = Some(l);
                        // Whatever was said while nobody listened.
                        self.reconcile_logged().await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen to the other nodes; retrying");
                    }
                }
            }
            let heard = async {
                match listener.as_mut() {
                    Some(l) => l.try_recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => self.reconcile_logged().await,
                heard = heard => match heard {
                    Ok(Some(n)) if n.channel() == SIGNAL_CHANNEL => {
                        if let Some(text) = parts.add(&self.inner.node, n.payload()) {
                            let _ = self.inner.signals.send(text);
                        }
                    }
                    Ok(Some(n)) => self.heard(n.channel(), n.payload()).await,
                    // The connection was lost: listen again, then reconcile.
                    Ok(None) => {
                        tracing::warn!("lost the connection listening to the other nodes");
                        listener = None;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "listening to the other nodes failed");
                        listener = None;
                    }
                },
            }
        }
    }

    async fn listen(pool: &sqlx::PgPool) -> sqlx::Result<PgListener> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener
            .listen_all([GROUP_CHANNEL, USER_CHANNEL, SIGNAL_CHANNEL])
            .await?;
        Ok(listener)
    }

    async fn reconcile_logged(&self) {
        match self.reconcile().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(groups = n, "reconciled groups changed elsewhere"),
            Err(e) => tracing::warn!(error = %e, "reconciling with the database failed"),
        }
    }

    async fn heard(&self, channel: &str, payload: &str) {
        match channel {
            GROUP_CHANNEL => {
                let Some((group, Ok(version))) = payload
                    .rsplit_once('|')
                    .map(|(group, version)| (group, version.parse::<u64>()))
                else {
                    // Not ours; the reconcile catches up with whatever it was about.
                    tracing::warn!(payload, "an unreadable group notification");
                    return;
                };
                if let Err(e) = self.reload_unless_at(group, version).await {
                    tracing::warn!(group, error = %e, "re-reading a group failed");
                }
            }
            USER_CHANNEL => match serde_json::from_str::<Relayed>(payload) {
                Ok(r) if r.node == self.inner.node => {}
                Ok(r) => {
                    let audience = match (r.group, r.user) {
                        (Some(g), _) => Audience::Group(g),
                        (None, Some(u)) => Audience::User(u),
                        (None, None) => return,
                    };
                    let _ = self.inner.user_events.send((audience, r.event));
                }
                Err(e) => tracing::warn!(error = %e, "an unreadable relayed user event"),
            },
            _ => {}
        }
    }
}

/// `text` in pieces of at most `max` bytes, cut between characters.
fn split_text(text: &str, max: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (part, tail) = rest.split_at(cut);
        parts.push(part);
        rest = tail;
    }
    parts.push(rest);
    parts
}

/// Signalling messages from other nodes being put back together from their parts.
#[derive(Default)]
struct Parts {
    waiting: HashMap<(String, u64), Vec<String>>,
}

/// Most messages half-received at once; more means parts were lost: start afresh.
const MOST_WAITING: usize = 256;

impl Parts {
    /// Takes one frame; answers a whole message once its last part is in. Frames from this
    /// node (`own`), malformed ones and parts out of order are dropped.
    fn add(&mut self, own: &str, frame: &str) -> Option<String> {
        let mut fields = frame.splitn(5, '|');
        let node = fields.next()?;
        let id: u64 = fields.next()?.parse().ok()?;
        let i: usize = fields.next()?.parse().ok()?;
        let n: usize = fields.next()?.parse().ok()?;
        let text = fields.next()?;
        if node == own || n == 0 || i >= n {
            return None;
        }
        if n == 1 {
            return Some(text.to_string());
        }
        if self.waiting.len() >= MOST_WAITING {
            self.waiting.clear();
        }
        let key = (node.to_string(), id);
        let got = self.waiting.entry(key.clone()).or_default();
        if got.len() != i {
            self.waiting.remove(&key);
            return None;
        }
        got.push(text.to_string());
        if got.len() < n {
            return None;
        }
        self.waiting.remove(&key).map(|p| p.concat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store on a new SQLite file with `config` tweaked, and a signed-in, available
    /// specialist of the default group.
    async fn store_with_specialist(
        dir: &tempfile::TempDir,
        tweak: impl FnOnce(&mut Config),
    ) -> (Store, AnyPool, Arc<Config>, Agent) {
        let mut config = Config::for_tests(dir.path().join("db.sqlite3"));
        tweak(&mut config);
        let config = Arc::new(config);
        let db = crate::db::open(&config.database).await.unwrap();
        let store = Store::open(db.clone(), config.clone()).await.unwrap();
        let group = callqueue_protocol::DEFAULT_GROUP;
        Store::add_agent(
            &db,
            "dr",
            Role::Specialist,
            &[group.into()],
            "a long secret",
        )
        .await
        .unwrap();
        let (agent, _) = store.sign_in("dr", "a long secret").await.unwrap();
        store.set_available(&agent, true).await.unwrap();
        (store, db, config, agent)
    }

    /// A start reads what is live and the last `HISTORY` call lengths, however many calls
    /// were served before.
    #[tokio::test]
    async fn a_start_reads_what_is_live_not_the_whole_history() {
        let dir = tempfile::tempdir().unwrap();
        let (store, db, config, agent) = store_with_specialist(&dir, |_| {}).await;
        let group = callqueue_protocol::DEFAULT_GROUP;
        let served = crate::estimator::HISTORY + 10;
        let join = || async {
            let (customer, _) = Store::new_customer();
            store
                .create_reservation(group, &customer.id, Some(&customer), CheckIn::default())
                .await
                .unwrap()
        };
        for _ in 0..served {
            join().await;
            let (_, call) = store.accept(&agent, group, None).await.unwrap();
            store
                .join_call(&call.id, Role::Patient, None)
                .await
                .unwrap();
            store.leave_call(&call.id, Role::Specialist).await.unwrap();
        }
        // Live: one call not yet joined (its reservation matched) and one customer waiting.
        join().await;
        let (_, open) = store.accept(&agent, group, None).await.unwrap();
        let (waiting, _) = join().await;
        drop(store);
        let again = Store::open(db.clone(), config.clone()).await.unwrap();
        assert_eq!(
            again.rows_read_at_start(),
            3 + crate::estimator::HISTORY as u64,
            "the waiting reservation, the matched one and its call, and the recent lengths"
        );
        let live = again.live();
        assert!(live.reservations.contains_key(&waiting.reservation_sid));
        assert!(live.calls.contains_key(&open.id));
        assert_eq!(live.reservations.len(), 2);
        assert_eq!(live.groups[group].history.len(), crate::estimator::HISTORY);
    }

    /// Node B holds R as queued and hears nothing while node A matches R, runs its call to the
    /// end and the same customer queues again (R2). When B catches up, R leaves its memory (it
    /// used to stay as matched, and B's sweep later marked the served R expired and dropped
    /// the customer's R2 from `by_customer`).
    #[tokio::test]
    async fn a_node_that_missed_a_whole_call_forgets_the_served_reservation() {
        let dir = tempfile::tempdir().unwrap();
        // A join window already over: B's sweep would expire whatever it still holds matched.
        let (a, db, config, agent) =
            store_with_specialist(&dir, |c| c.join_window = StdDuration::ZERO).await;
        let group = callqueue_protocol::DEFAULT_GROUP;
        let (customer, _) = Store::new_customer();
        let (r, _) = a
            .create_reservation(group, &customer.id, Some(&customer), CheckIn::default())
            .await
            .unwrap();
        // B starts now (on SQLite nodes are never told of each other's changes).
        let b = Store::open(db.clone(), config.clone()).await.unwrap();
        assert!(b.live().reservations.contains_key(&r.reservation_sid));
        let (_, call) = a.accept(&agent, group, None).await.unwrap();
        a.join_call(&call.id, Role::Patient, None).await.unwrap();
        a.join_call(&call.id, Role::Specialist, None).await.unwrap();
        a.leave_call(&call.id, Role::Specialist).await.unwrap();
        let (r2, _) = a
            .create_reservation(group, &customer.id, None, CheckIn::default())
            .await
            .unwrap();
        {
            let _w = b.inner.write.lock().await;
            let mut conn = b.inner.db.acquire().await.unwrap();
            b.load_group(&mut conn, group).await.unwrap();
        }
        {
            let live = b.live();
            assert!(
                !live.reservations.contains_key(&r.reservation_sid),
                "the served reservation left memory"
            );
            assert_eq!(
                live.by_customer.get(&customer.id),
                Some(&r2.reservation_sid)
            );
        }
        b.sweep().await.unwrap();
        let status: String = sqlx::query_scalar("SELECT status FROM reservations WHERE sid = $1")
            .bind(&r.reservation_sid)
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(status, ReservationStatus::Matched.as_str(), "still served");
        assert_eq!(
            b.live().by_customer.get(&customer.id),
            Some(&r2.reservation_sid),
            "the customer's new reservation is still theirs"
        );
    }

    #[test]
    fn long_signalling_goes_in_parts_and_comes_back_whole() {
        let text = "é".repeat(10_000) + "end";
        let parts = split_text(&text, PART);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.len() <= PART));
        let mut got = Parts::default();
        let frames: Vec<String> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| format!("other|7|{i}|3|{p}"))
            .collect();
        assert_eq!(got.add("me", &frames[0]), None);
        // Another node's short message in between is whole at once.
        assert_eq!(got.add("me", "third|1|0|1|{}").as_deref(), Some("{}"));
        assert_eq!(got.add("me", &frames[1]), None);
        assert_eq!(got.add("me", &frames[2]), Some(text));
        // Our own, malformed, and a part whose predecessor was lost: dropped.
        assert_eq!(got.add("other", "other|8|0|1|{}"), None);
        assert_eq!(got.add("me", "x|y"), None);
        assert_eq!(got.add("me", "other|9|1|2|{}"), None);
        assert!(got.waiting.is_empty());
    }
}
