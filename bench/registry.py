"""The programs and the systems the suite knows, and how a name resolves to them."""

import pathlib

PROGRAM_DIR = pathlib.Path(__file__).resolve().parent / "programs"
REPO_ROOT = PROGRAM_DIR.parent.parent

# Column order of every table and chart; eager is the reference of the others.
SYSTEMS = ("eager", "terra", "compile", "compile-fullgraph", "torchscript")

SYSTEM_LABELS = {
    "eager": "eager PyTorch",
    "terra": "Terra (python -m terra run)",
    "compile": "torch.compile",
    "compile-fullgraph": "torch.compile(fullgraph=True)",
    "torchscript": "TorchScript (script, else trace)",
}


def programs(directory=None):
    """{short name: script path} for NN_name.py in `directory` (default bench/programs), in numeric order."""
    found = {}
    for path in sorted(pathlib.Path(directory or PROGRAM_DIR).glob("[0-9][0-9]_*.py")):
        found[path.stem.split("_", 1)[1]] = path
    return found


def resolve_programs(spec, directory=None):
    """Program names from a comma list ('resnet,03_faster_rcnn,3'); raises ValueError if unknown."""
    known = programs(directory)
    if not known:
        raise ValueError(f"no NN_name.py programs in {directory or PROGRAM_DIR}")
    if not spec:
        return list(known)
    by_alias = {}
    for name, path in known.items():
        number = path.stem.split("_", 1)[0]
        for alias in (name, path.stem, number, str(int(number))):
            by_alias[alias] = name
    wanted, unknown = [], []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        (wanted.append(by_alias[item]) if item in by_alias else unknown.append(item))
    if unknown or not wanted:
        raise ValueError(f"unknown program(s): {', '.join(unknown) or '(none given)'}; valid: {', '.join(known)}")
    return list(dict.fromkeys(wanted))


def resolve_systems(spec, default):
    """System names from a comma list ('all' = every system); raises ValueError if unknown."""
    if not spec:
        return list(default)
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if items == ["all"]:
        return list(SYSTEMS)
    unknown = [s for s in items if s not in SYSTEMS]
    if unknown or not items:
        raise ValueError(f"unknown system(s): {', '.join(unknown) or '(none given)'}; valid: {', '.join(SYSTEMS)}, all")
    return [s for s in SYSTEMS if s in items]  # canonical order
