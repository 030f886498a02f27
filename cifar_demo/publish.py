"""Puts the app on a Hugging Face Space.

CLI: `python -m cifar_demo.publish OWNER/NAME [--hardware cpu-basic|zero-gpu] [--private] [--dry-run]`.

It uploads through the Hub's HTTP API (huggingface_hub's upload_folder), never git: the Hub
then stores each binary in LFS/Xet itself, and no history travels (the Hub refuses a git
push whose history ever held a binary outside LFS). The files are derived, not listed by
hand: app.py, every module of the package, the files under weights/ the app reads (named
in cifar_demo.artifacts), the requirements of the chosen hardware as requirements.txt, and
README.md with front matter for that hardware. `--stage DIR` writes that exact folder for
the deployment dry run in CI (.ci/deploy_dry_run), which starts the app from it alone.
"""

import argparse
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import yaml
from huggingface_hub import HfApi, SpaceHardware, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id

from cifar_demo.artifacts import shipped_files

REPO = Path(__file__).resolve().parent.parent
PACKAGE = Path(__file__).resolve().parent
README = REPO / "README.md"
GITATTRIBUTES = REPO / ".gitattributes"  # LFS patterns, for whoever later clones the Space and pushes with git
SPACE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_SPACE_ID = 96  # the Hub's limit on an owner's and on a repository's name
MAX_SHORT_DESCRIPTION = 60
REQUIRED_TAGS = ("image-classification", "keras", "tensorflow", "cifar10")
COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}  # what the Hub accepts
ZEROGPU_PYTHON_VERSIONS = ("3.10.13", "3.12.12")  # the only Pythons ZeroGPU runs
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
TOKEN_HELP = "set HF_TOKEN to a write token from https://huggingface.co/settings/tokens or run `hf auth login`"


@dataclass(frozen=True)
class Hardware:
    """One hardware choice: the Hub's id, the requirements file uploaded as requirements.txt,
    the Python it needs (None: the README's), extra tags, and who may choose it."""

    space_hardware: SpaceHardware
    requirements: str
    python_version: str | None
    extra_tags: tuple
    plan: str


HARDWARE = {
    "cpu-basic": Hardware(SpaceHardware.CPU_BASIC, "requirements.txt", None, (),
                          "CPU Basic (2 vCPU, 16 GB), TensorFlow; needs a paid plan (PRO, Team or Enterprise)"),
    "zero-gpu": Hardware(SpaceHardware.ZERO_A10G, "requirements-zerogpu.txt", "3.12.12", ("pytorch", "zerogpu"),
                         "ZeroGPU (a GPU lent to training runs), PyTorch; free personal accounts may host it"),
}


@dataclass(frozen=True)
class Upload:
    """What a Space gets: {path in the Space: local file (Path) or generated content (bytes)},
    the README's front matter and the requirements text."""

    files: dict
    front_matter: dict
    requirements: str

    def size(self, name):
        content = self.files[name]
        return len(content) if isinstance(content, bytes) else content.stat().st_size


def check_space_id(space_id):
    """`space_id` if it is a valid OWNER/NAME, else ValueError (checked before any network,
    by our rules and by huggingface_hub's own, which the real run applies)."""
    valid = (SPACE_ID.fullmatch(space_id) and all(len(part) <= MAX_SPACE_ID for part in space_id.split("/"))
             and ".." not in space_id and "--" not in space_id and not space_id.endswith((".", "-", ".git")))
    try:
        validate_repo_id(space_id)
    except HFValidationError:
        valid = False
    if not valid:
        raise ValueError(f"{space_id!r} is not a Space id: give OWNER/NAME, for example alice/cifar10-studio "
                         f"(letters, digits, '-', '_' and '.', at most {MAX_SPACE_ID} characters)")
    return space_id


def split_front_matter(text):
    """README text -> (front matter as a dict, the rest)."""
    match = re.match(r"---\n(.*?)\n---\n", text, re.DOTALL)
    if not match:
        raise ValueError("README.md has no front matter (a YAML block between two --- lines at its top)")
    return yaml.safe_load(match.group(1)), text[match.end():]


def check_front_matter(meta):
    """Raises ValueError naming every field a Space would reject or mis-read."""
    problems = []
    if meta.get("sdk") != "gradio":
        problems.append(f"sdk must be gradio, not {meta.get('sdk')!r}")
    if not re.fullmatch(r"\d+\.\d+\.\d+", str(meta.get("sdk_version", ""))):
        problems.append(f"sdk_version must be a gradio version such as 6.31.0, not {meta.get('sdk_version')!r}")
    python = meta.get("python_version")
    if not isinstance(python, str) or not re.fullmatch(r"3\.\d+(\.\d+)?", python):
        problems.append(f"python_version must be a quoted version such as \"3.11\", not {python!r}")
    hardware = meta.get("suggested_hardware")
    if hardware not in {item.value for item in SpaceHardware}:
        problems.append(f"suggested_hardware {hardware!r} is not one of the Hub's hardware ids")
    if hardware == SpaceHardware.ZERO_A10G and python not in ZEROGPU_PYTHON_VERSIONS:
        problems.append(f"ZeroGPU runs only Python {' or '.join(ZEROGPU_PYTHON_VERSIONS)}, not {python!r}")
    description = meta.get("short_description")
    if not isinstance(description, str) or not 0 < len(description) <= MAX_SHORT_DESCRIPTION:
        problems.append(f"short_description must be 1-{MAX_SHORT_DESCRIPTION} characters, not {description!r}")
    missing_tags = [tag for tag in REQUIRED_TAGS if tag not in (meta.get("tags") or [])]
    if missing_tags:
        problems.append(f"tags lack {', '.join(missing_tags)}")
    for field in ("colorFrom", "colorTo"):
        if meta.get(field) not in COLORS:
            problems.append(f"{field} must be one of {', '.join(sorted(COLORS))}, not {meta.get(field)!r}")
    if not meta.get("title") or meta.get("app_file") != "app.py":
        problems.append("title must be set and app_file must be app.py")
    if problems:
        raise ValueError("README.md's front matter: " + "; ".join(problems))


def space_front_matter(meta, hardware):
    """The README's front matter `meta` made for `hardware` (a key of HARDWARE), checked."""
    choice = HARDWARE[hardware]
    meta = {**meta, "suggested_hardware": choice.space_hardware.value,
            "tags": list(dict.fromkeys([*(meta.get("tags") or []), *REQUIRED_TAGS, *choice.extra_tags]))}
    if choice.python_version:
        meta["python_version"] = choice.python_version
    check_front_matter(meta)
    return meta


def gradio_pin(requirements):
    """The version requirements text pins gradio to (gradio==X), or None."""
    match = re.search(r"^gradio(?:\[[^\]]*\])?==([^\s;#]+)", requirements, re.MULTILINE)
    return match.group(1) if match else None


def app_sources():
    """The local files the app needs: app.py, the package's modules, the shipped files it reads."""
    return [REPO / "app.py", *sorted(PACKAGE.rglob("*.py")), *shipped_files()]


def shown(path):
    """`path` as a person types it here: relative to the repository when inside it."""
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)


def check_sources(paths):
    """Raises ValueError, with the fix, for a missing file or a Git LFS pointer in its place."""
    names = [shown(path) for path in paths if not path.is_file()]
    if names:
        raise ValueError(f"{', '.join(names)} missing, and the Space needs {'it' if len(names) == 1 else 'them'}: "
                         f"restore with `git checkout -- {' '.join(names)}` (weights/README.md says how the "
                         "weights were made)")
    pointers = []
    for path in paths:
        with open(path, "rb") as handle:
            if handle.read(len(LFS_POINTER)) == LFS_POINTER:
                pointers.append(shown(path))
    if pointers:
        raise ValueError(f"{', '.join(pointers)}: a Git LFS pointer, not the file itself: run `git lfs pull` first")


def plan_upload(hardware):
    """The Upload for `hardware` (a key of HARDWARE); ValueError for a missing file, invalid
    front matter, or requirements whose gradio pin differs from sdk_version."""
    if hardware not in HARDWARE:
        raise ValueError(f"unknown hardware {hardware!r}: choose one of {', '.join(HARDWARE)}")
    sources = app_sources()
    requirements_file = REPO / HARDWARE[hardware].requirements
    check_sources([*sources, requirements_file])
    meta, body = split_front_matter(README.read_text())
    meta = space_front_matter(meta, hardware)
    requirements = requirements_file.read_text()
    if gradio_pin(requirements) != str(meta["sdk_version"]):
        raise ValueError(f"{requirements_file.name} pins gradio=={gradio_pin(requirements)} but README.md's "
                         f"sdk_version is {meta['sdk_version']}: make them the same version")
    files = {path.relative_to(REPO).as_posix(): path for path in sources}
    if GITATTRIBUTES.is_file():
        files[GITATTRIBUTES.name] = GITATTRIBUTES
    readme = "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n" + body
    files["README.md"] = readme.encode()
    files["requirements.txt"] = requirements.encode()
    return Upload(dict(sorted(files.items())), meta, requirements)


def stage(upload, folder):
    """Writes the Upload's files into `folder` (new or empty), laid out as on the Space."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"{folder} is not empty: give a new or empty folder to stage the Space in")
    for name, content in upload.files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            shutil.copyfile(content, target)


def space_url(space_id):
    return f"{constants.ENDPOINT}/spaces/{space_id}"


def describe(upload, space_id, hardware, private):
    """The dry run's report: every file with its size, the front matter, the requirements."""
    total = sum(upload.size(name) for name in upload.files)
    lines = [f"Space: {space_url(space_id)} ({'private' if private else 'public'})",
             f"Hardware: {hardware}: {HARDWARE[hardware].plan}",
             f"Files ({len(upload.files)}, {total / 1e6:.1f} MB):"]
    lines += [f"  {upload.size(name):>10,}  {name}" for name in upload.files]
    lines += ["Front matter of README.md:", "---",
              yaml.safe_dump(upload.front_matter, sort_keys=False, allow_unicode=True).rstrip(), "---",
              f"requirements.txt (from {HARDWARE[hardware].requirements}):", upload.requirements.rstrip()]
    return "\n".join(lines)


def describe_refusal(error, space_id, hardware):
    """One line, with the fix, for an HTTP error the Hub answered."""
    status = error.response.status_code if error.response is not None else None
    owner = space_id.split("/")[0]
    fixes = {
        401: f"the Hub does not accept the token (401): it is invalid or expired; {TOKEN_HELP}",
        402: f"the plan does not pay for {hardware} hardware (402): CPU Basic Spaces need PRO (or a Team or "
             "Enterprise organisation); free accounts can use --hardware zero-gpu",
        403: f"the Hub refused (403): the token may not write to {owner} (use a write token; a fine-grained one "
             f"needs write access to {owner}), or the plan does not allow {hardware} (CPU Basic needs PRO; free "
             "accounts can use --hardware zero-gpu)",
        404: f"{space_id} was not found (404): is {owner} your user name or an organisation you belong to?",
        409: f"the Hub reported a conflict for {space_id} (409): a model or dataset may have that name, or another "
             "upload ran at the same time; choose another NAME or run again",
        429: "the Hub asked to slow down (429): wait a few minutes and run again",
    }
    line = fixes.get(status, f"the Hub refused the upload ({status}): run again later; "
                             "https://status.huggingface.co says whether the Hub is down")
    server = (error.server_message or "").strip().splitlines()
    return f"error: {line} [Hub: {server[0][:200]}]" if server else f"error: {line}"


@contextmanager
def hub_errors(space_id, hardware):
    """Turns the Hub's refusals and network failures into one-line SystemExits with the fix."""
    try:
        yield
    except OfflineModeIsEnabled:
        raise SystemExit("error: HF_HUB_OFFLINE is set, so nothing can be sent: unset it and run again") from None
    except HfHubHTTPError as error:
        raise SystemExit(describe_refusal(error, space_id, hardware)) from None
    except (httpx2.TransportError, ConnectionError) as error:
        raise SystemExit(f"error: cannot reach {constants.ENDPOINT} ({type(error).__name__}: {error}): check the "
                         "network connection (or HTTPS_PROXY) and run again") from None


def needs_new_hardware(current, hardware):
    """Whether a Space on `current` hardware cannot run the flavour of `hardware`: the
    ZeroGPU flavour has no TensorFlow, and the TensorFlow one has no torch for ZeroGPU."""
    on_zero = current is not None and str(getattr(current, "value", current)).startswith("zero-")
    return current is None or on_zero != (HARDWARE[hardware].space_hardware == SpaceHardware.ZERO_A10G)


def publish(upload, space_id, hardware, private):
    """Creates the Space if needed, moves it to hardware that can run the flavour, and
    uploads exactly `upload`'s files (deleting any other file there); returns its URL."""
    token = get_token()
    if not token:
        raise SystemExit(f"error: no Hugging Face token: {TOKEN_HELP}")
    api = HfApi(token=token)
    choice = HARDWARE[hardware].space_hardware
    with tempfile.TemporaryDirectory() as folder, hub_errors(space_id, hardware):
        stage(upload, folder)
        api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True,
                        space_hardware=choice)
        runtime = api.get_space_runtime(space_id)
        # The files first: if the upload fails, the Space keeps files and hardware that match.
        api.upload_folder(repo_id=space_id, repo_type="space", folder_path=folder, delete_patterns="*",
                          commit_message=f"Publish CIFAR-10 Studio ({hardware})")
        if needs_new_hardware(runtime.requested_hardware or runtime.hardware, hardware):
            api.request_space_hardware(space_id, choice)
    return space_url(space_id)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m cifar_demo.publish",
        description="Put the app on a Hugging Face Space: creates it if needed and uploads exactly the files it "
                    "needs (any other file on the Space is deleted). The token comes from HF_TOKEN or `hf auth login`.",
    )
    parser.add_argument("space", metavar="OWNER/NAME", help="the Space, for example alice/cifar10-studio")
    parser.add_argument("--hardware", choices=HARDWARE, default="cpu-basic",
                        help="; ".join(f"{name}: {choice.plan}" for name, choice in HARDWARE.items()))
    parser.add_argument("--private", action="store_true", help="make a new Space private (an existing one keeps its "
                        "visibility)")
    parser.add_argument("--dry-run", action="store_true",
                        help="list every file with its size, the front matter and the requirements; send nothing")
    parser.add_argument("--stage", metavar="DIR", type=Path,
                        help="also write the exact folder that would be uploaded into DIR (new or empty); implies "
                             "--dry-run")
    args = parser.parse_args(argv)
    try:
        space_id = check_space_id(args.space)
        upload = plan_upload(args.hardware)
        if args.stage:
            stage(upload, args.stage)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if args.dry_run or args.stage:
        print(describe(upload, space_id, args.hardware, args.private))
        print(f"Dry run: nothing was sent{f'; staged in {args.stage}' if args.stage else ''}.")
        return
    total = sum(upload.size(name) for name in upload.files)
    print(f"Uploading {len(upload.files)} files ({total / 1e6:.1f} MB) to {space_id} for {args.hardware}...",
          file=sys.stderr)
    url = publish(upload, space_id, args.hardware, args.private)
    print(f"The first build takes several minutes; follow it under Logs at {url}", file=sys.stderr)
    print(url)


if __name__ == "__main__":
    main()
