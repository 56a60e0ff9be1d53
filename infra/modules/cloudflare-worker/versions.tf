terraform {
  # 1.9: variable validations that refer to other variables (zone_id).
  required_version = ">= 1.9"
  required_providers {
    cloudflare = {
      source = "cloudflare/cloudflare"
      # 5.14.0 is the schema tests/tests/infra_schema.rs checks against
      # (@cdktf/provider-cloudflare 13.9.1); the module uses only
      # cloudflare_workers_kv_namespace, cloudflare_workers_route and
      # cloudflare_workers_custom_domain. The script itself is deployed by
      # wrangler (see main.tf).
      version = ">= 5.14, < 6.0"
    }
  }
}
