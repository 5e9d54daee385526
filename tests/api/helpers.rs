use alliance_gateway::config::{DatabaseUrl, Settings};
use alliance_gateway::db::{self, DbConn};
use alliance_gateway::pki::keys::{PrivateKey, PublicKey};
use alliance_gateway::pki::Paths;
use alliance_gateway::signature::digest::content_digest;
use alliance_gateway::signature::sign::{sign_request, RequestToSign};
use alliance_gateway::startup::Application;
use diesel::prelude::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const GOLD_CARD: &str = "8800123456";
pub const GOLD_PHONE: &str = "13800138000";
pub const FROZEN_CARD: &str = "8800123460";

pub struct TestApp {
    pub port: u16,
    pub ops_port: u16,
    pub settings: Settings,
    pub home: tempfile::TempDir,
    /// The gateway's clock: a test moves it on instead of waiting.
    pub clock: Arc<alliance_gateway::clock::SettableClock>,
    /// What the gateway's upkeep jobs run against, to run one now ([`TestApp::run_job`]).
    pub jobs: alliance_gateway::jobs::Env,
}

/// A fresh database for one test: a SQLite file in the test's home, or a new PostgreSQL
/// database on the server `ALLIANCE_TEST_DATABASE_URL` points at.
///
/// The test connections to PostgreSQL do without TLS (`sslmode=disable`, unless the URL names
/// a mode). Why: a test's gateway is never stopped; actix's acceptor and worker threads keep
/// its state (the connection pool, whose own threads open connections in the background) until
/// the test binary exits. At exit libpq's OpenSSL frees its global state while those threads
/// may still hold, or be opening, TLS connections, and now and then a CI run aborted there
/// ("free(): invalid pointer") after every test had passed. Nothing under test depends on the
/// database connection's TLS.
fn test_database(home: &Path) -> DatabaseUrl {
    match std::env::var("ALLIANCE_TEST_DATABASE_URL") {
        Ok(admin) if admin.starts_with("postgres") => {
            let mut url = url::Url::parse(&admin).expect("admin URL");
            if !url.query_pairs().any(|(k, _)| k == "sslmode") {
                url.query_pairs_mut().append_pair("sslmode", "disable");
            }
            let name = format!("alliance_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = PgConnection::establish(url.as_str())
                .expect("ALLIANCE_TEST_DATABASE_URL must be reachable");
            diesel::sql_query(format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .expect("create test database");
            url.set_path(&name);
            DatabaseUrl::Postgres(url.to_string())
        }
        _ => DatabaseUrl::Sqlite(home.join("data").join("alliance.db")),
    }
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl TestApp {
    /// Runs one of the gateway's upkeep jobs now, in its own process, as its scheduler would.
    pub async fn run_job(
        &self,
        job: alliance_gateway::jobs::Job,
    ) -> alliance_gateway::jobs::Report {
        job.run(&self.jobs).await.expect("the job runs")
    }

    pub fn conn(&self) -> DbConn {
        db::Manager::new(self.settings.database.clone())
            .connect()
            .expect("test database connection")
    }

    pub fn paths(&self) -> Paths {
        Paths::new(&self.settings)
    }

    pub fn url(&self, target: &str) -> String {
        format!("https://127.0.0.1:{}{target}", self.port)
    }

    /// A client for an onboarded partner's bundle, TLS and signing key both from the bundle.
    pub fn partner(&self, code: &str) -> PartnerClient {
        let dir = self.settings.bundles_dir().join(code);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("partner.json")).unwrap())
                .unwrap();
        let key =
            PrivateKey::from_pkcs8_pem(&std::fs::read_to_string(dir.join("signing.key")).unwrap())
                .unwrap();
        PartnerClient {
            clock: self.clock.clone(),
            http: tls_client(
                &dir.join("ca.pem"),
                Some((&dir.join("client.pem"), &dir.join("client.key"))),
            ),
            base: format!("https://127.0.0.1:{}", self.port),
            key_id: json["key_id"].as_str().unwrap().to_owned(),
            key: Arc::new(key),
            app_gateway_keys: json["gateway_keys"].clone(),
        }
    }

    pub fn count(&self, table: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.conn();
        diesel::sql_query(format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {table}"))
            .get_result::<Count>(&mut conn)
            .unwrap()
            .n
    }

    /// Everything business-visible, so a test can assert a refused request wrote nothing.
    pub fn snapshot(&self) -> Vec<i64> {
        [
            "member_refs",
            "request_nonces",
            "ledger_entries",
            "members",
            "partners",
            "audit_log",
        ]
        .iter()
        .map(|t| self.count(t))
        .collect()
    }
}

/// A plain-HTTP GET (the ops listener). reqwest is built without a default crypto provider,
/// so give it the ring one, as the gateway itself uses.
pub async fn plain_get(url: &str) -> reqwest::Response {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .build()
        .unwrap();
    client.get(url).send().await.unwrap()
}

pub fn tls_client(ca: &Path, identity: Option<(&Path, &Path)>) -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => {
            let chain: Vec<_> = CertificateDer::pem_file_iter(cert)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .build()
        .unwrap()
}

/// Starts a gateway with the sample partners and members.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like `spawn_app`, with settings adjusted first (limits, say).
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let home = tempfile::tempdir().unwrap();
    let mut settings = Settings::for_home(home.path());
    settings.listen = "127.0.0.1:0".into();
    settings.ops_listen = "127.0.0.1:0".into();
    settings.database = test_database(home.path());
    settings.db_pool_size = 4;
    configure(&mut settings);
    let settings_for_setup = settings.clone();
    tokio::task::spawn_blocking(move || setup_alliance(&settings_for_setup))
        .await
        .unwrap();
    let clock = alliance_gateway::clock::SettableClock::new();
    let app = Application::build_with_clock(settings.clone(), clock.clone())
        .await
        .expect("gateway starts");
    let (port, ops_port, jobs) = (app.port(), app.ops_port(), app.jobs());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        port,
        ops_port,
        settings,
        home,
        clock,
        jobs,
    }
}

fn setup_alliance(settings: &Settings) {
    let mut conn = db::Manager::new(settings.database.clone())
        .connect()
        .unwrap();
    alliance_gateway::alliance::init(settings, &mut conn, "Test Alliance", false).unwrap();
    let paths = Paths::new(settings);
    let ca = alliance_gateway::pki::ca::Ca::load(&paths).unwrap();
    let today = alliance_gateway::alliance::business_day(chrono::Utc::now(), settings.timezone);
    for spec in ["P-RST-001", "P-CIN-001", "P-GYM-001", "MALL"] {
        let path = root().join("partner-specs").join(format!("{spec}.toml"));
        let parsed = alliance_gateway::partners::spec::parse(
            &path.display().to_string(),
            &std::fs::read_to_string(&path).unwrap(),
        )
        .unwrap();
        alliance_gateway::partners::onboard::onboard(
            settings,
            &mut conn,
            Some(&ca),
            &parsed,
            Default::default(),
            today,
        )
        .unwrap();
    }
    let keys = alliance_gateway::pki::secrets::MemberKeys::load(&paths).unwrap();
    let csv = std::fs::read(root().join("examples/data/members.csv")).unwrap();
    let report = alliance_gateway::members::import::import(&mut conn, &keys, &csv, &()).unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
}

pub struct PartnerClient {
    /// The gateway's clock: requests are signed at its time.
    pub clock: Arc<alliance_gateway::clock::SettableClock>,
    pub http: reqwest::Client,
    pub base: String,
    pub key_id: String,
    pub key: Arc<PrivateKey>,
    pub app_gateway_keys: serde_json::Value,
}

/// A request about to be sent, with its signature headers, so tests can tamper with any part.
#[derive(Clone)]
pub struct Outgoing {
    pub method: String,
    pub target: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Outgoing {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

pub fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Signs a request the way a partner does, with `key` under `key_id`, at `created`.
pub fn sign_with(
    key: &PrivateKey,
    key_id: &str,
    method: &str,
    target: &str,
    body: Option<&[u8]>,
    created: i64,
) -> Outgoing {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let digest = body.map(content_digest);
    let nonce = nonce();
    let h = sign_request(
        key,
        &RequestToSign {
            method,
            path,
            query,
            content_type: body.map(|_| "application/json"),
            content_digest: digest.as_deref(),
            idempotency_key: None,
            key_id,
            created,
            nonce: &nonce,
        },
    )
    .unwrap();
    let mut headers = vec![
        ("Signature-Input".to_owned(), h.signature_input),
        ("Signature".to_owned(), h.signature),
    ];
    if let Some(d) = digest {
        headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
        headers.push(("Content-Digest".to_owned(), d));
    }
    Outgoing {
        method: method.to_owned(),
        target: target.to_owned(),
        body: body.unwrap_or_default().to_vec(),
        headers,
    }
}

pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json with this status and code, and returns its body.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) -> serde_json::Value {
        let body = self.json();
        assert_eq!(
            (self.status, body["code"].as_str().unwrap_or("")),
            (status, code),
            "{body}"
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(body["type"], format!("urn:alliance:problem:{code}"));
        assert_eq!(body["status"], status);
        assert!(
            !body["request_id"].as_str().unwrap_or("").is_empty(),
            "problem has a request_id"
        );
        assert_eq!(body["request_id"].as_str(), self.header("x-request-id"));
        body
    }
}

impl PartnerClient {
    pub fn sign(&self, method: &str, target: &str, body: Option<&[u8]>) -> Outgoing {
        sign_with(
            &self.key,
            &self.key_id,
            method,
            target,
            body,
            alliance_gateway::clock::Clock::now(&*self.clock).timestamp(),
        )
    }

    pub async fn send(&self, out: &Outgoing) -> Response {
        let method = reqwest::Method::from_bytes(out.method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, out.target));
        for (n, v) in &out.headers {
            req = req.header(n, v);
        }
        if !out.body.is_empty() {
            req = req.body(out.body.clone());
        }
        let res = req.send().await.expect("request reaches the gateway");
        Response {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: res.bytes().await.unwrap().to_vec(),
        }
    }

    pub async fn post_json(&self, target: &str, body: &serde_json::Value) -> Response {
        let bytes = serde_json::to_vec(body).unwrap();
        self.send(&self.sign("POST", target, Some(&bytes))).await
    }

    pub async fn verify_card(&self, card: &str) -> Response {
        self.post_json(
            "/v1/members/verify",
            &serde_json::json!({ "card_no": card }),
        )
        .await
    }
}

/// Checks the gateway's response signature with an independent rebuild of the base: the
/// Content-Digest matches the body, and the signature verifies under the JWKS key, bound to
/// `request` (the request's Signature header value) when given.
#[track_caller]
pub fn assert_signed_by_gateway(
    res: &Response,
    jwks: &serde_json::Value,
    request_signature: Option<&str>,
) {
    use base64::Engine;
    let digest = res.header("content-digest").expect("Content-Digest");
    assert_eq!(digest, content_digest(&res.body));
    let input = res.header("signature-input").expect("Signature-Input");
    let sig = res.header("signature").expect("Signature");
    let params = input.strip_prefix("sig=").expect("labelled sig");
    let keyid = params
        .split("keyid=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == keyid)
        .expect("key in JWKS");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwk["x"].as_str().unwrap())
        .unwrap();
    let public = PublicKey::new(alliance_gateway::pki::keys::Alg::Ed25519, raw).unwrap();
    let mut base = format!(
        "\"@status\": {}\n\"content-type\": {}\n\"content-digest\": {}\n",
        res.status,
        res.header("content-type").unwrap(),
        digest
    );
    match request_signature {
        Some(req_sig) => {
            assert!(params.contains("\"signature\";req;key=\"sig\""), "{params}");
            let value = req_sig.strip_prefix("sig=").unwrap();
            base.push_str(&format!("\"signature\";req;key=\"sig\": {value}\n"));
        }
        None => assert!(!params.contains("\"signature\""), "{params}"),
    }
    base.push_str(&format!("\"@signature-params\": {params}"));
    let sig_b64 = sig
        .strip_prefix("sig=:")
        .and_then(|s| s.strip_suffix(':'))
        .unwrap();
    let sig_bytes = base64::engine::general_purpose::STANDARD
        .decode(sig_b64)
        .unwrap();
    assert!(
        public.verify(base.as_bytes(), &sig_bytes),
        "gateway signature does not verify over:\n{base}"
    );
}

/// Onboards one more partner from a parsed spec, as `onboard-partner` does.
pub async fn onboard_with(
    app: &TestApp,
    spec: alliance_gateway::partners::spec::PartnerSpec,
    brought: alliance_gateway::partners::onboard::Brought,
) {
    let settings = app.settings.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = db::Manager::new(settings.database.clone())
            .connect()
            .unwrap();
        let ca = alliance_gateway::pki::ca::Ca::load(&Paths::new(&settings)).unwrap();
        let today = alliance_gateway::alliance::business_day(chrono::Utc::now(), settings.timezone);
        alliance_gateway::partners::onboard::onboard(
            &settings,
            &mut conn,
            Some(&ca),
            &spec,
            brought,
            today,
        )
        .unwrap();
    })
    .await
    .unwrap();
}

/// The real `alliance-gateway` binary, pointed at this test's alliance.
pub fn cli(app: &TestApp) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_alliance-gateway"));
    cmd.env("ALLIANCE_HOME", app.home.path());
    let url = match &app.settings.database {
        DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
        DatabaseUrl::Postgres(u) => u.clone(),
    };
    cmd.env("ALLIANCE_DATABASE_URL", url);
    cmd.env_remove("ALLIANCE_P12_PASSWORD");
    cmd
}

/// Runs an admin command as an admin at a shell would, off the async workers; returns
/// (exit code, stdout, stderr).
pub async fn admin(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let mut cmd = cli(app);
    cmd.args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Like `admin`, and asserts it succeeded; returns stdout.
#[track_caller]
pub fn assert_ok(outcome: (i32, String, String)) -> String {
    assert_eq!(outcome.0, 0, "stdout: {}\nstderr: {}", outcome.1, outcome.2);
    outcome.1
}

impl TestApp {
    /// A client with explicit TLS files and signing key: for old certificates and keys that
    /// a renewal or rotation moved aside in the bundle.
    pub fn client_with(
        &self,
        dir: &Path,
        cert: &str,
        tls_key: &str,
        key_id: &str,
        signing_key: &str,
    ) -> PartnerClient {
        let key =
            PrivateKey::from_pkcs8_pem(&std::fs::read_to_string(dir.join(signing_key)).unwrap())
                .unwrap();
        PartnerClient {
            clock: self.clock.clone(),
            http: tls_client(
                &dir.join("ca.pem"),
                Some((&dir.join(cert), &dir.join(tls_key))),
            ),
            base: format!("https://127.0.0.1:{}", self.port),
            key_id: key_id.to_owned(),
            key: Arc::new(key),
            app_gateway_keys: serde_json::Value::Null,
        }
    }

    /// A client for a finance user's bundle (`bundles/finance/<NAME>/`).
    pub fn finance(&self, name: &str) -> PartnerClient {
        let dir = self.settings.bundles_dir().join("finance").join(name);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("finance.json")).unwrap())
                .unwrap();
        self.client_with(
            &dir,
            "client.pem",
            "client.key",
            json["key_id"].as_str().unwrap(),
            "signing.key",
        )
    }

    /// The first (onboarding) certificate serial of a partner.
    pub fn serials(&self, urn: &str) -> Vec<String> {
        let mut conn = self.conn();
        alliance_gateway::db::certificates::Certificate::for_identity(&mut conn, urn)
            .unwrap()
            .into_iter()
            .map(|c| c.serial_hex)
            .collect()
    }
}

impl PartnerClient {
    /// A signed request carrying an Idempotency-Key (covered by the signature).
    pub fn sign_idem(&self, method: &str, target: &str, body: &[u8], key: &str) -> Outgoing {
        let digest = content_digest(body);
        let nonce = nonce();
        let h = sign_request(
            &self.key,
            &RequestToSign {
                method,
                path: target,
                query: None,
                content_type: Some("application/json"),
                content_digest: Some(&digest),
                idempotency_key: Some(key),
                key_id: &self.key_id,
                created: alliance_gateway::clock::Clock::now(&*self.clock).timestamp(),
                nonce: &nonce,
            },
        )
        .unwrap();
        Outgoing {
            method: method.to_owned(),
            target: target.to_owned(),
            body: body.to_vec(),
            headers: vec![
                ("Signature-Input".to_owned(), h.signature_input),
                ("Signature".to_owned(), h.signature),
                ("Content-Type".to_owned(), "application/json".to_owned()),
                ("Content-Digest".to_owned(), digest),
                ("Idempotency-Key".to_owned(), key.to_owned()),
            ],
        }
    }

    /// POST a JSON body with an Idempotency-Key.
    pub async fn post_idem(&self, target: &str, body: &serde_json::Value, key: &str) -> Response {
        let bytes = serde_json::to_vec(body).unwrap();
        self.send(&self.sign_idem("POST", target, &bytes, key))
            .await
    }

    pub async fn get(&self, target: &str) -> Response {
        self.send(&self.sign("GET", target, None)).await
    }
}

/// A fresh idempotency key.
pub fn idem() -> String {
    format!("k-{}", uuid::Uuid::new_v4().simple())
}

impl TestApp {
    /// The sum of every ledger entry (zero unless the ledger is broken) and a member's balance.
    pub fn ledger_total(&self) -> i64 {
        alliance_gateway::db::ledger::Ledger::total(&mut self.conn()).unwrap()
    }

    pub fn balance_of_card(&self, card: &str) -> i64 {
        let mut conn = self.conn();
        let m = alliance_gateway::db::members::Member::find_by_card(&mut conn, card)
            .unwrap()
            .unwrap();
        alliance_gateway::db::ledger::Ledger::balance(&mut conn, m.id).unwrap()
    }
}

/// A signed `PUT /v1/reconciliation/{day}` with a CSV body.
pub async fn upload(client: &PartnerClient, day: &str, csv: &str) -> Response {
    use alliance_gateway::signature::digest::content_digest;
    use alliance_gateway::signature::sign::{sign_request, RequestToSign};
    let path = format!("/v1/reconciliation/{day}");
    let digest = content_digest(csv.as_bytes());
    let nonce = nonce();
    let h = sign_request(
        &client.key,
        &RequestToSign {
            method: "PUT",
            path: &path,
            query: None,
            content_type: Some("text/csv"),
            content_digest: Some(&digest),
            idempotency_key: None,
            key_id: &client.key_id,
            created: alliance_gateway::clock::Clock::now(&*client.clock).timestamp(),
            nonce: &nonce,
        },
    )
    .unwrap();
    client
        .send(&Outgoing {
            method: "PUT".into(),
            target: path,
            body: csv.as_bytes().to_vec(),
            headers: vec![
                ("Signature-Input".into(), h.signature_input),
                ("Signature".into(), h.signature),
                ("Content-Type".into(), "text/csv".into()),
                ("Content-Digest".into(), digest),
            ],
        })
        .await
}

/// Says (on the test's output) that a PostgreSQL-only test did not run its checks here, rather
/// than passing silently; `cargo test -- --nocapture` or a failure shows it, and CI runs the
/// suite on PostgreSQL too.
#[track_caller]
pub fn skipped_on_sqlite() {
    let at = std::panic::Location::caller();
    println!(
        "SKIPPED on SQLite (PostgreSQL only): {}:{}",
        at.file(),
        at.line()
    );
    eprintln!(
        "SKIPPED on SQLite (PostgreSQL only): {}:{}",
        at.file(),
        at.line()
    );
}

/// A rustls client configuration with a bundle's CA and client certificate and key.
pub fn bundle_tls_config(dir: &Path) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let chain: Vec<_> = CertificateDer::pem_file_iter(dir.join("client.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("client.key")).unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap()
}
