//! The queue and the calls: durable in SQLite, live in memory, one place for every change.
//!
//! SQLite is the source of truth; the in-memory [`Live`] copy of what is in flight (queued and
//! matched reservations, open calls, specialists) serves reads and streams without touching the
//! database. Every change takes the write lock, commits to SQLite, then updates memory and wakes
//! the streams, so memory never shows what the database does not hold. On start the live copy is
//! rebuilt from the database, which is what makes a restart (even `kill -9`) lose nothing.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use callqueue_protocol::{
    CALL_TYPE_APPOINTMENT, Call, CallEndReason, CallEventType, CallResponse, CallSession,
    CallSettings, Limits, Member, QueueEvent, Reservation, ReservationStatus, Role, UserEvent,
};
use chrono::{DateTime, Duration, Utc};
use sqlx::{Row, SqlitePool, sqlite::SqliteRow};
use tokio::sync::{Mutex, broadcast, mpsc, oneshot, watch};

use crate::{
    config::Config,
    error::{ApiError, ApiResult},
    estimator, tokens,
};

/// A customer not yet stored: created together with their first reservation.
#[derive(Debug, Clone)]
pub struct NewCustomer {
    pub id: String,
    pub token_hash: String,
}

/// How long a customer's session (their cookie) lasts after their last new reservation.
pub const CUSTOMER_SESSION: Duration = Duration::hours(24);
/// How long a specialist's session lasts after signing in.
pub const AGENT_SESSION: Duration = Duration::hours(12);
/// How long a WebSocket stream token may wait to be spent.
const STREAM_TOKEN: Duration = Duration::seconds(60);

/// Most creates committed in one transaction.
const CREATE_BATCH: usize = 256;

/// One waiting create, for the writer task.
struct CreateJob {
    group: String,
    customer_id: String,
    new_customer: Option<NewCustomer>,
    reply: oneshot::Sender<ApiResult<(Reservation, bool)>>,
}

/// Who a user event is for.
#[derive(Debug, Clone)]
pub enum Audience {
    /// Every specialist of a group.
    Group(String),
    /// One specialist.
    User(String),
}

/// What the call watchers are told: the call's version and what happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallNote {
    pub version: u64,
    pub event: CallEventType,
}

/// A queue's deltas from `version` on, and the queue as it was at `version`.
pub struct QueueSubscription {
    pub events: broadcast::Receiver<(u64, QueueEvent)>,
    pub version: u64,
    pub reservations: Vec<Reservation>,
}

/// A queued or matched reservation, with what the wire type does not show.
#[derive(Debug, Clone)]
struct ActiveReservation {
    customer_id: String,
    seq: i64,
    matched_at: Option<DateTime<Utc>>,
    view: Reservation,
}

/// A call as stored.
#[derive(Debug, Clone)]
pub struct CallRow {
    pub id: String,
    pub call_type: String,
    pub group_name: String,
    pub reservation_sid: String,
    pub specialist_id: String,
    pub customer_id: String,
    pub max_duration_seconds: u32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub timer_ends_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_reason: Option<CallEndReason>,
    pub specialist_joined_at: Option<DateTime<Utc>>,
    pub customer_joined_at: Option<DateTime<Utc>>,
    pub specialist_present: bool,
    pub customer_present: bool,
    pub version: u64,
}

impl CallRow {
    fn from_row(row: &SqliteRow) -> sqlx::Result<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            call_type: row.try_get("call_type")?,
            group_name: row.try_get("group_name")?,
            reservation_sid: row.try_get("reservation_sid")?,
            specialist_id: row.try_get("specialist_id")?,
            customer_id: row.try_get("customer_id")?,
            max_duration_seconds: row.try_get::<i64, _>("max_duration_seconds")? as u32,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            timer_ends_at: row.try_get("timer_ends_at")?,
            ended_at: row.try_get("ended_at")?,
            ended_reason: row
                .try_get::<Option<String>, _>("ended_reason")?
                .map(|r| {
                    CallEndReason::parse(&r).ok_or_else(|| {
                        sqlx::Error::Decode(format!("unknown call end reason {r:?}").into())
                    })
                })
                .transpose()?,
            specialist_joined_at: row.try_get("specialist_joined_at")?,
            customer_joined_at: row.try_get("customer_joined_at")?,
            specialist_present: row.try_get("specialist_present")?,
            customer_present: row.try_get("customer_present")?,
            version: row.try_get::<i64, _>("version")? as u64,
        })
    }

    /// The wire view of the call.
    pub fn to_call(&self) -> Call {
        Call {
            id: self.id.clone(),
            call_type: self.call_type.clone(),
            reservation_sid: self.reservation_sid.clone(),
            created_at: self.created_at,
            settings: CallSettings {
                limits: Limits {
                    max_duration_seconds: self.max_duration_seconds,
                },
            },
            session: CallSession {
                started_at: self.started_at,
                timer_ends_at: self.timer_ends_at,
                ended_at: self.ended_at,
                ended_reason: self.ended_reason,
            },
        }
    }

    pub fn members(&self) -> Vec<Member> {
        vec![
            Member {
                user_id: self.specialist_id.clone(),
                role: Role::Specialist,
                joined_at: self.specialist_joined_at,
            },
            Member {
                user_id: self.customer_id.clone(),
                role: Role::Patient,
                joined_at: self.customer_joined_at,
            },
        ]
    }

    /// The caller's role in this call, if they are a member.
    pub fn role_of(&self, who: &Caller) -> Option<Role> {
        match who {
            Caller::Customer(id) if *id == self.customer_id => Some(Role::Patient),
            Caller::Agent(agent) if agent.user_id == self.specialist_id => Some(Role::Specialist),
            _ => None,
        }
    }

    /// What a stream sends to describe the call as it is now.
    pub fn snapshot_event(&self) -> CallEventType {
        if self.ended_at.is_some() {
            CallEventType::Ended
        } else {
            CallEventType::Updated
        }
    }
}

/// A signed-in specialist.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub user_id: String,
    pub role: Role,
    pub groups: Vec<String>,
}

/// Who is asking: a customer (by their cookie) or a specialist (by theirs).
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    Customer(String),
    Agent(Agent),
}

#[derive(Debug, Clone)]
struct AgentLive {
    groups: Vec<String>,
    available: bool,
    active_call: Option<String>,
}

struct GroupLive {
    version: u64,
    next_seq: i64,
    /// Queued reservations in order: seq → sid.
    queue: BTreeMap<i64, String>,
    /// Lengths of the last completed calls, in seconds.
    history: VecDeque<f64>,
    version_tx: watch::Sender<u64>,
    events_tx: broadcast::Sender<(u64, QueueEvent)>,
}

impl GroupLive {
    fn new(version: u64, next_seq: i64) -> Self {
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
struct Live {
    groups: HashMap<String, GroupLive>,
    reservations: HashMap<String, ActiveReservation>,
    /// customer id → their active reservation.
    by_customer: HashMap<String, String>,
    calls: HashMap<String, CallRow>,
    call_tx: HashMap<String, watch::Sender<CallNote>>,
    agents: HashMap<String, AgentLive>,
}

impl Live {
    /// What the estimator needs about a group: each available specialist's call start (or idle),
    /// and the mean call length.
    fn estimator_inputs(&self, group: &str) -> (Vec<Option<DateTime<Utc>>>, Option<Duration>) {
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
    fn recompute(&mut self, group: &str, now: DateTime<Utc>) {
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

    fn view(&self, sid: &str, now: DateTime<Utc>) -> Option<Reservation> {
        self.reservations.get(sid).map(|r| Reservation {
            server_time: now,
            ..r.view.clone()
        })
    }

    fn publish(&mut self, group: &str, version: u64, event: Option<QueueEvent>) {
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

/// What [`Store::reservation_change`] found.
#[derive(Debug)]
pub enum ReservationChange {
    Same,
    Changed(Reservation),
    Gone,
}

/// The whole state of the server; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: SqlitePool,
    config: Arc<Config>,
    write: Mutex<()>,
    live: RwLock<Live>,
    user_events: broadcast::Sender<(Audience, UserEvent)>,
    creates: mpsc::Sender<CreateJob>,
}

fn reservation_from_row(row: &SqliteRow, now: DateTime<Utc>) -> sqlx::Result<Reservation> {
    let status: String = row.try_get("status")?;
    let status = ReservationStatus::parse(&status)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown status {status}").into()))?;
    Ok(Reservation {
        reservation_sid: row.try_get("sid")?,
        group_name: row.try_get("group_name")?,
        reservation_status: status,
        queue_position: None,
        estimated_wait_until: None,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        call_id: row.try_get("call_id")?,
        call_type: row.try_get("call_type")?,
        server_time: now,
    })
}

impl Store {
    /// Rebuilds the live state from the database.
    pub async fn open(db: SqlitePool, config: Arc<Config>) -> sqlx::Result<Self> {
        for group in &config.groups {
            sqlx::query("INSERT OR IGNORE INTO groups (name, version) VALUES (?, 0)")
                .bind(group)
                .execute(&db)
                .await?;
        }
        let mut live = Live::default();
        for row in sqlx::query(
            "SELECT g.name, g.version, COALESCE(MAX(r.seq), 0) AS max_seq \
             FROM groups g LEFT JOIN reservations r ON r.group_name = g.name GROUP BY g.name",
        )
        .fetch_all(&db)
        .await?
        {
            let name: String = row.try_get("name")?;
            let version: i64 = row.try_get("version")?;
            let max_seq: i64 = row.try_get("max_seq")?;
            live.groups
                .insert(name, GroupLive::new(version as u64, max_seq + 1));
        }
        for row in sqlx::query("SELECT * FROM calls WHERE ended_at IS NULL")
            .fetch_all(&db)
            .await?
        {
            let call = CallRow::from_row(&row)?;
            live.call_tx.insert(
                call.id.clone(),
                watch::channel(CallNote {
                    version: call.version,
                    event: call.snapshot_event(),
                })
                .0,
            );
            live.calls.insert(call.id.clone(), call);
        }
        for row in sqlx::query(
            "SELECT group_name, (julianday(ended_at) - julianday(started_at)) * 86400.0 AS secs \
             FROM calls WHERE ended_at IS NOT NULL AND started_at IS NOT NULL ORDER BY ended_at",
        )
        .fetch_all(&db)
        .await?
        {
            let group: String = row.try_get("group_name")?;
            let secs: f64 = row.try_get("secs")?;
            if let Some(g) = live.groups.get_mut(&group) {
                push_history(&mut g.history, secs);
            }
        }
        for row in sqlx::query("SELECT user_id, groups, available FROM agents")
            .fetch_all(&db)
            .await?
        {
            let user_id: String = row.try_get("user_id")?;
            let groups: String = row.try_get("groups")?;
            let active_call = live
                .calls
                .values()
                .find(|c| c.specialist_id == user_id)
                .map(|c| c.id.clone());
            live.agents.insert(
                user_id,
                AgentLive {
                    groups: split_groups(&groups),
                    available: row.try_get("available")?,
                    active_call,
                },
            );
        }
        let now = Utc::now();
        for row in sqlx::query(
            "SELECT r.*, c.ended_at AS call_ended_at FROM reservations r \
             LEFT JOIN calls c ON c.id = r.call_id \
             WHERE r.status IN ('GROUP_RESERVATION_STATUS_QUEUED', 'GROUP_RESERVATION_STATUS_MATCHED') \
             ORDER BY r.seq",
        )
        .fetch_all(&db)
        .await?
        {
            let view = reservation_from_row(&row, now)?;
            let call_ended: Option<DateTime<Utc>> = row.try_get("call_ended_at")?;
            if view.reservation_status == ReservationStatus::Matched && call_ended.is_some() {
                continue;
            }
            let seq: i64 = row.try_get("seq")?;
            let customer_id: String = row.try_get("customer_id")?;
            let group = live
                .groups
                .entry(view.group_name.clone())
                .or_insert_with(|| GroupLive::new(0, seq + 1));
            if view.reservation_status == ReservationStatus::Queued {
                group.queue.insert(seq, view.reservation_sid.clone());
            }
            live.by_customer
                .insert(customer_id.clone(), view.reservation_sid.clone());
            live.reservations.insert(
                view.reservation_sid.clone(),
                ActiveReservation {
                    customer_id,
                    seq,
                    matched_at: row.try_get("matched_at")?,
                    view,
                },
            );
        }
        let names: Vec<String> = live.groups.keys().cloned().collect();
        for name in names {
            live.recompute(&name, now);
        }
        let (creates, jobs) = mpsc::channel(4 * CREATE_BATCH);
        let store = Self {
            inner: Arc::new(Inner {
                db,
                config,
                write: Mutex::new(()),
                live: RwLock::new(live),
                user_events: broadcast::channel(1024).0,
                creates,
            }),
        };
        // The task holds the store weakly: when the last handle goes, the sender goes with it,
        // the channel closes and the task ends.
        tokio::spawn(Self::run_creates(Arc::downgrade(&store.inner), jobs));
        Ok(store)
    }

    pub fn db(&self) -> &SqlitePool {
        &self.inner.db
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    // A poisoned lock only means another task panicked mid-read; the data is still consistent
    // because memory is only changed after the database commit, so carry on with it.
    fn live(&self) -> RwLockReadGuard<'_, Live> {
        self.inner.live.read().unwrap_or_else(|e| e.into_inner())
    }

    fn live_mut(&self) -> RwLockWriteGuard<'_, Live> {
        self.inner.live.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.live().groups.contains_key(group)
    }

    fn next_version(&self, group: &str) -> u64 {
        self.live().groups.get(group).map_or(1, |g| g.version + 1)
    }

    // ---- who is asking ----

    /// The customer behind a cookie token, if it is one we issued.
    pub async fn customer_by_token(&self, token: &str) -> ApiResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM customers WHERE token_hash = ? AND expires_at > ?")
                .bind(tokens::hash(token))
                .bind(Utc::now())
                .fetch_optional(&self.inner.db)
                .await?,
        )
    }

    /// Keeps a returning customer's session for another [`CUSTOMER_SESSION`] (their cookie is
    /// sent again with the same lifetime).
    pub async fn touch_customer(&self, id: &str) -> ApiResult<()> {
        sqlx::query("UPDATE customers SET expires_at = ? WHERE id = ?")
            .bind(Utc::now() + CUSTOMER_SESSION)
            .bind(id)
            .execute(&self.inner.db)
            .await?;
        Ok(())
    }

    /// A new customer and the cookie token that identifies them; stored with their first
    /// reservation (one transaction), see [`Store::create_reservation`].
    pub fn new_customer() -> (NewCustomer, String) {
        let token = tokens::random_token();
        let customer = NewCustomer {
            id: tokens::random_token(),
            token_hash: tokens::hash(&token),
        };
        (customer, token)
    }

    /// The specialist behind a session cookie token, if the session is current.
    pub async fn agent_by_session(&self, token: &str) -> ApiResult<Option<Agent>> {
        let row = sqlx::query(
            "SELECT a.user_id, a.role, a.groups FROM agent_sessions s \
             JOIN agents a ON a.user_id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ?",
        )
        .bind(tokens::hash(token))
        .bind(Utc::now())
        .fetch_optional(&self.inner.db)
        .await?;
        Ok(row.map(|row| agent_from_row(&row)).transpose()?.flatten())
    }

    // ---- specialists ----

    /// Creates or replaces a specialist's credentials (the `agent add` subcommand).
    pub async fn add_agent(
        db: &SqlitePool,
        user_id: &str,
        role: Role,
        groups: &[String],
        secret: &str,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO agents (user_id, role, groups, secret_hash, available, created_at) \
             VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (user_id) DO UPDATE SET \
             role = excluded.role, groups = excluded.groups, secret_hash = excluded.secret_hash",
        )
        .bind(user_id)
        .bind(role.as_str())
        .bind(groups.join(","))
        .bind(tokens::hash(secret))
        .bind(Utc::now())
        .execute(db)
        .await?;
        Ok(())
    }

    /// Checks credentials and opens a session; returns the cookie token.
    pub async fn sign_in(&self, user_id: &str, secret: &str) -> ApiResult<(Agent, String)> {
        let row = sqlx::query(
            "SELECT user_id, role, groups, available FROM agents WHERE user_id = ? AND secret_hash = ?",
        )
        .bind(user_id)
        .bind(tokens::hash(secret))
        .fetch_optional(&self.inner.db)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("unknown user id or wrong secret".into()))?;
        let agent = agent_from_row(&row)?.ok_or_else(|| {
            ApiError::Forbidden(
                "this account's role is not one this server knows; ask an administrator".into(),
            )
        })?;
        let available: bool = row.try_get("available")?;
        let token = tokens::random_token();
        sqlx::query(
            "INSERT INTO agent_sessions (token_hash, user_id, expires_at) VALUES (?, ?, ?)",
        )
        .bind(tokens::hash(&token))
        .bind(user_id)
        .bind(Utc::now() + AGENT_SESSION)
        .execute(&self.inner.db)
        .await?;
        // The agent may have been added while the server ran.
        let mut live = self.live_mut();
        let entry = live
            .agents
            .entry(agent.user_id.clone())
            .or_insert(AgentLive {
                groups: Vec::new(),
                available,
                active_call: None,
            });
        entry.groups = agent.groups.clone();
        Ok((agent, token))
    }

    pub async fn sign_out(&self, token: &str) -> ApiResult<()> {
        sqlx::query("DELETE FROM agent_sessions WHERE token_hash = ?")
            .bind(tokens::hash(token))
            .execute(&self.inner.db)
            .await?;
        Ok(())
    }

    /// Whether the specialist is available, and their open call with its reservation.
    pub fn agent_status(&self, user_id: &str) -> (bool, Option<(String, String)>) {
        let live = self.live();
        let Some(agent) = live.agents.get(user_id) else {
            return (false, None);
        };
        let call = agent
            .active_call
            .as_ref()
            .and_then(|id| live.calls.get(id))
            .map(|c| (c.id.clone(), c.reservation_sid.clone()));
        (agent.available, call)
    }

    pub async fn set_available(&self, agent: &Agent, available: bool) -> ApiResult<()> {
        let _w = self.inner.write.lock().await;
        let versions: Vec<(String, u64)> = agent
            .groups
            .iter()
            .filter(|g| self.has_group(g))
            .map(|g| (g.clone(), self.next_version(g)))
            .collect();
        let mut tx = self.inner.db.begin().await?;
        sqlx::query("UPDATE agents SET available = ? WHERE user_id = ?")
            .bind(available)
            .bind(&agent.user_id)
            .execute(&mut *tx)
            .await?;
        for (g, v) in &versions {
            bump_group(&mut tx, g, *v).await?;
        }
        tx.commit().await?;
        let now = Utc::now();
        let mut live = self.live_mut();
        if let Some(a) = live.agents.get_mut(&agent.user_id) {
            a.available = available;
        }
        for (g, v) in versions {
            live.recompute(&g, now);
            live.publish(&g, v, None);
        }
        Ok(())
    }

    /// How many specialists of the group are available now.
    pub fn available_specialists(&self, group: &str) -> u32 {
        self.live()
            .agents
            .values()
            .filter(|a| a.available && a.groups.iter().any(|g| g == group))
            .count() as u32
    }

    /// A short-lived token for the WebSocket handshake; only its hash is kept.
    pub async fn stream_token(&self, agent: &Agent) -> ApiResult<(String, DateTime<Utc>)> {
        let token = tokens::random_token();
        let expires = Utc::now() + STREAM_TOKEN;
        sqlx::query("INSERT INTO stream_tokens (token_hash, user_id, expires_at) VALUES (?, ?, ?)")
            .bind(tokens::hash(&token))
            .bind(&agent.user_id)
            .bind(expires)
            .execute(&self.inner.db)
            .await?;
        Ok((token, expires))
    }

    /// Spends a stream token: valid once, within its minute.
    pub async fn redeem_stream_token(&self, token: &str) -> ApiResult<Option<Agent>> {
        let row = sqlx::query(
            "DELETE FROM stream_tokens WHERE token_hash = ? AND expires_at > ? RETURNING user_id",
        )
        .bind(tokens::hash(token))
        .bind(Utc::now())
        .fetch_optional(&self.inner.db)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let user_id: String = row.try_get("user_id")?;
        let row = sqlx::query("SELECT user_id, role, groups FROM agents WHERE user_id = ?")
            .bind(user_id)
            .fetch_optional(&self.inner.db)
            .await?;
        Ok(row.map(|row| agent_from_row(&row)).transpose()?.flatten())
    }

    pub fn subscribe_user_events(&self) -> broadcast::Receiver<(Audience, UserEvent)> {
        self.inner.user_events.subscribe()
    }

    /// Tells the specialists in `audience` on their channels.
    pub fn user_event(&self, audience: Audience, event: UserEvent) {
        let _ = self.inner.user_events.send((audience, event));
    }

    // ---- reservations ----

    /// The customer's active reservation, or a new one at the back of the queue.
    /// The flag says whether it was created now.
    ///
    /// Creates go through one writer task that commits whatever is waiting in one transaction
    /// (group commit): a create costs a few SQLite round trips however many arrive together.
    pub async fn create_reservation(
        &self,
        group: &str,
        customer_id: &str,
        new_customer: Option<&NewCustomer>,
    ) -> ApiResult<(Reservation, bool)> {
        if !self.has_group(group) {
            return Err(ApiError::not_found(&format!("the group {group:?}")));
        }
        let (reply, answer) = oneshot::channel();
        let job = CreateJob {
            group: group.to_string(),
            customer_id: customer_id.to_string(),
            new_customer: new_customer.cloned(),
            reply,
        };
        let gone = || ApiError::Unavailable("the writer task has stopped".into());
        self.inner.creates.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// The writer task behind [`Store::create_reservation`].
    async fn run_creates(inner: std::sync::Weak<Inner>, mut jobs: mpsc::Receiver<CreateJob>) {
        let mut batch = Vec::with_capacity(CREATE_BATCH);
        while jobs.recv_many(&mut batch, CREATE_BATCH).await > 0 {
            let Some(inner) = inner.upgrade() else { return };
            Self { inner }
                .create_batch(std::mem::take(&mut batch))
                .await;
        }
    }

    async fn create_batch(&self, jobs: Vec<CreateJob>) {
        let _w = self.inner.write.lock().await;
        let now = Utc::now();
        // Decide each job: an active reservation answers at once; a customer asking twice in
        // one batch gets the one reservation made for them.
        let mut planned: Vec<(CreateJob, String, i64, u64)> = Vec::new();
        let mut repeats: Vec<(CreateJob, usize)> = Vec::new();
        {
            let live = self.live();
            let mut next: HashMap<String, (i64, u64)> = HashMap::new();
            let mut in_batch: HashMap<String, usize> = HashMap::new();
            for job in jobs {
                if let Some(view) = live
                    .by_customer
                    .get(&job.customer_id)
                    .and_then(|sid| live.view(sid, now))
                {
                    let _ = job.reply.send(Ok((view, false)));
                    continue;
                }
                if let Some(&first) = in_batch.get(&job.customer_id) {
                    repeats.push((job, first));
                    continue;
                }
                let Some(g) = live.groups.get(&job.group) else {
                    let _ = job.reply.send(Err(ApiError::not_found("the group")));
                    continue;
                };
                let (seq, version) = next
                    .entry(job.group.clone())
                    .or_insert((g.next_seq, g.version));
                let planned_seq = *seq;
                *seq += 1;
                *version += 1;
                in_batch.insert(job.customer_id.clone(), planned.len());
                planned.push((job, tokens::random_token(), planned_seq, *version));
            }
        }
        if planned.is_empty() {
            return;
        }
        if let Err(e) = self.insert_batch(&planned, now).await {
            tracing::error!(error = %e, "creating reservations failed");
            // Every job of the batch gets the same answer, sorted as the error itself is.
            let unavailable = crate::error::db_unavailable(&e);
            let message = e.to_string();
            let answer = || {
                Err(if unavailable {
                    ApiError::Unavailable(message.clone())
                } else {
                    ApiError::Internal(format!("creating reservations: {message}"))
                })
            };
            for (job, ..) in planned {
                let _ = job.reply.send(answer());
            }
            for (job, _) in repeats {
                let _ = job.reply.send(answer());
            }
            return;
        }

        let mut views = Vec::with_capacity(planned.len());
        let mut waiting = Vec::with_capacity(planned.len());
        {
            let mut live = self.live_mut();
            for (job, sid, seq, version) in &planned {
                let group = job.group.as_str();
                let view = Reservation {
                    reservation_sid: sid.clone(),
                    group_name: group.to_string(),
                    reservation_status: ReservationStatus::Queued,
                    queue_position: None,
                    estimated_wait_until: None,
                    created_at: now,
                    updated_at: now,
                    call_id: None,
                    call_type: None,
                    server_time: now,
                };
                live.reservations.insert(
                    sid.clone(),
                    ActiveReservation {
                        customer_id: job.customer_id.clone(),
                        seq: *seq,
                        matched_at: None,
                        view,
                    },
                );
                live.by_customer
                    .insert(job.customer_id.clone(), sid.clone());
                let Some(g) = live.groups.get_mut(group) else {
                    continue;
                };
                g.next_seq = seq + 1;
                g.queue.insert(*seq, sid.clone());
                let queue_length = g.queue.len() as u32;
                // A new arrival joins at the back: nobody else's position or estimate moves.
                let (busy, mean) = live.estimator_inputs(group);
                let estimate =
                    estimator::estimate_position(now, queue_length as usize, &busy, mean);
                if let Some(r) = live.reservations.get_mut(sid) {
                    r.view.queue_position = Some(queue_length);
                    r.view.estimated_wait_until = estimate;
                }
                let view = live.view(sid, now).expect("just inserted");
                live.publish(
                    group,
                    *version,
                    Some(QueueEvent::Added {
                        reservation: view.clone(),
                        server_time: now,
                    }),
                );
                waiting.push((
                    Audience::Group(group.to_string()),
                    UserEvent::CustomerWaiting {
                        group_name: group.to_string(),
                        reservation_sid: sid.clone(),
                        queue_length,
                    },
                ));
                views.push(view);
            }
        }
        for (audience, event) in waiting {
            self.user_event(audience, event);
        }
        for (job, first) in repeats {
            let _ = job.reply.send(Ok((views[first].clone(), false)));
        }
        for ((job, ..), view) in planned.into_iter().zip(views) {
            let _ = job.reply.send(Ok((view, true)));
        }
    }

    /// The database side of a batch of creates: one transaction, one statement per table.
    async fn insert_batch(
        &self,
        planned: &[(CreateJob, String, i64, u64)],
        now: DateTime<Utc>,
    ) -> sqlx::Result<()> {
        let mut tx = self.inner.db.begin().await?;
        let customers: Vec<&NewCustomer> = planned
            .iter()
            .filter_map(|(job, ..)| job.new_customer.as_ref())
            .collect();
        if !customers.is_empty() {
            sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO customers (id, token_hash, created_at, expires_at) ",
            )
            .push_values(customers, |mut row, c| {
                row.push_bind(&c.id)
                    .push_bind(&c.token_hash)
                    .push_bind(now)
                    .push_bind(now + CUSTOMER_SESSION);
            })
            .build()
            .execute(&mut *tx)
            .await?;
        }
        sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO reservations (sid, group_name, customer_id, status, seq, created_at, updated_at) ",
        )
        .push_values(planned, |mut row, (job, sid, seq, _)| {
            row.push_bind(sid)
                .push_bind(&job.group)
                .push_bind(&job.customer_id)
                .push_bind(ReservationStatus::Queued.as_str())
                .push_bind(*seq)
                .push_bind(now)
                .push_bind(now);
        })
        .build()
        .execute(&mut *tx)
        .await?;
        let mut last: HashMap<&str, u64> = HashMap::new();
        for (job, _, _, version) in planned {
            last.insert(&job.group, *version);
        }
        for (group, version) in last {
            bump_group(&mut tx, group, version).await?;
        }
        tx.commit().await
    }

    /// The reservation if it says something other than `last` (its clock aside), or that it is
    /// gone. Cheap when nothing changed: a reservation stream asks on every change of its group.
    pub async fn reservation_change(
        &self,
        sid: &str,
        last: Option<&Reservation>,
    ) -> ApiResult<ReservationChange> {
        {
            let live = self.live();
            if let Some(r) = live.reservations.get(sid) {
                if last.is_some_and(|l| l.same_state(&r.view)) {
                    return Ok(ReservationChange::Same);
                }
                return Ok(live
                    .view(sid, Utc::now())
                    .map_or(ReservationChange::Gone, ReservationChange::Changed));
            }
        }
        // A finished reservation is only in the database. Boxed: the query's state would
        // otherwise sit inside every idle stream's task.
        Ok(
            match Box::pin(self.stored_reservation(sid, Utc::now())).await? {
                Some((r, _)) if last.is_some_and(|l| l.same_state(&r)) => ReservationChange::Same,
                Some((r, _)) => ReservationChange::Changed(r),
                None => ReservationChange::Gone,
            },
        )
    }

    /// A reservation as it is now, with the customer it belongs to.
    pub async fn reservation(&self, sid: &str) -> ApiResult<Option<(Reservation, String)>> {
        let now = Utc::now();
        {
            let live = self.live();
            if let (Some(view), Some(r)) = (live.view(sid, now), live.reservations.get(sid)) {
                return Ok(Some((view, r.customer_id.clone())));
            }
        }
        self.stored_reservation(sid, now).await
    }

    /// A reservation as the database has it (the only copy once it has finished), with its
    /// customer.
    async fn stored_reservation(
        &self,
        sid: &str,
        now: DateTime<Utc>,
    ) -> ApiResult<Option<(Reservation, String)>> {
        let row = sqlx::query("SELECT * FROM reservations WHERE sid = ?")
            .bind(sid)
            .fetch_optional(&self.inner.db)
            .await?;
        match row {
            Some(row) => {
                let view = reservation_from_row(&row, now)?;
                let customer: String = row.try_get("customer_id")?;
                Ok(Some((view, customer)))
            }
            None => Ok(None),
        }
    }

    /// Watches a group's version: it changes whenever anything in the group does.
    pub fn watch_group(&self, group: &str) -> Option<watch::Receiver<u64>> {
        self.live()
            .groups
            .get(group)
            .map(|g| g.version_tx.subscribe())
    }

    /// The queue's deltas, and a snapshot of it taken after subscribing (so nothing falls between).
    pub fn subscribe_queue(&self, group: &str) -> Option<QueueSubscription> {
        let live = self.live();
        let g = live.groups.get(group)?;
        let events = g.events_tx.subscribe();
        let now = Utc::now();
        let reservations = g
            .queue
            .values()
            .filter_map(|sid| live.view(sid, now))
            .collect();
        Some(QueueSubscription {
            events,
            version: g.version,
            reservations,
        })
    }

    /// How many are waiting in a group (`None`: no such group). Reads one number.
    pub fn queue_length(&self, group: &str) -> Option<u32> {
        self.live().groups.get(group).map(|g| g.queue.len() as u32)
    }

    /// The queued reservations of a group, in order.
    pub fn queue(&self, group: &str) -> Option<Vec<Reservation>> {
        self.subscribe_queue(group).map(|s| s.reservations)
    }

    /// Moves a reservation to a final status: cancel, expire. Ends its call if it had one.
    /// Returns the reservation as it is afterwards; a reservation that is already final stays as
    /// it is (statuses never move backwards).
    pub async fn finish_reservation(
        &self,
        sid: &str,
        status: ReservationStatus,
    ) -> ApiResult<Reservation> {
        debug_assert!(status.is_final());
        let _w = self.inner.write.lock().await;
        let now = Utc::now();
        let Some(active) = self.live().reservations.get(sid).cloned() else {
            return self
                .reservation(sid)
                .await?
                .map(|(r, _)| r)
                .ok_or_else(|| ApiError::not_found("the reservation"));
        };
        let group = active.view.group_name.clone();
        let version = self.next_version(&group);
        let call = active
            .view
            .call_id
            .as_ref()
            .and_then(|id| self.live().calls.get(id).cloned());
        let mut tx = self.inner.db.begin().await?;
        sqlx::query("UPDATE reservations SET status = ?, updated_at = ? WHERE sid = ?")
            .bind(status.as_str())
            .bind(now)
            .bind(sid)
            .execute(&mut *tx)
            .await?;
        let reason = if status == ReservationStatus::Expired {
            CallEndReason::NotJoined
        } else {
            CallEndReason::Canceled
        };
        if let Some(call) = &call {
            end_call_row(&mut tx, call, reason, now).await?;
        }
        bump_group(&mut tx, &group, version).await?;
        tx.commit().await?;

        let mut live = self.live_mut();
        live.reservations.remove(sid);
        live.by_customer.remove(&active.customer_id);
        if let Some(g) = live.groups.get_mut(&group) {
            g.queue.remove(&active.seq);
        }
        if let Some(call) = &call {
            self.apply_call_end(&mut live, call, reason, now);
        }
        live.recompute(&group, now);
        let view = Reservation {
            reservation_status: status,
            queue_position: None,
            estimated_wait_until: None,
            updated_at: now,
            server_time: now,
            ..active.view
        };
        live.publish(
            &group,
            version,
            Some(QueueEvent::Removed {
                reservation: view.clone(),
                server_time: now,
            }),
        );
        Ok(view)
    }

    /// A specialist takes the next customer of a group (or the one named): the reservation is
    /// matched and a call created with both as members.
    pub async fn accept(
        &self,
        agent: &Agent,
        group: &str,
        wanted: Option<&str>,
    ) -> ApiResult<(Reservation, CallRow)> {
        if !agent.groups.iter().any(|g| g == group) || !self.has_group(group) {
            return Err(ApiError::not_found(&format!("the group {group:?}")));
        }
        let _w = self.inner.write.lock().await;
        let now = Utc::now();
        let active = {
            let live = self.live();
            let me = live.agents.get(&agent.user_id);
            if !me.is_some_and(|a| a.available) {
                return Err(ApiError::Conflict(
                    "mark yourself available before accepting customers".into(),
                ));
            }
            if let Some(call) = me.and_then(|a| a.active_call.clone()) {
                return Err(ApiError::Conflict(format!(
                    "you are still in call {call}; leave it first"
                )));
            }
            let g = &live.groups[group];
            let sid = match wanted {
                Some(sid) => {
                    let r = live.reservations.get(sid).filter(|r| {
                        r.view.group_name == group
                            && r.view.reservation_status == ReservationStatus::Queued
                    });
                    r.map(|r| r.view.reservation_sid.clone()).ok_or_else(|| {
                        ApiError::NotFound(
                            "that customer is no longer waiting in this group".into(),
                        )
                    })?
                }
                None => g
                    .queue
                    .values()
                    .next()
                    .cloned()
                    .ok_or_else(|| ApiError::Conflict("nobody is waiting".into()))?,
            };
            live.reservations[&sid].clone()
        };
        let sid = active.view.reservation_sid.clone();
        let version = self.next_version(group);
        let call = CallRow {
            id: tokens::random_token(),
            call_type: CALL_TYPE_APPOINTMENT.to_string(),
            group_name: group.to_string(),
            reservation_sid: sid.clone(),
            specialist_id: agent.user_id.clone(),
            customer_id: active.customer_id.clone(),
            max_duration_seconds: self.config().call_seconds,
            created_at: now,
            started_at: None,
            timer_ends_at: None,
            ended_at: None,
            ended_reason: None,
            specialist_joined_at: None,
            customer_joined_at: None,
            specialist_present: false,
            customer_present: false,
            version: 1,
        };
        let mut tx = self.inner.db.begin().await?;
        sqlx::query(
            "UPDATE reservations SET status = ?, updated_at = ?, matched_at = ?, call_id = ?, call_type = ? \
             WHERE sid = ?",
        )
        .bind(ReservationStatus::Matched.as_str())
        .bind(now)
        .bind(now)
        .bind(&call.id)
        .bind(&call.call_type)
        .bind(&sid)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO calls (id, call_type, group_name, reservation_sid, specialist_id, customer_id, \
             max_duration_seconds, created_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&call.id)
        .bind(&call.call_type)
        .bind(group)
        .bind(&sid)
        .bind(&call.specialist_id)
        .bind(&call.customer_id)
        .bind(call.max_duration_seconds as i64)
        .bind(now)
        .bind(call.version as i64)
        .execute(&mut *tx)
        .await?;
        bump_group(&mut tx, group, version).await?;
        tx.commit().await?;

        let mut live = self.live_mut();
        if let Some(g) = live.groups.get_mut(group) {
            g.queue.remove(&active.seq);
        }
        let r = live
            .reservations
            .get_mut(&sid)
            .expect("held under the write lock");
        r.matched_at = Some(now);
        r.view.reservation_status = ReservationStatus::Matched;
        r.view.queue_position = None;
        r.view.estimated_wait_until = None;
        r.view.updated_at = now;
        r.view.call_id = Some(call.id.clone());
        r.view.call_type = Some(call.call_type.clone());
        if let Some(a) = live.agents.get_mut(&agent.user_id) {
            a.active_call = Some(call.id.clone());
        }
        live.call_tx.insert(
            call.id.clone(),
            watch::channel(CallNote {
                version: call.version,
                event: CallEventType::Updated,
            })
            .0,
        );
        live.calls.insert(call.id.clone(), call.clone());
        live.recompute(group, now);
        let view = live.view(&sid, now).expect("still active");
        live.publish(
            group,
            version,
            Some(QueueEvent::Removed {
                reservation: view.clone(),
                server_time: now,
            }),
        );
        Ok((view, call))
    }

    // ---- calls ----

    /// A call, from memory while open, else from the database.
    pub async fn call(&self, id: &str) -> ApiResult<Option<CallRow>> {
        if let Some(call) = self.live().calls.get(id) {
            return Ok(Some(call.clone()));
        }
        let row = sqlx::query("SELECT * FROM calls WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.inner.db)
            .await?;
        Ok(row.map(|r| CallRow::from_row(&r)).transpose()?)
    }

    /// Watches an open call; `None` once it has ended.
    pub fn watch_call(&self, id: &str) -> Option<watch::Receiver<CallNote>> {
        self.live().call_tx.get(id).map(|tx| tx.subscribe())
    }

    /// The response to any call request, as seen by `who`.
    pub fn call_response(&self, call: &CallRow, role: Role) -> CallResponse {
        CallResponse {
            call: call.to_call(),
            members: call.members(),
            own_capabilities: self.config().capabilities(role),
            own_role: role,
            server_time: Utc::now(),
        }
    }

    /// Joins a call: the first join starts the session and its timer.
    pub async fn join_call(
        &self,
        id: &str,
        role: Role,
        max_duration_seconds: Option<u32>,
    ) -> ApiResult<CallRow> {
        let _w = self.inner.write.lock().await;
        let now = Utc::now();
        let mut call = self.open_call(id).await?;
        let mut event = CallEventType::Updated;
        if let Some(secs) = max_duration_seconds {
            call.max_duration_seconds = self.checked_duration(secs)?;
        }
        if call.started_at.is_none() {
            call.started_at = Some(now);
            event = CallEventType::SessionStarted;
        }
        call.timer_ends_at = call
            .started_at
            .map(|s| s + Duration::seconds(call.max_duration_seconds as i64));
        match role {
            Role::Specialist => {
                call.specialist_joined_at = Some(now);
                call.specialist_present = true;
            }
            Role::Patient => {
                call.customer_joined_at = Some(now);
                call.customer_present = true;
            }
        }
        if call.timer_ends_at.is_some_and(|t| t <= now) {
            return Err(ApiError::Unprocessable(
                "that duration would end the call before now".into(),
            ));
        }
        call.version += 1;
        let started = event == CallEventType::SessionStarted;
        // The session starting moves the specialist's expected free time, so the estimates of
        // everyone waiting in the group: the group's version moves with it, in one transaction.
        let group = call.group_name.clone();
        let version = started.then(|| self.next_version(&group));
        let mut tx = self.inner.db.begin().await?;
        save_call_row(&mut tx, &call).await?;
        if let Some(v) = version {
            bump_group(&mut tx, &group, v).await?;
        }
        tx.commit().await?;
        let mut live = self.live_mut();
        live.calls.insert(call.id.clone(), call.clone());
        self.notify_call(&live, &call, event);
        if let Some(v) = version {
            live.recompute(&group, now);
            live.publish(&group, v, None);
            drop(live);
            self.user_event(
                Audience::User(call.specialist_id.clone()),
                UserEvent::CallStarted {
                    call_id: call.id.clone(),
                    call_type: call.call_type.clone(),
                    reservation_sid: call.reservation_sid.clone(),
                },
            );
        }
        Ok(call)
    }

    /// Changes the session length; moves `timer_ends_at` for everyone.
    pub async fn extend_call(&self, id: &str, max_duration_seconds: u32) -> ApiResult<CallRow> {
        let _w = self.inner.write.lock().await;
        let now = Utc::now();
        let mut call = self.open_call(id).await?;
        call.max_duration_seconds = self.checked_duration(max_duration_seconds)?;
        call.timer_ends_at = call
            .started_at
            .map(|s| s + Duration::seconds(call.max_duration_seconds as i64));
        if call.timer_ends_at.is_some_and(|t| t <= now) {
            return Err(ApiError::Unprocessable(format!(
                "a session of {max_duration_seconds} s would already be over; choose a longer one"
            )));
        }
        self.commit_call_change(call).await
    }

    /// A member leaves. A started call ends when the specialist leaves or nobody is left in it.
    /// Deciding and ending happen under one hold of the write lock, so nothing (the sweeper,
    /// the other member) changes the call in between. Leaving a call that has already ended
    /// answers it as it ended.
    pub async fn leave_call(&self, id: &str, role: Role) -> ApiResult<CallRow> {
        let _w = self.inner.write.lock().await;
        let mut call = match self.open_call(id).await {
            Ok(call) => call,
            Err(ApiError::Conflict(_)) => {
                return self
                    .call(id)
                    .await?
                    .ok_or_else(|| ApiError::not_found("the call"));
            }
            Err(e) => return Err(e),
        };
        match role {
            Role::Specialist => call.specialist_present = false,
            Role::Patient => call.customer_present = false,
        }
        // The specialist leaving ends a started call (nobody is left to serve the customer),
        // and so does the last one present leaving.
        let ends = call.started_at.is_some()
            && (role == Role::Specialist || !(call.specialist_present || call.customer_present));
        if ends {
            return self.end_call_locked(id, CallEndReason::left(role)).await;
        }
        self.commit_call_change(call).await
    }

    /// Stores a changed open call (one version more) and tells its watchers it was updated.
    async fn commit_call_change(&self, mut call: CallRow) -> ApiResult<CallRow> {
        call.version += 1;
        self.save_call(&call).await?;
        let mut live = self.live_mut();
        live.calls.insert(call.id.clone(), call.clone());
        self.notify_call(&live, &call, CallEventType::Updated);
        Ok(call)
    }

    /// Ends an open call now (timer ran out, everyone left).
    pub async fn end_call(&self, id: &str, reason: CallEndReason) -> ApiResult<CallRow> {
        let _w = self.inner.write.lock().await;
        self.end_call_locked(id, reason).await
    }

    /// [`Self::end_call`] for a caller that holds the write lock.
    async fn end_call_locked(&self, id: &str, reason: CallEndReason) -> ApiResult<CallRow> {
        let now = Utc::now();
        let call = self.open_call(id).await?;
        let group = call.group_name.clone();
        let version = self.next_version(&group);
        let mut tx = self.inner.db.begin().await?;
        end_call_row(&mut tx, &call, reason, now).await?;
        bump_group(&mut tx, &group, version).await?;
        tx.commit().await?;
        let mut live = self.live_mut();
        let ended = self.apply_call_end(&mut live, &call, reason, now);
        // A matched reservation leaves memory with its call; it stays MATCHED in the database.
        if let Some(r) = live.reservations.remove(&call.reservation_sid) {
            live.by_customer.remove(&r.customer_id);
        }
        live.recompute(&group, now);
        live.publish(&group, version, None);
        Ok(ended)
    }

    fn checked_duration(&self, secs: u32) -> ApiResult<u32> {
        let max = self.config().max_call_seconds;
        if secs == 0 || secs > max {
            return Err(ApiError::Unprocessable(format!(
                "max_duration_seconds must be between 1 and {max}"
            )));
        }
        Ok(secs)
    }

    async fn open_call(&self, id: &str) -> ApiResult<CallRow> {
        if let Some(call) = self.live().calls.get(id) {
            return Ok(call.clone());
        }
        match self.call(id).await? {
            Some(_) => Err(ApiError::Conflict("the call has ended".into())),
            None => Err(ApiError::not_found("the call")),
        }
    }

    async fn save_call(&self, call: &CallRow) -> ApiResult<()> {
        let mut conn = self.inner.db.acquire().await?;
        save_call_row(&mut conn, call).await?;
        Ok(())
    }

    fn notify_call(&self, live: &Live, call: &CallRow, event: CallEventType) {
        if let Some(tx) = live.call_tx.get(&call.id) {
            tx.send_replace(CallNote {
                version: call.version,
                event,
            });
        }
    }

    /// Memory's side of ending a call (the database side is [`end_call_row`]).
    fn apply_call_end(
        &self,
        live: &mut Live,
        call: &CallRow,
        reason: CallEndReason,
        now: DateTime<Utc>,
    ) -> CallRow {
        let mut ended = call.clone();
        ended.ended_at = Some(now);
        ended.ended_reason = Some(reason);
        ended.specialist_present = false;
        ended.customer_present = false;
        ended.version += 1;
        live.calls.remove(&call.id);
        if let Some(started) = call.started_at
            && let Some(g) = live.groups.get_mut(&call.group_name)
        {
            push_history(
                &mut g.history,
                (now - started).num_milliseconds() as f64 / 1000.0,
            );
        }
        if let Some(a) = live.agents.get_mut(&call.specialist_id)
            && a.active_call.as_deref() == Some(&call.id)
        {
            a.active_call = None;
        }
        // Tell the watchers, then drop the sender so their streams know nothing more will come.
        if let Some(tx) = live.call_tx.remove(&call.id) {
            tx.send_replace(CallNote {
                version: ended.version,
                event: CallEventType::Ended,
            });
        }
        self.user_event(
            Audience::User(call.specialist_id.clone()),
            UserEvent::CallEnded {
                call_id: call.id.clone(),
                call_type: call.call_type.clone(),
                reservation_sid: call.reservation_sid.clone(),
                reason,
            },
        );
        ended
    }

    // ---- deadlines ----

    /// Expires what waited too long and ends calls whose timer ran out. Called by the sweeper.
    pub async fn sweep(&self) -> ApiResult<()> {
        let now = Utc::now();
        let queue_timeout =
            Duration::from_std(self.config().queue_timeout).unwrap_or(Duration::MAX);
        let join_window = Duration::from_std(self.config().join_window).unwrap_or(Duration::MAX);
        let (expired, ended) = {
            let live = self.live();
            let expired: Vec<String> = live
                .reservations
                .values()
                .filter(|r| match r.view.reservation_status {
                    ReservationStatus::Queued => r.view.created_at + queue_timeout <= now,
                    ReservationStatus::Matched => {
                        let joined = r
                            .view
                            .call_id
                            .as_ref()
                            .and_then(|id| live.calls.get(id))
                            .is_some_and(|c| c.customer_joined_at.is_some());
                        !joined && r.matched_at.is_some_and(|m| m + join_window <= now)
                    }
                    _ => false,
                })
                .map(|r| r.view.reservation_sid.clone())
                .collect();
            let ended: Vec<String> = live
                .calls
                .values()
                .filter(|c| c.timer_ends_at.is_some_and(|t| t <= now))
                .map(|c| c.id.clone())
                .collect();
            (expired, ended)
        };
        // Each transition stands alone: one that fails is logged and retried on the next sweep,
        // and the others still happen.
        let mut failed = 0usize;
        for sid in expired {
            if let Err(e) = self
                .finish_reservation(&sid, ReservationStatus::Expired)
                .await
            {
                tracing::warn!(%sid, error = %e, "expiring a reservation failed");
                failed += 1;
            }
        }
        for id in ended {
            match self.end_call(&id, CallEndReason::TimeUp).await {
                Ok(_) | Err(ApiError::Conflict(_)) | Err(ApiError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(call = %id, error = %e, "ending a call at zero failed");
                    failed += 1;
                }
            }
        }
        match failed {
            0 => Ok(()),
            n => Err(ApiError::Unavailable(format!(
                "{n} deadline transitions failed"
            ))),
        }
    }

    /// Deletes what has expired: specialists' sessions, unspent stream tokens, customers'
    /// sessions. Answers how many rows went.
    pub async fn purge_expired(&self) -> ApiResult<u64> {
        let now = Utc::now();
        let mut purged = 0;
        for table in ["agent_sessions", "stream_tokens", "customers"] {
            purged += sqlx::query(&format!("DELETE FROM {table} WHERE expires_at <= ?"))
                .bind(now)
                .execute(&self.inner.db)
                .await?
                .rows_affected();
        }
        Ok(purged)
    }
}

fn push_history(history: &mut VecDeque<f64>, secs: f64) {
    if history.len() == estimator::HISTORY {
        history.pop_front();
    }
    history.push_back(secs.max(0.0));
}

/// `a, b,,c` → `[a, b, c]`: how group lists are written in flags and stored.
pub fn split_groups(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(String::from)
        .collect()
}

/// A specialist's account; `None` (and a log line) when its stored role is not one we know:
/// an account we cannot place gets no capabilities rather than a guessed role.
fn agent_from_row(row: &SqliteRow) -> sqlx::Result<Option<Agent>> {
    let role: String = row.try_get("role")?;
    let groups: String = row.try_get("groups")?;
    let user_id: String = row.try_get("user_id")?;
    let Some(role) = Role::parse(&role) else {
        tracing::warn!(%user_id, %role, "account has an unknown role; refused");
        return Ok(None);
    };
    Ok(Some(Agent {
        user_id,
        role,
        groups: split_groups(&groups),
    }))
}

async fn bump_group(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    group: &str,
    version: u64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE groups SET version = ? WHERE name = ?")
        .bind(version as i64)
        .bind(group)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn save_call_row(conn: &mut sqlx::SqliteConnection, call: &CallRow) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE calls SET max_duration_seconds = ?, started_at = ?, timer_ends_at = ?, \
             specialist_joined_at = ?, customer_joined_at = ?, specialist_present = ?, \
             customer_present = ?, version = ? WHERE id = ?",
    )
    .bind(call.max_duration_seconds as i64)
    .bind(call.started_at)
    .bind(call.timer_ends_at)
    .bind(call.specialist_joined_at)
    .bind(call.customer_joined_at)
    .bind(call.specialist_present)
    .bind(call.customer_present)
    .bind(call.version as i64)
    .bind(&call.id)
    .execute(conn)
    .await?;
    Ok(())
}

async fn end_call_row(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    call: &CallRow,
    reason: CallEndReason,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE calls SET ended_at = ?, ended_reason = ?, specialist_present = 0, \
         customer_present = 0, version = ? WHERE id = ?",
    )
    .bind(now)
    .bind(reason.as_str())
    .bind(call.version as i64 + 1)
    .bind(&call.id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
