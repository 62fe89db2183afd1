//! The `tidings` command: `serve` runs the collector, `check` validates a
//! config and prints its tree, `compact` merges a file sink's files, and
//! `catalog check|docs` lints an event catalog or writes its documentation.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tidings_catalog::{Catalog, Level, docs, lint};
use tidings_collector::{Collector, DEFAULT_CONFIG};
use tidings_config::{Config, ConfigErrors, Registry, load, load_file};

/// The collector allocates and frees many small objects per event on
/// several threads; mimalloc handles that pattern much better than glibc's
/// allocator (see `docs/performance.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Event collection and routing.
#[derive(Debug, Parser)]
#[command(name = "tidings", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the collector (with the embedded default config unless --config is given).
    Serve {
        /// The TOML config file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen on this address instead of the config's `collector.listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Validate a config file and print its tree (exit code 1 on errors).
    Check {
        /// The TOML config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Merge the small files a `file` sink wrote into one gzip file per period.
    Compact {
        /// The directory of the `file` sink.
        #[arg(long)]
        path: PathBuf,
        /// `hour` or `day`.
        #[arg(long, default_value = "hour")]
        period: tidings_sink_file::Period,
    },
    /// Event catalogs: lint one, or write its documentation.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Load and lint a catalog (exit code 1 on errors; warnings are printed).
    Check {
        /// The catalog file (TOML).
        file: PathBuf,
    },
    /// Write a Markdown page and a JSON Schema per event, and an index.
    Docs {
        /// The catalog file (TOML).
        file: PathBuf,
        /// The directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

fn load_config(path: Option<&PathBuf>) -> Result<Config, ConfigErrors> {
    let registry = Registry::default();
    match path {
        Some(path) => load_file(path, &registry),
        None => load(DEFAULT_CONFIG, &registry),
    }
}

#[allow(clippy::print_stdout)] // `check` prints its report on stdout
fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match load_config(Some(&config)) {
            Ok(config) => {
                println!("{config}");
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::Compact { path, period } => match tidings_sink_file::compact(&path, period) {
            Ok(report) => {
                println!(
                    "merged {} files into {} ({} lines){}",
                    report.merged_files,
                    report.outputs.len(),
                    report.lines,
                    if report.skipped.is_empty() {
                        String::new()
                    } else {
                        format!("; skipped damaged files: {:?}", report.skipped)
                    }
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("tidings compact: {}: {error}", path.display());
                ExitCode::FAILURE
            }
        },
        Command::Catalog { command } => catalog(command),
        Command::Serve { config, listen } => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .init();
            match serve(config.as_ref(), listen) {
                Ok(0) => ExitCode::SUCCESS,
                Ok(_lost) => ExitCode::from(EXIT_EVENTS_LOST),
                Err(message) => {
                    eprintln!("tidings: {message}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

#[allow(clippy::print_stdout)] // the catalog commands report on stdout
fn catalog(command: CatalogCommand) -> ExitCode {
    let file = match &command {
        CatalogCommand::Check { file } | CatalogCommand::Docs { file, .. } => file,
    };
    let catalog = match Catalog::from_file(file) {
        Ok(catalog) => catalog,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    match command {
        CatalogCommand::Check { file } => {
            let lints = lint(&catalog);
            for finding in &lints {
                println!("{finding}");
            }
            let errors = lints.iter().filter(|l| l.level == Level::Error).count();
            println!(
                "{}: {} events, {errors} errors, {} warnings",
                file.display(),
                catalog.events().len(),
                lints.len() - errors
            );
            if errors == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        CatalogCommand::Docs { out, .. } => match docs::write_docs(&catalog, &out) {
            Ok(written) => {
                println!("wrote {} files under {}", written.len(), out.display());
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("tidings catalog docs: {error}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The exit code of `tidings serve` when its drain ended with events not
/// delivered (each stage's count is logged at ERROR level).
const EXIT_EVENTS_LOST: u8 = 3;

/// Runs the collector until SIGTERM or Ctrl-C, then drains it; returns
/// how many events the drain could not deliver.
fn serve(config_path: Option<&PathBuf>, listen: Option<SocketAddr>) -> Result<u64, String> {
    let config = load_config(config_path).map_err(|e| e.to_string())?;
    let collector = Collector::from_config(&config).map_err(|e| e.to_string())?;
    let addr = listen.unwrap_or(collector.options().listen);
    let drain = Duration::from_millis(collector.options().shutdown_timeout_ms);
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(target: "tidings::collector", "listening on http://{local}");
        collector.serve(listener, shutdown_signal()).await.map_err(|e| e.to_string())?;
        tracing::info!(target: "tidings::collector", "stopped accepting; draining the pipeline");
        let drained = tokio::task::spawn_blocking({
            let collector = collector.clone();
            move || collector.shutdown(drain)
        })
        .await
        .map_err(|e| e.to_string())?;
        let losses = collector.losses();
        let lost: u64 = losses.iter().map(|(_, n)| n).sum();
        if lost > 0 {
            let by_stage = losses
                .iter()
                .map(|(path, n)| format!("{path}: {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            tracing::error!(
                target: "tidings::collector",
                lost,
                by_stage = %by_stage,
                "shut down with {lost} events not delivered: the drain's deadline (shutdown_timeout_ms = {}) passed first",
                drain.as_millis()
            );
        } else if let Err(error) = drained {
            tracing::warn!(target: "tidings::collector", %error, "drained every accepted event, but a sink failed to close");
        } else {
            tracing::info!(target: "tidings::collector", "drained: every accepted event delivered; bye");
        }
        Ok(lost)
    })
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
