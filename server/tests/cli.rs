//! The server binary's command line: what it does with a database it cannot use.

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
