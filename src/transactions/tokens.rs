//! Member tokens (`POST /v1/member-tokens`): the mall's member app asks for one, shows it as a
//! QR code or an 8-digit code, and the cashier sends it with a redemption. Single use, bound to
//! one member, valid 5 minutes; only its SHA-256 is stored.
use super::{Ctx, TxnError};
use crate::db::member_tokens::{MemberToken, NewMemberToken};
use crate::db::members::Member;
use crate::db::{write_tx, DbConn, DbError};
use crate::domain::{CardNo, MemberStatus};
use chrono::{NaiveDateTime, SecondsFormat, TimeDelta};
use serde::{Deserialize, Serialize};

pub const TOKEN_VALIDITY_S: i64 = 300;
pub const TOKEN_DIGITS: usize = 8;
pub const TOKEN_ISSUER_CAPABILITY: &str = "token-issuer";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub card_no: String,
}

#[derive(Debug, Serialize)]
pub struct IssuedToken {
    pub member_token: String,
    pub expires_at: String,
}

fn token_hash(token: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

fn random_digits() -> Result<String, DbError> {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    let mut out = String::with_capacity(TOKEN_DIGITS);
    while out.len() < TOKEN_DIGITS {
        let mut b = [0u8; 1];
        rng.fill(&mut b)
            .map_err(|_| DbError::Invariant("no system randomness".into()))?;
        // 250 = 25 × 10: rejection sampling keeps every digit equally likely.
        if b[0] < 250 {
            out.push(char::from(b'0' + b[0] % 10));
        }
    }
    Ok(out)
}

/// Issues a token for the member with `card_no`, for a partner with the token-issuer
/// capability.
pub fn issue(
    conn: &mut DbConn,
    ctx: &Ctx<'_>,
    req: &TokenRequest,
) -> Result<IssuedToken, TxnError> {
    let card =
        CardNo::parse(&req.card_no).map_err(|e| TxnError::validation("card_no", e.to_string()))?;
    let partner = ctx
        .registry
        .partner(conn, ctx.partner.as_str())?
        .ok_or_else(|| DbError::Invariant(format!("partner {} vanished", ctx.partner)))?;
    if !partner.has_capability(TOKEN_ISSUER_CAPABILITY) {
        return Err(TxnError::Forbidden(
            "only partners with the token-issuer capability issue member tokens".into(),
        ));
    }
    let member = Member::find_by_card(conn, card.as_str())?.ok_or(TxnError::MemberNotFound)?;
    let status = MemberStatus::parse(&member.status)
        .map_err(|e| DbError::Invariant(format!("member {}: {e}", member.id)))?;
    if status != MemberStatus::Active {
        return Err(TxnError::MemberInactive(status.as_str().to_owned()));
    }
    let now = crate::db::micros(ctx.now);
    let expires = now + TimeDelta::seconds(TOKEN_VALIDITY_S);
    // A collision with a live token of the same member is astronomically rare; retry anyway.
    for _ in 0..3 {
        let token = random_digits()?;
        let hash = token_hash(&token);
        let inserted = write_tx(conn, |conn| {
            MemberToken::insert(
                conn,
                &NewMemberToken {
                    member_id: member.id,
                    token_sha256: &hash,
                    issuer: ctx.partner.as_str(),
                    created_at: now,
                    expires_at: expires,
                },
            )
        });
        match inserted {
            Ok(()) => {
                return Ok(IssuedToken {
                    member_token: token,
                    expires_at: expires
                        .and_utc()
                        .with_timezone(&ctx.settings.timezone)
                        .to_rfc3339_opts(SecondsFormat::Secs, false),
                })
            }
            Err(e) if crate::db::is_unique_violation(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(DbError::Invariant("could not make a unique member token".into()).into())
}

/// Uses a token for `txn_id`, inside the sale's transaction: a refused sale rolls it back, so
/// the token stays unused.
pub fn consume(
    conn: &mut DbConn,
    member_id: i64,
    token: &str,
    txn_id: &str,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    Ok(MemberToken::consume(
        conn,
        member_id,
        &token_hash(token),
        txn_id,
        now,
    )?)
}
