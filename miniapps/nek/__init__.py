"""NEK mini-app: Nek5000's tensor-product element operators as sequences of small GEMMs.

``python -m miniapps.nek axhm|stpm|grad|rstr ...`` (see ``__main__``); the element loops are in
:mod:`miniapps.nek.kernels`, the operators and numpy references in :mod:`miniapps.nek.science`.
"""
