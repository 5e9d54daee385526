//! Contract section 2: mutual TLS and the registry check on every request.
use crate::helpers::*;
use alliance_gateway::pki::ca::Ca;
use rustls::pki_types::pem::PemObject;

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
    // Issued by the alliance CA, with the right identity, but never registered.
    let rst = with_unregistered_certificate(&app, "urn:alliance:partner:P-RST-001");
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
    let rst = with_unregistered_certificate(&app, "urn:example:someone");
    rst.verify_card(GOLD_CARD)
        .await
        .assert_problem(403, "certificate-not-active");
}

#[tokio::test]
async fn a_new_crl_is_picked_up_without_a_restart_and_refuses_the_handshake() {
    let app = spawn_app().await;
    let rst = app.partner("P-RST-001");
    assert_eq!(rst.verify_card(GOLD_CARD).await.status, 200);
    // Revoke the restaurant's certificate in a freshly signed CRL.
    let serial = {
        let mut conn = app.conn();
        alliance_gateway::db::certificates::Certificate::for_identity(
            &mut conn,
            "urn:alliance:partner:P-RST-001",
        )
        .unwrap()
        .remove(0)
        .serial_hex
    };
    let crl = Ca::load(&app.paths())
        .unwrap()
        .crl(2, &[(serial, chrono::Utc::now())])
        .unwrap();
    std::fs::write(app.paths().crl(), crl).unwrap();
    // The reload job runs every 2 s in `serve`; here it runs now. A new connection must fail
    // once it has.
    // (Its scheduled run may have come first: then this one finds it unchanged.)
    app.run_job(alliance_gateway::jobs::Job::ReloadCrl).await;
    let fresh = app.partner("P-RST-001");
    assert!(
        fresh.http.get(app.url("/v1/keys")).send().await.is_err(),
        "a revoked certificate must be refused at the handshake once the CRL is reloaded"
    );
    // Another partner is unaffected.
    assert_eq!(
        app.partner("P-CIN-001").verify_card(GOLD_CARD).await.status,
        200
    );
}

#[tokio::test]
async fn a_partner_may_bring_a_csr_and_keeps_its_private_key() {
    use alliance_gateway::partners::onboard::Brought;
    let app = spawn_app().await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["ignored.example".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "whatever the partner asks");
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let src = std::fs::read_to_string(root().join("partner-specs/P-GYM-001.toml"))
        .unwrap()
        .replace("P-GYM-001", "P-GYM-002");
    let spec = alliance_gateway::partners::spec::parse("gym2.toml", &src).unwrap();
    onboard_with(
        &app,
        spec,
        Brought {
            public_key: None,
            csr_pem: Some(csr),
        },
    )
    .await;
    let bundle = app.settings.bundles_dir().join("P-GYM-002");
    assert!(
        !bundle.join("client.key").exists(),
        "with a CSR the gateway never holds the TLS key"
    );
    // The CA decided the identity, whatever the CSR asked for.
    let pem = std::fs::read_to_string(bundle.join("client.pem")).unwrap();
    let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let peer = alliance_gateway::auth::PeerCertificate::from_der(der.as_ref());
    assert_eq!(
        peer.identity.unwrap().urn(),
        "urn:alliance:partner:P-GYM-002"
    );
    std::fs::write(bundle.join("client.key"), key.serialize_pem()).unwrap();
    let gym = app.partner("P-GYM-002");
    assert_eq!(gym.verify_card(GOLD_CARD).await.status, 200);
}

/// The restaurant's client (signing key and all) presenting a certificate the alliance CA
/// issues now for `uri` and never registers.
fn with_unregistered_certificate(app: &TestApp, uri: &str) -> PartnerClient {
    let issued = Ca::load(&app.paths())
        .unwrap()
        .issue_client(uri, "test", None)
        .unwrap();
    let dir = app.home.path().join(format!("unregistered-{}", nonce()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("c.pem"), &issued.cert_pem).unwrap();
    std::fs::write(dir.join("c.key"), issued.key_pem.unwrap()).unwrap();
    let mut rst = app.partner("P-RST-001");
    rst.http = tls_client(
        &app.paths().ca_cert(),
        Some((&dir.join("c.pem"), &dir.join("c.key"))),
    );
    rst
}
