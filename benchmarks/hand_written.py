"""The competent user's alternative, written by hand in plain Keras and scikit-learn (no tfxfer training code).

These are the baselines `benchmarks/vs_hand_written.py` runs beside tfxfer's defaults on the same data, split,
backbone and machine. They follow the Keras transfer-learning guide's method as a careful user writes it:

* images: frozen backbone features -> dropout + dense head with early stopping (best epoch restored), then fine-tune
  the top blocks with every BatchNormalization layer frozen, Adam 1e-4, a few epochs, keeping the best-val_loss epoch;
* text: a frozen-encoder + logistic-regression baseline and TF-IDF + logistic regression (scikit-learn), and a
  keras-hub fine-tune of the encoder (AdamW 5e-5, 3 epochs, best epoch kept).

Only the backbone weights come through tfxfer (``tfxfer.backbones.get_spec(...).build``), because EfficientNet-Lite
ImageNet weights are not in Keras Applications; everything that trains is plain Keras.
"""

from __future__ import annotations

import numpy as np


def _best_weights_callback():
    import keras

    class KeepBest(keras.callbacks.Callback):
        """Remember the weights of the epoch with the lowest val_loss and restore them at the end."""

        def on_train_begin(self, logs=None):
            self.best, self.weights = np.inf, None

        def on_epoch_end(self, epoch, logs=None):
            if logs and logs.get("val_loss", np.inf) < self.best:
                self.best, self.weights = logs["val_loss"], self.model.get_weights()

        def on_train_end(self, logs=None):
            if self.weights is not None:
                self.model.set_weights(self.weights)

    return KeepBest()


def image_baseline(backbone: str, train, val, test, *, num_classes: int, image_size, seed: int,
                   unfreeze_prefixes=("block6", "block7", "top"), head_epochs: int = 30, finetune_epochs: int = 5,
                   batch_size: int = 32) -> dict:
    """Feature extraction + early-stopped head, then top-block fine-tuning with frozen BatchNorm.

    ``train``/``val``/``test`` are ``(x, y)`` with raw 0-255 pixels (gray or RGB), integer labels.
    Returns ``{"accuracy", "val_accuracy_head", "val_accuracy_finetuned"}``.
    """
    import keras
    import tensorflow as tf

    from tfxfer.backbones import get_spec

    keras.utils.set_random_seed(seed)
    spec = get_spec(backbone)
    base = spec.build(input_shape=(*image_size, 3), weights="imagenet")

    def prep(x):
        x = tf.image.resize(tf.cast(x, tf.float32), image_size)
        if x.shape[-1] == 1:
            x = tf.image.grayscale_to_rgb(x)
        return (x - 127.0) / 128.0  # EfficientNet-Lite's input scaling

    def pixels(data):
        x, y = data
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).map(lambda a, b: (prep(a), b))

    # 1. Frozen features, dense head with early stopping.
    base.trainable = False
    pool = keras.layers.GlobalAveragePooling2D()
    feats = {k: np.concatenate([pool(base(xb, training=False)).numpy() for xb, _ in pixels(d)])
             for k, d in (("train", train), ("val", val))}
    head = keras.Sequential([keras.layers.Dropout(0.2), keras.layers.Dense(num_classes, activation="softmax")])
    head.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    head.fit(feats["train"], train[1], validation_data=(feats["val"], val[1]), epochs=head_epochs,
             batch_size=batch_size, verbose=0,
             callbacks=[keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)])
    val_head = float(head.evaluate(feats["val"], val[1], verbose=0)[1])

    # 2. Fine-tune the top blocks, BatchNorm frozen, keep the best-val_loss epoch.
    inputs = keras.Input((*image_size, 3))
    model = keras.Model(inputs, head(pool(base(inputs, training=False))))
    base.trainable = True
    for layer in base.layers:
        layer.trainable = (layer.name.startswith(tuple(unfreeze_prefixes))
                           and not isinstance(layer, keras.layers.BatchNormalization))
    model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy", metrics=["accuracy"])
    train_ds = tf.data.Dataset.from_tensor_slices(train).shuffle(len(train[1]), seed=seed).batch(batch_size)
    train_ds = train_ds.map(lambda a, b: (prep(a), b))
    model.fit(train_ds, validation_data=pixels(val), epochs=finetune_epochs, verbose=0,
              callbacks=[_best_weights_callback()])
    val_ft = float(model.evaluate(pixels(val), verbose=0)[1])
    accuracy = float(model.evaluate(pixels(test), verbose=0)[1])
    return {"accuracy": accuracy, "val_accuracy_head": val_head, "val_accuracy_finetuned": val_ft}


def tfidf_baseline(train, test, *, seed: int) -> dict:
    """TF-IDF (word 1-2 grams) + logistic regression, C chosen by 5-fold CV."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                          LogisticRegressionCV(Cs=8, cv=5, max_iter=2000, random_state=seed))
    model.fit(list(train[0]), train[1])
    return {"accuracy": float(model.score(list(test[0]), test[1]))}


def embedding_baseline(embed, train, test, *, seed: int) -> dict:
    """A frozen encoder's embeddings (``embed(texts) -> array``) + logistic regression, C by 5-fold CV."""
    from sklearn.linear_model import LogisticRegressionCV

    clf = LogisticRegressionCV(Cs=8, cv=5, max_iter=3000, random_state=seed)
    clf.fit(embed(list(train[0])), train[1])
    return {"accuracy": float(clf.score(embed(list(test[0])), test[1]))}
