//! `outbox_probe floor`: what sled itself costs, beside what the relay costs (issue 13).
//!
//! Issue 13 asks for the durable path's CPU per event, latency and memory against goals,
//! and, where a goal is out of reach with sled, for the floor with figures. The floor is
//! measured here with nothing of the relay around it: each case runs in a child process of
//! its own (this binary again, `floor-case NAME`), so its CPU time (`getrusage`) and peak
//! RSS (`VmHWM`) are sled's and the allocator's alone. mimalloc is the allocator, as in
//! the relay.
//!
//! - `idle`: the child doing nothing: the floor of any process.
//! - `fdatasync`: 200 events/s, each appended to a plain file and `fdatasync`ed: what the
//!   kernel and the disk cost per durable event, with no store at all.
//! - `sled`: 200 events/s, each committed as the relay commits a group of one (dedupe
//!   lookup, id, one batch with the mark and the pending record, sled's flush, fdatasync
//!   of its log), then its delivery completed (the pending record removed, no flush);
//!   sled configured as the relay configures it (8 MiB cache, background flusher every
//!   500 ms).
//! - `sled-no-flusher`: the same with sled's background flusher off.
//! - `fill G`: `PENDING` events written in groups of `G` (one batch, flush and fdatasync
//!   per group), as a relay whose target is down takes them in; then `drain`, a new
//!   process on the same files, removes them in key order in batches of 1,024, as a
//!   restarted relay delivers them. Peak RSS of each. Run with groups of 128 and of
//!   1,024 (the relay's largest group): sled's memory depends on the batch size.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{body, mark_key, now_ms, pending_key, record};

/// Events per second of the paced cases: the 200/s.
const RATE: u64 = 200;
/// Removals per batch in `drain`; the groups of `fill` are its argument.
const GROUP: usize = 1024;
/// The relay's sled cache (`src/outbox/sled/store.rs` `CACHE_BYTES`).
const CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// What one case reports (one JSON line on the child's stdout).
#[derive(Debug, Serialize, Deserialize)]
struct Figures {
    /// Events (or deliveries removed) the case handled.
    events: u64,
    /// Wall time of the case.
    secs: f64,
    /// User plus system CPU time of the whole child, every thread (sled's included).
    cpu_secs: f64,
    /// Time of each durable write (the commit), p50 and p99, in ms; 0 where not timed.
    p50_ms: f64,
    p99_ms: f64,
    /// Peak resident set of the child, KiB.
    peak_rss_kib: u64,
}

impl Figures {
    /// A case whose writes are not timed one by one: `events` since `start`, with the CPU
    /// time spent since `cpu_before`.
    fn untimed(events: u64, start: Instant, cpu_before: f64) -> Figures {
        Figures {
            events,
            secs: start.elapsed().as_secs_f64(),
            cpu_secs: cpu_secs() - cpu_before,
            p50_ms: 0.0,
            p99_ms: 0.0,
            peak_rss_kib: peak_rss_kib(),
        }
    }
}

/// `outbox_probe floor [SECS] [PENDING]`: run every case in a child and print the table.
pub fn run(secs: f64, pending: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let secs_arg = secs.to_string();
    let pending_arg = pending.to_string();
    let store = |group: &str| {
        let path = dir.path().join(format!("store-{group}"));
        path.to_str().expect("utf-8 temp path").to_owned()
    };
    let (store_128, store_1024) = (store("128"), store("1024"));
    println!(
        "{:<16} {:>9} {:>14} {:>9} {:>9} {:>11}",
        "case", "events", "CPU µs/event", "p50 ms", "p99 ms", "peak RSS"
    );
    for (case, args) in [
        ("idle", vec![]),
        ("fdatasync", vec![secs_arg.as_str()]),
        ("sled", vec![secs_arg.as_str()]),
        ("sled-no-flusher", vec![secs_arg.as_str()]),
        ("fill 128", vec![&store_128, pending_arg.as_str(), "128"]),
        ("drain", vec![&store_128]),
        ("fill 1024", vec![&store_1024, pending_arg.as_str(), "1024"]),
        ("drain", vec![&store_1024]),
    ] {
        let f = child(case.split(' ').next().unwrap_or(case), &args);
        let cpu = match f.events {
            0 => "-".to_owned(),
            n => format!("{:.1}", f.cpu_secs * 1e6 / n as f64),
        };
        println!(
            "{case:<16} {:>9} {cpu:>14} {:>9.3} {:>9.3} {:>7.1} MiB",
            f.events,
            f.p50_ms,
            f.p99_ms,
            f.peak_rss_kib as f64 / 1024.0
        );
    }
}

fn child(case: &str, args: &[&str]) -> Figures {
    let exe = std::env::current_exe().expect("own path");
    let out = Command::new(exe)
        .arg("floor-case")
        .arg(case)
        .args(args)
        .output()
        .expect("the probe runs itself");
    assert!(
        out.status.success(),
        "floor case {case} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON line of figures")
}

/// `outbox_probe floor-case NAME ARGS...`: one case, in this process.
pub fn case(name: &str, args: &[String]) {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    let secs = || arg(0).parse::<f64>().expect("seconds");
    let figures = match name {
        "idle" => idle(),
        "fdatasync" => paced(secs(), plain_file()),
        "sled" => paced(secs(), sled_commit(true)),
        "sled-no-flusher" => paced(secs(), sled_commit(false)),
        "fill" => fill(
            Path::new(arg(0)),
            arg(1).parse().expect("pending"),
            arg(2).parse().expect("group size"),
        ),
        "drain" => drain(Path::new(arg(0))),
        other => panic!("unknown floor case {other:?}"),
    };
    println!("{}", serde_json::to_string(&figures).expect("figures"));
}

fn idle() -> Figures {
    Figures {
        events: 0,
        secs: 0.0,
        cpu_secs: cpu_secs(),
        p50_ms: 0.0,
        p99_ms: 0.0,
        peak_rss_kib: peak_rss_kib(),
    }
}

/// One durable write per call, given the event's sequence number.
type Commit = Box<dyn FnMut(u64)>;

/// `commit` at `RATE` per second for `secs`, on a fixed schedule (a late event does not
/// push the next one back).
fn paced(secs: f64, mut commit: Commit) -> Figures {
    let total = (secs * RATE as f64) as u64;
    let interval = Duration::from_secs(1) / RATE as u32;
    let mut times = Vec::with_capacity(total as usize);
    let cpu_before = cpu_secs();
    let start = Instant::now();
    for seq in 0..total {
        let due = start + interval * seq as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let began = Instant::now();
        commit(seq);
        times.push(began.elapsed());
    }
    let secs = start.elapsed().as_secs_f64();
    // sled's threads keep running after the last event; the relay's run is measured to
    // its last delivery, so stop here too.
    let cpu = cpu_secs() - cpu_before;
    times.sort_unstable();
    let pct = |p: f64| {
        let rank = ((p * times.len() as f64).ceil() as usize).clamp(1, times.len());
        times[rank - 1].as_secs_f64() * 1e3
    };
    Figures {
        events: total,
        secs,
        cpu_secs: cpu,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        peak_rss_kib: peak_rss_kib(),
    }
}

fn plain_file() -> Commit {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("log"))
        .expect("log file");
    Box::new(move |seq| {
        let _keep = &dir;
        file.write_all(&record(&body(seq), now_ms()))
            .expect("append");
        file.sync_data().expect("fdatasync");
    })
}

fn sled_commit(flusher: bool) -> Commit {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = open(dir.path(), flusher);
    let log = File::open(dir.path().join("db").join("db")).expect("sled's log");
    Box::new(move |seq| {
        let _keep = &dir;
        let mark = mark_key(&format!("e:tweet.detected:mon-7f3a2c91:{seq}"));
        assert!(db.get(&mark).expect("get").is_none());
        let id = db.generate_id().expect("id");
        let mut batch = sled::Batch::default();
        batch.insert(mark, &(now_ms() + 86_400_000).to_be_bytes());
        batch.insert(pending_key(id), record(&body(seq), now_ms()));
        db.apply_batch(batch).expect("batch");
        db.flush().expect("flush");
        log.sync_data().expect("fdatasync");
        // Delivered: the relay removes the record without a flush of its own.
        db.remove(pending_key(id)).expect("remove");
    })
}

fn fill(store: &Path, pending: u64, group: usize) -> Figures {
    let db = open(store, true);
    let log = File::open(store.join("db").join("db")).expect("sled's log");
    let cpu_before = cpu_secs();
    let start = Instant::now();
    let mut seq = 0;
    while seq < pending {
        let mut batch = sled::Batch::default();
        for _ in 0..group.min((pending - seq) as usize) {
            let id = db.generate_id().expect("id");
            let mark = mark_key(&format!("e:tweet.detected:mon-7f3a2c91:{seq}"));
            batch.insert(mark, &(now_ms() + 86_400_000).to_be_bytes());
            batch.insert(pending_key(id), record(&body(seq), now_ms()));
            seq += 1;
        }
        db.apply_batch(batch).expect("batch");
        db.flush().expect("flush");
        log.sync_data().expect("fdatasync");
    }
    Figures::untimed(pending, start, cpu_before)
}

fn drain(store: &Path) -> Figures {
    let cpu_before = cpu_secs();
    let start = Instant::now();
    let db = open(store, true);
    let prefix = pending_key(0);
    let prefix = &prefix[..prefix.len() - 8];
    let mut removed = 0;
    let mut batch = sled::Batch::default();
    let mut in_batch = 0;
    for entry in db.scan_prefix(prefix) {
        let (key, _value) = entry.expect("scan");
        batch.remove(key);
        in_batch += 1;
        if in_batch == GROUP {
            db.apply_batch(std::mem::take(&mut batch)).expect("batch");
            in_batch = 0;
        }
        removed += 1;
    }
    db.apply_batch(batch).expect("batch");
    db.flush().expect("flush");
    Figures::untimed(removed, start, cpu_before)
}

fn open(dir: &Path, flusher: bool) -> sled::Db {
    let config = sled::Config::new()
        .path(dir.join("db"))
        .cache_capacity(CACHE_BYTES);
    let config = if flusher {
        config
    } else {
        config.flush_every_ms(None)
    };
    config.open().expect("sled opens")
}

/// User plus system time of this process, every thread, from `getrusage`.
fn cpu_secs() -> f64 {
    // SAFETY: `getrusage` fills the struct it is given; a zeroed `rusage` is valid.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Peak resident set of this process so far (`VmHWM`), KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
