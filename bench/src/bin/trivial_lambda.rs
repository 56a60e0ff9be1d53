//! The Lambda runtime's floor for `scripts/bench`: a `lambda_http` function
//! that answers every request with a fixed chat completion, through the same
//! streaming runtime entry point as the gateway
//! (`run_with_streaming_response`), so the bench can show what the runtime
//! (or `cargo lambda watch`) costs before the gateway does any work.

use lambda_http::{service_fn, Body, Error, Request, Response};

const REPLY: &str = r#"{"id":"chatcmpl-trivial","object":"chat.completion","created":1764460800,"model":"trivial","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;

async fn answer(_request: Request) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(REPLY))?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run_with_streaming_response(service_fn(answer)).await
}
