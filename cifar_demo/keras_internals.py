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


CIFAR10_ARCHIVE_BYTES = 170_498_071  # cifar-10-python.tar.gz, the file Keras downloads


def keras_cifar10_downloaded_bytes():
    """Bytes of the CIFAR-10 archive Keras has downloaded so far (0 before it starts).

    Relies on: Keras 3's get_file writing the archive to $KERAS_HOME/datasets/
    cifar-10-batches-py-target_archive while it downloads (keras/src/utils/file_utils.py,
    `download_target`, Keras 3.15). A wrong answer only leaves the UI's download
    progress at 0 MB; after an upgrade, watch that folder during a first download."""
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    try:
        return (keras_home / "datasets" / "cifar-10-batches-py-target_archive").stat().st_size
    except OSError:
        return 0


def keras_load_cifar10():
    """keras.datasets.cifar10.load_data(): the cache, else a download (documented API;
    here so that everything this project asks of Keras' dataset cache sits together).
    Keras is imported here, not above: loading data from CIFAR10_PATH needs no Keras, and
    `import cifar_demo.data` stays light."""
    import keras

    return keras.datasets.cifar10.load_data()
