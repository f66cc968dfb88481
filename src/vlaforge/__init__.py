"""vlaforge: train vision-language-action robot policies end to end on Kubeflow Pipelines."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vlaforge")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"
