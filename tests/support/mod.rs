//! The integration-test harness: local stand-ins for everything badger-relay talks to,
//! and a handle on the real binary.
//!
//! - [`StreamServer`]: the ScrapeBadger WebSocket stream, on 127.0.0.1, that a test
//!   drives frame by frame (and can make close, drop, go silent, refuse or vanish).
//! - [`Receiver`]: a webhook endpoint that records every request and can fail, stall,
//!   throttle or go down on cue.
//! - [`Relay`]: the `badger-relay` binary running `run` on a config in a temp dir, its
//!   stdout and stderr captured line by line, killable with SIGKILL or SIGTERM.
//! - [`RelayConfig`]: the TOML config for a stream, an outbox and a set of targets, with
//!   test timings (fast reconnect and retry).
//! - [`cli`]: one-shot commands (`check`, `route`, ...) with a deadline.
//! - [`tls::TestCa`] and [`tls::TlsFront`]: a private CA made in the test, and TLS with
//!   its certificate in front of any of the servers above.
//! - [`proxy::ConnectProxy`]: an HTTP CONNECT proxy that records what it tunnelled.
//!
//! The binary is the one cargo builds with the tests; `BADGER_RELAY_BIN=/path/to/binary`
//! holds another build (a release build, another branch) to the same tests.
//!
//! Every wait takes a deadline and panics with what it waited for and what it saw
//! instead; nothing sleeps and hopes. Each test file includes this with `mod support;`.
#![allow(dead_code, unused_imports)]

pub mod chat;
pub mod cli;
pub mod config;
pub mod events;
pub mod nats;
pub mod process;
pub mod proxy;
pub mod receiver;
pub mod relay;
pub mod server;
pub mod sign;
pub mod stream;
pub mod tls;
pub mod wait;

use std::time::Duration;

pub use chat::{
    chat_tweet_id, chat_tweet_ids, log_json, statuses, wait_for_chat_tweet, wait_for_dead_letter,
};
pub use cli::{Cli, CliOutput, cli};
pub use config::{RelayConfig, Route, route};
pub use events::{event, tweet_event, tweet_id};
pub use receiver::{Receiver, Reply, Request};
pub use relay::Relay;
pub use sign::{signing_key, verify_webhook_signature};
pub use stream::{Handshake, StreamServer};

/// The deadline of a single wait in a test: generous, because two cores are shared by
/// parallel tests and debug builds; normal runs finish far sooner.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// The API key every test config uses: distinctive, so that a test can assert it never
/// shows up in a log line. Only unreserved URL characters, so it is sent as is.
pub const API_KEY: &str = "sk_test_BADGERKEY_7f3a9c2e51d04b86";

/// `badger-relay/<version>`, the `User-Agent` the contract promises.
pub fn user_agent() -> String {
    format!("badger-relay/{}", env!("CARGO_PKG_VERSION"))
}
