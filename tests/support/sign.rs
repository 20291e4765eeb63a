//! Checking Standard Webhooks signatures the way a receiver would.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::receiver::Request;

/// The HMAC key for a configured `signing_secret`: a `whsec_` secret is base64-decoded
/// after the prefix; any other is used as its bytes.
pub fn signing_key(secret: &str) -> Vec<u8> {
    match secret.strip_prefix("whsec_") {
        Some(b64) => STANDARD
            .decode(b64)
            .expect("the test's whsec_ secret is valid base64"),
        None => secret.as_bytes().to_vec(),
    }
}

/// `base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))`.
pub fn sign(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks `webhook-signature` against `webhook-id`, `webhook-timestamp` and the raw
/// body. The header may list several space-separated `v1,<sig>` entries (key rotation,
/// as Standard Webhooks allows): one must match.
pub fn verify_webhook_signature(req: &Request, secret: &str) -> Result<(), String> {
    let id = req.header("webhook-id").ok_or("no webhook-id header")?;
    let ts = req
        .header("webhook-timestamp")
        .ok_or("no webhook-timestamp header")?;
    let header = req
        .header("webhook-signature")
        .ok_or("no webhook-signature header")?;
    let expected = sign(&signing_key(secret), id, ts, &req.body);
    let matches = header
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .any(|sig| sig == expected);
    if matches {
        Ok(())
    } else {
        Err(format!(
            "webhook-signature {header:?} does not match v1,{expected} \
             (id {id:?}, timestamp {ts:?}, {} body bytes)",
            req.body.len()
        ))
    }
}
