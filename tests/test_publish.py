"""`python -m cifar_demo.publish`: the files a Space gets, the front matter and requirements
per hardware, the dry run, the Space id check and every error, with the Hub mocked (no
network). The deployment dry run that starts the app from the staged files is .ci/deploy_dry_run."""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx2
import pytest
import yaml
from huggingface_hub import SpaceHardware
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

from cifar_demo import publish
from cifar_demo.artifacts import shipped_files

REPO = Path(__file__).resolve().parent.parent
SPACE = "alice/cifar10-studio"


class FakeHub:
    """Stands in for HfApi: records each call, and raises `error` from the call named `fail`."""

    def __init__(self, hardware="cpu-basic", fail=None, error=None):
        self.calls, self.staged = [], {}
        self.hardware, self.fail, self.error = hardware, fail, error

    def __call__(self, token=None):
        self.token = token
        return self

    def _record(self, name, *args, **kwargs):
        self.calls.append((name, args, kwargs))
        if name == self.fail:
            raise self.error

    def create_repo(self, repo_id, **kwargs):
        self._record("create_repo", repo_id, **kwargs)

    def get_space_runtime(self, repo_id):
        self._record("get_space_runtime", repo_id)
        return type("Runtime", (), {"hardware": self.hardware, "requested_hardware": None})()

    def request_space_hardware(self, repo_id, hardware):
        self._record("request_space_hardware", repo_id, hardware)

    def upload_folder(self, **kwargs):
        self._record("upload_folder", **kwargs)
        folder = Path(kwargs["folder_path"])  # a temporary folder: read it before it goes
        self.staged = {path.relative_to(folder).as_posix(): path.read_bytes()
                       for path in folder.rglob("*") if path.is_file()}


@pytest.fixture
def hub(monkeypatch):
    """A FakeHub in place of HfApi, with a token; tests set its hardware and failure."""
    fake = FakeHub()
    monkeypatch.setattr(publish, "HfApi", fake)
    monkeypatch.setattr(publish, "get_token", lambda: "hf_test")
    return fake


@pytest.fixture
def offline(monkeypatch):
    """No Hub and no token: anything that tries to reach them fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("the dry run reached for the Hub or a token")

    monkeypatch.setattr(publish, "HfApi", refuse)
    monkeypatch.setattr(publish, "get_token", refuse)


def tracked_files():
    return subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()


def error_of(argv):
    """The one-line message main(argv) stops with."""
    with pytest.raises(SystemExit) as stopped:
        publish.main(argv)
    message = str(stopped.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    return message


def http_error(status, server_message=None):
    response = httpx2.Response(status, request=httpx2.Request("POST", "https://huggingface.co/api/repos/create"))
    return HfHubHTTPError(f"{status} error", response=response, server_message=server_message)


# The Space id

@pytest.mark.parametrize("space_id", ["alice/cifar10-studio", "org-1/My_Space.v2", "a/b"])
def test_valid_space_ids_pass(space_id):
    assert publish.check_space_id(space_id) == space_id


@pytest.mark.parametrize("space_id", ["cifar10-studio", "alice/", "/studio", "a/b/c", "alice/my space", "-a/b",
                                      "alice/b-", "alice/b..c", "alice/b--c", "alice/b.git", "a/" + "x" * 97,
                                      "alice/caf\u00e9", "alice-/x", "alice./x"])
def test_bad_space_ids_are_refused_before_any_network(space_id, offline):
    with pytest.raises(ValueError, match="is not a Space id: give OWNER/NAME"):
        publish.check_space_id(space_id)
    assert "is not a Space id" in error_of(["--", space_id])  # "--": argparse would read "-a/b" as an option


# The files

def test_the_upload_holds_the_app_its_package_and_shipped_files_and_nothing_else():
    upload = publish.plan_upload("cpu-basic")
    names = set(upload.files)
    package = {path.relative_to(REPO).as_posix() for path in (REPO / "cifar_demo").rglob("*.py")}
    shipped = {path.relative_to(REPO).as_posix() for path in shipped_files()}
    assert {"app.py", "README.md", "requirements.txt", ".gitattributes"} | package | shipped == names
    assert {"weights/cifar10_cnn.weights.h5", "weights/cifar10_cnn.config.json", "cifar_demo/ui/app.py"} <= names
    assert len([name for name in names if name.startswith("weights/examples/")]) == 10
    assert not [name for name in names if name.split("/")[0] in {"tests", "bench", ".ci"}
                or "__pycache__" in name or name.endswith((".pyc", ".pyi"))]
    assert all(publish.REPO.joinpath(name).is_file() for name in names - {"README.md", "requirements.txt"})


def test_every_tracked_file_the_app_opens_while_building_is_uploaded(tmp_path):
    """The oracle: run app.py's build (import app) and the work it does right after launch
    (the model, its OOD statistics and the tabs' first views) with an audit hook recording
    every file opened inside the repository; each one git tracks must be in the upload.
    (HDF5 opens the .weights.h5 in C, unseen here; the test above checks it by name.)"""
    probe = tmp_path / "probe.py"
    probe.write_text(textwrap.dedent("""
        import json, os, sys
        root = os.getcwd()
        opened = set()

        def record(event, args):
            if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
                path = os.path.abspath(os.fsdecode(args[0]))
                if path.startswith(root + os.sep):
                    opened.add(os.path.relpath(path, root))

        sys.addaudithook(record)
        sys.path.insert(0, root)
        import asyncio, threading
        import app  # builds every tab, as `python app.py` does before it serves
        for start in app.demo.extra_startup_events:  # what launch() runs once it listens
            asyncio.run(start())
        for thread in threading.enumerate():
            if thread.name == "after-launch":
                thread.join()
        print(json.dumps(sorted(opened)))
    """))
    result = subprocess.run([sys.executable, str(probe)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    opened = set(json.loads(result.stdout.splitlines()[-1])) & set(tracked_files())
    assert {"app.py", "cifar_demo/ui/app.py", "weights/cifar10_cnn.ood.npz", "weights/train_sample.npz"} <= opened
    assert opened - set(publish.plan_upload("cpu-basic").files) == set()


def test_stage_writes_exactly_the_upload_and_refuses_a_folder_in_use(tmp_path):
    upload = publish.plan_upload("zero-gpu")
    publish.stage(upload, tmp_path / "space")
    staged = {path.relative_to(tmp_path / "space").as_posix() for path in (tmp_path / "space").rglob("*")
              if path.is_file()}
    assert staged == set(upload.files)
    assert (tmp_path / "space" / "requirements.txt").read_text() == (REPO / "requirements-zerogpu.txt").read_text()
    assert (tmp_path / "space" / "weights/cifar10_cnn.weights.h5").read_bytes() == \
        (REPO / "weights/cifar10_cnn.weights.h5").read_bytes()
    with pytest.raises(ValueError, match="is not empty"):
        publish.stage(upload, tmp_path / "space")


def test_a_missing_weights_file_stops_with_the_fix(monkeypatch, offline):
    gone = REPO / "weights" / "gone.weights.h5"
    monkeypatch.setattr(publish, "shipped_files", lambda: [*shipped_files(), gone])
    message = error_of([SPACE, "--dry-run"])
    assert "weights/gone.weights.h5 missing" in message and "git checkout -- weights/gone.weights.h5" in message


def test_a_git_lfs_pointer_in_place_of_a_file_stops_with_the_fix(monkeypatch, tmp_path, offline):
    pointer = tmp_path / "model.weights.h5"
    pointer.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 7805216\n")
    monkeypatch.setattr(publish, "shipped_files", lambda: [*shipped_files(), pointer])
    assert "a Git LFS pointer, not the file itself: run `git lfs pull`" in error_of([SPACE, "--dry-run"])


# Front matter and requirements

def repo_front_matter():
    return publish.split_front_matter((REPO / "README.md").read_text())[0]


def test_the_repository_readme_has_complete_valid_front_matter():
    meta = repo_front_matter()
    publish.check_front_matter(meta)
    assert meta["suggested_hardware"] == "cpu-basic"
    assert len(meta["short_description"]) <= 60
    assert set(publish.REQUIRED_TAGS) <= set(meta["tags"])


def test_requirements_gradio_pin_equals_the_front_matter_sdk_version():
    sdk_version = str(repo_front_matter()["sdk_version"])
    assert publish.gradio_pin((REPO / "requirements.txt").read_text()) == sdk_version
    for hardware in publish.HARDWARE.values():  # every file a Space may install
        assert publish.gradio_pin((REPO / hardware.requirements).read_text()) == sdk_version, hardware.requirements


def test_gradio_pin_reads_only_an_exact_gradio_pin():
    assert publish.gradio_pin("keras==3\ngradio==6.31.0  # UI\n") == "6.31.0"
    assert publish.gradio_pin("gradio[oauth]==6.1.0\n") == "6.1.0"
    assert publish.gradio_pin("gradio_client==2.7.2\ngradio>=6\n") is None


@pytest.mark.parametrize(("hardware", "requirements", "space_hardware", "python", "extra_tags"), [
    ("cpu-basic", "requirements.txt", "cpu-basic", "3.11", set()),
    ("zero-gpu", "requirements-zerogpu.txt", "zero-a10g", "3.12.12", {"pytorch", "zerogpu"}),
])
def test_front_matter_and_requirements_per_hardware(hardware, requirements, space_hardware, python, extra_tags):
    upload = publish.plan_upload(hardware)
    meta = upload.front_matter
    assert meta["suggested_hardware"] == space_hardware == SpaceHardware(space_hardware)
    assert meta["python_version"] == python
    assert set(meta["tags"]) == set(publish.REQUIRED_TAGS) | extra_tags
    assert upload.requirements == (REPO / requirements).read_text()
    assert upload.files["requirements.txt"] == upload.requirements.encode()
    assert ("torch==" in upload.requirements) == (hardware == "zero-gpu") != ("tensorflow" in upload.requirements)
    readme = upload.files["README.md"].decode()
    written, body = publish.split_front_matter(readme)
    assert written == meta  # the YAML round-trips: python_version stays a string, the emoji intact
    assert body == publish.split_front_matter((REPO / "README.md").read_text())[1]


def test_zerogpu_python_versions_are_the_only_ones_accepted_for_zerogpu():
    meta = {**repo_front_matter(), "suggested_hardware": "zero-a10g", "python_version": "3.11"}
    with pytest.raises(ValueError, match=r"ZeroGPU runs only Python 3\.10\.13 or 3\.12\.12"):
        publish.check_front_matter(meta)


@pytest.mark.parametrize(("change", "message"), [
    ({"short_description": "x" * 61}, "short_description must be 1-60 characters"),
    ({"tags": ["keras"]}, "tags lack image-classification, tensorflow, cifar10"),
    ({"python_version": 3.1}, "python_version must be a quoted version"),
    ({"suggested_hardware": "cpu-huge"}, "'cpu-huge' is not one of the Hub's hardware ids"),
    ({"sdk_version": "latest"}, "sdk_version must be a gradio version"),
    ({"colorFrom": "teal"}, "colorFrom must be one of"),
    ({"sdk": "docker"}, "sdk must be gradio"),
])
def test_invalid_front_matter_is_refused_with_the_field_named(change, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        publish.check_front_matter({**repo_front_matter(), **change})


def test_requirements_that_disagree_with_sdk_version_stop_the_upload(monkeypatch, tmp_path, offline):
    (tmp_path / "requirements.txt").write_text("gradio==5.0.0\n")
    monkeypatch.setattr(publish, "REPO", tmp_path)  # the requirements file is read from here
    monkeypatch.setattr(publish, "README", REPO / "README.md")
    monkeypatch.setattr(publish, "app_sources", lambda: [])
    assert "requirements.txt pins gradio==5.0.0 but README.md's sdk_version is 6.31.0" in error_of([SPACE])


# The dry run

def test_the_dry_run_lists_every_file_with_its_size_the_front_matter_and_requirements(capsys, offline):
    publish.main([SPACE, "--dry-run", "--hardware", "zero-gpu"])
    out = capsys.readouterr().out
    upload = publish.plan_upload("zero-gpu")
    listed = dict((name, int(size.replace(",", ""))) for size, name in re.findall(r"^ +([\d,]+)  (\S+)$", out, re.M))
    assert listed == {name: upload.size(name) for name in upload.files}
    assert f"Files ({len(upload.files)}, " in out and "https://huggingface.co/spaces/alice/cifar10-studio" in out
    front_matter = out.split("Front matter of README.md:\n---\n")[1].split("\n---\n")[0]
    assert yaml.safe_load(front_matter) == upload.front_matter
    assert out.split("requirements.txt (from requirements-zerogpu.txt):\n")[1].startswith(upload.requirements.rstrip())
    assert out.rstrip().endswith("Dry run: nothing was sent.")


def test_stage_flag_writes_the_folder_and_sends_nothing(tmp_path, capsys, offline):
    publish.main([SPACE, "--stage", str(tmp_path / "space")])
    assert (tmp_path / "space" / "app.py").is_file() and (tmp_path / "space" / "README.md").is_file()
    assert f"staged in {tmp_path / 'space'}" in capsys.readouterr().out


# Publishing, with the Hub mocked

def test_publish_creates_the_space_and_uploads_exactly_the_staged_files(hub, capsys):
    publish.main([SPACE, "--hardware", "cpu-basic", "--private"])
    assert hub.token == "hf_test"
    name, args, kwargs = hub.calls[0]
    assert (name, args) == ("create_repo", (SPACE,))
    assert kwargs == {"repo_type": "space", "space_sdk": "gradio", "private": True, "exist_ok": True,
                      "space_hardware": SpaceHardware.CPU_BASIC}
    assert [call[0] for call in hub.calls] == ["create_repo", "get_space_runtime", "upload_folder"]
    upload_kwargs = hub.calls[-1][2]
    assert upload_kwargs["repo_id"] == SPACE and upload_kwargs["repo_type"] == "space"
    assert upload_kwargs["delete_patterns"] == "*"  # the Space holds these files and no stale others
    upload = publish.plan_upload("cpu-basic")
    assert set(hub.staged) == set(upload.files)
    assert hub.staged["README.md"] == upload.files["README.md"]
    assert capsys.readouterr().out.strip() == "https://huggingface.co/spaces/alice/cifar10-studio"


@pytest.mark.parametrize(("current", "hardware", "requested"), [
    ("cpu-basic", "zero-gpu", True), ("zero-a10g", "cpu-basic", True), (None, "cpu-basic", True),
    ("zero-a10g", "zero-gpu", False), ("cpu-basic", "cpu-basic", False), ("t4-small", "cpu-basic", False),
])
def test_hardware_is_requested_only_when_the_space_cannot_run_the_flavour(hub, current, hardware, requested):
    hub.hardware = current
    publish.main([SPACE, "--hardware", hardware])
    calls = [call for call in hub.calls if call[0] == "request_space_hardware"]
    assert calls == ([("request_space_hardware", (SPACE, publish.HARDWARE[hardware].space_hardware), {})]
                     if requested else [])


def test_no_token_stops_before_the_hub_with_both_ways_to_give_one(monkeypatch):
    monkeypatch.setattr(publish, "get_token", lambda: None)
    monkeypatch.setattr(publish, "HfApi", FakeHub(fail="create_repo", error=AssertionError("reached the Hub")))
    message = error_of([SPACE])
    assert "no Hugging Face token" in message and "HF_TOKEN" in message and "hf auth login" in message


@pytest.mark.parametrize("error", [httpx2.ConnectError("[Errno -2] Name or service not known"),
                                   httpx2.ConnectTimeout("timed out"), ConnectionResetError("reset")])
def test_no_network_is_one_line_with_the_fix(hub, error):
    hub.fail, hub.error = "create_repo", error
    assert "cannot reach https://huggingface.co" in error_of([SPACE])


def test_offline_mode_says_which_variable_to_unset(hub):
    hub.fail, hub.error = "create_repo", OfflineModeIsEnabled("offline")
    assert "HF_HUB_OFFLINE is set" in error_of([SPACE])


@pytest.mark.parametrize(("status", "call", "expected"), [
    (401, "create_repo", "does not accept the token (401)"),
    (402, "request_space_hardware", "CPU Basic Spaces need PRO"),
    (403, "create_repo", "the token may not write to alice"),
    (404, "create_repo", "alice/cifar10-studio was not found (404)"),
    (409, "upload_folder", "conflict for alice/cifar10-studio (409)"),
    (429, "upload_folder", "wait a few minutes"),
    (500, "upload_folder", "the Hub refused the upload (500)"),
])
def test_a_refusal_is_one_line_with_the_fix_and_the_hubs_reason(hub, status, call, expected):
    hub.hardware = None  # so that the hardware request happens too
    hub.fail, hub.error = call, http_error(status, "Reason from the Hub\nsecond line")
    message = error_of([SPACE])
    assert expected in message and message.endswith("[Hub: Reason from the Hub]")


def test_help_runs_as_a_module_and_names_both_hardware_choices_and_plans():
    shown = subprocess.run([sys.executable, "-m", "cifar_demo.publish", "--help"], cwd=REPO, capture_output=True,
                           text=True, timeout=120)
    assert shown.returncode == 0 and shown.stdout.startswith("usage: python -m cifar_demo.publish")
    text = " ".join(shown.stdout.split())
    assert "cpu-basic: CPU Basic" in text and "needs a paid plan" in text and "zero-gpu: ZeroGPU" in text
