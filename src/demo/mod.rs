//! `badger-relay demo`: the whole pipeline with no account and no config.
//!
//! A simulated ScrapeBadger stream and a receiver that plays Slack, Discord and a
//! generic HTTP endpoint run on loopback in this process; the real pipeline (config
//! parser, router, sled outbox in a temp dir, delivery workers) runs between them.
//! Every seventh request the receiver answers 503, so the retry path shows too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::shutdown;

/// `println!` that ignores a closed stdout (`badger-relay demo | head`): printing is a
/// side show, the receiver must keep answering and the pipeline keep running.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod receiver;
mod stream;

/// The demo's outbox: a fresh directory under the system's temp dir, removed on exit.
struct DataDir(PathBuf);

impl DataDir {
    fn new() -> std::io::Result<DataDir> {
        let path = std::env::temp_dir().join(format!(
            "badger-relay-demo-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir(&path)?;
        Ok(DataDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run until Ctrl-C.
pub async fn run() -> anyhow::Result<()> {
    let stream = TcpListener::bind("127.0.0.1:0").await?;
    let receiver = TcpListener::bind("127.0.0.1:0").await?;
    let (stream_addr, receiver_addr) = (stream.local_addr()?, receiver.local_addr()?);
    let data = DataDir::new()?;
    let config = Config::parse(
        &demo_config(stream_addr, receiver_addr, data.path()),
        Path::new("(demo)"),
        &|_| None,
    )?;

    say!(
        "badger-relay demo: a simulated ScrapeBadger stream on ws://{stream_addr}, a receiver on http://{receiver_addr},"
    );
    say!(
        "and the real pipeline between them (outbox in {}). Ctrl-C to stop.\n",
        data.path().display()
    );
    say!(
        "Routes: \"Tech Leaders\" → Slack · authors elonmusk/sama → Discord · everything → HTTP\n"
    );

    tokio::spawn(stream::serve_stream(stream));
    tokio::spawn(receiver::serve_receiver(receiver));

    let (trigger, _) = shutdown::channel();
    let trigger = Arc::new(trigger);
    let on_signal = trigger.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.trigger();
    });
    let result = crate::app::run(config, trigger).await;
    say!("\ndemo stopped.");
    result
}

fn demo_config(stream: SocketAddr, receiver: SocketAddr, data: &Path) -> String {
    format!(
        r#"
[source]
url = "ws://{stream}/v1/twitter/stream"
proxy = "none"
api_key = "demo-key"
reconnect = {{ initial = "200ms", max = "2s" }}

[outbox]
path = {data:?}
retry = {{ initial = "500ms", max = "5s" }}

[targets.team-slack]
type = "slack"
url = "http://{receiver}/slack/T000/B000/XXXX"

[targets.ops-discord]
type = "discord"
url = "http://{receiver}/discord/123/abc"
username = "Tweet alerts"

[targets.workflow]
type = "http"
url = "http://{receiver}/http/hooks/tweets"
signing_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

[[routes]]
name = "tech-leaders"
monitors = ["Tech Leaders"]
targets = ["team-slack"]

[[routes]]
name = "founders"
authors = ["elonmusk", "@sama"]
targets = ["ops-discord"]

[[routes]]
name = "everything"
targets = ["workflow"]
"#,
        data = data.display().to_string()
    )
}
