//! `static_dir`: the files the standalone server serves at `GET /` and
//! `GET /PATH` after the collector's own routes, through tower-http's
//! `ServeDir`, behind a check that the path stays inside the directory.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Either;
use percent_encoding::percent_decode_str;
use tower_http::services::ServeDir;

use crate::reject::Reject;
use crate::ui::ServeBody;

/// A directory served as files.
#[derive(Debug, Clone)]
pub(crate) struct StaticFiles {
    /// The directory, canonical (symbolic links resolved).
    root: PathBuf,
    serve: ServeDir,
}

impl StaticFiles {
    /// Serves `dir`, resolved once now.
    ///
    /// # Errors
    ///
    /// When `dir` cannot be resolved (it does not exist, say).
    pub(crate) fn open(dir: &str) -> std::io::Result<Self> {
        let root = std::fs::canonicalize(dir)?;
        if !root.is_dir() {
            return Err(std::io::Error::other(format!(
                "{} is not a directory",
                root.display()
            )));
        }
        let serve = ServeDir::new(&root).append_index_html_on_directories(true);
        Ok(Self { root, serve })
    }

    /// Whether a `GET` or `HEAD` of `path` is for these files: the
    /// collector's routes come first, and other methods are not.
    pub(crate) fn takes(method: &Method) -> bool {
        method == Method::GET || method == Method::HEAD
    }

    /// Answers a `GET` or `HEAD`: the file, `index.html` for a directory,
    /// or a JSON 404 for anything missing or refused.
    pub(crate) async fn answer<B>(&self, request: Request<B>) -> Response<ServeBody>
    where
        B: Send + 'static,
    {
        let path = request.uri().path().to_owned();
        let root = self.root.clone();
        let inside = tokio::task::spawn_blocking(move || stays_inside(&root, &path))
            .await
            .unwrap_or(false);
        if !inside {
            return not_found();
        }
        let (parts, _body) = request.into_parts();
        let request = Request::from_parts(parts, http_body_util::Empty::<Bytes>::new());
        let mut serve = self.serve.clone();
        let Ok(response) = tower_service::Service::call(&mut serve, request).await;
        if response.status() == StatusCode::NOT_FOUND {
            return not_found();
        }
        let mut response = response.map(|body| Either::Right(Either::Right(body)));
        response.headers_mut().insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }
}

fn not_found() -> Response<ServeBody> {
    Reject::NotFound.into_response().map(Either::Left)
}

/// Whether the URL path `path` names something inside `root` (canonical):
/// percent-decoded, each segment a plain name (no `.`, `..`, backslash,
/// NUL or hidden `.name`), and, once symbolic links are resolved, the file
/// (and a directory's `index.html`) still under `root`. Something missing
/// is inside: `ServeDir` answers it 404.
fn stays_inside(root: &Path, path: &str) -> bool {
    let Ok(decoded) = percent_decode_str(path).decode_utf8() else {
        return false;
    };
    let mut candidate = root.to_path_buf();
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        if segment.starts_with('.') || segment.contains(['\\', '\0']) {
            return false;
        }
        candidate.push(segment);
    }
    let resolves_inside = |path: &Path| match std::fs::canonicalize(path) {
        Ok(real) => real.starts_with(root),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    };
    if !resolves_inside(&candidate) {
        return false;
    }
    !candidate.is_dir() || resolves_inside(&candidate.join("index.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_directory() {
        let base = std::env::temp_dir().join(format!("tidings-static-unit-{}", std::process::id()));
        let root = base.join("public");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(base.join("secret.txt"), "s").unwrap();
        std::fs::write(root.join("index.html"), "i").unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        assert!(stays_inside(&root, "/"));
        assert!(stays_inside(&root, "/index.html"));
        assert!(stays_inside(&root, "/sub/"));
        assert!(stays_inside(&root, "/missing.js"), "ServeDir answers 404");
        assert!(stays_inside(&root, "//index.html"));
        assert!(!stays_inside(&root, "/../secret.txt"));
        assert!(!stays_inside(&root, "/%2e%2e/secret.txt"));
        assert!(!stays_inside(&root, "/%2E%2E%2Fsecret.txt"));
        assert!(!stays_inside(&root, "/sub/..%5c..%5csecret.txt"));
        assert!(!stays_inside(&root, "/./index.html"));
        assert!(!stays_inside(&root, "/.git/config"));
        assert!(!stays_inside(&root, "/a%00b"));
        assert!(!stays_inside(&root, "/%ff"), "not UTF-8");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(base.join("secret.txt"), root.join("out.txt")).unwrap();
            std::os::unix::fs::symlink(&base, root.join("up")).unwrap();
            std::os::unix::fs::symlink(root.join("index.html"), root.join("in.html")).unwrap();
            assert!(!stays_inside(&root, "/out.txt"));
            assert!(!stays_inside(&root, "/up/secret.txt"));
            assert!(stays_inside(&root, "/in.html"), "a link inside is fine");
            std::fs::create_dir_all(root.join("linked")).unwrap();
            std::os::unix::fs::symlink(base.join("secret.txt"), root.join("linked/index.html"))
                .unwrap();
            assert!(
                !stays_inside(&root, "/linked/"),
                "a directory's index.html too"
            );
        }
        std::fs::remove_dir_all(&base).unwrap();
    }
}
