"""Scale-out with tf.distribute: get a strategy by name, shard and distribute datasets.

Keras owns the loop: build and compile the model under ``strategy.scope()`` and ``fit`` distributes
a ``tf.data.Dataset`` by itself (the batch size you give is the *global* batch, split across
replicas). `tfxfer.train.fine_tune.fine_tune` takes ``strategy=`` and does the compile-side of this.

* ``"mirrored"``: one machine, several GPUs (or several logical CPU devices when there is no GPU).
* ``"multi_worker_mirrored"``: several machines (or processes); each reads ``TF_CONFIG``
  (``{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}``) and
  runs the same script; worker 0 is the chief and writes checkpoints and exports.
* ``"tpu"``: a TPU, when one is attached (raises a clear error otherwise).
* ``"default"``: no distribution (what Keras uses without a scope).

Example:
    >>> from tfxfer.reliability import get_strategy, shard_dataset
    >>> strategy = get_strategy("default")
    >>> strategy.num_replicas_in_sync
    1
"""

from __future__ import annotations

import contextlib
import json
import os
import socket

from tfxfer.errors import ArgumentError, ArgumentTypeError, ConfigError
from tfxfer.utils.validate import check_int

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker_mirrored", "tpu")
SHARD_POLICIES = ("auto", "data", "file", "off")


def _check_tf_config() -> dict | None:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise ConfigError('TF_CONFIG must be a JSON object with a "cluster" mapping, e.g. '
                          '{"cluster": {"worker": ["127.0.0.1:12345", "127.0.0.1:12346"]}, '
                          '"task": {"type": "worker", "index": 0}}')
    task = config.get("task") or {}
    kind, index = task.get("type"), task.get("index")
    members = config["cluster"].get(kind)
    if not isinstance(members, list) or not isinstance(index, int) or not 0 <= index < len(members):
        raise ConfigError(f"TF_CONFIG task {task!r} is not a member of the cluster {config['cluster']!r}")
    return config


def get_strategy(name: str = "default", *, devices=None, tpu: str | None = None):
    """A ``tf.distribute.Strategy`` by name.

    Args:
        name: one of ``"default"``, ``"one_device"``, ``"mirrored"``, ``"multi_worker_mirrored"``
            or ``"tpu"``.
        devices: for "mirrored": device names (default: every GPU, else every logical CPU);
            for "one_device": one device name (default "/cpu:0").
        tpu: for "tpu": the TPU address or name ("" or None: the locally attached TPU).

    Returns:
        The strategy. Create models, optimizers and metrics under ``strategy.scope()``.

    Raises:
        ArgumentError for unknown names; ConfigError for a malformed
        ``TF_CONFIG``; ArgumentError when "tpu" is asked for and no TPU answers.

    Example:
        >>> from tfxfer.reliability.distribute import get_strategy
        >>> get_strategy("one_device").num_replicas_in_sync
        1
    """
    import tensorflow as tf

    if not isinstance(name, str):
        raise ArgumentTypeError("name", name, "a strategy name (str)")
    key = name.strip().lower().replace("-", "_")
    key = {"none": "default", "multiworker": "multi_worker_mirrored", "multi_worker": "multi_worker_mirrored",
           "mirror": "mirrored"}.get(key, key)
    if key not in STRATEGIES:
        raise ArgumentError("name", name, "must be one of " + ", ".join(STRATEGIES))
    if key == "default":
        return tf.distribute.get_strategy()
    if key == "one_device":
        return tf.distribute.OneDeviceStrategy(devices or "/cpu:0")
    if key == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        if isinstance(devices, str) or not devices:
            raise ArgumentError("devices", devices, "must be a non-empty list of device names")
        return tf.distribute.MirroredStrategy(list(devices))
    if key == "multi_worker_mirrored":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as exc:
        raise ArgumentError("name", name, "needs a TPU, and none answered",
                            hint=f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); use 'mirrored' "
                                 "for GPUs or 'default' for one device") from None
    return tf.distribute.TPUStrategy(resolver)


def shard_dataset(dataset, *, policy: str = "data"):
    """Set how ``dataset`` is split between workers when Keras distributes it.

    ``"data"`` (default): every worker reads the whole pipeline and keeps its share of the batches
    (works for any source, including in-memory arrays); ``"file"``: workers read different files
    (needs at least as many files as workers); ``"auto"``: TensorFlow picks (file, else data);
    ``"off"``: every worker sees everything (only for evaluation).
    """
    import tensorflow as tf

    if not isinstance(dataset, tf.data.Dataset):
        raise ArgumentTypeError("dataset", dataset, "a tf.data.Dataset")
    if policy not in SHARD_POLICIES:
        raise ArgumentError("policy", policy, "must be one of " + ", ".join(SHARD_POLICIES))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = getattr(
        tf.data.experimental.AutoShardPolicy, policy.upper())
    return dataset.with_options(options)


def distribute_dataset(strategy, dataset, *, policy: str = "data"):
    """``strategy.experimental_distribute_dataset`` after `shard_dataset`.

    ``dataset`` must be batched with the **global** batch size; each replica receives
    ``global_batch / strategy.num_replicas_in_sync`` examples per step. Keras ``fit`` accepts the
    result (and also distributes a plain dataset by itself).
    """
    return strategy.experimental_distribute_dataset(shard_dataset(dataset, policy=policy))


def is_chief(strategy=None) -> bool:
    """Whether this process should write checkpoints and exports (True without multi-worker)."""
    import tensorflow as tf

    strategy = strategy or tf.distribute.get_strategy()
    return bool(getattr(strategy.extended, "should_checkpoint", True))


def free_ports(count: int) -> list[int]:
    """``count`` TCP ports on 127.0.0.1 that were free a moment ago (for local multi-worker runs)."""
    sockets, ports = [], []
    try:
        for _ in range(int(count)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


def local_tf_configs(workers: int, *, ports=None) -> list[str]:
    """One ``TF_CONFIG`` JSON string per worker of a cluster on 127.0.0.1 (loopback only).

    Example:
        >>> from tfxfer.reliability.distribute import local_tf_configs
        >>> import json
        >>> json.loads(local_tf_configs(2, ports=[20001, 20002])[1])["task"]
        {'type': 'worker', 'index': 1}
    """
    workers = check_int("workers", workers, low=1)
    ports = list(ports) if ports is not None else free_ports(workers)
    if len(ports) != workers:
        raise ArgumentError("ports", ports, f"must hold {workers} ports")
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(workers)]


def _num_workers(strategy) -> int:
    extended = getattr(strategy, "extended", None)
    return int(getattr(extended, "_num_workers", 1) or 1)


def _patched_reduce(original):
    """Keras's ``reduce_per_replica`` with scalar outputs of multi-worker steps reduced over
    replicas (``axis=None``) instead of ``axis=0``, which fails for scalars."""
    import tensorflow as tf

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or _num_workers(strategy) <= 1:
            return original(values, strategy, reduction)

        def one(value):
            local = (strategy.experimental_local_results(value)
                     if isinstance(value, tf.distribute.DistributedValues) else [value])
            if all(getattr(t, "shape", None) is not None and t.shape.rank == 0 for t in local):
                return strategy.reduce("MEAN", value, axis=None)
            return original(value, strategy, reduction)

        import keras

        return keras.tree.map_structure(one, values)

    return reduce_per_replica


@contextlib.contextmanager
def fit_scope(model, strategy=None):
    """Run Keras ``fit`` / ``evaluate`` of ``model`` under ``strategy``, multi-worker included.

    Keras 3.15's TensorFlow trainer cannot ``fit`` under a ``MultiWorkerMirroredStrategy`` with more
    than one worker (keras-team/keras#20585, tensorflow/tensorflow#72388), for two reasons measured
    here: (1) its eager symbolic build calls ``strategy.reduce`` on the whole ``(x, y)`` batch tuple
    ("Attempt to convert a value (PerReplica...) to a Tensor"); (2) each step reduces the scalar
    loss and metrics with ``axis=0`` ("Invalid reduction dimension 0 for input with 0 dimensions").
    Inside this context, and only for multi-worker strategies: the model takes its strategy from
    the enclosing ``strategy.scope()`` (Keras then builds in the first traced step, per replica),
    and scalar step outputs are averaged over replicas with ``axis=None``. Both changes are undone
    on exit. With one worker (or no strategy) it only enters ``strategy.scope()``.

    Example:
        >>> import keras
        >>> from tfxfer.reliability.distribute import fit_scope, get_strategy
        >>> strategy = get_strategy("default")
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> with fit_scope(model, strategy):
        ...     model.compile("sgd", "mse")
    """
    import tensorflow as tf

    strategy = strategy or getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
    patch = _num_workers(strategy) > 1 and hasattr(model, "_distribute_strategy")
    saved = getattr(model, "_distribute_strategy", None)
    trainer_module = original = None
    if patch:
        from keras.src.backend.tensorflow import trainer as trainer_module

        original = trainer_module.reduce_per_replica
    with strategy.scope():
        if patch:
            model._distribute_strategy = None
            trainer_module.reduce_per_replica = _patched_reduce(original)
        try:
            yield strategy
        finally:
            if patch:
                model._distribute_strategy = saved
                trainer_module.reduce_per_replica = original
