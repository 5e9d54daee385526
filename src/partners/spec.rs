//! `partner-specs/<CODE>.toml` (contract section 11). Every error names the file, the line and
//! the key; a missing key names its table and the table's line.
use crate::domain::terms::{MemberDay, Offer, Redeem, SettlementTerms, Terms, TierMap, BPS_ONE};
use crate::domain::PartnerCode;
use chrono::NaiveDate;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

pub const CATEGORIES: [&str; 7] = [
    "restaurant",
    "cinema",
    "gym",
    "bookstore",
    "hotel",
    "mall",
    "other",
];
pub const CAPABILITIES: [&str; 1] = ["token-issuer"];
/// Specs are small; anything bigger is a mistake.
pub const MAX_SPEC_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub file: String,
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file, self.line, self.key, self.message
        )
    }
}

#[derive(Debug, Clone)]
pub struct PartnerSpec {
    pub code: PartnerCode,
    pub name: String,
    pub category: String,
    pub capabilities: Vec<String>,
    pub effective_from: NaiveDate,
    pub contact_email: String,
    pub terms: Terms,
}

type Value<'i> = Spanned<DeValue<'i>>;

struct Walker<'s> {
    file: &'s str,
    src: &'s str,
    errors: Vec<SpecError>,
}

/// The entries of one table, with where the table itself starts (for "missing key" errors).
struct Table<'a, 'i> {
    path: String,
    line: usize,
    entries: BTreeMap<String, (Range<usize>, &'a Value<'i>)>,
}

impl<'s> Walker<'s> {
    fn line(&self, offset: usize) -> usize {
        self.src[..offset.min(self.src.len())].matches('\n').count() + 1
    }

    fn error(&mut self, offset: usize, key: &str, message: impl Into<String>) {
        let line = self.line(offset);
        self.errors.push(SpecError {
            file: self.file.to_owned(),
            line,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    fn table<'a, 'i>(
        &mut self,
        table: &'a DeTable<'i>,
        path: &str,
        line: usize,
        allowed: &[&str],
    ) -> Table<'a, 'i> {
        let mut entries = BTreeMap::new();
        for (k, v) in table.iter() {
            let name: &str = k.get_ref();
            let full = join(path, name);
            if allowed.contains(&name) {
                entries.insert(name.to_owned(), (k.span(), v));
            } else {
                self.error(
                    k.span().start,
                    &full,
                    format!("unknown key (expected one of: {})", allowed.join(", ")),
                );
            }
        }
        Table {
            path: path.to_owned(),
            line,
            entries,
        }
    }

    fn required<'a, 'i>(
        &mut self,
        t: &Table<'a, 'i>,
        key: &str,
    ) -> Option<(String, &'a Value<'i>)> {
        match t.entries.get(key) {
            Some((_, v)) => Some((join(&t.path, key), *v)),
            None => {
                let table = if t.path.is_empty() {
                    "top level".to_owned()
                } else {
                    format!("[{}]", t.path)
                };
                self.errors.push(SpecError {
                    file: self.file.to_owned(),
                    line: t.line,
                    key: join(&t.path, key),
                    message: format!("missing key in {table}"),
                });
                None
            }
        }
    }

    fn optional<'a, 'i>(&self, t: &Table<'a, 'i>, key: &str) -> Option<(String, &'a Value<'i>)> {
        t.entries.get(key).map(|(_, v)| (join(&t.path, key), *v))
    }

    fn string(&mut self, (key, v): (String, &Value<'_>)) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            other => {
                self.error(
                    v.span().start,
                    &key,
                    format!("expected a string, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, (key, v): (String, &Value<'_>)) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.error(
                    v.span().start,
                    &key,
                    format!("expected true or false, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn int(&mut self, (key, v): (String, &Value<'_>), range: Range<i64>) -> Option<i64> {
        let parsed = match v.get_ref() {
            DeValue::Integer(i) => {
                i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok()
            }
            other => {
                self.error(
                    v.span().start,
                    &key,
                    format!("expected an integer, found {}", other.type_str()),
                );
                return None;
            }
        };
        match parsed {
            Some(n) if range.contains(&n) => Some(n),
            _ => {
                self.error(
                    v.span().start,
                    &key,
                    format!("out of range: must be {} to {}", range.start, range.end - 1),
                );
                None
            }
        }
    }

    fn sub_table<'a, 'i>(
        &mut self,
        (key, v): (String, &'a Value<'i>),
        allowed: &[&str],
    ) -> Option<Table<'a, 'i>> {
        match v.get_ref() {
            DeValue::Table(t) => {
                let line = self.line(v.span().start);
                Some(self.table(t, &key, line, allowed))
            }
            other => {
                self.error(
                    v.span().start,
                    &key,
                    format!("expected a table, found {}", other.type_str()),
                );
                None
            }
        }
    }

    /// A table whose header line is where its key is (`[offer]`), not where its body starts.
    fn header_table<'a, 'i>(
        &mut self,
        parent: &Table<'a, 'i>,
        key: &str,
        allowed: &[&str],
    ) -> Option<Table<'a, 'i>> {
        let (key_span, _) = parent.entries.get(key)?.clone();
        let found = self.required(parent, key)?;
        let mut t = self.sub_table(found, allowed)?;
        t.line = self.line(key_span.start);
        Some(t)
    }

    fn tier_map(&mut self, found: (String, &Value<'_>), range: Range<i64>) -> Option<TierMap> {
        let t = self.sub_table(found, &["regular", "silver", "gold", "platinum"])?;
        let get = |w: &mut Self, k: &str| w.required(&t, k).and_then(|f| w.int(f, range.clone()));
        let regular = get(self, "regular");
        let silver = get(self, "silver");
        let gold = get(self, "gold");
        let platinum = get(self, "platinum");
        Some(TierMap {
            regular: regular?,
            silver: silver?,
            gold: gold?,
            platinum: platinum?,
        })
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

const SHARE_BPS: Range<i64> = 0..10_001;
const MULTIPLIER_BPS: Range<i64> = 10_000..100_001;
const FEN: Range<i64> = 0..10_000_000_001;
const RATE_PER_1000: Range<i64> = 0..1_000_001;

/// Parses and validates a spec. `file` is how errors name it.
pub fn parse(file: &str, src: &str) -> Result<PartnerSpec, Vec<SpecError>> {
    let mut w = Walker {
        file,
        src,
        errors: Vec::new(),
    };
    if src.len() > MAX_SPEC_BYTES {
        w.error(
            0,
            "-",
            format!("file is larger than {MAX_SPEC_BYTES} bytes"),
        );
        return Err(w.errors);
    }
    let root = match DeTable::parse(src) {
        Ok(t) => t,
        Err(e) => {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            w.error(
                offset,
                "-",
                format!("not valid TOML: {}", e.message().trim()),
            );
            return Err(w.errors);
        }
    };
    let top = w.table(
        root.get_ref(),
        "",
        1,
        &[
            "code",
            "name",
            "category",
            "capabilities",
            "effective_from",
            "contact_email",
            "offer",
            "settlement",
        ],
    );

    let code = w.required(&top, "code").and_then(|f| {
        let span = f.1.span().start;
        let key = f.0.clone();
        let s = w.string(f)?;
        PartnerCode::parse(&s)
            .map_err(|e| w.error(span, &key, e.to_string()))
            .ok()
    });
    let name = w.required(&top, "name").and_then(|f| {
        let (span, key) = (f.1.span().start, f.0.clone());
        let s = w.string(f)?;
        let chars = s.chars().count();
        if !(1..=100).contains(&chars) || s.chars().any(char::is_control) {
            w.error(
                span,
                &key,
                "must be 1 to 100 characters without control characters",
            );
            return None;
        }
        Some(s)
    });
    let category = w.required(&top, "category").and_then(|f| {
        let (span, key) = (f.1.span().start, f.0.clone());
        let s = w.string(f)?;
        if !CATEGORIES.contains(&s.as_str()) {
            w.error(
                span,
                &key,
                format!(
                    "unknown category {s:?} (expected one of: {})",
                    CATEGORIES.join(", ")
                ),
            );
            return None;
        }
        Some(s)
    });
    // `capabilities` may be left out: no capabilities.
    let capabilities = match w.optional(&top, "capabilities") {
        None => Some(Vec::new()),
        Some((key, v)) => match v.get_ref() {
            DeValue::Array(items) => {
                let mut caps = Vec::new();
                let mut ok = true;
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(s) if CAPABILITIES.contains(&s.as_ref()) => {
                            if !caps.contains(&s.to_string()) {
                                caps.push(s.to_string());
                            }
                        }
                        _ => {
                            w.error(
                                item.span().start,
                                &key,
                                format!(
                                    "unknown capability (expected one of: {})",
                                    CAPABILITIES.join(", ")
                                ),
                            );
                            ok = false;
                        }
                    }
                }
                ok.then_some(caps)
            }
            other => {
                w.error(
                    v.span().start,
                    &key,
                    format!("expected an array, found {}", other.type_str()),
                );
                None
            }
        },
    };
    let effective_from = w.required(&top, "effective_from").and_then(|(key, v)| {
        let text = match v.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Datetime(d) => d.to_string(),
            other => {
                w.error(
                    v.span().start,
                    &key,
                    format!("expected a date, found {}", other.type_str()),
                );
                return None;
            }
        };
        NaiveDate::parse_from_str(&text, "%Y-%m-%d")
            .map_err(|_| {
                w.error(
                    v.span().start,
                    &key,
                    format!("{text:?} is not a YYYY-MM-DD date"),
                )
            })
            .ok()
    });
    let contact_email = w.required(&top, "contact_email").and_then(|f| {
        let (span, key) = (f.1.span().start, f.0.clone());
        let s = w.string(f)?;
        if !looks_like_email(&s) {
            w.error(span, &key, format!("{s:?} is not an email address"));
            return None;
        }
        Some(s)
    });

    let offer = w
        .header_table(
            &top,
            "offer",
            &[
                "discount_bps",
                "discount_cap_fen",
                "min_spend_fen",
                "earn_points_per_yuan",
                "tier_multiplier_bps",
                "member_day",
                "birthday_month_multiplier_bps",
                "redeem",
            ],
        )
        .and_then(|t| parse_offer(&mut w, &t));
    let settlement = w
        .header_table(
            &top,
            "settlement",
            &[
                "issue_fee_fen_per_1000_points",
                "redeem_reimburse_fen_per_1000_points",
                "discount_subsidy_bps",
                "commission_bps",
            ],
        )
        .and_then(|t| {
            let get = |w: &mut Walker, k: &str, r: Range<i64>| {
                w.required(&t, k).and_then(|f| w.int(f, r))
            };
            let issue = get(&mut w, "issue_fee_fen_per_1000_points", RATE_PER_1000);
            let reimburse = get(
                &mut w,
                "redeem_reimburse_fen_per_1000_points",
                RATE_PER_1000,
            );
            let subsidy = get(&mut w, "discount_subsidy_bps", SHARE_BPS);
            let commission = get(&mut w, "commission_bps", SHARE_BPS);
            Some(SettlementTerms {
                issue_fee_fen_per_1000_points: issue?,
                redeem_reimburse_fen_per_1000_points: reimburse?,
                discount_subsidy_bps: subsidy?,
                commission_bps: commission?,
            })
        });

    match (
        code,
        name,
        category,
        capabilities,
        effective_from,
        contact_email,
        offer,
        settlement,
    ) {
        (
            Some(code),
            Some(name),
            Some(category),
            Some(capabilities),
            Some(effective_from),
            Some(contact_email),
            Some(offer),
            Some(settlement),
        ) if w.errors.is_empty() => Ok(PartnerSpec {
            code,
            name,
            category,
            capabilities,
            effective_from,
            contact_email,
            terms: Terms { offer, settlement },
        }),
        _ => {
            w.errors.sort_by_key(|e| e.line);
            Err(w.errors)
        }
    }
}

fn parse_offer(w: &mut Walker<'_>, t: &Table<'_, '_>) -> Option<Offer> {
    let discount_bps = w
        .required(t, "discount_bps")
        .and_then(|f| w.tier_map(f, SHARE_BPS));
    let discount_cap_fen = w
        .required(t, "discount_cap_fen")
        .and_then(|f| w.int(f, FEN));
    let min_spend_fen = w.required(t, "min_spend_fen").and_then(|f| w.int(f, FEN));
    let earn = w
        .required(t, "earn_points_per_yuan")
        .and_then(|f| w.int(f, 0..1001));
    let tier_mult = w
        .required(t, "tier_multiplier_bps")
        .and_then(|f| w.tier_map(f, MULTIPLIER_BPS));
    let member_day = match w.optional(t, "member_day") {
        None => Some(None),
        Some(f) => w
            .sub_table(f, &["day_of_month", "multiplier_bps"])
            .and_then(|md| {
                let day = w
                    .required(&md, "day_of_month")
                    .and_then(|f| w.int(f, 1..29));
                let mult = w
                    .required(&md, "multiplier_bps")
                    .and_then(|f| w.int(f, MULTIPLIER_BPS));
                Some(Some(MemberDay {
                    day_of_month: u32::try_from(day?).ok()?,
                    multiplier_bps: mult?,
                }))
            }),
    };
    let birthday = match w.optional(t, "birthday_month_multiplier_bps") {
        None => Some(BPS_ONE),
        Some(f) => w.int(f, MULTIPLIER_BPS),
    };
    let redeem = w
        .required(t, "redeem")
        .and_then(|f| {
            w.sub_table(
                f,
                &[
                    "enabled",
                    "fen_per_point",
                    "max_share_bps",
                    "requires_member_token",
                ],
            )
        })
        .and_then(|r| {
            let enabled = w.required(&r, "enabled").and_then(|f| w.boolean(f))?;
            // With redemption off the other fields may be left out, but are still checked.
            let get_int = |w: &mut Walker, k: &str, range: Range<i64>| {
                if enabled {
                    w.required(&r, k).and_then(|f| w.int(f, range))
                } else {
                    match w.optional(&r, k) {
                        Some(f) => w.int(f, range),
                        None => Some(0),
                    }
                }
            };
            let fen_per_point = get_int(
                w,
                "fen_per_point",
                if enabled { 1..1_000_001 } else { 0..1_000_001 },
            );
            let max_share = get_int(w, "max_share_bps", SHARE_BPS);
            let requires_token = if enabled {
                w.required(&r, "requires_member_token")
                    .and_then(|f| w.boolean(f))
            } else {
                match w.optional(&r, "requires_member_token") {
                    Some(f) => w.boolean(f),
                    None => Some(true),
                }
            };
            Some(Redeem {
                enabled,
                fen_per_point: if enabled { fen_per_point? } else { 0 },
                max_share_bps: if enabled { max_share? } else { 0 },
                requires_member_token: requires_token?,
            })
        });
    Some(Offer {
        discount_bps: discount_bps?,
        discount_cap_fen: discount_cap_fen?,
        min_spend_fen: min_spend_fen?,
        earn_points_per_yuan: earn?,
        tier_multiplier_bps: tier_mult?,
        member_day: member_day?,
        birthday_month_multiplier_bps: birthday?,
        redeem: redeem?,
    })
}

fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.len() <= 254
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}
