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

A classifier (``regfit.logistic.v1``, :mod:`service.ml.portable_classifier`) is the same graph
with one column per logit (coefficient matrices instead of vectors), then ``probabilities``
``[N, k]`` — ``Sigmoid`` and ``1 − σ`` for two classes, ``Softmax`` for more — and ``predict``
``[N]``: ``ArgMax`` then ``Gather`` of the class labels (string, int64, bool or double, as the
labels were uploaded).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from service.ml import portable, portable_classifier

# Equal on strings is in the default domain from opset 19 on.
OPSET = 19
IR_VERSION = 9  # the newest onnxruntime 1.16+ reads; opset 19 needs IR 9
OUTPUT = "predict"
PROBABILITIES = "probabilities"
MISSING_CATEGORY = ""


def build(doc: dict[str, Any]) -> onnx.ModelProto:
    """Build the ONNX model of a portable document (checked with ``onnx.checker``): a
    regressor's ``predict``, or a classifier's ``predict`` (labels) and ``probabilities``."""
    classifier = (
        portable_classifier.compile_classifier(doc)
        if portable_classifier.is_classifier(doc)
        else None
    )
    model = classifier if classifier is not None else portable.compile_model(doc)  # validates
    heads = classifier.logits if classifier is not None else [model]
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

    # One column per head (the regressor's one model, or each logit of a classifier).
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
        coef = const("numeric_coef", np.column_stack([h.numeric_coef for h in heads]))
        terms.append(node("MatMul", [x, coef], "num_term"))

    for i, name in enumerate(model.categorical_names):
        cats = [MISSING_CATEGORY if c is None else c for c in model.category_coef[i]]
        if not cats:
            continue
        cats_name = const(f"cat{i}_categories", np.array([cats], dtype=object), dtype=object)
        hot = node("Equal", [name, cats_name], f"cat{i}_equal")
        hot = node("Cast", [hot], f"cat{i}_onehot", to=TensorProto.DOUBLE)
        weights = np.column_stack([list(h.category_coef[i].values()) for h in heads])
        term = node("MatMul", [hot, const(f"cat{i}_coef", weights)], f"cat{i}_term")
        other = np.array([[h.other_coef[i] for h in heads]])
        if np.any(other != 0.0):
            # No value matched: the infrequent column is 1 - (row sum of the one-hot block).
            axes = const(f"cat{i}_axes", [1], dtype=np.int64)
            matched = node("ReduceSum", [hot, axes], f"cat{i}_matched", keepdims=1)
            rest = node("Sub", [const(f"cat{i}_one", [[1.0]]), matched], f"cat{i}_other")
            extra = node("Mul", [rest, const(f"cat{i}_other_coef", other)], f"cat{i}_extra")
            term = node("Add", [term, extra], f"cat{i}_total")
        terms.append(term)

    total = const("intercept", [[h.intercept for h in heads]])
    for k, term in enumerate(terms):
        total = node("Add", [total, term], f"sum{k}")
    if not terms:
        raise ValueError("the model has no input column to predict from")
    if classifier is None:
        node("Reshape", [total, const("flat", [-1], dtype=np.int64)], OUTPUT)
        outputs = [helper.make_tensor_value_info(OUTPUT, TensorProto.DOUBLE, ["N"])]
    else:
        outputs = _classifier_outputs(classifier, total, node, const)

    graph = helper.make_graph(nodes, "regfit_linear", inputs, outputs, inits)
    onnx_model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="regfit",
        doc_string=f"{doc.get('format')} model of target {model.target!r}",
    )
    onnx_model.ir_version = IR_VERSION
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model


def _label_tensor(classes: list[Any]) -> tuple[np.ndarray, int]:
    """A classifier's labels as one tensor: bool, int64, double, or (text and mixed) string."""
    kinds = {type(c) for c in classes}
    if kinds == {bool}:
        return np.array(classes, dtype=np.bool_), TensorProto.BOOL
    if kinds == {int}:
        return np.array(classes, dtype=np.int64), TensorProto.INT64
    if kinds <= {int, float}:
        return np.array(classes, dtype=np.float64), TensorProto.DOUBLE
    return np.array([str(c) for c in classes], dtype=object), TensorProto.STRING


def _classifier_outputs(
    classifier: portable_classifier.CompiledClassifier, logits: str, node: Any, const: Any
) -> list[onnx.ValueInfoProto]:
    """``probabilities`` ([N, k]: sigmoid for two classes, softmax for more) and ``predict``
    (the label of the highest probability, the first on a tie)."""
    classes = classifier.classes
    if len(classes) == 2:
        positive = node("Sigmoid", [logits], "positive")
        negative = node("Sub", [const("one", [[1.0]]), positive], "negative")
        node("Concat", [negative, positive], PROBABILITIES, axis=1)
    else:
        node("Softmax", [logits], PROBABILITIES, axis=1)
    index = node("ArgMax", [PROBABILITIES], "label_index", axis=1, keepdims=0)
    values, elem = _label_tensor(classes)
    labels = const("classes", values, dtype=values.dtype)
    node("Gather", [labels, index], OUTPUT, axis=0)
    return [
        helper.make_tensor_value_info(OUTPUT, elem, ["N"]),
        helper.make_tensor_value_info(PROBABILITIES, TensorProto.DOUBLE, ["N", len(classes)]),
    ]


def to_bytes(doc: dict[str, Any]) -> bytes:
    """The serialized ONNX model of a portable document."""
    return build(doc).SerializeToString()
