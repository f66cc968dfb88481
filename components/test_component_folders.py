"""Every component folder is laid out as in kubeflow/pipelines-components, and its metadata tells the truth."""

import importlib
from pathlib import Path

import pytest
import yaml

from vlaforge.kube.images import image

HERE = Path(__file__).parent
FOLDERS = sorted(p.name for p in HERE.iterdir() if p.is_dir() and (p / "__init__.py").exists())
FILES = {"component.py", "metadata.yaml", "README.md", "test_component.py"}
KEYS = {"name", "description", "tier", "stability", "dependencies", "tags", "lastVerified", "links", "owners", "image"}


def test_every_stage_has_a_component_folder():
    stages = {p.stem for p in (HERE.parent / "src" / "vlaforge" / "stages").glob("*.py")} - {"__init__"}
    assert stages <= set(FOLDERS)


@pytest.mark.parametrize("folder", FOLDERS)
def test_folder_holds_the_four_files(folder):
    missing = FILES - {p.name for p in (HERE / folder).iterdir()}
    assert not missing, f"components/{folder} lacks {sorted(missing)}"


@pytest.mark.parametrize("folder", FOLDERS)
def test_metadata(folder):
    meta = yaml.safe_load((HERE / folder / "metadata.yaml").read_text())
    assert set(meta) == KEYS
    assert meta["name"] == folder and meta["description"] and meta["tags"]
    assert meta["tier"] in ("core", "third_party") and meta["stability"] in ("alpha", "beta", "stable")
    assert "Pipelines" in [d["name"] for d in meta["dependencies"]["kubeflow"]]
    assert meta["owners"]["approvers"]
    component = getattr(importlib.import_module(f"components.{folder}.component"), folder)
    assert component.component_spec.implementation.container.image == image(meta["image"])
    for link in meta["links"].values():
        base = HERE / folder if "/" not in link else HERE.parent
        assert (base / link).is_file(), link
    stage = importlib.import_module(f"vlaforge.stages.{folder}")
    assert callable(stage.run)
    assert (HERE / folder / "README.md").read_text().startswith(f"# {folder}")
