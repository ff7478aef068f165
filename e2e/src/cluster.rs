//! A local cluster: a throwaway PostgreSQL from Debian's package (initdb + pg_ctl in a temporary
//! folder, loopback only), server nodes on it, and HAProxy (Debian's `haproxy`) in front of
//! them. Used by the multi-node tests, the cluster benchmark and `scripts/cluster`. Everything
//! stops when its handle drops (PostgreSQL with `pg_ctl stop -m immediate`).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};

use crate::{Result, Server, ServerOptions, free_port};

/// A PostgreSQL server of its own, on a loopback port.
pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
}

/// Debian installs PostgreSQL's programs under /usr/lib/postgresql/<version>/bin; the newest.
fn postgres_bin() -> Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("PostgreSQL is not installed (scripts/bootstrap installs it): {e}"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| "no PostgreSQL server under /usr/lib/postgresql".into())
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl Postgres {
    /// initdb (trust on loopback, no fsync: a throwaway) and start; waits until it answers.
    pub async fn start() -> Result<Self> {
        let bin = postgres_bin()?;
        let dir = tempfile::tempdir()?;
        // PostgreSQL refuses to run as root: then it runs as the package's `postgres` user.
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .await?;
            if !status.success() {
                return Err("cannot hand the data folder to the postgres user".into());
            }
        }
        let pg = Self {
            port: free_port(),
            dir,
            bin,
            as_postgres,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                path_str(&data)?,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        )
        .await?;
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            pg.port,
            path_str(pg.dir.path())?
        );
        let log = pg.dir.path().join("postgres.log");
        pg.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data)?,
                "-o",
                &options,
                "-l",
                path_str(&log)?,
                "-w",
                "-t",
                "30",
                "start",
            ],
        )
        .await?;
        Ok(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn run(&self, program: &str, args: &[&str]) -> Result<()> {
        let program = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .await?;
        if !out.status.success() {
            return Err(format!(
                "{} failed: {}{}",
                program.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(())
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.data();
        let mut cmd = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(pg_ctl);
            c
        } else {
            std::process::Command::new(pg_ctl)
        };
        let _ = cmd
            .arg("-D")
            .arg(data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| format!("not a UTF-8 path: {}", p.display()).into())
}

/// HAProxy in front of nodes: round robin, the client's address passed on (X-Forwarded-For),
/// health checks every 300 ms, a dead node's connections retried on another, and hour-long
/// timeouts so event streams and WebSockets stay
/// open (HAProxy does not buffer responses, so events pass as they come).
pub struct Haproxy {
    pub port: u16,
    pub base: String,
    dir: tempfile::TempDir,
    _child: Child,
}

/// The configuration README's production layout describes, for `backends` on loopback.
pub fn haproxy_config(port: u16, backends: &[u16]) -> String {
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, p)| format!("  server node{i} 127.0.0.1:{p} check\n"))
        .collect();
    format!(
        "global\n  maxconn 8000\n\n\
         defaults\n  mode http\n  option forwardfor\n  option redispatch\n  retries 3\n  timeout connect 2s\n  \
         timeout client 1h\n  timeout server 1h\n  timeout tunnel 1h\n  timeout http-keep-alive 10s\n\n\
         frontend callqueue\n  bind 127.0.0.1:{port}\n  default_backend nodes\n\n\
         backend nodes\n  balance roundrobin\n  option httpchk GET /api/health\n  \
         default-server inter 300ms fall 1 rise 2\n{servers}"
    )
}

impl Haproxy {
    /// On a free port, or `port`.
    pub async fn start(backends: &[u16], port: Option<u16>) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = port.unwrap_or_else(free_port);
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(&config, haproxy_config(port, backends))?;
        let log = std::fs::File::create(dir.path().join("haproxy.log"))?;
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start haproxy (scripts/bootstrap installs it): {e}"))?;
        let proxy = Self {
            port,
            base: format!("http://127.0.0.1:{port}"),
            dir,
            _child: child,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = client
                .get(format!("{}/api/health", proxy.base))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(proxy);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("haproxy did not come up: {}", proxy.log()).into())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

/// PostgreSQL, `n` nodes on it and HAProxy in front.
pub struct Cluster {
    pub proxy: Haproxy,
    pub nodes: Vec<Server>,
    pub postgres: Postgres,
}

impl Cluster {
    pub async fn start(n: usize, options: ServerOptions) -> Result<Self> {
        Self::start_at(n, options, None).await
    }

    /// With HAProxy on `port` (a free one if `None`).
    pub async fn start_at(n: usize, options: ServerOptions, port: Option<u16>) -> Result<Self> {
        let postgres = Postgres::start().await?;
        let mut nodes = Vec::with_capacity(n);
        for _ in 0..n {
            let mut options = ServerOptions {
                database: Some(postgres.url()),
                ..options.clone()
            };
            // HAProxy says who the client is (X-Forwarded-For): per-client limits hold.
            options
                .extra_args
                .extend(["--trusted-proxy".to_string(), "127.0.0.1".to_string()]);
            nodes.push(Server::start(options).await?);
        }
        let ports: Vec<u16> = nodes.iter().map(|s| s.port).collect();
        let proxy = Haproxy::start(&ports, port).await?;
        Ok(Self {
            proxy,
            nodes,
            postgres,
        })
    }
}

impl Postgres {
    /// Runs SQL with `psql` and answers its unaligned output.
    pub async fn sql(&self, sql: &str) -> Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", "postgres", "-At", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .await?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// An event stream read over HTTP the way a browser's EventSource reads it (data lines only).
pub struct Sse {
    response: reqwest::Response,
    buf: String,
}

impl Sse {
    pub async fn open(client: &reqwest::Client, url: &str) -> Result<Self> {
        let response = client
            .get(url)
            .header("accept", "text/event-stream")
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(format!("{url}: {}", response.status()).into());
        }
        Ok(Self {
            response,
            buf: String::new(),
        })
    }

    /// The next event's data as JSON; `Ok(None)` when the stream ended (its server went), an
    /// error when nothing came within `within`.
    pub async fn next(&mut self, within: Duration) -> Result<Option<serde_json::Value>> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let data: Vec<&str> = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                let heartbeat = block
                    .lines()
                    .any(|l| l == "event: heartbeat" || l == "event:heartbeat");
                if data.is_empty() || heartbeat {
                    continue; // a heartbeat, a comment or a retry line
                }
                return Ok(Some(serde_json::from_str(&data.join("\n"))?));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.response.chunk()).await {
                Err(_) => return Err(format!("no event within {within:?}").into()),
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) | Ok(Err(_)) => return Ok(None),
            }
        }
    }
}
