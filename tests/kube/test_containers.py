"""The tiny pipeline in the stage images: podman's docker API + kfp.local.DockerRunner, stage data in a
real S3 server on loopback (rclone serve s3). Needs `make images`; run by `make test-containers`."""

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from vlaforge import storage
from vlaforge.kube.images import FAMILIES, image

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1800)]
KEY, SECRET, BUCKET = "vlaforge-test", "vlaforge-test-secret", "vlaforge-data"
# The tiny preset, shorter still: this test is about the containers, not the models.
FAST = ["llm.train.max_steps=20", "vlm.train.max_steps=10", "vla.train.max_steps=10", "sim_eval.episodes='0:2'"]


def _wait_for(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def podman_env(repo):
    if not shutil.which("podman"):
        pytest.fail("podman is not installed: run `make test-containers` (it runs scripts/podman-env.sh)")
    subprocess.run([str(repo / "scripts" / "podman-env.sh")], check=True)
    return {**os.environ, "CONTAINERS_CONF": str(repo / ".tools" / "podman" / "containers.conf")}


@pytest.fixture(scope="module")
def docker_host(podman_env, tmp_path_factory, repo):
    """podman's docker-compatible API on a private socket, with the stage images present."""
    missing = [image(f) for f in FAMILIES
               if subprocess.run(["podman", "image", "exists", image(f)], env=podman_env).returncode != 0]
    assert not missing, f"images {missing} are not built: run `make images`"
    sock = tmp_path_factory.mktemp("podman") / "podman.sock"
    proc = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"], env=podman_env)
    try:
        _wait_for(sock.exists, "podman API socket")
        yield f"unix://{sock}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def s3(tmp_path_factory, repo):
    """A real S3 server on loopback; yields the env that points clients at it."""
    data = tmp_path_factory.mktemp("s3")
    (data / BUCKET).mkdir()
    port = _free_port()
    rclone = shutil.which("rclone") or str(repo / ".venv" / "bin" / "rclone")
    proc = subprocess.Popen([rclone, "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", f"{KEY},{SECRET}",
                             str(data)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, "rclone S3 server")
        yield {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": KEY,
               "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _corpus() -> str:
    """A small JSON-lines corpus: one made-up sentence pair per document."""
    subjects = ["the robot", "a gripper", "the arm", "my policy", "the camera", "a student", "the model"]
    verbs = ["picks up", "pushes", "opens", "watches", "reaches for", "closes", "moves"]
    objects = ["the red block", "a small drawer", "the green button", "the window", "a blue cup", "the door"]
    docs = [f"{s} {v} {o}. then {subjects[(i + 3) % 7]} {verbs[(i + 5) % 7]} {objects[(i + 1) % 6]}."
            for i, (s, v, o) in enumerate((s, v, o) for s in subjects for v in verbs for o in objects)]
    return "\n".join(json.dumps({"text": d}) for d in docs) + "\n"


def _run_dirs(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)


def _executed_tasks(run_dir: Path) -> set[str]:
    """Names of the tasks that ran (cached ones leave no folder); a ParallelFor's tasks sit one level down,
    under ``for-loop-N-iteration-K``."""
    tasks = set()
    for p in run_dir.iterdir():
        if p.is_dir() and p.name.startswith("for-loop-"):
            tasks |= {q.name for q in p.iterdir() if q.is_dir()}
        elif p.is_dir():
            tasks.add(p.name)
    return tasks


def test_tiny_pipeline_in_containers_with_s3_cache_and_failure(docker_host, s3, tmp_path, monkeypatch, local_kfp):
    from kfp import local

    from vlaforge.kube.local_docker import exit_code_safe_docker

    for name, value in {**s3, "DOCKER_HOST": docker_host}.items():
        monkeypatch.setenv(name, value)
    corpus_uri = f"s3://{BUCKET}/corpus/text.jsonl"
    storage.write_text(corpus_uri, _corpus())
    root = tmp_path / "pipeline_root"
    root.mkdir()
    root.chmod(0o777)  # the images run as uid 1000; the pipeline root is bind-mounted from this host
    local.init(runner=local.DockerRunner(network_mode="host", environment=s3), pipeline_root=str(root),
               enable_caching=True, cache_root=str(tmp_path / "cache"))

    from pipelines.full import STAGE_SECTIONS, full_pipeline

    def run(*overrides, corpus=corpus_uri, **params):
        """The tiny preset, shortened, with ``section.key=value`` overrides each handed to its stage."""
        per_section = {section: [] for section in set(STAGE_SECTIONS.values())}
        for item in [f"tokenize.corpus={corpus}", *FAST, *overrides]:
            section, entry = item.split(".", 1)
            per_section[section].append(entry)
        args = {f"{prefix}_overrides": "\n".join(per_section[section]) for prefix, section in STAGE_SECTIONS.items()}
        with exit_code_safe_docker():
            return full_pipeline(preset="tiny", **args, **params)

    first = run()
    (run1,) = _run_dirs(root)
    stages = _executed_tasks(run1)
    assert {"tokenize", "llm-pretrain", "vla-finetune", "plan-slices-5", "sim-eval", "merge-slices-5",
            "step-analysis"} <= stages
    assert (Path(first.outputs["report"].path)).stat().st_size > 0
    assert Path(first.outputs["policy"].path).stat().st_uid == 1000, "stages must run as the images' non-root user"

    # one late-stage parameter changed: everything upstream comes from the cache
    second = run(model_name="renamed_policy")
    run2 = _run_dirs(root)[-1]
    assert run2 != run1
    # the input fingerprints always run (they read the URIs' listings); the sim_eval slices, their merge
    # and the analysis follow the new name; the slice plan and every upstream stage are cache hits
    assert _executed_tasks(run2) == {"fingerprint-inputs", "fingerprint-inputs-2", "sim-eval", "merge-slices-5",
                                     "step-analysis"}
    assert Path(second.outputs["policy"].path) == Path(first.outputs["policy"].path)  # served from run 1
    assert Path(second.outputs["report"].path).is_relative_to(run2)

    # evaluate-and-compare: policies imported by URI, one sim_eval each (ParallelFor), one analysis
    from pipelines.evaluate_compare import evaluate_compare_pipeline

    policy_uri = first.outputs["policy"].path
    with exit_code_safe_docker():
        compared = evaluate_compare_pipeline(policies=[{"model": "policy_a", "uri": policy_uri},
                                                       {"model": "policy_b", "uri": policy_uri}],
                                             preset="tiny", episodes="0:2")
    report = Path(compared.output.path).read_text()
    assert "policy_a" in report and "policy_b" in report

    # a stage that fails inside its container fails the run (kfp's auto-remove would report success)
    with pytest.raises(RuntimeError, match="FAILURE"):
        run(corpus=f"s3://{BUCKET}/no-such-corpus/")


def test_container_exit_code_decides_the_task_status(docker_host, tmp_path, monkeypatch, local_kfp):
    """kfp's DockerRunner loses the exit code on podman (auto-remove) and calls exit 3 a success."""
    from kfp import dsl, local

    from vlaforge.kube.local_docker import exit_code_safe_docker

    @dsl.component(base_image=image("analysis"), install_kfp_package=False)
    def exit_with(code: int):
        import time

        time.sleep(1)  # long enough for podman's auto-remove to win the race in kfp's own runner
        raise SystemExit(code)

    monkeypatch.setenv("DOCKER_HOST", docker_host)
    root = tmp_path / "root"
    root.mkdir(mode=0o777)
    root.chmod(0o777)
    local.init(runner=local.DockerRunner(), pipeline_root=str(root), raise_on_error=True)
    with exit_code_safe_docker():
        exit_with(code=0)
        with pytest.raises(RuntimeError, match="FAILURE"):
            exit_with(code=3)
