//! Calls and their session timers: read, join, leave, extend, and the call stream.

use axum::{
    extract::{Path, State},
    response::IntoResponse,
};
use callqueue_protocol::{
    CALL_TYPE_APPOINTMENT, CallEvent, CallResponse, Capability, JoinCallRequest, Role,
    UpdateCallRequest,
};
use chrono::Utc;

use crate::{
    app::AppState,
    auth::Callers,
    error::{ApiError, ApiResult, Json},
    routes::check_id,
    sse,
    store::{CallRow, Caller},
};

/// The call and the caller's role in it; 404 for anyone who is not a member.
async fn member_call(
    state: &AppState,
    callers: &Callers,
    call_type: &str,
    id: &str,
) -> ApiResult<(CallRow, Role)> {
    check_id("call type", call_type)?;
    check_id("call id", id)?;
    if call_type != CALL_TYPE_APPOINTMENT {
        return Err(ApiError::not_found(&format!("the call type {call_type:?}")));
    }
    let call = state
        .store
        .call(id)
        .await?
        .filter(|c| c.call_type == call_type)
        .ok_or_else(|| ApiError::not_found("the call"))?;
    let as_agent = callers
        .agent
        .clone()
        .and_then(|a| call.role_of(&Caller::Agent(a)));
    let as_customer = callers
        .customer
        .clone()
        .and_then(|c| call.role_of(&Caller::Customer(c)));
    let role = as_agent
        .or(as_customer)
        .ok_or_else(|| ApiError::not_found("the call"))?;
    Ok((call, role))
}

fn require(state: &AppState, role: Role, capability: Capability) -> ApiResult<()> {
    if state
        .store
        .config()
        .capabilities(role)
        .contains(&capability)
    {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "the {} role may not {}",
            role.as_str(),
            match capability {
                Capability::ChangeMaxDuration => "change the session length",
                Capability::JoinCall => "join this call",
                _ => capability.as_str(),
            }
        )))
    }
}

/// `GET /calls/{type}/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Path((call_type, id)): Path<(String, String)>,
    callers: Callers,
) -> ApiResult<Json<CallResponse>> {
    let (call, role) = member_call(&state, &callers, &call_type, &id).await?;
    Ok(Json(state.store.call_response(&call, role)))
}

/// `POST /calls/{type}/{id}/join`: the first join starts the session. A holder of
/// `change-max-duration` may set the length with `settings_override`.
pub async fn join(
    State(state): State<AppState>,
    Path((call_type, id)): Path<(String, String)>,
    callers: Callers,
    body: axum::body::Bytes,
) -> ApiResult<Json<CallResponse>> {
    let (_, role) = member_call(&state, &callers, &call_type, &id).await?;
    require(&state, role, Capability::JoinCall)?;
    let req: JoinCallRequest = if body.iter().all(u8::is_ascii_whitespace) {
        JoinCallRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let duration = req
        .settings_override
        .and_then(|s| s.limits.max_duration_seconds);
    if duration.is_some() {
        require(&state, role, Capability::ChangeMaxDuration)?;
    }
    let call = state.store.join_call(&id, role, duration).await?;
    Ok(Json(state.store.call_response(&call, role)))
}

/// `POST /calls/{type}/{id}/leave`.
pub async fn leave(
    State(state): State<AppState>,
    Path((call_type, id)): Path<(String, String)>,
    callers: Callers,
) -> ApiResult<Json<CallResponse>> {
    let (_, role) = member_call(&state, &callers, &call_type, &id).await?;
    let call = state.store.leave_call(&id, role).await?;
    Ok(Json(state.store.call_response(&call, role)))
}

/// `PATCH /calls/{type}/{id}`: `settings_override.limits.max_duration_seconds`, for holders of
/// `change-max-duration` only (checked here, not just hidden in the page).
pub async fn update(
    State(state): State<AppState>,
    Path((call_type, id)): Path<(String, String)>,
    callers: Callers,
    Json(req): Json<UpdateCallRequest>,
) -> ApiResult<Json<CallResponse>> {
    let (_, role) = member_call(&state, &callers, &call_type, &id).await?;
    let Some(secs) = req.settings_override.limits.max_duration_seconds else {
        return Err(ApiError::BadRequest(
            "settings_override.limits.max_duration_seconds is required".into(),
        ));
    };
    require(&state, role, Capability::ChangeMaxDuration)?;
    let call = state.store.extend_call(&id, secs).await?;
    Ok(Json(state.store.call_response(&call, role)))
}

/// `GET /calls/{type}/{id}/events`: `call.session_started`, `call.updated` (a new
/// `timer_ends_at`), `call.ended`, each with the whole call; the call's version is the id. The
/// first event of every connection is the call as it is now (`call.updated`, or `call.ended`).
pub async fn events(
    State(state): State<AppState>,
    Path((call_type, id)): Path<(String, String)>,
    callers: Callers,
) -> ApiResult<impl IntoResponse> {
    let (call, _) = member_call(&state, &callers, &call_type, &id).await?;
    let store = state.store.clone();
    let mut notes = store.watch_call(&id);
    let events = async_stream::stream! {
        let mut sent = 0u64;
        let mut current = call;
        let mut kind = current.snapshot_event();
        let mut first = true;
        loop {
            if first || current.version > sent {
                let event = CallEvent { event_type: kind, call: current.to_call(), server_time: Utc::now() };
                let mut e = sse::event(current.version, Some(kind.as_str()), &event);
                if first {
                    e = e.retry(sse::RETRY);
                }
                yield e;
                sent = current.version;
                first = false;
            }
            let Some(rx) = notes.as_mut() else { break };
            if rx.changed().await.is_err() {
                // The call has ended and its sender is gone: send the final state if unseen.
                notes = None;
            } else {
                kind = rx.borrow_and_update().event;
            }
            match store.call(&id).await {
                Ok(Some(c)) => {
                    if notes.is_none() {
                        kind = c.snapshot_event();
                    }
                    current = c;
                }
                Ok(None) => break,
                Err(e) => tracing::warn!(error = %e, "call stream read failed"),
            }
        }
        // Nothing more will happen to this call; keep the connection (heartbeats only) so the
        // browser does not reconnect in a loop.
        futures_util::future::pending::<()>().await;
    };
    Ok(sse::respond(
        events,
        state.store.config().heartbeat,
        state.shutdown.clone(),
    ))
}
