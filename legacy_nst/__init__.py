"""legacy_nst: classic Gatys-style neural style transfer as TF1-style graphs on today's TensorFlow.

    from legacy_nst import Job, Style, run, stylize
    result = run(Job(content="photo.jpg", styles=["painting.jpg"], recipe="preview"))

Importing the package does not import TensorFlow; a run does.
"""
from .errors import UserError, WriteError
from .recipes import RECIPES, Recipe
from .runner.events import Evaluation, IterationFinished, LevelFinished, LevelStarted, Notice, Result, Saved
from .runner.job import Job, Level, Output, Style
from .runner.loop import run
from .ui.notebook import stylize

__all__ = ["Evaluation", "IterationFinished", "Job", "Level", "LevelFinished", "LevelStarted", "Notice", "Output",
           "RECIPES", "Recipe", "Result", "Saved", "Style", "UserError", "WriteError", "run", "stylize"]
__version__ = "0.2.0"
