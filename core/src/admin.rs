//! The admin API, under `admin.path_prefix` (checked before the routes).
//!
//! Every call needs the admin key as `Authorization: Bearer <key>` (only
//! there: `x-api-key` carries consumer keys), whose SHA-256 is configured
//! from a secret and compared in constant time. `docs/admin-openapi.yaml`
//! describes these endpoints; the conformance suite checks it against the
//! running API with schemathesis. Data lives in the `KvStore` (see [`super::store`]); every
//! store call has the `auth.store_timeout_ms` deadline, and a store that
//! fails or does not answer is 503 `store_unavailable`.
//!
//! Creating a consumer is one conditional write (`put_if_absent`): an id
//! that exists (in the config or the store) is 409, never overwritten,
//! also when two creations race. A new key's id index is claimed the same
//! way; on a collision (practically impossible with 128-bit ids) a new key
//! is generated.
//!
//! | Method and path | Does |
//! |---|---|
//! | `POST {prefix}/consumers` | create a consumer (`id`, `metadata`, `allowed_routes`, `allowed_models`, `plan`) |
//! | `GET {prefix}/consumers/{id}` | get a consumer |
//! | `POST {prefix}/consumers/{id}/keys` | create a key (`expires_at` optional, Unix seconds); the key is in this answer only |
//! | `GET {prefix}/consumers/{id}/keys` | list keys: id, prefix, dates, revoked; never the secret or its hash |
//! | `DELETE {prefix}/keys/{key_id}` | revoke a key |
//! | `GET {prefix}/consumers/{id}/usage` | current counters of the consumer's plan limits |

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::api_key::{digest_eq, generate_key, sha256, KeyRecord};
use crate::auth::store::{self, valid_consumer_id, Consumer, InsertKeyError};
use crate::auth::{find_consumer, store_unavailable, timed_kv, AdminConfig, AuthState};
use crate::body::Body;
use crate::config::Config;
use crate::error::GatewayError;
use crate::http::read_body;
use crate::platform::{Clock, Platform};
use crate::quota::{self, Scope, Subject};
use crate::util::hex;

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn store_failure(e: crate::platform::StoreError) -> GatewayError {
    store_unavailable("admin store", e)
}

/// Attempts at storing a new key before giving up (each with a fresh id).
const KEY_INSERT_ATTEMPTS: usize = 3;

fn key_view(record: &KeyRecord) -> Value {
    json!({
        "id": record.id,
        "consumer_id": record.consumer_id,
        "prefix": record.display_prefix(),
        "created_at": record.created_at_unix_s,
        "expires_at": record.expires_at_unix_s,
        "revoked": record.revoked,
    })
}

fn check_admin_key(admin: &AdminConfig, request: &Request<Bytes>) -> Result<(), GatewayError> {
    let headers = request.headers();
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim());
    let Some(presented) = presented else {
        return Err(GatewayError::Unauthorized {
            message: "The admin API needs the admin key: `Authorization: Bearer <admin key>`.",
            invalid_token: false,
        });
    };
    if digest_eq(&hex(&sha256(presented.as_bytes())), &admin.key_sha256) {
        Ok(())
    } else {
        Err(GatewayError::Unauthorized {
            message: "Incorrect admin key.",
            invalid_token: true,
        })
    }
}

/// Largest admin request body (consumers and key requests are small).
pub const MAX_ADMIN_BODY_BYTES: usize = 64 * 1024;

/// A JSON object body (empty means `{}`). An array is refused although
/// serde would read a struct from one (`[]` would have created a key).
fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, GatewayError> {
    let value = if body.is_empty() {
        Value::Object(serde_json::Map::new())
    } else {
        serde_json::from_slice(body).map_err(|e| GatewayError::InvalidJson(e.to_string()))?
    };
    if !value.is_object() {
        return Err(GatewayError::invalid_request(
            "The request body must be a JSON object.",
            None,
        ));
    }
    serde_json::from_value(value).map_err(|e| GatewayError::InvalidJson(e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    #[serde(default)]
    expires_at: Option<u64>,
}

/// Checks a consumer against the config: id shape, known plan, routes and
/// models that exist.
fn validate_consumer(config: &Config, consumer: &Consumer) -> Result<(), GatewayError> {
    if !valid_consumer_id(&consumer.id) {
        return Err(GatewayError::invalid_request(
            "`id` must be 1-64 characters of letters, digits, `.`, `_` and `-`.",
            Some("id"),
        ));
    }
    if let Some(plan) = &consumer.plan {
        if config.plan(plan).is_none() {
            return Err(GatewayError::invalid_request(
                format!("Unknown plan `{plan}`."),
                Some("plan"),
            ));
        }
    }
    for route in consumer.allowed_routes.iter().flatten() {
        if !config.routes.iter().any(|r| &r.name == route) {
            return Err(GatewayError::invalid_request(
                format!("Unknown route `{route}`."),
                Some("allowed_routes"),
            ));
        }
    }
    for model in consumer.allowed_models.iter().flatten() {
        if config.model(model).is_none() {
            return Err(GatewayError::invalid_request(
                format!("Unknown model `{model}`."),
                Some("allowed_models"),
            ));
        }
    }
    Ok(())
}

/// Serves one admin request; `subpath` is the path below the prefix.
/// `request` comes without its body: `body` is read (at most
/// [`MAX_ADMIN_BODY_BYTES`]) once the admin key is checked.
pub(crate) async fn handle_admin<P, B>(
    config: &Config,
    platform: &P,
    state: &AuthState,
    admin: &AdminConfig,
    subpath: &str,
    mut request: Request<Bytes>,
    body: B,
) -> Result<Response<Body>, GatewayError>
where
    P: Platform,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    check_admin_key(admin, &request)?;
    *request.body_mut() = read_body(request.headers(), body, MAX_ADMIN_BODY_BYTES).await?;
    let kv = &timed_kv(&config.auth, platform);
    let method = request.method().clone();
    let segments: Vec<&str> = subpath.trim_matches('/').split('/').collect();
    let not_allowed = |allow: Vec<Method>| GatewayError::MethodNotAllowed {
        method: method.clone(),
        path: request.uri().path().to_owned(),
        allow,
    };
    match segments.as_slice() {
        ["consumers"] if method == Method::POST => {
            let consumer: Consumer = parse_body(request.body())?;
            validate_consumer(config, &consumer)?;
            if find_consumer(config.auth_view(), platform, &consumer.id)
                .await?
                .is_some()
            {
                return Err(GatewayError::Conflict(format!(
                    "Consumer `{}` already exists.",
                    consumer.id
                )));
            }
            if !store::create_consumer(kv, &consumer)
                .await
                .map_err(store_failure)?
            {
                return Err(GatewayError::Conflict(format!(
                    "Consumer `{}` already exists.",
                    consumer.id
                )));
            }
            // A cached "no such consumer" on this instance ends now.
            state.consumers.remove(&consumer.id);
            tracing::info!(consumer = %consumer.id, "admin: consumer created");
            Ok(json_response(StatusCode::CREATED, &json!(consumer)))
        }
        ["consumers"] => Err(not_allowed(vec![Method::POST])),
        ["consumers", id] if method == Method::GET => {
            match find_consumer(config.auth_view(), platform, id).await? {
                Some(consumer) => Ok(json_response(StatusCode::OK, &json!(consumer))),
                None => Err(GatewayError::NotFound(format!("No consumer `{id}`."))),
            }
        }
        ["consumers", _] => Err(not_allowed(vec![Method::GET])),
        ["consumers", id, "keys"] if method == Method::POST => {
            let new_key: NewKey = parse_body(request.body())?;
            if find_consumer(config.auth_view(), platform, id)
                .await?
                .is_none()
            {
                return Err(GatewayError::NotFound(format!("No consumer `{id}`.")));
            }
            let now_s = platform.clock().now_unix_ms() / 1000;
            if new_key.expires_at.is_some_and(|at| at <= now_s) {
                return Err(GatewayError::invalid_request(
                    "`expires_at` is in the past.",
                    Some("expires_at"),
                ));
            }
            for _ in 0..KEY_INSERT_ATTEMPTS {
                let generated = generate_key(platform);
                let record = KeyRecord {
                    id: generated.id.clone(),
                    consumer_id: (*id).to_owned(),
                    key_sha256: generated.sha256_hex,
                    created_at_unix_s: now_s,
                    expires_at_unix_s: new_key.expires_at,
                    revoked: false,
                };
                match store::insert_key(kv, &record).await {
                    Ok(()) => {
                        tracing::info!(consumer = %id, key_id = %record.id, "admin: key created");
                        let mut view = key_view(&record);
                        view["key"] = Value::String(generated.key);
                        return Ok(json_response(StatusCode::CREATED, &view));
                    }
                    Err(InsertKeyError::Taken) => {
                        tracing::warn!(consumer = %id, key_id = %record.id, "admin: key id taken; generating another key");
                    }
                    Err(InsertKeyError::Store(e)) => return Err(store_failure(e)),
                }
            }
            Err(GatewayError::internal(
                "admin: every generated key id was taken (random source broken?)",
            ))
        }
        ["consumers", id, "keys"] if method == Method::GET => {
            if find_consumer(config.auth_view(), platform, id)
                .await?
                .is_none()
            {
                return Err(GatewayError::NotFound(format!("No consumer `{id}`.")));
            }
            let keys = store::list_keys(kv, id).await.map_err(store_failure)?;
            let data: Vec<Value> = keys.iter().map(key_view).collect();
            Ok(json_response(StatusCode::OK, &json!({ "data": data })))
        }
        ["consumers", _, "keys"] => Err(not_allowed(vec![Method::GET, Method::POST])),
        ["consumers", id, "usage"] if method == Method::GET => {
            let Some(consumer) = find_consumer(config.auth_view(), platform, id).await? else {
                return Err(GatewayError::NotFound(format!("No consumer `{id}`.")));
            };
            let mut limits = Vec::new();
            if let Some(plan) = consumer.plan.as_deref().and_then(|p| config.plan(p)) {
                let subject = |route: &str, model: Option<&str>| Subject {
                    consumer: Some(consumer.id.clone()),
                    route: route.to_owned(),
                    model: model.map(str::to_owned),
                    ip: None,
                };
                limits.extend(
                    quota::current_usage(platform, plan, &subject("", None), Scope::Consumer).await,
                );
                for route in &config.routes {
                    limits.extend(
                        quota::current_usage(
                            platform,
                            plan,
                            &subject(&route.name, None),
                            Scope::ConsumerRoute,
                        )
                        .await,
                    );
                }
                for model in &config.models {
                    limits.extend(
                        quota::current_usage(
                            platform,
                            plan,
                            &subject("", Some(&model.name)),
                            Scope::ConsumerModel,
                        )
                        .await,
                    );
                }
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({ "consumer_id": consumer.id, "plan": consumer.plan, "limits": limits }),
            ))
        }
        ["keys", key_id] if method == Method::DELETE => {
            let Some(mut record) = store::get_key_by_id(kv, key_id)
                .await
                .map_err(store_failure)?
            else {
                return Err(GatewayError::NotFound(format!("No key `{key_id}`.")));
            };
            record.revoked = true;
            store::update_key(kv, &record)
                .await
                .map_err(store_failure)?;
            // This instance stops accepting it at once; others within the cache TTL.
            state.keys.remove(&record.key_sha256);
            tracing::info!(consumer = %record.consumer_id, key_id = %record.id, "admin: key revoked");
            Ok(json_response(StatusCode::OK, &key_view(&record)))
        }
        ["keys", _] => Err(not_allowed(vec![Method::DELETE])),
        _ => Err(GatewayError::NotFound("No such admin endpoint.".into())),
    }
}
