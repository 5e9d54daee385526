//! A statement line's money (contract section 7): a sale's columns rounded half to even to the
//! fen; a reversal's columns derived from its sale's line by the cumulative-floor rule, so a
//! full refund nets to zero in every column.
use crate::domain::terms::SettlementTerms;
use crate::transactions::arithmetic::reversal_part;

/// round(num / den) to the nearest integer, ties to even; `den` > 0.
pub fn round_half_even(num: i128, den: i128) -> i128 {
    let q = num.div_euclid(den);
    let r = num.rem_euclid(den);
    match (2 * r).cmp(&den) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
    }
}

/// The settlement columns of one line, in fen and points (negative on reversal lines).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Money {
    pub gross_fen: i64,
    pub discount_fen: i64,
    pub redeem_points: i64,
    pub redeem_value_fen: i64,
    pub points_earned: i64,
    pub subsidy_fen: i64,
    pub reimbursement_fen: i64,
    pub issue_fee_fen: i64,
    pub commission_fen: i64,
}

impl Money {
    /// subsidy + reimbursement − issue fee − commission: positive, the alliance pays.
    pub fn net_fen(&self) -> i64 {
        self.subsidy_fen + self.reimbursement_fen - self.issue_fee_fen - self.commission_fen
    }

    pub fn add(&mut self, o: &Money) {
        self.gross_fen += o.gross_fen;
        self.discount_fen += o.discount_fen;
        self.redeem_points += o.redeem_points;
        self.redeem_value_fen += o.redeem_value_fen;
        self.points_earned += o.points_earned;
        self.subsidy_fen += o.subsidy_fen;
        self.reimbursement_fen += o.reimbursement_fen;
        self.issue_fee_fen += o.issue_fee_fen;
        self.commission_fen += o.commission_fen;
    }
}

/// `amount × rate / per`, rounded half to even, to the fen (section 7).
fn rated(amount: i64, rate: i64, per: i128) -> i64 {
    fit(round_half_even(i128::from(amount) * i128::from(rate), per))
}

fn fit(v: i128) -> i64 {
    // Inputs are bounded (gross ≤ 10¹⁰, rates ≤ 10⁴ bps or fen per 1000 points in i64), and
    // every result here is at most its input column times a rate over its unit.
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A sale's line.
pub fn sale_line(
    t: &SettlementTerms,
    gross_fen: i64,
    discount_fen: i64,
    redeem_points: i64,
    redeem_value_fen: i64,
    points_earned: i64,
) -> Money {
    Money {
        gross_fen,
        discount_fen,
        redeem_points,
        redeem_value_fen,
        points_earned,
        subsidy_fen: rated(discount_fen, t.discount_subsidy_bps, 10_000),
        reimbursement_fen: rated(redeem_points, t.redeem_reimburse_fen_per_1000_points, 1_000),
        issue_fee_fen: rated(points_earned, t.issue_fee_fen_per_1000_points, 1_000),
        commission_fen: rated(gross_fen, t.commission_bps, 10_000),
    }
}

/// Reversal k of `sale` (R_{k−1} = `before`, reversing `gross_fen`), as negative amounts.
pub fn reversal_line(sale: &Money, before: i64, gross_fen: i64) -> Money {
    let after = before + gross_fen;
    let g = sale.gross_fen;
    let part = |x: i64| -reversal_part(x, before, after, g);
    Money {
        gross_fen: -gross_fen,
        discount_fen: part(sale.discount_fen),
        redeem_points: part(sale.redeem_points),
        redeem_value_fen: part(sale.redeem_value_fen),
        points_earned: part(sale.points_earned),
        subsidy_fen: part(sale.subsidy_fen),
        reimbursement_fen: part(sale.reimbursement_fen),
        issue_fee_fen: part(sale.issue_fee_fen),
        commission_fen: part(sale.commission_fen),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_to_even() {
        assert_eq!(round_half_even(25, 10), 2);
        assert_eq!(round_half_even(35, 10), 4);
        assert_eq!(round_half_even(26, 10), 3);
        assert_eq!(round_half_even(24, 10), 2);
        assert_eq!(round_half_even(-25, 10), -2);
        assert_eq!(round_half_even(0, 10), 0);
    }

    #[test]
    fn a_full_refund_in_parts_nets_to_zero_in_every_column() {
        let t = SettlementTerms {
            issue_fee_fen_per_1000_points: 800,
            redeem_reimburse_fen_per_1000_points: 1000,
            discount_subsidy_bps: 3000,
            commission_bps: 200,
        };
        let sale = sale_line(&t, 9_999, 1_199, 333, 333, 127);
        assert_eq!(sale.subsidy_fen, 360); // 359.7
        assert_eq!(sale.commission_fen, 200); // 199.98
        let mut total = sale;
        let mut before = 0;
        for part in [1, 5_000, 4_998] {
            total.add(&reversal_line(&sale, before, part));
            before += part;
        }
        assert_eq!(total, Money::default());
        assert_eq!(total.net_fen(), 0);
    }
}
