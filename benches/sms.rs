//! The SMS edge's own work per webhook: checking `X-Twilio-Signature` (HMAC-SHA1 over the URL
//! and every parameter) and rendering the TwiML answer.
//!
//! Run with: `cargo bench --bench sms`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use nudge::sms::{signature, twiml};

const TOKEN: &str = "12345678901234567890123456789012";
const URL: &str = "https://nudge.example.com/sms/inbound";

/// The form Twilio posts for an inbound SMS.
fn params() -> Vec<(String, String)> {
    [
        ("ToCountry", "US"),
        ("SmsMessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("NumMedia", "0"),
        ("SmsSid", "SM0123456789abcdef0123456789abcdef"),
        ("SmsStatus", "received"),
        ("Body", "add task call the dentist before friday"),
        ("To", "+14155559001"),
        ("NumSegments", "1"),
        ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("From", "+14155550101"),
        ("ApiVersion", "2010-04-01"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn signature_check(c: &mut Criterion) {
    let params = params();
    let header = signature::expected_signature(TOKEN, URL, &params);
    c.bench_function("sms/signature check (12 parameters)", |b| {
        b.iter(|| {
            signature::verify(
                black_box(TOKEN),
                black_box(URL),
                black_box(&params),
                black_box(&header),
            )
        })
    });
}

fn twiml_rendering(c: &mut Criterion) {
    let reply = "Added \"call the dentist before friday\". You have 3 open tasks - next up: \
                 pay rent. Reply 'tasks' to see them & 'done 1' when it's done.";
    c.bench_function("sms/TwiML rendering (150-character reply, escaped)", |b| {
        b.iter(|| twiml::message(black_box(reply)))
    });
}

criterion_group!(benches, signature_check, twiml_rendering);
criterion_main!(benches);
