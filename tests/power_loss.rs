//! What survives a power loss: every acknowledgement follows an fsync of the files that
//! hold it. `kill -9` only tests what the kernel keeps; a power cut or a VM crash loses
//! whatever was written but not synced, and sled's own flush syncs with
//! `sync_file_range`, which is not an fsync (see src/outbox/fsync.rs).
//!
//! The relay runs with `strace -f` attached (Debian's `strace` package; `.ci/run`
//! installs it, and without it the test fails, never skips). Events are posted to
//! `/ingest` one after another, so that nothing else writes meanwhile (the only target
//! stalls on its first request, holding everything behind it). The trace is then read
//! back in order: for each `HTTP/1.1 202` written to a socket, the last write to sled's
//! log before it must be followed by a completed `fdatasync` or `fsync` of that log
//! started after the write, and that sync must finish before the 202 is written.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::server::*;
use support::*;

/// How many acknowledgements are checked.
const CHECKED: usize = 20;

/// `strace -f` attached to `pid`, writing its trace to `out`.
struct Strace {
    child: Child,
}

impl Strace {
    fn attach(pid: u32, out: &Path) -> Strace {
        let child = Command::new("strace")
            .args(["-f", "-yy", "-s", "48", "-o"])
            .arg(out)
            .args([
                "-e",
                "trace=pwrite64,pwritev,pwritev2,write,writev,sendto,sendmsg,fsync,fdatasync,sync_file_range",
                "-p",
                &pid.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run strace ({e}): install Debian's strace package \
                     (apt-get install strace); .ci/run does"
                )
            });
        Strace { child }
    }

    /// SIGTERM (strace detaches and writes out what it has), then reap.
    fn detach(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM strace failed: {status}");
        self.child.wait().expect("wait for strace");
    }
}

/// One syscall of the trace, in the order strace reported it (a call another thread
/// interrupted is two lines, `<unfinished ...>` and `<... resumed>`: `start` is the
/// index of the first, `end` of the second).
#[derive(Debug)]
struct Call {
    name: String,
    /// The first argument as strace printed it with `-yy`: the fd and its path.
    fd: String,
    /// The rest of the line (buffers, result).
    rest: String,
    start: usize,
    end: usize,
    ok: bool,
}

fn parse(trace: &str) -> Vec<Call> {
    let mut open: std::collections::HashMap<String, (String, String, String, usize)> =
        Default::default();
    let mut calls = Vec::new();
    for (i, line) in trace.lines().enumerate() {
        let Some((pid, body)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let body = body.trim_start();
        if let Some(resumed) = body.strip_prefix("<... ") {
            let Some((name, rest)) = resumed.split_once(" resumed>") else {
                continue;
            };
            if let Some((n, fd, first, start)) = open.remove(pid) {
                debug_assert_eq!(n, name);
                calls.push(Call {
                    name: n,
                    fd,
                    ok: result_ok(rest),
                    rest: format!("{first}{rest}"),
                    start,
                    end: i,
                });
            }
            continue;
        }
        let Some((name, args)) = body.split_once('(') else {
            continue;
        };
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let fd = args
            .split_once([',', ')'])
            .map_or(args, |(fd, _)| fd)
            .to_string();
        if let Some(first) = args.strip_suffix(" <unfinished ...>") {
            open.insert(pid.to_string(), (name.into(), fd, first.into(), i));
        } else {
            calls.push(Call {
                name: name.into(),
                fd,
                ok: result_ok(args),
                rest: args.into(),
                start: i,
                end: i,
            });
        }
    }
    calls.sort_by_key(|c| c.end);
    calls
}

fn result_ok(tail: &str) -> bool {
    tail.rsplit_once(") = ")
        .is_some_and(|(_, ret)| !ret.trim_start().starts_with('-'))
}

/// POST one tweet to `/ingest`, asserting the 202.
async fn ingest(http: &Http, tweet_id: &str) {
    let body = serde_json::to_vec(&tweet_event(tweet_id)).unwrap();
    http.ingest_accepted(SIGNATURE_HEADER, &body).await;
}

#[tokio::test]
async fn every_ingest_202_follows_an_fdatasync_of_the_log_that_holds_it() {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    hook.stall();
    let cfg = RelayConfig::new(&stream)
        .http_target("hook", &hook, "concurrency = 1")
        .route(route("all").targets(&["hook"]))
        .tail(&server_table(Some(INGEST_SECRET)));
    let relay = Relay::start_connected(&cfg, &stream).await;
    let http = Http::of(&relay).await;
    // The first event takes the target's only slot, stalled from here on: no completion
    // or retry writes while the checked events come in.
    ingest(&http, "69999").await;
    hook.wait_for_requests(1, DEADLINE).await;

    let trace_path = relay.dir().join("strace.txt");
    let strace = Strace::attach(relay.pid(), &trace_path);
    // Attached once a request of ours shows up in the trace.
    let attaching = std::time::Instant::now();
    for n in 0.. {
        ingest(&http, &format!("70{n:03}")).await;
        let traced = std::fs::read_to_string(&trace_path).unwrap_or_default();
        if traced.contains("HTTP/1.1 202") {
            break;
        }
        assert!(
            attaching.elapsed() < DEADLINE,
            "strace did not attach within {DEADLINE:?} ({n} requests); trace:\n{traced}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = std::fs::read_to_string(&trace_path).unwrap_or_default();
    let skip = before.matches("HTTP/1.1 202").count();
    for n in 0..CHECKED {
        ingest(&http, &format!("71{n:03}")).await;
    }
    strace.detach();

    let trace = std::fs::read_to_string(&trace_path).expect("read the trace");
    let calls = parse(&trace);
    let log = |c: &Call| c.fd.ends_with("/outbox/db/db>");
    let acks: Vec<&Call> = calls
        .iter()
        .filter(|c| c.rest.contains("HTTP/1.1 202"))
        .skip(skip)
        .collect();
    assert!(
        acks.len() >= CHECKED,
        "{} 202s in the trace, want {CHECKED}:\n{trace}",
        acks.len()
    );
    for ack in &acks {
        let written = calls
            .iter()
            .rfind(|c| c.name.starts_with("pwrite") && log(c) && c.end < ack.start)
            .unwrap_or_else(|| panic!("no write to the log before the 202 at line {}", ack.start));
        let synced = calls.iter().any(|c| {
            matches!(c.name.as_str(), "fdatasync" | "fsync")
                && log(c)
                && c.ok
                && c.start > written.end
                && c.end < ack.start
        });
        assert!(
            synced,
            "the 202 at trace line {} was written with the log write at line {} not yet \
             fsynced: a power loss could lose that acknowledged event\n{trace}",
            ack.start + 1,
            written.end + 1
        );
    }
}
