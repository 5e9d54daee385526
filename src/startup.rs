//! The composition root: opens the store, loads the keys, builds the mTLS API listener and the
//! loopback ops listener, and starts the upkeep jobs. Tests build it on port 0.
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::db::alliance::Alliance;
use crate::db::gateway_keys::GatewayKey;
use crate::http::admission::Admission;
use crate::http::problem::json_error;
use crate::http::routes::{self, ops};
use crate::http::tls;
use crate::http::{middleware, AppState, MAX_BULK_BODY_BYTES};
use crate::jobs::{self, scheduler};
use crate::pki::keys::{gateway_key_id, PrivateKey};
use crate::pki::secrets::MemberKeys;
use crate::pki::tls::{server_config, ReloadingClientVerifier};
use crate::pki::{files, Paths};
use crate::store::Store;
use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use std::net::TcpListener;
use std::sync::Arc;

/// In-flight requests get this long to finish after SIGTERM.
const SHUTDOWN_TIMEOUT_S: u64 = 30;

pub struct Application {
    port: u16,
    ops_port: u16,
    api: Server,
    ops: Server,
    jobs: jobs::Env,
    upkeep: Vec<tokio::task::JoinHandle<()>>,
    /// The settlement ticker, kept alive as long as the application.
    _scheduler: Option<tokio_cron_scheduler::JobScheduler>,
}

impl Application {
    /// Loads everything `serve` needs (never the CA key), applies migrations and binds.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, crate::clock::system()).await
    }

    /// [`Application::build`] on a given clock (tests set it instead of waiting).
    pub async fn build_with_clock(settings: Settings, clock: SharedClock) -> anyhow::Result<Self> {
        settings.check_ops_listen()?;
        let settings = Arc::new(settings);
        let paths = Paths::new(&settings);
        files::warn_about_loose_modes(&settings);
        let store = {
            let (url, threads) = (settings.database.clone(), settings.db_pool_size);
            tokio::task::spawn_blocking(move || -> anyhow::Result<Store> {
                let store = Store::open(&url, threads).context("opening the database")?;
                Alliance::find(&mut *store.pool().get()?)?.context(
                    "the alliance is not initialised: run scripts/init-alliance.sh first",
                )?;
                Ok(store)
            })
            .await??
        };
        let gateway_key =
            PrivateKey::from_pkcs8_pem(&files::read_to_string(&paths.gateway_signing_key())?)?;
        let gateway_key_id = gateway_key_id(&gateway_key.public_key());
        let key_id = gateway_key_id.clone();
        store
            .upkeep(move |conn| Ok::<_, crate::db::DbError>(GatewayKey::find(conn, &key_id)?))
            .await?
            .context("the gateway signing key is not registered: run init again")?;
        let verifier = ReloadingClientVerifier::new(&paths)?;
        let tls_config = server_config(&paths, verifier.clone())?;
        let state = AppState {
            store: store.clone(),
            clock: clock.clone(),
            settings: settings.clone(),
            gateway_key: Arc::new(gateway_key),
            gateway_key_id: Arc::from(gateway_key_id.as_str()),
            member_keys: Arc::new(MemberKeys::load(&paths)?),
            verify_limits: Arc::new(crate::members::limits::VerifyLimits::new(
                settings.verify_requests_per_minute,
                settings.verify_members_per_day,
                settings.verify_not_found_burst,
            )),
            rate_limits: Arc::new(crate::rate_limit::IdentityLimiter::new(
                settings.rate_limit_per_second,
                settings.rate_limit_burst,
            )),
            registry: crate::registry::Registry::new(),
            admission: Arc::new(Admission::new(
                settings.max_in_flight_per_worker,
                settings.max_waiting_per_worker,
            )),
            slow_bodies: crate::http::body::SlowBodies::new(settings.max_slow_bodies_per_identity),
        };
        let jobs = jobs::Env {
            store: store.clone(),
            settings: settings.clone(),
            clock,
            gateway_key: state.gateway_key.clone(),
            gateway_key_id: state.gateway_key_id.clone(),
            rate_limits: Some(state.rate_limits.clone()),
            crl: Some(verifier),
        };
        crate::monitoring::handle();

        let listener = TcpListener::bind(&settings.listen)
            .with_context(|| format!("binding {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let api = HttpServer::new(move || {
            // The factory runs once on each worker's thread: each gets places of its own.
            let worker_state = AppState {
                admission: Arc::new(Admission::new(
                    state.settings.max_in_flight_per_worker,
                    state.settings.max_waiting_per_worker,
                )),
                ..state.clone()
            };
            App::new()
                .app_data(web::Data::new(worker_state))
                // The handlers' `web::Bytes` take the body the middleware has read and limited
                // by route (`http::body_limit`); actix's own default of 256 KiB must not cut a
                // 4 MiB batch or upload short.
                .app_data(web::PayloadConfig::new(MAX_BULK_BODY_BYTES))
                .app_data(
                    web::JsonConfig::default()
                        .limit(MAX_BULK_BODY_BYTES)
                        .error_handler(|e, _| json_error(e).into()),
                )
                .wrap(actix_web::middleware::from_fn(middleware::signed_api))
                .configure(routes::configure)
        })
        .on_connect(tls::on_connect)
        // Without it, the response that follows TLS 1.3's session tickets waits for the
        // client's delayed ACK (40 ms) on every new connection.
        .tcp_nodelay(true)
        .shutdown_timeout(SHUTDOWN_TIMEOUT_S)
        .listen_rustls_0_23(listener, tls_config)?
        .run();

        let ops_listener = TcpListener::bind(&settings.ops_listen)
            .with_context(|| format!("binding {}", settings.ops_listen))?;
        let ops_port = ops_listener.local_addr()?.port();
        let ops_state = ops::OpsState { store };
        let ops = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(ops_state.clone()))
                .configure(routes::configure_ops)
        })
        .workers(1)
        .shutdown_timeout(5)
        .listen(ops_listener)?
        .run();

        let upkeep = scheduler::start(&jobs);
        let settlement = match settings.settlement_enabled {
            true => Some(scheduler::start_settlement(&jobs).await?),
            false => None,
        };
        tracing::info!(api.port = port, ops.port = ops_port, gateway.key_id = %gateway_key_id, "gateway listening");
        Ok(Application {
            port,
            ops_port,
            api,
            ops,
            jobs,
            upkeep,
            _scheduler: settlement,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn ops_port(&self) -> u16 {
        self.ops_port
    }

    /// What the upkeep jobs run against, to run one by hand in this process (tests).
    pub fn jobs(&self) -> jobs::Env {
        self.jobs.clone()
    }

    /// Serves until SIGTERM/SIGINT (actix handles both gracefully).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = tokio::try_join!(self.api, self.ops).map(|_| ());
        for task in self.upkeep {
            task.abort();
        }
        result
    }
}
