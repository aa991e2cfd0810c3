//! Simulated web users: each holds a WebSocket to `GET /ws` open for the whole run, as the
//! web client does, and receives the messages of its own turns as they are pushed.
//!
//! The first `--sockets` users of the population are signed in: the harness runs with the
//! server's environment (as it does for webhook signatures), so it opens a session for each
//! in the store and signs an access token with the server's key ring, exactly what a sign-in
//! would store and return, without paying a password hash per simulated user.
//!
//! When a webhook of a user holding a socket is sent, the time is noted; the push of that
//! user's next reply message over the socket closes the measure. That *push latency* is what
//! a person watching the web client waits for a reply to a text they sent by SMS.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::population;
use super::recorder::{self, LatencySummary};
use crate::auth::tokens::{AccessClaims, JwtKeys, random_token, token_hash};
use crate::config::Settings;
use crate::store::{self, NewSession};

/// Sockets opened at the same time while the fleet connects.
const OPENING_AT_ONCE: usize = 64;
/// What one socket may take to open.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Each socket's read buffer and write batch, in bytes.
const SOCKET_BUFFER: usize = 4 * 1024;
/// How long the simulated sessions last: longer than any run.
const SESSION_HOURS: i64 = 12;

/// Signs in users `0..count` of the population: a session each in the store, and an access
/// token for it signed with the server's keys.
pub async fn sign_in(settings: &Settings, count: u64) -> anyhow::Result<Vec<String>> {
    let store = settings.open_store().await?;
    let now = chrono::Utc::now();
    let ttl = chrono::Duration::from_std(settings.auth.access_ttl)
        .unwrap_or_else(|_| chrono::Duration::minutes(15));
    let mut tokens = Vec::with_capacity(count as usize);
    for i in 0..count {
        let number = population::number(i);
        let user = store.user_by_number(&number).await.with_context(|| {
            format!("user {i} ({number}) is not registered: run `nudge admin seed` first")
        })?;
        let session = NewSession {
            id: Uuid::new_v4(),
            user_id: user.id,
            auth_time: now,
            mfa: false,
            expires_at: now + chrono::Duration::hours(SESSION_HOURS),
            refresh_hash: token_hash(&random_token()),
            refresh_expires_at: now + chrono::Duration::hours(SESSION_HOURS),
        };
        store
            .create_session(&session, now)
            .await
            .with_context(|| format!("opening a session for user {i}"))?;
        tokens.push(sign(&settings.jwt_keys, &session, user.role, now, ttl)?);
    }
    Ok(tokens)
}

fn sign(
    keys: &JwtKeys,
    session: &NewSession,
    role: store::Role,
    now: chrono::DateTime<chrono::Utc>,
    ttl: chrono::Duration,
) -> anyhow::Result<String> {
    let claims = AccessClaims::new(
        session.user_id,
        role,
        session.id,
        session.auth_time,
        session.mfa,
        false,
        now,
        ttl,
    );
    keys.sign(&claims)
        .map_err(|_| anyhow::anyhow!("signing an access token"))
}

/// What the fleet's holders share with the webhook senders.
pub struct Pushes {
    epoch: Instant,
    /// Per user holding a socket: when its latest webhook was sent, in nanoseconds after
    /// `epoch` plus one; 0 when no reply is awaited.
    sent: Vec<AtomicU64>,
    /// Message events received, any direction.
    messages: AtomicU64,
    /// Sockets the server closed, or that failed, before the fleet was closed.
    dropped: AtomicU64,
    latency: Mutex<Histogram<u64>>,
}

impl Pushes {
    fn new(users: usize) -> Self {
        Self {
            epoch: Instant::now(),
            sent: (0..users).map(|_| AtomicU64::new(0)).collect(),
            messages: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            latency: Mutex::new(recorder::latency_histogram()),
        }
    }

    /// Notes that `user`'s webhook leaves now, when that user holds a socket.
    pub fn sending(&self, user: u64) {
        if let Some(slot) = self.sent.get(user as usize) {
            let at = self.epoch.elapsed().as_nanos() as u64 + 1;
            slot.store(at, Ordering::Relaxed);
        }
    }

    /// A frame reached `user`'s socket.
    fn received(&self, user: usize, text: &str) {
        #[derive(Deserialize)]
        struct Head<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            #[serde(default)]
            direction: &'a str,
        }
        let Ok(head) = serde_json::from_str::<Head>(text) else {
            return;
        };
        if head.kind != "message" {
            return;
        }
        self.messages.fetch_add(1, Ordering::Relaxed);
        if head.direction != "outbound" {
            return;
        }
        let Some(slot) = self.sent.get(user) else {
            return;
        };
        let sent = slot.swap(0, Ordering::Relaxed);
        if sent == 0 {
            return;
        }
        let now = self.epoch.elapsed().as_nanos() as u64 + 1;
        let waited = Duration::from_nanos(now.saturating_sub(sent));
        let mut histogram = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        recorder::record_latency(&mut histogram, waited);
    }
}

/// Web users' sockets as a run saw them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SocketSummary {
    /// Sockets asked for (`--sockets`).
    pub requested: u64,
    pub opened: u64,
    /// Sockets that did not open (refused, timed out).
    pub failed: u64,
    /// Sockets lost during the run.
    pub dropped: u64,
    /// Message events pushed to the sockets (inbound and replies).
    pub messages: u64,
    /// From a webhook leaving to its reply reaching the user's socket.
    pub push_latency: LatencySummary,
    /// The server's RSS growth while the sockets opened, per socket.
    pub bytes_per_socket: Option<f64>,
}

/// The open sockets and their holders.
pub struct Fleet {
    pushes: Arc<Pushes>,
    stop: CancellationToken,
    holders: Vec<tokio::task::JoinHandle<()>>,
    failed: u64,
    bytes_per_socket: Option<f64>,
}

impl Fleet {
    /// Opens one socket per token (user `i` holds `tokens[i]`), a few at a time; `rss` reads
    /// the server's resident memory, to measure what a socket costs it.
    pub async fn open(
        addr: SocketAddr,
        host: &str,
        tokens: Vec<String>,
        rss: impl Fn() -> Option<u64>,
    ) -> Self {
        let pushes = Arc::new(Pushes::new(tokens.len()));
        let stop = CancellationToken::new();
        let rss_before = rss();
        let urls: Vec<(usize, String)> = tokens
            .into_iter()
            .enumerate()
            .map(|(user, token)| (user, format!("ws://{host}/ws?token={token}")))
            .collect();
        let opened: Vec<_> = futures::stream::iter(urls)
            .map(|(user, url)| async move {
                let socket = tokio::time::timeout(OPEN_TIMEOUT, connect(addr, url)).await;
                (user, socket)
            })
            .buffer_unordered(OPENING_AT_ONCE)
            .collect()
            .await;
        let mut holders = Vec::new();
        let mut failed = 0;
        for (user, socket) in opened {
            match socket {
                Ok(Ok(socket)) => {
                    holders.push(tokio::spawn(hold(
                        socket,
                        user,
                        pushes.clone(),
                        stop.clone(),
                    )));
                }
                _ => failed += 1,
            }
        }
        // Let the server finish setting the sockets up before its memory is read.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let bytes_per_socket = match (rss_before, rss()) {
            (Some(before), Some(after)) if !holders.is_empty() => {
                Some(after.saturating_sub(before) as f64 / holders.len() as f64)
            }
            _ => None,
        };
        Self {
            pushes,
            stop,
            holders,
            failed,
            bytes_per_socket,
        }
    }

    /// What the webhook senders note their sends in.
    pub fn pushes(&self) -> Arc<Pushes> {
        self.pushes.clone()
    }

    /// Sockets that opened.
    pub fn opened(&self) -> u64 {
        self.holders.len() as u64
    }

    /// Sockets that did not open.
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// Closes every socket and sums up what they saw.
    pub async fn close(self) -> SocketSummary {
        self.stop.cancel();
        let opened = self.holders.len() as u64;
        for holder in self.holders {
            let _ = holder.await;
        }
        let pushes = &self.pushes;
        SocketSummary {
            requested: pushes.sent.len() as u64,
            opened,
            failed: self.failed,
            dropped: pushes.dropped.load(Ordering::Relaxed),
            messages: pushes.messages.load(Ordering::Relaxed),
            push_latency: LatencySummary::of(
                &pushes
                    .latency
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            ),
            bytes_per_socket: self.bytes_per_socket,
        }
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn connect(addr: SocketAddr, url: String) -> anyhow::Result<Socket> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    // Small buffers, as the server's: the harness holds many sockets beside the server.
    let config = WebSocketConfig::default()
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER);
    let (socket, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
    Ok(socket)
}

/// Reads `user`'s socket until the fleet closes (pings are answered while reading).
async fn hold(mut socket: Socket, user: usize, pushes: Arc<Pushes>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = socket.close(None).await;
                return;
            }
            frame = socket.next() => match frame {
                Some(Ok(Frame::Text(text))) => pushes.received(user, text.as_str()),
                Some(Ok(Frame::Close(_))) | Some(Err(_)) | None => {
                    pushes.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_pushed_after_a_send_is_measured_once() {
        let pushes = Pushes::new(2);
        pushes.sending(1);
        pushes.received(1, r#"{"type":"message","direction":"inbound","body":"hi"}"#);
        pushes.received(1, r#"{"type":"typing"}"#);
        pushes.received(
            1,
            r#"{"type":"message","direction":"outbound","body":"Hello"}"#,
        );
        pushes.received(
            1,
            r#"{"type":"message","direction":"outbound","body":"again"}"#,
        );
        assert_eq!(pushes.messages.load(Ordering::Relaxed), 3);
        let latency = LatencySummary::of(&pushes.latency.lock().unwrap());
        assert_eq!(latency.count, 1, "only the reply to a noted send counts");
    }

    #[test]
    fn users_without_a_socket_and_garbage_frames_are_ignored() {
        let pushes = Pushes::new(1);
        pushes.sending(5);
        pushes.received(0, "not json");
        pushes.received(7, r#"{"type":"message","direction":"outbound"}"#);
        assert_eq!(pushes.latency.lock().unwrap().len(), 0);
    }
}
