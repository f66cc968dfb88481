"""Robot clients written against openpi's own package: run with the openpi venv's python.

``python openpi_driver.py PORT CLIENTS STEPS BAD_CLIENT CAMERAS SIZE``: CLIENTS threads, each a
``openpi_client.websocket_client_policy.WebsocketClientPolicy``, start together and call ``infer``
STEPS times with observations in openpi's layout (``images/<camera>`` HxWx3 uint8, ``state``,
``prompt``); client BAD_CLIENT sends a 3-dimensional state at step 1 and goes on after the error.
Client 0 ends with ``{"reset": True}``. Prints one JSON object: per client the metadata, the action
chunks and the error texts.
"""

import json
import sys
import threading

import numpy as np
from openpi_client.websocket_client_policy import WebsocketClientPolicy


def main() -> None:
    port, clients, steps, bad = (int(a) for a in sys.argv[1:5])
    cameras = [c for c in sys.argv[5].split(",") if c]
    size = int(sys.argv[6])
    barrier = threading.Barrier(clients)
    results = [None] * clients

    def run(i: int) -> None:
        policy = WebsocketClientPolicy(host="127.0.0.1", port=port)
        out = {"metadata": policy.get_server_metadata(), "actions": [], "errors": [], "prompt": ""}
        out["prompt"] = ("move left" if i % 2 else "move right") + (" and close" if i >= 2 else "")
        barrier.wait()
        for step in range(steps):
            obs = {"images": {c: np.full((size + 4, size, 3), 10 * i + step, np.uint8) for c in cameras},
                   "state": np.array([0.1 * i, 0.0, 0.2, 1.0], np.float32), "prompt": out["prompt"]}
            if i == bad and step == 1:
                obs["state"] = np.zeros(3, np.float32)
            try:
                reply = policy.infer(obs)
            except RuntimeError as err:
                out["errors"].append(str(err))
                continue
            out["actions"].append(np.asarray(reply["actions"]).tolist())
            assert reply["actions"].dtype == np.float32 and "infer_ms" in reply["server_timing"]
        if i == 0:
            out["reset"] = policy.infer({"reset": True})
        results[i] = out

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"numpy": np.__version__, "clients": results}, default=str))


if __name__ == "__main__":
    main()
