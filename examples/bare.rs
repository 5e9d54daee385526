//! The bare reference server of `scripts/bench.sh`: how fast *this* machine serves the least
//! a partner-facing request could do, so that the gateway's figures can be read against the
//! issues' goals, which were set on a faster machine.
//!
//! The issues give two references measured there: "a bare actix-web + rustls server that only
//! checks an Ed25519 signature serves about 19,000 requests/s at concurrency 64" and "a bare
//! server whose requests each write 3 rows reaches about 7,500/s on SQLite (WAL,
//! synchronous=NORMAL)". This is both, built the plain way:
//! - actix-web 4, one worker; rustls 0.23 with ring and its default server settings; a client
//!   certificate required and chained to the alliance CA;
//! - every request carries `x-bare-signature`, the partner's Ed25519 signature over the body
//!   (no RFC 9421 base, no digest, no nonce), checked with ring;
//! - `--mode verify` answers `{"ok":true}`;
//! - `--mode record` also writes 3 rows in one transaction (a sale and its two ledger
//!   entries), keyed by `x-bare-id`: on SQLite through one connection behind a mutex
//!   (WAL, synchronous=NORMAL, BEGIN IMMEDIATE), on PostgreSQL through a pool of 16.
//!
//! The allocator is mimalloc, as in the gateway, so the reference is not slowed by glibc's.
//!
//! cargo run --release --example bare -- --home DIR --bundle DIR --listen 127.0.0.1:18744 \
//!     [--mode verify|record] [--db sqlite-file|postgres://…]
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use alliance_gateway::db::prepared::prepared;
use alliance_gateway::pki::keys::PublicKey;
use base64::Engine;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The three rows of one recorded request.
const TABLES: &str = "CREATE TABLE IF NOT EXISTS bare_sale (id TEXT PRIMARY KEY, amount_fen BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS bare_entry (id TEXT PRIMARY KEY, sale_id TEXT NOT NULL, points BIGINT NOT NULL);";
const INSERT_SALE: &str = "INSERT INTO bare_sale (id, amount_fen) VALUES ($1, $2)";
const INSERT_ENTRY: &str = "INSERT INTO bare_entry (id, sale_id, points) VALUES ($1 || $2, $1, $3)";

enum Store {
    None,
    Sqlite(Mutex<SqliteConnection>),
    Postgres(Pool<ConnectionManager<PgConnection>>),
}

struct State {
    partner_key: PublicKey,
    store: Store,
}

/// The three rows of one request, in the caller's transaction; a macro because diesel's
/// generic bounds for "either concrete connection" would be longer than the body.
macro_rules! write_three {
    ($c:expr, $id:expr, $amount_fen:expr) => {{
        prepared(INSERT_SALE)
            .bind::<Text, _>($id)
            .bind::<BigInt, _>($amount_fen)
            .execute($c)?;
        for (side, points) in [
            ("-member", $amount_fen / 100),
            ("-issuer", -($amount_fen / 100)),
        ] {
            prepared(INSERT_ENTRY)
                .bind::<Text, _>($id)
                .bind::<Text, _>(side)
                .bind::<BigInt, _>(points)
                .execute($c)?;
        }
        Ok(())
    }};
}

async fn handle(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let signature = req.headers().get("x-bare-signature").and_then(|v| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_bytes())
            .ok()
    });
    match signature {
        Some(sig) if state.partner_key.verify(&body, &sig) => {}
        _ => return HttpResponse::Unauthorized().finish(),
    }
    if matches!(state.store, Store::None) {
        return HttpResponse::Ok().json(serde_json::json!({ "ok": true }));
    }
    let Some(id) = req
        .headers()
        .get("x-bare-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return HttpResponse::BadRequest().finish();
    };
    let amount_fen = i64::try_from(body.len()).unwrap_or(0);
    let written = web::block(move || match &state.store {
        Store::None => Ok(()),
        Store::Sqlite(conn) => {
            let mut conn = conn.lock().map_err(|_| "poisoned".to_owned())?;
            conn.immediate_transaction::<_, diesel::result::Error, _>(|c| {
                write_three!(c, id.as_str(), amount_fen)
            })
            .map_err(|e| e.to_string())
        }
        Store::Postgres(pool) => {
            let mut conn = pool.get().map_err(|e| e.to_string())?;
            conn.transaction::<_, diesel::result::Error, _>(|c| {
                write_three!(c, id.as_str(), amount_fen)
            })
            .map_err(|e| e.to_string())
        }
    })
    .await;
    match written {
        Ok(Ok(())) => HttpResponse::Created().json(serde_json::json!({ "ok": true })),
        Ok(Err(e)) => HttpResponse::InternalServerError().body(e),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

fn tls(home: &std::path::Path) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(home.join("certs/ca.pem")).expect("certs/ca.pem") {
        roots.add(c.expect("ca.pem")).expect("CA");
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("client verifier");
    let chain: Vec<_> = CertificateDer::pem_file_iter(home.join("certs/server.pem"))
        .expect("certs/server.pem")
        .map(|c| c.expect("server.pem"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(home.join("certs/server.key")).expect("server.key");
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .expect("server certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

fn main() -> std::io::Result<()> {
    let mut home = PathBuf::from("demo");
    let mut bundle = PathBuf::from("demo/bundles/P-RST-001");
    let mut listen = "127.0.0.1:18744".to_owned();
    let mut record = false;
    let mut db: Option<String> = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--home" => home = PathBuf::from(value()),
            "--bundle" => bundle = PathBuf::from(value()),
            "--listen" => listen = value(),
            "--mode" => record = value() == "record",
            "--db" => db = Some(value()),
            other => panic!("unknown flag {other}"),
        }
    }
    let partner_key = PublicKey::from_spki_pem(
        &std::fs::read_to_string(bundle.join("signing.pub")).expect("signing.pub"),
    )
    .expect("partner public key");
    let store = match (record, db) {
        (false, _) => Store::None,
        (true, Some(url)) if url.starts_with("postgres") => {
            let pool = Pool::builder()
                .max_size(16)
                .build(ConnectionManager::<PgConnection>::new(url))
                .expect("PostgreSQL pool");
            pool.get()
                .expect("connection")
                .batch_execute(TABLES)
                .expect("tables");
            Store::Postgres(pool)
        }
        (true, db) => {
            let path = db.unwrap_or_else(|| home.join("bare.sqlite").display().to_string());
            let mut conn = SqliteConnection::establish(&path).expect("SQLite file");
            conn.batch_execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
                .expect("pragmas");
            conn.batch_execute(TABLES).expect("tables");
            Store::Sqlite(Mutex::new(conn))
        }
    };
    let state = web::Data::new(State { partner_key, store });
    let config = tls(&home);
    actix_web::rt::System::new().block_on(
        HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .default_service(web::to(handle))
        })
        .workers(1)
        .tcp_nodelay(true)
        .bind_rustls_0_23(listen, config)?
        .run(),
    )
}
