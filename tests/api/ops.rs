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
