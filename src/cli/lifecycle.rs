//! `alliance-gateway partner|cert|finance …`: the identity lifecycle. Every change is audited,
//! failures too; re-running a command that is already in effect succeeds and says so.
use super::{connect, fail};
use crate::config::Settings;
use crate::db::DbConn;
use crate::domain::{FinanceName, PartnerCode};
use crate::lifecycle::{self, finance, partners, report, Change, LifecycleError};
use crate::pki::ca::Ca;
use crate::pki::keys::PublicKey;
use crate::pki::{files, Paths};
use chrono::TimeDelta;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum PartnerCommand {
    /// Every partner: status, certificates (expiring within 30 days flagged), keys.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One partner: status, certificates with serials and expiry, keys with state and
    /// overlap end, offer versions.
    Show {
        code: String,
        #[arg(long)]
        json: bool,
    },
    /// Refuse the partner's next request with 403 partner-suspended (open connections
    /// included). Keeps all history. Suspending a suspended partner is not an error.
    Suspend {
        code: String,
        /// Why (recorded in the registry and the audit log; at most 200 characters).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a suspension.
    Reactivate { code: String },
    /// Register signing key <CODE>/k<N+1> and retire the current one after an overlap.
    RotateKey {
        code: String,
        /// The partner's own new public key (PEM); no private key is generated.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// How long the old key keeps verifying (default 24).
        #[arg(long, conflicts_with_all = ["overlap_minutes", "now"])]
        overlap_hours: Option<u32>,
        /// The overlap in minutes instead of hours.
        #[arg(long, conflicts_with = "now")]
        overlap_minutes: Option<u32>,
        /// Emergency: the old key is refused (unknown-key) from the next request on.
        #[arg(long)]
        now: bool,
    },
    /// Issue a new client certificate; the old one stays valid until it expires or is revoked.
    RenewCert {
        code: String,
        /// The partner's CSR (PEM): the partner keeps its TLS private key to itself.
        #[arg(long)]
        csr: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Revoke one certificate: 403 certificate-not-active from the next request on, and a
    /// new signed certs/crl.pem so new handshakes fail once the gateway reloads it (≤ 2 s).
    Revoke {
        /// The serial in hex, as `partner show` prints it (either case, colons allowed).
        serial_hex: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum FinanceCommand {
    /// Create a finance user: bundles/finance/<NAME>/ with certificate, key, PKCS#12 and
    /// signing key. The PKCS#12 password comes from ALLIANCE_P12_PASSWORD, or is generated
    /// and printed once (it is stored nowhere).
    Add { name: String },
    /// Remove a finance user: certificates revoked, signing keys retired, at once.
    Remove { name: String },
    /// Every finance user with certificates and keys.
    List {
        #[arg(long)]
        json: bool,
    },
}

/// Runs a mutating command; on failure, records it in the audit log and prints one line.
fn audited<T>(
    conn: &mut DbConn,
    action: &str,
    subject: &str,
    args: serde_json::Value,
    f: impl FnOnce(&mut DbConn) -> Result<T, LifecycleError>,
) -> Result<T, ExitCode> {
    f(conn).map_err(|e| {
        let message = e.to_string();
        if let Err(audit_err) =
            crate::audit::record_admin_failure(conn, action, subject, args, &message)
        {
            eprintln!("warning: could not record the failure in the audit log: {audit_err}");
        }
        fail(message)
    })
}

fn parse_code(code: &str) -> Result<PartnerCode, ExitCode> {
    PartnerCode::parse(code).map_err(fail)
}

fn print_json(value: &impl serde::Serialize) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn now() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}

fn flag(soon: bool) -> &'static str {
    if soon {
        "  EXPIRES WITHIN 30 DAYS"
    } else {
        ""
    }
}

pub fn partner(settings: &Settings, cmd: PartnerCommand) -> ExitCode {
    match run_partner(settings, cmd) {
        Ok(code) | Err(code) => code,
    }
}

fn run_partner(settings: &Settings, cmd: PartnerCommand) -> Result<ExitCode, ExitCode> {
    let mut conn = connect(settings).map_err(fail)?;
    match cmd {
        PartnerCommand::List { json } => {
            let partners = report::partners(&mut conn, now()).map_err(fail)?;
            if json {
                return Ok(print_json(&partners));
            }
            println!(
                "{:<14} {:<9} {:<8} {:<22} {:<14} NAME",
                "CODE", "STATUS", "CERTS", "NEXT EXPIRY", "ACTIVE KEY"
            );
            for p in &partners {
                let active: Vec<_> = p
                    .certificates
                    .iter()
                    .filter(|c| c.status == "active")
                    .collect();
                let next_expiry = active
                    .iter()
                    .map(|c| c.not_after.as_str())
                    .min()
                    .unwrap_or("-");
                let key = p
                    .keys
                    .iter()
                    .rev()
                    .find(|k| k.state == "active")
                    .map(|k| k.key_id.as_str())
                    .unwrap_or("-");
                println!(
                    "{:<14} {:<9} {:<8} {:<22} {:<14} {}{}",
                    p.code,
                    p.status,
                    format!("{}/{}", active.len(), p.certificates.len()),
                    next_expiry,
                    key,
                    p.name,
                    flag(p.expires_soon)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PartnerCommand::Show { code, json } => {
            let code = parse_code(&code)?;
            let p = report::partner(&mut conn, &code, now())
                .map_err(fail)?
                .ok_or_else(|| fail(format!("partner {code} is not onboarded")))?;
            if json {
                return Ok(print_json(&p));
            }
            println!("partner      {} — {} ({})", p.code, p.name, p.category);
            match &p.status_reason {
                Some(r) => println!("status       {} ({r})", p.status),
                None => println!("status       {}", p.status),
            }
            println!("capabilities {}", p.capabilities.join(", "));
            println!("certificates");
            for c in &p.certificates {
                println!(
                    "  {}  {:<8} {} → {}{}{}",
                    c.serial,
                    c.status,
                    c.not_before,
                    c.not_after,
                    c.revoked_at
                        .as_ref()
                        .map(|t| format!("  revoked {t}"))
                        .unwrap_or_default(),
                    flag(c.expires_soon)
                );
            }
            println!("signing keys");
            for k in &p.keys {
                let until = match (&k.retire_after, k.state.as_str()) {
                    (Some(t), "overlap") => format!("  verifies until {t}"),
                    (Some(t), _) => format!("  retired {t}"),
                    _ => String::new(),
                };
                println!("  {:<16} {:<8} {}{until}", k.key_id, k.state, k.alg);
            }
            println!("offer versions");
            for o in &p.offer_versions {
                println!("  v{}  effective {}", o.version, o.effective_from);
            }
            Ok(ExitCode::SUCCESS)
        }
        PartnerCommand::Suspend { code, reason } => {
            let code = parse_code(&code)?;
            let args = serde_json::json!({ "reason": reason });
            let change = audited(&mut conn, "partner.suspend", code.as_str(), args, |c| {
                partners::suspend(c, &code, reason.as_deref())
            })?;
            match change {
                Change::Done => println!(
                    "partner {code} suspended: its next request gets 403 partner-suspended"
                ),
                Change::AlreadyInEffect => {
                    println!("partner {code} is already suspended; nothing changed")
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PartnerCommand::Reactivate { code } => {
            let code = parse_code(&code)?;
            let change = audited(
                &mut conn,
                "partner.reactivate",
                code.as_str(),
                serde_json::json!({}),
                |c| partners::reactivate(c, &code),
            )?;
            match change {
                Change::Done => println!("partner {code} reactivated"),
                Change::AlreadyInEffect => {
                    println!("partner {code} is already active; nothing changed")
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PartnerCommand::RotateKey {
            code,
            public_key,
            overlap_hours,
            overlap_minutes,
            now,
        } => {
            let code = parse_code(&code)?;
            let overlap = if now {
                TimeDelta::zero()
            } else if let Some(m) = overlap_minutes {
                TimeDelta::minutes(m.into())
            } else {
                TimeDelta::hours(
                    overlap_hours
                        .unwrap_or(partners::DEFAULT_OVERLAP_HOURS)
                        .into(),
                )
            };
            let args = serde_json::json!({
                "public_key": public_key.as_ref().map(|p| p.display().to_string()),
                "overlap_s": overlap.num_seconds(),
            });
            let rotated = audited(&mut conn, "partner.rotate_key", code.as_str(), args, |c| {
                let brought = match &public_key {
                    Some(path) => Some(
                        files::read_to_string(path)
                            .and_then(|pem| PublicKey::from_spki_pem(&pem))
                            .map_err(|e| {
                                LifecycleError::Refused(format!(
                                    "--public-key {}: {e}",
                                    path.display()
                                ))
                            })?,
                    ),
                    None => None,
                };
                partners::rotate_key(settings, c, &code, brought, overlap)
            })?;
            println!("partner {code}: new signing key {}", rotated.new_key_id);
            for (key_id, until) in &rotated.retiring {
                if overlap.is_zero() {
                    println!(
                        "  {key_id} retired now: it gets unknown-key from the next request on"
                    );
                } else {
                    println!(
                        "  {key_id} keeps verifying until {} UTC",
                        until.format("%Y-%m-%d %H:%M:%S")
                    );
                }
            }
            if rotated.wrote_private_key {
                println!(
                    "  bundle: {} (signing.key is the new key; old keys kept as signing.<kN>.key)",
                    rotated.bundle.display()
                );
            } else {
                println!(
                    "  bundle: {} (the partner keeps its private key)",
                    rotated.bundle.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PartnerCommand::RenewCert { code, csr } => {
            let code = parse_code(&code)?;
            let args = serde_json::json!({ "csr": csr.as_ref().map(|p| p.display().to_string()) });
            let renewed = audited(&mut conn, "partner.renew_cert", code.as_str(), args, |c| {
                let csr_pem = match &csr {
                    Some(path) => Some(files::read_to_string(path)?),
                    None => None,
                };
                let ca = Ca::load(&Paths::new(settings))?;
                partners::renew_cert(settings, c, &ca, &code, csr_pem.as_deref())
            })?;
            println!("partner {code}: new certificate {}", renewed.serial_hex);
            println!(
                "  valid until {} UTC",
                renewed.not_after.format("%Y-%m-%d %H:%M:%S")
            );
            if let Some(prev) = &renewed.previous_serial {
                println!(
                    "  previous certificate {prev} stays valid until it expires or is revoked"
                );
            }
            println!("  bundle: {}", renewed.bundle.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn cert(settings: &Settings, cmd: CertCommand) -> ExitCode {
    let mut conn = match connect(settings) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    match cmd {
        CertCommand::Revoke { serial_hex, reason } => {
            let args = serde_json::json!({ "serial": serial_hex, "reason": reason });
            let paths = Paths::new(settings);
            let outcome = audited(&mut conn, "certificate.revoke", &serial_hex, args, |c| {
                if let Some(r) = &reason {
                    if r.chars().count() > partners::MAX_REASON_CHARS
                        || r.chars().any(char::is_control)
                    {
                        return Err(LifecycleError::Refused(
                            "--reason must be at most 200 characters without control characters"
                                .into(),
                        ));
                    }
                }
                lifecycle::certificates::revoke(&paths, c, &serial_hex, reason.as_deref())
            });
            let revoked = match outcome {
                Ok(r) => r,
                Err(code) => return code,
            };
            match revoked.change {
                Change::Done => println!("certificate {} of {} revoked: the next request with it gets 403 certificate-not-active", revoked.serial_hex, revoked.identity),
                Change::AlreadyInEffect => println!("certificate {} of {} was already revoked", revoked.serial_hex, revoked.identity),
            }
            match revoked.crl {
                Ok(n) => {
                    println!("  CRL #{n} written to {}; the gateway reloads it within seconds", paths.crl().display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(format!("the revocation is in force, but the CRL could not be written: {e}; run `cert revoke` again where the CA key is")),
            }
        }
    }
}

pub fn finance(settings: &Settings, cmd: FinanceCommand) -> ExitCode {
    match run_finance(settings, cmd) {
        Ok(code) | Err(code) => code,
    }
}

fn run_finance(settings: &Settings, cmd: FinanceCommand) -> Result<ExitCode, ExitCode> {
    let mut conn = connect(settings).map_err(fail)?;
    match cmd {
        FinanceCommand::Add { name } => {
            let name = FinanceName::parse(&name).map_err(fail)?;
            // Never a command-line argument: it would show in `ps` and shell history.
            let password = std::env::var("ALLIANCE_P12_PASSWORD")
                .ok()
                .filter(|p| !p.is_empty());
            let args = serde_json::json!({ "password_from_env": password.is_some() });
            let added = audited(&mut conn, "finance.add", name.as_str(), args, |c| {
                let ca = Ca::load(&Paths::new(settings))?;
                finance::add(settings, c, &ca, &name, password)
            })?;
            match added {
                finance::Added::AlreadyActive => {
                    println!(
                        "finance user {} already exists; nothing changed",
                        name.as_str()
                    );
                }
                finance::Added::Created {
                    key_id,
                    serial_hex,
                    bundle,
                    generated_password,
                } => {
                    println!("finance user {} added", name.as_str());
                    println!("  certificate serial:  {serial_hex}");
                    println!("  signing key id:      {key_id}");
                    println!("  bundle:              {}", bundle.display());
                    if let Some(p) = generated_password {
                        println!("  PKCS#12 password:    {p}");
                        println!("  (shown this once and stored nowhere; hand it over separately from client.p12)");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        FinanceCommand::Remove { name } => {
            let name = FinanceName::parse(&name).map_err(fail)?;
            let paths = Paths::new(settings);
            let removed = audited(
                &mut conn,
                "finance.remove",
                name.as_str(),
                serde_json::json!({}),
                |c| finance::remove(&paths, c, &name),
            )?;
            match removed.change {
                Change::AlreadyInEffect => {
                    println!(
                        "finance user {} was already removed; nothing changed",
                        name.as_str()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Change::Done => {
                    println!(
                        "finance user {} removed; certificates revoked: {}",
                        name.as_str(),
                        if removed.revoked_serials.is_empty() {
                            "none".to_owned()
                        } else {
                            removed.revoked_serials.join(", ")
                        }
                    );
                    match removed.crl {
                        Ok(n) => {
                            println!("  CRL #{n} written to {}", paths.crl().display());
                            Ok(ExitCode::SUCCESS)
                        }
                        Err(e) => Err(fail(format!(
                            "the removal is in force, but the CRL could not be written: {e}"
                        ))),
                    }
                }
            }
        }
        FinanceCommand::List { json } => {
            let users = report::finance_users(&mut conn, now()).map_err(fail)?;
            if json {
                return Ok(print_json(&users));
            }
            println!(
                "{:<20} {:<8} {:<8} {:<22} ACTIVE KEY",
                "NAME", "STATUS", "CERTS", "NEXT EXPIRY"
            );
            for u in &users {
                let active: Vec<_> = u
                    .certificates
                    .iter()
                    .filter(|c| c.status == "active")
                    .collect();
                let next_expiry = active
                    .iter()
                    .map(|c| c.not_after.as_str())
                    .min()
                    .unwrap_or("-");
                let key = u
                    .keys
                    .iter()
                    .rev()
                    .find(|k| k.state == "active")
                    .map(|k| k.key_id.as_str())
                    .unwrap_or("-");
                println!(
                    "{:<20} {:<8} {:<8} {:<22} {}{}",
                    u.name,
                    u.status,
                    format!("{}/{}", active.len(), u.certificates.len()),
                    next_expiry,
                    key,
                    flag(u.expires_soon)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
