//! Titan and Cohere embeddings over InvokeModel: model family, bodies, vectors and tokens.

use http::HeaderMap;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

/// Which InvokeModel body an embedding model takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingFamily {
    /// Amazon Titan Text Embeddings (one text per call; `inputTextTokenCount`).
    Titan,
    /// Cohere Embed (up to 96 texts per call).
    Cohere,
}

impl EmbeddingFamily {
    pub fn of(upstream_model: &str) -> Self {
        // Cross-region profile ids prefix the vendor (`us.cohere.embed-…`).
        if upstream_model.contains("cohere.embed") {
            Self::Cohere
        } else {
            Self::Titan
        }
    }
}

/// Texts per Cohere call, as Bedrock documents.
const COHERE_BATCH: usize = 96;

/// The pure embeddings mapping: the InvokeModel bodies for `texts`.
/// References: <https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html>,
/// <https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-embed.html>.
pub fn bedrock_embedding_bodies(
    family: EmbeddingFamily,
    texts: &[String],
    dimensions: Option<u64>,
) -> Vec<Value> {
    match family {
        EmbeddingFamily::Titan => texts
            .iter()
            .map(|text| {
                let mut body = json!({"inputText": text});
                if let Some(dimensions) = dimensions {
                    body["dimensions"] = json!(dimensions);
                }
                body
            })
            .collect(),
        EmbeddingFamily::Cohere => texts
            .chunks(COHERE_BATCH)
            .map(|batch| json!({"texts": batch, "input_type": "search_document", "truncate": "NONE"}))
            .collect(),
    }
}

/// Titan's InvokeModel answer (the parts read; vectors straight to `f32`).
#[derive(Deserialize)]
struct BedrockTitanEmbedding {
    embedding: Option<Vec<f32>>,
    #[serde(rename = "inputTextTokenCount")]
    input_text_token_count: Option<u64>,
}

/// Cohere's InvokeModel answer (`embeddings_floats`).
#[derive(Deserialize)]
struct BedrockCohereEmbeddings {
    embeddings: Option<Vec<Vec<f32>>>,
}

/// Vectors and input tokens of one InvokeModel answer, read from
/// `response` (the body's JSON deserializer); `None` when it lacks either.
pub(super) fn embedding_answer<'de, D: Deserializer<'de>>(
    family: EmbeddingFamily,
    headers: &HeaderMap,
    response: D,
) -> Option<(Vec<Vec<f32>>, u64)> {
    let header_tokens = headers
        .get("x-amzn-bedrock-input-token-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    match family {
        EmbeddingFamily::Titan => {
            let answer = BedrockTitanEmbedding::deserialize(response).ok()?;
            let tokens = answer.input_text_token_count.or(header_tokens)?;
            Some((vec![answer.embedding?], tokens))
        }
        EmbeddingFamily::Cohere => {
            let answer = BedrockCohereEmbeddings::deserialize(response).ok()?;
            Some((answer.embeddings?, header_tokens?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn embedding_bodies_and_answers_per_family() {
        let texts = vec!["a".to_owned(), "bb".to_owned()];
        assert_eq!(
            EmbeddingFamily::of("amazon.titan-embed-text-v2:0"),
            EmbeddingFamily::Titan
        );
        assert_eq!(
            EmbeddingFamily::of("us.cohere.embed-english-v3"),
            EmbeddingFamily::Cohere
        );
        assert_eq!(
            bedrock_embedding_bodies(EmbeddingFamily::Titan, &texts, Some(256)),
            vec![
                json!({"inputText": "a", "dimensions": 256}),
                json!({"inputText": "bb", "dimensions": 256})
            ]
        );
        let many: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let cohere = bedrock_embedding_bodies(EmbeddingFamily::Cohere, &many, None);
        assert_eq!(cohere.len(), 2, "96 texts per Cohere call");
        assert_eq!(cohere[0]["texts"].as_array().unwrap().len(), 96);
        assert_eq!(cohere[0]["input_type"], "search_document");

        let titan = json!({"embedding": [0.25, -0.5], "inputTextTokenCount": 7});
        assert_eq!(
            embedding_answer(EmbeddingFamily::Titan, &HeaderMap::new(), &titan),
            Some((vec![vec![0.25, -0.5]], 7))
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amzn-bedrock-input-token-count",
            HeaderValue::from_static("9"),
        );
        let cohere =
            json!({"embeddings": [[0.5], [1.0]], "id": "x", "response_type": "embeddings_floats"});
        assert_eq!(
            embedding_answer(EmbeddingFamily::Cohere, &headers, &cohere),
            Some((vec![vec![0.5], vec![1.0]], 9))
        );
        assert_eq!(
            embedding_answer(EmbeddingFamily::Cohere, &HeaderMap::new(), &cohere),
            None,
            "no token count: refused, not guessed"
        );
    }
}
