//! The events the bench streams, and how the receiver checks them.
//!
//! Every event is a realistic `tweet.detected` frame of 400 to 440 bytes with a unique
//! `tweet_id` (dedupe would drop a repeat), plus two fields the relay passes on untouched:
//! `bench_seq` (which event this is) and `sent_ns` (when the stream server wrote it, in ns
//! since the bench's clock origin). The frame is a pure function of those two numbers,
//! so the receiver can rebuild it and check that the body arrived byte for byte.

use std::fmt::Write as _;

use serde::Deserialize;

/// Tweet ids are this plus the event's seq: 19 digits, like real ones.
pub const TWEET_ID_BASE: u64 = 1_900_000_000_000_000_000;

const MONITORS: [(&str, &str); 4] = [
    ("mon-7f3a2c91", "Tech Leaders"),
    ("mon-1b9e4410", "AI Labs"),
    ("mon-c0ffee42", "Space & Rockets"),
    ("mon-5eed0107", "Markets"),
];

const AUTHORS: [&str; 8] = [
    "elonmusk",
    "sama",
    "satyanadella",
    "demishassabis",
    "sundarpichai",
    "karpathy",
    "tim_cook",
    "JeffBezos",
];

const TEXTS: [&str; 4] = [
    "We are launching a new model today: faster and cheaper. Details in the thread 🧵",
    "Starship flight 12 is go for launch tomorrow at 7am, weather permitting 🚀",
    "Announcing new AI capabilities for every developer, in preview today",
    "Proud of the team: our protein design paper is out, with open weights",
];

/// Write the stream frame for `seq`, stamped `sent_ns`, into `out` (cleared first).
pub fn stream_event(out: &mut String, seq: u64, sent_ns: u64) {
    out.clear();
    let (monitor_id, monitor_name) = MONITORS[(seq % 4) as usize];
    let author = AUTHORS[((seq / 4) % 8) as usize];
    let text = TEXTS[((seq / 32) % 4) as usize];
    let id = TWEET_ID_BASE + seq;
    let _ = write!(
        out,
        r#"{{"event":"tweet.detected","monitor_id":"{monitor_id}","monitor_name":"{monitor_name}","tweet_id":"{id}","author_username":"{author}","tweet_text":"{text}","tweet_url":"https://x.com/{author}/status/{id}","tweet_published_at":"2026-03-13T12:00:00Z","detected_at":"2026-03-13T12:00:00.150Z","latency_ms":150,"bench_seq":{seq},"sent_ns":{sent_ns}}}"#
    );
}

/// The two fields the receiver reads back.
#[derive(Debug, Deserialize)]
pub struct Probe {
    pub bench_seq: u64,
    pub sent_ns: u64,
}

/// Read `bench_seq` and `sent_ns` from a received body and check that the body is exactly
/// the frame that was sent. `None` when it is not.
pub fn check_body(body: &[u8], scratch: &mut String) -> Option<Probe> {
    let probe: Probe = serde_json::from_slice(body).ok()?;
    stream_event(scratch, probe.bench_seq, probe.sent_ns);
    (scratch.as_bytes() == body).then_some(probe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut a = String::new();
        let mut b = String::new();
        stream_event(&mut a, 12_345, 987_654_321);
        let p = check_body(a.as_bytes(), &mut b).unwrap();
        assert_eq!((p.bench_seq, p.sent_ns), (12_345, 987_654_321));
        assert!((380..460).contains(&a.len()), "{}", a.len());
    }
}
