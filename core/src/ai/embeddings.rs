//! `POST /v1/embeddings`: the OpenAI request and response shapes
//! (<https://platform.openai.com/docs/api-reference/embeddings/create>), the
//! parts the gateway reads, and the response built for translated providers.
//!
//! OpenAI-compatible and Azure deployments get the request as sent (model
//! replaced) and answer as they do. Gemini and Bedrock get the texts; their
//! vectors come back in OpenAI's shape, as floats or, when
//! `encoding_format: "base64"` (the OpenAI Python SDK's default), as the
//! base64 of little-endian `f32`s, as OpenAI encodes them. Token-array
//! inputs only reach OpenAI-compatible servers (400 elsewhere).
//!
//! Vectors are plain `f32`s from the provider's bytes to the client's: the
//! providers read them into typed structs and the response is written
//! straight to bytes, never a JSON value per float (2048 inputs × 3072
//! dimensions would be hundreds of megabytes of values).

use base64::Engine;
use serde::ser::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::usage::{estimate_tokens, Usage};
use crate::error::GatewayError;

/// Inputs per request, as OpenAI allows.
pub const MAX_INPUTS: usize = 2048;

/// What to embed.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbeddingInput {
    Texts(Vec<String>),
    /// Pre-tokenized input (one token array per item).
    Tokens(Vec<Vec<u64>>),
}

/// How vectors are returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodingFormat {
    Float,
    Base64,
}

#[derive(Debug, Clone)]
pub struct EmbeddingsRequest {
    pub body: Map<String, Value>,
    pub model: String,
    pub input: EmbeddingInput,
    pub encoding_format: EncodingFormat,
    pub dimensions: Option<u64>,
}

impl EmbeddingsRequest {
    /// Parses and checks the request; errors are 400s naming the parameter.
    pub fn parse(bytes: &[u8]) -> Result<Self, GatewayError> {
        let (body, model) = super::json::parse_object_with_model(bytes)?;
        let bad_input = || {
            GatewayError::invalid_request(
                "`input` must be a non-empty string, an array of non-empty strings, an array of token ids, or an array of token arrays.",
                Some("input"),
            )
        };
        let input = match body.get("input") {
            Some(Value::String(text)) if !text.is_empty() => {
                EmbeddingInput::Texts(vec![text.clone()])
            }
            // A flat token array is one input, whatever its length.
            Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_u64) => {
                EmbeddingInput::Tokens(vec![items.iter().filter_map(Value::as_u64).collect()])
            }
            Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_INPUTS => {
                if items.iter().all(Value::is_string) {
                    let texts: Vec<String> = items
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect();
                    if texts.iter().any(String::is_empty) {
                        return Err(bad_input());
                    }
                    EmbeddingInput::Texts(texts)
                } else {
                    let arrays: Option<Vec<Vec<u64>>> = items
                        .iter()
                        .map(|item| {
                            let tokens = item.as_array()?;
                            let ids: Vec<u64> = tokens.iter().filter_map(Value::as_u64).collect();
                            (!ids.is_empty() && ids.len() == tokens.len()).then_some(ids)
                        })
                        .collect();
                    EmbeddingInput::Tokens(arrays.ok_or_else(bad_input)?)
                }
            }
            Some(Value::Array(items)) if items.len() > MAX_INPUTS => {
                return Err(GatewayError::invalid_request(
                    format!("`input` may hold at most {MAX_INPUTS} items."),
                    Some("input"),
                ))
            }
            None => {
                return Err(GatewayError::invalid_request(
                    "Missing required parameter: 'input'.",
                    Some("input"),
                ))
            }
            Some(_) => return Err(bad_input()),
        };
        let encoding_format = match body.get("encoding_format") {
            None | Some(Value::Null) => EncodingFormat::Float,
            Some(Value::String(f)) if f == "float" => EncodingFormat::Float,
            Some(Value::String(f)) if f == "base64" => EncodingFormat::Base64,
            Some(_) => {
                return Err(GatewayError::invalid_request(
                    "`encoding_format` must be `float` or `base64`.",
                    Some("encoding_format"),
                ))
            }
        };
        let dimensions = match body.get("dimensions") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => Some(n),
                _ => {
                    return Err(GatewayError::invalid_request(
                        "`dimensions` must be a positive integer.",
                        Some("dimensions"),
                    ))
                }
            },
        };
        Ok(Self {
            body,
            model,
            input,
            encoding_format,
            dimensions,
        })
    }

    /// The texts, or a 400 for token input (which only OpenAI-compatible
    /// servers understand).
    pub fn texts(&self, vendor: &str) -> Result<&[String], GatewayError> {
        match &self.input {
            EmbeddingInput::Texts(texts) => Ok(texts),
            EmbeddingInput::Tokens(_) => Err(GatewayError::invalid_request(
                format!(
                    "Token-array `input` is not supported by the {vendor} provider; send text."
                ),
                Some("input"),
            )),
        }
    }

    /// Estimated input tokens (for reservations and providers that report
    /// none).
    pub fn estimated_tokens(&self) -> u64 {
        match &self.input {
            EmbeddingInput::Texts(texts) => texts.iter().map(|t| estimate_tokens(t)).sum(),
            EmbeddingInput::Tokens(arrays) => arrays.iter().map(|a| a.len() as u64).sum(),
        }
    }
}

/// The OpenAI embeddings response body for `vectors` (in input order).
/// The fields are in the order serde_json prints a map's keys, so the bytes
/// are those of the same response built as a `serde_json::Value`.
pub fn embeddings_response(
    vectors: &[Vec<f32>],
    public_model: &str,
    usage: &Usage,
    format: EncodingFormat,
) -> Vec<u8> {
    let response = OpenAiEmbeddings {
        data: EmbeddingList { vectors, format },
        model: public_model,
        object: "list",
        usage: OpenAiEmbeddingsUsage {
            prompt_tokens: usage.prompt_tokens,
            total_tokens: usage.prompt_tokens,
        },
    };
    // Writing plain structs, strings and numbers to a Vec cannot fail.
    serde_json::to_vec(&response).unwrap_or_default()
}

#[derive(serde::Serialize)]
struct OpenAiEmbeddings<'a> {
    data: EmbeddingList<'a>,
    model: &'a str,
    object: &'static str,
    usage: OpenAiEmbeddingsUsage,
}

#[derive(serde::Serialize)]
struct OpenAiEmbeddingsUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// `data`: one embedding object per vector, written as it is serialized.
struct EmbeddingList<'a> {
    vectors: &'a [Vec<f32>],
    format: EncodingFormat,
}

impl Serialize for EmbeddingList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.vectors.iter().enumerate().map(|(index, vector)| {
            OpenAiEmbedding {
                embedding: EncodedVector {
                    vector,
                    format: self.format,
                },
                index,
                object: "embedding",
            }
        }))
    }
}

#[derive(serde::Serialize)]
struct OpenAiEmbedding<'a> {
    embedding: EncodedVector<'a>,
    index: usize,
    object: &'static str,
}

/// One vector in OpenAI's shape: numbers (each `f32` printed as the `f64`
/// it widens to, non-finite ones as `null`, as a JSON value holds them), or
/// the base64 of its little-endian bytes.
struct EncodedVector<'a> {
    vector: &'a [f32],
    format: EncodingFormat,
}

impl Serialize for EncodedVector<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.format {
            EncodingFormat::Float => {
                serializer.collect_seq(self.vector.iter().map(|&x| f64::from(x)))
            }
            EncodingFormat::Base64 => {
                let bytes: Vec<u8> = self.vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    fn parse(body: Value) -> Result<EmbeddingsRequest, GatewayError> {
        EmbeddingsRequest::parse(body.to_string().as_bytes())
    }

    #[test]
    fn inputs_of_each_form_are_read() {
        let one = parse(json!({"model": "e", "input": "hello"})).unwrap();
        assert_eq!(one.input, EmbeddingInput::Texts(vec!["hello".into()]));
        assert_eq!(one.encoding_format, EncodingFormat::Float);
        let many = parse(json!({"model": "e", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 256})).unwrap();
        assert_eq!(
            many.input,
            EmbeddingInput::Texts(vec!["a".into(), "b".into()])
        );
        assert_eq!(many.encoding_format, EncodingFormat::Base64);
        assert_eq!(many.dimensions, Some(256));
        let tokens = parse(json!({"model": "e", "input": [1, 2, 3]})).unwrap();
        assert_eq!(tokens.input, EmbeddingInput::Tokens(vec![vec![1, 2, 3]]));
        assert!(tokens.texts("Gemini").is_err());
        let long: Vec<u64> = (0..3000).collect();
        let one_long = parse(json!({"model": "e", "input": long})).unwrap();
        assert_eq!(
            one_long.input,
            EmbeddingInput::Tokens(vec![(0..3000).collect()])
        );
        let too_many: Vec<&str> = vec!["x"; MAX_INPUTS + 1];
        assert!(parse(json!({"model": "e", "input": too_many})).is_err());
        let arrays = parse(json!({"model": "e", "input": [[1, 2], [3]]})).unwrap();
        assert_eq!(
            arrays.input,
            EmbeddingInput::Tokens(vec![vec![1, 2], vec![3]])
        );
    }

    #[test]
    fn bad_requests_name_the_parameter() {
        for (body, param) in [
            (json!({"input": "x"}), "model"),
            (json!({"model": "e"}), "input"),
            (json!({"model": "e", "input": ""}), "input"),
            (json!({"model": "e", "input": []}), "input"),
            (json!({"model": "e", "input": ["a", ""]}), "input"),
            (json!({"model": "e", "input": [["a"]]}), "input"),
            (json!({"model": "e", "input": {"text": "a"}}), "input"),
            (
                json!({"model": "e", "input": "a", "encoding_format": "int8"}),
                "encoding_format",
            ),
            (
                json!({"model": "e", "input": "a", "dimensions": 0}),
                "dimensions",
            ),
        ] {
            let err = parse(body.clone()).unwrap_err();
            assert!(
                matches!(err, GatewayError::InvalidRequest { param: Some(p), .. } if p == param),
                "{body}: {err:?}"
            );
        }
    }

    fn response_value(
        vectors: &[Vec<f32>],
        model: &str,
        usage: &Usage,
        format: EncodingFormat,
    ) -> Value {
        serde_json::from_slice(&embeddings_response(vectors, model, usage, format)).unwrap()
    }

    #[test]
    fn base64_vectors_are_little_endian_f32() {
        let response = response_value(
            &[vec![1.0, -2.5]],
            "e",
            &Usage::new(3, 0),
            EncodingFormat::Base64,
        );
        let encoded = response["data"][0]["embedding"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        assert_eq!(
            bytes,
            [1.0f32.to_le_bytes(), (-2.5f32).to_le_bytes()].concat()
        );
        assert_eq!(
            response["usage"],
            json!({"prompt_tokens": 3, "total_tokens": 3})
        );
        let floats = response_value(&[vec![0.5]], "e", &Usage::new(1, 0), EncodingFormat::Float);
        assert_eq!(
            floats["data"][0],
            json!({"object": "embedding", "index": 0, "embedding": [0.5]})
        );
    }

    /// The response as it was built before, one JSON value per float.
    fn as_values(
        vectors: &[Vec<f32>],
        model: &str,
        usage: &Usage,
        format: EncodingFormat,
    ) -> Value {
        let data: Vec<Value> = vectors
            .iter()
            .enumerate()
            .map(|(index, vector)| {
                let embedding = match format {
                    EncodingFormat::Float => {
                        Value::Array(vector.iter().map(|x| json!(x)).collect())
                    }
                    EncodingFormat::Base64 => {
                        let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                        Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
                    }
                };
                json!({"object": "embedding", "index": index, "embedding": embedding})
            })
            .collect();
        json!({
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens},
        })
    }

    #[test]
    fn the_bytes_are_those_of_the_value_built_response() {
        let vectors = vec![
            vec![0.1, -0.000_123_4, 1e-30, 3.402_823_5e38, 1.0, -0.0, 0.0],
            vec![f32::NAN, f32::INFINITY, f32::MIN_POSITIVE, 12_345.678],
            vec![],
        ];
        for format in [EncodingFormat::Float, EncodingFormat::Base64] {
            let bytes = embeddings_response(&vectors, "m\"odel", &Usage::new(7, 0), format);
            let expected = as_values(&vectors, "m\"odel", &Usage::new(7, 0), format).to_string();
            assert_eq!(String::from_utf8(bytes).unwrap(), expected, "{format:?}");
        }
    }
}
