"""Chunked linear + cross-entropy: the output head's loss without materialising the full logits.

A plain head writes ``N x V`` fp32 logits (4096 x 50304 = 0.8 GB for the 11m preset), soft-maxes
them and back-propagates through them. :func:`linear_cross_entropy` instead walks the ``N`` rows in
chunks: each chunk's logits are computed, turned into the loss and, in place, into the gradient of the
logits (``softmax - one_hot``), which gives the chunk's gradient of the hidden states and adds its share
to the weight's gradient. Forward therefore already holds both gradients; backward only scales them by
the incoming gradient. Same loss and gradients as ``F.cross_entropy(hidden @ weight.T)`` (mean over the
targets that are not ``ignore_index``), softmax and sums in fp32 (matmuls in the autocast dtype under autocast).
"""

from __future__ import annotations

import math

import torch

# fp32 logits of one chunk at most. Chunks split the rows evenly: 11m's 4096 x 50304 logits (0.8 GB)
# become two of 2048 rows. Smaller chunks were slower on CPU (each chunk's matmuls get less efficient).
LOGITS_BUDGET_BYTES = 512 * 2**20


def chunk_rows_for(rows: int, vocab: int) -> int:
    chunks = max(1, math.ceil(rows * vocab * 4 / LOGITS_BUDGET_BYTES))
    return math.ceil(rows / chunks)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, ignore_index: int, chunk_rows: int):
        # Matmuls in the autocast dtype where autocast is on (bf16 on GPU), softmax and sums in fp32.
        device = hidden.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else torch.float32
        valid = targets != ignore_index
        count = valid.sum().clamp(min=1).to(torch.float32)
        needs_h, needs_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        w = weight.to(dtype)
        grad_h = torch.empty(hidden.shape, dtype=dtype, device=hidden.device) if needs_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if needs_w else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        with torch.autocast(device, enabled=False):
            for start in range(0, hidden.shape[0], chunk_rows):
                rows = slice(start, start + chunk_rows)
                h, ok = hidden[rows].to(dtype), valid[rows]
                safe_t = torch.where(ok, targets[rows], 0).unsqueeze(1)
                logits = (h @ w.T).float()  # (n, V), the only full-width buffer
                picked = logits.gather(1, safe_t).squeeze(1)
                peak = logits.amax(dim=1, keepdim=True)
                exp = logits.sub_(peak).exp_()  # in place: one pass of exp over the chunk
                norm = exp.sum(dim=1, keepdim=True)
                lse = (peak + norm.log()).squeeze(1)
                total += ((lse - picked) * ok).sum()
                if not (needs_h or needs_w):
                    continue
                # exp -> (softmax - one_hot) / count in place; ignored rows become zero
                scale = (ok.float() / count).unsqueeze(1)
                grad = exp.mul_(scale / norm)
                grad.scatter_add_(1, safe_t, -scale)
                grad = grad.to(dtype)
                if needs_h:
                    torch.mm(grad, w, out=grad_h[rows])
                if needs_w:
                    if dtype == torch.float32:
                        grad_w.addmm_(grad.T, h)
                    else:
                        grad_w += (grad.T @ h).float()
        ctx.save_for_backward(grad_h, grad_w)
        ctx.dtypes = hidden.dtype, weight.dtype
        return total / count

    @staticmethod
    def backward(ctx, grad_loss):
        grad_h, grad_w = ctx.saved_tensors
        h_dtype, w_dtype = ctx.dtypes
        out_h = (grad_h * grad_loss).to(h_dtype) if grad_h is not None else None
        out_w = (grad_w * grad_loss).to(w_dtype) if grad_w is not None else None
        return out_h, out_w, None, None, None


@torch.compiler.disable  # a hand-written chunk loop: compiling it would unroll the chunks for nothing
def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         ignore_index: int = -100, chunk_rows: int | None = None) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T`` against ``targets``, chunk by chunk.

    ``hidden`` is (..., d), ``weight`` (V, d), ``targets`` (...) with ``ignore_index`` for rows that
    do not count. ``chunk_rows`` defaults to even chunks within ``LOGITS_BUDGET_BYTES``.
    """
    hidden = hidden.reshape(-1, hidden.shape[-1])
    rows = chunk_rows or chunk_rows_for(hidden.shape[0], weight.shape[0])
    return _LinearCrossEntropy.apply(hidden, weight, targets.reshape(-1), ignore_index, rows)
