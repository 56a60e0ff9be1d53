//! The `model` field of a `multipart/form-data` body (RFC 7578 on the
//! framing of RFC 2046 §5.1), read and rewritten in place; every other byte
//! is forwarded as the client sent it.
//!
//! Why a small parser and not a crate: `multer`, the maintained parser, is
//! a streaming server-side parser that yields field values, not their byte
//! offsets, so rewriting `model` with it means re-encoding the whole form
//! (the audio file included) and trusting the copy to be byte-identical; it
//! also pulls `encoding_rs`, `mime`, `spin` and `httparse` into a core that
//! must stay small on wasm32. The body is already in memory (phase 3 read
//! it within the route's `max_body_bytes`), and what is needed is small:
//! find the parts, read one header of each, replace one value.
//!
//! The parser checks the whole form's framing — a body that is not a
//! well-formed form is a 400 here, never something the upstream might read
//! differently from the gateway — refuses a second `model` part (the
//! gateway and the upstream could each pick a different one), and bounds
//! what it reads: part headers (8 KiB each) and the model value (256 bytes).
//! Boundaries are found with `memchr::memmem` (linear time, whatever the
//! bytes), so an adversarial file costs what its upload costs.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use memchr::memmem;

use crate::error::GatewayError;

/// The longest boundary RFC 2046 allows.
pub const MAX_BOUNDARY_BYTES: usize = 70;
/// The most header bytes one part may have.
pub const MAX_PART_HEADER_BYTES: usize = 8 * 1024;
/// The longest `model` value read (model names are short; anything longer
/// is not a model name).
pub const MAX_MODEL_BYTES: usize = 256;

/// A `multipart/form-data` body whose framing was checked, with where its
/// `model` value is.
#[derive(Debug, Clone)]
pub struct Form {
    bytes: Bytes,
    /// The client's `Content-Type` (its boundary frames `bytes`).
    content_type: HeaderValue,
    /// The bytes of the `model` part's value.
    model: Range<usize>,
}

impl Form {
    /// Checks the framing of `body` against the boundary in `content_type`
    /// and finds its one `model` field; returns the form and the model.
    /// Every failure is a 400 naming what is wrong.
    pub fn parse(
        content_type: Option<&HeaderValue>,
        body: Bytes,
    ) -> Result<(Self, String), GatewayError> {
        let content_type = content_type.ok_or_else(|| {
            GatewayError::invalid_request(
                "This endpoint takes a multipart/form-data body (no Content-Type was sent).",
                None,
            )
        })?;
        let boundary = boundary(content_type)?;
        let range = find_model(&body, boundary.as_bytes())?;
        let value = &body[range.clone()];
        if value.is_empty() {
            return Err(missing_model());
        }
        if value.len() > MAX_MODEL_BYTES {
            return Err(GatewayError::invalid_request(
                format!("`model` is too long (at most {MAX_MODEL_BYTES} bytes)."),
                Some("model"),
            ));
        }
        let model = std::str::from_utf8(value)
            .map_err(|_| {
                GatewayError::invalid_request("`model` must be UTF-8 text.", Some("model"))
            })?
            .to_owned();
        let form = Self {
            bytes: body,
            content_type: content_type.clone(),
            model: range,
        };
        Ok((form, model))
    }

    /// The body with the `model` value replaced by `model`; every other
    /// byte unchanged.
    pub fn with_model(&self, model: &str) -> Bytes {
        let (before, after) = (
            &self.bytes[..self.model.start],
            &self.bytes[self.model.end..],
        );
        let mut out = BytesMut::with_capacity(before.len() + model.len() + after.len());
        out.extend_from_slice(before);
        out.extend_from_slice(model.as_bytes());
        out.extend_from_slice(after);
        out.freeze()
    }

    /// The client's `Content-Type`, sent upstream as it came (its boundary
    /// frames the body).
    pub fn content_type(&self) -> &HeaderValue {
        &self.content_type
    }
}

fn malformed(why: &str) -> GatewayError {
    GatewayError::invalid_request(
        format!("The request body is not valid multipart/form-data: {why}."),
        None,
    )
}

fn missing_model() -> GatewayError {
    GatewayError::invalid_request("You must provide a model parameter.", Some("model"))
}

/// The boundary of a `multipart/form-data` content type (quoted or not),
/// checked against RFC 2046's grammar.
fn boundary(content_type: &HeaderValue) -> Result<String, GatewayError> {
    let text = content_type
        .to_str()
        .map_err(|_| malformed("the Content-Type is not text"))?;
    let mut parts = text.split(';');
    let media = parts.next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case("multipart/form-data") {
        return Err(GatewayError::invalid_request(
            format!("This endpoint takes a multipart/form-data body, not `{media}`."),
            None,
        ));
    }
    let boundary = parts
        .filter_map(|p| p.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| {
            let value = value.trim();
            value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value)
        })
        .ok_or_else(|| malformed("the Content-Type has no boundary"))?;
    // bchars := DIGIT / ALPHA / "'" / "(" / ")" / "+" / "_" / "," / "-" /
    // "." / "/" / ":" / "=" / "?" / " " (not last).
    let bchar = |c: char| c.is_ascii_alphanumeric() || "'()+_,-./:=? ".contains(c);
    if boundary.is_empty()
        || boundary.len() > MAX_BOUNDARY_BYTES
        || !boundary.chars().all(bchar)
        || boundary.ends_with(' ')
    {
        return Err(malformed("the boundary is not a valid RFC 2046 boundary"));
    }
    Ok(boundary.to_owned())
}

/// Walks every part of `body` (framed by `boundary`) to the close
/// delimiter; returns the byte range of the one `model` part's value.
fn find_model(body: &[u8], boundary: &[u8]) -> Result<Range<usize>, GatewayError> {
    let mut delimiter = Vec::with_capacity(boundary.len() + 4);
    delimiter.extend_from_slice(b"\r\n--");
    delimiter.extend_from_slice(boundary);
    let finder = memmem::Finder::new(&delimiter);
    // The first delimiter opens the body, or ends a preamble (which then
    // ends in CRLF, the delimiter's first two bytes).
    let mut pos = if body.starts_with(&delimiter[2..]) {
        delimiter.len() - 2
    } else {
        finder
            .find(body)
            .map(|at| at + delimiter.len())
            .ok_or_else(|| malformed("the boundary never occurs in the body"))?
    };
    let mut model = None;
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            // The close delimiter; what follows is the epilogue, ignored.
            break;
        }
        // Transport padding, then CRLF.
        let padding = rest
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        if !rest[padding..].starts_with(b"\r\n") {
            return Err(malformed("a boundary is not followed by CRLF"));
        }
        let headers_start = pos + padding + 2;
        let (headers, content_start) = if body[headers_start..].starts_with(b"\r\n") {
            (&body[headers_start..headers_start], headers_start + 2)
        } else {
            let window_end = body.len().min(headers_start + MAX_PART_HEADER_BYTES + 4);
            let end = memmem::find(&body[headers_start..window_end], b"\r\n\r\n")
                .ok_or_else(|| malformed("a part's headers are unterminated or too long"))?;
            (
                &body[headers_start..headers_start + end],
                headers_start + end + 4,
            )
        };
        let content_end = finder
            .find(&body[content_start..])
            .map(|at| content_start + at)
            .ok_or_else(|| malformed("the body ends without its closing boundary"))?;
        if field_name(headers)?.as_deref() == Some("model") {
            if model.is_some() {
                return Err(GatewayError::invalid_request(
                    "The form has more than one `model` field.",
                    Some("model"),
                ));
            }
            model = Some(content_start..content_end);
        }
        pos = content_end + delimiter.len();
    }
    model.ok_or_else(missing_model)
}

/// The `name` of a part's `Content-Disposition: form-data` header.
fn field_name(headers: &[u8]) -> Result<Option<String>, GatewayError> {
    let text = String::from_utf8_lossy(headers);
    let disposition = text.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-disposition")
            .then_some(value)
    });
    let Some(disposition) = disposition else {
        return Err(malformed("a part has no Content-Disposition header"));
    };
    let params = disposition_params(disposition)
        .ok_or_else(|| malformed("a part's Content-Disposition is malformed"))?;
    Ok(params
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("name"))
        .map(|(_, value)| value))
}

/// `form-data; name="x"; filename="a;b.wav"` → its parameters (quoted
/// strings may hold `;` and backslash escapes). `None`: not `form-data`, or
/// not well formed.
fn disposition_params(value: &str) -> Option<Vec<(String, String)>> {
    let value = value.trim();
    let (kind, mut rest) = value.split_at(value.find(';').unwrap_or(value.len()));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return None;
    }
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Some(params);
        }
        rest = rest.strip_prefix(';')?.trim_start();
        if rest.is_empty() {
            // A trailing `;` is tolerated, as browsers' parsers do.
            return Some(params);
        }
        let eq = rest.find('=')?;
        let name = rest[..eq].trim().to_owned();
        if name.is_empty() || name.contains([';', '"']) {
            return None;
        }
        rest = rest[eq + 1..].trim_start();
        let param = if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => out.push(chars.next()?.1),
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => out.push(c),
                }
            }
            rest = &quoted[end? + 1..];
            out
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            let token = rest[..end].trim().to_owned();
            rest = &rest[end..];
            token
        };
        params.push((name, param));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDARY: &str = "----gateway-test-7MA4YWxkTrZu0gW";

    fn content_type() -> HeaderValue {
        HeaderValue::from_str(&format!("multipart/form-data; boundary={BOUNDARY}")).unwrap()
    }

    /// A form as the OpenAI SDKs send one (httpx): the file part first,
    /// with binary bytes that contain CRLF and dashes.
    fn form(model_part: &str) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a;b.wav\"\r\nContent-Type: audio/wav\r\n\r\n").as_bytes());
        body.extend_from_slice(b"RIFF\x00\x01\r\n--not-the-boundary\r\n\xff\xfe");
        body.extend_from_slice(format!("\r\n--{BOUNDARY}\r\n").as_bytes());
        body.extend_from_slice(model_part.as_bytes());
        body.extend_from_slice(format!("\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nfr\r\n--{BOUNDARY}--\r\n").as_bytes());
        body
    }

    fn parse(body: Vec<u8>) -> Result<(Form, String), GatewayError> {
        Form::parse(Some(&content_type()), Bytes::from(body))
    }

    fn bad_request(result: Result<(Form, String), GatewayError>) -> GatewayError {
        match result {
            Err(error @ GatewayError::InvalidRequest { .. }) => error,
            Err(other) => panic!("expected a 400, got {other:?}"),
            Ok((_, model)) => panic!("expected a 400, parsed model {model:?}"),
        }
    }

    #[test]
    fn the_model_is_read_and_rewritten_leaving_every_other_byte() {
        let body = form("Content-Disposition: form-data; name=\"model\"\r\n\r\nwhisper");
        let (parsed, model) = parse(body.clone()).unwrap();
        assert_eq!(model, "whisper");
        let rewritten = parsed.with_model("whisper-1-deployment");
        let expected =
            form("Content-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1-deployment");
        assert_eq!(&rewritten[..], &expected[..]);
        // The rewritten form parses again, to the new name.
        let (_, again) = parse(rewritten.to_vec()).unwrap();
        assert_eq!(again, "whisper-1-deployment");
    }

    #[test]
    fn header_spellings_quoting_and_a_preamble_are_accepted() {
        let body = form("content-disposition:form-data;name=model\r\n\r\nm");
        assert_eq!(parse(body).unwrap().1, "m");
        let quoted = HeaderValue::from_str(&format!(
            "Multipart/Form-Data; charset=utf-8; boundary=\"{BOUNDARY}\""
        ))
        .unwrap();
        let mut body = b"a preamble\r\n".to_vec();
        body.extend(form(
            "Content-Disposition: form-data; name=\"model\"\r\n\r\nm2",
        ));
        assert_eq!(
            Form::parse(Some(&quoted), Bytes::from(body)).unwrap().1,
            "m2"
        );
    }

    #[test]
    fn a_missing_or_empty_or_duplicated_model_is_400_naming_it() {
        for body in [
            form("Content-Disposition: form-data; name=\"prompt\"\r\n\r\nhello"),
            form("Content-Disposition: form-data; name=\"model\"\r\n\r\n"),
        ] {
            let error = bad_request(parse(body));
            assert!(
                matches!(
                    error,
                    GatewayError::InvalidRequest {
                        param: Some("model"),
                        ..
                    }
                ),
                "{error:?}"
            );
        }
        let twice = form(&format!(
            "Content-Disposition: form-data; name=\"model\"\r\n\r\na\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nb"
        ));
        let error = bad_request(parse(twice));
        assert!(error.to_string().contains("more than one"), "{error}");
    }

    #[test]
    fn a_huge_model_value_or_part_header_is_400_not_read_whole() {
        let huge = "x".repeat(MAX_MODEL_BYTES + 1);
        let error = bad_request(parse(form(&format!(
            "Content-Disposition: form-data; name=\"model\"\r\n\r\n{huge}"
        ))));
        assert!(error.to_string().contains("too long"), "{error}");
        let long_header = "X-Filler: ".to_owned() + &"y".repeat(MAX_PART_HEADER_BYTES);
        let error = bad_request(parse(form(&format!(
            "{long_header}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm"
        ))));
        assert!(error.to_string().contains("headers"), "{error}");
        // A large file part is fine: only the model is bounded.
        let mut big = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\n"
        )
        .into_bytes();
        big.extend(std::iter::repeat_n(b'-', 4 * 1024 * 1024));
        big.extend_from_slice(format!("\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--{BOUNDARY}--").as_bytes());
        assert_eq!(parse(big).unwrap().1, "m");
    }

    #[test]
    fn malformed_framing_is_400_never_a_panic() {
        let model = "Content-Disposition: form-data; name=\"model\"\r\n\r\nm";
        let good = form(model);
        let long = format!("multipart/form-data; boundary={}", "b".repeat(71));
        let mut not_utf8 =
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n")
                .into_bytes();
        not_utf8.extend_from_slice(b"\xff\xfe");
        not_utf8.extend_from_slice(format!("\r\n--{BOUNDARY}--").as_bytes());
        // (Content-Type, or the test boundary's when `None`; body)
        let cases: Vec<(Option<&str>, Vec<u8>)> = vec![
            // No boundary, or one RFC 2046 forbids, or not a form at all.
            (Some("multipart/form-data"), good.clone()),
            (Some("multipart/form-data; boundary="), good.clone()),
            (Some("multipart/form-data; boundary=\"\""), good.clone()),
            (Some("multipart/form-data; boundary=a\"b"), good.clone()),
            (Some(&long), good.clone()),
            (Some("application/json"), good.clone()),
            // A boundary that does not frame the body.
            (Some("multipart/form-data; boundary=other"), good.clone()),
            // Truncated: no closing delimiter.
            (None, good[..good.len() - 10].to_vec()),
            // Headers never end.
            (None, format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"").into_bytes()),
            // Junk after a delimiter.
            (None, format!("--{BOUNDARY}junk\r\n\r\nm\r\n--{BOUNDARY}--").into_bytes()),
            // A part without Content-Disposition, or not form-data.
            (None, format!("--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nm\r\n--{BOUNDARY}--").into_bytes()),
            (None, format!("--{BOUNDARY}\r\nContent-Disposition: attachment; name=\"model\"\r\n\r\nm\r\n--{BOUNDARY}--").into_bytes()),
            // An unterminated quoted name.
            (None, format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\r\n\r\nm\r\n--{BOUNDARY}--").into_bytes()),
            // Empty body, and only the opening delimiter.
            (None, Vec::new()),
            (None, format!("--{BOUNDARY}").into_bytes()),
            (None, format!("--{BOUNDARY}\r\n").into_bytes()),
            (None, not_utf8),
        ];
        for (index, (header, body)) in cases.into_iter().enumerate() {
            let header = header.map_or_else(content_type, |h| HeaderValue::from_str(h).unwrap());
            match Form::parse(Some(&header), Bytes::from(body)) {
                Err(GatewayError::InvalidRequest { .. }) => {}
                other => panic!("case {index}: expected a 400, got {other:?}"),
            }
        }
        // No Content-Type at all.
        bad_request(Form::parse(None, Bytes::from(good)));
    }

    #[test]
    fn every_prefix_of_a_form_is_handled_without_panicking() {
        let body = form("Content-Disposition: form-data; name=\"model\"\r\n\r\nm");
        for end in 0..body.len() {
            // Only the whole form (or one cut inside its epilogue) parses.
            let _ = parse(body[..end].to_vec());
        }
        assert!(parse(body).is_ok());
    }
}
