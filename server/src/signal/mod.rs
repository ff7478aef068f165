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
    collections::HashMap,
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
    /// For the member `to`, from the other one.
    Relay {
        call: String,
        to: Role,
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

/// Delivers to a member without waiting: a full queue closes them instead.
fn deliver(p: &Present, message: Outgoing) {
    if p.tx.try_send(message).is_err() {
        let _ =
            p.tx.try_send(Outgoing::Close(1013, "too far behind; reconnect"));
    }
}

/// Every call's connected members.
#[derive(Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<String, Room>>,
    next: AtomicU64,
    /// The other nodes, when there are any.
    bus: Option<Bus>,
}

/// A member's place in a room, as [`Rooms::enter`] gives it.
pub struct Entered {
    pub connection: u64,
    /// The other member, if connected.
    pub peer: Option<Peer>,
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
                        && let Some(old) = room.slot(role).take()
                    {
                        // The same member opened the call in a tab served by another node.
                        deliver(
                            &old,
                            Outgoing::Close(
                                callqueue_protocol::signal::close::REPLACED,
                                "the call continues in another tab",
                            ),
                        );
                    }
                    let known = room.remote(role).as_ref() == Some(peer);
                    *room.remote(role) = Some(peer.clone());
                    if let Some(o) = room.slot(other(role)).as_ref() {
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
                        if let Some(o) = room.slot(other(role)).as_ref() {
                            deliver(
                                o,
                                Outgoing::Send(SignalServer::PeerLeft {
                                    session: peer.session.clone(),
                                }),
                            );
                        }
                    }
                }
                Wire::Relay { to, message, .. } => {
                    if let (SignalServer::Media { media, .. }, Some(r)) =
                        (message, room.remote(other(*to)).as_mut())
                    {
                        r.media = *media;
                    }
                    if let Some(p) = room.slot(*to).as_ref() {
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
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Room>> {
        // Nothing here is left half-changed by a panic: carry on with what is there.
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A member's page connects: it takes the member's place (an older tab of the same member
    /// is told it was replaced), and the other member hears that it joined.
    pub fn enter(
        &self,
        call: &str,
        role: Role,
        session: &str,
        media: MediaState,
        tx: mpsc::Sender<Outgoing>,
    ) -> Entered {
        let connection = self.next.fetch_add(1, Ordering::Relaxed);
        let mut rooms = self.lock();
        let room = rooms.entry(call.to_string()).or_default();
        let me = Present {
            connection,
            session: session.to_string(),
            media,
            tx,
        };
        if let Some(old) = room.slot(role).replace(me) {
            deliver(
                &old,
                Outgoing::Close(
                    callqueue_protocol::signal::close::REPLACED,
                    "the call continues in another tab",
                ),
            );
        }
        *room.remote(role) = None;
        let joined = room.slot(role).as_ref().map(|p| peer(role, p));
        let other_role = other(role);
        let mut found = room.remote(other_role).clone();
        if let Some(o) = room.slot(other_role).as_ref() {
            found = Some(peer(other_role, o));
            if let Some(joined) = &joined {
                deliver(
                    o,
                    Outgoing::Send(SignalServer::PeerJoined {
                        peer: joined.clone(),
                    }),
                );
            }
        }
        drop(rooms);
        if let Some(peer) = joined {
            self.tell(&Wire::Enter {
                call: call.to_string(),
                peer,
            });
        }
        Entered {
            connection,
            peer: found,
        }
    }

    /// A member's socket is gone; the other member hears it (unless a newer tab already took
    /// the place). Answers whether the member is gone from the call (false when a newer tab
    /// holds the place).
    pub fn leave(&self, call: &str, role: Role, connection: u64) -> bool {
        let mut rooms = self.lock();
        let Some(room) = rooms.get_mut(call) else {
            return false;
        };
        let slot = room.slot(role);
        let gone = slot.as_ref().is_some_and(|p| p.connection == connection);
        let mut told = None;
        if gone {
            let gone = slot.take().expect("checked");
            if let Some(o) = room.slot(other(role)).as_ref() {
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

    /// Passes a message from `role`'s current connection to the other member, if connected.
    /// A connection that has been replaced says nothing.
    pub fn relay(&self, call: &str, role: Role, connection: u64, message: SignalServer) {
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
        if let Some(o) = room.slot(other(role)).as_ref() {
            deliver(o, Outgoing::Send(message));
            return;
        }
        // The other member is on another node, or not connected anywhere yet.
        drop(rooms);
        self.tell(&Wire::Relay {
            call: call.to_string(),
            to: other(role),
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
            SignalServer::Media {
                from: session,
                media,
            },
        );
    }

    /// Whether `role` has a page connected to the call (here, or on a node that said so to a
    /// member here).
    pub fn is_present(&self, call: &str, role: Role) -> bool {
        self.lock()
            .get_mut(call)
            .is_some_and(|r| r.slot(role).is_some() || r.remote(role).is_some())
    }

    /// Closes every socket of a call that has ended.
    #[cfg(test)]
    pub fn end(&self, call: &str) {
        if let Some(room) = self.lock().remove(call) {
            for p in [room.specialist, room.customer].into_iter().flatten() {
                deliver(
                    &p,
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
        let a = rooms.enter("c", Role::Specialist, "d1", MediaState::default(), doc_tx);
        assert!(a.peer.is_none());
        let (cust_tx, mut cust) = member();
        let b = rooms.enter("c", Role::Patient, "p1", MediaState::default(), cust_tx);
        assert_eq!(b.peer.unwrap().session, "d1");
        assert!(matches!(
            doc.try_recv().unwrap(),
            Outgoing::Send(SignalServer::PeerJoined { peer }) if peer.session == "p1"
        ));

        // The customer reloads: the new page takes the place, the old one is closed, and its
        // leaving afterwards says nothing to the specialist.
        let (new_tx, _new) = member();
        let c = rooms.enter("c", Role::Patient, "p2", MediaState::default(), new_tx);
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
        rooms.leave("c", Role::Patient, b.connection);
        assert!(
            doc.try_recv().is_err(),
            "a replaced page's leaving is not news"
        );
        // The replaced page cannot speak either.
        rooms.relay(
            "c",
            Role::Patient,
            b.connection,
            SignalServer::Error {
                message: "x".into(),
            },
        );
        assert!(doc.try_recv().is_err());
        rooms.relay(
            "c",
            Role::Patient,
            c.connection,
            SignalServer::Error {
                message: "y".into(),
            },
        );
        assert!(doc.try_recv().is_ok());
        rooms.leave("c", Role::Patient, c.connection);
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

    #[test]
    fn messages_stay_within_their_call() {
        let rooms = Rooms::default();
        let (a_tx, _a) = member();
        let (b_tx, mut b) = member();
        let (x_tx, mut x) = member();
        let a = rooms.enter("one", Role::Specialist, "a", MediaState::default(), a_tx);
        rooms.enter("one", Role::Patient, "b", MediaState::default(), b_tx);
        rooms.enter("two", Role::Patient, "x", MediaState::default(), x_tx);
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
