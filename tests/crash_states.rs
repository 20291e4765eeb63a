//! What a power cut leaves, simulated: the relay runs with an `LD_PRELOAD` shim
//! (`tests/support/crash_shim.c`, compiled here with the system's `cc`) that logs, in
//! order, every write, truncation, creation, rename and removal under its outbox, every
//! completed `fsync`/`fdatasync` with the log position where it began, and every
//! `HTTP/1.1 202` it is about to send. For each acknowledgement, the outbox is rebuilt
//! as a power cut at that moment would leave it on a disk that keeps exactly what was
//! synced: a file's contents as of the start of its last completed sync (nothing
//! written after it), and a file created since its directory's last sync is not there at
//! all. It is rebuilt twice more: with the first half of what was logged since the
//! previous acknowledgement kept as well, and with everything (a disk may keep some
//! unsynced writes; here always a prefix of them, in order). `badger-relay outbox list`
//! then reads each rebuilt outbox, and every event acknowledged by then must be pending
//! in it, readable, for the stalled one of its two targets, and for the other unless it
//! was already sent there; `outbox verify` must find nothing unreadable.
//!
//! The model is strict about data and about new files. It is lenient about renames and
//! removals, which it applies at once (sled renames only its snapshot files, and the
//! relay's guarantee rests on the log, which it fsyncs). `sync_file_range` is not a sync
//! here, as it is not on a real disk with a write cache.
//!
//! Events are posted to `/ingest` one after another, so each acknowledgement is the one
//! for the event just posted.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use support::server::*;
use support::*;

/// Events acknowledged and checked (after the one that takes the stalled target's slot).
const CHECKED: usize = 20;

/// The shim, built from its source into `dir`.
fn build_shim(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/crash_shim.c");
    let out = dir.join("crash_shim.so");
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg(&source)
        .args(["-ldl", "-lpthread"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run cc ({e}): the crash-state test needs a C compiler"));
    assert!(
        built.status.success(),
        "cc failed on {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&built.stderr)
    );
    out
}

/// One entry of the shim's log.
#[derive(Debug)]
enum Op {
    Write {
        path: String,
        at: u64,
        data: Vec<u8>,
    },
    Truncate {
        path: String,
        len: u64,
    },
    Create {
        path: String,
    },
    Sync {
        path: String,
        start: usize,
    },
    DirSync {
        path: String,
        start: usize,
    },
    Rename {
        from: String,
        to: String,
    },
    Unlink {
        path: String,
    },
    Ack,
}

/// The shim's log, read front to back.
struct Log<'a>(&'a [u8]);

impl<'a> Log<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        assert!(self.0.len() >= n, "a torn entry in the shim's log");
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
}

fn parse_log(log: &[u8]) -> Vec<Op> {
    let mut log = Log(log);
    let mut ops = Vec::new();
    while !log.0.is_empty() {
        let op = log.take(1)[0];
        let len = u32::from_le_bytes(log.take(4).try_into().unwrap()) as usize;
        let path = String::from_utf8(log.take(len).to_vec()).expect("a UTF-8 path");
        let a = log.u64();
        let n = log.u64() as usize;
        let data = if matches!(op, b'W' | b'R') {
            log.take(n).to_vec()
        } else {
            Vec::new()
        };
        ops.push(match op {
            b'W' => Op::Write { path, at: a, data },
            b'T' => Op::Truncate { path, len: a },
            b'C' => Op::Create { path },
            b'S' => Op::Sync {
                path,
                start: a as usize,
            },
            b'D' => Op::DirSync {
                path,
                start: a as usize,
            },
            b'R' => Op::Rename {
                from: path,
                to: String::from_utf8(data).expect("a UTF-8 path"),
            },
            b'U' => Op::Unlink { path },
            b'A' => Op::Ack,
            other => panic!("unknown entry {other} in the shim's log"),
        });
    }
    ops
}

/// A file as the model follows it, whatever its name.
#[derive(Default)]
struct File {
    /// Index of its creation entry, if it was created while watched.
    created: Option<usize>,
    /// The directory it was created in.
    dir: String,
    /// The log entries of its writes and truncations, in order.
    changes: Vec<usize>,
    /// The latest start of a completed sync of it.
    synced_from: Option<usize>,
}

/// The files the log describes, replayed entry by entry.
#[derive(Default)]
struct Disk {
    /// Every file seen, by identity.
    files: Vec<File>,
    /// The name each file has now (a rename moves it, a removal drops it).
    names: HashMap<String, usize>,
    /// Per directory, the latest start of a completed sync of it.
    dir_synced: HashMap<String, usize>,
}

impl Disk {
    /// A new file under `path`, created at log entry `at` (`None`: it was there before).
    fn create(&mut self, path: &str, at: Option<usize>) -> &mut File {
        self.files.push(File {
            created: at,
            dir: parent(path),
            ..File::default()
        });
        self.names.insert(path.to_string(), self.files.len() - 1);
        self.files.last_mut().unwrap()
    }

    /// The file now under `path`.
    fn file(&mut self, path: &str) -> &mut File {
        match self.names.get(path) {
            Some(&f) => &mut self.files[f],
            None => self.create(path, None),
        }
    }

    fn apply(&mut self, i: usize, op: &Op) {
        match op {
            Op::Create { path } => {
                self.create(path, Some(i));
            }
            Op::Write { path, .. } | Op::Truncate { path, .. } => self.file(path).changes.push(i),
            Op::Sync { path, start } => {
                let from = &mut self.file(path).synced_from;
                *from = Some(from.map_or(*start, |s| s.max(*start)));
            }
            Op::DirSync { path, start } => {
                let s = self.dir_synced.entry(path.clone()).or_insert(*start);
                *s = (*s).max(*start);
            }
            Op::Rename { from, to } => {
                if let Some(f) = self.names.remove(from) {
                    self.names.insert(to.clone(), f);
                }
            }
            Op::Unlink { path } => {
                self.names.remove(path);
            }
            Op::Ack => {}
        }
    }
}

/// The files under `root` as a power cut right before log entry `upto` leaves them,
/// when the disk also happened to keep every change logged before `kept` (0: only what
/// was synced; `upto`: everything, as after `kill -9`): relative path → contents.
fn crash_state(ops: &[Op], upto: usize, kept: usize, root: &str) -> Vec<(String, Vec<u8>)> {
    let mut disk = Disk::default();
    for (i, op) in ops[..upto].iter().enumerate() {
        disk.apply(i, op);
    }
    let mut out = Vec::new();
    for (name, &f) in &disk.names {
        let file = &disk.files[f];
        // A file created since its directory's last sync began is not on the disk.
        if let Some(c) = file.created
            && c >= kept
            && disk.dir_synced.get(&file.dir).is_none_or(|&s| s <= c)
        {
            continue;
        }
        let mut data = Vec::new();
        for &i in &file.changes {
            if i >= kept && file.synced_from.is_none_or(|s| i >= s) {
                continue;
            }
            match &ops[i] {
                Op::Write {
                    at, data: bytes, ..
                } => {
                    let end = *at as usize + bytes.len();
                    if data.len() < end {
                        data.resize(end, 0);
                    }
                    data[*at as usize..end].copy_from_slice(bytes);
                }
                Op::Truncate { len, .. } => data.resize(*len as usize, 0),
                _ => unreachable!(),
            }
        }
        let relative = name
            .strip_prefix(root)
            .expect("only paths under the root are logged")
            .trim_start_matches('/');
        out.push((relative.to_string(), data));
    }
    out
}

fn parent(path: &str) -> String {
    path.rsplit_once('/').map_or("", |(dir, _)| dir).to_string()
}

/// `badger-relay outbox -c CONFIG COMMAND` on a crash state, asserting exit 0.
async fn outbox_ok(config: &Path, command: &str) -> String {
    let out = run_cli(
        cli(&["outbox", "-c", config.to_str().unwrap(), command]),
        DEADLINE,
    )
    .await;
    assert_eq!(
        out.code(),
        Some(0),
        "outbox {command} on the crash state of {}: {out:?}",
        config.display()
    );
    out.stdout
}

/// The (target, tweet id) pairs `outbox list` shows pending in `outbox`, once `outbox
/// verify` has found everything there readable.
async fn listed(cfg: &RelayConfig, dir: &Path, outbox: &Path) -> BTreeSet<(String, String)> {
    let config = dir.join("badger-relay.toml");
    std::fs::write(&config, cfg.render(outbox)).unwrap();
    outbox_ok(&config, "verify").await;
    // `ID TARGET tweet=TWEET ...`; an unreadable record has an empty tweet.
    outbox_ok(&config, "list")
        .await
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace().skip(1);
            let target = words.next()?;
            let tweet = words.next()?.strip_prefix("tweet=")?;
            Some((target.to_string(), tweet.to_string()))
        })
        .collect()
}

#[tokio::test]
async fn every_acknowledged_event_survives_a_power_cut_at_its_acknowledgement() {
    let work = tempfile::tempdir().unwrap();
    let shim = build_shim(work.path());
    let log = work.path().join("shim.log");

    let stream = StreamServer::start().await;
    // Two targets, so each event's body is stored once for both (format 3): the crash
    // state must hold the body as well as each target's record. `a` answers (its
    // records are removed meanwhile, the body must stay for `b`); `b` stalls.
    let (a, b) = (Receiver::start().await, Receiver::start().await);
    b.stall();
    let cfg = RelayConfig::new(&stream)
        .http_target("a", &a, "concurrency = 1")
        .http_target("b", &b, "concurrency = 1")
        .route(route("all").targets(&["a", "b"]))
        .tail(&server_table(Some(INGEST_SECRET)));
    let mut relay = Relay::prepare(&cfg, &[]);
    let root = std::fs::canonicalize(relay.dir()).unwrap().join("outbox");
    let root = root.to_str().expect("a UTF-8 path").to_string();
    relay.set_env(&[
        ("LD_PRELOAD", shim.to_str().unwrap()),
        ("CRASH_SHIM_LOG", log.to_str().unwrap()),
        ("CRASH_SHIM_ROOT", &root),
    ]);
    relay.restart_connected(&stream).await;
    let http = Http::of(&relay).await;

    let posted: Vec<String> = (0..=CHECKED).map(|n| (72_000 + n).to_string()).collect();
    for (n, id) in posted.iter().enumerate() {
        let body = serde_json::to_vec(&tweet_event(id)).unwrap();
        http.ingest_accepted(SIGNATURE_HEADER, &body).await;
        if n == 0 {
            // The first takes b's only slot, stalled from here on.
            b.wait_for_requests(1, DEADLINE).await;
        }
    }
    // Everything acknowledged reaches a (so some crash states have a's records gone).
    a.wait_for_tweet_ids(&posted.iter().cloned().collect(), DEADLINE)
        .await;
    relay.kill();
    let delivered_to_a: BTreeSet<String> = a.delivered_tweet_ids().into_iter().collect();

    let ops = parse_log(&std::fs::read(&log).expect("the shim wrote its log"));
    let acks: Vec<usize> = (0..ops.len())
        .filter(|&i| matches!(ops[i], Op::Ack))
        .collect();
    assert_eq!(acks.len(), posted.len(), "one 202 per event posted");
    let count = |f: fn(&Op) -> bool| ops.iter().filter(|op| f(op)).count();
    let syncs = count(|op| matches!(op, Op::Sync { .. }));
    eprintln!(
        "shim log: {} entries, {} writes, {syncs} file syncs, {} directory syncs, {} files created",
        ops.len(),
        count(|op| matches!(op, Op::Write { .. })),
        count(|op| matches!(op, Op::DirSync { .. })),
        count(|op| matches!(op, Op::Create { .. })),
    );
    assert!(
        syncs >= posted.len(),
        "{syncs} syncs for {} events",
        posted.len()
    );

    // At each acknowledgement: only what was synced, then also the first half of what
    // was written since the previous one, then everything (a disk keeps unsynced writes
    // or not, and sled must read any of those states).
    let cuts = acks.iter().enumerate().flat_map(|(k, &at)| {
        let previous = k.checked_sub(1).map_or(0, |p| acks[p]);
        [0, (previous + at) / 2, at].map(|kept| (k, at, kept))
    });
    for (k, at, kept) in cuts {
        let state = work.path().join(format!("crash-{k}-{kept}"));
        let outbox = state.join("outbox");
        std::fs::create_dir_all(&outbox).unwrap();
        for (relative, data) in crash_state(&ops, at, kept, &root) {
            let path = outbox.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, data).unwrap();
        }
        let pending = listed(&cfg, &state, &outbox).await;
        eprintln!(
            "crash at ack {k}, changes before entry {kept} kept: {} pending",
            pending.len()
        );
        // For a, a delivery may be gone from the outbox only if a was sent it.
        let lost: Vec<(&str, &String)> = posted[..=k]
            .iter()
            .flat_map(|id| [("a", id), ("b", id)])
            .filter(|&(t, id)| !pending.contains(&(t.to_string(), id.clone())))
            .filter(|&(t, id)| t == "b" || !delivered_to_a.contains(id))
            .collect();
        assert!(
            lost.is_empty(),
            "a power cut at the acknowledgement of event {} ({}), with the changes before \
             log entry {kept} kept, loses acknowledged deliveries {lost:?}; pending there: \
             {pending:?}",
            k,
            posted[k]
        );
    }
}
