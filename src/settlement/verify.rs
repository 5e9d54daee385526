//! `alliance-gateway verify-statement DIR`: checks a settled day's directory offline: every
//! manifest's signature (against the gateway's published keys), every file's SHA-256 and row
//! count, the totals against the summary's rows, and (given a database) each partner's chain
//! head against its hash chain.
use crate::domain::Fen;
use crate::pki::keys::{Alg, PublicKey};
use base64::Engine;
use serde_json::Value;
use std::path::Path;

/// Finds the key `kid` in a JWKS (`{"keys":[…]}`, or a bundle's `partner.json`).
fn key_of(jwks: &Value, kid: &str) -> Option<PublicKey> {
    let keys = jwks["keys"]
        .as_array()
        .or_else(|| jwks["gateway_keys"]["keys"].as_array())?;
    let jwk = keys.iter().find(|k| k["kid"] == kid)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwk["x"].as_str()?)
        .ok()?;
    PublicKey::new(Alg::Ed25519, raw).ok()
}

/// Verifies one manifest file's signature; returns the manifest.
fn signed(path: &Path, jwks: &Value) -> Result<Value, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut manifest: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let sig = manifest
        .as_object_mut()
        .and_then(|m| m.remove("signature"))
        .ok_or_else(|| format!("{}: no signature", path.display()))?;
    let kid = sig["keyid"].as_str().unwrap_or_default();
    let key =
        key_of(jwks, kid).ok_or_else(|| format!("{}: unknown key {kid:?}", path.display()))?;
    let value = base64::engine::general_purpose::STANDARD
        .decode(sig["value"].as_str().unwrap_or_default())
        .map_err(|_| format!("{}: the signature is not base64", path.display()))?;
    let canonical = serde_json_canonicalizer::to_vec(&manifest).map_err(|e| e.to_string())?;
    if sig["alg"] != "ed25519" || !key.verify(&canonical, &value) {
        return Err(format!("{}: the signature does not verify", path.display()));
    }
    Ok(manifest)
}

/// Checks the files a manifest lists: SHA-256 and data rows.
fn files_of(dir: &Path, manifest: &Value) -> Result<usize, String> {
    let files = manifest["files"]
        .as_array()
        .ok_or("the manifest lists no files")?;
    for f in files {
        let name = f["name"].as_str().unwrap_or_default();
        if name.contains("..") || name.starts_with('/') {
            return Err(format!("{name}: not a name inside the run directory"));
        }
        let bytes = std::fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"))?;
        if f["sha256"].as_str() != Some(super::files::sha256_hex(&bytes).as_str()) {
            return Err(format!("{name}: SHA-256 does not match the manifest"));
        }
        let body = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(&bytes);
        let rows = csv::Reader::from_reader(body).records().count();
        if f["rows"].as_u64() != Some(rows as u64) {
            return Err(format!(
                "{name}: {rows} rows, the manifest says {}",
                f["rows"]
            ));
        }
    }
    Ok(files.len())
}

fn yuan_to_fen(s: &str) -> Option<i64> {
    let neg = s.starts_with('-');
    let v = crate::reconciliation::parse_yuan(s.trim_start_matches('-'))?;
    Some(if neg { -v } else { v })
}

/// Sums summary.csv's columns and compares them with the manifest's totals.
fn totals(dir: &Path, manifest: &Value) -> Result<(), String> {
    let bytes = std::fs::read(dir.join("summary.csv")).map_err(|e| format!("summary.csv: {e}"))?;
    let body = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(&bytes);
    let mut reader = csv::Reader::from_reader(body);
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let ints = ["sales", "reversals", "redeem_points", "points_earned"];
    let yuans = [
        "gross_yuan",
        "discount_yuan",
        "discount_subsidy_yuan",
        "redeem_reimbursement_yuan",
        "issue_fee_yuan",
        "commission_yuan",
        "net_yuan",
    ];
    let mut sums = std::collections::BTreeMap::<&str, i64>::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        for (i, h) in headers.iter().enumerate() {
            let cell = record.get(i).unwrap_or_default();
            if let Some(k) = ints.iter().find(|k| **k == h) {
                *sums.entry(k).or_default() += cell
                    .parse::<i64>()
                    .map_err(|_| format!("summary.csv: {h} {cell:?}"))?;
            } else if let Some(k) = yuans.iter().find(|k| **k == h) {
                *sums.entry(k).or_default() +=
                    yuan_to_fen(cell).ok_or_else(|| format!("summary.csv: {h} {cell:?}"))?;
            }
        }
    }
    let t = &manifest["totals"];
    for k in ints {
        if t[k].as_i64() != Some(sums.get(k).copied().unwrap_or(0)) {
            return Err(format!("totals.{k} does not tie with summary.csv"));
        }
    }
    for k in yuans {
        if t[k].as_str()
            != Some(
                Fen::new(sums.get(k).copied().unwrap_or(0))
                    .to_yuan_string()
                    .as_str(),
            )
        {
            return Err(format!("totals.{k} does not tie with summary.csv"));
        }
    }
    Ok(())
}

/// What a successful check covered.
pub struct Verified {
    pub files: usize,
    pub partners: usize,
    pub chains_checked: bool,
}

/// Checks `dir` (a `statements/<date>/v<N>` directory). `jwks` holds the gateway's keys;
/// `conn`, when given, lets each partner's chain head be checked against its chain.
pub fn verify_dir(
    dir: &Path,
    jwks: &Value,
    conn: Option<&mut crate::db::DbConn>,
) -> Result<Verified, String> {
    let manifest = signed(&dir.join("manifest.json"), jwks)?;
    let files = files_of(dir, &manifest)?;
    totals(dir, &manifest)?;
    let partners = manifest["partners"].as_array().cloned().unwrap_or_default();
    for p in &partners {
        let code = p["partner_code"].as_str().unwrap_or_default();
        if crate::domain::PartnerCode::parse(code).is_err() {
            return Err(format!("partner code {code:?} is not valid"));
        }
        let pm = signed(&dir.join(format!("partners/{code}.manifest.json")), jwks)?;
        files_of(dir, &pm)?;
        if pm["chain_head"] != p["chain_head"] || pm["files"][0]["sha256"] != p["statement_sha256"]
        {
            return Err(format!(
                "partners/{code}.manifest.json disagrees with manifest.json"
            ));
        }
    }
    let chains_checked = conn.is_some();
    if let Some(conn) = conn {
        for p in &partners {
            let code = p["partner_code"].as_str().unwrap_or_default();
            let head = p["chain_head"].as_str().unwrap_or_default();
            match crate::transactions::chain::verify(conn, code).map_err(|e| e.to_string())? {
                crate::transactions::chain::ChainCheck::Broken { seq, reason } => {
                    return Err(format!(
                        "partner {code}: chain broken at seq {seq}: {reason}"
                    ))
                }
                crate::transactions::chain::ChainCheck::Intact { .. } => {}
            }
            let known = head == crate::db::partner_chains::GENESIS
                || crate::db::transactions::Transaction::chain_of(conn, code)
                    .map_err(|e| e.to_string())?
                    .iter()
                    .any(|t| t.line_hash.as_deref() == Some(head))
                || crate::db::reversals::Reversal::chain_of(conn, code)
                    .map_err(|e| e.to_string())?
                    .iter()
                    .any(|r| r.line_hash.as_deref() == Some(head));
            if !known {
                return Err(format!(
                    "partner {code}: chain head {head} is not in its chain"
                ));
            }
        }
    }
    Ok(Verified {
        files,
        partners: partners.len(),
        chains_checked,
    })
}
