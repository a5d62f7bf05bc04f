"""Code that has only run on a CPU must not carry a CPU-only habit to a GPU: no ``.cuda()`` (tensors follow the
device of their inputs or model), and no run-time tensor made on "whatever the default device is" — host-side
bookkeeping says ``device="cpu"``, device-side work names its input's device. Module construction (``__init__``,
``nn.Parameter``, ``register_buffer``) keeps PyTorch's convention and is moved with the module. The bf16 side of the
same bring-up — two training steps of every family under ``precision="bf16-mixed"``, export, inference and
evaluation — is ``audiokit check``, which the one-shot dry run runs on the CPU (tests/test_gpu_oneshot.py)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "audiokit"
FACTORIES = {"zeros", "ones", "full", "arange", "tensor", "empty", "randn", "rand", "randint", "linspace", "eye",
             "as_tensor", "randperm", "logspace"}


def _default_device_factories(source: str) -> list[int]:
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    lines = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FACTORIES
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
            continue
        if any(k.arg == "device" for k in node.keywords):
            continue
        p = parents.get(node)
        while p is not None:
            if isinstance(p, ast.FunctionDef) and p.name == "__init__":
                break
            if isinstance(p, ast.Call) and isinstance(p.func, ast.Attribute) and p.func.attr in ("Parameter", "register_buffer"):
                break
            p = parents.get(p)
        else:
            lines.append(node.lineno)
    return lines


def test_no_tensor_is_made_on_the_default_device_at_run_time():
    found = [f"{f.relative_to(PACKAGE.parent)}:{n}" for f in sorted(PACKAGE.rglob("*.py"))
             for n in _default_device_factories(f.read_text())]
    assert not found, "tensors made on the default device (name device=...): " + ", ".join(found)


def test_the_rule_sees_what_it_should():
    src = ("import torch\nclass M(torch.nn.Module):\n    def __init__(self):\n        self.w = torch.nn.Parameter(torch.zeros(3))\n"
           "        self.b = torch.ones(2)\n    def forward(self, x):\n        a = torch.arange(x.shape[0], device=x.device)\n"
           "        return x + torch.zeros(3)\n")
    assert _default_device_factories(src) == [8]


def test_nothing_calls_cuda_directly():
    offenders = [f"{f.relative_to(PACKAGE.parent)}" for f in PACKAGE.rglob("*.py") if ".cuda(" in f.read_text()]
    assert not offenders
