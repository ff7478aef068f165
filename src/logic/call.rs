//! The call's lifecycle as one pure state machine, in the sans-IO style of str0m: events go in
//! ([`CallMachine::handle`]), effects come out ([`Effect`]), and nothing here opens a socket,
//! starts a timer or touches a browser object. `call/` carries the effects out with web-sys.
//!
//! The rules, in one place:
//! - **Who negotiates.** The specialist's page is the impolite peer and makes the first offer
//!   (always: it has fixed audio and video transceivers even without devices); the customer's
//!   page only answers. Only the specialist restarts ICE; the customer asks it to.
//! - **Presence is not the socket.** A peer connection lives while the other member's session
//!   does: a drop of either signal socket changes nothing about the media. Only `peer_left`
//!   (the server waits out its grace period first, or the page said goodbye) or a new session
//!   of the other member (a reload) replaces the connection. When our socket comes back to a
//!   server that does not know the other member (it restarted), the connection is kept for the
//!   grace period, in which the other member's page comes back too.
//! - **Nothing is lost across a reconnect.** What we send while the socket is down waits, and
//!   goes in order after the next `welcome`; the count of messages received goes in `hello`, so
//!   the server sends again what we missed. Messages from the other member that come before
//!   their connection exists are held for it.
//! - **Recovery is graded.** The link `disconnected` for [`DISCONNECTED_PATIENCE_MS`]: an ICE
//!   restart; `failed`: an ICE restart at once; no link [`RESTART_PATIENCE_MS`] after a restart,
//!   or a first connection that does not come up in [`CONNECT_PATIENCE_MS`]: a start-over (a new
//!   session on a new socket, so both pages build fresh connections), by the specialist only.
//!   Once connected there is no watchdog: ICE is left to recover.

use std::collections::VecDeque;

use callqueue_protocol::signal::{MediaState, SignalClient, SignalServer};

/// How long a first connection may take before the specialist starts over.
pub const CONNECT_PATIENCE_MS: u32 = 10_000;
/// How long the link may stay `disconnected` (the browser's own ICE checks may bring it back)
/// before the specialist restarts ICE.
pub const DISCONNECTED_PATIENCE_MS: u32 = 2_500;
/// How long an ICE restart may take before the specialist starts over.
pub const RESTART_PATIENCE_MS: u32 = 12_000;
/// Messages kept for a socket that is down, and for a connection that does not exist yet.
const MAX_WAITING: usize = 256;

/// The page's side of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Impolite: offers first, wins collisions, restarts ICE, starts over.
    Specialist,
    /// Polite: answers, gives way, asks for restarts.
    Customer,
}

/// `RTCPeerConnection.connectionState`, as the browser reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    New,
    Connecting,
    Connected,
    Disconnected,
    Failed,
}

/// Whether the other member is there, as the page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Not yet seen in this page's life.
    Waiting,
    Here,
    /// Was here, and their page is gone.
    Left,
}

/// The media path, as the page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Connecting,
    Connected,
    /// Was connected (or is being restarted), and is trying again.
    Reconnecting,
}

/// The machine's timers; each is set again by a later [`Effect::SetTimer`] of the same kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// A new connection must come up.
    Connect,
    /// The link has been `disconnected` this long.
    Disconnected,
    /// An ICE restart must bring the link back.
    Restart,
    /// The server did not know the other member when our socket came back.
    PeerAbsent,
}

/// What happens to the machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A message from the server (every one, `welcome` included).
    Server(SignalServer),
    /// The signal socket dropped; it is reconnecting.
    SocketDown,
    /// The connection's state changed.
    Conn(ConnState),
    /// The connection has a message for the other member (a description or a candidate).
    FromConnection(SignalClient),
    /// Our microphone or camera changed.
    Media(MediaState),
    /// The network came back (`online`).
    Online,
    /// A timer set by [`Effect::SetTimer`] ran out.
    Timer(Timer),
}

/// What the page must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send on the signal socket (which is up).
    Send(SignalClient),
    /// Build a new connection to the other member's session `peer`, dropping any old one.
    CreateConnection {
        peer: String,
    },
    /// Close the connection (the other member left).
    CloseConnection,
    /// Hand a description or candidate to the connection.
    ToConnection(SignalServer),
    /// `restartIce()` on the connection.
    RestartIce,
    /// A new session on a new socket and a new connection; the page calls
    /// [`CallMachine::started_over`] with the new session.
    StartOver,
    SetTimer(Timer, u32),
    CancelTimer(Timer),
}

/// The call's state on one page.
#[derive(Debug, Clone)]
pub struct CallMachine {
    side: Side,
    session: String,
    media: MediaState,
    /// Messages received on this session (all but `welcome` and `error`).
    received: u64,
    socket_up: bool,
    /// What waits for the socket.
    outbox: VecDeque<SignalClient>,
    /// The other member's session our connection is for.
    peer: Option<String>,
    presence: Presence,
    /// Descriptions and candidates from a session we have no connection for (yet).
    held: VecDeque<SignalServer>,
    conn: ConnState,
    connected_once: bool,
    restarting: bool,
}

fn from(message: &SignalServer) -> Option<&str> {
    match message {
        SignalServer::Description { from, .. }
        | SignalServer::Candidate { from, .. }
        | SignalServer::Media { from, .. }
        | SignalServer::RestartIce { from } => Some(from),
        _ => None,
    }
}

impl CallMachine {
    pub fn new(side: Side, session: String) -> Self {
        Self {
            side,
            session,
            media: MediaState::default(),
            received: 0,
            socket_up: false,
            outbox: VecDeque::new(),
            peer: None,
            presence: Presence::Waiting,
            held: VecDeque::new(),
            conn: ConnState::New,
            connected_once: false,
            restarting: false,
        }
    }

    pub fn session(&self) -> &str {
        &self.session
    }

    /// Whether this page makes offers and wins collisions.
    pub fn polite(&self) -> bool {
        self.side == Side::Customer
    }

    pub fn presence(&self) -> Presence {
        self.presence
    }

    /// The other member's session our connection is for.
    pub fn peer(&self) -> Option<&str> {
        self.peer.as_deref()
    }

    pub fn link(&self) -> LinkState {
        match self.conn {
            ConnState::Connected => LinkState::Connected,
            ConnState::Disconnected | ConnState::Failed => LinkState::Reconnecting,
            _ if self.connected_once || self.restarting => LinkState::Reconnecting,
            _ => LinkState::Connecting,
        }
    }

    /// What the page says when its socket opens.
    pub fn hello(&self) -> SignalClient {
        SignalClient::Hello {
            session: self.session.clone(),
            media: self.media,
            received: self.received,
            chat: 0,
        }
    }

    /// Messages the page could not send after all (the socket went down before the machine
    /// heard of it): they wait for the next `welcome`, first, in order.
    pub fn unsent(&mut self, messages: Vec<SignalClient>) {
        self.socket_up = false;
        for m in messages.into_iter().rev() {
            self.outbox.push_front(m);
        }
        self.outbox.truncate(MAX_WAITING);
    }

    /// The page started over with a new session (after [`Effect::StartOver`]).
    pub fn started_over(&mut self, session: String) {
        *self = Self {
            presence: self.presence,
            media: self.media,
            ..Self::new(self.side, session)
        };
    }

    /// One event; the effects to carry out, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Effect> {
        let mut out = Vec::new();
        match input {
            Input::Server(message) => self.on_server(message, &mut out),
            Input::SocketDown => self.socket_up = false,
            Input::Conn(state) => self.on_conn(state, &mut out),
            Input::FromConnection(message) => {
                let message = self.addressed(message);
                self.send(message, &mut out);
            }
            Input::Media(media) => {
                self.media = media;
                // Only the latest state matters: an older one still waiting is replaced.
                self.outbox
                    .retain(|m| !matches!(m, SignalClient::Media { .. }));
                self.send(SignalClient::Media { media }, &mut out);
            }
            Input::Online => {
                if self.peer.is_some() && self.conn != ConnState::Connected {
                    self.restart(&mut out);
                }
            }
            Input::Timer(timer) => self.on_timer(timer, &mut out),
        }
        out
    }

    fn on_server(&mut self, message: SignalServer, out: &mut Vec<Effect>) {
        if !matches!(
            message,
            SignalServer::Welcome { .. } | SignalServer::Error { .. } | SignalServer::Chat { .. }
        ) {
            self.received += 1;
        }
        match message {
            SignalServer::Welcome { peer, polite, .. } => {
                // The server says which side this page is.
                self.side = if polite {
                    Side::Customer
                } else {
                    Side::Specialist
                };
                self.socket_up = true;
                while let Some(m) = self.outbox.pop_front() {
                    out.push(Effect::Send(m));
                }
                match peer {
                    Some(p) => self.peer_here(p.session, out),
                    // The server does not know the other member: if we have a connection to
                    // them, it may have restarted; their page comes back within the grace.
                    None if self.peer.is_some() => out.push(Effect::SetTimer(
                        Timer::PeerAbsent,
                        callqueue_protocol::signal::PEER_GRACE_SECS as u32 * 1000 + 2_000,
                    )),
                    None => {}
                }
            }
            SignalServer::PeerJoined { peer } => self.peer_here(peer.session, out),
            SignalServer::PeerLeft { session } => {
                if self.peer.as_deref() == Some(session.as_str()) {
                    self.peer_gone(out);
                }
                self.held.retain(|m| from(m) != Some(session.as_str()));
            }
            message @ (SignalServer::Description { .. } | SignalServer::Candidate { .. }) => {
                if from(&message) == self.peer.as_deref() {
                    out.push(Effect::ToConnection(message));
                } else {
                    if self.held.len() == MAX_WAITING {
                        self.held.pop_front();
                    }
                    self.held.push_back(message);
                }
            }
            SignalServer::RestartIce { from } => {
                if self.side == Side::Specialist && self.peer.as_deref() == Some(from.as_str()) {
                    self.restart(out);
                }
            }
            // The chat is the page's (`call::on_socket`), caught up by its own number.
            SignalServer::Media { .. } | SignalServer::Error { .. } | SignalServer::Chat { .. } => {
            }
        }
    }

    /// The other member's session `session` is there.
    fn peer_here(&mut self, session: String, out: &mut Vec<Effect>) {
        out.push(Effect::CancelTimer(Timer::PeerAbsent));
        self.presence = Presence::Here;
        if self.peer.as_deref() == Some(session.as_str()) {
            return;
        }
        // A new session (a first meeting, a reload, a start-over): a fresh connection.
        self.peer = Some(session.clone());
        self.conn = ConnState::New;
        self.connected_once = false;
        self.restarting = false;
        out.push(Effect::CancelTimer(Timer::Disconnected));
        out.push(Effect::CancelTimer(Timer::Restart));
        out.push(Effect::CreateConnection {
            peer: session.clone(),
        });
        out.push(Effect::SetTimer(Timer::Connect, CONNECT_PATIENCE_MS));
        // What they sent before we knew them, in order; anything older is for nobody.
        for m in std::mem::take(&mut self.held) {
            if from(&m) == Some(session.as_str()) {
                out.push(Effect::ToConnection(m));
            }
        }
    }

    fn peer_gone(&mut self, out: &mut Vec<Effect>) {
        self.peer = None;
        self.presence = Presence::Left;
        self.conn = ConnState::New;
        self.connected_once = false;
        self.restarting = false;
        // Whatever still waits was for that session.
        self.outbox
            .retain(|m| matches!(m, SignalClient::Media { .. }));
        out.push(Effect::CloseConnection);
        for timer in [
            Timer::Connect,
            Timer::Disconnected,
            Timer::Restart,
            Timer::PeerAbsent,
        ] {
            out.push(Effect::CancelTimer(timer));
        }
    }

    fn on_conn(&mut self, state: ConnState, out: &mut Vec<Effect>) {
        if self.peer.is_none() {
            return;
        }
        let before = self.conn;
        self.conn = state;
        match state {
            ConnState::Connected => {
                self.connected_once = true;
                self.restarting = false;
                for timer in [Timer::Connect, Timer::Disconnected, Timer::Restart] {
                    out.push(Effect::CancelTimer(timer));
                }
            }
            ConnState::Disconnected if before != ConnState::Disconnected => {
                out.push(Effect::SetTimer(
                    Timer::Disconnected,
                    DISCONNECTED_PATIENCE_MS,
                ));
            }
            ConnState::Failed if before != ConnState::Failed => self.restart(out),
            _ => {}
        }
    }

    fn on_timer(&mut self, timer: Timer, out: &mut Vec<Effect>) {
        if self.peer.is_none() {
            return;
        }
        match timer {
            Timer::Connect if !self.connected_once && self.conn != ConnState::Connected => {
                self.start_over(out);
            }
            Timer::Disconnected if self.conn == ConnState::Disconnected => self.restart(out),
            Timer::Restart if self.conn != ConnState::Connected => match self.side {
                Side::Specialist => self.start_over(out),
                // Asks again: the specialist's page may have missed the first request.
                Side::Customer => self.restart(out),
            },
            Timer::PeerAbsent => self.peer_gone(out),
            _ => {}
        }
    }

    /// An ICE restart: the specialist does it, the customer asks for it.
    fn restart(&mut self, out: &mut Vec<Effect>) {
        self.restarting = true;
        match self.side {
            Side::Specialist => out.push(Effect::RestartIce),
            Side::Customer => {
                let ask = SignalClient::RestartIce {
                    to: self.peer.clone(),
                };
                self.send(ask, out);
            }
        }
        out.push(Effect::SetTimer(Timer::Restart, RESTART_PATIENCE_MS));
    }

    /// The last resort, and the specialist's alone: a new session from nothing.
    fn start_over(&mut self, out: &mut Vec<Effect>) {
        if self.side != Side::Specialist {
            return;
        }
        for timer in [
            Timer::Connect,
            Timer::Disconnected,
            Timer::Restart,
            Timer::PeerAbsent,
        ] {
            out.push(Effect::CancelTimer(timer));
        }
        out.push(Effect::CloseConnection);
        out.push(Effect::StartOver);
    }

    /// Marks a description or candidate as meant for the current peer session.
    fn addressed(&self, message: SignalClient) -> SignalClient {
        let to = self.peer.clone();
        match message {
            SignalClient::Description { description, .. } => {
                SignalClient::Description { description, to }
            }
            SignalClient::Candidate { candidate, .. } => SignalClient::Candidate { candidate, to },
            other => other,
        }
    }

    fn send(&mut self, message: SignalClient, out: &mut Vec<Effect>) {
        if self.socket_up {
            out.push(Effect::Send(message));
        } else {
            if self.outbox.len() == MAX_WAITING {
                self.outbox.pop_front();
            }
            self.outbox.push_back(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callqueue_protocol::{
        Role,
        signal::{IceCandidate, Peer, SdpKind, SessionDescription},
    };

    /// The server's welcome for a page of `side`, naming the other member's session if any.
    fn welcome_as(side: Side, peer: Option<&str>) -> Input {
        Input::Server(SignalServer::Welcome {
            role: match side {
                Side::Specialist => Role::Specialist,
                Side::Customer => Role::Patient,
            },
            polite: side == Side::Customer,
            ice_servers: Vec::new(),
            relay_only: false,
            peer: peer.map(|s| Peer {
                session: s.into(),
                role: Role::Patient,
                media: MediaState::default(),
            }),
        })
    }

    fn welcome(peer: Option<&str>) -> Input {
        welcome_as(Side::Specialist, peer)
    }

    fn welcome_c(peer: Option<&str>) -> Input {
        welcome_as(Side::Customer, peer)
    }

    fn joined(session: &str) -> Input {
        Input::Server(SignalServer::PeerJoined {
            peer: Peer {
                session: session.into(),
                role: Role::Patient,
                media: MediaState::default(),
            },
        })
    }

    fn left(session: &str) -> Input {
        Input::Server(SignalServer::PeerLeft {
            session: session.into(),
        })
    }

    fn offer(from: &str) -> SignalServer {
        SignalServer::Description {
            from: from.into(),
            description: SessionDescription {
                kind: SdpKind::Offer,
                sdp: "v=0".into(),
            },
        }
    }

    fn candidate(from: &str, n: u8) -> SignalServer {
        SignalServer::Candidate {
            from: from.into(),
            candidate: ice(n),
        }
    }

    fn ice(n: u8) -> IceCandidate {
        IceCandidate {
            candidate: format!("candidate:{n} 1 udp 1 127.0.0.1 {n} typ host"),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
        }
    }

    fn ours(n: u8) -> SignalClient {
        SignalClient::Candidate {
            candidate: ice(n),
            to: None,
        }
    }

    fn creates(effects: &[Effect]) -> usize {
        effects
            .iter()
            .filter(|e| matches!(e, Effect::CreateConnection { .. }))
            .count()
    }

    /// What the effects send, in order.
    fn sent(effects: &[Effect]) -> Vec<SignalClient> {
        effects
            .iter()
            .filter_map(|x| match x {
                Effect::Send(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// What the effects hand to the connection, in order.
    fn handed(effects: &[Effect]) -> Vec<SignalServer> {
        effects
            .iter()
            .filter_map(|x| match x {
                Effect::ToConnection(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    fn has(effects: &[Effect], effect: &Effect) -> bool {
        effects.contains(effect)
    }

    /// A specialist connected to customer session `p1`.
    fn connected_specialist() -> CallMachine {
        let mut m = CallMachine::new(Side::Specialist, "d1".into());
        let e = m.handle(welcome(Some("p1")));
        assert_eq!(
            creates(&e),
            1,
            "the customer was there: a connection at once"
        );
        m.handle(Input::Conn(ConnState::Connecting));
        m.handle(Input::Conn(ConnState::Connected));
        m
    }

    #[test]
    fn a_first_meeting_builds_one_connection_and_the_watchdog_stops_once_connected() {
        let mut m = CallMachine::new(Side::Customer, "p1".into());
        assert!(m.polite());
        let e = m.handle(welcome_c(None));
        assert!(e.is_empty(), "nobody to connect to yet: {e:?}");
        assert_eq!(m.presence(), Presence::Waiting);
        let e = m.handle(joined("d1"));
        assert_eq!(
            e[..3],
            [
                Effect::CancelTimer(Timer::PeerAbsent),
                Effect::CancelTimer(Timer::Disconnected),
                Effect::CancelTimer(Timer::Restart),
            ]
        );
        assert!(has(&e, &Effect::CreateConnection { peer: "d1".into() }));
        assert!(has(
            &e,
            &Effect::SetTimer(Timer::Connect, CONNECT_PATIENCE_MS)
        ));
        assert_eq!(m.link(), LinkState::Connecting);
        let e = m.handle(Input::Conn(ConnState::Connected));
        assert!(has(&e, &Effect::CancelTimer(Timer::Connect)));
        assert_eq!(m.link(), LinkState::Connected);
        // A late tick of the watchdog does nothing once connected.
        assert!(m.handle(Input::Timer(Timer::Connect)).is_empty());
    }

    #[test]
    fn a_signalling_blip_leaves_the_media_alone() {
        let mut m = connected_specialist();
        // Our socket drops; the connection reports nothing new (media still flow).
        assert!(m.handle(Input::SocketDown).is_empty());
        // A candidate gathered meanwhile waits for the socket.
        let e = m.handle(Input::FromConnection(ours(1)));
        assert!(e.is_empty(), "nothing sent on a socket that is down");
        // Back: the server still knows the customer (same session): nothing to rebuild, and
        // what waited goes first, addressed to the customer's session.
        let e = m.handle(welcome(Some("p1")));
        assert_eq!(creates(&e), 0);
        assert!(!e.contains(&Effect::CloseConnection));
        assert_eq!(
            e[0],
            Effect::Send(SignalClient::Candidate {
                candidate: ice(1),
                to: Some("p1".into())
            })
        );
        assert_eq!(m.link(), LinkState::Connected);
        assert_eq!(m.presence(), Presence::Here);
        // The same session announced again (the customer's socket came back through another
        // node) is no news either.
        assert_eq!(creates(&m.handle(joined("p1"))), 0);
    }

    #[test]
    fn a_server_restart_keeps_the_connection_while_the_other_page_comes_back() {
        let mut m = connected_specialist();
        m.handle(Input::SocketDown);
        // The restarted server knows nobody yet.
        let e = m.handle(welcome(None));
        assert!(!e.contains(&Effect::CloseConnection), "{e:?}");
        assert!(matches!(
            e.last(),
            Some(Effect::SetTimer(Timer::PeerAbsent, _))
        ));
        // The customer's page comes back with its session: the same connection goes on.
        let e = m.handle(joined("p1"));
        assert!(has(&e, &Effect::CancelTimer(Timer::PeerAbsent)));
        assert_eq!(creates(&e), 0);

        // Had it not come back in time, the customer would have left.
        m.handle(Input::SocketDown);
        m.handle(welcome(None));
        let e = m.handle(Input::Timer(Timer::PeerAbsent));
        assert!(has(&e, &Effect::CloseConnection));
        assert_eq!(m.presence(), Presence::Left);
    }

    #[test]
    fn an_outage_is_mended_by_an_ice_restart_and_a_start_over_comes_last() {
        let mut m = connected_specialist();
        let e = m.handle(Input::Conn(ConnState::Disconnected));
        assert_eq!(
            e,
            vec![Effect::SetTimer(
                Timer::Disconnected,
                DISCONNECTED_PATIENCE_MS
            )]
        );
        assert_eq!(m.link(), LinkState::Reconnecting);
        // Back by itself before the patience ran out: nothing was restarted.
        m.handle(Input::Conn(ConnState::Connected));
        assert!(m.handle(Input::Timer(Timer::Disconnected)).is_empty());

        // Down for longer: an ICE restart, not a new connection.
        m.handle(Input::Conn(ConnState::Disconnected));
        let e = m.handle(Input::Timer(Timer::Disconnected));
        assert_eq!(
            e,
            vec![
                Effect::RestartIce,
                Effect::SetTimer(Timer::Restart, RESTART_PATIENCE_MS)
            ]
        );
        // Failed while restarting: restarted again at once.
        let e = m.handle(Input::Conn(ConnState::Failed));
        assert!(has(&e, &Effect::RestartIce));
        // The restart works.
        let e = m.handle(Input::Conn(ConnState::Connected));
        assert!(has(&e, &Effect::CancelTimer(Timer::Restart)));
        assert!(m.handle(Input::Timer(Timer::Restart)).is_empty());

        // A restart that does not bring the link back in time: a start-over.
        m.handle(Input::Conn(ConnState::Failed));
        let e = m.handle(Input::Timer(Timer::Restart));
        assert!(has(&e, &Effect::StartOver));
        assert!(has(&e, &Effect::CloseConnection));
        m.started_over("d2".into());
        assert!(matches!(
            m.hello(),
            SignalClient::Hello { session, received: 0, .. } if session == "d2"
        ));
        assert_eq!(m.peer(), None);
    }

    #[test]
    fn only_the_specialist_restarts_the_customer_asks() {
        let mut c = CallMachine::new(Side::Customer, "p1".into());
        c.handle(welcome_c(Some("d1")));
        c.handle(Input::Conn(ConnState::Connected));
        let e = c.handle(Input::Conn(ConnState::Failed));
        assert!(!has(&e, &Effect::RestartIce));
        assert!(has(
            &e,
            &Effect::Send(SignalClient::RestartIce {
                to: Some("d1".into())
            })
        ));
        // The customer never starts over: it asks again.
        let e = c.handle(Input::Timer(Timer::Restart));
        assert!(!has(&e, &Effect::StartOver));
        assert!(matches!(
            e[0],
            Effect::Send(SignalClient::RestartIce { .. })
        ));
        assert!(c.handle(Input::Timer(Timer::Connect)).is_empty());
        // Coming back online while the link is down asks too.
        assert!(matches!(
            c.handle(Input::Online)[0],
            Effect::Send(SignalClient::RestartIce { .. })
        ));

        // The specialist does what is asked, for its current peer only.
        let mut s = connected_specialist();
        let ask = |from: &str| {
            Input::Server(SignalServer::RestartIce {
                from: from.to_string(),
            })
        };
        assert!(has(&s.handle(ask("p1")), &Effect::RestartIce));
        assert!(s.handle(ask("p0")).is_empty());
        // Online while connected: nothing to mend.
        s.handle(Input::Conn(ConnState::Connected));
        assert!(s.handle(Input::Online).is_empty());
    }

    #[test]
    fn glare_cannot_start_the_first_negotiation_from_both_sides() {
        // The customer's page never offers first: its connection is built by the specialist's
        // offer, and the machine hands that offer over only after the connection exists.
        let mut c = CallMachine::new(Side::Customer, "p1".into());
        c.handle(welcome_c(None));
        // The specialist's offer and candidates come before the news that it joined (another
        // node relayed them first): held, then handed over in order.
        assert!(c.handle(Input::Server(offer("d1"))).is_empty());
        assert!(c.handle(Input::Server(candidate("d1", 1))).is_empty());
        assert!(c.handle(Input::Server(candidate("d0", 9))).is_empty());
        let e = c.handle(joined("d1"));
        let created = e
            .iter()
            .position(|x| matches!(x, Effect::CreateConnection { .. }))
            .unwrap();
        assert_eq!(
            handed(&e),
            vec![offer("d1"), candidate("d1", 1)],
            "in order, and not the stale one"
        );
        assert!(
            e.iter()
                .position(|x| matches!(x, Effect::ToConnection(_)))
                .unwrap()
                > created
        );
        // Later messages of the current peer go straight through; a stale one is held, never
        // handed to this connection.
        assert_eq!(
            c.handle(Input::Server(candidate("d1", 2))),
            vec![Effect::ToConnection(candidate("d1", 2))]
        );
        assert!(c.handle(Input::Server(candidate("d0", 3))).is_empty());
    }

    #[test]
    fn messages_from_a_stale_session_never_reach_the_connection() {
        let mut m = connected_specialist();
        let stale = [
            Input::Server(offer("old")),
            Input::Server(candidate("old", 1)),
            Input::Server(SignalServer::RestartIce { from: "old".into() }),
            left("old"),
        ];
        for input in stale {
            let e = m.handle(input.clone());
            assert!(
                handed(&e).is_empty(),
                "{input:?} reached the connection: {e:?}"
            );
            assert!(!has(&e, &Effect::RestartIce), "{input:?}: {e:?}");
            assert!(!has(&e, &Effect::CloseConnection), "{input:?}: {e:?}");
        }
        assert_eq!(m.link(), LinkState::Connected);
        assert_eq!(m.peer(), Some("p1"));
        // The current session's messages do.
        assert_eq!(
            handed(&m.handle(Input::Server(candidate("p1", 2)))).len(),
            1
        );
        assert!(has(
            &m.handle(Input::Server(SignalServer::RestartIce {
                from: "p1".into()
            })),
            &Effect::RestartIce
        ));
    }

    #[test]
    fn a_reload_or_a_second_tab_of_the_other_member_is_a_new_connection() {
        let mut m = connected_specialist();
        // The customer reloads: the old page said goodbye, the new one joins.
        let e = m.handle(left("p1"));
        assert!(has(&e, &Effect::CloseConnection));
        assert_eq!(m.presence(), Presence::Left);
        let e = m.handle(joined("p2"));
        assert_eq!(creates(&e), 1);
        assert_eq!(m.presence(), Presence::Here);
        assert_eq!(m.link(), LinkState::Connecting);
        // A second tab takes over without the first leaving: a new session all the same.
        let e = m.handle(joined("p3"));
        assert!(has(&e, &Effect::CreateConnection { peer: "p3".into() }));
        // The first tab's late goodbye is not about the current connection.
        assert!(!has(&m.handle(left("p2")), &Effect::CloseConnection));
        assert_eq!(m.peer(), Some("p3"));
    }

    #[test]
    fn the_other_side_closing_stops_everything_and_a_first_connection_that_never_comes_starts_over()
    {
        let mut m = connected_specialist();
        let e = m.handle(left("p1"));
        assert_eq!(e[0], Effect::CloseConnection);
        for t in [
            Timer::Connect,
            Timer::Disconnected,
            Timer::Restart,
            Timer::PeerAbsent,
        ] {
            assert!(has(&e, &Effect::CancelTimer(t)));
            assert!(m.handle(Input::Timer(t)).is_empty(), "{t:?} after leaving");
        }
        assert!(m.handle(Input::Conn(ConnState::Failed)).is_empty());

        let mut m = CallMachine::new(Side::Specialist, "d1".into());
        m.handle(welcome(Some("p1")));
        m.handle(Input::Conn(ConnState::Connecting));
        let e = m.handle(Input::Timer(Timer::Connect));
        assert!(has(&e, &Effect::StartOver), "{e:?}");
    }

    #[test]
    fn nothing_is_lost_or_doubled_across_reconnects() {
        let mut m = CallMachine::new(Side::Customer, "p1".into());
        m.handle(welcome_c(Some("d1")));
        m.handle(Input::Server(offer("d1")));
        m.handle(Input::Server(candidate("d1", 1)));
        m.handle(Input::Server(SignalServer::Error {
            message: "x".into(),
        }));
        // Two messages received (the error and the welcome do not count): the next hello says
        // so, and the server sends only what came after them.
        assert!(matches!(m.hello(), SignalClient::Hello { received: 2, .. }));
        m.handle(Input::SocketDown);
        m.handle(Input::Media(MediaState {
            audio: false,
            video: true,
        }));
        m.handle(Input::Media(MediaState {
            audio: true,
            video: true,
        }));
        m.handle(Input::FromConnection(ours(1)));
        let e = m.handle(welcome_c(Some("d1")));
        assert_eq!(
            sent(&e),
            vec![
                SignalClient::Media {
                    media: MediaState {
                        audio: true,
                        video: true
                    }
                },
                SignalClient::Candidate {
                    candidate: ice(1),
                    to: Some("d1".into())
                },
            ],
            "the latest media state once, then the candidate"
        );
        assert!(matches!(m.hello(), SignalClient::Hello { media, .. } if media.audio));
    }

    #[test]
    fn no_devices_on_either_side_still_makes_a_call() {
        // Media are not the machine's business: with nothing to send, the connection is made
        // and watched exactly the same (the specialist's fixed transceivers make the offer).
        let mut s = CallMachine::new(Side::Specialist, "d1".into());
        s.handle(Input::Media(MediaState::default()));
        let e = s.handle(welcome(Some("p1")));
        assert_eq!(creates(&e), 1);
        assert!(has(
            &e,
            &Effect::Send(SignalClient::Media {
                media: MediaState::default()
            })
        ));
        s.handle(Input::Conn(ConnState::Connected));
        assert_eq!(s.link(), LinkState::Connected);
    }
}
