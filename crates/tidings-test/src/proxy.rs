//! `CuttableProxy`: a TCP proxy on loopback in front of a real service, for
//! outage tests: cut every connection, refuse new ones, then restore.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy on 127.0.0.1 forwarding to `upstream`, on a thread and
/// runtime of its own (so tests that block on a flush never starve it).
///
/// [`CuttableProxy::cut`] closes every open connection and closes new ones
/// as soon as they are accepted, as a dead link or a restarting service
/// would; [`CuttableProxy::restore`] forwards again.
#[derive(Debug)]
pub struct CuttableProxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
    accepted: Arc<AtomicUsize>,
}

impl CuttableProxy {
    /// Starts a proxy to `upstream` (such as `"127.0.0.1:5432"`).
    ///
    /// # Panics
    ///
    /// If no loopback port or thread can be had.
    #[must_use]
    pub fn start(upstream: &str) -> Self {
        let upstream = upstream.to_owned();
        let up = Arc::new(AtomicBool::new(true));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (cuts, _) = watch::channel(0_u64);
        let (ready, addr) = std::sync::mpsc::channel();
        let (accepting, count, cut_signal) = (up.clone(), accepted.clone(), cuts.clone());
        std::thread::Builder::new()
            .name("tidings-test-proxy".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind the proxy");
                    ready
                        .send(listener.local_addr().expect("proxy address"))
                        .expect("report the address");
                    loop {
                        let Ok((mut client, _)) = listener.accept().await else {
                            continue;
                        };
                        if !accepting.load(Ordering::SeqCst) {
                            drop(client); // refused while cut
                            continue;
                        }
                        count.fetch_add(1, Ordering::SeqCst);
                        let mut cut = cut_signal.subscribe();
                        let upstream = upstream.clone();
                        tokio::spawn(async move {
                            let Ok(mut server) = TcpStream::connect(&upstream).await else {
                                return;
                            };
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                _ = cut.changed() => {}
                            }
                            // Dropping both ends closes the connection.
                        });
                    }
                });
            })
            .expect("proxy thread");
        Self {
            addr: addr.recv().expect("the proxy's address"),
            up,
            cuts,
            accepted,
        }
    }

    /// The proxy's address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Closes every open connection and refuses new ones until [`CuttableProxy::restore`].
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Forwards connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// Connections forwarded so far.
    #[must_use]
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    use super::*;

    /// An upstream that echoes every connection.
    fn echo_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut buf = [0; 64];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 || stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn echoes(stream: &mut TcpStream) -> bool {
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0; 4];
        stream.write_all(b"ping").is_ok() && stream.read_exact(&mut buf).is_ok() && &buf == b"ping"
    }

    #[test]
    fn forwards_cuts_refuses_and_restores() {
        let proxy = CuttableProxy::start(&echo_server());
        let mut open = TcpStream::connect(proxy.addr()).unwrap();
        assert!(echoes(&mut open));
        proxy.cut();
        assert!(!echoes(&mut open), "open connections are closed by a cut");
        let mut refused = TcpStream::connect(proxy.addr()).unwrap();
        assert!(
            !echoes(&mut refused),
            "new connections are closed while cut"
        );
        proxy.restore();
        let mut again = TcpStream::connect(proxy.addr()).unwrap();
        assert!(echoes(&mut again));
        assert_eq!(proxy.accepted(), 2);
    }
}
