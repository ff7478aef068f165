//! `GET /api/calls/{type}/{id}/signal`: one WebSocket per call member, open only to the call's
//! two members (404 for anyone else, 409 once the call has ended). The page says `hello` with
//! its session, gets `welcome` (its role, whether it is the polite peer, the ICE servers, the
//! other member if connected), and from then on its session descriptions, ICE candidates and
//! microphone/camera state go to the other member, stamped with its session. The socket closes
//! with 4010 when the call ends, 4009 when another tab of the same member takes over, 4029 when
//! messages come too fast (ICE candidates, which come in bursts, have a budget of their own),
//! 1009 when one is too large.
//!
//! A page that closes its socket itself (a close frame, or `bye`) has left the call. A
//! connection that just drops leaves the member away for the grace period (`--peer-grace-secs`):
//! the other member hears `peer_left` only when it is over, and the same session coming back
//! before then continues, with what the other member sent meanwhile.

use callqueue_protocol::ErrorBody;
use std::time::Duration;

use axum::{
    extract::{
        Path, State, WebSocketUpgrade,
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket},
    },
    response::Response,
};
use callqueue_protocol::{
    Role, UserEvent,
    signal::{
        CHAT_MAX_CHARS, ChatMessage, MAX_SIGNAL_MESSAGE, SignalClient, SignalServer, close,
        is_chat_text,
    },
};
use chrono::Utc;
use tokio::sync::{mpsc, watch};

use crate::{
    http::auth::{Callers, ClientInfo},
    http::error::{ApiError, ApiResult},
    http::routes::calls::member_call,
    limits::StreamPermit,
    signal::{Hello, Left, Outgoing, QUEUE, ice},
    state::AppState,
    store::{Audience, CallNote},
    tokens,
};

/// How long a page has to say `hello`.
const HELLO_DEADLINE: Duration = Duration::from_secs(10);

#[utoipa::path(get, path = "/api/calls/{type}/{id}/signal", tag = "streams", params(("type" = String, Path, description = "the call type: `appointment`"), ("id" = String, Path, description = "a call id")), responses((status = 101, description = "The call's signalling (WebSocket), for its members: send `SignalClient` messages (hello, offer and answer descriptions, ICE candidates, media state), receive `SignalServer` messages (who else is here, what they sent, taken over by another tab).", body = SignalServer), (status = 400, description = "a malformed id or body", body = ErrorBody), (status = 404, description = "no such thing, or not the caller's", body = ErrorBody)))]
pub async fn upgrade(
    State(state): State<AppState>,
    Path((call_type, id)): Path<(String, String)>,
    callers: Callers,
    client: ClientInfo,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    // The socket is authenticated by cookie: only our own pages may open it.
    crate::http::auth::websocket_origin(&headers)?;
    let (call, role) = member_call(&state, &callers, &call_type, &id).await?;
    let Some(ended) = state
        .store
        .watch_call_fresh(&id)
        .await?
        .filter(|_| call.ended_at.is_none())
    else {
        return Err(ApiError::Conflict("the call has ended".into()));
    };
    let permit = state
        .limits
        .open_stream(client.ip, crate::metrics::Connection::WebSocket)?;
    let user = match role {
        Role::Specialist => call.specialist_id.clone(),
        Role::Patient => call.customer_id.clone(),
    };
    let member = Member {
        call: id,
        role,
        user,
        specialist: call.specialist_id.clone(),
        limiter: state.limits.message_limiter(),
        candidates: state.limits.candidate_limiter(),
        _permit: permit,
    };
    Ok(ws
        .max_message_size(MAX_SIGNAL_MESSAGE)
        .on_upgrade(move |socket| session(state, socket, member, ended)))
}

/// Who is on the other end of a signal socket.
struct Member {
    call: String,
    role: Role,
    user: String,
    /// Told on their channel when the customer comes and goes.
    specialist: String,
    limiter: Option<governor::DefaultDirectRateLimiter>,
    /// ICE candidates have a budget of their own (they come in bursts).
    candidates: Option<governor::DefaultDirectRateLimiter>,
    _permit: StreamPermit,
}

async fn send(socket: &mut WebSocket, msg: &SignalServer) -> bool {
    let text = serde_json::to_string(msg).unwrap_or_else(|_| "{}".into());
    socket.send(Message::Text(text.into())).await.is_ok()
}

async fn close_with(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await;
}

/// What came from the page.
enum Incoming {
    Message(Result<SignalClient, String>),
    /// The page closed the socket itself (a close frame: it navigated away, or is starting
    /// over): gone for good.
    Closed,
    /// The connection dropped with no word from the page: it may come back.
    Dropped,
    TooFast,
    TooLarge,
}

/// How a member's socket ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// The page said goodbye, closed the socket itself, or the call is over.
    Goodbye,
    /// The connection dropped (or the server is going down): the page may come back.
    Dropped,
}

async fn receive(socket: &mut WebSocket, member: &Member) -> Incoming {
    let too_fast = |limiter: &Option<governor::DefaultDirectRateLimiter>| {
        limiter.as_ref().is_some_and(|l| l.check().is_err())
    };
    loop {
        return match socket.recv().await {
            Some(Ok(Message::Text(text))) => {
                let message = serde_json::from_str::<SignalClient>(&text)
                    .map_err(|e| format!("invalid message: {e}"));
                let budget = match &message {
                    Ok(SignalClient::Candidate { .. }) => &member.candidates,
                    _ => &member.limiter,
                };
                if too_fast(budget) {
                    return Incoming::TooFast;
                }
                Incoming::Message(message)
            }
            Some(Ok(Message::Binary(_))) if too_fast(&member.limiter) => Incoming::TooFast,
            Some(Ok(Message::Binary(_))) => {
                Incoming::Message(Err("send JSON text messages".into()))
            }
            // axum hides tungstenite's error kinds; its message says which one it was.
            Some(Err(e)) if e.to_string().contains("Message too long") => Incoming::TooLarge,
            Some(Ok(Message::Close(_))) => Incoming::Closed,
            None | Some(Err(_)) => Incoming::Dropped,
            Some(Ok(_)) => continue,
        };
    }
}

async fn session(
    state: AppState,
    mut socket: WebSocket,
    member: Member,
    mut ended: watch::Receiver<CallNote>,
) {
    // The page's hello: its session id and what it sends.
    let hello = tokio::time::timeout(HELLO_DEADLINE, receive(&mut socket, &member)).await;
    let (session, media, received, chat) = match hello {
        Ok(Incoming::Message(Ok(SignalClient::Hello {
            session,
            media,
            received,
            chat,
        }))) if tokens::is_valid_id(&session) => (session, media, received, chat),
        Ok(Incoming::Closed | Incoming::Dropped) => return,
        _ => {
            close_with(
                &mut socket,
                close::NO_HELLO,
                "say hello with a session id first",
            )
            .await;
            return;
        }
    };
    let (tx, mut outgoing) = mpsc::channel(QUEUE);
    let hello = Hello {
        session: &session,
        media,
        received,
    };
    let entered = state.rooms.enter(&member.call, member.role, hello, tx);
    customer_presence(&state, &member, true);
    let config = state.store.config();
    let expires = Utc::now() + chrono::Duration::seconds(config.max_call_seconds as i64 + 3600);
    let welcome = SignalServer::Welcome {
        role: member.role,
        // The customer gives way when both offer at once; the specialist's offer wins.
        polite: member.role == Role::Patient,
        ice_servers: ice::servers_for(
            &config.ice_servers,
            config.turn_secret.as_deref(),
            &member.user,
            expires,
        ),
        relay_only: config.ice_relay_only,
        peer: entered.peer,
    };
    let mut welcomed = send(&mut socket, &welcome).await;
    // The same session again: what it has not received yet, in order.
    for message in entered.resumed.iter().flatten() {
        welcomed = welcomed && send(&mut socket, message).await;
    }
    // The chat the page has not seen, read after entering the room: a message stored later
    // is relayed (and one stored meanwhile may come twice, which the page drops).
    match state.store.chat_after(&member.call, chat).await {
        Ok(messages) if messages.is_empty() => {}
        Ok(messages) => {
            let caught_up = SignalServer::Chat {
                messages,
                catch_up: true,
            };
            welcomed = welcomed && send(&mut socket, &caught_up).await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading the chat failed");
            let message = "the chat could not be read; reconnect to try again".into();
            welcomed = welcomed && send(&mut socket, &SignalServer::Error { message }).await;
        }
    }
    let end = if welcomed {
        run(
            &state,
            &mut socket,
            &member,
            &session,
            entered.connection,
            &mut outgoing,
            &mut ended,
        )
        .await
    } else {
        End::Dropped
    };
    let connection = entered.connection;
    match state
        .rooms
        .leave(&member.call, member.role, connection, end == End::Goodbye)
    {
        Left::Gone => customer_presence(&state, &member, false),
        Left::Replaced => {}
        Left::Away => {
            // Gone only if the page has not come back by the end of the grace period.
            let grace = config.peer_grace;
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                if state.rooms.expire(&member.call, member.role, connection) {
                    customer_presence(&state, &member, false);
                }
            });
        }
    }
}

/// The specialist's console hears when the customer's page comes and goes.
fn customer_presence(state: &AppState, member: &Member, connected: bool) {
    if member.role == Role::Patient {
        state.store.user_event(
            Audience::User(member.specialist.clone()),
            UserEvent::CustomerPresence {
                call_id: member.call.clone(),
                connected,
            },
        );
    }
}

async fn run(
    state: &AppState,
    socket: &mut WebSocket,
    member: &Member,
    session: &str,
    connection: u64,
    outgoing: &mut mpsc::Receiver<Outgoing>,
    ended: &mut watch::Receiver<CallNote>,
) -> End {
    let mut ping = tokio::time::interval(state.store.config().heartbeat);
    ping.tick().await;
    let relay = |to: Option<String>, message: SignalServer| {
        state.rooms.relay(
            &member.call,
            member.role,
            connection,
            to.as_deref(),
            message,
        )
    };
    let from = || session.to_string();
    loop {
        tokio::select! {
            incoming = receive(socket, member) => match incoming {
                Incoming::Closed => return End::Goodbye,
                Incoming::Dropped => return End::Dropped,
                Incoming::TooFast => {
                    close_with(socket, close::TOO_MANY_MESSAGES, "too many messages").await;
                    return End::Dropped;
                }
                Incoming::TooLarge => {
                    close_with(socket, 1009, "message too large").await;
                    return End::Dropped;
                }
                Incoming::Message(Ok(SignalClient::Description { description, to })) => {
                    relay(to, SignalServer::Description { from: from(), description });
                }
                Incoming::Message(Ok(SignalClient::Candidate { candidate, to })) => {
                    relay(to, SignalServer::Candidate { from: from(), candidate });
                }
                Incoming::Message(Ok(SignalClient::RestartIce { to })) => {
                    relay(to, SignalServer::RestartIce { from: from() });
                }
                Incoming::Message(Ok(SignalClient::Media { media })) => {
                    state.rooms.set_media(&member.call, member.role, connection, media);
                }
                Incoming::Message(Ok(SignalClient::Chat { id, text })) => {
                    let answer = chat(state, member, &id, &text).await;
                    let ack = match answer {
                        Ok(message) => {
                            let chat = SignalServer::Chat { messages: vec![message], catch_up: false };
                            relay(None, chat.clone());
                            chat
                        }
                        Err(message) => SignalServer::Error { message },
                    };
                    if !send(socket, &ack).await {
                        return End::Dropped;
                    }
                }
                Incoming::Message(Ok(SignalClient::Bye)) => return End::Goodbye,
                Incoming::Message(Ok(SignalClient::Hello { .. })) => {
                    let message = "already said hello; reconnect to start a new session".into();
                    if !send(socket, &SignalServer::Error { message }).await {
                        return End::Dropped;
                    }
                }
                Incoming::Message(Err(message)) => {
                    if !send(socket, &SignalServer::Error { message }).await {
                        return End::Dropped;
                    }
                }
            },
            message = outgoing.recv() => match message {
                Some(Outgoing::Send(message)) => {
                    if !send(socket, &message).await {
                        return End::Dropped;
                    }
                }
                Some(Outgoing::Close(code, reason)) => {
                    close_with(socket, code, reason).await;
                    return End::Dropped;
                }
                None => return End::Dropped,
            },
            changed = ended.changed() => {
                let over = changed.is_err()
                    || ended.borrow_and_update().event == callqueue_protocol::CallEventType::Ended;
                if over {
                    close_with(socket, close::CALL_ENDED, "the call has ended").await;
                    return End::Goodbye;
                }
            }
            _ = ping.tick() => {
                if !super::ws::heartbeat(socket).await {
                    return End::Dropped;
                }
            }
            _ = state.shutdown.cancelled() => {
                close_with(socket, 1001, "server shutting down").await;
                return End::Dropped;
            }
        }
    }
}

/// Stores a chat message from `member`: its own id (valid), plain text within the limits,
/// while the call is on.
async fn chat(
    state: &AppState,
    member: &Member,
    id: &str,
    text: &str,
) -> Result<ChatMessage, String> {
    if !tokens::is_valid_id(id) {
        return Err("chat: the id must be 1–64 letters, digits, - or _".into());
    }
    if !is_chat_text(text) {
        return Err(format!(
            "chat: 1 to {CHAT_MAX_CHARS} characters of text, not only spaces"
        ));
    }
    let call = match state.store.call(&member.call).await {
        Ok(Some(call)) if call.ended_at.is_none() => call,
        Ok(_) => return Err("chat: the call has ended".into()),
        Err(e) => return Err(format!("chat: not stored ({e}); send again")),
    };
    state
        .store
        .add_chat(&call, member.role, id, text)
        .await
        .map_err(|e| format!("chat: not stored ({e}); send again"))
}
