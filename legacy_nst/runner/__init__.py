"""One run of a Job: its check, identity, plan, sizing, memory, colour, the loop, files, interrupts, events.
No TensorFlow at import (the loop reaches the engine through its lazy door)."""
