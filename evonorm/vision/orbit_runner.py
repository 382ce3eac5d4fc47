"""Model Garden's Orbit experiment runner, made to resume under ``multi_worker_mirrored``.

Model Garden 2.20's ``OrbitExperimentRunner`` gives each non-chief worker a checkpoint manager on a
fresh ``tempfile.mkdtemp()`` directory (so workers do not overwrite the chief's files). On a resume the
chief restores the latest checkpoint of ``model_dir`` while the other workers find their empty
temporary directory and initialize from scratch: their restore collectives no longer match the
chief's and the run dies (measured here: ``Collective instance ... expected data_type 1 but got 9``),
and each run leaves a temporary directory behind.

:class:`Runner` keeps Model Garden's layout (only the chief writes to ``model_dir``) but makes every
non-chief worker restore the chief's latest checkpoint, so all workers resume at the same step with
the same weights, and removes the non-chief directories when the run ends. :class:`InputRecorder`
notes what each input pipeline was given (pipeline id, replicas, per-replica batch), which is how the
multi-worker test sees the global batch split across workers.
"""

from __future__ import annotations

import shutil
import tempfile

import tensorflow as tf
from official.core import train_lib

from evonorm import distribute


class Runner(train_lib.OrbitExperimentRunner):
    """``OrbitExperimentRunner`` whose non-chief workers resume from the chief's checkpoint."""

    def _maybe_build_checkpoint_manager(self):
        if not self.trainer.checkpoint or distribute.is_chief(self.strategy):
            return super()._maybe_build_checkpoint_manager()
        chief_latest = tf.train.latest_checkpoint(self.model_dir)
        self.scratch_dir = tempfile.mkdtemp(prefix="evonorm-worker-ckpt-")

        def init_fn():
            if chief_latest:  # the same file the chief restores: same weights, same step
                self.trainer.checkpoint.restore(chief_latest)
            else:
                self.trainer.initialize()

        return tf.train.CheckpointManager(
            self.trainer.checkpoint, directory=self.scratch_dir, max_to_keep=1,
            step_counter=self.trainer.global_step,
            checkpoint_interval=self.params.trainer.checkpoint_interval, init_fn=init_fn)

    def cleanup(self) -> None:
        """Removes a non-chief worker's scratch checkpoints (the chief's are in ``model_dir``)."""
        scratch = getattr(self, "scratch_dir", None)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


class InputRecorder:
    """Wraps ``task.build_inputs`` to record, per input pipeline, what ``tf.distribute`` handed it."""

    def __init__(self, task):
        self.pipelines: list[dict] = []
        build = task.build_inputs

        def build_inputs(params, input_context=None):
            dataset = build(params, input_context=input_context)
            spec = tf.nest.flatten(dataset.element_spec)[0]
            self.pipelines.append({
                "is_training": bool(params.is_training),
                "global_batch": int(params.global_batch_size),
                "pipeline_id": input_context.input_pipeline_id if input_context else 0,
                "num_pipelines": input_context.num_input_pipelines if input_context else 1,
                "replicas": input_context.num_replicas_in_sync if input_context else 1,
                "batch_shape": [d if d is None else int(d) for d in spec.shape.as_list()][:1],
            })
            return dataset

        task.build_inputs = build_inputs
