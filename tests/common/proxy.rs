//! A TCP proxy of the tests' own, put between an engine and PostgreSQL to stage what networks and
//! servers do: it can stall (hold every byte, connections open) and cut (close every connection
//! and refuse new ones), then heal.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

#[derive(Default)]
struct Switches {
    stalled: AtomicBool,
    cut: AtomicBool,
    /// Connections accepted and passed on.
    passed: AtomicU64,
}

pub struct Proxy {
    pub port: u16,
    switches: Arc<Switches>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Proxy {
    /// Listens on a free loopback port and passes each connection on to `upstream`. It runs on a
    /// thread of its own, so that a test's engine may block its own thread on the database.
    pub fn start(upstream: String) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let switches = Arc::new(Switches::default());
        let links: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (s, l) = (switches.clone(), links.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("listener");
                let accepting = async {
                    while let Ok((client, _)) = listener.accept().await {
                        if s.cut.load(Ordering::SeqCst) {
                            drop(client);
                            continue;
                        }
                        let Ok(server) = TcpStream::connect(&upstream).await else {
                            continue;
                        };
                        s.passed.fetch_add(1, Ordering::SeqCst);
                        let passing = link(client, server, s.clone());
                        l.lock().expect("links").push(passing);
                    }
                };
                tokio::select! {
                    _ = accepting => {}
                    _ = stopped => {}
                }
            });
        });
        Proxy {
            port,
            switches,
            links,
            stop: Some(stop),
        }
    }

    /// Holds every byte in both directions; connections stay open.
    pub fn stall(&self) {
        self.switches.stalled.store(true, Ordering::SeqCst);
    }

    /// Closes every connection, and every new one at once.
    pub fn cut(&self) {
        self.switches.cut.store(true, Ordering::SeqCst);
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    /// Passes bytes and connections again.
    pub fn heal(&self) {
        self.switches.cut.store(false, Ordering::SeqCst);
        self.switches.stalled.store(false, Ordering::SeqCst);
    }

    /// Connections passed on so far.
    pub fn connections(&self) -> u64 {
        self.switches.passed.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn link(client: TcpStream, server: TcpStream, switches: Arc<Switches>) -> AbortHandle {
    tokio::spawn(async move {
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let up = pass(&mut client_read, &mut server_write, &switches);
        let down = pass(&mut server_read, &mut client_write, &switches);
        tokio::select! {
            _ = up => {}
            _ = down => {}
        }
    })
    .abort_handle()
}

async fn pass(
    from: &mut (impl AsyncReadExt + Unpin),
    to: &mut (impl AsyncWriteExt + Unpin),
    switches: &Switches,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let Ok(n) = from.read(&mut buffer).await else {
            return;
        };
        if n == 0 {
            return;
        }
        while switches.stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// `url` (a PostgreSQL URL) with its host and port replaced by the proxy's; and the address the
/// proxy should pass connections on to.
pub fn through(url: &str, port: u16) -> (String, String) {
    let (scheme_user, rest) = url.split_once('@').expect("a user@host URL");
    let (host, path) = rest.split_once('/').expect("a database path");
    let upstream = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    (format!("{scheme_user}@127.0.0.1:{port}/{path}"), upstream)
}
