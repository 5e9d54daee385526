//! Contract section 7 against a second, straightforward implementation written here from the
//! contract's text, over random offers and amounts (proptest).
use alliance_gateway::domain::terms::{MemberDay, Offer, Redeem, TierMap};
use alliance_gateway::domain::Tier;
use alliance_gateway::transactions::arithmetic::{judge_sale, reverse, SaleRefusal};
use proptest::prelude::*;

fn tier_map(range: std::ops::RangeInclusive<i64>) -> impl Strategy<Value = TierMap> {
    (range.clone(), range.clone(), range.clone(), range).prop_map(
        |(regular, silver, gold, platinum)| TierMap {
            regular,
            silver,
            gold,
            platinum,
        },
    )
}

fn offers() -> impl Strategy<Value = Offer> {
    (
        tier_map(0..=10_000),
        0i64..=100_000,
        0i64..=50_000,
        0i64..=1000,
        tier_map(10_000..=100_000),
        proptest::option::of((1u32..=28, 10_000i64..=100_000)),
        10_000i64..=100_000,
        (any::<bool>(), 1i64..=100, 0i64..=10_000),
    )
        .prop_map(
            |(discount_bps, cap, min_spend, earn, tier_bps, md, birth, (enabled, fpp, share))| {
                Offer {
                    discount_bps,
                    discount_cap_fen: cap,
                    min_spend_fen: min_spend,
                    earn_points_per_yuan: earn,
                    tier_multiplier_bps: tier_bps,
                    member_day: md.map(|(day_of_month, multiplier_bps)| MemberDay {
                        day_of_month,
                        multiplier_bps,
                    }),
                    birthday_month_multiplier_bps: birth,
                    redeem: Redeem {
                        enabled,
                        fen_per_point: fpp,
                        max_share_bps: share,
                        requires_member_token: true,
                    },
                }
            },
        )
}

fn tiers() -> impl Strategy<Value = Tier> {
    prop_oneof![
        Just(Tier::Regular),
        Just(Tier::Silver),
        Just(Tier::Gold),
        Just(Tier::Platinum)
    ]
}

/// The contract's formulas, one line each, on i128.
fn plain(
    o: &Offer,
    tier: Tier,
    day: i128,
    birth: i128,
    gross: i128,
    discount: i128,
    points: i128,
) -> Result<(i128, i128, i128), &'static str> {
    let allowed = if gross < o.min_spend_fen as i128 {
        0
    } else {
        std::cmp::min(
            gross * o.discount_bps.get(tier) as i128 / 10000,
            o.discount_cap_fen as i128,
        )
    };
    if discount > allowed {
        return Err("discount");
    }
    let value = points * o.redeem.fen_per_point as i128;
    if points > 0 && !o.redeem.enabled {
        return Err("disabled");
    }
    if value > (gross - discount) * o.redeem.max_share_bps as i128 / 10000 {
        return Err("share");
    }
    let paid = gross - discount - value;
    let earned = paid
        * o.earn_points_per_yuan as i128
        * o.tier_multiplier_bps.get(tier) as i128
        * day
        * birth
        / (100 * 10000i128.pow(3));
    Ok((value, paid, earned))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn sales_match_the_contract(
        o in offers(),
        tier in tiers(),
        day in prop_oneof![Just(10_000i64), 10_000i64..=100_000],
        birth in prop_oneof![Just(10_000i64), 10_000i64..=100_000],
        // Small and mid amounts often, where floors, caps and minimum spends bite.
        gross in prop_oneof![1i64..=10_000, 1i64..=1_000_000, 1i64..=10_000_000_000],
        discount_share in 0u32..=1000,
        pick in 0u8..3,
        points in prop_oneof![Just(0i64), 0i64..=500, 0i64..=200_000],
    ) {
        // Often exactly at the allowed discount, or one fen above it: the edges matter most.
        let allowed = if gross < o.min_spend_fen { 0 } else {
            (gross as i128 * o.discount_bps.get(tier) as i128 / 10_000).min(o.discount_cap_fen as i128) as i64
        };
        let discount = match pick {
            0 => allowed,
            1 => (allowed + 1).min(gross),
            _ => (gross as i128 * discount_share as i128 / 10_000) as i64,
        };
        let ours = judge_sale(&o, tier, day, birth, gross, discount, points);
        let theirs = plain(&o, tier, day as i128, birth as i128, gross as i128, discount as i128, points as i128);
        match (ours, theirs) {
            (Ok(s), Ok((value, paid, earned))) => {
                prop_assert_eq!(s.redeem_value_fen as i128, value);
                prop_assert_eq!(s.paid_fen as i128, paid);
                prop_assert_eq!(s.points_earned as i128, earned);
                prop_assert!(s.paid_fen >= 0);
            }
            (Err(SaleRefusal::DiscountTooHigh { .. }), Err("discount")) => {}
            (Err(SaleRefusal::RedemptionDisabled), Err("disabled")) => {}
            (Err(SaleRefusal::RedemptionShare { .. }), Err("share")) => {}
            (a, b) => prop_assert!(false, "ours {:?} vs contract {:?}", a, b),
        }
    }

    #[test]
    fn any_sequence_of_partial_reversals_sums_to_the_original(
        o in offers(),
        tier in tiers(),
        gross in 1i64..=10_000_000,
        cuts in proptest::collection::vec(1u32..=1000, 1..12),
    ) {
        let discount = (gross as i128 * o.discount_bps.get(tier) as i128 / 10_000).min(o.discount_cap_fen as i128) as i64;
        let discount = if gross < o.min_spend_fen { 0 } else { discount };
        let points = if o.redeem.enabled { (gross - discount) * o.redeem.max_share_bps / 10_000 / o.redeem.fen_per_point } else { 0 };
        let s = judge_sale(&o, tier, 10_000, 10_000, gross, discount, points).unwrap();
        // Split the gross into parts proportional to the cuts, the last part taking the rest.
        let total: i64 = cuts.iter().map(|c| i64::from(*c)).sum();
        let mut parts: Vec<i64> = cuts.iter().map(|c| gross * i64::from(*c) / total).filter(|p| *p > 0).collect();
        let used: i64 = parts.iter().sum();
        parts.push(gross - used);
        parts.retain(|p| *p > 0);
        let (mut before, mut sums) = (0, [0i64; 5]);
        for p in parts {
            let r = reverse(&s, before, p);
            before += p;
            for (acc, v) in sums.iter_mut().zip([r.gross_fen, r.discount_fen, r.redeem_points, r.redeem_value_fen, r.points_clawed_back]) {
                prop_assert!(v >= 0);
                *acc += v;
            }
        }
        prop_assert_eq!(sums, [s.gross_fen, s.discount_fen, s.redeem_points, s.redeem_value_fen, s.points_earned]);
    }
}
