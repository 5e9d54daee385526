use super::schema::members;
use super::DbConn;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = members)]
pub struct Member {
    pub id: i64,
    pub card_no: String,
    pub tier: String,
    pub status: String,
    pub birth_month: Option<i32>,
    pub phone_hash: Option<String>,
    pub phone_key_version: Option<i32>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = members)]
pub struct NewMember<'a> {
    pub card_no: &'a str,
    pub tier: &'a str,
    pub status: &'a str,
    pub birth_month: Option<i32>,
    pub phone_hash: Option<&'a str>,
    pub phone_key_version: Option<i32>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// What verify needs of a member, read in one statement ([`Member::for_verify`]).
#[derive(Debug, Clone, QueryableByName)]
pub struct MemberForVerify {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub tier: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
    pub birth_month: Option<i32>,
    /// 1 when this partner already holds the member's ref (`member_refs`), else 0.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub ref_known: i64,
    /// The sum of the member's ledger entries, as `Ledger::balance`.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub balance_points: i64,
}

/// How verify names the member: `$1` of [`Member::for_verify`]'s statement.
#[derive(Debug, Clone, Copy)]
pub enum VerifyBy<'a> {
    Card(&'a str),
    PhoneHash(&'a str),
    /// A ref this partner was given; another partner's ref finds nothing.
    Ref(&'a str),
}

impl Member {
    /// The member, whether `partner_code` already holds their ref, and their balance: one
    /// statement where it was three. Why: each autocommit read is a read transaction of its
    /// own, and on SQLite every new read transaction after another connection's write (a
    /// nonce, every request) throws the connection's page cache away; on PostgreSQL each
    /// is a round trip. Hand-written so that it stays prepared (see `db::prepared`); the
    /// three texts differ only in how the member is found.
    pub fn for_verify(
        conn: &mut DbConn,
        by: VerifyBy<'_>,
        partner_code: &str,
    ) -> QueryResult<Option<MemberForVerify>> {
        use diesel::sql_types::Text;
        // `ref_known` looks the ref up by member: `member_refs` is unique on
        // (partner_code, member_id) as well as on (partner_code, member_ref), and a ref is
        // derived from the partner and the member id alone. (Found by ref, it is always 1.)
        macro_rules! select_then {
            ($from_where:literal) => {
                concat!(
                    "SELECT m.id, m.tier, m.status, m.birth_month, \
                     CAST(CASE WHEN EXISTS (SELECT 1 FROM member_refs k \
                       WHERE k.partner_code = $2 AND k.member_id = m.id) \
                       THEN 1 ELSE 0 END AS BIGINT) AS ref_known, \
                     (SELECT CAST(COALESCE(SUM(e.amount_points), 0) AS BIGINT) \
                       FROM ledger_entries e WHERE e.member_id = m.id) AS balance_points ",
                    $from_where
                )
            };
        }
        const CARD: &str = select_then!("FROM members m WHERE m.card_no = $1");
        const PHONE: &str = select_then!("FROM members m WHERE m.phone_hash = $1");
        const REF: &str = select_then!(
            "FROM member_refs r JOIN members m ON m.id = r.member_id \
             WHERE r.member_ref = $1 AND r.partner_code = $2"
        );
        let (sql, key) = match by {
            VerifyBy::Card(card) => (CARD, card),
            VerifyBy::PhoneHash(hash) => (PHONE, hash),
            VerifyBy::Ref(member_ref) => (REF, member_ref),
        };
        let query = super::prepared::prepared(sql)
            .bind::<Text, _>(key)
            .bind::<Text, _>(partner_code);
        concrete!(conn, |c| query.get_result::<MemberForVerify>(c).optional())
    }

    pub fn find(conn: &mut DbConn, id: i64) -> QueryResult<Option<Member>> {
        concrete!(conn, |c| members::table
            .find(id)
            .select(Member::as_select())
            .first(c)
            .optional())
    }

    pub fn find_by_card(conn: &mut DbConn, card_no: &str) -> QueryResult<Option<Member>> {
        concrete!(conn, |c| members::table
            .filter(members::card_no.eq(card_no))
            .select(Member::as_select())
            .first(c)
            .optional())
    }

    pub fn find_by_phone_hash(conn: &mut DbConn, phone_hash: &str) -> QueryResult<Option<Member>> {
        members::table
            .filter(members::phone_hash.eq(phone_hash))
            .select(Member::as_select())
            .first(conn)
            .optional()
    }

    pub fn insert(conn: &mut DbConn, new: &NewMember<'_>) -> QueryResult<i64> {
        diesel::insert_into(members::table)
            .values(new)
            .returning(members::id)
            .get_result(conn)
    }

    /// Re-imports change tier and status only; balances live in the ledger and never here.
    pub fn update_tier_status(
        conn: &mut DbConn,
        id: i64,
        tier: &str,
        status: &str,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        diesel::update(members::table.find(id))
            .set((
                members::tier.eq(tier),
                members::status.eq(status),
                members::updated_at.eq(now),
            ))
            .execute(conn)
            .map(|_| ())
    }

    pub fn count(conn: &mut DbConn) -> QueryResult<i64> {
        members::table.count().get_result(conn)
    }
}
