"""Train/evaluate a registered Model Garden experiment: the same as the ``evonorm-train`` command.

    python scripts/train.py --list_experiments
    python scripts/train.py --experiment=evonorm_resnet50_imagenet_tiny --mode=train_and_eval \
        --model_dir=/tmp/tiny

All logic lives in ``evonorm.vision.train_main``; see ``official/README.md`` for the experiments.
"""

from evonorm.vision.train_main import run

if __name__ == "__main__":
    run()
