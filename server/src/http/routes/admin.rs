//! The admin API (`/api/admin/...`): accounts with the role `admin` manage specialists, groups
//! (settings and opening hours) and read the audit log. JSON only; anyone else gets 401 (not
//! signed in) or 403 (signed in without the role).

use axum::{
    extract::{FromRequestParts, Path, State},
    http::{StatusCode, request::Parts},
};
use callqueue_protocol::{
    ErrorBody,
    admin::{
        AdminGroup, AdminSpecialist, AuditEntry, GroupSettings, IssuedSecret, NewGroup,
        NewSpecialist,
    },
};
use chrono::Utc;

use crate::{
    http::auth::Callers,
    http::error::{ApiError, ApiResult, Json},
    http::routes::check_id,
    state::AppState,
    store::Agent,
};

/// The signed-in admin. As an extractor it runs before the body is read, so anyone else gets
/// 401 or 403 whatever they sent.
pub struct Admin(Agent);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let agent = Callers::from_request_parts(parts, state)
            .await?
            .agent
            .ok_or_else(|| ApiError::Unauthorized("sign in as an admin first".into()))?;
        if !agent.admin {
            return Err(ApiError::Forbidden("only admins may do this".into()));
        }
        Ok(Self(agent))
    }
}

fn group_view(name: String, settings: GroupSettings) -> AdminGroup {
    let opening = crate::hours::opening(&settings, Utc::now());
    AdminGroup {
        name,
        settings,
        open: opening.open,
        opens_at: opening.opens_at,
    }
}

/// Every specialist and admin account, with who is signed in and available now.
#[utoipa::path(get, path = "/api/admin/specialists", tag = "admin", responses((status = 200, body = Vec<AdminSpecialist>), (status = 401, description = "not signed in", body = ErrorBody), (status = 403, description = "not an admin", body = ErrorBody)))]
pub async fn specialists(
    State(state): State<AppState>,
    _: Admin,
) -> ApiResult<Json<Vec<AdminSpecialist>>> {
    Ok(Json(state.store.specialists().await?))
}

/// Adds an account; its secret is in the answer, once.
#[utoipa::path(post, path = "/api/admin/specialists", tag = "admin", request_body = NewSpecialist, responses((status = 201, body = IssuedSecret), (status = 400, description = "a malformed id, name or group", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, description = "the sign-in id is taken", body = ErrorBody)))]
pub async fn add_specialist(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(new): Json<NewSpecialist>,
) -> ApiResult<(StatusCode, Json<IssuedSecret>)> {
    check_id("sign-in id", &new.user_id)?;
    if new
        .display_name
        .as_deref()
        .is_some_and(|n| !callqueue_protocol::is_display_name(n))
    {
        return Err(ApiError::BadRequest(
            "a display name has 1 to 80 characters and no control characters".into(),
        ));
    }
    for group in &new.groups {
        check_id("group name", group)?;
        if !state.store.has_group(group) {
            return Err(ApiError::BadRequest(format!("there is no group {group:?}")));
        }
    }
    let issued = state.store.add_specialist(&admin.user_id, &new).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// Disables an account: it is signed out everywhere at once and cannot sign in.
#[utoipa::path(post, path = "/api/admin/specialists/{user_id}/disable", tag = "admin", params(("user_id" = String, Path)), responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "admins cannot disable themselves", body = ErrorBody)))]
pub async fn disable(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<String>,
) -> ApiResult<StatusCode> {
    check_id("sign-in id", &user_id)?;
    if admin.user_id == user_id {
        return Err(ApiError::Conflict(
            "you cannot disable your own account; ask another admin".into(),
        ));
    }
    state
        .store
        .set_disabled(&admin.user_id, &user_id, true)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enables a disabled account.
#[utoipa::path(post, path = "/api/admin/specialists/{user_id}/enable", tag = "admin", params(("user_id" = String, Path)), responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn enable(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<String>,
) -> ApiResult<StatusCode> {
    check_id("sign-in id", &user_id)?;
    state
        .store
        .set_disabled(&admin.user_id, &user_id, false)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret for an account, shown once; its sessions end.
#[utoipa::path(post, path = "/api/admin/specialists/{user_id}/reset-secret", tag = "admin", params(("user_id" = String, Path)), responses((status = 200, body = IssuedSecret), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn reset_secret(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<String>,
) -> ApiResult<Json<IssuedSecret>> {
    check_id("sign-in id", &user_id)?;
    Ok(Json(
        state.store.reset_secret(&admin.user_id, &user_id).await?,
    ))
}

/// Every group with its settings, and whether it is open now.
#[utoipa::path(get, path = "/api/admin/groups", tag = "admin", responses((status = 200, body = Vec<AdminGroup>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn groups(State(state): State<AppState>, _: Admin) -> ApiResult<Json<Vec<AdminGroup>>> {
    Ok(Json(
        state
            .store
            .groups_with_settings()
            .into_iter()
            .map(|(name, settings)| group_view(name, settings))
            .collect(),
    ))
}

/// Adds a group.
#[utoipa::path(post, path = "/api/admin/groups", tag = "admin", request_body = NewGroup, responses((status = 201, body = AdminGroup), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, description = "the group exists", body = ErrorBody)))]
pub async fn add_group(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(new): Json<NewGroup>,
) -> ApiResult<(StatusCode, Json<AdminGroup>)> {
    check_id("group name", &new.name)?;
    validate(&state, &new.settings)?;
    state
        .store
        .save_group(&admin.user_id, &new.name, &new.settings, true)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(group_view(new.name, new.settings)),
    ))
}

/// Changes a group's settings (the whole of them).
#[utoipa::path(put, path = "/api/admin/groups/{group}", tag = "admin", params(("group" = String, Path)), request_body = GroupSettings, responses((status = 200, body = AdminGroup), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_group(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(group): Path<String>,
    Json(settings): Json<GroupSettings>,
) -> ApiResult<Json<AdminGroup>> {
    check_id("group name", &group)?;
    validate(&state, &settings)?;
    state
        .store
        .save_group(&admin.user_id, &group, &settings, false)
        .await?;
    Ok(Json(group_view(group, settings)))
}

fn validate(state: &AppState, settings: &GroupSettings) -> ApiResult<()> {
    crate::hours::validate(settings, state.store.config().max_call_seconds)
        .map_err(ApiError::BadRequest)
}

/// The latest 200 admin actions, newest first.
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", responses((status = 200, body = Vec<AuditEntry>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn audit(State(state): State<AppState>, _: Admin) -> ApiResult<Json<Vec<AuditEntry>>> {
    Ok(Json(state.store.audit_log(200).await?))
}
