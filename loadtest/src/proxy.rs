//! A loopback TCP proxy in front of PostgreSQL that can take the database away in two ways:
//! **down** (every connection closed, new ones closed at once) and **stalled** (connections
//! stay open but no byte is forwarded, new ones are accepted and held), each until restored.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Mode {
    /// New connections are closed at once.
    refusing: bool,
    /// No byte is forwarded.
    stalled: bool,
    /// Bumped by every cut; connections opened before a cut end.
    cuts: u64,
}

/// The proxy's controls. Dropping it stops it (open connections end with it).
pub struct DbProxy {
    port: u16,
    mode: watch::Sender<Mode>,
    accepted: Arc<AtomicU64>,
    acceptor: JoinHandle<()>,
}

impl DbProxy {
    /// Forwards 127.0.0.1:<ephemeral> to `target` (`host:port`).
    pub async fn start(target: String) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind the database proxy")?;
        let port = listener.local_addr()?.port();
        let (mode, _) = watch::channel(Mode::default());
        let accepted = Arc::new(AtomicU64::new(0));
        let acceptor = tokio::spawn(accept(listener, target, mode.subscribe(), accepted.clone()));
        Ok(DbProxy {
            port,
            mode,
            accepted,
            acceptor,
        })
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Database down: closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.mode.send_modify(|mode| {
            mode.refusing = true;
            mode.cuts += 1;
        });
    }

    /// Database stalled: connections stay open, bytes stop.
    pub fn stall(&self) {
        self.mode.send_modify(|mode| mode.stalled = true);
    }

    /// Forwards again (after [`DbProxy::cut`] or [`DbProxy::stall`]).
    pub fn restore(&self) {
        self.mode.send_modify(|mode| {
            mode.refusing = false;
            mode.stalled = false;
        });
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        // Ends every open connection too.
        self.mode.send_modify(|mode| mode.cuts += 1);
    }
}

async fn accept(
    listener: TcpListener,
    target: String,
    mode: watch::Receiver<Mode>,
    accepted: Arc<AtomicU64>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        if mode.borrow().refusing {
            drop(client);
            continue;
        }
        let target = target.clone();
        let mode = mode.clone();
        tokio::spawn(async move {
            let cuts_at_open = mode.borrow().cuts;
            let Ok(server) = TcpStream::connect(&target).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let mut cut = mode.clone();
            tokio::select! {
                _ = async {
                    tokio::join!(
                        pump(client_read, server_write, mode.clone()),
                        pump(server_read, client_write, mode.clone()),
                    )
                } => {}
                _ = cut.wait_for(|mode| mode.cuts != cuts_at_open) => {}
            }
        });
    }
}

/// Copies one direction, holding bytes back while the proxy is stalled.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if mode.wait_for(|mode| !mode.stalled).await.is_err() {
            break;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
