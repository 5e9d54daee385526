//! Contract section 7, as pure integer functions: what a sale may discount and redeem, what the
//! member pays and earns, and what each reversal takes back. Every product is computed in
//! i128; a result that does not fit i64 is an error, never a wrap. No floating point.
use crate::domain::terms::{Offer, BPS_ONE};
use crate::domain::Tier;

/// Why a sale's amounts are refused, in the contract's check order (after member and token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaleRefusal {
    #[error(
        "discount_fen {asked} is above the {allowed} fen this offer allows for the member's tier"
    )]
    DiscountTooHigh { asked: i64, allowed: i64 },
    #[error("redemption is not enabled in this offer")]
    RedemptionDisabled,
    #[error("redeem value {value} fen is above the {max} fen this offer allows (max share of the discounted amount)")]
    RedemptionShare { value: i64, max: i64 },
    #[error("the amounts are too large to compute")]
    Overflow,
}

/// A sale's amounts, as the gateway computes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaleAmounts {
    pub gross_fen: i64,
    pub discount_fen: i64,
    pub redeem_points: i64,
    pub redeem_value_fen: i64,
    pub paid_fen: i64,
    pub points_earned: i64,
}

fn fit(v: i128) -> Result<i64, SaleRefusal> {
    i64::try_from(v).map_err(|_| SaleRefusal::Overflow)
}

/// 0 below the minimum spend, else min(floor(gross × discount_bps[tier] / 10000), cap).
pub fn allowed_discount(offer: &Offer, tier: Tier, gross_fen: i64) -> i64 {
    if gross_fen < offer.min_spend_fen {
        return 0;
    }
    let by_share =
        i128::from(gross_fen) * i128::from(offer.discount_bps.get(tier)) / i128::from(BPS_ONE);
    // by_share ≤ gross (bps ≤ 10000), so it fits.
    i64::try_from(by_share)
        .unwrap_or(i64::MAX)
        .min(offer.discount_cap_fen)
}

/// floor((gross − discount) × max_share_bps / 10000): the most a redemption may be worth.
pub fn max_redeem_value(offer: &Offer, gross_fen: i64, discount_fen: i64) -> i64 {
    let base = i128::from(gross_fen) - i128::from(discount_fen);
    let v = base * i128::from(offer.redeem.max_share_bps) / i128::from(BPS_ONE);
    i64::try_from(v.max(0)).unwrap_or(i64::MAX)
}

/// floor(paid × earn_points_per_yuan × tier_bps × day_bps × birth_bps / (100 × 10000³)).
pub fn points_earned(
    offer: &Offer,
    tier: Tier,
    paid_fen: i64,
    day_bps: i64,
    birth_bps: i64,
) -> Result<i64, SaleRefusal> {
    let numerator = i128::from(paid_fen)
        .checked_mul(i128::from(offer.earn_points_per_yuan))
        .and_then(|v| v.checked_mul(i128::from(offer.tier_multiplier_bps.get(tier))))
        .and_then(|v| v.checked_mul(i128::from(day_bps)))
        .and_then(|v| v.checked_mul(i128::from(birth_bps)))
        .ok_or(SaleRefusal::Overflow)?;
    let bps = i128::from(BPS_ONE);
    fit(numerator / (100 * bps * bps * bps))
}

/// Judges a sale's discount and redemption against `offer` and computes what is paid and
/// earned. The balance check (and the token) come from the caller, which knows the member.
pub fn judge_sale(
    offer: &Offer,
    tier: Tier,
    day_bps: i64,
    birth_bps: i64,
    gross_fen: i64,
    discount_fen: i64,
    redeem_points: i64,
) -> Result<SaleAmounts, SaleRefusal> {
    let allowed = allowed_discount(offer, tier, gross_fen);
    if discount_fen > allowed {
        return Err(SaleRefusal::DiscountTooHigh {
            asked: discount_fen,
            allowed,
        });
    }
    let redeem_value_fen = if redeem_points > 0 {
        if !offer.redeem.enabled {
            return Err(SaleRefusal::RedemptionDisabled);
        }
        let value = fit(i128::from(redeem_points) * i128::from(offer.redeem.fen_per_point))?;
        let max = max_redeem_value(offer, gross_fen, discount_fen);
        if value > max {
            return Err(SaleRefusal::RedemptionShare { value, max });
        }
        value
    } else {
        0
    };
    let paid_fen =
        fit(i128::from(gross_fen) - i128::from(discount_fen) - i128::from(redeem_value_fen))?;
    Ok(SaleAmounts {
        gross_fen,
        discount_fen,
        redeem_points,
        redeem_value_fen,
        paid_fen,
        points_earned: points_earned(offer, tier, paid_fen, day_bps, birth_bps)?,
    })
}

/// The cumulative-floor rule: the part of column `x` that reversal k takes back, where
/// `reversed_before` is R_{k−1} and `reversed_after` is R_k of an original gross `gross`.
/// Over any sequence of reversals reaching `gross`, the parts sum to exactly `x`.
pub fn reversal_part(x: i64, reversed_before: i64, reversed_after: i64, gross: i64) -> i64 {
    if gross <= 0 {
        return 0;
    }
    let (x, g) = (i128::from(x), i128::from(gross));
    let after = x * i128::from(reversed_after) / g;
    let before = x * i128::from(reversed_before) / g;
    // 0 ≤ after − before ≤ x, so it fits.
    i64::try_from(after - before).unwrap_or(0)
}

/// What one reversal takes back of an original sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReversalAmounts {
    pub gross_fen: i64,
    pub discount_fen: i64,
    pub redeem_points: i64,
    pub redeem_value_fen: i64,
    pub points_clawed_back: i64,
}

/// The amounts reversal k takes back, given the original and R_{k−1}.
pub fn reverse(original: &SaleAmounts, reversed_before: i64, gross_fen: i64) -> ReversalAmounts {
    let after = reversed_before + gross_fen;
    let g = original.gross_fen;
    ReversalAmounts {
        gross_fen,
        discount_fen: reversal_part(original.discount_fen, reversed_before, after, g),
        redeem_points: reversal_part(original.redeem_points, reversed_before, after, g),
        redeem_value_fen: reversal_part(original.redeem_value_fen, reversed_before, after, g),
        points_clawed_back: reversal_part(original.points_earned, reversed_before, after, g),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::terms::{MemberDay, Redeem, TierMap};

    fn offer() -> Offer {
        Offer {
            discount_bps: TierMap {
                regular: 500,
                silver: 800,
                gold: 1200,
                platinum: 1500,
            },
            discount_cap_fen: 5000,
            min_spend_fen: 1000,
            earn_points_per_yuan: 1,
            tier_multiplier_bps: TierMap {
                regular: 10000,
                silver: 12000,
                gold: 15000,
                platinum: 20000,
            },
            member_day: Some(MemberDay {
                day_of_month: 5,
                multiplier_bps: 20000,
            }),
            birthday_month_multiplier_bps: 20000,
            redeem: Redeem {
                enabled: true,
                fen_per_point: 1,
                max_share_bps: 5000,
                requires_member_token: true,
            },
        }
    }

    #[test]
    fn discount_floor_cap_and_minimum_spend() {
        let o = offer();
        assert_eq!(allowed_discount(&o, Tier::Gold, 999), 0, "below min spend");
        assert_eq!(allowed_discount(&o, Tier::Gold, 1000), 120);
        assert_eq!(
            allowed_discount(&o, Tier::Gold, 1008),
            120,
            "floor of 120.96"
        );
        assert_eq!(allowed_discount(&o, Tier::Gold, 41_666), 4999);
        assert_eq!(allowed_discount(&o, Tier::Gold, 41_667), 5000, "at the cap");
        assert_eq!(allowed_discount(&o, Tier::Gold, 10_000_000_000), 5000);
    }

    #[test]
    fn a_discount_above_the_allowed_one_is_refused() {
        let o = offer();
        assert_eq!(
            judge_sale(&o, Tier::Gold, BPS_ONE, BPS_ONE, 10_000, 1201, 0),
            Err(SaleRefusal::DiscountTooHigh {
                asked: 1201,
                allowed: 1200
            })
        );
        assert!(judge_sale(&o, Tier::Gold, BPS_ONE, BPS_ONE, 10_000, 1200, 0).is_ok());
    }

    #[test]
    fn redemption_share_is_of_the_discounted_amount() {
        let o = offer();
        // (10000 − 1200) × 50 % = 4400
        assert!(judge_sale(&o, Tier::Gold, BPS_ONE, BPS_ONE, 10_000, 1200, 4400).is_ok());
        assert_eq!(
            judge_sale(&o, Tier::Gold, BPS_ONE, BPS_ONE, 10_000, 1200, 4401),
            Err(SaleRefusal::RedemptionShare {
                value: 4401,
                max: 4400
            })
        );
        let mut off = offer();
        off.redeem.enabled = false;
        assert_eq!(
            judge_sale(&off, Tier::Gold, BPS_ONE, BPS_ONE, 10_000, 0, 1),
            Err(SaleRefusal::RedemptionDisabled)
        );
    }

    #[test]
    fn member_day_and_birth_month_multiply() {
        let o = offer();
        // paid 8800 fen = 88 yuan × 1 point × 1.5 (gold) × 2 (member day) × 2 (birthday) = 528
        let s = judge_sale(&o, Tier::Gold, 20000, 20000, 10_000, 1200, 0).unwrap();
        assert_eq!((s.paid_fen, s.points_earned), (8800, 528));
        let plain = judge_sale(&o, Tier::Gold, BPS_ONE, BPS_ONE, 10_000, 1200, 0).unwrap();
        assert_eq!(plain.points_earned, 132);
        // 0.99 yuan earns nothing: floor.
        let small = judge_sale(&o, Tier::Regular, BPS_ONE, BPS_ONE, 1099, 54, 0).unwrap();
        assert_eq!((small.paid_fen, small.points_earned), (1045, 10));
    }

    #[test]
    fn the_largest_amounts_do_not_wrap() {
        let mut o = offer();
        o.earn_points_per_yuan = 1000;
        o.tier_multiplier_bps.platinum = 100_000;
        let s = judge_sale(&o, Tier::Platinum, 100_000, 100_000, 10_000_000_000, 0, 0).unwrap();
        assert_eq!(s.points_earned, 100_000_000_000_000);
        o.redeem.fen_per_point = i64::MAX;
        assert_eq!(
            judge_sale(&o, Tier::Platinum, BPS_ONE, BPS_ONE, 100, 0, 2),
            Err(SaleRefusal::Overflow)
        );
    }

    #[test]
    fn partial_reversals_sum_to_the_original() {
        let o = offer();
        let s = judge_sale(&o, Tier::Gold, 20000, BPS_ONE, 9_999, 1199, 3333).unwrap();
        let mut before = 0;
        let mut sum = ReversalAmounts {
            gross_fen: 0,
            discount_fen: 0,
            redeem_points: 0,
            redeem_value_fen: 0,
            points_clawed_back: 0,
        };
        for part in [1, 3333, 17, 6000, 648] {
            let r = reverse(&s, before, part);
            before += part;
            sum.gross_fen += r.gross_fen;
            sum.discount_fen += r.discount_fen;
            sum.redeem_points += r.redeem_points;
            sum.redeem_value_fen += r.redeem_value_fen;
            sum.points_clawed_back += r.points_clawed_back;
        }
        assert_eq!(before, s.gross_fen);
        assert_eq!(
            (
                sum.gross_fen,
                sum.discount_fen,
                sum.redeem_points,
                sum.redeem_value_fen,
                sum.points_clawed_back
            ),
            (
                s.gross_fen,
                s.discount_fen,
                s.redeem_points,
                s.redeem_value_fen,
                s.points_earned
            )
        );
    }
}
