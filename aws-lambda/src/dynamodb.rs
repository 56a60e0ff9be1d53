//! The `KvStore` port on a DynamoDB table (consumers, API keys; later
//! quota counters share the table).
//!
//! Table schema (Terraform creates it, see `infra/`): partition key `pk`
//! (string), no sort key; items carry `value` (binary) and, when they
//! expire, `expires_at` (number, Unix seconds) — the table's TTL attribute.
//! TTL deletion is lazy, so reads treat an item past `expires_at` as absent.
//! Reads are strongly consistent: a revocation is visible to the next read.

use std::time::Duration;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use bytes::Bytes;
use gateway_core::platform::{Clock, KvStore, StoreError};

use crate::platform::TokioClock;

pub const ATTR_PK: &str = "pk";
pub const ATTR_VALUE: &str = "value";
pub const ATTR_EXPIRES_AT: &str = "expires_at";

#[derive(Debug, Clone)]
pub struct DynamoKv {
    client: Client,
    table: String,
}

fn store_error(op: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError(format!("dynamodb {op}: {err}"))
}

impl DynamoKv {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    fn put_request(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(ATTR_PK, AttributeValue::S(key.to_owned()))
            .item(ATTR_VALUE, AttributeValue::B(Blob::new(value.to_vec())));
        if let Some(ttl) = ttl {
            let at = TokioClock.now_unix_ms() / 1000 + ttl.as_secs().max(1);
            request = request.item(ATTR_EXPIRES_AT, AttributeValue::N(at.to_string()));
        }
        request
    }
}

type Item = std::collections::HashMap<String, AttributeValue>;

/// A strongly consistent `GetItem` of `key`.
async fn get_item(client: &Client, table: &str, key: &str) -> Result<Option<Item>, StoreError> {
    client
        .get_item()
        .table_name(table)
        .key(ATTR_PK, AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map(|output| output.item)
        .map_err(|e| store_error("GetItem", aws_sdk_dynamodb::error::DisplayErrorContext(e)))
}

impl KvStore for DynamoKv {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let Some(item) = get_item(&self.client, &self.table, key).await? else {
            return Ok(None);
        };
        let now_s = TokioClock.now_unix_ms() / 1000;
        let expired = item
            .get(ATTR_EXPIRES_AT)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|at| at <= now_s);
        if expired {
            return Ok(None);
        }
        match item.get(ATTR_VALUE) {
            Some(AttributeValue::B(blob)) => Ok(Some(Bytes::copy_from_slice(blob.as_ref()))),
            _ => Err(StoreError(format!(
                "item `{key}` has no binary `{ATTR_VALUE}`"
            ))),
        }
    }

    async fn put(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), StoreError> {
        self.put_request(key, value, ttl)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("PutItem", aws_sdk_dynamodb::error::DisplayErrorContext(e)))
    }

    /// One conditional `PutItem`: `attribute_not_exists(pk)`, or an item
    /// already past its `expires_at` (TTL deletion is lazy, and `get`
    /// treats such an item as absent). Atomic across all instances.
    async fn put_if_absent(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let now_s = TokioClock.now_unix_ms() / 1000;
        let result = self
            .put_request(key, value, ttl)
            .condition_expression("attribute_not_exists(#pk) OR #exp <= :now")
            .expression_attribute_names("#pk", ATTR_PK)
            .expression_attribute_names("#exp", ATTR_EXPIRES_AT)
            .expression_attribute_values(":now", AttributeValue::N(now_s.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(error) => Err(store_error(
                "PutItem",
                aws_sdk_dynamodb::error::DisplayErrorContext(error),
            )),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(ATTR_PK, AttributeValue::S(key.to_owned()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                store_error(
                    "DeleteItem",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e),
                )
            })
    }
}

/// Attribute holding a quota counter.
pub const ATTR_COUNT: &str = "n";

/// The `QuotaStore` port on the same table: one item per counter key
/// (`pk` = the core's key, which names plan, limit, scope and window).
///
/// `consume` is one conditional `UpdateItem`:
/// `ADD n :amount` if `attribute_not_exists(n) OR (n <= :limit - :amount AND
/// expires_at > :now)`, so concurrent calls from any number of instances
/// never admit more than the limit. A refusal costs a second read
/// (`GetItem`) to report the counter; when that read finds the counter
/// expired (TTL deletion is lazy: items linger up to days), a conditional
/// write on the expired `expires_at` restarts it. A zero amount is a read
/// only. Items expire through the table's TTL on `expires_at`.
#[derive(Debug, Clone)]
pub struct DynamoQuota {
    client: Client,
    table: String,
}

/// A counter as stored: its count and `expires_at` (Unix seconds).
#[derive(Debug, Clone, Copy)]
struct StoredCounter {
    count: i128,
    expires_at_s: Option<u64>,
}

impl StoredCounter {
    /// Whether the counter no longer counts at `now_ms` (no expiry: an item
    /// this code did not write; treated as expired so it cannot block).
    fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_s
            .is_none_or(|at| at.saturating_mul(1000) <= now_ms)
    }

    fn used(&self) -> u64 {
        u64::try_from(self.count.max(0)).unwrap_or(u64::MAX)
    }
}

/// Attempts of the consume loop (a lost reset race retries).
const CONSUME_ATTEMPTS: usize = 4;

fn is_condition_failure<E, R>(error: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    error
        .as_service_error()
        .and_then(aws_sdk_dynamodb::error::ProvideErrorMetadata::code)
        == Some("ConditionalCheckFailedException")
}

impl DynamoQuota {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    /// The stored counter, `None` when there is none.
    async fn read_counter(&self, key: &str) -> Result<Option<StoredCounter>, StoreError> {
        let item = get_item(&self.client, &self.table, key).await?;
        Ok(count_of(item.as_ref()).map(|count| StoredCounter {
            count,
            expires_at_s: item
                .as_ref()
                .and_then(|item| item.get(ATTR_EXPIRES_AT))
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok()),
        }))
    }

    /// The counter's value now: 0 when missing or expired.
    async fn read(&self, key: &str, now_ms: u64) -> Result<u64, StoreError> {
        Ok(self
            .read_counter(key)
            .await?
            .filter(|c| !c.expired(now_ms))
            .map_or(0, |c| c.used()))
    }

    /// Restarts the expired counter `stale` at `amount`; `false` when another
    /// call changed it first.
    async fn restart(
        &self,
        key: &str,
        stale: StoredCounter,
        amount: u64,
        expires_at_s: u64,
    ) -> Result<bool, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ATTR_PK, AttributeValue::S(key.to_owned()))
            .update_expression("SET #n = :amount, #exp = :exp")
            .expression_attribute_names("#n", ATTR_COUNT)
            .expression_attribute_names("#exp", ATTR_EXPIRES_AT)
            .expression_attribute_values(":amount", AttributeValue::N(amount.to_string()))
            .expression_attribute_values(":exp", AttributeValue::N(expires_at_s.to_string()));
        request = match stale.expires_at_s {
            Some(at) => request
                .condition_expression("#exp = :stale")
                .expression_attribute_values(":stale", AttributeValue::N(at.to_string())),
            None => {
                request.condition_expression("attribute_exists(#n) AND attribute_not_exists(#exp)")
            }
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(error) if is_condition_failure(&error) => Ok(false),
            Err(error) => Err(store_error(
                "UpdateItem",
                aws_sdk_dynamodb::error::DisplayErrorContext(error),
            )),
        }
    }
}

fn count_of(
    attributes: Option<&std::collections::HashMap<String, AttributeValue>>,
) -> Option<i128> {
    attributes?.get(ATTR_COUNT)?.as_n().ok()?.parse().ok()
}

impl gateway_core::platform::QuotaStore for DynamoQuota {
    async fn consume(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        expires_at_unix_ms: u64,
    ) -> Result<gateway_core::platform::Consumed, StoreError> {
        use gateway_core::platform::Consumed;
        let now_ms = TokioClock.now_unix_ms();
        if amount == 0 || amount > limit {
            let used = self.read(key, now_ms).await?;
            return Ok(Consumed {
                admitted: amount == 0 && used <= limit,
                used,
            });
        }
        let expires_at_s = expires_at_unix_ms.div_ceil(1000);
        for _ in 0..CONSUME_ATTEMPTS {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(ATTR_PK, AttributeValue::S(key.to_owned()))
                .update_expression("ADD #n :amount SET #exp = if_not_exists(#exp, :exp)")
                .condition_expression(
                    "attribute_not_exists(#n) OR (#n <= :max_before AND #exp > :now)",
                )
                .expression_attribute_names("#n", ATTR_COUNT)
                .expression_attribute_names("#exp", ATTR_EXPIRES_AT)
                .expression_attribute_values(":amount", AttributeValue::N(amount.to_string()))
                .expression_attribute_values(
                    ":max_before",
                    AttributeValue::N((limit - amount).to_string()),
                )
                .expression_attribute_values(":exp", AttributeValue::N(expires_at_s.to_string()))
                .expression_attribute_values(":now", AttributeValue::N((now_ms / 1000).to_string()))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
                .send()
                .await;
            match result {
                Ok(output) => {
                    let used = match count_of(output.attributes.as_ref()) {
                        Some(used) => u64::try_from(used.max(0)).unwrap_or(u64::MAX),
                        None => self.read(key, now_ms).await?,
                    };
                    return Ok(Consumed {
                        admitted: true,
                        used,
                    });
                }
                Err(error) if is_condition_failure(&error) => {
                    // Deleted (TTL) between the two calls: try again.
                    let Some(counter) = self.read_counter(key).await? else {
                        continue;
                    };
                    if !counter.expired(now_ms) {
                        return Ok(Consumed {
                            admitted: false,
                            used: counter.used(),
                        });
                    }
                    if self.restart(key, counter, amount, expires_at_s).await? {
                        return Ok(Consumed {
                            admitted: true,
                            used: amount,
                        });
                    }
                    // Another call restarted or changed it: try again.
                }
                Err(error) => {
                    return Err(store_error(
                        "UpdateItem",
                        aws_sdk_dynamodb::error::DisplayErrorContext(error),
                    ))
                }
            }
        }
        Err(StoreError(format!(
            "dynamodb consume: `{key}` kept changing under {CONSUME_ATTEMPTS} attempts"
        )))
    }

    async fn refund(&self, key: &str, amount: u64) -> Result<u64, StoreError> {
        let now_ms = TokioClock.now_unix_ms();
        // Only a live counter is refunded: a missing one stays missing, an
        // expired one counts from zero at its next consume anyway.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ATTR_PK, AttributeValue::S(key.to_owned()))
            .update_expression("ADD #n :negative")
            .condition_expression("attribute_exists(#n) AND #exp > :now")
            .expression_attribute_names("#n", ATTR_COUNT)
            .expression_attribute_names("#exp", ATTR_EXPIRES_AT)
            .expression_attribute_values(":negative", AttributeValue::N(format!("-{amount}")))
            .expression_attribute_values(":now", AttributeValue::N((now_ms / 1000).to_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        let after = match result {
            Ok(output) => count_of(output.attributes.as_ref()).unwrap_or(0),
            Err(error) if is_condition_failure(&error) => return Ok(0),
            Err(error) => {
                return Err(store_error(
                    "UpdateItem",
                    aws_sdk_dynamodb::error::DisplayErrorContext(error),
                ))
            }
        };
        if after < 0 {
            // Refunds saturate at zero (a counter that expired and restarted).
            let _ = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(ATTR_PK, AttributeValue::S(key.to_owned()))
                .update_expression("SET #n = :zero")
                .condition_expression("#n < :zero")
                .expression_attribute_names("#n", ATTR_COUNT)
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .send()
                .await;
            return Ok(0);
        }
        Ok(u64::try_from(after).unwrap_or(u64::MAX))
    }
}
