"""The chart's registration script (files/register_pipelines.py), driven through kfp.Client.

STAND-IN: the KFP API server cannot run here, so these tests serve the few KFP v2beta1 REST endpoints
the script calls (healthz, pipelines list, upload, upload_version, versions list) from a tiny
http.server on 127.0.0.1 that keeps pipelines in memory and answers 409 AlreadyExists the way KFP
does. It checks the client's requests, not KFP's behaviour beyond those endpoints.
"""

from __future__ import annotations

import email.parser
import importlib.util
import itertools
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from chart_helpers import CHART, chart_pipelines

API = "/apis/v2beta1"
# kfp.Client warns on every construction that it needs KFP >= 2.0.0-beta.2.
pytestmark = pytest.mark.filterwarnings("ignore:This client only works:FutureWarning")


def load_script():
    spec = importlib.util.spec_from_file_location("register_pipelines", CHART / "files" / "register_pipelines.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


register_pipelines = load_script()


class KfpStandIn:
    """In-memory stand-in for KFP's pipeline REST API (not the real server)."""

    def __init__(self):
        self.pipelines: dict[str, dict] = {}   # id -> {"display_name", "namespace", "versions": {name: body}}
        self.requests: list[tuple[str, str]] = []
        self.fail_uploads_with: int | None = None
        self._ids = itertools.count(1)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, name: str, versions: tuple[str, ...] = (), namespace: str = "") -> str:
        pid = f"p{next(self._ids)}"
        self.pipelines[pid] = {"display_name": name, "namespace": namespace,
                               "versions": {v: {"pipeline_version_id": f"v{next(self._ids)}"} for v in versions}}
        return pid

    def by_name(self, name: str) -> dict | None:
        return next((p for p in self.pipelines.values() if p["display_name"] == name), None)

    def _handler(self):
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _exists(self, what: str):
                self._reply(409, {"error_message": f"{what} already exists", "code": 6,
                                  "message": f"AlreadyExists: {what}"})

            def _name_filter(self, query) -> str | None:
                if "filter" not in query:
                    return None
                (predicate,) = json.loads(query["filter"][0])["predicates"]
                assert predicate["key"] == "display_name" and predicate["operation"] == "EQUALS"
                return predicate["stringValue"]

            def do_GET(self):
                url = urlparse(self.path)
                query = parse_qs(url.query)
                stand_in.requests.append(("GET", url.path))
                if url.path == f"{API}/healthz":
                    return self._reply(200, {"multi_user": False})
                if url.path == f"{API}/pipelines":
                    name = self._name_filter(query)
                    namespace = query.get("namespace", [""])[0]
                    found = [{"pipeline_id": pid, "display_name": p["display_name"], "namespace": p["namespace"]}
                             for pid, p in stand_in.pipelines.items()
                             if (name is None or p["display_name"] == name) and p["namespace"] == namespace]
                    return self._reply(200, {"pipelines": found, "total_size": len(found)} if found else {})
                parts = url.path[len(API) + 1:].split("/")
                if len(parts) == 3 and parts[0] == "pipelines" and parts[2] == "versions":
                    pipeline = stand_in.pipelines.get(parts[1])
                    if pipeline is None:
                        return self._reply(404, {"message": f"pipeline {parts[1]} not found"})
                    name = self._name_filter(query)
                    found = [{"pipeline_id": parts[1], "display_name": v, **body}
                             for v, body in pipeline["versions"].items() if name is None or v == name]
                    return self._reply(200, {"pipeline_versions": found, "total_size": len(found)} if found else {})
                self._reply(404, {"message": f"no stand-in for GET {url.path}"})

            def do_POST(self):
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                stand_in.requests.append(("POST", url.path))
                body = self.rfile.read(int(self.headers["Content-Length"]))
                form = email.parser.BytesParser().parsebytes(
                    f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body)
                (upload,) = [part for part in form.get_payload() if part.get_param("name", header="content-disposition") == "uploadfile"]
                spec = yaml.safe_load_all(upload.get_payload(decode=True).decode())
                if stand_in.fail_uploads_with:
                    return self._reply(stand_in.fail_uploads_with, {"message": "stand-in failure"})
                if url.path == f"{API}/pipelines/upload":
                    name = query["name"]
                    if stand_in.by_name(name):
                        return self._exists(f"pipeline {name}")
                    pid = stand_in.add(name, versions=(name,), namespace=query.get("namespace", ""))
                    stand_in.pipelines[pid]["versions"][name]["spec"] = list(spec)
                    return self._reply(200, {"pipeline_id": pid, "display_name": name})
                if url.path == f"{API}/pipelines/upload_version":
                    pipeline = stand_in.pipelines.get(query["pipelineid"])
                    if pipeline is None:
                        return self._reply(404, {"message": f"pipeline {query['pipelineid']} not found"})
                    if query["name"] in pipeline["versions"]:
                        return self._exists(f"pipeline version {query['name']}")
                    vid = f"v{next(stand_in._ids)}"
                    pipeline["versions"][query["name"]] = {"pipeline_version_id": vid, "spec": list(spec)}
                    return self._reply(200, {"pipeline_id": query["pipelineid"], "pipeline_version_id": vid,
                                             "display_name": query["name"]})
                self._reply(404, {"message": f"no stand-in for POST {url.path}"})

        return Handler

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def kfp_api():
    with KfpStandIn() as stand_in:
        yield stand_in


@pytest.fixture(autouse=True)
def isolated_kfp_context(tmp_path, monkeypatch):
    """kfp.Client reads ~/.config/kfp/context.json: keep the developer's out of the tests."""
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture
def plan(tmp_path, compiled_dir):
    """The plan the chart renders, for the compiled pipelines."""
    entries = []
    for path in sorted(compiled_dir.glob("*.yaml")):
        if chart_pipelines.is_pipeline_ir(path):
            name = next(yaml.safe_load_all(path.read_text()))["pipelineInfo"]["name"]
            entries.append({"file": path.name, "pipeline": name, "version": f"{name}-v0-1-0", "description": ""})
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(entries))
    return plan_file, entries


def run(action, kfp_api, plan_file, compiled_dir, *extra):
    return register_pipelines.main([action, "--host", kfp_api.url, "--plan", str(plan_file),
                                    "--pipelines", str(compiled_dir), *extra])


def test_upload_registers_every_pipeline_version_with_the_compiled_spec(kfp_api, plan, compiled_dir):
    plan_file, entries = plan
    assert run("upload", kfp_api, plan_file, compiled_dir) == 0
    for entry in entries:
        pipeline = kfp_api.by_name(entry["pipeline"])
        assert pipeline is not None
        uploaded = pipeline["versions"][entry["version"]]["spec"]
        assert uploaded == list(yaml.safe_load_all((compiled_dir / entry["file"]).read_text()))
    assert run("check", kfp_api, plan_file, compiled_dir) == 0


def test_upload_is_idempotent_on_409_already_exists(kfp_api, plan, compiled_dir, caplog):
    caplog.set_level(logging.INFO)
    plan_file, entries = plan
    for entry in entries:  # a previous install registered everything
        kfp_api.add(entry["pipeline"], versions=(entry["version"],))
    before = json.dumps(kfp_api.pipelines, sort_keys=True)
    assert run("upload", kfp_api, plan_file, compiled_dir) == 0
    assert json.dumps(kfp_api.pipelines, sort_keys=True) == before
    assert ("POST", f"{API}/pipelines/upload_version") in kfp_api.requests  # it tried, KFP said 409
    assert "already exists" in caplog.text


def test_upload_adds_a_version_to_an_existing_pipeline(kfp_api, plan, compiled_dir):
    plan_file, entries = plan
    pid = kfp_api.add(entries[0]["pipeline"], versions=("old-version",))
    assert run("upload", kfp_api, plan_file, compiled_dir) == 0
    assert set(kfp_api.pipelines[pid]["versions"]) == {"old-version", entries[0]["version"]}
    uploads = [r for r in kfp_api.requests if r == ("POST", f"{API}/pipelines/upload")]
    assert len(uploads) == len(entries) - 1  # only the pipelines KFP did not have yet


def test_upload_fails_loudly_on_other_errors(kfp_api, plan, compiled_dir):
    plan_file, _ = plan
    kfp_api.fail_uploads_with = 500
    with pytest.raises(RuntimeError, match="HTTP 500"):
        run("upload", kfp_api, plan_file, compiled_dir)


def test_check_reports_what_is_missing(kfp_api, plan, compiled_dir, capsys):
    plan_file, entries = plan
    kfp_api.add(entries[0]["pipeline"], versions=("some-other-version",))
    assert run("check", kfp_api, plan_file, compiled_dir) == 1
    err = capsys.readouterr().err
    for entry in entries:
        assert f"{entry['pipeline']}/{entry['version']}" in err


def test_multi_user_namespace_scopes_the_pipelines(kfp_api, plan, compiled_dir):
    plan_file, entries = plan
    assert run("upload", kfp_api, plan_file, compiled_dir, "--namespace", "team-a") == 0
    assert {p["namespace"] for p in kfp_api.pipelines.values()} == {"team-a"}
    assert run("check", kfp_api, plan_file, compiled_dir, "--namespace", "team-a") == 0
    assert run("check", kfp_api, plan_file, compiled_dir) == 1


def test_bad_plan_and_missing_file_name_the_culprit(kfp_api, tmp_path, compiled_dir):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"file": "x.yaml", "pipeline": "x"}]))
    with pytest.raises(ValueError, match="entry 0 lacks version"):
        run("upload", kfp_api, bad, compiled_dir)
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps([{"file": "nope.yaml", "pipeline": "x", "version": "x-v1"}]))
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        run("upload", kfp_api, missing, compiled_dir)
