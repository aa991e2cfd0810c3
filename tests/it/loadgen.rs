//! `nudge loadgen` and `nudge admin seed` against the real binary: a short run of a few
//! hundred requests per phase must report sane figures. (Speed itself is measured by hand and
//! published in docs/performance.md, never asserted.)

use std::sync::Arc;

use serde_json::Value;

use crate::helpers::{Server, databases, run_cli, run_cli_with};

/// A load run measures the server, not its abuse limits: they are off, as in a benchmark set-up.
const UNLIMITED: [(&str, &str); 3] = [
    ("NUDGE_RATE_IP_PER_MIN", "0"),
    ("NUDGE_RATE_SMS_PER_MIN", "0"),
    ("NUDGE_RATE_API_PER_MIN", "0"),
];

const USERS: &str = "40";

#[tokio::test]
async fn a_short_run_reports_every_phase_with_sane_figures_on_every_database() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(dir.path()).await {
        let data = db.data_dir(dir.path());
        let seeded = run_cli(
            &data,
            &db,
            &["admin", "seed", "--users", USERS, "--memories", "3"],
        );
        assert!(
            seeded.status.success(),
            "[{}] seed: {}",
            db.label,
            String::from_utf8_lossy(&seeded.stderr)
        );
        assert!(String::from_utf8_lossy(&seeded.stdout).contains("created 40 users"));
        let again = run_cli(&data, &db, &["admin", "seed", "--users", USERS]);
        assert!(
            String::from_utf8_lossy(&again.stdout)
                .contains("created 0 users (40 were already there)")
        );

        let server = Server::start(
            &data,
            &db,
            &[
                ("NUDGE_METRICS_TOKEN", "scrape-me"),
                UNLIMITED[0],
                UNLIMITED[1],
                UNLIMITED[2],
            ],
        );
        let json = data.join("run.json");
        let svg = data.join("run.svg");
        let output = run_cli_with(
            &data,
            &db,
            &[("NUDGE_METRICS_TOKEN", "scrape-me")],
            &[
                "loadgen",
                "--target",
                &server.base,
                "--users",
                USERS,
                "--concurrency",
                "4",
                "--warmup",
                "0",
                "--duration",
                "1",
                "--json",
                json.to_str().unwrap(),
                "--plot",
                svg.to_str().unwrap(),
            ],
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "[{}] loadgen failed: {stderr}",
            db.label
        );
        assert!(
            stdout.contains("% of the bare baseline"),
            "[{}] {stdout}",
            db.label
        );
        assert!(
            stderr.contains("[nudge peak] 1/1 s"),
            "progress is shown: {stderr}"
        );

        let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let names: Vec<&str> = report["phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["baseline", "nudge peak", "nudge 50%", "baseline 50%"]
        );
        for phase in report["phases"].as_array().unwrap() {
            let latency = &phase["latency"];
            let name = &phase["name"];
            assert!(
                phase["ok"].as_u64().unwrap() > 0,
                "[{}] {name}: no answers",
                db.label
            );
            assert_eq!(
                phase["errors"], 0,
                "[{}] {name}: {}",
                db.label, phase["error_kinds"]
            );
            let p50 = latency["p50_ms"].as_f64().unwrap();
            let p99 = latency["p99_ms"].as_f64().unwrap();
            let max = latency["max_ms"].as_f64().unwrap();
            assert!(
                0.0 < p50 && p50 <= p99 && p99 <= max,
                "[{}] {name}: {latency}",
                db.label
            );
            assert_eq!(phase["timeline"].as_array().unwrap().len(), 1);
        }
        let nudge = &report["phases"][1];
        assert!(nudge["server"]["rss_end_bytes"].as_u64().unwrap() > 1_000_000);
        assert!(nudge["server"]["cpu_percent"].as_f64().unwrap() > 0.0);
        // Each of Nudge's phases has the writer's work over its measured time; the baseline,
        // which writes nothing, has none.
        for i in [1, 2] {
            let writer = &report["phases"][i]["writer"];
            assert!(writer["batches"].as_u64().unwrap() > 0, "{writer}");
            // And the server's own time for its turns, from its request-time histogram.
            let turns = &report["phases"][i]["server_turns"];
            assert!(turns["turns"].as_u64().unwrap() > 0, "{turns}");
            assert!(turns["mean_ms"].as_f64().unwrap() > 0.0, "{turns}");
            let p99 = turns["p99_within_ms"].as_f64();
            assert!(p99.is_some_and(|ms| ms > 0.0 && ms <= 10_000.0), "{turns}");
        }
        assert!(report["phases"][0]["writer"].is_null());
        assert!(report["phases"][0]["server_turns"].is_null());
        // The bare baselines' servers run in loadgen's process: their threads' CPU is theirs,
        // not the load generator's. Nudge's server is a process of its own.
        for i in [0, 3] {
            let cpu = report["phases"][i]["local_server_cpu_percent"].as_f64();
            assert!(cpu.is_some_and(|cpu| cpu > 0.0), "{}", report["phases"][i]);
        }
        assert!(nudge.get("local_server_cpu_percent").is_none(), "{nudge}");
        assert_eq!(report["server_pid"].as_u64(), server.pid().map(u64::from));

        let summary = &report["summary"];
        let ratio = summary["ratio_to_baseline"].as_f64().unwrap();
        assert!(ratio > 0.0, "{summary}");
        // The server's backend, from its metrics, sets the targets the run is read against.
        assert_eq!(summary["backend"], db.label, "{summary}");
        let targets = summary["targets"].as_array().unwrap();
        let figures: Vec<&str> = targets
            .iter()
            .map(|t| t["figure"].as_str().unwrap())
            .collect();
        assert_eq!(figures, ["peak_ratio", "half_peak_p99_ms"], "{summary}");
        let bound = if db.label == "sqlite" { 0.20 } else { 0.25 };
        assert_eq!(targets[0]["bound"].as_f64(), Some(bound));
        assert_eq!(targets[0]["value"].as_f64(), Some(ratio));
        assert_eq!(
            targets[1]["value"].as_f64(),
            summary["half_peak"]["p99_ms"].as_f64()
        );
        assert!(
            stdout.contains(&format!("Targets for full SMS turns on {}", db.label)),
            "{stdout}"
        );
        // The bare baseline's half peak is offered half of what it served closed loop.
        let bare = summary["baseline_rps"].as_f64().unwrap();
        let half = summary["baseline_half_peak"]["offered_rps"]
            .as_f64()
            .unwrap();
        assert!((half - bare / 2.0).abs() < 1.0, "{summary}");
        assert!(
            stdout.contains("The bare baseline at half its peak"),
            "{stdout}"
        );
        assert!(
            stdout.contains("by the server's clock, 99 % of its turns within"),
            "{stdout}"
        );
        assert!(stdout.contains("of its writes within"), "{stdout}");
        assert!(stdout.contains("of its commits within"), "{stdout}");
        assert_eq!(
            summary["memory"]["actors_after"], 40,
            "every user was activated: {summary}"
        );
        let writer = &summary["writer"];
        assert!(
            // One write per turn: the message carries its reply.
            writer["writes"].as_u64().unwrap() >= nudge["ok"].as_u64().unwrap(),
            "{writer}"
        );
        assert!(writer["batches"].as_u64().unwrap() <= writer["writes"].as_u64().unwrap());
        // The commits' tail, from the server's histogram: one of its finite bounds.
        let p99 = writer["batch_p99_within_ms"].as_f64();
        assert!(p99.is_some_and(|ms| ms > 0.0 && ms <= 2_500.0), "{writer}");
        // And the writes' tail, each write counted once.
        let writes = writer["write_p99_within_ms"].as_f64();
        assert!(
            writes.is_some_and(|ms| ms > 0.0 && ms <= 2_500.0),
            "{writer}"
        );
        assert!(stdout.contains("99 % of batches within"), "{stdout}");
        // SQLite's batch thread, as the kernel saw it: a share of the time on a CPU and one
        // waiting for a CPU. PostgreSQL's server has no such thread.
        let on_cpu = writer["thread_on_cpu"].as_f64();
        let waiting = writer["thread_waiting_for_cpu"].as_f64();
        let kernel_tells = std::path::Path::new("/proc/self/schedstat").exists();
        if db.label == "sqlite" && kernel_tells {
            assert!(on_cpu.is_some_and(|s| s > 0.0 && s <= 1.1), "{writer}");
            assert!(
                waiting.is_some_and(|s| (0.0..=1.1).contains(&s)),
                "{writer}"
            );
            assert!(stdout.contains("its thread ran"), "{stdout}");
        } else if db.label != "sqlite" {
            assert!(on_cpu.is_none() && waiting.is_none(), "{writer}");
        }
        assert!(
            summary["first_turns"]["count"].as_u64().unwrap() >= 38,
            "{summary}"
        );

        let sockets = &summary["sockets"];
        assert_eq!(
            (sockets["opened"].as_u64(), sockets["failed"].as_u64()),
            (Some(40), Some(0)),
            "every user holds a socket by default when there are fewer than 1,000: {sockets}"
        );
        assert_eq!(sockets["dropped"], 0, "{sockets}");
        assert!(
            sockets["messages"].as_u64().unwrap()
                >= 2 * sockets["push_latency"]["count"].as_u64().unwrap(),
            "each measured reply came with its inbound message: {sockets}"
        );
        assert!(
            sockets["push_latency"]["count"].as_u64().unwrap() > 0,
            "replies reach the web users' sockets: {sockets}"
        );
        assert!(stdout.contains("Web users: 40 sockets held"), "{stdout}");

        let picture = std::fs::read_to_string(&svg).unwrap();
        assert!(picture.starts_with("<svg") && picture.contains("nudge peak"));

        let store = server.store().await;
        for i in [0, 39] {
            let user = store
                .user_by_number(&nudge::loadgen::population::number(i))
                .await
                .unwrap();
            let memories = store.memories(user.id).await.unwrap();
            assert!(
                memories.len() >= 3,
                "[{}] user {i} was seeded 3 memories: {memories:?}",
                db.label
            );
        }
        server.stop();
    }
}

#[tokio::test]
async fn metrics_need_their_token_when_one_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let data = db.data_dir(dir.path());
    let server = Server::start(
        &data,
        &db,
        &[
            ("NUDGE_METRICS_TOKEN", "scrape-me"),
            UNLIMITED[0],
            UNLIMITED[1],
            UNLIMITED[2],
        ],
    );
    let refused = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
    let wrong = server
        .http
        .get(server.url("/metrics"))
        .bearer_auth("scrape-you")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .bearer_auth("scrape-me")
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("nudge_user_actors_active 0"), "{text}");
    assert!(
        text.contains("nudge_store_backend_info{backend=\"sqlite\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE nudge_store_writer_batches_total counter"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE nudge_store_writer_queue_wait_microseconds_total counter"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE nudge_store_writer_commit_seconds histogram"),
        "{text}"
    );
    let restarts = nudge::edges::metrics::sample(&text, "nudge_store_wal_restarts_total");
    assert_eq!(restarts, Some(0.0), "no log restarted yet: {text}");
    assert!(
        text.contains("# TYPE nudge_store_wal_catch_up_microseconds_total counter"),
        "{text}"
    );
    let commits = nudge::edges::metrics::sample(&text, "nudge_store_writer_commit_seconds_count");
    assert_eq!(commits, Some(0.0), "nothing committed yet: {text}");
    let writes = nudge::edges::metrics::sample(&text, "nudge_store_writer_write_seconds_count");
    assert_eq!(writes, Some(0.0), "nothing written yet: {text}");
    let workers = nudge::edges::metrics::sample(&text, "nudge_runtime_workers");
    assert!(workers.is_some_and(|n| n >= 1.0), "{text}");
    assert!(
        text.contains("# TYPE nudge_runtime_busy_seconds_total counter"),
        "{text}"
    );
    server.stop();
}

#[tokio::test]
async fn every_request_is_timed_by_route_pattern_method_and_status_class() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let data = db.data_dir(dir.path());
    let server = Server::start(&data, &db, &UNLIMITED);
    let status = |method: &str, path: &str| {
        let request = server
            .http
            .request(method.parse().unwrap(), server.url(path))
            .send();
        async move { request.await.unwrap().status().as_u16() }
    };
    assert_eq!(status("GET", "/healthz").await, 200);
    assert_eq!(status("GET", "/healthz").await, 200);
    // A person's item without a session: the route's pattern, not its path, names it.
    let item = "/api/v1/me/tasks/0e4f6a1e-8d52-4c1e-9a57-2b8f2f1d8a10";
    assert_eq!(status("GET", item).await, 401);
    assert_eq!(status("GET", "/no/such/page").await, 404);
    assert_eq!(status("BREW", "/healthz").await, 405);
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("# TYPE nudge_http_request_duration_seconds histogram"),
        "{text}"
    );
    let count = |labels: &str| {
        let name = format!("nudge_http_request_duration_seconds_count{{{labels}}}");
        nudge::edges::metrics::sample(&text, &name)
    };
    assert_eq!(
        count(r#"method="GET",route="/healthz",status="2xx""#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        count(r#"method="GET",route="/api/v1/me/tasks/{id}",status="4xx""#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        count(r#"method="GET",route="unmatched",status="4xx""#),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("/no/such/page"), "{text}");
    assert!(!text.contains("BREW"), "{text}");
    // The 405 is counted under a closed label, whether or not its path matched.
    let odd: f64 = text
        .lines()
        .filter(|line| line.starts_with("nudge_http_request_duration_seconds_count{"))
        .filter(|line| line.contains(r#"method="other""#) && line.contains(r#"status="4xx""#))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(odd, 1.0, "{text}");
    server.stop();
}

#[tokio::test]
async fn loadgen_says_how_to_seed_when_the_population_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let db = databases(dir.path()).await.remove(0);
    let data = db.data_dir(dir.path());
    let server = Server::start(&data, &db, &UNLIMITED);
    let output = run_cli(
        &data,
        &db,
        &[
            "loadgen",
            "--target",
            &server.base,
            "--users",
            "10",
            "--duration",
            "1",
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nudge admin seed --users 10"), "{stderr}");
    let bad = run_cli(&data, &db, &["loadgen", "--concurrency", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--concurrency"));
    // A reference that cannot be read is named before any load is sent.
    let missing = dir.path().join("no-such-report.json");
    let unread = run_cli(
        &data,
        &db,
        &["loadgen", "--compare", missing.to_str().unwrap()],
    );
    assert_eq!(unread.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unread.stderr);
    assert!(stderr.contains("no-such-report.json"), "{stderr}");
    // So is a write baseline's database that is not one.
    let unknown = run_cli(&data, &db, &["loadgen", "--write-baseline", "mysql://x"]);
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("--write-baseline must be sqlite:PATH or a postgres:// URL"),
        "{stderr}"
    );
    server.stop();
}

#[tokio::test]
async fn the_write_baseline_answers_after_two_rows_per_request_on_every_database() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    for db in databases(dir.path()).await {
        let quick = Quick::on(dir.clone(), db);
        let (db, data) = (&quick.db, &quick.data);
        // Its own file on SQLite; its own table in the server's database on PostgreSQL.
        let writes_db = match db.label {
            "sqlite" => format!("sqlite:{}", data.join("writes.db").display()),
            _ => db.url.clone(),
        };
        let (output, json) = quick.run("writes", &["--write-baseline", &writes_db]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "[{}] {stdout}\n{}",
            db.label,
            String::from_utf8_lossy(&output.stderr)
        );
        let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let phases = report["phases"].as_array().unwrap();
        let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["baseline", "nudge peak", "writes", "writes each"],
            "[{}]",
            db.label
        );
        // Group-committed, then one transaction per request: both answered every request,
        // and their own threads' CPU is told apart from the load generator's.
        let mut ok = 0;
        for (phase, target) in phases[2..].iter().zip(["writes", "writes-each"]) {
            assert_eq!(phase["target"], target);
            assert_eq!(
                phase["errors"], 0,
                "[{}] {}",
                db.label, phase["error_kinds"]
            );
            let answered = phase["ok"].as_u64().unwrap();
            assert!(answered > 0, "[{}] {phase}", db.label);
            ok += answered;
            let cpu = phase["local_server_cpu_percent"].as_f64();
            assert!(cpu.is_some_and(|cpu| cpu > 0.0), "[{}] {phase}", db.label);
        }

        let rps = |i: usize| phases[i]["throughput_rps"].as_f64().unwrap();
        let writes = &report["summary"]["writes"];
        assert_eq!(writes["backend"], db.label, "{writes}");
        assert_eq!(writes["writes_rps"].as_f64(), Some(rps(2)), "{writes}");
        let ratio = writes["ratio_to_baseline"].as_f64().unwrap();
        assert!((ratio - rps(2) / rps(0)).abs() < 1e-9, "{writes}");
        let nudge = writes["nudge_ratio"].as_f64().unwrap();
        assert!((nudge - rps(1) / rps(2)).abs() < 1e-9, "{writes}");
        let each = &writes["per_request"];
        assert_eq!(each["writes_rps"].as_f64(), Some(rps(3)), "{writes}");
        let ratio = each["ratio_to_baseline"].as_f64().unwrap();
        assert!((ratio - rps(3) / rps(0)).abs() < 1e-9, "{writes}");
        let nudge = each["nudge_ratio"].as_f64().unwrap();
        assert!((nudge - rps(1) / rps(3)).abs() < 1e-9, "{writes}");
        for line in [
            format!(
                "Write baseline ({}: two rows per request, group-committed)",
                db.label
            ),
            format!("The same rows one transaction per request ({})", db.label),
        ] {
            assert!(stdout.contains(&line), "{stdout}");
        }

        // Every answer came after its request's two rows were stored; a request still in
        // flight when a phase ended (two connections each) may have been stored without
        // being counted.
        let (inbound, outbound): (i64, i64) = match db.label {
            "sqlite" => {
                let file = rusqlite::Connection::open(data.join("writes.db")).unwrap();
                file.query_row(
                    "SELECT SUM(direction = 'inbound'), SUM(direction = 'outbound') \
                     FROM loadgen_writes",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .unwrap()
            }
            _ => {
                let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
                let counts = sqlx::query_as(
                    "SELECT COUNT(*) FILTER (WHERE direction = 'inbound'), \
                            COUNT(*) FILTER (WHERE direction = 'outbound') \
                     FROM loadgen_writes",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                pool.close().await;
                counts
            }
        };
        assert_eq!(inbound, outbound, "[{}]", db.label);
        let ok = i64::try_from(ok).unwrap();
        assert!(
            (ok..=ok + 4).contains(&inbound),
            "[{}] {inbound} stored for {ok} answered",
            db.label
        );
        quick.server.stop();
    }
}

#[tokio::test]
async fn a_write_baseline_it_cannot_reach_stops_the_run_before_any_load() {
    let quick = Quick::start().await;
    let (output, json) = quick.run(
        "unreachable",
        &["--write-baseline", "postgres://nobody@127.0.0.1:1/none"],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("starting the write baseline"), "{stderr}");
    assert!(!stderr.contains("[baseline]"), "no phase ran: {stderr}");
    assert!(!json.exists(), "no report");
    quick.server.stop();
}

#[tokio::test]
async fn rounds_alternate_the_baseline_and_the_peak_and_give_the_median_ratio() {
    let quick = Quick::start().await;
    let (output, json) = quick.run("rounds", &["--rounds", "2"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("the median of 2 rounds"), "{stdout}");

    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let names: Vec<&str> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "baseline 1/2",
            "nudge peak 1/2",
            "baseline 2/2",
            "nudge peak 2/2"
        ]
    );
    let summary = &report["summary"];
    let rounds = summary["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{summary}");
    let mut ratios: Vec<f64> = rounds
        .iter()
        .map(|r| {
            let ratio = r["ratio"].as_f64().unwrap();
            let quotient =
                r["nudge_peak_rps"].as_f64().unwrap() / r["baseline_rps"].as_f64().unwrap();
            assert!((ratio - quotient).abs() < 1e-9 && ratio > 0.0, "{r}");
            ratio
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let median = summary["ratio_to_baseline"].as_f64().unwrap();
    assert!(
        (median - (ratios[0] + ratios[1]) / 2.0).abs() < 1e-9,
        "{summary}"
    );
    quick.server.stop();
}

#[tokio::test]
async fn a_run_below_its_reference_says_so_and_exits_with_status_3() {
    let quick = Quick::start().await;
    // A reference no run can reach: Nudge ten times as fast as the bare baseline, in
    // every round, with a tenth of a byte per actor.
    let reference = quick.data.join("reference.json");
    let figures = serde_json::json!({
        "started_at": "2026-11-28T08:00:00Z",
        "users": 10,
        "concurrency": 2,
        "bodies": ["hi", "what's next?", "thanks", "I feel stuck today"],
        "upstream": null,
        "summary": {
            "ratio_to_baseline": 10.0,
            "rounds": [{"baseline_rps": 1.0, "nudge_peak_rps": 10.0, "ratio": 10.0}],
            "memory": {"bytes_per_added_actor": 0.1},
        }
    });
    std::fs::write(&reference, figures.to_string()).unwrap();
    let (output, json) = quick.run("compared", &["--compare", reference.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("Against "), "{stdout}");
    assert!(
        stdout.contains("throughput, of the bare baseline"),
        "{stdout}"
    );
    assert!(stdout.contains("REGRESSED"), "{stdout}");
    assert!(
        stderr.contains("regressed against the --compare reference"),
        "{stderr}"
    );
    assert!(!stdout.contains("note:"), "the runs were alike: {stdout}");

    // The report is still written, with the comparison in it.
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let comparison = &report["comparison"];
    assert_eq!(comparison["regressed"], true, "{comparison}");
    let ratio = comparison["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "ratio_to_baseline")
        .unwrap();
    assert_eq!(ratio["verdict"], "regressed", "{ratio}");
    assert_eq!(
        ratio["now"]["median"], report["summary"]["ratio_to_baseline"],
        "{ratio}"
    );
    quick.server.stop();
}

/// A server with 10 seeded users, for short runs.
struct Quick {
    _dir: Arc<tempfile::TempDir>,
    db: crate::helpers::Database,
    data: std::path::PathBuf,
    server: Server,
}

impl Quick {
    /// On SQLite.
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = databases(dir.path()).await.remove(0);
        Self::on(Arc::new(dir), db)
    }

    /// On `db`, its data directory under `dir`.
    fn on(dir: Arc<tempfile::TempDir>, db: crate::helpers::Database) -> Self {
        let data = db.data_dir(dir.path());
        let seeded = run_cli(&data, &db, &["admin", "seed", "--users", "10"]);
        assert!(seeded.status.success(), "{seeded:?}");
        let server = Server::start(&data, &db, &UNLIMITED);
        Self {
            _dir: dir,
            db,
            data,
            server,
        }
    }

    /// A run of a second per phase against the 10 users, two connections, no warm-up, sweep
    /// or sockets, then `extra`: its output, and where its JSON report went.
    fn run(&self, name: &str, extra: &[&str]) -> (std::process::Output, std::path::PathBuf) {
        let json = self.data.join(format!("{name}.json"));
        let plot = self.data.join(format!("{name}.svg"));
        let mut args = vec![
            "loadgen",
            "--target",
            &self.server.base,
            "--users",
            "10",
            "--concurrency",
            "2",
            "--warmup",
            "0",
            "--duration",
            "1",
            "--sweep",
            "none",
            "--sockets",
            "0",
            "--json",
            json.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        (run_cli(&self.data, &self.db, &args), json)
    }
}
