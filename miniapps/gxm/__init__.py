"""gxm: a Caffe-like conv-net training mini-app on core.conv / core.dnn (LIBXSMM's GxM sample).

Run it with ``python -m miniapps.gxm train|test <topology.prototxt> <solver.prototxt>``; the
modules are usable on their own: :mod:`.schema` (prototxt), :mod:`.net` (nodes and arena),
:mod:`.solver` (SGD, policies, checkpoints), :mod:`.train` (loops, MPI data parallelism).
"""
