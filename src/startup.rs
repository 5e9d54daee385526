//! Builds the gateway: the mTLS API listener, the loopback ops listener and the background
//! upkeep (nonce pruning, CRL reloads). Tests build it on port 0.
use crate::config::Settings;
use crate::db::alliance::Alliance;
use crate::db::executor::Executor;
use crate::db::gateway_keys::GatewayKey;
use crate::db::group_commit::GroupCommit;
use crate::db::nonce_batch::NonceBatcher;
use crate::db::nonces::Nonce;
use crate::db::{self, Pool};
use crate::http::admission::Admission;
use crate::http::problem::json_error;
use crate::http::routes::{self, ops};
use crate::http::tls::{self, ReloadingClientVerifier};
use crate::http::{middleware, AppState, MAX_BULK_BODY_BYTES};
use crate::pki::keys::{gateway_key_id, PrivateKey};
use crate::pki::secrets::MemberKeys;
use crate::pki::{files, Paths};
use crate::transactions::sale_batch::SaleBatcher;
use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// How often expired nonces are deleted, the SQLite WAL is checkpointed and the CRL file is
/// looked at.
const NONCE_PRUNE_INTERVAL_MS: u64 = 60_000;
/// Ten PASSIVE checkpoints a second rather than one: each then copies a tenth as many frames,
/// and its burst of copying (on the same cores as the requests) no longer holds up every
/// request in progress at once. Verify at concurrency 64, five 20 s interleaved pairs: 100 ms
/// windows with an answer over 40 ms 2–4 against 6–14 (of 200), p99 25.4–31.8 ms against
/// 28.5–36.1 ms, and no more CPU per request (`docs/benchmarks.md`, "Fair admission, and WAL
/// checkpoints ten times a second").
const CHECKPOINT_INTERVAL_MS: u64 = 100;
const CRL_CHECK_INTERVAL_MS: u64 = 2_000;
/// How often an idle chain linker looks for unlinked records (PostgreSQL). A busy one goes
/// straight on to the next batch.
const LINK_IDLE_MS: u64 = 50;
const REGISTRY_UPKEEP_INTERVAL_MS: u64 = 60_000;
/// How often young or fast-growing tables are analysed (PostgreSQL; see `db::planner_stats`).
const PLANNER_STATS_INTERVAL_MS: u64 = 5_000;
/// In-flight requests get this long to finish after SIGTERM.
const SHUTDOWN_TIMEOUT_S: u64 = 30;

pub struct Application {
    port: u16,
    ops_port: u16,
    api: Server,
    ops: Server,
    upkeep: Vec<tokio::task::JoinHandle<()>>,
    /// The settlement ticker, kept alive as long as the application.
    _scheduler: Option<tokio_cron_scheduler::JobScheduler>,
}

impl Application {
    /// Loads everything `serve` needs (never the CA key), applies migrations and binds.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let paths = Paths::new(&settings);
        warn_about_loose_modes(&settings);
        // One connection per request thread, and one more held by the group-commit writer
        // (SQLite) or the chain linker (PostgreSQL), so neither waits for a request's; on
        // PostgreSQL one more per sale batcher and per nonce claimer, for the same reason.
        let sqlite = matches!(settings.database, crate::config::DatabaseUrl::Sqlite(_));
        let batchers = if sqlite {
            0
        } else {
            (SALE_BATCH_THREADS + NONCE_BATCH_THREADS) as u32
        };
        let pool = db::pool(&settings.database, settings.db_pool_size + 1 + batchers)
            .context("opening the database")?;
        {
            let pool = pool.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                let mut conn = pool.get()?;
                db::migrate(&mut conn)?;
                Alliance::find(&mut conn)?.context(
                    "the alliance is not initialised: run scripts/init-alliance.sh first",
                )?;
                Ok(())
            })
            .await??;
        }

        let gateway_pem = files::read_to_string(&paths.gateway_signing_key())?;
        let gateway_key = PrivateKey::from_pkcs8_pem(&gateway_pem)?;
        let gateway_key_id = gateway_key_id(&gateway_key.public_key());
        {
            let pool = pool.clone();
            let key_id = gateway_key_id.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                let mut conn = pool.get()?;
                GatewayKey::find(&mut conn, &key_id)?
                    .context("the gateway signing key is not registered: run init again")?;
                Ok(())
            })
            .await??;
        }
        let member_keys = MemberKeys::load(&paths)?;
        let verifier = ReloadingClientVerifier::new(&paths)?;
        let tls_config = tls::server_config(&paths, verifier.clone())?;

        let state = AppState {
            pool: pool.clone(),
            // One thread per connection: a job never waits for a connection, only for a thread.
            db: Executor::start(settings.db_pool_size as usize)?,
            writes: if sqlite {
                Some(GroupCommit::start(pool.clone())?)
            } else {
                None
            },
            sales: if sqlite {
                None
            } else {
                Some(SaleBatcher::start(pool.clone(), SALE_BATCH_THREADS)?)
            },
            nonces: if sqlite {
                None
            } else {
                Some(NonceBatcher::start(pool.clone(), NONCE_BATCH_THREADS)?)
            },
            settings: settings.clone(),
            gateway_key: Arc::new(gateway_key),
            gateway_key_id: Arc::from(gateway_key_id.as_str()),
            member_keys: Arc::new(member_keys),
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
        let rate_limits = state.rate_limits.clone();
        let state_writes = state.writes.clone();
        let settlement_state = state.clone();
        crate::http::metrics::handle();

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
                .service(
                    resource("/v1/members/verify", "POST")
                        .route(web::post().to(routes::members::verify)),
                )
                .service(resource("/v1/keys", "GET").route(web::get().to(routes::keys::jwks)))
                .service(
                    resource("/v1/transactions", "GET, POST")
                        .route(web::post().to(routes::transactions::record))
                        .route(web::get().to(routes::transactions::list)),
                )
                .service(
                    resource("/v1/transactions/batch", "POST")
                        .route(web::post().to(routes::transactions::batch)),
                )
                .service(
                    resource("/v1/transactions/{txn_id}", "GET")
                        .route(web::get().to(routes::transactions::one)),
                )
                .service(
                    resource("/v1/transactions/{txn_id}/reversals", "POST")
                        .route(web::post().to(routes::transactions::reverse)),
                )
                .service(
                    resource("/v1/member-tokens", "POST")
                        .route(web::post().to(routes::transactions::issue_token)),
                )
                .service(
                    resource("/v1/finance/settlements", "GET")
                        .route(web::get().to(routes::finance::settlements)),
                )
                .service(
                    resource("/v1/finance/settlements/{date}/partners/{file}", "GET")
                        .route(web::get().to(routes::statements::finance_partner_file)),
                )
                .service(
                    resource("/v1/finance/settlements/{date}/rerun", "POST")
                        .route(web::post().to(routes::statements::rerun)),
                )
                .service(
                    resource("/v1/finance/settlements/{date}/{file}", "GET")
                        .route(web::get().to(routes::statements::finance_file)),
                )
                .service(
                    resource("/v1/reconciliation/{business_date}", "PUT")
                        .route(web::put().to(routes::reconciliation::upload)),
                )
                .service(
                    resource("/v1/statements", "GET")
                        .route(web::get().to(routes::statements::list)),
                )
                .service(
                    resource("/v1/statements/{business_date}", "GET")
                        .route(web::get().to(routes::statements::statement)),
                )
                .service(
                    resource("/v1/statements/{business_date}/manifest", "GET")
                        .route(web::get().to(routes::statements::manifest)),
                )
                .service(
                    resource("/v1/statements/{business_date}/discrepancies", "GET")
                        .route(web::get().to(routes::statements::discrepancies)),
                )
                .default_service(web::to(routes::not_found))
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
        let ops_state = ops::OpsState { pool: pool.clone() };
        let ops = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(ops_state.clone()))
                .route("/healthz", web::get().to(ops::healthz))
                .route("/readyz", web::get().to(ops::readyz))
                .route("/metrics", web::get().to(ops::metrics))
        })
        .workers(1)
        .shutdown_timeout(5)
        .listen(ops_listener)?
        .run();

        let upkeep = vec![
            tokio::spawn(link_chains(pool.clone(), !sqlite)),
            tokio::spawn(checkpoint_wal(pool.clone(), state_writes)),
            tokio::spawn(refresh_planner_stats(pool.clone(), !sqlite)),
            tokio::spawn(prune_nonces(pool.clone())),
            tokio::spawn(registry_upkeep(pool, rate_limits)),
            tokio::spawn(reload_crl(verifier)),
        ];
        let scheduler = if settings.settlement_enabled {
            Some(start_settlement(settlement_state).await?)
        } else {
            None
        };
        tracing::info!(api.port = port, ops.port = ops_port, gateway.key_id = %gateway_key_id, "gateway listening");
        Ok(Application {
            port,
            ops_port,
            api,
            ops,
            upkeep,
            _scheduler: scheduler,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn ops_port(&self) -> u16 {
        self.ops_port
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

/// Lines of warning about loose modes, at most; the rest are counted.
const MAX_LOOSE_MODE_WARNINGS: usize = 20;

/// Warns about the alliance's files and directories that others may read, write or enter
/// (`pki::files::loose_modes`): the gateway creates its own 0600 and 0700, but a copy, an
/// older version or a hand-made file may be looser.
fn warn_about_loose_modes(settings: &Settings) {
    let mut roots = vec![
        settings.certs_dir(),
        settings.bundles_dir(),
        settings.statements_dir(),
        settings.data_dir(),
    ];
    if let crate::config::DatabaseUrl::Sqlite(db) = &settings.database {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = db.clone().into_os_string();
            name.push(suffix);
            roots.push(name.into());
        }
    }
    let loose = files::loose_modes(&roots);
    for (path, mode) in loose.iter().take(MAX_LOOSE_MODE_WARNINGS) {
        tracing::warn!(
            file.path = %path.display(),
            file.mode = format!("{mode:o}"),
            "others may read or write this file of the alliance; run chmod go-rwx on it"
        );
    }
    if loose.len() > MAX_LOOSE_MODE_WARNINGS {
        tracing::warn!(
            files.loose = loose.len(),
            "more files of the alliance are open to others than listed; chmod -R go-rwx the alliance's directories"
        );
    }
}

async fn prune_nonces(pool: Pool) {
    let mut tick = tokio::time::interval(Duration::from_millis(NONCE_PRUNE_INTERVAL_MS));
    loop {
        tick.tick().await;
        let pool = pool.clone();
        let pruned = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
            let mut conn = pool.get()?;
            let now = chrono::Utc::now().naive_utc();
            // Stored answers past their retention, and member tokens a day past expiry, too.
            let answers = crate::db::idempotency_keys::StoredResponse::prune(&mut conn, now)?;
            let tokens = crate::db::member_tokens::MemberToken::prune(
                &mut conn,
                now - chrono::TimeDelta::days(1),
            )?;
            Ok(Nonce::prune(&mut conn, now)? + answers + tokens)
        })
        .await;
        match pruned {
            Ok(Ok(n)) if n > 0 => tracing::debug!(nonces.pruned = n, "pruned expired nonces"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error.message = %e, "nonce pruning failed"),
            Err(e) => tracing::warn!(error.message = %e, "nonce pruning task failed"),
        }
    }
}

/// Once a minute: counts certificates that expire within 30 days (a metric to alert on, so
/// no partner is cut off by surprise), and lets the rate limiter forget idle identities.
async fn registry_upkeep(pool: Pool, rate_limits: Arc<crate::rate_limit::IdentityLimiter>) {
    let mut tick = tokio::time::interval(Duration::from_millis(REGISTRY_UPKEEP_INTERVAL_MS));
    loop {
        tick.tick().await;
        rate_limits.prune();
        let pool = pool.clone();
        let counted = tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
            let mut conn = pool.get()?;
            let now = chrono::Utc::now().naive_utc();
            let soon = now + chrono::TimeDelta::days(crate::lifecycle::report::EXPIRY_WARNING_DAYS);
            Ok(crate::db::certificates::Certificate::count_active_expiring(
                &mut conn, now, soon,
            )?)
        })
        .await;
        match counted {
            Ok(Ok(n)) => crate::http::metrics::set_certificates_expiring(n),
            Ok(Err(e)) => {
                tracing::warn!(error.message = %e, "counting expiring certificates failed")
            }
            Err(e) => tracing::warn!(error.message = %e, "registry upkeep task failed"),
        }
    }
}

/// Settles every due day once now (catching up on nights the gateway was down) and on every
/// firing of `ALLIANCE_SETTLEMENT_CRON`. The scheduler is only a ticker: `settle_due` decides
/// which days are due, and the unique row per day makes sure only one instance settles it.
async fn start_settlement(state: AppState) -> anyhow::Result<tokio_cron_scheduler::JobScheduler> {
    use tokio_cron_scheduler::{Job, JobScheduler};
    if crate::settlement::due_through(
        &state.settings.settlement_cron,
        state.settings.timezone,
        chrono::Utc::now(),
    )
    .is_none()
    {
        anyhow::bail!(
            "ALLIANCE_SETTLEMENT_CRON {:?} is not a cron expression (seconds field first)",
            state.settings.settlement_cron
        );
    }
    tokio::spawn(settle_now(state.clone(), "start-up catch-up"));
    let scheduler = JobScheduler::new().await?;
    let tz = state.settings.timezone;
    let cron = state.settings.settlement_cron.clone();
    scheduler
        .add(Job::new_async_tz(cron.as_str(), tz, move |_id, _lock| {
            Box::pin(settle_now(state.clone(), "scheduled"))
        })?)
        .await?;
    scheduler.start().await?;
    Ok(scheduler)
}

async fn settle_now(state: AppState, why: &'static str) {
    let st = state.clone();
    let outcome = state
        .db
        .run(
            move || -> anyhow::Result<Vec<crate::settlement::DayOutcome>> {
                let mut conn = st.pool.get()?;
                let signer = crate::settlement::Signer {
                    key: &st.gateway_key,
                    key_id: &st.gateway_key_id,
                };
                Ok(crate::settlement::settle_due(
                    &mut conn,
                    &st.settings,
                    &signer,
                    chrono::Utc::now(),
                )?)
            },
        )
        .await;
    match outcome {
        Ok(Ok(days)) => {
            for d in days {
                tracing::info!(settlement.day = %d.business_date, settlement.version = d.version, settlement.partners = d.partners, settlement.trigger = why, "business day settled");
            }
        }
        Ok(Err(e)) => {
            tracing::error!(error.message = %e, settlement.trigger = why, "settlement failed")
        }
        Err(e) => {
            tracing::error!(error.message = %e, settlement.trigger = why, "settlement task failed")
        }
    }
}

/// Keeps the SQLite WAL bounded (see `db::wal`): a PASSIVE checkpoint every 100 ms, and a
/// RESTART by the group-commit writer when the WAL did not rewind on its own.
async fn checkpoint_wal(pool: Pool, writes: Option<GroupCommit>) {
    let Some(writes) = writes else {
        return; // PostgreSQL
    };
    let mut tick = tokio::time::interval(Duration::from_millis(CHECKPOINT_INTERVAL_MS));
    loop {
        tick.tick().await;
        let pool = pool.clone();
        let passive = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut conn = pool.get()?;
            Ok(db::wal::checkpoint_passive(&mut conn)?)
        })
        .await;
        let state = match passive {
            Ok(Ok(state)) => state,
            Ok(Err(e)) => {
                tracing::warn!(error.message = %e, "WAL checkpoint failed");
                continue;
            }
            Err(e) => {
                tracing::warn!(error.message = %e, "WAL checkpoint task failed");
                continue;
            }
        };
        if !state.is_some_and(|s| s.wants_restart()) {
            continue;
        }
        let started = std::time::Instant::now();
        match writes.restart_wal().await {
            Ok(Ok(after)) => tracing::debug!(
                wal.before = ?state,
                wal.after = ?after,
                wal.restart_ms = started.elapsed().as_millis() as u64,
                "WAL restart checkpoint"
            ),
            Ok(Err(e)) => tracing::warn!(error.message = %e, "WAL restart checkpoint failed"),
            Err(e) => tracing::warn!(error.message = %e, "WAL restart checkpoint not run"),
        }
    }
}

/// Threads booking sales on PostgreSQL (`transactions::sale_batch`), each with a connection
/// while it books. At concurrency 32 and batches of up to 8, four keep every sale in a batch
/// without leaving the pool (16 by default) short for the other requests.
const SALE_BATCH_THREADS: usize = 4;
/// Threads claiming nonces on PostgreSQL (`db::nonce_batch`), each with a connection while it
/// claims. A claim is one short statement, so two keep up with the sale batchers: while one
/// waits for PostgreSQL, the other gathers the next batch.
const NONCE_BATCH_THREADS: usize = 2;

/// A resource of the partner API with its methods (`allow`, as sent in `Allow`): any other
/// method gets `method-not-allowed` (405), so a partner who sent the wrong method is told so
/// rather than that the path does not exist.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        routes::method_not_allowed(allow)
    }))
}

/// The chain linker (PostgreSQL; see `transactions::chain`): links the records booked since
/// its last pass into their partners' hash chains, in batches. Every gateway instance runs
/// one; the partners' chain locks keep them from linking the same record.
async fn link_chains(pool: Pool, enabled: bool) {
    if !enabled {
        return; // SQLite links at booking.
    }
    loop {
        let pool = pool.clone();
        let pass = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
            let mut conn = pool.get()?;
            Ok(crate::transactions::chain::link_all(&mut conn)?)
        })
        .await;
        match pass {
            Ok(Ok(linked)) if linked > 0 => {
                crate::http::metrics::record_chain_linked(linked);
                tracing::debug!(chain.linked = linked, "linked records into their chains");
                continue;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                crate::http::metrics::record_chain_link_failure();
                tracing::warn!(error.message = %e, "chain linking failed")
            }
            Err(e) => {
                crate::http::metrics::record_chain_link_failure();
                tracing::warn!(error.message = %e, "chain linking task failed")
            }
        }
        tokio::time::sleep(Duration::from_millis(LINK_IDLE_MS)).await;
    }
}

/// Keeps the planner's statistics in step with young and fast-growing tables (PostgreSQL; see
/// `db::planner_stats`), so no cached plan is left choosing an index for an empty table.
async fn refresh_planner_stats(pool: Pool, enabled: bool) {
    if !enabled {
        return; // SQLite
    }
    let mut tick = tokio::time::interval(Duration::from_millis(PLANNER_STATS_INTERVAL_MS));
    loop {
        tick.tick().await;
        let pool = pool.clone();
        let pass = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
            let mut conn = pool.get()?;
            Ok(db::planner_stats::refresh(&mut conn)?)
        })
        .await;
        match pass {
            Ok(Ok(tables)) if !tables.is_empty() => {
                tracing::debug!(db.analysed = ?tables, "refreshed planner statistics")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error.message = %e, "refreshing planner statistics failed")
            }
            Err(e) => tracing::warn!(error.message = %e, "planner statistics task failed"),
        }
    }
}

async fn reload_crl(verifier: Arc<ReloadingClientVerifier>) {
    let mut tick = tokio::time::interval(Duration::from_millis(CRL_CHECK_INTERVAL_MS));
    loop {
        tick.tick().await;
        match verifier.reload_if_changed() {
            Ok(true) => tracing::info!("reloaded the CRL"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error.message = %e, "the new CRL was refused; the previous one stays in force")
            }
        }
    }
}
