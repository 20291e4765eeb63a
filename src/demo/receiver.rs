//! The demo's receiver: plays Slack, Discord and a generic HTTP endpoint on loopback and
//! prints what each would show. Every seventh request it answers 503, so the retry path
//! shows too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;

#[derive(Clone, Default)]
struct Receiver {
    /// Requests so far: every seventh is refused.
    requests: Arc<AtomicU64>,
}

pub(super) async fn serve_receiver(listener: TcpListener) {
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
