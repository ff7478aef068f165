//! The customer's side of the queue: join, read, leave, and the reservation stream.

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use axum_extra::extract::CookieJar;
use callqueue_protocol::{GroupStatus, Reservation, ReservationStatus};

use crate::{
    app::AppState,
    auth::{CUSTOMER_COOKIE, Callers, session_cookie},
    error::{ApiError, ApiResult, Json},
    routes::check_id,
    sse,
    store::Store,
};

/// `GET /groups/{group}/status`: whether anyone is available and how long the queue is.
pub async fn group_status(
    State(state): State<AppState>,
    Path(group): Path<String>,
) -> ApiResult<Json<GroupStatus>> {
    check_id("group name", &group)?;
    let queue = state
        .store
        .queue(&group)
        .ok_or_else(|| ApiError::not_found(&format!("the group {group:?}")))?;
    Ok(Json(GroupStatus {
        available_specialists: state.store.available_specialists(&group),
        queue_length: queue.len() as u32,
        group_name: group,
        server_time: chrono::Utc::now(),
    }))
}

/// A customer's session lasts a day: long enough to come back to a reservation.
const CUSTOMER_SESSION_SECS: i64 = 24 * 3600;

/// `POST /groups/{group}/reservations`: joins the queue, or returns the active reservation.
pub async fn create(
    State(state): State<AppState>,
    Path(group): Path<String>,
    callers: Callers,
    jar: CookieJar,
) -> ApiResult<impl IntoResponse> {
    check_id("group name", &group)?;
    if !state.store.has_group(&group) {
        return Err(ApiError::not_found(&format!("the group {group:?}")));
    }
    let (customer, new_customer, jar) = match callers.customer {
        Some(id) => (id, None, jar),
        None => {
            let (customer, token) = Store::new_customer();
            let jar = jar.add(session_cookie(
                CUSTOMER_COOKIE,
                &token,
                CUSTOMER_SESSION_SECS,
            ));
            (customer.id.clone(), Some(customer), jar)
        }
    };
    let (reservation, created) = state
        .store
        .create_reservation(&group, &customer, new_customer.as_ref())
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, jar, Json(reservation)))
}

/// The reservation if these callers may see it (else 404: we do not say it exists).
async fn visible(
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
            Ok(r)
        }
        _ => Err(ApiError::not_found("the reservation")),
    }
}

/// `GET /groups/{group}/reservations/{sid}`.
pub async fn get(
    State(state): State<AppState>,
    Path((group, sid)): Path<(String, String)>,
    callers: Callers,
) -> ApiResult<Json<Reservation>> {
    visible(&state, &callers, &group, &sid).await.map(Json)
}

/// `DELETE /groups/{group}/reservations/{sid}`: leaves the queue (→ CANCELED). Only the
/// customer who made it may; leaving twice answers the same canceled reservation.
pub async fn cancel(
    State(state): State<AppState>,
    Path((group, sid)): Path<(String, String)>,
    callers: Callers,
) -> ApiResult<Json<Reservation>> {
    let customer_only = Callers {
        agent: None,
        ..callers
    };
    let r = visible(&state, &customer_only, &group, &sid).await?;
    if r.reservation_status.is_final() {
        return Ok(Json(r));
    }
    state
        .store
        .finish_reservation(&sid, ReservationStatus::Canceled)
        .await
        .map(Json)
}

/// `GET /events/g/{group}/r/{sid}`: the reservation stream. Each event is the reservation JSON in
/// a default `message` event, with the group's version as its id. The first event of every
/// connection is a snapshot, which is also the replay: every event is the whole reservation, so
/// the newest one is all a reconnecting browser needs, whatever `Last-Event-ID` it sends.
pub async fn events(
    State(state): State<AppState>,
    Path((group, sid)): Path<(String, String)>,
    callers: Callers,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> ApiResult<impl IntoResponse> {
    visible(&state, &callers, &group, &sid).await?;
    let mut versions = state
        .store
        .watch_group(&group)
        .ok_or_else(|| ApiError::not_found("the group"))?;
    let store = state.store.clone();
    let resumed_from = sse::last_event_id(&headers, uri.query());
    let events = async_stream::stream! {
        // What was last sent, less its clock: only a change of the reservation is sent again.
        let mut last: Option<Reservation> = None;
        let mut first = true;
        loop {
            let version = *versions.borrow_and_update();
            match store.reservation(&sid).await {
                Ok(Some((r, _))) => {
                    let key = Reservation { server_time: chrono::DateTime::<chrono::Utc>::MIN_UTC, ..r.clone() };
                    if first || last.as_ref() != Some(&key) {
                        let mut event = sse::event(version, None, &r);
                        if first {
                            event = event.retry(sse::RETRY);
                            if let Some(from) = resumed_from {
                                tracing::debug!(%sid, from, version, "reservation stream resumed");
                            }
                        }
                        yield event;
                        first = false;
                        last = Some(key);
                    }
                }
                Ok(None) => break,
                Err(e) => tracing::warn!(error = %e, "reservation stream read failed"),
            }
            if versions.changed().await.is_err() {
                break;
            }
        }
    };
    Ok(sse::respond(
        events,
        state.store.config().heartbeat,
        state.shutdown.clone(),
    ))
}
