"""One run of a Job: identity, plan, sizing, memory, colour, the loop, files, interrupts, events. No TensorFlow at import."""
