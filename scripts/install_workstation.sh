#!/usr/bin/env bash
# The CPU-only workstation install: torch's CPU build and no torchvision (constraints/workstation-cpu.txt says why).
# Installs into the Python given as $PYTHON (default: python on PATH), then: python launch.py
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
"$PYTHON" -m pip install -q -c constraints/workstation-cpu.txt -e .
# torchxrayvision pulls torchvision in, and none here is built for the CPU torch: a present but unloadable
# torchvision breaks every transformers import (peft included); an absent one is skipped. We read only
# torchxrayvision's data files and never import it.
"$PYTHON" -m pip uninstall -q -y torchvision
"$PYTHON" -c "import torch, peft; assert torch.version.cuda is None; print('workstation install: torch', torch.__version__, '(CPU build), no torchvision')"
