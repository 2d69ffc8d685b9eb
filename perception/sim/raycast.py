"""Ray casting against the flat ground and the moving part boxes, and the LiDAR sweep kernel.

Every LiDAR point has its own firing time: the kernel interpolates the ego pose at that time from
the dense trajectory, turns the head to the azimuth it has then, and moves every part to where it
is then (constant velocity and yaw rate from the reference time: the parts' state at the sweep
stamp). So a moving ego skews the sweep, and a passing car is smeared as a real one is.

Randomness (range noise, dropouts) comes from a counter-based hash of (key, point index), not from
a stateful generator: the kernel runs in parallel over columns and still gives the same points for
a seed whatever the thread count.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from perception.sim.road import road_sd, surface_at
from perception.sim.shapes import C_COS, C_CX, C_CY, C_CZ, C_HX, C_HY, C_HZ, C_OMEGA, C_REFLECT, C_SIN, C_VX, C_VY

__all__ = ["FAST", "GROUND_REFLECT", "cast_rays", "hash_gauss4", "hash_uniform", "slab_test", "lidar_candidates", "lidar_sweep", "ray_box"]

# LiDAR reflectivity of the ground surfaces (road.SURFACE_NAMES order): paint is retro-reflective.
# A global array: numba freezes it into the compiled kernels as a constant.
GROUND_REFLECT = np.array([9.0, 95.0, 75.0, 26.0, 32.0, 14.0])

# fast-math without the no-NaN/no-inf assumptions (the kernels compare against inf sentinels):
# contraction into FMAs, reciprocal and reassociation; deterministic for a build on a machine.
FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}

NO_RETURN = -2
GROUND = -1


@nb.njit(cache=True)
def _mix64(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@nb.njit(cache=True)
def hash_uniform(key: np.uint64, index: np.int64) -> float:
    """Uniform in [0, 1) from (key, index): splitmix64 finaliser of their combination."""
    z = _mix64(key + np.uint64(index) * np.uint64(0x9E3779B97F4A7C15))
    return float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@nb.njit(cache=True)
def hash_gauss4(key: np.uint64, index: np.int64) -> float:
    """Near-normal (unit variance) from one hash: the sum of its four 16-bit quarters (Irwin-Hall).

    Tails end at +-3.46; for image noise that is what a sensor gives anyway, at a tenth of the cost
    of a Box-Muller transform's logarithm and cosine.
    """
    z = _mix64(key + np.uint64(index) * np.uint64(0x9E3779B97F4A7C15))
    m = np.uint64(0xFFFF)
    total = float(z & m) + float((z >> np.uint64(16)) & m) + float((z >> np.uint64(32)) & m) + float(z >> np.uint64(48))
    return (total * (1.0 / 65536.0) - 2.0) * 1.7320508075688772


@nb.njit(cache=True)
def slab_test(lo: float, ld: float, h: float, tmin: float, tmax: float, face: int, axis: int) -> tuple[float, float, int]:
    """One slab of the box test; returns tmin > tmax for a miss."""
    if abs(ld) < 1e-12:
        if abs(lo) > h:
            return 1.0, -1.0, 0
        return tmin, tmax, face
    inv = 1.0 / ld
    t1 = (-h - lo) * inv
    t2 = (h - lo) * inv
    if t1 > t2:
        t1, t2 = t2, t1
    if t1 > tmin:
        tmin = t1
        face = axis if ld < 0 else -axis  # entered through the face whose outward normal opposes the ray
    if t2 < tmax:
        tmax = t2
    return tmin, tmax, face


@nb.njit(cache=True)
def ray_box(parts: np.ndarray, j: int, tau: float, ox: float, oy: float, oz: float, dx: float, dy: float,
            dz: float) -> tuple[float, int, float, float, float]:
    """Entry distance of a unit ray into part ``j`` moved by ``tau`` seconds from its reference state.

    Returns (t, face, lx, ly, lz): t = inf when missed (or when the origin is inside); face = +-1,
    +-2, +-3 for the +-x, +-y, +-z face (outward normal) entered, in the part's frame; l* = the
    local hit point.
    """
    px = ox - (parts[j, C_CX] + parts[j, C_VX] * tau)
    py = oy - (parts[j, C_CY] + parts[j, C_VY] * tau)
    pz = oz - parts[j, C_CZ]
    hx, hy, hz = parts[j, C_HX], parts[j, C_HY], parts[j, C_HZ]
    # bounding-sphere reject first: most candidates of a broad phase are missed by far
    proj = -(px * dx + py * dy + pz * dz)
    rad2 = hx * hx + hy * hy + hz * hz
    if px * px + py * py + pz * pz - proj * proj > rad2:
        return np.inf, 0, 0.0, 0.0, 0.0
    c, s = parts[j, C_COS], parts[j, C_SIN]
    if tau != 0.0:
        # turn by omega * tau (< 0.05 rad within a sweep): second-order small-angle rotation
        a = parts[j, C_OMEGA] * tau
        ca, sa = 1.0 - 0.5 * a * a, a
        c, s = c * ca - s * sa, s * ca + c * sa
    lox, loy = c * px + s * py, -s * px + c * py
    ldx, ldy = c * dx + s * dy, -s * dx + c * dy
    tmin, tmax, face = slab_test(lox, ldx, hx, -1e30, 1e30, 0, 1)
    tmin, tmax, face = slab_test(loy, ldy, hy, tmin, tmax, face, 2)
    tmin, tmax, face = slab_test(pz, dz, hz, tmin, tmax, face, 3)
    if tmin > tmax or tmin <= 1e-6:
        return np.inf, 0, 0.0, 0.0, 0.0
    return tmin, face, lox + ldx * tmin, loy + ldy * tmin, pz + dz * tmin


@nb.njit(cache=True)
def _ego_at(ego: np.ndarray, t0: float, dt: float, t: float) -> tuple[float, float, float]:
    x = (t - t0) / dt
    i = min(max(int(np.floor(x)), 0), ego.shape[0] - 2)
    f = x - i
    return (ego[i, 0] * (1 - f) + ego[i + 1, 0] * f, ego[i, 1] * (1 - f) + ego[i + 1, 1] * f,
            ego[i, 2] * (1 - f) + ego[i + 1, 2] * f)


@nb.njit(cache=True, nogil=True)
def lidar_candidates(parts: np.ndarray, ego: np.ndarray, t0: float, dt: float, mount_t: np.ndarray, mount_yaw: float,
                     t_start: float, period: float, n_cols: int, group: int, cut: float, t_ref: float,
                     max_range: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broad phase: which parts each group of ``group`` columns can hit, as CSR (ptr (G+1,), idx, near).

    Serial: ~3 ms a sweep, and a parallel region here cost more in thread hand-over than it saved.
    A part is a candidate when its bounding circle (grown by its motion over the group) overlaps
    the group's azimuth wedge seen from the LiDAR at the group's mid time. Each group's list runs
    near to far; ``near`` (per entry) is the least distance at which the part can be hit, so a ray
    stops testing once its nearest hit (often the ground) is closer than the next part can be.
    """
    n_groups = (n_cols + group - 1) // group
    ptr = np.zeros(n_groups + 1, np.int64)
    wedge = 2.0 * np.pi * group / n_cols
    P = parts.shape[0]
    near = np.full((n_groups, P), np.inf)
    for g in range(n_groups):
        tm = t_start + (g * group + 0.5 * group) * period / n_cols
        ex, ey, eyaw = _ego_at(ego, t0, dt, tm)
        ce, se = np.cos(eyaw), np.sin(eyaw)
        ox = ex + ce * mount_t[0] - se * mount_t[1]
        oy = ey + se * mount_t[0] + ce * mount_t[1]
        az_mid = cut - 2.0 * np.pi * (tm - t_start) / period + mount_yaw + eyaw
        tau = tm - t_ref
        dur = group * period / n_cols
        for j in range(P):
            px = parts[j, C_CX] + parts[j, C_VX] * tau - ox
            py = parts[j, C_CY] + parts[j, C_VY] * tau - oy
            dist = np.sqrt(px * px + py * py)
            speed = np.sqrt(parts[j, C_VX] ** 2 + parts[j, C_VY] ** 2)
            rb = np.sqrt(parts[j, C_HX] ** 2 + parts[j, C_HY] ** 2) + dur * speed + 0.05
            if dist - rb > max_range:
                continue
            # least 3-D distance over the group (the ego moves < 2 cm meanwhile), never negative
            rz = np.sqrt(rb * rb + parts[j, C_HZ] ** 2)
            lower = max(0.0, np.sqrt(dist * dist + (parts[j, C_CZ] - mount_t[2]) ** 2) - rz - 0.05)
            if dist < rb + 0.5:
                near[g, j] = lower
                continue
            half = np.arcsin(min(1.0, rb / dist))
            diff = (np.arctan2(py, px) - az_mid + np.pi) % (2.0 * np.pi) - np.pi
            if abs(diff) <= half + 0.5 * wedge + 0.02:
                near[g, j] = lower
    count = np.zeros(n_groups, np.int64)
    for g in range(n_groups):
        count[g] = np.sum(near[g] < np.inf)
        ptr[g + 1] = ptr[g] + count[g]
    idx = np.empty(ptr[-1], np.int64)
    near_out = np.empty(ptr[-1])
    for g in range(n_groups):
        order = np.argsort(near[g])[:count[g]]
        for k in range(count[g]):
            idx[ptr[g] + k] = order[k]
            near_out[ptr[g] + k] = near[g, order[k]]
    return ptr, idx, near_out


@nb.njit(cache=True, parallel=True, fastmath=FAST, nogil=True)
def lidar_sweep(parts: np.ndarray, ptr: np.ndarray, idx: np.ndarray, near: np.ndarray, group: int, ego: np.ndarray, t0: float, dt: float,
                ego_R_lidar: np.ndarray, mount_t: np.ndarray, sin_el: np.ndarray, cos_el: np.ndarray, n_cols: int,
                t_start: float, period: float, laser_interval: float, cut: float, t_ref: float, max_range: float,
                min_range: float, range_noise: float, dropout: float, far_dropout: float, key: np.uint64,
                seg: np.ndarray, grid_seg: np.ndarray, grid_meta: np.ndarray, layout: np.ndarray,
                out_xyz: np.ndarray, out_intensity: np.ndarray, out_time: np.ndarray, out_hit: np.ndarray) -> None:
    """Fire every beam of every column; write (n_cols * beams) rows, ``out_hit`` = NO_RETURN where none.

    out_xyz: (N, 3) float32 in the LiDAR frame at the point's own firing time; out_time: (N,) float64
    sim seconds of firing; out_hit: (N,) int64 part index, GROUND, or NO_RETURN.
    """
    n_beams = sin_el.shape[0]
    omega_head = 2.0 * np.pi / period
    # the head turns by this much between two lasers of a column: rotate by it instead of calling cos/sin
    cstep, sstep = np.cos(omega_head * laser_interval), -np.sin(omega_head * laser_interval)
    for c in nb.prange(n_cols):
        g = c // group
        tc = t_start + c * period / n_cols
        az = cut - omega_head * (tc - t_start)
        caz, saz = np.cos(az), np.sin(az)
        # the ego pose is linear in time between two samples of the 1 ms grid: value and slope at tc
        xg = (tc - t0) / dt
        k0 = min(max(int(np.floor(xg)), 0), ego.shape[0] - 2)
        f = xg - k0
        px0 = ego[k0, 0] * (1 - f) + ego[k0 + 1, 0] * f
        py0 = ego[k0, 1] * (1 - f) + ego[k0 + 1, 1] * f
        yaw0 = ego[k0, 2] * (1 - f) + ego[k0 + 1, 2] * f
        vx, vy, wz = (ego[k0 + 1, 0] - ego[k0, 0]) / dt, (ego[k0 + 1, 1] - ego[k0, 1]) / dt, (ego[k0 + 1, 2] - ego[k0, 2]) / dt
        cy0, sy0 = np.cos(yaw0), np.sin(yaw0)
        for b in range(n_beams):
            i = c * n_beams + b
            tb = b * laser_interval
            t = tc + tb
            out_time[i] = t
            if b > 0:
                caz, saz = caz * cstep - saz * sstep, saz * cstep + caz * sstep
            lx, ly, lz = cos_el[b] * caz, cos_el[b] * saz, sin_el[b]
            # beam direction in the ego frame, then the world at the ego pose of this instant
            ex_ = ego_R_lidar[0, 0] * lx + ego_R_lidar[0, 1] * ly + ego_R_lidar[0, 2] * lz
            ey_ = ego_R_lidar[1, 0] * lx + ego_R_lidar[1, 1] * ly + ego_R_lidar[1, 2] * lz
            ez_ = ego_R_lidar[2, 0] * lx + ego_R_lidar[2, 1] * ly + ego_R_lidar[2, 2] * lz
            px, py = px0 + vx * tb, py0 + vy * tb
            da = wz * tb  # < 1e-5 rad within a column: second-order rotation is exact to 1e-16
            ce, se = cy0 * (1 - 0.5 * da * da) - sy0 * da, sy0 * (1 - 0.5 * da * da) + cy0 * da
            dx, dy, dz = ce * ex_ - se * ey_, se * ex_ + ce * ey_, ez_
            ox = px + ce * mount_t[0] - se * mount_t[1]
            oy = py + se * mount_t[0] + ce * mount_t[1]
            oz = mount_t[2]
            best = max_range
            hit = NO_RETURN
            cos_inc = 1.0
            if dz < -1e-9:
                tg = -oz / dz
                if tg < best:
                    best, hit, cos_inc = tg, GROUND, -dz
            tau = t - t_ref
            for k in range(ptr[g], ptr[g + 1]):
                if near[k] > best:
                    break  # near to far: nothing later can be closer
                j = idx[k]
                tn, face, _, _, _ = ray_box(parts, j, tau, ox, oy, oz, dx, dy, dz)
                if tn < best:
                    best, hit = tn, j
                    a = abs(face) - 1
                    if a == 2:
                        cos_inc = abs(dz)
                    else:
                        cj, sj = parts[j, C_COS], parts[j, C_SIN]  # the yaw change within a sweep is negligible here
                        nx, ny = (cj, sj) if a == 0 else (-sj, cj)
                        cos_inc = abs(nx * dx + ny * dy)
            if hit == NO_RETURN or best < min_range:
                out_hit[i] = NO_RETURN
                continue
            if hit == GROUND:
                s, d = road_sd(seg, grid_seg, grid_meta, ox + best * dx, oy + best * dy)
                refl = GROUND_REFLECT[surface_at(layout, s, d)]
            else:
                refl = parts[hit, C_REFLECT]
            rr = best / max_range
            p_drop = dropout + far_dropout * rr * rr * 30.0 / (refl + 30.0)
            if hash_uniform(key, 3 * i) < p_drop:
                out_hit[i] = NO_RETURN
                continue
            r = best + range_noise * hash_gauss4(key, 3 * i + 1)
            out_hit[i] = hit
            out_xyz[i, 0] = r * lx
            out_xyz[i, 1] = r * ly
            out_xyz[i, 2] = r * lz
            inten = refl * (0.35 + 0.65 * cos_inc) * (1.0 + 0.08 * hash_gauss4(key, 3 * i + 2))
            out_intensity[i] = min(max(inten, 0.0), 255.0)


@nb.njit(cache=True, nogil=True)
def cast_rays(parts: np.ndarray, origins: np.ndarray, dirs: np.ndarray, max_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First hit of each ray (origins, dirs: (N, 3), unit dirs) against ground and parts at rest.

    Returns (t (N,), hit (N,) part index / GROUND / NO_RETURN within max_t). Brute force over parts:
    for the few rays of radar occlusion checks.
    """
    n = origins.shape[0]
    t_out = np.full(n, np.inf)
    hit_out = np.full(n, NO_RETURN, np.int64)
    for i in range(n):
        ox, oy, oz = origins[i, 0], origins[i, 1], origins[i, 2]
        dx, dy, dz = dirs[i, 0], dirs[i, 1], dirs[i, 2]
        best, hit = max_t[i], NO_RETURN
        if dz < -1e-9 and -oz / dz < best:
            best, hit = -oz / dz, GROUND
        for j in range(parts.shape[0]):
            # cheap reject by bounding sphere before the slab test
            cx, cy, cz = parts[j, C_CX] - ox, parts[j, C_CY] - oy, parts[j, C_CZ] - oz
            proj = cx * dx + cy * dy + cz * dz
            rad2 = parts[j, C_HX] ** 2 + parts[j, C_HY] ** 2 + parts[j, C_HZ] ** 2
            if proj < -np.sqrt(rad2) or proj - np.sqrt(rad2) > best:
                continue
            if cx * cx + cy * cy + cz * cz - proj * proj > rad2:
                continue
            tn, _, _, _, _ = ray_box(parts, j, 0.0, ox, oy, oz, dx, dy, dz)
            if tn < best:
                best, hit = tn, j
        t_out[i] = best
        hit_out[i] = hit
    return t_out, hit_out
