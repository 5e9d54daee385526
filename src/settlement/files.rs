//! Statement files: CSV as the contract wants it (UTF-8, optional BOM, header, CRLF, RFC 4180
//! quoting, text cells guarded against spreadsheet formulas), written to a temporary name,
//! fsynced and renamed, so no reader ever sees half a file.
use crate::pki::PkiError;
use std::io::Write;
use std::path::{Path, PathBuf};

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

/// A CSV file written straight to disk as rows come, hashed on the way, so a statement of any
/// length takes a buffer's worth of memory. It goes to a temporary name of its own and is
/// fsynced and renamed by [`CsvFile::finish`]; dropped unfinished (an error on the way), the
/// temporary file is removed and the final name never touched.
pub struct CsvFile {
    writer: Option<csv::Writer<Hashing>>,
    tmp: PathBuf,
    path: PathBuf,
    pub rows: usize,
}

/// A file writer that hashes what it writes.
struct Hashing {
    file: std::io::BufWriter<std::fs::File>,
    digest: ring::digest::Context,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl CsvFile {
    pub fn create(path: &Path, bom: bool, header: &[&str]) -> Result<CsvFile, PkiError> {
        let dir = parent(path)?;
        crate::pki::files::create_dir_all(dir)?;
        let tmp = temporary_name(path);
        let file = crate::pki::files::create_new(&tmp).map_err(|e| PkiError::io(&tmp, e))?;
        let mut out = CsvFile {
            writer: None,
            tmp,
            path: path.to_owned(),
            rows: 0,
        };
        let mut sink = Hashing {
            file: std::io::BufWriter::with_capacity(64 * 1024, file),
            digest: ring::digest::Context::new(&ring::digest::SHA256),
        };
        if bom {
            sink.write_all(&[0xEF, 0xBB, 0xBF])
                .map_err(|e| PkiError::io(&out.tmp, e))?;
        }
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(sink);
        writer
            .write_record(header)
            .map_err(|e| PkiError::Invalid(format!("csv: {e}")))?;
        out.writer = Some(writer);
        Ok(out)
    }

    pub fn row(&mut self, cells: &[String]) -> Result<(), PkiError> {
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| PkiError::Invalid("csv: file already finished".into()))?;
        writer
            .write_record(cells)
            .map_err(|e| PkiError::Invalid(format!("csv: {e}")))?;
        self.rows += 1;
        Ok(())
    }

    /// Flushes, fsyncs and renames the file into place. Returns its rows and SHA-256 (hex).
    pub fn finish(mut self) -> Result<(usize, String), PkiError> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| PkiError::Invalid("csv: file already finished".into()))?;
        let sink = writer
            .into_inner()
            .map_err(|e| PkiError::Invalid(format!("csv: {e}")))?;
        let Hashing { file, digest } = sink;
        let file = file
            .into_inner()
            .map_err(|e| PkiError::io(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| PkiError::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| PkiError::io(&self.path, e))?;
        sync_dir(parent(&self.path)?);
        // Renamed: nothing left for `drop` to remove.
        self.tmp = PathBuf::new();
        Ok((self.rows, hex::encode(digest.finish().as_ref())))
    }
}

impl Drop for CsvFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn parent(path: &Path) -> Result<&Path, PkiError> {
    path.parent()
        .ok_or_else(|| PkiError::Invalid(format!("{} has no directory", path.display())))
}

/// A name of its own per writer: two instances rewriting the same (identical) file at once
/// must never share a temporary file. `<stem>.partial.<host>.<pid>.<uuid>`: the host and pid
/// tell [`remove_stale_partials`] whether its writer is gone.
fn temporary_name(path: &Path) -> PathBuf {
    path.with_extension(format!(
        "partial.{}.{}.{}",
        host(),
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ))
}

/// This machine's name, reduced to letters, digits and `-` (it goes into file names).
fn host() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let clean: String = name
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if clean.is_empty() {
        "host".into()
    } else {
        clean
    }
}

/// A temporary file this old is abandoned whoever wrote it: a live writer streams into its
/// file continuously, and a whole run takes seconds.
const ABANDONED_PARTIAL_S: u64 = 3_600;

/// Removes temporary files that a writer left behind when it was killed (`kill -9`, a power
/// cut): those of this host whose process is gone, and any older than an hour. Final names
/// are never touched. Returns how many it removed.
pub fn remove_stale_partials(dir: &Path) -> usize {
    let me = host();
    let mut removed = 0;
    for sub in [dir.to_path_buf(), dir.join("partners")] {
        let Ok(entries) = std::fs::read_dir(&sub) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((_, tail)) = name.split_once(".partial.") else {
                continue;
            };
            let mut parts = tail.split('.');
            let (writer_host, pid) = (
                parts.next(),
                parts.next().and_then(|p| p.parse::<u32>().ok()),
            );
            let writer_gone = writer_host == Some(me.as_str())
                && pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
            let abandoned = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > ABANDONED_PARTIAL_S);
            if (writer_gone || abandoned) && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes `bytes` to `path` via a temporary file, fsync and rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    let dir = parent(path)?;
    crate::pki::files::create_dir_all(dir)?;
    let tmp = temporary_name(path);
    let mut f = crate::pki::files::create_new(&tmp).map_err(|e| PkiError::io(&tmp, e))?;
    let written = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        // Leave nothing half-written behind; the final name was never touched.
        let _ = std::fs::remove_file(&tmp);
        return Err(PkiError::io(path, e));
    }
    sync_dir(dir);
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

    #[test]
    fn a_streamed_file_has_the_same_bytes_and_hash_and_no_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv");
        let mut f = CsvFile::create(&path, true, &["a", "b"]).unwrap();
        f.row(&["x,y".into(), "1.00".into()]).unwrap();
        let (rows, sha) = f.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(rows, 1);
        assert_eq!(bytes, b"\xEF\xBB\xBFa,b\r\n\"x,y\",1.00\r\n");
        assert_eq!(sha, sha256_hex(&bytes));
        // Dropped unfinished: the temporary file goes, the final name is never created.
        let other = dir.path().join("t.csv");
        let mut f = CsvFile::create(&other, false, &["a"]).unwrap();
        f.row(&["1".into()]).unwrap();
        drop(f);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("s.csv")]);
    }
}
