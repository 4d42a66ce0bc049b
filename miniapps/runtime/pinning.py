"""Where ranks and threads run: node CPU shares, thread placement, binding and its read-back.

Policy (docs/runtime.md):
- The node's allowed CPUs are the union of the affinity masks its ranks started with. If a
  launcher already gave the ranks of a node pairwise disjoint masks (``srun --cpu-bind``,
  ``mpiexec -bind-to``), each rank keeps its mask as its share. Otherwise the CPUs, ordered by
  (package, core, hardware thread), are cut into as many contiguous shares as the node has ranks
  (sizes differ by at most one); with more ranks than CPUs, rank *r* gets CPU ``r mod C``.
- ``compact`` places a rank's threads on neighbouring CPUs (hardware threads of a core, then cores
  of a package); ``scatter`` spreads consecutive threads over packages, then cores, then hardware
  threads. Fewer threads than CPUs: each thread gets a group of CPUs; more: they wrap round.
- A node is oversubscribed when its ranks' threads outnumber its CPUs.

The pure functions here (no MPI, no OpenMP) are what the tests check in detail; :func:`bind` and
:func:`read_back` talk to the OpenMP runtime through ``core.threads``.
"""
import os

from core import threads as _threads

_SYS_CPU = "/sys/devices/system/cpu"


def parse_cpu_list(text):
    """``"0-3,8,10-11"`` -> ``[0, 1, 2, 3, 8, 10, 11]`` (Linux cpulist format)."""
    cpus = []
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if sep:
            cpus.extend(range(int(lo), int(hi) + 1))
        else:
            cpus.append(int(lo))
    return sorted(set(cpus))


def format_cpu_list(cpus):
    """``[0, 1, 2, 3, 8]`` -> ``"0-3,8"``."""
    cpus = sorted(set(cpus))
    parts = []
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        parts.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(parts)


def _read_int(path, default):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return default


def topology(cpus, sysfs=_SYS_CPU):
    """``{cpu: (package, core, hw_thread)}`` from sysfs; a flat topology where sysfs is missing.

    ``hw_thread`` is the CPU's position among its core's siblings (0 for the first).
    """
    topo = {}
    for cpu in cpus:
        base = os.path.join(sysfs, f"cpu{cpu}", "topology")
        package = _read_int(os.path.join(base, "physical_package_id"), 0)
        core = _read_int(os.path.join(base, "core_id"), cpu)
        try:
            with open(os.path.join(base, "thread_siblings_list")) as f:
                siblings = parse_cpu_list(f.read())
        except (OSError, ValueError):
            siblings = [cpu]
        hw_thread = siblings.index(cpu) if cpu in siblings else 0
        topo[cpu] = (package, core, hw_thread)
    return topo


def compact_order(cpus, topo):
    """CPUs ordered so that neighbours share a core, then a package."""
    return sorted(cpus, key=lambda c: (*topo.get(c, (0, c, 0)), c))


def scatter_order(cpus, topo):
    """CPUs ordered so that consecutive entries sit on different packages, then different cores."""
    cpus = list(cpus)
    cores_of_package = {}
    for c in cpus:
        package, core, _ = topo.get(c, (0, c, 0))
        cores_of_package.setdefault(package, set()).add(core)
    core_rank = {p: {core: i for i, core in enumerate(sorted(cores))} for p, cores in cores_of_package.items()}

    def key(c):
        package, core, hw_thread = topo.get(c, (0, c, 0))
        return (hw_thread, core_rank[package][core], package, c)

    return sorted(cpus, key=key)


def _split(seq, parts):
    """``seq`` cut into ``parts`` contiguous pieces whose sizes differ by at most one."""
    n = len(seq)
    base, extra = divmod(n, parts)
    pieces, start = [], 0
    for i in range(parts):
        size = base + (1 if i < extra else 0)
        pieces.append(list(seq[start:start + size]))
        start += size
    return pieces


def node_shares(masks, topo=None):
    """Each node-local rank's CPU share, from the masks the ranks started with.

    ``masks[i]`` is local rank *i*'s initial affinity (an iterable of CPUs). Returns
    ``(shares, node_cpus, source)`` with ``source`` ``"launcher"`` (the masks were already
    disjoint and are kept) or ``"runtime"`` (the union was split here).
    """
    masks = [sorted(set(m)) for m in masks]
    if not masks or any(not m for m in masks):
        raise ValueError("every rank needs a non-empty CPU mask")
    node_cpus = sorted(set().union(*masks))
    if len(masks) > 1 and sum(len(m) for m in masks) == len(node_cpus):
        return masks, node_cpus, "launcher"
    if topo is None:
        topo = topology(node_cpus)
    order = compact_order(node_cpus, topo)
    ranks = len(masks)
    if ranks <= len(order):
        shares = [sorted(piece) for piece in _split(order, ranks)]
    else:
        shares = [[order[r % len(order)]] for r in range(ranks)]
    return shares, node_cpus, "runtime"


def thread_groups(share, threads, pin, topo=None):
    """CPUs of each of ``threads`` OpenMP threads inside ``share`` (None for ``pin='none'``)."""
    if pin == "none":
        return None
    if pin not in ("compact", "scatter"):
        raise ValueError(f"pin must be none, compact or scatter, got {pin!r}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if not share:
        raise ValueError("empty CPU share")
    if topo is None:
        topo = topology(share)
    if pin == "compact":
        order = compact_order(share, topo)
        if threads >= len(order):
            return [[order[t % len(order)]] for t in range(threads)]
        return [sorted(piece) for piece in _split(order, threads)]
    order = scatter_order(share, topo)
    if threads >= len(order):
        return [[order[t % len(order)]] for t in range(threads)]
    return [sorted(order[t::threads]) for t in range(threads)]


def default_threads(share, local_size, node_cpu_count, omp_num_threads=None):
    """Threads per rank when ``--threads`` is not given."""
    if omp_num_threads:
        return omp_num_threads
    if local_size > node_cpu_count:
        return 1
    return max(1, len(share))


def omp_num_threads_env():
    """``OMP_NUM_THREADS`` as a positive int (its first level), or None when unset or invalid."""
    raw = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def initial_mask():
    """CPUs this process may run on, as the launcher started it.

    Taken when the ``miniapps`` package was imported (before libgomp could move the main thread,
    see ``miniapps.START_AFFINITY``), else the main thread's mask now.
    """
    import miniapps
    start = getattr(miniapps, "START_AFFINITY", None)
    return list(start) if start else sorted(os.sched_getaffinity(0))


def bind(threads, groups):
    """Make ``threads`` the OpenMP team size and pin thread *i* to ``groups[i]`` (None: no pinning)."""
    if groups is None:
        _threads.set_num_threads(threads)
        return
    if len(groups) != threads:
        raise ValueError(f"{len(groups)} CPU groups for {threads} threads")
    _threads.bind_team(groups)


def read_back(threads):
    """``[(cpu, allowed_cpus), ...]`` per thread, read by each thread inside a parallel region."""
    return _threads.team_affinity(threads)


def mismatches(groups, readback):
    """Thread ids whose mask read back differs from the one asked for."""
    if groups is None:
        return []
    return [t for t, (g, (_, allowed)) in enumerate(zip(groups, readback)) if sorted(g) != list(allowed)]
