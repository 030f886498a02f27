"""The session's current input: the last 32x32 image the person looked at, whichever tab
it came from (a Classify upload, drawing or example, or a test image opened in Mistakes).
Tabs that study one input (Inside the network, Robustness) read it from one gr.State."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar_demo import images
from cifar_demo.artifacts import EXAMPLES_DIR


@dataclass(frozen=True, eq=False)
class CurrentInput:
    """uint8 (32, 32, 3) model input and a short phrase naming where it came from. Equal
    and hashed by content: Gradio hashes a gr.State's value to tell whether it changed
    (a generated hash would hash the array, which NumPy refuses)."""

    pixels: np.ndarray
    source: str   # e.g. "your upload", "test image #42 (really a cat)"

    def __post_init__(self):
        if self.pixels.shape != (32, 32, 3) or self.pixels.dtype != np.uint8:
            raise ValueError(f"a current input is uint8 (32, 32, 3), not {self.pixels.dtype} {self.pixels.shape}")

    def __eq__(self, other):
        return (isinstance(other, CurrentInput) and self.source == other.source
                and np.array_equal(self.pixels, other.pixels))

    def __hash__(self):
        return hash((self.pixels.tobytes(), self.source))


def current_input(pixels, source):
    """A CurrentInput for `pixels`, or None when there are none (an image was cleared)."""
    return None if pixels is None else CurrentInput(np.asarray(pixels), source)


def example_inputs(folder=EXAMPLES_DIR):
    """{choice label: CurrentInput} of the shipped example images, by file name ("3_cat.png"
    is official test image #3): the examples the tabs that study one input offer."""
    examples = {}
    for path in sorted(Path(folder).glob("*.png")):
        index, name = path.stem.split("_", 1)
        examples[f"{name} (test image #{int(index)})"] = CurrentInput(
            images.to_model_input(path), f"the example {name} (official test image #{int(index)})")
    return examples
