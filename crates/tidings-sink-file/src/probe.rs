//! Checks of the machine that change nothing on it.

use std::io::ErrorKind;
use std::path::Path;

/// Checks that a directory can be used at `path`: it is a directory a file
/// can be created in, or it can be created (its nearest existing ancestor
/// is a directory that takes a new entry). Leaves nothing behind: the
/// probe entry is removed at once.
///
/// ```
/// let dir = std::env::temp_dir();
/// assert!(tidings_sink_file::probe_directory(&dir.join("not/yet/there")).is_ok());
/// let error = tidings_sink_file::probe_directory("/proc/nope/x".as_ref()).unwrap_err();
/// assert!(error.starts_with("cannot create directory /proc/nope/x"), "{error}");
/// ```
///
/// # Errors
///
/// A message naming the path and what the system said.
pub fn probe_directory(path: &Path) -> Result<(), String> {
    let mut existing = path;
    loop {
        match std::fs::metadata(existing) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => {
                return Err(format!(
                    "cannot create directory {}: {} is a file, not a directory",
                    path.display(),
                    existing.display()
                ));
            }
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                existing = match existing.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent,
                    _ => Path::new("."),
                };
            }
            Err(e) => {
                return Err(format!(
                    "cannot create directory {}: cannot read {}: {e}",
                    path.display(),
                    existing.display()
                ));
            }
        }
    }
    let probe = existing.join(format!(".tidings-probe-{}", std::process::id()));
    match std::fs::create_dir(&probe) {
        Ok(()) => {
            let _ = std::fs::remove_dir(&probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot create directory {}: nothing can be created in {}: {e}",
            path.display(),
            existing.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_writable_directory_passes_and_nothing_is_left() {
        let dir = std::env::temp_dir().join(format!("tidings-probe-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        probe_directory(&dir).unwrap();
        probe_directory(&dir.join("a/b")).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::write(dir.join("file"), "x").unwrap();
        let error = probe_directory(&dir.join("file/sub")).unwrap_err();
        assert!(error.contains("is a file, not a directory"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_that_cannot_be_created_is_refused() {
        let error = probe_directory(Path::new("/proc/nope/x")).unwrap_err();
        assert!(error.contains("/proc/nope/x"), "{error}");
        assert!(error.contains("nothing can be created in /proc"), "{error}");
    }
}
