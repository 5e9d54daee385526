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

    /// Moves the head forward (inserting it for the first record).
    pub fn advance(conn: &mut DbConn, head: &ChainHead) -> QueryResult<()> {
        let updated = concrete!(conn, |c| diesel::update(
            partner_chains::table.find(&head.partner_code)
        )
        .set((
            partner_chains::seq.eq(head.seq),
            partner_chains::line_hash.eq(&head.line_hash),
        ))
        .execute(c))?;
        if updated == 0 {
            concrete!(conn, |c| diesel::insert_into(partner_chains::table)
                .values(head)
                .execute(c))?;
        }
        Ok(())
    }
}
