//! Compaction: merging the small files of each period into one, without
//! losing or duplicating a line, even if it is interrupted.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::names::{TMP_SUFFIX, is_finished, period_of};
use crate::recover::read_complete_lines;
use crate::sink::{commit, gzip_member, sync_dir};

const JOURNAL_SUFFIX: &str = ".journal";

/// The span of time whose files are merged into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// One file per UTC hour.
    Hour,
    /// One file per UTC day.
    Day,
}

impl Period {
    fn key_len(self) -> usize {
        match self {
            Self::Hour => 11,
            Self::Day => 8,
        }
    }

    /// The start time of period `key`, as file names write it.
    fn start(self, key: &str) -> String {
        match self {
            Self::Hour => format!("{key}0000.000000Z"),
            Self::Day => format!("{key}T000000.000000Z"),
        }
    }
}

/// An unknown period name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown period {0:?}, expected \"hour\" or \"day\"")]
pub struct PeriodError(String);

impl FromStr for Period {
    type Err = PeriodError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hour" => Ok(Self::Hour),
            "day" => Ok(Self::Day),
            other => Err(PeriodError(other.to_owned())),
        }
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactReport {
    /// Files written, one per period that had more than one file.
    pub outputs: Vec<PathBuf>,
    /// Input files merged (and removed).
    pub merged_files: usize,
    /// Lines written.
    pub lines: usize,
    /// Files skipped because they are damaged (left untouched).
    pub skipped: Vec<PathBuf>,
    /// Finished files found (candidates for merging).
    pub finished_files: usize,
    /// Periods that had finished files.
    pub periods: usize,
    /// Periods with a single finished file: nothing to merge there.
    pub periods_alone: usize,
    /// Files still being written (`*.tmp`), left alone.
    pub in_progress: usize,
}

impl std::fmt::Display for CompactReport {
    /// The summary `tidings compact` prints: what was merged, and when
    /// nothing was, why.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        write!(
            f,
            "merged {} into {} ({})",
            count(self.merged_files, "file"),
            self.outputs.len(),
            count(self.lines, "line")
        )?;
        if self.merged_files == 0 {
            if self.finished_files == 0 {
                f.write_str(": no finished event files here")?;
            } else if self.periods_alone == self.periods {
                write!(
                    f,
                    ": {} in {}, one each; a period needs two or more to merge",
                    count(self.finished_files, "finished file"),
                    count(self.periods, "period")
                )?;
            }
        }
        if self.in_progress > 0 {
            write!(
                f,
                "; {} still being written left alone",
                count(self.in_progress, "file")
            )?;
        }
        if !self.skipped.is_empty() {
            write!(f, "; damaged files left untouched: {:?}", self.skipped)?;
        }
        Ok(())
    }
}

/// Merges the finished files of `dir` into one gzip file per `period`.
///
/// Each merge writes its output under a temporary name, then a journal naming
/// the output and its inputs, then renames the output and removes the inputs.
/// A run interrupted at any point is completed by the next one, so no line is
/// lost or duplicated. Files still being written (`*.tmp`) are never touched,
/// so compaction can run beside a writing sink.
///
/// # Errors
///
/// Any I/O error; the directory stays consistent.
pub fn compact(dir: impl AsRef<Path>, period: Period) -> io::Result<CompactReport> {
    let dir = dir.as_ref();
    finish_journals(dir)?;
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    let (groups, mut report) = plan(names, period);
    for (key, names) in groups {
        merge(dir, period, &key, &names, &mut report)?;
    }
    Ok(report)
}

/// The periods with two or more finished files among `names` (each
/// period's names sorted), and a report counting what was found.
pub(crate) fn plan(
    names: impl IntoIterator<Item = String>,
    period: Period,
) -> (BTreeMap<String, Vec<String>>, CompactReport) {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut in_progress = 0;
    for name in names {
        if is_finished(&name)
            && let Some(key) = period_of(&name, period.key_len())
        {
            groups.entry(key.to_owned()).or_default().push(name);
        } else if name.ends_with(TMP_SUFFIX) {
            in_progress += 1;
        }
    }
    let report = CompactReport {
        finished_files: groups.values().map(Vec::len).sum(),
        periods: groups.len(),
        periods_alone: groups.values().filter(|names| names.len() == 1).count(),
        in_progress,
        ..CompactReport::default()
    };
    groups.retain(|_, names| names.len() >= 2);
    groups.values_mut().for_each(|names| names.sort());
    (groups, report)
}

/// The merged file's name for `key`: one that `taken` says is free.
pub(crate) fn output_name(period: Period, key: &str, taken: impl Fn(&str) -> bool) -> String {
    (0..)
        .map(|n| {
            format!(
                "events-{}-{}-c{n:04}.jsonl.gz",
                period.start(key),
                std::process::id()
            )
        })
        .find(|name| !taken(name))
        .unwrap_or_default()
}

/// A merge's journal: the output's name, then each input's, one per line.
pub(crate) fn journal_text(output: &str, inputs: &[String]) -> String {
    let mut text = format!("{output}\n");
    for input in inputs {
        text.push_str(input);
        text.push('\n');
    }
    text
}

/// The journal of period `key`'s merge.
pub(crate) fn journal_name(key: &str) -> String {
    format!("compact-{key}{JOURNAL_SUFFIX}")
}

/// Whether `name` is a merge's journal.
pub(crate) fn is_journal(name: &str) -> bool {
    name.ends_with(JOURNAL_SUFFIX)
}

fn merge(
    dir: &Path,
    period: Period,
    key: &str,
    names: &[String],
    report: &mut CompactReport,
) -> io::Result<()> {
    let mut content = Vec::new();
    let mut inputs = Vec::new();
    for name in names {
        let path = dir.join(name);
        let lines = read_complete_lines(&path)?;
        if lines.clean {
            content.extend_from_slice(&lines.bytes);
            inputs.push(name.clone());
        } else {
            report.skipped.push(path);
        }
    }
    if inputs.len() < 2 {
        return Ok(());
    }
    let output = output_name(period, key, |name| {
        dir.join(name).exists() || inputs.iter().any(|i| i == name)
    });
    let done = dir.join(&output);
    let tmp = dir.join(format!("{output}{TMP_SUFFIX}"));
    let mut file = File::create(&tmp)?;
    file.write_all(&gzip_member(&content)?)?;
    file.sync_all()?;
    let journal = dir.join(journal_name(key));
    let mut journal_file = File::create(&journal)?;
    journal_file.write_all(journal_text(&output, &inputs).as_bytes())?;
    journal_file.sync_all()?;
    sync_dir(dir)?;
    commit(&file, &tmp, &done)?;
    for input in &inputs {
        fs::remove_file(dir.join(input))?;
    }
    sync_dir(dir)?;
    fs::remove_file(&journal)?;
    report.lines += content.iter().filter(|&&b| b == b'\n').count();
    report.merged_files += inputs.len();
    report.outputs.push(done);
    Ok(())
}

/// Completes or rolls back merges a previous run left half done.
fn finish_journals(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if !is_journal(&path.to_string_lossy()) {
            continue;
        }
        let text = fs::read_to_string(&path)?;
        let mut lines = text.lines();
        let Some(output) = lines.next() else {
            fs::remove_file(&path)?;
            continue;
        };
        if dir.join(output).exists() {
            // The output is complete: its inputs must go.
            for input in lines {
                match fs::remove_file(dir.join(input)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        } else {
            // The output never became visible: the inputs stay.
            let _ = fs::remove_file(dir.join(format!("{output}{TMP_SUFFIX}")));
        }
        sync_dir(dir)?;
        fs::remove_file(&path)?;
    }
    Ok(())
}
