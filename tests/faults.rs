//! Faults of the machine: a full disk.
//!
//! The outbox lives on a tmpfs of a few MiB that the test mounts (the tests run as root,
//! as CI does; without root the test fails and says why, it does not skip). It fills,
//! then the test grows it with `mount -o remount,size=`: every accepted event must be
//! delivered, none lost, and the relay must have said so once, not once per event.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::server::*;
use support::*;

/// A wait that covers thousands of events through a debug build on shared cores.
const LONG: Duration = Duration::from_secs(120);

/// A tmpfs mounted on a directory for the life of the value.
struct Tmpfs {
    /// Where it is mounted.
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("create the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "the disk-full tests mount a tmpfs of their own, which needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            dir: dir.to_owned(),
        }
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "remount: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// How many 2xx answers each tweet id got.
fn deliveries_per_tweet(hook: &Receiver) -> BTreeMap<String, usize> {
    let mut per = BTreeMap::new();
    for id in hook.delivered_tweet_ids() {
        *per.entry(id).or_default() += 1;
    }
    per
}

fn ids(range: std::ops::Range<u32>) -> std::collections::BTreeSet<String> {
    range.map(|i| i.to_string()).collect()
}

/// Starts the relay on `cfg` with its outbox on a fresh tmpfs of `size`.
async fn relay_on_tmpfs(cfg: &RelayConfig, stream: &StreamServer, size: &str) -> (Relay, Tmpfs) {
    let mut relay = Relay::prepare(cfg, &[]);
    let fs = Tmpfs::mount(&relay.outbox_dir(), size);
    let before = stream.connections();
    relay.restart();
    relay.wait_connected(stream, before).await;
    (relay, fs)
}

#[tokio::test]
async fn a_full_disk_stops_intake_loses_nothing_and_resumes_when_there_is_room() {
    const N: u32 = 5000;
    let stream = StreamServer::start().await;
    let hook = Receiver::start_down().await;
    let mut cfg = RelayConfig::new(&stream)
        .http_target("hook", &hook, "")
        .route(route("all").targets(&["hook"]))
        .tail(&server_table(Some(INGEST_SECRET)));
    // No early guard: the filesystem really fills.
    cfg.outbox_extra = "min_free = 0".into();
    let (relay, fs) = relay_on_tmpfs(&cfg, &stream, "3m").await;
    let http = Http::of(&relay).await;
    let all = ids(100_000..100_000 + N);
    for id in &all {
        stream.send_event(&tweet_event(id));
    }

    // It fills: intake stops, and says so everywhere it should.
    http.wait_for_status("/readyz", 503, LONG).await;
    http.wait_for_metrics(&[("badger_relay_outbox_writable", 0.0)], DEADLINE)
        .await;
    let refused = http
        .ingest(
            SIGNATURE_HEADER,
            &serde_json::to_vec(&tweet_event("199999")).unwrap(),
        )
        .await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(refused.retry_after.is_some(), "503 without Retry-After");

    // Room again, and the target back: everything read from the stream arrives.
    fs.resize("64m");
    hook.up().await;
    hook.wait_for_tweet_ids(&all, LONG).await;
    http.wait_for_status("/readyz", 200, DEADLINE).await;
    http.wait_for_metrics(&[("badger_relay_outbox_writable", 1.0)], DEADLINE)
        .await;
    let per = deliveries_per_tweet(&hook);
    let twice: Vec<_> = per.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");

    let logs = relay.logs();
    let errors: Vec<&String> = logs.iter().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(
        errors.len(),
        1,
        "one ERROR line for the episode: {errors:#?}"
    );
    assert!(errors[0].contains("cannot store events"), "{errors:#?}");
    // A read during the episode may fail too (sled's error is sticky until the store
    // reopens): a warning, once per failing stretch, never a second ERROR.
    let read_warnings = logs
        .iter()
        .filter(|l| l.contains("Cannot read the outbox"))
        .inspect(|l| assert!(l.contains("WARN"), "{l}"))
        .count();
    assert!(
        read_warnings <= 1,
        "{read_warnings} read warnings: {logs:#?}"
    );
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("lost") || l.contains("missing")),
        "{errors:#?}"
    );
}

#[tokio::test]
async fn min_free_stops_intake_before_the_filesystem_is_full() {
    const N: u32 = 3000;
    let stream = StreamServer::start().await;
    let hook = Receiver::start_down().await;
    let mut cfg = RelayConfig::new(&stream)
        .http_target("hook", &hook, "")
        .route(route("all").targets(&["hook"]))
        .tail(&server_table(None));
    // Half a MiB of room above the guard; 3,000 events take several times that in sled.
    cfg.outbox_extra = "min_free = \"15872KiB\"".into();
    let (relay, fs) = relay_on_tmpfs(&cfg, &stream, "16m").await;
    let http = Http::of(&relay).await;
    let all = ids(200_000..200_000 + N);
    for id in &all {
        stream.send_event(&tweet_event(id));
    }
    http.wait_for_metrics(&[("badger_relay_outbox_writable", 0.0)], LONG)
        .await;
    let line = relay.wait_for_log("cannot store events", DEADLINE).await;
    assert!(
        line.contains("min_free"),
        "the line names the guard: {line}"
    );
    // The guard stopped it before the disk filled: sled never saw an I/O error.
    assert!(
        !relay.logs().iter().any(|l| l.contains("No space left")),
        "the guard came too late"
    );
    fs.resize("64m");
    hook.up().await;
    hook.wait_for_tweet_ids(&all, LONG).await;
    http.wait_for_metrics(&[("badger_relay_outbox_writable", 1.0)], DEADLINE)
        .await;
}

/// What sled 0.34 itself does on ENOSPC, which the outbox's recovery is built on: after
/// the first failed write every later call fails (its error is sticky) until the
/// database is opened again; once there is room, it reopens with every write it had
/// acknowledged (a flush that returned Ok), and a batch is there whole or not at all.
#[test]
fn sled_on_a_full_disk_keeps_what_it_acknowledged_and_batches_stay_whole() {
    let root = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&root.path().join("fs"), "2m");
    let path = fs.dir.join("db");
    let open = || {
        sled::Config::new()
            .path(&path)
            .cache_capacity(8 << 20)
            .open()
    };
    let db = open().expect("sled opens on the tmpfs");
    let body = vec![b'x'; 400];
    let mut acked = 0u32;
    let mut first_error = None;
    for i in 0..100_000u32 {
        let mut batch = sled::Batch::default();
        batch.insert(format!("k/{i:08}").as_bytes(), &b"mark"[..]);
        batch.insert(format!("p/{i:08}").as_bytes(), body.as_slice());
        let result = db.apply_batch(batch).and_then(|()| db.flush().map(drop));
        match result {
            Ok(()) => acked = i + 1,
            Err(e) => {
                first_error = Some(e.to_string());
                break;
            }
        }
    }
    let first_error = first_error.expect("the filesystem filled");
    assert!(first_error.contains("No space left"), "{first_error}");
    assert!(acked > 100, "only {acked} batches fit");
    // Sticky: a tiny write fails too, though there may be room for it. Reads usually
    // still answer, from memory, and then the failed batch is visible there, mark and
    // delivery, though it never reached the disk; or they fail too (seen when a read
    // needs a page sled has not cached). Either way the outbox trusts nothing it reads
    // after a write error until it has reopened the database.
    assert!(db.insert(b"small", b"1").and_then(|_| db.flush()).is_err());
    let seen = |key: String| match db.get(&key) {
        Ok(v) => format!("{}", v.is_some()),
        Err(e) => format!("unreadable ({e})"),
    };
    eprintln!(
        "after the failed batch {acked}: mark in memory {}, delivery in memory {}",
        seen(format!("k/{acked:08}")),
        seen(format!("p/{acked:08}"))
    );
    drop(db);

    fs.resize("64m");
    // The dropped db's background flusher lets go of sled's file lock within its flush
    // interval (seen failing under load when reopened at once): wait for that, no more.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut reopened = open();
    while matches!(&reopened, Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock"))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
        reopened = open();
    }
    let db = reopened.expect("sled reopens once there is room");
    let (mut marks, mut deliveries) = (0u32, 0u32);
    for i in 0..acked + 200 {
        let mark = db.get(format!("k/{i:08}")).unwrap().is_some();
        let delivery = db.get(format!("p/{i:08}")).unwrap().is_some();
        assert_eq!(mark, delivery, "batch {i} is half there after the reopen");
        marks += u32::from(mark);
        deliveries += u32::from(delivery);
        if i < acked {
            assert!(delivery, "batch {i} was acknowledged and is gone");
        }
    }
    assert_eq!(marks, deliveries);
    db.insert(b"after", b"1").unwrap();
    db.flush().expect("it writes again");
}
