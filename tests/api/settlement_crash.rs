//! Crash safety: `settle` killed with SIGKILL at several points never leaves a half-written
//! file under a final name, and the next run completes with the same files as a run that
//! was never interrupted.
use crate::helpers::*;
use alliance_gateway::db::write_tx;
use alliance_gateway::transactions::input::{MemberName, Sale};
use alliance_gateway::transactions::{sale, Ctx, TxnError};
use chrono::{TimeZone, Utc};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every file under `dir`, by path relative to it.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    out
}

fn record_sales(app: &TestApp, day: chrono::NaiveDate, n: usize) {
    let settings = app.settings.clone();
    let keys = alliance_gateway::pki::secrets::MemberKeys::load(&app.paths()).unwrap();
    let tz = settings.timezone;
    let noon = tz
        .from_local_datetime(&day.and_hms_opt(12, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc);
    let mut conn = app.conn();
    let now = Utc::now();
    let registry = alliance_gateway::registry::Registry::new()
        .current(&mut conn)
        .unwrap();
    let partners = ["P-RST-001", "P-CIN-001", "P-GYM-001"]
        .map(|c| alliance_gateway::domain::PartnerCode::parse(c).unwrap());
    write_tx(&mut conn, |conn| -> Result<(), TxnError> {
        for i in 0..n {
            let ctx = Ctx {
                settings: &settings,
                keys: &keys,
                partner: &partners[i % 3],
                now,
                registry: &registry,
            };
            let s = Sale {
                partner_txn_id: format!("K{i}"),
                member: MemberName::Card(
                    alliance_gateway::domain::CardNo::parse(GOLD_CARD).unwrap(),
                ),
                store_id: "s1".into(),
                occurred_at: noon + chrono::TimeDelta::seconds(i as i64),
                gross_fen: 10_000 + (i as i64 % 7) * 1_000,
                discount_fen: 0,
                redeem_points: 0,
                member_token: None,
            };
            sale::record(conn, &ctx, &s, "sha-256=:test:")?;
        }
        Ok(())
    })
    .unwrap();
    // As a running gateway's linker would have done long before the day closes (PostgreSQL;
    // on SQLite the sales were linked as they were booked).
    alliance_gateway::transactions::chain::link_all(&mut conn).unwrap();
}

#[tokio::test]
async fn a_killed_settle_leaves_no_partial_file_and_the_next_run_completes_it() {
    let app = spawn_app().await;
    let tz = chrono_tz::Asia::Shanghai;
    let day = Utc::now()
        .with_timezone(&tz)
        .date_naive()
        .pred_opt()
        .unwrap();
    record_sales(&app, day, 6_000);
    let run_dir = app
        .settings
        .statements_dir()
        .join(day.to_string())
        .join("v1");

    let settle = || {
        cli(&app)
            .args(["settle", &day.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut seen: Vec<BTreeMap<PathBuf, Vec<u8>>> = Vec::new();
    let mut killed = 0;
    let mut kill_after = |mut child: std::process::Child, ms: u64| {
        std::thread::sleep(std::time::Duration::from_millis(ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL: no destructor, no cleanup runs
            killed += 1;
        }
        child.wait().unwrap();
        seen.push(files_under(&run_dir));
    };
    // Killed while starting or closing the day.
    kill_after(settle(), 5);
    // One uninterrupted run, timed: the reference files.
    let started = std::time::Instant::now();
    let status = settle().wait().unwrap();
    let full_ms = started.elapsed().as_millis() as u64;
    assert!(status.success());
    let reference = files_under(&run_dir);
    // Killed at points through the rewriting of every file.
    for percent in [15u64, 30, 45, 60, 75, 90] {
        kill_after(settle(), full_ms * percent / 100);
    }
    assert!(
        killed >= 4,
        "settle ({full_ms} ms) ended before it could be killed"
    );
    let with_partials = seen
        .iter()
        .filter(|s| s.keys().any(|p| p.to_string_lossy().contains(".partial.")))
        .count();
    eprintln!("settle took {full_ms} ms; killed {killed} times; {with_partials} kills left temporary files");

    // The next run completes; its files verify and are the uninterrupted run's, byte for
    // byte, and the killed writers' temporary files are gone.
    let out = assert_ok(admin(&app, &["settle", &day.to_string()]).await);
    assert!(out.contains(&day.to_string()), "{out}");
    let done = files_under(&run_dir);
    assert!(
        done.keys()
            .all(|p| !p.to_string_lossy().contains(".partial.")),
        "temporary files of killed writers are removed: {:?}",
        done.keys().collect::<Vec<_>>()
    );
    assert_eq!(done, reference);
    // summary, discrepancies, manifest, and a statement and manifest per partner.
    assert_eq!(
        done.len(),
        3 + 3 * 2,
        "{:?}",
        done.keys().collect::<Vec<_>>()
    );
    let (code, verified, err) =
        admin(&app, &["verify-statement", &run_dir.display().to_string()]).await;
    assert_eq!(code, 0, "{verified}{err}");

    // Every file ever seen under a final name during the kills is the final file, byte for
    // byte: nothing half-written was visible.
    for snapshot in &seen {
        for (path, bytes) in snapshot {
            if path.to_string_lossy().contains(".partial.") {
                continue;
            }
            assert_eq!(
                Some(bytes),
                done.get(path),
                "{} differed from the completed run's",
                path.display()
            );
        }
    }
}
