"""Tests of ddlib.data.zca (kornia ZCAWhitening semantics, as in MTT/KIP)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddlib.data.zca import ZCA
from ddlib.core.runtime import make_generator


def correlated(n: int = 400, shape=(1, 2, 2), seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = make_generator(seed)
    d = math.prod(shape)
    mix = torch.randn(d, d, generator=g, dtype=torch.float64)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) @ mix + 3.0
    return x.reshape(n, *shape).to(dtype)


def test_inverse_of_transform_is_identity():
    x = correlated(shape=(3, 2, 2))
    zca = ZCA.fit(x, regularization=0.1)
    torch.testing.assert_close(zca.inverse(zca.transform(x)), x)
    torch.testing.assert_close(zca.matrix @ zca.inverse_matrix, torch.eye(12, dtype=torch.float64))


def test_float32_in_float32_out():
    x = correlated(dtype=torch.float32)
    zca = ZCA.fit(x)
    z = zca.transform(x)
    assert z.dtype == torch.float32 and z.shape == x.shape
    assert zca.matrix.dtype == torch.float64
    torch.testing.assert_close(zca.inverse(z), x, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("eps", [0.0, 1e-12])
def test_without_regularization_whitened_data_has_identity_covariance(eps):
    x = correlated(n=500)
    z = ZCA.fit(x, regularization=eps).transform(x).reshape(500, -1)
    torch.testing.assert_close(z.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-10, rtol=0)
    cov = torch.cov(z.T)  # unbiased, like the fit
    torch.testing.assert_close(cov, torch.eye(4, dtype=torch.float64), atol=1e-8, rtol=0)


def test_regularization_shrinks_the_whitened_variance():
    x = correlated(n=500)
    z = ZCA.fit(x, regularization=0.1).transform(x).reshape(500, -1)
    assert (torch.cov(z.T).diagonal() < 1).all()


def test_zca_keeps_orientation():
    # ZCA (unlike PCA whitening) is the symmetric whitening: W is symmetric
    # positive definite, so whitened images stay close to the originals.
    zca = ZCA.fit(correlated(shape=(1, 3, 3)))
    torch.testing.assert_close(zca.matrix, zca.matrix.T)
    assert (torch.linalg.eigvalsh(zca.matrix) > 0).all()


def test_matrices_match_hand_computation_2d():
    # Flattened data X (N=6, D=2) as 1x1x2 images: mean 0, X^T X = [[10, 2], [2, 10]],
    # unbiased cov = [[2, .4], [.4, 2]] with eigenpairs 2.4 -> (1, 1)/sqrt2, 1.6 -> (1, -1)/sqrt2.
    pts = torch.tensor([[2, 0], [0, 2], [-2, 0], [0, -2], [1, 1], [-1, -1]], dtype=torch.float64)
    eps = 0.1
    zca = ZCA.fit(pts.view(6, 1, 1, 2), regularization=eps)
    p, q = 1 / math.sqrt(2.4 + eps), 1 / math.sqrt(1.6 + eps)
    want = 0.5 * torch.tensor([[p + q, p - q], [p - q, p + q]], dtype=torch.float64)
    torch.testing.assert_close(zca.mean, torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(zca.matrix, want)
    pi, qi = math.sqrt(2.4 + eps), math.sqrt(1.6 + eps)
    want_inv = 0.5 * torch.tensor([[pi + qi, pi - qi], [pi - qi, pi + qi]], dtype=torch.float64)
    torch.testing.assert_close(zca.inverse_matrix, want_inv)
    torch.testing.assert_close(zca.transform(pts.view(6, 1, 1, 2)).view(6, 2), pts @ want)


def test_matches_kornia_docstring_example():
    # kornia's zca_whiten docstring: [[0,1],[1,0],[-1,0]] with eps=1e-6 whitens to
    # [[0, 1.1547], [1, -0.5773], [-1, -0.5773]] (which needs the N - 1 covariance).
    x = torch.tensor([[0, 1], [1, 0], [-1, 0]], dtype=torch.float32).view(3, 1, 1, 2)
    z = ZCA.fit(x, regularization=1e-6).transform(x).view(3, 2)
    want = torch.tensor([[0.0, 1.1547], [1.0, -0.5773], [-1.0, -0.5773]])
    torch.testing.assert_close(z, want, atol=2e-4, rtol=0)


def test_matrices_match_numpy_on_4_pixel_images():
    x = correlated(n=50, shape=(1, 2, 2), seed=3)
    flat = x.reshape(50, 4).numpy()
    cov = np.cov(flat, rowvar=False)  # N - 1
    s, u = np.linalg.eigh(cov)
    w = u @ np.diag(1 / np.sqrt(s + 0.1)) @ u.T
    zca = ZCA.fit(x, regularization=0.1)
    np.testing.assert_allclose(zca.matrix.numpy(), w, atol=1e-10)
    np.testing.assert_allclose(zca.mean.numpy(), flat.mean(0), atol=1e-12)
    np.testing.assert_allclose(zca.transform(x).reshape(50, 4).numpy(), (flat - flat.mean(0)) @ w, atol=1e-10)


def test_chunked_fit_matches_single_pass(monkeypatch):
    import ddlib.data.zca as zca_module

    x = correlated(n=100, shape=(2, 2, 2))
    whole = ZCA.fit(x)
    monkeypatch.setattr(zca_module, "_CHUNK", 7)
    chunked = ZCA.fit(x)
    torch.testing.assert_close(chunked.matrix, whole.matrix)
    torch.testing.assert_close(chunked.transform(x), whole.transform(x))


def test_transform_is_differentiable():
    x = correlated(n=20)
    zca = ZCA.fit(x)
    y = x.clone().requires_grad_(True)
    zca.transform(y).sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(5), "float tensor"),
        (torch.zeros(5, 1, 2, 2, dtype=torch.long), "float tensor"),
        (torch.zeros(1, 1, 2, 2), "at least 2"),
    ],
)
def test_fit_shape_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        ZCA.fit(bad)


def test_fit_rejects_bad_regularization_and_singular_covariance():
    x = correlated()
    with pytest.raises(ValueError, match="regularization"):
        ZCA.fit(x, regularization=-0.1)
    with pytest.raises(ValueError, match="singular"):
        ZCA.fit(torch.randn(3, 1, 3, 3, generator=make_generator(0)), regularization=0.0)


def test_transform_shape_validation():
    zca = ZCA.fit(correlated(shape=(1, 2, 2)))
    with pytest.raises(ValueError, match="fitted on"):
        zca.transform(torch.zeros(3, 1, 3, 3))
    with pytest.raises(ValueError, match="fitted on"):
        zca.inverse(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="float tensor"):
        zca.transform(torch.zeros(4))


def test_state_dict_round_trip(tmp_path):
    x = correlated(shape=(3, 2, 2))
    zca = ZCA.fit(x, regularization=0.1)
    path = tmp_path / "zca.pt"
    torch.save(zca.state_dict(), path)
    loaded = ZCA.from_state_dict(torch.load(path, weights_only=True))
    assert loaded.feature_shape == (3, 2, 2) and loaded.regularization == 0.1
    assert torch.equal(loaded.transform(x), zca.transform(x))
    assert torch.equal(loaded.inverse(x), zca.inverse(x))
    with pytest.raises(ValueError, match="missing"):
        ZCA.from_state_dict({"mean": zca.mean})


def test_to_device_copy():
    zca = ZCA.fit(correlated()).to("cpu")
    assert zca.device.type == "cpu" and zca.matrix.dtype == torch.float64
