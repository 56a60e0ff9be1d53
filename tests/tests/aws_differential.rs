//! Differential tests: the core's own SigV4 signer and event-stream decoder
//! (written without the AWS SDK, which cannot run on wasm32) against the AWS
//! SDK's crates, `aws-sigv4` and `aws-smithy-eventstream`, on generated
//! inputs.
//!
//! Scope of the signer comparison: header-based signing with the SDK's
//! default settings, as Bedrock requests are signed. Paths are generated
//! without `.`/`..` and empty segments (the SDK normalises those; the
//! gateway never builds such a path), and header names exclude the ones the
//! SDK leaves unsigned by default (`user-agent`, `x-amzn-trace-id`,
//! `transfer-encoding`), which the core signs when present. Header values
//! carry spaces but no tabs: `aws-sigv4` trims and merges spaces only, while
//! botocore (the core's reference, `tests/fixtures/bedrock/sigv4_vectors.json`)
//! merges all whitespace like the core; the SDKs disagree there, and HTTP
//! servers strip a value's outer tabs anyway (RFC 9110 §5.5).

use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_eventstream::frame::{read_message_from, write_message_to};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use aws_smithy_types::DateTime;
use bytes::Bytes;
use gateway_core::aws::event_stream::{encode_message, EventStreamDecoder};
use gateway_core::aws::sigv4::{self, AwsCredentials, SigningScope};
use gateway_core::util::Secret;
use proptest::prelude::*;

/// `cases` generated inputs; shrinking bounded so a failure reports fast.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        max_shrink_iters: 500,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------- SigV4

/// Percent-encodes `bytes` for a URI, keeping unreserved characters and
/// the sub-delimiters in `keep` raw.
fn encode(bytes: &[u8], keep: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Bytes biased towards the characters encodings get wrong.
fn uri_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(b"abcXYZ019-._~".to_vec()),
            2 => prop::sample::select(b":@!$'()*,;=+/ %&?#".to_vec()),
            1 => any::<u8>(),
        ],
        1..max,
    )
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(uri_bytes(12), 0..5).prop_map(|segments| {
        let mut path = String::new();
        for segment in segments {
            let encoded = encode(&segment, b":@!$'()*,;=+");
            if encoded == "." || encoded == ".." {
                continue;
            }
            path.push('/');
            path.push_str(&encoded);
        }
        if path.is_empty() {
            path.push('/');
        }
        path
    })
}

/// A query string: pairs with and without `=`, empty values, raw `+`.
fn query() -> impl Strategy<Value = Option<String>> {
    let pair = (
        uri_bytes(8),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..8)),
    );
    prop::option::of(prop::collection::vec(pair, 1..5).prop_map(|pairs| {
        pairs
            .iter()
            .map(|(name, value)| {
                let name = encode(name, b"+!$'()*,;:@/?");
                match value {
                    Some(value) => format!("{name}={}", encode(value, b"+!$'()*,;:@/?=")),
                    None => name,
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    }))
}

const UNSIGNED_BY_THE_SDK: [&str; 3] = ["user-agent", "x-amzn-trace-id", "transfer-encoding"];
const SET_BY_THE_SIGNER: [&str; 4] = [
    "host",
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
];

/// Headers, possibly repeated, with values carrying runs of spaces.
fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = "[a-z][a-z0-9-]{0,12}".prop_filter("signed by the SDK too", |n| {
        !UNSIGNED_BY_THE_SDK.contains(&n.as_str()) && !SET_BY_THE_SIGNER.contains(&n.as_str())
    });
    let value = "[ ]{0,2}[!-~]{0,6}([ ]{1,3}[!-~]{1,6}){0,3}[ ]{0,2}";
    prop::collection::vec((name, value), 0..6)
        .prop_flat_map(|headers| {
            // Repeat some names so multi-value headers are covered.
            let len = headers.len();
            (Just(headers), prop::collection::vec(0..len.max(1), 0..3))
        })
        .prop_map(|(mut headers, repeats)| {
            for i in repeats {
                if let Some((name, _)) = headers.get(i).cloned() {
                    headers.push((name, format!("again {i}")));
                }
            }
            headers
        })
}

#[derive(Debug, Clone)]
struct SigningCase {
    method: &'static str,
    origin: &'static str,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    unix_time: u64,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    region: String,
    service: String,
}

fn signing_case() -> impl Strategy<Value = SigningCase> {
    (
        prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
        prop::sample::select(vec![
            "https://bedrock-runtime.us-east-1.amazonaws.com",
            "https://bedrock-runtime.eu-west-3.amazonaws.com:443",
            "https://example.com:8443",
            "http://127.0.0.1:9000",
            "http://localhost:80",
        ]),
        path(),
        query(),
        headers(),
        prop::collection::vec(any::<u8>(), 0..200),
        // From 1970 to the year 9999 (the SDK's date format stops there).
        0u64..253_402_300_799,
        (
            "[A-Z0-9]{16,20}",
            "[!-~]{1,40}",
            prop::option::of("[A-Za-z0-9+/=]{1,60}"),
        ),
        ("[a-z0-9-]{1,14}", "[a-z0-9-]{1,14}"),
    )
        .prop_map(
            |(method, origin, path, query, headers, body, unix_time, creds, scope)| SigningCase {
                method,
                origin,
                path,
                query,
                headers,
                body,
                unix_time,
                access_key_id: creds.0,
                secret_access_key: creds.1,
                session_token: creds.2,
                region: scope.0,
                service: scope.1,
            },
        )
}

impl SigningCase {
    fn uri(&self) -> String {
        match &self.query {
            Some(query) => format!("{}{}?{query}", self.origin, self.path),
            None => format!("{}{}", self.origin, self.path),
        }
    }

    /// The core's `Authorization` header.
    fn core(&self) -> String {
        let mut request = http::Request::new(Bytes::from(self.body.clone()));
        *request.method_mut() = self.method.parse().unwrap();
        *request.uri_mut() = self.uri().parse().unwrap();
        for (name, value) in &self.headers {
            request.headers_mut().append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_str(value).unwrap(),
            );
        }
        let credentials = AwsCredentials {
            access_key_id: Secret::new(self.access_key_id.clone()),
            secret_access_key: Secret::new(self.secret_access_key.clone()),
            session_token: self.session_token.clone().map(Secret::new),
        };
        let scope = SigningScope {
            region: &self.region,
            service: &self.service,
            unix_time: self.unix_time,
        };
        sigv4::sign(&mut request, &credentials, scope).unwrap();
        request.headers()["authorization"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// `aws-sigv4`'s `Authorization` header, default settings.
    fn sdk(&self) -> String {
        let identity = Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "differential-test",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(UNIX_EPOCH + Duration::from_secs(self.unix_time))
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let uri = self.uri();
        let request = SignableRequest::new(
            self.method,
            &uri,
            self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            SignableBody::Bytes(&self.body),
        )
        .unwrap();
        let (instructions, _) = aws_sigv4::http_request::sign(request, &params)
            .unwrap()
            .into_parts();
        let (_, authorization) = instructions
            .headers()
            .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .unwrap();
        authorization.to_owned()
    }
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn sigv4_signature_matches_the_aws_sdk(case in signing_case()) {
        prop_assert_eq!(case.core(), case.sdk(), "{:#?}", case);
    }
}

/// Regression cases the differential test found (kept as plain tests).
#[test]
fn sigv4_regressions() {
    let base = SigningCase {
        method: "GET",
        origin: "https://example.com",
        path: "/".into(),
        query: None,
        headers: Vec::new(),
        body: Vec::new(),
        unix_time: 1_440_938_160,
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: None,
        region: "us-east-1".into(),
        service: "service".into(),
    };
    let cases = [
        // A repeated header's values are signed in the order sent.
        SigningCase {
            headers: vec![("x-a".into(), "b".into()), ("x-a".into(), "a".into())],
            ..base.clone()
        },
        // `+` in a query is a space.
        SigningCase {
            query: Some("a+b=c+d&e=%2B".into()),
            ..base.clone()
        },
    ];
    for case in cases {
        assert_eq!(case.core(), case.sdk(), "{case:#?}");
    }
}

// ---------------------------------------------------------- event stream

fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        any::<bool>().prop_map(HeaderValue::Bool),
        any::<i8>().prop_map(HeaderValue::Byte),
        any::<i16>().prop_map(HeaderValue::Int16),
        any::<i32>().prop_map(HeaderValue::Int32),
        any::<i64>().prop_map(HeaderValue::Int64),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| HeaderValue::ByteArray(b.into())),
        ".{0,40}".prop_map(|s| HeaderValue::String(s.into())),
        any::<i64>().prop_map(|ms| HeaderValue::Timestamp(DateTime::from_millis(ms))),
        any::<u128>().prop_map(HeaderValue::Uuid),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        prop::collection::vec((":?[a-zA-Z0-9-]{1,30}", header_value()), 0..6),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(headers, payload)| {
            let mut message = Message::new(payload);
            for (name, value) in headers {
                message = message.add_header(Header::new(name, value));
            }
            message
        })
}

fn sdk_encode(messages: &[Message]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for message in messages {
        write_message_to(message, &mut bytes).unwrap();
    }
    bytes
}

/// What the core keeps of a message: its string headers and payload.
type CoreView = (Vec<(String, String)>, Vec<u8>);

fn core_view(message: &Message) -> CoreView {
    let headers = message
        .headers()
        .iter()
        .filter_map(|h| match h.value() {
            HeaderValue::String(s) => Some((h.name().as_str().to_owned(), s.as_str().to_owned())),
            _ => None,
        })
        .collect();
    (headers, message.payload().to_vec())
}

/// Feeds `bytes` to the core's decoder cut at `cuts` (sizes, cycled).
fn core_decode(bytes: &[u8], cuts: &[usize]) -> Result<Vec<CoreView>, String> {
    let mut decoder = EventStreamDecoder::default();
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut sizes = cuts.iter().cycle();
    while !rest.is_empty() {
        let size = sizes.next().copied().unwrap_or(rest.len()).min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        decoder
            .push(chunk, |m| out.push((m.headers, m.payload)))
            .map_err(|e| e.to_string())?;
    }
    if decoder.has_partial() {
        return Err("partial message left".into());
    }
    Ok(out)
}

proptest! {
    #![proptest_config(config(300))]

    /// Messages encoded by the SDK decode to the same string headers and
    /// payloads in the core, however the stream is cut.
    #[test]
    fn event_stream_decodes_what_the_sdk_encodes(
        messages in prop::collection::vec(message(), 1..5),
        cuts in prop::collection::vec(1usize..64, 1..8),
    ) {
        let bytes = sdk_encode(&messages);
        let expected: Vec<_> = messages.iter().map(core_view).collect();
        prop_assert_eq!(core_decode(&bytes, &cuts), Ok(expected));
    }

    /// The core's encoder (used by the mock upstreams) writes what the SDK reads.
    #[test]
    fn the_sdk_decodes_what_the_core_encodes(
        headers in prop::collection::vec((":?[a-zA-Z0-9-]{1,30}", ".{0,40}"), 0..6),
        payload in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let bytes = encode_message(&pairs, &payload);
        let message = read_message_from(Bytes::from(bytes)).unwrap();
        prop_assert_eq!(core_view(&message), (headers, payload));
    }

    /// One flipped bit anywhere in a message: both decoders refuse it
    /// (the CRCs cover every byte), the core without emitting anything.
    #[test]
    fn a_corrupted_message_is_refused_by_both(
        message in message(),
        position in any::<prop::sample::Index>(),
        bit in 0u8..8,
        cuts in prop::collection::vec(1usize..64, 1..8),
    ) {
        let mut bytes = sdk_encode(std::slice::from_ref(&message));
        let at = position.index(bytes.len());
        bytes[at] ^= 1 << bit;
        prop_assert!(read_message_from(Bytes::from(bytes.clone())).is_err());
        let mut decoder = EventStreamDecoder::default();
        let mut emitted = 0;
        let mut refused = false;
        for chunk in core_chunks(&bytes, &cuts) {
            if decoder.push(chunk, |_| emitted += 1).is_err() {
                refused = true;
                break;
            }
        }
        // The prelude CRC is checked as soon as 12 bytes are in, so even a
        // corrupted length is refused rather than waited for.
        prop_assert!(refused, "corruption at byte {} accepted", at);
        prop_assert_eq!(emitted, 0);
    }
}

fn core_chunks<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut sizes = cuts.iter().cycle();
    while !rest.is_empty() {
        let size = (*sizes.next().unwrap()).min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        out.push(chunk);
        rest = tail;
    }
    out
}
