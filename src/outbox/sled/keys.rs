//! The key layout of the sled tree (see the [module doc](super) for what each holds).

use crate::outbox::State;

/// The key prefix of each state.
pub(crate) fn prefix(state: State) -> u8 {
    match state {
        State::Pending => b'p',
        State::Dead => b'd',
    }
}

/// `p/<target>\0<seq>` or `d/<target>\0<seq>`: one delivery.
pub(crate) fn key(state: State, target: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + target.len() + 1 + 8);
    k.push(prefix(state));
    k.push(b'/');
    k.extend_from_slice(target.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Every key of one target in one state starts with this.
pub(crate) fn target_prefix(state: State, target: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + target.len() + 1);
    k.push(prefix(state));
    k.push(b'/');
    k.extend_from_slice(target.as_bytes());
    k.push(0);
    k
}

/// `b/<seq>`: the body an event's deliveries share, when it has several.
pub(crate) fn body_key(seq: u64) -> [u8; 10] {
    let mut k = [0; 10];
    k[..2].copy_from_slice(b"b/");
    k[2..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// `k/<target>\0<dedupe key>`: one dedupe mark.
pub(crate) fn dedupe_key(target: &str, dedupe: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + target.len() + 1 + dedupe.len());
    k.extend_from_slice(b"k/");
    k.extend_from_slice(target.as_bytes());
    k.push(0);
    k.extend_from_slice(dedupe.as_bytes());
    k
}

/// Split `p/<target>\0<seq>` into its parts.
pub(crate) fn parse_key(k: &[u8]) -> Option<(State, &str, u64)> {
    let state = match k.first()? {
        b'p' => State::Pending,
        b'd' => State::Dead,
        _ => return None,
    };
    let rest = k.get(2..)?;
    let nul = rest.iter().position(|&b| b == 0)?;
    let target = std::str::from_utf8(&rest[..nul]).ok()?;
    let seq = u64::from_be_bytes(rest.get(nul + 1..)?.try_into().ok()?);
    Some((state, target, seq))
}
