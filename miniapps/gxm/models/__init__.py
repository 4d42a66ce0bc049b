"""The gxm model zoo: prototxt files (written by make_zoo.py), read by path."""
