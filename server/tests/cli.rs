//! The server binary's command line: what it does with a database it cannot use.

use std::process::Command;

#[test]
fn a_postgres_url_is_a_clear_error_not_a_folder() {
    let dir = tempfile::tempdir().unwrap();
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
        let out = Command::new(env!("CARGO_BIN_EXE_callqueue-server"))
            .args(&args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("PostgreSQL is not supported"), "{stderr}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing was created"
        );
    }
    // The same through the environment.
    let out = Command::new(env!("CARGO_BIN_EXE_callqueue-server"))
        .args(["agent", "add", "dr-x"])
        .env("CALLQUEUE_DATABASE", "postgres://h/db")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PostgreSQL"));
}
