terraform {
  required_version = ">= 1.6"
  required_providers {
    cloudflare = {
      source = "cloudflare/cloudflare"
      # `files` on cloudflare_workers_script (the wasm module upload) is in
      # the 5.x line; check with `terraform providers schema -json` after init.
      version = ">= 5.10, < 6.0"
    }
  }
}
