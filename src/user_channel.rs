//! The specialist's per-user WebSocket channel: a fresh token before every attempt, the
//! handshake (see `logic::handshake`) before it counts as live, then user events. The
//! reconnecting is the shared engine's (`live.rs`).

use std::{cell::RefCell, rc::Rc};

use callqueue_protocol::{ServerMessage, UserEvent};
use leptos::prelude::*;

use crate::{
    api,
    live::{After, Connection, LiveOptions, Transport, use_live},
    logic::handshake::{Handshake, Step},
};

/// The channel's address: `ws(s)://host/api/ws` on the same origin.
pub fn ws_url() -> String {
    api::ws_url("/ws")
}

/// The close code of a channel whose session ended (signed out elsewhere, disabled, expired).
pub const CLOSE_SESSION_ENDED: u16 = 4401;

/// Keeps the signed-in specialist's channel open while the calling component lives; `on_event`
/// gets each user event, `on_signed_out` is called once the session is found to have ended (the
/// server closed the channel for it, or refuses a new token). Returns the channel's state.
pub fn use_user_channel(
    on_event: impl Fn(UserEvent) + 'static,
    on_signed_out: impl Fn() + 'static,
) -> Signal<Connection> {
    let on_signed_out: Rc<dyn Fn()> = Rc::new(on_signed_out);
    #[derive(Default)]
    struct Talk {
        handshake: Handshake,
        first: Option<String>,
    }
    let talk = Rc::new(RefCell::new(Talk::default()));
    let prepare = {
        let talk = talk.clone();
        let on_signed_out = on_signed_out.clone();
        Rc::new(move || {
            let talk = talk.clone();
            let on_signed_out = on_signed_out.clone();
            Box::pin(async move {
                match api::stream_token().await {
                    Ok(token) => {
                        let (handshake, first) = Handshake::start(token.token);
                        *talk.borrow_mut() = Talk {
                            handshake,
                            first: serde_json::to_string(&first).ok(),
                        };
                        Ok(())
                    }
                    // Signed out: nothing to retry until the page signs in again.
                    Err(e) if e.status() == Some(401) => {
                        on_signed_out();
                        Err(After::Stop)
                    }
                    Err(_) => Err(After::Retry),
                }
            }) as crate::live::LocalFuture<Result<(), After>>
        })
    };
    let on_open = {
        let talk = talk.clone();
        Rc::new(move |link: &crate::live::LiveHandle| {
            if let Some(first) = talk.borrow_mut().first.take() {
                link.send(&first);
            }
        })
    };
    let on_message = Rc::new(move |link: &crate::live::LiveHandle, _: &str, text: &str| {
        let Ok(msg) = ServerMessage::from_json(text) else {
            leptos::logging::warn!("ignored a malformed channel message");
            return;
        };
        let step = talk.borrow_mut().handshake.on_message(msg);
        match step {
            Step::Send(reply) => {
                link.send(&serde_json::to_string(&reply).unwrap_or_default());
            }
            Step::Ready => link.set_live(),
            Step::Event(event) => on_event(event),
            Step::Refused(why) => crate::debug_log!("user channel refused: {why}"),
            Step::Nothing => {}
        }
    });
    use_live(
        Signal::stored(Some(ws_url())),
        LiveOptions {
            transport: Transport::WebSocket,
            prepare: Some(prepare),
            on_open: Some(on_open),
            on_close: Some(Rc::new(move |_: &crate::live::LiveHandle, code: u16| {
                if code == CLOSE_SESSION_ENDED {
                    on_signed_out();
                    After::Stop
                } else {
                    After::Retry
                }
            })),
            on_message,
            live_after_handshake: true,
            ..Default::default()
        },
    )
    .state
}
