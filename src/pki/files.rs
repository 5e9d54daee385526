//! Writing key material: secrets are created mode 0600 and never world-readable, even briefly.
use super::PkiError;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

fn write_with_mode(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| PkiError::io(dir, e))?;
    }
    // Write to a temporary name and rename, so a reader never sees half a key.
    let tmp = path.with_extension("tmp-write");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| PkiError::io(&tmp, e))?;
    f.write_all(contents).map_err(|e| PkiError::io(&tmp, e))?;
    f.sync_all().map_err(|e| PkiError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| PkiError::io(path, e))?;
    Ok(())
}

/// A private key or secret: owner read/write only.
pub fn write_secret(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    write_with_mode(path, contents, 0o600)
}

/// A certificate, public key or bundle description.
pub fn write_public(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    write_with_mode(path, contents, 0o644)
}

pub fn read_to_string(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|e| PkiError::io(path, e))
}
