//! What to do after a request: the retry policy ([`should_retry_response`],
//! [`is_retriable_error`]) and backoff with jitter ([`Backoff`]), the same for every sink.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use rand::Rng;

/// The outcome of one write request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: every point is stored.
    Written,
    /// Transient (connection error, timeout, 5xx, 429): keep the body and try again, after
    /// `Retry-After` when the answer had one.
    Retry { after: Option<Duration> },
    /// The destination lacks something the sink sets up (InfluxDB 1.x: 404 `database not
    /// found`): set up again, then retry.
    Setup,
    /// 413: the body is too large for the destination; split it in two and retry the halves.
    TooLarge,
    /// 401 or 403: the credentials are wrong or lack a right. Nothing is dropped: the data
    /// waits (in the spool when there is one) until the credentials are fixed.
    Unauthorized { status: u16, message: String },
    /// 400 `partial write`: the good lines are stored, `dropped` were refused; don't retry.
    Partial {
        dropped: Option<u64>,
        message: String,
    },
    /// Any other 4xx (400, 422): the body will never be accepted; drop it.
    Rejected { status: u16, message: String },
}

/// Classifies an HTTP answer to a write (`should_retry_response` in Vector's terms).
pub fn should_retry_response(status: StatusCode, headers: &HeaderMap, body: &str) -> Verdict {
    let message = error_message(body);
    if status.is_success() {
        Verdict::Written
    } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        Verdict::Retry {
            after: retry_after(headers),
        }
    } else if status == StatusCode::PAYLOAD_TOO_LARGE {
        Verdict::TooLarge
    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        Verdict::Unauthorized {
            status: status.as_u16(),
            message,
        }
    } else if status == StatusCode::NOT_FOUND && message.contains("database not found") {
        Verdict::Setup
    } else if status == StatusCode::BAD_REQUEST && message.contains("partial write") {
        Verdict::Partial {
            dropped: dropped_count(&message),
            message,
        }
    } else {
        Verdict::Rejected {
            status: status.as_u16(),
            message,
        }
    }
}

/// Transport failures worth retrying: everything except a request we could not even build.
pub fn is_retriable_error(err: &reqwest::Error) -> bool {
    !err.is_builder()
}

/// The `error` (1.x) or `message` (2.x) of a JSON error body, else the body; at most 512 bytes.
pub fn error_message(body: &str) -> String {
    let parsed = serde_json::from_str::<serde_json::Value>(body).ok();
    let text = parsed
        .as_ref()
        .and_then(|v| v.get("error").or_else(|| v.get("message")))
        .and_then(|v| v.as_str())
        .unwrap_or(body)
        .trim();
    let mut end = text.len().min(512);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// `dropped=N` at the end of InfluxDB's partial-write message.
fn dropped_count(message: &str) -> Option<u64> {
    let rest = &message[message.rfind("dropped=")? + "dropped=".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `Retry-After` in seconds (the HTTP-date form is rare from metrics stores and is ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(3600)))
}

/// Exponential backoff with jitter: each delay is uniform in [d/2, d], d doubling up to `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let initial = initial.max(Duration::from_millis(1));
        Backoff {
            initial,
            max: max.max(initial),
            current: initial,
        }
    }

    /// The next delay; `hint` (Retry-After) wins when it is longer.
    pub fn next_delay(&mut self, hint: Option<Duration>) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(self.max);
        let jittered = rand::rng().random_range(d / 2..=d);
        hint.map_or(jittered, |h| h.max(jittered))
    }

    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(status: u16, body: &str, retry_after: Option<&str>) -> Verdict {
        let mut headers = HeaderMap::new();
        if let Some(v) = retry_after {
            headers.insert(http::header::RETRY_AFTER, v.parse().expect("header"));
        }
        should_retry_response(
            StatusCode::from_u16(status).expect("status"),
            &headers,
            body,
        )
    }

    #[test]
    fn classification_table() {
        let partial = r#"{"error":"partial write: unable to parse 'x': bad timestamp dropped=3"}"#;
        let cases = [
            (204, "", None, Verdict::Written),
            (500, "{}", None, Verdict::Retry { after: None }),
            (
                503,
                "",
                Some("7"),
                Verdict::Retry {
                    after: Some(Duration::from_secs(7)),
                },
            ),
            (429, "", Some("soon"), Verdict::Retry { after: None }),
            (
                404,
                r#"{"error":"database not found: \"k8s\""}"#,
                None,
                Verdict::Setup,
            ),
            (413, "", None, Verdict::TooLarge),
            (
                422,
                "out of bounds",
                None,
                Verdict::Rejected {
                    status: 422,
                    message: "out of bounds".into(),
                },
            ),
            (
                400,
                partial,
                None,
                Verdict::Partial {
                    dropped: Some(3),
                    message: error_message(partial),
                },
            ),
            (
                401,
                r#"{"code":"unauthorized","message":"unauthorized access"}"#,
                None,
                Verdict::Unauthorized {
                    status: 401,
                    message: "unauthorized access".into(),
                },
            ),
        ];
        for (status, body, ra, want) in cases {
            assert_eq!(verdict(status, body, ra), want, "{status} {body}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let ds: Vec<_> = (0..5).map(|_| b.next_delay(None)).collect();
        let bounds = [(50, 100), (100, 200), (175, 350), (175, 350), (175, 350)];
        for (d, (lo, hi)) in ds.iter().zip(bounds) {
            assert!(
                *d >= Duration::from_millis(lo) && *d <= Duration::from_millis(hi),
                "{d:?}"
            );
        }
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(9))),
            Duration::from_secs(9)
        );
        b.reset();
        assert!(b.next_delay(None) <= Duration::from_millis(100));
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let body = "é".repeat(600);
        let m = error_message(&body);
        assert!(m.len() <= 512 && body.starts_with(&m));
    }
}
