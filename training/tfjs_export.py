"""Writes a TF.js LayersModel (model.json + one float32 weights .bin) from a PyTorch model,
without the tensorflowjs package. Keras functional topology, NHWC (channels_last).

BatchNorm is folded into the preceding convolution (eval-mode statistics), so the TF.js graph is
Conv2D(+bias, +fused relu) / ZeroPadding2D / MaxPooling2D / Add / Activation / GlobalAveragePooling2D
/ Flatten / Dense. The first Dense after a Flatten has its rows permuted from PyTorch's NCHW flatten
order (c, h, w) to Keras' NHWC order (h, w, c)."""
from __future__ import annotations

import json
import os

import numpy as np
import torch
import torch.nn as nn

KERAS_VERSION = "2.11.0"


def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d | None):
    """Returns (weight OIHW, bias O) float64 numpy with eval-mode BN folded in."""
    w = conv.weight.detach().double().cpu().numpy()
    b = conv.bias.detach().double().cpu().numpy() if conv.bias is not None else np.zeros(w.shape[0])
    if bn is not None:
        gamma = bn.weight.detach().double().cpu().numpy() if bn.affine else np.ones(w.shape[0])
        beta = bn.bias.detach().double().cpu().numpy() if bn.affine else np.zeros(w.shape[0])
        mean = bn.running_mean.detach().double().cpu().numpy()
        var = bn.running_var.detach().double().cpu().numpy()
        scale = gamma / np.sqrt(var + bn.eps)
        w = w * scale[:, None, None, None]
        b = (b - mean) * scale + beta
    return w, b


class KerasGraph:
    def __init__(self, model_name: str):
        self.model_name = model_name
        self.layers: list[dict] = []
        self.weights: list[tuple[str, np.ndarray]] = []
        self.counts: dict[str, int] = {}
        self.input_name = None
        self.output_name = None

    def _name(self, base: str) -> str:
        n = self.counts.get(base, 0)
        self.counts[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def _add(self, class_name: str, config: dict, inputs: list[str], name: str | None = None, base: str = "") -> str:
        name = name or self._name(base or class_name.lower())
        config = {"name": name, "trainable": True, "dtype": "float32", **config}
        layer = {"class_name": class_name, "config": config, "name": name,
                 "inbound_nodes": [[[i, 0, 0, {}] for i in inputs]] if inputs else []}
        self.layers.append(layer)
        return name

    def input(self, h: int, w: int, c: int, name: str = "input") -> str:
        self.input_name = self._add("InputLayer", {"batch_input_shape": [None, h, w, c], "sparse": False},
                                    [], name=name)
        return self.input_name

    def conv(self, x: str, conv: nn.Conv2d, bn: nn.BatchNorm2d | None = None, relu: bool = False) -> str:
        if conv.groups != 1 or conv.dilation != (1, 1):
            raise NotImplementedError("grouped/dilated convolutions are not exported")
        kh, kw = conv.kernel_size
        sh, sw = conv.stride
        ph, pw = conv.padding if isinstance(conv.padding, tuple) else (conv.padding, conv.padding)
        w, b = fold_bn(conv, bn)
        if sh == 1 and sw == 1 and kh % 2 == 1 and kw % 2 == 1 and ph == kh // 2 and pw == kw // 2:
            padding = "same"
        else:
            padding = "valid"
            if ph or pw:
                x = self._add("ZeroPadding2D", {"padding": [[ph, ph], [pw, pw]], "data_format": "channels_last"},
                              [x], base="zero_padding2d")
        name = self._name("conv2d")
        self._add("Conv2D", {
            "filters": int(w.shape[0]), "kernel_size": [kh, kw], "strides": [sh, sw], "padding": padding,
            "data_format": "channels_last", "dilation_rate": [1, 1],
            "activation": "relu" if relu else "linear", "use_bias": True,
            "kernel_initializer": {"class_name": "Zeros", "config": {}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
            "kernel_constraint": None, "bias_constraint": None,
        }, [x], name=name)
        self.weights.append((f"{name}/kernel", w.transpose(2, 3, 1, 0)))  # OIHW -> HWIO
        self.weights.append((f"{name}/bias", b))
        return name

    def relu(self, x: str) -> str:
        return self._add("Activation", {"activation": "relu"}, [x], base="activation")

    def add(self, a: str, b: str) -> str:
        return self._add("Add", {}, [a, b], base="add")

    def maxpool(self, x: str, k: int, s: int, pad: int = 0) -> str:
        if pad:
            x = self._add("ZeroPadding2D", {"padding": [[pad, pad], [pad, pad]], "data_format": "channels_last"},
                          [x], base="zero_padding2d")
        return self._add("MaxPooling2D", {"pool_size": [k, k], "strides": [s, s], "padding": "valid",
                                          "data_format": "channels_last"}, [x], base="max_pooling2d")

    def gap(self, x: str) -> str:
        return self._add("GlobalAveragePooling2D", {"data_format": "channels_last"}, [x],
                         base="global_average_pooling2d")

    def flatten(self, x: str) -> str:
        return self._add("Flatten", {"data_format": "channels_last"}, [x], base="flatten")

    def dense(self, x: str, lin: nn.Linear, relu: bool = False, chw=None, name: str | None = None) -> str:
        w = lin.weight.detach().double().cpu().numpy()  # out x in
        b = lin.bias.detach().double().cpu().numpy() if lin.bias is not None else np.zeros(w.shape[0])
        if chw is not None:  # input came from an NCHW flatten: reorder columns (c,h,w) -> (h,w,c)
            c, h, ww = chw
            w = w.reshape(w.shape[0], c, h, ww).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
        name = name or self._name("dense")
        self._add("Dense", {
            "units": int(w.shape[0]), "activation": "relu" if relu else "linear", "use_bias": True,
            "kernel_initializer": {"class_name": "Zeros", "config": {}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
            "kernel_constraint": None, "bias_constraint": None,
        }, [x], name=name)
        self.weights.append((f"{name}/kernel", w.T))
        self.weights.append((f"{name}/bias", b))
        self.output_name = name
        return name

    def topology(self) -> dict:
        return {
            "class_name": "Model",
            "config": {"name": self.model_name, "layers": self.layers,
                       "input_layers": [[self.input_name, 0, 0]],
                       "output_layers": [[self.output_name, 0, 0]]},
            "keras_version": KERAS_VERSION,
            "backend": "tensorflow",
        }


def export_tfjs(model: nn.Module, height: int, width: int, in_ch: int, out_dir: str, name: str = "model") -> dict:
    """Writes out_dir/model.json and out_dir/group1-shard1of1.bin. Returns the file list (json first,
    then weight files in weightsManifest order)."""
    os.makedirs(out_dir, exist_ok=True)
    model = model.eval()
    g = KerasGraph(name)
    x = g.input(height, width, in_ch)
    with torch.no_grad():
        out = model.to_keras(g, x)
    if out != g.output_name:
        raise RuntimeError("the model's last layer must be the logits Dense")
    bin_name = "group1-shard1of1.bin"
    specs, chunks = [], []
    for wname, arr in g.weights:
        a = np.ascontiguousarray(arr, dtype="<f4")
        specs.append({"name": wname, "shape": list(a.shape), "dtype": "float32"})
        chunks.append(a.tobytes())
    with open(os.path.join(out_dir, bin_name), "wb") as f:
        f.write(b"".join(chunks))
    doc = {
        "format": "layers-model",
        "generatedBy": "patchcert training/tfjs_export.py",
        "convertedBy": None,
        "modelTopology": g.topology(),
        "weightsManifest": [{"paths": [bin_name], "weights": specs}],
    }
    with open(os.path.join(out_dir, "model.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    return {"json": "model.json", "weights": [bin_name]}
