"""Vocabulary surgery: kept rows copied, each initialisation's statistics, sparsemax, param dicts, errors."""

from __future__ import annotations

import numpy as np
import pytest

from lowres.models.surgery import (
    METHODS,
    IdMap,
    VocabMatrix,
    resize_embeddings,
    resize_params,
    sparsemax,
)


def old_matrix(vocab: int = 50, dim: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim))
    return (rng.normal(size=(vocab, dim)) @ mixing + rng.normal(size=dim)).astype(np.float32)


# New vocabulary of 8: ids 0, 2, 3, 6 keep old rows 4, 0, 9, 4; ids 1, 4, 5, 7 are new.
ID_MAP = [4, None, 0, 9, None, None, 4, None]
KEPT, ADDED = np.array([0, 2, 3, 6]), np.array([1, 4, 5, 7])


def focus_similarity() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(len(ADDED), len(KEPT)))


def kwargs_for(method: str) -> dict:
    return {
        "mean_of_pieces": {"new_token_pieces": {1: [1, 2], 4: [3]}},
        "focus": {"aux_similarity": focus_similarity()},
    }.get(method, {})


def test_id_map_forms_agree():
    from_sequence = IdMap.from_any(ID_MAP)
    from_mapping = IdMap.from_any({0: 4, 2: 0, 3: 9, 6: 4, 7: None})
    np.testing.assert_array_equal(from_sequence.old_ids, from_mapping.old_ids)
    np.testing.assert_array_equal(from_sequence.kept, KEPT)
    np.testing.assert_array_equal(from_sequence.added, ADDED)
    assert IdMap.from_any({0: 1}, new_vocab_size=3).added.tolist() == [1, 2]


@pytest.mark.parametrize("method", METHODS)
def test_kept_rows_copied_exactly(method):
    old = old_matrix()
    new = resize_embeddings(old, ID_MAP, method, **kwargs_for(method))
    assert new.shape == (8, 6) and new.dtype == old.dtype
    np.testing.assert_array_equal(new[KEPT], old[[4, 0, 9, 4]])
    assert np.all(np.isfinite(new))


def test_random_rows_have_old_std_and_depend_on_seed():
    old = old_matrix()
    id_map = [0] + [None] * 4000
    new = resize_embeddings(old, id_map, "random")[1:]
    assert new.std() == pytest.approx(old.std(), rel=0.03)
    assert abs(new.mean()) < 0.05 * old.std()
    np.testing.assert_array_equal(new, resize_embeddings(old, id_map, "random")[1:])
    assert not np.array_equal(new, resize_embeddings(old, id_map, "random", rng_seed=1)[1:])


def test_mean_rows_equal_old_mean():
    old = old_matrix()
    new = resize_embeddings(old, ID_MAP, "mean")
    np.testing.assert_allclose(new[ADDED], np.broadcast_to(old.astype(np.float64).mean(0), (4, 6)), rtol=1e-6)


def test_multivariate_normal_matches_fitted_gaussian():
    old = old_matrix(vocab=200).astype(np.float64)
    new = resize_embeddings(old, [None] * 50000, "multivariate_normal")
    fitted_cov = np.cov(old, rowvar=False)
    scale = np.sqrt(np.diag(fitted_cov))
    np.testing.assert_allclose(new.mean(0), old.mean(0), atol=0.03 * scale.max())
    np.testing.assert_allclose(np.cov(new, rowvar=False), fitted_cov, atol=0.03 * fitted_cov.diagonal().max())


def test_multivariate_normal_with_fewer_rows_than_dimensions():
    new = resize_embeddings(old_matrix(vocab=3, dim=10), [0, None, None], "multivariate_normal")
    assert np.all(np.isfinite(new))


def test_mean_of_pieces_by_hand_with_mean_fallback():
    old = old_matrix()
    new = resize_embeddings(old, ID_MAP, "mean_of_pieces", new_token_pieces={1: [1, 2], 4: [3], 5: []})
    np.testing.assert_allclose(new[1], (old[1].astype(np.float64) + old[2]) / 2, rtol=1e-6)
    np.testing.assert_allclose(new[4], old[3])
    np.testing.assert_allclose(new[5], old.astype(np.float64).mean(0), rtol=1e-6)  # empty pieces
    np.testing.assert_allclose(new[7], old.astype(np.float64).mean(0), rtol=1e-6)  # no entry


def test_focus_is_sparse_convex_combination_of_kept_rows():
    old = old_matrix().astype(np.float64)
    similarity = np.array(
        [
            [0.9, 0.1, 0.8, -1.0],
            [0.0, 0.0, 0.0, 0.0],
            [5.0, 0.0, 0.1, 0.2],  # one similarity dominates: one-hot on kept id 0
            [0.3, 0.35, -2.0, 0.2],
        ]
    )
    weights = sparsemax(similarity)
    np.testing.assert_allclose(weights.sum(-1), 1.0)
    assert np.all(weights >= 0) and np.count_nonzero(weights[[0, 2, 3]] == 0) >= 4
    np.testing.assert_array_equal(weights[2], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(weights[0], [0.55, 0.0, 0.45, 0.0])  # tau = (0.9 + 0.8 - 1) / 2 = 0.35
    new = resize_embeddings(old, ID_MAP, "focus", aux_similarity=similarity)
    kept_rows = old[[4, 0, 9, 4]]
    np.testing.assert_allclose(new[ADDED], weights @ kept_rows)
    np.testing.assert_allclose(new[5], kept_rows[0])


def test_sparsemax_properties():
    z = np.random.default_rng(0).normal(size=(100, 7)) * 3
    p = sparsemax(z)
    np.testing.assert_allclose(p.sum(-1), 1.0)
    assert np.all(p >= 0)
    on_simplex = np.random.default_rng(1).dirichlet(np.ones(7), size=20)
    np.testing.assert_allclose(sparsemax(on_simplex), on_simplex, atol=1e-12)
    np.testing.assert_allclose(sparsemax(z + 10.0), p, atol=1e-12)  # shift invariant
    np.testing.assert_allclose(sparsemax(z.T, axis=0), p.T)
    np.testing.assert_allclose(sparsemax(np.array([2.0, 2.0, -5.0])), [0.5, 0.5, 0.0])


def test_transposed_matrix_along_axis_1():
    old = old_matrix()
    rows = resize_embeddings(old, ID_MAP, "mean_of_pieces", **kwargs_for("mean_of_pieces"))
    columns = resize_embeddings(old.T, ID_MAP, "mean_of_pieces", axis=1, **kwargs_for("mean_of_pieces"))
    assert columns.shape == (6, 8)
    np.testing.assert_array_equal(columns, rows.T)


def test_resize_params_handles_embedding_and_logits_kernel():
    old = old_matrix()
    params = {
        "shared_embedding": {"embedding": old},
        "logits": {"kernel": old.T.copy()},
        "encoder": {"norm": {"scale": np.ones(6)}},
    }
    paths = (("shared_embedding", "embedding"), VocabMatrix(("logits", "kernel"), vocab_axis=1))
    new = resize_params(params, ID_MAP, "focus", paths, aux_similarity=focus_similarity())
    assert new["shared_embedding"]["embedding"].shape == (8, 6)
    assert new["logits"]["kernel"].shape == (6, 8)
    np.testing.assert_allclose(new["logits"]["kernel"], new["shared_embedding"]["embedding"].T, rtol=1e-6)
    assert new["encoder"] is params["encoder"]
    assert params["shared_embedding"]["embedding"] is old  # input untouched

    randomised = resize_params(params, ID_MAP, "random", paths)
    new_inputs = randomised["shared_embedding"]["embedding"][ADDED]
    new_outputs = randomised["logits"]["kernel"][:, ADDED]
    assert not np.allclose(new_outputs.T, new_inputs)  # independent draws per matrix


def test_resize_params_default_paths_fit_lowres_model():
    import jax
    from flax import nnx

    from lowres.models import EncoderDecoder, EncoderDecoderConfig

    config = EncoderDecoderConfig(
        vocab_size=12, d_model=8, num_heads=2, head_dim=4, d_ff=16, num_encoder_layers=1, num_decoder_layers=1
    )
    abstract = nnx.eval_shape(lambda: EncoderDecoder(config, rngs=nnx.Rngs(0)))
    params = jax.tree.map(lambda leaf: np.ones(leaf.shape), nnx.to_pure_dict(nnx.state(abstract, nnx.Param)))
    new = resize_params(params, list(range(12)) + [None, None], "mean")
    assert np.shape(new["token_embed"]["embedding"]) == (14, 8)
    assert np.shape(new["logits_kernel"]) == (8, 14)


def test_errors():
    old = old_matrix()
    with pytest.raises(ValueError, match="valid methods: .*'random'.*'focus'"):
        resize_embeddings(old, ID_MAP, "zeros")
    with pytest.raises(ValueError, match=r"\(50, 6\)"):
        resize_embeddings(old, [50, None], "mean")
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(4, 4\)"):
        resize_embeddings(old, ID_MAP, "focus", aux_similarity=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="2-D"):
        resize_embeddings(old[0], ID_MAP, "mean")
    with pytest.raises(ValueError, match="new_token_pieces"):
        resize_embeddings(old, ID_MAP, "mean_of_pieces")
    with pytest.raises(ValueError, match="aux_similarity"):
        resize_embeddings(old, ID_MAP, "focus")
    with pytest.raises(ValueError, match="outside the old vocabulary"):
        resize_embeddings(old, ID_MAP, "mean_of_pieces", new_token_pieces={1: [50]})
    with pytest.raises(KeyError, match="logits"):
        resize_params({"embed": {"embedding": old}}, ID_MAP, "mean", (("embed", "embedding"), ("logits", "kernel")))
    with pytest.raises(ValueError, match="disagree"):
        resize_params({"a": old, "b": old[:40]}, ID_MAP, "mean", (("a",), ("b",)))
