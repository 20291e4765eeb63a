//! The Grafana dashboard and the Prometheus alerting rules in `deploy/` against what the
//! relay really exports.
//!
//! The relay runs with one http target and delivers one event, so that every metric
//! family has samples; then every metric name the dashboard's queries and the rules'
//! expressions use must be a series of that `/metrics` page. A renamed metric, or a
//! typo in a query, fails here instead of leaving an empty panel or an alert that can
//! never fire. The scrape is also written to `target/tmp/deploy_metrics.prom`, for
//! `.ci/run` to hold it to `promtool check metrics`; `.ci/run` also runs
//! `promtool check rules` and the rules' unit tests.
//!
//! And the image `deploy/Dockerfile` builds ships the stripped `dist` profile, while the
//! `release` profile keeps the line tables the bench relies on.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::Value;
use support::server::*;
use support::*;

/// What Prometheus' client libraries send for text format 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn deploy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name)
}

/// A relay with one http target and a `[server]`, after one delivered event: every
/// family then has samples, the per-target ones and the delivery histogram included.
/// Returns the relay (kept running) and the address of its HTTP server.
async fn relay_after_a_delivery() -> (Relay, StreamServer, Receiver, std::net::SocketAddr) {
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let cfg = RelayConfig::new(&stream)
        .http_target("hook", &hook, "concurrency = 1")
        .route(route("all").targets(&["hook"]))
        .tail(&server_table(None));
    let relay = Relay::start_connected(&cfg, &stream).await;
    let addr = server_addr(&relay).await;
    let sent = stream.send_event(&tweet_event("71001"));
    hook.wait_for_body(&sent, DEADLINE).await;
    Http::new(addr)
        .wait_for_metrics(
            &[
                (
                    "badger_relay_deliveries_total{target=\"hook\",outcome=\"delivered\"}",
                    1.0,
                ),
                (
                    "badger_relay_delivery_duration_seconds_count{target=\"hook\"}",
                    1.0,
                ),
                ("badger_relay_source_connected", 1.0),
            ],
            DEADLINE,
        )
        .await;
    (relay, stream, hook, addr)
}

/// `GET /metrics`: the Content-Type header and the body.
async fn scrape(addr: std::net::SocketAddr) -> (String, String) {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{addr}/metrics"))
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status(), 200);
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (content_type, resp.text().await.unwrap())
}

/// The metric families of an exposition (`# TYPE` lines) and the series names that
/// have at least one sample.
struct Exposition {
    /// Family name to its type (`counter`, `gauge`, `histogram`).
    families: BTreeMap<String, String>,
    /// Sample names: `badger_relay_outbox_pending`, `..._seconds_bucket`, ...
    series: BTreeSet<String>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut families = BTreeMap::new();
        let mut series = BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                families.insert(name.to_owned(), kind.to_owned());
            } else if !line.starts_with('#') && !line.trim().is_empty() {
                let end = line.find(['{', ' ']).expect("a sample line");
                series.insert(line[..end].to_owned());
            }
        }
        Exposition { families, series }
    }

    /// The family a series name belongs to: a histogram's `_bucket`, `_sum` and
    /// `_count` series are its own; any other name is its family.
    fn family_of<'a>(&self, name: &'a str) -> &'a str {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix)
                && self.families.get(base).is_some_and(|k| k == "histogram")
            {
                return base;
            }
        }
        name
    }

    /// Why `name`, used in a query, would select nothing; `None` when it is exported.
    fn problem(&self, name: &str) -> Option<String> {
        let family = self.family_of(name);
        if !self.families.contains_key(family) {
            return Some(format!("no family {family:?} is exported"));
        }
        if !self.series.contains(name) {
            return Some(format!(
                "family {family:?} ({}) has no series named {name:?}",
                self.families[family]
            ));
        }
        None
    }
}

/// Every `badger_relay_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let re = Regex::new(r"badger_relay_[a-z_]+").unwrap();
    re.find_iter(text).map(|m| m.as_str().to_owned()).collect()
}

/// The PromQL of a dashboard: every panel target's `expr` and every template
/// variable's query, wherever they are nested.
fn dashboard_queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "definition" | "query", Value::String(q)) => out.push(q.clone()),
                    _ => dashboard_queries(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| dashboard_queries(i, out)),
        _ => {}
    }
}

/// The rules file without its comment lines (the expressions and the annotations).
fn rules_text() -> String {
    let text = std::fs::read_to_string(deploy_file("prometheus-rules.yaml")).unwrap();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_dashboard_and_the_alerts_use_only_metrics_the_relay_exports() {
    let (relay, _stream, _hook, addr) = relay_after_a_delivery().await;
    let (_, body) = scrape(addr).await;
    // For `.ci/run`: `promtool check metrics < target/tmp/deploy_metrics.prom`.
    std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("deploy_metrics.prom"),
        &body,
    )
    .unwrap();
    let exported = Exposition::parse(&body);
    assert!(
        exported.families.len() >= 10,
        "the contract's families: {:?}",
        exported.families
    );
    for family in exported.families.keys() {
        assert!(
            exported
                .series
                .iter()
                .any(|s| exported.family_of(s) == family),
            "family {family} has no sample after a delivery:\n{body}"
        );
    }

    let text = std::fs::read_to_string(deploy_file("grafana-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("deploy/grafana-dashboard.json is not JSON: {e}"));
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    assert!(queries.len() >= 10, "{queries:?}");
    let dashboard_names = metric_names(&queries.join("\n"));
    let rule_names = metric_names(&rules_text());

    let mut wrong = Vec::new();
    for (file, names) in [
        ("grafana-dashboard.json", &dashboard_names),
        ("prometheus-rules.yaml", &rule_names),
    ] {
        for name in names.iter() {
            if let Some(problem) = exported.problem(name) {
                wrong.push(format!("deploy/{file} uses {name}: {problem}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\n--- /metrics ---\n{body}",
        wrong.join("\n")
    );

    // What the dashboard is for: events in, deliveries by outcome, pending and dead,
    // latency percentiles from the histogram, the stream connection and reconnects.
    for name in [
        "badger_relay_events_received_total",
        "badger_relay_deliveries_total",
        "badger_relay_outbox_pending",
        "badger_relay_outbox_dead",
        "badger_relay_delivery_duration_seconds_bucket",
        "badger_relay_source_connected",
        "badger_relay_source_reconnects_total",
    ] {
        assert!(
            dashboard_names.contains(name),
            "the dashboard shows no {name}"
        );
    }
    for q in [0.5, 0.9, 0.99] {
        assert!(
            queries.iter().any(|e| e.starts_with(&format!(
                "histogram_quantile({q}, sum by (target, le) (rate(badger_relay_delivery_duration_seconds_bucket"
            ))),
            "no p{} latency panel",
            q * 100.0
        );
    }
    // And what the alerts are for.
    let rules = rules_text();
    for alert in [
        "BadgerRelayStreamDown",
        "BadgerRelayDeadLetters",
        "BadgerRelayPendingGrowing",
        "BadgerRelayNoEvents",
    ] {
        assert!(
            rules.contains(&format!("- alert: {alert}\n")),
            "no {alert} rule"
        );
    }
    relay.assert_logs_free_of(API_KEY);
}

#[tokio::test]
async fn metrics_are_served_as_prometheus_text_with_a_charset() {
    let (_relay, _stream, _hook, addr) = relay_after_a_delivery().await;
    let (content_type, body) = scrape(addr).await;
    assert_eq!(content_type, CONTENT_TYPE);
    assert!(body.contains("# TYPE badger_relay_deliveries_total counter\n"));
}

#[test]
fn the_dockerfile_ships_the_stripped_dist_profile_and_release_keeps_its_line_tables() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(root.join("Cargo.toml")).unwrap()).unwrap();
    let profiles = manifest["profile"].as_table().expect("[profile.*] tables");
    let dist = profiles["dist"].as_table().expect("[profile.dist]");
    assert_eq!(dist["inherits"].as_str(), Some("release"));
    assert_eq!(dist["strip"].as_bool(), Some(true));
    assert_eq!(
        profiles["release"]["debug"].as_str(),
        Some("line-tables-only"),
        "the bench's profiles need the release build's line tables"
    );

    let dockerfile = std::fs::read_to_string(deploy_file("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("RUN cargo build --profile dist --locked --bin badger-relay\n"),
        "{dockerfile}"
    );
    assert!(
        dockerfile.contains("COPY --from=build /src/target/dist/badger-relay /usr/local/bin/"),
        "{dockerfile}"
    );
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.contains("cargo install --locked --path ."));
}
