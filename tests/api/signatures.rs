//! Contract sections 3, 4 and 13: every signature failure, its status and code, and that a
//! refused request writes nothing.
use crate::helpers::*;

const VERIFY: &str = "/v1/members/verify";
const BODY: &[u8] = br#"{"card_no":"8800123456"}"#;

async fn refused(app: &TestApp, out: &Outgoing, status: u16, code: &str) -> serde_json::Value {
    let rst = app.partner("P-RST-001");
    let before = app.snapshot();
    let res = rst.send(out).await;
    let body = res.assert_problem(status, code);
    assert_signed_by_gateway(&res, &rst.app_gateway_keys, None);
    assert_eq!(app.snapshot(), before, "{code}: nothing may be written");
    body
}

#[tokio::test]
async fn no_signature_headers_is_missing_signature() {
    let app = spawn_app().await;
    let mut out = app.partner("P-RST-001").sign("POST", VERIFY, Some(BODY));
    out.remove_header("Signature");
    out.remove_header("Signature-Input");
    refused(&app, &out, 401, "missing-signature").await;
}

#[tokio::test]
async fn a_signature_that_does_not_verify_is_invalid_signature() {
    let app = spawn_app().await;
    let mut out = app.partner("P-RST-001").sign("POST", VERIFY, Some(BODY));
    let sig = out.header("Signature").unwrap().to_owned();
    // Flip one base64 character inside the value.
    let flipped = if sig.as_bytes()[10] == b'A' {
        sig.replacen(&sig[10..11], "B", 1)
    } else {
        format!("{}A{}", &sig[..10], &sig[11..])
    };
    out.set_header("Signature", &flipped);
    let body = refused(&app, &out, 401, "invalid-signature").await;
    assert_eq!(body["detail"], "the signature does not verify");
}

#[tokio::test]
async fn a_digest_that_does_not_match_the_body_is_invalid_content_digest() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    // Signed over a digest of another body: the signature is fine, the digest is not.
    let mut out = rst.sign("POST", VERIFY, Some(br#"{"card_no":"8800123457"}"#));
    out.body = BODY.to_vec();
    refused(&app, &out, 400, "invalid-content-digest").await;
}

#[tokio::test]
async fn a_body_tampered_after_signing_is_caught() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    let mut out = rst.sign("POST", VERIFY, Some(BODY));
    out.body = br#"{"card_no":"8800123459"}"#.to_vec();
    refused(&app, &out, 400, "invalid-content-digest").await;
    // And with the digest recomputed to match, the signature no longer covers it.
    let mut out = rst.sign("POST", VERIFY, Some(BODY));
    out.body = br#"{"card_no":"8800123459"}"#.to_vec();
    out.set_header(
        "Content-Digest",
        &alliance_gateway::signature::digest::content_digest(&out.body),
    );
    refused(&app, &out, 401, "invalid-signature").await;
}

#[tokio::test]
async fn a_body_without_content_digest_or_with_another_algorithm_is_refused() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    let mut out = rst.sign("POST", VERIFY, Some(BODY));
    out.set_header("Content-Digest", "sha-512=:AAAA:");
    let body = refused(&app, &out, 400, "invalid-content-digest").await;
    assert_eq!(body["detail"], "Content-Digest must use sha-256");
}

#[tokio::test]
async fn a_stale_created_is_clock_skew() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    let out = sign_with(
        &rst.key,
        &rst.key_id,
        "POST",
        VERIFY,
        Some(BODY),
        chrono::Utc::now().timestamp() - 301,
    );
    refused(&app, &out, 401, "clock-skew").await;
    let out = sign_with(
        &rst.key,
        &rst.key_id,
        "POST",
        VERIFY,
        Some(BODY),
        // Not +301: the gateway's clock may have moved on by a second when it checks.
        chrono::Utc::now().timestamp() + 330,
    );
    refused(&app, &out, 401, "clock-skew").await;
}

#[tokio::test]
async fn a_replayed_nonce_is_refused_and_the_first_request_counted_once() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    let out = rst.sign("POST", VERIFY, Some(BODY));
    assert_eq!(rst.send(&out).await.status, 200);
    let before = app.snapshot();
    let res = rst.send(&out).await;
    res.assert_problem(401, "replayed-request");
    // The signature itself verified, so the refusal is bound to it.
    assert_signed_by_gateway(&res, &rst.app_gateway_keys, out.header("Signature"));
    assert_eq!(app.snapshot(), before, "a replay writes nothing");
}

/// The claim commits without waiting for its WAL flush on PostgreSQL (`Nonce::
/// claim_reading_generation`): that setting must stay with the claim's own transaction, never
/// reach the connection's later commits (a sale's) or a transaction the claim runs inside.
#[tokio::test]
async fn a_nonce_claim_is_single_use_and_leaves_later_commits_synchronous() {
    use alliance_gateway::db::nonces::{NewNonce, Nonce};
    use alliance_gateway::db::DbConn;
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    fn synchronous_commit(conn: &mut DbConn) -> Option<String> {
        match conn {
            DbConn::Postgres(pg) => Some(
                diesel::sql_query("SELECT current_setting('synchronous_commit') AS v")
                    .get_result::<Setting>(pg)
                    .expect("setting")
                    .v,
            ),
            DbConn::Sqlite(_) => None,
        }
    }
    let app = spawn_app().await;
    let mut conn = app.conn();
    let expires_at = alliance_gateway::db::now_utc() + chrono::Duration::seconds(600);
    let new = |nonce: &'static str| NewNonce {
        key_id: "P-RST-001/k1",
        nonce_sha256: nonce,
        expires_at,
    };
    let before = synchronous_commit(&mut conn);
    let (fresh, generation) = Nonce::claim_reading_generation(&mut conn, &new("a")).unwrap();
    assert!(fresh && generation > 0);
    let (again, _) = Nonce::claim_reading_generation(&mut conn, &new("a")).unwrap();
    assert!(!again, "a nonce is claimed once");
    assert_eq!(synchronous_commit(&mut conn), before);
    let inside = conn
        .transaction(|c| {
            let claimed = Nonce::claim_reading_generation(c, &new("b"))?;
            Ok::<_, diesel::result::Error>((claimed.0, synchronous_commit(c)))
        })
        .unwrap();
    assert_eq!(inside, (true, before.clone()));
    if matches!(
        app.settings.database,
        alliance_gateway::config::DatabaseUrl::Postgres(_)
    ) {
        assert_eq!(before.as_deref(), Some("on"));
    }
}

/// Several claims in one statement (`Nonce::claim_many`, PostgreSQL's nonce claimers): each
/// nonce is fresh once, however often it is named or was claimed before, and the statement
/// reads the same registry generation a single claim does. It never runs inside a
/// transaction, whose commit its unflushed one would become.
#[tokio::test]
async fn nonces_claimed_together_are_each_fresh_once() {
    use alliance_gateway::db::nonces::{NewNonce, Nonce};
    use diesel::Connection;
    let app = spawn_app().await;
    let mut conn = app.conn();
    let expires_at = alliance_gateway::db::now_utc() + chrono::Duration::seconds(600);
    let new = |key_id: &'static str, nonce: &'static str| NewNonce {
        key_id,
        nonce_sha256: nonce,
        expires_at,
    };
    let nonces_before = app.count("request_nonces");
    let (earlier, generation) =
        Nonce::claim_reading_generation(&mut conn, &new("P-RST-001/k1", "old")).unwrap();
    assert!(earlier);
    let claims = [
        new("P-RST-001/k1", "a"),
        new("P-RST-001/k1", "old"),
        new("P-RST-001/k1", "a"),
        new("P-CIN-001/k1", "a"),
        new("P-RST-001/k1", "b"),
    ];
    let (fresh, at) = Nonce::claim_many(&mut conn, &claims).unwrap();
    assert_eq!(fresh, [true, false, false, true, true]);
    assert_eq!(at, generation);
    let (again, _) = Nonce::claim_many(&mut conn, &claims[..2]).unwrap();
    assert_eq!(again, [false, false], "claimed once, for good");
    assert_eq!(app.count("request_nonces"), nonces_before + 4);
    let inside = conn.transaction(|c| {
        Ok::<_, diesel::result::Error>(Nonce::claim_many(c, &[new("P-RST-001/k1", "c")]).is_err())
    });
    assert!(inside.unwrap(), "refused inside a transaction");
}

#[tokio::test]
async fn an_unknown_key_id_is_unknown_key() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    let out = sign_with(
        &rst.key,
        "P-RST-001/k9",
        "POST",
        VERIFY,
        Some(BODY),
        chrono::Utc::now().timestamp(),
    );
    refused(&app, &out, 401, "unknown-key").await;
}

#[tokio::test]
async fn another_partners_key_is_key_identity_mismatch() {
    let app = spawn_app().await;
    let cinema = app.partner("P-CIN-001");
    // The restaurant's TLS certificate, the cinema's signing key.
    let out = cinema.sign("POST", VERIFY, Some(BODY));
    let rst = app.partner("P-RST-001");
    let before = app.snapshot();
    let res = rst.send(&out).await;
    res.assert_problem(403, "key-identity-mismatch");
    assert_eq!(app.snapshot(), before);
}

#[tokio::test]
async fn a_required_component_left_uncovered_is_invalid_signature() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    // Sign only @method and @path, properly, with a real key.
    use alliance_gateway::signature::sign::{sign, Covered, Param};
    use alliance_gateway::signature::Message;
    let msg = Message {
        method: Some("POST"),
        path: Some(VERIFY),
        ..Message::default()
    };
    let nonce = nonce();
    let h = sign(
        &rst.key,
        "sig",
        &msg,
        &[
            Covered {
                name: "@method",
                req_key: None,
            },
            Covered {
                name: "@path",
                req_key: None,
            },
        ],
        &[
            Param::Int("created", chrono::Utc::now().timestamp()),
            Param::Str("keyid", &rst.key_id),
            Param::Str("nonce", &nonce),
        ],
        None,
    )
    .unwrap();
    let mut out = rst.sign("POST", VERIFY, Some(BODY));
    out.set_header("Signature-Input", &h.signature_input);
    out.set_header("Signature", &h.signature);
    let body = refused(&app, &out, 401, "invalid-signature").await;
    assert_eq!(body["detail"], "the signature must cover \"@query\"");
}

#[tokio::test]
async fn an_expired_signature_is_signature_expired() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    let out = rst.sign("POST", VERIFY, Some(BODY));
    let mut out2 = out.clone();
    let expired = format!(
        "{};expires={}",
        out.header("Signature-Input").unwrap(),
        chrono::Utc::now().timestamp() - 1
    );
    out2.set_header("Signature-Input", &expired);
    refused(&app, &out2, 401, "signature-expired").await;
}

#[tokio::test]
async fn an_alg_other_than_the_keys_is_invalid_signature() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    let mut out = rst.sign("POST", VERIFY, Some(BODY));
    let input = out
        .header("Signature-Input")
        .unwrap()
        .replace("alg=\"ed25519\"", "alg=\"ecdsa-p256-sha256\"");
    out.set_header("Signature-Input", &input);
    let body = refused(&app, &out, 401, "invalid-signature").await;
    assert_eq!(body["detail"], "alg does not match the key's algorithm");
}

#[tokio::test]
async fn a_short_nonce_is_invalid_signature() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    let mut out = rst.sign("POST", VERIFY, Some(BODY));
    let input = out.header("Signature-Input").unwrap().to_owned();
    let start = input.find("nonce=\"").unwrap() + 7;
    let end = start + input[start..].find('"').unwrap();
    out.set_header(
        "Signature-Input",
        &format!("{}short{}", &input[..start], &input[end..]),
    );
    refused(&app, &out, 401, "invalid-signature").await;
}

#[tokio::test]
async fn a_signature_input_with_a_non_ascii_byte_is_invalid_not_missing() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    let mut out = rst.sign("POST", VERIFY, Some(BODY));
    let input = out.header("Signature-Input").unwrap().to_owned();
    let start = input.find("nonce=\"").unwrap() + 7;
    out.set_header(
        "Signature-Input",
        &format!("{}\u{e9}{}", &input[..start], &input[start + 1..]),
    );
    refused(&app, &out, 401, "invalid-signature").await;
}

#[tokio::test]
async fn keys_endpoint_is_signed_and_lists_the_gateway_key() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    let out = rst.sign("GET", "/v1/keys", None);
    let res = rst.send(&out).await;
    assert_eq!(res.status, 200);
    let jwks = res.json();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    assert!(jwks["keys"][0]["kid"]
        .as_str()
        .unwrap()
        .starts_with("gateway/"));
    assert_signed_by_gateway(&res, &jwks, out.header("Signature"));
    // Unsigned, it is refused like any other partner request.
    let mut unsigned = rst.sign("GET", "/v1/keys", None);
    unsigned.headers.clear();
    rst.send(&unsigned)
        .await
        .assert_problem(401, "missing-signature");
}

#[tokio::test]
async fn an_ecdsa_p256_key_brought_by_a_partner_is_accepted() {
    use alliance_gateway::partners::onboard::Brought;
    use alliance_gateway::pki::keys::{PrivateKey, PublicKey};
    let app = spawn_app().await;
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let spec_src = std::fs::read_to_string(root().join("partner-specs/P-RST-001.toml"))
        .unwrap()
        .replace("P-RST-001", "P-BOOK-01")
        .replace("\"restaurant\"", "\"bookstore\"");
    let spec = alliance_gateway::partners::spec::parse("book.toml", &spec_src).unwrap();
    let public = PublicKey::from_spki_pem(&kp.public_key_pem()).unwrap();
    onboard_with(
        &app,
        spec,
        Brought {
            public_key: Some(public),
            csr_pem: None,
        },
    )
    .await;
    let bundle = app.settings.bundles_dir().join("P-BOOK-01");
    assert!(
        !bundle.join("signing.key").exists(),
        "no signing key is made when the partner brings one"
    );
    std::fs::write(bundle.join("signing.key"), kp.serialize_pem()).unwrap();
    let book = app.partner("P-BOOK-01");
    assert!(matches!(*book.key, PrivateKey::EcdsaP256(_)));
    let res = book.verify_card(GOLD_CARD).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
}
