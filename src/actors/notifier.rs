//! `Notifier`: sends messages to a user outside of a webhook's answer — today, SMS through
//! Twilio's REST API for replies that missed the webhook's reply window.
//!
//! Each send runs in its own task (a slow Twilio never blocks the notifier), checks the
//! user's opt-out first, and retries retryable failures with exponential backoff. Delivery is
//! at-least-once: a timeout after Twilio accepted the request is retried too, because for
//! someone relying on Nudge a lost reply costs more than a repeated one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::RactorMessage;
use tokio_util::task::TaskTracker;

use crate::llm::circuit::{Admission, CircuitBreaker, CircuitPolicy, CircuitState, Outcome};
use crate::sms::segments;
use crate::sms::twilio::{OutboundSms, TwilioClient, TwilioError};
use crate::store::{Direction, NewSmsUsage, SentUsage, Store, UserId};
use crate::telemetry::mask_phone;

/// Attempts per SMS, the first included.
const SEND_ATTEMPTS: u32 = 4;
/// First retry delay; doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// Messages of the [`Notifier`].
#[derive(RactorMessage)]
pub enum NotifierMsg {
    /// Send `body` to the user by SMS, unless they opted out. `message_id` is the stored reply
    /// it carries (its usage row then takes the SID Twilio gives it).
    SendSms {
        user_id: UserId,
        body: String,
        message_id: Option<i64>,
    },
    /// Send a verification code (`body`) from `from` to a phone not yet linked to anyone.
    /// Never logged: the body holds the code.
    SendCode {
        to: String,
        from: String,
        body: String,
    },
}

/// What the notifier needs; cloned into each restart.
#[derive(Clone)]
pub struct NotifierArgs {
    pub store: Store,
    /// `None` when no Twilio account is configured: replies then stay in the store only.
    pub twilio: Option<TwilioClient>,
    /// Where Twilio posts delivery status, when the deployment has a public URL.
    pub status_callback: Option<String>,
    /// Tracks in-flight sends so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Fails sends fast while Twilio keeps failing, shared by every send.
    pub circuit: SmsCircuit,
}

/// The circuit breaker in front of Twilio's REST API ([`CircuitBreaker`], the one the model
/// providers use): 5xx, 429 and transport failures count against it; a refused request
/// (4xx) says nothing about Twilio's health.
#[derive(Clone)]
pub struct SmsCircuit(Arc<Mutex<CircuitBreaker>>);

impl Default for SmsCircuit {
    fn default() -> Self {
        Self::new(CircuitPolicy::default())
    }
}

impl SmsCircuit {
    pub fn new(policy: CircuitPolicy) -> Self {
        Self(Arc::new(Mutex::new(CircuitBreaker::new(policy))))
    }

    /// Where the circuit stands now.
    pub fn state(&self) -> CircuitState {
        self.0
            .lock()
            .map(|c| c.state(Instant::now()))
            .unwrap_or(CircuitState::Closed)
    }

    fn admit(&self) -> Admission {
        self.0
            .lock()
            .map(|mut c| c.admit(Instant::now()))
            .unwrap_or(Admission::Call)
    }

    fn record(&self, outcome: Outcome) {
        if let Ok(mut c) = self.0.lock() {
            c.record(Instant::now(), outcome);
        }
    }
}

/// Why an SMS was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Twilio(#[from] TwilioError),
    /// Twilio failed too often lately; not tried.
    #[error("Twilio's circuit is open; retry in {0:?}")]
    CircuitOpen(Duration),
}

/// The actor; its state is its [`NotifierArgs`].
pub struct Notifier;

impl Actor for Notifier {
    type Msg = NotifierMsg;
    type State = NotifierArgs;
    type Arguments = NotifierArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: NotifierArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            NotifierMsg::SendSms {
                user_id,
                body,
                message_id,
            } => {
                let args = state.clone();
                state.tasks.spawn(async move {
                    send_to_user(&args, user_id, &body, message_id).await;
                });
            }
            NotifierMsg::SendCode { to, from, body } => {
                let args = state.clone();
                state.tasks.spawn(async move {
                    send_code(&args, &to, &from, &body).await;
                });
            }
        }
        Ok(())
    }
}

/// What became of one SMS to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsOutcome {
    /// Twilio accepted it.
    Sent,
    /// The user cannot be reached by SMS: opted out, no phone or number, or no Twilio account.
    Unreachable,
    /// Sending failed after the retries; trying later may work.
    Failed,
}

/// Sends `body` to the user by SMS from their dedicated number unless they opted out,
/// retrying retryable failures; says what became of it. What Twilio accepted is recorded with
/// its usage row keyed by the SID: `message_id`'s own row (a stored reply), else a new one.
pub async fn send_to_user(
    args: &NotifierArgs,
    user_id: UserId,
    body: &str,
    message_id: Option<i64>,
) -> SmsOutcome {
    let Some(twilio) = &args.twilio else {
        tracing::warn!(user = %user_id, "no Twilio account configured; message kept in the store only");
        return SmsOutcome::Unreachable;
    };
    let user = match args.store.user(user_id).await {
        Ok(user) => user,
        Err(error) => {
            tracing::error!(user = %user_id, %error, "cannot load user to send SMS");
            return SmsOutcome::Failed;
        }
    };
    let (Some(phone), Some(number)) = (user.phone.as_deref(), user.number.as_deref()) else {
        tracing::warn!(user = %user_id, "user has no phone or no dedicated number; not sending");
        return SmsOutcome::Unreachable;
    };
    if user.sms_opted_out {
        tracing::info!(user = %user_id, "user opted out of SMS; not sending");
        return SmsOutcome::Unreachable;
    }
    let request = OutboundSms {
        from: number,
        to: phone,
        body,
        status_callback: args.status_callback.as_deref(),
    };
    match deliver(twilio, &args.circuit, &request).await {
        Ok(sent) => {
            tracing::info!(user = %user_id, sid = %sent.sid, "SMS sent through Twilio");
            let shape = segments::analyze(body);
            let usage = SentUsage {
                message_id,
                usage: NewSmsUsage {
                    direction: Direction::Outbound,
                    segments: shape.segments,
                    encoding: shape.encoding,
                    estimated_cost_micros: segments::estimated_cost_micros(shape.segments),
                },
            };
            if let Err(error) = args
                .store
                .record_sms_sent(
                    user_id,
                    &sent.sid,
                    sent.status.as_str(),
                    sent.num_segments,
                    &usage,
                )
                .await
            {
                tracing::error!(user = %user_id, %error, "cannot record the sent SMS");
            }
            SmsOutcome::Sent
        }
        Err(SendError::Twilio(error)) if error.is_opted_out() => {
            tracing::info!(user = %user_id, to = %mask_phone(phone), "Twilio reports the recipient opted out");
            if let Err(error) = args.store.set_sms_opt_out(user_id, true).await {
                tracing::error!(user = %user_id, %error, "cannot record opt-out");
            }
            SmsOutcome::Unreachable
        }
        Err(error) => {
            tracing::error!(user = %user_id, %error, "SMS send failed; giving up");
            SmsOutcome::Failed
        }
    }
}

/// Sends one SMS, retrying retryable failures with exponential backoff (or Twilio's
/// `Retry-After`), [`SEND_ATTEMPTS`] attempts in all; the last error otherwise.
async fn deliver(
    twilio: &TwilioClient,
    circuit: &SmsCircuit,
    request: &OutboundSms<'_>,
) -> Result<crate::sms::twilio::SentSms, SendError> {
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        if let Admission::Rejected { retry_in } = circuit.admit() {
            return Err(SendError::CircuitOpen(retry_in));
        }
        let result = twilio.send_sms(request).await;
        circuit.record(match &result {
            Ok(_) => Outcome::Success,
            Err(error) if error.is_retryable() => Outcome::Failure,
            Err(_) => Outcome::Neutral,
        });
        match result {
            Err(error) if error.is_retryable() && attempt < SEND_ATTEMPTS => {
                let wait = retry_wait(&error, backoff);
                tracing::warn!(to = %mask_phone(request.to), %error, attempt, ?wait, "SMS send failed; retrying");
                tokio::time::sleep(wait).await;
                backoff *= 2;
                attempt += 1;
            }
            outcome => return outcome.map_err(SendError::from),
        }
    }
}

/// Sends a verification code, retrying like replies do. Codes expire in minutes, so a send
/// that keeps failing is given up quickly; the person can ask for another code.
async fn send_code(args: &NotifierArgs, to: &str, from: &str, body: &str) {
    let Some(twilio) = &args.twilio else {
        tracing::warn!(to = %mask_phone(to), "no Twilio account configured; verification code not sent");
        return;
    };
    let request = OutboundSms {
        from,
        to,
        body,
        status_callback: args.status_callback.as_deref(),
    };
    match deliver(twilio, &args.circuit, &request).await {
        Ok(sent) => tracing::info!(to = %mask_phone(to), sid = %sent.sid, "verification code sent"),
        Err(error) => tracing::error!(to = %mask_phone(to), %error, "verification code not sent"),
    }
}

/// Twilio's `Retry-After` when it gave one (capped), else our backoff.
fn retry_wait(error: &TwilioError, backoff: Duration) -> Duration {
    error
        .retry_after()
        .map(|d| d.min(Duration::from_secs(30)))
        .unwrap_or(backoff)
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    const SID: &str = "AC0123456789abcdef0123456789abcdef";

    fn request() -> OutboundSms<'static> {
        OutboundSms {
            from: "+15559990000",
            to: "+15550000000",
            body: "Reminder: stretch",
            status_callback: None,
        }
    }

    #[tokio::test]
    async fn repeated_5xx_open_the_circuit_and_later_sends_fail_fast_without_reaching_twilio() {
        let twilio = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(format!("/2010-04-01/Accounts/{SID}/Messages.json")))
            .respond_with(ResponseTemplate::new(500))
            .mount(&twilio)
            .await;
        let client = TwilioClient::builder(SID, SecretString::from("token"))
            .base_url(twilio.uri().as_str())
            .build()
            .expect("client");
        let circuit = SmsCircuit::new(CircuitPolicy {
            min_calls: 3,
            ..CircuitPolicy::default()
        });

        let first = deliver(&client, &circuit, &request()).await;
        assert!(matches!(first, Err(SendError::CircuitOpen(_))), "{first:?}");
        assert_eq!(circuit.state(), CircuitState::Open);
        let tried = twilio.received_requests().await.unwrap_or_default().len();
        assert_eq!(
            tried, 3,
            "the fourth attempt is refused by the open circuit"
        );

        let second = deliver(&client, &circuit, &request()).await;
        assert!(matches!(second, Err(SendError::CircuitOpen(_))));
        let after = twilio.received_requests().await.unwrap_or_default().len();
        assert_eq!(after, 3, "an open circuit sends nothing");
    }
}
