//! What an outside review of the running gateway tried: slow and stalled bodies, extreme
//! values in every parameter, the contract's body limits at their edges, file modes, repeated
//! headers, the upload quota and the ops listener's address.
use crate::helpers::*;
use rustls::pki_types::ServerName;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

const RST: &str = "P-RST-001";
/// How long a test waits for an answer that must come, before it fails rather than hangs.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A TLS connection with a partner's bundle, for requests written byte by byte.
async fn raw_connection(app: &TestApp, code: &str) -> Tls {
    let config = bundle_tls_config(&app.settings.bundles_dir().join(code));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap()
}

/// The request line and headers of `out`, declaring a body of `content_length` bytes.
fn head(out: &Outgoing, content_length: usize) -> Vec<u8> {
    let mut text = format!(
        "{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        out.method, out.target
    );
    for (name, value) in &out.headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!("Content-Length: {content_length}\r\n\r\n"));
    text.into_bytes()
}

/// Reads one HTTP/1.1 response (with a Content-Length) off the connection.
async fn read_response<R: AsyncRead + Unpin>(conn: &mut R) -> Response {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed before an answer");
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = text.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').unwrap();
        headers.append(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            value.trim().parse().unwrap(),
        );
    }
    let length: usize = headers["content-length"].to_str().unwrap().parse().unwrap();
    while buf.len() < head_end + length {
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed mid-answer");
        buf.extend_from_slice(&chunk[..n]);
    }
    Response {
        status,
        headers,
        body: buf[head_end..head_end + length].to_vec(),
    }
}

async fn answer<R: AsyncRead + Unpin>(conn: &mut R) -> Response {
    tokio::time::timeout(ANSWER_WITHIN, read_response(conn))
        .await
        .expect("the gateway answers instead of waiting for the rest of the body")
}

/// True when the gateway closed the connection (after its answer).
async fn closed<R: AsyncRead + Unpin>(conn: &mut R) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(ANSWER_WITHIN, conn.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn a_stalled_body_gets_408_at_the_deadline_and_its_connection_is_closed() {
    let app = spawn_app_with(|s| s.body_timeout_ms = 300).await;
    let rst = app.partner(RST);
    let body = br#"{"card_no":"8800123456"}"#;
    let out = rst.sign("POST", "/v1/members/verify", Some(body));
    let before = app.snapshot();
    let mut conn = raw_connection(&app, RST).await;
    conn.write_all(&head(&out, body.len())).await.unwrap();
    conn.write_all(&body[..10]).await.unwrap();
    conn.flush().await.unwrap();
    let res = answer(&mut conn).await;
    res.assert_problem(408, "request-timeout");
    assert_signed_by_gateway(&res, &rst.app_gateway_keys, None);
    assert!(closed(&mut conn).await, "a timed-out connection is closed");
    assert_eq!(app.snapshot(), before, "nothing written, not even a nonce");
    // The gateway serves on.
    assert_eq!(rst.verify_card(GOLD_CARD).await.status, 200);
}

#[tokio::test]
async fn a_suspended_partner_is_refused_before_its_body_arrives() {
    // A deadline far longer than the test waits: the refusal must not wait for it.
    let app = spawn_app_with(|s| s.body_timeout_ms = 600_000).await;
    let rst = app.partner(RST);
    assert_eq!(rst.verify_card(GOLD_CARD).await.status, 200);
    // Suspended by another process: this gateway's registry cache still holds the partner
    // as active.
    assert_ok(admin(&app, &["partner", "suspend", RST, "--reason", "review"]).await);
    let csv = "partner_txn_id,kind,partner_reversal_id,gross_yuan,discount_yuan,redeem_points\r\n";
    let day = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive();
    let mut out = rst.sign(
        "PUT",
        &format!("/v1/reconciliation/{day}"),
        Some(csv.as_bytes()),
    );
    out.set_header("Content-Type", "text/csv");
    let mut conn = raw_connection(&app, RST).await;
    // A 4 MiB upload declared, not a byte of it sent.
    conn.write_all(&head(&out, 4 * 1024 * 1024)).await.unwrap();
    conn.flush().await.unwrap();
    let res = answer(&mut conn).await;
    res.assert_problem(403, "partner-suspended");
    assert!(closed(&mut conn).await);
    // Now that the gateway knows of the suspension, the refusal comes before any wait.
    let mut out = rst.sign(
        "PUT",
        &format!("/v1/reconciliation/{day}"),
        Some(csv.as_bytes()),
    );
    out.set_header("Content-Type", "text/csv");
    let mut conn = raw_connection(&app, RST).await;
    conn.write_all(&head(&out, 4 * 1024 * 1024)).await.unwrap();
    conn.flush().await.unwrap();
    answer(&mut conn)
        .await
        .assert_problem(403, "partner-suspended");
    assert!(
        closed(&mut conn).await,
        "the unread body is not taken for a next request"
    );
    assert_eq!(app.count("reconciliation_uploads"), 0);
}

#[tokio::test]
async fn an_identity_sends_only_so_many_slow_bodies_at_once_and_others_are_not_held_up() {
    let app = spawn_app_with(|s| {
        s.max_slow_bodies_per_identity = 2;
        s.body_timeout_ms = 600_000;
    })
    .await;
    let rst = app.partner(RST);
    let body = br#"{"card_no":"8800123456"}"#;
    let (answers_tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
    let mut writers = Vec::new();
    for i in 0..3 {
        let out = rst.sign("POST", "/v1/members/verify", Some(body));
        let mut conn = raw_connection(&app, RST).await;
        conn.write_all(&head(&out, body.len())).await.unwrap();
        conn.write_all(&body[..10]).await.unwrap();
        conn.flush().await.unwrap();
        let (mut read, write) = tokio::io::split(conn);
        writers.push(write);
        let tx = answers_tx.clone();
        tokio::spawn(async move {
            let res = read_response(&mut read).await;
            let _ = tx.send((i, res));
        });
    }
    // Two of the three hold the partner's places, so only the third can be answered: at once,
    // with 429 and its connection closed.
    let (refused, res) = tokio::time::timeout(ANSWER_WITHIN, answers.recv())
        .await
        .expect("the third slow body is refused at once")
        .unwrap();
    res.assert_problem(429, "rate-limited");
    assert!(res.header("retry-after").is_some());
    // Another partner is not held up meanwhile.
    assert_eq!(
        app.partner("P-CIN-001").verify_card(GOLD_CARD).await.status,
        200
    );
    // The two held bodies complete, and are answered as usual.
    for (i, writer) in writers.iter_mut().enumerate() {
        if i != refused {
            writer.write_all(&body[10..]).await.unwrap();
            writer.flush().await.unwrap();
        }
    }
    for _ in 0..2 {
        let (i, res) = tokio::time::timeout(ANSWER_WITHIN, answers.recv())
            .await
            .expect("a completed body is answered")
            .unwrap();
        assert_ne!(i, refused);
        assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    }
}

#[tokio::test]
async fn repeated_single_valued_headers_are_malformed_and_write_nothing() {
    use alliance_gateway::signature::digest::content_digest;
    use alliance_gateway::signature::sign::{sign_request, RequestToSign};
    let app = spawn_app().await;
    let rst = app.partner(RST);
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let body = serde_json::to_vec(&json!({"partner_txn_id": "DUP-KEY-1", "card_no": GOLD_CARD,
        "store_id": "store-1", "occurred_at": now.to_rfc3339(), "gross_fen": 1_000,
        "discount_fen": 0, "redeem_points": 0}))
    .unwrap();
    let (a, b) = (idem(), idem());
    // Signed over the two values as a recipient joins them (RFC 9110 5.3), so the signature
    // itself verifies.
    let digest = content_digest(&body);
    let h = sign_request(
        &rst.key,
        &RequestToSign {
            method: "POST",
            path: "/v1/transactions",
            query: None,
            content_type: Some("application/json"),
            content_digest: Some(&digest),
            idempotency_key: Some(&format!("{a}, {b}")),
            key_id: &rst.key_id,
            created: chrono::Utc::now().timestamp(),
            nonce: &nonce(),
        },
    )
    .unwrap();
    let out = Outgoing {
        method: "POST".into(),
        target: "/v1/transactions".into(),
        body: body.clone(),
        headers: vec![
            ("Signature-Input".into(), h.signature_input),
            ("Signature".into(), h.signature),
            ("Content-Type".into(), "application/json".into()),
            ("Content-Digest".into(), digest.clone()),
            ("Idempotency-Key".into(), a.clone()),
            ("Idempotency-Key".into(), b),
        ],
    };
    let before = app.snapshot();
    let res = rst.send(&out).await;
    let problem = res.assert_problem(400, "malformed-request");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("idempotency-key"),
        "{problem}"
    );
    assert_eq!(app.snapshot(), before);
    assert_eq!(app.count("transactions"), 0);

    // The same for the other headers the contract reads as one value.
    for (name, value) in [
        ("Content-Type", "application/json"),
        ("Content-Digest", digest.as_str()),
        (
            "Signature-Input",
            "sig=(\"@method\");created=1;keyid=\"x\";nonce=\"0123456789abcdef\"",
        ),
        ("Signature", "sig=:AAAA:"),
    ] {
        let mut twice = rst.sign_idem("POST", "/v1/transactions", &body, &a);
        twice.headers.push((name.to_owned(), value.to_owned()));
        let res = rst.send(&twice).await;
        res.assert_problem(400, "malformed-request");
    }
    assert_eq!(app.snapshot(), before);
}

#[tokio::test]
async fn batches_and_uploads_of_4_mib_are_taken_and_one_byte_more_is_413() {
    let app = spawn_app().await;
    let rst = app.partner(RST);
    const LIMIT: usize = 4 * 1024 * 1024;
    // A batch padded with JSON whitespace to the limit exactly.
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let items: Vec<_> = (0..3)
        .map(|i| json!({"kind": "sale", "idempotency_key": format!("batch-edge-{i}"),
            "partner_txn_id": format!("EDGE-{i}"), "card_no": GOLD_CARD, "store_id": "store-1",
            "occurred_at": now.to_rfc3339(), "gross_fen": 1_000, "discount_fen": 0, "redeem_points": 0}))
        .collect();
    let compact = serde_json::to_string(&json!({ "items": items })).unwrap();
    let padded = |len: usize| {
        let mut b = compact.clone().into_bytes();
        b.resize(len, b' ');
        b
    };
    let res = rst
        .send(&rst.sign("POST", "/v1/transactions/batch", Some(&padded(LIMIT + 1))))
        .await;
    res.assert_problem(413, "payload-too-large");
    assert_eq!(app.count("transactions"), 0);
    let res = rst
        .send(&rst.sign("POST", "/v1/transactions/batch", Some(&padded(LIMIT))))
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let results = res.json()["results"].as_array().unwrap().clone();
    assert!(results.iter().all(|r| r["status"] == 201), "{results:?}");

    // A day of records of a busy partner: rows up to the limit exactly.
    let day = now.date_naive().to_string();
    let header =
        "partner_txn_id,kind,partner_reversal_id,gross_yuan,discount_yuan,redeem_points\r\n";
    let mut csv = String::from(header);
    let mut i = 0;
    // Rows of 32 bytes while at least three more fit, then two whose ids take up the rest.
    while LIMIT - csv.len() >= 96 + 32 {
        csv.push_str(&format!("UP-{i:08},sale,,10.00,0.00,0\r\n"));
        i += 1;
    }
    let fixed = ",sale,,10.00,0.00,0\r\n".len();
    let ids = LIMIT - csv.len() - 2 * fixed;
    csv.push_str(&format!(
        "{}{fixed_row}",
        "Y".repeat(ids / 2),
        fixed_row = ",sale,,10.00,0.00,0\r\n"
    ));
    csv.push_str(&format!(
        "{}{fixed_row}",
        "Z".repeat(ids - ids / 2),
        fixed_row = ",sale,,10.00,0.00,0\r\n"
    ));
    assert_eq!(csv.len(), LIMIT);
    let over = format!("{csv} ");
    upload(&rst, &day, &over)
        .await
        .assert_problem(413, "payload-too-large");
    assert_eq!(app.count("reconciliation_uploads"), 0);
    let res = upload(&rst, &day, &csv).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert!(res.json()["rows"].as_u64().unwrap() > 100_000);
}

#[tokio::test]
async fn a_partners_uploads_are_bounded_per_day_and_nothing_is_stored_past_the_quota() {
    let app = spawn_app_with(|s| s.uploads_per_partner_per_day = 2).await;
    let rst = app.partner(RST);
    let day = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive()
        .to_string();
    let csv = "partner_txn_id,kind,partner_reversal_id,gross_yuan,discount_yuan,redeem_points\r\nQ-1,sale,,1.00,0.00,0\r\n";
    for _ in 0..2 {
        assert_eq!(upload(&rst, &day, csv).await.status, 200);
    }
    let res = upload(&rst, &day, csv).await;
    let problem = res.assert_problem(422, "upload-quota-exceeded");
    assert!(
        problem["detail"].as_str().unwrap().contains("2 uploads"),
        "{problem}"
    );
    assert_eq!(app.count("reconciliation_uploads"), 2);
    // Another partner has a quota of its own.
    let cin = app.partner("P-CIN-001");
    assert_eq!(upload(&cin, &day, csv).await.status, 200);
}

#[tokio::test]
async fn uploaded_bytes_are_bounded_per_day_too() {
    let app = spawn_app_with(|s| s.upload_bytes_per_partner_per_day = 4 * 1024 * 1024).await;
    let rst = app.partner(RST);
    let day = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive()
        .to_string();
    let mut csv = String::from(
        "partner_txn_id,kind,partner_reversal_id,gross_yuan,discount_yuan,redeem_points\r\n",
    );
    let mut i = 0;
    while csv.len() < 3 * 1024 * 1024 {
        csv.push_str(&format!("B-{i:08},sale,,1.00,0.00,0\r\n"));
        i += 1;
    }
    assert_eq!(upload(&rst, &day, &csv).await.status, 200);
    upload(&rst, &day, &csv)
        .await
        .assert_problem(422, "upload-quota-exceeded");
    assert_eq!(app.count("reconciliation_uploads"), 1);
}

#[tokio::test]
async fn the_database_statements_and_bundles_are_private_to_the_service() {
    let app = spawn_app().await;
    let rst = app.partner(RST);
    assert_eq!(rst.verify_card(GOLD_CARD).await.status, 200);
    assert_ok(admin(&app, &["finance", "add", "fin"]).await);
    // A sale of yesterday, so that yesterday is a business day with a statement.
    let day_ago =
        chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai) - chrono::TimeDelta::days(1);
    let yesterday = day_ago.date_naive();
    let sale = json!({"partner_txn_id": "MODE-1", "card_no": GOLD_CARD, "store_id": "store-1",
        "occurred_at": day_ago.to_rfc3339(), "gross_fen": 1_000, "discount_fen": 0, "redeem_points": 0});
    assert_eq!(
        rst.post_idem("/v1/transactions", &sale, &idem())
            .await
            .status,
        201
    );
    assert_ok(admin(&app, &["settle", &yesterday.to_string()]).await);
    let mut roots = vec![
        app.settings.certs_dir(),
        app.settings.bundles_dir(),
        app.settings.statements_dir(),
        app.settings.data_dir(),
    ];
    if let alliance_gateway::config::DatabaseUrl::Sqlite(db) = &app.settings.database {
        for name in ["alliance.db", "alliance.db-wal", "alliance.db-shm"] {
            let file = db.with_file_name(name);
            assert!(file.exists(), "{}", file.display());
            roots.push(file);
        }
    }
    let mut seen = 0;
    let mut stack = roots.clone();
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        seen += 1;
    }
    assert!(seen > 20, "{seen} entries checked");
    assert!(app
        .settings
        .statements_dir()
        .join(yesterday.to_string())
        .join("v1/summary.csv")
        .exists());
    assert!(alliance_gateway::pki::files::loose_modes(&roots).is_empty());
}

#[tokio::test]
async fn serve_warns_about_files_others_may_read_and_refuses_a_public_ops_listener() {
    let app = spawn_app().await;
    let loose = app.settings.bundles_dir().join(RST).join("partner.json");
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let serve = |ops: &str, danger: Option<&str>| {
        let mut cmd = cli(&app);
        cmd.args(["serve"])
            .env("ALLIANCE_LISTEN", "127.0.0.1:0")
            .env("ALLIANCE_OPS_LISTEN", ops)
            .env("ALLIANCE_SETTLEMENT_ENABLED", "false")
            .env("ALLIANCE_LOG_FORMAT", "json")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(d) = danger {
            cmd.env("ALLIANCE_DANGER_OPS_LISTEN_NON_LOOPBACK", d);
        }
        cmd.spawn().unwrap()
    };
    // Until the gateway says it listens: the lines it wrote, or why it stopped.
    let lines_until_listening = |child: &mut std::process::Child| -> String {
        use std::io::BufRead;
        // The log goes to stderr.
        let out = child.stderr.take().unwrap();
        let mut seen = String::new();
        for line in std::io::BufReader::new(out).lines() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("gateway listening") {
                break;
            }
        }
        seen
    };
    let mut child = serve("127.0.0.1:0", None);
    let seen = tokio::task::spawn_blocking(move || {
        let seen = lines_until_listening(&mut child);
        let _ = child.kill();
        let _ = child.wait();
        seen
    })
    .await
    .unwrap();
    let warning = seen
        .lines()
        .find(|l| l.contains("others may read or write"))
        .unwrap_or_else(|| panic!("no warning in:\n{seen}"));
    assert!(warning.contains("partner.json"), "{warning}");
    assert!(warning.contains("\"644\""), "{warning}");

    let refused = serve("0.0.0.0:0", None).wait_with_output().unwrap();
    assert_ne!(refused.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("ALLIANCE_OPS_LISTEN"), "{stderr}");
    assert!(
        stderr.contains("ALLIANCE_DANGER_OPS_LISTEN_NON_LOOPBACK"),
        "{stderr}"
    );

    let mut allowed = serve("0.0.0.0:0", Some("true"));
    let seen = tokio::task::spawn_blocking(move || {
        let seen = lines_until_listening(&mut allowed);
        let _ = allowed.kill();
        let _ = allowed.wait();
        seen
    })
    .await
    .unwrap();
    assert!(seen.contains("gateway listening"), "{seen}");
}

#[tokio::test]
async fn a_redemption_with_a_token_of_another_form_needs_member_authentication() {
    let app = spawn_app().await;
    let rst = app.partner(RST);
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let sale = |id: &str, token: &str| {
        json!({"partner_txn_id": id, "card_no": GOLD_CARD, "store_id": "store-1",
            "occurred_at": now.to_rfc3339(), "gross_fen": 10_000, "discount_fen": 0,
            "redeem_points": 100, "member_token": token})
    };
    let before = app.snapshot();
    for (i, token) in ["1234-5678", "12", "令牌令牌令牌", &"9".repeat(200)]
        .into_iter()
        .enumerate()
    {
        let res = rst
            .post_idem(
                "/v1/transactions",
                &sale(&format!("TOK-{i}"), token),
                &idem(),
            )
            .await;
        res.assert_problem(422, "member-authentication-required");
    }
    assert_eq!(app.count("transactions"), 0);
    assert_eq!(
        app.snapshot()[2..],
        before[2..],
        "no ledger entry, no member change"
    );
}

/// Values far outside anything a caller means: dates chrono can barely hold, numbers past i64,
/// text that is no number, long and odd strings.
const EXTREMES: [&str; 19] = [
    "-262143-01-20",
    "+262143-12-31",
    "262143-12-31",
    "0000-01-01",
    "1999-12-31",
    "3000-01-01",
    "9999-12-31",
    "2026-02-30",
    "99999999999999999999",
    "-9223372036854775808",
    "9223372036854775807",
    "-1",
    "0",
    "1e308",
    "NaN",
    "%00",
    "%FF%FE",
    "",
    "x",
];

/// An answer (the connection was not dropped), signed, and no 5xx; a problem if it refuses.
/// For fields where some of the values are fine (an identifier `0`, a reason `x`).
#[track_caller]
fn assert_answered(res: &Response, what: &str) {
    assert!(
        res.status < 500,
        "{what}: {} {}",
        res.status,
        String::from_utf8_lossy(&res.body)
    );
    assert!(res.header("signature").is_some(), "{what}");
    if res.status >= 400 {
        assert_refused(res, what);
    }
}

/// Every answer is a signed 4xx problem: never a 500, never a dropped connection.
#[track_caller]
fn assert_refused(res: &Response, what: &str) {
    assert!(
        (400..500).contains(&res.status),
        "{what}: {} {}",
        res.status,
        String::from_utf8_lossy(&res.body)
    );
    assert_eq!(
        res.header("content-type"),
        Some("application/problem+json"),
        "{what}"
    );
    assert!(res.header("signature").is_some(), "{what}");
}

#[tokio::test]
async fn extreme_values_in_every_parameter_of_every_route_get_a_4xx_problem() {
    // About 1,500 requests in a few seconds: past the default rate limit, which would answer
    // 429 before a parameter is looked at.
    let app = spawn_app_with(|s| {
        s.rate_limit_per_second = 1_000_000;
        s.rate_limit_burst = 1_000_000;
    })
    .await;
    assert_ok(admin(&app, &["finance", "add", "fin"]).await);
    let rst = app.partner(RST);
    let mall = app.partner("MALL");
    let fin = app.finance("fin");
    let long = "9".repeat(3000);
    let mut values: Vec<String> = EXTREMES.iter().map(|v| v.to_string()).collect();
    values.push(long.clone());
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let sale = rst
        .post_idem(
            "/v1/transactions",
            &json!({"partner_txn_id": "X-1", "card_no": GOLD_CARD, "store_id": "store-1",
                "occurred_at": now.to_rfc3339(), "gross_fen": 10_000, "discount_fen": 0,
                "redeem_points": 0}),
            &idem(),
        )
        .await;
    assert_eq!(sale.status, 201);
    let txn_id = sale.json()["txn_id"].as_str().unwrap().to_owned();

    for v in &values {
        // Dates and numbers in query strings and paths (the routes' own parameters).
        let gets = [
            format!("/v1/transactions?business_date={v}"),
            format!("/v1/transactions?business_date=2026-12-01&limit={v}"),
            format!("/v1/transactions?business_date=2026-12-01&cursor={v}"),
            format!("/v1/transactions/{v}"),
            format!("/v1/statements?from={v}&to=2026-12-01"),
            format!("/v1/statements?from=2026-12-01&to={v}"),
            format!("/v1/statements/{v}"),
            format!("/v1/statements/2026-12-01?version={v}"),
            format!("/v1/statements/{v}/manifest"),
            format!("/v1/statements/2026-12-01/manifest?version={v}"),
            format!("/v1/statements/{v}/discrepancies"),
            format!("/v1/statements/2026-12-01/discrepancies?version={v}"),
        ];
        for target in &gets {
            if target.contains("cursor=")
                && v.bytes().all(|b| b.is_ascii_alphanumeric())
                && v.len() <= 64
            {
                continue; // a well-formed cursor that names nothing: an empty page
            }
            assert_refused(&rst.get(target).await, target);
        }
        let finance_gets = [
            format!("/v1/finance/settlements?to={v}"),
            format!("/v1/finance/settlements?from={v}"),
            format!("/v1/finance/settlements?from={v}&to={v}"),
            format!("/v1/finance/settlements/{v}/summary.csv"),
            format!("/v1/finance/settlements/2026-12-01/summary.csv?version={v}"),
            format!("/v1/finance/settlements/{v}/discrepancies.csv"),
            format!("/v1/finance/settlements/{v}/manifest"),
            format!("/v1/finance/settlements/{v}/partners/P-RST-001.csv"),
            format!("/v1/finance/settlements/2026-12-01/partners/{v}.csv"),
        ];
        for target in &finance_gets {
            assert_refused(&fin.get(target).await, target);
        }
        let res = fin
            .send(&fin.sign("POST", &format!("/v1/finance/settlements/{v}/rerun"), None))
            .await;
        assert_refused(&res, &format!("rerun {v}"));
        let csv =
            "partner_txn_id,kind,partner_reversal_id,gross_yuan,discount_yuan,redeem_points\r\n";
        assert_refused(&upload(&rst, v, csv).await, &format!("upload for {v}"));
        let row = format!("{csv}A-1,sale,,{v},{v},{v}\r\n");
        assert_refused(
            &upload(&rst, &now.date_naive().to_string(), &row).await,
            &format!("row {v}"),
        );

        // The same values in every field of the JSON bodies, as strings and as raw JSON, and
        // with a NUL byte (which PostgreSQL refuses in text) inside.
        let raw: serde_json::Value = serde_json::from_str(v).unwrap_or(json!(v));
        for value in [json!(v), raw, json!(format!("{v}\u{0}"))] {
            for field in ["card_no", "phone", "member_ref"] {
                let res = rst
                    .post_json("/v1/members/verify", &json!({ field: value }))
                    .await;
                assert_refused(&res, &format!("verify {field}={value}"));
            }
            let res = mall
                .post_json("/v1/member-tokens", &json!({ "card_no": value }))
                .await;
            assert_refused(&res, &format!("token card_no={value}"));
            let good = json!({"partner_txn_id": "X-2", "card_no": GOLD_CARD, "store_id": "store-1",
                "occurred_at": now.to_rfc3339(), "gross_fen": 10_000, "discount_fen": 0,
                "redeem_points": 0});
            for field in [
                "partner_txn_id",
                "card_no",
                "store_id",
                "occurred_at",
                "gross_fen",
                "discount_fen",
                "redeem_points",
            ] {
                let mut body = good.clone();
                body[field] = value.clone();
                let res = rst.post_idem("/v1/transactions", &body, &idem()).await;
                let what = format!("sale {field}={value}");
                // Some values are good identifiers; every other field must refuse them all.
                if ["partner_txn_id", "store_id"].contains(&field) {
                    assert_answered(&res, &what);
                } else {
                    assert_refused(&res, &what);
                }
                let mut item = body.clone();
                item["kind"] = json!("sale");
                item["idempotency_key"] = json!(idem());
                let res = rst
                    .post_json("/v1/transactions/batch", &json!({ "items": [item] }))
                    .await;
                if res.status == 200 {
                    let item = &res.json()["results"][0];
                    let status = item["status"].as_u64().unwrap();
                    let fine = ["partner_txn_id", "store_id"].contains(&field) && status < 500;
                    assert!(
                        fine || (400..500).contains(&status),
                        "batch {field}={value}: {item}"
                    );
                } else {
                    assert_refused(&res, &format!("batch {field}={value}"));
                }
            }
            let good = json!({"partner_reversal_id": "R-X", "gross_fen": 100, "reason": "r",
                "occurred_at": now.to_rfc3339()});
            for field in ["partner_reversal_id", "gross_fen", "reason", "occurred_at"] {
                let mut body = good.clone();
                body[field] = value.clone();
                let res = rst
                    .post_idem(
                        &format!("/v1/transactions/{txn_id}/reversals"),
                        &body,
                        &idem(),
                    )
                    .await;
                let what = format!("reversal {field}={value}");
                // "0", "x" and the like are fine reasons and reversal ids.
                if ["partner_reversal_id", "reason"].contains(&field) {
                    assert_answered(&res, &what);
                } else {
                    assert_refused(&res, &what);
                }
            }
        }
    }
    // The gateway is whole: it still answers, and the ledger still sums to zero.
    assert_eq!(rst.verify_card(GOLD_CARD).await.status, 200);
    assert_eq!(app.ledger_total(), 0);
}

/// With the default home (`.`), `certs/` and `data/` come from the checkout, 0755 with a
/// README each: `init` makes them private, and the READMEs are not taken for loose secrets.
#[tokio::test]
async fn init_makes_the_checkouts_certs_and_data_directories_private() {
    let home = tempfile::tempdir().unwrap();
    for dir in ["certs", "data"] {
        let d = home.path().join(dir);
        std::fs::create_dir(&d).unwrap();
        std::fs::copy(root().join(dir).join("README.md"), d.join("README.md")).unwrap();
        std::fs::copy(root().join(dir).join(".gitignore"), d.join(".gitignore")).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(d.join("README.md"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_alliance-gateway"))
        .arg("init")
        .env("ALLIANCE_HOME", home.path())
        .env_remove("ALLIANCE_DATABASE_URL")
        .env_remove("ALLIANCE_CA_DIR")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let roots = [home.path().join("certs"), home.path().join("data")];
    for dir in &roots {
        let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }
    assert!(home.path().join("certs/ca.key").exists());
    assert!(home.path().join("data/alliance.db").exists());
    assert_eq!(alliance_gateway::pki::files::loose_modes(&roots), vec![]);
}
