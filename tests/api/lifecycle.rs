//! The partner lifecycle as an admin drives it from a shell (the real binary), while partners
//! keep calling over mTLS: each change must hold on the very next request, without a restart.
use crate::helpers::*;
use std::time::Duration;

const RST: &str = "P-RST-001";
const RST_URN: &str = "urn:alliance:partner:P-RST-001";

/// Two HTTP clients sharing one rustls configuration, hence one session cache: the second
/// client's first connection resumes the TLS session the first client's established, so the
/// handshake's certificate verifier does not run for it.
fn resuming_clients(app: &TestApp, code: &str) -> (PartnerClient, PartnerClient) {
    let config = bundle_tls_config(&app.settings.bundles_dir().join(code));
    let client = |config: rustls::ClientConfig| {
        let mut c = app.partner(code);
        c.http = reqwest::Client::builder()
            .use_preconfigured_tls(config)
            .build()
            .unwrap();
        c
    };
    (client(config.clone()), client(config))
}

#[tokio::test]
async fn a_suspended_partner_is_refused_on_open_and_resumed_connections_until_reactivated() {
    let app = spawn_app().await;
    let (open, resumed) = resuming_clients(&app, RST);
    assert_eq!(open.verify_card(GOLD_CARD).await.status, 200);
    let cinema = app.partner("P-CIN-001");

    let out = assert_ok(
        admin(
            &app,
            &["partner", "suspend", RST, "--reason", "unpaid fees"],
        )
        .await,
    );
    assert!(out.contains("suspended"), "{out}");
    // Suspending again is not an error.
    let again = assert_ok(admin(&app, &["partner", "suspend", RST]).await);
    assert!(again.contains("already suspended"), "{again}");

    let before = app.snapshot();
    open.verify_card(GOLD_CARD)
        .await
        .assert_problem(403, "partner-suspended");
    resumed
        .verify_card(GOLD_CARD)
        .await
        .assert_problem(403, "partner-suspended");
    app.partner(RST)
        .verify_card(GOLD_CARD)
        .await
        .assert_problem(403, "partner-suspended");
    let after = app.snapshot();
    assert_eq!(before[0], after[0], "a refused partner gets no member ref");
    assert_eq!(
        cinema.verify_card(GOLD_CARD).await.status,
        200,
        "others are unaffected"
    );

    assert_ok(admin(&app, &["partner", "reactivate", RST]).await);
    assert_eq!(open.verify_card(GOLD_CARD).await.status, 200);
    assert_eq!(resumed.verify_card(GOLD_CARD).await.status, 200);
    // Suspension kept the history: the partner's certificate, key and offer are unchanged.
    let show = assert_ok(admin(&app, &["partner", "show", RST, "--json"]).await);
    let show: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(show["status"], "active");
    assert_eq!(show["certificates"].as_array().unwrap().len(), 1);
    assert_eq!(show["keys"][0]["key_id"], "P-RST-001/k1");
}

/// The checks run against the gateway's cached registry and are confirmed by the generation
/// read in the statement that claims the nonce (`auth::Stage`). Here the first sale after a
/// suspension passes the checks against the cache, which still holds the partner as active,
/// claims its nonce, sees the generation moved, and is checked again: it must be judged by the
/// suspension. Its nonce stays consumed (contract section 4: a failed request's nonce is), so
/// the same signed request sent again after reactivation is a replay, not a sale.
#[tokio::test]
async fn a_sale_whose_partner_was_suspended_since_the_cache_was_filled_is_refused_and_burns_its_nonce(
) {
    let app = spawn_app().await;
    let rst = app.partner(RST);
    // Fills the gateway's registry cache with the partner as active.
    assert_eq!(rst.verify_card(GOLD_CARD).await.status, 200);
    let body = serde_json::json!({
        "partner_txn_id": "POS1-SUSPENDED",
        "card_no": GOLD_CARD,
        "store_id": "store-1",
        "occurred_at": chrono::Utc::now().to_rfc3339(),
        "gross_fen": 10_000,
        "discount_fen": 0,
        "redeem_points": 0,
    });
    let bytes = serde_json::to_vec(&body).unwrap();
    let signed = rst.sign_idem("POST", "/v1/transactions", &bytes, &idem());

    assert_ok(admin(&app, &["partner", "suspend", RST]).await);
    let before = (app.snapshot(), app.count("transactions"));
    rst.send(&signed)
        .await
        .assert_problem(403, "partner-suspended");
    let after = (app.snapshot(), app.count("transactions"));
    assert_eq!(before.1, after.1, "no sale was recorded");
    assert_eq!(before.0[2], after.0[2], "no ledger entry was written");
    assert_eq!(
        after.0[1],
        before.0[1] + 1,
        "the refused request's nonce is consumed"
    );

    assert_ok(admin(&app, &["partner", "reactivate", RST]).await);
    rst.send(&signed)
        .await
        .assert_problem(401, "replayed-request");
    assert_eq!(app.count("transactions"), after.1);
    let fresh = rst.sign_idem("POST", "/v1/transactions", &bytes, &idem());
    let res = rst.send(&fresh).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    assert_eq!(app.count("transactions"), after.1 + 1);
}

#[tokio::test]
async fn a_rotated_key_verifies_until_its_overlap_ends_and_now_retires_at_once() {
    let app = spawn_app().await;
    let k1 = app.partner(RST);
    assert_eq!(k1.key_id, "P-RST-001/k1");

    // A one-hour overlap, through the same function the CLI calls; the gateway's clock is then
    // moved past its end rather than waited for.
    let settings = app.settings.clone();
    let rotated = tokio::task::spawn_blocking(move || {
        let mut conn = alliance_gateway::db::Manager::new(settings.database.clone())
            .connect()
            .unwrap();
        alliance_gateway::lifecycle::partners::rotate_key(
            &settings,
            &mut conn,
            &alliance_gateway::domain::PartnerCode::parse(RST).unwrap(),
            None,
            chrono::TimeDelta::hours(1),
        )
        .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(rotated.new_key_id, "P-RST-001/k2");
    let k2 = app.partner(RST);
    assert_eq!(k2.key_id, "P-RST-001/k2", "partner.json names the new key");
    let dir = app.settings.bundles_dir().join(RST);
    assert!(
        dir.join("signing.k1.key").exists(),
        "the old key is kept beside the new one"
    );

    assert_eq!(
        k1.verify_card(GOLD_CARD).await.status,
        200,
        "old key inside the overlap"
    );
    assert_eq!(
        k2.verify_card(GOLD_CARD).await.status,
        200,
        "new key at once"
    );
    app.clock.advance(chrono::TimeDelta::minutes(61));
    k1.verify_card(GOLD_CARD)
        .await
        .assert_problem(401, "unknown-key");
    assert_eq!(k2.verify_card(GOLD_CARD).await.status, 200);

    // Emergency rotation through the CLI: k2 is refused from the next request on.
    let out = assert_ok(admin(&app, &["partner", "rotate-key", RST, "--now"]).await);
    assert!(out.contains("P-RST-001/k3"), "{out}");
    k2.verify_card(GOLD_CARD)
        .await
        .assert_problem(401, "unknown-key");
    let k3 = app.partner(RST);
    assert_eq!(k3.key_id, "P-RST-001/k3");
    assert_eq!(k3.verify_card(GOLD_CARD).await.status, 200);

    // The default overlap is 24 hours, and `show` reports it.
    assert_ok(admin(&app, &["partner", "rotate-key", RST]).await);
    let show = assert_ok(admin(&app, &["partner", "show", RST, "--json"]).await);
    let show: serde_json::Value = serde_json::from_str(&show).unwrap();
    let keys = show["keys"].as_array().unwrap();
    let k3_row = keys.iter().find(|k| k["key_id"] == "P-RST-001/k3").unwrap();
    assert_eq!(k3_row["state"], "overlap");
    let until =
        chrono::DateTime::parse_from_rfc3339(k3_row["retire_after"].as_str().unwrap()).unwrap();
    let hours = (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
    assert!((23 * 60..=24 * 60).contains(&hours), "{hours} minutes");
    assert_eq!(k3.verify_card(GOLD_CARD).await.status, 200);
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_at_once_and_at_the_handshake_and_a_renewed_one_works() {
    let app = spawn_app().await;
    let old = app.partner(RST);
    assert_eq!(old.verify_card(GOLD_CARD).await.status, 200);
    let old_serial = app.serials(RST_URN).remove(0);

    let out = assert_ok(admin(&app, &["partner", "renew-cert", RST]).await);
    assert!(
        out.contains(&old_serial),
        "names the previous certificate: {out}"
    );
    let renewed = app.partner(RST);
    assert_eq!(renewed.verify_card(GOLD_CARD).await.status, 200);
    assert_eq!(
        old.verify_card(GOLD_CARD).await.status,
        200,
        "both work until one is revoked"
    );

    // Revoke the old one by its serial as `openssl x509 -serial` prints it: upper case.
    let out = assert_ok(admin(&app, &["cert", "revoke", &old_serial.to_uppercase()]).await);
    assert!(out.contains("revoked"), "{out}");
    old.verify_card(GOLD_CARD)
        .await
        .assert_problem(403, "certificate-not-active");
    assert_eq!(renewed.verify_card(GOLD_CARD).await.status, 200);

    // A new handshake with the old certificate fails once the gateway reloads the CRL.
    let dir = app.settings.bundles_dir().join(RST);
    let aside = format!("client.{old_serial}.pem");
    let aside_key = format!("client.{old_serial}.key");
    // (Its scheduled run may have come first: then this one finds it unchanged.)
    app.run_job(alliance_gateway::jobs::Job::ReloadCrl).await;
    let fresh = app.client_with(&dir, &aside, &aside_key, "P-RST-001/k1", "signing.key");
    assert!(
        fresh.http.get(app.url("/v1/keys")).send().await.is_err(),
        "the revoked certificate still completes a handshake"
    );
    assert_eq!(renewed.verify_card(GOLD_CARD).await.status, 200);

    // Revoking again is not an error; an unknown serial is one line and exit 1.
    assert_ok(admin(&app, &["cert", "revoke", &old_serial]).await);
    let (code, _, err) = admin(&app, &["cert", "revoke", "abcdef"]).await;
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: no certificate"), "{err}");
}

#[tokio::test]
async fn finance_and_partner_certificates_are_kept_to_their_own_routes() {
    let app = spawn_app().await;
    let mut cmd = cli(&app);
    cmd.args(["finance", "add", "alice.w"])
        .env("ALLIANCE_P12_PASSWORD", "correct horse battery");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("correct horse"),
        "a given password is never printed"
    );

    // The PKCS#12 opens with that password and holds the certificate, key and CA.
    let dir = app.settings.bundles_dir().join("finance").join("alice.w");
    let p12 = std::fs::read(dir.join("client.p12")).unwrap();
    let store = p12_keystore::KeyStore::from_pkcs12(
        &p12,
        "correct horse battery",
        p12_keystore::Pkcs12ImportPolicy::default(),
    )
    .unwrap();
    let (_, chain) = store.private_key_chain().expect("a key with its chain");
    assert_eq!(chain.certs().len(), 2);
    assert!(p12_keystore::KeyStore::from_pkcs12(&p12, "wrong", Default::default()).is_err());
    let finance_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("finance.json")).unwrap()).unwrap();
    assert_eq!(finance_json["key_id"], "finance:alice.w/k1");
    assert_eq!(finance_json["name"], "alice.w");

    let finance = app.finance("alice.w");
    let partner = app.partner(RST);
    // Finance reads without a signature; partners may not read finance routes at all.
    let res = finance
        .http
        .get(app.url("/v1/finance/settlements?from=2026-11-01&to=2026-11-23"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["items"], serde_json::json!([]));
    partner
        .send(&partner.sign("GET", "/v1/finance/settlements", None))
        .await
        .assert_problem(403, "forbidden");
    // A finance certificate, even with a valid finance signature, calls no partner route.
    finance
        .verify_card(GOLD_CARD)
        .await
        .assert_problem(403, "forbidden");

    // Re-adding is a no-op; removing takes effect on the next request.
    let again = assert_ok(admin(&app, &["finance", "add", "alice.w"]).await);
    assert!(again.contains("already exists"), "{again}");
    assert_ok(admin(&app, &["finance", "remove", "alice.w"]).await);
    finance
        .send(&finance.sign("GET", "/v1/finance/settlements", None))
        .await
        .assert_problem(403, "certificate-not-active");
    let list = assert_ok(admin(&app, &["finance", "list", "--json"]).await);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["status"], "removed");
    assert_eq!(list[0]["certificates"][0]["status"], "revoked");
}

#[tokio::test]
async fn a_generated_pkcs12_password_is_printed_once_and_opens_the_file() {
    let app = spawn_app().await;
    let out = assert_ok(admin(&app, &["finance", "add", "bob"]).await);
    let password = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("PKCS#12 password:"))
        .map(str::trim)
        .expect("the generated password is printed");
    assert_eq!(password.len(), 20);
    let dir = app.settings.bundles_dir().join("finance").join("bob");
    let p12 = std::fs::read(dir.join("client.p12")).unwrap();
    assert!(p12_keystore::KeyStore::from_pkcs12(&p12, password, Default::default()).is_ok());
    let audit = assert_ok(admin(&app, &["audit", "list", "--json"]).await);
    assert!(!audit.contains(password), "the password is stored nowhere");
}

#[tokio::test]
async fn every_admin_action_is_audited_and_an_edited_row_breaks_the_chain() {
    let app = spawn_app().await;
    assert_ok(admin(&app, &["partner", "suspend", RST, "--reason", "audit test"]).await);
    let (code, _, err) = admin(&app, &["partner", "suspend", "P-NONE-001"]).await;
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");

    let list = assert_ok(admin(&app, &["audit", "list", "--json"]).await);
    let entries: Vec<serde_json::Value> = list
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let suspend = entries
        .iter()
        .find(|e| e["action"] == "partner.suspend" && e["subject"] == RST)
        .expect("the suspension is audited");
    assert_eq!(suspend["result"], "ok");
    assert_eq!(suspend["detail"]["reason"], "audit test");
    assert!(suspend["actor"].as_str().unwrap().starts_with("admin:"));
    let failed = entries
        .iter()
        .find(|e| e["subject"] == "P-NONE-001")
        .expect("a failed action is audited too");
    assert!(
        failed["result"].as_str().unwrap().starts_with("error:"),
        "{failed}"
    );

    let out = assert_ok(admin(&app, &["audit", "verify"]).await);
    assert!(out.contains("chain intact"), "{out}");

    // The table refuses edits; someone with the database's owner rights lifts that and
    // rewrites the suspension's reason.
    let id = suspend["id"].as_i64().unwrap();
    let mut conn = app.conn();
    {
        use diesel::RunQueryDsl;
        let (drop_trigger, edit) = match &app.settings.database {
            alliance_gateway::config::DatabaseUrl::Sqlite(_) => (
                "DROP TRIGGER audit_log_append_only_update".to_owned(),
                format!("UPDATE audit_log SET detail = replace(detail, 'audit test', 'nothing') WHERE id = {id}"),
            ),
            alliance_gateway::config::DatabaseUrl::Postgres(_) => (
                "DROP TRIGGER audit_log_append_only ON audit_log".to_owned(),
                format!("UPDATE audit_log SET detail = replace(detail, 'audit test', 'nothing') WHERE id = {id}"),
            ),
        };
        assert!(
            diesel::sql_query(&edit).execute(&mut conn).is_err(),
            "the append-only trigger refuses the edit"
        );
        diesel::sql_query(drop_trigger).execute(&mut conn).unwrap();
        assert_eq!(diesel::sql_query(edit).execute(&mut conn).unwrap(), 1);
    }
    let (code, _, err) = admin(&app, &["audit", "verify"]).await;
    assert_eq!(code, 1);
    assert!(err.contains(&format!("entry {id} ")), "{err}");
}

#[tokio::test]
async fn over_the_rate_limit_a_partner_gets_429_and_other_partners_are_not_slowed() {
    let app = spawn_app_with(|s| {
        s.rate_limit_per_second = 1;
        s.rate_limit_burst = 3;
    })
    .await;
    let rst = app.partner(RST);
    let cinema = app.partner("P-CIN-001");
    for _ in 0..3 {
        assert_eq!(rst.verify_card(GOLD_CARD).await.status, 200);
    }
    let before = app.snapshot();
    let refused = rst.verify_card(GOLD_CARD).await;
    refused.assert_problem(429, "rate-limited");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(
        app.snapshot(),
        before,
        "a refused request writes nothing, not even its nonce"
    );

    // The cinema has its own budget: its whole burst goes through while the restaurant waits.
    let started = std::time::Instant::now();
    for _ in 0..3 {
        assert_eq!(cinema.verify_card(GOLD_CARD).await.status, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(2));

    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(
        rst.verify_card(GOLD_CARD).await.status,
        200,
        "after Retry-After"
    );

    let metrics = plain_get(&format!("http://127.0.0.1:{}/metrics", app.ops_port))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("alliance_rate_limited_total")
                && l.contains("P-RST-001")
                && l.contains("limit=\"requests\"")),
        "{metrics}"
    );
    assert!(
        metrics.contains("alliance_certificates_expiring_30d 0"),
        "the expiry gauge is published: {metrics}"
    );
}

#[tokio::test]
async fn certificates_close_to_expiry_are_flagged_in_the_list() {
    let app = spawn_app().await;
    {
        use diesel::{ExpressionMethods, RunQueryDsl};
        let soon = chrono::Utc::now().naive_utc() + chrono::TimeDelta::days(10);
        let mut conn = app.conn();
        diesel::update(alliance_gateway::db::schema::certificates::table)
            .filter(alliance_gateway::db::schema::certificates::identity.eq(RST_URN))
            .set(alliance_gateway::db::schema::certificates::not_after.eq(soon))
            .execute(&mut conn)
            .unwrap();
    }
    let list = assert_ok(admin(&app, &["partner", "list", "--json"]).await);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let flagged: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["expires_soon"] == true)
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert_eq!(flagged, vec![RST]);
    let table = assert_ok(admin(&app, &["partner", "list"]).await);
    let line = table.lines().find(|l| l.starts_with(RST)).unwrap();
    assert!(line.contains("EXPIRES WITHIN 30 DAYS"), "{line}");
}

#[tokio::test]
async fn a_certificate_renewed_from_a_csr_works_with_the_partners_own_key() {
    let app = spawn_app().await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    let csr_path = app.home.path().join("renew.csr");
    std::fs::write(
        &csr_path,
        params.serialize_request(&key).unwrap().pem().unwrap(),
    )
    .unwrap();

    let out = assert_ok(
        admin(
            &app,
            &[
                "partner",
                "renew-cert",
                RST,
                "--csr",
                csr_path.to_str().unwrap(),
            ],
        )
        .await,
    );
    assert!(out.contains("new certificate"), "{out}");
    let dir = app.settings.bundles_dir().join(RST);
    assert!(
        !dir.join("client.key").exists(),
        "no TLS key is made for a CSR, and the old one does not linger under the new name"
    );
    assert_eq!(app.serials(RST_URN).len(), 2);
    std::fs::write(dir.join("own.key"), key.serialize_pem()).unwrap();
    let own = app.client_with(&dir, "client.pem", "own.key", "P-RST-001/k1", "signing.key");
    assert_eq!(own.verify_card(GOLD_CARD).await.status, 200);

    // A CSR that is not one is refused with one line, and nothing is registered.
    std::fs::write(&csr_path, "not a CSR").unwrap();
    let (code, _, err) = admin(
        &app,
        &[
            "partner",
            "renew-cert",
            RST,
            "--csr",
            csr_path.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    assert_eq!(app.serials(RST_URN).len(), 2);
}
