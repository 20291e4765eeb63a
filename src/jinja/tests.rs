use super::*;
use serde_json::json;

fn event(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().unwrap().clone()
}

fn chat(source: &str) -> Jinja {
    compile(source, Output::Chat).unwrap()
}

fn shout(s: &str) -> Cow<'_, str> {
    Cow::Owned(format!("[{}]", s.to_uppercase()))
}

fn render(source: &str, e: serde_json::Value) -> String {
    chat(source).render(&event(e), as_is).unwrap()
}

fn error(source: &str) -> CompileError {
    compile(source, Output::Chat).unwrap_err()
}

#[test]
fn only_double_braces_and_blocks_are_jinja() {
    assert!(is_jinja("{{ tweet_text }}"));
    assert!(is_jinja("{% if x %}y{% endif %}"));
    assert!(!is_jinja("{author_username}: {tweet_url}"));
    assert!(!is_jinja("{# a comment alone is not enough #}"));
}

#[test]
fn nested_fields_render() {
    let e = json!({
        "author_username": "sama",
        "tweet_data": {"lang": "en", "author": {"followers_count": 1200}},
    });
    assert_eq!(
        render(
            "@{{ author_username }} ({{ tweet_data.lang }}, {{ tweet_data.author.followers_count }} followers)",
            e
        ),
        "@sama (en, 1200 followers)"
    );
}

#[test]
fn missing_fields_render_empty_never_an_error() {
    let e = json!({"a": null, "s": "text", "n": 3});
    assert_eq!(render("[{{ missing }}]", e.clone()), "[]");
    assert_eq!(render("[{{ missing.b.c }}]", e.clone()), "[]");
    assert_eq!(render("[{{ a }}]", e.clone()), "[]", "null renders empty");
    assert_eq!(render("[{{ s.nope }}]", e.clone()), "[]");
    assert_eq!(render("[{{ n.nope.deeper }}]", e.clone()), "[]");
    assert_eq!(
        render(
            "[{% for x in missing.list %}{{ x }}{% endfor %}]",
            e.clone()
        ),
        "[]"
    );
    assert_eq!(
        render("[{% if missing.flag %}yes{% else %}no{% endif %}]", e),
        "[no]"
    );
}

#[test]
fn conditions_and_loops() {
    let e = json!({
        "tweet_data": {
            "is_retweet": false,
            "entities": {"hashtags": [{"text": "rust"}, {"text": "ai"}]},
        },
    });
    let t = "{% if not tweet_data.is_retweet %}original{% endif %}: \
             {% for h in tweet_data.entities.hashtags %}#{{ h.text }}{% if not loop.last %} {% endif %}{% endfor %}";
    assert_eq!(render(t, e), "original: #rust #ai");
}

#[test]
fn the_usual_filters() {
    let e = json!({"t": "Hello World, this is long", "name": "Sam", "gone": null});
    assert_eq!(
        render("{{ gone | default('n/a') }}", e.clone()),
        "n/a",
        "null is missing"
    );
    assert_eq!(render("{{ name | default('n/a') }}", e.clone()), "Sam");
    assert_eq!(render("[{{ '' | default('n/a') }}]", e.clone()), "[]");
    assert_eq!(render("{{ '' | default('n/a', true) }}", e.clone()), "n/a");
    assert_eq!(
        render("{{ '' | default('n/a', boolean=true) }}", e.clone()),
        "n/a"
    );
    assert_eq!(
        render("{{ gone | default(default_value='x') }}", e.clone()),
        "x"
    );
    assert_eq!(render("{{ gone | d('short') }}", e.clone()), "short");
    assert_eq!(render("{{ missing | default('n/a') }}", e.clone()), "n/a");
    assert_eq!(
        render("{{ name | upper }} {{ name | lower }}", e.clone()),
        "SAM sam"
    );
    assert_eq!(render("{{ name | replace('S', 'P') }}", e.clone()), "Pam");
    assert_eq!(render("{{ t | truncate(12) }}", e.clone()), "Hello...");
    assert_eq!(
        render("{{ t | truncate(12, killwords=true, end='…') }}", e.clone()),
        "Hello World…"
    );
    assert_eq!(
        render("{{ t | truncate(100) }}", e.clone()),
        "Hello World, this is long"
    );
    assert_eq!(
        render("{{ t | truncate(length=8, end='') }}", e.clone()),
        "Hello"
    );
    assert_eq!(render("{{ missing | truncate(3) }}", e.clone()), "");
    assert_eq!(render("{{ name | tojson }}", e), "\"Sam\"");
}

#[test]
fn values_are_escaped_whatever_filter_made_them_and_literals_are_not() {
    let e = json!({"t": "hi", "n": 5});
    let t =
        chat("<lit> {{ t }} {{ t | upper }} {{ t | replace('h', 'x') }} {{ n }} {{ t | tojson }}");
    assert_eq!(
        t.render(&event(e), shout).unwrap(),
        "<lit> [HI] [HI] [XI] [5] [\"HI\"]"
    );
}

#[test]
fn a_set_block_or_a_filter_block_is_escaped_too() {
    let e = json!({"t": "hi"});
    let t =
        chat("{% set x %}<{{ t }}>{% endset %}{{ x }}|{% filter upper %}{{ t }}{% endfilter %}");
    let out = t.render(&event(e), shout).unwrap();
    // The captured block is escaped again when written: doubly, never less.
    assert_eq!(out, "[<[HI]>]|[[HI]]");
}

#[test]
fn safe_and_escape_are_refused_at_compile_time() {
    for f in ["safe", "escape", "e"] {
        let e = error(&format!("a\n{{{{ tweet_text | {f} }}}}"));
        assert!(
            e.message
                .contains(&format!("the `{f}` filter is not available")),
            "{e:?}"
        );
        assert!(
            e.message.ends_with("(line 2, column 17 of the template)"),
            "{e:?}"
        );
    }
}

#[test]
fn unknown_filters_tests_and_functions_are_compile_errors_with_line_and_column() {
    let e = error("Hi\n  {{ author_username | uppper }}");
    assert_eq!(
        e.message,
        "unknown filter `uppper` (line 2, column 24 of the template)"
    );
    assert_eq!(e.range, Some(26..32));
    // In a branch no sample event takes, it is still found.
    let e = error("{% if false %}{% if x is odd_one %}{% endif %}{% endif %}");
    assert!(e.message.starts_with("unknown test `odd_one`"), "{e:?}");
    let e = error("{{ nope(1) }}");
    assert!(e.message.starts_with("unknown function `nope`"), "{e:?}");
    let e = error("{% filter shout %}x{% endfilter %}");
    assert!(e.message.starts_with("unknown filter `shout`"), "{e:?}");
    // Known ones pass.
    chat("{{ range(3) | join(',') }} {{ x is defined }} {{ dict(a=1) | tojson }}");
}

#[test]
fn syntax_errors_have_line_and_column() {
    let e = error("line one\n{{ tweet_text ");
    assert!(e.message.starts_with("syntax error: "), "{e:?}");
    assert!(e.message.contains("(line 2"), "{e:?}");
    let e = error("{% if x %}never closed");
    assert!(e.message.starts_with("syntax error: "), "{e:?}");
    let e = error("ok\n\n  {% for %}{% endfor %}");
    assert!(e.message.contains("(line 3, column"), "{e:?}");
    assert!(e.range.is_some());
}

#[test]
fn templates_of_other_files_are_not_available() {
    // No loader, no macros: nothing reads a file or defines markup.
    assert!(compile("{% include 'x' %}", Output::Chat).is_err());
    assert!(compile("{% macro m() %}x{% endmacro %}", Output::Chat).is_err());
}

#[test]
fn render_errors_are_errors_not_panics() {
    let t = chat("{% for x in n %}{{ x }}{% endfor %}");
    let err = t.render(&event(json!({"n": 5})), as_is).unwrap_err();
    assert!(
        err.to_string().contains("(line 1 of the template)"),
        "{err}"
    );
    assert!(!err.to_string().contains("\"n\""));
    assert!(t.first_failure());
    assert!(!t.first_failure(), "only the first failure says so");
}

#[test]
fn a_runaway_loop_runs_out_of_fuel() {
    let t = chat("{% for a in range(1000) %}{% for b in range(1000) %}x{% endfor %}{% endfor %}");
    let err = t.render(&event(json!({})), as_is).unwrap_err();
    assert!(err.to_string().contains("fuel"), "{err}");
}

#[test]
fn json_bodies_escape_strings_and_trust_tojson() {
    let t = compile(
        r#"{"text": "{{ tweet_text }}", "raw": {{ tweet_text | tojson }}, "n": {{ n }}, "data": {{ tweet_data | tojson }}}"#,
        Output::JsonBody,
    )
    .unwrap();
    let hostile = "\", \"admin\": true, \"x\": \"\\\n";
    let e = event(json!({"tweet_text": hostile, "n": 7, "tweet_data": {"a": [1, "<b>"]}}));
    let body = t.render(&e, json_string).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed["text"], hostile);
    assert_eq!(parsed["raw"], hostile);
    assert_eq!(parsed["n"], 7);
    assert_eq!(parsed["data"], json!({"a": [1, "<b>"]}));
    assert_eq!(parsed.as_object().unwrap().len(), 4, "no key was injected");
}

#[test]
fn outside_a_render_the_formatter_writes_nothing() {
    let mut env = Environment::new();
    env.set_formatter(|out, _, v| format_value(out, v, false));
    assert_eq!(env.render_str("a{{ 'b' }}c", ()).unwrap(), "ac");
}

#[test]
fn the_escape_is_put_back_after_a_render() {
    let t = chat("{{ x }}");
    t.render(&event(json!({"x": "y"})), shout).unwrap();
    assert_eq!(ESCAPE.with(Cell::get)("z"), "");
}

#[test]
fn json_string_escapes_what_ends_a_string() {
    assert_eq!(json_string("plain"), "plain");
    assert_eq!(json_string("a\"b\\c\nd\u{1}"), "a\\\"b\\\\c\\nd\\u0001");
}

/// Rough cost of one render of a typical chat template, in release builds: a few µs
/// against the milliseconds of the request it makes. Asserted loosely, so only a
/// pathological regression (an environment or a parse per render) fails it.
#[test]
fn rendering_does_not_recompile() {
    let t = chat(
        "*@{{ author_username }}*: {{ tweet_text | truncate(200) }}\n{% if tweet_data.lang %}[{{ tweet_data.lang | upper }}]{% endif %} <{{ tweet_url }}|open>",
    );
    let e = event(json!({
        "author_username": "sama", "tweet_text": "We are launching a new model today",
        "tweet_url": "https://x.com/sama/status/1", "tweet_data": {"lang": "en"},
    }));
    let start = std::time::Instant::now();
    for _ in 0..2_000 {
        std::hint::black_box(t.render(&e, as_is).unwrap());
    }
    let per = start.elapsed() / 2_000;
    assert!(
        per < std::time::Duration::from_millis(1),
        "{per:?} per render"
    );
}

#[test]
fn whitespace_is_jinja2s() {
    let e = json!({"xs": ["a", "b"]});
    assert_eq!(
        render("x\n", e.clone()),
        "x",
        "one trailing line break dropped"
    );
    assert_eq!(
        render("{% for x in xs %}\n{{ x }}{% endfor %}", e.clone()),
        "\na\nb"
    );
    assert_eq!(render("{% for x in xs -%}\n{{ x }}{% endfor %}", e), "ab");
}
