//! The on-disk form of one delivery.
//!
//! ```text
//! version  u8      1
//! attempts u32 BE  attempts made so far
//! enqueued u64 BE  ms since the Unix epoch: when the event was accepted (for max_age)
//! next     u64 BE  ms since the Unix epoch: no attempt before this
//! reason   u32 BE length, then UTF-8: the last error, or why it was dead-lettered
//! body     the rest: the event JSON exactly as received
//! ```
//! A fixed binary header rather than serde keeps a record's encoding obvious, cheap and
//! free of a schema crate; the version byte leaves room to change it.

use bytes::Bytes;

const VERSION: u8 = 1;
const HEADER: usize = 1 + 4 + 8 + 8 + 4;

/// One delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub attempts: u32,
    pub enqueued_ms: u64,
    pub next_attempt_ms: u64,
    /// The last error (pending) or the dead-letter reason (dead); empty before any attempt.
    pub reason: String,
    pub body: Bytes,
}

/// A stored value that is not a record this version can read.
#[derive(Debug, thiserror::Error)]
#[error("unreadable delivery record ({0})")]
pub struct CorruptRecord(&'static str);

impl Record {
    pub fn new(body: Bytes, now_ms: u64) -> Record {
        Record {
            attempts: 0,
            enqueued_ms: now_ms,
            next_attempt_ms: 0,
            reason: String::new(),
            body,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.reason.len() + self.body.len());
        out.push(VERSION);
        out.extend_from_slice(&self.attempts.to_be_bytes());
        out.extend_from_slice(&self.enqueued_ms.to_be_bytes());
        out.extend_from_slice(&self.next_attempt_ms.to_be_bytes());
        out.extend_from_slice(&(self.reason.len() as u32).to_be_bytes());
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, CorruptRecord> {
        if bytes.len() < HEADER {
            return Err(CorruptRecord("too short"));
        }
        if bytes[0] != VERSION {
            return Err(CorruptRecord("unknown version"));
        }
        let u32_at = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
        let u64_at = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().unwrap());
        let reason_len = u32_at(21) as usize;
        let rest = &bytes[HEADER..];
        if rest.len() < reason_len {
            return Err(CorruptRecord("truncated reason"));
        }
        let reason = std::str::from_utf8(&rest[..reason_len])
            .map_err(|_| CorruptRecord("reason is not UTF-8"))?
            .to_owned();
        Ok(Record {
            attempts: u32_at(1),
            enqueued_ms: u64_at(5),
            next_attempt_ms: u64_at(13),
            reason,
            body: Bytes::copy_from_slice(&rest[reason_len..]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let r = Record {
            attempts: 3,
            enqueued_ms: 1_700_000_000_000,
            next_attempt_ms: 1_700_000_005_000,
            reason: "HTTP 503: “busy”".into(),
            body: Bytes::from_static(br#"{"tweet_id":"1"}"#),
        };
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        let fresh = Record::new(Bytes::from_static(b"{}"), 5);
        assert_eq!(Record::decode(&fresh.encode()).unwrap(), fresh);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Record::decode(b"").is_err());
        assert!(Record::decode(&[2; 40]).is_err());
        let mut r = Record::new(Bytes::new(), 0).encode();
        r[24] = 200; // reason length past the end
        assert!(Record::decode(&r).is_err());
    }
}
