//! A loopback HTTP CONNECT proxy that records what it tunnelled.
//!
//! Each tunnel is recorded with the `host:port` the client asked for and the
//! `Proxy-Authorization` header it sent. Names ending in `.test` resolve to 127.0.0.1
//! here, in the proxy, as a real proxy resolves names for its clients: a relay that
//! reaches such a host went through the proxy. With [`ConnectProxy::require`] set, a
//! CONNECT without that exact header is answered 407.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::wait::{Changes, wait_until};

/// One CONNECT request the proxy got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    /// The request target, `host:port`.
    pub authority: String,
    /// The `Proxy-Authorization` header, when sent.
    pub authorization: Option<String>,
    /// Whether the proxy opened the tunnel (false: 407 or the target was down).
    pub opened: bool,
}

#[derive(Default)]
struct State {
    /// Every CONNECT (or other request) seen, in order.
    tunnels: Mutex<Vec<Tunnel>>,
    /// `Some(header)`: answer 407 to a CONNECT without exactly this `Proxy-Authorization`.
    required: Mutex<Option<String>>,
    /// Bumped on every request, for waits.
    changes: Changes,
}

pub struct ConnectProxy {
    /// Where it listens: the proxy URL's host and port.
    addr: SocketAddr,
    /// What it recorded, shared with its tasks.
    state: Arc<State>,
    /// The accept loop, aborted on drop.
    task: JoinHandle<()>,
}

impl ConnectProxy {
    pub async fn start() -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let s = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(tcp, s.clone()));
            }
        });
        ConnectProxy { addr, state, task }
    }

    /// Only CONNECTs with `Proxy-Authorization: {header}` are tunnelled.
    pub fn require(&self, header: &str) {
        *self.state.required.lock().unwrap() = Some(header.to_owned());
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://USERINFO@127.0.0.1:PORT`.
    pub fn url_with(&self, userinfo: &str) -> String {
        format!("http://{userinfo}@{}", self.addr)
    }

    pub fn tunnels(&self) -> Vec<Tunnel> {
        self.state.tunnels.lock().unwrap().clone()
    }

    /// Waits until `n` CONNECT requests have been seen.
    pub async fn wait_for_tunnels(&self, n: usize, deadline: std::time::Duration) -> Vec<Tunnel> {
        wait_until(
            format!("{n} CONNECT request(s) at the proxy"),
            deadline,
            &self.state.changes,
            || {
                let tunnels = self.tunnels();
                if tunnels.len() >= n {
                    Ok(tunnels)
                } else {
                    Err(format!("{tunnels:?}"))
                }
            },
        )
        .await
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut client: TcpStream, state: Arc<State>) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        match client.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
        if head.len() > 16 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let mut parts = request_line.split(' ');
    let (method, authority) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let authorization = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("proxy-authorization")
            .then(|| value.trim().to_owned())
    });
    let mut tunnel = Tunnel {
        authority: authority.to_owned(),
        authorization: authorization.clone(),
        opened: false,
    };
    let record = |tunnel: Tunnel| {
        state.tunnels.lock().unwrap().push(tunnel);
        state.changes.bump();
    };
    if method != "CONNECT" {
        record(tunnel);
        let _ = client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            .await;
        return;
    }
    let required = state.required.lock().unwrap().clone();
    if required.is_some() && required != authorization {
        record(tunnel);
        let _ = client
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    }
    let (host, port) = authority.rsplit_once(':').unwrap_or((authority, "443"));
    let host = if host.ends_with(".test") {
        "127.0.0.1"
    } else {
        host
    };
    let target = format!("{host}:{port}");
    let Ok(mut upstream) = TcpStream::connect(target.as_str()).await else {
        record(tunnel);
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    tunnel.opened = true;
    record(tunnel);
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_ok()
    {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
}
