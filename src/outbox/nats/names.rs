//! Names on the engine: streams, subjects, consumers, message ids and headers.

use sha2::{Digest, Sha256};

/// Header: the delivery's `webhook-id`.
pub(super) const ID: &str = "Badger-Id";
/// Header: the target's name as configured.
pub(super) const TARGET: &str = "Badger-Target";
/// Header: when the event was accepted, ms since the epoch (for `max_age`).
pub(super) const ACCEPTED: &str = "Badger-Accepted";
/// Header of a dead letter: attempts made.
pub(super) const ATTEMPTS: &str = "Badger-Attempts";
/// Header of a dead letter: why it was given up on.
pub(super) const REASON: &str = "Badger-Reason";
/// Header of a dead letter: the delivery's message id, for `outbox retry`.
pub(super) const MSG_ID: &str = "Badger-Msg-Id";

/// The names derived from `[outbox.nats] stream`.
#[derive(Debug, Clone)]
pub(super) struct Names {
    /// The deliveries' stream.
    pub stream: String,
    /// The dead letters' stream: `<stream>_DEAD`.
    pub dead: String,
}

impl Names {
    pub(super) fn new(stream: &str) -> Names {
        Names {
            stream: stream.to_owned(),
            dead: format!("{stream}_DEAD"),
        }
    }

    /// Where a target's deliveries are published.
    pub(super) fn subject(&self, target: &str) -> String {
        format!("{}.d.{}", self.stream, token(target))
    }

    /// Where a target's dead letters are published.
    pub(super) fn dead_subject(&self, target: &str) -> String {
        format!("{}.d.{}", self.dead, token(target))
    }

    /// The target of a subject of either stream, when it is one of ours.
    pub(super) fn target_of(&self, subject: &str) -> Option<String> {
        let rest = subject
            .strip_prefix(&format!("{}.d.", self.stream))
            .or_else(|| subject.strip_prefix(&format!("{}.d.", self.dead)))?;
        untoken(rest)
    }

    /// The delivery's `webhook-id`: the same from every replica and every retry.
    pub(super) fn webhook_id(&self, msg_id: &str) -> String {
        let digest = Sha256::digest(format!("{}\0{msg_id}", self.stream).as_bytes());
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        format!("msg_js{hex}")
    }
}

/// The durable consumer of a target.
pub(super) fn consumer(target: &str) -> String {
    token(target)
}

/// A delivery's `Nats-Msg-Id`: its target and dedupe key.
pub(super) fn msg_id(target: &str, dedupe_key: &str) -> String {
    format!("{target}:{dedupe_key}")
}

/// A name as one subject token and a consumer name: letters, digits and `-` stay,
/// anything else becomes `_XX` (hex), so no `.`, `*`, `>` or space remains.
pub(super) fn token(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02X}"));
        }
    }
    out
}

/// The other direction of [`token`].
pub(super) fn untoken(token: &str) -> Option<String> {
    crate::escape::unescape(token, b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_map_to_safe_tokens_and_back() {
        for name in ["team-slack", "a.b", "a_b", "x.y_z-1", "A9"] {
            let t = token(name);
            assert!(
                t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{t}"
            );
            assert_eq!(untoken(&t).as_deref(), Some(name));
        }
        assert_ne!(token("a.b"), token("a_b"));
        let names = Names::new("S");
        assert_eq!(names.subject("a.b"), "S.d.a_2Eb");
        assert_eq!(names.target_of("S_DEAD.d.a_2Eb").as_deref(), Some("a.b"));
        assert_eq!(names.target_of("other.d.x"), None);
    }

    #[test]
    fn the_webhook_id_depends_on_stream_and_message_id_only() {
        let a = Names::new("S").webhook_id("t:tweet:1");
        assert_eq!(a, Names::new("S").webhook_id("t:tweet:1"));
        assert_ne!(a, Names::new("S").webhook_id("t:tweet:2"));
        assert_ne!(a, Names::new("T").webhook_id("t:tweet:1"));
        assert!(a.starts_with("msg_js") && a.len() == 30, "{a}");
    }
}
