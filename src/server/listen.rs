//! The server's accept loop: hyper's HTTP/1 connections, with a deadline for the head.
//!
//! `axum::serve` gives hyper no timer, so hyper's `header_read_timeout` never fires there:
//! a client that sends its request head a byte at a time (slowloris), or opens a
//! connection and says nothing, holds that connection and its task for as long as it
//! likes. Here each connection is served by hyper's http1 builder with tokio's timer, and
//! a head not complete within [`HEADER_TIMEOUT`] closes the connection. On shutdown the
//! loop stops accepting and each connection finishes the request it is serving, then
//! closes (the caller bounds how long that may take).

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use super::quiet::Quiet;
use crate::shutdown::Shutdown;

/// How long a client has to send a request's head (its line and headers), counted from
/// the connection's start or the end of its previous request (keep-alive).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve `app` on `listener` until shutdown.
pub(super) async fn serve(listener: TcpListener, app: Router, mut shutdown: Shutdown) {
    let accept_errors = Quiet::default();
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors, say: wait for connections to close
                    // rather than spin on the error.
                    if let Some(suppressed) = accept_errors.admit() {
                        tracing::warn!(error = %e, suppressed, "Could not accept an HTTP connection");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => return,
        };
        let service = TowerToHyperService::new(app.clone());
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = shutdown.wait() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}
