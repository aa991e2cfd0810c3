//! The command line: settings validation, help, admin commands.

use crate::helpers::{Database, Server, add_user, databases, run_cli};

#[tokio::test]
async fn serve_help_documents_every_setting() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let output = run_cli(dir.path(), &db, &["serve", "--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for setting in [
        "NUDGE_LISTEN",
        "NUDGE_DATA_DIR",
        "NUDGE_DATABASE_URL",
        "NUDGE_PUBLIC_URL",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_AUTH_TOKEN_FILE",
        "TWILIO_API_BASE",
        "NUDGE_IDLE_PASSIVATE_SECS",
        "NUDGE_REPLY_WINDOW_MS",
        "NUDGE_CONFIG",
    ] {
        assert!(
            help.contains(setting),
            "serve --help does not mention {setting}"
        );
    }
    assert!(
        !help.contains("test-auth-token"),
        "help must not print secret values"
    );
}

#[tokio::test]
async fn a_bad_setting_stops_the_process_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let output = run_cli(dir.path(), &db, &["--listen", "nowhere", "serve"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("NUDGE_LISTEN") && stderr.contains("nowhere"),
        "{stderr}"
    );

    let output = run_cli(dir.path(), &db, &["--idle-passivate-secs", "soon", "serve"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("NUDGE_IDLE_PASSIVATE_SECS"));
}

#[tokio::test]
async fn adding_a_user_twice_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let data = db.data_dir(dir.path());
        let id = add_user(&data, &db, "Ana", "+14155550101", "+14155559001", "en");
        assert!(id.parse::<uuid::Uuid>().is_ok(), "{id}");

        let same_phone = run_cli(
            &data,
            &db,
            &[
                "admin",
                "user",
                "add",
                "--name",
                "Ann",
                "--phone",
                "+14155550101",
                "--number",
                "+14155559002",
            ],
        );
        assert_eq!(same_phone.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&same_phone.stderr).contains("phone"),
            "[{}]",
            db.label
        );

        let same_number = run_cli(
            &data,
            &db,
            &[
                "admin",
                "user",
                "add",
                "--name",
                "Ann",
                "--phone",
                "+14155550102",
                "--number",
                "+14155559001",
            ],
        );
        assert_eq!(same_number.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&same_number.stderr).contains("number"),
            "[{}]",
            db.label
        );

        let bad_phone = run_cli(
            &data,
            &db,
            &[
                "admin",
                "user",
                "add",
                "--name",
                "Ann",
                "--phone",
                "555-0102",
                "--number",
                "+14155559003",
            ],
        );
        assert_eq!(bad_phone.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&bad_phone.stderr).contains("E.164"));

        let bad_tz = run_cli(
            &data,
            &db,
            &[
                "admin",
                "user",
                "add",
                "--name",
                "Ann",
                "--phone",
                "+14155550103",
                "--number",
                "+14155559003",
                "--tz",
                "Mars/Olympus",
            ],
        );
        assert_eq!(bad_tz.status.code(), Some(2));
    }
}

/// The server's heap is on 4 KiB pages: with transparent huge pages, the fault that first
/// touched each new 2 MiB of heap zeroed all of it, stalling the turn or activation that made
/// it (docs/performance.md, round 23).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_server_runs_without_transparent_huge_pages() {
    let dir = tempfile::tempdir().unwrap();
    // The embedded default alone: the process's memory does not depend on its database.
    let db = Database::sqlite(dir.path());
    let server = Server::start(dir.path(), &db, &[]);
    let pid = server.pid().expect("the server runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let thp = status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .map(str::trim);
    assert_eq!(thp, Some("0"), "{status}");
    server.stop();
}
