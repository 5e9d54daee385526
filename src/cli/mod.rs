//! The `alliance-gateway` command line. `scripts/` wraps these subcommands.
use crate::config::Settings;
use crate::db::{self, DbConn};
use crate::members::import::{self, ImportError, Progress};
use crate::partners::onboard::{self, Brought, Outcome};
use crate::partners::spec;
use crate::pki::ca::Ca;
use crate::pki::keys::PublicKey;
use crate::pki::secrets::MemberKeys;
use crate::pki::{files, Paths};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "alliance-gateway",
    version,
    about = "Settlement gateway of the mall's partner alliance (会员特权通)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the CA, server certificate, gateway signing key, member-data keys and database.
    Init {
        /// The alliance's display name (goes into the CA's subject).
        #[arg(long, default_value = "会员特权通")]
        name: String,
        /// Replace an existing CA (every certificate it issued stops working). Member-data
        /// keys are never replaced.
        #[arg(long)]
        force: bool,
    },
    /// Validate a partner spec without registering anything.
    CheckSpec { spec: PathBuf },
    /// Register a partner from its spec (or update name/contact/offer of a registered one).
    OnboardPartner {
        spec: PathBuf,
        /// The partner's own request-signing public key (PEM); no signing key is generated.
        #[arg(long, conflicts_with = "csr")]
        public_key: Option<PathBuf>,
        /// The partner's CSR (PEM); the CA signs its public key and no client key is generated.
        #[arg(long)]
        csr: Option<PathBuf>,
    },
    /// Import members from `card_no,tier,status,birth_month,opening_points,phone` CSV.
    /// Exit 0: all imported; 3: some lines rejected (the rest imported); 2: unusable file.
    ImportMembers {
        file: PathBuf,
        /// Also write the report of rejected lines here.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Apply pending database migrations.
    Migrate,
    /// Serve the partner API (mTLS) and the ops listener.
    Serve,
    /// Print the effective configuration, secrets redacted.
    Config,
    /// Partners: list, show, suspend, reactivate, rotate-key, renew-cert.
    #[command(subcommand)]
    Partner(lifecycle::PartnerCommand),
    /// Certificates: revoke one by serial (registry at once, CRL for new handshakes).
    #[command(subcommand)]
    Cert(lifecycle::CertCommand),
    /// Finance staff: add, remove, list.
    #[command(subcommand)]
    Finance(lifecycle::FinanceCommand),
    /// The audit log of admin and finance actions: verify its hash chain, list it.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Check a partner's hash chain over its sales and reversals (exit 1 naming the first
    /// record that does not match). Records still waiting for the linker (PostgreSQL) are
    /// linked first, as a running gateway would link them.
    VerifyChain { code: String },
    /// Close and settle business days by hand: every open day up to DATE (default
    /// yesterday in the alliance timezone), oldest first, writing statements/<date>/v1/.
    /// A day that has not ended is refused; a settled day is rewritten byte for byte.
    Settle {
        /// YYYY-MM-DD.
        date: Option<String>,
    },
    /// Run one upkeep job once, by hand, as `serve` runs it on its interval: prune-nonces,
    /// checkpoint-wal, link-chains, planner-stats, registry, reload-crl (checks the CRL file)
    /// or settle-due (closes every day that is due).
    RunJob { job: crate::jobs::Job },
    /// Check a settled day offline: manifests' signatures, files' SHA-256 and rows, totals
    /// and, when the database is reachable, each partner's chain head.
    VerifyStatement {
        /// A run directory: statements/<date>/v<N>.
        dir: PathBuf,
        /// The gateway's public keys (a JWKS, `GET /v1/keys`, or a bundle's partner.json);
        /// default: the registry's.
        #[arg(long)]
        keys: Option<PathBuf>,
    },
    /// Same as `audit verify`.
    #[command(hide = true)]
    VerifyAuditLog,
}

mod audit;
mod lifecycle;

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(1)
}

fn connect(settings: &Settings) -> Result<DbConn, String> {
    let mut conn = db::Manager::new(settings.database.clone())
        .connect()
        .map_err(|e| {
            format!(
                "cannot open the database {}: {e}",
                settings.database.redacted()
            )
        })?;
    db::migrate(&mut conn).map_err(|e| e.to_string())?;
    Ok(conn)
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("configuration: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Config => {
            print!("{}", settings.render());
            ExitCode::SUCCESS
        }
        Command::Serve => serve(settings),
        Command::Init { name, force } => init(&settings, &name, force),
        Command::CheckSpec { spec } => match read_spec(&spec) {
            Ok(s) => {
                println!("{}: ok (partner {})", spec.display(), s.code);
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::OnboardPartner {
            spec,
            public_key,
            csr,
        } => onboard_partner(&settings, &spec, public_key, csr),
        Command::ImportMembers { file, report } => import_members(&settings, &file, report),
        Command::Migrate => match connect(&settings) {
            Ok(_) => {
                println!("database is up to date ({})", settings.database.redacted());
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Command::Partner(cmd) => lifecycle::partner(&settings, cmd),
        Command::Cert(cmd) => lifecycle::cert(&settings, cmd),
        Command::Finance(cmd) => lifecycle::finance(&settings, cmd),
        Command::Audit(cmd) => audit::run(&settings, cmd),
        Command::VerifyChain { code } => verify_chain(&settings, &code),
        Command::Settle { date } => settle(&settings, date.as_deref()),
        Command::VerifyStatement { dir, keys } => verify_statement(&settings, &dir, keys),
        Command::VerifyAuditLog => audit::run(&settings, audit::AuditCommand::Verify),
        Command::RunJob { job } => run_job(settings, job),
    }
}

fn run_job(settings: Settings, job: crate::jobs::Job) -> ExitCode {
    let ran = actix_web::rt::System::new().block_on(async move {
        let paths = Paths::new(&settings);
        let key = crate::pki::keys::PrivateKey::from_pkcs8_pem(
            &crate::pki::files::read_to_string(&paths.gateway_signing_key())?,
        )?;
        let key_id = crate::pki::keys::gateway_key_id(&key.public_key());
        let url = settings.database.clone();
        let store =
            tokio::task::spawn_blocking(move || crate::store::Store::open(&url, 1)).await??;
        let env = crate::jobs::Env {
            store,
            settings: std::sync::Arc::new(settings),
            clock: crate::clock::system(),
            gateway_key: std::sync::Arc::new(key),
            gateway_key_id: std::sync::Arc::from(key_id.as_str()),
            rate_limits: None,
            crl: None,
        };
        anyhow::Ok(job.run(&env).await?)
    });
    match ran {
        Ok(report) => {
            println!("{}: {}", job.name(), report.summary);
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("{}: {e:#}", job.name())),
    }
}

fn serve(settings: Settings) -> ExitCode {
    crate::telemetry::init(settings.log_format);
    let result = actix_web::rt::System::new().block_on(async move {
        let app = crate::startup::Application::build(settings).await?;
        app.run_until_stopped().await?;
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format!("{e:#}")),
    }
}

fn init(settings: &Settings, name: &str, force: bool) -> ExitCode {
    let mut conn = match connect(settings) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    match crate::alliance::init(settings, &mut conn, name, force) {
        Ok(report) => {
            let paths = Paths::new(settings);
            println!("alliance initialised in {}", settings.home.display());
            println!("  CA certificate:      {}", paths.ca_cert().display());
            println!("  CA key (keep safe):  {}", paths.ca_key().display());
            println!(
                "  server certificate:  {} ({})",
                paths.server_cert().display(),
                settings.server_names.join(", ")
            );
            println!("  gateway key id:      {}", report.gateway_key_id);
            println!("  database:            {}", settings.database.redacted());
            if !report.created_member_keys {
                println!("  member-data keys:    kept (never replaced)");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn read_spec(path: &std::path::Path) -> Result<spec::PartnerSpec, ExitCode> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| fail(format!("{name}: {e}")))?;
    spec::parse(&name, &src).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        ExitCode::from(1)
    })
}

fn onboard_partner(
    settings: &Settings,
    spec_path: &std::path::Path,
    public_key: Option<PathBuf>,
    csr: Option<PathBuf>,
) -> ExitCode {
    let spec = match read_spec(spec_path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut brought = Brought::default();
    if let Some(path) = public_key {
        match files::read_to_string(&path).and_then(|pem| PublicKey::from_spki_pem(&pem)) {
            Ok(k) => brought.public_key = Some(k),
            Err(e) => return fail(format!("--public-key {}: {e}", path.display())),
        }
    }
    if let Some(path) = csr {
        match files::read_to_string(&path) {
            Ok(pem) => brought.csr_pem = Some(pem),
            Err(e) => return fail(e),
        }
    }
    let mut conn = match connect(settings) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let paths = Paths::new(settings);
    // The CA key is only needed for a new partner; an update works without it.
    let ca = Ca::load(&paths).ok();
    let today = crate::alliance::business_day(chrono::Utc::now(), settings.timezone);
    match onboard::onboard(settings, &mut conn, ca.as_ref(), &spec, brought, today) {
        Ok(Outcome::Registered {
            key_id,
            serial_hex,
            bundle,
        }) => {
            println!("onboarded partner {}", spec.code);
            println!(
                "  offer version:       1 (effective {})",
                spec.effective_from
            );
            println!("  certificate serial:  {serial_hex}");
            println!("  signing key id:      {key_id}");
            println!("  bundle:              {}", bundle.display());
            ExitCode::SUCCESS
        }
        Ok(Outcome::Updated {
            new_offer_version,
            details_changed,
            changes,
        }) => {
            println!(
                "partner {} is already onboarded; certificates and keys unchanged",
                spec.code
            );
            if details_changed {
                println!("  name/category/capabilities/contact updated");
            }
            match new_offer_version {
                Some(v) => {
                    println!(
                        "  new offer version:   {v} (effective {})",
                        spec.effective_from
                    );
                    for c in &changes {
                        println!("    {c}");
                    }
                }
                None => println!("  offer unchanged"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("{}: {e}", spec_path.display())),
    }
}

struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn set_total(&self, total: u64) {
        self.0.set_length(total);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
}

fn import_members(
    settings: &Settings,
    file: &std::path::Path,
    report_path: Option<PathBuf>,
) -> ExitCode {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let keys = match MemberKeys::load(&Paths::new(settings)) {
        Ok(k) => k,
        Err(e) => return fail(format!("member-data keys: {e} (run init first)")),
    };
    let mut conn = match connect(settings) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    // indicatif hides the bar by itself when stderr is not a terminal.
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} members ({eta})")
    {
        bar.set_style(style);
    }
    let progress = Bar(bar);
    match import::import(&mut conn, &keys, &bytes, &progress) {
        Ok(report) => {
            progress.0.finish_and_clear();
            println!(
                "{}: {} created, {} updated, {} unchanged, {} rejected",
                file.display(),
                report.created,
                report.updated,
                report.unchanged,
                report.rejected.len()
            );
            let csv = report.to_csv();
            if !report.rejected.is_empty() {
                eprint!("{csv}");
            }
            if let Some(path) = report_path {
                if let Err(e) = std::fs::write(&path, &csv) {
                    return fail(format!("{}: {e}", path.display()));
                }
            }
            if report.rejected.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Err(ImportError::Unusable(message)) => {
            progress.0.finish_and_clear();
            eprintln!("error: {}: {message}; nothing was imported", file.display());
            ExitCode::from(2)
        }
        Err(e) => fail(e),
    }
}

fn verify_chain(settings: &Settings, code: &str) -> ExitCode {
    let code = match crate::domain::PartnerCode::parse(code) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let mut conn = match connect(settings) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if let Err(e) = crate::transactions::chain::link_all(&mut conn) {
        return fail(e);
    }
    match crate::transactions::chain::verify(&mut conn, code.as_str()) {
        Ok(crate::transactions::chain::ChainCheck::Intact { records, head }) => {
            println!("partner {code}: chain intact ({records} records, head {head})");
            ExitCode::SUCCESS
        }
        Ok(crate::transactions::chain::ChainCheck::Broken { seq, reason }) => fail(format!(
            "partner {code}: chain broken at seq {seq}: {reason}"
        )),
        Err(e) => fail(e),
    }
}

fn settle(settings: &Settings, date: Option<&str>) -> ExitCode {
    let now = chrono::Utc::now();
    let through = match date {
        Some(d) => match crate::domain::day::parse_day(d) {
            Ok(d) => d,
            Err(e) => return fail(format!("{d:?}: {e}")),
        },
        None => {
            let today = crate::alliance::business_day(now, settings.timezone);
            match today.pred_opt() {
                Some(d) => d,
                None => return fail("no day before today"),
            }
        }
    };
    let paths = Paths::new(settings);
    let key = match files::read_to_string(&paths.gateway_signing_key())
        .and_then(|pem| crate::pki::keys::PrivateKey::from_pkcs8_pem(&pem))
    {
        Ok(k) => k,
        Err(e) => return fail(format!("gateway signing key: {e}")),
    };
    let key_id = crate::pki::keys::gateway_key_id(&key.public_key());
    let mut conn = match connect(settings) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let signer = crate::settlement::Signer {
        key: &key,
        key_id: &key_id,
    };
    // A spinner while days settle (indicatif hides it when stderr is not a terminal), then a
    // summary table.
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!("settling through {through}"));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let outcome = crate::settlement::settle_through(&mut conn, settings, &signer, through, now);
    bar.finish_and_clear();
    match outcome {
        Ok(days) => {
            println!(
                "{:<12} {:>3}  {:<14} {:>8} {:>7} {:>13} {:>13}  FILES",
                "DAY", "V", "", "PARTNERS", "LINES", "DISCREPANCIES", "NET (CNY)"
            );
            for d in days {
                println!(
                    "{:<12} {:>3}  {:<14} {:>8} {:>7} {:>13} {:>13}  {}",
                    d.business_date.to_string(),
                    d.version,
                    if d.newly_closed {
                        "closed"
                    } else {
                        "already closed"
                    },
                    d.partners,
                    d.lines,
                    d.discrepancies,
                    d.net_yuan,
                    d.dir.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn verify_statement(settings: &Settings, dir: &std::path::Path, keys: Option<PathBuf>) -> ExitCode {
    let mut conn = connect(settings).ok();
    let jwks = match keys {
        Some(path) => match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => return fail(format!("--keys {}: {e}", path.display())),
        },
        None => match conn.as_mut().map(crate::alliance::gateway_jwks) {
            Some(Ok(v)) => v,
            Some(Err(e)) => return fail(e),
            None => return fail("no database to read the gateway keys from: pass --keys FILE"),
        },
    };
    match crate::settlement::verify::verify_dir(dir, &jwks, conn.as_mut()) {
        Ok(v) => {
            println!(
                "{}: verified ({} files, {} partners{})",
                dir.display(),
                v.files,
                v.partners,
                if v.chains_checked {
                    ", chain heads checked"
                } else {
                    ""
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("{}: {e}", dir.display())),
    }
}
