# The gateway on Cloudflare Workers: the worker-build bundle (ES module +
# wasm), a KV namespace for consumers and API keys, the QuotaCounter Durable
# Object class for quota counters, the config as a variable, provider keys
# as secrets.
#
# Binding names, the Durable Object class and the migration are the contract
# with the adapter (cloudflare-worker/src/lib.rs) and wrangler.toml;
# tests/tests/infra_drift.rs fails when they differ.

resource "cloudflare_workers_kv_namespace" "gateway" {
  account_id = var.account_id
  title      = "${var.name}-kv"
}

locals {
  secret_bindings = [
    for secret_name in nonsensitive(keys(var.provider_secrets)) : {
      type = "secret_text"
      name = secret_name
      text = var.provider_secrets[secret_name]
    }
  ]
}

resource "cloudflare_workers_script" "gateway" {
  account_id         = var.account_id
  script_name        = var.name
  main_module        = "index.js"
  content_file       = "${var.build_dir}/index.js"
  content_sha256     = filesha256("${var.build_dir}/index.js")
  compatibility_date = var.compatibility_date

  # index.js imports "./index_bg.wasm": the part name must match.
  files = {
    "index_bg.wasm" = {
      content_file = "${var.build_dir}/index_bg.wasm"
      content_type = "application/wasm"
    }
  }

  bindings = concat([
    {
      type         = "kv_namespace"
      name         = "GATEWAY_KV"
      namespace_id = cloudflare_workers_kv_namespace.gateway.id
    },
    {
      type       = "durable_object_namespace"
      name       = "GATEWAY_QUOTA"
      class_name = "QuotaCounter"
    },
    {
      type = "plain_text"
      name = "GATEWAY_CONFIG"
      text = var.gateway_config
    },
  ], local.secret_bindings)

  migrations = {
    new_tag            = "v1"
    new_sqlite_classes = ["QuotaCounter"]
  }
}

resource "cloudflare_workers_script_subdomain" "gateway" {
  account_id  = var.account_id
  script_name = cloudflare_workers_script.gateway.script_name
  enabled     = var.workers_dev
}

resource "cloudflare_workers_route" "gateway" {
  count   = var.route_pattern == null ? 0 : 1
  zone_id = var.zone_id
  pattern = var.route_pattern
  script  = cloudflare_workers_script.gateway.script_name
}

resource "cloudflare_workers_custom_domain" "gateway" {
  count      = var.custom_domain == null ? 0 : 1
  account_id = var.account_id
  zone_id    = var.zone_id
  hostname   = var.custom_domain
  service    = cloudflare_workers_script.gateway.script_name
}
