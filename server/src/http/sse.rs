//! What every Server-Sent Events stream shares: a `retry:` hint, heartbeats, and ending when the
//! server shuts down.
//!
//! No stream reads `Last-Event-ID`: the first event of every connection is the whole state
//! (the reservation, the call, the queue), which supersedes whatever a reconnecting client
//! missed, so replaying from an id would only repeat older states.

use std::{convert::Infallible, time::Duration};

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio_util::sync::CancellationToken;

/// How long the browser should wait before reconnecting after a drop.
pub const RETRY: Duration = Duration::from_secs(2);

/// An event with an id and JSON data; `name` sets `event:` (none means the default `message`).
pub fn event(id: u64, name: Option<&str>, data: &impl serde::Serialize) -> Event {
    let event = Event::default().id(id.to_string());
    let event = match name {
        Some(name) => event.event(name),
        None => event,
    };
    // Our wire types always serialize; fall back to an empty object rather than panic.
    event.data(serde_json::to_string(data).unwrap_or_else(|_| "{}".into()))
}

/// Wraps a stream of events as the SSE response: a `heartbeat` event after every `heartbeat` of
/// quiet, and the
/// stream ends when `shutdown` fires (so a graceful shutdown does not wait on open streams).
pub fn respond<S>(
    events: S,
    heartbeat: Duration,
    shutdown: CancellationToken,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    S: Stream<Item = Event> + Send + 'static,
{
    use futures_util::StreamExt;
    let stream = events
        .take_until(shutdown.cancelled_owned())
        .map(Ok::<_, Infallible>);
    // A named event, not a comment: the page's code sees it and knows the stream is alive.
    let beat = Event::default()
        .event(callqueue_protocol::HEARTBEAT_EVENT)
        .data("{}");
    Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat).event(beat))
}
