//! The loopback ops listener.
use crate::helpers::*;

#[tokio::test]
async fn health_readiness_and_metrics_answer_in_plain_http() {
    let app = spawn_app().await;
    let base = format!("http://127.0.0.1:{}", app.ops_port);
    assert_eq!(plain_get(&format!("{base}/healthz")).await.status(), 200);
    let ready = plain_get(&format!("{base}/readyz")).await;
    assert_eq!(ready.status(), 200);
    // One signed failure, so the authentication counter has something to show.
    let rst = app.partner("P-RST-001");
    let mut out = rst.sign("GET", "/v1/keys", None);
    out.headers.clear();
    rst.send(&out)
        .await
        .assert_problem(401, "missing-signature");
    rst.verify_card(GOLD_CARD).await;
    let metrics = plain_get(&format!("{base}/metrics"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("alliance_auth_failures_total{code=\"missing-signature\"}"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("alliance_http_requests_total{route=\"/v1/members/verify\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("alliance_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
}

#[tokio::test]
async fn expired_nonces_are_pruned_in_batches_and_live_ones_kept() {
    use alliance_gateway::db::nonces::{NewNonce, Nonce};
    use alliance_gateway::db::PRUNE_BATCH;
    let app = spawn_app().await;
    let mut conn = app.conn();
    let now = chrono::Utc::now().naive_utc();
    let expired = 2 * PRUNE_BATCH as usize + 17;
    let before = Nonce::count(&mut conn).unwrap();
    let claim = |conn: &mut alliance_gateway::db::DbConn, i: usize, expires_at| {
        let nonce = format!("{i:064x}");
        assert!(Nonce::claim(
            conn,
            &NewNonce {
                key_id: "P-RST-001/k1",
                nonce_sha256: &nonce,
                expires_at,
            },
        )
        .unwrap());
    };
    // One insert each (`claim` takes the writer lock itself, so no transaction around them).
    for i in 0..expired {
        claim(&mut conn, i, now - chrono::TimeDelta::seconds(1));
    }
    for i in 0..5 {
        claim(
            &mut conn,
            expired + i,
            now + chrono::TimeDelta::seconds(600),
        );
    }
    assert_eq!(Nonce::prune(&mut conn, now).unwrap(), expired);
    assert_eq!(Nonce::count(&mut conn).unwrap(), before + 5);
    assert_eq!(Nonce::prune(&mut conn, now).unwrap(), 0);
}

/// Stored answers past their retention go in batches too (one DELETE of a minute's worth
/// would hold SQLite's writer, and every sale behind it), and live ones stay.
#[tokio::test]
async fn expired_stored_answers_are_pruned_in_batches_and_live_ones_kept() {
    use alliance_gateway::db::idempotency_keys::StoredResponse;
    use alliance_gateway::db::PRUNE_BATCH;
    let app = spawn_app().await;
    let mut conn = app.conn();
    let now = chrono::Utc::now().naive_utc();
    let expired = PRUNE_BATCH as usize + 3;
    let store = |conn: &mut alliance_gateway::db::DbConn, key: String, expires_at| {
        StoredResponse::store(
            conn,
            &StoredResponse {
                partner_code: "P-RST-001".into(),
                idempotency_key: key,
                request_sha256: "0".repeat(64),
                response_status: 201,
                response_body: "{}".into(),
                created_at: now - chrono::TimeDelta::days(40),
                expires_at,
            },
        )
        .unwrap();
    };
    for i in 0..expired {
        store(
            &mut conn,
            format!("old-{i}"),
            now - chrono::TimeDelta::seconds(1),
        );
    }
    store(&mut conn, "live".into(), now + chrono::TimeDelta::days(1));
    assert_eq!(StoredResponse::prune(&mut conn, now).unwrap(), expired);
    assert!(StoredResponse::find(&mut conn, "P-RST-001", "live", now)
        .unwrap()
        .is_some());
    assert_eq!(StoredResponse::prune(&mut conn, now).unwrap(), 0);
}

/// PostgreSQL: a table that has grown since it was last analysed (here: never) gets planner
/// statistics from the gateway within seconds, so the duplicate `partner_txn_id` lookup is
/// planned on its unique index. Without statistics, the cached generic plan read every sale of
/// the partner through `transactions_day_seq` instead.
#[tokio::test]
async fn young_tables_get_planner_statistics_so_the_duplicate_lookup_uses_its_unique_index() {
    use alliance_gateway::db::DbConn;
    use alliance_gateway::store::postgres::planner_stats;
    use diesel::RunQueryDsl;
    let app = spawn_app().await;
    let mut conn = app.conn();
    if !matches!(conn, DbConn::Postgres(_)) {
        // SQLite has no cached generic plans: nothing to do there.
        assert!(planner_stats::refresh(&mut conn).unwrap().is_empty());
        return;
    }
    diesel::sql_query(
        "INSERT INTO transactions (txn_id, partner_code, partner_txn_id, member_id, member_ref, \
           store_id, occurred_at, business_date, late, gross_fen, discount_fen, redeem_points, \
           redeem_value_fen, paid_fen, points_earned, points_balance, offer_version, \
           request_digest, created_at) \
         SELECT 'txn_test_' || i, 'P-RST-001', 'POS-' || i, (SELECT min(id) FROM members), \
           'ref', 'S1', now(), current_date, false, 1000, 0, 0, 0, 1000, 10, 10, 1, 'sha-256=:x:', \
           now() \
         FROM generate_series(1, 300) AS i",
    )
    .execute(&mut conn)
    .unwrap();
    // The inserts reach the statistics collector within a second or so; the gateway's own
    // task may get there first. Either way the table ends up analysed, well within 15 s.
    let mut done = false;
    for _ in 0..75 {
        planner_stats::refresh(&mut conn).unwrap();
        done = analysed(&mut conn, "transactions");
        if done {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(done, "transactions was not analysed");
    // Nothing changed since: not analysed again.
    assert!(!planner_stats::refresh(&mut conn)
        .unwrap()
        .contains(&"transactions".to_owned()));

    #[derive(diesel::QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text)]
        #[diesel(column_name = "QUERY PLAN")]
        line: String,
    }
    diesel::sql_query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query(
        "PREPARE dup(text, text) AS SELECT txn_id FROM transactions \
         WHERE partner_code = $1 AND partner_txn_id = $2 LIMIT 1",
    )
    .execute(&mut conn)
    .unwrap();
    let plan: Vec<Line> = diesel::sql_query("EXPLAIN EXECUTE dup('P-RST-001', 'POS-7')")
        .load(&mut conn)
        .unwrap();
    let plan = plan
        .into_iter()
        .map(|l| l.line)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        plan.contains("transactions_partner_code_partner_txn_id_key"),
        "{plan}"
    );
}

fn analysed(conn: &mut alliance_gateway::db::DbConn, table: &str) -> bool {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Flag {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        done: bool,
    }
    diesel::sql_query(format!(
        "SELECT (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL) AS done \
         FROM pg_stat_user_tables WHERE relname = '{table}'"
    ))
    .get_result::<Flag>(conn)
    .map(|f| f.done)
    .unwrap_or(false)
}

/// The hand-written statements of the sale path stay prepared on their connection: diesel
/// re-parses its own single-row INSERTs and every `sql_query` on each call, and on PostgreSQL
/// that was over a tenth of a sale's CPU. Two claims on one connection must share one prepared
/// statement (an unprepared one never shows in `pg_prepared_statements`).
#[tokio::test]
async fn hand_written_statements_are_prepared_once_per_connection() {
    use alliance_gateway::db::nonces::{NewNonce, Nonce};
    use alliance_gateway::db::DbConn;
    use diesel::RunQueryDsl;
    let app = spawn_app().await;
    let mut conn = app.conn();
    let expires_at = chrono::Utc::now().naive_utc() + chrono::TimeDelta::minutes(5);
    for (nonce, fresh) in [("n-one", true), ("n-two", true), ("n-one", false)] {
        let row = NewNonce {
            key_id: "P-RST-001/k-test",
            nonce_sha256: nonce,
            expires_at,
        };
        assert_eq!(Nonce::claim(&mut conn, &row).unwrap(), fresh, "{nonce}");
    }
    if !matches!(conn, DbConn::Postgres(_)) {
        return skipped_on_sqlite();
    }
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let prepared = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_prepared_statements \
         WHERE statement LIKE 'INSERT INTO request_nonces%'",
    )
    .get_result::<Count>(&mut conn)
    .unwrap();
    assert_eq!(prepared.n, 1, "the nonce claim was not kept prepared");
}
