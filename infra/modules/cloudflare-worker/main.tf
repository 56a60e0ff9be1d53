# The gateway on Cloudflare Workers: a KV namespace for consumers and API
# keys, and the worker-build bundle (index.js + index_bg.wasm) deployed with
# the QuotaCounter Durable Object class, the config and the provider keys as
# secrets, the config in KV; optionally a route or a custom domain.
#
# Why the script goes up through `wrangler deploy` (run by `terraform apply`
# below) and not through a Cloudflare provider resource:
# - `cloudflare_workers_script` uploads one module (`content`/`content_file`);
#   it has no argument for the second module `index.js` imports
#   (`index_bg.wasm`).
# - `cloudflare_worker_version` takes several modules, but uses the Worker
#   Versions API, which refuses versions that carry a Durable Object
#   migration (Cloudflare docs, "Gradual deployments → Migrations";
#   terraform-provider-cloudflare issue 6852). The gateway's QuotaCounter
#   class needs one.
# - `wrangler deploy` uploads every module, reads the Worker's current
#   migration tag and sends only the migrations after it, so the `v1`
#   migration is applied on the first deploy and never resent.
#
# Binding names, the Durable Object class and the migration are the contract
# with the adapter (cloudflare-worker/src/lib.rs) and wrangler.toml;
# tests/tests/infra_drift.rs fails when they differ.

resource "cloudflare_workers_kv_namespace" "gateway" {
  account_id = var.account_id
  title      = "${var.name}-kv"
}

# The config in KV under a key that changes with its content: the Worker
# reads the key named by GATEWAY_CONFIG_KV_KEY once per isolate. A KV value
# may be 25 MiB, where a plain-text variable is capped at 5 KB. A new key
# (not an overwrite) means no isolate can read a stale cached value; the old
# entry is deleted only after the deploy that stops naming it
# (create_before_destroy). The config holds $${env:…} references, never
# secret values, so it may sit in the state.
resource "cloudflare_workers_kv" "config" {
  account_id   = var.account_id
  namespace_id = cloudflare_workers_kv_namespace.gateway.id
  key_name     = "gateway-config/${sha256(var.gateway_config)}"
  value        = var.gateway_config

  lifecycle {
    create_before_destroy = true
  }
}

locals {
  build_dir = abspath(var.build_dir)
  wrangler  = abspath(coalesce(var.wrangler, "${path.module}/../../../cloudflare-worker/node_modules/.bin/wrangler"))
  # Every module of the upload: a change to any of them redeploys.
  bundle_sha256 = sha256(join(",", [
    filesha256("${local.build_dir}/index.js"),
    filesha256("${local.build_dir}/index_bg.wasm"),
  ]))

  # The Wrangler configuration of the deploy (same bindings and migration as
  # cloudflare-worker/wrangler.toml, with this KV namespace's id). No [build]:
  # the bundle is built before `terraform apply`.
  wrangler_config = {
    name               = var.name
    main               = "${local.build_dir}/index.js"
    compatibility_date = var.compatibility_date
    workers_dev        = var.workers_dev
    send_metrics       = false
    kv_namespaces = [
      { binding = "GATEWAY_KV", id = cloudflare_workers_kv_namespace.gateway.id },
    ]
    durable_objects = {
      bindings = [{ name = "GATEWAY_QUOTA", class_name = "QuotaCounter" }]
    }
    migrations = [
      { tag = "v1", new_sqlite_classes = ["QuotaCounter"] },
    ]
    vars = {
      GATEWAY_CONFIG_KV_KEY = cloudflare_workers_kv.config.key_name
    }
  }
}

# The Worker's lifetime, apart from its deploys: `terraform destroy` (or a
# new name or account) runs `wrangler delete`. Kept separate from the deploy
# below because a destroy-time provisioner also runs when its resource is
# replaced, and the deploy is replaced on every change: `wrangler delete`
# there would drop the Worker and its Durable Object storage on each update.
resource "terraform_data" "worker" {
  triggers_replace = {
    name       = var.name
    account_id = var.account_id
  }

  # What the destroy-time provisioner needs (it may only read self).
  input = {
    name       = var.name
    account_id = var.account_id
    wrangler   = local.wrangler
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh", "-c"]
    command     = "\"$GATEWAY_WRANGLER\" delete --name \"$GATEWAY_NAME\" --force"
    environment = {
      CLOUDFLARE_ACCOUNT_ID = self.input.account_id
      WRANGLER_SEND_METRICS = "false"
      GATEWAY_WRANGLER      = self.input.wrangler
      GATEWAY_NAME          = self.input.name
    }
  }

  # Deleted before the KV namespace its deploys bind.
  depends_on = [cloudflare_workers_kv_namespace.gateway]
}

# `wrangler deploy` with a generated config and the secrets from a file in a
# private temporary directory (removed on exit). The secrets never enter the
# Terraform state: only a hash of them does, so that a changed key
# redeploys. Needs CLOUDFLARE_API_TOKEN in the environment (the same token
# the provider uses) and the repository's wrangler (scripts/bootstrap).
# Replacing this resource (any change) only deploys again; nothing is
# deleted.
resource "terraform_data" "deploy" {
  triggers_replace = {
    bundle  = local.bundle_sha256
    config  = sha256(jsonencode(local.wrangler_config))
    secrets = sha256(jsonencode(var.provider_secrets))
  }

  input = {
    name = terraform_data.worker.output.name
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    command     = <<-EOT
      set -eu
      umask 077
      dir="$(mktemp -d)"
      trap 'rm -rf "$dir"' EXIT
      printf '%s' "$GATEWAY_WRANGLER_CONFIG" > "$dir/wrangler.json"
      printf '%s' "$GATEWAY_SECRETS" > "$dir/secrets.json"
      # Terraform hides the output of a provisioner whose environment holds
      # sensitive values (the secrets): keep wrangler's in a log file.
      mkdir -p "$(dirname "$GATEWAY_DEPLOY_LOG")"
      "$GATEWAY_WRANGLER" deploy --config "$dir/wrangler.json" --secrets-file "$dir/secrets.json" >"$GATEWAY_DEPLOY_LOG" 2>&1
    EOT
    environment = {
      CLOUDFLARE_ACCOUNT_ID   = var.account_id
      WRANGLER_SEND_METRICS   = "false"
      GATEWAY_WRANGLER        = local.wrangler
      GATEWAY_WRANGLER_CONFIG = jsonencode(local.wrangler_config)
      GATEWAY_SECRETS         = jsonencode(var.provider_secrets)
      GATEWAY_DEPLOY_LOG      = abspath("${path.root}/.terraform/${var.name}-wrangler-deploy.log")
    }
  }
}

resource "cloudflare_workers_route" "gateway" {
  count   = var.route_pattern == null ? 0 : 1
  zone_id = var.zone_id
  pattern = var.route_pattern
  script  = terraform_data.deploy.input.name
}

resource "cloudflare_workers_custom_domain" "gateway" {
  count      = var.custom_domain == null ? 0 : 1
  account_id = var.account_id
  zone_id    = var.zone_id
  hostname   = var.custom_domain
  service    = terraform_data.deploy.input.name
}
