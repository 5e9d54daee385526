//! What a sale's statements read and write (`bookings`), whatever the backend.
use crate::db::idempotency_keys::{StoredAnswer, StoredResponse};
use crate::db::ledger::Posting;
use crate::db::transactions::Transaction;

use chrono::{NaiveDate, NaiveDateTime};

/// What booking a sale writes: its row, the member's ref for this partner when
/// `remember_ref`, its points journal (`postings`, balanced; empty when no points move) and
/// the answer to store under its Idempotency-Key.
#[derive(Debug, Clone)]
pub struct SaleRows {
    pub txn: Transaction,
    pub remember_ref: bool,
    pub postings: Vec<crate::db::ledger::OwnedPosting>,
    pub answer: Option<StoredResponse>,
}

impl SaleRows {
    /// The rows as `bookings::book_many` takes them.
    pub fn to_book(&self) -> ToBook<'_> {
        ToBook {
            txn: &self.txn,
            remember_ref: self.remember_ref,
            postings: self.postings.iter().map(|p| p.as_posting()).collect(),
            answer: self.answer.as_ref(),
        }
    }
}

/// The advisory locks a sale takes before it reads (PostgreSQL; see `db::locks`).
#[derive(Debug, Clone, Copy)]
pub struct SaleLocks {
    /// `locks::BOOKING`, taken shared: a day cannot close under the booking.
    pub booking: i64,
    /// `locks::partner_record`: orders two requests with one partner_txn_id.
    pub record: i64,
}

/// How a sale names its member.
#[derive(Debug, Clone, Copy)]
pub enum MemberKey<'a> {
    Card(&'a str),
    /// A ref this partner was given; another partner's ref names no one.
    Ref(&'a str),
}

/// What a sale needs to know of its member, with the balance read under the member's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleMember {
    pub id: i64,
    pub tier: String,
    pub status: String,
    pub birth_month: Option<i32>,
    pub balance: i64,
}

/// The Idempotency-Key a sale's prelude tries first, when the sale folds its key's lock,
/// lookup and stored answer into its own statements (PostgreSQL; see
/// `transactions::sale::record_once`).
#[derive(Debug, Clone, Copy)]
pub struct AnswerLookup<'a> {
    /// `locks::idempotency` of the key.
    pub lock: i64,
    pub key: &'a str,
    pub now: NaiveDateTime,
}

/// What the prelude found under the Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered {
    /// No key was asked about, or no live answer is stored under it: the sale goes on.
    Open,
    /// Another request holds the key's lock; nothing else was locked or read.
    InFlight,
    /// The live answer stored under the key; nothing else was locked or read.
    Stored(StoredAnswer),
}

/// What a sale reads before its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalePrelude {
    pub answered: Answered,
    pub last_closed: Option<NaiveDate>,
    /// The sale already recorded under this partner_txn_id; then nothing else was read.
    pub existing_txn_id: Option<String>,
    /// `None`: no member matches (or not looked up, see `existing_txn_id`).
    pub member: Option<SaleMember>,
}

/// Sales per `bookings::book_many` statement, at most.
pub const MAX_BOOK_MANY: usize = 64;

/// One sale of `bookings::book_many`: what `bookings::book` takes.
pub struct ToBook<'a> {
    pub txn: &'a Transaction,
    pub remember_ref: bool,
    pub postings: Vec<Posting<'a>>,
    pub answer: Option<&'a StoredResponse>,
}
