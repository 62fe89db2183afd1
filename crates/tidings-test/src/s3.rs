//! `S3Server`: a local S3-compatible server (moto) that a test starts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key id and secret the server accepts (moto takes any).
pub const S3_TEST_KEY: (&str, &str) = ("tidings-test", "tidings-test-secret");

/// A moto S3 server on a local port, for the tests of object storage:
/// started by [`S3Server::start`], killed on drop. moto is installed from
/// PyPI (`pip install 'moto[server]'`; `scripts/test` does it in a
/// virtual environment and sets `TIDINGS_MOTO_SERVER`). Chosen because it
/// installs from a registry this project reaches, starts in a second, and
/// speaks the S3 requests `object_store` makes (put, get, list, delete).
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    addr: SocketAddr,
}

impl S3Server {
    /// Starts a server on a free local port and creates `bucket` in it.
    ///
    /// # Panics
    ///
    /// When moto cannot be found or started, naming how to install it.
    #[must_use]
    pub fn start(bucket: &str) -> Self {
        Self::start_on(free_port(), bucket)
    }

    /// Starts a server on `port` (one a test held free, to start a store
    /// where a sink already points) and creates `bucket` in it.
    ///
    /// # Panics
    ///
    /// As [`S3Server::start`].
    #[must_use]
    pub fn start_on(port: u16, bucket: &str) -> Self {
        let program = std::env::var("TIDINGS_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "the object storage tests need moto's S3 server, but {program:?} could not be started ({e}); \
                     install it with `pip install 'moto[server]'` or run `scripts/test`, which installs it \
                     and sets TIDINGS_MOTO_SERVER"
                )
            });
        let server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while request(server.addr, "GET", "/").is_none() {
            assert!(
                Instant::now() < deadline,
                "moto's S3 server did not answer on {} within 30 s",
                server.addr
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let created = request(server.addr, "PUT", &format!("/{bucket}"));
        assert!(
            created
                .as_deref()
                .is_some_and(|s| s.starts_with("HTTP/1.1 200")),
            "moto did not create bucket {bucket}: {created:?}"
        );
        server
    }

    /// `http://127.0.0.1:PORT`, the endpoint to give a client.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now.
#[must_use]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// One bodiless HTTP/1.1 request; the response's head, if any answered.
fn request(addr: SocketAddr, method: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    (!response.is_empty()).then(|| String::from_utf8_lossy(&response).into_owned())
}
