//! The queue and the calls: durable in SQLite, live in memory, one place for every change.
//!
//! SQLite is the source of truth; the in-memory [`Live`] copy of what is in flight (queued and
//! matched reservations, open calls, specialists) serves reads and streams without touching the
//! database. Every change takes the write lock, commits to SQLite, then updates memory and wakes
//! the streams, so memory never shows what the database does not hold. On start the live copy is
//! rebuilt from the database, which is what makes a restart (even `kill -9`) lose nothing.
//!
//! The parts: `memory.rs` the in-memory model (groups, positions, estimates, what each stream
//! is told), `rows.rs` the stored rows and the SQL they share, `accounts.rs` customers,
//! specialists, sessions and stream tokens, `reservations.rs` the queue (creates through one
//! group-committing writer, leaving, accepting), `calls.rs` the calls, `sweep.rs` the deadlines.

mod accounts;
mod admin;
mod calls;
mod cluster;
pub mod error;
mod memory;
mod reservations;
mod rows;
mod sweep;
mod talk;

pub use cluster::{LISTENER_NAME, RECONCILE_EVERY};
pub use error::{StoreError, StoreResult};
pub use memory::CheckIn;
pub use rows::CallRow;

use cluster::Tx;
use memory::*;
use rows::*;

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use callqueue_protocol::{
    CALL_TYPE_APPOINTMENT, Call, CallEndReason, CallEventType, CallResponse, CallSession,
    CallSettings, Limits, Member, QueueEvent, Reservation, ReservationStatus, Role, UserEvent,
};
use chrono::{DateTime, Duration, Utc};
use sqlx::{AnyPool, Row, any::AnyRow};
use tokio::sync::{Mutex, broadcast, mpsc, oneshot, watch};

use crate::{config::Config, estimator, tokens};

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
    /// The check-in: name and reason, already checked.
    check_in: CheckIn,
    reply: oneshot::Sender<StoreResult<(Reservation, bool)>>,
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

/// A signed-in specialist.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub user_id: String,
    pub role: Role,
    pub groups: Vec<String>,
    /// May use the admin page (stored role `admin`; in calls a specialist like any other).
    pub admin: bool,
}

/// Who is asking: a customer (by their cookie) or a specialist (by theirs).
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    Customer(String),
    Agent(Agent),
}

/// What [`Store::reservation_change`] found.
#[derive(Debug)]
pub enum ReservationChange {
    Same,
    // Boxed: the stream's future holds one of these; the other variants are empty.
    Changed(Box<Reservation>),
    Gone,
}

/// The whole state of the server; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: AnyPool,
    config: Arc<Config>,
    write: Mutex<()>,
    live: RwLock<Live>,
    user_events: broadcast::Sender<(Audience, UserEvent)>,
    /// Specialist sessions signed out on this node (their token hashes): their channels close.
    ended_sessions: broadcast::Sender<String>,
    creates: mpsc::Sender<CreateJob>,
    /// Whether other nodes share the database (PostgreSQL): see `cluster.rs`.
    clustered: bool,
    /// This node's name among them.
    node: String,
    /// User events and signalling on their way to the other nodes: (channel, parts).
    relay: Option<mpsc::Sender<(&'static str, Vec<String>)>>,
    /// Signalling from the other nodes.
    signals: broadcast::Sender<String>,
    /// Numbers this node's signalling messages (to put their parts together).
    signal_seq: std::sync::atomic::AtomicU64,
    /// Full reconciles run (each reads every group's version): see [`Store::reconciles`].
    reconciles: std::sync::atomic::AtomicU64,
    /// Reservation and call rows read at start: see [`Store::rows_read_at_start`].
    rows_at_start: std::sync::atomic::AtomicU64,
    /// Each group's settings (opening hours among them), as last read: see `admin.rs`.
    settings: std::sync::RwLock<HashMap<String, callqueue_protocol::admin::GroupSettings>>,
}

impl Store {
    /// Rebuilds the live state from the database.
    pub async fn open(db: AnyPool, config: Arc<Config>) -> sqlx::Result<Self> {
        for group in &config.groups {
            sqlx::query(
                "INSERT INTO groups (name, version) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING",
            )
            .bind(group)
            .execute(&db)
            .await?;
        }
        let clustered = config.database.is_postgres();
        let (creates, jobs) = mpsc::channel(4 * CREATE_BATCH);
        let (relay, relayed) = mpsc::channel(1024);
        let store = Self {
            inner: Arc::new(Inner {
                db: db.clone(),
                config,
                write: Mutex::new(()),
                live: RwLock::new(Live::default()),
                user_events: broadcast::channel(1024).0,
                ended_sessions: broadcast::channel(64).0,
                creates,
                clustered,
                node: tokens::random_token(),
                relay: clustered.then_some(relay),
                signals: broadcast::channel(1024).0,
                signal_seq: Default::default(),
                reconciles: Default::default(),
                rows_at_start: Default::default(),
                settings: Default::default(),
            }),
        };
        // Each group as the database has it, then the lengths of past calls for the estimates.
        let groups: Vec<String> = sqlx::query_scalar("SELECT name FROM groups ORDER BY name")
            .fetch_all(&db)
            .await?;
        {
            let mut conn = db.acquire().await?;
            for group in &groups {
                store
                    .load_group(&mut conn, group)
                    .await
                    .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
            }
        }
        // The estimator keeps the last HISTORY call lengths of each group: read no more.
        for group in &groups {
            let rows = sqlx::query(
                "SELECT started_at, ended_at FROM calls WHERE group_name = $1 \
                 AND ended_at IS NOT NULL AND started_at IS NOT NULL \
                 ORDER BY ended_at DESC LIMIT $2",
            )
            .bind(group)
            .bind(estimator::HISTORY as i64)
            .fetch_all(&db)
            .await?;
            store
                .inner
                .rows_at_start
                .fetch_add(rows.len() as u64, std::sync::atomic::Ordering::Relaxed);
            for row in rows.iter().rev() {
                let secs = crate::metrics::seconds(row.time("started_at")?, row.time("ended_at")?);
                if let Some(g) = store.live_mut().groups.get_mut(group) {
                    push_history(&mut g.history, secs);
                }
            }
        }
        tracing::debug!(
            rows = store.rows_read_at_start(),
            "read the live state and the recent call lengths"
        );
        let now = Utc::now();
        for group in &groups {
            store.live_mut().recompute(group, now);
        }
        if clustered {
            tokio::spawn(Self::run_relay(db, relayed));
        }
        store
            .refresh_settings()
            .await
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        // The task holds the store weakly: when the last handle goes, the sender goes with it,
        // the channel closes and the task ends.
        tokio::spawn(Self::run_creates(Arc::downgrade(&store.inner), jobs));
        Ok(store)
    }

    /// Reservation and call rows read at start: what is live, and the recent call lengths the
    /// estimator keeps; never the whole history.
    pub fn rows_read_at_start(&self) -> u64 {
        self.inner
            .rows_at_start
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn db(&self) -> &AnyPool {
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

    /// The join window as a chrono duration.
    fn join_window(&self) -> Duration {
        Duration::from_std(self.config().join_window).unwrap_or(Duration::MAX)
    }

    fn next_version(&self, group: &str) -> u64 {
        self.live().groups.get(group).map_or(1, |g| g.version + 1)
    }
}

/// `a, b,,c` → `[a, b, c]`: how group lists are written in flags and stored.
pub fn split_groups(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(String::from)
        .collect()
}
