//! The per-user channel's handshake as a state machine: authenticate, wait for the answer, then
//! start the stream. No fixed delays: each step waits for the server's reply to the previous one.

use callqueue_protocol::{ClientMessage, ServerMessage, UserEvent};

use crate::i18n::{t, tf, tn};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stage {
    /// Connected; `authrequest` sent, waiting for `authresponse`.
    #[default]
    Authenticating,
    /// Authenticated; `startusereventrequest` sent, waiting for its response.
    Starting,
    /// Receiving user events.
    Ready,
    /// The server refused; do not retry with the same token.
    Refused,
}

/// What the channel should do after a server message.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Send(ClientMessage),
    Ready,
    Event(UserEvent),
    Refused(String),
    Nothing,
}

#[derive(Debug, Clone, Default)]
pub struct Handshake {
    pub stage: Stage,
}

impl Handshake {
    /// The first message to send once the socket is open.
    pub fn start(token: String) -> (Self, ClientMessage) {
        (Self::default(), ClientMessage::AuthRequest { token })
    }

    pub fn on_message(&mut self, msg: ServerMessage) -> Step {
        match (self.stage, msg) {
            (Stage::Authenticating, ServerMessage::AuthResponse { success: true, .. }) => {
                self.stage = Stage::Starting;
                Step::Send(ClientMessage::StartUserEventRequest)
            }
            (Stage::Authenticating, ServerMessage::AuthResponse { message, .. }) => {
                self.stage = Stage::Refused;
                Step::Refused(message.unwrap_or_else(|| "authentication failed".into()))
            }
            (Stage::Starting, ServerMessage::StartUserEventResponse { success: true }) => {
                self.stage = Stage::Ready;
                Step::Ready
            }
            (Stage::Starting, ServerMessage::StartUserEventResponse { success: false }) => {
                self.stage = Stage::Refused;
                Step::Refused("the server did not start the event stream".into())
            }
            (Stage::Ready, ServerMessage::UserEvent { event, .. }) => Step::Event(event),
            _ => Step::Nothing,
        }
    }
}

/// Who a customer is to the specialist: the name they gave, else "a customer".
pub fn who(name: Option<&str>) -> String {
    name.map_or_else(|| t("console.a_customer").to_string(), str::to_string)
}

/// What a notice says for a user event, with the customer's check-in where there is one.
pub fn notice(event: &UserEvent) -> String {
    let with_reason = |text: String, reason: &Option<String>| match reason {
        Some(reason) => tf("notice.with_reason", &[("text", &text), ("reason", reason)]),
        None => text,
    };
    match event {
        UserEvent::CustomerWaiting {
            queue_length,
            customer_name,
            reason,
            ..
        } => with_reason(
            tn(
                "notice.waiting",
                *queue_length as i64,
                &[("who", &who(customer_name.as_deref()))],
            ),
            reason,
        ),
        UserEvent::CallStarted {
            customer_name,
            reason,
            ..
        } => with_reason(
            match customer_name {
                Some(name) => tf("notice.call_started_with", &[("who", name)]),
                None => t("notice.call_started").to_string(),
            },
            reason,
        ),
        UserEvent::CallEnded { reason, .. } => {
            crate::logic::ending::end_sentence(*reason, Some(callqueue_protocol::Role::Specialist))
                .to_string()
        }
        UserEvent::CustomerPresence {
            connected: true, ..
        } => t("notice.customer_here").to_string(),
        UserEvent::CustomerPresence {
            connected: false, ..
        } => t("notice.customer_gone").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_each_answer_before_the_next_step() {
        let (mut h, first) = Handshake::start("t".into());
        assert_eq!(first, ClientMessage::AuthRequest { token: "t".into() });
        // An event before authentication is ignored.
        let early = ServerMessage::StartUserEventResponse { success: true };
        assert_eq!(h.on_message(early), Step::Nothing);
        let ok = ServerMessage::AuthResponse {
            success: true,
            message: None,
        };
        assert_eq!(
            h.on_message(ok),
            Step::Send(ClientMessage::StartUserEventRequest)
        );
        assert_eq!(
            h.on_message(ServerMessage::StartUserEventResponse { success: true }),
            Step::Ready
        );
        assert_eq!(h.stage, Stage::Ready);
    }

    #[test]
    fn a_refusal_stops_the_handshake() {
        let (mut h, _) = Handshake::start("t".into());
        let no = ServerMessage::AuthResponse {
            success: false,
            message: Some("invalid or expired token".into()),
        };
        assert_eq!(
            h.on_message(no),
            Step::Refused("invalid or expired token".into())
        );
        assert_eq!(h.stage, Stage::Refused);
    }

    #[test]
    fn notices_read_well() {
        let e = UserEvent::CustomerWaiting {
            group_name: "default".into(),
            reservation_sid: "r".into(),
            queue_length: 3,
            customer_name: None,
            reason: None,
        };
        assert_eq!(notice(&e), "A customer is waiting (3 in the queue)");
        let e = UserEvent::CustomerWaiting {
            group_name: "default".into(),
            reservation_sid: "r".into(),
            queue_length: 1,
            customer_name: Some("Anna".into()),
            reason: Some("Router".into()),
        };
        assert_eq!(notice(&e), "Anna is waiting (1 in the queue) — “Router”");
    }
}
