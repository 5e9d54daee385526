//! Matching a day's gateway lines against a partner's upload, by (`partner_txn_id`,
//! `partner_reversal_id`), in the upload's convention (reversal amounts positive).
use super::{Kind, Row};
use crate::domain::Fen;
use chrono::NaiveDate;
use std::collections::BTreeMap;

/// A gateway line as reconciliation sees it.
#[derive(Debug, Clone)]
pub struct GatewayLine {
    pub partner_txn_id: String,
    pub kind: Kind,
    /// Empty on a sale.
    pub partner_reversal_id: String,
    pub gross_fen: i64,
    pub discount_fen: i64,
    pub redeem_points: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Discrepancy {
    pub partner_txn_id: String,
    pub kind: &'static str,
    pub partner_reversal_id: String,
    pub issue: &'static str,
    pub field: String,
    pub gateway_value: String,
    pub partner_value: String,
}

#[derive(Debug)]
pub struct Outcome {
    /// One per gateway line, in order: `matched`, `amount_mismatch`, `missing_at_partner`,
    /// `duplicate_at_partner` or `not-submitted`.
    pub line_status: Vec<&'static str>,
    pub discrepancies: Vec<Discrepancy>,
    /// `reconciled`, `discrepancies` or `not-submitted`.
    pub status: &'static str,
}

fn yuan(fen: i64) -> String {
    Fen::new(fen).to_yuan_string()
}

/// Reconciles a whole day at once (the streaming [`Reconciler`] over `lines`). `booked_on`
/// tells, for an upload row the gateway has no line for on this day, the day the gateway
/// booked that record (None: it has no such record at all).
pub fn reconcile(
    lines: &[GatewayLine],
    upload: Option<&[Row]>,
    mut booked_on: impl FnMut(&Row) -> Option<NaiveDate>,
) -> Outcome {
    let mut r = Reconciler::new(upload);
    let line_status = lines.iter().map(|l| r.line(l)).collect();
    let Ok((discrepancies, status)) =
        r.finish(|row| Ok::<_, std::convert::Infallible>(booked_on(row)));
    Outcome {
        line_status,
        discrepancies,
        status,
    }
}

/// Reconciles a day line by line, as the statement is written. Memory grows with the
/// partner's upload (bounded by the upload limit) and with the discrepancies found, never
/// with the number of gateway lines.
pub struct Reconciler<'u> {
    upload: Option<&'u [Row]>,
    /// The upload's rows by `partner_txn_id` then `partner_reversal_id`, and whether a gateway
    /// line had that key. Nested so that a line's borrowed ids can look it up.
    by_key: BTreeMap<&'u str, BTreeMap<&'u str, (Vec<&'u Row>, bool)>>,
    out: Vec<Discrepancy>,
}

impl<'u> Reconciler<'u> {
    pub fn new(upload: Option<&'u [Row]>) -> Self {
        let mut by_key: BTreeMap<&str, BTreeMap<&str, (Vec<&Row>, bool)>> = BTreeMap::new();
        for r in upload.unwrap_or_default() {
            by_key
                .entry(r.partner_txn_id.as_str())
                .or_default()
                .entry(r.partner_reversal_id.as_str())
                .or_default()
                .0
                .push(r);
        }
        Reconciler {
            upload,
            by_key,
            out: Vec::new(),
        }
    }

    /// The status of one gateway line: `matched`, `amount_mismatch`, `missing_at_partner`,
    /// `duplicate_at_partner`, or `not-submitted` when there is no upload.
    pub fn line(&mut self, l: &GatewayLine) -> &'static str {
        if self.upload.is_none() {
            return "not-submitted";
        }
        let disc = |issue, field: &str, g: String, p: String| Discrepancy {
            partner_txn_id: l.partner_txn_id.clone(),
            kind: l.kind.as_str(),
            partner_reversal_id: l.partner_reversal_id.clone(),
            issue,
            field: field.to_owned(),
            gateway_value: g,
            partner_value: p,
        };
        let found = self
            .by_key
            .get_mut(l.partner_txn_id.as_str())
            .and_then(|m| m.get_mut(l.partner_reversal_id.as_str()));
        let Some((rows, seen)) = found else {
            self.out.push(disc(
                "missing_at_partner",
                "",
                yuan(l.gross_fen),
                String::new(),
            ));
            return "missing_at_partner";
        };
        *seen = true;
        let Some((first, extra)) = rows.split_first() else {
            return "missing_at_partner";
        };
        let mut status = "matched";
        for (field, g, p) in [
            ("gross_yuan", yuan(l.gross_fen), yuan(first.gross_fen)),
            (
                "discount_yuan",
                yuan(l.discount_fen),
                yuan(first.discount_fen),
            ),
            (
                "redeem_points",
                l.redeem_points.to_string(),
                first.redeem_points.to_string(),
            ),
        ] {
            if g != p {
                self.out.push(disc("amount_mismatch", field, g, p));
                status = "amount_mismatch";
            }
        }
        for copy in extra {
            self.out.push(disc(
                "duplicate_at_partner",
                "",
                String::new(),
                yuan(copy.gross_fen),
            ));
            status = "duplicate_at_partner";
        }
        status
    }

    /// The discrepancies, sorted, and the partner's status (`reconciled`, `discrepancies` or
    /// `not-submitted`). Upload rows no gateway line had are looked up with `booked_on`.
    pub fn finish<E>(
        mut self,
        mut booked_on: impl FnMut(&Row) -> Result<Option<NaiveDate>, E>,
    ) -> Result<(Vec<Discrepancy>, &'static str), E> {
        let Some(upload) = self.upload else {
            return Ok((Vec::new(), "not-submitted"));
        };
        for r in upload {
            let seen = self
                .by_key
                .get(r.partner_txn_id.as_str())
                .and_then(|m| m.get(r.partner_reversal_id.as_str()))
                .is_some_and(|(_, seen)| *seen);
            if seen {
                continue;
            }
            let (issue, gateway_value) = match booked_on(r)? {
                Some(day) => ("booked_other_day", day.to_string()),
                None => ("missing_at_gateway", String::new()),
            };
            self.out.push(Discrepancy {
                partner_txn_id: r.partner_txn_id.clone(),
                kind: r.kind.as_str(),
                partner_reversal_id: r.partner_reversal_id.clone(),
                issue,
                field: String::new(),
                gateway_value,
                partner_value: yuan(r.gross_fen),
            });
        }
        self.out.sort();
        let status = if self.out.is_empty() {
            "reconciled"
        } else {
            "discrepancies"
        };
        Ok((self.out, status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, kind: Kind, rid: &str, gross: i64, discount: i64, line: usize) -> Row {
        Row {
            line,
            partner_txn_id: id.into(),
            kind,
            partner_reversal_id: rid.into(),
            gross_fen: gross,
            discount_fen: discount,
            redeem_points: 0,
        }
    }

    #[test]
    fn every_issue_is_found() {
        let lines = vec![
            GatewayLine {
                partner_txn_id: "A".into(),
                kind: Kind::Sale,
                partner_reversal_id: "".into(),
                gross_fen: 1000,
                discount_fen: 100,
                redeem_points: 0,
            },
            GatewayLine {
                partner_txn_id: "B".into(),
                kind: Kind::Sale,
                partner_reversal_id: "".into(),
                gross_fen: 500,
                discount_fen: 0,
                redeem_points: 0,
            },
            GatewayLine {
                partner_txn_id: "C".into(),
                kind: Kind::Sale,
                partner_reversal_id: "".into(),
                gross_fen: 700,
                discount_fen: 0,
                redeem_points: 0,
            },
            GatewayLine {
                partner_txn_id: "D".into(),
                kind: Kind::Sale,
                partner_reversal_id: "".into(),
                gross_fen: 900,
                discount_fen: 0,
                redeem_points: 0,
            },
        ];
        let upload = vec![
            row("A", Kind::Sale, "", 1000, 100, 2),
            row("B", Kind::Sale, "", 500, 10, 3),
            row("D", Kind::Sale, "", 900, 0, 4),
            row("D", Kind::Sale, "", 900, 0, 5),
            row("E", Kind::Sale, "", 300, 0, 6),
            row("F", Kind::Sale, "", 400, 0, 7),
        ];
        let other = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        let o = reconcile(&lines, Some(&upload), |r| {
            (r.partner_txn_id == "F").then_some(other)
        });
        assert_eq!(
            o.line_status,
            [
                "matched",
                "amount_mismatch",
                "missing_at_partner",
                "duplicate_at_partner"
            ]
        );
        assert_eq!(o.status, "discrepancies");
        let issues: Vec<(&str, &str, &str)> = o
            .discrepancies
            .iter()
            .map(|d| (d.partner_txn_id.as_str(), d.issue, d.field.as_str()))
            .collect();
        assert_eq!(
            issues,
            [
                ("B", "amount_mismatch", "discount_yuan"),
                ("C", "missing_at_partner", ""),
                ("D", "duplicate_at_partner", ""),
                ("E", "missing_at_gateway", ""),
                ("F", "booked_other_day", ""),
            ]
        );
        assert_eq!(o.discrepancies[4].gateway_value, "2026-12-02");
        let clean = reconcile(&lines[..1], Some(&upload[..1]), |_| None);
        assert_eq!(clean.status, "reconciled");
        assert_eq!(reconcile(&lines, None, |_| None).status, "not-submitted");
    }
}
