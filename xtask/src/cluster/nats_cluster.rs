//! `--nats cluster`: three `nats-server` processes with JetStream, started
//! by the command itself on free loopback ports, routed to each other in
//! one cluster, each with its own store under the run's work directory.
//! A node can be killed with `kill -9` and restarted on its store; every
//! node still running is killed when the set is dropped, whatever failed.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{free_addr, tail};

/// Where `nats-server` is looked for when it is not on `PATH`.
const NATS_SERVER: &str = "/usr/sbin/nats-server";
/// The cluster's name.
const CLUSTER_NAME: &str = "tidings-cluster";
/// How long a node may take to listen and to join the cluster.
const START_LIMIT: Duration = Duration::from_secs(30);

/// One node: its ports, store and log stay across restarts.
struct Node {
    /// The server name (`n1`, `n2`, `n3`), as the stream's leader is named.
    name: String,
    client: SocketAddr,
    route: SocketAddr,
    monitor: SocketAddr,
    store: PathBuf,
    log: PathBuf,
    process: Option<Child>,
}

/// The three nodes.
pub(super) struct NatsCluster {
    binary: PathBuf,
    nodes: Vec<Node>,
}

impl NatsCluster {
    /// Starts three nodes under `work` and waits until each listens and
    /// sees the two others as routes.
    pub(super) fn start(work: &Path) -> Result<Self, String> {
        let binary = which_nats_server()?;
        let mut nodes = Vec::new();
        for n in 1..=3 {
            nodes.push(Node {
                name: format!("n{n}"),
                client: free_addr()?,
                route: free_addr()?,
                monitor: free_addr()?,
                store: work.join(format!("nats-{n}")),
                log: work.join(format!("nats-{n}.log")),
                process: None,
            });
        }
        let mut cluster = Self { binary, nodes };
        for index in 0..3 {
            cluster.spawn(index)?;
        }
        for index in 0..3 {
            cluster.wait_ready(index)?;
        }
        Ok(cluster)
    }

    /// The client URL of every node.
    pub(super) fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("nats://{}", node.client))
            .collect()
    }

    /// The index of the node named `name`.
    pub(super) fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name == name)
    }

    /// The server name of node `index`.
    pub(super) fn name(&self, index: usize) -> &str {
        &self.nodes[index].name
    }

    /// `kill -9` of node `index` (SIGKILL, then reaped).
    pub(super) fn kill9(&mut self, index: usize) -> Result<(), String> {
        let node = &mut self.nodes[index];
        if let Some(mut child) = node.process.take() {
            child
                .kill()
                .and_then(|()| child.wait().map(drop))
                .map_err(|e| format!("cannot kill nats-server {}: {e}", node.name))?;
        }
        Ok(())
    }

    /// Starts node `index` again on its store and ports, and waits until it
    /// is back in the cluster.
    pub(super) fn restart(&mut self, index: usize) -> Result<(), String> {
        self.spawn(index)?;
        self.wait_ready(index)
    }

    fn spawn(&mut self, index: usize) -> Result<(), String> {
        let routes: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(n, _)| *n != index)
            .map(|(_, node)| format!("nats://{}", node.route))
            .collect();
        let node = &mut self.nodes[index];
        std::fs::create_dir_all(&node.store)
            .map_err(|e| format!("cannot create {}: {e}", node.store.display()))?;
        let port = |addr: SocketAddr| addr.port().to_string();
        let child = Command::new(&self.binary)
            .args(["-a", "127.0.0.1", "-p", &port(node.client)])
            .args(["-n", &node.name, "-js", "-sd"])
            .arg(&node.store)
            .args(["--cluster_name", CLUSTER_NAME])
            .args(["--cluster", &format!("nats://{}", node.route)])
            .args(["--routes", &routes.join(",")])
            .args(["-m", &port(node.monitor)])
            .arg("-l")
            .arg(&node.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        node.process = Some(child);
        Ok(())
    }

    /// Waits until node `index` takes clients and has a route to each of
    /// the two others (`/routez` of its monitoring port).
    fn wait_ready(&mut self, index: usize) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let node = &mut self.nodes[index];
            if let Some(child) = node.process.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                node.process = None;
                return Err(format!(
                    "nats-server {} exited at start ({status}); its log {}:\n{}",
                    node.name,
                    node.log.display(),
                    tail(&node.log)
                ));
            }
            if TcpStream::connect(node.client).is_ok() && routes(node.monitor) >= 2 {
                return Ok(());
            }
            if started.elapsed() > START_LIMIT {
                return Err(format!(
                    "nats-server {} did not join the cluster within {START_LIMIT:?}; its log {}:\n{}",
                    node.name,
                    node.log.display(),
                    tail(&node.log)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            let _ = self.kill9(index);
        }
    }
}

/// `nats-server` on `PATH`, else at [`NATS_SERVER`].
fn which_nats_server() -> Result<PathBuf, String> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    });
    on_path
        .or_else(|| Some(PathBuf::from(NATS_SERVER)).filter(|p| p.is_file()))
        .ok_or_else(|| {
            format!("nats-server is neither on PATH nor at {NATS_SERVER}; install it to run --nats cluster")
        })
}

/// The `num_routes` of `/routez` at `monitor` (0 when it does not answer).
fn routes(monitor: SocketAddr) -> u64 {
    let Ok(mut connection) = crate::harness::Connection::open(monitor) else {
        return 0;
    };
    let request = format!("GET /routez HTTP/1.1\r\nHost: {monitor}\r\n\r\n");
    match connection.request(request.as_bytes()) {
        Ok((200, body)) => serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["num_routes"].as_u64())
            .unwrap_or(0),
        _ => 0,
    }
}
