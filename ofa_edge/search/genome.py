"""A population of subnets as integer arrays (choice indices), for vectorised search."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ofa_edge.space import SearchSpace, Subnet, encoding_size, validate


@dataclass(frozen=True)
class Genomes:
    """N subnets: kernel/expand choice index per block slot, depth index per stage, resolution index."""

    k: np.ndarray  # [N, n_blocks] index into space.ks_list
    e: np.ndarray  # [N, n_blocks] index into space.expand_list
    d: np.ndarray  # [N, n_stages] index into space.depth_list
    r: np.ndarray  # [N] index into space.resolutions

    def __len__(self) -> int:
        return int(self.r.shape[0])

    def take(self, idx) -> "Genomes":
        """The rows ``idx`` (an index array or a boolean mask)."""
        return Genomes(self.k[idx], self.e[idx], self.d[idx], self.r[idx])

    @staticmethod
    def concat(parts: list["Genomes"]) -> "Genomes":
        return Genomes(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("k", "e", "d", "r")))


class GenomeCodec:
    """Converts between Subnet values and Genomes of one space; samples, mutates, crosses and encodes."""

    def __init__(self, space: SearchSpace):
        self.space = space
        self.ks = np.asarray(space.ks_list)
        self.es = np.asarray(space.expand_list)
        self.ds = np.asarray(space.depth_list)
        self.rs = np.asarray(space.resolutions)
        nb = space.n_blocks
        self.slot_stage = np.arange(nb) // space.max_depth
        self.slot_pos = np.arange(nb) % space.max_depth
        self.enc_size = encoding_size(space)
        self._k0 = len(space.resolutions)
        self._e0 = self._k0 + nb * len(space.ks_list)

    # -- conversion -----------------------------------------------------------------------------
    def from_subnets(self, subnets: list[Subnet]) -> Genomes:
        """Genomes of validated subnets (entries of skipped slots map to the first choice if unknown)."""
        sp = self.space
        kmap = {v: i for i, v in enumerate(sp.ks_list)}
        emap = {v: i for i, v in enumerate(sp.expand_list)}
        dmap = {v: i for i, v in enumerate(sp.depth_list)}
        rmap = {v: i for i, v in enumerate(sp.resolutions)}
        for s in subnets:
            validate(sp, s)
        k = np.array([[kmap.get(v, 0) for v in s.ks] for s in subnets], dtype=np.int64).reshape(-1, sp.n_blocks)
        e = np.array([[emap.get(v, 0) for v in s.e] for s in subnets], dtype=np.int64).reshape(-1, sp.n_blocks)
        d = np.array([[dmap[v] for v in s.d] for s in subnets], dtype=np.int64).reshape(-1, sp.n_stages)
        r = np.array([rmap[s.r] for s in subnets], dtype=np.int64)
        return Genomes(k, e, d, r)

    def to_subnets(self, g: Genomes) -> list[Subnet]:
        """Subnet values of every row."""
        ks, es, ds, rs = self.ks[g.k], self.es[g.e], self.ds[g.d], self.rs[g.r]
        md = self.space.max_depth
        return [Subnet(ks=ks[i].tolist(), e=es[i].tolist(), d=ds[i].tolist(), r=int(rs[i]), max_depth=md)
                for i in range(len(g))]

    def active(self, g: Genomes) -> np.ndarray:
        """[N, n_blocks] boolean mask of the block slots that run."""
        depth = self.ds[g.d]  # [N, n_stages]
        return self.slot_pos[None, :] < depth[:, self.slot_stage]

    def keys(self, g: Genomes) -> list[bytes]:
        """A hashable key per row that ignores skipped slots (equal keys = same architecture)."""
        act = self.active(g)
        k = np.where(act, g.k, -1)
        e = np.where(act, g.e, -1)
        rows = np.concatenate([k, e, g.d, g.r[:, None]], axis=1).astype(np.int16)
        return [row.tobytes() for row in rows]

    # -- encoding -------------------------------------------------------------------------------
    def encode(self, g: Genomes) -> np.ndarray:
        """[N, encoding_size] float32 one-hot features, identical to ``ofa_edge.space.encode``."""
        n, nb = len(g), self.space.n_blocks
        nk, ne = len(self.ks), len(self.es)
        out = np.zeros((n, self.enc_size), dtype=np.float32)
        rows = np.arange(n)
        out[rows, g.r] = 1.0
        act = self.active(g).astype(np.float32)
        slots = np.arange(nb)[None, :]
        ridx = np.broadcast_to(rows[:, None], (n, nb))
        out[ridx, self._k0 + slots * nk + g.k] = act
        out[ridx, self._e0 + slots * ne + g.e] = act
        return out

    # -- random operators -----------------------------------------------------------------------
    def sample(self, rng: np.random.Generator, n: int) -> Genomes:
        """``n`` subnets drawn uniformly per choice (every slot, depth and the resolution)."""
        sp = self.space
        return Genomes(rng.integers(0, len(self.ks), (n, sp.n_blocks)),
                       rng.integers(0, len(self.es), (n, sp.n_blocks)),
                       rng.integers(0, len(self.ds), (n, sp.n_stages)),
                       rng.integers(0, len(self.rs), n))

    def mutate(self, rng: np.random.Generator, parents: Genomes, prob: float,
               resolution_prob: float) -> Genomes:
        """OFA mutation of every row: each slot re-draws kernel AND expand with ``prob``; each depth with
        ``prob``; the resolution with ``resolution_prob``."""
        fresh = self.sample(rng, len(parents))
        n, nb, ns = len(parents), self.space.n_blocks, self.space.n_stages
        slot = rng.random((n, nb)) < prob
        depth = rng.random((n, ns)) < prob
        res = rng.random(n) < resolution_prob
        return Genomes(np.where(slot, fresh.k, parents.k), np.where(slot, fresh.e, parents.e),
                       np.where(depth, fresh.d, parents.d), np.where(res, fresh.r, parents.r))

    def crossover(self, rng: np.random.Generator, a: Genomes, b: Genomes) -> Genomes:
        """OFA crossover: every gene (each list element and the resolution) from either parent, p = 0.5."""
        pick = lambda x, y: np.where(rng.random(x.shape) < 0.5, x, y)  # noqa: E731
        return Genomes(pick(a.k, b.k), pick(a.e, b.e), pick(a.d, b.d), pick(a.r, b.r))
