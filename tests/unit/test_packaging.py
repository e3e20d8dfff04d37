"""Packaging: what is installed lives under the one import name ``odradek``.

pyproject.toml lists the installed packages by hand (setuptools' package-dir mapping
cannot discover them under a new prefix), so a new package folder that is not listed
would be missing from the wheel. This test pins the list to the folders.
"""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOP = ("broker", "protocol", "storage", "replication")


def test_every_package_folder_is_installed_under_odradek():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {
        "odradek." + ".".join(init.parent.relative_to(ROOT).parts)
        for top in TOP for init in (ROOT / top).rglob("__init__.py")
    }
    assert set(config["packages"]) == folders
    assert config["package-dir"] == {f"odradek.{top}": top for top in TOP}


def test_the_installed_modules_are_the_repository_folders():
    import odradek.storage

    assert Path(odradek.storage.__file__).parent == ROOT / "storage"
