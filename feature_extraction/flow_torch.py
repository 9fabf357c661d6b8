"""TV-L1 optical flow in torch, batched over frame pairs: the GPU path of ``flow_method="tvl1_torch"``.

The same scheme as OpenCV's ``DualTVL1OpticalFlow`` (Zach, Pock and Bischof's duality-based TV-L1, as in
opencv_contrib's ``optflow/src/tvl1flow.cpp``) with its default parameters: a 5-level pyramid (scale step
0.8, bilinear, no smoothing), 5 warps per level (bicubic warping with coordinates on OpenCV's 1/32 pixel
grid, zero outside the image), up to 10 outer iterations, each starting with a 5 x 5 median filter of the
flow, of up to 30 inner iterations, stopping once the summed squared update of the flow is at most
``epsilon^2 * pixels`` (per pair: the pairs of a batch stop independently). Written from the published
algorithm and OpenCV's documented behaviour; float sums in another order can stop a pair one iteration
earlier or later, so the result is close to, not equal to, OpenCV's (docs/benchmarks.md, "Flow features").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

TAB = 32    # OpenCV's remap interpolates at 1/32 pixel steps (INTER_TAB_SIZE)


def _sample(x: torch.Tensor, gx: torch.Tensor, gy: torch.Tensor, mode: str, padding: str) -> torch.Tensor:
    """(B, 1, H, W) sampled at pixel coordinates gx, gy (B, h, w) -> (B, 1, h, w)."""
    h, w = x.shape[-2:]
    grid = torch.stack([(2 * gx + 1) / w - 1, (2 * gy + 1) / h - 1], -1)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=False)


def _resize(x: torch.Tensor, size: tuple[int, int], step: tuple[float, float]) -> torch.Tensor:
    """cv2.resize INTER_LINEAR of (B, 1, H, W) to ``size`` with source pixels per target pixel ``step``
    (y, x): sample at (d + 0.5) * step - 0.5, edges replicated."""
    h, w = size
    ys = (torch.arange(h, device=x.device, dtype=x.dtype) + 0.5) * step[0] - 0.5
    xs = (torch.arange(w, device=x.device, dtype=x.dtype) + 0.5) * step[1] - 0.5
    gy, gx = torch.meshgrid(ys.clamp(min=0), xs.clamp(min=0), indexing="ij")
    b = x.shape[0]
    return _sample(x, gx.expand(b, h, w), gy.expand(b, h, w), "bilinear", "border")


def _centred_gradient(x):
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return 0.5 * (p[..., 1:-1, 2:] - p[..., 1:-1, :-2]), 0.5 * (p[..., 2:, 1:-1] - p[..., :-2, 1:-1])


def _forward_gradient(u):
    dx = F.pad(u[..., :, 1:] - u[..., :, :-1], (0, 1, 0, 0))
    dy = F.pad(u[..., 1:, :] - u[..., :-1, :], (0, 0, 0, 1))
    return dx, dy


def _divergence(p1, p2):
    return (p1 - F.pad(p1[..., :, :-1], (1, 0, 0, 0))) + (p2 - F.pad(p2[..., :-1, :], (0, 0, 1, 0)))


def _median(u, k: int):
    b, c, h, w = u.shape
    p = F.pad(u, (k // 2,) * 4, mode="replicate")
    return F.unfold(p, k).view(b, k * k, h, w).median(dim=1, keepdim=True).values


def _one_scale(i0, i1, u1, u2, tau, lam, theta, warps, epsilon, inner, outer, median):
    b, _, h, w = i0.shape
    eps_scaled = epsilon * epsilon * h * w
    i1x, i1y = _centred_gradient(i1)
    ys, xs = torch.meshgrid(torch.arange(h, device=i0.device, dtype=i0.dtype),
                            torch.arange(w, device=i0.device, dtype=i0.dtype), indexing="ij")
    p11, p12, p21, p22 = (torch.zeros_like(u1) for _ in range(4))
    l_t, taut = lam * theta, tau / theta
    for _ in range(warps):
        gx = torch.round((xs + u1[:, 0]) * TAB) / TAB
        gy = torch.round((ys + u2[:, 0]) * TAB) / TAB
        i1w, i1wx, i1wy = (_sample(t, gx, gy, "bicubic", "zeros") for t in (i1, i1x, i1y))
        grad = i1wx * i1wx + i1wy * i1wy
        rho_c = i1w - i1wx * u1 - i1wy * u2 - i0
        active = torch.ones(b, dtype=torch.bool, device=i0.device)
        for _ in range(outer):
            if median > 1:
                m = active.view(b, 1, 1, 1)
                u1, u2 = torch.where(m, _median(u1, median), u1), torch.where(m, _median(u2, median), u2)
            for _ in range(inner):
                m = active.view(b, 1, 1, 1)
                rho = rho_c + (i1wx * u1 + i1wy * u2)
                fi = torch.where(grad > torch.finfo(grad.dtype).eps, -rho / grad.clamp(min=1e-30),
                                 torch.zeros_like(rho))
                coef = torch.where(rho < -l_t * grad, torch.full_like(rho, l_t),
                                   torch.where(rho > l_t * grad, torch.full_like(rho, -l_t), fi))
                v1, v2 = u1 + coef * i1wx, u2 + coef * i1wy
                n1 = v1 + theta * _divergence(p11, p12)
                n2 = v2 + theta * _divergence(p21, p22)
                error = ((n1 - u1) ** 2 + (n2 - u2) ** 2).sum(dim=(1, 2, 3))
                u1, u2 = torch.where(m, n1, u1), torch.where(m, n2, u2)
                u1x, u1y = _forward_gradient(u1)
                u2x, u2y = _forward_gradient(u2)
                ng1, ng2 = 1 + taut * torch.hypot(u1x, u1y), 1 + taut * torch.hypot(u2x, u2y)
                p11 = torch.where(m, (p11 + taut * u1x) / ng1, p11)
                p12 = torch.where(m, (p12 + taut * u1y) / ng1, p12)
                p21 = torch.where(m, (p21 + taut * u2x) / ng2, p21)
                p22 = torch.where(m, (p22 + taut * u2y) / ng2, p22)
                active = active & (error > eps_scaled)
                if not bool(active.any()):
                    break
            if not bool(active.any()):
                break
    return u1, u2


@torch.inference_mode()
def tvl1_flow(i0: torch.Tensor, i1: torch.Tensor, tau: float = 0.25, lam: float = 0.15, theta: float = 0.3,
              nscales: int = 5, warps: int = 5, epsilon: float = 0.01, inner: int = 30, outer: int = 10,
              scale_step: float = 0.8, median: int = 5) -> torch.Tensor:
    """(B, H, W) grey frames (0..255, any dtype, any device) -> (B, H, W, 2) float32 flow from i0 to i1
    in pixels (x, y); parameters and defaults as OpenCV's DualTVL1OpticalFlow (gamma 0, no initial flow)."""
    i0s = [i0.float()[:, None]]
    i1s = [i1.float()[:, None]]
    for _ in range(1, nscales):
        h, w = i0s[-1].shape[-2:]
        size = (int(round(h * scale_step)), int(round(w * scale_step)))
        if min(size) < 16:
            break
        step = (1 / scale_step, 1 / scale_step)
        i0s.append(_resize(i0s[-1], size, step))
        i1s.append(_resize(i1s[-1], size, step))
    u1 = u2 = torch.zeros_like(i0s[-1])
    for s in range(len(i0s) - 1, -1, -1):
        u1, u2 = _one_scale(i0s[s], i1s[s], u1, u2, tau, lam, theta, warps, epsilon, inner, outer, median)
        if s:
            size = i0s[s - 1].shape[-2:]
            step = (u1.shape[-2] / size[0], u1.shape[-1] / size[1])
            u1 = _resize(u1, size, step) * (1 / scale_step)
            u2 = _resize(u2, size, step) * (1 / scale_step)
    return torch.cat([u1, u2], 1).permute(0, 2, 3, 1).contiguous()
