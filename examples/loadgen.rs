//! Load generator for `scripts/bench.sh`: signed `POST /v1/members/verify` requests over mTLS
//! from a partner bundle, either on kept-alive connections or one new connection (and a full
//! TLS handshake, resumption off) per request. Prints one JSON line of results.
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
}

fn args() -> Args {
    let mut a = Args {
        bundle: PathBuf::from("demo/bundles/P-RST-001"),
        url: "https://127.0.0.1:8443".into(),
        concurrency: 16,
        seconds: 20,
        handshake: false,
        card: "8800123456".into(),
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
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn client(a: &Args) -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(a.bundle.join("ca.pem")).expect("ca.pem") {
        roots.add(c.expect("ca.pem")).expect("CA");
    }
    let chain: Vec<_> = CertificateDer::pem_file_iter(a.bundle.join("client.pem"))
        .expect("client.pem")
        .map(|c| c.expect("client.pem"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(a.bundle.join("client.key")).expect("client.key");
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client certificate");
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

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let a = args();
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(a.bundle.join("partner.json")).expect("partner.json"),
    )
    .expect("partner.json");
    let key_id = json["key_id"].as_str().expect("key_id").to_owned();
    let key = Arc::new(
        PrivateKey::from_pkcs8_pem(
            &std::fs::read_to_string(a.bundle.join("signing.key")).expect("signing.key"),
        )
        .expect("signing key"),
    );
    let body = format!("{{\"card_no\":\"{}\"}}", a.card);
    let digest = content_digest(body.as_bytes());
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let started = Instant::now();
    // Nonces must never repeat, across runs too: prefix them with this run's random id.
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let mut tasks = Vec::new();
    for worker in 0..a.concurrency {
        // One client per worker: its own connection, so concurrency = connections.
        let http = client(&a);
        let (key, key_id, body, digest, url, run_id) = (
            key.clone(),
            key_id.clone(),
            body.clone(),
            digest.clone(),
            a.url.clone(),
            run_id.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies_us: Vec<u32> = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let nonce = format!("{run_id}-{worker}-{n}");
                let signed = sign_request(
                    &key,
                    &RequestToSign {
                        method: "POST",
                        path: "/v1/members/verify",
                        query: None,
                        content_type: Some("application/json"),
                        content_digest: Some(&digest),
                        idempotency_key: None,
                        key_id: &key_id,
                        created: chrono::Utc::now().timestamp(),
                        nonce: &nonce,
                    },
                )
                .expect("sign");
                let t0 = Instant::now();
                let res = http
                    .post(format!("{url}/v1/members/verify"))
                    .header("content-type", "application/json")
                    .header("content-digest", &digest)
                    .header("signature-input", signed.signature_input)
                    .header("signature", signed.signature)
                    .body(body.clone())
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies_us
                            .push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                    }
                    Ok(r) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!(
                                "status {}: {}",
                                r.status(),
                                r.text().await.unwrap_or_default()
                            );
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
            (latencies_us, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("worker");
        all.extend(l);
        errors += e;
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
            "mode": if a.handshake { "handshake-per-request" } else { "keep-alive" },
            "concurrency": a.concurrency,
            "seconds": elapsed,
            "ok": all.len(),
            "errors": errors,
            "requests_per_s": (all.len() as f64 / elapsed).round(),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": pct(1.0),
        })
    );
}
