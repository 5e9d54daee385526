//! `POST /v1/members/verify`: a member's tier and benefits at this partner, never their PII.
use crate::alliance::business_day;
use crate::db::member_refs::{MemberRef, NewMemberRef};
use crate::db::members::{Member, VerifyBy};
use crate::db::offer_versions::OfferVersion;
use crate::db::{DbConn, DbError};
use crate::domain::terms::BPS_ONE;
use crate::domain::{CardNo, MemberStatus, PartnerCode, Phone, Tier};
use crate::pki::secrets::MemberKeys;
use crate::registry::{Offer, RegistryView};
use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The request body as sent; exactly one field must be present.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub card_no: Option<String>,
    pub phone: Option<String>,
    pub member_ref: Option<String>,
}

/// How the partner named the member.
pub enum Lookup {
    Card(CardNo),
    Phone(Phone),
    Ref(String),
}

pub use crate::domain::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the request is not valid")]
    Validation(Vec<FieldError>),
    #[error("no member matches")]
    MemberNotFound,
    #[error(transparent)]
    RateLimited(#[from] crate::members::limits::RateLimited),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for VerifyError {
    fn from(e: diesel::result::Error) -> Self {
        VerifyError::Db(DbError::Query(e))
    }
}

impl VerifyRequest {
    /// Parse, don't validate: one well-formed way of naming a member, or field errors.
    pub fn parse(self) -> Result<Lookup, VerifyError> {
        let field = |f: &str, m: &str| FieldError {
            field: f.into(),
            message: m.into(),
        };
        match (self.card_no, self.phone, self.member_ref) {
            (Some(c), None, None) => CardNo::parse(&c)
                .map(Lookup::Card)
                .map_err(|e| VerifyError::Validation(vec![field("card_no", &e.to_string())])),
            (None, Some(p), None) => Phone::parse(&p)
                .map(Lookup::Phone)
                .map_err(|e| VerifyError::Validation(vec![field("phone", &e.to_string())])),
            (None, None, Some(r)) => {
                let ok = r.len() == 26
                    && r.bytes()
                        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b));
                if ok {
                    Ok(Lookup::Ref(r))
                } else {
                    Err(VerifyError::Validation(vec![field(
                        "member_ref",
                        "must be the 26-character ref this partner received from verify",
                    )]))
                }
            }
            _ => Err(VerifyError::Validation(vec![field(
                "card_no",
                "give exactly one of card_no, phone or member_ref",
            )])),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Benefits {
    pub discount_bps: i64,
    pub discount_cap_fen: i64,
    pub min_spend_fen: i64,
    pub earn_points_per_yuan: i64,
    pub earn_multiplier_bps: i64,
    pub redeem_enabled: bool,
    pub redeem_fen_per_point: i64,
    pub redeem_max_share_bps: i64,
    pub redeem_requires_member_token: bool,
    pub points_balance: i64,
    pub member_day: bool,
    pub birthday_month: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VerifyResponse {
    pub member_ref: String,
    pub status: String,
    pub eligible: bool,
    pub tier: String,
    pub benefits: Benefits,
    pub offer_version: i64,
    pub verified_at: String,
}

/// Looks the member up and describes their benefits at `partner` at instant `local` (in the
/// alliance's time zone).
pub fn verify(
    conn: &mut DbConn,
    registry: &RegistryView,
    keys: &MemberKeys,
    limits: &crate::members::limits::VerifyLimits,
    partner: &PartnerCode,
    lookup: &Lookup,
    local: DateTime<Tz>,
) -> Result<VerifyResponse, VerifyError> {
    let today = business_day(local.with_timezone(&Utc), local.timezone());
    // One autocommit read: the member, whether this partner holds their ref, and their
    // balance (`Member::for_verify`). The balance shown is informational (the ledger decides
    // at the moment of a redemption).
    let phone_hash;
    let by = match lookup {
        Lookup::Card(card) => VerifyBy::Card(card.as_str()),
        Lookup::Phone(phone) => {
            phone_hash = keys.phone_hash(phone);
            VerifyBy::PhoneHash(&phone_hash)
        }
        // Only refs this partner was given resolve: another partner's ref is not found.
        Lookup::Ref(r) => VerifyBy::Ref(r),
    };
    let member =
        Member::for_verify(conn, by, partner.as_str())?.ok_or(VerifyError::MemberNotFound)?;

    // Distinct members per day, before anything is written or returned about this member.
    let seconds_to_next_day = today
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|midnight| (midnight - local.naive_local()).num_seconds().max(1) as u64)
        .unwrap_or(86_400);
    limits.member(partner.as_str(), today, member.id, seconds_to_next_day)?;

    let member_ref = keys.member_ref(partner.as_str(), member.id);
    let ref_known = member.ref_known != 0;
    // The version in force today; before the first version starts, show that one but mark
    // the member not eligible (a sale dated before it is refused).
    let (offer, in_force) = match registry.offer_in_force(conn, partner.as_str(), today)? {
        Some(o) => (o, true),
        None => {
            let version = OfferVersion::earliest(conn, partner.as_str())?
                .ok_or_else(|| DbError::Invariant(format!("partner {partner} has no offer")))?;
            let terms = crate::registry::terms_of(&version)?;
            (std::sync::Arc::new(Offer { version, terms }), false)
        }
    };
    let balance = member.balance_points;
    if !ref_known {
        MemberRef::remember(
            conn,
            &NewMemberRef {
                partner_code: partner.as_str(),
                member_ref: &member_ref,
                member_id: member.id,
                created_at: crate::db::micros(local.with_timezone(&Utc)),
            },
        )?;
    }

    let tier = Tier::parse(&member.tier)
        .map_err(|e| DbError::Invariant(format!("member {}: {e}", member.id)))?;
    let status = MemberStatus::parse(&member.status)
        .map_err(|e| DbError::Invariant(format!("member {}: {e}", member.id)))?;
    let o = &offer.terms.offer;
    let day_bps = o.day_bps(local.day());
    let birthday_month = member.birth_month == i32::try_from(local.month()).ok();
    let birth_bps = if birthday_month {
        o.birthday_month_multiplier_bps
    } else {
        BPS_ONE
    };

    Ok(VerifyResponse {
        member_ref,
        status: status.as_str().to_owned(),
        eligible: status == MemberStatus::Active && in_force,
        tier: tier.as_str().to_owned(),
        benefits: Benefits {
            discount_bps: o.discount_bps.get(tier),
            discount_cap_fen: o.discount_cap_fen,
            min_spend_fen: o.min_spend_fen,
            earn_points_per_yuan: o.earn_points_per_yuan,
            earn_multiplier_bps: o.earn_multiplier_bps(tier, day_bps, birth_bps),
            redeem_enabled: o.redeem.enabled,
            redeem_fen_per_point: o.redeem.fen_per_point,
            redeem_max_share_bps: o.redeem.max_share_bps,
            redeem_requires_member_token: o.redeem.enabled && o.redeem.requires_member_token,
            points_balance: balance,
            member_day: o
                .member_day
                .as_ref()
                .is_some_and(|md| md.day_of_month == local.day()),
            birthday_month,
        },
        offer_version: offer.version.version,
        verified_at: local.to_rfc3339_opts(SecondsFormat::Secs, false),
    })
}
