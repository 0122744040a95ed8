//! A loopback TCP proxy a test can cut (closing every connection and refusing new ones) and
//! restore, to make the database unreachable mid-run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The proxy's controls.
pub struct Proxy {
    pub port: u16,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
    open: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
}

impl Proxy {
    /// Starts forwarding to `world`'s gateway (to cut and restore the way to it).
    pub async fn before(world: &super::world::World) -> Self {
        Self::start(world.server.base.trim_start_matches("http://").to_owned()).await
    }

    /// Starts forwarding 127.0.0.1:<ephemeral> to `target`.
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let open = Arc::new(AtomicBool::new(true));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (generation, _) = watch::channel(0u64);
        let accept_open = open.clone();
        let accept_count = accepted.clone();
        let accept_generation = generation.subscribe();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                accept_count.fetch_add(1, Ordering::SeqCst);
                if !accept_open.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let mut cut = accept_generation.clone();
                cut.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy {
            port,
            accepted,
            open,
            generation,
        }
    }

    /// Closes every proxied connection and refuses new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.generation.send_modify(|generation| *generation += 1);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}
