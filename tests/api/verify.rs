//! `POST /v1/members/verify`: lookups, refs, benefits, PII, and bad input.
use crate::helpers::*;
use serde_json::json;

const VERIFY: &str = "/v1/members/verify";

#[tokio::test]
async fn card_phone_and_ref_name_the_same_member_and_refs_differ_per_partner() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    let by_card = rst.verify_card(GOLD_CARD).await.json();
    let by_phone = rst
        .post_json(VERIFY, &json!({ "phone": "+86 138 0013 8000" }))
        .await
        .json();
    assert_eq!(by_card["member_ref"], by_phone["member_ref"]);
    let member_ref = by_card["member_ref"].as_str().unwrap();
    assert_eq!(member_ref.len(), 26);
    let by_ref = rst
        .post_json(VERIFY, &json!({ "member_ref": member_ref }))
        .await;
    assert_eq!(by_ref.status, 200);
    assert_eq!(by_ref.json()["tier"], "gold");

    let cinema = app.partner("P-CIN-001");
    let at_cinema = cinema.verify_card(GOLD_CARD).await.json();
    assert_ne!(
        at_cinema["member_ref"], by_card["member_ref"],
        "two partners never share a ref"
    );
    // The restaurant's ref means nothing at the cinema.
    cinema
        .post_json(VERIFY, &json!({ "member_ref": member_ref }))
        .await
        .assert_problem(404, "member-not-found");
}

#[tokio::test]
async fn benefits_come_from_the_partners_offer_and_no_pii_leaves() {
    let app = spawn_app().await;
    let res = app.partner("P-CIN-001").verify_card(GOLD_CARD).await;
    let body = res.json();
    assert_eq!(body["benefits"]["discount_bps"], 800);
    assert_eq!(body["benefits"]["min_spend_fen"], 5000);
    assert_eq!(body["benefits"]["redeem_enabled"], false);
    assert_eq!(body["benefits"]["redeem_requires_member_token"], false);
    let text = String::from_utf8_lossy(&res.body);
    for secret in [GOLD_CARD, GOLD_PHONE, "birth_month\"", "card_no", "phone"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "benefits",
            "eligible",
            "member_ref",
            "offer_version",
            "status",
            "tier",
            "verified_at"
        ]
    );
}

#[tokio::test]
async fn frozen_members_are_shown_but_not_eligible() {
    let app = spawn_app().await;
    let res = app.partner("P-RST-001").verify_card(FROZEN_CARD).await;
    assert_eq!(res.status, 200);
    let body = res.json();
    assert_eq!(body["status"], "frozen");
    assert_eq!(body["eligible"], false);
}

#[tokio::test]
async fn unknown_members_are_404_and_counted() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    let before = app.snapshot();
    rst.verify_card("8899999999")
        .await
        .assert_problem(404, "member-not-found");
    let after = app.snapshot();
    assert_eq!(after[0], before[0], "no member ref is handed out");
    let metrics = plain_get(&format!("http://127.0.0.1:{}/metrics", app.ops_port))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("alliance_verify_member_not_found_total{partner=\"P-RST-001\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn bad_bodies_are_problems_that_write_nothing() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    let cases: [(&[u8], u16, &str); 5] = [
        (b"{\"card_no\":", 400, "malformed-request"),
        (
            br#"{"card_no":"8800123456","phone":"13800138000"}"#,
            422,
            "validation-failed",
        ),
        (br#"{"card_no":"88"}"#, 422, "validation-failed"),
        (br#"{"card":"8800123456"}"#, 422, "validation-failed"),
        (br#"{"card_no":8800123456}"#, 422, "validation-failed"),
    ];
    for (body, status, code) in cases {
        let before = app.snapshot();
        let res = rst.send(&rst.sign("POST", VERIFY, Some(body))).await;
        let problem = res.assert_problem(status, code);
        if code == "validation-failed" {
            assert!(
                problem["errors"].as_array().is_some_and(|e| !e.is_empty()),
                "{problem}"
            );
        }
        // The nonce of a verified request is consumed; nothing else is written.
        let after = app.snapshot();
        assert_eq!(after[0], before[0]);
        assert_eq!(after[1], before[1] + 1);
    }
}

#[tokio::test]
async fn bodies_up_to_64_kib_are_read_and_one_byte_more_is_413() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    let exact = format!("{{\"card_no\":\"8800123456\"{}}}", " ".repeat(65536 - 24));
    assert_eq!(exact.len(), 65536);
    let res = rst
        .send(&rst.sign("POST", VERIFY, Some(exact.as_bytes())))
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let over = format!("{exact} ");
    let before = app.snapshot();
    rst.send(&rst.sign("POST", VERIFY, Some(over.as_bytes())))
        .await
        .assert_problem(413, "payload-too-large");
    assert_eq!(app.snapshot(), before);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_signed_problems() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    let out = rst.sign("GET", "/v1/nothing-here", None);
    let res = rst.send(&out).await;
    res.assert_problem(404, "not-found");
    assert_signed_by_gateway(&res, &rst.app_gateway_keys, out.header("Signature"));
    // A known path with another method: 405, naming the methods it takes.
    let out = rst.sign("GET", VERIFY, None);
    let res = rst.send(&out).await;
    res.assert_problem(405, "method-not-allowed");
    assert_eq!(res.header("allow"), Some("POST"));
    assert_signed_by_gateway(&res, &rst.app_gateway_keys, out.header("Signature"));
    let res = rst
        .send(&rst.sign("DELETE", "/v1/transactions", None))
        .await;
    res.assert_problem(405, "method-not-allowed");
    assert_eq!(res.header("allow"), Some("GET, POST"));
}

#[tokio::test]
async fn a_member_datum_sent_with_the_wrong_type_never_comes_back() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    for (body, field, secret) in [
        (&br#"{"card_no":8800123456}"#[..], "card_no", "8800123456"),
        (&br#"{"phone":13800138000}"#[..], "phone", "13800138000"),
    ] {
        let res = rst.send(&rst.sign("POST", VERIFY, Some(body))).await;
        let problem = res.assert_problem(422, "validation-failed");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        assert_eq!(
            problem["errors"][0]["message"], "wrong type: expected a string",
            "{problem}"
        );
        let text = String::from_utf8_lossy(&res.body);
        assert!(!text.contains(secret), "{text}");
    }
}

#[tokio::test]
async fn verify_is_rate_limited_per_partner_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.verify_requests_per_minute = 3;
        s.verify_members_per_day = 1;
    })
    .await;
    let rst = app.partner("P-RST-001");
    // One distinct member a day: the same member again is fine, a second one is not.
    assert_eq!(rst.verify_card(GOLD_CARD).await.status, 200);
    assert_eq!(rst.verify_card(GOLD_CARD).await.status, 200);
    let before = app.snapshot();
    let res = rst.verify_card(FROZEN_CARD).await;
    res.assert_problem(429, "rate-limited");
    let retry: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    assert_eq!(
        app.snapshot()[0],
        before[0],
        "no member ref for a refused member"
    );
    // Three requests a minute, whatever they ask (the window may roll over once: allow it).
    let mut limited = false;
    for _ in 0..4 {
        let res = rst.verify_card(GOLD_CARD).await;
        if res.status == 429 {
            let body = res.assert_problem(429, "rate-limited");
            assert_eq!(body["detail"], "too many verify requests this minute");
            let retry: u64 = res.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry), "{retry}");
            limited = true;
            break;
        }
    }
    assert!(limited, "the fourth request in a minute must be refused");
    // Another partner has its own limits.
    assert_eq!(
        app.partner("P-CIN-001").verify_card(GOLD_CARD).await.status,
        200
    );
}

/// A request's checks run on a database thread until the gateway has cached the registry rows
/// they need, and on the async worker after (`auth::check_cache_only`). Both ways give the same
/// answers, bad input and replays included, and write the same.
#[tokio::test]
async fn verify_answers_alike_before_and_after_the_registry_is_cached() {
    let (cold, warm) = (spawn_app().await, spawn_app().await);
    let bad: &[u8] = br#"{"card_no":"8800123456","phone":"+86 138 0013 8000"}"#;
    let good: &[u8] = br#"{"card_no":"8800123456"}"#;
    // `warm` caches its registry with a first request of its own.
    assert_eq!(
        warm.partner("P-RST-001")
            .verify_card(GOLD_CARD)
            .await
            .status,
        200
    );

    let mut answers = Vec::new();
    for app in [&cold, &warm] {
        let rst = app.partner("P-RST-001");
        let before = app.snapshot();
        let refused = rst.send(&rst.sign("POST", VERIFY, Some(bad))).await;
        let problem = refused.assert_problem(422, "validation-failed");
        let after_bad = app.snapshot();
        assert_eq!(after_bad[0], before[0], "a refused verify remembers no ref");
        assert_eq!(after_bad[1], before[1] + 1, "its nonce is consumed");

        let signed = rst.sign("POST", VERIFY, Some(good));
        let res = rst.send(&signed).await;
        assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
        assert_signed_by_gateway(&res, &rst.app_gateway_keys, signed.header("Signature"));
        let mut body = res.json();
        body.as_object_mut().unwrap().remove("verified_at");
        rst.send(&signed)
            .await
            .assert_problem(401, "replayed-request");
        answers.push((problem["errors"].clone(), body));
    }
    let (cold_answer, warm_answer) = (&answers[0], &answers[1]);
    assert_eq!(cold_answer.0, warm_answer.0, "the same field errors");
    assert_eq!(cold_answer.1["tier"], "gold");
    // Refs differ between two alliances (their member-data keys do); nothing else may.
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("member_ref");
        v
    };
    assert_eq!(strip(&cold_answer.1), strip(&warm_answer.1));
}

/// Sends `n` signed verifies by card at once, each over a connection of its own; the answers
/// come back with the signature each request carried.
async fn verify_at_once(rst: &std::sync::Arc<PartnerClient>, n: usize) -> Vec<(Response, String)> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let rst = rst.clone();
            tokio::spawn(async move {
                let body = json!({ "card_no": GOLD_CARD }).to_string();
                let out = rst.sign("POST", VERIFY, Some(body.as_bytes()));
                let signature = out.header("Signature").unwrap().to_owned();
                (rst.send(&out).await, signature)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers
}

/// With one place per worker (`http::admission`), requests at once queue for it and every one
/// is answered, signed and bound to its own request. A refused request gives its place back:
/// if it kept it, nothing after it would be answered.
#[tokio::test]
async fn with_one_place_per_worker_requests_at_once_each_get_their_own_answer() {
    let app = spawn_app_with(|s| s.max_in_flight_per_worker = 1).await;
    let rst = std::sync::Arc::new(app.partner("P-RST-001"));
    rst.send(&rst.sign("POST", VERIFY, Some(b"{\"card_no\":")))
        .await
        .assert_problem(400, "malformed-request");
    let before = app.snapshot();
    let answers = verify_at_once(&rst, 24).await;
    for (res, signature) in &answers {
        assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
        assert_eq!(res.json()["tier"], "gold");
        assert_signed_by_gateway(res, &rst.app_gateway_keys, Some(signature));
    }
    assert_eq!(app.snapshot()[1], before[1] + 24, "one nonce per request");
}

/// With one place and one request allowed to wait for it, requests at once beyond those are
/// refused with a signed 503 and `Retry-After`, before any check: they write nothing, not even
/// their nonce.
#[tokio::test]
async fn requests_beyond_the_waiting_bound_are_refused_with_503_and_write_nothing() {
    let app = spawn_app_with(|s| {
        s.max_in_flight_per_worker = 1;
        s.max_waiting_per_worker = 1;
    })
    .await;
    let rst = std::sync::Arc::new(app.partner("P-RST-001"));
    let before = app.snapshot();
    let answers = verify_at_once(&rst, 32).await;
    let mut served = 0;
    for (res, signature) in &answers {
        match res.status {
            200 => {
                assert_signed_by_gateway(res, &rst.app_gateway_keys, Some(signature));
                served += 1;
            }
            503 => {
                res.assert_problem(503, "service-unavailable");
                assert_eq!(res.header("retry-after"), Some("1"));
                // Refused before its signature was checked, so not bound to it.
                assert_signed_by_gateway(res, &rst.app_gateway_keys, None);
            }
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&res.body)),
        }
    }
    assert!(served >= 1);
    let after = app.snapshot();
    assert_eq!(
        after[1],
        before[1] + served,
        "a nonce for each answered request only"
    );
    assert_eq!(
        after[0],
        before[0] + 1,
        "one member ref, made by the first answer"
    );
}
