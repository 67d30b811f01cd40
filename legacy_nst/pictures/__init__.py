"""Pictures besides a run's image: labelled sheets and loss plots (Pillow, matplotlib). No TensorFlow."""
