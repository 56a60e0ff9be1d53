//! Entry points shared by the `cargo fuzz` targets (`fuzz/`) and the stable
//! test that replays their committed corpora (`tests/tests/fuzz_corpora.rs`),
//! so CI checks every corpus file without nightly.
//!
//! Each function takes arbitrary bytes, drives one parser of untrusted
//! input, and panics (through `assert!`) only when an invariant breaks:
//! besides "no panic", streams decode the same whatever the chunking,
//! normalised paths are idempotent and free of the encodings they refuse,
//! and translated streams emit valid JSON chunks with `[DONE]` last.
//!
//! Feature `fuzzing`; never part of a release build.

use http::Method;
use serde_json::{Map, Value};

use crate::ai::dialects::anthropic as anthropic_dialect;
use crate::ai::embeddings::EmbeddingsRequest;
use crate::ai::providers::{anthropic, bedrock, gemini, openai};
use crate::ai::request::{ChatRequest, Operation};
use crate::ai::sse::{EventRewriter, EventSource, SseDecoder, SseUsage};
use crate::aws::event_stream::{encode_message, EventStreamDecoder, Message};
use crate::body::observe::BodyEnd;
use crate::http::normalize::normalize_path;
use crate::http::routing::{PathPattern, PathTemplate, RouteMatch, RouteMatcher, Router};

/// Splits `data` into chunks whose sizes follow `seed` (1 to 64 bytes each,
/// sometimes empty), so every target also checks chunk-boundary handling.
fn chunks(data: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut state = u32::from(seed) | 1;
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let size = ((state >> 16) % 65) as usize;
        let (head, tail) = rest.split_at(size.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

/// The first byte as a parameter, the rest as the input.
fn split_seed(data: &[u8]) -> (u8, &[u8]) {
    data.split_first().map_or((0, data), |(&s, rest)| (s, rest))
}

/// The SSE decoder: the same events whatever the chunking; the usage
/// observer reads any stream without panicking.
pub fn sse(data: &[u8]) {
    let (seed, input) = split_seed(data);
    let mut whole = Vec::new();
    SseDecoder::default().push(input, |event| whole.push(event.to_owned()));
    let mut chunked = Vec::new();
    let mut decoder = SseDecoder::default();
    for chunk in chunks(input, seed) {
        decoder.push(chunk, |event| chunked.push(event.to_owned()));
    }
    assert_eq!(whole, chunked, "SSE events depend on the chunking");
    assert!(
        whole.iter().all(|e| !e.is_empty()),
        "an empty event was emitted"
    );

    let mut usage = SseUsage::default();
    for chunk in chunks(input, seed.wrapping_add(1)) {
        usage.push(chunk);
    }
    let (_outcome, _error_event) = usage.end(BodyEnd::Completed);
    let summary = usage.summary(crate::ai::sse::StreamOutcome::Completed);
    assert_eq!(summary.bytes, input.len() as u64);
}

/// Decodes with `decoder` in the given chunks: the messages, then the
/// error that stopped decoding, if any.
fn decode_all(parts: &[&[u8]]) -> (Vec<Message>, Option<String>) {
    let mut decoder = EventStreamDecoder::default();
    let mut messages = Vec::new();
    for part in parts {
        if let Err(err) = decoder.push(part, |m| messages.push(m)) {
            return (messages, Some(err.to_string()));
        }
    }
    (messages, None)
}

/// The AWS event-stream decoder. First byte even: the rest is a raw byte
/// stream, decoded whole and in chunks with the same result. Odd: the rest
/// describes messages, which are encoded and must decode to themselves.
pub fn event_stream(data: &[u8]) {
    let (seed, input) = split_seed(data);
    if seed % 2 == 0 {
        let whole = decode_all(&[input]);
        let chunked = decode_all(&chunks(input, seed));
        assert_eq!(
            whole, chunked,
            "event-stream decoding depends on the chunking"
        );
        return;
    }
    // `name\0value\0payload\n` per message; names are cut to 255 bytes.
    let text = String::from_utf8_lossy(input);
    let mut expected = Vec::new();
    let mut bytes = Vec::new();
    for line in text.split('\n') {
        let mut fields = line.splitn(3, '\0');
        let mut name = fields.next().unwrap_or_default().to_owned();
        while name.len() > 255 {
            name.pop();
        }
        let value = fields.next().unwrap_or_default();
        let payload = fields.next().unwrap_or_default().as_bytes();
        bytes.extend(encode_message(&[(&name, value)], payload));
        expected.push(Message {
            headers: vec![(name, value.to_owned())],
            payload: payload.to_vec(),
        });
    }
    let (messages, error) = decode_all(&chunks(&bytes, seed));
    assert_eq!(error, None, "an encoded message was refused");
    assert_eq!(messages, expected, "encode → decode is not the identity");
}

/// The routes the path target matches against when the input names none:
/// a protected prefix before a weaker one (the route-bypass shape of issue
/// 12), a template with a catch-all, and the AI prefix.
const DEFAULT_ROUTES: &[&str] = &[
    "p:/api/admin",
    "p:/api",
    "t:/users/{id}/orders/{*rest}",
    "t:/files/{name}",
    "p:/v1",
];

/// Path normalisation and the router. The input is the request path, then
/// optionally route patterns, one a line (`p:/prefix` or `t:/template`).
pub fn path(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let raw = lines.next().unwrap_or_default();
    let given: Vec<&str> = lines.collect();
    let patterns = if given.is_empty() {
        DEFAULT_ROUTES.to_vec()
    } else {
        given
    };

    let Ok(normalized) = normalize_path(raw) else {
        return;
    };
    let path = normalized.as_ref();
    assert!(path.starts_with('/'), "{path:?} lost its leading slash");
    assert!(!path.contains("//"), "{path:?} keeps an empty segment");
    assert!(!path.contains('\\'), "{path:?} keeps a backslash");
    let upper = path.to_ascii_uppercase();
    for refused in ["%2F", "%5C", "%00"] {
        assert!(!upper.contains(refused), "{path:?} keeps {refused}");
    }
    assert!(
        !path.split('/').any(|s| s == "." || s == ".."),
        "{path:?} keeps a dot segment"
    );
    // Idempotent.
    match normalize_path(path) {
        Ok(again) => assert_eq!(again, path),
        other => panic!("normalising {path:?} again gave {other:?}"),
    }

    let matchers: Vec<(RouteMatcher, Option<PathTemplate>)> = patterns
        .iter()
        .filter_map(|line| {
            let (pattern, template) = if let Some(p) = line.strip_prefix("p:") {
                (PathPattern::prefix(p).ok()?, None)
            } else {
                let template = PathTemplate::parse(line.strip_prefix("t:").unwrap_or(line)).ok()?;
                (PathPattern::Template(template.clone()), Some(template))
            };
            let matcher = RouteMatcher {
                host: None,
                methods: None,
                path: pattern,
                allow_semicolons: true,
            };
            Some((matcher, template))
        })
        .collect();
    let router = Router::new(matchers.iter().map(|(m, _)| m.clone()).collect());
    match router.find(&Method::GET, None, path) {
        RouteMatch::Found {
            route,
            params,
            matched_len,
        } => {
            assert!(matched_len <= path.len() && path.is_char_boundary(matched_len));
            // The route-bypass property: a path under a protected prefix
            // listed first can only match that route.
            let (first, _) = &matchers[0];
            if let PathPattern::Prefix(prefix) = &first.path {
                let under = path == prefix.as_str()
                    || path.starts_with(&format!("{prefix}/"))
                    || prefix.is_empty();
                assert_eq!(under, route == 0, "{path:?} matched route {route}");
            }
            // A template's captures render to a path the template matches
            // again with the same captures.
            if let Some(template) = &matchers[route].1 {
                let rendered = template.render(&params);
                let single = Router::new(vec![matchers[route].0.clone()]);
                match single.find(&Method::GET, None, &rendered) {
                    RouteMatch::Found { params: again, .. } => assert_eq!(again, params),
                    other => panic!("{rendered:?} rendered from {path:?} gave {other:?}"),
                }
            }
        }
        RouteMatch::MethodNotAllowed { .. } => panic!("no route restricts methods"),
        RouteMatch::NotFound => {}
    }
}

/// Config parsing and validation: any text is either a config or a list of
/// issues, never a panic. `${env:NAME}` resolves to a fixed value.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(err) = crate::Config::from_yaml(text, |name| Some(format!("env-{name}"))) {
        assert!(!err.issues.is_empty(), "a refused config names no issue");
        let _ = err.to_string();
    }
}

/// Checks the payloads a stream translator sent: JSON objects, `[DONE]` at
/// most once and last.
fn check_stream_output(out: &[String]) {
    for (i, payload) in out.iter().enumerate() {
        if payload == "[DONE]" {
            assert_eq!(i + 1, out.len(), "output after [DONE]");
            continue;
        }
        let value: Value = serde_json::from_str(payload)
            .unwrap_or_else(|e| panic!("translator sent invalid JSON {payload:?}: {e}"));
        assert!(value.is_object(), "translator sent a non-object {payload}");
    }
}

/// Runs `input` through `source` in chunks and `rewriter`, as `SseRewrite`
/// does (stopping when the rewriter is done or the source fails).
fn rewrite<S: EventSource>(
    rewriter: &mut dyn EventRewriter,
    input: &[u8],
    seed: u8,
) -> Vec<String> {
    let mut source = S::default();
    let mut out = Vec::new();
    for chunk in chunks(input, seed) {
        let mut events = Vec::new();
        let failed = source
            .push(chunk, &mut |event| events.push(event.to_owned()))
            .is_err();
        for event in events {
            if rewriter.is_done() {
                break;
            }
            rewriter.on_event(&event, &mut out);
        }
        if failed || rewriter.is_done() {
            return out;
        }
    }
    rewriter.on_end(&mut out);
    out
}

/// Each provider's response and stream translator; the first byte picks
/// which (and whether the client asked for usage), the rest is the
/// upstream body.
pub fn provider(data: &[u8]) {
    let (selector, input) = split_seed(data);
    let include_usage = selector & 0x80 != 0;
    let seed = selector.rotate_left(3);
    let json = || serde_json::from_slice::<Value>(input).ok();
    match selector % 8 {
        0 => {
            if let Some(message) = json() {
                let (completion, _) = anthropic::anthropic_response_to_openai(&message, "m", 1);
                assert!(completion.is_object());
            }
        }
        1 => {
            let mut t = anthropic::AnthropicStreamTranslator::new("m", 1, include_usage);
            check_stream_output(&rewrite::<SseDecoder>(&mut t, input, seed));
        }
        2 => {
            if let Some(response) = json() {
                let (completion, _) = gemini::gemini_response_to_openai(&response, "m", 1);
                assert!(completion.is_object());
            }
        }
        3 => {
            let mut t = gemini::GeminiStreamTranslator::new("m", 1, include_usage);
            check_stream_output(&rewrite::<SseDecoder>(&mut t, input, seed));
        }
        4 => {
            if let Some(response) = json() {
                let (completion, _) = bedrock::bedrock_response_to_openai(&response, "m", "id", 1);
                assert!(completion.is_object());
            }
        }
        5 => {
            let mut t = bedrock::BedrockStreamTranslator::new("id", "m", 1, include_usage);
            check_stream_output(&rewrite::<bedrock::ConverseEvents>(&mut t, input, seed));
        }
        6 => {
            // The OpenAI-compatible pass-through: usage folding relays
            // what it cannot parse, so only its parsed output is checked.
            let mut folding = openai::UsageFolding {
                fold: !include_usage,
                public_model: "m".into(),
                held: None,
            };
            let out = rewrite::<SseDecoder>(&mut folding, input, seed);
            let mut expected = Vec::new();
            SseDecoder::default().push(input, |e| expected.push(e.to_owned()));
            assert!(out.len() <= expected.len(), "usage folding invented events");
        }
        _ => {
            // An embeddings or chat body read for its usage only.
            if let Some(value) = json() {
                if let Some(usage) = value.get("usage") {
                    let _ = crate::ai::usage::Usage::from_openai(usage);
                }
            }
            // The same bytes as a canonical stream rendered as Anthropic
            // Messages events: every frame is named and carries an object
            // whose `type` is its name.
            let mut t = anthropic_dialect::MessagesStream::new("m", 1);
            for frame in rewrite::<SseDecoder>(&mut t, input, seed) {
                let (name, data) = frame
                    .strip_prefix("event: ")
                    .and_then(|f| f.split_once("\ndata: "))
                    .unwrap_or_else(|| panic!("an unnamed frame {frame:?}"));
                let data: Value = serde_json::from_str(data.trim_end())
                    .unwrap_or_else(|e| panic!("renderer sent invalid JSON {data:?}: {e}"));
                assert_eq!(data["type"], name, "{frame}");
            }
        }
    }
}

/// The same body as an Anthropic Messages request (a chat corpus entry
/// often is one), and what its canonical form maps to.
fn messages_request(body: &[u8], require_max_tokens: bool) {
    let headers = http::HeaderMap::new();
    let Ok(chat) = anthropic_dialect::parse_messages(body, &headers, require_max_tokens) else {
        return;
    };
    assert!(chat.native.is_some(), "the native body is kept");
    let operation = Operation::Chat(&chat);
    let _ = operation.prompt_estimate();
    let _ = operation.with_defaults(&Map::new());
    let _ = gemini::gemini_request(&chat);
    let _ = bedrock::bedrock_request(&chat);
}

/// The JSON request parsers (chat completions, Anthropic Messages,
/// embeddings) and, for what
/// parses, the estimates and every vendor's request mapping. The first
/// byte picks the parser.
pub fn request(data: &[u8]) {
    let (selector, body) = split_seed(data);
    if selector % 2 == 0 {
        messages_request(body, selector & 0x10 != 0);
        let Ok(chat) = ChatRequest::parse(body) else {
            return;
        };
        let operation = Operation::Chat(&chat);
        let _ = operation.prompt_estimate();
        let _ = operation.completion_reservation();
        let _ = operation.with_defaults(&Map::new());
        let _ = anthropic::anthropic_request(&chat, "upstream");
        let _ = gemini::gemini_request(&chat);
        let _ = bedrock::bedrock_request(&chat);
    } else {
        let Ok(request) = EmbeddingsRequest::parse(body) else {
            return;
        };
        let operation = Operation::Embeddings(&request);
        let _ = operation.prompt_estimate();
        for vendor in ["bedrock", "gemini"] {
            if let Ok(texts) = request.texts(vendor) {
                let _ = gemini::gemini_embeddings_request(texts, "m", request.dimensions);
                for family in ["amazon.titan-embed-text-v2:0", "cohere.embed-english-v3"] {
                    let family = bedrock::EmbeddingFamily::of(family);
                    let _ = bedrock::bedrock_embedding_bodies(family, texts, request.dimensions);
                }
            }
        }
    }
}

/// The content types the multipart target frames its input with (the
/// first byte picks one): a short boundary, a long one, and one of every
/// punctuation RFC 2046 allows.
const MULTIPART_CONTENT_TYPES: [&str; 3] = [
    "multipart/form-data; boundary=b",
    "multipart/form-data; boundary=----fuzz-boundary-7MA4YWxkTrZu0gW",
    "multipart/form-data; boundary=\"a'()+_,-./:=?z\"",
];

/// The multipart form parser of the passed-through audio endpoints
/// (`ai::passthrough::multipart`): any body is a form or a 400, never a
/// panic or another error; a form that parses, with its model rewritten,
/// parses again to the new model, and rewriting it back gives the input's
/// bytes (nothing but the model value moved).
pub fn multipart(data: &[u8]) {
    use crate::ai::passthrough::multipart::Form;
    use crate::error::GatewayError;
    let (selector, body) = split_seed(data);
    let content_type = http::HeaderValue::from_static(
        MULTIPART_CONTENT_TYPES[usize::from(selector) % MULTIPART_CONTENT_TYPES.len()],
    );
    match Form::parse(Some(&content_type), bytes::Bytes::copy_from_slice(body)) {
        Ok((form, model)) => {
            let rewritten = form.with_model("fuzz-upstream-model");
            match Form::parse(Some(&content_type), rewritten) {
                Ok((again, renamed)) => {
                    assert_eq!(renamed, "fuzz-upstream-model");
                    assert_eq!(&again.with_model(&model)[..], body);
                }
                Err(error) => panic!("a rewritten form must parse again: {error:?}"),
            }
        }
        Err(GatewayError::InvalidRequest { .. }) => {}
        Err(other) => panic!("a form is refused as a 400, not {other:?}"),
    }
}
