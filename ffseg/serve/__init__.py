"""``ffseg serve`` and ``ffseg export``: the detector behind a web page, and on the edge.

- `ffseg.serve.app`: a Starlette (ASGI) application, served by uvicorn,
  with one page for analysts and a JSON API that returns the document
  ``ffseg detect`` writes;
- `ffseg.serve.edge`: the SavedModel's serving function converted to ONNX
  and TFLite with TensorFlow's and tf2onnx's own converters;
- `ffseg.serve.commands`: the two subcommands, added to ``ffseg`` by
  ``ffseg.cli``.

This layer stands above `ffseg.inference` (which it serves) and below
`ffseg.cli`.
"""
