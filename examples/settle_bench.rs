//! Generator for `scripts/bench.sh settle`: in an initialised alliance (ALLIANCE_HOME,
//! ALLIANCE_DATABASE_URL), onboards `--partners` partners and records `--txns` sales dated
//! yesterday straight through the library's own recording path (`transactions::sale::record`,
//! a thousand per database transaction), then times the reference aggregate (GROUP BY
//! partner of count and sums over the same table). Prints one JSON line. Settling is timed
//! by the script, in its own process, so its peak RSS is its own.
use alliance_gateway::config::Settings;
use alliance_gateway::db::{self, write_tx};
use alliance_gateway::transactions::input::{MemberName, Sale};
use alliance_gateway::transactions::{sale, Ctx, TxnError};
use chrono::TimeZone;
use diesel::RunQueryDsl;
use std::time::Instant;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn main() {
    let txns = arg("--txns", 1_000_000);
    let partners = arg("--partners", 50);
    let members = arg("--members", 10_000);
    let settings = Settings::load().expect("configuration");
    let mut conn = db::Manager::new(settings.database.clone())
        .connect()
        .expect("database");
    db::migrate(&mut conn).expect("migrations");
    let paths = alliance_gateway::pki::Paths::new(&settings);
    let ca = alliance_gateway::pki::ca::Ca::load(&paths).expect("run init first");
    let keys = alliance_gateway::pki::secrets::MemberKeys::load(&paths).expect("member keys");
    let tz = settings.timezone;
    let today = alliance_gateway::alliance::business_day(chrono::Utc::now(), tz);
    let yesterday = today.pred_opt().expect("a day before");
    let spec_src = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("partner-specs/P-RST-001.toml"),
    )
    .expect("sample spec");
    let mut codes = Vec::new();
    for p in 0..partners {
        let code = format!("B-{p:03}");
        let src = spec_src.replace("P-RST-001", &code);
        let spec = alliance_gateway::partners::spec::parse("bench.toml", &src).expect("spec");
        alliance_gateway::partners::onboard::onboard(
            &settings,
            &mut conn,
            Some(&ca),
            &spec,
            Default::default(),
            today,
        )
        .expect("onboard");
        codes.push(alliance_gateway::domain::PartnerCode::parse(&code).expect("code"));
    }
    let mut csv = String::from("card_no,tier,status,birth_month,opening_points,phone\n");
    for m in 0..members {
        csv.push_str(&format!("66{m:08},gold,active,,0,\n"));
    }
    alliance_gateway::members::import::import(&mut conn, &keys, csv.as_bytes(), &())
        .expect("members");

    let noon = tz
        .from_local_datetime(&yesterday.and_hms_opt(12, 0, 0).expect("noon"))
        .earliest()
        .expect("a local noon")
        .with_timezone(&chrono::Utc);
    let started = Instant::now();
    let now = chrono::Utc::now();
    let registry = alliance_gateway::registry::Registry::new()
        .current(&mut conn)
        .expect("registry");
    let mut i = 0u64;
    while i < txns {
        let batch_end = (i + 1000).min(txns);
        write_tx(&mut conn, |conn| -> Result<(), TxnError> {
            while i < batch_end {
                let partner = &codes[(i % partners) as usize];
                let ctx = Ctx {
                    settings: &settings,
                    keys: &keys,
                    partner,
                    now,
                    registry: &registry,
                };
                let card =
                    alliance_gateway::domain::CardNo::parse(&format!("66{:08}", i % members))
                        .expect("card");
                let s = Sale {
                    partner_txn_id: format!("T{i}"),
                    member: MemberName::Card(card),
                    store_id: "bench".into(),
                    occurred_at: noon + chrono::TimeDelta::milliseconds((i % 3_600_000) as i64),
                    gross_fen: 1_000 + (i % 9_000) as i64,
                    discount_fen: 0,
                    redeem_points: 0,
                    member_token: None,
                };
                sale::record(conn, &ctx, &s, "sha-256=:bench:")?;
                i += 1;
            }
            Ok(())
        })
        .expect("record");
        // `serve` checkpoints the WAL once a second off the request path; do the same here, or
        // the WAL (autocheckpoint is off on our connections) grows without bound.
        if i.is_multiple_of(20_000) {
            alliance_gateway::store::sqlite::wal::checkpoint_passive(&mut conn)
                .expect("checkpoint");
        }
    }
    alliance_gateway::store::sqlite::wal::checkpoint_passive(&mut conn).expect("checkpoint");
    let record_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        #[allow(dead_code)]
        partner_code: String,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT partner_code, COUNT(*) AS n, SUM(gross_fen) AS g, SUM(discount_fen) AS d, \
         SUM(redeem_points) AS r, SUM(points_earned) AS p FROM transactions GROUP BY partner_code",
    )
    .load(&mut conn)
    .expect("aggregate");
    let aggregate_s = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "txns": txns, "partners": rows.len(), "record_s": record_s,
            "aggregate_s": aggregate_s, "business_date": yesterday.to_string(),
        })
    );
}
