"""Data nodes: DummyData (synthetic, for benchmarks), ImageData (a folder of images with a
Caffe-style list file), LMDBData (Caffe Datum records; needs the ``lmdb`` package).

``batch_size`` is the *global* minibatch: each of R ranks gets ``batch_size / R`` images (it must
divide). The trainer chooses which samples go where (:meth:`DataNode.fill` takes this rank's
sample indices), so the data nodes only know how to produce given samples.
"""
import os

import numpy as np

from core import conv

from .graph import Node, Shape, make_filler, require


class DataNode(Node):
    is_data = True
    bottoms = (0, 0)
    tops = (2, 2)

    def batch_sizes(self, global_batch):
        size = self.ctx.size
        require(global_batch > 0, self, "batch_size must be > 0")
        require(global_batch % size == 0, self,
                f"the global batch_size {global_batch} is not divisible by the {size} ranks")
        self.ctx.global_batch = global_batch
        self.ctx.local_batch = global_batch // size
        return global_batch // size

    @property
    def num_samples(self):
        return self.count

    def forward(self, bottoms, tops):
        pass  # the trainer calls fill() with this rank's samples before the net's forward

    def fill(self, tops, indices):
        raise NotImplementedError


class DummyData(DataNode):
    """One synthetic global minibatch (from ``data_filler``), reused for every batch: sample i is
    row ``i % batch`` of it. Labels are uniform in [0, num_classes), or 0."""
    type_name = "DummyData"

    def setup(self, shapes):
        p = self.spec.dummy_data_param
        dims = list(p.shape.dim)
        require(len(dims) in (4, 5), self, f"dummy_data_param.shape must have 4 dims (batch, C, H, W) or 5 "
                                           f"(images, batch, C, H, W), got {dims}")
        if len(dims) == 4:
            dims = [dims[0]] + dims
        self.count, batch, c, h, w = dims
        require(min(dims) > 0, self, f"dummy_data_param.shape dims must be > 0, got {dims}")
        local = self.batch_sizes(batch)
        if not hasattr(self, "images"):
            rng = np.random.default_rng(p.seed)
            fill = make_filler(p.data_filler if p.HasField("data_filler") else None, self, "data_filler")
            self.images = conv.to_blocked(fill(rng, (batch, c, h, w), c * h * w, c * h * w))
            self.labels = (rng.integers(0, p.num_classes, batch) if p.num_classes else np.zeros(batch)).astype(np.int32)
        self.channels, self.height, self.width = c, h, w
        return [Shape(local, c, h, w), Shape(local, 1, 1, 1, "label")]

    def fill(self, tops, indices):
        rows = np.asarray(indices) % self.images.shape[0]
        np.take(self.images, rows, axis=0, out=tops[0].data)
        np.take(self.labels, rows, out=tops[1].data)


class _StoredImages(DataNode):
    """Samples decoded once into memory as uint8 (N, C, H, W); fill() normalises and blocks."""

    def transform(self, xf):
        """Per-channel mean and scale of image_xform_param ``xf`` (applied in fill())."""
        self.scale = float(xf.scale)
        means = list(xf.mean_values)
        require(len(means) in (0, 1, self.channels), self,
                f"image_xform_param.mean_values: give 1 or {self.channels} values, got {len(means)}")
        self.mean = np.zeros(self.channels, np.float32)
        if means:
            self.mean[:] = means

    def shapes(self):
        p = self.spec.data_param
        batch = (p.test_batch_size or p.batch_size) if not self.ctx.train else p.batch_size
        require(batch > 0, self, "data_param.batch_size must be > 0")
        local = self.batch_sizes(batch)
        return [Shape(local, self.channels, self.height, self.width), Shape(local, 1, 1, 1, "label")]

    def fill(self, tops, indices):
        idx = np.asarray(indices)
        x = (self.images[idx].astype(np.float32) - self.mean[None, :, None, None]) * self.scale
        tops[0].data[...] = conv.to_blocked(x)
        tops[1].data[...] = self.labels[idx]

    def source(self):
        p = self.spec.data_param
        path = p.train_source if self.ctx.train else p.test_source
        field = "train_source" if self.ctx.train else "test_source"
        require(path, self, f"data_param.{field} is not set")
        return path, field


class ImageData(_StoredImages):
    """A list file of ``path label`` lines (paths relative to ``root_folder``, else to the list
    file's folder), or a folder with one sub-folder of images per class (sorted names are the
    labels); decoded with Pillow, resized to ``image_xform_param.height x width`` when given."""
    type_name = "ImageData"

    def setup(self, shapes):
        if not hasattr(self, "images"):
            self._load()
        return self.shapes()

    def _load(self):
        try:
            from PIL import Image
        except ImportError:
            raise self.error("ImageData needs Pillow (pip install pillow)") from None
        p = self.spec.data_param
        xf = p.image_xform_param
        listfile, field = self.source()
        if os.path.isdir(listfile):
            root, entries = listfile, self._scan_folder(listfile)
        else:
            require(os.path.isfile(listfile), self, f"data_param.{field}: no such file or folder {listfile!r}")
            root = p.root_folder or os.path.dirname(os.path.abspath(listfile))
            entries = self._read_list(listfile)
        require(entries, self, f"{listfile} holds no images")
        mode = "L" if xf.channels == 1 else "RGB"
        if xf.channels not in (0, 1, 3):
            raise self.error(f"image_xform_param.channels must be 1 or 3, got {xf.channels}")
        images = []
        size = (xf.width, xf.height) if xf.width and xf.height else None
        for rel, _ in entries:
            path = rel if os.path.isabs(rel) else os.path.join(root, rel)
            try:
                with Image.open(path) as im:
                    im = im.convert(mode)
                    if size is None:
                        size = im.size
                    elif im.size != size:
                        im = im.resize(size, Image.BILINEAR)
                    arr = np.asarray(im, np.uint8)
            except OSError as exc:
                raise self.error(f"cannot read image {path!r}: {exc}") from None
            images.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
        self.images = np.stack(images)
        self.labels = np.array([lab for _, lab in entries], np.int32)
        require(self.labels.min() >= 0, self, f"{listfile}: labels must be >= 0")
        self.count = len(entries)
        self.channels, self.height, self.width = self.images.shape[1:]
        self.transform(xf)


    IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm")

    def _read_list(self, listfile):
        entries = []
        with open(listfile, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                parts = line.split()
                if not parts:
                    continue
                require(len(parts) == 2 and parts[1].lstrip("-").isdigit(), self,
                        f"{listfile}:{lineno}: expected 'path label', got {line.strip()!r}")
                entries.append((parts[0], int(parts[1])))
        return entries

    def _scan_folder(self, folder):
        """A folder with one sub-folder per class (sorted names are labels 0, 1, ...)."""
        classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
        require(classes, self, f"{folder}: a source folder needs one sub-folder per class")
        return [(os.path.join(c, f), label) for label, c in enumerate(classes)
                for f in sorted(os.listdir(os.path.join(folder, c))) if f.lower().endswith(self.IMAGE_SUFFIXES)]


class LMDBData(_StoredImages):
    """A Caffe LMDB of ``Datum`` records (raw uint8 pixels, C x H x W), read with the ``lmdb``
    package and decoded with this project's schema."""
    type_name = "LMDBData"

    def setup(self, shapes):
        if not hasattr(self, "images"):
            self._load()
        return self.shapes()

    def _load(self):
        try:
            import lmdb
        except ImportError:
            raise self.error("LMDBData needs the lmdb package (pip install lmdb)") from None
        from .schema import CLASSES
        path, field = self.source()
        require(os.path.isdir(path) or os.path.isfile(path), self, f"data_param.{field}: no such LMDB {path!r}")
        images, labels = [], []
        datum = CLASSES["Datum"]()
        with lmdb.open(path, readonly=True, lock=False, subdir=os.path.isdir(path)) as env:
            with env.begin() as txn:
                for key, value in txn.cursor():
                    datum.Clear()
                    datum.ParseFromString(value)
                    require(not datum.encoded, self, f"{path}: record {key!r} is encoded; only raw Datum pixels are supported")
                    shape = (datum.channels, datum.height, datum.width)
                    require(len(datum.data) == np.prod(shape), self,
                            f"{path}: record {key!r} has {len(datum.data)} bytes for shape {shape}")
                    images.append(np.frombuffer(datum.data, np.uint8).reshape(shape))
                    labels.append(datum.label)
        require(images, self, f"{path} holds no records")
        require(len({im.shape for im in images}) == 1, self, f"{path}: records differ in shape")
        self.images = np.stack(images)
        self.labels = np.array(labels, np.int32)
        self.count = len(images)
        self.channels, self.height, self.width = self.images.shape[1:]
        self.transform(self.spec.data_param.image_xform_param)


DATA_NODES = {cls.type_name: cls for cls in (DummyData, ImageData, LMDBData)}
