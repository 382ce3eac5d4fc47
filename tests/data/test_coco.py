"""COCO checks and record writing on tiny synthetic datasets: each known trap gets a clear CocoDataError."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from evonorm.data import coco

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZES = {1: (30, 40), 2: (24, 32)}  # image id -> (height, width)


def _square(x, y, side):
    return [[x, y, x + side, y, x + side, y + side, x, y + side]]


def _dataset():
    images = [{"id": i, "file_name": f"img{i}.jpg", "height": h, "width": w} for i, (h, w) in SIZES.items()]
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 10, 10], "area": 100.0, "iscrowd": 0,
         "segmentation": _square(2, 3, 10)},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [20, 5, 8, 8], "area": 64.0, "iscrowd": 0,
         "segmentation": _square(20, 5, 8)},
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [4, 4, 6, 6], "area": 36.0, "iscrowd": 0,
         "segmentation": _square(4, 4, 6)},
    ]
    categories = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    return {"images": images, "annotations": annotations, "categories": categories}


@pytest.fixture
def make(tmp_path, rng):
    """``make(edit=None) -> (annotation_file, image_dir)``; ``edit(dataset)`` changes it before writing."""
    image_dir = tmp_path / "images"
    image_dir.mkdir()
    for i, (h, w) in SIZES.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(image_dir / f"img{i}.jpg")

    def build(edit=None):
        dataset = _dataset()
        if edit:
            edit(dataset)
        path = tmp_path / "instances.json"
        path.write_text(json.dumps(dataset))
        return str(path), str(image_dir)
    return build


def _error(make, edit, **kwargs):
    path, image_dir = make(edit)
    with pytest.raises(coco.CocoDataError) as info:
        coco.check_annotations(path, image_dir, **kwargs)
    assert path in str(info.value)
    return str(info.value)


def test_clean_dataset_passes_with_its_stats(make):
    stats = coco.check_annotations(*make())
    assert stats["images"] == 2 and stats["annotations"] == 3 and stats["masks"] == 3
    assert stats["categories"] == 2 and stats["num_classes"] == 3 and not stats["renumbered"]
    assert stats["clipped_boxes"] == stats["dropped_empty_boxes"] == stats["converted_segmentations"] == 0


def test_missing_file_names_the_sample_command(tmp_path):
    with pytest.raises(coco.CocoDataError, match="not found") as info:
        coco.check_annotations(str(tmp_path / "none.json"), str(tmp_path))
    assert coco.SAMPLE_COMMAND in str(info.value)


def test_not_json_and_missing_keys(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(coco.CocoDataError, match="not a JSON file"):
        coco.load_annotations(str(bad))
    bad.write_text(json.dumps({"images": [], "categories": []}))
    with pytest.raises(coco.CocoDataError, match="'annotations'"):
        coco.load_annotations(str(bad))


def test_missing_images_are_listed(make):
    message = _error(make, lambda d: d["images"][1].update(file_name="gone.jpg"))
    assert "1 of 2 image files not found" in message and "'gone.jpg'" in message


def test_image_size_must_match_the_json(make):
    assert "the JSON says width" in _error(make, lambda d: d["images"][0].update(width=41))


def test_missing_segmentation_when_masks_are_required(make):
    def edit(d):
        del d["annotations"][1]["segmentation"]
    assert "annotation id 2 has no 'segmentation'" in _error(make, edit)
    assert coco.check_annotations(*make(edit), require_masks=False)["masks"] == 2


def test_compressed_rle_becomes_polygons_or_uncompressed_crowd_rle(make):
    from pycocotools import mask as mask_api

    truth = np.zeros((30, 40), np.uint8)
    truth[5:15, 8:12] = 1
    truth[7:9, 12:30] = 1
    rle = mask_api.encode(np.asfortranarray(truth))
    compressed = {"size": [30, 40], "counts": rle["counts"].decode()}

    def edit(d):
        d["annotations"][0]["segmentation"] = compressed
        d["annotations"][1].update(segmentation=compressed, iscrowd=1)
    path, image_dir = make(edit)
    cleaned, stats = coco.clean_annotations(coco.load_annotations(path), image_dir)
    assert stats["converted_segmentations"] == 2 and stats["crowd"] == 1
    polygons, crowd = cleaned["annotations"][0]["segmentation"], cleaned["annotations"][1]["segmentation"]
    assert isinstance(polygons, list) and isinstance(crowd["counts"], list)
    for seg in (polygons, crowd):
        assert (coco.segmentation_to_mask(seg, 30, 40) == truth).all()


def test_boxes_past_the_edge_are_clipped_and_counted(make):
    def edit(d):
        d["annotations"][1]["bbox"] = [30.5, 5, 9.50001, 8]  # MG's converter would skip this one
        d["annotations"][2]["bbox"] = [-2, 4, 8, 6]
    path, image_dir = make(edit)
    cleaned, stats = coco.clean_annotations(coco.load_annotations(path), image_dir)
    assert stats["clipped_boxes"] == 2 and stats["annotations"] == 3
    x, _, w, _ = cleaned["annotations"][1]["bbox"]
    assert x + w <= 40 and w == pytest.approx(9.5)
    assert cleaned["annotations"][2]["bbox"] == [0.0, 4.0, 6.0, 6.0]


def test_degenerate_and_outside_boxes_are_dropped_and_counted(make):
    def edit(d):
        d["annotations"][0]["bbox"] = [2, 3, 0, 10]
        d["annotations"][2]["bbox"] = [40, 4, 5, 5]
    stats = coco.check_annotations(*make(edit))
    assert stats["dropped_empty_boxes"] == 1 and stats["dropped_outside_boxes"] == 1
    assert stats["annotations"] == 1


@pytest.mark.parametrize("kind", ["images", "annotations"])
def test_ids_from_zero_are_refused_or_renumbered(make, kind):
    def edit(d):
        for item in d[kind]:
            item["id"] -= 1
        if kind == "images":
            for ann in d["annotations"]:
                ann["image_id"] -= 1
    message = _error(make, edit)
    assert "id 0 is not an integer >= 1" in message and "renumber" in message
    path, image_dir = make(edit)
    cleaned, stats = coco.clean_annotations(coco.load_annotations(path), image_dir, renumber=True)
    assert stats["renumbered"] and [i["id"] for i in cleaned[kind]] == list(range(1, len(cleaned[kind]) + 1))
    assert [a["image_id"] for a in cleaned["annotations"]] == [1, 1, 2]


def test_category_zero_used_is_refused_unused_is_dropped(make):
    def used(d):
        d["categories"].append({"id": 0, "name": "zero"})
        d["annotations"][0]["category_id"] = 0
    assert "category id 0 is used by 1 annotation(s)" in _error(make, used)
    path, image_dir = make(used)
    cleaned, stats = coco.clean_annotations(coco.load_annotations(path), image_dir, renumber=True)
    assert sorted(c["id"] for c in cleaned["categories"]) == [1, 2, 3] and stats["num_classes"] == 4
    assert [a["category_id"] for a in cleaned["annotations"]] == [1, 3, 2]
    stats = coco.check_annotations(*make(lambda d: d["categories"].append({"id": 0, "name": "_background_"})))
    assert stats["dropped_categories"] == ["_background_"] and stats["categories"] == 2


def test_unknown_references_and_duplicates(make):
    assert "category_id 7 is not in 'categories'" in _error(
        make, lambda d: d["annotations"][0].update(category_id=7))
    assert "image_id 9 is not in 'images'" in _error(make, lambda d: d["annotations"][0].update(image_id=9))
    assert "image id 1 occurs more than once" in _error(make, lambda d: d["images"][1].update(id=1))


def test_polygon_tracer_is_exact_on_holes_and_thin_parts():
    mask = np.zeros((40, 50), np.uint8)
    mask[5:30, 5:30] = 1
    mask[10:20, 10:20] = 0  # a hole
    mask[35, 2:48] = 1  # one pixel thin
    mask[2, 40] = 1  # a single pixel
    polygons = coco.mask_to_polygons(mask)
    assert (coco.segmentation_to_mask(polygons, 40, 50) == mask).all()
    assert (coco.segmentation_to_mask(coco.uncompressed_rle(mask), 40, 50) == mask).all()


def test_prepare_records_writes_masks_and_the_cleaned_json(make, tmp_path):
    path, image_dir = make(lambda d: d["annotations"][1].update(bbox=[30, 5, 10.5, 8]))
    out = coco.prepare_records(path, image_dir, str(tmp_path / "out" / "val"), num_shards=2)
    assert out["num_images"] == 2 and out["num_instances"] == 3 and out["num_classes"] == 3
    assert out["checks"]["clipped_boxes"] == 1
    assert out["file_pattern"].endswith("val-?????-of-00002.tfrecord")
    assert sorted(os.listdir(tmp_path / "out")) == ["val-00000-of-00002.tfrecord",
                                                    "val-00001-of-00002.tfrecord", "val_annotations.json"]
    with open(out["annotation_file"], encoding="utf-8") as f:
        assert len(json.load(f)["annotations"]) == 3
    assert coco.verify_records(out["file_pattern"], {1: 2, 2: 1}) == 2
    with pytest.raises(coco.CocoDataError, match="expected 3 instances"):
        coco.verify_records(out["file_pattern"], {1: 3, 2: 1})


def test_tfds_message_is_honest_about_masks():
    message = coco.tfds_message()
    assert "no instance masks" in message and "prepare_coco.py" in message


@pytest.mark.parametrize("args, expected", [
    (["--num_shards=0"], "prepare_coco: error: flag --num_shards=0"),
    ([], "prepare_coco: error: --annotation_file, --image_dir, --output_prefix required"),
    (["--annotation_file=/nonexistent.json", "--image_dir=/tmp", "--output_prefix=/tmp/x"], "not found"),
])
def test_command_usage_errors_are_one_line(args, expected):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "prepare_coco.py"), *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.startswith("prepare_coco:")]
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in proc.stderr
