//! Partner spec validation: every error names the file, the line and the key.
use alliance_gateway::partners::spec::parse;

const SAMPLE: &str = r#"code = "P-RST-001"
name = "示例餐厅 Example Restaurant"
category = "restaurant"
capabilities = []
effective_from = "2026-12-01"
contact_email = "ops@example.com"

[offer]
discount_bps = { regular = 500, silver = 800, gold = 1200, platinum = 1500 }
discount_cap_fen = 5000
min_spend_fen = 0
earn_points_per_yuan = 1
tier_multiplier_bps = { regular = 10000, silver = 12000, gold = 15000, platinum = 20000 }
member_day = { day_of_month = 5, multiplier_bps = 20000 }
birthday_month_multiplier_bps = 20000
redeem = { enabled = true, fen_per_point = 1, max_share_bps = 5000, requires_member_token = true }

[settlement]
issue_fee_fen_per_1000_points = 800
redeem_reimburse_fen_per_1000_points = 1000
discount_subsidy_bps = 3000
commission_bps = 200
"#;

fn errors(src: &str) -> Vec<String> {
    parse("spec.toml", src)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn the_contract_sample_parses() {
    let spec = parse("spec.toml", SAMPLE).unwrap();
    assert_eq!(spec.code.as_str(), "P-RST-001");
    assert_eq!(spec.terms.offer.discount_bps.gold, 1200);
    assert_eq!(
        spec.terms.offer.member_day.as_ref().unwrap().day_of_month,
        5
    );
    assert!(spec.terms.offer.redeem.requires_member_token);
    assert_eq!(spec.terms.settlement.commission_bps, 200);
}

#[test]
fn unknown_keys_name_file_line_and_key() {
    let src = SAMPLE.replace("min_spend_fen = 0", "min_spend_fen = 0\nfree_lunch = true");
    assert_eq!(errors(&src), vec!["spec.toml:12: offer.free_lunch: unknown key (expected one of: discount_bps, discount_cap_fen, min_spend_fen, earn_points_per_yuan, tier_multiplier_bps, member_day, birthday_month_multiplier_bps, redeem)"]);
}

#[test]
fn missing_keys_name_the_table_and_its_line() {
    let src = SAMPLE.replace("commission_bps = 200\n", "");
    assert_eq!(
        errors(&src),
        vec!["spec.toml:18: settlement.commission_bps: missing key in [settlement]"]
    );
    let src = SAMPLE.replace("gold = 1200, ", "");
    assert_eq!(
        errors(&src),
        vec!["spec.toml:9: offer.discount_bps.gold: missing key in [offer.discount_bps]"]
    );
}

#[test]
fn out_of_range_numbers_are_refused() {
    let src = SAMPLE.replace("platinum = 1500", "platinum = 10001");
    assert_eq!(
        errors(&src),
        vec!["spec.toml:9: offer.discount_bps.platinum: out of range: must be 0 to 10000"]
    );
    let src = SAMPLE.replace("day_of_month = 5", "day_of_month = 31");
    assert_eq!(
        errors(&src),
        vec!["spec.toml:14: offer.member_day.day_of_month: out of range: must be 1 to 28"]
    );
    let src = SAMPLE.replace("regular = 10000, silver", "regular = 9999, silver");
    assert_eq!(errors(&src), vec!["spec.toml:13: offer.tier_multiplier_bps.regular: out of range: must be 10000 to 100000"]);
}

#[test]
fn disabled_redemption_may_leave_out_its_fields() {
    let src = SAMPLE.replace(
        "redeem = { enabled = true, fen_per_point = 1, max_share_bps = 5000, requires_member_token = true }",
        "redeem = { enabled = false }",
    );
    let spec = parse("s.toml", &src).unwrap();
    assert!(!spec.terms.offer.redeem.enabled);
    assert_eq!(spec.terms.offer.redeem.fen_per_point, 0);
}

#[test]
fn bad_values_and_syntax_are_reported() {
    assert_eq!(
        errors(&SAMPLE.replace("\"P-RST-001\"", "\"p-rst\"")),
        vec!["spec.toml:1: code: partner code \"p-rst\" must match [A-Z0-9][A-Z0-9-]{2,31}"]
    );
    assert_eq!(
        errors(&SAMPLE.replace("\"restaurant\"", "\"spa\"")),
        vec!["spec.toml:3: category: unknown category \"spa\" (expected one of: restaurant, cinema, gym, bookstore, hotel, mall, other)"]
    );
    let syntax = errors("code = \n");
    assert!(
        syntax[0].starts_with("spec.toml:1: -: not valid TOML"),
        "{syntax:?}"
    );
}
