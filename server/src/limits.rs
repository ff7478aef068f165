//! Abuse limits: who a client is (its address), how often it may join the queue, sign in and
//! send channel messages, and how many streams it may hold open at once.
//!
//! Rates are governor's keyed GCRA limiters (a burst, then a steady refill). Sign-in failures
//! for one user id from one address get growing delays on top, counted here by hand: governor's
//! quotas refill at a fixed rate and have no notion of "the more it fails, the longer it waits".

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::http::HeaderMap;
use governor::{
    Quota, RateLimiter, clock::Clock, clock::DefaultClock, state::keyed::DefaultKeyedStateStore,
};

use crate::config::Config;

/// A request over a limit: what to tell the client and when to try again (the HTTP layer
/// answers 429 with `Retry-After`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub message: String,
    /// Seconds.
    pub retry_after: u64,
}

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// Failures before sign-in attempts for one user id from one address start to wait.
const FREE_FAILURES: u32 = 3;
/// The longest a user id waits between sign-in attempts from one address after many failures.
const MAX_SIGN_IN_DELAY: Duration = Duration::from_secs(15 * 60);
/// Failures for one user id, from anywhere, before every attempt for it is slowed down.
const ACCOUNT_FREE_FAILURES: u32 = 50;
/// How long each attempt for such a user id waits before its secret is checked: a guesser
/// spread over many addresses gets far fewer guesses, the owner still signs in (a second
/// later), and nobody can lock an account by failing on purpose.
const ACCOUNT_SLOWDOWN: Duration = Duration::from_secs(2);
/// Most (user id, address) pairs and user ids whose failures are remembered at once (oldest
/// forgotten first).
const MAX_TRACKED_USERS: usize = 10_000;

/// Most ICE candidates one signal socket may send at once (see [`Limits::candidate_limiter`]).
pub const CANDIDATE_BURST: u32 = 200;

/// The key a client's limits are counted under: an IPv4 address as it is (also when it reaches
/// a server listening on `[::]` as `::ffff:a.b.c.d`), an IPv6 address by its /64. One
/// subscriber usually gets a whole /64 (RFC 6177) and may use any address in it, so keying by
/// the full address would let one client rotate past every limit.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u64::MAX as u128))),
        v4 => v4,
    }
}

/// A `--trusted-proxy` value: an address (`10.0.0.5`, `::1`) or a CIDR range (`10.0.0.0/8`).
pub fn parse_proxy(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    if s.contains('/') {
        s.parse::<ipnet::IpNet>()
            .map(|net| net.trunc())
            .map_err(|e| format!("{s:?}: {e} (an address or a range such as 10.0.0.0/8)"))
    } else {
        s.parse::<IpAddr>()
            .map(|ip| ipnet::IpNet::from(ip.to_canonical()))
            .map_err(|e| format!("{s:?}: {e} (an address or a range such as 10.0.0.0/8)"))
    }
}

/// How many of something each client holds open, each client at most `cap`.
struct Held {
    cap: u32,
    counts: Mutex<HashMap<IpAddr, u32>>,
}

impl Held {
    fn new(cap: u32) -> Self {
        Self {
            cap,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// One more for `key`, unless it already holds `cap`.
    fn take(&self, key: IpAddr) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(key).or_insert(0);
        if *n >= self.cap {
            return false;
        }
        *n += 1;
        true
    }

    fn give_back(&self, key: IpAddr) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&key);
            }
        }
    }
}

/// The server's abuse limits, shared by every request.
pub struct Limits {
    enabled: bool,
    /// The server speaks HTTPS itself (`--tls-cert` or `--acme-domain`).
    tls: bool,
    trusted_proxies: Vec<ipnet::IpNet>,
    joins: Keyed<IpAddr>,
    sign_ins: Keyed<IpAddr>,
    message_quota: Quota,
    streams: Held,
    connections: Held,
    /// Failures per user id and client address: these wait.
    failures: Mutex<HashMap<(String, IpAddr), Failures>>,
    /// Failures per user id from anywhere: past a ceiling these are slowed.
    account_failures: Mutex<HashMap<String, Failures>>,
    clock: DefaultClock,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    /// No attempt for this user id before then.
    wait_until: Instant,
}

fn per_minute(n: u32) -> Quota {
    let n = NonZeroU32::new(n.max(1)).expect("at least one");
    Quota::per_minute(n).allow_burst(n)
}

impl Limits {
    pub fn new(config: &Config) -> Arc<Self> {
        let rate = NonZeroU32::new(config.messages_per_second.max(1)).expect("at least one");
        Arc::new(Self {
            enabled: config.rate_limits,
            tls: config.tls.is_some(),
            trusted_proxies: config.trusted_proxies.clone(),
            joins: RateLimiter::keyed(per_minute(config.joins_per_minute)),
            sign_ins: RateLimiter::keyed(per_minute(config.sign_ins_per_minute)),
            message_quota: Quota::per_second(rate)
                .allow_burst(rate.saturating_mul(NonZeroU32::new(2).expect("two"))),
            streams: Held::new(config.streams_per_client),
            connections: Held::new(config.connections_per_client),
            failures: Mutex::new(HashMap::new()),
            account_failures: Mutex::new(HashMap::new()),
            clock: DefaultClock::default(),
        })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether `ip` is one of the trusted proxies (compared in canonical form: a server on
    /// `[::]` sees an IPv4 proxy as `::ffff:a.b.c.d`).
    fn trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// The client behind a request from `peer`, as its [`client_key`]: the peer itself, or,
    /// when the peer is a trusted proxy, the nearest `X-Forwarded-For` hop that is not one of
    /// ours (hops further left are written by the client and prove nothing).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        client_key(self.forwarded_for(peer, headers))
    }

    fn forwarded_for(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusted(peer) {
            return peer;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.trusted(ip) => continue,
                Ok(ip) => return ip,
                // A hop we cannot read: stop at the proxy that handed it to us.
                Err(_) => return peer,
            }
        }
        peer
    }

    /// Whether a request came over TLS: always when the server speaks HTTPS itself, through a
    /// trusted proxy when it says `X-Forwarded-Proto: https`.
    pub fn is_https(&self, peer: IpAddr, headers: &HeaderMap) -> bool {
        self.tls
            || self.trusted(peer)
                && headers
                    .get("x-forwarded-proto")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
    }

    fn refused(&self, retry_after: Duration, what: &str) -> Refused {
        let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        Refused {
            message: format!("too many {what}; try again in {secs} s"),
            retry_after: secs,
        }
    }

    fn check(&self, limiter: &Keyed<IpAddr>, client: IpAddr, what: &str) -> Result<(), Refused> {
        if !self.enabled {
            return Ok(());
        }
        limiter
            .check_key(&client)
            .map_err(|not_until| self.refused(not_until.wait_time_from(self.clock.now()), what))
    }

    /// One more reservation created by `client`.
    pub fn join(&self, client: IpAddr) -> Result<(), Refused> {
        self.check(&self.joins, client, "requests to join the queue")
    }

    /// A sign-in attempt by `client` for `user_id`: refused while the client is over its rate
    /// or this user id is waiting after failures from this client (the right secret too, so a
    /// guesser learns nothing); otherwise how long to slow the attempt down (zero, unless the
    /// user id has failed very often from anywhere).
    pub fn sign_in(&self, client: IpAddr, user_id: &str) -> Result<Duration, Refused> {
        if !self.enabled {
            return Ok(Duration::ZERO);
        }
        self.check(&self.sign_ins, client, "sign-in attempts")?;
        let now = Instant::now();
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = failures.get(&(user_id.to_string(), client))
            && f.wait_until > now
        {
            return Err(self.refused(
                f.wait_until - now,
                "failed sign-ins for this user id from this address",
            ));
        }
        drop(failures);
        let accounts = self
            .account_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Ok(match accounts.get(user_id) {
            Some(f) if f.count >= ACCOUNT_FREE_FAILURES => ACCOUNT_SLOWDOWN,
            _ => Duration::ZERO,
        })
    }

    /// The outcome of a sign-in attempt by `client`: success forgets the failures; each
    /// failure past the first few from one address doubles its wait before the next attempt
    /// (1 s, 2 s, 4 s, ... up to 15 min), and counts towards the user id's ceiling.
    pub fn signed_in(&self, client: IpAddr, user_id: &str, ok: bool) {
        if !self.enabled {
            return;
        }
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let mut accounts = self
            .account_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let key = (user_id.to_string(), client);
        if ok {
            failures.remove(&key);
            accounts.remove(user_id);
            return;
        }
        let now = Instant::now();
        let f = remember(&mut failures, key, now);
        f.wait_until = now + sign_in_delay(f.count);
        let a = remember(&mut accounts, user_id.to_string(), now);
        a.wait_until = now + MAX_SIGN_IN_DELAY;
    }

    /// A rate for one channel's messages (each WebSocket gets its own).
    pub fn message_limiter(&self) -> Option<governor::DefaultDirectRateLimiter> {
        self.enabled
            .then(|| RateLimiter::direct(self.message_quota))
    }

    /// The budget for one signal socket's ICE candidates, apart from its other messages: a
    /// gathering, an ICE restart or the messages a page kept while its socket was down come in
    /// bursts of dozens, and must not close the socket. Five times the message rate, bursts of
    /// [`CANDIDATE_BURST`].
    pub fn candidate_limiter(&self) -> Option<governor::DefaultDirectRateLimiter> {
        self.enabled.then(|| {
            let rate = self.message_quota.replenish_interval();
            let quota = Quota::with_period(rate / 5)
                .unwrap_or(self.message_quota)
                .allow_burst(NonZeroU32::new(CANDIDATE_BURST).expect("not zero"));
            RateLimiter::direct(quota)
        })
    }

    /// Holds one of `client`'s stream places until dropped; refused when it has all of them.
    pub fn open_stream(
        self: &Arc<Self>,
        client: IpAddr,
        kind: crate::metrics::Connection,
    ) -> Result<StreamPermit, Refused> {
        if !self.enabled {
            return Ok(StreamPermit {
                held: None,
                _open: crate::metrics::Open::new(kind),
            });
        }
        if !self.streams.take(client) {
            return Err(Refused {
                message: format!(
                    "this address already has {} live connections open; close some first",
                    self.streams.cap
                ),
                retry_after: 5,
            });
        }
        Ok(StreamPermit {
            held: Some((self.clone(), client)),
            _open: crate::metrics::Open::new(kind),
        })
    }

    /// Holds one of the connection places of the client at `peer` (the address that connected)
    /// until dropped; `None` when it has all of them. A trusted proxy carries everyone's
    /// connections and is not capped.
    pub fn open_connection(self: &Arc<Self>, peer: IpAddr) -> Option<ConnectionPermit> {
        if !self.enabled || self.trusted(peer) {
            return Some(ConnectionPermit(None));
        }
        let key = client_key(peer);
        self.connections
            .take(key)
            .then(|| ConnectionPermit(Some((self.clone(), key))))
    }

    /// Connections one client address may hold open.
    pub fn connections_per_client(&self) -> u32 {
        self.connections.cap
    }

    /// Forgets what no longer limits anyone (called now and then by the sweeper).
    pub fn purge(&self) {
        self.joins.retain_recent();
        self.sign_ins.retain_recent();
        let now = Instant::now();
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, f| f.wait_until + MAX_SIGN_IN_DELAY > now);
        self.account_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, f| f.wait_until > now);
    }
}

/// One more failure for `key`, in a map of at most [`MAX_TRACKED_USERS`] (the entry whose wait
/// ends soonest is forgotten to make room).
fn remember<K: std::hash::Hash + Eq + Clone>(
    map: &mut HashMap<K, Failures>,
    key: K,
    now: Instant,
) -> &mut Failures {
    if map.len() >= MAX_TRACKED_USERS
        && !map.contains_key(&key)
        && let Some(oldest) = map
            .iter()
            .min_by_key(|(_, f)| f.wait_until)
            .map(|(k, _)| k.clone())
    {
        map.remove(&oldest);
    }
    let f = map.entry(key).or_insert(Failures {
        count: 0,
        wait_until: now,
    });
    f.count += 1;
    f
}

/// The wait after `count` consecutive failures.
fn sign_in_delay(count: u32) -> Duration {
    if count < FREE_FAILURES {
        return Duration::ZERO;
    }
    let exp = (count - FREE_FAILURES).min(20);
    Duration::from_secs(1u64 << exp).min(MAX_SIGN_IN_DELAY)
}

/// One open stream of a client; gives its place back when dropped.
pub struct StreamPermit {
    held: Option<(Arc<Limits>, IpAddr)>,
    /// Counted among the open connections while it lives.
    _open: crate::metrics::Open,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        if let Some((limits, client)) = self.held.take() {
            limits.streams.give_back(client);
        }
    }
}

/// One open connection of a client; gives its place back when dropped.
pub struct ConnectionPermit(Option<(Arc<Limits>, IpAddr)>);

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        if let Some((limits, client)) = self.0.take() {
            limits.connections.give_back(client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ES: crate::metrics::Connection = crate::metrics::Connection::EventStream;

    fn limits(tweak: impl FnOnce(&mut Config)) -> Arc<Limits> {
        let mut config = Config::for_tests("unused".into());
        config.rate_limits = true;
        tweak(&mut config);
        Limits::new(&config)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_first_hop_not_ours() {
        let l = limits(|c| {
            c.trusted_proxies = vec![
                parse_proxy("10.0.0.1").unwrap(),
                parse_proxy("10.0.0.2").unwrap(),
            ]
        });
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "1.2.3.4, 5.6.7.8, 10.0.0.2".parse().unwrap(),
        );
        assert_eq!(l.client(ip("10.0.0.1"), &h), ip("5.6.7.8"));
        // An untrusted peer's header is ignored.
        assert_eq!(l.client(ip("9.9.9.9"), &h), ip("9.9.9.9"));
        // A trusted peer without the header is the client.
        assert_eq!(l.client(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        h.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(l.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(l.is_https(ip("10.0.0.1"), &h));
        assert!(!l.is_https(ip("9.9.9.9"), &h));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa::1")),
            client_key(ip("2001:db8:1:2:ffff:1:2:3"))
        );
        assert_eq!(client_key(ip("2001:db8:1:2::1")), ip("2001:db8:1:2::"));
        assert_ne!(
            client_key(ip("2001:db8:1:2::1")),
            client_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_key(ip("192.0.2.7")), ip("192.0.2.7"));
        // The whole /64 shares one allowance.
        let l = limits(|c| c.joins_per_minute = 2);
        l.join(l.client(ip("2001:db8::1"), &HeaderMap::new()))
            .unwrap();
        l.join(l.client(ip("2001:db8::2"), &HeaderMap::new()))
            .unwrap();
        assert!(
            l.join(l.client(ip("2001:db8::3"), &HeaderMap::new()))
                .is_err()
        );
        l.join(l.client(ip("2001:db8:0:1::1"), &HeaderMap::new()))
            .expect("the next /64 is someone else");
    }

    #[test]
    fn trusted_proxies_are_ranges_and_match_mapped_addresses() {
        let l = limits(|c| {
            c.trusted_proxies = vec![
                parse_proxy("10.0.0.0/8").unwrap(),
                parse_proxy("::1").unwrap(),
            ]
        });
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9, 10.9.8.7".parse().unwrap());
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        // An IPv4 proxy as a server on [::] sees it.
        assert_eq!(l.client(ip("::ffff:10.1.2.3"), &h), ip("203.0.113.9"));
        assert!(l.is_https(ip("::ffff:10.1.2.3"), &h));
        assert_eq!(l.client(ip("::1"), &h), ip("203.0.113.9"));
        assert_eq!(l.client(ip("11.0.0.1"), &h), ip("11.0.0.1"));
        assert!(parse_proxy("10.0.0.0/33").is_err());
        assert!(parse_proxy("proxy.example").is_err());
        assert_eq!(parse_proxy("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
    }

    #[test]
    fn connections_per_client_are_capped_but_not_a_proxys() {
        let l = limits(|c| {
            c.connections_per_client = 2;
            c.trusted_proxies = vec![parse_proxy("127.0.0.9").unwrap()];
        });
        let a = l.open_connection(ip("127.0.0.1")).unwrap();
        let _b = l.open_connection(ip("::ffff:127.0.0.1")).unwrap();
        assert!(l.open_connection(ip("127.0.0.1")).is_none());
        let _other = l.open_connection(ip("127.0.0.2")).unwrap();
        let proxy: Vec<_> = (0..5).map(|_| l.open_connection(ip("127.0.0.9"))).collect();
        assert!(proxy.iter().all(Option::is_some));
        drop(a);
        let _c = l.open_connection(ip("127.0.0.1")).unwrap();
    }

    #[test]
    fn joins_are_limited_per_client_and_off_means_off() {
        let l = limits(|c| c.joins_per_minute = 3);
        for _ in 0..3 {
            l.join(ip("127.0.0.1")).unwrap();
        }
        match l.join(ip("127.0.0.1")) {
            Err(Refused { retry_after, .. }) => {
                assert!((1..=20).contains(&retry_after))
            }
            other => panic!("{other:?}"),
        }
        l.join(ip("127.0.0.2"))
            .expect("another client has its own allowance");
        let off = limits(|c| {
            c.joins_per_minute = 1;
            c.rate_limits = false;
        });
        for _ in 0..100 {
            off.join(ip("127.0.0.1")).unwrap();
        }
    }

    #[test]
    fn sign_in_failures_make_a_user_id_wait_longer_each_time_from_that_address_only() {
        assert_eq!(sign_in_delay(1), Duration::ZERO);
        assert_eq!(sign_in_delay(3), Duration::from_secs(1));
        assert_eq!(sign_in_delay(4), Duration::from_secs(2));
        assert_eq!(sign_in_delay(5), Duration::from_secs(4));
        assert_eq!(sign_in_delay(40), MAX_SIGN_IN_DELAY);
        let l = limits(|c| c.sign_ins_per_minute = 1000);
        let (me, other) = (ip("127.0.0.1"), ip("127.0.0.2"));
        for _ in 0..FREE_FAILURES + 2 {
            l.signed_in(me, "dr", false);
        }
        assert!(matches!(l.sign_in(me, "dr"), Err(Refused { .. })));
        assert_eq!(
            l.sign_in(other, "dr"),
            Ok(Duration::ZERO),
            "the owner elsewhere"
        );
        assert_eq!(l.sign_in(me, "someone-else"), Ok(Duration::ZERO));
        l.signed_in(me, "dr", true);
        assert_eq!(l.sign_in(me, "dr"), Ok(Duration::ZERO));
    }

    #[test]
    fn a_guesser_on_many_addresses_is_slowed_never_locks_the_account() {
        let l = limits(|c| c.sign_ins_per_minute = 1000);
        for i in 0..ACCOUNT_FREE_FAILURES {
            let from = IpAddr::from([10, 0, (i / 250) as u8, (i % 250) as u8]);
            assert_eq!(l.sign_in(from, "dr"), Ok(Duration::ZERO));
            l.signed_in(from, "dr", false);
        }
        // Anyone may still try, from a fresh address, a little later.
        assert_eq!(l.sign_in(ip("192.0.2.1"), "dr"), Ok(ACCOUNT_SLOWDOWN));
        assert_eq!(l.sign_in(ip("192.0.2.1"), "other"), Ok(Duration::ZERO));
        l.signed_in(ip("192.0.2.1"), "dr", true);
        assert_eq!(l.sign_in(ip("192.0.2.2"), "dr"), Ok(Duration::ZERO));
    }

    #[test]
    fn streams_per_client_are_capped_and_given_back() {
        let l = limits(|c| c.streams_per_client = 2);
        let a = l.open_stream(ip("127.0.0.1"), ES).unwrap();
        let _b = l.open_stream(ip("127.0.0.1"), ES).unwrap();
        assert!(l.open_stream(ip("127.0.0.1"), ES).is_err());
        let _other = l.open_stream(ip("127.0.0.2"), ES).unwrap();
        drop(a);
        let _c = l.open_stream(ip("127.0.0.1"), ES).unwrap();
    }
}
