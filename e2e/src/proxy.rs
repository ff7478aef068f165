//! A TCP proxy on loopback that a test puts between the browsers and the server, so it can cut
//! every HTTP, event-stream and WebSocket connection at once (a proxy timeout, a node redeploy,
//! a Wi-Fi hand-over) and refuse new ones for a while, without touching the media path.
//!
//! By hand on tokio rather than a proxy crate: all it does is accept, `copy_bidirectional`,
//! and abort on command; the cut is the point, and no crate offers it.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

#[derive(Default)]
struct State {
    /// Until when new connections are refused (closed as soon as they are accepted).
    refuse_until: Option<Instant>,
    connections: Vec<JoinHandle<()>>,
}

/// The proxy; dropping it stops it and every connection through it.
pub struct Proxy {
    /// `http://127.0.0.1:port`, to open in the browsers instead of the server's address.
    pub base: String,
    state: Arc<Mutex<State>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Forwards a new loopback port to `target` (`127.0.0.1:port`).
    pub async fn start(target: String) -> crate::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let mut state = shared.lock().unwrap_or_else(|e| e.into_inner());
                if state.refuse_until.is_some_and(|t| Instant::now() < t) {
                    drop(inbound);
                    continue;
                }
                state.connections.retain(|c| !c.is_finished());
                let target = target.clone();
                state.connections.push(tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Ok(Self {
            base,
            state,
            accept,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Drops every open connection now and refuses new ones for `down`.
    pub fn cut(&self, down: Duration) -> usize {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.refuse_until = Some(Instant::now() + down);
        let cut = state.connections.len();
        for c in state.connections.drain(..) {
            c.abort();
        }
        cut
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut(Duration::ZERO);
    }
}
