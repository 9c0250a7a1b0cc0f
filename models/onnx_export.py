"""Write fitted histogram-gradient-boosting ensembles as one ONNX ``TreeEnsembleRegressor``.

Each scikit-learn ``HistGradientBoostingRegressor`` becomes the trees of one *target* of a single
``ai.onnx.ml`` ``TreeEnsembleRegressor`` node (aggregate SUM, base value = the model's baseline
prediction). scikit-learn sends a row left when ``x <= threshold``, which is ONNX ``BRANCH_LEQ``;
its leaf values already include the learning rate. The features never contain NaN (missing inputs
are encoded as 0 plus an indicator column), so the missing-value direction does not matter.

A model may learn each target as a *change* from one input column (``added``: the column index per
target, e.g. the count now): the graph then adds that column back after the trees (``Gather`` and
``Add``), so the output keeps its meaning and the gateway runs it like any other model.

Training-side only: imports ``onnx`` (the ``train`` extra).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

INPUT_NAME = "features"
OUTPUT_NAME = "forecast"
ML_OPSET = 3
IR_VERSION = 8  # readable by every onnxruntime >= 1.10, so an older gateway still loads it


def export_ensembles(
    models: Sequence[Any], n_features: int, metadata: Mapping[str, str], added: Sequence[int] | None = None
) -> bytes:
    """Serialise ``models`` (target ``i`` = ``models[i]``) into one ONNX graph with ``metadata``.

    With ``added``, target ``i`` is the trees' sum plus input column ``added[i]``.
    """
    from onnx import TensorProto, checker, helper

    if added is not None and (len(added) != len(models) or not all(0 <= c < n_features for c in added)):
        raise ValueError(f"added: one column in 0..{n_features - 1} per target, not {list(added)}")

    attrs: dict[str, list[Any]] = {
        key: []
        for key in (
            "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
            "nodes_truenodeids", "nodes_falsenodeids", "nodes_hitrates",
            "target_treeids", "target_nodeids", "target_ids", "target_weights",
        )
    }
    base_values: list[float] = []
    tree_id = 0
    for target, model in enumerate(models):
        base_values.append(float(model._baseline_prediction.ravel()[0]))
        for stage in model._predictors:
            nodes = stage[0].nodes
            for node_id, node in enumerate(nodes):
                leaf = bool(node["is_leaf"])
                attrs["nodes_treeids"].append(tree_id)
                attrs["nodes_nodeids"].append(node_id)
                attrs["nodes_featureids"].append(0 if leaf else int(node["feature_idx"]))
                attrs["nodes_values"].append(0.0 if leaf else float(node["num_threshold"]))
                attrs["nodes_modes"].append("LEAF" if leaf else "BRANCH_LEQ")
                attrs["nodes_truenodeids"].append(0 if leaf else int(node["left"]))
                attrs["nodes_falsenodeids"].append(0 if leaf else int(node["right"]))
                attrs["nodes_hitrates"].append(1.0)
                if leaf:
                    attrs["target_treeids"].append(tree_id)
                    attrs["target_nodeids"].append(node_id)
                    attrs["target_ids"].append(target)
                    attrs["target_weights"].append(float(node["value"]))
            tree_id += 1
    node_attrs: dict[str, Any] = dict(attrs)
    node_attrs.update(n_targets=len(models), aggregate_function="SUM", post_transform="NONE", base_values=base_values)
    trees_out = OUTPUT_NAME if added is None else "trees"
    nodes = [helper.make_node("TreeEnsembleRegressor", [INPUT_NAME], [trees_out], domain="ai.onnx.ml", **node_attrs)]
    initializers = []
    if added is not None:
        initializers.append(helper.make_tensor("added_columns", TensorProto.INT64, [len(added)], list(added)))
        nodes += [helper.make_node("Gather", [INPUT_NAME, "added_columns"], ["added"], axis=1),
                  helper.make_node("Add", [trees_out, "added"], [OUTPUT_NAME])]
    graph = helper.make_graph(
        nodes, "seat_demand",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None, len(models)])],
        initializer=initializers,
    )
    model = helper.make_model(
        graph, producer_name="edge-agent",
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, dict(metadata))
    checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data
