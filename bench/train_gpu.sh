#!/usr/bin/env bash
# The shipped recipe on a CUDA GPU: minutes instead of the CPU machines' hours.
#
#   CIFAR10_PATH=/path/to/cifar10.npz bash bench/train_gpu.sh [more python -m cifar_demo.train flags]
#
# Needs a Linux machine with an NVIDIA driver and access to PyPI. It makes its own
# virtual environment (.venv-gpu) with TensorFlow's CUDA build, checks that TensorFlow
# sees a GPU, trains with the exact command of the model card into runs/gpu (checkpoint
# every epoch; run it again to resume), fits the calibration temperature on the held-out
# images as part of the run, and prints the evaluation. Copy runs/gpu/model.* into
# weights/ as the model card's update routine says.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CIFAR10_PATH:?set CIFAR10_PATH to cifar10.npz (x_train, y_train, x_test, y_test)}"
if [ ! -x .venv-gpu/bin/python ]; then
  python3 -m venv .venv-gpu
  # requirements.txt pins the CPU build of TensorFlow; everything else in it is the same.
  .venv-gpu/bin/pip install -q "tensorflow[and-cuda]==2.21.0" -r <(grep -v "^tensorflow-cpu" requirements.txt)
fi
.venv-gpu/bin/python -c "import tensorflow as tf; gpus = tf.config.list_physical_devices('GPU'); assert gpus, 'TensorFlow sees no GPU'; print('GPUs:', gpus)"
.venv-gpu/bin/python -m cifar_demo.train --epochs 24 --val-size 2000 --precision mixed_bfloat16 --seed 0 --out runs/gpu "$@"
.venv-gpu/bin/python -m cifar_demo.evaluate --weights runs/gpu/model.weights.h5 --tta
