"""A stand-in for Hugging Face's `spaces` package with what ZeroGPU does to a decorated
generator, for tests on machines without a ZeroGPU Space: the generator runs in a forked
worker process, its arguments and every value it yields are pickled across, and closing
it in the caller ends the worker. (The real package needs ZeroGPU's scheduler to run.)

It also records whether torch was imported before it, which ZeroGPU forbids.
"""

import multiprocessing
import pickle
import sys

TORCH_IMPORTED_FIRST = "torch" in sys.modules
durations = []


def GPU(task=None, *, duration=None):  # noqa: N802 (the real package's name)
    if task is None:
        return lambda function: GPU(function, duration=duration)
    durations.append(duration)

    def in_worker(*args, **kwargs):
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        payload = pickle.dumps((args, kwargs))  # what ZeroGPU sends to its worker

        def work():
            call_args, call_kwargs = pickle.loads(payload)
            try:
                for value in task(*call_args, **call_kwargs):
                    results.put(pickle.dumps(("value", value)))
            except Exception as error:  # reported to the caller, as ZeroGPU does
                results.put(pickle.dumps(("error", repr(error))))
            results.put(pickle.dumps(("end", None)))

        worker = context.Process(target=work, daemon=True)
        worker.start()
        try:
            while True:
                kind, value = pickle.loads(results.get(timeout=600))
                if kind == "end":
                    return
                if kind == "error":
                    raise RuntimeError(f"ZeroGPU worker error: {value}")
                yield value
        finally:
            worker.join(30)
            if worker.is_alive():
                worker.terminate()

    return in_worker
