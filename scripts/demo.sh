#!/usr/bin/env bash
# The main job: install everything, bring up the two local clouds, seed a demo tenant in the
# source cloud (c1) and migrate it into the destination cloud (c2): plan, progress, verify.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
.venv/bin/python -m devcloud up
export OS_CLIENT_CONFIG_FILE=$PWD/.lab/clouds.yaml
.venv/bin/python -m devcloud seed-demo
# The lab made project demo in c2 too, as an operator's provisioning would: stackferry changes
# what it did not make (here the project's quotas) only when told to adopt it.
.venv/bin/stackferry migrate --src c1 --dst c2 --project demo --domain lab \
  --workdir .lab/demo-workdir --adopt projects --calls
echo
echo "The exported tenant, as YAML you can read and edit: .lab/demo-workdir/resources/"
echo "Run the same command again: it finds everything in place and writes nothing."
