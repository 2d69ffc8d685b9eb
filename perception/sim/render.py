"""Camera rendering: one ray per pixel against the ground, the sky and the part boxes (a z-buffer).

Per pixel, in a numba kernel parallel over image rows: the ray of the pinhole camera meets the
ground (textured by road coordinates: asphalt, paint, sidewalk tiles, kerb, grass) or the sky
(gradient and sun glow); then every part whose projected bounding rectangle covers the pixel is
intersected, the nearest wins. Parts are shaded by their face normal against the sun, with the
patterns of their material (cabin glass, window bands, facades, chevrons, foliage). Haze blends
far surfaces into the horizon colour; sensor noise and vignetting come last.

Ray casting instead of triangle rasterisation: a part that crosses the image plane needs no
clipping, and the same ``ray_box`` serves the LiDAR, so an object's pixels and points come from
the same geometry.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from perception.sim.raycast import FAST, hash_gauss4, hash_uniform, slab_test
from perception.sim.road import ASPHALT, KERB, SIDEWALK, WHITE_PAINT, YELLOW_PAINT, road_sd, surface_at
from perception.sim.shapes import (
    C_ALT,
    C_COS,
    C_CX,
    C_CY,
    C_CZ,
    C_HX,
    C_HY,
    C_HZ,
    C_OBJECT,
    C_PATTERN,
    C_SIDE,
    C_SIN,
    C_TOP,
    PATTERN_CHEVRON,
    PATTERN_FACADE,
    PATTERN_FOLIAGE,
    PATTERN_GLASS_SIDES,
    PATTERN_WINDOW_BAND,
)

__all__ = ["background", "local_frames", "part_screen_boxes", "render_image", "tile_lists", "tile_size"]


def tile_size(width: int) -> int:
    """Side of the square tiles (pixels) that list the parts touching them: ~40 tiles across, so
    a small image does not test a whole street's parts at every pixel."""
    return int(min(32, max(8, round(width / 40))))


@nb.njit(cache=True, nogil=True)
def part_screen_boxes(parts: np.ndarray, cam_R: np.ndarray, cam_t: np.ndarray, fx: float, fy: float, cx: float, cy: float,
                      width: int, height: int, max_dist: float) -> np.ndarray:
    """(P, 4) int64 u0 u1 v0 v1 pixel rectangle of each part; u0 > u1 when the part is not seen.

    cam_R, cam_t: world_T_cam rotation (3, 3) and translation (3,). A part that reaches behind
    the camera is clipped at the near plane: its box edges that cross it add their crossing points,
    so a parked car beside the camera covers its true screen area, not the whole image.
    """
    near = 0.05
    P = parts.shape[0]
    out = np.empty((P, 4), np.int64)
    xc = np.empty(8)
    yc = np.empty(8)
    zc = np.empty(8)
    for j in range(P):
        out[j, 0], out[j, 1], out[j, 2], out[j, 3] = 1, 0, 1, 0
        dxw, dyw, dzw = parts[j, C_CX] - cam_t[0], parts[j, C_CY] - cam_t[1], parts[j, C_CZ] - cam_t[2]
        rad = np.sqrt(parts[j, C_HX] ** 2 + parts[j, C_HY] ** 2 + parts[j, C_HZ] ** 2)
        if np.sqrt(dxw * dxw + dyw * dyw + dzw * dzw) - rad > max_dist:
            continue
        c, s = parts[j, C_COS], parts[j, C_SIN]
        n_front = 0
        for k in range(8):
            lx = parts[j, C_HX] * (1.0 if k & 1 else -1.0)
            ly = parts[j, C_HY] * (1.0 if k & 2 else -1.0)
            lz = parts[j, C_HZ] * (1.0 if k & 4 else -1.0)
            wx = dxw + c * lx - s * ly
            wy = dyw + s * lx + c * ly
            wz = dzw + lz
            # camera coordinates: R^T (p - t)
            xc[k] = cam_R[0, 0] * wx + cam_R[1, 0] * wy + cam_R[2, 0] * wz
            yc[k] = cam_R[0, 1] * wx + cam_R[1, 1] * wy + cam_R[2, 1] * wz
            zc[k] = cam_R[0, 2] * wx + cam_R[1, 2] * wy + cam_R[2, 2] * wz
            if zc[k] >= near:
                n_front += 1
        if n_front == 0:
            continue
        umin, umax, vmin, vmax = 1e30, -1e30, 1e30, -1e30
        for k in range(8):
            if zc[k] >= near:
                u, v = fx * xc[k] / zc[k] + cx, fy * yc[k] / zc[k] + cy
                umin, umax, vmin, vmax = min(umin, u), max(umax, u), min(vmin, v), max(vmax, v)
            for bit in (1, 2, 4):  # the three edges from corner k to a corner differing in one bit
                m = k ^ bit
                if m < k or (zc[k] >= near) == (zc[m] >= near):
                    continue
                f = (near - zc[k]) / (zc[m] - zc[k])
                xi, yi = xc[k] + f * (xc[m] - xc[k]), yc[k] + f * (yc[m] - yc[k])
                u, v = fx * xi / near + cx, fy * yi / near + cy
                umin, umax, vmin, vmax = min(umin, u), max(umax, u), min(vmin, v), max(vmax, v)
        umin, umax = max(umin, -2.0), min(umax, width + 2.0)
        vmin, vmax = max(vmin, -2.0), min(vmax, height + 2.0)
        u0, u1 = max(int(np.floor(umin)) - 1, 0), min(int(np.ceil(umax)) + 1, width - 1)
        v0, v1 = max(int(np.floor(vmin)) - 1, 0), min(int(np.ceil(vmax)) + 1, height - 1)
        if u0 <= u1 and v0 <= v1:
            out[j, 0], out[j, 1], out[j, 2], out[j, 3] = u0, u1, v0, v1
    return out


@nb.njit(cache=True, nogil=True)
def tile_lists(boxes: np.ndarray, near: np.ndarray, width: int, height: int, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR lists of the parts touching each ``tile`` x ``tile`` tile (row-major tiles): ptr (T+1,), idx.

    Each list runs front to back by ``near`` (the part's least possible distance from the camera),
    so a pixel stops testing once its nearest hit is closer than the next part can be.
    """
    tx, ty = (width + tile - 1) // tile, (height + tile - 1) // tile
    count = np.zeros(tx * ty + 1, np.int64)
    order = np.argsort(near)
    for j in order:
        if boxes[j, 0] > boxes[j, 1]:
            continue
        for a in range(boxes[j, 2] // tile, boxes[j, 3] // tile + 1):
            for b in range(boxes[j, 0] // tile, boxes[j, 1] // tile + 1):
                count[a * tx + b + 1] += 1
    ptr = np.cumsum(count)
    fill = ptr[:-1].copy()
    idx = np.empty(ptr[-1], np.int64)
    for j in order:
        if boxes[j, 0] > boxes[j, 1]:
            continue
        for a in range(boxes[j, 2] // tile, boxes[j, 3] // tile + 1):
            for b in range(boxes[j, 0] // tile, boxes[j, 1] // tile + 1):
                idx[fill[a * tx + b]] = j
                fill[a * tx + b] += 1
    return ptr, idx


@nb.njit(cache=True)
def _value_noise(key: np.uint64, x: float, y: float, cell: float) -> float:
    """Smooth noise in [0, 1): bilinear between hashed lattice values ``cell`` metres apart."""
    gx, gy = x / cell, y / cell
    ix, iy = np.floor(gx), np.floor(gy)
    fx, fy = gx - ix, gy - iy
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    i0 = np.int64(ix) * 73856093
    j0 = np.int64(iy) * 19349663
    a = hash_uniform(key, i0 ^ j0)
    b = hash_uniform(key, (i0 + 73856093) ^ j0)
    c = hash_uniform(key, i0 ^ (j0 + 19349663))
    d = hash_uniform(key, (i0 + 73856093) ^ (j0 + 19349663))
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


@nb.njit(cache=True)
def _ground_color(key: np.uint64, surf: int, s: float, d: float, x: float, y: float, dist: float) -> tuple[float, float, float]:
    coarse = _value_noise(key, x, y, 2.5)
    tex = 0.85 + 0.2 * coarse  # fine grain comes from the sensor noise: in world units it would alias
    if surf == ASPHALT:
        g = 0.27 * tex
        return g, g, g * 1.02
    if surf == WHITE_PAINT:
        g = 0.86 * (0.9 + 0.1 * coarse)
        return g, g, g
    if surf == YELLOW_PAINT:
        return 0.86 * tex, 0.68 * tex, 0.14 * tex
    if surf == SIDEWALK:
        joint = (s % 1.5) < 0.04 or ((abs(d) + 0.02) % 1.5) < 0.04
        g = (0.50 if joint else 0.60) * tex
        return g, g * 0.98, g * 0.95
    if surf == KERB:
        g = 0.68 * tex
        return g, g, g
    # GRASS and anything beyond
    return 0.22 * tex, 0.36 * tex, 0.13 * tex


@nb.njit(cache=True)
def _part_color(parts: np.ndarray, j: int, face: int, lx: float, ly: float, lz: float, wx: float, wy: float, wz: float,
                key: np.uint64) -> tuple[float, float, float, float]:
    """Base colour of part ``j`` at local hit point (lx, ly, lz) on ``face``; 4th value: glass (0/1)."""
    a = abs(face) - 1
    pat = int(parts[j, C_PATTERN])
    top = a == 2 and face > 0
    r, g, b = parts[j, C_SIDE], parts[j, C_SIDE + 1], parts[j, C_SIDE + 2]
    if top:
        r, g, b = parts[j, C_TOP], parts[j, C_TOP + 1], parts[j, C_TOP + 2]
    ar, ag, ab = parts[j, C_ALT], parts[j, C_ALT + 1], parts[j, C_ALT + 2]
    hz = parts[j, C_HZ]
    zrel = (lz + hz) / (2.0 * hz)
    u = ly if a == 0 else lx  # horizontal coordinate along a side face
    if pat == PATTERN_GLASS_SIDES and not top and a != 2:
        if zrel > 0.12:
            return ar, ag, ab, 1.0
    elif pat == PATTERN_WINDOW_BAND and a != 2:
        if 0.5 < zrel < 0.86:
            return ar, ag, ab, 1.0
    elif pat == PATTERN_CHEVRON and a != 2:
        if int(np.floor((u + lz) / 0.3)) % 2 == 0:
            return ar, ag, ab, 0.0
    elif pat == PATTERN_FACADE and a != 2:
        zz = lz + hz
        hu = parts[j, C_HY] if a == 0 else parts[j, C_HX]
        uu = u + hu
        if zz < 3.2:  # shop windows on the ground floor
            if 0.5 < zz < 2.7 and uu - 6.0 * np.floor(uu * (1.0 / 6.0)) > 1.0:
                return ar, ag, ab, 1.0
        elif zz < 2 * hz - 0.6:
            fz = zz - 3.2 * np.floor(zz * (1.0 / 3.2))  # height within the storey
            fu = uu - 3.0 * np.floor(uu * (1.0 / 3.0))  # position within the window bay
            if 1.0 < fz < 2.5 and 0.8 < fu < 2.2:
                return ar, ag, ab, 1.0
    elif pat == PATTERN_FOLIAGE:
        n = 0.65 + 0.7 * _value_noise(key + np.uint64(99), wx + 0.7 * wz, wy - 0.4 * wz, 0.35)
        return r * n, g * n, b * n, 0.0
    return r, g, b, 0.0


@nb.njit(cache=True)
def _pixel_ray(cam_R: np.ndarray, fx: float, fy: float, cx: float, cy: float, u: float, v: float) -> tuple[float, float, float]:
    rx, ry = (u - cx) / fx, (v - cy) / fy
    norm = np.sqrt(rx * rx + ry * ry + 1.0)
    rx, ry, rz = rx / norm, ry / norm, 1.0 / norm
    return (cam_R[0, 0] * rx + cam_R[0, 1] * ry + cam_R[0, 2] * rz,
            cam_R[1, 0] * rx + cam_R[1, 1] * ry + cam_R[1, 2] * rz,
            cam_R[2, 0] * rx + cam_R[2, 1] * ry + cam_R[2, 2] * rz)


@nb.njit(cache=True, parallel=True, fastmath=FAST, nogil=True)
def background(cam_R: np.ndarray, cam_t: np.ndarray, fx: float, fy: float, cx: float, cy: float, light: np.ndarray,
                fog_m: float, world_key: np.uint64, seg: np.ndarray, grid_seg: np.ndarray, grid_meta: np.ndarray,
                layout: np.ndarray, out: np.ndarray) -> None:
    """Ground and sky colours at half resolution: ``out (H2, W2, 3)`` float32, the centres of 2x2 blocks
    (``cx``, ``cy``, ``fx``, ``fy`` of the full-resolution camera). ``render_image`` takes it
    resized to full resolution (``cv2.resize``, bilinear).

    The ground's road lookup is the costliest per-pixel work and its texture is smooth at this
    scale; paint edges come out one full-resolution pixel soft, as a real lens gives them.
    """
    sunx, suny, sunz = light[0], light[1], light[2]
    zr, zg, zb, hr, hg, hb = light[3], light[4], light[5], light[6], light[7], light[8]
    ambient, strength = light[9], light[10]
    ox, oy, oz = cam_t[0], cam_t[1], cam_t[2]
    ground_shade = ambient + 0.15 + strength * max(sunz, 0.0)
    for i in nb.prange(out.shape[0]):
        for j in range(out.shape[1]):
            dx, dy, dz = _pixel_ray(cam_R, fx, fy, cx, cy, 2.0 * j + 0.5, 2.0 * i + 0.5)
            if dz < -1e-6:
                dist = -oz / dz
                gx, gy = ox + dist * dx, oy + dist * dy
                s_, d_ = road_sd(seg, grid_seg, grid_meta, gx, gy)
                br, bg, bb = _ground_color(world_key, surface_at(layout, s_, d_), s_, d_, gx, gy, dist)
                fog = dist / (dist + fog_m)  # haze: half the contrast gone at fog_m
                out[i, j, 0] = br * ground_shade * (1 - fog) + hr * fog
                out[i, j, 1] = bg * ground_shade * (1 - fog) + hg * fog
                out[i, j, 2] = bb * ground_shade * (1 - fog) + hb * fog
            else:
                t = np.sqrt(min(max(dz, 0.0), 1.0))
                glow = max(0.0, dx * sunx + dy * suny + dz * sunz)
                glow = glow * glow * glow
                glow = glow * glow
                glow = glow * glow
                glow = glow * glow
                glow = glow * glow  # cos^48: a tight halo round the sun
                out[i, j, 0] = hr * (1 - t) + zr * t + 0.5 * glow
                out[i, j, 1] = hg * (1 - t) + zg * t + 0.45 * glow
                out[i, j, 2] = hb * (1 - t) + zb * t + 0.35 * glow


@nb.njit(cache=True, nogil=True)
def local_frames(parts: np.ndarray, cam_t: np.ndarray) -> np.ndarray:
    """(P, 6) per part: the camera centre in the part's frame (3), cos and sin of its yaw, and the
    least distance any of its points can have from the camera (bounding sphere).

    The same for every pixel of a frame, so the per-pixel test only turns the ray direction.
    """
    out = np.empty((parts.shape[0], 6))
    for j in range(parts.shape[0]):
        c, s = parts[j, C_COS], parts[j, C_SIN]
        px, py = cam_t[0] - parts[j, C_CX], cam_t[1] - parts[j, C_CY]
        out[j, 0] = c * px + s * py
        out[j, 1] = -s * px + c * py
        out[j, 2] = cam_t[2] - parts[j, C_CZ]
        out[j, 3], out[j, 4] = c, s
        rad = np.sqrt(parts[j, C_HX] ** 2 + parts[j, C_HY] ** 2 + parts[j, C_HZ] ** 2)
        out[j, 5] = np.sqrt(px * px + py * py + out[j, 2] ** 2) - rad
    return out


@nb.njit(cache=True, parallel=True, fastmath=FAST, nogil=True)
def render_image(parts: np.ndarray, loc: np.ndarray, boxes: np.ndarray, tile: int, tile_ptr: np.ndarray, tile_idx: np.ndarray,
                 cam_R: np.ndarray, cam_t: np.ndarray, fx: float, fy: float, cx: float, cy: float, light: np.ndarray,
                 fog_m: float, noise_sigma: float, key: np.uint64, world_key: np.uint64, bg: np.ndarray, image: np.ndarray,
                 instance: np.ndarray) -> None:
    """Render into ``image: (H, W, 3) uint8`` RGB and ``instance: (H, W) int32`` (body index, -1 none).

    ``loc``/``boxes``/``tile_*``: from ``local_frames``, ``part_screen_boxes`` and ``tile_lists``;
    ``bg: (H, W, 3)`` float32 ground and sky (``background``, upsampled); ``light``:
    Lighting.as_array(); ``key`` seeds this frame's sensor noise, ``world_key`` the textures (the
    same in every frame, so the asphalt does not flicker).
    """
    H, W = image.shape[0], image.shape[1]
    sunx, suny, sunz = light[0], light[1], light[2]
    hr, hg, hb = light[6], light[7], light[8]
    ambient, strength = light[9], light[10]
    tiles_x = (W + tile - 1) // tile
    vig_u = np.empty(W)
    tile_u = np.empty(W, np.int64)  # per column, so that no pixel pays an integer division
    for u in range(W):
        vig_u[u] = 0.35 * 255.0 * ((u - cx) / W) ** 2
        tile_u[u] = u // tile
    longest = 0
    for t in range(tile_ptr.shape[0] - 1):
        longest = max(longest, tile_ptr[t + 1] - tile_ptr[t])
    for v in nb.prange(H):
        vig_v = (1.0 - 0.35 * ((v - cy) / H) ** 2) * 255.0
        tile_row = (v // tile) * tiles_x
        # per tile of this row: the parts whose rectangle spans the row, still front to back
        row_ptr = np.zeros(tiles_x + 1, np.int64)
        row_idx = np.empty(max(longest, 1) * tiles_x, np.int64)
        n = 0
        for tc in range(tiles_x):
            for k in range(tile_ptr[tile_row + tc], tile_ptr[tile_row + tc + 1]):
                j = tile_idx[k]
                if boxes[j, 2] <= v <= boxes[j, 3]:
                    row_idx[n] = j
                    n += 1
            row_ptr[tc + 1] = n
        for u in range(W):
            tl = tile_u[u]
            dx, dy, dz = 0.0, 0.0, 0.0
            best = 1e30
            inst = -1
            hitface, hx, hy, hz = 0, 0.0, 0.0, 0.0
            for k in range(row_ptr[tl], row_ptr[tl + 1]):
                j = row_idx[k]
                if loc[j, 5] > best:
                    break  # front-to-back: no later part can be nearer
                if u < boxes[j, 0] or u > boxes[j, 1]:
                    continue
                if dz == 0.0:
                    dx, dy, dz = _pixel_ray(cam_R, fx, fy, cx, cy, u, v)
                c, s = loc[j, 3], loc[j, 4]
                ldx, ldy = c * dx + s * dy, -s * dx + c * dy
                tmin, tmax, face = slab_test(loc[j, 0], ldx, parts[j, C_HX], -1e30, 1e30, 0, 1)
                tmin, tmax, face = slab_test(loc[j, 1], ldy, parts[j, C_HY], tmin, tmax, face, 2)
                tmin, tmax, face = slab_test(loc[j, 2], dz, parts[j, C_HZ], tmin, tmax, face, 3)
                if tmin <= tmax and 1e-6 < tmin < best:
                    best, inst = tmin, j
                    hitface = face
                    hx, hy, hz = loc[j, 0] + ldx * tmin, loc[j, 1] + ldy * tmin, loc[j, 2] + dz * tmin
            if inst >= 0:
                # parts stand on the ground: a ray that meets one meets it before the ground
                j = inst
                wx, wy, wz = cam_t[0] + best * dx, cam_t[1] + best * dy, cam_t[2] + best * dz
                br, bgc, bb, glass = _part_color(parts, j, hitface, hx, hy, hz, wx, wy, wz, world_key)
                a = abs(hitface) - 1
                sgn = 1.0 if hitface > 0 else -1.0
                c, s = loc[j, 3], loc[j, 4]
                if a == 0:
                    nx, ny, nz = sgn * c, sgn * s, 0.0
                elif a == 1:
                    nx, ny, nz = -sgn * s, sgn * c, 0.0
                else:
                    nx, ny, nz = 0.0, 0.0, sgn
                lam = max(0.0, nx * sunx + ny * suny + nz * sunz)
                shade = ambient + 0.15 * (0.5 + 0.5 * nz) + strength * lam  # faces turned up see more sky
                cr, cg, cb = br * shade, bgc * shade, bb * shade
                if glass > 0.5:  # glass mirrors a little of the sky
                    cr, cg, cb = cr + 0.25 * hr, cg + 0.25 * hg, cb + 0.25 * hb
                fog = best / (best + fog_m)
                cr, cg, cb = cr * (1 - fog) + hr * fog, cg * (1 - fog) + hg * fog, cb * (1 - fog) + hb * fog
                instance[v, u] = int(parts[j, C_OBJECT])
            else:
                cr, cg, cb = bg[v, u, 0], bg[v, u, 1], bg[v, u, 2]
                instance[v, u] = -1
            # vignetting (separable: a row term and a column term) and sensor noise
            vig = vig_v - vig_u[u]
            nse = noise_sigma * hash_gauss4(key, v * W + u)  # luminance noise, shared by the three channels
            image[v, u, 0] = min(max(cr * vig + nse, 0.0), 255.0)
            image[v, u, 1] = min(max(cg * vig + nse, 0.0), 255.0)
            image[v, u, 2] = min(max(cb * vig + nse, 0.0), 255.0)
