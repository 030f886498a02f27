""".gitattributes marks every binary file the repository tracks for Git LFS (the Hub refuses
a git push holding binaries outside LFS/Xet), and no text file."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(),
                                reason="needs git and a git checkout")


def git(*args):
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout


def is_binary(path):
    """Git's own test: a NUL byte in the first 8 KB."""
    with open(path, "rb") as handle:
        return b"\0" in handle.read(8192)


def lfs_filtered(names):
    """The subset of `names` whose `filter` attribute is lfs."""
    out = git("check-attr", "-z", "filter", "--", *names)
    fields = out.split("\0")
    return {name for name, _, value in zip(fields[0::3], fields[1::3], fields[2::3], strict=False) if value == "lfs"}


def test_is_binary_tells_binary_from_text(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"PK\x03\x04\x00\x00")
    (tmp_path / "a.txt").write_text("caf\u00e9 \U0001f6e9\ufe0f\n")
    assert is_binary(tmp_path / "a.bin") and not is_binary(tmp_path / "a.txt")


def test_every_tracked_binary_file_is_stored_with_lfs_and_no_text_file_is():
    names = [name for name in git("ls-files", "-z").split("\0") if name and (REPO / name).is_file()]
    binary = {name for name in names if is_binary(REPO / name)}
    assert {"weights/cifar10_cnn.weights.h5", "weights/test_predictions.npz", "weights/training_curves.png"} <= binary
    filtered = lfs_filtered(names)
    assert binary - filtered == set(), "binary files no .gitattributes line covers"
    assert filtered - binary == set(), "text files .gitattributes would put in LFS"
