//! The `outbox` commands against a sled store at rest (`run` stopped: it holds the lock).

use std::collections::BTreeMap;

use super::keys::parse_key;
use super::record::SharedBody;
use super::store::Store;
use crate::outbox::{Admin, BadId, Counts, Listed, OutboxError, State, Verified};

impl Admin for Store {
    fn stats(&self) -> Result<BTreeMap<String, Counts>, OutboxError> {
        Ok(Store::stats(self)?
            .into_iter()
            .map(|(name, (pending, dead))| (name, Counts { pending, dead }))
            .collect())
    }

    fn list(&self, state: State, target: Option<&str>) -> Result<Vec<Listed>, OutboxError> {
        Store::list(self, state, target)
            .map(|item| {
                let stored = item?;
                let id = self.delivery_id(stored.seq);
                Ok(match stored.record {
                    Ok(r) => Listed::Readable {
                        id,
                        target: stored.target,
                        attempts: r.attempts,
                        enqueued_ms: r.enqueued_ms,
                        next_attempt_ms: r.next_attempt_ms,
                        reason: r.reason(),
                        body: r.body,
                    },
                    Err(e) => Listed::Unreadable {
                        id,
                        target: stored.target,
                        error: e.to_string(),
                    },
                })
            })
            .collect()
    }

    fn retry(
        &self,
        target: Option<&str>,
        ids: &[String],
    ) -> Result<Result<Vec<(String, String)>, BadId>, OutboxError> {
        let seqs = match ids
            .iter()
            .map(|id| self.parse_delivery_id(id))
            .collect::<Result<Vec<u64>, BadId>>()
        {
            Ok(seqs) => seqs,
            Err(bad) => return Ok(Err(bad)),
        };
        let moved = self.retry_dead(target, &seqs)?;
        Ok(Ok(moved
            .into_iter()
            .map(|(t, seq)| (self.delivery_id(seq), t))
            .collect()))
    }

    fn purge(&self, state: State, target: Option<&str>) -> Result<u64, OutboxError> {
        Store::purge(self, state, target)
    }

    fn targets(&self) -> Result<Vec<String>, OutboxError> {
        self.targets_with_deliveries()
    }

    fn size(&self) -> Result<(String, u64), OutboxError> {
        Ok((self.path().display().to_string(), self.size_on_disk()?))
    }

    fn verify(&self) -> Result<Verified, OutboxError> {
        let mut found = Verified::default();
        let db = self.db()?;
        for item in db.iter() {
            let (k, v) = item.map_err(|e| self.storage(e))?;
            let shown = || String::from_utf8_lossy(&k).replace('\0', "/");
            match k.first() {
                Some(b'p' | b'd') => match parse_key(&k) {
                    None => {
                        found
                            .unreadable
                            .push((shown(), String::new(), "a malformed key".into()))
                    }
                    Some((state, target, seq)) => match self.readable(&db, seq, &v)? {
                        Ok(_) if state == State::Pending => found.pending += 1,
                        Ok(_) => found.dead += 1,
                        Err(e) => found.unreadable.push((
                            self.delivery_id(seq),
                            target.to_owned(),
                            e.to_string(),
                        )),
                    },
                },
                Some(b'b') => {
                    if let Err(e) = SharedBody::decode(&v) {
                        found
                            .unreadable
                            .push((shown(), String::new(), e.to_string()));
                    }
                }
                Some(b'k') => {
                    let target = k
                        .get(2..)
                        .and_then(|r| r.split(|&b| b == 0).next())
                        .unwrap_or_default();
                    if v.len() == 8 {
                        found.marks += 1;
                    } else {
                        found.unreadable.push((
                            shown(),
                            String::from_utf8_lossy(target).into_owned(),
                            format!("a dedupe mark of {} bytes, not 8", v.len()),
                        ));
                    }
                }
                _ if k.as_ref() == b"m/instance" && v.len() != 8 => {
                    found.unreadable.push((
                        shown(),
                        String::new(),
                        format!("the instance marker holds {} bytes, not 8", v.len()),
                    ));
                }
                Some(b'm') => {}
                _ => found.unreadable.push((
                    shown(),
                    String::new(),
                    "a key this version does not know".into(),
                )),
            }
        }
        Ok(found)
    }
}
