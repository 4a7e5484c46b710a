"""Fake ``POST /v1/embeddings``: deterministic unit vectors, and usage counted like a bare prompt."""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct

import httpx2

from .fake_http import Exchange, json_response
from .fake_openai_common import REQUEST_ID_HEADER, int_field, raw_prompts, raw_tokens
from .fake_tokens import compact_json

DEFAULT_DIMENSIONS = 1536
_DIMENSIONS = {"text-embedding-3-large": 3072}


def embeddings(exchange: Exchange) -> httpx2.Response:
    body = exchange.body
    inputs = raw_prompts(body.get("input"))
    dimensions = int_field(body, "dimensions") or _DIMENSIONS.get(exchange.model, DEFAULT_DIMENSIONS)
    as_base64 = body.get("encoding_format") == "base64"
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": _encode(_vector(item, dimensions), as_base64=as_base64),
        }
        for index, item in enumerate(inputs)
    ]
    tokens = sum(raw_tokens(item) for item in inputs)
    payload = {
        "object": "list",
        "data": data,
        "model": exchange.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return json_response(
        exchange, 200, payload, request_id_header=REQUEST_ID_HEADER, delay_s=exchange.delay_s
    )


def _vector(item: str | list[int], dimensions: int) -> list[float]:
    """A unit vector that depends only on the input, so that equal texts embed equally."""
    generator = random.Random(hashlib.sha256(compact_json(item).encode()).digest())
    values = [generator.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(value * value for value in values)) or 1.0
    return [value / norm for value in values]


def _encode(vector: list[float], *, as_base64: bool) -> list[float] | str:
    # The SDK asks for base64 unless told otherwise: little-endian float32s, as the API sends them.
    if not as_base64:
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
