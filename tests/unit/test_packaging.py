"""Packaging: what is installed lives under the one import name ``odradek``.

pyproject.toml lists the installed packages by hand (setuptools' package-dir mapping
cannot discover them under a new prefix), so a new package folder that is not listed
would be missing from the wheel. This test pins the list to the folders.
"""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOP = ("broker", "protocol", "storage", "replication")


def _package_of(folder: Path, mapping: dict[str, str]) -> str:
    """The import name of a folder: under the mapping entry whose folder holds it closest."""
    best = max((d for d in mapping.values() if (ROOT / d) in (folder, *folder.parents)), key=len)
    package = next(name for name, d in mapping.items() if d == best)
    return ".".join((package, *folder.relative_to(ROOT / best).parts))


def test_every_package_folder_is_installed_under_odradek():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = config["package-dir"]
    # odradek.testing lives in broker/testing (no new top-level folder) but is its own package.
    assert mapping == {**{f"odradek.{top}": top for top in TOP}, "odradek.testing": "broker/testing"}
    folders = {_package_of(init.parent, mapping)
               for top in TOP for init in (ROOT / top).rglob("__init__.py")}
    assert set(config["packages"]) == folders


def test_the_pytest_plugin_is_registered():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"odradek": "odradek.testing.pytest_plugin"}


def test_the_installed_modules_are_the_repository_folders():
    import odradek.storage

    assert Path(odradek.storage.__file__).parent == ROOT / "storage"
    import odradek.testing

    assert Path(odradek.testing.__file__).parent == ROOT / "broker" / "testing"
