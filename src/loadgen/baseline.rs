//! The bare baseline: an axum handler that answers every Twilio-shaped POST with the same
//! TwiML and does nothing else. Measured in the same run as Nudge, on the same cores and with
//! the same client, it turns Nudge's throughput into a ratio that compares across machines.
//!
//! It runs on its own runtime and threads (as many as the machine has cores), as a separate
//! server process would, so it does not share the load generator's scheduler.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use axum::Router;
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::post;
use tokio::sync::oneshot;

use crate::sms::twiml;

/// The name of the bare server's threads, by which its CPU is told from the load
/// generator's.
pub const THREADS: &str = "bare-baseline";

/// The fixed answer.
pub const ANSWER: &str =
    r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>Got it.</Message></Response>"#;

/// An axum app served on a runtime and threads of its own, as a separate process would be;
/// stopped (gracefully) when dropped.
pub(super) struct ServerThread {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Serves `app` on `addr` (port 0 picks one) with `workers` runtime threads named `name`.
    pub(super) fn start(
        addr: SocketAddr,
        app: Router,
        name: &str,
        workers: usize,
    ) -> std::io::Result<Self> {
        Self::spawn(addr, name, workers, move || async move { Ok(app) }).map(|(server, _)| server)
    }

    /// Serves the app `setup` builds on the server's own runtime (where what it connects
    /// belongs), once `setup` succeeded; else its error.
    pub(super) async fn start_with<F, Fut>(
        addr: SocketAddr,
        name: &str,
        workers: usize,
        setup: F,
    ) -> anyhow::Result<Self>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<Router>>,
    {
        let (server, ready) = Self::spawn(addr, name, workers, setup)?;
        ready
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the {name} thread ended")))?;
        Ok(server)
    }

    /// Binds `addr`, then serves on a thread of its own the app `setup` builds; the receiver
    /// hears whether `setup` succeeded.
    fn spawn<F, Fut>(
        addr: SocketAddr,
        name: &str,
        workers: usize,
        setup: F,
    ) -> std::io::Result<(Self, oneshot::Receiver<anyhow::Result<()>>)>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<Router>>,
    {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name(name)
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready, set_up) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                runtime.block_on(async move {
                    let app = match setup().await {
                        Ok(app) => app,
                        Err(error) => {
                            let _ = ready.send(Err(error));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(()));
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })?;
        let server = Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        };
        Ok((server, set_up))
    }

    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A running bare server; stopped when dropped.
pub struct BareServer(ServerThread);

impl BareServer {
    /// Starts it on a free loopback port.
    pub fn start() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let app = Router::new().route("/sms/inbound", post(answer));
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        ServerThread::start(addr, app, THREADS, threads).map(Self)
    }

    pub fn addr(&self) -> SocketAddr {
        self.0.addr()
    }
}

async fn answer(_form: Bytes) -> impl IntoResponse {
    ([(CONTENT_TYPE, twiml::CONTENT_TYPE)], ANSWER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::client::{Answer, Connection, SmsWebhooks, Traffic};

    #[test]
    fn the_fixed_answer_is_the_twiml_nudge_would_render() {
        assert_eq!(ANSWER, twiml::message("Got it."));
    }

    #[tokio::test]
    async fn the_bare_server_answers_webhooks_with_fixed_twiml_until_dropped() {
        let server = BareServer::start().unwrap();
        let addr = server.addr();
        let url = format!("http://{addr}/sms/inbound");
        let traffic = SmsWebhooks::new(&url, &addr.to_string(), "t", vec![]);
        let mut connection = Connection::new(addr);
        for seq in 0..3 {
            let (status, body) = connection.send(traffic.request(1, seq)).await.unwrap();
            assert_eq!(traffic.check(status, &body), Ok(Answer::Replied));
            assert_eq!(body, ANSWER.as_bytes());
        }
        drop(connection);
        drop(server);
        assert!(
            Connection::new(addr)
                .send(traffic.request(1, 9))
                .await
                .is_err()
        );
    }
}
