//! Accounts, sessions, audit, export and erasure, on both backends.
//!
//! Run with: `eval "$(scripts/services.sh start)" && cargo test --lib store::account_tests`

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use super::testing::on_each_backend;
use super::tests::create;
use super::{
    Language, NewAccount, NewAuditEvent, NewSession, Outcome, ProfileChange, Rotation, Store,
    StoreError, Throttle, UserId, VerificationPurpose, seal,
};

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
}

fn new_account(email: &str) -> NewAccount {
    NewAccount {
        display_name: "Web Person".into(),
        email: email.into(),
        password_hash: "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$aGFzaA".into(),
        language: Language::Fr,
        time_zone: "Europe/Paris".into(),
        consents: vec![("terms".into(), "2026-11".into())],
    }
}

async fn session(store: &Store, user: UserId, refresh: &str, now: DateTime<Utc>) -> Uuid {
    let id = Uuid::now_v7();
    store
        .create_session(
            &NewSession {
                id,
                user_id: user,
                auth_time: now,
                mfa: false,
                expires_at: now + Duration::days(30),
                refresh_hash: refresh.into(),
                refresh_expires_at: now + Duration::days(30),
            },
            now,
        )
        .await
        .expect("session stored");
    id
}

#[tokio::test]
async fn a_web_user_has_no_phone_and_an_email_is_taken_once() {
    on_each_backend(|store| async move {
        let id = store
            .create_account(&new_account("ana@example.com"), at(0))
            .await
            .expect("registered");
        let user = store.user(id).await.expect("the user reads back");
        assert_eq!(user.phone, None);
        assert_eq!(user.number, None);
        let account = store
            .account_by_email("ana@example.com")
            .await
            .expect("by email");
        assert_eq!(account.user_id, id);
        assert!(!account.mfa_enabled());
        assert_eq!(store.consents(id).await.unwrap().len(), 1);
        assert!(matches!(
            store.create_account(&new_account("ana@example.com"), at(1)).await,
            Err(StoreError::Conflict(field)) if field == "email"
        ));
    })
    .await;
}

#[tokio::test]
async fn an_sms_user_claims_an_account_and_a_web_user_links_a_phone_once() {
    on_each_backend(|store| async move {
        let sms = create(&store, 1).await;
        let (found, has_account) = store
            .user_by_phone(sms.phone.as_deref().unwrap())
            .await
            .expect("by phone");
        assert_eq!((found, has_account), (sms.id, false));
        store
            .attach_account(sms.id, "sms@example.com", "$argon2id$x", &[], at(0))
            .await
            .expect("claimed");
        assert!(matches!(
            store
                .attach_account(sms.id, "other@example.com", "$argon2id$x", &[], at(0))
                .await,
            Err(StoreError::Conflict(_))
        ));

        let web = store
            .create_account(&new_account("web@example.com"), at(0))
            .await
            .unwrap();
        store
            .start_phone_verification(
                web,
                "+15550009999",
                VerificationPurpose::Link,
                "k.h",
                at(600),
                at(0),
            )
            .await
            .unwrap();
        let pending = store
            .attempt_phone_verification(web, VerificationPurpose::Link)
            .await
            .unwrap();
        assert_eq!(
            (pending.phone.as_str(), pending.attempts),
            ("+15550009999", 1)
        );
        assert!(matches!(
            store
                .attempt_phone_verification(web, VerificationPurpose::Claim)
                .await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store.set_phone(web, sms.phone.as_deref().unwrap()).await,
            Err(StoreError::Conflict(field)) if field == "phone"
        ));
        store.set_phone(web, "+15550009999").await.unwrap();
        assert_eq!(
            store.user(web).await.unwrap().phone.as_deref(),
            Some("+15550009999")
        );
    })
    .await;
}

#[tokio::test]
async fn refresh_tokens_rotate_once_and_reuse_revokes_the_family() {
    on_each_backend(|store| async move {
        let user = store
            .create_account(&new_account("r@example.com"), at(0))
            .await
            .unwrap();
        let sid = session(&store, user, "t0", at(0)).await;
        let Rotation::Rotated(s) = store
            .rotate_refresh_token("t0", "t1", at(60 * 60 * 24 * 30), at(10))
            .await
            .unwrap()
        else {
            panic!("the first use rotates");
        };
        assert_eq!(s.id, sid);
        assert!(!store.session_revoked(user, sid).await.unwrap());
        // t0 again: reuse. The family is revoked and t1 no longer works.
        assert_eq!(
            store
                .rotate_refresh_token("t0", "t2", at(999_999), at(20))
                .await
                .unwrap(),
            Rotation::Reused {
                user_id: user,
                session_id: sid
            }
        );
        assert!(store.session_revoked(user, sid).await.unwrap());
        assert_eq!(
            store
                .rotate_refresh_token("t1", "t3", at(999_999), at(30))
                .await
                .unwrap(),
            Rotation::Invalid
        );
        assert_eq!(
            store
                .rotate_refresh_token("nope", "t4", at(999_999), at(30))
                .await
                .unwrap(),
            Rotation::Invalid
        );
    })
    .await;
}

#[tokio::test]
async fn expired_tokens_do_not_rotate_and_logout_all_ends_every_session() {
    on_each_backend(|store| async move {
        let user = store
            .create_account(&new_account("e@example.com"), at(0))
            .await
            .unwrap();
        let a = session(&store, user, "a0", at(0)).await;
        let b = session(&store, user, "b0", at(0)).await;
        assert_eq!(
            store
                .rotate_refresh_token("a0", "a1", at(1), at(60 * 60 * 24 * 31))
                .await
                .unwrap(),
            Rotation::Invalid
        );
        let mut ended = store
            .revoke_all_sessions(user, "logout_all", at(5))
            .await
            .unwrap();
        ended.sort();
        let mut both = vec![a, b];
        both.sort();
        assert_eq!(ended, both);
        assert!(store.session_revoked(user, b).await.unwrap());
        let other = store
            .create_account(&new_account("o@example.com"), at(0))
            .await
            .unwrap();
        assert!(matches!(
            store.session_revoked(other, a).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store.revoke_session(other, a, "logout", at(6)).await,
            Err(StoreError::NotFound)
        ));
    })
    .await;
}

#[tokio::test]
async fn throttles_and_trusted_devices_are_per_user() {
    on_each_backend(|store| async move {
        let user = store
            .create_account(&new_account("t@example.com"), at(0))
            .await
            .unwrap();
        assert_eq!(
            store.login_throttle(user, "account").await.unwrap(),
            Throttle::default()
        );
        let locked = Throttle {
            failures: 0,
            lockouts: 1,
            locked_until: Some(at(60)),
            updated_at: None,
        };
        store
            .set_login_throttle(user, "account", &locked, at(0))
            .await
            .unwrap();
        let read = store.login_throttle(user, "account").await.unwrap();
        assert_eq!((read.lockouts, read.locked_until), (1, Some(at(60))));
        store.clear_login_throttle(user, "account").await.unwrap();
        assert_eq!(
            store
                .login_throttle(user, "account")
                .await
                .unwrap()
                .lockouts,
            0
        );

        store
            .trust_device(user, "dev", at(100), at(0))
            .await
            .unwrap();
        assert!(store.is_trusted_device(user, "dev", at(50)).await.unwrap());
        assert!(!store.is_trusted_device(user, "dev", at(150)).await.unwrap());
        let other = store
            .create_account(&new_account("u@example.com"), at(0))
            .await
            .unwrap();
        assert!(!store.is_trusted_device(other, "dev", at(50)).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn profiles_update_partially_and_password_history_keeps_the_last_few() {
    on_each_backend(|store| async move {
        let user = store
            .create_account(&new_account("p@example.com"), at(0))
            .await
            .unwrap();
        let profile = store
            .update_profile(
                user,
                &ProfileChange {
                    time_zone: Some("America/Toronto".into()),
                    quiet_hours: Some(Some((22 * 60, 7 * 60))),
                    ..ProfileChange::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(profile.time_zone, "America/Toronto");
        assert_eq!(
            (profile.quiet_start, profile.quiet_end),
            (Some(1320), Some(420))
        );
        assert_eq!(profile.language, Language::Fr, "untouched fields stay");
        let cleared = store
            .update_profile(
                user,
                &ProfileChange {
                    quiet_hours: Some(None),
                    ..ProfileChange::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(cleared.quiet_start, None);

        for n in 0..7 {
            store
                .set_password(user, &format!("hash{n}"), 5, at(n))
                .await
                .unwrap();
        }
        assert_eq!(
            store.password_history(user, 10).await.unwrap(),
            ["hash6", "hash5", "hash4", "hash3", "hash2"]
        );
        assert_eq!(store.account(user).await.unwrap().password_hash, "hash6");
    })
    .await;
}

#[tokio::test]
async fn every_user_table_cascades_from_users() {
    on_each_backend(|store| async move {
        let tables = store.user_tables().await.unwrap();
        for expected in [
            "accounts",
            "sessions",
            "refresh_tokens",
            "messages",
            "tasks",
            "grocery_items",
        ] {
            assert!(
                tables.iter().any(|t| t == expected),
                "{expected} in {tables:?}"
            );
        }
        assert!(!tables.iter().any(|t| t == "audit_events"));
        assert_eq!(
            store.tables_without_cascade().await.unwrap(),
            Vec::<String>::new()
        );
    })
    .await;
}

#[tokio::test]
async fn export_opens_sealed_values_withholds_credentials_and_erasure_leaves_no_trace() {
    on_each_backend(|store| async move {
        let ana = create(&store, 1).await;
        let bob = create(&store, 2).await;
        store
            .attach_account(
                ana.id,
                "ana@example.com",
                "$argon2id$secret-hash",
                &[("terms".into(), "1".into())],
                at(0),
            )
            .await
            .unwrap();
        session(&store, ana.id, "refresh-ana", at(0)).await;
        store.add_task(ana.id, "call the pharmacy").await.unwrap();
        store.add_task(bob.id, "bob's task").await.unwrap();
        let sealed = store.sealer().seal(
            &seal::place("accounts.totp_secret", ana.id),
            "JBSWY3DPEHPK3PXP",
        );
        store.set_totp_pending(ana.id, &sealed).await.unwrap();
        store
            .audit(
                &NewAuditEvent::own("login", Outcome::Success, ana.id, Some("10.0.0.1".into())),
                at(1),
            )
            .await
            .unwrap();
        let admin_read = NewAuditEvent {
            event: "admin_read",
            outcome: Outcome::Success,
            actor: Some(bob.id),
            subject: Some(ana.id),
            ip: Some("10.0.0.2".into()),
            detail: serde_json::Value::Null,
        };
        store.audit(&admin_read, at(2)).await.unwrap();

        let export = store.export_user(ana.id, at(3)).await.unwrap();
        let text = export.to_string();
        assert_eq!(export["format"], "nudge-export/1");
        assert_eq!(export["user"]["display_name"], "User 1");
        assert_eq!(export["tables"]["tasks"][0]["title"], "call the pharmacy");
        assert_eq!(export["tables"]["accounts"][0]["email"], "ana@example.com");
        assert_eq!(
            export["tables"]["accounts"][0]["password_hash"],
            "[withheld: credential]"
        );
        assert!(
            !text.contains("secret-hash")
                && !text.contains("JBSWY3DP")
                && !text.contains("refresh-ana")
        );
        assert!(!text.contains("bob's task"));
        assert_eq!(export["security_events"].as_array().unwrap().len(), 2);

        let bob_before = store.export_user(bob.id, at(3)).await.unwrap();
        let report = store.erase_user(ana.id, at(4)).await.unwrap();
        assert!(report.leftovers.is_empty(), "{report:?}");
        assert!(matches!(
            store.user(ana.id).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store.export_user(ana.id, at(5)).await,
            Err(StoreError::NotFound)
        ));
        for table in store.user_tables().await.unwrap() {
            let rows = store.table_rows(&table, "user_id", ana.id).await.unwrap();
            assert!(rows.is_empty(), "{table} still has rows of the erased user");
        }
        let ana_audit = store.audit_events_for(ana.id, 100).await.unwrap();
        assert!(ana_audit.is_empty(), "{ana_audit:?}");
        let recent = store.recent_audit_events(10).await.unwrap();
        assert_eq!(recent[0].event, "account_erased");
        assert_eq!(
            (
                recent[0].actor_id,
                recent[0].subject_id,
                recent[0].ip.as_deref()
            ),
            (None, None, None)
        );
        // Bob's own record of reading is kept, without Ana.
        let bob_audit = store.audit_events_for(bob.id, 10).await.unwrap();
        assert_eq!(bob_audit.len(), 1);
        assert_eq!(bob_audit[0].subject_id, None);

        // The number is free again, and Bob's data is as it was (his audit entry lost only
        // the erased subject).
        let mut bob_after = store.export_user(bob.id, at(3)).await.unwrap();
        let mut bob_before = bob_before;
        bob_after["security_events"] = serde_json::Value::Null;
        bob_before["security_events"] = serde_json::Value::Null;
        assert_eq!(bob_after, bob_before);
        assert!(matches!(
            store.erase_user(ana.id, at(6)).await,
            Err(StoreError::NotFound)
        ));
    })
    .await;
}

#[tokio::test]
async fn retention_purges_old_audit_events_and_expired_credentials() {
    on_each_backend(|store| async move {
        let user = store
            .create_account(&new_account("x@example.com"), at(0))
            .await
            .unwrap();
        store
            .audit(
                &NewAuditEvent::own("login", Outcome::Failure, user, None),
                at(0),
            )
            .await
            .unwrap();
        store
            .audit(
                &NewAuditEvent::own("login", Outcome::Success, user, None),
                at(100),
            )
            .await
            .unwrap();
        assert_eq!(store.purge_audit_before(at(50)).await.unwrap(), 1);
        session(&store, user, "old", at(0)).await;
        store.trust_device(user, "d", at(10), at(0)).await.unwrap();
        let purged = store.purge_expired(at(60 * 60 * 24 * 31)).await.unwrap();
        assert!(purged >= 3, "{purged}");
        assert!(store.sessions(user).await.unwrap().is_empty());
    })
    .await;
}

/// The statements a scoped transaction sees, whatever its `WHERE` says.
async fn visible_in_scope(store: &Store, user: UserId) -> super::Result<(String, i64, i64)> {
    let row: (String, i64, i64) = super::with_user!(store, user, conn => {
        sqlx::query_as(
            "SELECT (SELECT CAST(current_user AS TEXT)), \
             (SELECT count(*) FROM tasks), (SELECT count(*) FROM users)",
        )
        .fetch_one(&mut *conn)
        .await?
    });
    Ok(row)
}

#[tokio::test]
async fn postgres_row_level_security_shows_nothing_without_the_user_setting_and_only_theirs_with_it()
 {
    let Some(url) = super::testing::fresh_postgres_url().await else {
        assert!(
            !super::testing::require_postgres(),
            "CI runs the PostgreSQL tests"
        );
        return;
    };
    let store = super::connect(&url, super::Sealer::generate())
        .await
        .unwrap();
    let ana = create(&store, 1).await.id;
    let bob = create(&store, 2).await.id;
    store.add_task(ana, "ana's").await.unwrap();
    store.add_task(bob, "bob's 1").await.unwrap();
    store.add_task(bob, "bob's 2").await.unwrap();

    // The store's scope: the database itself hides Bob's rows from a query about Ana, even
    // one without any WHERE clause.
    assert_eq!(
        visible_in_scope(&store, ana).await.unwrap(),
        ("nudge_app".into(), 1, 1)
    );
    assert_eq!(
        visible_in_scope(&store, bob).await.unwrap(),
        ("nudge_app".into(), 2, 1)
    );
    assert_eq!(store.tasks_page(ana, 0, 50, None).await.unwrap().len(), 1);

    // A raw session as the application role.
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("SET ROLE nudge_app")
        .execute(&mut conn)
        .await
        .unwrap();
    for table in [
        "tasks",
        "users",
        "messages",
        "accounts",
        "sessions",
        "user_phone_numbers",
    ] {
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table}: nothing without app.user_id");
    }
    let denied = sqlx::query("SELECT count(*) FROM audit_events")
        .fetch_one(&mut conn)
        .await;
    assert!(
        denied.is_err(),
        "the application role cannot read the audit log"
    );
    let bypass = sqlx::query("SET row_security = off")
        .execute(&mut conn)
        .await;
    let after_bypass: i64 = match bypass {
        // Allowed to set, but then any query that RLS would filter errors instead.
        Ok(_) => sqlx::query("SELECT count(*) FROM tasks")
            .fetch_one(&mut conn)
            .await
            .map(|r| r.get(0))
            .unwrap_or(0),
        Err(_) => 0,
    };
    assert_eq!(after_bypass, 0, "row_security=off does not open the wall");
    sqlx::query("RESET row_security")
        .execute(&mut conn)
        .await
        .unwrap();

    sqlx::query("SELECT set_config('app.user_id', $1, false)")
        .bind(ana.to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    let titles: Vec<(String,)> = sqlx::query_as("SELECT title FROM tasks")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(titles, vec![("ana's".to_owned(),)]);
    let changed = sqlx::query("UPDATE tasks SET title = 'hacked' WHERE user_id = $1")
        .bind(bob.0)
        .execute(&mut conn)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 0, "Bob's rows cannot be changed as Ana");
    let deleted = sqlx::query("DELETE FROM tasks")
        .execute(&mut conn)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(deleted, 1, "only Ana's own row");
    let smuggled = sqlx::query(
        "INSERT INTO tasks (user_id, title, done, created_at) VALUES ($1, 'x', false, now())",
    )
    .bind(bob.0)
    .execute(&mut conn)
    .await;
    assert!(smuggled.is_err(), "a row for Bob cannot be written as Ana");
    conn.close().await.unwrap();

    // The scope ends with its transaction: a pooled connection goes back unscoped.
    let super::Pool::Postgres(pool) = &store.pool else {
        unreachable!("a PostgreSQL store");
    };
    for _ in 0..4 {
        visible_in_scope(&store, ana).await.unwrap();
        let (user, setting): (String, String) = sqlx::query_as(
            "SELECT CAST(current_user AS TEXT), coalesce(current_setting('app.user_id', true), '')",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_ne!(user, "nudge_app");
        assert_eq!(setting, "");
    }

    assert_eq!(
        store.open_tasks(bob).await.unwrap().len(),
        2,
        "Bob's data is intact"
    );
    super::testing::drop_postgres_database(&url).await;
}

#[tokio::test]
async fn message_bodies_are_sealed_at_rest_and_read_back_in_the_clear() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await;
        let sent = store
            .insert_message(
                user.id,
                &super::NewMessage {
                    channel: super::Channel::Sms,
                    direction: super::Direction::Inbound,
                    body: "my meds are at 8am".into(),
                    provider_message_id: None,
                    in_reply_to: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(sent.body, "my meds are at 8am");
        let raw = raw_bodies(&store, user.id).await;
        let stored = &raw[0];
        assert!(
            stored.starts_with("v1.") && !stored.contains("meds"),
            "{stored}"
        );
        let read = store.recent_messages(user.id, 10).await.unwrap();
        assert_eq!(read[0].body, "my meds are at 8am");
    })
    .await;
}

/// Message bodies as stored, sealed or not.
async fn raw_bodies(store: &Store, user: UserId) -> Vec<String> {
    let rows: Vec<(String,)> = super::with_pool!(store, pool => {
        sqlx::query_as("SELECT body FROM messages WHERE user_id = $1 ORDER BY id")
            .bind(user.0)
            .fetch_all(pool)
            .await
            .unwrap()
    });
    rows.into_iter().map(|(b,)| b).collect()
}

#[tokio::test]
async fn rotation_reseals_every_sealed_value_under_the_new_key_and_resumes_from_its_checkpoint() {
    use super::seal::{Sealer, encode_key, generate_key};
    let dir = tempfile::tempdir().unwrap();
    let mut urls = vec![format!("sqlite://{}", dir.path().join("rot.db").display())];
    if let Some(url) = super::testing::fresh_postgres_url().await {
        urls.push(url);
    }
    for url in urls {
        let old = generate_key();
        let new = generate_key();
        let before = super::connect(&url, Sealer::new(&[old]).unwrap())
            .await
            .unwrap();
        let ana = create(&before, 1).await.id;
        let bob = create(&before, 2).await.id;
        for (user, text) in [(ana, "ana one"), (ana, "ana two"), (bob, "bob one")] {
            before
                .insert_message(
                    user,
                    &super::NewMessage {
                        channel: super::Channel::Web,
                        direction: super::Direction::Inbound,
                        body: text.into(),
                        provider_message_id: None,
                        in_reply_to: None,
                    },
                )
                .await
                .unwrap();
        }
        before
            .attach_account(bob, "bob@example.com", "$argon2id$h", &[], at(0))
            .await
            .unwrap();
        let pending = before.sealer().seal(
            &seal::place("accounts.totp_pending", bob),
            "JBSWY3DPEHPK3PXP",
        );
        before.set_totp_pending(bob, &pending).await.unwrap();
        // A body written before sealing began.
        super::with_pool!(before, pool => {
            sqlx::query("UPDATE messages SET body = 'legacy plain' WHERE body = (SELECT body FROM messages WHERE user_id = $1 ORDER BY id LIMIT 1)")
                .bind(bob.0)
                .execute(pool)
                .await
                .unwrap();
        });
        assert!(
            before
                .recent_messages(bob, 10)
                .await
                .unwrap()
                .iter()
                .any(|m| m.body == "legacy plain")
        );

        let ring =
            Sealer::from_text(&format!("{},{}", encode_key(&new), encode_key(&old))).unwrap();
        let during = super::connect(&url, ring.clone()).await.unwrap();
        assert_eq!(
            during.recent_messages(ana, 10).await.unwrap().len(),
            2,
            "old values still open"
        );
        assert!(
            during
                .note_active_key("seal", ring.active_key_id(), at(1))
                .await
                .unwrap()
        );
        assert!(
            !during
                .note_active_key("seal", ring.active_key_id(), at(2))
                .await
                .unwrap()
        );

        let columns = during.sealed_columns().await.unwrap();
        for expected in [("messages", "body"), ("accounts", "totp_pending")] {
            assert!(
                columns
                    .iter()
                    .any(|(t, c)| (t.as_str(), c.as_str()) == expected),
                "{columns:?}"
            );
        }
        // A pass that stopped after Ana resumes with Bob.
        super::with_pool!(during, pool => {
            sqlx::query("INSERT INTO reseal_progress (table_name, column_name, key_id, last_user_id, updated_at) VALUES ('messages', 'body', $1, $2, $3)")
                .bind(ring.active_key_id())
                .bind(ana.0)
                .bind(at(3))
                .execute(pool)
                .await
                .unwrap();
        });
        let mut heard = Vec::new();
        let step = during
            .reseal_column("messages", "body", 1, |s| heard.push(s.clone()))
            .await
            .unwrap();
        assert_eq!(
            (step.users, step.resealed, step.done),
            (1, 1, true),
            "only Bob's body: {step:?}"
        );
        assert!(heard.last().unwrap().done);
        assert!(
            raw_bodies(&during, ana)
                .await
                .iter()
                .all(|b| during.sealer().needs_reseal(b)),
            "Ana was skipped"
        );
        assert!(
            raw_bodies(&during, bob)
                .await
                .iter()
                .all(|b| b.starts_with("v1.") && !during.sealer().needs_reseal(b))
        );
        // The checkpoint is gone with the finished column: a new run walks everyone.
        for (table, column) in &columns {
            during
                .reseal_column(table, column, 1, |_| {})
                .await
                .unwrap();
        }

        let after = super::connect(&url, Sealer::new(&[new]).unwrap())
            .await
            .unwrap();
        let ana_bodies: Vec<String> = after
            .recent_messages(ana, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.body)
            .collect();
        assert_eq!(ana_bodies, ["ana one", "ana two"]);
        let bob_bodies: Vec<String> = after
            .recent_messages(bob, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.body)
            .collect();
        assert_eq!(bob_bodies, ["legacy plain"]);
        let account = after.account(bob).await.unwrap();
        let opened = after
            .sealer()
            .open(
                &seal::place("accounts.totp_pending", bob),
                account.totp_pending.as_deref().unwrap(),
            )
            .unwrap();
        assert_eq!(opened, "JBSWY3DPEHPK3PXP");
        let events = after.recent_audit_events(10).await.unwrap();
        assert!(events.iter().any(|e| e.event == "key_rotated"));
        if url.starts_with("postgres") {
            super::testing::drop_postgres_database(&url).await;
        }
    }
}

#[tokio::test]
async fn message_retention_purges_old_messages_but_keeps_what_newer_replies_point_at() {
    on_each_backend(|store| async move {
        let user = create(&store, 1).await;
        let ask = |body: &str, reply_to: Option<i64>| super::NewMessage {
            channel: super::Channel::Sms,
            direction: if reply_to.is_some() {
                super::Direction::Outbound
            } else {
                super::Direction::Inbound
            },
            body: body.into(),
            provider_message_id: None,
            in_reply_to: reply_to,
        };
        let old = store
            .insert_message(user.id, &ask("old question", None))
            .await
            .unwrap();
        store
            .insert_reply(user.id, &ask("old answer", Some(old.id)), &[])
            .await
            .unwrap();
        let straddling = store
            .insert_message(user.id, &ask("late question", None))
            .await
            .unwrap();
        let cutoff = super::sql::now();
        store
            .insert_reply(
                user.id,
                &ask("answer after the cutoff", Some(straddling.id)),
                &[],
            )
            .await
            .unwrap();
        let purged = store.purge_messages_before(cutoff).await.unwrap();
        assert_eq!(purged, 2, "the old pair goes");
        let left: Vec<String> = store
            .recent_messages(user.id, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.body)
            .collect();
        assert_eq!(left, ["late question", "answer after the cutoff"]);
    })
    .await;
}

#[tokio::test]
async fn the_accounts_migration_keeps_every_existing_user_and_their_data() {
    let dir = tempfile::tempdir().unwrap();
    // A database as the foundation left it, with a user and their data.
    let (url, pool) = super::testing::sqlite_file_at_migration(&dir.path().join("old.db"), 1).await;
    let id = UserId::new();
    for statement in [
        "INSERT INTO users (id, display_name, phone, language, time_zone, created_at) \
         VALUES ($1, 'Old Timer', '+15550001111', 'en', 'UTC', '2026-01-01T00:00:00+00:00')",
        "INSERT INTO user_phone_numbers (number, user_id, created_at) \
         VALUES ('+15559001111', $1, '2026-01-01T00:00:00+00:00')",
        "INSERT INTO tasks (user_id, title, created_at) VALUES ($1, 'kept', '2026-01-01T00:00:00+00:00')",
        "INSERT INTO messages (user_id, channel, direction, body, created_at) \
         VALUES ($1, 'sms', 'inbound', 'hello', '2026-01-01T00:00:00+00:00')",
    ] {
        sqlx::query(statement)
            .bind(id.0)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;

    // The full migration chain: `users` is rebuilt, nothing cascades away.
    let store = super::connect(&url, super::Sealer::generate())
        .await
        .unwrap();
    let user = store.user(id).await.unwrap();
    assert_eq!(user.phone.as_deref(), Some("+15550001111"));
    assert_eq!(user.number.as_deref(), Some("+15559001111"));
    assert_eq!(store.open_tasks(id).await.unwrap()[0].title, "kept");
    assert_eq!(
        store.recent_messages(id, 5).await.unwrap()[0].body,
        "hello",
        "a legacy body"
    );
    assert!(store.tables_without_cascade().await.unwrap().is_empty());
    super::with_pool!(store, pool => {
        let broken: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
            .fetch_all(pool)
            .await
            .unwrap();
        assert!(broken.is_empty(), "{broken:?}");
        let on: (i64,) = sqlx::query_as("PRAGMA foreign_keys").fetch_one(pool).await.unwrap();
        assert_eq!(on.0, 1, "foreign keys are back on after the rebuild");
    });
    // The rebuilt table still cascades.
    store.erase_user(id, at(0)).await.unwrap();
    assert!(store.open_tasks(id).await.unwrap().is_empty());
    assert!(store.recent_messages(id, 5).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_bound_login_role_cannot_leave_its_users_rows_even_by_switching_roles() {
    use sqlx::{Connection, Row};
    let Some(url) = super::testing::fresh_postgres_url().await else {
        assert!(
            !super::testing::require_postgres(),
            "CI runs the PostgreSQL tests"
        );
        return;
    };
    let store = super::connect(&url, super::Sealer::generate())
        .await
        .unwrap();
    let ana = create(&store, 1).await.id;
    let bob = create(&store, 2).await.id;
    store.add_task(ana, "ana's").await.unwrap();
    store.add_task(bob, "bob's").await.unwrap();

    // A login role for the API: a member of nudge_app, owner of nothing.
    let role = format!("nudge_api_{}", Uuid::now_v7().simple());
    super::with_pool!(store, pool => {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE ROLE {role} LOGIN IN ROLE nudge_app")))
            .execute(pool)
            .await
            .unwrap();
    });
    let mut api_url = url::Url::parse(&url).unwrap();
    api_url.set_username(&role).unwrap();
    let owner_as_api = super::connect(&url, super::Sealer::generate())
        .await
        .unwrap()
        .with_scoped_pool(&url)
        .await;
    assert!(
        owner_as_api.is_err(),
        "the owner is refused as the API's role"
    );
    let store = store.with_scoped_pool(api_url.as_str()).await.unwrap();

    assert_eq!(
        visible_in_scope(&store, ana).await.unwrap(),
        (role.clone(), 1, 1)
    );
    assert_eq!(
        store.tasks_page(bob, 0, 10, None).await.unwrap()[0].title,
        "bob's"
    );
    assert!(matches!(
        store.task(ana, 2).await,
        Err(StoreError::NotFound)
    ));

    let mut conn = sqlx::PgConnection::connect(api_url.as_str()).await.unwrap();
    let count = |sql: &'static str| sqlx::query(sql);
    let n: i64 = count("SELECT count(*) FROM tasks")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "nothing without app.user_id");
    for escape in [
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "SET row_security = off",
    ] {
        let tried = sqlx::query(escape).execute(&mut conn).await;
        if tried.is_ok() {
            let n: i64 = count("SELECT count(*) FROM tasks")
                .fetch_one(&mut conn)
                .await
                .map(|r| r.get(0))
                .unwrap_or(0);
            assert_eq!(n, 0, "{escape} opened the wall");
        }
    }
    conn.close().await.unwrap();
    drop(store);
    super::testing::drop_postgres_database(&url).await;
    let admin = std::env::var(super::testing::POSTGRES_URL_VAR).unwrap();
    let mut admin = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS {role}")))
        .execute(&mut admin)
        .await
        .unwrap();
}
