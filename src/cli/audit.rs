//! `alliance-gateway audit verify|list`.
use super::{connect, fail};
use crate::audit::{check_chain, result_of, ChainCheck};
use crate::config::Settings;
use crate::db::audit_log::AuditEntry;
use clap::Subcommand;
use std::process::ExitCode;

/// The most entries `audit list` prints at once.
const MAX_LIST: i64 = 10_000;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Re-compute the hash chain; exit 1 naming the first entry that does not match.
    Verify,
    /// Show the latest entries: when, who (OS user), what, subject, result.
    List {
        /// How many of the latest entries (at most 10000).
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(settings: &Settings, cmd: AuditCommand) -> ExitCode {
    let mut conn = match connect(settings) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    match cmd {
        AuditCommand::Verify => match check_chain(&mut conn) {
            Ok(ChainCheck::Intact { entries, head }) => {
                println!("audit log: chain intact ({entries} entries, head {head})");
                ExitCode::SUCCESS
            }
            Ok(ChainCheck::Broken { id }) => fail(format!(
                "audit log: entry {id} does not match the chain (edited, inserted or deleted rows)"
            )),
            Err(e) => fail(e),
        },
        AuditCommand::List { limit, json } => {
            if !(1..=MAX_LIST).contains(&limit) {
                return fail(format!("--limit must be between 1 and {MAX_LIST}"));
            }
            let entries = match AuditEntry::recent(&mut conn, limit) {
                Ok(e) => e,
                Err(e) => return fail(e),
            };
            for e in &entries {
                let at =
                    e.at.and_utc()
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                if json {
                    let detail: serde_json::Value =
                        serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null);
                    println!(
                        "{}",
                        serde_json::json!({
                            "id": e.id, "at": at, "actor": e.actor, "action": e.action,
                            "subject": e.subject, "result": result_of(e), "detail": detail,
                            "hash": e.hash,
                        })
                    );
                } else {
                    println!(
                        "{:>6}  {at}  {:<28} {:<22} {:<24} {}",
                        e.id,
                        e.actor,
                        e.action,
                        e.subject,
                        result_of(e)
                    );
                }
            }
            ExitCode::SUCCESS
        }
    }
}
