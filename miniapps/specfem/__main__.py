"""``python -m miniapps.specfem [elements]``: see miniapps.specfem.app."""
from miniapps import runtime as rt
from miniapps.specfem import app

if __name__ == "__main__":
    rt.run("specfem", app.main, app.add_arguments, doc=app.__doc__, dtype="f32", dtypes=("f32",), repeat=15)
