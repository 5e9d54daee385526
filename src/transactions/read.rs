//! `GET /v1/transactions/{txn_id}` and `GET /v1/transactions?business_date=&cursor=&limit=`:
//! a partner's own records only; another partner's id is 404, never 403.
use super::reversal::ReversalReceipt;
use super::sale::Receipt;
use super::TxnError;
use crate::db::reversals::Reversal;
use crate::db::transactions::Transaction;
use crate::db::DbConn;
use chrono::NaiveDate;
use serde::Serialize;

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 500;

#[derive(Debug, Serialize)]
pub struct TransactionView {
    #[serde(flatten)]
    pub receipt: Receipt,
    pub reversals: Vec<ReversalReceipt>,
}

#[derive(Debug, Serialize)]
pub struct Page {
    pub items: Vec<TransactionView>,
    pub next_cursor: Option<String>,
}

fn view(conn: &mut DbConn, t: &Transaction) -> Result<TransactionView, TxnError> {
    Ok(TransactionView {
        receipt: Receipt::from(t),
        reversals: Reversal::of(conn, &t.txn_id)?
            .iter()
            .map(ReversalReceipt::from)
            .collect(),
    })
}

pub fn one(conn: &mut DbConn, partner: &str, txn_id: &str) -> Result<TransactionView, TxnError> {
    if !super::is_gateway_id(txn_id) {
        return Err(TxnError::TransactionNotFound);
    }
    let t = Transaction::find(conn, partner, txn_id)?.ok_or(TxnError::TransactionNotFound)?;
    view(conn, &t)
}

/// The query of a list, parsed: `business_date` (required), `cursor`, `limit` (1–500).
pub struct ListQuery {
    pub business_date: NaiveDate,
    pub cursor: Option<String>,
    pub limit: i64,
}

impl ListQuery {
    pub fn parse(query: &str) -> Result<ListQuery, TxnError> {
        let mut business_date = None;
        let mut cursor = None;
        let mut limit = DEFAULT_LIMIT;
        let mut errors = Vec::new();
        let err = |errors: &mut Vec<_>, field: &str, message: &str| {
            errors.push(crate::domain::FieldError {
                field: field.into(),
                message: message.into(),
            })
        };
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "business_date" => match crate::domain::day::parse_day(&v) {
                    Ok(d) => business_date = Some(d),
                    Err(e) => err(&mut errors, "business_date", &e.to_string()),
                },
                "cursor" => {
                    if v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                        cursor = Some(v.into_owned());
                    } else {
                        err(
                            &mut errors,
                            "cursor",
                            "is not a cursor this gateway handed out",
                        );
                    }
                }
                "limit" => match v.parse::<i64>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                    _ => err(&mut errors, "limit", "must be between 1 and 500"),
                },
                _ => {}
            }
        }
        if business_date.is_none() && errors.is_empty() {
            err(&mut errors, "business_date", "is required");
        }
        match (business_date, errors.is_empty()) {
            (Some(business_date), true) => Ok(ListQuery {
                business_date,
                cursor,
                limit,
            }),
            _ => Err(TxnError::Validation(errors)),
        }
    }
}

/// One page of the partner's transactions booked on a day, in a stable order; `next_cursor`
/// is set when there may be more.
pub fn page(conn: &mut DbConn, partner: &str, q: &ListQuery) -> Result<Page, TxnError> {
    let rows = Transaction::page(conn, partner, q.business_date, q.cursor.as_deref(), q.limit)?;
    let next_cursor = if rows.len() as i64 == q.limit {
        rows.last().map(|t| t.txn_id.clone())
    } else {
        None
    };
    let items = rows
        .iter()
        .map(|t| view(conn, t))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page { items, next_cursor })
}
