//! A stand-in for the ScrapeBadger WebSocket stream (`/v1/twitter/stream`).
//!
//! It accepts any number of connections on 127.0.0.1 and records each handshake (request
//! URI and headers). Frames the test pushes go to every open connection. The test can
//! also make the server close connections, drop them without a close frame, go silent
//! (keep the socket but neither send nor read, so pings go unanswered), refuse
//! handshakes with an HTTP status, send pings itself at an interval like the real server,
//! and stop listening and come back on the same port.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use super::wait::{Changes, summarize, wait_until};

/// The path the relay is configured with; the contract's stream path.
pub const STREAM_PATH: &str = "/v1/twitter/stream";

/// One WebSocket handshake the server saw, accepted or refused.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// The request target: path and query, e.g. `/v1/twitter/stream?api_key=KEY`.
    pub uri: String,
    /// Request headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// False when the server answered with an HTTP error instead of upgrading.
    pub accepted: bool,
    pub at: Instant,
}

impl Handshake {
    /// The value of a query parameter of the request URI, if present.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.uri.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| v.to_string())
        })
    }

    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("")
    }
}

/// What a connection task is told to do.
enum Cmd {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    /// Send a close frame, then end.
    Close,
    /// Stop sending and reading for good.
    Silent,
}

/// An open connection, as the server side sees it.
struct Conn {
    tx: mpsc::UnboundedSender<Cmd>,
    /// Silent connections take no frames; `send_*` does not count them.
    silent: Arc<AtomicBool>,
    /// Its task: aborted to drop the TCP connection without a close frame.
    task: JoinHandle<()>,
}

/// Everything the server records and every switch a test can flip.
struct State {
    handshakes: Mutex<Vec<Handshake>>,
    /// Open connections by id.
    conns: Mutex<Vec<(u64, Conn)>>,
    /// Connections whose handshake completed and that were ready for frames, ever.
    accepted: AtomicUsize,
    /// Pong payloads received from clients, in order.
    pongs: Mutex<Vec<Vec<u8>>>,
    /// Pings received from clients (the relay may keep the connection alive itself).
    client_pings: AtomicUsize,
    /// Text frames received from clients.
    client_texts: Mutex<Vec<String>>,
    /// `Some(status)`: refuse the next handshakes with this HTTP status.
    reject: Mutex<Option<u16>>,
    /// Send a ping to each connection at this interval (the real server does, every 30 s).
    keepalive: watch::Sender<Option<Duration>>,
    next_id: AtomicU64,
    /// Tasks still running a handshake, so that `stop` can end them too.
    pending: Mutex<Vec<JoinHandle<()>>>,
    changes: Changes,
}

impl Default for State {
    fn default() -> Self {
        State {
            handshakes: Mutex::default(),
            conns: Mutex::default(),
            accepted: AtomicUsize::default(),
            pongs: Mutex::default(),
            client_pings: AtomicUsize::default(),
            client_texts: Mutex::default(),
            reject: Mutex::default(),
            keepalive: watch::Sender::new(None),
            next_id: AtomicU64::default(),
            pending: Mutex::default(),
            changes: Changes::default(),
        }
    }
}

/// The mock stream server. Dropping it stops everything it runs.
pub struct StreamServer {
    addr: SocketAddr,
    state: Arc<State>,
    /// The accept loop; `None` while stopped.
    acceptor: Mutex<Option<JoinHandle<()>>>,
}

impl StreamServer {
    /// Starts listening on 127.0.0.1 on a free port.
    pub async fn start() -> StreamServer {
        let listener = bind(0).expect("bind the stream server");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let acceptor = tokio::spawn(accept_loop(listener, state.clone()));
        StreamServer {
            addr,
            state,
            acceptor: Mutex::new(Some(acceptor)),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT/v1/twitter/stream`, for `[source] url`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{}", self.addr, STREAM_PATH)
    }

    /// Bumped on every handshake, connection change, pong and client frame.
    pub fn changes(&self) -> &Changes {
        &self.state.changes
    }

    /// Every handshake so far, refused ones included, in order.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.state.handshakes.lock().unwrap().clone()
    }

    /// Connections accepted so far (ready for frames), closed ones included.
    pub fn connections(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now, silent ones included.
    pub fn open_connections(&self) -> usize {
        self.state.conns.lock().unwrap().len()
    }

    /// Waits until `n` connections in all have been accepted and are ready for frames;
    /// returns the accepted handshakes.
    pub async fn wait_for_connections(&self, n: usize, deadline: Duration) -> Vec<Handshake> {
        wait_until(
            format!("{n} accepted stream connection(s)"),
            deadline,
            &self.state.changes,
            || {
                let accepted = self.connections();
                if accepted >= n {
                    Ok(self
                        .handshakes()
                        .into_iter()
                        .filter(|h| h.accepted)
                        .collect())
                } else {
                    Err(format!(
                        "{accepted} accepted; handshakes: {}",
                        summarize(self.handshake_summary(), 5)
                    ))
                }
            },
        )
        .await
    }

    /// Waits until `n` handshakes in all (accepted or refused) have been seen.
    pub async fn wait_for_handshakes(&self, n: usize, deadline: Duration) -> Vec<Handshake> {
        wait_until(
            format!("{n} stream handshake(s)"),
            deadline,
            &self.state.changes,
            || {
                let all = self.handshakes();
                if all.len() >= n {
                    Ok(all)
                } else {
                    Err(summarize(self.handshake_summary(), 5))
                }
            },
        )
        .await
    }

    fn handshake_summary(&self) -> Vec<String> {
        self.handshakes()
            .iter()
            .map(|h| format!("{} {}", if h.accepted { "ok" } else { "refused" }, h.path()))
            .collect()
    }

    /// Sends a text frame to every open, non-silent connection; returns how many.
    pub fn send_text(&self, text: &str) -> usize {
        self.broadcast(|| Cmd::Text(text.to_string()))
    }

    /// Sends an event as a text frame (its `to_string()`); returns the exact text sent,
    /// which is what an http target must receive.
    pub fn send_event(&self, event: &serde_json::Value) -> String {
        let text = event.to_string();
        self.send_text(&text);
        text
    }

    pub fn send_binary(&self, bytes: &[u8]) -> usize {
        self.broadcast(|| Cmd::Binary(bytes.to_vec()))
    }

    pub fn send_ping(&self, payload: &[u8]) -> usize {
        self.broadcast(|| Cmd::Ping(payload.to_vec()))
    }

    /// Pong payloads received so far, from any connection.
    pub fn pongs(&self) -> Vec<Vec<u8>> {
        self.state.pongs.lock().unwrap().clone()
    }

    /// Waits for any pong; returns its payload.
    pub async fn wait_for_pong(&self, deadline: Duration) -> Vec<u8> {
        wait_until("a pong", deadline, &self.state.changes, || {
            self.pongs()
                .last()
                .cloned()
                .ok_or_else(|| "no pong yet".to_string())
        })
        .await
    }

    /// Waits for a pong carrying exactly `payload`.
    pub async fn wait_for_pong_with(&self, payload: &[u8], deadline: Duration) {
        wait_until(
            format!("a pong with payload {:?}", String::from_utf8_lossy(payload)),
            deadline,
            &self.state.changes,
            || {
                let pongs = self.pongs();
                if pongs.iter().any(|p| p == payload) {
                    Ok(())
                } else {
                    Err(format!("pongs: {pongs:?}"))
                }
            },
        )
        .await
    }

    /// Pings received from clients.
    pub fn client_pings(&self) -> usize {
        self.state.client_pings.load(Ordering::SeqCst)
    }

    /// Text frames received from clients.
    pub fn client_texts(&self) -> Vec<String> {
        self.state.client_texts.lock().unwrap().clone()
    }

    /// Sends a close frame (1001 going away) on every open connection.
    pub fn close_connections(&self) {
        let conns = self.state.conns.lock().unwrap();
        for (_, conn) in conns.iter() {
            let _ = conn.tx.send(Cmd::Close);
        }
    }

    /// Drops every open connection's TCP socket without a close frame.
    pub fn drop_connections(&self) {
        let conns = std::mem::take(&mut *self.state.conns.lock().unwrap());
        for (_, conn) in conns {
            conn.task.abort();
        }
        self.state.changes.bump();
    }

    /// Makes every open connection silent for good: the socket stays open, nothing is
    /// sent (frames pushed later are discarded) and nothing is read, so pings from the
    /// client go unanswered. New connections are not silent.
    pub fn go_silent(&self) {
        let conns = self.state.conns.lock().unwrap();
        for (_, conn) in conns.iter() {
            conn.silent.store(true, Ordering::SeqCst);
            let _ = conn.tx.send(Cmd::Silent);
        }
    }

    /// `Some(status)`: answer the following handshakes with this HTTP status instead of
    /// upgrading (401 for a bad key). `None`: accept again.
    pub fn reject_handshakes(&self, status: Option<u16>) {
        *self.state.reject.lock().unwrap() = status;
    }

    /// Ping every connection at this interval (as the real server does every 30 s), or
    /// not at all (the default). Applies to open connections at once.
    pub fn keepalive(&self, every: Option<Duration>) {
        self.state.keepalive.send_replace(every);
    }

    /// Stops listening and drops every connection: clients get "connection refused"
    /// until [`StreamServer::restart`].
    pub async fn stop(&self) {
        let acceptor = self.acceptor.lock().unwrap().take();
        if let Some(acceptor) = acceptor {
            acceptor.abort();
            let _ = acceptor.await;
        }
        let pending = std::mem::take(&mut *self.state.pending.lock().unwrap());
        for task in pending {
            task.abort();
        }
        self.drop_connections();
    }

    /// Listens again on the same port after [`StreamServer::stop`].
    pub async fn restart(&self) {
        assert!(
            self.acceptor.lock().unwrap().is_none(),
            "restart() while the stream server is running"
        );
        let listener = bind_again(self.addr.port()).await;
        let acceptor = tokio::spawn(accept_loop(listener, self.state.clone()));
        *self.acceptor.lock().unwrap() = Some(acceptor);
    }

    fn broadcast(&self, cmd: impl Fn() -> Cmd) -> usize {
        let conns = self.state.conns.lock().unwrap();
        conns
            .iter()
            .filter(|(_, c)| !c.silent.load(Ordering::SeqCst))
            .filter(|(_, c)| c.tx.send(cmd()).is_ok())
            .count()
    }
}

impl Drop for StreamServer {
    fn drop(&mut self) {
        if let Some(acceptor) = self.acceptor.lock().unwrap().take() {
            acceptor.abort();
        }
        let pending = std::mem::take(&mut *self.state.pending.lock().unwrap());
        for task in pending {
            task.abort();
        }
        let conns = std::mem::take(&mut *self.state.conns.lock().unwrap());
        for (_, conn) in conns {
            conn.task.abort();
        }
    }
}

/// Binds 127.0.0.1:`port` (0: any free port) with SO_REUSEADDR, so that the same port
/// can be bound again right after a stop.
pub(crate) fn bind(port: u16) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(1024)
}

/// Binds the same port again, retrying briefly if the old socket is still going away.
pub(crate) async fn bind_again(port: u16) -> TcpListener {
    let start = Instant::now();
    loop {
        match bind(port) {
            Ok(listener) => return listener,
            Err(e) if start.elapsed() < Duration::from_secs(5) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("could not listen on 127.0.0.1:{port} again: {e}"),
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let task = tokio::spawn(serve_connection(tcp, state.clone()));
        let mut pending = state.pending.lock().unwrap();
        pending.retain(|t| !t.is_finished());
        pending.push(task);
    }
}

async fn serve_connection(tcp: TcpStream, state: Arc<State>) {
    let reject = *state.reject.lock().unwrap();
    let recorder = state.clone();
    // The error type is tungstenite's; its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        recorder.handshakes.lock().unwrap().push(Handshake {
            uri: req.uri().to_string(),
            headers,
            accepted: reject.is_none(),
            at: Instant::now(),
        });
        recorder.changes.bump();
        match reject {
            None => Ok(resp),
            Some(status) => Err(http::Response::builder()
                .status(status)
                .body(Some("unauthorized: invalid api_key".to_string()))
                .unwrap()),
        }
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };

    let id = state.next_id.fetch_add(1, Ordering::SeqCst);
    let (tx, rx) = mpsc::unbounded_channel();
    let silent = Arc::new(AtomicBool::new(false));
    {
        // The frames loop runs in its own task so that `drop_connections` can abort it
        // (dropping the socket). It is registered under the lock, before it can end and
        // unregister itself.
        let mut conns = state.conns.lock().unwrap();
        let task = tokio::spawn(frames_loop(id, ws, rx, state.clone()));
        conns.push((id, Conn { tx, silent, task }));
    }
    state.accepted.fetch_add(1, Ordering::SeqCst);
    state.changes.bump();
}

/// Forgets a connection when its frames loop ends, however it ends (abort included).
struct Unregister {
    id: u64,
    state: Arc<State>,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        let removed = {
            let mut conns = self.state.conns.lock().unwrap();
            let before = conns.len();
            // Dropping the entry drops this task's own JoinHandle: that detaches, no more.
            conns.retain(|(cid, _)| *cid != self.id);
            before != conns.len()
        };
        if removed {
            self.state.changes.bump();
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn frames_loop(id: u64, mut ws: Ws, mut rx: mpsc::UnboundedReceiver<Cmd>, state: Arc<State>) {
    let _unregister = Unregister {
        id,
        state: state.clone(),
    };
    let mut keepalive_rx = state.keepalive.subscribe();
    let mut last_ping = tokio::time::Instant::now();
    loop {
        let keepalive = *keepalive_rx.borrow_and_update();
        let tick = async {
            match keepalive {
                Some(every) => tokio::time::sleep_until(last_ping + every).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            cmd = rx.recv() => {
                let sent = match cmd {
                    None => return,
                    Some(Cmd::Text(t)) => ws.send(Message::text(t)).await,
                    Some(Cmd::Binary(b)) => ws.send(Message::binary(b)).await,
                    Some(Cmd::Ping(p)) => ws.send(Message::Ping(Bytes::from(p))).await,
                    Some(Cmd::Close) => {
                        let _ = ws
                            .close(Some(CloseFrame {
                                code: CloseCode::Away,
                                reason: "server going away".into(),
                            }))
                            .await;
                        // Let the client answer the close, briefly, then drop the socket.
                        let _ = tokio::time::timeout(Duration::from_secs(1), async {
                            while let Some(Ok(_)) = ws.next().await {}
                        })
                        .await;
                        return;
                    }
                    Some(Cmd::Silent) => {
                        // Keep the socket, touch nothing; discard what is pushed.
                        while rx.recv().await.is_some() {}
                        std::future::pending::<()>().await;
                        return;
                    }
                };
                if sent.is_err() {
                    return;
                }
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Pong(p))) => {
                    state.pongs.lock().unwrap().push(p.to_vec());
                    state.changes.bump();
                }
                Some(Ok(Message::Ping(_))) => {
                    // tungstenite queues the pong; it goes out with the next read or write.
                    state.client_pings.fetch_add(1, Ordering::SeqCst);
                    state.changes.bump();
                }
                Some(Ok(Message::Text(t))) => {
                    state.client_texts.lock().unwrap().push(t.to_string());
                    state.changes.bump();
                }
                Some(Ok(Message::Close(_))) => {
                    // Answer the close (tungstenite does on the next poll), then end.
                    let _ = ws.flush().await;
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
            Ok(()) = keepalive_rx.changed() => {}
            _ = tick => {
                last_ping = tokio::time::Instant::now();
                if ws.send(Message::Ping(Bytes::from_static(b"keepalive"))).await.is_err() {
                    return;
                }
            }
        }
    }
}
