"""``ffseg export``: the SavedModel's serving function as ONNX or TFLite, for the edge.

The exported file serves exactly what the SavedModel serves (``ffseg.inference.export``):
input ``faces``, uint8 RGB face crops [N, 299, 299, 3] cropped with the
training detector and box; outputs ``score`` [N], ``localization_map``
[N, 299, 299] (paper Sec. III-D: M = 0.1 M1 + 0.2 M2 + 0.7 M3) and
``class_probabilities`` [N, C]. Casting, resizing and normalisation stay
inside the file, so an edge client never re-implements preprocessing.

How: the ``serving_default`` signature is frozen (variables to constants),
then converted by the converters of TensorFlow (``tf.lite.TFLiteConverter``)
and of Keras' ONNX export (tf2onnx). One rewrite comes first: every image
resize with static sizes (``ResizeArea`` for the crops, ``ResizeBilinear``
for the maps) is replaced by the fixed linear map it is, two matrix products
``A_h @ X @ A_w^T`` whose matrices are computed with the very same TensorFlow
op on the identity. Both resizes are separable and linear, so nothing
changes numerically beyond float rounding, while converters map them
differently: tf2onnx turns ``ResizeArea`` into a nearest-neighbour resize
(wrong: a model smaller than 299 px would see other pixels), and TFLite has
no builtin area resize at all. Matrix products convert exactly everywhere.

Example:

```python
from ffseg.serve.edge import export_edge, load_edge

export_edge("runs/sample/export", "ffseg.onnx", "onnx")
model = load_edge("ffseg.onnx")           # ONNX Runtime (or TFLite for .tflite), on CPU
outputs = model.predict(crops)            # uint8 [N, 299, 299, 3] -> {"score", ...}
```
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from ffseg.constants import CROP_SIZE

__all__ = ["FORMATS", "ONNX_OPSET", "export_edge", "load_edge", "EdgeModel"]

FORMATS = ("onnx", "tflite")
ONNX_OPSET = 17
OUTPUTS = ("score", "localization_map", "class_probabilities")
_RESIZES = ("ResizeArea", "ResizeBilinear")


def _resize_matrix(op: str, attrs, size_in: int, size_out: int) -> np.ndarray:
    """The [size_out, size_in] matrix of a 1-D resize, made by the op itself.

    Resizing the identity along one axis only gives the op's weights: with
    the other axis kept, ``resize(I)[i, j]`` is the weight of input pixel j
    in output pixel i (a kept axis is copied exactly).
    """
    import tensorflow as tf

    eye = tf.eye(size_in)[None, :, :, None]
    if op == "ResizeArea":
        out = tf.raw_ops.ResizeArea(images=eye, size=[size_out, size_in],
                                    align_corners=attrs["align_corners"].b)
    else:
        out = tf.raw_ops.ResizeBilinear(images=eye, size=[size_out, size_in],
                                        align_corners=attrs["align_corners"].b,
                                        half_pixel_centers=attrs["half_pixel_centers"].b)
    return out.numpy()[0, :, :, 0].astype(np.float32)


def _tensor_name(name: str) -> str:
    return name if ":" in name else name + ":0"


def _linear_resizes(graph_def, graph):
    """Replaces each static-size resize node of ``graph_def`` by two matrix products.

    The replacement keeps the node's name (its consumers are untouched):
    ``Transpose(NHWC->NCHW) -> A_h @ x -> x @ A_w^T -> Transpose(NCHW->NHWC)``.
    """
    import tensorflow as tf

    nodes = []
    replaced = 0
    for node in graph_def.node:
        if node.op not in _RESIZES:
            nodes.append(node)
            continue
        source = graph.get_tensor_by_name(_tensor_name(node.input[0]))
        target = graph.get_tensor_by_name(node.name + ":0")
        shape_in, shape_out = source.shape.as_list(), target.shape.as_list()
        if None in shape_in[1:3] or None in shape_out[1:3]:
            nodes.append(node)  # a dynamic size cannot be a constant matrix
            continue
        (h_in, w_in), (h_out, w_out) = shape_in[1:3], shape_out[1:3]
        rows = _resize_matrix(node.op, node.attr, h_in, h_out)  # [h_out, h_in]
        columns = _resize_matrix(node.op, node.attr, w_in, w_out).T  # [w_in, w_out]
        prefix = node.name + "_linear"

        def const(name, value, dtype):
            made = tf.compat.v1.NodeDef(name=f"{prefix}/{name}", op="Const")
            made.attr["dtype"].type = dtype.as_datatype_enum
            made.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value, dtype=dtype))
            return made

        def apply(name, op, inputs, **attrs):
            made = tf.compat.v1.NodeDef(name=name, op=op, input=inputs)
            made.attr["T"].type = tf.float32.as_datatype_enum
            if op == "Transpose":
                made.attr["Tperm"].type = tf.int32.as_datatype_enum
            for key, value in attrs.items():
                made.attr[key].b = value
            if node.device:
                made.device = node.device
            return made

        nodes += [
            const("rows", rows, tf.float32),
            const("columns", columns, tf.float32),
            const("to_nchw", np.array([0, 3, 1, 2], np.int32), tf.int32),
            const("to_nhwc", np.array([0, 2, 3, 1], np.int32), tf.int32),
            apply(f"{prefix}/nchw", "Transpose", [node.input[0], f"{prefix}/to_nchw"]),
            apply(f"{prefix}/height", "BatchMatMulV2", [f"{prefix}/rows", f"{prefix}/nchw"],
                  adj_x=False, adj_y=False),
            apply(f"{prefix}/width", "BatchMatMulV2", [f"{prefix}/height", f"{prefix}/columns"],
                  adj_x=False, adj_y=False),
            apply(node.name, "Transpose", [f"{prefix}/width", f"{prefix}/to_nhwc"]),
        ]
        replaced += 1
    del graph_def.node[:]
    graph_def.node.extend(nodes)
    return replaced


def _frozen_serving_graph(saved_model: str):
    """The SavedModel's serving signature as one frozen, resize-free GraphDef.

    Returns:
        ``(graph_def, input_name, {output name: tensor name}, metadata)``.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    from ffseg.inference.export import METADATA_FILE, SIGNATURE_NAME

    loaded = tf.saved_model.load(saved_model)
    signature = loaded.signatures[SIGNATURE_NAME]
    frozen = convert_variables_to_constants_v2(signature)
    graph_def = frozen.graph.as_graph_def()
    _linear_resizes(graph_def, frozen.graph)
    # The frozen function lists its outputs flat, in tf.nest's (sorted-key) order.
    packed = tf.nest.pack_sequence_as(signature.structured_outputs, frozen.outputs)
    outputs = {key: tensor.name for key, tensor in packed.items()}
    missing = [key for key in OUTPUTS if key not in outputs]
    if missing:
        raise ValueError(f"{saved_model}: the serving signature lacks {missing}")
    metadata = {}
    path = os.path.join(saved_model, METADATA_FILE)
    if os.path.exists(path):
        with open(path) as handle:
            metadata = json.load(handle)
    return graph_def, frozen.inputs[0].name, outputs, metadata


def _as_saved_model(model_path: str, folder: str) -> str:
    """A SavedModel folder for ``model_path`` (a ``.keras`` file is exported into ``folder``)."""
    from ffseg.inference.export import export_saved_model

    if os.path.isdir(model_path):
        if os.path.exists(os.path.join(model_path, "saved_model.pb")):
            return model_path
        if os.path.exists(os.path.join(model_path, "export", "saved_model.pb")):
            return os.path.join(model_path, "export")
        raise FileNotFoundError(f"{model_path}: folder holds no saved_model.pb "
                                f"(not an exported ffseg model)")
    if model_path.endswith(".keras") and os.path.isfile(model_path):
        import keras

        import ffseg.models.ffseg_model  # noqa: F401  (registers FFSeg and its layers)

        model = keras.saving.load_model(model_path, safe_mode=True)
        return export_saved_model(model, os.path.join(folder, "saved_model"))
    raise FileNotFoundError(f"{model_path}: expected a SavedModel folder or a .keras file")


def export_edge(model_path: str, output: str, format: str, *, opset: int = ONNX_OPSET) -> dict:
    """Converts an exported ffseg model to ONNX or TFLite.

    Args:
        model_path: a SavedModel folder (``ffseg.inference.export``), a
            training run folder holding ``export/``, or a ``.keras`` file.
        output: the file to write; it must not exist (nothing is replaced).
        format: ``"onnx"`` or ``"tflite"``.
        opset: the ONNX opset.

    Returns:
        ``{"path", "format", "bytes", "resizes_replaced", "metadata"}``; the
        model's metadata (the export's ``ffseg.json``: dataset, image size,
        classes) is also written beside the file as ``<output>.json``.

    Raises:
        FileExistsError: ``output`` (or its ``.json``) exists.
        FileNotFoundError: ``model_path`` is no ffseg model.
        ValueError: an unknown format.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    output = os.fspath(output)
    card_path = output + ".json"
    for path in (output, card_path):
        if os.path.lexists(path):
            raise FileExistsError(f"{path}: already exists; choose another --output "
                                  f"(nothing was written)")
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ffseg-export-") as scratch:
        graph_def, input_name, outputs, metadata = _frozen_serving_graph(
            _as_saved_model(os.fspath(model_path), scratch))
        replaced = sum(1 for node in graph_def.node if node.name.endswith("_linear/nchw"))
        names = list(OUTPUTS)
        if format == "onnx":
            data = _to_onnx(graph_def, input_name, [outputs[key] for key in names], names, opset)
        else:
            data = _to_tflite(graph_def, input_name, [outputs[key] for key in names], names,
                              metadata.get("crop_size", CROP_SIZE))
    card = {**metadata, "format": format, "inputs": {"faces": "uint8 [N, crop, crop, 3]"},
            "outputs": names, "source": os.path.basename(os.path.normpath(model_path))}
    # Written under a temporary name and moved: a file is complete or absent.
    partial = output + ".partial"
    with open(partial, "wb") as handle:
        handle.write(data)
    os.replace(partial, output)
    with open(card_path, "w") as handle:
        json.dump(card, handle, indent=2, sort_keys=True)
    return {"path": os.path.abspath(output), "format": format, "bytes": len(data),
            "resizes_replaced": replaced, "metadata": metadata}


def _to_onnx(graph_def, input_name, tensor_names, names, opset) -> bytes:
    import tensorflow as tf
    import tf2onnx

    # Name the outputs as the SavedModel does: wrap each in an Identity.
    graph_def = _named_outputs(graph_def, tensor_names, names)
    with tf.Graph().as_default():
        model_proto, _ = tf2onnx.convert.from_graph_def(
            graph_def, input_names=[input_name], output_names=[f"{n}:0" for n in names],
            opset=opset)
    # ONNX names: "faces" in, the three names out (tf2onnx keeps ":0").
    for value in model_proto.graph.input:
        if value.name == input_name:
            _rename(model_proto, input_name, "faces")
    for name in names:
        _rename(model_proto, f"{name}:0", name)
    return model_proto.SerializeToString()


def _rename(model_proto, old: str, new: str) -> None:
    for value in list(model_proto.graph.input) + list(model_proto.graph.output):
        if value.name == old:
            value.name = new
    for node in model_proto.graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new


def _named_outputs(graph_def, tensor_names, names):
    import tensorflow as tf

    copy = tf.compat.v1.GraphDef()
    copy.CopyFrom(graph_def)
    for tensor, name in zip(tensor_names, names):
        node = copy.node.add(name=name, op="Identity", input=[tensor])
        node.attr["T"].type = tf.float32.as_datatype_enum
    return copy


def _to_tflite(graph_def, input_name, tensor_names, names, crop_size) -> bytes:
    import tensorflow as tf

    graph_def = _named_outputs(graph_def, tensor_names, names)

    def imported(faces):
        found = tf.graph_util.import_graph_def(
            graph_def, input_map={input_name: faces}, return_elements=[f"{n}:0" for n in names],
            name="")
        return dict(zip(names, found))

    spec = tf.TensorSpec([None, crop_size, crop_size, 3], tf.uint8, name="faces")
    function = tf.compat.v1.wrap_function(imported, [spec])
    module = tf.Module()
    module.serve = tf.function(lambda faces: function(faces), input_signature=[spec])
    concrete = module.serve.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    return converter.convert()


class EdgeModel:
    """An exported ONNX or TFLite file, run on CPU: ``predict(crops)`` like a predictor.

    Args:
        path: a ``.onnx`` file (ONNX Runtime) or a ``.tflite`` file (the
            TFLite interpreter).
        threads: CPU threads for the runtime (default: its own choice).
    """

    def __init__(self, path: str, threads: int | None = None):
        self.path = os.fspath(path)
        self.format = "onnx" if self.path.endswith(".onnx") else "tflite"
        self.info = {}
        if os.path.exists(self.path + ".json"):
            with open(self.path + ".json") as handle:
                self.info = json.load(handle)
        self.crop_size = int(self.info.get("crop_size", CROP_SIZE))
        if self.format == "onnx":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            if threads:
                options.intra_op_num_threads = int(threads)
            self._session = onnxruntime.InferenceSession(
                self.path, options, providers=["CPUExecutionProvider"])
        else:
            try:  # LiteRT, the interpreter an edge device runs
                from ai_edge_litert.interpreter import Interpreter
            except ImportError:  # TensorFlow's own copy (deprecated in its favour)
                import tensorflow as tf

                Interpreter = tf.lite.Interpreter
            self._interpreter = Interpreter(model_path=self.path, num_threads=threads or None)
            self._runner = self._interpreter.get_signature_runner()

    def predict(self, crops, batch_size: int = 32) -> dict:
        """uint8 crops [N, 299, 299, 3] -> ``{"score", "localization_map", ...}``."""
        crops = np.asarray(crops)
        size = self.crop_size
        if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[1:] != (size, size, 3):
            raise ValueError(f"expected uint8 crops [N, {size}, {size}, 3], "
                             f"got {crops.dtype} {crops.shape}")
        parts = []
        for start in range(0, len(crops), batch_size):
            batch = crops[start:start + batch_size]
            if self.format == "onnx":
                values = self._session.run(list(OUTPUTS), {"faces": batch})
                parts.append(dict(zip(OUTPUTS, values)))
            else:
                out = self._runner(faces=batch)
                parts.append({key: np.asarray(out[key]) for key in OUTPUTS})
        if not parts:
            return {}
        return {key: np.concatenate([part[key] for part in parts]) for key in OUTPUTS}


def load_edge(path: str, threads: int | None = None) -> EdgeModel:
    """An ``EdgeModel`` over an exported ``.onnx`` or ``.tflite`` file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    return EdgeModel(path, threads)
