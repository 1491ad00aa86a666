"""A subclassed Keras model, as model code usually lives: in a module of its own, its classes registered so
Keras can save them (and SPA's pruning process can load them). Used by keras_prune_subclassed.py."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="spa_examples")
class ResidualBlock(keras.layers.Layer):
    def __init__(self, filters: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)
        self.norm = keras.layers.BatchNormalization()
        self.mix = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")

    def call(self, x, training=False):
        x = keras.ops.relu(self.norm(self.conv(x), training=training))
        return x + self.mix(x)


@keras.saving.register_keras_serializable(package="spa_examples")
class SmallClassifier(keras.Model):
    def __init__(self, filters: int = 16, hidden: int = 32, classes: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        self.block = ResidualBlock(filters)
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.hidden = keras.layers.Dense(hidden, activation="relu")
        self.classes = keras.layers.Dense(classes)

    def call(self, x, training=False):
        return self.classes(self.hidden(self.pool(self.block(x, training=training))))
