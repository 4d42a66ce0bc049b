"""SPECFEM stiffness kernel (miniapps.specfem.kernels) against the float64 numpy einsum
implementation, and the synthetic mesh and model of miniapps.specfem.mesh."""
import numpy as np
import pytest

import core.cpu
from miniapps.specfem import kernels as K
from miniapps.specfem import mesh as M
from miniapps.specfem import reference as R

TARGETS = core.cpu.available_targets()
TOL = 2e-5  # float32 kernel against the float64 reference, relative to max|reference|


@pytest.fixture
def rng():
    return np.random.default_rng(19750225)


def random_model(rng, nspec):
    """A mesh of nspec elements with random (not physically consistent) per-element data: every
    element differs, so a kernel mixing up elements or terms fails."""
    mesh = M.build_mesh(nspec)
    displ = rng.standard_normal((mesh.nglob, 3)).astype(np.float32)
    geom = rng.uniform(-1.0, 1.0, (nspec, 10)).astype(np.float32)
    geom[:, 9] = rng.uniform(0.1, 1.0, nspec)
    material = rng.uniform(0.5, 2.0, (nspec, 2)).astype(np.float32)
    gravity = rng.uniform(-0.5, 0.5, (nspec, 9)).astype(np.float32)
    return mesh, displ, geom, material, gravity


def _rel(x, ref):
    return float(np.max(np.abs(x - ref)) / np.max(np.abs(ref)))


@pytest.mark.parametrize("nspec", (1, 7, 97))
def test_every_variant_matches_the_einsum_reference(rng, nspec):
    mesh, displ, geom, material, gravity = random_model(rng, nspec)
    ref = R.forces(mesh.ibool, displ, geom, material, gravity, M.gll_operators())
    stiff = K.Stiffness(mesh.ibool, mesh.nglob, geom, material, gravity)
    for variant in K.VARIANTS:
        if variant == "static" and not stiff.static_available:
            continue
        for threads in (1, 2, 3):
            accel = np.zeros((mesh.nglob, 3), np.float32)
            stiff.forces(displ, accel, variant=variant, threads=threads)
            assert _rel(accel, ref) < TOL, (variant, threads)


@pytest.mark.parametrize("target", TARGETS)
def test_every_isa_path_matches(rng, target):
    mesh, displ, geom, material, gravity = random_model(rng, 23)
    ref = R.forces(mesh.ibool, displ, geom, material, gravity, M.gll_operators())
    stiff = K.Stiffness(mesh.ibool, mesh.nglob, geom, material, gravity, target=target)
    assert stiff.target == target
    for variant in K.VARIANTS:
        if variant == "static" and not stiff.static_available:
            continue
        accel = np.zeros((mesh.nglob, 3), np.float32)
        stiff.forces(displ, accel, variant=variant, threads=2)
        assert _rel(accel, ref) < TOL, variant


def test_the_static_variant_exists_in_the_default_build():
    mesh = M.build_mesh(2)
    stiff = K.Stiffness(mesh.ibool, mesh.nglob, *M.element_model(mesh))
    if not stiff.static_available:
        pytest.skip('this build\'s SMM_MNK does not contain "5 25"')
    assert [stiff.kernels[n].specialized for n in ("xmm1", "xmm2", "xmm3")] == [True] * 3


def test_forces_accumulate_into_accel(rng):
    mesh, displ, geom, material, gravity = random_model(rng, 5)
    stiff = K.Stiffness(mesh.ibool, mesh.nglob, geom, material, gravity)
    once = stiff.forces(displ, np.zeros((mesh.nglob, 3), np.float32), variant="deville")
    accel = np.ones((mesh.nglob, 3), np.float32)
    stiff.forces(displ, accel, variant="dispatched")
    stiff.forces(displ, accel, variant="unrolled")
    np.testing.assert_allclose(accel, 1.0 + 2.0 * once, rtol=1e-5, atol=1e-5 * np.abs(once).max())


def test_synthetic_model_exercises_elastic_and_gravity_terms():
    """The app's own data: the elastic terms must dominate neither completely nor not at all, or a
    validation would not see one of them."""
    mesh = M.build_mesh(200)
    displ = M.displacement(M.node_positions(mesh))
    geom, material, gravity = M.element_model(mesh)
    ops = M.gll_operators()
    full = R.forces(mesh.ibool, displ, geom, material, gravity, ops)
    elastic = R.forces(mesh.ibool, displ, geom, material, np.zeros_like(gravity), ops)
    grav = full - elastic
    ratio = np.abs(grav).max() / np.abs(elastic).max()
    assert 0.01 < ratio < 10.0
    assert np.all(geom[:, :9] != 0)  # all nine inverse-Jacobian terms enter


def test_default_mesh_has_the_samples_global_node_count():
    mesh = M.build_mesh()
    assert mesh.nspec == 40000 and (mesh.nex, mesh.ney, mesh.nez) == (40, 40, 25)
    assert mesh.nglob == 161 * 161 * 101 == 2618021
    assert mesh.ibool.min() == 0 and mesh.ibool.max() == mesh.nglob - 1


def test_mesh_shares_faces_and_numbers_nodes_by_first_appearance():
    mesh = M.build_mesh(3 * 40 + 5)  # a partial second layer row
    ib = mesh.ibool.reshape(-1, 5, 5, 5)  # [e, k, j, i]
    np.testing.assert_array_equal(mesh.ibool[0], np.arange(125))
    np.testing.assert_array_equal(ib[0, :, :, 4], ib[1, :, :, 0])      # x-neighbours share a face
    np.testing.assert_array_equal(ib[0, :, 4, :], ib[40, :, 0, :])     # y-neighbours
    first = np.unique(mesh.ibool.ravel(), return_index=True)[1]
    assert np.all(np.diff(first) > 0)  # node g first appears before node g + 1
    assert len(set(mesh.ibool[7].tolist())) == 125


def test_partial_layer_node_count():
    mesh = M.build_mesh(1)
    assert mesh.nglob == 125 and mesh.nez == 1
    mesh = M.build_mesh(2)
    assert mesh.nglob == 2 * 125 - 25


def test_local_part_and_inverse_table_are_consistent():
    mesh = M.build_mesh(50)
    ib, nodes = M.local_part(mesh, 10, 17)
    np.testing.assert_array_equal(nodes[ib], mesh.ibool[10:27])
    start, table = M.inverse_table(ib, nodes.size)
    assert start[0] == 0 and start[-1] == table.size == 17 * 125
    e, rest = np.divmod(table, 375)
    assert np.all(rest < 125)
    for g in (0, nodes.size // 2, nodes.size - 1):
        for off in table[start[g]:start[g + 1]]:
            assert ib[off // 375, off % 375] == g


def test_interleaved_table_points_at_the_same_contributions():
    mesh = M.build_mesh(37)
    start, table = M.inverse_table(mesh.ibool, mesh.nglob)
    tg = M.interleaved_table(table, 16)
    e, p = np.divmod(table, 375)
    g, rest = np.divmod(tg, 375 * 16)
    np.testing.assert_array_equal(g * 16 + rest % 16, e)  # lane + 16 * group = element
    np.testing.assert_array_equal(rest // 16, p)          # point, x component
    assert table.dtype == tg.dtype == start.dtype == np.int32


def test_too_many_elements_for_int32_tables_is_a_clear_error():
    huge = np.broadcast_to(np.zeros(125, np.int32), (6_000_000, 125))
    with pytest.raises(ValueError, match="more MPI ranks"):
        M.inverse_table(huge, 1)


def test_gll_operators_are_the_degree_4_derivative_and_weights():
    ops = M.gll_operators(np.float64)
    x = np.array([-1.0, -np.sqrt(3 / 7), 0.0, np.sqrt(3 / 7), 1.0])
    np.testing.assert_allclose(ops["hprime"] @ x ** 3, 3 * x ** 2, atol=1e-12)
    w = M.gll_weights(5)
    np.testing.assert_allclose(w, [0.1, 49 / 90, 32 / 45, 49 / 90, 0.1], rtol=1e-12)
    np.testing.assert_allclose(ops["hprimewgll"], ops["hprime"] * w[:, None])
    np.testing.assert_allclose(ops["wgll_cube"].sum(), 8.0, rtol=1e-12)
    np.testing.assert_allclose(ops["wgll_xy"][0], np.outer(w, w), rtol=1e-12)  # [k=0, j, i] = w_i w_j


# ---------------------------------------------------------------------------------------------
# bad arguments
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def small(rng):
    mesh, displ, geom, material, gravity = random_model(rng, 4)
    return mesh, displ, K.Stiffness(mesh.ibool, mesh.nglob, geom, material, gravity), (geom, material, gravity)


def test_bad_model_arrays_are_named(small):
    mesh, displ, _, (geom, material, gravity) = small
    with pytest.raises(TypeError, match="ibool must have dtype int32"):
        K.Stiffness(mesh.ibool.astype(np.int64), mesh.nglob, geom, material, gravity)
    bad = mesh.ibool.copy()
    bad[1, 3] = mesh.nglob
    with pytest.raises(ValueError, match="outside"):
        K.Stiffness(bad, mesh.nglob, geom, material, gravity)
    with pytest.raises(ValueError, match="geom must have shape"):
        K.Stiffness(mesh.ibool, mesh.nglob, geom[:, :9].copy(), material, gravity)
    with pytest.raises(TypeError, match="material must have dtype float32"):
        K.Stiffness(mesh.ibool, mesh.nglob, geom, material.astype(np.float64), gravity)
    with pytest.raises(ValueError, match="nglob must be >= 1"):
        K.Stiffness(mesh.ibool, 0, geom, material, gravity)
    with pytest.raises(ValueError, match="ibool must be a 2-D"):
        K.Stiffness(mesh.ibool.ravel(), mesh.nglob, geom, material, gravity)
    with pytest.raises(ValueError, match="target"):
        K.Stiffness(mesh.ibool, mesh.nglob, geom, material, gravity, target="mmx")
    with pytest.raises(ValueError, match=r"ops\['hprime'\] must have shape"):
        K.Stiffness(mesh.ibool, mesh.nglob, geom, material, gravity, ops={**M.gll_operators(), "hprime": np.eye(4)})


def test_bad_step_arguments_are_named(small):
    mesh, displ, stiff, _ = small
    accel = np.zeros((mesh.nglob, 3), np.float32)
    with pytest.raises(ValueError, match="variant"):
        stiff.forces(displ, accel, variant="libxsmm")
    with pytest.raises(ValueError, match="displ must have shape"):
        stiff.forces(displ[:-1].copy(), accel)
    with pytest.raises(TypeError, match="accel must have dtype float32"):
        stiff.forces(displ, accel.astype(np.float64))
    with pytest.raises(ValueError, match="displ must be C-contiguous"):
        stiff.forces(np.asfortranarray(displ), accel)
    ro = accel.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="accel must be writable"):
        stiff.forces(displ, ro)
    with pytest.raises(ValueError, match="overlaps"):
        stiff.forces(accel, accel)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        stiff.forces(displ, accel, threads=0)
    with pytest.raises(ValueError, match="elements must be >= 1"):
        M.build_mesh(0)
