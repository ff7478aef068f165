//! Everything an operator can set: by flag or environment variable (see `main.rs`).

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, time::Duration};

use callqueue_protocol::{Capability, Role};

/// The server's settings once parsed.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub database: crate::db::Location,
    /// The built app (`trunk build` output); `None` serves the API alone.
    pub dist: Option<PathBuf>,
    /// Groups customers may queue in.
    pub groups: Vec<String>,
    /// How long a reservation may wait unmatched before it expires.
    pub queue_timeout: Duration,
    /// How long a matched customer has to join the call before the reservation expires.
    pub join_window: Duration,
    /// How much longer a matched customer may take, once, on asking ("I need a moment").
    pub join_extension: Duration,
    /// Whether customers must give a name at check-in.
    pub require_name: bool,
    /// `settings.limits.max_duration_seconds` of new `appointment` calls.
    pub call_seconds: u32,
    /// The longest session anyone may extend a call to.
    pub max_call_seconds: u32,
    /// Capabilities each role holds in an `appointment` call.
    pub grants: HashMap<Role, Vec<Capability>>,
    /// Shared secret for the provider webhook; `None` turns the endpoint off.
    pub webhook_secret: Option<String>,
    /// How often the expiry sweeper looks at deadlines.
    pub sweep_interval: Duration,
    /// How often expired sessions and tokens are deleted (and forgotten limits dropped).
    pub purge_interval: Duration,
    /// How long an ended call's data (its chat, its rating, the check-in) is kept
    /// (`--keep-calls-days`).
    pub keep_calls: Duration,
    /// The SSE heartbeat comment interval.
    pub heartbeat: Duration,
    /// Per-client rate limits and stream caps (off for load tests and benchmarks).
    pub rate_limits: bool,
    /// Reservations one client address may create per minute (a burst of as many).
    pub joins_per_minute: u32,
    /// Sign-in attempts one client address may make per minute.
    pub sign_ins_per_minute: u32,
    /// Messages per second one WebSocket may send (bursts of twice that).
    pub messages_per_second: u32,
    /// Event streams and WebSockets one client address may hold open at once.
    pub streams_per_client: u32,
    /// Open connections the server accepts at once; more are refused with a 503.
    pub max_connections: usize,
    /// Connections one client address (an IPv6 /64) may hold open at once; more are refused
    /// with a 429. Trusted proxies are not capped.
    pub connections_per_client: u32,
    /// How long a connection may wait for, or take to send, a request head: an idle kept-alive
    /// connection and a slow sender are closed after it.
    pub idle_timeout: Duration,
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For` and
    /// `X-Forwarded-Proto` are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// STUN and TURN addresses handed to call members (`stun:host:port`, `turn:host:port`).
    pub ice_servers: Vec<String>,
    /// coturn's `static-auth-secret`: TURN addresses get short-lived credentials made with it.
    pub turn_secret: Option<String>,
    /// Members use the TURN relays only (no direct path between them).
    pub ice_relay_only: bool,
    /// How long a call member whose signal socket dropped still counts as in the call.
    pub peer_grace: Duration,
    /// Where `/metrics` is served (Prometheus text); `None`: no metrics.
    pub metrics_addr: Option<SocketAddr>,
    /// HTTPS on `addr`, with its certificate from files or an ACME authority; `None`: plain HTTP.
    pub tls: Option<crate::tls::Source>,
    /// With HTTPS on: the plain-HTTP listener (ACME challenges, redirects to HTTPS).
    pub http_addr: Option<SocketAddr>,
}

/// Defaults a deployment can keep: generous for people (a household or an office behind one
/// address), tight for scripts.
pub mod defaults {
    pub const JOINS_PER_MINUTE: u32 = 20;
    pub const SIGN_INS_PER_MINUTE: u32 = 10;
    pub const MESSAGES_PER_SECOND: u32 = 20;
    pub const STREAMS_PER_CLIENT: u32 = 64;
    pub const MAX_CONNECTIONS: usize = 16_384;
    /// Twice the streams: a client's streams and a browser's few request connections.
    pub const CONNECTIONS_PER_CLIENT: u32 = 2 * STREAMS_PER_CLIENT;
    pub const IDLE_TIMEOUT_SECS: u64 = 30;
}

impl Config {
    /// The grants the design names: specialists may change the session length, patients may not.
    pub fn default_grants() -> HashMap<Role, Vec<Capability>> {
        use Capability::*;
        HashMap::from([
            (
                Role::Specialist,
                vec![
                    JoinCall,
                    SendAudio,
                    SendVideo,
                    UpdateCall,
                    UpdateCallSettings,
                    ChangeMaxDuration,
                ],
            ),
            (Role::Patient, vec![JoinCall, SendAudio, SendVideo]),
        ])
    }

    /// Settings fit for tests: a database path of the test's own and short timers.
    #[cfg(any(test, feature = "test-support"))]
    pub fn for_tests(database: PathBuf) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database: database.into(),
            dist: None,
            groups: vec![callqueue_protocol::DEFAULT_GROUP.to_string()],
            queue_timeout: Duration::from_secs(1800),
            join_window: Duration::from_secs(120),
            join_extension: Duration::from_secs(60),
            require_name: false,
            call_seconds: callqueue_protocol::DEFAULT_MAX_DURATION_SECONDS,
            max_call_seconds: 4 * 3600,
            grants: Self::default_grants(),
            webhook_secret: None,
            sweep_interval: Duration::from_millis(100),
            purge_interval: Duration::from_secs(60),
            keep_calls: Duration::from_secs(30 * 86_400),
            heartbeat: Duration::from_secs(callqueue_protocol::HEARTBEAT_SECS),
            // Tests that check the limits turn them on.
            rate_limits: false,
            joins_per_minute: defaults::JOINS_PER_MINUTE,
            sign_ins_per_minute: defaults::SIGN_INS_PER_MINUTE,
            messages_per_second: defaults::MESSAGES_PER_SECOND,
            streams_per_client: defaults::STREAMS_PER_CLIENT,
            max_connections: defaults::MAX_CONNECTIONS,
            connections_per_client: defaults::CONNECTIONS_PER_CLIENT,
            idle_timeout: Duration::from_secs(defaults::IDLE_TIMEOUT_SECS),
            trusted_proxies: Vec::new(),
            ice_servers: Vec::new(),
            turn_secret: None,
            ice_relay_only: false,
            peer_grace: Duration::from_secs(callqueue_protocol::signal::PEER_GRACE_SECS),
            metrics_addr: None,
            tls: None,
            http_addr: None,
        }
    }

    pub fn capabilities(&self, role: Role) -> Vec<Capability> {
        self.grants.get(&role).cloned().unwrap_or_default()
    }
}

/// Parses `ROLE=cap,cap` (a `--grant` flag) into its parts.
pub fn parse_grant(s: &str) -> Result<(Role, Vec<Capability>), String> {
    let (role, caps) = s
        .split_once('=')
        .ok_or_else(|| format!("expected ROLE=capability,capability, got {s:?}"))?;
    let role = Role::parse(role.trim()).ok_or_else(|| format!("unknown role {role:?}"))?;
    let caps = caps
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| Capability::parse(c).ok_or_else(|| format!("unknown capability {c:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((role, caps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_and_reject_unknown_names() {
        let (role, caps) = parse_grant("patient=join-call, send-audio").unwrap();
        assert_eq!(role, Role::Patient);
        assert_eq!(caps, vec![Capability::JoinCall, Capability::SendAudio]);
        assert!(parse_grant("doctor=join-call").is_err());
        assert!(parse_grant("patient=fly").is_err());
        assert!(parse_grant("patient").is_err());
    }
}
