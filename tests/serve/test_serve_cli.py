"""`vlaforge serve` as a process: serves until SIGTERM, settings from flags and --set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

import vlaforge
from vlaforge.cli import main
from vlaforge.policy import Observation
from vlaforge.serve.client import PolicyClient

SRC = str(Path(vlaforge.__file__).resolve().parents[1])


def _serve(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
           "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "vlaforge.cli", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_serve_command_until_sigterm():
    proc = _serve("baseline:zero", "--port", "0", "--host", "127.0.0.1", "--max-batch", "2",
                  "--set", "mapping.action_scale=0.02")
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving baseline:zero on 127.0.0.1:"), proc.stderr.read()
        with PolicyClient(line.split()[-1], wait_s=30) as client:
            config = yaml.safe_load(client.metadata.raw_policy_config)
            assert config["serve"]["max_batch"] == 2 and config["serve"]["mapping"]["action_scale"] == 0.02
            obs = Observation(images={}, proprio=np.array([0, 0.6, 0.2, 1], np.float32), instruction="")
            np.testing.assert_allclose(client.predict([[obs, obs]])[0], [[0, 0, 0, 0]], atol=1e-5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.communicate()


def test_serve_command_errors(capsys):
    assert main(["serve", "baseline:nope", "--port", "0"]) == 2
    assert "unknown baseline policy 'nope'" in capsys.readouterr().err
    assert main(["serve", "baseline:zero", "--port", "0", "--set", "mapping.action_scal=1"]) == 2
    assert "unknown key 'serve.mapping.action_scal'" in capsys.readouterr().err
    assert main(["serve", "baseline:zero", "--port", "0", "--max-batch", "0"]) == 2
    assert "serve.max_batch must be at least 1, got 0" in capsys.readouterr().err
