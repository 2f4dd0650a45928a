"""The portable model as an ONNX graph, for runtimes that read ONNX (onnxruntime & co).

One float64 graph is built from a ``regfit.linear.v1`` document (:mod:`service.ml.portable`)
with the ``onnx`` package's helper API, computing what :class:`portable.CompiledModel` does:

- one input per feature, named as the feature: float64 ``[N, 1]`` for a numeric (or boolean,
  as 0/1) feature, string ``[N, 1]`` for a categorical one, where ``""`` is the missing
  value (as an empty CSV cell is);
- numeric block: ``Where(IsNaN(x), impute_values, x)``, then ``(x - means) / scales``, then
  ``MatMul`` with the numeric coefficients;
- each categorical feature: ``Equal`` against its categories (a null category matches
  ``""``), cast to float64, ``MatMul`` with its one-hot coefficients; a value matching none
  adds the infrequent column's coefficient (``1 - row sum`` of the one-hot block) or, without
  one, nothing (all zeros);
- the sum plus the intercept, output ``predict`` of shape ``[N]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from service.ml import portable

# Equal on strings is in the default domain from opset 19 on.
OPSET = 19
IR_VERSION = 9  # the newest onnxruntime 1.16+ reads; opset 19 needs IR 9
OUTPUT = "predict"
MISSING_CATEGORY = ""


def build(doc: dict[str, Any]) -> onnx.ModelProto:
    """Build the ONNX model of a portable document (checked with ``onnx.checker``)."""
    model = portable.compile_model(doc)  # validates the document
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    inputs = []

    def const(name: str, value: Any, dtype: Any = np.float64) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(op: str, ins: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, ins, [out], **attrs))
        return out

    for name in model.feature_names:
        categorical = name in model.categorical_names
        elem = TensorProto.STRING if categorical else TensorProto.DOUBLE
        inputs.append(helper.make_tensor_value_info(name, elem, ["N", 1]))

    terms: list[str] = []
    n_numeric = len(model.numeric_names)
    if n_numeric:
        x = (
            node("Concat", list(model.numeric_names), "num_x", axis=1)
            if n_numeric > 1
            else node("Identity", [model.numeric_names[0]], "num_x")
        )
        if model.impute_values is not None:
            missing = node("IsNaN", [x], "num_missing")
            fill = const("impute_values", model.impute_values.reshape(1, -1))
            x = node("Where", [missing, fill, x], "num_imputed")
        if model.means is not None and model.scales is not None:
            x = node("Sub", [x, const("means", model.means.reshape(1, -1))], "num_centered")
            x = node("Div", [x, const("scales", model.scales.reshape(1, -1))], "num_scaled")
        coef = const("numeric_coef", model.numeric_coef.reshape(-1, 1))
        terms.append(node("MatMul", [x, coef], "num_term"))

    for i, (name, coef_of, other) in enumerate(
        zip(model.categorical_names, model.category_coef, model.other_coef, strict=True)
    ):
        cats = [MISSING_CATEGORY if c is None else c for c in coef_of]
        if not cats:
            continue
        cats_name = const(f"cat{i}_categories", np.array([cats], dtype=object), dtype=object)
        hot = node("Equal", [name, cats_name], f"cat{i}_equal")
        hot = node("Cast", [hot], f"cat{i}_onehot", to=TensorProto.DOUBLE)
        weights = const(f"cat{i}_coef", np.array(list(coef_of.values())).reshape(-1, 1))
        term = node("MatMul", [hot, weights], f"cat{i}_term")
        if other != 0.0:
            # No value matched: the infrequent column is 1 - (row sum of the one-hot block).
            axes = const(f"cat{i}_axes", [1], dtype=np.int64)
            matched = node("ReduceSum", [hot, axes], f"cat{i}_matched", keepdims=1)
            rest = node("Sub", [const(f"cat{i}_one", [[1.0]]), matched], f"cat{i}_other")
            extra = node("Mul", [rest, const(f"cat{i}_other_coef", [[other]])], f"cat{i}_extra")
            term = node("Add", [term, extra], f"cat{i}_total")
        terms.append(term)

    total = const("intercept", [[model.intercept]])
    for k, term in enumerate(terms):
        total = node("Add", [total, term], f"sum{k}")
    if not terms:
        raise ValueError("the model has no input column to predict from")
    node("Reshape", [total, const("flat", [-1], dtype=np.int64)], OUTPUT)

    graph = helper.make_graph(
        nodes,
        "regfit_linear",
        inputs,
        [helper.make_tensor_value_info(OUTPUT, TensorProto.DOUBLE, ["N"])],
        inits,
    )
    onnx_model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="regfit",
        doc_string=f"{portable.FORMAT} model of target {model.target!r}",
    )
    onnx_model.ir_version = IR_VERSION
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model


def to_bytes(doc: dict[str, Any]) -> bytes:
    """The serialized ONNX model of a portable document."""
    return build(doc).SerializeToString()
