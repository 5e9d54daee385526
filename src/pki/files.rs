//! Files under `ALLIANCE_HOME`: everything the gateway writes there (keys, certificates,
//! bundles, statements, the SQLite database) is the service's own, created mode 0600 in
//! directories of mode 0700 whatever the umask, and never readable by others, even briefly.
use super::PkiError;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of every file the gateway creates under `ALLIANCE_HOME`.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory the gateway creates under `ALLIANCE_HOME`.
pub const DIR_MODE: u32 = 0o700;

/// Makes an existing directory of the alliance's private (0700): `init` does it for the
/// directories it owns, which a checkout may have made 0755 (`certs/` and `data/` carry a
/// committed README).
pub fn make_private_dir(dir: &Path) -> Result<(), PkiError> {
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)).map_err(|e| PkiError::io(dir, e))
}

/// Files the repository itself puts in `certs/` and `data/`: public notes, not the alliance's.
const REPOSITORY_NOTES: [&str; 2] = ["README.md", ".gitignore"];

/// Creates `dir` and its missing parents with mode 0700. (The umask can only take bits away,
/// so a directory is never created looser; existing ones are left as they are, and `serve`
/// warns about loose ones, see [`loose_modes`].)
pub fn create_dir_all(dir: &Path) -> Result<(), PkiError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| PkiError::io(dir, e))
}

/// Opens a new file (it must not exist) for writing, with mode 0600.
pub fn create_new(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Writes `contents` to `path` (mode 0600) through a temporary name, fsync and rename, so a
/// reader never sees half a file.
pub fn write(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    if let Some(dir) = path.parent() {
        create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp-write");
    let _ = fs::remove_file(&tmp);
    let mut f = create_new(&tmp).map_err(|e| PkiError::io(&tmp, e))?;
    f.write_all(contents).map_err(|e| PkiError::io(&tmp, e))?;
    f.sync_all().map_err(|e| PkiError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| PkiError::io(path, e))?;
    Ok(())
}

/// A private key or secret.
pub fn write_secret(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    write(path, contents)
}

/// A certificate, public key or bundle description: not secret, but the service's own all
/// the same (a bundle is handed to its partner whole).
pub fn write_public(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    write(path, contents)
}

pub fn read_to_string(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|e| PkiError::io(path, e))
}

/// Entries looked at per call of [`loose_modes`]: a statements directory grows by a few files a
/// day, and the check must stay quick at start-up.
pub const MAX_ENTRIES_CHECKED: usize = 100_000;

/// Files and directories under `roots` that others may read, write or enter (group or other
/// bits set): what `serve` warns about at start-up. Symbolic links are not followed. At most
/// [`MAX_ENTRIES_CHECKED`] entries are looked at.
pub fn loose_modes(roots: &[PathBuf]) -> Vec<(PathBuf, u32)> {
    let mut loose = Vec::new();
    let mut stack: Vec<PathBuf> = roots.to_vec();
    let mut seen = std::collections::HashSet::new();
    let mut checked = 0usize;
    while let Some(path) = stack.pop() {
        if checked >= MAX_ENTRIES_CHECKED {
            break;
        }
        checked += 1;
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let note = meta.is_file()
            && path
                .file_name()
                .is_some_and(|n| REPOSITORY_NOTES.iter().any(|r| n == *r));
        if meta.file_type().is_symlink() || note || !seen.insert(path.clone()) {
            continue;
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            loose.push((path.clone(), mode));
        }
        if meta.is_dir() {
            if let Ok(entries) = fs::read_dir(&path) {
                stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
        }
    }
    loose.sort();
    loose
}

/// Lines of warning about loose modes, at most; the rest are counted.
const MAX_LOOSE_MODE_WARNINGS: usize = 20;

/// Warns about the alliance's files and directories that others may read, write or enter
/// (`pki::files::loose_modes`): the gateway creates its own 0600 and 0700, but a copy, an
/// older version or a hand-made file may be looser.
pub fn warn_about_loose_modes(settings: &crate::config::Settings) {
    let mut roots = vec![
        settings.certs_dir(),
        settings.bundles_dir(),
        settings.statements_dir(),
        settings.data_dir(),
    ];
    if let Some(db) = settings.database.sqlite_file() {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = db.to_path_buf().into_os_string();
            name.push(suffix);
            roots.push(name.into());
        }
    }
    let loose = loose_modes(&roots);
    for (path, mode) in loose.iter().take(MAX_LOOSE_MODE_WARNINGS) {
        tracing::warn!(
            file.path = %path.display(),
            file.mode = format!("{mode:o}"),
            "others may read or write this file of the alliance; run chmod go-rwx on it"
        );
    }
    if loose.len() > MAX_LOOSE_MODE_WARNINGS {
        tracing::warn!(
            files.loose = loose.len(),
            "more files of the alliance are open to others than listed; chmod -R go-rwx the alliance's directories"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_is_private_whatever_the_umask_and_loose_modes_are_found() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("a/b");
        create_dir_all(&dir).unwrap();
        write(&dir.join("f"), b"x").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&home.path().join("a")), DIR_MODE);
        assert_eq!(mode(&dir), DIR_MODE);
        assert_eq!(mode(&dir.join("f")), FILE_MODE);
        let roots = [home.path().join("a")];
        assert!(loose_modes(&roots).is_empty());
        fs::set_permissions(dir.join("f"), fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(loose_modes(&roots), vec![(dir.join("f"), 0o644)]);
    }
}
