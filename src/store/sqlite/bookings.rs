//! SQLite's statements for a sale (see `store::bookings`): plain reads and inserts, one by
//! one. SQLite's single writer needs no locks, and a statement there is a function call, so
//! folding them into one would save nothing.
use crate::db::idempotency_keys::{StoredAnswer, StoredResponse};
use crate::db::ledger::Ledger;
use crate::db::transactions::Transaction;
use crate::db::{DbConn, DbError};
use crate::store::sale::{AnswerLookup, Answered, MemberKey, SaleMember, SalePrelude, ToBook};
use diesel::prelude::*;

/// The sale's prelude as plain reads.
pub(crate) fn sale_prelude(
    conn: &mut DbConn,
    partner: &str,
    partner_txn_id: &str,
    member: MemberKey<'_>,
    answer: Option<AnswerLookup<'_>>,
) -> QueryResult<SalePrelude> {
    // SQLite's single writer orders requests under one key: the stored answer is
    // a plain read.
    let answered = match answer {
        None => Answered::Open,
        Some(a) => match StoredResponse::find(conn, partner, a.key, a.now)? {
            None => Answered::Open,
            Some(r) => {
                return Ok(SalePrelude {
                    answered: Answered::Stored(StoredAnswer {
                        request_sha256: r.request_sha256,
                        response_status: r.response_status,
                        response_body: r.response_body,
                    }),
                    last_closed: None,
                    existing_txn_id: None,
                    member: None,
                })
            }
        },
    };
    let last_closed = crate::db::business_days::BusinessDays::last_closed(conn)?;
    let existing_txn_id =
        Transaction::find_by_partner_txn_id(conn, partner, partner_txn_id)?.map(|t| t.txn_id);
    if existing_txn_id.is_some() {
        return Ok(SalePrelude {
            answered,
            last_closed,
            existing_txn_id,
            member: None,
        });
    }
    let found = match member {
        MemberKey::Card(card) => crate::db::members::Member::find_by_card(conn, card)?,
        MemberKey::Ref(r) => {
            match crate::db::member_refs::MemberRef::member_id(conn, partner, r)? {
                Some(id) => crate::db::members::Member::find(conn, id)?,
                None => None,
            }
        }
    };
    let member = match found {
        Some(m) => Some(SaleMember {
            balance: crate::db::ledger::Ledger::balance(conn, m.id)?,
            id: m.id,
            tier: m.tier,
            status: m.status,
            birth_month: m.birth_month,
        }),
        None => None,
    };
    Ok(SalePrelude {
        answered,
        last_closed,
        existing_txn_id,
        member,
    })
}

/// One sale, statement by statement.
pub(crate) fn book(conn: &mut DbConn, sale: &ToBook<'_>) -> Result<(), DbError> {
    let (t, remember_ref, postings, answer) =
        (sale.txn, sale.remember_ref, &sale.postings[..], sale.answer);
    if remember_ref {
        crate::db::member_refs::MemberRef::remember(
            conn,
            &crate::db::member_refs::NewMemberRef {
                partner_code: &t.partner_code,
                member_ref: &t.member_ref,
                member_id: t.member_id,
                created_at: t.created_at,
            },
        )?;
    }
    if !postings.is_empty() {
        Ledger::post(conn, "sale", &t.txn_id, postings, t.created_at)?;
    }
    Transaction::insert(conn, t)?;
    if let Some(answer) = answer {
        StoredResponse::store(conn, answer)?;
    }
    Ok(())
}
