//! Project automation, run as `cargo xtask <command>`.
//!
//! - `ci`: what CI runs: format check, clippy with warnings denied, every
//!   test, and the docs with warnings denied.
//! - `bench [ARGS]`: the criterion benchmarks (extra arguments go to criterion).
//! - `docs`: builds the API documentation of the workspace.
//! - `loadtest [SECONDS] [--durable] [--when-full default,drop_newest]`: the
//!   collector under load, in fast or durable ack mode, once per `when_full`
//!   policy of its sink (see `loadtest.rs`).
//! - `chaos [FAULT...]`: faults against the release collector and the real
//!   services, with a table of what was lost (see `chaos/mod.rs`).
//! - `soak [--minutes N] [--rate R] [--durable]`: memory and accounting of the release
//!   collector under steady load with a black-holed sink (see `soak.rs`).
//! - `fuzz [--seconds N] [TARGET...]`: the cargo-fuzz targets of `fuzz/`
//!   (see `fuzz.rs`).
//! - `cluster [--broker nats|amqp] [--nats local|cluster] [--rate R] [--seconds N]
//!   [--backlog-seconds N | --backlog-events N] [--backlog-relays 1|2] [--latency-seconds N]
//!   [--latency-rate R] [--no-files] [--no-kill-relay] [--no-kill-collector] [--no-kill-broker]`:
//!   two durable collectors, a JetStream stream (one server or a 3-node
//!   cluster) or a RabbitMQ queue, and two relays into PostgreSQL under
//!   `kill -9`, with a table of what was lost, one relay's backlog drain and
//!   peak memory, and the latency from 202 to row (see `cluster/mod.rs`).

#![allow(clippy::print_stdout)] // a command-line tool reports on stdout

use std::env;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

mod brokers;
mod chaos;
mod cluster;
mod fuzz;
mod harness;
mod loadtest;
mod soak;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => cargo(
            &[
                &["bench", "-p", "tidings", "--bench", "emit", "--"][..],
                &strs(&args[1..]),
            ]
            .concat(),
            &[],
        ),
        Some("docs") => docs(),
        Some("loadtest") => {
            let durable = args[1..].iter().any(|a| a == "--durable");
            // `--when-full a,b`: one run per policy of the file sink, compared.
            let mut policies = vec![String::new()];
            let mut rest = Vec::new();
            let mut words = args[1..].iter();
            while let Some(word) = words.next() {
                match word.as_str() {
                    "--durable" => {}
                    "--when-full" => {
                        policies = words
                            .next()
                            .map(|list| {
                                list.split(',')
                                    .map(|p| {
                                        if p == "default" {
                                            String::new()
                                        } else {
                                            p.to_owned()
                                        }
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                    }
                    _ => rest.push(word),
                }
            }
            match rest.first().map(|s| s.parse::<u64>()) {
                _ if policies.is_empty() => {
                    Err("--when-full takes a list such as default,drop_newest".to_owned())
                }
                None => loadtest::loadtest(&project_root(), 10, durable, &policies),
                Some(Ok(seconds)) => {
                    loadtest::loadtest(&project_root(), seconds, durable, &policies)
                }
                Some(Err(_)) => Err(format!(
                    "loadtest takes a number of seconds per phase, --durable and --when-full LIST, not {:?}",
                    rest[0]
                )),
            }
        }
        Some("chaos") => chaos::chaos(&project_root(), &args[1..]),
        Some("fuzz") => fuzz::parse(&args[1..])
            .and_then(|(seconds, targets)| fuzz::fuzz(&project_root(), seconds, &targets)),
        Some("cluster") => {
            cluster::parse(&args[1..]).and_then(|args| cluster::cluster(&project_root(), &args))
        }
        Some("soak") => soak::parse(&args[1..]).and_then(|args| soak::soak(&project_root(), &args)),
        _ => {
            println!(
                "usage: cargo xtask <ci | bench [criterion args] | docs | loadtest [seconds per phase] [--durable] [--when-full default,drop_newest] | chaos [FAULT...] | soak [--minutes N] [--rate EVENTS_PER_SECOND] [--durable] | fuzz [--seconds N] [TARGET...] | cluster [--broker nats|amqp] [--nats local|cluster] [--rate EVENTS_PER_SECOND] [--seconds N] [--backlog-seconds N | --backlog-events N] [--backlog-relays 1|2] [--latency-seconds N] [--latency-rate EVENTS_PER_SECOND] [--no-files] [--no-kill-relay] [--no-kill-collector] [--no-kill-broker]>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            println!("xtask: {err}");
            ExitCode::FAILURE
        }
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The workspace root, from this crate's manifest directory.
fn project_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Runs cargo (the one that runs xtask) with `args` and extra environment.
pub(crate) fn cargo(args: &[&str], envs: &[(&str, &str)]) -> Result<(), String> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("$ cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(project_root())
        .status()
        .map_err(|e| format!("could not run {cargo}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

/// What CI runs, exactly: `.ci/run` (the format, lint and doc checks, then
/// `scripts/test`, which installs and starts what the tests need).
fn ci() -> Result<(), String> {
    let status = Command::new("bash")
        .arg(project_root().join(".ci/run"))
        .status()
        .map_err(|e| format!("cannot run .ci/run: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(".ci/run failed: {status}"))
    }
}

/// The API docs of every crate with every feature, warnings denied.
fn docs() -> Result<(), String> {
    cargo(
        &["doc", "--workspace", "--all-features", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )
}

#[cfg(test)]
mod tidy {
    //! Repository rules checked as tests.

    use std::fs;
    use std::path::{Path, PathBuf};

    use super::project_root;

    fn files_with_extension(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if name != "target" && !name.to_string_lossy().starts_with('.') {
                    files_with_extension(&path, ext, out);
                }
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_rust_file_opens_with_a_module_doc_comment() {
        let mut files = Vec::new();
        for dir in ["crates", "examples", "xtask"] {
            files_with_extension(&project_root().join(dir), "rs", &mut files);
        }
        assert!(files.len() > 10, "found only {} files", files.len());
        let missing: Vec<_> = files
            .iter()
            .filter(|f| !fs::read_to_string(f).unwrap_or_default().starts_with("//!"))
            .collect();
        assert!(
            missing.is_empty(),
            "files without a leading `//!` doc comment: {missing:?}"
        );
    }

    #[test]
    fn every_member_inherits_workspace_lints_and_internal_deps_come_from_the_workspace() {
        let mut manifests = Vec::new();
        files_with_extension(&project_root().join("crates"), "toml", &mut manifests);
        manifests.push(project_root().join("examples/Cargo.toml"));
        manifests.push(project_root().join("xtask/Cargo.toml"));
        let manifests: Vec<_> = manifests
            .into_iter()
            .filter(|m| m.ends_with("Cargo.toml"))
            .collect();
        assert!(manifests.len() > 5);
        for manifest in manifests {
            let text = fs::read_to_string(&manifest).unwrap();
            assert!(
                text.contains("[lints]\nworkspace = true"),
                "{} does not inherit workspace lints",
                manifest.display()
            );
            for line in text.lines().filter(|l| l.starts_with("tidings")) {
                assert!(
                    line.contains(".workspace = true") || line.contains("workspace = true"),
                    "{}: internal dependency not taken from the workspace: {line}",
                    manifest.display()
                );
            }
        }
    }

    /// The normal (not dev, not build) dependencies of every package in
    /// the resolved graph, by package name, for the features `cargo
    /// metadata` resolves by default.
    fn normal_dependencies() -> std::collections::HashMap<String, Vec<String>> {
        let output = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
            .args(["metadata", "--format-version", "1"])
            .current_dir(project_root())
            .output()
            .expect("cargo metadata runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let name_of: std::collections::HashMap<&str, &str> = metadata["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
            .collect();
        let mut graph = std::collections::HashMap::new();
        for node in metadata["resolve"]["nodes"].as_array().unwrap() {
            let deps = node["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|dep| {
                    dep["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|kind| kind["kind"].is_null())
                })
                .map(|dep| name_of[dep["pkg"].as_str().unwrap()].to_owned())
                .collect();
            graph.insert(name_of[node["id"].as_str().unwrap()].to_owned(), deps);
        }
        graph
    }

    /// Every package `name` depends on, directly or not (normal edges).
    fn closure(graph: &std::collections::HashMap<String, Vec<String>>, name: &str) -> Vec<String> {
        let mut seen = std::collections::BTreeSet::new();
        let mut todo = vec![name.to_owned()];
        while let Some(next) = todo.pop() {
            for dep in graph.get(&next).into_iter().flatten() {
                if seen.insert(dep.clone()) {
                    todo.push(dep.clone());
                }
            }
        }
        seen.into_iter().collect()
    }

    /// An application embedding the collector with no default features
    /// pays for no sink client and none of the binary's own dependencies.
    #[test]
    fn the_embedded_collector_pulls_no_sink_client_and_no_cli() {
        let output = std::process::Command::new(env!("CARGO"))
            .args([
                "tree",
                "-e",
                "normal",
                "-p",
                "tidings-collector",
                "--no-default-features",
                "--prefix",
                "none",
            ])
            .current_dir(project_root())
            .output()
            .expect("cargo tree runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let tree = String::from_utf8_lossy(&output.stdout);
        let pulled: Vec<&str> = tree
            .lines()
            .filter_map(|line| line.split(' ').next())
            .filter(|name| {
                [
                    "lapin",
                    "async-nats",
                    "tokio-postgres",
                    "clap",
                    "mimalloc",
                    "tracing-subscriber",
                ]
                .contains(name)
            })
            .collect();
        assert!(pulled.is_empty(), "the embedded collector pulls {pulled:?}");
        assert!(tree.lines().any(|line| line.starts_with("hyper ")));
    }

    /// The dependency rules of docs/architecture.md ("Dependency
    /// direction"), checked on the resolved graph.
    #[test]
    fn the_dependency_rules_of_the_architecture_hold() {
        let graph = normal_dependencies();
        let sinks: Vec<&String> = graph
            .keys()
            .filter(|n| n.starts_with("tidings-sink-"))
            .collect();
        assert!(sinks.len() >= 6, "{sinks:?}");
        for sink in sinks {
            let direct = &graph[sink];
            let forbidden: Vec<&String> = direct
                .iter()
                .filter(|dep| {
                    (dep.starts_with("tidings-sink-") && *dep != sink)
                        || [
                            "tidings",
                            "tidings-routing",
                            "tidings-config",
                            "tidings-collector",
                        ]
                        .contains(&dep.as_str())
                })
                .collect();
            assert!(
                forbidden.is_empty(),
                "{sink} depends on {forbidden:?}: a sink depends on the contract (tidings-core), not on the delivery engine, another sink, the config, the facade or the collector"
            );
            assert!(
                direct.iter().any(|dep| dep == "tidings-core"),
                "{sink} implements `Sink` from tidings-core"
            );
        }
        // The walk sees transitive edges: the delivery engine does pull tokio.
        assert!(
            closure(&graph, "tidings-routing")
                .iter()
                .any(|dep| dep == "tokio")
        );
        // The contract, and what it is made of, carry no runtime, regex
        // engine or HTTP stack: an emitting library or a sink pays for none.
        for pure in ["tidings-core", "tidings-event", "tidings-context"] {
            let all = closure(&graph, pure);
            let heavy: Vec<&String> = all
                .iter()
                .filter(|dep| {
                    ["tokio", "regex", "hyper", "tidings-routing"].contains(&dep.as_str())
                })
                .collect();
            assert!(heavy.is_empty(), "{pure} pulls {heavy:?}: {all:?}");
        }
        // Stock processors and the schema crate do no I/O.
        for no_io in ["tidings-processors", "tidings-catalog"] {
            let all = closure(&graph, no_io);
            assert!(
                !all.iter()
                    .any(|dep| dep == "tokio" || dep == "tidings-routing"),
                "{no_io} pulls tokio or the delivery engine: {all:?}"
            );
        }
    }
}
