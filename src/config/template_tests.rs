//! The template keys: `template` and `thread_name` in MiniJinja or the older form,
//! `body_template` and `content_type` on http targets, and template errors located in
//! the file.

use std::path::Path;

use super::*;
use crate::jinja::Output;

fn target(kind: &str, extra: &str) -> String {
    format!("[targets.t]\ntype = \"{kind}\"\nurl = \"https://example.com/hook\"\n{extra}")
}

fn parse(text: &str) -> Config {
    Config::parse(text, Path::new("relay.toml"), &|_| None).unwrap_or_else(|e| panic!("{e}"))
}

fn error(text: &str) -> String {
    Config::parse(text, Path::new("relay.toml"), &|_| None)
        .expect_err("the config should be rejected")
        .to_string()
}

fn http(config: &Config) -> &HttpOptions {
    match &config.targets[0].kind {
        TargetKind::Http(o) => o,
        other => panic!("not http: {other:?}"),
    }
}

#[test]
fn double_braces_make_a_minijinja_template_and_single_ones_the_older_form() {
    let c = parse(&target(
        "slack",
        "template = \"{{ tweet_data.lang }}: {{ tweet_text }}\"\n",
    ));
    let TargetKind::Slack(o) = &c.targets[0].kind else {
        panic!()
    };
    let parts = &o.template.as_ref().unwrap().parts;
    assert!(matches!(parts.as_slice(), [TemplatePart::Jinja(j)] if j.output() == Output::Chat));
    assert_eq!(
        match parts.as_slice() {
            [TemplatePart::Jinja(j)] => j.key(),
            _ => "",
        },
        "targets.t.template"
    );

    let c = parse(&target("discord", "thread_name = \"{author_username}\"\n"));
    let TargetKind::Discord(o) = &c.targets[0].kind else {
        panic!()
    };
    assert_eq!(
        o.thread_name.as_ref().unwrap().parts,
        [TemplatePart::Field("author_username".into())]
    );
    let c = parse(&target(
        "discord",
        "thread_name = \"{% if author_username %}@{{ author_username }}{% endif %}\"\n",
    ));
    let TargetKind::Discord(o) = &c.targets[0].kind else {
        panic!()
    };
    assert!(matches!(
        o.thread_name.as_ref().unwrap().parts.as_slice(),
        [TemplatePart::Jinja(_)]
    ));
}

#[test]
fn a_template_error_points_at_its_own_line_and_column_in_the_file() {
    // The value starts at column 12; its text one further; `uppper` 24 bytes into it.
    assert_eq!(
        error(&target(
            "slack",
            "template = \"Hi {{ author_username | uppper }}\"\n"
        )),
        "relay.toml:4:37: targets.t.template: unknown filter `uppper` (line 1, column 25 of the template)"
    );
    // A multi-line literal string: the template's line 2 is the file's line 6.
    assert_eq!(
        error(&target(
            "discord",
            "template = '''\nNew tweet\n  {{ tweet_text | bogus }}\n'''\n"
        )),
        "relay.toml:6:19: targets.t.template: unknown filter `bogus` (line 2, column 19 of the template)"
    );
    // Escape sequences shift the text against the file: the value is pointed at, and
    // the template's own line and column say where in it.
    let e = error(&target("slack", "template = \"a\\n{{ x | nope }}\"\n"));
    assert!(
        e.starts_with("relay.toml:4:12: targets.t.template: unknown filter `nope` (line 2, column 8 of the template)"),
        "{e}"
    );
    let e = error(&target("slack", "template = \"{% if %}x{% endif %}\"\n"));
    assert!(e.starts_with("relay.toml:4:"), "{e}");
    assert!(e.contains("targets.t.template: syntax error: "), "{e}");
    assert!(e.contains("(line 1, column "), "{e}");
}

#[test]
fn safe_cannot_be_used_in_any_template() {
    for kind in ["slack", "discord"] {
        let e = error(&target(kind, "template = \"{{ tweet_text | safe }}\"\n"));
        assert!(e.contains("the `safe` filter is not available"), "{e}");
    }
    let e = error(&target(
        "http",
        "body_template = \"{{ tweet_text | safe }}\"\n",
    ));
    assert!(e.contains("the `safe` filter is not available"), "{e}");
}

#[test]
fn body_template_and_content_type_on_http_targets() {
    let c = parse(&target(
        "http",
        "body_template = '{\"t\": {{ tweet_text | tojson }}}'\n",
    ));
    let o = http(&c);
    assert_eq!(o.body_template.as_ref().unwrap().output(), Output::JsonBody);
    assert_eq!(o.content_type, None);

    let c = parse(&target(
        "http",
        "body_template = \"{{ tweet_text }}\"\ncontent_type = \"text/plain; charset=utf-8\"\n",
    ));
    assert_eq!(
        http(&c).body_template.as_ref().unwrap().output(),
        Output::TextBody
    );
    assert_eq!(
        http(&c).content_type.as_deref(),
        Some("text/plain; charset=utf-8")
    );

    let c = parse(&target(
        "http",
        "body_template = \"{{ tweet_text | tojson }}\"\ncontent_type = \"application/vnd.acme+JSON; v=1\"\n",
    ));
    assert_eq!(
        http(&c).body_template.as_ref().unwrap().output(),
        Output::JsonBody
    );

    let c = parse(&target("http", ""));
    assert!(
        http(&c).body_template.is_none(),
        "no body_template: the event as received"
    );
}

#[test]
fn template_keys_on_the_wrong_target_type_are_errors() {
    assert_eq!(
        error(&target("slack", "body_template = \"{{ x }}\"\n")),
        "relay.toml:4:1: targets.t.body_template: not valid for a slack target (only http targets take it)"
    );
    assert_eq!(
        error(&target("discord", "content_type = \"text/plain\"\n")),
        "relay.toml:4:1: targets.t.content_type: not valid for a discord target (only http targets take it)"
    );
    let e = error(&target("http", "template = \"{{ x }}\"\n"));
    assert!(
        e.starts_with("relay.toml:4:1: targets.t.template: not valid for an http target"),
        "{e}"
    );
}

#[test]
fn content_type_errors() {
    assert_eq!(
        error(&target("http", "content_type = \"text/plain\"\n")),
        "relay.toml:4:1: targets.t.content_type: needs body_template: without one the body is the event JSON as received, sent as application/json"
    );
    assert_eq!(
        error(&target(
            "http",
            "body_template = \"x\"\ncontent_type = \"text/plain\"\nheaders = { \"Content-Type\" = \"text/csv\" }\n"
        )),
        "relay.toml:5:1: targets.t.content_type: cannot be set together with a Content-Type in headers: set it in one place"
    );
    assert_eq!(
        error(&target(
            "http",
            "body_template = \"x\"\ncontent_type = \"json\"\n"
        )),
        "relay.toml:5:16: targets.t.content_type: must be a media type like \"application/json\" or \"text/plain; charset=utf-8\""
    );
    assert_eq!(
        error(&target("http", "body_template = \"\"\n")),
        "relay.toml:4:17: targets.t.body_template: must not be empty"
    );
}

#[test]
fn check_shows_a_body_template_and_warns_when_the_sample_event_makes_no_json() {
    let good = parse(&target(
        "http",
        "body_template = '{\"t\": {{ tweet_text | tojson }}, \"f\": {{ tweet_data.author.followers_count | default(0) }}}'\n",
    ))
    .summary();
    assert!(good.contains("body_template (application/json)"), "{good}");
    assert!(!good.contains("warning"), "{good}");

    // Stream events have no tweet_data: without a default the number is missing.
    let bad = parse(&target(
        "http",
        "body_template = '{\"f\": {{ tweet_data.author.followers_count }}}'\n",
    ))
    .summary();
    assert!(
        bad.contains(
            "warning: for a sample stream event, the body_template did not render valid JSON"
        ),
        "{bad}"
    );

    let text = parse(&target(
        "http",
        "body_template = 'f={{ tweet_data.x }}'\ncontent_type = \"text/plain\"\n",
    ))
    .summary();
    assert!(text.contains("body_template (text/plain)"), "{text}");
    assert!(
        !text.contains("warning"),
        "not JSON, nothing to check: {text}"
    );
}

#[test]
fn a_changed_template_is_a_changed_target_on_reload() {
    let with = |body: &str, chat: &str| {
        parse(&format!(
            "[targets.h]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/h\"\nbody_template = '{body}'\n\
             [targets.s]\ntype = \"slack\"\nurl = \"http://127.0.0.1:1/s\"\ntemplate = '{chat}'\n"
        ))
    };
    let old = with("{{ tweet_text | tojson }}", "{{ tweet_text }}");
    let same = with("{{ tweet_text | tojson }}", "{{ tweet_text }}");
    assert!(crate::reload::plan(&old, &same).unwrap().changed.is_empty());
    let body = with("{{ tweet_id | tojson }}", "{{ tweet_text }}");
    assert_eq!(crate::reload::plan(&old, &body).unwrap().changed, ["h"]);
    let chat = with("{{ tweet_text | tojson }}", "{{ tweet_text | upper }}");
    assert_eq!(crate::reload::plan(&old, &chat).unwrap().changed, ["s"]);
}
