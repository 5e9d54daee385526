//! Load generator for `scripts/bench.sh`: signed requests over mTLS from a partner bundle,
//! either on kept-alive connections or one new connection (and a full TLS handshake,
//! resumption off) per request. Prints one JSON line of results.
//!
//! `--mode verify` (default) loads `POST /v1/members/verify`; `--mode record` loads
//! `POST /v1/transactions`, each request with its own Idempotency-Key, partner_txn_id and
//! member (cards `<prefix><8 digits>` from 0 to `--members`), and `--redeem-pct` of them
//! redemptions with a member token fetched from the `--mall` bundle first (not timed).
//!
//! cargo run --release --example loadgen -- --bundle demo/bundles/P-RST-001 \
//!     --url https://127.0.0.1:8443 --concurrency 64 --seconds 20 [--handshake]
use alliance_gateway::pki::keys::PrivateKey;
use alliance_gateway::signature::digest::content_digest;
use alliance_gateway::signature::sign::{sign_request, RequestToSign};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    bundle: PathBuf,
    url: String,
    concurrency: usize,
    seconds: u64,
    handshake: bool,
    card: String,
    record: bool,
    mall: Option<PathBuf>,
    members: u64,
    card_prefix: String,
    redeem_pct: u64,
    /// Do not check the server's certificate (handshake runs): the client's own checks cost
    /// it as much CPU as the server's, so its core, not the server's, set the pace.
    danger_no_server_check: bool,
    /// Offered load in requests/s over all workers (0: as fast as answers come). Each worker
    /// sends on a fixed schedule, and latency counts from the scheduled time, so a late answer
    /// also delays (and counts against) the requests queued behind it.
    rate: f64,
    /// Print to stderr, per 100 ms of the run, the slowest answer to a request sent in it.
    timeline: bool,
    /// Talk to `examples/bare.rs`: the body signed as it is, no RFC 9421, no tokens.
    bare: bool,
}

fn args() -> Args {
    let mut a = Args {
        bundle: PathBuf::from("demo/bundles/P-RST-001"),
        url: "https://127.0.0.1:8443".into(),
        concurrency: 16,
        seconds: 20,
        handshake: false,
        card: "8800123456".into(),
        record: false,
        mall: None,
        members: 1,
        card_prefix: "77".into(),
        redeem_pct: 0,
        bare: false,
        danger_no_server_check: false,
        rate: 0.0,
        timeline: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--bundle" => a.bundle = PathBuf::from(value()),
            "--url" => a.url = value(),
            "--concurrency" => a.concurrency = value().parse().expect("--concurrency N"),
            "--seconds" => a.seconds = value().parse().expect("--seconds N"),
            "--card" => a.card = value(),
            "--handshake" => a.handshake = true,
            "--mode" => a.record = value() == "record",
            "--mall" => a.mall = Some(PathBuf::from(value())),
            "--members" => a.members = value().parse().expect("--members N"),
            "--card-prefix" => a.card_prefix = value(),
            "--redeem-pct" => a.redeem_pct = value().parse().expect("--redeem-pct N"),
            "--bare" => a.bare = true,
            "--danger-no-server-check" => a.danger_no_server_check = true,
            "--timeline" => a.timeline = true,
            "--rate" => a.rate = value().parse().expect("--rate REQUESTS_PER_S"),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// A partner's signing identity from its bundle.
struct Signer {
    key_id: String,
    key: PrivateKey,
}

fn signer(bundle: &std::path::Path) -> Signer {
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(bundle.join("partner.json")).expect("partner.json"),
    )
    .expect("partner.json");
    Signer {
        key_id: json["key_id"].as_str().expect("key_id").to_owned(),
        key: PrivateKey::from_pkcs8_pem(
            &std::fs::read_to_string(bundle.join("signing.key")).expect("signing.key"),
        )
        .expect("signing key"),
    }
}

/// One signed POST; returns the status and body.
async fn post(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    who: &Signer,
    body: String,
    nonce: &str,
    idempotency_key: Option<&str>,
) -> Result<(u16, bytes::Bytes), reqwest::Error> {
    let digest = content_digest(body.as_bytes());
    let signed = sign_request(
        &who.key,
        &RequestToSign {
            method: "POST",
            path,
            query: None,
            content_type: Some("application/json"),
            content_digest: Some(&digest),
            idempotency_key,
            key_id: &who.key_id,
            created: chrono::Utc::now().timestamp(),
            nonce,
        },
    )
    .expect("sign");
    let mut req = http
        .post(format!("{url}{path}"))
        .header("content-type", "application/json")
        .header("content-digest", &digest)
        .header("signature-input", signed.signature_input)
        .header("signature", signed.signature);
    if let Some(k) = idempotency_key {
        req = req.header("idempotency-key", k);
    }
    let res = req.body(body).send().await?;
    let status = res.status().as_u16();
    Ok((status, res.bytes().await?))
}

/// One POST to the bare reference server: the body's Ed25519 signature and an id.
async fn post_bare(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    who: &Signer,
    body: String,
    id: &str,
) -> Result<(u16, bytes::Bytes), reqwest::Error> {
    use base64::Engine;
    let sig = who.key.sign(body.as_bytes()).expect("sign");
    let res = http
        .post(format!("{url}{path}"))
        .header("content-type", "application/json")
        .header(
            "x-bare-signature",
            base64::engine::general_purpose::STANDARD.encode(sig),
        )
        .header("x-bare-id", id)
        .body(body)
        .send()
        .await?;
    let status = res.status().as_u16();
    Ok((status, res.bytes().await?))
}

fn client(a: &Args) -> reqwest::Client {
    client_for(a, &a.bundle)
}

fn client_for(a: &Args, bundle: &std::path::Path) -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(bundle.join("ca.pem")).expect("ca.pem") {
        roots.add(c.expect("ca.pem")).expect("CA");
    }
    let chain: Vec<_> = CertificateDer::pem_file_iter(bundle.join("client.pem"))
        .expect("client.pem")
        .map(|c| c.expect("client.pem"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(bundle.join("client.key")).expect("client.key");
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client certificate");
    if a.danger_no_server_check {
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(danger::AcceptAnyServer(provider_schemes())));
    }
    let mut builder = reqwest::Client::builder();
    if a.handshake {
        // A full handshake per request: no idle connections, no session resumption.
        config.resumption = rustls::client::Resumption::disabled();
        builder = builder.pool_max_idle_per_host(0);
    } else {
        builder = builder.pool_max_idle_per_host(1);
    }
    builder
        .use_preconfigured_tls(config)
        .build()
        .expect("client")
}

fn provider_schemes() -> Vec<rustls::SignatureScheme> {
    rustls::crypto::ring::default_provider()
        .signature_verification_algorithms
        .supported_schemes()
}

/// A benchmark-only server verifier that accepts any server: see `--danger-no-server-check`.
mod danger {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    pub struct AcceptAnyServer(pub Vec<SignatureScheme>);

    impl ServerCertVerifier for AcceptAnyServer {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.clone()
        }
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let a = args();
    let me = Arc::new(signer(&a.bundle));
    let mall = a
        .mall
        .as_ref()
        .map(|b| Arc::new((signer(b), client_for(&a, b))));
    let verify_body = format!("{{\"card_no\":\"{}\"}}", a.card);
    // With --rate, every worker first makes its connection (and one request, not counted)
    // during a second of warm-up, so that the schedule does not start with 64 handshakes.
    let warm_up = if a.rate > 0.0 {
        Duration::from_secs(1)
    } else {
        Duration::ZERO
    };
    let started = Instant::now() + warm_up;
    let deadline = started + Duration::from_secs(a.seconds);
    // Nonces, keys and ids must never repeat, across runs too: prefix them with a run id.
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let next_member = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let a = Arc::new(a);
    let mut tasks = Vec::new();
    for worker in 0..a.concurrency {
        // One client per worker: its own connection, so concurrency = connections.
        let http = client(&a);
        let (me, mall, a, run_id, verify_body, next_member) = (
            me.clone(),
            mall.clone(),
            a.clone(),
            run_id.clone(),
            verify_body.clone(),
            next_member.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies_us: Vec<u32> = Vec::with_capacity(1 << 16);
            // (when it was sent, ms from the start; its latency, µs), with --timeline.
            let mut sent_at: Vec<(u32, u32)> = Vec::new();
            let mut errors = 0u64;
            let mut n = 0u64;
            // With --rate, worker w's k-th request is due at start + (k + w / concurrency) * gap.
            let gap = (a.rate > 0.0).then(|| Duration::from_secs_f64(a.concurrency as f64 / a.rate));
            let mut due = started + gap.map_or(Duration::ZERO, |g| g.mul_f64(worker as f64 / a.concurrency as f64));
            let mut warming = gap.is_some();
            while Instant::now() < deadline {
                n += 1;
                if gap.is_some() && !warming {
                    tokio::time::sleep_until(due.into()).await;
                }
                let nonce = format!("{run_id}-{worker}-{n}");
                let (path, body, key) = if a.record {
                    let i = next_member.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let card = format!("{}{:08}", a.card_prefix, i % a.members.max(1));
                    let redeem = !a.bare && a.redeem_pct > 0 && i % 100 < a.redeem_pct;
                    let mut sale = serde_json::json!({
                        "partner_txn_id": nonce,
                        "card_no": card,
                        "store_id": "bench",
                        "occurred_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        "gross_fen": 10_000,
                        "discount_fen": 0,
                        "redeem_points": if redeem { 100 } else { 0 },
                    });
                    if redeem {
                        let (mall_signer, mall_http) = &**mall.as_ref().expect("--mall for redemptions");
                        let body = format!("{{\"card_no\":\"{card}\"}}");
                        match post(mall_http, &a.url, "/v1/member-tokens", mall_signer, body, &format!("{nonce}-t"), None).await {
                            Ok((201, b)) => {
                                let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
                                sale["member_token"] = v["member_token"].clone();
                            }
                            other => {
                                errors += 1;
                                if errors <= 3 {
                                    eprintln!("token: {other:?}");
                                }
                                continue;
                            }
                        }
                    }
                    ("/v1/transactions", sale.to_string(), Some(nonce.clone()))
                } else {
                    ("/v1/members/verify", verify_body.clone(), None)
                };
                let t0 = if gap.is_some() { due } else { Instant::now() };
                if let (Some(g), false) = (gap, warming) {
                    due += g;
                }
                let sent = if a.bare {
                    post_bare(&http, &a.url, path, &me, body, &nonce).await
                } else {
                    post(&http, &a.url, path, &me, body, &nonce, key.as_deref()).await
                };
                if std::mem::take(&mut warming) {
                    continue;
                }
                match sent {
                    Ok((status, _)) if (200..300).contains(&status) => {
                        let us = t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                        latencies_us.push(us);
                        if a.timeline {
                            let ms = t0.saturating_duration_since(started).as_millis() as u32;
                            sent_at.push((ms, us));
                        }
                    }
                    Ok((status, b)) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!("status {status}: {}", String::from_utf8_lossy(&b));
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!("error: {e}");
                        }
                    }
                }
            }
            (latencies_us, errors, sent_at)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    let mut timeline: std::collections::BTreeMap<u32, (u32, u32)> = Default::default();
    for t in tasks {
        let (l, e, s) = t.await.expect("worker");
        all.extend(l);
        errors += e;
        for (ms, us) in s {
            let slot = timeline.entry(ms / 100).or_default();
            slot.0 += 1;
            slot.1 = slot.1.max(us);
        }
    }
    for (slot, (n, max_us)) in &timeline {
        eprintln!(
            "t={:>6} ms  n={n:>5}  max={:>8.1} ms",
            slot * 100,
            f64::from(*max_us) / 1000.0
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let i = ((all.len() as f64 - 1.0) * p).round() as usize;
        f64::from(all[i]) / 1000.0
    };
    println!(
        "{}",
        serde_json::json!({
            "server": if a.bare { "bare reference" } else { "gateway" },
            "endpoint": if a.record { "transactions" } else { "verify" },
            "offered_rate": a.rate,
            "mode": if a.handshake { "handshake-per-request" } else { "keep-alive" },
            "concurrency": a.concurrency,
            "seconds": elapsed,
            "ok": all.len(),
            "errors": errors,
            "requests_per_s": (all.len() as f64 / elapsed).round(),
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p99_ms": pct(0.99),
            "max_ms": pct(1.0),
        })
    );
}
