"""The one training core, for images and text: small modules, one concept each.

* `tfxfer.train.data`: the train data adaptor (arrays, texts, token tensors, sample weights, datasets).
* `tfxfer.train.losses`: THE default loss and metrics for a task (softmax / sigmoid / regression / tokens).
* `tfxfer.train.head`: the head step, training a head on cached backbone or encoder features.
* `tfxfer.train.unfreeze`: the unfreezing step (staged top-down unfreezing, warmup, layer decay,
  BN policy, L2-SP, resume).
* `tfxfer.train.divergence`: `DivergenceGuard`, the divergence stop of every step (NaN/Inf or exploding
  loss: stop, put back the last good weights, raise `TrainingDivergedError`).
* `tfxfer.train.averaging`: `WeightAveraging` (EMA / SWA over a step's last epochs, resumable).
* `tfxfer.train.tta`: test-time augmentation (`predict_tta`, `evaluate_tta` with its cost).
* `tfxfer.train.plan`: the defaults picked from the data size and the input size.
* `tfxfer.train.result`: `FineTuneResult`.
* `tfxfer.train.fine_tune`: `fine_tune`, the two steps composed; `tfxfer.train.ner`:
  `fit_token_classifier`, NER through `fine_tune`.
"""
