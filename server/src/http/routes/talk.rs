//! Talking beside the video: a call's chat transcript (its members only), the group's notice to
//! everyone waiting, and one line to one waiting customer. The chat itself travels on the call's
//! signal socket (`routes::signal`).

use axum::extract::{Path, State};
use callqueue_protocol::{
    ErrorBody, NoticeRequest, QueueNotice, Reservation, Role, notice_text, signal::ChatMessage,
};

use crate::{
    http::auth::Callers,
    http::error::{ApiError, ApiResult, Json},
    http::routes::{calls::member_call, check_id},
    state::AppState,
};

/// `GET /calls/{type}/{id}/chat`: the call's chat so far.
#[utoipa::path(get, path = "/api/calls/{type}/{id}/chat", tag = "calls", params(("type" = String, Path, description = "the call type: `appointment`"), ("id" = String, Path, description = "a call id")), responses((status = 200, body = Vec<ChatMessage>, description = "the messages in order (live ones come on the signal socket)"), (status = 400, description = "a malformed id", body = ErrorBody), (status = 404, description = "not the caller's call (only its two members read it), or deleted after the retention period", body = ErrorBody)))]
pub async fn chat(
    State(state): State<AppState>,
    Path((call_type, id)): Path<(String, String)>,
    callers: Callers,
) -> ApiResult<Json<Vec<ChatMessage>>> {
    member_call(&state, &callers, &call_type, &id).await?;
    Ok(Json(state.store.chat_after(&id, 0).await?))
}

/// Who may speak to a group's queue: its specialists, and admins.
fn speaks_for(callers: &Callers, group: &str) -> ApiResult<()> {
    check_id("group name", group)?;
    let agent = callers.require_agent()?;
    if agent.admin || (agent.role == Role::Specialist && agent.groups.iter().any(|g| g == group)) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "you do not serve the group {group:?}"
        )))
    }
}

fn text_of(req: &NoticeRequest) -> ApiResult<Option<String>> {
    notice_text(&req.text).map_err(ApiError::BadRequest)
}

/// `GET /groups/{group}/notice`.
#[utoipa::path(get, path = "/api/groups/{group}/notice", tag = "specialist", params(("group" = String, Path, description = "a queue group")), responses((status = 200, body = QueueNotice), (status = 401, description = "not signed in", body = ErrorBody), (status = 403, description = "not a specialist of the group", body = ErrorBody), (status = 404, description = "no such group", body = ErrorBody)))]
pub async fn notice(
    State(state): State<AppState>,
    Path(group): Path<String>,
    callers: Callers,
) -> ApiResult<Json<QueueNotice>> {
    speaks_for(&callers, &group)?;
    let notice = state
        .store
        .group_notice(&group)
        .ok_or_else(|| ApiError::not_found("the group"))?;
    Ok(Json(QueueNotice { notice }))
}

/// `PUT /groups/{group}/notice`: a word to everyone waiting in the group's queue, shown live on
/// their hold pages; empty text clears it.
#[utoipa::path(put, path = "/api/groups/{group}/notice", tag = "specialist", params(("group" = String, Path, description = "a queue group")), request_body = NoticeRequest, responses((status = 200, body = QueueNotice), (status = 400, description = "too long, or more than one line", body = ErrorBody), (status = 401, description = "not signed in", body = ErrorBody), (status = 403, description = "not a specialist of the group", body = ErrorBody), (status = 404, description = "no such group", body = ErrorBody)))]
pub async fn set_notice(
    State(state): State<AppState>,
    Path(group): Path<String>,
    callers: Callers,
    Json(req): Json<NoticeRequest>,
) -> ApiResult<Json<QueueNotice>> {
    speaks_for(&callers, &group)?;
    let notice = text_of(&req)?;
    state
        .store
        .set_group_notice(&group, notice.as_deref())
        .await?;
    Ok(Json(QueueNotice { notice }))
}

/// `POST /groups/{group}/reservations/{sid}/message`: one line to one waiting customer, shown
/// on their hold page only (replacing the last one; empty text takes it back).
#[utoipa::path(post, path = "/api/groups/{group}/reservations/{sid}/message", tag = "specialist", params(("group" = String, Path, description = "a queue group"), ("sid" = String, Path, description = "a waiting reservation")), request_body = NoticeRequest, responses((status = 200, body = Reservation, description = "the reservation as the specialist sees it, with the line"), (status = 400, description = "too long, or more than one line", body = ErrorBody), (status = 401, description = "not signed in", body = ErrorBody), (status = 403, description = "not a specialist of the group", body = ErrorBody), (status = 404, description = "no such reservation in the group", body = ErrorBody), (status = 409, description = "the customer is no longer waiting", body = ErrorBody)))]
pub async fn customer_line(
    State(state): State<AppState>,
    Path((group, sid)): Path<(String, String)>,
    callers: Callers,
    Json(req): Json<NoticeRequest>,
) -> ApiResult<Json<Reservation>> {
    speaks_for(&callers, &group)?;
    check_id("reservation id", &sid)?;
    let line = text_of(&req)?;
    let reservation = state
        .store
        .set_customer_line(&group, &sid, line.as_deref())
        .await?;
    Ok(Json(reservation))
}
