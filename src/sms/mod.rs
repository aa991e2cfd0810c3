//! The SMS protocol as Twilio speaks it: webhook signatures, TwiML, segment counting,
//! carrier keywords (STOP / START / HELP), and the REST client for outbound messages.

pub mod keywords;
pub mod segments;
pub mod signature;
pub mod twilio;
pub mod twiml;
