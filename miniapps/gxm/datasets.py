"""Small real data sets as image folders that gxm's ImageData node reads.

``python -m miniapps.gxm.datasets digits DIR`` writes scikit-learn's handwritten digits (1797
8x8 grey images, 10 classes) as PNG files under ``DIR/images`` with Caffe-style list files
``DIR/train.txt`` and ``DIR/test.txt`` (a fixed, stratified 80/20 split).
"""
import argparse
import os

import numpy as np


def export_digits(directory, test_fraction=0.2, seed=0):
    """Write the digits set; returns (number of training images, number of test images)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit("the digits data set comes from scikit-learn: pip install scikit-learn") from None
    from PIL import Image
    digits = load_digits()
    images = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = digits.target.astype(int)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), bool)
    for c in np.unique(labels):  # stratified: the same share of every class in the test list
        members = rng.permutation(np.flatnonzero(labels == c))
        test[members[:int(round(test_fraction * len(members)))]] = True
    os.makedirs(os.path.join(directory, "images"), exist_ok=True)
    lists = {"train": [], "test": []}
    for i, (img, lab) in enumerate(zip(images, labels)):
        rel = os.path.join("images", f"{i:04d}.png")
        Image.fromarray(img, mode="L").save(os.path.join(directory, rel))
        lists["test" if test[i] else "train"].append(f"{rel} {lab}\n")
    for name, rows in lists.items():
        with open(os.path.join(directory, f"{name}.txt"), "w", encoding="utf-8") as fh:
            fh.writelines(rows)
    return len(lists["train"]), len(lists["test"])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m miniapps.gxm.datasets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=["digits"], help="data set")
    parser.add_argument("directory", help="where to write images and list files")
    args = parser.parse_args(argv)
    ntrain, ntest = export_digits(args.directory)
    print(f"digits: {ntrain} training and {ntest} test images in {args.directory} "
          f"(train.txt, test.txt, images/)")


if __name__ == "__main__":
    main()
