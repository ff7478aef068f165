//! The server's REST API, as the app calls it. Every type comes from `callqueue-protocol`.

use std::fmt;

use callqueue_protocol::{
    AcceptRequest, AcceptResponse, AgentSession, AvailabilityRequest, CallResponse,
    CreateReservationRequest, ErrorBody, GroupDay, GroupStatus, JoinCallRequest, LimitsOverride,
    QueueResponse, Reservation, SettingsOverride, SignInRequest, StreamToken, UpdateCallRequest,
};
use gloo_net::http::{Request, RequestBuilder, Response};
use serde::{Serialize, de::DeserializeOwned};

use crate::i18n::{t, tf};

/// The API base: `/api` on the same origin unless set at build time (`CALLQUEUE_ENDPOINT`).
pub const ENDPOINT: &str = match option_env!("CALLQUEUE_ENDPOINT") {
    Some(endpoint) => endpoint,
    None => "/api",
};

/// The queue group customers join (`CALLQUEUE_GROUP` at build time).
pub const GROUP: &str = match option_env!("CALLQUEUE_GROUP") {
    Some(group) => group,
    None => callqueue_protocol::DEFAULT_GROUP,
};

/// Why a request failed, in words a person can act on.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// The server could not be reached.
    Network,
    /// The server answered with an error.
    Server { status: u16, message: String },
    /// The server answered something we cannot read.
    Malformed(String),
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Server { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Network => f.write_str(t("error.network")),
            Self::Server { message, .. } => f.write_str(message),
            Self::Malformed(_) => f.write_str(t("error.malformed")),
        }
    }
}

pub fn url(path: &str) -> String {
    format!("{ENDPOINT}{path}")
}

pub async fn read<T: DeserializeOwned>(resp: Response) -> Result<T, ApiError> {
    if resp.ok() {
        return resp
            .json::<T>()
            .await
            .map_err(|e| ApiError::Malformed(e.to_string()));
    }
    let status = resp.status();
    let message = match resp.json::<ErrorBody>().await {
        Ok(body) => body.error.message,
        Err(_) => tf("error.status", &[("status", &status.to_string())]),
    };
    Err(ApiError::Server { status, message })
}

/// The answer to a request that expects no body (204): done, or the server's error.
pub async fn no_content(sent: Result<Response, gloo_net::Error>) -> Result<(), ApiError> {
    let resp = sent.map_err(|_| ApiError::Network)?;
    if resp.ok() {
        Ok(())
    } else {
        read::<()>(resp).await
    }
}

pub async fn send<T: DeserializeOwned>(req: RequestBuilder) -> Result<T, ApiError> {
    let resp = req.send().await.map_err(|_| ApiError::Network)?;
    read(resp).await
}

pub async fn send_json<B: Serialize, T: DeserializeOwned>(
    req: RequestBuilder,
    body: &B,
) -> Result<T, ApiError> {
    let req = req
        .json(body)
        .map_err(|e| ApiError::Malformed(e.to_string()))?;
    let resp = req.send().await.map_err(|_| ApiError::Network)?;
    read(resp).await
}

/// A POST without a body. It still says it is JSON: the server takes state changes only so
/// (an HTML form cannot send that, so another site cannot post as our user).
pub fn post(path: &str) -> RequestBuilder {
    Request::post(path).header("content-type", "application/json")
}

/// A WebSocket address under the API base, on the page's own origin unless the base names
/// another.
pub fn ws_url(path: &str) -> String {
    let endpoint = url(path);
    if let Some(rest) = endpoint.strip_prefix("https://") {
        return format!("wss://{rest}");
    }
    if let Some(rest) = endpoint.strip_prefix("http://") {
        return format!("ws://{rest}");
    }
    let location = web_sys::window().map(|w| w.location());
    let secure = location
        .as_ref()
        .and_then(|l| l.protocol().ok())
        .is_some_and(|p| p == "https:");
    let host = location.and_then(|l| l.host().ok()).unwrap_or_default();
    format!("{}://{host}{endpoint}", if secure { "wss" } else { "ws" })
}

/// The call's signal socket.
pub fn signal_url(call_type: &str, id: &str) -> String {
    ws_url(&format!("/calls/{call_type}/{id}/signal"))
}

fn reservation_path(group: &str, sid: &str) -> String {
    url(&format!("/groups/{group}/reservations/{sid}"))
}

/// The reservation stream's address.
pub fn reservation_events_url(group: &str, sid: &str) -> String {
    url(&format!("/events/g/{group}/r/{sid}"))
}

pub fn call_events_url(call_type: &str, id: &str) -> String {
    url(&format!("/calls/{call_type}/{id}/events"))
}

pub fn queue_events_url(group: &str) -> String {
    url(&format!("/groups/{group}/events"))
}

pub async fn group_status(group: &str) -> Result<GroupStatus, ApiError> {
    send(Request::get(&url(&format!("/groups/{group}/status")))).await
}

/// Joins the queue with a check-in (both of its fields may be empty).
/// Joins the queue. `join_key` names this join (see [`join_key`]): the server answers every
/// request with the same key as the first, so a retry after a lost answer is not a second
/// place in the queue.
pub async fn create_reservation(
    group: &str,
    check_in: &CreateReservationRequest,
    join_key: &str,
) -> Result<Reservation, ApiError> {
    send_json(
        post(&url(&format!("/groups/{group}/reservations"))).header("idempotency-key", join_key),
        check_in,
    )
    .await
}

/// A new key for one join (`Idempotency-Key`): 32 hex digits. Unique is all it must be (the
/// server keeps keys per client address), so `Math.random` does.
pub fn join_key() -> String {
    let part = || (js_sys::Math::random() * 2f64.powi(52)) as u64;
    format!("{:013x}{:013x}{:06x}", part(), part(), part() & 0xff_ffff)
}

/// "I need a moment": more time to join the call, once.
pub async fn extend_join(group: &str, sid: &str) -> Result<Reservation, ApiError> {
    send(post(&format!(
        "{}/join-extension",
        reservation_path(group, sid)
    )))
    .await
}

pub async fn reservation(group: &str, sid: &str) -> Result<Reservation, ApiError> {
    send(Request::get(&reservation_path(group, sid))).await
}

pub async fn cancel_reservation(group: &str, sid: &str) -> Result<Reservation, ApiError> {
    send(Request::delete(&reservation_path(group, sid))).await
}

fn call_path(call_type: &str, id: &str) -> String {
    url(&format!("/calls/{call_type}/{id}"))
}

/// A call's chat so far (`None` when it cannot be read): parsed by the browser and read like
/// the signal socket's `chat` messages.
pub async fn transcript(call_type: &str, id: &str) -> Option<Vec<crate::logic::chat::ChatLine>> {
    let resp = Request::get(&format!("{}/chat", call_path(call_type, id)))
        .send()
        .await
        .ok()
        .filter(Response::ok)?;
    let list = js_sys::JSON::parse(&resp.text().await.ok()?).ok()?;
    crate::call::signal::chat_lines(&list)
}

pub async fn call(call_type: &str, id: &str) -> Result<CallResponse, ApiError> {
    send(Request::get(&call_path(call_type, id))).await
}

/// Joins a call; `max_duration_seconds` sets the session length (specialists only).
pub async fn join_call(
    call_type: &str,
    id: &str,
    max_duration_seconds: Option<u32>,
) -> Result<CallResponse, ApiError> {
    let path = format!("{}/join", call_path(call_type, id));
    let body = JoinCallRequest {
        settings_override: max_duration_seconds.map(|secs| SettingsOverride {
            limits: LimitsOverride {
                max_duration_seconds: Some(secs),
            },
        }),
    };
    send_json(Request::post(&path), &body).await
}

pub async fn leave_call(call_type: &str, id: &str) -> Result<CallResponse, ApiError> {
    send(post(&format!("{}/leave", call_path(call_type, id)))).await
}

/// The customer's rating of an ended call (204: stored).
pub async fn send_feedback(
    call_type: &str,
    id: &str,
    rating: u8,
    comment: Option<String>,
) -> Result<(), ApiError> {
    let body = callqueue_protocol::FeedbackRequest { rating, comment };
    let req = post(&format!("{}/feedback", call_path(call_type, id)))
        .json(&body)
        .map_err(|e| ApiError::Malformed(e.to_string()))?;
    no_content(req.send().await).await
}

/// Sets the session length (the extend button sends the current length plus its step).
pub async fn set_max_duration(
    call_type: &str,
    id: &str,
    max_duration_seconds: u32,
) -> Result<CallResponse, ApiError> {
    let body = UpdateCallRequest {
        settings_override: SettingsOverride {
            limits: LimitsOverride {
                max_duration_seconds: Some(max_duration_seconds),
            },
        },
    };
    send_json(Request::patch(&call_path(call_type, id)), &body).await
}

pub async fn sign_in(user_id: &str, secret: &str) -> Result<AgentSession, ApiError> {
    let body = SignInRequest {
        user_id: user_id.to_string(),
        secret: secret.to_string(),
    };
    send_json(Request::post(&url("/agent/session")), &body).await
}

/// The signed-in specialist, or `None`.
pub async fn agent_session() -> Result<Option<AgentSession>, ApiError> {
    send(Request::get(&url("/agent/session"))).await
}

pub async fn sign_out() -> Result<(), ApiError> {
    no_content(Request::delete(&url("/agent/session")).send().await).await
}

pub async fn set_available(available: bool) -> Result<AgentSession, ApiError> {
    send_json(
        Request::put(&url("/agent/availability")),
        &AvailabilityRequest { available },
    )
    .await
}

/// A group's figures since `since` (RFC 3339).
pub async fn today(group: &str, since: &str) -> Result<GroupDay, ApiError> {
    let since: String = js_sys::encode_uri_component(since).into();
    send(Request::get(&url(&format!(
        "/groups/{group}/today?since={since}"
    ))))
    .await
}

pub async fn queue(group: &str) -> Result<QueueResponse, ApiError> {
    send(Request::get(&url(&format!("/groups/{group}/queue")))).await
}

pub async fn accept(group: &str, sid: Option<String>) -> Result<AcceptResponse, ApiError> {
    let body = AcceptRequest {
        reservation_sid: sid,
    };
    send_json(
        Request::post(&url(&format!("/groups/{group}/accept"))),
        &body,
    )
    .await
}

pub async fn stream_token() -> Result<StreamToken, ApiError> {
    send(post(&url("/agent/stream-token"))).await
}
