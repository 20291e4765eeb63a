//! The TOML config a test runs the relay with: the contract's keys, test timings.
//!
//! Defaults: the [`StreamServer`]'s URL, [`API_KEY`], `idle_timeout = "60s"` (longer
//! than any test, so that a quiet test stream never makes the relay reconnect and lose
//! frames pushed meanwhile; the idle test sets its own), reconnect 50 ms .. 200 ms, and
//! outbox retry 100 ms .. 500 ms.

use std::path::Path;

use super::API_KEY;
use super::receiver::Receiver;
use super::stream::StreamServer;

/// A target table: `[targets.NAME]` with `type`, `url` and extra lines.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    pub name: String,
    pub kind: String,
    pub url: String,
    /// Raw TOML lines added to the table (`concurrency = 1`, `dedupe = "tweet"`, ...).
    pub extra: String,
}

/// A `[[routes]]` entry.
#[derive(Debug, Clone, Default)]
pub struct Route {
    pub name: String,
    pub monitors: Vec<String>,
    pub authors: Vec<String>,
    pub text: Option<String>,
    pub targets: Vec<String>,
    pub stop: bool,
    /// Raw TOML lines added to the entry.
    pub extra: String,
}

/// A route named `name` with no condition (it matches every `tweet.detected` event).
pub fn route(name: &str) -> Route {
    Route {
        name: name.to_string(),
        ..Route::default()
    }
}

impl Route {
    pub fn monitors(mut self, monitors: &[&str]) -> Route {
        self.monitors = monitors.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn authors(mut self, authors: &[&str]) -> Route {
        self.authors = authors.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn text(mut self, regex: &str) -> Route {
        self.text = Some(regex.to_string());
        self
    }

    pub fn targets(mut self, targets: &[&str]) -> Route {
        self.targets = targets.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn stop(mut self) -> Route {
        self.stop = true;
        self
    }

    pub fn extra(mut self, toml: &str) -> Route {
        self.extra = toml.to_string();
        self
    }
}

/// A whole config, rendered with [`RelayConfig::render`] once the outbox dir is known.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub source_url: String,
    /// `None`: no `api_key` line at all.
    pub api_key: Option<String>,
    pub idle_timeout: String,
    pub max_message_size: Option<String>,
    pub reconnect_initial: String,
    pub reconnect_max: String,
    pub retry_initial: String,
    pub retry_max: String,
    /// Raw TOML lines added to `[outbox]`.
    pub outbox_extra: String,
    pub targets: Vec<TargetSpec>,
    pub routes: Vec<Route>,
    /// Raw TOML appended at the end (a `[server]` table, ...).
    pub tail: String,
}

impl RelayConfig {
    /// A config reading from `stream`, with no targets and no routes yet.
    pub fn new(stream: &StreamServer) -> RelayConfig {
        RelayConfig::for_url(&stream.ws_url())
    }

    /// A config reading from any stream URL (a closed port, for CLI tests).
    pub fn for_url(url: &str) -> RelayConfig {
        RelayConfig {
            source_url: url.to_string(),
            api_key: Some(API_KEY.to_string()),
            idle_timeout: "60s".into(),
            max_message_size: None,
            reconnect_initial: "50ms".into(),
            reconnect_max: "200ms".into(),
            retry_initial: "100ms".into(),
            retry_max: "500ms".into(),
            outbox_extra: String::new(),
            targets: Vec::new(),
            routes: Vec::new(),
            tail: String::new(),
        }
    }

    pub fn api_key(mut self, key: Option<&str>) -> RelayConfig {
        self.api_key = key.map(str::to_string);
        self
    }

    pub fn idle_timeout(mut self, d: &str) -> RelayConfig {
        self.idle_timeout = d.to_string();
        self
    }

    pub fn max_message_size(mut self, size: &str) -> RelayConfig {
        self.max_message_size = Some(size.to_string());
        self
    }

    pub fn retry(mut self, initial: &str, max: &str) -> RelayConfig {
        self.retry_initial = initial.to_string();
        self.retry_max = max.to_string();
        self
    }

    /// An `http` target posting to `receiver`, with extra TOML lines.
    pub fn http_target(self, name: &str, receiver: &Receiver, extra: &str) -> RelayConfig {
        self.target(name, "http", &receiver.url(), extra)
    }

    /// A target of `kind` at `url` (for a telegram target, its `api_url`), with extra TOML
    /// lines.
    pub fn target(mut self, name: &str, kind: &str, url: &str, extra: &str) -> RelayConfig {
        self.targets.push(TargetSpec {
            name: name.to_string(),
            kind: kind.to_string(),
            url: url.to_string(),
            extra: extra.to_string(),
        });
        self
    }

    pub fn route(mut self, route: Route) -> RelayConfig {
        self.routes.push(route);
        self
    }

    pub fn tail(mut self, toml: &str) -> RelayConfig {
        self.tail = toml.to_string();
        self
    }

    /// The TOML text, with the outbox in `outbox_dir`.
    pub fn render(&self, outbox_dir: &Path) -> String {
        let mut out = String::new();
        out.push_str("[source]\n");
        out.push_str(&format!("url = {}\n", s(&self.source_url)));
        if let Some(key) = &self.api_key {
            out.push_str(&format!("api_key = {}\n", s(key)));
        }
        out.push_str(&format!("idle_timeout = {}\n", s(&self.idle_timeout)));
        if let Some(size) = &self.max_message_size {
            out.push_str(&format!("max_message_size = {}\n", s(size)));
        }
        out.push_str(&format!(
            "reconnect = {{ initial = {}, max = {} }}\n\n",
            s(&self.reconnect_initial),
            s(&self.reconnect_max)
        ));

        out.push_str("[outbox]\n");
        out.push_str(&format!(
            "path = {}\n",
            s(outbox_dir.to_str().expect("a UTF-8 temp path"))
        ));
        out.push_str(&format!(
            "retry = {{ initial = {}, max = {} }}\n",
            s(&self.retry_initial),
            s(&self.retry_max)
        ));
        push_lines(&mut out, &self.outbox_extra);
        out.push('\n');

        for t in &self.targets {
            out.push_str(&format!("[targets.{}]\n", t.name));
            out.push_str(&format!("type = {}\n", s(&t.kind)));
            // A telegram target takes the Bot API's base URL instead of a webhook URL.
            let key = if t.kind == "telegram" {
                "api_url"
            } else {
                "url"
            };
            out.push_str(&format!("{key} = {}\n", s(&t.url)));
            push_lines(&mut out, &t.extra);
            out.push('\n');
        }

        for r in &self.routes {
            out.push_str("[[routes]]\n");
            out.push_str(&format!("name = {}\n", s(&r.name)));
            if !r.monitors.is_empty() {
                out.push_str(&format!("monitors = {}\n", list(&r.monitors)));
            }
            if !r.authors.is_empty() {
                out.push_str(&format!("authors = {}\n", list(&r.authors)));
            }
            if let Some(text) = &r.text {
                out.push_str(&format!("text = {}\n", s(text)));
            }
            out.push_str(&format!("targets = {}\n", list(&r.targets)));
            if r.stop {
                out.push_str("stop = true\n");
            }
            push_lines(&mut out, &r.extra);
            out.push('\n');
        }
        push_lines(&mut out, &self.tail);
        out
    }
}

fn push_lines(out: &mut String, toml: &str) {
    if !toml.trim().is_empty() {
        out.push_str(toml.trim_end());
        out.push('\n');
    }
}

/// A TOML basic string. JSON string escapes are valid TOML basic-string escapes.
pub fn s(value: &str) -> String {
    serde_json::to_string(value).unwrap()
}

fn list(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| s(v)).collect();
    format!("[{}]", items.join(", "))
}
