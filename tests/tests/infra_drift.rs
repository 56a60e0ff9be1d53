//! Infra and code cannot drift apart: the Terraform in `infra/` and
//! `cloudflare-worker/wrangler.toml` must use the environment variables,
//! bindings, Durable Object class, table schema, runtime and architecture
//! that the adapters read (their constants are the source of truth).

use std::path::{Path, PathBuf};

use gateway_aws_lambda::dynamodb::{ATTR_EXPIRES_AT, ATTR_PK};
use gateway_aws_lambda::{
    ENV_CONFIG_PATH, ENV_SSM_PREFIX, ENV_STORE, ENV_TABLE, LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME,
};
use gateway_cloudflare_worker::{ENV_CONFIG_KV_KEY, KV_BINDING, QUOTA_BINDING, QUOTA_CLASS};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A Terraform file as JSON-like data (blocks become nested objects;
/// references stay as `${…}` strings).
fn terraform(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let value: hcl::Value =
        hcl::from_str(&text).unwrap_or_else(|e| panic!("{path} is not valid HCL: {e}"));
    serde_json::to_value(value).expect("HCL value as JSON")
}

fn wrangler() -> Value {
    let text = std::fs::read_to_string(root().join("cloudflare-worker/wrangler.toml"))
        .expect("wrangler.toml");
    let value: toml::Value = toml::from_str(&text).expect("wrangler.toml is valid TOML");
    serde_json::to_value(value).expect("TOML as JSON")
}

/// Blocks that may appear once (object) or several times (array).
fn all(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

#[test]
fn lambda_function_matches_the_adapter() {
    let main = terraform("infra/modules/aws-lambda/main.tf");
    let function = &main["resource"]["aws_lambda_function"]["gateway"];
    assert_eq!(function["runtime"], LAMBDA_RUNTIME, "runtime");
    assert_eq!(function["handler"], "bootstrap", "handler");
    let environment = all(&function["environment"]);
    let variables = environment[0]["variables"]
        .as_object()
        .expect("environment.variables");
    let mut names: Vec<&str> = variables.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut expected = vec![
        ENV_CONFIG_PATH,
        ENV_SSM_PREFIX,
        ENV_STORE,
        ENV_TABLE,
        "RUST_LOG",
    ];
    expected.sort_unstable();
    assert_eq!(
        names, expected,
        "the Lambda environment must set exactly the variables the adapter reads"
    );
    assert_eq!(variables[ENV_STORE], "dynamodb");

    let variables_tf = terraform("infra/modules/aws-lambda/variables.tf");
    assert_eq!(
        variables_tf["variable"]["architecture"]["default"], LAMBDA_ARCHITECTURE,
        "default architecture"
    );

    let url = &main["resource"]["aws_lambda_function_url"]["gateway"];
    assert_eq!(
        url["invoke_mode"], "RESPONSE_STREAM",
        "SSE needs a streaming Function URL"
    );
}

#[test]
fn dynamodb_table_matches_the_store() {
    let main = terraform("infra/modules/aws-lambda/main.tf");
    let table = &main["resource"]["aws_dynamodb_table"]["gateway"];
    assert_eq!(table["hash_key"], ATTR_PK);
    let attributes = all(&table["attribute"]);
    assert!(
        attributes
            .iter()
            .any(|a| a["name"] == ATTR_PK && a["type"] == "S"),
        "{attributes:?}"
    );
    assert_eq!(all(&table["ttl"])[0]["attribute_name"], ATTR_EXPIRES_AT);
}

/// The Terraform module deploys the script with `wrangler deploy` and a
/// generated Wrangler config (`locals.wrangler_config`): it must bind what
/// the adapter reads and carry the same Durable Object migrations as
/// wrangler.toml (wrangler sends only those after the Worker's current tag).
#[test]
fn worker_deploy_config_matches_the_adapter() {
    let main = terraform("infra/modules/cloudflare-worker/main.tf");
    let config = &all(&main["locals"])
        .into_iter()
        .find(|l| !l["wrangler_config"].is_null())
        .expect("locals.wrangler_config in infra/modules/cloudflare-worker/main.tf")
        ["wrangler_config"];
    let kv = config["kv_namespaces"].as_array().expect("kv_namespaces");
    assert!(kv.iter().any(|k| k["binding"] == KV_BINDING), "{kv:?}");
    let durable = config["durable_objects"]["bindings"]
        .as_array()
        .expect("durable_objects.bindings");
    assert!(
        durable
            .iter()
            .any(|b| b["name"] == QUOTA_BINDING && b["class_name"] == QUOTA_CLASS),
        "{durable:?}"
    );
    assert_eq!(
        config["vars"][ENV_CONFIG_KV_KEY], "${cloudflare_workers_kv.config.key_name}",
        "the Worker must be told the KV key of the config Terraform writes: {}",
        config["vars"]
    );
    let entry = &main["resource"]["cloudflare_workers_kv"]["config"];
    assert_eq!(
        entry["namespace_id"], "${cloudflare_workers_kv_namespace.gateway.id}",
        "the config goes into the namespace bound as {KV_BINDING}"
    );
    assert!(
        config["main"]
            .as_str()
            .is_some_and(|m| m.ends_with("/index.js")),
        "{}",
        config["main"]
    );
    assert_eq!(
        config["migrations"],
        wrangler()["migrations"],
        "Terraform's deploy and wrangler.toml must carry the same Durable Object migrations"
    );
    assert_eq!(
        config["compatibility_date"], "${var.compatibility_date}",
        "the compatibility date comes from the variable"
    );
}

#[test]
fn wrangler_toml_matches_the_adapter_and_terraform() {
    let config = wrangler();
    let kv = config["kv_namespaces"].as_array().expect("kv_namespaces");
    assert!(kv.iter().any(|k| k["binding"] == KV_BINDING), "{kv:?}");
    let durable = config["durable_objects"]["bindings"]
        .as_array()
        .expect("durable_objects.bindings");
    assert!(
        durable
            .iter()
            .any(|b| b["name"] == QUOTA_BINDING && b["class_name"] == QUOTA_CLASS),
        "{durable:?}"
    );
    let migrations = config["migrations"].to_string();
    assert!(migrations.contains(QUOTA_CLASS), "{migrations}");
    let variables = terraform("infra/modules/cloudflare-worker/variables.tf");
    assert_eq!(
        variables["variable"]["compatibility_date"]["default"], config["compatibility_date"],
        "wrangler.toml and Terraform must deploy with the same compatibility date"
    );
}

/// The Wrangler config Terraform generates is one the pinned wrangler
/// accepts: `wrangler deploy --dry-run` with it (references replaced by
/// sample values, a stand-in bundle of `index.js` importing
/// `index_bg.wasm`, and a secrets file as the module passes them) must
/// upload both modules and show every binding.
#[test]
fn generated_wrangler_config_passes_wrangler_dry_run() {
    let worker_dir = root().join("cloudflare-worker");
    let wrangler = worker_dir.join("node_modules/.bin/wrangler");
    assert!(
        wrangler.is_file(),
        "{} is missing: run scripts/bootstrap (npm ci in cloudflare-worker/)",
        wrangler.display()
    );
    let main = terraform("infra/modules/cloudflare-worker/main.tf");
    let variables = terraform("infra/modules/cloudflare-worker/variables.tf");
    let mut config = all(&main["locals"])
        .into_iter()
        .find(|l| !l["wrangler_config"].is_null())
        .expect("locals.wrangler_config")["wrangler_config"]
        .clone();

    let dir = std::env::temp_dir().join(format!("infra-wrangler-dry-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("build")).unwrap();
    std::fs::write(
        dir.join("build/index.js"),
        "import wasm from \"./index_bg.wasm\";\n\
         export class QuotaCounter { async fetch() { return new Response(\"\"); } }\n\
         export default { async fetch() { return new Response(String(wasm)); } };\n",
    )
    .unwrap();
    std::fs::write(dir.join("build/index_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();

    let build = dir.join("build").display().to_string();
    let date = variables["variable"]["compatibility_date"]["default"].clone();
    fn substitute(value: &mut Value, sample: &dyn Fn(&str) -> Option<Value>) {
        match value {
            Value::String(s) if s.contains("${") => {
                *value = sample(s).unwrap_or_else(|| {
                    panic!("wrangler_config uses {s}: give it a sample value in this test")
                });
            }
            Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, sample)),
            Value::Object(map) => map.values_mut().for_each(|v| substitute(v, sample)),
            _ => {}
        }
    }
    substitute(&mut config, &|reference| {
        Some(match reference {
            "${var.name}" => Value::from("ai-gateway"),
            "${local.build_dir}/index.js" => Value::from(format!("{build}/index.js")),
            "${var.compatibility_date}" => date.clone(),
            "${var.workers_dev}" => Value::Bool(true),
            "${cloudflare_workers_kv_namespace.gateway.id}" => {
                Value::from("0123456789abcdef0123456789abcdef")
            }
            "${cloudflare_workers_kv.config.key_name}" => Value::from("gateway-config/sample"),
            _ => return None,
        })
    });
    std::fs::write(dir.join("wrangler.json"), config.to_string()).unwrap();
    std::fs::write(
        dir.join("secrets.json"),
        r#"{"OPENAI_API_KEY":"sk-sample"}"#,
    )
    .unwrap();

    let output = std::process::Command::new(&wrangler)
        .arg("deploy")
        .arg("--config")
        .arg(dir.join("wrangler.json"))
        .arg("--secrets-file")
        .arg(dir.join("secrets.json"))
        .arg("--dry-run")
        .arg("--outdir")
        .arg(dir.join("out"))
        .current_dir(&worker_dir)
        .env("CI", "true")
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_SEND_ERROR_REPORTS", "false")
        .env("CLOUDFLARE_ACCOUNT_ID", "0123456789abcdef0123456789abcdef")
        .output()
        .expect("run wrangler");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let uploaded: Vec<String> = std::fs::read_dir(dir.join("out"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        output.status.success(),
        "wrangler deploy --dry-run failed:\n{log}"
    );
    for binding in [
        KV_BINDING,
        QUOTA_BINDING,
        ENV_CONFIG_KV_KEY,
        "OPENAI_API_KEY",
    ] {
        assert!(log.contains(binding), "binding {binding} missing:\n{log}");
    }
    assert!(
        uploaded.iter().any(|f| f.ends_with("index_bg.wasm")),
        "the wasm module must be uploaded too: {uploaded:?}\n{log}"
    );
}
