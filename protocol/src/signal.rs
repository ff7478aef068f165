//! The call's signalling: what the two members' browsers say to each other through
//! `GET /api/calls/{type}/{id}/signal` (a WebSocket per member), and what the server says about
//! who is there.
//!
//! Every page load is a new `session` (a random id the page makes): the server stamps each
//! relayed message with its sender's session, and a page drops messages from any session but
//! the peer's current one, so a reloaded page's stale offers and candidates cannot confuse the
//! new connection.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Role;

/// The longest chat message, in characters.
pub const CHAT_MAX_CHARS: usize = 1000;

/// Whether a chat message's text may be sent: 1–1,000 characters, not only white space, no
/// control characters but line breaks and tabs.
pub fn is_chat_text(text: &str) -> bool {
    !text.trim().is_empty() && crate::is_plain_text(text, CHAT_MAX_CHARS)
}

/// A message in the call's chat, as the server stored it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatMessage {
    /// The message's number in its call: 1, 2, 3… in the order the server took them.
    pub seq: u64,
    /// The id the sender's page gave it: the same id sent again (after a reconnect) is the
    /// same message, not a second one.
    pub id: String,
    /// Who sent it.
    pub role: Role,
    /// The sender's display name, if they have one.
    #[serde(default)]
    pub name: Option<String>,
    /// Plain text (never markup), line breaks kept.
    pub text: String,
    /// When the server took it.
    #[serde(deserialize_with = "crate::rfc3339::required")]
    pub at: DateTime<Utc>,
}

/// Close codes of the signal socket (application range 4000–4999).
pub mod close {
    /// Another tab of the same member took the call over.
    pub const REPLACED: u16 = 4009;
    /// The call has ended: nothing more to signal.
    pub const CALL_ENDED: u16 = 4010;
    /// No `hello` within the deadline, or another message first.
    pub const NO_HELLO: u16 = 4001;
    /// Messages came faster than the rate allows.
    pub const TOO_MANY_MESSAGES: u16 = 4029;
}

/// How long, by default, a member whose signal socket dropped (not closed with `bye`) still
/// counts as in the call: the other member hears `peer_left` only after this, and a socket that
/// comes back within it with the same session continues that session (a proxy timeout, a node
/// restart, a Wi-Fi hand-over must not tear down media that still flow).
pub const PEER_GRACE_SECS: u64 = 10;

/// Largest signal message accepted (an SDP offer with many codecs is a few KB).
pub const MAX_SIGNAL_MESSAGE: usize = 64 * 1024;

/// A session description: `type` is `offer`, `answer`, `pranswer` or `rollback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionDescription {
    #[serde(rename = "type")]
    pub kind: SdpKind,
    #[serde(default)]
    pub sdp: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SdpKind {
    Offer,
    Answer,
    Pranswer,
    Rollback,
}

/// An ICE candidate as `RTCIceCandidate.toJSON()` gives it; an empty `candidate` is the end of
/// candidates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(default, rename = "sdpMid")]
    pub sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex")]
    pub sdp_m_line_index: Option<u16>,
}

/// What a member is sending: shown to the other side ("muted", "camera off").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MediaState {
    pub audio: bool,
    pub video: bool,
}

/// An ICE server as `RTCIceServer` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The other member, as the server sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Peer {
    pub session: String,
    pub role: Role,
    pub media: MediaState,
}

/// What a member's page sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SignalClient {
    /// The first message: this page load's session and what it sends.
    Hello {
        session: String,
        media: MediaState,
        /// How many messages (all but `welcome` and `error`) this session has received on its
        /// earlier connections: the server sends again what came after them.
        #[serde(default)]
        received: u64,
        /// The number (`seq`) of the last chat message this page has: the server sends the
        /// rest of the conversation after `welcome` (all of it for a new page, 0).
        #[serde(default)]
        chat: u64,
    },
    /// `to` is the peer session it is meant for: the server drops it when that session is no
    /// longer the other member's (a message queued across a reconnect, for a page since
    /// reloaded).
    Description {
        description: SessionDescription,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    Candidate {
        candidate: IceCandidate,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    /// Microphone or camera switched on or off.
    Media { media: MediaState },
    /// The customer asks the specialist (who alone restarts ICE) for an ICE restart.
    RestartIce {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    /// A chat message (see [`is_chat_text`]); `id` is the page's own for it (a valid id):
    /// answered with `chat` to both members, once however often it is sent.
    Chat { id: String, text: String },
    /// The page is closing or leaving the call: gone for good, not a dropped connection that
    /// may come back (which the server waits for, see [`PEER_GRACE_SECS`]).
    Bye,
}

/// What the server sends a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SignalServer {
    /// The answer to `hello`: who one is, whether to be the polite peer, the ICE servers to
    /// use, and the other member if they are connected.
    Welcome {
        role: Role,
        polite: bool,
        ice_servers: Vec<IceServer>,
        /// Use only the TURN relays (`iceTransportPolicy: "relay"`): hides both members'
        /// addresses from each other.
        #[serde(default)]
        relay_only: bool,
        #[serde(default)]
        peer: Option<Peer>,
    },
    /// The other member connected (a reload is a new session).
    PeerJoined {
        peer: Peer,
    },
    /// The other member's session is gone (closed the page, lost the network, left).
    PeerLeft {
        session: String,
    },
    Description {
        from: String,
        description: SessionDescription,
    },
    Candidate {
        from: String,
        candidate: IceCandidate,
    },
    Media {
        from: String,
        media: MediaState,
    },
    /// The other member (the customer) asks for an ICE restart.
    RestartIce {
        from: String,
    },
    /// Chat messages: as they happen, one at a time (one's own is the acknowledgement, the
    /// other member's is news), or, right after `welcome` with `catch_up`, those after the one
    /// numbered in `hello`'s `chat` (the whole conversation for a new page), in order. The same
    /// `seq` may come twice (around a reconnect). Not counted in `hello`'s `received`: the
    /// chat has its own numbers.
    Chat {
        messages: Vec<ChatMessage>,
        #[serde(default)]
        catch_up: bool,
    },
    Error {
        message: String,
    },
}

impl SignalServer {
    /// Reads a message from the server, with the same result as deserializing a `SignalServer`
    /// (but for `chat`, which the page reads with the browser's own JSON parser: another
    /// six-field struct here cost its download a kilobyte): its `type` first, then the rest as
    /// that variant. By hand because serde's internally
    /// tagged enums buffer every message into a generic tree first, and that machinery was the
    /// largest single piece of the customer's wasm (see `QueueEvent::from_sse`).
    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        #[derive(Deserialize)]
        struct Welcome {
            role: Role,
            polite: bool,
            ice_servers: Vec<IceServer>,
            #[serde(default)]
            relay_only: bool,
            #[serde(default)]
            peer: Option<Peer>,
        }
        #[derive(Deserialize)]
        struct Joined {
            peer: Peer,
        }
        #[derive(Deserialize)]
        struct Left {
            session: String,
        }
        #[derive(Deserialize)]
        struct Description {
            from: String,
            description: SessionDescription,
        }
        #[derive(Deserialize)]
        struct Candidate {
            from: String,
            candidate: IceCandidate,
        }
        #[derive(Deserialize)]
        struct Media {
            from: String,
            media: MediaState,
        }
        #[derive(Deserialize)]
        struct Restart {
            from: String,
        }
        #[derive(Deserialize)]
        struct Failure {
            message: String,
        }
        Ok(match crate::type_tag(text)?.as_str() {
            "welcome" => {
                let m: Welcome = serde_json::from_str(text)?;
                Self::Welcome {
                    role: m.role,
                    polite: m.polite,
                    ice_servers: m.ice_servers,
                    relay_only: m.relay_only,
                    peer: m.peer,
                }
            }
            "peer_joined" => {
                let m: Joined = serde_json::from_str(text)?;
                Self::PeerJoined { peer: m.peer }
            }
            "peer_left" => {
                let m: Left = serde_json::from_str(text)?;
                Self::PeerLeft { session: m.session }
            }
            "description" => {
                let m: Description = serde_json::from_str(text)?;
                Self::Description {
                    from: m.from,
                    description: m.description,
                }
            }
            "candidate" => {
                let m: Candidate = serde_json::from_str(text)?;
                Self::Candidate {
                    from: m.from,
                    candidate: m.candidate,
                }
            }
            "media" => {
                let m: Media = serde_json::from_str(text)?;
                Self::Media {
                    from: m.from,
                    media: m.media,
                }
            }
            "restart_ice" => {
                let m: Restart = serde_json::from_str(text)?;
                Self::RestartIce { from: m.from }
            }
            "error" => {
                let m: Failure = serde_json::from_str(text)?;
                Self::Error { message: m.message }
            }
            other => {
                return Err(serde::de::Error::unknown_variant(
                    other,
                    &[
                        "welcome",
                        "peer_joined",
                        "peer_left",
                        "description",
                        "candidate",
                        "media",
                        "restart_ice",
                        "error",
                    ],
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_read_by_tag_as_serde_reads_them() {
        let peer = Peer {
            session: "s2".into(),
            role: Role::Specialist,
            media: MediaState {
                audio: true,
                video: false,
            },
        };
        let messages = [
            SignalServer::Welcome {
                role: Role::Patient,
                polite: true,
                ice_servers: vec![IceServer {
                    urls: vec!["turn:127.0.0.1:3478".into()],
                    username: Some("u".into()),
                    credential: Some("c".into()),
                }],
                relay_only: true,
                peer: Some(peer.clone()),
            },
            SignalServer::Welcome {
                role: Role::Specialist,
                polite: false,
                ice_servers: Vec::new(),
                relay_only: false,
                peer: None,
            },
            SignalServer::PeerJoined { peer },
            SignalServer::PeerLeft {
                session: "s\"2".into(),
            },
            SignalServer::Description {
                from: "s2".into(),
                description: SessionDescription {
                    kind: SdpKind::Offer,
                    sdp: "v=0\r\n".repeat(100),
                },
            },
            SignalServer::Candidate {
                from: "s2".into(),
                candidate: IceCandidate {
                    candidate: "candidate:1 1 udp 1 127.0.0.1 5 typ host".into(),
                    sdp_mid: Some("0".into()),
                    sdp_m_line_index: Some(0),
                },
            },
            SignalServer::Media {
                from: "s2".into(),
                media: MediaState {
                    audio: false,
                    video: true,
                },
            },
            SignalServer::RestartIce { from: "s2".into() },
            SignalServer::Chat {
                catch_up: false,
                messages: vec![ChatMessage {
                    seq: 3,
                    id: "m1".into(),
                    role: Role::Specialist,
                    name: Some("Dr. Lena Roth".into()),
                    text: "<b>see</b>\nhttps://example.com/a?b=1".into(),
                    at: "2026-12-05T10:00:00.123Z".parse().unwrap(),
                }],
            },
            SignalServer::Chat {
                messages: Vec::new(),
                catch_up: true,
            },
            SignalServer::Error {
                message: "hello first".into(),
            },
        ];
        for message in messages {
            let text = serde_json::to_string(&message).unwrap();
            if matches!(message, SignalServer::Chat { .. }) {
                assert!(SignalServer::from_json(&text).is_err(), "read by the page");
                assert_eq!(
                    serde_json::from_str::<SignalServer>(&text).unwrap(),
                    message
                );
                continue;
            }
            let by_tag = SignalServer::from_json(&text).unwrap();
            assert_eq!(by_tag, message, "{text}");
            assert_eq!(by_tag, serde_json::from_str::<SignalServer>(&text).unwrap());
        }
        // What the derived reader refuses, this one refuses too.
        for bad in [
            r#"{"type":"bye"}"#,
            r#"{"session":"s"}"#,
            r#"{"type":"peer_left"}"#,
            r#"{"type":"welcome","role":"patient","ice_servers":[]}"#,
            r#"{"type":"media","from":"s","media":{"audio":1,"video":true}}"#,
            "[]",
            "",
        ] {
            assert!(SignalServer::from_json(bad).is_err(), "{bad}");
            assert!(serde_json::from_str::<SignalServer>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages_read_as_browsers_write_them() {
        let hello: SignalClient = serde_json::from_str(
            r#"{"type":"hello","session":"s1","media":{"audio":true,"video":false}}"#,
        )
        .unwrap();
        assert_eq!(
            hello,
            SignalClient::Hello {
                session: "s1".into(),
                media: MediaState {
                    audio: true,
                    video: false
                },
                received: 0,
                chat: 0,
            }
        );
        // RTCIceCandidate.toJSON() and RTCSessionDescription.toJSON() as they are.
        let c: SignalClient = serde_json::from_str(
            r#"{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"x"}}"#,
        )
        .unwrap();
        assert!(
            matches!(c, SignalClient::Candidate { candidate, to: None } if candidate.sdp_m_line_index == Some(0))
        );
        let d: SignalClient =
            serde_json::from_str(r#"{"type":"description","description":{"type":"rollback"}}"#)
                .unwrap();
        assert!(
            matches!(d, SignalClient::Description { description, .. } if description.kind == SdpKind::Rollback)
        );
        assert_eq!(
            serde_json::from_str::<SignalClient>(r#"{"type":"bye"}"#).unwrap(),
            SignalClient::Bye
        );
        assert!(serde_json::from_str::<SignalClient>(r#"{"type":"goodbye"}"#).is_err());
        let w = SignalServer::Welcome {
            role: Role::Patient,
            polite: true,
            ice_servers: vec![IceServer {
                urls: vec!["stun:127.0.0.1:3478".into()],
                username: None,
                credential: None,
            }],
            relay_only: false,
            peer: None,
        };
        let json = serde_json::to_string(&w).unwrap();
        assert!(json.contains(r#""type":"welcome""#) && !json.contains("username"));
        assert_eq!(serde_json::from_str::<SignalServer>(&json).unwrap(), w);
    }

    #[test]
    fn chat_text_is_plain_and_bounded() {
        assert!(is_chat_text("I can't hear you"));
        assert!(is_chat_text("line one\nline two"));
        assert!(is_chat_text(&"é".repeat(CHAT_MAX_CHARS)));
        assert!(!is_chat_text(&"é".repeat(CHAT_MAX_CHARS + 1)));
        assert!(!is_chat_text(" \n "));
        assert!(!is_chat_text("bell\u{7}"));
    }
}
