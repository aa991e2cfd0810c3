//! The client side: one HTTP/1.1 keep-alive connection per simulated concurrent sender, and
//! the [`Traffic`] that says what each request is and what a right answer looks like.
//!
//! The client is bare hyper rather than a pooled high-level client, so that its own cost per
//! request stays small beside the server's: both share the same cores.
//!
//! # Adding traffic
//!
//! [`SmsWebhooks`] is the only traffic today. A WebSocket side (users holding a socket open
//! and chatting over it) plugs in beside it once the server has `/ws`: a second [`Traffic`]
//! for its request/answer turns, plus a holder task per simulated web user that keeps its
//! socket open for the phase and counts pushed turns. The phase runner and the report take any
//! [`Traffic`] as they are.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::population;
use crate::sms::signature;

/// Why a request got no answer at all.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connecting: {0}")]
    Connect(std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
}

/// One keep-alive HTTP/1.1 connection, reopened after a failure.
pub struct Connection {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    /// A connection to `addr`, opened on the first request.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, sender: None }
    }

    async fn open(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, SendError> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = TcpStream::connect(self.addr)
                .await
                .map_err(SendError::Connect)?;
            stream.set_nodelay(true).map_err(SendError::Connect)?;
            let (sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                // Ends when the sender is dropped or the server closes; nothing to report.
                let _ = connection.await;
            });
            self.sender = Some(sender);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| SendError::Connect(std::io::ErrorKind::NotConnected.into()))
    }

    /// Sends `request` and reads the whole answer.
    pub async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), SendError> {
        let result = async {
            let sender = self.open().await?;
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok((status, body))
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    /// `GET path`, with a bearer token when given.
    pub async fn get(
        &mut self,
        host: &str,
        path: &str,
        token: Option<&str>,
    ) -> Result<(StatusCode, Bytes), SendError> {
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(HOST, host);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        match request.body(Full::new(Bytes::new())) {
            Ok(request) => self.send(request).await,
            Err(e) => Err(SendError::Connect(std::io::Error::other(e))),
        }
    }
}

/// What went wrong with an answer, as a stable key of the report's error counts.
pub type FailureKind = String;

/// How a request was rightly answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The reply came in the answer itself.
    Replied,
    /// An empty TwiML answer. Every simulated text gets a reply, so this one's turn outlasted
    /// the server's reply window and its reply goes out through Twilio's REST API instead
    /// (which the model stand-in counts, when there is one).
    Deferred,
}

/// What one simulated request is, and what a right answer to it looks like.
pub trait Traffic: Send + Sync {
    /// The request number `seq` of the phase, sent by (or for) user `user`.
    fn request(&self, user: u64, seq: u64) -> Request<Full<Bytes>>;
    /// How a right answer came, else the kind of failure.
    fn check(&self, status: StatusCode, body: &[u8]) -> Result<Answer, FailureKind>;
}

/// Texts from the simulated population, signed exactly as Twilio signs its webhooks.
pub struct SmsWebhooks {
    /// The full URL the server checks signatures against.
    signed_url: String,
    /// The request path on the target.
    path: String,
    /// The `Host` header.
    host: String,
    auth_token: String,
    /// Message texts, sent in turn.
    bodies: Vec<String>,
    /// Marks an answer the server gives when a turn failed.
    failure_text: String,
    /// The answer when the reply is to go out later through the REST API.
    empty_text: String,
}

/// The form-body type of webhooks.
const FORM: &str = "application/x-www-form-urlencoded";
/// Fixed fields of every webhook, as Twilio sends them.
const ACCOUNT_SID: &str = "AC00000000000000000000000000000000";

impl SmsWebhooks {
    /// Webhooks to `signed_url` (its path is the one requested), signed with `auth_token`.
    pub fn new(signed_url: &str, host: &str, auth_token: &str, bodies: Vec<String>) -> Self {
        let path = url::Url::parse(signed_url)
            .map(|u| u.path().to_owned())
            .unwrap_or_else(|_| "/sms/inbound".to_owned());
        Self {
            signed_url: signed_url.to_owned(),
            path,
            host: host.to_owned(),
            auth_token: auth_token.to_owned(),
            bodies: if bodies.is_empty() {
                vec!["hi".to_owned()]
            } else {
                bodies
            },
            failure_text: crate::sms::twiml::message(crate::edges::sms::TRY_AGAIN),
            empty_text: crate::sms::twiml::empty(),
        }
    }

    /// The form Twilio posts for user `user`'s message number `seq`.
    pub fn params(&self, user: u64, seq: u64) -> Vec<(String, String)> {
        let sid = format!("SM{:016x}{:016x}", user, seq ^ rand::random::<u64>());
        let body = &self.bodies[(seq % self.bodies.len() as u64) as usize];
        vec![
            ("ToCountry".into(), "US".into()),
            ("SmsMessageSid".into(), sid.clone()),
            ("NumMedia".into(), "0".into()),
            ("SmsSid".into(), sid.clone()),
            ("SmsStatus".into(), "received".into()),
            ("Body".into(), body.clone()),
            ("To".into(), population::number(user)),
            ("NumSegments".into(), "1".into()),
            ("MessageSid".into(), sid),
            ("AccountSid".into(), ACCOUNT_SID.into()),
            ("From".into(), population::phone(user)),
            ("ApiVersion".into(), "2010-04-01".into()),
        ]
    }
}

impl Traffic for SmsWebhooks {
    fn request(&self, user: u64, seq: u64) -> Request<Full<Bytes>> {
        let params = self.params(user, seq);
        let signature = signature::expected_signature(&self.auth_token, &self.signed_url, &params);
        let body = serde_urlencoded::to_string(&params).unwrap_or_default();
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.path.as_str())
            .header(HOST, self.host.as_str())
            .header(CONTENT_TYPE, FORM)
            .header("x-twilio-signature", signature)
            .body(Full::new(Bytes::from(body)));
        // Every part is built here from valid pieces; a bad path would fail every request
        // alike, and the server's 4xx says so in the report.
        request.unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
    }

    fn check(&self, status: StatusCode, body: &[u8]) -> Result<Answer, FailureKind> {
        if status != StatusCode::OK {
            return Err(format!("status_{}", status.as_u16()));
        }
        if body == self.failure_text.as_bytes() {
            return Err("turn_failed".into());
        }
        if body == self.empty_text.as_bytes() {
            return Ok(Answer::Deferred);
        }
        if !contains(body, b"<Message>") {
            return Err("no_reply".into());
        }
        Ok(Answer::Replied)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic() -> SmsWebhooks {
        SmsWebhooks::new(
            "http://127.0.0.1:8080/sms/inbound",
            "127.0.0.1:8080",
            "token",
            vec!["hi".into(), "tasks".into()],
        )
    }

    #[test]
    fn webhooks_are_signed_as_twilio_signs_them_and_come_from_the_users_own_phone() {
        let traffic = traffic();
        let request = traffic.request(7, 3);
        assert_eq!(request.uri().path(), "/sms/inbound");
        let header = request.headers()["x-twilio-signature"]
            .to_str()
            .unwrap()
            .to_owned();
        let params = {
            let bytes = request.body().clone();
            let bytes = futures::executor::block_on(bytes.collect())
                .unwrap()
                .to_bytes();
            serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes).unwrap()
        };
        assert!(signature::verify(
            "token",
            "http://127.0.0.1:8080/sms/inbound",
            &params,
            &header
        ));
        let field = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(field("From"), Some(population::phone(7)));
        assert_eq!(field("To"), Some(population::number(7)));
        assert_eq!(
            field("Body").as_deref(),
            Some("tasks"),
            "bodies are sent in turn"
        );
        let sid = field("MessageSid").unwrap();
        assert!(
            sid.starts_with("SM")
                && sid.len() == 34
                && sid[2..].chars().all(|c| c.is_ascii_hexdigit())
        );
        assert_ne!(
            traffic.params(7, 3)[1],
            traffic.params(7, 3)[1],
            "every webhook has its own SID"
        );
    }

    #[test]
    fn answers_are_judged_by_status_reply_and_failure_text() {
        let traffic = traffic();
        let reply = crate::sms::twiml::message("Hi Ana!");
        assert_eq!(
            traffic.check(StatusCode::OK, reply.as_bytes()),
            Ok(Answer::Replied)
        );
        assert_eq!(
            traffic
                .check(StatusCode::SERVICE_UNAVAILABLE, b"")
                .unwrap_err(),
            "status_503"
        );
        let empty = crate::sms::twiml::empty();
        assert_eq!(
            traffic.check(StatusCode::OK, empty.as_bytes()),
            Ok(Answer::Deferred),
            "an empty answer means the reply goes out later, by the REST API"
        );
        assert_eq!(
            traffic
                .check(StatusCode::OK, b"<html>maintenance</html>")
                .unwrap_err(),
            "no_reply"
        );
        let failed = crate::sms::twiml::message(crate::edges::sms::TRY_AGAIN);
        assert_eq!(
            traffic
                .check(StatusCode::OK, failed.as_bytes())
                .unwrap_err(),
            "turn_failed"
        );
    }
}
