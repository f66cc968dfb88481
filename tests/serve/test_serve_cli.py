"""`vlaforge serve` as a process: serves until SIGTERM, settings from flags and --set."""

from __future__ import annotations

import signal

import numpy as np
import yaml

from vlaforge.cli import main
from vlaforge.policy import Observation
from vlaforge.serve.client import PolicyClient


def test_serve_command_until_sigterm(serve_command):
    proc = serve_command("baseline:zero", "--port", "0", "--host", "127.0.0.1", "--max-batch", "2",
                          "--set", "mapping.action_scale=0.02")
    line = proc.stdout.readline()
    assert line.startswith("serving baseline:zero on 127.0.0.1:"), proc.stderr.read()
    with PolicyClient(line.split()[-1], wait_s=30) as client:
        config = yaml.safe_load(client.metadata.raw_policy_config)
        assert config["serve"]["max_batch"] == 2 and config["serve"]["mapping"]["action_scale"] == 0.02
        obs = Observation(images={}, proprio=np.array([0, 0.6, 0.2, 1], np.float32), instruction="")
        np.testing.assert_allclose(client.predict([[obs, obs]])[0], [[0, 0, 0, 0]], atol=1e-5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_serve_command_errors(capsys):
    assert main(["serve", "baseline:nope", "--port", "0"]) == 2
    assert "unknown baseline policy 'nope'" in capsys.readouterr().err
    assert main(["serve", "baseline:zero", "--port", "0", "--set", "mapping.action_scal=1"]) == 2
    assert "unknown key 'serve.mapping.action_scal'" in capsys.readouterr().err
    assert main(["serve", "baseline:zero", "--port", "0", "--max-batch", "0"]) == 2
    assert "serve.max_batch must be at least 1, got 0" in capsys.readouterr().err
