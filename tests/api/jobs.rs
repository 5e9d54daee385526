//! Upkeep as jobs: each runs by hand from the CLI and in the gateway's own process, the
//! scheduler runs them on the intervals the settings give, and the clock, set ahead, lets a
//! day close now rather than at 02:00 tomorrow.
use crate::helpers::*;
use alliance_gateway::db::nonces::{NewNonce, Nonce};
use alliance_gateway::jobs::Job;
use chrono::{TimeDelta, TimeZone};
use serde_json::json;

#[tokio::test]
async fn every_upkeep_job_runs_by_hand_from_the_cli() {
    let app = spawn_app().await;
    for job in Job::ALL {
        let name = job.name();
        let out = assert_ok(admin(&app, &["run-job", &name]).await);
        assert!(out.starts_with(&format!("{name}: ")), "{out}");
    }
    let (code, _, err) = admin(&app, &["run-job", "polish-brass"]).await;
    assert_eq!(code, 2, "{err}");
}

fn expired_and_live_nonces(app: &TestApp) {
    let mut conn = app.conn();
    let now = chrono::Utc::now().naive_utc();
    for (nonce, expires_at) in [
        ("old-nonce-1", now - TimeDelta::minutes(1)),
        ("live-nonce-1", now + TimeDelta::minutes(10)),
    ] {
        let row = NewNonce {
            key_id: "P-RST-001/k1",
            nonce_sha256: nonce,
            expires_at,
        };
        assert!(Nonce::claim(&mut conn, &row).unwrap());
    }
}

#[tokio::test]
async fn a_job_run_in_the_gateways_process_reports_what_it_did() {
    // Intervals long enough that only the run by hand prunes.
    let app = spawn_app_with(|s| s.job_intervals.prune_nonces_ms = 86_400_000).await;
    expired_and_live_nonces(&app);
    let report = app.run_job(Job::PruneNonces).await;
    assert!(report.done >= 1, "{}", report.summary);
    assert_eq!(
        app.count("request_nonces WHERE nonce_sha256 = 'old-nonce-1'"),
        0
    );
    assert_eq!(
        app.count("request_nonces WHERE nonce_sha256 = 'live-nonce-1'"),
        1
    );
    let again = app.run_job(Job::PruneNonces).await;
    assert_eq!(again.done, 0, "idempotent: {}", again.summary);
}

#[tokio::test]
async fn the_scheduler_runs_each_job_on_the_interval_the_settings_give() {
    let app = spawn_app_with(|s| s.job_intervals.prune_nonces_ms = 20).await;
    expired_and_live_nonces(&app);
    // Every 20 ms: pruned within a few runs. (The default is a minute.)
    let mut left = 1;
    for _ in 0..250 {
        left = app.count("request_nonces WHERE nonce_sha256 = 'old-nonce-1'");
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(left, 0, "the scheduler pruned the expired nonce");
    assert_eq!(
        app.count("request_nonces WHERE nonce_sha256 = 'live-nonce-1'"),
        1
    );
}

#[tokio::test]
async fn with_the_clock_set_past_closing_time_today_closes_now() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    let tz = chrono_tz::Asia::Shanghai;
    let now = chrono::Utc::now().with_timezone(&tz);
    let today = now.date_naive();
    let sale = json!({"partner_txn_id": "CLOCK-1", "card_no": GOLD_CARD, "store_id": "store-1",
        "occurred_at": now.to_rfc3339(), "gross_fen": 10_000, "discount_fen": 0, "redeem_points": 0});
    assert_eq!(
        rst.post_idem("/v1/transactions", &sale, &idem())
            .await
            .status,
        201
    );
    let statement = app
        .settings
        .statements_dir()
        .join(today.to_string())
        .join("v1/partners/P-RST-001.csv");
    assert!(!statement.exists(), "today is still open");

    // 02:30 tomorrow, local time: today's closing time (02:00) has passed.
    let tomorrow = today.succ_opt().unwrap().and_hms_opt(2, 30, 0).unwrap();
    app.clock.set(
        tz.from_local_datetime(&tomorrow)
            .unwrap()
            .with_timezone(&chrono::Utc),
    );
    let report = app.run_job(Job::SettleDue).await;
    assert!(report.done >= 1, "{}", report.summary);
    assert!(
        report.summary.contains(&today.to_string()),
        "{}",
        report.summary
    );
    let csv = std::fs::read_to_string(&statement).unwrap();
    assert!(csv.contains("CLOCK-1"), "{csv}");
    // The partner downloads it at once, signed at the gateway's time.
    let res = rst.get(&format!("/v1/statements/{today}")).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
}
