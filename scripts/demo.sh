#!/usr/bin/env bash
# The main job: install everything, bring up the two local clouds, show both answering.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
.venv/bin/stackferry lab up
.venv/bin/stackferry lab status
echo
echo "Both clouds run on 127.0.0.1. Try:"
echo "  export OS_CLIENT_CONFIG_FILE=$PWD/.lab/clouds.yaml"
echo "  .venv/bin/openstack --os-cloud c1 network list     # c1 = source, c2 = destination"
