"""Which image encoder learns the hard world at free pixel positions? A PyTorch probe (not minivq).

minivq's image encoders are a per-patch MLP and a window encoder (a patch-sized
convolution, max over each cell's window); at free positions neither learns
enough for the study's claims to be tested (README, "The paper's claims,
tested"; ``study/free_window``). Before deriving the backward of a deeper
image encoder by hand, this script asks the cheaper question with autograd:
does a small convolutional encoder (four 3x3 convolutions, three 2x2
max-pools down to the 8-pixel cell grid) learn free positions where the
per-patch MLP does not?

Only the summary model is trained (SUM-1, MMS on S, ModelConfig's defaults:
D 32, hidden 64, embed_dim 64, tau 0.1, units L2-normalized, the speech
encoder of minivq), on 2000 training scenes, Adam, batch 64, and scored by
the study's learning-curve metric: set-level mean R@1 on 500 val scenes
(:func:`minivq.metrics.claims.set_retrieval_ranks`; chance about 0.005).
Run from the repository root, with torch installed (``pip install
torch==2.13.0``; never a dependency of minivq)::

    python benchmarks/probe_free_positions.py --encoder patch --world hard_on_grid
    python benchmarks/probe_free_positions.py --encoder patch --world hard
    python benchmarks/probe_free_positions.py --encoder cnn --world hard [--lr 0.001] [--epochs 60] [--n-train 2000]

Each prints one line every 5 epochs. A probe, not a result of minivq: the
README quotes its numbers as such.
"""
import argparse
import time

import numpy as np

from minivq.data.world import world_scenes
from minivq.layers import conv1d_output_mask
from minivq.metrics import claims


def unit_mask(mask, k=9, s=3):
    """The speech units' validity after minivq's two strided convolutions (the centre rule)."""
    pad = (k - 1) // 2
    return conv1d_output_mask(conv1d_output_mask(mask, k, s, pad), k, s, pad)


def build(torch, encoder, seed):
    nn = torch.nn
    torch.manual_seed(seed)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            if encoder == "patch":
                self.image = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))
            else:
                self.image = nn.Sequential(
                    nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                    nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(64, 32, 1))
            self.speech = nn.Sequential(nn.Conv1d(40, 64, 9, stride=3, padding=4), nn.ReLU(),
                                        nn.Conv1d(64, 32, 9, stride=3, padding=4))
            self.head_image, self.head_speech = nn.Linear(32, 64), nn.Linear(32, 64)

        def image_units(self, x):  # (B, 32, 48) -> (B, 24, 32)
            B = x.shape[0]
            if encoder == "patch":
                p = x.reshape(B, 4, 8, 6, 8).permute(0, 1, 3, 2, 4).reshape(B, 24, 64)
                return self.image(p)
            return self.image(x[:, None]).flatten(2).transpose(1, 2)

        def forward(self, img, sp, sp_mask):
            hi = nn.functional.normalize(self.image_units(img), dim=-1)
            hs = nn.functional.normalize(self.speech(sp.transpose(1, 2)).transpose(1, 2), dim=-1)
            hs = hs[:, :sp_mask.shape[1]] * sp_mask[..., None]
            ri = nn.functional.normalize(self.head_image(hi.mean(1)), dim=-1)
            rs = nn.functional.normalize(self.head_speech(hs.sum(1) / sp_mask.sum(1, keepdim=True)), dim=-1)
            return ri, rs

    return Model()


def tensors(torch, data):
    m = unit_mask(data["speech_mask"])
    return (torch.from_numpy(data["images"]), torch.from_numpy(data["speech"]),
            torch.from_numpy(m.astype(np.float32)))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--encoder", choices=("patch", "cnn"), default="cnn")
    p.add_argument("--world", choices=("hard", "hard_on_grid"), default="hard")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=2000, help="training scenes (the study's: 2000)")
    args = p.parse_args()
    import torch
    torch.set_num_threads(1)
    train = world_scenes("train", args.n_train, args.seed, world=args.world)
    val = world_scenes("val", 500, 0, world=args.world)
    model = build(torch, args.encoder, args.seed)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    img, sp, spm = tensors(torch, train)
    vimg, vsp, vspm = tensors(torch, val)
    rng = np.random.default_rng(args.seed)
    t0, line = time.perf_counter(), []
    for epoch in range(1, args.epochs + 1):
        perm = torch.from_numpy(rng.permutation(len(img)))
        for start in range(0, len(img) - 63, 64):
            b = perm[start:start + 64]
            ri, rs = model(img[b], sp[b], spm[b])
            S = ri @ rs.T / 0.1
            target = torch.arange(len(b))
            loss = 0.5 * (torch.nn.functional.cross_entropy(S, target) + torch.nn.functional.cross_entropy(S.T, target))
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % 5 == 0:
            with torch.no_grad():
                ri, rs = model(vimg, vsp, vspm)
            ranks = claims.set_retrieval_ranks((ri @ rs.T).numpy().astype(np.float64), val["digits"])
            r1 = 0.5 * float(np.mean(ranks[0] == 1) + np.mean(ranks[1] == 1))
            line.append(f"{r1:.3f}")
            print(f"{args.encoder} {args.world} n_train {len(img)} lr {args.lr:g} seed {args.seed}: epoch {epoch}, val set R@1 "
                  f"{r1:.3f}, loss {float(loss):.3f} ({time.perf_counter() - t0:.0f}s)", flush=True)
    print(f"{args.encoder} {args.world} n_train {len(img)} lr {args.lr:g} seed {args.seed}, every 5 epochs: {' '.join(line)}")


if __name__ == "__main__":
    main()
