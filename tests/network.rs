//! Networks as deployments have them: a stream and targets behind a private CA
//! (`[tls] ca_file`, a target's `tls.ca_file`, `SSL_CERT_FILE`), a corporate HTTP proxy
//! (the proxy environment, `[source] proxy`, `NO_PROXY`, credentials kept secret),
//! secrets in files (`${file:...}`), and logs written to a file (no colour codes).
//!
//! The CA is made in each test; a [`TlsFront`] serves its certificate in front of the
//! plaintext stream or receiver, and a [`ConnectProxy`] records what it tunnelled.

mod support;

use std::path::Path;

use support::proxy::ConnectProxy;
use support::tls::{TestCa, TlsFront};
use support::*;

/// The network variables a test does not set are set empty, so the machine's own
/// environment cannot change what a test sees (an empty value counts as unset).
const NETWORK_ENV: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "SSL_CERT_FILE",
];

fn env<'a>(set: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env: Vec<(&str, &str)> = NETWORK_ENV
        .iter()
        .filter(|name| !set.iter().any(|(k, _)| k == *name))
        .map(|name| (*name, ""))
        .collect();
    env.extend_from_slice(set);
    env
}

/// A TOML basic string of a path.
fn toml_path(path: &Path) -> String {
    config::s(path.to_str().unwrap())
}

fn wss_url(host: &str, front: &TlsFront) -> String {
    format!("wss://{host}:{}{}", front.port(), stream::STREAM_PATH)
}

/// Everything routed to one http target, `hook`.
fn to_hook(config: RelayConfig, hook: &Receiver) -> RelayConfig {
    config
        .http_target("hook", hook, "")
        .route(route("all").targets(&["hook"]))
}

async fn assert_delivers(stream: &StreamServer, hook: &Receiver, tweet_id: &str) {
    let sent = stream.send_event(&tweet_event(tweet_id));
    hook.wait_for_body(&sent, DEADLINE).await;
}

async fn start(config: &RelayConfig, set: &[(&str, &str)]) -> Relay {
    Relay::start_with_env(config, &env(set))
}

/// Like [`start`], with `lines` added to the `[source]` table.
async fn start_with_source(config: &RelayConfig, lines: &str, set: &[(&str, &str)]) -> Relay {
    let mut relay = Relay::prepare(config, &env(set));
    let text = std::fs::read_to_string(relay.config_path()).unwrap();
    let text = text.replacen("[source]\n", &format!("[source]\n{lines}\n"), 1);
    std::fs::write(relay.config_path(), text).unwrap();
    relay.restart();
    relay
}

// ---------------------------------------------------------------------------------
// Private CAs

#[tokio::test]
async fn a_wss_stream_behind_a_private_ca_is_trusted_through_tls_ca_file() {
    let (ca, dir) = (TestCa::new(), tempfile::tempdir().unwrap());
    let stream = StreamServer::start().await;
    let front = TlsFront::start(&ca, stream.addr()).await;
    let hook = Receiver::start().await;
    let ca_file = ca.write(dir.path(), "internal-ca.pem");
    let config = to_hook(RelayConfig::for_url(&wss_url("127.0.0.1", &front)), &hook)
        .tail(&format!("[tls]\nca_file = {}\n", toml_path(&ca_file)));

    let relay = start(&config, &[]).await;
    stream.wait_for_connections(1, DEADLINE).await;
    assert_eq!(
        front.accepted(),
        1,
        "one TLS handshake: {:?}",
        front.failures()
    );
    assert_delivers(&stream, &hook, "20001").await;
    relay.assert_logs_free_of(API_KEY);
}

#[tokio::test]
async fn an_https_target_behind_a_private_ca_is_trusted_through_its_own_tls_ca_file() {
    let (ca, dir) = (TestCa::new(), tempfile::tempdir().unwrap());
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let front = TlsFront::start(&ca, hook.addr()).await;
    let ca_file = ca.write(dir.path(), "hook-ca.pem");
    let url = format!("https://localhost:{}/hooks/tweets", front.port());
    let config = RelayConfig::new(&stream)
        .target(
            "internal",
            "http",
            &url,
            &format!("tls = {{ ca_file = {} }}", toml_path(&ca_file)),
        )
        .route(route("all").targets(&["internal"]));

    let relay = start(&config, &[]).await;
    stream.wait_for_connections(1, DEADLINE).await;
    assert_delivers(&stream, &hook, "20101").await;
    assert!(front.accepted() >= 1);
    assert_eq!(hook.requests()[0].uri, "/hooks/tweets");
    relay.assert_logs_free_of(API_KEY);
}

#[tokio::test]
async fn ssl_cert_file_is_trusted_too() {
    let (ca, dir) = (TestCa::new(), tempfile::tempdir().unwrap());
    let stream = StreamServer::start().await;
    let front = TlsFront::start(&ca, stream.addr()).await;
    let hook = Receiver::start().await;
    let bundle = ca.write(dir.path(), "bundle.pem");
    let config = to_hook(RelayConfig::for_url(&wss_url("localhost", &front)), &hook);

    let relay = start(&config, &[("SSL_CERT_FILE", bundle.to_str().unwrap())]).await;
    stream.wait_for_connections(1, DEADLINE).await;
    assert_delivers(&stream, &hook, "20201").await;
    relay.assert_logs_free_of(API_KEY);
}

#[tokio::test]
async fn without_the_ca_the_stream_and_the_target_fail_with_a_clear_error() {
    // The relay trusts another private CA, not the one that signed the servers.
    let (ca, other, dir) = (TestCa::new(), TestCa::new(), tempfile::tempdir().unwrap());
    let other_file = other.write(dir.path(), "other-ca.pem");
    let stream = StreamServer::start().await;
    let stream_front = TlsFront::start(&ca, stream.addr()).await;
    let hook = Receiver::start().await;
    let hook_front = TlsFront::start(&ca, hook.addr()).await;
    let hook_url = format!("https://127.0.0.1:{}/hook", hook_front.port());
    let config = RelayConfig::for_url(&wss_url("127.0.0.1", &stream_front))
        .target("internal", "http", &hook_url, "")
        .route(route("all").targets(&["internal"]))
        .tail(&format!(
            "{}[tls]\nca_file = {}\n",
            support::server::server_table(Some(support::server::INGEST_SECRET)),
            toml_path(&other_file)
        ));

    let relay = start(&config, &[]).await;
    let line = relay
        .wait_for_log("Cannot connect to the stream", DEADLINE)
        .await;
    assert!(
        line.contains("invalid peer certificate") && line.contains("UnknownIssuer"),
        "{line}"
    );
    assert!(
        line.contains("add it with [tls] ca_file or SSL_CERT_FILE"),
        "{line}"
    );
    assert_eq!(stream.connections(), 0);
    assert_eq!(stream_front.accepted(), 0);

    // The target: an event through /ingest, refused by the client's verification.
    let http = support::server::Http::of(&relay).await;
    let body = serde_json::to_vec(&tweet_event("20301")).unwrap();
    http.ingest_accepted(support::server::SIGNATURE_HEADER, &body)
        .await;
    let line = relay
        .wait_for_log_matching("a failed attempt to the target", DEADLINE, |l| {
            l.contains("internal") && l.contains("UnknownIssuer")
        })
        .await;
    assert!(line.contains("invalid peer certificate"), "{line}");
    assert!(hook.requests().is_empty());
    assert_eq!(hook_front.accepted(), 0);
    relay.assert_logs_free_of(API_KEY);
}

// ---------------------------------------------------------------------------------
// Proxies

/// The stream behind TLS at `stream.test` (a name only the proxy resolves), trusted
/// through `[tls] ca_file`.
struct Behind {
    ca_dir: tempfile::TempDir,
    stream: StreamServer,
    front: TlsFront,
    hook: Receiver,
}

impl Behind {
    async fn start() -> Behind {
        let ca = TestCa::new();
        let ca_dir = tempfile::tempdir().unwrap();
        ca.write(ca_dir.path(), "ca.pem");
        let stream = StreamServer::start().await;
        let front = TlsFront::start(&ca, stream.addr()).await;
        Behind {
            ca_dir,
            stream,
            front,
            hook: Receiver::start().await,
        }
    }

    /// A config for the stream at `host`, with `source_extra` added to `[source]`.
    fn config(&self, host: &str) -> RelayConfig {
        let tls = format!(
            "[tls]\nca_file = {}\n",
            toml_path(&self.ca_dir.path().join("ca.pem"))
        );
        to_hook(
            RelayConfig::for_url(&wss_url(host, &self.front)),
            &self.hook,
        )
        .tail(&tls)
    }
}

#[tokio::test]
async fn the_stream_goes_through_https_proxy_with_its_credentials() {
    let net = Behind::start().await;
    let proxy = ConnectProxy::start().await;
    // base64("relay:pa:ss w0rd"), the password percent-encoded in the URL.
    let basic = "Basic cmVsYXk6cGE6c3MgdzByZA==";
    proxy.require(basic);
    let proxy_url = proxy.url_with("relay:pa%3Ass%20w0rd");

    let relay = start(&net.config("stream.test"), &[("HTTPS_PROXY", &proxy_url)]).await;
    net.stream.wait_for_connections(1, DEADLINE).await;
    let tunnels = proxy.tunnels();
    assert_eq!(tunnels.len(), 1, "{tunnels:?}");
    assert_eq!(
        tunnels[0].authority,
        format!("stream.test:{}", net.front.port())
    );
    assert_eq!(tunnels[0].authorization.as_deref(), Some(basic));
    assert_delivers(&net.stream, &net.hook, "21001").await;

    let line = relay
        .wait_for_log("Connected to the stream", DEADLINE)
        .await;
    assert!(line.contains("http://***@127.0.0.1"), "{line}");
    for secret in [API_KEY, "pa%3Ass", "pa:ss", "w0rd", "cmVsYXk6", "relay:"] {
        relay.assert_logs_free_of(secret);
    }
}

#[tokio::test]
async fn refused_proxy_credentials_are_reported_without_them() {
    let net = Behind::start().await;
    let proxy = ConnectProxy::start().await;
    proxy.require("Basic b3RoZXI6b3RoZXI=");
    let proxy_url = proxy.url_with("alice:hunter2-secret");

    let relay = start(&net.config("stream.test"), &[("https_proxy", &proxy_url)]).await;
    let line = relay
        .wait_for_log("Cannot connect to the stream through the proxy", DEADLINE)
        .await;
    assert!(line.contains("HTTP 407"), "{line}");
    assert!(line.contains("from https_proxy"), "{line}");
    let tunnels = proxy.wait_for_tunnels(1, DEADLINE).await;
    assert!(!tunnels[0].opened);
    assert_eq!(net.stream.connections(), 0);
    // base64("alice:hunter2-secret") starts with YWxpY2U6aHVudGVy.
    for secret in [API_KEY, "hunter2", "alice", "YWxpY2U6aHVudGVy"] {
        relay.assert_logs_free_of(secret);
    }

    // `check` shows where the proxy comes from, never its credentials.
    let path = relay.config_path().to_str().unwrap().to_owned();
    let out = cli(&["check", "-c", &path])
        .env("HTTPS_PROXY", &proxy_url)
        .run(DEADLINE);
    out.assert_code(0)
        .assert_free_of("hunter2")
        .assert_free_of("alice");
    assert!(
        out.stdout.contains(&format!(
            "proxy: {} (from HTTPS_PROXY)",
            proxy.url_with("***")
        )),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn source_proxy_overrides_the_environment() {
    let net = Behind::start().await;
    let (configured, from_env) = (ConnectProxy::start().await, ConnectProxy::start().await);
    let proxy_line = format!("proxy = {}", config::s(&configured.url()));

    let relay = start_with_source(
        &net.config("stream.test"),
        &proxy_line,
        &[("HTTPS_PROXY", &from_env.url())],
    )
    .await;
    net.stream.wait_for_connections(1, DEADLINE).await;
    let tunnels = configured.tunnels();
    assert_eq!(tunnels.len(), 1, "{tunnels:?}");
    assert_eq!(tunnels[0].authorization, None);
    assert!(from_env.tunnels().is_empty());
    assert_delivers(&net.stream, &net.hook, "21201").await;
    relay.assert_logs_free_of(API_KEY);
}

#[tokio::test]
async fn proxy_none_connects_directly_whatever_the_environment_says() {
    let net = Behind::start().await;
    let proxy = ConnectProxy::start().await;

    let relay = start_with_source(
        &net.config("127.0.0.1"),
        "proxy = \"none\"",
        &[("HTTPS_PROXY", &proxy.url())],
    )
    .await;
    net.stream.wait_for_connections(1, DEADLINE).await;
    assert_delivers(&net.stream, &net.hook, "21301").await;
    assert!(proxy.tunnels().is_empty());
    relay.assert_logs_free_of(API_KEY);
}

#[tokio::test]
async fn no_proxy_names_the_hosts_reached_directly() {
    let net = Behind::start().await;
    let proxy = ConnectProxy::start().await;
    let env = [
        ("HTTPS_PROXY", proxy.url()),
        ("NO_PROXY", "example.com, 127.0.0.0/8".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let relay = start(&net.config("127.0.0.1"), &env).await;
    net.stream.wait_for_connections(1, DEADLINE).await;
    assert_delivers(&net.stream, &net.hook, "21401").await;
    assert!(proxy.tunnels().is_empty());
    relay.assert_logs_free_of(API_KEY);
}

#[tokio::test]
async fn https_targets_go_through_the_environment_proxy_with_the_private_ca() {
    let (ca, dir) = (TestCa::new(), tempfile::tempdir().unwrap());
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let front = TlsFront::start(&ca, hook.addr()).await;
    let proxy = ConnectProxy::start().await;
    let ca_file = ca.write(dir.path(), "ca.pem");
    let url = format!("https://hook.test:{}/in", front.port());
    // The stream is ws://: HTTPS_PROXY is not for it, and it connects directly.
    let config = RelayConfig::new(&stream)
        .target(
            "internal",
            "http",
            &url,
            &format!("tls = {{ ca_file = {} }}", toml_path(&ca_file)),
        )
        .route(route("all").targets(&["internal"]));

    let relay = start(&config, &[("HTTPS_PROXY", &proxy.url())]).await;
    stream.wait_for_connections(1, DEADLINE).await;
    assert_delivers(&stream, &hook, "21501").await;
    let tunnels = proxy.tunnels();
    assert_eq!(tunnels.len(), 1, "{tunnels:?}");
    assert_eq!(tunnels[0].authority, format!("hook.test:{}", front.port()));
    relay.assert_logs_free_of(API_KEY);
}

// ---------------------------------------------------------------------------------
// Secrets from files

#[tokio::test]
async fn the_api_key_can_come_from_a_secret_file() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("scrapebadger_api_key");
    std::fs::write(&secret, format!("{API_KEY}\n")).unwrap();
    let stream = StreamServer::start().await;
    let hook = Receiver::start().await;
    let reference = format!("${{file:{}}}", secret.display());
    let config = to_hook(RelayConfig::new(&stream), &hook).api_key(Some(&reference));

    let relay = start(&config, &[]).await;
    let handshakes = stream.wait_for_connections(1, DEADLINE).await;
    assert_eq!(
        handshakes[0].query_param("api_key").as_deref(),
        Some(API_KEY)
    );
    assert_delivers(&stream, &hook, "22001").await;
    relay.assert_logs_free_of(API_KEY);
}

#[test]
fn a_missing_secret_file_is_a_config_error_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("slack_webhook_url");
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "[targets.team]\ntype = \"slack\"\nurl = \"${{file:{}}}\"\n",
            missing.display()
        ),
    )
    .unwrap();
    let out = cli(&["check", "-c", config.to_str().unwrap()]).run(DEADLINE);
    out.assert_code(2);
    assert!(out.stderr.contains("targets.team.url"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("`{}`", missing.display())),
        "{}",
        out.stderr
    );

    // A file that is there but unreadable as text: named, its bytes never shown.
    std::fs::write(&missing, b"SECRETBYTES\xff\n").unwrap();
    let out = cli(&["check", "-c", config.to_str().unwrap()]).run(DEADLINE);
    out.assert_code(2).assert_free_of("SECRETBYTES");
    assert!(out.stderr.contains("not UTF-8"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------
// Colour

#[tokio::test]
async fn text_logs_written_to_a_file_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    // A stream port nothing listens on: the relay logs a warning at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "ws://{}{}",
        closed.local_addr().unwrap(),
        stream::STREAM_PATH
    );
    drop(closed);
    let path = dir.path().join("relay.toml");
    std::fs::write(
        &path,
        RelayConfig::for_url(&url).render(&dir.path().join("outbox")),
    )
    .unwrap();
    let log = dir.path().join("relay.log");

    let mut child = std::process::Command::new(support::relay::bin())
        .args(["run", "-c", path.to_str().unwrap(), "--log-format", "text"])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .envs(env(&[]))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let text = support::wait::poll_until("a WARN line in the log file", DEADLINE, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Cannot connect to the stream") {
            Ok(text)
        } else {
            Err(text)
        }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("WARN"), "{text}");
    assert!(!text.contains("\x1b["), "colour codes in a file: {text:?}");
}

/// The TOML of the ConfigMap in deploy/kubernetes-sidecar.yaml: the block under
/// `badger-relay.toml: |`, de-indented.
fn kubernetes_config() -> String {
    let yaml = include_str!("../deploy/kubernetes-sidecar.yaml");
    let start = yaml
        .find("badger-relay.toml: |\n")
        .expect("the ConfigMap's key")
        + 21;
    yaml[start..]
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_deploy_examples_read_their_secrets_from_files() {
    let compose = include_str!("../deploy/docker-compose.yml");
    assert!(compose.contains("./badger-relay.toml:/etc/badger-relay/badger-relay.toml"));
    let examples = [
        (
            include_str!("../deploy/badger-relay.toml").to_owned(),
            "/run/secrets/",
        ),
        (kubernetes_config(), "/var/run/secrets/badger-relay/"),
    ];
    for (n, (text, secrets_dir)) in examples.into_iter().enumerate() {
        assert!(text.contains(&format!("${{file:{secrets_dir}")), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("secrets");
        std::fs::create_dir(&files).unwrap();
        // Each referenced secret file, with a distinctive value and a trailing newline.
        let names: Vec<String> = text
            .match_indices(&format!("${{file:{secrets_dir}"))
            .map(|(at, m)| {
                let rest = &text[at + m.len()..];
                rest[..rest.find('}').unwrap()].to_owned()
            })
            .collect();
        assert!(!names.is_empty());
        for name in &names {
            let value = match name.as_str() {
                n if n.contains("slack") => "https://hooks.slack.com/services/T0/B0/SECRETSLACK",
                _ => "SECRETVALUE_0042",
            };
            std::fs::write(files.join(name), format!("{value}\n")).unwrap();
        }
        let local = text.replace(secrets_dir, &format!("{}/", files.display()));
        let local = local.replace(
            "/var/lib/badger-relay",
            dir.path().join("outbox").to_str().unwrap(),
        );
        let config = dir.path().join("relay.toml");
        std::fs::write(&config, local).unwrap();
        let out = env(&[])
            .into_iter()
            .fold(
                cli(&["check", "-c", config.to_str().unwrap()]),
                |c, (k, v)| c.env(k, v),
            )
            .run(DEADLINE);
        out.assert_code(0)
            .assert_free_of("SECRETVALUE_0042")
            .assert_free_of("SECRETSLACK");
        assert!(
            out.stdout
                .contains("team-slack: slack https://hooks.slack.com/services/***"),
            "example {n}: {}",
            out.stdout
        );
    }
}

#[tokio::test]
async fn a_one_letter_api_key_does_not_corrupt_log_lines() {
    let ca = TestCa::new();
    let stream = StreamServer::start().await;
    let front = TlsFront::start(&ca, stream.addr()).await;
    // The key is "k": it occurs in "UnknownIssuer", which must stay readable.
    let config = RelayConfig::for_url(&wss_url("127.0.0.1", &front)).api_key(Some("k"));

    let relay = start(&config, &[]).await;
    let line = relay
        .wait_for_log("Cannot connect to the stream", DEADLINE)
        .await;
    assert!(line.contains("UnknownIssuer"), "{line}");
    assert!(!line.contains("***"), "{line}");
}
