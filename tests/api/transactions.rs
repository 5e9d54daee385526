//! Sales, reversals, tokens, idempotency and the ledger over real mTLS, every receipt checked
//! against an independent computation of contract section 7.
use crate::helpers::*;
use chrono::{Datelike, TimeDelta, Utc};
use serde_json::{json, Value};

const RST: &str = "P-RST-001";

/// Section 7 written out plainly from the spec file, independent of the gateway's types.
struct Spec(toml::Value);

impl Spec {
    fn load(code: &str) -> Spec {
        let text =
            std::fs::read_to_string(root().join(format!("partner-specs/{code}.toml"))).unwrap();
        Spec(toml::Value::Table(
            toml::from_str::<toml::Table>(&text).unwrap(),
        ))
    }
    fn offer(&self, key: &str) -> &toml::Value {
        &self.0["offer"][key]
    }
    fn int(v: &toml::Value) -> i128 {
        v.as_integer().unwrap() as i128
    }

    /// (discount allowed, paid, points earned) for a sale at local time `local`.
    fn expect(
        &self,
        tier: &str,
        birth_month: u32,
        local: chrono::DateTime<chrono_tz::Tz>,
        gross: i128,
        discount: i128,
        redeem: i128,
    ) -> (i128, i128, i128) {
        let allowed = if gross < Self::int(self.offer("min_spend_fen")) {
            0
        } else {
            (gross * Self::int(&self.offer("discount_bps")[tier]) / 10000)
                .min(Self::int(self.offer("discount_cap_fen")))
        };
        let value = redeem * Self::int(&self.offer("redeem")["fen_per_point"]);
        let paid = gross - discount - value;
        let day = match self.offer("member_day").as_table() {
            Some(md) if md["day_of_month"].as_integer().unwrap() as u32 == local.day() => {
                Self::int(&md["multiplier_bps"])
            }
            _ => 10000,
        };
        let birth = if birth_month == local.month() {
            Self::int(self.offer("birthday_month_multiplier_bps"))
        } else {
            10000
        };
        let earned = paid
            * Self::int(self.offer("earn_points_per_yuan"))
            * Self::int(&self.offer("tier_multiplier_bps")[tier])
            * day
            * birth
            / (100 * 10000i128.pow(3));
        (allowed, paid, earned)
    }
}

fn sale(id: &str, card: &str, gross: i64, discount: i64, redeem: i64) -> Value {
    json!({
        "partner_txn_id": id,
        "card_no": card,
        "store_id": "store-1",
        "occurred_at": Utc::now().to_rfc3339(),
        "gross_fen": gross,
        "discount_fen": discount,
        "redeem_points": redeem,
    })
}

async fn token(app: &TestApp, card: &str) -> String {
    let mall = app.partner("MALL");
    let res = mall
        .post_json("/v1/member-tokens", &json!({ "card_no": card }))
        .await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    res.json()["member_token"].as_str().unwrap().to_owned()
}

/// Sends every sale at once, each under its own key, as the sample restaurant; every one must
/// be recorded. Returns the receipts in the order of `sales`.
async fn record_at_once(app: &TestApp, sales: Vec<Value>) -> Vec<Value> {
    let rst = std::sync::Arc::new(app.partner(RST));
    let tasks: Vec<_> = sales
        .into_iter()
        .map(|body| {
            let rst = rst.clone();
            tokio::spawn(async move { rst.post_idem("/v1/transactions", &body, &idem()).await })
        })
        .collect();
    let mut receipts = Vec::new();
    for t in tasks {
        let res = t.await.unwrap();
        assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
        receipts.push(res.json());
    }
    receipts
}

#[tokio::test]
async fn a_sale_is_judged_and_computed_by_the_gateway_and_the_receipt_is_signed() {
    let app = spawn_app().await;
    let rst = app.partner(RST);
    let spec = Spec::load(RST);
    let local = Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let (allowed, paid, earned) = spec.expect("gold", 5, local, 12_345, 1481, 0);
    assert_eq!(allowed, 1481);

    let body = sale("POS1-0001", GOLD_CARD, 12_345, 1481, 0);
    let bytes = serde_json::to_vec(&body).unwrap();
    let out = rst.sign_idem("POST", "/v1/transactions", &bytes, &idem());
    let res = rst.send(&out).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    assert_signed_by_gateway(&res, &rst.app_gateway_keys, out.header("signature"));
    let r = res.json();
    assert_eq!(r["paid_fen"], paid as i64);
    assert_eq!(r["points_earned"], earned as i64);
    assert_eq!(r["points_balance"], 1200 + earned as i64);
    assert_eq!(r["offer_version"], 1);
    assert_eq!(r["late"], false);
    assert_eq!(r["business_date"], local.date_naive().to_string());
    assert_eq!(r["request_digest"], out.header("content-digest").unwrap());
    assert_eq!(app.balance_of_card(GOLD_CARD), 1200 + earned as i64);
    assert_eq!(app.ledger_total(), 0);

    // One fen more discount than allowed is refused, and nothing is written.
    let before = app.snapshot();
    rst.post_idem(
        "/v1/transactions",
        &sale("POS1-0002", GOLD_CARD, 12_345, 1482, 0),
        &idem(),
    )
    .await
    .assert_problem(422, "offer-rule-violation");
    let after = app.snapshot();
    assert_eq!(before[2], after[2], "no ledger entry");

    // The partner reads it back; another partner cannot.
    let txn_id = r["txn_id"].as_str().unwrap();
    let got = rst.get(&format!("/v1/transactions/{txn_id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["reversals"], json!([]));
    assert_eq!(got.json()["paid_fen"], r["paid_fen"]);
    app.partner("P-CIN-001")
        .get(&format!("/v1/transactions/{txn_id}"))
        .await
        .assert_problem(404, "transaction-not-found");
}

#[tokio::test]
async fn a_retried_sale_is_recorded_once_and_answers_identically() {
    let app = spawn_app().await;
    let rst = std::sync::Arc::new(app.partner(RST));
    let key = idem();
    let body = serde_json::to_vec(&sale("POS1-RETRY", GOLD_CARD, 5_000, 0, 0)).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (rst, key, body) = (rst.clone(), key.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let out = rst.sign_idem("POST", "/v1/transactions", &body, &key);
            rst.send(&out).await
        }));
    }
    let mut bodies = std::collections::BTreeSet::new();
    for t in tasks {
        let res = t.await.unwrap();
        assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
        bodies.insert(res.body.clone());
    }
    assert_eq!(bodies.len(), 1, "50 identical answers");
    assert_eq!(app.count("transactions"), 1);

    // The same key with another body: 422. Another key with the same partner_txn_id: 409.
    rst.post_idem(
        "/v1/transactions",
        &sale("POS1-RETRY", GOLD_CARD, 5_001, 0, 0),
        &key,
    )
    .await
    .assert_problem(422, "idempotency-key-reused");
    let txn_id =
        serde_json::from_slice::<Value>(bodies.iter().next().unwrap()).unwrap()["txn_id"].clone();
    let dup = rst
        .post_idem(
            "/v1/transactions",
            &sale("POS1-RETRY", GOLD_CARD, 5_000, 0, 0),
            &idem(),
        )
        .await;
    let p = dup.assert_problem(409, "duplicate-partner-txn-id");
    assert_eq!(p["txn_id"], txn_id);
    // A missing Idempotency-Key is a malformed request.
    rst.post_json(
        "/v1/transactions",
        &sale("POS1-NOKEY", GOLD_CARD, 5_000, 0, 0),
    )
    .await
    .assert_problem(400, "malformed-request");
    assert_eq!(app.count("transactions"), 1);
}

#[tokio::test]
async fn a_redemption_needs_a_single_use_token_bound_to_the_member() {
    let app = spawn_app().await;
    let rst = app.partner(RST);
    rst.post_idem(
        "/v1/transactions",
        &sale("R-1", GOLD_CARD, 10_000, 0, 100),
        &idem(),
    )
    .await
    .assert_problem(422, "member-authentication-required");

    // The cinema is not a token issuer.
    app.partner("P-CIN-001")
        .post_json("/v1/member-tokens", &json!({ "card_no": GOLD_CARD }))
        .await
        .assert_problem(403, "forbidden");

    let t = token(&app, GOLD_CARD).await;
    assert_eq!(t.len(), 8);
    // A refused sale leaves the token unused: over the max share first.
    let mut over = sale("R-2", GOLD_CARD, 1_000, 0, 501);
    over["member_token"] = json!(t);
    rst.post_idem("/v1/transactions", &over, &idem())
        .await
        .assert_problem(422, "offer-rule-violation");
    // Another member's token does not work for this one.
    let other = token(&app, "8800123459").await;
    let mut wrong = sale("R-3", GOLD_CARD, 10_000, 0, 100);
    wrong["member_token"] = json!(other);
    rst.post_idem("/v1/transactions", &wrong, &idem())
        .await
        .assert_problem(422, "member-authentication-required");

    let mut ok = sale("R-4", GOLD_CARD, 10_000, 0, 100);
    ok["member_token"] = json!(t);
    let res = rst.post_idem("/v1/transactions", &ok, &idem()).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    let r = res.json();
    assert_eq!(r["redeem_value_fen"], 100);
    assert_eq!(r["paid_fen"], 9_900);
    // Used once: the same token again is refused.
    let mut again = sale("R-5", GOLD_CARD, 10_000, 0, 100);
    again["member_token"] = json!(t);
    rst.post_idem("/v1/transactions", &again, &idem())
        .await
        .assert_problem(422, "member-authentication-required");
    // More points than the balance: insufficient-points.
    let t2 = token(&app, GOLD_CARD).await;
    let mut rich = sale("R-6", GOLD_CARD, 100_000, 0, 40_000);
    rich["member_token"] = json!(t2);
    rst.post_idem("/v1/transactions", &rich, &idem())
        .await
        .assert_problem(422, "insufficient-points");
    // Frozen members cannot buy.
    rst.post_idem(
        "/v1/transactions",
        &sale("R-7", FROZEN_CARD, 1_000, 0, 0),
        &idem(),
    )
    .await
    .assert_problem(422, "member-inactive");
    assert_eq!(app.ledger_total(), 0);
}

#[tokio::test]
async fn concurrent_redemptions_never_take_a_balance_below_zero() {
    let app = spawn_app().await;
    // 8800123458: silver, 300 points. 64 redemptions of 10 points each: 30 can succeed.
    let card = "8800123458";
    let rst = std::sync::Arc::new(app.partner(RST));
    let mut tokens = Vec::new();
    for _ in 0..64 {
        tokens.push(token(&app, card).await);
    }
    let mut tasks = Vec::new();
    for (i, t) in tokens.into_iter().enumerate() {
        let rst = rst.clone();
        tasks.push(tokio::spawn(async move {
            let mut body = sale(&format!("C-{i}"), card, 40, 0, 10);
            body["member_token"] = json!(t);
            rst.post_idem("/v1/transactions", &body, &idem()).await
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        let res = t.await.unwrap();
        match res.status {
            201 => {
                ok += 1;
                assert!(res.json()["points_balance"].as_i64().unwrap() >= 0);
            }
            422 => {
                assert_eq!(res.json()["code"], "insufficient-points");
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&res.body)),
        }
    }
    assert_eq!(ok + refused, 64);
    // 40 fen at silver earns 0 points, so exactly 30 redemptions fit in 300 points.
    assert_eq!(ok, 30);
    assert_eq!(app.balance_of_card(card), 0);
    assert_eq!(app.ledger_total(), 0);
}

/// Sales of one member at once, each under its own key: every receipt's balance counts every
/// sale before it and none after (on PostgreSQL the member's lock orders them; on SQLite the
/// single writer).
#[tokio::test]
async fn concurrent_sales_of_one_member_each_count_every_sale_before_them() {
    let app = spawn_app().await;
    let opening = app.balance_of_card(GOLD_CARD);
    let receipts = record_at_once(
        &app,
        (0..32)
            .map(|i| sale(&format!("SAME-MEMBER-{i}"), GOLD_CARD, 5_000, 0, 0))
            .collect(),
    )
    .await;
    let earned = receipts[0]["points_earned"].as_i64().unwrap();
    assert!(earned > 0);
    let mut balances: Vec<i64> = receipts
        .iter()
        .map(|r| {
            assert_eq!(r["points_earned"].as_i64(), Some(earned));
            r["points_balance"].as_i64().unwrap()
        })
        .collect();
    balances.sort_unstable();
    let expected: Vec<i64> = (1..=32).map(|k| opening + k * earned).collect();
    assert_eq!(
        balances, expected,
        "one balance per sale, each after the one before"
    );
    assert_eq!(app.balance_of_card(GOLD_CARD), opening + 32 * earned);
    assert_eq!(app.count("transactions"), 32);
    assert_eq!(app.count("idempotency_keys"), 32);
    assert_eq!(app.ledger_total(), 0);
}

/// Sales of several members at once, some members several times: on PostgreSQL they are
/// booked several to a transaction (`store::postgres::sale_batch`), a member met twice in one
/// batch running alone after it. Every receipt must be what the sale alone would have got:
/// each member's balances count every sale of theirs before it, every sale has its journal,
/// and the ledger balances.
#[tokio::test]
async fn sales_of_several_members_at_once_are_each_booked_as_alone() {
    let app = spawn_app().await;
    let cards = ["8800123456", "8800123457", "8800123458", "8800123459"];
    let openings: Vec<i64> = cards.iter().map(|c| app.balance_of_card(c)).collect();
    let entries_before = app.count("ledger_entries");
    let sales: Vec<Value> = (0..32)
        .map(|i| sale(&format!("MIX-{i}"), cards[i % 4], 20_000 + i as i64, 0, 0))
        .collect();
    let receipts = record_at_once(&app, sales).await;
    for (c, card) in cards.iter().enumerate() {
        let mine: Vec<&Value> = receipts
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 4 == c)
            .map(|(_, r)| r)
            .collect();
        let earned: Vec<i64> = mine
            .iter()
            .map(|r| r["points_earned"].as_i64().unwrap())
            .collect();
        assert!(earned.iter().all(|e| *e > 0), "{card}: {earned:?}");
        // In the order the member's lock granted them, each balance is the one before plus
        // this sale's points.
        let mut by_balance: Vec<(i64, i64)> = mine
            .iter()
            .map(|r| {
                (
                    r["points_balance"].as_i64().unwrap(),
                    r["points_earned"].as_i64().unwrap(),
                )
            })
            .collect();
        by_balance.sort_unstable();
        let mut running = openings[c];
        for (balance, points) in by_balance {
            running += points;
            assert_eq!(balance, running, "{card}: a balance that missed a sale");
        }
        assert_eq!(app.balance_of_card(card), running, "{card}");
    }
    assert_eq!(app.count("transactions"), 32);
    assert_eq!(app.count("idempotency_keys"), 32);
    assert_eq!(app.count("ledger_entries"), entries_before + 64);
    assert_eq!(app.ledger_total(), 0);
    // Each receipt is the stored row's.
    for r in &receipts {
        let txn_id = r["txn_id"].as_str().unwrap();
        let stored = app
            .partner(RST)
            .get(&format!("/v1/transactions/{txn_id}"))
            .await
            .json();
        assert_eq!(stored["points_balance"], r["points_balance"], "{txn_id}");
        assert_eq!(stored["paid_fen"], r["paid_fen"], "{txn_id}");
    }
}

/// One signed sale sent eight times at once: its nonce is claimed by one of them only, so
/// exactly one is recorded and the others are refused as replays, having written nothing. On
/// PostgreSQL the eight claims meet in the nonce claimers' statements (`store::postgres::nonce_batch`),
/// where a nonce named twice is fresh once; on SQLite in the group-commit writer.
#[tokio::test]
async fn one_signed_sale_sent_eight_times_at_once_is_recorded_once() {
    let app = spawn_app().await;
    let rst = std::sync::Arc::new(app.partner(RST));
    let body = serde_json::to_vec(&sale("REPLAY-AT-ONCE", "8800123456", 12_000, 0, 0)).unwrap();
    let out = rst.sign_idem("POST", "/v1/transactions", &body, &idem());
    let (txns, keys) = (app.count("transactions"), app.count("idempotency_keys"));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (rst, out) = (rst.clone(), out.clone());
            tokio::spawn(async move { rst.send(&out).await })
        })
        .collect();
    let mut recorded = 0;
    for t in tasks {
        let res = t.await.unwrap();
        if res.status == 201 {
            recorded += 1;
        } else {
            res.assert_problem(401, "replayed-request");
        }
    }
    assert_eq!(recorded, 1, "exactly one of the eight is the sale");
    assert_eq!(app.count("transactions"), txns + 1);
    assert_eq!(app.count("idempotency_keys"), keys + 1);
    assert_eq!(app.ledger_total(), 0);
}

/// A sale batch that meets a database error is rolled back whole, and each of its sales runs
/// alone, getting the answer it would have got alone (`store::postgres::sale_batch`). The error
/// here is real: a statement trigger, installed for this test only, refuses any insert of
/// several sales at once that includes a `BOOM-` sale, and counts its refusals in a sequence
/// (which a rollback does not undo). Alone, every sale passes. Sales are sent four at a time,
/// one per active member, until a refused batch has been seen. PostgreSQL only: SQLite books
/// sale by sale.
#[tokio::test]
async fn a_sale_batch_rolled_back_by_a_database_error_runs_each_sale_alone() {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Seen {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        refused: i64,
    }
    let app = spawn_app().await;
    let mut conn = app.conn();
    let alliance_gateway::db::DbConn::Postgres(pg) = &mut conn else {
        return skipped_on_sqlite();
    };
    diesel::sql_query("CREATE SEQUENCE test_refused_batches MINVALUE 0 START 0")
        .execute(pg)
        .unwrap();
    diesel::sql_query(
        "CREATE FUNCTION test_refuse_batches() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
           IF (SELECT count(*) FROM new_rows) > 1 \
              AND EXISTS (SELECT 1 FROM new_rows WHERE partner_txn_id LIKE 'BOOM-%') THEN \
             PERFORM nextval('test_refused_batches'); \
             RAISE EXCEPTION 'test: a batch holding a BOOM sale'; \
           END IF; \
           RETURN NULL; \
         END $$",
    )
    .execute(pg)
    .unwrap();
    diesel::sql_query(
        "CREATE TRIGGER test_refuse_batches AFTER INSERT ON transactions \
         REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT \
         EXECUTE FUNCTION test_refuse_batches()",
    )
    .execute(pg)
    .unwrap();
    let refused = |pg: &mut diesel::PgConnection| -> i64 {
        diesel::sql_query(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS refused \
             FROM test_refused_batches",
        )
        .get_result::<Seen>(pg)
        .unwrap()
        .refused
    };
    let cards = ["8800123456", "8800123457", "8800123458", "8800123459"];
    let mut expected: Vec<i64> = cards.iter().map(|c| app.balance_of_card(c)).collect();
    let entries_before = app.count("ledger_entries");
    let mut rounds = 0;
    while refused(pg) == 0 && rounds < 20 {
        let sales: Vec<Value> = cards
            .iter()
            .enumerate()
            .map(|(c, card)| {
                let id = if c == 0 { "BOOM" } else { "PLAIN" };
                sale(&format!("{id}-{rounds}-{c}"), card, 10_000 + c as i64, 0, 0)
            })
            .collect();
        // Every sale is recorded, the BOOM one too: alone, nothing refuses it.
        for (c, receipt) in record_at_once(&app, sales).await.iter().enumerate() {
            let earned = receipt["points_earned"].as_i64().unwrap();
            assert!(earned > 0, "{receipt}");
            expected[c] += earned;
        }
        rounds += 1;
    }
    assert!(refused(pg) > 0, "no batch met the error in {rounds} rounds");
    for (card, balance) in cards.iter().zip(&expected) {
        assert_eq!(app.balance_of_card(card), *balance, "{card}");
    }
    assert_eq!(app.count("transactions"), 4 * rounds);
    assert_eq!(app.count("idempotency_keys"), 4 * rounds);
    assert_eq!(app.count("ledger_entries"), entries_before + 8 * rounds);
    assert_eq!(app.ledger_total(), 0);
}

/// On PostgreSQL a sale takes the member's balance lock inside `alliance_sale_prelude`, whose
/// key SQL computes; reversals take it with the key Rust computes. They must be the same lock,
/// or a clawback and a redemption of one member would not be ordered. (SQLite has no such
/// lock: its single writer orders them.)
#[tokio::test]
async fn sales_and_reversals_take_the_same_member_lock_on_postgresql() {
    let app = spawn_app().await;
    let mut conn = app.conn();
    let alliance_gateway::db::DbConn::Postgres(pg) = &mut conn else {
        return skipped_on_sqlite();
    };
    #[derive(diesel::QueryableByName)]
    struct Key {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        key: i64,
    }
    for id in [1i64, 2, 255, 256, 65_537, 4_294_967_296, i64::MAX] {
        use diesel::RunQueryDsl;
        let sql: Key = diesel::sql_query("SELECT alliance_member_lock($1) AS key")
            .bind::<diesel::sql_types::BigInt, _>(id)
            .get_result(pg)
            .unwrap();
        assert_eq!(
            sql.key,
            alliance_gateway::db::locks::member(id),
            "member {id}"
        );
    }
}

#[tokio::test]
async fn partial_reversals_take_back_exactly_the_original_and_no_more() {
    let app = spawn_app().await;
    let rst = app.partner(RST);
    let t = token(&app, GOLD_CARD).await;
    let mut body = sale("REV-1", GOLD_CARD, 9_999, 1199, 333);
    body["member_token"] = json!(t);
    let res = rst.post_idem("/v1/transactions", &body, &idem()).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    let r = res.json();
    let txn_id = r["txn_id"].as_str().unwrap().to_owned();
    let balance_before_sale = 1200;
    let target = format!("/v1/transactions/{txn_id}/reversals");

    let mut sums = [0i64; 5];
    for (i, part) in [1, 3_333, 17, 6_000].iter().enumerate() {
        let res = rst
            .post_idem(&target, &json!({ "partner_reversal_id": format!("RV-{i}"), "gross_fen": part, "reason": "refund" }), &idem())
            .await;
        assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
        let v = res.json();
        for (s, k) in sums.iter_mut().zip([
            "gross_fen",
            "discount_fen",
            "redeem_points",
            "redeem_value_fen",
            "points_clawed_back",
        ]) {
            *s += v[k].as_i64().unwrap();
        }
    }
    // One fen more than what remains is refused.
    let over = rst
        .post_idem(
            &target,
            &json!({ "partner_reversal_id": "RV-over", "gross_fen": 649, "reason": "x" }),
            &idem(),
        )
        .await;
    assert_eq!(
        over.assert_problem(422, "reversal-exceeds-original")["remaining_fen"],
        648
    );
    // The last part completes the refund: every column sums to the original exactly.
    let last = rst
        .post_idem(
            &target,
            &json!({ "partner_reversal_id": "RV-last", "gross_fen": 648, "reason": "refund" }),
            &idem(),
        )
        .await;
    assert_eq!(last.status, 201);
    let v = last.json();
    for (s, k) in sums.iter_mut().zip([
        "gross_fen",
        "discount_fen",
        "redeem_points",
        "redeem_value_fen",
        "points_clawed_back",
    ]) {
        *s += v[k].as_i64().unwrap();
    }
    assert_eq!(
        sums,
        [
            r["gross_fen"].as_i64().unwrap(),
            r["discount_fen"].as_i64().unwrap(),
            r["redeem_points"].as_i64().unwrap(),
            r["redeem_value_fen"].as_i64().unwrap(),
            r["points_earned"].as_i64().unwrap()
        ]
    );
    assert_eq!(
        app.balance_of_card(GOLD_CARD),
        balance_before_sale,
        "a full refund nets to zero"
    );
    assert_eq!(app.ledger_total(), 0);

    let got = rst.get(&format!("/v1/transactions/{txn_id}")).await.json();
    assert_eq!(got["reversals"].as_array().unwrap().len(), 5);
    // Another partner cannot reverse it.
    app.partner("P-CIN-001")
        .post_idem(
            &target,
            &json!({ "partner_reversal_id": "X", "gross_fen": 1, "reason": "x" }),
            &idem(),
        )
        .await
        .assert_problem(404, "transaction-not-found");
    // A reversal dated before its sale is refused.
    let early = (Utc::now() - TimeDelta::hours(1)).to_rfc3339();
    rst.post_idem(&target, &json!({ "partner_reversal_id": "RV-early", "gross_fen": 1, "reason": "x", "occurred_at": early }), &idem())
        .await
        .assert_problem(422, "validation-failed");

    let out = assert_ok(admin(&app, &["verify-chain", RST]).await);
    assert!(out.contains("chain intact (6 records"), "{out}");
}

#[tokio::test]
async fn hostile_input_gets_a_4xx_problem_and_changes_nothing() {
    let app = spawn_app().await;
    let rst = app.partner(RST);
    let before = app.snapshot();
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"{not json".to_vec(), 400),
        (br#"{"partner_txn_id":1}"#.to_vec(), 422),
        (serde_json::to_vec(&sale("A", GOLD_CARD, 0, 0, 0)).unwrap(), 422),
        (serde_json::to_vec(&sale("A", GOLD_CARD, -5, 0, 0)).unwrap(), 422),
        (serde_json::to_vec(&sale("A", GOLD_CARD, 10_000_001, 0, 0)).unwrap(), 422),
        (serde_json::to_vec(&sale("A", GOLD_CARD, 100, -1, 0)).unwrap(), 422),
        (serde_json::to_vec(&sale("A", GOLD_CARD, 100, 0, -1)).unwrap(), 422),
        (serde_json::to_vec(&sale("has space", GOLD_CARD, 100, 0, 0)).unwrap(), 422),
        (serde_json::to_vec(&sale("A", "12", 100, 0, 0)).unwrap(), 422),
        (serde_json::to_vec(&sale("A", "9999999999", 100, 0, 0)).unwrap(), 404),
        (br#"{"partner_txn_id":"A","card_no":"8800123456","store_id":"s","occurred_at":"yesterday","gross_fen":100}"#.to_vec(), 422),
        (br#"{"partner_txn_id":"A","card_no":"8800123456","store_id":"s","occurred_at":"2020-01-01T00:00:00Z","gross_fen":100}"#.to_vec(), 422),
        (br#"{"partner_txn_id":"A","card_no":"8800123456","store_id":"s","occurred_at":"2026-11-23T00:00:00Z","gross_fen":1e3}"#.to_vec(), 422),
        (br#"{"partner_txn_id":"A","card_no":"8800123456","store_id":"s","occurred_at":"2026-11-23T00:00:00Z","gross_fen":100,"extra":1}"#.to_vec(), 422),
    ];
    for (body, status) in cases {
        let res = rst
            .send(&rst.sign_idem("POST", "/v1/transactions", &body, &idem()))
            .await;
        assert_eq!(
            res.status,
            status,
            "{} → {}",
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&res.body)
        );
        assert!(res.header("content-type").unwrap().contains("problem+json"));
    }
    let far = (Utc::now() + TimeDelta::minutes(10)).to_rfc3339();
    let mut future = sale("A", GOLD_CARD, 100, 0, 0);
    future["occurred_at"] = json!(far);
    rst.post_idem("/v1/transactions", &future, &idem())
        .await
        .assert_problem(422, "validation-failed");
    // Batches: none, too many, not an array.
    for body in [
        json!({"items": []}),
        json!({"items": vec![json!({}); 501]}),
        json!({"items": 3}),
    ] {
        rst.post_json("/v1/transactions/batch", &body)
            .await
            .assert_problem(422, "validation-failed");
    }
    let after = app.snapshot();
    // Members, ledger and refs are untouched (request_nonces grew: each request used one).
    assert_eq!(
        (before[0], before[2], before[3]),
        (after[0], after[2], after[3])
    );
    assert_eq!(app.count("transactions"), 0);
    assert_eq!(app.count("idempotency_keys"), 0);
}

#[tokio::test]
async fn a_batch_item_of_the_wrong_shape_names_its_field_and_never_its_value() {
    let app = spawn_app().await;
    let rst = app.partner(RST);
    let mut item = sale("B-9", GOLD_CARD, 10_000, 0, 0);
    item["kind"] = json!("sale");
    item["idempotency_key"] = json!("batch-key-9");
    item["card_no"] = json!(8_800_123_456_i64);
    let res = rst
        .post_json("/v1/transactions/batch", &json!({ "items": [item] }))
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let result = &res.json()["results"][0];
    assert_eq!(result["status"], 422, "{result}");
    assert_eq!(result["body"]["code"], "validation-failed");
    assert_eq!(result["body"]["errors"][0]["field"], "card_no", "{result}");
    assert!(!res.json().to_string().contains("8800123456"), "{result}");
    assert_eq!(app.count("transactions"), 0);
}

#[tokio::test]
async fn a_batch_mixes_sales_and_reversals_each_standing_alone() {
    let app = spawn_app().await;
    let rst = app.partner(RST);
    let mut s1 = sale("B-1", GOLD_CARD, 10_000, 0, 0);
    s1["kind"] = json!("sale");
    s1["idempotency_key"] = json!("batch-key-1");
    let mut bad = sale("B-2", GOLD_CARD, 10_000, 9_999, 0);
    bad["kind"] = json!("sale");
    bad["idempotency_key"] = json!("batch-key-2");
    let rev = json!({"kind": "reversal", "idempotency_key": "batch-key-3", "partner_txn_id": "B-1",
        "partner_reversal_id": "B-1-R", "gross_fen": 4_000, "reason": "partial"});
    let body = json!({ "items": [s1, bad, rev] });
    let res = rst.post_json("/v1/transactions/batch", &body).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let results = res.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 3);
    assert_eq!(
        (results[0]["index"].clone(), results[0]["status"].clone()),
        (json!(0), json!(201))
    );
    assert_eq!(results[1]["status"], 422);
    assert_eq!(results[1]["body"]["code"], "offer-rule-violation");
    assert_eq!(results[2]["status"], 201);
    assert_eq!(results[2]["body"]["gross_fen"], 4_000);
    assert!(results[0]["body"]["request_digest"]
        .as_str()
        .unwrap()
        .starts_with("sha-256=:"));
    // The same batch again replays the stored items and records nothing new.
    let again = rst.post_json("/v1/transactions/batch", &body).await.json();
    assert_eq!(again["results"][0]["body"], results[0]["body"]);
    assert_eq!(again["results"][2]["body"], results[2]["body"]);
    assert_eq!(app.count("transactions"), 1);
    assert_eq!(app.count("reversals"), 1);

    // The day's list pages with a cursor.
    let day = results[0]["body"]["business_date"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 2..=4 {
        let res = rst
            .post_idem(
                "/v1/transactions",
                &sale(&format!("L-{i}"), GOLD_CARD, 100, 0, 0),
                &idem(),
            )
            .await;
        assert_eq!(res.status, 201);
    }
    let first = rst
        .get(&format!("/v1/transactions?business_date={day}&limit=3"))
        .await
        .json();
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = rst
        .get(&format!(
            "/v1/transactions?business_date={day}&limit=3&cursor={cursor}"
        ))
        .await
        .json();
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["next_cursor"], Value::Null);
    rst.get(&format!("/v1/transactions?business_date={day}&limit=501"))
        .await
        .assert_problem(422, "validation-failed");
}

#[tokio::test]
async fn altering_a_stored_transaction_breaks_the_partners_chain() {
    let app = spawn_app().await;
    let rst = app.partner(RST);
    for i in 0..3 {
        let res = rst
            .post_idem(
                "/v1/transactions",
                &sale(&format!("H-{i}"), GOLD_CARD, 1_000 + i, 0, 0),
                &idem(),
            )
            .await;
        assert_eq!(res.status, 201);
    }
    assert_ok(admin(&app, &["verify-chain", RST]).await);
    {
        use diesel::RunQueryDsl;
        let mut conn = app.conn();
        let drop = match &app.settings.database {
            alliance_gateway::config::DatabaseUrl::Sqlite(_) => {
                "DROP TRIGGER transactions_append_only_update"
            }
            alliance_gateway::config::DatabaseUrl::Postgres(_) => {
                "DROP TRIGGER transactions_append_only ON transactions"
            }
        };
        let edit = "UPDATE transactions SET gross_fen = gross_fen + 1 WHERE seq = 2";
        assert!(
            diesel::sql_query(edit).execute(&mut conn).is_err(),
            "append-only"
        );
        diesel::sql_query(drop).execute(&mut conn).unwrap();
        assert_eq!(diesel::sql_query(edit).execute(&mut conn).unwrap(), 1);
    }
    let (code, _, err) = admin(&app, &["verify-chain", RST]).await;
    assert_eq!(code, 1);
    assert!(err.contains("seq 2"), "{err}");
}

#[tokio::test]
async fn every_sale_and_reversal_joins_the_chain_once_sales_first_without_verify_chain() {
    let app = spawn_app().await;
    let receipts = record_at_once(
        &app,
        (0..24)
            .map(|i| sale(&format!("L-{i}"), GOLD_CARD, 1_000 + i, 0, 0))
            .collect(),
    )
    .await;
    let txn_ids: Vec<String> = receipts
        .iter()
        .map(|r| r["txn_id"].as_str().unwrap().to_owned())
        .collect();
    let reversed = &txn_ids[7];
    let res = app
        .partner(RST)
        .post_idem(
            &format!("/v1/transactions/{reversed}/reversals"),
            &json!({ "partner_reversal_id": "LR-1", "gross_fen": 100, "reason": "refund" }),
            &idem(),
        )
        .await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));

    // The running gateway links them (at booking on SQLite, by its linker on PostgreSQL): no
    // admin command is involved here.
    let unlinked = || {
        app.count("transactions WHERE seq IS NULL OR line_hash IS NULL")
            + app.count("reversals WHERE seq IS NULL OR line_hash IS NULL")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while unlinked() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} records still unlinked after 10 s",
            unlinked()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut conn = app.conn();
    match alliance_gateway::transactions::chain::verify(&mut conn, RST).unwrap() {
        alliance_gateway::transactions::chain::ChainCheck::Intact { records, .. } => {
            assert_eq!(records, 25)
        }
        broken => panic!("{broken:?}"),
    }
    let sale_seq = alliance_gateway::db::transactions::Transaction::by_id(&mut conn, reversed)
        .unwrap()
        .unwrap()
        .seq
        .unwrap();
    let reversal_seq = alliance_gateway::db::reversals::Reversal::of(&mut conn, reversed).unwrap()
        [0]
    .seq
    .unwrap();
    assert!(sale_seq < reversal_seq, "{sale_seq} < {reversal_seq}");

    // A link is written once: neither rewritten nor taken back.
    use diesel::RunQueryDsl;
    for edit in [
        "UPDATE transactions SET seq = seq + 100 WHERE seq = 1",
        "UPDATE transactions SET seq = NULL, line_hash = NULL WHERE seq = 2",
        "UPDATE reversals SET line_hash = 'x'",
    ] {
        assert!(
            diesel::sql_query(edit).execute(&mut conn).is_err(),
            "{edit} was allowed"
        );
    }
    if matches!(
        app.settings.database,
        alliance_gateway::config::DatabaseUrl::Postgres(_)
    ) {
        // The counter moves just after the linker's commit: give it a moment.
        let mut linked = 0.0;
        for _ in 0..100 {
            let metrics = plain_get(&format!("http://127.0.0.1:{}/metrics", app.ops_port))
                .await
                .text()
                .await
                .unwrap();
            linked = metrics
                .lines()
                .find_map(|l| l.strip_prefix("alliance_chain_linked_total "))
                .map_or(0.0, |v| v.trim().parse().unwrap());
            if linked >= 1.0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(linked >= 1.0, "{linked}");
    }
    // On PostgreSQL, where a record waits for its link: writing the link is the one update
    // allowed, and only if nothing else of the record changes with it. (Inside a transaction
    // rolled back at the end, so the background linker never sees the copy.)
    if matches!(
        app.settings.database,
        alliance_gateway::config::DatabaseUrl::Postgres(_)
    ) {
        use diesel::Connection;
        let copy = "INSERT INTO transactions (txn_id, partner_code, partner_txn_id, member_id, \
            member_ref, store_id, occurred_at, business_date, late, gross_fen, discount_fen, \
            redeem_points, redeem_value_fen, paid_fen, points_earned, points_balance, \
            offer_version, request_digest, seq, line_hash, created_at) \
            SELECT 'txn_copy', partner_code, 'L-copy', member_id, member_ref, store_id, \
            occurred_at, business_date, late, gross_fen, discount_fen, redeem_points, \
            redeem_value_fen, paid_fen, points_earned, points_balance, offer_version, \
            request_digest, NULL, NULL, created_at FROM transactions WHERE seq = 1";
        let outcome = conn.transaction(|c| -> Result<(), diesel::result::Error> {
            assert_eq!(diesel::sql_query(copy).execute(c)?, 1);
            let sneaky = c.transaction(|c| {
                diesel::sql_query(
                    "UPDATE transactions SET seq = 900, line_hash = 'h', gross_fen = gross_fen + 1 \
                     WHERE txn_id = 'txn_copy'",
                )
                .execute(c)
            });
            assert!(
                sneaky.is_err(),
                "a link that changes the amount was allowed"
            );
            let link = diesel::sql_query(
                "UPDATE transactions SET seq = 900, line_hash = 'h' WHERE txn_id = 'txn_copy'",
            )
            .execute(c)?;
            assert_eq!(link, 1, "writing a missing link is allowed");
            Err(diesel::result::Error::RollbackTransaction)
        });
        assert!(matches!(
            outcome,
            Err(diesel::result::Error::RollbackTransaction)
        ));
    }
}
