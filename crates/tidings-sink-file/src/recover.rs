//! Reading event files back, and finishing the temporary files a crash left.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use tidings_event::Timestamp;

use crate::names::{TMP_SUFFIX, compact_time};
use crate::sink::{commit, gzip_member, path_is_gzip};

/// The complete lines of a file, and whether it had nothing else.
pub(crate) struct Lines {
    pub(crate) bytes: Vec<u8>,
    pub(crate) clean: bool,
}

/// Reads the complete (newline-terminated) lines of a plain or gzip file;
/// a torn last line or a damaged gzip member makes it unclean.
pub(crate) fn read_complete_lines(path: &Path) -> io::Result<Lines> {
    let file = File::open(path)?;
    let mut bytes = Vec::new();
    let clean = if path_is_gzip(path) {
        MultiGzDecoder::new(BufReader::new(file))
            .read_to_end(&mut bytes)
            .is_ok()
    } else {
        BufReader::new(file).read_to_end(&mut bytes)?;
        true
    };
    Ok(complete(bytes, clean))
}

/// The complete lines of a file's content (`raw`, gzip or not), as
/// [`read_complete_lines`] reads a file.
#[cfg(feature = "s3")]
pub(crate) fn complete_lines_of(raw: &[u8], gzip: bool) -> Lines {
    let mut bytes = Vec::new();
    let clean = if gzip {
        MultiGzDecoder::new(raw).read_to_end(&mut bytes).is_ok()
    } else {
        bytes.extend_from_slice(raw);
        true
    };
    complete(bytes, clean)
}

/// Cuts a torn last line off `bytes` (then not clean).
fn complete(mut bytes: Vec<u8>, mut clean: bool) -> Lines {
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if end < bytes.len() {
        clean = false;
        bytes.truncate(end);
    }
    Lines { bytes, clean }
}

/// Finishes every `*.tmp` file in `dir`: a clean one is renamed as it is;
/// a damaged one is moved to `quarantine/` and its complete lines are saved
/// as a finished file of their own.
pub(crate) fn recover_orphans(dir: &Path, gzip: bool) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(done_name) = name.strip_suffix(TMP_SUFFIX) else {
            continue;
        };
        if !entry.file_type()?.is_file() {
            continue;
        }
        let tmp = entry.path();
        let done = dir.join(done_name);
        let lines = read_complete_lines(&tmp)?;
        let count = lines.bytes.iter().filter(|&&b| b == b'\n').count();
        if lines.clean {
            if count == 0 {
                fs::remove_file(&tmp)?;
            } else {
                commit(&File::open(&tmp)?, &tmp, &done)?;
            }
            tracing::info!(target: "tidings::sink::file", file = %done.display(), lines = count, "finished a file left open by a crash");
            continue;
        }
        let quarantine = dir.join("quarantine");
        fs::create_dir_all(&quarantine)?;
        let kept = quarantine.join(format!("{name}.{}", compact_time(Timestamp::now())));
        fs::rename(&tmp, &kept)?;
        if count > 0 {
            let content = if path_is_gzip(&done) {
                gzip_member(&lines.bytes)?
            } else {
                lines.bytes
            };
            let staging = dir.join(format!("{done_name}.recovering"));
            fs::write(&staging, &content)?;
            commit(&File::open(&staging)?, &staging, &done)?;
        }
        tracing::warn!(
            target: "tidings::sink::file",
            file = %kept.display(),
            lines_saved = count,
            gzip,
            "a file left by a crash was damaged; its complete lines were saved and the original quarantined"
        );
    }
    Ok(())
}
