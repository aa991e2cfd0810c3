//! `GET /ws`: the web client's live connection.
//!
//! Authenticated with the user's access token, given as `?token=` or as the second
//! `Sec-WebSocket-Protocol` value after `bearer` (browsers cannot set headers on a WebSocket):
//! the socket carries that user's events only. `?after=<message id>` resumes: the messages
//! stored after that id are sent first (from the store), then live events; a message the
//! resume already sent is not sent again live.
//!
//! Server → client: JSON [`Event`]s with a `type` (`message`, `reminder`, `typing`,
//! `task_changed`), plus `{"type":"error","code","message"}` for a refused client frame.
//! Client → server: `{"type":"message","text":"…"}` runs a turn in the user's actor, on the
//! web channel; its messages reach every open client of the user through the hub. The server
//! pings every [`PING_EVERY`] and drops a client that answered none of two pings.

use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message as Frame, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use chrono::Utc;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;

use super::api::{ClientIp, authenticate};
use super::{ApiError, AppState};
use crate::actors::user::InboundTurn;
use crate::live::Event;
use crate::store::{Channel, UserId};

/// How often the server pings.
pub const PING_EVERY: Duration = Duration::from_secs(20);
/// Messages sent on resume, at most (a client further behind reloads its history).
const RESUME_LIMIT: u32 = 500;
/// A chat message's longest text, in bytes.
const MAX_TEXT: usize = 4_000;
/// How long a turn over the socket may take.
const TURN_TIMEOUT: Duration = Duration::from_secs(60);
/// Each socket's read buffer and write batch, in bytes. The library's defaults (128 KiB each)
/// would make an idle socket cost the server over 100 KiB; frames here are a few hundred bytes.
const SOCKET_BUFFER: usize = 4 * 1024;
/// Largest frame or message a client may send: a chat message of [`MAX_TEXT`] bytes fits
/// with room for JSON escapes.
const MAX_FRAME: usize = 32 * 1024;
/// Most bytes queued for a client that is not reading before the socket is dropped.
const MAX_QUEUED: usize = 1024 * 1024;
/// Live events written to a socket at once, at most, before the socket's other work.
const BURST: usize = 16;

pub fn router() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

/// A frame from the client.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientFrame {
    Message { text: String },
}

async fn upgrade(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let mut token = None;
    let mut after = None;
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "token" => token = Some(value.into_owned()),
            "after" => after = Some(value.into_owned()),
            _ => {}
        }
    }
    let from_protocol = headers
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let mut parts = v.split(',').map(str::trim);
            (parts.next() == Some("bearer"))
                .then(|| parts.next())
                .flatten()
        })
        .map(str::to_owned);
    let token = token
        .or(from_protocol)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized(
                "unauthorized",
                "sign in: give the access token as ?token= or after `bearer` in Sec-WebSocket-Protocol",
            )
        })?;
    let after = match after.as_deref() {
        None => None,
        Some(text) => Some(text.parse::<i64>().map_err(|_| ApiError::BadRequest {
            code: "invalid_after",
            message: "`after` must be a message id (an integer)".into(),
        })?),
    };
    let user = authenticate(&state, &token, "/ws", ip).await?.user_id;
    Ok(ws
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .max_write_buffer_size(MAX_QUEUED)
        .max_frame_size(MAX_FRAME)
        .max_message_size(MAX_FRAME)
        .protocols(["bearer"])
        .on_upgrade(move |socket| serve(socket, state, user, after)))
}

async fn serve(socket: WebSocket, state: AppState, user: UserId, after: Option<i64>) {
    // Subscribe before reading the store, so nothing stored meanwhile is missed.
    let mut subscription = state.live.subscribe(user);
    let (mut sink, mut stream) = socket.split();
    // The newest message this client has: live copies of older ones are not sent again.
    let mut last_id = after.unwrap_or(0);
    if let Some(after) = after {
        match state.store.messages_after(user, after, RESUME_LIMIT).await {
            Ok(missed) => {
                for message in &missed {
                    if feed(&mut sink, &Event::message(message)).await.is_err() {
                        return;
                    }
                    last_id = last_id.max(message.id);
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::error!(user = %user, %error, "cannot read missed messages");
                return;
            }
        }
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut unanswered = 0u32;
    loop {
        tokio::select! {
            event = subscription.events.recv() => {
                let Some(event) = event else { break };
                // The events queued together (a message, its reply, a change to the lists)
                // go out in one write.
                let mut next = Some(event);
                let mut fed = 0;
                while let Some(event) = next.take() {
                    if is_new(&event, &mut last_id) && feed(&mut sink, &event).await.is_err() {
                        return;
                    }
                    fed += 1;
                    if fed < BURST {
                        next = subscription.events.try_recv().ok();
                    }
                }
                if sink.flush().await.is_err() {
                    break;
                }
            }
            frame = stream.next() => match frame {
                Some(Ok(Frame::Text(text))) => {
                    if let Some(refusal) = receive(&state, user, text.as_str()).await
                        && sink.send(Frame::Text(Utf8Bytes::from(refusal.to_string()))).await.is_err()
                    {
                        break;
                    }
                }
                Some(Ok(Frame::Pong(_))) => unanswered = 0,
                Some(Ok(Frame::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if unanswered >= 2 {
                    tracing::info!(user = %user, "WebSocket client stopped answering pings");
                    break;
                }
                unanswered += 1;
                if sink.send(Frame::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Whether `event` is news to a client whose newest message is `last_id`, which it updates:
/// a message the resume already sent is not sent again live.
fn is_new(event: &Event, last_id: &mut i64) -> bool {
    match event {
        Event::Message { id, .. } if *id <= *last_id => false,
        Event::Message { id, .. } => {
            *last_id = *id;
            true
        }
        _ => true,
    }
}

/// Queues `event` on the socket, written out at the next flush (or once the write buffer
/// fills).
async fn feed(
    sink: &mut futures::stream::SplitSink<WebSocket, Frame>,
    event: &Event,
) -> Result<(), axum::Error> {
    let text = serde_json::to_string(event).unwrap_or_default();
    sink.feed(Frame::Text(Utf8Bytes::from(text))).await
}

/// Handles a client frame; the refusal to send back, if any. A chat message runs its turn
/// in its own task: its messages come back through the hub.
async fn receive(state: &AppState, user: UserId, text: &str) -> Option<serde_json::Value> {
    let frame: ClientFrame = match serde_json::from_str(text) {
        Ok(frame) => frame,
        Err(_) => {
            return Some(refusal(
                "invalid_frame",
                "send {\"type\":\"message\",\"text\":\"…\"}",
            ));
        }
    };
    let ClientFrame::Message { text } = frame;
    let text = text.trim().to_owned();
    if text.is_empty() || text.len() > MAX_TEXT {
        return Some(refusal(
            "invalid_text",
            "a message is 1 to 4000 bytes of text",
        ));
    }
    if let Err(error) = state.security.limit_ws_message(user).await {
        return Some(refusal("rate_limited", &error.to_string()));
    }
    let turn = InboundTurn {
        channel: Channel::Web,
        body: text,
        provider_message_id: None,
        segments: None,
        received_at: Utc::now(),
    };
    let actors = state.actors.clone();
    state.tasks.spawn(async move {
        if let Err(error) = actors.turn(user, turn, TURN_TIMEOUT).await {
            tracing::warn!(user = %user, %error, "web turn failed");
        }
    });
    None
}

fn refusal(code: &str, message: &str) -> serde_json::Value {
    json!({"type": "error", "code": code, "message": message})
}
