//! The core's store suites on the DynamoDB stores of the Lambda adapter,
//! against a local DynamoDB emulator (moto, from the project's venv), plus
//! the concurrency check: 200 concurrent consumes against a limit of 50.

use std::sync::Arc;

use gateway_aws_lambda::dynamodb::{DynamoKv, DynamoQuota};
use gateway_core::platform::QuotaStore;
use gateway_core::testing::{kv_store_suite, quota_store_suite};
use gateway_tests::runtime::start_aws_emulator;

async fn client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    // Static test credentials; never the instance metadata service.
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&config)
}

#[test]
fn dynamodb_stores_pass_the_store_suites() {
    let emulator = start_aws_emulator("store-suite", &[]).unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = client(&emulator.endpoint).await;
        let quota = DynamoQuota::new(client.clone(), emulator.table.clone());
        assert_eq!(quota_store_suite::run_all(&quota, "suite").await, 7);
        let kv = DynamoKv::new(client, emulator.table.clone());
        kv_store_suite::put_get_overwrite_delete(&kv, "suite-kv").await;
        kv_store_suite::put_if_absent_never_overwrites(&kv, "suite-kv-claim").await;
        kv_store_suite::put_if_absent_has_one_winner(&kv, "suite-kv-race", 20).await;
    });
}

#[test]
fn dynamodb_quota_admits_exactly_the_limit_under_concurrency() {
    let emulator = start_aws_emulator("store-concurrency", &[]).unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let admitted = runtime.block_on(async {
        let quota = Arc::new(DynamoQuota::new(
            client(&emulator.endpoint).await,
            emulator.table.clone(),
        ));
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let quota = Arc::clone(&quota);
                tokio::spawn(async move {
                    quota
                        .consume("hot", 1, 50, u64::MAX / 2)
                        .await
                        .expect("consume")
                        .admitted
                })
            })
            .collect();
        let mut admitted = 0;
        for task in tasks {
            if task.await.expect("task") {
                admitted += 1;
            }
        }
        admitted
    });
    assert_eq!(admitted, 50);
}
