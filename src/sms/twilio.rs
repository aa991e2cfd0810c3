//! The Twilio REST client for outbound SMS.
//!
//! One call matters: `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded,
//! HTTP basic auth with the account SID and auth token. The answer is the created Message
//! resource (`sid`, `status`, `num_segments`, …) or an error document
//! `{code, message, more_info, status}`.
//!
//! The client is a cheap handle: clone it freely (the HTTP connection pool and the settings are
//! shared). The auth token is kept in a [`SecretString`] and never appears in `Debug` output or
//! in logs; neither do phone numbers or message bodies.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

/// Twilio's production API.
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";
/// The longest body Twilio accepts, in characters; longer bodies are rejected locally.
pub const MAX_BODY_CHARS: usize = 1_600;
/// Default time allowed to open a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time allowed for a whole request, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Twilio error code: the recipient replied STOP to this sender.
pub const CODE_OPTED_OUT: i64 = 21_610;
/// Twilio error code: the `To` number is not a valid phone number.
pub const CODE_INVALID_TO: i64 = 21_211;
/// Twilio error code: the `To` number cannot receive SMS (landline, …).
pub const CODE_NOT_SMS_CAPABLE: i64 = 21_614;
/// Twilio error code: authentication failed.
pub const CODE_AUTH: i64 = 20_003;
/// Twilio error code: too many requests.
pub const CODE_RATE_LIMITED: i64 = 20_429;

/// What can go wrong when talking to Twilio.
#[derive(Debug, thiserror::Error)]
pub enum TwilioError {
    /// Twilio answered with an error status.
    ///
    /// `Display` shows the status and code only: Twilio's messages often quote the recipient's
    /// phone number, which must not reach the logs. Read `message` deliberately if needed.
    #[error("Twilio API error: HTTP {status}, code {}", code.map_or_else(|| "none".to_owned(), |c| c.to_string()))]
    Api {
        /// The HTTP status.
        status: u16,
        /// Twilio's error code (see <https://www.twilio.com/docs/api/errors>), when the body had
        /// one.
        code: Option<i64>,
        /// Twilio's message, or a short excerpt of a body that was not Twilio's JSON.
        message: String,
        /// Whether trying again later may succeed (429, 5xx, code 20429).
        retryable: bool,
        /// How long Twilio asked to wait, from a `Retry-After: <seconds>` header.
        retry_after: Option<Duration>,
    },
    /// The request could not be completed: connection refused, TLS, timeout, body cut short.
    /// Retryable, but see [`TwilioError::may_have_been_sent`] before retrying a send.
    #[error("could not reach Twilio: {0}")]
    Transport(#[source] reqwest::Error),
    /// Twilio answered with success but the body could not be read as a Message resource. The
    /// message was most likely sent.
    #[error("unexpected answer from Twilio (HTTP {status}): {detail}")]
    Decode {
        /// The HTTP status of the answer.
        status: u16,
        /// What did not parse.
        detail: String,
    },
    /// The request or the configuration was rejected locally; nothing was sent.
    #[error("invalid Twilio request: {0}")]
    Invalid(String),
}

impl TwilioError {
    /// Whether the same request may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            TwilioError::Api { retryable, .. } => *retryable,
            TwilioError::Transport(_) => true,
            TwilioError::Decode { .. } | TwilioError::Invalid(_) => false,
        }
    }

    /// Whether Twilio may have accepted the message despite the error: a timeout or a cut
    /// connection after the request was sent, or an unreadable success answer. Twilio has no
    /// idempotency key for sends, so retrying such an error can deliver the SMS twice.
    pub fn may_have_been_sent(&self) -> bool {
        match self {
            TwilioError::Transport(e) => !e.is_connect(),
            TwilioError::Decode { .. } => true,
            TwilioError::Api { .. } | TwilioError::Invalid(_) => false,
        }
    }

    /// Twilio's error code, when there is one.
    pub fn code(&self) -> Option<i64> {
        match self {
            TwilioError::Api { code, .. } => *code,
            _ => None,
        }
    }

    /// How long Twilio asked to wait before retrying (`Retry-After`), when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TwilioError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The recipient opted out of this sender (replied STOP): code 21610. Record the opt-out;
    /// never retry.
    pub fn is_opted_out(&self) -> bool {
        self.code() == Some(CODE_OPTED_OUT)
    }

    /// The recipient number is invalid or cannot receive SMS (codes 21211, 21614).
    pub fn is_invalid_recipient(&self) -> bool {
        matches!(self.code(), Some(CODE_INVALID_TO | CODE_NOT_SMS_CAPABLE))
    }

    /// The credentials were refused (code 20003 or HTTP 401).
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, TwilioError::Api { status: 401, .. }) || self.code() == Some(CODE_AUTH)
    }
}

/// One outbound SMS to send.
#[derive(Debug, Clone, Copy)]
pub struct OutboundSms<'a> {
    /// The sender: a Twilio phone number in E.164, or a Messaging Service SID (`MG…`), which is
    /// then sent as `MessagingServiceSid`.
    pub from: &'a str,
    /// The recipient, in E.164.
    pub to: &'a str,
    /// The text; at most [`MAX_BODY_CHARS`] characters, not empty.
    pub body: &'a str,
    /// Where Twilio should post delivery status updates, if anywhere.
    pub status_callback: Option<&'a str>,
}

/// Twilio's answer to a successful send: the created Message resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    /// The message SID (`SM…`), the key for status callbacks.
    pub sid: String,
    /// The status at creation, normally `queued` or `accepted`.
    pub status: MessageStatus,
    /// Segments Twilio counted, when it already knows.
    pub num_segments: Option<u32>,
    /// Twilio's error code, if the message already failed.
    pub error_code: Option<i64>,
    /// The price as Twilio wrote it (a negative decimal, in `price_unit`), usually unknown at
    /// creation.
    pub price: Option<String>,
}

/// A Twilio message status, as in the REST answer and in status callbacks (`MessageStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageStatus {
    /// Accepted by a Messaging Service, not yet queued.
    Accepted,
    /// Scheduled for later.
    Scheduled,
    /// Waiting to be sent.
    Queued,
    /// Being handed to the carrier.
    Sending,
    /// Handed to the carrier.
    Sent,
    /// The carrier confirmed delivery.
    Delivered,
    /// The carrier could not deliver it.
    Undelivered,
    /// Twilio could not send it.
    Failed,
    /// Read by the recipient (channels that report it).
    Read,
    /// Cancelled before sending.
    Canceled,
    /// Inbound: being received.
    Receiving,
    /// Inbound: received.
    Received,
    /// A status this code does not know (Twilio adds some without notice).
    Other(String),
}

impl MessageStatus {
    /// Reads Twilio's lower-case status name; unknown names become [`MessageStatus::Other`].
    pub fn parse(s: &str) -> Self {
        match s {
            "accepted" => Self::Accepted,
            "scheduled" => Self::Scheduled,
            "queued" => Self::Queued,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "undelivered" => Self::Undelivered,
            "failed" => Self::Failed,
            "read" => Self::Read,
            "canceled" => Self::Canceled,
            "receiving" => Self::Receiving,
            "received" => Self::Received,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Twilio's name for the status.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Accepted => "accepted",
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Undelivered => "undelivered",
            Self::Failed => "failed",
            Self::Read => "read",
            Self::Canceled => "canceled",
            Self::Receiving => "receiving",
            Self::Received => "received",
            Self::Other(s) => s,
        }
    }

    /// Whether no further status will follow for an outbound message.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Delivered | Self::Undelivered | Self::Failed | Self::Read | Self::Canceled
        )
    }

    /// Whether the message did not reach the recipient.
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Undelivered | Self::Failed | Self::Canceled)
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Twilio's price text (`"-0.00750"`: negative for a charge, in the message's `PriceUnit`) as
/// positive millionths of that unit; `None` for text that is not a decimal amount.
pub fn price_micros(text: &str) -> Option<i64> {
    let digits = text.trim().trim_start_matches(['-', '+']);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let digit = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !digit(whole) || !digit(fraction) {
        return None;
    }
    if whole.len() > 9 {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut micros: i64 = 0;
    for (i, c) in fraction.chars().take(6).enumerate() {
        let value = i64::from(c.to_digit(10)?);
        micros += value * 10_i64.pow(5 - u32::try_from(i).ok()?);
    }
    Some(whole * 1_000_000 + micros)
}

/// A Twilio-shaped message SID, `SM` followed by 32 lower-case hex digits, for the local
/// simulator.
pub fn new_message_sid() -> String {
    format!("SM{:032x}", rand::random::<u128>())
}

/// Settings for a [`TwilioClient`]; start from [`TwilioClient::builder`].
#[derive(Debug)]
pub struct TwilioClientBuilder {
    account_sid: String,
    auth_token: SecretString,
    base_url: String,
    connect_timeout: Duration,
    timeout: Duration,
}

impl TwilioClientBuilder {
    /// Talk to another server than [`DEFAULT_BASE_URL`] (a fake in tests, a proxy). A trailing
    /// slash is ignored.
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// Time allowed to open a connection ([`DEFAULT_CONNECT_TIMEOUT`] by default).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for a whole request ([`DEFAULT_TIMEOUT`] by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the settings and builds the client.
    pub fn build(self) -> Result<TwilioClient, TwilioError> {
        if self.account_sid.is_empty()
            || !self.account_sid.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(TwilioError::Invalid(
                "the account SID must be non-empty and alphanumeric".to_owned(),
            ));
        }
        if self.auth_token.expose_secret().is_empty() {
            return Err(TwilioError::Invalid("the auth token is empty".to_owned()));
        }
        let base_url = self.base_url.trim_end_matches('/').to_owned();
        match url::Url::parse(&base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(TwilioError::Invalid(format!(
                    "the Twilio base URL {base_url:?} is not an http(s) URL"
                )));
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .user_agent(concat!("nudge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TwilioError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        let messages_url = format!(
            "{base_url}/2010-04-01/Accounts/{}/Messages.json",
            self.account_sid
        );
        Ok(TwilioClient {
            http,
            inner: Arc::new(Inner {
                base_url,
                messages_url,
                account_sid: self.account_sid,
                auth_token: self.auth_token,
            }),
        })
    }
}

/// A handle on Twilio's REST API for one account. Cheap to clone.
#[derive(Clone)]
pub struct TwilioClient {
    /// Shared connection pool, with the timeouts applied.
    http: reqwest::Client,
    /// Settings shared by every clone.
    inner: Arc<Inner>,
}

struct Inner {
    /// Without a trailing slash.
    base_url: String,
    /// The Messages endpoint, built once.
    messages_url: String,
    /// `AC…`: the basic-auth user and part of every path.
    account_sid: String,
    /// The basic-auth password; never printed.
    auth_token: SecretString,
}

impl fmt::Debug for TwilioClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioClient")
            .field("base_url", &self.inner.base_url)
            .field("account_sid", &self.inner.account_sid)
            .field("auth_token", &"[redacted]")
            .finish()
    }
}

impl TwilioClient {
    /// A client for the API at `base_url` (normally [`DEFAULT_BASE_URL`]; a `url::Url` works
    /// too) with the default timeouts.
    pub fn new(
        base_url: impl Into<String>,
        account_sid: impl Into<String>,
        auth_token: SecretString,
    ) -> Result<Self, TwilioError> {
        Self::builder(account_sid, auth_token)
            .base_url(base_url)
            .build()
    }

    /// Settings starting from the defaults (production URL, 5 s to connect, 10 s in all).
    pub fn builder(
        account_sid: impl Into<String>,
        auth_token: SecretString,
    ) -> TwilioClientBuilder {
        TwilioClientBuilder {
            account_sid: account_sid.into(),
            auth_token,
            base_url: DEFAULT_BASE_URL.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The account this client acts for.
    pub fn account_sid(&self) -> &str {
        &self.inner.account_sid
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Sends one SMS. Bodies over [`MAX_BODY_CHARS`] characters, or empty, are rejected
    /// without contacting Twilio.
    ///
    /// Twilio answering success means *queued*, not delivered: delivery arrives later on the
    /// status callback.
    #[tracing::instrument(skip_all, fields(sid = tracing::field::Empty))]
    pub async fn send_sms(&self, req: &OutboundSms<'_>) -> Result<SentSms, TwilioError> {
        let chars = req.body.chars().count();
        if chars > MAX_BODY_CHARS {
            return Err(TwilioError::Invalid(format!(
                "the body has {chars} characters; Twilio accepts at most {MAX_BODY_CHARS}"
            )));
        }
        if req.body.trim().is_empty() {
            return Err(TwilioError::Invalid("the body is empty".to_owned()));
        }
        let sender_field = if is_messaging_service_sid(req.from) {
            "MessagingServiceSid"
        } else {
            "From"
        };
        let mut form: Vec<(&str, &str)> =
            vec![("To", req.to), (sender_field, req.from), ("Body", req.body)];
        if let Some(callback) = req.status_callback {
            form.push(("StatusCallback", callback));
        }

        let response = self
            .http
            .post(&self.inner.messages_url)
            .basic_auth(
                &self.inner.account_sid,
                Some(self.inner.auth_token.expose_secret()),
            )
            .form(&form);
        let resource: MessageResource = read_answer(response).await?;
        let sent = SentSms {
            sid: resource.sid,
            status: MessageStatus::parse(&resource.status),
            num_segments: resource.num_segments,
            error_code: resource.error_code,
            price: resource.price,
        };
        tracing::Span::current().record("sid", sent.sid.as_str());
        tracing::debug!(status = %sent.status, segments = ?sent.num_segments, "Twilio accepted the message");
        Ok(sent)
    }
}

/// One message as Twilio's Messages list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedMessage {
    pub sid: String,
    pub body: String,
    pub status: MessageStatus,
    /// When Twilio created it (accepted the request); `None` when absent or unreadable.
    pub date_created: Option<chrono::DateTime<chrono::Utc>>,
}

/// The messages on one page of Twilio's Messages list.
#[derive(Deserialize)]
struct MessagePage {
    #[serde(default)]
    messages: Vec<ListedResource>,
}

#[derive(Deserialize)]
struct ListedResource {
    sid: String,
    #[serde(default, deserialize_with = "de_opt_string")]
    body: Option<String>,
    #[serde(default)]
    status: String,
    /// RFC 2822, as Twilio writes dates: `Thu, 26 Nov 2026 10:00:00 +0000`.
    #[serde(default, deserialize_with = "de_opt_string")]
    date_created: Option<String>,
}

impl TwilioClient {
    /// The most recent messages (at most `page_size`, Twilio's order: newest first) sent from
    /// `from` to `to` on or after the UTC day `sent_since`: `GET …/Messages.json?To=&From=&
    /// DateSent>=YYYY-MM-DD&PageSize=`. What a restarted sender asks to learn whether a send
    /// it never saw answered reached Twilio.
    #[tracing::instrument(skip_all)]
    pub async fn list_messages(
        &self,
        to: &str,
        from: &str,
        sent_since: chrono::NaiveDate,
        page_size: u32,
    ) -> Result<Vec<ListedMessage>, TwilioError> {
        let mut url = reqwest::Url::parse(&self.inner.messages_url)
            .map_err(|e| TwilioError::Invalid(format!("the Messages URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("To", to)
            .append_pair("From", from)
            .append_pair("DateSent>", &sent_since.format("%Y-%m-%d").to_string())
            .append_pair("PageSize", &page_size.clamp(1, 1000).to_string());
        let response = self.http.get(url).basic_auth(
            &self.inner.account_sid,
            Some(self.inner.auth_token.expose_secret()),
        );
        let page: MessagePage = read_answer(response).await?;
        Ok(page
            .messages
            .into_iter()
            .map(|m| ListedMessage {
                sid: m.sid,
                body: m.body.unwrap_or_default(),
                status: MessageStatus::parse(&m.status),
                date_created: m
                    .date_created
                    .and_then(|d| chrono::DateTime::parse_from_rfc2822(&d).ok())
                    .map(|d| d.with_timezone(&chrono::Utc)),
            })
            .collect())
    }
}

/// Sends a request and reads Twilio's JSON answer, or its error document.
async fn read_answer<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
) -> Result<T, TwilioError> {
    let response = request.send().await.map_err(TwilioError::Transport)?;
    let status = response.status();
    let retry_after = parse_retry_after(response.headers());
    let bytes = response.bytes().await.map_err(TwilioError::Transport)?;
    if !status.is_success() {
        let err = api_error(status, &bytes, retry_after);
        tracing::debug!(status = status.as_u16(), code = ?err.code(), "Twilio refused the request");
        return Err(err);
    }
    serde_json::from_slice(&bytes).map_err(|e| TwilioError::Decode {
        status: status.as_u16(),
        detail: e.to_string(),
    })
}

/// The fields Nudge reads from Twilio's Message resource.
#[derive(Deserialize)]
struct MessageResource {
    sid: String,
    #[serde(default)]
    status: String,
    #[serde(default, deserialize_with = "de_opt_u32")]
    num_segments: Option<u32>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    error_code: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_string")]
    price: Option<String>,
}

/// Twilio's error document.
#[derive(Deserialize)]
struct ErrorDocument {
    #[serde(default, deserialize_with = "de_opt_i64")]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    more_info: Option<String>,
}

/// A JSON scalar Twilio writes sometimes as a string, sometimes as a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Int(i64),
    Float(f64),
    Str(String),
}

fn de_opt_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Scalar>, D::Error> {
    Option::<Scalar>::deserialize(d)
}

fn de_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match de_opt_scalar(d)? {
        Some(Scalar::Int(n)) => Some(n),
        Some(Scalar::Str(s)) => s.trim().parse().ok(),
        Some(Scalar::Float(_)) | None => None,
    })
}

fn de_opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(de_opt_i64(d)?.and_then(|n| u32::try_from(n).ok()))
}

fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match de_opt_scalar(d)? {
        Some(Scalar::Str(s)) => Some(s),
        Some(Scalar::Int(n)) => Some(n.to_string()),
        Some(Scalar::Float(x)) => Some(x.to_string()),
        None => None,
    })
}

/// `MG` + 32 hex digits: a Messaging Service rather than a phone number or alphanumeric sender.
fn is_messaging_service_sid(from: &str) -> bool {
    from.len() == 34 && from.starts_with("MG") && from[2..].chars().all(|c| c.is_ascii_hexdigit())
}

fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

fn api_error(status: StatusCode, body: &[u8], retry_after: Option<Duration>) -> TwilioError {
    let doc = serde_json::from_slice::<ErrorDocument>(body).ok();
    let code = doc.as_ref().and_then(|d| d.code);
    let message = match doc {
        Some(ErrorDocument {
            message: Some(m),
            more_info,
            ..
        }) => match more_info {
            Some(info) if !info.is_empty() => format!("{m} ({info})"),
            _ => m,
        },
        _ => excerpt(body, status),
    };
    let retryable = status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
        || code == Some(CODE_RATE_LIMITED);
    TwilioError::Api {
        status: status.as_u16(),
        code,
        message,
        retryable,
        retry_after,
    }
}

/// A short, single-line excerpt of a body that was not Twilio's JSON (a proxy's HTML page…).
fn excerpt(body: &[u8], status: StatusCode) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(200)
        .collect();
    if text.is_empty() {
        status.canonical_reason().unwrap_or("no body").to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_read_as_positive_millionths_and_anything_else_is_refused() {
        assert_eq!(price_micros("-0.00750"), Some(7_500));
        assert_eq!(price_micros("0.0079"), Some(7_900));
        assert_eq!(price_micros("-1.5"), Some(1_500_000));
        assert_eq!(
            price_micros("-0.1234567"),
            Some(123_456),
            "beyond a millionth is cut"
        );
        assert_eq!(price_micros("2"), Some(2_000_000));
        for bad in ["", "-", ".", "abc", "1,5", "1.2.3", "1e3", "99999999999"] {
            assert_eq!(price_micros(bad), None, "{bad:?}");
        }
    }
    use wiremock::matchers::{basic_auth, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    const TOKEN: &str = "super-secret-token";

    fn messages_path() -> String {
        format!("/2010-04-01/Accounts/{SID}/Messages.json")
    }

    fn client(server: &MockServer) -> TwilioClient {
        TwilioClient::builder(SID, SecretString::from(TOKEN))
            .base_url(format!("{}/", server.uri()))
            .build()
            .expect("client")
    }

    #[tokio::test]
    async fn the_messages_list_is_asked_by_number_pair_and_day_and_read_in_twilios_shape() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!("/2010-04-01/Accounts/{SID}/Messages.json")))
            .and(basic_auth(SID, TOKEN))
            .and(wiremock::matchers::query_param("To", "+15550000000"))
            .and(wiremock::matchers::query_param("From", "+15559990000"))
            .and(wiremock::matchers::query_param("DateSent>", "2026-03-11"))
            .and(wiremock::matchers::query_param("PageSize", "50"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "messages": [{
                    "sid": "SM0123", "body": "Reminder: stretch", "status": "delivered",
                    "date_created": "Wed, 11 Mar 2026 08:00:01 +0000", "to": "+15550000000"
                }, {
                    "sid": "SM0124", "body": null, "status": "failed", "date_created": "soon"
                }],
                "next_page_uri": null
            })))
            .expect(1)
            .mount(&server)
            .await;
        let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 11).expect("a date");
        let listed = client(&server)
            .list_messages("+15550000000", "+15559990000", day, 50)
            .await
            .expect("listed");
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].sid, "SM0123");
        assert_eq!(listed[0].body, "Reminder: stretch");
        assert_eq!(listed[0].status, MessageStatus::Delivered);
        assert_eq!(
            listed[0].date_created.map(|d| d.to_rfc3339()).as_deref(),
            Some("2026-03-11T08:00:01+00:00")
        );
        assert_eq!(
            (listed[1].body.as_str(), listed[1].date_created),
            ("", None)
        );
    }

    fn sms<'a>(body: &'a str, callback: Option<&'a str>) -> OutboundSms<'a> {
        OutboundSms {
            from: "+15550001111",
            to: "+15550002222",
            body,
            status_callback: callback,
        }
    }

    async fn only_form(server: &MockServer) -> Vec<(String, String)> {
        let requests = server.received_requests().await.expect("recording on");
        assert_eq!(requests.len(), 1);
        serde_urlencoded::from_bytes(&requests[0].body).expect("form body")
    }

    fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[tokio::test]
    async fn send_posts_the_form_with_basic_auth_to_the_messages_endpoint() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(messages_path()))
            .and(basic_auth(SID, TOKEN))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({
                "sid": "SM00000000000000000000000000000001",
                "status": "queued",
                "num_segments": "2",
                "error_code": null,
                "price": null,
                "extra_field": {"ignored": true}
            })))
            .expect(1)
            .mount(&server)
            .await;

        let body = "Rappel : boire de l'eau & respirer 🌿";
        let sent = client(&server)
            .send_sms(&sms(body, Some("https://nudge.example/twilio/status")))
            .await
            .expect("sent");
        assert_eq!(sent.sid, "SM00000000000000000000000000000001");
        assert_eq!(sent.status, MessageStatus::Queued);
        assert_eq!(sent.num_segments, Some(2));
        assert_eq!(sent.error_code, None);
        assert_eq!(sent.price, None);

        let form = only_form(&server).await;
        assert_eq!(field(&form, "To"), Some("+15550002222"));
        assert_eq!(field(&form, "From"), Some("+15550001111"));
        assert_eq!(field(&form, "Body"), Some(body));
        assert_eq!(
            field(&form, "StatusCallback"),
            Some("https://nudge.example/twilio/status")
        );
    }

    #[tokio::test]
    async fn no_status_callback_field_is_sent_when_none_is_given() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({
                "sid": "SM1", "status": "accepted", "num_segments": 1, "price": "-0.00830"
            })))
            .mount(&server)
            .await;
        let sent = client(&server)
            .send_sms(&sms("hi", None))
            .await
            .expect("sent");
        assert_eq!(sent.status, MessageStatus::Accepted);
        assert_eq!(sent.num_segments, Some(1));
        assert_eq!(sent.price.as_deref(), Some("-0.00830"));
        let form = only_form(&server).await;
        assert_eq!(field(&form, "StatusCallback"), None);
    }

    #[tokio::test]
    async fn a_messaging_service_sender_is_sent_as_messaging_service_sid() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(201).set_body_json(serde_json::json!({"sid": "SM1"})),
            )
            .mount(&server)
            .await;
        let mut req = sms("hi", None);
        req.from = "MG0123456789abcdef0123456789abcdef";
        client(&server).send_sms(&req).await.expect("sent");
        let form = only_form(&server).await;
        assert_eq!(field(&form, "From"), None);
        assert_eq!(
            field(&form, "MessagingServiceSid"),
            Some("MG0123456789abcdef0123456789abcdef")
        );
    }

    #[tokio::test]
    async fn an_invalid_recipient_is_a_non_retryable_api_error() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "code": 21211,
                "message": "The 'To' number +1555 is not a valid phone number.",
                "more_info": "https://www.twilio.com/docs/errors/21211",
                "status": 400
            })))
            .mount(&server)
            .await;
        let err = client(&server)
            .send_sms(&sms("hi", None))
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, TwilioError::Api { status: 400, code: Some(21211), retryable: false, message, .. } if message.contains("not a valid phone number")),
            "{err:?}"
        );
        assert!(!err.is_retryable());
        assert!(err.is_invalid_recipient());
        assert!(!err.may_have_been_sent());
        assert!(
            !err.to_string().contains("+1555"),
            "Display must not leak numbers"
        );
    }

    #[tokio::test]
    async fn an_opted_out_recipient_is_recognised() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400
            })))
            .mount(&server)
            .await;
        let err = client(&server)
            .send_sms(&sms("hi", None))
            .await
            .expect_err("refused");
        assert!(err.is_opted_out());
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn a_server_error_without_json_is_retryable() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500).set_body_string("<html>oops</html>"))
            .mount(&server)
            .await;
        let err = client(&server)
            .send_sms(&sms("hi", None))
            .await
            .expect_err("failed");
        assert!(
            matches!(&err, TwilioError::Api { status: 500, code: None, retryable: true, message, .. } if message == "<html>oops</html>"),
            "{err:?}"
        );
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn rate_limiting_is_retryable_and_reports_retry_after() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("Retry-After", "3")
                    .set_body_json(serde_json::json!({
                        "code": 20429, "message": "Too Many Requests", "status": 429
                    })),
            )
            .mount(&server)
            .await;
        let err = client(&server)
            .send_sms(&sms("hi", None))
            .await
            .expect_err("limited");
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(err.code(), Some(CODE_RATE_LIMITED));
    }

    #[tokio::test]
    async fn bad_credentials_are_an_auth_failure() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
                "code": 20003, "message": "Authenticate", "status": 401
            })))
            .mount(&server)
            .await;
        let err = client(&server)
            .send_sms(&sms("hi", None))
            .await
            .expect_err("refused");
        assert!(err.is_auth_failure());
        assert!(!err.is_retryable());
        assert!(!err.to_string().contains(TOKEN));
        assert_eq!(err.to_string(), "Twilio API error: HTTP 401, code 20003");
    }

    #[tokio::test]
    async fn a_slow_answer_times_out_as_a_retryable_transport_error() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_json(serde_json::json!({"sid": "SM1"}))
                    .set_delay(Duration::from_secs(5)),
            )
            .mount(&server)
            .await;
        let client = TwilioClient::builder(SID, SecretString::from(TOKEN))
            .base_url(server.uri())
            .connect_timeout(Duration::from_millis(200))
            .timeout(Duration::from_millis(200))
            .build()
            .expect("client");
        let err = client
            .send_sms(&sms("hi", None))
            .await
            .expect_err("timed out");
        assert!(
            matches!(&err, TwilioError::Transport(e) if e.is_timeout()),
            "{err:?}"
        );
        assert!(err.is_retryable());
        assert!(err.may_have_been_sent());
    }

    #[tokio::test]
    async fn a_refused_connection_is_retryable_and_certainly_not_sent() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let client = TwilioClient::builder(SID, SecretString::from(TOKEN))
            .base_url(format!("http://{addr}"))
            .build()
            .expect("client");
        let err = client
            .send_sms(&sms("hi", None))
            .await
            .expect_err("refused");
        assert!(matches!(err, TwilioError::Transport(_)), "{err:?}");
        assert!(err.is_retryable());
        assert!(!err.may_have_been_sent());
    }

    #[tokio::test]
    async fn an_unreadable_success_is_a_decode_error() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(201).set_body_string("not json"))
            .mount(&server)
            .await;
        let err = client(&server)
            .send_sms(&sms("hi", None))
            .await
            .expect_err("undecodable");
        assert!(
            matches!(err, TwilioError::Decode { status: 201, .. }),
            "{err:?}"
        );
        assert!(!err.is_retryable());
        assert!(err.may_have_been_sent());
    }

    #[tokio::test]
    async fn a_body_over_1600_characters_is_rejected_without_calling_twilio() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(201))
            .expect(0)
            .mount(&server)
            .await;
        let body = "é".repeat(MAX_BODY_CHARS + 1);
        let err = client(&server)
            .send_sms(&sms(&body, None))
            .await
            .expect_err("too long");
        assert!(matches!(err, TwilioError::Invalid(_)), "{err:?}");
        let err = client(&server)
            .send_sms(&sms("  ", None))
            .await
            .expect_err("empty");
        assert!(matches!(err, TwilioError::Invalid(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_body_of_exactly_1600_characters_is_sent() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(201).set_body_json(serde_json::json!({"sid": "SM1"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let body = "é".repeat(MAX_BODY_CHARS);
        client(&server)
            .send_sms(&sms(&body, None))
            .await
            .expect("sent");
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let client =
            TwilioClient::new(DEFAULT_BASE_URL, SID, SecretString::from(TOKEN)).expect("client");
        let shown = format!("{client:?}");
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(shown.contains("[redacted]"));
        assert!(shown.contains(SID));
        let builder = TwilioClient::builder(SID, SecretString::from(TOKEN));
        assert!(!format!("{builder:?}").contains(TOKEN));
    }

    #[test]
    fn the_builder_rejects_bad_settings() {
        let token = || SecretString::from(TOKEN);
        assert!(TwilioClient::new(DEFAULT_BASE_URL, "", token()).is_err());
        assert!(TwilioClient::new(DEFAULT_BASE_URL, "AC/../x", token()).is_err());
        assert!(TwilioClient::new(DEFAULT_BASE_URL, SID, SecretString::from("")).is_err());
        assert!(
            TwilioClient::builder(SID, token())
                .base_url("ftp://example.com")
                .build()
                .is_err()
        );
        assert!(
            TwilioClient::builder(SID, token())
                .base_url("not a url")
                .build()
                .is_err()
        );
    }

    #[test]
    fn the_base_url_defaults_to_twilio_and_loses_its_trailing_slash() {
        let c =
            TwilioClient::new(DEFAULT_BASE_URL, SID, SecretString::from(TOKEN)).expect("client");
        assert_eq!(c.base_url(), "https://api.twilio.com");
        assert_eq!(c.account_sid(), SID);
        let c = TwilioClient::builder(SID, SecretString::from(TOKEN))
            .base_url("http://127.0.0.1:9999/")
            .build()
            .expect("client");
        assert_eq!(c.base_url(), "http://127.0.0.1:9999");
    }

    #[test]
    fn new_message_sids_look_like_twilio_sids_and_differ() {
        let a = new_message_sid();
        let b = new_message_sid();
        assert_eq!(a.len(), 34);
        assert!(a.starts_with("SM"));
        assert!(
            a[2..]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn message_statuses_round_trip_and_classify() {
        for s in [
            "accepted",
            "scheduled",
            "queued",
            "sending",
            "sent",
            "delivered",
            "undelivered",
            "failed",
            "read",
            "canceled",
            "receiving",
            "received",
            "partially_delivered",
        ] {
            assert_eq!(MessageStatus::parse(s).as_str(), s);
        }
        assert!(MessageStatus::Delivered.is_final());
        assert!(!MessageStatus::Sent.is_final());
        assert!(MessageStatus::Undelivered.is_failure());
        assert!(!MessageStatus::Delivered.is_failure());
        assert_eq!(
            MessageStatus::parse("new_one"),
            MessageStatus::Other("new_one".into())
        );
    }
}
