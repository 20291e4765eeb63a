//! The command line: `check` (summary without secrets, errors with file:line:column),
//! `route` (dry run), `run` without an API key, and where the config is found.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use support::*;
use tempfile::TempDir;

/// No one-shot command should take long; this only bounds a hang.
const T: Duration = Duration::from_secs(20);

/// Writes `text` as `badger-relay.toml` in a fresh temp dir.
fn config_file(text: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("badger-relay.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} is not in the config"))
        + 1
}

/// Asserts `output` holds `badger-relay.toml:LINE:COLUMN`; returns the column.
fn assert_position(output: &str, line: usize) -> usize {
    let marker = format!("badger-relay.toml:{line}:");
    let at = output
        .find(&marker)
        .unwrap_or_else(|| panic!("no {marker}COLUMN in the output:\n{output}"));
    let digits: String = output[at + marker.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no column after {marker} in the output:\n{output}"))
}

// Distinctive secret values, passed through the environment only.
const API_KEY_VALUE: &str = "sk_live_CHECKAPIKEY_5e1d77";
const SLACK_URL: &str = "https://hooks.slack.com/services/T0SLACKTEAM/B0SLACKBOT/slackSECRETpath42";
const DISCORD_URL: &str =
    "https://discord.com/api/webhooks/112233445566778899/discordSECRETtoken77";
const BEARER: &str = "tok_CHECKBEARER_9a8b7c";
const QUERY_TOKEN: &str = "qtok_CHECKQUERY_31f0";
const SIGNING_KEY: &[u8] = b"check-signing-secret-bytes-0042";

fn signing_secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(SIGNING_KEY)
    )
}

/// The contract's example config, every secret from an env var.
fn good_config(outbox: &Path) -> String {
    format!(
        r#"[source]
url = "ws://127.0.0.1:9/v1/twitter/stream"
api_key = "${{SCRAPEBADGER_API_KEY}}"
idle_timeout = "75s"
max_message_size = "1MiB"
reconnect = {{ initial = "1s", max = "60s" }}

[outbox]
path = "{outbox}"
dedupe_window = "24h"
retry = {{ initial = "1s", max = "5m", max_age = "24h" }}

[targets.team-slack]
type = "slack"
url = "${{SLACK_WEBHOOK_URL}}"

[targets.ops-discord]
type = "discord"
url = "${{DISCORD_WEBHOOK_URL}}"
username = "Tweet alerts"

[targets.workflow]
type = "http"
url = "https://example.com/hooks/tweets?token=${{HOOK_QUERY_TOKEN}}"
headers = {{ Authorization = "Bearer ${{WORKFLOW_TOKEN}}" }}
signing_secret = "${{WORKFLOW_SIGNING_SECRET}}"
timeout = "10s"

[[routes]]
name = "tech-leaders"
monitors = ["Tech Leaders"]
targets = ["team-slack", "workflow"]

[[routes]]
name = "launches"
authors = ["elonmusk", "@sama"]
text = "(?i)launch|announce"
targets = ["ops-discord"]
stop = true
"#,
        outbox = path_str(outbox)
    )
}

/// `cmd` with every secret of [`good_config`] in its environment.
fn with_secrets(cmd: Cli) -> Cli {
    cmd.env("SCRAPEBADGER_API_KEY", API_KEY_VALUE)
        .env("SLACK_WEBHOOK_URL", SLACK_URL)
        .env("DISCORD_WEBHOOK_URL", DISCORD_URL)
        .env("WORKFLOW_TOKEN", BEARER)
        .env("HOOK_QUERY_TOKEN", QUERY_TOKEN)
        .env("WORKFLOW_SIGNING_SECRET", &signing_secret())
}

#[test]
fn check_accepts_a_good_config_and_prints_a_summary_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let (_cfg_dir, path) = config_file(&good_config(&dir.path().join("outbox")));
    let out = with_secrets(cli(&["check", "-c", path_str(&path)])).run(T);
    out.assert_code(0);

    for name in [
        "team-slack",
        "ops-discord",
        "workflow",
        "tech-leaders",
        "launches",
    ] {
        assert!(
            out.stdout.contains(name),
            "the summary should name {name:?}:\n{}",
            out.stdout
        );
    }
    let signing = signing_secret();
    for secret in [
        API_KEY_VALUE,
        "T0SLACKTEAM",
        "B0SLACKBOT",
        "slackSECRETpath42",
        "112233445566778899",
        "discordSECRETtoken77",
        BEARER,
        QUERY_TOKEN,
        signing.as_str(),
        signing.trim_start_matches("whsec_"),
    ] {
        out.assert_free_of(secret);
    }
}

#[test]
fn check_rejects_an_unknown_key_with_file_line_column_and_a_suggestion() {
    let text = "[source]\n\
                url = \"ws://127.0.0.1:9/v1/twitter/stream\"\n\
                api_key = \"k\"\n\
                idle_timout = \"75s\"\n\
                \n\
                [outbox]\n\
                path = \"./data\"\n";
    let (_dir, path) = config_file(text);
    let out = cli(&["check", "-c", path_str(&path)]).run(T);
    out.assert_code(2);
    let all = out.all();
    let column = assert_position(&all, line_of(text, "idle_timout"));
    assert_eq!(column, 1, "the unknown key starts at column 1:\n{all}");
    assert!(
        all.contains("idle_timout"),
        "the error names the key:\n{all}"
    );
    assert!(
        all.contains("idle_timeout"),
        "the error suggests the nearest valid key:\n{all}"
    );
    assert!(!all.contains("panicked"), "{all}");
}

#[test]
fn check_rejects_an_unknown_target_in_a_route_and_suggests_the_nearest() {
    let text = r#"[source]
url = "ws://127.0.0.1:9/v1/twitter/stream"

[outbox]
path = "./data"

[targets.workflow]
type = "http"
url = "http://127.0.0.1:9/hook"

[[routes]]
name = "all"
targets = ["workflw"]
"#;
    let (_dir, path) = config_file(text);
    let out = cli(&["check", "-c", path_str(&path)]).run(T);
    out.assert_code(2);
    let all = out.all();
    assert_position(&all, line_of(text, "\"workflw\""));
    assert!(
        all.contains("workflw"),
        "the error names the unknown target:\n{all}"
    );
    assert!(all.contains("targets"), "the error names the key:\n{all}");
    assert!(
        all.contains("workflow"),
        "the error suggests the nearest target:\n{all}"
    );
}

#[test]
fn check_names_a_missing_env_var_and_its_key_but_no_value() {
    let text = r#"[source]
url = "ws://127.0.0.1:9/v1/twitter/stream"
api_key = "${BADGER_TEST_UNSET_VARIABLE}"

[outbox]
path = "./data"
"#;
    let (_dir, path) = config_file(text);
    let out = cli(&["check", "-c", path_str(&path)])
        .env_remove("BADGER_TEST_UNSET_VARIABLE")
        .run(T);
    out.assert_code(2);
    let all = out.all();
    assert!(all.contains("BADGER_TEST_UNSET_VARIABLE"), "{all}");
    assert!(all.contains("api_key"), "{all}");
    assert_position(&all, line_of(text, "api_key"));
}

#[test]
fn the_config_flag_is_accepted_anywhere_and_found_by_env_var_or_in_the_working_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg_dir, path) = config_file(&good_config(&dir.path().join("outbox")));
    let found_it = |out: CliOutput| {
        out.assert_code(0);
        assert!(
            out.stdout.contains("workflow"),
            "no summary:\n{}",
            out.all()
        );
    };
    for args in [
        vec!["check", "-c", path_str(&path)],
        vec!["-c", path_str(&path), "check"],
        vec!["check", "--config", path_str(&path)],
        vec!["--log-format", "json", "check", "-c", path_str(&path)],
    ] {
        found_it(with_secrets(cli(&args)).run(T));
    }
    found_it(
        with_secrets(cli(&["check"]))
            .env("BADGER_RELAY_CONFIG", path_str(&path))
            .run(T),
    );
    found_it(with_secrets(cli(&["check"])).cwd(cfg_dir.path()).run(T));
}

/// Three routes, two http targets; `route-cooking` and `hook-omega` must not match.
fn routing_config() -> String {
    r#"[source]
url = "ws://127.0.0.1:9/v1/twitter/stream"

[outbox]
path = "./data"

[targets.hook-alpha]
type = "http"
url = "http://127.0.0.1:9/alpha"

[targets.hook-omega]
type = "http"
url = "http://127.0.0.1:9/omega"

[[routes]]
name = "route-leaders"
monitors = ["Tech Leaders"]
targets = ["hook-alpha"]

[[routes]]
name = "route-cooking"
monitors = ["Cooking"]
targets = ["hook-omega"]

[[routes]]
name = "route-elon"
authors = ["elonmusk"]
targets = ["hook-alpha"]
"#
    .to_string()
}

/// Odd spacing, non-ASCII, an unknown field and a float that re-serializing would change.
const ROUTE_EVENT: &str = r#"{"event":"tweet.detected", "monitor_id":"m-1","monitor_name":"Tech Leaders","tweet_id":"77","author_username":"elonmusk","tweet_text":"héllo  🚀 \u00e9","extra":{"k":[1.50]}}"#;

fn assert_route_output(out: &CliOutput) {
    out.assert_code(0);
    let stdout = &out.stdout;
    for expected in ["route-leaders", "route-elon", "hook-alpha"] {
        assert!(stdout.contains(expected), "missing {expected:?}:\n{stdout}");
    }
    for unexpected in ["route-cooking", "hook-omega"] {
        assert!(
            !stdout.contains(unexpected),
            "{unexpected:?} does not match:\n{stdout}"
        );
    }
    assert!(
        stdout.contains(ROUTE_EVENT),
        "the http body must be printed exactly as the event:\n{stdout}"
    );
}

#[test]
fn route_prints_matching_routes_targets_and_the_exact_http_body_from_stdin() {
    let (_dir, path) = config_file(&routing_config());
    let out = cli(&["route", "-c", path_str(&path)])
        .stdin(ROUTE_EVENT)
        .run(T);
    assert_route_output(&out);
    let out = cli(&["route", "-c", path_str(&path), "-"])
        .stdin(ROUTE_EVENT)
        .run(T);
    assert_route_output(&out);
}

#[test]
fn route_reads_the_event_from_a_file() {
    let (dir, path) = config_file(&routing_config());
    let event = dir.path().join("event.json");
    std::fs::write(&event, ROUTE_EVENT).unwrap();
    let out = cli(&["route", "-c", path_str(&path), path_str(&event)]).run(T);
    assert_route_output(&out);
}

#[test]
fn run_without_an_api_key_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let hook = "http://127.0.0.1:9/hook";
    let cfg = RelayConfig::for_url("ws://127.0.0.1:9/v1/twitter/stream")
        .api_key(None)
        .target("hook", "http", hook, "")
        .route(route("all").targets(&["hook"]));
    let (_cfg_dir, path) = config_file(&cfg.render(&dir.path().join("outbox")));
    let out = cli(&["run", "-c", path_str(&path)])
        .env_remove("SCRAPEBADGER_API_KEY")
        .run(T);
    out.assert_code(2);
    assert!(out.all().contains("api_key"), "{}", out.all());
    assert!(!out.all().contains("panicked"), "{}", out.all());
}

#[tokio::test]
async fn outbox_verify_reads_everything_names_the_unreadable_and_is_refused_while_run_holds_it() {
    use support::server::outbox;
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    hook.respond(503, &[], "down");
    let cfg = RelayConfig::new(&stream)
        .retry("1h", "1h")
        .http_target("hook", &hook, "")
        .route(route("all").targets(&["hook"]));
    let mut relay = Relay::start_connected(&cfg, &stream).await;
    for id in ["91001", "91002"] {
        let body = stream.send_event(&tweet_event(id));
        hook.wait_for_body(&body, DEADLINE).await;
    }

    let busy = outbox(&relay, &["verify"]).await;
    busy.assert_code(1);
    assert!(
        busy.stderr
            .contains("in use by another badger-relay process"),
        "{}",
        busy.all()
    );

    relay.terminate();
    relay.wait_exit(DEADLINE).await;
    let clean = outbox(&relay, &["verify"]).await;
    clean.assert_code(0);
    assert!(
        clean.stdout.contains(
            "2 pending deliveries, 0 dead letters, 2 dedupe marks readable; 0 unreadable"
        ),
        "{}",
        clean.all()
    );

    // Damage the second delivery's record, as a torn write or a bad disk would.
    {
        let db = sled::open(relay.outbox_dir().join("db")).unwrap();
        let (key, _) = db.scan_prefix(b"p/hook\0").last().unwrap().unwrap();
        db.insert(key, &b"\x09not a record"[..]).unwrap();
        db.flush().unwrap();
    }
    let damaged = outbox(&relay, &["verify"]).await;
    damaged.assert_code(1);
    let line = damaged
        .stdout
        .lines()
        .find(|l| l.starts_with("unreadable msg_"))
        .unwrap_or_else(|| panic!("no unreadable line: {}", damaged.all()));
    assert!(line.contains("target=hook"), "{line}");
    assert!(
        damaged.stdout.contains("; 1 unreadable"),
        "{}",
        damaged.all()
    );
    assert!(damaged.stderr.contains("outbox purge"), "{}", damaged.all());

    // The rest is still there, and run still starts on it.
    let list = outbox(&relay, &["list"]).await;
    list.assert_code(0);
    assert!(list.stdout.contains("tweet=91001"), "{}", list.all());
}
