//! Configuration (contract section 10): `$ALLIANCE_HOME/alliance.toml`, overridden by
//! `ALLIANCE_*` environment variables. Secrets never come from command-line arguments.
use chrono_tz::Tz;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Defaults and bounds of fair admission (`http::admission`).
pub mod admission {
    /// Default places per worker on SQLite, where a request in progress mostly uses the worker's
    /// or a database thread's CPU: sixteen keep the four database threads, the group-commit writer
    /// and the worker busy. 4, 8, 16 and 32 measured alike for verify at concurrency 64, and all
    /// better than no limit; for record at concurrency 32, 16 was level with no limit.
    pub const DEFAULT_MAX_IN_FLIGHT_SQLITE: u32 = 16;
    /// Default places per worker on PostgreSQL, where a request in progress mostly waits on a
    /// network round trip: the sale batchers and nonce claimers share commits among the requests
    /// they find waiting, and sixteen database threads overlap round trips, so fewer places would
    /// cost rate. Measured: with 16 places record at concurrency 32 lost about 15 % (while verify
    /// at 64 gained, as on SQLite). Sixty-four leaves record the concurrency it was measured with.
    pub const DEFAULT_MAX_IN_FLIGHT_POSTGRES: u32 = 64;
    /// Default bound on the requests one worker keeps waiting.
    pub const DEFAULT_MAX_WAITING: u32 = 1024;
    /// Upper bounds on the two settings.
    pub const MAX_IN_FLIGHT_LIMIT: u32 = 4096;
    pub const MAX_WAITING_LIMIT: u32 = 65_536;
}

/// Defaults of the per-identity rate limit (`rate_limit`).
pub mod rate_limit {
    /// Defaults sized for point-of-sale traffic: a partner with a few hundred tills, each making
    /// a verify and a sale every few seconds, stays well inside 100 requests/s, and the burst
    /// absorbs a fleet of offline tills reconnecting at once.
    pub const DEFAULT_PER_SECOND: u32 = 100;
    pub const DEFAULT_BURST: u32 = 200;
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Source(#[from] config::ConfigError),
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Which database backend a URL names. Anything but these two schemes is refused, because
/// diesel's multi-connection `establish` would otherwise open any string as a SQLite file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(invalid(
                    "ALLIANCE_DATABASE_URL",
                    "sqlite:// needs a file path",
                ));
            }
            Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(url.to_owned()))
        } else {
            Err(invalid(
                "ALLIANCE_DATABASE_URL",
                "only sqlite:// and postgres:// URLs are accepted",
            ))
        }
    }

    /// The SQLite file, if the database is one.
    pub fn sqlite_file(&self) -> Option<&Path> {
        match self {
            DatabaseUrl::Sqlite(path) => Some(path),
            DatabaseUrl::Postgres(_) => None,
        }
    }

    /// The URL with any password replaced, for printing.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            DatabaseUrl::Postgres(u) => match url::Url::parse(u) {
                Ok(mut parsed) if parsed.password().is_some() => {
                    let _ = parsed.set_password(Some("REDACTED"));
                    parsed.to_string()
                }
                Ok(parsed) => parsed.to_string(),
                Err(_) => "postgres://<unparseable, redacted>".to_owned(),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub home: PathBuf,
    pub ca_dir: PathBuf,
    pub database: DatabaseUrl,
    pub listen: String,
    pub ops_listen: String,
    pub public_url: String,
    pub server_names: Vec<String>,
    pub timezone: Tz,
    pub settlement_cron: String,
    pub settlement_enabled: bool,
    pub max_backdate_days: u32,
    pub max_txn_fen: i64,
    pub idempotency_retention_hours: u32,
    pub csv_bom: bool,
    pub log_format: LogFormat,
    /// Extra limits that the contract leaves to us.
    pub verify_requests_per_minute: u32,
    pub verify_members_per_day: u32,
    /// Verify 404s in one minute that count as a burst (a metric and a warning).
    pub verify_not_found_burst: u32,
    /// Every request of one identity (partner or finance user), per `serve` instance.
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    pub db_pool_size: u32,
    /// Signed requests one worker works on at once; the others wait in arrival order
    /// (`http::admission`).
    pub max_in_flight_per_worker: u32,
    /// Requests one worker keeps waiting for a place; more are refused with 503.
    pub max_waiting_per_worker: u32,
    /// How long a request's whole body may take to arrive, from its head (`http::body`).
    pub body_timeout_ms: u32,
    /// Bodies of one identity still arriving after their first moments, at once; more get 429.
    pub max_slow_bodies_per_identity: u32,
    /// Reconciliation uploads one partner may store per local day, and their bytes.
    pub uploads_per_partner_per_day: u32,
    pub upload_bytes_per_partner_per_day: u64,
    /// Lets the plain-HTTP ops listener bind an address other than loopback.
    pub danger_ops_listen_non_loopback: bool,
    /// How long `serve` waits between two runs of each upkeep job (`jobs::scheduler`).
    pub job_intervals: JobIntervals,
}

/// Milliseconds between two runs of each upkeep job (`ALLIANCE_JOB_<NAME>_INTERVAL_MS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobIntervals {
    pub prune_nonces_ms: u32,
    /// Ten PASSIVE checkpoints a second rather than one: each then copies a tenth as many
    /// frames, and its burst of copying (on the cores the requests use) no longer holds up
    /// every request in progress at once (`docs/benchmarks.md`).
    pub checkpoint_wal_ms: u32,
    /// How often an idle chain linker looks for unlinked records; a busy one goes straight on.
    pub link_chains_ms: u32,
    pub planner_stats_ms: u32,
    pub registry_ms: u32,
    /// How soon a changed CRL file is picked up.
    pub reload_crl_ms: u32,
}

impl Default for JobIntervals {
    fn default() -> Self {
        JobIntervals {
            prune_nonces_ms: 60_000,
            checkpoint_wal_ms: 100,
            link_chains_ms: 50,
            planner_stats_ms: 5_000,
            registry_ms: 60_000,
            reload_crl_ms: 2_000,
        }
    }
}

/// Defaults and bounds of the body and upload limits.
pub const DEFAULT_BODY_TIMEOUT_MS: u32 = 10_000;
/// Sixteen: a partner's tills share its identity, and a batch or upload over a slow line is a
/// slow body; sixteen of 4 MiB bound what one identity can hold to 64 MiB for the deadline.
pub const DEFAULT_MAX_SLOW_BODIES_PER_IDENTITY: u32 = 16;
pub const DEFAULT_UPLOADS_PER_PARTNER_PER_DAY: u32 = 50;
pub const DEFAULT_UPLOAD_BYTES_PER_PARTNER_PER_DAY: u64 = 64 * 1024 * 1024;

/// Raw values as strings, so a numeric-looking environment value never fails to load and every
/// value is checked below with an error that names its variable.
#[derive(Debug, Default, Deserialize)]
struct Raw {
    ca_dir: Option<String>,
    database_url: Option<String>,
    listen: Option<String>,
    ops_listen: Option<String>,
    public_url: Option<String>,
    server_names: Option<String>,
    timezone: Option<String>,
    settlement_cron: Option<String>,
    settlement_enabled: Option<String>,
    max_backdate_days: Option<String>,
    max_txn_fen: Option<String>,
    idempotency_retention_hours: Option<String>,
    csv_bom: Option<String>,
    log_format: Option<String>,
    verify_requests_per_minute: Option<String>,
    verify_members_per_day: Option<String>,
    verify_not_found_burst: Option<String>,
    rate_limit_per_second: Option<String>,
    rate_limit_burst: Option<String>,
    db_pool_size: Option<String>,
    max_in_flight_per_worker: Option<String>,
    max_waiting_per_worker: Option<String>,
    body_timeout_ms: Option<String>,
    max_slow_bodies_per_identity: Option<String>,
    uploads_per_partner_per_day: Option<String>,
    upload_bytes_per_partner_per_day: Option<String>,
    danger_ops_listen_non_loopback: Option<String>,
    job_prune_nonces_interval_ms: Option<String>,
    job_checkpoint_wal_interval_ms: Option<String>,
    job_link_chains_interval_ms: Option<String>,
    job_planner_stats_interval_ms: Option<String>,
    job_registry_interval_ms: Option<String>,
    job_reload_crl_interval_ms: Option<String>,
}

fn parse_bool(key: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(key, format!("{v:?} is not true or false"))),
    }
}

fn parse_num<T: std::str::FromStr>(key: &'static str, v: &str) -> Result<T, ConfigError> {
    v.trim()
        .parse()
        .map_err(|_| invalid(key, format!("{v:?} is not a valid number")))
}

/// A limit: a whole number of at least 1 (a zero limit would refuse everything).
fn positive(key: &'static str, v: Option<String>, default: u32) -> Result<u32, ConfigError> {
    match v {
        None => Ok(default),
        Some(v) => match parse_num::<u32>(key, &v)? {
            0 => Err(invalid(key, "must be at least 1")),
            n => Ok(n),
        },
    }
}

/// A number from `min` to `max`, or `default` when not set.
fn within<T>(
    key: &'static str,
    v: Option<String>,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let n = match v {
        None => return Ok(default),
        Some(v) => parse_num::<T>(key, &v)?,
    };
    if n < min || n > max {
        return Err(invalid(key, format!("must be between {min} and {max}")));
    }
    Ok(n)
}

/// The ops listener serves plain HTTP with no identity: loopback only, unless the danger
/// setting says otherwise. A host name other than `localhost` is refused, since what it
/// resolves to can change.
fn check_ops_listen(listen: &str, danger_non_loopback: bool) -> Result<(), ConfigError> {
    const KEY: &str = "ALLIANCE_OPS_LISTEN";
    let loopback = match listen.parse::<std::net::SocketAddr>() {
        Ok(addr) => addr.ip().is_loopback(),
        Err(_) => match listen.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => {
                host.eq_ignore_ascii_case("localhost")
            }
            _ => return Err(invalid(KEY, format!("{listen:?} is not an address:port"))),
        },
    };
    if !loopback && !danger_non_loopback {
        return Err(invalid(
            KEY,
            format!(
                "{listen:?} is not a loopback address; the ops listener is plain HTTP without \
                 authentication (set ALLIANCE_DANGER_OPS_LISTEN_NON_LOOPBACK=true to allow it)"
            ),
        ));
    }
    Ok(())
}

fn at_most(key: &'static str, n: u32, limit: u32) -> Result<u32, ConfigError> {
    if n > limit {
        return Err(invalid(key, format!("must be at most {limit}")));
    }
    Ok(n)
}

impl Settings {
    /// Loads from `ALLIANCE_HOME` (default `.`), its `alliance.toml` and the environment.
    pub fn load() -> Result<Self, ConfigError> {
        let home = std::env::var("ALLIANCE_HOME").unwrap_or_else(|_| ".".to_owned());
        let home = PathBuf::from(home);
        let file = home.join("alliance.toml");
        let raw: Raw = config::Config::builder()
            .add_source(config::File::from(file).required(false))
            .add_source(config::Environment::with_prefix("ALLIANCE").try_parsing(false))
            .build()?
            .try_deserialize()?;
        Self::from_raw(home, raw)
    }

    /// The defaults for an alliance living in `home`, as tests and tools build them.
    pub fn for_home(home: &Path) -> Self {
        // from_raw with no values cannot fail: every default below is valid.
        match Self::from_raw(home.to_path_buf(), Raw::default()) {
            Ok(s) => s,
            Err(e) => unreachable!("defaults are valid: {e}"),
        }
    }

    fn from_raw(home: PathBuf, raw: Raw) -> Result<Self, ConfigError> {
        let ca_dir = raw
            .ca_dir
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("certs"));
        let database = match raw.database_url {
            Some(url) => DatabaseUrl::parse(&url)?,
            None => DatabaseUrl::Sqlite(home.join("data").join("alliance.db")),
        };
        let timezone_name = raw.timezone.unwrap_or_else(|| "Asia/Shanghai".to_owned());
        let timezone: Tz = timezone_name.parse().map_err(|_| {
            invalid(
                "ALLIANCE_TIMEZONE",
                format!("unknown timezone {timezone_name:?}"),
            )
        })?;
        let server_names: Vec<String> = raw
            .server_names
            .unwrap_or_else(|| "localhost,127.0.0.1".to_owned())
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if server_names.is_empty() {
            return Err(invalid(
                "ALLIANCE_SERVER_NAMES",
                "at least one name is needed",
            ));
        }
        let log_format = match raw.log_format.as_deref().unwrap_or("pretty") {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "ALLIANCE_LOG_FORMAT",
                    format!("{other:?} is not pretty or json"),
                ))
            }
        };
        let max_backdate_days: u32 = match raw.max_backdate_days {
            Some(v) => parse_num("ALLIANCE_MAX_BACKDATE_DAYS", &v)?,
            None => 7,
        };
        let idempotency_retention_hours: u32 = match raw.idempotency_retention_hours {
            Some(v) => parse_num("ALLIANCE_IDEMPOTENCY_RETENTION_HOURS", &v)?,
            None => 192,
        };
        // Stored responses must outlive the backdating window, or a late retry would be booked twice.
        if u64::from(idempotency_retention_hours) < (u64::from(max_backdate_days) + 1) * 24 {
            return Err(invalid(
                "ALLIANCE_IDEMPOTENCY_RETENTION_HOURS",
                "must be at least (ALLIANCE_MAX_BACKDATE_DAYS + 1) × 24",
            ));
        }
        let max_txn_fen: i64 = match raw.max_txn_fen {
            Some(v) => parse_num("ALLIANCE_MAX_TXN_FEN", &v)?,
            None => 10_000_000,
        };
        if !(1..=10_000_000_000).contains(&max_txn_fen) {
            return Err(invalid(
                "ALLIANCE_MAX_TXN_FEN",
                "must be between 1 and 10^10",
            ));
        }
        // SQLite has one writer at a time and gains nothing from more threads than cores;
        // PostgreSQL overlaps network round trips, so it gets more connections.
        let db_pool_size: u32 = match raw.db_pool_size {
            Some(v) => parse_num("ALLIANCE_DB_POOL_SIZE", &v)?,
            None => match database {
                DatabaseUrl::Sqlite(_) => 4,
                DatabaseUrl::Postgres(_) => 16,
            },
        };
        if !(1..=256).contains(&db_pool_size) {
            return Err(invalid(
                "ALLIANCE_DB_POOL_SIZE",
                "must be between 1 and 256",
            ));
        }
        // Fewer places on SQLite, whose requests use CPU, than on PostgreSQL, whose requests
        // mostly wait on round trips (`http::admission`).
        let in_flight_default = match database {
            DatabaseUrl::Sqlite(_) => admission::DEFAULT_MAX_IN_FLIGHT_SQLITE,
            DatabaseUrl::Postgres(_) => admission::DEFAULT_MAX_IN_FLIGHT_POSTGRES,
        };
        let ops_listen = raw
            .ops_listen
            .unwrap_or_else(|| "127.0.0.1:9090".to_owned());
        let danger_ops_listen_non_loopback = match raw.danger_ops_listen_non_loopback {
            Some(v) => parse_bool("ALLIANCE_DANGER_OPS_LISTEN_NON_LOOPBACK", &v)?,
            None => false,
        };
        Ok(Settings {
            ca_dir,
            database,
            listen: raw.listen.unwrap_or_else(|| "0.0.0.0:8443".to_owned()),
            ops_listen,
            public_url: raw
                .public_url
                .unwrap_or_else(|| "https://localhost:8443".to_owned()),
            server_names,
            timezone,
            settlement_cron: raw
                .settlement_cron
                .unwrap_or_else(|| "0 0 2 * * *".to_owned()),
            settlement_enabled: match raw.settlement_enabled {
                Some(v) => parse_bool("ALLIANCE_SETTLEMENT_ENABLED", &v)?,
                None => true,
            },
            max_backdate_days,
            max_txn_fen,
            idempotency_retention_hours,
            csv_bom: match raw.csv_bom {
                Some(v) => parse_bool("ALLIANCE_CSV_BOM", &v)?,
                None => false,
            },
            log_format,
            verify_requests_per_minute: match raw.verify_requests_per_minute {
                Some(v) => parse_num("ALLIANCE_VERIFY_REQUESTS_PER_MINUTE", &v)?,
                None => 6000,
            },
            verify_members_per_day: match raw.verify_members_per_day {
                Some(v) => parse_num("ALLIANCE_VERIFY_MEMBERS_PER_DAY", &v)?,
                None => 20000,
            },
            verify_not_found_burst: positive(
                "ALLIANCE_VERIFY_NOT_FOUND_BURST",
                raw.verify_not_found_burst,
                20,
            )?,
            rate_limit_per_second: positive(
                "ALLIANCE_RATE_LIMIT_PER_SECOND",
                raw.rate_limit_per_second,
                rate_limit::DEFAULT_PER_SECOND,
            )?,
            rate_limit_burst: positive(
                "ALLIANCE_RATE_LIMIT_BURST",
                raw.rate_limit_burst,
                rate_limit::DEFAULT_BURST,
            )?,
            db_pool_size,
            max_in_flight_per_worker: at_most(
                "ALLIANCE_MAX_IN_FLIGHT_PER_WORKER",
                positive(
                    "ALLIANCE_MAX_IN_FLIGHT_PER_WORKER",
                    raw.max_in_flight_per_worker,
                    in_flight_default,
                )?,
                admission::MAX_IN_FLIGHT_LIMIT,
            )?,
            max_waiting_per_worker: at_most(
                "ALLIANCE_MAX_WAITING_PER_WORKER",
                positive(
                    "ALLIANCE_MAX_WAITING_PER_WORKER",
                    raw.max_waiting_per_worker,
                    admission::DEFAULT_MAX_WAITING,
                )?,
                admission::MAX_WAITING_LIMIT,
            )?,
            body_timeout_ms: within(
                "ALLIANCE_BODY_TIMEOUT_MS",
                raw.body_timeout_ms,
                DEFAULT_BODY_TIMEOUT_MS,
                100,
                600_000,
            )?,
            max_slow_bodies_per_identity: within(
                "ALLIANCE_MAX_SLOW_BODIES_PER_IDENTITY",
                raw.max_slow_bodies_per_identity,
                DEFAULT_MAX_SLOW_BODIES_PER_IDENTITY,
                1,
                1_024,
            )?,
            uploads_per_partner_per_day: within(
                "ALLIANCE_UPLOADS_PER_PARTNER_PER_DAY",
                raw.uploads_per_partner_per_day,
                DEFAULT_UPLOADS_PER_PARTNER_PER_DAY,
                1,
                100_000,
            )?,
            upload_bytes_per_partner_per_day: within(
                "ALLIANCE_UPLOAD_BYTES_PER_PARTNER_PER_DAY",
                raw.upload_bytes_per_partner_per_day,
                DEFAULT_UPLOAD_BYTES_PER_PARTNER_PER_DAY,
                4 * 1024 * 1024,
                1 << 40,
            )?,
            danger_ops_listen_non_loopback,
            job_intervals: {
                let d = JobIntervals::default();
                let ms = |key, v, default| within(key, v, default, 10, 86_400_000);
                JobIntervals {
                    prune_nonces_ms: ms(
                        "ALLIANCE_JOB_PRUNE_NONCES_INTERVAL_MS",
                        raw.job_prune_nonces_interval_ms,
                        d.prune_nonces_ms,
                    )?,
                    checkpoint_wal_ms: ms(
                        "ALLIANCE_JOB_CHECKPOINT_WAL_INTERVAL_MS",
                        raw.job_checkpoint_wal_interval_ms,
                        d.checkpoint_wal_ms,
                    )?,
                    link_chains_ms: ms(
                        "ALLIANCE_JOB_LINK_CHAINS_INTERVAL_MS",
                        raw.job_link_chains_interval_ms,
                        d.link_chains_ms,
                    )?,
                    planner_stats_ms: ms(
                        "ALLIANCE_JOB_PLANNER_STATS_INTERVAL_MS",
                        raw.job_planner_stats_interval_ms,
                        d.planner_stats_ms,
                    )?,
                    registry_ms: ms(
                        "ALLIANCE_JOB_REGISTRY_INTERVAL_MS",
                        raw.job_registry_interval_ms,
                        d.registry_ms,
                    )?,
                    reload_crl_ms: ms(
                        "ALLIANCE_JOB_RELOAD_CRL_INTERVAL_MS",
                        raw.job_reload_crl_interval_ms,
                        d.reload_crl_ms,
                    )?,
                }
            },
            home,
        })
    }

    /// Refuses an ops listener off loopback unless the danger setting allows it: checked by
    /// `serve`, which binds it (other commands never do).
    pub fn check_ops_listen(&self) -> Result<(), ConfigError> {
        check_ops_listen(&self.ops_listen, self.danger_ops_listen_non_loopback)
    }

    pub fn certs_dir(&self) -> PathBuf {
        self.home.join("certs")
    }

    pub fn bundles_dir(&self) -> PathBuf {
        self.home.join("bundles")
    }

    pub fn statements_dir(&self) -> PathBuf {
        self.home.join("statements")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.home.join("data")
    }

    /// The effective configuration as TOML-like lines, secrets redacted.
    pub fn render(&self) -> String {
        let lines = [
            ("ALLIANCE_HOME", self.home.display().to_string()),
            ("ALLIANCE_CA_DIR", self.ca_dir.display().to_string()),
            ("ALLIANCE_DATABASE_URL", self.database.redacted()),
            ("ALLIANCE_LISTEN", self.listen.clone()),
            ("ALLIANCE_OPS_LISTEN", self.ops_listen.clone()),
            ("ALLIANCE_PUBLIC_URL", self.public_url.clone()),
            ("ALLIANCE_SERVER_NAMES", self.server_names.join(",")),
            ("ALLIANCE_TIMEZONE", self.timezone.name().to_owned()),
            ("ALLIANCE_SETTLEMENT_CRON", self.settlement_cron.clone()),
            (
                "ALLIANCE_SETTLEMENT_ENABLED",
                self.settlement_enabled.to_string(),
            ),
            (
                "ALLIANCE_MAX_BACKDATE_DAYS",
                self.max_backdate_days.to_string(),
            ),
            ("ALLIANCE_MAX_TXN_FEN", self.max_txn_fen.to_string()),
            (
                "ALLIANCE_IDEMPOTENCY_RETENTION_HOURS",
                self.idempotency_retention_hours.to_string(),
            ),
            ("ALLIANCE_CSV_BOM", self.csv_bom.to_string()),
            (
                "ALLIANCE_LOG_FORMAT",
                match self.log_format {
                    LogFormat::Pretty => "pretty".to_owned(),
                    LogFormat::Json => "json".to_owned(),
                },
            ),
            (
                "ALLIANCE_VERIFY_REQUESTS_PER_MINUTE",
                self.verify_requests_per_minute.to_string(),
            ),
            (
                "ALLIANCE_VERIFY_MEMBERS_PER_DAY",
                self.verify_members_per_day.to_string(),
            ),
            (
                "ALLIANCE_VERIFY_NOT_FOUND_BURST",
                self.verify_not_found_burst.to_string(),
            ),
            (
                "ALLIANCE_RATE_LIMIT_PER_SECOND",
                self.rate_limit_per_second.to_string(),
            ),
            (
                "ALLIANCE_RATE_LIMIT_BURST",
                self.rate_limit_burst.to_string(),
            ),
            ("ALLIANCE_DB_POOL_SIZE", self.db_pool_size.to_string()),
            (
                "ALLIANCE_MAX_IN_FLIGHT_PER_WORKER",
                self.max_in_flight_per_worker.to_string(),
            ),
            (
                "ALLIANCE_MAX_WAITING_PER_WORKER",
                self.max_waiting_per_worker.to_string(),
            ),
            ("ALLIANCE_BODY_TIMEOUT_MS", self.body_timeout_ms.to_string()),
            (
                "ALLIANCE_MAX_SLOW_BODIES_PER_IDENTITY",
                self.max_slow_bodies_per_identity.to_string(),
            ),
            (
                "ALLIANCE_UPLOADS_PER_PARTNER_PER_DAY",
                self.uploads_per_partner_per_day.to_string(),
            ),
            (
                "ALLIANCE_UPLOAD_BYTES_PER_PARTNER_PER_DAY",
                self.upload_bytes_per_partner_per_day.to_string(),
            ),
            (
                "ALLIANCE_DANGER_OPS_LISTEN_NON_LOOPBACK",
                self.danger_ops_listen_non_loopback.to_string(),
            ),
            (
                "ALLIANCE_JOB_PRUNE_NONCES_INTERVAL_MS",
                self.job_intervals.prune_nonces_ms.to_string(),
            ),
            (
                "ALLIANCE_JOB_CHECKPOINT_WAL_INTERVAL_MS",
                self.job_intervals.checkpoint_wal_ms.to_string(),
            ),
            (
                "ALLIANCE_JOB_LINK_CHAINS_INTERVAL_MS",
                self.job_intervals.link_chains_ms.to_string(),
            ),
            (
                "ALLIANCE_JOB_PLANNER_STATS_INTERVAL_MS",
                self.job_intervals.planner_stats_ms.to_string(),
            ),
            (
                "ALLIANCE_JOB_REGISTRY_INTERVAL_MS",
                self.job_intervals.registry_ms.to_string(),
            ),
            (
                "ALLIANCE_JOB_RELOAD_CRL_INTERVAL_MS",
                self.job_intervals.reload_crl_ms.to_string(),
            ),
        ];
        let mut out = String::new();
        for (k, v) in lines {
            out.push_str(&format!("{k} = {v:?}\n"));
        }
        out.push_str("# secrets (member-ref key, phone key, signing keys) live in files under ALLIANCE_HOME/certs and are never printed\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_pick_the_backend_by_scheme() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/a.db").unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("data/a.db"))
        );
        assert!(matches!(
            DatabaseUrl::parse("postgres://u:p@h/db").unwrap(),
            DatabaseUrl::Postgres(_)
        ));
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
        assert!(DatabaseUrl::parse("data/alliance.db").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        let u = DatabaseUrl::parse("postgres://gw:s3cret@db.internal:5432/alliance").unwrap();
        let shown = u.redacted();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("REDACTED"));
    }

    #[test]
    fn defaults_follow_the_contract() {
        let s = Settings::for_home(Path::new("/srv/a"));
        assert_eq!(s.listen, "0.0.0.0:8443");
        assert_eq!(s.ops_listen, "127.0.0.1:9090");
        assert_eq!(s.ca_dir, PathBuf::from("/srv/a/certs"));
        assert_eq!(
            s.database,
            DatabaseUrl::Sqlite(PathBuf::from("/srv/a/data/alliance.db"))
        );
        assert_eq!(s.timezone, chrono_tz::Asia::Shanghai);
        assert_eq!(s.max_txn_fen, 10_000_000);
    }

    #[test]
    fn the_ops_listener_stays_on_loopback_unless_the_danger_setting_allows_it() {
        let with = |listen: &str, danger: Option<&str>| {
            Settings::from_raw(
                PathBuf::from("/srv/a"),
                Raw {
                    ops_listen: Some(listen.to_owned()),
                    danger_ops_listen_non_loopback: danger.map(str::to_owned),
                    ..Raw::default()
                },
            )
            .and_then(|s| s.check_ops_listen().map(|()| s))
        };
        for ok in [
            "127.0.0.1:9090",
            "[::1]:9090",
            "localhost:9090",
            "127.0.0.2:0",
        ] {
            assert!(with(ok, None).is_ok(), "{ok}");
        }
        for refused in [
            "0.0.0.0:9090",
            "[::]:9090",
            "10.1.2.3:9090",
            "ops.example:9090",
        ] {
            let e = with(refused, None).unwrap_err().to_string();
            assert!(e.contains("ALLIANCE_OPS_LISTEN"), "{refused}: {e}");
            assert!(e.contains("DANGER"), "{refused}: {e}");
        }
        assert!(with("0.0.0.0:9090", Some("true")).is_ok());
        assert!(with("9090", None).is_err());
    }

    #[test]
    fn admission_places_default_by_backend_and_are_bounded() {
        let home = PathBuf::from("/srv/a");
        let with = |url: Option<&str>, places: Option<&str>| {
            Settings::from_raw(
                home.clone(),
                Raw {
                    database_url: url.map(str::to_owned),
                    max_in_flight_per_worker: places.map(str::to_owned),
                    ..Raw::default()
                },
            )
        };
        let sqlite = with(None, None).unwrap();
        assert_eq!(
            (
                sqlite.max_in_flight_per_worker,
                sqlite.max_waiting_per_worker
            ),
            (16, 1024)
        );
        let pg = with(Some("postgres://u@h/db"), None).unwrap();
        assert_eq!(pg.max_in_flight_per_worker, 64);
        assert_eq!(
            with(None, Some("4096")).unwrap().max_in_flight_per_worker,
            4096
        );
        for bad in ["0", "4097", "many"] {
            let e = with(None, Some(bad)).unwrap_err().to_string();
            assert!(
                e.contains("ALLIANCE_MAX_IN_FLIGHT_PER_WORKER"),
                "{bad}: {e}"
            );
        }
    }
}
