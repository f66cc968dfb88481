"""`vlaforge serve --protocol openpi` driven by openpi's own client package.

``openpi-client`` (``WebsocketClientPolicy``) pins numpy < 2 and needs ``typing_extensions`` without
declaring it, so it lives in its own virtual environment, ``.cache/openpi-venv``, made by the
project's ``scripts/make_openpi_venv.sh`` (``make openpi-venv``) the first time these tests run.
The clients run there (``openpi_driver.py``); the server runs in this environment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from vlaforge.serve import msgpack_numpy
from vlaforge.serve.openpi import serve_openpi
from vlaforge.serve.server import ServeConfig

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("openpi_driver.py")


@pytest.fixture(scope="session")
def openpi_python() -> str:
    done = subprocess.run(["bash", str(REPO / "scripts" / "make_openpi_venv.sh")], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr[-2000:]
    return str(REPO / done.stdout.strip().splitlines()[-1])


def _drive(python: str, port: int, clients: int = 4, steps: int = 4, bad: int = 2, cameras=(), size: int = 16):
    done = subprocess.run([python, str(DRIVER), str(port), str(clients), str(steps), str(bad), ",".join(cameras),
                           str(size)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_wire_format_is_byte_identical_to_openpi_client(openpi_python):
    message = {"images": {"top": np.arange(24, dtype=np.uint8).reshape(2, 4, 3)},
               "state": np.array([0.5, -1.0, 2.0, 0.25], np.float32), "prompt": "pick", "step": np.int64(3)}
    code = ("import sys, numpy as np; from openpi_client import msgpack_numpy as m; "
            "msg = {'images': {'top': np.arange(24, dtype=np.uint8).reshape(2, 4, 3)}, "
            "'state': np.array([0.5, -1.0, 2.0, 0.25], np.float32), 'prompt': 'pick', 'step': np.int64(3)}; "
            "sys.stdout.write(m.packb(msg).hex())")
    theirs = bytes.fromhex(subprocess.run([openpi_python, "-c", code], capture_output=True, text=True,
                                          check=True).stdout)
    assert msgpack_numpy.packb(message) == theirs
    back = msgpack_numpy.unpackb(theirs)
    np.testing.assert_array_equal(back["images"]["top"], message["images"]["top"])
    assert back["state"].dtype == np.float32 and back["step"] == 3 and back["prompt"] == "pick"


def test_four_openpi_clients_batched_with_their_own_actions_and_one_bad_observation(openpi_python, scripted):
    policy = scripted(n_obs_steps=2, execute_steps=3, chunk_len=5, cameras=("front", "wrist"), delay_s=0.05)
    config = ServeConfig(batch_window_ms=20.0, max_batch=8)
    server = serve_openpi(policy, "test://scripted", port=0, host="127.0.0.1", config=config)
    try:
        result = _drive(openpi_python, server.port, cameras=("front", "wrist"))
    finally:
        server.stop().wait(10)
    assert result["numpy"].startswith("1."), "the client side runs openpi's numpy < 2 environment"
    for i, client in enumerate(result["clients"]):
        meta = client["metadata"]
        assert meta["protocol"] == "openpi" and meta["name"] == "scripted" and meta["cameras"] == ["front", "wrist"]
        assert meta["observation"]["images"] == {"front": "images/front", "wrist": "images/wrist"}
        want_steps = 3 if i == 2 else 4
        assert len(client["actions"]) == want_steps, client["errors"]
        dx, grip = (-0.5 if "left" in client["prompt"] else 0.5), (1.0 if "close" in client["prompt"] else -1.0)
        for chunk in client["actions"]:  # the whole chunk, each row telling whose observation it answers
            np.testing.assert_allclose(chunk, [[dx, 0.0, j / 10, grip] for j in range(5)], atol=1e-6)
    (error,) = result["clients"][2]["errors"]
    assert "Error in inference server" in error and "bad observation: state: expected 4 finite numbers, got shape (3,)" in error
    assert not any(c["errors"] for i, c in enumerate(result["clients"]) if i != 2)
    assert result["clients"][0]["reset"] == {"reset": True}
    sizes = [n for n, _, _ in policy.calls]
    assert sum(sizes) == 15 and max(sizes) > 1, f"no cross-client batching: {sizes}"
    history = policy.calls[-1][2][0]
    assert len(history) == 2 and history[-1].images["front"].shape == (16, 16, 3)  # resized from 20x16


def test_serve_command_speaks_openpi(openpi_python, serve_command):
    proc = serve_command("baseline:random", "--protocol", "openpi", "--port", "0", "--host", "127.0.0.1",
                         "--max-batch", "4")
    line = proc.stdout.readline()
    assert line.startswith("serving baseline:random on 127.0.0.1:"), proc.stderr.read()
    port = int(line.split(":")[-1])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as reply:
        assert reply.status == 200 and reply.read() == b"OK\n"
    result = _drive(openpi_python, port, clients=4, steps=5, bad=1)
    for i, client in enumerate(result["clients"]):
        assert client["metadata"]["name"] == "random" and client["metadata"]["observation"]["state_dim"] == 4
        assert len(client["actions"]) == (4 if i == 1 else 5)
        chunks = np.asarray(client["actions"])
        assert chunks.shape[1:] == (1, 4) and np.all(np.abs(chunks) <= 1)
    assert "state: expected 4 finite numbers" in result["clients"][1]["errors"][0]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_protocol_setting_is_checked(capsys):
    from vlaforge.cli import main

    assert ServeConfig().protocol == "grpc"
    assert main(["serve", "baseline:zero", "--port", "0", "--set", "protocol=zmq"]) == 2
    assert "serve.protocol must be one of grpc, openpi, got 'zmq'" in capsys.readouterr().err
    assert main(["serve", "baseline:zero", "--port", "0", "--set", "openpi.state_ky=x"]) == 2
    assert "unknown key 'serve.openpi.state_ky'" in capsys.readouterr().err
