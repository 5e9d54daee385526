//! Statement files: CSV as the contract wants it (UTF-8, optional BOM, header, CRLF, RFC 4180
//! quoting, text cells guarded against spreadsheet formulas), written to a temporary name,
//! fsynced and renamed, so no reader ever sees half a file.
use crate::pki::PkiError;
use std::io::Write;
use std::path::Path;

/// A text cell that a spreadsheet would run as a formula gets a leading `'`.
pub fn guard(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    }
}

/// Builds a CSV file in memory-bounded chunks: rows are appended as they come.
pub struct Csv {
    writer: csv::Writer<Vec<u8>>,
    pub rows: usize,
}

impl Csv {
    pub fn new(bom: bool, header: &[&str]) -> Result<Csv, PkiError> {
        let mut buf = Vec::new();
        if bom {
            buf.extend_from_slice(&[0xEF, 0xBB, 0xBF]);
        }
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(buf);
        writer
            .write_record(header)
            .map_err(|e| PkiError::Invalid(format!("csv: {e}")))?;
        Ok(Csv { writer, rows: 0 })
    }

    pub fn row(&mut self, cells: &[String]) -> Result<(), PkiError> {
        self.writer
            .write_record(cells)
            .map_err(|e| PkiError::Invalid(format!("csv: {e}")))?;
        self.rows += 1;
        Ok(())
    }

    pub fn finish(self) -> Result<Vec<u8>, PkiError> {
        self.writer
            .into_inner()
            .map_err(|e| PkiError::Invalid(format!("csv: {e}")))
    }
}

/// Writes `bytes` to `path` via a temporary file, fsync and rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    let dir = path
        .parent()
        .ok_or_else(|| PkiError::Invalid(format!("{} has no directory", path.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| PkiError::io(dir, e))?;
    // A name of its own per writer: two instances rewriting the same (identical) file at once
    // must never share a temporary file.
    let tmp = path.with_extension(format!(
        "partial.{}.{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let mut f = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| PkiError::io(&tmp, e))?;
    let written = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        // Leave nothing half-written behind; the final name was never touched.
        let _ = std::fs::remove_file(&tmp);
        return Err(PkiError::io(path, e));
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_guarded_and_rows_end_in_crlf() {
        assert_eq!(guard("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(guard("-x"), "'-x");
        assert_eq!(guard("示例餐厅"), "示例餐厅");
        let mut c = Csv::new(true, &["a", "b"]).unwrap();
        c.row(&["x,y".into(), "1.00".into()]).unwrap();
        let bytes = c.finish().unwrap();
        assert_eq!(bytes, b"\xEF\xBB\xBFa,b\r\n\"x,y\",1.00\r\n");
    }
}
