//! The config types of this crate (feature `config`): what a config file's
//! `type = ...` names, its options, their defaults and checks, and how
//! the sink is built from them. `tidings-config` registers them.

use std::path::PathBuf;
use std::sync::Arc;

use crate::names::split_s3_url;
use crate::{DEFAULT_ROLL_EVENTS, DEFAULT_ROLL_SECONDS, FileSink};
use serde::Deserialize;
use tidings_core::{BoxError, Sink};

use tidings_core::{Delivery, SinkType};

/// `type = "file"`: `path` (required), `roll_events`, `roll_seconds`,
/// `gzip`; with `path = "s3://bucket/prefix"` (feature `s3`), also
/// `staging`, `endpoint`, `region`, `access_key_id`, `secret_access_key`
/// and `allow_http`.
#[derive(Debug)]
pub struct FileType;

/// The options of `file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOptions {
    path: PathBuf,
    #[serde(default = "roll_events")]
    roll_events: u64,
    #[serde(default = "roll_seconds")]
    roll_seconds: u64,
    #[serde(default)]
    gzip: bool,
    /// With an `s3://` path: where finished files wait for their upload
    /// (default `tidings-staging/BUCKET/PREFIX`, next to the config).
    staging: Option<PathBuf>,
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    allow_http: Option<bool>,
}

/// The keys only an `s3://` path takes.
const STORE_KEYS: [&str; 6] = [
    "staging",
    "endpoint",
    "region",
    "access_key_id",
    "secret_access_key",
    "allow_http",
];

impl FileOptions {
    /// `s3://bucket/prefix`, when the path is one.
    fn store_url(&self) -> Option<&str> {
        self.path.to_str().filter(|p| p.starts_with("s3://"))
    }

    fn store_keys_set(&self) -> [bool; 6] {
        [
            self.staging.is_some(),
            self.endpoint.is_some(),
            self.region.is_some(),
            self.access_key_id.is_some(),
            self.secret_access_key.is_some(),
            self.allow_http.is_some(),
        ]
    }

    /// The local directory written into: the path, or the staging
    /// directory of an object store (by default
    /// `tidings-staging/BUCKET/PREFIX`).
    fn local_dir(&self) -> PathBuf {
        match (self.store_url().and_then(split_s3_url), &self.staging) {
            (Some(_), Some(staging)) => staging.clone(),
            (Some((bucket, prefix)), None) => {
                PathBuf::from("tidings-staging").join(bucket).join(prefix)
            }
            (None, _) => self.path.clone(),
        }
    }

    #[cfg(feature = "s3")]
    fn store_options(&self) -> crate::StoreOptions {
        let mut options = crate::StoreOptions::default();
        options.endpoint.clone_from(&self.endpoint);
        options.region.clone_from(&self.region);
        options.access_key_id.clone_from(&self.access_key_id);
        options
            .secret_access_key
            .clone_from(&self.secret_access_key);
        options.allow_http = self.allow_http;
        options
    }
}

fn roll_events() -> u64 {
    DEFAULT_ROLL_EVENTS
}

fn roll_seconds() -> u64 {
    DEFAULT_ROLL_SECONDS
}

impl SinkType for FileType {
    const NAME: &'static str = "file";
    type Options = FileOptions;

    fn validate(options: &FileOptions) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if options.roll_events == 0 {
            problems.push(("roll_events".to_owned(), "must be at least 1".to_owned()));
        }
        if options.roll_seconds == 0 {
            problems.push(("roll_seconds".to_owned(), "must be at least 1".to_owned()));
        }
        if options.path.as_os_str().is_empty() {
            problems.push(("path".to_owned(), "must not be empty".to_owned()));
        }
        match options.store_url() {
            Some(url) if split_s3_url(url).is_none() => problems.push((
                "path".to_owned(),
                format!("{url:?} is not an object store URL: expected s3://bucket/prefix"),
            )),
            Some(_) if !cfg!(feature = "s3") => problems.push((
                "path".to_owned(),
                "an s3:// path needs tidings built with object storage (the `s3` feature of tidings-sink-file)".to_owned(),
            )),
            Some(_) => {}
            None => {
                for (key, set) in STORE_KEYS.iter().zip(options.store_keys_set()) {
                    if set {
                        problems.push((
                            (*key).to_owned(),
                            "is for an object store path (s3://bucket/prefix)".to_owned(),
                        ));
                    }
                }
            }
        }
        problems
    }

    fn resolve_paths(options: &mut FileOptions, dir: &std::path::Path) {
        if options.store_url().is_some() {
            options.staging = Some(dir.join(options.local_dir()));
        } else if options.path.is_relative() {
            options.path = dir.join(&options.path);
        }
    }

    fn preflight(options: &FileOptions) -> Vec<(String, String)> {
        let key = if options.store_url().is_some() {
            "staging"
        } else {
            "path"
        };
        match crate::probe_directory(&options.local_dir()) {
            Ok(()) => Vec::new(),
            Err(message) => vec![(key.to_owned(), message)],
        }
    }

    fn build(options: &FileOptions, _delivery: &Delivery) -> Result<Arc<dyn Sink>, BoxError> {
        #[allow(unused_mut, reason = "changed only with the s3 feature")]
        let mut builder = FileSink::builder(options.local_dir())
            .roll_events(options.roll_events)
            .roll_seconds(options.roll_seconds)
            .gzip(options.gzip);
        #[cfg(feature = "s3")]
        if let Some(url) = options.store_url() {
            builder = builder.upload_to(crate::ObjectTarget::s3(url, &options.store_options())?);
        }
        Ok(Arc::new(builder.build()?))
    }

    /// Never prints credentials: only whether they come from the config
    /// or the environment.
    fn describe(options: &FileOptions) -> String {
        let mut described = format!("path={}", options.path.display());
        if options.store_url().is_some() {
            described.push_str(&format!(" staging={}", options.local_dir().display()));
            for (key, value) in [("endpoint", &options.endpoint), ("region", &options.region)] {
                if let Some(value) = value {
                    described.push_str(&format!(" {key}={value}"));
                }
            }
            let from = if options.access_key_id.is_some() || options.secret_access_key.is_some() {
                "config (redacted)"
            } else {
                "environment"
            };
            described.push_str(&format!(" credentials={from}"));
        }
        described.push_str(&format!(
            " roll_events={} roll_seconds={} gzip={}",
            options.roll_events, options.roll_seconds, options.gzip
        ));
        described
    }
}
