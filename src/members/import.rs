//! `import-members`: `card_no,tier,status,birth_month,opening_points,phone`.
//! Good lines are imported, bad ones reported by line; re-imports update tier and status only.
use crate::db::ledger::{accounts, Ledger, Posting};
use crate::db::members::{Member, NewMember};
use crate::db::{now_utc, write_tx, DbConn, DbError};
use crate::domain::{CardNo, MemberStatus, Phone, Tier};
use crate::pki::secrets::MemberKeys;
use std::collections::HashMap;

pub const HEADER: [&str; 6] = [
    "card_no",
    "tier",
    "status",
    "birth_month",
    "opening_points",
    "phone",
];
/// Rows written per transaction: big enough to be quick, small enough not to hold the lock long.
const CHUNK_ROWS: usize = 500;
pub const MAX_OPENING_POINTS: i64 = 1_000_000_000;
/// The largest file accepted (a CRM export of a few million members fits).
pub const MAX_FILE_BYTES: usize = 512 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file as a whole cannot be used; nothing was imported.
    #[error("{0}")]
    Unusable(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for ImportError {
    fn from(e: diesel::result::Error) -> Self {
        ImportError::Db(DbError::Query(e))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub line: u64,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct ImportReport {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub rejected: Vec<Rejection>,
}

impl ImportReport {
    /// The report as CSV: a header line, then one line per rejected input line.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("line,error\n");
        for r in &self.rejected {
            out.push_str(&format!(
                "{},\"{}\"\n",
                r.line,
                r.message.replace('"', "\"\"")
            ));
        }
        out
    }
}

struct Row {
    line: u64,
    card: CardNo,
    tier: Tier,
    status: MemberStatus,
    birth_month: Option<i32>,
    opening_points: i64,
    phone: Option<Phone>,
}

/// Something to tell about progress; the CLI passes an indicatif bar.
pub trait Progress {
    fn set_total(&self, total: u64);
    fn advance(&self, n: u64);
}

impl Progress for () {
    fn set_total(&self, _: u64) {}
    fn advance(&self, _: u64) {}
}

/// The line of the file (1-based) a record starts on, counted from its byte offset. Why not
/// the csv reader's own line count: with CRLF line endings (what Excel and most CRM exports
/// write) it names the line before, and the contract's report names the file's line.
struct Lines<'a> {
    text: &'a [u8],
    /// Bytes counted so far, and the line they end on.
    at: usize,
    line: u64,
}

impl<'a> Lines<'a> {
    fn new(text: &'a [u8]) -> Self {
        Lines {
            text,
            at: 0,
            line: 1,
        }
    }

    /// The line of `position`; records come in order, so counting goes on from the last one.
    fn of(&mut self, position: Option<&csv::Position>) -> u64 {
        let Some(position) = position else {
            return 0;
        };
        let mut byte =
            usize::try_from(position.byte()).map_or(self.text.len(), |b| b.min(self.text.len()));
        // After a CR the reader ends the record, and the LF that follows is where it says the
        // next record starts: step over line ends (and blank lines) to the record's first byte.
        while self
            .text
            .get(byte)
            .is_some_and(|b| matches!(b, b'\r' | b'\n'))
        {
            byte += 1;
        }
        if byte < self.at {
            (self.at, self.line) = (0, 1);
        }
        let newlines = self.text[self.at..byte]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        self.line += newlines as u64;
        self.at = byte;
        self.line
    }
}

fn parse_row(record: &csv::StringRecord, line: u64) -> Result<Row, String> {
    if record.len() != HEADER.len() {
        return Err(format!(
            "expected {} fields, found {}",
            HEADER.len(),
            record.len()
        ));
    }
    let field = |i: usize| record.get(i).unwrap_or("").trim();
    let card = CardNo::parse(field(0)).map_err(|e| format!("card_no: {e}"))?;
    let tier = Tier::parse(field(1)).map_err(|e| format!("tier: {e}"))?;
    let status = MemberStatus::parse(field(2)).map_err(|e| format!("status: {e}"))?;
    let birth_month = match field(3) {
        "" => None,
        s => match s.parse::<i32>() {
            Ok(m) if (1..=12).contains(&m) => Some(m),
            _ => return Err(format!("birth_month: {s:?} is not a month 1 to 12")),
        },
    };
    let opening_points = match field(4) {
        "" => 0,
        s => match s.parse::<i64>() {
            Ok(p) if (0..=MAX_OPENING_POINTS).contains(&p) => p,
            _ => {
                return Err(format!(
                    "opening_points: {s:?} is not a whole number 0 to {MAX_OPENING_POINTS}"
                ))
            }
        },
    };
    let phone = match field(5) {
        "" => None,
        s => Some(Phone::parse(s).map_err(|e| format!("phone: {e}"))?),
    };
    Ok(Row {
        line,
        card,
        tier,
        status,
        birth_month,
        opening_points,
        phone,
    })
}

/// Imports `bytes` (the whole CSV file).
pub fn import(
    conn: &mut DbConn,
    keys: &MemberKeys,
    bytes: &[u8],
    progress: &dyn Progress,
) -> Result<ImportReport, ImportError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(ImportError::Unusable(format!(
            "the file is larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ImportError::Unusable(format!("the file is not UTF-8 (byte {})", e.valid_up_to()))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| ImportError::Unusable(format!("line 1: cannot read the header: {e}")))?
        .clone();
    let header: Vec<&str> = header.iter().map(str::trim).collect();
    if header != HEADER {
        return Err(ImportError::Unusable(format!(
            "line 1: the header must be exactly {}",
            HEADER.join(",")
        )));
    }

    let mut report = ImportReport::default();
    let mut rows = Vec::new();
    let mut seen_cards: HashMap<String, u64> = HashMap::new();
    let mut seen_phones: HashMap<String, u64> = HashMap::new();
    let mut lines = Lines::new(text.as_bytes());
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = lines.of(e.position());
                report.rejected.push(Rejection {
                    line,
                    message: format!("unreadable CSV: {e}"),
                });
                continue;
            }
        };
        let line = lines.of(record.position());
        match parse_row(&record, line) {
            Ok(row) => {
                if let Some(first) = seen_cards.get(row.card.as_str()) {
                    report.rejected.push(Rejection {
                        line,
                        message: format!("card_no: duplicate of line {first}"),
                    });
                    continue;
                }
                let phone_hash = row.phone.as_ref().map(|p| keys.phone_hash(p));
                if let Some(h) = &phone_hash {
                    if let Some(first) = seen_phones.get(h) {
                        report.rejected.push(Rejection {
                            line,
                            message: format!("phone: same phone as line {first}"),
                        });
                        continue;
                    }
                    seen_phones.insert(h.clone(), line);
                }
                seen_cards.insert(row.card.as_str().to_owned(), line);
                rows.push((row, phone_hash));
            }
            Err(message) => report.rejected.push(Rejection { line, message }),
        }
    }
    if rows.is_empty() && report.rejected.is_empty() {
        return Err(ImportError::Unusable("the file has no data rows".into()));
    }

    progress.set_total(rows.len() as u64);
    for chunk in rows.chunks(CHUNK_ROWS) {
        write_tx(conn, |conn| -> Result<(), ImportError> {
            for (row, phone_hash) in chunk {
                apply_row(conn, keys, row, phone_hash.as_deref(), &mut report)?;
            }
            Ok(())
        })?;
        progress.advance(chunk.len() as u64);
    }
    report.rejected.sort_by_key(|r| r.line);
    write_tx(conn, |conn| {
        crate::audit::record_admin(
            conn,
            "members.import",
            "members",
            serde_json::json!({
                "created": report.created,
                "updated": report.updated,
                "unchanged": report.unchanged,
                "rejected": report.rejected.len(),
            }),
        )
    })?;
    Ok(report)
}

fn apply_row(
    conn: &mut DbConn,
    keys: &MemberKeys,
    row: &Row,
    phone_hash: Option<&str>,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    let now = now_utc();
    let phone_owner = match phone_hash {
        Some(h) => Member::find_by_phone_hash(conn, h)?,
        None => None,
    };
    match Member::find_by_card(conn, row.card.as_str())? {
        Some(existing) => {
            if existing.tier == row.tier.as_str() && existing.status == row.status.as_str() {
                report.unchanged += 1;
            } else {
                Member::update_tier_status(
                    conn,
                    existing.id,
                    row.tier.as_str(),
                    row.status.as_str(),
                    now,
                )?;
                report.updated += 1;
            }
        }
        None => {
            if phone_owner.is_some() {
                report.rejected.push(Rejection {
                    line: row.line,
                    message: "phone: already belongs to another member".into(),
                });
                return Ok(());
            }
            let id = Member::insert(
                conn,
                &NewMember {
                    card_no: row.card.as_str(),
                    tier: row.tier.as_str(),
                    status: row.status.as_str(),
                    birth_month: row.birth_month,
                    phone_hash,
                    phone_key_version: phone_hash.map(|_| keys.phone.version),
                    created_at: now,
                    updated_at: now,
                },
            )?;
            if row.opening_points > 0 {
                Ledger::post(
                    conn,
                    "opening",
                    &format!("member:{id}"),
                    &[
                        Posting {
                            account: accounts::MEMBER,
                            member_id: Some(id),
                            amount_points: row.opening_points,
                        },
                        Posting {
                            account: accounts::OPENING_BALANCES,
                            member_id: None,
                            amount_points: -row.opening_points,
                        },
                    ],
                    now,
                )?;
            }
            report.created += 1;
        }
    }
    Ok(())
}
