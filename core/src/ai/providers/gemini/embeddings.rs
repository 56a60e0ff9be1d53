//! Texts → a Gemini `batchEmbedContents` request body.

use serde_json::{json, Value};

/// The pure embeddings mapping: texts → a `batchEmbedContents` body.
pub fn gemini_embeddings_request(
    texts: &[String],
    upstream_model: &str,
    dimensions: Option<u64>,
) -> Value {
    let requests: Vec<Value> = texts
        .iter()
        .map(|text| {
            let mut request = json!({"model": format!("models/{upstream_model}"), "content": {"parts": [{"text": text}]}});
            if let Some(dimensions) = dimensions {
                request["outputDimensionality"] = json!(dimensions);
            }
            request
        })
        .collect();
    json!({"requests": requests})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_request_names_the_model_per_text() {
        let texts = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(
            gemini_embeddings_request(&texts, "gemini-embedding-001", Some(768)),
            json!({"requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 768},
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 768},
            ]})
        );
    }
}
