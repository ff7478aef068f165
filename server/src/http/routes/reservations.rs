//! The customer's side of the queue: join, read, leave, and the reservation stream.

use std::{collections::HashMap, net::IpAddr, sync::Arc};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, sse::Event},
};
use axum_extra::extract::CookieJar;
use callqueue_protocol::ErrorBody;
use callqueue_protocol::{CreateReservationRequest, GroupStatus, Reservation, ReservationStatus};

use crate::{
    http::auth::{CUSTOMER_COOKIE, Callers, ClientInfo, session_cookie},
    http::error::{ApiError, ApiResult, Json, optional_json},
    http::routes::check_id,
    http::sse,
    state::AppState,
    store::{CUSTOMER_SESSION, CheckIn, ReservationChange, Store},
    tokens,
};

/// `GET /groups/{group}/status`: whether anyone is available and how long the queue is.
#[utoipa::path(get, path = "/api/groups/{group}/status", tag = "customer", params(("group" = String, Path, description = "a queue group, e.g. `default`")), responses((status = 200, body = GroupStatus), (status = 400, description = "a malformed id or body", body = ErrorBody), (status = 404, description = "no such thing, or not the caller's", body = ErrorBody)))]
pub async fn group_status(
    State(state): State<AppState>,
    Path(group): Path<String>,
) -> ApiResult<Json<GroupStatus>> {
    check_id("group name", &group)?;
    let queue_length = state
        .store
        .queue_length(&group)
        .ok_or_else(|| ApiError::not_found(&format!("the group {group:?}")))?;
    let now = chrono::Utc::now();
    let opening = state.store.opening(&group, now);
    Ok(Json(GroupStatus {
        available_specialists: state.store.available_specialists(&group),
        queue_length,
        name_required: state.store.require_name(&group),
        open: opening.open,
        opens_at: opening.opens_at,
        group_name: group,
        server_time: chrono::Utc::now(),
    }))
}

/// `POST /groups/{group}/reservations`: joins the queue, or returns the active reservation.
/// The body is optional; a body that is there must be a [`CreateReservationRequest`]. A browser
/// without a session may send `Idempotency-Key` (16 to 64 letters, digits, `-`, `_`; the app
/// sends one per join): requests with the same key within ten minutes are one join, answered
/// with the same reservation and session (a double-click, or a retry after a lost answer).
#[utoipa::path(post, path = "/api/groups/{group}/reservations", tag = "customer", params(("group" = String, Path, description = "a queue group, e.g. `default`")), request_body(content = Option<CreateReservationRequest>, description = "the check-in; optional"), responses((status = 201, description = "joined the queue", body = Reservation), (status = 200, description = "this browser's active reservation", body = Reservation), (status = 429, description = "too many joins from this address", body = ErrorBody), (status = 400, description = "a malformed id or body", body = ErrorBody), (status = 404, description = "no such thing, or not the caller's", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Path(group): Path<String>,
    callers: Callers,
    client: ClientInfo,
    jar: CookieJar,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<impl IntoResponse> {
    check_id("group name", &group)?;
    let request: CreateReservationRequest = optional_json(&body)?;
    state.limits.join(client.ip)?;
    if !state.store.has_group(&group) {
        return Err(ApiError::not_found(&format!("the group {group:?}")));
    }
    let (name, reason) = request
        .checked(state.store.require_name(&group))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // Outside opening hours nobody new joins; those with a place keep it.
    let closed = || {
        let opening = state.store.opening(&group, chrono::Utc::now());
        match opening {
            crate::hours::Opening { open: true, .. } => Ok(()),
            crate::hours::Opening { opens_at, .. } => Err(ApiError::Closed(match opens_at {
                Some(at) => format!("the queue is closed; it opens again at {}", at.to_rfc3339()),
                None => "the queue is closed".to_string(),
            })),
        }
    };
    let check_in = CheckIn { name, reason };
    let cookie = |token: &str| {
        session_cookie(
            CUSTOMER_COOKIE,
            token,
            CUSTOMER_SESSION.num_seconds(),
            client.https,
        )
    };
    if let (Some(id), Some(token)) = (&callers.customer, &callers.customer_token) {
        // A returning customer's session runs a day from now, in the database and cookie; a
        // second join is answered with their active reservation.
        state.store.touch_customer(id).await?;
        if !state.store.customer_has_active(id) {
            closed()?;
        }
        let (reservation, created) = state
            .store
            .create_reservation(&group, id, None, check_in)
            .await?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        return Ok((
            status,
            jar.add(cookie(token)),
            Json(reservation.for_customer()),
        ));
    }
    // A new customer. A browser that says which join this is (a double-click, or a retry after
    // an answer the network lost) gets the first request's customer and reservation for every
    // request of that join; without a key the join is its own.
    let cell = match idempotency_key(&headers) {
        Some(key) => state.joins.cell(client.ip, key),
        None => JoinCell::default(),
    };
    let mut first = false;
    let joined = cell
        .get_or_try_init(|| async {
            closed()?;
            first = true;
            let (customer, token) = Store::new_customer();
            let (reservation, _) = state
                .store
                .create_reservation(&group, &customer.id, Some(&customer), check_in)
                .await?;
            Ok::<_, ApiError>(Joined { token, reservation })
        })
        .await?;
    let (status, reservation) = if first {
        (StatusCode::CREATED, joined.reservation.clone())
    } else {
        // As it is now (it may have moved up, or been matched, since).
        let now = state
            .store
            .reservation(&joined.reservation.reservation_sid)
            .await?;
        let reservation = now.map_or_else(|| joined.reservation.clone(), |(r, _)| r);
        (StatusCode::OK, reservation)
    };
    Ok((
        status,
        jar.add(cookie(&joined.token)),
        Json(reservation.for_customer()),
    ))
}

/// How long a join's `Idempotency-Key` is remembered.
const JOIN_KEY_LIFE: std::time::Duration = std::time::Duration::from_secs(600);
/// Most join keys remembered at once (the join rate limit keeps far fewer in use).
const MAX_JOIN_KEYS: usize = 50_000;

/// What the first request of a join made: the new customer's cookie token and reservation.
#[derive(Clone)]
pub struct Joined {
    token: String,
    reservation: Reservation,
}

type JoinCell = Arc<tokio::sync::OnceCell<Joined>>;

/// Joins by `(client, Idempotency-Key)`, for [`JOIN_KEY_LIFE`]. Concurrent requests of one join
/// wait for the first (a `OnceCell`); one that failed leaves it empty for the next try. On one
/// node: a cluster's balancer sends a browser's requests to one node while it is up.
#[derive(Default)]
pub struct JoinKeys(std::sync::Mutex<HashMap<(IpAddr, String), (std::time::Instant, JoinCell)>>);

impl JoinKeys {
    fn cell(&self, client: IpAddr, key: String) -> JoinCell {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if map.len() >= MAX_JOIN_KEYS {
            map.retain(|_, (at, _)| now.duration_since(*at) < JOIN_KEY_LIFE);
            if map.len() >= MAX_JOIN_KEYS {
                // Still full of young keys: this join goes without one.
                return Arc::default();
            }
        }
        map.entry((client, key))
            .or_insert_with(|| (now, Arc::default()))
            .1
            .clone()
    }

    /// Forgets keys older than [`JOIN_KEY_LIFE`] (called by the sweeper).
    pub fn purge(&self) {
        let now = std::time::Instant::now();
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (at, _)| now.duration_since(*at) < JOIN_KEY_LIFE);
    }
}

/// A sane `Idempotency-Key` (letters, digits, `-`, `_`, at most 64), if the request has one.
fn idempotency_key(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| tokens::is_valid_id(k) && k.len() >= 16)
        .map(str::to_string)
}

/// The reservation if these callers may see it (else 404: we do not say it exists).
pub(crate) async fn visible(
    state: &AppState,
    callers: &Callers,
    group: &str,
    sid: &str,
) -> ApiResult<Reservation> {
    check_id("group name", group)?;
    check_id("reservation id", sid)?;
    match state.store.reservation(sid).await? {
        Some((r, customer))
            if r.group_name == group && callers.may_see_reservation(&customer, group) =>
        {
            // The check-in is for specialists' eyes.
            Ok(if callers.agent.is_some() {
                r
            } else {
                r.for_customer()
            })
        }
        _ => Err(ApiError::not_found("the reservation")),
    }
}

/// The callers as the customer alone: what only the customer who made a reservation may do.
fn customer_only(callers: Callers) -> Callers {
    Callers {
        agent: None,
        ..callers
    }
}

/// `GET /groups/{group}/reservations/{sid}`.
#[utoipa::path(get, path = "/api/groups/{group}/reservations/{sid}", tag = "customer", params(("group" = String, Path, description = "a queue group, e.g. `default`"), ("sid" = String, Path, description = "a reservation id")), responses((status = 200, body = Reservation), (status = 400, description = "a malformed id or body", body = ErrorBody), (status = 404, description = "no such thing, or not the caller's", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path((group, sid)): Path<(String, String)>,
    callers: Callers,
) -> ApiResult<Json<Reservation>> {
    visible(&state, &callers, &group, &sid).await.map(Json)
}

/// `DELETE /groups/{group}/reservations/{sid}`: leaves the queue (→ CANCELED). Only the
/// customer who made it may; leaving twice answers the same canceled reservation.
#[utoipa::path(delete, path = "/api/groups/{group}/reservations/{sid}", tag = "customer", params(("group" = String, Path, description = "a queue group, e.g. `default`"), ("sid" = String, Path, description = "a reservation id")), responses((status = 200, description = "now CANCELED (or as it already ended)", body = Reservation), (status = 400, description = "a malformed id or body", body = ErrorBody), (status = 404, description = "no such thing, or not the caller's", body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    Path((group, sid)): Path<(String, String)>,
    callers: Callers,
) -> ApiResult<Json<Reservation>> {
    let r = visible(&state, &customer_only(callers), &group, &sid).await?;
    if r.reservation_status.is_final() {
        return Ok(Json(r));
    }
    state
        .store
        .finish_reservation(&sid, ReservationStatus::Canceled)
        .await
        .map(|r| Json(r.for_customer()))
        .map_err(ApiError::from)
}

/// `POST /groups/{group}/reservations/{sid}/join-extension`: "I need a moment". A matched
/// customer's time to join grows by `--join-extension`, once; only the customer may ask.
/// 409 when it is not matched, already joined, already extended or already past.
#[utoipa::path(post, path = "/api/groups/{group}/reservations/{sid}/join-extension", tag = "customer", params(("group" = String, Path, description = "a queue group, e.g. `default`"), ("sid" = String, Path, description = "a reservation id")), responses((status = 200, body = Reservation), (status = 409, description = "not matched, already joined, already extended or past", body = ErrorBody), (status = 400, description = "a malformed id or body", body = ErrorBody), (status = 404, description = "no such thing, or not the caller's", body = ErrorBody)))]
pub async fn extend_join(
    State(state): State<AppState>,
    Path((group, sid)): Path<(String, String)>,
    callers: Callers,
) -> ApiResult<Json<Reservation>> {
    visible(&state, &customer_only(callers), &group, &sid).await?;
    state
        .store
        .extend_join(&sid)
        .await
        .map(|r| Json(r.for_customer()))
        .map_err(ApiError::from)
}

/// `GET /events/g/{group}/r/{sid}`: the reservation stream. Each event is the reservation JSON in
/// a default `message` event, with the group's version as its id. The first event of every
/// connection is a snapshot, which is also the replay: every event is the whole reservation, so
/// the newest one is all a reconnecting browser needs (`Last-Event-ID` is not read).
///
/// A connection whose first request is this stream is served by [`crate::edge`] instead, with
/// the same [`ReservationFeed`]; this handler serves it on a kept-alive connection.
#[utoipa::path(get, path = "/api/events/g/{group}/r/{sid}", tag = "streams", params(("group" = String, Path, description = "a queue group, e.g. `default`"), ("sid" = String, Path, description = "a reservation id")), responses((status = 200, content_type = "text/event-stream", body = Reservation, description = "Server-Sent Events: default `message` events, each the whole reservation (the first a snapshot); the id is the group's version"), (status = 400, description = "a malformed id or body", body = ErrorBody), (status = 404, description = "no such thing, or not the caller's", body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    Path((group, sid)): Path<(String, String)>,
    callers: Callers,
) -> ApiResult<impl IntoResponse> {
    let mut feed = ReservationFeed::open(&state, &callers, &group, &sid).await?;
    tracing::debug!(%sid, "reservation stream on a kept-alive connection: through the router");
    let events = async_stream::stream! {
        while let Some(e) = feed.next().await {
            let mut event = Event::default().id(e.id.to_string()).data(e.json);
            if e.first {
                event = event.retry(sse::RETRY);
            }
            yield event;
        }
    };
    Ok(sse::respond(
        events,
        state.store.config().heartbeat,
        state.shutdown.clone(),
    ))
}

/// One event of a reservation stream.
pub struct FeedEvent {
    /// The group's version when it was read: the SSE `id`.
    pub id: u64,
    /// The reservation as JSON: the SSE `data`.
    pub json: String,
    /// The connection's first event (the snapshot).
    pub first: bool,
}

/// What one reservation stream sends: the reservation now, then again each time it changes.
/// Waking costs a comparison when the group changed but this reservation did not; the state
/// is small on purpose, since tens of thousands of these sit idle at once.
pub struct ReservationFeed {
    store: Store,
    sid: String,
    versions: tokio::sync::watch::Receiver<u64>,
    /// The [`Reservation::state_digest`] of the last copy sent: 8 bytes where the copy itself
    /// took hundreds, in every idle stream.
    last: Option<u64>,
    /// Opened by the customer: the check-in is left out.
    for_customer: bool,
    /// A change was seen and not yet read (kept across a cancelled [`Self::next`]).
    stale: bool,
}

impl ReservationFeed {
    /// The feed of a reservation these callers may see (else the same 404 as reading it).
    pub async fn open(
        state: &AppState,
        callers: &Callers,
        group: &str,
        sid: &str,
    ) -> ApiResult<Self> {
        visible(state, callers, group, sid).await?;
        let versions = state
            .store
            .watch_group(group)
            .ok_or_else(|| ApiError::not_found("the group"))?;
        Ok(Self {
            store: state.store.clone(),
            sid: sid.to_string(),
            versions,
            last: None,
            for_customer: callers.agent.is_none(),
            stale: true,
        })
    }

    /// The next event to send; `None` once the reservation or its group is gone.
    pub async fn next(&mut self) -> Option<FeedEvent> {
        loop {
            if !self.stale {
                if self.versions.changed().await.is_err() {
                    return None;
                }
                self.stale = true;
            }
            let id = *self.versions.borrow_and_update();
            let change = self.store.reservation_change(&self.sid, self.last).await;
            self.stale = false;
            match change {
                Ok(ReservationChange::Same) => {}
                Ok(ReservationChange::Changed(r)) => {
                    let r = *r;
                    let json = if self.for_customer {
                        serde_json::to_string(&r.clone().for_customer())
                    } else {
                        serde_json::to_string(&r)
                    };
                    // Our wire types always serialize; an empty object rather than a panic.
                    let json = json.unwrap_or_else(|_| "{}".into());
                    let first = self.last.is_none();
                    self.last = Some(r.state_digest());
                    return Some(FeedEvent { id, json, first });
                }
                Ok(ReservationChange::Gone) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "reservation stream read failed");
                    // Nothing sent yet: end, and the browser reconnects after `retry`.
                    self.last?;
                }
            }
        }
    }
}
