//! The on-disk form of one delivery.
//!
//! Format 2 (written by this version for an event with one delivery, and for every dead
//! letter):
//! ```text
//! version  u8      2
//! attempts u32 BE  attempts made so far
//! enqueued u64 BE  ms since the Unix epoch: when the event was accepted (for max_age)
//! next     u64 BE  ms since the Unix epoch: no attempt before this
//! failure  u8 tag, then its fields (see `put_failure`): the last failure, 0 for none
//! cause    u8 tag, then its fields: why a dead letter was given up on, 0 for none
//! body     the rest: the event JSON exactly as received
//! ```
//! Format 3 (written by this version for each delivery of an event with several) is
//! format 2 with version 3 and no body: the body is stored once for all of the event's
//! deliveries, as a [`SharedBody`] under `b/<seq>`, and read from there.
//!
//! Format 1 (earlier versions) had a length-prefixed UTF-8 `reason` where format 2 has
//! `failure` and `cause`; it is still read, its reason kept as [`Failure::Recorded`], so
//! a store written before typed failures opens and drains.
//!
//! A fixed binary header rather than serde keeps a record's encoding obvious, cheap and
//! free of a schema crate; the version byte leaves room to change it.

use std::time::Duration;

use bytes::Bytes;

use crate::failure::{Cause, Failure};

const VERSION_1: u8 = 1;
const VERSION: u8 = 2;
/// Format 2 without the body: it is in the event's [`SharedBody`].
const VERSION_SHARED: u8 = 3;
/// The version byte of a [`SharedBody`].
const BODY_VERSION: u8 = 1;
/// version, attempts, enqueued, next.
const FIXED: usize = 1 + 4 + 8 + 8;

/// One delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// Attempts made so far.
    pub attempts: u32,
    /// When the event was accepted, ms since the epoch.
    pub enqueued_ms: u64,
    /// No attempt before this, ms since the epoch (0: at once).
    pub next_attempt_ms: u64,
    /// The last failure; `None` before any attempt.
    pub failure: Option<Failure>,
    /// For a dead letter: why it was given up on.
    pub cause: Option<Cause>,
    /// The event JSON exactly as received. Empty in a record just decoded from format 3:
    /// the store fills it in from the event's [`SharedBody`] before anyone reads it.
    pub body: Bytes,
    /// The body is stored once for the event's deliveries (format 3), not in the record:
    /// a multi-target event's body is written once, and each target's record stays small
    /// (sled copies a whole leaf of records on every write).
    pub shared: bool,
}

/// The body of an event with several deliveries, stored once under `b/<seq>`:
/// ```text
/// version  u8      1
/// count    u16 BE  how many targets share it
/// target   u16 BE length, then the name's bytes; `count` times
/// body     the rest: the event JSON exactly as received
/// ```
/// The names say whose pending records may still read it: it is removed right after
/// the last of them (dead letters keep a copy of their own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SharedBody {
    /// The targets the event got a delivery for.
    pub targets: Vec<String>,
    /// The event JSON exactly as received.
    pub body: Bytes,
}

impl SharedBody {
    /// `None` when the names do not fit the format (more than 65,535 targets, or a name
    /// longer than 65,535 bytes): the event's records then carry the body themselves.
    pub(crate) fn encode(targets: &[&str], body: &[u8]) -> Option<Vec<u8>> {
        let count = u16::try_from(targets.len()).ok()?;
        let names: usize = targets.iter().map(|t| 2 + t.len()).sum();
        let mut out = Vec::with_capacity(3 + names + body.len());
        out.push(BODY_VERSION);
        out.extend_from_slice(&count.to_be_bytes());
        for t in targets {
            out.extend_from_slice(&u16::try_from(t.len()).ok()?.to_be_bytes());
            out.extend_from_slice(t.as_bytes());
        }
        out.extend_from_slice(body);
        Some(out)
    }

    /// The target names alone, without copying the body: what a completion reads.
    pub(crate) fn targets(bytes: &[u8]) -> Result<(Vec<&str>, usize), CorruptRecord> {
        let mut r = Reader { bytes, at: 0 };
        if r.u8()? != BODY_VERSION {
            return Err(CorruptRecord("unknown shared body version"));
        }
        let count = r.u16()?;
        let mut names = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let len = usize::from(r.u16()?);
            let name = r.take(len)?;
            names.push(
                std::str::from_utf8(name).map_err(|_| CorruptRecord("target name is not UTF-8"))?,
            );
        }
        Ok((names, r.at))
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<SharedBody, CorruptRecord> {
        let (names, at) = SharedBody::targets(bytes)?;
        Ok(SharedBody {
            targets: names.into_iter().map(str::to_owned).collect(),
            body: Bytes::copy_from_slice(&bytes[at..]),
        })
    }
}

/// A stored value that is not a record this version can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable delivery record ({0})")]
pub(crate) struct CorruptRecord(&'static str);

impl CorruptRecord {
    pub(crate) fn new(why: &'static str) -> CorruptRecord {
        CorruptRecord(why)
    }
}

impl Record {
    /// A delivery accepted at `now_ms`, never attempted.
    pub(crate) fn new(body: Bytes, now_ms: u64) -> Record {
        Record {
            attempts: 0,
            enqueued_ms: now_ms,
            next_attempt_ms: 0,
            failure: None,
            cause: None,
            body,
            shared: false,
        }
    }

    /// A delivery of an event with several, accepted at `now_ms`: its body is stored once,
    /// in the event's [`SharedBody`].
    pub(crate) fn new_shared(now_ms: u64) -> Record {
        Record {
            shared: true,
            ..Record::new(Bytes::new(), now_ms)
        }
    }

    /// The reason a person reads: the dead-letter sentence, or the last failure.
    pub(crate) fn reason(&self) -> Option<String> {
        let failure = self.failure.clone()?;
        Some(match self.cause {
            Some(cause) => crate::failure::DeadLetter { cause, failure }.to_string(),
            None => failure.to_string(),
        })
    }

    /// Whether a stored value is a record whose body is shared (format 3).
    pub(crate) fn is_shared(value: &[u8]) -> bool {
        value.first() == Some(&VERSION_SHARED)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let body: &[u8] = if self.shared { &[] } else { &self.body };
        let mut out = Vec::with_capacity(FIXED + 16 + body.len());
        out.push(if self.shared { VERSION_SHARED } else { VERSION });
        out.extend_from_slice(&self.attempts.to_be_bytes());
        out.extend_from_slice(&self.enqueued_ms.to_be_bytes());
        out.extend_from_slice(&self.next_attempt_ms.to_be_bytes());
        put_failure(&mut out, self.failure.as_ref());
        put_cause(&mut out, self.cause);
        out.extend_from_slice(body);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Record, CorruptRecord> {
        let mut r = Reader { bytes, at: 0 };
        let version = r.u8()?;
        if ![VERSION_1, VERSION, VERSION_SHARED].contains(&version) {
            return Err(CorruptRecord("unknown version"));
        }
        let attempts = r.u32()?;
        let enqueued_ms = r.u64()?;
        let next_attempt_ms = r.u64()?;
        let (failure, cause) = if version == VERSION_1 {
            let reason = r.text()?;
            (
                (!reason.is_empty()).then_some(Failure::Recorded(reason)),
                None,
            )
        } else {
            (r.failure()?, r.cause()?)
        };
        let shared = version == VERSION_SHARED;
        if shared && r.at != bytes.len() {
            return Err(CorruptRecord(
                "a shared-body record with bytes after its header",
            ));
        }
        Ok(Record {
            attempts,
            enqueued_ms,
            next_attempt_ms,
            failure,
            cause,
            body: Bytes::copy_from_slice(&bytes[r.at..]),
            shared,
        })
    }
}

fn put_text(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_failure(out: &mut Vec<u8>, failure: Option<&Failure>) {
    match failure {
        None => out.push(0),
        Some(Failure::Rejected { status, body }) => {
            out.push(1);
            out.extend_from_slice(&status.to_be_bytes());
            put_text(out, body);
        }
        Some(Failure::TimedOut { after }) => {
            out.push(2);
            out.extend_from_slice(&crate::retry::millis(*after).to_be_bytes());
        }
        Some(Failure::Unreachable { error }) => {
            out.push(3);
            put_text(out, error);
        }
        Some(Failure::Unrenderable { error }) => {
            out.push(4);
            put_text(out, error);
        }
        Some(Failure::TargetGone { why }) => {
            out.push(5);
            put_text(out, why);
        }
        Some(Failure::Internal) => out.push(6),
        Some(Failure::Recorded(text)) => {
            out.push(7);
            put_text(out, text);
        }
    }
}

fn put_cause(out: &mut Vec<u8>, cause: Option<Cause>) {
    match cause {
        None => out.push(0),
        Some(Cause::Permanent) => out.push(1),
        Some(Cause::Exhausted { attempts, age }) => {
            out.push(2);
            out.extend_from_slice(&attempts.to_be_bytes());
            out.extend_from_slice(&crate::retry::millis(age).to_be_bytes());
        }
        Some(Cause::WaitPastMaxAge { max_age }) => {
            out.push(3);
            out.extend_from_slice(&crate::retry::millis(max_age).to_be_bytes());
        }
    }
}

/// A cursor over a stored value; every read checks the length.
struct Reader<'a> {
    /// The whole stored value.
    bytes: &'a [u8],
    /// The next byte to read.
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CorruptRecord> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(CorruptRecord("too short"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, CorruptRecord> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, CorruptRecord> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, CorruptRecord> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, CorruptRecord> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn text(&mut self) -> Result<String, CorruptRecord> {
        let len = self.u32()? as usize;
        let bytes = self
            .take(len)
            .map_err(|_| CorruptRecord("truncated text"))?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| CorruptRecord("text is not UTF-8"))
    }

    fn failure(&mut self) -> Result<Option<Failure>, CorruptRecord> {
        Ok(Some(match self.u8()? {
            0 => return Ok(None),
            1 => Failure::Rejected {
                status: self.u16()?,
                body: self.text()?,
            },
            2 => Failure::TimedOut {
                after: Duration::from_millis(self.u64()?),
            },
            3 => Failure::Unreachable {
                error: self.text()?,
            },
            4 => Failure::Unrenderable {
                error: self.text()?,
            },
            5 => Failure::TargetGone { why: self.text()? },
            6 => Failure::Internal,
            7 => Failure::Recorded(self.text()?),
            _ => return Err(CorruptRecord("unknown failure kind")),
        }))
    }

    fn cause(&mut self) -> Result<Option<Cause>, CorruptRecord> {
        Ok(Some(match self.u8()? {
            0 => return Ok(None),
            1 => Cause::Permanent,
            2 => Cause::Exhausted {
                attempts: self.u32()?,
                age: Duration::from_millis(self.u64()?),
            },
            3 => Cause::WaitPastMaxAge {
                max_age: Duration::from_millis(self.u64()?),
            },
            _ => return Err(CorruptRecord("unknown dead-letter cause")),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_failure() -> Vec<Failure> {
        vec![
            Failure::Rejected {
                status: 503,
                body: "“busy”".into(),
            },
            Failure::Rejected {
                status: 404,
                body: String::new(),
            },
            Failure::TimedOut {
                after: Duration::from_millis(1500),
            },
            Failure::Unreachable {
                error: "connection refused".into(),
            },
            Failure::Unrenderable {
                error: "not an object".into(),
            },
            Failure::TargetGone { why: "gone".into() },
            Failure::Internal,
            Failure::Recorded("HTTP 500".into()),
        ]
    }

    #[test]
    fn round_trip() {
        let causes = [
            None,
            Some(Cause::Permanent),
            Some(Cause::Exhausted {
                attempts: 7,
                age: Duration::from_secs(90),
            }),
            Some(Cause::WaitPastMaxAge {
                max_age: Duration::from_secs(3600),
            }),
        ];
        for failure in every_failure() {
            for cause in causes {
                let r = Record {
                    attempts: 3,
                    enqueued_ms: 1_700_000_000_000,
                    next_attempt_ms: 1_700_000_005_000,
                    failure: Some(failure.clone()),
                    cause,
                    body: Bytes::from_static(br#"{"tweet_id":"1"}"#),
                    shared: false,
                };
                assert_eq!(Record::decode(&r.encode()).unwrap(), r);
                // Format 3: the same header, and no body of its own.
                let shared = Record {
                    shared: true,
                    body: Bytes::new(),
                    ..r.clone()
                };
                let encoded = shared.encode();
                assert_eq!(encoded.len(), r.encode().len() - r.body.len());
                assert!(Record::is_shared(&encoded) && !Record::is_shared(&r.encode()));
                assert_eq!(Record::decode(&encoded).unwrap(), shared);
            }
        }
        let fresh = Record::new(Bytes::from_static(b"{}"), 5);
        assert_eq!(Record::decode(&fresh.encode()).unwrap(), fresh);
    }

    #[test]
    fn a_shared_record_never_carries_a_body_and_a_shared_body_round_trips() {
        // A shared record encodes without the body it was filled in with.
        let filled = Record {
            body: Bytes::from_static(b"{\"a\":1}"),
            ..Record::new_shared(7)
        };
        let back = Record::decode(&filled.encode()).unwrap();
        assert!(back.shared);
        assert!(back.body.is_empty());
        // Bytes after a shared record's header are damage, not a body.
        let mut long = Record::new_shared(7).encode();
        long.push(b'{');
        assert!(Record::decode(&long).is_err());

        let names = ["slack", "ops.discord", ""];
        let encoded = SharedBody::encode(&names, b"{\"tweet_id\":\"1\"}").unwrap();
        let (read, at) = SharedBody::targets(&encoded).unwrap();
        assert_eq!(read, names);
        assert_eq!(&encoded[at..], b"{\"tweet_id\":\"1\"}");
        let decoded = SharedBody::decode(&encoded).unwrap();
        assert_eq!(decoded.targets, names);
        let too_long = "t".repeat(usize::from(u16::MAX) + 1);
        assert_eq!(SharedBody::encode(&["a", &too_long], b"{}"), None);
        assert_eq!(decoded.body.as_ref(), b"{\"tweet_id\":\"1\"}");
        // Every prefix is an error or a body, never a panic; a wrong version is an error.
        for n in 0..encoded.len() {
            let _ = SharedBody::decode(&encoded[..n]);
        }
        assert!(SharedBody::decode(&[]).is_err());
        let mut other = encoded.clone();
        other[0] = 9;
        assert!(SharedBody::decode(&other).is_err());
    }

    /// A record exactly as the version before typed failures wrote it.
    fn version_1(attempts: u32, reason: &str, body: &[u8]) -> Vec<u8> {
        let mut out = vec![1];
        out.extend_from_slice(&attempts.to_be_bytes());
        out.extend_from_slice(&1_700_000_000_000u64.to_be_bytes());
        out.extend_from_slice(&1_700_000_009_000u64.to_be_bytes());
        out.extend_from_slice(&(reason.len() as u32).to_be_bytes());
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn format_1_records_are_still_read() {
        let old = Record::decode(&version_1(2, "HTTP 503: busy", b"{\"a\":1}")).unwrap();
        assert_eq!(old.attempts, 2);
        assert_eq!(old.next_attempt_ms, 1_700_000_009_000);
        assert_eq!(
            old.failure,
            Some(Failure::Recorded("HTTP 503: busy".into()))
        );
        assert_eq!(old.reason().as_deref(), Some("HTTP 503: busy"));
        assert_eq!(old.body.as_ref(), b"{\"a\":1}");
        let fresh = Record::decode(&version_1(0, "", b"{}")).unwrap();
        assert_eq!(fresh.failure, None);
        assert_eq!(fresh.reason(), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Record::decode(b"").is_err());
        assert!(Record::decode(&[9; 40]).is_err(), "an unknown version");
        assert!(
            Record::decode(&[3; 40]).is_err(),
            "format 3 with bytes after it"
        );
        let mut old = version_1(0, "", b"");
        old[24] = 200; // reason length past the end
        assert!(Record::decode(&old).is_err());
        let mut r = Record::new(Bytes::new(), 0).encode();
        r[FIXED] = 99; // unknown failure kind
        assert!(Record::decode(&r).is_err());
        // Every prefix of a valid record is an error or a record, never a panic.
        let full = Record {
            failure: Some(Failure::Rejected {
                status: 500,
                body: "x".into(),
            }),
            ..Record::new(Bytes::from_static(b"{}"), 1)
        }
        .encode();
        for n in 0..full.len() {
            let _ = Record::decode(&full[..n]);
        }
    }
}
