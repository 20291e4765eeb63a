//! A probe behind a finding of BENCHMARKS.md: what group commit costs on sled 0.34.
//!
//! `cargo run --release --example outbox_probe [-- EVENTS]`
//! `cargo run --release --example outbox_probe -- floor [SECS] [PENDING]`: sled's own
//! floor (CPU per event at 200/s, peak RSS with a backlog), in [`floor`].
//!
//! Writes EVENTS (default 20,000) deliveries of a ~430-byte event, in groups of 1, 16,
//! 128 and 1,024 events with one flush per group, three ways:
//! - `event batch`: the outbox's keys and values (dedupe check, mark, pending record) in
//!   one `sled::Batch` per event, as the committer first did;
//! - `group batch`: the same, but one `sled::Batch` for the whole group, as the
//!   committer does now;
//! - `inserts`: plain inserts, no batch (not atomic; the floor).
//!
//! sled's `apply_batch` rolls and writes its IO buffer, with a synchronous
//! `sync_file_range`, on every call (`PageCache::pin_log`), so a batch per event is a
//! disk write per event whatever the group size. Reports events/s, and bytes written to
//! storage per event (`/proc/self/io`).

#[path = "outbox_probe/floor.rs"]
mod floor;

use std::time::{Duration, Instant};

use bytes::Bytes;

const TARGET: &str = "t1";

fn body(seq: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"event":"tweet.detected","monitor_id":"mon-7f3a2c91","monitor_name":"Tech Leaders","tweet_id":"{id}","author_username":"sama","tweet_text":"We are launching a new model today: faster and cheaper. Details in the thread","tweet_url":"https://x.com/sama/status/{id}","tweet_published_at":"2026-03-13T12:00:00Z","detected_at":"2026-03-13T12:00:00.150Z","latency_ms":150,"bench_seq":{seq}}}"#,
        id = 1_900_000_000_000_000_000u64 + seq
    ))
}

fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// A pending record as the outbox stores it (src/outbox/sled/record.rs, format 2): a
/// 23-byte header before the event, none of it failure or cause yet.
fn record(body: &[u8], now: u64) -> Vec<u8> {
    let mut out = vec![2];
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&now.to_be_bytes());
    out.extend_from_slice(&0u64.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(body);
    out
}

/// The outbox's key layout (src/outbox/sled/keys.rs).
fn pending_key(seq: u64) -> Vec<u8> {
    let mut k = b"p/".to_vec();
    k.extend_from_slice(TARGET.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn mark_key(dedupe: &str) -> Vec<u8> {
    let mut k = b"k/".to_vec();
    k.extend_from_slice(TARGET.as_bytes());
    k.push(0);
    k.extend_from_slice(dedupe.as_bytes());
    k
}

fn open_raw(dir: &std::path::Path) -> sled::Db {
    sled::Config::new()
        .path(dir.join("db"))
        .cache_capacity(8 * 1024 * 1024)
        .open()
        .expect("sled opens")
}

/// (events/s, bytes written per event)
fn run(way: &str, events: u64, group: u64) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let window = Duration::from_secs(24 * 3600);
    let before = written_bytes();
    let start = Instant::now();
    let db = open_raw(dir.path());
    for g in 0..events / group {
        let mut batch = sled::Batch::default();
        for i in 0..group {
            let seq = g * group + i;
            let mark = mark_key(&format!("e:tweet.detected:mon-7f3a2c91:{seq}"));
            if db.get(&mark).expect("get").is_some() {
                continue;
            }
            let id = db.generate_id().expect("id");
            let expiry = (now_ms() + window.as_millis() as u64).to_be_bytes();
            let value = record(&body(seq), now_ms());
            match way {
                "event batch" => {
                    let mut one = sled::Batch::default();
                    one.insert(mark, &expiry);
                    one.insert(pending_key(id), value);
                    db.apply_batch(one).expect("batch");
                }
                "group batch" => {
                    batch.insert(mark, &expiry);
                    batch.insert(pending_key(id), value);
                }
                _ => {
                    db.insert(mark, &expiry).expect("insert");
                    db.insert(pending_key(id), value).expect("insert");
                }
            }
        }
        if way == "group batch" {
            db.apply_batch(batch).expect("batch");
        }
        db.flush().expect("flush");
    }
    let secs = start.elapsed().as_secs_f64();
    let bytes = written_bytes() - before;
    let n = (events / group) * group;
    (n as f64 / secs, bytes as f64 / n as f64)
}

// As in the relay: the floor's RSS figures are the same allocator's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: f64| {
        args.get(i)
            .map(|a| a.parse().expect("a number"))
            .unwrap_or(default)
    };
    match args.first().map(String::as_str) {
        Some("floor") => return floor::run(num(1, 20.0), num(2, 1_000_000.0) as u64),
        Some("floor-case") => return floor::case(&args[1], &args[2..]),
        _ => {}
    }
    let events = num(0, 20_000.0) as u64;
    println!(
        "{:<12} {:>6} {:>12} {:>16}",
        "way", "group", "events/s", "disk bytes/event"
    );
    for group in [1, 16, 128, 1024] {
        // Few events at group 1: each is a full synchronous write.
        let n = if group == 1 { events / 10 } else { events };
        for way in ["event batch", "group batch", "inserts"] {
            let (rate, bytes) = run(way, n, group);
            println!("{way:<12} {group:>6} {rate:>12.0} {bytes:>16.0}");
        }
    }
}
