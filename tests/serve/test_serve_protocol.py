"""The committed .proto and stubs match the protocol's field list, and the stubs are current."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from google.protobuf import descriptor

from vlaforge.serve import protogen
from vlaforge.serve.protos import lbm_policy_interface_pb2 as pb

TYPE_NAMES = {v: k for k, v in vars(descriptor.FieldDescriptor).items() if k.startswith("TYPE_")}


def _signature(field) -> tuple:
    kind = field.message_type.full_name if field.message_type else (
        field.enum_type.full_name if field.enum_type else TYPE_NAMES[field.type])
    if field.message_type and field.message_type.GetOptions().map_entry:
        kind = tuple(_signature(f)[1:] for f in field.message_type.fields)
    return field.name, field.number, field.is_repeated, kind


def test_field_list_parses_completely(wire):
    assert len(wire.messages) == 19 and set(wire.enums) == {"ImageDtype", "ImageCompression"}
    assert len(wire.rpcs) == 3


def test_proto_matches_the_field_list(wire):
    assert pb.DESCRIPTOR.package == "lbm_policy_interface"
    assert set(pb.DESCRIPTOR.message_types_by_name) == set(wire.messages)
    for name in wire.messages:
        ours = pb.DESCRIPTOR.message_types_by_name[name]
        theirs = wire.pool.FindMessageTypeByName(f"lbm_policy_interface.{name}")
        assert [_signature(f) for f in ours.fields] == [_signature(f) for f in theirs.fields], name
    for name, values in wire.enums.items():
        assert {v.name: v.number for v in pb.DESCRIPTOR.enum_types_by_name[name].values} == values


def test_services_match_the_field_list(wire):
    for service, method, request, reply in wire.rpcs:
        m = pb.DESCRIPTOR.services_by_name[service].methods_by_name[method]
        assert (m.input_type.name, m.output_type.name) == (request, reply)


def test_generated_stubs_are_current(tmp_path):
    pytest.importorskip("grpc_tools")
    generated = protogen.generate(tmp_path)
    assert {p.name for p in generated} == {"lbm_policy_interface_pb2.py", "lbm_policy_interface_pb2_grpc.py"}
    for path in generated:
        committed = protogen.PROTO_DIR / path.name
        assert committed.read_text() == path.read_text(), f"{committed} is stale: run `make protos`"


def test_stub_version_checks_pass_with_installed_runtime():
    """The generated headers refuse an older protobuf/grpcio at import: import them afresh."""
    code = "import vlaforge.serve.protos.lbm_policy_interface_pb2_grpc"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(protogen.SRC_ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
