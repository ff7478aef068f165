//! The specialist's side: sign in and out, availability, the queue and its stream, accepting
//! customers, and the token for the per-user WebSocket channel.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
};
use axum_extra::extract::CookieJar;
use callqueue_protocol::ErrorBody;
use callqueue_protocol::{
    AcceptRequest, AcceptResponse, AgentSession, AvailabilityRequest, GroupDay, QueueEvent,
    QueueResponse, Role, SignInRequest, StreamToken,
};
use chrono::Utc;
use tokio::sync::broadcast::error::RecvError;

use crate::{
    http::auth::{
        AGENT_COOKIE, Callers, ClientInfo, removal_cookie, session_cookie, session_ended,
    },
    http::error::{ApiError, ApiResult, Json, optional_json},
    http::routes::check_id,
    http::sse,
    state::AppState,
    store::{AGENT_SESSION, Agent, StoreError},
    tokens,
};

fn session_view(state: &AppState, agent: &Agent) -> AgentSession {
    let (available, call) = state.store.agent_status(&agent.user_id);
    let (active_call_id, active_reservation_sid) = call.unzip();
    AgentSession {
        user_id: agent.user_id.clone(),
        admin: agent.admin,
        display_name: state.store.agent_display_name(&agent.user_id),
        role: agent.role,
        groups: agent.groups.clone(),
        available,
        active_call_id,
        active_reservation_sid,
        max_call_seconds: state.store.config().max_call_seconds,
        server_time: Utc::now(),
    }
}

/// When a day's figures start: `?since=<RFC 3339>`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct Since {
    /// The start of the period, e.g. the console's local midnight; at most a week back.
    pub since: Option<String>,
}

/// `GET /groups/{group}/today?since=...`: customers served since then and their median wait.
#[utoipa::path(get, path = "/api/groups/{group}/today", tag = "specialist", params(("group" = String, Path, description = "a queue group, e.g. `default`"), Since), responses((status = 200, body = GroupDay), (status = 401, description = "not signed in", body = ErrorBody), (status = 400, description = "a malformed id or time", body = ErrorBody)))]
pub async fn today(
    State(state): State<AppState>,
    Path(group): Path<String>,
    axum::extract::Query(Since { since }): axum::extract::Query<Since>,
    callers: Callers,
) -> ApiResult<Json<GroupDay>> {
    let agent = group_of(&callers, &group)?;
    let since = since.ok_or_else(|| ApiError::BadRequest("since: required".into()))?;
    let since = chrono::DateTime::parse_from_rfc3339(&since)
        .map_err(|e| ApiError::BadRequest(format!("since: not an RFC 3339 time ({e})")))?
        .with_timezone(&Utc);
    let now = Utc::now();
    if since > now || now - since > chrono::Duration::days(7) {
        return Err(ApiError::BadRequest(
            "since: a moment in the last seven days".into(),
        ));
    }
    let (served, median_wait_seconds) = state.store.served_since(&group, since).await?;
    let (ratings, rating_average) = state.store.ratings_since(&group, since).await?;
    let feedback = state
        .store
        .feedback_for(&agent.user_id, &group, since)
        .await?;
    Ok(Json(GroupDay {
        group_name: group,
        served,
        median_wait_seconds,
        ratings,
        rating_average,
        feedback,
        since,
        server_time: now,
    }))
}

/// `POST /agent/session`: signs in with the credentials `agent add` printed.
/// Attempts are limited per client address; a user id that keeps failing from one address waits
/// longer and longer there between attempts (429 with `Retry-After`), and one that fails very
/// often from anywhere is answered more slowly (never refused).
#[utoipa::path(post, path = "/api/agent/session", tag = "specialist", request_body = SignInRequest, responses((status = 200, body = AgentSession), (status = 401, description = "wrong user id or secret", body = ErrorBody), (status = 429, description = "too many attempts", body = ErrorBody)))]
pub async fn sign_in(
    State(state): State<AppState>,
    client: ClientInfo,
    jar: CookieJar,
    Json(req): Json<SignInRequest>,
) -> ApiResult<impl IntoResponse> {
    if req.user_id.is_empty() || req.secret.is_empty() {
        return Err(ApiError::BadRequest(
            "user_id and secret are required".into(),
        ));
    }
    let slow_down = state.limits.sign_in(client.ip, &req.user_id)?;
    if !slow_down.is_zero() {
        tokio::time::sleep(slow_down).await;
    }
    let result = state.store.sign_in(&req.user_id, &req.secret).await;
    match &result {
        Ok(_) => state.limits.signed_in(client.ip, &req.user_id, true),
        Err(StoreError::Unauthorized(_)) => state.limits.signed_in(client.ip, &req.user_id, false),
        Err(_) => {}
    }
    let (agent, token) = result?;
    let jar = jar.add(session_cookie(
        AGENT_COOKIE,
        &token,
        AGENT_SESSION.num_seconds(),
        client.https,
    ));
    Ok((jar, Json(session_view(&state, &agent))))
}

/// `GET /agent/session`: who is signed in; `null` when nobody is (not an error: the console
/// asks this on every load).
#[utoipa::path(get, path = "/api/agent/session", tag = "specialist", responses((status = 200, description = "the signed-in specialist, or `null`", body = Option<AgentSession>)))]
pub async fn current(
    State(state): State<AppState>,
    callers: Callers,
) -> Json<Option<AgentSession>> {
    Json(callers.agent.as_ref().map(|a| session_view(&state, a)))
}

/// `DELETE /agent/session`: signs out (and clears the cookie).
#[utoipa::path(delete, path = "/api/agent/session", tag = "specialist", responses((status = 204, description = "signed out")))]
pub async fn sign_out(
    State(state): State<AppState>,
    callers: Callers,
    client: ClientInfo,
    jar: CookieJar,
) -> ApiResult<impl IntoResponse> {
    if let Some(token) = &callers.agent_token {
        state.store.sign_out(token).await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        jar.add(removal_cookie(AGENT_COOKIE, client.https)),
    ))
}

/// `PUT /agent/availability`.
#[utoipa::path(put, path = "/api/agent/availability", tag = "specialist", request_body = AvailabilityRequest, responses((status = 200, body = AgentSession), (status = 401, description = "not signed in", body = ErrorBody)))]
pub async fn availability(
    State(state): State<AppState>,
    callers: Callers,
    Json(req): Json<AvailabilityRequest>,
) -> ApiResult<Json<AgentSession>> {
    let agent = callers.require_agent()?;
    state.store.set_available(agent, req.available).await?;
    Ok(Json(session_view(&state, agent)))
}

fn group_of<'a>(callers: &'a Callers, group: &str) -> ApiResult<&'a Agent> {
    check_id("group name", group)?;
    let agent = callers.require_agent()?;
    if agent.role != Role::Specialist || !agent.groups.iter().any(|g| g == group) {
        return Err(ApiError::Forbidden(format!(
            "you do not serve the group {group:?}"
        )));
    }
    Ok(agent)
}

/// `GET /groups/{group}/queue`.
#[utoipa::path(get, path = "/api/groups/{group}/queue", tag = "specialist", params(("group" = String, Path, description = "a queue group, e.g. `default`")), responses((status = 200, body = QueueResponse), (status = 401, description = "not signed in", body = ErrorBody), (status = 400, description = "a malformed id or body", body = ErrorBody), (status = 404, description = "no such thing, or not the caller's", body = ErrorBody)))]
pub async fn queue(
    State(state): State<AppState>,
    Path(group): Path<String>,
    callers: Callers,
) -> ApiResult<Json<QueueResponse>> {
    group_of(&callers, &group)?;
    let reservations = state
        .store
        .queue(&group)
        .ok_or_else(|| ApiError::not_found("the group"))?;
    Ok(Json(QueueResponse {
        available_specialists: state.store.available_specialists(&group),
        group_name: group,
        reservations,
        server_time: Utc::now(),
    }))
}

/// `GET /groups/{group}/events`: the queue stream. A `queue.snapshot` first on every connection
/// (which is also the replay), then `reservation.added` / `.updated` / `.removed` deltas with
/// the group's version as id. Positions in a delta are as of that event; a client keeps the list
/// in order and numbers it itself. A client too slow to keep up gets a fresh snapshot.
#[utoipa::path(get, path = "/api/groups/{group}/events", tag = "streams", params(("group" = String, Path, description = "a queue group, e.g. `default`")), responses((status = 200, content_type = "text/event-stream", body = QueueEvent, description = "Server-Sent Events `queue.snapshot`, `reservation.added`, `reservation.removed`; the id is the group's version"), (status = 401, description = "not signed in", body = ErrorBody), (status = 400, description = "a malformed id or body", body = ErrorBody), (status = 404, description = "no such thing, or not the caller's", body = ErrorBody)))]
pub async fn queue_events(
    State(state): State<AppState>,
    Path(group): Path<String>,
    callers: Callers,
) -> ApiResult<impl IntoResponse> {
    group_of(&callers, &group)?;
    let store = state.store.clone();
    let mut sub = store
        .subscribe_queue(&group)
        .ok_or_else(|| ApiError::not_found("the group"))?;
    // Customers' names and reasons stop with the session (a shared computer signed out).
    let session = tokens::hash(callers.agent_token.as_deref().unwrap_or_default());
    let mut ended = Box::pin(session_ended(store.clone(), session));
    let events = async_stream::stream! {
        loop {
            let mut version = sub.version;
            let snapshot = QueueEvent::Snapshot { group_name: group.clone(), reservations: sub.reservations, server_time: Utc::now() };
            yield sse::event(version, Some(snapshot.name()), &snapshot).retry(sse::RETRY);
            loop {
                let next = tokio::select! {
                    _ = &mut ended => return,
                    next = sub.events.recv() => next,
                };
                match next {
                    Ok((v, event)) if v > version => {
                        version = v;
                        yield sse::event(v, Some(event.name()), &event);
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                }
            }
            match store.subscribe_queue(&group) {
                Some(next) => sub = next,
                None => return,
            }
        }
    };
    Ok(sse::respond(
        events,
        state.store.config().heartbeat,
        state.shutdown.clone(),
    ))
}

/// `POST /groups/{group}/accept`: the next customer, or `{"reservation_sid"}`.
#[utoipa::path(post, path = "/api/groups/{group}/accept", tag = "specialist", params(("group" = String, Path, description = "a queue group, e.g. `default`")), request_body(content = Option<AcceptRequest>, description = "a chosen customer; optional"), responses((status = 200, body = AcceptResponse), (status = 409, description = "not available, in a call, or nobody waiting", body = ErrorBody), (status = 400, description = "a malformed id or body", body = ErrorBody), (status = 404, description = "no such thing, or not the caller's", body = ErrorBody)))]
pub async fn accept(
    State(state): State<AppState>,
    Path(group): Path<String>,
    callers: Callers,
    body: axum::body::Bytes,
) -> ApiResult<Json<AcceptResponse>> {
    let agent = group_of(&callers, &group)?;
    // The body is optional: empty means "the next customer".
    let wanted = optional_json::<AcceptRequest>(&body)?.reservation_sid;
    if let Some(sid) = &wanted {
        check_id("reservation id", sid)?;
    }
    let (reservation, call) = state.store.accept(agent, &group, wanted.as_deref()).await?;
    Ok(Json(AcceptResponse {
        reservation,
        call: state.store.call_response(&call, Role::Specialist),
    }))
}

/// `POST /agent/stream-token`: a one-minute, single-use token for `GET /ws`.
#[utoipa::path(post, path = "/api/agent/stream-token", tag = "specialist", responses((status = 200, body = StreamToken), (status = 401, description = "not signed in", body = ErrorBody)))]
pub async fn stream_token(
    State(state): State<AppState>,
    callers: Callers,
) -> ApiResult<Json<StreamToken>> {
    let agent = callers.require_agent()?;
    let session = callers.agent_token.as_deref().unwrap_or_default();
    let (token, expires_at) = state.store.stream_token(agent, session).await?;
    Ok(Json(StreamToken {
        token,
        expires_at,
        server_time: Utc::now(),
    }))
}
