//! The `tidings` command: `serve` runs the collector, `check` validates a
//! config and prints its tree, `compact` merges a file sink's files,
//! `catalog check|docs` lints an event catalog or writes its documentation,
//! and `tail` prints the live view's stream of incoming events.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tidings_catalog::{Catalog, Level, docs, lint};
use tidings_collector::{Collector, DEFAULT_CONFIG};
use tidings_config::{Config, ConfigErrors, Registry, load, load_file};

mod tail;

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
        /// Listen on this address (`HOST:PORT`, such as `localhost:8080`)
        /// instead of the config's `collector.listen`.
        #[arg(long, value_parser = tidings_config::parse_listen)]
        listen: Option<SocketAddr>,
    },
    /// Validate a config file (the embedded default without one) as `serve`
    /// would, without starting anything, and print its tree (exit code 1 on
    /// problems).
    Check {
        /// The TOML config file.
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// The TOML config file (the same as FILE).
        #[arg(long, conflicts_with = "file")]
        config: Option<PathBuf>,
    },
    /// Configs: `tidings config default` prints the embedded default, ready
    /// to edit (`tidings config default > tidings.toml`).
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Merge the small files a `file` sink wrote into one gzip file per period.
    Compact {
        /// The directory of the `file` sink, or its `s3://bucket/prefix`
        /// (credentials and endpoint from `AWS_ACCESS_KEY_ID`,
        /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`,
        /// `AWS_ALLOW_HTTP`).
        #[arg(long)]
        path: PathBuf,
        /// `hour` or `day`.
        #[arg(long, default_value = "hour")]
        period: tidings_sink_file::Period,
    },
    /// Print the live view's stream of incoming events, one JSON line each
    /// (the collector needs `[collector.ui]` enabled).
    Tail {
        /// The collector's address.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Only events whose name contains this, or matches it as a glob (`page.*`).
        #[arg(long)]
        name: Option<String>,
        /// The admin key (default: the TIDINGS_ADMIN_KEY environment variable).
        #[arg(long)]
        key: Option<String>,
    },
    /// Event catalogs: lint one, or write its documentation.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the embedded default config (what `serve` runs without --config).
    Default,
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

/// How a config is named in messages: its file, or the embedded default.
fn source_name(path: Option<&PathBuf>) -> String {
    path.map_or_else(
        || "the embedded default config".to_owned(),
        |path| path.display().to_string(),
    )
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
        Command::Check { file, config } => {
            let path = file.or(config);
            match load_config(path.as_ref())
                .and_then(|config| Collector::preflight(&config).map(|()| config))
            {
                Ok(config) => {
                    println!("{config}");
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    eprintln!("{}: {errors}", source_name(path.as_ref()));
                    ExitCode::FAILURE
                }
            }
        }
        Command::Config {
            command: ConfigCommand::Default,
        } => {
            print!("{DEFAULT_CONFIG}");
            ExitCode::SUCCESS
        }
        Command::Compact { path, period } => {
            let compacted = match path.to_str().filter(|p| p.starts_with("s3://")) {
                Some(url) => compact_store(url, period),
                None => tidings_sink_file::compact(&path, period).map_err(|e| e.to_string()),
            };
            match compacted {
                Ok(report) => {
                    println!("{report}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("tidings compact: {}: {error}", path.display());
                    ExitCode::FAILURE
                }
            }
        }
        Command::Catalog { command } => catalog(command),
        Command::Tail { url, name, key } => tail::run(&url, name.as_deref(), key),
        Command::Serve { config, listen } => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
            let count =
                |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
            println!(
                "{}: {}, {}, {}",
                file.display(),
                count(catalog.events().len(), "event"),
                count(errors, "error"),
                count(lints.len() - errors, "warning")
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
    let source = source_name(config_path);
    let config = load_config(config_path)
        .and_then(|config| Collector::preflight(&config).map(|()| config))
        .map_err(|e| format!("{source}: {e}"))?;
    let addr = listen.unwrap_or(config.collector().listen);
    let drain = Duration::from_millis(config.collector().shutdown_timeout_ms);
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        // Signals first: a SIGTERM once the port accepts connections drains.
        let stop = shutdown_signal();
        // The port next: a start that fails creates nothing on disk.
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let collector = Collector::from_config(&config).map_err(|e| format!("{source}: {e}"))?;
        banner(&config, config_path, local);
        collector.serve(listener, stop).await.map_err(|e| e.to_string())?;
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

/// Says at start what runs and where its data goes: the version, the config
/// and where its relative paths resolve, the listen URL and routes, each
/// sink with its destination, the acknowledgement mode and `/metrics`.
fn banner(config: &Config, config_path: Option<&PathBuf>, local: SocketAddr) {
    const TARGET: &str = "tidings::collector";
    let cwd = std::env::current_dir().map_or_else(|_| ".".to_owned(), |d| d.display().to_string());
    match config_path {
        Some(path) => {
            tracing::info!(target: TARGET, "tidings {} starting: config {} (relative paths resolve against its directory)", env!("CARGO_PKG_VERSION"), path.display())
        }
        None => {
            tracing::info!(target: TARGET, "tidings {} starting: the embedded default config (`tidings config default` prints it; relative paths resolve against {cwd})", env!("CARGO_PKG_VERSION"))
        }
    }
    let routes = tidings_collector::Route::ALL
        .iter()
        .map(|route| route.path())
        .collect::<Vec<_>>()
        .join(" ");
    tracing::info!(target: TARGET, "listening on http://{local} (routes: {routes})");
    if let Some(dir) = &config.collector().static_dir {
        tracing::info!(target: TARGET, "serving the files of {dir} at / (GET, HEAD)");
    }
    let sinks = config.sinks();
    if sinks.is_empty() {
        tracing::warn!(target: TARGET, "no sinks: accepted events go nowhere");
    }
    for sink in sinks {
        let keeps = sink.may_drop.map_or_else(
            || "keeps every event".to_owned(),
            |why| format!("may drop: {why}"),
        );
        let dead = sink
            .dead_letters
            .map(|d| format!("; dead letters: {d}"))
            .unwrap_or_default();
        tracing::info!(target: TARGET, "sink {}: {} {} ({keeps}{dead})", sink.path, sink.type_name, sink.description);
    }
    let options = config.collector();
    match options.ack {
        tidings_config::AckMode::Durable => {
            tracing::info!(target: TARGET, "ack = durable: 202 once written and fsynced to the write-ahead log at {}", options.wal_path)
        }
        _ => {
            tracing::info!(target: TARGET, "ack = fast: 202 once queued in memory (`ack = \"durable\"` keeps events across a crash)")
        }
    }
    if options.ui.enabled {
        tracing::info!(target: TARGET, "live view at http://{local}/ui (admin key required; `tidings tail --url http://{local}` in a terminal)");
    }
    tracing::info!(target: TARGET, "metrics at http://{local}/metrics, health at http://{local}/healthz");
}

/// Completes on SIGTERM or Ctrl-C. SIGTERM's handler is installed when this
/// is called, not when the future is first polled: call it before the port
/// is bound, so that a SIGTERM right after start drains instead of killing.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = term.recv() => {}
                _ = ctrl_c => {}
            }
            return;
        }
        let _ = ctrl_c.await;
    }
}

/// `tidings compact` in an object store, reached as the environment says.
#[cfg(feature = "s3")]
fn compact_store(
    url: &str,
    period: tidings_sink_file::Period,
) -> Result<tidings_sink_file::CompactReport, String> {
    let target =
        tidings_sink_file::ObjectTarget::s3(url, &tidings_sink_file::StoreOptions::default())
            .map_err(|e| e.to_string())?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(target.compact(period))
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "s3"))]
fn compact_store(
    _url: &str,
    _period: tidings_sink_file::Period,
) -> Result<tidings_sink_file::CompactReport, String> {
    Err("this tidings was built without object storage (the `s3` feature)".to_owned())
}
