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
