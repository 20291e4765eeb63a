//! A webhook endpoint on 127.0.0.1 that records every request and answers as told.
//!
//! By default it answers 200 with an empty body. A test can switch it at any time to a
//! fixed reply, a script of replies (used first, one per request, then the current
//! behaviour), stalling (hold every response for a while or until released),
//! throttling (at most N requests per period; 429 with `Retry-After` beyond that), or
//! take it down (refuse connections and cut the open ones) and bring it back up on the
//! same port.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State as AxumState;
use axum::response::Response;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::stream::{bind, bind_again};
use super::wait::{Changes, summarize, wait_until};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query: `/hook?wait=true`.
    pub uri: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// When its head arrived.
    pub arrived: Instant,
    /// The status the receiver answered (or will answer, for a held request; a request
    /// cut by `down` never gets it).
    pub status: u16,
}

impl Request {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 (lossy), for comparisons and messages.
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("request body is not JSON ({e}): {}", self.body_str()))
    }

    /// The body's `tweet_id`, when it is a JSON event that has one.
    pub fn tweet_id(&self) -> Option<String> {
        super::events::tweet_id(&self.body)
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// How long a reply is held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    No,
    For(Duration),
    /// Until [`Receiver::release`].
    UntilReleased,
}

/// One answer: status, headers, body, and how long to hold it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub hold: Hold,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            hold: Hold::No,
        }
    }

    pub fn ok() -> Reply {
        Reply::status(200)
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.as_bytes().to_vec();
        self
    }

    pub fn held_for(mut self, d: Duration) -> Reply {
        self.hold = Hold::For(d);
        self
    }

    pub fn until_released(mut self) -> Reply {
        self.hold = Hold::UntilReleased;
        self
    }
}

/// The behaviour once the script is used up.
#[derive(Debug, Clone)]
enum Mode {
    Reply(Reply),
    Throttle {
        max: usize,
        per: Duration,
        retry_after_secs: u64,
    },
}

/// What the handler and the test share.
struct State {
    requests: Mutex<Vec<Request>>,
    script: Mutex<VecDeque<Reply>>,
    mode: Mutex<Mode>,
    /// Arrival times of the requests let through in the throttle window.
    window: Mutex<VecDeque<Instant>>,
    /// 429s sent by the throttle.
    throttled: AtomicUsize,
    /// Bumped by `release`; a held request waits for a change after its arrival.
    release: watch::Sender<u64>,
    /// Accepted connections, so that `down` can cut them.
    conns: Mutex<Vec<Weak<Slot>>>,
    changes: Changes,
}

/// The mock webhook endpoint. Dropping it stops it.
pub struct Receiver {
    addr: SocketAddr,
    state: Arc<State>,
    /// The HTTP server; `None` while down.
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Receiver {
    /// Starts on 127.0.0.1 on a free port, answering 200 to everything.
    pub async fn start() -> Receiver {
        let listener = bind(0).expect("bind the receiver");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            requests: Mutex::default(),
            script: Mutex::default(),
            mode: Mutex::new(Mode::Reply(Reply::ok())),
            window: Mutex::default(),
            throttled: AtomicUsize::new(0),
            release: watch::Sender::new(0),
            conns: Mutex::default(),
            changes: Changes::default(),
        });
        let server = spawn_server(listener, state.clone());
        Receiver {
            addr,
            state,
            server: Mutex::new(Some(server)),
        }
    }

    /// Starts already down: the port is known (for the config), connections are refused.
    pub async fn start_down() -> Receiver {
        let receiver = Receiver::start().await;
        receiver.down().await;
        receiver
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/hook`, for a target's `url`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The bodies of every request so far, as UTF-8.
    pub fn bodies(&self) -> Vec<String> {
        self.requests().iter().map(Request::body_str).collect()
    }

    /// The bodies of the requests answered 2xx, in arrival order.
    pub fn delivered_bodies(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.is_success())
            .map(Request::body_str)
            .collect()
    }

    /// The tweet ids of the requests answered 2xx, in arrival order (duplicates kept).
    pub fn delivered_tweet_ids(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.is_success())
            .filter_map(Request::tweet_id)
            .collect()
    }

    /// Waits until at least `n` requests have arrived; returns all of them.
    pub async fn wait_for_requests(&self, n: usize, deadline: Duration) -> Vec<Request> {
        self.wait_until(
            format!("{n} request(s) at {}", self.url()),
            deadline,
            |reqs| reqs.len() >= n,
        )
        .await
    }

    /// Waits until a request with exactly this body has arrived; returns all requests.
    pub async fn wait_for_body(&self, body: &str, deadline: Duration) -> Vec<Request> {
        self.wait_until(
            format!("a request with body {body} at {}", self.url()),
            deadline,
            |reqs| reqs.iter().any(|r| r.body == body.as_bytes()),
        )
        .await
    }

    /// Waits until every one of `ids` has been answered 2xx at least once; returns all
    /// requests.
    ///
    /// Each request's body is read once, when the wait first sees it: re-parsing every
    /// body on every arrival was quadratic, and with thousands of deliveries the check
    /// starved the receiver (it shares the test's runtime) until the deadline passed.
    pub async fn wait_for_tweet_ids(
        &self,
        ids: &std::collections::BTreeSet<String>,
        deadline: Duration,
    ) -> Vec<Request> {
        let url = self.url();
        let mut missing = ids.clone();
        let mut read = 0;
        wait_until(
            format!("{} tweet id(s) delivered at {url}", ids.len()),
            deadline,
            &self.state.changes,
            || {
                let count = {
                    let reqs = self.state.requests.lock().unwrap();
                    for r in reqs[read..].iter().filter(|r| r.is_success()) {
                        if let Some(id) = r.tweet_id() {
                            missing.remove(&id);
                        }
                    }
                    read = reqs.len();
                    read
                };
                if missing.is_empty() {
                    return Ok(self.requests());
                }
                Err(format!(
                    "{count} request(s); still missing {}",
                    summarize(&missing, 5)
                ))
            },
        )
        .await
    }

    /// Waits until `done` holds for the requests so far; returns them.
    pub async fn wait_until(
        &self,
        what: impl std::fmt::Display,
        deadline: Duration,
        done: impl Fn(&[Request]) -> bool,
    ) -> Vec<Request> {
        wait_until(what, deadline, &self.state.changes, || {
            let reqs = self.requests();
            if done(&reqs) {
                Ok(reqs)
            } else {
                Err(describe(&reqs))
            }
        })
        .await
    }

    /// Back to the default: 200 with an empty body, no script.
    pub fn always_ok(&self) {
        self.state.script.lock().unwrap().clear();
        self.set_mode(Mode::Reply(Reply::ok()));
    }

    /// Answer every request (after the script) with this status, headers and body.
    pub fn respond(&self, status: u16, headers: &[(&str, &str)], body: &str) {
        let mut reply = Reply::status(status).body(body);
        for (k, v) in headers {
            reply = reply.header(k, v);
        }
        self.set_mode(Mode::Reply(reply));
    }

    /// Answer the next requests with these replies, one each, then as before.
    pub fn script(&self, replies: Vec<Reply>) {
        *self.state.script.lock().unwrap() = replies.into();
    }

    /// Hold every response (after the script) until [`Receiver::release`], then 200.
    pub fn stall(&self) {
        self.set_mode(Mode::Reply(Reply::ok().until_released()));
    }

    /// Hold every response (after the script) for `d`, then 200.
    pub fn stall_for(&self, d: Duration) {
        self.set_mode(Mode::Reply(Reply::ok().held_for(d)));
    }

    /// Answer every held request, and 200 at once from now on.
    pub fn release(&self) {
        self.set_mode(Mode::Reply(Reply::ok()));
        self.state.release.send_modify(|g| *g += 1);
    }

    /// Let at most `max` requests through per sliding `per`; answer the others 429 with
    /// `Retry-After: retry_after_secs`.
    pub fn throttle(&self, max: usize, per: Duration, retry_after_secs: u64) {
        self.state.window.lock().unwrap().clear();
        self.set_mode(Mode::Throttle {
            max,
            per,
            retry_after_secs,
        });
    }

    /// 429s the throttle has sent.
    pub fn throttled(&self) -> usize {
        self.state.throttled.load(Ordering::SeqCst)
    }

    /// Stop listening (connections are refused) and cut every open connection, held
    /// requests included.
    pub async fn down(&self) {
        let server = self.server.lock().unwrap().take();
        if let Some(server) = server {
            server.abort();
            let _ = server.await;
        }
        let conns = std::mem::take(&mut *self.state.conns.lock().unwrap());
        for slot in conns.iter().filter_map(Weak::upgrade) {
            slot.kill();
        }
    }

    /// Listen again on the same port.
    pub async fn up(&self) {
        assert!(
            self.server.lock().unwrap().is_none(),
            "up() while the receiver is up"
        );
        let listener = bind_again(self.addr.port()).await;
        *self.server.lock().unwrap() = Some(spawn_server(listener, self.state.clone()));
    }

    pub fn is_up(&self) -> bool {
        self.server.lock().unwrap().is_some()
    }

    fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(server) = self.server.lock().unwrap().take() {
            server.abort();
        }
        let conns = std::mem::take(&mut *self.state.conns.lock().unwrap());
        for slot in conns.iter().filter_map(Weak::upgrade) {
            slot.kill();
        }
    }
}

/// A short description of the requests so far, for timeout messages.
fn describe(reqs: &[Request]) -> String {
    let lines: Vec<String> = reqs
        .iter()
        .map(|r| {
            let mut body = r.body_str();
            if body.len() > 80 {
                let cut = (0..=80).rev().find(|i| body.is_char_boundary(*i)).unwrap();
                body.truncate(cut);
                body.push_str("...");
            }
            format!("{} {} -> {} {body}", r.method, r.uri, r.status)
        })
        .collect();
    format!("{} request(s): {}", reqs.len(), summarize(&lines, 4))
}

fn spawn_server(listener: TcpListener, state: Arc<State>) -> JoinHandle<()> {
    let app = Router::new().fallback(handle).with_state(state.clone());
    let listener = CuttableListener {
        inner: listener,
        state,
    };
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

async fn handle(AxumState(state): AxumState<Arc<State>>, req: axum::extract::Request) -> Response {
    let arrived = Instant::now();
    let release_gen = *state.release.borrow();
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let reply = decide(&state, arrived);
    state.requests.lock().unwrap().push(Request {
        method: parts.method.to_string(),
        uri: parts
            .uri
            .path_and_query()
            .map(|pq| pq.to_string())
            .unwrap_or_else(|| parts.uri.to_string()),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        arrived,
        status: reply.status,
    });
    state.changes.bump();

    match reply.hold {
        Hold::No => {}
        Hold::For(d) => tokio::time::sleep(d).await,
        Hold::UntilReleased => {
            let mut rx = state.release.subscribe();
            let _ = rx.wait_for(|g| *g != release_gen).await;
        }
    }

    let mut response = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        response = response.header(k, v);
    }
    response
        .body(Body::from(reply.body))
        .expect("a valid scripted response")
}

/// The script first, then the mode.
fn decide(state: &State, arrived: Instant) -> Reply {
    if let Some(reply) = state.script.lock().unwrap().pop_front() {
        return reply;
    }
    let mode = state.mode.lock().unwrap().clone();
    match mode {
        Mode::Reply(reply) => reply,
        Mode::Throttle {
            max,
            per,
            retry_after_secs,
        } => {
            let mut window = state.window.lock().unwrap();
            while window
                .front()
                .is_some_and(|t| arrived.duration_since(*t) >= per)
            {
                window.pop_front();
            }
            if window.len() < max {
                window.push_back(arrived);
                Reply::ok()
            } else {
                state.throttled.fetch_add(1, Ordering::SeqCst);
                Reply::status(429)
                    .header("retry-after", &retry_after_secs.to_string())
                    .body("rate limited")
            }
        }
    }
}

/// A TCP listener whose connections the receiver can cut at once (for `down`), which
/// `axum::serve` alone cannot do: its connection tasks outlive the listener.
struct CuttableListener {
    inner: TcpListener,
    state: Arc<State>,
}

impl axum::serve::Listener for CuttableListener {
    type Io = CuttableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CuttableStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((tcp, addr)) => {
                    let _ = tcp.set_nodelay(true);
                    let slot = Arc::new(Slot {
                        tcp: Mutex::new(Some(tcp)),
                        wakers: Mutex::default(),
                    });
                    let mut conns = self.state.conns.lock().unwrap();
                    conns.retain(|w| w.strong_count() > 0);
                    conns.push(Arc::downgrade(&slot));
                    return (CuttableStream(slot), addr);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A connection's socket, which `kill` drops from under the server.
struct Slot {
    tcp: Mutex<Option<TcpStream>>,
    /// The read and write wakers, woken by `kill` so the server notices at once.
    wakers: Mutex<(Option<Waker>, Option<Waker>)>,
}

impl Slot {
    fn kill(&self) {
        drop(self.tcp.lock().unwrap().take());
        let (r, w) = std::mem::take(&mut *self.wakers.lock().unwrap());
        r.into_iter().chain(w).for_each(Waker::wake);
    }
}

struct CuttableStream(Arc<Slot>);

impl AsyncRead for CuttableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.0.wakers.lock().unwrap().0 = Some(cx.waker().clone());
        match self.0.tcp.lock().unwrap().as_mut() {
            Some(tcp) => Pin::new(tcp).poll_read(cx, buf),
            None => Poll::Ready(Ok(())), // EOF
        }
    }
}

impl AsyncWrite for CuttableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.wakers.lock().unwrap().1 = Some(cx.waker().clone());
        match self.0.tcp.lock().unwrap().as_mut() {
            Some(tcp) => Pin::new(tcp).poll_write(cx, data),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.0.tcp.lock().unwrap().as_mut() {
            Some(tcp) => Pin::new(tcp).poll_flush(cx),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.0.tcp.lock().unwrap().as_mut() {
            Some(tcp) => Pin::new(tcp).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}
