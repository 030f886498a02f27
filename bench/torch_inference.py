"""The torch backend's ways to run Predictor's forward pass, side by side in one process:
p50 latency of one 32x32 image and images/s in batches of 256, plus what each costs to
set up (tracing, compiling) before its first answer.

    KERAS_BACKEND=torch python -m bench.torch_inference [--rounds 3] [--repeats 20] [--skip-dynamo]

Candidates (each runs the same keras.ops function Predictor compiles: logits and softmax):

- eager, inference_mode: Keras layers called eagerly (what cifar_demo.backend did first);
- eager, no_grad: the same under torch.no_grad;
- eager, no channels_last: Keras' torch conv copies its NCHW input to channels_last memory
  before conv2d; this turns that off, to see whether the layout helps;
- torch.compile(function): Dynamo over the Keras model itself (mode default);
- traced graph, no layout pass: the function traced once with make_fx into a graph of
  aten ops that takes the model's variables as inputs, so it always reads the current
  weights, run eagerly: no Keras Python per layer;
- compile_inference: cifar_demo.backend's torch branch, that traced graph (one per input
  shape) with the redundant contiguous -> channels_last copy before each convolution
  removed (_drop_layout_copies);
- traced graph + inductor: the traced graph compiled by torch.compile (mode default,
  static shapes: one compilation per batch shape; with --max-autotune also
  max-autotune-no-cudagraphs); its set-up time is three compilations (1, 256, 16);
- 1 thread: torch.set_num_threads(1) around the calls (the host has 2 shared cores).

"reduce-overhead" is CUDA graphs, nothing on a CPU, and torch.jit.trace/torch.export are
covered by the make_fx trace (the same aten graph; Dynamo-based export stops at Keras'
layer hooks, as torch.compile's graph breaks show). Rounds alternate the candidates so a
drift in the shared host's speed hits all alike; the figures are medians over rounds.
"""

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.results import record  # noqa: E402
from cifar_demo.artifacts import SHIPPED_WEIGHTS  # noqa: E402
from cifar_demo.model import LOGITS_LAYER, build_model  # noqa: E402

BATCH = 256


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds over the candidates")
    parser.add_argument("--repeats", type=int, default=20, help="one-image calls timed per candidate and round")
    parser.add_argument("--batches", type=int, default=2, help="batches of 256 timed per candidate and round")
    parser.add_argument("--skip-dynamo", action="store_true",
                        help="leave out torch.compile of the Keras model (~1 min to compile)")
    parser.add_argument("--max-autotune", action="store_true", help="also inductor mode max-autotune-no-cudagraphs")
    args = parser.parse_args()
    if keras.backend.backend() != "torch":
        raise SystemExit("run with KERAS_BACKEND=torch")
    import torch
    from torch.fx.experimental.proxy_tensor import make_fx

    from cifar_demo import backend

    model = build_model()
    model.load_weights(SHIPPED_WEIGHTS)
    logits_model = keras.Model(model.input, model.get_layer(LOGITS_LAYER).output)

    def forward(images):
        logits = keras.ops.cast(logits_model(images, training=False), "float32")
        return logits, keras.ops.softmax(logits, axis=-1)

    variables = model.variables

    def stateless(values, images):
        with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
            return forward(images)

    def numpy_out(outputs):
        return tuple(output.detach().cpu().numpy() for output in outputs)

    def eager(context):
        def call(images):
            with context():
                return numpy_out(forward(torch.from_numpy(images)))
        return call

    def graph_call(graph, context=torch.inference_mode):
        def call(images):
            with context():
                return numpy_out(graph([variable.value for variable in variables], torch.from_numpy(images)))
        return call

    def traced():
        with torch.no_grad():
            return make_fx(stateless, tracing_mode="symbolic")(
                [variable.value for variable in variables], torch.zeros((2, 32, 32, 3)))

    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, 32, 32, 3)).astype(np.float32)
    batch = rng.integers(0, 256, (BATCH, 32, 32, 3)).astype(np.float32)
    tail = batch[:16]  # a second shape, as Predictor's last partial batch

    candidates, setup = {}, {}

    def add(name, build, context=None):
        """Builds a candidate and times its set-up up to first answers for 1, 256 and 16 images."""
        start = time.perf_counter()
        try:
            call = build()
            for images in (one, batch, tail):
                call(images)
        except Exception as error:  # a candidate that cannot run is reported, not fatal
            print(f"{name}: failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
            return
        setup[name] = time.perf_counter() - start
        candidates[name] = (call, context)
        print(f"{name}: ready in {setup[name]:.1f} s")

    def no_channels_last():
        nn = keras.src.backend.torch.nn
        original = nn._maybe_convert_to_channels_last

        class Context:
            def __enter__(self):
                nn._maybe_convert_to_channels_last = lambda tensor: tensor

            def __exit__(self, *exc):
                nn._maybe_convert_to_channels_last = original
        return Context

    add("eager, inference_mode", lambda: eager(torch.inference_mode))
    add("eager, no_grad", lambda: eager(torch.no_grad))
    add("eager, no channels_last", lambda: eager(torch.inference_mode), no_channels_last())
    add("eager, inference_mode, 1 thread", lambda: eager(torch.inference_mode), threads(torch, 1))
    add("traced graph, no layout pass", lambda: graph_call(traced()))
    add("compile_inference (traced graph, layout pass)", lambda: backend.compile_inference(model, forward))
    add("compile_inference, 1 thread", lambda: backend.compile_inference(model, forward), threads(torch, 1))
    inductor = torch.compile(traced(), dynamic=False)  # one compilation per batch shape
    add("traced graph + inductor", lambda: graph_call(inductor, torch.no_grad))
    add("traced graph + inductor, 1 thread", lambda: graph_call(inductor, torch.no_grad), threads(torch, 1))
    if args.max_autotune:
        autotuned = torch.compile(traced(), dynamic=False, mode="max-autotune-no-cudagraphs")
        add("traced graph + inductor max-autotune", lambda: graph_call(autotuned, torch.no_grad))
    if not args.skip_dynamo:
        compiled = torch.compile(forward)
        add("torch.compile(function)", lambda: lambda images: _no_grad_call(torch, compiled, images, numpy_out))

    reference = candidates["eager, inference_mode"][0](batch)
    differences = {name: max(float(np.abs(a - b).max()) for a, b in zip(call(batch), reference, strict=True))
                   for name, (call, _) in candidates.items()}

    latency = {name: [] for name in candidates}
    throughput = {name: [] for name in candidates}
    for round_index in range(args.rounds):
        for name, (call, context) in candidates.items():
            with context() if context else _nothing():
                call(one)
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    call(one)
                    latency[name].append(time.perf_counter() - start)
                for _ in range(args.batches):
                    start = time.perf_counter()
                    call(batch)
                    throughput[name].append(BATCH / (time.perf_counter() - start))
        print(f"round {round_index + 1}/{args.rounds} done")

    figures = {}
    print(f"\n{'candidate':<42}{'set-up s':>9}{'1 image p50 ms':>16}{'256: images/s':>15}{'max |diff|':>12}")
    for name in candidates:
        p50 = float(np.median(latency[name])) * 1000
        rate = float(np.median(throughput[name]))
        print(f"{name:<42}{setup[name]:9.1f}{p50:16.2f}{rate:15.0f}{differences[name]:12.1e}")
        figures[f"{name}: one image, p50"] = (p50, "ms")
        figures[f"{name}: batch of 256"] = (rate, "images/s")
        figures[f"{name}: set-up to first answers (1, 256, 16 images)"] = (setup[name], "s")
        figures[f"{name}: max abs difference from eager"] = (f"{differences[name]:.1e}", "")
    record("torch_inference", figures, notes=(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians over {args.rounds} alternating "
        f"rounds of {args.repeats} one-image calls and {args.batches} batches of {BATCH} each"))


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def threads(torch, count):
    class Context:
        def __enter__(self):
            self.before = torch.get_num_threads()
            torch.set_num_threads(count)

        def __exit__(self, *exc):
            torch.set_num_threads(self.before)
    return Context


def _no_grad_call(torch, compiled, images, numpy_out):
    with torch.no_grad():
        return numpy_out(compiled(torch.from_numpy(images)))


if __name__ == "__main__":
    main()
