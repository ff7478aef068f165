//! Call signalling: which member of each call is connected (presence) and relaying what one
//! member's page says to the other's. The socket itself is `routes::signal`.
//!
//! Each node holds the sockets connected to it. With several nodes (PostgreSQL) the two members
//! of a call may be on different nodes: each node then tells the others (through the store's
//! signalling channel, [`Wire`]) when a member arrives or leaves, answers an arrival with the
//! member it holds, and passes on what its member says when the other one is not here. A room
//! remembers the other node's member as a remote peer.

pub mod ice;

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use callqueue_protocol::{
    Role,
    signal::{MediaState, Peer, SignalServer},
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// What a member's socket is told to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Send(SignalServer),
    /// Close with this code and reason, then stop.
    Close(u16, &'static str),
}

/// Most messages waiting for one socket; a member that falls this far behind is closed (its
/// page reconnects and negotiates afresh).
pub const QUEUE: usize = 256;

struct Present {
    connection: u64,
    session: String,
    media: MediaState,
    tx: mpsc::Sender<Outgoing>,
    /// How many messages this session has been sent (over all its connections).
    sent: u64,
    /// The last messages sent, numbered: a page that comes back says how many it received,
    /// and gets the rest again (what was lost in the drop, and what came while it was away).
    outbox: VecDeque<(u64, SignalServer)>,
    /// The socket dropped without the page saying goodbye: the member may come back within the
    /// grace period.
    away: bool,
}

/// Most messages kept for a page that may come back (a negotiation is a few dozen).
pub const OUTBOX: usize = 128;

impl Present {
    fn new(connection: u64, session: &str, media: MediaState, tx: mpsc::Sender<Outgoing>) -> Self {
        Self {
            connection,
            session: session.to_string(),
            media,
            tx,
            sent: 0,
            outbox: VecDeque::new(),
            away: false,
        }
    }

    /// The same session on a new connection: continues the count, and answers what the page
    /// has not received of what was sent (everything after its first `received` messages).
    fn resume(&mut self, old: Present, received: u64) -> Vec<SignalServer> {
        self.sent = old.sent.max(received);
        self.outbox = old.outbox;
        self.outbox
            .iter()
            .filter(|(n, _)| *n > received)
            .map(|(_, m)| m.clone())
            .collect()
    }
}

#[derive(Default)]
struct Room {
    specialist: Option<Present>,
    customer: Option<Present>,
    /// Members connected to other nodes.
    remote_specialist: Option<Peer>,
    remote_customer: Option<Peer>,
}

impl Room {
    fn slot(&mut self, role: Role) -> &mut Option<Present> {
        match role {
            Role::Specialist => &mut self.specialist,
            Role::Patient => &mut self.customer,
        }
    }

    fn remote(&mut self, role: Role) -> &mut Option<Peer> {
        match role {
            Role::Specialist => &mut self.remote_specialist,
            Role::Patient => &mut self.remote_customer,
        }
    }
}

/// What nodes tell each other about calls' members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Wire {
    /// A member's page connected to the sending node.
    Enter { call: String, peer: Peer },
    /// The answer to `Enter` from a node holding the other member.
    Here { call: String, peer: Peer },
    /// A member's page left the sending node.
    Leave { call: String, peer: Peer },
    /// For the member `to` (only while their session is `session`, when given), from the
    /// other one.
    Relay {
        call: String,
        to: Role,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        message: SignalServer,
    },
}

/// Sends a [`Wire`] message (as JSON) to the other nodes.
pub type Bus = Box<dyn Fn(String) + Send + Sync>;

fn other(role: Role) -> Role {
    match role {
        Role::Specialist => Role::Patient,
        Role::Patient => Role::Specialist,
    }
}

fn peer(role: Role, p: &Present) -> Peer {
    Peer {
        session: p.session.clone(),
        role,
        media: p.media,
    }
}

/// Delivers to a member without waiting: a full queue closes them instead. What is sent is
/// also kept, numbered, for a page that comes back (see [`Present::outbox`]).
fn deliver(p: &mut Present, message: Outgoing) {
    // Chat messages are not numbered: a page coming back is caught up from the stored chat.
    if let Outgoing::Send(m) = &message
        && !matches!(m, SignalServer::Chat { .. })
    {
        p.sent += 1;
        p.outbox.push_back((p.sent, m.clone()));
        if p.outbox.len() > OUTBOX {
            p.outbox.pop_front();
        }
    }
    if p.away {
        return;
    }
    if p.tx.try_send(message).is_err() {
        let _ =
            p.tx.try_send(Outgoing::Close(1013, "too far behind; reconnect"));
    }
}

fn replaced(p: &mut Present) {
    deliver(
        p,
        Outgoing::Close(
            callqueue_protocol::signal::close::REPLACED,
            "the call continues in another tab",
        ),
    );
}

/// Every call's connected members.
#[derive(Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<String, Room>>,
    next: AtomicU64,
    /// The other nodes, when there are any.
    bus: Option<Bus>,
}

/// What a page says when its socket opens.
#[derive(Debug, Clone, Copy)]
pub struct Hello<'a> {
    pub session: &'a str,
    pub media: MediaState,
    /// How many messages this session has received so far (0 for a new page).
    pub received: u64,
}

/// A member's place in a room, as [`Rooms::enter`] gives it.
pub struct Entered {
    pub connection: u64,
    /// The other member, if connected.
    pub peer: Option<Peer>,
    /// The same session came back (within the grace period, or before its old connection was
    /// seen to drop): it continues, and these are the messages it has not received, in order.
    pub resumed: Option<Vec<SignalServer>>,
}

/// What became of a member whose socket closed, as [`Rooms::leave`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// Gone from the call: the other member was told.
    Gone,
    /// Dropped without a goodbye: still in the call until [`Rooms::expire`] after the grace
    /// period, unless the page comes back first.
    Away,
    /// A newer tab holds the place: nothing changes.
    Replaced,
}

impl Rooms {
    /// Rooms shared with other nodes through `bus`; what they send goes to [`Rooms::heard`].
    pub fn with_bus(bus: Bus) -> Self {
        Self {
            bus: Some(bus),
            ..Self::default()
        }
    }

    fn tell(&self, wire: &Wire) {
        if let Some(bus) = &self.bus {
            match serde_json::to_string(wire) {
                Ok(text) => bus(text),
                Err(e) => tracing::warn!(error = %e, "signalling could not be passed on"),
            }
        }
    }

    /// A message from another node.
    pub fn heard(&self, text: &str) {
        let wire: Wire = match serde_json::from_str(text) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable signalling from another node");
                return;
            }
        };
        let mut answer = None;
        let mut relays = Vec::new();
        {
            let mut rooms = self.lock();
            // Only calls with a member here are this node's business.
            let call = match &wire {
                Wire::Enter { call, .. }
                | Wire::Here { call, .. }
                | Wire::Leave { call, .. }
                | Wire::Relay { call, .. } => call,
            };
            let Some(room) = rooms.get_mut(call) else {
                return;
            };
            match &wire {
                Wire::Enter { call, peer } | Wire::Here { call, peer } => {
                    let role = peer.role;
                    if matches!(wire, Wire::Enter { .. })
                        && let Some(mut old) = room.slot(role).take()
                    {
                        if old.session == peer.session {
                            // Came back through another node: what it missed follows (all
                            // that was kept, as this node cannot know what it received).
                            for (_, message) in old.outbox {
                                relays.push(Wire::Relay {
                                    call: call.clone(),
                                    to: role,
                                    session: Some(peer.session.clone()),
                                    message,
                                });
                            }
                        } else if !old.away {
                            // The same member opened the call in a tab served by another node.
                            replaced(&mut old);
                        }
                    }
                    let known = room.remote(role).as_ref() == Some(peer);
                    *room.remote(role) = Some(peer.clone());
                    if let Some(o) = room.slot(other(role)).as_mut() {
                        if !known {
                            deliver(
                                o,
                                Outgoing::Send(SignalServer::PeerJoined { peer: peer.clone() }),
                            );
                        }
                        if matches!(wire, Wire::Enter { .. }) {
                            answer = Some(Wire::Here {
                                call: call.clone(),
                                peer: self::peer(other(role), o),
                            });
                        }
                    }
                }
                Wire::Leave { peer, .. } => {
                    let role = peer.role;
                    if room
                        .remote(role)
                        .as_ref()
                        .is_some_and(|p| p.session == peer.session)
                    {
                        *room.remote(role) = None;
                        if let Some(o) = room.slot(other(role)).as_mut() {
                            deliver(
                                o,
                                Outgoing::Send(SignalServer::PeerLeft {
                                    session: peer.session.clone(),
                                }),
                            );
                        }
                    }
                }
                Wire::Relay {
                    to,
                    session,
                    message,
                    ..
                } => {
                    if let (SignalServer::Media { media, .. }, Some(r)) =
                        (message, room.remote(other(*to)).as_mut())
                    {
                        r.media = *media;
                    }
                    if let Some(p) = room.slot(*to).as_mut()
                        && session.as_ref().is_none_or(|s| *s == p.session)
                    {
                        deliver(p, Outgoing::Send(message.clone()));
                    }
                }
            }
            if room.specialist.is_none() && room.customer.is_none() {
                rooms.remove(call);
            }
        }
        if let Some(answer) = answer {
            self.tell(&answer);
        }
        for relay in &relays {
            self.tell(relay);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Room>> {
        // Nothing here is left half-changed by a panic: carry on with what is there.
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A member's page connects: it takes the member's place (an older tab of the same member
    /// is told it was replaced), and the other member hears that it joined. The same session
    /// coming back while away continues where it was: the other member hears nothing.
    pub fn enter(
        &self,
        call: &str,
        role: Role,
        hello: Hello<'_>,
        tx: mpsc::Sender<Outgoing>,
    ) -> Entered {
        let connection = self.next.fetch_add(1, Ordering::Relaxed);
        let mut rooms = self.lock();
        let room = rooms.entry(call.to_string()).or_default();
        let mut me = Present::new(connection, hello.session, hello.media, tx);
        // Numbering goes on from what the page has received (a page that comes back to a
        // restarted node, or through another node, counts on from there).
        me.sent = hello.received;
        let mut resumed = None;
        if let Some(mut old) = room.slot(role).take() {
            if old.session == hello.session {
                // The page reconnected (perhaps before its old connection was seen to drop,
                // which then ends quietly: nothing holds its queue any more).
                resumed = Some(me.resume(old, hello.received));
            } else if !old.away {
                replaced(&mut old);
            }
        }
        *room.slot(role) = Some(me);
        *room.remote(role) = None;
        let joined = room.slot(role).as_ref().map(|p| peer(role, p));
        let other_role = other(role);
        let mut found = room.remote(other_role).clone();
        if let Some(o) = room.slot(other_role).as_mut() {
            found = Some(peer(other_role, o));
            if let (Some(joined), None) = (&joined, &resumed) {
                deliver(
                    o,
                    Outgoing::Send(SignalServer::PeerJoined {
                        peer: joined.clone(),
                    }),
                );
            }
        }
        drop(rooms);
        if let (Some(peer), None) = (joined, &resumed) {
            self.tell(&Wire::Enter {
                call: call.to_string(),
                peer,
            });
        }
        Entered {
            connection,
            peer: found,
            resumed,
        }
    }

    /// A member's socket closed. With `goodbye` (the page said `bye` or closed the socket
    /// itself) the member is gone and the other one hears it; a socket that just dropped leaves
    /// the member away (see [`Left::Away`]).
    pub fn leave(&self, call: &str, role: Role, connection: u64, goodbye: bool) -> Left {
        if !goodbye {
            let mut rooms = self.lock();
            return match rooms
                .get_mut(call)
                .and_then(|r| r.slot(role).as_mut())
                .filter(|p| p.connection == connection)
            {
                Some(p) => {
                    p.away = true;
                    Left::Away
                }
                None => Left::Replaced,
            };
        }
        if self.remove(call, role, connection, false) {
            Left::Gone
        } else {
            Left::Replaced
        }
    }

    /// The grace period of a member who went away is over: if they have not come back, they
    /// are gone, and the other member hears it. Answers whether they were gone now.
    pub fn expire(&self, call: &str, role: Role, connection: u64) -> bool {
        self.remove(call, role, connection, true)
    }

    /// Takes `role`'s place in the call if `connection` holds it (and is away, with `away`).
    fn remove(&self, call: &str, role: Role, connection: u64, away: bool) -> bool {
        let mut rooms = self.lock();
        let Some(room) = rooms.get_mut(call) else {
            return false;
        };
        let slot = room.slot(role);
        let gone = slot
            .as_ref()
            .is_some_and(|p| p.connection == connection && (!away || p.away));
        let mut told = None;
        if gone {
            let gone = slot.take().expect("checked");
            if let Some(o) = room.slot(other(role)).as_mut() {
                deliver(
                    o,
                    Outgoing::Send(SignalServer::PeerLeft {
                        session: gone.session.clone(),
                    }),
                );
            }
            told = Some(Wire::Leave {
                call: call.to_string(),
                peer: peer(role, &gone),
            });
        }
        if room.specialist.is_none() && room.customer.is_none() {
            rooms.remove(call);
        }
        drop(rooms);
        if let Some(wire) = told {
            self.tell(&wire);
        }
        gone
    }

    /// Passes a message from `role`'s current connection to the other member, if connected
    /// (kept for them while they are away). With `to`, only while the other member's session
    /// is still that one: a message queued in a page across a reconnect is not for a page the
    /// other member has since reloaded. A connection that has been replaced says nothing.
    pub fn relay(
        &self,
        call: &str,
        role: Role,
        connection: u64,
        to: Option<&str>,
        message: SignalServer,
    ) {
        let mut rooms = self.lock();
        let Some(room) = rooms.get_mut(call) else {
            return;
        };
        if room
            .slot(role)
            .as_ref()
            .is_none_or(|p| p.connection != connection)
        {
            return;
        }
        if let Some(o) = room.slot(other(role)).as_mut() {
            if to.is_none_or(|to| to == o.session) {
                deliver(o, Outgoing::Send(message));
            }
            return;
        }
        // The other member is on another node, or not connected anywhere yet.
        drop(rooms);
        self.tell(&Wire::Relay {
            call: call.to_string(),
            to: other(role),
            session: to.map(str::to_string),
            message,
        });
    }

    /// A member switched their microphone or camera.
    pub fn set_media(&self, call: &str, role: Role, connection: u64, media: MediaState) {
        let session = {
            let mut rooms = self.lock();
            let Some(p) = rooms
                .get_mut(call)
                .and_then(|r| r.slot(role).as_mut())
                .filter(|p| p.connection == connection)
            else {
                return;
            };
            p.media = media;
            p.session.clone()
        };
        self.relay(
            call,
            role,
            connection,
            None,
            SignalServer::Media {
                from: session,
                media,
            },
        );
    }

    /// Whether `role` has a page connected to the call (here, or on a node that said so to a
    /// member here), counting one that is away within its grace period.
    pub fn is_present(&self, call: &str, role: Role) -> bool {
        self.lock()
            .get_mut(call)
            .is_some_and(|r| r.slot(role).is_some() || r.remote(role).is_some())
    }

    /// Closes every socket of a call that has ended.
    #[cfg(test)]
    pub fn end(&self, call: &str) {
        if let Some(room) = self.lock().remove(call) {
            for mut p in [room.specialist, room.customer].into_iter().flatten() {
                deliver(
                    &mut p,
                    Outgoing::Close(
                        callqueue_protocol::signal::close::CALL_ENDED,
                        "the call has ended",
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> (mpsc::Sender<Outgoing>, mpsc::Receiver<Outgoing>) {
        mpsc::channel(QUEUE)
    }

    #[test]
    fn members_meet_take_over_and_leave() {
        let rooms = Rooms::default();
        let (doc_tx, mut doc) = member();
        let a = rooms.enter("c", Role::Specialist, hi("d1"), doc_tx);
        assert!(a.peer.is_none());
        let (cust_tx, mut cust) = member();
        let b = rooms.enter("c", Role::Patient, hi("p1"), cust_tx);
        assert_eq!(b.peer.unwrap().session, "d1");
        assert!(matches!(
            doc.try_recv().unwrap(),
            Outgoing::Send(SignalServer::PeerJoined { peer }) if peer.session == "p1"
        ));

        // The customer reloads: the new page takes the place, the old one is closed, and its
        // leaving afterwards says nothing to the specialist.
        let (new_tx, _new) = member();
        let c = rooms.enter("c", Role::Patient, hi("p2"), new_tx);
        assert_eq!(
            cust.try_recv().unwrap(),
            Outgoing::Close(
                callqueue_protocol::signal::close::REPLACED,
                "the call continues in another tab"
            )
        );
        assert!(matches!(
            doc.try_recv().unwrap(),
            Outgoing::Send(SignalServer::PeerJoined { peer }) if peer.session == "p2"
        ));
        assert_eq!(
            rooms.leave("c", Role::Patient, b.connection, true),
            Left::Replaced
        );
        assert!(
            doc.try_recv().is_err(),
            "a replaced page's leaving is not news"
        );
        // The replaced page cannot speak either.
        rooms.relay(
            "c",
            Role::Patient,
            b.connection,
            None,
            SignalServer::Error {
                message: "x".into(),
            },
        );
        assert!(doc.try_recv().is_err());
        rooms.relay(
            "c",
            Role::Patient,
            c.connection,
            None,
            SignalServer::Error {
                message: "y".into(),
            },
        );
        assert!(doc.try_recv().is_ok());
        assert_eq!(
            rooms.leave("c", Role::Patient, c.connection, true),
            Left::Gone
        );
        assert!(matches!(
            doc.try_recv().unwrap(),
            Outgoing::Send(SignalServer::PeerLeft { session }) if session == "p2"
        ));
        assert!(!rooms.is_present("c", Role::Patient));
        assert!(rooms.is_present("c", Role::Specialist));
        rooms.end("c");
        assert!(matches!(doc.try_recv().unwrap(), Outgoing::Close(4010, _)));
        assert!(!rooms.is_present("c", Role::Specialist));
    }

    fn hi(session: &str) -> Hello<'_> {
        Hello {
            session,
            media: MediaState::default(),
            received: 0,
        }
    }

    fn error(text: &str) -> SignalServer {
        SignalServer::Error {
            message: text.into(),
        }
    }

    #[test]
    fn a_dropped_socket_is_away_and_the_same_session_continues() {
        let rooms = Rooms::default();
        let (doc_tx, mut doc) = member();
        let d = rooms.enter("c", Role::Specialist, hi("d1"), doc_tx);
        let (cust_tx, _cust) = member();
        let a = rooms.enter("c", Role::Patient, hi("p1"), cust_tx);
        while doc.try_recv().is_ok() {}

        // Sent just as the customer's connection drops: it never arrives.
        rooms.relay("c", Role::Specialist, d.connection, None, error("one"));
        // The drop, without a goodbye: the specialist hears nothing, and what they send
        // meanwhile is kept (unless it is for another session of the customer's).
        assert_eq!(
            rooms.leave("c", Role::Patient, a.connection, false),
            Left::Away
        );
        assert!(doc.try_recv().is_err(), "no peer_left during the grace");
        assert!(rooms.is_present("c", Role::Patient));
        rooms.relay(
            "c",
            Role::Specialist,
            d.connection,
            Some("p1"),
            error("two"),
        );
        rooms.relay(
            "c",
            Role::Specialist,
            d.connection,
            Some("p0"),
            error("stale"),
        );

        // The same session comes back having received nothing: it continues with both, in
        // order, and the specialist hears no join.
        let (back_tx, _back) = member();
        let b = rooms.enter("c", Role::Patient, hi("p1"), back_tx);
        assert_eq!(b.peer.unwrap().session, "d1");
        assert_eq!(b.resumed, Some(vec![error("one"), error("two")]));
        assert!(doc.try_recv().is_err(), "the same session is no news");
        // The old connection's late expiry changes nothing.
        assert!(!rooms.expire("c", Role::Patient, a.connection));
        assert!(doc.try_recv().is_err());

        // A page the server does not know (it restarted) says it has received 5: what follows
        // is numbered on from there (the specialist's arrival 6, then 7 and 8), so a later drop
        // repeats exactly what was missed.
        let (x_tx, _x) = member();
        let x = rooms.enter(
            "x",
            Role::Patient,
            Hello {
                received: 5,
                ..hi("p9")
            },
            x_tx,
        );
        let (y_tx, _y) = member();
        let y = rooms.enter("x", Role::Specialist, hi("d9"), y_tx);
        rooms.relay("x", Role::Specialist, y.connection, None, error("six"));
        rooms.relay("x", Role::Specialist, y.connection, None, error("seven"));
        rooms.leave("x", Role::Patient, x.connection, false);
        let (z_tx, _z) = member();
        let z = rooms.enter(
            "x",
            Role::Patient,
            Hello {
                received: 7,
                ..hi("p9")
            },
            z_tx,
        );
        assert_eq!(z.resumed, Some(vec![error("seven")]));

        // Back again before the drop was even seen, having received both: nothing to repeat;
        // a third message is numbered after them.
        rooms.relay("c", Role::Specialist, d.connection, None, error("three"));
        let (again_tx, _again) = member();
        let hello = Hello {
            received: 2,
            ..hi("p1")
        };
        let c = rooms.enter("c", Role::Patient, hello, again_tx);
        assert_eq!(c.resumed, Some(vec![error("three")]));
        assert_eq!(
            rooms.leave("c", Role::Patient, b.connection, false),
            Left::Replaced,
            "the older connection ends quietly"
        );

        // Away, and not back in time: gone, and the specialist hears it once.
        assert_eq!(
            rooms.leave("c", Role::Patient, c.connection, false),
            Left::Away
        );
        assert!(rooms.expire("c", Role::Patient, c.connection));
        assert!(matches!(
            doc.try_recv().unwrap(),
            Outgoing::Send(SignalServer::PeerLeft { session }) if session == "p1"
        ));
        assert!(!rooms.expire("c", Role::Patient, c.connection));
        assert!(!rooms.is_present("c", Role::Patient));

        // A reload while away is a new session: the specialist hears it joined.
        let (e_tx, _e) = member();
        let e = rooms.enter("c", Role::Patient, hi("p2"), e_tx);
        rooms.leave("c", Role::Patient, e.connection, false);
        let (r_tx, _r) = member();
        let r = rooms.enter("c", Role::Patient, hi("p3"), r_tx);
        assert_eq!(r.resumed, None);
        assert!(matches!(
            doc.try_recv().unwrap(),
            Outgoing::Send(SignalServer::PeerJoined { peer }) if peer.session == "p2"
        ));
        assert!(matches!(
            doc.try_recv().unwrap(),
            Outgoing::Send(SignalServer::PeerJoined { peer }) if peer.session == "p3"
        ));
        assert!(!rooms.expire("c", Role::Patient, e.connection));
        assert!(doc.try_recv().is_err());
    }

    #[test]
    fn messages_stay_within_their_call() {
        let rooms = Rooms::default();
        let (a_tx, _a) = member();
        let (b_tx, mut b) = member();
        let (x_tx, mut x) = member();
        let a = rooms.enter("one", Role::Specialist, hi("a"), a_tx);
        rooms.enter("one", Role::Patient, hi("b"), b_tx);
        rooms.enter("two", Role::Patient, hi("x"), x_tx);
        while b.try_recv().is_ok() {}
        rooms.set_media(
            "one",
            Role::Specialist,
            a.connection,
            MediaState {
                audio: false,
                video: true,
            },
        );
        assert!(matches!(
            b.try_recv().unwrap(),
            Outgoing::Send(SignalServer::Media { from, media }) if from == "a" && !media.audio
        ));
        assert!(x.try_recv().is_err(), "another call hears nothing");
    }
}
