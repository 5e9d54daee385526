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
    use alliance_gateway::db::nonces::{NewNonce, Nonce, PRUNE_BATCH};
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
