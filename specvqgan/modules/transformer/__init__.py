"""The cross-modal GPT: minGPT-style decoder (``mingpt``), KV cache (``kv_cache``), token orders (``permuter``)."""
