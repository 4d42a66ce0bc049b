"""SPECFEM mini-app: SPECFEM3D_GLOBE's stiffness (compute-forces) kernel on 5 x 5 x 5-point elements.

``python -m miniapps.specfem [elements]`` (see ``app``); the mesh and model are in
:mod:`miniapps.specfem.mesh`, the kernel in :mod:`miniapps.specfem.kernels`, the numpy reference in
:mod:`miniapps.specfem.reference`.
"""
