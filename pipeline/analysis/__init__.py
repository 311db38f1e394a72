"""Reading code: file selection, parsing, chunks, symbols, imports and calls."""
