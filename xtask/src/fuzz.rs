//! `cargo xtask fuzz --seconds N [TARGET...]`: runs each cargo-fuzz target
//! of `fuzz/` for N seconds over its committed corpus, and fails naming the
//! crash file if any target crashes.
//!
//! cargo-fuzz is installed (`cargo install cargo-fuzz --locked`) when
//! missing. libFuzzer needs nightly compiler flags: the nightly toolchain is
//! used when rustup has one, else the stable compiler with
//! `RUSTC_BOOTSTRAP=1`.

use std::path::Path;
use std::process::{Command, Stdio};

/// The targets, in the order they run.
pub(crate) const TARGETS: [&str; 5] = [
    "wire_decode",
    "collector_routes",
    "config_load",
    "catalog_load",
    "wal_scan",
];

/// Parses `--seconds N` and target names.
pub(crate) fn parse(args: &[String]) -> Result<(u64, Vec<String>), String> {
    let mut seconds = 60;
    let mut targets = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().ok_or("--seconds needs a number")?;
                seconds = value
                    .parse()
                    .map_err(|_| format!("--seconds takes a number, not {value:?}"))?;
            }
            name if TARGETS.contains(&name) => targets.push(name.to_owned()),
            other => {
                return Err(format!(
                    "unknown fuzz argument {other:?}; targets are {}",
                    TARGETS.join(", ")
                ));
            }
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    }
    Ok((seconds, targets))
}

fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs every target for `seconds`.
pub(crate) fn fuzz(root: &Path, seconds: u64, targets: &[String]) -> Result<(), String> {
    if !succeeds(Command::new("cargo").args(["fuzz", "--version"])) {
        println!("$ cargo install cargo-fuzz --locked");
        let installed = Command::new("cargo")
            .args(["install", "cargo-fuzz", "--locked"])
            .status()
            .map_err(|e| format!("could not run cargo install: {e}"))?;
        if !installed.success() {
            return Err("could not install cargo-fuzz".into());
        }
    }
    let nightly = succeeds(Command::new("rustup").args(["run", "nightly", "rustc", "--version"]));
    let dir = root.join("fuzz");
    let mut summary = Vec::new();
    for target in targets {
        let corpus = dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let mut command = Command::new("cargo");
        if nightly {
            command.arg("+nightly");
        } else {
            command.env("RUSTC_BOOTSTRAP", "1");
        }
        command
            .args(["fuzz", "run", target.as_str()])
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1")
            .current_dir(&dir);
        println!("$ cargo fuzz run {target} -- -max_total_time={seconds}");
        let output = command
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("could not run cargo fuzz: {e}"))?;
        let log = String::from_utf8_lossy(&output.stderr);
        let stat = |name: &str| {
            log.lines()
                .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
                .map_or("?".to_owned(), |v| v.trim().to_owned())
        };
        let crash = log
            .lines()
            .find(|l| l.contains("Test unit written to"))
            .map(|l| l.rsplit(' ').next().unwrap_or(l).to_owned());
        summary.push(format!(
            "{target:<18} runs {:>10}  exec/s {:>7}  corpus {:>5} files  {}",
            stat("number_of_executed_units"),
            stat("average_exec_per_sec"),
            std::fs::read_dir(&corpus).map_or(0, Iterator::count),
            match (&crash, output.status.success()) {
                (Some(file), _) => format!("CRASH: {file}"),
                (None, true) => "ok".to_owned(),
                (None, false) => "FAILED (see the output above)".to_owned(),
            }
        ));
        if !output.status.success() {
            eprintln!("{log}");
        }
    }
    println!("\nfuzz summary ({seconds} s per target):");
    for line in &summary {
        println!("  {line}");
    }
    if summary.iter().any(|l| !l.ends_with("ok")) {
        return Err("a fuzz target crashed or failed; add the input as a regression test".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_pick_seconds_and_targets() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            parse(&args(&[])).unwrap(),
            (60, TARGETS.iter().map(|t| (*t).to_owned()).collect())
        );
        assert_eq!(
            parse(&args(&["--seconds", "5", "wire_decode"])).unwrap(),
            (5, vec!["wire_decode".to_owned()])
        );
        assert!(
            parse(&args(&["--seconds", "x"]))
                .unwrap_err()
                .contains("number")
        );
        assert!(parse(&args(&["nope"])).unwrap_err().contains("targets are"));
    }

    /// Every target has a source file, a `[[bin]]` and a committed corpus.
    #[test]
    fn every_target_is_declared_and_seeded() {
        let fuzz = crate::project_root().join("fuzz");
        let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
        for target in TARGETS {
            assert!(
                fuzz.join(format!("fuzz_targets/{target}.rs")).exists(),
                "{target}"
            );
            assert!(
                manifest.contains(&format!("name = \"{target}\"")),
                "{target}"
            );
            let seeds = std::fs::read_dir(fuzz.join("corpus").join(target))
                .unwrap()
                .count();
            assert!(seeds > 0, "no corpus for {target}");
        }
    }
}
