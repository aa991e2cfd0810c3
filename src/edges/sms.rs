//! `POST /sms/inbound`: Twilio's incoming-message webhook.
//!
//! In order: cap and parse the form (strict UTF-8) → check `X-Twilio-Signature` over the
//! public URL and every parameter (no setting turns this off) → find the user by `To` (the
//! owners of active users' numbers are remembered, see [`routes`](crate::actors::routes)) →
//! refuse a `From` that is not the user's own phone (a fixed answer, nothing of the user's
//! touched) → run the turn in the user's actor → answer TwiML. When the turn takes longer
//! than the reply window, answer an empty `<Response/>` and let the Notifier send the reply
//! through the REST API when it is ready (so too when Twilio hangs up first).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use percent_encoding::percent_decode;
use secrecy::ExposeSecret;
use tokio_util::task::TaskTracker;

use super::{ApiError, AppState};
use crate::actors::routes::Route;
use crate::actors::user::{InboundTurn, TurnOutcome};
use crate::actors::{ActorSystem, TurnError};
use crate::sms::{signature, twilio, twiml};
use crate::store::{Channel, StatusReport, StoreError};
use crate::telemetry::mask_phone;

/// Largest webhook body accepted. Twilio's are a few KB (1,600 characters of text at most,
/// plus media URLs and location fields).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest message text accepted, in characters (Twilio's own limit).
pub const MAX_TEXT_CHARS: usize = 1_600;
/// How long a turn may run in total before it is abandoned.
const TURN_DEADLINE: Duration = Duration::from_secs(60);
/// Answered when someone texts a user's dedicated number from another phone.
const NOT_YOUR_NUMBER: &str = "This Nudge number belongs to someone else, so nothing was shared or saved. Text your own Nudge number.";
/// Answered when the user's assistant cannot run the turn.
pub const TRY_AGAIN: &str = "Sorry, I hit a snag with that one. Please send it again in a minute.";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sms/inbound", post(inbound))
        .route("/sms/status", post(status))
}

/// A form's fields in order, each decoded; borrowed from the body when there was nothing to
/// decode (most of Twilio's fields: SIDs, numbers, counts).
type Form<'b> = Vec<(Cow<'b, str>, Cow<'b, str>)>;

/// The body of a form POST, at most [`MAX_BODY_BYTES`].
async fn form_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    check_content_type(headers)?;
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        })
}

/// The fields of a Twilio request's form `bytes`, when its `X-Twilio-Signature` checks out;
/// 403 otherwise.
fn signed_form<'b>(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    bytes: &'b [u8],
) -> Result<Form<'b>, ApiError> {
    let params = parse_form(bytes)?;
    let url = signed_url(state, uri);
    let provided = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if provided.is_empty()
        || !signature::verify(
            state.twilio_auth_token.expose_secret(),
            &url,
            &params,
            provided,
        )
    {
        tracing::warn!(
            missing = provided.is_empty(),
            "webhook signature check failed"
        );
        return Err(ApiError::Forbidden("invalid or missing X-Twilio-Signature"));
    }
    Ok(params)
}

/// A `NumSegments` field, when there is one.
fn segments_field(value: Option<&str>) -> Result<Option<u32>, ApiError> {
    value
        .map(|text| {
            text.parse::<u32>()
                .map_err(|_| ApiError::bad_request("bad_field", "NumSegments is not a number"))
        })
        .transpose()
}

/// Twilio's status callback for an outbound SMS: records its delivery state on the delivery
/// and on the user's usage row for that SID (segments and price when it carries them). Answers 204,
/// also for a SID Nudge does not know (Twilio would only retry it).
async fn status(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = form_body(&headers, body).await?;
    let params = signed_form(&state, &uri, &headers, &bytes)?;
    let get = |name: &str| field(&params, name).filter(|v| !v.is_empty());
    let sid = get("MessageSid")
        .or_else(|| get("SmsSid"))
        .filter(|v| v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric()))
        .ok_or_else(|| ApiError::bad_request("missing_field", "no valid MessageSid field"))?;
    let status = get("MessageStatus")
        .or_else(|| get("SmsStatus"))
        .filter(|v| v.len() <= 32 && v.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .ok_or_else(|| ApiError::bad_request("missing_field", "no valid MessageStatus field"))?;
    let error_code = get("ErrorCode").filter(|v| v.len() <= 16);
    let segments = segments_field(get("NumSegments"))?;
    let price_micros = get("Price")
        .map(|text| {
            twilio::price_micros(text)
                .ok_or_else(|| ApiError::bad_request("bad_field", "Price is not a decimal amount"))
        })
        .transpose()?;
    let price_unit =
        get("PriceUnit").filter(|v| v.len() <= 8 && v.chars().all(|c| c.is_ascii_alphabetic()));
    let report = StatusReport {
        sid,
        status,
        error_code,
        segments,
        price_micros,
        price_unit: price_micros.and(price_unit),
    };
    match state.store.update_sms_delivery(&report).await? {
        Some(user) => tracing::info!(user = %user, %status, "SMS delivery status"),
        None => tracing::info!(%status, "status callback for an SMS Nudge did not send"),
    }
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

/// The fields of the webhook Nudge uses; everything else is signed but ignored.
struct Webhook {
    message_sid: String,
    from: String,
    to: String,
    body: String,
    num_segments: Option<u32>,
}

async fn inbound(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = form_body(&headers, body).await?;
    let hook = webhook_fields(&signed_form(&state, &uri, &headers, &bytes)?)?;
    let Some((route, remembered)) = owner(&state, &hook.to).await? else {
        tracing::info!(to = %mask_phone(&hook.to), "webhook for a number nobody has");
        return Err(ApiError::NotFound("no user has this number"));
    };
    if route.phone.as_deref() != Some(hook.from.as_str()) {
        tracing::warn!(
            user = %route.user_id,
            from = %mask_phone(&hook.from),
            "text to a user's number from another phone; refused"
        );
        return Ok(twiml_response(twiml::message(NOT_YOUR_NUMBER)));
    }
    let user_id = route.user_id;
    if !remembered {
        // The turn activates the user's actor; the Directory forgets this when it passivates it.
        state.actors.routes().remember(&hook.to, route);
    }

    let security = &state.security;
    security
        .limit(&format!("sms:{user_id}"), security.limits.sms_per_min)
        .await?;

    let turn = InboundTurn {
        channel: Channel::Sms,
        body: hook.body,
        provider_message_id: Some(hook.message_sid),
        segments: hook.num_segments,
        received_at: Utc::now(),
    };
    let outcome = run_within_window(&state, user_id, turn).await;
    Ok(match outcome {
        Some(Ok(TurnOutcome {
            reply: Some(text), ..
        })) => twiml_response(twiml::message(&text)),
        Some(Ok(TurnOutcome { reply: None, .. })) | None => twiml_response(twiml::empty()),
        Some(Err(error)) => {
            tracing::error!(user = %user_id, %error, "turn failed");
            twiml_response(twiml::message(TRY_AGAIN))
        }
    })
}

/// The owner of a dedicated number, and whether it was remembered (their actor is active)
/// rather than read from the database just now. `None` when nobody has it.
async fn owner(state: &AppState, number: &str) -> Result<Option<(Route, bool)>, ApiError> {
    if let Some(route) = state.actors.routes().get(number) {
        return Ok(Some((route, true)));
    }
    match state.store.user_by_number(number).await {
        Ok(user) => Ok(Some((
            Route {
                user_id: user.id,
                phone: user.phone,
            },
            false,
        ))),
        Err(StoreError::NotFound) => Ok(None),
        Err(error) => Err(ApiError::Internal(error.to_string())),
    }
}

/// Runs the turn; returns its outcome if it finished within the reply window, else `None`
/// after arranging for the reply to go out through the Notifier.
async fn run_within_window(
    state: &AppState,
    user_id: crate::store::UserId,
    turn: InboundTurn,
) -> Option<Result<TurnOutcome, TurnError>> {
    let actors = state.actors.clone();
    let mut awaited = Awaited {
        turn: Some(Box::pin(async move {
            actors.turn(user_id, turn, TURN_DEADLINE).await
        })),
        actors: state.actors.clone(),
        tasks: state.tasks.clone(),
        user_id,
    };
    // Timeout polls the turn before its clock: an outcome ready in time is answered here;
    // past the window, `awaited` is dropped and the turn finishes on its own task. Never both.
    tokio::time::timeout(state.reply_window, &mut awaited)
        .await
        .ok()
}

type TurnFuture = Pin<Box<dyn Future<Output = Result<TurnOutcome, TurnError>> + Send>>;

/// A turn the webhook waits for, in the webhook's own task. Dropped unfinished (the reply
/// window passed, or Twilio hung up), it finishes on a task of its own and its reply goes out
/// through the REST API.
struct Awaited {
    /// `None` once finished.
    turn: Option<TurnFuture>,
    actors: ActorSystem,
    tasks: TaskTracker,
    user_id: crate::store::UserId,
}

impl Future for Awaited {
    type Output = Result<TurnOutcome, TurnError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(turn) = self.turn.as_mut() else {
            return Poll::Ready(Err(TurnError::Interrupted));
        };
        let outcome = std::task::ready!(turn.as_mut().poll(cx));
        self.turn = None;
        Poll::Ready(outcome)
    }
}

impl Drop for Awaited {
    fn drop(&mut self) {
        let Some(turn) = self.turn.take() else {
            return;
        };
        // No runtime: the node is stopping, and the actor finishes the turn without a reply.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (actors, user_id) = (self.actors.clone(), self.user_id);
        let late = async move {
            match turn.await {
                Ok(TurnOutcome {
                    reply: Some(text),
                    reply_id,
                    ..
                }) => actors.send_sms(user_id, text, reply_id),
                Ok(_) => {}
                Err(error) => tracing::error!(user = %user_id, %error, "late turn failed"),
            }
        };
        self.tasks.spawn_on(late, &runtime);
    }
}

fn twiml_response(xml: String) -> Response {
    ([(header::CONTENT_TYPE, twiml::CONTENT_TYPE)], xml).into_response()
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if form {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType {
            expected: "application/x-www-form-urlencoded",
        })
    }
}

/// The URL Twilio signed: the configured public base, then the path and query as received.
fn signed_url(state: &AppState, uri: &Uri) -> String {
    let base = state.public_base.as_str().trim_end_matches('/');
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    format!("{base}{path_and_query}")
}

/// Parses `application/x-www-form-urlencoded` strictly: invalid percent-escapes are kept as
/// text (as browsers do), but bytes that are not UTF-8 after decoding are a 400.
fn parse_form(bytes: &[u8]) -> Result<Form<'_>, ApiError> {
    let mut params = Vec::new();
    for pair in bytes.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let mut parts = pair.splitn(2, |b| *b == b'=');
        let name = decode_component(parts.next().unwrap_or_default())?;
        let value = decode_component(parts.next().unwrap_or_default())?;
        params.push((name, value));
    }
    if params.is_empty() {
        return Err(ApiError::bad_request("malformed_form", "the form is empty"));
    }
    Ok(params)
}

fn decode_component(raw: &[u8]) -> Result<Cow<'_, str>, ApiError> {
    let not_utf8 = || ApiError::bad_request("bad_encoding", "form fields must be UTF-8");
    if !raw.iter().any(|b| matches!(b, b'+' | b'%')) {
        return std::str::from_utf8(raw)
            .map(Cow::Borrowed)
            .map_err(|_| not_utf8());
    }
    // `+` is a space; each run between them is percent-decoded into the one buffer.
    let mut decoded = Vec::with_capacity(raw.len());
    for (i, run) in raw.split(|b| *b == b'+').enumerate() {
        if i > 0 {
            decoded.push(b' ');
        }
        decoded.extend(percent_decode(run));
    }
    String::from_utf8(decoded)
        .map(Cow::Owned)
        .map_err(|_| not_utf8())
}

/// The value of the form's first field called `name`.
fn field<'f>(params: &'f [(Cow<'_, str>, Cow<'_, str>)], name: &str) -> Option<&'f str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_ref())
}

fn webhook_fields(params: &[(Cow<'_, str>, Cow<'_, str>)]) -> Result<Webhook, ApiError> {
    let get = |name: &str| field(params, name);
    let require = |name: &'static str| {
        get(name)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::bad_request("missing_field", format!("the form has no {name} field"))
            })
    };
    let message_sid = get("MessageSid")
        .or_else(|| get("SmsSid"))
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::bad_request("missing_field", "the form has no MessageSid field")
        })?;
    if message_sid.len() > 64 || !message_sid.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::bad_request(
            "bad_field",
            "MessageSid is not a Twilio SID",
        ));
    }
    let from = require("From")?;
    let to = require("To")?;
    let body = get("Body").unwrap_or_default().to_owned();
    if body.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::bad_request(
            "body_too_long",
            format!("Body is longer than {MAX_TEXT_CHARS} characters"),
        ));
    }
    let num_segments = segments_field(get("NumSegments"))?;
    Ok(Webhook {
        message_sid,
        from,
        to,
        body,
        num_segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_and_percent_escapes() {
        let params = parse_form(b"Body=add+milk%2C+eggs&To=%2B15550001").unwrap();
        assert_eq!(params[0], ("Body".into(), "add milk, eggs".into()));
        assert_eq!(params[1], ("To".into(), "+15550001".into()));
        let edges = parse_form(b"A=+&B=%2B+%&C=++a%20b+&D=%41%e2%82%ac+").unwrap();
        let values: Vec<&str> = edges.iter().map(|(_, v)| v.as_ref()).collect();
        assert_eq!(values, [" ", "+ %", "  a b ", "A€ "]);
    }

    #[test]
    fn forms_with_bytes_that_are_not_utf8_are_refused() {
        // Escaped, and raw (a field with nothing to decode takes the short way).
        for form in [&b"Body=%FF%FE"[..], &b"Body=\xff\xfe&To=x"[..]] {
            let err = parse_form(&Bytes::copy_from_slice(form)).unwrap_err();
            assert!(matches!(
                err,
                ApiError::BadRequest {
                    code: "bad_encoding",
                    ..
                }
            ));
        }
        let plain = parse_form(b"MessageSid=SM0123&NumSegments=1").unwrap();
        assert_eq!(plain[0], ("MessageSid".into(), "SM0123".into()));
        assert_eq!(plain[1], ("NumSegments".into(), "1".into()));
        // Fields with nothing to decode are not copied.
        assert!(
            plain
                .iter()
                .all(|(k, v)| matches!((k, v), (Cow::Borrowed(_), Cow::Borrowed(_))))
        );
    }

    #[test]
    fn an_empty_form_is_refused() {
        assert!(parse_form(b"").is_err());
        assert!(parse_form(b"&&").is_err());
    }

    #[test]
    fn random_and_hostile_forms_never_panic() {
        // xorshift64*: deterministic, so a failure reproduces.
        let mut state: u64 = 0x1234_5678_9ABC_DEF1;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let alphabet = b"=&%+aZ09\xff\x00;";
        for _ in 0..5_000 {
            let len = (next() % 200) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 3 == 0 {
                        (r >> 8) as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            if let Ok(params) = parse_form(&Bytes::from(bytes)) {
                let _ = webhook_fields(&params);
            }
        }
        for hostile in [
            "Body=%",
            "Body=%F",
            "Body=%ZZ",
            "=&=&=",
            "MessageSid=SM1&From=&To=",
            "NumSegments=99999999999999999999&MessageSid=SM1&From=a&To=b",
        ] {
            if let Ok(params) = parse_form(&Bytes::from(hostile)) {
                let _ = webhook_fields(&params);
            }
        }
    }

    #[test]
    fn webhook_fields_must_be_present_and_sane() {
        let base = |extra: &[(&str, &str)]| -> Form<'static> {
            let mut v: Form<'static> = vec![
                ("MessageSid".into(), "SM0123".into()),
                ("From".into(), "+15550001".into()),
                ("To".into(), "+15550002".into()),
                ("Body".into(), "hi".into()),
            ];
            for (k, val) in extra {
                v.retain(|(name, _)| name != k);
                v.push((Cow::Owned((*k).to_owned()), Cow::Owned((*val).to_owned())));
            }
            v
        };
        assert!(webhook_fields(&base(&[])).is_ok());
        assert!(webhook_fields(&base(&[("From", "")])).is_err());
        assert!(webhook_fields(&base(&[("MessageSid", "SM<script>")])).is_err());
        assert!(webhook_fields(&base(&[("NumSegments", "lots")])).is_err());
        let long = "a".repeat(MAX_TEXT_CHARS + 1);
        assert!(webhook_fields(&base(&[("Body", long.as_str())])).is_err());
    }
}
