//! The command line: `serve` runs the server, `agent add` creates a specialist's sign-in.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use callqueue_protocol::{Capability, Role};
use callqueue_server::{
    app::Server,
    config::{Config, defaults, parse_grant},
    db,
    store::{Store, split_groups},
    tls, tokens,
};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "callqueue-server",
    version,
    about = "The callqueue queue and call server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as `text` for people or `json` (one object per line, each request's lines
    /// with its id) for a log collector.
    #[arg(long, global = true, env = "CALLQUEUE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and the built app.
    Serve(Box<ServeArgs>),
    /// Manage specialists' sign-ins.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Create a specialist (or give an existing one a new secret) and print how to sign in.
    Add {
        /// The user id to sign in with.
        name: String,
        /// The role: only `specialist` may serve a queue.
        #[arg(long, default_value = "specialist")]
        role: String,
        /// Comma-separated groups this specialist serves.
        #[arg(long, default_value = "default")]
        groups: String,
        /// The secret, on the command line (for scripts and tests: other users of this
        /// machine can read command lines). A random one is made and printed when no secret
        /// is given.
        #[arg(long, group = "chosen")]
        secret: Option<String>,
        /// Read the secret from this file (its first line).
        #[arg(long, group = "chosen")]
        secret_file: Option<PathBuf>,
        /// Read the secret from standard input (its first line).
        #[arg(long, group = "chosen")]
        secret_stdin: bool,
        /// The name customers see ("Dr. Anna Berg"); without one they see "the specialist",
        /// never the user id.
        #[arg(long)]
        display_name: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Args)]
struct DbArgs {
    /// The SQLite database file (a path or sqlite://path); created on first run.
    #[arg(
        long,
        env = "CALLQUEUE_DATABASE",
        default_value = "data/callqueue.sqlite3",
        value_parser = db::parse_location
    )]
    database: db::Location,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CALLQUEUE_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    #[command(flatten)]
    db: DbArgs,
    /// The built app (trunk's dist/) to serve at /; omit to serve the API alone.
    #[arg(long, env = "CALLQUEUE_DIST")]
    dist: Option<PathBuf>,
    /// Comma-separated groups customers may queue in.
    #[arg(long, env = "CALLQUEUE_GROUPS", default_value = "default")]
    groups: String,
    /// Seconds a reservation may wait unmatched before it expires.
    #[arg(long, env = "CALLQUEUE_QUEUE_TIMEOUT", default_value_t = 1800)]
    queue_timeout: u64,
    /// Seconds a matched customer has to join the call before the reservation expires.
    #[arg(long, env = "CALLQUEUE_JOIN_WINDOW", default_value_t = 120)]
    join_window: u64,
    /// Seconds a matched customer gets on asking for more time to join ("I need a moment",
    /// once per reservation).
    #[arg(long, env = "CALLQUEUE_JOIN_EXTENSION", default_value_t = 60)]
    join_extension: u64,
    /// Customers must give a name at check-in (else it is optional).
    #[arg(long, env = "CALLQUEUE_REQUIRE_NAME")]
    require_name: bool,
    /// Session length of new calls, in seconds (settings.limits.max_duration_seconds).
    #[arg(long, env = "CALLQUEUE_CALL_SECONDS", default_value_t = 3600)]
    call_seconds: u32,
    /// The longest a specialist may extend a session to, in seconds.
    #[arg(long, env = "CALLQUEUE_MAX_CALL_SECONDS", default_value_t = 4 * 3600)]
    max_call_seconds: u32,
    /// Capabilities of a role, e.g. `patient=join-call,send-audio,send-video`; repeatable.
    /// Roles not named keep the defaults (specialists may change the session length).
    #[arg(long = "grant", env = "CALLQUEUE_GRANTS", value_delimiter = ';', value_parser = parse_grant)]
    grants: Vec<(Role, Vec<Capability>)>,
    /// Shared secret of the provider webhook (HMAC-SHA256); the endpoint is off without it.
    #[arg(long, env = "CALLQUEUE_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// Days an ended call's chat, rating and check-in are kept before they are deleted.
    #[arg(long, env = "CALLQUEUE_KEEP_CALLS_DAYS", default_value_t = 30)]
    keep_calls_days: u32,
    /// Milliseconds between expiry sweeps.
    #[arg(long, env = "CALLQUEUE_SWEEP_MS", default_value_t = 250)]
    sweep_ms: u64,
    /// Per-client rate limits and stream caps: `on`, or `off` for load tests and benchmarks.
    #[arg(long, env = "CALLQUEUE_RATE_LIMITS", default_value = "on", value_parser = ["on", "off"])]
    rate_limits: String,
    /// Reservations one client address may create per minute.
    #[arg(long, env = "CALLQUEUE_JOINS_PER_MINUTE", default_value_t = defaults::JOINS_PER_MINUTE)]
    joins_per_minute: u32,
    /// Sign-in attempts one client address may make per minute (failures for one user id also
    /// wait longer and longer).
    #[arg(long, env = "CALLQUEUE_SIGN_INS_PER_MINUTE", default_value_t = defaults::SIGN_INS_PER_MINUTE)]
    sign_ins_per_minute: u32,
    /// Messages per second one WebSocket may send.
    #[arg(long, env = "CALLQUEUE_MESSAGES_PER_SECOND", default_value_t = defaults::MESSAGES_PER_SECOND)]
    messages_per_second: u32,
    /// Event streams and WebSockets one client address may hold open.
    #[arg(long, env = "CALLQUEUE_STREAMS_PER_CLIENT", default_value_t = defaults::STREAMS_PER_CLIENT)]
    streams_per_client: u32,
    /// Connections open at once; more are refused (503).
    #[arg(long, env = "CALLQUEUE_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS)]
    max_connections: usize,
    /// Connections one client address (an IPv6 /64) may hold open; more are refused (429).
    #[arg(long, env = "CALLQUEUE_CONNECTIONS_PER_CLIENT", default_value_t = defaults::CONNECTIONS_PER_CLIENT)]
    connections_per_client: u32,
    /// Seconds a connection may wait for, or take to send, a request head before it is closed
    /// (idle kept-alive connections, slow senders).
    #[arg(long, env = "CALLQUEUE_IDLE_TIMEOUT_SECS", default_value_t = defaults::IDLE_TIMEOUT_SECS)]
    idle_timeout_secs: u64,
    /// A reverse proxy in front of the server, an address or a CIDR range (repeatable, or
    /// comma-separated): its X-Forwarded-For names the client, its X-Forwarded-Proto: https
    /// makes cookies Secure.
    #[arg(
        long = "trusted-proxy",
        env = "CALLQUEUE_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = callqueue_server::limits::parse_proxy
    )]
    trusted_proxies: Vec<ipnet::IpNet>,
    /// A STUN or TURN server for calls (`stun:host:port`, `turn:host:port?transport=udp`);
    /// repeatable. None is needed on a LAN or on one machine.
    #[arg(
        long = "ice-server",
        env = "CALLQUEUE_ICE_SERVERS",
        value_delimiter = ','
    )]
    ice_servers: Vec<String>,
    /// coturn's `static-auth-secret`: TURN servers get credentials that last the call.
    #[arg(long, env = "CALLQUEUE_TURN_SECRET", hide_env_values = true)]
    turn_secret: Option<String>,
    /// Calls use the TURN relays only (hides each member's address from the other).
    #[arg(long, env = "CALLQUEUE_ICE_RELAY_ONLY")]
    ice_relay_only: bool,
    /// Seconds a call member whose connection dropped (a proxy timeout, a network hand-over,
    /// a node restart) still counts as in the call before the other member hears they left.
    #[arg(long, env = "CALLQUEUE_PEER_GRACE_SECS", default_value_t = callqueue_protocol::signal::PEER_GRACE_SECS)]
    peer_grace_secs: u64,
    /// Where Prometheus scrapes `/metrics` (keep it private); `off` serves none.
    #[arg(long, env = "CALLQUEUE_METRICS_ADDR", default_value = "127.0.0.1:9464", value_parser = parse_optional_addr)]
    metrics_addr: OptionalAddr,
    /// HTTPS on --addr with this certificate chain (PEM, leaf first), read again when it
    /// changes; needs --tls-key.
    #[arg(
        long,
        env = "CALLQUEUE_TLS_CERT",
        requires = "tls_key",
        conflicts_with = "acme_domains"
    )]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "CALLQUEUE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// HTTPS on --addr with a certificate for this name from an ACME authority (Let's Encrypt
    /// by default), obtained and renewed automatically; repeatable. The name must reach this
    /// server's --http-addr on port 80 (HTTP-01).
    #[arg(
        long = "acme-domain",
        env = "CALLQUEUE_ACME_DOMAINS",
        value_delimiter = ','
    )]
    acme_domains: Vec<String>,
    /// Where the ACME authority may write about the certificate (expiry, problems).
    #[arg(long, env = "CALLQUEUE_ACME_EMAIL")]
    acme_email: Option<String>,
    /// The ACME directory; Let's Encrypt's staging one is
    /// https://acme-staging-v02.api.letsencrypt.org/directory.
    #[arg(long, env = "CALLQUEUE_ACME_DIRECTORY", default_value = tls::acme::LETS_ENCRYPT)]
    acme_directory: String,
    /// A CA certificate (PEM) to check the ACME directory's HTTPS against instead of the
    /// system's roots (a test authority such as pebble).
    #[arg(long, env = "CALLQUEUE_ACME_DIRECTORY_ROOT")]
    acme_directory_root: Option<PathBuf>,
    /// Where the ACME account and certificate are kept (0600); default: `acme/` beside the
    /// SQLite database, or `./acme` on PostgreSQL.
    #[arg(long, env = "CALLQUEUE_ACME_DIR")]
    acme_dir: Option<PathBuf>,
    /// With HTTPS on: plain HTTP here answers ACME challenges and redirects to HTTPS; `off`
    /// serves none.
    #[arg(long, env = "CALLQUEUE_HTTP_ADDR", default_value = "0.0.0.0:80", value_parser = parse_optional_addr)]
    http_addr: OptionalAddr,
}

/// `--metrics-addr`, `--http-addr`: an address, or `off`.
#[derive(Clone, Debug)]
struct OptionalAddr(Option<SocketAddr>);

fn parse_optional_addr(s: &str) -> Result<OptionalAddr, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(OptionalAddr(None));
    }
    s.parse()
        .map(|a| OptionalAddr(Some(a)))
        .map_err(|e| format!("{s:?}: {e} (an address such as 127.0.0.1:9464, or off)"))
}

impl ServeArgs {
    fn into_config(self) -> Result<Config, String> {
        if let Some(bad) = self.ice_servers.iter().find(|u| {
            !["stun:", "stuns:", "turn:", "turns:"]
                .iter()
                .any(|p| u.starts_with(p))
        }) {
            return Err(format!(
                "--ice-server {bad:?}: use a stun:, stuns:, turn: or turns: address"
            ));
        }
        let groups = split_groups(&self.groups);
        if groups.is_empty() || !groups.iter().all(|g| tokens::is_valid_id(g)) {
            return Err("--groups needs one or more names of letters, digits, '-' or '_'".into());
        }
        let mut grants = Config::default_grants();
        grants.extend(self.grants);
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(tls::Source::Files { cert, key }),
            _ if !self.acme_domains.is_empty() => {
                if let Some(bad) = self.acme_domains.iter().find(|d| !is_host_name(d)) {
                    return Err(format!(
                        "--acme-domain {bad:?}: expected a DNS name such as calls.example.org"
                    ));
                }
                let dir = self.acme_dir.unwrap_or_else(|| match &self.db.database {
                    callqueue_server::db::Location::Sqlite(path) => path
                        .parent()
                        .unwrap_or(std::path::Path::new("."))
                        .join("acme"),
                    callqueue_server::db::Location::Postgres(_) => PathBuf::from("acme"),
                });
                Some(tls::Source::Acme(tls::acme::Settings {
                    domains: self.acme_domains,
                    email: self.acme_email,
                    directory: self.acme_directory,
                    directory_root: self.acme_directory_root,
                    dir,
                }))
            }
            _ => None,
        };
        Ok(Config {
            addr: self.addr,
            database: self.db.database,
            dist: self.dist,
            groups,
            queue_timeout: Duration::from_secs(self.queue_timeout),
            join_window: Duration::from_secs(self.join_window),
            join_extension: Duration::from_secs(self.join_extension),
            require_name: self.require_name,
            call_seconds: self.call_seconds.max(1),
            max_call_seconds: self.max_call_seconds.max(self.call_seconds),
            grants,
            webhook_secret: self.webhook_secret.filter(|s| !s.is_empty()),
            sweep_interval: Duration::from_millis(self.sweep_ms.clamp(10, 10_000)),
            purge_interval: Duration::from_secs(60),
            keep_calls: Duration::from_secs(u64::from(self.keep_calls_days.max(1)) * 86_400),
            heartbeat: Duration::from_secs(callqueue_protocol::HEARTBEAT_SECS),
            rate_limits: self.rate_limits == "on",
            joins_per_minute: self.joins_per_minute.max(1),
            sign_ins_per_minute: self.sign_ins_per_minute.max(1),
            messages_per_second: self.messages_per_second.max(1),
            streams_per_client: self.streams_per_client.max(1),
            max_connections: self.max_connections.max(1),
            connections_per_client: self.connections_per_client.max(1),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.clamp(1, 3600)),
            trusted_proxies: self.trusted_proxies,
            ice_servers: self.ice_servers,
            turn_secret: self.turn_secret.filter(|s| !s.is_empty()),
            ice_relay_only: self.ice_relay_only,
            peer_grace: Duration::from_secs(self.peer_grace_secs.clamp(1, 600)),
            metrics_addr: self.metrics_addr.0,
            http_addr: tls.as_ref().and(self.http_addr.0),
            tls,
        })
    }
}

/// A DNS name an ACME authority can validate: dot-separated labels of letters, digits and '-'.
fn is_host_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tower_http=warn,sqlx=warn".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    if cli.log_format == "json" {
        // One JSON object per line, with the fields of the spans it is in (a request's id).
        logs.json()
            .flatten_event(true)
            .with_current_span(true)
            .init();
    } else {
        logs.init();
    }
    let result = match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Agent {
            command:
                AgentCommand::Add {
                    name,
                    role,
                    groups: g,
                    secret,
                    secret_file,
                    secret_stdin,
                    display_name,
                    db,
                },
        } => match chosen_secret(secret, secret_file, secret_stdin) {
            Ok(secret) => add_agent(name, role, split_groups(&g), secret, display_name, db).await,
            Err(e) => Err(e.into()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("callqueue-server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let config = args.into_config()?;
    let server = Server::bind(config.clone()).await?;
    let addr = server.local_addr();
    let shutdown = server.state.shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    if !config.rate_limits {
        tracing::warn!(
            "rate limits are off (--rate-limits off / CALLQUEUE_RATE_LIMITS=off): no per-address \
             limits on joining, signing in, messages, streams or connections; for load tests only"
        );
    }
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    if let Some(http) = server.http_addr() {
        tracing::info!(%http, "plain HTTP answers ACME challenges and redirects to HTTPS");
    }
    tracing::info!(%addr, database = %config.database, "callqueue is serving on {scheme}://{addr}/");
    server.run().await?;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn add_agent(
    name: String,
    role: String,
    groups: Vec<String>,
    secret: Option<String>,
    display_name: Option<String>,
    db_args: DbArgs,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let display_name = display_name.map(|n| n.trim().to_string());
    if display_name
        .as_deref()
        .is_some_and(|n| !callqueue_protocol::is_display_name(n))
    {
        return Err("--display-name needs 1 to 80 characters and no control characters".into());
    }
    if !tokens::is_valid_id(&name) {
        return Err("the name must be 1 to 64 letters, digits, '-' or '_'".into());
    }
    let role = match role.as_str() {
        "admin" => "admin",
        other => Role::parse(other)
            .ok_or("--role must be specialist, admin or patient")?
            .as_str(),
    };
    if groups.is_empty() {
        return Err("--groups needs at least one group".into());
    }
    let pool = db::open(&db_args.database).await?;
    let generated = secret.is_none().then(tokens::random_token);
    let secret = secret.or_else(|| generated.clone()).unwrap_or_default();
    Store::add_account(
        &pool,
        &name,
        role,
        &groups,
        &secret,
        display_name.as_deref(),
    )
    .await?;
    println!("Specialist {name:?} ({role}) serves: {}", groups.join(", "));
    match generated {
        // Shown this once: only its hash is kept.
        Some(secret) => println!(
            "Sign in at /agent with user id: {name}  secret: {secret}\n\
             (shown only now; run `agent add` again to make a new one)"
        ),
        None => println!("Sign in at /agent with user id: {name} and the secret you chose"),
    }
    Ok(())
}

/// The secret the operator chose, from exactly one of `--secret`, `--secret-file` and
/// `--secret-stdin` (clap keeps them apart), checked; `None` when none was given.
fn chosen_secret(
    flag: Option<String>,
    file: Option<PathBuf>,
    stdin: bool,
) -> Result<Option<String>, String> {
    let first_line = |text: String| text.lines().next().unwrap_or_default().to_string();
    let secret = if let Some(s) = flag {
        eprintln!(
            "callqueue-server: warning: --secret puts the secret on the command line, where other \
             users of this machine can read it (ps); prefer --secret-file or --secret-stdin"
        );
        s
    } else if let Some(path) = file {
        std::fs::read_to_string(&path)
            .map(first_line)
            .map_err(|e| format!("--secret-file {}: {e}", path.display()))?
    } else if stdin {
        let mut text = String::new();
        use std::io::Read;
        std::io::stdin()
            .take(4096)
            .read_to_string(&mut text)
            .map_err(|e| format!("--secret-stdin: {e}"))?;
        first_line(text)
    } else {
        return Ok(None);
    };
    callqueue_server::secrets::check_chosen(&secret)?;
    Ok(Some(secret))
}
