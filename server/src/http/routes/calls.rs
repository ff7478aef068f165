//! Calls and their session timers: read, join, leave, extend, and the call stream.

use axum::{
    extract::{Path, State},
    response::IntoResponse,
};
use callqueue_protocol::ErrorBody;
use callqueue_protocol::{
    CALL_TYPE_APPOINTMENT, CallEvent, CallResponse, Capability, FEEDBACK_COMMENT_MAX_CHARS,
    FeedbackRequest, JoinCallRequest, Role, UpdateCallRequest,
};
use chrono::Utc;

use crate::{
    http::auth::Callers,
    http::error::{ApiError, ApiResult, Json, optional_json},
    http::routes::check_id,
    http::sse,
    state::AppState,
    store::{CallRow, Caller},
};

/// The call and the caller's role in it; 404 for anyone who is not a member.
pub(crate) async fn member_call(
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
#[utoipa::path(get, path = "/api/calls/{type}/{id}", tag = "calls", params(("type" = String, Path, description = "the call type: `appointment`"), ("id" = String, Path, description = "a call id")), responses((status = 200, body = CallResponse), (status = 400, description = "a malformed id or body", body = ErrorBody), (status = 404, description = "no such thing, or not the caller's", body = ErrorBody)))]
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
#[utoipa::path(post, path = "/api/calls/{type}/{id}/join", tag = "calls", params(("type" = String, Path, description = "the call type: `appointment`"), ("id" = String, Path, description = "a call id")), request_body(content = Option<JoinCallRequest>, description = "optional"), responses((status = 200, body = CallResponse), (status = 409, description = "the call has ended", body = ErrorBody), (status = 400, description = "a malformed id or body", body = ErrorBody), (status = 404, description = "no such thing, or not the caller's", body = ErrorBody)))]
pub async fn join(
    State(state): State<AppState>,
    Path((call_type, id)): Path<(String, String)>,
    callers: Callers,
    body: axum::body::Bytes,
) -> ApiResult<Json<CallResponse>> {
    let (_, role) = member_call(&state, &callers, &call_type, &id).await?;
    require(&state, role, Capability::JoinCall)?;
    let req: JoinCallRequest = optional_json(&body)?;
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
#[utoipa::path(post, path = "/api/calls/{type}/{id}/leave", tag = "calls", params(("type" = String, Path, description = "the call type: `appointment`"), ("id" = String, Path, description = "a call id")), responses((status = 200, body = CallResponse), (status = 409, description = "the call had already ended", body = ErrorBody), (status = 400, description = "a malformed id or body", body = ErrorBody), (status = 404, description = "no such thing, or not the caller's", body = ErrorBody)))]
pub async fn leave(
    State(state): State<AppState>,
    Path((call_type, id)): Path<(String, String)>,
    callers: Callers,
) -> ApiResult<Json<CallResponse>> {
    let (_, role) = member_call(&state, &callers, &call_type, &id).await?;
    let call = state.store.leave_call(&id, role).await?;
    Ok(Json(state.store.call_response(&call, role)))
}

/// `POST /calls/{type}/{id}/feedback`: the customer rates the call once it has ended (1–5, and
/// a comment up to 500 characters). Once per call.
#[utoipa::path(post, path = "/api/calls/{type}/{id}/feedback", tag = "calls", params(("type" = String, Path, description = "the call type: `appointment`"), ("id" = String, Path, description = "a call id")), request_body = FeedbackRequest, responses((status = 204, description = "stored"), (status = 400, description = "a rating outside 1–5, a comment too long, a malformed body", body = ErrorBody), (status = 404, description = "not the caller's call (only its customer rates it)", body = ErrorBody), (status = 409, description = "the call has not ended, or was rated already", body = ErrorBody)))]
pub async fn feedback(
    State(state): State<AppState>,
    Path((call_type, id)): Path<(String, String)>,
    callers: Callers,
    Json(req): Json<FeedbackRequest>,
) -> ApiResult<axum::http::StatusCode> {
    check_id("call type", &call_type)?;
    check_id("call id", &id)?;
    let customer = callers
        .customer
        .as_deref()
        .ok_or_else(|| ApiError::not_found("the call"))?;
    if !(1..=5).contains(&req.rating) {
        return Err(ApiError::BadRequest("rating: from 1 to 5".into()));
    }
    let comment = req
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    if comment.is_some_and(|c| !callqueue_protocol::is_plain_text(c, FEEDBACK_COMMENT_MAX_CHARS)) {
        return Err(ApiError::BadRequest(format!(
            "comment: at most {FEEDBACK_COMMENT_MAX_CHARS} characters, no control characters"
        )));
    }
    state
        .store
        .submit_feedback(&id, customer, req.rating, comment)
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `PATCH /calls/{type}/{id}`: `settings_override.limits.max_duration_seconds`, for holders of
/// `change-max-duration` only (checked here, not just hidden in the page).
#[utoipa::path(patch, path = "/api/calls/{type}/{id}", tag = "calls", params(("type" = String, Path, description = "the call type: `appointment`"), ("id" = String, Path, description = "a call id")), request_body = UpdateCallRequest, responses((status = 200, body = CallResponse), (status = 403, description = "the caller may not change the session length", body = ErrorBody), (status = 422, description = "a length that would already be over", body = ErrorBody), (status = 400, description = "a malformed id or body", body = ErrorBody), (status = 404, description = "no such thing, or not the caller's", body = ErrorBody)))]
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
#[utoipa::path(get, path = "/api/calls/{type}/{id}/events", tag = "streams", params(("type" = String, Path, description = "the call type: `appointment`"), ("id" = String, Path, description = "a call id")), responses((status = 200, content_type = "text/event-stream", body = CallEvent, description = "Server-Sent Events `call.updated` (first, a snapshot), `call.session_started`, `call.ended`; the id is the call's version"), (status = 400, description = "a malformed id or body", body = ErrorBody), (status = 404, description = "no such thing, or not the caller's", body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    Path((call_type, id)): Path<(String, String)>,
    callers: Callers,
) -> ApiResult<impl IntoResponse> {
    check_id("call id", &id)?;
    // Who asks, first: a stranger's request costs one read, never a reconcile.
    member_call(&state, &callers, &call_type, &id).await?;
    // Subscribe, then read again: a change between the two is then still seen, and a call that
    // ends between them is read as ended (its subscription says so too).
    let mut notes = state.store.watch_call_fresh(&id).await?;
    #[cfg(test)]
    tests::between_subscribe_and_read().await;
    let (call, _) = member_call(&state, &callers, &call_type, &id).await?;
    let store = state.store.clone();
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
            if current.ended_at.is_some() {
                break;
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

#[cfg(test)]
mod tests {
    use std::{sync::Mutex, time::Duration};

    use callqueue_protocol::CallEndReason;
    use tokio::sync::oneshot;

    use crate::{app::Server, config::Config};

    /// Set by a test: the handler says it got between subscribing and reading, then waits.
    static HOOK: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>> = Mutex::new(None);

    pub(super) async fn between_subscribe_and_read() {
        let hook = HOOK.lock().unwrap().take();
        if let Some((reached, resume)) = hook {
            let _ = reached.send(());
            let _ = resume.await;
        }
    }

    /// The call ends between the stream's subscription and its first read: the stream still
    /// says `call.ended` (before the fix it sent a stale snapshot and then waited forever).
    #[tokio::test]
    async fn a_call_that_ends_while_its_stream_opens_is_reported_ended() {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::bind(Config::for_tests(dir.path().join("db.sqlite3")))
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr());
        let store = server.state.store.clone();
        let shutdown = server.state.shutdown.clone();
        let running = tokio::spawn(server.run());
        crate::store::Store::add_agent(
            store.db(),
            "dr",
            callqueue_protocol::Role::Specialist,
            &["default".to_string()],
            "pw",
        )
        .await
        .unwrap();
        let client = || {
            reqwest::Client::builder()
                .cookie_store(true)
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap()
        };
        let (dr, customer) = (client(), client());
        let post = |c: &reqwest::Client, path: &str, body: serde_json::Value| {
            c.post(format!("{base}{path}")).json(&body).send()
        };
        assert!(
            post(
                &dr,
                "/api/agent/session",
                serde_json::json!({"user_id":"dr","secret":"pw"})
            )
            .await
            .unwrap()
            .status()
            .is_success()
        );
        dr.put(format!("{base}/api/agent/availability"))
            .json(&serde_json::json!({"available": true}))
            .send()
            .await
            .unwrap();
        post(
            &customer,
            "/api/groups/default/reservations",
            serde_json::json!({}),
        )
        .await
        .unwrap();
        let accepted: serde_json::Value =
            post(&dr, "/api/groups/default/accept", serde_json::json!({}))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        let call_id = accepted["call"]["call"]["id"].as_str().unwrap().to_string();

        let (reached_tx, reached) = oneshot::channel();
        let (resume, resume_rx) = oneshot::channel();
        *HOOK.lock().unwrap() = Some((reached_tx, resume_rx));
        let url = format!("{base}/api/calls/appointment/{call_id}/events");
        let stream = tokio::spawn({
            let customer = customer.clone();
            async move { customer.get(url).send().await.unwrap() }
        });
        tokio::time::timeout(Duration::from_secs(5), reached)
            .await
            .unwrap()
            .unwrap();
        store
            .end_call(&call_id, CallEndReason::TimeUp)
            .await
            .unwrap();
        resume.send(()).unwrap();

        let mut response = stream.await.unwrap();
        let mut seen = String::new();
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(chunk) = response.chunk().await.unwrap() {
                seen.push_str(&String::from_utf8_lossy(&chunk));
                if seen.contains("event: call.ended") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(ended, Ok(true), "stream said: {seen}");
        assert!(seen.contains("\"ended_reason\":\"time_up\""), "{seen}");
        shutdown.cancel();
        let _ = running.await;
    }
}
