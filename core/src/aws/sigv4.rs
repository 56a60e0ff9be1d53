//! AWS Signature Version 4 (header-based), as specified in
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>.
//!
//! Every header present on the request when it is signed is signed, plus
//! `host` (from the URI) and `x-amz-date`; headers added afterwards (the
//! gateway's `x-request-id`) travel unsigned, which AWS accepts. Paths are
//! encoded twice, as for every service but S3. Checked against vectors
//! produced by botocore (`tests/fixtures/bedrock/sigv4_vectors.json`).

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderValue, Request};
use sha2::{Digest, Sha256};

use crate::util::hex;
use crate::util::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Static or session credentials (the Lambda role's environment, or
/// Worker secrets).
#[derive(Debug, Clone)]
pub struct AwsCredentials {
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

/// What a signature is scoped to.
#[derive(Debug, Clone, Copy)]
pub struct SigningScope<'a> {
    pub region: &'a str,
    pub service: &'a str,
    /// Seconds since the Unix epoch.
    pub unix_time: u64,
}

/// The intermediate strings, exposed for tests and debugging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub canonical_request: String,
    pub string_to_sign: String,
    pub authorization: String,
    pub amz_date: String,
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time.
pub fn amz_date(unix_time: u64) -> String {
    use crate::util::civil_from_days;
    let days = unix_time / 86_400;
    let seconds = unix_time % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// Signs `request` in place: adds `x-amz-date`, `x-amz-security-token`
/// (session credentials) and `authorization`.
pub fn sign(
    request: &mut Request<Bytes>,
    credentials: &AwsCredentials,
    scope: SigningScope<'_>,
) -> Result<Signature, http::header::InvalidHeaderValue> {
    let amz_date = amz_date(scope.unix_time);
    let headers = request.headers_mut();
    headers.insert("x-amz-date", HeaderValue::from_str(&amz_date)?);
    if let Some(token) = &credentials.session_token {
        headers.insert(
            "x-amz-security-token",
            HeaderValue::from_str(token.expose())?,
        );
    }
    let signature = compute(request, credentials, scope, &amz_date);
    request.headers_mut().insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&signature.authorization)?,
    );
    Ok(signature)
}

/// The signature of `request` as it is (`x-amz-date` already set).
pub fn compute(
    request: &Request<Bytes>,
    credentials: &AwsCredentials,
    scope: SigningScope<'_>,
    amz_date: &str,
) -> Signature {
    compute_over(request, credentials, scope, amz_date, None)
}

/// Checks a received request's `Authorization` header as AWS does: the
/// signature over the headers it names must match. Returns why not. Only for
/// tests and mock upstreams (feature `test-util`): the gateway signs, it
/// never verifies, and a verifier has no place in a release build.
#[cfg(any(test, feature = "test-util"))]
pub fn verify(
    request: &Request<Bytes>,
    credentials: &AwsCredentials,
    region: &str,
    service: &str,
) -> Result<(), String> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("missing `{name}`"))
    };
    let authorization = header("authorization")?;
    let amz_date = header("x-amz-date")?;
    if amz_date.len() != 16 || !amz_date.is_ascii() {
        return Err(format!("malformed x-amz-date `{amz_date}`"));
    }
    let signed: Vec<&str> = authorization
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .ok_or("no SignedHeaders in the authorization header")?
        .split(';')
        .collect();
    let expected = compute_over(
        request,
        credentials,
        SigningScope {
            region,
            service,
            unix_time: 0,
        },
        amz_date,
        Some(&signed),
    );
    if expected.authorization == authorization {
        Ok(())
    } else {
        Err(format!(
            "signature mismatch; expected canonical request:\n{}",
            expected.canonical_request
        ))
    }
}

fn compute_over(
    request: &Request<Bytes>,
    credentials: &AwsCredentials,
    scope: SigningScope<'_>,
    amz_date: &str,
    only: Option<&[&str]>,
) -> Signature {
    let uri = request.uri();
    // A received request names its host in `Host`; one being built, in the URI.
    let received_host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok());
    let host = received_host.unwrap_or_else(|| {
        uri.authority().map_or("", |authority| {
            let default_port = match uri.scheme_str() {
                Some("https") => Some(443),
                Some("http") => Some(80),
                _ => None,
            };
            if authority.port_u16().is_some() && authority.port_u16() == default_port {
                authority.host()
            } else {
                authority.as_str()
            }
        })
    });
    let mut headers: Vec<(String, String)> = vec![("host".to_owned(), host.to_owned())];
    for (name, value) in request.headers() {
        if name == http::header::AUTHORIZATION
            || name == http::header::HOST
            || only.is_some_and(|only| !only.contains(&name.as_str()))
        {
            continue;
        }
        headers.push((
            name.as_str().to_owned(),
            canonical_header_value(value.as_bytes()),
        ));
    }
    // By name only, stably: a repeated header's values are signed in the
    // order they are sent (sorting them too signed a different request; found
    // by the differential test against `aws-sigv4`).
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    // Repeated headers are signed as one comma-joined value.
    let mut merged: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        match merged.last_mut() {
            Some((last, joined)) if *last == name => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => merged.push((name, value)),
        }
    }
    let signed_headers = merged
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let mut canonical_request = String::with_capacity(512);
    canonical_request.push_str(request.method().as_str());
    canonical_request.push('\n');
    canonical_request.push_str(&uri_encode(uri.path(), false));
    canonical_request.push('\n');
    canonical_request.push_str(&canonical_query(uri.query().unwrap_or("")));
    canonical_request.push('\n');
    for (name, value) in &merged {
        canonical_request.push_str(name);
        canonical_request.push(':');
        canonical_request.push_str(value);
        canonical_request.push('\n');
    }
    canonical_request.push('\n');
    canonical_request.push_str(&signed_headers);
    canonical_request.push('\n');
    canonical_request.push_str(&hex(&Sha256::digest(request.body())));

    let date = &amz_date[..8];
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{credential_scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let secret = format!("AWS4{}", credentials.secret_access_key.expose());
    let key = hmac(secret.as_bytes(), date.as_bytes());
    let key = hmac(&key, scope.region.as_bytes());
    let key = hmac(&key, scope.service.as_bytes());
    let key = hmac(&key, b"aws4_request");
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id.expose()
    );
    Signature {
        canonical_request,
        string_to_sign,
        authorization,
        amz_date: amz_date.to_owned(),
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts any key length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Trimmed, with inner runs of spaces collapsed to one.
fn canonical_header_value(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// RFC 3986 encoding of everything but unreserved characters (and `/`
/// when `encode_slash` is false).
fn uri_encode(input: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(input.len() + 8);
    for byte in input.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            b'/' if !encode_slash => out.push('/'),
            _ => {
                out.push('%');
                out.push_str(&format!("{byte:02X}"));
            }
        }
    }
    out
}

/// Decodes a query component as `application/x-www-form-urlencoded` (`+` is
/// a space), as AWS's SDKs read a query before re-encoding it (`aws-sigv4`,
/// the Go SDK; found by the differential test: `?a+b` was signed as `a%2Bb`).
fn percent_decode(input: &str) -> Vec<u8> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_pair = bytes
            .get(i + 1..i + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[i], hex_pair) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// Parameters decoded, re-encoded strictly and sorted by name then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let encode =
                |part: &str| uri_encode(&String::from_utf8_lossy(&percent_decode(part)), true);
            (encode(name), encode(value))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers produced by botocore's `SigV4Auth` (and, for
    /// `get-vanilla`, AWS's own test suite).
    #[test]
    fn signatures_match_botocore() {
        let vectors: serde_json::Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/bedrock/sigv4_vectors.json"
        ))
        .unwrap();
        for vector in vectors.as_array().unwrap() {
            let name = vector["name"].as_str().unwrap();
            let mut request = Request::new(Bytes::from(
                vector["body"].as_str().unwrap_or_default().to_owned(),
            ));
            *request.method_mut() = vector["method"].as_str().unwrap().parse().unwrap();
            *request.uri_mut() = vector["url"].as_str().unwrap().parse().unwrap();
            for (header, value) in vector["headers"].as_object().unwrap() {
                request.headers_mut().insert(
                    http::HeaderName::from_bytes(header.as_bytes()).unwrap(),
                    HeaderValue::from_str(value.as_str().unwrap()).unwrap(),
                );
            }
            let credentials = AwsCredentials {
                access_key_id: Secret::new(vector["access_key_id"].as_str().unwrap()),
                secret_access_key: Secret::new(vector["secret_access_key"].as_str().unwrap()),
                session_token: vector["session_token"].as_str().map(Secret::new),
            };
            let amz = vector["amz_date"].as_str().unwrap();
            let unix_time = unix_time_of(amz);
            let region = vector["region"].as_str().unwrap();
            let service = vector["service"].as_str().unwrap();
            let signature = sign(
                &mut request,
                &credentials,
                SigningScope {
                    region,
                    service,
                    unix_time,
                },
            )
            .unwrap();
            assert_eq!(
                signature.canonical_request,
                vector["canonical_request"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(
                signature.string_to_sign,
                vector["string_to_sign"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(
                request.headers()["authorization"],
                vector["authorization"].as_str().unwrap(),
                "{name}"
            );
        }
    }

    /// Unix time of a `YYYYMMDDTHHMMSSZ` stamp (test helper: walks days).
    fn unix_time_of(amz: &str) -> u64 {
        let day_stamp = &amz[..8];
        let mut days = 0;
        while amz_date(days * 86_400)[..8] != *day_stamp {
            days += 1;
        }
        let n = |range: std::ops::Range<usize>| amz[range].parse::<u64>().unwrap();
        days * 86_400 + n(9..11) * 3600 + n(11..13) * 60 + n(13..15)
    }

    #[test]
    fn amz_date_formats_unix_time() {
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
    }

    #[test]
    fn canonical_query_sorts_and_encodes() {
        assert_eq!(canonical_query("b=2&a=1&c=x%20y"), "a=1&b=2&c=x%20y");
        assert_eq!(canonical_query("k=a%2fb&k=a"), "k=a&k=a%2Fb");
        assert_eq!(canonical_query("alt=sse"), "alt=sse");
        assert_eq!(canonical_query(""), "");
    }

    #[test]
    fn paths_are_encoded_again() {
        assert_eq!(
            uri_encode("/model/a.b-v1%3A0/converse", false),
            "/model/a.b-v1%253A0/converse"
        );
    }
}
