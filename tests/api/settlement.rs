//! Closing a day by hand (`settle`): statements with the contract's columns and arithmetic, a
//! signed manifest, byte-identical reruns, and late booking into the next open day.
use crate::helpers::*;
use base64::Engine;
use chrono::{Duration, TimeZone, Utc};
use serde_json::{json, Value};

const RST: &str = "P-RST-001";

#[tokio::test]
async fn a_closed_day_gets_signed_reproducible_statements_and_later_records_are_late() {
    let app = spawn_app().await;
    let rst = app.partner(RST);
    let tz = chrono_tz::Asia::Shanghai;
    let today = Utc::now().with_timezone(&tz).date_naive();
    let yesterday = today.pred_opt().unwrap();
    let at = |h: u32| {
        tz.from_local_datetime(&yesterday.and_hms_opt(h, 0, 0).unwrap())
            .unwrap()
            .to_rfc3339()
    };
    let sale = |id: &str, gross: i64, discount: i64, when: String| {
        json!({"partner_txn_id": id, "card_no": GOLD_CARD, "store_id": "store-1",
               "occurred_at": when, "gross_fen": gross, "discount_fen": discount, "redeem_points": 0})
    };
    let a = rst
        .post_idem(
            "/v1/transactions",
            &sale("S-A", 10_000, 1_200, at(12)),
            &idem(),
        )
        .await;
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    let b = rst
        .post_idem("/v1/transactions", &sale("S-B", 5_000, 0, at(13)), &idem())
        .await;
    assert_eq!(b.status, 201);
    let b_id = b.json()["txn_id"].as_str().unwrap().to_owned();
    let rev = rst
        .post_idem(&format!("/v1/transactions/{b_id}/reversals"),
            &json!({"partner_reversal_id": "R-1", "gross_fen": 2_000, "reason": "return", "occurred_at": at(14)}), &idem())
        .await;
    assert_eq!(rev.status, 201);

    // Today has not ended: refused.
    let (code, _, err) = admin(&app, &["settle", &today.to_string()]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("has not ended"), "{err}");

    let out = assert_ok(admin(&app, &["settle", &yesterday.to_string()]).await);
    assert!(out.contains("closed"), "{out}");
    let dir = app
        .settings
        .statements_dir()
        .join(yesterday.to_string())
        .join("v1");
    let statement = std::fs::read_to_string(dir.join("partners/P-RST-001.csv")).unwrap();
    let lines: Vec<&str> = statement.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 4, "{statement}");
    assert!(lines[0].starts_with("business_date,partner_code,txn_id,partner_txn_id,kind,"));
    // Sale A: subsidy 360, reimbursement 0, issue fee round(132 × 0.8) = 106, commission 200.
    let sale_a = lines.iter().find(|l| l.contains(",S-A,")).unwrap();
    assert!(
        sale_a.contains(",100.00,12.00,0,0.00,132,3.60,0.00,1.06,2.00,0.54,not-submitted,1,"),
        "{sale_a}"
    );
    // The reversal takes back 2/5 of sale B's columns, negative.
    let rev_line = lines.iter().find(|l| l.contains(",reversal,R-1,")).unwrap();
    assert!(rev_line.contains(",-20.00,0.00,0,0.00,-30,"), "{rev_line}");

    // The manifest is signed by the gateway over its canonical JSON.
    let manifest_bytes = std::fs::read(dir.join("manifest.json")).unwrap();
    let mut manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let sig = manifest
        .as_object_mut()
        .unwrap()
        .remove("signature")
        .unwrap();
    let canonical = serde_json_canonicalizer::to_vec(&manifest).unwrap();
    let jwk = rst.app_gateway_keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == sig["keyid"])
        .unwrap()
        .clone();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwk["x"].as_str().unwrap())
        .unwrap();
    let public =
        alliance_gateway::pki::keys::PublicKey::new(alliance_gateway::pki::keys::Alg::Ed25519, raw)
            .unwrap();
    let value = base64::engine::general_purpose::STANDARD
        .decode(sig["value"].as_str().unwrap())
        .unwrap();
    assert!(
        public.verify(&canonical, &value),
        "the manifest signature verifies"
    );
    assert_eq!(manifest["totals"]["sales"], 2);
    assert_eq!(manifest["totals"]["reversals"], 1);
    let file_sha = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "partners/P-RST-001.csv")
        .unwrap()["sha256"]
        .clone();
    assert_eq!(
        file_sha,
        json!(alliance_gateway::settlement::files::sha256_hex(
            statement.as_bytes()
        ))
    );

    // Settling again rewrites byte-identical files.
    let summary = std::fs::read(dir.join("summary.csv")).unwrap();
    let again = assert_ok(admin(&app, &["settle", &yesterday.to_string()]).await);
    assert!(again.contains("already closed"), "{again}");
    assert_eq!(
        std::fs::read(dir.join("manifest.json")).unwrap(),
        manifest_bytes
    );
    assert_eq!(std::fs::read(dir.join("summary.csv")).unwrap(), summary);
    assert_eq!(
        std::fs::read_to_string(dir.join("partners/P-RST-001.csv")).unwrap(),
        statement
    );

    // Finance sees the run.
    assert_ok(admin(&app, &["finance", "add", "fin"]).await);
    let runs = app
        .finance("fin")
        .http
        .get(app.url(&format!(
            "/v1/finance/settlements?from={yesterday}&to={today}"
        )))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(runs["items"][0]["business_date"], yesterday.to_string());
    assert_eq!(runs["items"][0]["status"], "settled");
    assert_eq!(runs["items"][0]["partners"], 1);
    assert_eq!(runs["items"][0]["net_yuan"], manifest["totals"]["net_yuan"]);

    // verify-statement checks it offline; one changed byte, or a forged signature, fails it.
    let dir_s = dir.to_str().unwrap();
    let ok = assert_ok(admin(&app, &["verify-statement", dir_s]).await);
    assert!(
        ok.contains("verified") && ok.contains("chain heads checked"),
        "{ok}"
    );
    let keys = app.settings.bundles_dir().join("P-RST-001/partner.json");
    assert_ok(
        admin(
            &app,
            &["verify-statement", dir_s, "--keys", keys.to_str().unwrap()],
        )
        .await,
    );
    let copy = app.home.path().join("tampered");
    let copy_dir = |to: &std::path::Path| {
        std::fs::create_dir_all(to.join("partners")).unwrap();
        for f in [
            "manifest.json",
            "summary.csv",
            "discrepancies.csv",
            "partners/P-RST-001.csv",
            "partners/P-RST-001.manifest.json",
        ] {
            std::fs::copy(dir.join(f), to.join(f)).unwrap();
        }
    };
    copy_dir(&copy);
    let edited = statement.replacen("0.54", "0.55", 1);
    std::fs::write(copy.join("partners/P-RST-001.csv"), edited).unwrap();
    let (code, _, err) = admin(&app, &["verify-statement", copy.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("SHA-256"), "{err}");
    let forged = app.home.path().join("forged");
    copy_dir(&forged);
    let m = std::fs::read_to_string(forged.join("manifest.json")).unwrap();
    std::fs::write(
        forged.join("manifest.json"),
        m.replacen("\"sales\": 2", "\"sales\": 3", 1),
    )
    .unwrap();
    let (code, _, err) = admin(&app, &["verify-statement", forged.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("signature"), "{err}");

    // The partner downloads its own statement and manifest, byte for byte.
    let own = rst.get(&format!("/v1/statements/{yesterday}")).await;
    assert_eq!(own.status, 200);
    assert_eq!(own.body, statement.as_bytes());
    assert!(own.header("content-type").unwrap().starts_with("text/csv"));
    let own_manifest = rst
        .get(&format!("/v1/statements/{yesterday}/manifest"))
        .await;
    assert_eq!(
        own_manifest.json()["chain_head"].as_str().unwrap().len(),
        64
    );
    let own_disc = rst
        .get(&format!("/v1/statements/{yesterday}/discrepancies"))
        .await;
    assert_eq!(
        String::from_utf8_lossy(&own_disc.body).lines().count(),
        1,
        "header only"
    );
    let listed = rst
        .get(&format!("/v1/statements?from={yesterday}&to={today}"))
        .await
        .json();
    assert_eq!(listed["items"][0]["rows"], 3);
    app.partner("P-CIN-001")
        .get(&format!("/v1/statements/{yesterday}"))
        .await
        .assert_problem(404, "statement-not-found");
    rst.get(&format!("/v1/statements/{yesterday}?version=2"))
        .await
        .assert_problem(404, "statement-not-found");

    // Finance downloads the run's files and reruns the closed day: same version, same bytes.
    let fin = app.finance("fin");
    let summary_dl = fin
        .get(&format!("/v1/finance/settlements/{yesterday}/summary.csv"))
        .await;
    assert_eq!(summary_dl.body, summary);
    let partner_dl = fin
        .get(&format!(
            "/v1/finance/settlements/{yesterday}/partners/P-RST-001.csv"
        ))
        .await;
    assert_eq!(partner_dl.body, statement.as_bytes());
    let audit = assert_ok(admin(&app, &["audit", "list", "--json"]).await);
    assert!(
        audit
            .lines()
            .any(|l| l.contains("finance.download") && l.contains("finance:fin")),
        "{audit}"
    );
    rst.get(&format!("/v1/finance/settlements/{yesterday}/summary.csv"))
        .await
        .assert_problem(403, "forbidden");
    let rerun = fin
        .send(&fin.sign(
            "POST",
            &format!("/v1/finance/settlements/{yesterday}/rerun"),
            None,
        ))
        .await;
    assert_eq!(
        rerun.status,
        200,
        "{}",
        String::from_utf8_lossy(&rerun.body)
    );
    assert_eq!(rerun.json()["version"], 1);
    assert_eq!(
        std::fs::read(dir.join("manifest.json")).unwrap(),
        manifest_bytes
    );
    fin.send(&fin.sign(
        "POST",
        &format!("/v1/finance/settlements/{today}/rerun"),
        None,
    ))
    .await
    .assert_problem(422, "day-not-closed");

    // A sale dated in the closed day is booked late into the next open day.
    let late = rst
        .post_idem("/v1/transactions", &sale("S-C", 1_000, 0, at(20)), &idem())
        .await;
    assert_eq!(late.status, 201);
    assert_eq!(late.json()["late"], true);
    assert_eq!(
        late.json()["business_date"],
        (yesterday + Duration::days(1)).to_string()
    );
}

#[tokio::test]
async fn two_gateways_that_start_after_closing_time_settle_every_due_day_exactly_once() {
    let app = spawn_app().await;
    let rst = app.partner(RST);
    let tz = chrono_tz::Asia::Shanghai;
    let today = Utc::now().with_timezone(&tz).date_naive();
    let three_days_ago = today - Duration::days(3);
    let when = tz
        .from_local_datetime(&three_days_ago.and_hms_opt(12, 0, 0).unwrap())
        .unwrap()
        .to_rfc3339();
    let body = json!({"partner_txn_id": "OLD-1", "card_no": GOLD_CARD, "store_id": "store-1",
        "occurred_at": when, "gross_fen": 1_000, "discount_fen": 0, "redeem_points": 0});
    assert_eq!(
        rst.post_idem("/v1/transactions", &body, &idem())
            .await
            .status,
        201
    );

    // Two more gateway processes on the same database start at once: their start-up
    // catch-ups race to settle every day from the backdated record's day up to the last one
    // whose closing time has passed.
    let serve = || {
        cli(&app)
            .args(["serve"])
            .env("ALLIANCE_LISTEN", "127.0.0.1:0")
            .env("ALLIANCE_OPS_LISTEN", "127.0.0.1:0")
            .env("ALLIANCE_SETTLEMENT_ENABLED", "true")
            .env("ALLIANCE_LOG_FORMAT", "json")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let gateways = [KillOnDrop(serve()), KillOnDrop(serve())];
    let due =
        alliance_gateway::settlement::due_through(&app.settings.settlement_cron, tz, Utc::now())
            .unwrap();
    // A day closes (with its run row) in one transaction and its files are written after the
    // commit, so wait for every run's manifest too, not only for the closed days.
    let mut closed = 0;
    for _ in 0..300 {
        closed = app.count("business_days WHERE status = 'closed'");
        let written = app.count("settlement_runs WHERE manifest_sha256 IS NOT NULL");
        let want = (due - three_days_ago).num_days() + 1;
        if closed == want && written == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        closed,
        (due - three_days_ago).num_days() + 1,
        "every due day is closed, oldest first"
    );
    let first = app
        .settings
        .statements_dir()
        .join(three_days_ago.to_string())
        .join("v1");
    assert!(first.join("partners/P-RST-001.csv").exists());
    assert!(first.join("manifest.json").exists());
    // Empty days close too, with a summary and a manifest but no partner statement.
    let empty = app
        .settings
        .statements_dir()
        .join((three_days_ago + Duration::days(1)).to_string())
        .join("v1");
    assert!(empty.join("manifest.json").exists());
    assert!(!empty.join("partners/P-RST-001.csv").exists());
    assert_eq!(
        app.count("settlement_runs"),
        closed,
        "one run per day, whoever settled it"
    );
    // Let both catch-ups finish, then: each day was closed by exactly one of them, and its
    // files verify.
    tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
    drop(gateways);
    assert_eq!(
        app.count("audit_log WHERE action = 'settlement.close'"),
        closed,
        "each day closed once"
    );
    assert_eq!(app.count("settlement_runs WHERE version > 1"), 0);
    let (code, out, err) = admin(&app, &["verify-statement", &first.display().to_string()]).await;
    assert_eq!(code, 0, "{out}{err}");
}

#[tokio::test]
async fn uploads_are_reconciled_and_a_late_upload_makes_a_new_version() {
    let app = spawn_app().await;
    let rst = app.partner(RST);
    let tz = chrono_tz::Asia::Shanghai;
    let today = Utc::now().with_timezone(&tz).date_naive();
    let yesterday = today.pred_opt().unwrap();
    let at = |h: u32| {
        tz.from_local_datetime(&yesterday.and_hms_opt(h, 0, 0).unwrap())
            .unwrap()
            .to_rfc3339()
    };
    let sale = |id: &str, gross: i64, discount: i64, when: String| {
        json!({"partner_txn_id": id, "card_no": GOLD_CARD, "store_id": "store-1",
               "occurred_at": when, "gross_fen": gross, "discount_fen": discount, "redeem_points": 0})
    };
    assert_eq!(
        rst.post_idem(
            "/v1/transactions",
            &sale("S-A", 10_000, 1_200, at(10)),
            &idem()
        )
        .await
        .status,
        201
    );
    let b = rst
        .post_idem("/v1/transactions", &sale("S-B", 5_000, 0, at(11)), &idem())
        .await;
    let b_id = b.json()["txn_id"].as_str().unwrap().to_owned();
    let rev = rst
        .post_idem(&format!("/v1/transactions/{b_id}/reversals"),
            &json!({"partner_reversal_id": "R-1", "gross_fen": 2_000, "reason": "return", "occurred_at": at(12)}), &idem())
        .await;
    assert_eq!(rev.status, 201);
    assert_eq!(
        rst.post_idem(
            "/v1/transactions",
            &sale("S-T", 700, 0, Utc::now().to_rfc3339()),
            &idem()
        )
        .await
        .status,
        201
    );

    // Strict validation, with line numbers; nothing is stored.
    let bad = "partner_txn_id,kind,partner_reversal_id,gross_yuan,discount_yuan,redeem_points\r\nS-A,sale,,100.00,12.00,0\r\nS-B,refund,,50,0,0\r\n";
    let p = upload(&rst, &yesterday.to_string(), bad)
        .await
        .assert_problem(422, "validation-failed");
    assert_eq!(p["errors"][0]["field"], "line 3: kind");
    upload(&rst, &(today + Duration::days(1)).to_string(), "x")
        .await
        .assert_problem(422, "validation-failed");
    assert_eq!(app.count("reconciliation_uploads"), 0);

    let first = "partner_txn_id,kind,partner_reversal_id,gross_yuan,discount_yuan,redeem_points\r\n\
S-A,sale,,100.00,12.00,0\r\nS-B,sale,,50.00,1.00,0\r\nS-B,reversal,R-1,20.00,0.00,0\r\nS-X,sale,,9.99,0,0\r\nS-T,sale,,7.00,0,0\r\n";
    let res = upload(&rst, &yesterday.to_string(), first).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(res.json()["rows"], 5);

    assert_ok(admin(&app, &["settle", &yesterday.to_string()]).await);
    let v1 = app
        .settings
        .statements_dir()
        .join(yesterday.to_string())
        .join("v1");
    let statement = std::fs::read_to_string(v1.join("partners/P-RST-001.csv")).unwrap();
    assert!(
        statement
            .lines()
            .any(|l| l.contains(",S-A,") && l.contains(",matched,")),
        "{statement}"
    );
    assert!(
        statement
            .lines()
            .any(|l| l.contains(",S-B,sale,") && l.contains(",amount_mismatch,")),
        "{statement}"
    );
    let disc = std::fs::read_to_string(v1.join("discrepancies.csv")).unwrap();
    let issues: Vec<String> = disc
        .lines()
        .skip(1)
        .map(|l| l.split(',').skip(2).take(7).collect::<Vec<_>>().join(","))
        .collect();
    assert_eq!(
        issues,
        vec![
            "S-B,sale,,amount_mismatch,discount_yuan,0.00,1.00".to_owned(),
            format!("S-T,sale,,booked_other_day,,{today},7.00"),
            "S-X,sale,,missing_at_gateway,,,9.99".to_owned(),
        ]
    );
    let summary = std::fs::read_to_string(v1.join("summary.csv")).unwrap();
    assert!(summary.contains(",discrepancies,"), "{summary}");

    // The partner corrects its file after closing: the next tick, or finance's rerun, makes v2.
    let fixed =
        "partner_txn_id,kind,partner_reversal_id,gross_yuan,discount_yuan,redeem_points\r\n\
S-A,sale,,100.00,12.00,0\r\nS-B,sale,,50.00,0.00,0\r\nS-B,reversal,R-1,20.00,0.00,0\r\n";
    assert_eq!(
        upload(&rst, &yesterday.to_string(), fixed).await.status,
        200
    );
    let v1_manifest = std::fs::read(v1.join("manifest.json")).unwrap();
    assert_ok(admin(&app, &["finance", "add", "fin"]).await);
    let fin = app.finance("fin");
    let rerun = fin
        .send(&fin.sign(
            "POST",
            &format!("/v1/finance/settlements/{yesterday}/rerun"),
            None,
        ))
        .await;
    assert_eq!(
        rerun.json()["version"],
        2,
        "{}",
        String::from_utf8_lossy(&rerun.body)
    );
    let v2 = app
        .settings
        .statements_dir()
        .join(yesterday.to_string())
        .join("v2");
    assert!(std::fs::read_to_string(v2.join("summary.csv"))
        .unwrap()
        .contains(",reconciled,"));
    assert_eq!(
        std::fs::read(v1.join("manifest.json")).unwrap(),
        v1_manifest,
        "v1 is never rewritten"
    );
    // Amounts never change between versions: only the reconciliation does.
    let m1: Value = serde_json::from_slice(&v1_manifest).unwrap();
    let m2: Value =
        serde_json::from_slice(&std::fs::read(v2.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m1["totals"], m2["totals"]);
    let latest = rst.get(&format!("/v1/statements/{yesterday}")).await;
    assert_eq!(latest.header("statement-version"), Some("2"));
    let runs = fin
        .get(&format!(
            "/v1/finance/settlements?from={yesterday}&to={today}"
        ))
        .await
        .json();
    let statuses: Vec<(i64, String)> = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["version"].as_i64().unwrap(),
                i["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![(2, "settled".to_owned()), (1, "superseded".to_owned())]
    );
}

#[tokio::test]
async fn with_the_bom_setting_every_csv_starts_with_a_bom_that_the_manifest_covers() {
    let app = spawn_app().await;
    let tz = chrono_tz::Asia::Shanghai;
    let yesterday = Utc::now().with_timezone(&tz).date_naive() - Duration::days(1);
    let when = tz
        .from_local_datetime(&yesterday.and_hms_opt(12, 0, 0).unwrap())
        .unwrap()
        .to_rfc3339();
    let body = json!({"partner_txn_id": "BOM-1", "card_no": GOLD_CARD, "store_id": "store-1",
        "occurred_at": when, "gross_fen": 1_000, "discount_fen": 0, "redeem_points": 0});
    let res = app
        .partner(RST)
        .post_idem("/v1/transactions", &body, &idem())
        .await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    // The setting is the closing process's: here the admin's `settle`.
    let out = cli(&app)
        .env("ALLIANCE_CSV_BOM", "true")
        .args(["settle", &yesterday.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = app
        .settings
        .statements_dir()
        .join(yesterday.to_string())
        .join("v1");
    for name in ["summary.csv", "discrepancies.csv", "partners/P-RST-001.csv"] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert!(bytes.starts_with(b"\xEF\xBB\xBFbusiness_date,"), "{name}");
    }
    // The BOM setting is frozen with the day: settling it again from a process without the
    // setting rewrites the same bytes.
    let summary = std::fs::read(dir.join("summary.csv")).unwrap();
    assert_ok(admin(&app, &["settle", &yesterday.to_string()]).await);
    assert_eq!(std::fs::read(dir.join("summary.csv")).unwrap(), summary);
    // The manifest's hashes cover the BOM, and the run verifies.
    let (code, out, err) = admin(&app, &["verify-statement", &dir.display().to_string()]).await;
    assert_eq!(code, 0, "{out}{err}");
}
