//! File modes of the store: the database holds the signing key, the session-token key and role
//! secrets, so its directory is 0700 and its files 0600.
//!
//! [`prepare`] runs before SQLite opens the file: it creates a missing directory 0700 and a
//! missing database file 0600 (SQLite gives the `-wal` and `-shm` files it creates the mode of
//! the database file). [`tighten`] runs after: any of the three files readable by group or
//! others is set to 0600, and the directory to 0700 when the same user owns it and it is not a
//! shared sticky directory such as `/tmp`, each with a log line.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates the directory (0700) and the database file (0600) when missing.
pub(crate) fn prepare(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        if !dir.exists() {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
    }
    if !path.exists() {
        fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).or_else(|error| {
            if error.kind() == std::io::ErrorKind::AlreadyExists {
                Ok(fs::File::open(path)?)
            } else {
                Err(error)
            }
        })?;
    }
    Ok(())
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Tightens the files and the directory, logging each change.
pub(crate) fn tighten(path: &Path) -> std::io::Result<()> {
    let owner = fs::metadata(path)?.uid();
    for file in [path.to_owned(), sidecar(path, "-wal"), sidecar(path, "-shm")] {
        let Ok(meta) = fs::metadata(&file) else { continue };
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            fs::set_permissions(&file, fs::Permissions::from_mode(0o600))?;
            tracing::warn!(file = %file.display(), from = format!("{mode:04o}"), "tightened the store file's mode to 0600");
        }
    }
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        let meta = fs::metadata(dir)?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 && mode & 0o1000 == 0 && meta.uid() == owner {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
            tracing::warn!(dir = %dir.display(), from = format!("{mode:04o}"), "tightened the store directory's mode to 0700");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn new_stores_are_private_and_old_ones_are_tightened() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("imds");
        let db = dir.join("imds.db");
        let store = crate::SqliteStore::open(&db, crate::SqliteOptions::default()).unwrap();
        drop(store);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&db), 0o600);

        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();
        let store = crate::SqliteStore::open(&db, crate::SqliteOptions::default()).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&db), 0o600);
        for suffix in ["-wal", "-shm"] {
            let file = sidecar(&db, suffix);
            if file.exists() {
                assert_eq!(mode(&file), 0o600, "{}", file.display());
            }
        }
        drop(store);
    }

    #[test]
    fn a_shared_sticky_directory_is_left_alone() {
        let base = tempfile::tempdir().unwrap();
        fs::set_permissions(base.path(), fs::Permissions::from_mode(0o1777)).unwrap();
        let db = base.path().join("imds.db");
        drop(crate::SqliteStore::open(&db, crate::SqliteOptions::default()).unwrap());
        assert_eq!(mode(base.path()), 0o1777);
        assert_eq!(mode(&db), 0o600);
    }
}
