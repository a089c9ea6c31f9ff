"""Reference values from PyTorch for regstudy's numerical tests (tests/pytorch_reference.rs).

Run once, by hand, whenever the fixtures must change (CI never runs it, and needs no PyTorch):

    python3 -m venv .venv-peer && .venv-peer/bin/pip install torch==2.13.0 numpy safetensors
    .venv-peer/bin/python tools/make_fixtures.py tests/fixtures

Writes three safetensors files. Every tensor is float32 in PyTorch's layout (images NCHW,
convolution kernels [out, in, kh, kw]); labels are stored as float32 too. Keys:

    input, labels (simple-cnn) or grad_output (block, batch norm: the loss is sum(grad_output * y))
    init.<state_dict key>       parameters and buffers before any step
    output                      forward output (training mode) at init
    loss                        cross-entropy at init (simple-cnn)
    grad.<parameter>            gradients at init; grad.input where the input needs one
    <opt>.<state_dict key>      parameters and buffers after 3 steps on the same batch, for
                                opt in adam (lr 1e-3), sgd (lr 0.05, momentum 0.9, nesterov,
                                weight_decay 5e-4), and, for the block, adamw (lr 1e-3,
                                weight_decay 0.1), adam_wd (Adam lr 1e-3, weight_decay 0.1) and
                                sgd_damp (lr 0.05, momentum 0.9, dampening 0.3, not Nesterov)
    eval_output                 (batch norm) evaluation-mode output after the 3 sgd steps
    eval_grad.input             (batch norm) evaluation-mode input gradient after those steps

pooling.safetensors holds, for one input: <p>.output and <p>.grad.input for <p> in max3s2
(max-pool, kernel 3, stride 2: overlapping windows), max3s2p1 (the same with padding 1, as in
ResNet's ImageNet stem) and avg2 (average pool, kernel 2), each with its own <p>.grad_output.
"""
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OPTIMIZERS = {
    "adam": lambda p: torch.optim.Adam(p, lr=1e-3),
    "sgd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.1),
    "adam_wd": lambda p: torch.optim.Adam(p, lr=1e-3, weight_decay=0.1),
    "sgd_damp": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.3),
}


class SimpleCNN(nn.Module):  # as in ../shared/bench/pytorch_peer.py
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 8 * 8, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class BasicBlock(nn.Module):  # torchvision's names: conv1, bn1, conv2, bn2, downsample
    def __init__(self, i, o, s):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, s, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(o)
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(o)
        self.downsample = nn.Sequential(nn.Conv2d(i, o, 1, s, bias=False), nn.BatchNorm2d(o))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.downsample(x))


class Wrap(nn.Module):  # puts a module under a name, so keys read "<name>.<key>"
    def __init__(self, name, module):
        super().__init__()
        self.add_module(name, module)
        self.inner = [module]

    def forward(self, x):
        return self.inner[0](x)


def state(model):
    return {k: v.detach().clone().float() for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def record(model, loss_of, x, out, optimizers, input_grad):
    """Fills `out` with init, output, grads, and each optimizer's weights after 3 steps."""
    init = {k: v.clone() for k, v in model.state_dict().items()}
    out.update({f"init.{k}": v for k, v in state(model).items()})
    x = x.clone().requires_grad_(input_grad)
    y = model(x)
    loss = loss_of(y)
    loss.backward()
    out["output"] = y.detach().clone()
    out["loss"] = loss.detach().reshape(1).clone()
    out.update({f"grad.{k}": p.grad.detach().clone() for k, p in model.named_parameters()})
    if input_grad:
        out["grad.input"] = x.grad.detach().clone()
    for name in optimizers:
        model.load_state_dict(init)
        opt = OPTIMIZERS[name](model.parameters())
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            loss_of(model(x.detach())).backward()
            opt.step()
        out.update({f"{name}.{k}": v for k, v in state(model).items()})


def simple_cnn(g):
    torch.manual_seed(0)
    model = SimpleCNN().train()
    x = torch.rand(8, 3, 32, 32, generator=g)
    labels = torch.randint(0, 10, (8,), generator=g)
    out = {"input": x, "labels": labels.float()}
    record(model, lambda y: F.cross_entropy(y, labels), x, out, ["adam", "sgd"], False)
    return out


def basic_block(g):
    torch.manual_seed(1)
    model = Wrap("block", BasicBlock(4, 8, 2)).train()
    x = torch.randn(2, 4, 6, 6, generator=g)
    r = torch.randn(2, 8, 3, 3, generator=g)
    out = {"input": x, "grad_output": r}
    record(model, lambda y: (y * r).sum(), x, out, ["adam", "sgd", "adamw", "adam_wd", "sgd_damp"],
           True)
    return out


def batch_norm(g):
    torch.manual_seed(2)
    bn = nn.BatchNorm2d(5)
    with torch.no_grad():  # a non-trivial affine transform
        bn.weight.copy_(torch.rand(5, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(5, generator=g))
    model = Wrap("bn", bn).train()
    x = 3.0 * torch.randn(4, 5, 3, 3, generator=g) + 1.0
    r = torch.randn(4, 5, 3, 3, generator=g)
    out = {"input": x, "grad_output": r}
    record(model, lambda y: (y * r).sum(), x, out, ["adam", "sgd"], True)
    model.eval()
    xe = x.clone().requires_grad_(True)
    y = model(xe)
    (y * r).sum().backward()
    out["eval_output"] = y.detach().clone()
    out["eval_grad.input"] = xe.grad.detach().clone()
    return out


def pooling(g):
    x = torch.randn(2, 3, 7, 7, generator=g)
    out = {"input": x}
    for name, pool in [("max3s2", lambda t: F.max_pool2d(t, 3, 2)),
                       ("max3s2p1", lambda t: F.max_pool2d(t, 3, 2, padding=1)),
                       ("avg2", lambda t: F.avg_pool2d(t, 2))]:
        xi = x.clone().requires_grad_(True)
        y = pool(xi)
        r = torch.randn(y.shape, generator=g)
        (y * r).sum().backward()
        out[f"{name}.output"] = y.detach().clone()
        out[f"{name}.grad_output"] = r
        out[f"{name}.grad.input"] = xi.grad.detach().clone()
    return out


def main():
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures")
    folder.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    meta = {"torch": torch.__version__, "script": "tools/make_fixtures.py"}
    for name, make in [("simple_cnn", simple_cnn), ("basic_block", basic_block),
                       ("batch_norm", batch_norm), ("pooling", pooling)]:
        tensors = {k: v.contiguous() for k, v in make(torch.Generator().manual_seed(42)).items()}
        save_file(tensors, folder / f"{name}.safetensors", metadata=meta)
        print(name, len(tensors), "tensors")


if __name__ == "__main__":
    main()
