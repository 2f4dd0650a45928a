"""A big all-numeric predict body is parsed in slices (the event loop gets the GIL between
them) with exactly the answers and errors of the whole-body path."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from service.errors import InvalidInput
from service.ml import portable
from service.models import predict_input, routes


@pytest.fixture
def model() -> portable.CompiledModel:
    rng = np.random.default_rng(0)
    width = 6
    doc = portable.make_document(
        target="y",
        features=[{"name": f"x{j}", "kind": "numeric", "dtype": "float64"} for j in range(width)],
        numeric={
            "names": [f"x{j}" for j in range(width)],
            "impute": "mean",
            "impute_values": rng.normal(size=width).tolist(),
            "scaling": "standard",
            "means": rng.normal(size=width).tolist(),
            "scales": rng.uniform(0.5, 2, size=width).tolist(),
        },
        categorical={"names": [], "categories": []},
        coef=rng.normal(size=width).tolist(),
        intercept=0.5,
        feature_names_out=[f"x{j}" for j in range(width)],
        penalty={"type": "l2", "alpha": 1.0},
        training_data_sha256="x",
    )
    return portable.compile_model(doc)


def test_sliced_rows_equal_the_whole_body(model: portable.CompiledModel) -> None:
    rows = np.random.default_rng(1).normal(size=(40_000, 6)).round(9)
    rows[::7, 2] = np.round(rows[::7, 2] * 1000)  # integers among the floats
    body = orjson.dumps({"rows": rows.tolist()}, option=orjson.OPT_INDENT_2)
    assert len(body) > 3 * routes.PARSE_SLICE_BYTES
    sliced = routes._numeric_rows_in_slices(model, body)
    assert sliced is not None and sliced.n_rows == 40_000
    whole = predict_input.parse_rows(model, orjson.loads(body)["rows"])
    np.testing.assert_array_equal(sliced.numeric, whole.numeric)
    np.testing.assert_array_equal(portable.predict(model, sliced), portable.predict(model, whole))


@pytest.mark.parametrize(
    "bad",
    [
        {"rows": [[1, 2, 3, 4, 5, True]]},
        {"rows": [[1, 2, 3, 4, 5]]},
        {"rows": [[1, 2, 3, 4, 5, "6"]]},
        {"rows": [[1, 2, 3, 4, 5, [6]]]},
    ],
)
def test_anything_but_plain_numbers_takes_the_checked_path(
    model: portable.CompiledModel, bad: dict[str, list[list[object]]]
) -> None:
    good = [[0.5] * 6] * 60_000
    body = orjson.dumps({"rows": good + bad["rows"] + good})
    assert routes._numeric_rows_in_slices(model, body) is None
    with pytest.raises(InvalidInput) as exc:
        routes._parse_request(model, "application/json", body, 1_000_000)
    assert exc.value.errors is not None
    assert exc.value.errors[0]["loc"].startswith("/rows/60000"), exc.value.errors


def test_a_null_is_imputed_on_the_checked_path(model: portable.CompiledModel) -> None:
    rows = [[0.5] * 6] * 60_000 + [[1, 2, 3, 4, 5, None]]
    body = orjson.dumps({"rows": rows})
    assert routes._numeric_rows_in_slices(model, body) is None
    parsed = routes._parse_request(model, "application/json", body, 1_000_000)
    assert parsed.n_rows == 60_001
