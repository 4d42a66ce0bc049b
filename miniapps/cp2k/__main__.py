from miniapps import runtime as rt
from miniapps.cp2k import __doc__ as doc, add_arguments, main

if __name__ == "__main__":
    rt.run("cp2k", main, add_arguments, doc=doc)
