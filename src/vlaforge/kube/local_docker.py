"""``kfp.local.DockerRunner`` that reports a failed component as failed, on podman too.

kfp 2.17 starts each container with ``auto_remove=True`` and, when the container is gone before
``wait()`` answers (podman removes it at once), assumes exit code 0: a failed stage passes. Here the
container runs without auto-remove; its exit code is read, then the container is removed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

from kfp.local import docker_task_handler


def run_container_keeping_exit_code(client, image: str, command: list[str], volumes: dict,
                                    **container_run_args) -> int:
    """Drop-in for ``kfp.local.docker_task_handler.run_docker_container``; returns the real exit code."""
    image = docker_task_handler.add_latest_tag_if_not_present(image)
    if not any(image in (img.tags + (img.attrs.get("RepoDigests") or [])) for img in client.images.list()):
        print(f"Pulling image {image!r}")
        client.images.pull(image)
    container_run_args.pop("auto_remove", None)
    container = client.containers.run(image=image, command=command, detach=True, stdout=True, stderr=True,
                                      volumes=volumes, auto_remove=False, **container_run_args)
    try:
        for line in container.logs(stream=True, follow=True):
            print(line.decode(errors="replace"), end="")
        return int(container.wait()["StatusCode"])
    finally:
        container.remove(force=True)


@contextlib.contextmanager
def exit_code_safe_docker() -> Iterator[None]:
    """Within this block, DockerRunner tasks keep their containers until the exit code is read."""
    with mock.patch.object(docker_task_handler, "run_docker_container", run_container_keeping_exit_code):
        yield
