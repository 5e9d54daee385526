//! Totals tie: random days of sales, redemptions, partial and full reversals and late records
//! from three partners, settled through the CLI, then every statement line and every total
//! recomputed here, independently, from the receipts and the contract's arithmetic (section 7).
use crate::helpers::*;
use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::json;
use std::collections::BTreeMap;

/// Settlement terms from `partner-specs/` (section 7): issue fee and reimbursement per 1000
/// points, subsidy and commission in bps.
struct Terms {
    issue_per_1000: i128,
    reimburse_per_1000: i128,
    subsidy_bps: i128,
    commission_bps: i128,
}

/// The offer parts the test needs to send acceptable requests.
struct Offer {
    code: &'static str,
    discount_bps: [i64; 4],
    cap_fen: i64,
    min_spend_fen: i64,
    /// (fen per point, max share bps, needs a member token), when redemption is on.
    redeem: Option<(i64, i64, bool)>,
    terms: Terms,
}

const OFFERS: [Offer; 3] = [
    Offer {
        code: "P-RST-001",
        discount_bps: [500, 800, 1200, 1500],
        cap_fen: 5000,
        min_spend_fen: 0,
        redeem: Some((1, 5000, true)),
        terms: Terms {
            issue_per_1000: 800,
            reimburse_per_1000: 1000,
            subsidy_bps: 3000,
            commission_bps: 200,
        },
    },
    Offer {
        code: "P-CIN-001",
        discount_bps: [300, 500, 800, 1000],
        cap_fen: 3000,
        min_spend_fen: 5000,
        redeem: None,
        terms: Terms {
            issue_per_1000: 600,
            reimburse_per_1000: 0,
            subsidy_bps: 5000,
            commission_bps: 150,
        },
    },
    Offer {
        code: "P-GYM-001",
        discount_bps: [1000, 1000, 1500, 2000],
        cap_fen: 20000,
        min_spend_fen: 10000,
        redeem: Some((2, 3000, false)),
        terms: Terms {
            issue_per_1000: 1000,
            reimburse_per_1000: 2000,
            subsidy_bps: 2000,
            commission_bps: 300,
        },
    },
];

/// Active members of `examples/data/members.csv` and their tier index (regular..platinum).
const MEMBERS: [(&str, usize); 4] = [
    ("8800123456", 2),
    ("8800123457", 0),
    ("8800123458", 1),
    ("8800123459", 3),
];

/// A small deterministic generator, so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What the receipts say about one accepted sale, and its reversals' gross in order.
struct Sale {
    partner: &'static str,
    txn_id: String,
    gross: i128,
    discount: i128,
    redeem_points: i128,
    redeem_value: i128,
    points_earned: i128,
    /// Dated on a closed day, so booked into the next open one.
    late: bool,
    reversals: Vec<(String, i128)>,
}

fn half_even(num: i128, den: i128) -> i128 {
    let (q, r) = (num / den, num % den);
    match (2 * r).cmp(&den) {
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal if q % 2 == 1 => q + 1,
        _ => q,
    }
}

/// The columns gross, discount, redeem points, redeem value, points earned, subsidy,
/// reimbursement, issue fee, commission, net of a statement line.
type Columns = [i128; 10];

fn sale_columns(s: &Sale, t: &Terms) -> Columns {
    let subsidy = half_even(s.discount * t.subsidy_bps, 10_000);
    let reimb = half_even(s.redeem_points * t.reimburse_per_1000, 1000);
    let issue = half_even(s.points_earned * t.issue_per_1000, 1000);
    let commission = half_even(s.gross * t.commission_bps, 10_000);
    [
        s.gross,
        s.discount,
        s.redeem_points,
        s.redeem_value,
        s.points_earned,
        subsidy,
        reimb,
        issue,
        commission,
        subsidy + reimb - issue - commission,
    ]
}

/// Reversal k of a sale: every column X reverses floor(X·R_k/g) − floor(X·R_{k−1}/g), shown
/// negative; net recomputed from the reversed columns.
fn reversal_columns(sale: &Columns, before: i128, after: i128, amount: i128) -> Columns {
    let g = sale[0];
    let part = |x: i128| x * after / g - x * before / g;
    let mut c = [0i128; 10];
    c[0] = -amount;
    for i in 1..9 {
        c[i] = -part(sale[i]);
    }
    c[9] = c[5] + c[6] - c[7] - c[8];
    c
}

fn fen(cell: &str) -> i128 {
    let negative = cell.starts_with('-');
    let digits: String = cell.chars().filter(char::is_ascii_digit).collect();
    assert!(
        cell.len() >= 4 && &cell[cell.len() - 3..cell.len() - 2] == ".",
        "not yuan: {cell}"
    );
    let v: i128 = digits.parse().unwrap();
    if negative {
        -v
    } else {
        v
    }
}

fn read_csv(path: &std::path::Path) -> Vec<csv::StringRecord> {
    let mut r = csv::Reader::from_path(path).unwrap();
    r.records().map(Result::unwrap).collect()
}

/// The line's columns as the statement shows them, in `Columns` order.
fn statement_columns(rec: &csv::StringRecord) -> Columns {
    [
        fen(&rec[9]),
        fen(&rec[10]),
        rec[11].parse().unwrap(),
        fen(&rec[12]),
        rec[13].parse().unwrap(),
        fen(&rec[14]),
        fen(&rec[15]),
        fen(&rec[16]),
        fen(&rec[17]),
        fen(&rec[18]),
    ]
}

async fn member_token(app: &TestApp, card: &str) -> String {
    let res = app
        .partner("MALL")
        .post_json("/v1/member-tokens", &json!({ "card_no": card }))
        .await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    res.json()["member_token"].as_str().unwrap().to_owned()
}

/// Posts up to `n` random sales per partner dated `day` (local hours 9–21) and returns the
/// accepted ones. Refusals (insufficient points, say) are allowed: only receipts count.
async fn random_sales(
    app: &TestApp,
    rng: &mut Rng,
    day: NaiveDate,
    n: usize,
    tag: &str,
) -> Vec<Sale> {
    let tz = chrono_tz::Asia::Shanghai;
    let mut out = Vec::new();
    for offer in &OFFERS {
        let client = app.partner(offer.code);
        for i in 0..n {
            let (card, tier) = MEMBERS[rng.below(4) as usize];
            // Around the minimum spend, and the odd large one.
            let gross = match rng.below(6) {
                0 => offer.min_spend_fen.max(1) + rng.below(3) as i64 - 1,
                5 => 100_000 + rng.below(900_000) as i64,
                _ => 1 + rng.below(60_000) as i64,
            }
            .max(1);
            let allowed = if gross < offer.min_spend_fen {
                0
            } else {
                (gross * offer.discount_bps[tier] / 10_000).min(offer.cap_fen)
            };
            let discount = if rng.below(3) == 0 {
                rng.below(allowed as u64 + 1) as i64
            } else {
                allowed
            };
            let mut body = json!({
                "partner_txn_id": format!("{tag}-{}-{i}", offer.code),
                "card_no": card,
                "store_id": format!("s{}", rng.below(3)),
                "occurred_at": tz
                    .from_local_datetime(&day.and_hms_opt(9 + rng.below(13) as u32, rng.below(60) as u32, 0).unwrap())
                    .unwrap()
                    .to_rfc3339(),
                "gross_fen": gross,
                "discount_fen": discount,
                "redeem_points": 0,
            });
            if let Some((fen_per_point, share_bps, token)) = offer.redeem {
                let max_points = (gross - discount) * share_bps / 10_000 / fen_per_point;
                if max_points > 0 && rng.below(3) == 0 {
                    body["redeem_points"] = json!(1 + rng.below(max_points.min(400) as u64));
                    if token {
                        body["member_token"] = json!(member_token(app, card).await);
                    }
                }
            }
            let res = client.post_idem("/v1/transactions", &body, &idem()).await;
            if res.status != 201 {
                let problem = res.json();
                assert_eq!(problem["code"], "insufficient-points", "{body} → {problem}");
                continue;
            }
            let r = res.json();
            let field = |k: &str| r[k].as_i64().unwrap_or_else(|| panic!("{k} in {r}")) as i128;
            assert_eq!(field("gross_fen"), gross as i128);
            out.push(Sale {
                partner: offer.code,
                txn_id: r["txn_id"].as_str().unwrap().to_owned(),
                gross: gross as i128,
                discount: field("discount_fen"),
                redeem_points: field("redeem_points"),
                redeem_value: field("redeem_value_fen"),
                points_earned: field("points_earned"),
                late: false,
                reversals: Vec::new(),
            });
        }
    }
    out
}

/// Reverses some of `sales` on `day`: partly, in parts, or whole.
async fn random_reversals(
    app: &TestApp,
    rng: &mut Rng,
    sales: &mut [Sale],
    day: NaiveDate,
    tag: &str,
) {
    let tz = chrono_tz::Asia::Shanghai;
    for (i, s) in sales.iter_mut().enumerate() {
        if rng.below(3) != 0 {
            continue;
        }
        let client = app.partner(s.partner);
        let parts = 1 + rng.below(3);
        for k in 0..parts {
            let reversed: i128 = s.reversals.iter().map(|(_, g)| g).sum();
            let left = s.gross - reversed;
            if left == 0 {
                break;
            }
            let amount = if k + 1 == parts && rng.below(2) == 0 {
                left
            } else {
                1 + rng.below(left as u64) as i128
            };
            let id = format!("{tag}-R{i}-{k}");
            let res = client
                .post_idem(
                    &format!("/v1/transactions/{}/reversals", s.txn_id),
                    &json!({
                        "partner_reversal_id": id,
                        "gross_fen": amount as i64,
                        "reason": "return",
                        "occurred_at": tz
                            .from_local_datetime(&day.and_hms_opt(22, k as u32 * 10, 0).unwrap())
                            .unwrap()
                            .to_rfc3339(),
                    }),
                    &idem(),
                )
                .await;
            assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
            s.reversals.push((id, amount));
        }
    }
}

#[tokio::test]
async fn every_statement_line_and_total_ties_with_an_independent_computation() {
    for seed in [0x9E37_79B9_7F4A_7C15u64, 0xD1B5_4A32_D192_ED03] {
        random_day(seed).await;
    }
}

async fn random_day(seed: u64) {
    let app = spawn_app().await;
    let mut rng = Rng(seed);
    let tz = chrono_tz::Asia::Shanghai;
    let today = Utc::now().with_timezone(&tz).date_naive();
    let day = today.pred_opt().unwrap();
    let before = day.pred_opt().unwrap();

    // The day before: some sales, then that day is closed.
    let mut earlier = random_sales(&app, &mut rng, before, 3, "E").await;
    assert_ok(admin(&app, &["settle", &before.to_string()]).await);
    // The day itself: its own sales, late records for the closed day (booked into this one),
    // and reversals of both days' sales (booked on this day).
    let mut sales = random_sales(&app, &mut rng, day, 8, "D").await;
    let late = random_sales(&app, &mut rng, before, 2, "L").await;
    random_reversals(&app, &mut rng, &mut earlier, day, "ER").await;
    random_reversals(&app, &mut rng, &mut sales, day, "DR").await;
    sales.extend(late.into_iter().map(|s| Sale { late: true, ..s }));
    assert_ok(admin(&app, &["settle", &day.to_string()]).await);

    // Expected lines, keyed by (txn_id, partner_reversal_id), per partner.
    let mut expected: BTreeMap<&str, BTreeMap<(String, String), Columns>> = BTreeMap::new();
    let late: Vec<&str> = sales
        .iter()
        .filter(|s| s.late)
        .map(|s| s.txn_id.as_str())
        .collect();
    for s in &sales {
        let offer = OFFERS.iter().find(|o| o.code == s.partner).unwrap();
        let cols = sale_columns(s, &offer.terms);
        expected
            .entry(s.partner)
            .or_default()
            .insert((s.txn_id.clone(), String::new()), cols);
    }
    for s in sales.iter().chain(&earlier) {
        let offer = OFFERS.iter().find(|o| o.code == s.partner).unwrap();
        let cols = sale_columns(s, &offer.terms);
        let mut done = 0;
        for (id, amount) in &s.reversals {
            let after = done + amount;
            expected.entry(s.partner).or_default().insert(
                (s.txn_id.clone(), id.clone()),
                reversal_columns(&cols, done, after, *amount),
            );
            done = after;
        }
        if done == s.gross {
            // A full refund nets to zero in every column.
            let mut sum = cols;
            for (id, _) in &s.reversals {
                let r = expected[s.partner][&(s.txn_id.clone(), id.clone())];
                for i in 0..10 {
                    sum[i] += r[i];
                }
            }
            assert_eq!(sum, [0; 10], "full refund of {}", s.txn_id);
        }
    }

    let dir = app
        .settings
        .statements_dir()
        .join(day.to_string())
        .join("v1");
    let summary = read_csv(&dir.join("summary.csv"));
    let mut run_net = 0i128;
    // The day is a real mix, or the test proves little.
    let all: Vec<&Columns> = expected.values().flat_map(|m| m.values()).collect();
    eprintln!(
        "seed {seed:x}: {} lines, {} reversals, {} late, {} redemptions",
        all.len(),
        all.iter().filter(|c| c[0] < 0).count(),
        late.len(),
        all.iter().filter(|c| c[2] > 0).count()
    );
    assert!(all.len() >= 20, "{} lines", all.len());
    assert!(all.iter().any(|c| c[0] < 0), "no reversals");
    assert!(all.iter().any(|c| c[2] > 0), "no redemptions");
    assert!(!late.is_empty(), "no late records");
    for offer in &OFFERS {
        let want = expected.remove(offer.code).unwrap_or_default();
        let lines = read_csv(&dir.join(format!("partners/{}.csv", offer.code)));
        assert_eq!(lines.len(), want.len(), "{} line count", offer.code);
        let mut totals = [0i128; 10];
        let (mut n_sales, mut n_reversals) = (0, 0);
        let mut last_seq = 0i64;
        for rec in &lines {
            let key = (rec[2].to_owned(), rec[5].to_owned());
            let cols = statement_columns(rec);
            assert_eq!(Some(&cols), want.get(&key), "{} line {:?}", offer.code, rec);
            // Chain order, and the late flag on records that belong to the closed day.
            let seq: i64 = rec[23].parse().unwrap();
            assert!(seq > last_seq, "lines in chain order");
            last_seq = seq;
            let is_late = &rec[4] == "sale" && late.contains(&&rec[2]);
            assert_eq!(&rec[7] == "true", is_late, "late flag of {rec:?}");
            assert_eq!(&rec[0], day.to_string(), "business date of {rec:?}");
            for i in 0..10 {
                totals[i] += cols[i];
            }
            if &rec[4] == "sale" {
                n_sales += 1;
            } else {
                n_reversals += 1;
            }
        }
        // The summary row ties with the lines.
        let row = summary.iter().find(|r| &r[1] == offer.code);
        if lines.is_empty() {
            continue;
        }
        let row = row.unwrap_or_else(|| panic!("{} missing from the summary", offer.code));
        assert_eq!(row[3].parse::<i64>().unwrap(), n_sales);
        assert_eq!(row[4].parse::<i64>().unwrap(), n_reversals);
        let summary_cols = [
            fen(&row[5]),
            fen(&row[6]),
            row[7].parse().unwrap(),
            totals[3],
            row[8].parse().unwrap(),
            fen(&row[9]),
            fen(&row[10]),
            fen(&row[11]),
            fen(&row[12]),
            fen(&row[13]),
        ];
        assert_eq!(summary_cols, totals, "{} summary", offer.code);
        run_net += totals[9];
    }
    assert!(expected.is_empty(), "lines for unknown partners");
    // The run's manifest totals tie with the summary, and the ledger balances.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let net = manifest["totals"]["net_yuan"].as_str().unwrap();
    assert_eq!(fen(net), run_net, "manifest net");
    assert_eq!(app.ledger_total(), 0, "the ledger sums to zero");
    let (code, out, err) = admin(&app, &["verify-statement", &dir.display().to_string()]).await;
    assert_eq!(code, 0, "{out}{err}");
}
