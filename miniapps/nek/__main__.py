"""``python -m miniapps.nek axhm|stpm|grad|rstr ...``: see miniapps.nek.app."""
from miniapps import runtime as rt
from miniapps.nek import app

if __name__ == "__main__":
    rt.run("nek", app.main, app.add_arguments, doc=app.__doc__)
