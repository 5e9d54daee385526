//! Contract section 2: mutual TLS and the registry check on every request.
use crate::helpers::*;
use alliance_gateway::pki::ca::Ca;

#[tokio::test]
async fn a_registered_partner_verifies_a_member_and_the_answer_is_signed() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    let out = rst.sign(
        "POST",
        "/v1/members/verify",
        Some(br#"{"card_no":"8800123456"}"#),
    );
    let res = rst.send(&out).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let body = res.json();
    assert_eq!(body["tier"], "gold");
    assert_eq!(body["status"], "active");
    assert_eq!(body["eligible"], true);
    assert_eq!(body["offer_version"], 1);
    assert_eq!(body["benefits"]["discount_bps"], 1200);
    assert_eq!(body["benefits"]["points_balance"], 1200);
    assert!(res.header("x-request-id").is_some());
    assert_signed_by_gateway(&res, &rst.app_gateway_keys, out.header("Signature"));
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_at_the_handshake() {
    let app = spawn_app().await;
    let client = tls_client(&app.paths().ca_cert(), None);
    let err = client.get(app.url("/v1/keys")).send().await;
    assert!(
        err.is_err(),
        "the handshake must fail without a client certificate"
    );
}

#[tokio::test]
async fn a_certificate_from_a_foreign_ca_is_refused_at_the_handshake() {
    let app = spawn_app().await;
    // A whole other CA, issuing a certificate with a perfectly good partner identity.
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, ca_key) = alliance_gateway::pki::ca::create_ca("Foreign").unwrap();
    let paths = alliance_gateway::pki::Paths {
        certs: dir.path().into(),
        ca_dir: dir.path().into(),
    };
    std::fs::write(paths.ca_cert(), &ca_pem).unwrap();
    std::fs::write(paths.ca_key(), &ca_key).unwrap();
    let foreign = Ca::load(&paths)
        .unwrap()
        .issue_client("urn:alliance:partner:P-RST-001", "P-RST-001", None)
        .unwrap();
    std::fs::write(dir.path().join("c.pem"), &foreign.cert_pem).unwrap();
    std::fs::write(dir.path().join("c.key"), foreign.key_pem.unwrap()).unwrap();
    let client = tls_client(
        &app.paths().ca_cert(),
        Some((&dir.path().join("c.pem"), &dir.path().join("c.key"))),
    );
    let before = app.snapshot();
    assert!(client.get(app.url("/v1/keys")).send().await.is_err());
    assert_eq!(app.snapshot(), before);
}

#[tokio::test]
async fn a_certificate_of_our_ca_that_is_not_registered_gets_403() {
    let app = spawn_app().await;
    let issued = Ca::load(&app.paths())
        .unwrap()
        .issue_client("urn:alliance:partner:P-RST-001", "P-RST-001", None)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.pem"), &issued.cert_pem).unwrap();
    std::fs::write(dir.path().join("c.key"), issued.key_pem.unwrap()).unwrap();
    let mut rst = app.partner("P-RST-001");
    rst.http = tls_client(
        &app.paths().ca_cert(),
        Some((&dir.path().join("c.pem"), &dir.path().join("c.key"))),
    );
    let before = app.snapshot();
    let res = rst.verify_card(GOLD_CARD).await;
    let body = res.assert_problem(403, "certificate-not-active");
    assert!(!body.to_string().contains(GOLD_CARD));
    assert_signed_by_gateway(&res, &rst.app_gateway_keys, None);
    assert_eq!(
        app.snapshot(),
        before,
        "a refused request writes nothing, not even its nonce"
    );
}

#[tokio::test]
async fn a_certificate_without_an_alliance_identity_gets_403() {
    let app = spawn_app().await;
    let issued = Ca::load(&app.paths())
        .unwrap()
        .issue_client("urn:example:someone", "someone", None)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.pem"), &issued.cert_pem).unwrap();
    std::fs::write(dir.path().join("c.key"), issued.key_pem.unwrap()).unwrap();
    let mut rst = app.partner("P-RST-001");
    rst.http = tls_client(
        &app.paths().ca_cert(),
        Some((&dir.path().join("c.pem"), &dir.path().join("c.key"))),
    );
    rst.verify_card(GOLD_CARD)
        .await
        .assert_problem(403, "certificate-not-active");
}
