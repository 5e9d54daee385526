//! Upkeep as jobs, after crates.io's: each is a function that does its work once and may run
//! again at any time without harm (idempotent), so the scheduler (`scheduler`) runs them at
//! intervals taken from `Settings` and an admin runs any of them by hand
//! (`alliance-gateway run-job NAME`, the same code path).
//!
//! A new upkeep job: a variant of [`Job`], its name, its interval in `Settings`, its body in
//! [`Job::run`].
pub mod scheduler;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::db::DbError;
use crate::pki::keys::PrivateKey;
use crate::pki::tls::ReloadingClientVerifier;
use crate::rate_limit::IdentityLimiter;
use crate::store::Store;
use std::sync::Arc;

/// Every upkeep job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Job {
    /// Deletes expired nonces, stored answers past their retention and member tokens a day past
    /// expiry.
    PruneNonces,
    /// Keeps the SQLite WAL bounded (nothing on PostgreSQL).
    CheckpointWal,
    /// Links records booked since the last pass into their partners' hash chains (PostgreSQL;
    /// SQLite links at booking).
    LinkChains,
    /// Analyses young and fast-growing tables (PostgreSQL).
    PlannerStats,
    /// Counts certificates that expire within 30 days (a metric to alert on) and lets the rate
    /// limiter forget idle identities.
    Registry,
    /// Reloads the CRL when its file changed (in `serve`); by hand, checks the file.
    ReloadCrl,
    /// Closes and settles every day that is due, oldest first.
    SettleDue,
}

impl Job {
    pub const ALL: [Job; 7] = [
        Job::PruneNonces,
        Job::CheckpointWal,
        Job::LinkChains,
        Job::PlannerStats,
        Job::Registry,
        Job::ReloadCrl,
        Job::SettleDue,
    ];

    /// The job's name, as `run-job` takes it (clap's kebab-case of the variant).
    pub fn name(self) -> String {
        use clap::ValueEnum;
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }
}

/// What the jobs run against. `serve` has all of it; the CLI has no in-process CRL verifier
/// or rate limiter, and a job that needs one does what it can without.
#[derive(Clone)]
pub struct Env {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub clock: SharedClock,
    /// The gateway key and its id, which sign statements.
    pub gateway_key: Arc<PrivateKey>,
    pub gateway_key_id: Arc<str>,
    pub rate_limits: Option<Arc<IdentityLimiter>>,
    pub crl: Option<Arc<ReloadingClientVerifier>>,
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Rows, tables, days or files it handled (0: there was nothing to do).
    pub done: usize,
    /// A line for the log and the CLI.
    pub summary: String,
}

impl Report {
    fn new(done: usize, summary: impl Into<String>) -> Self {
        Report {
            done,
            summary: summary.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Failed(String),
}

impl Job {
    /// Runs the job once.
    pub async fn run(self, env: &Env) -> Result<Report, JobError> {
        match self {
            Job::PruneNonces => prune(env).await,
            Job::CheckpointWal => match env.store.checkpoint_wal().await? {
                Some(wal) => Ok(Report::new(
                    usize::try_from(wal.checkpointed_frames).unwrap_or(0),
                    format!(
                        "{} of {} WAL frames checkpointed",
                        wal.checkpointed_frames, wal.log_frames
                    ),
                )),
                None => Ok(Report::new(0, "no WAL to checkpoint")),
            },
            Job::LinkChains => link_chains(env).await,
            Job::PlannerStats => {
                let tables = env.store.refresh_planner_stats().await?;
                Ok(Report::new(
                    tables.len(),
                    format!("analysed {}", tables.join(", ")),
                ))
            }
            Job::Registry => registry(env).await,
            Job::ReloadCrl => reload_crl(env),
            Job::SettleDue => settle_due(env).await,
        }
    }
}

async fn prune(env: &Env) -> Result<Report, JobError> {
    let now = env.clock.now().naive_utc();
    let pruned = env
        .store
        .upkeep(move |conn| -> Result<_, DbError> {
            use crate::db::{idempotency_keys::StoredResponse, member_tokens::MemberToken};
            let answers = StoredResponse::prune(conn, now)?;
            let tokens = MemberToken::prune(conn, now - chrono::TimeDelta::days(1))?;
            let nonces = crate::db::nonces::Nonce::prune(conn, now)?;
            Ok((nonces, answers, tokens))
        })
        .await?;
    let (nonces, answers, tokens) = pruned;
    Ok(Report::new(
        nonces + answers + tokens,
        format!("pruned {nonces} nonces, {answers} stored answers, {tokens} member tokens"),
    ))
}

async fn link_chains(env: &Env) -> Result<Report, JobError> {
    if env.store.chains_linked_at_booking() {
        return Ok(Report::new(0, "records are linked as they are booked"));
    }
    let linked = env.store.upkeep(crate::transactions::chain::link_all).await;
    match linked {
        Ok(n) => {
            if n > 0 {
                crate::monitoring::record_chain_linked(n);
            }
            Ok(Report::new(
                n,
                format!("linked {n} records into their chains"),
            ))
        }
        Err(e) => {
            crate::monitoring::record_chain_link_failure();
            Err(e.into())
        }
    }
}

async fn registry(env: &Env) -> Result<Report, JobError> {
    if let Some(limits) = &env.rate_limits {
        limits.prune();
    }
    let now = env.clock.now().naive_utc();
    let soon = now + chrono::TimeDelta::days(crate::lifecycle::report::EXPIRY_WARNING_DAYS);
    let expiring = env
        .store
        .upkeep(move |conn| -> Result<i64, DbError> {
            Ok(crate::db::certificates::Certificate::count_active_expiring(
                conn, now, soon,
            )?)
        })
        .await?;
    crate::monitoring::set_certificates_expiring(expiring);
    Ok(Report::new(
        usize::try_from(expiring).unwrap_or(0),
        format!("{expiring} active certificates expire within 30 days"),
    ))
}

fn reload_crl(env: &Env) -> Result<Report, JobError> {
    let failed = |e: crate::pki::tls::TlsError| JobError::Failed(e.to_string());
    match &env.crl {
        Some(verifier) => Ok(
            if verifier.reload_if_changed().map_err(|e| {
                JobError::Failed(format!(
                    "the new CRL was refused; the previous one stays in force: {e}"
                ))
            })? {
                Report::new(1, "reloaded the CRL")
            } else {
                Report::new(0, "the CRL is unchanged")
            },
        ),
        // No serving verifier in this process: check that the file is one `serve` would load.
        None => {
            let paths = crate::pki::Paths::new(&env.settings);
            ReloadingClientVerifier::new(&paths).map_err(failed)?;
            Ok(Report::new(
                0,
                format!(
                    "{} is a valid CRL of the alliance CA",
                    paths.crl().display()
                ),
            ))
        }
    }
}

async fn settle_due(env: &Env) -> Result<Report, JobError> {
    let (settings, key, key_id) = (
        env.settings.clone(),
        env.gateway_key.clone(),
        env.gateway_key_id.clone(),
    );
    let now = env.clock.now();
    let days = env
        .store
        .upkeep(move |conn| {
            let signer = crate::settlement::Signer {
                key: &key,
                key_id: &key_id,
            };
            crate::settlement::settle_due(conn, &settings, &signer, now)
                .map_err(|e| JobError::Failed(e.to_string()))
        })
        .await?;
    for d in &days {
        tracing::info!(settlement.day = %d.business_date, settlement.version = d.version, settlement.partners = d.partners, "business day settled");
    }
    let listed: Vec<String> = days.iter().map(|d| d.business_date.to_string()).collect();
    Ok(Report::new(
        days.len(),
        if listed.is_empty() {
            "no day was due".to_owned()
        } else {
            format!("settled {}", listed.join(", "))
        },
    ))
}
