//! What every Server-Sent Events stream shares: a `retry:` hint, heartbeats, `Last-Event-ID`,
//! and ending when the server shuts down.

use std::{convert::Infallible, time::Duration};

use axum::{
    http::HeaderMap,
    response::sse::{Event, KeepAlive, Sse},
};
use futures_util::Stream;
use tokio_util::sync::CancellationToken;

/// How long the browser should wait before reconnecting after a drop.
pub const RETRY: Duration = Duration::from_secs(2);

/// The `Last-Event-ID` the browser sent when reconnecting, or the `last_event_id` query
/// parameter (a new `EventSource` cannot set headers, so a page that reconnects by itself sends
/// it there); a malformed one counts as none.
pub fn last_event_id(headers: &HeaderMap, query: Option<&str>) -> Option<u64> {
    let header = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    header.or_else(|| {
        query?
            .split('&')
            .find_map(|kv| kv.strip_prefix("last_event_id="))
            .and_then(|v| v.parse().ok())
    })
}

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

/// Wraps a stream of events as the SSE response: heartbeat comments every `heartbeat`, and the
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
    Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_id_ignores_garbage() {
        let mut h = HeaderMap::new();
        assert_eq!(last_event_id(&h, None), None);
        assert_eq!(last_event_id(&h, Some("a=1&last_event_id=9")), Some(9));
        h.insert("last-event-id", "42".parse().unwrap());
        assert_eq!(last_event_id(&h, Some("last_event_id=9")), Some(42));
        h.insert("last-event-id", "forty".parse().unwrap());
        assert_eq!(last_event_id(&h, None), None);
        assert_eq!(last_event_id(&h, Some("last_event_id=x")), None);
    }
}
