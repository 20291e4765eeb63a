//! Filling a target's `template` with the fields of an event.
//!
//! The template was prepared once, at start-up (see [`Template`]): split into literal
//! text and `{field}` placeholders, where each placeholder takes the value of the
//! top-level event field of that name; or compiled as MiniJinja (`crate::jinja`), which
//! reads nested fields and runs conditions, loops and filters. Either way only the
//! values go through the platform's `escape`: the literal text is the operator's own and
//! may use the platform's markup on purpose (a Slack `<!here>`, a Discord `**bold**`),
//! while a value comes from a tweet and must never be able to.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::config::{Template, TemplatePart};

/// The template's text with every placeholder replaced by its field's value, escaped.
///
/// Strings are used as they are; numbers and booleans as their JSON text (`150`, `true`);
/// a missing or `null` field as nothing; an object or array as compact JSON. Nothing is
/// cut here: each platform cuts the result to its own limit.
///
/// A MiniJinja template that fails on this event (a loop over a number, say) renders
/// as nothing, which every platform treats like a blank template: the message goes out
/// in its default layout rather than not at all, since the tweet still deserves its
/// post. The first such failure of a template is logged as a warning, later ones at
/// debug, so a broken template does not flood the log.
pub fn render(
    template: &Template,
    event: &Map<String, Value>,
    escape: fn(&str) -> Cow<'_, str>,
) -> String {
    let mut out = String::new();
    for part in &template.parts {
        match part {
            TemplatePart::Literal(text) => out.push_str(text),
            TemplatePart::Field(name) => match event.get(name) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => out.push_str(&escape(s)),
                // `Value`'s Display is compact JSON: `150`, `true`, `{"a":1}`.
                Some(other) => out.push_str(&escape(&other.to_string())),
            },
            TemplatePart::Jinja(jinja) => match jinja.render(event, escape) {
                Ok(text) => out.push_str(&text),
                Err(error) => {
                    if jinja.first_failure() {
                        tracing::warn!(template = jinja.key(), %error, "A template failed to render an event; the default message is sent instead (further failures of this template are logged at debug)");
                    } else {
                        tracing::debug!(template = jinja.key(), %error, "A template failed to render an event; the default message is sent instead");
                    }
                    return String::new();
                }
            },
        }
    }
    out
}

/// A chat target's templated message for `event`: `None` when it has no template or the
/// template renders nothing but whitespace (or fails), so the platform's built-in layout
/// goes out instead.
pub fn message(
    template: Option<&Template>,
    event: &Map<String, Value>,
    escape: fn(&str) -> Cow<'_, str>,
) -> Option<String> {
    template
        .map(|t| render(t, event, escape))
        .filter(|r| !r.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(parts: &[(&str, bool)]) -> Template {
        Template {
            parts: parts
                .iter()
                .map(|&(s, field)| {
                    if field {
                        TemplatePart::Field(s.to_owned())
                    } else {
                        TemplatePart::Literal(s.to_owned())
                    }
                })
                .collect(),
        }
    }

    fn unchanged(s: &str) -> Cow<'_, str> {
        Cow::Borrowed(s)
    }

    fn shout(s: &str) -> Cow<'_, str> {
        Cow::Owned(s.to_uppercase())
    }

    #[test]
    fn fills_each_kind_of_value() {
        let event = json!({
            "author_username": "elonmusk",
            "latency_ms": 150,
            "ratio": 0.5,
            "retweet": false,
            "gone": null,
            "tags": ["a", "b"],
            "meta": {"k": 1},
        });
        let t = template(&[
            ("@", false),
            ("author_username", true),
            (" ", false),
            ("latency_ms", true),
            ("ms ", false),
            ("ratio", true),
            (" ", false),
            ("retweet", true),
            (" [", false),
            ("gone", true),
            ("|", false),
            ("missing", true),
            ("] ", false),
            ("tags", true),
            (" ", false),
            ("meta", true),
        ]);
        assert_eq!(
            render(&t, event.as_object().unwrap(), unchanged),
            r#"@elonmusk 150ms 0.5 false [|] ["a","b"] {"k":1}"#
        );
    }

    #[test]
    fn escapes_values_but_not_literals() {
        let event = json!({"tweet_text": "hi", "n": 1});
        let t = template(&[("Say: ", false), ("tweet_text", true), ("n", true)]);
        assert_eq!(render(&t, event.as_object().unwrap(), shout), "Say: HI1");
    }

    #[test]
    fn empty_template_renders_empty() {
        let event = json!({"a": "b"});
        assert_eq!(
            render(&template(&[]), event.as_object().unwrap(), unchanged),
            ""
        );
    }

    #[test]
    fn slack_escaping_applies_to_values_only() {
        let event = json!({"tweet_text": "<!channel> & <@U123>"});
        let t = template(&[("<!here> new: ", false), ("tweet_text", true)]);
        assert_eq!(
            render(&t, event.as_object().unwrap(), crate::target::slack::escape),
            "<!here> new: &lt;!channel&gt; &amp; &lt;@U123&gt;"
        );
    }
}
