"""The VGG networks as data: layer table, weight files and their download. No TensorFlow."""
