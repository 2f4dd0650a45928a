"""The floor of the prediction benchmark: the least a FastAPI + orjson + numpy route can do.

One route, ``POST /predict`` with ``{"rows": [[...], ...]}``: parse with orjson, one numpy
dot product, answer with orjson. No validation, no middleware, no model lookup. It is served
by uvicorn with the same settings as ``regfit serve`` (:func:`service.cli.server_options`),
so the ratio to it measures what regfit's own code costs::

    .venv/bin/python benchmarks/floor_app.py --port 8100 --n-features 20
"""

from __future__ import annotations

import argparse

import numpy as np
import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

from service.cli import server_options


def create_floor_app(coef: np.ndarray, intercept: float) -> FastAPI:
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        rows = orjson.loads(await request.body())["rows"]
        predictions = np.asarray(rows, dtype=np.float64) @ coef + intercept
        return Response(
            orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY),
            media_type="application/json",
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n-features", type=int, default=20)
    args = parser.parse_args()
    coef = np.random.default_rng(0).normal(size=args.n_features)
    app = create_floor_app(coef, 1.5)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", **server_options())


if __name__ == "__main__":
    main()
