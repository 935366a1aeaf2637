"""A layer map derived from a network's graph: your own network, given as a file or a callable.

Every network becomes a ``torch.fx.GraphModule`` (a ``torch.export`` archive's own graph, an ONNX
file's through onnx2torch, a TorchScript file's through :func:`script_to_fx`, a Python module's
through ``torch.fx.symbolic_trace``), whose nodes carry the module they ran in. Each convolution,
activation and pooling, and each block's output (the last node a module that holds others ran), is a
layer: named by its module path, with its channels and stride measured by one small forward. A
feature net is the graph with those nodes as its outputs and everything after them removed, as
torchvision's feature extraction does for torchvision's models.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import BackboneError
from ..layers import Layer

PROBE_HW = (128, 160)  # the size of the one forward that measures channels and strides
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)
ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Softplus,
)
POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
ACTIVATION_OPS = (
    "relu",
    "relu6",
    "leaky_relu",
    "prelu",
    "elu",
    "selu",
    "celu",
    "gelu",
    "silu",
    "mish",
    "sigmoid",
    "tanh",
    "hardswish",
    "hardsigmoid",
    "hardtanh",
    "softplus",
)
CONV_OPS = ("conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose2d")
POOL_OPS = ("max_pool2d", "avg_pool2d", "max_pool2d_with_indices", "adaptive_avg_pool2d", "adaptive_max_pool2d")


class CannotConvert(Exception):
    """A TorchScript graph holds what :func:`script_to_fx` does not translate (control flow)."""


# --- what a node is ----------------------------------------------------------------------------------


def scopes(node, gm) -> list[str]:
    """The module paths a node ran in, outermost first ('' for the network itself is left out)."""
    own = node.meta.get("dreamstyle_scopes")
    if own is not None:
        return list(own)
    stack = node.meta.get("nn_module_stack")
    if stack:
        paths = [v[0] if isinstance(v, tuple) else k for k, v in stack.items()]
        return [p for p in paths if p]
    if node.op == "call_module":  # onnx2torch: the ONNX node's name, "layer1/layer1/0/conv1/Conv"
        parts = str(node.target).split("/")
        return ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return []


def op_name(node) -> str:
    target = node.target
    name = getattr(target, "__name__", None) or str(target)
    name = name.split(".")[0] if "." in name and not name.startswith("aten") else name
    return name.removeprefix("aten.").split(".")[0].rstrip("_")


def kind_of(node, gm) -> str:
    if node.op == "call_module":
        module = gm.get_submodule(node.target)
        for types, kind in ((CONVS, "conv"), (ACTIVATIONS, "activation"), (POOLS, "pool")):
            if isinstance(module, types):
                return kind
        if isinstance(module, torch.jit.ScriptModule):  # a TorchScript leaf: by its original name
            name = module.original_name.lower()
            if name.startswith("conv"):
                return "conv"
            return "activation" if name in ACTIVATION_OPS else "pool" if "pool" in name else ""
        return ""
    if node.op in ("call_function", "call_method"):
        name = op_name(node)
        for ops, kind in ((CONV_OPS, "conv"), (ACTIVATION_OPS, "activation"), (POOL_OPS, "pool")):
            if name in ops:
                return kind
    return ""


# --- the layer map ---------------------------------------------------------------------------------------


@dataclass
class Derived:
    """What :func:`derive` finds: the layers, the network's input channels, the default layers."""

    layers: list[Layer]
    input_channels: int
    content: tuple[str, ...]
    style: tuple[str, ...]
    dream: tuple[str, ...]


def input_channels(gm) -> int | None:
    """The input channels of the first convolution, read from its weights (None: none found)."""
    for node in gm.graph.nodes:
        if node.op == "call_module":
            module = gm.get_submodule(node.target)
            if isinstance(module, CONVS):
                return module.in_channels
            if isinstance(module, torch.jit.ScriptModule) and hasattr(module, "weight"):
                return int(module.weight.shape[1]) * int(getattr(module, "groups", 1))
        elif kind_of(node, gm) == "conv" and len(node.args) > 1 and getattr(node.args[1], "op", "") == "get_attr":
            weight = _attr(gm, node.args[1].target)
            groups = node.args[6] if len(node.args) > 6 and isinstance(node.args[6], int) else 1
            return int(weight.shape[1]) * groups
    return None


def _attr(gm, target: str):
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


class _Shapes(torch.fx.Interpreter):
    """Runs a graph and keeps each node's output shape (tensors only)."""

    def __init__(self, gm):
        super().__init__(gm)
        self.shapes: dict[str, tuple] = {}

    def run_node(self, n):
        out = super().run_node(n)
        if isinstance(out, torch.Tensor):
            self.shapes[n.name] = tuple(out.shape)
        return out


def measure(gm, channels: int, name: str) -> dict[str, tuple]:
    """Each node's output shape for one random (1, channels, *PROBE_HW) input: {node name: shape}."""
    shapes = _Shapes(gm)
    try:
        with torch.no_grad():
            shapes.run(torch.rand(1, channels, *PROBE_HW))
    except Exception as exc:  # noqa: BLE001 - whatever the network does with the input, one line
        said = (str(exc).strip().splitlines() or [""])[0]
        raise BackboneError(
            f"backbone {name!r} cannot take a {PROBE_HW[1]}x{PROBE_HW[0]} px picture of {channels} channel"
            f"{'s' if channels != 1 else ''} ({type(exc).__name__}: {said[:200]}); give --input-channels if it "
            "takes another number (dreamstyle needs a network that takes any size)"
        ) from None
    return shapes.shapes


def derive(gm, channels: int, name: str) -> Derived:
    """The layer map of ``gm``: its convolutions, activations, poolings and block outputs, in graph
    order, each named by its module path, with channels and stride from one small forward."""
    shapes = measure(gm, channels, name)
    nodes = [n for n in gm.graph.nodes if n.op not in ("placeholder", "output", "get_attr")]
    all_scopes = {n.name: scopes(n, gm) for n in nodes}
    paths = {p for s in all_scopes.values() for p in s}
    parents = {p for p in paths for q in paths if q != p and _inside(q, p)}
    block_of: dict[str, str] = {}  # node -> the outermost block whose output it is
    for p in sorted(parents, key=lambda p: (p.count(".") + p.count("/"), p), reverse=True):
        last = [n.name for n in nodes if p in all_scopes[n.name]]
        if last:
            block_of[last[-1]] = p  # outer blocks come last and win
    layers, used, stride_so_far = [], set(), 1
    for node in nodes:
        shape = shapes.get(node.name)
        if shape is None or len(shape) != 4 or shape[0] != 1:
            continue
        kind = "block" if node.name in block_of else kind_of(node, gm)
        if not kind:
            continue
        stride = max(1, round(max(PROBE_HW[0] / shape[2], PROBE_HW[1] / shape[3])))
        if stride < stride_so_far:  # upsampled again (a decoder): not a tap of an encoder's map
            continue
        stride_so_far = stride
        layer_name = _unique(_name(node, all_scopes[node.name], block_of, parents), used)
        layers.append(Layer(layer_name, node.name, int(shape[1]), stride, kind))
    if not layers:
        raise BackboneError(
            f"backbone {name!r}: no convolution, activation or block in its graph gives a picture-shaped "
            "output (batch, channels, height, width); dreamstyle needs a convolutional network"
        )
    content, style, dream = defaults(layers)
    return Derived(layers, channels, content, style, dream)


def _inside(child: str, parent: str) -> bool:
    return child.startswith(parent + ".") or child.startswith(parent + "/")


def _name(node, node_scopes, block_of, parents) -> str:
    if node.name in block_of:
        return block_of[node.name]
    inner = node_scopes[-1] if node_scopes else ""
    if inner and inner not in parents:  # the node is (part of) a leaf module's call: the module's path
        return inner
    return f"{inner}.{op_name(node)}" if inner else op_name(node)


def _unique(name: str, used: set) -> str:
    out, k = name, 1
    while out in used:
        out, k = f"{name}_{k}", k + 1
    used.add(out)
    return out


def defaults(layers: list[Layer]) -> tuple[tuple, tuple, tuple]:
    """The rule timm's models follow, on the network's stages (the last activation or block at each
    stride, as timm's feature info lists a stage's output): style all stages but the last, content the
    one before the last, dream the last."""
    stages = []
    for stride in sorted({layer.stride for layer in layers}):
        at = [layer for layer in layers if layer.stride == stride]
        preferred = [layer for layer in at if layer.kind in ("activation", "block")] or at
        stages.append(preferred[-1].name)
    style = tuple(stages[:-1]) or tuple(stages)
    return (stages[max(0, len(stages) - 2)],), style, (stages[-1],)


# --- feature nets ------------------------------------------------------------------------------------------


def tapped(gm, nodes: list[str]):
    """A GraphModule sharing ``gm``'s weights that returns the outputs of ``nodes`` (a list, in that
    order) and computes nothing past them."""
    graph = torch.fx.Graph()
    env: dict = {}
    out = graph.graph_copy(gm.graph, env, return_output_node=False)
    del out
    by_name = {old.name: new for old, new in env.items()}
    missing = [n for n in nodes if n not in by_name]
    if missing:
        raise KeyError(f"the graph has no node {missing[0]!r}")
    graph.output([by_name[n] for n in nodes])
    module = torch.fx.GraphModule(gm, graph)
    module.graph.eliminate_dead_code()
    module.recompile()
    return module


# --- TorchScript -------------------------------------------------------------------------------------------


def script_to_fx(script) -> torch.fx.GraphModule:
    """A TorchScript module as a GraphModule over the same weights: each submodule's ``forward`` is
    translated to the aten calls it makes, with the module it ran in (a submodule that holds no
    others, or whose graph has control flow, is called as it is: one node). Raises
    :class:`CannotConvert` where even the network's own forward cannot be translated."""
    graph = torch.fx.Graph()
    targets: dict[str, object] = {}
    x = graph.placeholder("x")
    result = _inline(graph, script, "", [x], targets, ())
    graph.output(result)
    return torch.fx.GraphModule(targets, graph)


def _inline(graph, module, path: str, args: list, targets: dict, stack: tuple, method: str = "forward"):
    jit_graph = getattr(module, method).graph
    inputs = list(jit_graph.inputs())
    env: dict = {inputs[0]: _ModuleRef(module, path)}
    env.update(zip(inputs[1:], args))
    for node in jit_graph.nodes():
        _translate(graph, node, env, targets, stack)
    returned = list(jit_graph.return_node().inputs())
    return env[returned[0]]


@dataclass
class _ModuleRef:
    module: object
    path: str


def _translate(graph, node, env, targets, stack):
    kind = node.kind()
    ins = [env[v] for v in node.inputs()]
    outs = list(node.outputs())
    if kind == "prim::Constant":
        env[outs[0]] = outs[0].toIValue()
    elif kind == "prim::GetAttr":
        owner, attr = ins[0], node.s("name")
        value = getattr(owner.module, attr)
        path = f"{owner.path}.{attr}" if owner.path else attr
        if isinstance(value, torch.jit.ScriptModule):
            env[outs[0]] = _ModuleRef(value, path)
        elif isinstance(value, torch.Tensor):
            targets[path] = value
            env[outs[0]] = graph.get_attr(path)
        else:
            env[outs[0]] = value
    elif kind == "prim::CallMethod":
        ref, method = ins[0], node.s("name")
        if method == "forward":
            env[outs[0]] = _call(graph, ref, ins[1:], targets, stack)
        else:  # another method (ResNet's _forward_impl): inlined, in the scope of its module
            inner = stack if (stack[-1:] == (ref.path,) or not ref.path) else (*stack, ref.path)
            env[outs[0]] = _inline(graph, ref.module, ref.path, ins[1:], targets, inner, method)
    elif kind in ("prim::ListConstruct", "prim::TupleConstruct"):
        env[outs[0]] = list(ins) if kind == "prim::ListConstruct" else tuple(ins)
    elif kind in ("prim::TupleUnpack", "prim::ListUnpack"):
        for i, out in enumerate(outs):
            env[out] = (
                ins[0][i] if isinstance(ins[0], (list, tuple)) else graph.call_function(operator.getitem, (ins[0], i))
            )
    elif kind.startswith("aten::"):
        op, args, kwargs, inplace = _aten(node, ins)
        made = graph.call_function(op, args, kwargs)
        made.meta["dreamstyle_scopes"] = stack
        if inplace:  # y += x made functional: later uses of y read the sum, and a tap of y keeps y
            env[next(node.inputs())] = made
        if len(outs) == 1:
            env[outs[0]] = made
        else:
            for i, out in enumerate(outs):
                env[out] = graph.call_function(operator.getitem, (made, i))
    else:
        raise CannotConvert(f"its graph holds {kind}")


def _aten(node, ins):
    """The aten overload a TorchScript node calls (an in-place one's out-of-place twin), its positional
    and keyword-only arguments, and whether it was in place."""
    try:
        schema = torch._C.parse_schema(node.schema())
        name = schema.name.split("::")[1]
        inplace = name.endswith("_") and not name.endswith("__") and hasattr(torch.ops.aten, name[:-1])
        packet = getattr(torch.ops.aten, name[:-1] if inplace else name)
        op = getattr(packet, schema.overload_name or "default")
    except (RuntimeError, AttributeError):
        raise CannotConvert(f"it calls {node.kind()}") from None
    args, kwargs = [], {}
    for argument, value in zip(schema.arguments, ins):
        if argument.kwarg_only:
            kwargs[argument.name] = value
        else:
            args.append(value)
    return op, tuple(args), kwargs, inplace


def _call(graph, ref: _ModuleRef, args, targets, stack):
    inner = (*stack, ref.path)
    if any(True for _ in ref.module.children()):
        checkpoint = (len(list(graph.nodes)), dict(targets))
        try:
            return _inline(graph, ref.module, ref.path, args, targets, inner)
        except CannotConvert:  # control flow inside: this module is one node
            for made in reversed(list(graph.nodes)[checkpoint[0] :]):
                graph.erase_node(made)
            targets.clear()
            targets.update(checkpoint[1])
    targets[ref.path] = ref.module
    if getattr(ref.module, "inplace", False) is True and args:  # ReLU(inplace=True): it gets a copy to change
        args = [graph.call_function(torch.ops.aten.clone.default, (args[0],)), *args[1:]]
    made = graph.call_module(ref.path, tuple(args))
    made.meta["dreamstyle_scopes"] = inner
    return made
