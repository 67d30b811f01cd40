"""Many runs and what is made of them: batches, the paper's figures, comparisons, report pages."""
