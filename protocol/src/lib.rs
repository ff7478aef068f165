//! The wire contract between the callqueue app and server.
//!
//! Every type that crosses the network is defined here once, so the browser and the server cannot
//! drift apart. Field names and status strings follow the public patterns callqueue stays
//! compatible with (Streem's group reservations, Stream Video's call settings). Times are RFC 3339
//! UTC strings; anything that carries a deadline also carries `server_time` so a browser can
//! correct its own clock before counting down. No I/O lives here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub mod admin;
pub mod signal;

/// Timestamps are read with chrono's RFC 3339 parser. `DateTime`'s own `Deserialize` goes
/// through chrono's general format-string parser instead, which is the largest piece of chrono
/// in the browser app; every timestamp on the wire is RFC 3339, which both accept alike.
pub(crate) mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, de::Error};

    fn parse<E: Error>(s: &str) -> Result<DateTime<Utc>, E> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| E::custom(format_args!("invalid RFC 3339 time {s:?}: {e}")))
    }

    pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        parse(&String::deserialize(d)?)
    }

    pub fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| parse(&s))
            .transpose()
    }
}

/// The group every deployment has.
pub const DEFAULT_GROUP: &str = "default";
/// The call type used for every call callqueue creates.
pub const CALL_TYPE_APPOINTMENT: &str = "appointment";
/// The default session length of an `appointment` call.
pub const DEFAULT_MAX_DURATION_SECONDS: u32 = 3600;

/// How often, at the most, the server lets a stream or socket go quiet: after this long with
/// nothing else to send it sends a heartbeat, so a page can tell a quiet connection from a dead
/// one (a network hand-over with no `offline` event leaves a socket open that carries nothing).
pub const HEARTBEAT_SECS: u64 = 10;
/// The name of the heartbeat event on every event stream (its data is `{}`).
pub const HEARTBEAT_EVENT: &str = "heartbeat";
/// The whole text of the heartbeat frame on every WebSocket.
pub const HEARTBEAT_FRAME: &str = r#"{"type":"heartbeat"}"#;

/// Where a group reservation stands. The strings are Streem's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ReservationStatus {
    #[serde(rename = "GROUP_RESERVATION_STATUS_QUEUED")]
    Queued,
    #[serde(rename = "GROUP_RESERVATION_STATUS_MATCHED")]
    Matched,
    #[serde(rename = "GROUP_RESERVATION_STATUS_EXPIRED")]
    Expired,
    #[serde(rename = "GROUP_RESERVATION_STATUS_CANCELED")]
    Canceled,
}

impl ReservationStatus {
    /// How far along the life of a reservation this status is. Statuses only move forward.
    pub fn rank(self) -> u8 {
        match self {
            Self::Queued => 0,
            Self::Matched => 1,
            Self::Expired | Self::Canceled => 2,
        }
    }

    /// True when nothing can happen to the reservation any more.
    pub fn is_final(self) -> bool {
        self.rank() == 2
    }

    /// Whether a reservation in `self` may move to `next`. Repeated, late and out-of-order
    /// statuses answer false, so neither side ever moves backwards.
    pub fn can_advance_to(self, next: ReservationStatus) -> bool {
        next.rank() > self.rank()
    }

    /// The wire string, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "GROUP_RESERVATION_STATUS_QUEUED",
            Self::Matched => "GROUP_RESERVATION_STATUS_MATCHED",
            Self::Expired => "GROUP_RESERVATION_STATUS_EXPIRED",
            Self::Canceled => "GROUP_RESERVATION_STATUS_CANCELED",
        }
    }

    /// The status for a wire string, if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Matched, Self::Expired, Self::Canceled]
            .into_iter()
            .find(|status| status.as_str() == s)
    }
}

/// A customer's place in a group's queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reservation {
    pub reservation_sid: String,
    pub group_name: String,
    pub reservation_status: ReservationStatus,
    /// 1-based and dense while queued; `null` once the reservation has left the queue.
    pub queue_position: Option<u32>,
    /// `null` until at least one call in the group has completed (or nobody is available).
    #[serde(default, deserialize_with = "rfc3339::option")]
    pub estimated_wait_until: Option<DateTime<Utc>>,
    /// The range the wait should end in (about 80% of waits do): present exactly when
    /// `estimated_wait_until` is, which lies between them.
    #[serde(default, deserialize_with = "rfc3339::option")]
    pub estimated_wait_earliest: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "rfc3339::option")]
    pub estimated_wait_latest: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "rfc3339::required")]
    pub created_at: DateTime<Utc>,
    #[serde(deserialize_with = "rfc3339::required")]
    pub updated_at: DateTime<Utc>,
    /// The call this reservation was matched into.
    #[serde(default)]
    pub call_id: Option<String>,
    #[serde(default)]
    pub call_type: Option<String>,
    /// While MATCHED: when the customer must have joined the call, or the reservation expires.
    #[serde(default, deserialize_with = "rfc3339::option")]
    pub join_deadline: Option<DateTime<Utc>>,
    /// Whether the customer has already asked for more time to join ("I need a moment"); it
    /// can be asked once.
    #[serde(default)]
    pub join_extended: bool,
    /// What the customer gave at check-in. Only specialists are shown these: the customer's
    /// own copies leave them out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Once matched: the display name of the specialist who is waiting ("Dr. Anna Berg"), if
    /// they have one; never their sign-in id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specialist_name: Option<String>,
    /// A word from the group's specialists to everyone waiting ("We're running about 10
    /// minutes late"), while there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// One line a specialist sent to this customer alone while they wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The server's clock when this copy was made.
    #[serde(deserialize_with = "rfc3339::required")]
    pub server_time: DateTime<Utc>,
}

impl Reservation {
    /// Whether two copies say the same thing, whatever clock each was read at.
    pub fn same_state(&self, other: &Self) -> bool {
        // Destructured so that a new field has to be considered here.
        let Self {
            reservation_sid,
            group_name,
            reservation_status,
            queue_position,
            estimated_wait_until,
            estimated_wait_earliest,
            estimated_wait_latest,
            created_at,
            updated_at,
            call_id,
            call_type,
            join_deadline,
            join_extended,
            customer_name,
            reason,
            specialist_name,
            notice,
            message,
            server_time: _,
        } = self;
        *reservation_sid == other.reservation_sid
            && *group_name == other.group_name
            && *reservation_status == other.reservation_status
            && *queue_position == other.queue_position
            && *estimated_wait_until == other.estimated_wait_until
            && *estimated_wait_earliest == other.estimated_wait_earliest
            && *estimated_wait_latest == other.estimated_wait_latest
            && *created_at == other.created_at
            && *updated_at == other.updated_at
            && *call_id == other.call_id
            && *call_type == other.call_type
            && *join_deadline == other.join_deadline
            && *join_extended == other.join_extended
            && *customer_name == other.customer_name
            && *reason == other.reason
            && *specialist_name == other.specialist_name
            && *notice == other.notice
            && *message == other.message
    }

    /// A 64-bit digest of what [`Reservation::same_state`] compares: equal states give equal
    /// digests. What a server keeps per open stream instead of the whole last copy.
    pub fn state_digest(&self) -> u64 {
        self.state_digest_with(&self.notice)
    }

    /// [`Reservation::state_digest`] of this copy with `notice` in place of its own (the
    /// group's, which a server adds to the copy it sends), without making that copy.
    pub fn state_digest_with(&self, notice: &Option<String>) -> u64 {
        use std::hash::{Hash, Hasher};
        // Destructured so that a new field has to be considered here too.
        let Self {
            reservation_sid,
            group_name,
            reservation_status,
            queue_position,
            estimated_wait_until,
            estimated_wait_earliest,
            estimated_wait_latest,
            created_at,
            updated_at,
            call_id,
            call_type,
            join_deadline,
            join_extended,
            customer_name,
            reason,
            specialist_name,
            notice: _,
            message,
            server_time: _,
        } = self;
        let mut h = std::hash::DefaultHasher::new();
        (
            reservation_sid,
            group_name,
            reservation_status,
            queue_position,
        )
            .hash(&mut h);
        (
            estimated_wait_until,
            estimated_wait_earliest,
            estimated_wait_latest,
        )
            .hash(&mut h);
        (created_at, updated_at, call_id, call_type, join_deadline).hash(&mut h);
        (join_extended, customer_name, reason, specialist_name).hash(&mut h);
        (notice, message).hash(&mut h);
        h.finish()
    }

    /// This copy without what the customer gave at check-in: what the customer's own views
    /// send.
    pub fn for_customer(mut self) -> Self {
        self.customer_name = None;
        self.reason = None;
        self
    }
}

/// Who someone is in a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Specialist,
    Patient,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Specialist => "specialist",
            Self::Patient => "patient",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "specialist" => Some(Self::Specialist),
            "patient" => Some(Self::Patient),
            _ => None,
        }
    }
}

/// Why a call ended: one name on the wire for each way a call can end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CallEndReason {
    /// The session timer reached zero.
    TimeUp,
    /// The specialist left (or ended the call) while it was running.
    SpecialistLeft,
    /// The customer left last, after the specialist had already gone.
    CustomerLeft,
    /// The customer was matched but never joined within the join window.
    NotJoined,
    /// The customer left the queue after being matched, before the call started.
    Canceled,
}

impl CallEndReason {
    pub const ALL: [Self; 5] = [
        Self::TimeUp,
        Self::SpecialistLeft,
        Self::CustomerLeft,
        Self::NotJoined,
        Self::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TimeUp => "time_up",
            Self::SpecialistLeft => "specialist_left",
            Self::CustomerLeft => "customer_left",
            Self::NotJoined => "not_joined",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The reason a member leaving ends a call for: who left.
    pub fn left(role: Role) -> Self {
        match role {
            Role::Specialist => Self::SpecialistLeft,
            Role::Patient => Self::CustomerLeft,
        }
    }
}

/// What a role may do in a call (Stream Video's capability names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    JoinCall,
    SendAudio,
    SendVideo,
    UpdateCall,
    UpdateCallSettings,
    ChangeMaxDuration,
}

impl Capability {
    pub const ALL: [Capability; 6] = [
        Self::JoinCall,
        Self::SendAudio,
        Self::SendVideo,
        Self::UpdateCall,
        Self::UpdateCallSettings,
        Self::ChangeMaxDuration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::JoinCall => "join-call",
            Self::SendAudio => "send-audio",
            Self::SendVideo => "send-video",
            Self::UpdateCall => "update-call",
            Self::UpdateCallSettings => "update-call-settings",
            Self::ChangeMaxDuration => "change-max-duration",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Limits {
    pub max_duration_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallSettings {
    pub limits: Limits,
}

/// The live part of a call: when it started, when its timer ends, when it ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallSession {
    #[serde(default, deserialize_with = "rfc3339::option")]
    pub started_at: Option<DateTime<Utc>>,
    /// `started_at + settings.limits.max_duration_seconds`.
    #[serde(default, deserialize_with = "rfc3339::option")]
    pub timer_ends_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "rfc3339::option")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it ended.
    #[serde(default)]
    pub ended_reason: Option<CallEndReason>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    /// Opaque, the same for this member of this call on every node; never a sign-in id (a
    /// customer must not learn what to try signing in as).
    pub id: String,
    pub role: Role,
    /// What to call them: a specialist's display name (never their sign-in id), a customer's
    /// name from the check-in; `null` when there is none ("the specialist", "the customer").
    #[serde(default)]
    pub display_name: Option<String>,
    /// When this member last joined, if ever.
    #[serde(default, deserialize_with = "rfc3339::option")]
    pub joined_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Call {
    pub id: String,
    #[serde(rename = "type")]
    pub call_type: String,
    pub reservation_sid: String,
    #[serde(deserialize_with = "rfc3339::required")]
    pub created_at: DateTime<Utc>,
    pub settings: CallSettings,
    pub session: CallSession,
}

/// `GET /calls/{type}/{id}` and every call mutation answer with this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallResponse {
    pub call: Call,
    pub members: Vec<Member>,
    /// What the caller may do in this call.
    pub own_capabilities: Vec<Capability>,
    /// The caller's role in this call.
    pub own_role: Role,
    /// The customer's check-in: sent to the specialist only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(deserialize_with = "rfc3339::required")]
    pub server_time: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LimitsOverride {
    #[serde(default)]
    pub max_duration_seconds: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SettingsOverride {
    #[serde(default)]
    pub limits: LimitsOverride,
}

/// `PATCH /calls/{type}/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateCallRequest {
    pub settings_override: SettingsOverride,
}

/// `POST /calls/{type}/{id}/join`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JoinCallRequest {
    #[serde(default)]
    pub settings_override: Option<SettingsOverride>,
}

/// The kinds of event on a call stream (the SSE `event:` name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CallEventType {
    #[serde(rename = "call.session_started")]
    SessionStarted,
    #[serde(rename = "call.updated")]
    Updated,
    #[serde(rename = "call.ended")]
    Ended,
}

impl CallEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionStarted => "call.session_started",
            Self::Updated => "call.updated",
            Self::Ended => "call.ended",
        }
    }
}

/// The data of every call stream event; the first event of a connection is a `call.updated`
/// snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallEvent {
    #[serde(rename = "type")]
    pub event_type: CallEventType,
    pub call: Call,
    #[serde(deserialize_with = "rfc3339::required")]
    pub server_time: DateTime<Utc>,
}

/// One event on a specialist's queue stream (`GET /groups/{group}/events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type")]
pub enum QueueEvent {
    /// The whole queue: the first event of every connection.
    #[serde(rename = "queue.snapshot")]
    Snapshot {
        group_name: String,
        reservations: Vec<Reservation>,
        #[serde(deserialize_with = "rfc3339::required")]
        server_time: DateTime<Utc>,
    },
    #[serde(rename = "reservation.added")]
    Added {
        reservation: Reservation,
        #[serde(deserialize_with = "rfc3339::required")]
        server_time: DateTime<Utc>,
    },
    #[serde(rename = "reservation.removed")]
    Removed {
        reservation: Reservation,
        #[serde(deserialize_with = "rfc3339::required")]
        server_time: DateTime<Utc>,
    },
}

impl QueueEvent {
    /// Reads a queue stream event from its SSE `event:` name and `data:`, with the same result
    /// as deserializing the data as a `QueueEvent`.
    ///
    /// By hand, though serde derives it: serde reads an internally tagged enum by buffering the
    /// whole message into its own tree and deserializing that a second time, code that cost
    /// the browser app 5.5 KB (brotli) for this enum alone. The event name already says which
    /// variant it is; the `type` field in the data is then redundant and ignored.
    pub fn from_sse(name: &str, data: &str) -> serde_json::Result<Self> {
        #[derive(Deserialize)]
        struct Snapshot {
            group_name: String,
            reservations: Vec<Reservation>,
            #[serde(deserialize_with = "rfc3339::required")]
            server_time: DateTime<Utc>,
        }
        #[derive(Deserialize)]
        struct Change {
            reservation: Reservation,
            #[serde(deserialize_with = "rfc3339::required")]
            server_time: DateTime<Utc>,
        }
        let change = || -> serde_json::Result<(Reservation, DateTime<Utc>)> {
            let c: Change = serde_json::from_str(data)?;
            Ok((c.reservation, c.server_time))
        };
        Ok(match name {
            "queue.snapshot" => {
                let s: Snapshot = serde_json::from_str(data)?;
                Self::Snapshot {
                    group_name: s.group_name,
                    reservations: s.reservations,
                    server_time: s.server_time,
                }
            }
            "reservation.added" => {
                let (reservation, server_time) = change()?;
                Self::Added {
                    reservation,
                    server_time,
                }
            }
            "reservation.removed" => {
                let (reservation, server_time) = change()?;
                Self::Removed {
                    reservation,
                    server_time,
                }
            }
            other => {
                return Err(serde::de::Error::unknown_variant(
                    other,
                    &["queue.snapshot", "reservation.added", "reservation.removed"],
                ));
            }
        })
    }

    /// The SSE `event:` name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Snapshot { .. } => "queue.snapshot",
            Self::Added { .. } => "reservation.added",
            Self::Removed { .. } => "reservation.removed",
        }
    }
}

/// `GET /groups/{group}/queue`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueResponse {
    pub group_name: String,
    pub reservations: Vec<Reservation>,
    pub available_specialists: u32,
    #[serde(deserialize_with = "rfc3339::required")]
    pub server_time: DateTime<Utc>,
}

/// `GET /groups/{group}/status`: what a customer may know before joining.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupStatus {
    pub group_name: String,
    pub available_specialists: u32,
    pub queue_length: u32,
    /// Whether a name must be given at check-in.
    #[serde(default)]
    pub name_required: bool,
    /// Whether the queue is open now (its opening hours); joining a closed one is refused.
    #[serde(default = "open")]
    pub open: bool,
    /// When it opens next, if it is closed and will open.
    #[serde(
        default,
        deserialize_with = "rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub opens_at: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "rfc3339::required")]
    pub server_time: DateTime<Utc>,
}

fn open() -> bool {
    true
}

/// `POST /groups/{group}/reservations`: the body is optional; when present it must be this
/// JSON object (the check-in). Fields it does not know are refused rather than silently
/// dropped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateReservationRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The longest name a customer may give, in characters.
pub const NAME_MAX_CHARS: usize = 80;

/// Whether a display name (a specialist's, a group's) can be shown: 1 to [`NAME_MAX_CHARS`]
/// characters once trimmed, no control characters.
pub fn is_display_name(name: &str) -> bool {
    let name = name.trim();
    !name.is_empty()
        && name.chars().count() <= NAME_MAX_CHARS
        && !name.chars().any(char::is_control)
}
/// The longest reason a customer may give, in characters.
pub const REASON_MAX_CHARS: usize = 500;

/// A check-in field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckInField {
    Name,
    Reason,
}

impl CheckInField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Reason => "reason",
        }
    }
}

/// What is wrong with a check-in field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckInProblem {
    /// Longer than this many characters (after trimming).
    TooLong(usize),
    /// Has a control character (a line break is allowed in the reason).
    ControlCharacter,
    /// Empty where the deployment asks for it.
    Required,
}

/// Why a check-in was refused: the field and the problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckInError {
    pub field: CheckInField,
    pub problem: CheckInProblem,
}

impl std::fmt::Display for CheckInError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let field = self.field.as_str();
        match self.problem {
            CheckInProblem::TooLong(max) => write!(f, "{field}: at most {max} characters"),
            CheckInProblem::ControlCharacter => {
                write!(f, "{field}: control characters are not allowed")
            }
            CheckInProblem::Required => write!(f, "{field}: required"),
        }
    }
}

impl CreateReservationRequest {
    /// The check-in as it is kept: each field trimmed, empty ones `None`. The server and the
    /// app's form check with this one function.
    pub fn checked(
        &self,
        require_name: bool,
    ) -> Result<(Option<String>, Option<String>), CheckInError> {
        let field = |value: &Option<String>, which: CheckInField, max: usize| {
            let error = |problem| CheckInError {
                field: which,
                problem,
            };
            let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
                return Ok(None);
            };
            let line_breaks = which == CheckInField::Reason;
            if v.chars()
                .any(|c| c.is_control() && !(line_breaks && (c == '\n' || c == '\r')))
            {
                return Err(error(CheckInProblem::ControlCharacter));
            }
            if v.chars().count() > max {
                return Err(error(CheckInProblem::TooLong(max)));
            }
            Ok(Some(v.to_string()))
        };
        let name = field(&self.name, CheckInField::Name, NAME_MAX_CHARS)?;
        let reason = field(&self.reason, CheckInField::Reason, REASON_MAX_CHARS)?;
        if require_name && name.is_none() {
            return Err(CheckInError {
                field: CheckInField::Name,
                problem: CheckInProblem::Required,
            });
        }
        Ok((name, reason))
    }
}

/// `POST /agent/session`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignInRequest {
    pub user_id: String,
    pub secret: String,
}

/// A signed-in specialist, as `POST /agent/session` and `PUT /agent/availability` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentSession {
    pub user_id: String,
    /// May use the admin page.
    #[serde(default)]
    pub admin: bool,
    /// What customers see them as ("Dr. Anna Berg"), if set (`agent add --display-name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub role: Role,
    pub groups: Vec<String>,
    pub available: bool,
    /// The call the specialist is in, if any.
    #[serde(default)]
    pub active_call_id: Option<String>,
    /// The reservation that call was made for (its join page is `/join/r/{sid}`).
    #[serde(default)]
    pub active_reservation_sid: Option<String>,
    /// The longest session a call may be given (`--max-call-seconds`).
    #[serde(default)]
    pub max_call_seconds: u32,
    #[serde(deserialize_with = "rfc3339::required")]
    pub server_time: DateTime<Utc>,
}

/// `GET /groups/{group}/today?since=...`: a group's figures since a moment (the console asks
/// from its own local midnight).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupDay {
    pub group_name: String,
    /// Customers matched with a specialist since `since`.
    pub served: u32,
    /// The median of their waits from joining to being matched, in seconds; `null` when none.
    #[serde(default)]
    pub median_wait_seconds: Option<f64>,
    /// Customers' ratings (1–5) of calls in the group since `since`: how many, and their mean.
    #[serde(default)]
    pub ratings: u32,
    #[serde(default)]
    pub rating_average: Option<f64>,
    /// This specialist's calls rated since `since`, newest first (with their comments).
    #[serde(default)]
    pub feedback: Vec<Feedback>,
    #[serde(deserialize_with = "rfc3339::required")]
    pub since: DateTime<Utc>,
    #[serde(deserialize_with = "rfc3339::required")]
    pub server_time: DateTime<Utc>,
}

/// The longest word to those waiting (a group's notice, a line to one customer), in
/// characters.
pub const NOTICE_MAX_CHARS: usize = 280;

/// `PUT /groups/{group}/notice` (the group's notice for everyone waiting; empty text clears
/// it) and `POST /groups/{group}/reservations/{sid}/message` (one line to one waiting
/// customer, replacing the last one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NoticeRequest {
    /// Up to 280 characters on one line.
    pub text: String,
}

/// A group's notice to those waiting, as `GET`/`PUT /groups/{group}/notice` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueNotice {
    /// `null` when there is none.
    #[serde(default)]
    pub notice: Option<String>,
}

/// The text of a notice or a line to a customer, trimmed; `None` for empty text, an error
/// naming what is wrong otherwise.
pub fn notice_text(text: &str) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().count() > NOTICE_MAX_CHARS {
        return Err(format!("text: at most {NOTICE_MAX_CHARS} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err("text: one line, without control characters".into());
    }
    Ok(Some(text.to_string()))
}

/// Whether people's free text (a chat message, a feedback comment) fits: at most `max`
/// characters, no control characters but line breaks and tabs.
pub fn is_plain_text(text: &str, max: usize) -> bool {
    text.chars().count() <= max
        && !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
}

/// The longest feedback comment, in characters.
pub const FEEDBACK_COMMENT_MAX_CHARS: usize = 500;

/// `POST /calls/{type}/{id}/feedback`: the customer's rating of an ended call, once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// 1 (bad) to 5 (very good).
    pub rating: u8,
    /// Up to 500 characters; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A rated call, as its specialist sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Feedback {
    pub rating: u8,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(deserialize_with = "rfc3339::required")]
    pub at: DateTime<Utc>,
}

/// `PUT /agent/availability`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AvailabilityRequest {
    pub available: bool,
}

/// `POST /groups/{group}/accept`: the next customer, or the one named.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AcceptRequest {
    #[serde(default)]
    pub reservation_sid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AcceptResponse {
    pub reservation: Reservation,
    pub call: CallResponse,
}

/// `POST /agent/stream-token`: a short-lived, single-use token for the WebSocket handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamToken {
    pub token: String,
    #[serde(deserialize_with = "rfc3339::required")]
    pub expires_at: DateTime<Utc>,
    #[serde(deserialize_with = "rfc3339::required")]
    pub server_time: DateTime<Utc>,
}

/// What a client sends on the per-user WebSocket channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientMessage {
    AuthRequest { token: String },
    StartUserEventRequest,
    Ping,
}

/// What the server sends on the per-user WebSocket channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage {
    AuthResponse {
        success: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    StartUserEventResponse {
        success: bool,
    },
    UserEvent {
        event: UserEvent,
        #[serde(deserialize_with = "rfc3339::required")]
        server_time: DateTime<Utc>,
    },
    Pong,
    Error {
        message: String,
    },
}

/// The `type` of a JSON message that serde would read as an internally tagged enum: the first
/// step of reading one by hand (see [`QueueEvent::from_sse`]).
pub(crate) fn type_tag(text: &str) -> serde_json::Result<String> {
    #[derive(Deserialize)]
    struct Tag {
        #[serde(rename = "type")]
        kind: String,
    }
    serde_json::from_str::<Tag>(text).map(|tag| tag.kind)
}

impl ServerMessage {
    /// Reads a channel message, with the same result as deserializing a `ServerMessage`: its
    /// `type` first, then the rest as that variant. By hand for the reason given at
    /// [`QueueEvent::from_sse`] (and the `event` inside a `userevent` the same way).
    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        #[derive(Deserialize)]
        struct Auth {
            success: bool,
            #[serde(default)]
            message: Option<String>,
        }
        #[derive(Deserialize)]
        struct Started {
            success: bool,
        }
        #[derive(Deserialize)]
        struct Event<'a> {
            #[serde(borrow)]
            event: &'a serde_json::value::RawValue,
            #[serde(deserialize_with = "rfc3339::required")]
            server_time: DateTime<Utc>,
        }
        #[derive(Deserialize)]
        struct Failure {
            message: String,
        }
        Ok(match type_tag(text)?.as_str() {
            "authresponse" => {
                let m: Auth = serde_json::from_str(text)?;
                Self::AuthResponse {
                    success: m.success,
                    message: m.message,
                }
            }
            "startusereventresponse" => {
                let m: Started = serde_json::from_str(text)?;
                Self::StartUserEventResponse { success: m.success }
            }
            "userevent" => {
                let m: Event = serde_json::from_str(text)?;
                Self::UserEvent {
                    event: UserEvent::from_json(m.event.get())?,
                    server_time: m.server_time,
                }
            }
            "pong" => Self::Pong,
            "error" => {
                let m: Failure = serde_json::from_str(text)?;
                Self::Error { message: m.message }
            }
            other => {
                return Err(serde::de::Error::unknown_variant(
                    other,
                    &[
                        "authresponse",
                        "startusereventresponse",
                        "userevent",
                        "pong",
                        "error",
                    ],
                ));
            }
        })
    }
}

/// Things a specialist is told about on their per-user channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "event_type", rename_all = "snake_case")]
pub enum UserEvent {
    CustomerWaiting {
        group_name: String,
        reservation_sid: String,
        queue_length: u32,
        /// The check-in, if the customer gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    CallStarted {
        call_id: String,
        call_type: String,
        reservation_sid: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    CallEnded {
        call_id: String,
        call_type: String,
        reservation_sid: String,
        reason: CallEndReason,
    },
    /// The customer's page joined the call (`connected`) or is gone (closed, reloading, lost
    /// its network); sent on every change and, for the specialist's current call, when the
    /// channel starts.
    CustomerPresence { call_id: String, connected: bool },
}

impl UserEvent {
    /// Reads a user event by its `event_type`, as [`ServerMessage::from_json`] reads messages.
    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        #[derive(Deserialize)]
        struct Tag {
            event_type: String,
        }
        #[derive(Deserialize)]
        struct Waiting {
            group_name: String,
            reservation_sid: String,
            queue_length: u32,
            #[serde(default)]
            customer_name: Option<String>,
            #[serde(default)]
            reason: Option<String>,
        }
        #[derive(Deserialize)]
        struct Started {
            call_id: String,
            call_type: String,
            reservation_sid: String,
            #[serde(default)]
            customer_name: Option<String>,
            #[serde(default)]
            reason: Option<String>,
        }
        #[derive(Deserialize)]
        struct Call {
            call_id: String,
            call_type: String,
            reservation_sid: String,
            #[serde(default)]
            reason: Option<CallEndReason>,
        }
        let tag: Tag = serde_json::from_str(text)?;
        let call = || serde_json::from_str::<Call>(text);
        Ok(match tag.event_type.as_str() {
            "customer_waiting" => {
                let e: Waiting = serde_json::from_str(text)?;
                Self::CustomerWaiting {
                    group_name: e.group_name,
                    reservation_sid: e.reservation_sid,
                    queue_length: e.queue_length,
                    customer_name: e.customer_name,
                    reason: e.reason,
                }
            }
            "call_started" => {
                let e: Started = serde_json::from_str(text)?;
                Self::CallStarted {
                    call_id: e.call_id,
                    call_type: e.call_type,
                    reservation_sid: e.reservation_sid,
                    customer_name: e.customer_name,
                    reason: e.reason,
                }
            }
            "call_ended" => {
                let e = call()?;
                Self::CallEnded {
                    call_id: e.call_id,
                    call_type: e.call_type,
                    reservation_sid: e.reservation_sid,
                    reason: e
                        .reason
                        .ok_or_else(|| serde::de::Error::missing_field("reason"))?,
                }
            }
            "customer_presence" => {
                #[derive(Deserialize)]
                struct Presence {
                    call_id: String,
                    connected: bool,
                }
                let e: Presence = serde_json::from_str(text)?;
                Self::CustomerPresence {
                    call_id: e.call_id,
                    connected: e.connected,
                }
            }
            other => {
                return Err(serde::de::Error::unknown_variant(
                    other,
                    &[
                        "customer_waiting",
                        "call_started",
                        "call_ended",
                        "customer_presence",
                    ],
                ));
            }
        })
    }
}

/// The provider webhook envelope (Streem): `{"event":{"event_type":..,"payload":{..}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookEnvelope {
    pub event: WebhookEvent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookEvent {
    pub event_type: String,
    #[serde(default)]
    pub payload: serde_json::Value,
}

/// The payload of a `group_reservation_updated` webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupReservationUpdated {
    pub updated_group_reservation: WebhookReservation,
}

/// A reservation as the provider reports it: only the sid and status are required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookReservation {
    pub reservation_sid: String,
    pub reservation_status: ReservationStatus,
    #[serde(default)]
    pub queue_position: Option<u32>,
    #[serde(default, deserialize_with = "rfc3339::option")]
    pub estimated_wait_until: Option<DateTime<Utc>>,
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
    pub database: String,
    #[serde(deserialize_with = "rfc3339::required")]
    pub server_time: DateTime<Utc>,
}

/// Every error the API returns: `{ "error": { "code", "message" } }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable and machine-readable, e.g. `not_found`, `forbidden`, `invalid_body`.
    pub code: String,
    /// A sentence a person can read.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_use_streem_strings() {
        let json = serde_json::to_string(&ReservationStatus::Matched).unwrap();
        assert_eq!(json, "\"GROUP_RESERVATION_STATUS_MATCHED\"");
        for s in [
            ReservationStatus::Queued,
            ReservationStatus::Matched,
            ReservationStatus::Expired,
            ReservationStatus::Canceled,
        ] {
            assert_eq!(ReservationStatus::parse(s.as_str()), Some(s));
        }
        assert!(
            serde_json::from_str::<ReservationStatus>("\"GROUP_RESERVATION_STATUS_LOST\"").is_err()
        );
    }

    #[test]
    fn statuses_never_move_backwards() {
        use ReservationStatus::*;
        assert!(Queued.can_advance_to(Matched));
        assert!(Matched.can_advance_to(Expired));
        assert!(Queued.can_advance_to(Canceled));
        assert!(!Matched.can_advance_to(Queued));
        assert!(!Matched.can_advance_to(Matched));
        assert!(!Expired.can_advance_to(Canceled));
        assert!(!Canceled.can_advance_to(Matched));
    }

    #[test]
    fn reservation_reads_as_the_streem_browser_code_does() {
        let json = r#"{"reservation_sid":"r1","group_name":"default",
            "reservation_status":"GROUP_RESERVATION_STATUS_QUEUED","queue_position":3,
            "estimated_wait_until":null,"created_at":"2026-11-23T01:00:00Z",
            "updated_at":"2026-11-23T01:00:00Z","server_time":"2026-11-23T01:00:01.5Z"}"#;
        let r: Reservation = serde_json::from_str(json).unwrap();
        assert_eq!(r.queue_position, Some(3));
        assert_eq!(r.estimated_wait_until, None);
        assert_eq!(r.call_id, None);
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(
            back["reservation_status"],
            "GROUP_RESERVATION_STATUS_QUEUED"
        );
        assert_eq!(back["server_time"], "2026-11-23T01:00:01.500Z");
    }

    #[test]
    fn times_read_as_rfc3339_in_any_offset_and_bad_ones_are_errors() {
        let at = |t: &str| {
            serde_json::from_str::<StreamToken>(&format!(
                r#"{{"token":"t","expires_at":{t},"server_time":"2026-11-23T01:00:00Z"}}"#
            ))
        };
        let plus_two = at(r#""2026-11-23T03:00:00.250+02:00""#).unwrap();
        assert_eq!(
            plus_two.expires_at.to_rfc3339(),
            "2026-11-23T01:00:00.250+00:00"
        );
        for bad in [r#""2026-11-23""#, r#""yesterday""#, "12", "null"] {
            assert!(at(bad).is_err(), "{bad}");
        }
        // What the server writes reads back the same.
        let back: StreamToken =
            serde_json::from_value(serde_json::to_value(&plus_two).unwrap()).unwrap();
        assert_eq!(back, plus_two);
        let r = r#"{"reservation_sid":"r","group_name":"g","reservation_status":"GROUP_RESERVATION_STATUS_QUEUED",
            "queue_position":1,"created_at":"2026-11-23T01:00:00Z","updated_at":"2026-11-23T01:00:00Z",
            "server_time":"2026-11-23T01:00:00Z","estimated_wait_until":"2026-11-23T01:05:00Z"}"#;
        let r: Reservation = serde_json::from_str(r).unwrap();
        assert_eq!(
            r.estimated_wait_until.map(|t| t.timestamp()),
            Some(1_795_395_900)
        );
    }

    fn reservation(sid: &str) -> Reservation {
        let t = DateTime::parse_from_rfc3339("2026-11-23T01:00:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        Reservation {
            reservation_sid: sid.into(),
            group_name: "default".into(),
            reservation_status: ReservationStatus::Queued,
            queue_position: Some(2),
            estimated_wait_until: Some(t),
            estimated_wait_earliest: Some(t),
            estimated_wait_latest: Some(t),
            created_at: t,
            updated_at: t,
            call_id: None,
            call_type: None,
            join_deadline: None,
            join_extended: false,
            customer_name: None,
            reason: None,
            specialist_name: None,
            notice: None,
            message: None,
            server_time: t,
        }
    }

    #[test]
    fn the_state_digest_follows_same_state() {
        let a = reservation("r1");
        let mut later = a.clone();
        later.server_time += chrono::Duration::seconds(5);
        assert!(a.same_state(&later));
        assert_eq!(
            a.state_digest(),
            later.state_digest(),
            "the clock is not state"
        );
        let changes: [fn(&mut Reservation); 5] = [
            |r| r.queue_position = Some(1),
            |r| r.reservation_status = ReservationStatus::Matched,
            |r| r.call_id = Some("c".into()),
            |r| r.join_extended = true,
            |r| r.reason = Some("x".into()),
        ];
        for change in changes {
            let mut b = a.clone();
            change(&mut b);
            assert!(!a.same_state(&b));
            assert_ne!(a.state_digest(), b.state_digest(), "{b:?}");
        }
        // Fields hashed side by side do not run into each other.
        let (mut x, mut y) = (a.clone(), a.clone());
        x.call_id = Some("ab".into());
        x.call_type = Some("c".into());
        y.call_id = Some("a".into());
        y.call_type = Some("bc".into());
        assert_ne!(x.state_digest(), y.state_digest());
    }

    #[test]
    fn check_in_is_trimmed_bounded_and_free_of_control_characters() {
        let req = |name: &str, reason: &str| CreateReservationRequest {
            name: Some(name.into()),
            reason: Some(reason.into()),
        };
        assert_eq!(
            req("  Anna ", " my router\nis broken ").checked(false),
            Ok((Some("Anna".into()), Some("my router\nis broken".into())))
        );
        assert_eq!(req(" ", "").checked(false), Ok((None, None)));
        assert_eq!(
            CreateReservationRequest::default().checked(false),
            Ok((None, None))
        );
        let err =
            |name: &str, reason: &str, require| req(name, reason).checked(require).unwrap_err();
        assert_eq!(
            err(&"é".repeat(81), "", false),
            CheckInError {
                field: CheckInField::Name,
                problem: CheckInProblem::TooLong(80)
            }
        );
        assert!(
            req(&"é".repeat(80), &"x".repeat(500))
                .checked(false)
                .is_ok()
        );
        assert_eq!(err("", &"x".repeat(501), false).field, CheckInField::Reason);
        assert_eq!(
            err("An\u{7}na", "", false).problem,
            CheckInProblem::ControlCharacter
        );
        assert_eq!(err("An\nna", "", false).field, CheckInField::Name);
        assert_eq!(err("Anna", "a\u{0}b", false).field, CheckInField::Reason);
        assert_eq!(err("  ", "why", true).problem, CheckInProblem::Required);
        assert_eq!(
            err("", &"x".repeat(501), false).to_string(),
            "reason: at most 500 characters"
        );
    }

    #[test]
    fn queue_events_read_by_name_as_serde_reads_them() {
        let t = reservation("x").server_time;
        let events = [
            QueueEvent::Snapshot {
                group_name: "default".into(),
                reservations: vec![reservation("a"), reservation("b")],
                server_time: t,
            },
            QueueEvent::Added {
                reservation: reservation("c"),
                server_time: t,
            },
            QueueEvent::Removed {
                reservation: reservation("c"),
                server_time: t,
            },
        ];
        for event in events {
            let data = serde_json::to_string(&event).unwrap();
            let by_name = QueueEvent::from_sse(event.name(), &data).unwrap();
            assert_eq!(by_name, event);
            assert_eq!(by_name, serde_json::from_str::<QueueEvent>(&data).unwrap());
        }
        let data = serde_json::to_string(&QueueEvent::Added {
            reservation: reservation("c"),
            server_time: t,
        })
        .unwrap();
        assert!(QueueEvent::from_sse("reservation.moved", &data).is_err());
        // Never sent: nothing the console shows of a queued reservation changes while it waits.
        assert!(QueueEvent::from_sse("reservation.updated", &data).is_err());
        assert!(QueueEvent::from_sse("queue.snapshot", &data).is_err());
        assert!(QueueEvent::from_sse("reservation.added", "{").is_err());
        assert!(QueueEvent::from_sse("reservation.added", r#"{"reservation":1}"#).is_err());
    }

    #[test]
    fn channel_messages_read_by_tag_as_serde_reads_them() {
        let t = reservation("x").server_time;
        let events = [
            UserEvent::CustomerWaiting {
                group_name: "default".into(),
                reservation_sid: "r\"1".into(),
                queue_length: 3,
                customer_name: None,
                reason: None,
            },
            UserEvent::CustomerWaiting {
                group_name: "default".into(),
                reservation_sid: "r2".into(),
                queue_length: 4,
                customer_name: Some("Anna".into()),
                reason: Some("my router".into()),
            },
            UserEvent::CallStarted {
                call_id: "c".into(),
                call_type: "appointment".into(),
                reservation_sid: "r".into(),
                customer_name: Some("Anna".into()),
                reason: None,
            },
            UserEvent::CallEnded {
                call_id: "c".into(),
                call_type: "appointment".into(),
                reservation_sid: "r".into(),
                reason: CallEndReason::NotJoined,
            },
            UserEvent::CustomerPresence {
                call_id: "c".into(),
                connected: true,
            },
        ];
        let mut messages = vec![
            ServerMessage::AuthResponse {
                success: false,
                message: Some("bad token".into()),
            },
            ServerMessage::AuthResponse {
                success: true,
                message: None,
            },
            ServerMessage::StartUserEventResponse { success: true },
            ServerMessage::Pong,
            ServerMessage::Error {
                message: "invalid JSON".into(),
            },
        ];
        messages.extend(events.into_iter().map(|event| ServerMessage::UserEvent {
            event,
            server_time: t,
        }));
        for message in messages {
            let text = serde_json::to_string(&message).unwrap();
            let by_tag = ServerMessage::from_json(&text).unwrap();
            assert_eq!(by_tag, message, "{text}");
            assert_eq!(
                by_tag,
                serde_json::from_str::<ServerMessage>(&text).unwrap()
            );
        }
        for bad in [
            r#"{"type":"hello"}"#,
            r#"{"success":true}"#,
            r#"{"type":"authresponse"}"#,
            r#"{"type":"userevent","event":{"event_type":"call_ended","call_id":"c","call_type":"a","reservation_sid":"r"},"server_time":"2026-11-23T01:00:00Z"}"#,
            r#"{"type":"userevent","event":{"event_type":"nap"},"server_time":"2026-11-23T01:00:00Z"}"#,
            r#"{"type":"userevent","event":{"event_type":"customer_presence","call_id":"c"},"server_time":"2026-11-23T01:00:00Z"}"#,
            r#"{"type":"userevent","event":{"event_type":"call_started","call_id":"c","call_type":"a","reservation_sid":"r"}}"#,
            "[]",
            "",
        ] {
            assert!(ServerMessage::from_json(bad).is_err(), "{bad}");
            assert!(serde_json::from_str::<ServerMessage>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn capabilities_and_call_type_use_stream_names() {
        let caps =
            serde_json::to_string(&[Capability::ChangeMaxDuration, Capability::JoinCall]).unwrap();
        assert_eq!(caps, r#"["change-max-duration","join-call"]"#);
        let update: UpdateCallRequest = serde_json::from_str(
            r#"{"settings_override":{"limits":{"max_duration_seconds":5400}}}"#,
        )
        .unwrap();
        assert_eq!(
            update.settings_override.limits.max_duration_seconds,
            Some(5400)
        );
    }

    #[test]
    fn websocket_messages_follow_the_handshake_names() {
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"authrequest","token":"t"}"#).unwrap();
        assert_eq!(m, ClientMessage::AuthRequest { token: "t".into() });
        let m: ClientMessage = serde_json::from_str(r#"{"type":"startusereventrequest"}"#).unwrap();
        assert_eq!(m, ClientMessage::StartUserEventRequest);
        let out = serde_json::to_value(ServerMessage::AuthResponse {
            success: true,
            message: None,
        })
        .unwrap();
        assert_eq!(
            out,
            serde_json::json!({"type":"authresponse","success":true})
        );
    }

    #[test]
    fn end_reasons_have_one_name_each() {
        for r in CallEndReason::ALL {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            assert_eq!(serde_json::from_str::<CallEndReason>(&json).unwrap(), r);
            assert_eq!(CallEndReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(CallEndReason::parse("timer"), None);
        assert_eq!(
            CallEndReason::left(Role::Specialist),
            CallEndReason::SpecialistLeft
        );
        assert!(serde_json::from_str::<CallSession>(r#"{"ended_reason":"left"}"#).is_err());
    }

    #[test]
    fn webhook_envelope_parses() {
        let body = r#"{"event":{"event_type":"group_reservation_updated","payload":{"updated_group_reservation":
            {"reservation_sid":"abc","reservation_status":"GROUP_RESERVATION_STATUS_EXPIRED"}}}}"#;
        let env: WebhookEnvelope = serde_json::from_str(body).unwrap();
        assert_eq!(env.event.event_type, "group_reservation_updated");
        let p: GroupReservationUpdated = serde_json::from_value(env.event.payload).unwrap();
        assert_eq!(
            p.updated_group_reservation.reservation_status,
            ReservationStatus::Expired
        );
    }
}
