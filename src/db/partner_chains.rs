use super::schema::partner_chains;
use super::DbConn;
use diesel::prelude::*;

/// The head of a partner's hash chain: its last `seq` and `line_hash`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = partner_chains)]
pub struct ChainHead {
    pub partner_code: String,
    pub seq: i64,
    pub line_hash: String,
}

/// The hash the first record of every chain is chained to: 32 zero bytes.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl ChainHead {
    /// The head, or (0, GENESIS) for a partner with no record yet. Call with the partner's
    /// chain lock held (see `db::serialise`).
    pub fn current(conn: &mut DbConn, partner: &str) -> QueryResult<ChainHead> {
        Ok(concrete!(conn, |c| partner_chains::table
            .find(partner)
            .select(ChainHead::as_select())
            .first(c)
            .optional())?
        .unwrap_or_else(|| ChainHead {
            partner_code: partner.to_owned(),
            seq: 0,
            line_hash: GENESIS.to_owned(),
        }))
    }

    /// Moves the head forward (inserting it for the first record): one upsert, hand-written
    /// so that it stays prepared (see `db::prepared`).
    pub fn advance(conn: &mut DbConn, head: &ChainHead) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Text};
        let upsert = super::prepared::prepared(
            "INSERT INTO partner_chains (partner_code, seq, line_hash) VALUES ($1, $2, $3) \
             ON CONFLICT (partner_code) DO UPDATE SET \
             seq = excluded.seq, line_hash = excluded.line_hash",
        )
        .bind::<Text, _>(&head.partner_code)
        .bind::<BigInt, _>(head.seq)
        .bind::<Text, _>(&head.line_hash);
        concrete!(conn, |c| upsert.execute(c))?;
        Ok(())
    }
}
