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
}

impl KvStore for DynamoKv {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ATTR_PK, AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        let Some(item) = output.item else {
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
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("PutItem", aws_sdk_dynamodb::error::DisplayErrorContext(e)))
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
