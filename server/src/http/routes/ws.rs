//! `GET /ws`: the per-user event channel for signed-in specialists.
//!
//! The handshake of a classic real-time API: the client sends `authrequest` with a token from
//! `POST /agent/stream-token`, waits for `authresponse`, sends `startusereventrequest`, gets
//! `startusereventresponse`, and from then on receives `userevent` messages. Anything else
//! before authentication closes the socket (4001); a bad token closes it (4003) after saying so.
//! Invalid JSON is answered with an `error` message, never a dropped task.

use callqueue_protocol::ErrorBody;
use std::time::Duration;

use axum::{
    extract::{
        State, WebSocketUpgrade,
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket},
    },
    response::Response,
};
use callqueue_protocol::{ClientMessage, Role, ServerMessage, UserEvent};
use chrono::Utc;
use tokio::sync::broadcast::error::RecvError;

use crate::{
    http::auth::ClientInfo,
    http::error::ApiError,
    state::AppState,
    store::{Agent, Audience},
};

/// Close codes (application range 4000–4999).
pub const CLOSE_NOT_AUTHENTICATED: u16 = 4001;
pub const CLOSE_AUTH_FAILED: u16 = 4003;
pub const CLOSE_AUTH_TIMEOUT: u16 = 4008;
/// The session the channel was opened for ended (signed out, expired).
pub const CLOSE_SESSION_ENDED: u16 = 4401;
/// The client sent messages faster than its rate allows.
pub const CLOSE_TOO_MANY_MESSAGES: u16 = 4029;

type Limiter = Option<governor::DefaultDirectRateLimiter>;

/// How long a client has to authenticate.
const AUTH_DEADLINE: Duration = Duration::from_secs(10);

/// A WebSocket holds one of its client's stream places while it is open (429 when it has none
/// left) and may send so many messages a second.
#[utoipa::path(get, path = "/api/ws", tag = "streams", responses((status = 101, description = "The specialist's channel (WebSocket). Send `ClientMessage`s: `{\"type\":\"authrequest\",\"token\"}` with a token from `POST /api/agent/stream-token`, then `{\"type\":\"startusereventrequest\"}`; receive `ServerMessage`s, among them `userevent` with a `UserEvent` (`customer_waiting`, `call_started`, `call_ended`, `customer_presence`). Close codes: 4001 a message before authenticating, 4003 a bad token, 4008 no authentication within 10 s of opening (malformed messages do not extend it), 4029 more than 20 messages a second, 4401 the session the token was made for ended (signed out or expired).", body = ServerMessage), (status = 429, description = "too many open connections from this address", body = ErrorBody)))]
pub async fn upgrade(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    crate::http::auth::websocket_origin(&headers)?;
    let permit = state
        .limits
        .open_stream(client.ip, crate::metrics::Connection::WebSocket)?;
    let limiter = state.limits.message_limiter();
    Ok(ws
        .max_message_size(16 * 1024)
        .on_upgrade(move |socket| async move {
            session(state, socket, limiter).await;
            drop(permit);
        }))
}

async fn send(socket: &mut WebSocket, msg: &ServerMessage) -> bool {
    let text = serde_json::to_string(msg).unwrap_or_else(|_| "{}".into());
    socket.send(Message::Text(text.into())).await.is_ok()
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await;
}

/// The next client message; `Err(())` when the socket is gone (or closed for sending too fast).
async fn next_message(
    socket: &mut WebSocket,
    limiter: &Limiter,
) -> Result<Option<Result<ClientMessage, String>>, ()> {
    loop {
        let received = socket.recv().await;
        if let (Some(Ok(Message::Text(_) | Message::Binary(_))), Some(limiter)) =
            (&received, limiter)
            && limiter.check().is_err()
        {
            close(socket, CLOSE_TOO_MANY_MESSAGES, "too many messages").await;
            return Err(());
        }
        match received {
            Some(Ok(Message::Text(text))) => {
                return Ok(Some(
                    serde_json::from_str(&text).map_err(|e| format!("invalid message: {e}")),
                ));
            }
            Some(Ok(Message::Binary(_))) => {
                return Ok(Some(Err("send JSON text messages".to_string())));
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Err(()),
            Some(Ok(_)) => continue, // ping/pong frames are handled by the library
        }
    }
}

async fn session(state: AppState, mut socket: WebSocket, limiter: Limiter) {
    let Some((agent, session)) = authenticate(&state, &mut socket, &limiter).await else {
        return;
    };
    let ended = crate::http::auth::session_ended(state.store.clone(), session);
    tokio::pin!(ended);
    // Wait for startusereventrequest.
    loop {
        match next_message(&mut socket, &limiter).await {
            Err(()) => return,
            Ok(Some(Ok(ClientMessage::StartUserEventRequest))) => break,
            Ok(Some(Ok(ClientMessage::Ping))) => {
                if !send(&mut socket, &ServerMessage::Pong).await {
                    return;
                }
            }
            Ok(Some(Ok(ClientMessage::AuthRequest { .. }))) => {
                let msg = ServerMessage::Error {
                    message: "already authenticated; send startusereventrequest".into(),
                };
                if !send(&mut socket, &msg).await {
                    return;
                }
            }
            Ok(Some(Err(message))) => {
                if !send(&mut socket, &ServerMessage::Error { message }).await {
                    return;
                }
            }
            Ok(None) => {}
        }
    }
    let mut events = state.store.subscribe_user_events();
    if !send(
        &mut socket,
        &ServerMessage::StartUserEventResponse { success: true },
    )
    .await
    {
        return;
    }
    // Where the specialist's current call stands, for a console that just (re)connected.
    if let (_, Some((call_id, _))) = state.store.agent_status(&agent.user_id) {
        let connected = state.rooms.is_present(&call_id, Role::Patient);
        let event = UserEvent::CustomerPresence { call_id, connected };
        if !send(
            &mut socket,
            &ServerMessage::UserEvent {
                event,
                server_time: Utc::now(),
            },
        )
        .await
        {
            return;
        }
    }
    let mut ping = tokio::time::interval(state.store.config().heartbeat);
    ping.tick().await;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok((audience, event)) if is_for(&agent, &audience) => {
                    if !send(&mut socket, &ServerMessage::UserEvent { event, server_time: Utc::now() }).await {
                        return;
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    let message = format!("{n} events were missed; reload the queue");
                    if !send(&mut socket, &ServerMessage::Error { message }).await {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            },
            msg = next_message(&mut socket, &limiter) => match msg {
                Err(()) => return,
                Ok(Some(Ok(ClientMessage::Ping))) => {
                    if !send(&mut socket, &ServerMessage::Pong).await {
                        return;
                    }
                }
                Ok(Some(Err(message))) => {
                    if !send(&mut socket, &ServerMessage::Error { message }).await {
                        return;
                    }
                }
                Ok(_) => {}
            },
            _ = ping.tick() => {
                if !heartbeat(&mut socket).await {
                    return;
                }
            }
            _ = state.shutdown.cancelled() => {
                close(&mut socket, 1001, "server shutting down").await;
                return;
            }
            // Customers' names and reasons stop with the session (a shared computer).
            _ = &mut ended => {
                close(&mut socket, CLOSE_SESSION_ENDED, "the session ended; sign in again").await;
                return;
            }
        }
    }
}

/// The handshake's first half: the specialist and their session's token hash; `None` when the
/// socket was closed. The deadline is one for the whole handshake: malformed frames do not
/// move it.
async fn authenticate(
    state: &AppState,
    socket: &mut WebSocket,
    limiter: &Limiter,
) -> Option<(Agent, String)> {
    let deadline = tokio::time::Instant::now() + AUTH_DEADLINE;
    loop {
        let msg = match tokio::time::timeout_at(deadline, next_message(socket, limiter)).await {
            Err(_) => {
                close(socket, CLOSE_AUTH_TIMEOUT, "authenticate within 10 seconds").await;
                return None;
            }
            Ok(Err(())) => return None,
            Ok(Ok(msg)) => msg,
        };
        match msg {
            Some(Ok(ClientMessage::AuthRequest { token })) => {
                let agent = state.store.redeem_stream_token(&token).await.ok().flatten();
                let success = agent.is_some();
                let message = (!success).then(|| "invalid or expired token".to_string());
                send(socket, &ServerMessage::AuthResponse { success, message }).await;
                if agent.is_none() {
                    close(socket, CLOSE_AUTH_FAILED, "authentication failed").await;
                }
                return agent;
            }
            Some(Err(message)) => {
                if !send(socket, &ServerMessage::Error { message }).await {
                    return None;
                }
            }
            Some(Ok(_)) | None => {
                close(socket, CLOSE_NOT_AUTHENTICATED, "send authrequest first").await;
                return None;
            }
        }
    }
}

fn is_for(agent: &Agent, audience: &Audience) -> bool {
    match audience {
        Audience::Group(g) => agent.groups.contains(g),
        Audience::User(u) => *u == agent.user_id,
    }
}

/// What a WebSocket of ours sends after a quiet while: a ping frame (it keeps proxies from
/// closing the connection, and its failure tells us the page is gone) and the heartbeat text
/// frame, which the page's code sees (browsers answer pings without telling the page).
/// Answers whether the socket is still there.
pub async fn heartbeat(socket: &mut WebSocket) -> bool {
    socket.send(Message::Ping(Default::default())).await.is_ok()
        && socket
            .send(Message::Text(callqueue_protocol::HEARTBEAT_FRAME.into()))
            .await
            .is_ok()
}
