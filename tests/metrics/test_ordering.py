"""descending_stable is np.argsort(-x, kind="stable"), whichever path it takes."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from facediag.metrics.ordering import descending_stable

# Few distinct values: long runs of ties, signed zeros, infinities and NaN in every order.
_TIES = st.sampled_from([0.0, -0.0, 0.5, -0.25, 1.0, 0.125, float("nan"), float("inf"), -float("inf")])


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(hnp.arrays(np.float64, st.integers(0, 60), elements=st.one_of(_TIES, st.floats(-1, 1, width=32))))
def test_float32_scores_in_float64_order_as_a_stable_argsort(x):
    np.testing.assert_array_equal(descending_stable(x), np.argsort(-x, kind="stable"))


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(hnp.arrays(np.float64, st.integers(0, 40), elements=st.floats(allow_nan=True, allow_infinity=True)))
def test_any_float64_values_order_as_a_stable_argsort(x):  # most not float32 values: the fallback
    np.testing.assert_array_equal(descending_stable(x), np.argsort(-x, kind="stable"))


@settings(max_examples=100, deadline=None, database=None, derandomize=True)
@given(hnp.arrays(np.float32, st.integers(0, 60), elements=st.one_of(_TIES, st.floats(width=32))))
def test_float32_arrays_order_as_a_stable_argsort(x):
    np.testing.assert_array_equal(descending_stable(x), np.argsort(-x, kind="stable"))


def test_a_million_scores_with_many_ties():
    x = np.round(np.random.default_rng(0).standard_normal(1_000_000), 3).astype(np.float32).astype(np.float64)
    np.testing.assert_array_equal(descending_stable(x), np.argsort(-x, kind="stable"))
