"""Synthetic, seeded stand-ins for the data the benchmarks write and read.

Nothing is downloaded: each workload is generated in memory from a seed, so
every backend is written from the very same arrays.

* ``mnist``: 60,000 x float32 (1, 28, 28) ``image`` + uint8 ``label``. Each
  digit is 2-4 thick line strokes on a black background: mostly zeros (about
  80%, like MNIST), values in [0, 1] with soft anti-aliased edges, so the
  records compress roughly as real MNIST does.
* ``chips``: remote-sensing chips, float32 (4, 128, 128) ``image`` (262 KB)
  + uint8 (1, 128, 128) ``mask``. Bands are Gaussian-smoothed noise (spatially
  correlated, correlated across bands), scaled to surface reflectance and
  quantised to 1e-4 as Sentinel-2 L2A values are (DN / 10000); the mask
  thresholds a smoothed field into 4 classes.
* ``big``: float32 (13, 256, 256) ``image`` (3.4 MB, far larger than any
  table block) + uint8 ``label``, the 13 Sentinel-2 bands.

``--quick`` sizes are 2,000 / 200 / 40 samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Workload", "WORKLOADS", "SIZES", "QUICK_SIZES", "make"]

#: Samples per workload in a full run and in a ``--quick`` run.
SIZES = {"mnist": 60_000, "chips": 2_000, "big": 200}
QUICK_SIZES = {"mnist": 2_000, "chips": 200, "big": 40}
WORKLOADS = tuple(SIZES)


@dataclass
class Workload:
    """One workload: named, stacked arrays with a leading sample axis."""

    name: str
    description: str
    arrays: dict[str, np.ndarray]
    label_field: str

    @property
    def n(self) -> int:
        return len(next(iter(self.arrays.values())))

    @property
    def raw_bytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())

    @property
    def sample_bytes(self) -> int:
        return self.raw_bytes // self.n


def _strokes(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` 28x28 stroke drawings in [0, 1], drawn in chunks to bound memory."""
    out = np.empty((n, 1, 28, 28), np.float32)
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float32)
    pix = np.stack([yy.ravel(), xx.ravel()], 1)  # (784, 2)
    for lo in range(0, n, 4096):
        m = min(4096, n - lo)
        k = 4
        a = rng.uniform(5, 23, (m, k, 2)).astype(np.float32)
        b = np.clip(a + rng.normal(0, 6, (m, k, 2)), 4, 24).astype(np.float32)
        used = rng.integers(2, k + 1, m)[:, None] > np.arange(k)[None, :]  # 2-4 strokes
        width = rng.uniform(0.9, 1.6, (m, 1, 1)).astype(np.float32)
        ab = b - a
        t = np.einsum("pj,mkj->mkp", pix, ab) - np.einsum("mkj,mkj->mk", a, ab)[..., None]
        t = np.clip(t / np.maximum((ab**2).sum(-1), 1e-6)[..., None], 0, 1)
        near = a[:, :, None, :] + t[..., None] * ab[:, :, None, :]
        d = np.sqrt(((pix[None, None] - near) ** 2).sum(-1))  # (m, k, 784)
        ink = np.clip(1.0 + width - d, 0, 1) * used[..., None]
        img = ink.max(1).reshape(m, 1, 28, 28)
        out[lo : lo + m] = np.round(img * 255) / 255  # 8-bit grey levels, as MNIST
    return out


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise over the last two axes, unit variance, float32."""
    h, w = shape[-2:]
    noise = rng.standard_normal(shape, dtype=np.float32)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    kernel = np.exp(-2 * (np.pi * sigma) ** 2 * (fy**2 + fx**2)).astype(np.float32)
    out = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=(h, w)).astype(np.float32)
    out /= out.std(axis=(-2, -1), keepdims=True) + 1e-6
    return out


def _reflectance(rng: np.random.Generator, n: int, bands: int, size: int) -> np.ndarray:
    out = np.empty((n, bands, size, size), np.float32)
    chunk = max(1, 2**25 // (bands * size * size))
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        common = _smooth_noise(rng, (m, 1, size, size), sigma=size / 16)
        own = _smooth_noise(rng, (m, bands, size, size), sigma=size / 32)
        base = rng.uniform(0.03, 0.3, (1, bands, 1, 1)).astype(np.float32)
        refl = base * (1 + 0.35 * common + 0.15 * own)
        out[lo : lo + m] = np.round(np.clip(refl, 0, 1) * 10_000) / 10_000
    return out


def make(name: str, n: int, seed: int = 0) -> Workload:
    """Generate workload ``name`` with ``n`` samples."""
    rng = np.random.default_rng(seed)
    if name == "mnist":
        return Workload(
            name,
            "MNIST-shaped: float32 (1,28,28) strokes + uint8 label",
            {"image": _strokes(rng, n), "label": rng.integers(0, 10, n, dtype=np.uint8)},
            "label",
        )
    if name == "chips":
        image = _reflectance(rng, n, 4, 128)
        field = _smooth_noise(rng, (n, 1, 128, 128), sigma=8)
        mask = np.digitize(field, [-0.8, 0.0, 0.8]).astype(np.uint8)
        return Workload(name, "chips: float32 (4,128,128) + uint8 (1,128,128) mask", {"image": image, "mask": mask}, "mask")
    if name == "big":
        return Workload(
            name,
            "big chips: float32 (13,256,256) + uint8 label",
            {"image": _reflectance(rng, n, 13, 256), "label": rng.integers(0, 10, n, dtype=np.uint8)},
            "label",
        )
    raise ValueError(f"unknown workload {name!r}; expected one of {WORKLOADS}")
