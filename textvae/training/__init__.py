"""The training wing: ``train(config)``, its callbacks, the run folder, evaluation.

=========================  ===================================================================
:mod:`.trainer`            :func:`train`: store -> sequences -> ``fit`` -> the run folder
:mod:`.run`                :class:`RunDir`: the run folder's files and rules, its lock
:mod:`.state`              :class:`TrainingState`: where a run stands (``state.json``)
:mod:`.history`            ``history.csv``: appending, trimming, the epoch of ``best.keras``
:mod:`.replaced`           an overwritten run's files, kept until the new run's first checkpoint
:mod:`.callbacks`          :class:`KLAnnealing`, :class:`EpochSync`, :class:`RunCheckpoint`
:mod:`.preemption`         :class:`StopOnSignal`: SIGTERM/SIGINT stop after the step in progress
:mod:`.distributed`        :func:`fit_distributed`: the custom step under ``tf.distribute``
:mod:`.cluster`            :func:`worker_info`: this process's place in ``TF_CONFIG``
:mod:`.evaluate`           :func:`evaluate_vae` and the other test metrics of a trained model
:mod:`.plots`              :func:`plot_latents`: ``latents.png`` (matplotlib, optional)
:mod:`.sample`             what ``textvae-sample`` does with a run: reconstruct, prior, interpolate
=========================  ===================================================================

Names load on first use: :mod:`textvae.training.run` must stay importable without Keras,
and :func:`fit_distributed` needs TensorFlow.
"""

from __future__ import annotations

from textvae._lazy import attach

__all__ = [
    "EpochSync",
    "KLAnnealing",
    "RunCheckpoint",
    "RunDir",
    "StopOnSignal",
    "TrainingState",
    "evaluate_vae",
    "fit_distributed",
    "load_run",
    "plot_latents",
    "reconstruction_scores",
    "split_sentiment_accuracy",
    "train",
    "worker_info",
]

#: Each public name -> the module of this wing that holds it.
_HOMES = {
    "EpochSync": "textvae.training.callbacks",
    "KLAnnealing": "textvae.training.callbacks",
    "RunCheckpoint": "textvae.training.callbacks",
    "RunDir": "textvae.training.run",
    "StopOnSignal": "textvae.training.preemption",
    "TrainingState": "textvae.training.run",
    "evaluate_vae": "textvae.training.evaluate",
    "fit_distributed": "textvae.training.distributed",
    "load_run": "textvae.training.sample",
    "plot_latents": "textvae.training.plots",
    "reconstruction_scores": "textvae.training.evaluate",
    "split_sentiment_accuracy": "textvae.training.evaluate",
    "train": "textvae.training.trainer",
    "worker_info": "textvae.training.cluster",
}


__getattr__, __dir__ = attach(__name__, _HOMES)
