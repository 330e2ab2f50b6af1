"""A minimal ONNX interpreter for the operators our exported models use, evaluating the graph read
from the .onnx file (nodes + initializers) with torch functional ops. Used by training.parity when
onnxruntime is not available to Python (Debian has no python3-onnxruntime and onnx 1.12 has no
onnx.reference). It checks the exported graph, not the PyTorch module that produced it."""
from __future__ import annotations

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pads_2d(pads):
    # ONNX pads: [top, left, bottom, right] -> F.pad order (left, right, top, bottom)
    t, l, b, r = pads
    return (l, r, t, b)


class OnnxEvaluator:
    def __init__(self, path: str):
        self.model = onnx.load(path)
        onnx.checker.check_model(self.model)
        self.graph = self.model.graph
        self.init = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in self.graph.initializer}
        self.input_names = [i.name for i in self.graph.input if i.name not in self.init]
        self.output_names = [o.name for o in self.graph.output]
        self.opset = max(o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx"))

    def run(self, x: np.ndarray, extra: dict | None = None) -> np.ndarray:
        """x feeds the first graph input; extra: further inputs by name (a kept-view model's position)."""
        env = dict(self.init)
        env[self.input_names[0]] = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        for name, v in (extra or {}).items():
            env[name] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
        with torch.no_grad():
            for node in self.graph.node:
                ins = [env[i] if i else None for i in node.input]
                outs = self._op(node.op_type, ins, _attrs(node))
                for name, val in zip(node.output, outs if isinstance(outs, tuple) else (outs,)):
                    env[name] = val
        return env[self.output_names[0]].numpy()

    def _op(self, op, ins, a):
        if op == "Conv":
            x, w = ins[0], ins[1]
            b = ins[2] if len(ins) > 2 else None
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise NotImplementedError("Conv auto_pad")
            pads = a.get("pads", [0, 0, 0, 0])
            if pads[0] != pads[2] or pads[1] != pads[3]:
                x, pads = F.pad(x, _pads_2d(pads)), [0, 0, 0, 0]
            return F.conv2d(x, w, b, stride=a.get("strides", [1, 1]), padding=(pads[0], pads[1]),
                            dilation=a.get("dilations", [1, 1]), groups=a.get("group", 1))
        if op == "BatchNormalization":
            x, s, bias, mean, var = ins
            return F.batch_norm(x, mean, var, s, bias, False, 0.0, a.get("epsilon", 1e-5))
        if op == "Relu":
            return F.relu(ins[0])
        if op == "Add":
            return ins[0] + ins[1]
        if op == "Mul":
            return ins[0] * ins[1]
        if op == "MaxPool":
            k = a["kernel_shape"]
            pads = a.get("pads", [0, 0, 0, 0])
            x = ins[0]
            if any(pads):
                x = F.pad(x, _pads_2d(pads), value=float("-inf"))
            return F.max_pool2d(x, k, a.get("strides", k), ceil_mode=bool(a.get("ceil_mode", 0)))
        if op == "AveragePool":
            k = a["kernel_shape"]
            return F.avg_pool2d(ins[0], k, a.get("strides", k))
        if op == "GlobalAveragePool":
            return ins[0].mean(dim=(2, 3), keepdim=True)
        if op == "Flatten":
            ax = a.get("axis", 1)
            x = ins[0]
            return x.reshape(int(np.prod(x.shape[:ax])) if ax else 1, -1)
        if op == "Gemm":
            A, B = ins[0], ins[1]
            if a.get("transA", 0):
                A = A.t()
            if a.get("transB", 0):
                B = B.t()
            y = a.get("alpha", 1.0) * (A @ B)
            if len(ins) > 2 and ins[2] is not None:
                y = y + a.get("beta", 1.0) * ins[2]
            return y
        if op == "MatMul":
            return ins[0] @ ins[1]
        if op == "Identity":
            return ins[0]
        if op == "Cast":  # float16-stored weights are cast to float32 at load
            to = {onnx.TensorProto.FLOAT: torch.float32, onnx.TensorProto.FLOAT16: torch.float16,
                  onnx.TensorProto.INT64: torch.int64}.get(a["to"])
            if to is None:
                raise NotImplementedError(f"Cast to ONNX type {a['to']}")
            return ins[0].to(to)
        if op == "Constant":
            return torch.from_numpy(numpy_helper.to_array(a["value"]).copy())
        if op == "Shape":
            return torch.tensor(list(ins[0].shape), dtype=torch.int64)
        if op == "Gather":
            return torch.index_select(ins[0], a.get("axis", 0), ins[1].reshape(-1).long()).reshape(
                list(ins[0].shape[:a.get("axis", 0)]) + list(ins[1].shape) + list(ins[0].shape[a.get("axis", 0) + 1:]))
        if op == "Unsqueeze":
            x = ins[0]
            for ax in sorted(ins[1].tolist()):
                x = x.unsqueeze(ax)
            return x
        if op == "Concat":
            return torch.cat(ins, dim=a["axis"])
        if op == "Sin":
            return ins[0].sin()
        if op == "Cos":
            return ins[0].cos()
        if op == "Range":
            start, limit, delta = (v.item() for v in ins[:3])
            return torch.arange(start, limit, delta, dtype=ins[0].dtype)
        if op == "ConstantOfShape":
            v = numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
            return torch.full([int(d) for d in ins[0].tolist()], v.reshape(-1)[0].item(),
                              dtype=torch.from_numpy(v.copy()).dtype)
        if op == "Slice":  # opset >= 10: starts, ends, axes, steps as inputs
            x = ins[0]
            starts, ends = ins[1].tolist(), ins[2].tolist()
            axes = ins[3].tolist() if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
            steps = ins[4].tolist() if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
            idx = [slice(None)] * x.dim()
            for s, e, ax, st in zip(starts, ends, axes, steps):
                n = x.shape[ax]
                s, e = max(-n, min(n, s)), max(-n - 1, min(n, e))
                idx[ax] = slice(s, e, st)
            return x[tuple(idx)]
        if op == "Reshape":
            shape = [int(v) for v in ins[1].tolist()]
            shape = [ins[0].shape[i] if v == 0 else v for i, v in enumerate(shape)]
            return ins[0].reshape(shape)
        raise NotImplementedError(f"ONNX op {op} is not supported by training/onnx_eval.py")


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
        return True
    except ImportError:
        return False


def run_onnx(path: str, x: np.ndarray, input_name: str = "input", extra: dict | None = None) -> tuple[np.ndarray, str]:
    """Returns (logits, which evaluator ran). extra: further inputs by name (a kept-view model's position)."""
    if onnxruntime_available():
        import onnxruntime as ort
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        feeds = {input_name: x.astype(np.float32), **{k: v.astype(np.float32) for k, v in (extra or {}).items()}}
        return sess.run(None, feeds)[0], f"onnxruntime {ort.__version__}"
    return OnnxEvaluator(path).run(x, extra), "training.onnx_eval (graph interpreter on torch ops; no onnxruntime for Python)"
