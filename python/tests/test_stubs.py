"""The type stubs name everything the extension module exports, and no more."""
import ast
import pathlib

import tensorlane._native as native

STUB = pathlib.Path(__file__).resolve().parents[1] / "tensorlane" / "_native.pyi"


def stub_names():
    tree = ast.parse(STUB.read_text())
    names = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            members = {n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
            for base in bases:
                members |= names.get(base, set())
            names[node.name] = members
        elif isinstance(node, ast.FunctionDef):
            names[node.name] = None
    return names


def test_every_export_and_method_has_a_stub():
    stubs = stub_names()
    exported = {n for n in dir(native) if not n.startswith("_") and n != "SLICE_SECONDS"}
    assert exported == set(stubs) - {"_Handle"}
    for name in exported:
        value = getattr(native, name)
        if not isinstance(value, type):
            continue
        public = {m for m in vars(value) if not m.startswith("_")}
        public |= {m for m in ("__enter__", "__exit__", "__iter__", "__next__", "__aiter__",
                               "__anext__", "__array__", "__dlpack__") if m in vars(value)}
        missing = public - stubs[name]
        extra = {m for m in stubs[name] if not m.startswith("_")} - public
        assert not missing and not extra, (name, missing, extra)
