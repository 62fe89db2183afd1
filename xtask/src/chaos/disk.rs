//! The faults of a full disk: `disk-full` (the file sink's) and
//! `wal-disk-full` (durable mode's write-ahead log's), each on a small file
//! system mounted for it (which needs root), filled, then freed.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::trial::{
    End, Plan, Run, Sink, Stored, Trial, collector_log_hint, paced, postgres_backend, strip_ansi,
    time_until_grows,
};
use super::{Context, FAST_RETRY, Fault, Row};
use crate::harness::{Collector, PgTable, ack_keys};

/// A fault on a small file system it mounts: skipped (an informational
/// row) when none can be mounted.
pub(super) struct OnSmallDisk<T> {
    name: &'static str,
    /// Where the file system is mounted, under the work directory.
    dir: &'static str,
    /// The row's description when skipped.
    skipped: &'static str,
    set_up: fn(&Context, SmallDisk) -> Result<T, String>,
}

impl<T: Trial> Fault for OnSmallDisk<T> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn run(&self, context: &Context) -> Result<Row, String> {
        match SmallDisk::mount(&context.work, self.dir) {
            Ok(disk) => (self.set_up)(context, disk)?.run(context),
            Err(skipped) => Ok(skipped.row(self.skipped)),
        }
    }
}

/// The file sink's disk full, then freed.
pub(super) const DISK_FULL: OnSmallDisk<DiskFullTrial> = OnSmallDisk {
    name: "disk-full",
    dir: "disk",
    skipped: "file sink, disk full (skipped)",
    set_up: |_, disk| {
        Ok(DiskFullTrial {
            files: EventFiles {
                dir: disk.dir.join("events"),
            },
            ballast: disk.dir.join("ballast"),
            disk,
            waiting: 0,
            error_line: None,
            recovered: None,
        })
    },
};

pub(super) struct DiskFullTrial {
    disk: SmallDisk,
    /// The file sink's directory, on the small disk.
    files: EventFiles,
    /// The file that fills the disk.
    ballast: PathBuf,
    /// Events waiting while the disk was full.
    waiting: u64,
    /// The warning logged about the full disk.
    error_line: Option<String>,
    /// How long after freeing space writing resumed.
    recovered: Option<Duration>,
}

impl Trial for DiskFullTrial {
    fn plan(&self) -> Plan {
        Plan::new(
            "disk-full",
            format!(
                "file sink on a full disk ({}), freed after 4 s",
                self.disk.kind
            ),
            format!(
                "[backends.files]\ntype = \"file\"\npath = \"{}\"\nroll_events = 500\nroll_seconds = 2\nmax_events = 100\nflush_interval_ms = 100\n{FAST_RETRY}\n",
                self.files.dir.display()
            ),
            paced("chaos.disk_full", 200.0, 2),
        )
    }

    fn sink(&self) -> &dyn Sink {
        &self.files
    }

    fn before_load(&mut self, _run: &mut Run<'_>) -> Result<(), String> {
        let filled = fill(&self.ballast)?;
        println!(
            "{}: filled with {} KiB of ballast",
            self.disk.kind,
            filled / 1024
        );
        Ok(())
    }

    fn disturb(&mut self, run: &mut Run<'_>) -> Result<(), String> {
        let collector = run.collector()?;
        let stage = "backends.files";
        std::thread::sleep(Duration::from_secs(4));
        let full = collector.metrics()?;
        self.waiting = full.waiting(stage);
        let log = std::fs::read_to_string(&collector.log).unwrap_or_default();
        self.error_line = log
            .lines()
            .find(|l| l.contains("No space left on device") && l.contains("WARN"))
            .map(str::to_owned);
        let delivered = "tidings_backend_delivered_total";
        let labels = [("backend", stage)];
        self.recovered = free(
            &self.ballast,
            collector,
            delivered,
            &labels,
            full.get(delivered, &labels),
        )?;
        Ok(())
    }

    fn check(&mut self, row: &mut Row, end: &End<'_>) -> Result<(), String> {
        row.notes
            .push(format!("{} events waiting while full", self.waiting));
        match &self.error_line {
            Some(line) => {
                let line = strip_ansi(line);
                let at = line.find("error=").unwrap_or(0);
                row.notes
                    .push(format!("logged (a warning, once): `{}`", &line[at..]));
            }
            None => row.failures.push(format!(
                "no \"No space left on device\" warning in the log {}",
                collector_log_hint(&end.log())
            )),
        }
        recovery(row, self.recovered, "writing", "writing");
        Ok(())
    }
}

/// The file sink's directory: its `.jsonl` files, one event a line.
struct EventFiles {
    dir: PathBuf,
}

/// The ids of its lines (a line stored twice is a duplicate); a torn or
/// unparsable line, or a file left unfinished, is damage.
impl Sink for EventFiles {
    fn stored(&self) -> Result<Stored, String> {
        let mut lines = 0_u64;
        let mut corrupt = 0_u64;
        let mut leftovers = Vec::new();
        let mut ids = HashSet::new();
        for entry in
            std::fs::read_dir(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?
        {
            let path = entry.map_err(|e| e.to_string())?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_owned();
            if !name.ends_with(".jsonl") {
                leftovers.push(name);
            }
            let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            if !text.is_empty() && !text.ends_with(b"\n") {
                corrupt += 1; // a torn last line
            }
            for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                lines += 1;
                match serde_json::from_slice::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("id")?.as_str().map(str::to_owned))
                {
                    Some(id) => {
                        ids.insert(id);
                    }
                    None => corrupt += 1,
                }
            }
        }
        let mut damage = Vec::new();
        if corrupt > 0 {
            damage.push(format!("{corrupt} corrupt lines or torn files"));
        }
        if !leftovers.is_empty() {
            damage.push(format!("unfinished files after the drain: {leftovers:?}"));
        }
        Ok(Stored {
            duplicates: lines - ids.len() as u64,
            ids,
            damage,
        })
    }
}

/// Durable mode's write-ahead log on a full disk, then freed.
pub(super) const WAL_DISK_FULL: OnSmallDisk<WalDiskFullTrial> = OnSmallDisk {
    name: "wal-disk-full",
    dir: "wal-disk",
    skipped: "write-ahead log, disk full (skipped)",
    set_up: |context, disk| {
        Ok(WalDiskFullTrial {
            table: PgTable::create(&format!("tidings_chaos_wal_disk_{:08x}", context.run))?,
            disk,
            refused: 0,
            recovered: None,
        })
    },
};

pub(super) struct WalDiskFullTrial {
    disk: SmallDisk,
    table: PgTable,
    /// Appends refused while the disk was full.
    refused: u64,
    /// How long after freeing space appends resumed.
    recovered: Option<Duration>,
}

impl Trial for WalDiskFullTrial {
    fn plan(&self) -> Plan {
        Plan {
            collector_keys: ack_keys(true, &self.disk.dir.join("wal")),
            ..Plan::new(
                "wal-disk-full",
                format!(
                    "write-ahead log on a full disk ({}), freed after 3 s",
                    self.disk.kind
                ),
                postgres_backend(&self.table.name, 5432, 100),
                paced("chaos.wal_disk_full", 200.0, 2),
            )
        }
    }

    fn sink(&self) -> &dyn Sink {
        &self.table
    }

    fn disturb(&mut self, run: &mut Run<'_>) -> Result<(), String> {
        let collector = run.collector()?;
        std::thread::sleep(Duration::from_secs(2));
        let ballast = self.disk.dir.join("ballast");
        let filled = fill(&ballast)?;
        println!(
            "{}: filled with {} KiB of ballast under load",
            self.disk.kind,
            filled / 1024
        );
        std::thread::sleep(Duration::from_secs(3));
        let full = collector.metrics()?;
        self.refused = full.get("tidings_wal_refused_appends_total", &[("reason", "failed")]);
        let appended = "tidings_wal_appended_events_total";
        self.recovered = free(&ballast, collector, appended, &[], full.get(appended, &[]))?;
        Ok(())
    }

    fn check(&mut self, row: &mut Row, end: &End<'_>) -> Result<(), String> {
        let refused = self.refused;
        let log_path = end.log();
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        row.notes.push(format!(
            "{refused} appends refused while full (write failed)"
        ));
        if refused == 0 || end.report.busy == 0 {
            row.failures
                .push("no append was refused while the disk was full".to_owned());
        }
        match log
            .lines()
            .find(|l| l.contains("write-ahead log write failed"))
        {
            Some(line) => {
                let line = strip_ansi(line);
                let at = line.find("path=").unwrap_or(0);
                row.notes.push(format!("logged: `{}`", &line[at..]));
            }
            None => row.failures.push(format!(
                "no \"write-ahead log write failed\" warning in the log {}",
                collector_log_hint(&log_path)
            )),
        }
        recovery(row, self.recovered, "202s", "appends");
        Ok(())
    }
}

/// A small file system mounted for the disk-full fault.
struct SmallDisk {
    dir: PathBuf,
    kind: &'static str,
}

impl SmallDisk {
    /// A 2 MiB tmpfs at `work/name`, else a 4 MiB loop-mounted ext4 image.
    fn mount(work: &Path, name: &str) -> Result<Self, NoSmallDisk> {
        let dir = work.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| NoSmallDisk(e.to_string()))?;
        let ok = |c: &mut Command| c.output().is_ok_and(|o| o.status.success());
        if ok(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(&dir))
        {
            return Ok(Self {
                dir,
                kind: "2 MiB tmpfs",
            });
        }
        let image = work.join(format!("{name}.img"));
        if ok(Command::new("truncate").args(["-s", "4M"]).arg(&image))
            && ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image))
            && ok(Command::new("mount")
                .args(["-o", "loop"])
                .arg(&image)
                .arg(&dir))
        {
            return Ok(Self {
                dir,
                kind: "4 MiB loop-mounted ext4 image",
            });
        }
        Err(NoSmallDisk(
            "cannot mount a small file system (tmpfs or a loop image): this fault needs root (or CAP_SYS_ADMIN)".to_owned(),
        ))
    }
}

/// No small file system could be mounted (why): the fault is skipped.
struct NoSmallDisk(String);

impl NoSmallDisk {
    /// The informational row of the skipped fault named `fault`.
    fn row(self, fault: &str) -> Row {
        Row {
            fault: fault.to_owned(),
            informational: true,
            notes: vec![self.0],
            ..Row::default()
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).output();
    }
}

/// Removes `ballast`; how long until the counter `metric{labels}` of
/// `collector` grows past `before` (`None`: not within 30 s); then 2 s
/// more.
fn free(
    ballast: &Path,
    collector: &Collector,
    metric: &str,
    labels: &[(&str, &str)],
    before: u64,
) -> Result<Option<Duration>, String> {
    std::fs::remove_file(ballast).map_err(|e| format!("cannot remove the ballast: {e}"))?;
    let freed = Instant::now();
    let recovered = time_until_grows(
        collector,
        metric,
        labels,
        before,
        freed,
        Duration::from_secs(30),
    )?;
    std::thread::sleep(Duration::from_secs(2));
    Ok(recovered)
}

/// Notes how long after space returned `resumed` resumed, or fails the
/// row: `failed` did not resume.
fn recovery(row: &mut Row, recovered: Option<Duration>, resumed: &str, failed: &str) {
    match recovered {
        Some(after) => row.notes.push(format!(
            "{resumed} resumed {:.0} ms after space returned",
            after.as_secs_f64() * 1e3
        )),
        None => row.failures.push(format!(
            "{failed} did not resume within 30 s of freeing space"
        )),
    }
}

/// Writes `path` until the file system is full; returns the bytes written.
fn fill(path: &Path) -> Result<u64, String> {
    let mut file = std::fs::File::create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let chunk = vec![0_u8; 4096];
    let mut written = 0;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => return Err(format!("filling {}: {e}", path.display())),
        }
    }
    let _ = file.sync_all();
    Ok(written)
}
