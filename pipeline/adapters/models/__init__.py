"""Embedding model adapters: sentence-transformers on torch, ONNX, the tokenizer."""
