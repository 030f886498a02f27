"""What the data layer relies on in Keras beyond its documented API, in one place.

The Gradio counterparts are in cifar_demo/ui/internals.py (data.py cannot import ui/).
"""

import os
from pathlib import Path


def keras_has_cifar10():
    """True when keras.datasets.cifar10.load_data() would read its cache, not download.

    Relies on: Keras 3's cache layout, $KERAS_HOME (default ~/.keras) /datasets/
    cifar-10-batches-py-target/cifar-10-batches-py/ holding the official pickles, as
    keras/src/datasets/cifar10.py (Keras 3.15) extracts them. A wrong answer only changes
    whether the UI says "Downloading..." first. After an upgrade: read that file's
    `dirname` and paths, or load once with internet and check this returns True (and
    False with KERAS_HOME set to an empty folder). The download's failure path is
    tests/test_data.py::test_offline_without_a_copy_says_how_to_fix_it.
    """
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return (keras_home / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py" / "test_batch").is_file()


def keras_load_cifar10():
    """keras.datasets.cifar10.load_data(): the cache, else a download (documented API;
    here so that everything this project asks of Keras' dataset cache sits together).
    Keras is imported here, not above: loading data from CIFAR10_PATH needs no Keras, and
    `import cifar_demo.data` stays light."""
    import keras

    return keras.datasets.cifar10.load_data()
