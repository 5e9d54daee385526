//! Runs the upkeep jobs in `serve`: each at its own interval from `Settings`
//! (`ALLIANCE_JOB_*_INTERVAL_MS`), one task per job so that a slow one holds up no other, and
//! `settle-due` once at start-up (catching up on nights the gateway was down) and at every
//! firing of `ALLIANCE_SETTLEMENT_CRON`. The scheduler only ticks: what is due is the job's to
//! find out, so several gateways on one database may all run them.
use super::{Env, Job};
use std::time::Duration;

/// How long to wait after a run of `job` before the next.
fn interval_ms(env: &Env, job: Job) -> u64 {
    let i = &env.settings.job_intervals;
    u64::from(match job {
        Job::PruneNonces => i.prune_nonces_ms,
        Job::CheckpointWal => i.checkpoint_wal_ms,
        Job::LinkChains => i.link_chains_ms,
        Job::PlannerStats => i.planner_stats_ms,
        Job::Registry => i.registry_ms,
        Job::ReloadCrl => i.reload_crl_ms,
        Job::SettleDue => return 0,
    })
}

/// Starts every job but `settle-due` on its interval. A run that found work to do is logged
/// at debug; a failure at warn, and the job runs again at its next tick. The chain linker
/// goes straight on while it finds records to link.
pub fn start(env: &Env) -> Vec<tokio::task::JoinHandle<()>> {
    Job::ALL
        .into_iter()
        .filter(|job| *job != Job::SettleDue)
        .map(|job| {
            let env = env.clone();
            tokio::spawn(async move {
                let pause = Duration::from_millis(interval_ms(&env, job));
                // The first run comes after one interval, but for the registry's metric, which
                // a monitor should see from the start.
                if job != Job::Registry {
                    tokio::time::sleep(pause).await;
                }
                loop {
                    let busy = match job.run(&env).await {
                        Ok(report) if report.done > 0 => {
                            tracing::debug!(job.name = %job.name(), job.done = report.done, "{}", report.summary);
                            job == Job::LinkChains
                        }
                        Ok(_) => false,
                        // A refused CRL means revocations are not applied at the handshake:
                        // an error, not a passing fault.
                        Err(e) if job == Job::ReloadCrl => {
                            tracing::error!(job.name = %job.name(), error.message = %e, "upkeep job failed");
                            false
                        }
                        Err(e) => {
                            tracing::warn!(job.name = %job.name(), error.message = %e, "upkeep job failed");
                            false
                        }
                    };
                    if !busy {
                        tokio::time::sleep(pause).await;
                    }
                }
            })
        })
        .collect()
}

/// Settles every due day now and at every firing of `ALLIANCE_SETTLEMENT_CRON` (a ticker;
/// `settle-due` decides which days are due, and a unique row per day makes sure only one
/// instance settles it).
pub async fn start_settlement(env: &Env) -> anyhow::Result<tokio_cron_scheduler::JobScheduler> {
    use tokio_cron_scheduler::{Job as CronJob, JobScheduler};
    let settings = &env.settings;
    if crate::settlement::due_through(
        &settings.settlement_cron,
        settings.timezone,
        env.clock.now(),
    )
    .is_none()
    {
        anyhow::bail!(
            "ALLIANCE_SETTLEMENT_CRON {:?} is not a cron expression (seconds field first)",
            settings.settlement_cron
        );
    }
    tokio::spawn(settle(env.clone(), "start-up catch-up"));
    let scheduler = JobScheduler::new().await?;
    let ticking = env.clone();
    scheduler
        .add(CronJob::new_async_tz(
            settings.settlement_cron.as_str(),
            settings.timezone,
            move |_id, _lock| Box::pin(settle(ticking.clone(), "scheduled")),
        )?)
        .await?;
    scheduler.start().await?;
    Ok(scheduler)
}

async fn settle(env: Env, trigger: &'static str) {
    match Job::SettleDue.run(&env).await {
        Ok(report) => {
            tracing::info!(
                settlement.trigger = trigger,
                settlement.days = report.done,
                "{}",
                report.summary
            )
        }
        Err(e) => {
            tracing::error!(error.message = %e, settlement.trigger = trigger, "settlement failed")
        }
    }
}
