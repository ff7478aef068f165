//! The end-to-end harness: the real server binary on a loopback port with a fresh SQLite file,
//! serving the release build of the app, and headless Chromium driven over WebDriver
//! (chromedriver). Everything it starts is killed when its handle drops.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

pub mod acme;
pub mod cluster;
pub mod proxy;

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::process::{Child, Command};

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;

/// Where the workspace is.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e sits in the workspace")
        .to_path_buf()
}

/// The KB figure of the line starting with `key` in `/proc/<pid>/<file>` (0 once it is gone).
fn proc_kb(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A process's proportional set size in KB (`Pss` of `smaps_rollup`), 0 once gone.
pub fn pss_kb(pid: u32) -> u64 {
    proc_kb(pid, "smaps_rollup", "Pss:")
}

/// A process's resident memory in KB (0 if it is gone).
pub fn rss_kb(pid: u32) -> u64 {
    proc_kb(pid, "status", "VmRSS:")
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on loopback")
}

/// A path from the environment (relative ones are taken from the workspace), or the default.
fn configured_path(var: &str, default: &str) -> PathBuf {
    workspace().join(std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from))
}

fn server_binary() -> PathBuf {
    configured_path("CALLQUEUE_E2E_SERVER", "target/debug/callqueue-server")
}

/// The built app the tests serve (`CALLQUEUE_E2E_DIST`, else `dist/`).
pub fn dist() -> PathBuf {
    configured_path("CALLQUEUE_E2E_DIST", "dist")
}

/// Server settings a test may shorten.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Comma-separated queue groups.
    pub groups: String,
    pub queue_timeout_secs: u64,
    pub join_window_secs: u64,
    pub call_seconds: u32,
    /// Per-client rate limits; benchmarks turn them off (they are one client making thousands
    /// of customers).
    pub rate_limits: bool,
    /// More flags for `serve` (ICE servers, say).
    pub extra_args: Vec<String>,
    /// A PostgreSQL URL to serve (a cluster's node); otherwise `CALLQUEUE_E2E_DATABASE`, or
    /// else a file of its own.
    pub database: Option<String>,
    /// The built app to serve; otherwise `CALLQUEUE_E2E_DIST` (or `dist/`).
    pub dist: Option<PathBuf>,
    /// The server speaks HTTPS (its flags in `extra_args`): how to reach and trust it.
    pub https: Option<Https>,
}

/// How a test reaches a server that speaks HTTPS.
#[derive(Clone, Debug)]
pub struct Https {
    /// The name in its certificate; resolved to 127.0.0.1.
    pub host: String,
    /// The root (PEM) its certificate chains to.
    pub root_pem: String,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            groups: "default".into(),
            queue_timeout_secs: 1800,
            join_window_secs: 120,
            call_seconds: 3600,
            rate_limits: true,
            extra_args: Vec::new(),
            database: None,
            dist: None,
            https: None,
        }
    }
}

/// The real server process.
pub struct Server {
    pub port: u16,
    pub base: String,
    /// Where its `/metrics` is served.
    pub metrics_port: u16,
    options: ServerOptions,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Server {
    pub async fn start(options: ServerOptions) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let base = match &options.https {
            Some(https) => format!("https://{}:{port}", https.host),
            None => format!("http://127.0.0.1:{port}"),
        };
        let mut server = Self {
            port,
            base,
            // Two ports asked for in a row can come back equal; ask again (bounded).
            metrics_port: (0..8)
                .map(|_| free_port())
                .find(|p| *p != port)
                .unwrap_or(0),
            options,
            dir,
            child: None,
        };
        server.spawn().await?;
        Ok(server)
    }

    /// The server's database: `CALLQUEUE_E2E_DATABASE` (a PostgreSQL URL, for the benchmarks'
    /// PostgreSQL runs) or a file in the server's folder.
    fn database(&self) -> String {
        self.options
            .database
            .clone()
            .or_else(|| std::env::var("CALLQUEUE_E2E_DATABASE").ok())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| {
                self.dir
                    .path()
                    .join("callqueue.sqlite3")
                    .to_string_lossy()
                    .into_owned()
            })
    }

    async fn spawn(&mut self) -> Result<()> {
        let bin = server_binary();
        if !bin.exists() {
            return Err(format!(
                "no server binary at {} (cargo build -p callqueue-server)",
                bin.display()
            )
            .into());
        }
        let log = std::fs::File::create(self.dir.path().join("server.log"))?;
        let child = Command::new(&bin)
            .arg("serve")
            .args(["--addr", &format!("127.0.0.1:{}", self.port)])
            .args([
                "--metrics-addr",
                &format!("127.0.0.1:{}", self.metrics_port),
            ])
            .arg("--database")
            .arg(self.database())
            .arg("--dist")
            .arg(self.options.dist.clone().unwrap_or_else(dist))
            .args([
                "--queue-timeout",
                &self.options.queue_timeout_secs.to_string(),
            ])
            .args(["--join-window", &self.options.join_window_secs.to_string()])
            .args(["--call-seconds", &self.options.call_seconds.to_string()])
            .args(["--sweep-ms", "100"])
            .args(["--groups", &self.options.groups])
            .args([
                "--rate-limits",
                if self.options.rate_limits {
                    "on"
                } else {
                    "off"
                },
            ])
            .args(&self.options.extra_args)
            // The server's log is in its folder; CALLQUEUE_E2E_LOG=debug to see more of it.
            .env(
                "RUST_LOG",
                std::env::var("CALLQUEUE_E2E_LOG").unwrap_or_else(|_| "warn".into()),
            )
            // The server logs to stdout; panics go to stderr. Both land in the log.
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        self.child = Some(child);
        self.wait_healthy().await
    }

    /// A client for the server's API: over HTTPS, trusting its root and resolving its name.
    pub fn http_client(&self) -> Result<reqwest::Client> {
        self.http_client_with(|c| c)
    }

    /// [`Server::http_client`] with more settings.
    pub fn http_client_with(
        &self,
        more: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    ) -> Result<reqwest::Client> {
        let mut client = more(reqwest::Client::builder().cookie_store(true));
        if let Some(https) = &self.options.https {
            client = client
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(https.root_pem.as_bytes())?)
                .resolve(&https.host, ([127, 0, 0, 1], self.port).into());
        }
        Ok(client.build()?)
    }

    async fn wait_healthy(&self) -> Result<()> {
        let client = self.http_client()?;
        // Over HTTPS from an ACME authority, the first certificate comes first.
        let secs = if self.options.https.is_some() { 60 } else { 20 };
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Ok(r) = client.get(format!("{}/api/health", self.base)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("the server did not become healthy; log: {}", self.log()).into())
    }

    /// The server process's id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `kill -9`: nothing gets to shut down cleanly.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts again on the same port and database.
    pub async fn restart(&mut self) -> Result<()> {
        self.spawn().await
    }

    /// `callqueue-server agent add`, as an operator would run it (the secret on its standard
    /// input): a specialist serving every group of the server.
    pub async fn add_specialist(&self, name: &str, secret: &str) -> Result<()> {
        self.add_specialist_named(name, None, secret).await
    }

    /// [`Server::add_specialist`] with the name customers see them by.
    pub async fn add_specialist_named(
        &self,
        name: &str,
        display_name: Option<&str>,
        secret: &str,
    ) -> Result<()> {
        self.add_account(name, "specialist", display_name, secret)
            .await
    }

    /// `agent add` with a role (`specialist` or `admin`).
    pub async fn add_account(
        &self,
        name: &str,
        role: &str,
        display_name: Option<&str>,
        secret: &str,
    ) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let mut command = Command::new(server_binary());
        command.args([
            "agent",
            "add",
            name,
            "--role",
            role,
            "--secret-stdin",
            "--groups",
            &self.options.groups,
        ]);
        if let Some(display_name) = display_name {
            command.args(["--display-name", display_name]);
        }
        let mut child = command
            .arg("--database")
            .arg(self.database())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(format!("{secret}\n").as_bytes()).await?;
        }
        let out = child.wait_with_output().await?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
        }
        Ok(())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

/// chromedriver on a loopback port.
pub struct Driver {
    pub url: String,
    child: Child,
}

impl Drop for Driver {
    /// Ends the browsers chromedriver started (its children; theirs end with them), then
    /// chromedriver itself (`kill_on_drop`): a test that fails half-way must not leave browsers
    /// running, let alone browsers in a call.
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("pkill")
                .args(["-KILL", "-P", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Driver {
    pub async fn start() -> Result<Self> {
        let port = free_port();
        let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let child = Command::new(bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if client.get(format!("{url}/status")).send().await.is_ok() {
                return Ok(Self { url, child });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("chromedriver did not start".into())
    }

    /// A new headless browser with its own profile (so its cookies are its own). Phone-sized
    /// ones use Chromium's mobile emulation, since a headless window cannot be narrower than
    /// 500 px.
    pub async fn browser(&self, width: u32, height: u32) -> Result<Browser> {
        self.browser_with(width, height, &[]).await
    }

    /// [`Driver::browser`] with more Chromium flags (a later flag wins over an earlier one:
    /// `--autoplay-policy=document-user-activation-required`, say).
    pub async fn browser_with(&self, width: u32, height: u32, extra: &[&str]) -> Result<Browser> {
        let profile = tempfile::tempdir()?;
        let mobile = width < 500;
        let mut caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", "--disable-sync", "--disable-quic",
                    // A fake camera and microphone, granted without asking, and WebRTC between
                    // browsers on loopback (the tests run in a loopback-only network
                    // namespace, see scripts/test).
                    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                    "--autoplay-policy=no-user-gesture-required",
                    "--allow-loopback-in-peer-connection",
                    "--disable-features=WebRtcHideLocalIpsWithMdns",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            },
            "goog:loggingPrefs": { "browser": "ALL" }
        });
        if let Some(args) = caps["goog:chromeOptions"]["args"].as_array_mut() {
            args.extend(extra.iter().map(|a| serde_json::Value::from(*a)));
        }
        if mobile {
            caps["goog:chromeOptions"]["mobileEmulation"] = serde_json::json!({
                "deviceMetrics": { "width": width, "height": height, "pixelRatio": 2.0, "touch": true }
            });
        }
        let caps = match caps {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("an object literal"),
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await?;
        // Every document this window loads keeps the tracks it opened, for `live_tracks`.
        client
            .issue_cmd(SessionPost {
                path: "goog/cdp/execute",
                body: serde_json::json!({
                    "cmd": "Page.addScriptToEvaluateOnNewDocument",
                    "params": { "source": KEEP_OPENED_TRACKS },
                }),
            })
            .await?;
        Ok(Browser {
            client,
            _profile: profile,
            firefox: None,
        })
    }
}

/// Wraps `getUserMedia` so that the page's own tracks can be counted, wherever they went (a
/// `<video>`, a peer connection's sender, nowhere).
const KEEP_OPENED_TRACKS: &str = r#"
    (() => {
        const md = navigator.mediaDevices;
        if (!md || !md.getUserMedia) return;
        const original = md.getUserMedia.bind(md);
        window.__openedTracks = [];
        md.getUserMedia = async (...args) => {
            const stream = await original(...args);
            window.__openedTracks.push(...stream.getTracks());
            return stream;
        };
    })();
"#;

/// A headless Firefox (Debian's `firefox-esr`) driven by a geckodriver of its own (one
/// geckodriver holds one session), with a fake camera and microphone and WebRTC on loopback
/// (toolchain.md: without `media.navigator.permission.fake` Firefox gathers no candidates in a
/// loopback-only namespace). Firefox opens no window narrower than 500 px. Its console goes to
/// geckodriver's output, which [`Browser::logs`] reads.
pub async fn firefox(width: u32, height: u32) -> Result<Browser> {
    let profile = tempfile::tempdir()?;
    let log_path = profile.path().join("geckodriver.log");
    let log = std::fs::File::create(&log_path)?;
    let port = free_port();
    let bin = std::env::var("GECKODRIVER").unwrap_or_else(|_| "geckodriver".into());
    let driver = Command::new(bin)
        .args(["--port", &port.to_string(), "--host", "127.0.0.1"])
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("geckodriver (scripts/bootstrap installs it): {e}"))?;
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{url}/status")).send().await.is_err() {
        if Instant::now() > deadline {
            return Err("geckodriver did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let caps = serde_json::json!({
        "moz:firefoxOptions": {
            "binary": std::env::var("FIREFOX").unwrap_or_else(|_| "/usr/bin/firefox-esr".into()),
            "args": ["-headless"],
            "prefs": {
                "media.navigator.streams.fake": true,
                "media.navigator.permission.disabled": true,
                "media.navigator.permission.fake": true,
                "media.peerconnection.ice.loopback": true,
                "media.peerconnection.ice.obfuscate_host_addresses": false,
                "media.autoplay.default": 0,
                // The page's console on geckodriver's output, for the tests to read.
                "devtools.console.stdout.content": true,
                "browser.shell.checkDefaultBrowser": false,
                "datareporting.policy.dataSubmissionEnabled": false,
                "toolkit.telemetry.reportingpolicy.firstRun": false,
                "app.update.disabledForTesting": true,
                "network.captive-portal-service.enabled": false
            }
        }
    });
    let caps = match caps {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("an object literal"),
    };
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&url)
        .await?;
    client.set_window_size(width, height).await?;
    Ok(Browser {
        client,
        _profile: profile,
        firefox: Some(Firefox {
            _driver: driver,
            log: log_path,
            read: std::sync::atomic::AtomicU64::new(0),
        }),
    })
}

/// What a Firefox window has beside its session.
struct Firefox {
    _driver: Child,
    log: PathBuf,
    /// How much of the log [`Browser::logs`] has read.
    read: std::sync::atomic::AtomicU64,
}

/// One browser window.
pub struct Browser {
    pub client: Client,
    _profile: tempfile::TempDir,
    firefox: Option<Firefox>,
}

/// CPU time (user + system, in clock ticks) of one process, from `/proc/<pid>/stat`, with its
/// parent's pid. `None` once it is gone.
fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: read after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    let ppid = fields.get(1)?.parse().ok()?;
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((ppid, ticks))
}

/// Every process on the machine: (pid, parent, command line).
fn processes() -> Vec<(u32, u32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let (ppid, _) = proc_stat(pid)?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            Some((pid, ppid, String::from_utf8_lossy(&cmd).replace('\0', " ")))
        })
        .collect()
}

/// What kind of Chromium process a command line is: `browser`, `renderer`, `gpu-process`, ...
fn process_kind(cmd: &str) -> String {
    cmd.split_whitespace()
        .find_map(|a| a.strip_prefix("--type="))
        .map_or("browser", |t| t)
        .to_string()
}

/// How long to wait for the app to show something.
pub const WAIT: Duration = Duration::from_secs(15);

impl Browser {
    /// This browser's processes (its Chromium and every process under it) with the kind of
    /// each (`browser`, `renderer`, `gpu-process`, `utility`, ...). Linux only.
    fn processes(&self) -> Vec<(u32, String)> {
        let all = processes();
        let profile = format!("--user-data-dir={}", self._profile.path().display());
        let mut tree: Vec<u32> = all
            .iter()
            .filter(|(_, _, cmd)| cmd.contains(&profile) && process_kind(cmd) == "browser")
            .map(|(pid, _, _)| *pid)
            .collect();
        // Descendants, level by level (bounded: a process tree is not deeper than this).
        for _ in 0..8 {
            let more: Vec<u32> = all
                .iter()
                .filter(|(pid, ppid, _)| tree.contains(ppid) && !tree.contains(pid))
                .map(|(pid, _, _)| *pid)
                .collect();
            if more.is_empty() {
                break;
            }
            tree.extend(more);
        }
        all.iter()
            .filter(|(pid, _, _)| tree.contains(pid))
            .map(|(pid, _, cmd)| (*pid, process_kind(cmd)))
            .collect()
    }

    /// CPU time so far of this browser's processes, in clock ticks, summed per kind of process.
    pub fn cpu_ticks(&self) -> std::collections::BTreeMap<String, u64> {
        let mut ticks = std::collections::BTreeMap::new();
        for (pid, kind) in self.processes() {
            if let Some((_, t)) = proc_stat(pid) {
                *ticks.entry(kind).or_insert(0) += t;
            }
        }
        ticks
    }

    /// Memory of this browser's processes now, in KB, summed per kind of process: each
    /// process's proportional share (PSS), so pages shared between Chromium's processes count
    /// once, not in every process (as resident sizes would).
    pub fn memory_kb(&self) -> std::collections::BTreeMap<String, u64> {
        let mut kb = std::collections::BTreeMap::new();
        for (pid, kind) in self.processes() {
            *kb.entry(kind).or_insert(0) += pss_kb(pid);
        }
        kb
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client.goto(url).await?;
        Ok(())
    }

    pub async fn find(&self, css: &str) -> Result<Element> {
        Ok(self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await?)
    }

    /// Waits until the element's text satisfies `pred`; returns it.
    pub async fn wait_text(&self, css: &str, pred: impl Fn(&str) -> bool) -> Result<String> {
        self.wait_text_for(css, WAIT, pred).await
    }

    pub async fn wait_text_for(
        &self,
        css: &str,
        within: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(el) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = el.text().await
            {
                if pred(&text) {
                    return Ok(text);
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("{css}: still {last:?} after {within:?}").into())
    }

    pub async fn wait_url(&self, pred: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = Instant::now() + WAIT;
        let mut last = String::new();
        while Instant::now() < deadline {
            let url = self.client.current_url().await?.to_string();
            if pred(&url) {
                return Ok(url);
            }
            last = url;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("url still {last}").into())
    }

    pub async fn exists(&self, css: &str) -> Result<bool> {
        Ok(!self.client.find_all(Locator::Css(css)).await?.is_empty())
    }

    pub async fn click(&self, css: &str) -> Result<()> {
        self.find(css).await?.click().await?;
        Ok(())
    }

    pub async fn click_text(&self, text: &str) -> Result<()> {
        let xpath = format!("//button[contains(., '{text}')] | //a[contains(., '{text}')]");
        let el = self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(&xpath))
            .await?;
        el.click().await?;
        Ok(())
    }

    pub async fn body_text(&self) -> Result<String> {
        Ok(self.find("body").await?.text().await?)
    }

    /// Saves a PNG under `target/e2e-screenshots/`.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let dir = workspace().join("target/e2e-screenshots");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// SEVERE entries in the browser's console log: an app that fails to start shows nothing else.
    pub async fn severe_logs(&self) -> Result<Vec<String>> {
        Ok(self
            .logs()
            .await?
            .into_iter()
            .filter(|(level, _)| level == "SEVERE")
            .map(|(_, m)| m)
            .collect())
    }

    /// Whether this is Firefox.
    pub fn is_firefox(&self) -> bool {
        self.firefox.is_some()
    }

    /// The browser's console log since the last read: level and message.
    pub async fn logs(&self) -> Result<Vec<(String, String)>> {
        if let Some(firefox) = &self.firefox {
            return Ok(firefox_logs(firefox));
        }
        let logs = self
            .client
            .issue_cmd(SessionPost {
                path: "se/log",
                body: serde_json::json!({ "type": "browser" }),
            })
            .await;
        let entries = match logs? {
            serde_json::Value::Array(entries) => entries,
            other => return Err(format!("the browser's log: {other}").into()),
        };
        Ok(entries
            .into_iter()
            .map(|e| {
                (
                    e["level"].as_str().unwrap_or_default().to_string(),
                    e["message"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect())
    }

    /// A Chrome DevTools Protocol command through chromedriver (`goog/cdp/execute`).
    pub async fn cdp(&self, cmd: &str, params: serde_json::Value) -> Result<serde_json::Value> {
        let answer = self
            .client
            .issue_cmd(SessionPost {
                path: "goog/cdp/execute",
                body: serde_json::json!({ "cmd": cmd, "params": params }),
            })
            .await?;
        Ok(answer)
    }

    /// Shows the page as a phone (touch, 2× pixels, below 500 px wide) or a desktop window of
    /// that size.
    pub async fn set_size(&self, (width, height): (u32, u32)) -> Result<()> {
        let phone = width < 500;
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({
                "width": width, "height": height, "mobile": phone,
                "deviceScaleFactor": if phone { 2 } else { 1 },
            }),
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(())
    }

    /// Audits the page with axe-core and saves it (`<name>-<lang>-phone|desktop`) at a phone's
    /// and a desktop's size; leaves the window at `back_to`.
    pub async fn check_at_sizes(
        &self,
        name: &str,
        lang: &str,
        phone: (u32, u32),
        desktop: (u32, u32),
        back_to: (u32, u32),
    ) -> Result<()> {
        for (which, dims) in [("phone", phone), ("desktop", desktop)] {
            self.set_size(dims).await?;
            self.assert_accessible(&format!("{name} ({lang}, {which})"))
                .await?;
            self.screenshot(&format!("{name}-{lang}-{which}")).await?;
        }
        self.set_size(back_to).await
    }

    /// Runs JavaScript in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Result<serde_json::Value> {
        Ok(self.client.execute(script, Vec::new()).await?)
    }

    /// Waits until an attribute of the element satisfies `pred`; returns it.
    pub async fn wait_attr(
        &self,
        css: &str,
        attr: &str,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + WAIT;
        let mut last = None;
        while Instant::now() < deadline {
            if let Ok(el) = self.client.find(Locator::Css(css)).await
                && let Ok(value) = el.attr(attr).await
            {
                let value = value.unwrap_or_default();
                if pred(&value) {
                    return Ok(value);
                }
                last = Some(value);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("{css}[{attr}]: still {last:?} after {WAIT:?}").into())
    }

    /// Picks a language in the app's switcher and waits for `<html lang>` to follow.
    pub async fn choose_language(&self, code: &str) -> Result<()> {
        self.find("label.language select")
            .await?
            .select_by_value(code)
            .await?;
        self.wait_attr("html", "lang", |l| l == code).await?;
        Ok(())
    }

    /// The violations an axe-core audit finds in the page as it is now (rule id, impact, and
    /// where), in an empty list when there are none. axe-core comes from npm (the bootstrap
    /// installs it next to the other tools).
    pub async fn axe(&self) -> Result<Vec<String>> {
        let tools = std::env::var("CALLQUEUE_TOOLS_DIR").unwrap_or_else(|_| {
            format!(
                "{}/.local/share/callqueue-tools",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        let path = format!("{tools}/node_modules/axe-core/axe.min.js");
        let source = std::fs::read_to_string(&path)
            .map_err(|e| format!("{path}: {e} (run scripts/bootstrap)"))?;
        self.client.execute(&source, Vec::new()).await?;
        let result = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1]; \
                 axe.run(document, { resultTypes: ['violations'] }) \
                   .then(r => done({ checked: r.passes.length + r.violations.length, \
                     violations: r.violations.map(v => \
                       v.id + ' (' + v.impact + '): ' + v.help + ' — ' + \
                       v.nodes.map(n => n.target.join(' ')).join(', ')) })) \
                   .catch(e => done({ checked: 0, violations: ['axe failed: ' + e] }));",
                Vec::new(),
            )
            .await?;
        // An audit that checked nothing is not a pass.
        if result["checked"].as_u64().unwrap_or(0) == 0 {
            return Err(format!("axe-core did not run: {result}").into());
        }
        Ok(result["violations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Fails with the violations when the axe-core audit of the page finds any.
    pub async fn assert_accessible(&self, page: &str) -> Result<()> {
        let violations = self.axe().await?;
        if violations.is_empty() {
            Ok(())
        } else {
            Err(format!("{page}: axe-core found {violations:#?}").into())
        }
    }

    /// The decoded size and frame count of a `<video>` (`None` when there is no such element).
    /// Firefox never advances `totalVideoFrames` for a call's stream: there it is the painted
    /// frames.
    pub async fn video_frames(&self, css: &str) -> Result<Option<(u64, u64)>> {
        let v = self
            .client
            .execute(
                "const v = document.querySelector(arguments[0]); \
                 if (!v) return null; \
                 return [v.videoWidth, 'mozPaintedFrames' in v ? v.mozPaintedFrames \
                   : v.getVideoPlaybackQuality().totalVideoFrames];",
                vec![serde_json::Value::from(css)],
            )
            .await?;
        Ok(v.as_array().map(|a| {
            (
                a.first().and_then(|x| x.as_u64()).unwrap_or(0),
                a.get(1).and_then(|x| x.as_u64()).unwrap_or(0),
            )
        }))
    }

    /// Waits until the `<video>` plays: it has a picture and its decoded frames grow over two
    /// seconds. Answers how long it took.
    pub async fn wait_video_playing(&self, css: &str, within: Duration) -> Result<Duration> {
        let started = Instant::now();
        let deadline = started + within;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some((width, frames)) = self.video_frames(css).await?
                && width > 0
                && frames > 0
            {
                let at = Instant::now();
                tokio::time::sleep(Duration::from_secs(2)).await;
                if let Some((w2, later)) = self.video_frames(css).await?
                    && w2 > 0
                    && later > frames
                {
                    return Ok(at - started);
                }
            }
            last = self.video_frames(css).await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("{css} is not playing after {within:?}: {last:?}").into())
    }

    /// Starts watching the call page from inside it: every `RTCPeerConnection` made from now
    /// on is counted, the longest time the other member's video went without a new frame is
    /// kept (a stall still going on counts), and every text the stage shows is remembered.
    /// Firefox never advances `totalVideoFrames` for a call's stream: there it counts
    /// `mozPaintedFrames`.
    pub async fn watch_call(&self) -> Result<()> {
        self.eval(
            "if (window.__cq) { clearInterval(window.__cq.timer); } \
             const q = window.__cq = { made: 0, longest: 0, last: performance.now(), frames: 0, statuses: [] }; \
             if (!window.__cqCounting) { \
               const P = window.RTCPeerConnection; \
               window.RTCPeerConnection = class extends P { constructor(...a) { super(...a); window.__cq.made++; } }; \
               window.__cqCounting = true; \
             } \
             q.timer = setInterval(() => { \
               const now = performance.now(); \
               const v = document.querySelector('video.remote'); \
               const f = !v || !v.srcObject ? 0 : ('mozPaintedFrames' in v ? v.mozPaintedFrames \
                 : v.getVideoPlaybackQuality().totalVideoFrames); \
               if (f > q.frames) { q.last = now; } \
               q.frames = f; \
               q.longest = Math.max(q.longest, now - q.last); \
               const s = document.querySelector('.stage-status'); \
               if (s && !q.statuses.includes(s.textContent)) q.statuses.push(s.textContent); \
             }, 100); \
             return true;",
        )
        .await?;
        Ok(())
    }

    /// What [`Browser::watch_call`] saw so far: connections made, the longest stall in
    /// milliseconds, and the stage's texts.
    pub async fn call_watch(&self) -> Result<CallWatch> {
        let v = self
            .eval("const q = window.__cq; return q ? [q.made, q.longest, q.statuses, performance.now() - q.last] : null;")
            .await?;
        let a = v.as_array().ok_or("watch_call first")?;
        Ok(CallWatch {
            connections_made: a[0].as_u64().unwrap_or(0),
            longest_stall_ms: a[1].as_f64().unwrap_or(0.0),
            statuses: a[2]
                .as_array()
                .map(|s| {
                    s.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            since_last_frame_ms: a[3].as_f64().unwrap_or(0.0),
        })
    }

    /// How many of the camera and microphone tracks this page opened are still live (0 once
    /// the call has stopped them), wherever they are: on a `<video>`, on a peer connection, or
    /// nowhere. Chromium only (its windows keep the tracks their pages open).
    pub async fn live_tracks(&self) -> Result<u64> {
        let v = self
            .client
            .execute(
                "const opened = window.__openedTracks; \
                 if (!opened) return -1; \
                 return opened.filter(t => t.readyState === 'live').length;",
                Vec::new(),
            )
            .await?;
        match v.as_i64() {
            Some(n) if n >= 0 => Ok(n as u64),
            _ => Err("this window does not count its tracks (Chromium windows do)".into()),
        }
    }

    pub async fn close(self) -> Result<()> {
        self.client.close().await?;
        Ok(())
    }
}

/// New lines of a Firefox's console (geckodriver's output): the page's uncaught exceptions,
/// wasm panics and blocked content (CSP) are SEVERE, other console lines INFO. Firefox's own
/// scripts log to the same place (`console.error: RSLoader`, ...): an error that names no page
/// of ours is INFO.
fn firefox_logs(firefox: &Firefox) -> Vec<(String, String)> {
    use std::sync::atomic::Ordering;
    let Ok(all) = std::fs::read(&firefox.log) else {
        return Vec::new();
    };
    let from = (firefox.read.load(Ordering::Relaxed) as usize).min(all.len());
    firefox.read.store(all.len() as u64, Ordering::Relaxed);
    String::from_utf8_lossy(&all[from..])
        .lines()
        .filter_map(|line| {
            let severe = line.starts_with("JavaScript error: http")
                || line.contains("panicked at")
                || line.contains("RuntimeError")
                || line.contains("Content-Security-Policy");
            let console = line.starts_with("console.") || line.starts_with("JavaScript ");
            (severe || console).then(|| {
                let level = if severe { "SEVERE" } else { "INFO" };
                (level.to_string(), line.to_string())
            })
        })
        .collect()
}

/// What a call page saw while watched ([`Browser::watch_call`]).
#[derive(Debug, Clone)]
pub struct CallWatch {
    pub connections_made: u64,
    pub longest_stall_ms: f64,
    pub statuses: Vec<String>,
    /// How long ago the other member's video last showed a new frame.
    pub since_last_frame_ms: f64,
}

/// A chromedriver extension command: `POST /session/{id}/{path}` with a JSON body
/// (`se/log` for the browser's console log, `goog/cdp/execute` for DevTools).
#[derive(Debug, Clone)]
struct SessionPost {
    path: &'static str,
    body: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for SessionPost {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> std::result::Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}

/// The `p` quantile (0 to 1) of `v`, sorting it; NaN when empty.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// A new customer joins the default queue of the server at `base` over HTTP; returns their
/// reservation id and the `name=value` of their session cookie.
pub async fn join_queue(http: &reqwest::Client, base: &str) -> Result<(String, String)> {
    join_group(http, base, "default").await
}

/// [`join_queue`] in the named group.
pub async fn join_group(
    http: &reqwest::Client,
    base: &str,
    group: &str,
) -> Result<(String, String)> {
    let r = http
        .post(format!("{base}/api/groups/{group}/reservations"))
        .header("content-type", "application/json")
        .send()
        .await?;
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_string();
    let body: serde_json::Value = r.json().await?;
    let sid = body["reservation_sid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok((sid, cookie))
}

/// Clients per loopback source address in the load generators: well under one address's port
/// range.
pub const CLIENTS_PER_SOURCE: usize = 20_000;

/// Opens the reservation stream of `sid` over a raw socket, the `i`-th client bound to
/// 127.0.0.(2 + i / CLIENTS_PER_SOURCE), and sends the request; reading is the caller's.
pub async fn open_reservation_stream(
    i: usize,
    port: u16,
    group: &str,
    sid: &str,
    cookie: &str,
    kept_alive: bool,
) -> Result<tokio::net::TcpStream> {
    let source = std::net::Ipv4Addr::new(127, 0, 0, 2 + (i / CLIENTS_PER_SOURCE) as u8);
    open_reservation_stream_from(source, port, group, sid, cookie, kept_alive).await
}

/// [`open_reservation_stream`] from the loopback address `source`.
pub async fn open_reservation_stream_from(
    source: std::net::Ipv4Addr,
    port: u16,
    group: &str,
    sid: &str,
    cookie: &str,
    kept_alive: bool,
) -> Result<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::from((source, 0)))?;
    let mut stream = socket
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await?;
    if kept_alive {
        // As a browser does: the stream reuses a connection an earlier request left open.
        let req = format!(
            "GET /api/groups/{group}/reservations/{sid} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await?;
        tokio::time::timeout(Duration::from_secs(30), read_response(&mut stream)).await??;
    }
    let req = format!(
        "GET /api/events/g/{group}/r/{sid} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nCookie: {cookie}\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await?;
    Ok(stream)
}

/// Reads one response with a `Content-Length` body off `stream`, leaving the connection open.
async fn read_response(stream: &mut tokio::net::TcpStream) -> Result<()> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .ok_or("a response without Content-Length")?;
            if got.len() >= end + 4 + length {
                return Ok(());
            }
        }
    }
}

/// A customer starts a chat from the home page; answers their reservation id.
pub async fn start_chat(b: &Browser, server: &Server) -> Result<String> {
    start_chat_at(b, &server.base).await
}

/// [`start_chat`] on the app at `base` (a node, or the load balancer in front of several).
pub async fn start_chat_at(b: &Browser, base: &str) -> Result<String> {
    b.goto(&format!("{base}/")).await?;
    b.click("form.check-in button[type=submit]").await?;
    let url = b.wait_url(|u| u.contains("/hold/r/")).await?;
    Ok(url.rsplit('/').next().unwrap_or_default().to_string())
}

/// A matched customer's hold page says it is their turn; they press "Join the call" and the
/// call page opens.
pub async fn join_when_called(b: &Browser) -> Result<()> {
    b.click("button.join-now").await?;
    b.wait_url(|u| u.contains("/join/r/")).await?;
    Ok(())
}

/// The customer starts a chat on the app at `base`, a new specialist `name` signs in there and
/// accepts, and both pages reach the call; answers the customer's reservation id.
pub async fn into_a_call(
    server: &Server,
    base: &str,
    customer: &Browser,
    doc: &Browser,
    name: &str,
) -> Result<String> {
    let sid = start_chat_at(customer, base).await?;
    sign_in_specialist_at(doc, server, base, name).await?;
    doc.wait_text("h2", |t| t == "Waiting now: 1").await?;
    doc.click("button.accept-next").await?;
    join_when_called(customer).await?;
    customer
        .wait_url(|u| u.contains(&format!("/join/r/{sid}")))
        .await?;
    doc.wait_url(|u| u.contains("/join/r/")).await?;
    Ok(sid)
}

/// Signs a new specialist in on the console and makes them available.
pub async fn sign_in_specialist(b: &Browser, server: &Server, name: &str) -> Result<()> {
    sign_in_specialist_at(b, server, &server.base, name).await
}

/// [`sign_in_specialist`], the account made in `server`'s database, on the console at `base`.
pub async fn sign_in_specialist_at(
    b: &Browser,
    server: &Server,
    base: &str,
    name: &str,
) -> Result<()> {
    sign_in_named_specialist_at(b, server, base, name, None).await
}

/// [`sign_in_specialist_at`] for a specialist with a display name.
pub async fn sign_in_named_specialist_at(
    b: &Browser,
    server: &Server,
    base: &str,
    name: &str,
    display_name: Option<&str>,
) -> Result<()> {
    server
        .add_specialist_named(name, display_name, "e2e-secret-long-enough")
        .await?;
    b.goto(&format!("{base}/agent")).await?;
    b.find("input[name=user_id]").await?.send_keys(name).await?;
    b.find("input[name=secret]")
        .await?
        .send_keys("e2e-secret-long-enough")
        .await?;
    b.click("button[type=submit]").await?;
    b.wait_attr("button.availability", "aria-checked", |v| v == "false")
        .await?;
    b.click("button.availability").await?;
    b.wait_attr("button.availability", "aria-checked", |v| v == "true")
        .await?;
    Ok(())
}

/// coturn (Debian's `turnserver`) on a loopback port, with TURN REST API credentials
/// (`use-auth-secret`), relaying between loopback addresses (tests only).
pub struct Turn {
    pub port: u16,
    pub secret: String,
    dir: tempfile::TempDir,
    _child: Child,
}

impl Turn {
    pub async fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let secret = "e2e-turn-secret".to_string();
        let log = std::fs::File::create(dir.path().join("turn.log"))?;
        let pidfile = dir.path().join("turn.pid").display().to_string();
        let child =
            Command::new(std::env::var("TURNSERVER").unwrap_or_else(|_| "turnserver".into()))
                .args([
                    "-n",
                    "-v",
                    "--no-cli",
                    "--no-tls",
                    "--no-dtls",
                    "--simple-log",
                    "--fingerprint",
                ])
                .args(["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1"])
                .args(["--listening-port", &port.to_string()])
                .args(["--min-port", "40000", "--max-port", "40999"])
                .args(["--use-auth-secret", "--static-auth-secret", &secret])
                .args(["--realm", "callqueue.test", "--allow-loopback-peers"])
                .args(["--log-file", "stdout", "--pidfile", &pidfile])
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()?;
        // It listens within a moment; a client's first request is retried by ICE anyway.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::fs::read_to_string(dir.path().join("turn.log"))
                .unwrap_or_default()
                .contains("listener opened on")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            port,
            secret,
            dir,
            _child: child,
        })
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("turn.log")).unwrap_or_default()
    }
}
