//! The server binary's command line: what it does with a database it cannot use.

mod common;

use std::process::Command;

fn run(args: &[&str], env: Option<(&str, &str)>, dir: &std::path::Path) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callqueue-server"));
    cmd.args(args).current_dir(dir);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_database_that_cannot_be_used_is_a_clear_error_not_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9: PostgreSQL is taken for what it is, and its absence said.
    for args in [
        vec![
            "agent",
            "add",
            "dr-x",
            "--database",
            "postgres://u:p@127.0.0.1:9/db",
        ],
        vec![
            "serve",
            "--database",
            "postgresql://127.0.0.1:9/db",
            "--addr",
            "127.0.0.1:0",
        ],
    ] {
        let (ok, stderr) = run(&args, None, dir.path());
        assert!(!ok, "{args:?}");
        assert!(stderr.contains("callqueue-server:"), "{stderr}");
        assert!(
            !stderr.contains("u:p@"),
            "no password in messages: {stderr}"
        );
    }
    let (ok, stderr) = run(
        &["agent", "add", "dr-x"],
        Some(("CALLQUEUE_DATABASE", "mysql://h/db")),
        dir.path(),
    );
    assert!(!ok);
    assert!(stderr.contains("mysql://"), "{stderr}");
    let (ok, stderr) = run(
        &["agent", "add", "dr-x", "--database", "postgres://"],
        None,
        dir.path(),
    );
    assert!(!ok);
    assert!(
        stderr.contains("postgres://user:password@host:port/database"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing was created"
    );
}

#[test]
fn json_logs_are_one_object_per_line_with_the_request_id() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_callqueue-server"))
        .args(["serve", "--log-format", "json", "--metrics-addr", "off"])
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info,callqueue_server=debug")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Up and serving: its first lines are JSON objects.
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert!(
        first["level"].is_string() && first["timestamp"].is_string(),
        "{first}"
    );
    let mut request = None;
    for _ in 0..50 {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => {
                request = Some(s);
                break;
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
    let mut s = request.expect("the server listens");
    s.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Request-Id: probe-7\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-request-id: probe-7"),
        "{answer}"
    );
    // Its log line carries the id.
    let mut seen = None;
    for line in lines.by_ref().take(50) {
        let line = line.unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["span"]["id"] == "probe-7" {
            seen = Some(v);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let seen = seen.expect("a log line of the request");
    assert_eq!(seen["span"]["route"], "/api/health");
}

/// `agent add` with its stdin and arguments: (success, stdout, stderr).
fn agent_add(args: &[&str], stdin: &str, database: &std::path::Path) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_callqueue-server"))
        .args(["agent", "add"])
        .args(args)
        .arg("--database")
        .arg(database)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A sign-in against a server on `database`: the status.
async fn sign_in(server: &common::TestServer, user: &str, secret: &str) -> u16 {
    common::plain_client()
        .post(server.url("/api/agent/session"))
        .json(&serde_json::json!({"user_id": user, "secret": secret}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Secrets are chosen safely or made for you, stored as Argon2id, and old SHA-256 rows are
/// upgraded when their owner signs in.
#[tokio::test]
async fn secrets_are_chosen_safely_and_stored_as_argon2id() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("callqueue.sqlite3");
    // Too short, from any source.
    let (ok, _, err) = agent_add(&["dr-a", "--secret", "summer2024"], "", &database);
    assert!(!ok && err.contains("at least 12"), "{err}");
    let (ok, _, err) = agent_add(&["dr-a", "--secret-stdin"], "short\n", &database);
    assert!(!ok && err.contains("at least 12"), "{err}");
    // From stdin and from a file: accepted, the secret never printed.
    let (ok, out, err) = agent_add(
        &["dr-a", "--secret-stdin"],
        "from stdin, long enough\n",
        &database,
    );
    assert!(ok, "{err}");
    assert!(
        !out.contains("from stdin") && !err.contains("warning"),
        "{out}{err}"
    );
    let file = dir.path().join("secret.txt");
    std::fs::write(&file, "from a file, long enough\n").unwrap();
    let (ok, _, err) = agent_add(
        &[
            "dr-b",
            "--secret-file",
            file.to_str().unwrap(),
            "--display-name",
            " ",
        ],
        "",
        &database,
    );
    assert!(!ok && err.contains("--display-name"), "{err}");
    let (ok, out, _) = agent_add(
        &[
            "dr-b",
            "--secret-file",
            file.to_str().unwrap(),
            "--display-name",
            " Dr. B ",
        ],
        "",
        &database,
    );
    assert!(ok && !out.contains("from a file"), "{out}");
    // On the command line: works, with a warning.
    let (ok, _, err) = agent_add(&["dr-c", "--secret", "on the command line"], "", &database);
    assert!(
        ok && err.contains("warning") && err.contains("--secret-file"),
        "{err}"
    );
    // None given: a generated one, printed once.
    let (ok, out, _) = agent_add(&["dr-d"], "", &database);
    assert!(ok, "{out}");
    let generated = out
        .split("secret: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the generated secret is printed")
        .to_string();
    assert_eq!(generated.len(), 32, "{out}");
    // Stored as Argon2id; a row from before (unsalted SHA-256) is rehashed on sign-in.
    let pool = callqueue_server::db::open(&database.clone().into())
        .await
        .unwrap();
    let hashes: Vec<String> = sqlx::query_scalar("SELECT secret_hash FROM agents ORDER BY user_id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(hashes.len(), 4);
    let names: Vec<Option<String>> =
        sqlx::query_scalar("SELECT display_name FROM agents ORDER BY user_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(names, [None, Some("Dr. B".to_string()), None, None]);
    assert!(
        hashes
            .iter()
            .all(|h| h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$")),
        "{hashes:?}"
    );
    sqlx::query("UPDATE agents SET secret_hash = $1 WHERE user_id = 'dr-c'")
        .bind(callqueue_server::tokens::hash("on the command line"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let mut config = callqueue_server::config::Config::for_tests(database.clone());
    config.rate_limits = false;
    let server = common::TestServer::start_in(dir, config).await;
    assert_eq!(
        sign_in(&server, "dr-a", "from stdin, long enough").await,
        200
    );
    assert_eq!(
        sign_in(&server, "dr-b", "from a file, long enough").await,
        200
    );
    assert_eq!(sign_in(&server, "dr-d", &generated).await, 200);
    assert_eq!(
        sign_in(&server, "dr-a", "from stdin, long enougH").await,
        401
    );
    assert_eq!(
        sign_in(&server, "nobody", "from stdin, long enough").await,
        401
    );
    assert_eq!(
        sign_in(&server, "dr-c", "on the command line").await,
        200,
        "an old hash"
    );
    let pool = callqueue_server::db::open(&database.into()).await.unwrap();
    let upgraded: String =
        sqlx::query_scalar("SELECT secret_hash FROM agents WHERE user_id = 'dr-c'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(upgraded.starts_with("$argon2id$"), "{upgraded}");
    assert_eq!(
        sign_in(&server, "dr-c", "on the command line").await,
        200,
        "the new hash"
    );
    server.stop().await;
}

/// Rate limits turned off are said at start, at `warn`; on (the default), nothing is said.
#[test]
fn rate_limits_off_is_warned_about_at_start() {
    use std::io::{BufRead, BufReader};
    for (limits, warned) in [("off", true), ("on", false)] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_callqueue-server"))
            .args(["serve", "--log-format", "json", "--metrics-addr", "off"])
            .args(["--addr", "127.0.0.1:0"])
            .env("CALLQUEUE_RATE_LIMITS", limits)
            .env("RUST_LOG", "info")
            .current_dir(dir.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Its start-up lines, up to the one that says it serves (the warning comes before).
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = Vec::new();
        for line in lines.take(20) {
            let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
            let serving = v["message"].as_str().is_some_and(|m| m.contains("serving"));
            seen.push(v);
            if serving {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        let warning = seen.iter().any(|v| {
            v["level"] == "WARN"
                && v["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("rate limits are off")
        });
        assert_eq!(warning, warned, "{limits}: {seen:?}");
    }
}
