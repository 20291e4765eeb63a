//! The generic HTTP target: the event bytes as received (or the target's `body_template`
//! filled from the event), Standard Webhooks headers.
//!
//! `webhook-signature` is `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")),
//! as <https://www.standardwebhooks.com/> specifies, so receivers can use any Standard
//! Webhooks library to verify it.

use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;

use super::{RenderError, Rendered};
use crate::config::{HttpMethod, HttpOptions, Jinja};
use crate::jinja::{self, Output};

/// The request: the event bytes as received (or the rendered `body_template`), with the
/// Standard Webhooks headers; the signature covers the body actually sent.
///
/// A body template that fails on this event, or a JSON body that does not parse, is a
/// [`RenderError`]: the delivery is dead-lettered with the reason (sending the same
/// event again would fail the same way, and a broken body must never reach the receiver).
pub(crate) fn render(
    opts: &HttpOptions,
    url: &reqwest::Url,
    delivery_id: &str,
    timestamp: u64,
    event: &Bytes,
) -> Result<Rendered, RenderError> {
    let method = match opts.method {
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
    };
    let mut headers = webhook_headers(delivery_id, timestamp);
    // Its `Content-Type` is the target's, set once with its other headers.
    let body = match &opts.body_template {
        None => event.clone(),
        Some(template) => Bytes::from(render_body(template, event)?),
    };
    if let Some(key) = &opts.signing_key {
        let sig = sign(&key.0, delivery_id, timestamp, &body);
        headers.insert(
            HeaderName::from_static("webhook-signature"),
            HeaderValue::from_str(&sig).expect("base64 is ASCII"),
        );
    }
    Ok((method, url.clone(), body, headers))
}

/// The body `template` makes of `event`: checked to be JSON when it is meant to be.
pub(crate) fn render_body(template: &Jinja, event: &Bytes) -> Result<String, RenderError> {
    let event = super::parse_object(event)?;
    let escape = match template.output() {
        Output::JsonBody => jinja::json_string,
        Output::TextBody | Output::Chat => jinja::as_is,
    };
    let body = template
        .render(&event, escape)
        .map_err(|e| RenderError(format!("the body_template failed: {e}")))?;
    if template.output() == Output::JsonBody
        && let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&body)
    {
        return Err(RenderError(format!(
            "the body_template did not render valid JSON ({e}); write values as {{{{ field | tojson }}}}, or inside quotes as \"{{{{ field }}}}\""
        )));
    }
    Ok(body)
}

/// `webhook-id` and `webhook-timestamp`, as Standard Webhooks has them (also on what a
/// nats target publishes).
pub(crate) fn webhook_headers(delivery_id: &str, timestamp: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let id = HeaderValue::from_str(delivery_id).expect("delivery ids are ASCII");
    headers.insert(HeaderName::from_static("webhook-id"), id);
    headers.insert(
        HeaderName::from_static("webhook-timestamp"),
        HeaderValue::from(timestamp),
    );
    headers
}

/// The value of `webhook-signature` for one request.
pub fn sign(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("v1,{sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The example from the Standard Webhooks specification's reference libraries.
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let sig = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
