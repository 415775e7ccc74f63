//! Replacing the credentials file so that a reader sees the old file or the new one, never a
//! partial one: temporary file in the same directory, write, fsync, chmod, rename, fsync the
//! directory. The temporary file is removed on every error path (`NamedTempFile` deletes itself
//! when dropped before being persisted).
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// A step of the replacement that failed, with the path involved.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(
        "{} has no parent directory; give --out a file path such as /var/run/secrets/hadoop/token",
        .0.display()
    )]
    NoParent(PathBuf),
    #[error(
        "cannot {step} in {}; check the volume is mounted and writable by this user",
        dir.display()
    )]
    Io {
        step: &'static str,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Atomically replace `path` with `bytes`, readable with `mode` (e.g. `0o440`).
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        Some(_) => Path::new("."),
        None => return Err(WriteError::NoParent(path.to_owned())),
    };
    let io = |step| {
        let dir = dir.to_owned();
        move |source| WriteError::Io { step, dir, source }
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".k2h-token-")
        .tempfile_in(dir)
        .map_err(io("create a temporary file"))?;
    tmp.write_all(bytes)
        .map_err(io("write the temporary file"))?;
    tmp.as_file()
        .sync_all()
        .map_err(io("fsync the temporary file"))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io("chmod the temporary file"))?;
    // On failure the error owns the temporary file and deletes it when dropped.
    tmp.persist(path)
        .map_err(|e| io("rename the temporary file over the target")(e.error))?;
    // The rename is durable only once the directory entry is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync the directory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_with_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        write(&path, b"one", 0o440).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o440);
        // A read-only target is replaced by rename, not rewritten in place.
        write(&path, b"two", 0o440).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(entries(dir.path()), ["token"]);
    }

    #[test]
    fn failed_rename_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // Renaming a file over a non-empty directory fails.
        let target = dir.path().join("token");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("keep"), b"x").unwrap();
        let e = write(&target, b"data", 0o440).unwrap_err();
        assert!(e.to_string().contains("rename"), "{e}");
        assert_eq!(entries(dir.path()), ["token"]);
    }

    #[test]
    fn missing_directory_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let e = write(&dir.path().join("nope/token"), b"x", 0o440).unwrap_err();
        assert!(e.to_string().contains("create a temporary file"), "{e}");
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
