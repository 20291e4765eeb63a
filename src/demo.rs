//! `badger-relay demo`: the whole pipeline with no account and no config.
//!
//! A simulated ScrapeBadger stream and a receiver that plays Slack, Discord and a
//! generic HTTP endpoint run on loopback in this process; the real pipeline (config
//! parser, router, sled outbox in a temp dir, delivery workers) runs between them.
//! Every seventh request the receiver answers 503, so the retry path shows too.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use futures_util::SinkExt as _;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::config::Config;

/// `println!` that ignores a closed stdout (`badger-relay demo | head`): printing is a
/// side show, the receiver must keep answering and the pipeline keep running.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
use crate::shutdown;

const MONITORS: [(&str, &str); 3] = [
    ("mon-tech", "Tech Leaders"),
    ("mon-ai", "AI Labs"),
    ("mon-space", "Space"),
];
const TWEETS: [(&str, &str, usize); 8] = [
    (
        "sama",
        "We are launching a new model today. Details in the thread 🧵",
        1,
    ),
    (
        "elonmusk",
        "Starship flight 12 is go for launch tomorrow at 7am",
        2,
    ),
    (
        "satyanadella",
        "Announcing new AI capabilities for every developer",
        0,
    ),
    (
        "demishassabis",
        "Proud of the team: our paper on protein design is out",
        1,
    ),
    (
        "sundarpichai",
        "A few updates from I/O <3 & more coming soon",
        0,
    ),
    (
        "elonmusk",
        "@everyone this is not a ping, the relay disables mentions",
        2,
    ),
    (
        "karpathy",
        "New video: building a tokenizer from scratch",
        1,
    ),
    (
        "tim_cook",
        "Thank you to our developers around the world",
        0,
    ),
];

/// Run until Ctrl-C.
pub async fn run() -> anyhow::Result<()> {
    let stream = TcpListener::bind("127.0.0.1:0").await?;
    let receiver = TcpListener::bind("127.0.0.1:0").await?;
    let (stream_addr, receiver_addr) = (stream.local_addr()?, receiver.local_addr()?);
    let data = tempfile::tempdir()?;
    let config = Config::parse(
        &demo_config(stream_addr, receiver_addr, data.path()),
        Path::new("(demo)"),
        &|_| None,
    )?;

    say!(
        "badger-relay demo: a simulated ScrapeBadger stream on ws://{stream_addr}, a receiver on http://{receiver_addr},"
    );
    say!(
        "and the real pipeline between them (outbox in {}). Ctrl-C to stop.\n",
        data.path().display()
    );
    say!(
        "Routes: \"Tech Leaders\" → Slack · authors elonmusk/sama → Discord · everything → HTTP\n"
    );

    tokio::spawn(serve_stream(stream));
    tokio::spawn(serve_receiver(receiver));

    let (trigger, _) = shutdown::channel();
    let trigger = Arc::new(trigger);
    let on_signal = trigger.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.trigger();
    });
    let result = crate::app::run(config, trigger).await;
    say!("\ndemo stopped.");
    result
}

fn demo_config(stream: SocketAddr, receiver: SocketAddr, data: &Path) -> String {
    format!(
        r#"
[source]
url = "ws://{stream}/v1/twitter/stream"
proxy = "none"
api_key = "demo-key"
reconnect = {{ initial = "200ms", max = "2s" }}

[outbox]
path = {data:?}
retry = {{ initial = "500ms", max = "5s" }}

[targets.team-slack]
type = "slack"
url = "http://{receiver}/slack/T000/B000/XXXX"

[targets.ops-discord]
type = "discord"
url = "http://{receiver}/discord/123/abc"
username = "Tweet alerts"

[targets.workflow]
type = "http"
url = "http://{receiver}/http/hooks/tweets"
signing_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

[[routes]]
name = "tech-leaders"
monitors = ["Tech Leaders"]
targets = ["team-slack"]

[[routes]]
name = "founders"
authors = ["elonmusk", "@sama"]
targets = ["ops-discord"]

[[routes]]
name = "everything"
targets = ["workflow"]
"#,
        data = data.display().to_string()
    )
}

/// The simulated stream: a realistic event about every 1.5 s to whoever connects.
async fn serve_stream(listener: TcpListener) {
    let counter = Arc::new(AtomicU64::new(0));
    while let Ok((tcp, _)) = listener.accept().await {
        let counter = counter.clone();
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            loop {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                if ws
                    .send(Message::text(sample_event(n).to_string()))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
        });
    }
}

/// A realistic event; `n` picks the tweet and makes the id unique.
pub fn sample_event(n: u64) -> Value {
    let (author, text, monitor) = TWEETS[(n as usize) % TWEETS.len()];
    let (monitor_id, monitor_name) = MONITORS[monitor];
    let tweet_id = 1_900_000_000_000_000_000 + n;
    let now = std::time::SystemTime::now();
    let published = humantime::format_rfc3339_seconds(now - Duration::from_millis(1200));
    let detected = humantime::format_rfc3339_millis(now);
    json!({
        "event": "tweet.detected",
        "monitor_id": monitor_id,
        "monitor_name": monitor_name,
        "tweet_id": tweet_id.to_string(),
        "author_username": author,
        "tweet_text": text,
        "tweet_url": format!("https://x.com/{author}/status/{tweet_id}"),
        "tweet_published_at": published.to_string(),
        "detected_at": detected.to_string(),
        "latency_ms": 1200,
    })
}

#[derive(Clone, Default)]
struct Receiver {
    requests: Arc<AtomicU64>,
}

async fn serve_receiver(listener: TcpListener) {
    let app = axum::Router::new()
        .route("/{kind}/{*rest}", axum::routing::post(receive))
        .with_state(Receiver::default());
    let _ = axum::serve(listener, app).await;
}

async fn receive(
    State(r): State<Receiver>,
    UrlPath((kind, _)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let n = r.requests.fetch_add(1, Ordering::Relaxed);
    if n % 7 == 6 {
        say!("✗ {kind:<7} answered 503 (simulated outage): the outbox will retry\n");
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match kind.as_str() {
        "slack" => print_slack(&json),
        "discord" => print_discord(&json),
        _ => print_http(&headers, &body),
    }
    StatusCode::OK
}

fn print_slack(p: &Value) {
    say!("┌ Slack  ({} bytes of Block Kit)", p.to_string().len());
    for block in p["blocks"].as_array().into_iter().flatten() {
        let text = block["text"]["text"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| {
                block["elements"].as_array().map(|els| {
                    els.iter()
                        .filter_map(|e| e["text"].as_str())
                        .collect::<Vec<_>>()
                        .join("  ")
                })
            });
        if let Some(t) = text.filter(|t| !t.is_empty()) {
            for line in t.lines() {
                say!("│ {line}");
            }
        }
    }
    if p["blocks"].as_array().is_none_or(|b| b.is_empty()) {
        say!("│ {}", p["text"].as_str().unwrap_or(""));
    }
    say!("└\n");
}

fn print_discord(p: &Value) {
    let embed = &p["embeds"][0];
    say!(
        "┌ Discord  (embed; allowed_mentions = {})",
        p["allowed_mentions"]
    );
    if let Some(a) = embed["author"]["name"].as_str() {
        say!("│ {a}");
    }
    for line in embed["description"]
        .as_str()
        .or(p["content"].as_str())
        .unwrap_or("")
        .lines()
    {
        say!("│ {line}");
    }
    if let Some(f) = embed["footer"]["text"].as_str() {
        say!("│ — {f}");
    }
    say!("└\n");
}

fn print_http(headers: &HeaderMap, body: &[u8]) {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    say!(
        "┌ HTTP POST  webhook-id: {}  webhook-signature: {}…",
        h("webhook-id"),
        h("webhook-signature").chars().take(16).collect::<String>()
    );
    say!("│ {}", String::from_utf8_lossy(body));
    say!("└\n");
}
