//! Object storage (feature `s3`): finished files uploaded to an
//! S3-compatible store, and compaction there.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tidings_event::{FailureStreak, StreakLog};

use crate::compact::{
    CompactReport, Period, is_journal, journal_name, journal_text, output_name, plan,
};
use crate::names::{is_finished, is_gzip, split_s3_url};
use crate::recover::complete_lines_of;
use crate::sink::gzip_member;

/// How long the client retries one request before the sink is told.
const UPLOAD_RETRY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Where and how to reach an S3-compatible store. Whatever is not set here
/// comes from the environment, as the AWS tools read it
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`).
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct StoreOptions {
    /// The store's endpoint, for a store other than AWS
    /// (`http://127.0.0.1:9000`).
    pub endpoint: Option<String>,
    /// The region (AWS's default otherwise).
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key: never printed or logged.
    pub secret_access_key: Option<String>,
    /// Allows `http://` endpoints (for a local store).
    pub allow_http: Option<bool>,
}

impl fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreOptions")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field(
                "access_key_id",
                &self.access_key_id.as_ref().map(|_| "(set)"),
            )
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "(redacted)"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// The object store could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL is not `s3://bucket[/prefix]`.
    #[error("{url:?} is not an object store URL: expected s3://bucket/prefix")]
    Url {
        /// The URL given.
        url: String,
    },
    /// The store refused its options, or a request failed.
    #[error("object store {url}: {source}")]
    Store {
        /// The store's URL.
        url: String,
        /// What the client reported.
        #[source]
        source: object_store::Error,
    },
    /// A file could not be read or removed.
    #[error("cannot use {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS reported.
        #[source]
        source: std::io::Error,
    },
}

/// An S3 bucket and key prefix that finished files go to. Clones share
/// one client.
#[derive(Clone)]
pub struct ObjectTarget {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    url: String,
}

impl fmt::Debug for ObjectTarget {
    /// The URL only: the client holds credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectTarget")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ObjectTarget {
    /// The bucket and prefix of `url` (`s3://bucket/prefix`), reached with
    /// `options` and the environment.
    ///
    /// # Errors
    ///
    /// [`StoreError::Url`] for a URL that is not `s3://bucket[/prefix]`,
    /// [`StoreError::Store`] when the client cannot be built.
    pub fn s3(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let (bucket, prefix) = split_s3_url(url).ok_or_else(|| StoreError::Url {
            url: url.to_owned(),
        })?;
        // TLS goes through rustls with ring, as everywhere in tidings; a
        // provider another part of the program installed first is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &options.region {
            builder = builder.with_region(region);
        }
        if let Some(id) = &options.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &options.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(allow) = options.allow_http {
            builder = builder.with_allow_http(allow);
        }
        // A failed upload is retried by the sink at its next roll check:
        // the client gives up within a bounded time rather than its 3 min.
        builder = builder.with_retry(object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: UPLOAD_RETRY_TIMEOUT,
            ..object_store::RetryConfig::default()
        });
        let store = builder.build().map_err(|source| StoreError::Store {
            url: url.to_owned(),
            source,
        })?;
        Ok(Self {
            store: Arc::new(store),
            prefix: ObjectPath::from(prefix),
            url: url.trim_end_matches('/').to_owned(),
        })
    }

    /// `s3://bucket/prefix`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    fn at(&self, name: &str) -> ObjectPath {
        self.prefix.clone().join(name)
    }

    fn error(&self, source: object_store::Error) -> StoreError {
        StoreError::Store {
            url: self.url.clone(),
            source,
        }
    }

    /// Uploads each finished file of `dir`, oldest first, and removes it
    /// once the store has it; returns how many. Stops at the first
    /// failure: the rest stay in `dir` for the next call.
    pub(crate) async fn upload_finished(&self, dir: &Path) -> Result<usize, StoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| is_finished(name))
            .collect();
        names.sort();
        for name in &names {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            self.store
                .put(&self.at(name), PutPayload::from(bytes))
                .await
                .map_err(|e| self.error(e))?;
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
        Ok(names.len())
    }

    /// The names of the objects directly under the prefix.
    ///
    /// # Errors
    ///
    /// [`StoreError::Store`] when the listing fails.
    pub async fn list(&self) -> Result<Vec<String>, StoreError> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(|e| self.error(e))?;
        Ok(listed
            .objects
            .into_iter()
            .filter_map(|o| o.location.filename().map(str::to_owned))
            .collect())
    }

    /// The content of the object `name` under the prefix.
    ///
    /// # Errors
    ///
    /// [`StoreError::Store`] when it cannot be read (or is not there).
    pub async fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let got = self
            .store
            .get(&self.at(name))
            .await
            .map_err(|e| self.error(e))?;
        Ok(got.bytes().await.map_err(|e| self.error(e))?.to_vec())
    }

    /// Stores `bytes` as the object `name` under the prefix (replacing
    /// one of that name).
    ///
    /// # Errors
    ///
    /// [`StoreError::Store`] when the store refuses it.
    pub async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.store
            .put(&self.at(name), PutPayload::from(bytes))
            .await
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// Deletes `name`; one already gone is fine.
    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        match self.store.delete(&self.at(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// [`compact`](crate::compact) for the store: merges the finished
    /// objects of each `period` into one gzip object, with the same journal
    /// protocol (a journal object naming the output and its inputs is
    /// written first, so a run interrupted at any point is completed by the
    /// next one: no line lost or duplicated). The report's paths are the
    /// objects' URLs.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when a request fails; the store stays consistent.
    pub async fn compact(&self, period: Period) -> Result<CompactReport, StoreError> {
        let mut names = self.list().await?;
        for journal in names.iter().filter(|n| is_journal(n)) {
            self.finish_journal(journal, &names).await?;
        }
        if names.iter().any(|n| is_journal(n)) {
            names = self.list().await?;
        }
        let (groups, mut report) = plan(names.iter().cloned(), period);
        for (key, inputs) in groups {
            let mut content = Vec::new();
            let mut merged = Vec::new();
            for name in inputs {
                let lines = complete_lines_of(&self.get(&name).await?, is_gzip(Path::new(&name)));
                if lines.clean {
                    content.extend_from_slice(&lines.bytes);
                    merged.push(name);
                } else {
                    report
                        .skipped
                        .push(PathBuf::from(format!("{}/{name}", self.url)));
                }
            }
            if merged.len() < 2 {
                continue;
            }
            let output = output_name(period, &key, |n| names.iter().any(|m| m == n));
            let journal = journal_name(&key);
            let gz = gzip_member(&content).map_err(io_in_memory)?;
            self.put(&journal, journal_text(&output, &merged).into_bytes())
                .await?;
            self.put(&output, gz).await?;
            for input in &merged {
                self.delete(input).await?;
            }
            self.delete(&journal).await?;
            report.lines += content.iter().filter(|&&b| b == b'\n').count();
            report.merged_files += merged.len();
            report
                .outputs
                .push(PathBuf::from(format!("{}/{output}", self.url)));
        }
        Ok(report)
    }

    /// Completes (output there: inputs deleted) or rolls back (output
    /// missing: inputs kept) the merge `journal` names.
    async fn finish_journal(&self, journal: &str, names: &[String]) -> Result<(), StoreError> {
        let text = String::from_utf8_lossy(&self.get(journal).await?).into_owned();
        let mut lines = text.lines();
        if let Some(output) = lines.next()
            && names.iter().any(|n| n == output)
        {
            for input in lines {
                self.delete(input).await?;
            }
        }
        self.delete(journal).await
    }
}

/// A sink's uploads, made by a task of their own so that writing never
/// waits for the store: one at a time, failures logged as a streak.
#[derive(Debug)]
pub(crate) struct Uploader {
    target: ObjectTarget,
    busy: Arc<tokio::sync::Mutex<()>>,
    failing: FailureStreak,
}

impl Uploader {
    pub(crate) fn new(target: ObjectTarget) -> Arc<Self> {
        Arc::new(Self {
            target,
            busy: Arc::default(),
            failing: FailureStreak::default(),
        })
    }

    /// Starts uploading what `dir` holds finished, unless an upload is
    /// already under way (it takes the new files too, or the next call
    /// does).
    pub(crate) fn start(self: &Arc<Self>, dir: &Path) {
        let Ok(one_at_a_time) = self.busy.clone().try_lock_owned() else {
            return;
        };
        let (this, dir) = (self.clone(), dir.to_path_buf());
        tokio::spawn(async move {
            let _one_at_a_time = one_at_a_time;
            this.upload(&dir).await;
        });
    }

    /// Waits for an upload under way, then uploads what is left: for a
    /// shutdown.
    pub(crate) async fn finish(&self, dir: &Path) {
        let _one_at_a_time = self.busy.lock().await;
        self.upload(dir).await;
        let staged = std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_str().is_some_and(is_finished))
                .count()
        });
        if staged > 0 {
            tracing::warn!(target: "tidings::sink::file", url = %self.target.url, dir = %dir.display(), staged, "{staged} finished files could not be uploaded before the sink stopped; they stay staged, and the next sink on this directory uploads them");
        }
    }

    /// Uploads what `dir` holds finished; a failure is logged, and the
    /// files stay for the next call.
    async fn upload(&self, dir: &Path) {
        match self.target.upload_finished(dir).await {
            Ok(_) => {
                if let Some(failures) = self.failing.succeeded() {
                    tracing::info!(target: "tidings::sink::file", url = %self.target.url, failures, "uploads to the object store succeed again after {failures} failures");
                }
            }
            Err(error) => match self.failing.failed() {
                StreakLog::First => {
                    tracing::warn!(target: "tidings::sink::file", url = %self.target.url, dir = %dir.display(), %error, "cannot upload finished files; they stay in the staging directory and are retried every second (while uploads keep failing, a summary is logged every 30 s)");
                }
                StreakLog::Reminder {
                    failures,
                    suppressed,
                } => {
                    tracing::warn!(target: "tidings::sink::file", url = %self.target.url, dir = %dir.display(), %error, failures, suppressed, "uploads to the object store still fail: {failures} failures so far");
                }
                _ => {}
            },
        }
    }
}

fn io_in_memory(source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: PathBuf::from("(gzip in memory)"),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_reach_debug_output() {
        let options = StoreOptions {
            access_key_id: Some("AKIDEXAMPLE".to_owned()),
            secret_access_key: Some("wJalrXUtnFEMI".to_owned()),
            ..StoreOptions::default()
        };
        let printed = format!("{options:?}");
        assert!(!printed.contains("AKIDEXAMPLE") && !printed.contains("wJalrXUtnFEMI"));
        let target = ObjectTarget::s3("s3://bucket/prefix", &options).unwrap();
        let printed = format!("{target:?}");
        assert!(printed.contains("s3://bucket/prefix"));
        assert!(!printed.contains("wJalrXUtnFEMI"), "{printed}");
    }
}
