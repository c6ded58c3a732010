"""The baseline of bench/front.py: a bare Flask app that parses decision requests and answers them.

No policy, no decision log: what Flask under a given HTTP server costs for the same requests as
``POST /v1/decisions`` and ``POST /v1/decisions/batch``, with answers of the same shape.
"""
from __future__ import annotations

import orjson
from flask import Flask, Response, request

app = Flask("bare")


def _answer(item: dict) -> dict:
    return {"decision_id": "01J00000000000000000000000", "policy_version": "bare", "allow": True,
            "obligations": [{"name": "skip_price_calculation", "params": {}}], "rules": ["BARE"],
            "error": None, "action": item.get("action")}


@app.post("/v1/decisions")
def decide() -> Response:
    return Response(orjson.dumps(_answer(orjson.loads(request.get_data()))), mimetype="application/json")


@app.post("/v1/decisions/batch")
def decide_batch() -> Response:
    items = orjson.loads(request.get_data())["requests"]
    return Response(orjson.dumps({"results": [_answer(item) for item in items]}), mimetype="application/json")
