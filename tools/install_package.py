"""Makes the in-tree `terra` package importable from the project's virtual environment.

An editable install in the spirit of `pip install -e`: a .pth file naming the
repository root, so `terra` and its compiled `terra._C` (built in place) are found.
"""
import pathlib
import sysconfig

root = pathlib.Path(__file__).resolve().parent.parent
site = pathlib.Path(sysconfig.get_paths()["purelib"])
pth = site / "terra.pth"
wanted = f"{root}\n"
if not pth.exists() or pth.read_text() != wanted:
    pth.write_text(wanted)
