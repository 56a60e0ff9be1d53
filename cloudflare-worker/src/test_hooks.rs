//! Test-only routes (feature `test-hooks`, never in a release build): they
//! run the core's store suites against the real KV and Durable Object
//! stores inside workerd, and expose a raw `consume` for concurrency tests.

use bytes::Bytes;
use gateway_core::platform::{Platform, QuotaStore};
use gateway_core::testing::{kv_store_suite, quota_store_suite};
use gateway_core::Body;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::json;
use worker::HttpRequest;

use crate::platform::WorkerPlatform;

pub const PREFIX: &str = "/__test/";

#[derive(Deserialize)]
struct ConsumeCall {
    key: String,
    amount: u64,
    limit: u64,
}

#[derive(Deserialize)]
struct SuiteCall {
    /// Keys are prefixed with it so repeated runs never share state.
    prefix: String,
}

fn json_response(status: u16, value: &serde_json::Value) -> http::Response<Body> {
    let mut response = http::Response::new(Body::from(value.to_string()));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response
}

pub async fn handle(
    request: HttpRequest,
    platform: &WorkerPlatform,
) -> worker::Result<http::Response<Body>> {
    let path = request.uri().path().to_owned();
    let body: Bytes = request.into_body().collect().await?.to_bytes();
    let far_future = worker::Date::now().as_millis() + 3_600_000;
    Ok(match path.trim_start_matches(PREFIX) {
        "quota/consume" => {
            let Ok(call) = serde_json::from_slice::<ConsumeCall>(&body) else {
                return Ok(json_response(
                    400,
                    &json!({"error": "expected {key, amount, limit}"}),
                ));
            };
            match platform
                .quota()
                .consume(&call.key, call.amount, call.limit, far_future)
                .await
            {
                Ok(consumed) => json_response(
                    200,
                    &json!({"admitted": consumed.admitted, "used": consumed.used}),
                ),
                Err(e) => json_response(503, &json!({"error": e.to_string()})),
            }
        }
        "quota/suite" => {
            let Ok(call) = serde_json::from_slice::<SuiteCall>(&body) else {
                return Ok(json_response(400, &json!({"error": "expected {prefix}"})));
            };
            let passed = quota_store_suite::run_all(platform.quota(), &call.prefix).await;
            json_response(200, &json!({"passed": passed}))
        }
        "kv/suite" => {
            let Ok(call) = serde_json::from_slice::<SuiteCall>(&body) else {
                return Ok(json_response(400, &json!({"error": "expected {prefix}"})));
            };
            kv_store_suite::put_get_overwrite_delete(platform.kv(), &call.prefix).await;
            kv_store_suite::put_if_absent_never_overwrites(
                platform.kv(),
                &format!("{}-claim", call.prefix),
            )
            .await;
            kv_store_suite::put_if_absent_has_one_winner(
                platform.kv(),
                &format!("{}-race", call.prefix),
                20,
            )
            .await;
            json_response(200, &json!({"passed": 3}))
        }
        _ => json_response(404, &json!({"error": "unknown test hook"})),
    })
}
