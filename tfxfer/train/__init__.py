"""The one training core, for images and text: small modules, one concept each.

* `tfxfer.train.data`: the train data adaptor (arrays, texts, token tensors, sample weights, datasets).
* `tfxfer.train.losses`: THE default loss and metrics for a task (softmax / sigmoid / regression / tokens).
* `tfxfer.train.head`: the head step, training a head on cached backbone or encoder features.
* `tfxfer.train.unfreeze`: the unfreezing step (staged top-down unfreezing, warmup, layer decay,
  BN policy, L2-SP, resume).
* `tfxfer.train.result`: `FineTuneResult`.
* `tfxfer.train.fine_tune`: `fine_tune`, the two steps composed; `tfxfer.train.ner`:
  `fit_token_classifier`, NER through `fine_tune`.
"""
